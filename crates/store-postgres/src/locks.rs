//! Locks shared by every node on the database: PostgreSQL advisory locks of one session (a
//! connection of its own, not pooled: the locks belong to the session).

use postgres::{Client, Statement};
use store::{SharedLocks, StoreResult};

use crate::map_error;

pub(crate) struct PostgresLocks {
    client: Client,
    try_lock: Statement,
    unlock: Statement,
}

impl PostgresLocks {
    pub(crate) fn new(mut client: Client) -> StoreResult<PostgresLocks> {
        let try_lock = client
            .prepare("SELECT pg_try_advisory_lock($1::int4, $2::int4)")
            .map_err(map_error)?;
        let unlock = client
            .prepare("SELECT pg_advisory_unlock($1::int4, $2::int4)")
            .map_err(map_error)?;
        Ok(PostgresLocks {
            client,
            try_lock,
            unlock,
        })
    }
}

impl SharedLocks for PostgresLocks {
    fn try_lock(&mut self, class: i32, key: i32) -> StoreResult<bool> {
        self.client
            .query_one(&self.try_lock, &[&class, &key])
            .and_then(|row| row.try_get(0))
            .map_err(map_error)
    }

    fn unlock(&mut self, class: i32, key: i32) -> StoreResult<()> {
        self.client
            .query_one(&self.unlock, &[&class, &key])
            .map(|_| ())
            .map_err(map_error)
    }
}
