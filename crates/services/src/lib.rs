//! Tally's workflows over the store and the ledger. Each takes the time as an argument and
//! speaks in domain errors; only the server turns them into HTTP.

pub mod accounts;
pub mod ids;
pub mod secrets;
pub mod users;
