//! Read-only SQL for auditors: the same queries on every backend.

use std::time::Duration;

use store::{QueryLimits, Store, StoreErrorKind, Value};

use crate::batches::write_transfers;

/// Limits as `tally sql` runs a query: many rows, no time limit.
pub(crate) fn generous() -> QueryLimits {
    QueryLimits {
        rows_max: 1_000_000,
        time_max: None,
    }
}

pub fn read_only_sql_refuses_every_write(store: &dyn Store) {
    write_transfers(store, 3);
    for statement in [
        "DELETE FROM transfers",
        "UPDATE accounts SET credits_posted = 1000000",
        "INSERT INTO accounts (id) VALUES (99)",
        "DROP TABLE transfers",
        "CREATE TABLE evil (x INTEGER)",
        "  /* a comment first */ delete from transfers",
    ] {
        let error = store
            .query(statement, generous())
            .expect_err("a write is refused");
        assert_eq!(
            error.kind,
            StoreErrorKind::Refused,
            "{statement}: {error:?}"
        );
    }
    // Nothing changed, and the same portable queries read the ledger and its history.
    let output = store
        .query("SELECT count(*) AS n FROM transfers", generous())
        .expect("the query");
    assert_eq!(output.columns, vec!["n".to_owned()]);
    assert_eq!(output.rows, vec![vec![Value::Integer(6)]]);
    let totals = store
        .query(
            "SELECT sum(amount) AS total, min(id) AS first, max(currency) AS currency
               FROM transfers",
            generous(),
        )
        .expect("the query");
    assert_eq!(
        totals.rows,
        vec![vec![
            Value::Integer(60),
            Value::Integer(1),
            Value::Text("CNY".into())
        ]]
    );
    let history = store
        .query(
            "SELECT count(*) AS n, min(timestamp) AS first, max(timestamp) AS last
               FROM account_history WHERE account_id = 2",
            generous(),
        )
        .expect("the history view");
    assert_eq!(
        history.rows,
        vec![vec![
            Value::Integer(3),
            Value::Integer(100),
            Value::Integer(120)
        ]]
    );
    let balances = store
        .query(
            "SELECT debits_posted, credits_posted FROM accounts WHERE id IN (1, 2) ORDER BY id",
            generous(),
        )
        .expect("the query");
    assert_eq!(
        balances.rows,
        vec![
            vec![Value::Integer(30), Value::Integer(0)],
            vec![Value::Integer(0), Value::Integer(30)]
        ]
    );
    let nothing = store
        .query("SELECT id FROM transfers WHERE id > 1000", generous())
        .expect("the query");
    assert!(nothing.rows.is_empty() && !nothing.truncated);
    let null = store
        .query("SELECT pending_id FROM transfers WHERE id = 1", generous())
        .expect("the query");
    assert_eq!(null.rows, vec![vec![Value::Null]]);
    let error = store
        .query("SELECT * FROM no_such_table", generous())
        .expect_err("an unknown table");
    assert!(error.message.contains("no_such_table"), "{error}");
}

pub fn sql_rows_are_limited_and_slow_queries_stopped(store: &dyn Store) {
    write_transfers(store, 3);
    let limited = store
        .query(
            "SELECT id FROM transfers ORDER BY id",
            QueryLimits {
                rows_max: 2,
                time_max: Some(Duration::from_secs(5)),
            },
        )
        .expect("the query");
    assert_eq!(
        limited.rows,
        vec![vec![Value::Integer(1)], vec![Value::Integer(2)]]
    );
    assert!(limited.truncated);
    let exact = store
        .query(
            "SELECT id FROM transfers ORDER BY id",
            QueryLimits {
                rows_max: 6,
                time_max: None,
            },
        )
        .expect("the query");
    assert_eq!(exact.rows.len(), 6);
    assert!(!exact.truncated, "exactly the limit is not truncated");
    let endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
                   SELECT count(*) FROM n";
    let error = store
        .query(
            endless,
            QueryLimits {
                rows_max: 10,
                time_max: Some(Duration::from_millis(200)),
            },
        )
        .expect_err("stopped");
    assert_eq!(error.kind, StoreErrorKind::Refused);
    assert!(error.message.contains("ran longer than"), "{error:?}");
    // The store answers again after an interrupted query.
    assert_eq!(
        store
            .query("SELECT 1 AS one", generous())
            .expect("the query")
            .rows,
        vec![vec![Value::Integer(1)]]
    );
}
