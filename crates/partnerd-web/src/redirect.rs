//! `GET /r/{partner_id}` and `GET /r/{partner_id}/{slug}`: the tracking
//! redirect (R-AFF-3..5), the hottest path in the product. It runs outside the
//! HTML context middleware: no session, settings or CSRF work per request.

use std::net::IpAddr;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use partnerd_app::App;
use partnerd_app::tracking::ClickRequest;

use crate::context::{client_ip, peer_ip, read_cookie, session_cookie_name};

/// The referral cookie's name.
pub const REFERRAL_COOKIE: &str = "partnerd_ref";
/// Queries longer than this are not read: the visitor still gets the safe redirect.
const MAX_QUERY: usize = 4096;

pub async fn default_link(
    State(app): State<App>,
    Path(partner_id): Path<String>,
    query: RawQuery,
    request: Request,
) -> Response {
    let peer = peer_ip(request.extensions());
    redirect(app, partner_id, None, query.0, request.headers(), peer).await
}

pub async fn campaign_link(
    State(app): State<App>,
    Path((partner_id, slug)): Path<(String, String)>,
    query: RawQuery,
    request: Request,
) -> Response {
    let peer = peer_ip(request.extensions());
    redirect(
        app,
        partner_id,
        Some(slug),
        query.0,
        request.headers(),
        peer,
    )
    .await
}

/// What the request says about the click: query parameters, user agent,
/// referrer, prefetch hints, the client's network and, for a partner's own
/// browser, who is signed in.
async fn click_request(
    app: &App,
    public_id: String,
    slug: Option<String>,
    query: Option<&str>,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> ClickRequest {
    let mut click = ClickRequest {
        public_id,
        slug,
        ..ClickRequest::default()
    };
    // Longer queries are not read: the visitor still gets the safe redirect.
    if let Some(query) = query.filter(|q| q.len() <= MAX_QUERY) {
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match key.as_ref() {
                "utm_term" => &mut click.utm_term,
                "sub1" => &mut click.subs[0],
                "sub2" => &mut click.subs[1],
                "sub3" => &mut click.subs[2],
                "sub4" => &mut click.subs[3],
                "sub5" => &mut click.subs[4],
                _ => continue,
            };
            *slot = Some(value.into_owned());
        }
    }
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    click.user_agent = text(header::USER_AGENT);
    click.referrer = text(header::REFERER);
    // Browsers announce speculative loads; those are not a person's click.
    click.prefetch = ["sec-purpose", "purpose", "x-moz", "x-purpose"]
        .iter()
        .any(|name| {
            headers
                .get(*name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| {
                    v.to_ascii_lowercase().contains("prefetch") || v.contains("preview")
                })
        });
    click.ip = Some(client_ip(app, headers, peer));
    // Only a partner's own browser carries a session cookie here; looking it up
    // costs a read, so only then (R-AFF-7: clicks on one's own link).
    if let Some(token) = read_cookie(headers, session_cookie_name(app.config.is_https()))
        && let Ok(Some(partnerd_app::accounts::SignedIn::Partner { partner, .. })) =
            app.signed_in(&token).await
    {
        click.signed_in_partner = Some(partner.public_id);
    }
    click
}

/// The redirect itself, for the routes above and for the lane of [`crate::Service`].
pub(crate) async fn redirect(
    app: App,
    public_id: String,
    slug: Option<String>,
    query: Option<String>,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> Response {
    let click = click_request(&app, public_id, slug, query.as_deref(), headers, peer).await;
    let answer = match app.track_click(click).await {
        Ok(answer) => answer,
        Err(err) => {
            tracing::error!(%err, "tracking a click failed");
            return (StatusCode::SERVICE_UNAVAILABLE, "try again in a moment\n").into_response();
        }
    };
    let Ok(location) = HeaderValue::try_from(answer.location) else {
        // A URL serialization is always a valid header value; never a 302 without one.
        tracing::error!("the landing URL is not a valid Location header");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::FOUND;
    let headers = response.headers_mut();
    // Room for these three, the length and the security headers at once: a map grown one
    // insert at a time rehashes twice on the way.
    headers.reserve(12);
    headers.insert(header::LOCATION, location);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(token) = answer.token {
        use std::fmt::Write as _;
        // R-AFF-3: lasts exactly cookie_days. Readable by the vendor's own pages
        // (not HttpOnly) so its sign-up form can pass it on.
        let mut cookie = String::with_capacity(192);
        let _ = write!(
            cookie,
            "{REFERRAL_COOKIE}={token}; Max-Age={}; Path=/; SameSite=Lax",
            answer.cookie_days * 86_400
        );
        if let Some(domain) = app.config.cookie_domain.as_deref() {
            let _ = write!(cookie, "; Domain={domain}");
        }
        if app.config.is_https() {
            cookie.push_str("; Secure");
        }
        if let Ok(value) = HeaderValue::try_from(cookie) {
            headers.insert(header::SET_COOKIE, value);
        }
    }
    response
}

/// `GET /t.js`: the tracking script for links straight to the vendor's site.
pub async fn script() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/javascript; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../assets/t.js"),
    )
        .into_response()
}

/// `GET /t/click?a={partner_id}&c={slug}&utm_term=…`: the click the script
/// records for a link that points straight at the vendor's site. Answers the
/// token for the script to keep in a first-party cookie. Any site may call it,
/// without credentials.
pub async fn script_click(State(app): State<App>, query: RawQuery, request: Request) -> Response {
    let query = query.0.unwrap_or_default();
    let param = |name: &str| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let mut headers = request.headers().clone();
    if let Some(referrer) = param("r").and_then(|r| HeaderValue::from_str(&r).ok()) {
        headers.insert(header::REFERER, referrer);
    }
    let (partner, slug) = (param("a").unwrap_or_default(), param("c"));
    let click = click_request(
        &app,
        partner,
        slug,
        Some(&query),
        &headers,
        peer_ip(request.extensions()),
    )
    .await;
    let body = match app.track_click(click).await {
        Ok(answer) => {
            serde_json::json!({ "token": answer.token, "cookie_days": answer.cookie_days })
        }
        Err(err) => {
            tracing::error!(%err, "tracking a script click failed");
            serde_json::json!({ "token": null })
        }
    };
    (
        [
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        axum::Json(body),
    )
        .into_response()
}
