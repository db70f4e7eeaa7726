//! Page views as typed structs over askama templates (`templates/`).

use std::collections::BTreeMap;

use askama::Template;
use axum::response::{Html, IntoResponse, Response};
use partnerd_store::{AuditEntry, OutboxEmail, Partner, Staff, Terms};

use crate::errors::WebError;

#[derive(Debug, Clone)]
pub struct Layout {
    pub program_name: String,
    pub logo_url: Option<String>,
    pub brand_css: String,
    pub nonce: String,
    pub csrf_token: String,
    pub user: Option<LayoutUser>,
    pub nav: Vec<NavItem>,
    pub flash: Option<Flash>,
    pub title: String,
}

#[derive(Debug, Clone)]
pub struct LayoutUser {
    pub name: String,
    pub kind: String,
}

#[derive(Debug, Clone)]
pub struct NavItem {
    pub href: String,
    pub label: String,
    pub active: bool,
}

#[derive(Debug, Clone)]
pub struct Flash {
    pub kind: String,
    pub message: String,
}

/// Renders a view, or a logged 500 when the template fails.
pub fn render(view: &impl Template) -> Response {
    match view.render() {
        Ok(html) => Html(html).into_response(),
        Err(err) => WebError::Internal(format!("template: {err}")).into_response(),
    }
}

fn nav(items: &[(&str, &str)], path: &str) -> Vec<NavItem> {
    items
        .iter()
        .map(|(href, label)| NavItem {
            href: (*href).to_owned(),
            label: (*label).to_owned(),
            // The longest matching prefix wins, so /admin is not active on /admin/partners.
            active: path == *href || (href.len() > 6 && path.starts_with(&format!("{href}/"))),
        })
        .collect()
}

pub fn panel_nav(path: &str) -> Vec<NavItem> {
    nav(
        &[
            ("/panel", "Dashboard"),
            ("/panel/campaigns", "Campaigns"),
            ("/panel/report", "Report"),
            ("/panel/money", "Money"),
            ("/panel/payouts", "Payouts"),
            ("/panel/statements", "Statements"),
            ("/panel/resources", "Resources"),
            ("/panel/account", "Account"),
        ],
        path,
    )
}

pub fn admin_nav(path: &str, admin: bool) -> Vec<NavItem> {
    let mut items = vec![
        ("/admin", "Overview"),
        ("/admin/partners", "Partners"),
        ("/admin/report", "Report"),
    ];
    if admin {
        items.extend([
            ("/admin/staff", "Staff"),
            ("/admin/withdrawals", "Withdrawals"),
            ("/admin/exports", "Exports"),
            ("/admin/resources", "Resources"),
            ("/admin/settings", "Settings"),
            ("/admin/stripe", "Stripe"),
            ("/admin/webhooks", "Webhooks"),
            ("/admin/terms", "Terms"),
            ("/admin/audit", "Audit log"),
            ("/admin/outbox", "Outbox"),
        ]);
    }
    items.push(("/admin/account", "Your account"));
    nav(&items, path)
}

/// Milliseconds since the epoch as `2026-11-27 10:20 UTC`.
pub fn datetime<T: std::borrow::Borrow<i64>>(ms: T) -> String {
    let Ok(at) =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(*ms.borrow()) * 1_000_000)
    else {
        return "?".into();
    };
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    at.format(&format).unwrap_or_else(|_| "?".into())
}

pub fn date<T: std::borrow::Borrow<i64>>(ms: T) -> String {
    datetime(ms).chars().take(10).collect()
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub layout: Layout,
    pub heading: String,
    pub body: String,
    pub link: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    pub layout: Layout,
    pub commission_rate: i64,
    pub cookie_days: i64,
}

#[derive(Template)]
#[template(path = "terms.html")]
pub struct TermsPage {
    pub layout: Layout,
    pub terms: Option<Terms>,
    /// Shown to a signed-in partner whose accepted version is older (R-ACC-5).
    pub must_accept: bool,
}

#[derive(Debug, Clone, Default)]
pub struct SignupForm {
    pub name: String,
    pub email: String,
    pub company: String,
    pub website: String,
}

#[derive(Template)]
#[template(path = "signup.html")]
pub struct SignupPage {
    pub layout: Layout,
    pub form: SignupForm,
    pub errors: BTreeMap<String, String>,
    pub min_password_len: i64,
    pub terms_version: i64,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub layout: Layout,
    pub action: String,
    pub subtitle: String,
    pub email: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "reset_request.html")]
pub struct ResetRequestPage {
    pub layout: Layout,
    pub sent: bool,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "reset_form.html")]
pub struct ResetFormPage {
    pub layout: Layout,
    pub token: String,
    pub error: Option<String>,
    pub min_password_len: i64,
}

#[derive(Template)]
#[template(path = "panel_home.html")]
pub struct PanelHomePage {
    pub layout: Layout,
    pub partner: Partner,
    pub manager: Option<Staff>,
    pub default_link: String,
}

#[derive(Template)]
#[template(path = "panel_account.html")]
pub struct PanelAccountPage {
    pub layout: Layout,
    pub partner: Partner,
    pub errors: BTreeMap<String, String>,
}

#[derive(Template)]
#[template(path = "admin_home.html")]
pub struct AdminHomePage {
    pub layout: Layout,
    pub partners_total: i64,
    pub my_partners: Option<i64>,
    pub managers: Vec<partnerd_domain::assignment::ManagerLoad>,
    pub recent: Vec<AuditEntry>,
    pub is_admin: bool,
}

#[derive(Template)]
#[template(path = "admin_partners.html")]
pub struct AdminPartnersPage {
    pub layout: Layout,
    pub partners: Vec<Partner>,
    pub total: i64,
    pub search: String,
    /// The search, URL-encoded for the pagination links.
    pub page_query: String,
    pub page: i64,
    pub pages: i64,
    pub managers: BTreeMap<i64, String>,
}

#[derive(Template)]
#[template(path = "admin_partner.html")]
pub struct AdminPartnerPage {
    pub layout: Layout,
    pub partner: Partner,
    pub manager: Option<Staff>,
    pub managers: Vec<partnerd_domain::assignment::ManagerLoad>,
    pub is_admin: bool,
    pub errors: BTreeMap<String, String>,
}

#[derive(Template)]
#[template(path = "admin_staff.html")]
pub struct AdminStaffPage {
    pub layout: Layout,
    pub staff: Vec<Staff>,
    pub errors: BTreeMap<String, String>,
    pub form: BTreeMap<String, String>,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
pub struct AdminAuditPage {
    pub layout: Layout,
    pub entries: Vec<AuditEntry>,
    pub total: i64,
    pub page: i64,
    pub pages: i64,
}

#[derive(Template)]
#[template(path = "admin_outbox.html")]
pub struct AdminOutboxPage {
    pub layout: Layout,
    pub emails: Vec<OutboxEmail>,
    pub total: i64,
    pub page: i64,
    pub pages: i64,
    pub smtp_configured: bool,
}

#[derive(Template)]
#[template(path = "admin_outbox_email.html")]
pub struct AdminOutboxEmailPage {
    pub layout: Layout,
    pub email: OutboxEmail,
}

pub struct SettingRow {
    pub key: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub value: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_settings.html")]
pub struct AdminSettingsPage {
    pub layout: Layout,
    pub rows: Vec<SettingRow>,
    pub has_errors: bool,
}

#[derive(Template)]
#[template(path = "admin_account.html")]
pub struct AdminAccountPage {
    pub layout: Layout,
    pub staff: Staff,
    pub errors: BTreeMap<String, String>,
}

#[derive(Template)]
#[template(path = "admin_terms.html")]
pub struct AdminTermsPage {
    pub layout: Layout,
    pub versions: Vec<Terms>,
    pub draft: String,
    pub error: Option<String>,
}

// --- campaigns and reports (R-AFF-2, R-REP-1, R-REP-2) ---------------------------

/// The campaign builder's fields as typed, for re-filling the form.
#[derive(Debug, Clone, Default)]
pub struct CampaignForm {
    pub name: String,
    pub trial_days: String,
    pub discount_percent: String,
    pub custom: String,
    pub landing_url: String,
}

/// One `<option>` of a `<select>`.
#[derive(Debug, Clone)]
pub struct SelectOption {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// A link in the campaigns table: the default link or a saved campaign, with
/// its figures over the last 30 days.
#[derive(Debug, Clone)]
pub struct CampaignRow {
    pub name: String,
    pub slug: String,
    pub link: String,
    pub trial: String,
    pub discount: String,
    pub utm_term: Option<String>,
    /// `None`: the program's main page.
    pub landing: Option<String>,
    /// The landing page without its scheme, for the narrow column.
    pub landing_short: Option<String>,
    pub clicks: i64,
    pub signups: i64,
    pub is_default: bool,
}

#[derive(Template)]
#[template(path = "panel_campaigns.html")]
pub struct PanelCampaignsPage {
    pub layout: Layout,
    pub form: CampaignForm,
    pub errors: BTreeMap<String, String>,
    pub trial_choices: Vec<SelectOption>,
    pub discount_choices: Vec<SelectOption>,
    pub main_page_url: String,
    /// The allowed landing domains, comma-separated.
    pub allowed_domains: String,
    /// `{public_url}/r/{partner_id}`: campaign links are this plus `/{slug}`.
    pub link_base: String,
    pub preview_slug: String,
    pub preview_link: String,
    pub preview_landing: String,
    /// The default link first, then the saved campaigns, newest first.
    pub rows: Vec<CampaignRow>,
    pub saved: usize,
}

/// A stat tile of the report.
#[derive(Debug, Clone)]
pub struct ReportTile {
    pub label: String,
    pub value: String,
    pub meta: Option<String>,
    pub brand: bool,
}

/// A quick range link ("Last 7 days").
#[derive(Debug, Clone)]
pub struct RangeLink {
    pub label: String,
    pub href: String,
    pub active: bool,
}

/// One report line with every figure formatted for display.
#[derive(Debug, Clone)]
pub struct ReportLineView {
    pub utm_campaign: String,
    pub utm_term: String,
    pub clicks: String,
    pub bot_clicks: String,
    pub unique_visitors: String,
    pub signups: String,
    pub customers: String,
    pub conversion_rate: String,
    pub revenue: String,
    pub commission: String,
}

/// Everything the report pages (partner panel and console) show.
#[derive(Debug, Clone, Default)]
pub struct ReportView {
    pub heading: String,
    pub subtitle: String,
    /// `(href, label)` pairs before the heading (console only).
    pub breadcrumbs: Vec<(String, String)>,
    /// The path the date-range form submits to.
    pub action: String,
    pub from: String,
    pub to: String,
    pub errors: BTreeMap<String, String>,
    pub ranges: Vec<RangeLink>,
    pub csv_href: Option<String>,
    pub range_label: String,
    pub time_zone: String,
    pub tiles: Vec<ReportTile>,
    /// The chart's SVG (from [`crate::chart::daily_chart`]: escaped there).
    pub chart: String,
    pub rows: Vec<ReportLineView>,
    pub totals: Option<ReportLineView>,
}

#[derive(Template)]
#[template(path = "panel_report.html")]
pub struct PanelReportPage {
    pub layout: Layout,
    pub report: ReportView,
}

#[derive(Template)]
#[template(path = "admin_report.html")]
pub struct AdminReportPage {
    pub layout: Layout,
    pub report: ReportView,
}

/// `1234567` → `1,234,567`.
pub fn count<T: std::borrow::Borrow<i64>>(n: T) -> String {
    let n = *n.borrow();
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Minor units as money: `123456, "USD"` → `$1,234.56`; currencies without a
/// symbol here get their code: `1,234.56 PLN`.
pub fn money(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let amount = format!(
        "{}.{:02}",
        count(i64::try_from(abs / 100).unwrap_or(i64::MAX)),
        abs % 100
    );
    match currency {
        "USD" => format!("{sign}${amount}"),
        "EUR" => format!("{sign}€{amount}"),
        "GBP" => format!("{sign}£{amount}"),
        other => format!("{sign}{amount} {other}"),
    }
}

/// Number of pages for `total` rows of `per_page`, at least 1.
pub fn page_count(total: i64, per_page: i64) -> i64 {
    ((total + per_page - 1) / per_page).max(1)
}
