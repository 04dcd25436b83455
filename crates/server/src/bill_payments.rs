//! Bill payments over HTTP: operators register billers; users list them, ask a biller about a
//! customer reference, pay bills and top up phones with the payment password, keep saved
//! billers and read their bill payments.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use services::ids::parse_prefixed;
use services::payments::{bill_hold_transfer_id, BillerInput, Inquiry, Outcome};
use services::time::rfc3339_seconds;
use store::{
    BillPayment, BillPaymentState, Biller, BillerCategory, CheckDigit, ReferenceCharset,
    SavedBiller,
};

use crate::payments::{
    answer, check_payment_password, id_in_path, idempotency, json_response, page_cursor, page_json,
    page_limit, parse, payment_error, refused, rendered, session_user,
};
use crate::{unix_seconds, ApiError, AppState};

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
}

fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> String {
    all.iter()
        .map(|value| name(*value))
        .collect::<Vec<_>>()
        .join(", ")
}

fn biller_json(biller: &Biller, state: &AppState) -> Value {
    json!({
        "id": format!("blr_{}", biller.id),
        "object": "biller",
        "code": biller.code,
        "name": biller.name,
        "category": biller.category.as_str(),
        "reference_label": biller.reference_label,
        "reference_charset": biller.reference_charset.as_str(),
        "reference_length_min": biller.reference_length_min,
        "reference_length_max": biller.reference_length_max,
        "reference_prefix": biller.reference_prefix,
        "check_digit": biller.check_digit.as_str(),
        "denominations": biller.denominations,
        "currency": state.payments.config().currency.as_str(),
        "account_id": biller.account_id.to_string(),
        "created_at": rfc3339_seconds(biller.created_at),
    })
}

/// A biller as a payment names it.
fn biller_summary(biller_id: u64, biller: Option<&Biller>) -> Value {
    match biller {
        Some(biller) => json!({
            "id": format!("blr_{}", biller.id),
            "name": biller.name,
            "category": biller.category.as_str(),
        }),
        None => json!({"id": format!("blr_{biller_id}")}),
    }
}

fn bill_payment_json(payment: &BillPayment, biller: Option<&Biller>) -> Value {
    json!({
        "id": format!("bp_{}", payment.id),
        "object": "bill_payment",
        "biller": biller_summary(payment.biller_id, biller),
        "reference": payment.reference,
        "customer_name": payment.customer_name,
        "amount": payment.amount,
        "currency": payment.currency,
        "state": payment.state.as_str(),
        "confirmation": payment.confirmation,
        "failure": payment.failure,
        "hold_transfer_id": bill_hold_transfer_id(payment.id).to_string(),
        "created_at": rfc3339_seconds(payment.created_at),
        "updated_at": rfc3339_seconds(payment.updated_at),
    })
}

/// A payment as its request is answered: 201 succeeded (the confirmation is the receipt), 202
/// while the biller has not answered, and a problem document when the biller refused (the
/// hold voided, the money back in the wallet).
fn render_bill_payment(payment: &BillPayment, biller: Option<&Biller>) -> (u16, String) {
    match payment.state {
        BillPaymentState::Succeeded => {
            rendered(bill_payment_json(payment, biller), StatusCode::CREATED)
        }
        BillPaymentState::Pending => {
            rendered(bill_payment_json(payment, biller), StatusCode::ACCEPTED)
        }
        BillPaymentState::Failed => refused(
            bill_payment_json(payment, biller),
            "biller_rejected",
            payment.failure.as_deref(),
        ),
    }
}

/// The billers the payments name, looked up once each.
fn billers_of(state: &AppState, biller_ids: impl IntoIterator<Item = u64>) -> HashMap<u64, Biller> {
    let mut billers = HashMap::new();
    for id in biller_ids {
        if billers.contains_key(&id) {
            continue;
        }
        if let Ok(biller) = state.payments.biller(id) {
            billers.insert(id, biller);
        }
    }
    billers
}

// ---- Operators -----------------------------------------------------------------------------

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BillerBody {
    code: String,
    name: String,
    category: String,
    reference_label: String,
    #[serde(default)]
    reference_charset: Option<String>,
    reference_length_min: u8,
    reference_length_max: u8,
    #[serde(default)]
    reference_prefix: String,
    #[serde(default)]
    check_digit: Option<String>,
    #[serde(default)]
    denominations: Vec<u64>,
}

fn category(text: &str) -> Result<BillerCategory, ApiError> {
    BillerCategory::parse(text).ok_or_else(|| {
        invalid(format!(
            "category: one of {}",
            names(&BillerCategory::ALL, BillerCategory::as_str)
        ))
    })
}

/// `POST /v1/billers` (operator): registers a biller with its reference rule; it gets a
/// ledger account of its own.
pub(crate) async fn register_biller(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let credential =
        crate::auth::authenticate(&state, &headers, store::CredentialRole::Operator).await?;
    let request: BillerBody = parse(&body)?;
    let reference_charset = match request.reference_charset.as_deref() {
        None => ReferenceCharset::Digits,
        Some(text) => ReferenceCharset::parse(text).ok_or_else(|| {
            invalid(format!(
                "reference_charset: one of {}",
                names(&ReferenceCharset::ALL, ReferenceCharset::as_str)
            ))
        })?,
    };
    let check_digit = match request.check_digit.as_deref() {
        None => CheckDigit::None,
        Some(text) => CheckDigit::parse(text).ok_or_else(|| {
            invalid(format!(
                "check_digit: one of {}",
                names(&CheckDigit::ALL, CheckDigit::as_str)
            ))
        })?,
    };
    let input = BillerInput {
        code: request.code,
        name: request.name,
        category: category(&request.category)?,
        reference_label: request.reference_label,
        reference_charset,
        reference_length_min: request.reference_length_min,
        reference_length_max: request.reference_length_max,
        reference_prefix: request.reference_prefix,
        check_digit,
        denominations: request.denominations,
    };
    let idempotency = idempotency(&headers, ("cred", credential.id), &method, &uri, &body)?;
    let render = |biller: &Biller| rendered(biller_json(biller, &state), StatusCode::CREATED);
    let outcome = state
        .payments
        .register_biller(input, idempotency.as_ref(), &render, unix_seconds())
        .await
        .map_err(payment_error)?;
    Ok(crate::payments::outcome(outcome, render))
}

// ---- Users ---------------------------------------------------------------------------------

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BillerQuery {
    category: Option<String>,
    limit: Option<usize>,
    starting_after: Option<String>,
}

/// `GET /v1/billers`: the billers users can pay, of one category or all.
pub(crate) async fn list_billers(
    State(state): State<Arc<AppState>>,
    Query(query): Query<BillerQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    session_user(&state, &headers)?;
    let limit = page_limit(query.limit)?;
    let category = query.category.as_deref().map(category).transpose()?;
    let after = page_cursor("blr_", query.starting_after.as_deref())?.unwrap_or(0);
    let billers = state
        .payments
        .billers(category, after, limit + 1)
        .map_err(payment_error)?;
    Ok(Json(page_json(billers, limit, |biller| {
        biller_json(biller, &state)
    })))
}

/// `GET /v1/billers/{id}`.
pub(crate) async fn get_biller(
    State(state): State<Arc<AppState>>,
    Path(biller): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    session_user(&state, &headers)?;
    let biller_id = id_in_path("blr_", &biller, "biller")?;
    let biller = state.payments.biller(biller_id).map_err(payment_error)?;
    Ok(Json(biller_json(&biller, &state)))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct InquiryBody {
    biller_id: String,
    reference: String,
}

fn biller_id(text: &str) -> Result<u64, ApiError> {
    parse_prefixed("blr_", text).ok_or_else(|| invalid("biller_id: an id like blr_123"))
}

fn inquiry_json(inquiry: &Inquiry, state: &AppState) -> Value {
    json!({
        "object": "bill_inquiry",
        "biller": biller_summary(inquiry.biller.id, Some(&inquiry.biller)),
        "reference": inquiry.reference,
        "customer_name": inquiry.customer_name,
        "amount_due": inquiry.amount_due,
        "currency": state.payments.config().currency.as_str(),
        "due_date": inquiry.due_date,
        "denominations": inquiry.biller.denominations,
    })
}

/// `POST /v1/bill-inquiries`: what the biller says about a customer reference.
pub(crate) async fn inquire(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    session_user(&state, &headers)?;
    let request: InquiryBody = parse(&body)?;
    let inquiry = state
        .payments
        .inquire_bill(biller_id(&request.biller_id)?, &request.reference)
        .await
        .map_err(payment_error)?;
    Ok(Json(inquiry_json(&inquiry, &state)))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PayBillBody {
    biller_id: String,
    reference: String,
    amount: u64,
    payment_password: String,
}

/// `POST /v1/bill-payments`: pays a bill, or tops up a phone, with the payment password.
pub(crate) async fn pay(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (token, user) = session_user(&state, &headers)?;
    let request: PayBillBody = parse(&body)?;
    let biller_id = biller_id(&request.biller_id)?;
    let idempotency = idempotency(&headers, ("usr", user.id), &method, &uri, &body)?;
    let user = check_payment_password(&state, token, user, request.payment_password).await?;
    let biller = state.payments.biller(biller_id).map_err(payment_error)?;
    let render = |payment: &BillPayment| render_bill_payment(payment, Some(&biller));
    let outcome = state
        .payments
        .pay_bill(
            &user,
            biller_id,
            &request.reference,
            request.amount,
            idempotency.as_ref(),
            &render,
            unix_seconds(),
        )
        .await
        .map_err(payment_error)?;
    let (status, body) = match outcome {
        Outcome::Done(payment) => render(&payment),
        // The first answer is stored with the hold, before the biller answers: a retry gets
        // the payment as it stands now.
        Outcome::Replayed { status: 202, body } => {
            let stored: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let current = stored["id"]
                .as_str()
                .and_then(|id| parse_prefixed("bp_", id))
                .map(|id| state.payments.bill_payment(user.id, id));
            match current {
                Some(Ok(payment)) => render(&payment),
                _ => (202, body),
            }
        }
        Outcome::Replayed { status, body } => (status, body),
    };
    Ok(answer(status, body))
}

/// `GET /v1/bill-payments/{id}`: one of the user's bill payments, with its receipt.
pub(crate) async fn get_payment(
    State(state): State<Arc<AppState>>,
    Path(payment): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let id = id_in_path("bp_", &payment, "bill payment")?;
    let payment = state
        .payments
        .bill_payment(user.id, id)
        .map_err(payment_error)?;
    let biller = state.payments.biller(payment.biller_id).ok();
    Ok(Json(bill_payment_json(&payment, biller.as_ref())))
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryQuery {
    limit: Option<usize>,
    starting_after: Option<String>,
}

/// `GET /v1/me/bill-payments`: the user's bill payments, newest first.
pub(crate) async fn my_payments(
    State(state): State<Arc<AppState>>,
    Query(query): Query<HistoryQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let limit = page_limit(query.limit)?;
    let before = page_cursor("bp_", query.starting_after.as_deref())?;
    let mut payments = state
        .payments
        .bill_payments(user.id, before, limit + 1)
        .map_err(payment_error)?;
    let has_more = payments.len() > limit;
    payments.truncate(limit);
    let billers = billers_of(&state, payments.iter().map(|payment| payment.biller_id));
    Ok(Json(json!({
        "data": payments
            .iter()
            .map(|payment| bill_payment_json(payment, billers.get(&payment.biller_id)))
            .collect::<Vec<_>>(),
        "has_more": has_more,
    })))
}

// ---- Saved billers -------------------------------------------------------------------------

fn saved_json(saved: &SavedBiller, biller: Option<&Biller>) -> Value {
    json!({
        "id": format!("sbl_{}", saved.id),
        "object": "saved_biller",
        "biller": biller_summary(saved.biller_id, biller),
        "reference": saved.reference,
        "nickname": saved.nickname,
        "created_at": rfc3339_seconds(saved.created_at),
        "updated_at": rfc3339_seconds(saved.updated_at),
    })
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SaveBody {
    biller_id: String,
    reference: String,
    #[serde(default)]
    nickname: String,
}

/// `POST /v1/me/saved-billers`: keeps a biller and reference to pay again (201); saving one
/// already saved renames it (200).
pub(crate) async fn save(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let request: SaveBody = parse(&body)?;
    let (saved, created) = state
        .payments
        .save_biller(
            &user,
            biller_id(&request.biller_id)?,
            &request.reference,
            &request.nickname,
            unix_seconds(),
        )
        .await
        .map_err(payment_error)?;
    let biller = state.payments.biller(saved.biller_id).ok();
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_response(
        status,
        saved_json(&saved, biller.as_ref()).to_string(),
    ))
}

/// `GET /v1/me/saved-billers`.
pub(crate) async fn list_saved(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let saved = state
        .payments
        .saved_billers(user.id)
        .map_err(payment_error)?;
    let billers = billers_of(&state, saved.iter().map(|entry| entry.biller_id));
    Ok(Json(json!({
        "data": saved
            .iter()
            .map(|entry| saved_json(entry, billers.get(&entry.biller_id)))
            .collect::<Vec<_>>(),
    })))
}

/// `DELETE /v1/me/saved-billers/{id}`.
pub(crate) async fn delete_saved(
    State(state): State<Arc<AppState>>,
    Path(saved): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let id = id_in_path("sbl_", &saved, "saved biller")?;
    state
        .payments
        .delete_saved_biller(user.id, id, unix_seconds())
        .await
        .map_err(payment_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
