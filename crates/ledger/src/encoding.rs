//! The canonical bytes of a committed transfer: what the trust log commits to.
//!
//! Version 1, 116 bytes, all integers big-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | version (1) |
//! | 1 | 16 | id |
//! | 17 | 16 | debit_account_id |
//! | 33 | 16 | credit_account_id |
//! | 49 | 16 | amount |
//! | 65 | 16 | pending_id |
//! | 81 | 16 | user_data |
//! | 97 | 4 | timeout_seconds |
//! | 101 | 2 | kind |
//! | 103 | 2 | flags |
//! | 105 | 3 | currency (ASCII) |
//! | 108 | 8 | timestamp (ledger nanoseconds) |
//!
//! The layout never changes for a version; a new layout takes a new version byte.

use crate::{Currency, Transfer, TransferFlags};

pub const TRANSFER_ENCODING_VERSION: u8 = 1;
pub const TRANSFER_ENCODED_SIZE: usize = 116;

/// The first byte of every trust-log leaf says what it records. A committed transfer's leaf is
/// this byte followed by the transfer's canonical encoding (117 bytes). Registrations (merchant
/// codes, e-invoices, device certificates, deposited documents) take other values.
pub const LOG_LEAF_TRANSFER: u8 = 1;
pub const TRANSFER_LEAF_SIZE: usize = 1 + TRANSFER_ENCODED_SIZE;

impl Transfer {
    pub fn encode(&self) -> [u8; TRANSFER_ENCODED_SIZE] {
        let mut bytes = [0u8; TRANSFER_ENCODED_SIZE];
        bytes[0] = TRANSFER_ENCODING_VERSION;
        bytes[1..17].copy_from_slice(&self.id.to_be_bytes());
        bytes[17..33].copy_from_slice(&self.debit_account_id.to_be_bytes());
        bytes[33..49].copy_from_slice(&self.credit_account_id.to_be_bytes());
        bytes[49..65].copy_from_slice(&self.amount.to_be_bytes());
        bytes[65..81].copy_from_slice(&self.pending_id.to_be_bytes());
        bytes[81..97].copy_from_slice(&self.user_data.to_be_bytes());
        bytes[97..101].copy_from_slice(&self.timeout_seconds.to_be_bytes());
        bytes[101..103].copy_from_slice(&self.kind.to_be_bytes());
        bytes[103..105].copy_from_slice(&self.flags.bits().to_be_bytes());
        bytes[105..108].copy_from_slice(&self.currency.as_bytes());
        bytes[108..116].copy_from_slice(&self.timestamp.to_be_bytes());
        bytes
    }

    /// The transfer's leaf in the trust log: [`LOG_LEAF_TRANSFER`], then [`Transfer::encode`].
    pub fn log_leaf(&self) -> [u8; TRANSFER_LEAF_SIZE] {
        let mut leaf = [0u8; TRANSFER_LEAF_SIZE];
        leaf[0] = LOG_LEAF_TRANSFER;
        leaf[1..].copy_from_slice(&self.encode());
        leaf
    }

    /// The inverse of [`Transfer::encode`]; `None` for any other version or a malformed field.
    pub fn decode(bytes: &[u8]) -> Option<Transfer> {
        if bytes.len() != TRANSFER_ENCODED_SIZE || bytes[0] != TRANSFER_ENCODING_VERSION {
            return None;
        }
        let u128_at = |offset: usize| {
            u128::from_be_bytes(bytes[offset..offset + 16].try_into().expect("16 bytes"))
        };
        Some(Transfer {
            id: u128_at(1),
            debit_account_id: u128_at(17),
            credit_account_id: u128_at(33),
            amount: u128_at(49),
            pending_id: u128_at(65),
            user_data: u128_at(81),
            timeout_seconds: u32::from_be_bytes(bytes[97..101].try_into().expect("4 bytes")),
            kind: u16::from_be_bytes(bytes[101..103].try_into().expect("2 bytes")),
            flags: TransferFlags::from_bits(u16::from_be_bytes(
                bytes[103..105].try_into().expect("2 bytes"),
            ))?,
            currency: Currency::from_bytes(bytes[105..108].try_into().expect("3 bytes"))?,
            timestamp: u64::from_be_bytes(bytes[108..116].try_into().expect("8 bytes")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_other_versions() {
        let transfer = Transfer {
            id: 7,
            debit_account_id: 1,
            credit_account_id: 2,
            amount: 1234,
            pending_id: 0,
            user_data: 99,
            timeout_seconds: 30,
            kind: 3,
            flags: TransferFlags::PENDING,
            currency: Currency::parse("CNY").unwrap(),
            timestamp: 1_700_000_000_000_000_000,
        };
        let bytes = transfer.encode();
        assert_eq!(bytes[0], 1);
        assert_eq!(&bytes[105..108], b"CNY");
        assert_eq!(Transfer::decode(&bytes), Some(transfer));
        let mut other_version = bytes;
        other_version[0] = 2;
        assert_eq!(Transfer::decode(&other_version), None);
        assert_eq!(Transfer::decode(&bytes[..100]), None);
        let leaf = transfer.log_leaf();
        assert_eq!(leaf[0], LOG_LEAF_TRANSFER);
        assert_eq!(&leaf[1..], &bytes[..]);
    }
}
