//! Writes that do not ride in the ledger's batches: API credentials for operators, auditors
//! and depositors, and the cosignatures witnesses return for the log's checkpoints. Neither
//! moves money nor grows the log, so neither waits for the sequencer.

use crate::StoreResult;

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialRole {
    /// Read-only SQL over the ledger, the log and the business tables.
    Auditor,
    /// Deposits document hashes in the trust log.
    Depositor,
    /// Everything an auditor and a depositor may do.
    Operator,
}

impl CredentialRole {
    pub const ALL: [CredentialRole; 3] = [
        CredentialRole::Auditor,
        CredentialRole::Depositor,
        CredentialRole::Operator,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CredentialRole::Auditor => "auditor",
            CredentialRole::Depositor => "depositor",
            CredentialRole::Operator => "operator",
        }
    }

    pub fn from_name(name: &str) -> Option<CredentialRole> {
        Self::ALL.into_iter().find(|role| role.name() == name)
    }

    /// Whether a credential of this role may act as `wanted`.
    pub fn grants(self, wanted: CredentialRole) -> bool {
        self == wanted || self == CredentialRole::Operator
    }
}

/// A credential to create. The secret itself is never stored: only its SHA-256 digest (the
/// secret is 256 random bits, so a fast hash is enough; passwords, which are not random, take
/// Argon2id elsewhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCredential {
    pub role: CredentialRole,
    pub label: String,
    pub secret_digest: [u8; 32],
    /// Unix seconds.
    pub created_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// 1, 2, 3 … (shown as `key_<id>`).
    pub id: u64,
    pub role: CredentialRole,
    pub label: String,
    pub secret_digest: [u8; 32],
    pub created_at: u64,
    pub revoked_at: Option<u64>,
}

/// Writes outside the ledger's batches, each its own durable transaction.
pub trait AdminWriter: Send {
    /// Stores a credential and returns its id.
    fn create_credential(&mut self, credential: &NewCredential) -> StoreResult<u64>;
    fn credentials(&mut self) -> StoreResult<Vec<Credential>>;
    /// Revokes a credential; `false` if there is no such credential or it was already revoked.
    fn revoke_credential(&mut self, id: u64, at: u64) -> StoreResult<bool>;
    /// Stores a witness's cosignature line for the checkpoint of `size` leaves (replacing an
    /// earlier line from the same witness for that size).
    fn add_cosignature(&mut self, size: u64, witness: &str, line: &str, at: u64)
        -> StoreResult<()>;
    /// Records that the self-audit re-derived the log up to `size` leaves and found `root`.
    fn record_audit(&mut self, size: u64, root: &[u8; 32], at: u64) -> StoreResult<()>;
}
