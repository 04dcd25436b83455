//! The HTTP edge of Tally. Only this crate knows HTTP; it calls the sequencer and the store
//! and renders their answers (errors as RFC 9457 problem+json).

// An edge of the system: it may read the clock and wait (see clippy.toml).
#![allow(clippy::disallowed_methods)]

pub mod api;
mod auth;
mod bill_payments;
mod envelopes;
mod escrow;
mod invoices;
mod log;
mod metrics;
mod payments;
mod problem;
mod qr;
mod readers;
mod sql;
mod users;
pub mod workers;

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

pub use auth::{issue_credential, IssueError};
pub use log::{receipt_json, registration_json, registration_receipt_json};
pub use problem::ApiError;
pub use readers::ReaderPool;

/// How the services behave: limits, lifetimes, the currency.
#[derive(Debug, Clone, Default)]
pub struct ServiceConfig {
    pub users: services::users::UserConfig,
    pub payments: services::payments::PaymentConfig,
}

/// What every handler can reach.
#[derive(Debug)]
pub struct AppState {
    pub sequencer: SequencerHandle,
    pub store: Arc<dyn Store>,
    pub readers: Arc<ReaderPool>,
    pub backend: &'static str,
    pub started: Instant,
    /// The background workers' counters.
    pub workers: Arc<workers::WorkerMetrics>,
    /// When this node witnesses other institutions' logs: `POST /v1/witness/add-checkpoint`.
    pub witness: Option<Arc<witness::Witness>>,
    pub users: Arc<services::users::Users>,
    pub payments: Arc<services::payments::Payments>,
    pub cards: Arc<services::cards::Cards>,
    /// Nonces of signed merchant requests seen in the replay window.
    pub nonces: services::signatures::NonceCache,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        sequencer: SequencerHandle,
    ) -> Result<Arc<AppState>, services::payments::PaymentError> {
        Self::with_workers(store, sequencer, workers::WorkerMetrics::new(), None)
    }

    pub fn with_workers(
        store: Arc<dyn Store>,
        sequencer: SequencerHandle,
        workers: Arc<workers::WorkerMetrics>,
        witness: Option<Arc<witness::Witness>>,
    ) -> Result<Arc<AppState>, services::payments::PaymentError> {
        Self::with_config(store, sequencer, workers, witness, ServiceConfig::default())
    }

    /// The state with the services configured (limits, lifetimes, the currency).
    pub fn with_config(
        store: Arc<dyn Store>,
        sequencer: SequencerHandle,
        workers: Arc<workers::WorkerMetrics>,
        witness: Option<Arc<witness::Witness>>,
        config: ServiceConfig,
    ) -> Result<Arc<AppState>, services::payments::PaymentError> {
        let handles = Arc::new(services::support::Handles::new(store.clone()));
        let sms: Arc<dyn services::sms::SmsGateway> =
            Arc::new(services::sms::OutboxGateway::new(store.clone()));
        let users = Arc::new(services::users::Users::new(
            handles.clone(),
            sms.clone(),
            sequencer.clone(),
            config.users,
        )?);
        // The built-in simulated biller, its bills due counted from today.
        let billers = Arc::new(services::billers::SimulatedBiller::new(
            "Tally Simulated Biller",
            unix_seconds(),
        ));
        let payments = Arc::new(services::payments::Payments::new(
            handles.clone(),
            sequencer.clone(),
            config.payments,
            billers,
        )?);
        // The built-in simulated bank texts its codes through the same SMS gateway.
        let bank = Arc::new(services::bank::SimulatedBank::new(
            "Tally Simulated Bank",
            Arc::new(move |phone: &str, text: &str| {
                if let Err(error) = sms.send(phone, text, unix_seconds()) {
                    tracing::warn!(%error, "the simulated bank could not send its code");
                }
            }),
        ));
        let cards = Arc::new(services::cards::Cards::new(
            handles,
            sequencer.clone(),
            bank,
            payments.config().currency,
        ));
        Ok(Arc::new(AppState {
            backend: store.backend(),
            readers: Arc::new(ReaderPool::new(store.clone())),
            store,
            sequencer,
            started: Instant::now(),
            workers,
            witness,
            users,
            payments,
            cards,
            nonces: services::signatures::NonceCache::default(),
        }))
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    let witness = state.witness.clone();
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(api::openapi));
    for endpoint in api::endpoints() {
        // The table's `{path}` of the tiles is a wildcard in the router.
        let path = endpoint.path.replace("{path}", "{*path}");
        router = router.route(&path, endpoint.handler);
    }
    let router = router.fallback(not_found).with_state(state);
    match witness {
        Some(witness) => router.nest("/v1/witness", witness::router(witness)),
        None => router,
    }
}

/// Serves until `shutdown` resolves, then stops accepting and finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // HTTP/1.1 only, one task per connection. `axum::serve` would first sniff each
    // connection for HTTP/2 and select on a shutdown signal at every poll: a few per cent of
    // the server's CPU in `tally bench api`, for a protocol nothing here speaks.
    let router = router(state);
    let mut http = hyper::server::conn::http1::Builder::new();
    // A client that sends its request's head slower than this is cut off, so that idle
    // half-sent requests cannot hold connections open.
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "a connection ended with an error");
            }
        });
    }
    // No new connections; each open one finishes the request in hand and closes.
    drop(listener);
    connections.shutdown().await;
    Ok(())
}

/// How long a request's head may take to arrive.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A refused `accept`: a connection that went away before it was taken is nothing; running
/// out of descriptors or memory passes, so wait a moment rather than spin.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
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

/// Seconds since the Unix epoch, by the system clock.
pub fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

pub use services::time::rfc3339;

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such endpoint.")
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_renders_civil_utc_times() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            super::rfc3339(951_782_400_000_000_000 + 1_500),
            "2000-02-29T00:00:00.000001Z"
        );
        assert_eq!(
            super::rfc3339(1_795_305_599_123_456_789),
            "2026-11-21T23:59:59.123456Z"
        );
    }
}
