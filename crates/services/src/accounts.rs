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
