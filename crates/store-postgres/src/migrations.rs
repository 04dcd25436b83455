//! Schema migrations, applied in order, each in its own transaction, recorded in
//! `schema_migrations`. Append only: a released migration is never edited.

use postgres::Client;
use store::{StoreError, StoreResult};

use crate::map_error;

/// (version, name, SQL).
type Migrations = &'static [(i64, &'static str, &'static str)];

const MIGRATIONS: Migrations = &[
    (1, "ledger", include_str!("../migrations/0001_ledger.sql")),
    (2, "users", include_str!("../migrations/0002_users.sql")),
    (
        3,
        "payments",
        include_str!("../migrations/0003_payments.sql"),
    ),
    (4, "qr", include_str!("../migrations/0004_qr.sql")),
    (
        5,
        "envelopes",
        include_str!("../migrations/0005_envelopes.sql"),
    ),
    (6, "bills", include_str!("../migrations/0006_bills.sql")),
    (
        7,
        "invoices",
        include_str!("../migrations/0007_invoices.sql"),
    ),
    (8, "nonces", include_str!("../migrations/0008_nonces.sql")),
];

/// Several processes may open the same database at once: migrations take this advisory lock
/// (an arbitrary number of our own) so that they run one after another.
const MIGRATION_LOCK_KEY: i64 = 0x7461_6c6c_795f_6d67;

pub(crate) fn migrate(client: &mut Client) -> StoreResult<()> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version    BIGINT      PRIMARY KEY,
                name       TEXT        NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .map_err(map_error)?;
    let latest = latest_version();
    for (version, name, sql) in MIGRATIONS {
        let mut transaction = client.transaction().map_err(map_error)?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
            .map_err(map_error)?;
        let current = current_version(&mut transaction)?;
        if current > latest {
            return Err(StoreError::corrupt(format!(
                "the store's schema is version {current}, newer than this program knows ({latest})"
            )));
        }
        if *version <= current {
            continue;
        }
        transaction.batch_execute(sql).map_err(|error| {
            let mapped = map_error(error);
            StoreError::new(
                mapped.kind,
                format!("migration {version} ({name}): {}", mapped.message),
            )
        })?;
        transaction
            .execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[version, name],
            )
            .map_err(map_error)?;
        transaction.commit().map_err(map_error)?;
    }
    Ok(())
}

fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |migration| migration.0)
}

fn current_version(client: &mut impl postgres::GenericClient) -> StoreResult<i64> {
    client
        .query_one(
            "SELECT coalesce(max(version), 0)::bigint FROM schema_migrations",
            &[],
        )
        .map_err(map_error)?
        .try_get(0)
        .map_err(map_error)
}

pub(crate) fn check_current(client: &mut Client) -> StoreResult<()> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .map_err(map_error)?
        .try_get(0)
        .map_err(map_error)?;
    let current = if exists { current_version(client)? } else { 0 };
    let latest = latest_version();
    if current != latest {
        return Err(StoreError::corrupt(format!(
            "the store's schema is version {current}; this program needs {latest} (run a command that opens it for writing to migrate)"
        )));
    }
    Ok(())
}
