//! Sign-up, log-in, log-out and password reset (R-ACC-1).

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use partnerd_app::accounts::{AccountKind, NewSessionToken, SignedIn, SignupInput};
use partnerd_app::{App, AppError};
use serde::Deserialize;

use crate::context::{Ctx, cookie, session_cookie_name};
use crate::errors::WebResult;
use crate::views::{LoginPage, ResetFormPage, ResetRequestPage, SignupForm, SignupPage, render};

#[derive(Debug, Deserialize, Default)]
pub struct SignupBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    company: String,
    #[serde(default)]
    website: String,
    #[serde(default)]
    accept_terms: Option<String>,
}

async fn signup_page(
    app: &App,
    ctx: &Ctx,
    form: SignupForm,
    errors: BTreeMap<String, String>,
) -> WebResult<SignupPage> {
    let terms_version = app
        .store
        .current_terms()
        .await
        .map_err(AppError::from)?
        .map_or(0, |t| t.version);
    Ok(SignupPage {
        layout: ctx.layout("Join the program", Vec::new()),
        form,
        errors,
        min_password_len: ctx.settings.password_min_length,
        terms_version,
    })
}

pub async fn signup_form(State(app): State<App>, ctx: Ctx) -> WebResult<Response> {
    // Signed-in people go to their own home: staff cannot open the panel.
    match &ctx.signed_in {
        Some(SignedIn::Partner { .. }) => return Ok(Redirect::to("/panel").into_response()),
        Some(SignedIn::Staff { .. }) => return Ok(Redirect::to("/admin").into_response()),
        None => {}
    }
    Ok(render(
        &signup_page(&app, &ctx, SignupForm::default(), BTreeMap::new()).await?,
    ))
}

pub async fn signup(
    State(app): State<App>,
    ctx: Ctx,
    Form(body): Form<SignupBody>,
) -> WebResult<Response> {
    let input = SignupInput {
        name: body.name.clone(),
        email: body.email.clone(),
        password: body.password,
        company: body.company.clone(),
        website: body.website.clone(),
        accept_terms: body.accept_terms.as_deref() == Some("yes"),
    };
    match app.sign_up(&input, &ctx.network).await {
        Ok((_, session)) => Ok(signed_in_redirect(&app, &ctx, session, "/panel")),
        Err(AppError::Invalid(errors)) => {
            let form = SignupForm {
                name: body.name,
                email: body.email,
                company: body.company,
                website: body.website,
            };
            let page = signup_page(&app, &ctx, form, errors.into_map()).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
        }
        Err(other) => Err(other.into()),
    }
}

/// Sets the new session's cookie and goes to `to`. A new token on every
/// sign-in is what rotates the session.
pub fn signed_in_redirect(app: &App, ctx: &Ctx, session: NewSessionToken, to: &str) -> Response {
    let max_age = ((session.expires_at.millis() - app.now().millis()) / 1000).max(60);
    let mut response = Redirect::to(to).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie(
            session_cookie_name(ctx.https),
            &session.token,
            max_age,
            ctx.https,
        ),
    );
    response
}

#[derive(Debug, Deserialize)]
pub struct LoginBody {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

#[derive(Debug, Deserialize, Default)]
pub struct NextQuery {
    next: Option<String>,
}

/// Only same-site paths, so `?next=` cannot send people elsewhere. Control
/// characters are refused too: browsers drop tabs and new lines from a
/// `Location` (`/\t/evil.example` would become `//evil.example`), and a new
/// line is not even a valid header value.
fn safe_next(next: Option<&str>, default: &str) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path.to_owned()
        }
        _ => default.to_owned(),
    }
}

/// The sign-in page; its form posts back to the same place with the (safe)
/// `next`, so signing in returns to the page that asked for it.
fn login_page(
    ctx: &Ctx,
    kind: AccountKind,
    next: Option<&str>,
    email: String,
    error: Option<String>,
) -> LoginPage {
    let (path, subtitle) = match kind {
        AccountKind::Partner => (
            "/login",
            format!("Welcome back to the {}.", ctx.settings.program_name),
        ),
        AccountKind::Staff => (
            "/admin/login",
            format!(
                "The {} console, for the vendor's staff.",
                ctx.settings.program_name
            ),
        ),
    };
    let action = match next
        .map(|n| safe_next(Some(n), ""))
        .filter(|n| !n.is_empty())
    {
        Some(next) => format!(
            "{path}?next={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        ),
        None => path.to_owned(),
    };
    LoginPage {
        layout: ctx.layout("Sign in", Vec::new()),
        action,
        subtitle,
        email,
        error,
    }
}

pub async fn login_form(ctx: Ctx, Query(q): Query<NextQuery>) -> Response {
    render(&login_page(
        &ctx,
        AccountKind::Partner,
        q.next.as_deref(),
        String::new(),
        None,
    ))
}

pub async fn staff_login_form(ctx: Ctx, Query(q): Query<NextQuery>) -> Response {
    render(&login_page(
        &ctx,
        AccountKind::Staff,
        q.next.as_deref(),
        String::new(),
        None,
    ))
}

pub async fn login(
    State(app): State<App>,
    ctx: Ctx,
    Query(q): Query<NextQuery>,
    Form(body): Form<LoginBody>,
) -> WebResult<Response> {
    log_in(app, ctx, AccountKind::Partner, q, body, "/panel").await
}

pub async fn staff_login(
    State(app): State<App>,
    ctx: Ctx,
    Query(q): Query<NextQuery>,
    Form(body): Form<LoginBody>,
) -> WebResult<Response> {
    log_in(app, ctx, AccountKind::Staff, q, body, "/admin").await
}

async fn log_in(
    app: App,
    ctx: Ctx,
    kind: AccountKind,
    q: NextQuery,
    body: LoginBody,
    home: &str,
) -> WebResult<Response> {
    match app
        .log_in(kind, &body.email, &body.password, &ctx.network)
        .await
    {
        Ok(session) => {
            if let Some(old) = &ctx.session_token {
                app.log_out(old).await?;
            }
            Ok(signed_in_redirect(
                &app,
                &ctx,
                session,
                &safe_next(q.next.as_deref(), home),
            ))
        }
        Err(AppError::BadCredentials) => {
            let page = login_page(
                &ctx,
                kind,
                q.next.as_deref(),
                body.email,
                Some("That email and password don't match an account.".into()),
            );
            Ok((StatusCode::UNAUTHORIZED, render(&page)).into_response())
        }
        Err(other) => Err(other.into()),
    }
}

pub async fn logout(State(app): State<App>, ctx: Ctx) -> WebResult<Response> {
    if let Some(token) = &ctx.session_token {
        app.log_out(token).await?;
    }
    let to = match &ctx.signed_in {
        Some(partnerd_app::accounts::SignedIn::Staff { .. }) => "/admin/login",
        _ => "/login",
    };
    let mut response = Redirect::to(to).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie(session_cookie_name(ctx.https), "", 0, ctx.https),
    );
    Ok(response)
}

pub async fn reset_request_form(ctx: Ctx) -> Response {
    render(&ResetRequestPage {
        layout: ctx.layout("Reset your password", Vec::new()),
        sent: false,
        error: None,
    })
}

#[derive(Debug, Deserialize)]
pub struct ResetRequestBody {
    #[serde(default)]
    email: String,
}

/// The same answer whether or not the email has an account; the link works for
/// partner and staff accounts alike (see `App::request_password_reset`).
pub async fn reset_request(
    State(app): State<App>,
    ctx: Ctx,
    Form(body): Form<ResetRequestBody>,
) -> WebResult<Response> {
    app.request_password_reset(&body.email, &ctx.network)
        .await?;
    Ok(render(&ResetRequestPage {
        layout: ctx.layout("Reset your password", Vec::new()),
        sent: true,
        error: None,
    }))
}

pub async fn reset_form(
    State(app): State<App>,
    ctx: Ctx,
    Path(token): Path<String>,
) -> WebResult<Response> {
    if token.len() > 100 || !app.reset_link_is_valid(&token).await? {
        return Err(AppError::Conflict(
            "This reset link has expired or was already used. Ask for a new one.".into(),
        )
        .into());
    }
    Ok(render(&ResetFormPage {
        layout: ctx.layout("Choose a new password", Vec::new()),
        token,
        error: None,
        min_password_len: ctx.settings.password_min_length,
    }))
}

#[derive(Debug, Deserialize)]
pub struct ResetBody {
    #[serde(default)]
    password: String,
}

pub async fn reset(
    State(app): State<App>,
    ctx: Ctx,
    Path(token): Path<String>,
    Form(body): Form<ResetBody>,
) -> WebResult<Response> {
    match app.reset_password(&token, &body.password).await {
        Ok(subject) => {
            let to = if subject.kind() == "staff" {
                "/admin/login"
            } else {
                "/login"
            };
            let mut response = Redirect::to(to).into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                crate::context::flash_cookie(
                    "success",
                    "Your password was changed. Sign in with the new one.",
                    ctx.https,
                ),
            );
            Ok(response)
        }
        Err(AppError::Invalid(errors)) => {
            let page = ResetFormPage {
                layout: ctx.layout("Choose a new password", Vec::new()),
                token,
                error: errors.get("password").map(str::to_owned),
                min_password_len: ctx.settings.password_min_length,
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
        }
        Err(other) => Err(other.into()),
    }
}
