//! Stripe, as tests need it: signing a body the way Stripe does, and event
//! bodies shaped like Stripe's real ones.
//!
//! The events are the full objects Stripe sends (pretty-printed, as Stripe's
//! deliveries are, about 1–4 KB each), not just the fields partnerd reads, so
//! that parsing is tested against the noise of a real payload and benchmarks
//! move realistic bytes. They follow API version `2024-06-20`; the invoice can
//! also take the `2025-03-31.basil` shape ([`InvoicePaid::basil`]).
//!
//! ```
//! use partnerd_testkit::stripe::{self, InvoicePaid};
//!
//! let body = stripe::invoice_paid(&InvoicePaid {
//!     invoice: "in_1",
//!     customer: "cus_1",
//!     amount_paid: 100_000,
//!     ..InvoicePaid::default()
//! });
//! let header = stripe::sign("whsec_test", 1_700_000_000, body.as_bytes());
//! assert!(header.starts_with("t=1700000000,v1="));
//! ```

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// The API version the bodies claim.
pub const API_VERSION: &str = "2024-06-20";

/// The hex HMAC-SHA256 of `"{timestamp}.{body}"` under `secret`: one `v1` value.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The `Stripe-Signature` header Stripe sends for `body` signed with `secret`
/// at `timestamp` (Unix seconds): `t=…,v1=…`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    sign_with_all(&[secret], timestamp, body)
}

/// The header during a secret rotation: one `v1` per secret, in order.
pub fn sign_with_all(secrets: &[&str], timestamp: i64, body: &[u8]) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&signature(secret, timestamp, body));
    }
    header
}

/// An event envelope around `object`, as Stripe delivers it.
pub fn event(id: &str, event_type: &str, created: i64, object: Value) -> String {
    event_with_previous(id, event_type, created, object, None)
}

fn event_with_previous(
    id: &str,
    event_type: &str,
    created: i64,
    object: Value,
    previous_attributes: Option<Value>,
) -> String {
    let mut data = json!({ "object": object });
    if let Some(previous) = previous_attributes {
        data["previous_attributes"] = previous;
    }
    let event = json!({
        "id": id,
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": data,
        "livemode": false,
        "pending_webhooks": 1,
        "request": {
            "id": format!("req_{}", suffix(id)),
            "idempotency_key": format!("{}-idem", suffix(id)),
        },
        "type": event_type,
    });
    serde_json::to_string_pretty(&event).expect("JSON values always serialise")
}

/// The part after `xx_`, to derive related ids that look like Stripe's.
fn suffix(id: &str) -> &str {
    id.split_once('_').map_or(id, |(_, rest)| rest)
}

/// A `checkout.session.completed` event.
#[derive(Debug, Clone)]
pub struct CheckoutSessionCompleted<'a> {
    pub event_id: &'a str,
    pub created: i64,
    pub session: &'a str,
    pub customer: &'a str,
    pub client_reference_id: Option<&'a str>,
    pub email: &'a str,
    pub metadata: &'a [(&'a str, &'a str)],
    pub subscription: Option<&'a str>,
    pub amount_total: i64,
    /// Lower case, as Stripe sends it.
    pub currency: &'a str,
}

impl Default for CheckoutSessionCompleted<'_> {
    fn default() -> Self {
        Self {
            event_id: "evt_1PcheckoutSessionCmp",
            created: 1_700_000_000,
            session: "cs_test_a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ",
            customer: "cus_QexampleCustomer1",
            client_reference_id: None,
            email: "jenny.rosen@example.com",
            metadata: &[],
            subscription: Some("sub_1PexampleSubscr1"),
            amount_total: 100_000,
            currency: "usd",
        }
    }
}

pub fn checkout_session_completed(e: &CheckoutSessionCompleted<'_>) -> String {
    let object = json!({
        "id": e.session,
        "object": "checkout.session",
        "adaptive_pricing": { "enabled": false },
        "after_expiration": null,
        "allow_promotion_codes": false,
        "amount_subtotal": e.amount_total,
        "amount_total": e.amount_total,
        "automatic_tax": { "enabled": false, "liability": null, "status": null },
        "billing_address_collection": "auto",
        "cancel_url": "https://vendor.example.com/pricing",
        "client_reference_id": e.client_reference_id,
        "client_secret": null,
        "consent": null,
        "consent_collection": null,
        "created": e.created - 40,
        "currency": e.currency,
        "currency_conversion": null,
        "custom_fields": [],
        "custom_text": {
            "after_submit": null,
            "shipping_address": null,
            "submit": null,
            "terms_of_service_acceptance": null
        },
        "customer": e.customer,
        "customer_creation": "always",
        "customer_details": {
            "address": {
                "city": "Berlin",
                "country": "DE",
                "line1": "Friedrichstraße 123",
                "line2": null,
                "postal_code": "10117",
                "state": null
            },
            "email": e.email,
            "name": "Jenny Rosen",
            "phone": null,
            "tax_exempt": "none",
            "tax_ids": []
        },
        "customer_email": null,
        "expires_at": e.created + 86_360,
        "invoice": "in_1PexampleFirstInv",
        "invoice_creation": null,
        "livemode": false,
        "locale": "auto",
        "metadata": metadata(e.metadata),
        "mode": if e.subscription.is_some() { "subscription" } else { "payment" },
        "payment_intent": null,
        "payment_link": null,
        "payment_method_collection": "always",
        "payment_method_configuration_details": {
            "id": "pmc_1PexamplePmConfig",
            "parent": null
        },
        "payment_method_options": { "card": { "request_three_d_secure": "automatic" } },
        "payment_method_types": ["card", "link"],
        "payment_status": "paid",
        "phone_number_collection": { "enabled": false },
        "recovered_from": null,
        "saved_payment_method_options": {
            "allow_redisplay_filters": ["always"],
            "payment_method_remove": null,
            "payment_method_save": null
        },
        "setup_intent": null,
        "shipping_address_collection": null,
        "shipping_cost": null,
        "shipping_details": null,
        "shipping_options": [],
        "status": "complete",
        "submit_type": null,
        "subscription": e.subscription,
        "success_url": "https://vendor.example.com/welcome?session_id={CHECKOUT_SESSION_ID}",
        "total_details": { "amount_discount": 0, "amount_shipping": 0, "amount_tax": 0 },
        "ui_mode": "hosted",
        "url": null
    });
    event(e.event_id, "checkout.session.completed", e.created, object)
}

/// A `customer.created` event.
#[derive(Debug, Clone)]
pub struct CustomerCreated<'a> {
    pub event_id: &'a str,
    pub created: i64,
    pub customer: &'a str,
    pub email: &'a str,
    pub metadata: &'a [(&'a str, &'a str)],
}

impl Default for CustomerCreated<'_> {
    fn default() -> Self {
        Self {
            event_id: "evt_1PcustomerCreated01",
            created: 1_700_000_000,
            customer: "cus_QexampleCustomer1",
            email: "jenny.rosen@example.com",
            metadata: &[],
        }
    }
}

pub fn customer_created(e: &CustomerCreated<'_>) -> String {
    let object = json!({
        "id": e.customer,
        "object": "customer",
        "address": {
            "city": "Berlin",
            "country": "DE",
            "line1": "Friedrichstraße 123",
            "line2": null,
            "postal_code": "10117",
            "state": null
        },
        "balance": 0,
        "created": e.created,
        "currency": null,
        "default_source": null,
        "delinquent": false,
        "description": null,
        "discount": null,
        "email": e.email,
        "invoice_prefix": "A1B2C3D4",
        "invoice_settings": {
            "custom_fields": null,
            "default_payment_method": null,
            "footer": null,
            "rendering_options": null
        },
        "livemode": false,
        "metadata": metadata(e.metadata),
        "name": "Jenny Rosen",
        "next_invoice_sequence": 1,
        "phone": null,
        "preferred_locales": ["de-DE"],
        "shipping": null,
        "tax_exempt": "none",
        "test_clock": null
    });
    event(e.event_id, "customer.created", e.created, object)
}

/// An `invoice.paid` event.
#[derive(Debug, Clone)]
pub struct InvoicePaid<'a> {
    pub event_id: &'a str,
    pub created: i64,
    pub invoice: &'a str,
    pub customer: &'a str,
    pub amount_paid: i64,
    /// Lower case, as Stripe sends it.
    pub currency: &'a str,
    pub subscription: Option<&'a str>,
    pub charge: &'a str,
    pub payment_intent: &'a str,
    /// `status_transitions.paid_at`; `None` leaves it null (Stripe does for
    /// invoices marked paid out of band in some versions).
    pub paid_at: Option<i64>,
    /// The `2025-03-31.basil` shape: subscription under
    /// `parent.subscription_details`, no top-level `charge` or `payment_intent`.
    pub basil: bool,
}

impl Default for InvoicePaid<'_> {
    fn default() -> Self {
        Self {
            event_id: "evt_1PinvoicePaid00001",
            created: 1_700_000_000,
            invoice: "in_1PexampleInvoice1",
            customer: "cus_QexampleCustomer1",
            amount_paid: 100_000,
            currency: "usd",
            subscription: Some("sub_1PexampleSubscr1"),
            charge: "ch_3PexampleCharge01",
            payment_intent: "pi_3PexamplePayInt01",
            paid_at: Some(1_700_000_000),
            basil: false,
        }
    }
}

pub fn invoice_paid(e: &InvoicePaid<'_>) -> String {
    let period_start = e.created - 30 * 86_400;
    let line = json!({
        "id": "il_1PexampleLine0001",
        "object": "line_item",
        "amount": e.amount_paid,
        "amount_excluding_tax": e.amount_paid,
        "currency": e.currency,
        "description": "1 × Vendor Pro (at $1,000.00 / month)",
        "discount_amounts": [],
        "discountable": true,
        "discounts": [],
        "invoice": e.invoice,
        "livemode": false,
        "metadata": {},
        "period": { "end": e.created, "start": period_start },
        "plan": {
            "id": "price_1PexamplePrice01",
            "object": "plan",
            "active": true,
            "amount": e.amount_paid,
            "amount_decimal": e.amount_paid.to_string(),
            "billing_scheme": "per_unit",
            "created": 1_690_000_000,
            "currency": e.currency,
            "interval": "month",
            "interval_count": 1,
            "livemode": false,
            "metadata": {},
            "nickname": null,
            "product": "prod_QexampleProduct",
            "usage_type": "licensed"
        },
        "proration": false,
        "quantity": 1,
        "subscription": e.subscription,
        "subscription_item": "si_QexampleSubItem1",
        "tax_amounts": [],
        "tax_rates": [],
        "type": "subscription"
    });
    let mut object = json!({
        "id": e.invoice,
        "object": "invoice",
        "account_country": "DE",
        "account_name": "Vendor GmbH",
        "account_tax_ids": null,
        "amount_due": e.amount_paid,
        "amount_paid": e.amount_paid,
        "amount_remaining": 0,
        "amount_shipping": 0,
        "application": null,
        "attempt_count": 1,
        "attempted": true,
        "auto_advance": false,
        "automatic_tax": { "enabled": false, "liability": null, "status": null },
        "billing_reason": "subscription_cycle",
        "collection_method": "charge_automatically",
        "created": e.created - 3600,
        "currency": e.currency,
        "custom_fields": null,
        "customer": e.customer,
        "customer_address": null,
        "customer_email": "jenny.rosen@example.com",
        "customer_name": "Jenny Rosen",
        "customer_phone": null,
        "customer_shipping": null,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": null,
        "default_source": null,
        "default_tax_rates": [],
        "description": null,
        "discounts": [],
        "due_date": null,
        "effective_at": e.created - 3600,
        "ending_balance": 0,
        "footer": null,
        "from_invoice": null,
        "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1PexampleAccount/test_YWNjdF8x",
        "invoice_pdf": "https://pay.stripe.com/invoice/acct_1PexampleAccount/test_YWNjdF8x/pdf",
        "issuer": { "type": "self" },
        "last_finalization_error": null,
        "latest_revision": null,
        "lines": {
            "object": "list",
            "data": [line],
            "has_more": false,
            "total_count": 1,
            "url": format!("/v1/invoices/{}/lines", e.invoice)
        },
        "livemode": false,
        "metadata": {},
        "next_payment_attempt": null,
        "number": "A1B2C3D4-0001",
        "on_behalf_of": null,
        "paid": true,
        "paid_out_of_band": false,
        "payment_settings": {
            "default_mandate": null,
            "payment_method_options": null,
            "payment_method_types": null
        },
        "period_end": e.created,
        "period_start": period_start,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": null,
        "rendering": null,
        "shipping_cost": null,
        "shipping_details": null,
        "starting_balance": 0,
        "statement_descriptor": null,
        "status": "paid",
        "status_transitions": {
            "finalized_at": e.created - 3600,
            "marked_uncollectible_at": null,
            "paid_at": e.paid_at,
            "voided_at": null
        },
        "subtotal": e.amount_paid,
        "subtotal_excluding_tax": e.amount_paid,
        "test_clock": null,
        "total": e.amount_paid,
        "total_discount_amounts": [],
        "total_excluding_tax": e.amount_paid,
        "total_tax_amounts": [],
        "transfer_data": null,
        "webhooks_delivered_at": e.created - 3600
    });
    if e.basil {
        object["parent"] = json!({
            "quote_details": null,
            "subscription_details": {
                "metadata": {},
                "subscription": e.subscription
            },
            "type": "subscription_details"
        });
        object["payments"] = json!({
            "object": "list",
            "data": [{
                "id": "inpay_1PexampleInvPay1",
                "object": "invoice_payment",
                "amount_paid": e.amount_paid,
                "amount_requested": e.amount_paid,
                "created": e.created - 3600,
                "currency": e.currency,
                "invoice": e.invoice,
                "is_default": true,
                "livemode": false,
                "payment": { "payment_intent": e.payment_intent, "type": "payment_intent" },
                "status": "paid",
                "status_transitions": { "canceled_at": null, "paid_at": e.paid_at }
            }],
            "has_more": false,
            "total_count": 1,
            "url": "/v1/invoice_payments"
        });
    } else {
        object["charge"] = json!(e.charge);
        object["payment_intent"] = json!(e.payment_intent);
        object["subscription"] = json!(e.subscription);
        object["subscription_details"] = json!({ "metadata": {} });
        object["discount"] = Value::Null;
        object["quote"] = Value::Null;
        object["tax"] = Value::Null;
    }
    event(e.event_id, "invoice.paid", e.created, object)
}

/// A `charge.refunded` event.
#[derive(Debug, Clone)]
pub struct ChargeRefunded<'a> {
    pub event_id: &'a str,
    pub created: i64,
    pub charge: &'a str,
    pub customer: &'a str,
    pub invoice: Option<&'a str>,
    pub payment_intent: &'a str,
    pub amount: i64,
    /// Cumulative, after this refund.
    pub amount_refunded: i64,
    pub currency: &'a str,
    /// `refunds.data` as (id, amount); empty leaves `refunds` out, as Stripe
    /// does since API `2022-11-15` unless expanded.
    pub refunds: &'a [(&'a str, i64)],
}

impl Default for ChargeRefunded<'_> {
    fn default() -> Self {
        Self {
            event_id: "evt_3PchargeRefunded01",
            created: 1_700_100_000,
            charge: "ch_3PexampleCharge01",
            customer: "cus_QexampleCustomer1",
            invoice: Some("in_1PexampleInvoice1"),
            payment_intent: "pi_3PexamplePayInt01",
            amount: 100_000,
            amount_refunded: 25_000,
            currency: "usd",
            refunds: &[("re_3PexampleRefund01", 25_000)],
        }
    }
}

pub fn charge_refunded(e: &ChargeRefunded<'_>) -> String {
    let mut object = json!({
        "id": e.charge,
        "object": "charge",
        "amount": e.amount,
        "amount_captured": e.amount,
        "amount_refunded": e.amount_refunded,
        "application": null,
        "application_fee": null,
        "application_fee_amount": null,
        "balance_transaction": "txn_3PexampleBalTxn01",
        "billing_details": {
            "address": {
                "city": null,
                "country": "DE",
                "line1": null,
                "line2": null,
                "postal_code": "10117",
                "state": null
            },
            "email": "jenny.rosen@example.com",
            "name": "Jenny Rosen",
            "phone": null
        },
        "calculated_statement_descriptor": "VENDOR PRO",
        "captured": true,
        "created": e.created - 86_400,
        "currency": e.currency,
        "customer": e.customer,
        "description": "Subscription update",
        "destination": null,
        "dispute": null,
        "disputed": false,
        "failure_balance_transaction": null,
        "failure_code": null,
        "failure_message": null,
        "fraud_details": {},
        "invoice": e.invoice,
        "livemode": false,
        "metadata": {},
        "on_behalf_of": null,
        "order": null,
        "outcome": {
            "network_status": "approved_by_network",
            "reason": null,
            "risk_level": "normal",
            "risk_score": 32,
            "seller_message": "Payment complete.",
            "type": "authorized"
        },
        "paid": true,
        "payment_intent": e.payment_intent,
        "payment_method": "pm_1PexamplePayMeth1",
        "payment_method_details": {
            "card": {
                "amount_authorized": e.amount,
                "brand": "visa",
                "checks": {
                    "address_line1_check": null,
                    "address_postal_code_check": "pass",
                    "cvc_check": "pass"
                },
                "country": "DE",
                "exp_month": 12,
                "exp_year": 2030,
                "extended_authorization": { "status": "disabled" },
                "fingerprint": "Xt5EWLLDS7FJjR1c",
                "funding": "credit",
                "incremental_authorization": { "status": "unavailable" },
                "installments": null,
                "last4": "4242",
                "mandate": null,
                "multicapture": { "status": "unavailable" },
                "network": "visa",
                "network_token": { "used": false },
                "overcapture": { "maximum_amount_capturable": e.amount, "status": "unavailable" },
                "three_d_secure": null,
                "wallet": null
            },
            "type": "card"
        },
        "radar_options": {},
        "receipt_email": "jenny.rosen@example.com",
        "receipt_number": null,
        "receipt_url": "https://pay.stripe.com/receipts/invoices/CAcaFwoVYWNjdF8xUGV4YW1wbGU",
        "refunded": e.amount_refunded >= e.amount,
        "review": null,
        "shipping": null,
        "source": null,
        "source_transfer": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": "succeeded",
        "transfer_data": null,
        "transfer_group": null
    });
    if !e.refunds.is_empty() {
        let data: Vec<Value> = e
            .refunds
            .iter()
            .map(|(id, amount)| {
                json!({
                    "id": id,
                    "object": "refund",
                    "amount": amount,
                    "balance_transaction": format!("txn_{}", suffix(id)),
                    "charge": e.charge,
                    "created": e.created,
                    "currency": e.currency,
                    "destination_details": { "card": { "reference_status": "pending", "type": "refund" }, "type": "card" },
                    "metadata": {},
                    "payment_intent": e.payment_intent,
                    "reason": "requested_by_customer",
                    "receipt_number": null,
                    "source_transfer_reversal": null,
                    "status": "succeeded",
                    "transfer_reversal": null
                })
            })
            .collect();
        object["refunds"] = json!({
            "object": "list",
            "data": data,
            "has_more": false,
            "total_count": e.refunds.len(),
            "url": format!("/v1/charges/{}/refunds", e.charge)
        });
    }
    let previous_amount: i64 =
        e.amount_refunded - e.refunds.last().map_or(0, |(_, amount)| *amount);
    event_with_previous(
        e.event_id,
        "charge.refunded",
        e.created,
        object,
        Some(json!({ "amount_refunded": previous_amount.max(0), "refunded": false })),
    )
}

/// A `charge.dispute.funds_withdrawn` or `charge.dispute.funds_reinstated` event.
#[derive(Debug, Clone)]
pub struct DisputeFunds<'a> {
    pub event_id: &'a str,
    pub created: i64,
    pub dispute: &'a str,
    pub charge: &'a str,
    pub payment_intent: &'a str,
    pub amount: i64,
    pub currency: &'a str,
}

impl Default for DisputeFunds<'_> {
    fn default() -> Self {
        Self {
            event_id: "evt_1PdisputeFunds0001",
            created: 1_700_200_000,
            dispute: "dp_1PexampleDispute1",
            charge: "ch_3PexampleCharge01",
            payment_intent: "pi_3PexamplePayInt01",
            amount: 100_000,
            currency: "usd",
        }
    }
}

/// `charge.dispute.funds_withdrawn`: Stripe took the disputed amount back.
pub fn dispute_funds_withdrawn(e: &DisputeFunds<'_>) -> String {
    dispute_event(e, "charge.dispute.funds_withdrawn", "needs_response", -1)
}

/// `charge.dispute.funds_reinstated`: the dispute was won, the money returns.
pub fn dispute_funds_reinstated(e: &DisputeFunds<'_>) -> String {
    dispute_event(e, "charge.dispute.funds_reinstated", "won", 1)
}

fn dispute_event(e: &DisputeFunds<'_>, event_type: &str, status: &str, sign: i64) -> String {
    let object = json!({
        "id": e.dispute,
        "object": "dispute",
        "amount": e.amount,
        "balance_transaction": format!("txn_{}", suffix(e.dispute)),
        "balance_transactions": [{
            "id": format!("txn_{}", suffix(e.dispute)),
            "object": "balance_transaction",
            "amount": sign * e.amount,
            "available_on": e.created + 2 * 86_400,
            "created": e.created,
            "currency": e.currency,
            "description": "Chargeback withdrawal for ch_3PexampleCharge01",
            "exchange_rate": null,
            "fee": if sign < 0 { 1500 } else { 0 },
            "fee_details": [{
                "amount": if sign < 0 { 1500 } else { 0 },
                "application": null,
                "currency": e.currency,
                "description": "Dispute fee",
                "type": "stripe_fee"
            }],
            "net": sign * e.amount - if sign < 0 { 1500 } else { 0 },
            "reporting_category": if sign < 0 { "dispute" } else { "dispute_reversal" },
            "source": e.dispute,
            "status": "pending",
            "type": "adjustment"
        }],
        "charge": e.charge,
        "created": e.created - 3600,
        "currency": e.currency,
        "evidence": {
            "access_activity_log": null,
            "billing_address": null,
            "cancellation_policy": null,
            "cancellation_policy_disclosure": null,
            "cancellation_rebuttal": null,
            "customer_communication": null,
            "customer_email_address": null,
            "customer_name": null,
            "customer_purchase_ip": null,
            "customer_signature": null,
            "duplicate_charge_documentation": null,
            "duplicate_charge_explanation": null,
            "duplicate_charge_id": null,
            "product_description": null,
            "receipt": null,
            "refund_policy": null,
            "refund_policy_disclosure": null,
            "refund_refusal_explanation": null,
            "service_date": null,
            "service_documentation": null,
            "shipping_address": null,
            "shipping_carrier": null,
            "shipping_date": null,
            "shipping_documentation": null,
            "shipping_tracking_number": null,
            "uncategorized_file": null,
            "uncategorized_text": null
        },
        "evidence_details": {
            "due_by": e.created + 7 * 86_400,
            "has_evidence": false,
            "past_due": false,
            "submission_count": 0
        },
        "is_charge_refundable": false,
        "livemode": false,
        "metadata": {},
        "payment_intent": e.payment_intent,
        "payment_method_details": {
            "card": { "brand": "visa", "case_type": "chargeback", "network_reason_code": "10.4" },
            "type": "card"
        },
        "reason": "fraudulent",
        "status": status
    });
    event(e.event_id, event_type, e.created, object)
}

/// A `customer.subscription.deleted` event.
#[derive(Debug, Clone)]
pub struct SubscriptionDeleted<'a> {
    pub event_id: &'a str,
    pub created: i64,
    pub subscription: &'a str,
    pub customer: &'a str,
}

impl Default for SubscriptionDeleted<'_> {
    fn default() -> Self {
        Self {
            event_id: "evt_1PsubDeleted000001",
            created: 1_700_300_000,
            subscription: "sub_1PexampleSubscr1",
            customer: "cus_QexampleCustomer1",
        }
    }
}

pub fn subscription_deleted(e: &SubscriptionDeleted<'_>) -> String {
    let price = json!({
        "id": "price_1PexamplePrice01",
        "object": "price",
        "active": true,
        "billing_scheme": "per_unit",
        "created": 1_690_000_000,
        "currency": "usd",
        "custom_unit_amount": null,
        "livemode": false,
        "lookup_key": null,
        "metadata": {},
        "nickname": null,
        "product": "prod_QexampleProduct",
        "recurring": {
            "aggregate_usage": null,
            "interval": "month",
            "interval_count": 1,
            "trial_period_days": null,
            "usage_type": "licensed"
        },
        "tax_behavior": "unspecified",
        "tiers_mode": null,
        "transform_quantity": null,
        "type": "recurring",
        "unit_amount": 100_000,
        "unit_amount_decimal": "100000"
    });
    let object = json!({
        "id": e.subscription,
        "object": "subscription",
        "application": null,
        "application_fee_percent": null,
        "automatic_tax": { "enabled": false, "liability": null },
        "billing_cycle_anchor": e.created - 90 * 86_400,
        "billing_cycle_anchor_config": null,
        "billing_thresholds": null,
        "cancel_at": null,
        "cancel_at_period_end": false,
        "canceled_at": e.created,
        "cancellation_details": {
            "comment": null,
            "feedback": "too_expensive",
            "reason": "cancellation_requested"
        },
        "collection_method": "charge_automatically",
        "created": e.created - 90 * 86_400,
        "currency": "usd",
        "current_period_end": e.created + 10 * 86_400,
        "current_period_start": e.created - 20 * 86_400,
        "customer": e.customer,
        "days_until_due": null,
        "default_payment_method": "pm_1PexamplePayMeth1",
        "default_source": null,
        "default_tax_rates": [],
        "description": null,
        "discount": null,
        "discounts": [],
        "ended_at": e.created,
        "invoice_settings": { "account_tax_ids": null, "issuer": { "type": "self" } },
        "items": {
            "object": "list",
            "data": [{
                "id": "si_QexampleSubItem1",
                "object": "subscription_item",
                "billing_thresholds": null,
                "created": e.created - 90 * 86_400,
                "discounts": [],
                "metadata": {},
                "plan": {
                    "id": "price_1PexamplePrice01",
                    "object": "plan",
                    "active": true,
                    "amount": 100_000,
                    "amount_decimal": "100000",
                    "billing_scheme": "per_unit",
                    "currency": "usd",
                    "interval": "month",
                    "interval_count": 1,
                    "product": "prod_QexampleProduct",
                    "usage_type": "licensed"
                },
                "price": price,
                "quantity": 1,
                "subscription": e.subscription,
                "tax_rates": []
            }],
            "has_more": false,
            "total_count": 1,
            "url": format!("/v1/subscription_items?subscription={}", e.subscription)
        },
        "latest_invoice": "in_1PexampleInvoice1",
        "livemode": false,
        "metadata": {},
        "next_pending_invoice_item_invoice": null,
        "on_behalf_of": null,
        "pause_collection": null,
        "payment_settings": {
            "payment_method_options": null,
            "payment_method_types": null,
            "save_default_payment_method": "off"
        },
        "pending_invoice_item_interval": null,
        "pending_setup_intent": null,
        "pending_update": null,
        "schedule": null,
        "start_date": e.created - 90 * 86_400,
        "status": "canceled",
        "test_clock": null,
        "transfer_data": null,
        "trial_end": null,
        "trial_settings": { "end_behavior": { "missing_payment_method": "create_invoice" } },
        "trial_start": null
    });
    event(
        e.event_id,
        "customer.subscription.deleted",
        e.created,
        object,
    )
}

fn metadata(pairs: &[(&str, &str)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), Value::String((*value).to_owned())))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_stripes_documented_construction() {
        // HMAC-SHA256("whsec_test", "1.{}"), computed independently.
        let expected = {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec_test").unwrap();
            mac.update(b"1.{}");
            hex::encode(mac.finalize().into_bytes())
        };
        assert_eq!(sign("whsec_test", 1, b"{}"), format!("t=1,v1={expected}"));
    }

    #[test]
    fn a_rotation_header_carries_one_v1_per_secret() {
        let header = sign_with_all(&["a", "b"], 5, b"x");
        assert_eq!(header.matches(",v1=").count(), 2);
    }

    #[test]
    fn every_event_is_valid_json_of_realistic_size() {
        let bodies = [
            checkout_session_completed(&CheckoutSessionCompleted::default()),
            customer_created(&CustomerCreated::default()),
            invoice_paid(&InvoicePaid::default()),
            invoice_paid(&InvoicePaid {
                basil: true,
                ..InvoicePaid::default()
            }),
            charge_refunded(&ChargeRefunded::default()),
            dispute_funds_withdrawn(&DisputeFunds::default()),
            dispute_funds_reinstated(&DisputeFunds::default()),
            subscription_deleted(&SubscriptionDeleted::default()),
        ];
        for body in bodies {
            let value: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(value["object"], "event");
            assert!(
                (1_000..8_000).contains(&body.len()),
                "{} is {} bytes",
                value["type"],
                body.len()
            );
        }
    }
}
