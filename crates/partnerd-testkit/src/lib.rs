//! Test kit for partnerd: helpers that the other crates' tests share.
//!
//! This crate is for `[dev-dependencies]` only; nothing in it belongs in a
//! production build. It holds real stand-ins for outside services (so tests
//! exercise the same network code as production) rather than mocks.

pub mod smtp;

pub use smtp::{ReceivedMail, SmtpReceiver};
