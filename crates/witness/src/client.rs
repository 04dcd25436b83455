//! The log's side of C2SP tlog-witness: submit a checkpoint with a consistency proof, check the
//! cosignature that comes back, and learn the witness's state from a "409 Conflict".
//!
//! Blocking and plain HTTP (no TLS stack): the log calls witnesses from its own worker threads,
//! and a witness on another host is reached through a TLS-terminating proxy or a private network.

use std::io::Read as _;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use trustlog::{
    add_signature_line, verify_note_with, Hash, NoteVerifier, SignatureType, NOTE_SIGNATURES_MAX,
    TREE_SIZE_MAX,
};

use crate::http::SIZE_CONTENT_TYPE;
use crate::protocol::{AddCheckpointRequest, ParseError};

/// The most response bytes read from a witness: room for [`NOTE_SIGNATURES_MAX`] cosignature
/// lines with the longest key names.
pub const RESPONSE_BYTES_MAX: u64 = 64 * 1024;
/// The most bytes of a refusal's body kept in [`ClientError::Refused`], for the log's messages.
pub const REFUSAL_BODY_BYTES_MAX: usize = 512;
/// The longest witness URL.
pub const URL_BYTES_MAX: usize = 2048;
/// The longest timeout a client may be given: a witness slower than this is down.
pub const TIMEOUT_MS_MAX: u64 = 10 * 60 * 1000;

const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";
const KEY_ID_BYTES: usize = 4;

const _: () = assert!(RESPONSE_BYTES_MAX as usize > NOTE_SIGNATURES_MAX * 400);
const _: () = assert!(REFUSAL_BODY_BYTES_MAX as u64 <= RESPONSE_BYTES_MAX);

/// Why a [`WitnessClient`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientConfigError {
    #[error("witness URL must start with http:// (this client has no TLS) and be at most {URL_BYTES_MAX} bytes")]
    InvalidUrl,
    #[error("invalid witness verifier key")]
    InvalidKey(#[source] trustlog::Error),
    #[error("witness verifier key is not a cosignature/v1 key (type 0x04)")]
    NotACosignatureKey,
    #[error("timeout must be between 1 ms and {TIMEOUT_MS_MAX} ms")]
    InvalidTimeout,
}

/// Why a witness did not give a cosignature.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The witness last cosigned `size`, not the old size sent: resend from `size`.
    #[error("witness last cosigned size {size}, not the old size sent")]
    Conflict { size: u64 },
    /// The witness found that the proof does not show the checkpoint extends its own (422).
    #[error("witness refused the consistency proof")]
    BadProof,
    /// Any other refusal; `body` is the witness's message, cut to [`REFUSAL_BODY_BYTES_MAX`].
    #[error("witness refused with status {status}: {body}")]
    Refused { status: u16, body: String },
    /// The witness could not be reached, timed out, or broke the HTTP exchange.
    #[error("witness unreachable: {0}")]
    Transport(String),
    /// The witness answered 200 but not with a valid cosignature by its key over the checkpoint.
    #[error("witness response carries no valid cosignature by its key over the checkpoint")]
    BadCosignature,
    /// The request could not be built from the caller's note and proof.
    #[error("invalid add-checkpoint request")]
    InvalidRequest(#[source] ParseError),
    /// The caller could not produce the consistency proof.
    #[error("no consistency proof from size {old_size} to {new_size}: {reason}")]
    ProofUnavailable {
        old_size: u64,
        new_size: u64,
        reason: String,
    },
}

/// A witness as the log sees it: where it listens and the key its cosignatures must verify under.
#[derive(Debug)]
pub struct WitnessClient {
    /// `<submission prefix>/add-checkpoint`.
    add_checkpoint_url: String,
    verifier: NoteVerifier,
    /// Keeps connections to the witness alive between checkpoints, as the spec recommends.
    agent: ureq::Agent,
}

impl WitnessClient {
    /// A client for the witness whose submission prefix is `url` (`http://host:port/prefix`)
    /// and whose cosignature verifier key text is `verifier_key_text`
    /// (`<name>+<key ID>+base64(0x04 || Ed25519 public key)`). Each request, body included,
    /// must finish within `timeout`. Proxy settings in the environment are ignored: a witness
    /// is a configured endpoint, and an unexpected hop should not sit between it and the log.
    pub fn new(
        url: &str,
        verifier_key_text: &str,
        timeout: Duration,
    ) -> Result<WitnessClient, ClientConfigError> {
        if !url.starts_with("http://") || url.len() > URL_BYTES_MAX {
            return Err(ClientConfigError::InvalidUrl);
        }
        let verifier =
            NoteVerifier::parse(verifier_key_text).map_err(ClientConfigError::InvalidKey)?;
        if verifier.signature_type() != SignatureType::CosignatureV1 {
            return Err(ClientConfigError::NotACosignatureKey);
        }
        if timeout.is_zero() || timeout > Duration::from_millis(TIMEOUT_MS_MAX) {
            return Err(ClientConfigError::InvalidTimeout);
        }
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .build();
        Ok(WitnessClient {
            add_checkpoint_url: format!("{}/add-checkpoint", url.trim_end_matches('/')),
            verifier,
            agent: ureq::Agent::new_with_config(config),
        })
    }

    /// The witness's cosignature verifier.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// Submits one request. On 200, returns the witness's cosignature line (newline-terminated)
    /// after checking it verifies under the witness's key over the request's checkpoint; lines
    /// by other keys in the response are ignored, as the spec requires.
    pub fn add_checkpoint(&self, request: &AddCheckpointRequest) -> Result<String, ClientError> {
        let response = self
            .agent
            .post(&self.add_checkpoint_url)
            .content_type("text/plain; charset=utf-8")
            .send(request.to_body())
            .map_err(|error| ClientError::Transport(error.to_string()))?;
        let status = response.status().as_u16();
        let is_size_body = response
            .headers()
            .get(ureq::http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                let media_type = value.split(';').next().unwrap_or_default().trim();
                media_type.eq_ignore_ascii_case(SIZE_CONTENT_TYPE)
            });
        let mut body = Vec::new();
        response
            .into_body()
            .into_with_config()
            .reader()
            .take(RESPONSE_BYTES_MAX)
            .read_to_end(&mut body)
            .map_err(|error| ClientError::Transport(error.to_string()))?;
        match status {
            200 => self.verified_cosignature(request.checkpoint_note(), &body),
            409 if is_size_body => match parse_size_body(&body) {
                Some(size) => Err(ClientError::Conflict { size }),
                None => Err(refused(status, &body)),
            },
            422 => Err(ClientError::BadProof),
            _ => Err(refused(status, &body)),
        }
    }

    /// Finds this witness's line in a 200 body and checks it over the checkpoint note.
    fn verified_cosignature(&self, note: &str, body: &[u8]) -> Result<String, ClientError> {
        let body = std::str::from_utf8(body).map_err(|_| ClientError::BadCosignature)?;
        for (count, line) in body.split_inclusive('\n').enumerate() {
            if count == NOTE_SIGNATURES_MAX || !line.ends_with('\n') {
                return Err(ClientError::BadCosignature);
            }
            let (name, key_id) = signature_line_key(line).ok_or(ClientError::BadCosignature)?;
            if name != self.verifier.name() || key_id != self.verifier.key_id() {
                continue;
            }
            // Every signature by a known key must verify and ours is the only known key, so
            // this checks the new line (and any cosignature of ours the note already had).
            let cosigned =
                add_signature_line(note, line).map_err(|_| ClientError::BadCosignature)?;
            verify_note_with(&cosigned, std::slice::from_ref(&self.verifier))
                .map_err(|_| ClientError::BadCosignature)?;
            return Ok(line.to_owned());
        }
        Err(ClientError::BadCosignature)
    }
}

/// Collects one witness's cosignature on a checkpoint. Sends the size the log believes the
/// witness holds (`known_witness_size`, or 0 when the log does not know, as after a restart) with
/// the proof `proof_for(old, new)` gives; if the witness answers that it holds another size, asks
/// for a proof from that size and retries exactly once. Returns the cosignature line and the size
/// the witness now holds (the checkpoint's), for the log to pass as `known_witness_size` next
/// time.
///
/// `checkpoint_size` must be the size in `checkpoint_note`. A witness already past this
/// checkpoint cannot cosign it: that comes back as [`ClientError::Conflict`] with its larger size.
pub fn cosign(
    client: &WitnessClient,
    checkpoint_note: &str,
    checkpoint_size: u64,
    known_witness_size: Option<u64>,
    proof_for: impl Fn(u64, u64) -> Result<Vec<Hash>, String>,
) -> Result<(String, u64), ClientError> {
    let old_size = known_witness_size.unwrap_or(0);
    let first = submit(
        client,
        checkpoint_note,
        checkpoint_size,
        old_size,
        &proof_for,
    );
    let line = match first {
        Err(ClientError::Conflict { size }) if size != old_size && size <= checkpoint_size => {
            submit(client, checkpoint_note, checkpoint_size, size, &proof_for)?
        }
        other => other?,
    };
    Ok((line, checkpoint_size))
}

fn submit(
    client: &WitnessClient,
    checkpoint_note: &str,
    checkpoint_size: u64,
    old_size: u64,
    proof_for: &impl Fn(u64, u64) -> Result<Vec<Hash>, String>,
) -> Result<String, ClientError> {
    // A proof exists only between two different non-empty sizes; otherwise it is empty.
    let proof = if old_size == 0 || old_size >= checkpoint_size {
        Vec::new()
    } else {
        proof_for(old_size, checkpoint_size).map_err(|reason| ClientError::ProofUnavailable {
            old_size,
            new_size: checkpoint_size,
            reason,
        })?
    };
    let request = AddCheckpointRequest::new(old_size, proof, checkpoint_note.to_owned())
        .map_err(ClientError::InvalidRequest)?;
    assert_eq!(
        request.checkpoint().size(),
        checkpoint_size,
        "cosign: checkpoint_size must be the size in checkpoint_note"
    );
    client.add_checkpoint(&request)
}

/// The name and key ID of a signature line `— <name> base64(key ID || signature)\n`.
fn signature_line_key(line: &str) -> Option<(&str, u32)> {
    let rest = line
        .strip_prefix(SIGNATURE_LINE_PREFIX)?
        .strip_suffix('\n')?;
    let (name, encoded) = rest.split_once(' ')?;
    let payload = BASE64.decode(encoded).ok()?;
    let key_id: [u8; KEY_ID_BYTES] = payload.get(..KEY_ID_BYTES)?.try_into().ok()?;
    Some((name, u32::from_be_bytes(key_id)))
}

/// A `text/x.tlog.size` body: a canonical decimal tree size and a newline.
fn parse_size_body(body: &[u8]) -> Option<u64> {
    let digits = std::str::from_utf8(body).ok()?.strip_suffix('\n')?;
    let canonical = !digits.is_empty()
        && digits.len() <= 20
        && digits.bytes().all(|byte| byte.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    let size: u64 = digits.parse().ok().filter(|_| canonical)?;
    (size <= TREE_SIZE_MAX).then_some(size)
}

fn refused(status: u16, body: &[u8]) -> ClientError {
    let kept = &body[..body.len().min(REFUSAL_BODY_BYTES_MAX)];
    ClientError::Refused {
        status,
        body: String::from_utf8_lossy(kept).trim_end().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_bodies_are_canonical_decimals_with_a_newline() {
        assert_eq!(parse_size_body(b"0\n"), Some(0));
        assert_eq!(parse_size_body(b"50\n"), Some(50));
        assert_eq!(
            parse_size_body(b"9223372036854775807\n"),
            Some(TREE_SIZE_MAX)
        );
        for bad in [
            &b"50"[..],
            b"",
            b"\n",
            b"050\n",
            b"+5\n",
            b" 5\n",
            b"5\n\n",
            b"5\r\n",
            b"9223372036854775808\n",
            b"99999999999999999999999\n",
        ] {
            assert_eq!(parse_size_body(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn signature_lines_give_their_name_and_key_id() {
        let line = "\u{2014} witness.example AQIDBAUG\n";
        assert_eq!(
            signature_line_key(line),
            Some(("witness.example", 0x0102_0304))
        );
        assert_eq!(signature_line_key("\u{2014} w AQID\n"), None);
        assert_eq!(signature_line_key("- w AQIDBAUG\n"), None);
        assert_eq!(signature_line_key("\u{2014} w AQIDBAUG"), None);
    }

    #[test]
    fn refusal_bodies_are_cut_to_their_limit() {
        let body = "x".repeat(REFUSAL_BODY_BYTES_MAX * 3);
        let ClientError::Refused { status, body } = refused(500, body.as_bytes()) else {
            panic!("not a refusal");
        };
        assert_eq!(status, 500);
        assert_eq!(body.len(), REFUSAL_BODY_BYTES_MAX);
    }

    #[test]
    fn clients_refuse_bad_configuration() {
        let cosigner = trustlog::Cosigner::from_seed("w.example", &[3; 32]).unwrap();
        let key = cosigner.verifier_key_text();
        let second = Duration::from_secs(1);
        assert!(WitnessClient::new("http://127.0.0.1:1", &key, second).is_ok());
        assert!(matches!(
            WitnessClient::new("https://w.example", &key, second),
            Err(ClientConfigError::InvalidUrl)
        ));
        let log_key = trustlog::NoteSigner::from_seed("l.example", &[4; 32])
            .unwrap()
            .verifier_key_text();
        assert!(matches!(
            WitnessClient::new("http://w.example", &log_key, second),
            Err(ClientConfigError::NotACosignatureKey)
        ));
        assert!(matches!(
            WitnessClient::new("http://w.example", "garbage", second),
            Err(ClientConfigError::InvalidKey(_))
        ));
        assert!(matches!(
            WitnessClient::new("http://w.example", &key, Duration::ZERO),
            Err(ClientConfigError::InvalidTimeout)
        ));
    }
}
