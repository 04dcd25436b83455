//! Batches written straight through the writer, as the sequencer hands them over.

use ledger::{PendingStatus, Transfer, TransferFlags};
use store::{CommitBatch, HistoryQuery, LogAppend, PendingRecord, Store, StoreErrorKind};

use crate::common::{account, transfer};
use crate::Fixture;

/// Writes a first batch creating accounts 1 to 4, then `count` batches each with one transfer
/// from account 1 to 2 and one from 3 to 4, keeping the balances right.
pub fn write_transfers(store: &dyn Store, count: u64) {
    let mut writer = store.writer().expect("the writer");
    let accounts = [account(1), account(2), account(3), account(4)];
    writer
        .commit(&CommitBatch {
            sequence: 1,
            timestamp_last: 1,
            accounts_created: &accounts,
            ..CommitBatch::default()
        })
        .expect("the accounts are committed");
    let (mut one, mut two, mut three, mut four) = (account(1), account(2), account(3), account(4));
    for index in 0..count {
        let timestamp = 100 + index * 10;
        let transfers = [
            transfer(u128::from(index) * 2 + 1, 1, 2, timestamp),
            transfer(u128::from(index) * 2 + 2, 3, 4, timestamp + 1),
        ];
        one.debits_posted += 10;
        two.credits_posted += 10;
        three.debits_posted += 10;
        four.credits_posted += 10;
        let updated = [one, two, three, four];
        writer
            .commit(&CommitBatch {
                sequence: index + 2,
                timestamp_last: timestamp + 1,
                accounts_updated: &updated,
                transfers: &transfers,
                log: LogAppend {
                    size_before: index * 2,
                    size_after: index * 2 + 2,
                    ..Default::default()
                },
                ..CommitBatch::default()
            })
            .expect("the batch is committed");
    }
}

/// Pages through an account's history with `page` transfers at a time.
fn whole_history(store: &dyn Store, account_id: u128, page: usize) -> Vec<Transfer> {
    let mut reader = store.reader().expect("a reader");
    let mut seen: Vec<Transfer> = Vec::new();
    let mut cursor = 0;
    loop {
        let found = reader
            .account_transfers(HistoryQuery {
                account_id,
                after_timestamp: cursor,
                limit: page,
            })
            .expect("a page of history");
        assert!(found.len() <= page, "a page holds at most its limit");
        let Some(last) = found.last() else { break };
        assert!(last.timestamp > cursor, "the cursor moves forward");
        cursor = last.timestamp;
        seen.extend(found);
    }
    seen
}

pub fn history_pages_in_time_order(store: &dyn Store) {
    write_transfers(store, 150);
    let seen = whole_history(store, 2, 7);
    assert_eq!(seen.len(), 150);
    assert!(seen
        .windows(2)
        .all(|pair| pair[0].timestamp < pair[1].timestamp));
    assert!(seen
        .iter()
        .all(|transfer| transfer.credit_account_id == 2 && transfer.user_data == 7));
    assert_eq!(seen[0].timestamp, 100);
    // Account 3 sees only its own transfers, as the debit side.
    let other = whole_history(store, 3, 1000);
    assert_eq!(other.len(), 150);
    assert!(other.iter().all(|transfer| transfer.debit_account_id == 3));
    // A cursor in the middle, and an account with no transfers.
    let mut reader = store.reader().expect("a reader");
    let after = reader
        .account_transfers(HistoryQuery {
            account_id: 2,
            after_timestamp: 100 + 139 * 10,
            limit: 1000,
        })
        .expect("a page");
    assert_eq!(after.len(), 10);
    assert!(reader
        .account_transfers(HistoryQuery {
            account_id: 99,
            after_timestamp: 0,
            limit: 10,
        })
        .expect("a page")
        .is_empty());
    let head = reader.head().expect("the head");
    assert_eq!(
        (head.batches, head.transfer_id_max, head.log_size),
        (151, 300, 300)
    );
    let counts = reader.history_counts().expect("counts");
    assert_eq!((counts.transfers, counts.postings), (300, 600));
    let account = reader.account(1).expect("a read").expect("account 1");
    assert_eq!(account.debits_posted, 1500);
    assert_eq!(reader.transfer_id_min().expect("the smallest id"), 1);
}

pub fn a_hot_account_history_stays_complete(store: &dyn Store) {
    let mut writer = store.writer().expect("the writer");
    writer
        .commit(&CommitBatch {
            sequence: 1,
            timestamp_last: 1,
            accounts_created: &[account(1), account(2)],
            ..CommitBatch::default()
        })
        .expect("the accounts");
    let (mut hot, mut other) = (account(1), account(2));
    let per_batch = 2_000u64;
    let batches = 12u64;
    for index in 0..batches {
        let transfers: Vec<Transfer> = (0..per_batch)
            .map(|offset| {
                let number = index * per_batch + offset;
                transfer(u128::from(number) + 1, 1, 2, 1_000 + number)
            })
            .collect();
        hot.debits_posted += 10 * u128::from(per_batch);
        other.credits_posted += 10 * u128::from(per_batch);
        writer
            .commit(&CommitBatch {
                sequence: index + 2,
                timestamp_last: 1_000 + (index + 1) * per_batch,
                accounts_updated: &[hot, other],
                transfers: &transfers,
                log: LogAppend {
                    size_before: index * per_batch,
                    size_after: (index + 1) * per_batch,
                    ..Default::default()
                },
                ..CommitBatch::default()
            })
            .expect("the batch");
    }
    let seen = whole_history(store, 1, 1000);
    assert_eq!(seen.len() as u64, per_batch * batches);
    assert!(seen
        .windows(2)
        .all(|pair| pair[0].timestamp < pair[1].timestamp));
    assert_eq!(
        whole_history(store, 2, 333).len() as u64,
        per_batch * batches
    );
}

pub fn pending_status_and_due_list(store: &dyn Store) {
    let mut writer = store.writer().expect("the writer");
    let mut debit = account(1);
    let mut credit = account(2);
    writer
        .commit(&CommitBatch {
            sequence: 1,
            timestamp_last: 1,
            accounts_created: &[debit, credit],
            ..CommitBatch::default()
        })
        .expect("the accounts");
    let mut hold = transfer(10, 1, 2, 1_000);
    hold.flags = TransferFlags::PENDING;
    hold.timeout_seconds = 1;
    let mut forever = transfer(11, 1, 2, 1_001);
    forever.flags = TransferFlags::PENDING;
    debit.debits_pending = 20;
    credit.credits_pending = 20;
    let pending = [
        PendingRecord {
            id: 10,
            status: PendingStatus::Pending,
            expires_at: hold.expires_at(),
        },
        PendingRecord {
            id: 11,
            status: PendingStatus::Pending,
            expires_at: None,
        },
    ];
    writer
        .commit(&CommitBatch {
            sequence: 2,
            timestamp_last: 1_001,
            accounts_updated: &[debit, credit],
            transfers: &[hold, forever],
            pending: &pending,
            log: LogAppend {
                size_before: 0,
                size_after: 2,
                ..Default::default()
            },
            ..CommitBatch::default()
        })
        .expect("the holds");
    let mut reader = store.reader().expect("a reader");
    assert!(reader
        .pending_due(1_000_000_999, 10)
        .expect("due")
        .is_empty());
    assert_eq!(
        reader.pending_due(1_000_001_000, 10).expect("due"),
        vec![10]
    );
    let stored = reader.transfer(10).expect("a read").expect("transfer 10");
    assert_eq!(stored.transfer, hold);
    assert_eq!(stored.pending_status, Some(PendingStatus::Pending));
    assert_eq!(stored.leaf_index, 0);
    let unlimited = reader.transfer(11).expect("a read").expect("transfer 11");
    assert_eq!(unlimited.transfer.pending_id, 0);
    assert_eq!(unlimited.leaf_index, 1);
    writer
        .commit(&CommitBatch {
            sequence: 3,
            timestamp_last: 2_000,
            pending: &[PendingRecord {
                id: 10,
                status: PendingStatus::Expired,
                expires_at: None,
            }],
            log: LogAppend {
                size_before: 2,
                size_after: 2,
                ..Default::default()
            },
            ..CommitBatch::default()
        })
        .expect("the expiry");
    assert!(
        reader
            .pending_due(u64::MAX / 2, 10)
            .expect("due")
            .is_empty(),
        "an expired hold is no longer due"
    );
    assert_eq!(
        reader
            .transfer(10)
            .expect("a read")
            .expect("transfer 10")
            .pending_status,
        Some(PendingStatus::Expired)
    );
    // The expiry time written first is kept when the status changes.
    let output = store
        .query(
            "SELECT status, expires_at FROM pending_transfers WHERE id = 10",
            crate::sql::generous(),
        )
        .expect("the query");
    assert_eq!(
        output.rows[0],
        vec![
            store::Value::Text("expired".into()),
            store::Value::Integer(1_000_001_000)
        ]
    );
}

pub fn one_writer_and_batches_in_sequence(store: &dyn Store) {
    let mut writer = store.writer().expect("the writer");
    assert_eq!(
        store
            .writer()
            .err()
            .expect("a second writer is refused")
            .kind,
        StoreErrorKind::Refused
    );
    writer
        .commit(&CommitBatch {
            sequence: 1,
            timestamp_last: 5,
            accounts_created: &[account(1)],
            ..CommitBatch::default()
        })
        .expect("batch 1");
    // A batch that does not follow the last one is refused, and writes nothing.
    for sequence in [1, 3] {
        let error = writer
            .commit(&CommitBatch {
                sequence,
                timestamp_last: 9,
                accounts_created: &[account(2)],
                ..CommitBatch::default()
            })
            .expect_err("out of sequence");
        assert_eq!(error.kind, StoreErrorKind::Stale, "{error}");
        assert!(error.message.contains("does not follow"), "{error}");
    }
    let mut reader = store.reader().expect("a reader");
    assert!(reader.account(2).expect("a read").is_none());
    assert_eq!(reader.head().expect("the head").batches, 1);
    // The writer goes on with the right number.
    writer
        .commit(&CommitBatch {
            sequence: 2,
            timestamp_last: 9,
            accounts_created: &[account(2)],
            ..CommitBatch::default()
        })
        .expect("batch 2");
    assert!(reader.account(2).expect("a read").is_some());
    drop(writer);
    assert!(
        store.writer().is_ok(),
        "the writer can be taken again once released"
    );
}

pub fn a_stale_writer_on_a_second_handle_is_refused(fixture: &dyn Fixture) {
    let store = fixture.store();
    let second = fixture.open_again();
    let mut first_writer = store.writer().expect("the first writer");
    let mut second_writer = second.writer().expect("a writer of another process");
    first_writer
        .commit(&CommitBatch {
            sequence: 1,
            timestamp_last: 5,
            accounts_created: &[account(1)],
            ..CommitBatch::default()
        })
        .expect("batch 1");
    // The first writer lets the others have their turn (on a shared store it would wait).
    first_writer.end_turn();
    // The other process thinks it writes batch 1 too: refused, nothing of it kept.
    let error = second_writer
        .commit(&CommitBatch {
            sequence: 1,
            timestamp_last: 6,
            accounts_created: &[account(2)],
            ..CommitBatch::default()
        })
        .expect_err("a stale batch");
    assert_eq!(error.kind, StoreErrorKind::Stale, "{error}");
    let mut reader = second.reader().expect("a reader");
    assert!(reader.account(2).expect("a read").is_none());
    assert_eq!(reader.head().expect("the head").batches, 1);
}

pub fn a_failed_commit_keeps_nothing_of_its_batch(store: &dyn Store) {
    write_transfers(store, 2); // transfers 1 to 4, batches 1 to 3
    let mut writer = store.writer().expect("the writer");
    let mut one = account(1);
    one.debits_posted = 30;
    let mut two = account(2);
    two.credits_posted = 30;
    // Transfer 4 exists already: the store refuses the batch as a whole, though its head
    // advanced, its accounts were created and its balances written before that row.
    let transfers = [transfer(5, 1, 2, 500), transfer(4, 1, 2, 501)];
    let error = writer
        .commit(&CommitBatch {
            sequence: 4,
            timestamp_last: 501,
            accounts_created: &[account(9)],
            accounts_updated: &[one, two],
            transfers: &transfers,
            log: LogAppend {
                size_before: 4,
                size_after: 6,
                ..Default::default()
            },
            ..CommitBatch::default()
        })
        .expect_err("a transfer id committed twice");
    assert_ne!(error.kind, StoreErrorKind::Refused, "{error}");
    let mut reader = store.reader().expect("a reader");
    let head = reader.head().expect("the head");
    assert_eq!(
        (head.batches, head.log_size, head.transfer_id_max),
        (3, 4, 4)
    );
    assert!(reader.account(9).expect("a read").is_none());
    assert!(reader.transfer(5).expect("a read").is_none());
    assert_eq!(
        reader
            .account(1)
            .expect("a read")
            .expect("account 1")
            .debits_posted,
        20
    );
    // The same sequence number, without the duplicate, commits.
    writer
        .commit(&CommitBatch {
            sequence: 4,
            timestamp_last: 500,
            accounts_created: &[account(9)],
            accounts_updated: &[one, two],
            transfers: &transfers[..1],
            log: LogAppend {
                size_before: 4,
                size_after: 5,
                ..Default::default()
            },
            ..CommitBatch::default()
        })
        .expect("the batch without the duplicate");
    assert_eq!(
        reader
            .account(1)
            .expect("a read")
            .expect("account 1")
            .debits_posted,
        30
    );
    assert!(reader.transfer(5).expect("a read").is_some());
}

pub fn loading_transfers_finds_exactly_those_that_exist(store: &dyn Store) {
    write_transfers(store, 50); // transfers 1..=100
    let mut reader = store.reader().expect("a reader");
    let mut wanted: Vec<u128> = (10..=60).step_by(3).collect(); // a run with gaps
    wanted.extend([5, 99, 100, 101, 5_000, 0, u128::MAX]); // singles, missing, out of range
    wanted.extend([30, 31, 32]); // duplicates of the run
    let mut found = Vec::new();
    reader
        .load_transfers(&wanted, &mut found)
        .expect("the load");
    let mut ids: Vec<u128> = found.iter().map(|stored| stored.transfer.id).collect();
    ids.sort_unstable();
    let mut expected: Vec<u128> = (10..=60)
        .step_by(3)
        .chain([5, 99, 100, 30, 31, 32])
        .collect();
    expected.sort_unstable();
    expected.dedup();
    assert_eq!(ids, expected);
    assert!(found
        .iter()
        .all(|stored| u128::from(stored.leaf_index) == stored.transfer.id - 1));
    let mut accounts = Vec::new();
    reader
        .load_accounts(&[4, 1, 77, u128::MAX], &mut accounts)
        .expect("the load");
    let mut account_ids: Vec<u128> = accounts.iter().map(|account| account.id).collect();
    account_ids.sort_unstable();
    assert_eq!(account_ids, vec![1, 4]);
    // One pass over a range of transfers, as the audit splits it.
    let mut visited = Vec::new();
    reader
        .visit_transfers(20..=29, &mut |stored| visited.push(stored.transfer.id))
        .expect("the pass");
    visited.sort_unstable();
    assert_eq!(visited, (20..=29).collect::<Vec<u128>>());
    let mut accounts_seen = 0;
    reader
        .visit_accounts(&mut |_| accounts_seen += 1)
        .expect("the pass");
    assert_eq!(accounts_seen, 4);
    let report = store::InvariantReport::check(reader.as_mut()).expect("the report");
    assert!(report.holds(), "{report:?}");
    assert_eq!(report.totals.len(), 1);
    assert_eq!(report.totals[0].debits_posted, 1000);
}
