//! The ledger core: accounts, transfers, batches and result codes.
//!
//! A pure state machine. It reads no clock, no randomness and no storage, and never blocks:
//! the caller prefetches the accounts and transfers a batch names, passes the timestamp, and
//! writes what [`apply`] returns. Amounts are integer minor units (`u128`, at most
//! [`VALUE_MAX`]); there are no floats anywhere.

mod currency;
mod encoding;
mod id_map;
mod result;
mod state_machine;
mod types;

pub use currency::{Currency, CurrencyError};
pub use encoding::{
    LOG_LEAF_TRANSFER, TRANSFER_ENCODED_SIZE, TRANSFER_ENCODING_VERSION, TRANSFER_LEAF_SIZE,
};
pub use id_map::{IdHasher, IdMap, IdSet};
pub use result::EventResult;
pub use state_machine::{
    apply, Applied, Batch, PrefetchKeys, State, BATCH_EVENTS_MAX, BATCH_EXPIRIES_MAX,
};
pub use types::*;
