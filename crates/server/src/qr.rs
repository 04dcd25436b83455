//! QR payments over HTTP: merchants issue, list and revoke codes and charge payment codes at a
//! POS; users scan, pay and report codes and enrol the devices that make payment codes;
//! operators flag codes and read the reports.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use services::payment_codes;
use services::payments::{order_json, CodeRequest, NewCharge, OrderView, Scan};
use services::secrets::hex;
use services::time::rfc3339_seconds;
use store::{CodeReport, CodeState, MerchantCode, Order, PaymentDevice};

use crate::payments::{
    check_payment_password, id_in_path, idempotency, merchant_auth, outcome, page_json, parse,
    payment_error, rendered, session_user, PageQuery,
};
use crate::{unix_seconds, ApiError, AppState};

fn code_json(code: &MerchantCode) -> Value {
    json!({
        "id": format!("qrc_{}", code.id),
        "object": "qr_code",
        "merchant_id": format!("mch_{}", code.merchant_id),
        "outlet_id": code.outlet_id.map(|id| format!("out_{id}")),
        "order_id": code.order_id.map(|id| format!("ord_{id}")),
        "kind": code.kind.as_str(),
        "state": code.state.as_str(),
        "payload": code.payload,
        "digest": hex(&services::payments::payload_digest(&code.payload)),
        "registration_id": format!("reg_{}", code.registration_id),
        "created_at": rfc3339_seconds(code.created_at),
        "expires_at": code.expires_at.map(rfc3339_seconds),
        "notify_url": code.notify_url,
    })
}

/// A code with its registration's receipt (leaf, inclusion proof, signed checkpoint).
async fn code_with_receipt(state: &AppState, code: &MerchantCode) -> Result<Value, ApiError> {
    let mut body = code_json(code);
    body["receipt"] = crate::log::registration_receipt_value(state, code.registration_id).await?;
    Ok(body)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    kind: String,
    outlet_id: Option<String>,
    order_id: Option<String>,
    notify_url: Option<String>,
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
}

/// `POST /v1/qr-codes`: issues a static or dynamic code, registered in the trust log.
pub(crate) async fn issue_code(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let merchant = merchant_auth(&state, &method, &uri, &headers, &body).await?;
    let request: CodeBody = parse(&body)?;
    let code_request = match (request.kind.as_str(), &request.outlet_id, &request.order_id) {
        ("static", outlet, None) => CodeRequest::Static {
            outlet_id: match outlet {
                Some(text) => Some(id_in_path("out_", text, "outlet")?),
                None => None,
            },
            notify_url: request.notify_url.clone(),
        },
        ("dynamic", _, _) if request.notify_url.is_some() => {
            return Err(invalid(
                "A dynamic code's payment is notified at its order's notify_url.",
            ))
        }
        ("dynamic", None, Some(order)) => CodeRequest::Dynamic {
            order_id: id_in_path("ord_", order, "order")?,
        },
        ("dynamic", Some(_), _) => {
            return Err(invalid(
                "A dynamic code takes its outlet from its order: give order_id only.",
            ))
        }
        ("dynamic", None, None) => return Err(invalid("A dynamic code needs order_id.")),
        ("static", _, Some(_)) => {
            return Err(invalid(
                "A static code has no order: give outlet_id or nothing.",
            ))
        }
        _ => return Err(invalid("kind: static or dynamic.")),
    };
    let idempotency = idempotency(&headers, ("mch", merchant.id), &method, &uri, &body)?;
    let render = |code: &MerchantCode| rendered(code_json(code), StatusCode::CREATED);
    let result = state
        .payments
        .issue_code(
            &merchant,
            code_request,
            idempotency.as_ref(),
            &render,
            unix_seconds(),
        )
        .await
        .map_err(payment_error)?;
    Ok(outcome(result, render))
}

/// `GET /v1/qr-codes/{id}`: one of the merchant's codes, with its registration's receipt.
pub(crate) async fn get_code(
    State(state): State<Arc<AppState>>,
    Path(code): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let merchant = merchant_auth(&state, &method, &uri, &headers, b"").await?;
    let code_id = id_in_path("qrc_", &code, "code")?;
    let code = state
        .payments
        .merchant_code(merchant.id, code_id)
        .map_err(payment_error)?;
    Ok(Json(code_with_receipt(&state, &code).await?))
}

/// `GET /v1/qr-codes`: a page of the merchant's codes.
pub(crate) async fn list_codes(
    State(state): State<Arc<AppState>>,
    Query(page): Query<PageQuery>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let merchant = merchant_auth(&state, &method, &uri, &headers, b"").await?;
    let limit = page.limit()?;
    let codes = state
        .payments
        .merchant_codes(merchant.id, page.after("qrc_")?, limit + 1)
        .map_err(payment_error)?;
    Ok(Json(page_json(codes, limit, code_json)))
}

/// `POST /v1/qr-codes/{id}/revoke`: the merchant withdraws a code, for good.
pub(crate) async fn revoke_code(
    State(state): State<Arc<AppState>>,
    Path(code): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let merchant = merchant_auth(&state, &method, &uri, &headers, &body).await?;
    let code_id = id_in_path("qrc_", &code, "code")?;
    let code = state
        .payments
        .set_code_state(
            Some(merchant.id),
            code_id,
            CodeState::Revoked,
            unix_seconds(),
        )
        .await
        .map_err(payment_error)?;
    Ok(Json(code_json(&code)))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeStateBody {
    state: String,
}

/// `PUT /v1/qr-codes/{id}/state`: an operator flags a code as fraudulent, or clears the flag.
pub(crate) async fn set_code_state(
    State(state): State<Arc<AppState>>,
    Path(code): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    crate::auth::authenticate(&state, &headers, store::CredentialRole::Operator).await?;
    let code_id = id_in_path("qrc_", &code, "code")?;
    let request: CodeStateBody = parse(&body)?;
    let wanted = match request.state.as_str() {
        "flagged" => CodeState::Flagged,
        "active" => CodeState::Active,
        _ => {
            return Err(invalid(
                "state: flagged or active (merchants revoke their own codes).",
            ))
        }
    };
    let code = state
        .payments
        .set_code_state(None, code_id, wanted, unix_seconds())
        .await
        .map_err(payment_error)?;
    Ok(Json(code_json(&code)))
}

fn report_json(report: &CodeReport) -> Value {
    json!({
        "id": format!("qrr_{}", report.id),
        "object": "qr_report",
        "code_id": report.code_id.map(|id| format!("qrc_{id}")),
        "digest": hex(&report.payload_digest),
        "payload": report.payload,
        "user_id": format!("usr_{}", report.user_id),
        "reason": report.reason,
        "created_at": rfc3339_seconds(report.created_at),
    })
}

/// `GET /v1/qr-reports`: the newest reports of fraudulent codes, for operators.
pub(crate) async fn list_reports(
    State(state): State<Arc<AppState>>,
    Query(page): Query<PageQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    crate::auth::authenticate(&state, &headers, store::CredentialRole::Operator).await?;
    let limit = page.limit()?;
    let reports = state
        .payments
        .handles()
        .records(|records| records.code_reports_recent(limit))
        .map_err(|error| payment_error(error.into()))?;
    Ok(Json(json!({
        "data": reports.iter().map(report_json).collect::<Vec<_>>(),
    })))
}

// ---- Users ---------------------------------------------------------------------------------

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanBody {
    payload: String,
}

async fn scan_json(state: &AppState, scan: &Scan) -> Result<Value, ApiError> {
    let merchant = match (&scan.merchant, &scan.merchant_name) {
        (Some(merchant), _) => json!({
            "id": format!("mch_{}", merchant.id),
            "name": merchant.name,
            "city": merchant.city,
            "mcc": merchant.mcc,
        }),
        (None, Some(name)) => json!({"name": name, "city": scan.merchant_city}),
        (None, None) => Value::Null,
    };
    let code = match &scan.code {
        Some(code) => {
            let mut body = code_with_receipt(state, code).await?;
            if let Some(object) = body.as_object_mut() {
                // The payer has the payload already.
                object.remove("payload");
            }
            body
        }
        None => Value::Null,
    };
    Ok(json!({
        "scheme": scan.scheme.as_str(),
        "network": scan.network,
        "status": scan.status.as_str(),
        "payable": scan.status == services::payments::ScanStatus::Active,
        "message": scan.status.message(),
        "merchant": merchant,
        "amount": scan.amount(),
        "amount_text": scan.amount_text,
        "currency": state.payments.config().currency.as_str(),
        "order_id": scan.order.as_ref().map(|order| format!("ord_{}", order.id)),
        "code": code,
        "warnings": scan.warnings,
    }))
}

/// `POST /v1/qr/scan`: what a scanned payload is, and what paying it would do.
pub(crate) async fn scan(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    session_user(&state, &headers)?;
    let request: ScanBody = parse(&body)?;
    let scan = state
        .payments
        .scan(&request.payload, unix_seconds())
        .map_err(payment_error)?;
    Ok(Json(scan_json(&state, &scan).await?))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PayCodeBody {
    payload: String,
    amount: Option<u64>,
    payment_password: String,
}

/// `POST /v1/qr/pay`: pays a scanned code with the payment password.
pub(crate) async fn pay_code(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (token, user) = session_user(&state, &headers)?;
    let request: PayCodeBody = parse(&body)?;
    let idempotency = idempotency(&headers, ("usr", user.id), &method, &uri, &body)?;
    let user = check_payment_password(&state, token, user, request.payment_password).await?;
    let render = |order: &Order| (StatusCode::OK.as_u16(), OrderView::of(order).text());
    let result = state
        .payments
        .pay_code(
            &user,
            &request.payload,
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
struct ReportBody {
    payload: String,
    #[serde(default)]
    reason: String,
}

/// `POST /v1/qr/reports`: the user reports a code as fraudulent.
pub(crate) async fn report_code(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let request: ReportBody = parse(&body)?;
    let (report, code) = state
        .payments
        .report_code(&user, &request.payload, &request.reason, unix_seconds())
        .await
        .map_err(payment_error)?;
    let mut body = report_json(&report);
    body["code_state"] = json!(code.map(|code| code.state.as_str()));
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

fn device_json(device: &PaymentDevice) -> Value {
    json!({
        "id": format!("dev_{}", device.id),
        "object": "device",
        "number": format!("{:08}", device.number),
        "name": device.name,
        "state": device.state.as_str(),
        "created_at": rfc3339_seconds(device.created_at),
        "revoked_at": device.revoked_at.map(rfc3339_seconds),
    })
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceBody {
    name: String,
    payment_password: String,
}

/// `POST /v1/me/devices`: enrols a device to make payment codes; its secret is shown once.
pub(crate) async fn enrol_device(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (token, user) = session_user(&state, &headers)?;
    let request: DeviceBody = parse(&body)?;
    let user = check_payment_password(&state, token, user, request.payment_password).await?;
    let enrolled = state
        .payments
        .enrol_device(&user, &request.name, unix_seconds())
        .await
        .map_err(payment_error)?;
    let mut body = device_json(&enrolled.device);
    body["secret"] = json!(hex(&enrolled.device.secret));
    body["code"] = json!({
        "algorithm": "HMAC-SHA256, RFC 4226 truncation to 6 digits",
        "prefix": enrolled.prefix.as_str(),
        "step_seconds": payment_codes::STEP_S,
        "slots": payment_codes::SLOTS,
        "layout": "prefix(2) device number(8) step mod 10(1) slot(1) MAC(6)",
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /v1/me/devices`.
pub(crate) async fn list_devices(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let devices = state.payments.devices(user.id).map_err(payment_error)?;
    Ok(Json(json!({
        "data": devices.iter().map(device_json).collect::<Vec<_>>(),
    })))
}

/// `DELETE /v1/me/devices/{id}`: its codes are refused from now on.
pub(crate) async fn revoke_device(
    State(state): State<Arc<AppState>>,
    Path(device): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let device_id = id_in_path("dev_", &device, "device")?;
    let device = state
        .payments
        .revoke_device(user.id, device_id, unix_seconds())
        .await
        .map_err(payment_error)?;
    Ok(Json(device_json(&device)))
}

/// `GET /v1/me/pending-payments`: charges waiting for the user to confirm.
pub(crate) async fn pending_payments(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let orders = state
        .payments
        .orders_awaiting(user.id, unix_seconds())
        .map_err(payment_error)?;
    Ok(Json(json!({
        "data": orders.iter().map(order_json).collect::<Vec<_>>(),
    })))
}

// ---- POS -----------------------------------------------------------------------------------

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ChargeBody {
    auth_code: String,
    out_trade_no: String,
    amount: u64,
    currency: String,
    #[serde(default)]
    description: String,
    notify_url: Option<String>,
    outlet_id: Option<String>,
}

/// `POST /v1/pos/charges`: a POS charges the payment code it scanned.
pub(crate) async fn charge(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let merchant = merchant_auth(&state, &method, &uri, &headers, &body).await?;
    let request: ChargeBody = parse(&body)?;
    let idempotency = idempotency(&headers, ("mch", merchant.id), &method, &uri, &body)?;
    let outlet_id = match &request.outlet_id {
        Some(text) => Some(id_in_path("out_", text, "outlet")?),
        None => None,
    };
    let render = |order: &Order| (StatusCode::CREATED.as_u16(), OrderView::of(order).text());
    let result = state
        .payments
        .charge_code(
            &merchant,
            NewCharge {
                auth_code: request.auth_code,
                out_trade_no: request.out_trade_no,
                amount: request.amount,
                currency: request.currency,
                description: request.description,
                notify_url: request.notify_url,
                outlet_id,
            },
            idempotency.as_ref(),
            &render,
            unix_seconds(),
        )
        .await
        .map_err(payment_error)?;
    Ok(outcome(result, render))
}
