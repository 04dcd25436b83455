//! The writer: one transaction per batch, durable (WAL flushed, `synchronous_commit`) before
//! `commit` returns.
//!
//! Inside the transaction: the head advances from the previous batch (or the batch is refused),
//! the touched accounts are locked in ascending id order (so writers on several nodes cannot
//! deadlock, and a hot account is locked once per batch), and every table gets one set-based
//! statement over arrays (`unnest`), prepared once: a round trip per table per batch, never one
//! per transfer. The batch's business records follow, the same way (see `records`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::{Client, Statement, Transaction};
use store::{to_i64, CommitBatch, StoreError, StoreErrorKind, StoreResult, StoreWriter};

use crate::pool::Pool;
use crate::records::{write_records, RecordStatements};
use crate::{map_error, signed};

const ADVANCE_HEAD: &str = "
    UPDATE ledger_head SET batches = $1::int8, timestamp_last = $2::int8,
        transfer_id_max = greatest(transfer_id_max, $3::int8), log_size = $5::int8
     WHERE singleton = 1 AND batches = $1::int8 - 1 AND timestamp_last < $2::int8
       AND log_size = $4::int8";

/// The advisory lock whose holder writes the ledger: several nodes on one database take turns
/// (a session lock, held across batches while a node has batches to write).
pub(crate) const WRITER_TURN_KEY: i64 = 0x7461_6c6c_7957_5254;

const LOCK_ACCOUNTS: &str =
    "SELECT id FROM accounts WHERE id = ANY($1::int8[]) ORDER BY id FOR UPDATE";

const INSERT_ACCOUNTS: &str = "
    INSERT INTO accounts (id, currency, kind, flags, user_data, debits_pending, debits_posted,
        credits_pending, credits_posted, timestamp)
    SELECT * FROM unnest($1::int8[], $2::text[], $3::int4[], $4::int4[], $5::int8[],
        $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[])";

const UPDATE_ACCOUNTS: &str = "
    UPDATE accounts SET debits_pending = u.debits_pending, debits_posted = u.debits_posted,
        credits_pending = u.credits_pending, credits_posted = u.credits_posted
      FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[])
        AS u (id, debits_pending, debits_posted, credits_pending, credits_posted)
     WHERE accounts.id = u.id";

/// COPY, not INSERT: the server writes the rows a page at a time (measured for 8,190
/// transfers: ~13 ms, against 21–35 ms for an INSERT over `unnest`).
const COPY_TRANSFERS: &str = "
    COPY transfers (id, debit_account_id, credit_account_id, amount, currency, pending_id,
        user_data, timeout_seconds, kind, flags, timestamp, leaf_index)
    FROM STDIN (FORMAT binary)";

const TRANSFER_COLUMN_TYPES: [Type; 12] = [
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT4,
    Type::INT4,
    Type::INT8,
    Type::INT8,
];

/// The expiry time written when a pending transfer is created is kept when its status changes.
const UPSERT_PENDING: &str = "
    INSERT INTO pending_transfers (id, status, expires_at)
    SELECT * FROM unnest($1::int8[], $2::text[], $3::int8[])
    ON CONFLICT (id) DO UPDATE SET status = excluded.status";

const INSERT_BALANCES: &str = "
    INSERT INTO account_balances (account_id, timestamp, debits_pending, debits_posted,
        credits_pending, credits_posted)
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[])";

const INSERT_REGISTRATIONS: &str = "
    INSERT INTO registrations (id, kind, digest, registrant, reference, timestamp, leaf_index,
        idempotency_key)
    SELECT * FROM unnest($1::int8[], $2::int4[], $3::bytea[], $4::int8[], $5::text[],
        $6::int8[], $7::int8[], $8::text[])";

const INSERT_LEAF_RUN: &str =
    "INSERT INTO log_leaf_runs (leaf_first, transfer_ids) VALUES ($1, $2)";

const UPSERT_TILES: &str = "
    INSERT INTO log_tiles (level, tile_index, width, hashes)
    SELECT * FROM unnest($1::int4[], $2::int8[], $3::int4[], $4::bytea[])
    ON CONFLICT (level, tile_index) DO UPDATE SET width = excluded.width, hashes = excluded.hashes
     WHERE excluded.width > log_tiles.width";

/// Slices of the account space in the packed history (see the migration): each batch writes
/// at most this many rows of postings, and reading an account's history reads its slice.
pub(crate) const HISTORY_SLICES: u32 = 256;

const COPY_POSTINGS: &str = "COPY account_postings (slice, batch, timestamp_last, account_ids,
    timestamps, transfer_ids) FROM STDIN (FORMAT binary)";

const INSERT_CHECKPOINT: &str =
    "INSERT INTO log_checkpoints (size, root, note, timestamp) VALUES ($1, $2, $3, $4)";

struct Statements {
    advance_head: Statement,
    lock_accounts: Statement,
    insert_accounts: Statement,
    update_accounts: Statement,
    upsert_pending: Statement,
    insert_balances: Statement,
    insert_registrations: Statement,
    insert_leaf_run: Statement,
    upsert_tiles: Statement,
    insert_checkpoint: Statement,
    records: RecordStatements,
}

pub(crate) struct PostgresWriter {
    client: Client,
    statements: Statements,
    /// Where a new connection comes from when the server closed this one (a restart, a
    /// fail-over to the new primary the URL leads to).
    pool: Arc<Pool>,
    taken: Option<Arc<AtomicBool>>,
    /// The last commit found the server unreachable: the next one starts on a new connection
    /// (the server may have ended the session before the driver saw the socket close).
    lost: bool,
    /// This session holds the writers' turn (`WRITER_TURN_KEY`).
    turn: bool,
}

/// Settings under which a committed batch is not durable: the writer refuses to start.
fn check_durable(client: &mut Client) -> StoreResult<()> {
    for (setting, refused) in [("fsync", "off"), ("synchronous_commit", "off")] {
        let value: String = client
            .query_one("SELECT current_setting($1)", &[&setting])
            .map_err(map_error)?
            .try_get(0)
            .map_err(map_error)?;
        if value == refused {
            return Err(StoreError::new(
                StoreErrorKind::Refused,
                format!(
                    "the server runs with {setting} = {value}: a committed batch could be lost, \
                     so the ledger will not write to it (set {setting} = on)"
                ),
            ));
        }
    }
    Ok(())
}

impl PostgresWriter {
    pub(crate) fn new(pool: Arc<Pool>) -> StoreResult<PostgresWriter> {
        let (client, statements) = connect(&pool)?;
        Ok(PostgresWriter {
            client,
            statements,
            pool,
            taken: None,
            lost: false,
            turn: false,
        })
    }

    /// Frees the store's writer slot when this writer is dropped.
    pub(crate) fn releasing(mut self, taken: Arc<AtomicBool>) -> Self {
        self.taken = Some(taken);
        self
    }
}

/// A connection for the writer, checked for durability, with its statements prepared.
fn connect(pool: &Pool) -> StoreResult<(Client, Statements)> {
    let mut client = pool.connect()?;
    check_durable(&mut client)?;
    // Each batch's arrays differ in length (a handful of accounts, or thousands): plan each
    // statement for the arrays it gets, not once for all (a generic plan probes the primary
    // key once per id even when a scan of the table is several times cheaper).
    client
        .batch_execute("SET plan_cache_mode = force_custom_plan")
        .map_err(map_error)?;
    let mut prepare = |sql: &str| client.prepare(sql).map_err(map_error);
    let statements = Statements {
        advance_head: prepare(ADVANCE_HEAD)?,
        lock_accounts: prepare(LOCK_ACCOUNTS)?,
        insert_accounts: prepare(INSERT_ACCOUNTS)?,
        update_accounts: prepare(UPDATE_ACCOUNTS)?,
        upsert_pending: prepare(UPSERT_PENDING)?,
        insert_balances: prepare(INSERT_BALANCES)?,
        insert_registrations: prepare(INSERT_REGISTRATIONS)?,
        insert_leaf_run: prepare(INSERT_LEAF_RUN)?,
        upsert_tiles: prepare(UPSERT_TILES)?,
        insert_checkpoint: prepare(INSERT_CHECKPOINT)?,
        records: RecordStatements::prepare(&mut client)?,
    };
    Ok((client, statements))
}

impl PostgresWriter {
    fn commit_on_connection(&mut self, batch: &CommitBatch<'_>) -> StoreResult<Vec<usize>> {
        // Dropping the transaction on an error rolls it back: nothing of the batch is kept.
        let mut transaction = self.client.transaction().map_err(map_error)?;
        let refused = write_batch(&mut transaction, &self.statements, batch)?;
        transaction.commit().map_err(map_error)?;
        Ok(refused)
    }
}

impl Drop for PostgresWriter {
    fn drop(&mut self) {
        if let Some(taken) = &self.taken {
            taken.store(false, Ordering::SeqCst);
        }
    }
}

impl StoreWriter for PostgresWriter {
    fn commit(&mut self, batch: &CommitBatch<'_>) -> StoreResult<Vec<usize>> {
        if self.lost || self.client.is_closed() {
            // The batch that found the connection lost was answered with an error; this one
            // starts on a new connection (the sequence check says whether that batch landed).
            let (client, statements) = connect(&self.pool)?;
            self.client = client;
            self.statements = statements;
            self.lost = false;
            // The old session's locks ended with it.
            self.turn = false;
        }
        if !self.turn {
            // Waits while another node writes; it lets go when it has nothing to write, or
            // after a few milliseconds of writing.
            self.client
                .execute("SELECT pg_advisory_lock($1)", &[&WRITER_TURN_KEY])
                .map_err(|error| {
                    let error = map_error(error);
                    self.lost = error.kind == StoreErrorKind::Unavailable;
                    error
                })?;
            self.turn = true;
        }
        let committed = self.commit_on_connection(batch);
        if let Err(error) = &committed {
            self.lost = error.kind == StoreErrorKind::Unavailable;
        }
        committed
    }

    fn end_turn(&mut self) {
        if !self.turn {
            return;
        }
        self.turn = false;
        if self
            .client
            .execute("SELECT pg_advisory_unlock($1)", &[&WRITER_TURN_KEY])
            .is_err()
        {
            // A session that cannot unlock is not to be trusted with the next batch either.
            self.lost = true;
        }
    }
}

fn timestamp_i64(timestamp: u64) -> i64 {
    i64::try_from(timestamp).expect("ledger timestamps fit i64 until the year 2262")
}

fn leaf_i64(leaf: u64) -> i64 {
    i64::try_from(leaf).expect("the log's size fits i64")
}

fn write_batch(
    transaction: &mut Transaction<'_>,
    statements: &Statements,
    batch: &CommitBatch<'_>,
) -> StoreResult<Vec<usize>> {
    assert_eq!(
        batch.log.size_after - batch.log.size_before,
        (batch.transfers.len() + batch.registrations.len()) as u64,
        "one leaf per transfer and per registration"
    );
    let transfer_id_max = batch
        .transfers
        .iter()
        .map(|transfer| transfer.id)
        .max()
        .unwrap_or(0);
    // First, so that a stale or second writer is refused before it writes anything, and so
    // that concurrent writers queue on this row before they lock any account.
    let advanced = transaction
        .execute(
            &statements.advance_head,
            &[
                &signed(batch.sequence),
                &timestamp_i64(batch.timestamp_last),
                &to_i64(transfer_id_max),
                &leaf_i64(batch.log.size_before),
                &leaf_i64(batch.log.size_after),
            ],
        )
        .map_err(map_error)?;
    if advanced != 1 {
        return Err(StoreError::new(
            StoreErrorKind::Stale,
            format!(
                "batch {} does not follow the store's last batch (another writer, or a stale sequencer)",
                batch.sequence
            ),
        ));
    }
    write_accounts(transaction, statements, batch)?;
    write_transfers(transaction, statements, batch)?;
    write_pending(transaction, statements, batch)?;
    write_balances(transaction, statements, batch)?;
    write_registrations(transaction, statements, batch)?;
    write_log(transaction, statements, batch)?;
    write_records(
        transaction,
        &statements.records,
        batch.records,
        batch.claims,
    )
}

fn write_accounts(
    transaction: &mut Transaction<'_>,
    statements: &Statements,
    batch: &CommitBatch<'_>,
) -> StoreResult<()> {
    if !batch.accounts_updated.is_empty() {
        let mut ids: Vec<i64> = batch
            .accounts_updated
            .iter()
            .map(|account| to_i64(account.id))
            .collect();
        ids.sort_unstable();
        let locked = transaction
            .query(&statements.lock_accounts, &[&ids])
            .map_err(map_error)?;
        ids.dedup();
        if locked.len() != ids.len() || ids.len() != batch.accounts_updated.len() {
            return Err(StoreError::corrupt(format!(
                "{} accounts to update, {} distinct, {} in the store",
                batch.accounts_updated.len(),
                ids.len(),
                locked.len()
            )));
        }
    }
    if !batch.accounts_created.is_empty() {
        let accounts = batch.accounts_created;
        let column = |value: fn(&ledger::Account) -> u128| -> Vec<i64> {
            accounts
                .iter()
                .map(|account| to_i64(value(account)))
                .collect()
        };
        transaction
            .execute(
                &statements.insert_accounts,
                &[
                    &column(|account| account.id),
                    &accounts
                        .iter()
                        .map(|account| account.currency.as_str())
                        .collect::<Vec<_>>(),
                    &accounts
                        .iter()
                        .map(|account| i32::from(account.kind))
                        .collect::<Vec<_>>(),
                    &accounts
                        .iter()
                        .map(|account| i32::from(account.flags.bits()))
                        .collect::<Vec<_>>(),
                    &column(|account| account.user_data),
                    &column(|account| account.debits_pending),
                    &column(|account| account.debits_posted),
                    &column(|account| account.credits_pending),
                    &column(|account| account.credits_posted),
                    &accounts
                        .iter()
                        .map(|account| timestamp_i64(account.timestamp))
                        .collect::<Vec<_>>(),
                ],
            )
            .map_err(map_error)?;
    }
    if !batch.accounts_updated.is_empty() {
        let accounts = batch.accounts_updated;
        let column = |value: fn(&ledger::Account) -> u128| -> Vec<i64> {
            accounts
                .iter()
                .map(|account| to_i64(value(account)))
                .collect()
        };
        let changed = transaction
            .execute(
                &statements.update_accounts,
                &[
                    &column(|account| account.id),
                    &column(|account| account.debits_pending),
                    &column(|account| account.debits_posted),
                    &column(|account| account.credits_pending),
                    &column(|account| account.credits_posted),
                ],
            )
            .map_err(map_error)?;
        if changed != accounts.len() as u64 {
            return Err(StoreError::corrupt(format!(
                "{} accounts to update, {changed} updated",
                accounts.len()
            )));
        }
    }
    Ok(())
}

fn write_transfers(
    transaction: &mut Transaction<'_>,
    statements: &Statements,
    batch: &CommitBatch<'_>,
) -> StoreResult<()> {
    let transfers = batch.transfers;
    if transfers.is_empty() {
        return Ok(());
    }
    let count = transfers.len();
    let mut ids = Vec::with_capacity(count);
    let mut debits = Vec::with_capacity(count);
    let mut credits = Vec::with_capacity(count);
    let mut amounts = Vec::with_capacity(count);
    let mut currencies = Vec::with_capacity(count);
    let mut pending_ids: Vec<Option<i64>> = Vec::with_capacity(count);
    let mut user_data = Vec::with_capacity(count);
    let mut timeouts = Vec::with_capacity(count);
    let mut kinds = Vec::with_capacity(count);
    let mut flags = Vec::with_capacity(count);
    let mut timestamps = Vec::with_capacity(count);
    let mut leaves = Vec::with_capacity(count);
    let mut leaf_run = Vec::with_capacity(count * 8);
    for (position, transfer) in transfers.iter().enumerate() {
        let id = to_i64(transfer.id);
        ids.push(id);
        debits.push(to_i64(transfer.debit_account_id));
        credits.push(to_i64(transfer.credit_account_id));
        amounts.push(to_i64(transfer.amount));
        currencies.push(transfer.currency.as_str());
        pending_ids.push((transfer.pending_id != 0).then(|| to_i64(transfer.pending_id)));
        user_data.push(to_i64(transfer.user_data));
        timeouts.push(i64::from(transfer.timeout_seconds));
        kinds.push(i32::from(transfer.kind));
        flags.push(i32::from(transfer.flags.bits()));
        timestamps.push(timestamp_i64(transfer.timestamp));
        leaves.push(leaf_i64(batch.log.size_before + position as u64));
        leaf_run.extend_from_slice(&id.to_le_bytes());
    }
    let sink = transaction.copy_in(COPY_TRANSFERS).map_err(map_error)?;
    let mut writer = BinaryCopyInWriter::new(sink, &TRANSFER_COLUMN_TYPES);
    for index in 0..count {
        writer
            .write(&[
                &ids[index],
                &debits[index],
                &credits[index],
                &amounts[index],
                &currencies[index],
                &pending_ids[index],
                &user_data[index],
                &timeouts[index],
                &kinds[index],
                &flags[index],
                &timestamps[index],
                &leaves[index],
            ])
            .map_err(map_error)?;
    }
    let inserted = writer.finish().map_err(map_error)?;
    assert_eq!(inserted, count as u64);
    transaction
        .execute(
            &statements.insert_leaf_run,
            &[&leaf_i64(batch.log.size_before), &leaf_run],
        )
        .map_err(map_error)?;
    write_postings(
        transaction,
        batch.sequence,
        &debits,
        &credits,
        &timestamps,
        &ids,
    )
}

/// The slice of the history an account's postings go to.
pub(crate) fn history_slice(account_id: i64) -> i32 {
    // Ids are never negative (the ledger refuses them); rem_euclid keeps a slice valid anyway.
    i32::try_from(account_id.rem_euclid(i64::from(HISTORY_SLICES))).expect("below 256")
}

/// Two postings per transfer (debit side, credit side), packed per slice, one COPY.
fn write_postings(
    transaction: &mut Transaction<'_>,
    sequence: u64,
    debits: &[i64],
    credits: &[i64],
    timestamps: &[i64],
    ids: &[i64],
) -> StoreResult<()> {
    #[derive(Default)]
    struct Slice {
        account_ids: Vec<i64>,
        timestamps: Vec<i64>,
        transfer_ids: Vec<i64>,
    }
    let mut slices: Vec<Slice> = (0..HISTORY_SLICES).map(|_| Slice::default()).collect();
    for index in 0..ids.len() {
        for account_id in [debits[index], credits[index]] {
            let slice = &mut slices[history_slice(account_id) as usize];
            slice.account_ids.push(account_id);
            slice.timestamps.push(timestamps[index]);
            slice.transfer_ids.push(ids[index]);
        }
    }
    let sink = transaction.copy_in(COPY_POSTINGS).map_err(map_error)?;
    let mut writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::INT4,
            Type::INT8,
            Type::INT8,
            Type::INT8_ARRAY,
            Type::INT8_ARRAY,
            Type::INT8_ARRAY,
        ],
    );
    let batch = signed(sequence);
    for (number, slice) in slices.iter().enumerate() {
        let Some(timestamp_last) = slice.timestamps.last() else {
            continue;
        };
        let number = i32::try_from(number).expect("below 256");
        writer
            .write(&[
                &number,
                &batch,
                timestamp_last,
                &slice.account_ids,
                &slice.timestamps,
                &slice.transfer_ids,
            ])
            .map_err(map_error)?;
    }
    writer.finish().map_err(map_error)?;
    Ok(())
}

fn write_pending(
    transaction: &mut Transaction<'_>,
    statements: &Statements,
    batch: &CommitBatch<'_>,
) -> StoreResult<()> {
    if batch.pending.is_empty() {
        return Ok(());
    }
    // One row per id (a statement may not touch a row twice): the last status, and the
    // expiry time first given, as row-by-row upserts would leave them.
    let mut rows: Vec<(i64, &'static str, Option<i64>)> = Vec::with_capacity(batch.pending.len());
    let mut position_of: ledger::IdMap<usize> = ledger::IdMap::default();
    for record in batch.pending {
        let status = record.status.name();
        match position_of.get(&record.id) {
            Some(position) => rows[*position].1 = status,
            None => {
                position_of.insert(record.id, rows.len());
                rows.push((
                    to_i64(record.id),
                    status,
                    record.expires_at.map(timestamp_i64),
                ));
            }
        }
    }
    let ids: Vec<i64> = rows.iter().map(|row| row.0).collect();
    let statuses: Vec<&str> = rows.iter().map(|row| row.1).collect();
    let expiries: Vec<Option<i64>> = rows.iter().map(|row| row.2).collect();
    transaction
        .execute(&statements.upsert_pending, &[&ids, &statuses, &expiries])
        .map_err(map_error)?;
    Ok(())
}

fn write_balances(
    transaction: &mut Transaction<'_>,
    statements: &Statements,
    batch: &CommitBatch<'_>,
) -> StoreResult<()> {
    let balances = batch.balances;
    if balances.is_empty() {
        return Ok(());
    }
    let column = |value: fn(&ledger::AccountBalance) -> u128| -> Vec<i64> {
        balances
            .iter()
            .map(|balance| to_i64(value(balance)))
            .collect()
    };
    transaction
        .execute(
            &statements.insert_balances,
            &[
                &column(|balance| balance.account_id),
                &balances
                    .iter()
                    .map(|balance| timestamp_i64(balance.timestamp))
                    .collect::<Vec<_>>(),
                &column(|balance| balance.debits_pending),
                &column(|balance| balance.debits_posted),
                &column(|balance| balance.credits_pending),
                &column(|balance| balance.credits_posted),
            ],
        )
        .map_err(map_error)?;
    Ok(())
}

/// The batch's registrations; their leaves follow the transfers' leaves.
fn write_registrations(
    transaction: &mut Transaction<'_>,
    statements: &Statements,
    batch: &CommitBatch<'_>,
) -> StoreResult<()> {
    let registrations = batch.registrations;
    if registrations.is_empty() {
        return Ok(());
    }
    let first_leaf = batch.log.size_before + batch.transfers.len() as u64;
    for (position, stored) in registrations.iter().enumerate() {
        assert_eq!(stored.leaf_index, first_leaf + position as u64);
    }
    transaction
        .execute(
            &statements.insert_registrations,
            &[
                &registrations
                    .iter()
                    .map(|stored| signed(stored.registration.id))
                    .collect::<Vec<_>>(),
                &registrations
                    .iter()
                    .map(|stored| i32::from(stored.registration.kind.code()))
                    .collect::<Vec<_>>(),
                &registrations
                    .iter()
                    .map(|stored| &stored.registration.digest[..])
                    .collect::<Vec<_>>(),
                &registrations
                    .iter()
                    .map(|stored| to_i64(stored.registration.registrant))
                    .collect::<Vec<_>>(),
                &registrations
                    .iter()
                    .map(|stored| stored.registration.reference.as_str())
                    .collect::<Vec<_>>(),
                &registrations
                    .iter()
                    .map(|stored| timestamp_i64(stored.registration.timestamp))
                    .collect::<Vec<_>>(),
                &registrations
                    .iter()
                    .map(|stored| leaf_i64(stored.leaf_index))
                    .collect::<Vec<_>>(),
                &registrations
                    .iter()
                    .map(|stored| stored.idempotency_key.as_str())
                    .collect::<Vec<_>>(),
            ],
        )
        .map_err(map_error)?;
    Ok(())
}

/// The batch's trust-log tiles and checkpoint.
fn write_log(
    transaction: &mut Transaction<'_>,
    statements: &Statements,
    batch: &CommitBatch<'_>,
) -> StoreResult<()> {
    let tiles = batch.log.tiles;
    if !tiles.is_empty() {
        // A statement may not touch a row twice: keep the widest of each tile.
        let mut widest: Vec<&store::LogTile> = Vec::with_capacity(tiles.len());
        for tile in tiles {
            assert_eq!(tile.hashes.len(), usize::from(tile.width) * 32);
            match widest
                .iter_mut()
                .find(|kept| kept.level == tile.level && kept.index == tile.index)
            {
                Some(kept) if kept.width < tile.width => *kept = tile,
                Some(_) => {}
                None => widest.push(tile),
            }
        }
        transaction
            .execute(
                &statements.upsert_tiles,
                &[
                    &widest
                        .iter()
                        .map(|tile| i32::from(tile.level))
                        .collect::<Vec<_>>(),
                    &widest
                        .iter()
                        .map(|tile| leaf_i64(tile.index))
                        .collect::<Vec<_>>(),
                    &widest
                        .iter()
                        .map(|tile| i32::from(tile.width))
                        .collect::<Vec<_>>(),
                    &widest
                        .iter()
                        .map(|tile| tile.hashes.as_slice())
                        .collect::<Vec<_>>(),
                ],
            )
            .map_err(map_error)?;
    }
    if let Some(checkpoint) = batch.log.checkpoint {
        transaction
            .execute(
                &statements.insert_checkpoint,
                &[
                    &leaf_i64(checkpoint.size),
                    &&checkpoint.root[..],
                    &checkpoint.note,
                    &timestamp_i64(checkpoint.timestamp),
                ],
            )
            .map_err(map_error)?;
    }
    Ok(())
}
