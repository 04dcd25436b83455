//! Background workers of `tally serve`: collecting witness cosignatures for the log's
//! checkpoints, the self-audit that re-verifies the newest stretch of the log, delivering
//! merchant notifications, closing expired orders, and settling the bank transfers and bill
//! payments left pending.
//!
//! The first three are plain threads (their work is blocking: SQLite, a blocking HTTP client),
//! each woken by its interval or stopped through a channel, reporting through
//! [`WorkerMetrics`]; the others are tasks on the server's runtime, over the services.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use store::{Store, StoreReader};

use crate::unix_seconds;

/// Counters and gauges of the background workers, rendered in `/metrics`.
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    pub cosignatures_stored: AtomicU64,
    pub cosigning_failures: AtomicU64,
    pub audit_runs: AtomicU64,
    pub audit_failures: AtomicU64,
    /// Leaves the self-audit has re-derived and found matching (a gauge).
    pub audit_verified_leaves: AtomicU64,
    /// 1 while the last audit held, 0 after one failed (a gauge); 1 before the first run.
    pub audit_ok: AtomicU64,
    /// Unix seconds of the last audit run (a gauge).
    pub audit_last_run_seconds: AtomicU64,
    pub notifications_delivered: AtomicU64,
    pub notification_failures: AtomicU64,
    pub orders_expired: AtomicU64,
    pub envelopes_expired: AtomicU64,
}

impl WorkerMetrics {
    pub fn new() -> Arc<WorkerMetrics> {
        let metrics = WorkerMetrics::default();
        metrics.audit_ok.store(1, Ordering::Relaxed);
        Arc::new(metrics)
    }
}

/// A running worker thread; dropping it stops it and waits for it.
#[derive(Debug)]
pub struct Worker {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn spawn(
        name: &str,
        body: impl FnOnce(Receiver<()>) + Send + 'static,
    ) -> std::io::Result<Worker> {
        let (stop, stopped) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || body(stopped))?;
        Ok(Worker {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Waits `interval` or until told to stop; `false` when it is time to stop.
fn wait(stopped: &Receiver<()>, interval: Duration) -> bool {
    matches!(
        stopped.recv_timeout(interval),
        Err(RecvTimeoutError::Timeout)
    )
}

/// A witness the log asks to cosign its checkpoints.
#[derive(Debug)]
pub struct WitnessTarget {
    pub name: String,
    pub client: witness::WitnessClient,
}

/// How long the log waits for a witness's answer.
pub const WITNESS_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest pause after repeated failures of one witness.
const WITNESS_BACKOFF_MAX: Duration = Duration::from_secs(60);

impl WitnessTarget {
    /// `<witness verifier key>@<URL of its submission prefix>`, e.g.
    /// `bank-b+1a2b3c4d+BASE64@http://10.0.0.2:8080/v1/witness`.
    pub fn parse(text: &str) -> Result<WitnessTarget, String> {
        let (key, url) = text
            .split_once('@')
            .ok_or_else(|| format!("{text:?}: expected <witness verifier key>@<URL>"))?;
        let client = witness::WitnessClient::new(url, key, WITNESS_TIMEOUT)
            .map_err(|error| format!("witness {key}: {error}"))?;
        Ok(WitnessTarget {
            name: client.verifier().name().to_owned(),
            client,
        })
    }
}

/// Submits each new signed checkpoint to every witness and stores the cosignatures they
/// return beside the log's own signature.
pub fn start_cosigning(
    store: Arc<dyn Store>,
    targets: Vec<WitnessTarget>,
    metrics: Arc<WorkerMetrics>,
    interval: Duration,
) -> std::io::Result<Worker> {
    Worker::spawn("witness-cosigning", move |stopped| {
        // Per witness: the size it holds as far as we know, and when to try again.
        let mut known: Vec<Option<u64>> = vec![None; targets.len()];
        let mut backoff: Vec<(Duration, u32)> = vec![(Duration::ZERO, 0); targets.len()];
        let mut reader: Option<Box<dyn StoreReader>> = None;
        loop {
            if reader.is_none() {
                reader = store.reader().ok();
            }
            if let Some(reader) = reader.as_mut() {
                cosign_round(
                    &store,
                    reader.as_mut(),
                    &targets,
                    &mut known,
                    &mut backoff,
                    &metrics,
                    interval,
                );
            }
            if !wait(&stopped, interval) {
                return;
            }
        }
    })
}

fn cosign_round(
    store: &Arc<dyn Store>,
    reader: &mut dyn StoreReader,
    targets: &[WitnessTarget],
    known: &mut [Option<u64>],
    backoff: &mut [(Duration, u32)],
    metrics: &WorkerMetrics,
    interval: Duration,
) {
    let checkpoint = match reader.latest_checkpoint() {
        Ok(Some(checkpoint)) => checkpoint,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, "cosigning: reading the latest checkpoint");
            return;
        }
    };
    for (index, target) in targets.iter().enumerate() {
        if known[index] == Some(checkpoint.size) {
            continue;
        }
        let (wait_left, failures) = &mut backoff[index];
        if !wait_left.is_zero() {
            *wait_left = wait_left.saturating_sub(interval);
            continue;
        }
        let cell = std::cell::RefCell::new(&mut *reader);
        let proof_for = |old: u64, new: u64| {
            sequencer::consistency_proof(*cell.borrow_mut(), old, new)
                .map_err(|error| error.to_string())
        };
        match witness::cosign(
            &target.client,
            &checkpoint.note,
            checkpoint.size,
            known[index],
            proof_for,
        ) {
            Ok((line, size)) => {
                known[index] = Some(size);
                *failures = 0;
                let stored = store.admin().and_then(|mut admin| {
                    admin.add_cosignature(checkpoint.size, &target.name, &line, unix_seconds())
                });
                match stored {
                    Ok(()) => {
                        metrics.cosignatures_stored.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(witness = %target.name, size = checkpoint.size, "checkpoint cosigned");
                    }
                    Err(error) => {
                        metrics.cosigning_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(%error, witness = %target.name, "storing a cosignature");
                    }
                }
            }
            Err(error) => {
                metrics.cosigning_failures.fetch_add(1, Ordering::Relaxed);
                *failures = failures.saturating_add(1);
                let pause = interval
                    .saturating_mul(2u32.saturating_pow((*failures).min(16)))
                    .min(WITNESS_BACKOFF_MAX);
                *wait_left = pause;
                if let witness::ClientError::Conflict { size } = &error {
                    known[index] = Some(*size);
                }
                tracing::warn!(%error, witness = %target.name, size = checkpoint.size,
                    retry_in_s = pause.as_secs(), "a witness refused or did not answer");
            }
        }
    }
}

/// Default time between two self-audits.
pub const AUDIT_INTERVAL: Duration = Duration::from_secs(600);

/// What the self-audit has verified so far: the tree rebuilt from the leaves up to a size.
#[derive(Debug)]
pub struct SelfAudit {
    verifier_key: String,
    edge: trustlog::RightEdge,
}

impl SelfAudit {
    /// An audit that starts from the log's first leaf and checks checkpoint signatures with
    /// `verifier_key` (the operator's).
    pub fn new(verifier_key: String) -> SelfAudit {
        SelfAudit {
            verifier_key,
            edge: trustlog::RightEdge::empty(),
        }
    }

    /// An audit that resumes where the last recorded one stopped: the tree at that size is
    /// read from the stored tiles and kept only if its root is the one recorded then (else the
    /// audit starts again from the first leaf, and its first run will say what changed).
    pub fn resume(verifier_key: String, reader: &mut dyn StoreReader) -> SelfAudit {
        let mut audit = SelfAudit::new(verifier_key);
        if let Ok(Some((size, root))) = reader.last_audit() {
            let tiles = sequencer::StoreTiles::new(reader);
            match trustlog::RightEdge::from_tiles(size, &tiles) {
                Ok(edge) if edge.root() == root => audit.edge = edge,
                _ => tracing::warn!(
                    size,
                    "the stored tree no longer has the root the last self-audit recorded; auditing from the first leaf"
                ),
            }
        }
        audit
    }

    /// Leaves verified so far.
    pub fn verified_size(&self) -> u64 {
        self.edge.size()
    }

    /// The root of the tree verified so far.
    pub fn verified_root(&self) -> trustlog::Hash {
        self.edge.root()
    }

    /// Re-derives the leaves appended since the last run from their rows, rebuilds the tree up
    /// to the latest checkpoint, and checks that checkpoint: its signature, its root against
    /// the rebuilt tree (which also proves it consistent with every checkpoint checked
    /// before), and the stored tiles' root at its size. Returns the checkpoint's size.
    pub fn run(&mut self, reader: &mut dyn StoreReader) -> Result<u64, String> {
        let Some(checkpoint) = reader
            .latest_checkpoint()
            .map_err(|error| error.to_string())?
        else {
            return Ok(self.edge.size());
        };
        if checkpoint.size < self.edge.size() {
            return Err(format!(
                "the latest checkpoint (size {}) is smaller than one already verified (size {})",
                checkpoint.size,
                self.edge.size()
            ));
        }
        let note = trustlog::verify_note(&checkpoint.note, &self.verifier_key)
            .map_err(|error| format!("checkpoint at size {}: {error}", checkpoint.size))?;
        let body = trustlog::Checkpoint::parse(&note.text)
            .map_err(|error| format!("checkpoint at size {}: {error}", checkpoint.size))?;
        if body.size() != checkpoint.size || *body.root() != checkpoint.root {
            return Err(format!(
                "checkpoint at size {}: its signed text names another size or root",
                checkpoint.size
            ));
        }
        let mut edge = self.edge.clone();
        let mut leaves = Vec::new();
        while edge.size() < checkpoint.size {
            let from = edge.size();
            let to = checkpoint
                .size
                .min(from + trustlog::APPEND_LEAVES_MAX as u64);
            leaves.clear();
            reader
                .leaves(from, to, &mut leaves)
                .map_err(|error| error.to_string())?;
            let mut hashes = Vec::with_capacity(leaves.len());
            for (expected, (index, leaf)) in (from..to).zip(&leaves) {
                if *index != expected {
                    return Err(format!("leaf {expected} has no transfer or registration"));
                }
                hashes.push(trustlog::leaf_hash(&leaf.bytes()));
            }
            if hashes.len() as u64 != to - from {
                return Err(format!(
                    "leaf {} has no transfer or registration",
                    from + hashes.len() as u64
                ));
            }
            edge = edge
                .append(&hashes)
                .map_err(|error| error.to_string())?
                .edge;
        }
        if edge.root() != checkpoint.root {
            return Err(format!(
                "the leaves re-derived from the rows do not lead to the root of the checkpoint at size {}",
                checkpoint.size
            ));
        }
        let tiles_root = {
            let tiles = sequencer::StoreTiles::new(reader);
            trustlog::RightEdge::from_tiles(checkpoint.size, &tiles).map(|stored| stored.root())
        };
        match tiles_root {
            Ok(root) if root == checkpoint.root => {}
            Ok(_) => {
                return Err(format!(
                    "the stored tiles do not lead to the root of the checkpoint at size {}",
                    checkpoint.size
                ))
            }
            Err(error) => return Err(format!("the stored tiles cannot be read: {error}")),
        }
        self.edge = edge;
        Ok(checkpoint.size)
    }
}

/// Runs the self-audit now and then every `interval`, reporting through `metrics` and the log.
pub fn start_self_audit(
    store: Arc<dyn Store>,
    mut audit: SelfAudit,
    metrics: Arc<WorkerMetrics>,
    interval: Duration,
) -> std::io::Result<Worker> {
    Worker::spawn("self-audit", move |stopped| loop {
        let outcome = store
            .reader()
            .map_err(|error| error.to_string())
            .and_then(|mut reader| audit.run(reader.as_mut()));
        metrics.audit_runs.fetch_add(1, Ordering::Relaxed);
        metrics
            .audit_last_run_seconds
            .store(unix_seconds(), Ordering::Relaxed);
        match outcome {
            Ok(size) => {
                metrics.audit_verified_leaves.store(size, Ordering::Relaxed);
                metrics.audit_ok.store(1, Ordering::Relaxed);
                tracing::info!(verified_leaves = size, "self-audit: the trust log holds");
                if size > 0 {
                    let recorded = store.admin().and_then(|mut admin| {
                        admin.record_audit(size, &audit.verified_root(), unix_seconds())
                    });
                    if let Err(error) = recorded {
                        tracing::warn!(%error, "recording the self-audit's progress");
                    }
                }
            }
            Err(problem) => {
                metrics.audit_failures.fetch_add(1, Ordering::Relaxed);
                metrics.audit_ok.store(0, Ordering::Relaxed);
                tracing::error!(%problem, "SELF-AUDIT FAILED: the trust log does not match the ledger's rows; run `tally verify` and investigate");
            }
        }
        if !wait(&stopped, interval) {
            return;
        }
    })
}

/// Waits before each retry of a notification the merchant did not acknowledge, in seconds,
/// then gives up (about a day in all, as WeChat Pay's schedule).
pub const NOTIFICATION_RETRY_S: [u64; 9] = [15, 30, 180, 600, 1_200, 1_800, 3_600, 10_800, 21_600];
/// Notifications sent per round, at most.
pub const NOTIFICATIONS_PER_ROUND_MAX: usize = 200;
/// How long a merchant's endpoint may take to answer.
pub const NOTIFICATION_TIMEOUT_MS: u64 = 5_000;
/// How much of a merchant's answer is read.
const NOTIFICATION_RESPONSE_BYTES_MAX: u64 = 4 * 1024;

/// Delivers the outbox: every notification with an address is POSTed to it, signed with
/// `Tally-Signature`, until the merchant answers 2xx, with back-off between attempts. Each
/// round's outcomes are recorded in one transaction.
pub fn start_notifications(
    store: Arc<dyn Store>,
    metrics: Arc<WorkerMetrics>,
    interval: Duration,
) -> std::io::Result<Worker> {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(NOTIFICATION_TIMEOUT_MS)))
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .build();
    let agent = ureq::Agent::new_with_config(config);
    // On a shared store one node delivers at a time: the one holding the deliverer's lock,
    // until its session ends (then another takes over within an interval).
    let mut deliverer: Option<(Box<dyn store::SharedLocks>, bool)> = None;
    Worker::spawn("notifications", move |stopped| loop {
        if store.shared() && !holds_deliverer_lock(store.as_ref(), &mut deliverer) {
            if !wait(&stopped, interval) {
                return;
            }
            continue;
        }
        match deliver_round(store.as_ref(), &agent, &metrics) {
            // A full round: there may be more waiting.
            Ok(delivered) if delivered == NOTIFICATIONS_PER_ROUND_MAX => continue,
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "delivering notifications"),
        }
        if !wait(&stopped, interval) {
            return;
        }
    })
}

/// The deliverer's lock among the workers only one node runs at a time.
const DELIVERER_LOCK: i32 = 1;

/// Whether this process delivers notifications now: it holds the deliverer's lock (taking it
/// if it is free), on a session it keeps.
fn holds_deliverer_lock(
    store: &dyn Store,
    session: &mut Option<(Box<dyn store::SharedLocks>, bool)>,
) -> bool {
    if session.is_none() {
        match store.shared_locks() {
            Ok(Some(locks)) => *session = Some((locks, false)),
            Ok(None) | Err(_) => return false,
        }
    }
    let Some((locks, held)) = session.as_mut() else {
        return false;
    };
    match locks.try_lock(services::support::WORKER_LOCK_CLASS, DELIVERER_LOCK) {
        Ok(true) => {
            // Held once, kept for the life of the session (the lock is re-entrant: asking
            // again only checks the session is alive).
            if *held {
                let _ = locks.unlock(services::support::WORKER_LOCK_CLASS, DELIVERER_LOCK);
            }
            *held = true;
            true
        }
        Ok(false) => false,
        Err(_) => {
            *session = None;
            false
        }
    }
}

fn deliver_round(
    store: &dyn Store,
    agent: &ureq::Agent,
    metrics: &WorkerMetrics,
) -> store::StoreResult<usize> {
    let now = unix_seconds();
    let due = store
        .records()?
        .events_due(now, NOTIFICATIONS_PER_ROUND_MAX)?;
    if due.is_empty() {
        return Ok(0);
    }
    let mut merchants = std::collections::HashMap::new();
    let mut reader = store.records()?;
    let mut updates = Vec::with_capacity(due.len());
    for stored in &due {
        let event = &stored.event;
        let Some(url) = &event.notify_url else {
            continue;
        };
        let merchant = match merchants.entry(event.merchant_id) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(reader.merchant(event.merchant_id)?)
            }
        };
        let Some(merchant) = merchant else {
            continue;
        };
        let attempts = stored.attempts + 1;
        let signature = services::signatures::notification_signature(
            &merchant.notify_key,
            unix_seconds(),
            event.payload.as_bytes(),
        );
        let result = agent
            .post(url)
            .header("Tally-Signature", &signature)
            .header("Tally-Event-Id", &format!("evt_{}", event.id))
            .content_type("application/json")
            .send(event.payload.as_bytes());
        let (delivered, last_result) = match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let mut sink = Vec::new();
                let _ = std::io::Read::read_to_end(
                    &mut std::io::Read::take(
                        response.into_body().into_reader(),
                        NOTIFICATION_RESPONSE_BYTES_MAX,
                    ),
                    &mut sink,
                );
                ((200..300).contains(&status), status.to_string())
            }
            Err(error) => (false, error.to_string()),
        };
        let (delivery, next_attempt_at) = if delivered {
            (store::DeliveryState::Delivered, now)
        } else {
            match NOTIFICATION_RETRY_S.get(stored.attempts as usize) {
                Some(wait) => (store::DeliveryState::Pending, now + wait),
                None => {
                    tracing::warn!(
                        event = event.id,
                        "a notification was given up after its last retry"
                    );
                    (store::DeliveryState::Failed, now)
                }
            }
        };
        updates.push(store::DeliveryUpdate {
            event_id: event.id,
            delivery,
            attempts,
            next_attempt_at,
            last_result: Some(last_result),
        });
    }
    store.outbox()?.record_deliveries(&updates)?;
    // Counted once recorded, so that what the metrics say can be read back from the store.
    let delivered = updates
        .iter()
        .filter(|update| update.delivery == store::DeliveryState::Delivered)
        .count() as u64;
    metrics
        .notifications_delivered
        .fetch_add(delivered, Ordering::Relaxed);
    metrics
        .notification_failures
        .fetch_add(updates.len() as u64 - delivered, Ordering::Relaxed);
    Ok(due.len())
}

/// Orders closed per round of the expiry task, at most.
pub const ORDERS_EXPIRED_PER_ROUND_MAX: usize = 500;

/// Closes unpaid orders and red envelopes whose expiry has passed (giving what nobody grabbed
/// back to its sender) and settles escrows whose time ran out (refunds what was not shipped,
/// releases what was not confirmed), every `interval`, until `stop` resolves.
pub async fn expire_orders(
    payments: Arc<services::payments::Payments>,
    metrics: Arc<WorkerMetrics>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match payments
            .expire_orders(unix_seconds(), ORDERS_EXPIRED_PER_ROUND_MAX)
            .await
        {
            Ok(closed) => {
                metrics
                    .orders_expired
                    .fetch_add(closed as u64, Ordering::Relaxed);
            }
            Err(error) => tracing::warn!(%error, "closing expired orders"),
        }
        match payments
            .expire_envelopes(unix_seconds(), ORDERS_EXPIRED_PER_ROUND_MAX)
            .await
        {
            Ok(closed) => {
                metrics
                    .envelopes_expired
                    .fetch_add(closed as u64, Ordering::Relaxed);
            }
            Err(error) => tracing::warn!(%error, "closing expired red envelopes"),
        }
        if let Err(error) = payments
            .run_escrow_timers(unix_seconds(), ORDERS_EXPIRED_PER_ROUND_MAX)
            .await
        {
            tracing::warn!(%error, "settling escrows whose time ran out");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Bank transfers pending at least this long are asked about (younger ones may still be
/// waiting for the bank's answer in their own request).
pub const BANK_PENDING_AGE_S: u64 = 60;

/// Asks the bank about top-ups and withdrawals it did not answer in time, every `interval`,
/// until `stop` resolves.
pub async fn resolve_bank_transfers(
    cards: Arc<services::cards::Cards>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match cards
            .resolve_pending(unix_seconds(), BANK_PENDING_AGE_S)
            .await
        {
            Ok(0) => {}
            Ok(finished) => tracing::info!(finished, "pending bank transfers resolved"),
            Err(error) => tracing::warn!(%error, "resolving pending bank transfers"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Bill payments pending at least this long are asked about (younger ones may still be
/// waiting for the biller's answer in their own request).
pub const BILL_PENDING_AGE_S: u64 = 60;

/// Asks the billers about payments they did not answer in time, every `interval`, until
/// `stop` resolves; each is posted or voided once. Payments left pending by a crash or a
/// restart are found in the store, so they are settled after it too.
pub async fn resolve_bill_payments(
    payments: Arc<services::payments::Payments>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match payments
            .resolve_pending_bills(unix_seconds(), BILL_PENDING_AGE_S)
            .await
        {
            Ok(0) => {}
            Ok(settled) => tracing::info!(settled, "pending bill payments settled"),
            Err(error) => tracing::warn!(%error, "settling pending bill payments"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}
