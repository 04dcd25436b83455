//! The PostgreSQL backend (15 or later): the same [`store::Store`] as the embedded SQLite
//! backend, for when one machine is not enough.
//!
//! Connections come from a URL (`postgres://user@host:port/database`, several hosts and
//! `target_session_attrs=read-write` included) and are kept in a small pool of our own. The
//! writer has a connection of its own and commits each batch in one transaction, with one
//! set-based statement per table (`unnest` over arrays, or COPY), never one statement per
//! transfer or per record. Business records (merchants, orders, refunds, the outbox …) are
//! written in the transaction of the batch whose money they ride with.
//! Durability is the server's: the writer refuses a server with `fsync` or `synchronous_commit`
//! off.
//!
//! Driver errors are mapped into [`StoreError`] here and nowhere else.

// An edge of the system: it may read the clock and wait (see clippy.toml).
#![allow(clippy::disallowed_methods)]

mod admin;
mod locks;
mod migrations;
mod pool;
mod query;
mod reader;
mod records;
pub mod test_server;
mod users;
mod writer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use postgres::error::SqlState;
use store::{
    AdminWriter, QueryLimits, QueryOutput, Store, StoreError, StoreErrorKind, StoreReader,
    StoreResult, StoreWriter,
};

use crate::pool::Pool;

/// How long opening one connection may take.
pub const CONNECT_TIMEOUT_MS: u64 = 10_000;
/// Idle connections the pool keeps for readers, admin and user calls; more may be open at
/// once, the extra ones are closed when returned.
pub const POOL_IDLE_CONNECTIONS_MAX: usize = 16;

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: Arc<Pool>,
    writer_taken: Arc<AtomicBool>,
}

/// A driver error as a [`StoreError`], with a kind that says what the caller can do about it.
pub(crate) fn map_error(error: postgres::Error) -> StoreError {
    use std::error::Error;
    let io = error
        .source()
        .is_some_and(|source| source.is::<std::io::Error>());
    let kind = match error.code() {
        Some(code) => kind_of(code),
        None if error.is_closed() || io => StoreErrorKind::Unavailable,
        // Timeouts and lost connections come without a code too.
        None if error.to_string().contains("timeout")
            || error.to_string().contains("connection") =>
        {
            StoreErrorKind::Unavailable
        }
        None => StoreErrorKind::Other,
    };
    let message = match error.as_db_error() {
        Some(database) => match database.detail() {
            Some(detail) => format!("{}: {detail}", database.message()),
            None => database.message().to_owned(),
        },
        None => match error.source() {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    };
    StoreError::new(kind, message)
}

fn kind_of(code: &SqlState) -> StoreErrorKind {
    let class = &code.code()[..2];
    if *code == SqlState::READ_ONLY_SQL_TRANSACTION
        || *code == SqlState::INSUFFICIENT_PRIVILEGE
        || *code == SqlState::QUERY_CANCELED
    {
        return StoreErrorKind::Refused;
    }
    match class {
        // Connection exceptions, insufficient resources (disk full, out of memory, too many
        // connections), operator intervention (shutdown, fail-over), system errors.
        "08" | "53" | "57" | "58" => StoreErrorKind::Unavailable,
        // Data corrupted, index corrupted.
        "XX" if *code != SqlState::INTERNAL_ERROR => StoreErrorKind::Corrupt,
        _ => StoreErrorKind::Other,
    }
}

/// Runs a blocking driver call. The synchronous client drives its connection on a runtime of
/// its own, which tokio refuses to start on a thread that runs async tasks, and the HTTP
/// server calls the store from its request handlers: there the call first leaves the async
/// thread (the worker hands its tasks to another thread meanwhile).
pub(crate) fn blocking<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Err(_) => work(),
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::CurrentThread => {
            // A single-threaded runtime has no other thread to hand its tasks to.
            std::thread::scope(|scope| match scope.spawn(work).join() {
                Ok(value) => value,
                Err(panic) => std::panic::resume_unwind(panic),
            })
        }
        Ok(_) => tokio::task::block_in_place(work),
    }
}

/// Reads a count or size the server returned; negative means the data cannot be trusted.
pub(crate) fn unsigned(value: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| StoreError::corrupt(format!("negative {what}: {value}")))
}

/// A count, size or time for a BIGINT column; the ledger keeps all of them below 2^63.
pub(crate) fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl PostgresStore {
    /// Connects to the server at `url`, and brings the schema up to date (migrations run in
    /// order, each once, recorded in `schema_migrations`).
    pub fn open(url: &str) -> StoreResult<PostgresStore> {
        let store = Self::connect(url)?;
        let mut client = store.pool.checkout()?;
        client.with(migrations::migrate)?;
        Ok(store)
    }

    /// Connects to an existing store without creating or migrating anything.
    pub fn open_existing(url: &str) -> StoreResult<PostgresStore> {
        let store = Self::connect(url)?;
        let mut client = store.pool.checkout()?;
        client.with(migrations::check_current)?;
        Ok(store)
    }

    fn connect(url: &str) -> StoreResult<PostgresStore> {
        let mut config: postgres::Config = url.parse().map_err(|error| {
            StoreError::new(
                StoreErrorKind::Unavailable,
                format!(
                    "not a PostgreSQL URL ({error}); expected postgres://user@host:port/database"
                ),
            )
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS));
        }
        if config.get_application_name().is_none() {
            config.application_name("tally");
        }
        Ok(PostgresStore {
            pool: Arc::new(Pool::new(config, POOL_IDLE_CONNECTIONS_MAX)),
            writer_taken: Arc::new(AtomicBool::new(false)),
        })
    }
}

impl Store for PostgresStore {
    fn writer(&self) -> StoreResult<Box<dyn StoreWriter>> {
        if self.writer_taken.swap(true, Ordering::SeqCst) {
            return Err(StoreError::new(
                StoreErrorKind::Refused,
                "this store already has its writer (one sequencer per store)",
            ));
        }
        match writer::PostgresWriter::new(self.pool.clone()) {
            Ok(writer) => Ok(Box::new(writer.releasing(self.writer_taken.clone()))),
            Err(error) => {
                self.writer_taken.store(false, Ordering::SeqCst);
                Err(error)
            }
        }
    }

    fn reader(&self) -> StoreResult<Box<dyn StoreReader>> {
        Ok(Box::new(reader::PostgresReader::new(self.pool.checkout()?)))
    }

    fn admin(&self) -> StoreResult<Box<dyn AdminWriter>> {
        Ok(Box::new(admin::PostgresAdmin::new(self.pool.checkout()?)))
    }

    fn users(&self) -> StoreResult<Box<dyn store::UserStore>> {
        Ok(Box::new(users::PostgresUsers::new(self.pool.checkout()?)))
    }

    fn records(&self) -> StoreResult<Box<dyn store::RecordReader>> {
        Ok(Box::new(records::PostgresRecords::new(
            self.pool.checkout()?,
        )))
    }

    fn outbox(&self) -> StoreResult<Box<dyn store::OutboxWriter>> {
        Ok(Box::new(records::PostgresOutbox::new(
            self.pool.checkout()?,
        )))
    }

    fn query(&self, sql: &str, limits: QueryLimits) -> StoreResult<QueryOutput> {
        // A connection of its own, closed afterwards: nothing the query does to its session
        // reaches the pool.
        blocking(|| {
            let mut client = self.pool.connect()?;
            query::query_read_only(&mut client, sql, limits)
        })
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    /// Several `tally serve` nodes may share one database.
    fn shared(&self) -> bool {
        true
    }

    fn shared_locks(&self) -> StoreResult<Option<Box<dyn store::SharedLocks>>> {
        let client = self.pool.connect()?;
        Ok(Some(Box::new(locks::PostgresLocks::new(client)?)))
    }
}
