//! Stripe in: `POST /webhooks/stripe` (CONTRACT.md) and the console's Stripe
//! page, where admins see the endpoint to give Stripe and save signing secrets.
//!
//! The webhook sits outside the HTML middleware: Stripe signs its deliveries,
//! it has no session or CSRF token. The handler reads the raw body (at most
//! [`MAX_BODY_BYTES`]) because the signature covers the exact bytes, and
//! answers `200 {"received": true}` only after everything the event implies
//! has committed, so Stripe's retries cover any failure before that. It logs
//! the reason of a refusal, never the header, a secret or the body.

use axum::Form;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Redirect, Response};
use partnerd_app::stripe::SIGNATURE_HEADER;
use partnerd_app::stripe_events::StripeWebhookError;
use partnerd_app::{App, AppError};
use partnerd_domain::policy::Action;
use partnerd_store::stripe_sql::StripeSigningSecret;
use serde::Deserialize;
use serde_json::json;

use crate::context::{Ctx, flash_cookie};
use crate::errors::{WebError, WebResult};
use crate::views::{Layout, admin_nav, render};

pub use partnerd_app::stripe_events::MAX_BODY_BYTES;

/// The events to subscribe the endpoint to, as the console and README list them.
pub const STRIPE_EVENTS: [&str; 8] = [
    "checkout.session.completed",
    "customer.created",
    "invoice.paid",
    "invoice_payment.paid",
    "charge.refunded",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
    "customer.subscription.deleted",
];

fn json_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// `POST /webhooks/stripe`.
pub async fn stripe_webhook(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            tracing::warn!(status = %rejection.status(), "Stripe webhook body refused");
            return json_error(
                rejection.status(),
                &format!("the body could not be read (at most {MAX_BODY_BYTES} bytes)"),
            );
        }
    };
    // A header that is not visible ASCII cannot be a real signature: treated as absent.
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok());
    match app.handle_stripe_webhook(&body, signature).await {
        Ok(_) => (StatusCode::OK, Json(json!({ "received": true }))).into_response(),
        Err(err) => webhook_error(err),
    }
}

fn webhook_error(err: StripeWebhookError) -> Response {
    let message = err.to_string();
    match err {
        StripeWebhookError::NotConfigured => {
            tracing::warn!(error = %message, "Stripe webhook refused");
            json_error(StatusCode::SERVICE_UNAVAILABLE, &message)
        }
        StripeWebhookError::Signature(_) | StripeWebhookError::Event(_) => {
            tracing::warn!(error = %message, "Stripe webhook refused");
            json_error(StatusCode::BAD_REQUEST, &message)
        }
        StripeWebhookError::Refused(_) => {
            tracing::warn!(error = %message, "Stripe event refused by the ledger");
            json_error(StatusCode::UNPROCESSABLE_ENTITY, &message)
        }
        StripeWebhookError::App(_) => {
            tracing::error!(error = %message, "Stripe webhook failed");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the event could not be processed; Stripe will retry",
            )
        }
    }
}

// --- the console ---------------------------------------------------------------------

#[derive(askama::Template)]
#[template(path = "admin_stripe.html")]
pub struct AdminStripePage {
    pub layout: Layout,
    /// The URL to give Stripe.
    pub endpoint: String,
    pub events: Vec<&'static str>,
    /// How many secrets `PARTNERD_STRIPE_WEBHOOK_SECRET` holds.
    pub configured: usize,
    /// Saved secrets: only their hints are rendered.
    pub secrets: Vec<StripeSigningSecret>,
    pub error: Option<String>,
}

async fn stripe_page(app: &App, ctx: &Ctx, error: Option<String>) -> WebResult<Response> {
    let secrets = app
        .store
        .stripe_signing_secrets()
        .await
        .map_err(AppError::from)?;
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = AdminStripePage {
        layout: ctx.layout("Stripe", admin_nav(&ctx.path, true)),
        endpoint: format!("{}/webhooks/stripe", app.config.public_url()),
        events: STRIPE_EVENTS.to_vec(),
        configured: app.configured_stripe_secrets(),
        secrets,
        error,
    };
    Ok((status, render(&page)).into_response())
}

fn flash_redirect(ctx: &Ctx, message: &str) -> Response {
    let mut response = Redirect::to("/admin/stripe").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        flash_cookie("success", message, ctx.https),
    );
    response
}

/// `GET /admin/stripe`.
pub async fn stripe_settings(State(app): State<App>, ctx: Ctx) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    stripe_page(&app, &ctx, None).await
}

#[derive(Debug, Deserialize)]
pub struct SecretForm {
    #[serde(default)]
    secret: String,
}

/// `POST /admin/stripe/secrets`: the form comes back with the error (and an
/// empty field: a secret is never echoed) when the value is refused.
pub async fn add_signing_secret(
    State(app): State<App>,
    ctx: Ctx,
    Form(form): Form<SecretForm>,
) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    match app
        .add_stripe_signing_secret(&ctx.who()?.actor_label(), &form.secret)
        .await
    {
        Ok(saved) => Ok(flash_redirect(
            &ctx,
            &format!("Signing secret …{} saved.", saved.hint),
        )),
        Err(AppError::Invalid(errors)) => {
            let reason = errors
                .get("secret")
                .map_or_else(|| errors.to_string(), str::to_owned);
            // "is already taken" from the unique index reads oddly for a secret.
            let reason = if reason == "is already taken" {
                "this secret is already saved".to_owned()
            } else {
                reason
            };
            stripe_page(&app, &ctx, Some(reason)).await
        }
        Err(other) => Err(other.into()),
    }
}

/// `POST /admin/stripe/secrets/{id}/delete`.
pub async fn delete_signing_secret(
    State(app): State<App>,
    ctx: Ctx,
    Path(id): Path<i64>,
) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    match app
        .delete_stripe_signing_secret(&ctx.who()?.actor_label(), id)
        .await
    {
        Ok(()) => Ok(flash_redirect(&ctx, "Signing secret deleted.")),
        Err(AppError::NotFound) => Err(WebError::NotFound),
        Err(other) => Err(other.into()),
    }
}
