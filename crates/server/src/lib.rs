//! The HTTP edge of Tally. Only this crate knows HTTP; it calls the sequencer and the store
//! and renders their answers (errors as RFC 9457 problem+json).

// An edge of the system: it may read the clock and wait (see clippy.toml).
#![allow(clippy::disallowed_methods)]

mod log;
mod metrics;
mod problem;
mod readers;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sequencer::SequencerHandle;
use store::Store;
use tokio::net::TcpListener;

pub use log::receipt_json;
pub use problem::ApiError;
pub use readers::ReaderPool;

/// What every handler can reach.
#[derive(Debug)]
pub struct AppState {
    pub sequencer: SequencerHandle,
    pub readers: Arc<ReaderPool>,
    pub backend: &'static str,
    pub started: Instant,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, sequencer: SequencerHandle) -> Arc<AppState> {
        Arc::new(AppState {
            backend: store.backend(),
            readers: Arc::new(ReaderPool::new(store)),
            sequencer,
            started: Instant::now(),
        })
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/log/checkpoint", get(log::checkpoint))
        .route("/v1/log/receipts/{transfer_id}", get(log::receipt))
        .fallback(not_found)
        .with_state(state)
}

/// Serves until `shutdown` resolves, then stops accepting and finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The process is up.
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// The process can serve: the store answers.
async fn readyz(State(state): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, ApiError> {
    let head = state
        .readers
        .run(|reader| reader.head())
        .await
        .map_err(|error| {
            tracing::warn!(%error, "readiness check: the store does not answer");
            ApiError::unavailable("the store does not answer")
        })?;
    Ok(Json(serde_json::json!({
        "status": "ready",
        "backend": state.backend,
        "ledger_batches": head.batches,
    })))
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let text = metrics::render(&state);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such endpoint.")
}
