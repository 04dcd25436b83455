//! Business records: written inside the batch's transaction ([`write_records`]), read by
//! [`PostgresRecords`], and the outbox's delivery progress written by [`PostgresOutbox`].
//!
//! A batch's records are grouped by table, in the order of the foreign keys (merchants before
//! their keys, outlets and orders; orders before their refunds and merchant codes; merchant
//! codes before their reports; payment devices and orders before the codes' uses; billers
//! before their payments and the users' saved billers), and each
//! table gets one statement over arrays (`unnest`), or one binary COPY for the events: a round
//! trip per table per batch, never one per record. Upserts by primary key keep the last record
//! of each id in the batch (an order created and paid in one batch is written paid), as writing
//! the records one after another would leave them; inserts that must happen once (events,
//! code reports, a payment code's use, an invoice's reimbursement, idempotency records) fail
//! the batch on a repeat.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::{Client, Row, Statement, Transaction};
use store::{
    BankDirection, BankTransfer, BankTransferState, BillPayment, BillPaymentState, Biller,
    BillerCategory, BusinessEvent, Card, CardState, CheckDigit, Claim, CodeKind, CodeReport,
    CodeState, CodeUse, DeliveryState, DeliveryUpdate, DeviceState, Envelope, EnvelopeKind,
    EnvelopeState, Escrow, EscrowState, Group, GroupMember, IdempotencyRecord, Invoice,
    InvoiceKind, InvoiceReimbursement, InvoiceState, Merchant, MerchantCode, MerchantKey, Order,
    OrderState, OutboxWriter, Outlet, OutletKind, P2pTransfer, PaymentDevice, Record, RecordReader,
    ReferenceCharset, Refund, SavedBiller, SavedBillerState, StoreError, StoreErrorKind,
    StoreResult, StoredEvent, RECORD_PAGE_LIMIT_MAX,
};

use crate::map_error;
use crate::pool::PooledClient;

// ---------------------------------------------------------------------------------------------
// Values in and out of BIGINT / INTEGER columns.

/// A value for a BIGINT column; a larger one is refused rather than cut.
fn bigint(value: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| {
        StoreError::new(
            StoreErrorKind::Refused,
            format!("{what} {value} does not fit a BIGINT column"),
        )
    })
}

fn bigint_wide(value: u128, what: &str) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| {
        StoreError::new(
            StoreErrorKind::Refused,
            format!("{what} {value} does not fit a BIGINT column"),
        )
    })
}

fn bigint_opt(value: Option<u64>, what: &str) -> StoreResult<Option<i64>> {
    value.map(|value| bigint(value, what)).transpose()
}

fn integer(value: u32, what: &str) -> StoreResult<i32> {
    i32::try_from(value).map_err(|_| {
        StoreError::new(
            StoreErrorKind::Refused,
            format!("{what} {value} does not fit an INTEGER column"),
        )
    })
}

fn get<'a, T: postgres::types::FromSql<'a>>(row: &'a Row, index: usize) -> StoreResult<T> {
    row.try_get(index).map_err(map_error)
}

fn get_u64(row: &Row, index: usize, what: &str) -> StoreResult<u64> {
    let value: i64 = get(row, index)?;
    crate::unsigned(value, what)
}

fn get_opt_u64(row: &Row, index: usize, what: &str) -> StoreResult<Option<u64>> {
    let value: Option<i64> = get(row, index)?;
    value.map(|value| crate::unsigned(value, what)).transpose()
}

fn get_u32(row: &Row, index: usize, what: &str) -> StoreResult<u32> {
    let value: i64 = get(row, index)?;
    u32::try_from(value).map_err(|_| StoreError::corrupt(format!("{what} out of range: {value}")))
}

fn get_u128(row: &Row, index: usize, what: &str) -> StoreResult<u128> {
    store::from_i64(get(row, index)?, what)
}

fn get_digest(row: &Row, index: usize, what: &str) -> StoreResult<[u8; 32]> {
    let bytes: &[u8] = get(row, index)?;
    bytes
        .try_into()
        .map_err(|_| StoreError::corrupt(format!("a stored {what} is not 32 bytes")))
}

fn unknown(what: &str, text: &str) -> StoreError {
    StoreError::corrupt(format!("unknown {what} {text:?}"))
}

fn page_limit(limit: usize) -> i64 {
    // At most RECORD_PAGE_LIMIT_MAX (1000): always fits.
    i64::try_from(limit.min(RECORD_PAGE_LIMIT_MAX)).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Writing a batch's records.

const UPSERT_MERCHANTS: &str = "
    INSERT INTO merchants (id, name, mcc, country, city, settlement_account, fee_rate_bps,
        account_id, notify_key, created_at)
    SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::text[], $7::int4[], $8::int8[], $9::bytea[], $10::int8[])
    ON CONFLICT (id) DO UPDATE SET name = excluded.name, mcc = excluded.mcc,
        country = excluded.country, city = excluded.city,
        settlement_account = excluded.settlement_account, fee_rate_bps = excluded.fee_rate_bps,
        account_id = excluded.account_id, notify_key = excluded.notify_key,
        created_at = excluded.created_at";

const UPSERT_MERCHANT_KEYS: &str = "
    INSERT INTO merchant_keys (id, merchant_id, signing_key, created_at, revoked_at)
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::bytea[], $4::int8[], $5::int8[])
    ON CONFLICT (id) DO UPDATE SET merchant_id = excluded.merchant_id,
        signing_key = excluded.signing_key, created_at = excluded.created_at,
        revoked_at = excluded.revoked_at";

const UPSERT_OUTLETS: &str = "
    INSERT INTO outlets (id, merchant_id, kind, parent_id, name, created_at)
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::int8[], $5::text[], $6::int8[])
    ON CONFLICT (id) DO UPDATE SET merchant_id = excluded.merchant_id, kind = excluded.kind,
        parent_id = excluded.parent_id, name = excluded.name, created_at = excluded.created_at";

/// Orders from one array per column (`OrderColumns::parameters`), before the conflict clause.
macro_rules! insert_orders {
    () => {
        "
    INSERT INTO orders (id, merchant_id, outlet_id, out_trade_no, amount, currency,
        description, notify_url, state, payer_user_id, fee, refunded, created_at, expires_at,
        paid_at, closed_at, version, payment_transfer_id, escrow)
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::int8[],
        $6::text[], $7::text[], $8::text[], $9::text[], $10::int8[], $11::int8[], $12::int8[],
        $13::int8[], $14::int8[], $15::int8[], $16::int8[], $17::int8[], $18::int8[],
        $19::bool[])
"
    };
}

const UPSERT_ORDERS: &str = concat!(
    insert_orders!(),
    "    ON CONFLICT (id) DO UPDATE SET merchant_id = excluded.merchant_id,
        outlet_id = excluded.outlet_id, out_trade_no = excluded.out_trade_no,
        amount = excluded.amount, currency = excluded.currency,
        description = excluded.description, notify_url = excluded.notify_url,
        state = excluded.state, payer_user_id = excluded.payer_user_id, fee = excluded.fee,
        refunded = excluded.refunded, created_at = excluded.created_at,
        expires_at = excluded.expires_at, paid_at = excluded.paid_at,
        closed_at = excluded.closed_at, version = excluded.version,
        payment_transfer_id = excluded.payment_transfer_id, escrow = excluded.escrow"
);

/// New orders, each inserted only if neither its id nor its merchant's `out_trade_no` is taken.
const INSERT_NEW_ORDERS: &str = concat!(
    insert_orders!(),
    "    ON CONFLICT DO NOTHING
    RETURNING id"
);

const UPSERT_REFUNDS: &str = "
    INSERT INTO refunds (id, order_id, merchant_id, out_refund_no, amount, fee_refunded,
        reason, created_at)
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::int8[],
        $6::int8[], $7::text[], $8::int8[])
    ON CONFLICT (id) DO UPDATE SET order_id = excluded.order_id,
        merchant_id = excluded.merchant_id, out_refund_no = excluded.out_refund_no,
        amount = excluded.amount, fee_refunded = excluded.fee_refunded,
        reason = excluded.reason, created_at = excluded.created_at";

const UPSERT_P2P_TRANSFERS: &str = "
    INSERT INTO p2p_transfers (id, from_user_id, to_user_id, amount, currency, note, created_at)
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::text[],
        $6::text[], $7::int8[])
    ON CONFLICT (id) DO UPDATE SET from_user_id = excluded.from_user_id,
        to_user_id = excluded.to_user_id, amount = excluded.amount,
        currency = excluded.currency, note = excluded.note, created_at = excluded.created_at";

const UPSERT_CARDS: &str = "
    INSERT INTO cards (id, user_id, token, bin, last4, bank, state, created_at)
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[],
        $6::text[], $7::text[], $8::int8[])
    ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, token = excluded.token,
        bin = excluded.bin, last4 = excluded.last4, bank = excluded.bank,
        state = excluded.state, created_at = excluded.created_at";

const UPSERT_BANK_TRANSFERS: &str = "
    INSERT INTO bank_transfers (id, user_id, card_id, direction, amount, currency, state,
        bank_reference, failure, created_at, updated_at)
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::int8[],
        $6::text[], $7::text[], $8::text[], $9::text[], $10::int8[], $11::int8[])
    ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, card_id = excluded.card_id,
        direction = excluded.direction, amount = excluded.amount,
        currency = excluded.currency, state = excluded.state,
        bank_reference = excluded.bank_reference, failure = excluded.failure,
        created_at = excluded.created_at, updated_at = excluded.updated_at";

const UPSERT_MERCHANT_CODES: &str = "
    INSERT INTO merchant_codes (id, merchant_id, outlet_id, order_id, kind, payload,
        registration_id, state, created_at, expires_at, updated_at, notify_url)
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::text[],
        $6::text[], $7::int8[], $8::text[], $9::int8[], $10::int8[], $11::int8[], $12::text[])
    ON CONFLICT (id) DO UPDATE SET merchant_id = excluded.merchant_id,
        outlet_id = excluded.outlet_id, order_id = excluded.order_id, kind = excluded.kind,
        payload = excluded.payload, registration_id = excluded.registration_id,
        state = excluded.state, created_at = excluded.created_at,
        expires_at = excluded.expires_at, updated_at = excluded.updated_at,
        notify_url = excluded.notify_url";

/// Inserted once: a report is never changed.
const INSERT_CODE_REPORTS: &str = "
    INSERT INTO code_reports (id, code_id, payload_digest, payload, user_id, reason, created_at)
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::bytea[], $4::text[], $5::int8[],
        $6::text[], $7::int8[])";

const UPSERT_PAYMENT_DEVICES: &str = "
    INSERT INTO payment_devices (id, user_id, number, secret, name, state, created_at,
        revoked_at)
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::int4[], $4::bytea[], $5::text[],
        $6::text[], $7::int8[], $8::int8[])
    ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, number = excluded.number,
        secret = excluded.secret, name = excluded.name, state = excluded.state,
        created_at = excluded.created_at, revoked_at = excluded.revoked_at";

/// Inserted once: a payment code is usable once, so a second use of the same (device, step,
/// slot), in this batch or an earlier one, fails the batch.
const INSERT_CODE_USES: &str = "
    INSERT INTO code_uses (device_id, step, slot, order_id, created_at)
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::int2[], $4::int8[], $5::int8[])";

/// An invoice's content never changes: an upsert by id changes its state only, and a number,
/// order or original another invoice holds fails the batch instead of replacing it.
const UPSERT_INVOICES: &str = "
    INSERT INTO invoices (id, merchant_id, order_id, kind, sequence, number, original_id,
        seller_tax_id, buyer_name, buyer_tax_id, currency, amount, tax, total, document, digest,
        registration_id, state, issued_at, updated_at)
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::int8[],
        $6::text[], $7::int8[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int8[],
        $13::int8[], $14::int8[], $15::text[], $16::bytea[], $17::int8[], $18::text[],
        $19::int8[], $20::int8[])
    ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at";

/// Inserted once: an invoice is reimbursed once, so a second claim on it, in this batch or an
/// earlier one, fails the batch.
const INSERT_INVOICE_REIMBURSEMENTS: &str = "
    INSERT INTO invoice_reimbursements (id, invoice_id, organisation, claim_reference,
        credential_id, created_at)
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::int8[],
        $6::int8[])";

/// Events are inserted once (a second event of the same id fails the batch, as on SQLite),
/// and most batches of the payment API carry one per payment: COPY writes them fastest.
const COPY_EVENTS: &str = "
    COPY events (id, merchant_id, object_id, object_sequence, kind, payload, notify_url,
        created_at, delivery, next_attempt_at)
    FROM STDIN (FORMAT binary)";

const EVENT_COLUMN_TYPES: [Type; 10] = [
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
];

/// By id only: a code another biller holds fails the batch instead of replacing that biller.
const UPSERT_BILLERS: &str = "
    INSERT INTO billers (id, code, name, category, reference_label, reference_charset,
        reference_length_min, reference_length_max, reference_prefix, check_digit,
        denominations, account_id, created_at)
    SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::text[], $7::int8[], $8::int8[], $9::text[], $10::text[], $11::text[], $12::int8[],
        $13::int8[])
    ON CONFLICT (id) DO UPDATE SET code = excluded.code, name = excluded.name,
        category = excluded.category, reference_label = excluded.reference_label,
        reference_charset = excluded.reference_charset,
        reference_length_min = excluded.reference_length_min,
        reference_length_max = excluded.reference_length_max,
        reference_prefix = excluded.reference_prefix, check_digit = excluded.check_digit,
        denominations = excluded.denominations, account_id = excluded.account_id,
        created_at = excluded.created_at";

const UPSERT_BILL_PAYMENTS: &str = "
    INSERT INTO bill_payments (id, user_id, biller_id, reference, amount, currency, state,
        customer_name, confirmation, failure, created_at, updated_at)
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::int8[],
        $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::int8[], $12::int8[])
    ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, biller_id = excluded.biller_id,
        reference = excluded.reference, amount = excluded.amount, currency = excluded.currency,
        state = excluded.state, customer_name = excluded.customer_name,
        confirmation = excluded.confirmation, failure = excluded.failure,
        created_at = excluded.created_at, updated_at = excluded.updated_at";

/// By id only: a second active entry for the same biller and reference fails the batch.
const UPSERT_SAVED_BILLERS: &str = "
    INSERT INTO saved_billers (id, user_id, biller_id, reference, nickname, state, created_at,
        updated_at)
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::text[],
        $6::text[], $7::int8[], $8::int8[])
    ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, biller_id = excluded.biller_id,
        reference = excluded.reference, nickname = excluded.nickname, state = excluded.state,
        created_at = excluded.created_at, updated_at = excluded.updated_at";

/// Inserted once: the first answer is the one replayed.
const INSERT_IDEMPOTENCY: &str = "
    INSERT INTO idempotency_keys (principal, key, request_digest, status, response, created_at)
    SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::int4[], $5::text[],
        $6::int8[])";

const UPSERT_GROUPS: &str = "
    INSERT INTO groups (id, owner_user_id, name, created_at)
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::int8[])
    ON CONFLICT (id) DO UPDATE SET owner_user_id = excluded.owner_user_id,
        name = excluded.name, created_at = excluded.created_at";

/// Inserted once: a member twice fails the batch.
const INSERT_GROUP_MEMBERS: &str = "
    INSERT INTO group_members (group_id, user_id, joined_at)
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[])";

/// An envelope's fields are fixed when it is sent; later records change its state only.
const UPSERT_ENVELOPES: &str = "
    INSERT INTO envelopes (id, sender_user_id, group_id, recipient_user_id, kind, total,
        currency, packets, greeting, registration_id, state, created_at, expires_at, returned,
        closed_at)
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::text[],
        $6::int8[], $7::text[], $8::text[], $9::text[], $10::int8[], $11::text[], $12::int8[],
        $13::int8[], $14::int8[], $15::int8[])
    ON CONFLICT (id) DO UPDATE SET state = excluded.state, returned = excluded.returned,
        closed_at = excluded.closed_at";

const UPSERT_ESCROWS: &str = "
    INSERT INTO escrows (order_id, merchant_id, buyer_user_id, amount, state, carrier,
        tracking_no, ship_by, shipped_at, release_at, due_at, dispute_reason, dispute_evidence,
        released, refunded, settled_by, note, created_at, updated_at, version)
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::text[],
        $6::text[], $7::text[], $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::text[],
        $13::text[], $14::int8[], $15::int8[], $16::text[], $17::text[], $18::int8[],
        $19::int8[], $20::int8[])
    ON CONFLICT (order_id) DO UPDATE SET state = excluded.state, carrier = excluded.carrier,
        tracking_no = excluded.tracking_no, shipped_at = excluded.shipped_at,
        release_at = excluded.release_at, due_at = excluded.due_at,
        dispute_reason = excluded.dispute_reason, dispute_evidence = excluded.dispute_evidence,
        released = excluded.released, refunded = excluded.refunded,
        settled_by = excluded.settled_by, note = excluded.note,
        updated_at = excluded.updated_at, version = excluded.version";

/// The writer's record statements, prepared once per connection.
pub(crate) struct RecordStatements {
    merchants: Statement,
    merchant_keys: Statement,
    outlets: Statement,
    orders: Statement,
    new_orders: Statement,
    refunds: Statement,
    p2p_transfers: Statement,
    cards: Statement,
    bank_transfers: Statement,
    merchant_codes: Statement,
    code_reports: Statement,
    payment_devices: Statement,
    code_uses: Statement,
    groups: Statement,
    group_members: Statement,
    envelopes: Statement,
    escrows: Statement,
    billers: Statement,
    bill_payments: Statement,
    saved_billers: Statement,
    invoices: Statement,
    invoice_reimbursements: Statement,
    idempotency: Statement,
}

impl RecordStatements {
    pub(crate) fn prepare(client: &mut Client) -> StoreResult<RecordStatements> {
        let mut prepare = |sql: &str| client.prepare(sql).map_err(map_error);
        Ok(RecordStatements {
            merchants: prepare(UPSERT_MERCHANTS)?,
            merchant_keys: prepare(UPSERT_MERCHANT_KEYS)?,
            outlets: prepare(UPSERT_OUTLETS)?,
            orders: prepare(UPSERT_ORDERS)?,
            new_orders: prepare(INSERT_NEW_ORDERS)?,
            refunds: prepare(UPSERT_REFUNDS)?,
            p2p_transfers: prepare(UPSERT_P2P_TRANSFERS)?,
            cards: prepare(UPSERT_CARDS)?,
            bank_transfers: prepare(UPSERT_BANK_TRANSFERS)?,
            merchant_codes: prepare(UPSERT_MERCHANT_CODES)?,
            code_reports: prepare(INSERT_CODE_REPORTS)?,
            payment_devices: prepare(UPSERT_PAYMENT_DEVICES)?,
            code_uses: prepare(INSERT_CODE_USES)?,
            groups: prepare(UPSERT_GROUPS)?,
            group_members: prepare(INSERT_GROUP_MEMBERS)?,
            envelopes: prepare(UPSERT_ENVELOPES)?,
            escrows: prepare(UPSERT_ESCROWS)?,
            billers: prepare(UPSERT_BILLERS)?,
            bill_payments: prepare(UPSERT_BILL_PAYMENTS)?,
            saved_billers: prepare(UPSERT_SAVED_BILLERS)?,
            invoices: prepare(UPSERT_INVOICES)?,
            invoice_reimbursements: prepare(INSERT_INVOICE_REIMBURSEMENTS)?,
            idempotency: prepare(INSERT_IDEMPOTENCY)?,
        })
    }
}

/// A batch's records by table, each in the batch's order.
#[derive(Default)]
struct Grouped<'a> {
    merchants: Vec<&'a Merchant>,
    merchant_keys: Vec<&'a MerchantKey>,
    outlets: Vec<&'a Outlet>,
    orders: Vec<&'a Order>,
    refunds: Vec<&'a Refund>,
    p2p_transfers: Vec<&'a P2pTransfer>,
    cards: Vec<&'a Card>,
    bank_transfers: Vec<&'a BankTransfer>,
    merchant_codes: Vec<&'a MerchantCode>,
    code_reports: Vec<&'a CodeReport>,
    payment_devices: Vec<&'a PaymentDevice>,
    code_uses: Vec<&'a CodeUse>,
    groups: Vec<&'a Group>,
    group_members: Vec<&'a GroupMember>,
    envelopes: Vec<&'a Envelope>,
    escrows: Vec<&'a Escrow>,
    billers: Vec<&'a Biller>,
    bill_payments: Vec<&'a BillPayment>,
    saved_billers: Vec<&'a SavedBiller>,
    invoices: Vec<&'a Invoice>,
    invoice_reimbursements: Vec<&'a InvoiceReimbursement>,
    events: Vec<&'a BusinessEvent>,
    idempotency: Vec<&'a IdempotencyRecord>,
}

impl<'a> Grouped<'a> {
    fn of(records: impl IntoIterator<Item = &'a Record>) -> Self {
        let mut grouped = Grouped::default();
        for record in records {
            match record {
                Record::Merchant(merchant) => grouped.merchants.push(merchant),
                Record::MerchantKey(key) => grouped.merchant_keys.push(key),
                Record::Outlet(outlet) => grouped.outlets.push(outlet),
                Record::Order(order) => grouped.orders.push(order),
                Record::Refund(refund) => grouped.refunds.push(refund),
                Record::P2pTransfer(transfer) => grouped.p2p_transfers.push(transfer),
                Record::Card(card) => grouped.cards.push(card),
                Record::BankTransfer(transfer) => grouped.bank_transfers.push(transfer),
                Record::Event(event) => grouped.events.push(event),
                Record::Idempotency(record) => grouped.idempotency.push(record),
                Record::MerchantCode(code) => grouped.merchant_codes.push(code),
                Record::CodeReport(report) => grouped.code_reports.push(report),
                Record::PaymentDevice(device) => grouped.payment_devices.push(device),
                Record::CodeUse(code_use) => grouped.code_uses.push(code_use),
                Record::Group(group) => grouped.groups.push(group),
                Record::GroupMember(member) => grouped.group_members.push(member),
                Record::Envelope(envelope) => grouped.envelopes.push(envelope),
                Record::Escrow(escrow) => grouped.escrows.push(escrow),
                Record::Biller(biller) => grouped.billers.push(biller),
                Record::BillPayment(payment) => grouped.bill_payments.push(payment),
                Record::SavedBiller(saved) => grouped.saved_billers.push(saved),
                Record::Invoice(invoice) => grouped.invoices.push(invoice),
                Record::InvoiceReimbursement(reimbursement) => {
                    grouped.invoice_reimbursements.push(reimbursement);
                }
            }
        }
        grouped
    }
}

/// The last record of each key, at the place of the key's first record: what upserting the
/// records one after another leaves (a statement may not touch a row twice).
fn last_of_each<T, K: Eq + Hash>(records: Vec<&T>, key: impl Fn(&T) -> K) -> Vec<&T> {
    let mut position: HashMap<K, usize> = HashMap::with_capacity(records.len());
    let mut kept: Vec<&T> = Vec::with_capacity(records.len());
    for record in records {
        match position.entry(key(record)) {
            Entry::Occupied(entry) => kept[*entry.get()] = record,
            Entry::Vacant(entry) => {
                entry.insert(kept.len());
                kept.push(record);
            }
        }
    }
    kept
}

fn execute(
    transaction: &mut Transaction<'_>,
    statement: &Statement,
    parameters: &[&(dyn ToSql + Sync)],
) -> StoreResult<()> {
    transaction
        .execute(statement, parameters)
        .map_err(map_error)?;
    Ok(())
}

/// Writes a batch's records inside its transaction; answers the claims refused (indices into
/// `claims`): their new orders first, in one statement, then everything else by table.
pub(crate) fn write_records(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    records: &[Record],
    claims: &[Claim],
) -> StoreResult<Vec<usize>> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    if claims.is_empty() {
        write_grouped(transaction, statements, records)?;
        return Ok(Vec::new());
    }
    let mut claimed = Vec::with_capacity(claims.len());
    let mut next = 0;
    for claim in claims {
        let first = records
            .get(claim.first..claim.first.saturating_add(claim.count))
            .filter(|_| claim.first >= next && claim.count > 0)
            .map(|run| &run[0]);
        let Some(Record::Order(order)) = first else {
            return Err(StoreError::corrupt(format!(
                "claim {claim:?} out of place or not starting with an order"
            )));
        };
        claimed.push(order);
        next = claim.first + claim.count;
    }
    let inserted = insert_new_orders(transaction, statements, &claimed)?;
    let mut refused = Vec::new();
    let mut rest = Vec::with_capacity(records.len());
    let mut next = 0;
    for (index, (claim, order)) in claims.iter().zip(&claimed).enumerate() {
        rest.extend(&records[next..claim.first]);
        if inserted.contains(&bigint(order.id, "order id")?) {
            rest.extend(&records[claim.first + 1..claim.first + claim.count]);
        } else {
            refused.push(index);
        }
        next = claim.first + claim.count;
    }
    rest.extend(&records[next..]);
    write_grouped(transaction, statements, rest)?;
    Ok(refused)
}

fn write_grouped<'a>(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    records: impl IntoIterator<Item = &'a Record>,
) -> StoreResult<()> {
    let grouped = Grouped::of(records);
    // Referenced tables first: merchants, then what belongs to them, orders before refunds
    // and merchant codes, codes before their reports, devices and orders before codes' uses,
    // billers before their payments and the saved billers.
    // orders before invoices, invoices before their reimbursements.
    write_merchants(transaction, statements, grouped.merchants)?;
    write_merchant_keys(transaction, statements, grouped.merchant_keys)?;
    write_outlets(transaction, statements, grouped.outlets)?;
    write_orders(transaction, statements, grouped.orders)?;
    write_refunds(transaction, statements, grouped.refunds)?;
    write_p2p_transfers(transaction, statements, grouped.p2p_transfers)?;
    write_cards(transaction, statements, grouped.cards)?;
    write_bank_transfers(transaction, statements, grouped.bank_transfers)?;
    write_merchant_codes(transaction, statements, grouped.merchant_codes)?;
    write_code_reports(transaction, statements, &grouped.code_reports)?;
    write_payment_devices(transaction, statements, grouped.payment_devices)?;
    write_code_uses(transaction, statements, &grouped.code_uses)?;
    write_billers(transaction, statements, grouped.billers)?;
    write_bill_payments(transaction, statements, grouped.bill_payments)?;
    write_saved_billers(transaction, statements, grouped.saved_billers)?;
    write_groups(transaction, statements, grouped.groups)?;
    write_group_members(transaction, statements, &grouped.group_members)?;
    write_envelopes(transaction, statements, grouped.envelopes)?;
    write_escrows(transaction, statements, grouped.escrows)?;
    write_invoices(transaction, statements, grouped.invoices)?;
    write_invoice_reimbursements(transaction, statements, &grouped.invoice_reimbursements)?;
    write_events(transaction, &grouped.events)?;
    write_idempotency(transaction, statements, &grouped.idempotency)
}

fn write_merchants(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    merchants: Vec<&Merchant>,
) -> StoreResult<()> {
    if merchants.is_empty() {
        return Ok(());
    }
    let merchants = last_of_each(merchants, |merchant| merchant.id);
    let count = merchants.len();
    let mut ids = Vec::with_capacity(count);
    let mut names = Vec::with_capacity(count);
    let mut mccs = Vec::with_capacity(count);
    let mut countries = Vec::with_capacity(count);
    let mut cities = Vec::with_capacity(count);
    let mut settlement_accounts = Vec::with_capacity(count);
    let mut fee_rates = Vec::with_capacity(count);
    let mut account_ids = Vec::with_capacity(count);
    let mut notify_keys = Vec::with_capacity(count);
    let mut created = Vec::with_capacity(count);
    for merchant in merchants {
        ids.push(bigint(merchant.id, "merchant id")?);
        names.push(merchant.name.as_str());
        mccs.push(merchant.mcc.as_str());
        countries.push(merchant.country.as_str());
        cities.push(merchant.city.as_str());
        settlement_accounts.push(merchant.settlement_account.as_str());
        fee_rates.push(integer(merchant.fee_rate_bps, "fee rate")?);
        account_ids.push(bigint_wide(merchant.account_id, "merchant account id")?);
        notify_keys.push(&merchant.notify_key[..]);
        created.push(bigint(merchant.created_at, "time")?);
    }
    execute(
        transaction,
        &statements.merchants,
        &[
            &ids,
            &names,
            &mccs,
            &countries,
            &cities,
            &settlement_accounts,
            &fee_rates,
            &account_ids,
            &notify_keys,
            &created,
        ],
    )
}

fn write_merchant_keys(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    keys: Vec<&MerchantKey>,
) -> StoreResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let keys = last_of_each(keys, |key| key.id);
    let count = keys.len();
    let mut ids = Vec::with_capacity(count);
    let mut merchant_ids = Vec::with_capacity(count);
    let mut signing_keys = Vec::with_capacity(count);
    let mut created = Vec::with_capacity(count);
    let mut revoked = Vec::with_capacity(count);
    for key in keys {
        ids.push(bigint(key.id, "merchant key id")?);
        merchant_ids.push(bigint(key.merchant_id, "merchant id")?);
        signing_keys.push(&key.signing_key[..]);
        created.push(bigint(key.created_at, "time")?);
        revoked.push(bigint_opt(key.revoked_at, "time")?);
    }
    execute(
        transaction,
        &statements.merchant_keys,
        &[&ids, &merchant_ids, &signing_keys, &created, &revoked],
    )
}

fn write_outlets(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    outlets: Vec<&Outlet>,
) -> StoreResult<()> {
    if outlets.is_empty() {
        return Ok(());
    }
    let outlets = last_of_each(outlets, |outlet| outlet.id);
    let count = outlets.len();
    let mut ids = Vec::with_capacity(count);
    let mut merchant_ids = Vec::with_capacity(count);
    let mut kinds = Vec::with_capacity(count);
    let mut parents = Vec::with_capacity(count);
    let mut names = Vec::with_capacity(count);
    let mut created = Vec::with_capacity(count);
    for outlet in outlets {
        ids.push(bigint(outlet.id, "outlet id")?);
        merchant_ids.push(bigint(outlet.merchant_id, "merchant id")?);
        kinds.push(outlet.kind.as_str());
        parents.push(bigint_opt(outlet.parent_id, "outlet id")?);
        names.push(outlet.name.as_str());
        created.push(bigint(outlet.created_at, "time")?);
    }
    execute(
        transaction,
        &statements.outlets,
        &[&ids, &merchant_ids, &kinds, &parents, &names, &created],
    )
}

fn write_orders(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    orders: Vec<&Order>,
) -> StoreResult<()> {
    if orders.is_empty() {
        return Ok(());
    }
    let columns = OrderColumns::of(&last_of_each(orders, |order| order.id))?;
    execute(transaction, &statements.orders, &columns.parameters())
}

/// Inserts the claimed new orders that collide with no stored order (by id or by their
/// merchant's `out_trade_no`); answers the ids inserted.
fn insert_new_orders(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    orders: &[&Order],
) -> StoreResult<HashSet<i64>> {
    let columns = OrderColumns::of(orders)?;
    let rows = transaction
        .query(&statements.new_orders, &columns.parameters())
        .map_err(map_error)?;
    rows.iter()
        .map(|row| row.try_get::<_, i64>(0).map_err(map_error))
        .collect()
}

/// Orders as one array per column, for `unnest`.
struct OrderColumns<'a> {
    ids: Vec<i64>,
    merchant_ids: Vec<i64>,
    outlet_ids: Vec<Option<i64>>,
    out_trade_nos: Vec<&'a str>,
    amounts: Vec<i64>,
    currencies: Vec<&'a str>,
    descriptions: Vec<&'a str>,
    notify_urls: Vec<Option<&'a str>>,
    states: Vec<&'static str>,
    payers: Vec<Option<i64>>,
    fees: Vec<i64>,
    refunded: Vec<i64>,
    created: Vec<i64>,
    expires: Vec<i64>,
    paid: Vec<Option<i64>>,
    closed: Vec<Option<i64>>,
    versions: Vec<i64>,
    payment_transfer_ids: Vec<i64>,
    escrows: Vec<bool>,
}

impl<'a> OrderColumns<'a> {
    fn of(orders: &[&'a Order]) -> StoreResult<Self> {
        let count = orders.len();
        let mut columns = OrderColumns {
            ids: Vec::with_capacity(count),
            merchant_ids: Vec::with_capacity(count),
            outlet_ids: Vec::with_capacity(count),
            out_trade_nos: Vec::with_capacity(count),
            amounts: Vec::with_capacity(count),
            currencies: Vec::with_capacity(count),
            descriptions: Vec::with_capacity(count),
            notify_urls: Vec::with_capacity(count),
            states: Vec::with_capacity(count),
            payers: Vec::with_capacity(count),
            fees: Vec::with_capacity(count),
            refunded: Vec::with_capacity(count),
            created: Vec::with_capacity(count),
            expires: Vec::with_capacity(count),
            paid: Vec::with_capacity(count),
            closed: Vec::with_capacity(count),
            versions: Vec::with_capacity(count),
            payment_transfer_ids: Vec::with_capacity(count),
            escrows: Vec::with_capacity(count),
        };
        for order in orders {
            columns.ids.push(bigint(order.id, "order id")?);
            columns
                .merchant_ids
                .push(bigint(order.merchant_id, "merchant id")?);
            columns
                .outlet_ids
                .push(bigint_opt(order.outlet_id, "outlet id")?);
            columns.out_trade_nos.push(order.out_trade_no.as_str());
            columns.amounts.push(bigint(order.amount, "order amount")?);
            columns.currencies.push(order.currency.as_str());
            columns.descriptions.push(order.description.as_str());
            columns.notify_urls.push(order.notify_url.as_deref());
            columns.states.push(order.state.as_str());
            columns
                .payers
                .push(bigint_opt(order.payer_user_id, "user id")?);
            columns.fees.push(bigint(order.fee, "order fee")?);
            columns
                .refunded
                .push(bigint(order.refunded, "amount refunded")?);
            columns.created.push(bigint(order.created_at, "time")?);
            columns.expires.push(bigint(order.expires_at, "time")?);
            columns.paid.push(bigint_opt(order.paid_at, "time")?);
            columns.closed.push(bigint_opt(order.closed_at, "time")?);
            columns.versions.push(i64::from(order.version));
            columns
                .payment_transfer_ids
                .push(bigint_wide(order.payment_transfer_id, "transfer id")?);
            columns.escrows.push(order.escrow);
        }
        Ok(columns)
    }

    fn parameters(&self) -> [&(dyn ToSql + Sync); 19] {
        [
            &self.ids,
            &self.merchant_ids,
            &self.outlet_ids,
            &self.out_trade_nos,
            &self.amounts,
            &self.currencies,
            &self.descriptions,
            &self.notify_urls,
            &self.states,
            &self.payers,
            &self.fees,
            &self.refunded,
            &self.created,
            &self.expires,
            &self.paid,
            &self.closed,
            &self.versions,
            &self.payment_transfer_ids,
            &self.escrows,
        ]
    }
}

fn write_refunds(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    refunds: Vec<&Refund>,
) -> StoreResult<()> {
    if refunds.is_empty() {
        return Ok(());
    }
    let refunds = last_of_each(refunds, |refund| refund.id);
    let count = refunds.len();
    let mut ids = Vec::with_capacity(count);
    let mut order_ids = Vec::with_capacity(count);
    let mut merchant_ids = Vec::with_capacity(count);
    let mut out_refund_nos = Vec::with_capacity(count);
    let mut amounts = Vec::with_capacity(count);
    let mut fees = Vec::with_capacity(count);
    let mut reasons = Vec::with_capacity(count);
    let mut created = Vec::with_capacity(count);
    for refund in refunds {
        ids.push(bigint(refund.id, "refund id")?);
        order_ids.push(bigint(refund.order_id, "order id")?);
        merchant_ids.push(bigint(refund.merchant_id, "merchant id")?);
        out_refund_nos.push(refund.out_refund_no.as_str());
        amounts.push(bigint(refund.amount, "refund amount")?);
        fees.push(bigint(refund.fee_refunded, "fee refunded")?);
        reasons.push(refund.reason.as_str());
        created.push(bigint(refund.created_at, "time")?);
    }
    execute(
        transaction,
        &statements.refunds,
        &[
            &ids,
            &order_ids,
            &merchant_ids,
            &out_refund_nos,
            &amounts,
            &fees,
            &reasons,
            &created,
        ],
    )
}

fn write_p2p_transfers(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    transfers: Vec<&P2pTransfer>,
) -> StoreResult<()> {
    if transfers.is_empty() {
        return Ok(());
    }
    let transfers = last_of_each(transfers, |transfer| transfer.id);
    let count = transfers.len();
    let mut ids = Vec::with_capacity(count);
    let mut from = Vec::with_capacity(count);
    let mut to = Vec::with_capacity(count);
    let mut amounts = Vec::with_capacity(count);
    let mut currencies = Vec::with_capacity(count);
    let mut notes = Vec::with_capacity(count);
    let mut created = Vec::with_capacity(count);
    for transfer in transfers {
        ids.push(bigint(transfer.id, "P2P transfer id")?);
        from.push(bigint(transfer.from_user_id, "user id")?);
        to.push(bigint(transfer.to_user_id, "user id")?);
        amounts.push(bigint(transfer.amount, "P2P amount")?);
        currencies.push(transfer.currency.as_str());
        notes.push(transfer.note.as_str());
        created.push(bigint(transfer.created_at, "time")?);
    }
    execute(
        transaction,
        &statements.p2p_transfers,
        &[&ids, &from, &to, &amounts, &currencies, &notes, &created],
    )
}

fn write_cards(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    cards: Vec<&Card>,
) -> StoreResult<()> {
    if cards.is_empty() {
        return Ok(());
    }
    let cards = last_of_each(cards, |card| card.id);
    let count = cards.len();
    let mut ids = Vec::with_capacity(count);
    let mut users = Vec::with_capacity(count);
    let mut tokens = Vec::with_capacity(count);
    let mut bins = Vec::with_capacity(count);
    let mut last4s = Vec::with_capacity(count);
    let mut banks = Vec::with_capacity(count);
    let mut states = Vec::with_capacity(count);
    let mut created = Vec::with_capacity(count);
    for card in cards {
        ids.push(bigint(card.id, "card id")?);
        users.push(bigint(card.user_id, "user id")?);
        tokens.push(card.token.as_str());
        bins.push(card.bin.as_str());
        last4s.push(card.last4.as_str());
        banks.push(card.bank.as_str());
        states.push(card.state.as_str());
        created.push(bigint(card.created_at, "time")?);
    }
    execute(
        transaction,
        &statements.cards,
        &[
            &ids, &users, &tokens, &bins, &last4s, &banks, &states, &created,
        ],
    )
}

fn write_bank_transfers(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    transfers: Vec<&BankTransfer>,
) -> StoreResult<()> {
    if transfers.is_empty() {
        return Ok(());
    }
    let transfers = last_of_each(transfers, |transfer| transfer.id);
    let count = transfers.len();
    let mut ids = Vec::with_capacity(count);
    let mut users = Vec::with_capacity(count);
    let mut cards = Vec::with_capacity(count);
    let mut directions = Vec::with_capacity(count);
    let mut amounts = Vec::with_capacity(count);
    let mut currencies = Vec::with_capacity(count);
    let mut states = Vec::with_capacity(count);
    let mut references = Vec::with_capacity(count);
    let mut failures = Vec::with_capacity(count);
    let mut created = Vec::with_capacity(count);
    let mut updated = Vec::with_capacity(count);
    for transfer in transfers {
        ids.push(bigint(transfer.id, "bank transfer id")?);
        users.push(bigint(transfer.user_id, "user id")?);
        cards.push(bigint(transfer.card_id, "card id")?);
        directions.push(transfer.direction.as_str());
        amounts.push(bigint(transfer.amount, "bank transfer amount")?);
        currencies.push(transfer.currency.as_str());
        states.push(transfer.state.as_str());
        references.push(transfer.bank_reference.as_deref());
        failures.push(transfer.failure.as_deref());
        created.push(bigint(transfer.created_at, "time")?);
        updated.push(bigint(transfer.updated_at, "time")?);
    }
    execute(
        transaction,
        &statements.bank_transfers,
        &[
            &ids,
            &users,
            &cards,
            &directions,
            &amounts,
            &currencies,
            &states,
            &references,
            &failures,
            &created,
            &updated,
        ],
    )
}

fn write_merchant_codes(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    codes: Vec<&MerchantCode>,
) -> StoreResult<()> {
    if codes.is_empty() {
        return Ok(());
    }
    let codes = last_of_each(codes, |code| code.id);
    let count = codes.len();
    let mut ids = Vec::with_capacity(count);
    let mut merchant_ids = Vec::with_capacity(count);
    let mut outlet_ids = Vec::with_capacity(count);
    let mut order_ids = Vec::with_capacity(count);
    let mut kinds = Vec::with_capacity(count);
    let mut payloads = Vec::with_capacity(count);
    let mut registration_ids = Vec::with_capacity(count);
    let mut states = Vec::with_capacity(count);
    let mut created = Vec::with_capacity(count);
    let mut expires = Vec::with_capacity(count);
    let mut updated = Vec::with_capacity(count);
    let mut notify_urls = Vec::with_capacity(count);
    for code in codes {
        ids.push(bigint(code.id, "merchant code id")?);
        merchant_ids.push(bigint(code.merchant_id, "merchant id")?);
        outlet_ids.push(bigint_opt(code.outlet_id, "outlet id")?);
        order_ids.push(bigint_opt(code.order_id, "order id")?);
        kinds.push(code.kind.as_str());
        payloads.push(code.payload.as_str());
        registration_ids.push(bigint(code.registration_id, "registration id")?);
        states.push(code.state.as_str());
        created.push(bigint(code.created_at, "time")?);
        expires.push(bigint_opt(code.expires_at, "time")?);
        updated.push(bigint(code.updated_at, "time")?);
        notify_urls.push(code.notify_url.as_deref());
    }
    execute(
        transaction,
        &statements.merchant_codes,
        &[
            &ids,
            &merchant_ids,
            &outlet_ids,
            &order_ids,
            &kinds,
            &payloads,
            &registration_ids,
            &states,
            &created,
            &expires,
            &updated,
            &notify_urls,
        ],
    )
}

fn write_code_reports(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    reports: &[&CodeReport],
) -> StoreResult<()> {
    if reports.is_empty() {
        return Ok(());
    }
    let count = reports.len();
    let mut ids = Vec::with_capacity(count);
    let mut code_ids = Vec::with_capacity(count);
    let mut digests = Vec::with_capacity(count);
    let mut payloads = Vec::with_capacity(count);
    let mut users = Vec::with_capacity(count);
    let mut reasons = Vec::with_capacity(count);
    let mut created = Vec::with_capacity(count);
    for report in reports {
        ids.push(bigint(report.id, "code report id")?);
        code_ids.push(bigint_opt(report.code_id, "merchant code id")?);
        digests.push(&report.payload_digest[..]);
        payloads.push(report.payload.as_str());
        users.push(bigint(report.user_id, "user id")?);
        reasons.push(report.reason.as_str());
        created.push(bigint(report.created_at, "time")?);
    }
    execute(
        transaction,
        &statements.code_reports,
        &[
            &ids, &code_ids, &digests, &payloads, &users, &reasons, &created,
        ],
    )
}

fn write_payment_devices(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    devices: Vec<&PaymentDevice>,
) -> StoreResult<()> {
    if devices.is_empty() {
        return Ok(());
    }
    let devices = last_of_each(devices, |device| device.id);
    let count = devices.len();
    let mut ids = Vec::with_capacity(count);
    let mut users = Vec::with_capacity(count);
    let mut numbers = Vec::with_capacity(count);
    let mut secrets = Vec::with_capacity(count);
    let mut names = Vec::with_capacity(count);
    let mut states = Vec::with_capacity(count);
    let mut created = Vec::with_capacity(count);
    let mut revoked = Vec::with_capacity(count);
    for device in devices {
        ids.push(bigint(device.id, "payment device id")?);
        users.push(bigint(device.user_id, "user id")?);
        numbers.push(integer(device.number, "payment device number")?);
        secrets.push(&device.secret[..]);
        names.push(device.name.as_str());
        states.push(device.state.as_str());
        created.push(bigint(device.created_at, "time")?);
        revoked.push(bigint_opt(device.revoked_at, "time")?);
    }
    execute(
        transaction,
        &statements.payment_devices,
        &[
            &ids, &users, &numbers, &secrets, &names, &states, &created, &revoked,
        ],
    )
}

fn write_groups(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    groups: Vec<&Group>,
) -> StoreResult<()> {
    if groups.is_empty() {
        return Ok(());
    }
    let groups = last_of_each(groups, |group| group.id);
    let mut ids = Vec::with_capacity(groups.len());
    let mut owners = Vec::with_capacity(groups.len());
    let mut names = Vec::with_capacity(groups.len());
    let mut created = Vec::with_capacity(groups.len());
    for group in groups {
        ids.push(bigint(group.id, "group id")?);
        owners.push(bigint(group.owner_user_id, "user id")?);
        names.push(group.name.as_str());
        created.push(bigint(group.created_at, "time")?);
    }
    execute(
        transaction,
        &statements.groups,
        &[&ids, &owners, &names, &created],
    )
}

/// Not deduplicated: a member added twice fails the batch.
fn write_group_members(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    members: &[&GroupMember],
) -> StoreResult<()> {
    if members.is_empty() {
        return Ok(());
    }
    let mut groups = Vec::with_capacity(members.len());
    let mut users = Vec::with_capacity(members.len());
    let mut joined = Vec::with_capacity(members.len());
    for member in members {
        groups.push(bigint(member.group_id, "group id")?);
        users.push(bigint(member.user_id, "user id")?);
        joined.push(bigint(member.joined_at, "time")?);
    }
    execute(
        transaction,
        &statements.group_members,
        &[&groups, &users, &joined],
    )
}

fn write_escrows(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    escrows: Vec<&Escrow>,
) -> StoreResult<()> {
    if escrows.is_empty() {
        return Ok(());
    }
    let escrows = last_of_each(escrows, |escrow| escrow.order_id);
    let count = escrows.len();
    let mut orders = Vec::with_capacity(count);
    let mut merchants = Vec::with_capacity(count);
    let mut buyers = Vec::with_capacity(count);
    let mut amounts = Vec::with_capacity(count);
    let mut states = Vec::with_capacity(count);
    let mut carriers = Vec::with_capacity(count);
    let mut tracking = Vec::with_capacity(count);
    let mut ship_by = Vec::with_capacity(count);
    let mut shipped = Vec::with_capacity(count);
    let mut release = Vec::with_capacity(count);
    let mut due = Vec::with_capacity(count);
    let mut reasons = Vec::with_capacity(count);
    let mut evidence = Vec::with_capacity(count);
    let mut released = Vec::with_capacity(count);
    let mut refunded = Vec::with_capacity(count);
    let mut settled_by = Vec::with_capacity(count);
    let mut notes = Vec::with_capacity(count);
    let mut created = Vec::with_capacity(count);
    let mut updated = Vec::with_capacity(count);
    let mut versions = Vec::with_capacity(count);
    for escrow in escrows {
        orders.push(bigint(escrow.order_id, "order id")?);
        merchants.push(bigint(escrow.merchant_id, "merchant id")?);
        buyers.push(bigint(escrow.buyer_user_id, "user id")?);
        amounts.push(bigint(escrow.amount, "escrow amount")?);
        states.push(escrow.state.as_str());
        carriers.push(escrow.carrier.as_deref());
        tracking.push(escrow.tracking_no.as_deref());
        ship_by.push(bigint(escrow.ship_by, "time")?);
        shipped.push(bigint_opt(escrow.shipped_at, "time")?);
        release.push(bigint_opt(escrow.release_at, "time")?);
        due.push(bigint_opt(escrow.due_at, "time")?);
        reasons.push(escrow.dispute_reason.as_deref());
        evidence.push(escrow.dispute_evidence.as_deref());
        released.push(bigint(escrow.released, "escrow released")?);
        refunded.push(bigint(escrow.refunded, "escrow refunded")?);
        settled_by.push(escrow.settled_by.as_deref());
        notes.push(escrow.note.as_deref());
        created.push(bigint(escrow.created_at, "time")?);
        updated.push(bigint(escrow.updated_at, "time")?);
        versions.push(i64::from(escrow.version));
    }
    execute(
        transaction,
        &statements.escrows,
        &[
            &orders,
            &merchants,
            &buyers,
            &amounts,
            &states,
            &carriers,
            &tracking,
            &ship_by,
            &shipped,
            &release,
            &due,
            &reasons,
            &evidence,
            &released,
            &refunded,
            &settled_by,
            &notes,
            &created,
            &updated,
            &versions,
        ],
    )
}

fn write_envelopes(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    envelopes: Vec<&Envelope>,
) -> StoreResult<()> {
    if envelopes.is_empty() {
        return Ok(());
    }
    let envelopes = last_of_each(envelopes, |envelope| envelope.id);
    let count = envelopes.len();
    let mut ids = Vec::with_capacity(count);
    let mut senders = Vec::with_capacity(count);
    let mut groups = Vec::with_capacity(count);
    let mut recipients = Vec::with_capacity(count);
    let mut kinds = Vec::with_capacity(count);
    let mut totals = Vec::with_capacity(count);
    let mut currencies = Vec::with_capacity(count);
    let mut packets = Vec::with_capacity(count);
    let mut greetings = Vec::with_capacity(count);
    let mut registrations = Vec::with_capacity(count);
    let mut states = Vec::with_capacity(count);
    let mut created = Vec::with_capacity(count);
    let mut expires = Vec::with_capacity(count);
    let mut returned = Vec::with_capacity(count);
    let mut closed = Vec::with_capacity(count);
    for envelope in envelopes {
        ids.push(bigint(envelope.id, "envelope id")?);
        senders.push(bigint(envelope.sender_user_id, "user id")?);
        groups.push(bigint_opt(envelope.group_id, "group id")?);
        recipients.push(bigint_opt(envelope.recipient_user_id, "user id")?);
        kinds.push(envelope.kind.as_str());
        totals.push(bigint(envelope.total, "envelope total")?);
        currencies.push(envelope.currency.as_str());
        packets.push(store::envelope_packets_text(&envelope.packets));
        greetings.push(envelope.greeting.as_str());
        registrations.push(bigint(envelope.registration_id, "registration id")?);
        states.push(envelope.state.as_str());
        created.push(bigint(envelope.created_at, "time")?);
        expires.push(bigint(envelope.expires_at, "time")?);
        returned.push(bigint(envelope.returned, "envelope returned")?);
        closed.push(bigint_opt(envelope.closed_at, "time")?);
    }
    execute(
        transaction,
        &statements.envelopes,
        &[
            &ids,
            &senders,
            &groups,
            &recipients,
            &kinds,
            &totals,
            &currencies,
            &packets,
            &greetings,
            &registrations,
            &states,
            &created,
            &expires,
            &returned,
            &closed,
        ],
    )
}

/// Not deduplicated: two uses of one code in a batch fail it, as two in two batches do.
fn write_code_uses(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    uses: &[&CodeUse],
) -> StoreResult<()> {
    if uses.is_empty() {
        return Ok(());
    }
    let count = uses.len();
    let mut devices = Vec::with_capacity(count);
    let mut steps = Vec::with_capacity(count);
    let mut slots = Vec::with_capacity(count);
    let mut orders = Vec::with_capacity(count);
    let mut created = Vec::with_capacity(count);
    for code_use in uses {
        devices.push(bigint(code_use.device_id, "payment device id")?);
        steps.push(bigint(code_use.step, "code time step")?);
        slots.push(i16::from(code_use.slot));
        orders.push(bigint(code_use.order_id, "order id")?);
        created.push(bigint(code_use.created_at, "time")?);
    }
    execute(
        transaction,
        &statements.code_uses,
        &[&devices, &steps, &slots, &orders, &created],
    )
}

fn write_billers(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    billers: Vec<&Biller>,
) -> StoreResult<()> {
    if billers.is_empty() {
        return Ok(());
    }
    let billers = last_of_each(billers, |biller| biller.id);
    let count = billers.len();
    let mut ids = Vec::with_capacity(count);
    let mut codes = Vec::with_capacity(count);
    let mut names = Vec::with_capacity(count);
    let mut categories = Vec::with_capacity(count);
    let mut labels = Vec::with_capacity(count);
    let mut charsets = Vec::with_capacity(count);
    let mut lengths_min = Vec::with_capacity(count);
    let mut lengths_max = Vec::with_capacity(count);
    let mut prefixes = Vec::with_capacity(count);
    let mut check_digits = Vec::with_capacity(count);
    let mut denominations = Vec::with_capacity(count);
    let mut account_ids = Vec::with_capacity(count);
    let mut created = Vec::with_capacity(count);
    for biller in billers {
        ids.push(bigint(biller.id, "biller id")?);
        codes.push(biller.code.as_str());
        names.push(biller.name.as_str());
        categories.push(biller.category.as_str());
        labels.push(biller.reference_label.as_str());
        charsets.push(biller.reference_charset.as_str());
        lengths_min.push(i64::from(biller.reference_length_min));
        lengths_max.push(i64::from(biller.reference_length_max));
        prefixes.push(biller.reference_prefix.as_str());
        check_digits.push(biller.check_digit.as_str());
        denominations.push(store::denominations_text(&biller.denominations));
        account_ids.push(bigint_wide(biller.account_id, "biller account id")?);
        created.push(bigint(biller.created_at, "time")?);
    }
    execute(
        transaction,
        &statements.billers,
        &[
            &ids,
            &codes,
            &names,
            &categories,
            &labels,
            &charsets,
            &lengths_min,
            &lengths_max,
            &prefixes,
            &check_digits,
            &denominations,
            &account_ids,
            &created,
        ],
    )
}

fn write_bill_payments(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    payments: Vec<&BillPayment>,
) -> StoreResult<()> {
    if payments.is_empty() {
        return Ok(());
    }
    let payments = last_of_each(payments, |payment| payment.id);
    let count = payments.len();
    let mut ids = Vec::with_capacity(count);
    let mut users = Vec::with_capacity(count);
    let mut billers = Vec::with_capacity(count);
    let mut references = Vec::with_capacity(count);
    let mut amounts = Vec::with_capacity(count);
    let mut currencies = Vec::with_capacity(count);
    let mut states = Vec::with_capacity(count);
    let mut names = Vec::with_capacity(count);
    let mut confirmations = Vec::with_capacity(count);
    let mut failures = Vec::with_capacity(count);
    let mut created = Vec::with_capacity(count);
    let mut updated = Vec::with_capacity(count);
    for payment in payments {
        ids.push(bigint(payment.id, "bill payment id")?);
        users.push(bigint(payment.user_id, "user id")?);
        billers.push(bigint(payment.biller_id, "biller id")?);
        references.push(payment.reference.as_str());
        amounts.push(bigint(payment.amount, "bill payment amount")?);
        currencies.push(payment.currency.as_str());
        states.push(payment.state.as_str());
        names.push(payment.customer_name.as_deref());
        confirmations.push(payment.confirmation.as_deref());
        failures.push(payment.failure.as_deref());
        created.push(bigint(payment.created_at, "time")?);
        updated.push(bigint(payment.updated_at, "time")?);
    }
    execute(
        transaction,
        &statements.bill_payments,
        &[
            &ids,
            &users,
            &billers,
            &references,
            &amounts,
            &currencies,
            &states,
            &names,
            &confirmations,
            &failures,
            &created,
            &updated,
        ],
    )
}
fn write_invoices(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    invoices: Vec<&Invoice>,
) -> StoreResult<()> {
    if invoices.is_empty() {
        return Ok(());
    }
    let invoices = last_of_each(invoices, |invoice| invoice.id);
    let count = invoices.len();
    let mut ids = Vec::with_capacity(count);
    let mut merchant_ids = Vec::with_capacity(count);
    let mut order_ids = Vec::with_capacity(count);
    let mut kinds = Vec::with_capacity(count);
    let mut sequences = Vec::with_capacity(count);
    let mut numbers = Vec::with_capacity(count);
    let mut originals = Vec::with_capacity(count);
    let mut seller_tax_ids = Vec::with_capacity(count);
    let mut buyer_names = Vec::with_capacity(count);
    let mut buyer_tax_ids = Vec::with_capacity(count);
    let mut currencies = Vec::with_capacity(count);
    let mut amounts = Vec::with_capacity(count);
    let mut taxes = Vec::with_capacity(count);
    let mut totals = Vec::with_capacity(count);
    let mut documents = Vec::with_capacity(count);
    let mut digests = Vec::with_capacity(count);
    let mut registration_ids = Vec::with_capacity(count);
    let mut states = Vec::with_capacity(count);
    let mut issued = Vec::with_capacity(count);
    let mut updated = Vec::with_capacity(count);
    for invoice in invoices {
        ids.push(bigint(invoice.id, "invoice id")?);
        merchant_ids.push(bigint(invoice.merchant_id, "merchant id")?);
        order_ids.push(bigint(invoice.order_id, "order id")?);
        kinds.push(invoice.kind.as_str());
        sequences.push(bigint(invoice.sequence, "invoice sequence")?);
        numbers.push(invoice.number.as_str());
        originals.push(bigint_opt(invoice.original_id, "invoice id")?);
        seller_tax_ids.push(invoice.seller_tax_id.as_str());
        buyer_names.push(invoice.buyer_name.as_str());
        buyer_tax_ids.push(invoice.buyer_tax_id.as_deref());
        currencies.push(invoice.currency.as_str());
        amounts.push(invoice.amount);
        taxes.push(invoice.tax);
        totals.push(invoice.total);
        documents.push(invoice.document.as_str());
        digests.push(&invoice.digest[..]);
        registration_ids.push(bigint(invoice.registration_id, "registration id")?);
        states.push(invoice.state.as_str());
        issued.push(bigint(invoice.issued_at, "time")?);
        updated.push(bigint(invoice.updated_at, "time")?);
    }
    execute(
        transaction,
        &statements.invoices,
        &[
            &ids,
            &merchant_ids,
            &order_ids,
            &kinds,
            &sequences,
            &numbers,
            &originals,
            &seller_tax_ids,
            &buyer_names,
            &buyer_tax_ids,
            &currencies,
            &amounts,
            &taxes,
            &totals,
            &documents,
            &digests,
            &registration_ids,
            &states,
            &issued,
            &updated,
        ],
    )
}

fn write_saved_billers(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    saved: Vec<&SavedBiller>,
) -> StoreResult<()> {
    if saved.is_empty() {
        return Ok(());
    }
    let saved = last_of_each(saved, |saved| saved.id);
    let count = saved.len();
    let mut ids = Vec::with_capacity(count);
    let mut users = Vec::with_capacity(count);
    let mut billers = Vec::with_capacity(count);
    let mut references = Vec::with_capacity(count);
    let mut nicknames = Vec::with_capacity(count);
    let mut states = Vec::with_capacity(count);
    let mut created = Vec::with_capacity(count);
    let mut updated = Vec::with_capacity(count);
    for entry in saved {
        ids.push(bigint(entry.id, "saved biller id")?);
        users.push(bigint(entry.user_id, "user id")?);
        billers.push(bigint(entry.biller_id, "biller id")?);
        references.push(entry.reference.as_str());
        nicknames.push(entry.nickname.as_str());
        states.push(entry.state.as_str());
        created.push(bigint(entry.created_at, "time")?);
        updated.push(bigint(entry.updated_at, "time")?);
    }
    execute(
        transaction,
        &statements.saved_billers,
        &[
            &ids,
            &users,
            &billers,
            &references,
            &nicknames,
            &states,
            &created,
            &updated,
        ],
    )
}
/// Not deduplicated: two reimbursements of one invoice in a batch fail it, as two in two
/// batches do.
fn write_invoice_reimbursements(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    reimbursements: &[&InvoiceReimbursement],
) -> StoreResult<()> {
    if reimbursements.is_empty() {
        return Ok(());
    }
    let count = reimbursements.len();
    let mut ids = Vec::with_capacity(count);
    let mut invoice_ids = Vec::with_capacity(count);
    let mut organisations = Vec::with_capacity(count);
    let mut references = Vec::with_capacity(count);
    let mut credentials = Vec::with_capacity(count);
    let mut created = Vec::with_capacity(count);
    for reimbursement in reimbursements {
        ids.push(bigint(reimbursement.id, "reimbursement id")?);
        invoice_ids.push(bigint(reimbursement.invoice_id, "invoice id")?);
        organisations.push(reimbursement.organisation.as_str());
        references.push(reimbursement.claim_reference.as_str());
        credentials.push(bigint(reimbursement.credential_id, "credential id")?);
        created.push(bigint(reimbursement.created_at, "time")?);
    }
    execute(
        transaction,
        &statements.invoice_reimbursements,
        &[
            &ids,
            &invoice_ids,
            &organisations,
            &references,
            &credentials,
            &created,
        ],
    )
}

/// An event with an address waits for delivery from the moment it is written; one without
/// is for polling only.
fn write_events(transaction: &mut Transaction<'_>, events: &[&BusinessEvent]) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let sink = transaction.copy_in(COPY_EVENTS).map_err(map_error)?;
    let mut writer = BinaryCopyInWriter::new(sink, &EVENT_COLUMN_TYPES);
    for event in events {
        let state = if event.notify_url.is_some() {
            DeliveryState::Pending
        } else {
            DeliveryState::None
        };
        let created_at = bigint(event.created_at, "time")?;
        writer
            .write(&[
                &bigint(event.id, "event id")?,
                &bigint(event.merchant_id, "merchant id")?,
                &bigint(event.object_id, "object id")?,
                &i64::from(event.object_sequence),
                &event.kind,
                &event.payload,
                &event.notify_url,
                &created_at,
                &state.as_str(),
                &created_at,
            ])
            .map_err(map_error)?;
    }
    let written = writer.finish().map_err(map_error)?;
    if written != events.len() as u64 {
        return Err(StoreError::corrupt(format!(
            "{} events to write, {written} written",
            events.len()
        )));
    }
    Ok(())
}

fn write_idempotency(
    transaction: &mut Transaction<'_>,
    statements: &RecordStatements,
    records: &[&IdempotencyRecord],
) -> StoreResult<()> {
    if records.is_empty() {
        return Ok(());
    }
    let count = records.len();
    let mut principals = Vec::with_capacity(count);
    let mut keys = Vec::with_capacity(count);
    let mut digests = Vec::with_capacity(count);
    let mut statuses = Vec::with_capacity(count);
    let mut responses = Vec::with_capacity(count);
    let mut created = Vec::with_capacity(count);
    for record in records {
        principals.push(record.principal.as_str());
        keys.push(record.key.as_str());
        digests.push(&record.request_digest[..]);
        statuses.push(i32::from(record.status));
        responses.push(record.response.as_str());
        created.push(bigint(record.created_at, "time")?);
    }
    execute(
        transaction,
        &statements.idempotency,
        &[
            &principals,
            &keys,
            &digests,
            &statuses,
            &responses,
            &created,
        ],
    )
}

// ---------------------------------------------------------------------------------------------
// Reading records.

macro_rules! merchant_columns {
    () => {
        "id, name, mcc, country, city, settlement_account, fee_rate_bps, account_id, \
         notify_key, created_at"
    };
}

macro_rules! key_columns {
    () => {
        "id, merchant_id, signing_key, created_at, revoked_at"
    };
}

macro_rules! outlet_columns {
    () => {
        "id, merchant_id, kind, parent_id, name, created_at"
    };
}

macro_rules! order_columns {
    () => {
        "id, merchant_id, outlet_id, out_trade_no, amount, currency, description, notify_url, \
         state, payer_user_id, fee, refunded, created_at, expires_at, paid_at, closed_at, \
         version, payment_transfer_id, escrow"
    };
}

macro_rules! refund_columns {
    () => {
        "id, order_id, merchant_id, out_refund_no, amount, fee_refunded, reason, created_at"
    };
}

macro_rules! card_columns {
    () => {
        "id, user_id, token, bin, last4, bank, state, created_at"
    };
}

macro_rules! bank_columns {
    () => {
        "id, user_id, card_id, direction, amount, currency, state, bank_reference, failure, \
         created_at, updated_at"
    };
}

macro_rules! event_columns {
    () => {
        "id, merchant_id, object_id, object_sequence, kind, payload, notify_url, created_at, \
         delivery, attempts, next_attempt_at, last_result"
    };
}

macro_rules! code_columns {
    () => {
        "id, merchant_id, outlet_id, order_id, kind, payload, registration_id, state, \
         created_at, expires_at, updated_at, notify_url"
    };
}

macro_rules! report_columns {
    () => {
        "id, code_id, payload_digest, payload, user_id, reason, created_at"
    };
}

macro_rules! escrow_columns {
    () => {
        "order_id, merchant_id, buyer_user_id, amount, state, carrier, tracking_no, ship_by, \
         shipped_at, release_at, due_at, dispute_reason, dispute_evidence, released, refunded, \
         settled_by, note, created_at, updated_at, version"
    };
}

macro_rules! group_columns {
    () => {
        "id, owner_user_id, name, created_at"
    };
}

macro_rules! envelope_columns {
    () => {
        "id, sender_user_id, group_id, recipient_user_id, kind, total, currency, packets, \
         greeting, registration_id, state, created_at, expires_at, returned, closed_at"
    };
}

macro_rules! device_columns {
    () => {
        "id, user_id, number, secret, name, state, created_at, revoked_at"
    };
}

macro_rules! biller_columns {
    () => {
        "id, code, name, category, reference_label, reference_charset, reference_length_min, \
         reference_length_max, reference_prefix, check_digit, denominations, account_id, \
         created_at"
    };
}

macro_rules! bill_payment_columns {
    () => {
        "id, user_id, biller_id, reference, amount, currency, state, customer_name, \
         confirmation, failure, created_at, updated_at"
    };
}

macro_rules! saved_biller_columns {
    () => {
        "id, user_id, biller_id, reference, nickname, state, created_at, updated_at"
    };
}

fn reference_length(row: &Row, index: usize) -> StoreResult<u8> {
    let value: i64 = get(row, index)?;
    u8::try_from(value)
        .map_err(|_| StoreError::corrupt(format!("reference length out of range: {value}")))
}

fn biller_from_row(row: &Row) -> StoreResult<Biller> {
    let category: &str = get(row, 3)?;
    let charset: &str = get(row, 5)?;
    let check_digit: &str = get(row, 9)?;
    let denominations: &str = get(row, 10)?;
    Ok(Biller {
        id: get_u64(row, 0, "biller id")?,
        code: get(row, 1)?,
        name: get(row, 2)?,
        category: BillerCategory::parse(category)
            .ok_or_else(|| unknown("biller category", category))?,
        reference_label: get(row, 4)?,
        reference_charset: ReferenceCharset::parse(charset)
            .ok_or_else(|| unknown("reference charset", charset))?,
        reference_length_min: reference_length(row, 6)?,
        reference_length_max: reference_length(row, 7)?,
        reference_prefix: get(row, 8)?,
        check_digit: CheckDigit::parse(check_digit)
            .ok_or_else(|| unknown("check digit", check_digit))?,
        denominations: store::parse_denominations(denominations)
            .ok_or_else(|| unknown("denominations", denominations))?,
        account_id: get_u128(row, 11, "biller account id")?,
        created_at: get_u64(row, 12, "time")?,
    })
}

fn bill_payment_from_row(row: &Row) -> StoreResult<BillPayment> {
    let state: &str = get(row, 6)?;
    Ok(BillPayment {
        id: get_u64(row, 0, "bill payment id")?,
        user_id: get_u64(row, 1, "user id")?,
        biller_id: get_u64(row, 2, "biller id")?,
        reference: get(row, 3)?,
        amount: get_u64(row, 4, "bill payment amount")?,
        currency: get(row, 5)?,
        state: BillPaymentState::parse(state)
            .ok_or_else(|| unknown("bill payment state", state))?,
        customer_name: get(row, 7)?,
        confirmation: get(row, 8)?,
        failure: get(row, 9)?,
        created_at: get_u64(row, 10, "time")?,
        updated_at: get_u64(row, 11, "time")?,
    })
}

fn saved_biller_from_row(row: &Row) -> StoreResult<SavedBiller> {
    let state: &str = get(row, 5)?;
    Ok(SavedBiller {
        id: get_u64(row, 0, "saved biller id")?,
        user_id: get_u64(row, 1, "user id")?,
        biller_id: get_u64(row, 2, "biller id")?,
        reference: get(row, 3)?,
        nickname: get(row, 4)?,
        state: SavedBillerState::parse(state)
            .ok_or_else(|| unknown("saved biller state", state))?,
        created_at: get_u64(row, 6, "time")?,
        updated_at: get_u64(row, 7, "time")?,
    })
}
macro_rules! invoice_columns {
    () => {
        "id, merchant_id, order_id, kind, sequence, number, original_id, seller_tax_id, \
         buyer_name, buyer_tax_id, currency, amount, tax, total, document, digest, \
         registration_id, state, issued_at, updated_at"
    };
}

fn invoice_from_row(row: &Row) -> StoreResult<Invoice> {
    let kind: &str = get(row, 3)?;
    let state: &str = get(row, 17)?;
    Ok(Invoice {
        id: get_u64(row, 0, "invoice id")?,
        merchant_id: get_u64(row, 1, "merchant id")?,
        order_id: get_u64(row, 2, "order id")?,
        kind: InvoiceKind::parse(kind).ok_or_else(|| unknown("invoice kind", kind))?,
        sequence: get_u64(row, 4, "invoice sequence")?,
        number: get(row, 5)?,
        original_id: get_opt_u64(row, 6, "invoice id")?,
        seller_tax_id: get(row, 7)?,
        buyer_name: get(row, 8)?,
        buyer_tax_id: get(row, 9)?,
        currency: get(row, 10)?,
        amount: get(row, 11)?,
        tax: get(row, 12)?,
        total: get(row, 13)?,
        document: get(row, 14)?,
        digest: get_digest(row, 15, "invoice digest")?,
        registration_id: get_u64(row, 16, "registration id")?,
        state: InvoiceState::parse(state).ok_or_else(|| unknown("invoice state", state))?,
        issued_at: get_u64(row, 18, "time")?,
        updated_at: get_u64(row, 19, "time")?,
    })
}

fn reimbursement_from_row(row: &Row) -> StoreResult<InvoiceReimbursement> {
    Ok(InvoiceReimbursement {
        id: get_u64(row, 0, "reimbursement id")?,
        invoice_id: get_u64(row, 1, "invoice id")?,
        organisation: get(row, 2)?,
        claim_reference: get(row, 3)?,
        credential_id: get_u64(row, 4, "credential id")?,
        created_at: get_u64(row, 5, "time")?,
    })
}

fn merchant_from_row(row: &Row) -> StoreResult<Merchant> {
    let fee_rate: i32 = get(row, 6)?;
    Ok(Merchant {
        id: get_u64(row, 0, "merchant id")?,
        name: get(row, 1)?,
        mcc: get(row, 2)?,
        country: get(row, 3)?,
        city: get(row, 4)?,
        settlement_account: get(row, 5)?,
        fee_rate_bps: u32::try_from(fee_rate)
            .map_err(|_| StoreError::corrupt(format!("fee rate out of range: {fee_rate}")))?,
        account_id: get_u128(row, 7, "merchant account id")?,
        notify_key: get_digest(row, 8, "notification key")?,
        created_at: get_u64(row, 9, "time")?,
    })
}

fn key_from_row(row: &Row) -> StoreResult<MerchantKey> {
    Ok(MerchantKey {
        id: get_u64(row, 0, "merchant key id")?,
        merchant_id: get_u64(row, 1, "merchant id")?,
        signing_key: get_digest(row, 2, "signing key")?,
        created_at: get_u64(row, 3, "time")?,
        revoked_at: get_opt_u64(row, 4, "time")?,
    })
}

fn outlet_from_row(row: &Row) -> StoreResult<Outlet> {
    let kind: &str = get(row, 2)?;
    Ok(Outlet {
        id: get_u64(row, 0, "outlet id")?,
        merchant_id: get_u64(row, 1, "merchant id")?,
        kind: OutletKind::parse(kind).ok_or_else(|| unknown("outlet kind", kind))?,
        parent_id: get_opt_u64(row, 3, "outlet id")?,
        name: get(row, 4)?,
        created_at: get_u64(row, 5, "time")?,
    })
}

fn order_from_row(row: &Row) -> StoreResult<Order> {
    let state: &str = get(row, 8)?;
    Ok(Order {
        id: get_u64(row, 0, "order id")?,
        merchant_id: get_u64(row, 1, "merchant id")?,
        outlet_id: get_opt_u64(row, 2, "outlet id")?,
        out_trade_no: get(row, 3)?,
        amount: get_u64(row, 4, "order amount")?,
        currency: get(row, 5)?,
        description: get(row, 6)?,
        notify_url: get(row, 7)?,
        state: OrderState::parse(state).ok_or_else(|| unknown("order state", state))?,
        payer_user_id: get_opt_u64(row, 9, "user id")?,
        fee: get_u64(row, 10, "order fee")?,
        refunded: get_u64(row, 11, "amount refunded")?,
        created_at: get_u64(row, 12, "time")?,
        expires_at: get_u64(row, 13, "time")?,
        paid_at: get_opt_u64(row, 14, "time")?,
        closed_at: get_opt_u64(row, 15, "time")?,
        version: get_u32(row, 16, "order version")?,
        payment_transfer_id: get_u128(row, 17, "transfer id")?,
        escrow: get(row, 18)?,
    })
}

fn refund_from_row(row: &Row) -> StoreResult<Refund> {
    Ok(Refund {
        id: get_u64(row, 0, "refund id")?,
        order_id: get_u64(row, 1, "order id")?,
        merchant_id: get_u64(row, 2, "merchant id")?,
        out_refund_no: get(row, 3)?,
        amount: get_u64(row, 4, "refund amount")?,
        fee_refunded: get_u64(row, 5, "fee refunded")?,
        reason: get(row, 6)?,
        created_at: get_u64(row, 7, "time")?,
    })
}

fn p2p_from_row(row: &Row) -> StoreResult<P2pTransfer> {
    Ok(P2pTransfer {
        id: get_u64(row, 0, "P2P transfer id")?,
        from_user_id: get_u64(row, 1, "user id")?,
        to_user_id: get_u64(row, 2, "user id")?,
        amount: get_u64(row, 3, "P2P amount")?,
        currency: get(row, 4)?,
        note: get(row, 5)?,
        created_at: get_u64(row, 6, "time")?,
    })
}

fn card_from_row(row: &Row) -> StoreResult<Card> {
    let state: &str = get(row, 6)?;
    Ok(Card {
        id: get_u64(row, 0, "card id")?,
        user_id: get_u64(row, 1, "user id")?,
        token: get(row, 2)?,
        bin: get(row, 3)?,
        last4: get(row, 4)?,
        bank: get(row, 5)?,
        state: CardState::parse(state).ok_or_else(|| unknown("card state", state))?,
        created_at: get_u64(row, 7, "time")?,
    })
}

fn bank_from_row(row: &Row) -> StoreResult<BankTransfer> {
    let direction: &str = get(row, 3)?;
    let state: &str = get(row, 6)?;
    Ok(BankTransfer {
        id: get_u64(row, 0, "bank transfer id")?,
        user_id: get_u64(row, 1, "user id")?,
        card_id: get_u64(row, 2, "card id")?,
        direction: BankDirection::parse(direction)
            .ok_or_else(|| unknown("bank transfer direction", direction))?,
        amount: get_u64(row, 4, "bank transfer amount")?,
        currency: get(row, 5)?,
        state: BankTransferState::parse(state)
            .ok_or_else(|| unknown("bank transfer state", state))?,
        bank_reference: get(row, 7)?,
        failure: get(row, 8)?,
        created_at: get_u64(row, 9, "time")?,
        updated_at: get_u64(row, 10, "time")?,
    })
}

fn event_from_row(row: &Row) -> StoreResult<StoredEvent> {
    let state: &str = get(row, 8)?;
    Ok(StoredEvent {
        event: BusinessEvent {
            id: get_u64(row, 0, "event id")?,
            merchant_id: get_u64(row, 1, "merchant id")?,
            object_id: get_u64(row, 2, "object id")?,
            object_sequence: get_u32(row, 3, "object sequence")?,
            kind: get(row, 4)?,
            payload: get(row, 5)?,
            notify_url: get(row, 6)?,
            created_at: get_u64(row, 7, "time")?,
        },
        delivery: DeliveryState::parse(state).ok_or_else(|| unknown("delivery state", state))?,
        attempts: get_u32(row, 9, "delivery attempts")?,
        next_attempt_at: get_u64(row, 10, "time")?,
        last_result: get(row, 11)?,
    })
}

fn code_from_row(row: &Row) -> StoreResult<MerchantCode> {
    let kind: &str = get(row, 4)?;
    let state: &str = get(row, 7)?;
    Ok(MerchantCode {
        id: get_u64(row, 0, "merchant code id")?,
        merchant_id: get_u64(row, 1, "merchant id")?,
        outlet_id: get_opt_u64(row, 2, "outlet id")?,
        order_id: get_opt_u64(row, 3, "order id")?,
        kind: CodeKind::parse(kind).ok_or_else(|| unknown("code kind", kind))?,
        payload: get(row, 5)?,
        registration_id: get_u64(row, 6, "registration id")?,
        state: CodeState::parse(state).ok_or_else(|| unknown("code state", state))?,
        created_at: get_u64(row, 8, "time")?,
        expires_at: get_opt_u64(row, 9, "time")?,
        updated_at: get_u64(row, 10, "time")?,
        notify_url: get(row, 11)?,
    })
}

fn report_from_row(row: &Row) -> StoreResult<CodeReport> {
    Ok(CodeReport {
        id: get_u64(row, 0, "code report id")?,
        code_id: get_opt_u64(row, 1, "merchant code id")?,
        payload_digest: get_digest(row, 2, "payload digest")?,
        payload: get(row, 3)?,
        user_id: get_u64(row, 4, "user id")?,
        reason: get(row, 5)?,
        created_at: get_u64(row, 6, "time")?,
    })
}

fn escrow_from_row(row: &Row) -> StoreResult<Escrow> {
    let state: &str = get(row, 4)?;
    Ok(Escrow {
        order_id: get_u64(row, 0, "order id")?,
        merchant_id: get_u64(row, 1, "merchant id")?,
        buyer_user_id: get_u64(row, 2, "user id")?,
        amount: get_u64(row, 3, "escrow amount")?,
        state: EscrowState::parse(state).ok_or_else(|| unknown("escrow state", state))?,
        carrier: get(row, 5)?,
        tracking_no: get(row, 6)?,
        ship_by: get_u64(row, 7, "time")?,
        shipped_at: get_opt_u64(row, 8, "time")?,
        release_at: get_opt_u64(row, 9, "time")?,
        due_at: get_opt_u64(row, 10, "time")?,
        dispute_reason: get(row, 11)?,
        dispute_evidence: get(row, 12)?,
        released: get_u64(row, 13, "escrow released")?,
        refunded: get_u64(row, 14, "escrow refunded")?,
        settled_by: get(row, 15)?,
        note: get(row, 16)?,
        created_at: get_u64(row, 17, "time")?,
        updated_at: get_u64(row, 18, "time")?,
        version: get_u32(row, 19, "escrow version")?,
    })
}

fn group_from_row(row: &Row) -> StoreResult<Group> {
    Ok(Group {
        id: get_u64(row, 0, "group id")?,
        owner_user_id: get_u64(row, 1, "user id")?,
        name: get(row, 2)?,
        created_at: get_u64(row, 3, "time")?,
    })
}

fn member_from_row(row: &Row) -> StoreResult<GroupMember> {
    Ok(GroupMember {
        group_id: get_u64(row, 0, "group id")?,
        user_id: get_u64(row, 1, "user id")?,
        joined_at: get_u64(row, 2, "time")?,
    })
}

fn envelope_from_row(row: &Row) -> StoreResult<Envelope> {
    let kind: &str = get(row, 4)?;
    let packets: &str = get(row, 7)?;
    let state: &str = get(row, 10)?;
    Ok(Envelope {
        id: get_u64(row, 0, "envelope id")?,
        sender_user_id: get_u64(row, 1, "user id")?,
        group_id: get_opt_u64(row, 2, "group id")?,
        recipient_user_id: get_opt_u64(row, 3, "user id")?,
        kind: EnvelopeKind::parse(kind).ok_or_else(|| unknown("envelope kind", kind))?,
        total: get_u64(row, 5, "envelope total")?,
        currency: get(row, 6)?,
        packets: store::parse_envelope_packets(packets)
            .ok_or_else(|| unknown("envelope packets", packets))?,
        greeting: get(row, 8)?,
        registration_id: get_u64(row, 9, "registration id")?,
        state: EnvelopeState::parse(state).ok_or_else(|| unknown("envelope state", state))?,
        created_at: get_u64(row, 11, "time")?,
        expires_at: get_u64(row, 12, "time")?,
        returned: get_u64(row, 13, "envelope returned")?,
        closed_at: get_opt_u64(row, 14, "time")?,
    })
}

fn device_from_row(row: &Row) -> StoreResult<PaymentDevice> {
    let number: i32 = get(row, 2)?;
    let state: &str = get(row, 5)?;
    Ok(PaymentDevice {
        id: get_u64(row, 0, "payment device id")?,
        user_id: get_u64(row, 1, "user id")?,
        number: u32::try_from(number).map_err(|_| {
            StoreError::corrupt(format!("payment device number out of range: {number}"))
        })?,
        secret: get_digest(row, 3, "payment device secret")?,
        name: get(row, 4)?,
        state: DeviceState::parse(state).ok_or_else(|| unknown("device state", state))?,
        created_at: get_u64(row, 6, "time")?,
        revoked_at: get_opt_u64(row, 7, "time")?,
    })
}

fn code_use_from_row(row: &Row) -> StoreResult<CodeUse> {
    let slot: i16 = get(row, 2)?;
    Ok(CodeUse {
        device_id: get_u64(row, 0, "payment device id")?,
        step: get_u64(row, 1, "code time step")?,
        slot: u8::try_from(slot)
            .map_err(|_| StoreError::corrupt(format!("code slot out of range: {slot}")))?,
        order_id: get_u64(row, 3, "order id")?,
        created_at: get_u64(row, 4, "time")?,
    })
}

fn idempotency_from_row(row: &Row) -> StoreResult<IdempotencyRecord> {
    let status: i32 = get(row, 3)?;
    Ok(IdempotencyRecord {
        principal: get(row, 0)?,
        key: get(row, 1)?,
        request_digest: get_digest(row, 2, "request digest")?,
        status: u16::try_from(status)
            .map_err(|_| StoreError::corrupt(format!("HTTP status out of range: {status}")))?,
        response: get(row, 4)?,
        created_at: get_u64(row, 5, "time")?,
    })
}

/// Reads business records on a pooled connection, each lookup one prepared statement.
pub(crate) struct PostgresRecords {
    client: PooledClient,
}

impl PostgresRecords {
    pub(crate) fn new(client: PooledClient) -> Self {
        PostgresRecords { client }
    }

    fn one<T>(
        &mut self,
        sql: &'static str,
        parameters: &[&(dyn ToSql + Sync)],
        map: fn(&Row) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        let statement = self.client.statement(sql)?;
        self.client
            .query_opt(&statement, parameters)
            .map_err(map_error)?
            .map(|row| map(&row))
            .transpose()
    }

    fn many<T>(
        &mut self,
        sql: &'static str,
        parameters: &[&(dyn ToSql + Sync)],
        map: fn(&Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let statement = self.client.statement(sql)?;
        self.client
            .query(&statement, parameters)
            .map_err(map_error)?
            .iter()
            .map(map)
            .collect()
    }
}

impl RecordReader for PostgresRecords {
    fn biller(&mut self, id: u64) -> StoreResult<Option<Biller>> {
        self.one(
            concat!("SELECT ", biller_columns!(), " FROM billers WHERE id = $1"),
            &[&bigint(id, "biller id")?],
            biller_from_row,
        )
    }

    fn biller_by_code(&mut self, code: &str) -> StoreResult<Option<Biller>> {
        self.one(
            concat!(
                "SELECT ",
                biller_columns!(),
                " FROM billers WHERE code = $1"
            ),
            &[&code],
            biller_from_row,
        )
    }

    fn billers(
        &mut self,
        category: Option<BillerCategory>,
        after_id: u64,
        limit: usize,
    ) -> StoreResult<Vec<Biller>> {
        // One statement for both: a NULL category matches every biller.
        self.many(
            concat!(
                "SELECT ",
                biller_columns!(),
                " FROM billers WHERE ($1::text IS NULL OR category = $1) AND id > $2 \
                 ORDER BY id LIMIT $3"
            ),
            &[
                &category.map(BillerCategory::as_str),
                &bigint(after_id, "biller id")?,
                &page_limit(limit),
            ],
            biller_from_row,
        )
    }

    fn bill_payment(&mut self, id: u64) -> StoreResult<Option<BillPayment>> {
        self.one(
            concat!(
                "SELECT ",
                bill_payment_columns!(),
                " FROM bill_payments WHERE id = $1"
            ),
            &[&bigint(id, "bill payment id")?],
            bill_payment_from_row,
        )
    }

    fn bill_payments(
        &mut self,
        user_id: u64,
        before_id: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<BillPayment>> {
        let before = match before_id {
            Some(id) => bigint(id, "bill payment id")?,
            None => i64::MAX,
        };
        self.many(
            concat!(
                "SELECT ",
                bill_payment_columns!(),
                " FROM bill_payments WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
            ),
            &[&bigint(user_id, "user id")?, &before, &page_limit(limit)],
            bill_payment_from_row,
        )
    }

    fn bill_payments_pending(&mut self, limit: usize) -> StoreResult<Vec<BillPayment>> {
        self.many(
            concat!(
                "SELECT ",
                bill_payment_columns!(),
                " FROM bill_payments WHERE state = 'pending' ORDER BY id LIMIT $1"
            ),
            &[&page_limit(limit)],
            bill_payment_from_row,
        )
    }

    fn saved_biller(&mut self, id: u64) -> StoreResult<Option<SavedBiller>> {
        self.one(
            concat!(
                "SELECT ",
                saved_biller_columns!(),
                " FROM saved_billers WHERE id = $1"
            ),
            &[&bigint(id, "saved biller id")?],
            saved_biller_from_row,
        )
    }

    fn saved_billers(&mut self, user_id: u64) -> StoreResult<Vec<SavedBiller>> {
        self.many(
            concat!(
                "SELECT ",
                saved_biller_columns!(),
                " FROM saved_billers WHERE user_id = $1 AND state = 'active' \
                 ORDER BY id LIMIT $2"
            ),
            &[
                &bigint(user_id, "user id")?,
                &page_limit(RECORD_PAGE_LIMIT_MAX),
            ],
            saved_biller_from_row,
        )
    }

    fn merchant(&mut self, id: u64) -> StoreResult<Option<Merchant>> {
        self.one(
            concat!(
                "SELECT ",
                merchant_columns!(),
                " FROM merchants WHERE id = $1"
            ),
            &[&bigint(id, "merchant id")?],
            merchant_from_row,
        )
    }

    fn merchants(&mut self, after_id: u64, limit: usize) -> StoreResult<Vec<Merchant>> {
        self.many(
            concat!(
                "SELECT ",
                merchant_columns!(),
                " FROM merchants WHERE id > $1 ORDER BY id LIMIT $2"
            ),
            &[&bigint(after_id, "merchant id")?, &page_limit(limit)],
            merchant_from_row,
        )
    }

    fn merchant_key(&mut self, id: u64) -> StoreResult<Option<MerchantKey>> {
        self.one(
            concat!(
                "SELECT ",
                key_columns!(),
                " FROM merchant_keys WHERE id = $1"
            ),
            &[&bigint(id, "merchant key id")?],
            key_from_row,
        )
    }

    fn merchant_keys(&mut self, merchant_id: u64) -> StoreResult<Vec<MerchantKey>> {
        self.many(
            concat!(
                "SELECT ",
                key_columns!(),
                " FROM merchant_keys WHERE merchant_id = $1 ORDER BY id"
            ),
            &[&bigint(merchant_id, "merchant id")?],
            key_from_row,
        )
    }

    fn outlets(&mut self, merchant_id: u64) -> StoreResult<Vec<Outlet>> {
        self.many(
            concat!(
                "SELECT ",
                outlet_columns!(),
                " FROM outlets WHERE merchant_id = $1 ORDER BY id"
            ),
            &[&bigint(merchant_id, "merchant id")?],
            outlet_from_row,
        )
    }

    fn outlet(&mut self, id: u64) -> StoreResult<Option<Outlet>> {
        self.one(
            concat!("SELECT ", outlet_columns!(), " FROM outlets WHERE id = $1"),
            &[&bigint(id, "outlet id")?],
            outlet_from_row,
        )
    }

    fn order(&mut self, id: u64) -> StoreResult<Option<Order>> {
        self.one(
            concat!("SELECT ", order_columns!(), " FROM orders WHERE id = $1"),
            &[&bigint(id, "order id")?],
            order_from_row,
        )
    }

    fn order_by_out_trade_no(
        &mut self,
        merchant_id: u64,
        out_trade_no: &str,
    ) -> StoreResult<Option<Order>> {
        self.one(
            concat!(
                "SELECT ",
                order_columns!(),
                " FROM orders WHERE merchant_id = $1 AND out_trade_no = $2"
            ),
            &[&bigint(merchant_id, "merchant id")?, &out_trade_no],
            order_from_row,
        )
    }

    fn orders(&mut self, merchant_id: u64, after_id: u64, limit: usize) -> StoreResult<Vec<Order>> {
        self.many(
            concat!(
                "SELECT ",
                order_columns!(),
                " FROM orders WHERE merchant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            ),
            &[
                &bigint(merchant_id, "merchant id")?,
                &bigint(after_id, "order id")?,
                &page_limit(limit),
            ],
            order_from_row,
        )
    }

    fn orders_paid_between(
        &mut self,
        merchant_id: u64,
        from: u64,
        to: u64,
    ) -> StoreResult<Vec<Order>> {
        self.many(
            concat!(
                "SELECT ",
                order_columns!(),
                " FROM orders WHERE merchant_id = $1 AND paid_at >= $2 AND paid_at < $3 \
                 ORDER BY paid_at, id"
            ),
            &[
                &bigint(merchant_id, "merchant id")?,
                &bigint(from, "time")?,
                &bigint(to, "time")?,
            ],
            order_from_row,
        )
    }

    fn orders_expired(&mut self, now: u64, limit: usize) -> StoreResult<Vec<Order>> {
        self.many(
            concat!(
                "SELECT ",
                order_columns!(),
                " FROM orders WHERE state = 'NOTPAY' AND expires_at <= $1 \
                 ORDER BY expires_at LIMIT $2"
            ),
            &[&bigint(now, "time")?, &page_limit(limit)],
            order_from_row,
        )
    }

    fn refund(&mut self, id: u64) -> StoreResult<Option<Refund>> {
        self.one(
            concat!("SELECT ", refund_columns!(), " FROM refunds WHERE id = $1"),
            &[&bigint(id, "refund id")?],
            refund_from_row,
        )
    }

    fn refund_by_out_refund_no(
        &mut self,
        merchant_id: u64,
        out_refund_no: &str,
    ) -> StoreResult<Option<Refund>> {
        self.one(
            concat!(
                "SELECT ",
                refund_columns!(),
                " FROM refunds WHERE merchant_id = $1 AND out_refund_no = $2"
            ),
            &[&bigint(merchant_id, "merchant id")?, &out_refund_no],
            refund_from_row,
        )
    }

    fn refunds_of_order(&mut self, order_id: u64) -> StoreResult<Vec<Refund>> {
        self.many(
            concat!(
                "SELECT ",
                refund_columns!(),
                " FROM refunds WHERE order_id = $1 ORDER BY id"
            ),
            &[&bigint(order_id, "order id")?],
            refund_from_row,
        )
    }

    fn refunds_between(
        &mut self,
        merchant_id: u64,
        from: u64,
        to: u64,
    ) -> StoreResult<Vec<Refund>> {
        self.many(
            concat!(
                "SELECT ",
                refund_columns!(),
                " FROM refunds WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3 \
                 ORDER BY created_at, id"
            ),
            &[
                &bigint(merchant_id, "merchant id")?,
                &bigint(from, "time")?,
                &bigint(to, "time")?,
            ],
            refund_from_row,
        )
    }

    fn p2p_transfer(&mut self, id: u64) -> StoreResult<Option<P2pTransfer>> {
        self.one(
            "SELECT id, from_user_id, to_user_id, amount, currency, note, created_at
               FROM p2p_transfers WHERE id = $1",
            &[&bigint(id, "P2P transfer id")?],
            p2p_from_row,
        )
    }

    fn card(&mut self, id: u64) -> StoreResult<Option<Card>> {
        self.one(
            concat!("SELECT ", card_columns!(), " FROM cards WHERE id = $1"),
            &[&bigint(id, "card id")?],
            card_from_row,
        )
    }

    fn cards(&mut self, user_id: u64) -> StoreResult<Vec<Card>> {
        self.many(
            concat!(
                "SELECT ",
                card_columns!(),
                " FROM cards WHERE user_id = $1 ORDER BY id"
            ),
            &[&bigint(user_id, "user id")?],
            card_from_row,
        )
    }

    fn bank_transfer(&mut self, id: u64) -> StoreResult<Option<BankTransfer>> {
        self.one(
            concat!(
                "SELECT ",
                bank_columns!(),
                " FROM bank_transfers WHERE id = $1"
            ),
            &[&bigint(id, "bank transfer id")?],
            bank_from_row,
        )
    }

    fn bank_transfers_pending(&mut self, limit: usize) -> StoreResult<Vec<BankTransfer>> {
        self.many(
            concat!(
                "SELECT ",
                bank_columns!(),
                " FROM bank_transfers WHERE state = 'pending' ORDER BY id LIMIT $1"
            ),
            &[&page_limit(limit)],
            bank_from_row,
        )
    }

    fn events(
        &mut self,
        merchant_id: u64,
        after_id: u64,
        limit: usize,
    ) -> StoreResult<Vec<StoredEvent>> {
        self.many(
            concat!(
                "SELECT ",
                event_columns!(),
                " FROM events WHERE merchant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            ),
            &[
                &bigint(merchant_id, "merchant id")?,
                &bigint(after_id, "event id")?,
                &page_limit(limit),
            ],
            event_from_row,
        )
    }

    fn events_recent(&mut self, limit: usize) -> StoreResult<Vec<StoredEvent>> {
        self.many(
            concat!(
                "SELECT ",
                event_columns!(),
                " FROM events ORDER BY id DESC LIMIT $1"
            ),
            &[&page_limit(limit)],
            event_from_row,
        )
    }

    fn events_due(&mut self, now: u64, limit: usize) -> StoreResult<Vec<StoredEvent>> {
        self.many(
            concat!(
                "SELECT ",
                event_columns!(),
                " FROM events WHERE delivery = 'pending' AND next_attempt_at <= $1 \
                 ORDER BY next_attempt_at LIMIT $2"
            ),
            // A time past every stored one asks for everything due.
            &[&i64::try_from(now).unwrap_or(i64::MAX), &page_limit(limit)],
            event_from_row,
        )
    }

    fn idempotency(
        &mut self,
        principal: &str,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        self.one(
            "SELECT principal, key, request_digest, status, response, created_at
               FROM idempotency_keys WHERE principal = $1 AND key = $2",
            &[&principal, &key],
            idempotency_from_row,
        )
    }

    fn orders_awaiting_payer(&mut self, user_id: u64, limit: usize) -> StoreResult<Vec<Order>> {
        self.many(
            concat!(
                "SELECT ",
                order_columns!(),
                " FROM orders WHERE payer_user_id = $1 AND state = 'NOTPAY' \
                 ORDER BY id DESC LIMIT $2"
            ),
            &[&bigint(user_id, "user id")?, &page_limit(limit)],
            order_from_row,
        )
    }

    fn merchant_code(&mut self, id: u64) -> StoreResult<Option<MerchantCode>> {
        self.one(
            concat!(
                "SELECT ",
                code_columns!(),
                " FROM merchant_codes WHERE id = $1"
            ),
            &[&bigint(id, "merchant code id")?],
            code_from_row,
        )
    }

    fn merchant_codes(
        &mut self,
        merchant_id: u64,
        after_id: u64,
        limit: usize,
    ) -> StoreResult<Vec<MerchantCode>> {
        self.many(
            concat!(
                "SELECT ",
                code_columns!(),
                " FROM merchant_codes WHERE merchant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            ),
            &[
                &bigint(merchant_id, "merchant id")?,
                &bigint(after_id, "merchant code id")?,
                &page_limit(limit),
            ],
            code_from_row,
        )
    }

    fn code_reports(&mut self, code_id: u64) -> StoreResult<Vec<CodeReport>> {
        self.many(
            concat!(
                "SELECT ",
                report_columns!(),
                " FROM code_reports WHERE code_id = $1 ORDER BY id LIMIT $2"
            ),
            &[
                &bigint(code_id, "merchant code id")?,
                &page_limit(RECORD_PAGE_LIMIT_MAX),
            ],
            report_from_row,
        )
    }

    fn code_reports_recent(&mut self, limit: usize) -> StoreResult<Vec<CodeReport>> {
        self.many(
            concat!(
                "SELECT ",
                report_columns!(),
                " FROM code_reports ORDER BY id DESC LIMIT $1"
            ),
            &[&page_limit(limit)],
            report_from_row,
        )
    }

    fn payment_device(&mut self, id: u64) -> StoreResult<Option<PaymentDevice>> {
        self.one(
            concat!(
                "SELECT ",
                device_columns!(),
                " FROM payment_devices WHERE id = $1"
            ),
            &[&bigint(id, "payment device id")?],
            device_from_row,
        )
    }

    fn payment_device_by_number(&mut self, number: u32) -> StoreResult<Option<PaymentDevice>> {
        // Stored numbers have eight digits at most: a larger one is no device's.
        let Ok(number) = i32::try_from(number) else {
            return Ok(None);
        };
        self.one(
            concat!(
                "SELECT ",
                device_columns!(),
                " FROM payment_devices WHERE number = $1"
            ),
            &[&number],
            device_from_row,
        )
    }

    fn group(&mut self, id: u64) -> StoreResult<Option<Group>> {
        self.one(
            concat!("SELECT ", group_columns!(), " FROM groups WHERE id = $1"),
            &[&bigint(id, "group id")?],
            group_from_row,
        )
    }

    fn group_members(&mut self, group_id: u64) -> StoreResult<Vec<GroupMember>> {
        self.many(
            "SELECT group_id, user_id, joined_at FROM group_members WHERE group_id = $1
             ORDER BY user_id",
            &[&bigint(group_id, "group id")?],
            member_from_row,
        )
    }

    fn groups_of_user(&mut self, user_id: u64) -> StoreResult<Vec<Group>> {
        self.many(
            concat!(
                "SELECT ",
                group_columns!(),
                " FROM groups WHERE id IN (SELECT group_id FROM group_members WHERE user_id = $1)
                 ORDER BY id LIMIT $2"
            ),
            &[
                &bigint(user_id, "user id")?,
                &page_limit(RECORD_PAGE_LIMIT_MAX),
            ],
            group_from_row,
        )
    }

    fn envelope(&mut self, id: u64) -> StoreResult<Option<Envelope>> {
        self.one(
            concat!(
                "SELECT ",
                envelope_columns!(),
                " FROM envelopes WHERE id = $1"
            ),
            &[&bigint(id, "envelope id")?],
            envelope_from_row,
        )
    }

    fn escrow(&mut self, order_id: u64) -> StoreResult<Option<Escrow>> {
        self.one(
            concat!(
                "SELECT ",
                escrow_columns!(),
                " FROM escrows WHERE order_id = $1"
            ),
            &[&bigint(order_id, "order id")?],
            escrow_from_row,
        )
    }

    fn escrows_due(&mut self, now: u64, limit: usize) -> StoreResult<Vec<Escrow>> {
        self.many(
            concat!(
                "SELECT ",
                escrow_columns!(),
                " FROM escrows WHERE due_at <= $1 ORDER BY due_at LIMIT $2"
            ),
            &[&bigint(now, "time")?, &page_limit(limit)],
            escrow_from_row,
        )
    }

    fn envelopes_due(&mut self, now: u64, limit: usize) -> StoreResult<Vec<Envelope>> {
        self.many(
            concat!(
                "SELECT ",
                envelope_columns!(),
                " FROM envelopes WHERE state = 'open' AND expires_at <= $1
                 ORDER BY expires_at LIMIT $2"
            ),
            &[&bigint(now, "time")?, &page_limit(limit)],
            envelope_from_row,
        )
    }

    fn payment_devices(&mut self, user_id: u64) -> StoreResult<Vec<PaymentDevice>> {
        self.many(
            concat!(
                "SELECT ",
                device_columns!(),
                " FROM payment_devices WHERE user_id = $1 ORDER BY id LIMIT $2"
            ),
            &[
                &bigint(user_id, "user id")?,
                &page_limit(RECORD_PAGE_LIMIT_MAX),
            ],
            device_from_row,
        )
    }

    fn code_use(&mut self, device_id: u64, step: u64, slot: u8) -> StoreResult<Option<CodeUse>> {
        self.one(
            "SELECT device_id, step, slot, order_id, created_at FROM code_uses
              WHERE device_id = $1 AND step = $2 AND slot = $3",
            &[
                &bigint(device_id, "payment device id")?,
                &bigint(step, "code time step")?,
                &i16::from(slot),
            ],
            code_use_from_row,
        )
    }

    fn invoice(&mut self, id: u64) -> StoreResult<Option<Invoice>> {
        self.one(
            concat!(
                "SELECT ",
                invoice_columns!(),
                " FROM invoices WHERE id = $1"
            ),
            &[&bigint(id, "invoice id")?],
            invoice_from_row,
        )
    }

    fn invoices(
        &mut self,
        merchant_id: u64,
        after_id: u64,
        limit: usize,
    ) -> StoreResult<Vec<Invoice>> {
        self.many(
            concat!(
                "SELECT ",
                invoice_columns!(),
                " FROM invoices WHERE merchant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            ),
            &[
                &bigint(merchant_id, "merchant id")?,
                &bigint(after_id, "invoice id")?,
                &page_limit(limit),
            ],
            invoice_from_row,
        )
    }

    fn invoices_by_number(
        &mut self,
        seller_tax_id: &str,
        number: &str,
    ) -> StoreResult<Vec<Invoice>> {
        self.many(
            concat!(
                "SELECT ",
                invoice_columns!(),
                " FROM invoices WHERE seller_tax_id = $1 AND number = $2 ORDER BY id LIMIT $3"
            ),
            &[&seller_tax_id, &number, &page_limit(RECORD_PAGE_LIMIT_MAX)],
            invoice_from_row,
        )
    }

    fn invoices_of_order(&mut self, order_id: u64) -> StoreResult<Vec<Invoice>> {
        self.many(
            concat!(
                "SELECT ",
                invoice_columns!(),
                " FROM invoices WHERE order_id = $1 ORDER BY id LIMIT $2"
            ),
            &[
                &bigint(order_id, "order id")?,
                &page_limit(RECORD_PAGE_LIMIT_MAX),
            ],
            invoice_from_row,
        )
    }

    fn invoice_last(&mut self, merchant_id: u64) -> StoreResult<Option<Invoice>> {
        self.one(
            concat!(
                "SELECT ",
                invoice_columns!(),
                " FROM invoices WHERE merchant_id = $1 ORDER BY sequence DESC LIMIT 1"
            ),
            &[&bigint(merchant_id, "merchant id")?],
            invoice_from_row,
        )
    }

    fn invoice_reimbursement(
        &mut self,
        invoice_id: u64,
    ) -> StoreResult<Option<InvoiceReimbursement>> {
        self.one(
            "SELECT id, invoice_id, organisation, claim_reference, credential_id, created_at
               FROM invoice_reimbursements WHERE invoice_id = $1",
            &[&bigint(invoice_id, "invoice id")?],
            reimbursement_from_row,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The outbox's delivery progress.

const RECORD_DELIVERIES: &str = "
    UPDATE events SET delivery = u.delivery, attempts = u.attempts,
        next_attempt_at = u.next_attempt_at, last_result = u.last_result
      FROM unnest($1::int8[], $2::text[], $3::int8[], $4::int8[], $5::text[])
        AS u (id, delivery, attempts, next_attempt_at, last_result)
     WHERE events.id = u.id
    RETURNING events.id";

/// Writes the outbox's delivery progress on a pooled connection, in short transactions.
pub(crate) struct PostgresOutbox {
    client: PooledClient,
}

impl PostgresOutbox {
    pub(crate) fn new(client: PooledClient) -> Self {
        PostgresOutbox { client }
    }
}

impl OutboxWriter for PostgresOutbox {
    fn record_deliveries(&mut self, updates: &[DeliveryUpdate]) -> StoreResult<()> {
        if updates.is_empty() {
            return Ok(());
        }
        // The last update of each event, as updating them one after another would leave it.
        let updates = last_of_each(updates.iter().collect(), |update| update.event_id);
        let count = updates.len();
        let mut ids = Vec::with_capacity(count);
        let mut states = Vec::with_capacity(count);
        let mut attempts = Vec::with_capacity(count);
        let mut next = Vec::with_capacity(count);
        let mut results = Vec::with_capacity(count);
        for update in &updates {
            ids.push(bigint(update.event_id, "event id")?);
            states.push(update.delivery.as_str());
            attempts.push(i64::from(update.attempts));
            next.push(bigint(update.next_attempt_at, "time")?);
            results.push(update.last_result.as_deref());
        }
        let statement = self.client.statement(RECORD_DELIVERIES)?;
        self.client.with(|client| {
            let mut transaction = client.transaction().map_err(map_error)?;
            let updated = transaction
                .query(&statement, &[&ids, &states, &attempts, &next, &results])
                .map_err(map_error)?;
            if updated.len() != count {
                let found: Vec<i64> = updated
                    .iter()
                    .map(|row| get::<i64>(row, 0))
                    .collect::<StoreResult<_>>()?;
                let missing: Vec<String> = ids
                    .iter()
                    .filter(|id| !found.contains(id))
                    .map(ToString::to_string)
                    .collect();
                // Dropping the transaction rolls it back: no update of the list is kept.
                return Err(StoreError::corrupt(format!(
                    "no event {} to record a delivery of",
                    missing.join(", ")
                )));
            }
            transaction.commit().map_err(map_error)
        })
    }
}
