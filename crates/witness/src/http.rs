//! The witness's HTTP edge: `POST /add-checkpoint`, for the caller to nest under the witness's
//! submission prefix. Maps each [`AddCheckpointError`] to the status code C2SP tlog-witness
//! assigns it. Refusals caused by the request say what was wrong with it; failures of the witness
//! itself are logged here and answered with a bare 500.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use crate::protocol::REQUEST_BODY_BYTES_MAX;
use crate::witness::{AddCheckpointError, Witness};

/// The content type of a "409 Conflict" body carrying the witness's tree size.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// The witness's routes: `POST /add-checkpoint`. Bodies over
/// [`REQUEST_BODY_BYTES_MAX`] are refused with 413 before they are read in full.
pub fn router(witness: Arc<Witness>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .layer(DefaultBodyLimit::max(REQUEST_BODY_BYTES_MAX))
        .with_state(witness)
}

async fn add_checkpoint(State(witness): State<Arc<Witness>>, body: Bytes) -> Response {
    let Ok(body) = String::from_utf8(body.to_vec()) else {
        return text(
            StatusCode::BAD_REQUEST,
            "request body is not UTF-8\n".to_owned(),
        );
    };
    let Some(now_s) = unix_time_s() else {
        tracing::error!("the system clock is before 1970; refusing to timestamp cosignatures");
        return internal_error();
    };
    // SQLite writes and fsyncs: keep them off the async workers.
    let outcome = tokio::task::spawn_blocking(move || witness.add_checkpoint(&body, now_s)).await;
    match outcome {
        Ok(Ok(cosignature)) => text(StatusCode::OK, cosignature),
        Ok(Err(refusal)) => refusal_response(refusal),
        Err(join_error) => {
            tracing::error!(error = %join_error, "add-checkpoint task failed");
            internal_error()
        }
    }
}

fn refusal_response(refusal: AddCheckpointError) -> Response {
    let status = match &refusal {
        AddCheckpointError::Conflict { size } => {
            return (
                StatusCode::CONFLICT,
                [(header::CONTENT_TYPE, SIZE_CONTENT_TYPE)],
                format!("{size}\n"),
            )
                .into_response();
        }
        AddCheckpointError::Malformed(_) => StatusCode::BAD_REQUEST,
        AddCheckpointError::UnknownLog => StatusCode::NOT_FOUND,
        AddCheckpointError::BadSignature => StatusCode::FORBIDDEN,
        AddCheckpointError::RootMismatch => StatusCode::CONFLICT,
        AddCheckpointError::BadProof => StatusCode::UNPROCESSABLE_ENTITY,
        AddCheckpointError::Store(_) | AddCheckpointError::Cosign(_) => {
            tracing::error!(error = %error_chain(&refusal), "add-checkpoint failed");
            return internal_error();
        }
    };
    tracing::info!(
        status = status.as_u16(),
        "add-checkpoint refused: {refusal}"
    );
    text(status, format!("{refusal}\n"))
}

fn text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)], body).into_response()
}

fn internal_error() -> Response {
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error\n".to_owned(),
    )
}

/// The error and its sources, for the log.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

/// The cosignature timestamp. This edge is the one place the witness reads the clock; the
/// workspace bans the call elsewhere.
#[allow(clippy::disallowed_methods)]
fn unix_time_s() -> Option<u64> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|elapsed| elapsed.as_secs())
}
