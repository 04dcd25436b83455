//! Receipts: a committed leaf (a transfer or a registration), its inclusion proof, and the
//! signed checkpoint the proof leads to — what anyone needs to check it offline.

use store::{LogCheckpoint, StoreError, StoreReader};

use crate::StoreTiles;

#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    #[error("no {0}")]
    NotFound(String),
    #[error("the log has no signed checkpoint yet")]
    NoCheckpoint,
    #[error("{subject} (leaf {leaf_index}) is newer than the last checkpoint (size {checkpoint_size}); checkpoints are signed at least every second while Tally runs")]
    NotYetCheckpointed {
        subject: String,
        leaf_index: u64,
        checkpoint_size: u64,
    },
    #[error("{0}")]
    InvalidRange(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("building the proof: {0}")]
    Proof(String),
}

/// The receipt of transfer `transfer_id` under the latest signed checkpoint.
pub fn transfer_receipt(
    reader: &mut dyn StoreReader,
    transfer_id: u128,
) -> Result<trustlog::Receipt, ReceiptError> {
    let subject = format!("transfer {transfer_id}");
    let stored = reader
        .transfer(transfer_id)?
        .ok_or_else(|| ReceiptError::NotFound(subject.clone()))?;
    leaf_receipt(
        reader,
        &subject,
        stored.transfer.log_leaf().to_vec(),
        stored.leaf_index,
    )
}

/// The receipt of registration `registration_id` under the latest signed checkpoint.
pub fn registration_receipt(
    reader: &mut dyn StoreReader,
    registration_id: u64,
) -> Result<trustlog::Receipt, ReceiptError> {
    let subject = format!("registration {registration_id}");
    let stored = reader
        .registration(registration_id)?
        .ok_or_else(|| ReceiptError::NotFound(subject.clone()))?;
    leaf_receipt(
        reader,
        &subject,
        stored.registration.log_leaf(),
        stored.leaf_index,
    )
}

/// The receipt of the leaf `leaf` at `leaf_index` under the latest signed checkpoint.
fn leaf_receipt(
    reader: &mut dyn StoreReader,
    subject: &str,
    leaf: Vec<u8>,
    leaf_index: u64,
) -> Result<trustlog::Receipt, ReceiptError> {
    let checkpoint = reader
        .latest_checkpoint()?
        .ok_or(ReceiptError::NoCheckpoint)?;
    if checkpoint.size <= leaf_index {
        return Err(ReceiptError::NotYetCheckpointed {
            subject: subject.to_owned(),
            leaf_index,
            checkpoint_size: checkpoint.size,
        });
    }
    let tiles = StoreTiles::new(reader);
    let hashes = trustlog::TileHashReader::new(checkpoint.size, &tiles)
        .map_err(|error| ReceiptError::Proof(error.to_string()))?;
    let inclusion_path = trustlog::inclusion_proof(leaf_index, checkpoint.size, &hashes)
        .map_err(|error| ReceiptError::Proof(error.to_string()))?;
    Ok(trustlog::Receipt {
        leaf,
        leaf_index,
        tree_size: checkpoint.size,
        inclusion_path,
        checkpoint: cosigned_note(reader, &checkpoint)?,
    })
}

/// The checkpoint's signed note with the witnesses' cosignature lines stored for it.
pub fn cosigned_note(
    reader: &mut dyn StoreReader,
    checkpoint: &LogCheckpoint,
) -> Result<String, StoreError> {
    let mut note = checkpoint.note.clone();
    for line in reader.cosignatures(checkpoint.size)? {
        note.push_str(&line);
        if !line.ends_with('\n') {
            note.push('\n');
        }
    }
    Ok(note)
}

/// A consistency proof between two sizes of the log (RFC 9162), from the stored tiles.
pub fn consistency_proof(
    reader: &mut dyn StoreReader,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<trustlog::Hash>, ReceiptError> {
    let log_size = reader.head()?.log_size;
    if new_size > log_size || old_size > new_size {
        return Err(ReceiptError::InvalidRange(format!(
            "sizes must satisfy 0 <= from <= to <= {log_size} (the log's size), not from {old_size} to {new_size}"
        )));
    }
    let tiles = StoreTiles::new(reader);
    let hashes = trustlog::TileHashReader::new(new_size, &tiles)
        .map_err(|error| ReceiptError::Proof(error.to_string()))?;
    trustlog::consistency_proof(old_size, new_size, &hashes)
        .map_err(|error| ReceiptError::Proof(error.to_string()))
}
