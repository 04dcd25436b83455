//! The SQLite backend against batches written through its trait.

use ledger::Transfer;
use store::{CommitBatch, HistoryQuery, Store, StoreErrorKind};
use store_conformance::support::{account, transfer, write_transfers};
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

#[test]
fn read_only_sql_refuses_sqlite_pragmas_attachments_and_extensions() {
    let directory = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(directory.path()).unwrap();
    write_transfers(&store, 3);
    let connection = store.read_only_connection().unwrap();
    for statement in [
        "PRAGMA query_only = 0",
        "ATTACH DATABASE ':memory:' AS other",
        "SELECT load_extension('x')",
        "DELETE FROM history.account_postings",
    ] {
        let error = query(&connection, statement).unwrap_err();
        assert!(
            error.kind == StoreErrorKind::Refused || error.message.contains("not authorized"),
            "{statement}: {error:?}"
        );
    }
    let output = query(&connection, "SELECT count(*) FROM transfers").unwrap();
    assert_eq!(output.rows[0][0], Value::Integer(6));
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
    let recent = query(&connection, "SELECT coalesce(sum(json_array_length(r.postings)), 0) FROM history.account_postings_recent r JOIN history.history_slices s ON s.slice = r.slice WHERE r.slice = 1 AND r.batch > s.merged_through").unwrap();
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
        .execute("INSERT INTO account_postings_recent (id, batch, slice, postings) VALUES (7 * 64 + 2, 7, 2, '[[2,999999,777]]')", [])
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

/// Batch `index + 2` of the pattern `write_transfers` writes: two transfers, 1 → 2 and 3 → 4.
fn commit_pattern_batch(writer: &mut dyn store::StoreWriter, index: u64) {
    let timestamp = 100 + index * 10;
    let transfers = [
        transfer(u128::from(index) * 2 + 1, 1, 2, timestamp),
        transfer(u128::from(index) * 2 + 2, 3, 4, timestamp + 1),
    ];
    let moved = u128::from(index + 1) * 10;
    let (mut one, mut two, mut three, mut four) = (account(1), account(2), account(3), account(4));
    one.debits_posted = moved;
    two.credits_posted = moved;
    three.debits_posted = moved;
    four.credits_posted = moved;
    writer
        .commit(&CommitBatch {
            sequence: index + 2,
            timestamp_last: timestamp + 1,
            accounts_updated: &[one, two, three, four],
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

#[test]
fn a_history_several_batches_behind_catches_up_from_the_ledgers_leaves() {
    let directory = tempfile::tempdir().unwrap();
    let history_path = directory.path().join(store_sqlite::HISTORY_FILE_NAME);
    let backup = directory.path().join("history-backup");
    {
        let store = SqliteStore::open(directory.path()).unwrap();
        write_transfers(&store, 5);
    }
    // The history as it was on disk after batch 6; the ledger goes on for 80 more batches,
    // which merge every slice of the history at least once.
    std::fs::copy(&history_path, &backup).unwrap();
    {
        let store = SqliteStore::open(directory.path()).unwrap();
        let mut writer = store.writer().unwrap();
        for index in 5..85 {
            commit_pattern_batch(writer.as_mut(), index);
        }
        assert_eq!(history_count(&store, 2), 85);
    }
    // A power loss: the history's last commits were never synced (it is synced only at its
    // checkpoints), the ledger's were.
    for suffix in ["-wal", "-shm"] {
        let mut path = history_path.clone().into_os_string();
        path.push(suffix);
        let _ = std::fs::remove_file(path);
    }
    std::fs::copy(&backup, &history_path).unwrap();
    let store = SqliteStore::open(directory.path()).unwrap();
    assert_eq!(history_count(&store, 2), 5, "the history lost 80 batches");
    drop(store.writer().unwrap());
    assert_eq!(
        history_count(&store, 2),
        85,
        "rebuilt from the ledger's transfers beyond the history's log size, each once"
    );
    let connection = store.read_only_connection().unwrap();
    let output = query(
        &connection,
        "SELECT count(*), count(DISTINCT transfer_id) FROM account_history",
    )
    .unwrap();
    assert_eq!(
        output.rows[0],
        vec![Value::Integer(340), Value::Integer(170)]
    );
    // And it goes on from there.
    let mut writer = store.writer().unwrap();
    commit_pattern_batch(writer.as_mut(), 85);
    assert_eq!(history_count(&store, 2), 86);
}

#[test]
fn a_history_further_behind_without_its_log_size_is_refused_with_a_clear_message() {
    let directory = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(directory.path()).unwrap();
    write_transfers(&store, 5);
    // As a history written before it recorded the log size it reached.
    history_connection(directory.path())
        .execute("UPDATE history_head SET batches = 2, log_size = NULL", [])
        .unwrap();
    let error = store.writer().err().expect("the writer is refused");
    assert!(
        error
            .message
            .contains("does not know the log size it reached"),
        "{}",
        error.message
    );
}

/// Commits batches `first..=last` of transfers among accounts 1–100 (two per batch), by a
/// writer of its own; returns each transfer as (id, debit, credit).
fn write_spread_batches(store: &SqliteStore, first: u64, last: u64) -> Vec<(u128, u128, u128)> {
    let mut writer = store.writer().unwrap();
    if first == 1 {
        let accounts: Vec<ledger::Account> = (1..=100).map(account).collect();
        writer
            .commit(&CommitBatch {
                sequence: 1,
                timestamp_last: 1,
                accounts_created: &accounts,
                ..CommitBatch::default()
            })
            .unwrap();
    }
    let mut written = Vec::new();
    for sequence in first.max(2)..=last {
        let index = sequence - 2;
        let pairs = [
            (index % 100 + 1, (index * 7 + 3) % 100 + 1),
            ((index * 13 + 5) % 100 + 1, (index * 31 + 11) % 100 + 1),
        ];
        let transfers: Vec<Transfer> = pairs
            .iter()
            .enumerate()
            .map(|(offset, &(debit, credit))| {
                // Never an account to itself.
                let credit = if credit == debit {
                    debit % 100 + 1
                } else {
                    credit
                };
                let id = u128::from(index * 2 + offset as u64 + 1);
                written.push((id, u128::from(debit), u128::from(credit)));
                transfer(
                    id,
                    u128::from(debit),
                    u128::from(credit),
                    100 + index * 10 + offset as u64,
                )
            })
            .collect();
        writer
            .commit(&CommitBatch {
                sequence,
                timestamp_last: 100 + index * 10 + 1,
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
    written
}

#[test]
fn merged_recent_postings_are_read_once_and_deleted_in_bulk_across_a_restart() {
    let directory = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(directory.path()).unwrap();
    // Past two rounds of the 64 slices, then a new writer (the slices reloaded), then more.
    let mut written = write_spread_batches(&store, 1, 150);
    written.extend(write_spread_batches(&store, 151, 320));
    let mut reader = store.reader().unwrap();
    for account_id in 1..=100u128 {
        let expected: Vec<u128> = written
            .iter()
            .filter(|(_, debit, credit)| *debit == account_id || *credit == account_id)
            .map(|(id, _, _)| *id)
            .collect();
        let history = reader
            .account_transfers(HistoryQuery {
                account_id,
                after_timestamp: 0,
                limit: 1000,
            })
            .unwrap();
        let ids: Vec<u128> = history.iter().map(|transfer| transfer.id).collect();
        assert_eq!(ids, expected, "account {account_id}");
    }
    let connection = store.read_only_connection().unwrap();
    let postings = query(&connection, "SELECT count(*) FROM account_history").unwrap();
    assert_eq!(
        postings.rows[0][0],
        Value::Integer(2 * written.len() as i64),
        "every posting once, merged or recent"
    );
    // Rows every slice has merged are gone: only the last two rounds' can remain.
    let oldest = query(
        &connection,
        "SELECT min(batch) FROM history.account_postings_recent",
    )
    .unwrap();
    let Value::Integer(oldest) = oldest.rows[0][0] else {
        panic!("{oldest:?}")
    };
    assert!(
        oldest > 320 - 2 * 64,
        "recent rows kept from batch {oldest}"
    );
}
