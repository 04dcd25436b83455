//! The witness: cosigns a log's checkpoint only if it extends the last checkpoint the witness
//! cosigned for that log, so it never vouches for two inconsistent views of one log.
//!
//! State is one row per log, `(origin, size, root)`, in the witness's own SQLite file. The check
//! of the request's old size against that row and the write of the new row happen in one
//! `BEGIN IMMEDIATE` transaction, and the write is a compare-and-swap on the row read: two
//! requests that both start from size N cannot both advance it (the race the spec warns of, where
//! a late request rolls the stored size back).
//!
//! Checks run in the order the spec lists them, and each refusal is one [`AddCheckpointError`]
//! variant, which the HTTP edge maps to one status code.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{params, Connection, OptionalExtension as _, TransactionBehavior};
use trustlog::{
    empty_root, verify_consistency, verify_note_with, Checkpoint, Cosigner, Hash, NoteVerifier,
    SignatureType, HASH_BYTES,
};

use crate::protocol::AddCheckpointRequest;

/// The most logs one witness is configured for; each costs one verifier key in memory and one
/// row on disk.
pub const KNOWN_LOGS_MAX: usize = 4096;
/// How long a request waits for another process's write lock on the state file before failing.
pub const STORE_BUSY_TIMEOUT_MS: u64 = 5_000;
/// The schema version kept in SQLite's `user_version`.
const SCHEMA_VERSION: i64 = 1;

/// A log the witness cosigns for: its checkpoint origin and the verifier key text
/// (`<name>+<key ID>+base64(0x01 || Ed25519 public key)`) of the one key that signs its
/// checkpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownLog {
    pub origin: String,
    pub verifier_key_text: String,
}

/// Why the witness could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{count} logs configured; at most {KNOWN_LOGS_MAX} are allowed")]
    TooManyLogs { count: usize },
    #[error("log {origin:?} is configured twice; a log has exactly one key")]
    DuplicateLog { origin: String },
    #[error("log origin {origin:?} cannot appear in a checkpoint")]
    InvalidOrigin {
        origin: String,
        #[source]
        source: trustlog::Error,
    },
    #[error("log {origin:?} has an invalid verifier key")]
    InvalidLogKey {
        origin: String,
        #[source]
        source: trustlog::Error,
    },
    #[error("log {origin:?} has a key that is not an Ed25519 note key (type 0x01)")]
    LogKeyNotEd25519 { origin: String },
    #[error("witness state file has schema version {version}; this build knows {SCHEMA_VERSION}")]
    UnknownSchema { version: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A failure of the witness's SQLite state file. The message says which step failed; the
/// driver's error is the source.
#[derive(Debug, thiserror::Error)]
#[error("witness state store: {context}")]
pub struct StoreError {
    context: &'static str,
    #[source]
    source: Option<rusqlite::Error>,
}

impl StoreError {
    fn driver(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        move |source| StoreError {
            context,
            source: Some(source),
        }
    }

    fn corrupt(context: &'static str) -> StoreError {
        StoreError {
            context,
            source: None,
        }
    }
}

/// Why the witness did not cosign. One variant per answer of the protocol, checked in this order.
#[derive(Debug, thiserror::Error)]
pub enum AddCheckpointError {
    /// The body is not a well-formed request, or its old size exceeds the checkpoint's size
    /// (400 Bad Request). The message describes the input only.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// No log with the checkpoint's origin is configured (404 Not Found).
    #[error("unknown log")]
    UnknownLog,
    /// The checkpoint carries no valid signature by the log's key, or a signature by that key
    /// fails (403 Forbidden).
    #[error("checkpoint is not signed by the log's key")]
    BadSignature,
    /// The old size is not the size the witness last cosigned for this log (409 Conflict, with
    /// the witness's size as a `text/x.tlog.size` body so the log can retry from it).
    #[error("the witness last cosigned size {size} of this log")]
    Conflict { size: u64 },
    /// The checkpoint has the size the witness last cosigned but another root: the log forked
    /// (409 Conflict).
    #[error("checkpoint root differs from the root the witness cosigned at this size")]
    RootMismatch,
    /// The consistency proof does not show that the checkpoint extends the cosigned one
    /// (422 Unprocessable Entity).
    #[error("consistency proof does not verify")]
    BadProof,
    /// The state file failed (500).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cosigner refused (500); only a clock past 2^63 - 1 seconds gets here.
    #[error("cosigning failed")]
    Cosign(#[source] trustlog::Error),
}

/// A C2SP tlog-witness: a cosigning key, the logs it vouches for, and the last checkpoint it
/// cosigned for each, kept in SQLite. Shared between threads by reference.
#[derive(Debug)]
pub struct Witness {
    cosigner: Cosigner,
    /// Each log's one verifier key, by origin.
    logs: BTreeMap<String, NoteVerifier>,
    /// One connection, so requests from this process queue here rather than on SQLite's lock.
    connection: Mutex<Connection>,
}

impl Witness {
    /// Opens (creating if needed) the state file at `path` and checks the configured logs: each
    /// origin valid and listed once, each key an Ed25519 note key. The file is the witness's
    /// memory: losing it lets the witness cosign a fork, so keep it with the cosigning key.
    pub fn open(
        path: &Path,
        cosigner: Cosigner,
        logs: Vec<KnownLog>,
    ) -> Result<Witness, OpenError> {
        if logs.len() > KNOWN_LOGS_MAX {
            return Err(OpenError::TooManyLogs { count: logs.len() });
        }
        let mut verifiers = BTreeMap::new();
        for log in logs {
            Checkpoint::new(&log.origin, 0, empty_root(), Vec::new()).map_err(|source| {
                OpenError::InvalidOrigin {
                    origin: log.origin.clone(),
                    source,
                }
            })?;
            let verifier = NoteVerifier::parse(&log.verifier_key_text).map_err(|source| {
                OpenError::InvalidLogKey {
                    origin: log.origin.clone(),
                    source,
                }
            })?;
            if verifier.signature_type() != SignatureType::Ed25519 {
                return Err(OpenError::LogKeyNotEd25519 { origin: log.origin });
            }
            if verifiers.contains_key(&log.origin) {
                return Err(OpenError::DuplicateLog { origin: log.origin });
            }
            verifiers.insert(log.origin, verifier);
        }
        let connection = open_store(path)?;
        Ok(Witness {
            cosigner,
            logs: verifiers,
            connection: Mutex::new(connection),
        })
    }

    /// The witness's cosignature verifier key text, for logs and their clients to trust.
    pub fn verifier_key_text(&self) -> String {
        self.cosigner.verifier_key_text()
    }

    /// Handles one `add-checkpoint` request body. On success the new `(size, root)` is on disk
    /// and the result is the witness's cosignature line (newline-terminated), timestamped
    /// `now_s` (POSIX seconds, read by the caller).
    pub fn add_checkpoint(&self, body: &str, now_s: u64) -> Result<String, AddCheckpointError> {
        let request = AddCheckpointRequest::parse(body)
            .map_err(|error| AddCheckpointError::Malformed(error.to_string()))?;
        let checkpoint = request.checkpoint();
        let origin = checkpoint.origin();
        let verifier = self
            .logs
            .get(origin)
            .ok_or(AddCheckpointError::UnknownLog)?;
        let checkpoint_text = verify_log_signature(request.checkpoint_note(), verifier)?;
        if checkpoint_text != checkpoint.to_body() {
            // Both parsers split the note at its last blank line, so this does not happen; if it
            // did, the witness would cosign text other than what it checked.
            return Err(AddCheckpointError::Malformed(
                "the signed text is not the checkpoint".to_owned(),
            ));
        }
        if request.old_size() > checkpoint.size() {
            return Err(AddCheckpointError::Malformed(format!(
                "old size {} exceeds the checkpoint size {}",
                request.old_size(),
                checkpoint.size()
            )));
        }

        let mut connection = self.lock();
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::driver("begin transaction"))?;
        let stored = read_state(&transaction, origin)?;
        if let Err(refusal) = check_extends(stored, &request) {
            if matches!(
                refusal,
                AddCheckpointError::BadProof | AddCheckpointError::RootMismatch
            ) {
                // A validly signed checkpoint that does not extend the cosigned one may be
                // evidence of a forked log: keep it in the log, as the spec suggests.
                tracing::warn!(
                    origin,
                    old_size = request.old_size(),
                    size = checkpoint.size(),
                    note = request.checkpoint_note(),
                    "refused a signed checkpoint inconsistent with the cosigned one: {refusal}"
                );
            }
            return Err(refusal);
        }
        let line = self
            .cosigner
            .cosign(&checkpoint_text, now_s)
            .map_err(AddCheckpointError::Cosign)?;
        write_state(&transaction, origin, stored, checkpoint, now_s)?;
        transaction.commit().map_err(StoreError::driver("commit"))?;
        Ok(line)
    }

    /// The last `(size, root)` the witness cosigned for `origin`, if any.
    pub fn state(&self, origin: &str) -> Result<Option<(u64, Hash)>, StoreError> {
        let connection = self.lock();
        read_state(&connection, origin)
    }

    /// A panic while the lock was held dropped its transaction, which rolled back, so the
    /// connection is still sound: take it back rather than fail every later request.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Verifies the note's signature by the log's key; returns the signed text.
fn verify_log_signature(note: &str, verifier: &NoteVerifier) -> Result<String, AddCheckpointError> {
    match verify_note_with(note, std::slice::from_ref(verifier)) {
        Ok(verified) => Ok(verified.text),
        Err(trustlog::Error::NoVerifiedSignature | trustlog::Error::SignatureInvalid { .. }) => {
            Err(AddCheckpointError::BadSignature)
        }
        Err(malformed) => Err(AddCheckpointError::Malformed(malformed.to_string())),
    }
}

/// Whether the request's checkpoint may follow the stored state (none means size 0, the empty
/// tree). Pure; runs inside the transaction so the state cannot change before the write.
fn check_extends(
    stored: Option<(u64, Hash)>,
    request: &AddCheckpointRequest,
) -> Result<(), AddCheckpointError> {
    let (stored_size, stored_root) = stored.unwrap_or((0, empty_root()));
    let (old_size, proof) = (request.old_size(), request.proof());
    let (new_size, new_root) = (request.checkpoint().size(), request.checkpoint().root());
    if old_size != stored_size {
        return Err(AddCheckpointError::Conflict { size: stored_size });
    }
    // The empty tree has exactly one root; a size-0 checkpoint with another is consistent with
    // nothing.
    if new_size == 0 && *new_root != empty_root() {
        return Err(AddCheckpointError::BadProof);
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(AddCheckpointError::BadProof);
        }
        if *new_root != stored_root {
            return Err(AddCheckpointError::RootMismatch);
        }
        return Ok(());
    }
    verify_consistency(old_size, new_size, &stored_root, new_root, proof)
        .map_err(|_| AddCheckpointError::BadProof)
}

fn open_store(path: &Path) -> Result<Connection, OpenError> {
    let connection = Connection::open(path).map_err(StoreError::driver("open the state file"))?;
    connection
        .busy_timeout(std::time::Duration::from_millis(STORE_BUSY_TIMEOUT_MS))
        .map_err(StoreError::driver("set the busy timeout"))?;
    let journal_mode: String = connection
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(StoreError::driver("enable write-ahead logging"))?;
    if !journal_mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::corrupt("write-ahead logging unavailable").into());
    }
    // A cosignature is a promise: the state behind it must be on disk before the answer leaves.
    connection
        .pragma_update(None, "synchronous", "FULL")
        .map_err(StoreError::driver("set synchronous=FULL"))?;
    let version: i64 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(StoreError::driver("read the schema version"))?;
    match version {
        0 => connection
            .execute_batch(
                "BEGIN IMMEDIATE;
                 CREATE TABLE IF NOT EXISTS witness_logs (
                     origin TEXT PRIMARY KEY,
                     size INTEGER NOT NULL,
                     root BLOB NOT NULL,
                     updated_at INTEGER
                 );
                 PRAGMA user_version = 1;
                 COMMIT;",
            )
            .map_err(StoreError::driver("create the schema"))?,
        SCHEMA_VERSION => {}
        version => return Err(OpenError::UnknownSchema { version }),
    }
    const _: () = assert!(SCHEMA_VERSION == 1);
    Ok(connection)
}

fn read_state(connection: &Connection, origin: &str) -> Result<Option<(u64, Hash)>, StoreError> {
    let row: Option<(i64, Vec<u8>)> = connection
        .query_row(
            "SELECT size, root FROM witness_logs WHERE origin = ?1",
            params![origin],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(StoreError::driver("read a log's state"))?;
    let Some((size, root)) = row else {
        return Ok(None);
    };
    let size = u64::try_from(size).map_err(|_| StoreError::corrupt("stored size is negative"))?;
    let root: Hash = root
        .try_into()
        .map_err(|_| StoreError::corrupt("stored root is not 32 bytes"))?;
    const _: () = assert!(HASH_BYTES == 32);
    Ok(Some((size, root)))
}

/// Stores the checkpoint's `(size, root)` if the row still holds `expected` (compare-and-swap).
fn write_state(
    connection: &Connection,
    origin: &str,
    expected: Option<(u64, Hash)>,
    checkpoint: &Checkpoint,
    now_s: u64,
) -> Result<(), StoreError> {
    assert!(expected.is_none_or(|(size, _)| size <= checkpoint.size()));
    // Checkpoint sizes and cosignature timestamps are at most 2^63 - 1, so these never clamp.
    let size = i64::try_from(checkpoint.size()).unwrap_or(i64::MAX);
    let updated_at = i64::try_from(now_s).unwrap_or(i64::MAX);
    let root = checkpoint.root().as_slice();
    let changed = match expected {
        None => connection.execute(
            "INSERT INTO witness_logs (origin, size, root, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (origin) DO NOTHING",
            params![origin, size, root, updated_at],
        ),
        Some((expected_size, expected_root)) => connection.execute(
            "UPDATE witness_logs SET size = ?2, root = ?3, updated_at = ?4
             WHERE origin = ?1 AND size = ?5 AND root = ?6",
            params![
                origin,
                size,
                root,
                updated_at,
                i64::try_from(expected_size).unwrap_or(i64::MAX),
                expected_root.as_slice()
            ],
        ),
    }
    .map_err(StoreError::driver("write a log's state"))?;
    if changed != 1 {
        return Err(StoreError::corrupt(
            "a log's state changed during its write transaction",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use trustlog::{leaf_hash, node_hash, NoteSigner};

    fn request(old_size: u64, proof: Vec<Hash>, size: u64, root: Hash) -> AddCheckpointRequest {
        let signer = NoteSigner::from_seed("log.example", &[1; 32]).unwrap();
        let text = Checkpoint::new("log.example", size, root, Vec::new())
            .unwrap()
            .to_body();
        let note = trustlog::sign_note(&text, &signer).unwrap();
        AddCheckpointRequest::new(old_size, proof, note).unwrap()
    }

    #[test]
    fn the_first_checkpoint_needs_old_size_zero_and_no_proof() {
        let root = leaf_hash(b"a");
        assert!(check_extends(None, &request(0, Vec::new(), 1, root)).is_ok());
        assert!(matches!(
            check_extends(None, &request(1, Vec::new(), 1, root)),
            Err(AddCheckpointError::Conflict { size: 0 })
        ));
        assert!(matches!(
            check_extends(None, &request(0, vec![root], 1, root)),
            Err(AddCheckpointError::BadProof)
        ));
    }

    #[test]
    fn an_empty_tree_has_only_the_empty_root() {
        assert!(check_extends(None, &request(0, Vec::new(), 0, empty_root())).is_ok());
        assert!(matches!(
            check_extends(None, &request(0, Vec::new(), 0, [9; 32])),
            Err(AddCheckpointError::BadProof)
        ));
    }

    #[test]
    fn same_size_needs_the_same_root() {
        let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
        let stored = Some((1, a));
        assert!(check_extends(stored, &request(1, Vec::new(), 1, a)).is_ok());
        assert!(matches!(
            check_extends(stored, &request(1, Vec::new(), 1, b)),
            Err(AddCheckpointError::RootMismatch)
        ));
        assert!(matches!(
            check_extends(stored, &request(1, vec![a], 1, a)),
            Err(AddCheckpointError::BadProof)
        ));
    }

    #[test]
    fn growth_needs_a_proof_from_the_stored_root() {
        let (a, b, c) = (leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c"));
        let root_ab = node_hash(&a, &b);
        assert!(check_extends(Some((1, a)), &request(1, vec![b], 2, root_ab)).is_ok());
        // The same proof from a different stored root (a fork at size 1) fails.
        assert!(matches!(
            check_extends(Some((1, c)), &request(1, vec![b], 2, root_ab)),
            Err(AddCheckpointError::BadProof)
        ));
        assert!(matches!(
            check_extends(Some((1, a)), &request(1, Vec::new(), 2, root_ab)),
            Err(AddCheckpointError::BadProof)
        ));
        assert!(matches!(
            check_extends(Some((2, root_ab)), &request(1, vec![b], 2, root_ab)),
            Err(AddCheckpointError::Conflict { size: 2 })
        ));
    }
}
