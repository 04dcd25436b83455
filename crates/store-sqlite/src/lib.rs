//! The embedded SQLite backend: one file under the data directory, WAL, `synchronous=FULL`.
//!
//! One writer connection (owned by the sequencer) and any number of reader connections.

// An edge of the system: it may read the clock and wait (see clippy.toml).
#![allow(clippy::disallowed_methods)]

mod admin;
mod checkpoint;
mod history;
mod migrations;
mod postings;
mod query;
mod reader;
mod records;
mod users;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags};
use store::{
    AdminWriter, Store, StoreError, StoreErrorKind, StoreReader, StoreResult, StoreWriter,
};

pub use query::query_read_only;
pub use store::{QueryLimits, QueryOutput, Value};

/// The database file inside the data directory.
pub const DATABASE_FILE_NAME: &str = "tally.sqlite";
/// The history index, derived from the ledger, beside it.
pub const HISTORY_FILE_NAME: &str = "tally-history.sqlite";
/// Pages the writer keeps cached (negative: KiB), 8 MiB: 2,048 pages of 4 KiB, more than the
/// pages a batch touches. Not more: SQLite drops the pages past the end of the file at every
/// commit, and once a B-tree rebalance has renumbered a page past it (it does so to keep new
/// pages in order), that walk covers the cache's whole hash table. With 64 MiB it cost the
/// writer ~6 % of its CPU in `tally bench api`.
const WRITER_CACHE_KIB: i64 = 8 * 1024;
/// The WAL is copied back into the database file by a background checkpointer (see
/// `checkpoint.rs`), off the commit path. Only if it falls this far behind (pages, 256 MiB)
/// does the writer checkpoint by itself.
pub(crate) const WAL_AUTOCHECKPOINT_PAGES: i64 = 65_536;
/// A connection that finds the database locked (the writer behind a checkpoint that restarts
/// the WAL, a checkpoint behind a reader) tries again after `BUSY_STEP_SHORT`, then after
/// `BUSY_STEP_LONG`, for about 5 s in all. SQLite's own handler sleeps 1, 2, 5, 10 … ms, so a
/// writer held up for a few hundred µs lost milliseconds; it did so ~9 times a second in
/// `tally bench api`.
const BUSY_STEP_SHORT: std::time::Duration = std::time::Duration::from_micros(100);
const BUSY_SHORT_STEPS: i32 = 20;
const BUSY_STEP_LONG: std::time::Duration = std::time::Duration::from_millis(1);
const BUSY_LONG_STEPS: i32 = 5_000;
/// Prepared statements each connection keeps.
const STATEMENTS_CACHED_MAX: usize = 128;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    path: PathBuf,
    history_path: PathBuf,
    writer_taken: Arc<AtomicBool>,
}

pub(crate) fn map_error(error: rusqlite::Error) -> StoreError {
    use rusqlite::ffi::ErrorCode;
    let kind = match &error {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            ErrorCode::CannotOpen
            | ErrorCode::DiskFull
            | ErrorCode::PermissionDenied
            | ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure => StoreErrorKind::Unavailable,
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => StoreErrorKind::Corrupt,
            ErrorCode::ReadOnly | ErrorCode::AuthorizationForStatementDenied => {
                StoreErrorKind::Refused
            }
            _ => StoreErrorKind::Other,
        },
        _ => StoreErrorKind::Other,
    };
    StoreError::new(kind, error.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`, and brings its schema up to date.
    pub fn open(data_dir: &Path) -> StoreResult<SqliteStore> {
        std::fs::create_dir_all(data_dir).map_err(|error| {
            StoreError::new(
                StoreErrorKind::Unavailable,
                format!(
                    "cannot create data directory {}: {error}",
                    data_dir.display()
                ),
            )
        })?;
        let path = data_dir.join(DATABASE_FILE_NAME);
        let history_path = data_dir.join(HISTORY_FILE_NAME);
        for (file, migrations) in [
            (&path, migrations::LEDGER),
            (&history_path, migrations::HISTORY),
        ] {
            // SQLite's default page, 4 KiB: a batch dirties pages all over the indexes (one
            // per merchant, per user, per out_trade_no), and each goes to the WAL whole.
            let mut connection = open_connection(file, false)?;
            migrations::migrate(&mut connection, migrations)?;
        }
        Ok(SqliteStore {
            path,
            history_path,
            writer_taken: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Opens an existing store without creating or migrating anything.
    pub fn open_existing(data_dir: &Path) -> StoreResult<SqliteStore> {
        let path = data_dir.join(DATABASE_FILE_NAME);
        if !path.exists() {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                format!(
                    "no Tally store at {} (expected {DATABASE_FILE_NAME})",
                    data_dir.display()
                ),
            ));
        }
        let history_path = data_dir.join(HISTORY_FILE_NAME);
        migrations::check_current(&open_connection(&path, true)?, migrations::LEDGER)?;
        migrations::check_current(&open_connection(&history_path, true)?, migrations::HISTORY)?;
        Ok(SqliteStore {
            path,
            history_path,
            writer_taken: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A connection that the engine itself keeps read-only, for `tally sql` and auditors.
    pub fn read_only_connection(&self) -> StoreResult<Connection> {
        query::read_only_connection(&self.path, &self.history_path)
    }
}

/// SQLite's busy handler: whether to try again (after a pause) on the `attempts`-th time the
/// database is found locked.
fn wait_for_lock(attempts: i32) -> bool {
    if attempts < BUSY_SHORT_STEPS {
        std::thread::sleep(BUSY_STEP_SHORT);
        true
    } else if attempts < BUSY_SHORT_STEPS + BUSY_LONG_STEPS {
        std::thread::sleep(BUSY_STEP_LONG);
        true
    } else {
        false
    }
}

pub(crate) fn open_connection(path: &Path, read_only: bool) -> StoreResult<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let connection = Connection::open_with_flags(path, flags).map_err(|error| {
        StoreError::new(
            StoreErrorKind::Unavailable,
            format!("{}: {error}", path.display()),
        )
    })?;
    connection
        .busy_handler(Some(wait_for_lock))
        .map_err(map_error)?;
    // Every statement a connection runs stays prepared (the business records alone use a few
    // dozen; the default of 16 would re-prepare them over and over).
    connection.set_prepared_statement_cache_capacity(STATEMENTS_CACHED_MAX);
    if !read_only {
        let mode: String = connection
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(map_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                format!("{} cannot use WAL mode (got {mode})", path.display()),
            ));
        }
        // FULL: the WAL is synced at every commit, so a committed batch survives power loss.
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(map_error)?;
    }
    Ok(connection)
}

/// Makes the history database's tables visible as `history.*` on `connection`.
pub(crate) fn attach_history(connection: &Connection, history_path: &Path) -> StoreResult<()> {
    let path = history_path.to_str().ok_or_else(|| {
        StoreError::new(
            StoreErrorKind::Unavailable,
            "the data directory's path is not UTF-8",
        )
    })?;
    connection
        .execute("ATTACH DATABASE ?1 AS history", [path])
        .map_err(map_error)?;
    Ok(())
}

impl Store for SqliteStore {
    fn writer(&self) -> StoreResult<Box<dyn StoreWriter>> {
        if self.writer_taken.swap(true, Ordering::SeqCst) {
            return Err(StoreError::new(
                StoreErrorKind::Refused,
                "this store already has its writer (one sequencer per database)",
            ));
        }
        let connection = open_connection(&self.path, false)?;
        connection
            .pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
            .map_err(map_error)?;
        connection
            .pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
            .map_err(map_error)?;
        let history = history::HistoryWriter::start(&self.path, &self.history_path)?;
        // A crash may have left the history one batch ahead of or behind the ledger.
        history.reconcile()?;
        let checkpointer = checkpoint::Checkpointer::start(&[&self.path, &self.history_path])?;
        Ok(Box::new(writer::SqliteWriter::new(
            connection,
            history,
            self.writer_taken.clone(),
            checkpointer,
        )))
    }

    fn reader(&self) -> StoreResult<Box<dyn StoreReader>> {
        let connection = open_connection(&self.path, false)?;
        attach_history(&connection, &self.history_path)?;
        connection
            .pragma_update(None, "query_only", true)
            .map_err(map_error)?;
        Ok(Box::new(reader::SqliteReader::new(connection)))
    }

    fn admin(&self) -> StoreResult<Box<dyn AdminWriter>> {
        Ok(Box::new(admin::SqliteAdmin::new(open_connection(
            &self.path, false,
        )?)))
    }

    fn users(&self) -> StoreResult<Box<dyn store::UserStore>> {
        Ok(Box::new(users::SqliteUsers::new(open_connection(
            &self.path, false,
        )?)))
    }

    fn records(&self) -> StoreResult<Box<dyn store::RecordReader>> {
        let connection = open_connection(&self.path, false)?;
        connection
            .pragma_update(None, "query_only", true)
            .map_err(map_error)?;
        Ok(Box::new(records::SqliteRecords::new(connection)))
    }

    fn outbox(&self) -> StoreResult<Box<dyn store::OutboxWriter>> {
        Ok(Box::new(records::SqliteOutbox::new(open_connection(
            &self.path, false,
        )?)))
    }

    fn query(&self, sql: &str, limits: QueryLimits) -> StoreResult<QueryOutput> {
        let connection = self.read_only_connection()?;
        query::query_read_only(&connection, sql, limits)
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}
