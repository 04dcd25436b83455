//! API credentials for operators, auditors and depositors: `Authorization: Bearer <token>`.
//!
//! A token is `tally_<id>_<64 hex digits>`: the credential's id and a 256-bit secret drawn from
//! the operating system. Only the secret's SHA-256 digest is stored, and the comparison takes
//! the same time whatever the digest, so neither the database nor the timing reveals it.

use axum::http::{header, HeaderMap, StatusCode};
use services::secrets::{equal as digests_equal, hex};
use sha2::{Digest, Sha256};
use store::{AdminWriter, Credential, CredentialRole, NewCredential, StoreResult};

use crate::{ApiError, AppState};

const TOKEN_PREFIX: &str = "tally_";
const SECRET_BYTES: usize = 32;
/// The longest Authorization header looked at.
const AUTHORIZATION_BYTES_MAX: usize = 256;
/// The longest credential label.
pub const LABEL_BYTES_MAX: usize = 200;

/// Creates a credential and returns its id and token. The token is shown once: only its
/// digest is stored.
pub fn issue_credential(
    admin: &mut dyn AdminWriter,
    role: CredentialRole,
    label: &str,
    now_s: u64,
) -> Result<(u64, String), IssueError> {
    if label.len() > LABEL_BYTES_MAX || label.chars().any(char::is_control) {
        return Err(IssueError::Label);
    }
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::fill(&mut secret).map_err(|error| IssueError::Random(error.to_string()))?;
    let id = admin
        .create_credential(&NewCredential {
            role,
            label: label.to_owned(),
            secret_digest: Sha256::digest(secret).into(),
            created_at: now_s,
        })
        .map_err(IssueError::Store)?;
    Ok((id, format!("{TOKEN_PREFIX}{id}_{}", hex(&secret))))
}

/// Why a credential could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("a label is at most {LABEL_BYTES_MAX} bytes without control characters")]
    Label,
    #[error("the operating system's randomness failed: {0}")]
    Random(String),
    #[error("{0}")]
    Store(store::StoreError),
}

/// `tally_<id>_<hex secret>` → (id, secret).
fn parse_token(token: &str) -> Option<(u64, [u8; SECRET_BYTES])> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret_hex) = rest.split_once('_')?;
    if id.is_empty() || id.len() > 19 || !id.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let id: u64 = id.parse().ok()?;
    if secret_hex.len() != 2 * SECRET_BYTES {
        return None;
    }
    let mut secret = [0u8; SECRET_BYTES];
    for (index, pair) in secret_hex.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        secret[index] = u8::from_str_radix(text, 16).ok()?;
    }
    Some((id, secret))
}

fn unauthorized(detail: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
}

/// The token of an `Authorization: Bearer <token>` header (credentials and user sessions).
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()
        .filter(|text| text.len() <= AUTHORIZATION_BYTES_MAX)?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The credential behind the request's bearer token, if it may act as `wanted`.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    wanted: CredentialRole,
) -> Result<Credential, ApiError> {
    if !headers.contains_key(header::AUTHORIZATION) {
        return Err(unauthorized(
            "This endpoint needs `Authorization: Bearer <token>`.",
        ));
    }
    let text = bearer_token(headers)
        .ok_or_else(|| unauthorized("The Authorization header must be `Bearer <token>`."))?;
    let (id, secret) = parse_token(text).ok_or_else(|| unauthorized("The token is malformed."))?;
    let found: StoreResult<Option<Credential>> =
        state.readers.run(move |reader| reader.credential(id)).await;
    let credential = found
        .map_err(|error| {
            tracing::error!(%error, "reading a credential");
            ApiError::unavailable("the store does not answer")
        })?
        .filter(|credential| credential.revoked_at.is_none())
        .filter(|credential| {
            digests_equal(&credential.secret_digest, &Sha256::digest(secret).into())
        })
        .ok_or_else(|| unauthorized("The token is unknown or revoked."))?;
    if !credential.role.grants(wanted) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "This endpoint needs the {} role; the token's role is {}.",
                wanted.name(),
                credential.role.name()
            ),
        ));
    }
    Ok(credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_only_in_their_exact_form() {
        let secret = [0xab; 32];
        let token = format!("tally_42_{}", hex(&secret));
        assert_eq!(parse_token(&token), Some((42, secret)));
        assert_eq!(parse_token(&token[..token.len() - 1]), None);
        assert_eq!(parse_token(&format!("{token}0")), None);
        assert_eq!(parse_token(&token.replace("tally_", "talle_")), None);
        assert_eq!(parse_token(&token.replace("_42_", "_-42_")), None);
        assert_eq!(parse_token(&token.replace("_42_", "__")), None);
        assert_eq!(parse_token(&token.replace("ab", "zz")), None);
    }

    #[test]
    fn digests_compare_by_value() {
        assert!(digests_equal(&[7; 32], &[7; 32]));
        let mut other = [7; 32];
        other[31] = 8;
        assert!(!digests_equal(&[7; 32], &other));
    }
}
