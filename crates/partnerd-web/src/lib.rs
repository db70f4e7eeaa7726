//! partnerd's HTTP surfaces on axum: public pages, the partner panel, the
//! admin console, the integration API and the operational endpoints.
//!
//! Every HTML route runs behind [`context::html_context`] (session, CSRF,
//! error pages) and every response behind [`security_headers`]. Access is
//! decided only by `partnerd_domain::policy`, through `Ctx::authorize` or the
//! API's key check; `tests/it/access.rs` walks every route with every role.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};
use partnerd_app::App;

pub mod admin;
pub mod api;
pub mod auth;
pub mod chart;
pub mod context;
pub mod errors;
pub mod exports;
pub mod panel;
pub mod panel_money;
pub mod payouts;
pub mod public;
pub mod redirect;
pub mod reports;
pub mod resources;
pub mod views;
pub mod webhooks;
pub mod webhooks_out;

/// Every route of the product. The access-control test enumerates this list.
pub fn router(app: App) -> Router {
    let https = app.config.is_https();
    let html = Router::new()
        .route("/", get(public::home))
        .route("/terms", get(public::terms))
        .route("/signup", get(auth::signup_form).post(auth::signup))
        .route("/login", get(auth::login_form).post(auth::login))
        .route(
            "/admin/login",
            get(auth::staff_login_form).post(auth::staff_login),
        )
        .route("/logout", post(auth::logout))
        .route(
            "/password-reset",
            get(auth::reset_request_form).post(auth::reset_request),
        )
        .route(
            "/password-reset/{token}",
            get(auth::reset_form).post(auth::reset),
        )
        .route(
            "/terms/accept",
            get(panel::terms_form).post(panel::accept_terms),
        )
        .route("/panel", get(panel::home))
        .route("/panel/account", get(panel::account))
        .route("/panel/account/profile", post(panel::update_profile))
        .route("/panel/account/email", post(panel::change_email))
        .route("/panel/account/password", post(panel::change_password))
        .route("/panel/account/delete", post(panel::delete_account))
        .route(
            "/panel/campaigns",
            get(reports::campaigns).post(reports::create_campaign),
        )
        .route("/panel/report", get(reports::partner_report))
        .route("/panel/report.csv", get(reports::partner_report_csv))
        .route("/admin/report", get(reports::program_report))
        .route(
            "/admin/partners/{id}/report",
            get(reports::partner_report_for_staff),
        )
        .route("/panel/money", get(panel_money::money))
        .route("/panel/payouts", get(panel_money::payouts))
        .route("/panel/payouts/profile", post(panel_money::save_profile))
        .route("/panel/payouts/withdraw", post(panel_money::withdraw))
        .route("/panel/statements", get(panel_money::statements))
        .route("/panel/statements/{month}", get(panel_money::statement))
        .route("/admin/exports", get(exports::index))
        .route("/admin/exports/commissions.csv", get(exports::commissions))
        .route("/admin/exports/payouts.csv", get(exports::payouts))
        .route("/panel/resources", get(resources::panel_list))
        .route(
            "/panel/resources/{id}/download",
            get(resources::panel_download),
        )
        .route(
            "/admin/resources",
            get(resources::admin_list)
                .post(resources::admin_upload)
                .layer(axum::extract::DefaultBodyLimit::max(3 * 1024 * 1024)),
        )
        .route(
            "/admin/resources/{id}/archive",
            post(resources::admin_archive),
        )
        .route("/admin", get(admin::home))
        .route("/admin/partners", get(admin::partners))
        .route("/admin/partners/{id}", get(admin::partner))
        .route("/admin/partners/{id}/manager", post(admin::reassign))
        .route("/admin/partners/{id}/remove", post(admin::remove))
        .route("/admin/staff", get(admin::staff).post(admin::create_staff))
        .route("/admin/audit", get(admin::audit))
        .route("/admin/outbox", get(admin::outbox))
        .route("/admin/outbox/{id}", get(admin::outbox_email))
        .route(
            "/admin/settings",
            get(admin::settings).post(admin::save_settings),
        )
        .route("/admin/terms", get(admin::terms).post(admin::publish_terms))
        .route("/admin/withdrawals", get(payouts::list))
        .route("/admin/withdrawals.csv", get(payouts::export))
        .route("/admin/withdrawals/{id}", get(payouts::show))
        .route("/admin/withdrawals/{id}/approve", post(payouts::approve))
        .route("/admin/withdrawals/{id}/reject", post(payouts::reject))
        .route("/admin/withdrawals/{id}/mark", post(payouts::mark))
        .route("/admin/stripe", get(webhooks::stripe_settings))
        .route("/admin/stripe/secrets", post(webhooks::add_signing_secret))
        .route(
            "/admin/stripe/secrets/{id}/delete",
            post(webhooks::delete_signing_secret),
        )
        .route("/admin/account", get(admin::account))
        .route("/admin/account/password", post(admin::change_password))
        .route(
            "/admin/webhooks",
            get(webhooks_out::list).post(webhooks_out::create),
        )
        .route("/admin/webhooks/{id}", get(webhooks_out::endpoint))
        .route("/admin/webhooks/{id}/rotate", post(webhooks_out::rotate))
        .route("/admin/webhooks/{id}/enable", post(webhooks_out::enable))
        .route("/admin/webhooks/{id}/disable", post(webhooks_out::disable))
        .route("/admin/webhooks/{id}/test", post(webhooks_out::send_test))
        .route(
            "/admin/webhook-deliveries/{id}/resend",
            post(webhooks_out::resend),
        )
        .fallback(html_not_found)
        .layer(middleware::from_fn_with_state(
            app.clone(),
            context::html_context,
        ));
    let api = Router::new()
        .route("/partners", post(api::create_partner))
        .route("/partners/{id}/campaigns", post(api::create_campaign))
        .route("/partners/{id}/report", get(api::report))
        .route("/signups", post(api::record_signup))
        .route("/payments", post(api::record_payment))
        .route("/refunds", post(api::record_refund))
        .route("/chargebacks", post(api::record_chargeback))
        .route("/subscriptions/{id}/cancel", post(api::cancel_subscription))
        .route("/partners/{id}/balance", get(api::balance))
        .route("/partners/{id}/commissions", get(api::commissions))
        .route("/partners/{id}/status", get(api::status))
        .route(
            "/customers/{customer_id}/attribution",
            get(api::attribution),
        )
        .fallback(api::not_found)
        .layer(middleware::from_fn_with_state(
            app.clone(),
            api::require_key,
        ));
    Router::new()
        .route("/healthz", get(public::healthz))
        .route("/readyz", get(public::readyz))
        .route("/metrics", get(public::metrics))
        .route("/assets/app.css", get(public::stylesheet))
        .route("/assets/panel.js", get(public::panel_script))
        .route("/r/{partner_id}", get(redirect::default_link))
        .route("/r/{partner_id}/{slug}", get(redirect::campaign_link))
        .route("/resources/{id}/{file}", get(resources::public_file))
        .route("/t.js", get(redirect::script))
        .route("/t/click", get(redirect::script_click))
        // PayPal's events are a few KB, like Stripe's: the same bound.
        .route(
            "/webhooks/paypal",
            post(payouts::paypal_webhook).layer(axum::extract::DefaultBodyLimit::max(
                webhooks::MAX_BODY_BYTES,
            )),
        )
        .route(
            "/webhooks/stripe",
            post(webhooks::stripe_webhook).layer(axum::extract::DefaultBodyLimit::max(
                webhooks::MAX_BODY_BYTES,
            )),
        )
        .route("/api/v1/openapi.json", get(api::openapi))
        .nest("/api/v1", api)
        .merge(html)
        // A plain response map rather than `from_fn`: no boxed `Next` per request
        // on the redirect's hot path.
        .layer(tower::util::MapResponseLayer::new(move |response| {
            security_headers(response, https)
        }))
        .with_state(app)
}

/// What `partnerd serve` runs for every request: the tracking redirect's own
/// lane, then [`router`] for everything else. The test harness sends its
/// requests through it too, so both paths are the ones tested.
#[derive(Clone)]
pub struct Service {
    app: App,
    router: Router,
}

impl Service {
    pub fn new(app: App) -> Self {
        Self {
            router: router(app.clone()),
            app,
        }
    }

    /// Answers `request`, which came from `peer`.
    ///
    /// `GET /r/{partner_id}` and `GET /r/{partner_id}/{slug}` go straight to
    /// the redirect's handler: the router's boxed route future, extension map
    /// and parameter extraction cost the redirect about a tenth of its CPU time
    /// (20.8 against 18.6 µs a request with keep-alive).
    /// Only paths the router would hand over unchanged take the lane (no
    /// percent-escape to decode); the router still holds both routes and
    /// answers every other request, `HEAD` and malformed paths included.
    pub fn call<B>(
        &self,
        mut request: axum::http::Request<B>,
        peer: Option<std::net::SocketAddr>,
    ) -> impl Future<Output = Response> + Send + use<B>
    where
        B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        use futures::future::{Either, FutureExt as _};
        use tower::ServiceExt as _;

        let lane = (request.method() == axum::http::Method::GET)
            .then(|| redirect_lane_path(request.uri().path()))
            .flatten()
            .map(|(partner, slug)| (partner.to_owned(), slug.map(str::to_owned)));
        match lane {
            Some((partner, slug)) => {
                let app = self.app.clone();
                let query = request.uri().query().map(str::to_owned);
                let (parts, _body) = request.into_parts();
                Either::Left(async move {
                    let https = app.config.is_https();
                    let peer = peer.map(|p| p.ip());
                    let mut response =
                        redirect::redirect(app, partner, slug, query, &parts.headers, peer).await;
                    // As the router's route does for a body of known size.
                    if let Some(length) = axum::body::HttpBody::size_hint(response.body()).exact()
                        && !response.headers().contains_key(header::CONTENT_LENGTH)
                    {
                        response
                            .headers_mut()
                            .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
                    }
                    security_headers(response, https)
                })
            }
            None => {
                if let Some(peer) = peer {
                    request
                        .extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                }
                Either::Right(
                    self.router
                        .clone()
                        .oneshot(request)
                        .map(|answer| match answer {
                            Ok(response) => response,
                            Err(never) => match never {},
                        }),
                )
            }
        }
    }
}

/// `(partner_id, slug)` of a redirect path the router would pass to the
/// handler as it is: one or two non-empty segments after `/r/`, no `%`.
fn redirect_lane_path(path: &str) -> Option<(&str, Option<&str>)> {
    let rest = path.strip_prefix("/r/")?;
    if rest.contains('%') {
        return None;
    }
    let mut segments = rest.split('/');
    let partner = segments.next().filter(|s| !s.is_empty())?;
    let slug = match segments.next() {
        None => None,
        Some(slug) if !slug.is_empty() => Some(slug),
        Some(_) => return None,
    };
    segments.next().is_none().then_some((partner, slug))
}

async fn html_not_found() -> errors::WebError {
    errors::WebError::NotFound
}

/// Headers every response carries. HTML pages set their own CSP with a nonce;
/// everything else gets one that allows nothing.
fn security_headers(mut response: Response, https: bool) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
        );
    }
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::redirect_lane_path;

    #[test]
    fn the_redirect_lane_takes_only_paths_the_router_would_pass_unchanged() {
        assert_eq!(redirect_lane_path("/r/Ab3_-x"), Some(("Ab3_-x", None)));
        assert_eq!(
            redirect_lane_path("/r/Ab3_-x/spring-sale-t60"),
            Some(("Ab3_-x", Some("spring-sale-t60")))
        );
        for router_only in [
            "/r/",
            "/r",
            "/r//slug",
            "/r/id/",
            "/r/id/slug/",
            "/r/id/slug/more",
            "/r/i%64",
            "/r/id/sl%75g",
            "/rid",
            "/resources/1/a.png",
            "/t/click",
        ] {
            assert_eq!(redirect_lane_path(router_only), None, "{router_only}");
        }
    }
}
