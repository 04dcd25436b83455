//! The trust log over HTTP: the latest signed checkpoint and receipts.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sequencer::{ReceiptError, RegistrationOutcome};
use services::secrets::hex;

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
        .run(|reader| {
            let Some(checkpoint) = reader.latest_checkpoint()? else {
                return Ok(None);
            };
            sequencer::cosigned_note(reader, &checkpoint).map(Some)
        })
        .await
        .map_err(|error| {
            tracing::error!(%error, "reading the latest checkpoint");
            ApiError::unavailable("the store does not answer")
        })?;
    let note = latest.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_checkpoint",
            "The log has no signed checkpoint yet.",
        )
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        note,
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
        Err(error) => Err(receipt_error(error)),
    }
}

/// Largest deposit request body.
const DEPOSIT_BODY_BYTES_MAX: usize = 4 * 1024;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DepositRequest {
    kind: String,
    /// SHA-256 of the document, 64 hex digits.
    digest: String,
    #[serde(default)]
    reference: String,
}

fn parse_digest(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (index, pair) in text.as_bytes().chunks(2).enumerate() {
        digest[index] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(digest)
}

fn bad_request(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, detail)
}

/// A registration and its receipt, as the deposit endpoints answer.
pub fn registration_json(
    stored: &store::StoredRegistration,
    receipt: &trustlog::Receipt,
) -> serde_json::Value {
    let registration = &stored.registration;
    serde_json::json!({
        "id": format!("reg_{}", registration.id),
        "kind": registration.kind.name(),
        "digest": hex(&registration.digest),
        "reference": registration.reference,
        "registrant": format!("key_{}", registration.registrant),
        "created_at": crate::rfc3339(registration.timestamp),
        "leaf_index": stored.leaf_index,
        "receipt": registration_receipt_json(registration.id, receipt),
    })
}

/// A registration's receipt: the fields of a transfer's, with `registration_id`.
pub fn registration_receipt_json(
    registration_id: u64,
    receipt: &trustlog::Receipt,
) -> serde_json::Value {
    serde_json::json!({
        "registration_id": registration_id.to_string(),
        "leaf_index": receipt.leaf_index,
        "tree_size": receipt.tree_size,
        "leaf": BASE64.encode(&receipt.leaf),
        "inclusion_path": receipt.inclusion_path.iter().map(|hash| BASE64.encode(hash)).collect::<Vec<_>>(),
        "checkpoint": receipt.checkpoint,
    })
}

/// The receipt of registration `registration_id` as JSON, or null while no checkpoint covers it
/// yet.
pub(crate) async fn registration_receipt_value(
    state: &AppState,
    registration_id: u64,
) -> Result<serde_json::Value, ApiError> {
    let receipt = state
        .readers
        .run(move |reader| Ok(sequencer::registration_receipt(reader, registration_id)))
        .await
        .map_err(|error| {
            tracing::error!(%error, "reading a registration's receipt");
            ApiError::unavailable("the store does not answer")
        })?;
    Ok(match receipt {
        Ok(receipt) => registration_receipt_json(registration_id, &receipt),
        Err(error) => {
            tracing::warn!(%error, "a registration's receipt cannot be built yet");
            serde_json::Value::Null
        }
    })
}

/// `POST /v1/log/deposits`: certificate deposit. Registers a document's SHA-256 digest in the
/// trust log and answers with its receipt once it is durable and under a signed checkpoint.
pub(crate) async fn deposit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let credential =
        crate::auth::authenticate(&state, &headers, store::CredentialRole::Depositor).await?;
    if body.len() > DEPOSIT_BODY_BYTES_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("A deposit request is at most {DEPOSIT_BODY_BYTES_MAX} bytes."),
        ));
    }
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| {
            bad_request(
                "idempotency_key_required",
                "A deposit needs an Idempotency-Key header (1 to 255 printable ASCII characters).",
            )
        })?;
    let request: DepositRequest = serde_json::from_slice(&body).map_err(|error| {
        bad_request(
            "invalid_body",
            format!("The body is not a deposit: {error}."),
        )
    })?;
    let kind = store::RegistrationKind::from_name(&request.kind).ok_or_else(|| {
        bad_request(
            "invalid_kind",
            "kind must be one of document, merchant_code, invoice, device_certificate.",
        )
    })?;
    let digest = parse_digest(&request.digest).ok_or_else(|| {
        bad_request(
            "invalid_digest",
            "digest must be the SHA-256 of the document: 64 hex digits.",
        )
    })?;
    let new = store::NewRegistration::new(
        kind,
        digest,
        u128::from(credential.id),
        &request.reference,
        idempotency_key,
    )
    .map_err(|error| bad_request("invalid_deposit", error.to_string()))?;
    let ticket = state.sequencer.register(vec![new]).map_err(|error| {
        tracing::error!(%error, "queueing a deposit");
        ApiError::unavailable("the ledger is not accepting requests")
    })?;
    let mut outcomes = ticket.await.map_err(|error| {
        tracing::error!(%error, "committing a deposit");
        ApiError::unavailable("the deposit was not committed; retry with the same Idempotency-Key")
    })?;
    let (status, stored) = match outcomes.pop() {
        Some(RegistrationOutcome::Created(stored)) => (StatusCode::CREATED, stored),
        Some(RegistrationOutcome::Exists(stored)) => (StatusCode::OK, stored),
        Some(RegistrationOutcome::ExistsWithDifferentFields(_)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                "This Idempotency-Key was used for another deposit.",
            ))
        }
        None => return Err(ApiError::unavailable("the deposit was not answered")),
    };
    let body = registration_body(&state, stored).await?;
    Ok((status, Json(body)).into_response())
}

async fn registration_body(
    state: &AppState,
    stored: store::StoredRegistration,
) -> Result<serde_json::Value, ApiError> {
    let id = stored.registration.id;
    let receipt = state
        .readers
        .run(move |reader| Ok(sequencer::registration_receipt(reader, id)))
        .await
        .map_err(|error| {
            tracing::error!(%error, "reading for a receipt");
            ApiError::unavailable("the store does not answer")
        })?
        .map_err(receipt_error)?;
    Ok(registration_json(&stored, &receipt))
}

/// `GET /v1/log/deposits/{id}`: a registration with a fresh receipt. Depositors see their own;
/// operators see all.
pub(crate) async fn get_deposit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let credential =
        crate::auth::authenticate(&state, &headers, store::CredentialRole::Depositor).await?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "deposit_not_found",
            format!("No deposit {id} of yours."),
        )
    };
    let number: u64 = id
        .strip_prefix("reg_")
        .and_then(|number| number.parse().ok())
        .ok_or_else(not_found)?;
    let stored = state
        .readers
        .run(move |reader| reader.registration(number))
        .await
        .map_err(|error| {
            tracing::error!(%error, "reading a registration");
            ApiError::unavailable("the store does not answer")
        })?
        .filter(|stored| {
            credential.role == store::CredentialRole::Operator
                || stored.registration.registrant == u128::from(credential.id)
        })
        .ok_or_else(not_found)?;
    Ok(Json(registration_body(&state, stored).await?))
}

fn receipt_error(error: ReceiptError) -> ApiError {
    match error {
        ReceiptError::NotFound(subject) => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("No {subject}."))
        }
        error @ (ReceiptError::NoCheckpoint | ReceiptError::NotYetCheckpointed { .. }) => {
            ApiError::new(
                StatusCode::CONFLICT,
                "not_yet_checkpointed",
                error.to_string(),
            )
        }
        ReceiptError::InvalidRange(detail) => bad_request("invalid_range", detail),
        error => {
            tracing::error!(%error, "building a proof");
            ApiError::unavailable("the proof cannot be built right now")
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct ConsistencyQuery {
    from: u64,
    to: u64,
}

/// `GET /v1/log/consistency?from=&to=`: the RFC 9162 consistency proof between two sizes.
pub(crate) async fn consistency(
    State(state): State<Arc<AppState>>,
    query: Result<Query<ConsistencyQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(ConsistencyQuery { from, to }) = query.map_err(|_| {
        bad_request(
            "invalid_range",
            "from and to are sizes of the log: integers with 0 <= from <= to.",
        )
    })?;
    let proof = state
        .readers
        .run(move |reader| Ok(sequencer::consistency_proof(reader, from, to)))
        .await
        .map_err(|error| {
            tracing::error!(%error, "reading for a consistency proof");
            ApiError::unavailable("the store does not answer")
        })?
        .map_err(receipt_error)?;
    Ok(Json(serde_json::json!({
        "from": from,
        "to": to,
        "proof": proof.iter().map(|hash| BASE64.encode(hash)).collect::<Vec<_>>(),
    })))
}

/// `GET /v1/log/tile/{path}`: hash tiles and entry bundles at their C2SP tlog-tiles paths.
pub(crate) async fn tile(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let path = format!("tile/{path}");
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "tile_not_found", "No such tile.");
    if path.starts_with("tile/entries/") {
        let tile = trustlog::Tile::parse_entries_path(&path).map_err(|_| not_found())?;
        let from = tile.index() * trustlog::TILE_WIDTH as u64;
        let to = from + u64::from(tile.width());
        let leaves = state
            .readers
            .run(move |reader| {
                let mut leaves = Vec::new();
                if reader.head()?.log_size >= to {
                    reader.leaves(from, to, &mut leaves)?;
                }
                Ok(leaves)
            })
            .await
            .map_err(|error| {
                tracing::error!(%error, "reading an entry bundle");
                ApiError::unavailable("the store does not answer")
            })?;
        if leaves.len() as u64 != to - from {
            return Err(not_found());
        }
        let entries: Vec<Vec<u8>> = leaves.iter().map(|(_, leaf)| leaf.bytes()).collect();
        let bundle = trustlog::encode_entry_bundle(&entries).map_err(|error| {
            tracing::error!(%error, "encoding an entry bundle");
            ApiError::unavailable("the entry bundle cannot be built")
        })?;
        return Ok(tile_response(&tile, bundle));
    }
    let tile = trustlog::Tile::parse_path(&path).map_err(|_| not_found())?;
    let (level, index, width) = (tile.level(), tile.index(), tile.width());
    let hashes = state
        .readers
        .run(move |reader| reader.log_tile(level, index, width))
        .await
        .map_err(|error| {
            tracing::error!(%error, "reading a tile");
            ApiError::unavailable("the store does not answer")
        })?
        .ok_or_else(not_found)?;
    Ok(tile_response(&tile, hashes))
}

fn tile_response(tile: &trustlog::Tile, body: Vec<u8>) -> Response {
    // A full tile never changes; a partial one is replaced as the log grows.
    let cache = if tile.is_full() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response()
}

/// How long `POST /v1/log/checkpoint` waits for the checkpoint it asked for.
const CHECKPOINT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
const CHECKPOINT_POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// `POST /v1/log/checkpoint` (operators): a checkpoint of everything committed so far, signed
/// now instead of at the end of the interval.
pub(crate) async fn sign_checkpoint(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    crate::auth::authenticate(&state, &headers, store::CredentialRole::Operator).await?;
    let unavailable = |error: store::StoreError| {
        tracing::error!(%error, "reading the log for a checkpoint");
        ApiError::unavailable("the store does not answer")
    };
    let log_size = state
        .readers
        .run(|reader| reader.head())
        .await
        .map_err(unavailable)?
        .log_size;
    state.sequencer.request_checkpoint().map_err(|error| {
        tracing::error!(%error, "asking for a checkpoint");
        ApiError::unavailable("the ledger is not accepting requests")
    })?;
    let started = std::time::Instant::now();
    loop {
        let note = state
            .readers
            .run(move |reader| match reader.latest_checkpoint()? {
                Some(checkpoint) if checkpoint.size >= log_size => {
                    sequencer::cosigned_note(reader, &checkpoint).map(Some)
                }
                _ => Ok(None),
            })
            .await
            .map_err(unavailable)?;
        if let Some(note) = note {
            return Ok(
                ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response(),
            );
        }
        if log_size == 0 {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "no_checkpoint",
                "The log is empty: there is nothing to sign yet.",
            ));
        }
        if started.elapsed() > CHECKPOINT_WAIT {
            return Err(ApiError::unavailable(
                "the checkpoint was not signed in time; try again",
            ));
        }
        tokio::time::sleep(CHECKPOINT_POLL).await;
    }
}
