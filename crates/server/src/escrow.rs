//! Escrow over HTTP: merchants ship escrowed orders, buyers confirm receipt (with the payment
//! password) or open a dispute, operators settle disputes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::Json;
use serde_json::Value;
use services::escrow::Resolution;
use services::payments::{escrow_json, EscrowActor};

use crate::payments::{
    check_payment_password, id_in_path, merchant_auth, parse, payment_error, session_user,
};
use crate::{unix_seconds, ApiError, AppState};

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ShipmentBody {
    carrier: String,
    tracking_no: String,
}

/// `POST /v1/orders/{id}/shipment`: the merchant ships an escrowed order.
pub(crate) async fn ship(
    State(state): State<Arc<AppState>>,
    Path(order): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let merchant = merchant_auth(&state, &method, &uri, &headers, &body).await?;
    let order_id = id_in_path("ord_", &order, "order")?;
    let request: ShipmentBody = parse(&body)?;
    let escrow = state
        .payments
        .ship(
            merchant.id,
            order_id,
            &request.carrier,
            &request.tracking_no,
            unix_seconds(),
        )
        .await
        .map_err(payment_error)?;
    Ok(Json(escrow_json(&escrow)))
}

/// `GET /v1/orders/{id}/escrow`: an escrowed order's escrow, to its merchant.
pub(crate) async fn merchant_view(
    State(state): State<Arc<AppState>>,
    Path(order): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let merchant = merchant_auth(&state, &method, &uri, &headers, b"").await?;
    let order_id = id_in_path("ord_", &order, "order")?;
    let escrow = state
        .payments
        .escrow(Some(EscrowActor::Merchant(merchant.id)), order_id)
        .map_err(payment_error)?;
    Ok(Json(escrow_json(&escrow)))
}

/// `GET /v1/escrows/{order_id}`: the buyer's escrow.
pub(crate) async fn buyer_view(
    State(state): State<Arc<AppState>>,
    Path(order): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let order_id = id_in_path("ord_", &order, "order")?;
    let escrow = state
        .payments
        .escrow(Some(EscrowActor::Buyer(user.id)), order_id)
        .map_err(payment_error)?;
    Ok(Json(escrow_json(&escrow)))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmBody {
    payment_password: String,
}

/// `POST /v1/escrows/{order_id}/confirm`: the buyer confirms receipt; the money goes to the
/// merchant.
pub(crate) async fn confirm(
    State(state): State<Arc<AppState>>,
    Path(order): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (token, user) = session_user(&state, &headers)?;
    let order_id = id_in_path("ord_", &order, "order")?;
    let request: ConfirmBody = parse(&body)?;
    let user = check_payment_password(&state, token, user, request.payment_password).await?;
    let escrow = state
        .payments
        .confirm_receipt(&user, order_id, unix_seconds())
        .await
        .map_err(payment_error)?;
    Ok(Json(escrow_json(&escrow)))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DisputeBody {
    reason: String,
    #[serde(default)]
    evidence: String,
}

/// `POST /v1/escrows/{order_id}/dispute`: the buyer disputes; frozen until an operator decides.
pub(crate) async fn dispute(
    State(state): State<Arc<AppState>>,
    Path(order): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (_, user) = session_user(&state, &headers)?;
    let order_id = id_in_path("ord_", &order, "order")?;
    let request: DisputeBody = parse(&body)?;
    let escrow = state
        .payments
        .dispute(
            &user,
            order_id,
            &request.reason,
            &request.evidence,
            unix_seconds(),
        )
        .await
        .map_err(payment_error)?;
    Ok(Json(escrow_json(&escrow)))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolutionBody {
    /// refund, release or split.
    outcome: String,
    /// What goes back to the buyer in a split.
    to_buyer: Option<u64>,
    note: String,
}

/// `POST /v1/escrows/{order_id}/resolution`: an operator settles a dispute.
pub(crate) async fn resolve(
    State(state): State<Arc<AppState>>,
    Path(order): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let credential =
        crate::auth::authenticate(&state, &headers, store::CredentialRole::Operator).await?;
    let order_id = id_in_path("ord_", &order, "order")?;
    let request: ResolutionBody = parse(&body)?;
    let resolution = match (request.outcome.as_str(), request.to_buyer) {
        ("refund", None) => Resolution::RefundBuyer,
        ("release", None) => Resolution::ReleaseToSeller,
        ("split", Some(to_buyer)) => Resolution::Split { to_buyer },
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "outcome: refund, release, or split with to_buyer (minor units).",
            ))
        }
    };
    let escrow = state
        .payments
        .resolve_dispute(
            credential.id,
            order_id,
            resolution,
            &request.note,
            unix_seconds(),
        )
        .await
        .map_err(payment_error)?;
    Ok(Json(escrow_json(&escrow)))
}
