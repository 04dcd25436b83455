//! A small connection pool: idle connections in a list, handed out and taken back.
//!
//! Connections that failed (closed by the server, a fail-over) are dropped instead of being
//! taken back, so the next checkout opens a fresh one, to whichever host the URL now leads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement, ToStatement};
use store::{StoreError, StoreErrorKind, StoreResult};

use crate::{blocking, map_error};

/// How long the liveness check of an idle connection may take before a new one is opened.
const POOL_CHECK_TIMEOUT_MS: u64 = 2_000;

pub(crate) struct Pool {
    config: postgres::Config,
    idle: Mutex<Vec<Connection>>,
    idle_max: usize,
}

/// A connection and the statements prepared on it (the reader's are few and fixed).
pub(crate) struct Connection {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration may hold a password: show where, not how.
        f.debug_struct("Pool")
            .field("hosts", &self.config.get_hosts())
            .field("database", &self.config.get_dbname())
            .field("idle_max", &self.idle_max)
            .finish()
    }
}

impl Pool {
    pub(crate) fn new(config: postgres::Config, idle_max: usize) -> Self {
        Pool {
            config,
            idle: Mutex::new(Vec::with_capacity(idle_max)),
            idle_max,
        }
    }

    /// A new connection of its own (the writer's).
    pub(crate) fn connect(&self) -> StoreResult<Client> {
        blocking(|| self.config.connect(NoTls)).map_err(|error| {
            let mapped = map_error(error);
            StoreError::new(
                mapped.kind,
                format!(
                    "cannot connect to PostgreSQL ({:?}/{}): {}",
                    self.config.get_hosts(),
                    self.config.get_dbname().unwrap_or(""),
                    mapped.message
                ),
            )
        })
    }

    /// An idle connection, or a new one.
    pub(crate) fn checkout(self: &Arc<Self>) -> StoreResult<PooledClient> {
        let idle = self
            .idle
            .lock()
            .map_err(|_| StoreError::new(StoreErrorKind::Other, "the connection pool is poisoned"))?
            .pop();
        // An idle connection may have been ended by the server (a restart, a fail-over, an
        // operator) without this side knowing: one empty round trip tells.
        let check = Duration::from_millis(POOL_CHECK_TIMEOUT_MS);
        let alive = |mut connection: Connection| {
            blocking(|| connection.client.is_valid(check).is_ok()).then_some(connection)
        };
        let connection = match idle.and_then(alive) {
            Some(connection) => connection,
            None => Connection {
                client: self.connect()?,
                statements: HashMap::new(),
            },
        };
        Ok(PooledClient {
            connection: Some(connection),
            pool: self.clone(),
        })
    }

    fn give_back(&self, client: Connection) {
        let surplus = if client.client.is_closed() {
            Some(client)
        } else {
            match self.idle.lock() {
                Ok(mut idle) if idle.len() < self.idle_max => {
                    idle.push(client);
                    None
                }
                _ => Some(client),
            }
        };
        // Closing a connection is a driver call too.
        if let Some(surplus) = surplus {
            blocking(move || drop(surplus));
        }
    }
}

/// A connection lent by the pool; taken back when dropped.
pub(crate) struct PooledClient {
    connection: Option<Connection>,
    pool: Arc<Pool>,
}

impl PooledClient {
    fn connection(&mut self) -> &mut Connection {
        self.connection.as_mut().expect("present until dropped")
    }

    /// `sql` prepared on this connection, once: later calls cost no round trip.
    ///
    /// A connection the server ended (a restart, a fail-over) is replaced first by a new one,
    /// to whichever host the URL now leads: a long-lived borrower (the sequencer's reader)
    /// would otherwise fail forever.
    pub(crate) fn statement(&mut self, sql: &'static str) -> StoreResult<Statement> {
        if self.connection().client.is_closed() {
            let client = self.pool.connect()?;
            self.connection = Some(Connection {
                client,
                statements: HashMap::new(),
            });
        }
        let connection = self.connection();
        if let Some(statement) = connection.statements.get(sql) {
            return Ok(statement.clone());
        }
        let client = &mut connection.client;
        let statement = blocking(|| client.prepare(sql)).map_err(map_error)?;
        connection.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    /// The connection itself: each driver call on it must go through [`blocking`].
    pub(crate) fn client(&mut self) -> &mut Client {
        &mut self.connection().client
    }

    /// Runs `work` on the connection, off any async thread (see [`blocking`]).
    pub(crate) fn with<T: Send>(&mut self, work: impl FnOnce(&mut Client) -> T + Send) -> T {
        let client = &mut self.connection().client;
        blocking(|| work(client))
    }

    pub(crate) fn query<T: ?Sized + ToStatement + Sync>(
        &mut self,
        statement: &T,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        self.with(|client| client.query(statement, parameters))
    }

    pub(crate) fn query_opt<T: ?Sized + ToStatement + Sync>(
        &mut self,
        statement: &T,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, postgres::Error> {
        self.with(|client| client.query_opt(statement, parameters))
    }

    pub(crate) fn query_one<T: ?Sized + ToStatement + Sync>(
        &mut self,
        statement: &T,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, postgres::Error> {
        self.with(|client| client.query_one(statement, parameters))
    }

    pub(crate) fn execute<T: ?Sized + ToStatement + Sync>(
        &mut self,
        statement: &T,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        self.with(|client| client.execute(statement, parameters))
    }
}

impl Drop for PooledClient {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            self.pool.give_back(connection);
        }
    }
}
