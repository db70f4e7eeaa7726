//! A stand-in for PayPal's Payouts API: a real HTTP server on `127.0.0.1:0`
//! that answers the way PayPal does, with faults and outcomes the test scripts.
//!
//! It implements what partnerd uses:
//!
//! - `POST /v1/oauth2/token`: client credentials over HTTP Basic; issues
//!   tokens that expire after [`PayPalStandIn::set_token_ttl`] (9 hours by
//!   default, like PayPal's); [`PayPalStandIn::expire_tokens`] revokes all.
//!   API calls with a missing, unknown or expired token get PayPal's `401`.
//! - `POST /v1/payments/payouts`: validates the batch like PayPal (amount
//!   decimals per currency, receiver, items) and creates it `PENDING`. A
//!   `sender_batch_id` seen before gets PayPal's documented answer: `400
//!   USER_BUSINESS_ERROR`, detail "Batch with given sender_batch_id already
//!   exists", linking the original batch. Nothing is paid twice.
//! - `GET /v1/payments/payouts/{id}` and `GET /v1/payments/payouts-item/{id}`:
//!   the batch with its items, one item. Items *settle* (take their scripted
//!   outcome) on the first poll after creation, or when the test calls
//!   [`PayPalStandIn::settle`] if [`PayPalStandIn::set_auto_settle`] is off.
//! - `POST /v1/notifications/verify-webhook-signature`: `SUCCESS` for a
//!   delivery this stand-in sent unchanged ([`PayPalStandIn::item_webhook`]),
//!   `FAILURE` otherwise, unless the test forces either answer.
//!
//! **Faults** ([`PayPalStandIn::fail_next`]): the next N calls to an endpoint
//! hang past the client's timeout without being applied, answer `500` without
//! being applied, or *are applied* and then answer `500` or hang (the create
//! succeeded, the answer was lost: the case that tempts a client to pay twice).
//!
//! **Outcomes** ([`PayPalStandIn::set_outcome`], per receiver address):
//! SUCCESS, FAILED, UNCLAIMED, UNCLAIMED then RETURNED once the test calls
//! [`PayPalStandIn::expire_unclaimed`] (PayPal returns unclaimed money after
//! 30 days), RETURNED, BLOCKED, REFUNDED, REVERSED, ONHOLD, or PENDING forever.
//! [`PayPalStandIn::set_item_status`] moves an item later (SUCCESS → REVERSED).
//!
//! **Counters** ([`PayPalStandIn::counters`]) say what really happened: batches
//! created, duplicates refused, items paid, tokens issued, calls per endpoint.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use partnerd_testkit::paypal::{Endpoint, Fault, ItemOutcome, PayPalStandIn};
//!
//! let paypal = PayPalStandIn::start().await?;
//! paypal.set_outcome("partner@example.com", ItemOutcome::Unclaimed);
//! paypal.fail_next(Endpoint::CreateBatch, 1, Fault::AppliedThenHang);
//! // Point the client at paypal.base_url() with paypal.client_id() / client_secret(),
//! // create, time out, retry with the same sender_batch_id, then:
//! assert_eq!(paypal.counters().batches_created, 1);
//! # Ok(())
//! # }
//! ```

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::Rng as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The credentials the stand-in accepts.
pub const CLIENT_ID: &str = "partnerd-test-client";
pub const CLIENT_SECRET: &str = "partnerd-test-secret";

/// What the stand-in's timestamps say. Fixed: nothing depends on them, and a
/// test kit must not read the wall clock either.
const TIME: &str = "2024-03-01T10:00:00Z";

/// The endpoints a fault can be aimed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Token,
    CreateBatch,
    GetBatch,
    GetItem,
    VerifyWebhook,
}

/// What goes wrong with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Not applied; no answer until [`PayPalStandIn::set_hang`] has passed
    /// (5 s by default), longer than a test client's timeout.
    Hang,
    /// Not applied; `500 INTERNAL_SERVER_ERROR`.
    ServerError,
    /// Applied (a create creates the batch), then answered `500`.
    AppliedThenServerError,
    /// Applied, then the answer waits past the client's timeout.
    AppliedThenHang,
}

/// How an item ends, scripted per receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemOutcome {
    Success,
    /// `FAILED` with `RECEIVER_ACCOUNT_INVALID`.
    Failed,
    /// `UNCLAIMED` for good.
    Unclaimed,
    /// `UNCLAIMED`, then `RETURNED` at [`PayPalStandIn::expire_unclaimed`].
    UnclaimedThenReturned,
    Returned,
    Blocked,
    Refunded,
    Reversed,
    OnHold,
    /// Stays `PENDING`.
    Pending,
}

impl ItemOutcome {
    fn status(self) -> &'static str {
        match self {
            Self::Success => "SUCCESS",
            Self::Failed => "FAILED",
            Self::Unclaimed | Self::UnclaimedThenReturned => "UNCLAIMED",
            Self::Returned => "RETURNED",
            Self::Blocked => "BLOCKED",
            Self::Refunded => "REFUNDED",
            Self::Reversed => "REVERSED",
            Self::OnHold => "ONHOLD",
            Self::Pending => "PENDING",
        }
    }

    fn error(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::Failed => Some(("RECEIVER_ACCOUNT_INVALID", "Receiver's account is invalid.")),
            Self::Unclaimed | Self::UnclaimedThenReturned | Self::Returned => Some((
                "RECEIVER_UNREGISTERED",
                "Receiver is unregistered. Sending email to the unregistered receiver.",
            )),
            _ => None,
        }
    }
}

/// How `verify-webhook-signature` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookVerification {
    /// `SUCCESS` only for a delivery this stand-in made, forwarded unchanged.
    Genuine,
    AlwaysSuccess,
    AlwaysFailure,
}

/// What happened so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub token_requests: usize,
    pub tokens_issued: usize,
    /// `401`s answered on API calls (expired, revoked or missing tokens).
    pub unauthorized: usize,
    pub create_calls: usize,
    /// Batches that exist: the money PayPal would move.
    pub batches_created: usize,
    /// Creates refused because the `sender_batch_id` was used before.
    pub duplicates_refused: usize,
    pub items_created: usize,
    /// Items whose status is now `SUCCESS`.
    pub items_paid: usize,
    pub get_batch_calls: usize,
    pub get_item_calls: usize,
    pub verify_calls: usize,
    /// Faults injected so far.
    pub faults: usize,
}

/// A batch as the stand-in holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSnapshot {
    pub payout_batch_id: String,
    pub sender_batch_id: Option<String>,
    pub batch_status: String,
    pub items: Vec<ItemSnapshot>,
}

/// An item as the stand-in holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemSnapshot {
    pub payout_item_id: String,
    pub sender_item_id: Option<String>,
    pub receiver: String,
    /// PayPal's decimal string, as sent.
    pub value: String,
    pub currency: String,
    pub status: String,
}

/// A webhook delivery as PayPal would make it.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// `PAYPAL-AUTH-ALGO`, `PAYPAL-CERT-URL`, `PAYPAL-TRANSMISSION-ID`,
    /// `PAYPAL-TRANSMISSION-SIG`, `PAYPAL-TRANSMISSION-TIME`.
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// The running stand-in. Dropping it stops the server.
pub struct PayPalStandIn {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for PayPalStandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayPalStandIn")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for PayPalStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Shared {
    base_url: String,
    state: Mutex<StandInState>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, StandInState> {
        // A test that panicked while holding the lock already failed; the state
        // is still good for reporting.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct StandInState {
    token_ttl: Duration,
    tokens: HashMap<String, Instant>,
    faults: HashMap<Endpoint, VecDeque<Fault>>,
    hang: Duration,
    auto_settle: bool,
    default_outcome: ItemOutcome,
    outcomes: HashMap<String, ItemOutcome>,
    batches: Vec<Batch>,
    batch_by_sender: HashMap<String, usize>,
    verification: WebhookVerification,
    sent_webhooks: HashMap<String, SentWebhook>,
    counters: Counters,
}

struct Batch {
    payout_batch_id: String,
    sender_batch_id: Option<String>,
    email_subject: Option<String>,
    status: &'static str,
    settled: bool,
    items: Vec<Item>,
}

struct Item {
    payout_item_id: String,
    transaction_id: Option<String>,
    status: String,
    outcome: ItemOutcome,
    receiver: String,
    value: String,
    currency: String,
    sender_item_id: Option<String>,
    note: Option<String>,
}

struct SentWebhook {
    webhook_id: String,
    auth_algo: String,
    cert_url: String,
    transmission_sig: String,
    transmission_time: String,
    event: Value,
}

impl PayPalStandIn {
    /// Starts the stand-in on a fresh port of `127.0.0.1`.
    pub async fn start() -> io::Result<Self> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            base_url: format!("http://{addr}"),
            state: Mutex::new(StandInState {
                token_ttl: Duration::from_secs(32_400),
                tokens: HashMap::new(),
                faults: HashMap::new(),
                hang: Duration::from_secs(5),
                auto_settle: true,
                default_outcome: ItemOutcome::Success,
                outcomes: HashMap::new(),
                batches: Vec::new(),
                batch_by_sender: HashMap::new(),
                verification: WebhookVerification::Genuine,
                sent_webhooks: HashMap::new(),
                counters: Counters::default(),
            }),
        });
        let app = Router::new()
            .route("/v1/oauth2/token", post(token))
            .route("/v1/payments/payouts", post(create_batch))
            .route("/v1/payments/payouts/{id}", get(get_batch))
            .route("/v1/payments/payouts-item/{id}", get(get_item))
            .route(
                "/v1/notifications/verify-webhook-signature",
                post(verify_webhook),
            )
            .fallback(not_found)
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            shared,
            server,
        })
    }

    /// `http://127.0.0.1:{port}`, the client's base URL.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    pub fn client_id(&self) -> &'static str {
        CLIENT_ID
    }

    pub fn client_secret(&self) -> &'static str {
        CLIENT_SECRET
    }

    /// Lifetime of tokens issued from now on (`expires_in`, whole seconds, at least 1).
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.shared.lock().token_ttl = ttl.max(Duration::from_secs(1));
    }

    /// Revokes every token issued so far: the next API call gets `401`.
    pub fn expire_tokens(&self) {
        self.shared.lock().tokens.clear();
    }

    /// The next `count` calls to `endpoint` suffer `fault` (after any queued before).
    pub fn fail_next(&self, endpoint: Endpoint, count: usize, fault: Fault) {
        let mut state = self.shared.lock();
        let queue = state.faults.entry(endpoint).or_default();
        queue.extend(std::iter::repeat_n(fault, count));
    }

    /// How long [`Fault::Hang`] and [`Fault::AppliedThenHang`] hold the answer.
    pub fn set_hang(&self, duration: Duration) {
        self.shared.lock().hang = duration;
    }

    /// Items paid to `receiver` from now on end as `outcome`.
    pub fn set_outcome(&self, receiver: &str, outcome: ItemOutcome) {
        self.shared
            .lock()
            .outcomes
            .insert(receiver.to_ascii_lowercase(), outcome);
    }

    /// The outcome of receivers without their own (SUCCESS by default).
    pub fn set_default_outcome(&self, outcome: ItemOutcome) {
        self.shared.lock().default_outcome = outcome;
    }

    /// With auto-settle off, items stay `PENDING` until [`PayPalStandIn::settle`].
    pub fn set_auto_settle(&self, auto_settle: bool) {
        self.shared.lock().auto_settle = auto_settle;
    }

    /// Settles every batch now: each item takes its scripted outcome.
    pub fn settle(&self) {
        let mut state = self.shared.lock();
        for index in 0..state.batches.len() {
            state.settle(index);
        }
    }

    /// Sets an item's status, as PayPal does later in an item's life
    /// (`SUCCESS` → `REFUNDED` / `REVERSED`, `ONHOLD` → `SUCCESS`). Returns
    /// whether the item exists.
    pub fn set_item_status(&self, payout_item_id: &str, status: &str) -> bool {
        let mut state = self.shared.lock();
        let Some(item) = state.item_mut(payout_item_id) else {
            return false;
        };
        item.status = status.to_owned();
        if status == "SUCCESS" && item.transaction_id.is_none() {
            item.transaction_id = Some(random_id(17));
        }
        state.refresh_batch_statuses();
        true
    }

    /// Thirty days pass: every item scripted [`ItemOutcome::UnclaimedThenReturned`]
    /// that is still `UNCLAIMED` becomes `RETURNED`.
    pub fn expire_unclaimed(&self) {
        let mut state = self.shared.lock();
        for batch in &mut state.batches {
            for item in &mut batch.items {
                if item.outcome == ItemOutcome::UnclaimedThenReturned && item.status == "UNCLAIMED"
                {
                    item.status = "RETURNED".to_owned();
                }
            }
        }
    }

    /// How `verify-webhook-signature` answers from now on.
    pub fn set_webhook_verification(&self, verification: WebhookVerification) {
        self.shared.lock().verification = verification;
    }

    pub fn counters(&self) -> Counters {
        let state = self.shared.lock();
        let mut counters = state.counters.clone();
        counters.items_paid = state
            .batches
            .iter()
            .flat_map(|batch| &batch.items)
            .filter(|item| item.status == "SUCCESS")
            .count();
        counters
    }

    /// Every batch created, oldest first.
    pub fn batches(&self) -> Vec<BatchSnapshot> {
        let state = self.shared.lock();
        state
            .batches
            .iter()
            .map(|batch| BatchSnapshot {
                payout_batch_id: batch.payout_batch_id.clone(),
                sender_batch_id: batch.sender_batch_id.clone(),
                batch_status: batch.status.to_owned(),
                items: batch
                    .items
                    .iter()
                    .map(|item| ItemSnapshot {
                        payout_item_id: item.payout_item_id.clone(),
                        sender_item_id: item.sender_item_id.clone(),
                        receiver: item.receiver.clone(),
                        value: item.value.clone(),
                        currency: item.currency.clone(),
                        status: item.status.clone(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// The `PAYMENT.PAYOUTS-ITEM.*` delivery PayPal would make now for the
    /// item, for the webhook `webhook_id`. The event type follows the item's
    /// status (SUCCESS → `SUCCEEDED`, ONHOLD → `HELD`, others by name).
    pub fn item_webhook(&self, payout_item_id: &str, webhook_id: &str) -> Option<Webhook> {
        let mut state = self.shared.lock();
        let (batch, item) = state.find_item(payout_item_id)?;
        let mut resource = item_json(&self.shared.base_url, batch, item);
        resource["sender_batch_id"] = json!(batch.sender_batch_id);
        let event_type = match item.status.as_str() {
            "SUCCESS" => "SUCCEEDED",
            "ONHOLD" => "HELD",
            other => other,
        };
        let event_id = format!("WH-{}-{}", random_id(17), random_id(17));
        let event = json!({
            "id": event_id,
            "event_version": "1.0",
            "create_time": TIME,
            "resource_type": "payouts_item",
            "event_type": format!("PAYMENT.PAYOUTS-ITEM.{event_type}"),
            "summary": format!("A payout item is {}", item.status.to_ascii_lowercase()),
            "resource": resource,
            "links": [
                {
                    "href": format!("{}/v1/notifications/webhooks-events/{event_id}", self.shared.base_url),
                    "rel": "self",
                    "method": "GET"
                },
                {
                    "href": format!("{}/v1/notifications/webhooks-events/{event_id}/resend", self.shared.base_url),
                    "rel": "resend",
                    "method": "POST"
                }
            ]
        });
        let body = serde_json::to_string(&event).expect("JSON values always serialise");
        let transmission_id = format!(
            "{}-{}-{}",
            random_id(8).to_ascii_lowercase(),
            random_id(4).to_ascii_lowercase(),
            random_id(12).to_ascii_lowercase()
        );
        let cert_url = format!(
            "{}/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77",
            self.shared.base_url
        );
        let transmission_sig = transmission_signature(&transmission_id, webhook_id, &body);
        state.sent_webhooks.insert(
            transmission_id.clone(),
            SentWebhook {
                webhook_id: webhook_id.to_owned(),
                auth_algo: "SHA256withRSA".to_owned(),
                cert_url: cert_url.clone(),
                transmission_sig: transmission_sig.clone(),
                transmission_time: TIME.to_owned(),
                event,
            },
        );
        Some(Webhook {
            headers: vec![
                ("PAYPAL-AUTH-ALGO", "SHA256withRSA".to_owned()),
                ("PAYPAL-CERT-URL", cert_url),
                ("PAYPAL-TRANSMISSION-ID", transmission_id),
                ("PAYPAL-TRANSMISSION-SIG", transmission_sig),
                ("PAYPAL-TRANSMISSION-TIME", TIME.to_owned()),
            ],
            body,
        })
    }

    /// Posts [`PayPalStandIn::item_webhook`] to `url`, as PayPal would;
    /// returns the receiver's status code.
    pub async fn send_item_webhook(
        &self,
        url: &str,
        payout_item_id: &str,
        webhook_id: &str,
    ) -> Result<u16, String> {
        let webhook = self
            .item_webhook(payout_item_id, webhook_id)
            .ok_or_else(|| format!("no payout item {payout_item_id}"))?;
        webhook.send(url).await
    }
}

impl Webhook {
    /// Posts this delivery to `url`; returns the receiver's status code.
    pub async fn send(&self, url: &str) -> Result<u16, String> {
        let client = reqwest::Client::new();
        let mut request = client
            .post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(self.body.clone());
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        Ok(response.status().as_u16())
    }
}

/// The stand-in's stand-in for PayPal's RSA signature over
/// `transmission_id|time|webhook_id|crc32(body)`: an HMAC over the same
/// parts (SHA-256 instead of CRC32), under a key only the stand-in knows.
fn transmission_signature(transmission_id: &str, webhook_id: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(b"partnerd-paypal-stand-in")
        .expect("HMAC takes keys of any length");
    mac.update(
        format!(
            "{transmission_id}|{TIME}|{webhook_id}|{}",
            hex::encode(Sha256::digest(body.as_bytes()))
        )
        .as_bytes(),
    );
    STANDARD.encode(mac.finalize().into_bytes())
}

/// PayPal-looking ids: upper-case letters and digits.
fn random_id(length: usize) -> String {
    const CHARSET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    (0..length)
        .map(|_| CHARSET[rng.gen_range(0..CHARSET.len())] as char)
        .collect()
}

impl StandInState {
    fn take_fault(&mut self, endpoint: Endpoint) -> Option<Fault> {
        let fault = self.faults.get_mut(&endpoint)?.pop_front();
        if fault.is_some() {
            self.counters.faults += 1;
        }
        fault
    }

    fn token_is_valid(&mut self, headers: &HeaderMap) -> bool {
        let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
        else {
            return false;
        };
        self.tokens
            .get(token)
            .is_some_and(|expires| Instant::now() < *expires)
    }

    fn find_item(&self, payout_item_id: &str) -> Option<(&Batch, &Item)> {
        self.batches.iter().find_map(|batch| {
            batch
                .items
                .iter()
                .find(|item| item.payout_item_id == payout_item_id)
                .map(|item| (batch, item))
        })
    }

    fn item_mut(&mut self, payout_item_id: &str) -> Option<&mut Item> {
        self.batches
            .iter_mut()
            .flat_map(|batch| batch.items.iter_mut())
            .find(|item| item.payout_item_id == payout_item_id)
    }

    fn settle(&mut self, index: usize) {
        let batch = &mut self.batches[index];
        if batch.settled {
            return;
        }
        batch.settled = true;
        for item in &mut batch.items {
            item.status = item.outcome.status().to_owned();
            if item.outcome != ItemOutcome::Failed && item.outcome != ItemOutcome::Pending {
                item.transaction_id = Some(random_id(17));
            }
        }
        self.refresh_batch_statuses();
    }

    /// A settled batch is `DENIED` when every item failed, `PROCESSING` while
    /// an item is pending, `SUCCESS` otherwise (also with unclaimed or
    /// returned items: the batch was processed).
    fn refresh_batch_statuses(&mut self) {
        for batch in self.batches.iter_mut().filter(|batch| batch.settled) {
            batch.status = if batch.items.iter().all(|item| item.status == "FAILED") {
                "DENIED"
            } else if batch.items.iter().any(|item| item.status == "PENDING") {
                "PROCESSING"
            } else {
                "SUCCESS"
            };
        }
    }
}

/// PayPal's decimals per currency; `None` for currencies Payouts does not pay in.
fn paypal_decimals(currency: &str) -> Option<usize> {
    match currency {
        "JPY" | "HUF" | "TWD" => Some(0),
        "AUD" | "BRL" | "CAD" | "CNY" | "CZK" | "DKK" | "EUR" | "HKD" | "ILS" | "MYR" | "MXN"
        | "NZD" | "NOK" | "PHP" | "PLN" | "GBP" | "RUB" | "SGD" | "SEK" | "CHF" | "THB" | "USD" => {
            Some(2)
        }
        _ => None,
    }
}

/// `value` in hundredths (or whole units for zero-decimal currencies), when
/// it is a positive amount PayPal accepts for `currency`.
fn amount_units(value: &str, currency: &str) -> Option<i64> {
    let decimals = paypal_decimals(currency)?;
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > decimals
        || (decimals == 0 && value.contains('.'))
    {
        return None;
    }
    let fraction = format!("{fraction:0<decimals$}");
    let units: i64 = format!("{whole}{fraction}").parse().ok()?;
    (units > 0).then_some(units)
}

fn format_units(units: i64, currency: &str) -> String {
    match paypal_decimals(currency) {
        Some(2) => format!("{}.{:02}", units / 100, units % 100),
        _ => units.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Handlers

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error_body(name: &str, message: &str, details: Value) -> Value {
    json!({
        "name": name,
        "message": message,
        "debug_id": random_id(13).to_ascii_lowercase(),
        "information_link": "https://developer.paypal.com/docs/api/payments.payouts-batch/#errors",
        "details": details,
        "links": []
    })
}

fn server_error() -> Response {
    json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        error_body(
            "INTERNAL_SERVER_ERROR",
            "An internal server error has occurred.",
            json!([]),
        ),
    )
}

fn unauthorized(state: &mut StandInState) -> Response {
    state.counters.unauthorized += 1;
    json_response(
        StatusCode::UNAUTHORIZED,
        json!({
            "error": "invalid_token",
            "error_description": "Access Token not found in cache"
        }),
    )
}

fn validation_error(field: &str, issue: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        error_body(
            "VALIDATION_ERROR",
            "Invalid request - see details.",
            json!([{ "field": field, "location": "body", "issue": issue }]),
        ),
    )
}

/// Runs `apply` under `fault`: before it (not applied) or after it (applied,
/// answer lost).
async fn with_fault(
    shared: &Shared,
    endpoint: Endpoint,
    apply: impl FnOnce(&mut StandInState) -> Response,
) -> Response {
    let (fault, hang) = {
        let mut state = shared.lock();
        (state.take_fault(endpoint), state.hang)
    };
    match fault {
        Some(Fault::Hang) => {
            tokio::time::sleep(hang).await;
            server_error()
        }
        Some(Fault::ServerError) => server_error(),
        Some(Fault::AppliedThenServerError) => {
            let _lost = apply(&mut shared.lock());
            server_error()
        }
        Some(Fault::AppliedThenHang) => {
            let response = apply(&mut shared.lock());
            tokio::time::sleep(hang).await;
            response
        }
        None => apply(&mut shared.lock()),
    }
}

async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    with_fault(&shared, Endpoint::Token, |state| {
        state.counters.token_requests += 1;
        let expected = format!(
            "Basic {}",
            STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
        );
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        if given != Some(expected.as_str()) {
            return json_response(
                StatusCode::UNAUTHORIZED,
                json!({
                    "error": "invalid_client",
                    "error_description": "Client Authentication failed"
                }),
            );
        }
        let form = String::from_utf8_lossy(&body);
        if !form.split('&').any(|pair| pair == "grant_type=client_credentials") {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({
                    "error": "unsupported_grant_type",
                    "error_description": "Grant Type is NULL"
                }),
            );
        }
        let access_token = format!("A21AA{}", random_id(60));
        let ttl = state.token_ttl;
        state
            .tokens
            .insert(access_token.clone(), Instant::now() + ttl);
        state.counters.tokens_issued += 1;
        json_response(
            StatusCode::OK,
            json!({
                "scope": "https://uri.paypal.com/services/payments/payouts https://uri.paypal.com/services/applications/webhooks",
                "access_token": access_token,
                "token_type": "Bearer",
                "app_id": "APP-80W284485P519543T",
                "expires_in": ttl.as_secs(),
                "nonce": format!("{TIME}{}", random_id(20))
            }),
        )
    })
    .await
}

async fn create_batch(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let base_url = shared.base_url.clone();
    with_fault(&shared, Endpoint::CreateBatch, |state| {
        if !state.token_is_valid(&headers) {
            return unauthorized(state);
        }
        state.counters.create_calls += 1;
        let Ok(request) = serde_json::from_slice::<Value>(&body) else {
            return json_response(
                StatusCode::BAD_REQUEST,
                error_body(
                    "MALFORMED_REQUEST",
                    "The request JSON is not well formed.",
                    json!([]),
                ),
            );
        };
        let header = &request["sender_batch_header"];
        let sender_batch_id = header["sender_batch_id"].as_str().map(str::to_owned);
        if let Some(index) = sender_batch_id
            .as_ref()
            .and_then(|id| state.batch_by_sender.get(id).copied())
        {
            state.counters.duplicates_refused += 1;
            let original = &state.batches[index].payout_batch_id;
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({
                    "name": "USER_BUSINESS_ERROR",
                    "message": "User business error.",
                    "debug_id": random_id(13).to_ascii_lowercase(),
                    "information_link": "https://developer.paypal.com/docs/api/payments.payouts-batch/#errors",
                    "details": [{
                        "field": "SENDER_BATCH_ID",
                        "location": "body",
                        "issue": "Batch with given sender_batch_id already exists",
                        "link": [{
                            "href": format!("{base_url}/v1/payments/payouts/{original}"),
                            "rel": "self",
                            "method": "GET",
                            "encType": "application/json"
                        }]
                    }],
                    "links": []
                }),
            );
        }
        let Some(raw_items) = request["items"].as_array().filter(|items| !items.is_empty()) else {
            return validation_error("items", "Items must not be empty.");
        };
        let mut items = Vec::with_capacity(raw_items.len());
        for (index, raw) in raw_items.iter().enumerate() {
            let receiver = raw["receiver"].as_str().unwrap_or_default();
            if !receiver.contains('@') {
                return validation_error(
                    &format!("items[{index}].receiver"),
                    "Receiver is invalid or does not match with type",
                );
            }
            let currency = raw["amount"]["currency"].as_str().unwrap_or_default();
            if paypal_decimals(currency).is_none() {
                return validation_error(
                    &format!("items[{index}].amount.currency"),
                    "Currency is not supported.",
                );
            }
            let value = raw["amount"]["value"].as_str().unwrap_or_default();
            if amount_units(value, currency).is_none() {
                return validation_error(
                    &format!("items[{index}].amount.value"),
                    "Amount is invalid for the currency.",
                );
            }
            let outcome = state
                .outcomes
                .get(&receiver.to_ascii_lowercase())
                .copied()
                .unwrap_or(state.default_outcome);
            items.push(Item {
                payout_item_id: random_id(13),
                transaction_id: None,
                status: "PENDING".to_owned(),
                outcome,
                receiver: receiver.to_owned(),
                value: value.to_owned(),
                currency: currency.to_owned(),
                sender_item_id: raw["sender_item_id"].as_str().map(str::to_owned),
                note: raw["note"].as_str().map(str::to_owned),
            });
        }
        let payout_batch_id = random_id(13);
        state.counters.batches_created += 1;
        state.counters.items_created += items.len();
        let index = state.batches.len();
        if let Some(id) = &sender_batch_id {
            state.batch_by_sender.insert(id.clone(), index);
        }
        let email_subject = header["email_subject"].as_str().map(str::to_owned);
        state.batches.push(Batch {
            payout_batch_id: payout_batch_id.clone(),
            sender_batch_id: sender_batch_id.clone(),
            email_subject: email_subject.clone(),
            status: "PENDING",
            settled: false,
            items,
        });
        json_response(
            StatusCode::CREATED,
            json!({
                "batch_header": {
                    "payout_batch_id": payout_batch_id,
                    "batch_status": "PENDING",
                    "sender_batch_header": {
                        "sender_batch_id": sender_batch_id,
                        "email_subject": email_subject
                    }
                },
                "links": [{
                    "href": format!("{base_url}/v1/payments/payouts/{payout_batch_id}"),
                    "rel": "self",
                    "method": "GET",
                    "encType": "application/json"
                }]
            }),
        )
    })
    .await
}

fn item_json(base_url: &str, batch: &Batch, item: &Item) -> Value {
    let mut value = json!({
        "payout_item_id": item.payout_item_id,
        "transaction_id": item.transaction_id,
        "activity_id": item.transaction_id.as_ref().map(|_| random_id(17)),
        "transaction_status": item.status,
        "payout_item_fee": { "currency": item.currency, "value": format_units(0, &item.currency) },
        "payout_batch_id": batch.payout_batch_id,
        "payout_item": {
            "recipient_type": "EMAIL",
            "amount": { "value": item.value, "currency": item.currency },
            "note": item.note,
            "receiver": item.receiver,
            "sender_item_id": item.sender_item_id,
            "recipient_wallet": "PAYPAL"
        },
        "time_processed": TIME,
        "links": [
            {
                "href": format!("{base_url}/v1/payments/payouts-item/{}", item.payout_item_id),
                "rel": "item",
                "method": "GET",
                "encType": "application/json"
            },
            {
                "href": format!("{base_url}/v1/payments/payouts/{}", batch.payout_batch_id),
                "rel": "batch",
                "method": "GET",
                "encType": "application/json"
            }
        ]
    });
    let error = match item.status.as_str() {
        "FAILED" | "UNCLAIMED" | "RETURNED" => item.outcome.error(),
        _ => None,
    };
    if let Some((name, message)) = error {
        value["errors"] = json!({ "name": name, "message": message });
    }
    value
}

async fn get_batch(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let base_url = shared.base_url.clone();
    with_fault(&shared, Endpoint::GetBatch, |state| {
        if !state.token_is_valid(&headers) {
            return unauthorized(state);
        }
        state.counters.get_batch_calls += 1;
        let Some(index) = state
            .batches
            .iter()
            .position(|batch| batch.payout_batch_id == id)
        else {
            return not_found_json();
        };
        if state.auto_settle {
            state.settle(index);
        }
        let batch = &state.batches[index];
        let currency = batch.items[0].currency.clone();
        let total: i64 = batch
            .items
            .iter()
            .filter(|item| item.currency == currency)
            .filter_map(|item| amount_units(&item.value, &item.currency))
            .sum();
        json_response(
            StatusCode::OK,
            json!({
                "batch_header": {
                    "payout_batch_id": batch.payout_batch_id,
                    "batch_status": batch.status,
                    "time_created": TIME,
                    "time_completed": batch.settled.then_some(TIME),
                    "sender_batch_header": {
                        "sender_batch_id": batch.sender_batch_id,
                        "email_subject": batch.email_subject
                    },
                    "amount": { "currency": currency, "value": format_units(total, &currency) },
                    "fees": { "currency": currency, "value": format_units(0, &currency) }
                },
                "items": batch.items.iter().map(|item| item_json(&base_url, batch, item)).collect::<Vec<_>>(),
                "links": [{
                    "href": format!("{base_url}/v1/payments/payouts/{}", batch.payout_batch_id),
                    "rel": "self",
                    "method": "GET",
                    "encType": "application/json"
                }]
            }),
        )
    })
    .await
}

async fn get_item(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let base_url = shared.base_url.clone();
    with_fault(&shared, Endpoint::GetItem, |state| {
        if !state.token_is_valid(&headers) {
            return unauthorized(state);
        }
        state.counters.get_item_calls += 1;
        let Some(index) = state
            .batches
            .iter()
            .position(|batch| batch.items.iter().any(|item| item.payout_item_id == id))
        else {
            return not_found_json();
        };
        if state.auto_settle {
            state.settle(index);
        }
        let batch = &state.batches[index];
        let item = batch
            .items
            .iter()
            .find(|item| item.payout_item_id == id)
            .expect("the batch was found by this item");
        let mut value = item_json(&base_url, batch, item);
        value["sender_batch_id"] = json!(batch.sender_batch_id);
        json_response(StatusCode::OK, value)
    })
    .await
}

async fn verify_webhook(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    with_fault(&shared, Endpoint::VerifyWebhook, |state| {
        if !state.token_is_valid(&headers) {
            return unauthorized(state);
        }
        state.counters.verify_calls += 1;
        let Ok(request) = serde_json::from_slice::<Value>(&body) else {
            return json_response(
                StatusCode::BAD_REQUEST,
                error_body(
                    "MALFORMED_REQUEST",
                    "The request JSON is not well formed.",
                    json!([]),
                ),
            );
        };
        for field in [
            "auth_algo",
            "cert_url",
            "transmission_id",
            "transmission_sig",
            "transmission_time",
            "webhook_id",
        ] {
            if request[field].as_str().is_none_or(str::is_empty) {
                return validation_error(field, "MISSING_REQUIRED_PARAMETER");
            }
        }
        if !request["webhook_event"].is_object() {
            return validation_error("webhook_event", "MISSING_REQUIRED_PARAMETER");
        }
        let genuine = state
            .sent_webhooks
            .get(request["transmission_id"].as_str().unwrap_or_default())
            .is_some_and(|sent| {
                request["webhook_id"] == sent.webhook_id.as_str()
                    && request["auth_algo"] == sent.auth_algo.as_str()
                    && request["cert_url"] == sent.cert_url.as_str()
                    && request["transmission_sig"] == sent.transmission_sig.as_str()
                    && request["transmission_time"] == sent.transmission_time.as_str()
                    && request["webhook_event"] == sent.event
            });
        let success = match state.verification {
            WebhookVerification::Genuine => genuine,
            WebhookVerification::AlwaysSuccess => true,
            WebhookVerification::AlwaysFailure => false,
        };
        json_response(
            StatusCode::OK,
            json!({ "verification_status": if success { "SUCCESS" } else { "FAILURE" } }),
        )
    })
    .await
}

fn not_found_json() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        error_body(
            "RESOURCE_NOT_FOUND",
            "The specified resource does not exist.",
            json!([]),
        ),
    )
}

async fn not_found() -> Response {
    not_found_json()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_accepted_only_with_the_currencys_decimals() {
        assert_eq!(amount_units("10.00", "USD"), Some(1000));
        assert_eq!(amount_units("10.5", "USD"), Some(1050));
        assert_eq!(amount_units("10", "USD"), Some(1000));
        assert_eq!(amount_units("1500", "HUF"), Some(1500));
        assert_eq!(amount_units("10.001", "USD"), None);
        assert_eq!(amount_units("15.00", "JPY"), None);
        assert_eq!(amount_units("0.00", "USD"), None);
        assert_eq!(amount_units("-1", "USD"), None);
        assert_eq!(amount_units("1", "XXX"), None);
        assert_eq!(format_units(1050, "USD"), "10.50");
        assert_eq!(format_units(1500, "JPY"), "1500");
    }

    #[tokio::test]
    async fn a_token_needs_the_right_credentials() {
        let paypal = PayPalStandIn::start().await.unwrap();
        let client = reqwest::Client::new();
        let url = format!("{}/v1/oauth2/token", paypal.base_url());
        let wrong = client
            .post(&url)
            .basic_auth(CLIENT_ID, Some("nope"))
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401);
        let right = client
            .post(&url)
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        assert_eq!(right.status(), 200);
        let token: Value = right.json().await.unwrap();
        assert_eq!(token["token_type"], "Bearer");
        assert_eq!(token["expires_in"], 32_400);
        assert_eq!(paypal.counters().tokens_issued, 1);
        let unauthorised = client
            .get(format!("{}/v1/payments/payouts/NOPE", paypal.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(unauthorised.status(), 401);
    }

    #[tokio::test]
    async fn an_item_webhook_is_posted_with_paypals_headers() {
        let paypal = PayPalStandIn::start().await.unwrap();
        let client = reqwest::Client::new();
        let token: Value = client
            .post(format!("{}/v1/oauth2/token", paypal.base_url()))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let bearer = token["access_token"].as_str().unwrap().to_owned();
        let created = client
            .post(format!("{}/v1/payments/payouts", paypal.base_url()))
            .bearer_auth(&bearer)
            .json(&json!({
                "sender_batch_header": { "sender_batch_id": "wd_1" },
                "items": [{
                    "recipient_type": "EMAIL",
                    "amount": { "value": "10.00", "currency": "USD" },
                    "receiver": "partner@example.com",
                    "sender_item_id": "wd_1"
                }]
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        paypal.settle();
        let item_id = paypal.batches()[0].items[0].payout_item_id.clone();

        // A receiver that keeps what it got.
        let received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
        let keep = received.clone();
        let app = Router::new().route(
            "/webhooks/paypal",
            post(move |headers: HeaderMap, body: Bytes| async move {
                keep.lock().unwrap().push((headers, body));
                StatusCode::OK
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/webhooks/paypal", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let status = paypal
            .send_item_webhook(&url, &item_id, "WH1")
            .await
            .unwrap();
        assert_eq!(status, 200);
        let (headers, body) = received.lock().unwrap()[0].clone();
        for name in [
            "paypal-auth-algo",
            "paypal-cert-url",
            "paypal-transmission-id",
            "paypal-transmission-sig",
            "paypal-transmission-time",
        ] {
            assert!(headers.contains_key(name), "{name}");
        }
        let event: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(event["event_type"], "PAYMENT.PAYOUTS-ITEM.SUCCEEDED");
        assert_eq!(event["resource"]["payout_item_id"], item_id.as_str());
        assert_eq!(event["resource"]["sender_batch_id"], "wd_1");
        assert!(
            paypal
                .send_item_webhook(&url, "NOSUCHITEM", "WH1")
                .await
                .is_err()
        );
    }
}
