//! Read-only SQL for auditors (`tally sql`), enforced by the engine, not by reading the text:
//! the connection is opened read-only, `query_only` is set, and an authorizer refuses every
//! action other than reading (no writes, no pragmas, no ATTACH, no schema changes).

use std::path::Path;
use std::time::Instant;

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use store::{
    QueryLimits, QueryOutput, StoreError, StoreErrorKind, StoreResult, Value, QUERY_TEXT_BYTES_MAX,
};

use crate::map_error;

/// SQLite virtual-machine steps between two looks at the clock of a time-limited query.
const PROGRESS_STEPS: i32 = 10_000;

fn authorize(context: AuthContext<'_>) -> Authorization {
    match context.action {
        AuthAction::Select | AuthAction::Read { .. } | AuthAction::Recursive => {
            Authorization::Allow
        }
        // Functions are harmless except the few that touch files or the engine.
        AuthAction::Function { function_name } => {
            let refused = [
                "load_extension",
                "readfile",
                "writefile",
                "edit",
                "fts3_tokenizer",
            ];
            if refused
                .iter()
                .any(|name| function_name.eq_ignore_ascii_case(name))
            {
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }
        _ => Authorization::Deny,
    }
}

/// The history as plain rows: unpacks the history database's JSON postings, and leaves out a
/// batch the history has indexed but the ledger not yet committed.
const ACCOUNT_HISTORY_VIEW: &str = "
    CREATE TEMP VIEW account_history (account_id, timestamp, transfer_id) AS
        SELECT p.account_id, json_extract(entry.value, '$[0]'), json_extract(entry.value, '$[1]')
          FROM history.account_postings p, json_each(p.postings) entry
        UNION ALL
        SELECT json_extract(entry.value, '$[0]'), json_extract(entry.value, '$[1]'),
               json_extract(entry.value, '$[2]')
          FROM history.account_postings_recent r
          JOIN history.history_slices s ON s.slice = r.slice, json_each(r.postings) entry
         WHERE r.batch > s.merged_through
           AND r.batch <= (SELECT batches FROM main.ledger_head)";

pub(crate) fn read_only_connection(path: &Path, history_path: &Path) -> StoreResult<Connection> {
    if !path.exists() {
        return Err(StoreError::new(
            StoreErrorKind::Unavailable,
            format!("no Tally store at {}", path.display()),
        ));
    }
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(map_error)?;
    // Before the authorizer, which refuses ATTACH and any schema change.
    crate::attach_history(&connection, history_path)?;
    connection
        .execute_batch(ACCOUNT_HISTORY_VIEW)
        .map_err(map_error)?;
    connection
        .pragma_update(None, "query_only", true)
        .map_err(map_error)?;
    connection.authorizer(Some(authorize));
    Ok(connection)
}

/// Runs one read-only statement and returns its rows, within `limits`.
pub fn query_read_only(
    connection: &Connection,
    sql: &str,
    limits: QueryLimits,
) -> StoreResult<QueryOutput> {
    let deadline = limits.time_max.map(|time_max| Instant::now() + time_max);
    connection.progress_handler(
        PROGRESS_STEPS,
        deadline.map(|deadline| move || Instant::now() >= deadline),
    );
    let output = run_query(connection, sql, limits.rows_max);
    connection.progress_handler(PROGRESS_STEPS, None::<fn() -> bool>);
    output.map_err(|error| {
        if error.message.contains("interrupted") {
            let seconds = limits.time_max.map_or(0.0, |time| time.as_secs_f64());
            StoreError::new(
                StoreErrorKind::Refused,
                format!("the query ran longer than {seconds} s and was stopped; narrow it or add a LIMIT"),
            )
        } else {
            error
        }
    })
}

fn run_query(connection: &Connection, sql: &str, rows_max: usize) -> StoreResult<QueryOutput> {
    if sql.len() > QUERY_TEXT_BYTES_MAX {
        return Err(StoreError::new(
            StoreErrorKind::Refused,
            format!("query is longer than {QUERY_TEXT_BYTES_MAX} bytes"),
        ));
    }
    let mut statement = connection.prepare(sql).map_err(|error| {
        let refused = matches!(
            &error,
            rusqlite::Error::SqliteFailure(failure, _)
                if failure.code == rusqlite::ffi::ErrorCode::AuthorizationForStatementDenied
        );
        if refused {
            StoreError::new(
                StoreErrorKind::Refused,
                "refused: this interface is read-only (only SELECT queries over the store are allowed)",
            )
        } else {
            map_error(error)
        }
    })?;
    if !statement.readonly() {
        return Err(StoreError::new(
            StoreErrorKind::Refused,
            "refused: this interface is read-only (only SELECT queries over the store are allowed)",
        ));
    }
    let columns: Vec<String> = statement
        .column_names()
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    let column_count = columns.len();
    let mut rows = statement.query([]).map_err(map_error)?;
    let mut output = Vec::new();
    let mut truncated = false;
    while let Some(row) = rows.next().map_err(map_error)? {
        if output.len() == rows_max {
            truncated = true;
            break;
        }
        let mut values = Vec::with_capacity(column_count);
        for index in 0..column_count {
            values.push(match row.get_ref(index).map_err(map_error)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(value) => Value::Integer(value),
                ValueRef::Real(value) => Value::Real(value),
                ValueRef::Text(bytes) => Value::Text(String::from_utf8_lossy(bytes).into_owned()),
                ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
            });
        }
        output.push(values);
    }
    Ok(QueryOutput {
        columns,
        rows: output,
        truncated,
    })
}
