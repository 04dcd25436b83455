//! The ledger through the real sequencer: what a payment service sees.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ledger::{AccountFlags, Event, EventResult, PendingStatus, TransferFlags};
use sequencer::{CommitError, Sequencer, SequencerConfig};
use store::{
    CommitBatch, HistoryQuery, InvariantReport, Store, StoreError, StoreErrorKind, StoreReader,
    StoreResult, StoreWriter,
};

use crate::common::{config, new_account, new_transfer, ManualClock};

/// Polls for something the sequencer does on its own (expiries), this often and this long.
const POLL_INTERVAL_MS: u64 = 10;
const POLL_ATTEMPTS_MAX: u32 = 500;

/// Funding account 1 (may go negative), wallets 2..=n+1 (may not).
fn open_world(store: &dyn Store, sequencer: &Sequencer, wallets: u128) {
    let mut events = vec![new_account(1, AccountFlags::empty())];
    events.extend(
        (2..=wallets + 1).map(|id| new_account(id, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)),
    );
    let results = sequencer.handle().execute(events).expect("the accounts");
    assert!(results.iter().all(|result| *result == EventResult::Ok));
    assert_eq!(
        store
            .reader()
            .expect("a reader")
            .head()
            .expect("head")
            .batches,
        1
    );
}

pub fn concurrent_submitters_are_answered_after_commit_and_retries_are_idempotent(
    store: &dyn Store,
) {
    let clock = ManualClock::at(1_000_000_000);
    let sequencer = Sequencer::start(store, config(clock)).expect("the sequencer");
    open_world(store, &sequencer, 10);
    let submitters = 8u128;
    let requests = 40u128;
    // Each request funds a wallet then moves part of it on, linked.
    let threads: Vec<_> = (0..submitters)
        .map(|submitter| {
            let handle = sequencer.handle();
            std::thread::spawn(move || {
                for request in 0..requests {
                    let base = 10_000 + (submitter * 1000 + request) * 2;
                    let wallet = 2 + (submitter + request) % 10;
                    let next = 2 + (wallet - 1) % 10;
                    let mut fund = new_transfer(base, 1, wallet, 100);
                    fund.flags = TransferFlags::LINKED;
                    let pass_on = new_transfer(base + 1, wallet, next, 60);
                    let events = vec![Event::CreateTransfer(fund), Event::CreateTransfer(pass_on)];
                    let results = handle.execute(events.clone()).expect("committed");
                    assert_eq!(results, vec![EventResult::Ok, EventResult::Ok]);
                    // The same request again: recognised, nothing moves twice.
                    let again = handle.execute(events).expect("committed");
                    assert_eq!(again, vec![EventResult::Exists, EventResult::Exists]);
                }
            })
        })
        .collect();
    // Meanwhile, requests of a full batch each: the sequencer applies one while the writer
    // writes another, rather than wait for the writer.
    let full = ledger::BATCH_EVENTS_MAX as u128;
    let full_requests = 3u128;
    let large = {
        let handle = sequencer.handle();
        std::thread::spawn(move || {
            for request in 0..full_requests {
                let events = (0..full)
                    .map(|index| {
                        let id = 1_000_000 + request * full + index;
                        Event::CreateTransfer(new_transfer(id, 1, 2 + index % 10, 1))
                    })
                    .collect::<Vec<_>>();
                let results = handle.execute(events).expect("committed");
                assert!(results.iter().all(|result| *result == EventResult::Ok));
            }
        })
    };
    for thread in threads {
        thread.join().expect("a submitter finished");
    }
    large.join().expect("the full batches were answered");
    let metrics = sequencer.handle();
    let metrics = metrics.metrics();
    let large_total = full * full_requests;
    assert_eq!(
        sequencer::Metrics::read(&metrics.transfers_committed),
        (submitters * requests * 2 + large_total) as u64,
        "retries create nothing"
    );
    assert_eq!(sequencer::Metrics::read(&metrics.commit_failures), 0);
    assert_eq!(
        sequencer::Metrics::read(&metrics.events_queued),
        0,
        "every event submitted was gathered"
    );
    sequencer.shutdown();
    let mut reader = store.reader().expect("a reader");
    let funding = reader.account(1).expect("a read").expect("account 1");
    assert_eq!(
        funding.debits_posted,
        submitters * requests * 100 + large_total
    );
    let mut wallets_total = 0;
    for id in 2..=11 {
        let wallet = reader.account(id).expect("a read").expect("a wallet");
        wallets_total += wallet.credits_posted - wallet.debits_posted;
    }
    assert_eq!(wallets_total, submitters * requests * 100 + large_total);
    let report = InvariantReport::check(reader.as_mut()).expect("the report");
    assert!(report.holds(), "{report:?}");
    let counts = reader.history_counts().expect("counts");
    assert_eq!(
        counts.transfers,
        (submitters * requests * 2 + large_total) as u64
    );
    assert_eq!(counts.postings, counts.transfers * 2);
}

pub fn pending_transfers_expire_once_and_the_timer_survives_a_restart(store: &dyn Store) {
    let clock = ManualClock::at(10_000_000_000);
    {
        let sequencer = Sequencer::start(store, config(clock.clone())).expect("the sequencer");
        open_world(store, &sequencer, 2);
        let handle = sequencer.handle();
        assert_eq!(
            handle
                .execute(vec![Event::CreateTransfer(new_transfer(1, 1, 2, 500))])
                .expect("committed"),
            vec![EventResult::Ok]
        );
        let mut hold = new_transfer(2, 2, 3, 300);
        hold.flags = TransferFlags::PENDING;
        hold.timeout_seconds = 5;
        assert_eq!(
            handle
                .execute(vec![Event::CreateTransfer(hold)])
                .expect("committed"),
            vec![EventResult::Ok]
        );
        let wallet = store
            .reader()
            .expect("a reader")
            .account(2)
            .expect("a read")
            .expect("wallet");
        assert_eq!(wallet.debits_pending, 300);
        sequencer.shutdown();
    }
    // The process stops; time passes beyond the timeout; a new process starts.
    clock.advance(6_000_000_000);
    let sequencer = Sequencer::start(store, config(clock.clone())).expect("the sequencer");
    let mut reader = store.reader().expect("a reader");
    let mut expired = false;
    for _ in 0..POLL_ATTEMPTS_MAX {
        let status = reader
            .transfer(2)
            .expect("a read")
            .expect("the hold")
            .pending_status;
        if status == Some(PendingStatus::Expired) {
            expired = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
    assert!(
        expired,
        "the hold expired after the restart without any request"
    );
    let wallet = reader.account(2).expect("a read").expect("wallet");
    assert_eq!((wallet.debits_pending, wallet.debits_posted), (0, 0));
    // Posting it now is refused, and the hold is not released a second time.
    let mut post = new_transfer(3, 0, 0, 0);
    post.flags = TransferFlags::POST_PENDING;
    post.pending_id = 2;
    let results = sequencer
        .handle()
        .execute(vec![Event::CreateTransfer(post)])
        .expect("committed");
    assert_eq!(results, vec![EventResult::PendingExpired]);
    clock.advance(60_000_000_000);
    std::thread::sleep(Duration::from_millis(100));
    sequencer.shutdown();
    let wallet = reader.account(2).expect("a read").expect("wallet");
    assert_eq!((wallet.debits_pending, wallet.credits_posted), (0, 500));
    let receiver = reader.account(3).expect("a read").expect("receiver");
    assert_eq!((receiver.credits_pending, receiver.credits_posted), (0, 0));
}

pub fn posting_and_voiding_pending_transfers_move_the_right_balances(store: &dyn Store) {
    let clock = ManualClock::at(1_000_000_000);
    let sequencer = Sequencer::start(store, config(clock)).expect("the sequencer");
    open_world(store, &sequencer, 2);
    let handle = sequencer.handle();
    let mut hold = new_transfer(10, 1, 2, 1_000);
    hold.flags = TransferFlags::PENDING;
    let mut other_hold = new_transfer(11, 1, 2, 400);
    other_hold.flags = TransferFlags::PENDING;
    assert_eq!(
        handle
            .execute(vec![
                Event::CreateTransfer(hold),
                Event::CreateTransfer(other_hold)
            ])
            .expect("committed"),
        vec![EventResult::Ok, EventResult::Ok]
    );
    // Post less than held, and void the other: in one request, then a retry of the post.
    let mut post = new_transfer(12, 0, 0, 700);
    post.flags = TransferFlags::POST_PENDING;
    post.pending_id = 10;
    let mut void = new_transfer(13, 0, 0, 0);
    void.flags = TransferFlags::VOID_PENDING;
    void.pending_id = 11;
    assert_eq!(
        handle
            .execute(vec![
                Event::CreateTransfer(post),
                Event::CreateTransfer(void)
            ])
            .expect("committed"),
        vec![EventResult::Ok, EventResult::Ok]
    );
    let mut post_again = new_transfer(14, 0, 0, 100);
    post_again.flags = TransferFlags::POST_PENDING;
    post_again.pending_id = 10;
    assert_eq!(
        handle
            .execute(vec![Event::CreateTransfer(post_again)])
            .expect("committed"),
        vec![EventResult::PendingAlreadyPosted]
    );
    sequencer.shutdown();
    let mut reader = store.reader().expect("a reader");
    let wallet = reader.account(2).expect("a read").expect("wallet");
    assert_eq!((wallet.credits_pending, wallet.credits_posted), (0, 700));
    let funding = reader.account(1).expect("a read").expect("funding");
    assert_eq!((funding.debits_pending, funding.debits_posted), (0, 700));
    let statuses: Vec<Option<PendingStatus>> = [10, 11]
        .iter()
        .map(|id| {
            reader
                .transfer(*id)
                .expect("a read")
                .expect("a hold")
                .pending_status
        })
        .collect();
    assert_eq!(
        statuses,
        vec![Some(PendingStatus::Posted), Some(PendingStatus::Voided)]
    );
    let posted = reader.transfer(12).expect("a read").expect("the post");
    assert_eq!(
        (posted.transfer.amount, posted.transfer.pending_id),
        (700, 10)
    );
    assert!(InvariantReport::check(reader.as_mut())
        .expect("report")
        .holds());
}

pub fn balances_are_kept_after_every_transfer_for_history_accounts(store: &dyn Store) {
    let clock = ManualClock::at(1_000_000_000);
    let sequencer = Sequencer::start(store, config(clock)).expect("the sequencer");
    let handle = sequencer.handle();
    handle
        .execute(vec![
            new_account(1, AccountFlags::empty()),
            new_account(2, AccountFlags::HISTORY),
        ])
        .expect("committed");
    for (id, amount) in [(1u128, 100u128), (2, 250), (3, 50)] {
        handle
            .execute(vec![Event::CreateTransfer(new_transfer(id, 1, 2, amount))])
            .expect("committed");
    }
    // Two in one batch too.
    handle
        .execute(vec![
            Event::CreateTransfer(new_transfer(4, 2, 1, 30)),
            Event::CreateTransfer(new_transfer(5, 1, 2, 5)),
        ])
        .expect("committed");
    sequencer.shutdown();
    let mut reader = store.reader().expect("a reader");
    let balances = reader
        .account_balances(HistoryQuery {
            account_id: 2,
            after_timestamp: 0,
            limit: 100,
        })
        .expect("balances");
    let credits: Vec<(u128, u128)> = balances
        .iter()
        .map(|balance| (balance.debits_posted, balance.credits_posted))
        .collect();
    assert_eq!(
        credits,
        vec![(0, 100), (0, 350), (0, 400), (30, 400), (30, 405)]
    );
    assert!(balances
        .windows(2)
        .all(|pair| pair[0].timestamp < pair[1].timestamp));
    let page = reader
        .account_balances(HistoryQuery {
            account_id: 2,
            after_timestamp: balances[1].timestamp,
            limit: 2,
        })
        .expect("a page");
    assert_eq!(page, balances[2..4].to_vec());
    // Account 1 has no history flag: no balances kept, but its transfers are in its history.
    assert!(reader
        .account_balances(HistoryQuery {
            account_id: 1,
            after_timestamp: 0,
            limit: 100,
        })
        .expect("balances")
        .is_empty());
    let transfers = reader
        .account_transfers(HistoryQuery {
            account_id: 1,
            after_timestamp: 0,
            limit: 100,
        })
        .expect("history");
    let ids: Vec<u128> = transfers.iter().map(|transfer| transfer.id).collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5]);
}

/// A store whose writer fails the commits the test chooses.
#[derive(Debug)]
struct FlakyStore<'a> {
    inner: &'a dyn Store,
    fail_sequences: Arc<Mutex<Vec<u64>>>,
}

struct FlakyWriter {
    inner: Box<dyn StoreWriter>,
    fail_sequences: Arc<Mutex<Vec<u64>>>,
}

impl StoreWriter for FlakyWriter {
    fn commit(&mut self, batch: &CommitBatch<'_>) -> StoreResult<Vec<usize>> {
        let mut failures = self.fail_sequences.lock().expect("not poisoned");
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

impl Store for FlakyStore<'_> {
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
        "flaky"
    }
}

pub fn a_failed_write_answers_with_an_error_and_memory_follows_the_disk(store: &dyn Store) {
    let store = FlakyStore {
        inner: store,
        fail_sequences: Arc::new(Mutex::new(vec![3])),
    };
    let clock = ManualClock::at(1_000_000_000);
    let sequencer = Sequencer::start(&store, config(clock)).expect("the sequencer");
    open_world(&store, &sequencer, 2);
    let handle = sequencer.handle();
    assert_eq!(
        handle
            .execute(vec![Event::CreateTransfer(new_transfer(1, 1, 2, 100))])
            .expect("batch 2"),
        vec![EventResult::Ok]
    );
    // Batch 3 fails to write: the submitter hears so, and nothing of it is kept.
    match handle.execute(vec![Event::CreateTransfer(new_transfer(2, 2, 3, 70))]) {
        Err(CommitError::Store(error)) => assert!(error.message.contains("disk full")),
        other => panic!("expected a store error, got {other:?}"),
    }
    // The same transfer again is new (it never committed), and the wallet still has 100, so
    // a transfer of 100 (which would fail had the lost 70 stayed in memory) succeeds.
    let mut results = None;
    for _ in 0..POLL_ATTEMPTS_MAX {
        match handle.execute(vec![Event::CreateTransfer(new_transfer(2, 2, 3, 100))]) {
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
    let mut reader = store.reader().expect("a reader");
    assert_eq!(
        reader
            .account(2)
            .expect("a read")
            .expect("wallet")
            .debits_posted,
        100
    );
    assert_eq!(
        reader
            .account(3)
            .expect("a read")
            .expect("wallet")
            .credits_posted,
        100
    );
    assert_eq!(
        reader
            .transfer(2)
            .expect("a read")
            .expect("transfer")
            .transfer
            .amount,
        100
    );
    assert!(InvariantReport::check(reader.as_mut())
        .expect("report")
        .holds());
}

pub fn requests_that_are_empty_or_too_large_are_refused(store: &dyn Store) {
    let sequencer = Sequencer::start(store, SequencerConfig::default()).expect("the sequencer");
    let handle = sequencer.handle();
    assert!(matches!(
        handle.execute(Vec::new()),
        Err(CommitError::RequestSize(0))
    ));
    let too_many = vec![new_account(1, AccountFlags::empty()); ledger::BATCH_EVENTS_MAX + 1];
    assert!(matches!(
        handle.execute(too_many),
        Err(CommitError::RequestSize(size)) if size == ledger::BATCH_EVENTS_MAX + 1
    ));
    sequencer.shutdown();
    assert_eq!(
        store
            .reader()
            .expect("a reader")
            .head()
            .expect("head")
            .batches,
        0,
        "nothing was written"
    );
}
