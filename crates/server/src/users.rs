//! Users over HTTP: one-time codes, registration, login sessions, the signed-in user.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use services::users::{CodePurpose, UserError};

use crate::{unix_seconds, ApiError, AppState};

/// Largest body of the user endpoints.
const BODY_BYTES_MAX: usize = 2 * 1024;

fn user_error(error: UserError) -> ApiError {
    let (status, code) = match &error {
        UserError::InvalidPhone => (StatusCode::BAD_REQUEST, "invalid_phone"),
        UserError::WeakPassword => (StatusCode::BAD_REQUEST, "weak_password"),
        UserError::CodeThrottled { .. } => (StatusCode::TOO_MANY_REQUESTS, "code_throttled"),
        UserError::CodeInvalid => (StatusCode::UNAUTHORIZED, "invalid_code"),
        UserError::CodeExpired => (StatusCode::UNAUTHORIZED, "code_expired"),
        UserError::CodeAttemptsExceeded => (StatusCode::UNAUTHORIZED, "code_attempts_exceeded"),
        UserError::PhoneTaken => (StatusCode::CONFLICT, "phone_taken"),
        UserError::WrongCredentials => (StatusCode::UNAUTHORIZED, "wrong_credentials"),
        UserError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        UserError::InvalidPaymentPassword => (StatusCode::BAD_REQUEST, "invalid_payment_password"),
        UserError::PaymentPasswordNotSet => (StatusCode::CONFLICT, "payment_password_not_set"),
        UserError::WrongPaymentPassword { .. } => {
            (StatusCode::UNAUTHORIZED, "wrong_payment_password")
        }
        UserError::PaymentLocked { .. } => (StatusCode::LOCKED, "payment_locked"),
        UserError::Random(_) | UserError::Store(_) | UserError::Ledger(_) => {
            tracing::error!(%error, "a user request failed");
            return ApiError::unavailable("the request could not be completed; retry later");
        }
    };
    ApiError::new(status, code, error.to_string())
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.len() > BODY_BYTES_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("The body is at most {BODY_BYTES_MAX} bytes."),
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

/// Runs blocking user work (SQLite, Argon2id) off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, UserError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| ApiError::unavailable("the request was lost"))?
        .map_err(user_error)
}

fn user_json(user: &store::User) -> serde_json::Value {
    serde_json::json!({
        "id": format!("usr_{}", user.id),
        "phone": user.phone,
        "tier": user.tier,
        "wallet_account_id": user.wallet_account_id.to_string(),
        "created_at": crate::rfc3339(user.created_at.saturating_mul(1_000_000_000)),
    })
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeRequest {
    phone: String,
    purpose: String,
}

/// `POST /v1/otp`: sends a one-time code by SMS (`purpose`: `register` or `login`).
pub(crate) async fn send_code(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: CodeRequest = parse(&body)?;
    let purpose = CodePurpose::from_name(&request.purpose).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_purpose",
            "purpose is register or login.",
        )
    })?;
    let users = state.users.clone();
    let lifetime = users.config().code_lifetime_s;
    blocking(move || users.send_code(&request.phone, purpose, unix_seconds())).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "sent": true, "expires_in_s": lifetime })),
    )
        .into_response())
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsRequest {
    phone: String,
    password: String,
    code: String,
}

/// `POST /v1/users`: opens an account and its wallet.
pub(crate) async fn register(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: CredentialsRequest = parse(&body)?;
    let users = state.users.clone();
    let user = blocking(move || {
        users.register(
            &request.phone,
            &request.password,
            &request.code,
            unix_seconds(),
        )
    })
    .await?;
    Ok((StatusCode::CREATED, Json(user_json(&user))).into_response())
}

/// `POST /v1/sessions`: logs in with phone, password and a login code.
pub(crate) async fn login(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: CredentialsRequest = parse(&body)?;
    let users = state.users.clone();
    let session = blocking(move || {
        users.login(
            &request.phone,
            &request.password,
            &request.code,
            unix_seconds(),
        )
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "token": session.token,
            "expires_at": crate::rfc3339(session.expires_at.saturating_mul(1_000_000_000)),
            "user": user_json(&session.user),
        })),
    )
        .into_response())
}

fn bearer(headers: &HeaderMap) -> Result<String, ApiError> {
    crate::auth::bearer_token(headers)
        .map(str::to_owned)
        .ok_or_else(|| user_error(UserError::Unauthenticated))
}

/// `GET /v1/me`: the signed-in user and the wallet's balance.
pub(crate) async fn me(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let token = bearer(&headers)?;
    let users = state.users.clone();
    let user = blocking(move || users.authenticate(&token, unix_seconds())).await?;
    let wallet_id = user.wallet_account_id;
    let wallet = state
        .readers
        .run(move |reader| reader.account(wallet_id))
        .await
        .map_err(|error| {
            tracing::error!(%error, "reading a wallet");
            ApiError::unavailable("the store does not answer")
        })?;
    let mut body = user_json(&user);
    if let Some(wallet) = wallet {
        let available = wallet.credits_posted as i128
            - wallet.debits_posted as i128
            - wallet.debits_pending as i128;
        body["wallet"] = serde_json::json!({
            "currency": wallet.currency.as_str(),
            "available": wallet.currency.format_decimal(available.max(0) as u128),
            "on_hold": wallet.currency.format_decimal(wallet.debits_pending),
        });
    }
    Ok(Json(body))
}

/// `DELETE /v1/sessions/current`: logs out; the token stops working at once.
pub(crate) async fn logout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = bearer(&headers)?;
    let users = state.users.clone();
    blocking(move || users.logout(&token)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PaymentPasswordRequest {
    payment_password: String,
    code: String,
}

/// `PUT /v1/me/payment-password`: sets or changes the 6-digit payment password, with a code
/// sent for `payment_password`.
pub(crate) async fn set_payment_password(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let token = bearer(&headers)?;
    let request: PaymentPasswordRequest = parse(&body)?;
    let users = state.users.clone();
    blocking(move || {
        let now = unix_seconds();
        let user = users.authenticate(&token, now)?;
        users.set_payment_password(&user, &request.payment_password, &request.code, now)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
