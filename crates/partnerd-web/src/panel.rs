//! The partner panel: dashboard and account (R-ACC-1..3, R-ACC-5).

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use partnerd_app::accounts::SignedIn;
use partnerd_app::{App, AppError};
use partnerd_domain::policy::Action;
use partnerd_store::Partner;
use serde::Deserialize;

use crate::context::{Ctx, cookie, flash_cookie, session_cookie_name};
use crate::errors::{WebError, WebResult};
use crate::views::{PanelAccountPage, PanelHomePage, TermsPage, panel_nav, render};

fn redirect_with_flash(ctx: &Ctx, to: &str, message: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        flash_cookie("success", message, ctx.https),
    );
    response
}

pub async fn home(State(app): State<App>, ctx: Ctx) -> WebResult<Response> {
    let partner = ctx.partner()?.clone();
    let manager = match partner.manager_id {
        Some(id) => Some(app.store.get_staff(id).await.map_err(AppError::from)?),
        None => None,
    };
    let default_link = format!("{}/r/{}", app.config.public_url(), partner.public_id);
    Ok(render(&PanelHomePage {
        layout: ctx.layout("Dashboard", panel_nav(&ctx.path)),
        partner,
        manager,
        default_link,
    }))
}

fn account_page(ctx: &Ctx, partner: Partner, errors: BTreeMap<String, String>) -> Response {
    let page = PanelAccountPage {
        layout: ctx.layout("Account", panel_nav("/panel/account")),
        partner,
        errors,
    };
    let status = if page.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, render(&page)).into_response()
}

pub async fn account(ctx: Ctx) -> WebResult<Response> {
    let partner = ctx.partner()?.clone();
    Ok(account_page(&ctx, partner, BTreeMap::new()))
}

/// Runs a use case; on invalid input shows the account page with the errors.
fn on_invalid(
    ctx: &Ctx,
    partner: &Partner,
    result: Result<(), AppError>,
    done: &str,
    rename: &[(&str, &str)],
) -> WebResult<Response> {
    match result {
        Ok(()) => Ok(redirect_with_flash(ctx, "/panel/account", done)),
        Err(AppError::Invalid(errors)) => {
            let mut map = errors.into_map();
            for (from, to) in rename {
                if let Some(v) = map.remove(*from) {
                    map.insert((*to).to_owned(), v);
                }
            }
            Ok(account_page(ctx, partner.clone(), map))
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct ProfileBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    company: String,
    #[serde(default)]
    website: String,
    #[serde(default)]
    time_zone: String,
}

pub async fn update_profile(
    State(app): State<App>,
    ctx: Ctx,
    Form(body): Form<ProfileBody>,
) -> WebResult<Response> {
    let partner = ctx.partner()?;
    let result = app
        .update_profile(
            partner,
            &body.name,
            &body.company,
            &body.website,
            &body.time_zone,
        )
        .await
        .map(|_| ());
    on_invalid(&ctx, partner, result, "Your profile was saved.", &[])
}

#[derive(Debug, Deserialize)]
pub struct EmailBody {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub async fn change_email(
    State(app): State<App>,
    ctx: Ctx,
    Form(body): Form<EmailBody>,
) -> WebResult<Response> {
    let partner = ctx.partner()?;
    let result = app.change_email(partner, &body.password, &body.email).await;
    on_invalid(
        &ctx,
        partner,
        result,
        "Your sign-in email was changed.",
        &[],
    )
}

#[derive(Debug, Deserialize)]
pub struct PasswordBody {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

pub async fn change_password(
    State(app): State<App>,
    ctx: Ctx,
    Form(body): Form<PasswordBody>,
) -> WebResult<Response> {
    let partner = ctx.partner()?;
    let token = ctx.session_token.clone().unwrap_or_default();
    let result = app
        .change_password(
            ctx.who()?,
            &body.current_password,
            &body.new_password,
            &token,
        )
        .await;
    on_invalid(
        &ctx,
        partner,
        result,
        "Your password was changed; other devices were signed out.",
        &[],
    )
}

#[derive(Debug, Deserialize)]
pub struct DeleteBody {
    #[serde(default)]
    password: String,
}

/// R-ACC-3 (a): deletion on the partner's request.
pub async fn delete_account(
    State(app): State<App>,
    ctx: Ctx,
    Form(body): Form<DeleteBody>,
) -> WebResult<Response> {
    let partner = ctx.partner()?;
    match app.delete_own_account(partner, &body.password).await {
        Ok(()) => {
            let mut response = Redirect::to("/").into_response();
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                cookie(session_cookie_name(ctx.https), "", 0, ctx.https),
            );
            headers.append(
                header::SET_COOKIE,
                flash_cookie(
                    "info",
                    "Your account was deleted and your personal data erased.",
                    ctx.https,
                ),
            );
            Ok(response)
        }
        result => on_invalid(
            &ctx,
            partner,
            result,
            "",
            &[("password", "delete_password")],
        ),
    }
}

/// R-ACC-5: the current Terms, with an accept button for partners who have
/// not accepted this version.
pub async fn terms_form(State(app): State<App>, ctx: Ctx) -> WebResult<Response> {
    ctx.authorize(Action::UsePanel)?;
    let must_accept = matches!(
        ctx.who()?,
        SignedIn::Partner {
            terms_outdated: true,
            ..
        }
    );
    let terms = app.store.current_terms().await.map_err(AppError::from)?;
    Ok(render(&TermsPage {
        layout: ctx.layout("Terms and Conditions", Vec::new()),
        terms,
        must_accept,
    }))
}

pub async fn accept_terms(State(app): State<App>, ctx: Ctx) -> WebResult<Response> {
    ctx.authorize(Action::UsePanel)?;
    let SignedIn::Partner { partner, .. } = ctx.who()? else {
        return Err(WebError::Forbidden);
    };
    app.accept_current_terms(partner).await?;
    Ok(redirect_with_flash(
        &ctx,
        "/panel",
        "Thank you for accepting the Terms.",
    ))
}
