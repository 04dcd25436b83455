//! The storage interface of the ledger, and the types every backend shares.
//!
//! This crate depends on no database driver. Each backend (`store-sqlite`, later
//! `store-postgres`) implements [`Store`], owns its migrations, and maps its own driver errors
//! into [`StoreError`] so that nothing driver-specific reaches the layers above.
//!
//! Writes go through exactly one [`StoreWriter`] per process (owned by the sequencer); reads
//! through any number of [`StoreReader`]s.

mod access;
mod audit;
mod business;
mod query;
mod registration;
mod users;

pub use query::{QueryLimits, QueryOutput, Value, QUERY_TEXT_BYTES_MAX};
pub use users::{NewUser, OneTimeCode, Session, SmsMessage, User, UserStore};

pub use access::{AdminWriter, Credential, CredentialRole, NewCredential};
pub use audit::LedgerAudit;
pub use business::{
    denominations_text, envelope_packets_text, parse_denominations, parse_envelope_packets,
    BankDirection, BankTransfer, BankTransferState, BillPayment, BillPaymentState, Biller,
    BillerCategory, Card, CardState, CheckDigit, CodeKind, CodeReport, CodeState, CodeUse,
    DeliveryState, DeliveryUpdate, DeviceState, Envelope, EnvelopeKind, EnvelopeState, Escrow,
    EscrowState, Event as BusinessEvent, Group, GroupMember, IdempotencyRecord, Invoice,
    InvoiceKind, InvoiceReimbursement, InvoiceState, Merchant, MerchantCode, MerchantKey, Order,
    OrderState, OutboxWriter, Outlet, OutletKind, P2pTransfer, PaymentDevice, Record, RecordReader,
    ReferenceCharset, Refund, SavedBiller, SavedBillerState, StoredEvent, BILLER_DENOMINATIONS_MAX,
    BILL_REFERENCE_CHARS_MAX, CODE_PAYLOAD_BYTES_MAX, ENVELOPE_PACKETS_MAX, RECORD_BODY_BYTES_MAX,
    RECORD_PAGE_LIMIT_MAX, RECORD_TEXT_BYTES_MAX, RECORD_URL_BYTES_MAX, REQUEST_RECORDS_MAX,
};
pub use registration::{
    NewRegistration, Registration, RegistrationInputError, RegistrationKind, StoredRegistration,
    IDEMPOTENCY_KEY_BYTES_MAX, LOG_LEAF_REGISTRATION, REGISTRATION_ENCODING_VERSION,
    REGISTRATION_LEAF_BYTES_MAX, REGISTRATION_REFERENCE_BYTES_MAX, REQUEST_REGISTRATIONS_MAX,
};

use ledger::{Account, AccountBalance, Currency, PendingStatus, Transfer};

/// How many account ids or transfer ids one prefetch query may carry.
pub const PREFETCH_IDS_MAX: usize = 2 * ledger::BATCH_EVENTS_MAX + ledger::BATCH_EXPIRIES_MAX;
/// Most rows one page of an account's history may hold.
pub const HISTORY_PAGE_LIMIT_MAX: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The database cannot be reached or opened (missing file, refused connection, full disk).
    Unavailable,
    /// The data does not have the shape this version expects (unknown migration, bad value).
    Corrupt,
    /// A statement was refused (for example a write on a read-only connection).
    Refused,
    /// Another writer committed a batch first (several nodes on one database): this batch
    /// was not written, and applied again on the store's new state it may well succeed.
    Stale,
    /// Anything else the driver reported.
    Other,
}

/// An error from a store backend, with the driver's message and no driver types.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    pub kind: StoreErrorKind,
    pub message: String,
}

impl StoreError {
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
        }
    }

    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::Corrupt, message)
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything one batch changed, written by [`StoreWriter::commit`] in one transaction.
#[derive(Debug, Default)]
pub struct CommitBatch<'a> {
    /// The batch's number, counted from 1; each commit is the previous one plus one.
    pub sequence: u64,
    /// The ledger timestamp of the batch's last event; the next batch starts after it.
    pub timestamp_last: u64,
    pub accounts_created: &'a [Account],
    /// The new balances of existing accounts (each account at most once: netted per batch).
    pub accounts_updated: &'a [Account],
    pub transfers: &'a [Transfer],
    /// The final status of each pending transfer created or settled by the batch.
    pub pending: &'a [PendingRecord],
    pub balances: &'a [AccountBalance],
    /// Registrations committed by this batch; their leaves follow the transfers' leaves.
    pub registrations: &'a [StoredRegistration],
    /// Business records of requests whose events all committed (see [`Record`]).
    pub records: &'a [Record],
    /// Runs of `records` written only if a new order's keys are free (see [`Claim`]), in the
    /// order of `records`, not overlapping.
    pub claims: &'a [Claim],
    /// The trust log grown by this batch: one leaf per transfer, in the order of `transfers`,
    /// then one per registration, written in this same transaction.
    pub log: LogAppend<'a>,
}

/// A request's records that create an order, written only if the order is new: `records[first]`
/// is a [`Record::Order`] whose id and whose merchant's `out_trade_no` no stored order has.
/// If either is taken, none of `records[first..first + count]` is written and the rest of the
/// batch commits; [`StoreWriter::commit`] names the claim among those refused.
///
/// The check is the insert itself, in the batch's transaction: creating an order costs no read
/// before it, and two creations of one `out_trade_no` cannot both land, from however many
/// processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub first: usize,
    pub count: usize,
}

/// What a batch adds to the trust log.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogAppend<'a> {
    /// The log's size before the batch: the batch's first transfer is leaf number `size_before`.
    pub size_before: u64,
    pub size_after: u64,
    /// Tiles to store (C2SP tlog-tiles, height 8): full tiles once, the right edge's partial
    /// tiles replacing the narrower ones they extend.
    pub tiles: &'a [LogTile],
    /// A newly signed checkpoint, at most one a batch.
    pub checkpoint: Option<&'a LogCheckpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTile {
    pub level: u8,
    pub index: u64,
    /// Hashes in the tile, 1 to 256.
    pub width: u16,
    /// `width` hashes of 32 bytes.
    pub hashes: Vec<u8>,
}

/// A signed checkpoint: a C2SP signed note over the log's size and root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCheckpoint {
    pub size: u64,
    pub root: [u8; 32],
    /// The whole signed note, as served and as put in receipts.
    pub note: String,
    /// Ledger time when it was signed.
    pub timestamp: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingRecord {
    pub id: u128,
    pub status: PendingStatus,
    /// When the hold expires, for a pending transfer with a timeout.
    pub expires_at: Option<u64>,
}

/// Where the ledger stands after the last committed batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LedgerHead {
    pub batches: u64,
    pub timestamp_last: u64,
    /// The largest transfer id ever committed: any larger id is certainly new.
    pub transfer_id_max: u128,
    /// Leaves in the trust log.
    pub log_size: u64,
    /// The largest registration id committed (0: none yet).
    pub registration_id_max: u64,
}

/// Per-currency sums over all accounts, for the invariant debits == credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrencyTotals {
    pub currency: Currency,
    pub accounts: u64,
    pub debits_pending: u128,
    pub debits_posted: u128,
    pub credits_pending: u128,
    pub credits_posted: u128,
}

impl CurrencyTotals {
    pub fn balanced(&self) -> bool {
        self.debits_pending == self.credits_pending && self.debits_posted == self.credits_posted
    }
}

/// A page of an account's transfers, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    pub account_id: u128,
    /// Only transfers with a timestamp strictly after this one (the cursor); 0 from the start.
    pub after_timestamp: u64,
    pub limit: usize,
}

/// A transfer and, when it is a pending transfer, where it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredTransfer {
    pub transfer: Transfer,
    pub pending_status: Option<PendingStatus>,
    /// Its leaf number in the trust log.
    pub leaf_index: u64,
}

/// A database that holds a ledger.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// The one writer. A backend may refuse a second concurrent writer.
    fn writer(&self) -> StoreResult<Box<dyn StoreWriter>>;
    fn reader(&self) -> StoreResult<Box<dyn StoreReader>>;
    /// Writes outside the ledger's batches: credentials, witness cosignatures.
    fn admin(&self) -> StoreResult<Box<dyn AdminWriter>>;
    /// Users, one-time codes, the SMS outbox, sessions.
    fn users(&self) -> StoreResult<Box<dyn UserStore>>;
    /// Reads business records (orders, merchants, cards …).
    fn records(&self) -> StoreResult<Box<dyn RecordReader>>;
    /// Writes the outbox's delivery progress.
    fn outbox(&self) -> StoreResult<Box<dyn OutboxWriter>>;
    /// Runs one read-only SQL statement (auditors), the read-only rule enforced by the engine.
    /// Blocks: call it off the async runtime.
    fn query(&self, sql: &str, limits: QueryLimits) -> StoreResult<QueryOutput>;
    /// `"sqlite"`, `"postgres"`.
    fn backend(&self) -> &'static str;
    /// Several processes may write this store at once, each through its own sequencer (taking
    /// turns through the writer's lease): a batch refused as [`StoreErrorKind::Stale`] is to
    /// be applied again on the new state, and nothing read from it stays true for long.
    fn shared(&self) -> bool {
        false
    }
    /// Locks every process sharing the store sees (`None` on a store one process writes).
    fn shared_locks(&self) -> StoreResult<Option<Box<dyn SharedLocks>>> {
        Ok(None)
    }
}

/// Locks held by a session of a shared store, seen by every process on it: a node serialises
/// its work on an object with the other nodes through them. Taking one never waits (a session
/// that waited could not release the locks it holds for other work meanwhile); the caller
/// tries again. Locks are re-entrant within the session and end with it.
pub trait SharedLocks: Send {
    /// Takes the lock `(class, key)` if no other session holds it.
    fn try_lock(&mut self, class: i32, key: i32) -> StoreResult<bool>;
    /// Releases one hold of `(class, key)` by this session.
    fn unlock(&mut self, class: i32, key: i32) -> StoreResult<()>;
}

/// Writes batches. Each commit is one transaction, durable when `commit` returns `Ok`.
pub trait StoreWriter: Send {
    /// On a shared store, takes the writer's turn first if this writer does not hold it (and
    /// keeps it until [`StoreWriter::end_turn`]). Answers the claims refused (indices into
    /// `batch.claims`, ascending); everything else of the batch is durable.
    fn commit(&mut self, batch: &CommitBatch<'_>) -> StoreResult<Vec<usize>>;
    /// Lets the other writers of a shared store have their turn. Nothing on a store with one
    /// writer.
    fn end_turn(&mut self) {}
}

/// Reads committed state.
pub trait StoreReader: Send {
    fn head(&mut self) -> StoreResult<LedgerHead>;
    /// Appends the existing accounts among `ids` to `out` (missing ids are skipped).
    fn load_accounts(&mut self, ids: &[u128], out: &mut Vec<Account>) -> StoreResult<()>;
    /// Appends the existing transfers among `ids` to `out`, with their pending status.
    fn load_transfers(&mut self, ids: &[u128], out: &mut Vec<StoredTransfer>) -> StoreResult<()>;
    fn account(&mut self, id: u128) -> StoreResult<Option<Account>>;
    fn transfer(&mut self, id: u128) -> StoreResult<Option<StoredTransfer>>;
    /// An account's transfers by time, `query.limit` at most, oldest first.
    fn account_transfers(&mut self, query: HistoryQuery) -> StoreResult<Vec<Transfer>>;
    /// An account's balances after each transfer (accounts with the `history` flag).
    fn account_balances(&mut self, query: HistoryQuery) -> StoreResult<Vec<AccountBalance>>;
    /// Ids of pending transfers still pending whose timeout is at or before `now`, soonest
    /// first, `limit` at most.
    fn pending_due(&mut self, now: u64, limit: usize) -> StoreResult<Vec<u128>>;
    fn currency_totals(&mut self) -> StoreResult<Vec<CurrencyTotals>>;
    /// Ids of accounts whose balances break their flags (there should be none).
    fn accounts_violating_flags(&mut self, limit: usize) -> StoreResult<Vec<u128>>;
    /// How many transfers the ledger holds, and how many postings its history index holds
    /// (there should be two per transfer).
    fn history_counts(&mut self) -> StoreResult<HistoryCounts>;
    /// The first `width` hashes of a trust-log tile, from the full tile or a wider partial
    /// one; `None` if the log has no such hashes.
    fn log_tile(&mut self, level: u8, index: u64, width: u16) -> StoreResult<Option<Vec<u8>>>;
    /// The latest signed checkpoint.
    fn latest_checkpoint(&mut self) -> StoreResult<Option<LogCheckpoint>>;
    /// Calls `visit` with every transfer whose id is in `ids`, its pending status and its leaf
    /// number, in storage order (not leaf order): one pass over the table, for audits. Disjoint
    /// ranges on several readers split the pass between threads.
    fn visit_transfers(
        &mut self,
        ids: std::ops::RangeInclusive<u128>,
        visit: &mut dyn FnMut(&StoredTransfer),
    ) -> StoreResult<()>;
    /// The smallest transfer id committed (0: none yet), to split audits into ranges.
    fn transfer_id_min(&mut self) -> StoreResult<u128>;
    /// Calls `visit` with every account: one pass over the table, for audits.
    fn visit_accounts(&mut self, visit: &mut dyn FnMut(&Account)) -> StoreResult<()>;
    /// Every stored checkpoint, oldest first.
    fn checkpoints(&mut self) -> StoreResult<Vec<LogCheckpoint>>;
    /// The checkpoint signed at exactly `size` leaves.
    fn checkpoint(&mut self, size: u64) -> StoreResult<Option<LogCheckpoint>>;
    /// The self-audit's last recorded progress: a size and the root found there.
    fn last_audit(&mut self) -> StoreResult<Option<(u64, [u8; 32])>>;
    /// Witness cosignature lines stored for the checkpoint of `size` leaves.
    fn cosignatures(&mut self, size: u64) -> StoreResult<Vec<String>>;
    fn registration(&mut self, id: u64) -> StoreResult<Option<StoredRegistration>>;
    /// The registration a registrant asked for with `idempotency_key`.
    fn registration_by_key(
        &mut self,
        registrant: u128,
        idempotency_key: &str,
    ) -> StoreResult<Option<StoredRegistration>>;
    /// Calls `visit` with every registration, in id order, for audits.
    fn visit_registrations(
        &mut self,
        visit: &mut dyn FnMut(&StoredRegistration),
    ) -> StoreResult<()>;
    /// An API credential, for authenticating a request.
    fn credential(&mut self, id: u64) -> StoreResult<Option<Credential>>;
    /// Appends the leaves numbered `from..to` (at most [`LEAVES_RANGE_MAX`]) to `out`, in leaf
    /// order, each with its number; a leaf whose row is missing is simply absent.
    fn leaves(&mut self, from: u64, to: u64, out: &mut Vec<(u64, LogLeaf)>) -> StoreResult<()>;
}

/// Most leaves one [`StoreReader::leaves`] call returns.
pub const LEAVES_RANGE_MAX: u64 = 1 << 16;

/// What a trust-log leaf records, as read back from the rows it was derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogLeaf {
    Transfer(Transfer),
    Registration(Registration),
}

impl LogLeaf {
    /// The leaf's bytes, re-derived from the row.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            LogLeaf::Transfer(transfer) => transfer.log_leaf().to_vec(),
            LogLeaf::Registration(registration) => registration.log_leaf(),
        }
    }
}

/// Converts an id or an amount for a backend that stores signed 64-bit integers.
///
/// The core refuses anything above `ledger::VALUE_MAX`, so a failure here is a bug.
pub fn to_i64(value: u128) -> i64 {
    i64::try_from(value).expect("the ledger keeps every stored value within i64")
}

/// Reads back a stored signed 64-bit value; negative values mean the data was tampered with.
pub fn from_i64(value: i64, what: &str) -> StoreResult<u128> {
    u128::try_from(value).map_err(|_| StoreError::corrupt(format!("negative {what}: {value}")))
}

/// An account's four balances: stored, and added up from its transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalanceMismatch {
    pub account_id: u128,
    /// debits_pending, debits_posted, credits_pending, credits_posted as stored.
    pub stored: [u128; 4],
    /// The same, from the transfers: posted amounts of single-phase and posting transfers,
    /// pending amounts of pending transfers still pending.
    pub from_transfers: [u128; 4],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCounts {
    pub transfers: u64,
    pub postings: u64,
}

/// The ledger's invariants, checked against committed state.
#[derive(Debug, Clone)]
pub struct InvariantReport {
    pub totals: Vec<CurrencyTotals>,
    pub accounts_violating_flags: Vec<u128>,
}

impl InvariantReport {
    pub fn check(reader: &mut dyn StoreReader) -> StoreResult<InvariantReport> {
        Ok(InvariantReport {
            totals: reader.currency_totals()?,
            accounts_violating_flags: reader.accounts_violating_flags(100)?,
        })
    }

    pub fn holds(&self) -> bool {
        self.totals.iter().all(CurrencyTotals::balanced) && self.accounts_violating_flags.is_empty()
    }
}
