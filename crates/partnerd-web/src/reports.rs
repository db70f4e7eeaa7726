//! The partner's campaign builder and UTM report (R-AFF-2, R-REP-1, R-REP-2),
//! and the console's report views for staff.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use partnerd_app::report::{Report, ReportLine};
use partnerd_app::{App, AppError};
use partnerd_domain::ProgramSettings;
use partnerd_domain::policy::Action;
use partnerd_domain::tracking::{self, csv_cell};
use partnerd_store::{Campaign, Partner};
use serde::Deserialize;

use crate::chart;
use crate::context::{Ctx, flash_cookie};
use crate::errors::WebResult;
use crate::views::{
    AdminReportPage, CampaignForm, CampaignRow, PanelCampaignsPage, PanelReportPage, RangeLink,
    ReportLineView, ReportTile, ReportView, SelectOption, admin_nav, count, money, panel_nav,
    render,
};

#[derive(Debug, Deserialize, Default)]
pub struct RangeQuery {
    pub from: Option<String>,
    pub to: Option<String>,
}

// --- the campaign builder (R-AFF-2) ---------------------------------------------------

/// The campaign builder and the saved campaigns.
pub async fn campaigns(State(app): State<App>, ctx: Ctx) -> WebResult<Response> {
    let partner = ctx.partner()?.clone();
    let campaigns = app
        .store
        .list_campaigns(partner.id)
        .await
        .map_err(AppError::from)?;
    campaigns_page(
        &app,
        &ctx,
        &partner,
        campaigns,
        CampaignForm::default(),
        BTreeMap::new(),
    )
    .await
}

pub async fn create_campaign(
    State(app): State<App>,
    ctx: Ctx,
    Form(form): Form<std::collections::BTreeMap<String, String>>,
) -> WebResult<Response> {
    let partner = ctx.partner()?.clone();
    let typed = |k: &str| form.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let typed = CampaignForm {
        name: form.get("name").cloned().unwrap_or_default(),
        trial_days: typed("trial_days"),
        discount_percent: typed("discount_percent"),
        custom: form.get("custom").cloned().unwrap_or_default(),
        landing_url: form.get("landing_url").cloned().unwrap_or_default(),
    };
    let input = partnerd_app::tracking::CampaignInput {
        name: typed.name.clone(),
        trial_days: choice(&typed.trial_days),
        discount_percent: choice(&typed.discount_percent),
        custom: Some(typed.custom.clone()).filter(|c| !c.trim().is_empty()),
        landing_url: Some(typed.landing_url.clone()).filter(|l| !l.trim().is_empty()),
    };
    match app
        .create_campaign(
            &format!("partner:{}", partner.public_id),
            partner.id,
            &input,
        )
        .await
    {
        Ok(campaign) => {
            let link = app.referral_link(&partner.public_id, Some(&campaign));
            let mut response = Redirect::to("/panel/campaigns").into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                flash_cookie(
                    "success",
                    &format!("Campaign “{}” saved. Its link is {link}", campaign.name),
                    ctx.https,
                ),
            );
            Ok(response)
        }
        Err(AppError::Invalid(errors)) => {
            let errors = campaign_errors(errors.into_map(), &ctx.settings);
            let campaigns = app
                .store
                .list_campaigns(partner.id)
                .await
                .map_err(AppError::from)?;
            campaigns_page(&app, &ctx, &partner, campaigns, typed, errors).await
        }
        Err(other) => Err(other.into()),
    }
}

/// A `<select>` value: empty is "none"; anything that is not a number is
/// passed on as a value no setting offers, so the use case names the field.
fn choice(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    Some(raw.parse::<i64>().unwrap_or(-1))
}

fn days_list(options: &[i64], unit: &str) -> String {
    let items: Vec<String> = options.iter().map(|o| format!("{o}{unit}")).collect();
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// The use case's messages as sentences naming the field.
fn campaign_errors(
    errors: BTreeMap<String, String>,
    settings: &ProgramSettings,
) -> BTreeMap<String, String> {
    let sentence = |label: &str, message: &str| {
        let message = message.trim_end_matches('.');
        format!("{label} {message}.")
    };
    errors
        .into_iter()
        .map(|(field, message)| {
            let text = match field.as_str() {
                "name" => sentence("The name", &message),
                "trial_days" => {
                    format!(
                        "Choose one of the offered trial lengths: {}.",
                        days_list(&settings.trial_options, " days")
                    )
                }
                "discount_percent" => {
                    let offered: Vec<i64> = settings
                        .discount_options
                        .iter()
                        .copied()
                        .filter(|d| *d > 0)
                        .collect();
                    format!(
                        "Choose no discount or one of {}.",
                        days_list(&offered, " %")
                    )
                }
                "custom" => sentence("The custom parameter", &message),
                "landing_url" => sentence("The landing page", &message),
                other => sentence(other, &message),
            };
            (field, text)
        })
        .collect()
}

/// `https://www.example.com/pricing` → `www.example.com/pricing`.
fn short_url(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.strip_suffix('/').unwrap_or(rest).to_owned()
}

/// The landing page a link would open, as the redirect builds it (without the
/// visitor's referral token): the page typed if it is allowed, else the main page.
fn preview_landing(form: &CampaignForm, slug: &str, settings: &ProgramSettings) -> String {
    let page = match form.landing_url.trim() {
        "" => settings.main_page_url.clone(),
        raw => tracking::check_landing_url(raw, settings)
            .unwrap_or_else(|_| settings.main_page_url.clone()),
    };
    let term = form.custom.trim();
    tracking::landing_url(&page, slug, Some(term).filter(|t| !t.is_empty()), None)
}

async fn campaigns_page(
    app: &App,
    ctx: &Ctx,
    partner: &Partner,
    campaigns: Vec<Campaign>,
    form: CampaignForm,
    errors: BTreeMap<String, String>,
) -> WebResult<Response> {
    let settings = &ctx.settings;
    // The last 30 days in the partner's time zone, by utm_campaign (all terms).
    let report = app
        .report(Some(partner.id), &partner.time_zone, None, None)
        .await?;
    let mut figures: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for row in &report.rows {
        let entry = figures.entry(row.utm_campaign.clone()).or_default();
        entry.0 += row.clicks;
        entry.1 += row.signups;
    }
    let figures_of = |slug: &str| figures.get(slug).copied().unwrap_or_default();

    let link_base = app.referral_link(&partner.public_id, None);
    let (clicks, signups) = figures_of(tracking::DEFAULT_SLUG);
    let mut rows = vec![CampaignRow {
        name: "Default link".into(),
        slug: tracking::DEFAULT_SLUG.into(),
        link: link_base.clone(),
        trial: "Product default".into(),
        discount: "None".into(),
        utm_term: None,
        landing: None,
        landing_short: None,
        clicks,
        signups,
        is_default: true,
    }];
    let saved = campaigns.len();
    for c in &campaigns {
        let (clicks, signups) = figures_of(&c.slug);
        rows.push(CampaignRow {
            name: c.name.clone(),
            slug: c.slug.clone(),
            link: app.referral_link(&partner.public_id, Some(c)),
            trial: c
                .trial_days
                .map_or_else(|| "Product default".into(), |d| format!("{d} days")),
            discount: c
                .discount_percent
                .filter(|d| *d > 0)
                .map_or_else(|| "None".into(), |d| format!("{d} %")),
            utm_term: c.custom.clone(),
            landing: c.landing_url.clone(),
            landing_short: c.landing_url.as_deref().map(short_url),
            clicks,
            signups,
            is_default: false,
        });
    }

    let slug_trial = form.trial_days.trim().parse::<i64>().ok();
    let slug_discount = form.discount_percent.trim().parse::<i64>().ok();
    let preview_slug = tracking::campaign_slug(&form.name, slug_trial, slug_discount);
    let mut trial_choices = vec![SelectOption {
        value: String::new(),
        label: "Product default".into(),
        selected: form.trial_days.trim().is_empty(),
    }];
    trial_choices.extend(settings.trial_options.iter().map(|d| SelectOption {
        value: d.to_string(),
        label: format!("{d} days"),
        selected: form.trial_days.trim() == d.to_string(),
    }));
    let mut discount_choices = vec![SelectOption {
        value: String::new(),
        label: "No discount".into(),
        selected: matches!(form.discount_percent.trim(), "" | "0"),
    }];
    discount_choices.extend(
        settings
            .discount_options
            .iter()
            .filter(|d| **d > 0)
            .map(|d| SelectOption {
                value: d.to_string(),
                label: format!("{d} % off"),
                selected: form.discount_percent.trim() == d.to_string(),
            }),
    );

    let page = PanelCampaignsPage {
        layout: ctx.layout("Campaigns", panel_nav("/panel/campaigns")),
        preview_link: format!("{link_base}/{preview_slug}"),
        preview_landing: preview_landing(&form, &preview_slug, settings),
        preview_slug,
        form,
        trial_choices,
        discount_choices,
        main_page_url: settings.main_page_url.clone(),
        allowed_domains: settings.allowed_landing_domains.join(", "),
        link_base,
        rows,
        saved,
        errors,
    };
    let status = if page.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, render(&page)).into_response())
}

// --- the UTM report (R-REP-1, R-REP-2) ---------------------------------------------------

/// What differs between the report's three audiences.
struct ReportScope {
    partner_id: Option<i64>,
    time_zone: String,
    heading: String,
    /// Says whose results these are; the range and time zone are added.
    scope: String,
    breadcrumbs: Vec<(String, String)>,
    action: String,
    csv: bool,
    panel: bool,
}

const DATE_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

fn shift_date(date: &str, days: i64) -> Option<String> {
    let parsed = time::Date::parse(date, DATE_FORMAT).ok()?;
    parsed
        .checked_add(time::Duration::days(days))?
        .format(DATE_FORMAT)
        .ok()
}

/// `Jan 1 – Jan 30, 2026`, `Dec 20, 2025 – Jan 5, 2026` or `Jan 5, 2026`.
fn range_label(from: &str, to: &str) -> String {
    let year = |d: &str| d.get(..4).unwrap_or_default().to_owned();
    if from == to {
        format!("{}, {}", chart::short_date(from), year(from))
    } else if year(from) == year(to) {
        format!(
            "{} – {}, {}",
            chart::short_date(from),
            chart::short_date(to),
            year(to)
        )
    } else {
        format!(
            "{}, {} – {}, {}",
            chart::short_date(from),
            year(from),
            chart::short_date(to),
            year(to)
        )
    }
}

/// The report's messages as sentences naming the date.
fn range_errors(errors: BTreeMap<String, String>) -> BTreeMap<String, String> {
    errors
        .into_iter()
        .map(|(field, message)| {
            let message = message.replace("after to", "after the end date");
            let text = match (field.as_str(), message.strip_prefix("the range")) {
                (_, Some(rest)) => format!("The range{rest}."),
                ("from", None) => format!("The start date {message}."),
                ("to", None) => format!("The end date {message}."),
                (other, None) => format!("{other} {message}."),
            };
            (field, text)
        })
        .collect()
}

fn line_view(line: &ReportLine) -> ReportLineView {
    ReportLineView {
        utm_campaign: line.utm_campaign.clone(),
        utm_term: line.utm_term.clone(),
        clicks: count(line.clicks),
        bot_clicks: count(line.bot_clicks),
        unique_visitors: count(line.unique_visitors),
        signups: count(line.signups),
        customers: count(line.customers),
        conversion_rate: line.conversion_rate(),
        revenue: money(line.revenue, &line.currency),
        commission: money(line.commission, &line.currency),
    }
}

fn tiles(totals: &ReportLine) -> Vec<ReportTile> {
    let tile = |label: &str, value: String, meta: Option<String>| ReportTile {
        label: label.into(),
        value,
        meta,
        brand: false,
    };
    vec![
        tile(
            "Clicks",
            count(totals.clicks),
            (totals.bot_clicks > 0)
                .then(|| format!("plus {} from bots, not counted", count(totals.bot_clicks))),
        ),
        tile("Unique visitors", count(totals.unique_visitors), None),
        tile("Sign-ups", count(totals.signups), None),
        tile(
            "Conversion rate",
            totals.conversion_rate(),
            Some("sign-ups per unique visitor".into()),
        ),
        tile("Paying customers", count(totals.customers), None),
        tile("Revenue", money(totals.revenue, &totals.currency), None),
        ReportTile {
            brand: true,
            ..tile(
                "Commission",
                money(totals.commission, &totals.currency),
                None,
            )
        },
    ]
}

/// The report page for `scope`: 200 with the figures, or 422 with the form's
/// errors when a date is invalid.
async fn report_page(
    app: &App,
    ctx: &Ctx,
    scope: ReportScope,
    q: &RangeQuery,
) -> WebResult<Response> {
    let result = app
        .report(
            scope.partner_id,
            &scope.time_zone,
            q.from.as_deref(),
            q.to.as_deref(),
        )
        .await;
    let (report, errors) = match result {
        Ok(report) => (Some(report), BTreeMap::new()),
        Err(AppError::Invalid(errors)) => (None, range_errors(errors.into_map())),
        Err(other) => return Err(other.into()),
    };
    let given_to = q.to.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let today = match (&report, given_to) {
        (Some(report), None) => report.to.clone(),
        _ => app.today(&scope.time_zone),
    };
    let ranges = [
        (7, "Last 7 days"),
        (30, "Last 30 days"),
        (90, "Last 90 days"),
    ]
    .into_iter()
    .filter_map(|(days, label)| {
        let from = shift_date(&today, 1 - days)?;
        let active = report
            .as_ref()
            .is_some_and(|r| r.from == from && r.to == today);
        Some(RangeLink {
            label: label.into(),
            href: format!("{}?from={from}&to={today}", scope.action),
            active,
        })
    })
    .collect();
    let mut view = ReportView {
        heading: scope.heading,
        breadcrumbs: scope.breadcrumbs,
        action: scope.action,
        ranges,
        time_zone: scope.time_zone.clone(),
        errors,
        ..ReportView::default()
    };
    match &report {
        Some(report) => {
            view.subtitle = format!(
                "{} · {} · times in {}",
                scope.scope,
                range_label(&report.from, &report.to),
                report.time_zone
            );
            view.range_label = range_label(&report.from, &report.to);
            view.from = report.from.clone();
            view.to = report.to.clone();
            view.time_zone = report.time_zone.clone();
            view.csv_href = scope
                .csv
                .then(|| format!("/panel/report.csv?from={}&to={}", report.from, report.to));
            view.tiles = tiles(&report.totals);
            view.chart = chart::daily_chart(&report.days);
            view.rows = report.rows.iter().map(line_view).collect();
            view.totals = Some(line_view(&report.totals));
        }
        None => {
            view.subtitle = format!("{} · times in {}", scope.scope, scope.time_zone);
            view.from = q.from.clone().unwrap_or_default();
            view.to = q.to.clone().unwrap_or_default();
        }
    }
    let status = if view.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let title = view.heading.clone();
    let page = if scope.panel {
        render(&PanelReportPage {
            layout: ctx.layout(&title, panel_nav("/panel/report")),
            report: view,
        })
    } else {
        let admin = ctx.authorize(Action::AdministerProgram).is_ok();
        render(&AdminReportPage {
            layout: ctx.layout(&title, admin_nav(&ctx.path, admin)),
            report: view,
        })
    };
    Ok((status, page).into_response())
}

fn panel_scope(partner: &Partner) -> ReportScope {
    ReportScope {
        partner_id: Some(partner.id),
        time_zone: partner.time_zone.clone(),
        heading: "UTM report".into(),
        scope: "Your links by campaign and keyword".into(),
        breadcrumbs: Vec::new(),
        action: "/panel/report".into(),
        csv: true,
        panel: true,
    }
}

/// The partner's own UTM report.
pub async fn partner_report(
    State(app): State<App>,
    ctx: Ctx,
    Query(q): Query<RangeQuery>,
) -> WebResult<Response> {
    let partner = ctx.partner()?.clone();
    report_page(&app, &ctx, panel_scope(&partner), &q).await
}

/// A number as a CSV cell of its own (always quoted, like every cell).
fn csv_number(n: i64) -> String {
    csv_cell(&n.to_string())
}

fn csv_money(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    csv_cell(&format!(
        "{sign}{}.{:02}",
        minor.unsigned_abs() / 100,
        minor.unsigned_abs() % 100
    ))
}

/// Sign-ups per unique visitor in percent, one decimal; empty without visitors.
fn csv_rate(line: &ReportLine) -> String {
    if line.unique_visitors == 0 {
        return csv_cell("");
    }
    let tenths = (line.signups * 1000 + line.unique_visitors / 2) / line.unique_visitors;
    csv_cell(&format!("{}.{}", tenths / 10, tenths % 10))
}

fn csv_line(campaign: &str, term: &str, line: &ReportLine) -> String {
    [
        csv_cell(campaign),
        csv_cell(term),
        csv_number(line.clicks),
        csv_number(line.bot_clicks),
        csv_number(line.unique_visitors),
        csv_number(line.signups),
        csv_number(line.customers),
        csv_rate(line),
        csv_money(line.revenue),
        csv_money(line.commission),
        csv_cell(&line.currency),
    ]
    .join(",")
}

/// The report as CSV (RFC 4180 line ends), every cell formula-safe.
pub fn report_csv(report: &Report) -> String {
    let mut lines = vec![
        "utm_campaign,utm_term,clicks,bot_clicks,unique_visitors,signups,customers,conversion_rate,revenue,commission,currency"
            .to_owned(),
    ];
    lines.extend(
        report
            .rows
            .iter()
            .map(|row| csv_line(&row.utm_campaign, &row.utm_term, row)),
    );
    lines.push(csv_line("Total", "", &report.totals));
    let mut body = lines.join("\r\n");
    body.push_str("\r\n");
    body
}

pub async fn partner_report_csv(
    State(app): State<App>,
    ctx: Ctx,
    Query(q): Query<RangeQuery>,
) -> WebResult<Response> {
    let partner = ctx.partner()?.clone();
    let report = match app
        .report(
            Some(partner.id),
            &partner.time_zone,
            q.from.as_deref(),
            q.to.as_deref(),
        )
        .await
    {
        Ok(report) => report,
        // A hand-made link with a bad date: the page, with the field's error.
        Err(AppError::Invalid(_)) => {
            return report_page(&app, &ctx, panel_scope(&partner), &q).await;
        }
        Err(other) => return Err(other.into()),
    };
    let disposition = format!(
        "attachment; filename=\"utm-report-{}-{}.csv\"",
        report.from, report.to
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        report_csv(&report),
    )
        .into_response())
}

/// The whole program's report, for staff.
pub async fn program_report(
    State(app): State<App>,
    ctx: Ctx,
    Query(q): Query<RangeQuery>,
) -> WebResult<Response> {
    ctx.authorize(Action::UseConsole)?;
    let scope = ReportScope {
        partner_id: None,
        time_zone: "UTC".into(),
        heading: "Program report".into(),
        scope: "All partners".into(),
        breadcrumbs: Vec::new(),
        action: "/admin/report".into(),
        csv: false,
        panel: false,
    };
    report_page(&app, &ctx, scope, &q).await
}

/// One partner's report, for their manager and admins.
pub async fn partner_report_for_staff(
    State(app): State<App>,
    ctx: Ctx,
    Path(id): Path<i64>,
    Query(q): Query<RangeQuery>,
) -> WebResult<Response> {
    ctx.authorize(Action::UseConsole)?;
    let partner = app.store.get_partner(id).await.map_err(AppError::from)?;
    ctx.authorize(Action::ViewPartner {
        partner_id: partner.id,
        manager_id: partner.manager_id,
    })?;
    let scope = ReportScope {
        partner_id: Some(partner.id),
        time_zone: partner.time_zone.clone(),
        heading: format!("Report: {}", partner.name),
        scope: format!("{}'s links", partner.name),
        breadcrumbs: vec![
            ("/admin/partners".into(), "Partners".into()),
            (
                format!("/admin/partners/{}", partner.id),
                partner.name.clone(),
            ),
        ],
        action: format!("/admin/partners/{}/report", partner.id),
        csv: false,
        panel: false,
    };
    report_page(&app, &ctx, scope, &q).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_shift_and_ranges_read_well() {
        assert_eq!(shift_date("2026-03-01", -1).as_deref(), Some("2026-02-28"));
        assert_eq!(shift_date("2026-01-30", -29).as_deref(), Some("2026-01-01"));
        assert_eq!(shift_date("nope", 1), None);
        assert_eq!(
            range_label("2026-01-01", "2026-01-30"),
            "Jan 1 – Jan 30, 2026"
        );
        assert_eq!(
            range_label("2025-12-20", "2026-01-05"),
            "Dec 20, 2025 – Jan 5, 2026"
        );
        assert_eq!(range_label("2026-01-05", "2026-01-05"), "Jan 5, 2026");
    }

    #[test]
    fn selects_and_messages() {
        assert_eq!(choice(""), None);
        assert_eq!(choice(" 60 "), Some(60));
        assert_eq!(choice("sixty"), Some(-1));
        assert_eq!(short_url("https://www.example.com/"), "www.example.com");
        assert_eq!(short_url("https://example.com/p?x=1"), "example.com/p?x=1");
        assert_eq!(
            days_list(&[14, 30, 60], " days"),
            "14 days, 30 days or 60 days"
        );
        assert_eq!(days_list(&[10], " %"), "10 %");
        let settings = ProgramSettings::default();
        let errors = campaign_errors(
            BTreeMap::from([
                ("name".to_owned(), "is required".to_owned()),
                ("trial_days".to_owned(), "x".to_owned()),
            ]),
            &settings,
        );
        assert_eq!(errors["name"], "The name is required.");
        assert!(errors["trial_days"].contains("60 days"), "{errors:?}");
    }

    #[test]
    fn csv_rows_are_quoted_and_formula_safe() {
        let line = |campaign: &str, term: &str| ReportLine {
            utm_campaign: campaign.into(),
            utm_term: term.into(),
            clicks: 3,
            bot_clicks: 1,
            unique_visitors: 3,
            signups: 1,
            customers: 0,
            revenue: 12345,
            commission: 0,
            currency: "USD".into(),
        };
        let report = Report {
            from: "2026-01-01".into(),
            to: "2026-01-30".into(),
            time_zone: "UTC".into(),
            rows: vec![line("spring-sale-t60", "=cmd()")],
            totals: line("", ""),
            days: Vec::new(),
        };
        let csv = report_csv(&report);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines.len(), 4, "{csv:?}");
        assert!(lines[0].starts_with("utm_campaign,utm_term,clicks"));
        assert_eq!(
            lines[1],
            "\"spring-sale-t60\",\"'=cmd()\",\"3\",\"1\",\"3\",\"1\",\"0\",\"33.3\",\"123.45\",\"0.00\",\"USD\""
        );
        assert!(lines[2].starts_with("\"Total\",\"\","));
        assert_eq!(lines[3], "");
    }
}
