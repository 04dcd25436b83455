//! The catalogue of ledger account kinds: what each account is for. The ledger only stores the
//! code; the services, the demo and `tally verify` read it from here.

/// The mirror of the money the custodian bank holds for everyone: debited when money comes in
/// from a bank, credited when it goes out. Its debit balance equals what is owed.
pub const KIND_RESERVE: u16 = 1;
/// The platform's fee income.
pub const KIND_FEES: u16 = 2;
/// Money waiting for a decision (an unmatched bank credit, a disputed payment).
pub const KIND_SUSPENSE: u16 = 3;
/// A user's wallet: may never go negative.
pub const KIND_WALLET: u16 = 10;
/// A merchant's settlement balance.
pub const KIND_MERCHANT: u16 = 20;

/// Kinds whose credit balance the platform owes to someone, and which the reserve mirrors.
pub const KINDS_OWED: [u16; 4] = [KIND_FEES, KIND_SUSPENSE, KIND_WALLET, KIND_MERCHANT];

/// Transfer kinds: what a ledger transfer was for. Its `user_data` is the business object's id
/// (the order, refund, P2P transfer or bank transfer).
pub const TRANSFER_PAYMENT: u16 = 1;
/// The merchant fee of a payment, from the merchant to the platform.
pub const TRANSFER_FEE: u16 = 2;
pub const TRANSFER_REFUND: u16 = 3;
/// The part of the fee given back with a refund.
pub const TRANSFER_FEE_REFUND: u16 = 4;
pub const TRANSFER_P2P: u16 = 5;
pub const TRANSFER_TOP_UP: u16 = 6;
pub const TRANSFER_WITHDRAWAL: u16 = 7;

/// The name of a transfer kind, for histories.
pub fn transfer_kind_name(kind: u16) -> &'static str {
    match kind {
        TRANSFER_PAYMENT => "payment",
        TRANSFER_FEE => "fee",
        TRANSFER_REFUND => "refund",
        TRANSFER_FEE_REFUND => "fee_refund",
        TRANSFER_P2P => "p2p",
        TRANSFER_TOP_UP => "top_up",
        TRANSFER_WITHDRAWAL => "withdrawal",
        _ => "other",
    }
}
