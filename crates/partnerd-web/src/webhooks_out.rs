//! The console's outbound webhooks (issue 4 part 6): admins list endpoints,
//! add one (URL, description, event types, and whether a private or loopback
//! target is allowed), read its signing secret, rotate it, enable or disable
//! the endpoint, send a test event, and see recent deliveries with every
//! attempt, resending one with the same `webhook-id`. Admins only
//! (`Action::AdministerProgram`). (`webhooks.rs` is Stripe's, inbound.)

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use partnerd_app::webhooks::{DeliveryWithAttempts, EVENT_TYPES, EndpointInput};
use partnerd_app::{App, AppError};
use partnerd_domain::policy::Action;
use partnerd_store::webhooks_sql::WebhookEndpoint;

use crate::context::{Ctx, flash_cookie};
use crate::errors::WebResult;
use crate::views::{Layout, admin_nav, render};

/// How many recent deliveries the endpoint page shows.
const RECENT_DELIVERIES: i64 = 25;

/// One event type's checkbox on the form.
pub struct EventTypeChoice {
    pub name: &'static str,
    pub description: &'static str,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "admin_webhooks.html")]
pub struct AdminWebhooksPage {
    pub layout: Layout,
    pub endpoints: Vec<WebhookEndpoint>,
    pub event_types: Vec<EventTypeChoice>,
    pub errors: BTreeMap<String, String>,
    pub url: String,
    pub description: String,
    pub allow_private: bool,
}

#[derive(Template)]
#[template(path = "admin_webhooks_endpoint.html")]
pub struct AdminWebhookEndpointPage {
    pub layout: Layout,
    pub endpoint: WebhookEndpoint,
    pub deliveries: Vec<DeliveryWithAttempts>,
}

fn flash_redirect(ctx: &Ctx, to: &str, message: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        flash_cookie("success", message, ctx.https),
    );
    response
}

fn choices(checked: &BTreeSet<String>) -> Vec<EventTypeChoice> {
    EVENT_TYPES
        .iter()
        .map(|(name, description)| EventTypeChoice {
            name,
            description,
            checked: checked.contains(*name),
        })
        .collect()
}

async fn list_page(
    app: &App,
    ctx: &Ctx,
    errors: BTreeMap<String, String>,
    input: EndpointInput,
) -> WebResult<Response> {
    let endpoints = app
        .store
        .list_webhook_endpoints()
        .await
        .map_err(AppError::from)?;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    // A fresh form offers every event type; a refused one keeps the admin's choice.
    let checked: BTreeSet<String> = if errors.is_empty() {
        EVENT_TYPES.iter().map(|(n, _)| (*n).to_owned()).collect()
    } else {
        input.event_types.iter().cloned().collect()
    };
    let page = AdminWebhooksPage {
        layout: ctx.layout("Webhooks", admin_nav(&ctx.path, true)),
        endpoints,
        event_types: choices(&checked),
        errors,
        url: input.url,
        description: input.description,
        allow_private: input.allow_private,
    };
    Ok((status, render(&page)).into_response())
}

/// `GET /admin/webhooks`: the endpoints and the form to add one.
pub async fn list(State(app): State<App>, ctx: Ctx) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    list_page(&app, &ctx, BTreeMap::new(), EndpointInput::default()).await
}

/// `POST /admin/webhooks`: adds an endpoint, or shows the form again with
/// each field's error (nothing written).
pub async fn create(
    State(app): State<App>,
    ctx: Ctx,
    Form(fields): Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    let mut input = EndpointInput::default();
    for (name, value) in fields {
        match name.as_str() {
            "url" => input.url = value,
            "description" => input.description = value,
            "event_types" => input.event_types.push(value),
            "allow_private" => input.allow_private = !value.is_empty(),
            _ => {}
        }
    }
    match app
        .create_webhook_endpoint(&ctx.who()?.actor_label(), &input)
        .await
    {
        Ok(endpoint) => Ok(flash_redirect(
            &ctx,
            &format!("/admin/webhooks/{}", endpoint.id),
            "The endpoint was added. Give its signing secret to the receiver.",
        )),
        Err(AppError::Invalid(errors)) => list_page(&app, &ctx, errors.into_map(), input).await,
        Err(other) => Err(other.into()),
    }
}

/// `GET /admin/webhooks/{id}`: the endpoint, its secret and recent deliveries.
pub async fn endpoint(
    State(app): State<App>,
    ctx: Ctx,
    Path(id): Path<i64>,
) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    let endpoint = app
        .store
        .get_webhook_endpoint(id)
        .await
        .map_err(AppError::from)?;
    let deliveries = app.recent_webhook_deliveries(id, RECENT_DELIVERIES).await?;
    Ok(render(&AdminWebhookEndpointPage {
        layout: ctx.layout("Webhook endpoint", admin_nav("/admin/webhooks", true)),
        endpoint,
        deliveries,
    }))
}

/// `POST /admin/webhooks/{id}/rotate`: a new secret; the old one signs for a day more.
pub async fn rotate(State(app): State<App>, ctx: Ctx, Path(id): Path<i64>) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    app.rotate_webhook_secret(&ctx.who()?.actor_label(), id)
        .await?;
    Ok(flash_redirect(
        &ctx,
        &format!("/admin/webhooks/{id}"),
        "A new secret was made. Deliveries carry signatures with both secrets for 24 hours.",
    ))
}

async fn set_enabled(app: &App, ctx: &Ctx, id: i64, enabled: bool) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    app.set_webhook_endpoint_enabled(&ctx.who()?.actor_label(), id, enabled)
        .await?;
    let message = if enabled {
        "The endpoint is enabled; waiting deliveries go out now."
    } else {
        "The endpoint is disabled; nothing is sent to it."
    };
    Ok(flash_redirect(
        ctx,
        &format!("/admin/webhooks/{id}"),
        message,
    ))
}

/// `POST /admin/webhooks/{id}/enable`.
pub async fn enable(State(app): State<App>, ctx: Ctx, Path(id): Path<i64>) -> WebResult<Response> {
    set_enabled(&app, &ctx, id, true).await
}

/// `POST /admin/webhooks/{id}/disable`.
pub async fn disable(State(app): State<App>, ctx: Ctx, Path(id): Path<i64>) -> WebResult<Response> {
    set_enabled(&app, &ctx, id, false).await
}

/// `POST /admin/webhooks/{id}/test`: queues a `webhook.test` event.
pub async fn send_test(
    State(app): State<App>,
    ctx: Ctx,
    Path(id): Path<i64>,
) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    app.send_test_webhook(&ctx.who()?.actor_label(), id).await?;
    Ok(flash_redirect(
        &ctx,
        &format!("/admin/webhooks/{id}"),
        "A test event was queued; it goes out within seconds.",
    ))
}

/// `POST /admin/webhook-deliveries/{id}/resend`: the same event again, same `webhook-id`.
pub async fn resend(State(app): State<App>, ctx: Ctx, Path(id): Path<i64>) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    let delivery = app
        .resend_webhook_delivery(&ctx.who()?.actor_label(), id)
        .await?;
    Ok(flash_redirect(
        &ctx,
        &format!("/admin/webhooks/{}", delivery.endpoint_id),
        "The delivery goes out again, with the same webhook-id.",
    ))
}
