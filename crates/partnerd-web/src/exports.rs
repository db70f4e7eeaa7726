//! The admins' accounting exports (issue 4 part 8): commission bookings and
//! withdrawals as CSV for a date range (UTC days, `from` and `to` included).
//! Admins only (`Action::AdministerProgram`): the files name partners and
//! their PayPal addresses.
//!
//! Every text cell goes through `tracking::csv_cell`, so a partner name or a
//! vendor's id such as `=HYPERLINK(…)` cannot run as a spreadsheet formula;
//! amounts we format ourselves are checked to be plain numbers before they are
//! written as such (a leading `-` of a reversal must stay a minus sign).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use partnerd_app::money::rfc3339;
use partnerd_app::{App, AppError};
use partnerd_domain::policy::Action;
use partnerd_domain::tracking::csv_cell;
use partnerd_domain::{Currency, FieldErrors, Timestamp};
use partnerd_store::exports_sql::{CommissionBooking, WithdrawalExportRow};
use serde::Deserialize;

use crate::context::Ctx;
use crate::errors::WebResult;
use crate::views::{Layout, admin_nav, render};

const DATE_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");
/// The default range: the last 31 days, today included.
const DEFAULT_DAYS: i64 = 31;
/// At most about ten years per file.
const MAX_DAYS: i64 = 3_700;
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Default, Deserialize)]
pub struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
}

/// `[from, to)` in milliseconds and the dates as given (for the file name).
struct Range {
    from: Timestamp,
    to: Timestamp,
    from_date: String,
    to_date: String,
}

fn parse_date(field: &str, raw: Option<&str>, errors: &mut FieldErrors) -> Option<time::Date> {
    let raw = raw.map(str::trim).filter(|r| !r.is_empty())?;
    match time::Date::parse(raw, DATE_FORMAT) {
        Ok(date) => Some(date),
        Err(_) => {
            errors.add(field, "must be a date such as 2026-01-31");
            None
        }
    }
}

fn day_start(date: time::Date) -> Timestamp {
    let seconds = date.midnight().assume_utc().unix_timestamp();
    Timestamp::from_millis(seconds * 1000)
}

fn range(app: &App, q: &RangeQuery) -> Result<Range, FieldErrors> {
    let mut errors = FieldErrors::new();
    let today = time::OffsetDateTime::from_unix_timestamp(app.now().millis().div_euclid(1000))
        .map(|t| t.date())
        .unwrap_or(time::Date::MIN);
    let to = parse_date("to", q.to.as_deref(), &mut errors).unwrap_or(today);
    let from = parse_date("from", q.from.as_deref(), &mut errors)
        .unwrap_or_else(|| to - time::Duration::days(DEFAULT_DAYS - 1));
    if errors.is_empty() {
        if from > to {
            errors.add("from", "must not be after the end date");
        } else if (to - from).whole_days() >= MAX_DAYS {
            errors.add("from", format!("the range must be at most {MAX_DAYS} days"));
        }
    }
    errors.into_result()?;
    let from_ms = day_start(from);
    let to_ms = Timestamp::from_millis(day_start(to).millis() + DAY_MS);
    let text = |d: time::Date| d.format(DATE_FORMAT).unwrap_or_default();
    Ok(Range {
        from: from_ms,
        to: to_ms,
        from_date: text(from),
        to_date: text(to),
    })
}

/// Minor units as a decimal of the currency's exponent: `-1234` USD → `-12.34`,
/// `1234` JPY → `1234`, `1234` KWD → `1.234`.
pub fn decimal(minor: i64, currency: Currency) -> String {
    let exponent = currency.exponent();
    let sign = if minor < 0 { "-" } else { "" };
    let magnitude = i128::from(minor).unsigned_abs();
    if exponent == 0 {
        return format!("{sign}{magnitude}");
    }
    let scale = 10u128.pow(exponent);
    let width = exponent as usize;
    format!("{sign}{}.{:0width$}", magnitude / scale, magnitude % scale)
}

/// A number we formatted: written as it is (quoted) when it is one, else
/// through [`csv_cell`] like any text.
fn number_cell(text: &str) -> String {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let plain = !digits.is_empty()
        && digits.split('.').count() <= 2
        && digits
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    if plain {
        format!("\"{text}\"")
    } else {
        csv_cell(text)
    }
}

fn money_cells(minor: i64, currency: Currency) -> [String; 2] {
    [
        number_cell(&decimal(minor, currency)),
        number_cell(&minor.to_string()),
    ]
}

fn csv_lines(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut lines = vec![
        header
            .iter()
            .map(|h| csv_cell(h))
            .collect::<Vec<_>>()
            .join(","),
    ];
    lines.extend(rows.map(|cells| cells.join(",")));
    let mut body = lines.join("\r\n");
    body.push_str("\r\n");
    body
}

fn kind_of(source: &str) -> &'static str {
    match source.split_once(':').map(|(kind, _)| kind) {
        Some("com") => "commission",
        Some("ref") => "refund",
        Some("cb") => "chargeback",
        Some("rein") => "reinstatement",
        Some("rej") => "rejection",
        _ => "other",
    }
}

/// The commissions file: one line per booking (an earning or a reversal).
pub fn commissions_csv(rows: &[CommissionBooking]) -> String {
    let header = [
        "booked_at",
        "partner_id",
        "partner_name",
        "kind",
        "payment_id",
        "customer_id",
        "currency",
        "commission",
        "commission_minor",
        "payment_amount",
        "payment_amount_minor",
        "rate_percent",
        "ledger_source",
    ];
    csv_lines(
        &header,
        rows.iter().map(|b| {
            let [commission, commission_minor] = money_cells(b.amount, b.currency);
            let [paid, paid_minor] = match b.payment_amount {
                Some(p) => money_cells(p, b.currency),
                None => [csv_cell(""), csv_cell("")],
            };
            vec![
                csv_cell(&rfc3339(b.booked_at)),
                csv_cell(&b.partner_public_id),
                csv_cell(&b.partner_name),
                csv_cell(kind_of(&b.source)),
                csv_cell(b.payment_id.as_deref().unwrap_or_default()),
                csv_cell(b.customer_id.as_deref().unwrap_or_default()),
                csv_cell(b.currency.code()),
                commission,
                commission_minor,
                paid,
                paid_minor,
                b.rate
                    .map_or_else(|| csv_cell(""), |r| number_cell(&r.to_string())),
                csv_cell(&b.source),
            ]
        }),
    )
}

/// The payouts file: one line per withdrawal requested in the range.
pub fn payouts_csv(rows: &[WithdrawalExportRow]) -> String {
    let header = [
        "withdrawal_id",
        "partner_id",
        "partner_name",
        "currency",
        "amount",
        "amount_minor",
        "status",
        "requested_at",
        "decided_at",
        "paid_at",
        "reason",
        "paypal_receiver",
        "payout_status",
        "payout_batch_id",
        "payout_item_id",
    ];
    let time = |at: Option<Timestamp>| csv_cell(&at.map(rfc3339).unwrap_or_default());
    let text = |v: &Option<String>| csv_cell(v.as_deref().unwrap_or_default());
    csv_lines(
        &header,
        rows.iter().map(|r| {
            let w = &r.withdrawal.withdrawal;
            let [amount, amount_minor] = money_cells(w.amount, w.currency);
            vec![
                csv_cell(&w.id),
                csv_cell(&r.partner_public_id),
                csv_cell(&r.partner_name),
                csv_cell(w.currency.code()),
                amount,
                amount_minor,
                csv_cell(w.status.as_str()),
                time(Some(r.withdrawal.requested_at)),
                time(r.withdrawal.decided_at),
                time(r.paid_at),
                text(&r.withdrawal.reason),
                text(&r.receiver),
                text(&r.payout_status),
                text(&r.payout_batch_id),
                text(&r.payout_item_id),
            ]
        }),
    )
}

#[derive(Template)]
#[template(path = "admin_exports.html")]
pub struct AdminExportsPage {
    pub layout: Layout,
    pub from: String,
    pub to: String,
    pub errors: std::collections::BTreeMap<String, String>,
}

fn exports_page(ctx: &Ctx, q: &RangeQuery, errors: FieldErrors, status: StatusCode) -> Response {
    let page = AdminExportsPage {
        layout: ctx.layout("Exports", admin_nav("/admin/exports", true)),
        from: q.from.clone().unwrap_or_default(),
        to: q.to.clone().unwrap_or_default(),
        errors: errors.into_map(),
    };
    (status, render(&page)).into_response()
}

/// `/admin/exports`: the date range form and the two downloads.
pub async fn index(
    State(app): State<App>,
    ctx: Ctx,
    Query(q): Query<RangeQuery>,
) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    let q = match range(&app, &q) {
        Ok(r) => RangeQuery {
            from: Some(r.from_date),
            to: Some(r.to_date),
        },
        Err(errors) => {
            return Ok(exports_page(
                &ctx,
                &q,
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            ));
        }
    };
    Ok(exports_page(&ctx, &q, FieldErrors::new(), StatusCode::OK))
}

fn csv_response(name: &str, range: &Range, body: String) -> Response {
    let disposition = format!(
        "attachment; filename=\"{name}-{}-{}.csv\"",
        range.from_date, range.to_date
    );
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

/// `/admin/exports/commissions.csv?from=&to=`.
pub async fn commissions(
    State(app): State<App>,
    ctx: Ctx,
    Query(q): Query<RangeQuery>,
) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    let range = match range(&app, &q) {
        Ok(range) => range,
        Err(errors) => {
            return Ok(exports_page(
                &ctx,
                &q,
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            ));
        }
    };
    let rows = app
        .store
        .commission_bookings(range.from, range.to)
        .await
        .map_err(AppError::from)?;
    Ok(csv_response("commissions", &range, commissions_csv(&rows)))
}

/// `/admin/exports/payouts.csv?from=&to=`: withdrawals requested in the range.
pub async fn payouts(
    State(app): State<App>,
    ctx: Ctx,
    Query(q): Query<RangeQuery>,
) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    let range = match range(&app, &q) {
        Ok(range) => range,
        Err(errors) => {
            return Ok(exports_page(
                &ctx,
                &q,
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            ));
        }
    };
    let rows = app
        .store
        .withdrawals_requested(range.from, range.to)
        .await
        .map_err(AppError::from)?;
    Ok(csv_response("payouts", &range, payouts_csv(&rows)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_follow_the_currencys_exponent() {
        assert_eq!(decimal(-1_234, Currency::USD), "-12.34");
        assert_eq!(decimal(5, Currency::USD), "0.05");
        assert_eq!(decimal(1_234, Currency::JPY), "1234");
        assert_eq!(decimal(1_234, Currency::parse("KWD").unwrap()), "1.234");
    }

    #[test]
    fn numbers_stay_numbers_and_anything_else_is_guarded() {
        assert_eq!(number_cell("-12.34"), "\"-12.34\"");
        assert_eq!(number_cell("500"), "\"500\"");
        assert_eq!(number_cell("-2+3"), "\"'-2+3\"");
        assert_eq!(number_cell("-"), "\"'-\"");
        assert_eq!(number_cell("1.2.3"), "\"1.2.3\"");
        assert_eq!(kind_of("ref:re_1"), "refund");
    }
}
