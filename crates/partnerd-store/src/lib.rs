//! Storage for partnerd: the [`Store`] trait and its two backends.
//!
//! Methods are shaped after use cases and each one is a single transaction:
//! `create_partner` picks the manager, inserts the partner and queues the
//! manager's email together, so a crash never leaves half a sign-up. SQL lives
//! here and nowhere else. Most statements are the same text on both engines and
//! are written once in [`shared`]; each backend module holds only what really
//! differs (connection set-up, write transactions, job claiming, backups).

use std::sync::Arc;

use async_trait::async_trait;
use partnerd_domain::{Email, ProgramSettings, Timestamp, assignment::ManagerLoad};

mod clicks;
pub mod exports_sql;
pub mod money;
mod money_sql;
mod postgres;
mod shared;
mod sqlite;
pub mod stripe_sql;
pub mod types;
pub mod webhooks_sql;

pub use exports_sql::ExportStore;
pub use money::MoneyStore;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use stripe_sql::StripeStore;
pub use types::*;
pub use webhooks_sql::WebhookStore;

/// Writes click batches on the calling thread, blocking it until the commit
/// (see [`Store::blocking_click_writer`]).
pub trait BlockingClickWriter: Send + Sync {
    fn record_clicks(&self, clicks: &[NewClick]) -> StoreResult<()>;
}

/// Errors a caller can act on; everything else is `Database`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write; `field` names what was taken.
    #[error("{field} is already taken")]
    Conflict { field: &'static str },
    #[error("not found")]
    NotFound,
    /// The operation is valid but not in this state (a used reset link, …).
    #[error("{0}")]
    Invalid(&'static str),
    #[error("not supported on this database: {0}")]
    Unsupported(&'static str),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// From the SQLite click writer's own connection (see `SqliteStore`).
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A money rule refused the change (below the minimum, a conflicting replay,
    /// a withdrawal in the wrong state …); nothing was written.
    #[error(transparent)]
    Ledger(#[from] partnerd_domain::ledger::LedgerError),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Everything partnerd keeps. Each method is one transaction. The money methods
/// are in the supertrait [`MoneyStore`] (`money.rs`); the Stripe webhook's
/// bookkeeping (events seen, charge links, parked events, console secrets) in
/// the supertrait [`StripeStore`] (`stripe_sql.rs`); outbound webhooks' endpoints,
/// events and deliveries in the supertrait [`WebhookStore`] (`webhooks_sql.rs`);
/// the reads behind statements and accounting exports in the supertrait
/// [`ExportStore`] (`exports_sql.rs`).
#[async_trait]
pub trait Store:
    MoneyStore + StripeStore + WebhookStore + ExportStore + Send + Sync + 'static
{
    fn backend(&self) -> Backend;

    /// Applies pending migrations; safe to call on every start.
    async fn migrate(&self) -> StoreResult<()>;
    /// The applied migration versions, oldest first.
    async fn applied_migrations(&self) -> StoreResult<Vec<i64>>;
    /// A cheap query, for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    // --- program settings and terms -------------------------------------------------
    /// The program's settings; PROGRAM.md's defaults until an admin saves some.
    async fn load_settings(&self) -> StoreResult<ProgramSettings>;
    async fn save_settings(
        &self,
        settings: &ProgramSettings,
        audit: NewAudit,
        now: Timestamp,
    ) -> StoreResult<()>;
    async fn current_terms(&self) -> StoreResult<Option<Terms>>;
    async fn list_terms(&self) -> StoreResult<Vec<Terms>>;
    /// Publishes the next version (R-ACC-5); partners accept it at their next sign-in.
    async fn publish_terms(
        &self,
        body: &str,
        audit: NewAudit,
        now: Timestamp,
    ) -> StoreResult<Terms>;

    // --- partners --------------------------------------------------------------------
    /// Creates a partner, assigns the manager with the fewest partners (R-ACC-2) and
    /// queues the emails `emails` builds for the chosen manager, all at once.
    async fn create_partner(&self, partner: NewPartner, emails: &EmailsFor)
    -> StoreResult<Partner>;
    async fn get_partner(&self, id: i64) -> StoreResult<Partner>;
    async fn find_partner_by_email(&self, email: &Email) -> StoreResult<Option<Partner>>;
    async fn find_partner_by_public_id(&self, public_id: &str) -> StoreResult<Option<Partner>>;
    async fn list_partners(&self, query: &PartnerQuery) -> StoreResult<Page<Partner>>;
    async fn update_partner_profile(
        &self,
        id: i64,
        update: &PartnerUpdate,
        audit: NewAudit,
    ) -> StoreResult<Partner>;
    async fn change_partner_email(
        &self,
        id: i64,
        email: &Email,
        notice: Option<NewEmail>,
        audit: NewAudit,
    ) -> StoreResult<()>;
    async fn set_password(
        &self,
        subject: Subject,
        password_hash: &str,
        keep_session: Option<&str>,
        audit: NewAudit,
    ) -> StoreResult<()>;
    async fn accept_terms(&self, partner_id: i64, version: i64, audit: NewAudit)
    -> StoreResult<()>;
    /// R-ACC-3: anonymises the partner, revokes their sessions, logs it.
    async fn remove_partner(
        &self,
        id: i64,
        removal: Removal,
        audit: NewAudit,
        now: Timestamp,
    ) -> StoreResult<()>;
    async fn reassign_manager(
        &self,
        partner_id: i64,
        manager_id: Option<i64>,
        emails: &[NewEmail],
        audit: NewAudit,
    ) -> StoreResult<()>;

    // --- staff -----------------------------------------------------------------------
    /// Creates a staff member. The first manager takes every unassigned partner (R-ACC-2),
    /// and `emails` builds what to queue for each partner taken.
    async fn create_staff(
        &self,
        staff: NewStaff,
        emails: &EmailsFor,
        audit: NewAudit,
    ) -> StoreResult<Staff>;
    async fn get_staff(&self, id: i64) -> StoreResult<Staff>;
    async fn find_staff_by_email(&self, email: &Email) -> StoreResult<Option<Staff>>;
    async fn list_managers(&self) -> StoreResult<Vec<ManagerLoad>>;
    async fn list_staff(&self) -> StoreResult<Vec<Staff>>;

    // --- sessions, resets, API keys --------------------------------------------------
    async fn create_session(&self, session: NewSession) -> StoreResult<()>;
    /// The live session with this token hash, if any and not expired at `now`.
    async fn find_session(&self, token_hash: &str, now: Timestamp) -> StoreResult<Option<Session>>;
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;
    /// Stores a reset link and queues its email together.
    async fn create_password_reset(
        &self,
        reset: NewPasswordReset,
        email: NewEmail,
    ) -> StoreResult<()>;
    /// Uses a reset link once: sets the password, revokes sessions, marks the link used.
    async fn use_password_reset(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: Timestamp,
        audit: NewAudit,
    ) -> StoreResult<Subject>;
    async fn find_password_reset(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> StoreResult<Option<Subject>>;
    async fn create_api_key(&self, key: NewApiKey, audit: NewAudit) -> StoreResult<i64>;
    async fn find_api_key(&self, key_hash: &str) -> StoreResult<Option<ApiKey>>;

    // --- audit, outbox ----------------------------------------------------------------
    async fn list_audit(&self, limit: i64, offset: i64) -> StoreResult<Page<AuditEntry>>;
    async fn list_outbox(&self, limit: i64, offset: i64) -> StoreResult<Page<OutboxEmail>>;
    async fn get_outbox(&self, id: i64) -> StoreResult<OutboxEmail>;
    async fn mark_email(&self, id: i64, outcome: EmailOutcome, now: Timestamp) -> StoreResult<()>;

    // --- jobs ------------------------------------------------------------------------
    async fn enqueue_job(&self, job: NewJob) -> StoreResult<i64>;
    /// Claims up to `limit` due jobs for `worker` until `now + lease`. A job is held by
    /// one worker at a time, across processes (`FOR UPDATE SKIP LOCKED` on PostgreSQL,
    /// the single writer on SQLite).
    async fn claim_jobs(
        &self,
        worker: &str,
        now: Timestamp,
        lease_seconds: i64,
        limit: i64,
    ) -> StoreResult<Vec<Job>>;
    async fn finish_job(
        &self,
        id: i64,
        worker: &str,
        outcome: JobOutcome,
        now: Timestamp,
    ) -> StoreResult<()>;
    async fn get_job(&self, id: i64) -> StoreResult<Job>;
    /// Registers a periodic job; an existing schedule keeps its next run.
    async fn ensure_schedule(
        &self,
        name: &str,
        kind: &str,
        interval_seconds: i64,
        first_run: Timestamp,
    ) -> StoreResult<()>;
    /// Enqueues one job for each schedule due at `now` and moves it on; returns how many.
    async fn run_due_schedules(&self, now: Timestamp) -> StoreResult<usize>;

    // --- throttling and secrets ---------------------------------------------------------
    /// Counts one hit on `key` in a fixed window of `window_seconds`; returns the hits
    /// in the current window including this one.
    async fn throttle_hit(
        &self,
        key: &str,
        now: Timestamp,
        window_seconds: i64,
    ) -> StoreResult<i64>;
    async fn throttle_count(
        &self,
        key: &str,
        now: Timestamp,
        window_seconds: i64,
    ) -> StoreResult<i64>;
    async fn throttle_clear(&self, key: &str) -> StoreResult<()>;
    /// The secret `name`, stored as `candidate` if none exists yet (first node wins).
    async fn secret(&self, name: &str, candidate: &str) -> StoreResult<String>;

    // --- tracking (R-AFF-1..7, R-REP-1..2) -------------------------------------------
    async fn create_campaign(
        &self,
        campaign: NewCampaign,
        audit: NewAudit,
    ) -> StoreResult<Campaign>;
    async fn list_campaigns(&self, partner_id: i64) -> StoreResult<Vec<Campaign>>;
    /// A partner with every campaign, for the redirect's cache; by public id.
    async fn tracking_partner(&self, public_id: &str) -> StoreResult<Option<TrackingPartner>>;
    /// Records a batch of clicks and their report counters in one transaction
    /// (the redirect's group commit).
    async fn record_clicks(&self, clicks: &[NewClick]) -> StoreResult<()>;
    /// The same as [`Store::record_clicks`], on the calling thread, for an engine
    /// whose writes are local calls (SQLite): the click writer then runs on a
    /// thread of its own instead of going through the blocking pool, and back,
    /// for every batch. `None`: the engine's writes are network round trips.
    fn blocking_click_writer(&self) -> Option<Arc<dyn BlockingClickWriter>>;
    async fn get_click(&self, id: i64) -> StoreResult<Option<Click>>;
    /// Whether the partner signed in from `network` (a keyed daily hash).
    async fn partner_used_network(&self, partner_id: i64, network: &str) -> StoreResult<bool>;
    /// Records a sign-up once per customer: returns the stored one and whether this
    /// call created it. A credited sign-up counts in the report.
    async fn record_signup(&self, signup: NewSignup) -> StoreResult<(Signup, bool)>;
    async fn find_signup(&self, customer_id: &str) -> StoreResult<Option<Signup>>;
    /// The UTM report's rows (R-REP-2) over a range of hours.
    async fn report_rows(&self, range: ReportRange) -> StoreResult<Vec<ReportRow>>;
    /// The same figures per hour, for the chart.
    async fn report_hours(&self, range: ReportRange) -> StoreResult<Vec<ReportHour>>;
    /// Moves the counters of the oldest hours before `before_hour` (at most
    /// `max_hours` of them) from `report_rollups` to `report_rollups_settled`, in
    /// one transaction; returns how many counter rows moved (0: nothing is left).
    /// The report sums both tables, so what it shows does not change.
    async fn settle_report_hours(&self, before_hour: i64, max_hours: i64) -> StoreResult<u64>;
    /// R-REP-2: paying customers, revenue and commission by report row and
    /// currency, from the `report_money` counters the bookings keep.
    async fn report_money_rows(&self, range: ReportRange) -> StoreResult<Vec<ReportMoneyRow>>;
    /// The same per hour and currency, for the chart.
    async fn report_money_hours(&self, range: ReportRange) -> StoreResult<Vec<ReportMoneyHour>>;

    // --- marketing resources (R-RES-1) ----------------------------------------------
    async fn create_resource(
        &self,
        resource: NewResource,
        audit: NewAudit,
    ) -> StoreResult<Resource>;
    /// Resources newest first; archived ones only when asked.
    async fn list_resources(&self, include_archived: bool) -> StoreResult<Vec<Resource>>;
    async fn get_resource(&self, id: i64) -> StoreResult<Option<Resource>>;
    /// An image's bytes (none for widgets or archived resources).
    async fn resource_file(&self, id: i64) -> StoreResult<Option<ResourceFile>>;
    async fn archive_resource(&self, id: i64, audit: NewAudit, now: Timestamp) -> StoreResult<()>;
    async fn record_download(
        &self,
        resource_id: i64,
        partner_id: i64,
        at: Timestamp,
    ) -> StoreResult<()>;

    /// Deletes what has expired by `now`: sessions, reset links, throttle windows older
    /// than a day. Returns how many rows went.
    async fn purge_expired(&self, now: Timestamp) -> StoreResult<u64>;

    // --- operations ---------------------------------------------------------------------
    /// A consistent copy of the whole database to `path`, taken while serving.
    async fn backup_to(&self, path: &std::path::Path) -> StoreResult<()>;
}

/// Builds the emails to queue once the store knows who the manager is.
pub type EmailsFor = dyn Fn(Option<&Staff>, &Partner) -> Vec<NewEmail> + Send + Sync;

/// Opens the store a URL names: `sqlite://PATH` or `postgres://…`.
pub async fn connect(url: &str) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PgStore::connect(url).await?))
    } else {
        Err(StoreError::Unsupported(
            "database URL must start with sqlite:// or postgres://",
        ))
    }
}

/// The migration versions each backend ships, for the lockstep test.
pub fn migration_versions(backend: Backend) -> Vec<i64> {
    let migrator = match backend {
        Backend::Sqlite => &sqlite::MIGRATOR,
        Backend::Postgres => &postgres::MIGRATOR,
    };
    migrator.iter().map(|m| m.version).collect()
}
