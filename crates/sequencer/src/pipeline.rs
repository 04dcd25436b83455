//! The two threads of the commit pipeline: the sequencer (gather, prefetch, apply) and the
//! writer (one durable transaction per batch, then the answers).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use ledger::{
    Account, AccountBalance, Batch, Event, EventResult, IdMap, IdSet, State, Transfer,
    BATCH_EVENTS_MAX, BATCH_EXPIRIES_MAX,
};
use store::{
    Claim, CommitBatch, LedgerHead, LogAppend, LogCheckpoint, LogTile, NewRegistration,
    PendingRecord, Record, Store, StoreError, StoreErrorKind, StoreReader, StoreWriter,
    StoredRegistration, StoredTransfer,
};
use tokio::sync::oneshot;

use crate::{
    CommitError, CommitResult, Message, Metrics, RegisterRequest, RegisterResult,
    RegistrationOutcome, Request, SequencerConfig, QUEUE_REQUESTS_MAX,
};

/// Registrations one batch may carry.
const BATCH_REGISTRATIONS_MAX: usize = 1024;
const _: () = assert!(BATCH_REGISTRATIONS_MAX >= crate::REQUEST_REGISTRATIONS_MAX);
const _: () = assert!(
    BATCH_EVENTS_MAX + BATCH_REGISTRATIONS_MAX <= trustlog::APPEND_LEAVES_MAX,
    "a batch's leaves fit one append"
);

/// Business records one batch may carry: a few per request of a full batch of payments.
const BATCH_RECORDS_MAX: usize = 4 * BATCH_EVENTS_MAX;
const _: () = assert!(BATCH_RECORDS_MAX >= store::REQUEST_RECORDS_MAX);

/// A registration's identity: who asked, and with which idempotency key.
type RegistrationKey = (u128, String);

/// Batches applied that wait for the writer, beyond the one the sequencer hands over: none.
/// The hand-over is a rendezvous. While the writer writes batch N, the sequencer gathers and
/// applies N+1 only if the queue already holds a full batch (then applying it meanwhile keeps
/// the writer busy); otherwise it waits until the writer is free and then gathers everything
/// queued, so that a request joins the batch written next rather than wait behind one that
/// was applied without it.
const JOBS_IN_FLIGHT_MAX: usize = 0;

/// What the sequencer hears while it waits to gather a batch.
pub(crate) enum Word {
    /// The writer waits for a batch, having taken this many.
    WriterWaits(u64),
    /// Submitters have queued a full batch of events.
    FullBatchQueued,
    /// The writer thread ended (a hand-over to it now fails).
    WriterStopped,
}

/// What the sequencer knows of the writer from its words.
#[derive(Default)]
struct WriterWords {
    /// Batches handed to the writer.
    handed: u64,
    /// It said it waits, after taking every batch handed to it (a word given before it took
    /// the last one is out of date).
    waits: bool,
    /// It ended: every hand-over fails, and says so, so there is nothing to wait for.
    stopped: bool,
}

impl WriterWords {
    fn hear(&mut self, word: &Word) {
        match word {
            Word::WriterWaits(taken) => self.waits |= *taken == self.handed,
            Word::FullBatchQueued => {}
            Word::WriterStopped => self.stopped = true,
        }
    }
}

/// Says [`Word::WriterStopped`] when the writer thread ends, however it ends: the submitters'
/// handles keep the channel open, so its closing would not tell.
struct StopWord(Sender<Word>);

impl Drop for StopWord {
    fn drop(&mut self) {
        let _ = self.0.send(Word::WriterStopped);
    }
}

/// How long the writer waits for the sequencer to apply the next batch before it lets the
/// other writers of a shared store have their turn.
const APPLY_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

/// On a shared store, how long the writer keeps its turn while it has batches to write, before
/// it lets the other writers have theirs.
const TURN_MAX: std::time::Duration = std::time::Duration::from_millis(20);
/// On a shared store, how long the writer keeps its turn for a batch being applied again.
const RETRY_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

struct Reply {
    sender: oneshot::Sender<CommitResult>,
    start: usize,
    length: usize,
}

/// One applied batch, handed to the writer.
struct Job {
    epoch: u64,
    sequence: u64,
    timestamp_last: u64,
    accounts_created: Vec<Account>,
    accounts_updated: Vec<Account>,
    transfers: Vec<Transfer>,
    log_size_before: u64,
    log_tiles: Vec<LogTile>,
    checkpoint: Option<LogCheckpoint>,
    pending: Vec<PendingRecord>,
    balances: Vec<AccountBalance>,
    results: Vec<EventResult>,
    replies: Vec<Reply>,
    registrations: Vec<StoredRegistration>,
    registration_replies: Vec<(oneshot::Sender<RegisterResult>, Vec<RegistrationOutcome>)>,
    /// Business records of the requests whose events all committed.
    records: Vec<Record>,
    /// Runs of `records` written only if their new order's keys are free, and the reply each
    /// belongs to.
    claims: Vec<Claim>,
    claim_replies: Vec<usize>,
    /// Pending transfers whose hold this batch released.
    expired: u64,
    /// On a shared store, what the batch was made of, to apply it again if another writer
    /// committed first.
    retry: Option<Retry>,
}

/// The requests of a batch, as they were submitted, in the order of its replies.
#[derive(Default)]
struct Retry {
    /// Each request's events, records, and whether it claims a new order.
    requests: Vec<(Vec<Event>, Vec<Record>, bool)>,
    registrations: Vec<Vec<NewRegistration>>,
}

impl Job {
    /// The job's requests, to submit again, with their answers still owed; `Err(self)` when
    /// the job kept no copy of them.
    fn into_messages(mut self) -> Result<Vec<Message>, Box<Job>> {
        let Some(retry) = self.retry.take() else {
            return Err(Box::new(self));
        };
        let mut messages = Vec::with_capacity(retry.requests.len() + retry.registrations.len());
        for (reply, (events, records, claim)) in self.replies.into_iter().zip(retry.requests) {
            messages.push(Message::Request(Request {
                events,
                records,
                claim,
                reply: reply.sender,
            }));
        }
        for ((reply, _), registrations) in self
            .registration_replies
            .into_iter()
            .zip(retry.registrations)
        {
            messages.push(Message::Register(RegisterRequest {
                registrations,
                reply,
            }));
        }
        Ok(messages)
    }

    /// Answers every request of the job with `error`: nothing of it was committed.
    fn fail(self, error: &CommitError) {
        answer_all(self.replies, &Err(error.clone()));
        for (sender, _) in self.registration_replies {
            let _ = sender.send(Err(error.clone()));
        }
    }
}

enum Feedback {
    Durable(u64),
    /// A write failed; batches of older epochs are refused from now on.
    Failed {
        epoch: u64,
    },
    /// Another writer of the shared store committed first: these requests were not written
    /// and are to be applied again, on the store's new state. Batches of older epochs come
    /// back the same way.
    Retry {
        epoch: u64,
        messages: Vec<Message>,
    },
}

/// The running pipeline: its request queue, the submitters' way to say that a full batch is
/// queued, and its threads.
pub(crate) type Started = (SyncSender<Message>, Sender<Word>, Vec<JoinHandle<()>>);

pub(crate) fn start(
    store: &dyn Store,
    config: SequencerConfig,
    metrics: Arc<Metrics>,
) -> Result<Started, StoreError> {
    let writer = store.writer()?;
    let mut reader = store.reader()?;
    let head = reader.head()?;
    let log_edge = load_log_edge(reader.as_mut(), head.log_size)?;
    let last_checkpoint_size = reader
        .latest_checkpoint()?
        .map_or(0, |checkpoint| checkpoint.size);
    let (request_sender, request_receiver) = mpsc::sync_channel(QUEUE_REQUESTS_MAX);
    let (job_sender, job_receiver) = mpsc::sync_channel::<Job>(JOBS_IN_FLIGHT_MAX);
    let (feedback_sender, feedback_receiver) = mpsc::channel::<Feedback>();
    // The writer's word that it waits for a batch; submitters use it too, to say that a full
    // batch is queued.
    let (free_sender, free_receiver) = mpsc::channel::<Word>();
    let nudge = free_sender.clone();
    let wake = request_sender.clone();
    let sequencer_metrics = metrics.clone();
    let writer_thread = std::thread::Builder::new()
        .name("ledger-writer".into())
        .spawn(move || {
            let _stop_word = StopWord(free_sender.clone());
            write_loop(
                writer,
                job_receiver,
                feedback_sender,
                &wake,
                &free_sender,
                &metrics,
            );
        })
        .map_err(|error| StoreError::new(store::StoreErrorKind::Other, error.to_string()))?;
    let mut sequencer = SequencerThread {
        shared: store.shared(),
        retried: VecDeque::new(),
        config,
        reader,
        state: State::default(),
        epoch: 0,
        next_sequence: head.batches + 1,
        timestamp_last: head.timestamp_last,
        transfer_id_max: head.transfer_id_max,
        in_flight: VecDeque::new(),
        pending_last_sequence: IdMap::default(),
        needs_reload: false,
        events: Vec::with_capacity(BATCH_EVENTS_MAX),
        log_edge,
        last_checkpoint_size,
        last_checkpoint_at: 0,
        registration_id_max: head.registration_id_max,
        registrations_in_flight: HashMap::new(),
        expiries_checked_at: 0,
        expiries_backlog: false,
    };
    let sequencer_thread = std::thread::Builder::new()
        .name("ledger-sequencer".into())
        .spawn(move || {
            sequencer.run(
                request_receiver,
                job_sender,
                feedback_receiver,
                free_receiver,
                &sequencer_metrics,
            );
        })
        .map_err(|error| StoreError::new(store::StoreErrorKind::Other, error.to_string()))?;
    Ok((request_sender, nudge, vec![sequencer_thread, writer_thread]))
}

/// What a batch still in flight keeps in the sequencer's memory until it is durable.
struct InFlight {
    sequence: u64,
    transfers: Vec<u128>,
    pending: Vec<u128>,
    registrations: Vec<RegistrationKey>,
}

struct SequencerThread {
    /// Other processes write the store too (see `Store::shared`).
    shared: bool,
    /// Requests another writer's batch overtook, applied again before anything new.
    retried: VecDeque<Message>,
    config: SequencerConfig,
    reader: Box<dyn StoreReader>,
    /// Every account seen so far (with the effect of batches in flight), plus the transfers
    /// and pending statuses of batches in flight and of the batch being applied.
    state: State,
    epoch: u64,
    next_sequence: u64,
    timestamp_last: u64,
    /// Largest transfer id committed or in flight: a larger id needs no lookup.
    transfer_id_max: u128,
    in_flight: VecDeque<InFlight>,
    /// For each pending transfer whose status a batch in flight changed, the latest such batch.
    pending_last_sequence: IdMap<u64>,
    needs_reload: bool,
    events: Vec<Event>,
    /// The trust log's right edge after the last batch applied (in flight or durable).
    log_edge: trustlog::RightEdge,
    last_checkpoint_size: u64,
    /// Clock time of the last checkpoint signed by this process (0: none yet).
    last_checkpoint_at: u64,
    /// Largest registration id committed or in flight.
    registration_id_max: u64,
    /// Registrations of batches in flight, which the store cannot answer for yet.
    registrations_in_flight: HashMap<RegistrationKey, StoredRegistration>,
    /// Ledger time the store was last asked for expired holds.
    expiries_checked_at: u64,
    /// The last answer was full: more holds are due.
    expiries_backlog: bool,
}

/// Requests gathered into one batch.
#[derive(Default)]
struct Gathered {
    requests: Vec<Request>,
    registers: Vec<RegisterRequest>,
    events: usize,
    records: usize,
    registrations: usize,
    checkpoint_requested: bool,
}

impl Gathered {
    /// Adds `message` if it fits the batch; gives it back otherwise.
    fn add(&mut self, message: Message) -> Option<Message> {
        match message {
            Message::Request(request) => {
                let too_many_events = self.events + request.events.len() > BATCH_EVENTS_MAX;
                let too_many_records = self.records + request.records.len() > BATCH_RECORDS_MAX;
                if !self.is_empty() && (too_many_events || too_many_records) {
                    return Some(Message::Request(request));
                }
                self.events += request.events.len();
                self.records += request.records.len();
                self.requests.push(request);
            }
            Message::Register(request) => {
                let count = request.registrations.len();
                if !self.is_empty() && self.registrations + count > BATCH_REGISTRATIONS_MAX {
                    return Some(Message::Register(request));
                }
                self.registrations += count;
                self.registers.push(request);
            }
            Message::Checkpoint => self.checkpoint_requested = true,
            Message::Wake => {}
            Message::Shutdown => unreachable!("shutdown is not gathered"),
        }
        None
    }

    fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.registers.is_empty() && !self.checkpoint_requested
    }
}

impl SequencerThread {
    fn run(
        &mut self,
        requests: Receiver<Message>,
        jobs: SyncSender<Job>,
        feedback: Receiver<Feedback>,
        writer_free: Receiver<Word>,
        metrics: &Metrics,
    ) {
        let mut carried: Option<Message> = None;
        let mut shutting_down = false;
        let mut writer = WriterWords::default();
        // A message taken from the queue is no longer counted as queued.
        let dequeued = |message: &Message| {
            metrics
                .events_queued
                .fetch_sub(message.queued_events(), Ordering::Relaxed);
        };
        loop {
            while let Ok(word) = writer_free.try_recv() {
                writer.hear(&word);
            }
            let full_batch_queued =
                || metrics.events_queued.load(Ordering::Relaxed) >= BATCH_EVENTS_MAX as u64;
            while !writer.waits && !writer.stopped && !full_batch_queued() {
                // Nothing gained by applying a partial batch now: it would wait for the writer
                // anyway, and requests arriving meanwhile would wait for the batch after it.
                // A submitter that fills a batch says so here too (the count is raised first).
                match writer_free.recv() {
                    Ok(word) => writer.hear(&word),
                    Err(_) => writer.stopped = true,
                }
            }
            self.absorb_feedback(&feedback);
            let mut batch = Gathered::default();
            while let Some(message) = self.retried.pop_front() {
                if let Some(message) = batch.add(message) {
                    self.retried.push_front(message);
                    break;
                }
            }
            if !batch.is_empty() {
                // Requests applied again go first; new ones join them below.
            } else if let Some(message) = carried.take() {
                let refused = batch.add(message);
                debug_assert!(refused.is_none(), "an empty batch takes any request");
            } else if !shutting_down {
                match requests.recv_timeout(self.config.expiry_interval) {
                    Ok(Message::Shutdown) | Err(RecvTimeoutError::Disconnected) => {
                        shutting_down = true;
                    }
                    Ok(message) => {
                        dequeued(&message);
                        let refused = batch.add(message);
                        debug_assert!(refused.is_none(), "an empty batch takes any request");
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                }
            }
            // Group commit: take whatever else is already queued, up to a full batch (a
            // message carried over from the last round goes first).
            while carried.is_none() {
                match requests.try_recv() {
                    Ok(Message::Shutdown) => shutting_down = true,
                    Ok(message) => {
                        dequeued(&message);
                        if let Some(message) = batch.add(message) {
                            carried = Some(message);
                            break;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        shutting_down = true;
                        break;
                    }
                }
            }
            let idle = batch.is_empty();
            if let Some(job) = self.apply_batch(batch) {
                if let Err(mpsc::SendError(job)) = jobs.send(job) {
                    job.fail(&CommitError::ShuttingDown);
                }
                writer.handed += 1;
                writer.waits = false;
            }
            if shutting_down && idle && carried.is_none() && self.retried.is_empty() {
                break;
            }
        }
        // The last checkpoint covers everything committed, so receipts work after a restart.
        self.absorb_feedback(&feedback);
        if !self.needs_reload {
            let timestamp = self.config.clock.now_nanos().max(self.timestamp_last + 1);
            if let Some(job) = self.checkpoint_job(timestamp) {
                let _ = jobs.send(job);
            }
        }
        // Dropping `jobs` lets the writer finish what it has and stop.
    }

    fn absorb_feedback(&mut self, feedback: &Receiver<Feedback>) {
        while let Ok(message) = feedback.try_recv() {
            match message {
                Feedback::Durable(sequence) => self.forget_durable(sequence),
                Feedback::Failed { epoch } => {
                    self.epoch = epoch;
                    self.needs_reload = true;
                }
                Feedback::Retry { epoch, messages } => {
                    self.epoch = epoch;
                    self.needs_reload = true;
                    self.retried.extend(messages);
                }
            }
        }
        if self.needs_reload {
            self.reload();
        }
    }

    /// A batch is on disk: what it kept in memory can now be read from the store.
    fn forget_durable(&mut self, sequence: u64) {
        while self
            .in_flight
            .front()
            .is_some_and(|batch| batch.sequence <= sequence)
        {
            let batch = self.in_flight.pop_front().expect("checked above");
            for id in batch.transfers {
                self.state.transfers.remove(&id);
            }
            for id in batch.pending {
                if self.pending_last_sequence.get(&id) == Some(&batch.sequence) {
                    self.pending_last_sequence.remove(&id);
                    self.state.pending.remove(&id);
                }
            }
            for key in batch.registrations {
                self.registrations_in_flight.remove(&key);
            }
        }
    }

    /// After a failed write: forget everything in memory and start again from the store.
    fn reload(&mut self) {
        match self.reader.head() {
            Ok(head) => match load_log_edge(self.reader.as_mut(), head.log_size).and_then(|edge| {
                let signed = self
                    .reader
                    .latest_checkpoint()?
                    .map_or(0, |checkpoint| checkpoint.size);
                Ok((edge, signed))
            }) {
                Ok((edge, signed)) => {
                    self.log_edge = edge;
                    // A checkpoint signed into a failed batch was never stored.
                    self.last_checkpoint_size = signed;
                    self.reset_to(head);
                    self.needs_reload = false;
                }
                Err(_) => self.state = State::default(),
            },
            Err(_) => {
                // Still unreachable: keep refusing until the store answers again.
                self.state = State::default();
            }
        }
    }

    /// A checkpoint is due when the interval has passed since the last one (and there is a
    /// signer); `sign_checkpoint` skips it if the log did not grow.
    fn checkpoint_due(&self, now: u64) -> bool {
        let interval =
            u64::try_from(self.config.checkpoint_interval.as_nanos()).unwrap_or(u64::MAX);
        self.config.log_signer.is_some() && now.saturating_sub(self.last_checkpoint_at) >= interval
    }

    fn sign_checkpoint(&mut self, root: trustlog::Hash, timestamp: u64) -> Option<LogCheckpoint> {
        let signer = self.config.log_signer.as_ref()?;
        let size = self.log_edge.size();
        if size == self.last_checkpoint_size {
            return None;
        }
        let body = trustlog::Checkpoint::new(signer.name(), size, root, Vec::new())
            .ok()?
            .to_body();
        let note = trustlog::sign_note(&body, signer).ok()?;
        self.last_checkpoint_size = size;
        self.last_checkpoint_at = timestamp;
        Some(LogCheckpoint {
            size,
            root,
            note,
            timestamp,
        })
    }

    /// A batch that only signs a checkpoint of what is already in the log.
    fn checkpoint_job(&mut self, timestamp: u64) -> Option<Job> {
        let checkpoint = self.sign_checkpoint(self.log_edge.root(), timestamp)?;
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.timestamp_last = timestamp;
        self.in_flight.push_back(InFlight {
            sequence,
            transfers: Vec::new(),
            pending: Vec::new(),
            registrations: Vec::new(),
        });
        Some(Job {
            epoch: self.epoch,
            sequence,
            timestamp_last: timestamp,
            accounts_created: Vec::new(),
            accounts_updated: Vec::new(),
            transfers: Vec::new(),
            log_size_before: self.log_edge.size(),
            log_tiles: Vec::new(),
            checkpoint: Some(checkpoint),
            pending: Vec::new(),
            balances: Vec::new(),
            results: Vec::new(),
            replies: Vec::new(),
            registrations: Vec::new(),
            registration_replies: Vec::new(),
            records: Vec::new(),
            claims: Vec::new(),
            claim_replies: Vec::new(),
            expired: 0,
            retry: self.shared.then(Retry::default),
        })
    }

    fn reset_to(&mut self, head: LedgerHead) {
        self.state = State::default();
        self.in_flight.clear();
        self.pending_last_sequence.clear();
        self.next_sequence = head.batches + 1;
        self.timestamp_last = self.timestamp_last.max(head.timestamp_last);
        self.transfer_id_max = head.transfer_id_max;
        self.registration_id_max = head.registration_id_max;
        self.registrations_in_flight.clear();
    }

    fn apply_batch(&mut self, gathered: Gathered) -> Option<Job> {
        let Gathered {
            requests,
            registers,
            checkpoint_requested,
            ..
        } = gathered;
        if self.needs_reload {
            answer_requests(requests, registers, &CommitError::Aborted);
            return None;
        }
        let mut retry = self.shared.then(|| Retry {
            requests: Vec::with_capacity(requests.len()),
            registrations: registers
                .iter()
                .map(|request| request.registrations.clone())
                .collect(),
        });
        let timestamp = self.config.clock.now_nanos().max(self.timestamp_last + 1);
        // Releasing expired holds is looked for once per expiry interval, not in every batch
        // (a query each time); the core refuses to post a hold past its timeout whether or
        // not it was released yet. A full list means more are due: look again next batch.
        let interval = u64::try_from(self.config.expiry_interval.as_nanos()).unwrap_or(u64::MAX);
        let expiries_due =
            self.expiries_backlog || timestamp.saturating_sub(self.expiries_checked_at) >= interval;
        let looked_up = if expiries_due {
            self.reader.pending_due(timestamp, BATCH_EXPIRIES_MAX)
        } else {
            Ok(Vec::new())
        };
        let expiring = match looked_up {
            Ok(expiring) => {
                if expiries_due {
                    self.expiries_checked_at = timestamp;
                    self.expiries_backlog = expiring.len() == BATCH_EXPIRIES_MAX;
                }
                expiring
            }
            Err(error) => {
                answer_requests(requests, registers, &CommitError::Store(error));
                return None;
            }
        };
        let found_registrations = match self.prefetch_registrations(&registers) {
            Ok(found) => found,
            Err(error) => {
                answer_requests(requests, registers, &CommitError::Store(error));
                return None;
            }
        };
        // Registrations are rare and wait for their receipt: their batch signs a checkpoint.
        let checkpoint_due = self.checkpoint_due(timestamp)
            || (self.config.log_signer.is_some()
                && (!registers.is_empty() || checkpoint_requested));
        if requests.is_empty() && registers.is_empty() && expiring.is_empty() {
            return checkpoint_due
                .then(|| self.checkpoint_job(timestamp))
                .flatten();
        }
        self.events.clear();
        let mut replies = Vec::with_capacity(requests.len());
        let mut request_records = Vec::new();
        for request in requests {
            if let Some(retry) = &mut retry {
                retry.requests.push((
                    request.events.clone(),
                    request.records.clone(),
                    request.claim,
                ));
            }
            if !request.records.is_empty() {
                request_records.push((replies.len(), request.records, request.claim));
            }
            replies.push(Reply {
                sender: request.reply,
                start: self.events.len(),
                length: request.events.len(),
            });
            self.events.extend_from_slice(&request.events);
        }
        let events = std::mem::take(&mut self.events);
        let batch = Batch {
            expiring: &expiring,
            events: &events,
        };
        let prefetched = match self.prefetch(&batch) {
            Ok(prefetched) => prefetched,
            Err(error) => {
                self.events = events;
                answer_all(replies, &Err(CommitError::Store(error.clone())));
                answer_requests(Vec::new(), registers, &CommitError::Store(error));
                return None;
            }
        };
        let applied = ledger::apply(&mut self.state, batch, timestamp);
        self.events = events;
        assert_eq!(applied.results.len(), self.events.len());
        let mut records = Vec::new();
        let mut claims = Vec::new();
        let mut claim_replies = Vec::new();
        for (reply_index, mut written, claim) in request_records {
            let reply = &replies[reply_index];
            let results = &applied.results[reply.start..reply.start + reply.length];
            if results.iter().all(|result| *result == EventResult::Ok) {
                if claim {
                    claims.push(Claim {
                        first: records.len(),
                        count: written.len(),
                    });
                    claim_replies.push(reply_index);
                }
                records.append(&mut written);
            }
        }
        self.timestamp_last = applied.timestamp_last;

        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let touched_pending: IdSet = applied.pending.iter().map(|(id, _)| *id).collect();
        let mut pending = Vec::with_capacity(applied.pending.len());
        for (id, status) in &applied.pending {
            self.pending_last_sequence.insert(*id, sequence);
            let expires_at = self.state.transfers.get(id).and_then(Transfer::expires_at);
            pending.push(PendingRecord {
                id: *id,
                status: *status,
                expires_at,
            });
        }
        for id in prefetched {
            self.state.transfers.remove(&id);
            if !self.pending_last_sequence.contains_key(&id) {
                self.state.pending.remove(&id);
            }
        }
        let mut leaf_hashes = Vec::with_capacity(applied.transfers.len());
        for transfer in &applied.transfers {
            self.transfer_id_max = self.transfer_id_max.max(transfer.id);
            leaf_hashes.push(trustlog::leaf_hash(&transfer.log_leaf()));
        }
        let log_size_before = self.log_edge.size();
        let (registrations, registration_replies, registration_keys) = self.apply_registrations(
            registers,
            found_registrations,
            log_size_before + applied.transfers.len() as u64,
        );
        for stored in &registrations {
            leaf_hashes.push(trustlog::leaf_hash(&stored.registration.log_leaf()));
        }
        // A batch of records alone consumes no ledger timestamp; it still takes one, so that
        // every batch's time is after the last one's.
        let events_time = applied.timestamp_last.max(timestamp);
        let timestamp_last = registrations
            .last()
            .map_or(events_time, |stored| stored.registration.timestamp);
        self.timestamp_last = timestamp_last;
        let appended = match self.log_edge.append(&leaf_hashes) {
            Ok(appended) => appended,
            Err(error) => {
                // Cannot happen below the log's size limit; refuse rather than commit a
                // transfer without its leaf. Memory is ahead of the disk now: reload.
                self.needs_reload = true;
                let error = CommitError::Log(error.to_string());
                answer_all(replies, &Err(error.clone()));
                for (sender, _) in registration_replies {
                    let _ = sender.send(Err(error.clone()));
                }
                return None;
            }
        };
        let log_tiles = appended.tiles.iter().map(log_tile).collect();
        self.log_edge = appended.edge;
        let checkpoint = if checkpoint_due {
            self.sign_checkpoint(appended.root, timestamp)
        } else {
            None
        };
        self.in_flight.push_back(InFlight {
            sequence,
            transfers: applied
                .transfers
                .iter()
                .map(|transfer| transfer.id)
                .collect(),
            pending: touched_pending.into_iter().collect(),
            registrations: registration_keys,
        });
        let account = |id: &u128| *self.state.accounts.get(id).expect("applied accounts exist");
        // In id order, the writer's updates walk the accounts table front to back.
        let mut accounts_updated: Vec<Account> =
            applied.accounts_updated.iter().map(account).collect();
        accounts_updated.sort_unstable_by_key(|account| account.id);
        Some(Job {
            epoch: self.epoch,
            sequence,
            timestamp_last,
            accounts_created: applied.accounts_created.iter().map(account).collect(),
            accounts_updated,
            transfers: applied.transfers,
            log_size_before,
            log_tiles,
            checkpoint,
            pending,
            balances: applied.balances,
            expired: applied.expired.len() as u64,
            results: applied.results,
            replies,
            registrations,
            registration_replies,
            records,
            claims,
            claim_replies,
            retry,
        })
    }

    /// Looks up in the store the registrations asked for whose keys no batch in flight holds.
    fn prefetch_registrations(
        &mut self,
        registers: &[RegisterRequest],
    ) -> Result<HashMap<RegistrationKey, StoredRegistration>, StoreError> {
        let mut found = HashMap::new();
        for request in registers {
            for new in &request.registrations {
                let key = (new.registrant(), new.idempotency_key().to_owned());
                if self.registrations_in_flight.contains_key(&key) || found.contains_key(&key) {
                    continue;
                }
                if let Some(stored) = self
                    .reader
                    .registration_by_key(new.registrant(), new.idempotency_key())?
                {
                    found.insert(key, stored);
                }
            }
        }
        Ok(found)
    }

    /// Gives each new registration its id, time and leaf (from `first_leaf` on); answers
    /// repeats with the first registration under their key.
    #[allow(clippy::type_complexity)]
    fn apply_registrations(
        &mut self,
        registers: Vec<RegisterRequest>,
        mut found: HashMap<RegistrationKey, StoredRegistration>,
        first_leaf: u64,
    ) -> (
        Vec<StoredRegistration>,
        Vec<(oneshot::Sender<RegisterResult>, Vec<RegistrationOutcome>)>,
        Vec<RegistrationKey>,
    ) {
        let mut created = Vec::new();
        let mut replies = Vec::with_capacity(registers.len());
        let mut keys = Vec::new();
        for request in registers {
            let mut outcomes = Vec::with_capacity(request.registrations.len());
            for new in request.registrations {
                let key = (new.registrant(), new.idempotency_key().to_owned());
                let earlier = self
                    .registrations_in_flight
                    .get(&key)
                    .or_else(|| found.get(&key));
                if let Some(earlier) = earlier {
                    outcomes.push(if new.same_as(&earlier.registration) {
                        RegistrationOutcome::Exists(earlier.clone())
                    } else {
                        RegistrationOutcome::ExistsWithDifferentFields(earlier.clone())
                    });
                    continue;
                }
                self.registration_id_max += 1;
                self.timestamp_last += 1;
                let stored = StoredRegistration {
                    registration: new
                        .to_registration(self.registration_id_max, self.timestamp_last),
                    leaf_index: first_leaf + created.len() as u64,
                    idempotency_key: new.idempotency_key().to_owned(),
                };
                found.remove(&key);
                self.registrations_in_flight
                    .insert(key.clone(), stored.clone());
                keys.push(key);
                outcomes.push(RegistrationOutcome::Created(stored.clone()));
                created.push(stored);
            }
            replies.push((request.reply, outcomes));
        }
        (created, replies, keys)
    }

    /// Loads what the batch names and memory does not hold. Returns the transfer ids loaded
    /// for this batch only, to be dropped from memory after it is applied.
    fn prefetch(&mut self, batch: &Batch<'_>) -> Result<Vec<u128>, StoreError> {
        let keys = batch.prefetch_keys();
        let mut wanted: Vec<u128> = keys
            .transfers
            .iter()
            .copied()
            .filter(|id| *id <= self.transfer_id_max && !self.state.transfers.contains_key(id))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut loaded: Vec<StoredTransfer> = Vec::new();
        if !wanted.is_empty() {
            self.reader.load_transfers(&wanted, &mut loaded)?;
        }
        let mut prefetched = Vec::with_capacity(loaded.len());
        for stored in loaded {
            let id = stored.transfer.id;
            self.state.transfers.insert(id, stored.transfer);
            if let Some(status) = stored.pending_status {
                // A status changed by a batch in flight is newer than the one on disk.
                self.state.pending.entry(id).or_insert(status);
            }
            prefetched.push(id);
        }
        let mut accounts: Vec<u128> = keys.accounts;
        for id in &keys.transfers {
            if let Some(transfer) = self.state.transfers.get(id) {
                accounts.push(transfer.debit_account_id);
                accounts.push(transfer.credit_account_id);
            }
        }
        accounts.retain(|id| !self.state.accounts.contains_key(id));
        accounts.sort_unstable();
        accounts.dedup();
        if !accounts.is_empty() {
            let mut found = Vec::with_capacity(accounts.len());
            self.reader.load_accounts(&accounts, &mut found)?;
            for account in found {
                self.state.accounts.insert(account.id, account);
            }
        }
        Ok(prefetched)
    }
}

/// The trust log's right edge, read from the stored tiles.
fn load_log_edge(
    reader: &mut dyn StoreReader,
    size: u64,
) -> Result<trustlog::RightEdge, StoreError> {
    let tiles = StoreTiles::new(reader);
    trustlog::RightEdge::from_tiles(size, &tiles)
        .map_err(|error| StoreError::corrupt(format!("the trust log's tiles: {error}")))
}

/// Stored tiles, as the trust log core reads them.
pub struct StoreTiles<'a>(std::cell::RefCell<&'a mut dyn StoreReader>);

impl std::fmt::Debug for StoreTiles<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreTiles")
    }
}

impl<'a> StoreTiles<'a> {
    pub fn new(reader: &'a mut dyn StoreReader) -> Self {
        StoreTiles(std::cell::RefCell::new(reader))
    }
}

impl trustlog::TileReader for StoreTiles<'_> {
    fn read_tile(
        &self,
        level: u8,
        index: u64,
        width: u16,
    ) -> trustlog::Result<Vec<trustlog::Hash>> {
        let bytes = self
            .0
            .borrow_mut()
            .log_tile(level, index, width)
            .map_err(|error| trustlog::Error::Storage(Box::new(error)))?
            .ok_or_else(|| {
                trustlog::Error::Storage(
                    format!("tile {level}/{index} of width {width} is missing").into(),
                )
            })?;
        trustlog::decode_tile(&bytes, width)
    }
}

fn log_tile(write: &trustlog::TileWrite) -> LogTile {
    LogTile {
        level: write.tile.level(),
        index: write.tile.index(),
        width: write.tile.width(),
        hashes: trustlog::encode_tile(&write.hashes),
    }
}

fn answer_requests(requests: Vec<Request>, registers: Vec<RegisterRequest>, error: &CommitError) {
    for request in requests {
        let _ = request.reply.send(Err(error.clone()));
    }
    for request in registers {
        let _ = request.reply.send(Err(error.clone()));
    }
}

fn answer_all(replies: Vec<Reply>, answer: &CommitResult) {
    for reply in replies {
        let _ = reply.sender.send(answer.clone());
    }
}

fn write_loop(
    mut writer: Box<dyn StoreWriter>,
    jobs: Receiver<Job>,
    feedback: Sender<Feedback>,
    wake: &SyncSender<Message>,
    free: &Sender<Word>,
    metrics: &Metrics,
) {
    let mut epoch = 0;
    // Batches taken from the sequencer.
    let mut taken: u64 = 0;
    // On a shared store: since when this writer holds the turn (its first commit after it let
    // the others go), and whether a batch of its own is being applied again.
    let mut turn_since: Option<Instant> = None;
    let mut awaiting_retry = false;
    loop {
        let _ = free.send(Word::WriterWaits(taken));
        let job = match jobs.try_recv() {
            Ok(job) => job,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                // Nothing to write: the others may have their turn, unless a batch of ours
                // is on its way back to be applied again (it would find the head moved), or
                // the sequencer is applying the next one.
                let job = if turn_since.is_some() || awaiting_retry {
                    let wait = if awaiting_retry {
                        RETRY_WAIT
                    } else {
                        APPLY_WAIT
                    };
                    match jobs.recv_timeout(wait) {
                        Ok(job) => Some(job),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                } else {
                    None
                };
                match job {
                    Some(job) => job,
                    None => {
                        awaiting_retry = false;
                        if turn_since.take().is_some() {
                            writer.end_turn();
                        }
                        match jobs.recv() {
                            Ok(job) => job,
                            Err(_) => break,
                        }
                    }
                }
            }
        };
        taken += 1;
        if job.epoch != epoch {
            // Applied on top of a batch that was not written.
            match job.into_messages() {
                Ok(messages) => hand_back(&feedback, wake, epoch, messages),
                Err(job) => job.fail(&CommitError::Aborted),
            }
            continue;
        }
        awaiting_retry = false;
        let batch = CommitBatch {
            sequence: job.sequence,
            timestamp_last: job.timestamp_last,
            accounts_created: &job.accounts_created,
            accounts_updated: &job.accounts_updated,
            transfers: &job.transfers,
            pending: &job.pending,
            balances: &job.balances,
            registrations: &job.registrations,
            records: &job.records,
            claims: &job.claims,
            log: LogAppend {
                size_before: job.log_size_before,
                size_after: job.log_size_before
                    + (job.transfers.len() + job.registrations.len()) as u64,
                tiles: &job.log_tiles,
                checkpoint: job.checkpoint.as_ref(),
            },
        };
        let started = Instant::now();
        turn_since.get_or_insert(started);
        let committed = writer.commit(&batch);
        metrics.record_commit(started.elapsed());
        match committed {
            Ok(refused) => {
                metrics.batches_committed.fetch_add(1, Ordering::Relaxed);
                metrics
                    .events_committed
                    .fetch_add(job.results.len() as u64, Ordering::Relaxed);
                metrics
                    .transfers_committed
                    .fetch_add(job.transfers.len() as u64, Ordering::Relaxed);
                metrics
                    .pending_expired
                    .fetch_add(job.expired, Ordering::Relaxed);
                // Durable: now, and only now, the answers go out.
                let mut taken = refused
                    .iter()
                    .map(|claim| job.claim_replies[*claim])
                    .peekable();
                for (index, reply) in job.replies.into_iter().enumerate() {
                    if taken.next_if_eq(&index).is_some() {
                        let _ = reply.sender.send(Err(CommitError::Taken));
                        continue;
                    }
                    let results = job.results[reply.start..reply.start + reply.length].to_vec();
                    let _ = reply.sender.send(Ok(results));
                }
                for (sender, outcomes) in job.registration_replies {
                    let _ = sender.send(Ok(outcomes));
                }
                let _ = feedback.send(Feedback::Durable(job.sequence));
                // A busy writer still lets the others in now and then.
                if turn_since.is_some_and(|since| since.elapsed() >= TURN_MAX) {
                    turn_since = None;
                    writer.end_turn();
                }
            }
            Err(error) if error.kind == StoreErrorKind::Stale && job.retry.is_some() => {
                // Another node's batch came first. This writer holds the turn now, so the
                // batch applied again on the new state will follow the head.
                metrics.batches_retried.fetch_add(1, Ordering::Relaxed);
                epoch += 1;
                awaiting_retry = true;
                let Ok(messages) = job.into_messages() else {
                    unreachable!("checked above")
                };
                hand_back(&feedback, wake, epoch, messages);
            }
            Err(error) => {
                metrics.commit_failures.fetch_add(1, Ordering::Relaxed);
                job.fail(&CommitError::Store(error));
                epoch += 1;
                let _ = feedback.send(Feedback::Failed { epoch });
            }
        }
    }
}

/// Gives the sequencer requests to apply again, and wakes it if it waits for new ones.
fn hand_back(
    feedback: &Sender<Feedback>,
    wake: &SyncSender<Message>,
    epoch: u64,
    messages: Vec<Message>,
) {
    let _ = feedback.send(Feedback::Retry { epoch, messages });
    let _ = wake.try_send(Message::Wake);
}
