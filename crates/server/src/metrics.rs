//! Prometheus text exposition (format 0.0.4) of the process's counters.

use std::fmt::Write;

use sequencer::{Metrics, COMMIT_BUCKETS_MS};

use crate::AppState;

pub(crate) fn render(state: &AppState) -> String {
    let metrics = state.sequencer.metrics();
    let mut text = String::new();
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = writeln!(
            text,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    };
    counter(
        "tally_ledger_batches_committed_total",
        "Ledger batches made durable.",
        Metrics::read(&metrics.batches_committed),
    );
    counter(
        "tally_ledger_events_committed_total",
        "Events in durable batches, whatever their result.",
        Metrics::read(&metrics.events_committed),
    );
    counter(
        "tally_ledger_transfers_committed_total",
        "Transfers created by durable batches.",
        Metrics::read(&metrics.transfers_committed),
    );
    counter(
        "tally_ledger_pending_expired_total",
        "Pending transfers whose hold expired.",
        Metrics::read(&metrics.pending_expired),
    );
    counter(
        "tally_ledger_commit_failures_total",
        "Batches whose write failed.",
        Metrics::read(&metrics.commit_failures),
    );
    let name = "tally_ledger_commit_duration_seconds";
    let _ = writeln!(
        text,
        "# HELP {name} Time the store took to make a batch durable.\n# TYPE {name} histogram"
    );
    let mut cumulative = 0;
    for (bound, count) in COMMIT_BUCKETS_MS
        .iter()
        .zip(&metrics.commit_duration_buckets)
    {
        cumulative += Metrics::read(count);
        let _ = writeln!(
            text,
            "{name}_bucket{{le=\"{}\"}} {cumulative}",
            *bound as f64 / 1000.0
        );
    }
    cumulative += Metrics::read(&metrics.commit_duration_buckets[COMMIT_BUCKETS_MS.len()]);
    let _ = writeln!(text, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let micros = Metrics::read(&metrics.commit_duration_micros_total);
    let _ = writeln!(text, "{name}_sum {}", micros as f64 / 1e6);
    let _ = writeln!(text, "{name}_count {cumulative}");
    let _ = writeln!(
        text,
        "# HELP tally_uptime_seconds Seconds since the server started.\n# TYPE tally_uptime_seconds gauge\ntally_uptime_seconds {}",
        state.started.elapsed().as_secs()
    );
    text
}
