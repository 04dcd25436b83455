//! Schema migrations, applied in order, each in its own transaction.

use rusqlite::Connection;
use store::{StoreError, StoreResult};

use crate::map_error;

/// (version, name, SQL). Append only: a released migration is never edited.
pub(crate) type Migrations = &'static [(i64, &'static str, &'static str)];

/// The ledger database.
pub(crate) const LEDGER: Migrations = &[
    (
        1,
        "ledger",
        include_str!("../migrations/ledger/0001_ledger.sql"),
    ),
    (
        2,
        "trust_log",
        include_str!("../migrations/ledger/0002_trust_log.sql"),
    ),
    (
        3,
        "registrations",
        include_str!("../migrations/ledger/0003_registrations.sql"),
    ),
    (
        4,
        "users",
        include_str!("../migrations/ledger/0004_users.sql"),
    ),
    (
        5,
        "payments",
        include_str!("../migrations/ledger/0005_payments.sql"),
    ),
    (6, "qr", include_str!("../migrations/ledger/0006_qr.sql")),
    (
        7,
        "envelopes",
        include_str!("../migrations/ledger/0007_envelopes.sql"),
    ),
    (
        8,
        "bills",
        include_str!("../migrations/ledger/0008_bills.sql"),
    ),
    (
        9,
        "invoices",
        include_str!("../migrations/ledger/0009_invoices.sql"),
    ),
    (
        10,
        "nonces",
        include_str!("../migrations/ledger/0010_nonces.sql"),
    ),
];
/// The history database.
pub(crate) const HISTORY: Migrations = &[
    (
        1,
        "history",
        include_str!("../migrations/history/0001_history.sql"),
    ),
    (
        2,
        "history log size",
        include_str!("../migrations/history/0002_history_log_size.sql"),
    ),
    (
        3,
        "history recent postings by batch",
        include_str!("../migrations/history/0003_history_recent_by_batch.sql"),
    ),
];

pub(crate) fn migrate(connection: &mut Connection, migrations: Migrations) -> StoreResult<()> {
    connection
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version    INTEGER PRIMARY KEY,
                name       TEXT    NOT NULL,
                applied_at TEXT    NOT NULL
            ) STRICT",
        )
        .map_err(map_error)?;
    let current = current_version(connection)?;
    let latest = migrations.last().map_or(0, |migration| migration.0);
    if current > latest {
        return Err(StoreError::corrupt(format!(
            "the store's schema is version {current}, newer than this program knows ({latest})"
        )));
    }
    for (version, name, sql) in migrations.iter().filter(|migration| migration.0 > current) {
        let transaction = connection.transaction().map_err(map_error)?;
        transaction.execute_batch(sql).map_err(map_error)?;
        transaction
            .execute(
                "INSERT INTO schema_migrations (version, name, applied_at)
                 VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
                rusqlite::params![version, name],
            )
            .map_err(map_error)?;
        transaction.commit().map_err(map_error)?;
    }
    Ok(())
}

fn current_version(connection: &Connection) -> StoreResult<i64> {
    connection
        .query_row(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            [],
            |row| row.get(0),
        )
        .map_err(map_error)
}

pub(crate) fn check_current(connection: &Connection, migrations: Migrations) -> StoreResult<()> {
    let current = current_version(connection)?;
    let latest = migrations.last().map_or(0, |migration| migration.0);
    if current != latest {
        return Err(StoreError::corrupt(format!(
            "the store's schema is version {current}; this program needs {latest} (run a command that opens it for writing to migrate)"
        )));
    }
    Ok(())
}
