//! Money use cases: billing events in (R-COM-1..3), holds (R-COM-4), what a
//! partner has and earned, active status (R-ACC-4), and the ledger check.
//!
//! The integration API and the Stripe webhook both end in the `book_*` methods,
//! so the two ways in have the same effect: each validates, reads the program's
//! `hold_days` and the clock, and makes one store call that books the event
//! with its idempotency key. The store answers a replay as the first delivery
//! was answered and books nothing.

use std::sync::Arc;

use partnerd_domain::ledger::{Breach, check_invariants};
use partnerd_domain::{Currency, FieldErrors, Timestamp};
use partnerd_store::money::{
    BalanceRow, BillingAnswer, BillingEvent, ChargebackChange, CommissionRow, EventKey,
    EventOrigin, NewCancellation, NewChargeback, NewPayment, NewRefund, TransferRow,
};
use partnerd_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::tracking::TrackingCache;
use crate::{App, AppError, AppResult, Clock};

/// A payment may be reported this far ahead of our clock (clock skew between
/// the vendor's billing system and us); later is a mistake, since the hold
/// counts from `paid_at`.
const PAID_AT_FUTURE_SKEW_SECONDS: i64 = 300;

/// Well above any real invoice (10^13 minor units: $100 bn) and far from
/// `i64` overflow once multiplied by a rate.
const MAX_AMOUNT: i64 = 10_000_000_000_000;

/// How many partner books one call of the release job looks at.
const RELEASE_BATCH: i64 = 500;

/// The most billing events one transaction books. Under a flood the writer
/// takes what is queued up to this; alone, an event commits on its own.
const MAX_BILLING_BATCH: usize = 512;

type Booked = AppResult<(BillingAnswer, bool)>;
type PendingEvent = (BillingEvent, oneshot::Sender<Booked>);

/// Group commit for billing events (DESIGN.md "the hot path"): one task books
/// what is queued in one transaction, each event in a savepoint of its own, and
/// answers each caller only after that transaction committed. One refused
/// event gets its own error and sinks none of the others; a failed commit
/// fails every event of the batch (none was booked, and a retry books each once).
///
/// With several nodes on one PostgreSQL, two batches may lock the same rows in
/// different orders; PostgreSQL then aborts one of them, whose callers get an
/// error and retry, as billing systems do.
#[derive(Clone)]
pub struct BillingWriter {
    queue: mpsc::Sender<PendingEvent>,
}

impl BillingWriter {
    pub fn start(store: Arc<dyn Store>, clock: Arc<dyn Clock>, cache: Arc<TrackingCache>) -> Self {
        let (queue, mut receiver) = mpsc::channel::<PendingEvent>(16 * 1024);
        tokio::spawn(async move {
            let mut batch: Vec<PendingEvent> = Vec::with_capacity(MAX_BILLING_BATCH);
            while receiver.recv_many(&mut batch, MAX_BILLING_BATCH).await > 0 {
                let (events, waiting): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
                let booked = match cache.settings(store.as_ref()).await {
                    Ok(settings) => store
                        .record_billing_batch(events, settings.hold_days, clock.now())
                        .await
                        .map_err(AppError::from),
                    Err(err) => Err(err),
                };
                match booked {
                    Ok(results) => {
                        for (result, done) in results.into_iter().zip(waiting) {
                            let _ = done.send(result.map_err(refusal));
                        }
                    }
                    Err(err) => {
                        tracing::error!(%err, events = waiting.len(), "could not book billing events");
                        let message = err.to_string();
                        for done in waiting {
                            let _ = done.send(Err(AppError::Internal(message.clone())));
                        }
                    }
                }
            }
        });
        Self { queue }
    }

    /// Queues an event and waits for the commit that holds it.
    pub async fn book(&self, event: BillingEvent) -> Booked {
        let (done, booked) = oneshot::channel();
        self.queue
            .send((event, done))
            .await
            .map_err(|_| AppError::Internal("the billing writer stopped".into()))?;
        booked
            .await
            .map_err(|_| AppError::Internal("the billing writer stopped".into()))?
    }
}

/// `POST /payments`'s body (CONTRACT.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentInput {
    pub id: String,
    pub customer_id: String,
    pub amount: i64,
    pub currency: String,
    /// RFC 3339; now when absent.
    pub paid_at: Option<String>,
    pub subscription_id: Option<String>,
}

/// `POST /refunds`'s and `POST /chargebacks`' body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReversalInput {
    pub id: String,
    pub payment_id: String,
    pub amount: i64,
}

/// R-ACC-4: whether a partner is active, and what is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartnerStatus {
    pub active: bool,
    pub new_customers_in_window: i64,
    pub window_months: i64,
    /// The `active_min_new` setting.
    pub required: i64,
    /// How many more new paying customers make the partner active.
    pub missing: i64,
    /// R-FREE: whether the partner has a free internal licence (reseller issue).
    pub free_licence: bool,
}

/// An id the vendor chose: non-empty, at most 200 characters, no control
/// characters (it is shown in the console and keys the ledger).
fn check_id(errors: &mut FieldErrors, field: &str, value: &str) {
    let value = value.trim();
    if value.is_empty() || value.len() > 200 || value.chars().any(char::is_control) {
        errors.add(
            field,
            "is required: 1 to 200 characters, no control characters",
        );
    }
}

fn check_amount(errors: &mut FieldErrors, amount: i64, allow_zero: bool) {
    if amount < 0 || (!allow_zero && amount == 0) {
        let what = if allow_zero {
            "must not be negative"
        } else {
            "must be more than 0"
        };
        errors.add("amount", format!("{what} (minor units, e.g. cents)"));
    } else if amount > MAX_AMOUNT {
        errors.add("amount", format!("must be at most {MAX_AMOUNT}"));
    }
}

/// A ledger refusal is the caller's mistake in this state (a replay with
/// other facts, a refund above what was paid …): a clear answer, nothing written.
fn refusal(err: StoreError) -> AppError {
    match err {
        StoreError::Ledger(reason) => AppError::Conflict(reason.to_string()),
        other => other.into(),
    }
}

impl App {
    /// Validates `POST /payments` and books it (R-COM-1).
    pub async fn record_api_payment(
        &self,
        input: &PaymentInput,
    ) -> AppResult<(BillingAnswer, bool)> {
        let mut errors = FieldErrors::new();
        check_id(&mut errors, "id", &input.id);
        check_id(&mut errors, "customer_id", &input.customer_id);
        check_amount(&mut errors, input.amount, true);
        let currency = errors.check("currency", Currency::parse(input.currency.trim()));
        if let Some(subscription) = &input.subscription_id {
            check_id(&mut errors, "subscription_id", subscription);
        }
        let now = self.now();
        let paid_at = match input.paid_at.as_deref() {
            None => Some(now),
            Some(raw) => match raw.trim().parse::<jiff::Timestamp>() {
                Ok(at)
                    if at.as_millisecond()
                        > now.plus_seconds(PAID_AT_FUTURE_SKEW_SECONDS).millis() =>
                {
                    errors.add("paid_at", "is in the future");
                    None
                }
                Ok(at) => Some(Timestamp::from_millis(at.as_millisecond())),
                Err(_) => {
                    errors.add(
                        "paid_at",
                        "must be an RFC 3339 time, e.g. 2026-05-01T12:00:00Z",
                    );
                    None
                }
            },
        };
        errors.into_result()?;
        let (Some(currency), Some(paid_at)) = (currency, paid_at) else {
            unreachable!("validated above");
        };
        self.book_payment(NewPayment {
            event: EventKey::new(EventOrigin::Api, format!("payment:{}", input.id.trim())),
            payment_id: input.id.trim().to_owned(),
            customer_id: input.customer_id.trim().to_owned(),
            amount: input.amount,
            currency,
            paid_at,
            subscription_id: input
                .subscription_id
                .as_deref()
                .map(|s| s.trim().to_owned()),
        })
        .await
    }

    /// Validates `POST /refunds` (or, with `chargeback`, `POST /chargebacks`)
    /// and books it (R-COM-3).
    pub async fn record_api_reversal(
        &self,
        input: &ReversalInput,
        chargeback: bool,
    ) -> AppResult<(BillingAnswer, bool)> {
        let mut errors = FieldErrors::new();
        check_id(&mut errors, "id", &input.id);
        check_id(&mut errors, "payment_id", &input.payment_id);
        check_amount(&mut errors, input.amount, false);
        errors.into_result()?;
        let id = input.id.trim().to_owned();
        let payment_id = input.payment_id.trim().to_owned();
        if chargeback {
            self.book_chargeback(NewChargeback {
                event: EventKey::new(EventOrigin::Api, format!("chargeback:{id}")),
                chargeback_id: id,
                payment_id,
                amount: input.amount,
                change: ChargebackChange::Withdrawn,
            })
            .await
        } else {
            self.book_refund(NewRefund {
                event: EventKey::new(EventOrigin::Api, format!("refund:{id}")),
                refund_id: id,
                payment_id,
                amount: input.amount,
            })
            .await
        }
    }

    /// `POST /subscriptions/{id}/cancel`.
    pub async fn record_api_cancellation(
        &self,
        subscription_id: &str,
    ) -> AppResult<(BillingAnswer, bool)> {
        let mut errors = FieldErrors::new();
        check_id(&mut errors, "id", subscription_id);
        errors.into_result()?;
        let subscription_id = subscription_id.trim().to_owned();
        self.book_cancellation(NewCancellation {
            event: EventKey::new(EventOrigin::Api, format!("cancel:{subscription_id}")),
            subscription_id,
            customer_id: None,
        })
        .await
    }

    /// Books a payment from any source (the API, Stripe, the demo): its
    /// commission, held `hold_days` (R-COM-4), through the group commit.
    pub async fn book_payment(&self, payment: NewPayment) -> AppResult<(BillingAnswer, bool)> {
        self.billing_writer
            .book(BillingEvent::Payment(payment))
            .await
    }

    /// Books a refund from any source.
    pub async fn book_refund(&self, refund: NewRefund) -> AppResult<(BillingAnswer, bool)> {
        self.billing_writer.book(BillingEvent::Refund(refund)).await
    }

    /// Books a chargeback's withdrawal or reinstatement from any source.
    pub async fn book_chargeback(
        &self,
        chargeback: NewChargeback,
    ) -> AppResult<(BillingAnswer, bool)> {
        self.billing_writer
            .book(BillingEvent::Chargeback(chargeback))
            .await
    }

    /// Records a cancellation from any source; books nothing.
    pub async fn book_cancellation(
        &self,
        cancellation: NewCancellation,
    ) -> AppResult<(BillingAnswer, bool)> {
        self.billing_writer
            .book(BillingEvent::Cancellation(cancellation))
            .await
    }

    /// R-COM-4: releases every lot whose hold ended; the `release_holds` job.
    pub async fn release_due_holds(&self) -> AppResult<u64> {
        let mut released = 0;
        loop {
            let n = self
                .store
                .release_due_holds(self.now(), RELEASE_BATCH)
                .await?;
            if n == 0 {
                return Ok(released);
            }
            released += n;
        }
    }

    /// A partner's balances, one row per currency.
    pub async fn balances(&self, partner_id: i64) -> AppResult<Vec<BalanceRow>> {
        Ok(self.store.partner_balances(partner_id).await?)
    }

    /// A partner's commissions, newest payment first.
    pub async fn commissions(
        &self,
        partner_id: i64,
        limit: i64,
        offset: i64,
    ) -> AppResult<Vec<CommissionRow>> {
        Ok(self
            .store
            .partner_commissions(partner_id, limit, offset)
            .await?)
    }

    /// The transfers behind a partner's balances, newest first.
    pub async fn transfers(
        &self,
        partner_id: i64,
        limit: i64,
        offset: i64,
    ) -> AppResult<Vec<TransferRow>> {
        Ok(self
            .store
            .partner_transfers(partner_id, limit, offset)
            .await?)
    }

    /// R-ACC-4: at least `active_min_new` new paying customers in the last
    /// `active_window_months` calendar months (UTC), counted on the day of each
    /// customer's first payment.
    pub async fn partner_status(&self, partner_id: i64) -> AppResult<PartnerStatus> {
        let settings = self.settings().await?;
        let since = months_before(self.now(), settings.active_window_months);
        let count = self.store.new_paying_customers(partner_id, since).await?;
        Ok(PartnerStatus {
            active: count >= settings.active_min_new,
            new_customers_in_window: count,
            window_months: settings.active_window_months,
            required: settings.active_min_new,
            missing: (settings.active_min_new - count).max(0),
            free_licence: false,
        })
    }

    /// `partnerd ledger verify`: I1–I8 over one snapshot of the live database.
    pub async fn verify_ledger(&self) -> AppResult<(usize, Vec<Breach>)> {
        let snapshot = self.store.ledger_records().await?;
        Ok((
            snapshot.transfers.len(),
            check_invariants(&snapshot.records()),
        ))
    }
}

/// A time as the API writes it: RFC 3339 in UTC, `2026-05-01T12:00:00Z`.
pub fn rfc3339(at: Timestamp) -> String {
    jiff::Timestamp::from_millisecond(at.millis())
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// An amount as people read it: `$1,000.00`, `€40.00`.
pub(crate) fn money_text(minor: i64, currency: Currency) -> String {
    partnerd_domain::Money::new(minor, currency).to_string()
}

/// `now` minus whole calendar months (UTC), for R-ACC-4's window: 31 May minus
/// 3 months is 28/29 Feb, as a person counts.
pub fn months_before(now: Timestamp, months: i64) -> Timestamp {
    let at = jiff::Timestamp::from_millisecond(now.millis()).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let zoned = at.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    match zoned.checked_sub(jiff::Span::new().months(months)) {
        Ok(earlier) => Timestamp::from_millis(earlier.timestamp().as_millisecond()),
        Err(_) => Timestamp::from_millis(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::from_millis(text.parse::<jiff::Timestamp>().unwrap().as_millisecond())
    }

    #[test]
    fn the_active_window_counts_calendar_months() {
        // R-ACC-4: three months before 31 May is the end of February.
        assert_eq!(
            months_before(at("2026-05-31T10:00:00Z"), 3),
            at("2026-02-28T10:00:00Z")
        );
        assert_eq!(
            months_before(at("2026-03-15T00:00:00Z"), 3),
            at("2025-12-15T00:00:00Z")
        );
    }

    #[test]
    fn amounts_are_checked_at_the_edges() {
        let mut errors = FieldErrors::new();
        check_amount(&mut errors, 0, true);
        check_amount(&mut errors, MAX_AMOUNT, false);
        assert!(errors.is_empty());
        check_amount(&mut errors, -1, true);
        assert!(errors.get("amount").unwrap().contains("negative"));
        let mut errors = FieldErrors::new();
        check_amount(&mut errors, 0, false);
        assert!(errors.get("amount").unwrap().contains("more than 0"));
        let mut errors = FieldErrors::new();
        check_amount(&mut errors, MAX_AMOUNT + 1, true);
        assert!(errors.get("amount").is_some());
    }
}
