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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_postings_move_to_batch_order_and_each_slice_is_merged_up_to_its_first_row() {
        let mut connection = Connection::open_in_memory().unwrap();
        migrate(&mut connection, &HISTORY[..2]).unwrap();
        // The layout before: rows by (slice, batch), a slice's merged rows deleted.
        connection
            .execute_batch(
                "INSERT INTO account_postings_recent (slice, batch, postings)
                     VALUES (3, 10, '[[3,5,6]]'), (1, 11, '[[1,7,8]]'), (3, 12, '[[3,9,9]]');
                 UPDATE history_head SET batches = 12;",
            )
            .unwrap();
        migrate(&mut connection, HISTORY).unwrap();
        let rows: Vec<(i64, i64, i64, String)> = connection
            .prepare("SELECT id, batch, slice, postings FROM account_postings_recent ORDER BY id")
            .unwrap()
            .query_map([], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![
                (10 * 64 + 3, 10, 3, "[[3,5,6]]".to_string()),
                (11 * 64 + 1, 11, 1, "[[1,7,8]]".to_string()),
                (12 * 64 + 3, 12, 3, "[[3,9,9]]".to_string()),
            ]
        );
        let merged: Vec<(i64, i64)> = connection
            .prepare("SELECT slice, merged_through FROM history_slices ORDER BY slice")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(merged.len(), 64);
        assert_eq!(&merged[..5], &[(0, 12), (1, 10), (2, 12), (3, 9), (4, 12)]);
    }
}
