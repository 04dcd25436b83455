//! `tally bench ledger`: transfers through the production path (sequencer + store), durably.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::Args;
use ledger::{AccountFlags, Currency, Event, EventResult, NewAccount, NewTransfer, TransferFlags};
use sequencer::{Sequencer, SequencerHandle};
use store::InvariantReport;

use crate::progress::Progress;

/// Largest run the command accepts, to keep a typo from filling the disk.
const TRANSFERS_MAX: u64 = 1_000_000_000;
const ACCOUNTS_MAX: u64 = 100_000_000;
const SUBMITTERS_MAX: usize = 256;

#[derive(Debug, Args)]
pub struct LedgerArgs {
    /// Data directory for the store; it must not hold a store yet (default: a new temporary
    /// directory, removed afterwards).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    #[command(flatten)]
    database: crate::backend::DatabaseArgs,
    /// Transfers to commit.
    #[arg(long, default_value_t = 1_000_000)]
    transfers: u64,
    /// Accounts to create first.
    #[arg(long, default_value_t = 10_000)]
    accounts: u64,
    /// Transfers per request (a batch gathers requests up to 8,190 events).
    #[arg(long, default_value_t = ledger::BATCH_EVENTS_MAX)]
    batch: usize,
    /// Debit every transfer from one of the first H accounts (0: uniform).
    #[arg(long, default_value_t = 0)]
    hot_accounts: u64,
    /// Percentage of transfers that are pending (two-phase); each is posted by a later one.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=50))]
    pending_percent: u8,
    /// Concurrent submitters (two keep both stages of the pipeline busy).
    #[arg(long, default_value_t = 2)]
    submitters: usize,
    /// Seed of the workload.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// splitmix64: a small, fast, seedable generator for workloads (not for secrets).
#[derive(Debug, Clone)]
pub struct Workload(u64);

impl Workload {
    pub fn new(seed: u64) -> Self {
        Workload(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (bound > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(bound)) >> 64) as u64
    }
}

pub fn currency() -> Currency {
    Currency::parse("USD").expect("valid code")
}

pub fn create_accounts(
    handle: &SequencerHandle,
    ids: impl Iterator<Item = u128>,
    flags: AccountFlags,
) -> anyhow::Result<()> {
    let ids: Vec<u128> = ids.collect();
    for chunk in ids.chunks(ledger::BATCH_EVENTS_MAX) {
        let events = chunk
            .iter()
            .map(|id| {
                Event::CreateAccount(NewAccount {
                    id: *id,
                    currency: currency(),
                    kind: 1,
                    flags,
                    user_data: 0,
                })
            })
            .collect();
        let results = handle.execute(events)?;
        if let Some(bad) = results.iter().find(|result| !result.is_committed()) {
            bail!("creating accounts failed: {bad}");
        }
    }
    Ok(())
}

struct Shared {
    next_transfer_id: AtomicU64,
    budget_remaining: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
    failures: Mutex<Vec<EventResult>>,
    committed: AtomicU64,
}

pub fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// CPU seconds this process has used (user and system), from /proc; 0 where unavailable.
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|field| field.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, in clock ticks of 1/100 s on Linux.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// The whole machine's CPU time by state, from the `cpu` line of /proc/stat (clock ticks of
/// all cores together). On a shared virtual machine a benchmark's figures move with what the
/// host takes: `steal` is time a core was ready to run but the hypervisor ran something else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostTimes {
    pub busy: u64,
    /// Idle, including waiting for I/O.
    pub idle: u64,
    pub steal: u64,
}

impl HostTimes {
    /// Now; `None` where /proc/stat cannot be read.
    pub fn now() -> Option<HostTimes> {
        std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| HostTimes::parse(&stat))
    }

    /// The `cpu` line: user nice system idle iowait irq softirq steal (guest time is already
    /// counted in user).
    fn parse(stat: &str) -> Option<HostTimes> {
        let line = stat.lines().find(|line| line.starts_with("cpu "))?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|field| field.parse().ok())
            .collect::<Option<_>>()?;
        let field = |index: usize| fields.get(index).copied().unwrap_or(0);
        Some(HostTimes {
            busy: field(0) + field(1) + field(2) + field(5) + field(6),
            idle: field(3) + field(4),
            steal: field(7),
        })
    }

    /// Shares of the time since `earlier`, in per cent: (idle, steal); `None` if no time passed.
    pub fn shares_since(&self, earlier: &HostTimes) -> Option<(f64, f64)> {
        let busy = self.busy.saturating_sub(earlier.busy);
        let idle = self.idle.saturating_sub(earlier.idle);
        let steal = self.steal.saturating_sub(earlier.steal);
        let total = busy + idle + steal;
        (total > 0).then(|| {
            (
                idle as f64 * 100.0 / total as f64,
                steal as f64 * 100.0 / total as f64,
            )
        })
    }
}

/// Bytes this process has caused to be written to storage, from /proc; 0 where unavailable.
pub fn storage_bytes_written() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

/// The value at `per_mille` of `sorted`, divided by 1,000 (microseconds to milliseconds).
pub(crate) fn percentile(sorted: &[u64], per_mille: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() * per_mille).div_ceil(1000)).clamp(1, sorted.len()) - 1;
    sorted[index] as f64 / 1000.0
}

pub fn run(args: LedgerArgs) -> anyhow::Result<()> {
    ensure!(
        args.transfers > 0 && args.transfers <= TRANSFERS_MAX,
        "--transfers must be between 1 and {TRANSFERS_MAX}"
    );
    ensure!(
        args.accounts >= 2 && args.accounts <= ACCOUNTS_MAX,
        "--accounts must be between 2 and {ACCOUNTS_MAX}"
    );
    ensure!(
        args.batch >= 1 && args.batch <= ledger::BATCH_EVENTS_MAX,
        "--batch must be between 1 and {}",
        ledger::BATCH_EVENTS_MAX
    );
    ensure!(
        args.hot_accounts < args.accounts,
        "--hot-accounts must be below --accounts"
    );
    ensure!(
        args.submitters >= 1 && args.submitters <= SUBMITTERS_MAX,
        "--submitters must be between 1 and {SUBMITTERS_MAX}"
    );

    let temporary;
    let directory = match &args.data {
        Some(directory) => {
            ensure!(
                !directory.join(store_sqlite::DATABASE_FILE_NAME).exists(),
                "{} already holds a store; the benchmark needs a fresh one",
                directory.display()
            );
            directory.clone()
        }
        None => {
            temporary = tempfile::Builder::new()
                .prefix("tally-bench-")
                .tempdir_in(std::env::temp_dir())?;
            temporary.path().to_path_buf()
        }
    };
    // The operator's log key lives in the directory whichever the store.
    let store = crate::backend::open_store(&directory, &args.database)?;
    ensure!(
        store.reader()?.head()?.batches == 0,
        "{} already holds a ledger; the benchmark needs a fresh one",
        crate::backend::describe(&directory, &args.database)
    );
    let sequencer = Sequencer::start(store.as_ref(), crate::sequencer_config(&directory)?)?;
    let handle = sequencer.handle();
    if !args.json {
        eprintln!(
            "store: {}",
            crate::backend::describe(&directory, &args.database)
        );
        eprintln!("creating {} accounts", args.accounts);
    }
    create_accounts(
        &handle,
        1..=u128::from(args.accounts),
        AccountFlags::empty(),
    )?;

    let shared = Arc::new(Shared {
        next_transfer_id: AtomicU64::new(1),
        budget_remaining: AtomicU64::new(args.transfers),
        latencies_us: Mutex::new(Vec::new()),
        failures: Mutex::new(Vec::new()),
        committed: AtomicU64::new(0),
    });
    let cpu_before = cpu_seconds();
    let written_before = storage_bytes_written();
    let progress = Progress::start("transfers", args.transfers, !args.json);
    let counter = progress.counter();
    let started = Instant::now();
    let threads: Vec<_> = (0..args.submitters)
        .map(|index| {
            let handle = handle.clone();
            let shared = shared.clone();
            let counter = counter.clone();
            let config = SubmitterConfig {
                accounts: args.accounts,
                hot_accounts: args.hot_accounts,
                pending_percent: u64::from(args.pending_percent),
                batch: args.batch,
                seed: args.seed.wrapping_add(index as u64 * 7919),
            };
            std::thread::spawn(move || submit_loop(&handle, &shared, &counter, config))
        })
        .collect();
    for thread in threads {
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("a submitter panicked"))??;
    }
    let elapsed = started.elapsed();
    drop(progress);
    sequencer.shutdown();
    let cpu = cpu_seconds() - cpu_before;
    let written = storage_bytes_written().saturating_sub(written_before);

    let failures = shared.failures.lock().expect("no poisoned lock").clone();
    let committed = shared.committed.load(Ordering::Relaxed);
    let mut reader = store.reader()?;
    let invariants = InvariantReport::check(reader.as_mut())?;
    let mut latencies = shared
        .latencies_us
        .lock()
        .expect("no poisoned lock")
        .clone();
    latencies.sort_unstable();
    let transfers_per_second = committed as f64 / elapsed.as_secs_f64().max(1e-9);
    let report = serde_json::json!({
        "backend": store.backend(),
        "transfers": committed,
        "accounts": args.accounts,
        "batch": args.batch,
        "hot_accounts": args.hot_accounts,
        "pending_percent": args.pending_percent,
        "submitters": args.submitters,
        "elapsed_seconds": elapsed.as_secs_f64(),
        "transfers_per_second": transfers_per_second.round(),
        "batch_latency_ms": {
            "p50": percentile(&latencies, 500),
            "p99": percentile(&latencies, 990),
            "p100": percentile(&latencies, 1000),
        },
        "requests": latencies.len(),
        "peak_rss_bytes": peak_rss_bytes(),
        "cpu_seconds": cpu,
        "storage_bytes_written": written,
        "rejected": failures.len(),
        "invariants_hold": invariants.holds(),
    });
    if args.json {
        println!("{report}");
    } else {
        println!("backend            {}", store.backend());
        println!(
            "transfers          {committed} ({} rejected)",
            failures.len()
        );
        println!("accounts           {}", args.accounts);
        println!("elapsed            {:.2} s", elapsed.as_secs_f64());
        println!("throughput         {transfers_per_second:.0} transfers/s");
        println!(
            "batch latency      p50 {:.1} ms, p99 {:.1} ms, p100 {:.1} ms ({} requests of up to {} transfers)",
            percentile(&latencies, 500),
            percentile(&latencies, 990),
            percentile(&latencies, 1000),
            latencies.len(),
            args.batch
        );
        println!(
            "peak memory        {:.1} MiB",
            peak_rss_bytes() as f64 / (1024.0 * 1024.0)
        );
        println!(
            "invariants         {}",
            if invariants.holds() { "hold" } else { "BROKEN" }
        );
    }
    ensure!(
        failures.is_empty(),
        "{} transfers were rejected (first: {})",
        failures.len(),
        failures[0]
    );
    ensure!(
        invariants.holds(),
        "the ledger invariants do not hold after the run: {invariants:?}"
    );
    Ok(())
}

#[derive(Debug, Clone, Copy)]
struct SubmitterConfig {
    accounts: u64,
    hot_accounts: u64,
    pending_percent: u64,
    batch: usize,
    seed: u64,
}

fn submit_loop(
    handle: &SequencerHandle,
    shared: &Shared,
    progress: &AtomicU64,
    config: SubmitterConfig,
) -> anyhow::Result<()> {
    let mut random = Workload::new(config.seed);
    let mut pending_ids: Vec<u128> = Vec::new();
    loop {
        // Claim up to a request's worth of the transfer budget.
        let wanted = config.batch as u64;
        let claimed = shared
            .budget_remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left.saturating_sub(wanted))
            })
            .expect("the closure always returns Some")
            .min(wanted);
        if claimed == 0 && pending_ids.is_empty() {
            return Ok(());
        }
        let mut events = Vec::with_capacity(config.batch);
        let first_id = shared
            .next_transfer_id
            .fetch_add(claimed.max(pending_ids.len() as u64), Ordering::Relaxed);
        let mut next_id = u128::from(first_id);
        let mut posts_due = std::mem::take(&mut pending_ids);
        for _ in 0..claimed {
            let id = next_id;
            next_id += 1;
            if random.below(100) >= config.pending_percent {
                if let Some(pending_id) = posts_due.pop() {
                    events.push(post(id, pending_id));
                    continue;
                }
            }
            let debit = if config.hot_accounts > 0 {
                1 + random.below(config.hot_accounts)
            } else {
                1 + random.below(config.accounts)
            };
            let mut credit = 1 + random.below(config.accounts);
            if credit == debit {
                credit = credit % config.accounts + 1;
            }
            let pending = random.below(100) < config.pending_percent;
            if pending {
                pending_ids.push(id);
            }
            events.push(Event::CreateTransfer(NewTransfer {
                id,
                debit_account_id: u128::from(debit),
                credit_account_id: u128::from(credit),
                amount: u128::from(1 + random.below(10_000)),
                pending_id: 0,
                user_data: 0,
                timeout_seconds: 0,
                kind: 1,
                flags: if pending {
                    TransferFlags::PENDING
                } else {
                    TransferFlags::empty()
                },
                currency: currency(),
            }));
        }
        // The budget is spent: post what is still pending, beyond the budget.
        if claimed == 0 {
            for pending_id in posts_due.drain(..) {
                let id = next_id;
                next_id += 1;
                events.push(post(id, pending_id));
            }
        }
        pending_ids.extend(posts_due);
        let count = events.len() as u64;
        let submitted = Instant::now();
        let results = handle.execute(events).context("committing a request")?;
        let latency = submitted.elapsed();
        shared
            .latencies_us
            .lock()
            .expect("no poisoned lock")
            .push(duration_us(latency));
        let rejected: Vec<EventResult> = results
            .iter()
            .copied()
            .filter(|result| *result != EventResult::Ok)
            .collect();
        shared
            .committed
            .fetch_add(count - rejected.len() as u64, Ordering::Relaxed);
        progress.fetch_add(count, Ordering::Relaxed);
        if !rejected.is_empty() {
            shared
                .failures
                .lock()
                .expect("no poisoned lock")
                .extend(rejected);
        }
    }
}

fn duration_us(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn post(id: u128, pending_id: u128) -> Event {
    Event::CreateTransfer(NewTransfer {
        id,
        debit_account_id: 0,
        credit_account_id: 0,
        amount: 0,
        pending_id,
        user_data: 0,
        timeout_seconds: 0,
        kind: 1,
        flags: TransferFlags::POST_PENDING,
        currency: currency(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_times_are_read_from_the_cpu_line_and_shared_out_over_an_interval() {
        let before =
            HostTimes::parse("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n")
                .unwrap();
        assert_eq!(
            before,
            HostTimes {
                busy: 150,
                idle: 850,
                steal: 0
            }
        );
        // 200 ticks later: 150 busy (user, system, irq, softirq), 30 idle, 20 stolen.
        let after = HostTimes::parse("cpu  200 0 90 820 60 5 5 20 0 0\n").unwrap();
        let (idle, steal) = after.shares_since(&before).unwrap();
        assert_eq!((idle, steal), (15.0, 10.0));
        assert_eq!(before.shares_since(&before), None);
        assert_eq!(HostTimes::parse("intr 1 2 3\n"), None);
        assert_eq!(HostTimes::parse("cpu  1 x 3\n"), None);
    }
}
