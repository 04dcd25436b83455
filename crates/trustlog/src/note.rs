//! C2SP signed notes with Ed25519 signatures (signature type 0x01) and C2SP tlog-cosignature
//! `cosignature/v1` witness cosignatures (signature type 0x04).
//!
//! A signed note is its text (ending in a newline), a blank line, and one or more signature lines
//! `— <key name> base64(key ID || signature)`. A key ID is the first four bytes of
//! `SHA-256(key name || 0x0A || signature type || public key)`.
//!
//! Keys are never generated here: the caller brings a 32-byte seed from the operating system's
//! randomness. Verification uses Ed25519 strict verification (canonical encodings, no small-order
//! keys or nonces).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::checkpoint::Checkpoint;
use crate::{Error, Result, KEY_NAME_BYTES_MAX, NOTE_BYTES_MAX, NOTE_SIGNATURES_MAX};

/// Bytes in an Ed25519 public key and in the seed a signing key is made from.
pub const ED25519_KEY_BYTES: usize = 32;
/// Bytes in an Ed25519 signature.
pub const ED25519_SIGNATURE_BYTES: usize = 64;
/// Bytes in a `cosignature/v1` signature: big-endian u64 timestamp, then the Ed25519 signature.
pub const COSIGNATURE_BYTES: usize = 8 + ED25519_SIGNATURE_BYTES;
/// The largest timestamp a cosignature may carry (2^63 - 1).
pub const COSIGNATURE_TIMESTAMP_MAX: u64 = i64::MAX as u64;

const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";
const KEY_ID_BYTES: usize = 4;
const SIGNER_KEY_PREFIX: &str = "PRIVATE+KEY+";

/// The signature types this crate signs and verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SignatureType {
    /// 0x01: Ed25519 over the note text (C2SP signed-note).
    Ed25519,
    /// 0x04: timestamped Ed25519 witness cosignature over `cosignature/v1` (C2SP tlog-cosignature).
    CosignatureV1,
}

impl SignatureType {
    /// The signature type identifier byte.
    pub fn byte(self) -> u8 {
        match self {
            SignatureType::Ed25519 => 0x01,
            SignatureType::CosignatureV1 => 0x04,
        }
    }

    fn from_byte(byte: u8) -> Option<SignatureType> {
        match byte {
            0x01 => Some(SignatureType::Ed25519),
            0x04 => Some(SignatureType::CosignatureV1),
            _ => None,
        }
    }
}

/// `SHA-256(name || 0x0A || signature type || public key)[:4]` as a big-endian u32.
pub fn key_id(
    name: &str,
    signature_type: SignatureType,
    public_key: &[u8; ED25519_KEY_BYTES],
) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', signature_type.byte()]);
    hasher.update(public_key);
    let digest = hasher.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Checks a key name: non-empty, at most [`KEY_NAME_BYTES_MAX`] bytes, no Unicode space, no `+`,
/// no ASCII control character.
pub fn check_key_name(name: &str) -> Result<()> {
    let invalid = |reason| {
        Err(Error::InvalidKeyName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("empty");
    }
    if name.len() > KEY_NAME_BYTES_MAX {
        return invalid("too long");
    }
    if name
        .chars()
        .any(|character| character.is_whitespace() || character == '+' || character < ' ')
    {
        return invalid("contains a space, a plus sign or a control character");
    }
    Ok(())
}

/// The verifier key text `<name>+<hex key ID>+<base64(signature type || public key)>`.
fn key_text(
    name: &str,
    signature_type: SignatureType,
    public_key: &[u8; ED25519_KEY_BYTES],
) -> String {
    let mut key_data = Vec::with_capacity(1 + ED25519_KEY_BYTES);
    key_data.push(signature_type.byte());
    key_data.extend_from_slice(public_key);
    format!(
        "{name}+{:08x}+{}",
        key_id(name, signature_type, public_key),
        BASE64.encode(key_data)
    )
}

/// The verifier key text of an Ed25519 note key: `<name>+<hex8 key ID>+base64(0x01 || key)`.
pub fn verifier_key_text(name: &str, public_key: &[u8; ED25519_KEY_BYTES]) -> Result<String> {
    Ok(NoteVerifier::new(name, SignatureType::Ed25519, public_key)?.to_key_text())
}

/// The verifier key text of a witness cosigner: `<name>+<hex8 key ID>+base64(0x04 || key)`.
pub fn cosigner_verifier_key_text(
    name: &str,
    public_key: &[u8; ED25519_KEY_BYTES],
) -> Result<String> {
    Ok(NoteVerifier::new(name, SignatureType::CosignatureV1, public_key)?.to_key_text())
}

fn signature_line(name: &str, key_id: u32, signature: &[u8]) -> String {
    let mut payload = Vec::with_capacity(KEY_ID_BYTES + signature.len());
    payload.extend_from_slice(&key_id.to_be_bytes());
    payload.extend_from_slice(signature);
    format!("{SIGNATURE_LINE_PREFIX}{name} {}\n", BASE64.encode(payload))
}

/// Checks note text before signing: non-empty, ends with a newline, no ASCII control character
/// other than newline, at most [`NOTE_BYTES_MAX`] bytes.
fn check_note_text(text: &str) -> Result<()> {
    if text.len() > NOTE_BYTES_MAX {
        return Err(Error::NoteTooLarge { bytes: text.len() });
    }
    if !text.ends_with('\n') {
        return Err(Error::InvalidNoteText {
            reason: "text must end with a newline",
        });
    }
    if text
        .chars()
        .any(|character| character < ' ' && character != '\n')
    {
        return Err(Error::InvalidNoteText {
            reason: "text contains a control character other than newline",
        });
    }
    Ok(())
}

/// The log's note signing key (signature type 0x01).
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    key_id: u32,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A signer from a 32-byte Ed25519 seed (RFC 8032 private key) that the caller drew from the
    /// operating system's randomness.
    pub fn from_seed(name: &str, seed: &[u8; ED25519_KEY_BYTES]) -> Result<NoteSigner> {
        check_key_name(name)?;
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(name, SignatureType::Ed25519, key.verifying_key().as_bytes());
        Ok(NoteSigner {
            name: name.to_owned(),
            key,
            key_id,
        })
    }

    /// Parses signer key text `PRIVATE+KEY+<name>+<hex8 key ID>+base64(0x01 || seed)` (the format
    /// of Go's `golang.org/x/mod/sumdb/note`); the key ID must match the key.
    pub fn from_signer_key_text(text: &str) -> Result<NoteSigner> {
        let invalid = |reason| Error::InvalidSignerKey { reason };
        let rest = text
            .strip_prefix(SIGNER_KEY_PREFIX)
            .ok_or_else(|| invalid("missing PRIVATE+KEY+ prefix"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id_text), Some(key_text)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("expected PRIVATE+KEY+<name>+<key id>+<key>"));
        };
        let stated_id =
            parse_key_id(id_text).ok_or_else(|| invalid("key id is not 8 hex digits"))?;
        let key_data = BASE64
            .decode(key_text)
            .map_err(|_| invalid("key is not canonical base64"))?;
        let (&type_byte, seed) = key_data
            .split_first()
            .ok_or_else(|| invalid("key is empty"))?;
        if type_byte != SignatureType::Ed25519.byte() {
            return Err(invalid("unsupported signature type"));
        }
        let seed: &[u8; ED25519_KEY_BYTES] = seed
            .try_into()
            .map_err(|_| invalid("seed is not 32 bytes"))?;
        let signer = NoteSigner::from_seed(name, seed)?;
        if signer.key_id != stated_id {
            return Err(invalid("key id does not match the key"));
        }
        Ok(signer)
    }

    /// The signer key text `PRIVATE+KEY+<name>+<hex8 key ID>+base64(0x01 || seed)`. It holds the
    /// secret key: store it like one.
    pub fn signer_key_text(&self) -> String {
        let mut key_data = Vec::with_capacity(1 + ED25519_KEY_BYTES);
        key_data.push(SignatureType::Ed25519.byte());
        key_data.extend_from_slice(self.key.as_bytes());
        format!(
            "{SIGNER_KEY_PREFIX}{}+{:08x}+{}",
            self.name,
            self.key_id,
            BASE64.encode(key_data)
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn public_key(&self) -> [u8; ED25519_KEY_BYTES] {
        self.key.verifying_key().to_bytes()
    }

    pub fn verifier_key_text(&self) -> String {
        key_text(&self.name, SignatureType::Ed25519, &self.public_key())
    }

    /// The signature line (ending in a newline) of this key over note `text`.
    pub fn signature_line(&self, text: &str) -> Result<String> {
        check_note_text(text)?;
        let signature = self.key.sign(text.as_bytes());
        Ok(signature_line(
            &self.name,
            self.key_id,
            &signature.to_bytes(),
        ))
    }
}

/// Signs note `text` (which must end with a newline): the full note, i.e. the text, a blank line
/// and the signature line.
pub fn sign_note(text: &str, signer: &NoteSigner) -> Result<String> {
    let line = signer.signature_line(text)?;
    let note = format!("{text}\n{line}");
    if note.len() > NOTE_BYTES_MAX {
        return Err(Error::NoteTooLarge { bytes: note.len() });
    }
    Ok(note)
}

/// The message a `cosignature/v1` signs: `cosignature/v1\ntime <timestamp>\n` then the
/// checkpoint note text.
pub fn cosignature_message(text: &str, timestamp_s: u64) -> Result<String> {
    if timestamp_s > COSIGNATURE_TIMESTAMP_MAX {
        return Err(Error::TimestampTooLarge {
            timestamp: timestamp_s,
        });
    }
    Ok(format!("cosignature/v1\ntime {timestamp_s}\n{text}"))
}

/// A witness's cosigning key (signature type 0x04, `cosignature/v1`).
pub struct Cosigner {
    name: String,
    key: SigningKey,
    key_id: u32,
}

impl std::fmt::Debug for Cosigner {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Cosigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl Cosigner {
    /// A cosigner from a 32-byte Ed25519 seed drawn by the caller. The `cosignature/v1` message
    /// does not commit to the cosigner's name, so each cosigner needs its own key.
    pub fn from_seed(name: &str, seed: &[u8; ED25519_KEY_BYTES]) -> Result<Cosigner> {
        check_key_name(name)?;
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(
            name,
            SignatureType::CosignatureV1,
            key.verifying_key().as_bytes(),
        );
        Ok(Cosigner {
            name: name.to_owned(),
            key,
            key_id,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn public_key(&self) -> [u8; ED25519_KEY_BYTES] {
        self.key.verifying_key().to_bytes()
    }

    pub fn verifier_key_text(&self) -> String {
        key_text(&self.name, SignatureType::CosignatureV1, &self.public_key())
    }

    /// The cosignature line (ending in a newline) over the checkpoint note text
    /// `checkpoint_text`, stating the time `timestamp_s` (POSIX seconds). The caller must first
    /// have checked that the checkpoint is consistent with the last one it cosigned.
    pub fn cosign(&self, checkpoint_text: &str, timestamp_s: u64) -> Result<String> {
        check_note_text(checkpoint_text)?;
        Checkpoint::parse(checkpoint_text)?;
        let message = cosignature_message(checkpoint_text, timestamp_s)?;
        let signature = self.key.sign(message.as_bytes());
        let mut payload = Vec::with_capacity(COSIGNATURE_BYTES);
        payload.extend_from_slice(&timestamp_s.to_be_bytes());
        payload.extend_from_slice(&signature.to_bytes());
        Ok(signature_line(&self.name, self.key_id, &payload))
    }
}

/// A trusted public key that verifies note signatures of one name, key ID and type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    signature_type: SignatureType,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// A verifier for `public_key` under `name`. Rejects keys that are not valid curve points
    /// and weak (small-order) keys.
    pub fn new(
        name: &str,
        signature_type: SignatureType,
        public_key: &[u8; ED25519_KEY_BYTES],
    ) -> Result<NoteVerifier> {
        check_key_name(name)?;
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| Error::InvalidVerifierKey {
            reason: "public key is not a valid Ed25519 point",
        })?;
        if key.is_weak() {
            return Err(Error::InvalidVerifierKey {
                reason: "public key has small order",
            });
        }
        Ok(NoteVerifier {
            name: name.to_owned(),
            key_id: key_id(name, signature_type, public_key),
            signature_type,
            key,
        })
    }

    /// Parses verifier key text `<name>+<hex8 key ID>+base64(type || public key)` with type 0x01
    /// (note signatures) or 0x04 (cosignatures); the key ID must match the key.
    pub fn parse(text: &str) -> Result<NoteVerifier> {
        let invalid = |reason| Error::InvalidVerifierKey { reason };
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id_text), Some(key_text)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("expected <name>+<key id>+<key>"));
        };
        let stated_id =
            parse_key_id(id_text).ok_or_else(|| invalid("key id is not 8 hex digits"))?;
        let key_data = BASE64
            .decode(key_text)
            .map_err(|_| invalid("key is not canonical base64"))?;
        let (&type_byte, public_key) = key_data
            .split_first()
            .ok_or_else(|| invalid("key is empty"))?;
        let signature_type = SignatureType::from_byte(type_byte)
            .ok_or_else(|| invalid("unsupported signature type"))?;
        let public_key: &[u8; ED25519_KEY_BYTES] = public_key
            .try_into()
            .map_err(|_| invalid("public key is not 32 bytes"))?;
        let verifier = NoteVerifier::new(name, signature_type, public_key)?;
        if verifier.key_id != stated_id {
            return Err(invalid("key id does not match the key"));
        }
        Ok(verifier)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn signature_type(&self) -> SignatureType {
        self.signature_type
    }

    pub fn public_key(&self) -> [u8; ED25519_KEY_BYTES] {
        self.key.to_bytes()
    }

    pub fn to_key_text(&self) -> String {
        key_text(&self.name, self.signature_type, self.key.as_bytes())
    }

    /// Checks `signature` (without its key ID) over `text`; returns the cosignature timestamp.
    fn verify(&self, text: &str, signature: &[u8]) -> Result<Option<u64>> {
        let invalid = || Error::SignatureInvalid {
            name: self.name.clone(),
            key_id: self.key_id,
        };
        match self.signature_type {
            SignatureType::Ed25519 => {
                let bytes: &[u8; ED25519_SIGNATURE_BYTES] =
                    signature.try_into().map_err(|_| invalid())?;
                self.key
                    .verify_strict(text.as_bytes(), &Signature::from_bytes(bytes))
                    .map_err(|_| invalid())?;
                Ok(None)
            }
            SignatureType::CosignatureV1 => {
                let bytes: &[u8; COSIGNATURE_BYTES] =
                    signature.try_into().map_err(|_| invalid())?;
                let (timestamp, ed25519) = bytes.split_at(8);
                let timestamp = u64::from_be_bytes(timestamp.try_into().expect("8 bytes"));
                let message = cosignature_message(text, timestamp).map_err(|_| invalid())?;
                let ed25519: &[u8; ED25519_SIGNATURE_BYTES] = ed25519.try_into().expect("64 bytes");
                self.key
                    .verify_strict(message.as_bytes(), &Signature::from_bytes(ed25519))
                    .map_err(|_| invalid())?;
                Ok(Some(timestamp))
            }
        }
    }
}

/// Eight hex digits (Go accepts either case; so do we).
fn parse_key_id(text: &str) -> Option<u32> {
    if text.len() != 8 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

/// A signature line of a note, not (or not yet) verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: u32,
    /// The signature bytes after the key ID.
    pub signature: Vec<u8>,
}

/// A signature that verified under a known key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedSignature {
    pub name: String,
    pub key_id: u32,
    pub signature_type: SignatureType,
    /// The cosignature's timestamp (POSIX seconds); `None` for plain note signatures.
    pub timestamp_s: Option<u64>,
}

/// A note whose text is vouched for by at least one known key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedNote {
    /// The note text, including its final newline.
    pub text: String,
    /// One entry per known key that signed, in the order of first appearance.
    pub signatures: Vec<VerifiedSignature>,
    /// Signatures by keys the verifier does not know; ignored, as the spec requires.
    pub unverified_signatures: Vec<NoteSignature>,
}

/// Splits a note into its text and parsed signature lines, enforcing the format.
fn parse_note(note: &str) -> Result<(&str, Vec<NoteSignature>)> {
    let malformed = |reason| Error::MalformedNote { reason };
    if note.len() > NOTE_BYTES_MAX {
        return Err(Error::NoteTooLarge { bytes: note.len() });
    }
    if note
        .chars()
        .any(|character| character < ' ' && character != '\n')
    {
        return Err(malformed("contains a control character other than newline"));
    }
    // The text is separated from the signatures by the last blank line.
    let split = note
        .rfind("\n\n")
        .ok_or_else(|| malformed("no blank line before the signatures"))?;
    let (text, signature_block) = (&note[..split + 1], &note[split + 2..]);
    let signature_lines = signature_block
        .strip_suffix('\n')
        .ok_or_else(|| malformed("missing signature lines or final newline"))?;
    let mut signatures = Vec::new();
    for line in signature_lines.split('\n') {
        if signatures.len() == NOTE_SIGNATURES_MAX {
            return Err(Error::TooManySignatures);
        }
        let rest = line
            .strip_prefix(SIGNATURE_LINE_PREFIX)
            .ok_or_else(|| malformed("signature line must start with an em dash and a space"))?;
        let (name, encoded) = rest
            .split_once(' ')
            .ok_or_else(|| malformed("signature line lacks a signature"))?;
        check_key_name(name).map_err(|_| malformed("signature line has an invalid key name"))?;
        let payload = BASE64
            .decode(encoded)
            .map_err(|_| malformed("signature is not canonical base64"))?;
        if payload.len() <= KEY_ID_BYTES {
            return Err(malformed("signature is too short"));
        }
        let (id_bytes, signature) = payload.split_at(KEY_ID_BYTES);
        let key_id = u32::from_be_bytes(id_bytes.try_into().expect("4 bytes"));
        signatures.push(NoteSignature {
            name: name.to_owned(),
            key_id,
            signature: signature.to_vec(),
        });
    }
    Ok((text, signatures))
}

/// Verifies a signed note against one trusted key given as verifier key text.
pub fn verify_note(note: &str, verifier_key_text: &str) -> Result<VerifiedNote> {
    verify_note_with(note, &[NoteVerifier::parse(verifier_key_text)?])
}

/// Verifies a signed note against a set of trusted keys, following C2SP signed-note: signatures
/// from unknown keys (name or key ID differ) are ignored; every signature from a known key must
/// verify, or the whole note is rejected; at least one must verify.
pub fn verify_note_with(note: &str, verifiers: &[NoteVerifier]) -> Result<VerifiedNote> {
    let (text, signatures) = parse_note(note)?;
    let mut verified: Vec<VerifiedSignature> = Vec::new();
    let mut unverified_signatures = Vec::new();
    for signature in signatures {
        let known = verifiers.iter().find(|verifier| {
            verifier.name == signature.name && verifier.key_id == signature.key_id
        });
        let Some(verifier) = known else {
            unverified_signatures.push(signature);
            continue;
        };
        let timestamp_s = verifier.verify(text, &signature.signature)?;
        // A key listed twice counts once, so a quorum cannot be met by repeating a line.
        if !verified
            .iter()
            .any(|seen| seen.name == signature.name && seen.key_id == signature.key_id)
        {
            verified.push(VerifiedSignature {
                name: signature.name,
                key_id: signature.key_id,
                signature_type: verifier.signature_type,
                timestamp_s,
            });
        }
    }
    if verified.is_empty() {
        return Err(Error::NoVerifiedSignature);
    }
    Ok(VerifiedNote {
        text: text.to_owned(),
        signatures: verified,
        unverified_signatures,
    })
}

/// Appends a signature line (such as a witness's cosignature) to a signed note. The note and
/// the line must be well formed; nothing is verified.
pub fn add_signature_line(note: &str, line: &str) -> Result<String> {
    let grown = format!("{note}{line}");
    let (_, signatures) = parse_note(&grown)?;
    let (_, before) = parse_note(note)?;
    if signatures.len() != before.len() + 1 {
        return Err(Error::MalformedNote {
            reason: "expected exactly one signature line",
        });
    }
    Ok(grown)
}
