//! Pure rules and types of partnerd: no IO, no database, no HTTP, no clock.
//!
//! Every value that crosses into the domain is parsed once at the edge into a
//! type that can only hold valid data (`Email`, `Password`, `ProgramSettings`),
//! so the rest of the code never re-checks it. Time is always a parameter
//! ([`Timestamp`]), which is what lets the tests drive rules with a fake clock.

pub mod account;
pub mod assignment;
pub mod commission;
pub mod email;
pub mod errors;
pub mod ids;
pub mod ledger;
pub mod money;
pub mod password;
pub mod policy;
pub mod settings;
pub mod time;
pub mod tracking;

pub use account::{PartnerProfile, Role, StaffRole};
pub use email::Email;
pub use errors::FieldErrors;
pub use ids::PublicPartnerId;
pub use money::{Currency, Money};
pub use password::{Password, PasswordPolicy};
pub use settings::ProgramSettings;
pub use time::Timestamp;
