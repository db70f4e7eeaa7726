//! Stripe webhooks in, end to end (`POST /webhooks/stripe`; CONTRACT.md): the
//! signature check against every configured secret, the event parsed, and what
//! it means booked through the same `book_*` use cases as the integration API,
//! so both ways in have the same effect (R-COM-1..3, R-AFF-4).
//!
//! | event | booked as |
//! |---|---|
//! | `checkout.session.completed`, `customer.created` with a referral | a sign-up, `customer_id` = the Stripe customer |
//! | `invoice.paid` | a payment of the invoice (`payment_id` = `in_…`) |
//! | `invoice_payment.paid` | only the charge → invoice link |
//! | `charge.refunded` | refunds, by refund id, or the growth of the cumulative `amount_refunded` |
//! | `charge.dispute.funds_withdrawn` / `funds_reinstated` | a chargeback / its reinstatement |
//! | `customer.subscription.deleted` | a cancellation |
//! | anything else | nothing (answered 200) |
//!
//! Stripe delivers each event at least once, in no particular order, so every
//! step is idempotent and order-free:
//! - an event already processed is answered and books nothing (`stripe_events`);
//! - each booking has its own idempotency key (the event id, or the refund's
//!   key), so a redelivery after a crash half-way books only what is missing;
//! - refunds and disputes name a charge or payment intent, not the invoice: the
//!   link comes from `invoice.paid` (or `invoice_payment.paid`, or the charge
//!   itself before API `2025-03-31.basil`). One that arrives before its link is
//!   parked, answered 200, and booked by the call that records the link;
//! - a payment is booked on the credited partner of its customer's sign-up, so
//!   an `invoice.paid` that overtakes its `checkout.session.completed` is parked
//!   and booked by the call that records the sign-up (or by
//!   [`App::release_stripe_payments`] after a sign-up through the API);
//! - `charge.refunded` carries the cumulative `amount_refunded`: each refund
//!   takes a fixed share of it (`stripe_refund_shares`), so a duplicate or an
//!   older event delivered late books nothing.
//!
//! Only a sign-up with a referral is recorded: a `customer.created` without one
//! must not take the place of the checkout that carries it (R-AFF-4: the first
//! recorded sign-up of a customer decides).
//!
//! Nothing here logs a secret, a signature or a body: event ids and types only.

use partnerd_domain::{Currency, FieldErrors, Timestamp};
use partnerd_store::NewAudit;
use partnerd_store::money::{
    BillingEvent, ChargebackChange, EventKey, EventOrigin, NewCancellation, NewChargeback,
    NewPayment, NewRefund, STRIPE_EVENT_SEEN, STRIPE_NO_SIGNUP, STRIPE_PARKED_WAITING,
};
use partnerd_store::stripe_sql::{
    NewRefundShare, NewStripePending, StripeChargeLink, StripeEventOutcome, StripeEventRecord,
    StripeParking, StripePendingEvent, StripeSigningSecret, StripeWait,
};
use serde::{Deserialize, Serialize};

use crate::stripe::{
    self, Charge, Dispute, Event, EventError, EventObject, Invoice, SignatureError, SigningSecrets,
};
use crate::tracking::SignupReport;
use crate::{App, AppError};

/// The largest body `POST /webhooks/stripe` reads. Stripe's events are a few
/// KB; an invoice with many lines stays well under this.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripeHandling {
    /// Booked (or linked, or a sign-up recorded), committed.
    Booked,
    /// Verified and kept: it waits for its charge's link or its customer's sign-up.
    Pending,
    /// Nothing to book: a type partnerd does not act on, or no referral.
    Ignored,
    /// The event was processed before; nothing was booked.
    Replayed,
    /// Booked together with the event's own record (the group-committed
    /// `invoice.paid`): nothing left to record.
    BookedAndRecorded,
}

/// The answer to one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeOutcome {
    pub event_id: String,
    pub event_type: String,
    pub handling: StripeHandling,
}

/// Why a delivery was not accepted. Nothing was written for the first three.
#[derive(Debug, thiserror::Error)]
pub enum StripeWebhookError {
    /// Neither `PARTNERD_STRIPE_WEBHOOK_SECRET` nor the console has a secret.
    #[error(
        "no Stripe signing secret is configured: set PARTNERD_STRIPE_WEBHOOK_SECRET or save one in the console"
    )]
    NotConfigured,
    /// The signature did not verify (missing, forged, stale, only `v0` …).
    #[error(transparent)]
    Signature(SignatureError),
    /// A verified body that is not a Stripe event as expected.
    #[error(transparent)]
    Event(EventError),
    /// The booking was refused (a replay with other facts, a bad id …).
    #[error("the event cannot be booked: {0}")]
    Refused(String),
    #[error(transparent)]
    App(AppError),
}

impl From<AppError> for StripeWebhookError {
    fn from(err: AppError) -> Self {
        match err {
            AppError::Conflict(reason) => Self::Refused(reason),
            AppError::Invalid(errors) => Self::Refused(errors.to_string()),
            other => Self::App(other),
        }
    }
}

impl From<partnerd_store::StoreError> for StripeWebhookError {
    fn from(err: partnerd_store::StoreError) -> Self {
        AppError::from(err).into()
    }
}

type StripeResult<T> = Result<T, StripeWebhookError>;

/// A parked event's facts (`stripe_pending_events.payload`): what its booking
/// needs once the link or sign-up arrives. Ids and amounts only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Parked {
    Payment(PaymentFacts),
    Refund(RefundFacts),
    Chargeback(ChargebackFacts),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PaymentFacts {
    invoice: String,
    customer: String,
    amount: i64,
    currency: String,
    paid_at: i64,
    subscription: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RefundFacts {
    charge: String,
    payment_intent: Option<String>,
    /// The charge's `amount_refunded` in the event.
    cumulative: i64,
    /// `refunds.data` that count (not failed or cancelled), when listed.
    refunds: Vec<(String, i64)>,
}

impl RefundFacts {
    fn of(charge: &Charge) -> Self {
        Self {
            charge: charge.id.clone(),
            payment_intent: charge.payment_intent.clone(),
            cumulative: charge.amount_refunded,
            refunds: charge
                .refunds
                .iter()
                .filter(|r| {
                    !matches!(r.status.as_deref(), Some("failed" | "canceled")) && r.amount > 0
                })
                .map(|r| (r.id.clone(), r.amount))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ChargebackFacts {
    dispute: String,
    charge: Option<String>,
    payment_intent: Option<String>,
    amount: i64,
    change: ChargebackChange,
}

impl ChargebackFacts {
    fn of(dispute: &Dispute, change: ChargebackChange) -> Self {
        Self {
            dispute: dispute.id.clone(),
            charge: dispute.charge.clone(),
            payment_intent: dispute.payment_intent.clone(),
            amount: dispute.amount,
            change,
        }
    }
}

fn payload(parked: &Parked) -> String {
    serde_json::to_string(parked).expect("the parked facts always serialise")
}

/// The ids an invoice names for the charge that paid it.
fn aliases(charge: Option<&str>, payment_intent: Option<&str>) -> Vec<String> {
    [charge, payment_intent]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The payment an `invoice.paid` reports, keyed by the Stripe event id.
fn stripe_payment(event_id: &str, facts: &PaymentFacts) -> StripeResult<NewPayment> {
    let currency = Currency::parse(&facts.currency)
        .map_err(|e| StripeWebhookError::Refused(format!("currency: {e}")))?;
    Ok(NewPayment {
        event: EventKey::new(EventOrigin::Stripe, event_id),
        payment_id: facts.invoice.clone(),
        customer_id: facts.customer.clone(),
        amount: facts.amount,
        currency,
        paid_at: Timestamp::from_millis(facts.paid_at),
        subscription_id: facts.subscription.clone(),
    })
}

impl App {
    /// Verifies, parses and books one Stripe delivery (see the module header).
    /// `Ok` means everything the event implies is committed.
    pub async fn handle_stripe_webhook(
        &self,
        raw_body: &[u8],
        signature_header: Option<&str>,
    ) -> StripeResult<StripeOutcome> {
        let now = self.now();
        self.verify_stripe_signature(signature_header, raw_body, now)
            .await?;
        let event = stripe::parse_event(raw_body).map_err(StripeWebhookError::Event)?;
        let outcome = |handling| StripeOutcome {
            event_id: event.id.clone(),
            event_type: event.event_type.clone(),
            handling,
        };
        // An `invoice.paid` of a customer is checked for a replay inside the
        // billing writer's transaction (`BillingEvent::StripePayment`): one
        // read of the database less for every payment.
        let checked_when_booked = matches!(
            &event.object,
            EventObject::InvoicePaid(invoice)
                if invoice.customer.as_deref().is_some_and(|c| !c.is_empty())
        );
        if !checked_when_booked && self.store.stripe_event_outcome(&event.id).await?.is_some() {
            return Ok(outcome(StripeHandling::Replayed));
        }
        let handling = self.book_stripe_event(&event, now).await?;
        let recorded = match handling {
            StripeHandling::Booked => Some(StripeEventOutcome::Booked),
            StripeHandling::Ignored => Some(StripeEventOutcome::Ignored),
            // Recorded together with its pending row, or with its booking.
            StripeHandling::Pending
            | StripeHandling::Replayed
            | StripeHandling::BookedAndRecorded => None,
        };
        if let Some(recorded) = recorded {
            self.store
                .record_stripe_event(&StripeEventRecord {
                    event_id: event.id.clone(),
                    event_type: event.event_type.clone(),
                    outcome: recorded,
                    at: now,
                })
                .await?;
        }
        tracing::info!(
            stripe.event_id = %event.id,
            stripe.event_type = %event.event_type,
            handling = ?handling,
            "Stripe event processed"
        );
        Ok(outcome(handling))
    }

    /// The signature against the configured secrets, then (only when those do
    /// not match) also against the ones saved in the console, so the common
    /// case reads nothing from the database.
    async fn verify_stripe_signature(
        &self,
        header: Option<&str>,
        body: &[u8],
        now: Timestamp,
    ) -> StripeResult<()> {
        let configured = self
            .config
            .stripe_webhook_secret
            .as_ref()
            .map(|secret| secret.expose())
            .unwrap_or_default();
        let from_config = SigningSecrets::parse(configured);
        if !from_config.is_empty() {
            match stripe::verify_signature(header, body, &from_config, now) {
                Ok(_) => return Ok(()),
                Err(SignatureError::NoMatchingSignature) => {}
                Err(other) => return Err(StripeWebhookError::Signature(other)),
            }
        }
        let saved = self.store.stripe_signing_secrets().await?;
        if saved.is_empty() && !from_config.is_empty() {
            return Err(StripeWebhookError::Signature(
                SignatureError::NoMatchingSignature,
            ));
        }
        let all = SigningSecrets::new(
            configured
                .split(',')
                .chain(saved.iter().map(|s| s.secret.as_str())),
        );
        match stripe::verify_signature(header, body, &all, now) {
            Ok(_) => Ok(()),
            Err(SignatureError::NoSecrets) => Err(StripeWebhookError::NotConfigured),
            Err(other) => Err(StripeWebhookError::Signature(other)),
        }
    }

    async fn book_stripe_event(
        &self,
        event: &Event,
        now: Timestamp,
    ) -> StripeResult<StripeHandling> {
        match &event.object {
            EventObject::CheckoutSessionCompleted(session) => {
                match (session.customer.as_deref(), session.referral()) {
                    (Some(customer), Some(referral)) => {
                        self.stripe_signup(customer, session.email.as_deref(), referral)
                            .await
                    }
                    _ => Ok(StripeHandling::Ignored),
                }
            }
            EventObject::CustomerCreated(customer) => match customer.referral() {
                Some(referral) => {
                    self.stripe_signup(&customer.id, customer.email.as_deref(), referral)
                        .await
                }
                None => Ok(StripeHandling::Ignored),
            },
            EventObject::InvoicePaid(invoice) => {
                self.stripe_invoice_paid(event, invoice, now).await
            }
            EventObject::InvoicePaymentPaid(payment) => {
                if payment.invoice.is_empty() {
                    return Ok(StripeHandling::Ignored);
                }
                self.link_stripe_charge(
                    &payment.invoice,
                    aliases(payment.charge.as_deref(), payment.payment_intent.as_deref()),
                    now,
                )
                .await?;
                Ok(StripeHandling::Booked)
            }
            EventObject::ChargeRefunded(charge) => {
                let facts = RefundFacts::of(charge);
                let invoice = match charge.invoice.as_deref().filter(|i| !i.is_empty()) {
                    // Before basil the charge says which invoice it paid: that
                    // is a link too, and may release a parked dispute.
                    Some(invoice) => {
                        self.link_stripe_charge(
                            invoice,
                            aliases(Some(&charge.id), charge.payment_intent.as_deref()),
                            now,
                        )
                        .await?;
                        Some(invoice.to_owned())
                    }
                    None => {
                        self.store
                            .stripe_invoice_of(Some(&charge.id), charge.payment_intent.as_deref())
                            .await?
                    }
                };
                let wait = StripeWait::Charge {
                    charge_id: Some(charge.id.clone()),
                    payment_intent_id: charge.payment_intent.clone(),
                };
                self.book_or_park(event, invoice, wait, Parked::Refund(facts), now)
                    .await
            }
            EventObject::DisputeFundsWithdrawn(dispute) => {
                self.stripe_dispute(event, dispute, ChargebackChange::Withdrawn, now)
                    .await
            }
            EventObject::DisputeFundsReinstated(dispute) => {
                self.stripe_dispute(event, dispute, ChargebackChange::Reinstated, now)
                    .await
            }
            EventObject::SubscriptionDeleted(subscription) => {
                self.book_cancellation(NewCancellation {
                    event: EventKey::new(EventOrigin::Stripe, event.id.clone()),
                    subscription_id: subscription.id.clone(),
                    customer_id: subscription.customer.clone(),
                })
                .await?;
                Ok(StripeHandling::Booked)
            }
            EventObject::Ignored => Ok(StripeHandling::Ignored),
        }
    }

    /// R-AFF-4: the sign-up the checkout (or the customer) carries the referral
    /// for, then the customer's payments that overtook it.
    async fn stripe_signup(
        &self,
        customer: &str,
        email: Option<&str>,
        referral: &str,
    ) -> StripeResult<StripeHandling> {
        let mut report = SignupReport {
            customer_id: customer.to_owned(),
            email: email.map(str::to_owned),
            referral: Some(referral.to_owned()),
        };
        match self.record_signup(&report).await {
            Ok(_) => {}
            // An address our parser refuses must not lose the sign-up; it only
            // serves the same-email check of R-AFF-7.
            Err(AppError::Invalid(errors)) if errors.get("email").is_some() => {
                report.email = None;
                self.record_signup(&report).await?;
            }
            Err(other) => return Err(other.into()),
        }
        // record_signup released the payments parked for this customer.
        Ok(StripeHandling::Booked)
    }

    /// Books the Stripe payments parked until `customer_id` had a sign-up.
    /// `record_signup` calls it after every sign-up, whichever way it came
    /// (the webhook or the integration API). Returns how many were booked.
    pub async fn release_stripe_payments(&self, customer_id: &str) -> crate::AppResult<usize> {
        let waiting = self.store.stripe_pending_for_customer(customer_id).await?;
        let count = waiting.len();
        for pending in waiting {
            self.book_parked(&pending, None)
                .await
                .map_err(|err| match err {
                    StripeWebhookError::App(err) => err,
                    StripeWebhookError::Refused(reason) => AppError::Conflict(reason),
                    other => AppError::Internal(other.to_string()),
                })?;
        }
        Ok(count)
    }

    async fn stripe_invoice_paid(
        &self,
        event: &Event,
        invoice: &Invoice,
        now: Timestamp,
    ) -> StripeResult<StripeHandling> {
        let links = aliases(invoice.charge.as_deref(), invoice.payment_intent.as_deref());
        let Some(customer) = invoice.customer.as_deref().filter(|c| !c.is_empty()) else {
            // Stripe invoices always have a customer; without one nobody can be
            // credited, but refunds of its charge still find the invoice.
            self.link_stripe_charge(&invoice.id, links, now).await?;
            return Ok(StripeHandling::Ignored);
        };
        let facts = PaymentFacts {
            invoice: invoice.id.clone(),
            customer: customer.to_owned(),
            amount: invoice.amount_paid,
            currency: invoice.currency.clone(),
            paid_at: invoice.paid_at.millis(),
            subscription: invoice.subscription.clone(),
        };
        // A currency we cannot book is refused before anything is written.
        Currency::parse(&facts.currency)
            .map_err(|e| StripeWebhookError::Refused(format!("currency: {e}")))?;
        // The common case, in one savepoint of the billing writer's group
        // commit: the replay check, the sign-up (R-AFF-4 fixes the partner and
        // the rate when the customer is credited), links, payment and the
        // event's record. Without a sign-up yet the payment waits for it; when
        // parked refunds wait for this invoice, the path below books them too.
        let fast = self
            .billing_writer
            .book(BillingEvent::StripePayment {
                payment: stripe_payment(&event.id, &facts)?,
                link: StripeChargeLink {
                    invoice_id: invoice.id.clone(),
                    aliases: links.clone(),
                    now,
                },
                record: StripeEventRecord {
                    event_id: event.id.clone(),
                    event_type: event.event_type.clone(),
                    outcome: StripeEventOutcome::Booked,
                    at: now,
                },
            })
            .await;
        let handling = match fast {
            Ok(_) => return Ok(StripeHandling::BookedAndRecorded),
            Err(AppError::Conflict(reason)) if reason == STRIPE_EVENT_SEEN => {
                return Ok(StripeHandling::Replayed);
            }
            Err(AppError::Conflict(reason)) if reason == STRIPE_PARKED_WAITING => {
                self.book_stripe_payment(&event.id, &facts).await?;
                StripeHandling::Booked
            }
            Err(AppError::Conflict(reason)) if reason == STRIPE_NO_SIGNUP => {
                let wait = StripeWait::Signup {
                    customer_id: customer.to_owned(),
                };
                self.book_or_park(event, None, wait, Parked::Payment(facts), now)
                    .await?
            }
            Err(other) => return Err(other.into()),
        };
        self.link_stripe_charge(&invoice.id, links, now).await?;
        Ok(handling)
    }

    async fn stripe_dispute(
        &self,
        event: &Event,
        dispute: &Dispute,
        change: ChargebackChange,
        now: Timestamp,
    ) -> StripeResult<StripeHandling> {
        if dispute.amount <= 0 {
            return Ok(StripeHandling::Ignored);
        }
        let facts = ChargebackFacts::of(dispute, change);
        let invoice = self
            .store
            .stripe_invoice_of(dispute.charge.as_deref(), dispute.payment_intent.as_deref())
            .await?;
        let wait = StripeWait::Charge {
            charge_id: dispute.charge.clone(),
            payment_intent_id: dispute.payment_intent.clone(),
        };
        self.book_or_park(event, invoice, wait, Parked::Chargeback(facts), now)
            .await
    }

    /// Books `parked` when what it needs is known (`invoice` for a refund or
    /// dispute, the sign-up for a payment), else parks it; the park checks
    /// again under the lock the link and sign-up release take.
    async fn book_or_park(
        &self,
        event: &Event,
        invoice: Option<String>,
        wait: StripeWait,
        parked: Parked,
        now: Timestamp,
    ) -> StripeResult<StripeHandling> {
        let needs_invoice = !matches!(parked, Parked::Payment(_));
        let invoice = match invoice {
            Some(invoice) => Some(invoice),
            None if needs_invoice => {
                if matches!(
                    &wait,
                    StripeWait::Charge {
                        charge_id: None,
                        payment_intent_id: None
                    }
                ) {
                    // Names no charge at all: there is nothing it could wait for.
                    tracing::warn!(stripe.event_id = %event.id, "Stripe event names no charge; ignored");
                    return Ok(StripeHandling::Ignored);
                }
                match self.park(event, wait, &parked, now).await? {
                    StripeParking::Parked => return Ok(StripeHandling::Pending),
                    StripeParking::Ready { invoice_id } => invoice_id,
                }
            }
            None => match self.park(event, wait, &parked, now).await? {
                StripeParking::Parked => return Ok(StripeHandling::Pending),
                StripeParking::Ready { .. } => None,
            },
        };
        self.book_facts(&event.id, &parked, invoice.as_deref())
            .await?;
        Ok(StripeHandling::Booked)
    }

    async fn park(
        &self,
        event: &Event,
        wait: StripeWait,
        parked: &Parked,
        now: Timestamp,
    ) -> StripeResult<StripeParking> {
        Ok(self
            .store
            .park_stripe_event(&NewStripePending {
                event_id: event.id.clone(),
                event_type: event.event_type.clone(),
                wait,
                payload: payload(parked),
                received_at: now,
            })
            .await?)
    }

    /// Records a charge → invoice link and books what was waiting for it.
    async fn link_stripe_charge(
        &self,
        invoice: &str,
        aliases: Vec<String>,
        now: Timestamp,
    ) -> StripeResult<()> {
        if aliases.is_empty() {
            return Ok(());
        }
        let released = self
            .store
            .link_stripe_charge(&StripeChargeLink {
                invoice_id: invoice.to_owned(),
                aliases,
                now,
            })
            .await?;
        for pending in released {
            self.book_parked(&pending, Some(invoice)).await?;
        }
        Ok(())
    }

    /// Books a parked event, then takes it off the pending list.
    async fn book_parked(
        &self,
        pending: &StripePendingEvent,
        invoice: Option<&str>,
    ) -> StripeResult<()> {
        let parked: Parked = serde_json::from_str(&pending.payload).map_err(|e| {
            StripeWebhookError::App(AppError::Internal(format!(
                "parked Stripe event {} is unreadable: {e}",
                pending.event_id
            )))
        })?;
        let invoice = match (invoice, &parked) {
            (Some(invoice), _) => Some(invoice.to_owned()),
            (None, Parked::Payment(_)) => None,
            (None, Parked::Refund(r)) => {
                self.store
                    .stripe_invoice_of(Some(&r.charge), r.payment_intent.as_deref())
                    .await?
            }
            (None, Parked::Chargeback(c)) => {
                self.store
                    .stripe_invoice_of(c.charge.as_deref(), c.payment_intent.as_deref())
                    .await?
            }
        };
        self.book_facts(&pending.event_id, &parked, invoice.as_deref())
            .await?;
        self.store
            .finish_stripe_pending(&pending.event_id, self.now())
            .await?;
        tracing::info!(
            stripe.event_id = %pending.event_id,
            stripe.event_type = %pending.event_type,
            "parked Stripe event booked"
        );
        Ok(())
    }

    /// The bookings of one event's facts, each idempotent on its own key.
    async fn book_facts(
        &self,
        event_id: &str,
        parked: &Parked,
        invoice: Option<&str>,
    ) -> StripeResult<()> {
        let invoice_for = |what: &str| {
            invoice.map(str::to_owned).ok_or_else(|| {
                StripeWebhookError::App(AppError::Internal(format!(
                    "a Stripe {what} was booked without its invoice"
                )))
            })
        };
        match parked {
            Parked::Payment(facts) => self.book_stripe_payment(event_id, facts).await,
            Parked::Refund(facts) => {
                self.book_stripe_refunds(facts, &invoice_for("refund")?)
                    .await
            }
            Parked::Chargeback(facts) => {
                self.book_chargeback(NewChargeback {
                    event: EventKey::new(EventOrigin::Stripe, event_id),
                    chargeback_id: facts.dispute.clone(),
                    payment_id: invoice_for("dispute")?,
                    amount: facts.amount,
                    change: facts.change,
                })
                .await?;
                Ok(())
            }
        }
    }

    async fn book_stripe_payment(&self, event_id: &str, facts: &PaymentFacts) -> StripeResult<()> {
        self.book_payment(stripe_payment(event_id, facts)?).await?;
        Ok(())
    }

    /// R-COM-3: the refunds of a charge. Listed refunds are booked by their
    /// `re_…` id; without a list, the growth of the cumulative amount is booked
    /// under `{charge}/refunded/{cumulative}`. Either way each takes a fixed
    /// share first, so no order of deliveries books more than the charge's
    /// largest `amount_refunded`.
    async fn book_stripe_refunds(&self, facts: &RefundFacts, invoice: &str) -> StripeResult<()> {
        let shares: Vec<(String, Option<i64>)> = if facts.refunds.is_empty() {
            if facts.cumulative <= 0 {
                return Ok(());
            }
            vec![(
                format!("{}/refunded/{}", facts.charge, facts.cumulative),
                None,
            )]
        } else {
            facts
                .refunds
                .iter()
                .map(|(id, amount)| (id.clone(), Some(*amount)))
                .collect()
        };
        for (refund_key, requested) in shares {
            let amount = self
                .store
                .claim_stripe_refund_share(&NewRefundShare {
                    refund_key: refund_key.clone(),
                    charge_id: facts.charge.clone(),
                    requested,
                    cumulative: facts.cumulative,
                    now: self.now(),
                })
                .await?;
            if amount > 0 {
                self.book_refund(NewRefund {
                    event: EventKey::new(EventOrigin::Stripe, format!("refund:{refund_key}")),
                    refund_id: refund_key,
                    payment_id: invoice.to_owned(),
                    amount,
                })
                .await?;
            }
        }
        Ok(())
    }
}

/// Why a signing secret typed in the console is refused, if it is.
fn check_signing_secret(secret: &str) -> Result<(), &'static str> {
    let Some(rest) = secret.strip_prefix("whsec_") else {
        return Err("must be the endpoint's signing secret, starting with whsec_");
    };
    if rest.len() < 8 || secret.len() > 256 {
        return Err("must be 14 to 256 characters long");
    }
    if !rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-'))
    {
        return Err("must be copied whole from Stripe: letters and digits after whsec_");
    }
    Ok(())
}

impl App {
    /// Whether `PARTNERD_STRIPE_WEBHOOK_SECRET` holds secrets, and how many.
    pub fn configured_stripe_secrets(&self) -> usize {
        self.config
            .stripe_webhook_secret
            .as_ref()
            .map_or(0, |secret| SigningSecrets::parse(secret.expose()).len())
    }

    /// Saves a signing secret an admin typed in the console, accepted beside
    /// the configured ones from the next delivery on (on every node: it is in
    /// the database). The audit entry holds only the hint.
    pub async fn add_stripe_signing_secret(
        &self,
        actor: &str,
        secret: &str,
    ) -> crate::AppResult<StripeSigningSecret> {
        let secret = secret.trim();
        check_signing_secret(secret).map_err(|e| FieldErrors::single("secret", e))?;
        let hint = partnerd_store::stripe_sql::secret_hint(secret);
        let audit = NewAudit::new(
            self.now(),
            actor,
            "stripe.signing_secret_add",
            "stripe_signing_secret",
        )
        .before_after(None, Some(serde_json::json!({ "hint": hint })));
        Ok(self.store.add_stripe_signing_secret(secret, audit).await?)
    }

    /// Deletes a saved signing secret (the end of a rotation), audit-logged.
    pub async fn delete_stripe_signing_secret(&self, actor: &str, id: i64) -> crate::AppResult<()> {
        let saved = self.store.stripe_signing_secrets().await?;
        let Some(secret) = saved.iter().find(|s| s.id == id) else {
            return Err(AppError::NotFound);
        };
        let audit = NewAudit::new(
            self.now(),
            actor,
            "stripe.signing_secret_delete",
            format!("stripe_signing_secret:{id}"),
        )
        .before_after(Some(serde_json::json!({ "hint": secret.hint })), None);
        Ok(self.store.delete_stripe_signing_secret(id, audit).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parked_facts_round_trip_through_their_json() {
        let parked = Parked::Refund(RefundFacts {
            charge: "ch_1".into(),
            payment_intent: Some("pi_1".into()),
            cumulative: 25_000,
            refunds: vec![("re_1".into(), 25_000)],
        });
        let back: Parked = serde_json::from_str(&payload(&parked)).unwrap();
        assert_eq!(back, parked);
        let text = payload(&Parked::Chargeback(ChargebackFacts {
            dispute: "dp_1".into(),
            charge: None,
            payment_intent: Some("pi_1".into()),
            amount: 100,
            change: ChargebackChange::Reinstated,
        }));
        assert!(text.contains("\"kind\":\"chargeback\""), "{text}");
        assert!(text.contains("\"reinstated\""), "{text}");
    }

    #[test]
    fn failed_and_cancelled_refunds_do_not_count() {
        let charge = Charge {
            id: "ch_1".into(),
            customer: None,
            invoice: None,
            payment_intent: None,
            amount: 100,
            amount_refunded: 30,
            currency: "USD".into(),
            refunded: false,
            refunds: vec![
                stripe::Refund {
                    id: "re_ok".into(),
                    amount: 30,
                    status: Some("succeeded".into()),
                },
                stripe::Refund {
                    id: "re_failed".into(),
                    amount: 40,
                    status: Some("failed".into()),
                },
                stripe::Refund {
                    id: "re_cancelled".into(),
                    amount: 50,
                    status: Some("canceled".into()),
                },
            ],
        };
        assert_eq!(
            RefundFacts::of(&charge).refunds,
            vec![("re_ok".to_owned(), 30)]
        );
    }

    #[test]
    fn only_whole_whsec_secrets_are_accepted() {
        assert!(check_signing_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(check_signing_secret("sk_live_MfKQ9r8GKYqrTwjUPD8I").is_err());
        assert!(check_signing_secret("whsec_abc").is_err());
        assert!(check_signing_secret("whsec_abc def ghi jkl").is_err());
    }

    #[test]
    fn aliases_skip_missing_and_empty_ids() {
        assert_eq!(aliases(Some("ch_1"), Some(" ")), vec!["ch_1".to_owned()]);
        assert!(aliases(None, None).is_empty());
    }
}
