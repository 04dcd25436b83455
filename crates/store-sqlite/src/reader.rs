//! Reads of committed state, on a connection that refuses writes (`query_only`).

use ledger::{
    Account, AccountBalance, AccountFlags, Currency, PendingStatus, Transfer, TransferFlags,
};
use rusqlite::{params, Connection, OptionalExtension, Row};
use store::{
    from_i64, CurrencyTotals, HistoryCounts, HistoryQuery, LedgerHead, LogCheckpoint, LogLeaf,
    Registration, RegistrationKind, StoreError, StoreReader, StoreResult, StoredRegistration,
    StoredTransfer, HISTORY_PAGE_LIMIT_MAX, LEAVES_RANGE_MAX,
};

use crate::history::{history_slice, HISTORY_SLICES};
use crate::{map_error, postings};

/// A slice's recent postings (`?1`) not yet merged, of batches the ledger has committed (up to
/// `?2`), in order: one lookup per batch, by the row's id (`batch * ?3 + slice`).
const RECENT_POSTINGS_OF_SLICE: &str = "
    WITH RECURSIVE wanted (id) AS (
        SELECT (merged_through + 1) * ?3 + ?1 FROM history.history_slices
         WHERE slice = ?1 AND merged_through < ?2
        UNION ALL
        SELECT id + ?3 FROM wanted WHERE id + ?3 <= ?2 * ?3 + ?1)
    SELECT r.postings FROM wanted JOIN history.account_postings_recent r ON r.id = wanted.id
     ORDER BY r.id";

pub(crate) struct SqliteReader {
    connection: Connection,
}

impl SqliteReader {
    pub(crate) fn new(connection: Connection) -> Self {
        SqliteReader { connection }
    }
}

const ACCOUNT_COLUMNS: &str = "id, currency, kind, flags, user_data, debits_pending, \
     debits_posted, credits_pending, credits_posted, timestamp";
const TRANSFER_COLUMNS: &str = "t.id, t.debit_account_id, t.credit_account_id, t.amount, \
     t.currency, t.pending_id, t.user_data, t.timeout_seconds, t.kind, t.flags, t.timestamp";

/// A value read from a row, or why it cannot be trusted.
type Decoded<T> = Result<T, StoreError>;

fn currency(text: &str) -> Decoded<Currency> {
    Currency::parse(text).map_err(|error| StoreError::corrupt(error.to_string()))
}

fn timestamp(value: i64) -> Decoded<u64> {
    u64::try_from(value).map_err(|_| StoreError::corrupt(format!("negative timestamp {value}")))
}

fn account_from_row(row: &Row<'_>) -> rusqlite::Result<Decoded<Account>> {
    let currency_text: String = row.get(1)?;
    let flags_bits: u16 = row.get(3)?;
    let values: [i64; 6] = [
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
    ];
    let id: i64 = row.get(0)?;
    let kind: u16 = row.get(2)?;
    Ok((|| {
        Ok(Account {
            id: from_i64(id, "account id")?,
            currency: currency(&currency_text)?,
            kind,
            flags: AccountFlags::from_bits(flags_bits).ok_or_else(|| {
                StoreError::corrupt(format!("unknown account flags {flags_bits}"))
            })?,
            user_data: from_i64(values[0], "user_data")?,
            debits_pending: from_i64(values[1], "debits_pending")?,
            debits_posted: from_i64(values[2], "debits_posted")?,
            credits_pending: from_i64(values[3], "credits_pending")?,
            credits_posted: from_i64(values[4], "credits_posted")?,
            timestamp: timestamp(values[5])?,
        })
    })())
}

/// Reads the columns of `TRANSFER_COLUMNS` starting at `offset`.
fn transfer_from_row(row: &Row<'_>) -> rusqlite::Result<Decoded<Transfer>> {
    let integers: [i64; 4] = [row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?];
    // Borrowed from the row: no allocation for the three letters of every transfer read.
    let currency = currency(row.get_ref(4)?.as_str()?);
    let pending_id: Option<i64> = row.get(5)?;
    let user_data: i64 = row.get(6)?;
    let timeout_seconds: u32 = row.get(7)?;
    let kind: u16 = row.get(8)?;
    let flags_bits: u16 = row.get(9)?;
    let timestamp_value: i64 = row.get(10)?;
    Ok((|| {
        Ok(Transfer {
            id: from_i64(integers[0], "transfer id")?,
            debit_account_id: from_i64(integers[1], "debit_account_id")?,
            credit_account_id: from_i64(integers[2], "credit_account_id")?,
            amount: from_i64(integers[3], "amount")?,
            currency: currency?,
            pending_id: from_i64(pending_id.unwrap_or(0), "pending_id")?,
            user_data: from_i64(user_data, "user_data")?,
            timeout_seconds,
            kind,
            flags: TransferFlags::from_bits(flags_bits).ok_or_else(|| {
                StoreError::corrupt(format!("unknown transfer flags {flags_bits}"))
            })?,
            timestamp: timestamp(timestamp_value)?,
        })
    })())
}

/// Ids closer than this belong to one run, read by a range scan.
const RUN_GAP_MAX: i64 = 16;
/// Runs shorter than this are read id by id.
const RUN_LENGTH_MIN: usize = 8;

/// A row of `SELECT {TRANSFER_COLUMNS}, p.status, t.leaf_index`.
fn stored_transfer_from_row(row: &Row<'_>) -> StoreResult<StoredTransfer> {
    let transfer = transfer_from_row(row).map_err(map_error)??;
    let status: Option<String> = row.get(11).map_err(map_error)?;
    let leaf_index: Option<i64> = row.get(12).map_err(map_error)?;
    let leaf_index = leaf_index.ok_or_else(|| {
        StoreError::corrupt(format!(
            "transfer {} has no leaf in the trust log",
            transfer.id
        ))
    })?;
    Ok(StoredTransfer {
        transfer,
        pending_status: pending_status(status)?,
        leaf_index: u64::try_from(leaf_index)
            .map_err(|_| StoreError::corrupt("negative leaf index"))?,
    })
}

fn pending_status(text: Option<String>) -> Decoded<Option<PendingStatus>> {
    match text.as_deref() {
        None => Ok(None),
        Some("pending") => Ok(Some(PendingStatus::Pending)),
        Some("posted") => Ok(Some(PendingStatus::Posted)),
        Some("voided") => Ok(Some(PendingStatus::Voided)),
        Some("expired") => Ok(Some(PendingStatus::Expired)),
        Some(other) => Err(StoreError::corrupt(format!(
            "unknown pending status {other:?}"
        ))),
    }
}

fn clamp_limit(limit: usize) -> i64 {
    limit.min(HISTORY_PAGE_LIMIT_MAX) as i64
}

impl StoreReader for SqliteReader {
    fn head(&mut self) -> StoreResult<LedgerHead> {
        let (batches, timestamp_last, transfer_id_max, log_size, registration_id_max): (
            i64,
            i64,
            i64,
            i64,
            i64,
        ) = self
            .connection
            .query_row(
                "SELECT batches, timestamp_last, transfer_id_max, log_size,
                    (SELECT coalesce(max(id), 0) FROM registrations)
                 FROM ledger_head",
                [],
                |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                },
            )
            .map_err(map_error)?;
        Ok(LedgerHead {
            batches: u64::try_from(batches).map_err(|_| StoreError::corrupt("negative batches"))?,
            timestamp_last: timestamp(timestamp_last)?,
            transfer_id_max: from_i64(transfer_id_max, "transfer_id_max")?,
            log_size: u64::try_from(log_size)
                .map_err(|_| StoreError::corrupt("negative log size"))?,
            registration_id_max: u64::try_from(registration_id_max)
                .map_err(|_| StoreError::corrupt("negative registration id"))?,
        })
    }

    fn load_accounts(&mut self, ids: &[u128], out: &mut Vec<Account>) -> StoreResult<()> {
        let mut statement = self
            .connection
            .prepare_cached(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?1"
            ))
            .map_err(map_error)?;
        for id in ids {
            let Ok(id) = i64::try_from(*id) else { continue };
            if let Some(account) = statement
                .query_row([id], account_from_row)
                .optional()
                .map_err(map_error)?
            {
                out.push(account?);
            }
        }
        Ok(())
    }

    fn load_transfers(&mut self, ids: &[u128], out: &mut Vec<StoredTransfer>) -> StoreResult<()> {
        // Ids in a batch often come in runs (a client's request, time-ordered ids): a run is
        // read with one range scan instead of one lookup per id.
        let mut sorted: Vec<i64> = ids
            .iter()
            .filter_map(|id| i64::try_from(*id).ok())
            .collect();
        sorted.sort_unstable();
        sorted.dedup();
        let mut start = 0;
        while start < sorted.len() {
            let mut end = start + 1;
            while end < sorted.len() && sorted[end] - sorted[end - 1] <= RUN_GAP_MAX {
                end += 1;
            }
            let run = &sorted[start..end];
            if run.len() >= RUN_LENGTH_MIN {
                let mut statement = self
                    .connection
                    .prepare_cached(&format!(
                        "SELECT {TRANSFER_COLUMNS}, p.status, t.leaf_index FROM transfers t
                         LEFT JOIN pending_transfers p ON p.id = t.id
                         WHERE t.id BETWEEN ?1 AND ?2"
                    ))
                    .map_err(map_error)?;
                let mut rows = statement
                    .query([run[0], run[run.len() - 1]])
                    .map_err(map_error)?;
                while let Some(row) = rows.next().map_err(map_error)? {
                    let id: i64 = row.get(0).map_err(map_error)?;
                    if run.binary_search(&id).is_ok() {
                        out.push(stored_transfer_from_row(row)?);
                    }
                }
            } else {
                let mut statement = self
                    .connection
                    .prepare_cached(&format!(
                        "SELECT {TRANSFER_COLUMNS}, p.status, t.leaf_index FROM transfers t
                         LEFT JOIN pending_transfers p ON p.id = t.id WHERE t.id = ?1"
                    ))
                    .map_err(map_error)?;
                for id in run {
                    let mut rows = statement.query([id]).map_err(map_error)?;
                    if let Some(row) = rows.next().map_err(map_error)? {
                        out.push(stored_transfer_from_row(row)?);
                    }
                }
            }
            start = end;
        }
        Ok(())
    }

    fn account(&mut self, id: u128) -> StoreResult<Option<Account>> {
        let mut found = Vec::with_capacity(1);
        self.load_accounts(&[id], &mut found)?;
        Ok(found.pop())
    }

    fn transfer(&mut self, id: u128) -> StoreResult<Option<StoredTransfer>> {
        let mut found = Vec::with_capacity(1);
        self.load_transfers(&[id], &mut found)?;
        Ok(found.pop())
    }

    fn account_transfers(&mut self, query: HistoryQuery) -> StoreResult<Vec<Transfer>> {
        // One snapshot for both tables: a merge that commits between the two reads would
        // otherwise move postings out of the recent rows after the merged ones were read.
        self.connection.execute_batch("BEGIN").map_err(map_error)?;
        let transfers = self.account_transfers_in_snapshot(query);
        let ended = self.connection.execute_batch("COMMIT").map_err(map_error);
        let transfers = transfers?;
        ended?;
        Ok(transfers)
    }

    fn account_balances(&mut self, query: HistoryQuery) -> StoreResult<Vec<AccountBalance>> {
        let Ok(account_id) = i64::try_from(query.account_id) else {
            return Ok(Vec::new());
        };
        let after = i64::try_from(query.after_timestamp).unwrap_or(i64::MAX);
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT timestamp, debits_pending, debits_posted, credits_pending, credits_posted
                 FROM account_balances WHERE account_id = ?1 AND timestamp > ?2
                 ORDER BY timestamp LIMIT ?3",
            )
            .map_err(map_error)?;
        let rows = statement
            .query_map(
                params![account_id, after, clamp_limit(query.limit)],
                |row| {
                    Ok([
                        row.get::<_, i64>(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ])
                },
            )
            .map_err(map_error)?;
        let mut balances = Vec::new();
        for row in rows {
            let values = row.map_err(map_error)?;
            balances.push(AccountBalance {
                account_id: query.account_id,
                timestamp: timestamp(values[0])?,
                debits_pending: from_i64(values[1], "debits_pending")?,
                debits_posted: from_i64(values[2], "debits_posted")?,
                credits_pending: from_i64(values[3], "credits_pending")?,
                credits_posted: from_i64(values[4], "credits_posted")?,
            });
        }
        Ok(balances)
    }

    fn pending_due(&mut self, now: u64, limit: usize) -> StoreResult<Vec<u128>> {
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT id FROM pending_transfers
                 WHERE status = 'pending' AND expires_at IS NOT NULL AND expires_at <= ?1
                 ORDER BY expires_at LIMIT ?2",
            )
            .map_err(map_error)?;
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let rows = statement
            .query_map(
                params![now, limit.min(ledger::BATCH_EXPIRIES_MAX) as i64],
                |row| row.get::<_, i64>(0),
            )
            .map_err(map_error)?;
        let mut ids = Vec::new();
        for row in rows {
            ids.push(from_i64(row.map_err(map_error)?, "pending transfer id")?);
        }
        Ok(ids)
    }

    fn currency_totals(&mut self) -> StoreResult<Vec<CurrencyTotals>> {
        // Summed here in u128 rather than with SQL sum(), which stops at 2^63 - 1.
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT currency, debits_pending, debits_posted, credits_pending, credits_posted
                 FROM accounts ORDER BY currency",
            )
            .map_err(map_error)?;
        let mut rows = statement.query([]).map_err(map_error)?;
        let mut totals: Vec<CurrencyTotals> = Vec::new();
        while let Some(row) = rows.next().map_err(map_error)? {
            let code: String = row.get(0).map_err(map_error)?;
            let currency = currency(&code)?;
            let mut values = [0u128; 4];
            for (index, value) in values.iter_mut().enumerate() {
                *value = from_i64(row.get(index + 1).map_err(map_error)?, "balance")?;
            }
            if totals.last().is_none_or(|last| last.currency != currency) {
                totals.push(CurrencyTotals {
                    currency,
                    accounts: 0,
                    debits_pending: 0,
                    debits_posted: 0,
                    credits_pending: 0,
                    credits_posted: 0,
                });
            }
            let entry = totals.last_mut().expect("pushed above");
            entry.accounts += 1;
            entry.debits_pending += values[0];
            entry.debits_posted += values[1];
            entry.credits_pending += values[2];
            entry.credits_posted += values[3];
        }
        Ok(totals)
    }

    fn accounts_violating_flags(&mut self, limit: usize) -> StoreResult<Vec<u128>> {
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT id FROM accounts
                 WHERE (flags & ?1 != 0 AND debits_posted + debits_pending > credits_posted)
                    OR (flags & ?2 != 0 AND credits_posted + credits_pending > debits_posted)
                    OR min(debits_pending, debits_posted, credits_pending, credits_posted) < 0
                 LIMIT ?3",
            )
            .map_err(map_error)?;
        let rows = statement
            .query_map(
                params![
                    AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS.bits(),
                    AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS.bits(),
                    limit as i64
                ],
                |row| row.get::<_, i64>(0),
            )
            .map_err(map_error)?;
        let mut ids = Vec::new();
        for row in rows {
            ids.push(from_i64(row.map_err(map_error)?, "account id")?);
        }
        Ok(ids)
    }

    fn history_counts(&mut self) -> StoreResult<HistoryCounts> {
        let committed_batches = i64::try_from(self.head()?.batches).unwrap_or(i64::MAX);
        let transfers: i64 = self
            .connection
            .query_row("SELECT count(*) FROM transfers", [], |row| row.get(0))
            .map_err(map_error)?;
        // Counted here rather than with json_array_length: the rows are this store's own packed
        // arrays of arrays (`postings.rs`), so a posting is one '[' after the outer one, and a
        // byte count over the text costs a fraction of parsing it.
        let mut postings = 0u64;
        for (sql, parameters) in [
            ("SELECT postings FROM history.account_postings", None),
            (
                "SELECT r.postings FROM history.account_postings_recent r
                   JOIN history.history_slices s ON s.slice = r.slice
                  WHERE r.batch > s.merged_through AND r.batch <= ?1",
                Some(committed_batches),
            ),
        ] {
            let mut statement = self.connection.prepare_cached(sql).map_err(map_error)?;
            let mut rows = match parameters {
                Some(batches) => statement.query([batches]),
                None => statement.query([]),
            }
            .map_err(map_error)?;
            while let Some(row) = rows.next().map_err(map_error)? {
                let text = row
                    .get_ref(0)
                    .map_err(map_error)?
                    .as_bytes()
                    .map_err(|error| map_error(error.into()))?;
                let brackets = text.iter().filter(|byte| **byte == b'[').count() as u64;
                postings += brackets.saturating_sub(1);
            }
        }
        Ok(HistoryCounts {
            transfers: u64::try_from(transfers).unwrap_or(0),
            postings,
        })
    }

    fn log_tile(&mut self, level: u8, index: u64, width: u16) -> StoreResult<Option<Vec<u8>>> {
        let Ok(index) = i64::try_from(index) else {
            return Ok(None);
        };
        let found: Option<(i64, Vec<u8>)> = self
            .connection
            .prepare_cached(
                "SELECT width, hashes FROM log_tiles WHERE level = ?1 AND tile_index = ?2",
            )
            .map_err(map_error)?
            .query_row(params![level, index], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()
            .map_err(map_error)?;
        let Some((stored_width, mut hashes)) = found else {
            return Ok(None);
        };
        if stored_width < i64::from(width) {
            return Ok(None);
        }
        if hashes.len() != usize::try_from(stored_width).unwrap_or(0) * 32 {
            return Err(StoreError::corrupt(format!(
                "log tile {level}/{index} has the wrong length"
            )));
        }
        hashes.truncate(usize::from(width) * 32);
        Ok(Some(hashes))
    }

    fn latest_checkpoint(&mut self) -> StoreResult<Option<LogCheckpoint>> {
        let mut found = self.checkpoints_where("ORDER BY size DESC LIMIT 1")?;
        Ok(found.pop())
    }

    fn checkpoints(&mut self) -> StoreResult<Vec<LogCheckpoint>> {
        self.checkpoints_where("ORDER BY size")
    }

    fn visit_transfers(
        &mut self,
        ids: std::ops::RangeInclusive<u128>,
        visit: &mut dyn FnMut(&StoredTransfer),
    ) -> StoreResult<()> {
        let low = i64::try_from(*ids.start()).unwrap_or(i64::MAX);
        let high = i64::try_from(*ids.end()).unwrap_or(i64::MAX);
        // The statuses first (one small table), so the big scan needs no join.
        let mut statuses: ledger::IdMap<PendingStatus> = ledger::IdMap::default();
        {
            let mut statement = self
                .connection
                .prepare_cached("SELECT id, status FROM pending_transfers")
                .map_err(map_error)?;
            let mut rows = statement.query([]).map_err(map_error)?;
            while let Some(row) = rows.next().map_err(map_error)? {
                let id: i64 = row.get(0).map_err(map_error)?;
                let status: Option<String> = row.get(1).map_err(map_error)?;
                if let Some(status) = pending_status(status)? {
                    statuses.insert(from_i64(id, "pending transfer id")?, status);
                }
            }
        }
        let mut statement = self
            .connection
            .prepare_cached(&format!(
                "SELECT {TRANSFER_COLUMNS}, t.leaf_index FROM transfers t
                  WHERE t.id BETWEEN ?1 AND ?2"
            ))
            .map_err(map_error)?;
        let mut rows = statement.query([low, high]).map_err(map_error)?;
        while let Some(row) = rows.next().map_err(map_error)? {
            let transfer = transfer_from_row(row).map_err(map_error)??;
            let leaf_index: Option<i64> = row.get(11).map_err(map_error)?;
            let leaf_index = leaf_index
                .and_then(|index| u64::try_from(index).ok())
                .ok_or_else(|| {
                    StoreError::corrupt(format!("transfer {} has no leaf", transfer.id))
                })?;
            visit(&StoredTransfer {
                pending_status: statuses.get(&transfer.id).copied(),
                transfer,
                leaf_index,
            });
        }
        Ok(())
    }

    fn transfer_id_min(&mut self) -> StoreResult<u128> {
        let min: Option<i64> = self
            .connection
            .query_row("SELECT min(id) FROM transfers", [], |row| row.get(0))
            .map_err(map_error)?;
        from_i64(min.unwrap_or(0), "transfer id")
    }

    fn visit_accounts(&mut self, visit: &mut dyn FnMut(&Account)) -> StoreResult<()> {
        let mut statement = self
            .connection
            .prepare_cached(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts"))
            .map_err(map_error)?;
        let mut rows = statement.query([]).map_err(map_error)?;
        while let Some(row) = rows.next().map_err(map_error)? {
            visit(&account_from_row(row).map_err(map_error)??);
        }
        Ok(())
    }

    fn checkpoint(&mut self, size: u64) -> StoreResult<Option<LogCheckpoint>> {
        let Ok(size) = i64::try_from(size) else {
            return Ok(None);
        };
        Ok(self
            .checkpoints_where(&format!("WHERE size = {size}"))?
            .pop())
    }

    fn last_audit(&mut self) -> StoreResult<Option<(u64, [u8; 32])>> {
        let found: Option<(i64, Vec<u8>)> = self
            .connection
            .query_row(
                "SELECT size, root FROM log_audits ORDER BY size DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(map_error)?;
        found
            .map(|(size, root)| {
                Ok((
                    leaf_number(size)?,
                    root.try_into()
                        .map_err(|_| StoreError::corrupt("an audited root is not 32 bytes"))?,
                ))
            })
            .transpose()
    }

    fn cosignatures(&mut self, size: u64) -> StoreResult<Vec<String>> {
        let Ok(size) = i64::try_from(size) else {
            return Ok(Vec::new());
        };
        let mut statement = self
            .connection
            .prepare_cached("SELECT line FROM log_cosignatures WHERE size = ?1 ORDER BY witness")
            .map_err(map_error)?;
        let lines = statement
            .query_map([size], |row| row.get::<_, String>(0))
            .map_err(map_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_error)?;
        Ok(lines)
    }

    fn registration(&mut self, id: u64) -> StoreResult<Option<StoredRegistration>> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(None);
        };
        self.registrations_where("WHERE id = ?1", &[&id])
            .map(|mut found| found.pop())
    }

    fn registration_by_key(
        &mut self,
        registrant: u128,
        idempotency_key: &str,
    ) -> StoreResult<Option<StoredRegistration>> {
        let Ok(registrant) = i64::try_from(registrant) else {
            return Ok(None);
        };
        self.registrations_where(
            "WHERE registrant = ?1 AND idempotency_key = ?2",
            &[&registrant, &idempotency_key],
        )
        .map(|mut found| found.pop())
    }

    fn visit_registrations(
        &mut self,
        visit: &mut dyn FnMut(&StoredRegistration),
    ) -> StoreResult<()> {
        let mut statement = self
            .connection
            .prepare_cached(&format!(
                "SELECT {REGISTRATION_COLUMNS} FROM registrations ORDER BY id"
            ))
            .map_err(map_error)?;
        let mut rows = statement.query([]).map_err(map_error)?;
        while let Some(row) = rows.next().map_err(map_error)? {
            visit(&registration_from_row(row)?);
        }
        Ok(())
    }

    fn credential(&mut self, id: u64) -> StoreResult<Option<store::Credential>> {
        crate::admin::load_credential(&self.connection, id)
    }

    fn leaves(&mut self, from: u64, to: u64, out: &mut Vec<(u64, LogLeaf)>) -> StoreResult<()> {
        if from >= to {
            return Ok(());
        }
        let to = to.min(from.saturating_add(LEAVES_RANGE_MAX));
        let (Ok(from), Ok(to)) = (i64::try_from(from), i64::try_from(to)) else {
            return Ok(());
        };
        let start = out.len();
        // The batches' runs of leaves that overlap [from, to): which transfer each leaf is.
        let mut wanted: Vec<(u64, u128)> = Vec::new();
        {
            let mut statement = self
                .connection
                .prepare_cached(
                    "SELECT leaf_first, transfer_ids FROM log_leaf_runs
                      WHERE leaf_first < ?2
                        AND leaf_first >= coalesce(
                            (SELECT max(leaf_first) FROM log_leaf_runs WHERE leaf_first <= ?1), 0)
                      ORDER BY leaf_first",
                )
                .map_err(map_error)?;
            let mut rows = statement.query([from, to]).map_err(map_error)?;
            while let Some(row) = rows.next().map_err(map_error)? {
                let first = leaf_number(row.get(0).map_err(map_error)?)?;
                let ids = row
                    .get_ref(1)
                    .map_err(map_error)?
                    .as_blob()
                    .map_err(|error| map_error(error.into()))?;
                if ids.len() % 8 != 0 {
                    return Err(StoreError::corrupt(format!(
                        "the leaf run at {first} is not a list of 8-byte ids"
                    )));
                }
                for (position, id) in ids.chunks_exact(8).enumerate() {
                    let leaf = first + position as u64;
                    if (from as u64..to as u64).contains(&leaf) {
                        let id = i64::from_le_bytes(id.try_into().expect("8 bytes"));
                        wanted.push((leaf, from_i64(id, "transfer id")?));
                    }
                }
            }
        }
        let ids: Vec<u128> = wanted.iter().map(|(_, id)| *id).collect();
        let mut found = Vec::with_capacity(ids.len());
        self.load_transfers(&ids, &mut found)?;
        let by_id: ledger::IdMap<Transfer> = found
            .into_iter()
            .map(|stored| (stored.transfer.id, stored.transfer))
            .collect();
        for (leaf, id) in wanted {
            if let Some(transfer) = by_id.get(&id) {
                out.push((leaf, LogLeaf::Transfer(*transfer)));
            }
        }
        for stored in
            self.registrations_where("WHERE leaf_index >= ?1 AND leaf_index < ?2", &[&from, &to])?
        {
            out.push((
                stored.leaf_index,
                LogLeaf::Registration(stored.registration),
            ));
        }
        out[start..].sort_unstable_by_key(|(index, _)| *index);
        Ok(())
    }
}

const REGISTRATION_COLUMNS: &str =
    "id, kind, digest, registrant, reference, timestamp, leaf_index, idempotency_key";

fn leaf_number(value: i64) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| StoreError::corrupt("negative leaf index"))
}

/// A row of `SELECT {REGISTRATION_COLUMNS}`.
fn registration_from_row(row: &Row<'_>) -> StoreResult<StoredRegistration> {
    let id: i64 = row.get(0).map_err(map_error)?;
    let kind: i64 = row.get(1).map_err(map_error)?;
    let digest: Vec<u8> = row.get(2).map_err(map_error)?;
    let registrant: i64 = row.get(3).map_err(map_error)?;
    let reference: String = row.get(4).map_err(map_error)?;
    let timestamp_value: i64 = row.get(5).map_err(map_error)?;
    let leaf_index: i64 = row.get(6).map_err(map_error)?;
    let idempotency_key: String = row.get(7).map_err(map_error)?;
    let kind = u16::try_from(kind)
        .ok()
        .and_then(RegistrationKind::from_code)
        .ok_or_else(|| StoreError::corrupt(format!("registration {id} has unknown kind {kind}")))?;
    Ok(StoredRegistration {
        registration: Registration {
            id: u64::try_from(id).map_err(|_| StoreError::corrupt("negative registration id"))?,
            kind,
            digest: digest
                .try_into()
                .map_err(|_| StoreError::corrupt(format!("registration {id}: digest length")))?,
            registrant: from_i64(registrant, "registrant")?,
            reference,
            timestamp: timestamp(timestamp_value)?,
        },
        leaf_index: leaf_number(leaf_index)?,
        idempotency_key,
    })
}

impl SqliteReader {
    fn account_transfers_in_snapshot(&mut self, query: HistoryQuery) -> StoreResult<Vec<Transfer>> {
        let Ok(account_id) = i64::try_from(query.account_id) else {
            return Ok(Vec::new());
        };
        let limit = query.limit.min(HISTORY_PAGE_LIMIT_MAX);
        let after = i64::try_from(query.after_timestamp).unwrap_or(i64::MAX);
        // Only batches the ledger has committed: the history may be indexing the next one.
        let committed_batches = i64::try_from(self.head()?.batches).unwrap_or(i64::MAX);
        let mut ids: Vec<u128> = Vec::with_capacity(limit);
        {
            let mut merged = self
                .connection
                .prepare_cached(
                    "SELECT postings FROM history.account_postings
                     WHERE account_id = ?1 AND timestamp_last > ?2 ORDER BY timestamp_first",
                )
                .map_err(map_error)?;
            let mut rows = merged
                .query(params![account_id, after])
                .map_err(map_error)?;
            let mut pairs: Vec<[i64; 2]> = Vec::new();
            while ids.len() < limit {
                let Some(row) = rows.next().map_err(map_error)? else {
                    break;
                };
                pairs.clear();
                decode_postings(row.get_ref(0).map_err(map_error)?.as_str().ok(), &mut pairs)?;
                for [timestamp, transfer_id] in &pairs {
                    if *timestamp > after && ids.len() < limit {
                        ids.push(from_i64(*transfer_id, "transfer id")?);
                    }
                }
            }
        }
        if ids.len() < limit {
            let mut recent = self
                .connection
                .prepare_cached(RECENT_POSTINGS_OF_SLICE)
                .map_err(map_error)?;
            let mut rows = recent
                .query([
                    history_slice(query.account_id),
                    committed_batches,
                    HISTORY_SLICES as i64,
                ])
                .map_err(map_error)?;
            let mut entries: Vec<[i64; 3]> = Vec::new();
            while ids.len() < limit {
                let Some(row) = rows.next().map_err(map_error)? else {
                    break;
                };
                entries.clear();
                decode_postings(
                    row.get_ref(0).map_err(map_error)?.as_str().ok(),
                    &mut entries,
                )?;
                for [entry_account, timestamp, transfer_id] in &entries {
                    if *entry_account == account_id && *timestamp > after && ids.len() < limit {
                        ids.push(from_i64(*transfer_id, "transfer id")?);
                    }
                }
            }
        }
        let mut stored = Vec::with_capacity(ids.len());
        self.load_transfers(&ids, &mut stored)?;
        if stored.len() != ids.len() {
            return Err(StoreError::corrupt(format!(
                "account {} has postings for transfers that are not in the store",
                query.account_id
            )));
        }
        Ok(stored.into_iter().map(|stored| stored.transfer).collect())
    }

    fn registrations_where(
        &mut self,
        clause: &str,
        parameters: &[&dyn rusqlite::ToSql],
    ) -> StoreResult<Vec<StoredRegistration>> {
        let mut statement = self
            .connection
            .prepare_cached(&format!(
                "SELECT {REGISTRATION_COLUMNS} FROM registrations {clause}"
            ))
            .map_err(map_error)?;
        let mut rows = statement.query(parameters).map_err(map_error)?;
        let mut found = Vec::new();
        while let Some(row) = rows.next().map_err(map_error)? {
            found.push(registration_from_row(row)?);
        }
        Ok(found)
    }

    fn checkpoints_where(&mut self, clause: &str) -> StoreResult<Vec<LogCheckpoint>> {
        let mut statement = self
            .connection
            .prepare_cached(&format!(
                "SELECT size, root, note, timestamp FROM log_checkpoints {clause}"
            ))
            .map_err(map_error)?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })
            .map_err(map_error)?;
        let mut checkpoints = Vec::new();
        for row in rows {
            let (size, root, note, signed_at) = row.map_err(map_error)?;
            checkpoints.push(LogCheckpoint {
                size: u64::try_from(size)
                    .map_err(|_| StoreError::corrupt("negative checkpoint size"))?,
                root: root
                    .try_into()
                    .map_err(|_| StoreError::corrupt("a checkpoint root is not 32 bytes"))?,
                note,
                timestamp: timestamp(signed_at)?,
            });
        }
        Ok(checkpoints)
    }
}

fn decode_postings<const N: usize>(text: Option<&str>, out: &mut Vec<[i64; N]>) -> StoreResult<()> {
    text.and_then(|text| postings::decode(text, out))
        .ok_or_else(|| StoreError::corrupt("the history index holds a malformed postings row"))
}
