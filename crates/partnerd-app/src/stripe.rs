//! Stripe webhooks in: the `Stripe-Signature` check and the events partnerd books.
//!
//! Stripe signs each delivery with every active signing secret of the endpoint
//! (several during a rotation) and sends `Stripe-Signature: t=…,v1=…[,v1=…][,v0=…]`.
//! A delivery is genuine when some `v1` equals the hex HMAC-SHA256 of
//! `"{t}.{raw body}"` under one of our secrets, and `t` is within
//! [`TOLERANCE_SECONDS`] of now. Only `v1` counts: `v0` (and any future scheme)
//! is ignored, so a header with only `v0` is refused. The body must be the exact
//! bytes received: re-serialised JSON does not verify.
//!
//! [`parse_event`] then reads the few event types partnerd books into typed
//! values, tolerant of every field it does not need (Stripe adds fields without
//! a new API version). Both the pre-2025 shape of invoices (`subscription`,
//! `charge`, `payment_intent` at the top) and the `2025-03-31.basil` one
//! (`parent.subscription_details`, `payments`) are read.
//!
//! Nothing here reads a clock or touches the store: time is a parameter.

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use partnerd_domain::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

/// The header Stripe puts its signatures in.
pub const SIGNATURE_HEADER: &str = "Stripe-Signature";

/// How far, in seconds, the signed timestamp may be from now, either way.
/// Stripe's libraries default to 300 s; we also refuse timestamps that far in
/// the future, which only a forged or badly skewed sender produces.
pub const TOLERANCE_SECONDS: i64 = 300;

/// A real header is well under 1 KB (one timestamp, a few 64-hex signatures);
/// the bound keeps a hostile header from costing more than a glance.
const MAX_HEADER_BYTES: usize = 4096;

/// Metadata keys read, in this order, when a checkout session or customer
/// carries the referral in `metadata` rather than `client_reference_id`.
/// `partnerd_ref` is the name of the tracking cookie and form field, so the
/// name a vendor most likely copies into metadata.
pub const REFERRAL_METADATA_KEYS: [&str; 4] =
    ["partnerd_referral", "partnerd_ref", "referral", "ref"];

type HmacSha256 = Hmac<Sha256>;

/// The endpoint's signing secrets (`whsec_…`), all accepted: during a rotation
/// Stripe signs with the old and the new one. Never printed, not even by `Debug`.
#[derive(Clone, Default)]
pub struct SigningSecrets(Vec<Vec<u8>>);

impl SigningSecrets {
    /// The secrets given, trimmed; empty ones are dropped.
    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self(
            secrets
                .into_iter()
                .map(|secret| secret.as_ref().trim().as_bytes().to_vec())
                .filter(|secret| !secret.is_empty())
                .collect(),
        )
    }

    /// Reads `PARTNERD_STRIPE_WEBHOOK_SECRET`'s form: secrets separated by commas.
    pub fn parse(comma_separated: &str) -> Self {
        Self::new(comma_separated.split(','))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for SigningSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningSecrets({} × \"***\")", self.0.len())
    }
}

/// Why a delivery's signature was refused. Each one is answered with `400` and
/// nothing is written; the message is safe to log (it holds no secret or body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe signing secret is configured")]
    NoSecrets,
    #[error("the Stripe-Signature header is missing")]
    MissingHeader,
    #[error("the Stripe-Signature header is malformed: {0}")]
    Malformed(&'static str),
    #[error("the Stripe-Signature header has no v1 signature")]
    NoV1Signature,
    #[error(
        "the signature's timestamp is {offset_seconds} s from now, outside the {TOLERANCE_SECONDS} s tolerance"
    )]
    TimestampOutsideTolerance {
        /// Now minus the signed timestamp: positive when the delivery is old,
        /// negative when it claims to come from the future.
        offset_seconds: i64,
    },
    #[error("no v1 signature matches the body under any configured secret")]
    NoMatchingSignature,
}

/// Checks `header` (the `Stripe-Signature` value, `None` when absent) against
/// the raw `payload` at time `now`. On success returns the signed timestamp
/// (Unix seconds).
///
/// The signature is checked before the timestamp, so that
/// [`SignatureError::TimestampOutsideTolerance`] always describes a genuine but
/// stale (or replayed) delivery, never a forged one.
pub fn verify_signature(
    header: Option<&str>,
    payload: &[u8],
    secrets: &SigningSecrets,
    now: Timestamp,
) -> Result<i64, SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NoSecrets);
    }
    let header = header
        .map(str::trim)
        .filter(|header| !header.is_empty())
        .ok_or(SignatureError::MissingHeader)?;
    let parsed = parse_header(header)?;
    if parsed.v1.is_empty() {
        return Err(SignatureError::NoV1Signature);
    }

    // Every (secret, signature) pair is compared, in constant time, and the
    // results are combined without branching, so neither which secret nor
    // which signature matched shows in the timing.
    let mut matched = Choice::from(0);
    for secret in &secrets.0 {
        let expected = compute_signature(secret, parsed.timestamp_text, payload);
        for candidate in parsed.v1.iter().flatten() {
            matched |= expected.as_slice().ct_eq(candidate.as_slice());
        }
    }
    if !bool::from(matched) {
        return Err(SignatureError::NoMatchingSignature);
    }

    let offset_millis = parsed
        .timestamp
        .checked_mul(1000)
        .map(|signed| now.millis().saturating_sub(signed));
    match offset_millis {
        Some(offset) if offset.abs() <= TOLERANCE_SECONDS * 1000 => Ok(parsed.timestamp),
        _ => Err(SignatureError::TimestampOutsideTolerance {
            offset_seconds: now.millis() / 1000 - parsed.timestamp,
        }),
    }
}

/// The HMAC-SHA256 of `"{timestamp}.{payload}"`, as raw bytes.
fn compute_signature(secret: &[u8], timestamp: &str, payload: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac.finalize().into_bytes().into()
}

struct ParsedHeader<'a> {
    timestamp: i64,
    /// `t` exactly as sent: the signed string uses these characters.
    timestamp_text: &'a str,
    /// Each `v1` value, decoded; `None` for one that is not 64 hex digits (it
    /// can match nothing, but it does not make the header malformed).
    v1: Vec<Option<[u8; 32]>>,
}

/// Splits `t=…,v1=…,v0=…` into its parts, as Stripe documents: elements are
/// separated by `,`, each is `scheme=value`, unknown schemes are ignored.
fn parse_header(header: &str) -> Result<ParsedHeader<'_>, SignatureError> {
    if header.len() > MAX_HEADER_BYTES {
        return Err(SignatureError::Malformed("longer than 4096 bytes"));
    }
    let mut timestamp_text = None;
    let mut v1 = Vec::new();
    for element in header.split(',') {
        let element = element.trim();
        if element.is_empty() {
            continue;
        }
        let (scheme, value) = element
            .split_once('=')
            .ok_or(SignatureError::Malformed("an element is not `key=value`"))?;
        match scheme {
            "t" if timestamp_text.is_some() => {
                return Err(SignatureError::Malformed("more than one timestamp"));
            }
            "t" => timestamp_text = Some(value),
            "v1" => v1.push(decode_signature(value)),
            _ => {}
        }
    }
    let timestamp_text = timestamp_text.ok_or(SignatureError::Malformed("no timestamp `t`"))?;
    if timestamp_text.is_empty() || !timestamp_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::Malformed("the timestamp is not a number"));
    }
    let timestamp = timestamp_text
        .parse::<i64>()
        .map_err(|_| SignatureError::Malformed("the timestamp is out of range"))?;
    Ok(ParsedHeader {
        timestamp,
        timestamp_text,
        v1,
    })
}

fn decode_signature(value: &str) -> Option<[u8; 32]> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(value, &mut bytes).ok()?;
    Some(bytes)
}

// ---------------------------------------------------------------------------
// Events

/// Why an event body could not be read. A verified body that does not parse is
/// a bug on one side or the other: answered `400`, logged, nothing written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the Stripe event is not valid JSON or lacks `id`, `type` or `created`: {0}")]
    Envelope(String),
    #[error("the `{event_type}` event's object is not as expected: {reason}")]
    Object { event_type: String, reason: String },
}

/// One Stripe event, with the object of the types partnerd books.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `evt_…`: deliveries are deduplicated on it.
    pub id: String,
    /// `type`, e.g. `invoice.paid`.
    pub event_type: String,
    pub created: Timestamp,
    pub livemode: bool,
    pub object: EventObject,
}

/// The event's `data.object`, typed for the events partnerd acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventObject {
    /// `checkout.session.completed`: sign-up attribution.
    CheckoutSessionCompleted(CheckoutSession),
    /// `customer.created`: sign-up attribution.
    CustomerCreated(Customer),
    /// `invoice.paid`: a payment.
    InvoicePaid(Invoice),
    /// `invoice_payment.paid` (API `2025-03-31.basil` and later): links an
    /// invoice to the charge or payment intent that paid it, which later
    /// refunds and disputes name instead of the invoice.
    InvoicePaymentPaid(InvoicePayment),
    /// `charge.refunded`: a refund, with the cumulative refunded amount.
    ChargeRefunded(Charge),
    /// `charge.dispute.funds_withdrawn`: a chargeback.
    DisputeFundsWithdrawn(Dispute),
    /// `charge.dispute.funds_reinstated`: a chargeback won.
    DisputeFundsReinstated(Dispute),
    /// `customer.subscription.deleted`: a cancellation.
    SubscriptionDeleted(Subscription),
    /// Any other type: acknowledged and not booked.
    Ignored,
}

/// `checkout.session.completed`'s session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    /// `cs_…`
    pub id: String,
    /// `cus_…`; absent for guest checkouts that create no customer.
    pub customer: Option<String>,
    pub client_reference_id: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// `customer_details.email`, else `customer_email`.
    pub email: Option<String>,
    pub subscription: Option<String>,
    /// `payment`, `subscription` or `setup`.
    pub mode: Option<String>,
    /// `paid`, `unpaid` or `no_payment_required`.
    pub payment_status: Option<String>,
}

impl CheckoutSession {
    /// The referral token or partner id the vendor passed: `client_reference_id`,
    /// else the first of [`REFERRAL_METADATA_KEYS`] present.
    pub fn referral(&self) -> Option<&str> {
        non_empty(self.client_reference_id.as_deref()).or_else(|| referral_in(&self.metadata))
    }
}

/// `customer.created`'s customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    /// `cus_…`: partnerd's `customer_id`.
    pub id: String,
    pub email: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

impl Customer {
    /// The referral the vendor stored in the customer's metadata.
    pub fn referral(&self) -> Option<&str> {
        referral_in(&self.metadata)
    }
}

/// `invoice.paid`'s invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// `in_…`: the payment's id.
    pub id: String,
    pub customer: Option<String>,
    pub customer_email: Option<String>,
    /// Minor units actually paid.
    pub amount_paid: i64,
    /// ISO 4217, upper case (Stripe sends lower case).
    pub currency: String,
    pub subscription: Option<String>,
    /// `status_transitions.paid_at`, else the invoice's `created`.
    pub paid_at: Timestamp,
    /// The charge that paid it, when the API version still says (before basil,
    /// or from `payments` when included).
    pub charge: Option<String>,
    pub payment_intent: Option<String>,
    pub billing_reason: Option<String>,
    pub status: Option<String>,
}

/// `invoice_payment.paid`'s invoice payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoicePayment {
    /// `inpay_…`
    pub id: String,
    pub invoice: String,
    pub charge: Option<String>,
    pub payment_intent: Option<String>,
    pub amount_paid: Option<i64>,
    pub currency: String,
}

/// `charge.refunded`'s charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// `ch_…`
    pub id: String,
    pub customer: Option<String>,
    /// The invoice it paid; Stripe stopped sending this in `2025-03-31.basil`,
    /// so match on `id` / `payment_intent` too.
    pub invoice: Option<String>,
    pub payment_intent: Option<String>,
    pub amount: i64,
    /// Cumulative: everything refunded on this charge so far.
    pub amount_refunded: i64,
    pub currency: String,
    /// `true` once fully refunded.
    pub refunded: bool,
    /// `refunds.data`, when the payload carries it (since API `2022-11-15`
    /// Stripe only does when expanded; `amount_refunded` is always there).
    pub refunds: Vec<Refund>,
}

/// One refund of a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// `re_…`
    pub id: String,
    pub amount: i64,
    pub status: Option<String>,
}

/// A dispute (chargeback).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispute {
    /// `dp_…`
    pub id: String,
    pub charge: Option<String>,
    pub payment_intent: Option<String>,
    /// Minor units withdrawn or reinstated.
    pub amount: i64,
    pub currency: String,
    pub status: Option<String>,
    pub reason: Option<String>,
}

/// `customer.subscription.deleted`'s subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// `sub_…`
    pub id: String,
    pub customer: Option<String>,
    pub status: Option<String>,
}

/// Reads a (verified) event body.
pub fn parse_event(payload: &[u8]) -> Result<Event, EventError> {
    #[derive(Deserialize)]
    struct Head {
        id: String,
        #[serde(rename = "type")]
        event_type: String,
        created: i64,
        #[serde(default)]
        livemode: bool,
    }
    let head: Head =
        serde_json::from_slice(payload).map_err(|e| EventError::Envelope(e.to_string()))?;
    let object = match head.event_type.as_str() {
        "checkout.session.completed" => EventObject::CheckoutSessionCompleted(
            object::<RawCheckoutSession>(payload, &head.event_type)?.into(),
        ),
        "customer.created" => {
            EventObject::CustomerCreated(object::<RawCustomer>(payload, &head.event_type)?.into())
        }
        "invoice.paid" => {
            EventObject::InvoicePaid(object::<RawInvoice>(payload, &head.event_type)?.into())
        }
        "invoice_payment.paid" => EventObject::InvoicePaymentPaid(
            object::<RawInvoicePayment>(payload, &head.event_type)?.into(),
        ),
        "charge.refunded" => {
            EventObject::ChargeRefunded(object::<RawCharge>(payload, &head.event_type)?.into())
        }
        "charge.dispute.funds_withdrawn" => EventObject::DisputeFundsWithdrawn(
            object::<RawDispute>(payload, &head.event_type)?.into(),
        ),
        "charge.dispute.funds_reinstated" => EventObject::DisputeFundsReinstated(
            object::<RawDispute>(payload, &head.event_type)?.into(),
        ),
        "customer.subscription.deleted" => EventObject::SubscriptionDeleted(
            object::<RawSubscription>(payload, &head.event_type)?.into(),
        ),
        _ => EventObject::Ignored,
    };
    Ok(Event {
        id: head.id,
        event_type: head.event_type,
        created: Timestamp::from_millis(head.created.saturating_mul(1000)),
        livemode: head.livemode,
        object,
    })
}

/// Reads `data.object` as `T`. A second pass over the body, but one that
/// builds only the fields `T` names: cheaper than going through a
/// `serde_json::Value` of the whole event.
fn object<T: DeserializeOwned>(payload: &[u8], event_type: &str) -> Result<T, EventError> {
    #[derive(Deserialize)]
    struct Envelope<T> {
        data: Data<T>,
    }
    #[derive(Deserialize)]
    struct Data<T> {
        object: T,
    }
    serde_json::from_slice::<Envelope<T>>(payload)
        .map(|envelope| envelope.data.object)
        .map_err(|e| EventError::Object {
            event_type: event_type.to_owned(),
            reason: e.to_string(),
        })
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|value| !value.is_empty())
}

fn referral_in(metadata: &BTreeMap<String, String>) -> Option<&str> {
    REFERRAL_METADATA_KEYS
        .iter()
        .find_map(|key| non_empty(metadata.get(*key).map(String::as_str)))
}

/// Stripe sends currencies in lower case; partnerd's are ISO 4217 upper case.
fn currency(code: String) -> String {
    code.to_ascii_uppercase()
}

/// An expandable reference: `"cus_…"`, an expanded object with an `id`, or null.
fn expandable<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Expandable {
        Id(String),
        Object { id: String },
    }
    Ok(
        Option::<Expandable>::deserialize(deserializer)?.map(|value| match value {
            Expandable::Id(id) | Expandable::Object { id } => id,
        }),
    )
}

/// Metadata: `{}` normally, tolerated as null or absent.
fn metadata<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Deserialize)]
struct RawCheckoutSession {
    id: String,
    #[serde(default, deserialize_with = "expandable")]
    customer: Option<String>,
    #[serde(default)]
    client_reference_id: Option<String>,
    #[serde(default, deserialize_with = "metadata")]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    customer_email: Option<String>,
    #[serde(default)]
    customer_details: Option<RawCustomerDetails>,
    #[serde(default, deserialize_with = "expandable")]
    subscription: Option<String>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    payment_status: Option<String>,
}

#[derive(Deserialize)]
struct RawCustomerDetails {
    #[serde(default)]
    email: Option<String>,
}

impl From<RawCheckoutSession> for CheckoutSession {
    fn from(raw: RawCheckoutSession) -> Self {
        let email = raw
            .customer_details
            .and_then(|details| details.email)
            .or(raw.customer_email);
        Self {
            id: raw.id,
            customer: raw.customer,
            client_reference_id: raw.client_reference_id,
            metadata: raw.metadata,
            email,
            subscription: raw.subscription,
            mode: raw.mode,
            payment_status: raw.payment_status,
        }
    }
}

#[derive(Deserialize)]
struct RawCustomer {
    id: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default, deserialize_with = "metadata")]
    metadata: BTreeMap<String, String>,
}

impl From<RawCustomer> for Customer {
    fn from(raw: RawCustomer) -> Self {
        Self {
            id: raw.id,
            email: raw.email,
            metadata: raw.metadata,
        }
    }
}

#[derive(Deserialize)]
struct RawInvoice {
    id: String,
    #[serde(default, deserialize_with = "expandable")]
    customer: Option<String>,
    #[serde(default)]
    customer_email: Option<String>,
    amount_paid: i64,
    currency: String,
    created: i64,
    #[serde(default)]
    status_transitions: Option<RawStatusTransitions>,
    /// Before basil.
    #[serde(default, deserialize_with = "expandable")]
    subscription: Option<String>,
    /// Basil and later.
    #[serde(default)]
    parent: Option<RawInvoiceParent>,
    #[serde(default, deserialize_with = "expandable")]
    charge: Option<String>,
    #[serde(default, deserialize_with = "expandable")]
    payment_intent: Option<String>,
    /// Basil and later, only when included: the invoice payments.
    #[serde(default)]
    payments: Option<RawList<RawInvoicePaymentRef>>,
    #[serde(default)]
    billing_reason: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Deserialize)]
struct RawStatusTransitions {
    #[serde(default)]
    paid_at: Option<i64>,
}

#[derive(Deserialize)]
struct RawInvoiceParent {
    #[serde(default)]
    subscription_details: Option<RawSubscriptionDetails>,
}

#[derive(Deserialize)]
struct RawSubscriptionDetails {
    #[serde(default, deserialize_with = "expandable")]
    subscription: Option<String>,
}

#[derive(Deserialize)]
struct RawList<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
}

#[derive(Deserialize)]
struct RawInvoicePaymentRef {
    #[serde(default)]
    payment: Option<RawPaymentRef>,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Deserialize)]
struct RawPaymentRef {
    #[serde(default, deserialize_with = "expandable")]
    charge: Option<String>,
    #[serde(default, deserialize_with = "expandable")]
    payment_intent: Option<String>,
}

impl From<RawInvoice> for Invoice {
    fn from(raw: RawInvoice) -> Self {
        let paid_at = raw
            .status_transitions
            .and_then(|transitions| transitions.paid_at)
            .unwrap_or(raw.created);
        let subscription = raw.subscription.or_else(|| {
            raw.parent
                .and_then(|parent| parent.subscription_details)
                .and_then(|details| details.subscription)
        });
        // Basil moved the charge and payment intent into `payments`; take the
        // paid one when the payload includes the list.
        let paid_payment = raw.payments.and_then(|payments| {
            payments
                .data
                .into_iter()
                .filter(|payment| {
                    payment
                        .status
                        .as_deref()
                        .is_none_or(|status| status == "paid")
                })
                .find_map(|payment| payment.payment)
        });
        let (payments_charge, payments_intent) = match paid_payment {
            Some(payment) => (payment.charge, payment.payment_intent),
            None => (None, None),
        };
        Self {
            id: raw.id,
            customer: raw.customer,
            customer_email: raw.customer_email,
            amount_paid: raw.amount_paid,
            currency: currency(raw.currency),
            subscription,
            paid_at: Timestamp::from_millis(paid_at.saturating_mul(1000)),
            charge: raw.charge.or(payments_charge),
            payment_intent: raw.payment_intent.or(payments_intent),
            billing_reason: raw.billing_reason,
            status: raw.status,
        }
    }
}

#[derive(Deserialize)]
struct RawInvoicePayment {
    id: String,
    #[serde(deserialize_with = "expandable")]
    invoice: Option<String>,
    #[serde(default)]
    payment: Option<RawPaymentRef>,
    #[serde(default)]
    amount_paid: Option<i64>,
    currency: String,
}

impl From<RawInvoicePayment> for InvoicePayment {
    fn from(raw: RawInvoicePayment) -> Self {
        let (charge, payment_intent) = match raw.payment {
            Some(payment) => (payment.charge, payment.payment_intent),
            None => (None, None),
        };
        Self {
            id: raw.id,
            invoice: raw.invoice.unwrap_or_default(),
            charge,
            payment_intent,
            amount_paid: raw.amount_paid,
            currency: currency(raw.currency),
        }
    }
}

#[derive(Deserialize)]
struct RawCharge {
    id: String,
    #[serde(default, deserialize_with = "expandable")]
    customer: Option<String>,
    #[serde(default, deserialize_with = "expandable")]
    invoice: Option<String>,
    #[serde(default, deserialize_with = "expandable")]
    payment_intent: Option<String>,
    amount: i64,
    amount_refunded: i64,
    currency: String,
    #[serde(default)]
    refunded: bool,
    #[serde(default)]
    refunds: Option<RawList<RawRefund>>,
}

#[derive(Deserialize)]
struct RawRefund {
    id: String,
    amount: i64,
    #[serde(default)]
    status: Option<String>,
}

impl From<RawCharge> for Charge {
    fn from(raw: RawCharge) -> Self {
        Self {
            id: raw.id,
            customer: raw.customer,
            invoice: raw.invoice,
            payment_intent: raw.payment_intent,
            amount: raw.amount,
            amount_refunded: raw.amount_refunded,
            currency: currency(raw.currency),
            refunded: raw.refunded,
            refunds: raw
                .refunds
                .map(|list| {
                    list.data
                        .into_iter()
                        .map(|refund| Refund {
                            id: refund.id,
                            amount: refund.amount,
                            status: refund.status,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
struct RawDispute {
    id: String,
    #[serde(default, deserialize_with = "expandable")]
    charge: Option<String>,
    #[serde(default, deserialize_with = "expandable")]
    payment_intent: Option<String>,
    amount: i64,
    currency: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

impl From<RawDispute> for Dispute {
    fn from(raw: RawDispute) -> Self {
        Self {
            id: raw.id,
            charge: raw.charge,
            payment_intent: raw.payment_intent,
            amount: raw.amount,
            currency: currency(raw.currency),
            status: raw.status,
            reason: raw.reason,
        }
    }
}

#[derive(Deserialize)]
struct RawSubscription {
    id: String,
    #[serde(default, deserialize_with = "expandable")]
    customer: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

impl From<RawSubscription> for Subscription {
    fn from(raw: RawSubscription) -> Self {
        Self {
            id: raw.id,
            customer: raw.customer,
            status: raw.status,
        }
    }
}

#[cfg(test)]
mod tests {
    use partnerd_testkit::stripe as fake;
    use serde_json::json;

    use super::*;

    const SECRET: &str = "whsec_current";
    const T: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_millis(seconds * 1000)
    }

    fn check(header: &str, body: &[u8], now: i64) -> Result<i64, SignatureError> {
        verify_signature(Some(header), body, &SigningSecrets::parse(SECRET), at(now))
    }

    #[test]
    fn a_body_signed_with_the_secret_is_accepted() {
        assert_eq!(check(&fake::sign(SECRET, T, BODY), BODY, T), Ok(T));
    }

    #[test]
    fn during_rotation_a_signature_under_any_configured_secret_is_accepted() {
        let secrets = SigningSecrets::parse(" whsec_new , whsec_old ,");
        assert_eq!(secrets.len(), 2);
        let header = fake::sign("whsec_old", T, BODY);
        assert_eq!(
            verify_signature(Some(&header), BODY, &secrets, at(T)),
            Ok(T)
        );
        let header = fake::sign_with_all(&["whsec_other", "whsec_new"], T, BODY);
        assert_eq!(
            verify_signature(Some(&header), BODY, &secrets, at(T)),
            Ok(T)
        );
    }

    #[test]
    fn every_v1_is_tried_and_other_schemes_are_ignored() {
        let good = fake::signature(SECRET, T, BODY);
        let header = format!(
            "t={T},v1={},v1=nothex,v0={good},v2=x,v1={good}",
            "0".repeat(64)
        );
        assert_eq!(check(&header, BODY, T), Ok(T));
    }

    #[test]
    fn a_header_with_only_v0_is_refused() {
        let good = fake::signature(SECRET, T, BODY);
        assert_eq!(
            check(&format!("t={T},v0={good}"), BODY, T),
            Err(SignatureError::NoV1Signature)
        );
    }

    #[test]
    fn a_missing_or_empty_header_is_refused() {
        let secrets = SigningSecrets::parse(SECRET);
        assert_eq!(
            verify_signature(None, BODY, &secrets, at(T)),
            Err(SignatureError::MissingHeader)
        );
        assert_eq!(check("  ", BODY, T), Err(SignatureError::MissingHeader));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let good = fake::signature(SECRET, T, BODY);
        for header in [
            "garbage".to_owned(),
            format!("v1={good}"),
            format!("t=abc,v1={good}"),
            format!("t=-5,v1={good}"),
            format!("t=,v1={good}"),
            format!("t={T},t={T},v1={good}"),
            format!("t=99999999999999999999,v1={good}"),
            format!("t={T},v1={good},{}", "v3=a".repeat(2000)),
        ] {
            assert!(
                matches!(check(&header, BODY, T), Err(SignatureError::Malformed(_))),
                "{header:.60} was not called malformed"
            );
        }
    }

    #[test]
    fn a_wrong_secret_or_a_changed_byte_is_refused() {
        assert_eq!(
            check(&fake::sign("whsec_other", T, BODY), BODY, T),
            Err(SignatureError::NoMatchingSignature)
        );
        let header = fake::sign(SECRET, T, BODY);
        let mut changed = BODY.to_vec();
        changed[10] ^= 1;
        assert_eq!(
            check(&header, &changed, T),
            Err(SignatureError::NoMatchingSignature)
        );
        // The timestamp is part of what is signed.
        let moved = header.replacen(&format!("t={T}"), &format!("t={}", T + 1), 1);
        assert_eq!(
            check(&moved, BODY, T),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn the_tolerance_is_300_seconds_both_ways() {
        let header = fake::sign(SECRET, T, BODY);
        assert_eq!(check(&header, BODY, T + 300), Ok(T));
        assert_eq!(check(&header, BODY, T - 300), Ok(T));
        assert_eq!(
            check(&header, BODY, T + 301),
            Err(SignatureError::TimestampOutsideTolerance {
                offset_seconds: 301
            })
        );
        assert_eq!(
            check(&header, BODY, T - 301),
            Err(SignatureError::TimestampOutsideTolerance {
                offset_seconds: -301
            })
        );
    }

    #[test]
    fn a_forged_and_stale_delivery_is_called_forged() {
        let header = fake::sign("whsec_other", T, BODY);
        assert_eq!(
            check(&header, BODY, T + 10_000),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn with_no_secret_configured_nothing_verifies() {
        let header = fake::sign(SECRET, T, BODY);
        assert_eq!(
            verify_signature(Some(&header), BODY, &SigningSecrets::parse(" , "), at(T)),
            Err(SignatureError::NoSecrets)
        );
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let printed = format!("{:?}", SigningSecrets::parse("whsec_abc,whsec_def"));
        assert!(!printed.contains("whsec"), "{printed}");
    }

    fn parse(body: &str) -> Event {
        parse_event(body.as_bytes()).unwrap()
    }

    #[test]
    fn checkout_session_completed_gives_customer_referral_and_email() {
        let event = parse(&fake::checkout_session_completed(
            &fake::CheckoutSessionCompleted {
                client_reference_id: Some("tok_abc"),
                ..Default::default()
            },
        ));
        assert_eq!(event.event_type, "checkout.session.completed");
        assert_eq!(event.created, at(1_700_000_000));
        let EventObject::CheckoutSessionCompleted(session) = event.object else {
            panic!("{:?}", event.object)
        };
        assert_eq!(session.customer.as_deref(), Some("cus_QexampleCustomer1"));
        assert_eq!(session.referral(), Some("tok_abc"));
        assert_eq!(session.email.as_deref(), Some("jenny.rosen@example.com"));
        assert_eq!(
            session.subscription.as_deref(),
            Some("sub_1PexampleSubscr1")
        );
        assert_eq!(session.payment_status.as_deref(), Some("paid"));
    }

    #[test]
    fn a_referral_in_metadata_is_found_when_there_is_no_client_reference_id() {
        let event = parse(&fake::checkout_session_completed(
            &fake::CheckoutSessionCompleted {
                metadata: &[("ref", "  "), ("referral", "P7K2")],
                ..Default::default()
            },
        ));
        let EventObject::CheckoutSessionCompleted(session) = event.object else {
            panic!()
        };
        assert_eq!(session.referral(), Some("P7K2"));
    }

    #[test]
    fn customer_created_gives_id_email_and_metadata() {
        let event = parse(&fake::customer_created(&fake::CustomerCreated {
            metadata: &[("partnerd_referral", "tok_xyz")],
            ..Default::default()
        }));
        let EventObject::CustomerCreated(customer) = event.object else {
            panic!()
        };
        assert_eq!(customer.id, "cus_QexampleCustomer1");
        assert_eq!(customer.email.as_deref(), Some("jenny.rosen@example.com"));
        assert_eq!(customer.referral(), Some("tok_xyz"));
    }

    #[test]
    fn invoice_paid_gives_the_payment_with_an_upper_case_currency() {
        let event = parse(&fake::invoice_paid(&fake::InvoicePaid {
            currency: "eur",
            paid_at: Some(1_700_000_123),
            ..Default::default()
        }));
        let EventObject::InvoicePaid(invoice) = event.object else {
            panic!()
        };
        assert_eq!(invoice.id, "in_1PexampleInvoice1");
        assert_eq!(invoice.customer.as_deref(), Some("cus_QexampleCustomer1"));
        assert_eq!(invoice.amount_paid, 100_000);
        assert_eq!(invoice.currency, "EUR");
        assert_eq!(
            invoice.subscription.as_deref(),
            Some("sub_1PexampleSubscr1")
        );
        assert_eq!(invoice.paid_at, at(1_700_000_123));
        assert_eq!(invoice.charge.as_deref(), Some("ch_3PexampleCharge01"));
        assert_eq!(
            invoice.payment_intent.as_deref(),
            Some("pi_3PexamplePayInt01")
        );
    }

    #[test]
    fn invoice_paid_in_the_basil_shape_finds_subscription_and_payment_intent() {
        let event = parse(&fake::invoice_paid(&fake::InvoicePaid {
            basil: true,
            paid_at: None,
            ..Default::default()
        }));
        let EventObject::InvoicePaid(invoice) = event.object else {
            panic!()
        };
        assert_eq!(
            invoice.subscription.as_deref(),
            Some("sub_1PexampleSubscr1")
        );
        assert_eq!(
            invoice.payment_intent.as_deref(),
            Some("pi_3PexamplePayInt01")
        );
        assert_eq!(invoice.charge, None);
        // No paid_at: the invoice's creation time (the builder uses created − 1 h).
        assert_eq!(invoice.paid_at, at(1_700_000_000 - 3600));
    }

    #[test]
    fn charge_refunded_gives_the_cumulative_amount_and_each_refund() {
        let event = parse(&fake::charge_refunded(&fake::ChargeRefunded {
            amount_refunded: 40_000,
            refunds: &[("re_1", 15_000), ("re_2", 25_000)],
            ..Default::default()
        }));
        let EventObject::ChargeRefunded(charge) = event.object else {
            panic!()
        };
        assert_eq!(charge.id, "ch_3PexampleCharge01");
        assert_eq!(charge.invoice.as_deref(), Some("in_1PexampleInvoice1"));
        assert_eq!(charge.customer.as_deref(), Some("cus_QexampleCustomer1"));
        assert_eq!(charge.amount_refunded, 40_000);
        assert!(!charge.refunded);
        assert_eq!(charge.currency, "USD");
        assert_eq!(
            charge.refunds,
            vec![
                Refund {
                    id: "re_1".into(),
                    amount: 15_000,
                    status: Some("succeeded".into())
                },
                Refund {
                    id: "re_2".into(),
                    amount: 25_000,
                    status: Some("succeeded".into())
                },
            ]
        );
    }

    #[test]
    fn a_refunded_charge_without_its_refund_list_still_parses() {
        let event = parse(&fake::charge_refunded(&fake::ChargeRefunded {
            invoice: None,
            amount_refunded: 100_000,
            refunds: &[],
            ..Default::default()
        }));
        let EventObject::ChargeRefunded(charge) = event.object else {
            panic!()
        };
        assert!(charge.refunds.is_empty());
        assert!(charge.refunded);
        assert_eq!(charge.invoice, None);
        assert_eq!(
            charge.payment_intent.as_deref(),
            Some("pi_3PexamplePayInt01")
        );
    }

    #[test]
    fn dispute_events_give_the_dispute_charge_and_amount() {
        let withdrawn = parse(&fake::dispute_funds_withdrawn(
            &fake::DisputeFunds::default(),
        ));
        let EventObject::DisputeFundsWithdrawn(dispute) = withdrawn.object else {
            panic!()
        };
        assert_eq!(dispute.id, "dp_1PexampleDispute1");
        assert_eq!(dispute.charge.as_deref(), Some("ch_3PexampleCharge01"));
        assert_eq!(dispute.amount, 100_000);
        assert_eq!(dispute.currency, "USD");
        let reinstated = parse(&fake::dispute_funds_reinstated(
            &fake::DisputeFunds::default(),
        ));
        assert!(matches!(
            reinstated.object,
            EventObject::DisputeFundsReinstated(Dispute { ref status, .. }) if status.as_deref() == Some("won")
        ));
    }

    #[test]
    fn subscription_deleted_gives_subscription_and_customer() {
        let event = parse(&fake::subscription_deleted(
            &fake::SubscriptionDeleted::default(),
        ));
        assert_eq!(
            event.object,
            EventObject::SubscriptionDeleted(Subscription {
                id: "sub_1PexampleSubscr1".into(),
                customer: Some("cus_QexampleCustomer1".into()),
                status: Some("canceled".into()),
            })
        );
    }

    #[test]
    fn invoice_payment_paid_links_the_invoice_to_its_payment_intent() {
        let body = fake::event(
            "evt_ip",
            "invoice_payment.paid",
            T,
            json!({
                "id": "inpay_1", "object": "invoice_payment", "amount_paid": 500,
                "currency": "usd", "invoice": "in_9", "is_default": true,
                "payment": {"payment_intent": "pi_9", "type": "payment_intent"},
                "status": "paid"
            }),
        );
        assert_eq!(
            parse(&body).object,
            EventObject::InvoicePaymentPaid(InvoicePayment {
                id: "inpay_1".into(),
                invoice: "in_9".into(),
                charge: None,
                payment_intent: Some("pi_9".into()),
                amount_paid: Some(500),
                currency: "USD".into(),
            })
        );
    }

    #[test]
    fn expanded_references_give_their_id() {
        let body = fake::event(
            "evt_x",
            "customer.subscription.deleted",
            T,
            json!({"id": "sub_1", "customer": {"id": "cus_9", "object": "customer"}, "extra": [1, 2]}),
        );
        let EventObject::SubscriptionDeleted(subscription) = parse(&body).object else {
            panic!()
        };
        assert_eq!(subscription.customer.as_deref(), Some("cus_9"));
    }

    #[test]
    fn other_event_types_are_ignored_but_keep_their_id() {
        let event = parse(&fake::event(
            "evt_other",
            "payment_intent.created",
            T,
            json!({"whatever": true}),
        ));
        assert_eq!(event.id, "evt_other");
        assert_eq!(event.object, EventObject::Ignored);
    }

    #[test]
    fn bodies_without_the_envelope_or_the_needed_fields_are_errors() {
        assert!(matches!(
            parse_event(b"not json"),
            Err(EventError::Envelope(_))
        ));
        assert!(matches!(
            parse_event(br#"{"type": "invoice.paid", "created": 1}"#),
            Err(EventError::Envelope(_))
        ));
        let body = fake::event(
            "evt_1",
            "invoice.paid",
            T,
            json!({"id": "in_1", "currency": "usd"}),
        );
        let error = parse_event(body.as_bytes()).unwrap_err();
        assert!(error.to_string().contains("amount_paid"), "{error}");
    }
}
