//! One behaviour suite for every store backend.
//!
//! Each public function takes a fresh, empty store (or a [`Fixture`] that can open a second
//! handle on the same database) and asserts what a user of the ledger would notice: balances,
//! refusals, pages of history, receipts that verify, rows an auditor sees. A backend wires the
//! whole suite with [`conformance_tests!`], one `#[test]` per function, so the suite runs
//! unchanged against SQLite and PostgreSQL.

// Tests drive real time and threads.
#![allow(clippy::disallowed_methods)]

mod batches;
mod business;
mod ledger_flow;
mod log;
mod people;
mod sql;

pub use batches::{
    a_failed_commit_keeps_nothing_of_its_batch, a_hot_account_history_stays_complete,
    a_stale_writer_on_a_second_handle_is_refused, history_pages_in_time_order,
    loading_transfers_finds_exactly_those_that_exist, one_writer_and_batches_in_sequence,
    pending_status_and_due_list,
};
pub use business::{
    bill_records_read_back_as_written, business_records_read_back_as_written,
    claimed_orders_land_only_with_free_keys, envelope_records_read_back_as_written,
    invoice_records_read_back_as_written, qr_records_read_back_as_written,
    records_ride_with_their_events,
};
pub use ledger_flow::{
    a_failed_write_answers_with_an_error_and_memory_follows_the_disk,
    balances_are_kept_after_every_transfer_for_history_accounts,
    concurrent_submitters_are_answered_after_commit_and_retries_are_idempotent,
    pending_transfers_expire_once_and_the_timer_survives_a_restart,
    posting_and_voiding_pending_transfers_move_the_right_balances,
    requests_that_are_empty_or_too_large_are_refused,
};
pub use log::{
    checkpoints_cosignatures_and_audits_are_kept, receipts_of_transfers_and_registrations_verify,
    registrations_are_idempotent_per_registrant_and_key,
};
pub use people::{
    credentials_are_created_listed_and_revoked, nonces_are_claimed_once_until_forgotten,
    users_codes_sessions_and_payment_attempts,
};
pub use sql::{read_only_sql_refuses_every_write, sql_rows_are_limited_and_slow_queries_stopped};

use store::Store;

/// Building blocks for a backend's own tests: accounts and transfers as batches write them, and
/// a store filled with transfers.
pub mod support {
    pub use crate::batches::write_transfers;
    pub use crate::common::{account, cny, transfer};
}

/// A backend under test: a fresh store, and a second handle on the same database (as a second
/// process would open it).
pub trait Fixture {
    fn store(&self) -> &dyn Store;
    fn open_again(&self) -> Box<dyn Store>;
}

/// One `#[test]` per conformance function of the business records (orders, merchants,
/// cards, the outbox, QR codes, e-invoices …), for a backend that holds them.
#[macro_export]
macro_rules! business_conformance_tests {
    ($fixture:path) => {
        $crate::conformance_tests!(@store $fixture;
            records_ride_with_their_events,
            claimed_orders_land_only_with_free_keys,
            business_records_read_back_as_written,
            qr_records_read_back_as_written,
            envelope_records_read_back_as_written,
            bill_records_read_back_as_written,
            invoice_records_read_back_as_written
        );
    };
}

/// One `#[test]` per conformance function. `$fixture` is a function that returns a fresh
/// [`Fixture`] for each test.
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:path) => {
        $crate::conformance_tests!(@store $fixture;
            history_pages_in_time_order,
            loading_transfers_finds_exactly_those_that_exist,
            one_writer_and_batches_in_sequence,
            pending_status_and_due_list,
            a_hot_account_history_stays_complete,
            a_failed_commit_keeps_nothing_of_its_batch,
            a_failed_write_answers_with_an_error_and_memory_follows_the_disk,
            balances_are_kept_after_every_transfer_for_history_accounts,
            concurrent_submitters_are_answered_after_commit_and_retries_are_idempotent,
            pending_transfers_expire_once_and_the_timer_survives_a_restart,
            posting_and_voiding_pending_transfers_move_the_right_balances,
            requests_that_are_empty_or_too_large_are_refused,
            checkpoints_cosignatures_and_audits_are_kept,
            receipts_of_transfers_and_registrations_verify,
            registrations_are_idempotent_per_registrant_and_key,
            credentials_are_created_listed_and_revoked,
            users_codes_sessions_and_payment_attempts,
            nonces_are_claimed_once_until_forgotten,
            read_only_sql_refuses_every_write,
            sql_rows_are_limited_and_slow_queries_stopped
        );
        $crate::conformance_tests!(@fixture $fixture;
            a_stale_writer_on_a_second_handle_is_refused
        );
    };
    (@store $fixture:path; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let fixture = $fixture();
                $crate::$name($crate::Fixture::store(&fixture));
            }
        )*
    };
    (@fixture $fixture:path; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let fixture = $fixture();
                $crate::$name(&fixture);
            }
        )*
    };
}

pub(crate) mod common {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use ledger::{
        Account, AccountFlags, Currency, Event, NewAccount, NewTransfer, Transfer, TransferFlags,
    };
    use sequencer::{Clock, SequencerConfig};

    pub fn cny() -> Currency {
        Currency::parse("CNY").expect("a valid currency")
    }

    /// A clock the test moves by hand.
    #[derive(Debug, Default)]
    pub struct ManualClock(pub AtomicU64);

    impl ManualClock {
        pub fn at(nanos: u64) -> Arc<ManualClock> {
            Arc::new(ManualClock(AtomicU64::new(nanos)))
        }

        pub fn advance(&self, nanos: u64) {
            self.0.fetch_add(nanos, Ordering::SeqCst);
        }
    }

    impl Clock for ManualClock {
        fn now_nanos(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    pub fn config(clock: Arc<ManualClock>) -> SequencerConfig {
        SequencerConfig {
            clock,
            expiry_interval: Duration::from_millis(20),
            ..SequencerConfig::default()
        }
    }

    pub fn new_account(id: u128, flags: AccountFlags) -> Event {
        Event::CreateAccount(NewAccount {
            id,
            currency: cny(),
            kind: 1,
            flags,
            user_data: 0,
        })
    }

    pub fn new_transfer(id: u128, debit: u128, credit: u128, amount: u128) -> NewTransfer {
        NewTransfer::new(id, debit, credit, amount, cny())
    }

    /// A stored account as a batch writes it.
    pub fn account(id: u128) -> Account {
        Account {
            id,
            currency: cny(),
            kind: 1,
            flags: AccountFlags::empty(),
            user_data: 0,
            debits_pending: 0,
            debits_posted: 0,
            credits_pending: 0,
            credits_posted: 0,
            timestamp: 1,
        }
    }

    /// A committed transfer as a batch writes it.
    pub fn transfer(id: u128, debit: u128, credit: u128, timestamp: u64) -> Transfer {
        Transfer {
            id,
            debit_account_id: debit,
            credit_account_id: credit,
            amount: 10,
            pending_id: 0,
            user_data: 7,
            timeout_seconds: 0,
            kind: 2,
            flags: TransferFlags::empty(),
            currency: cny(),
            timestamp,
        }
    }
}
