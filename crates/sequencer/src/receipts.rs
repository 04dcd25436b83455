//! Receipts: a committed transfer's leaf, its inclusion proof, and the signed checkpoint the
//! proof leads to — what anyone needs to check the transfer offline.

use store::{StoreError, StoreReader};

use crate::StoreTiles;

#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    #[error("no transfer {0}")]
    NotFound(u128),
    #[error("the log has no signed checkpoint yet")]
    NoCheckpoint,
    #[error("transfer {transfer_id} (leaf {leaf_index}) is newer than the last checkpoint (size {checkpoint_size}); checkpoints are signed at least every second while Tally runs")]
    NotYetCheckpointed {
        transfer_id: u128,
        leaf_index: u64,
        checkpoint_size: u64,
    },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("building the inclusion proof: {0}")]
    Proof(String),
}

/// The receipt of transfer `transfer_id` under the latest signed checkpoint.
pub fn transfer_receipt(
    reader: &mut dyn StoreReader,
    transfer_id: u128,
) -> Result<trustlog::Receipt, ReceiptError> {
    let stored = reader
        .transfer(transfer_id)?
        .ok_or(ReceiptError::NotFound(transfer_id))?;
    let checkpoint = reader
        .latest_checkpoint()?
        .ok_or(ReceiptError::NoCheckpoint)?;
    if checkpoint.size <= stored.leaf_index {
        return Err(ReceiptError::NotYetCheckpointed {
            transfer_id,
            leaf_index: stored.leaf_index,
            checkpoint_size: checkpoint.size,
        });
    }
    let tiles = StoreTiles::new(reader);
    let hashes = trustlog::TileHashReader::new(checkpoint.size, &tiles)
        .map_err(|error| ReceiptError::Proof(error.to_string()))?;
    let inclusion_path = trustlog::inclusion_proof(stored.leaf_index, checkpoint.size, &hashes)
        .map_err(|error| ReceiptError::Proof(error.to_string()))?;
    Ok(trustlog::Receipt {
        leaf: stored.transfer.log_leaf().to_vec(),
        leaf_index: stored.leaf_index,
        tree_size: checkpoint.size,
        inclusion_path,
        checkpoint: checkpoint.note,
    })
}
