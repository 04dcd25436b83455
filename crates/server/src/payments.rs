//! Payments over HTTP: merchants (onboarded by operators, then signing their own requests),
//! orders, refunds, events and daily bills for merchants; paying orders, P2P transfers and
//! histories for users.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use services::ids::parse_prefixed;
use services::payments::{
    order_json, refund_json, Idempotency, NewMerchant, NewOrder, Outcome, PaymentError, VerifiedKey,
};
use services::signatures::{parse_authorization, verify_request, SignatureError};
use services::users::UserError;
use store::{Merchant, Order, OutletKind, P2pTransfer, Refund, User};

use crate::{unix_seconds, ApiError, AppState};

/// Largest body of a payment endpoint.
pub const BODY_BYTES_MAX: usize = 8 * 1024;
/// Largest page of a listing, and the default.
pub const PAGE_LIMIT_MAX: usize = 100;
pub const PAGE_LIMIT_DEFAULT: usize = 20;
/// Longest Authorization header looked at.
const AUTHORIZATION_BYTES_MAX: usize = 512;

/// Maps a payment refusal to its HTTP status and problem code.
pub fn payment_error(error: PaymentError) -> ApiError {
    let code = error.code();
    let status = match code {
        "invalid_request" | "self_transfer" | "invalid_phone" | "invalid_payment_password" => {
            StatusCode::BAD_REQUEST
        }
        "not_found" => StatusCode::NOT_FOUND,
        "invalid_signature" | "unauthenticated" | "wrong_payment_password" => {
            StatusCode::UNAUTHORIZED
        }
        "payment_locked" | "payment_code_locked" => StatusCode::LOCKED,
        "idempotency_conflict"
        | "out_trade_no_used"
        | "out_refund_no_used"
        | "already_grabbed"
        | "biller_code_used"
        | "order_invoiced"
        | "invoice_already_reimbursed"
        | "invoice_reimbursed"
        | "invoice_voided" => StatusCode::CONFLICT,
        "invalid_card" => StatusCode::BAD_REQUEST,
        "bank_timeout" | "biller_timeout" => StatusCode::GATEWAY_TIMEOUT,
        "unavailable" => {
            tracing::error!(%error, "a payment request could not commit");
            return ApiError::unavailable(
                "the ledger could not commit; retry with the same Idempotency-Key",
            );
        }
        "internal" => {
            tracing::error!(%error, "a payment request failed");
            return ApiError::unavailable("the request could not be completed; retry later");
        }
        // Business refusals: insufficient funds, limits, order states, amounts, references a
        // biller does not know.
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, code, error.to_string())
}

fn user_error(error: UserError) -> ApiError {
    payment_error(PaymentError::User(error))
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.len() > BODY_BYTES_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("The body is at most {BODY_BYTES_MAX} bytes."),
        ));
    }
    serde_json::from_slice(body).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("The body does not match this endpoint: {error}."),
        )
    })
}

pub(crate) fn id_in_path(prefix: &str, text: &str, what: &'static str) -> Result<u64, ApiError> {
    parse_prefixed(prefix, text).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("No such {what}: ids look like {prefix}123."),
        )
    })
}

pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Renders an outcome: done now, or the stored first answer of a retry.
pub(crate) fn outcome<T>(outcome: Outcome<T>, render: impl Fn(&T) -> (u16, String)) -> Response {
    let (status, body) = match outcome {
        Outcome::Done(value) => render(&value),
        Outcome::Replayed { status, body } => (status, body),
    };
    let mut response = json_response(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body);
    response.headers_mut().insert(
        "tally-idempotent-replay",
        header::HeaderValue::from_static("false"),
    );
    response
}

/// The `Idempotency-Key` of a request, bound to its method, path and body, and to the principal
/// `(kind, id)` that sent it (`("usr", 7)` is `usr_7`).
pub(crate) fn idempotency(
    headers: &HeaderMap,
    (kind, id): (&str, u64),
    method: &Method,
    uri: &Uri,
    body: &[u8],
) -> Result<Option<Idempotency>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Idempotency-Key: printable ASCII",
        )
    })?;
    let path = uri
        .path_and_query()
        .map_or(uri.path(), |path| path.as_str());
    Idempotency::new(
        format!("{kind}_{id}"),
        key,
        &[
            method.as_str().as_bytes(),
            b" ",
            path.as_bytes(),
            b"\n",
            body,
        ],
    )
    .map(Some)
    .map_err(payment_error)
}

/// The merchant behind a signed request.
pub(crate) async fn merchant_auth(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Arc<Merchant>, ApiError> {
    let invalid = |detail: &str| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            detail.to_owned(),
        )
    };
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .filter(|value| value.len() <= AUTHORIZATION_BYTES_MAX)
        .ok_or_else(|| {
            invalid("This endpoint needs a signed request: `Authorization: TALLY-HMAC-SHA256 key=…,timestamp=…,nonce=…,signature=…`.")
        })?;
    let signed = parse_authorization(value)
        .ok_or_else(|| invalid("The Authorization header is malformed."))?;
    let now = unix_seconds();
    let VerifiedKey { key, merchant, .. } =
        state
            .payments
            .active_key(signed.key_id, now)
            .map_err(|error| match error {
                PaymentError::InvalidSignature => invalid("The API key is unknown or revoked."),
                other => payment_error(other),
            })?;
    let path = uri
        .path_and_query()
        .map_or(uri.path(), |path| path.as_str());
    verify_request(
        &key.signing_key,
        &signed,
        method.as_str(),
        path,
        body,
        &state.nonces,
        now,
    )
    .map_err(|error| match error {
        SignatureError::Busy => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            error.to_string(),
        ),
        other => invalid(&other.to_string()),
    })?;
    if !state
        .payments
        .claim_nonce(signed.key_id, &signed.nonce, now)
        .map_err(payment_error)?
    {
        return Err(invalid(&SignatureError::Replayed.to_string()));
    }
    Ok(merchant)
}

/// The user behind a session token, and the token.
pub(crate) fn session_user(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(String, User), ApiError> {
    let token = crate::auth::bearer_token(headers)
        .ok_or_else(|| user_error(UserError::Unauthenticated))?
        .to_owned();
    let user = state
        .users
        .authenticate(&token, unix_seconds())
        .map_err(user_error)?;
    Ok((token, user))
}

pub(crate) fn rendered(value: Value, status: StatusCode) -> (u16, String) {
    (status.as_u16(), value.to_string())
}

fn merchant_json(merchant: &Merchant) -> Value {
    json!({
        "id": format!("mch_{}", merchant.id),
        "object": "merchant",
        "name": merchant.name,
        "mcc": merchant.mcc,
        "country": merchant.country,
        "city": merchant.city,
        "settlement_account": merchant.settlement_account,
        "fee_rate_bps": merchant.fee_rate_bps,
        "account_id": merchant.account_id.to_string(),
        "created_at": services::time::rfc3339_seconds(merchant.created_at),
    })
}

fn p2p_json(transfer: &P2pTransfer) -> Value {
    json!({
        "id": format!("p2p_{}", transfer.id),
        "object": "transfer",
        "from": format!("usr_{}", transfer.from_user_id),
        "to": format!("usr_{}", transfer.to_user_id),
        "amount": transfer.amount,
        "currency": transfer.currency,
        "note": transfer.note,
        "created_at": services::time::rfc3339_seconds(transfer.created_at),
    })
}

// ---- Operators -----------------------------------------------------------------------------

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MerchantRequest {
    name: String,
    mcc: String,
    country: String,
    city: String,
    settlement_account: String,
    fee_rate_bps: u32,
}

/// `POST /v1/merchants` (operator): onboards a merchant; the API secret and the notification
/// secret are in this answer only.
pub(crate) async fn onboard_merchant(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let credential =
        crate::auth::authenticate(&state, &headers, store::CredentialRole::Operator).await?;
    let request: MerchantRequest = parse(&body)?;
    let idempotency = idempotency(&headers, ("cred", credential.id), &method, &uri, &body)?;
    // What a retry gets: the merchant without its secrets, which are shown once.
    let render = |merchant: &Merchant| {
        let mut body = merchant_json(merchant);
        body["secrets"] =
            json!("shown once, in the first answer; create a new API key if they were lost");
        rendered(body, StatusCode::CREATED)
    };
    let outcome = state
        .payments
        .onboard_merchant(
            NewMerchant {
                name: request.name,
                mcc: request.mcc,
                country: request.country,
                city: request.city,
                settlement_account: request.settlement_account,
                fee_rate_bps: request.fee_rate_bps,
            },
            idempotency.as_ref(),
            &render,
            unix_seconds(),
        )
        .await
        .map_err(payment_error)?;
    let onboarded = match outcome {
        Outcome::Done(onboarded) => onboarded,
        Outcome::Replayed { status, body } => {
            return Ok(json_response(
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                body,
            ))
        }
    };
    let mut body = merchant_json(&onboarded.merchant);
    body["api_key"] = json!({
        "id": format!("mk_{}", onboarded.key.key.id),
        "secret": onboarded.key.secret,
    });
    body["notify_secret"] = json!(onboarded.notify_secret);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `POST /v1/merchants/{id}/keys` (operator): a new API key; the secret is shown once.
pub(crate) async fn create_key(
    State(state): State<Arc<AppState>>,
    Path(merchant): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    crate::auth::authenticate(&state, &headers, store::CredentialRole::Operator).await?;
    let merchant_id = id_in_path("mch_", &merchant, "merchant")?;
    let key = state
        .payments
        .create_merchant_key(merchant_id, unix_seconds())
        .await
        .map_err(payment_error)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": format!("mk_{}", key.key.id), "secret": key.secret})),
    )
        .into_response())
}

/// `DELETE /v1/merchants/{id}/keys/{key}` (operator): revokes a key.
pub(crate) async fn revoke_key(
    State(state): State<Arc<AppState>>,
    Path((merchant, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    crate::auth::authenticate(&state, &headers, store::CredentialRole::Operator).await?;
    let merchant_id = id_in_path("mch_", &merchant, "merchant")?;
    let key_id = id_in_path("mk_", &key, "key")?;
    let key = state
        .payments
        .handles()
        .records(|records| records.merchant_key(key_id))
        .map_err(|error| payment_error(error.into()))?
        .filter(|key| key.merchant_id == merchant_id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such key."))?;
    state
        .payments
        .revoke_merchant_key(key.id, unix_seconds())
        .await
        .map_err(payment_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TierRequest {
    tier: u8,
}

/// `PUT /v1/users/{id}/tier` (operator): sets a user's real-name tier (2 after a document
/// check).
pub(crate) async fn set_tier(
    State(state): State<Arc<AppState>>,
    Path(user): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    crate::auth::authenticate(&state, &headers, store::CredentialRole::Operator).await?;
    let user_id = id_in_path("usr_", &user, "user")?;
    let request: TierRequest = parse(&body)?;
    if request.tier > 2 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "tier: 0, 1 or 2",
        ));
    }
    state
        .payments
        .handles()
        .users(|users| {
            users.user(user_id)?.ok_or(PaymentError::NotFound("user"))?;
            users.set_tier(user_id, request.tier)?;
            Ok::<_, PaymentError>(())
        })
        .map_err(payment_error)?;
    state.users.forget_user(user_id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/admin/events` (operator): the newest notifications and their delivery attempts.
pub(crate) async fn recent_events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(page): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    crate::auth::authenticate(&state, &headers, store::CredentialRole::Operator).await?;
    let limit = page.limit()?;
    let events = state
        .payments
        .handles()
        .records(|records| records.events_recent(limit))
        .map_err(|error| payment_error(error.into()))?;
    Ok(Json(json!({
        "data": events.iter().map(event_json).collect::<Vec<_>>(),
    })))
}

// ---- Merchants -----------------------------------------------------------------------------

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    limit: Option<usize>,
    starting_after: Option<String>,
    out_trade_no: Option<String>,
}

impl PageQuery {
    pub(crate) fn limit(&self) -> Result<usize, ApiError> {
        page_limit(self.limit)
    }

    pub(crate) fn after(&self, prefix: &str) -> Result<u64, ApiError> {
        Ok(page_cursor(prefix, self.starting_after.as_deref())?.unwrap_or(0))
    }
}

/// A page's size: 1 to [`PAGE_LIMIT_MAX`], [`PAGE_LIMIT_DEFAULT`] when not given.
pub(crate) fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(PAGE_LIMIT_DEFAULT),
        Some(limit) if (1..=PAGE_LIMIT_MAX).contains(&limit) => Ok(limit),
        Some(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("limit: 1 to {PAGE_LIMIT_MAX}"),
        )),
    }
}

/// The id a page starts after (`starting_after=ord_123`), if given.
pub(crate) fn page_cursor(prefix: &str, text: Option<&str>) -> Result<Option<u64>, ApiError> {
    text.map(|text| {
        parse_prefixed(prefix, text).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("starting_after: an id like {prefix}123"),
            )
        })
    })
    .transpose()
}

/// A page of a listing: `items` read with one more than `limit`, so that the extra one says
/// whether there is more.
pub(crate) fn page_json<T>(
    mut items: Vec<T>,
    limit: usize,
    render: impl FnMut(&T) -> Value,
) -> Value {
    let has_more = items.len() > limit;
    items.truncate(limit);
    json!({
        "data": items.iter().map(render).collect::<Vec<_>>(),
        "has_more": has_more,
    })
}

/// `GET /v1/merchant`: the signed-in merchant and its balance.
pub(crate) async fn merchant_me(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let merchant = merchant_auth(&state, &method, &uri, &headers, b"").await?;
    let account_id = merchant.account_id;
    let account = state
        .readers
        .run(move |reader| reader.account(account_id))
        .await
        .map_err(|error| payment_error(error.into()))?;
    let mut body = merchant_json(&merchant);
    if let Some(account) = account {
        body["balance"] =
            json!(account.credits_posted.saturating_sub(account.debits_posted) as u64);
        body["currency"] = json!(account.currency.as_str());
    }
    Ok(Json(body))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OutletRequest {
    kind: String,
    name: String,
    store_id: Option<String>,
}

/// `POST /v1/outlets`: a store, or a terminal in one of the merchant's stores.
pub(crate) async fn create_outlet(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let merchant = merchant_auth(&state, &method, &uri, &headers, &body).await?;
    let request: OutletRequest = parse(&body)?;
    let kind = OutletKind::parse(&request.kind).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "kind: store or terminal",
        )
    })?;
    let parent = match &request.store_id {
        Some(text) => Some(id_in_path("out_", text, "store")?),
        None => None,
    };
    let idempotency = idempotency(&headers, ("mch", merchant.id), &method, &uri, &body)?;
    let render = |outlet: &store::Outlet| {
        rendered(
            json!({
                "id": format!("out_{}", outlet.id),
                "kind": outlet.kind.as_str(),
                "name": outlet.name,
                "store_id": outlet.parent_id.map(|id| format!("out_{id}")),
            }),
            StatusCode::CREATED,
        )
    };
    let result = state
        .payments
        .add_outlet(
            merchant.id,
            kind,
            parent,
            &request.name,
            idempotency.as_ref(),
            &render,
            unix_seconds(),
        )
        .await
        .map_err(payment_error)?;
    Ok(outcome(result, render))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderRequest {
    out_trade_no: String,
    amount: u64,
    currency: String,
    #[serde(default)]
    description: String,
    notify_url: Option<String>,
    outlet_id: Option<String>,
    /// Seconds until the order expires.
    expires_in: Option<u64>,
    /// Paid into escrow until the buyer confirms receipt.
    #[serde(default)]
    escrow: bool,
}

/// `POST /v1/orders`: creates an order (WeChat Pay's unified order, Alipay's trade.create).
pub(crate) async fn create_order(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let merchant = merchant_auth(&state, &method, &uri, &headers, &body).await?;
    let request: OrderRequest = parse(&body)?;
    let idempotency = idempotency(&headers, ("mch", merchant.id), &method, &uri, &body)?;
    let outlet_id = match &request.outlet_id {
        Some(text) => Some(id_in_path("out_", text, "outlet")?),
        None => None,
    };
    let render = |order: &Order| {
        (
            StatusCode::CREATED.as_u16(),
            services::payments::OrderView::of(order).text(),
        )
    };
    let result = state
        .payments
        .create_order(
            &merchant,
            NewOrder {
                out_trade_no: request.out_trade_no,
                amount: request.amount,
                currency: request.currency,
                description: request.description,
                notify_url: request.notify_url,
                outlet_id,
                expires_in_s: request.expires_in,
                escrow: request.escrow,
            },
            idempotency.as_ref(),
            &render,
            unix_seconds(),
        )
        .await
        .map_err(payment_error)?;
    Ok(outcome(result, render))
}

/// `GET /v1/orders/{id}`: one of the merchant's orders.
pub(crate) async fn get_order(
    State(state): State<Arc<AppState>>,
    Path(order): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let merchant = merchant_auth(&state, &method, &uri, &headers, b"").await?;
    let order_id = id_in_path("ord_", &order, "order")?;
    let order = state
        .payments
        .order(merchant.id, order_id)
        .map_err(payment_error)?;
    Ok(Json(order_json(&order)))
}

/// `GET /v1/orders?out_trade_no=…` or a page of the merchant's orders.
pub(crate) async fn list_orders(
    State(state): State<Arc<AppState>>,
    Query(page): Query<PageQuery>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let merchant = merchant_auth(&state, &method, &uri, &headers, b"").await?;
    if let Some(out_trade_no) = &page.out_trade_no {
        let order = state
            .payments
            .order_by_out_trade_no(merchant.id, out_trade_no)
            .map_err(payment_error)?;
        return Ok(Json(order_json(&order)));
    }
    let limit = page.limit()?;
    let orders = state
        .payments
        .orders(merchant.id, page.after("ord_")?, limit + 1)
        .map_err(payment_error)?;
    Ok(Json(page_json(orders, limit, order_json)))
}

/// `POST /v1/orders/{id}/close`: closes an unpaid order.
pub(crate) async fn close_order(
    State(state): State<Arc<AppState>>,
    Path(order): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let merchant = merchant_auth(&state, &method, &uri, &headers, &body).await?;
    let order_id = id_in_path("ord_", &order, "order")?;
    let order = state
        .payments
        .close_order(merchant.id, order_id, false, unix_seconds())
        .await
        .map_err(payment_error)?;
    Ok(Json(order_json(&order)))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundRequest {
    out_refund_no: String,
    amount: u64,
    #[serde(default)]
    reason: String,
}

/// `POST /v1/orders/{id}/refunds`: refunds part or all of a paid order.
pub(crate) async fn refund_order(
    State(state): State<Arc<AppState>>,
    Path(order): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let merchant = merchant_auth(&state, &method, &uri, &headers, &body).await?;
    let order_id = id_in_path("ord_", &order, "order")?;
    let request: RefundRequest = parse(&body)?;
    let idempotency = idempotency(&headers, ("mch", merchant.id), &method, &uri, &body)?;
    let render = |refund: &Refund| rendered(refund_json(refund), StatusCode::CREATED);
    let result = state
        .payments
        .refund_order(
            merchant.id,
            order_id,
            &request.out_refund_no,
            request.amount,
            &request.reason,
            idempotency.as_ref(),
            &render,
            unix_seconds(),
        )
        .await
        .map_err(payment_error)?;
    Ok(outcome(result, render))
}

/// `GET /v1/orders/{id}/refunds`.
pub(crate) async fn list_refunds(
    State(state): State<Arc<AppState>>,
    Path(order): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let merchant = merchant_auth(&state, &method, &uri, &headers, b"").await?;
    let order_id = id_in_path("ord_", &order, "order")?;
    let refunds = state
        .payments
        .refunds_of_order(merchant.id, order_id)
        .map_err(payment_error)?;
    Ok(Json(json!({
        "data": refunds.iter().map(refund_json).collect::<Vec<_>>(),
    })))
}

pub(crate) fn event_json(stored: &store::StoredEvent) -> Value {
    let mut body: Value = serde_json::from_str(&stored.event.payload).unwrap_or(Value::Null);
    body["delivery"] = json!({
        "state": stored.delivery.as_str(),
        "attempts": stored.attempts,
        "last_result": stored.last_result,
    });
    body
}

/// `GET /v1/events`: the merchant's notifications, oldest first, for polling.
pub(crate) async fn list_events(
    State(state): State<Arc<AppState>>,
    Query(page): Query<PageQuery>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let merchant = merchant_auth(&state, &method, &uri, &headers, b"").await?;
    let limit = page.limit()?;
    let after = page.after("evt_")?;
    let events = state
        .payments
        .handles()
        .records(|records| records.events(merchant.id, after, limit + 1))
        .map_err(|error| payment_error(error.into()))?;
    Ok(Json(page_json(events, limit, event_json)))
}

/// `GET /v1/bills/{date}`: the merchant's bill of one UTC day as CSV: one line per payment
/// and per refund, then totals.
pub(crate) async fn daily_bill(
    State(state): State<Arc<AppState>>,
    Path(date): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let merchant = merchant_auth(&state, &method, &uri, &headers, b"").await?;
    let start = services::time::parse_date(&date).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "date: YYYY-MM-DD",
        )
    })?;
    let bill = services::bills::daily_bill(state.payments.handles(), &merchant, start)
        .map_err(payment_error)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"bill-{date}.csv\""),
            ),
        ],
        bill,
    )
        .into_response())
}

// ---- Users ---------------------------------------------------------------------------------

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PayRequest {
    amount: u64,
    payment_password: String,
}

/// `GET /v1/checkout/{id}`: what a user about to pay sees of an order.
pub(crate) async fn checkout(
    State(state): State<Arc<AppState>>,
    Path(order): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let order_id = id_in_path("ord_", &order, "order")?;
    let order = state
        .payments
        .order_for_payer(order_id, user.id)
        .map_err(payment_error)?;
    let merchant = state
        .payments
        .merchant(order.merchant_id)
        .map_err(payment_error)?;
    Ok(Json(json!({
        "id": format!("ord_{}", order.id),
        "merchant": {"id": format!("mch_{}", merchant.id), "name": merchant.name, "city": merchant.city},
        "amount": order.amount,
        "currency": order.currency,
        "description": order.description,
        "state": services::orders::trade_state(&order),
        "expires_at": services::time::rfc3339_seconds(order.expires_at),
    })))
}

/// Checks the payment password of the session's user (Argon2id on the first payment of a
/// session, off the async threads).
pub(crate) async fn check_payment_password(
    state: &Arc<AppState>,
    token: String,
    user: User,
    password: String,
) -> Result<User, ApiError> {
    // A session that proved this password lately is recognised here; only the first check
    // of a session (Argon2id, tens of milliseconds) goes to the blocking pool.
    if state
        .users
        .payment_password_remembered(&token, &user, &password, unix_seconds())
        .map_err(user_error)?
    {
        return Ok(user);
    }
    let users = state.users.clone();
    tokio::task::spawn_blocking(move || {
        users
            .verify_payment_password_in_session(&token, &user, &password, unix_seconds())
            .map(|()| user)
    })
    .await
    .map_err(|_| ApiError::unavailable("the request was lost"))?
    .map_err(user_error)
}

/// The user a phone number (`+86…`) or a user id (`usr_…`) names.
pub(crate) fn find_user(state: &AppState, to: &str) -> Result<User, ApiError> {
    state
        .payments
        .handles()
        .users(move |users| {
            if let Some(id) = parse_prefixed("usr_", to) {
                users.user(id)
            } else {
                match services::users::parse_phone(to) {
                    Ok(phone) => users.user_by_phone(&phone),
                    Err(_) => Ok(None),
                }
            }
        })
        .map_err(|error| payment_error(error.into()))?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "payee_not_found",
                format!("No user has the phone number or id {to:?}."),
            )
        })
}

/// `POST /v1/orders/{id}/pay`: the signed-in user pays an order with the payment password.
pub(crate) async fn pay_order(
    State(state): State<Arc<AppState>>,
    Path(order): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (token, user) = session_user(&state, &headers)?;
    let order_id = id_in_path("ord_", &order, "order")?;
    let request: PayRequest = parse(&body)?;
    let idempotency = idempotency(&headers, ("usr", user.id), &method, &uri, &body)?;
    let user = check_payment_password(&state, token, user, request.payment_password).await?;
    let render = |order: &Order| {
        (
            StatusCode::OK.as_u16(),
            services::payments::OrderView::of(order).text(),
        )
    };
    let result = state
        .payments
        .pay_order(
            &user,
            order_id,
            request.amount,
            idempotency.as_ref(),
            &render,
            unix_seconds(),
        )
        .await
        .map_err(payment_error)?;
    Ok(outcome(result, render))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferRequest {
    /// A phone number (`+86…`) or a user id (`usr_…`).
    to: String,
    amount: u64,
    payment_password: String,
    #[serde(default)]
    note: String,
}

/// `POST /v1/transfers`: sends money to another user.
pub(crate) async fn send_transfer(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (token, user) = session_user(&state, &headers)?;
    let request: TransferRequest = parse(&body)?;
    let idempotency = idempotency(&headers, ("usr", user.id), &method, &uri, &body)?;
    let payee = find_user(&state, &request.to)?;
    let user = check_payment_password(&state, token, user, request.payment_password).await?;
    let render = |transfer: &P2pTransfer| rendered(p2p_json(transfer), StatusCode::CREATED);
    let result = state
        .payments
        .send_p2p(
            &user,
            &payee,
            request.amount,
            &request.note,
            idempotency.as_ref(),
            &render,
            unix_seconds(),
        )
        .await
        .map_err(payment_error)?;
    Ok(outcome(result, render))
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryQueryParameters {
    limit: Option<usize>,
    /// The `cursor` of the previous page.
    starting_after: Option<u64>,
}

/// `GET /v1/me/transactions`: the user's wallet movements, oldest first from the cursor.
pub(crate) async fn my_transactions(
    State(state): State<Arc<AppState>>,
    Query(query): Query<HistoryQueryParameters>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let limit = match query.limit {
        None => PAGE_LIMIT_DEFAULT,
        Some(limit) if (1..=PAGE_LIMIT_MAX).contains(&limit) => limit,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("limit: 1 to {PAGE_LIMIT_MAX}"),
            ))
        }
    };
    let wallet = user.wallet_account_id;
    let after = query.starting_after.unwrap_or(0);
    let transfers = state
        .readers
        .run(move |reader| {
            reader.account_transfers(store::HistoryQuery {
                account_id: wallet,
                after_timestamp: after,
                limit,
            })
        })
        .await
        .map_err(|error| payment_error(error.into()))?;
    let data: Vec<Value> = transfers
        .iter()
        .map(|transfer| services::history::entry_json(transfer, wallet))
        .collect();
    Ok(Json(json!({
        "data": data,
        "cursor": transfers.last().map(|transfer| transfer.timestamp),
        "has_more": transfers.len() == limit,
    })))
}

// ---- Cards, top-ups and withdrawals ----------------------------------------------------------

fn card_json(card: &store::Card) -> Value {
    json!({
        "id": format!("card_{}", card.id),
        "object": "card",
        "bank": card.bank,
        "bin": card.bin,
        "last4": card.last4,
        "state": card.state.as_str(),
        "created_at": services::time::rfc3339_seconds(card.created_at),
    })
}

fn bank_transfer_json(transfer: &store::BankTransfer) -> Value {
    json!({
        "id": format!("bt_{}", transfer.id),
        "object": transfer.direction.as_str(),
        "card_id": format!("card_{}", transfer.card_id),
        "amount": transfer.amount,
        "currency": transfer.currency,
        "state": transfer.state.as_str(),
        "bank_reference": transfer.bank_reference,
        "failure": transfer.failure,
        "created_at": services::time::rfc3339_seconds(transfer.created_at),
        "updated_at": services::time::rfc3339_seconds(transfer.updated_at),
    })
}

/// A bank transfer as answered: 201 when done, 202 while the bank has not answered, and a
/// problem document with the bank's reason when it refused.
fn render_bank_transfer(transfer: &store::BankTransfer) -> (u16, String) {
    match transfer.state {
        store::BankTransferState::Succeeded => {
            rendered(bank_transfer_json(transfer), StatusCode::CREATED)
        }
        store::BankTransferState::Pending => {
            rendered(bank_transfer_json(transfer), StatusCode::ACCEPTED)
        }
        store::BankTransferState::Failed => refused(
            bank_transfer_json(transfer),
            "bank_refused",
            transfer.failure.as_deref(),
        ),
    }
}

/// An object the other party refused (a bank, a biller) as a 422 problem document that still
/// carries the object, so the client sees its final state.
pub(crate) fn refused(mut body: Value, code: &str, detail: Option<&str>) -> (u16, String) {
    body["type"] = json!(format!("https://tally.dev/problems/{code}"));
    body["title"] = json!("Unprocessable Entity");
    body["status"] = json!(422);
    body["code"] = json!(code);
    body["detail"] = json!(detail);
    (422, body.to_string())
}

/// A rendered answer (given now or replayed), typed as a problem document when it is a 422.
pub(crate) fn answer(status: u16, body: String) -> Response {
    let content_type = if status == 422 {
        "application/problem+json"
    } else {
        "application/json"
    };
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        [(header::CONTENT_TYPE, content_type)],
        body,
    )
        .into_response()
}

fn bank_outcome(outcome: Outcome<store::BankTransfer>) -> Response {
    let (status, body) = match outcome {
        Outcome::Done(transfer) => render_bank_transfer(&transfer),
        Outcome::Replayed { status, body } => (status, body),
    };
    answer(status, body)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BindRequest {
    card_number: String,
    holder_name: String,
    id_number: String,
    phone: String,
}

/// `POST /v1/me/cards`: starts binding a card; the bank texts a code to the card's phone.
pub(crate) async fn start_binding(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let request: BindRequest = parse(&body)?;
    let binding = state
        .cards
        .start_binding(
            &user,
            services::bank::CardDetails {
                number: request.card_number,
                holder_name: request.holder_name,
                id_number: request.id_number,
                phone: request.phone,
            },
            unix_seconds(),
        )
        .await
        .map_err(payment_error)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"binding_id": binding, "code_sent": true})),
    )
        .into_response())
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmRequest {
    binding_id: String,
    code: String,
}

/// `POST /v1/me/cards/confirm`: the bank's code confirms the binding.
pub(crate) async fn confirm_binding(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let request: ConfirmRequest = parse(&body)?;
    let card = state
        .cards
        .confirm_binding(&user, &request.binding_id, &request.code, unix_seconds())
        .await
        .map_err(payment_error)?;
    // The tier may have changed.
    state.users.forget_user(user.id);
    Ok((StatusCode::CREATED, Json(card_json(&card))).into_response())
}

/// `GET /v1/me/cards`.
pub(crate) async fn list_cards(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let cards = state.cards.cards(user.id).map_err(payment_error)?;
    Ok(Json(json!({
        "data": cards.iter().filter(|card| card.state == store::CardState::Active).map(card_json).collect::<Vec<_>>(),
    })))
}

/// `DELETE /v1/me/cards/{id}`.
pub(crate) async fn unbind_card(
    State(state): State<Arc<AppState>>,
    Path(card): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let card_id = id_in_path("card_", &card, "card")?;
    state
        .cards
        .unbind(user.id, card_id)
        .await
        .map_err(payment_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BankTransferRequest {
    card_id: String,
    amount: u64,
    payment_password: String,
}

async fn bank_transfer(
    state: Arc<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    direction: store::BankDirection,
) -> Result<Response, ApiError> {
    let (token, user) = session_user(&state, &headers)?;
    let request: BankTransferRequest = parse(&body)?;
    let card_id = id_in_path("card_", &request.card_id, "card")?;
    let idempotency = idempotency(&headers, ("usr", user.id), &method, &uri, &body)?;
    let user = check_payment_password(&state, token, user, request.payment_password).await?;
    let render = render_bank_transfer;
    let outcome = match direction {
        store::BankDirection::TopUp => {
            state
                .cards
                .top_up(
                    &user,
                    card_id,
                    request.amount,
                    idempotency.as_ref(),
                    &render,
                    unix_seconds(),
                )
                .await
        }
        store::BankDirection::Withdrawal => {
            state
                .cards
                .withdraw(
                    &user,
                    card_id,
                    request.amount,
                    idempotency.as_ref(),
                    &render,
                    unix_seconds(),
                )
                .await
        }
    }
    .map_err(payment_error)?;
    Ok(bank_outcome(outcome))
}

/// `POST /v1/me/top-ups`: card → wallet.
pub(crate) async fn top_up(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    bank_transfer(
        state,
        method,
        uri,
        headers,
        body,
        store::BankDirection::TopUp,
    )
    .await
}

/// `POST /v1/me/withdrawals`: wallet → card.
pub(crate) async fn withdraw(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    bank_transfer(
        state,
        method,
        uri,
        headers,
        body,
        store::BankDirection::Withdrawal,
    )
    .await
}

/// `GET /v1/me/bank-transfers/{id}`.
pub(crate) async fn get_bank_transfer(
    State(state): State<Arc<AppState>>,
    Path(transfer): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let id = id_in_path("bt_", &transfer, "bank transfer")?;
    let transfer = state
        .cards
        .bank_transfer(user.id, id)
        .map_err(payment_error)?;
    Ok(Json(bank_transfer_json(&transfer)))
}
