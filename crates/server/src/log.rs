//! The trust log over HTTP: the latest signed checkpoint and receipts.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sequencer::ReceiptError;

use crate::{ApiError, AppState};

/// A receipt as JSON: what `tally log receipt` prints and `GET /v1/log/receipts/{id}` serves.
pub fn receipt_json(transfer_id: u128, receipt: &trustlog::Receipt) -> serde_json::Value {
    serde_json::json!({
        "transfer_id": transfer_id.to_string(),
        "leaf_index": receipt.leaf_index,
        "tree_size": receipt.tree_size,
        "leaf": BASE64.encode(&receipt.leaf),
        "inclusion_path": receipt.inclusion_path.iter().map(|hash| BASE64.encode(hash)).collect::<Vec<_>>(),
        "checkpoint": receipt.checkpoint,
    })
}

/// `GET /v1/log/checkpoint`: the latest signed checkpoint, as a C2SP signed note.
pub(crate) async fn checkpoint(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let latest = state
        .readers
        .run(|reader| reader.latest_checkpoint())
        .await
        .map_err(|error| {
            tracing::error!(%error, "reading the latest checkpoint");
            ApiError::unavailable("the store does not answer")
        })?;
    let checkpoint = latest.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_checkpoint",
            "The log has no signed checkpoint yet.",
        )
    })?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        checkpoint.note,
    )
        .into_response())
}

/// `GET /v1/log/receipts/{transfer_id}`.
pub(crate) async fn receipt(
    State(state): State<Arc<AppState>>,
    Path(transfer_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let transfer_id: u128 = transfer_id
        .parse()
        .ok()
        .filter(|id| *id > 0 && *id <= ledger::VALUE_MAX)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_transfer_id",
                "A transfer id is a positive integer below 2^63.",
            )
        })?;
    let result = state
        .readers
        .run(move |reader| Ok(sequencer::transfer_receipt(reader, transfer_id)))
        .await
        .map_err(|error| {
            tracing::error!(%error, "reading for a receipt");
            ApiError::unavailable("the store does not answer")
        })?;
    match result {
        Ok(receipt) => Ok(Json(receipt_json(transfer_id, &receipt))),
        Err(ReceiptError::NotFound(_)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "transfer_not_found",
            format!("No transfer {transfer_id}."),
        )),
        Err(error @ (ReceiptError::NoCheckpoint | ReceiptError::NotYetCheckpointed { .. })) => {
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "not_yet_checkpointed",
                error.to_string(),
            ))
        }
        Err(error) => {
            tracing::error!(%error, transfer_id = %transfer_id, "building a receipt");
            Err(ApiError::unavailable(
                "the receipt cannot be built right now",
            ))
        }
    }
}
