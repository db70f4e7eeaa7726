//! The money ledger's storage (DESIGN.md "The money ledger"; R-COM-1..4,
//! R-PAY-1..4): the [`MoneyStore`] methods and their write and read shapes.
//!
//! `MoneyStore` is a supertrait of [`Store`](crate::Store), so every store has
//! these methods; it is a trait of its own only so that its implementation
//! (`money_sql.rs`) can live beside, not inside, the shared statements.
//!
//! Every method is one transaction that loads (and, on PostgreSQL, locks) what it
//! needs, asks a pure planner of `partnerd_domain::ledger` what to book, and writes
//! the transfers with the updated balances, lots, invoice or withdrawal together.
//! Every money movement is keyed by its source (I3), and billing events are
//! recorded with the answer they got, so a replay books nothing and answers as the
//! first delivery did. A refused call writes nothing.
//!
//! Lock order, so two transactions never wait on each other in a circle: the
//! billing event, then the invoice, then the partner's money row.

use async_trait::async_trait;
use partnerd_domain::commission::Invoice;
use partnerd_domain::ledger::{
    LedgerRecords, PartnerBalances, PartnerMoney, PayoutItem, PayoutStatus, Transfer, Withdrawal,
    WithdrawalStatus,
};
use partnerd_domain::{Currency, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{NewAudit, NewEmail, NewJob, StoreResult};

/// Where a billing event came from; with its id, the key a replay is known by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventOrigin {
    /// The integration API (`POST /api/v1/payments` …): the event id is the
    /// call's `id`, prefixed by the app with the call (`payment:…`).
    Api,
    /// A Stripe webhook: the event id is Stripe's `evt_…`.
    Stripe,
    /// `partnerd demo`'s made-up history.
    Demo,
}

impl EventOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            EventOrigin::Api => "api",
            EventOrigin::Stripe => "stripe",
            EventOrigin::Demo => "demo",
        }
    }
}

/// The idempotency key of one billing event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventKey {
    pub origin: EventOrigin,
    pub event_id: String,
}

impl EventKey {
    pub fn new(origin: EventOrigin, event_id: impl Into<String>) -> Self {
        Self {
            origin,
            event_id: event_id.into(),
        }
    }
}

/// A customer paid (R-COM-1). `payment_id` is the vendor's payment id or
/// Stripe's invoice id; refunds and chargebacks name it.
#[derive(Debug, Clone, Serialize)]
pub struct NewPayment {
    #[serde(skip)]
    pub event: EventKey,
    pub payment_id: String,
    /// The vendor's customer id (`signups.customer_id`): who is credited, and at
    /// which rate, comes from the customer's sign-up.
    pub customer_id: String,
    pub amount: i64,
    pub currency: Currency,
    /// When the customer paid; the hold counts from here (R-COM-4). Not part
    /// of what a replay is compared on: a caller that leaves it out gets "now",
    /// which differs on every retry, and the first delivery's time stands.
    #[serde(skip)]
    pub paid_at: Timestamp,
    pub subscription_id: Option<String>,
}

/// A refund of (part of) a payment (R-COM-3); may arrive before the payment.
#[derive(Debug, Clone, Serialize)]
pub struct NewRefund {
    #[serde(skip)]
    pub event: EventKey,
    pub refund_id: String,
    pub payment_id: String,
    pub amount: i64,
}

/// What a dispute event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargebackChange {
    /// The card network took the funds (`charge.dispute.funds_withdrawn`).
    Withdrawn,
    /// The vendor won; the funds came back (`charge.dispute.funds_reinstated`).
    Reinstated,
}

/// A chargeback of a payment, or its reinstatement (R-COM-3).
#[derive(Debug, Clone, Serialize)]
pub struct NewChargeback {
    #[serde(skip)]
    pub event: EventKey,
    pub chargeback_id: String,
    pub payment_id: String,
    pub amount: i64,
    pub change: ChargebackChange,
}

/// A subscription ended (`POST /subscriptions/{id}/cancel`,
/// `customer.subscription.deleted`). It books nothing: commission follows payments.
#[derive(Debug, Clone, Serialize)]
pub struct NewCancellation {
    #[serde(skip)]
    pub event: EventKey,
    pub subscription_id: String,
    pub customer_id: Option<String>,
}

/// Any billing event, for [`MoneyStore::record_billing_batch`].
#[derive(Debug, Clone)]
pub enum BillingEvent {
    Payment(NewPayment),
    Refund(NewRefund),
    Chargeback(NewChargeback),
    Cancellation(NewCancellation),
    /// A Stripe `invoice.paid`: the payment, the links of its charge and
    /// payment intent to the invoice, and the event's record, in one savepoint.
    /// Refused, with nothing written, with [`STRIPE_EVENT_SEEN`] when the event
    /// was processed before (the caller answers it as a replay), with
    /// [`STRIPE_NO_SIGNUP`] when the customer has no sign-up yet, and with
    /// [`STRIPE_PARKED_WAITING`] when parked refunds or disputes wait for this
    /// invoice: for the last two the caller takes the path that parks the
    /// payment or books those too.
    StripePayment {
        payment: NewPayment,
        link: crate::stripe_sql::StripeChargeLink,
        record: crate::stripe_sql::StripeEventRecord,
    },
}

/// Why a [`BillingEvent::StripePayment`] was not booked: parked events wait
/// for its invoice.
pub const STRIPE_PARKED_WAITING: &str = "parked Stripe events wait for this invoice";

/// Why a [`BillingEvent::StripePayment`] was not booked: the event was
/// processed before (it has its record in `stripe_events`).
pub const STRIPE_EVENT_SEEN: &str = "the Stripe event was processed before";

/// Why a [`BillingEvent::StripePayment`] was not booked: the customer has no
/// sign-up yet, so the payment waits for it (R-AFF-4).
pub const STRIPE_NO_SIGNUP: &str = "the Stripe customer has no sign-up yet";

/// Why a payment was not booked: its invoice had no row when the payment
/// looked, and another transaction (on PostgreSQL, another node) inserted one
/// before the payment could. Refused, not failed: a batch runs the event again,
/// and then finds the row.
pub const INVOICE_RACED: &str =
    "the payment was recorded at the same moment by another request; retry";

/// What a billing event was answered; stored with the event, so a replay gets
/// the same answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingAnswer {
    /// The payment (invoice) the event was about; none for a cancellation.
    pub payment_id: Option<String>,
    /// The credited partner, once the payment is known and credited.
    pub partner_id: Option<i64>,
    pub currency: Option<Currency>,
    /// The invoice's commission after the event (I4).
    pub commission: i64,
    /// What this event booked: positive earns, negative reverses.
    pub booked: i64,
    pub subscription_id: Option<String>,
}

/// R-PAY-2, R-PAY-4: where a partner's payouts go and what statements show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutProfile {
    pub paypal_email: Option<String>,
    pub legal_name: Option<String>,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<String>,
    pub tax_id: Option<String>,
}

impl PayoutProfile {
    /// Whether a withdrawal may be requested: a PayPal address (R-PAY-2) and the
    /// tax details (R-PAY-4) are on file.
    pub fn is_complete(&self) -> bool {
        [
            &self.paypal_email,
            &self.legal_name,
            &self.country,
            &self.tax_id,
        ]
        .iter()
        .all(|v| v.as_deref().is_some_and(|s| !s.trim().is_empty()))
    }
}

/// R-PAY-1: a partner asks for one currency's whole available balance.
#[derive(Debug, Clone)]
pub struct NewWithdrawal {
    /// The caller's random id: the ledger keys and PayPal's `sender_batch_id`.
    /// A second call with the same id returns the first withdrawal.
    pub id: String,
    pub partner_id: i64,
    pub currency: Currency,
    /// The currency's `min_withdrawal` in minor units.
    pub minimum: i64,
    pub requested_at: Timestamp,
    pub audit: NewAudit,
}

/// A withdrawal as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WithdrawalRow {
    pub withdrawal: Withdrawal,
    pub requested_at: Timestamp,
    pub decided_at: Option<Timestamp>,
    /// Why an admin rejected it.
    pub reason: Option<String>,
}

/// The payout of an approved withdrawal as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PayoutItemRow {
    pub item: PayoutItem,
    /// The PayPal address, as it was when the withdrawal was approved.
    pub receiver: String,
    /// Our idempotency key for PayPal, stored before the call (= the withdrawal id).
    pub sender_batch_id: String,
    pub payout_batch_id: Option<String>,
    pub payout_item_id: Option<String>,
    pub created_at: Timestamp,
    pub submitted_at: Option<Timestamp>,
    /// `paypal` (sent by the payout job through PayPal's API) or `manual` (a
    /// mass-payment file and an admin's mark), fixed at approval.
    pub via: String,
}

/// What a payout status report writes besides its booking, in the same
/// transaction (R-PAY-3: the partner is told when the money arrives or comes
/// back; polling goes on while the payout is in flight).
#[derive(Debug, Clone, Default)]
pub struct PayoutFollowUp {
    /// Written only when the report pays the withdrawal.
    pub email_if_paid: Option<NewEmail>,
    /// Written only when the report brings the money back to the partner.
    pub email_if_came_back: Option<NewEmail>,
    /// Enqueued whatever the report changed (the next status poll).
    pub job: Option<NewJob>,
}

/// One currency of a partner's balance (`GET /partners/{id}/balance`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BalanceRow {
    pub currency: Currency,
    pub balances: PartnerBalances,
}

/// One invoice's commission, for the panel and `GET /partners/{id}/commissions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommissionRow {
    pub payment_id: String,
    pub customer_id: Option<String>,
    pub currency: Currency,
    /// What the customer paid.
    pub amount: i64,
    /// Refunds and open chargebacks.
    pub refunded: i64,
    pub rate: i64,
    pub paid_at: Timestamp,
    /// The commission booked (I4).
    pub commission: i64,
    /// `not_needed`, `pending`, `approved` or `rejected`.
    pub review: String,
    /// Of the commission: still in its hold, waiting for a person.
    pub held: i64,
    pub on_review: i64,
    pub release_at: Option<Timestamp>,
}

/// One transfer with its place in the ledger and when it was booked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferRow {
    pub id: i64,
    pub transfer: Transfer,
    pub created_at: Timestamp,
}

/// Everything `check_invariants` reads, loaded in one snapshot
/// (`partnerd ledger verify`).
#[derive(Debug, Clone, Default)]
pub struct LedgerSnapshot {
    pub transfers: Vec<Transfer>,
    pub balances: Vec<PartnerMoney>,
    pub invoices: Vec<Invoice>,
    pub withdrawals: Vec<Withdrawal>,
    pub payout_items: Vec<PayoutItem>,
}

impl LedgerSnapshot {
    pub fn records(&self) -> LedgerRecords<'_> {
        LedgerRecords {
            transfers: &self.transfers,
            balances: &self.balances,
            invoices: &self.invoices,
            withdrawals: &self.withdrawals,
            payout_items: &self.payout_items,
        }
    }
}

/// The money methods of every store. Each is one transaction.
#[async_trait]
pub trait MoneyStore: Send + Sync {
    // --- billing events (R-COM-1..3) ---------------------------------------------------
    /// Records a payment and books its commission (held for `hold_days`, R-COM-4),
    /// at the customer's rate, for the partner the customer is credited to. Returns
    /// the answer and whether the event was a replay (then nothing was booked). A
    /// payment of a customer who is not credited is recorded and books nothing.
    async fn record_payment(
        &self,
        payment: NewPayment,
        hold_days: i64,
        now: Timestamp,
    ) -> StoreResult<(BillingAnswer, bool)>;
    /// Records a refund and reverses the commission on the refunded part (R-COM-3).
    async fn record_refund(
        &self,
        refund: NewRefund,
        hold_days: i64,
        now: Timestamp,
    ) -> StoreResult<(BillingAnswer, bool)>;
    /// Records a chargeback's withdrawal (reverses) or reinstatement (earns back).
    async fn record_chargeback(
        &self,
        chargeback: NewChargeback,
        hold_days: i64,
        now: Timestamp,
    ) -> StoreResult<(BillingAnswer, bool)>;
    /// Records that a subscription ended; books nothing.
    async fn cancel_subscription(
        &self,
        cancellation: NewCancellation,
        now: Timestamp,
    ) -> StoreResult<(BillingAnswer, bool)>;

    /// Group commit (DESIGN.md "the hot path"): books several events in one
    /// transaction, each in a savepoint of its own, so a refused event changes
    /// nothing and sinks none of the others. The outer error means nothing of
    /// the batch committed; otherwise each event has its own result, committed
    /// when `Ok`, exactly as the single-event methods would have answered.
    async fn record_billing_batch(
        &self,
        events: Vec<BillingEvent>,
        hold_days: i64,
        now: Timestamp,
    ) -> StoreResult<Vec<StoreResult<(BillingAnswer, bool)>>>;

    // --- holds and reviews (R-COM-4) -----------------------------------------------------
    /// Releases every lot whose hold ended by `now`, for up to `limit` partner
    /// books (partner and currency); returns how many lots were released. The job
    /// calls it until it returns 0.
    async fn release_due_holds(&self, now: Timestamp, limit: i64) -> StoreResult<u64>;
    /// Puts an invoice's commission on review (an admin, a fraud rule).
    async fn put_commission_on_review(&self, payment_id: &str, audit: NewAudit) -> StoreResult<()>;
    /// A person releases it: to held while the hold runs, else to the partner.
    async fn approve_commission_review(
        &self,
        payment_id: &str,
        audit: NewAudit,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// A person refuses it: the commission becomes zero for good.
    async fn reject_commission_review(&self, payment_id: &str, audit: NewAudit) -> StoreResult<()>;

    // --- payout profile and withdrawals (R-PAY-1..4) -------------------------------------
    async fn payout_profile(&self, partner_id: i64) -> StoreResult<PayoutProfile>;
    /// Saves the profile with its audit entry and `notices` (the emails telling
    /// the old PayPal address and the account that the address changed), together.
    async fn save_payout_profile(
        &self,
        partner_id: i64,
        profile: &PayoutProfile,
        audit: NewAudit,
        notices: Vec<NewEmail>,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// R-PAY-1: takes the whole available balance of the currency into payout
    /// clearing. Serialised on the partner's money row, so two requests at once
    /// never take more than the balance. Refused (`Ledger`) below the minimum,
    /// and (`Invalid`) without a complete payout profile. The same id again:
    /// the first withdrawal, `true`.
    async fn request_withdrawal(
        &self,
        request: NewWithdrawal,
    ) -> StoreResult<(WithdrawalRow, bool)>;
    /// R-PAY-3: an admin approves; creates the one payout item (sender_batch_id =
    /// the withdrawal id) and enqueues `payout_job` (the PayPal submission) with
    /// the audit entry, together.
    async fn approve_withdrawal(
        &self,
        withdrawal_id: &str,
        payout_job: Option<NewJob>,
        audit: NewAudit,
        now: Timestamp,
    ) -> StoreResult<PayoutItemRow>;
    /// R-PAY-3: an admin rejects with a reason; the money comes back, and
    /// `notice` (the partner's email) is written with it.
    async fn reject_withdrawal(
        &self,
        withdrawal_id: &str,
        reason: &str,
        audit: NewAudit,
        notice: Option<NewEmail>,
        now: Timestamp,
    ) -> StoreResult<WithdrawalRow>;
    /// PayPal accepted the batch: its ids, for polling.
    async fn record_payout_submission(
        &self,
        withdrawal_id: &str,
        payout_batch_id: &str,
        payout_item_id: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// A payout item's status from a poll, a webhook or an admin (with `audit`);
    /// books what it means (paid, or the money back) and writes `follow_up`'s
    /// email for what the report did, and its job, in the same transaction.
    async fn record_payout_status(
        &self,
        withdrawal_id: &str,
        status: PayoutStatus,
        payout_item_id: Option<&str>,
        audit: Option<NewAudit>,
        follow_up: PayoutFollowUp,
        now: Timestamp,
    ) -> StoreResult<WithdrawalRow>;

    // --- reads -----------------------------------------------------------------------
    /// The partner's balances, one row per currency they have money in.
    async fn partner_balances(&self, partner_id: i64) -> StoreResult<Vec<BalanceRow>>;
    /// The partner's commissions, newest payment first.
    async fn partner_commissions(
        &self,
        partner_id: i64,
        limit: i64,
        offset: i64,
    ) -> StoreResult<Vec<CommissionRow>>;
    /// The transfers of a partner's book, newest first.
    async fn partner_transfers(
        &self,
        partner_id: i64,
        limit: i64,
        offset: i64,
    ) -> StoreResult<Vec<TransferRow>>;
    /// Withdrawals oldest first, of one status (the admins' queue: `Requested`) or all.
    async fn list_withdrawals(
        &self,
        status: Option<WithdrawalStatus>,
        limit: i64,
        offset: i64,
    ) -> StoreResult<Vec<WithdrawalRow>>;
    async fn get_withdrawal(
        &self,
        withdrawal_id: &str,
    ) -> StoreResult<(WithdrawalRow, Option<PayoutItemRow>)>;
    /// R-ACC-4: the partner's credited customers whose first payment (of more than
    /// zero) was made at or after `since`.
    async fn new_paying_customers(&self, partner_id: i64, since: Timestamp) -> StoreResult<i64>;
    /// Everything the invariants speak about, read in one transaction.
    async fn ledger_records(&self) -> StoreResult<LedgerSnapshot>;
}
