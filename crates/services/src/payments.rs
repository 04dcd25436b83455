//! Payments: merchants (onboarding, API keys, stores and terminals), merchant orders (create,
//! query, close, pay, expire), refunds, P2P transfers, real-name tier limits, the outbox of
//! merchant notifications, QR payments (`qr`), bill payments (`bill_pay`) and e-invoices
//! (`invoices`).
//!
//! Every change is one request to the sequencer: the ledger events that move the money and the
//! records that describe it (the order's new state, its notification, the idempotency record)
//! commit in one transaction or not at all. Work on one object (an order, a wallet, an
//! idempotency key) is serialised by [`KeyedLocks`] while its state is read, checked and
//! changed; the ledger is the last guard: an order's payment is a transfer whose id is fixed
//! when the order is created, so it can never be paid twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ledger::{AccountFlags, Currency, Event, EventResult, NewAccount, NewTransfer, TransferFlags};
use sequencer::{CommitError, SequencerHandle};
use serde_json::json;
use store::{
    BusinessEvent, IdempotencyRecord, Merchant, MerchantKey, Order, OrderState, Outlet, OutletKind,
    P2pTransfer, Record, Refund, StoreError, User, RECORD_TEXT_BYTES_MAX, RECORD_URL_BYTES_MAX,
};

use crate::accounts::{
    KIND_ENVELOPES, KIND_ESCROW, KIND_FEES, KIND_MERCHANT, KIND_RESERVE, KIND_SUSPENSE,
    TRANSFER_ESCROW, TRANSFER_FEE, TRANSFER_FEE_REFUND, TRANSFER_P2P, TRANSFER_PAYMENT,
    TRANSFER_REFUND,
};
use crate::ids::{new_id, transfer_id};
use crate::orders::{self, OrderCommand, OrderRefusal};
use crate::secrets;
use crate::stack_text::{tagged_id, TaggedId};
use crate::support::{lock_key, Handles, KeyedLocks};
use crate::time::{rfc3339_seconds, rfc3339_seconds_text, year_of, DateTimeText};
use crate::users::UserError;

mod envelopes;
mod escrow;
pub use envelopes::{
    luckiest, packet_transfer_id, EnvelopeConfig, EnvelopeView, Grab, NewEnvelope, Recipient,
};
pub use escrow::{escrow_json, EscrowActor};
mod bill_pay;
mod invoices;
pub use invoices::{
    Claim, InvoiceStatus, NewInvoice, Reimbursed, Voided, CLAIM_REFERENCE_BYTES_MAX,
};
mod qr;
pub use bill_pay::{
    bill_hold_transfer_id, BillerInput, Inquiry, BILL_PENDING_PER_ROUND_MAX,
    SAVED_BILLERS_PER_USER_MAX,
};
pub use qr::{
    numeric_currency, payload_digest, CodeRequest, EnrolledDevice, NewCharge, QrConfig, Scan,
    ScanStatus,
};

/// Most orders waiting for their payer that one listing shows.
pub const PAGE_AWAITING_MAX: usize = 100;

/// The platform's own accounts (one currency per operator).
pub const RESERVE_ACCOUNT_ID: u128 = 1;
pub const FEES_ACCOUNT_ID: u128 = 2;
pub const SUSPENSE_ACCOUNT_ID: u128 = 3;
/// Red envelopes sent and not yet grabbed.
pub const ENVELOPES_ACCOUNT_ID: u128 = 4;
/// Escrowed payments waiting for their buyers.
pub const ESCROW_ACCOUNT_ID: u128 = 5;

/// Longest merchant reference (`out_trade_no`, `out_refund_no`), as WeChat Pay allows.
pub const MERCHANT_REFERENCE_BYTES_MAX: usize = 32;
/// Longest `Idempotency-Key`.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 255;
/// How long a merchant key stays cached before it is read again (a revocation on another node
/// takes at most this long to be seen here).
pub const MERCHANT_KEY_CACHE_S: u64 = 30;
/// Merchants kept in memory at most.
pub const MERCHANTS_CACHED_MAX: usize = 100_000;
/// Largest amount one payment may move, whatever the tier: 10 million in major units of a
/// two-decimal currency.
pub const PAYMENT_AMOUNT_MAX: u64 = 1_000_000_000;

/// Limits of one real-name tier, in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierLimits {
    pub single_max: u64,
    pub daily_max: u64,
    pub yearly_max: u64,
}

#[derive(Debug, Clone)]
pub struct PaymentConfig {
    pub currency: Currency,
    pub order_lifetime_default_s: u64,
    pub order_lifetime_max_s: u64,
    /// Limits on what a user pays out (orders, P2P and bills), by tier 0, 1, 2.
    pub tiers: [TierLimits; 3],
    pub qr: QrConfig,
    pub envelopes: EnvelopeConfig,
    pub escrow: crate::escrow::EscrowConfig,
}

impl Default for PaymentConfig {
    fn default() -> Self {
        PaymentConfig {
            currency: Currency::parse("CNY").expect("valid code"),
            order_lifetime_default_s: 2 * 3600,
            order_lifetime_max_s: 7 * 24 * 3600,
            tiers: [
                // Registered only.
                TierLimits {
                    single_max: 100_000,
                    daily_max: 200_000,
                    yearly_max: 1_000_000,
                },
                // A bank card bound, the name checked by the bank.
                TierLimits {
                    single_max: 1_000_000,
                    daily_max: 5_000_000,
                    yearly_max: 20_000_000,
                },
                // Documents checked by the operator.
                TierLimits {
                    single_max: 5_000_000,
                    daily_max: 20_000_000,
                    yearly_max: 200_000_000,
                },
            ],
            qr: QrConfig::default(),
            envelopes: EnvelopeConfig::default(),
            escrow: crate::escrow::EscrowConfig::default(),
        }
    }
}

/// Why a payment request was refused. Nothing changed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PaymentError {
    #[error("{field}: {reason}")]
    InvalidInput { field: &'static str, reason: String },
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("the wallet does not hold enough money")]
    InsufficientFunds,
    #[error("the merchant's balance does not cover the refund")]
    MerchantInsufficientFunds,
    #[error("the {limit} limit of the user's tier allows at most {remaining} more")]
    LimitExceeded { limit: &'static str, remaining: u64 },
    #[error(transparent)]
    Order(#[from] OrderRefusal),
    #[error("out_trade_no was used for another order")]
    OutTradeNoUsed,
    #[error("out_refund_no was used for another refund")]
    OutRefundNoUsed,
    #[error("the Idempotency-Key was used before with another request")]
    IdempotencyConflict,
    #[error("a user cannot pay themselves")]
    SelfTransfer,
    #[error("the merchant's API key is missing, unknown, revoked or the signature is wrong")]
    InvalidSignature,
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Bank(#[from] crate::bank::BankError),
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
    #[error("the ledger could not commit: {0}")]
    Commit(#[from] CommitError),
    #[error("the ledger refused: {0}")]
    Ledger(String),
    #[error("{0}")]
    Random(#[from] secrets::RandomError),
    #[error("the QR payload cannot be read: {0}")]
    QrUnreadable(String),
    #[error("{}", .0.message())]
    Code(ScanStatus),
    #[error("the payment code is not valid: mistyped, expired, or from an unknown device")]
    PaymentCodeInvalid,
    #[error("the payment code was used already; the payer's app shows a new one")]
    PaymentCodeUsed,
    #[error("too many wrong codes for this device; its codes are refused for a while")]
    PaymentCodeLocked,
    #[error("at most {max} devices may make payment codes at once; revoke one first")]
    TooManyDevices { max: usize },
    #[error(transparent)]
    Grab(crate::envelopes::GrabRefusal),
    #[error(transparent)]
    Escrow(crate::escrow::EscrowRefusal),
    #[error("the money is in escrow: it goes back to the buyer through the escrow (a dispute) until it is released")]
    EscrowOpen,
    #[error(transparent)]
    Biller(#[from] crate::billers::BillerError),
    #[error(transparent)]
    Reference(#[from] crate::bill_payments::ReferenceRefusal),
    #[error("this biller takes only these amounts (minor units): {denominations:?}")]
    DenominationNotOffered { denominations: Vec<u64> },
    #[error("another biller has this code")]
    BillerCodeUsed,
    #[error("at most {max} billers may be saved; delete one first")]
    TooManySavedBillers { max: usize },
    #[error(transparent)]
    Invoice(#[from] crate::invoices::InvoiceRefusal),
}

impl PaymentError {
    /// The stable machine code of the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            PaymentError::InvalidInput { .. } => "invalid_request",
            PaymentError::NotFound(_) => "not_found",
            PaymentError::InsufficientFunds => "insufficient_funds",
            PaymentError::MerchantInsufficientFunds => "merchant_insufficient_funds",
            PaymentError::LimitExceeded { .. } => "limit_exceeded",
            PaymentError::Order(refusal) => match refusal {
                OrderRefusal::AlreadyPaid => "order_paid",
                OrderRefusal::Closed => "order_closed",
                OrderRefusal::Expired => "order_expired",
                OrderRefusal::AmountMismatch { .. } => "amount_mismatch",
                OrderRefusal::NotPaid => "order_not_paid",
                OrderRefusal::RefundExceedsPaid { .. } => "refund_exceeds_paid",
                OrderRefusal::ZeroAmount => "invalid_request",
                OrderRefusal::NotExpired => "order_not_expired",
            },
            PaymentError::OutTradeNoUsed => "out_trade_no_used",
            PaymentError::OutRefundNoUsed => "out_refund_no_used",
            PaymentError::IdempotencyConflict => "idempotency_conflict",
            PaymentError::SelfTransfer => "self_transfer",
            PaymentError::InvalidSignature => "invalid_signature",
            PaymentError::User(error) => crate::users::error_code(error),
            PaymentError::Bank(error) => error.code(),
            PaymentError::Store(_) | PaymentError::Ledger(_) | PaymentError::Random(_) => {
                "internal"
            }
            PaymentError::Commit(_) => "unavailable",
            PaymentError::QrUnreadable(_) => "qr_unreadable",
            PaymentError::Code(status) => status.refusal_code(),
            PaymentError::PaymentCodeInvalid => "payment_code_invalid",
            PaymentError::PaymentCodeUsed => "payment_code_used",
            PaymentError::PaymentCodeLocked => "payment_code_locked",
            PaymentError::TooManyDevices { .. } => "too_many_devices",
            PaymentError::Grab(refusal) => match refusal {
                crate::envelopes::GrabRefusal::NotInvited => "not_found",
                crate::envelopes::GrabRefusal::AlreadyGrabbed { .. } => "already_grabbed",
                crate::envelopes::GrabRefusal::Empty => "envelope_empty",
                crate::envelopes::GrabRefusal::Expired => "envelope_expired",
            },
            PaymentError::Escrow(refusal) => match refusal {
                crate::escrow::EscrowRefusal::NotShipped => "escrow_not_shipped",
                crate::escrow::EscrowRefusal::AlreadyShipped => "escrow_already_shipped",
                crate::escrow::EscrowRefusal::InDispute => "escrow_in_dispute",
                crate::escrow::EscrowRefusal::Settled => "escrow_settled",
                crate::escrow::EscrowRefusal::NoDispute => "escrow_no_dispute",
                crate::escrow::EscrowRefusal::SplitTooLarge { .. } => "invalid_request",
                crate::escrow::EscrowRefusal::NotDue => "escrow_not_due",
            },
            PaymentError::EscrowOpen => "escrow_open",
            PaymentError::Biller(error) => error.code(),
            PaymentError::Reference(refusal) => refusal.code(),
            PaymentError::DenominationNotOffered { .. } => "denomination_not_offered",
            PaymentError::BillerCodeUsed => "biller_code_used",
            PaymentError::TooManySavedBillers { .. } => "too_many_saved_billers",
            PaymentError::Invoice(refusal) => refusal.code(),
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> PaymentError {
    PaymentError::InvalidInput {
        field,
        reason: reason.into(),
    }
}

fn bounded_text(field: &'static str, text: &str, bytes_max: usize) -> Result<(), PaymentError> {
    if text.len() > bytes_max {
        return Err(invalid(field, format!("at most {bytes_max} bytes")));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(field, "no control characters"));
    }
    Ok(())
}

/// An amount of money a request may move: 1 to [`PAYMENT_AMOUNT_MAX`] minor units.
pub(crate) fn check_amount(amount: u64) -> Result<(), PaymentError> {
    if amount == 0 || amount > PAYMENT_AMOUNT_MAX {
        return Err(invalid(
            "amount",
            format!("1 to {PAYMENT_AMOUNT_MAX} minor units"),
        ));
    }
    Ok(())
}

/// A merchant's own reference: 1 to 32 of letters, digits, `_`, `-`, `|`, `*`.
pub fn check_reference(field: &'static str, text: &str) -> Result<(), PaymentError> {
    let valid = !text.is_empty()
        && text.len() <= MERCHANT_REFERENCE_BYTES_MAX
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"_-|*".contains(&byte));
    if valid {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("1 to {MERCHANT_REFERENCE_BYTES_MAX} letters, digits, _ - | *"),
        ))
    }
}

fn check_notify_url(url: &str) -> Result<(), PaymentError> {
    bounded_text("notify_url", url, RECORD_URL_BYTES_MAX)?;
    // Notifications leave over plain HTTP: an operator that needs TLS to merchants sends them
    // through its egress proxy.
    if !url.starts_with("http://") || url.len() <= "http://".len() || url.contains(' ') {
        return Err(invalid("notify_url", "an http:// URL"));
    }
    Ok(())
}

/// A request made with an `Idempotency-Key`: who made it, the key, and a digest of the
/// request, so that a retry replays the first answer and another request with the key is
/// refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub principal: String,
    pub key: String,
    pub request_digest: [u8; 32],
}

impl Idempotency {
    pub fn new(
        principal: String,
        key: &str,
        request: &[&[u8]],
    ) -> Result<Idempotency, PaymentError> {
        if key.is_empty()
            || key.len() > IDEMPOTENCY_KEY_BYTES_MAX
            || !key.bytes().all(|byte| byte.is_ascii_graphic())
        {
            return Err(invalid(
                "Idempotency-Key",
                format!("1 to {IDEMPOTENCY_KEY_BYTES_MAX} printable ASCII characters"),
            ));
        }
        Ok(Idempotency {
            principal,
            key: key.to_owned(),
            request_digest: secrets::sha256(request),
        })
    }

    pub(crate) fn lock_key(&self) -> u64 {
        lock_key("idempotency", (&self.principal, &self.key))
    }

    /// Looks up the stored answer of `request`: the replay, a conflict, or nothing yet.
    pub(crate) fn replay(
        request: Option<&Idempotency>,
        handles: &Handles,
    ) -> Result<Option<(u16, String)>, PaymentError> {
        let Some(request) = request else {
            return Ok(None);
        };
        let stored =
            handles.records(|records| records.idempotency(&request.principal, &request.key))?;
        match stored {
            None => Ok(None),
            Some(stored) if secrets::equal(&stored.request_digest, &request.request_digest) => {
                Ok(Some((stored.status, stored.response)))
            }
            Some(_) => Err(PaymentError::IdempotencyConflict),
        }
    }

    /// The record that stores the first answer of `request`, written with its change.
    pub(crate) fn record<T>(
        request: Option<&Idempotency>,
        render: Render<'_, T>,
        result: &T,
        now_s: u64,
    ) -> Option<Record> {
        request.map(|request| {
            let (status, response) = render(result);
            Record::Idempotency(IdempotencyRecord {
                principal: request.principal.clone(),
                key: request.key.clone(),
                request_digest: request.request_digest,
                status,
                response,
                created_at: now_s,
            })
        })
    }
}

/// The answer of a request that may be a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// Done now.
    Done(T),
    /// A retry: the first answer, as it was given.
    Replayed { status: u16, body: String },
}

/// How the edge renders a result, so the first answer can be stored and replayed.
pub type Render<'a, T> = &'a (dyn Fn(&T) -> (u16, String) + Sync);

/// A new merchant, as the operator onboards it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMerchant {
    pub name: String,
    pub mcc: String,
    pub country: String,
    pub city: String,
    pub settlement_account: String,
    pub fee_rate_bps: u32,
}

/// A merchant API key, with its secret: shown once, never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMerchantKey {
    pub key: MerchantKey,
    /// `msk_` and 64 hex digits; requests are signed with SHA-256 of this text.
    pub secret: String,
}

/// A merchant just onboarded: the secrets are shown this once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnboardedMerchant {
    pub merchant: Merchant,
    pub key: NewMerchantKey,
    /// `whsec_` and 64 hex digits: the key of the notifications' `Tally-Signature`.
    pub notify_secret: String,
}

/// An order as the merchant asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub out_trade_no: String,
    pub amount: u64,
    pub currency: String,
    pub description: String,
    pub notify_url: Option<String>,
    pub outlet_id: Option<u64>,
    /// Seconds from now; the configured default when `None`.
    pub expires_in_s: Option<u64>,
    /// Paid into escrow until the buyer confirms receipt.
    pub escrow: bool,
}

/// What a user paid out today and this year (for tier limits), as of `day` and `year`.
#[derive(Debug, Clone, Copy, Default)]
struct Spending {
    day: u64,
    day_total: u64,
    year: u64,
    year_total: u64,
    /// On a shared store: the wallet's (debits posted, debits pending) when this was last
    /// true. Another node's spending changes them, and the spending is read again.
    stamp: Option<(u128, u128)>,
}

const SECONDS_PER_DAY: u64 = 86_400;

/// The key a merchant's signature is checked with, and the merchant, as cached.
#[derive(Debug, Clone)]
pub struct VerifiedKey {
    pub key: MerchantKey,
    /// Shared with the cache: every signed request reads it, none copies it.
    pub merchant: Arc<Merchant>,
    fetched_at: u64,
}

/// Orders recently committed by this process, at most.
const RECENT_ORDERS_MAX: usize = 65_536;

/// Orders as this process last committed them, by id, the newest [`RECENT_ORDERS_MAX`]: a
/// payment usually follows its order's creation within seconds, and finds it here instead of
/// in the store. Filled only from commits, never from reads (a read could race a commit and
/// bring back an older state); left empty on a shared store, where other nodes write orders.
#[derive(Debug, Default)]
struct RecentOrders {
    inner: Mutex<RecentOrdersInner>,
}

#[derive(Debug, Default)]
struct RecentOrdersInner {
    orders: HashMap<u64, Order>,
    /// Ids in the order they were remembered (an id may appear more than once).
    arrivals: std::collections::VecDeque<u64>,
}

impl RecentOrders {
    fn get(&self, order_id: u64) -> Option<Order> {
        self.inner
            .lock()
            .expect("recent orders")
            .orders
            .get(&order_id)
            .cloned()
    }

    fn remember(&self, orders: Vec<Order>) {
        if orders.is_empty() {
            return;
        }
        let mut inner = self.inner.lock().expect("recent orders");
        for order in orders {
            inner.arrivals.push_back(order.id);
            inner.orders.insert(order.id, order);
        }
        while inner.arrivals.len() > RECENT_ORDERS_MAX {
            let oldest = inner.arrivals.pop_front().expect("not empty");
            // Dropped early if it arrived again since: only a later read from the store.
            inner.orders.remove(&oldest);
        }
    }

    fn forget(&self, order_ids: impl Iterator<Item = u64>) {
        let mut inner = self.inner.lock().expect("recent orders");
        for id in order_ids {
            inner.orders.remove(&id);
        }
    }
}

pub struct Payments {
    handles: Arc<Handles>,
    ledger: SequencerHandle,
    config: PaymentConfig,
    locks: KeyedLocks,
    keys: Mutex<HashMap<u64, VerifiedKey>>,
    /// Merchants as recently read: (merchant, when) — their fee rate is read on every payment.
    merchants: Mutex<HashMap<u64, (Arc<Merchant>, u64)>>,
    spending: Mutex<HashMap<u64, Spending>>,
    /// Orders as this process last committed them.
    recent_orders: RecentOrders,
    /// Wrong payment codes per device number.
    code_failures: Mutex<qr::FailureMap>,
    /// Red envelopes in use, with who grabbed what.
    envelope_books: envelopes::Books,
    /// Reaches the billers bills are paid to.
    billers: Arc<dyn crate::billers::BillerConnector>,
}

impl std::fmt::Debug for Payments {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Payments")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Results of a request's events: all `ok`, or the first refusal.
fn first_refusal(results: &[EventResult]) -> Option<EventResult> {
    results
        .iter()
        .copied()
        .find(|result| *result != EventResult::Ok && *result != EventResult::LinkedEventFailed)
        .or_else(|| {
            results
                .iter()
                .copied()
                .find(|result| *result != EventResult::Ok)
        })
}

/// An order as the API shows it.
#[derive(Debug, serde::Serialize)]
pub struct OrderView<'a> {
    id: TaggedId,
    object: &'static str,
    merchant_id: TaggedId,
    outlet_id: Option<TaggedId>,
    out_trade_no: &'a str,
    amount: u64,
    currency: &'a str,
    description: &'a str,
    notify_url: Option<&'a str>,
    state: &'static str,
    payer_id: Option<TaggedId>,
    fee: u64,
    refunded: u64,
    created_at: DateTimeText,
    expires_at: DateTimeText,
    paid_at: Option<DateTimeText>,
    closed_at: Option<DateTimeText>,
    version: u32,
    escrow: bool,
}

impl<'a> OrderView<'a> {
    pub fn of(order: &'a Order) -> OrderView<'a> {
        OrderView {
            id: tagged_id("ord_", order.id),
            object: "order",
            merchant_id: tagged_id("mch_", order.merchant_id),
            outlet_id: order.outlet_id.map(|id| tagged_id("out_", id)),
            out_trade_no: &order.out_trade_no,
            amount: order.amount,
            currency: &order.currency,
            description: &order.description,
            notify_url: order.notify_url.as_deref(),
            state: orders::trade_state(order),
            payer_id: order.payer_user_id.map(|id| tagged_id("usr_", id)),
            fee: order.fee,
            refunded: order.refunded,
            created_at: rfc3339_seconds_text(order.created_at),
            expires_at: rfc3339_seconds_text(order.expires_at),
            paid_at: order.paid_at.map(rfc3339_seconds_text),
            closed_at: order.closed_at.map(rfc3339_seconds_text),
            version: order.version,
            escrow: order.escrow,
        }
    }

    /// The JSON text.
    pub fn text(&self) -> String {
        serde_json::to_string(self).expect("an order always serializes")
    }
}

pub fn order_json(order: &Order) -> serde_json::Value {
    serde_json::to_value(OrderView::of(order)).expect("an order always serializes")
}

pub fn refund_json(refund: &Refund) -> serde_json::Value {
    json!({
        "id": format!("rfd_{}", refund.id),
        "object": "refund",
        "order_id": format!("ord_{}", refund.order_id),
        "out_refund_no": refund.out_refund_no,
        "amount": refund.amount,
        "fee_refunded": refund.fee_refunded,
        "reason": refund.reason,
        "state": "SUCCESS",
        "created_at": rfc3339_seconds(refund.created_at),
    })
}

fn event_record(
    merchant_id: u64,
    object_id: u64,
    object_sequence: u32,
    kind: &str,
    data: &impl serde::Serialize,
    notify_url: Option<String>,
    now_s: u64,
) -> Result<Record, PaymentError> {
    #[derive(serde::Serialize)]
    struct Payload<'a, T> {
        id: TaggedId,
        #[serde(rename = "type")]
        kind: &'a str,
        created_at: DateTimeText,
        sequence: u32,
        data: &'a T,
    }
    let id = new_id(now_s * 1000)?;
    let payload = Payload {
        id: tagged_id("evt_", id),
        kind,
        created_at: rfc3339_seconds_text(now_s),
        sequence: object_sequence,
        data,
    };
    Ok(Record::Event(BusinessEvent {
        id,
        merchant_id,
        object_id,
        object_sequence,
        kind: kind.to_owned(),
        payload: serde_json::to_string(&payload).expect("an event always serializes"),
        notify_url,
        created_at: now_s,
    }))
}

impl Payments {
    /// Opens the payment services, creating the platform accounts the first time.
    pub fn new(
        handles: Arc<Handles>,
        ledger: SequencerHandle,
        config: PaymentConfig,
        billers: Arc<dyn crate::billers::BillerConnector>,
    ) -> Result<Payments, PaymentError> {
        let platform = |id: u128, kind: u16, flags: AccountFlags| {
            Event::CreateAccount(NewAccount {
                id,
                currency: config.currency,
                kind,
                flags,
                user_data: 0,
            })
        };
        let ticket = ledger.submit(vec![
            // The reserve mirrors the custodian bank: debited when money comes in.
            platform(
                RESERVE_ACCOUNT_ID,
                KIND_RESERVE,
                AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
            ),
            platform(
                FEES_ACCOUNT_ID,
                KIND_FEES,
                AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
            ),
            platform(SUSPENSE_ACCOUNT_ID, KIND_SUSPENSE, AccountFlags::empty()),
            platform(
                ENVELOPES_ACCOUNT_ID,
                KIND_ENVELOPES,
                AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
            ),
            platform(
                ESCROW_ACCOUNT_ID,
                KIND_ESCROW,
                AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
            ),
        ])?;
        // Waited for on a thread of its own: this may be called on an async runtime's thread,
        // where a ticket cannot be waited for in place.
        let results = std::thread::scope(|scope| {
            scope
                .spawn(|| ticket.wait())
                .join()
                .unwrap_or(Err(CommitError::ShuttingDown))
        })?;
        if !results
            .iter()
            .all(|result| matches!(result, EventResult::Ok | EventResult::Exists))
        {
            return Err(PaymentError::Ledger(format!(
                "the platform accounts cannot be opened (another currency?): {results:?}"
            )));
        }
        Ok(Payments {
            locks: KeyedLocks::for_store(&handles),
            handles,
            ledger,
            config,
            keys: Mutex::new(HashMap::new()),
            merchants: Mutex::new(HashMap::new()),
            spending: Mutex::new(HashMap::new()),
            recent_orders: RecentOrders::default(),
            code_failures: Mutex::new(HashMap::new()),
            envelope_books: envelopes::Books::default(),
            billers,
        })
    }

    pub fn config(&self) -> &PaymentConfig {
        &self.config
    }

    pub fn handles(&self) -> &Arc<Handles> {
        &self.handles
    }

    /// Commits `events` with `records`; the results, once durable.
    async fn commit(
        &self,
        events: Vec<Event>,
        records: Vec<Record>,
    ) -> Result<Vec<EventResult>, PaymentError> {
        // Every order a request writes is written under its lock (or is new), so the cache
        // learns each order's states in the order the ledger commits them.
        let orders: Vec<Order> = if self.handles.store().shared() {
            Vec::new()
        } else {
            records
                .iter()
                .filter_map(|record| match record {
                    Record::Order(order) => Some(order.clone()),
                    _ => None,
                })
                .collect()
        };
        let committed = match self.ledger.submit_with_records(events, records) {
            Ok(ticket) => ticket.await,
            Err(error) => Err(error),
        };
        match &committed {
            // The records are written only when every event is `ok`.
            Ok(results) if results.iter().all(|result| *result == EventResult::Ok) => {
                self.recent_orders.remember(orders);
            }
            _ => self
                .recent_orders
                .forget(orders.iter().map(|order| order.id)),
        }
        Ok(committed?)
    }

    /// Commits `records`, which create an order (the first), only if the order's
    /// `out_trade_no` is free; [`CommitError::Taken`] if it is not. The order is remembered
    /// as [`Payments::commit`] remembers orders.
    async fn commit_claim(&self, records: Vec<Record>) -> Result<(), PaymentError> {
        let order = match records.first() {
            Some(Record::Order(order)) if !self.handles.store().shared() => Some(order.clone()),
            _ => None,
        };
        let committed = match self.ledger.submit_claim(records) {
            Ok(ticket) => ticket.await,
            Err(error) => Err(error),
        };
        if let Some(order) = order {
            match &committed {
                Ok(_) => self.recent_orders.remember(vec![order]),
                Err(_) => self.recent_orders.forget([order.id].into_iter()),
            }
        }
        committed.map(drop).map_err(PaymentError::from)
    }

    /// An order by id: as this process last committed it, else from the store.
    fn read_order(&self, order_id: u64) -> Result<Option<Order>, PaymentError> {
        if let Some(order) = self.recent_orders.get(order_id) {
            return Ok(Some(order));
        }
        Ok(self.handles.records(|records| records.order(order_id))?)
    }

    // ---- Merchants -------------------------------------------------------------------------

    /// Onboards a merchant: its ledger account, its record and a first API key.
    ///
    /// With an `Idempotency-Key`, a retry answers what `render` stored; the secrets are shown
    /// once, so `render` must leave them out of what it stores.
    pub async fn onboard_merchant(
        &self,
        input: NewMerchant,
        idempotency: Option<&Idempotency>,
        render: Render<'_, Merchant>,
        now_s: u64,
    ) -> Result<Outcome<OnboardedMerchant>, PaymentError> {
        bounded_text("name", &input.name, RECORD_TEXT_BYTES_MAX)?;
        if input.name.trim().is_empty() {
            return Err(invalid("name", "required"));
        }
        if input.mcc.len() != 4 || !input.mcc.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(invalid("mcc", "four digits (ISO 18245)"));
        }
        if input.country.len() != 2 || !input.country.bytes().all(|byte| byte.is_ascii_uppercase())
        {
            return Err(invalid("country", "two upper-case letters (ISO 3166-1)"));
        }
        bounded_text("city", &input.city, RECORD_TEXT_BYTES_MAX)?;
        if input.city.trim().is_empty() {
            return Err(invalid("city", "required"));
        }
        bounded_text("settlement_account", &input.settlement_account, 64)?;
        if input.settlement_account.trim().is_empty() {
            return Err(invalid("settlement_account", "required"));
        }
        if input.fee_rate_bps > 10_000 {
            return Err(invalid("fee_rate_bps", "0 to 10000 basis points"));
        }
        let id = new_id(now_s * 1000)?;
        let notify_key = secrets::random_bytes::<32>()?;
        let merchant = Merchant {
            id,
            name: input.name,
            mcc: input.mcc,
            country: input.country,
            city: input.city,
            settlement_account: input.settlement_account,
            fee_rate_bps: input.fee_rate_bps,
            account_id: u128::from(id),
            notify_key,
            created_at: now_s,
        };
        let key = Self::new_key(id, now_s)?;
        let account = Event::CreateAccount(NewAccount {
            id: merchant.account_id,
            currency: self.config.currency,
            kind: KIND_MERCHANT,
            // No balance snapshot per transfer: a merchant's statement and daily bill come from
            // the history index, and a snapshot is a row in an (account, time) index for every
            // payment of a busy merchant.
            flags: AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
            user_data: 0,
        });
        let _guards = self
            .locks
            .lock(
                &idempotency
                    .map(Idempotency::lock_key)
                    .into_iter()
                    .collect::<Vec<_>>(),
            )
            .await;
        if let Some((status, body)) = Idempotency::replay(idempotency, &self.handles)? {
            return Ok(Outcome::Replayed { status, body });
        }
        let mut records = vec![
            Record::Merchant(merchant.clone()),
            Record::MerchantKey(key.key.clone()),
        ];
        records.extend(Idempotency::record(idempotency, render, &merchant, now_s));
        let results = self.commit(vec![account], records).await?;
        if results != [EventResult::Ok] {
            return Err(PaymentError::Ledger(format!("{results:?}")));
        }
        Ok(Outcome::Done(OnboardedMerchant {
            merchant,
            key,
            notify_secret: format!("whsec_{}", secrets::hex(&notify_key)),
        }))
    }

    fn new_key(merchant_id: u64, now_s: u64) -> Result<NewMerchantKey, PaymentError> {
        let secret = format!("msk_{}", secrets::hex(&secrets::random_bytes::<32>()?));
        Ok(NewMerchantKey {
            key: MerchantKey {
                id: new_id(now_s * 1000)?,
                merchant_id,
                signing_key: signing_key(&secret),
                created_at: now_s,
                revoked_at: None,
            },
            secret,
        })
    }

    /// A new API key for a merchant (for rotation): the secret is shown once.
    pub async fn create_merchant_key(
        &self,
        merchant_id: u64,
        now_s: u64,
    ) -> Result<NewMerchantKey, PaymentError> {
        self.merchant(merchant_id)?;
        let key = Self::new_key(merchant_id, now_s)?;
        self.commit(Vec::new(), vec![Record::MerchantKey(key.key.clone())])
            .await?;
        Ok(key)
    }

    /// Revokes a key: requests signed with it are refused (on other nodes within
    /// [`MERCHANT_KEY_CACHE_S`]).
    pub async fn revoke_merchant_key(
        &self,
        key_id: u64,
        now_s: u64,
    ) -> Result<MerchantKey, PaymentError> {
        let mut key = self
            .handles
            .records(|records| records.merchant_key(key_id))?
            .ok_or(PaymentError::NotFound("key"))?;
        if key.revoked_at.is_none() {
            key.revoked_at = Some(now_s);
            self.commit(Vec::new(), vec![Record::MerchantKey(key.clone())])
                .await?;
        }
        self.keys.lock().expect("key cache").remove(&key_id);
        Ok(key)
    }

    pub fn merchant(&self, id: u64) -> Result<Merchant, PaymentError> {
        self.handles
            .records(|records| records.merchant(id))?
            .ok_or(PaymentError::NotFound("merchant"))
    }

    /// A merchant, from memory when read less than [`MERCHANT_KEY_CACHE_S`] ago.
    fn merchant_cached(&self, id: u64, now_s: u64) -> Result<Arc<Merchant>, PaymentError> {
        if let Some((merchant, fetched_at)) = self.merchants.lock().expect("merchants").get(&id) {
            if now_s < fetched_at + MERCHANT_KEY_CACHE_S {
                return Ok(merchant.clone());
            }
        }
        let merchant = Arc::new(self.merchant(id)?);
        let mut merchants = self.merchants.lock().expect("merchants");
        if merchants.len() >= MERCHANTS_CACHED_MAX {
            merchants.clear();
        }
        merchants.insert(id, (merchant.clone(), now_s));
        Ok(merchant)
    }

    /// The merchant key `key_id`, active, from the cache or the store.
    /// Records the nonce of a signed request whose signature checked: on a shared store in the
    /// store, so that a request replayed through another node is refused too (`false`). A
    /// process serving its store alone has its memory of nonces, checked with the signature.
    pub fn claim_nonce(&self, key_id: u64, nonce: &str, now_s: u64) -> Result<bool, PaymentError> {
        if !self.handles.store().shared() {
            return Ok(true);
        }
        let forget_before = now_s.saturating_sub(2 * crate::signatures::WINDOW_S);
        Ok(self
            .handles
            .user_writer()?
            .claim_nonce(key_id, nonce, now_s, forget_before)?)
    }

    pub fn active_key(&self, key_id: u64, now_s: u64) -> Result<VerifiedKey, PaymentError> {
        if let Some(cached) = self.keys.lock().expect("key cache").get(&key_id) {
            if now_s < cached.fetched_at + MERCHANT_KEY_CACHE_S {
                return Ok(cached.clone());
            }
        }
        let (key, merchant) = self
            .handles
            .records(|records| {
                let Some(key) = records.merchant_key(key_id)? else {
                    return Ok(None);
                };
                Ok(records
                    .merchant(key.merchant_id)?
                    .map(|merchant| (key, merchant)))
            })?
            .ok_or(PaymentError::InvalidSignature)?;
        if key.revoked_at.is_some() {
            return Err(PaymentError::InvalidSignature);
        }
        let verified = VerifiedKey {
            key,
            merchant: Arc::new(merchant),
            fetched_at: now_s,
        };
        self.keys
            .lock()
            .expect("key cache")
            .insert(key_id, verified.clone());
        Ok(verified)
    }

    /// Adds a store, or a terminal in one of the merchant's stores.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_outlet(
        &self,
        merchant_id: u64,
        kind: OutletKind,
        parent_id: Option<u64>,
        name: &str,
        idempotency: Option<&Idempotency>,
        render: Render<'_, Outlet>,
        now_s: u64,
    ) -> Result<Outcome<Outlet>, PaymentError> {
        bounded_text("name", name, RECORD_TEXT_BYTES_MAX)?;
        if name.trim().is_empty() {
            return Err(invalid("name", "required"));
        }
        match (kind, parent_id) {
            (OutletKind::Store, Some(_)) => {
                return Err(invalid("store_id", "a store belongs to no other store"))
            }
            (OutletKind::Terminal, None) => {
                return Err(invalid("store_id", "a terminal belongs to a store"))
            }
            (OutletKind::Terminal, Some(parent)) => {
                let store = self
                    .handles
                    .records(|records| records.outlet(parent))?
                    .filter(|outlet| {
                        outlet.merchant_id == merchant_id && outlet.kind == OutletKind::Store
                    })
                    .ok_or(PaymentError::NotFound("store"))?;
                debug_assert_eq!(store.id, parent);
            }
            (OutletKind::Store, None) => {}
        }
        let _guards = self
            .locks
            .lock(
                &idempotency
                    .map(Idempotency::lock_key)
                    .into_iter()
                    .collect::<Vec<_>>(),
            )
            .await;
        if let Some((status, body)) = Idempotency::replay(idempotency, &self.handles)? {
            return Ok(Outcome::Replayed { status, body });
        }
        let outlet = Outlet {
            id: new_id(now_s * 1000)?,
            merchant_id,
            kind,
            parent_id,
            name: name.to_owned(),
            created_at: now_s,
        };
        let mut records = vec![Record::Outlet(outlet.clone())];
        records.extend(Idempotency::record(idempotency, render, &outlet, now_s));
        self.commit(Vec::new(), records).await?;
        Ok(Outcome::Done(outlet))
    }

    // ---- Orders ----------------------------------------------------------------------------

    /// The fields a merchant gives for a new order (or a POS charge), checked before anything
    /// is read: its reference, amount, currency, description and notification address.
    fn check_order_fields(
        &self,
        out_trade_no: &str,
        amount: u64,
        currency: &str,
        description: &str,
        notify_url: Option<&str>,
    ) -> Result<(), PaymentError> {
        check_reference("out_trade_no", out_trade_no)?;
        check_amount(amount)?;
        if currency != self.config.currency.as_str() {
            return Err(invalid(
                "currency",
                format!("this platform settles in {}", self.config.currency.as_str()),
            ));
        }
        bounded_text("description", description, RECORD_TEXT_BYTES_MAX)?;
        if let Some(url) = notify_url {
            check_notify_url(url)?;
        }
        Ok(())
    }

    /// An outlet named for a new order must be one of the merchant's.
    fn check_outlet(&self, merchant_id: u64, outlet_id: Option<u64>) -> Result<(), PaymentError> {
        if let Some(outlet_id) = outlet_id {
            self.handles
                .records(|records| records.outlet(outlet_id))?
                .filter(|outlet| outlet.merchant_id == merchant_id)
                .ok_or(PaymentError::NotFound("outlet"))?;
        }
        Ok(())
    }

    /// Creates an order. The same `out_trade_no` with the same content answers the existing
    /// order (a retry); with other content it is refused.
    pub async fn create_order(
        &self,
        merchant: &Merchant,
        input: NewOrder,
        idempotency: Option<&Idempotency>,
        render: Render<'_, Order>,
        now_s: u64,
    ) -> Result<Outcome<Order>, PaymentError> {
        self.check_order_fields(
            &input.out_trade_no,
            input.amount,
            &input.currency,
            &input.description,
            input.notify_url.as_deref(),
        )?;
        let lifetime = input
            .expires_in_s
            .unwrap_or(self.config.order_lifetime_default_s);
        if lifetime == 0 || lifetime > self.config.order_lifetime_max_s {
            return Err(invalid(
                "expires_in",
                format!("1 to {} seconds", self.config.order_lifetime_max_s),
            ));
        }
        self.check_outlet(merchant.id, input.outlet_id)?;
        let mut keys = vec![lock_key("out_trade_no", (merchant.id, &input.out_trade_no))];
        keys.extend(idempotency.map(Idempotency::lock_key));
        let _guards = self.locks.lock(&keys).await;
        if let Some((status, body)) = Idempotency::replay(idempotency, &self.handles)? {
            return Ok(Outcome::Replayed { status, body });
        }
        let id = new_id(now_s * 1000)?;
        let order = Order {
            id,
            merchant_id: merchant.id,
            outlet_id: input.outlet_id,
            out_trade_no: input.out_trade_no,
            amount: input.amount,
            currency: input.currency,
            description: input.description,
            notify_url: input.notify_url,
            state: OrderState::NotPay,
            payer_user_id: None,
            fee: 0,
            refunded: 0,
            created_at: now_s,
            expires_at: now_s + lifetime,
            paid_at: None,
            closed_at: None,
            version: 1,
            payment_transfer_id: transfer_id(id, 1),
            escrow: input.escrow,
        };
        let mut records = vec![Record::Order(order.clone())];
        records.extend(Idempotency::record(idempotency, render, &order, now_s));
        // No read first: the store writes the order only if its out_trade_no is free.
        match self.commit_claim(records).await {
            Ok(()) => Ok(Outcome::Done(order)),
            Err(PaymentError::Commit(CommitError::Taken)) => {
                let existing = self.handles.records(|records| {
                    records.order_by_out_trade_no(merchant.id, &order.out_trade_no)
                })?;
                match existing {
                    // A retry: the same order again.
                    Some(existing)
                        if existing.amount == order.amount
                            && existing.currency == order.currency
                            && existing.description == order.description
                            && existing.notify_url == order.notify_url
                            && existing.outlet_id == order.outlet_id
                            && existing.escrow == order.escrow =>
                    {
                        Ok(Outcome::Done(existing))
                    }
                    _ => Err(PaymentError::OutTradeNoUsed),
                }
            }
            Err(error) => Err(error),
        }
    }

    /// An order of `merchant_id`, by id; another merchant's order is "not found".
    pub fn order(&self, merchant_id: u64, order_id: u64) -> Result<Order, PaymentError> {
        self.read_order(order_id)?
            .filter(|order| order.merchant_id == merchant_id)
            .ok_or(PaymentError::NotFound("order"))
    }

    /// An order by id, for the user about to pay it (any merchant's). An order a POS bound
    /// to another payer, waiting for that payer, is "not found".
    pub fn order_for_payer(&self, order_id: u64, user_id: u64) -> Result<Order, PaymentError> {
        self.read_order(order_id)?
            .filter(|order| {
                order.state != OrderState::NotPay
                    || order.payer_user_id.is_none_or(|payer| payer == user_id)
            })
            .ok_or(PaymentError::NotFound("order"))
    }

    pub fn order_by_out_trade_no(
        &self,
        merchant_id: u64,
        out_trade_no: &str,
    ) -> Result<Order, PaymentError> {
        check_reference("out_trade_no", out_trade_no)?;
        self.handles
            .records(|records| records.order_by_out_trade_no(merchant_id, out_trade_no))?
            .ok_or(PaymentError::NotFound("order"))
    }

    pub fn orders(
        &self,
        merchant_id: u64,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<Order>, PaymentError> {
        Ok(self
            .handles
            .records(|records| records.orders(merchant_id, after_id, limit))?)
    }

    /// Closes an unpaid order (the merchant's decision, or its expiry), with a notification.
    pub async fn close_order(
        &self,
        merchant_id: u64,
        order_id: u64,
        expired: bool,
        now_s: u64,
    ) -> Result<Order, PaymentError> {
        let _guards = self.locks.lock(&[lock_key("order", order_id)]).await;
        let order = self.order(merchant_id, order_id)?;
        let command = if expired {
            OrderCommand::Expire { now: now_s }
        } else {
            OrderCommand::Close { now: now_s }
        };
        let closed = orders::transition(&order, command)?;
        let event = event_record(
            closed.merchant_id,
            closed.id,
            closed.version,
            "order.closed",
            &OrderView::of(&closed),
            closed.notify_url.clone(),
            now_s,
        )?;
        self.commit(Vec::new(), vec![Record::Order(closed.clone()), event])
            .await?;
        Ok(closed)
    }

    /// Closes every unpaid order whose expiry has passed; returns how many.
    pub async fn expire_orders(&self, now_s: u64, limit: usize) -> Result<usize, PaymentError> {
        let due = self
            .handles
            .records(|records| records.orders_expired(now_s, limit))?;
        let mut closed = 0;
        for order in due {
            match self
                .close_order(order.merchant_id, order.id, true, now_s)
                .await
            {
                Ok(_) => closed += 1,
                // Paid or closed meanwhile: nothing to do.
                Err(PaymentError::Order(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(closed)
    }

    /// Checks a payment of `amount` against the user's tier limits, and returns what the
    /// spending would be after it. Call with the user's lock held.
    fn check_limits(&self, user: &User, amount: u64, now_s: u64) -> Result<Spending, PaymentError> {
        let limits = self.config.tiers[usize::from(user.tier.min(2))];
        if amount > limits.single_max {
            return Err(PaymentError::LimitExceeded {
                limit: "single payment",
                remaining: limits.single_max,
            });
        }
        let day = now_s / SECONDS_PER_DAY;
        let year = year_of(now_s);
        // On a shared store other nodes pay from the wallet too: what this process remembers
        // holds only while the wallet's debits are what they were after its last payment here
        // (read under the wallet's shared lock); else the ledger's history is read again.
        let mut remembered = self
            .spending
            .lock()
            .expect("spending")
            .get(&user.id)
            .copied();
        if self.handles.store().shared() {
            let stamp = self.wallet_stamp(user)?;
            remembered = remembered.filter(|spending| spending.stamp == stamp);
        }
        let mut spending = match remembered {
            Some(spending) => spending,
            None => self.load_spending(user, now_s)?,
        };
        if spending.year != year {
            spending.year = year;
            spending.year_total = 0;
        }
        if spending.day != day {
            spending.day = day;
            spending.day_total = 0;
        }
        if spending.day_total + amount > limits.daily_max {
            return Err(PaymentError::LimitExceeded {
                limit: "daily",
                remaining: limits.daily_max.saturating_sub(spending.day_total),
            });
        }
        if spending.year_total + amount > limits.yearly_max {
            return Err(PaymentError::LimitExceeded {
                limit: "yearly",
                remaining: limits.yearly_max.saturating_sub(spending.year_total),
            });
        }
        spending.day_total += amount;
        spending.year_total += amount;
        Ok(spending)
    }

    /// What the user paid out this year and today, from the wallet's history (payments, P2P
    /// transfers and bill payments out; withdrawals to the user's own card do not count).
    fn load_spending(&self, user: &User, now_s: u64) -> Result<Spending, PaymentError> {
        let year = year_of(now_s);
        let year_start = crate::time::days_from_civil(year, 1, 1) * SECONDS_PER_DAY;
        let day = now_s / SECONDS_PER_DAY;
        let mut spending = Spending {
            day,
            day_total: 0,
            year,
            year_total: 0,
            stamp: None,
        };
        let mut reader = self.handles.store().reader()?;
        let mut after = (year_start * 1_000_000_000).saturating_sub(1);
        // Holds placed this year: pending transfer id → whether it was placed today.
        let mut holds: HashMap<u128, bool> = HashMap::new();
        loop {
            let page = reader.account_transfers(store::HistoryQuery {
                account_id: user.wallet_account_id,
                after_timestamp: after,
                limit: store::HISTORY_PAGE_LIMIT_MAX,
            })?;
            for transfer in &page {
                let outgoing = transfer.debit_account_id == user.wallet_account_id
                    && transfer.credit_account_id != RESERVE_ACCOUNT_ID;
                if !outgoing {
                    continue;
                }
                let amount = u64::try_from(transfer.amount).unwrap_or(u64::MAX);
                let today = transfer.timestamp / 1_000_000_000 / SECONDS_PER_DAY == day;
                // A hold (a bill payment waiting for its biller) counts when it is placed;
                // posting it moves nothing more, and voiding it gives the amount back to the
                // day it was held.
                if transfer.flags.contains(TransferFlags::POST_PENDING) {
                    continue;
                }
                if transfer.flags.contains(TransferFlags::VOID_PENDING) {
                    if let Some(held_today) = holds.remove(&transfer.pending_id) {
                        spending.year_total = spending.year_total.saturating_sub(amount);
                        if held_today {
                            spending.day_total = spending.day_total.saturating_sub(amount);
                        }
                    }
                    continue;
                }
                if transfer.flags.contains(TransferFlags::PENDING) {
                    holds.insert(transfer.id, today);
                }
                spending.year_total = spending.year_total.saturating_add(amount);
                if today {
                    spending.day_total = spending.day_total.saturating_add(amount);
                }
            }
            match page.last() {
                Some(last) if page.len() == store::HISTORY_PAGE_LIMIT_MAX => after = last.timestamp,
                _ => break,
            }
        }
        Ok(spending)
    }

    /// The wallet's (debits posted, debits pending), as the stamp of a remembered spending.
    fn wallet_stamp(&self, user: &User) -> Result<Option<(u128, u128)>, PaymentError> {
        let account = self
            .handles
            .ledger(|reader| reader.account(user.wallet_account_id))?;
        Ok(account.map(|account| (account.debits_posted, account.debits_pending)))
    }

    /// Remembers what `user` has spent after a payment (durable, the wallet's lock still held).
    fn remember_spending(&self, user: &User, mut spending: Spending) {
        if self.handles.store().shared() {
            match self.wallet_stamp(user) {
                Ok(stamp) => spending.stamp = stamp,
                // Unknown: the next payment reads the history again.
                Err(_) => return,
            }
        }
        let user_id = user.id;
        self.spending
            .lock()
            .expect("spending")
            .insert(user_id, spending);
    }

    /// Gives back to the user's limits an amount held at `held_at_s` and released since (a
    /// bill the biller refused).
    fn release_spending(&self, user_id: u64, amount: u64, held_at_s: u64) {
        let mut spending = self.spending.lock().expect("spending");
        if let Some(spending) = spending.get_mut(&user_id) {
            if spending.day == held_at_s / SECONDS_PER_DAY {
                spending.day_total = spending.day_total.saturating_sub(amount);
            }
            if spending.year == year_of(held_at_s) {
                spending.year_total = spending.year_total.saturating_sub(amount);
            }
        }
    }

    fn refusal(result: EventResult) -> PaymentError {
        match result {
            EventResult::ExceedsCredits => PaymentError::InsufficientFunds,
            other => PaymentError::Ledger(format!("{other:?}")),
        }
    }

    /// The user pays an order (the payment password was checked by the caller). The money
    /// goes from the wallet to the merchant, and the fee from the merchant to the platform, in
    /// one linked chain with the order's new state and its notification.
    pub async fn pay_order(
        &self,
        user: &User,
        order_id: u64,
        amount: u64,
        idempotency: Option<&Idempotency>,
        render: Render<'_, Order>,
        now_s: u64,
    ) -> Result<Outcome<Order>, PaymentError> {
        let mut keys = vec![lock_key("order", order_id), lock_key("user", user.id)];
        keys.extend(idempotency.map(Idempotency::lock_key));
        let _guards = self.locks.lock(&keys).await;
        if let Some((status, body)) = Idempotency::replay(idempotency, &self.handles)? {
            return Ok(Outcome::Replayed { status, body });
        }
        let order = self.order_for_payer(order_id, user.id)?;
        let paid = self
            .pay_loaded(user, &order, amount, Vec::new(), idempotency, render, now_s)
            .await?;
        Ok(Outcome::Done(paid))
    }

    /// Pays `order` as read under its lock (or just made, not yet stored): the payment and
    /// fee transfers, the paid order, its notification, `extra` records and the idempotency
    /// record, in one request. The caller holds the order's and the user's locks.
    #[allow(clippy::too_many_arguments)]
    async fn pay_loaded(
        &self,
        user: &User,
        order: &Order,
        amount: u64,
        extra: Vec<Record>,
        idempotency: Option<&Idempotency>,
        render: Render<'_, Order>,
        now_s: u64,
    ) -> Result<Order, PaymentError> {
        let merchant = self.merchant_cached(order.merchant_id, now_s)?;
        // An escrowed payment waits in the escrow account; the fee is charged on release.
        let fee = if order.escrow {
            0
        } else {
            orders::fee(amount, merchant.fee_rate_bps)
        };
        let paid = orders::transition(
            order,
            OrderCommand::Pay {
                payer_user_id: user.id,
                amount,
                fee,
                now: now_s,
            },
        )?;
        let spending = self.check_limits(user, amount, now_s)?;
        let currency = self.config.currency;
        let mut payment = NewTransfer::new(
            order.payment_transfer_id,
            user.wallet_account_id,
            if order.escrow {
                ESCROW_ACCOUNT_ID
            } else {
                merchant.account_id
            },
            u128::from(amount),
            currency,
        );
        payment.user_data = u128::from(order.id);
        payment.kind = if order.escrow {
            TRANSFER_ESCROW
        } else {
            TRANSFER_PAYMENT
        };
        let mut events = vec![Event::CreateTransfer(payment)];
        if fee > 0 {
            let Event::CreateTransfer(first) = &mut events[0] else {
                unreachable!("just built")
            };
            first.flags |= TransferFlags::LINKED;
            let mut charge = NewTransfer::new(
                transfer_id(order.id, 2),
                merchant.account_id,
                FEES_ACCOUNT_ID,
                u128::from(fee),
                currency,
            );
            charge.user_data = u128::from(order.id);
            charge.kind = TRANSFER_FEE;
            events.push(Event::CreateTransfer(charge));
        }
        let mut records = vec![
            Record::Order(paid.clone()),
            event_record(
                paid.merchant_id,
                paid.id,
                paid.version,
                "order.paid",
                &OrderView::of(&paid),
                paid.notify_url.clone(),
                now_s,
            )?,
        ];
        if paid.escrow {
            records.push(Record::Escrow(crate::escrow::held(
                paid.id,
                paid.merchant_id,
                user.id,
                amount,
                &self.config.escrow,
                now_s,
            )));
        }
        records.extend(extra);
        records.extend(Idempotency::record(idempotency, render, &paid, now_s));
        let results = self.commit(events, records).await?;
        match first_refusal(&results) {
            None => {
                self.remember_spending(user, spending);
                Ok(paid)
            }
            // The payment transfer exists: paid, by this user or another, meanwhile.
            Some(EventResult::Exists | EventResult::ExistsWithDifferentFields) => {
                Err(PaymentError::Order(OrderRefusal::AlreadyPaid))
            }
            Some(result) => Err(Self::refusal(result)),
        }
    }

    /// Refunds part or all of a paid order to its payer; idempotent by `out_refund_no`.
    // The request's fields, its idempotency, its rendering and the time: each says what it is.
    #[allow(clippy::too_many_arguments)]
    pub async fn refund_order(
        &self,
        merchant_id: u64,
        order_id: u64,
        out_refund_no: &str,
        amount: u64,
        reason: &str,
        idempotency: Option<&Idempotency>,
        render: Render<'_, Refund>,
        now_s: u64,
    ) -> Result<Outcome<Refund>, PaymentError> {
        check_reference("out_refund_no", out_refund_no)?;
        bounded_text("reason", reason, RECORD_TEXT_BYTES_MAX)?;
        let mut keys = vec![
            lock_key("order", order_id),
            lock_key("out_refund_no", (merchant_id, out_refund_no)),
        ];
        keys.extend(idempotency.map(Idempotency::lock_key));
        let _guards = self.locks.lock(&keys).await;
        if let Some((status, body)) = Idempotency::replay(idempotency, &self.handles)? {
            return Ok(Outcome::Replayed { status, body });
        }
        let order = self.order(merchant_id, order_id)?;
        self.check_refundable(&order)?;
        let existing = self
            .handles
            .records(|records| records.refund_by_out_refund_no(merchant_id, out_refund_no))?;
        if let Some(existing) = existing {
            return if existing.order_id == order_id && existing.amount == amount {
                Ok(Outcome::Done(existing))
            } else {
                Err(PaymentError::OutRefundNoUsed)
            };
        }
        let refunded = orders::transition(&order, OrderCommand::Refund { amount })?;
        let before: u64 = self
            .handles
            .records(|records| records.refunds_of_order(order_id))?
            .iter()
            .map(|refund| refund.fee_refunded)
            .sum();
        let fee_back = orders::fee_refunded(&order, amount, before);
        let merchant = self.merchant(merchant_id)?;
        let payer = order
            .payer_user_id
            .ok_or_else(|| PaymentError::Ledger("a paid order without a payer".into()))?;
        let wallet = self
            .handles
            .users(|users| users.user(payer))?
            .ok_or(PaymentError::NotFound("payer"))?
            .wallet_account_id;
        let id = new_id(now_s * 1000)?;
        let refund = Refund {
            id,
            order_id,
            merchant_id,
            out_refund_no: out_refund_no.to_owned(),
            amount,
            fee_refunded: fee_back,
            reason: reason.to_owned(),
            created_at: now_s,
        };
        let currency = self.config.currency;
        let mut events = Vec::new();
        let from_merchant = amount - fee_back;
        if from_merchant > 0 {
            let mut back = NewTransfer::new(
                transfer_id(id, 1),
                merchant.account_id,
                wallet,
                u128::from(from_merchant),
                currency,
            );
            back.user_data = u128::from(id);
            back.kind = TRANSFER_REFUND;
            events.push(Event::CreateTransfer(back));
        }
        if fee_back > 0 {
            let mut fee = NewTransfer::new(
                transfer_id(id, 2),
                FEES_ACCOUNT_ID,
                wallet,
                u128::from(fee_back),
                currency,
            );
            fee.user_data = u128::from(id);
            fee.kind = TRANSFER_FEE_REFUND;
            events.push(Event::CreateTransfer(fee));
        }
        let chain = events.len();
        for event in events.iter_mut().take(chain - 1) {
            if let Event::CreateTransfer(transfer) = event {
                transfer.flags |= TransferFlags::LINKED;
            }
        }
        let mut records = vec![
            Record::Order(refunded.clone()),
            Record::Refund(refund.clone()),
            event_record(
                merchant_id,
                order_id,
                refunded.version,
                "refund.succeeded",
                &json!({"refund": refund_json(&refund), "order": order_json(&refunded)}),
                refunded.notify_url.clone(),
                now_s,
            )?,
        ];
        records.extend(Idempotency::record(idempotency, render, &refund, now_s));
        let results = self.commit(events, records).await?;
        match first_refusal(&results) {
            None => Ok(Outcome::Done(refund)),
            Some(EventResult::ExceedsCredits) => Err(PaymentError::MerchantInsufficientFunds),
            Some(result) => Err(Self::refusal(result)),
        }
    }

    pub fn refunds_of_order(
        &self,
        merchant_id: u64,
        order_id: u64,
    ) -> Result<Vec<Refund>, PaymentError> {
        self.order(merchant_id, order_id)?;
        Ok(self
            .handles
            .records(|records| records.refunds_of_order(order_id))?)
    }

    // ---- P2P ---------------------------------------------------------------------------------

    /// Sends money from one user's wallet to another's (the payment password was checked by
    /// the caller).
    #[allow(clippy::too_many_arguments)]
    pub async fn send_p2p(
        &self,
        from: &User,
        to: &User,
        amount: u64,
        note: &str,
        idempotency: Option<&Idempotency>,
        render: Render<'_, P2pTransfer>,
        now_s: u64,
    ) -> Result<Outcome<P2pTransfer>, PaymentError> {
        if from.id == to.id {
            return Err(PaymentError::SelfTransfer);
        }
        check_amount(amount)?;
        bounded_text("note", note, RECORD_TEXT_BYTES_MAX)?;
        let mut keys = vec![lock_key("user", from.id)];
        keys.extend(idempotency.map(Idempotency::lock_key));
        let _guards = self.locks.lock(&keys).await;
        if let Some((status, body)) = Idempotency::replay(idempotency, &self.handles)? {
            return Ok(Outcome::Replayed { status, body });
        }
        let spending = self.check_limits(from, amount, now_s)?;
        let id = new_id(now_s * 1000)?;
        let transfer = P2pTransfer {
            id,
            from_user_id: from.id,
            to_user_id: to.id,
            amount,
            currency: self.config.currency.as_str().to_owned(),
            note: note.to_owned(),
            created_at: now_s,
        };
        let mut movement = NewTransfer::new(
            transfer_id(id, 1),
            from.wallet_account_id,
            to.wallet_account_id,
            u128::from(amount),
            self.config.currency,
        );
        movement.user_data = u128::from(id);
        movement.kind = TRANSFER_P2P;
        let mut records = vec![Record::P2pTransfer(transfer.clone())];
        records.extend(Idempotency::record(idempotency, render, &transfer, now_s));
        let results = self
            .commit(vec![Event::CreateTransfer(movement)], records)
            .await?;
        match first_refusal(&results) {
            None => {
                self.remember_spending(from, spending);
                Ok(Outcome::Done(transfer))
            }
            Some(result) => Err(Self::refusal(result)),
        }
    }
}

/// The key a merchant signs requests with: SHA-256 of its secret, as the server keeps it.
pub fn signing_key(secret: &str) -> [u8; 32] {
    secrets::sha256(&[secret.as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::sample_order;

    #[test]
    fn an_order_reads_as_the_api_documents_it() {
        let mut order = sample_order(5);
        order.outlet_id = Some(3);
        order.description = r#"tea "green""#.into();
        order.state = OrderState::Success;
        order.payer_user_id = Some(9);
        order.fee = 6;
        order.paid_at = Some(1_795_402_800);
        order.version = 2;
        let text = OrderView::of(&order).text();
        assert_eq!(
            text,
            concat!(
                r#"{"id":"ord_5","object":"order","merchant_id":"mch_2","outlet_id":"out_3","#,
                r#""out_trade_no":"T5","amount":1000,"currency":"CNY","#,
                r#""description":"tea \"green\"","notify_url":null,"state":"SUCCESS","#,
                r#""payer_id":"usr_9","fee":6,"refunded":0,"#,
                r#""created_at":"1970-01-01T00:01:40Z","expires_at":"1970-01-01T00:03:20Z","#,
                r#""paid_at":"2026-11-23T03:00:00Z","closed_at":null,"version":2,"escrow":false}"#
            )
        );
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value, order_json(&order));
    }

    #[test]
    fn references_and_urls_are_bounded() {
        assert!(check_reference("out_trade_no", "T-2026_11|22*1").is_ok());
        assert!(check_reference("out_trade_no", "").is_err());
        assert!(check_reference("out_trade_no", &"x".repeat(33)).is_err());
        assert!(check_reference("out_trade_no", "no spaces").is_err());
        assert!(check_notify_url("http://shop.example/notify").is_ok());
        assert!(check_notify_url("ftp://shop.example").is_err());
    }

    #[test]
    fn idempotency_keys_are_printable_and_bounded() {
        assert!(Idempotency::new("mch_1".into(), "abc-123", &[b"body"]).is_ok());
        assert!(Idempotency::new("mch_1".into(), "", &[b"body"]).is_err());
        assert!(Idempotency::new("mch_1".into(), "a b", &[b"body"]).is_err());
        assert!(Idempotency::new("mch_1".into(), &"k".repeat(256), &[b"body"]).is_err());
    }

    #[test]
    fn recent_orders_keep_the_last_state_of_the_newest_orders() {
        let recent = RecentOrders::default();
        recent.remember(vec![sample_order(1), sample_order(2)]);
        let mut paid = sample_order(1);
        paid.state = OrderState::Success;
        paid.version = 2;
        recent.remember(vec![paid]);
        assert_eq!(
            recent.get(1).map(|order| order.state),
            Some(OrderState::Success)
        );
        recent.forget([2].into_iter());
        assert!(
            recent.get(2).is_none(),
            "a failed commit's orders are read from the store"
        );
        // Past the bound the oldest arrivals go, the newest stay.
        recent.remember(
            (10..10 + RECENT_ORDERS_MAX as u64)
                .map(sample_order)
                .collect(),
        );
        assert!(recent.get(1).is_none());
        assert!(recent.get(10).is_some());
        assert!(recent.get(9 + RECENT_ORDERS_MAX as u64).is_some());
        assert!(recent.inner.lock().unwrap().arrivals.len() <= RECENT_ORDERS_MAX);
    }
}
