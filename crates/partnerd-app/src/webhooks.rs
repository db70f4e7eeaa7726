//! Outbound webhooks (issue 4 part 6): the vendor subscribes endpoints in the
//! console to commission and payout events, delivered per the Standard
//! Webhooks spec (signing and the SSRF guard are in [`crate::outbound`]).
//!
//! **Events are the ledger's bookings.** The ledger is append-only, so the
//! `webhook_events` job reads the bookings after a stored cursor and
//! [`classify`] names each one (`commission.earned` from `com:` …): the store
//! writes the events, one delivery per subscribed endpoint, and the new cursor
//! in one transaction (`ingest_ledger_events`). The money code does not know
//! webhooks exist, and an event is neither lost (the cursor moves only with the
//! deliveries) nor invented (an event is unique on its booking's source key).
//!
//! **Delivery.** The `webhook_deliveries` job claims due deliveries with a
//! lease and POSTs each: the body as stored, `webhook-id` = the event's message
//! id (the same on every retry), `webhook-timestamp` of this attempt, and a
//! `webhook-signature` per current secret. A 2xx is delivered; `410 Gone`
//! disables the endpoint; anything else, or no answer, is retried after
//! [`RETRY_DELAYS_SECONDS`] (about three days in all), then the delivery has
//! failed. Every attempt is recorded (status, duration, a short error; never a
//! secret). The host is resolved and checked again at every attempt, and the
//! client connects only to the checked addresses.

use std::time::{Duration, Instant};

use partnerd_domain::errors::clean_text;
use partnerd_domain::ledger::{Account, Source, WithdrawalStatus};
use partnerd_domain::{FieldErrors, Timestamp};
use partnerd_store::NewAudit;
use partnerd_store::webhooks_sql::{
    AttemptOutcome, DueDelivery, IngestOutcome, LedgerBooking, NewWebhookAttempt,
    NewWebhookEndpoint, NewWebhookEvent, WebhookAttemptRow, WebhookDeliveryRow, WebhookEndpoint,
};
use serde_json::{Value, json};

use crate::outbound::{self, TargetError, TargetPolicy, WebhookSecret};
use crate::{App, AppError, AppResult};

/// The event types an endpoint can subscribe to, with what each means.
pub const EVENT_TYPES: &[(&str, &str)] = &[
    (
        "commission.earned",
        "Commission booked on a payment, or back after a won dispute (held, on review or available)",
    ),
    (
        "commission.reversed",
        "Commission taken back by a refund, a chargeback or a rejected review (R-COM-3)",
    ),
    (
        "commission.released",
        "Commission reached the partner's balance: its hold ended or a person approved it (R-COM-4)",
    ),
    (
        "commission.on_review",
        "Commission put on review; it waits for a person (R-COM-4)",
    ),
    (
        "commission.approved",
        "Commission on review approved while its hold still runs: back to held",
    ),
    (
        "withdrawal.requested",
        "A partner asked for a withdrawal (R-PAY-1)",
    ),
    (
        "withdrawal.rejected",
        "An admin rejected a withdrawal; the money is back in the balance (R-PAY-3)",
    ),
    ("payout.paid", "A payout arrived (R-PAY-3)"),
    (
        "payout.returned",
        "A payout failed, was returned, blocked or unclaimed; the money is back in the balance (R-PAY-3)",
    ),
];

/// The type of the event the console's "Send a test event" sends.
pub const TEST_EVENT_TYPE: &str = "webhook.test";

/// The waits after the 1st, 2nd … failed attempt: 5 s, 5 min, 30 min, 2 h, 5 h,
/// 10 h, 14 h, 20 h, 20 h: ten attempts over about three days, then the
/// delivery has failed.
pub const RETRY_DELAYS_SECONDS: [i64; 9] =
    [5, 300, 1_800, 7_200, 18_000, 36_000, 50_400, 72_000, 72_000];

/// How long one attempt may take, connecting included.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a claimed delivery is the worker's: more than an attempt can take.
const DELIVERY_LEASE_SECONDS: i64 = 120;
/// Deliveries one run of the job sends, side by side.
const DELIVERIES_PER_RUN: i64 = 20;
/// Ledger transfers one transaction of the events job reads.
const TRANSFERS_PER_BATCH: i64 = 500;
/// Batches one run of the events job reads at most, so a long backlog does not
/// hold the worker; the next run goes on from the cursor.
const BATCHES_PER_RUN: usize = 20;
/// After a rotation the old secret keeps signing this long.
pub const ROTATION_GRACE_SECONDS: i64 = 24 * 3600;
/// Finished runs of the webhook jobs are kept this long.
const JOB_HISTORY_SECONDS: i64 = 24 * 3600;
/// The job kinds (and schedule names) of the two jobs.
pub const EVENTS_JOB: &str = "webhook_events";
pub const DELIVERIES_JOB: &str = "webhook_deliveries";
/// How often the two jobs run.
pub const JOB_PERIOD_SECONDS: i64 = 5;
/// Longest error text stored with an attempt.
const MAX_ERROR_CHARS: usize = 200;

/// The wait before the next attempt after `failed_attempts` failures, or `None`
/// when that was the last one.
pub fn retry_delay_seconds(failed_attempts: i64) -> Option<i64> {
    let index = usize::try_from(failed_attempts.checked_sub(1)?).ok()?;
    RETRY_DELAYS_SECONDS.get(index).copied()
}

/// What an attempt's answer means for its delivery.
pub fn outcome_of(
    status: Option<u16>,
    attempts_before: i64,
    attempted_at: Timestamp,
) -> AttemptOutcome {
    match status {
        Some(code) if (200..300).contains(&code) => AttemptOutcome::Delivered,
        Some(410) => AttemptOutcome::Gone,
        _ => match retry_delay_seconds(attempts_before + 1) {
            Some(delay) => AttemptOutcome::Retry {
                at: attempted_at.plus_seconds(delay),
            },
            None => AttemptOutcome::Failed,
        },
    }
}

/// `2026-01-01T00:00:00.000Z`.
pub fn rfc3339(at: Timestamp) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.millis()) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// The body every event has: `{"type", "timestamp", "data"}`.
pub fn event_body(event_type: &str, at: Timestamp, data: Value) -> String {
    json!({ "type": event_type, "timestamp": rfc3339(at), "data": data }).to_string()
}

/// Names a ledger booking's event and builds its body; `None` for bookings
/// that are not announced. Pure: the store calls it inside its transaction.
pub fn classify(booking: &LedgerBooking) -> Option<NewWebhookEvent> {
    let amount = booking.amount();
    let invoice = booking.transfers.first().and_then(|t| t.invoice.clone());
    let mut data = json!({
        "partner_id": booking.partner_public_id,
        "amount": amount,
        "currency": booking.currency.to_string(),
    });
    let object = data.as_object_mut().expect("an object");
    let pays_partner = booking
        .transfers
        .iter()
        .any(|t| matches!(t.credit, Account::Available | Account::Clawback));
    let event_type = match &booking.source {
        Source::Commission { .. } | Source::Reinstatement { .. } => {
            object.insert("payment_id".into(), json!(invoice));
            let first = booking.transfers.first()?;
            let status = match first.credit {
                Account::Held => "held",
                Account::OnReview => "on_review",
                _ => "available",
            };
            object.insert("status".into(), json!(status));
            object.insert("release_at".into(), json!(first.release_at.map(rfc3339)));
            if let Source::Reinstatement { chargeback } = &booking.source {
                object.insert("chargeback_id".into(), json!(chargeback));
            }
            "commission.earned"
        }
        Source::Refund { refund } => {
            object.insert("payment_id".into(), json!(invoice));
            object.insert("reason".into(), json!("refund"));
            object.insert("refund_id".into(), json!(refund));
            "commission.reversed"
        }
        Source::Chargeback { chargeback } => {
            object.insert("payment_id".into(), json!(invoice));
            object.insert("reason".into(), json!("chargeback"));
            object.insert("chargeback_id".into(), json!(chargeback));
            "commission.reversed"
        }
        Source::Rejection { .. } => {
            object.insert("payment_id".into(), json!(invoice));
            object.insert("reason".into(), json!("review_rejected"));
            "commission.reversed"
        }
        Source::Release { .. } => {
            object.insert("payment_id".into(), json!(invoice));
            object.insert("reason".into(), json!("hold_ended"));
            "commission.released"
        }
        Source::Approval { .. } if pays_partner => {
            object.insert("payment_id".into(), json!(invoice));
            object.insert("reason".into(), json!("review_approved"));
            "commission.released"
        }
        Source::Approval { .. } => {
            object.insert("payment_id".into(), json!(invoice));
            object.insert("status".into(), json!("held"));
            "commission.approved"
        }
        Source::PutOnReview { .. } => {
            object.insert("payment_id".into(), json!(invoice));
            "commission.on_review"
        }
        Source::Withdrawal { withdrawal } => {
            object.insert("withdrawal_id".into(), json!(withdrawal));
            "withdrawal.requested"
        }
        Source::Payout { withdrawal } => {
            object.insert("withdrawal_id".into(), json!(withdrawal));
            "payout.paid"
        }
        Source::MoneyBack { withdrawal } => {
            object.insert("withdrawal_id".into(), json!(withdrawal));
            if booking.withdrawal_status == Some(WithdrawalStatus::Rejected) {
                "withdrawal.rejected"
            } else {
                object.insert("payout_status".into(), json!(booking.payout_status));
                "payout.returned"
            }
        }
    };
    Some(NewWebhookEvent {
        message_id: outbound::new_message_id(),
        event_type: event_type.to_owned(),
        source: booking.source.key(),
        payload: event_body(event_type, booking.booked_at, data),
        created_at: booking.booked_at,
    })
}

/// An endpoint as the console form sends it.
#[derive(Debug, Clone, Default)]
pub struct EndpointInput {
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    /// The admin ticked "allow private targets".
    pub allow_private: bool,
}

/// A delivery with its attempts, for the console.
#[derive(Debug, Clone)]
pub struct DeliveryWithAttempts {
    pub delivery: WebhookDeliveryRow,
    pub attempts: Vec<WebhookAttemptRow>,
}

fn target_reason(err: &TargetError) -> String {
    match err {
        TargetError::Refused { host, class, .. } if class.can_be_allowed() => format!(
            "{host} is a {class} address: tick \u{201c}Allow private targets\u{201d} to send to it"
        ),
        TargetError::Refused { host, class, .. } => {
            format!("{host} is a {class} address, which is never a web server")
        }
        TargetError::Scheme(scheme) => {
            format!("must start with http:// or https://, not {scheme}:")
        }
        TargetError::InvalidUrl(_) => {
            "must be a full URL such as https://hooks.example.com/partnerd".into()
        }
        TargetError::NoHost => "must name a host".into(),
        other => other.to_string(),
    }
}

fn short(text: &str) -> String {
    text.chars().take(MAX_ERROR_CHARS).collect()
}

impl App {
    /// Adds an endpoint with a fresh secret. The URL must be http(s); a
    /// private or loopback host only when the admin allows it.
    pub async fn create_webhook_endpoint(
        &self,
        actor: &str,
        input: &EndpointInput,
    ) -> AppResult<WebhookEndpoint> {
        let mut errors = FieldErrors::new();
        let policy = if input.allow_private {
            TargetPolicy::ALLOW_PRIVATE
        } else {
            TargetPolicy::PUBLIC_ONLY
        };
        let url = input.url.trim();
        let url = if url.is_empty() {
            errors.add("url", "is required");
            None
        } else if url.chars().count() > 2000 {
            errors.add("url", "must be at most 2000 characters");
            None
        } else {
            match outbound::check_url(url, policy) {
                Ok(checked) => Some(checked),
                Err(err) => {
                    errors.add("url", target_reason(&err));
                    None
                }
            }
        };
        let description = errors.check("description", clean_text(&input.description, 200, false));
        let mut types: Vec<String> = Vec::new();
        for given in &input.event_types {
            let given = given.trim();
            if !EVENT_TYPES.iter().any(|(name, _)| *name == given) {
                errors.add("event_types", format!("{given:?} is not an event type"));
            } else if !types.iter().any(|t| t == given) {
                types.push(given.to_owned());
            }
        }
        if types.is_empty() {
            errors.add("event_types", "choose at least one event type");
        }
        errors.into_result()?;
        let now = self.now();
        let url = url.expect("checked");
        // A password in the URL's user part is a secret: the audit log shows it masked.
        let mut shown = url.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("***"));
        }
        let url = url.to_string();
        let audit = NewAudit::new(
            now,
            actor,
            "webhook_endpoint.create",
            "webhook_endpoint:new",
        )
        .before_after(
            None,
            Some(json!({
                "url": shown.as_str(),
                "event_types": types,
                "allow_private": input.allow_private,
            })),
        );
        let endpoint = self
            .store
            .create_webhook_endpoint(NewWebhookEndpoint {
                url,
                description: description.expect("checked"),
                secret: WebhookSecret::generate().expose(),
                event_types: types,
                allow_private: input.allow_private,
                created_at: now,
                audit,
            })
            .await?;
        tracing::info!(endpoint.id = endpoint.id, "webhook endpoint created");
        Ok(endpoint)
    }

    /// A new secret; the old one signs too for [`ROTATION_GRACE_SECONDS`].
    pub async fn rotate_webhook_secret(&self, actor: &str, id: i64) -> AppResult<WebhookEndpoint> {
        let now = self.now();
        let audit = NewAudit::new(
            now,
            actor,
            "webhook_endpoint.rotate_secret",
            format!("webhook_endpoint:{id}"),
        );
        Ok(self
            .store
            .rotate_webhook_secret(
                id,
                &WebhookSecret::generate().expose(),
                now.plus_seconds(ROTATION_GRACE_SECONDS),
                audit,
            )
            .await?)
    }

    /// Enables or disables an endpoint (an admin's decision).
    pub async fn set_webhook_endpoint_enabled(
        &self,
        actor: &str,
        id: i64,
        enabled: bool,
    ) -> AppResult<WebhookEndpoint> {
        let action = if enabled {
            "webhook_endpoint.enable"
        } else {
            "webhook_endpoint.disable"
        };
        let audit = NewAudit::new(self.now(), actor, action, format!("webhook_endpoint:{id}"));
        let reason = (!enabled).then_some("disabled by an admin");
        Ok(self
            .store
            .set_webhook_endpoint_enabled(id, reason, audit)
            .await?)
    }

    /// Queues a `webhook.test` event to one endpoint; the delivery job sends it.
    pub async fn send_test_webhook(&self, actor: &str, id: i64) -> AppResult<String> {
        let now = self.now();
        let message_id = outbound::new_message_id();
        let event = NewWebhookEvent {
            source: format!("test:{message_id}"),
            payload: event_body(
                TEST_EVENT_TYPE,
                now,
                json!({ "endpoint_id": id, "message": "A test event sent from the partnerd console." }),
            ),
            message_id: message_id.clone(),
            event_type: TEST_EVENT_TYPE.to_owned(),
            created_at: now,
        };
        let audit = NewAudit::new(
            now,
            actor,
            "webhook_endpoint.test",
            format!("webhook_endpoint:{id}"),
        );
        self.store
            .queue_webhook_event(event, Some(id), Some(audit))
            .await?;
        Ok(message_id)
    }

    /// An endpoint's recent deliveries, newest first, each with its attempts.
    pub async fn recent_webhook_deliveries(
        &self,
        endpoint_id: i64,
        limit: i64,
    ) -> AppResult<Vec<DeliveryWithAttempts>> {
        let deliveries = self
            .store
            .list_webhook_deliveries(endpoint_id, limit)
            .await?;
        let mut out = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let attempts = self.store.list_webhook_attempts(delivery.id).await?;
            out.push(DeliveryWithAttempts { delivery, attempts });
        }
        Ok(out)
    }

    /// Sends a delivery again with the same `webhook-id`.
    pub async fn resend_webhook_delivery(
        &self,
        actor: &str,
        delivery_id: i64,
    ) -> AppResult<WebhookDeliveryRow> {
        let now = self.now();
        let audit = NewAudit::new(
            now,
            actor,
            "webhook_delivery.resend",
            format!("webhook_delivery:{delivery_id}"),
        );
        Ok(self
            .store
            .resend_webhook_delivery(delivery_id, audit, now)
            .await?)
    }

    /// The events job: turns new ledger bookings into deliveries, batch by
    /// batch, and forgets the webhook jobs' old finished runs.
    pub async fn run_webhook_events_job(&self) -> AppResult<IngestOutcome> {
        let mut total = IngestOutcome::default();
        for _ in 0..BATCHES_PER_RUN {
            let outcome = self
                .store
                .ingest_ledger_events(&classify, TRANSFERS_PER_BATCH, self.now())
                .await?;
            total.transfers += outcome.transfers;
            total.events += outcome.events;
            total.deliveries += outcome.deliveries;
            if outcome.transfers < TRANSFERS_PER_BATCH as usize {
                break;
            }
        }
        if total.events > 0 {
            tracing::info!(
                events = total.events,
                deliveries = total.deliveries,
                "ledger bookings became webhook events"
            );
        }
        self.store
            .purge_finished_jobs(
                &[EVENTS_JOB, DELIVERIES_JOB],
                self.now().minus_seconds(JOB_HISTORY_SECONDS),
            )
            .await?;
        Ok(total)
    }

    /// The deliveries job: sends the due deliveries side by side and records
    /// every attempt. Returns how many attempts were made.
    pub async fn run_webhook_deliveries_job(&self) -> AppResult<usize> {
        let due = self
            .store
            .claim_webhook_deliveries(self.now(), DELIVERY_LEASE_SECONDS, DELIVERIES_PER_RUN)
            .await?;
        let count = due.len();
        let mut running = tokio::task::JoinSet::new();
        for delivery in due {
            let app = self.clone();
            running.spawn(async move {
                let attempt = app.attempt_delivery(&delivery).await;
                app.store.record_webhook_attempt(attempt).await
            });
        }
        let mut first_error = None;
        while let Some(joined) = running.join_next().await {
            let result = joined.map_err(|e| AppError::Internal(e.to_string()))?;
            if let Err(err) = result {
                first_error.get_or_insert(err);
            }
        }
        match first_error {
            Some(err) => Err(err.into()),
            None => Ok(count),
        }
    }

    /// One POST; never fails, the outcome says what happened.
    async fn attempt_delivery(&self, delivery: &DueDelivery) -> NewWebhookAttempt {
        let attempted_at = self.now();
        let started = Instant::now();
        let answer = self.post_delivery(delivery, attempted_at).await;
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (status_code, error) = match &answer {
            Ok(code) if (200..300).contains(code) => (Some(*code), None),
            Ok(code) => (Some(*code), Some(format!("the receiver answered {code}"))),
            Err(error) => (None, Some(short(error))),
        };
        let outcome = outcome_of(status_code, delivery.attempts, attempted_at);
        tracing::info!(
            webhook.delivery_id = delivery.delivery_id,
            webhook.endpoint_id = delivery.endpoint_id,
            webhook.event_type = %delivery.event_type,
            http.status = status_code,
            duration_ms,
            outcome = ?outcome,
            "webhook attempt"
        );
        NewWebhookAttempt {
            delivery_id: delivery.delivery_id,
            attempted_at,
            status_code: status_code.map(i64::from),
            duration_ms,
            error,
            outcome,
        }
    }

    /// Resolves and checks the target again (DNS may have changed since the
    /// endpoint was saved), then POSTs to exactly the checked addresses.
    async fn post_delivery(&self, delivery: &DueDelivery, now: Timestamp) -> Result<u16, String> {
        let policy = if delivery.allow_private {
            TargetPolicy::ALLOW_PRIVATE
        } else {
            TargetPolicy::PUBLIC_ONLY
        };
        let target = outbound::resolve_target(&delivery.url, policy)
            .await
            .map_err(|e| e.to_string())?;
        let secrets: Vec<WebhookSecret> = delivery
            .secrets
            .iter()
            .filter_map(|s| WebhookSecret::parse(s).ok())
            .collect();
        if secrets.is_empty() {
            return Err("the endpoint has no valid secret".into());
        }
        let body = delivery.payload.as_bytes();
        let headers =
            outbound::signed_headers(&secrets, &delivery.message_id, now.millis() / 1000, body);
        let client = target
            .client(DELIVERY_TIMEOUT)
            .map_err(|e| e.without_url().to_string())?;
        let mut request = client
            .post(target.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::USER_AGENT, "partnerd-webhooks/1");
        for (name, value) in headers.pairs() {
            request = request.header(name, value);
        }
        let response = request
            .body(delivery.payload.clone())
            .send()
            .await
            .map_err(|e| {
                // Without the URL: it may carry credentials in its user part.
                if e.is_timeout() {
                    "timed out".to_owned()
                } else {
                    e.without_url().to_string()
                }
            })?;
        Ok(response.status().as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use partnerd_domain::Currency;
    use partnerd_domain::ledger::Transfer;

    #[test]
    fn retries_wait_longer_each_time_for_about_three_days_then_stop() {
        assert_eq!(retry_delay_seconds(1), Some(5));
        assert_eq!(retry_delay_seconds(2), Some(300));
        assert_eq!(retry_delay_seconds(9), Some(72_000));
        assert_eq!(retry_delay_seconds(10), None);
        assert_eq!(retry_delay_seconds(0), None);
        let total: i64 = RETRY_DELAYS_SECONDS.iter().sum();
        assert!((2 * 86_400..4 * 86_400).contains(&total), "{total}");
        assert!(RETRY_DELAYS_SECONDS.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn answers_map_to_delivered_gone_retry_or_failed() {
        let at = Timestamp::from_millis(1_000_000);
        assert_eq!(outcome_of(Some(204), 0, at), AttemptOutcome::Delivered);
        assert_eq!(outcome_of(Some(410), 3, at), AttemptOutcome::Gone);
        assert_eq!(
            outcome_of(Some(500), 0, at),
            AttemptOutcome::Retry {
                at: at.plus_seconds(5)
            }
        );
        assert_eq!(
            outcome_of(None, 1, at),
            AttemptOutcome::Retry {
                at: at.plus_seconds(300)
            }
        );
        assert_eq!(outcome_of(Some(302), 9, at), AttemptOutcome::Failed);
    }

    fn booking(source: &str, legs: &[(Account, Account, i64)]) -> LedgerBooking {
        let source = Source::parse(source).unwrap();
        LedgerBooking {
            transfers: legs
                .iter()
                .enumerate()
                .map(|(leg, (debit, credit, amount))| Transfer {
                    source: source.clone(),
                    leg: leg as u32,
                    partner_id: 7,
                    currency: Currency::USD,
                    debit: *debit,
                    credit: *credit,
                    amount: *amount,
                    invoice: Some("in_1".into()),
                    release_at: Some(Timestamp::from_millis(1_767_225_600_000)),
                })
                .collect(),
            source,
            partner_id: 7,
            partner_public_id: "pub7".into(),
            currency: Currency::USD,
            first_transfer_id: 1,
            booked_at: Timestamp::from_millis(1_767_225_600_000),
            withdrawal_status: None,
            payout_status: None,
        }
    }

    #[test]
    fn a_commission_booking_becomes_commission_earned_with_the_partner_and_amount() {
        use Account::*;
        let event = classify(&booking("com:in_1", &[(CommissionExpense, Held, 2_000)])).unwrap();
        assert_eq!(event.event_type, "commission.earned");
        assert_eq!(event.source, "com:in_1");
        assert!(event.message_id.starts_with("msg_"));
        let body: Value = serde_json::from_str(&event.payload).unwrap();
        assert_eq!(body["type"], "commission.earned");
        assert_eq!(body["timestamp"], "2026-01-01T00:00:00.000Z");
        assert_eq!(body["data"]["partner_id"], "pub7");
        assert_eq!(body["data"]["amount"], 2_000);
        assert_eq!(body["data"]["currency"], "USD");
        assert_eq!(body["data"]["payment_id"], "in_1");
        assert_eq!(body["data"]["status"], "held");
    }

    #[test]
    fn every_ledger_source_has_its_event_type() {
        use Account::*;
        let cases = [
            (
                "ref:r1",
                vec![(Held, CommissionExpense, 5)],
                "commission.reversed",
            ),
            (
                "cb:c1",
                vec![(Available, CommissionExpense, 5)],
                "commission.reversed",
            ),
            (
                "rej:in_1",
                vec![(OnReview, CommissionExpense, 5)],
                "commission.reversed",
            ),
            (
                "rein:c1",
                vec![(CommissionExpense, Held, 5)],
                "commission.earned",
            ),
            (
                "rel:in_1#1",
                vec![(Held, Clawback, 2), (Held, Available, 3)],
                "commission.released",
            ),
            (
                "rev:in_1/1",
                vec![(Held, OnReview, 5)],
                "commission.on_review",
            ),
            (
                "apr:in_1/1",
                vec![(OnReview, Available, 5)],
                "commission.released",
            ),
            (
                "apr:in_1/2",
                vec![(OnReview, Held, 5)],
                "commission.approved",
            ),
            (
                "wd:w1",
                vec![(Available, PayoutClearing, 5)],
                "withdrawal.requested",
            ),
            ("paid:w1", vec![(PayoutClearing, PaidOut, 5)], "payout.paid"),
            (
                "back:w1",
                vec![(PayoutClearing, Available, 5)],
                "payout.returned",
            ),
        ];
        for (source, legs, expected) in cases {
            let event = classify(&booking(source, &legs)).unwrap();
            assert_eq!(event.event_type, expected, "{source}");
            assert!(EVENT_TYPES.iter().any(|(name, _)| *name == expected));
        }
        let mut rejected = booking("back:w2", &[(PayoutClearing, Available, 5)]);
        rejected.withdrawal_status = Some(WithdrawalStatus::Rejected);
        assert_eq!(
            classify(&rejected).unwrap().event_type,
            "withdrawal.rejected"
        );
        let released = classify(&booking(
            "rel:in_1#1",
            &[(Held, Clawback, 2), (Held, Available, 3)],
        ))
        .unwrap();
        let body: Value = serde_json::from_str(&released.payload).unwrap();
        assert_eq!(body["data"]["amount"], 5);
    }
}
