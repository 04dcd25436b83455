//! `tally bench receipts`: how long a receipt takes to build from a store (the work behind
//! `GET /v1/log/receipts/{id}`): the transfer, the latest checkpoint, and an inclusion proof
//! read from the stored tiles.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Context};
use clap::Args;
use store::{LogLeaf, Store};
use store_sqlite::SqliteStore;

use crate::bench::Workload;

const SAMPLES_MAX: u64 = 10_000_000;

#[derive(Debug, Args)]
pub struct ReceiptsArgs {
    /// A data directory holding a store (for example one `tally bench ledger --data DIR` left).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Receipts to build, for random leaves.
    #[arg(long, default_value_t = 10_000)]
    samples: u64,
    /// Seed choosing the leaves.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ReceiptsArgs) -> anyhow::Result<()> {
    ensure!(
        (1..=SAMPLES_MAX).contains(&args.samples),
        "--samples must be between 1 and {SAMPLES_MAX}"
    );
    let store = SqliteStore::open_existing(&args.data)?;
    let mut reader = store.reader()?;
    let checkpoint = reader
        .latest_checkpoint()?
        .context("the store has no signed checkpoint yet")?;
    // Pick transfers by leaf number, under the latest checkpoint, before timing anything.
    let mut random = Workload::new(args.seed);
    let mut transfer_ids = Vec::with_capacity(args.samples as usize);
    let mut leaves = Vec::new();
    while (transfer_ids.len() as u64) < args.samples {
        let leaf = random.below(checkpoint.size);
        leaves.clear();
        reader.leaves(leaf, leaf + 1, &mut leaves)?;
        if let Some((_, LogLeaf::Transfer(transfer))) = leaves.first() {
            transfer_ids.push(transfer.id);
        }
    }
    let mut latencies_ns = Vec::with_capacity(transfer_ids.len());
    let started = Instant::now();
    for id in &transfer_ids {
        let began = Instant::now();
        let receipt = sequencer::transfer_receipt(reader.as_mut(), *id)?;
        latencies_ns.push(began.elapsed().as_nanos() as u64);
        ensure!(
            receipt.tree_size >= checkpoint.size,
            "a receipt under an older checkpoint"
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies_ns.sort_unstable();
    let millis = |per_mille: usize| crate::bench::percentile(&latencies_ns, per_mille) / 1e3;
    let report = serde_json::json!({
        "leaves": checkpoint.size,
        "samples": latencies_ns.len(),
        "receipts_per_second": (latencies_ns.len() as f64 / elapsed).round(),
        "latency_ms": { "p50": millis(500), "p99": millis(990), "p100": millis(1000) },
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{} receipts from a log of {} leaves: p50 {:.3} ms, p99 {:.3} ms, p100 {:.3} ms ({:.0}/s, one thread)",
            latencies_ns.len(),
            checkpoint.size,
            millis(500),
            millis(990),
            millis(1000),
            latencies_ns.len() as f64 / elapsed
        );
    }
    Ok(())
}
