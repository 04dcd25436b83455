//! E-invoices over HTTP: merchants issue invoices for paid orders, read and list them and void
//! them with red-letter invoices; anyone holding an invoice verifies it; operators record an
//! organisation's reimbursement, once.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Json;
use serde_json::{json, Value};
use services::invoices::{LineRequest, INVOICE_DOCUMENT_BYTES_MAX};
use services::payments::{Claim, InvoiceStatus, NewInvoice, Reimbursed, Voided};
use services::secrets::{hex, parse_hex32};
use services::time::rfc3339_seconds;
use store::{Invoice, InvoiceReimbursement};

use crate::payments::{
    id_in_path, idempotency, merchant_auth, outcome, page_json, payment_error, rendered, PageQuery,
};
use crate::{unix_seconds, ApiError, AppState};

/// Largest body of an invoice endpoint: fifty lines, or a document to verify (its quotes
/// escaped inside a JSON string).
pub const INVOICE_BODY_BYTES_MAX: usize = 2 * INVOICE_DOCUMENT_BYTES_MAX;

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.len() > INVOICE_BODY_BYTES_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("The body is at most {INVOICE_BODY_BYTES_MAX} bytes."),
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

/// The digest a request names: given as 64 hex digits, or computed from the document given.
fn digest_of(digest: Option<&str>, document: Option<&str>) -> Result<[u8; 32], ApiError> {
    match (digest, document) {
        (Some(digest), None) => parse_hex32(digest)
            .ok_or_else(|| invalid("digest: the SHA-256 of the document, 64 hex digits.")),
        (None, Some(document)) => Ok(services::invoices::digest(document)),
        _ => Err(invalid(
            "Give the document (its canonical text, as issued) or its digest, not both.",
        )),
    }
}

fn invoice_json(invoice: &Invoice) -> Value {
    let document: Value = serde_json::from_str(&invoice.document).unwrap_or(Value::Null);
    json!({
        "id": format!("inv_{}", invoice.id),
        "object": "invoice",
        "merchant_id": format!("mch_{}", invoice.merchant_id),
        "order_id": format!("ord_{}", invoice.order_id),
        "kind": invoice.kind.as_str(),
        "number": invoice.number,
        "state": invoice.state.as_str(),
        "original_id": invoice.original_id.map(|id| format!("inv_{id}")),
        "seller": document["seller"],
        "buyer": {"name": invoice.buyer_name, "tax_id": invoice.buyer_tax_id},
        "currency": invoice.currency,
        "items": document["items"],
        "amount": invoice.amount,
        "tax": invoice.tax,
        "total": invoice.total,
        "issued_at": rfc3339_seconds(invoice.issued_at),
        "updated_at": rfc3339_seconds(invoice.updated_at),
        "document": invoice.document,
        "digest": hex(&invoice.digest),
        "registration_id": format!("reg_{}", invoice.registration_id),
    })
}

fn reimbursement_json(reimbursement: &InvoiceReimbursement) -> Value {
    json!({
        "id": format!("reimb_{}", reimbursement.id),
        "object": "invoice_reimbursement",
        "invoice_id": format!("inv_{}", reimbursement.invoice_id),
        "organisation": reimbursement.organisation,
        "claim_reference": reimbursement.claim_reference,
        "recorded_by": format!("key_{}", reimbursement.credential_id),
        "created_at": rfc3339_seconds(reimbursement.created_at),
    })
}

/// Another invoice, as named from one it voids or is voided by.
fn reference_json(invoice: Option<&Invoice>) -> Value {
    invoice.map_or(
        Value::Null,
        |invoice| json!({"id": format!("inv_{}", invoice.id), "number": invoice.number}),
    )
}

/// A registration's receipt (leaf, inclusion proof, signed checkpoint), or null while no
/// checkpoint covers it yet.
async fn receipt(state: &AppState, registration_id: u64) -> Result<Value, ApiError> {
    let receipt = state
        .readers
        .run(move |reader| Ok(sequencer::registration_receipt(reader, registration_id)))
        .await
        .map_err(|error| {
            tracing::error!(%error, "reading an invoice's receipt");
            ApiError::unavailable("the store does not answer")
        })?;
    Ok(match receipt {
        Ok(receipt) => crate::log::registration_receipt_json(registration_id, &receipt),
        Err(error) => {
            tracing::warn!(%error, "an invoice's receipt cannot be built yet");
            Value::Null
        }
    })
}

/// An invoice for its merchant: what became of it, and its registration's receipt.
async fn status_json(state: &AppState, status: &InvoiceStatus) -> Result<Value, ApiError> {
    let mut body = invoice_json(&status.invoice);
    body["reimbursement"] = status
        .reimbursement
        .as_ref()
        .map_or(Value::Null, reimbursement_json);
    body["voided_by"] = reference_json(status.voided_by.as_ref());
    body["receipt"] = receipt(state, status.invoice.registration_id).await?;
    Ok(body)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BuyerBody {
    name: String,
    tax_id: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemBody {
    description: String,
    quantity: u64,
    unit_price: u64,
    tax_rate_bps: u32,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct InvoiceBody {
    order_id: String,
    seller_tax_id: String,
    buyer: BuyerBody,
    items: Vec<ItemBody>,
}

/// `POST /v1/invoices`: issues an invoice for a paid order, registered in the trust log.
pub(crate) async fn issue(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let merchant = merchant_auth(&state, &method, &uri, &headers, &body).await?;
    let request: InvoiceBody = parse(&body)?;
    let order_id = id_in_path("ord_", &request.order_id, "order")?;
    let idempotency = idempotency(&headers, ("mch", merchant.id), &method, &uri, &body)?;
    let input = NewInvoice {
        order_id,
        seller_tax_id: request.seller_tax_id,
        buyer_name: request.buyer.name,
        buyer_tax_id: request.buyer.tax_id,
        items: request
            .items
            .into_iter()
            .map(|item| LineRequest {
                description: item.description,
                quantity: item.quantity,
                unit_price: item.unit_price,
                tax_rate_bps: item.tax_rate_bps,
            })
            .collect(),
    };
    let render = |invoice: &Invoice| rendered(invoice_json(invoice), StatusCode::CREATED);
    let result = state
        .payments
        .issue_invoice(
            &merchant,
            input,
            idempotency.as_ref(),
            &render,
            unix_seconds(),
        )
        .await
        .map_err(payment_error)?;
    Ok(outcome(result, render))
}

/// `GET /v1/invoices/{id}`: one of the merchant's invoices, with its receipt.
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    Path(invoice): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let merchant = merchant_auth(&state, &method, &uri, &headers, b"").await?;
    let invoice_id = id_in_path("inv_", &invoice, "invoice")?;
    let payments = &state.payments;
    let status = payments
        .invoice(merchant.id, invoice_id)
        .and_then(|invoice| payments.invoice_status(invoice))
        .map_err(payment_error)?;
    Ok(Json(status_json(&state, &status).await?))
}

/// `GET /v1/invoices`: a page of the merchant's invoices.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Query(page): Query<PageQuery>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let merchant = merchant_auth(&state, &method, &uri, &headers, b"").await?;
    let limit = page.limit()?;
    let invoices = state
        .payments
        .invoices(merchant.id, page.after("inv_")?, limit + 1)
        .map_err(payment_error)?;
    Ok(Json(page_json(invoices, limit, invoice_json)))
}

/// `POST /v1/invoices/{id}/void`: the merchant voids an unreimbursed invoice with a red-letter
/// invoice.
pub(crate) async fn void(
    State(state): State<Arc<AppState>>,
    Path(invoice): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let merchant = merchant_auth(&state, &method, &uri, &headers, &body).await?;
    let invoice_id = id_in_path("inv_", &invoice, "invoice")?;
    if !body.is_empty() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Empty {}
        let _: Empty = parse(&body)?;
    }
    let idempotency = idempotency(&headers, ("mch", merchant.id), &method, &uri, &body)?;
    let render = |voided: &Voided| {
        let mut body = invoice_json(&voided.red_letter);
        body["original"] = json!({
            "id": format!("inv_{}", voided.original.id),
            "number": voided.original.number,
            "state": voided.original.state.as_str(),
        });
        rendered(body, StatusCode::CREATED)
    };
    let result = state
        .payments
        .void_invoice(
            &merchant,
            invoice_id,
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
struct VerifyBody {
    number: String,
    seller_tax_id: String,
    digest: Option<String>,
    document: Option<String>,
}

/// `POST /v1/invoices/verify`: anyone holding an invoice asks whether it was registered, and
/// what became of it.
pub(crate) async fn verify(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: VerifyBody = parse(&body)?;
    let digest = digest_of(request.digest.as_deref(), request.document.as_deref())?;
    let found = state
        .payments
        .verify_invoice(&request.seller_tax_id, &request.number, &digest)
        .map_err(payment_error)?;
    let Some(status) = found else {
        return Ok(Json(json!({
            "registered": false,
            "status": null,
            "message": "No invoice registered under this number and seller tax id has this digest: the document was altered, or never issued here.",
            "digest": hex(&digest),
        })));
    };
    let invoice = &status.invoice;
    let message = match (invoice.kind, invoice.state) {
        (store::InvoiceKind::RedLetter, _) => {
            "A red-letter invoice, registered: it voids the invoice it names."
        }
        (_, store::InvoiceState::Issued) => "Registered, and in force.",
        (_, store::InvoiceState::Reimbursed) => {
            "Registered, and already reimbursed: do not reimburse it again."
        }
        (_, store::InvoiceState::Voided) => {
            "Registered, but voided by a red-letter invoice: it is no longer valid."
        }
    };
    Ok(Json(json!({
        "registered": true,
        "status": invoice.state.as_str(),
        "message": message,
        "digest": hex(&digest),
        "invoice": {
            "id": format!("inv_{}", invoice.id),
            "kind": invoice.kind.as_str(),
            "number": invoice.number,
            "seller_tax_id": invoice.seller_tax_id,
            "currency": invoice.currency,
            "total": invoice.total,
            "issued_at": rfc3339_seconds(invoice.issued_at),
            "registration_id": format!("reg_{}", invoice.registration_id),
        },
        "reimbursed_at": status.reimbursement.as_ref().map(|reimbursement| rfc3339_seconds(reimbursement.created_at)),
        "voided_by": reference_json(status.voided_by.as_ref()),
        "original": reference_json(status.original.as_ref()),
        "receipt": receipt(&state, invoice.registration_id).await?,
    })))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReimbursementBody {
    organisation: String,
    claim_reference: String,
    digest: Option<String>,
    document: Option<String>,
}

/// `POST /v1/invoices/{id}/reimbursements`: an operator records an organisation's
/// reimbursement of an invoice, once.
pub(crate) async fn reimburse(
    State(state): State<Arc<AppState>>,
    Path(invoice): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let credential =
        crate::auth::authenticate(&state, &headers, store::CredentialRole::Operator).await?;
    let invoice_id = id_in_path("inv_", &invoice, "invoice")?;
    let request: ReimbursementBody = parse(&body)?;
    let digest = digest_of(request.digest.as_deref(), request.document.as_deref())?;
    let idempotency = idempotency(&headers, ("key", credential.id), &method, &uri, &body)?;
    let render = |reimbursed: &Reimbursed| {
        let mut body = reimbursement_json(&reimbursed.reimbursement);
        body["invoice_number"] = json!(reimbursed.invoice.number);
        body["invoice_state"] = json!(reimbursed.invoice.state.as_str());
        rendered(body, StatusCode::CREATED)
    };
    let result = state
        .payments
        .reimburse_invoice(
            invoice_id,
            Claim {
                organisation: request.organisation,
                claim_reference: request.claim_reference,
                digest,
                credential_id: credential.id,
            },
            idempotency.as_ref(),
            &render,
            unix_seconds(),
        )
        .await
        .map_err(payment_error)?;
    Ok(outcome(result, render))
}
