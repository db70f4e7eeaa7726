//! The admins' withdrawal queue and payouts (R-PAY-3): approve or reject
//! requested withdrawals, follow approved ones to paid or failed, export the
//! ones PayPal's API did not send as mass-payment files and mark them, and
//! PayPal's payout webhooks (`POST /webhooks/paypal`), which are only hints
//! to poll sooner.
//!
//! Every console page and form here is for admins only
//! (`Action::DecideWithdrawals`); managers and partners are refused.

use std::collections::BTreeMap;

use askama::Template;
use axum::Form;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use partnerd_app::payouts::{ManualOutcome, MassPaymentFile, WebhookRefusal};
use partnerd_app::{App, AppError};
use partnerd_domain::ledger::WithdrawalStatus;
use partnerd_domain::policy::Action;
use partnerd_domain::{Currency, FieldErrors, Money};
use partnerd_store::money::{PayoutItemRow, PayoutProfile, WithdrawalRow};
use serde::Deserialize;
use serde_json::json;

use crate::context::{Ctx, flash_cookie};
use crate::errors::WebResult;
use crate::views::{Layout, admin_nav, datetime, render};

const PER_PAGE: i64 = 50;

/// The tabs of the withdrawals page, in order.
const TABS: [WithdrawalStatus; 5] = [
    WithdrawalStatus::Requested,
    WithdrawalStatus::Approved,
    WithdrawalStatus::Paid,
    WithdrawalStatus::Failed,
    WithdrawalStatus::Rejected,
];

/// One withdrawal as the console lists it.
#[derive(Debug, Clone)]
pub struct WithdrawalLine {
    pub id: String,
    pub partner_id: i64,
    pub partner_name: String,
    /// `123.45 USD`.
    pub amount: String,
    pub currency: String,
    pub status: String,
    /// `2026-01-31 10:20 UTC`.
    pub requested_at: String,
    pub decided_at: Option<String>,
    pub reason: Option<String>,
    /// R-PAY-2, R-PAY-4: PayPal email, legal name, country and tax id on file.
    pub profile_complete: bool,
    /// PayPal's item status, once approved (`PENDING`, `SUCCESS` …).
    pub payout_status: Option<String>,
    /// Whether the payout went through PayPal's API (else the manual path).
    pub sent_to_paypal: bool,
}

#[derive(Debug, Clone)]
pub struct Tab {
    pub href: String,
    pub label: String,
    pub active: bool,
}

/// A mass-payment file offered for download.
#[derive(Debug, Clone)]
pub struct FileLine {
    pub href: String,
    pub label: String,
    pub rows: usize,
    pub total: String,
}

#[derive(Template)]
#[template(path = "admin_withdrawals.html")]
pub struct AdminWithdrawalsPage {
    pub layout: Layout,
    pub status: String,
    pub tabs: Vec<Tab>,
    pub lines: Vec<WithdrawalLine>,
    pub files: Vec<FileLine>,
    pub paypal_configured: bool,
    pub page: i64,
    /// Whether a next page exists.
    pub more: bool,
}

#[derive(Template)]
#[template(path = "admin_withdrawal.html")]
pub struct AdminWithdrawalPage {
    pub layout: Layout,
    pub line: WithdrawalLine,
    pub profile: PayoutProfile,
    pub payout: Option<PayoutItemRow>,
    /// When the payout went to PayPal's API.
    pub submitted_at: Option<String>,
    pub paypal_configured: bool,
    /// The manual path's buttons: approved, and not sent through the API.
    pub can_mark: bool,
    pub errors: BTreeMap<String, String>,
}

fn nav(ctx: &Ctx) -> Vec<crate::views::NavItem> {
    admin_nav(&ctx.path, true)
}

fn flash_redirect(ctx: &Ctx, to: &str, kind: &str, message: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, flash_cookie(kind, message, ctx.https));
    response
}

async fn line_for(
    app: &App,
    row: &WithdrawalRow,
    payout: Option<&PayoutItemRow>,
) -> WebResult<(WithdrawalLine, PayoutProfile)> {
    let w = &row.withdrawal;
    let partner = app
        .store
        .get_partner(w.partner_id)
        .await
        .map_err(AppError::from)?;
    let profile = app
        .store
        .payout_profile(w.partner_id)
        .await
        .map_err(AppError::from)?;
    let line = WithdrawalLine {
        id: w.id.clone(),
        partner_id: partner.id,
        partner_name: partner.name,
        amount: Money::new(w.amount, w.currency).to_string(),
        currency: w.currency.code().to_owned(),
        status: w.status.as_str().to_owned(),
        requested_at: datetime(row.requested_at.millis()),
        decided_at: row.decided_at.map(|at| datetime(at.millis())),
        reason: row.reason.clone(),
        profile_complete: profile.is_complete(),
        payout_status: payout.map(|p| p.item.status.as_str().to_owned()),
        sent_to_paypal: payout.is_some_and(|p| p.payout_batch_id.is_some()),
    };
    Ok((line, profile))
}

#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    status: Option<String>,
    page: Option<i64>,
}

/// `GET /admin/withdrawals?status=`: the queue (requested, oldest first) and
/// the other states with their payout status.
pub async fn list(
    State(app): State<App>,
    ctx: Ctx,
    Query(q): Query<ListQuery>,
) -> WebResult<Response> {
    ctx.authorize(Action::DecideWithdrawals)?;
    let status = q
        .status
        .as_deref()
        .and_then(WithdrawalStatus::parse)
        .unwrap_or(WithdrawalStatus::Requested);
    let page = q.page.unwrap_or(1).clamp(1, 1_000_000);
    // One more than a page: whether there is a next one (the store has no count).
    let rows = app
        .store
        .list_withdrawals(Some(status), PER_PAGE + 1, (page - 1) * PER_PAGE)
        .await
        .map_err(AppError::from)?;
    let more = rows.len() as i64 > PER_PAGE;
    let mut lines = Vec::with_capacity(rows.len());
    for row in rows.iter().take(PER_PAGE as usize) {
        let payout =
            if status == WithdrawalStatus::Requested || status == WithdrawalStatus::Rejected {
                None
            } else {
                app.store
                    .get_withdrawal(&row.withdrawal.id)
                    .await
                    .map_err(AppError::from)?
                    .1
            };
        lines.push(line_for(&app, row, payout.as_ref()).await?.0);
    }
    let files = app
        .mass_payment_files()
        .await?
        .into_iter()
        .map(|file: MassPaymentFile| FileLine {
            href: format!(
                "/admin/withdrawals.csv?currency={}&part={}",
                file.currency.code(),
                file.part
            ),
            label: format!("{} part {}", file.currency.code(), file.part),
            rows: file.rows,
            total: Money::new(file.total, file.currency).to_string(),
        })
        .collect();
    let tabs = TABS
        .iter()
        .map(|tab| Tab {
            href: format!("/admin/withdrawals?status={tab}"),
            label: match tab {
                WithdrawalStatus::Requested => "Queue".to_owned(),
                other => {
                    let text = other.as_str();
                    format!("{}{}", text[..1].to_uppercase(), &text[1..])
                }
            },
            active: *tab == status,
        })
        .collect();
    let view = AdminWithdrawalsPage {
        layout: ctx.layout("Withdrawals", nav(&ctx)),
        status: status.as_str().to_owned(),
        tabs,
        lines,
        files,
        paypal_configured: app.paypal.is_some(),
        page,
        more,
    };
    Ok(render(&view))
}

async fn withdrawal_page(
    app: &App,
    ctx: &Ctx,
    id: &str,
    errors: BTreeMap<String, String>,
) -> WebResult<Response> {
    let (row, payout) = app.store.get_withdrawal(id).await.map_err(AppError::from)?;
    let (line, profile) = line_for(app, &row, payout.as_ref()).await?;
    let can_mark = row.withdrawal.status == WithdrawalStatus::Approved
        && payout
            .as_ref()
            .is_some_and(|p| p.via == "manual" && p.payout_batch_id.is_none());
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let view = AdminWithdrawalPage {
        layout: ctx.layout(&format!("Withdrawal {id}"), nav(ctx)),
        line,
        profile,
        submitted_at: payout
            .as_ref()
            .and_then(|p| p.submitted_at)
            .map(|at| datetime(at.millis())),
        payout,
        paypal_configured: app.paypal.is_some(),
        can_mark,
        errors,
    };
    Ok((status, render(&view)).into_response())
}

/// `GET /admin/withdrawals/{id}`.
pub async fn show(State(app): State<App>, ctx: Ctx, Path(id): Path<String>) -> WebResult<Response> {
    ctx.authorize(Action::DecideWithdrawals)?;
    withdrawal_page(&app, &ctx, &id, BTreeMap::new()).await
}

/// `POST /admin/withdrawals/{id}/approve` (R-PAY-3).
pub async fn approve(
    State(app): State<App>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> WebResult<Response> {
    ctx.authorize(Action::DecideWithdrawals)?;
    app.approve_withdrawal(&ctx.who()?.actor_label(), &id)
        .await?;
    let message = if app.paypal.is_some() {
        "Approved: the payout is being sent through PayPal."
    } else {
        "Approved. PayPal is not configured: pay it from the mass-payment file, then mark it."
    };
    Ok(flash_redirect(
        &ctx,
        &format!("/admin/withdrawals/{id}"),
        "success",
        message,
    ))
}

#[derive(Debug, Deserialize)]
pub struct RejectBody {
    #[serde(default)]
    reason: String,
}

/// `POST /admin/withdrawals/{id}/reject`: the reason is required and goes to
/// the partner and the audit log.
pub async fn reject(
    State(app): State<App>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(body): Form<RejectBody>,
) -> WebResult<Response> {
    ctx.authorize(Action::DecideWithdrawals)?;
    match app
        .reject_withdrawal(&ctx.who()?.actor_label(), &id, &body.reason)
        .await
    {
        Ok(_) => Ok(flash_redirect(
            &ctx,
            &format!("/admin/withdrawals/{id}"),
            "success",
            "Rejected: the money is back in the partner's balance and they were told why.",
        )),
        Err(AppError::Invalid(errors)) => withdrawal_page(&app, &ctx, &id, errors.into_map()).await,
        Err(other) => Err(other.into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct MarkBody {
    #[serde(default)]
    outcome: String,
}

/// `POST /admin/withdrawals/{id}/mark`: the manual path's result, `paid` or
/// `failed` (the money back to the partner).
pub async fn mark(
    State(app): State<App>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(body): Form<MarkBody>,
) -> WebResult<Response> {
    ctx.authorize(Action::DecideWithdrawals)?;
    let Some(outcome) = ManualOutcome::parse(body.outcome.trim()) else {
        let errors = FieldErrors::single("outcome", "must be paid or failed");
        return withdrawal_page(&app, &ctx, &id, errors.into_map()).await;
    };
    app.mark_withdrawal(&ctx.who()?.actor_label(), &id, outcome)
        .await?;
    let message = match outcome {
        ManualOutcome::Paid => "Marked paid.",
        ManualOutcome::Failed => "Marked failed: the money is back in the partner's balance.",
    };
    Ok(flash_redirect(
        &ctx,
        &format!("/admin/withdrawals/{id}"),
        "success",
        message,
    ))
}

#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    #[serde(default)]
    currency: String,
    part: Option<usize>,
}

/// `GET /admin/withdrawals.csv?currency=USD&part=1`: one PayPal
/// mass-payment file of approved withdrawals not sent through the API.
pub async fn export(
    State(app): State<App>,
    ctx: Ctx,
    Query(q): Query<ExportQuery>,
) -> WebResult<Response> {
    ctx.authorize(Action::DecideWithdrawals)?;
    let Ok(currency) = Currency::parse(q.currency.trim()) else {
        return Ok(flash_redirect(
            &ctx,
            "/admin/withdrawals?status=approved",
            "error",
            "Choose a currency to export.",
        ));
    };
    let part = q.part.unwrap_or(1);
    let csv = match app.mass_payment_csv(currency, part).await {
        Ok(csv) => csv,
        Err(AppError::Invalid(_)) => {
            return Ok(flash_redirect(
                &ctx,
                "/admin/withdrawals?status=approved",
                "error",
                "There is no such part.",
            ));
        }
        Err(other) => return Err(other.into()),
    };
    let disposition = format!(
        "attachment; filename=\"paypal-mass-payment-{}-{part}.csv\"",
        currency.code()
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        csv,
    )
        .into_response())
}

/// `POST /webhooks/paypal`: verified with PayPal, then only a hint (a poll of
/// the withdrawal now). Unverified → `400`, nothing written; PayPal out of
/// reach → `503`, so PayPal delivers again.
pub async fn paypal_webhook(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    match app.paypal_webhook(&headers, &body).await {
        Ok(_) => (StatusCode::OK, axum::Json(json!({ "received": true }))).into_response(),
        Err(refusal) => {
            let status = match refusal {
                WebhookRefusal::NotConfigured | WebhookRefusal::Unverified => {
                    StatusCode::BAD_REQUEST
                }
                WebhookRefusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            tracing::info!(%refusal, "PayPal webhook refused");
            (status, axum::Json(json!({ "error": refusal.to_string() }))).into_response()
        }
    }
}
