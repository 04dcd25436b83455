//! The commit pipeline.
//!
//! Any number of submitters hand events to one sequencer. Two threads form a pipeline:
//!
//! 1. the **sequencer** gathers queued requests into a batch (group commit), prefetches the
//!    accounts and transfers it names, assigns the timestamp, and applies the pure ledger core
//!    against its in-memory view;
//! 2. the **writer** writes the batch in one database transaction and makes it durable; only
//!    then does it answer every request of the batch.
//!
//! While the writer makes batch N durable, the sequencer already applies batch N+1 on top of
//! N's in-memory result. If a write fails, every request of that batch and of every batch
//! applied on top of it is answered with an error, and the sequencer drops its in-memory view
//! and reloads it from the store, so memory and disk agree again.

// An edge of the system: it may read the clock and wait (see clippy.toml).
#![allow(clippy::disallowed_methods)]

mod metrics;
mod pipeline;
mod receipts;

pub use metrics::{Metrics, COMMIT_BUCKETS_MS};
pub use pipeline::StoreTiles;
pub use receipts::{
    consistency_proof, cosigned_note, registration_receipt, transfer_receipt, ReceiptError,
};

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc::{Sender, SyncSender, TrySendError};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use ledger::{Event, EventResult, BATCH_EVENTS_MAX};
use store::{
    NewRegistration, Record, Store, StoreError, StoredRegistration, REQUEST_RECORDS_MAX,
    REQUEST_REGISTRATIONS_MAX,
};
use tokio::sync::oneshot;

/// Requests that may wait for the sequencer before submitters are made to wait (back-pressure).
pub const QUEUE_REQUESTS_MAX: usize = 4096;
/// How often an idle sequencer looks for pending transfers whose timeout has passed.
pub const EXPIRY_INTERVAL_MS: u64 = 200;

/// Where the ledger's time comes from. The core never reads a clock; the sequencer does, here.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Nanoseconds since the Unix epoch.
    fn now_nanos(&self) -> u64;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_nanos(&self) -> u64 {
        #[allow(clippy::disallowed_methods)] // The sequencer is where the ledger reads time.
        let now = std::time::SystemTime::now();
        let since_epoch = now
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// How often, at most, a checkpoint of the growing trust log is signed.
pub const CHECKPOINT_INTERVAL_MS: u64 = 1_000;

#[derive(Debug, Clone)]
pub struct SequencerConfig {
    pub clock: Arc<dyn Clock>,
    pub expiry_interval: Duration,
    /// Signs the trust log's checkpoints (the operator's key). Without one, the log still
    /// grows with every batch but no checkpoint is signed.
    pub log_signer: Option<Arc<trustlog::NoteSigner>>,
    pub checkpoint_interval: Duration,
}

impl Default for SequencerConfig {
    fn default() -> Self {
        SequencerConfig {
            clock: Arc::new(SystemClock),
            expiry_interval: Duration::from_millis(EXPIRY_INTERVAL_MS),
            log_signer: None,
            checkpoint_interval: Duration::from_millis(CHECKPOINT_INTERVAL_MS),
        }
    }
}

/// Why a request was not committed. Nothing of the request was applied.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    #[error("a request must carry between 1 and {BATCH_EVENTS_MAX} events (registrations: {REQUEST_REGISTRATIONS_MAX}), not {0}")]
    RequestSize(usize),
    #[error("a request may carry at most {REQUEST_RECORDS_MAX} business records, not {0}")]
    RecordCount(usize),
    #[error("a claim's first record must be the new order")]
    ClaimWithoutOrder,
    #[error("the ledger is shutting down")]
    ShuttingDown,
    #[error("the store failed to commit the batch: {0}")]
    Store(StoreError),
    #[error("the batch was applied on top of a batch whose write failed; nothing was committed")]
    Aborted,
    /// A claimed order's id or `out_trade_no` is taken: nothing of the request was written
    /// (see [`SequencerHandle::submit_claim`]).
    #[error("the order's id or out_trade_no is taken; nothing was written")]
    Taken,
    #[error("the trust log cannot be extended: {0}")]
    Log(String),
}

pub type CommitResult = Result<Vec<EventResult>, CommitError>;

/// What became of one registration asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationOutcome {
    /// Committed now, as a new leaf.
    Created(StoredRegistration),
    /// The registrant asked before with the same key and the same content: the first
    /// registration, nothing appended.
    Exists(StoredRegistration),
    /// The key was used before for something else: refused, nothing appended.
    ExistsWithDifferentFields(StoredRegistration),
}

pub type RegisterResult = Result<Vec<RegistrationOutcome>, CommitError>;

/// The answer to one request, ready once its batch is durable.
#[derive(Debug)]
pub struct Ticket<T = Vec<EventResult>>(oneshot::Receiver<Result<T, CommitError>>);

impl<T> Ticket<T> {
    /// Blocks until the request's batch is durable (or failed). Not for async contexts: await
    /// the ticket there.
    pub fn wait(self) -> Result<T, CommitError> {
        self.0
            .blocking_recv()
            .unwrap_or(Err(CommitError::ShuttingDown))
    }
}

impl<T> Future for Ticket<T> {
    type Output = Result<T, CommitError>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(context)
            .map(|received| received.unwrap_or(Err(CommitError::ShuttingDown)))
    }
}

pub(crate) struct Request {
    events: Vec<Event>,
    /// Written with the batch only if every one of `events` is `ok`.
    records: Vec<Record>,
    /// No events, and `records` start with a new order: written only if its keys are free.
    claim: bool,
    reply: oneshot::Sender<CommitResult>,
}

pub(crate) struct RegisterRequest {
    registrations: Vec<NewRegistration>,
    reply: oneshot::Sender<RegisterResult>,
}

pub(crate) enum Message {
    Request(Request),
    Register(RegisterRequest),
    /// Sign a checkpoint at the next opportunity, whatever the interval (if the log grew).
    Checkpoint,
    /// Look at the writer's feedback now (requests are waiting to be applied again).
    Wake,
    Shutdown,
}

impl Message {
    /// The events it adds to `Metrics::events_queued` while it waits in the queue.
    pub(crate) fn queued_events(&self) -> u64 {
        match self {
            Message::Request(request) => request.events.len() as u64,
            _ => 0,
        }
    }
}

/// A cheap, cloneable way to submit events.
#[derive(Debug, Clone)]
pub struct SequencerHandle {
    sender: SyncSender<Message>,
    /// Tells a sequencer waiting for the writer that a full batch is queued.
    nudge: Sender<pipeline::Word>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Request(request) => write!(f, "Request({} events)", request.events.len()),
            Message::Register(request) => {
                write!(f, "Register({} registrations)", request.registrations.len())
            }
            Message::Checkpoint => f.write_str("Checkpoint"),
            Message::Wake => f.write_str("Wake"),
            Message::Shutdown => f.write_str("Shutdown"),
        }
    }
}

impl SequencerHandle {
    /// Queues `events` (applied in order, in one batch) and returns the ticket for their
    /// results. Blocks while the queue is full.
    pub fn submit(&self, events: Vec<Event>) -> Result<Ticket, CommitError> {
        if events.is_empty() || events.len() > BATCH_EVENTS_MAX {
            return Err(CommitError::RequestSize(events.len()));
        }
        let (reply, receiver) = oneshot::channel();
        self.send(Message::Request(Request {
            events,
            records: Vec::new(),
            claim: false,
            reply,
        }))?;
        Ok(Ticket(receiver))
    }

    /// Queues `events` with the business `records` they belong to (an order's new state, its
    /// notification …). The records are written in the same transaction as the events, and
    /// only if every event's result is `ok`; with no events, they are simply written with the
    /// next batch, sharing its durable write.
    pub fn submit_with_records(
        &self,
        events: Vec<Event>,
        records: Vec<Record>,
    ) -> Result<Ticket, CommitError> {
        if events.len() > BATCH_EVENTS_MAX || (events.is_empty() && records.is_empty()) {
            return Err(CommitError::RequestSize(events.len()));
        }
        if records.len() > REQUEST_RECORDS_MAX {
            return Err(CommitError::RecordCount(records.len()));
        }
        let (reply, receiver) = oneshot::channel();
        self.send(Message::Request(Request {
            events,
            records,
            claim: false,
            reply,
        }))?;
        Ok(Ticket(receiver))
    }

    /// Queues `records` that create an order: the first is the new [`Record::Order`], the
    /// rest belong with it (its idempotency record …). The store writes them with the next
    /// batch only if no stored order has the order's id or its merchant's `out_trade_no`;
    /// otherwise nothing of them is written and the ticket answers [`CommitError::Taken`].
    /// The check is the write itself: no read before it.
    pub fn submit_claim(&self, records: Vec<Record>) -> Result<Ticket, CommitError> {
        if !matches!(records.first(), Some(Record::Order(_))) {
            return Err(CommitError::ClaimWithoutOrder);
        }
        if records.len() > REQUEST_RECORDS_MAX {
            return Err(CommitError::RecordCount(records.len()));
        }
        let (reply, receiver) = oneshot::channel();
        self.send(Message::Request(Request {
            events: Vec::new(),
            records,
            claim: true,
            reply,
        }))?;
        Ok(Ticket(receiver))
    }

    /// Queues registrations (trust-log leaves that are not transfers). They are committed in
    /// the next batch, which also signs a checkpoint covering them, so their receipts can be
    /// built as soon as the ticket answers.
    pub fn register(
        &self,
        registrations: Vec<NewRegistration>,
    ) -> Result<Ticket<Vec<RegistrationOutcome>>, CommitError> {
        if registrations.is_empty() || registrations.len() > REQUEST_REGISTRATIONS_MAX {
            return Err(CommitError::RequestSize(registrations.len()));
        }
        let (reply, receiver) = oneshot::channel();
        self.send(Message::Register(RegisterRequest {
            registrations,
            reply,
        }))?;
        Ok(Ticket(receiver))
    }

    /// Asks for a checkpoint of everything committed so far, signed at the next opportunity
    /// rather than when the interval ends. Returns at once; the checkpoint appears in the store
    /// once it is durable.
    pub fn request_checkpoint(&self) -> Result<(), CommitError> {
        self.send(Message::Checkpoint)
    }

    fn send(&self, message: Message) -> Result<(), CommitError> {
        // Counted before it is queued, so that the sequencer never takes away more than it
        // finds.
        let events = message.queued_events();
        let before = self
            .metrics
            .events_queued
            .fetch_add(events, std::sync::atomic::Ordering::Relaxed);
        let full = BATCH_EVENTS_MAX as u64;
        let sent = match self.sender.try_send(message) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(message)) => self
                .sender
                .send(message)
                .map_err(|_| CommitError::ShuttingDown),
            Err(TrySendError::Disconnected(_)) => Err(CommitError::ShuttingDown),
        };
        if sent.is_err() {
            self.metrics
                .events_queued
                .fetch_sub(events, std::sync::atomic::Ordering::Relaxed);
        } else if before < full && before + events >= full {
            let _ = self.nudge.send(pipeline::Word::FullBatchQueued);
        }
        sent
    }

    /// The pipeline's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Submits and waits: the results once durable.
    pub fn execute(&self, events: Vec<Event>) -> CommitResult {
        self.submit(events)?.wait()
    }
}

/// The running pipeline. Dropping it without [`Sequencer::shutdown`] also drains it.
#[derive(Debug)]
pub struct Sequencer {
    handle: SequencerHandle,
    threads: Vec<JoinHandle<()>>,
}

impl Sequencer {
    /// Starts the pipeline on `store`, taking its writer.
    pub fn start(store: &dyn Store, config: SequencerConfig) -> Result<Sequencer, StoreError> {
        let metrics = Arc::new(Metrics::default());
        let (sender, nudge, threads) = pipeline::start(store, config, metrics.clone())?;
        Ok(Sequencer {
            handle: SequencerHandle {
                sender,
                nudge,
                metrics,
            },
            threads,
        })
    }

    pub fn handle(&self) -> SequencerHandle {
        self.handle.clone()
    }

    /// Commits everything already queued, answers it, and stops both threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        let _ = self.handle.sender.send(Message::Shutdown);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Sequencer {
    fn drop(&mut self) {
        self.stop();
    }
}
