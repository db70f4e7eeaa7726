//! The partner panel's money pages (issue 4 parts 4, 7 and 8): what the
//! partner has and earned (`/panel/money`, R-COM-1..4, R-ACC-4), the payout
//! profile and withdrawals (`/panel/payouts`, R-PAY-1..4), and monthly
//! statements (`/panel/statements`, printable HTML).
//!
//! Every page shows the signed-in partner's own money only: the partner comes
//! from the session (`Ctx::partner`), never from the URL, so no id in a link
//! can point at someone else's books.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use partnerd_app::withdrawals::{PayoutProfileInput, Statement, WithdrawalOption};
use partnerd_app::{App, AppError};
use partnerd_domain::ledger::{Account, Source, WithdrawalStatus};
use partnerd_domain::{Currency, Money, Timestamp};
use partnerd_store::Partner;
use partnerd_store::money::{CommissionRow, PayoutProfile, TransferRow, WithdrawalRow};
use serde::Deserialize;

use crate::chart::escape;
use crate::context::{Ctx, flash_cookie};
use crate::errors::WebResult;
use crate::views::{Layout, date, datetime, panel_nav, render};

/// Rows per page of the commissions and transfers tables.
const PER_PAGE: i64 = 25;
/// Months the commission chart shows, this one included.
const CHART_MONTHS: usize = 12;
/// Withdrawals listed on the payouts page.
const WITHDRAWALS_SHOWN: i64 = 100;

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// An amount as the partner reads it: `$1,234.56` for the currencies the
/// views know a symbol of, `1234.500 KWD` (the currency's own decimals) otherwise.
pub fn amount(minor: i64, currency: Currency) -> String {
    if currency.exponent() == 2 {
        crate::views::money(minor, currency.code())
    } else {
        Money::new(minor, currency).to_string()
    }
}

fn month_label(year: i16, month: i8) -> String {
    let name = MONTH_NAMES
        .get(usize::try_from(month - 1).unwrap_or(0))
        .copied()
        .unwrap_or("?");
    format!("{name} {year}")
}

fn month_slug(year: i16, month: i8) -> String {
    format!("{year:04}-{month:02}")
}

/// `2026-03` → `(2026, 3)`.
fn parse_month(slug: &str) -> Option<(i16, i8)> {
    let (year, month) = slug.split_once('-')?;
    if year.len() != 4 || month.len() != 2 {
        return None;
    }
    let year: i16 = year.parse().ok()?;
    let month: i8 = month.parse().ok()?;
    ((1..=12).contains(&month) && year >= 1970).then_some((year, month))
}

fn redirect_with_flash(ctx: &Ctx, to: &str, kind: &str, message: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, flash_cookie(kind, message, ctx.https));
    response
}

// --- /panel/money -------------------------------------------------------------------

/// One currency's balances, formatted.
pub struct BalanceView {
    pub currency: String,
    pub held: String,
    pub on_review: String,
    pub available: String,
    pub in_flight: String,
    pub paid: String,
    /// Shown only when the partner owes something (R-COM-3).
    pub clawback: Option<String>,
}

/// One row of the commissions table.
pub struct CommissionView {
    pub payment_id: String,
    pub customer_id: String,
    pub paid_at: String,
    pub amount: String,
    pub refunded: String,
    pub rate: String,
    pub commission: String,
    pub status: String,
    /// `badge-…` modifier.
    pub status_class: &'static str,
}

/// One row of the transfers table.
pub struct TransferView {
    pub at: String,
    pub what: String,
    pub from: &'static str,
    pub to: &'static str,
    pub amount: String,
    pub reference: String,
}

#[derive(Template)]
#[template(path = "panel_money.html")]
pub struct PanelMoneyPage {
    pub layout: Layout,
    pub balances: Vec<BalanceView>,
    pub active: bool,
    pub activity: String,
    pub chart: String,
    pub chart_currency: String,
    pub commissions: Vec<CommissionView>,
    pub commissions_prev: Option<String>,
    pub commissions_next: Option<String>,
    pub transfers: Vec<TransferView>,
    pub transfers_prev: Option<String>,
    pub transfers_next: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
pub struct MoneyQuery {
    /// The commissions table's page.
    page: Option<i64>,
    /// The transfers table's page.
    tpage: Option<i64>,
}

fn account_label(account: Account) -> &'static str {
    match account {
        Account::Held => "Held",
        Account::OnReview => "On review",
        Account::Available => "Available",
        Account::Clawback => "Clawback",
        Account::CommissionExpense => "Program",
        Account::PayoutClearing => "In flight",
        Account::PaidOut => "Paid to you",
    }
}

fn source_label(source: &Source) -> (&'static str, String) {
    match source {
        Source::Commission { payment } => ("Commission", payment.clone()),
        Source::Refund { refund } => ("Refund", refund.clone()),
        Source::Chargeback { chargeback } => ("Chargeback", chargeback.clone()),
        Source::Reinstatement { chargeback } => ("Chargeback won", chargeback.clone()),
        Source::Rejection { invoice } => ("Rejected on review", invoice.clone()),
        Source::PutOnReview { review } => ("Put on review", review.clone()),
        Source::Approval { review } => ("Review approved", review.clone()),
        Source::Release { invoice, .. } => ("Hold ended", invoice.clone()),
        Source::Withdrawal { withdrawal } => ("Withdrawal requested", withdrawal.clone()),
        Source::Payout { withdrawal } => ("Payout arrived", withdrawal.clone()),
        Source::MoneyBack { withdrawal } => ("Payout came back", withdrawal.clone()),
    }
}

fn commission_view(row: &CommissionRow, now: Timestamp) -> CommissionView {
    let (status, status_class) = if row.review == "rejected" {
        ("Rejected on review".to_owned(), "badge-error")
    } else if row.on_review > 0 || row.review == "pending" {
        ("On review".to_owned(), "badge-pending")
    } else if row.held > 0 {
        match row.release_at {
            Some(at) if at > now => (format!("Held until {}", date(at.millis())), "badge-info"),
            _ => ("Held, releasing".to_owned(), "badge-info"),
        }
    } else if row.commission == 0 {
        ("Nothing due".to_owned(), "badge-plain")
    } else {
        ("Available".to_owned(), "badge-success")
    };
    CommissionView {
        payment_id: row.payment_id.clone(),
        customer_id: row.customer_id.clone().unwrap_or_default(),
        paid_at: date(row.paid_at.millis()),
        amount: amount(row.amount, row.currency),
        refunded: amount(row.refunded, row.currency),
        rate: format!("{} %", row.rate),
        commission: amount(row.commission, row.currency),
        status,
        status_class,
    }
}

fn transfer_view(row: &TransferRow) -> TransferView {
    let t = &row.transfer;
    let (what, reference) = source_label(&t.source);
    TransferView {
        at: datetime(row.created_at.millis()),
        what: what.to_owned(),
        from: account_label(t.debit),
        to: account_label(t.credit),
        amount: amount(t.amount, t.currency),
        reference,
    }
}

/// `?page=…&tpage=…` links for one table, keeping the other table's page.
fn page_links(
    page: i64,
    has_next: bool,
    link: impl Fn(i64) -> String,
) -> (Option<String>, Option<String>) {
    (
        (page > 1).then(|| link(page - 1)),
        has_next.then(|| link(page + 1)),
    )
}

/// The commission of each of the last 12 months (by payment month, after
/// refunds) as a server-rendered bar chart, styled by `app.css`'s chart classes.
pub fn monthly_chart(months: &[((i16, i8), i64)], currency: Currency) -> String {
    const W: f64 = 800.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 76.0;
    const RIGHT: f64 = 12.0;
    const TOP: f64 = 12.0;
    const BOTTOM: f64 = 28.0;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let max = months.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    // A round top for the axis: 1, 2 or 5 × 10ⁿ minor units, four divisions.
    let raw = max as f64 / 4.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|f| f * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(raw)
        .max(1.0)
        .ceil() as i64;
    let top = step * 4;
    let total: i64 = months.iter().map(|(_, v)| *v).sum();
    let label = format!(
        "Commission per month over the last {} months: {} in all.",
        months.len(),
        amount(total, currency)
    );
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\" \
         xmlns=\"http://www.w3.org/2000/svg\" focusable=\"false\"><g class=\"chart-grid\">",
        escape(&label)
    );
    let baseline = TOP + plot_h;
    for i in 0..=4 {
        let y = baseline - plot_h * f64::from(i) / 4.0;
        let class = if i == 0 {
            " class=\"chart-baseline\""
        } else {
            ""
        };
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"{class}/>",
            LEFT + plot_w
        );
    }
    svg.push_str("</g><g class=\"chart-axis chart-axis-left\">");
    for i in 0..=4 {
        let y = baseline - plot_h * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 8.0,
            y + 4.0,
            escape(&amount(step * i64::from(i), currency))
        );
    }
    svg.push_str("</g><g class=\"chart-days\">");
    let slot = plot_w / months.len().max(1) as f64;
    for (i, ((year, month), value)) in months.iter().enumerate() {
        let x = LEFT + slot * i as f64;
        let height = plot_h * (*value as f64) / top as f64;
        let _ = write!(
            svg,
            "<g class=\"chart-day\"><title>{}</title>\
             <rect class=\"chart-hit\" x=\"{x:.1}\" y=\"{TOP}\" width=\"{slot:.1}\" height=\"{plot_h:.1}\"/>\
             <rect class=\"chart-bar chart-bar-clicks\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\"/>\
             </g>",
            escape(&format!(
                "{}: {}",
                month_label(*year, *month),
                amount(*value, currency)
            )),
            x + slot * 0.15,
            baseline - height,
            slot * 0.7,
        );
    }
    svg.push_str("</g><g class=\"chart-axis chart-axis-dates\">");
    for (i, ((_, month), _)) in months.iter().enumerate() {
        let x = LEFT + slot * (i as f64 + 0.5);
        let name = MONTH_NAMES[usize::try_from(month - 1).unwrap_or(0)];
        let _ = write!(
            svg,
            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            H - 8.0,
            &name[..3]
        );
    }
    svg.push_str("</g></svg>");
    svg
}

/// The R-ACC-4 sentence: what makes the partner active, or what is missing.
fn activity_sentence(status: &partnerd_app::withdrawals::ActivityStatus) -> String {
    let s = &status.status;
    let customers = |n: i64| {
        if n == 1 {
            "1 new paying customer".to_owned()
        } else {
            format!("{n} new paying customers")
        }
    };
    let months = if s.window_months == 1 {
        "month".to_owned()
    } else {
        format!("{} months", s.window_months)
    };
    if s.active {
        return format!(
            "Active: {} in the last {months}.",
            customers(s.new_customers_in_window)
        );
    }
    let more = if s.missing == 1 {
        "1 more new paying customer".to_owned()
    } else {
        format!("{} more new paying customers", s.missing)
    };
    match status.days_left {
        Some(days) => format!(
            "{more} in the next {days} {} {} you active ({} in the last {months} so far).",
            if days == 1 { "day" } else { "days" },
            if s.missing == 1 { "makes" } else { "make" },
            customers(s.new_customers_in_window),
        ),
        None => format!(
            "{} within {months} {} you active.",
            customers(s.required),
            if s.required == 1 { "makes" } else { "make" },
        ),
    }
}

/// `/panel/money`: balances, the monthly chart, commissions and transfers.
pub async fn money(
    State(app): State<App>,
    ctx: Ctx,
    Query(q): Query<MoneyQuery>,
) -> WebResult<Response> {
    let partner = ctx.partner()?.clone();
    let page = q.page.unwrap_or(1).clamp(1, 100_000);
    let tpage = q.tpage.unwrap_or(1).clamp(1, 100_000);
    let balances = app.balances(partner.id).await?;
    let mut commissions = app
        .commissions(partner.id, PER_PAGE + 1, (page - 1) * PER_PAGE)
        .await?;
    let more_commissions = commissions.len() as i64 > PER_PAGE;
    commissions.truncate(PER_PAGE as usize);
    let mut transfers = app
        .transfers(partner.id, PER_PAGE + 1, (tpage - 1) * PER_PAGE)
        .await?;
    let more_transfers = transfers.len() as i64 > PER_PAGE;
    transfers.truncate(PER_PAGE as usize);
    let activity = app.activity_status(partner.id).await?;
    // The chart shows the currency the partner earned most in.
    let chart_currency = balances
        .iter()
        .max_by_key(|b| b.balances.earned)
        .map_or(Currency::USD, |b| b.currency);
    let chart = monthly_chart(
        &app.monthly_commission(partner.id, chart_currency, CHART_MONTHS)
            .await?,
        chart_currency,
    );
    let now = app.now();
    let (commissions_prev, commissions_next) = page_links(page, more_commissions, |p| {
        format!("/panel/money?page={p}&tpage={tpage}#commissions")
    });
    let (transfers_prev, transfers_next) = page_links(tpage, more_transfers, |p| {
        format!("/panel/money?page={page}&tpage={p}#transfers")
    });
    Ok(render(&PanelMoneyPage {
        layout: ctx.layout("Money", panel_nav(&ctx.path)),
        balances: balances
            .iter()
            .map(|row| {
                let c = row.currency;
                let b = &row.balances;
                BalanceView {
                    currency: c.code().to_owned(),
                    held: amount(b.held, c),
                    on_review: amount(b.on_review, c),
                    available: amount(b.available, c),
                    in_flight: amount(b.in_flight, c),
                    paid: amount(b.paid, c),
                    clawback: (b.clawback > 0).then(|| amount(b.clawback, c)),
                }
            })
            .collect(),
        active: activity.status.active,
        activity: activity_sentence(&activity),
        chart,
        chart_currency: chart_currency.code().to_owned(),
        commissions: commissions
            .iter()
            .map(|r| commission_view(r, now))
            .collect(),
        commissions_prev,
        commissions_next,
        transfers: transfers.iter().map(transfer_view).collect(),
        transfers_prev,
        transfers_next,
    }))
}

// --- /panel/payouts -----------------------------------------------------------------

/// The profile form's fields as typed (or as saved).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProfileForm {
    #[serde(default)]
    pub paypal_email: String,
    #[serde(default)]
    pub legal_name: String,
    #[serde(default)]
    pub country: String,
    #[serde(default)]
    pub tax_id: String,
    #[serde(default)]
    pub current_password: String,
}

impl ProfileForm {
    fn from_profile(profile: &PayoutProfile) -> Self {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        Self {
            paypal_email: text(&profile.paypal_email),
            legal_name: text(&profile.legal_name),
            country: text(&profile.country),
            tax_id: text(&profile.tax_id),
            current_password: String::new(),
        }
    }
}

/// One currency's withdraw button, or why there is none.
pub struct WithdrawView {
    pub currency: String,
    pub available: String,
    pub minimum: Option<String>,
    pub button: Option<String>,
    pub blocked: Option<String>,
}

pub struct WithdrawalView {
    pub id: String,
    pub requested_at: String,
    pub amount: String,
    pub status: &'static str,
    pub status_class: &'static str,
    pub reason: Option<String>,
}

#[derive(Template)]
#[template(path = "panel_payouts.html")]
pub struct PanelPayoutsPage {
    pub layout: Layout,
    pub form: ProfileForm,
    /// A PayPal email is on file: changing it needs the password.
    pub has_paypal: bool,
    pub errors: BTreeMap<String, String>,
    pub withdraw: Vec<WithdrawView>,
    pub withdrawals: Vec<WithdrawalView>,
    /// Why the last withdrawal request was refused.
    pub refusal: Option<String>,
}

fn withdraw_view(option: &WithdrawalOption) -> WithdrawView {
    let c = option.currency;
    WithdrawView {
        currency: c.code().to_owned(),
        available: amount(option.available, c),
        minimum: option.minimum.map(|m| amount(m, c)),
        button: option
            .blocked
            .is_none()
            .then(|| format!("Withdraw {}", amount(option.available, c))),
        blocked: option.blocked.clone(),
    }
}

fn withdrawal_view(row: &WithdrawalRow) -> WithdrawalView {
    let w = &row.withdrawal;
    let (status, status_class) = match w.status {
        WithdrawalStatus::Requested => ("Waiting for approval", "badge-info"),
        WithdrawalStatus::Approved => ("Approved, payout on its way", "badge-info"),
        WithdrawalStatus::Paid => ("Paid", "badge-success"),
        WithdrawalStatus::Rejected => ("Rejected, money back in your balance", "badge-error"),
        WithdrawalStatus::Failed => ("Payout failed, money back in your balance", "badge-warning"),
    };
    WithdrawalView {
        id: w.id.clone(),
        requested_at: datetime(row.requested_at.millis()),
        amount: amount(w.amount, w.currency),
        status,
        status_class,
        reason: row.reason.clone(),
    }
}

async fn payouts_page(
    app: &App,
    ctx: &Ctx,
    partner: &Partner,
    form: Option<ProfileForm>,
    errors: BTreeMap<String, String>,
    refusal: Option<String>,
    status: StatusCode,
) -> WebResult<Response> {
    let profile = app.payout_profile(partner.id).await?;
    let options = app.withdrawal_options(partner.id).await?;
    let withdrawals = app
        .partner_withdrawals(partner.id, WITHDRAWALS_SHOWN, 0)
        .await?;
    let mut form = form.unwrap_or_else(|| ProfileForm::from_profile(&profile));
    form.current_password.clear();
    let page = PanelPayoutsPage {
        layout: ctx.layout("Payouts", panel_nav("/panel/payouts")),
        form,
        has_paypal: profile.paypal_email.is_some(),
        errors,
        withdraw: options.iter().map(withdraw_view).collect(),
        withdrawals: withdrawals.iter().map(withdrawal_view).collect(),
        refusal,
    };
    Ok((status, render(&page)).into_response())
}

/// `/panel/payouts`: the payout profile, the withdraw buttons, the withdrawals.
pub async fn payouts(State(app): State<App>, ctx: Ctx) -> WebResult<Response> {
    let partner = ctx.partner()?.clone();
    payouts_page(
        &app,
        &ctx,
        &partner,
        None,
        BTreeMap::new(),
        None,
        StatusCode::OK,
    )
    .await
}

/// Saves the payout profile (R-PAY-2, R-PAY-4); the form comes back with its
/// errors, nothing saved, when a field is wrong.
pub async fn save_profile(
    State(app): State<App>,
    ctx: Ctx,
    Form(form): Form<ProfileForm>,
) -> WebResult<Response> {
    let partner = ctx.partner()?.clone();
    let input = PayoutProfileInput {
        paypal_email: form.paypal_email.clone(),
        legal_name: form.legal_name.clone(),
        country: form.country.clone(),
        tax_id: form.tax_id.clone(),
    };
    match app
        .save_payout_profile(&partner, &input, &form.current_password)
        .await
    {
        Ok(_) => Ok(redirect_with_flash(
            &ctx,
            "/panel/payouts",
            "success",
            "Your payout details were saved.",
        )),
        Err(AppError::Invalid(errors)) => {
            payouts_page(
                &app,
                &ctx,
                &partner,
                Some(form),
                errors.into_map(),
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct WithdrawBody {
    #[serde(default)]
    currency: String,
}

/// R-PAY-1: asks for the whole available balance of a currency.
pub async fn withdraw(
    State(app): State<App>,
    ctx: Ctx,
    Form(body): Form<WithdrawBody>,
) -> WebResult<Response> {
    let partner = ctx.partner()?.clone();
    match app.request_withdrawal(&partner, &body.currency).await {
        Ok(row) => {
            let w = &row.withdrawal;
            let message = format!(
                "Your withdrawal of {} was requested. An admin confirms it, and PayPal sends the money.",
                amount(w.amount, w.currency)
            );
            Ok(redirect_with_flash(
                &ctx,
                "/panel/payouts",
                "success",
                &message,
            ))
        }
        Err(AppError::Conflict(reason)) => {
            payouts_page(
                &app,
                &ctx,
                &partner,
                None,
                BTreeMap::new(),
                Some(reason),
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(AppError::Invalid(errors)) => {
            let reason = errors
                .get("currency")
                .map_or_else(|| errors.to_string(), |e| format!("Currency: {e}."));
            payouts_page(
                &app,
                &ctx,
                &partner,
                None,
                BTreeMap::new(),
                Some(reason),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(other) => Err(other.into()),
    }
}

// --- /panel/statements --------------------------------------------------------------

pub struct StatementLink {
    pub href: String,
    pub label: String,
}

#[derive(Template)]
#[template(path = "panel_statements.html")]
pub struct PanelStatementsPage {
    pub layout: Layout,
    pub months: Vec<StatementLink>,
}

/// `/panel/statements`: one link per month since the first booking.
pub async fn statements(State(app): State<App>, ctx: Ctx) -> WebResult<Response> {
    let partner = ctx.partner()?.clone();
    let months = app.statement_months(partner.id).await?;
    Ok(render(&PanelStatementsPage {
        layout: ctx.layout("Statements", panel_nav(&ctx.path)),
        months: months
            .into_iter()
            .map(|(y, m)| StatementLink {
                href: format!("/panel/statements/{}", month_slug(y, m)),
                label: month_label(y, m),
            })
            .collect(),
    }))
}

pub struct StatementBalanceRow {
    pub label: &'static str,
    pub opening: String,
    pub closing: String,
}

pub struct StatementLineView {
    pub date: String,
    pub what: &'static str,
    pub payment_id: String,
    pub amount: String,
}

pub struct StatementCurrencyView {
    pub currency: String,
    pub earned: String,
    pub reversed: String,
    pub net: String,
    pub paid_out: String,
    pub balances: Vec<StatementBalanceRow>,
    pub lines: Vec<StatementLineView>,
    pub payouts: Vec<StatementLineView>,
}

#[derive(Template)]
#[template(path = "panel_statement.html")]
pub struct PanelStatementPage {
    pub layout: Layout,
    pub program_name: String,
    pub period: String,
    pub partner_name: String,
    pub partner_id: String,
    pub legal_name: Option<String>,
    pub country: Option<String>,
    pub tax_id: Option<String>,
    pub issued: String,
    pub currencies: Vec<StatementCurrencyView>,
}

fn statement_view(statement: &Statement) -> Vec<StatementCurrencyView> {
    statement
        .currencies
        .iter()
        .map(|sc| {
            let c = sc.currency;
            let row = |label, account: Account| StatementBalanceRow {
                label,
                opening: amount(sc.opening.get(account), c),
                closing: amount(sc.closing.get(account), c),
            };
            StatementCurrencyView {
                currency: c.code().to_owned(),
                earned: amount(sc.earned, c),
                reversed: amount(sc.reversed, c),
                net: amount(sc.earned - sc.reversed, c),
                paid_out: amount(sc.paid_out, c),
                balances: vec![
                    row("Held", Account::Held),
                    row("On review", Account::OnReview),
                    row("Available", Account::Available),
                    row("In flight", Account::PayoutClearing),
                    row("Paid to you (to date)", Account::PaidOut),
                    row("Clawback owed", Account::Clawback),
                ],
                lines: sc
                    .lines
                    .iter()
                    .map(|l| StatementLineView {
                        date: date(l.booked_at.millis()),
                        what: l.kind.label(),
                        payment_id: l.payment_id.clone().unwrap_or_default(),
                        amount: amount(l.amount, c),
                    })
                    .collect(),
                payouts: sc
                    .payouts
                    .iter()
                    .map(|p| StatementLineView {
                        date: date(p.paid_at.millis()),
                        what: "PayPal payout",
                        payment_id: p.withdrawal_id.clone(),
                        amount: amount(p.amount, c),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// `/panel/statements/{yyyy-mm}`: the month's printable statement.
pub async fn statement(
    State(app): State<App>,
    ctx: Ctx,
    Path(month): Path<String>,
) -> WebResult<Response> {
    let partner = ctx.partner()?.clone();
    let (year, month) = parse_month(&month).ok_or(crate::errors::WebError::NotFound)?;
    let statement = app.statement(partner.id, year, month).await?;
    let period = month_label(year, month);
    let profile = &statement.profile;
    Ok(render(&PanelStatementPage {
        layout: ctx.layout(
            &format!("Statement {period}"),
            panel_nav("/panel/statements"),
        ),
        program_name: ctx.settings.program_name.clone(),
        period,
        partner_name: partner.name.clone(),
        partner_id: partner.public_id.clone(),
        legal_name: profile.legal_name.clone(),
        country: profile.country.clone(),
        tax_id: profile.tax_id.clone(),
        issued: datetime(app.now().millis()),
        currencies: statement_view(&statement),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_only_as_yyyy_mm() {
        assert_eq!(parse_month("2026-03"), Some((2026, 3)));
        assert_eq!(parse_month("2026-13"), None);
        assert_eq!(parse_month("2026-3"), None);
        assert_eq!(parse_month("../etc"), None);
        assert_eq!(month_slug(2026, 3), "2026-03");
        assert_eq!(month_label(2026, 3), "March 2026");
    }

    #[test]
    fn amounts_use_the_currencys_decimals() {
        assert_eq!(amount(123_456, Currency::USD), "$1,234.56");
        assert_eq!(amount(-500, Currency::USD), "-$5.00");
        assert_eq!(amount(1_500, Currency::JPY), "1500 JPY");
    }

    #[test]
    fn the_chart_has_a_bar_and_a_tooltip_per_month_and_escapes_nothing_unsafe() {
        let months: Vec<((i16, i8), i64)> = (1..=12)
            .map(|m| ((2026, m as i8), i64::from(m) * 1_000))
            .collect();
        let svg = monthly_chart(&months, Currency::USD);
        assert_eq!(svg.matches("chart-bar chart-bar-clicks").count(), 12);
        assert!(
            svg.contains("<title>December 2026: $120.00</title>"),
            "{svg}"
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        let empty = monthly_chart(&[((2026, 1), 0)], Currency::USD);
        assert!(empty.contains("$0.00"));
    }
}
