//! The history index: an account's transfers by time, in its own database file, written by
//! its own thread in parallel with the ledger's transaction.
//!
//! It is derived data: everything in it follows from the ledger's `transfers`. Each commit
//! hands the batch's postings to the history thread, writes the ledger, and waits for both
//! (the ledger durable, the history committed). The history is synced to disk only at its
//! checkpoints (`synchronous = NORMAL`): a batch costs one fsync, the ledger's, not two. A
//! crash can leave the history one batch ahead of the ledger (its commit landed, the ledger's
//! did not), one behind (the reverse), or, after a power loss, several behind (its last
//! commits were not on disk yet); [`HistoryWriter::reconcile`] repairs each before the next
//! batch: one batch from the ids the ledger keeps of it (`ledger_head.last_batch_transfers`),
//! several from the transfers whose leaves lie beyond the history's `log_size`.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use rusqlite::{params, Connection};
use store::{StoreError, StoreErrorKind, StoreResult};

use crate::{map_error, open_connection, postings};

/// Recent postings are kept in this many slices of the account space; each batch merges one
/// slice into the clustered `account_postings` table, so every slice is merged once every
/// `HISTORY_SLICES` batches and each merge writes many postings per account row.
pub(crate) const HISTORY_SLICES: u64 = 64;

pub(crate) fn history_slice(account_id: u128) -> i64 {
    (account_id % u128::from(HISTORY_SLICES)) as i64
}

/// A slice with more recent postings than this is merged in the next batch, whatever the
/// round robin says: a hot account's slice would otherwise pile up 64 batches' worth and make
/// one batch in 64 slow.
pub(crate) const SLICE_RECENT_POSTINGS_MAX: u64 = 32_768;

/// The recent (unmerged) postings of each history slice, `[account_id, timestamp, transfer_id]`
/// in commit order: a copy of the unmerged rows of `account_postings_recent` kept by the history
/// thread, so that a merge does not read back and parse what it wrote itself.
type RecentPostings = Vec<Vec<[i64; 3]>>;

/// The id of a row of `account_postings_recent`: rows sort by batch, then slice, so that a
/// batch appends its rows at the end of the table and merged batches leave from its start.
pub(crate) fn recent_row_id(batch: i64, slice: i64) -> i64 {
    batch * HISTORY_SLICES as i64 + slice
}

/// What the history thread knows of its slices besides their postings.
struct Slices {
    recent: RecentPostings,
    /// Per slice, the last batch merged into `account_postings` (`history_slices`).
    merged_through: Vec<i64>,
    /// Rows of batches up to this one are deleted: every slice had merged them.
    deleted_through: i64,
}

enum Job {
    /// Index batch `sequence`, whose postings (debit and credit of each transfer, in order)
    /// are these.
    Batch {
        sequence: u64,
        /// The ledger's log size after the batch.
        log_size: u64,
        postings: Vec<[i64; 3]>,
    },
    /// Bring the history in line with the ledger's committed head.
    Reconcile,
}

/// The handle the ledger writer keeps on the history thread.
pub(crate) struct HistoryWriter {
    jobs: Option<SyncSender<Job>>,
    results: Receiver<StoreResult<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HistoryWriter {
    pub(crate) fn start(ledger_path: &Path, history_path: &Path) -> StoreResult<HistoryWriter> {
        let connection = open_connection(history_path, false)?;
        // Derived data: synced at checkpoints, rebuilt from the ledger after a power loss.
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(map_error)?;
        // Checkpoints are the background checkpointer's, as for the ledger. SQLite's default
        // (at 1,000 WAL pages) ran one inside nearly every commit once the WAL was past that
        // size and readers kept it from starting over: 14 % of this thread's CPU.
        connection
            .pragma_update(None, "wal_autocheckpoint", crate::WAL_AUTOCHECKPOINT_PAGES)
            .map_err(map_error)?;
        // Not attached to this connection: a write transaction would then lock the ledger too,
        // and the two writers would take turns instead of working in parallel.
        let ledger = open_connection(ledger_path, false)?;
        ledger
            .pragma_update(None, "query_only", true)
            .map_err(map_error)?;
        let (jobs, job_receiver) = mpsc::sync_channel::<Job>(1);
        let (result_sender, results) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("sqlite-history".into())
            .spawn(move || {
                let mut state = HistoryThread {
                    connection,
                    ledger,
                    slices: None,
                };
                while let Ok(job) = job_receiver.recv() {
                    let result = match job {
                        Job::Batch {
                            sequence,
                            log_size,
                            postings,
                        } => state.index(sequence, log_size, &postings),
                        Job::Reconcile => state.reconcile(),
                    };
                    if result.is_err() {
                        state.slices = None;
                    }
                    if result_sender.send(result).is_err() {
                        return;
                    }
                }
            })
            .map_err(|error| StoreError::new(StoreErrorKind::Other, error.to_string()))?;
        Ok(HistoryWriter {
            jobs: Some(jobs),
            results,
            thread: Some(thread),
        })
    }

    fn send(&self, job: Job) -> StoreResult<()> {
        let stopped = || StoreError::new(StoreErrorKind::Other, "the history thread has stopped");
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())
    }

    /// Starts indexing a batch; [`HistoryWriter::wait`] gives the outcome.
    pub(crate) fn begin(
        &self,
        sequence: u64,
        log_size: u64,
        postings: Vec<[i64; 3]>,
    ) -> StoreResult<()> {
        self.send(Job::Batch {
            sequence,
            log_size,
            postings,
        })
    }

    pub(crate) fn wait(&self) -> StoreResult<()> {
        self.results.recv().unwrap_or_else(|_| {
            Err(StoreError::new(
                StoreErrorKind::Other,
                "the history thread has stopped",
            ))
        })
    }

    /// Repairs the history after a crash or a failed commit. Only while no batch is being
    /// written.
    pub(crate) fn reconcile(&self) -> StoreResult<()> {
        self.send(Job::Reconcile)?;
        self.wait()
    }
}

impl Drop for HistoryWriter {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct HistoryThread {
    connection: Connection,
    /// A reading connection to the ledger, for reconciling.
    ledger: Connection,
    /// Loaded by `reconcile`; dropped after any failure.
    slices: Option<Slices>,
}

impl HistoryThread {
    fn in_transaction(&self, work: impl FnOnce(&Connection) -> StoreResult<()>) -> StoreResult<()> {
        self.connection
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(map_error)?;
        match work(&self.connection) {
            Ok(()) => self.connection.execute_batch("COMMIT").map_err(|error| {
                let _ = self.connection.execute_batch("ROLLBACK");
                map_error(error)
            }),
            Err(error) => {
                let _ = self.connection.execute_batch("ROLLBACK");
                Err(error)
            }
        }
    }

    fn index(&mut self, sequence: u64, log_size: u64, postings: &[[i64; 3]]) -> StoreResult<()> {
        let mut slices = match self.slices.take() {
            Some(slices) => slices,
            None => {
                return Err(StoreError::new(
                    StoreErrorKind::Other,
                    "the history index must be reconciled before it takes a batch",
                ))
            }
        };
        let batch = i64::try_from(sequence).expect("batch sequence fits i64");
        self.in_transaction(|connection| {
            // Merge first: a merge takes only postings of earlier batches, which the ledger has
            // already made durable.
            let round_robin = (sequence % HISTORY_SLICES) as usize;
            for (slice, entries) in slices.recent.iter_mut().enumerate() {
                if slice == round_robin || entries.len() as u64 > SLICE_RECENT_POSTINGS_MAX {
                    merge_slice(connection, slice as i64, batch - 1, entries)?;
                    entries.clear();
                    slices.merged_through[slice] = batch - 1;
                }
            }
            // Every slice merges at least once in 64 batches, so this runs about as often.
            let merged = slices.merged_through.iter().copied().min().unwrap_or(0);
            if merged >= slices.deleted_through + HISTORY_SLICES as i64 {
                connection
                    .prepare_cached("DELETE FROM account_postings_recent WHERE id < ?1")
                    .map_err(map_error)?
                    .execute([recent_row_id(merged + 1, 0)])
                    .map_err(map_error)?;
                slices.deleted_through = merged;
            }
            let by_slice = insert_recent(connection, batch, postings)?;
            for (slice, entries) in by_slice.iter().enumerate() {
                slices.recent[slice].extend_from_slice(entries);
            }
            let advanced = connection
                .prepare_cached(
                    "UPDATE history_head SET batches = ?1, log_size = ?2 WHERE batches = ?1 - 1",
                )
                .map_err(map_error)?
                .execute([batch, i64::try_from(log_size).expect("log size fits i64")])
                .map_err(map_error)?;
            if advanced != 1 {
                return Err(StoreError::new(
                    StoreErrorKind::Refused,
                    format!("history batch {sequence} does not follow the last indexed batch"),
                ));
            }
            Ok(())
        })?;
        self.slices = Some(slices);
        Ok(())
    }

    fn reconcile(&mut self) -> StoreResult<()> {
        self.slices = None;
        let ledger = &self.ledger;
        self.in_transaction(|connection| {
            let (ledger_batches, last_batch, ledger_log_size): (i64, Vec<u8>, i64) = ledger
                .query_row(
                    "SELECT batches, last_batch_transfers, log_size FROM ledger_head",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .map_err(map_error)?;
            let (history_batches, history_log_size): (i64, Option<i64>) = connection
                .query_row("SELECT batches, log_size FROM history_head", [], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .map_err(map_error)?;
            if history_batches == ledger_batches {
                return Ok(());
            }
            if history_batches > ledger_batches {
                // The history indexed a batch whose ledger transaction never committed.
                connection
                    .execute(
                        "DELETE FROM account_postings_recent WHERE id >= ?1",
                        [recent_row_id(ledger_batches + 1, 0)],
                    )
                    .map_err(map_error)?;
            } else if history_batches + 1 == ledger_batches {
                // The ledger committed a batch the history had not: index it from its ids.
                index_from_ledger(connection, ledger, ledger_batches, &last_batch)?;
            } else if let Some(log_size) = history_log_size {
                // Several batches the history lost (a power loss before its checkpoint): index
                // every transfer whose leaf lies beyond what it had, as one batch.
                index_leaves_from(connection, ledger, ledger_batches, log_size)?;
            } else {
                return Err(StoreError::corrupt(format!(
                    "the history index ({HISTORY_DATABASE}) has {history_batches} batches and the \
                     ledger {ledger_batches}, and does not know the log size it reached",
                    HISTORY_DATABASE = crate::HISTORY_FILE_NAME
                )));
            }
            connection
                .execute(
                    "UPDATE history_head SET batches = ?1, log_size = ?2",
                    [ledger_batches, ledger_log_size],
                )
                .map_err(map_error)?;
            Ok(())
        })?;
        self.slices = Some(load_slices(&self.connection)?);
        Ok(())
    }
}

/// Indexes the ledger's last batch from the ids it kept of it.
fn index_from_ledger(
    connection: &Connection,
    ledger: &Connection,
    batch: i64,
    ids: &[u8],
) -> StoreResult<()> {
    if !ids.len().is_multiple_of(8) {
        return Err(StoreError::corrupt(
            "ledger_head.last_batch_transfers is not a list of ids",
        ));
    }
    let mut select = ledger
        .prepare_cached(
            "SELECT debit_account_id, credit_account_id, timestamp FROM transfers WHERE id = ?1",
        )
        .map_err(map_error)?;
    let mut postings = Vec::with_capacity(ids.len() / 4);
    for chunk in ids.chunks_exact(8) {
        let id = i64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let (debit, credit, timestamp): (i64, i64, i64) = select
            .query_row([id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .map_err(|error| {
                StoreError::corrupt(format!(
                    "transfer {id} of the last batch is missing: {error}"
                ))
            })?;
        postings.push([debit, timestamp, id]);
        postings.push([credit, timestamp, id]);
    }
    insert_recent(connection, batch, &postings).map(drop)
}

/// Indexes every transfer whose leaf is at or beyond `log_size`, in leaf order, under `batch`
/// (the ledger's last): what the history lost of the ledger's last batches.
fn index_leaves_from(
    connection: &Connection,
    ledger: &Connection,
    batch: i64,
    log_size: i64,
) -> StoreResult<()> {
    let mut select = ledger
        .prepare(
            "SELECT id, debit_account_id, credit_account_id, timestamp FROM transfers
              WHERE leaf_index >= ?1 ORDER BY leaf_index",
        )
        .map_err(map_error)?;
    let mut rows = select.query([log_size]).map_err(map_error)?;
    let mut postings = Vec::new();
    while let Some(row) = rows.next().map_err(map_error)? {
        let (id, debit, credit, timestamp): (i64, i64, i64, i64) = (
            row.get(0).map_err(map_error)?,
            row.get(1).map_err(map_error)?,
            row.get(2).map_err(map_error)?,
            row.get(3).map_err(map_error)?,
        );
        postings.push([debit, timestamp, id]);
        postings.push([credit, timestamp, id]);
    }
    insert_recent(connection, batch, &postings).map(drop)
}

/// Writes `batch`'s postings (`[account_id, timestamp, transfer_id]`, in commit order) as one
/// recent row per slice of the account space; returns them split by slice.
fn insert_recent(
    connection: &Connection,
    batch: i64,
    postings: &[[i64; 3]],
) -> StoreResult<RecentPostings> {
    let mut by_slice: RecentPostings = vec![Vec::new(); HISTORY_SLICES as usize];
    for posting in postings {
        by_slice[posting[0].rem_euclid(HISTORY_SLICES as i64) as usize].push(*posting);
    }
    let mut insert = connection
        .prepare_cached(
            "INSERT INTO account_postings_recent (id, batch, slice, postings)
             VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(map_error)?;
    for (slice, entries) in by_slice.iter().enumerate() {
        if !entries.is_empty() {
            let slice = slice as i64;
            insert
                .execute(params![
                    recent_row_id(batch, slice),
                    batch,
                    slice,
                    postings::encode(entries)
                ])
                .map_err(map_error)?;
        }
    }
    Ok(by_slice)
}

/// The unmerged postings of every slice and how far each is merged, as the database holds them.
fn load_slices(connection: &Connection) -> StoreResult<Slices> {
    let mut merged_through = vec![0i64; HISTORY_SLICES as usize];
    let mut statement = connection
        .prepare_cached("SELECT slice, merged_through FROM history_slices")
        .map_err(map_error)?;
    let mut rows = statement.query([]).map_err(map_error)?;
    let mut known = 0;
    while let Some(row) = rows.next().map_err(map_error)? {
        let slice: i64 = row.get(0).map_err(map_error)?;
        let through = slice_entry(&mut merged_through, slice)?;
        *through = row.get(1).map_err(map_error)?;
        known += 1;
    }
    if known != HISTORY_SLICES {
        return Err(StoreError::corrupt(format!(
            "history_slices has {known} rows, not {HISTORY_SLICES}"
        )));
    }
    let mut recent: RecentPostings = vec![Vec::new(); HISTORY_SLICES as usize];
    let mut statement = connection
        .prepare_cached("SELECT slice, batch, postings FROM account_postings_recent ORDER BY id")
        .map_err(map_error)?;
    let mut rows = statement.query([]).map_err(map_error)?;
    while let Some(row) = rows.next().map_err(map_error)? {
        let slice: i64 = row.get(0).map_err(map_error)?;
        let batch: i64 = row.get(1).map_err(map_error)?;
        if batch <= *slice_entry(&mut merged_through, slice)? {
            continue;
        }
        let entries = slice_entry(&mut recent, slice)?;
        let text = row.get_ref(2).map_err(map_error)?.as_str().ok();
        text.and_then(|text| postings::decode(text, entries))
            .ok_or_else(|| {
                StoreError::corrupt(format!("recent postings of slice {slice} are malformed"))
            })?;
    }
    // Deleted up to the least merged slice, or less: the next delete catches up.
    let deleted_through = merged_through.iter().copied().min().unwrap_or(0);
    Ok(Slices {
        recent,
        merged_through,
        deleted_through,
    })
}

fn slice_entry<T>(per_slice: &mut [T], slice: i64) -> StoreResult<&mut T> {
    usize::try_from(slice)
        .ok()
        .and_then(|slice| per_slice.get_mut(slice))
        .ok_or_else(|| StoreError::corrupt(format!("history slice {slice} out of range")))
}
/// Merges a slice's recent postings (of batches up to `through`) into `account_postings`. The
/// recent rows stay until every slice has merged them; readers leave them out from now on.
fn merge_slice(
    connection: &Connection,
    slice: i64,
    through: i64,
    entries: &mut [[i64; 3]],
) -> StoreResult<()> {
    connection
        .prepare_cached("UPDATE history_slices SET merged_through = ?2 WHERE slice = ?1")
        .map_err(map_error)?
        .execute([slice, through])
        .map_err(map_error)?;
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
    Ok(())
}
