//! Reads of committed state. Every read is one statement (so it sees one snapshot), prepared
//! once per connection; lists of ids travel as one array, not one query per id.

use ledger::{
    Account, AccountBalance, AccountFlags, Currency, PendingStatus, Transfer, TransferFlags,
};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::Row;
use store::{
    from_i64, Credential, CurrencyTotals, HistoryCounts, HistoryQuery, LedgerHead, LogCheckpoint,
    LogLeaf, Registration, RegistrationKind, StoreError, StoreReader, StoreResult,
    StoredRegistration, StoredTransfer, HISTORY_PAGE_LIMIT_MAX, LEAVES_RANGE_MAX,
};

use crate::pool::PooledClient;
use crate::writer::history_slice;
use crate::{blocking, map_error, signed, unsigned};

pub(crate) struct PostgresReader {
    client: PooledClient,
}

impl PostgresReader {
    pub(crate) fn new(client: PooledClient) -> Self {
        PostgresReader { client }
    }

    fn rows(
        &mut self,
        sql: &'static str,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Vec<Row>> {
        let statement = self.client.statement(sql)?;
        self.client.query(&statement, parameters).map_err(map_error)
    }

    /// Calls `visit` with each row as it arrives, without holding the whole result.
    fn each_row(
        &mut self,
        sql: &'static str,
        parameters: &[&(dyn ToSql + Sync)],
        visit: &mut dyn FnMut(&Row) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let statement = self.client.statement(sql)?;
        let client = self.client.client();
        let mut rows = blocking(|| client.query_raw(&statement, parameters.iter().copied()))
            .map_err(map_error)?;
        // `visit` runs here, between two driver calls: it need not be sent to another thread.
        while let Some(row) = blocking(|| rows.next()).map_err(map_error)? {
            visit(&row)?;
        }
        Ok(())
    }
}

fn get<'a, T: postgres::types::FromSql<'a>>(row: &'a Row, index: usize) -> StoreResult<T> {
    row.try_get(index).map_err(map_error)
}

fn currency(text: &str) -> StoreResult<Currency> {
    Currency::parse(text).map_err(|error| StoreError::corrupt(error.to_string()))
}

fn timestamp(value: i64) -> StoreResult<u64> {
    unsigned(value, "timestamp")
}

fn small<T: TryFrom<i32>>(value: i32, what: &str) -> StoreResult<T> {
    T::try_from(value).map_err(|_| StoreError::corrupt(format!("{what} out of range: {value}")))
}

fn account_from_row(row: &Row) -> StoreResult<Account> {
    let flags: u16 = small(get(row, 3)?, "account flags")?;
    Ok(Account {
        id: from_i64(get(row, 0)?, "account id")?,
        currency: currency(get(row, 1)?)?,
        kind: small(get(row, 2)?, "account kind")?,
        flags: AccountFlags::from_bits(flags)
            .ok_or_else(|| StoreError::corrupt(format!("unknown account flags {flags}")))?,
        user_data: from_i64(get(row, 4)?, "user_data")?,
        debits_pending: from_i64(get(row, 5)?, "debits_pending")?,
        debits_posted: from_i64(get(row, 6)?, "debits_posted")?,
        credits_pending: from_i64(get(row, 7)?, "credits_pending")?,
        credits_posted: from_i64(get(row, 8)?, "credits_posted")?,
        timestamp: timestamp(get(row, 9)?)?,
    })
}

/// The columns `transfer_from_row` reads, first in a row.
macro_rules! transfer_columns {
    () => {
        "t.id, t.debit_account_id, t.credit_account_id, t.amount, t.currency, t.pending_id, \
         t.user_data, t.timeout_seconds, t.kind, t.flags, t.timestamp"
    };
}

fn transfer_from_row(row: &Row) -> StoreResult<Transfer> {
    let pending_id: Option<i64> = get(row, 5)?;
    let timeout_seconds: i64 = get(row, 7)?;
    let flags: u16 = small(get(row, 9)?, "transfer flags")?;
    Ok(Transfer {
        id: from_i64(get(row, 0)?, "transfer id")?,
        debit_account_id: from_i64(get(row, 1)?, "debit_account_id")?,
        credit_account_id: from_i64(get(row, 2)?, "credit_account_id")?,
        amount: from_i64(get(row, 3)?, "amount")?,
        currency: currency(get(row, 4)?)?,
        pending_id: from_i64(pending_id.unwrap_or(0), "pending_id")?,
        user_data: from_i64(get(row, 6)?, "user_data")?,
        timeout_seconds: u32::try_from(timeout_seconds)
            .map_err(|_| StoreError::corrupt(format!("timeout out of range: {timeout_seconds}")))?,
        kind: small(get(row, 8)?, "transfer kind")?,
        flags: TransferFlags::from_bits(flags)
            .ok_or_else(|| StoreError::corrupt(format!("unknown transfer flags {flags}")))?,
        timestamp: timestamp(get(row, 10)?)?,
    })
}

/// A row of `SELECT transfer_columns!(), p.status, t.leaf_index`.
fn stored_transfer_from_row(row: &Row) -> StoreResult<StoredTransfer> {
    let transfer = transfer_from_row(row)?;
    Ok(StoredTransfer {
        transfer,
        pending_status: pending_status(get(row, 11)?)?,
        leaf_index: unsigned(get(row, 12)?, "leaf index")?,
    })
}

fn pending_status(text: Option<&str>) -> StoreResult<Option<PendingStatus>> {
    match text {
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

/// Ids as the store keeps them; an id beyond i64 cannot be stored, so it is simply not found.
fn stored_ids(ids: &[u128]) -> Vec<i64> {
    ids.iter()
        .filter_map(|id| i64::try_from(*id).ok())
        .collect()
}

fn limit(limit: usize) -> i64 {
    limit.min(HISTORY_PAGE_LIMIT_MAX) as i64
}

fn registration_from_row(row: &Row) -> StoreResult<StoredRegistration> {
    let id: i64 = get(row, 0)?;
    let kind: i32 = get(row, 1)?;
    let digest: &[u8] = get(row, 2)?;
    let kind = u16::try_from(kind)
        .ok()
        .and_then(RegistrationKind::from_code)
        .ok_or_else(|| StoreError::corrupt(format!("registration {id} has unknown kind {kind}")))?;
    Ok(StoredRegistration {
        registration: Registration {
            id: unsigned(id, "registration id")?,
            kind,
            digest: digest
                .try_into()
                .map_err(|_| StoreError::corrupt(format!("registration {id}: digest length")))?,
            registrant: from_i64(get(row, 3)?, "registrant")?,
            reference: get(row, 4)?,
            timestamp: timestamp(get(row, 5)?)?,
        },
        leaf_index: unsigned(get(row, 6)?, "leaf index")?,
        idempotency_key: get(row, 7)?,
    })
}

fn checkpoint_from_row(row: &Row) -> StoreResult<LogCheckpoint> {
    let root: &[u8] = get(row, 1)?;
    Ok(LogCheckpoint {
        size: unsigned(get(row, 0)?, "checkpoint size")?,
        root: root
            .try_into()
            .map_err(|_| StoreError::corrupt("a checkpoint root is not 32 bytes"))?,
        note: get(row, 2)?,
        timestamp: timestamp(get(row, 3)?)?,
    })
}

impl PostgresReader {
    fn registrations(
        &mut self,
        sql: &'static str,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Vec<StoredRegistration>> {
        self.rows(sql, parameters)?
            .iter()
            .map(registration_from_row)
            .collect()
    }

    fn checkpoints_of(
        &mut self,
        sql: &'static str,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Vec<LogCheckpoint>> {
        self.rows(sql, parameters)?
            .iter()
            .map(checkpoint_from_row)
            .collect()
    }
}

/// Statements built from the column lists below, as `&'static str` (the key of the cache of
/// prepared statements).
macro_rules! sql {
    ($($part:expr),* $(,)?) => { concat!($($part),*) };
}

/// The columns `account_from_row` reads.
macro_rules! account_columns {
    () => {
        "id, currency, kind, flags, user_data, debits_pending, debits_posted, credits_pending, \
         credits_posted, timestamp"
    };
}

/// The columns `registration_from_row` reads.
macro_rules! registration_columns {
    () => {
        "id, kind, digest, registrant, reference, timestamp, leaf_index, idempotency_key"
    };
}

/// The columns `checkpoint_from_row` reads.
macro_rules! checkpoint_columns {
    () => {
        "size, root, note, timestamp"
    };
}

impl StoreReader for PostgresReader {
    fn head(&mut self) -> StoreResult<LedgerHead> {
        let rows = self.rows(
            "SELECT batches, timestamp_last, transfer_id_max, log_size,
                (SELECT coalesce(max(id), 0) FROM registrations)
             FROM ledger_head",
            &[],
        )?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::corrupt("the ledger head is missing"))?;
        Ok(LedgerHead {
            batches: unsigned(get(row, 0)?, "batches")?,
            timestamp_last: timestamp(get(row, 1)?)?,
            transfer_id_max: from_i64(get(row, 2)?, "transfer_id_max")?,
            log_size: unsigned(get(row, 3)?, "log size")?,
            registration_id_max: unsigned(get(row, 4)?, "registration id")?,
        })
    }

    fn load_accounts(&mut self, ids: &[u128], out: &mut Vec<Account>) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = stored_ids(ids);
        for row in self.rows(
            sql!(
                "SELECT ",
                account_columns!(),
                " FROM accounts WHERE id = ANY($1)"
            ),
            &[&ids],
        )? {
            out.push(account_from_row(&row)?);
        }
        Ok(())
    }

    fn load_transfers(&mut self, ids: &[u128], out: &mut Vec<StoredTransfer>) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = stored_ids(ids);
        for row in self.rows(
            sql!(
                "SELECT ",
                transfer_columns!(),
                ", p.status, t.leaf_index FROM transfers t
                   LEFT JOIN pending_transfers p ON p.id = t.id
                  WHERE t.id = ANY($1)"
            ),
            &[&ids],
        )? {
            out.push(stored_transfer_from_row(&row)?);
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
        let Ok(account_id) = i64::try_from(query.account_id) else {
            return Ok(Vec::new());
        };
        let after = i64::try_from(query.after_timestamp).unwrap_or(i64::MAX);
        // The account's postings in its slice of the packed history, from the cursor on.
        let ids: Vec<u128> = self
            .rows(
                "SELECT posting.transfer_id
                   FROM account_postings p,
                        unnest(p.account_ids, p.timestamps, p.transfer_ids)
                            AS posting (account_id, timestamp, transfer_id)
                  WHERE p.slice = $1 AND p.timestamp_last > $3
                    AND posting.account_id = $2 AND posting.timestamp > $3
                  ORDER BY posting.timestamp LIMIT $4",
                &[
                    &history_slice(account_id),
                    &account_id,
                    &after,
                    &limit(query.limit),
                ],
            )?
            .iter()
            .map(|row| from_i64(get(row, 0)?, "transfer id"))
            .collect::<StoreResult<_>>()?;
        let mut stored = Vec::with_capacity(ids.len());
        self.load_transfers(&ids, &mut stored)?;
        if stored.len() != ids.len() {
            return Err(StoreError::corrupt(format!(
                "account {} has postings for transfers that are not in the store",
                query.account_id
            )));
        }
        let mut transfers: Vec<Transfer> =
            stored.into_iter().map(|stored| stored.transfer).collect();
        transfers.sort_unstable_by_key(|transfer| transfer.timestamp);
        Ok(transfers)
    }

    fn account_balances(&mut self, query: HistoryQuery) -> StoreResult<Vec<AccountBalance>> {
        let Ok(account_id) = i64::try_from(query.account_id) else {
            return Ok(Vec::new());
        };
        let after = i64::try_from(query.after_timestamp).unwrap_or(i64::MAX);
        self.rows(
            "SELECT timestamp, debits_pending, debits_posted, credits_pending, credits_posted
               FROM account_balances WHERE account_id = $1 AND timestamp > $2
              ORDER BY timestamp LIMIT $3",
            &[&account_id, &after, &limit(query.limit)],
        )?
        .iter()
        .map(|row| {
            Ok(AccountBalance {
                account_id: query.account_id,
                timestamp: timestamp(get(row, 0)?)?,
                debits_pending: from_i64(get(row, 1)?, "debits_pending")?,
                debits_posted: from_i64(get(row, 2)?, "debits_posted")?,
                credits_pending: from_i64(get(row, 3)?, "credits_pending")?,
                credits_posted: from_i64(get(row, 4)?, "credits_posted")?,
            })
        })
        .collect()
    }

    fn pending_due(&mut self, now: u64, limit: usize) -> StoreResult<Vec<u128>> {
        let limit = limit.min(ledger::BATCH_EXPIRIES_MAX) as i64;
        self.rows(
            "SELECT id FROM pending_transfers
              WHERE status = 'pending' AND expires_at IS NOT NULL AND expires_at <= $1
              ORDER BY expires_at LIMIT $2",
            &[&signed(now), &limit],
        )?
        .iter()
        .map(|row| from_i64(get(row, 0)?, "pending transfer id"))
        .collect()
    }

    fn currency_totals(&mut self) -> StoreResult<Vec<CurrencyTotals>> {
        // Summed in u128 here: the sums may pass 2^63 - 1.
        let mut totals: Vec<CurrencyTotals> = Vec::new();
        self.each_row(
            "SELECT currency, debits_pending, debits_posted, credits_pending, credits_posted
               FROM accounts ORDER BY currency",
            &[],
            &mut |row| {
                let currency = currency(get(row, 0)?)?;
                let mut values = [0u128; 4];
                for (index, value) in values.iter_mut().enumerate() {
                    *value = from_i64(get(row, index + 1)?, "balance")?;
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
                Ok(())
            },
        )?;
        Ok(totals)
    }

    fn accounts_violating_flags(&mut self, limit: usize) -> StoreResult<Vec<u128>> {
        let debits_flag = i32::from(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS.bits());
        let credits_flag = i32::from(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS.bits());
        // Compared in numeric: a sum of two balances may pass 2^63 - 1.
        self.rows(
            "SELECT id FROM accounts
              WHERE (flags & $1 <> 0
                     AND debits_posted::numeric + debits_pending > credits_posted)
                 OR (flags & $2 <> 0
                     AND credits_posted::numeric + credits_pending > debits_posted)
                 OR least(debits_pending, debits_posted, credits_pending, credits_posted) < 0
              LIMIT $3",
            &[&debits_flag, &credits_flag, &(limit as i64)],
        )?
        .iter()
        .map(|row| from_i64(get(row, 0)?, "account id"))
        .collect()
    }

    fn history_counts(&mut self) -> StoreResult<HistoryCounts> {
        let rows = self.rows(
            "SELECT (SELECT count(*) FROM transfers),
                    (SELECT coalesce(sum(cardinality(transfer_ids)), 0)::bigint
                       FROM account_postings)",
            &[],
        )?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::corrupt("no counts"))?;
        Ok(HistoryCounts {
            transfers: unsigned(get(row, 0)?, "count")?,
            postings: unsigned(get(row, 1)?, "count")?,
        })
    }

    fn log_tile(&mut self, level: u8, index: u64, width: u16) -> StoreResult<Option<Vec<u8>>> {
        let Ok(index) = i64::try_from(index) else {
            return Ok(None);
        };
        let rows = self.rows(
            "SELECT width, hashes FROM log_tiles WHERE level = $1 AND tile_index = $2",
            &[&i32::from(level), &index],
        )?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let stored_width: i32 = get(row, 0)?;
        if stored_width < i32::from(width) {
            return Ok(None);
        }
        let mut hashes: Vec<u8> = get(row, 1)?;
        if hashes.len() != usize::try_from(stored_width).unwrap_or(0) * 32 {
            return Err(StoreError::corrupt(format!(
                "log tile {level}/{index} has the wrong length"
            )));
        }
        hashes.truncate(usize::from(width) * 32);
        Ok(Some(hashes))
    }

    fn latest_checkpoint(&mut self) -> StoreResult<Option<LogCheckpoint>> {
        Ok(self
            .checkpoints_of(
                sql!(
                    "SELECT ",
                    checkpoint_columns!(),
                    " FROM log_checkpoints ORDER BY size DESC LIMIT 1"
                ),
                &[],
            )?
            .pop())
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
        self.each_row(
            "SELECT id, status FROM pending_transfers",
            &[],
            &mut |row| {
                if let Some(status) = pending_status(get(row, 1)?)? {
                    statuses.insert(from_i64(get(row, 0)?, "pending transfer id")?, status);
                }
                Ok(())
            },
        )?;
        self.each_row(
            sql!(
                "SELECT ",
                transfer_columns!(),
                ", t.leaf_index FROM transfers t WHERE t.id BETWEEN $1 AND $2"
            ),
            &[&low, &high],
            &mut |row| {
                let transfer = transfer_from_row(row)?;
                visit(&StoredTransfer {
                    pending_status: statuses.get(&transfer.id).copied(),
                    transfer,
                    leaf_index: unsigned(get(row, 11)?, "leaf index")?,
                });
                Ok(())
            },
        )
    }

    fn transfer_id_min(&mut self) -> StoreResult<u128> {
        let rows = self.rows("SELECT coalesce(min(id), 0) FROM transfers", &[])?;
        match rows.first() {
            Some(row) => from_i64(get(row, 0)?, "transfer id"),
            None => Ok(0),
        }
    }

    fn visit_accounts(&mut self, visit: &mut dyn FnMut(&Account)) -> StoreResult<()> {
        self.each_row(
            sql!("SELECT ", account_columns!(), " FROM accounts"),
            &[],
            &mut |row| {
                visit(&account_from_row(row)?);
                Ok(())
            },
        )
    }

    fn checkpoints(&mut self) -> StoreResult<Vec<LogCheckpoint>> {
        self.checkpoints_of(
            sql!(
                "SELECT ",
                checkpoint_columns!(),
                " FROM log_checkpoints ORDER BY size"
            ),
            &[],
        )
    }

    fn checkpoint(&mut self, size: u64) -> StoreResult<Option<LogCheckpoint>> {
        let Ok(size) = i64::try_from(size) else {
            return Ok(None);
        };
        Ok(self
            .checkpoints_of(
                sql!(
                    "SELECT ",
                    checkpoint_columns!(),
                    " FROM log_checkpoints WHERE size = $1"
                ),
                &[&size],
            )?
            .pop())
    }

    fn last_audit(&mut self) -> StoreResult<Option<(u64, [u8; 32])>> {
        let rows = self.rows(
            "SELECT size, root FROM log_audits ORDER BY size DESC LIMIT 1",
            &[],
        )?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let root: &[u8] = get(row, 1)?;
        Ok(Some((
            unsigned(get(row, 0)?, "audited size")?,
            root.try_into()
                .map_err(|_| StoreError::corrupt("an audited root is not 32 bytes"))?,
        )))
    }

    fn cosignatures(&mut self, size: u64) -> StoreResult<Vec<String>> {
        let Ok(size) = i64::try_from(size) else {
            return Ok(Vec::new());
        };
        self.rows(
            "SELECT line FROM log_cosignatures WHERE size = $1 ORDER BY witness",
            &[&size],
        )?
        .iter()
        .map(|row| get(row, 0))
        .collect()
    }

    fn registration(&mut self, id: u64) -> StoreResult<Option<StoredRegistration>> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(None);
        };
        Ok(self
            .registrations(
                sql!(
                    "SELECT ",
                    registration_columns!(),
                    " FROM registrations WHERE id = $1"
                ),
                &[&id],
            )?
            .pop())
    }

    fn registration_by_key(
        &mut self,
        registrant: u128,
        idempotency_key: &str,
    ) -> StoreResult<Option<StoredRegistration>> {
        let Ok(registrant) = i64::try_from(registrant) else {
            return Ok(None);
        };
        Ok(self
            .registrations(
                sql!(
                    "SELECT ",
                    registration_columns!(),
                    " FROM registrations WHERE registrant = $1 AND idempotency_key = $2"
                ),
                &[&registrant, &idempotency_key],
            )?
            .pop())
    }

    fn visit_registrations(
        &mut self,
        visit: &mut dyn FnMut(&StoredRegistration),
    ) -> StoreResult<()> {
        self.each_row(
            sql!(
                "SELECT ",
                registration_columns!(),
                " FROM registrations ORDER BY id"
            ),
            &[],
            &mut |row| {
                visit(&registration_from_row(row)?);
                Ok(())
            },
        )
    }

    fn credential(&mut self, id: u64) -> StoreResult<Option<Credential>> {
        crate::admin::load_credential(&mut self.client, id)
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
        for row in self.rows(
            "SELECT leaf_first, transfer_ids FROM log_leaf_runs
              WHERE leaf_first < $2
                AND leaf_first >= coalesce(
                    (SELECT max(leaf_first) FROM log_leaf_runs WHERE leaf_first <= $1), 0)
              ORDER BY leaf_first",
            &[&from, &to],
        )? {
            let first = unsigned(get(&row, 0)?, "leaf index")?;
            let ids: &[u8] = get(&row, 1)?;
            if !ids.len().is_multiple_of(8) {
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
        for stored in self.registrations(
            sql!(
                "SELECT ",
                registration_columns!(),
                " FROM registrations WHERE leaf_index >= $1 AND leaf_index < $2"
            ),
            &[&from, &to],
        )? {
            out.push((
                stored.leaf_index,
                LogLeaf::Registration(stored.registration),
            ));
        }
        out[start..].sort_unstable_by_key(|(index, _)| *index);
        Ok(())
    }
}
