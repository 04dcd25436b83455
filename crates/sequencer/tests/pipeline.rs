//! The commit pipeline against the real SQLite store.

// Tests drive real time and processes.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ledger::{
    AccountFlags, Currency, Event, EventResult, NewAccount, NewTransfer, PendingStatus,
    TransferFlags,
};
use sequencer::{Clock, CommitError, RegistrationOutcome, Sequencer, SequencerConfig};
use store::{
    CommitBatch, InvariantReport, Store, StoreError, StoreErrorKind, StoreReader, StoreResult,
    StoreWriter,
};
use store_sqlite::SqliteStore;

fn cny() -> Currency {
    Currency::parse("CNY").unwrap()
}

fn account(id: u128, flags: AccountFlags) -> Event {
    Event::CreateAccount(NewAccount {
        id,
        currency: cny(),
        kind: 1,
        flags,
        user_data: 0,
    })
}

fn transfer(id: u128, debit: u128, credit: u128, amount: u128) -> NewTransfer {
    NewTransfer::new(id, debit, credit, amount, cny())
}

/// A clock the test moves by hand.
#[derive(Debug, Default)]
struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now_nanos(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn config(clock: Arc<ManualClock>) -> SequencerConfig {
    SequencerConfig {
        clock,
        expiry_interval: Duration::from_millis(20),
        ..SequencerConfig::default()
    }
}

/// Funding account 1 (may go negative), wallets 2..=n (may not).
fn open_world(store: &dyn Store, sequencer: &Sequencer, wallets: u128) {
    let mut events = vec![account(1, AccountFlags::empty())];
    events.extend(
        (2..=wallets + 1).map(|id| account(id, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)),
    );
    let results = sequencer.handle().execute(events).unwrap();
    assert!(results.iter().all(|result| *result == EventResult::Ok));
    assert_eq!(store.reader().unwrap().head().unwrap().batches, 1);
}

#[test]
fn concurrent_submitters_are_answered_after_commit_and_retries_are_idempotent() {
    let directory = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(directory.path()).unwrap();
    let clock = Arc::new(ManualClock(AtomicU64::new(1_000_000_000)));
    let sequencer = Sequencer::start(&store, config(clock)).unwrap();
    open_world(&store, &sequencer, 10);
    // 8 submitters, 50 requests each, each request funds a wallet then moves part of it on.
    let threads: Vec<_> = (0..8u128)
        .map(|submitter| {
            let handle = sequencer.handle();
            std::thread::spawn(move || {
                for request in 0..50u128 {
                    let base = 10_000 + (submitter * 1000 + request) * 2;
                    let wallet = 2 + (submitter + request) % 10;
                    let next = 2 + (wallet - 1) % 10;
                    let mut fund = transfer(base, 1, wallet, 100);
                    fund.flags = TransferFlags::LINKED;
                    let pass_on = transfer(base + 1, wallet, next, 60);
                    let results = handle
                        .execute(vec![
                            Event::CreateTransfer(fund),
                            Event::CreateTransfer(pass_on),
                        ])
                        .unwrap();
                    assert_eq!(results, vec![EventResult::Ok, EventResult::Ok]);
                    // The same request again: recognised, nothing moves twice.
                    let again = handle
                        .execute(vec![
                            Event::CreateTransfer(fund),
                            Event::CreateTransfer(pass_on),
                        ])
                        .unwrap();
                    assert_eq!(again, vec![EventResult::Exists, EventResult::Exists]);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let metrics = sequencer.handle();
    let metrics = metrics.metrics();
    assert_eq!(
        sequencer::Metrics::read(&metrics.transfers_committed),
        8 * 50 * 2,
        "retries create nothing"
    );
    assert_eq!(
        sequencer::Metrics::read(&metrics.events_committed),
        11 + 8 * 50 * 4
    );
    assert_eq!(sequencer::Metrics::read(&metrics.commit_failures), 0);
    let commits: u64 = metrics
        .commit_duration_buckets
        .iter()
        .map(sequencer::Metrics::read)
        .sum();
    assert_eq!(
        commits,
        sequencer::Metrics::read(&metrics.batches_committed)
    );
    sequencer.shutdown();
    let mut reader = store.reader().unwrap();
    let funding = reader.account(1).unwrap().unwrap();
    assert_eq!(
        funding.debits_posted,
        8 * 50 * 100,
        "each funding transfer counted exactly once"
    );
    let mut wallets_total = 0;
    for id in 2..=11 {
        let wallet = reader.account(id).unwrap().unwrap();
        wallets_total += wallet.credits_posted - wallet.debits_posted;
    }
    assert_eq!(wallets_total, 8 * 50 * 100);
    let report = InvariantReport::check(reader.as_mut()).unwrap();
    assert!(report.holds(), "{report:?}");
}

#[test]
fn pending_transfers_expire_once_and_the_timer_survives_a_restart() {
    let directory = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicU64::new(10_000_000_000)));
    {
        let store = SqliteStore::open(directory.path()).unwrap();
        let sequencer = Sequencer::start(&store, config(clock.clone())).unwrap();
        open_world(&store, &sequencer, 2);
        let handle = sequencer.handle();
        assert_eq!(
            handle
                .execute(vec![Event::CreateTransfer(transfer(1, 1, 2, 500))])
                .unwrap(),
            vec![EventResult::Ok]
        );
        let mut hold = transfer(2, 2, 3, 300);
        hold.flags = TransferFlags::PENDING;
        hold.timeout_seconds = 5;
        assert_eq!(
            handle.execute(vec![Event::CreateTransfer(hold)]).unwrap(),
            vec![EventResult::Ok]
        );
        let wallet = store.reader().unwrap().account(2).unwrap().unwrap();
        assert_eq!(wallet.debits_pending, 300);
        sequencer.shutdown();
    }
    // The process stops; time passes beyond the timeout; a new process starts.
    clock.0.fetch_add(6_000_000_000, Ordering::SeqCst);
    let store = SqliteStore::open(directory.path()).unwrap();
    let sequencer = Sequencer::start(&store, config(clock.clone())).unwrap();
    let mut reader = store.reader().unwrap();
    let mut expired = false;
    for _ in 0..200 {
        if reader.transfer(2).unwrap().unwrap().pending_status == Some(PendingStatus::Expired) {
            expired = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        expired,
        "the hold expired after the restart without any request"
    );
    let wallet = reader.account(2).unwrap().unwrap();
    assert_eq!(wallet.debits_pending, 0);
    assert_eq!(wallet.debits_posted, 0);
    // Posting it now is refused, and the hold is not released a second time.
    let mut post = transfer(3, 0, 0, 0);
    post.flags = TransferFlags::POST_PENDING;
    post.pending_id = 2;
    let results = sequencer
        .handle()
        .execute(vec![Event::CreateTransfer(post)])
        .unwrap();
    assert_eq!(results, vec![EventResult::PendingExpired]);
    clock.0.fetch_add(60_000_000_000, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(100));
    sequencer.shutdown();
    let wallet = reader.account(2).unwrap().unwrap();
    assert_eq!((wallet.debits_pending, wallet.credits_posted), (0, 500));
    let receiver = reader.account(3).unwrap().unwrap();
    assert_eq!((receiver.credits_pending, receiver.credits_posted), (0, 0));
}

/// A store whose writer fails the commits the test chooses.
#[derive(Debug)]
struct FlakyStore {
    inner: SqliteStore,
    fail_sequences: Arc<Mutex<Vec<u64>>>,
}

struct FlakyWriter {
    inner: Box<dyn StoreWriter>,
    fail_sequences: Arc<Mutex<Vec<u64>>>,
}

impl StoreWriter for FlakyWriter {
    fn commit(&mut self, batch: &CommitBatch<'_>) -> StoreResult<()> {
        let mut failures = self.fail_sequences.lock().unwrap();
        if let Some(position) = failures
            .iter()
            .position(|sequence| *sequence == batch.sequence)
        {
            failures.remove(position);
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "disk full (simulated)",
            ));
        }
        drop(failures);
        self.inner.commit(batch)
    }
}

impl Store for FlakyStore {
    fn writer(&self) -> StoreResult<Box<dyn StoreWriter>> {
        Ok(Box::new(FlakyWriter {
            inner: self.inner.writer()?,
            fail_sequences: self.fail_sequences.clone(),
        }))
    }
    fn reader(&self) -> StoreResult<Box<dyn StoreReader>> {
        self.inner.reader()
    }
    fn admin(&self) -> StoreResult<Box<dyn store::AdminWriter>> {
        self.inner.admin()
    }
    fn users(&self) -> StoreResult<Box<dyn store::UserStore>> {
        self.inner.users()
    }
    fn records(&self) -> StoreResult<Box<dyn store::RecordReader>> {
        self.inner.records()
    }
    fn outbox(&self) -> StoreResult<Box<dyn store::OutboxWriter>> {
        self.inner.outbox()
    }
    fn query(&self, sql: &str, limits: store::QueryLimits) -> StoreResult<store::QueryOutput> {
        self.inner.query(sql, limits)
    }
    fn backend(&self) -> &'static str {
        "flaky-sqlite"
    }
}

#[test]
fn a_failed_write_answers_with_an_error_and_memory_follows_the_disk() {
    let directory = tempfile::tempdir().unwrap();
    let store = FlakyStore {
        inner: SqliteStore::open(directory.path()).unwrap(),
        fail_sequences: Arc::new(Mutex::new(vec![3])),
    };
    let clock = Arc::new(ManualClock(AtomicU64::new(1_000_000_000)));
    let sequencer = Sequencer::start(&store, config(clock)).unwrap();
    open_world(&store, &sequencer, 2);
    let handle = sequencer.handle();
    // Batch 2 commits.
    assert_eq!(
        handle
            .execute(vec![Event::CreateTransfer(transfer(1, 1, 2, 100))])
            .unwrap(),
        vec![EventResult::Ok]
    );
    // Batch 3 fails to write: the submitter hears so, and nothing of it is kept.
    match handle.execute(vec![Event::CreateTransfer(transfer(2, 2, 3, 70))]) {
        Err(CommitError::Store(error)) => assert!(error.message.contains("disk full")),
        other => panic!("expected a store error, got {other:?}"),
    }
    // The same transfer again is new (it never committed), and the wallet still has 100, so a
    // transfer of 100 (which would fail had the lost 70 stayed in memory) succeeds.
    let mut results = None;
    for _ in 0..100 {
        match handle.execute(vec![Event::CreateTransfer(transfer(2, 2, 3, 100))]) {
            Ok(answer) => {
                results = Some(answer);
                break;
            }
            Err(CommitError::Aborted) => std::thread::sleep(Duration::from_millis(5)),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(results, Some(vec![EventResult::Ok]));
    sequencer.shutdown();
    let mut reader = store.reader().unwrap();
    assert_eq!(reader.account(2).unwrap().unwrap().debits_posted, 100);
    assert_eq!(reader.account(3).unwrap().unwrap().credits_posted, 100);
    assert_eq!(reader.transfer(2).unwrap().unwrap().transfer.amount, 100);
    assert!(InvariantReport::check(reader.as_mut()).unwrap().holds());
}

#[test]
fn requests_that_are_empty_or_too_large_are_refused() {
    let directory = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(directory.path()).unwrap();
    let sequencer = Sequencer::start(&store, SequencerConfig::default()).unwrap();
    let handle = sequencer.handle();
    assert!(matches!(
        handle.execute(Vec::new()),
        Err(CommitError::RequestSize(0))
    ));
    let too_many = vec![account(1, AccountFlags::empty()); ledger::BATCH_EVENTS_MAX + 1];
    assert!(matches!(
        handle.execute(too_many),
        Err(CommitError::RequestSize(8191))
    ));
    sequencer.shutdown();
    assert_eq!(
        store.reader().unwrap().head().unwrap().batches,
        0,
        "nothing was written"
    );
}

fn deposit(registrant: u128, key: &str, digest_byte: u8) -> store::NewRegistration {
    store::NewRegistration::new(
        store::RegistrationKind::Document,
        [digest_byte; 32],
        registrant,
        "contract 7",
        key,
    )
    .unwrap()
}

fn signed_config(clock: Arc<ManualClock>) -> SequencerConfig {
    SequencerConfig {
        log_signer: Some(Arc::new(
            trustlog::NoteSigner::from_seed("test-log", &[9; 32]).unwrap(),
        )),
        // Only registrations sign checkpoints here (they ask for one each batch).
        checkpoint_interval: Duration::from_secs(3600),
        ..config(clock)
    }
}

#[test]
fn registrations_become_leaves_after_the_transfers_and_are_idempotent_per_registrant_and_key() {
    let directory = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(directory.path()).unwrap();
    let clock = Arc::new(ManualClock(AtomicU64::new(1_000_000_000)));
    let sequencer = Sequencer::start(&store, signed_config(clock.clone())).unwrap();
    open_world(&store, &sequencer, 2);
    let handle = sequencer.handle();
    handle
        .execute(vec![Event::CreateTransfer(transfer(1, 1, 2, 100))])
        .unwrap();
    // Two registrations in one request, and the same key asked twice in it.
    let outcomes = handle
        .register(vec![
            deposit(5, "a", 1),
            deposit(5, "b", 2),
            deposit(5, "a", 1),
        ])
        .unwrap()
        .wait()
        .unwrap();
    let RegistrationOutcome::Created(first) = &outcomes[0] else {
        panic!("expected a new registration, got {outcomes:?}");
    };
    let RegistrationOutcome::Created(second) = &outcomes[1] else {
        panic!("expected a new registration, got {outcomes:?}");
    };
    assert_eq!(outcomes[2], RegistrationOutcome::Exists(first.clone()));
    assert_eq!((first.registration.id, first.leaf_index), (1, 1));
    assert_eq!((second.registration.id, second.leaf_index), (2, 2));
    assert!(second.registration.timestamp > first.registration.timestamp);

    // The answer comes once the registration is durable and a checkpoint covers it.
    let mut reader = store.reader().unwrap();
    assert_eq!(reader.head().unwrap().log_size, 3);
    assert_eq!(reader.latest_checkpoint().unwrap().unwrap().size, 3);
    assert_eq!(reader.registration(2).unwrap().unwrap(), second.clone());
    let mut leaves = Vec::new();
    reader.leaves(0, 10, &mut leaves).unwrap();
    assert_eq!(leaves.len(), 3);
    assert!(matches!(leaves[0], (0, store::LogLeaf::Transfer(_))));
    assert_eq!(
        leaves[2],
        (2, store::LogLeaf::Registration(second.registration.clone()))
    );

    // A retry with the same key: the first registration, nothing appended. Another
    // registrant may use the same key. The same key for other content is refused.
    let outcomes = handle
        .register(vec![
            deposit(5, "b", 2),
            deposit(6, "b", 2),
            deposit(5, "a", 9),
        ])
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(outcomes[0], RegistrationOutcome::Exists(second.clone()));
    assert!(
        matches!(&outcomes[1], RegistrationOutcome::Created(stored) if stored.registration.id == 3)
    );
    assert_eq!(
        outcomes[2],
        RegistrationOutcome::ExistsWithDifferentFields(first.clone())
    );
    assert_eq!(reader.head().unwrap().log_size, 4);

    // After a restart the sequencer numbers on and still knows the keys.
    sequencer.shutdown();
    let sequencer = Sequencer::start(&store, signed_config(clock)).unwrap();
    let outcomes = sequencer
        .handle()
        .register(vec![deposit(5, "a", 1), deposit(5, "c", 3)])
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(outcomes[0], RegistrationOutcome::Exists(first.clone()));
    assert!(matches!(&outcomes[1], RegistrationOutcome::Created(stored)
        if stored.registration.id == 4 && stored.leaf_index == 4));
    assert!(matches!(
        sequencer.handle().register(Vec::new()),
        Err(CommitError::RequestSize(0))
    ));
}

fn order(id: u64, state: store::OrderState) -> store::Record {
    store::Record::Order(store::Order {
        id,
        merchant_id: 7,
        outlet_id: None,
        out_trade_no: format!("T{id}"),
        amount: 100,
        currency: "CNY".into(),
        description: "tea".into(),
        notify_url: None,
        state,
        payer_user_id: None,
        fee: 0,
        refunded: 0,
        created_at: 1,
        expires_at: 100,
        paid_at: None,
        closed_at: None,
        version: 1,
        payment_transfer_id: u128::from(id) + 1_000,
    })
}

#[test]
fn records_are_written_with_their_events_only_when_every_event_commits() {
    let directory = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(directory.path()).unwrap();
    let clock = Arc::new(ManualClock(AtomicU64::new(1_000_000_000)));
    let sequencer = Sequencer::start(&store, config(clock)).unwrap();
    open_world(&store, &sequencer, 2);
    let merchant = store::Record::Merchant(store::Merchant {
        id: 7,
        name: "Tea House".into(),
        mcc: "5814".into(),
        country: "CN".into(),
        city: "Hangzhou".into(),
        settlement_account: "6222 0000 1111".into(),
        fee_rate_bps: 60,
        account_id: 3,
        notify_key: [7; 32],
        created_at: 1,
    });
    let handle = sequencer.handle();
    // Records alone ride with the next batch.
    let results = handle
        .submit_with_records(
            Vec::new(),
            vec![merchant, order(1, store::OrderState::NotPay)],
        )
        .unwrap()
        .wait()
        .unwrap();
    assert!(results.is_empty());
    // Funded: the order's record commits with its transfer.
    let funded = handle
        .submit_with_records(
            vec![Event::CreateTransfer(transfer(50, 1, 2, 100))],
            vec![order(1, store::OrderState::Success)],
        )
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(funded, vec![EventResult::Ok]);
    // Wallet 3 is empty: its transfer fails, and the record it carried is not written.
    let refused = handle
        .submit_with_records(
            vec![Event::CreateTransfer(transfer(51, 3, 2, 100))],
            vec![order(2, store::OrderState::Success)],
        )
        .unwrap()
        .wait()
        .unwrap();
    assert_ne!(refused, vec![EventResult::Ok]);
    // A retry of the first (the transfer exists) does not write its records again.
    let retried = handle
        .submit_with_records(
            vec![Event::CreateTransfer(transfer(50, 1, 2, 100))],
            vec![order(1, store::OrderState::Closed)],
        )
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(retried, vec![EventResult::Exists]);
    let mut records = store.records().unwrap();
    let first = records.order(1).unwrap().unwrap();
    assert_eq!(first.state, store::OrderState::Success);
    assert_eq!(records.order(2).unwrap(), None);
    assert_eq!(records.merchant(7).unwrap().unwrap().fee_rate_bps, 60);
    assert_eq!(
        records.order_by_out_trade_no(7, "T1").unwrap().unwrap().id,
        1
    );
}
