//! Counters the pipeline keeps for operators (rendered as Prometheus text by the server).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the commit-duration histogram, in milliseconds.
pub const COMMIT_BUCKETS_MS: [u64; 10] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

#[derive(Debug, Default)]
pub struct Metrics {
    /// Batches made durable.
    pub batches_committed: AtomicU64,
    /// Events in durable batches, whatever their result.
    pub events_committed: AtomicU64,
    /// Transfers created by durable batches.
    pub transfers_committed: AtomicU64,
    /// Pending transfers whose hold expired.
    pub pending_expired: AtomicU64,
    /// Batches whose write failed (their requests were answered with an error).
    pub commit_failures: AtomicU64,
    /// Batches another writer of a shared store overtook, their requests applied again.
    pub batches_retried: AtomicU64,
    /// Cumulative histogram of the store's commit time: one count per bucket of
    /// `COMMIT_BUCKETS_MS`, then the overflow bucket.
    pub commit_duration_buckets: [AtomicU64; COMMIT_BUCKETS_MS.len() + 1],
    pub commit_duration_micros_total: AtomicU64,
    /// Events submitted and not yet gathered into a batch.
    pub events_queued: AtomicU64,
}

impl Metrics {
    pub(crate) fn record_commit(&self, duration: Duration) {
        let millis = duration.as_millis();
        let bucket = COMMIT_BUCKETS_MS
            .iter()
            .position(|bound| millis <= u128::from(*bound))
            .unwrap_or(COMMIT_BUCKETS_MS.len());
        self.commit_duration_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.commit_duration_micros_total
            .fetch_add(micros, Ordering::Relaxed);
    }

    pub fn read(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
