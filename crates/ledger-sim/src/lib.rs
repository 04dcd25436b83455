//! A seeded simulator for the ledger core.
//!
//! One seed drives a random [`Workload`] (valid, invalid and duplicate requests, linked chains,
//! two-phase transfers, balancing transfers, a clock that lets pending transfers expire)
//! against `ledger::apply` and against [`Model`], a deliberately simple reference model of
//! the same rules. After every batch the [`Harness`] checks that both agree event by event,
//! that `Applied` names everything a store must write, that debits equal credits per currency
//! and that every account respects its flags. A failure carries the seed and the batch
//! number, which are all it takes to replay it: `cargo xtask sim --seed N`.

mod harness;
mod model;
mod rng;
mod workload;

#[cfg(test)]
mod tests;

use std::fmt;

use ledger::EventResult;
/// The largest batch the core accepts, re-exported for the command line.
pub use ledger::BATCH_EVENTS_MAX;

pub use harness::{check_invariants, Harness, Route};
pub use model::{expiry_time, Expected, Model};
pub use rng::Rng;
pub use workload::{PlannedBatch, Workload};

/// Largest batch the simulator makes unless told otherwise.
pub const BATCH_EVENTS_MAX_DEFAULT: usize = 200;
const _: () = assert!(BATCH_EVENTS_MAX_DEFAULT <= BATCH_EVENTS_MAX);

/// Share of batches applied through the prefetch route (see [`Route::Prefetch`]).
const PREFETCH_ROUTE_PERCENT: u64 = 50;

/// How the simulator shapes its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Batches hold between one and this many events; at most `ledger::BATCH_EVENTS_MAX`.
    pub batch_events_max: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch_events_max: BATCH_EVENTS_MAX_DEFAULT,
        }
    }
}

/// Where the core and the model parted ways, or an invariant broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub seed: u64,
    /// Counted from zero.
    pub batch: u64,
    pub description: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} batch {}: {}",
            self.seed, self.batch, self.description
        )
    }
}

impl std::error::Error for Failure {}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub seed: u64,
    pub batches: u64,
    pub events: u64,
    /// How many events got each result, indexed by result code.
    pub results: [u64; EventResult::ALL.len()],
    pub accounts_created: u64,
    pub transfers_committed: u64,
    pub pendings_expired: u64,
    /// Batches applied through the prefetch route.
    pub batches_prefetched: u64,
}

impl Report {
    fn new(seed: u64) -> Self {
        Report {
            seed,
            batches: 0,
            events: 0,
            results: [0; EventResult::ALL.len()],
            accounts_created: 0,
            transfers_committed: 0,
            pendings_expired: 0,
            batches_prefetched: 0,
        }
    }

    /// Each result with how many events got it, in code order, leaving out those never seen.
    pub fn histogram(&self) -> Vec<(EventResult, u64)> {
        EventResult::ALL
            .iter()
            .zip(self.results)
            .filter(|(_, count)| *count > 0)
            .map(|(result, count)| (*result, count))
            .collect()
    }

    pub fn count(&self, result: EventResult) -> u64 {
        self.results[result.code() as usize]
    }
}

/// The workload and the harness, one batch at a time.
#[derive(Debug)]
pub struct Simulator {
    harness: Harness,
    workload: Workload,
    /// Separate from the workload's, so that routing does not change the batches.
    route_rng: Rng,
    report: Report,
}

impl Simulator {
    /// Panics if `options.batch_events_max` is not in `1..=ledger::BATCH_EVENTS_MAX`.
    pub fn new(seed: u64, options: Options) -> Self {
        assert!(
            (1..=BATCH_EVENTS_MAX).contains(&options.batch_events_max),
            "batch_events_max must be between 1 and {BATCH_EVENTS_MAX}"
        );
        Simulator {
            harness: Harness::new(seed),
            workload: Workload::new(seed, options.batch_events_max),
            route_rng: Rng::new(seed ^ 0x5EED_5EED_5EED_5EED),
            report: Report::new(seed),
        }
    }

    pub fn report(&self) -> &Report {
        &self.report
    }

    pub fn harness(&self) -> &Harness {
        &self.harness
    }

    /// Generates, applies and checks one batch of at most `events_left` events.
    pub fn step(&mut self, events_left: usize) -> Result<(), Failure> {
        let plan = self.workload.next_batch(
            self.harness.model(),
            self.harness.timestamp_last(),
            events_left,
        );
        let route = if self.route_rng.percent(PREFETCH_ROUTE_PERCENT) {
            Route::Prefetch
        } else {
            Route::FullState
        };
        let applied = self
            .harness
            .apply(plan.timestamp, &plan.expiring, &plan.events, route)?;
        let report = &mut self.report;
        report.batches += 1;
        report.events += plan.events.len() as u64;
        for result in &applied.results {
            report.results[result.code() as usize] += 1;
        }
        report.accounts_created += applied.accounts_created.len() as u64;
        report.transfers_committed += applied.transfers.len() as u64;
        report.pendings_expired += applied.expired.len() as u64;
        report.batches_prefetched += u64::from(route == Route::Prefetch);
        Ok(())
    }

    /// Runs batches until `events_total` events have been applied, then compares the whole
    /// state once more.
    pub fn run_to(&mut self, events_total: u64) -> Result<(), Failure> {
        while self.report.events < events_total {
            let events_left =
                usize::try_from(events_total - self.report.events).unwrap_or(usize::MAX);
            self.step(events_left)?;
        }
        self.harness.check_full_state()
    }
}

/// Runs the simulator from `seed` for `events_total` events.
pub fn run(seed: u64, events_total: u64, options: Options) -> Result<Report, Failure> {
    let mut simulator = Simulator::new(seed, options);
    simulator.run_to(events_total)?;
    Ok(simulator.report)
}
