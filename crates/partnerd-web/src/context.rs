//! Per-request context for the HTML surfaces, built once by a middleware:
//! who is signed in, the CSRF token, the CSP nonce, the client's hashed
//! network, the program settings and a one-shot flash message.
//!
//! The middleware is also where every state-changing form is checked for its
//! CSRF token, so no handler can forget it, and where error pages are
//! rendered with the program's layout.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use askama::Template;
use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use partnerd_app::App;
use partnerd_app::accounts::SignedIn;
use partnerd_app::crypto::{constant_time_eq, random_token};
use partnerd_domain::ProgramSettings;
use partnerd_domain::policy::{Action, Actor, authorize};

use crate::errors::{ErrorPage, WebError, WebResult};
use crate::views::{Flash, Layout, LayoutUser, MessagePage, NavItem};

/// Largest form body accepted (uploads get their own limit where they exist).
const MAX_FORM_BYTES: usize = 256 * 1024;

#[derive(Clone)]
pub struct Ctx {
    pub signed_in: Option<SignedIn>,
    /// The session cookie's value, when signed in.
    pub session_token: Option<String>,
    pub csrf_token: String,
    pub nonce: String,
    /// Keyed daily hash of the client's address (never the address).
    pub network: String,
    pub settings: Arc<ProgramSettings>,
    pub flash: Option<Flash>,
    pub path: String,
    pub https: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Ctx>()
            .cloned()
            .ok_or_else(|| WebError::Internal("no request context".into()))
    }
}

impl Ctx {
    pub fn actor(&self) -> Actor {
        match &self.signed_in {
            None => Actor::Anonymous,
            Some(SignedIn::Partner { partner, .. }) => Actor::Partner {
                partner_id: partner.id,
            },
            Some(SignedIn::Staff { staff, .. }) => Actor::Staff {
                staff_id: staff.id,
                role: staff.role(),
            },
        }
    }

    /// The one access check every handler makes (see `partnerd_domain::policy`).
    pub fn authorize(&self, action: Action) -> WebResult<()> {
        authorize(self.actor(), action)
            .map_err(|denied| WebError::denied(denied, self.path.starts_with("/admin"), &self.path))
    }

    /// The signed-in partner, for every panel page: the policy check first, then a
    /// partner who has not accepted the current Terms is sent to accept them (R-ACC-5).
    pub fn partner(&self) -> WebResult<&partnerd_store::Partner> {
        self.authorize(Action::UsePanel)?;
        match self.who()? {
            SignedIn::Partner {
                terms_outdated: true,
                ..
            } => Err(WebError::Redirect("/terms/accept".into())),
            SignedIn::Partner { partner, .. } => Ok(partner),
            SignedIn::Staff { .. } => Err(WebError::Forbidden),
        }
    }

    pub fn who(&self) -> WebResult<&SignedIn> {
        self.signed_in.as_ref().ok_or(WebError::SignIn {
            staff: self.path.starts_with("/admin"),
            next: self.path.clone(),
        })
    }

    pub fn layout(&self, title: &str, nav: Vec<NavItem>) -> Layout {
        let user = self.signed_in.as_ref().map(|who| LayoutUser {
            name: who.name().to_owned(),
            kind: match who {
                SignedIn::Partner { .. } => "partner".into(),
                SignedIn::Staff { staff, .. } => staff.role.clone(),
            },
        });
        Layout {
            program_name: self.settings.program_name.clone(),
            logo_url: self.settings.logo_url.clone(),
            brand_css: self.settings.brand_css(),
            nonce: self.nonce.clone(),
            csrf_token: self.csrf_token.clone(),
            user,
            nav,
            flash: self.flash.clone(),
            title: title.to_owned(),
        }
    }
}

pub fn session_cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-partnerd_session"
    } else {
        "partnerd_session"
    }
}

fn csrf_cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-partnerd_csrf"
    } else {
        "partnerd_csrf"
    }
}

const FLASH_COOKIE: &str = "partnerd_flash";

/// `Set-Cookie` for a host-only, HttpOnly, SameSite=Lax cookie (Secure over HTTPS).
pub fn cookie(name: &str, value: &str, max_age_seconds: i64, https: bool) -> HeaderValue {
    let secure = if https { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={max_age_seconds}; HttpOnly; SameSite=Lax{secure}"
    ))
    .expect("cookie values are URL-safe tokens")
}

pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A flash message for the next page, carried in a short-lived cookie.
pub fn flash_cookie(kind: &str, message: &str, https: bool) -> HeaderValue {
    let encoded: String =
        url::form_urlencoded::byte_serialize(format!("{kind}:{message}").as_bytes()).collect();
    cookie(FLASH_COOKIE, &encoded, 60, https)
}

/// The client's address: the peer, unless the peer is a trusted proxy, in
/// which case the right-most address in `X-Forwarded-For` that is not itself
/// a trusted proxy.
pub fn client_ip(app: &App, headers: &HeaderMap, peer: Option<IpAddr>) -> IpAddr {
    let peer = peer.unwrap_or(IpAddr::from([127, 0, 0, 1]));
    if !app.config.is_trusted_proxy(peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !app.config.is_trusted_proxy(*ip))
        .unwrap_or(peer)
}

pub fn peer_ip(request_extensions: &axum::http::Extensions) -> Option<IpAddr> {
    request_extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Builds the context, checks CSRF on unsafe methods, runs the handler and
/// renders error pages.
pub async fn html_context(State(app): State<App>, request: Request, next: Next) -> Response {
    match build_and_run(app, request, next).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn build_and_run(app: App, request: Request, next: Next) -> WebResult<Response> {
    let https = app.config.is_https();
    let (mut parts, body) = request.into_parts();
    let settings = Arc::new(app.settings().await?);
    let session_token = read_cookie(&parts.headers, session_cookie_name(https));
    let signed_in = match &session_token {
        Some(token) => app.signed_in(token).await?,
        None => None,
    };
    let anonymous_csrf =
        read_cookie(&parts.headers, csrf_cookie_name(https)).filter(|t| t.len() >= 32);
    let mut new_csrf_cookie = None;
    let csrf_token = match (&signed_in, &anonymous_csrf) {
        (Some(who), _) => who.csrf_token().to_owned(),
        (None, Some(token)) => token.clone(),
        (None, None) => {
            let token = random_token();
            new_csrf_cookie = Some(token.clone());
            token
        }
    };
    let flash = read_cookie(&parts.headers, FLASH_COOKIE).and_then(|raw| {
        let decoded: String = url::form_urlencoded::parse(format!("v={raw}").as_bytes())
            .next()?
            .1
            .into_owned();
        let (kind, message) = decoded.split_once(':')?;
        matches!(kind, "success" | "error" | "info").then(|| Flash {
            kind: kind.into(),
            message: message.into(),
        })
    });
    let ip = client_ip(&app, &parts.headers, peer_ip(&parts.extensions));
    let ctx = Ctx {
        signed_in,
        session_token: session_token.clone(),
        csrf_token: csrf_token.clone(),
        nonce: random_token(),
        network: app.keys.network_hash(ip, app.now()),
        settings,
        flash: flash.clone(),
        path: parts.uri.path().to_owned(),
        https,
    };
    // A refused form gets its error page (below) like any handler's error, with
    // the layout, the CSP and a CSRF cookie for the next try.
    let mut rejected = None;
    let multipart = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let body = if is_unsafe(&parts.method) && multipart {
        // Uploads are streamed to their handler, so their token travels in the
        // form's action URL (`?csrf_token=`); the handler's own body limit applies.
        let sent = parts
            .uri
            .query()
            .and_then(|q| {
                url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "csrf_token")
            })
            .map(|(_, v)| v.into_owned());
        let valid = sent.is_some_and(|sent| constant_time_eq(&sent, &csrf_token))
            && anonymous_or_session_matches(&ctx, &anonymous_csrf);
        if !valid {
            rejected = Some(WebError::CsrfFailed);
        }
        body
    } else if is_unsafe(&parts.method) {
        match to_bytes(body, MAX_FORM_BYTES).await {
            Err(_) => {
                rejected = Some(WebError::TooLarge);
                Body::empty()
            }
            Ok(bytes) => {
                let sent = url::form_urlencoded::parse(&bytes)
                    .find(|(k, _)| k == "csrf_token")
                    .map(|(_, v)| v.into_owned());
                let valid = sent.is_some_and(|sent| constant_time_eq(&sent, &csrf_token))
                    && anonymous_or_session_matches(&ctx, &anonymous_csrf);
                if !valid {
                    rejected = Some(WebError::CsrfFailed);
                }
                Body::from(bytes)
            }
        }
    } else {
        body
    };
    let mut response = match rejected {
        Some(err) => err.into_response(),
        None => {
            parts.extensions.insert(ctx.clone());
            next.run(Request::from_parts(parts, body)).await
        }
    };
    if let Some(page) = response.extensions().get::<ErrorPage>().cloned() {
        let view = MessagePage {
            layout: ctx.layout(&page.heading, Vec::new()),
            heading: page.heading,
            body: page.body,
            link: Some(("/".into(), "Go to the home page".into())),
        };
        let status = page.status;
        let headers = response.headers().clone();
        response = (
            status,
            Html(
                view.render()
                    .map_err(|e| WebError::Internal(e.to_string()))?,
            ),
        )
            .into_response();
        for (name, value) in headers.iter() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                response.headers_mut().append(name, value.clone());
            }
        }
    }
    let headers = response.headers_mut();
    if let Some(token) = new_csrf_cookie {
        headers.append(
            header::SET_COOKIE,
            cookie(csrf_cookie_name(https), &token, 86_400, https),
        );
    }
    if flash.is_some()
        && !headers
            .get_all(header::SET_COOKIE)
            .iter()
            .any(|v| v.as_bytes().starts_with(FLASH_COOKIE.as_bytes()))
    {
        headers.append(header::SET_COOKIE, cookie(FLASH_COOKIE, "", 0, https));
    }
    let csp = format!(
        "default-src 'self'; script-src 'self' 'nonce-{n}'; style-src 'self' 'nonce-{n}'; img-src 'self' https: data:; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
        n = ctx.nonce
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&csp).expect("nonce is URL-safe"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Signed-in forms carry the session's token; anonymous ones the cookie's.
/// Either way the token was checked above; this only makes sure an anonymous
/// form really came with its cookie.
fn anonymous_or_session_matches(ctx: &Ctx, anonymous_csrf: &Option<String>) -> bool {
    ctx.signed_in.is_some() || anonymous_csrf.is_some()
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}
