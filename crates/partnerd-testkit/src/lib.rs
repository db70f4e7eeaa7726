//! Test kit for partnerd: helpers that the other crates' tests share.
//!
//! This crate is for `[dev-dependencies]` only; nothing in it belongs in a
//! production build. It holds real stand-ins for outside services (so tests
//! exercise the same network code as production) rather than mocks.

// The Stripe event bodies are large `json!` literals, shaped like Stripe's.
#![recursion_limit = "256"]

pub mod paypal;
pub mod smtp;
pub mod stripe;

pub use paypal::PayPalStandIn;
pub use smtp::{ReceivedMail, SmtpReceiver};
