//! The SQLite backend against batches written through its trait.

use ledger::{Account, AccountFlags, Currency, PendingStatus, Transfer, TransferFlags};
use store::{CommitBatch, HistoryQuery, PendingRecord, Store, StoreErrorKind};
use store_sqlite::{query_read_only, SqliteStore, Value};

/// A query with generous limits, as `tally sql` runs it.
fn query(connection: &rusqlite::Connection, sql: &str) -> store::StoreResult<store::QueryOutput> {
    query_read_only(
        connection,
        sql,
        store::QueryLimits {
            rows_max: 1_000_000,
            time_max: None,
        },
    )
}

fn cny() -> Currency {
    Currency::parse("CNY").unwrap()
}

fn account(id: u128) -> Account {
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

fn transfer(id: u128, debit: u128, credit: u128, timestamp: u64) -> Transfer {
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

/// Writes `count` batches after the first, each with one transfer from account 1 to 2 (and
/// one from 3 to 4), keeping the balances right.
fn write_transfers(store: &SqliteStore, count: u64) {
    let mut writer = store.writer().unwrap();
    let accounts = [account(1), account(2), account(3), account(4)];
    writer
        .commit(&CommitBatch {
            sequence: 1,
            timestamp_last: 1,
            accounts_created: &accounts,
            ..CommitBatch::default()
        })
        .unwrap();
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
                log: store::LogAppend {
                    size_before: index * 2,
                    size_after: index * 2 + 2,
                    ..Default::default()
                },
                ..CommitBatch::default()
            })
            .unwrap();
    }
}

#[test]
fn history_pages_in_time_order_across_merges() {
    let directory = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(directory.path()).unwrap();
    // More batches than history slices, so several merges have happened and some postings
    // are still recent.
    write_transfers(&store, 150);
    let mut reader = store.reader().unwrap();
    let mut seen = Vec::new();
    let mut cursor = 0;
    loop {
        let page = reader
            .account_transfers(HistoryQuery {
                account_id: 2,
                after_timestamp: cursor,
                limit: 7,
            })
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        cursor = page.last().unwrap().timestamp;
        seen.extend(page);
    }
    assert_eq!(seen.len(), 150);
    assert!(seen
        .windows(2)
        .all(|pair| pair[0].timestamp < pair[1].timestamp));
    assert!(seen
        .iter()
        .all(|transfer| transfer.credit_account_id == 2 && transfer.user_data == 7));
    // Account 3 sees only its own transfers.
    let other = reader
        .account_transfers(HistoryQuery {
            account_id: 3,
            after_timestamp: 0,
            limit: 1000,
        })
        .unwrap();
    assert_eq!(other.len(), 150);
    assert!(other.iter().all(|transfer| transfer.debit_account_id == 3));
    // Auditors get the same history through SQL.
    let connection = store.read_only_connection().unwrap();
    let output = query(
        &connection,
        "SELECT count(*), min(timestamp), max(timestamp) FROM account_history WHERE account_id = 2",
    )
    .unwrap();
    assert_eq!(
        output.rows[0],
        vec![
            Value::Integer(150),
            Value::Integer(100),
            Value::Integer(100 + 149 * 10)
        ]
    );
    let balances = query(
        &connection,
        "SELECT debits_posted, credits_posted FROM accounts WHERE id IN (1, 2) ORDER BY id",
    )
    .unwrap();
    assert_eq!(
        balances.rows,
        vec![
            vec![Value::Integer(1500), Value::Integer(0)],
            vec![Value::Integer(0), Value::Integer(1500)]
        ]
    );
    let head = reader.head().unwrap();
    assert_eq!((head.batches, head.transfer_id_max), (151, 300));
}

#[test]
fn pending_status_and_due_list() {
    let directory = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(directory.path()).unwrap();
    let mut writer = store.writer().unwrap();
    let mut debit = account(1);
    let mut credit = account(2);
    writer
        .commit(&CommitBatch {
            sequence: 1,
            timestamp_last: 1,
            accounts_created: &[debit, credit],
            ..CommitBatch::default()
        })
        .unwrap();
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
            log: store::LogAppend {
                size_before: 0,
                size_after: 2,
                ..Default::default()
            },
            ..CommitBatch::default()
        })
        .unwrap();
    let mut reader = store.reader().unwrap();
    assert!(reader.pending_due(1_000_000_999, 10).unwrap().is_empty());
    assert_eq!(reader.pending_due(1_000_001_000, 10).unwrap(), vec![10]);
    let stored = reader.transfer(10).unwrap().unwrap();
    assert_eq!(stored.transfer, hold);
    assert_eq!(stored.pending_status, Some(PendingStatus::Pending));
    writer
        .commit(&CommitBatch {
            sequence: 3,
            timestamp_last: 2_000,
            pending: &[PendingRecord {
                id: 10,
                status: PendingStatus::Expired,
                expires_at: None,
            }],
            log: store::LogAppend {
                size_before: 2,
                size_after: 2,
                ..Default::default()
            },
            ..CommitBatch::default()
        })
        .unwrap();
    assert!(
        reader.pending_due(u64::MAX / 2, 10).unwrap().is_empty(),
        "an expired hold is no longer due"
    );
    assert_eq!(
        reader.transfer(10).unwrap().unwrap().pending_status,
        Some(PendingStatus::Expired)
    );
    // The expiry time written first is kept when the status changes.
    let connection = store.read_only_connection().unwrap();
    let output = query(
        &connection,
        "SELECT status, expires_at FROM pending_transfers WHERE id = 10",
    )
    .unwrap();
    assert_eq!(
        output.rows[0],
        vec![Value::Text("expired".into()), Value::Integer(1_000_001_000)]
    );
}

#[test]
fn one_writer_and_batches_in_sequence() {
    let directory = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(directory.path()).unwrap();
    let mut writer = store.writer().unwrap();
    assert_eq!(store.writer().err().unwrap().kind, StoreErrorKind::Refused);
    writer
        .commit(&CommitBatch {
            sequence: 1,
            timestamp_last: 5,
            accounts_created: &[account(1)],
            ..CommitBatch::default()
        })
        .unwrap();
    // A batch that does not follow the last one is refused, and writes nothing.
    let error = writer
        .commit(&CommitBatch {
            sequence: 3,
            timestamp_last: 9,
            accounts_created: &[account(2)],
            ..CommitBatch::default()
        })
        .unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::Refused);
    let mut reader = store.reader().unwrap();
    assert!(reader.account(2).unwrap().is_none());
    assert_eq!(reader.head().unwrap().batches, 1);
    drop(writer);
    assert!(
        store.writer().is_ok(),
        "the writer can be taken again once released"
    );
}

#[test]
fn read_only_sql_refuses_every_write() {
    let directory = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(directory.path()).unwrap();
    write_transfers(&store, 3);
    let connection = store.read_only_connection().unwrap();
    for statement in [
        "DELETE FROM transfers",
        "UPDATE accounts SET credits_posted = 1000000",
        "INSERT INTO accounts (id) VALUES (99)",
        "DROP TABLE transfers",
        "CREATE TABLE evil (x)",
        "PRAGMA query_only = 0",
        "ATTACH DATABASE ':memory:' AS other",
        "SELECT load_extension('x')",
    ] {
        let error = query(&connection, statement).unwrap_err();
        assert!(
            error.kind == StoreErrorKind::Refused || error.message.contains("not authorized"),
            "{statement}: {error:?}"
        );
    }
    let output = query(&connection, "SELECT count(*) FROM transfers").unwrap();
    assert_eq!(output.rows[0][0], Value::Integer(6));
    assert_eq!(output.columns, vec!["count(*)".to_owned()]);

    // Auditors over HTTP get a row limit and a time limit.
    let limited = query_read_only(
        &connection,
        "SELECT id FROM transfers ORDER BY id",
        store::QueryLimits {
            rows_max: 2,
            time_max: Some(std::time::Duration::from_secs(5)),
        },
    )
    .unwrap();
    assert_eq!(limited.rows.len(), 2);
    assert!(limited.truncated);
    let endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
                   SELECT count(*) FROM n";
    let error = query_read_only(
        &connection,
        endless,
        store::QueryLimits {
            rows_max: 10,
            time_max: Some(std::time::Duration::from_millis(200)),
        },
    )
    .unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::Refused);
    assert!(error.message.contains("ran longer than"), "{error:?}");
    // The connection is usable again after an interrupted query.
    assert_eq!(
        query(&connection, "SELECT 1").unwrap().rows[0][0],
        Value::Integer(1)
    );
}

#[test]
fn opening_a_missing_store_read_only_says_where() {
    let directory = tempfile::tempdir().unwrap();
    let error = SqliteStore::open_existing(&directory.path().join("nothing")).unwrap_err();
    assert!(
        error.message.contains("no Tally store"),
        "{}",
        error.message
    );
}

#[test]
fn a_hot_account_history_is_merged_early_and_stays_complete() {
    let directory = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(directory.path()).unwrap();
    let mut writer = store.writer().unwrap();
    writer
        .commit(&CommitBatch {
            sequence: 1,
            timestamp_last: 1,
            accounts_created: &[account(1), account(2)],
            ..CommitBatch::default()
        })
        .unwrap();
    let (mut hot, mut other) = (account(1), account(2));
    let per_batch = 2_000u64;
    let batches = 30u64;
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
                log: store::LogAppend {
                    size_before: index * per_batch,
                    size_after: (index + 1) * per_batch,
                    ..Default::default()
                },
                ..CommitBatch::default()
            })
            .unwrap();
    }
    let connection = store.read_only_connection().unwrap();
    // The hot slice was merged before the round robin reached it: little is left recent.
    let recent = query(&connection, "SELECT coalesce(sum(json_array_length(postings)), 0) FROM history.account_postings_recent WHERE slice = 1").unwrap();
    let Value::Integer(recent_count) = recent.rows[0][0] else {
        panic!("{recent:?}")
    };
    assert!(
        recent_count <= 32_768 + 2_000,
        "hot slice not merged early: {recent_count} recent postings"
    );
    let mut reader = store.reader().unwrap();
    let mut cursor = 0;
    let mut count = 0u64;
    loop {
        let page = reader
            .account_transfers(HistoryQuery {
                account_id: 1,
                after_timestamp: cursor,
                limit: 1000,
            })
            .unwrap();
        let Some(last) = page.last() else { break };
        assert!(last.timestamp > cursor);
        assert!(page
            .windows(2)
            .all(|pair| pair[0].timestamp < pair[1].timestamp));
        cursor = last.timestamp;
        count += page.len() as u64;
    }
    assert_eq!(count, per_batch * batches);
}

/// The history database beside the ledger, opened directly to play a crash.
fn history_connection(directory: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(directory.join(store_sqlite::HISTORY_FILE_NAME)).unwrap()
}

fn history_count(store: &SqliteStore, account_id: u128) -> usize {
    let mut reader = store.reader().unwrap();
    reader
        .account_transfers(HistoryQuery {
            account_id,
            after_timestamp: 0,
            limit: 1000,
        })
        .unwrap()
        .len()
}

#[test]
fn a_history_one_batch_behind_the_ledger_catches_up_when_the_writer_starts() {
    let directory = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(directory.path()).unwrap();
    write_transfers(&store, 10);
    assert_eq!(history_count(&store, 2), 10);
    // A crash after the ledger committed batch 11 and before the history did.
    let history = history_connection(directory.path());
    history
        .execute("DELETE FROM account_postings_recent WHERE batch = 11", [])
        .unwrap();
    history
        .execute("UPDATE history_head SET batches = 10", [])
        .unwrap();
    assert_eq!(
        history_count(&store, 2),
        9,
        "the last batch is missing from the history"
    );
    drop(store.writer().unwrap());
    assert_eq!(
        history_count(&store, 2),
        10,
        "rebuilt from the ledger's last batch"
    );
    let connection = store.read_only_connection().unwrap();
    let output = query(&connection, "SELECT count(*) FROM account_history").unwrap();
    assert_eq!(output.rows[0][0], Value::Integer(40));
}

#[test]
fn a_history_one_batch_ahead_of_the_ledger_drops_that_batch() {
    let directory = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(directory.path()).unwrap();
    write_transfers(&store, 5);
    // A crash after the history indexed batch 7 and before the ledger committed it.
    let history = history_connection(directory.path());
    history
        .execute("INSERT INTO account_postings_recent (slice, batch, postings) VALUES (2, 7, '[[2,999999,777]]')", [])
        .unwrap();
    history
        .execute("UPDATE history_head SET batches = 7", [])
        .unwrap();
    // Readers already leave out what the ledger has not committed.
    assert_eq!(history_count(&store, 2), 5);
    let connection = store.read_only_connection().unwrap();
    let output = query(
        &connection,
        "SELECT count(*) FROM account_history WHERE transfer_id = 777",
    )
    .unwrap();
    assert_eq!(output.rows[0][0], Value::Integer(0));
    drop(store.writer().unwrap());
    let remaining: i64 = history
        .query_row(
            "SELECT count(*) FROM account_postings_recent WHERE batch = 7",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(remaining, 0);
    let head: i64 = history
        .query_row("SELECT batches FROM history_head", [], |row| row.get(0))
        .unwrap();
    assert_eq!(head, 6);
}

#[test]
fn a_history_further_behind_is_refused_with_a_clear_message() {
    let directory = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(directory.path()).unwrap();
    write_transfers(&store, 5);
    history_connection(directory.path())
        .execute("UPDATE history_head SET batches = 2", [])
        .unwrap();
    let error = store.writer().err().expect("the writer is refused");
    assert!(
        error.message.contains("can only catch up one batch"),
        "{}",
        error.message
    );
}

#[test]
fn loading_transfers_by_runs_and_by_single_ids_finds_exactly_those_that_exist() {
    let directory = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(directory.path()).unwrap();
    write_transfers(&store, 50); // transfers 1..=100
    let mut reader = store.reader().unwrap();
    let mut wanted: Vec<u128> = (10..=60).step_by(3).collect(); // a run with gaps
    wanted.extend([5, 99, 100, 101, 5_000, 0, u128::MAX]); // singles, missing ones, out of range
    wanted.extend([30, 31, 32]); // duplicates of the run
    let mut found = Vec::new();
    reader.load_transfers(&wanted, &mut found).unwrap();
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
        .all(|stored| stored.leaf_index == u64::try_from(stored.transfer.id).unwrap() - 1));
}
