//! Tally's workflows over the store and the ledger. Each takes the time as an argument and
//! speaks in domain errors; only the server turns them into HTTP.

pub mod accounts;
pub mod bank;
pub mod bill_payments;
pub mod billers;
pub mod bills;
pub mod cards;
pub mod envelopes;
pub mod escrow;
pub mod history;
pub mod ids;
pub mod invoices;
pub mod orders;
pub mod payment_codes;
pub mod payments;
pub mod secrets;
pub mod seed;
pub mod signatures;
pub mod sms;
pub mod stack_text;
pub mod support;
pub mod time;
pub mod users;
