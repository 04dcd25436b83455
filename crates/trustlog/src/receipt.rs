//! Receipts: a leaf, its inclusion proof and a signed checkpoint, verifiable offline with the
//! operator's public key.

use crate::checkpoint::Checkpoint;
use crate::hash::{leaf_hash, Hash};
use crate::note::verify_note;
use crate::proof::verify_inclusion;
use crate::{Error, Result, LEAF_BYTES_MAX};

/// Proof that `leaf` is entry `leaf_index` of the log whose signed checkpoint is `checkpoint`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The leaf's bytes (its canonical encoding), not its hash.
    pub leaf: Vec<u8>,
    pub leaf_index: u64,
    pub tree_size: u64,
    /// The RFC 9162 inclusion proof of the leaf in the tree of `tree_size` leaves.
    pub inclusion_path: Vec<Hash>,
    /// The signed checkpoint note for `tree_size`.
    pub checkpoint: String,
}

/// Verifies a receipt: the checkpoint note carries a valid signature by the key in
/// `verifier_key_text`, its text is a checkpoint of exactly `tree_size` leaves, and
/// `leaf_hash(leaf)` is included at `leaf_index` under its root. Returns the checkpoint so the
/// caller can check its origin.
pub fn verify_receipt(receipt: &Receipt, verifier_key_text: &str) -> Result<Checkpoint> {
    if receipt.leaf.len() > LEAF_BYTES_MAX {
        return Err(Error::LeafTooLarge {
            bytes: receipt.leaf.len(),
        });
    }
    let note = verify_note(&receipt.checkpoint, verifier_key_text)?;
    let checkpoint = Checkpoint::parse(&note.text)?;
    if checkpoint.size() != receipt.tree_size {
        return Err(Error::ReceiptSizeMismatch {
            receipt_size: receipt.tree_size,
            checkpoint_size: checkpoint.size(),
        });
    }
    verify_inclusion(
        &leaf_hash(&receipt.leaf),
        receipt.leaf_index,
        receipt.tree_size,
        &receipt.inclusion_path,
        checkpoint.root(),
    )?;
    Ok(checkpoint)
}
