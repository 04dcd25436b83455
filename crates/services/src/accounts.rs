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
/// A biller's settlement balance (electricity, water, phone top-up …).
pub const KIND_BILLER: u16 = 21;
/// Red envelopes sent and not yet grabbed (one platform account).
pub const KIND_ENVELOPES: u16 = 30;
/// Escrowed payments waiting for the buyer's confirmation (one platform account).
pub const KIND_ESCROW: u16 = 31;

/// Kinds whose credit balance the platform owes to someone, and which the reserve mirrors.
pub const KINDS_OWED: [u16; 7] = [
    KIND_FEES,
    KIND_SUSPENSE,
    KIND_WALLET,
    KIND_MERCHANT,
    KIND_BILLER,
    KIND_ENVELOPES,
    KIND_ESCROW,
];

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
/// A red envelope's total, from the sender into the envelopes account.
pub const TRANSFER_ENVELOPE: u16 = 8;
/// One grabbed packet, from the envelopes account to the grabber.
pub const TRANSFER_ENVELOPE_GRAB: u16 = 9;
/// What nobody grabbed before the envelope expired, back to its sender.
pub const TRANSFER_ENVELOPE_RETURN: u16 = 10;
/// An escrowed payment, from the buyer into the escrow account.
pub const TRANSFER_ESCROW: u16 = 11;
/// Escrowed money released to the seller.
pub const TRANSFER_ESCROW_RELEASE: u16 = 12;
/// Escrowed money given back to the buyer.
pub const TRANSFER_ESCROW_REFUND: u16 = 13;
/// A bill payment, from the wallet to the biller.
pub const TRANSFER_BILL: u16 = 14;

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
        TRANSFER_ENVELOPE => "red_envelope",
        TRANSFER_ENVELOPE_GRAB => "red_envelope_grab",
        TRANSFER_ENVELOPE_RETURN => "red_envelope_return",
        TRANSFER_ESCROW => "escrow",
        TRANSFER_ESCROW_RELEASE => "escrow_release",
        TRANSFER_ESCROW_REFUND => "escrow_refund",
        TRANSFER_BILL => "bill",
        _ => "other",
    }
}
