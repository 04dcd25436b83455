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
    counter(
        "tally_ledger_batches_retried_total",
        "Batches another node's batch overtook on a shared database, applied again.",
        Metrics::read(&metrics.batches_retried),
    );
    let workers = &state.workers;
    let read =
        |value: &std::sync::atomic::AtomicU64| value.load(std::sync::atomic::Ordering::Relaxed);
    counter(
        "tally_witness_cosignatures_total",
        "Witness cosignatures collected and stored for the log's checkpoints.",
        read(&workers.cosignatures_stored),
    );
    counter(
        "tally_witness_failures_total",
        "Checkpoint submissions a witness refused or did not answer.",
        read(&workers.cosigning_failures),
    );
    counter(
        "tally_audit_runs_total",
        "Self-audits of the trust log run.",
        read(&workers.audit_runs),
    );
    counter(
        "tally_audit_failures_total",
        "Self-audits that found the trust log and the ledger's rows disagreeing.",
        read(&workers.audit_failures),
    );
    counter(
        "tally_notifications_delivered_total",
        "Merchant notifications delivered (answered 2xx).",
        read(&workers.notifications_delivered),
    );
    counter(
        "tally_notification_failures_total",
        "Notification attempts that failed (retried with back-off).",
        read(&workers.notification_failures),
    );
    counter(
        "tally_orders_expired_total",
        "Unpaid orders closed at their expiry.",
        read(&workers.orders_expired),
    );
    counter(
        "tally_red_envelopes_expired_total",
        "Red envelopes closed at their expiry, what was left given back.",
        read(&workers.envelopes_expired),
    );
    let mut gauge = |name: &str, help: &str, value: u64| {
        let _ = writeln!(
            text,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    gauge(
        "tally_audit_ok",
        "1 while the last self-audit held, 0 after one failed.",
        read(&workers.audit_ok),
    );
    gauge(
        "tally_audit_verified_leaves",
        "Leaves of the trust log the self-audit has re-derived and found matching.",
        read(&workers.audit_verified_leaves),
    );
    gauge(
        "tally_audit_last_run_timestamp_seconds",
        "Unix time of the last self-audit.",
        read(&workers.audit_last_run_seconds),
    );
    gauge(
        "tally_ledger_events_queued",
        "Events submitted to the sequencer and not yet gathered into a batch.",
        Metrics::read(&metrics.events_queued),
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
