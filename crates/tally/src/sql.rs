//! `tally sql`: read-only SQL over the store, for operators and auditors.

use std::io::Write;

use anyhow::Context;
use clap::Args;
use store::{QueryOutput, Value};

use crate::DataArgs;

/// Most rows the command prints; past it the query is refused with advice to add a LIMIT.
const QUERY_ROWS_MAX: usize = 1_000_000;

#[derive(Debug, Args)]
pub struct SqlArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    database: crate::backend::DatabaseArgs,
    /// Print a JSON array of row objects.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print CSV with a header row.
    #[arg(long)]
    csv: bool,
    /// The query, e.g. "SELECT currency, sum(credits_posted) FROM accounts GROUP BY currency".
    query: String,
}

pub fn run(args: SqlArgs) -> anyhow::Result<()> {
    let directory = args.data.directory();
    let store = crate::backend::open_existing_store(&directory, &args.database)?;
    let limits = store::QueryLimits {
        rows_max: QUERY_ROWS_MAX,
        time_max: None,
    };
    let output = store.query(&args.query, limits)?;
    anyhow::ensure!(
        !output.truncated,
        "the query returns more than {QUERY_ROWS_MAX} rows; add a LIMIT"
    );
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        serde_json::to_writer(&mut out, &to_json(&output))?;
        writeln!(out)?;
    } else if args.csv {
        write_csv(&mut out, &output)?;
    } else {
        write_table(&mut out, &output)?;
    }
    out.flush().context("writing the result")?;
    Ok(())
}

fn json_value(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Integer(integer) => serde_json::Value::from(*integer),
        Value::Real(real) => serde_json::Value::from(*real),
        Value::Text(text) => serde_json::Value::from(text.as_str()),
        Value::Blob(bytes) => serde_json::Value::from(hex(bytes)),
    }
}

pub fn to_json(output: &QueryOutput) -> serde_json::Value {
    let rows = output
        .rows
        .iter()
        .map(|row| {
            let object: serde_json::Map<String, serde_json::Value> = output
                .columns
                .iter()
                .zip(row)
                .map(|(column, value)| (column.clone(), json_value(value)))
                .collect();
            serde_json::Value::Object(object)
        })
        .collect();
    serde_json::Value::Array(rows)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_owned(),
        Value::Integer(integer) => integer.to_string(),
        Value::Real(real) => real.to_string(),
        Value::Text(text) => text.clone(),
        Value::Blob(bytes) => format!("x'{}'", hex(bytes)),
    }
}

fn write_csv(out: &mut impl Write, output: &QueryOutput) -> std::io::Result<()> {
    fn field(text: &str) -> String {
        if text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_owned()
        }
    }
    let header: Vec<String> = output.columns.iter().map(|column| field(column)).collect();
    writeln!(out, "{}", header.join(","))?;
    for row in &output.rows {
        let fields: Vec<String> = row
            .iter()
            .map(|value| {
                if *value == Value::Null {
                    String::new()
                } else {
                    field(&text(value))
                }
            })
            .collect();
        writeln!(out, "{}", fields.join(","))?;
    }
    Ok(())
}

fn write_table(out: &mut impl Write, output: &QueryOutput) -> std::io::Result<()> {
    let cells: Vec<Vec<String>> = output
        .rows
        .iter()
        .map(|row| row.iter().map(text).collect())
        .collect();
    let mut widths: Vec<usize> = output
        .columns
        .iter()
        .map(|column| column.chars().count())
        .collect();
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let numeric: Vec<bool> = (0..output.columns.len())
        .map(|index| {
            output
                .rows
                .iter()
                .all(|row| matches!(row[index], Value::Integer(_) | Value::Real(_) | Value::Null))
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .enumerate()
            .map(|(index, cell)| {
                if numeric[index] {
                    format!("{cell:>width$}", width = widths[index])
                } else {
                    format!("{cell:<width$}", width = widths[index])
                }
            })
            .collect::<Vec<_>>()
            .join(" | ")
    };
    writeln!(out, "{}", line(&output.columns))?;
    writeln!(
        out,
        "{}",
        widths
            .iter()
            .map(|width| "-".repeat(*width))
            .collect::<Vec<_>>()
            .join("-+-")
    )?;
    for row in &cells {
        writeln!(out, "{}", line(row))?;
    }
    writeln!(
        out,
        "({} row{})",
        cells.len(),
        if cells.len() == 1 { "" } else { "s" }
    )?;
    Ok(())
}
