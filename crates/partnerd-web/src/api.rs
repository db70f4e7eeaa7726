//! The integration API (`/api/v1`): JSON in and out, bearer API keys.
//!
//! Paths, fields and statuses are fixed in CONTRACT.md. Every body is parsed
//! strictly (unknown fields refused) and validated before anything is written.

use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use partnerd_app::App;
use partnerd_domain::FieldErrors;
use partnerd_domain::policy::{Action, Actor, authorize};
use serde_json::json;

/// The API's one error type: `{"error": …}` plus `fields` for validation.
#[derive(Debug)]
pub enum ApiError {
    Unauthorized,
    NotFound,
    Invalid(FieldErrors),
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(json!({ "error": "a valid API key is required: Authorization: Bearer KEY" })),
            )
                .into_response(),
            Self::NotFound => {
                (StatusCode::NOT_FOUND, Json(json!({ "error": "not found" }))).into_response()
            }
            Self::Invalid(fields) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "error": "validation failed", "fields": fields.into_map() })),
            )
                .into_response(),
            Self::Internal(message) => {
                tracing::error!(error = %message, "API request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({ "error": "internal error" })),
                )
                    .into_response()
            }
        }
    }
}

/// The key id of the caller, put in the request's extensions by [`require_key`].
#[derive(Debug, Clone, Copy)]
pub struct ApiCaller {
    pub key_id: i64,
}

/// Looks the bearer key up on every request, so a key created a moment ago
/// by `partnerd api-key create` works at once.
pub async fn require_key(State(app): State<App>, mut request: Request, next: Next) -> Response {
    let key = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.get(..7)
                .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                .map(|_| &v[7..])
        })
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200);
    let actor = match key {
        None => Actor::Anonymous,
        Some(key) => match app.api_key_id(key).await {
            Ok(Some(key_id)) => Actor::ApiKey { key_id },
            Ok(None) => Actor::Anonymous,
            Err(err) => return ApiError::Internal(err.to_string()).into_response(),
        },
    };
    if authorize(actor, Action::UseApi).is_err() {
        return ApiError::Unauthorized.into_response();
    }
    if let Actor::ApiKey { key_id } = actor {
        request.extensions_mut().insert(ApiCaller { key_id });
    }
    next.run(request).await
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

impl From<partnerd_app::AppError> for ApiError {
    fn from(err: partnerd_app::AppError) -> Self {
        use partnerd_app::AppError;
        match err {
            AppError::Invalid(fields) => Self::Invalid(fields),
            AppError::NotFound => Self::NotFound,
            AppError::Conflict(message) => Self::Invalid(FieldErrors::single("request", message)),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// A JSON body parsed strictly: a syntax error, a missing or unknown field or a
/// wrong type answers 422 naming the field.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|_| {
                ApiError::Invalid(FieldErrors::single("body", "is too large or unreadable"))
            })?;
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize(&mut deserializer) {
            Ok(value) => Ok(Self(value)),
            Err(err) => {
                let path = err.path().to_string();
                let inner = err.into_inner();
                let message = inner.to_string();
                let field = if let Some(rest) = message.strip_prefix("missing field `") {
                    rest.split('`').next().unwrap_or("body").to_owned()
                } else if let Some(rest) = message.strip_prefix("unknown field `") {
                    rest.split('`').next().unwrap_or("body").to_owned()
                } else if path == "." || path == "?" || path.is_empty() {
                    "body".to_owned()
                } else {
                    path
                };
                let reason = if message.starts_with("missing field") {
                    "is required".to_owned()
                } else if message.starts_with("unknown field") {
                    "is not a field of this request".to_owned()
                } else {
                    // serde's text says what was expected; the position is of no use here.
                    message
                        .split(" at line ")
                        .next()
                        .unwrap_or(&message)
                        .to_owned()
                };
                Err(ApiError::Invalid(FieldErrors::single(&field, reason)))
            }
        }
    }
}

/// A partner by public id, for `/partners/{id}/…`; removed partners are gone.
async fn partner_by_id(app: &App, public_id: &str) -> Result<partnerd_store::Partner, ApiError> {
    if partnerd_domain::PublicPartnerId::parse(public_id).is_none() {
        return Err(ApiError::NotFound);
    }
    match app.store.find_partner_by_public_id(public_id).await {
        Ok(Some(p)) if !p.is_removed() => Ok(p),
        Ok(_) => Err(ApiError::NotFound),
        Err(err) => Err(ApiError::Internal(err.to_string())),
    }
}

fn actor(caller: &ApiCaller) -> String {
    format!("api-key:{}", caller.key_id)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPartnerBody {
    email: String,
    name: String,
}

/// `POST /partners` → `201 {id, referral_link}` (R-ACC-1, R-AFF-1).
pub async fn create_partner(
    State(app): State<App>,
    Extension(caller): Extension<ApiCaller>,
    ApiJson(body): ApiJson<NewPartnerBody>,
) -> Result<Response, ApiError> {
    let partner = app
        .create_partner_for_api(&actor(&caller), &body.email, &body.name)
        .await?;
    let link = app.referral_link(&partner.public_id, None);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": partner.public_id, "referral_link": link })),
    )
        .into_response())
}

/// `POST /partners/{id}/campaigns` → `201 {id, slug, link}` (R-AFF-2, R-AFF-5).
pub async fn create_campaign(
    State(app): State<App>,
    Extension(caller): Extension<ApiCaller>,
    Path(public_id): Path<String>,
    ApiJson(body): ApiJson<partnerd_app::tracking::CampaignInput>,
) -> Result<Response, ApiError> {
    let partner = partner_by_id(&app, &public_id).await?;
    let campaign = app
        .create_campaign(&actor(&caller), partner.id, &body)
        .await?;
    let link = app.referral_link(&partner.public_id, Some(&campaign));
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": campaign.id, "slug": campaign.slug, "link": link })),
    )
        .into_response())
}

async fn signup_json(
    app: &App,
    signup: &partnerd_store::Signup,
) -> Result<serde_json::Value, ApiError> {
    let internal = |e: partnerd_store::StoreError| ApiError::Internal(e.to_string());
    let partner = match signup.partner_id.or(signup.referred_partner_id) {
        Some(id) => Some(app.store.get_partner(id).await.map_err(internal)?),
        None => None,
    };
    let campaign = match (signup.campaign_id, &partner) {
        (Some(id), Some(p)) => app
            .store
            .list_campaigns(p.id)
            .await
            .map_err(internal)?
            .into_iter()
            .find(|c| c.id == id),
        _ => None,
    };
    let credited = signup.partner_id.is_some();
    Ok(json!({
        "customer_id": signup.customer_id,
        "partner_id": if credited { partner.as_ref().map(|p| p.public_id.clone()) } else { None },
        "referred_partner_id": partner.as_ref().map(|p| p.public_id.clone()),
        "credited": credited,
        "campaign": campaign.as_ref().map(|c| c.name.clone()),
        "utm_campaign": signup.utm_campaign,
        "utm_term": signup.utm_term,
        "trial_days": signup.trial_days,
        "discount_percent": signup.discount_percent,
        "reason": signup.reason,
        "review": signup.review != 0,
    }))
}

/// `POST /signups` (R-AFF-4, R-AFF-6, R-AFF-7): `201` when recorded, `200`
/// with the same answer on a replay of the same `customer_id`.
pub async fn record_signup(
    State(app): State<App>,
    ApiJson(body): ApiJson<partnerd_app::tracking::SignupReport>,
) -> Result<Response, ApiError> {
    let (signup, created) = app.record_signup(&body).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(signup_json(&app, &signup).await?)).into_response())
}

fn explain(reason: &str) -> &'static str {
    match reason {
        "last_click" => {
            "Credited to the partner whose link was clicked last, within the cookie window."
        }
        "partner_id" => "Credited to the partner whose id the vendor passed.",
        "expired" => "Not credited: the last click was older than the cookie window.",
        "self_referral" => {
            "Not credited: the partner referred themselves (own email or own signed-in browser)."
        }
        "removed_partner" => "Not credited: the partner was removed from the program.",
        "bot" => "Not credited: the click came from a crawler or link preview.",
        "no_click" => "Not credited: no referral was given.",
        "invalid_token" => {
            "Not credited: the referral token was malformed or not signed by this program."
        }
        "unknown_partner" => "Not credited: the referral names no partner.",
        _ => "",
    }
}

/// `GET /customers/{customer_id}/attribution`: which partner and click, or why not.
pub async fn attribution(
    State(app): State<App>,
    Path(customer_id): Path<String>,
) -> Result<Response, ApiError> {
    let signup = app
        .store
        .find_signup(&customer_id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or(ApiError::NotFound)?;
    let mut body = signup_json(&app, &signup).await?;
    let click = match signup.click_id {
        Some(id) => app
            .store
            .get_click(id)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?,
        None => None,
    };
    body["click"] = click.map_or(
        serde_json::Value::Null,
        |c| json!({ "id": c.id, "at": c.at, "agent": c.agent }),
    );
    body["explanation"] = json!(explain(&signup.reason));
    body["recorded_at"] = json!(signup.created_at);
    Ok(Json(body).into_response())
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /partners/{id}/report?from=&to=` (R-REP-2), dates in the partner's time zone.
pub async fn report(
    State(app): State<App>,
    Path(public_id): Path<String>,
    query: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::Invalid(FieldErrors::single("query", e.body_text())))?;
    let partner = partner_by_id(&app, &public_id).await?;
    let report = app
        .report(
            Some(partner.id),
            &partner.time_zone,
            query.from.as_deref(),
            query.to.as_deref(),
        )
        .await?;
    Ok(Json(report).into_response())
}

/// A billing event's answer: the same body for the first delivery and every
/// replay (CONTRACT.md: "replay of the same `id`: same answer").
async fn billing_json(
    app: &App,
    id: &str,
    answer: &partnerd_store::money::BillingAnswer,
) -> Result<serde_json::Value, ApiError> {
    let partner = match answer.partner_id {
        Some(partner_id) => Some(
            app.store
                .get_partner(partner_id)
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?
                .public_id,
        ),
        None => None,
    };
    Ok(json!({
        "id": id,
        "payment_id": answer.payment_id,
        "subscription_id": answer.subscription_id,
        "partner_id": partner,
        "currency": answer.currency.map(|c| c.code()),
        "commission": answer.commission,
        "booked": answer.booked,
    }))
}

async fn billing_response(
    app: &App,
    id: &str,
    status: StatusCode,
    answer: &partnerd_store::money::BillingAnswer,
) -> Result<Response, ApiError> {
    Ok((status, Json(billing_json(app, id, answer).await?)).into_response())
}

/// `POST /payments` (R-COM-1) → `201`; a replay of the same `id` gets the same
/// answer and books nothing.
pub async fn record_payment(
    State(app): State<App>,
    ApiJson(body): ApiJson<partnerd_app::money::PaymentInput>,
) -> Result<Response, ApiError> {
    let (answer, _replayed) = app.record_api_payment(&body).await?;
    billing_response(&app, body.id.trim(), StatusCode::CREATED, &answer).await
}

/// `POST /refunds` (R-COM-3) → `201`; idempotent on `id`.
pub async fn record_refund(
    State(app): State<App>,
    ApiJson(body): ApiJson<partnerd_app::money::ReversalInput>,
) -> Result<Response, ApiError> {
    let (answer, _replayed) = app.record_api_reversal(&body, false).await?;
    billing_response(&app, body.id.trim(), StatusCode::CREATED, &answer).await
}

/// `POST /chargebacks` (R-COM-3) → `201`; idempotent on `id`.
pub async fn record_chargeback(
    State(app): State<App>,
    ApiJson(body): ApiJson<partnerd_app::money::ReversalInput>,
) -> Result<Response, ApiError> {
    let (answer, _replayed) = app.record_api_reversal(&body, true).await?;
    billing_response(&app, body.id.trim(), StatusCode::CREATED, &answer).await
}

/// `POST /subscriptions/{id}/cancel` → `200`; books nothing (commission
/// follows payments, and none come after a cancellation).
pub async fn cancel_subscription(
    State(app): State<App>,
    Path(subscription_id): Path<String>,
) -> Result<Response, ApiError> {
    let (answer, _replayed) = app.record_api_cancellation(&subscription_id).await?;
    billing_response(&app, subscription_id.trim(), StatusCode::OK, &answer).await
}

/// `GET /partners/{id}/balance`: one row per currency the partner has money in.
pub async fn balance(
    State(app): State<App>,
    Path(public_id): Path<String>,
) -> Result<Response, ApiError> {
    let partner = partner_by_id(&app, &public_id).await?;
    let rows = app.balances(partner.id).await?;
    let balances: Vec<_> = rows
        .iter()
        .map(|row| {
            let b = &row.balances;
            json!({
                "currency": row.currency.code(),
                "held": b.held,
                "on_review": b.on_review,
                "available": b.available,
                "in_flight": b.in_flight,
                "paid": b.paid,
                "clawback": b.clawback,
                "earned": b.earned,
            })
        })
        .collect();
    Ok(Json(json!({ "partner_id": partner.public_id, "balances": balances })).into_response())
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    limit: Option<i64>,
    offset: Option<i64>,
}

/// `GET /partners/{id}/commissions?limit=&offset=`: per payment, newest first.
pub async fn commissions(
    State(app): State<App>,
    Path(public_id): Path<String>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::Invalid(FieldErrors::single("query", e.body_text())))?;
    let mut errors = FieldErrors::new();
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        errors.add("limit", "must be between 1 and 1000");
    }
    let offset = query.offset.unwrap_or(0);
    if offset < 0 {
        errors.add("offset", "must not be negative");
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let partner = partner_by_id(&app, &public_id).await?;
    let rows = app.commissions(partner.id, limit, offset).await?;
    let commissions: Vec<_> = rows
        .iter()
        .map(|c| {
            json!({
                "payment_id": c.payment_id,
                "customer_id": c.customer_id,
                "currency": c.currency.code(),
                "amount": c.amount,
                "refunded": c.refunded,
                "rate": c.rate,
                "commission": c.commission,
                "held": c.held,
                "on_review": c.on_review,
                "review": c.review,
                "paid_at": partnerd_app::money::rfc3339(c.paid_at),
                "release_at": c.release_at.map(partnerd_app::money::rfc3339),
            })
        })
        .collect();
    Ok(
        Json(json!({ "partner_id": partner.public_id, "commissions": commissions }))
            .into_response(),
    )
}

/// `GET /partners/{id}/status` (R-ACC-4).
pub async fn status(
    State(app): State<App>,
    Path(public_id): Path<String>,
) -> Result<Response, ApiError> {
    let partner = partner_by_id(&app, &public_id).await?;
    let status = app.partner_status(partner.id).await?;
    Ok(Json(json!({
        "partner_id": partner.public_id,
        "active": status.active,
        "new_customers_in_window": status.new_customers_in_window,
        "window_months": status.window_months,
        "required": status.required,
        "missing": status.missing,
        "free_licence": status.free_licence,
    }))
    .into_response())
}

fn body(schema: serde_json::Value) -> serde_json::Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

fn id_param(name: &str) -> serde_json::Value {
    json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } })
}

/// The success answer plus the error answers every call shares.
fn responses(status: &str, description: &str, schema: serde_json::Value) -> serde_json::Value {
    json!({
        status: { "description": description, "content": { "application/json": { "schema": schema } } },
        "401": { "$ref": "#/components/responses/Unauthorized" },
        "404": { "description": "No such partner or customer" },
        "422": { "$ref": "#/components/responses/Invalid" }
    })
}

/// The OpenAPI 3.1 document of the API; public.
pub async fn openapi(State(app): State<App>) -> Response {
    let mut document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "partnerd integration API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "JSON API for the vendor's systems. Money is an integer in minor units plus an ISO 4217 currency. A 2xx answer means the change is committed."
        },
        "servers": [{ "url": format!("{}/api/v1", app.config.public_url()) }],
        "security": [{ "apiKey": [] }],
        "components": {
            "securitySchemes": { "apiKey": { "type": "http", "scheme": "bearer", "description": "Created with `partnerd api-key create --name NAME`." } },
            "schemas": {
                "Attribution": { "type": "object", "properties": {
                    "customer_id": { "type": "string" },
                    "partner_id": { "type": ["string", "null"], "description": "The credited partner; null when not credited" },
                    "referred_partner_id": { "type": ["string", "null"] },
                    "credited": { "type": "boolean" },
                    "campaign": { "type": ["string", "null"] },
                    "utm_campaign": { "type": ["string", "null"] }, "utm_term": { "type": ["string", "null"] },
                    "trial_days": { "type": ["integer", "null"] }, "discount_percent": { "type": ["integer", "null"] },
                    "reason": { "type": "string", "enum": ["last_click", "partner_id", "expired", "self_referral", "removed_partner", "bot", "no_click", "invalid_token", "unknown_partner"] },
                    "review": { "type": "boolean", "description": "Credited but shares the partner's network: held for review (R-AFF-7)" } } },
                "ReportRow": { "type": "object", "properties": {
                    "utm_campaign": { "type": "string" }, "utm_term": { "type": "string" },
                    "clicks": { "type": "integer" }, "bot_clicks": { "type": "integer" }, "unique_visitors": { "type": "integer" },
                    "signups": { "type": "integer" }, "customers": { "type": "integer" },
                    "revenue": { "type": "integer", "description": "Minor units" }, "commission": { "type": "integer", "description": "Minor units" },
                    "currency": { "type": "string" } } },
                "Booking": { "type": "object", "properties": {
                    "id": { "type": "string" }, "payment_id": { "type": ["string", "null"] },
                    "subscription_id": { "type": ["string", "null"] },
                    "partner_id": { "type": ["string", "null"], "description": "The credited partner; null when none" },
                    "currency": { "type": ["string", "null"] },
                    "commission": { "type": "integer", "description": "The payment's commission after this event: floor(rate x (paid - refunded))" },
                    "booked": { "type": "integer", "description": "What this event changed: positive earns, negative reverses" } } },
                "Reversal": { "type": "object", "additionalProperties": false, "required": ["id", "payment_id", "amount"], "properties": {
                    "id": { "type": "string", "maxLength": 200 }, "payment_id": { "type": "string", "maxLength": 200 },
                    "amount": { "type": "integer", "minimum": 1, "description": "Minor units" } } },
                "Error": { "type": "object", "required": ["error"], "properties": {
                    "error": { "type": "string" },
                    "fields": { "type": "object", "additionalProperties": { "type": "string" }, "description": "Each invalid field with its reason (422 only)." }
                } }
            },
            "responses": {
                "Unauthorized": { "description": "Missing or wrong API key", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                "Invalid": { "description": "Validation failed; nothing was written", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
            }
        },
        "paths": {
            "/partners": { "post": {
                "summary": "Create a partner (R-ACC-1); they get an email to set a password",
                "requestBody": body(json!({ "type": "object", "additionalProperties": false, "required": ["email", "name"],
                    "properties": { "email": { "type": "string", "format": "email" }, "name": { "type": "string", "maxLength": 100 } } })),
                "responses": responses("201", "The partner", json!({ "type": "object", "properties": {
                    "id": { "type": "string", "description": "Public partner id, as in /r/{id}" }, "referral_link": { "type": "string" } } }))
            } },
            "/partners/{id}/campaigns": { "post": {
                "summary": "Build a campaign link (R-AFF-2, R-AFF-5)",
                "parameters": [id_param("id")],
                "requestBody": body(json!({ "type": "object", "additionalProperties": false, "required": ["name"], "properties": {
                    "name": { "type": "string", "maxLength": 80 },
                    "trial_days": { "type": "integer", "description": "One of the program's trial options" },
                    "discount_percent": { "type": "integer", "description": "One of the program's discount options" },
                    "custom": { "type": "string", "maxLength": 100, "description": "The default utm_term" },
                    "landing_url": { "type": "string", "description": "On the program's allowed landing domains" } } })),
                "responses": responses("201", "The campaign", json!({ "type": "object", "properties": {
                    "id": { "type": "integer" }, "slug": { "type": "string" }, "link": { "type": "string" } } }))
            } },
            "/signups": { "post": {
                "summary": "Report a sign-up; returns its attribution (R-AFF-4, R-AFF-6, R-AFF-7). Idempotent on customer_id: 201 first, 200 on replays",
                "requestBody": body(json!({ "type": "object", "additionalProperties": false, "required": ["customer_id"], "properties": {
                    "customer_id": { "type": "string", "maxLength": 200 }, "email": { "type": "string", "format": "email" },
                    "referral": { "type": "string", "description": "The referral token, or a bare partner id" } } })),
                "responses": responses("201", "The attribution", json!({ "$ref": "#/components/schemas/Attribution" }))
            } },
            "/customers/{customer_id}/attribution": { "get": {
                "summary": "Which partner and click a customer is credited to, or why not",
                "parameters": [id_param("customer_id")],
                "responses": responses("200", "The attribution", json!({ "$ref": "#/components/schemas/Attribution" }))
            } },
            "/partners/{id}/report": { "get": {
                "summary": "The UTM performance report (R-REP-2), dates in the partner's time zone; the last 30 days by default",
                "parameters": [id_param("id"),
                    { "name": "from", "in": "query", "schema": { "type": "string", "format": "date" } },
                    { "name": "to", "in": "query", "schema": { "type": "string", "format": "date" } }],
                "responses": responses("200", "The report", json!({ "type": "object", "properties": {
                    "rows": { "type": "array", "items": { "$ref": "#/components/schemas/ReportRow" } },
                    "totals": { "$ref": "#/components/schemas/ReportRow" },
                    "days": { "type": "array", "items": { "type": "object" } } } }))
            } }
        }
    });
    for (path, item) in money_paths() {
        document["paths"][path] = item;
    }
    Json(document).into_response()
}

/// The money calls' paths, kept apart from [`openapi`]'s one `json!` so the
/// macro stays within the compiler's recursion limit.
fn money_paths() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "/payments",
            json!({ "post": {
                "summary": "Report a payment of a customer (R-COM-1): books its commission, held for hold_days (R-COM-4). Idempotent on id: a replay answers the same and books nothing",
                "requestBody": body(json!({ "type": "object", "additionalProperties": false, "required": ["id", "customer_id", "amount", "currency"], "properties": {
                    "id": { "type": "string", "maxLength": 200, "description": "Your payment (invoice) id" },
                    "customer_id": { "type": "string", "maxLength": 200, "description": "As in POST /signups" },
                    "amount": { "type": "integer", "minimum": 0, "description": "Minor units actually paid" },
                    "currency": { "type": "string", "description": "ISO 4217, e.g. USD" },
                    "paid_at": { "type": "string", "format": "date-time", "description": "Default: now" },
                    "subscription_id": { "type": "string", "maxLength": 200 } } })),
                "responses": responses("201", "The booking", json!({ "$ref": "#/components/schemas/Booking" }))
            } }),
        ),
        (
            "/refunds",
            json!({ "post": {
                "summary": "Report a refund of (part of) a payment (R-COM-3); it may arrive before the payment. Idempotent on id",
                "requestBody": body(json!({ "$ref": "#/components/schemas/Reversal" })),
                "responses": responses("201", "The booking", json!({ "$ref": "#/components/schemas/Booking" }))
            } }),
        ),
        (
            "/chargebacks",
            json!({ "post": {
                "summary": "Report a chargeback of (part of) a payment (R-COM-3). Idempotent on id",
                "requestBody": body(json!({ "$ref": "#/components/schemas/Reversal" })),
                "responses": responses("201", "The booking", json!({ "$ref": "#/components/schemas/Booking" }))
            } }),
        ),
        (
            "/subscriptions/{id}/cancel",
            json!({ "post": {
                "summary": "Report that a subscription ended; books nothing. Idempotent",
                "parameters": [id_param("id")],
                "responses": responses("200", "Recorded", json!({ "$ref": "#/components/schemas/Booking" }))
            } }),
        ),
        (
            "/partners/{id}/balance",
            json!({ "get": {
                "summary": "A partner's money per currency, in minor units",
                "parameters": [id_param("id")],
                "responses": responses("200", "The balances", json!({ "type": "object", "properties": {
                    "partner_id": { "type": "string" },
                    "balances": { "type": "array", "items": { "type": "object", "properties": {
                        "currency": { "type": "string" },
                        "held": { "type": "integer", "description": "In its hold period (R-COM-4)" },
                        "on_review": { "type": "integer", "description": "Waiting for a person (R-AFF-7, R-COM-4)" },
                        "available": { "type": "integer", "description": "Withdrawable (R-PAY-1)" },
                        "in_flight": { "type": "integer", "description": "Withdrawn, on its way" },
                        "paid": { "type": "integer" },
                        "clawback": { "type": "integer", "description": "Owed after a reversal of money already paid (R-COM-3)" },
                        "earned": { "type": "integer", "description": "Commission earned, net of reversals" } } } } } }))
            } }),
        ),
        (
            "/partners/{id}/commissions",
            json!({ "get": {
                "summary": "A partner's commission per payment, newest first",
                "parameters": [id_param("id"),
                    { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } },
                    { "name": "offset", "in": "query", "schema": { "type": "integer", "minimum": 0, "default": 0 } }],
                "responses": responses("200", "The commissions", json!({ "type": "object", "properties": {
                    "partner_id": { "type": "string" },
                    "commissions": { "type": "array", "items": { "type": "object", "properties": {
                        "payment_id": { "type": "string" }, "customer_id": { "type": ["string", "null"] },
                        "currency": { "type": "string" }, "amount": { "type": "integer" }, "refunded": { "type": "integer" },
                        "rate": { "type": "integer", "description": "Percent, fixed when the customer was credited" },
                        "commission": { "type": "integer" }, "held": { "type": "integer" }, "on_review": { "type": "integer" },
                        "review": { "type": "string", "enum": ["not_needed", "pending", "approved", "rejected"] },
                        "paid_at": { "type": "string", "format": "date-time" },
                        "release_at": { "type": ["string", "null"], "format": "date-time" } } } } } }))
            } }),
        ),
        (
            "/partners/{id}/status",
            json!({ "get": {
                "summary": "Whether the partner is active (R-ACC-4) and what is missing",
                "parameters": [id_param("id")],
                "responses": responses("200", "The status", json!({ "type": "object", "properties": {
                    "partner_id": { "type": "string" }, "active": { "type": "boolean" },
                    "new_customers_in_window": { "type": "integer" }, "window_months": { "type": "integer" },
                    "required": { "type": "integer" }, "missing": { "type": "integer" },
                    "free_licence": { "type": "boolean" } } }))
            } }),
        ),
    ]
}
