//! The one error type of the crate. Every malformed input maps to a variant with a message that
//! says what was wrong; nothing in this crate panics on input.

/// Why a trust-log operation refused its input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // Tree shape.
    #[error("tree size {size} exceeds the maximum of {max}", max = crate::TREE_SIZE_MAX)]
    TreeTooLarge { size: u64 },
    #[error("leaf index {index} is not below the tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeExceedsNew { old_size: u64, new_size: u64 },

    // Proof verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2).
    #[error("proof has {hashes} hashes; at most {max} are allowed", max = crate::PROOF_HASHES_MAX)]
    ProofTooLong { hashes: usize },
    #[error("proof has more hashes than a tree of this size needs")]
    ProofHasExtraHashes,
    #[error("proof has fewer hashes than a tree of this size needs")]
    ProofMissingHashes,
    #[error("consistency proof between different tree sizes must not be empty")]
    ConsistencyProofEmpty,
    #[error("proof must be empty when the old tree is empty or both trees have the same size")]
    ProofNotEmpty,
    #[error("proof does not lead to the expected root")]
    RootMismatch,
    #[error("consistency proof does not lead to the old root")]
    OldRootMismatch,
    #[error("consistency proof does not lead to the new root")]
    NewRootMismatch,

    // Tiles and storage.
    #[error("node at level {level} index {index} is not part of a tree of size {tree_size}")]
    NodeOutsideTree {
        level: u8,
        index: u64,
        tree_size: u64,
    },
    #[error("invalid tile: {reason}")]
    InvalidTile { reason: &'static str },
    #[error("invalid tile path {path:?}: {reason}")]
    InvalidTilePath { path: String, reason: &'static str },
    #[error("tile at level {level} index {index} has {got} hashes; expected {expected}")]
    TileWidthMismatch {
        level: u8,
        index: u64,
        expected: usize,
        got: usize,
    },
    #[error("batch of {leaves} leaves exceeds the maximum of {max}", max = crate::APPEND_LEAVES_MAX)]
    BatchTooLarge { leaves: usize },
    #[error("invalid entry bundle: {reason}")]
    InvalidEntryBundle { reason: &'static str },
    #[error("leaf of {bytes} bytes exceeds the maximum of {max}", max = crate::LEAF_BYTES_MAX)]
    LeafTooLarge { bytes: usize },
    #[error("reading tiles failed")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),

    // Checkpoints.
    #[error("invalid checkpoint: {reason}")]
    InvalidCheckpoint { reason: &'static str },

    // Signed notes and keys.
    #[error("invalid key name {name:?}: {reason}")]
    InvalidKeyName { name: String, reason: &'static str },
    #[error("invalid verifier key: {reason}")]
    InvalidVerifierKey { reason: &'static str },
    #[error("invalid signer key: {reason}")]
    InvalidSignerKey { reason: &'static str },
    #[error("invalid note text: {reason}")]
    InvalidNoteText { reason: &'static str },
    #[error("malformed signed note: {reason}")]
    MalformedNote { reason: &'static str },
    #[error("note of {bytes} bytes exceeds the maximum of {max}", max = crate::NOTE_BYTES_MAX)]
    NoteTooLarge { bytes: usize },
    #[error("note has more than {max} signatures", max = crate::NOTE_SIGNATURES_MAX)]
    TooManySignatures,
    #[error("signature by known key {name}+{key_id:08x} does not verify")]
    SignatureInvalid { name: String, key_id: u32 },
    #[error("note carries no valid signature from a known key")]
    NoVerifiedSignature,
    #[error("cosignature timestamp {timestamp} exceeds 2^63 - 1")]
    TimestampTooLarge { timestamp: u64 },

    // Receipts.
    #[error(
        "receipt is for tree size {receipt_size} but its checkpoint has size {checkpoint_size}"
    )]
    ReceiptSizeMismatch {
        receipt_size: u64,
        checkpoint_size: u64,
    },
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
