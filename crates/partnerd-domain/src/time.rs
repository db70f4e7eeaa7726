//! Time as a value: milliseconds since the Unix epoch, UTC.
//!
//! Both databases store timestamps as 64-bit integers of this unit, which keeps
//! every statement identical on SQLite and PostgreSQL and comparisons exact.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    pub const fn plus_seconds(self, seconds: i64) -> Self {
        Self(self.0 + seconds * 1000)
    }

    pub const fn plus_days(self, days: i64) -> Self {
        self.plus_seconds(days * 86_400)
    }

    pub const fn minus_seconds(self, seconds: i64) -> Self {
        Self(self.0 - seconds * 1000)
    }
}
