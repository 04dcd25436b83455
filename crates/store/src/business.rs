//! Business records: merchants and their keys, orders, refunds, P2P transfers, bank cards,
//! top-ups and withdrawals, outbox events, idempotency records, QR codes and e-invoices.
//!
//! They ride with their money: a [`Record`] is handed to the sequencer with the ledger events
//! it belongs to and written in the same transaction as their batch, and only when every one
//! of those events committed. There is never a paid order without its transfer, nor a
//! transfer without its order. Records are upserts by primary key (events and idempotency
//! records are inserted once).

use crate::StoreResult;

/// Longest free text a record keeps (descriptions, reasons, names).
pub const RECORD_TEXT_BYTES_MAX: usize = 256;
/// Longest URL a record keeps (notification addresses).
pub const RECORD_URL_BYTES_MAX: usize = 512;
/// Longest stored response of an idempotent request, and longest event payload.
pub const RECORD_BODY_BYTES_MAX: usize = 16 * 1024;
/// Most records one request may carry.
pub const REQUEST_RECORDS_MAX: usize = 16;
/// Most rows a listing returns.
pub const RECORD_PAGE_LIMIT_MAX: usize = 1000;

/// The stored names of a state enum: `ALL`, `as_str` and `parse`, one table for every backend
/// and for the API (the names are what auditors see in SQL and clients see in JSON).
macro_rules! named {
    ($name:ident { $($variant:ident = $text:literal,)* }) => {
        impl $name {
            pub const ALL: [$name; [$($text),*].len()] = [$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            pub fn parse(text: &str) -> Option<$name> {
                Self::ALL.into_iter().find(|value| value.as_str() == text)
            }
        }
    };
}

named!(OutletKind { Store = "store", Terminal = "terminal", });
named!(OrderState { NotPay = "NOTPAY", Success = "SUCCESS", Closed = "CLOSED", Refund = "REFUND", });
named!(CardState { Active = "active", Unbound = "unbound", });
named!(BankDirection { TopUp = "top_up", Withdrawal = "withdrawal", });
named!(BankTransferState { Pending = "pending", Succeeded = "succeeded", Failed = "failed", });
named!(DeliveryState { None = "none", Pending = "pending", Delivered = "delivered", Failed = "failed", });
named!(CodeKind { Static = "static", Dynamic = "dynamic", });
named!(CodeState { Active = "active", Revoked = "revoked", Flagged = "flagged", });
named!(DeviceState { Active = "active", Revoked = "revoked", });
named!(InvoiceKind { Standard = "standard", RedLetter = "red_letter", });
named!(InvoiceState { Issued = "issued", Reimbursed = "reimbursed", Voided = "voided", });

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merchant {
    pub id: u64,
    pub name: String,
    /// ISO 18245 merchant category code, four digits.
    pub mcc: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    pub city: String,
    /// Where settlements are paid (the merchant's bank account reference).
    pub settlement_account: String,
    pub fee_rate_bps: u32,
    /// The merchant's account in the ledger.
    pub account_id: u128,
    /// Signs the notifications sent to the merchant (`Tally-Signature`), shown to it once.
    pub notify_key: [u8; 32],
    pub created_at: u64,
}

/// A merchant's API key. The secret is shown once and never stored: only the request-signing
/// key derived from it (its SHA-256), which verifies the merchant's HMAC signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantKey {
    pub id: u64,
    pub merchant_id: u64,
    pub signing_key: [u8; 32],
    pub created_at: u64,
    pub revoked_at: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutletKind {
    Store,
    Terminal,
}

/// A merchant's store, or a terminal in one of its stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outlet {
    pub id: u64,
    pub merchant_id: u64,
    pub kind: OutletKind,
    /// The store a terminal belongs to.
    pub parent_id: Option<u64>,
    pub name: String,
    pub created_at: u64,
}

/// Where an order stands; the transitions live in `services::orders`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderState {
    NotPay,
    Success,
    Closed,
    Refund,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: u64,
    pub merchant_id: u64,
    pub outlet_id: Option<u64>,
    /// The merchant's own reference, unique per merchant.
    pub out_trade_no: String,
    /// Minor units of `currency`.
    pub amount: u64,
    pub currency: String,
    pub description: String,
    pub notify_url: Option<String>,
    pub state: OrderState,
    pub payer_user_id: Option<u64>,
    /// The merchant fee charged when it was paid.
    pub fee: u64,
    /// Refunded so far.
    pub refunded: u64,
    pub created_at: u64,
    pub expires_at: u64,
    pub paid_at: Option<u64>,
    pub closed_at: Option<u64>,
    /// Counts the order's changes; its events carry it as their sequence number.
    pub version: u32,
    /// The ledger transfer that pays it (fixed when the order is created, so it can be paid
    /// once only: a second payment is the same transfer id, which the ledger refuses).
    pub payment_transfer_id: u128,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub id: u64,
    pub order_id: u64,
    pub merchant_id: u64,
    pub out_refund_no: String,
    pub amount: u64,
    /// The part of the merchant fee given back with it.
    pub fee_refunded: u64,
    pub reason: String,
    pub created_at: u64,
}

/// Money sent from one user to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct P2pTransfer {
    pub id: u64,
    pub from_user_id: u64,
    pub to_user_id: u64,
    pub amount: u64,
    pub currency: String,
    pub note: String,
    pub created_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardState {
    Active,
    Unbound,
}

/// A bank card bound to a wallet: the bank's token, the BIN and the last four digits. Never
/// the card number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub id: u64,
    pub user_id: u64,
    pub token: String,
    pub bin: String,
    pub last4: String,
    pub bank: String,
    pub state: CardState,
    pub created_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BankDirection {
    /// Card → wallet.
    TopUp,
    /// Wallet → card.
    Withdrawal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BankTransferState {
    /// A withdrawal's hold is placed and the bank has not answered yet.
    Pending,
    Succeeded,
    Failed,
}

/// A top-up or a withdrawal through a bank connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankTransfer {
    pub id: u64,
    pub user_id: u64,
    pub card_id: u64,
    pub direction: BankDirection,
    pub amount: u64,
    pub currency: String,
    pub state: BankTransferState,
    /// The bank's reference, once it answered.
    pub bank_reference: Option<String>,
    /// Why it failed, in the bank's words.
    pub failure: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
}

/// A notification for a merchant, written in the transaction of the change it tells about
/// (the transactional outbox), delivered to `notify_url` and readable by polling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: u64,
    pub merchant_id: u64,
    /// The order or refund it is about.
    pub object_id: u64,
    /// The object's version after the change: receivers order events by it.
    pub object_sequence: u32,
    /// `order.paid`, `order.closed`, `refund.succeeded` …
    pub kind: String,
    /// The JSON body delivered.
    pub payload: String,
    pub notify_url: Option<String>,
    pub created_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// No address to deliver to: polling only.
    None,
    Pending,
    Delivered,
    /// Given up after the last retry.
    Failed,
}

/// An event and where its delivery stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub event: Event,
    pub delivery: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: u64,
    /// The receiver's last HTTP status, or the failure (`timeout`, `connect: …`).
    pub last_result: Option<String>,
}

/// A delivery attempt's outcome, written by the delivery worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryUpdate {
    pub event_id: u64,
    pub delivery: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: u64,
    pub last_result: Option<String>,
}

/// The first answer to a request made with an `Idempotency-Key`, replayed to its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Whose key it is (`mch_…`, `usr_…`): keys of different callers never collide.
    pub principal: String,
    pub key: String,
    /// SHA-256 of the method, path and body: the same key with another request is refused.
    pub request_digest: [u8; 32],
    pub status: u16,
    pub response: String,
    pub created_at: u64,
}

/// A merchant-presented QR code issued by the platform: static (per store or terminal, the
/// payer types the amount) or dynamic (one order, its amount, until the order ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeKind {
    Static,
    Dynamic,
}

/// Whether a merchant code may be paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeState {
    Active,
    /// Withdrawn by its merchant.
    Revoked,
    /// Found fraudulent: by the operator, or reported by enough payers.
    Flagged,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantCode {
    pub id: u64,
    pub merchant_id: u64,
    pub outlet_id: Option<u64>,
    /// The order a dynamic code pays.
    pub order_id: Option<u64>,
    pub kind: CodeKind,
    /// The EMVCo payload exactly as issued; its SHA-256 is the registration's digest.
    pub payload: String,
    /// The trust-log registration made when it was issued.
    pub registration_id: u64,
    pub state: CodeState,
    pub created_at: u64,
    /// A dynamic code ends with its order.
    pub expires_at: Option<u64>,
    pub updated_at: u64,
    /// Where the payments of a static code are notified (a dynamic code's order has its own).
    pub notify_url: Option<String>,
}

/// A payer's report that a scanned code is fraudulent (a registered code, or one the platform
/// never issued).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeReport {
    pub id: u64,
    /// The registered code reported, if the payload is one.
    pub code_id: Option<u64>,
    /// SHA-256 of the payload as scanned.
    pub payload_digest: [u8; 32],
    /// The payload as scanned (at most [`CODE_PAYLOAD_BYTES_MAX`] bytes).
    pub payload: String,
    pub user_id: u64,
    pub reason: String,
    pub created_at: u64,
}

/// Longest payload kept from a scan: the byte capacity of the largest QR code.
pub const CODE_PAYLOAD_BYTES_MAX: usize = 2953;

/// Whether an enrolled device may make payment codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    Active,
    Revoked,
}

/// A wallet device enrolled to make one-time payment codes offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentDevice {
    pub id: u64,
    pub user_id: u64,
    /// The number the codes carry (unique, random, at most eight digits).
    pub number: u32,
    /// The key the codes are derived with; the device holds the same.
    pub secret: [u8; 32],
    pub name: String,
    pub state: DeviceState,
    pub created_at: u64,
    pub revoked_at: Option<u64>,
}

/// The single use of a payment code: (device, time step, slot) charged once, for one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeUse {
    pub device_id: u64,
    pub step: u64,
    pub slot: u8,
    pub order_id: u64,
    pub created_at: u64,
}

/// What an e-invoice is: an ordinary one, or a red-letter invoice that voids another with the
/// same lines negated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceKind {
    Standard,
    RedLetter,
}

/// Where an e-invoice stands; the transitions live in `services::invoices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceState {
    Issued,
    /// Claimed by an organisation, once: it can no longer be voided.
    Reimbursed,
    /// Voided by a red-letter invoice.
    Voided,
}

/// An e-invoice issued for a paid order, registered in the trust log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub id: u64,
    pub merchant_id: u64,
    pub order_id: u64,
    pub kind: InvoiceKind,
    /// The merchant's invoice sequence: 1, 2, 3 …, red-letter invoices included.
    pub sequence: u64,
    /// The invoice number printed on it (the sequence, zero-padded), unique per merchant.
    pub number: String,
    /// The invoice a red-letter invoice voids.
    pub original_id: Option<u64>,
    pub seller_tax_id: String,
    pub buyer_name: String,
    /// An individual buyer may have none.
    pub buyer_tax_id: Option<String>,
    pub currency: String,
    /// Minor units, net of tax; negative on a red-letter invoice.
    pub amount: i64,
    pub tax: i64,
    /// `amount + tax`.
    pub total: i64,
    /// The canonical document exactly as issued; its SHA-256 is `digest`.
    pub document: String,
    pub digest: [u8; 32],
    /// The trust-log registration of `digest`.
    pub registration_id: u64,
    pub state: InvoiceState,
    pub issued_at: u64,
    pub updated_at: u64,
}

/// An organisation's reimbursement of an invoice: inserted once, so a second claim on the same
/// invoice fails its batch whatever else let it through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceReimbursement {
    pub id: u64,
    pub invoice_id: u64,
    pub organisation: String,
    /// The organisation's own reference of the expense claim.
    pub claim_reference: String,
    /// The operator credential that recorded it.
    pub credential_id: u64,
    pub created_at: u64,
}

/// One business write, committed with the ledger events of its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Merchant(Merchant),
    MerchantKey(MerchantKey),
    Outlet(Outlet),
    Order(Order),
    Refund(Refund),
    P2pTransfer(P2pTransfer),
    Card(Card),
    BankTransfer(BankTransfer),
    Event(Event),
    Idempotency(IdempotencyRecord),
    MerchantCode(MerchantCode),
    CodeReport(CodeReport),
    PaymentDevice(PaymentDevice),
    /// Inserted once: a second use of the same code fails its batch.
    CodeUse(CodeUse),
    Invoice(Invoice),
    /// Inserted once: a second reimbursement of the same invoice fails its batch.
    InvoiceReimbursement(InvoiceReimbursement),
}

/// Reads business records. Each call reads committed state.
pub trait RecordReader: Send {
    fn merchant(&mut self, id: u64) -> StoreResult<Option<Merchant>>;
    fn merchants(&mut self, after_id: u64, limit: usize) -> StoreResult<Vec<Merchant>>;
    fn merchant_key(&mut self, id: u64) -> StoreResult<Option<MerchantKey>>;
    fn merchant_keys(&mut self, merchant_id: u64) -> StoreResult<Vec<MerchantKey>>;
    fn outlets(&mut self, merchant_id: u64) -> StoreResult<Vec<Outlet>>;
    fn outlet(&mut self, id: u64) -> StoreResult<Option<Outlet>>;
    fn order(&mut self, id: u64) -> StoreResult<Option<Order>>;
    fn order_by_out_trade_no(
        &mut self,
        merchant_id: u64,
        out_trade_no: &str,
    ) -> StoreResult<Option<Order>>;
    /// A merchant's orders by id (creation time), after `after_id`, `limit` at most.
    fn orders(&mut self, merchant_id: u64, after_id: u64, limit: usize) -> StoreResult<Vec<Order>>;
    /// A merchant's orders paid or refunded with `paid_at` in `[from, to)`, for daily bills.
    fn orders_paid_between(
        &mut self,
        merchant_id: u64,
        from: u64,
        to: u64,
    ) -> StoreResult<Vec<Order>>;
    /// Orders still `NOTPAY` whose expiry is at or before `now`, `limit` at most.
    fn orders_expired(&mut self, now: u64, limit: usize) -> StoreResult<Vec<Order>>;
    fn refund(&mut self, id: u64) -> StoreResult<Option<Refund>>;
    fn refund_by_out_refund_no(
        &mut self,
        merchant_id: u64,
        out_refund_no: &str,
    ) -> StoreResult<Option<Refund>>;
    fn refunds_of_order(&mut self, order_id: u64) -> StoreResult<Vec<Refund>>;
    /// A merchant's refunds created in `[from, to)`, for daily bills.
    fn refunds_between(&mut self, merchant_id: u64, from: u64, to: u64)
        -> StoreResult<Vec<Refund>>;
    fn p2p_transfer(&mut self, id: u64) -> StoreResult<Option<P2pTransfer>>;
    fn card(&mut self, id: u64) -> StoreResult<Option<Card>>;
    fn cards(&mut self, user_id: u64) -> StoreResult<Vec<Card>>;
    fn bank_transfer(&mut self, id: u64) -> StoreResult<Option<BankTransfer>>;
    /// Withdrawals still pending, oldest first, `limit` at most (to resume after a restart).
    fn bank_transfers_pending(&mut self, limit: usize) -> StoreResult<Vec<BankTransfer>>;
    /// A merchant's events after `after_id`, oldest first.
    fn events(
        &mut self,
        merchant_id: u64,
        after_id: u64,
        limit: usize,
    ) -> StoreResult<Vec<StoredEvent>>;
    /// Every merchant's events, newest first, for operators.
    fn events_recent(&mut self, limit: usize) -> StoreResult<Vec<StoredEvent>>;
    /// Events waiting for delivery whose next attempt is due at `now`, `limit` at most.
    fn events_due(&mut self, now: u64, limit: usize) -> StoreResult<Vec<StoredEvent>>;
    fn idempotency(&mut self, principal: &str, key: &str)
        -> StoreResult<Option<IdempotencyRecord>>;
    /// A user's orders still `NOTPAY` that a POS bound to them (waiting for the user to
    /// confirm), newest first, `limit` at most.
    fn orders_awaiting_payer(&mut self, user_id: u64, limit: usize) -> StoreResult<Vec<Order>>;
    fn merchant_code(&mut self, id: u64) -> StoreResult<Option<MerchantCode>>;
    /// A merchant's codes by id, after `after_id`, `limit` at most.
    fn merchant_codes(
        &mut self,
        merchant_id: u64,
        after_id: u64,
        limit: usize,
    ) -> StoreResult<Vec<MerchantCode>>;
    /// The reports on a registered code, oldest first.
    fn code_reports(&mut self, code_id: u64) -> StoreResult<Vec<CodeReport>>;
    /// Every report, newest first, for operators.
    fn code_reports_recent(&mut self, limit: usize) -> StoreResult<Vec<CodeReport>>;
    fn payment_device(&mut self, id: u64) -> StoreResult<Option<PaymentDevice>>;
    fn payment_device_by_number(&mut self, number: u32) -> StoreResult<Option<PaymentDevice>>;
    fn payment_devices(&mut self, user_id: u64) -> StoreResult<Vec<PaymentDevice>>;
    fn code_use(&mut self, device_id: u64, step: u64, slot: u8) -> StoreResult<Option<CodeUse>>;
    fn invoice(&mut self, id: u64) -> StoreResult<Option<Invoice>>;
    /// A merchant's invoices by id, after `after_id`, `limit` at most.
    fn invoices(
        &mut self,
        merchant_id: u64,
        after_id: u64,
        limit: usize,
    ) -> StoreResult<Vec<Invoice>>;
    /// The invoices with this number and seller tax id, oldest first (one, unless merchants
    /// share a tax id; the digest tells them apart).
    fn invoices_by_number(
        &mut self,
        seller_tax_id: &str,
        number: &str,
    ) -> StoreResult<Vec<Invoice>>;
    /// An order's invoices, red-letter ones included, oldest first.
    fn invoices_of_order(&mut self, order_id: u64) -> StoreResult<Vec<Invoice>>;
    /// The merchant's invoice with the highest sequence number.
    fn invoice_last(&mut self, merchant_id: u64) -> StoreResult<Option<Invoice>>;
    fn invoice_reimbursement(
        &mut self,
        invoice_id: u64,
    ) -> StoreResult<Option<InvoiceReimbursement>>;
}

/// Writes that do not ride with money: delivery progress of the outbox.
pub trait OutboxWriter: Send {
    /// Records delivery attempts, all in one transaction.
    fn record_deliveries(&mut self, updates: &[DeliveryUpdate]) -> StoreResult<()>;
}
