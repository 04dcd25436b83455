//! `tally bench push` (hidden): pushes transfers until killed, writing the id of every
//! acknowledged transfer to a file. The crash tests kill it at random moments and check that
//! every acknowledged transfer survived; with `--database-url` it pushes to PostgreSQL, and the
//! fail-over test kills the primary under it.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ledger::{AccountFlags, Event, EventResult, NewTransfer, TransferFlags};
use sequencer::Sequencer;

use crate::backend::{open_store, DatabaseArgs};

use crate::bench::{create_accounts, currency, Workload};

/// How long the worker waits after a failed batch with `--keep-going`.
const FAILURE_PAUSE_MS: u64 = 50;

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The data directory (the SQLite store, unless --database-url; the log's signing key).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    #[command(flatten)]
    database: DatabaseArgs,
    /// Accounts 1..=N, wallets that may not go negative, funded from account N+1.
    #[arg(long, default_value_t = 100)]
    accounts: u64,
    /// Append the id of each acknowledged transfer here, one per line.
    #[arg(long, value_name = "FILE")]
    ack_file: PathBuf,
    /// Stop after this many requests (0: until killed).
    #[arg(long, default_value_t = 0)]
    requests: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Keep going when a batch fails (say so on stderr, acknowledge none of it), as a server
    /// does when its database goes away for a while; without it, the first failure ends the
    /// worker.
    #[arg(long)]
    keep_going: bool,
}

pub fn run(args: PushArgs) -> anyhow::Result<()> {
    let store = open_store(&args.data, &args.database)?;
    let head = store.reader()?.head()?;
    let sequencer = Sequencer::start(store.as_ref(), crate::sequencer_config(&args.data)?)?;
    let handle = sequencer.handle();
    let funding = u128::from(args.accounts) + 1;
    create_accounts(
        &handle,
        1..=u128::from(args.accounts),
        AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
    )?;
    create_accounts(&handle, std::iter::once(funding), AccountFlags::empty())?;
    let mut acks = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.ack_file)
        .with_context(|| format!("opening {}", args.ack_file.display()))?;
    let mut next_id = head.transfer_id_max + 1;
    let mut random = Workload::new(args.seed ^ head.batches);
    let mut sent = 0;
    let mut in_flight = std::collections::VecDeque::new();
    loop {
        if args.requests != 0 && sent == args.requests {
            break;
        }
        let size = 1 + random.below(300) as usize;
        let mut events = Vec::with_capacity(size);
        for _ in 0..size {
            let id = next_id;
            next_id += 1;
            let choice = random.below(10);
            let (debit, credit, flags) = if choice < 3 {
                (
                    funding,
                    1 + u128::from(random.below(args.accounts)),
                    TransferFlags::empty(),
                )
            } else {
                let debit = 1 + u128::from(random.below(args.accounts));
                let credit = debit % u128::from(args.accounts) + 1;
                let flags = if choice == 9 {
                    TransferFlags::PENDING
                } else {
                    TransferFlags::empty()
                };
                (debit, credit, flags)
            };
            events.push(Event::CreateTransfer(NewTransfer {
                id,
                debit_account_id: debit,
                credit_account_id: credit,
                amount: u128::from(1 + random.below(5_000)),
                pending_id: 0,
                user_data: 0,
                timeout_seconds: if flags == TransferFlags::PENDING {
                    1
                } else {
                    0
                },
                kind: 1,
                flags,
                currency: currency(),
            }));
        }
        let ids: Vec<u128> = events
            .iter()
            .map(|event| match event {
                Event::CreateTransfer(transfer) => transfer.id,
                Event::CreateAccount(account) => account.id,
            })
            .collect();
        in_flight.push_back((ids, handle.submit(events)?));
        sent += 1;
        // Keep a few requests in flight so batches really group.
        while in_flight.len() > 3 {
            let (ids, ticket) = in_flight.pop_front().expect("non-empty");
            answer(&mut acks, &ids, ticket.wait(), args.keep_going)?;
        }
    }
    while let Some((ids, ticket)) = in_flight.pop_front() {
        answer(&mut acks, &ids, ticket.wait(), args.keep_going)?;
    }
    sequencer.shutdown();
    Ok(())
}

/// Records an answer; a failed batch ends the worker, or with `keep_going` is reported and
/// skipped (after a pause, not to spin while the database is away).
fn answer<E: Into<anyhow::Error>>(
    acks: &mut std::fs::File,
    ids: &[u128],
    answer: Result<Vec<EventResult>, E>,
    keep_going: bool,
) -> anyhow::Result<()> {
    match answer {
        Ok(results) => record(acks, ids, results),
        Err(error) if keep_going => {
            eprintln!("batch failed, not acknowledged: {:#}", error.into());
            std::thread::sleep(std::time::Duration::from_millis(FAILURE_PAUSE_MS));
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

fn record(acks: &mut std::fs::File, ids: &[u128], results: Vec<EventResult>) -> anyhow::Result<()> {
    let mut lines = String::new();
    for (id, result) in ids.iter().zip(results) {
        if result == EventResult::Ok {
            lines.push_str(&format!("{id}\n"));
        }
    }
    acks.write_all(lines.as_bytes())?;
    Ok(())
}
