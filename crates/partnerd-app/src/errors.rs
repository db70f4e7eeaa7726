//! The errors use cases return; each surface turns them into its own answers.

use partnerd_domain::FieldErrors;
use partnerd_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad input: each field with its reason. Nothing was written.
    #[error("invalid input: {0}")]
    Invalid(FieldErrors),
    /// Wrong credentials, or an unknown account: one answer for both.
    #[error("wrong email or password")]
    BadCredentials,
    /// Too many attempts; try again after this many seconds.
    #[error("too many attempts")]
    Throttled { retry_after_seconds: i64 },
    #[error("not found")]
    NotFound,
    /// The request is understood but not allowed in this state.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(StoreError),
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Self::NotFound,
            StoreError::Conflict { field } => {
                Self::Invalid(FieldErrors::single(field, "is already taken"))
            }
            StoreError::Invalid(reason) => Self::Conflict(reason.to_owned()),
            other => Self::Store(other),
        }
    }
}

impl From<FieldErrors> for AppError {
    fn from(errors: FieldErrors) -> Self {
        Self::Invalid(errors)
    }
}

pub type AppResult<T> = Result<T, AppError>;
