//! The HTML surface's one error type. It hides internals (logged once, here)
//! and leaves the page itself to the context middleware, which renders it with
//! the program's layout.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use partnerd_app::AppError;
use partnerd_domain::policy::Denied;

#[derive(Debug)]
pub enum WebError {
    NotFound,
    Forbidden,
    /// Not signed in: go to the sign-in page, then come back.
    SignIn {
        staff: bool,
        next: String,
    },
    /// Go elsewhere first (e.g. accept the new Terms).
    Redirect(String),
    /// The form's CSRF token was missing or wrong.
    CsrfFailed,
    Throttled {
        retry_after_seconds: i64,
    },
    /// A state conflict the user can understand ("this link expired").
    Conflict(String),
    TooLarge,
    Internal(String),
}

/// The page the middleware renders for an error: status, heading, text.
#[derive(Debug, Clone)]
pub struct ErrorPage {
    pub status: StatusCode,
    pub heading: String,
    pub body: String,
}

impl WebError {
    pub fn denied(denied: Denied, staff_area: bool, path: &str) -> Self {
        match denied {
            Denied::Unauthenticated => Self::SignIn {
                staff: staff_area,
                next: path.to_owned(),
            },
            Denied::Forbidden => Self::Forbidden,
            Denied::Hidden => Self::NotFound,
        }
    }
}

impl From<AppError> for WebError {
    fn from(err: AppError) -> Self {
        match err {
            AppError::NotFound => Self::NotFound,
            AppError::Throttled {
                retry_after_seconds,
            } => Self::Throttled {
                retry_after_seconds,
            },
            AppError::Conflict(message) => Self::Conflict(message),
            // Forms handle Invalid and BadCredentials themselves; reaching here is a bug.
            other => Self::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, heading, body) = match self {
            Self::SignIn { staff, next } => {
                let login = if staff { "/admin/login" } else { "/login" };
                let encoded: String =
                    url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
                return Redirect::to(&format!("{login}?next={encoded}")).into_response();
            }
            Self::Redirect(to) => return Redirect::to(&to).into_response(),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "Page not found",
                "There is nothing at this address. Check the link, or start again from the home page.",
            ),
            Self::Forbidden => (
                StatusCode::FORBIDDEN,
                "Not allowed",
                "Your account cannot open this page.",
            ),
            Self::CsrfFailed => (
                StatusCode::FORBIDDEN,
                "This form has expired",
                "For your safety, forms work only for a limited time and only from this site. Go back, reload the page and try again.",
            ),
            Self::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too much data",
                "The form sent more data than this page accepts.",
            ),
            Self::Throttled {
                retry_after_seconds,
            } => {
                let minutes = (retry_after_seconds + 59) / 60;
                let mut response = error_page(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many attempts",
                    &format!(
                        "For your account's safety we paused further attempts. Try again in {minutes} minutes."
                    ),
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, retry_after_seconds.into());
                return response;
            }
            Self::Conflict(message) => {
                return error_page(StatusCode::CONFLICT, "That did not work", &message);
            }
            Self::Internal(message) => {
                tracing::error!(error = %message, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The error was logged. Try again in a moment.",
                )
            }
        };
        error_page(status, heading, body)
    }
}

fn error_page(status: StatusCode, heading: &str, body: &str) -> Response {
    let mut response = status.into_response();
    response.extensions_mut().insert(ErrorPage {
        status,
        heading: heading.into(),
        body: body.into(),
    });
    response
}

pub type WebResult<T> = Result<T, WebError>;
