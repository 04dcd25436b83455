//! Business records: merchants and their keys, orders, refunds, P2P transfers, bank cards,
//! top-ups and withdrawals, outbox events, idempotency records, QR codes and payment devices,
//! billers, bill payments and the billers users saved.
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
named!(EnvelopeKind { Ordinary = "ordinary", Lucky = "lucky", });
named!(EnvelopeState { Open = "open", Finished = "finished", Expired = "expired", });
named!(EscrowState { Held = "held", Shipped = "shipped", Disputed = "disputed", Released = "released", Refunded = "refunded", Split = "split", });
named!(BillerCategory {
    Electricity = "electricity",
    Water = "water",
    Gas = "gas",
    Phone = "phone",
    Internet = "internet",
    Television = "television",
});
named!(ReferenceCharset { Digits = "digits", Alphanumeric = "alphanumeric", });
named!(CheckDigit { None = "none", Luhn = "luhn", Mod11 = "mod11", });
named!(BillPaymentState { Pending = "pending", Succeeded = "succeeded", Failed = "failed", });
named!(SavedBillerState { Active = "active", Deleted = "deleted", });
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
    /// Paid into escrow ("guaranteed trade"): the money waits in the escrow account until the
    /// buyer confirms receipt (see [`Escrow`]).
    pub escrow: bool,
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

/// A group of users red envelopes can be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: u64,
    pub owner_user_id: u64,
    pub name: String,
    pub created_at: u64,
}

/// A member of a group (inserted once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub group_id: u64,
    pub user_id: u64,
    pub joined_at: u64,
}

/// How a red envelope's total is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeKind {
    /// Every packet the same amount.
    Ordinary,
    /// Random amounts ("lucky money").
    Lucky,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeState {
    /// Packets left to grab.
    Open,
    /// Every packet grabbed.
    Finished,
    /// Expired; what was left went back to the sender.
    Expired,
}

/// A red envelope. Its packets are fixed when it is sent; packet `k` is grabbed by the ledger
/// transfer `transfer_id(id + 1 + k, 1)` (ids `id + 1 …= id + count` are reserved for them), so
/// the ledger holds who grabbed what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub id: u64,
    pub sender_user_id: u64,
    /// Sent to a group …
    pub group_id: Option<u64>,
    /// … or to one friend.
    pub recipient_user_id: Option<u64>,
    pub kind: EnvelopeKind,
    pub total: u64,
    pub currency: String,
    /// The packets' amounts in grabbing order; they sum to `total`.
    pub packets: Vec<u64>,
    pub greeting: String,
    /// The trust-log registration of the packets' digest, made before anyone could grab.
    pub registration_id: u64,
    pub state: EnvelopeState,
    pub created_at: u64,
    pub expires_at: u64,
    /// What went back to the sender at expiry.
    pub returned: u64,
    pub closed_at: Option<u64>,
}

/// Most packets one envelope may hold.
pub const ENVELOPE_PACKETS_MAX: usize = 1000;

/// How the stores keep an envelope's packets: their amounts, comma-separated.
pub fn envelope_packets_text(packets: &[u64]) -> String {
    let mut text = String::with_capacity(packets.len() * 6);
    for (index, amount) in packets.iter().enumerate() {
        if index > 0 {
            text.push(',');
        }
        text.push_str(&amount.to_string());
    }
    text
}

/// The packets back from their stored text; `None` if it is not a list of amounts.
pub fn parse_envelope_packets(text: &str) -> Option<Vec<u64>> {
    let packets = text
        .split(',')
        .map(|amount| amount.parse().ok())
        .collect::<Option<Vec<u64>>>()?;
    (!packets.is_empty() && packets.len() <= ENVELOPE_PACKETS_MAX).then_some(packets)
}

/// Where an escrowed payment stands; the transitions live in `services::escrow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscrowState {
    /// Paid into escrow, not shipped yet.
    Held,
    /// Shipped, waiting for the buyer's confirmation.
    Shipped,
    /// The buyer opened a dispute: frozen until the operator resolves it.
    Disputed,
    /// Paid out to the seller.
    Released,
    /// Given back to the buyer.
    Refunded,
    /// Shared between them by the operator.
    Split,
}

/// An order paid into escrow ("guaranteed trade"): the money waits in the escrow account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escrow {
    pub order_id: u64,
    pub merchant_id: u64,
    pub buyer_user_id: u64,
    pub amount: u64,
    pub state: EscrowState,
    pub carrier: Option<String>,
    pub tracking_no: Option<String>,
    /// Refunded by itself if not shipped by then.
    pub ship_by: u64,
    pub shipped_at: Option<u64>,
    /// Released by itself if the buyer has not confirmed (nor disputed) by then.
    pub release_at: Option<u64>,
    /// The next timer: `ship_by` while held, `release_at` while shipped; none otherwise.
    pub due_at: Option<u64>,
    pub dispute_reason: Option<String>,
    pub dispute_evidence: Option<String>,
    /// Paid to the seller (before the fee) and given back to the buyer, once settled.
    pub released: u64,
    pub refunded: u64,
    /// Who settled it: `buyer`, `timer`, or the operator's credential (`key_…`), and why.
    pub settled_by: Option<String>,
    pub note: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
    /// Counts its changes; its notifications carry it.
    pub version: u32,
}

/// What a biller is paid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BillerCategory {
    Electricity,
    Water,
    Gas,
    /// Prepaid phone top-up, in fixed denominations.
    Phone,
    Internet,
    Television,
}

/// The characters a biller's customer references are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceCharset {
    Digits,
    /// Digits and upper-case letters (references are read upper-cased).
    Alphanumeric,
}

/// The check digit a biller's customer references end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckDigit {
    None,
    /// ISO/IEC 7812-1 (Luhn), over the whole reference.
    Luhn,
    /// Weights 2 to 7 from the right, the check digit 11 minus the remainder (11 is 0; a
    /// remainder of 1 gives no valid reference).
    Mod11,
}

/// Longest customer reference a biller may ask for, in characters.
pub const BILL_REFERENCE_CHARS_MAX: usize = 32;
/// Most fixed amounts one biller may offer.
pub const BILLER_DENOMINATIONS_MAX: usize = 16;

/// A biller registered by the operator (a power company, a water utility, a carrier for phone
/// top-ups): the rule its customer references follow and its account in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Biller {
    pub id: u64,
    /// The biller's code at the connector that reaches it (unique).
    pub code: String,
    pub name: String,
    pub category: BillerCategory,
    /// What the reference is called on the biller's bills ("Customer number", "Phone number").
    pub reference_label: String,
    pub reference_charset: ReferenceCharset,
    pub reference_length_min: u8,
    pub reference_length_max: u8,
    /// What every reference starts with ("" for anything).
    pub reference_prefix: String,
    pub check_digit: CheckDigit,
    /// The only amounts accepted, in minor units, ascending; empty when any amount is.
    pub denominations: Vec<u64>,
    /// The biller's account in the ledger.
    pub account_id: u128,
    pub created_at: u64,
}

/// A biller's denominations as both stores keep them: minor units, comma-separated, in order
/// (`""` for none).
pub fn denominations_text(denominations: &[u64]) -> String {
    denominations
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Denominations read back from [`denominations_text`]; `None` when the text is not one.
pub fn parse_denominations(text: &str) -> Option<Vec<u64>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    let amounts = text
        .split(',')
        .map(|amount| {
            if amount.is_empty() || !amount.bytes().all(|byte| byte.is_ascii_digit()) {
                return None;
            }
            amount.parse().ok()
        })
        .collect::<Option<Vec<u64>>>()?;
    (amounts.len() <= BILLER_DENOMINATIONS_MAX).then_some(amounts)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillPaymentState {
    /// The money is held and the biller has not answered yet.
    Pending,
    /// The biller confirmed: the hold is posted.
    Succeeded,
    /// The biller refused: the hold is voided, the money back in the wallet.
    Failed,
}

/// A bill paid (or a phone topped up) from a wallet: held, then posted when the biller
/// confirms or voided when it refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillPayment {
    pub id: u64,
    pub user_id: u64,
    pub biller_id: u64,
    /// The customer reference, as the biller's rule reads it.
    pub reference: String,
    pub amount: u64,
    pub currency: String,
    pub state: BillPaymentState,
    /// The name on the account as shown to the payer (masked).
    pub customer_name: Option<String>,
    /// The biller's confirmation number: the receipt.
    pub confirmation: Option<String>,
    /// Why the biller refused, in its words.
    pub failure: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavedBillerState {
    Active,
    Deleted,
}

/// A biller and customer reference a user keeps to pay again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedBiller {
    pub id: u64,
    pub user_id: u64,
    pub biller_id: u64,
    pub reference: String,
    pub nickname: String,
    pub state: SavedBillerState,
    pub created_at: u64,
    pub updated_at: u64,
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
    Group(Group),
    /// Inserted once.
    GroupMember(GroupMember),
    Envelope(Envelope),
    Escrow(Escrow),
    Biller(Biller),
    BillPayment(BillPayment),
    SavedBiller(SavedBiller),
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
    fn group(&mut self, id: u64) -> StoreResult<Option<Group>>;
    /// A group's members, by user id.
    fn group_members(&mut self, group_id: u64) -> StoreResult<Vec<GroupMember>>;
    /// The groups `user_id` belongs to, by id.
    fn groups_of_user(&mut self, user_id: u64) -> StoreResult<Vec<Group>>;
    fn envelope(&mut self, id: u64) -> StoreResult<Option<Envelope>>;
    /// Envelopes still `open` whose expiry is at or before `now`, oldest first, `limit` at most.
    fn envelopes_due(&mut self, now: u64, limit: usize) -> StoreResult<Vec<Envelope>>;
    fn escrow(&mut self, order_id: u64) -> StoreResult<Option<Escrow>>;
    /// Escrows whose timer (`due_at`) is at or before `now`, earliest first, `limit` at most.
    fn escrows_due(&mut self, now: u64, limit: usize) -> StoreResult<Vec<Escrow>>;
    fn biller(&mut self, id: u64) -> StoreResult<Option<Biller>>;
    fn biller_by_code(&mut self, code: &str) -> StoreResult<Option<Biller>>;
    /// Billers by id (of one category, or all), after `after_id`, `limit` at most.
    fn billers(
        &mut self,
        category: Option<BillerCategory>,
        after_id: u64,
        limit: usize,
    ) -> StoreResult<Vec<Biller>>;
    fn bill_payment(&mut self, id: u64) -> StoreResult<Option<BillPayment>>;
    /// A user's bill payments, newest first, older than `before_id` (all when `None`), `limit`
    /// at most.
    fn bill_payments(
        &mut self,
        user_id: u64,
        before_id: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<BillPayment>>;
    /// Bill payments still pending, oldest first, `limit` at most (to resume after a restart).
    fn bill_payments_pending(&mut self, limit: usize) -> StoreResult<Vec<BillPayment>>;
    fn saved_biller(&mut self, id: u64) -> StoreResult<Option<SavedBiller>>;
    /// A user's active saved billers, oldest first.
    fn saved_billers(&mut self, user_id: u64) -> StoreResult<Vec<SavedBiller>>;
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
