//! Outbound webhooks' storage (issue 4 part 6): the [`WebhookStore`] methods,
//! their write and read shapes, and their statements, written once for both
//! engines like `shared.rs` (`webhook_store!` is expanded for each backend).
//!
//! **Events from the ledger.** `ledger_transfers` is append-only with an
//! increasing id, so the events job reads the bookings after a cursor, asks the
//! app's classifier what event each booking is, writes one delivery per
//! subscribed endpoint and moves the cursor, in one transaction: a crash
//! repeats nothing and loses nothing, and the money code is not touched. Each
//! event is unique on its booking's source key, so a booking seen twice (its
//! legs straddling two batches) is still one event.
//!
//! On PostgreSQL, ids are taken when a row is inserted but become visible when
//! its transaction commits, so a booking with id 10 can appear after one with
//! id 11 was read. The events transaction therefore takes `SHARE` on
//! `ledger_transfers` first: it waits for the bookings in flight and holds new
//! ones back for the few milliseconds it runs, so every id up to the highest it
//! sees is committed. SQLite has one writer at a time, so ids appear in order.
//!
//! **Deliveries** are claimed with a lease (`locked_until`, `FOR UPDATE SKIP
//! LOCKED` on PostgreSQL), so two workers never send the same one at once; each
//! attempt is recorded with what the receiver said.

use std::fmt;

use async_trait::async_trait;
use partnerd_domain::ledger::{Source, Transfer, WithdrawalStatus};
use partnerd_domain::{Currency, Timestamp};
use serde::Serialize;

use crate::{NewAudit, StoreResult};

/// An endpoint as an admin saves it; the app has checked the URL and the types.
pub struct NewWebhookEndpoint {
    pub url: String,
    pub description: String,
    /// `whsec_…`.
    pub secret: String,
    pub event_types: Vec<String>,
    pub allow_private: bool,
    pub created_at: Timestamp,
    pub audit: NewAudit,
}

impl fmt::Debug for NewWebhookEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewWebhookEndpoint")
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("allow_private", &self.allow_private)
            .field("secret", &"***")
            .finish_non_exhaustive()
    }
}

/// An endpoint as stored. `Debug` never prints the secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: i64,
    pub url: String,
    pub description: String,
    /// `whsec_…`: shown to admins only, so they can set up the receiver.
    pub secret: String,
    /// The secret before the last rotation, still signed with until
    /// `previous_secret_until`.
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<Timestamp>,
    pub event_types: Vec<String>,
    pub allow_private: bool,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl WebhookEndpoint {
    /// Whether the endpoint receives events of `event_type`.
    pub fn subscribes_to(&self, event_type: &str) -> bool {
        self.event_types.iter().any(|t| t == event_type)
    }

    /// The secrets a delivery at `now` is signed with: the current one, and the
    /// previous one while its grace period runs.
    pub fn signing_secrets(&self, now: Timestamp) -> Vec<String> {
        let mut secrets = vec![self.secret.clone()];
        if let (Some(previous), Some(until)) = (&self.previous_secret, self.previous_secret_until)
            && now < until
        {
            secrets.push(previous.clone());
        }
        secrets
    }
}

impl fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("allow_private", &self.allow_private)
            .field("enabled", &self.enabled)
            .field("disabled_reason", &self.disabled_reason)
            .field("secret", &"***")
            .finish_non_exhaustive()
    }
}

/// One booking of the ledger (every leg of one source), with what the
/// classifier needs to name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerBooking {
    pub source: Source,
    pub partner_id: i64,
    /// The partner's public id, the one in `/r/{id}` and the API.
    pub partner_public_id: String,
    pub currency: Currency,
    /// Every leg, in booking order.
    pub transfers: Vec<Transfer>,
    /// The id of its first leg.
    pub first_transfer_id: i64,
    pub booked_at: Timestamp,
    /// For withdrawal and payout bookings: the withdrawal's status now.
    pub withdrawal_status: Option<WithdrawalStatus>,
    /// For withdrawal and payout bookings: the payout item's status now
    /// (`SUCCESS`, `RETURNED` …), once there is one.
    pub payout_status: Option<String>,
}

impl LedgerBooking {
    /// The sum of its legs: every booking moves one amount, split over legs.
    pub fn amount(&self) -> i64 {
        self.transfers.iter().map(|t| t.amount).sum()
    }
}

/// An event to send, made by the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhookEvent {
    /// `msg_…`, the `webhook-id` of every delivery of this event.
    pub message_id: String,
    pub event_type: String,
    /// The booking's source key, or `test:{message id}`: unique per event.
    pub source: String,
    /// The JSON body, exactly as sent.
    pub payload: String,
    pub created_at: Timestamp,
}

/// Names a booking's event; `None` when the booking is not announced.
pub type EventsFor = dyn Fn(&LedgerBooking) -> Option<NewWebhookEvent> + Send + Sync;

/// What one run of the events job did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Ledger transfers read past the cursor.
    pub transfers: usize,
    /// New events (bookings some endpoint subscribes to).
    pub events: usize,
    pub deliveries: usize,
}

/// A delivery a worker claimed, with everything the attempt needs.
#[derive(Clone)]
pub struct DueDelivery {
    pub delivery_id: i64,
    pub endpoint_id: i64,
    pub url: String,
    pub allow_private: bool,
    /// `whsec_…`, current first.
    pub secrets: Vec<String>,
    pub message_id: String,
    pub event_type: String,
    pub payload: String,
    /// Attempts before this one (since the delivery was made or resent).
    pub attempts: i64,
}

impl fmt::Debug for DueDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DueDelivery")
            .field("delivery_id", &self.delivery_id)
            .field("endpoint_id", &self.endpoint_id)
            .field("message_id", &self.message_id)
            .field("event_type", &self.event_type)
            .field("attempts", &self.attempts)
            .field("secrets", &"***")
            .finish_non_exhaustive()
    }
}

/// What an attempt means for its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A 2xx: done.
    Delivered,
    /// Try again at this time.
    Retry { at: Timestamp },
    /// The last retry failed: given up.
    Failed,
    /// `410 Gone`: given up, and the endpoint is disabled.
    Gone,
}

/// One attempt, as the delivery job records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhookAttempt {
    pub delivery_id: i64,
    pub attempted_at: Timestamp,
    /// The HTTP status; `None` without an answer.
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    /// Short; never a secret.
    pub error: Option<String>,
    pub outcome: AttemptOutcome,
}

/// A delivery for the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookDeliveryRow {
    pub id: i64,
    pub endpoint_id: i64,
    pub event_id: i64,
    pub message_id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// One attempt for the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookAttemptRow {
    pub id: i64,
    pub delivery_id: i64,
    pub attempted_at: Timestamp,
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
}

/// The webhook methods of every store. Each is one transaction.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    // --- endpoints --------------------------------------------------------------------
    async fn create_webhook_endpoint(
        &self,
        endpoint: NewWebhookEndpoint,
    ) -> StoreResult<WebhookEndpoint>;
    /// Every endpoint, oldest first.
    async fn list_webhook_endpoints(&self) -> StoreResult<Vec<WebhookEndpoint>>;
    async fn get_webhook_endpoint(&self, id: i64) -> StoreResult<WebhookEndpoint>;
    /// A new secret; the old one keeps signing until `previous_until`.
    async fn rotate_webhook_secret(
        &self,
        id: i64,
        secret: &str,
        previous_until: Timestamp,
        audit: NewAudit,
    ) -> StoreResult<WebhookEndpoint>;
    /// `Some(reason)` disables the endpoint, `None` enables it. Pending
    /// deliveries wait while it is disabled and go out once it is enabled again.
    async fn set_webhook_endpoint_enabled(
        &self,
        id: i64,
        disabled_reason: Option<&str>,
        audit: NewAudit,
    ) -> StoreResult<WebhookEndpoint>;

    // --- events -----------------------------------------------------------------------
    /// Reads up to `limit` ledger transfers past the cursor, turns their
    /// bookings into events with `events_for`, writes a delivery for every
    /// enabled endpoint subscribed to each, and moves the cursor: one transaction.
    async fn ingest_ledger_events(
        &self,
        events_for: &EventsFor,
        limit: i64,
        now: Timestamp,
    ) -> StoreResult<IngestOutcome>;
    /// Queues an event outside the ledger: to `only_endpoint` whatever it
    /// subscribes to (a console test), or else to every enabled subscriber.
    /// Returns how many deliveries were written.
    async fn queue_webhook_event(
        &self,
        event: NewWebhookEvent,
        only_endpoint: Option<i64>,
        audit: Option<NewAudit>,
    ) -> StoreResult<usize>;
    /// Where the events job has read the ledger up to.
    async fn webhook_cursor(&self) -> StoreResult<i64>;

    // --- deliveries -------------------------------------------------------------------
    /// Claims up to `limit` due deliveries of enabled endpoints until
    /// `now + lease_seconds`.
    async fn claim_webhook_deliveries(
        &self,
        now: Timestamp,
        lease_seconds: i64,
        limit: i64,
    ) -> StoreResult<Vec<DueDelivery>>;
    /// Records an attempt and what it means (delivered, retry, failed, endpoint gone).
    async fn record_webhook_attempt(&self, attempt: NewWebhookAttempt) -> StoreResult<()>;
    /// An endpoint's deliveries, newest first.
    async fn list_webhook_deliveries(
        &self,
        endpoint_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<WebhookDeliveryRow>>;
    async fn get_webhook_delivery(&self, id: i64) -> StoreResult<WebhookDeliveryRow>;
    /// A delivery's attempts, oldest first.
    async fn list_webhook_attempts(&self, delivery_id: i64) -> StoreResult<Vec<WebhookAttemptRow>>;
    /// Sends a delivery again, with the same `webhook-id`: due at `now`, its
    /// retries counted afresh. Refused while its endpoint is disabled.
    async fn resend_webhook_delivery(
        &self,
        delivery_id: i64,
        audit: NewAudit,
        now: Timestamp,
    ) -> StoreResult<WebhookDeliveryRow>;
    /// Deletes finished runs of the given job kinds from before `before`: the
    /// webhook jobs run every few seconds and would otherwise fill `jobs`.
    async fn purge_finished_jobs(&self, kinds: &[&str], before: Timestamp) -> StoreResult<u64>;
}

pub(crate) const ENDPOINT_COLUMNS: &str = "id, url, description, secret, previous_secret, previous_secret_until, event_types, allow_private, enabled, disabled_reason, disabled_at, created_at, updated_at";

pub(crate) type EndpointTuple = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<i64>,
    String,
    i64,
    i64,
    Option<String>,
    Option<i64>,
    i64,
    i64,
);

pub(crate) fn endpoint_row(row: EndpointTuple) -> WebhookEndpoint {
    let (
        id,
        url,
        description,
        secret,
        previous_secret,
        previous_secret_until,
        event_types,
        allow_private,
        enabled,
        disabled_reason,
        disabled_at,
        created_at,
        updated_at,
    ) = row;
    WebhookEndpoint {
        id,
        url,
        description,
        secret,
        previous_secret,
        previous_secret_until: previous_secret_until.map(Timestamp::from_millis),
        event_types: event_types.split(' ').map(str::to_owned).collect(),
        allow_private: allow_private == 1,
        enabled: enabled == 1,
        disabled_reason,
        disabled_at: disabled_at.map(Timestamp::from_millis),
        created_at: Timestamp::from_millis(created_at),
        updated_at: Timestamp::from_millis(updated_at),
    }
}

pub(crate) const DELIVERY_COLUMNS: &str = "d.id, d.endpoint_id, d.event_id, e.message_id, e.event_type, d.status, d.attempts, d.next_attempt_at, d.last_status, d.last_error, d.delivered_at, d.created_at";

pub(crate) type DeliveryTuple = (
    i64,
    i64,
    i64,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
    i64,
);

pub(crate) fn delivery_row(row: DeliveryTuple) -> WebhookDeliveryRow {
    let (
        id,
        endpoint_id,
        event_id,
        message_id,
        event_type,
        status,
        attempts,
        next_attempt_at,
        last_status,
        last_error,
        delivered_at,
        created_at,
    ) = row;
    WebhookDeliveryRow {
        id,
        endpoint_id,
        event_id,
        message_id,
        event_type,
        status,
        attempts,
        next_attempt_at: Timestamp::from_millis(next_attempt_at),
        last_status,
        last_error,
        delivered_at: delivered_at.map(Timestamp::from_millis),
        created_at: Timestamp::from_millis(created_at),
    }
}

/// Groups transfers (ordered by id) into bookings by source, in the order of
/// their first leg.
pub(crate) fn group_bookings(
    rows: Vec<crate::money::TransferRow>,
) -> Vec<(i64, Timestamp, Vec<Transfer>)> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: std::collections::HashMap<String, (i64, Timestamp, Vec<Transfer>)> =
        std::collections::HashMap::new();
    for row in rows {
        let key = row.transfer.source.key();
        let entry = groups.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            (row.id, row.created_at, Vec::new())
        });
        entry.2.push(row.transfer);
    }
    order
        .into_iter()
        .filter_map(|key| groups.remove(&key))
        .map(|(id, at, mut legs)| {
            legs.sort_by_key(|t| t.leg);
            (id, at, legs)
        })
        .collect()
}

/// Whether a booking's source names a withdrawal, and which.
pub(crate) fn withdrawal_of(source: &Source) -> Option<&str> {
    match source {
        Source::Withdrawal { withdrawal }
        | Source::Payout { withdrawal }
        | Source::MoneyBack { withdrawal } => Some(withdrawal),
        _ => None,
    }
}

macro_rules! webhook_store {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn endpoint_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                id: i64,
            ) -> $crate::StoreResult<$crate::webhooks_sql::WebhookEndpoint> {
                let sql = format!(
                    "select {} from webhook_endpoints where id = $1",
                    $crate::webhooks_sql::ENDPOINT_COLUMNS
                );
                let row: Option<$crate::webhooks_sql::EndpointTuple> =
                    sqlx::query_as(&sql).bind(id).fetch_optional(&mut **tx).await?;
                row.map($crate::webhooks_sql::endpoint_row)
                    .ok_or($crate::StoreError::NotFound)
            }

            /// Inserts an event and a pending delivery to each of `endpoints`;
            /// nothing when the event's source is known already. Returns the
            /// deliveries written.
            async fn insert_webhook_event(
                tx: &mut sqlx::Transaction<'_, $db>,
                event: &$crate::webhooks_sql::NewWebhookEvent,
                endpoints: &[i64],
            ) -> $crate::StoreResult<Option<usize>> {
                let inserted: Option<(i64,)> = sqlx::query_as(
                    "insert into webhook_events (message_id, event_type, source, payload, created_at) \
                     values ($1, $2, $3, $4, $5) on conflict (source) do nothing returning id",
                )
                .bind(&event.message_id)
                .bind(&event.event_type)
                .bind(&event.source)
                .bind(&event.payload)
                .bind(event.created_at.millis())
                .fetch_optional(&mut **tx)
                .await?;
                let Some((event_id,)) = inserted else {
                    return Ok(None);
                };
                for endpoint_id in endpoints {
                    sqlx::query(
                        "insert into webhook_deliveries (event_id, endpoint_id, status, attempts, next_attempt_at, created_at, updated_at) \
                         values ($1, $2, 'pending', 0, $3, $3, $3)",
                    )
                    .bind(event_id)
                    .bind(endpoint_id)
                    .bind(event.created_at.millis())
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(Some(endpoints.len()))
            }

            async fn enabled_endpoints(
                tx: &mut sqlx::Transaction<'_, $db>,
            ) -> $crate::StoreResult<Vec<$crate::webhooks_sql::WebhookEndpoint>> {
                let sql = format!(
                    "select {} from webhook_endpoints where enabled = 1 order by id",
                    $crate::webhooks_sql::ENDPOINT_COLUMNS
                );
                let rows: Vec<$crate::webhooks_sql::EndpointTuple> =
                    sqlx::query_as(&sql).fetch_all(&mut **tx).await?;
                Ok(rows.into_iter().map($crate::webhooks_sql::endpoint_row).collect())
            }
        }

        #[async_trait::async_trait]
        impl $crate::webhooks_sql::WebhookStore for $store {
            async fn create_webhook_endpoint(
                &self,
                endpoint: $crate::webhooks_sql::NewWebhookEndpoint,
            ) -> $crate::StoreResult<$crate::webhooks_sql::WebhookEndpoint> {
                let mut tx = self.write().await?;
                let at = endpoint.created_at.millis();
                let (id,): (i64,) = sqlx::query_as(
                    "insert into webhook_endpoints (url, description, secret, event_types, allow_private, enabled, created_at, updated_at) \
                     values ($1, $2, $3, $4, $5, 1, $6, $6) returning id",
                )
                .bind(&endpoint.url)
                .bind(&endpoint.description)
                .bind(&endpoint.secret)
                .bind(endpoint.event_types.join(" "))
                .bind(i64::from(endpoint.allow_private))
                .bind(at)
                .fetch_one(&mut *tx)
                .await?;
                let mut audit = endpoint.audit;
                audit.object = format!("webhook_endpoint:{id}");
                Self::insert_audit(&mut tx, &audit).await?;
                let row = Self::endpoint_in(&mut tx, id).await?;
                tx.commit().await?;
                Ok(row)
            }

            async fn list_webhook_endpoints(
                &self,
            ) -> $crate::StoreResult<Vec<$crate::webhooks_sql::WebhookEndpoint>> {
                let sql = format!(
                    "select {} from webhook_endpoints order by id",
                    $crate::webhooks_sql::ENDPOINT_COLUMNS
                );
                let rows: Vec<$crate::webhooks_sql::EndpointTuple> =
                    sqlx::query_as(&sql).fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map($crate::webhooks_sql::endpoint_row).collect())
            }

            async fn get_webhook_endpoint(
                &self,
                id: i64,
            ) -> $crate::StoreResult<$crate::webhooks_sql::WebhookEndpoint> {
                let sql = format!(
                    "select {} from webhook_endpoints where id = $1",
                    $crate::webhooks_sql::ENDPOINT_COLUMNS
                );
                let row: Option<$crate::webhooks_sql::EndpointTuple> =
                    sqlx::query_as(&sql).bind(id).fetch_optional(&self.pool).await?;
                row.map($crate::webhooks_sql::endpoint_row)
                    .ok_or($crate::StoreError::NotFound)
            }

            async fn rotate_webhook_secret(
                &self,
                id: i64,
                secret: &str,
                previous_until: partnerd_domain::Timestamp,
                audit: $crate::NewAudit,
            ) -> $crate::StoreResult<$crate::webhooks_sql::WebhookEndpoint> {
                let mut tx = self.write().await?;
                let updated = sqlx::query(
                    "update webhook_endpoints set previous_secret = secret, previous_secret_until = $1, \
                     secret = $2, updated_at = $3 where id = $4",
                )
                .bind(previous_until.millis())
                .bind(secret)
                .bind(audit.at.millis())
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                Self::insert_audit(&mut tx, &audit).await?;
                let row = Self::endpoint_in(&mut tx, id).await?;
                tx.commit().await?;
                Ok(row)
            }

            async fn set_webhook_endpoint_enabled(
                &self,
                id: i64,
                disabled_reason: Option<&str>,
                audit: $crate::NewAudit,
            ) -> $crate::StoreResult<$crate::webhooks_sql::WebhookEndpoint> {
                let mut tx = self.write().await?;
                let at = audit.at.millis();
                let updated = sqlx::query(
                    "update webhook_endpoints set enabled = $1, disabled_reason = $2, \
                     disabled_at = case when $1 = 1 then null else $3 end, updated_at = $3 where id = $4",
                )
                .bind(i64::from(disabled_reason.is_none()))
                .bind(disabled_reason)
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                Self::insert_audit(&mut tx, &audit).await?;
                let row = Self::endpoint_in(&mut tx, id).await?;
                tx.commit().await?;
                Ok(row)
            }

            async fn ingest_ledger_events(
                &self,
                events_for: &$crate::webhooks_sql::EventsFor,
                limit: i64,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<$crate::webhooks_sql::IngestOutcome> {
                let mut outcome = $crate::webhooks_sql::IngestOutcome::default();
                let mut tx = self.write().await?;
                let postgres = Self::BACKEND == $crate::Backend::Postgres;
                if postgres {
                    // See the module doc: every id up to the highest we read is committed.
                    sqlx::query("lock table ledger_transfers in share mode")
                        .execute(&mut *tx)
                        .await?;
                }
                let cursor_sql = if postgres {
                    "select last_transfer_id from webhook_cursor where id = 1 for update"
                } else {
                    "select last_transfer_id from webhook_cursor where id = 1"
                };
                let (cursor,): (i64,) = sqlx::query_as(cursor_sql).fetch_one(&mut *tx).await?;
                let (upto,): (Option<i64>,) = sqlx::query_as(
                    "select max(id) from (select id from ledger_transfers where id > $1 order by id limit $2) batch",
                )
                .bind(cursor)
                .bind(limit)
                .fetch_one(&mut *tx)
                .await?;
                let Some(upto) = upto else {
                    return Ok(outcome);
                };
                let endpoints = Self::enabled_endpoints(&mut tx).await?;
                // Every leg of every booking touched in (cursor, upto], so an event
                // always sees its whole booking even when a batch ends inside it;
                // with no endpoint to deliver to, none is read, only passed.
                let rows: Vec<$crate::money_sql::TransferTuple> = if endpoints.is_empty() {
                    let (passed,): (i64,) = sqlx::query_as(
                        "select count(*) from ledger_transfers where id > $1 and id <= $2",
                    )
                    .bind(cursor)
                    .bind(upto)
                    .fetch_one(&mut *tx)
                    .await?;
                    outcome.transfers = usize::try_from(passed).unwrap_or(0);
                    Vec::new()
                } else {
                    let sql = format!(
                        "select {} from ledger_transfers where source in \
                         (select source from ledger_transfers where id > $1 and id <= $2) order by id",
                        $crate::money_sql::TRANSFER_COLUMNS
                    );
                    let rows: Vec<$crate::money_sql::TransferTuple> = sqlx::query_as(&sql)
                        .bind(cursor)
                        .bind(upto)
                        .fetch_all(&mut *tx)
                        .await?;
                    outcome.transfers = rows.iter().filter(|r| r.0 > cursor && r.0 <= upto).count();
                    rows
                };
                let rows = rows
                    .into_iter()
                    .map($crate::money_sql::transfer_row)
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                let mut public_ids: std::collections::HashMap<i64, String> =
                    std::collections::HashMap::new();
                for (first_id, booked_at, transfers) in $crate::webhooks_sql::group_bookings(rows) {
                    // A booking whose first legs an earlier run read is its event
                    // already: the unique source turns it into nothing below.
                    let Some(first) = transfers.first() else { continue };
                    let (source, partner_id, currency) =
                        (first.source.clone(), first.partner_id, first.currency);
                    let public_id = match public_ids.get(&partner_id) {
                        Some(known) => known.clone(),
                        None => {
                            let (public_id,): (String,) =
                                sqlx::query_as("select public_id from partners where id = $1")
                                    .bind(partner_id)
                                    .fetch_one(&mut *tx)
                                    .await?;
                            public_ids.insert(partner_id, public_id.clone());
                            public_id
                        }
                    };
                    let (withdrawal_status, payout_status) =
                        match $crate::webhooks_sql::withdrawal_of(&source) {
                            Some(withdrawal) => {
                                let row: Option<(String, Option<String>)> = sqlx::query_as(
                                    "select w.status, p.status from withdrawals w \
                                     left join payout_items p on p.withdrawal_id = w.id where w.id = $1",
                                )
                                .bind(withdrawal)
                                .fetch_optional(&mut *tx)
                                .await?;
                                match row {
                                    Some((status, payout)) => (
                                        partnerd_domain::ledger::WithdrawalStatus::parse(&status),
                                        payout,
                                    ),
                                    None => (None, None),
                                }
                            }
                            None => (None, None),
                        };
                    let booking = $crate::webhooks_sql::LedgerBooking {
                        source,
                        partner_id,
                        partner_public_id: public_id,
                        currency,
                        transfers,
                        first_transfer_id: first_id,
                        booked_at,
                        withdrawal_status,
                        payout_status,
                    };
                    let Some(event) = events_for(&booking) else { continue };
                    let subscribers: Vec<i64> = endpoints
                        .iter()
                        .filter(|e| e.subscribes_to(&event.event_type))
                        .map(|e| e.id)
                        .collect();
                    if subscribers.is_empty() {
                        continue;
                    }
                    if let Some(written) = Self::insert_webhook_event(&mut tx, &event, &subscribers).await? {
                        outcome.events += 1;
                        outcome.deliveries += written;
                    }
                }
                sqlx::query("update webhook_cursor set last_transfer_id = $1, updated_at = $2 where id = 1")
                    .bind(upto)
                    .bind(now.millis())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(outcome)
            }

            async fn queue_webhook_event(
                &self,
                event: $crate::webhooks_sql::NewWebhookEvent,
                only_endpoint: Option<i64>,
                audit: Option<$crate::NewAudit>,
            ) -> $crate::StoreResult<usize> {
                let mut tx = self.write().await?;
                let endpoints: Vec<i64> = match only_endpoint {
                    Some(id) => {
                        let endpoint = Self::endpoint_in(&mut tx, id).await?;
                        if !endpoint.enabled {
                            return Err($crate::StoreError::Invalid(
                                "the endpoint is disabled; enable it first",
                            ));
                        }
                        vec![endpoint.id]
                    }
                    None => Self::enabled_endpoints(&mut tx)
                        .await?
                        .into_iter()
                        .filter(|e| e.subscribes_to(&event.event_type))
                        .map(|e| e.id)
                        .collect(),
                };
                let written = if endpoints.is_empty() {
                    0
                } else {
                    Self::insert_webhook_event(&mut tx, &event, &endpoints)
                        .await?
                        .unwrap_or(0)
                };
                if let Some(audit) = &audit {
                    Self::insert_audit(&mut tx, audit).await?;
                }
                tx.commit().await?;
                Ok(written)
            }

            async fn webhook_cursor(&self) -> $crate::StoreResult<i64> {
                let (cursor,): (i64,) =
                    sqlx::query_as("select last_transfer_id from webhook_cursor where id = 1")
                        .fetch_one(&self.pool)
                        .await?;
                Ok(cursor)
            }

            async fn claim_webhook_deliveries(
                &self,
                now: partnerd_domain::Timestamp,
                lease_seconds: i64,
                limit: i64,
            ) -> $crate::StoreResult<Vec<$crate::webhooks_sql::DueDelivery>> {
                let mut tx = self.write().await?;
                let lock = match Self::BACKEND {
                    $crate::Backend::Postgres => " for update of d skip locked",
                    $crate::Backend::Sqlite => "",
                };
                let sql = format!(
                    "select d.id, d.endpoint_id, d.attempts, ev.message_id, ev.event_type, ev.payload \
                     from webhook_deliveries d \
                     join webhook_endpoints en on en.id = d.endpoint_id \
                     join webhook_events ev on ev.id = d.event_id \
                     where d.status = 'pending' and d.next_attempt_at <= $1 \
                       and (d.locked_until is null or d.locked_until < $1) and en.enabled = 1 \
                     order by d.next_attempt_at, d.id limit $2{lock}"
                );
                let rows: Vec<(i64, i64, i64, String, String, String)> = sqlx::query_as(&sql)
                    .bind(now.millis())
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut due = Vec::with_capacity(rows.len());
                let mut endpoints: std::collections::HashMap<i64, $crate::webhooks_sql::WebhookEndpoint> =
                    std::collections::HashMap::new();
                for (delivery_id, endpoint_id, attempts, message_id, event_type, payload) in rows {
                    sqlx::query("update webhook_deliveries set locked_until = $1 where id = $2")
                        .bind(now.plus_seconds(lease_seconds).millis())
                        .bind(delivery_id)
                        .execute(&mut *tx)
                        .await?;
                    if !endpoints.contains_key(&endpoint_id) {
                        let endpoint = Self::endpoint_in(&mut tx, endpoint_id).await?;
                        endpoints.insert(endpoint_id, endpoint);
                    }
                    let endpoint = &endpoints[&endpoint_id];
                    due.push($crate::webhooks_sql::DueDelivery {
                        delivery_id,
                        endpoint_id,
                        url: endpoint.url.clone(),
                        allow_private: endpoint.allow_private,
                        secrets: endpoint.signing_secrets(now),
                        message_id,
                        event_type,
                        payload,
                        attempts,
                    });
                }
                tx.commit().await?;
                Ok(due)
            }

            async fn record_webhook_attempt(
                &self,
                attempt: $crate::webhooks_sql::NewWebhookAttempt,
            ) -> $crate::StoreResult<()> {
                use $crate::webhooks_sql::AttemptOutcome;
                let mut tx = self.write().await?;
                let at = attempt.attempted_at.millis();
                let (endpoint_id,): (i64,) =
                    sqlx::query_as("select endpoint_id from webhook_deliveries where id = $1")
                        .bind(attempt.delivery_id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or($crate::StoreError::NotFound)?;
                sqlx::query(
                    "insert into webhook_attempts (delivery_id, attempted_at, status_code, duration_ms, error) \
                     values ($1, $2, $3, $4, $5)",
                )
                .bind(attempt.delivery_id)
                .bind(at)
                .bind(attempt.status_code)
                .bind(attempt.duration_ms.max(0))
                .bind(&attempt.error)
                .execute(&mut *tx)
                .await?;
                let (status, next_at, delivered_at) = match attempt.outcome {
                    AttemptOutcome::Delivered => ("delivered", at, Some(at)),
                    AttemptOutcome::Retry { at: retry } => ("pending", retry.millis(), None),
                    AttemptOutcome::Failed | AttemptOutcome::Gone => ("failed", at, None),
                };
                // Only a pending delivery moves on: another worker whose lease was
                // newer may have finished it already.
                sqlx::query(
                    "update webhook_deliveries set status = $1, attempts = attempts + 1, next_attempt_at = $2, \
                     locked_until = null, last_status = $3, last_error = $4, delivered_at = $5, updated_at = $6 \
                     where id = $7 and status = 'pending'",
                )
                .bind(status)
                .bind(next_at)
                .bind(attempt.status_code)
                .bind(&attempt.error)
                .bind(delivered_at)
                .bind(at)
                .bind(attempt.delivery_id)
                .execute(&mut *tx)
                .await?;
                if attempt.outcome == AttemptOutcome::Gone {
                    let disabled = sqlx::query(
                        "update webhook_endpoints set enabled = 0, disabled_reason = $1, disabled_at = $2, updated_at = $2 \
                         where id = $3 and enabled = 1",
                    )
                    .bind("the receiver answered 410 Gone")
                    .bind(at)
                    .bind(endpoint_id)
                    .execute(&mut *tx)
                    .await?;
                    if disabled.rows_affected() == 1 {
                        let audit = $crate::NewAudit::new(
                            attempt.attempted_at,
                            "system",
                            "webhook_endpoint.disable",
                            format!("webhook_endpoint:{endpoint_id}"),
                        )
                        .before_after(None, Some(serde_json::json!({ "reason": "410 Gone" })));
                        Self::insert_audit(&mut tx, &audit).await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn list_webhook_deliveries(
                &self,
                endpoint_id: i64,
                limit: i64,
            ) -> $crate::StoreResult<Vec<$crate::webhooks_sql::WebhookDeliveryRow>> {
                let sql = format!(
                    "select {} from webhook_deliveries d join webhook_events e on e.id = d.event_id \
                     where d.endpoint_id = $1 order by d.id desc limit $2",
                    $crate::webhooks_sql::DELIVERY_COLUMNS
                );
                let rows: Vec<$crate::webhooks_sql::DeliveryTuple> = sqlx::query_as(&sql)
                    .bind(endpoint_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map($crate::webhooks_sql::delivery_row).collect())
            }

            async fn get_webhook_delivery(
                &self,
                id: i64,
            ) -> $crate::StoreResult<$crate::webhooks_sql::WebhookDeliveryRow> {
                let sql = format!(
                    "select {} from webhook_deliveries d join webhook_events e on e.id = d.event_id where d.id = $1",
                    $crate::webhooks_sql::DELIVERY_COLUMNS
                );
                let row: Option<$crate::webhooks_sql::DeliveryTuple> =
                    sqlx::query_as(&sql).bind(id).fetch_optional(&self.pool).await?;
                row.map($crate::webhooks_sql::delivery_row)
                    .ok_or($crate::StoreError::NotFound)
            }

            async fn list_webhook_attempts(
                &self,
                delivery_id: i64,
            ) -> $crate::StoreResult<Vec<$crate::webhooks_sql::WebhookAttemptRow>> {
                let rows: Vec<(i64, i64, i64, Option<i64>, i64, Option<String>)> = sqlx::query_as(
                    "select id, delivery_id, attempted_at, status_code, duration_ms, error \
                     from webhook_attempts where delivery_id = $1 order by id",
                )
                .bind(delivery_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, delivery_id, at, status_code, duration_ms, error)| {
                        $crate::webhooks_sql::WebhookAttemptRow {
                            id,
                            delivery_id,
                            attempted_at: partnerd_domain::Timestamp::from_millis(at),
                            status_code,
                            duration_ms,
                            error,
                        }
                    })
                    .collect())
            }

            async fn resend_webhook_delivery(
                &self,
                delivery_id: i64,
                audit: $crate::NewAudit,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<$crate::webhooks_sql::WebhookDeliveryRow> {
                let mut tx = self.write().await?;
                let (endpoint_id,): (i64,) =
                    sqlx::query_as("select endpoint_id from webhook_deliveries where id = $1")
                        .bind(delivery_id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or($crate::StoreError::NotFound)?;
                if !Self::endpoint_in(&mut tx, endpoint_id).await?.enabled {
                    return Err($crate::StoreError::Invalid(
                        "the endpoint is disabled; enable it first",
                    ));
                }
                sqlx::query(
                    "update webhook_deliveries set status = 'pending', attempts = 0, next_attempt_at = $1, \
                     locked_until = null, delivered_at = null, updated_at = $1 where id = $2",
                )
                .bind(now.millis())
                .bind(delivery_id)
                .execute(&mut *tx)
                .await?;
                Self::insert_audit(&mut tx, &audit).await?;
                let sql = format!(
                    "select {} from webhook_deliveries d join webhook_events e on e.id = d.event_id where d.id = $1",
                    $crate::webhooks_sql::DELIVERY_COLUMNS
                );
                let row: $crate::webhooks_sql::DeliveryTuple =
                    sqlx::query_as(&sql).bind(delivery_id).fetch_one(&mut *tx).await?;
                tx.commit().await?;
                Ok($crate::webhooks_sql::delivery_row(row))
            }

            async fn purge_finished_jobs(
                &self,
                kinds: &[&str],
                before: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<u64> {
                let mut tx = self.write().await?;
                let mut purged = 0;
                for kind in kinds {
                    purged += sqlx::query("delete from jobs where status = 'done' and kind = $1 and run_at < $2")
                        .bind(kind)
                        .bind(before.millis())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                tx.commit().await?;
                Ok(purged)
            }
        }
    };
}

pub(crate) use webhook_store;
