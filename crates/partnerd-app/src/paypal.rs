//! A client for the PayPal Payouts API, and PayPal's payout webhooks.
//!
//! **Paying exactly once.** A payout batch is created with a `sender_batch_id`
//! that partnerd chose and stored *before* the call (the withdrawal's
//! idempotency key). PayPal refuses a second batch with an id used in the last
//! 30 days, answering `400 USER_BUSINESS_ERROR` with the detail "Batch with
//! given sender_batch_id already exists" and a link to the original batch.
//! So every failure whose outcome is unknown (timeout, dropped connection,
//! `5xx`) is [`PayPalError::is_retryable`], and the retry sends the *same* id:
//! either the first call never arrived and this one pays, or it did and
//! [`PayPalClient::create_batch`] follows the link and returns the existing
//! batch ([`CreatedBatch::replayed`]). Never retry with a new id.
//!
//! **Tracking.** Batches and items are polled ([`PayPalClient::get_batch`],
//! [`PayPalClient::get_item`]); `PAYMENT.PAYOUTS-ITEM.*` webhooks, once
//! verified by PayPal ([`PayPalClient::verify_webhook`]), are hints to poll
//! sooner. [`ItemStatus::settlement`] says what an item's status means for
//! the partner's money.
//!
//! **Access.** OAuth 2 client credentials (`POST /v1/oauth2/token`); the token
//! is cached until shortly before it expires and fetched again after a `401`.
//! Every request has a timeout. No secret, token or recipient address is
//! logged, and `Debug` shows none.

use std::fmt;
use std::time::Duration;

use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::Secret;

/// PayPal's sandbox, for trying things without money.
pub const SANDBOX_BASE_URL: &str = "https://api-m.sandbox.paypal.com";
/// PayPal's live API.
pub const LIVE_BASE_URL: &str = "https://api-m.paypal.com";

/// How long one request may take, connection included, unless configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The most a token is used before its expiry: it is fetched again this long
/// before (or after three quarters of its life, for short-lived tokens), so a
/// request never starts with a token about to lapse.
const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The webhook headers PayPal signs with, as `verify-webhook-signature` wants them.
const WEBHOOK_HEADERS: [(&str, &str); 5] = [
    ("auth_algo", "paypal-auth-algo"),
    ("cert_url", "paypal-cert-url"),
    ("transmission_id", "paypal-transmission-id"),
    ("transmission_sig", "paypal-transmission-sig"),
    ("transmission_time", "paypal-transmission-time"),
];

/// Where and as whom to reach PayPal.
#[derive(Debug, Clone)]
pub struct PayPalConfig {
    /// [`SANDBOX_BASE_URL`], [`LIVE_BASE_URL`] or a test stand-in's address.
    pub base_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// Per request.
    pub timeout: Duration,
    /// Subject of the email PayPal sends each recipient.
    pub email_subject: Option<String>,
}

impl PayPalConfig {
    pub fn new(
        base_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Secret,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            client_id: client_id.into(),
            client_secret,
            timeout: DEFAULT_TIMEOUT,
            email_subject: None,
        }
    }
}

/// What went wrong talking to PayPal. [`PayPalError::is_retryable`] splits
/// "the outcome is unknown or temporary: try again with the same ids" from
/// "PayPal said no: retrying the same request will not help".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayPalError {
    /// No complete answer within the timeout; the request may have been applied.
    #[error("PayPal did not answer in time")]
    Timeout,
    /// The connection failed or broke; the request may have been applied.
    #[error("could not talk to PayPal: {0}")]
    Connection(String),
    /// `5xx`, `429` or `408`: PayPal is unwell or busy.
    #[error("PayPal is unavailable ({status} {})", name.as_deref().unwrap_or("no error name"))]
    Unavailable {
        status: u16,
        name: Option<String>,
        debug_id: Option<String>,
    },
    /// PayPal refused the request (`4xx`), e.g. `INSUFFICIENT_FUNDS`,
    /// `VALIDATION_ERROR`, `RECEIVER_UNREGISTERED`, `RESOURCE_NOT_FOUND`.
    #[error("PayPal refused the request ({status} {name}): {message}")]
    Refused {
        status: u16,
        /// PayPal's error name.
        name: String,
        message: String,
        debug_id: Option<String>,
        /// `field: issue` for each detail PayPal gave.
        issues: Vec<String>,
    },
    /// The client id or secret is wrong, or the app lacks Payouts.
    #[error("PayPal rejected partnerd's credentials ({status} {name})")]
    Authentication { status: u16, name: String },
    /// A `2xx` whose body could not be read. For a create, the batch may exist.
    #[error("PayPal's answer could not be read: {0}")]
    InvalidResponse(String),
    /// The request cannot be expressed (bad amount, currency, id or URL).
    #[error("invalid PayPal request: {0}")]
    InvalidInput(String),
    /// PayPal says the `sender_batch_id` was used, without linking the batch;
    /// a person has to look it up in the PayPal dashboard.
    #[error("PayPal already has a batch {sender_batch_id} but did not say which")]
    DuplicateWithoutLink { sender_batch_id: String },
}

impl PayPalError {
    /// Whether trying again later, with the same ids, is right.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Timeout
                | Self::Connection(_)
                | Self::Unavailable { .. }
                | Self::InvalidResponse(_)
        )
    }

    /// PayPal's error name (`INSUFFICIENT_FUNDS`, …), when it gave one.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Refused { name, .. } | Self::Authentication { name, .. } => Some(name),
            Self::Unavailable { name, .. } => name.as_deref(),
            _ => None,
        }
    }

    /// A `404`: no such batch or item.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Refused { status: 404, .. })
    }
}

/// One payment in a batch.
#[derive(Clone, PartialEq, Eq)]
pub struct PayoutItemRequest {
    /// The partner's PayPal email.
    pub receiver_email: String,
    /// Minor units of `currency` (ISO 4217 exponent), positive.
    pub amount_minor: i64,
    /// ISO 4217, upper case.
    pub currency: String,
    /// Our id for the item (the withdrawal), echoed in statuses and webhooks.
    pub sender_item_id: String,
    /// Shown to the recipient.
    pub note: Option<String>,
}

impl fmt::Debug for PayoutItemRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The recipient's address is personal data: kept out of logs.
        f.debug_struct("PayoutItemRequest")
            .field("receiver_email", &"***")
            .field("amount_minor", &self.amount_minor)
            .field("currency", &self.currency)
            .field("sender_item_id", &self.sender_item_id)
            .finish_non_exhaustive()
    }
}

/// The answer to [`PayPalClient::create_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedBatch {
    pub payout_batch_id: String,
    pub batch_status: BatchStatus,
    /// `true` when the batch already existed (an earlier call with this
    /// `sender_batch_id` got through): nothing new was paid.
    pub replayed: bool,
}

/// A batch's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchStatus {
    Pending,
    Processing,
    Success,
    Denied,
    Canceled,
    /// A status this client does not know; treat as not final.
    Other(String),
}

impl BatchStatus {
    pub fn parse(value: &str) -> Self {
        match value {
            "PENDING" => Self::Pending,
            "PROCESSING" => Self::Processing,
            "SUCCESS" => Self::Success,
            "DENIED" => Self::Denied,
            "CANCELED" => Self::Canceled,
            other => Self::Other(other.to_owned()),
        }
    }

    /// No more change will come: every item has its own final-or-not status.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Success | Self::Denied | Self::Canceled)
    }
}

/// A payout item's `transaction_status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemStatus {
    Success,
    Failed,
    Pending,
    /// Sent to an address with no PayPal account; returned after 30 days
    /// unless claimed.
    Unclaimed,
    Returned,
    OnHold,
    Blocked,
    Refunded,
    Reversed,
    /// A status this client does not know; treat as in flight.
    Other(String),
}

/// What an item's status means for the partner's money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Paid: post the withdrawal. (A later `REFUNDED` or `REVERSED` can still
    /// turn it into [`Settlement::NotPaid`].)
    Paid,
    /// The money came back to us: return it to the partner's available
    /// balance and tell them.
    NotPaid,
    /// Still moving (`PENDING`, `ONHOLD`, `UNCLAIMED`): keep polling.
    InFlight,
}

impl ItemStatus {
    pub fn parse(value: &str) -> Self {
        match value {
            "SUCCESS" => Self::Success,
            "FAILED" => Self::Failed,
            "PENDING" => Self::Pending,
            "UNCLAIMED" => Self::Unclaimed,
            "RETURNED" => Self::Returned,
            "ONHOLD" => Self::OnHold,
            "BLOCKED" => Self::Blocked,
            "REFUNDED" => Self::Refunded,
            "REVERSED" => Self::Reversed,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Success => "SUCCESS",
            Self::Failed => "FAILED",
            Self::Pending => "PENDING",
            Self::Unclaimed => "UNCLAIMED",
            Self::Returned => "RETURNED",
            Self::OnHold => "ONHOLD",
            Self::Blocked => "BLOCKED",
            Self::Refunded => "REFUNDED",
            Self::Reversed => "REVERSED",
            Self::Other(other) => other,
        }
    }

    pub fn settlement(&self) -> Settlement {
        match self {
            Self::Success => Settlement::Paid,
            Self::Failed | Self::Returned | Self::Blocked | Self::Refunded | Self::Reversed => {
                Settlement::NotPaid
            }
            Self::Pending | Self::Unclaimed | Self::OnHold | Self::Other(_) => Settlement::InFlight,
        }
    }
}

/// A batch as `GET /v1/payments/payouts/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutBatch {
    pub payout_batch_id: String,
    pub batch_status: BatchStatus,
    pub sender_batch_id: Option<String>,
    pub items: Vec<PayoutItem>,
}

/// An item as the batch or `GET /v1/payments/payouts-item/{id}` shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct PayoutItem {
    pub payout_item_id: String,
    pub payout_batch_id: Option<String>,
    pub sender_batch_id: Option<String>,
    pub sender_item_id: Option<String>,
    pub transaction_id: Option<String>,
    pub status: ItemStatus,
    /// Minor units, when PayPal's amount reads in the item's currency.
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub receiver: Option<String>,
    /// `errors.name` for failed items, e.g. `RECEIVER_UNREGISTERED`.
    pub error_name: Option<String>,
}

impl fmt::Debug for PayoutItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayoutItem")
            .field("payout_item_id", &self.payout_item_id)
            .field("payout_batch_id", &self.payout_batch_id)
            .field("sender_batch_id", &self.sender_batch_id)
            .field("sender_item_id", &self.sender_item_id)
            .field("status", &self.status)
            .field("amount_minor", &self.amount_minor)
            .field("currency", &self.currency)
            .field("receiver", &self.receiver.as_ref().map(|_| "***"))
            .field("error_name", &self.error_name)
            .finish_non_exhaustive()
    }
}

/// PayPal's verdict on a webhook delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookVerification {
    Success,
    /// Forged, altered, for another webhook, or missing PayPal's headers.
    Failure,
}

/// The PayPal Payouts client. One per process: it caches the access token.
pub struct PayPalClient {
    http: reqwest::Client,
    base_url: String,
    client_id: String,
    client_secret: Secret,
    email_subject: Option<String>,
    token: Mutex<Option<CachedToken>>,
}

struct CachedToken {
    value: String,
    refresh_at: Instant,
}

impl fmt::Debug for PayPalClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayPalClient")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .finish_non_exhaustive()
    }
}

impl PayPalClient {
    pub fn new(config: PayPalConfig) -> Result<Self, PayPalError> {
        let base = url::Url::parse(config.base_url.trim())
            .map_err(|e| PayPalError::InvalidInput(format!("base URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(PayPalError::InvalidInput(
                "the base URL must be http(s)://host".to_owned(),
            ));
        }
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("partnerd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PayPalError::InvalidInput(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            base_url: base.as_str().trim_end_matches('/').to_owned(),
            client_id: config.client_id,
            client_secret: config.client_secret,
            email_subject: config.email_subject,
            token: Mutex::new(None),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `POST /v1/payments/payouts`: pays `items` as one batch identified by
    /// `sender_batch_id`. If PayPal already has a batch with that id (an
    /// earlier attempt got through), returns that batch with `replayed` set
    /// and pays nothing new.
    #[tracing::instrument(skip_all, fields(paypal.sender_batch_id = %sender_batch_id))]
    pub async fn create_batch(
        &self,
        sender_batch_id: &str,
        items: &[PayoutItemRequest],
    ) -> Result<CreatedBatch, PayPalError> {
        if sender_batch_id.is_empty() || sender_batch_id.len() > 256 {
            return Err(PayPalError::InvalidInput(
                "sender_batch_id must be 1 to 256 characters".to_owned(),
            ));
        }
        if items.is_empty() {
            return Err(PayPalError::InvalidInput("a batch needs items".to_owned()));
        }
        let mut header = json!({
            "sender_batch_id": sender_batch_id,
            "recipient_type": "EMAIL",
        });
        if let Some(subject) = &self.email_subject {
            header["email_subject"] = json!(subject);
        }
        let items = items
            .iter()
            .map(|item| {
                let mut value = json!({
                    "recipient_type": "EMAIL",
                    "amount": {
                        "value": format_amount(item.amount_minor, &item.currency)?,
                        "currency": item.currency,
                    },
                    "receiver": item.receiver_email,
                    "sender_item_id": item.sender_item_id,
                });
                if let Some(note) = &item.note {
                    value["note"] = json!(note);
                }
                Ok(value)
            })
            .collect::<Result<Vec<_>, PayPalError>>()?;
        let body = json!({ "sender_batch_header": header, "items": items });

        let (status, bytes) = self
            .send(Method::POST, "/v1/payments/payouts", Some(&body))
            .await?;
        if status.is_success() {
            #[derive(Deserialize)]
            struct Created {
                batch_header: RawBatchHeader,
            }
            let created: Created = read_json(&bytes)?;
            tracing::info!(
                paypal.payout_batch_id = %created.batch_header.payout_batch_id,
                "payout batch created"
            );
            return Ok(CreatedBatch {
                payout_batch_id: created.batch_header.payout_batch_id,
                batch_status: BatchStatus::parse(&created.batch_header.batch_status),
                replayed: false,
            });
        }
        let error = ErrorBody::read(&bytes);
        if status == StatusCode::BAD_REQUEST && error.is_duplicate_batch() {
            let Some(payout_batch_id) = error.linked_batch_id() else {
                return Err(PayPalError::DuplicateWithoutLink {
                    sender_batch_id: sender_batch_id.to_owned(),
                });
            };
            tracing::info!(
                paypal.payout_batch_id = %payout_batch_id,
                "payout batch already existed; not paying again"
            );
            let batch = self.get_batch(&payout_batch_id).await?;
            if batch
                .sender_batch_id
                .as_deref()
                .is_some_and(|existing| existing != sender_batch_id)
            {
                return Err(PayPalError::InvalidResponse(format!(
                    "the duplicate-batch link leads to batch {payout_batch_id} of another sender_batch_id"
                )));
            }
            return Ok(CreatedBatch {
                payout_batch_id: batch.payout_batch_id,
                batch_status: batch.batch_status,
                replayed: true,
            });
        }
        Err(error.into_error(status))
    }

    /// `GET /v1/payments/payouts/{payout_batch_id}`: the batch and its items.
    #[tracing::instrument(skip_all, fields(paypal.payout_batch_id = %payout_batch_id))]
    pub async fn get_batch(&self, payout_batch_id: &str) -> Result<PayoutBatch, PayPalError> {
        check_id(payout_batch_id)?;
        let path = format!("/v1/payments/payouts/{payout_batch_id}");
        let (status, bytes) = self.send(Method::GET, &path, None).await?;
        if !status.is_success() {
            return Err(ErrorBody::read(&bytes).into_error(status));
        }
        let raw: RawBatch = read_json(&bytes)?;
        Ok(PayoutBatch {
            payout_batch_id: raw.batch_header.payout_batch_id,
            batch_status: BatchStatus::parse(&raw.batch_header.batch_status),
            sender_batch_id: raw
                .batch_header
                .sender_batch_header
                .and_then(|header| header.sender_batch_id),
            items: raw.items.into_iter().map(RawItem::into_item).collect(),
        })
    }

    /// `GET /v1/payments/payouts-item/{payout_item_id}`: one item.
    #[tracing::instrument(skip_all, fields(paypal.payout_item_id = %payout_item_id))]
    pub async fn get_item(&self, payout_item_id: &str) -> Result<PayoutItem, PayPalError> {
        check_id(payout_item_id)?;
        let path = format!("/v1/payments/payouts-item/{payout_item_id}");
        let (status, bytes) = self.send(Method::GET, &path, None).await?;
        if !status.is_success() {
            return Err(ErrorBody::read(&bytes).into_error(status));
        }
        Ok(read_json::<RawItem>(&bytes)?.into_item())
    }

    /// Asks PayPal (`POST /v1/notifications/verify-webhook-signature`) whether
    /// a delivery to our webhook `webhook_id` is genuine. `body` must be the
    /// raw bytes received: it is forwarded unchanged, since PayPal checks its
    /// signature over exactly those bytes.
    #[tracing::instrument(skip_all)]
    pub async fn verify_webhook(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        webhook_id: &str,
    ) -> Result<WebhookVerification, PayPalError> {
        let mut request = String::with_capacity(body.len() + 1024);
        request.push('{');
        for (field, header_name) in WEBHOOK_HEADERS {
            let Some(value) = headers.get(header_name).and_then(|v| v.to_str().ok()) else {
                tracing::info!(header = header_name, "PayPal webhook without its header");
                return Ok(WebhookVerification::Failure);
            };
            request.push_str(&json!(field).to_string());
            request.push(':');
            request.push_str(&json!(value).to_string());
            request.push(',');
        }
        request.push_str("\"webhook_id\":");
        request.push_str(&json!(webhook_id).to_string());
        request.push_str(",\"webhook_event\":");
        // Only a JSON object may be spliced in; anything else is no PayPal event.
        let Ok(text) = std::str::from_utf8(body) else {
            return Ok(WebhookVerification::Failure);
        };
        if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err()
            || !text.trim_start().starts_with('{')
        {
            return Ok(WebhookVerification::Failure);
        }
        request.push_str(text);
        request.push('}');

        let (status, bytes) = self
            .send_raw(
                Method::POST,
                "/v1/notifications/verify-webhook-signature",
                Some(request),
            )
            .await?;
        if !status.is_success() {
            return Err(ErrorBody::read(&bytes).into_error(status));
        }
        #[derive(Deserialize)]
        struct Answer {
            verification_status: String,
        }
        let answer: Answer = read_json(&bytes)?;
        Ok(if answer.verification_status == "SUCCESS" {
            WebhookVerification::Success
        } else {
            WebhookVerification::Failure
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, Vec<u8>), PayPalError> {
        self.send_raw(method, path, body.map(|body| body.to_string()))
            .await
    }

    /// Sends one authorised request; after a `401` (the token expired or was
    /// revoked early) fetches a new token and sends once more.
    async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(StatusCode, Vec<u8>), PayPalError> {
        let url = format!("{}{path}", self.base_url);
        let mut retried = false;
        loop {
            let token = self.access_token().await?;
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&token)
                .header(header::ACCEPT, "application/json");
            if let Some(body) = &body {
                request = request
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let started = Instant::now();
            let response = request.send().await.map_err(transport_error)?;
            let status = response.status();
            let bytes = response.bytes().await.map_err(transport_error)?.to_vec();
            tracing::debug!(
                http.method = %method,
                http.path = path,
                http.status = status.as_u16(),
                duration_ms = started.elapsed().as_millis() as u64,
                "PayPal answered"
            );
            if status == StatusCode::UNAUTHORIZED && !retried {
                retried = true;
                self.forget_token(&token).await;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED {
                let error = ErrorBody::read(&bytes);
                return Err(PayPalError::Authentication {
                    status: status.as_u16(),
                    name: error.name_or_default(),
                });
            }
            return Ok((status, bytes));
        }
    }

    async fn access_token(&self) -> Result<String, PayPalError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(token.value.clone());
        }
        // Fetched while holding the lock: concurrent callers wait for this one
        // token instead of each asking PayPal for their own.
        let token = self.fetch_token().await?;
        let value = token.value.clone();
        *cached = Some(token);
        Ok(value)
    }

    async fn forget_token(&self, used: &str) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|token| token.value == used) {
            *cached = None;
        }
    }

    async fn fetch_token(&self) -> Result<CachedToken, PayPalError> {
        let response = self
            .http
            .post(format!("{}/v1/oauth2/token", self.base_url))
            .basic_auth(&self.client_id, Some(self.client_secret.expose()))
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport_error)?.to_vec();
        if !status.is_success() {
            let error = ErrorBody::read(&bytes);
            return Err(
                if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                    PayPalError::Authentication {
                        status: status.as_u16(),
                        name: error.name_or_default(),
                    }
                } else {
                    error.into_error(status)
                },
            );
        }
        #[derive(Deserialize)]
        struct Token {
            access_token: String,
            expires_in: u64,
        }
        let token: Token = read_json(&bytes)?;
        let lifetime = Duration::from_secs(token.expires_in);
        let margin = TOKEN_REFRESH_MARGIN.min(lifetime / 4);
        tracing::debug!(
            expires_in_s = token.expires_in,
            "PayPal access token fetched"
        );
        Ok(CachedToken {
            value: token.access_token,
            refresh_at: Instant::now() + (lifetime - margin),
        })
    }
}

fn transport_error(error: reqwest::Error) -> PayPalError {
    if error.is_timeout() {
        PayPalError::Timeout
    } else if error.is_builder() {
        PayPalError::InvalidInput(error.to_string())
    } else {
        // Connection refused or reset, TLS, a body cut short: all leave the
        // outcome unknown, so all are retried with the same ids.
        PayPalError::Connection(error.without_url().to_string())
    }
}

fn read_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, PayPalError> {
    serde_json::from_slice(bytes).map_err(|e| PayPalError::InvalidResponse(e.to_string()))
}

/// PayPal's ids are short upper-case alphanumerics; refusing anything else
/// keeps an id from a webhook body from steering the request path.
fn check_id(id: &str) -> Result<(), PayPalError> {
    if !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(PayPalError::InvalidInput(format!(
            "not a PayPal id: {id:.64}"
        )))
    }
}

// ---------------------------------------------------------------------------
// Amounts

/// ISO 4217 minor-unit digits (partnerd's minor units) and the decimals PayPal
/// accepts, for the currencies PayPal Payouts supports. PayPal pays HUF and
/// TWD in whole units although ISO gives them cents.
fn digits(currency: &str) -> Option<(u32, u32)> {
    Some(match currency {
        "JPY" => (0, 0),
        "HUF" | "TWD" => (2, 0),
        "AUD" | "BRL" | "CAD" | "CNY" | "CZK" | "DKK" | "EUR" | "HKD" | "ILS" | "MYR" | "MXN"
        | "NZD" | "NOK" | "PHP" | "PLN" | "GBP" | "RUB" | "SGD" | "SEK" | "CHF" | "THB" | "USD" => {
            (2, 2)
        }
        _ => return None,
    })
}

/// `amount_minor` of `currency` as PayPal's decimal string: `12345 USD` →
/// `"123.45"`, `500 JPY` → `"500"`, `150000 HUF` → `"1500"`.
pub fn format_amount(amount_minor: i64, currency: &str) -> Result<String, PayPalError> {
    let (iso, paypal) = digits(currency).ok_or_else(|| {
        PayPalError::InvalidInput(format!("PayPal Payouts does not pay in {currency:.8}"))
    })?;
    if amount_minor <= 0 {
        return Err(PayPalError::InvalidInput(
            "a payout amount must be positive".to_owned(),
        ));
    }
    let drop = 10_i64.pow(iso - paypal);
    if amount_minor % drop != 0 {
        return Err(PayPalError::InvalidInput(format!(
            "PayPal pays {currency} in whole units only"
        )));
    }
    let value = amount_minor / drop;
    if paypal == 0 {
        return Ok(value.to_string());
    }
    let scale = 10_i64.pow(paypal);
    Ok(format!(
        "{}.{:0width$}",
        value / scale,
        value % scale,
        width = paypal as usize
    ))
}

/// PayPal's decimal string back to minor units of `currency`; `None` when it
/// does not read exactly (more decimals than the currency has, not a number).
pub fn parse_amount(value: &str, currency: &str) -> Option<i64> {
    let (iso, _) = digits(currency)?;
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > iso as usize
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let fraction_value: i64 = if fraction.is_empty() {
        0
    } else {
        fraction.parse::<i64>().ok()? * 10_i64.pow(iso - fraction.len() as u32)
    };
    whole
        .checked_mul(10_i64.pow(iso))?
        .checked_add(fraction_value)
}

// ---------------------------------------------------------------------------
// Answers

#[derive(Deserialize)]
struct RawBatchHeader {
    payout_batch_id: String,
    batch_status: String,
    #[serde(default)]
    sender_batch_header: Option<RawSenderBatchHeader>,
}

#[derive(Deserialize)]
struct RawSenderBatchHeader {
    #[serde(default)]
    sender_batch_id: Option<String>,
}

#[derive(Deserialize)]
struct RawBatch {
    batch_header: RawBatchHeader,
    #[serde(default)]
    items: Vec<RawItem>,
}

#[derive(Deserialize)]
struct RawItem {
    payout_item_id: String,
    #[serde(default)]
    transaction_id: Option<String>,
    #[serde(default)]
    transaction_status: Option<String>,
    #[serde(default)]
    payout_batch_id: Option<String>,
    #[serde(default)]
    sender_batch_id: Option<String>,
    #[serde(default)]
    payout_item: Option<RawItemDetails>,
    #[serde(default)]
    errors: Option<RawItemError>,
}

#[derive(Deserialize)]
struct RawItemDetails {
    #[serde(default)]
    amount: Option<RawAmount>,
    #[serde(default)]
    receiver: Option<String>,
    #[serde(default)]
    sender_item_id: Option<String>,
}

#[derive(Deserialize)]
struct RawAmount {
    value: String,
    currency: String,
}

#[derive(Deserialize)]
struct RawItemError {
    #[serde(default)]
    name: Option<String>,
}

impl RawItem {
    fn into_item(self) -> PayoutItem {
        let details = self.payout_item;
        let (amount_minor, currency) = match details.as_ref().and_then(|d| d.amount.as_ref()) {
            Some(amount) => (
                parse_amount(&amount.value, &amount.currency),
                Some(amount.currency.clone()),
            ),
            None => (None, None),
        };
        let (receiver, sender_item_id) = match details {
            Some(details) => (details.receiver, details.sender_item_id),
            None => (None, None),
        };
        PayoutItem {
            payout_item_id: self.payout_item_id,
            payout_batch_id: self.payout_batch_id,
            sender_batch_id: self.sender_batch_id,
            sender_item_id,
            transaction_id: self.transaction_id,
            // An item PayPal shows without a status has not been processed yet.
            status: self
                .transaction_status
                .as_deref()
                .map_or(ItemStatus::Pending, ItemStatus::parse),
            amount_minor,
            currency,
            receiver,
            error_name: self.errors.and_then(|errors| errors.name),
        }
    }
}

/// PayPal's error body: `{name, message, debug_id, details, links}` from the
/// REST APIs, `{error, error_description}` from OAuth.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    debug_id: Option<String>,
    #[serde(default)]
    details: Vec<ErrorDetail>,
    #[serde(default)]
    links: Vec<Link>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    issue: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    link: Vec<Link>,
}

#[derive(Deserialize)]
struct Link {
    href: String,
    #[serde(default)]
    rel: Option<String>,
}

/// Names some integrations report for a reused `sender_batch_id`; the
/// documented answer is `USER_BUSINESS_ERROR` with the detail below.
const DUPLICATE_BATCH_NAMES: [&str; 2] = [
    "SENDER_BATCH_ID_ALREADY_EXISTS",
    "SENDER_BATCH_ID_ALREADY_USED",
];

impl ErrorBody {
    fn read(bytes: &[u8]) -> Self {
        serde_json::from_slice(bytes).unwrap_or_default()
    }

    fn name_or_default(&self) -> String {
        self.name
            .clone()
            .or_else(|| self.error.clone())
            .unwrap_or_else(|| "UNKNOWN".to_owned())
    }

    fn is_duplicate_batch(&self) -> bool {
        self.name
            .as_deref()
            .is_some_and(|name| DUPLICATE_BATCH_NAMES.contains(&name))
            || self.details.iter().any(|detail| {
                detail
                    .field
                    .as_deref()
                    .is_some_and(|field| field.eq_ignore_ascii_case("sender_batch_id"))
                    && detail
                        .issue
                        .as_deref()
                        .is_some_and(|issue| issue.to_ascii_lowercase().contains("already exists"))
            })
    }

    /// The original batch's id, from the detail's link (or a top-level one).
    fn linked_batch_id(&self) -> Option<String> {
        self.details
            .iter()
            .flat_map(|detail| detail.link.iter())
            .chain(self.links.iter().filter(|link| {
                link.rel
                    .as_deref()
                    .is_none_or(|rel| rel == "self" || rel == "batch")
            }))
            .find_map(|link| {
                let path = link.href.split(['?', '#']).next()?;
                let (prefix, id) = path.trim_end_matches('/').rsplit_once('/')?;
                (prefix.ends_with("/v1/payments/payouts") && check_id(id).is_ok())
                    .then(|| id.to_owned())
            })
    }

    fn into_error(self, status: StatusCode) -> PayPalError {
        let code = status.as_u16();
        let retryable = status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT;
        let name = self.name.clone().or_else(|| self.error.clone());
        if retryable {
            return PayPalError::Unavailable {
                status: code,
                name,
                debug_id: self.debug_id,
            };
        }
        let issues = self
            .details
            .iter()
            .map(|detail| {
                format!(
                    "{}: {}",
                    detail.field.as_deref().unwrap_or("-"),
                    detail
                        .issue
                        .as_deref()
                        .or(detail.description.as_deref())
                        .unwrap_or("-")
                )
            })
            .collect();
        PayPalError::Refused {
            status: code,
            name: name.unwrap_or_else(|| "UNKNOWN".to_owned()),
            message: self.message.or(self.error_description).unwrap_or_default(),
            debug_id: self.debug_id,
            issues,
        }
    }
}

// ---------------------------------------------------------------------------
// Webhooks

/// A PayPal webhook, as far as payouts are concerned. Only a hint: act on it
/// by polling the item or batch, which is the truth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayPalWebhookEvent {
    /// `PAYMENT.PAYOUTS-ITEM.*`
    PayoutItem(PayoutItemEvent),
    /// `PAYMENT.PAYOUTSBATCH.*`
    PayoutBatch {
        event_id: String,
        event_type: String,
        payout_batch_id: String,
        sender_batch_id: Option<String>,
        status: BatchStatus,
    },
    /// Any other event type.
    Other {
        event_id: String,
        event_type: String,
    },
}

/// A `PAYMENT.PAYOUTS-ITEM.*` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutItemEvent {
    /// `WH-…`: deliveries are deduplicated on it.
    pub event_id: String,
    pub event_type: String,
    pub payout_item_id: String,
    pub payout_batch_id: Option<String>,
    pub sender_batch_id: Option<String>,
    pub sender_item_id: Option<String>,
    /// The item's `transaction_status`, or what the event type implies.
    pub status: ItemStatus,
}

/// Reads a PayPal webhook body (after [`PayPalClient::verify_webhook`]).
pub fn parse_webhook(body: &[u8]) -> Result<PayPalWebhookEvent, PayPalError> {
    #[derive(Deserialize)]
    struct Raw {
        id: String,
        event_type: String,
        #[serde(default)]
        resource: Option<serde_json::Value>,
    }
    let raw: Raw = read_json(body)?;
    let resource = raw.resource.unwrap_or_default();
    if let Some(suffix) = raw.event_type.strip_prefix("PAYMENT.PAYOUTS-ITEM.") {
        let item: RawItem = serde_json::from_value(resource.clone())
            .map_err(|e| PayPalError::InvalidResponse(format!("payout item event: {e}")))?;
        let status = match item.transaction_status.as_deref() {
            Some(status) => ItemStatus::parse(status),
            None => item_status_for_event(suffix),
        };
        let mut item = item.into_item();
        item.status = status;
        return Ok(PayPalWebhookEvent::PayoutItem(PayoutItemEvent {
            event_id: raw.id,
            event_type: raw.event_type,
            payout_item_id: item.payout_item_id,
            payout_batch_id: item.payout_batch_id,
            sender_batch_id: item.sender_batch_id,
            sender_item_id: item.sender_item_id,
            status: item.status,
        }));
    }
    if raw.event_type.starts_with("PAYMENT.PAYOUTSBATCH.") {
        #[derive(Deserialize)]
        struct RawBatchResource {
            batch_header: RawBatchHeader,
        }
        let batch: RawBatchResource = serde_json::from_value(resource)
            .map_err(|e| PayPalError::InvalidResponse(format!("payout batch event: {e}")))?;
        return Ok(PayPalWebhookEvent::PayoutBatch {
            event_id: raw.id,
            event_type: raw.event_type,
            payout_batch_id: batch.batch_header.payout_batch_id,
            sender_batch_id: batch
                .batch_header
                .sender_batch_header
                .and_then(|header| header.sender_batch_id),
            status: BatchStatus::parse(&batch.batch_header.batch_status),
        });
    }
    Ok(PayPalWebhookEvent::Other {
        event_id: raw.id,
        event_type: raw.event_type,
    })
}

/// The status an item event implies when its resource carries none.
fn item_status_for_event(suffix: &str) -> ItemStatus {
    match suffix {
        "SUCCEEDED" => ItemStatus::Success,
        "FAILED" | "DENIED" => ItemStatus::Failed,
        "UNCLAIMED" => ItemStatus::Unclaimed,
        // Cancelling an unclaimed item returns the money (PayPal: "the only
        // possible transaction_status value is RETURNED").
        "RETURNED" | "CANCELED" => ItemStatus::Returned,
        "BLOCKED" => ItemStatus::Blocked,
        "REFUNDED" => ItemStatus::Refunded,
        "HELD" => ItemStatus::OnHold,
        other => ItemStatus::Other(other.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_formatted_with_the_decimals_paypal_wants() {
        assert_eq!(format_amount(12_345, "USD").unwrap(), "123.45");
        assert_eq!(format_amount(5, "EUR").unwrap(), "0.05");
        assert_eq!(format_amount(100, "GBP").unwrap(), "1.00");
        assert_eq!(format_amount(500, "JPY").unwrap(), "500");
        assert_eq!(format_amount(150_000, "HUF").unwrap(), "1500");
        assert_eq!(
            format_amount(9_007_199_254_740_993, "USD").unwrap(),
            "90071992547409.93"
        );
    }

    #[test]
    fn amounts_paypal_cannot_take_are_refused_before_sending() {
        for (amount, currency) in [
            (0, "USD"),
            (-5, "USD"),
            (150_050, "HUF"),
            (100, "XYZ"),
            (100, "usd"),
        ] {
            assert!(
                matches!(
                    format_amount(amount, currency),
                    Err(PayPalError::InvalidInput(_))
                ),
                "{amount} {currency}"
            );
        }
    }

    #[test]
    fn paypal_amounts_read_back_to_minor_units() {
        assert_eq!(parse_amount("123.45", "USD"), Some(12_345));
        assert_eq!(parse_amount("1.0", "USD"), Some(100));
        assert_eq!(parse_amount("1", "USD"), Some(100));
        assert_eq!(parse_amount("1500", "HUF"), Some(150_000));
        assert_eq!(parse_amount("500", "JPY"), Some(500));
        assert_eq!(parse_amount("1.005", "USD"), None);
        assert_eq!(parse_amount("1.5", "JPY"), None);
        assert_eq!(parse_amount("-1", "USD"), None);
        assert_eq!(parse_amount("", "USD"), None);
        assert_eq!(parse_amount("1e3", "USD"), None);
    }

    #[test]
    fn every_documented_item_status_has_a_settlement() {
        use Settlement::*;
        for (status, settlement) in [
            ("SUCCESS", Paid),
            ("FAILED", NotPaid),
            ("RETURNED", NotPaid),
            ("BLOCKED", NotPaid),
            ("REFUNDED", NotPaid),
            ("REVERSED", NotPaid),
            ("PENDING", InFlight),
            ("UNCLAIMED", InFlight),
            ("ONHOLD", InFlight),
            ("SOMETHING_NEW", InFlight),
        ] {
            let parsed = ItemStatus::parse(status);
            assert_eq!(parsed.settlement(), settlement, "{status}");
            assert_eq!(parsed.as_str(), status);
        }
    }

    #[test]
    fn the_documented_duplicate_answer_is_recognised_with_its_link() {
        let body = br#"{
            "name": "USER_BUSINESS_ERROR",
            "message": "User business error.",
            "debug_id": "f05063556a338",
            "information_link": "https://developer.paypal.com/docs/api/payments.payouts-batch/#errors",
            "details": [{
                "field": "SENDER_BATCH_ID",
                "location": "body",
                "issue": "Batch with given sender_batch_id already exists",
                "link": [{
                    "href": "https://api.sandbox.paypal.com/v1/payments/payouts/CR9VS2K4X4846",
                    "rel": "self",
                    "method": "GET"
                }]
            }],
            "links": []
        }"#;
        let error = ErrorBody::read(body);
        assert!(error.is_duplicate_batch());
        assert_eq!(error.linked_batch_id().as_deref(), Some("CR9VS2K4X4846"));
        let other = ErrorBody::read(
            br#"{"name":"VALIDATION_ERROR","details":[{"field":"items[0].amount","issue":"required"}]}"#,
        );
        assert!(!other.is_duplicate_batch());
        assert_eq!(other.linked_batch_id(), None);
    }

    #[test]
    fn errors_split_into_retryable_and_final() {
        let unavailable = ErrorBody::read(br#"{"name":"INTERNAL_SERVER_ERROR","debug_id":"d1"}"#)
            .into_error(StatusCode::INTERNAL_SERVER_ERROR);
        assert!(unavailable.is_retryable());
        assert_eq!(unavailable.name(), Some("INTERNAL_SERVER_ERROR"));
        assert!(
            ErrorBody::read(b"<html>")
                .into_error(StatusCode::BAD_GATEWAY)
                .is_retryable()
        );
        assert!(
            ErrorBody::read(br#"{"name":"RATE_LIMIT_REACHED"}"#)
                .into_error(StatusCode::TOO_MANY_REQUESTS)
                .is_retryable()
        );
        let refused = ErrorBody::read(
            br#"{"name":"INSUFFICIENT_FUNDS","message":"Sender does not have sufficient funds."}"#,
        )
        .into_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(!refused.is_retryable());
        assert_eq!(refused.name(), Some("INSUFFICIENT_FUNDS"));
        assert!(refused.to_string().contains("sufficient funds"));
        assert!(PayPalError::Timeout.is_retryable());
        assert!(PayPalError::Connection("reset".into()).is_retryable());
        assert!(!PayPalError::InvalidInput("x".into()).is_retryable());
        assert!(
            !PayPalError::DuplicateWithoutLink {
                sender_batch_id: "w1".into()
            }
            .is_retryable()
        );
    }

    #[test]
    fn ids_that_could_steer_the_path_are_refused() {
        assert!(check_id("CR9VS2K4X4846").is_ok());
        for id in ["", "../oauth2/token", "A?B", "A/B", "A B"] {
            assert!(check_id(id).is_err(), "{id}");
        }
    }

    #[test]
    fn item_webhooks_give_the_item_the_batch_and_the_status() {
        let body = br#"{
            "id": "WH-0G2756385H040842W-5Y612302CV158622M",
            "create_time": "2024-03-01T10:00:00Z",
            "resource_type": "payouts_item",
            "event_type": "PAYMENT.PAYOUTS-ITEM.UNCLAIMED",
            "summary": "A payout item is unclaimed",
            "resource": {
                "payout_item_id": "8AELMXH8UB2P8",
                "transaction_id": "0C413693MN970190K",
                "transaction_status": "UNCLAIMED",
                "payout_batch_id": "Q8KVJG9TZTNN4",
                "sender_batch_id": "wd_42",
                "payout_item_fee": {"currency": "USD", "value": "0.25"},
                "payout_item": {
                    "recipient_type": "EMAIL",
                    "amount": {"value": "9.87", "currency": "USD"},
                    "receiver": "partner@example.com",
                    "sender_item_id": "wd_42"
                },
                "time_processed": "2024-03-01T10:00:00Z",
                "links": []
            },
            "links": []
        }"#;
        let PayPalWebhookEvent::PayoutItem(event) = parse_webhook(body).unwrap() else {
            panic!()
        };
        assert_eq!(event.payout_item_id, "8AELMXH8UB2P8");
        assert_eq!(event.sender_batch_id.as_deref(), Some("wd_42"));
        assert_eq!(event.sender_item_id.as_deref(), Some("wd_42"));
        assert_eq!(event.status, ItemStatus::Unclaimed);
    }

    #[test]
    fn an_item_webhook_without_a_status_takes_it_from_the_event_type() {
        let body = br#"{"id":"WH-1","event_type":"PAYMENT.PAYOUTS-ITEM.SUCCEEDED",
            "resource":{"payout_item_id":"ITEM1","payout_batch_id":"B1"}}"#;
        let PayPalWebhookEvent::PayoutItem(event) = parse_webhook(body).unwrap() else {
            panic!()
        };
        assert_eq!(event.status, ItemStatus::Success);
    }

    #[test]
    fn batch_and_other_webhooks_are_told_apart() {
        let batch = br#"{"id":"WH-2","event_type":"PAYMENT.PAYOUTSBATCH.SUCCESS",
            "resource":{"batch_header":{"payout_batch_id":"B1","batch_status":"SUCCESS",
            "sender_batch_header":{"sender_batch_id":"wd_1"}}}}"#;
        assert_eq!(
            parse_webhook(batch).unwrap(),
            PayPalWebhookEvent::PayoutBatch {
                event_id: "WH-2".into(),
                event_type: "PAYMENT.PAYOUTSBATCH.SUCCESS".into(),
                payout_batch_id: "B1".into(),
                sender_batch_id: Some("wd_1".into()),
                status: BatchStatus::Success,
            }
        );
        let other = br#"{"id":"WH-3","event_type":"PAYMENT.CAPTURE.COMPLETED","resource":{}}"#;
        assert!(matches!(
            parse_webhook(other).unwrap(),
            PayPalWebhookEvent::Other { .. }
        ));
        assert!(parse_webhook(b"{}").is_err());
    }

    #[test]
    fn debug_output_shows_no_secret_and_no_recipient() {
        let client = PayPalClient::new(PayPalConfig::new(
            SANDBOX_BASE_URL,
            "client-id",
            Secret::new("very-secret"),
        ))
        .unwrap();
        let printed = format!("{client:?}");
        assert!(!printed.contains("very-secret"), "{printed}");
        let item = PayoutItemRequest {
            receiver_email: "partner@example.com".into(),
            amount_minor: 100,
            currency: "USD".into(),
            sender_item_id: "wd_1".into(),
            note: None,
        };
        assert!(!format!("{item:?}").contains("partner@"));
    }

    #[test]
    fn the_base_url_must_be_http_or_https() {
        for base in ["ftp://example.com", "not a url", "file:///tmp"] {
            assert!(
                PayPalClient::new(PayPalConfig::new(base, "id", Secret::new("s"))).is_err(),
                "{base}"
            );
        }
        let client = PayPalClient::new(PayPalConfig::new(
            "http://127.0.0.1:9/",
            "id",
            Secret::new("s"),
        ))
        .unwrap();
        assert_eq!(client.base_url(), "http://127.0.0.1:9");
    }
}
