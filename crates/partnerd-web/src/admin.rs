//! The admin console: partners, staff, settings, terms, audit log, outbox.
//! Managers see their own partners only (R-ACC-2); the rest is for admins.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use partnerd_app::accounts::SignedIn;
use partnerd_app::{App, AppError};
use partnerd_domain::policy::Action;
use partnerd_domain::settings::FIELDS;
use partnerd_store::PartnerQuery;
use serde::Deserialize;

use crate::context::{Ctx, flash_cookie};
use crate::errors::WebResult;
use crate::views::{
    AdminAccountPage, AdminAuditPage, AdminHomePage, AdminOutboxEmailPage, AdminOutboxPage,
    AdminPartnerPage, AdminPartnersPage, AdminSettingsPage, AdminStaffPage, AdminTermsPage,
    SettingRow, admin_nav, page_count, render,
};

const PER_PAGE: i64 = 50;

fn is_admin(ctx: &Ctx) -> bool {
    ctx.authorize(Action::AdministerProgram).is_ok()
}

fn nav(ctx: &Ctx) -> Vec<crate::views::NavItem> {
    admin_nav(&ctx.path, is_admin(ctx))
}

/// The manager whose partners a listing is limited to: the caller, when a manager.
fn own_manager_id(ctx: &Ctx) -> Option<i64> {
    match &ctx.signed_in {
        Some(SignedIn::Staff { staff, .. }) if !is_admin(ctx) => Some(staff.id),
        _ => None,
    }
}

fn flash_redirect(ctx: &Ctx, to: &str, message: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        flash_cookie("success", message, ctx.https),
    );
    response
}

#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    page: Option<i64>,
    q: Option<String>,
}

impl ListQuery {
    fn page(&self) -> i64 {
        self.page.unwrap_or(1).clamp(1, 1_000_000)
    }
}

pub async fn home(State(app): State<App>, ctx: Ctx) -> WebResult<Response> {
    ctx.authorize(Action::UseConsole)?;
    let store = &app.store;
    let all = store
        .list_partners(&PartnerQuery {
            limit: 1,
            ..Default::default()
        })
        .await
        .map_err(AppError::from)?;
    let my_partners = match own_manager_id(&ctx) {
        Some(id) => Some(
            store
                .list_partners(&PartnerQuery {
                    manager_id: Some(id),
                    limit: 1,
                    ..Default::default()
                })
                .await
                .map_err(AppError::from)?
                .total,
        ),
        None => None,
    };
    let admin = is_admin(&ctx);
    let recent = if admin {
        store.list_audit(10, 0).await.map_err(AppError::from)?.items
    } else {
        Vec::new()
    };
    let managers = store.list_managers().await.map_err(AppError::from)?;
    Ok(render(&AdminHomePage {
        layout: ctx.layout("Overview", nav(&ctx)),
        partners_total: all.total,
        my_partners,
        managers,
        recent,
        is_admin: admin,
    }))
}

pub async fn partners(
    State(app): State<App>,
    ctx: Ctx,
    Query(q): Query<ListQuery>,
) -> WebResult<Response> {
    ctx.authorize(Action::UseConsole)?;
    let search =
        q.q.clone()
            .unwrap_or_default()
            .trim()
            .chars()
            .take(100)
            .collect::<String>();
    let query = PartnerQuery {
        manager_id: own_manager_id(&ctx),
        search: (!search.is_empty()).then(|| search.clone()),
        include_removed: is_admin(&ctx),
        limit: PER_PAGE,
        offset: (q.page() - 1) * PER_PAGE,
    };
    let page = app
        .store
        .list_partners(&query)
        .await
        .map_err(AppError::from)?;
    let managers = app
        .store
        .list_staff()
        .await
        .map_err(AppError::from)?
        .into_iter()
        .map(|s| (s.id, s.name))
        .collect();
    Ok(render(&AdminPartnersPage {
        layout: ctx.layout("Partners", nav(&ctx)),
        partners: page.items,
        total: page.total,
        page_query: format!(
            "&q={}",
            url::form_urlencoded::byte_serialize(search.as_bytes()).collect::<String>()
        ),
        search,
        page: q.page(),
        pages: page_count(page.total, PER_PAGE),
        managers,
    }))
}

async fn partner_page(
    app: &App,
    ctx: &Ctx,
    id: i64,
    errors: BTreeMap<String, String>,
) -> WebResult<Response> {
    let partner = app.store.get_partner(id).await.map_err(AppError::from)?;
    ctx.authorize(Action::ViewPartner {
        partner_id: partner.id,
        manager_id: partner.manager_id,
    })?;
    let manager = match partner.manager_id {
        Some(id) => app.store.get_staff(id).await.ok(),
        None => None,
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = AdminPartnerPage {
        layout: ctx.layout(&partner.name, admin_nav("/admin/partners", is_admin(ctx))),
        managers: app.store.list_managers().await.map_err(AppError::from)?,
        partner,
        manager,
        is_admin: is_admin(ctx),
        errors,
    };
    Ok((status, render(&page)).into_response())
}

pub async fn partner(State(app): State<App>, ctx: Ctx, Path(id): Path<i64>) -> WebResult<Response> {
    ctx.authorize(Action::UseConsole)?;
    partner_page(&app, &ctx, id, BTreeMap::new()).await
}

#[derive(Debug, Deserialize)]
pub struct ReassignBody {
    #[serde(default)]
    manager_id: String,
}

pub async fn reassign(
    State(app): State<App>,
    ctx: Ctx,
    Path(id): Path<i64>,
    Form(body): Form<ReassignBody>,
) -> WebResult<Response> {
    ctx.authorize(Action::AdministerPartners)?;
    let manager_id = match body.manager_id.trim() {
        "" => None,
        raw => match raw.parse::<i64>() {
            Ok(v) => Some(v),
            Err(_) => {
                return partner_page(
                    &app,
                    &ctx,
                    id,
                    BTreeMap::from([("manager_id".into(), "is not a manager".into())]),
                )
                .await;
            }
        },
    };
    match app
        .reassign_manager(&ctx.who()?.actor_label(), id, manager_id)
        .await
    {
        Ok(()) => Ok(flash_redirect(
            &ctx,
            &format!("/admin/partners/{id}"),
            "The partner's manager was changed.",
        )),
        Err(AppError::Invalid(errors)) => partner_page(&app, &ctx, id, errors.into_map()).await,
        Err(other) => Err(other.into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct RemoveBody {
    #[serde(default)]
    reason: String,
}

/// R-ACC-3 (b): removal for a violation of the Terms, citing the reason.
pub async fn remove(
    State(app): State<App>,
    ctx: Ctx,
    Path(id): Path<i64>,
    Form(body): Form<RemoveBody>,
) -> WebResult<Response> {
    ctx.authorize(Action::AdministerPartners)?;
    match app
        .remove_for_violation(&ctx.who()?.actor_label(), id, &body.reason)
        .await
    {
        Ok(()) => Ok(flash_redirect(
            &ctx,
            &format!("/admin/partners/{id}"),
            "The partner was removed and their personal data erased.",
        )),
        Err(AppError::Invalid(errors)) => partner_page(&app, &ctx, id, errors.into_map()).await,
        Err(other) => Err(other.into()),
    }
}

async fn staff_page(
    app: &App,
    ctx: &Ctx,
    errors: BTreeMap<String, String>,
    form: BTreeMap<String, String>,
) -> WebResult<Response> {
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = AdminStaffPage {
        layout: ctx.layout("Staff", admin_nav("/admin/staff", true)),
        staff: app.store.list_staff().await.map_err(AppError::from)?,
        errors,
        form,
    };
    Ok((status, render(&page)).into_response())
}

pub async fn staff(State(app): State<App>, ctx: Ctx) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    staff_page(&app, &ctx, BTreeMap::new(), BTreeMap::new()).await
}

pub async fn create_staff(
    State(app): State<App>,
    ctx: Ctx,
    Form(form): Form<BTreeMap<String, String>>,
) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let actor = ctx.who()?.actor_label();
    match app
        .create_staff(
            &actor,
            &field("email"),
            &field("name"),
            &field("role"),
            None,
        )
        .await
    {
        Ok(staff) => Ok(flash_redirect(
            &ctx,
            "/admin/staff",
            &format!(
                "{} was added and emailed a link to set a password.",
                staff.name
            ),
        )),
        Err(AppError::Invalid(errors)) => {
            let mut form = form;
            form.remove("csrf_token");
            staff_page(&app, &ctx, errors.into_map(), form).await
        }
        Err(other) => Err(other.into()),
    }
}

pub async fn audit(
    State(app): State<App>,
    ctx: Ctx,
    Query(q): Query<ListQuery>,
) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    let page = app
        .store
        .list_audit(PER_PAGE, (q.page() - 1) * PER_PAGE)
        .await
        .map_err(AppError::from)?;
    Ok(render(&AdminAuditPage {
        layout: ctx.layout("Audit log", nav(&ctx)),
        entries: page.items,
        total: page.total,
        page: q.page(),
        pages: page_count(page.total, PER_PAGE),
    }))
}

pub async fn outbox(
    State(app): State<App>,
    ctx: Ctx,
    Query(q): Query<ListQuery>,
) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    let page = app
        .store
        .list_outbox(PER_PAGE, (q.page() - 1) * PER_PAGE)
        .await
        .map_err(AppError::from)?;
    Ok(render(&AdminOutboxPage {
        layout: ctx.layout("Outbox", nav(&ctx)),
        emails: page.items,
        total: page.total,
        page: q.page(),
        pages: page_count(page.total, PER_PAGE),
        smtp_configured: app.mailer.is_some(),
    }))
}

pub async fn outbox_email(
    State(app): State<App>,
    ctx: Ctx,
    Path(id): Path<i64>,
) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    let email = app.store.get_outbox(id).await.map_err(AppError::from)?;
    Ok(render(&AdminOutboxEmailPage {
        layout: ctx.layout("Email", admin_nav("/admin/outbox", true)),
        email,
    }))
}

fn settings_page(
    ctx: &Ctx,
    values: &BTreeMap<String, String>,
    errors: &BTreeMap<String, String>,
) -> Response {
    let rows = FIELDS
        .iter()
        .map(|f| SettingRow {
            key: f.key,
            label: f.label,
            help: f.help,
            value: values.get(f.key).cloned().unwrap_or_default(),
            error: errors.get(f.key).cloned(),
        })
        .collect();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (
        status,
        render(&AdminSettingsPage {
            layout: ctx.layout("Settings", nav(ctx)),
            rows,
            has_errors: !errors.is_empty(),
        }),
    )
        .into_response()
}

pub async fn settings(ctx: Ctx) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    Ok(settings_page(
        &ctx,
        &ctx.settings.to_form(),
        &BTreeMap::new(),
    ))
}

pub async fn save_settings(
    State(app): State<App>,
    ctx: Ctx,
    Form(form): Form<BTreeMap<String, String>>,
) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    match app.update_settings(&ctx.who()?.actor_label(), &form).await {
        Ok(_) => Ok(flash_redirect(&ctx, "/admin/settings", "Settings saved.")),
        Err(AppError::Invalid(errors)) => Ok(settings_page(&ctx, &form, errors.map())),
        Err(other) => Err(other.into()),
    }
}

async fn terms_page(
    app: &App,
    ctx: &Ctx,
    draft: String,
    error: Option<String>,
) -> WebResult<Response> {
    let versions = app.store.list_terms().await.map_err(AppError::from)?;
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        render(&AdminTermsPage {
            layout: ctx.layout("Terms", nav(ctx)),
            versions,
            draft,
            error,
        }),
    )
        .into_response())
}

pub async fn terms(State(app): State<App>, ctx: Ctx) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    let draft = app
        .store
        .current_terms()
        .await
        .map_err(AppError::from)?
        .map(|t| t.body)
        .unwrap_or_default();
    terms_page(&app, &ctx, draft, None).await
}

#[derive(Debug, Deserialize)]
pub struct TermsBody {
    #[serde(default)]
    body: String,
}

pub async fn publish_terms(
    State(app): State<App>,
    ctx: Ctx,
    Form(form): Form<TermsBody>,
) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    match app
        .publish_terms(&ctx.who()?.actor_label(), &form.body)
        .await
    {
        Ok(terms) => Ok(flash_redirect(
            &ctx,
            "/admin/terms",
            &format!("Version {} was published.", terms.version),
        )),
        Err(AppError::Invalid(errors)) => {
            terms_page(&app, &ctx, form.body, errors.get("body").map(str::to_owned)).await
        }
        Err(other) => Err(other.into()),
    }
}

fn account_page(ctx: &Ctx, errors: BTreeMap<String, String>) -> WebResult<Response> {
    let Some(SignedIn::Staff { staff, .. }) = &ctx.signed_in else {
        return Err(crate::errors::WebError::Forbidden);
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = AdminAccountPage {
        layout: ctx.layout("Your account", nav(ctx)),
        staff: staff.clone(),
        errors,
    };
    Ok((status, render(&page)).into_response())
}

/// A staff member's own account: their details and a password change.
pub async fn account(ctx: Ctx) -> WebResult<Response> {
    ctx.authorize(Action::UseConsole)?;
    account_page(&ctx, BTreeMap::new())
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
    ctx.authorize(Action::UseConsole)?;
    let token = ctx.session_token.clone().unwrap_or_default();
    match app
        .change_password(
            ctx.who()?,
            &body.current_password,
            &body.new_password,
            &token,
        )
        .await
    {
        Ok(()) => Ok(flash_redirect(
            &ctx,
            "/admin/account",
            "Your password was changed; other devices were signed out.",
        )),
        Err(AppError::Invalid(errors)) => account_page(&ctx, errors.into_map()),
        Err(other) => Err(other.into()),
    }
}
