//! Public pages and operational endpoints.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use partnerd_app::{App, AppError};

use crate::context::{Ctx, client_ip, peer_ip};
use crate::errors::WebResult;
use crate::views::{HomePage, TermsPage, render};

pub async fn home(ctx: Ctx) -> Response {
    render(&HomePage {
        layout: ctx.layout("Partner program", Vec::new()),
        commission_rate: ctx.settings.commission_rate,
        cookie_days: ctx.settings.cookie_days,
    })
}

pub async fn terms(State(app): State<App>, ctx: Ctx) -> WebResult<Response> {
    let terms = app.store.current_terms().await.map_err(AppError::from)?;
    Ok(render(&TermsPage {
        layout: ctx.layout("Terms and Conditions", Vec::new()),
        terms,
        must_accept: false,
    }))
}

/// The stylesheet is compiled into the binary: no files to deploy, and every
/// node serves the same one.
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../assets/app.css"),
    )
        .into_response()
}

/// The partner panel's small script (live link preview, copy buttons), compiled
/// in like the stylesheet. Pages work without it.
pub async fn panel_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../assets/panel.js"),
    )
        .into_response()
}

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the database answers.
pub async fn readyz(State(app): State<App>) -> Response {
    match app.store.ping().await {
        Ok(()) => "ready\n".into_response(),
        Err(err) => {
            tracing::warn!(%err, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

/// Prometheus metrics: open from loopback, elsewhere behind the configured token.
pub async fn metrics(
    State(app): State<App>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Response {
    let ip = client_ip(&app, &headers, peer_ip(request.extensions()));
    if !ip.is_loopback() {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let allowed = match (&app.config.metrics_token, sent) {
            (Some(token), Some(sent)) => {
                partnerd_app::crypto::constant_time_eq(token.expose(), sent)
            }
            _ => false,
        };
        if !allowed {
            return (StatusCode::UNAUTHORIZED, "metrics need a bearer token\n").into_response();
        }
    }
    let partners = app
        .store
        .list_partners(&Default::default())
        .await
        .map(|p| p.total)
        .unwrap_or(-1);
    let up = i32::from(app.store.ping().await.is_ok());
    let body = format!(
        "# HELP partnerd_up Whether the database answers.\n# TYPE partnerd_up gauge\npartnerd_up {up}\n\
         # HELP partnerd_partners Active partners.\n# TYPE partnerd_partners gauge\npartnerd_partners {partners}\n\
         # HELP partnerd_build_info Build information.\n# TYPE partnerd_build_info gauge\npartnerd_build_info{{version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
