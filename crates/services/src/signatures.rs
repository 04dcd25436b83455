//! Signed merchant requests and signed notifications (HMAC-SHA256), and the memory of nonces
//! that stops a signed request from being replayed.
//!
//! A merchant signs each request with the SHA-256 of its API secret as the HMAC key, over
//!
//! ```text
//! METHOD \n PATH?QUERY \n TIMESTAMP \n NONCE \n hex(SHA-256(body))
//! ```
//!
//! and sends `Authorization: TALLY-HMAC-SHA256 key=mk_…,timestamp=…,nonce=…,signature=<hex>`.
//! Notifications carry `Tally-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">` keyed by
//! the merchant's notification key.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secrets;

/// The scheme name in the `Authorization` header.
pub const SCHEME: &str = "TALLY-HMAC-SHA256";
/// How far a request's timestamp may be from the server's clock.
pub const WINDOW_S: u64 = 5 * 60;
pub const NONCE_BYTES_MIN: usize = 8;
pub const NONCE_BYTES_MAX: usize = 64;
/// Nonces remembered at most; past this, requests are refused until old ones age out (a
/// flood cannot make the server forget a nonce inside its window).
pub const NONCES_MAX: usize = 2_000_000;

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The signature of a merchant request.
pub fn request_signature(
    signing_key: &[u8; 32],
    method: &str,
    path_and_query: &str,
    timestamp: u64,
    nonce: &str,
    body: &[u8],
) -> [u8; 32] {
    // On the stack: every signed request is checked here, and signed here by clients.
    let body_digest = secrets::hex32(&secrets::sha256(&[body]));
    let mut digits = itoa::Buffer::new();
    let timestamp = digits.format(timestamp).as_bytes();
    hmac(
        signing_key,
        &[
            method.as_bytes(),
            b"\n",
            path_and_query.as_bytes(),
            b"\n",
            timestamp,
            b"\n",
            nonce.as_bytes(),
            b"\n",
            &body_digest,
        ],
    )
}

/// Writes the `Authorization` header value of a signed request into `header`, replacing what
/// it held (a client signing many requests keeps one buffer).
#[allow(clippy::too_many_arguments)]
pub fn write_authorization(
    header: &mut String,
    key_id: u64,
    signing_key: &[u8; 32],
    method: &str,
    path_and_query: &str,
    timestamp: u64,
    nonce: &str,
    body: &[u8],
) {
    use std::fmt::Write as _;
    let signature = request_signature(signing_key, method, path_and_query, timestamp, nonce, body);
    header.clear();
    let _ = write!(
        header,
        "{SCHEME} key=mk_{key_id},timestamp={timestamp},nonce={nonce},signature="
    );
    header.push_str(std::str::from_utf8(&secrets::hex32(&signature)).expect("hex is ASCII"));
}

/// The `Authorization` header value of a signed request.
pub fn authorization(
    key_id: u64,
    signing_key: &[u8; 32],
    method: &str,
    path_and_query: &str,
    timestamp: u64,
    nonce: &str,
    body: &[u8],
) -> String {
    let mut header = String::with_capacity(160);
    write_authorization(
        &mut header,
        key_id,
        signing_key,
        method,
        path_and_query,
        timestamp,
        nonce,
        body,
    );
    header
}

/// The parts of a signed request's `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeader {
    pub key_id: u64,
    pub timestamp: u64,
    pub nonce: String,
    pub signature: [u8; 32],
}

/// Parses `TALLY-HMAC-SHA256 key=mk_…,timestamp=…,nonce=…,signature=…`.
pub fn parse_authorization(value: &str) -> Option<SignedHeader> {
    let rest = value.strip_prefix(SCHEME)?.strip_prefix(' ')?;
    let (mut key_id, mut timestamp, mut nonce, mut signature) = (None, None, None, None);
    for part in rest.split(',') {
        let (name, value) = part.trim().split_once('=')?;
        match name {
            "key" => key_id = crate::ids::parse_prefixed("mk_", value),
            "timestamp" if value.len() <= 12 && value.bytes().all(|b| b.is_ascii_digit()) => {
                timestamp = value.parse().ok();
            }
            "nonce"
                if (NONCE_BYTES_MIN..=NONCE_BYTES_MAX).contains(&value.len())
                    && value.bytes().all(|byte| {
                        byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
                    }) =>
            {
                nonce = Some(value.to_owned());
            }
            "signature" => signature = secrets::parse_hex32(value),
            _ => return None,
        }
    }
    Some(SignedHeader {
        key_id: key_id?,
        timestamp: timestamp?,
        nonce: nonce?,
        signature: signature?,
    })
}

/// Why a signed request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request's timestamp is more than {WINDOW_S} seconds from the server's clock")]
    Stale,
    #[error("the nonce was used before")]
    Replayed,
    #[error("the signature does not match the request")]
    Mismatch,
    #[error("too many requests in the replay window; retry shortly")]
    Busy,
}

/// Checks a signature in constant time, the window, and the nonce (remembered on success).
pub fn verify_request(
    signing_key: &[u8; 32],
    header: &SignedHeader,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    nonces: &NonceCache,
    now_s: u64,
) -> Result<(), SignatureError> {
    if header.timestamp.abs_diff(now_s) > WINDOW_S {
        return Err(SignatureError::Stale);
    }
    let expected = request_signature(
        signing_key,
        method,
        path_and_query,
        header.timestamp,
        &header.nonce,
        body,
    );
    if !secrets::equal(&expected, &header.signature) {
        return Err(SignatureError::Mismatch);
    }
    nonces.remember(header.key_id, &header.nonce, now_s)
}

/// Nonces seen in the last two windows, per key.
#[derive(Debug, Default)]
pub struct NonceCache {
    inner: Mutex<Nonces>,
}

#[derive(Debug, Default)]
struct Nonces {
    seen: HashMap<(u64, String), u64>,
    /// In the order seen, to forget the oldest first.
    order: VecDeque<(u64, (u64, String))>,
}

impl NonceCache {
    fn remember(&self, key_id: u64, nonce: &str, now_s: u64) -> Result<(), SignatureError> {
        let mut nonces = self.inner.lock().expect("nonce cache");
        // A nonce is needed only while its request could still pass the window check.
        let forget_before = now_s.saturating_sub(2 * WINDOW_S);
        while let Some((seen_at, _)) = nonces.order.front() {
            if *seen_at >= forget_before {
                break;
            }
            let (_, entry) = nonces.order.pop_front().expect("checked");
            nonces.seen.remove(&entry);
        }
        let entry = (key_id, nonce.to_owned());
        if nonces.seen.contains_key(&entry) {
            return Err(SignatureError::Replayed);
        }
        if nonces.seen.len() >= NONCES_MAX {
            return Err(SignatureError::Busy);
        }
        nonces.seen.insert(entry.clone(), now_s);
        nonces.order.push_back((now_s, entry));
        Ok(())
    }
}

/// The `Tally-Signature` header of a notification body.
pub fn notification_signature(notify_key: &[u8; 32], timestamp: u64, body: &[u8]) -> String {
    let timestamp_text = timestamp.to_string();
    let mac = hmac(notify_key, &[timestamp_text.as_bytes(), b".", body]);
    format!("t={timestamp},v1={}", secrets::hex(&mac))
}

/// Checks a notification as a merchant would: the signature, in constant time, and the age.
pub fn verify_notification(notify_key: &[u8; 32], header: &str, body: &[u8], now_s: u64) -> bool {
    let mut timestamp = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<u64>().ok(),
            Some(("v1", value)) => signature = secrets::parse_hex32(value),
            _ => {}
        }
    }
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return false;
    };
    let timestamp_text = timestamp.to_string();
    let expected = hmac(notify_key, &[timestamp_text.as_bytes(), b".", body]);
    secrets::equal(&expected, &signature) && timestamp.abs_diff(now_s) <= WINDOW_S
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            secrets::hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn timestamps_are_signed_as_their_decimal_digits_and_stack_hex_matches() {
        let key = [3u8; 32];
        for timestamp in [0u64, 7, 10, 1_700_000_000, u64::MAX] {
            let text = format!(
                "GET\n/v1/events\n{timestamp}\nnonce-0001\n{}",
                secrets::hex(&secrets::sha256(&[b""]))
            );
            assert_eq!(
                request_signature(&key, "GET", "/v1/events", timestamp, "nonce-0001", b""),
                hmac(&key, &[text.as_bytes()])
            );
        }
        let digest = secrets::sha256(&[b"abc"]);
        assert_eq!(
            &secrets::hex32(&digest)[..],
            secrets::hex(&digest).as_bytes()
        );
    }

    /// The signature over the canonical text, computed the long way: what clients in other
    /// languages compute from the documentation.
    #[test]
    fn a_signature_is_the_hmac_of_the_documented_text() {
        let key = [9u8; 32];
        let body = br#"{"amount":100}"#;
        let text = format!(
            "POST\n/v1/orders\n1700000000\nnonce-0001\n{}",
            secrets::hex(&secrets::sha256(&[body]))
        );
        assert_eq!(
            request_signature(
                &key,
                "POST",
                "/v1/orders",
                1_700_000_000,
                "nonce-0001",
                body
            ),
            hmac(&key, &[text.as_bytes()])
        );
        let mut header = String::from("left over");
        write_authorization(
            &mut header,
            5,
            &key,
            "POST",
            "/v1/orders",
            1_700_000_000,
            "nonce-0001",
            body,
        );
        assert_eq!(
            header,
            authorization(
                5,
                &key,
                "POST",
                "/v1/orders",
                1_700_000_000,
                "nonce-0001",
                body
            )
        );
        assert!(header.starts_with(
            "TALLY-HMAC-SHA256 key=mk_5,timestamp=1700000000,nonce=nonce-0001,signature="
        ));
    }

    #[test]
    fn a_signed_request_verifies_once_and_only_as_sent() {
        let key = [7u8; 32];
        let nonces = NonceCache::default();
        let value = authorization(42, &key, "POST", "/v1/orders", 1_000, "nonce-0001", b"{}");
        let header = parse_authorization(&value).unwrap();
        assert_eq!(header.key_id, 42);
        assert_eq!(
            verify_request(&key, &header, "POST", "/v1/orders", b"{}", &nonces, 1_010),
            Ok(())
        );
        assert_eq!(
            verify_request(&key, &header, "POST", "/v1/orders", b"{}", &nonces, 1_011),
            Err(SignatureError::Replayed)
        );
        let other = parse_authorization(&authorization(
            42,
            &key,
            "POST",
            "/v1/orders",
            1_000,
            "nonce-0002",
            b"{}",
        ))
        .unwrap();
        for (method, path, body) in [
            ("GET", "/v1/orders", &b"{}"[..]),
            ("POST", "/v1/orders?x=1", b"{}"),
            ("POST", "/v1/orders", b"{ }"),
        ] {
            assert_eq!(
                verify_request(&key, &other, method, path, body, &nonces, 1_000),
                Err(SignatureError::Mismatch)
            );
        }
        assert_eq!(
            verify_request(&key, &other, "POST", "/v1/orders", b"{}", &nonces, 1_301),
            Err(SignatureError::Stale)
        );
        assert!(parse_authorization("Bearer abc").is_none());
        assert!(parse_authorization(&value.replace("nonce=nonce-0001", "nonce=short")).is_none());
    }

    #[test]
    fn notifications_verify_with_their_key_only() {
        let key = [9u8; 32];
        let header = notification_signature(&key, 500, b"{\"a\":1}");
        assert!(verify_notification(&key, &header, b"{\"a\":1}", 510));
        assert!(!verify_notification(&key, &header, b"{\"a\":2}", 510));
        assert!(!verify_notification(&[8u8; 32], &header, b"{\"a\":1}", 510));
        assert!(!verify_notification(&key, &header, b"{\"a\":1}", 900));
    }
}
