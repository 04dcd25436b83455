//! The trust log's pure core: a tamper-evident Merkle log.
//!
//! - Tree hashing, inclusion and consistency proofs exactly as RFC 9162 (leaf prefix 0x00, node
//!   prefix 0x01) — [`leaf_hash`], [`inclusion_proof`], [`verify_inclusion`],
//!   [`consistency_proof`], [`verify_consistency`].
//! - Hashes stored as C2SP tlog-tiles of height 8, so a proof costs O(log n) tile reads —
//!   [`Tile`], [`TileReader`], [`TileHashReader`] — and grown by an appender that only needs the
//!   tree's right edge — [`RightEdge::append`].
//! - C2SP tlog-checkpoint text, C2SP signed notes with Ed25519, C2SP tlog-cosignature
//!   `cosignature/v1` for witnesses — [`Checkpoint`], [`sign_note`], [`verify_note`],
//!   [`Cosigner`].
//! - Receipts anyone can check offline — [`verify_receipt`].
//!
//! Invariants: no I/O, no clock, no randomness, no async. Stored hashes come in through
//! [`TileReader`] / [`HashReader`], time as a timestamp argument, keys as caller-drawn seeds.
//! Every input is bounded by a named constant below, and malformed input is an [`Error`], never a
//! panic; `assert!`s guard only this crate's own invariants.

mod append;
mod checkpoint;
mod error;
mod hash;
mod note;
mod proof;
mod receipt;
mod tile;

pub use append::{Appended, RightEdge, TileWrite};
pub use checkpoint::Checkpoint;
pub use error::{Error, Result};
pub use hash::{empty_root, leaf_hash, node_hash, Hash, HASH_BYTES};
pub use note::{
    add_signature_line, check_key_name, cosignature_message, cosigner_verifier_key_text, key_id,
    sign_note, verifier_key_text, verify_note, verify_note_with, Cosigner, NoteSignature,
    NoteSigner, NoteVerifier, SignatureType, VerifiedNote, VerifiedSignature, COSIGNATURE_BYTES,
    COSIGNATURE_TIMESTAMP_MAX, ED25519_KEY_BYTES, ED25519_SIGNATURE_BYTES,
};
pub use proof::{
    consistency_proof, inclusion_proof, subtree_hash, tree_hash, verify_consistency,
    verify_inclusion, HashReader, NodeId,
};
pub use receipt::{verify_receipt, Receipt};
pub use tile::{
    decode_entry_bundle, decode_tile, encode_entry_bundle, encode_tile, Tile, TileHashReader,
    TileReader, TILE_BYTES_MAX, TILE_HEIGHT, TILE_LEVEL_MAX, TILE_WIDTH,
};

/// The largest tree, in leaves: 2^63 - 1, so a size fits the store's signed 64-bit integers.
pub const TREE_SIZE_MAX: u64 = i64::MAX as u64;
/// The most hashes a proof may carry. A tree of at most 2^63 - 1 leaves is at most 63 levels
/// high, so no valid proof comes near it.
pub const PROOF_HASHES_MAX: usize = 64;
/// The most leaves one [`RightEdge::append`] call takes: well above a ledger batch (8,190
/// transfers) plus its registrations, and small enough to bound the tiles one call returns.
pub const APPEND_LEAVES_MAX: usize = 1 << 16;
/// The largest leaf, in bytes: entry bundles prefix each entry with a u16 length.
pub const LEAF_BYTES_MAX: usize = u16::MAX as usize;
/// The largest signed note, in bytes. Room for the text and well over the 16 signatures the
/// signed-note spec requires verifiers to accept, even post-quantum ones of nearly 5 kB.
pub const NOTE_BYTES_MAX: usize = 128 * 1024;
/// The most signature lines a note may carry (the signed-note spec asks for at least 16).
pub const NOTE_SIGNATURES_MAX: usize = 100;
/// The longest key name, in bytes.
pub const KEY_NAME_BYTES_MAX: usize = 256;
/// The longest checkpoint origin line, in bytes.
pub const ORIGIN_BYTES_MAX: usize = 256;
/// The most extension lines a checkpoint may carry.
pub const CHECKPOINT_EXTENSIONS_MAX: usize = 16;

const _: () = assert!(TREE_SIZE_MAX.ilog2() < PROOF_HASHES_MAX as u32);
const _: () = assert!(NOTE_SIGNATURES_MAX >= 16);
const _: () = assert!(APPEND_LEAVES_MAX >= 8190);
const _: () = assert!(ORIGIN_BYTES_MAX <= KEY_NAME_BYTES_MAX);
const _: () = assert!(NOTE_BYTES_MAX >= 16 * 5 * 1024 * 4 / 3);
