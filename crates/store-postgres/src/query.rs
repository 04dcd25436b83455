//! Read-only SQL for auditors (`tally sql`), enforced by the server: the statement runs in a
//! `READ ONLY` transaction that is always rolled back, under `statement_timeout`, on a
//! connection of its own that is closed afterwards (nothing a query changes in its session can
//! reach another caller). Only queries are accepted (`SELECT`, `WITH`, `VALUES`, `TABLE`), so
//! `COPY`, `SET`, `DO`, `CALL` and transaction control are refused before they reach the
//! server. Rows are fetched through a portal, `rows_max + 1` at most.
//!
//! For the server's own file and program functions to stay out of reach, the store's role
//! should not be a superuser (the test server's is not).

use std::error::Error;

use postgres::error::SqlState;
use postgres::types::{FromSql, Type};
use postgres::Client;
use store::{
    QueryLimits, QueryOutput, StoreError, StoreErrorKind, StoreResult, Value, QUERY_TEXT_BYTES_MAX,
};

use crate::map_error;

const READ_ONLY_MESSAGE: &str =
    "refused: this interface is read-only (only SELECT queries over the store are allowed)";

/// The statements that only read (inside a read-only transaction the server refuses the
/// writes a `WITH` might still carry).
const QUERY_KEYWORDS: [&str; 4] = ["select", "with", "values", "table"];

/// Runs one read-only statement and returns its rows, within `limits`.
pub(crate) fn query_read_only(
    client: &mut Client,
    sql: &str,
    limits: QueryLimits,
) -> StoreResult<QueryOutput> {
    if sql.len() > QUERY_TEXT_BYTES_MAX {
        return Err(StoreError::new(
            StoreErrorKind::Refused,
            format!("query is longer than {QUERY_TEXT_BYTES_MAX} bytes"),
        ));
    }
    let keyword = first_keyword(sql).to_ascii_lowercase();
    if !QUERY_KEYWORDS.contains(&keyword.as_str()) {
        return Err(StoreError::new(StoreErrorKind::Refused, READ_ONLY_MESSAGE));
    }
    let mut transaction = client
        .build_transaction()
        .read_only(true)
        .start()
        .map_err(map_error)?;
    let timeout_ms = limits
        .time_max
        .map_or(0, |time| time.as_millis().clamp(1, i32::MAX as u128));
    // 0: no limit.
    transaction
        .execute(
            "SELECT set_config('statement_timeout', $1, true)",
            &[&timeout_ms.to_string()],
        )
        .map_err(map_error)?;
    let outcome = (|| {
        let statement = transaction.prepare(sql).map_err(map_error)?;
        let columns: Vec<String> = statement
            .columns()
            .iter()
            .map(|column| column.name().to_owned())
            .collect();
        let portal = transaction.bind(&statement, &[]).map_err(map_error)?;
        let fetch = i32::try_from(limits.rows_max.saturating_add(1)).unwrap_or(i32::MAX);
        let fetched = transaction
            .query_portal(&portal, fetch)
            .map_err(map_error)?;
        let truncated = fetched.len() > limits.rows_max;
        let mut rows = Vec::with_capacity(fetched.len().min(limits.rows_max));
        for row in fetched.iter().take(limits.rows_max) {
            let mut values = Vec::with_capacity(columns.len());
            for (index, column) in columns.iter().enumerate() {
                let value: AnyValue = row.try_get(index).map_err(|error| {
                    StoreError::new(
                        StoreErrorKind::Refused,
                        format!("column {column:?}: {}", error_text(&error)),
                    )
                })?;
                values.push(value.0);
            }
            rows.push(values);
        }
        Ok(QueryOutput {
            columns,
            rows,
            truncated,
        })
    })();
    // Whatever happened, nothing is kept.
    let _ = transaction.rollback();
    outcome.map_err(|error: StoreError| explain(error, limits))
}

fn error_text(error: &postgres::Error) -> String {
    match error.source() {
        Some(source) => source.to_string(),
        None => error.to_string(),
    }
}

/// Says what a refusal means for the person who wrote the query.
fn explain(error: StoreError, limits: QueryLimits) -> StoreError {
    let read_only = SqlState::READ_ONLY_SQL_TRANSACTION;
    if error.message.contains("read-only transaction") || error.message.contains(read_only.code()) {
        return StoreError::new(StoreErrorKind::Refused, READ_ONLY_MESSAGE);
    }
    if error.message.contains("statement timeout") {
        let seconds = limits.time_max.map_or(0.0, |time| time.as_secs_f64());
        return StoreError::new(
            StoreErrorKind::Refused,
            format!(
                "the query ran longer than {seconds} s and was stopped; narrow it or add a LIMIT"
            ),
        );
    }
    error
}

/// The first word of `sql`, after white space and comments.
fn first_keyword(sql: &str) -> &str {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, next)| next);
        } else if let Some(after) = rest.strip_prefix("/*") {
            // Nested comments close as often as they open; an unclosed one hides everything.
            let mut depth = 1usize;
            let mut index = 0;
            let bytes = after.as_bytes();
            while depth > 0 && index + 1 < bytes.len() {
                match &bytes[index..index + 2] {
                    b"/*" => {
                        depth += 1;
                        index += 2;
                    }
                    b"*/" => {
                        depth -= 1;
                        index += 2;
                    }
                    _ => index += 1,
                }
            }
            rest = if depth == 0 { &after[index..] } else { "" };
        } else if let Some(after) = rest.strip_prefix('(') {
            rest = after;
        } else {
            break;
        }
    }
    let end = rest
        .find(|character: char| !character.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    &rest[..end]
}

/// Any column value, as the store's portable [`Value`].
struct AnyValue(Value);

type DecodeResult<T> = Result<T, Box<dyn Error + Sync + Send>>;

impl<'a> FromSql<'a> for AnyValue {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> DecodeResult<Self> {
        let value = match *ty {
            Type::INT2 => Value::Integer(i64::from(i16::from_sql(ty, raw)?)),
            Type::INT4 => Value::Integer(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT8 => Value::Integer(i64::from_sql(ty, raw)?),
            Type::OID => Value::Integer(i64::from(u32::from_sql(ty, raw)?)),
            Type::FLOAT4 => Value::Real(f64::from(f32::from_sql(ty, raw)?)),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            // As SQLite shows booleans.
            Type::BOOL => Value::Integer(i64::from(bool::from_sql(ty, raw)?)),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON => {
                Value::Text(String::from_utf8_lossy(raw).into_owned())
            }
            // Version byte, then the text.
            Type::JSONB => {
                Value::Text(String::from_utf8_lossy(raw.get(1..).unwrap_or(&[])).into_owned())
            }
            Type::BYTEA => Value::Blob(raw.to_vec()),
            Type::NUMERIC => numeric(raw)?,
            _ => {
                return Err(format!(
                    "values of type {} cannot be shown; cast the column to text",
                    ty.name()
                )
                .into())
            }
        };
        Ok(AnyValue(value))
    }

    fn from_sql_null(_: &Type) -> DecodeResult<Self> {
        Ok(AnyValue(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Digits of a NUMERIC are base 10,000.
const NUMERIC_DIGIT_BASE: i64 = 10_000;
const NUMERIC_NEGATIVE: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;

/// A NUMERIC in binary form (sums of BIGINT columns are NUMERIC): a whole number within i64
/// as an integer, anything else as its exact decimal text.
fn numeric(raw: &[u8]) -> DecodeResult<Value> {
    let word = |index: usize| -> DecodeResult<u16> {
        raw.get(index * 2..index * 2 + 2)
            .map(|bytes| u16::from_be_bytes([bytes[0], bytes[1]]))
            .ok_or_else(|| "a NUMERIC value is truncated".into())
    };
    let digit_count = usize::from(word(0)?);
    let weight = i64::from(word(1)? as i16);
    let sign = word(2)?;
    let scale = usize::from(word(3)?);
    if sign == NUMERIC_NAN {
        return Ok(Value::Text("NaN".into()));
    }
    if sign != 0 && sign != NUMERIC_NEGATIVE {
        return Ok(Value::Text(
            if sign == 0xD000 {
                "Infinity"
            } else {
                "-Infinity"
            }
            .into(),
        ));
    }
    let mut digits = Vec::with_capacity(digit_count);
    for index in 0..digit_count {
        let digit = i64::from(word(4 + index)?);
        if digit >= NUMERIC_DIGIT_BASE {
            return Err("a NUMERIC digit is out of range".into());
        }
        digits.push(digit);
    }
    let digit_at = |position: i64| -> i64 {
        usize::try_from(position)
            .ok()
            .and_then(|position| digits.get(position).copied())
            .unwrap_or(0)
    };
    // Whole part: groups 0..=weight.
    let mut whole = String::new();
    for position in 0..=weight {
        if whole.is_empty() {
            whole = digit_at(position).to_string();
        } else {
            whole.push_str(&format!("{:04}", digit_at(position)));
        }
    }
    if whole.is_empty() {
        whole.push('0');
    }
    let mut fraction = String::new();
    let mut position = weight + 1;
    while fraction.len() < scale {
        fraction.push_str(&format!("{:04}", digit_at(position)));
        position += 1;
    }
    fraction.truncate(scale);
    let negative = sign == NUMERIC_NEGATIVE;
    if scale == 0 {
        let text = if negative { format!("-{whole}") } else { whole };
        return Ok(match text.parse::<i64>() {
            Ok(integer) => Value::Integer(integer),
            Err(_) => Value::Text(text),
        });
    }
    Ok(Value::Text(format!(
        "{}{whole}.{fraction}",
        if negative { "-" } else { "" }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_keyword_skips_comments_and_brackets() {
        assert_eq!(
            first_keyword("  -- hello\n /* a /* b */ c */ (SELECT 1)"),
            "SELECT"
        );
        assert_eq!(first_keyword("/* unclosed DELETE"), "");
        assert_eq!(first_keyword("delete from x"), "delete");
    }

    fn encode(digits: &[u16], weight: i16, sign: u16, scale: u16) -> Vec<u8> {
        let mut raw = Vec::new();
        for word in [digits.len() as u16, weight as u16, sign, scale]
            .into_iter()
            .chain(digits.iter().copied())
        {
            raw.extend_from_slice(&word.to_be_bytes());
        }
        raw
    }

    #[test]
    fn numerics_decode_exactly() {
        // 123456789 = 1 2345 6789
        assert_eq!(
            numeric(&encode(&[1, 2345, 6789], 2, 0, 0)).unwrap(),
            Value::Integer(123_456_789)
        );
        assert_eq!(
            numeric(&encode(&[5], 0, NUMERIC_NEGATIVE, 0)).unwrap(),
            Value::Integer(-5)
        );
        // 12.5 with scale 2
        assert_eq!(
            numeric(&encode(&[12, 5000], 0, 0, 2)).unwrap(),
            Value::Text("12.50".into())
        );
        // 0.0001
        assert_eq!(
            numeric(&encode(&[1], -1, 0, 4)).unwrap(),
            Value::Text("0.0001".into())
        );
        // 2^64, beyond i64: exact text
        assert_eq!(
            numeric(&encode(&[1844, 6744, 737, 955, 1616], 4, 0, 0)).unwrap(),
            Value::Text("18446744073709551616".into())
        );
        assert_eq!(numeric(&encode(&[], 0, 0, 0)).unwrap(), Value::Integer(0));
    }
}
