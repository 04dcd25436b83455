//! `POST /v1/sql`: read-only SQL for auditors over the ledger, the trust log and the business
//! tables, with a row limit and a time limit. The read-only rule is enforced by the database
//! engine (see the store), not by reading the query.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use store::{QueryLimits, StoreErrorKind, Value, QUERY_TEXT_BYTES_MAX};

use crate::{ApiError, AppState};

/// Rows a request returns when it asks for no limit.
const ROWS_DEFAULT: usize = 1_000;
/// Rows a request may ask for at most.
pub const ROWS_MAX: usize = 10_000;
/// How long one query may run.
pub const QUERY_TIME_MAX: Duration = Duration::from_secs(5);
const BODY_BYTES_MAX: usize = QUERY_TEXT_BYTES_MAX + 1024;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    query: String,
    #[serde(default)]
    limit: Option<usize>,
}

fn json_value(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Integer(integer) => serde_json::Value::from(*integer),
        Value::Real(real) => serde_json::Value::from(*real),
        Value::Text(text) => serde_json::Value::from(text.as_str()),
        Value::Blob(bytes) => serde_json::json!({ "base64": BASE64.encode(bytes) }),
    }
}

pub(crate) async fn query(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let credential =
        crate::auth::authenticate(&state, &headers, store::CredentialRole::Auditor).await?;
    if body.len() > BODY_BYTES_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("A query is at most {QUERY_TEXT_BYTES_MAX} bytes."),
        ));
    }
    let request: SqlRequest = serde_json::from_slice(&body).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("The body must be {{\"query\": \"SELECT …\", \"limit\": n}}: {error}."),
        )
    })?;
    let rows_max = request.limit.unwrap_or(ROWS_DEFAULT);
    if rows_max == 0 || rows_max > ROWS_MAX {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_limit",
            format!("limit must be between 1 and {ROWS_MAX}."),
        ));
    }
    let store = state.store.clone();
    let limits = QueryLimits {
        rows_max,
        time_max: Some(QUERY_TIME_MAX),
    };
    tracing::info!(credential = credential.id, "auditor query");
    let output = tokio::task::spawn_blocking(move || store.query(&request.query, limits))
        .await
        .map_err(|_| ApiError::unavailable("the query was lost"))?
        .map_err(|error| match error.kind {
            StoreErrorKind::Refused | StoreErrorKind::Stale | StoreErrorKind::Other => {
                ApiError::new(StatusCode::BAD_REQUEST, "query_refused", error.message)
            }
            _ => {
                tracing::error!(%error, "auditor query");
                ApiError::unavailable("the store does not answer")
            }
        })?;
    Ok(Json(serde_json::json!({
        "columns": output.columns,
        "rows": output.rows.iter().map(|row| row.iter().map(json_value).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "truncated": output.truncated,
    })))
}
