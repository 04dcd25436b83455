//! The writer: one transaction per batch, durable (WAL fsync) before `commit` returns.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ledger::Account;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, ToSql};
use store::{to_i64, CommitBatch, StoreError, StoreErrorKind, StoreResult, StoreWriter};

use crate::checkpoint::Checkpointer;
use crate::{map_error, postings};

/// Recent postings are kept in this many slices of the account space; each batch merges one
/// slice into the clustered `account_postings` table, so every slice is merged once every
/// `HISTORY_SLICES` batches and each merge writes many rows per account page.
pub(crate) const HISTORY_SLICES: u64 = 64;

pub(crate) fn history_slice(account_id: u128) -> i64 {
    (account_id % u128::from(HISTORY_SLICES)) as i64
}

/// A slice with more recent postings than this is merged in the next batch, whatever the
/// round robin says: a hot account's slice would otherwise pile up 64 batches' worth and make
/// one batch in 64 slow.
const SLICE_RECENT_POSTINGS_MAX: u64 = 32_768;

/// The recent (unmerged) postings of each history slice, `[account_id, timestamp, transfer_id]`
/// in commit order: a copy of `account_postings_recent` kept by the writer, so that a merge
/// does not read back and parse what the writer itself wrote.
type RecentPostings = Vec<Vec<[i64; 3]>>;

pub(crate) struct SqliteWriter {
    connection: Connection,
    taken: Arc<AtomicBool>,
    /// Loaded at the first commit; dropped (and loaded again) when a commit fails.
    recent: Option<RecentPostings>,
    _checkpointer: Checkpointer,
}

impl SqliteWriter {
    pub(crate) fn new(
        connection: Connection,
        taken: Arc<AtomicBool>,
        checkpointer: Checkpointer,
    ) -> Self {
        SqliteWriter {
            connection,
            taken,
            recent: None,
            _checkpointer: checkpointer,
        }
    }
}

impl Drop for SqliteWriter {
    fn drop(&mut self) {
        self.taken.store(false, Ordering::SeqCst);
    }
}

impl StoreWriter for SqliteWriter {
    fn commit(&mut self, batch: &CommitBatch<'_>) -> StoreResult<()> {
        self.connection
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(map_error)?;
        // Taken out while the transaction runs: if it fails, the copy may be ahead of the
        // disk, so it is not put back and is loaded again next time.
        let written = match self.recent.take() {
            Some(recent) => Ok(recent),
            None => load_recent(&self.connection),
        }
        .and_then(|mut recent| write_batch(&self.connection, batch, &mut recent).map(|()| recent));
        match written {
            Ok(recent) => {
                if let Err(error) = self.connection.execute_batch("COMMIT") {
                    let _ = self.connection.execute_batch("ROLLBACK");
                    return Err(map_error(error));
                }
                self.recent = Some(recent);
                Ok(())
            }
            Err(error) => {
                let _ = self.connection.execute_batch("ROLLBACK");
                Err(error)
            }
        }
    }
}

fn insert_account(connection: &Connection, account: &Account) -> StoreResult<()> {
    let mut statement = connection
        .prepare_cached(
            "INSERT INTO accounts (id, currency, kind, flags, user_data, debits_pending,
                debits_posted, credits_pending, credits_posted, timestamp)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(map_error)?;
    statement
        .execute(params![
            to_i64(account.id),
            account.currency.as_str(),
            account.kind,
            account.flags.bits(),
            to_i64(account.user_data),
            to_i64(account.debits_pending),
            to_i64(account.debits_posted),
            to_i64(account.credits_pending),
            to_i64(account.credits_posted),
            timestamp_i64(account.timestamp),
        ])
        .map_err(map_error)?;
    Ok(())
}

fn timestamp_i64(timestamp: u64) -> i64 {
    i64::try_from(timestamp).expect("ledger timestamps fit i64 until the year 2262")
}

fn load_recent(connection: &Connection) -> StoreResult<RecentPostings> {
    let mut recent: RecentPostings = vec![Vec::new(); HISTORY_SLICES as usize];
    let mut statement = connection
        .prepare_cached("SELECT slice, postings FROM account_postings_recent ORDER BY slice, batch")
        .map_err(map_error)?;
    let mut rows = statement.query([]).map_err(map_error)?;
    while let Some(row) = rows.next().map_err(map_error)? {
        let slice: i64 = row.get(0).map_err(map_error)?;
        let entries = usize::try_from(slice)
            .ok()
            .and_then(|slice| recent.get_mut(slice));
        let entries = entries
            .ok_or_else(|| StoreError::corrupt(format!("history slice {slice} out of range")))?;
        let text = row.get_ref(1).map_err(map_error)?.as_str().ok();
        text.and_then(|text| postings::decode(text, entries))
            .ok_or_else(|| {
                StoreError::corrupt(format!("recent postings of slice {slice} are malformed"))
            })?;
    }
    Ok(recent)
}

fn write_batch(
    connection: &Connection,
    batch: &CommitBatch<'_>,
    recent: &mut RecentPostings,
) -> StoreResult<()> {
    for account in batch.accounts_created {
        insert_account(connection, account)?;
    }
    {
        // One prepared single-row UPDATE per account: measured faster here than a multi-row
        // UPDATE … FROM (VALUES …), which SQLite materialises first.
        let mut update = connection
            .prepare_cached(
                "UPDATE accounts SET debits_pending = ?2, debits_posted = ?3,
                    credits_pending = ?4, credits_posted = ?5 WHERE id = ?1",
            )
            .map_err(map_error)?;
        for account in batch.accounts_updated {
            let changed = update
                .execute(params![
                    to_i64(account.id),
                    to_i64(account.debits_pending),
                    to_i64(account.debits_posted),
                    to_i64(account.credits_pending),
                    to_i64(account.credits_posted),
                ])
                .map_err(map_error)?;
            if changed != 1 {
                return Err(StoreError::corrupt(format!(
                    "account {} to update is not in the store",
                    account.id
                )));
            }
        }
    }
    let mut transfer_id_max = 0u128;
    {
        let mut postings: Vec<Vec<[i64; 3]>> = vec![Vec::new(); HISTORY_SLICES as usize];
        let mut rows: Vec<[Param<'_>; 11]> = Vec::with_capacity(batch.transfers.len());
        for transfer in batch.transfers {
            transfer_id_max = transfer_id_max.max(transfer.id);
            let id = to_i64(transfer.id);
            let timestamp = timestamp_i64(transfer.timestamp);
            rows.push([
                Param::Integer(id),
                Param::Integer(to_i64(transfer.debit_account_id)),
                Param::Integer(to_i64(transfer.credit_account_id)),
                Param::Integer(to_i64(transfer.amount)),
                Param::Text(transfer.currency.as_str()),
                if transfer.pending_id == 0 {
                    Param::Null
                } else {
                    Param::Integer(to_i64(transfer.pending_id))
                },
                Param::Integer(to_i64(transfer.user_data)),
                Param::Integer(i64::from(transfer.timeout_seconds)),
                Param::Integer(i64::from(transfer.kind)),
                Param::Integer(i64::from(transfer.flags.bits())),
                Param::Integer(timestamp),
            ]);
            for account_id in [transfer.debit_account_id, transfer.credit_account_id] {
                postings[history_slice(account_id) as usize].push([
                    to_i64(account_id),
                    timestamp,
                    id,
                ]);
            }
        }
        execute_rows(
            connection,
            "INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, currency,
                pending_id, user_data, timeout_seconds, kind, flags, timestamp) VALUES ",
            "",
            &rows,
        )?;
        let mut insert_postings = connection
            .prepare_cached(
                "INSERT INTO account_postings_recent (slice, batch, postings) VALUES (?1, ?2, ?3)",
            )
            .map_err(map_error)?;
        let sequence = i64::try_from(batch.sequence).expect("batch sequence fits i64");
        for (slice, entries) in postings.iter().enumerate() {
            if !entries.is_empty() {
                insert_postings
                    .execute(params![slice as i64, sequence, postings::encode(entries)])
                    .map_err(map_error)?;
                recent[slice].extend_from_slice(entries);
            }
        }
    }
    if !batch.pending.is_empty() {
        let mut upsert = connection
            .prepare_cached(
                "INSERT INTO pending_transfers (id, status, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status",
            )
            .map_err(map_error)?;
        for record in batch.pending {
            upsert
                .execute(params![
                    to_i64(record.id),
                    record.status.name(),
                    record.expires_at.map(timestamp_i64)
                ])
                .map_err(map_error)?;
        }
    }
    if !batch.balances.is_empty() {
        let mut insert = connection
            .prepare_cached(
                "INSERT INTO account_balances (account_id, timestamp, debits_pending,
                    debits_posted, credits_pending, credits_posted)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(map_error)?;
        for balance in batch.balances {
            insert
                .execute(params![
                    to_i64(balance.account_id),
                    timestamp_i64(balance.timestamp),
                    to_i64(balance.debits_pending),
                    to_i64(balance.debits_posted),
                    to_i64(balance.credits_pending),
                    to_i64(balance.credits_posted),
                ])
                .map_err(map_error)?;
        }
    }
    let round_robin = (batch.sequence % HISTORY_SLICES) as usize;
    for (slice, entries) in recent.iter_mut().enumerate() {
        if slice == round_robin || entries.len() as u64 > SLICE_RECENT_POSTINGS_MAX {
            merge_history_slice(connection, slice as i64, entries)?;
            entries.clear();
        }
    }
    let advanced = connection
        .prepare_cached(
            "UPDATE ledger_head SET batches = ?1, timestamp_last = ?2,
                transfer_id_max = max(transfer_id_max, ?3)
             WHERE singleton = 1 AND batches = ?1 - 1 AND timestamp_last < ?2",
        )
        .map_err(map_error)?
        .execute(params![
            i64::try_from(batch.sequence).expect("batch sequence fits i64"),
            timestamp_i64(batch.timestamp_last),
            to_i64(transfer_id_max)
        ])
        .map_err(map_error)?;
    if advanced != 1 {
        return Err(StoreError::new(
            StoreErrorKind::Refused,
            format!(
                "batch {} does not follow the store's last batch (another writer, or a stale sequencer)",
                batch.sequence
            ),
        ));
    }
    Ok(())
}

/// Rows bound per multi-row statement: fewer statement executions for the same rows.
const ROWS_PER_STATEMENT: usize = 64;

/// A value bound to a statement without copying.
#[derive(Debug, Clone, Copy)]
enum Param<'a> {
    Integer(i64),
    Text(&'a str),
    Null,
}

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Param::Integer(value) => ValueRef::Integer(*value),
            Param::Text(text) => ValueRef::Text(text.as_bytes()),
            Param::Null => ValueRef::Null,
        }))
    }
}

fn values_sql(head: &str, tail: &str, columns: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(","));
    format!("{head}{}{tail}", vec![row; rows].join(","))
}

/// Runs `head VALUES (...), (...) tail` for all `rows`, many rows per statement; returns the
/// number of rows changed.
fn execute_rows<const N: usize>(
    connection: &Connection,
    head: &str,
    tail: &str,
    rows: &[[Param<'_>; N]],
) -> StoreResult<usize> {
    let mut changed = 0;
    let mut chunks = rows.chunks_exact(ROWS_PER_STATEMENT);
    if rows.len() >= ROWS_PER_STATEMENT {
        let mut statement = connection
            .prepare_cached(&values_sql(head, tail, N, ROWS_PER_STATEMENT))
            .map_err(map_error)?;
        for chunk in &mut chunks {
            for (row_index, row) in chunk.iter().enumerate() {
                for (column, value) in row.iter().enumerate() {
                    statement
                        .raw_bind_parameter(row_index * N + column + 1, value)
                        .map_err(map_error)?;
                }
            }
            changed += statement.raw_execute().map_err(map_error)?;
        }
    }
    let remainder = chunks.remainder();
    if !remainder.is_empty() {
        let mut statement = connection
            .prepare_cached(&values_sql(head, tail, N, 1))
            .map_err(map_error)?;
        for row in remainder {
            for (column, value) in row.iter().enumerate() {
                statement
                    .raw_bind_parameter(column + 1, value)
                    .map_err(map_error)?;
            }
            changed += statement.raw_execute().map_err(map_error)?;
        }
    }
    Ok(changed)
}

/// Moves one slice of recent postings (`entries`, in commit order) into the clustered history
/// table, packed per account.
fn merge_history_slice(
    connection: &Connection,
    slice: i64,
    entries: &mut [[i64; 3]],
) -> StoreResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    // Stable: within an account, postings stay in timestamp order.
    entries.sort_by_key(|entry| entry[0]);
    let mut insert = connection
        .prepare_cached(
            "INSERT INTO account_postings (account_id, timestamp_first, timestamp_last, postings)
             VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(map_error)?;
    let mut pairs: Vec<[i64; 2]> = Vec::with_capacity(postings::POSTINGS_PER_ROW_MAX);
    for account in entries.chunk_by(|left, right| left[0] == right[0]) {
        for run in account.chunks(postings::POSTINGS_PER_ROW_MAX) {
            pairs.clear();
            pairs.extend(run.iter().map(|entry| [entry[1], entry[2]]));
            let first = pairs[0][0];
            let last = pairs[pairs.len() - 1][0];
            insert
                .execute(params![run[0][0], first, last, postings::encode(&pairs)])
                .map_err(map_error)?;
        }
    }
    connection
        .prepare_cached("DELETE FROM account_postings_recent WHERE slice = ?1")
        .map_err(map_error)?
        .execute([slice])
        .map_err(map_error)?;
    Ok(())
}
