//! What Stripe webhooks need stored besides the bookings (migration 0006): the
//! events seen, the charge → invoice links, the events waiting for one, how a
//! charge's cumulative refunded amount is shared out among refunds, and the
//! signing secrets saved in the console.
//!
//! [`StripeStore`] is a supertrait of [`Store`](crate::Store), like
//! [`MoneyStore`](crate::MoneyStore), so that its statements live here, written
//! once for both engines (`stripe_store!`, expanded beside `shared_store!`).
//! The bookings themselves go through `MoneyStore`; nothing here moves money.
//!
//! Ordering: a refund whose charge is not linked yet is parked, and the call that
//! links the charge returns it to be booked. Both take the same lock (a
//! transaction-scoped advisory lock on PostgreSQL; SQLite's writers already take
//! turns), so a park and a link never miss each other: either the park sees the
//! link, or the link sees the parked event. The same lock serialises the sharing
//! of a charge's refunded amount, so two deliveries at once never share it twice.

use async_trait::async_trait;
use partnerd_domain::Timestamp;

use crate::money_sql::{BillingDb, args};
use crate::{NewAudit, StoreResult};

/// What became of a verified event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripeEventOutcome {
    /// Its bookings committed.
    Booked,
    /// Waiting in the pending table for a charge link or a sign-up.
    Pending,
    /// Nothing to book (a type partnerd does not book, or no referral).
    Ignored,
}

impl StripeEventOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Booked => "booked",
            Self::Pending => "pending",
            Self::Ignored => "ignored",
        }
    }

    fn parse(value: &str) -> StoreResult<Self> {
        Ok(match value {
            "booked" => Self::Booked,
            "pending" => Self::Pending,
            "ignored" => Self::Ignored,
            other => {
                return Err(crate::StoreError::Corrupt(format!(
                    "stored Stripe event outcome {other:?}"
                )));
            }
        })
    }
}

/// A processed event, recorded once its bookings committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeEventRecord {
    /// `evt_…`
    pub event_id: String,
    pub event_type: String,
    pub outcome: StripeEventOutcome,
    pub at: Timestamp,
}

/// An invoice and the charge / payment intent ids that paid it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeChargeLink {
    /// `in_…`
    pub invoice_id: String,
    /// `ch_…` and `pi_…` ids; empty ones are skipped.
    pub aliases: Vec<String>,
    pub now: Timestamp,
}

/// What a parked event waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StripeWait {
    /// A refund or dispute: a link from its charge or payment intent to an invoice.
    Charge {
        charge_id: Option<String>,
        payment_intent_id: Option<String>,
    },
    /// A payment: the customer's sign-up, which fixes who is credited (R-AFF-4).
    Signup { customer_id: String },
}

/// An event to park unless what it waits for is already there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStripePending {
    pub event_id: String,
    pub event_type: String,
    pub wait: StripeWait,
    /// JSON of what the booking needs; the app's own shape.
    pub payload: String,
    pub received_at: Timestamp,
}

/// The answer to [`StripeStore::park_stripe_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StripeParking {
    /// What the event waits for is there: book it now. For a charge wait, the
    /// invoice the charge paid; `None` for a sign-up wait.
    Ready { invoice_id: Option<String> },
    /// Parked (and recorded as a pending event); the link or sign-up books it.
    Parked,
}

/// A parked event, returned to be booked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripePendingEvent {
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    pub received_at: Timestamp,
}

/// A refund of a charge asking for its share of the charge's refunded amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefundShare {
    /// `re_…`, or `ch_…/refunded/{cumulative}` when the event lists no refunds.
    pub refund_key: String,
    pub charge_id: String,
    /// The refund's own amount when the event lists it; `None` for a share of
    /// the cumulative amount.
    pub requested: Option<i64>,
    /// The charge's `amount_refunded` in the event: no share goes above it.
    pub cumulative: i64,
    pub now: Timestamp,
}

/// A signing secret saved in the console. `Debug` masks the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct StripeSigningSecret {
    pub id: i64,
    /// `whsec_…`: used to verify, never shown again.
    pub secret: String,
    /// The secret's last four characters.
    pub hint: String,
    pub created_by: String,
    pub created_at: Timestamp,
}

impl std::fmt::Debug for StripeSigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeSigningSecret")
            .field("id", &self.id)
            .field("secret", &"***")
            .field("hint", &self.hint)
            .field("created_by", &self.created_by)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// The hint shown for a secret: its last four characters.
pub fn secret_hint(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

/// The share a refund gets of a charge whose refunds booked so far total
/// `booked`: never more than the refund asks, never past `cumulative`.
pub(crate) fn refund_share(requested: Option<i64>, cumulative: i64, booked: i64) -> i64 {
    requested
        .unwrap_or(i64::MAX)
        .min(cumulative.saturating_sub(booked))
        .max(0)
}

/// The Stripe methods of every store. Each is one transaction.
#[async_trait]
pub trait StripeStore: Send + Sync {
    /// What became of event `event_id`, if it was processed before.
    async fn stripe_event_outcome(&self, event_id: &str)
    -> StoreResult<Option<StripeEventOutcome>>;
    /// Records a processed event; an event recorded before keeps its record.
    async fn record_stripe_event(&self, record: &StripeEventRecord) -> StoreResult<()>;
    /// Links charges and payment intents to the invoice they paid (a link made
    /// before is kept) and returns every parked event now linked to the invoice,
    /// oldest first. They stay parked until [`Self::finish_stripe_pending`].
    async fn link_stripe_charge(
        &self,
        link: &StripeChargeLink,
    ) -> StoreResult<Vec<StripePendingEvent>>;
    /// The invoice a charge (or, failing that, a payment intent) paid, if linked.
    async fn stripe_invoice_of(
        &self,
        charge_id: Option<&str>,
        payment_intent_id: Option<&str>,
    ) -> StoreResult<Option<String>>;
    /// Parks the event unless what it waits for is there, in one transaction
    /// with the check; a parked event is also recorded with outcome `Pending`.
    async fn park_stripe_event(&self, pending: &NewStripePending) -> StoreResult<StripeParking>;
    /// The parked payments waiting for `customer_id`'s sign-up, oldest first.
    async fn stripe_pending_for_customer(
        &self,
        customer_id: &str,
    ) -> StoreResult<Vec<StripePendingEvent>>;
    /// A parked event was booked: it leaves the pending table, its record says booked.
    async fn finish_stripe_pending(&self, event_id: &str, now: Timestamp) -> StoreResult<()>;
    /// The share of its charge's refunded amount a refund books: fixed the first
    /// time it is asked for, the same on every later call.
    async fn claim_stripe_refund_share(&self, share: &NewRefundShare) -> StoreResult<i64>;

    /// The signing secrets saved in the console, oldest first.
    async fn stripe_signing_secrets(&self) -> StoreResult<Vec<StripeSigningSecret>>;
    /// Saves a signing secret with its audit entry. The same secret twice:
    /// `Conflict { field: "secret" }`.
    async fn add_stripe_signing_secret(
        &self,
        secret: &str,
        audit: NewAudit,
    ) -> StoreResult<StripeSigningSecret>;
    /// Deletes a saved secret with its audit entry; `NotFound` if there is none.
    async fn delete_stripe_signing_secret(&self, id: i64, audit: NewAudit) -> StoreResult<()>;
}

pub(crate) type SecretTuple = (i64, String, String, String, i64);

pub(crate) fn secret_row(row: SecretTuple) -> StripeSigningSecret {
    let (id, secret, hint, created_by, created_at) = row;
    StripeSigningSecret {
        id,
        secret,
        hint,
        created_by,
        created_at: Timestamp::from_millis(created_at),
    }
}

pub(crate) type PendingTuple = (String, String, String, i64);

pub(crate) fn pending_row(row: PendingTuple) -> StripePendingEvent {
    let (event_id, event_type, payload, received_at) = row;
    StripePendingEvent {
        event_id,
        event_type,
        payload,
        received_at: Timestamp::from_millis(received_at),
    }
}

pub(crate) fn outcome(value: &str) -> StoreResult<StripeEventOutcome> {
    StripeEventOutcome::parse(value)
}

/// Serialises the Stripe bookkeeping (see the module header): an advisory lock
/// held to the end of the transaction on PostgreSQL; nothing on SQLite, whose
/// write transactions begin `IMMEDIATE`.
pub(crate) async fn lock_stripe<D: BillingDb>(db: &mut D) -> StoreResult<()> {
    if D::BACKEND == crate::Backend::Postgres {
        db.execute("select pg_advisory_xact_lock(7261006)", &[])
            .await?;
    }
    Ok(())
}

/// Records a processed event inside `db`; one recorded before keeps its record.
/// Returns 1 when recorded now, 0 when it was recorded before.
pub(crate) async fn record_stripe_event_in<D: BillingDb>(
    db: &mut D,
    record: &StripeEventRecord,
) -> StoreResult<u64> {
    let booked_at = (record.outcome == StripeEventOutcome::Booked).then_some(record.at.millis());
    db.execute(
        "insert into stripe_events (id, event_type, outcome, received_at, booked_at) \
         values ($1, $2, $3, $4, $5) on conflict (id) do nothing",
        &args![
            &record.event_id,
            &record.event_type,
            record.outcome.as_str(),
            record.at.millis(),
            booked_at,
        ],
    )
    .await
}

/// Links charges to their invoice inside `db` (under the Stripe lock) and
/// returns the parked events now linked to it.
pub(crate) async fn link_stripe_charge_in<D: BillingDb>(
    db: &mut D,
    link: &StripeChargeLink,
) -> StoreResult<Vec<StripePendingEvent>> {
    lock_stripe(db).await?;
    for alias in link.aliases.iter().filter(|a| !a.is_empty()) {
        // A charge pays one invoice: the first link stays.
        db.execute(
            "insert into stripe_aliases (alias, invoice_id, created_at) values ($1, $2, $3) \
             on conflict (alias) do nothing",
            &args![alias, &link.invoice_id, link.now.millis()],
        )
        .await?;
    }
    let mut rows: Vec<PendingTuple> = db
        .fetch_all(
            // Written so both engines go from the invoice's aliases to the
            // parked events through their charge and payment-intent indexes:
            // no scan of the parked events, and (unlike `in (select …)`) no
            // temporary b-tree on every payment. Ordered here, as the few rows
            // there are; an event that names both a linked charge and a
            // linked payment intent comes twice.
            "select p.event_id, p.event_type, p.payload, p.received_at from stripe_aliases a \
             join stripe_pending_events p on p.charge_id = a.alias where a.invoice_id = $1 \
             union all \
             select p.event_id, p.event_type, p.payload, p.received_at from stripe_aliases a \
             join stripe_pending_events p on p.payment_intent_id = a.alias where a.invoice_id = $1",
            &args![&link.invoice_id],
        )
        .await?;
    // Oldest first, as they were received.
    rows.sort_by(|a, b| (a.3, &a.0).cmp(&(b.3, &b.0)));
    rows.dedup_by(|a, b| a.0 == b.0);
    Ok(rows.into_iter().map(pending_row).collect())
}

macro_rules! stripe_store {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn lock_stripe(tx: &mut sqlx::Transaction<'_, $db>) -> $crate::StoreResult<()> {
                $crate::stripe_sql::lock_stripe(tx).await
            }

            async fn record_stripe_event_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                record: &$crate::stripe_sql::StripeEventRecord,
            ) -> $crate::StoreResult<()> {
                $crate::stripe_sql::record_stripe_event_in(tx, record).await?;
                Ok(())
            }

            async fn link_stripe_charge_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                link: &$crate::stripe_sql::StripeChargeLink,
            ) -> $crate::StoreResult<Vec<$crate::stripe_sql::StripePendingEvent>> {
                $crate::stripe_sql::link_stripe_charge_in(tx, link).await
            }

            async fn stripe_alias_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                alias: Option<&str>,
            ) -> $crate::StoreResult<Option<String>> {
                let Some(alias) = alias.filter(|a| !a.is_empty()) else {
                    return Ok(None);
                };
                let row: Option<(String,)> =
                    sqlx::query_as("select invoice_id from stripe_aliases where alias = $1")
                        .bind(alias)
                        .fetch_optional(&mut **tx)
                        .await?;
                Ok(row.map(|(invoice,)| invoice))
            }
        }

        #[async_trait::async_trait]
        impl $crate::stripe_sql::StripeStore for $store {
            async fn stripe_event_outcome(
                &self,
                event_id: &str,
            ) -> $crate::StoreResult<Option<$crate::stripe_sql::StripeEventOutcome>> {
                let row: Option<(String,)> =
                    sqlx::query_as("select outcome from stripe_events where id = $1")
                        .bind(event_id)
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(|(outcome,)| $crate::stripe_sql::outcome(&outcome)).transpose()
            }

            async fn record_stripe_event(
                &self,
                record: &$crate::stripe_sql::StripeEventRecord,
            ) -> $crate::StoreResult<()> {
                let mut tx = self.write().await?;
                Self::record_stripe_event_in(&mut tx, record).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn link_stripe_charge(
                &self,
                link: &$crate::stripe_sql::StripeChargeLink,
            ) -> $crate::StoreResult<Vec<$crate::stripe_sql::StripePendingEvent>> {
                let mut tx = self.write().await?;
                let parked = Self::link_stripe_charge_in(&mut tx, link).await?;
                tx.commit().await?;
                Ok(parked)
            }

            async fn stripe_invoice_of(
                &self,
                charge_id: Option<&str>,
                payment_intent_id: Option<&str>,
            ) -> $crate::StoreResult<Option<String>> {
                for alias in [charge_id, payment_intent_id].into_iter().flatten() {
                    if alias.is_empty() {
                        continue;
                    }
                    let row: Option<(String,)> =
                        sqlx::query_as("select invoice_id from stripe_aliases where alias = $1")
                            .bind(alias)
                            .fetch_optional(&self.pool)
                            .await?;
                    if let Some((invoice,)) = row {
                        return Ok(Some(invoice));
                    }
                }
                Ok(None)
            }

            async fn park_stripe_event(
                &self,
                pending: &$crate::stripe_sql::NewStripePending,
            ) -> $crate::StoreResult<$crate::stripe_sql::StripeParking> {
                use $crate::stripe_sql::{StripeParking, StripeWait};
                let mut tx = self.write().await?;
                Self::lock_stripe(&mut tx).await?;
                let (charge, intent, customer) = match &pending.wait {
                    StripeWait::Charge {
                        charge_id,
                        payment_intent_id,
                    } => {
                        for alias in [charge_id, payment_intent_id] {
                            if let Some(invoice) = Self::stripe_alias_in(&mut tx, alias.as_deref()).await? {
                                return Ok(StripeParking::Ready {
                                    invoice_id: Some(invoice),
                                });
                            }
                        }
                        (charge_id.as_deref(), payment_intent_id.as_deref(), None)
                    }
                    StripeWait::Signup { customer_id } => {
                        let (known,): (i64,) =
                            sqlx::query_as("select count(*) from signups where customer_id = $1")
                                .bind(customer_id)
                                .fetch_one(&mut *tx)
                                .await?;
                        if known > 0 {
                            return Ok(StripeParking::Ready { invoice_id: None });
                        }
                        (None, None, Some(customer_id.as_str()))
                    }
                };
                let (charge, intent) = (
                    charge.filter(|c| !c.is_empty()),
                    intent.filter(|i| !i.is_empty()),
                );
                if charge.is_none() && intent.is_none() && customer.is_none() {
                    return Err($crate::StoreError::Invalid(
                        "a parked Stripe event must wait for a charge, a payment intent or a customer",
                    ));
                }
                sqlx::query(
                    "insert into stripe_pending_events (event_id, event_type, charge_id, payment_intent_id, \
                     customer_id, payload, received_at) values ($1, $2, $3, $4, $5, $6, $7) \
                     on conflict (event_id) do nothing",
                )
                .bind(&pending.event_id)
                .bind(&pending.event_type)
                .bind(charge)
                .bind(intent)
                .bind(customer)
                .bind(&pending.payload)
                .bind(pending.received_at.millis())
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "insert into stripe_events (id, event_type, outcome, received_at) values ($1, $2, 'pending', $3) \
                     on conflict (id) do nothing",
                )
                .bind(&pending.event_id)
                .bind(&pending.event_type)
                .bind(pending.received_at.millis())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(StripeParking::Parked)
            }

            async fn stripe_pending_for_customer(
                &self,
                customer_id: &str,
            ) -> $crate::StoreResult<Vec<$crate::stripe_sql::StripePendingEvent>> {
                // Under the lock, so a payment parked by a transaction that has
                // not committed yet is seen once it has (it checked the sign-up
                // under the same lock).
                let mut tx = self.write().await?;
                Self::lock_stripe(&mut tx).await?;
                let rows: Vec<$crate::stripe_sql::PendingTuple> = sqlx::query_as(
                    "select event_id, event_type, payload, received_at from stripe_pending_events \
                     where customer_id = $1 order by received_at, event_id",
                )
                .bind(customer_id)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(rows.into_iter().map($crate::stripe_sql::pending_row).collect())
            }

            async fn finish_stripe_pending(
                &self,
                event_id: &str,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<()> {
                let mut tx = self.write().await?;
                sqlx::query("delete from stripe_pending_events where event_id = $1")
                    .bind(event_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "update stripe_events set outcome = 'booked', booked_at = coalesce(booked_at, $2) where id = $1",
                )
                .bind(event_id)
                .bind(now.millis())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn claim_stripe_refund_share(
                &self,
                share: &$crate::stripe_sql::NewRefundShare,
            ) -> $crate::StoreResult<i64> {
                let mut tx = self.write().await?;
                Self::lock_stripe(&mut tx).await?;
                let known: Option<(i64,)> =
                    sqlx::query_as("select amount from stripe_refund_shares where refund_key = $1")
                        .bind(&share.refund_key)
                        .fetch_optional(&mut *tx)
                        .await?;
                if let Some((amount,)) = known {
                    return Ok(amount);
                }
                let (booked,): (i64,) = sqlx::query_as(
                    "select cast(coalesce(sum(amount), 0) as bigint) from stripe_refund_shares where charge_id = $1",
                )
                .bind(&share.charge_id)
                .fetch_one(&mut *tx)
                .await?;
                let amount = $crate::stripe_sql::refund_share(share.requested, share.cumulative, booked);
                sqlx::query(
                    "insert into stripe_refund_shares (refund_key, charge_id, amount, created_at) values ($1, $2, $3, $4)",
                )
                .bind(&share.refund_key)
                .bind(&share.charge_id)
                .bind(amount)
                .bind(share.now.millis())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(amount)
            }

            async fn stripe_signing_secrets(
                &self,
            ) -> $crate::StoreResult<Vec<$crate::stripe_sql::StripeSigningSecret>> {
                let rows: Vec<$crate::stripe_sql::SecretTuple> = sqlx::query_as(
                    "select id, secret, hint, created_by, created_at from stripe_signing_secrets order by id",
                )
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map($crate::stripe_sql::secret_row).collect())
            }

            async fn add_stripe_signing_secret(
                &self,
                secret: &str,
                audit: $crate::NewAudit,
            ) -> $crate::StoreResult<$crate::stripe_sql::StripeSigningSecret> {
                let mut tx = self.write().await?;
                let row: $crate::stripe_sql::SecretTuple = sqlx::query_as(
                    "insert into stripe_signing_secrets (secret, hint, created_by, created_at) values ($1, $2, $3, $4) \
                     returning id, secret, hint, created_by, created_at",
                )
                .bind(secret)
                .bind($crate::stripe_sql::secret_hint(secret))
                .bind(&audit.actor)
                .bind(audit.at.millis())
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| $crate::shared::on_unique(e, "secret"))?;
                Self::insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok($crate::stripe_sql::secret_row(row))
            }

            async fn delete_stripe_signing_secret(
                &self,
                id: i64,
                audit: $crate::NewAudit,
            ) -> $crate::StoreResult<()> {
                let mut tx = self.write().await?;
                let deleted = sqlx::query("delete from stripe_signing_secrets where id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if deleted == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                Self::insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(())
            }
        }
    };
}
pub(crate) use stripe_store;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_never_goes_past_the_cumulative_amount_nor_below_zero() {
        assert_eq!(refund_share(None, 25_000, 0), 25_000);
        assert_eq!(refund_share(None, 100_000, 25_000), 75_000);
        // An older event, delivered after a newer one: nothing.
        assert_eq!(refund_share(None, 25_000, 100_000), 0);
        assert_eq!(refund_share(Some(10_000), 25_000, 0), 10_000);
        assert_eq!(refund_share(Some(30_000), 25_000, 0), 25_000);
        assert_eq!(refund_share(Some(30_000), 25_000, 25_000), 0);
    }

    #[test]
    fn the_hint_is_the_last_four_characters() {
        assert_eq!(secret_hint("whsec_abcdef1234"), "1234");
        assert_eq!(secret_hint("ab"), "ab");
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let secret = StripeSigningSecret {
            id: 1,
            secret: "whsec_verysecret".into(),
            hint: "cret".into(),
            created_by: "cli".into(),
            created_at: Timestamp::from_millis(0),
        };
        assert!(!format!("{secret:?}").contains("verysecret"));
    }
}
