//! The values the store reads and writes. `New*` are write shapes.

use partnerd_domain::{Email, PartnerProfile, StaffRole, Timestamp};
use serde::Serialize;

/// An audit entry to append in the same transaction as the change it records.
#[derive(Debug, Clone)]
pub struct NewAudit {
    pub at: Timestamp,
    /// `staff:3 (ann@vendor.test)`, `partner:AbC…`, `cli`, `api-key:2`, `system`.
    pub actor: String,
    pub action: String,
    /// `partner:12`, `settings`, `staff:4`.
    pub object: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

impl NewAudit {
    pub fn new(
        at: Timestamp,
        actor: impl Into<String>,
        action: impl Into<String>,
        object: impl Into<String>,
    ) -> Self {
        Self {
            at,
            actor: actor.into(),
            action: action.into(),
            object: object.into(),
            before: None,
            after: None,
        }
    }

    pub fn before_after(
        mut self,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> Self {
        self.before = before;
        self.after = after;
        self
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Terms {
    pub id: i64,
    pub version: i64,
    pub body: String,
    pub created_at: i64,
}

/// An email to queue. `send` is false when no SMTP server is configured: the email
/// is then kept for the admin console's Outbox instead of being sent.
#[derive(Debug, Clone)]
pub struct NewEmail {
    pub to: String,
    pub subject: String,
    pub body: String,
    pub send: bool,
    pub created_at: Timestamp,
    /// The partner the email is about (welcome, notices, manager alerts), so removal
    /// can erase it (R-ACC-3).
    pub partner_id: Option<i64>,
}

impl NewEmail {
    pub fn about(mut self, partner_id: i64) -> Self {
        self.partner_id = Some(partner_id);
        self
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OutboxEmail {
    pub id: i64,
    pub to_address: String,
    pub subject: String,
    pub body: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub enum EmailOutcome {
    Sent,
    /// A try failed; `final_failure` when no retry follows.
    Failed {
        error: String,
        final_failure: bool,
    },
}

#[derive(Debug, Clone)]
pub struct NewPartner {
    pub public_id: String,
    pub email: Email,
    pub password_hash: Option<String>,
    pub profile: PartnerProfile,
    pub terms_version: i64,
    pub created_at: Timestamp,
    pub audit: NewAudit,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Partner {
    pub id: i64,
    pub public_id: String,
    pub email: Option<String>,
    pub name: String,
    pub company: Option<String>,
    pub website: Option<String>,
    #[serde(skip)]
    pub password_hash: Option<String>,
    pub manager_id: Option<i64>,
    pub status: String,
    pub terms_version: i64,
    pub time_zone: String,
    pub created_at: i64,
    pub removed_at: Option<i64>,
    pub removal_kind: Option<String>,
    pub removal_reason: Option<String>,
}

impl Partner {
    pub fn is_removed(&self) -> bool {
        self.status == "removed"
    }
}

#[derive(Debug, Clone, Default)]
pub struct PartnerQuery {
    /// Only this manager's partners (R-ACC-2).
    pub manager_id: Option<i64>,
    /// Case-insensitive match on name, email or company.
    pub search: Option<String>,
    pub include_removed: bool,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}

#[derive(Debug, Clone)]
pub struct PartnerUpdate {
    pub profile: PartnerProfile,
    pub time_zone: String,
}

/// Whose password, session or reset link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Subject {
    Partner(i64),
    Staff(i64),
}

impl Subject {
    pub fn kind(self) -> &'static str {
        match self {
            Self::Partner(_) => "partner",
            Self::Staff(_) => "staff",
        }
    }

    pub fn id(self) -> i64 {
        match self {
            Self::Partner(id) | Self::Staff(id) => id,
        }
    }

    pub fn from_parts(kind: &str, id: i64) -> Option<Self> {
        match kind {
            "partner" => Some(Self::Partner(id)),
            "staff" => Some(Self::Staff(id)),
            _ => None,
        }
    }
}

/// R-ACC-3: why a partner is removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// The partner asked for deletion.
    Requested,
    /// An admin removed them for a violation of the Terms, citing the reason.
    Violation { reason: String },
}

#[derive(Debug, Clone)]
pub struct NewStaff {
    pub email: Email,
    pub name: String,
    pub role: StaffRole,
    pub password_hash: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Staff {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub role: String,
    #[serde(skip)]
    pub password_hash: String,
    pub created_at: i64,
}

impl Staff {
    pub fn role(&self) -> StaffRole {
        StaffRole::parse(&self.role).unwrap_or(StaffRole::Manager)
    }
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub token_hash: String,
    pub subject: Subject,
    /// Keyed daily hash of the network signed in from (R-AFF-7 checks).
    pub network: Option<String>,
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub subject: Subject,
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewPasswordReset {
    pub token_hash: String,
    pub subject: Subject,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub key_hash: String,
    pub prefix: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub payload: serde_json::Value,
    pub run_at: Timestamp,
    pub max_attempts: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub status: String,
    pub run_at: i64,
    pub attempts: i64,
    pub max_attempts: i64,
    pub locked_by: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone)]
pub enum JobOutcome {
    Done,
    /// Failed this time; retried at `retry_at` unless the attempts are used up.
    Failed {
        error: String,
        retry_at: Timestamp,
    },
}

#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub partner_id: i64,
    pub name: String,
    pub slug: String,
    pub trial_days: Option<i64>,
    pub discount_percent: Option<i64>,
    pub custom: Option<String>,
    pub landing_url: Option<String>,
    pub created_at: Timestamp,
}

/// R-AFF-2: a saved link.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq, Eq)]
pub struct Campaign {
    pub id: i64,
    pub partner_id: i64,
    pub name: String,
    pub slug: String,
    pub trial_days: Option<i64>,
    pub discount_percent: Option<i64>,
    pub custom: Option<String>,
    pub landing_url: Option<String>,
    pub created_at: i64,
}

/// What the redirect needs about a partner, loaded once into its cache.
#[derive(Debug, Clone)]
pub struct TrackingPartner {
    pub partner: Partner,
    pub campaigns: Vec<Campaign>,
}

/// One click, as the redirect records it.
#[derive(Debug, Clone)]
pub struct NewClick {
    /// Time-ordered, made by the caller (see `partnerd_app::tracking::ClickIds`).
    pub id: i64,
    pub partner_id: i64,
    pub campaign_id: Option<i64>,
    pub at: Timestamp,
    pub utm_term: Option<String>,
    pub subs: [Option<String>; 5],
    pub referrer_host: Option<String>,
    /// `browser` or `bot`.
    pub agent: &'static str,
    pub network: String,
    pub visitor: String,
    pub own_session: bool,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Click {
    pub id: i64,
    pub partner_id: i64,
    pub campaign_id: Option<i64>,
    pub at: i64,
    pub utm_term: Option<String>,
    pub agent: String,
    pub network: String,
    pub own_session: i64,
}

#[derive(Debug, Clone)]
pub struct NewSignup {
    pub customer_id: String,
    pub partner_id: Option<i64>,
    pub referred_partner_id: Option<i64>,
    pub campaign_id: Option<i64>,
    pub click_id: Option<i64>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub trial_days: Option<i64>,
    pub discount_percent: Option<i64>,
    pub reason: String,
    pub review: bool,
    pub commission_rate: Option<i64>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Signup {
    pub id: i64,
    pub customer_id: String,
    pub partner_id: Option<i64>,
    pub referred_partner_id: Option<i64>,
    pub campaign_id: Option<i64>,
    pub click_id: Option<i64>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub trial_days: Option<i64>,
    pub discount_percent: Option<i64>,
    pub reason: String,
    pub review: i64,
    pub commission_rate: Option<i64>,
    pub created_at: i64,
}

/// A report's range: UTC hours since the epoch, `to_hour` excluded.
#[derive(Debug, Clone, Copy)]
pub struct ReportRange {
    /// One partner, or the whole program.
    pub partner_id: Option<i64>,
    pub from_hour: i64,
    pub to_hour: i64,
}

/// One row of the UTM report (R-REP-2), summed over the range.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq, Eq)]
pub struct ReportRow {
    pub utm_campaign: String,
    pub utm_term: String,
    pub clicks: i64,
    pub bot_clicks: i64,
    pub unique_visitors: i64,
    pub signups: i64,
}

/// R-REP-2: a report row's paying customers, revenue and commission in one
/// currency (`report_money`).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq, Eq)]
pub struct ReportMoneyRow {
    pub utm_campaign: String,
    pub utm_term: String,
    pub currency: String,
    pub customers: i64,
    pub revenue: i64,
    pub commission: i64,
}

/// The same per UTC hour and currency, for the chart's days.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq, Eq)]
pub struct ReportMoneyHour {
    pub hour: i64,
    pub currency: String,
    pub customers: i64,
    pub revenue: i64,
    pub commission: i64,
}

/// The report's figures for one UTC hour, for charts.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq, Eq)]
pub struct ReportHour {
    pub hour: i64,
    pub clicks: i64,
    pub bot_clicks: i64,
    pub unique_visitors: i64,
    pub signups: i64,
}

/// R-RES-1: a banner, logo or widget to upload.
#[derive(Debug, Clone)]
pub struct NewResource {
    pub kind: String,
    pub title: String,
    /// Images: (content type, bytes, file name, width, height).
    pub image: Option<(String, Vec<u8>, String, i64, i64)>,
    /// Widgets: HTML with `{{link}}` where the partner's link goes.
    pub html: Option<String>,
    pub created_at: Timestamp,
}

/// A resource without its bytes, with how often partners downloaded it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Resource {
    pub id: i64,
    pub kind: String,
    pub title: String,
    pub content_type: Option<String>,
    pub file_name: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub html: Option<String>,
    pub created_at: i64,
    pub archived_at: Option<i64>,
    pub downloads: i64,
}

/// An image's bytes, for serving.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ResourceFile {
    pub content_type: String,
    pub file_name: String,
    pub data: Vec<u8>,
}
