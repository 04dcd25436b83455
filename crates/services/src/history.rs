//! A wallet's movements as people read them: what each transfer was for, which way it went,
//! and the business object it belongs to.

use ledger::Transfer;
use serde_json::{json, Value};

use crate::accounts::{
    transfer_kind_name, TRANSFER_BILL, TRANSFER_FEE, TRANSFER_FEE_REFUND, TRANSFER_P2P,
    TRANSFER_PAYMENT, TRANSFER_REFUND, TRANSFER_TOP_UP, TRANSFER_WITHDRAWAL,
};

/// The id prefix of the object a transfer of `kind` belongs to.
pub fn reference_prefix(kind: u16) -> Option<&'static str> {
    match kind {
        TRANSFER_PAYMENT | TRANSFER_FEE => Some("ord_"),
        TRANSFER_REFUND | TRANSFER_FEE_REFUND => Some("rfd_"),
        TRANSFER_P2P => Some("p2p_"),
        TRANSFER_TOP_UP | TRANSFER_WITHDRAWAL => Some("bt_"),
        TRANSFER_BILL => Some("bp_"),
        _ => None,
    }
}

/// Where a transfer stands in a two-phase movement: a hold, the hold's posting or its voiding
/// (the money back); `None` for a transfer that moves money at once.
pub fn phase(transfer: &Transfer) -> Option<&'static str> {
    use ledger::TransferFlags;
    if transfer.flags.contains(TransferFlags::PENDING) {
        Some("hold")
    } else if transfer.flags.contains(TransferFlags::POST_PENDING) {
        Some("posted")
    } else if transfer.flags.contains(TransferFlags::VOID_PENDING) {
        Some("voided")
    } else {
        None
    }
}

/// One movement of `account_id`'s history.
pub fn entry_json(transfer: &Transfer, account_id: u128) -> Value {
    let outgoing = transfer.debit_account_id == account_id;
    json!({
        "id": format!("tr_{}", transfer.id),
        "kind": transfer_kind_name(transfer.kind),
        "direction": if outgoing { "out" } else { "in" },
        "amount": u64::try_from(transfer.amount).unwrap_or(u64::MAX),
        "currency": transfer.currency.as_str(),
        "reference": reference_prefix(transfer.kind)
            .map(|prefix| format!("{prefix}{}", transfer.user_data)),
        "pending": transfer.flags.contains(ledger::TransferFlags::PENDING),
        "phase": phase(transfer),
        "cursor": transfer.timestamp,
        "at": crate::time::rfc3339(transfer.timestamp),
    })
}
