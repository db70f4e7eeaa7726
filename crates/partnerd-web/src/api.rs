//! The integration API (`/api/v1`): JSON in and out, bearer API keys.
//!
//! This issue lays the surface: authentication, the error shapes of
//! CONTRACT.md and the OpenAPI document. The endpoints arrive with the
//! tracking and money issues.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use partnerd_app::App;
use partnerd_domain::FieldErrors;
use partnerd_domain::policy::{Action, Actor, authorize};
use serde_json::json;

/// The API's one error type: `{"error": …}` plus `fields` for validation.
#[derive(Debug)]
pub enum ApiError {
    Unauthorized,
    NotFound,
    Invalid(FieldErrors),
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(json!({ "error": "a valid API key is required: Authorization: Bearer KEY" })),
            )
                .into_response(),
            Self::NotFound => {
                (StatusCode::NOT_FOUND, Json(json!({ "error": "not found" }))).into_response()
            }
            Self::Invalid(fields) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "error": "validation failed", "fields": fields.into_map() })),
            )
                .into_response(),
            Self::Internal(message) => {
                tracing::error!(error = %message, "API request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({ "error": "internal error" })),
                )
                    .into_response()
            }
        }
    }
}

/// The key id of the caller, put in the request's extensions by [`require_key`].
#[derive(Debug, Clone, Copy)]
pub struct ApiCaller {
    pub key_id: i64,
}

/// Looks the bearer key up on every request, so a key created a moment ago
/// by `partnerd api-key create` works at once.
pub async fn require_key(State(app): State<App>, mut request: Request, next: Next) -> Response {
    let key = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200);
    let actor = match key {
        None => Actor::Anonymous,
        Some(key) => match app.api_key_id(key).await {
            Ok(Some(key_id)) => Actor::ApiKey { key_id },
            Ok(None) => Actor::Anonymous,
            Err(err) => return ApiError::Internal(err.to_string()).into_response(),
        },
    };
    if authorize(actor, Action::UseApi).is_err() {
        return ApiError::Unauthorized.into_response();
    }
    if let Actor::ApiKey { key_id } = actor {
        request.extensions_mut().insert(ApiCaller { key_id });
    }
    next.run(request).await
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// The OpenAPI 3.1 document of the API; public.
pub async fn openapi(State(app): State<App>) -> Response {
    Json(json!({
        "openapi": "3.1.0",
        "info": {
            "title": "partnerd integration API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "JSON API for the vendor's systems. Money is an integer in minor units plus an ISO 4217 currency. A 2xx answer means the change is committed."
        },
        "servers": [{ "url": format!("{}/api/v1", app.config.public_url()) }],
        "security": [{ "apiKey": [] }],
        "components": {
            "securitySchemes": { "apiKey": { "type": "http", "scheme": "bearer", "description": "Created with `partnerd api-key create --name NAME`." } },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": {
                    "error": { "type": "string" },
                    "fields": { "type": "object", "additionalProperties": { "type": "string" }, "description": "Each invalid field with its reason (422 only)." }
                } }
            },
            "responses": {
                "Unauthorized": { "description": "Missing or wrong API key", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                "Invalid": { "description": "Validation failed; nothing was written", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
            }
        },
        "paths": {}
    }))
    .into_response()
}
