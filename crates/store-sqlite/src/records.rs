//! Business records: written inside the batch's transaction (`write_records`), read by
//! [`SqliteRecords`], and the outbox's delivery progress written by [`SqliteOutbox`].

use rusqlite::{params, Connection, OptionalExtension, Row, ToSql};
use store::{
    from_i64, to_i64, BankDirection, BankTransfer, BankTransferState, BillPayment,
    BillPaymentState, Biller, BillerCategory, BusinessEvent, Card, CardState, CheckDigit, Claim,
    CodeKind, CodeReport, CodeState, CodeUse, DeliveryState, DeliveryUpdate, DeviceState, Envelope,
    EnvelopeKind, EnvelopeState, Escrow, EscrowState, Group, GroupMember, IdempotencyRecord,
    Invoice, InvoiceKind, InvoiceReimbursement, InvoiceState, Merchant, MerchantCode, MerchantKey,
    Order, OrderState, OutboxWriter, Outlet, OutletKind, P2pTransfer, PaymentDevice, Record,
    RecordReader, ReferenceCharset, Refund, SavedBiller, SavedBillerState, StoreError, StoreResult,
    StoredEvent, RECORD_PAGE_LIMIT_MAX,
};

use crate::map_error;

/// The head of an order's INSERT, all columns.
macro_rules! order_insert {
    () => {
        "INSERT INTO orders (id, merchant_id, outlet_id, out_trade_no, amount,
            currency, description, notify_url, state, payer_user_id, fee, refunded,
            created_at, expires_at, paid_at, closed_at, version, payment_transfer_id, escrow)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
            ?17, ?18, ?19)"
    };
}

fn int(value: u64) -> i64 {
    i64::try_from(value).expect("record values fit i64")
}

fn unsigned(value: i64) -> rusqlite::Result<u64> {
    u64::try_from(value).map_err(|_| corrupt_column("a negative value"))
}

fn corrupt_column(what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Integer,
        format!("stored record holds {what}").into(),
    )
}

fn get_u64(row: &Row<'_>, index: usize) -> rusqlite::Result<u64> {
    unsigned(row.get(index)?)
}

fn get_opt_u64(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<u64>> {
    row.get::<_, Option<i64>>(index)?.map(unsigned).transpose()
}

fn get_u128(row: &Row<'_>, index: usize) -> rusqlite::Result<u128> {
    from_i64(row.get(index)?, "id").map_err(|_| corrupt_column("a negative id"))
}

fn get_digest(row: &Row<'_>, index: usize) -> rusqlite::Result<[u8; 32]> {
    let bytes: Vec<u8> = row.get(index)?;
    bytes
        .try_into()
        .map_err(|_| corrupt_column("a digest that is not 32 bytes"))
}

fn limit(limit: usize) -> i64 {
    int(limit.min(RECORD_PAGE_LIMIT_MAX) as u64)
}

/// A stored name read back as its enum; an unknown name means the row was tampered with.
fn named<T>(text: &str, parse: fn(&str) -> Option<T>, what: &str) -> rusqlite::Result<T> {
    parse(text).ok_or_else(|| corrupt_column(what))
}

/// Writes a batch's records, in order, inside its transaction; answers the claims refused
/// (indices into `claims`).
pub(crate) fn write_records(
    connection: &Connection,
    records: &[Record],
    claims: &[Claim],
) -> StoreResult<Vec<usize>> {
    let mut refused = Vec::new();
    let mut next = 0;
    for (index, claim) in claims.iter().enumerate() {
        let run = records
            .get(claim.first..claim.first.saturating_add(claim.count))
            .filter(|_| claim.first >= next && claim.count > 0)
            .ok_or_else(|| StoreError::corrupt(format!("claim {claim:?} out of place")))?;
        for record in &records[next..claim.first] {
            write_record(connection, record)?;
        }
        let Record::Order(order) = &run[0] else {
            return Err(StoreError::corrupt(format!(
                "claim {claim:?} does not start with an order"
            )));
        };
        let inserted = write_order(
            connection,
            order,
            concat!(order_insert!(), " ON CONFLICT DO NOTHING"),
        )?;
        if inserted == 1 {
            for record in &run[1..] {
                write_record(connection, record)?;
            }
        } else {
            refused.push(index);
        }
        next = claim.first + claim.count;
    }
    for record in &records[next..] {
        write_record(connection, record)?;
    }
    Ok(refused)
}

/// Runs `sql` (an [`order_insert!`] with its conflict clause) for `order`; the rows changed.
fn write_order(connection: &Connection, order: &Order, sql: &str) -> StoreResult<usize> {
    connection
        .prepare_cached(sql)
        .map_err(map_error)?
        .execute(params![
            int(order.id),
            int(order.merchant_id),
            order.outlet_id.map(int),
            order.out_trade_no,
            int(order.amount),
            order.currency,
            order.description,
            order.notify_url,
            order.state.as_str(),
            order.payer_user_id.map(int),
            int(order.fee),
            int(order.refunded),
            int(order.created_at),
            int(order.expires_at),
            order.paid_at.map(int),
            order.closed_at.map(int),
            order.version,
            to_i64(order.payment_transfer_id),
            order.escrow
        ])
        .map_err(map_error)
}

fn execute(connection: &Connection, sql: &str, values: &[&dyn ToSql]) -> StoreResult<()> {
    connection
        .prepare_cached(sql)
        .map_err(map_error)?
        .execute(values)
        .map_err(map_error)?;
    Ok(())
}

fn write_record(connection: &Connection, record: &Record) -> StoreResult<()> {
    match record {
        Record::Merchant(merchant) => execute(
            connection,
            "INSERT OR REPLACE INTO merchants (id, name, mcc, country, city,
                settlement_account, fee_rate_bps, account_id, notify_key, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                int(merchant.id),
                merchant.name,
                merchant.mcc,
                merchant.country,
                merchant.city,
                merchant.settlement_account,
                merchant.fee_rate_bps,
                to_i64(merchant.account_id),
                &merchant.notify_key[..],
                int(merchant.created_at)
            ],
        ),
        Record::MerchantKey(key) => execute(
            connection,
            "INSERT OR REPLACE INTO merchant_keys (id, merchant_id, signing_key, created_at,
                revoked_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                int(key.id),
                int(key.merchant_id),
                &key.signing_key[..],
                int(key.created_at),
                key.revoked_at.map(int)
            ],
        ),
        Record::Outlet(outlet) => execute(
            connection,
            "INSERT OR REPLACE INTO outlets (id, merchant_id, kind, parent_id, name, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                int(outlet.id),
                int(outlet.merchant_id),
                outlet.kind.as_str(),
                outlet.parent_id.map(int),
                outlet.name,
                int(outlet.created_at)
            ],
        ),
        // An order changes its state, payer, fee and times in place: an UPDATE touches only
        // the indexes over those columns (a REPLACE deletes and re-inserts the row in every
        // index), and costs less than an upsert, which builds the whole row to insert first.
        Record::Order(order) => {
            let updated = connection
                .prepare_cached(
                    "UPDATE orders SET state = ?2, payer_user_id = ?3, fee = ?4, refunded = ?5,
                        paid_at = ?6, closed_at = ?7, version = ?8, notify_url = ?9,
                        description = ?10, expires_at = ?11
                     WHERE id = ?1",
                )
                .map_err(map_error)?
                .execute(params![
                    int(order.id),
                    order.state.as_str(),
                    order.payer_user_id.map(int),
                    int(order.fee),
                    int(order.refunded),
                    order.paid_at.map(int),
                    order.closed_at.map(int),
                    order.version,
                    order.notify_url,
                    order.description,
                    int(order.expires_at),
                ])
                .map_err(map_error)?;
            if updated == 0 {
                write_order(connection, order, order_insert!())?;
            }
            Ok(())
        }
        Record::Refund(refund) => execute(
            connection,
            "INSERT OR REPLACE INTO refunds (id, order_id, merchant_id, out_refund_no, amount,
                fee_refunded, reason, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                int(refund.id),
                int(refund.order_id),
                int(refund.merchant_id),
                refund.out_refund_no,
                int(refund.amount),
                int(refund.fee_refunded),
                refund.reason,
                int(refund.created_at)
            ],
        ),
        Record::P2pTransfer(transfer) => execute(
            connection,
            "INSERT OR REPLACE INTO p2p_transfers (id, from_user_id, to_user_id, amount,
                currency, note, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                int(transfer.id),
                int(transfer.from_user_id),
                int(transfer.to_user_id),
                int(transfer.amount),
                transfer.currency,
                transfer.note,
                int(transfer.created_at)
            ],
        ),
        Record::Card(card) => execute(
            connection,
            "INSERT OR REPLACE INTO cards (id, user_id, token, bin, last4, bank, state,
                created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                int(card.id),
                int(card.user_id),
                card.token,
                card.bin,
                card.last4,
                card.bank,
                card.state.as_str(),
                int(card.created_at)
            ],
        ),
        Record::BankTransfer(transfer) => execute(
            connection,
            "INSERT OR REPLACE INTO bank_transfers (id, user_id, card_id, direction, amount,
                currency, state, bank_reference, failure, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                int(transfer.id),
                int(transfer.user_id),
                int(transfer.card_id),
                transfer.direction.as_str(),
                int(transfer.amount),
                transfer.currency,
                transfer.state.as_str(),
                transfer.bank_reference,
                transfer.failure,
                int(transfer.created_at),
                int(transfer.updated_at)
            ],
        ),
        Record::Event(event) => {
            let state = if event.notify_url.is_some() {
                DeliveryState::Pending
            } else {
                DeliveryState::None
            };
            execute(
                connection,
                "INSERT INTO events (id, merchant_id, object_id, object_sequence, kind, payload,
                    notify_url, created_at, delivery, next_attempt_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?8)",
                params![
                    int(event.id),
                    int(event.merchant_id),
                    int(event.object_id),
                    event.object_sequence,
                    event.kind,
                    event.payload,
                    event.notify_url,
                    int(event.created_at),
                    state.as_str()
                ],
            )
        }
        Record::MerchantCode(code) => execute(
            connection,
            "INSERT OR REPLACE INTO merchant_codes (id, merchant_id, outlet_id, order_id, kind,
                payload, registration_id, state, created_at, expires_at, updated_at, notify_url)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                int(code.id),
                int(code.merchant_id),
                code.outlet_id.map(int),
                code.order_id.map(int),
                code.kind.as_str(),
                code.payload,
                int(code.registration_id),
                code.state.as_str(),
                int(code.created_at),
                code.expires_at.map(int),
                int(code.updated_at),
                code.notify_url
            ],
        ),
        Record::CodeReport(report) => execute(
            connection,
            "INSERT INTO code_reports (id, code_id, payload_digest, payload, user_id, reason,
                created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                int(report.id),
                report.code_id.map(int),
                &report.payload_digest[..],
                report.payload,
                int(report.user_id),
                report.reason,
                int(report.created_at)
            ],
        ),
        Record::PaymentDevice(device) => execute(
            connection,
            // An upsert by id only: a number another device holds fails the batch instead of
            // replacing that device.
            "INSERT INTO payment_devices (id, user_id, number, secret, name, state, created_at,
                revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id,
                number = excluded.number, secret = excluded.secret, name = excluded.name,
                state = excluded.state, created_at = excluded.created_at,
                revoked_at = excluded.revoked_at",
            params![
                int(device.id),
                int(device.user_id),
                device.number,
                &device.secret[..],
                device.name,
                device.state.as_str(),
                int(device.created_at),
                device.revoked_at.map(int)
            ],
        ),
        Record::CodeUse(code_use) => execute(
            connection,
            "INSERT INTO code_uses (device_id, step, slot, order_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                int(code_use.device_id),
                int(code_use.step),
                code_use.slot,
                int(code_use.order_id),
                int(code_use.created_at)
            ],
        ),
        Record::Group(group) => execute(
            connection,
            "INSERT OR REPLACE INTO groups (id, owner_user_id, name, created_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                int(group.id),
                int(group.owner_user_id),
                group.name,
                int(group.created_at)
            ],
        ),
        Record::GroupMember(member) => execute(
            connection,
            "INSERT INTO group_members (group_id, user_id, joined_at) VALUES (?1, ?2, ?3)",
            params![
                int(member.group_id),
                int(member.user_id),
                int(member.joined_at)
            ],
        ),
        Record::Envelope(envelope) => execute(
            connection,
            "INSERT INTO envelopes (id, sender_user_id, group_id, recipient_user_id, kind, total,
                currency, packets, greeting, registration_id, state, created_at, expires_at,
                returned, closed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
             ON CONFLICT (id) DO UPDATE SET state = excluded.state,
                returned = excluded.returned, closed_at = excluded.closed_at",
            params![
                int(envelope.id),
                int(envelope.sender_user_id),
                envelope.group_id.map(int),
                envelope.recipient_user_id.map(int),
                envelope.kind.as_str(),
                int(envelope.total),
                envelope.currency,
                store::envelope_packets_text(&envelope.packets),
                envelope.greeting,
                int(envelope.registration_id),
                envelope.state.as_str(),
                int(envelope.created_at),
                int(envelope.expires_at),
                int(envelope.returned),
                envelope.closed_at.map(int)
            ],
        ),
        Record::Escrow(escrow) => execute(
            connection,
            "INSERT OR REPLACE INTO escrows (order_id, merchant_id, buyer_user_id, amount, state,
                carrier, tracking_no, ship_by, shipped_at, release_at, due_at, dispute_reason,
                dispute_evidence, released, refunded, settled_by, note, created_at, updated_at,
                version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                ?18, ?19, ?20)",
            params![
                int(escrow.order_id),
                int(escrow.merchant_id),
                int(escrow.buyer_user_id),
                int(escrow.amount),
                escrow.state.as_str(),
                escrow.carrier,
                escrow.tracking_no,
                int(escrow.ship_by),
                escrow.shipped_at.map(int),
                escrow.release_at.map(int),
                escrow.due_at.map(int),
                escrow.dispute_reason,
                escrow.dispute_evidence,
                int(escrow.released),
                int(escrow.refunded),
                escrow.settled_by,
                escrow.note,
                int(escrow.created_at),
                int(escrow.updated_at),
                escrow.version
            ],
        ),
        Record::Biller(biller) => execute(
            connection,
            // An upsert by id only: a code another biller holds fails the batch instead of
            // replacing that biller.
            "INSERT INTO billers (id, code, name, category, reference_label, reference_charset,
                reference_length_min, reference_length_max, reference_prefix, check_digit,
                denominations, account_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT (id) DO UPDATE SET code = excluded.code, name = excluded.name,
                category = excluded.category, reference_label = excluded.reference_label,
                reference_charset = excluded.reference_charset,
                reference_length_min = excluded.reference_length_min,
                reference_length_max = excluded.reference_length_max,
                reference_prefix = excluded.reference_prefix,
                check_digit = excluded.check_digit, denominations = excluded.denominations,
                account_id = excluded.account_id, created_at = excluded.created_at",
            params![
                int(biller.id),
                biller.code,
                biller.name,
                biller.category.as_str(),
                biller.reference_label,
                biller.reference_charset.as_str(),
                biller.reference_length_min,
                biller.reference_length_max,
                biller.reference_prefix,
                biller.check_digit.as_str(),
                store::denominations_text(&biller.denominations),
                to_i64(biller.account_id),
                int(biller.created_at)
            ],
        ),
        Record::BillPayment(payment) => execute(
            connection,
            "INSERT INTO bill_payments (id, user_id, biller_id, reference, amount, currency,
                state, customer_name, confirmation, failure, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (id) DO UPDATE SET state = excluded.state,
                customer_name = excluded.customer_name, confirmation = excluded.confirmation,
                failure = excluded.failure, updated_at = excluded.updated_at",
            params![
                int(payment.id),
                int(payment.user_id),
                int(payment.biller_id),
                payment.reference,
                int(payment.amount),
                payment.currency,
                payment.state.as_str(),
                payment.customer_name,
                payment.confirmation,
                payment.failure,
                int(payment.created_at),
                int(payment.updated_at)
            ],
        ),
        Record::SavedBiller(saved) => execute(
            connection,
            // By id only: a second active entry for the same biller and reference fails the
            // batch instead of replacing the first.
            "INSERT INTO saved_billers (id, user_id, biller_id, reference, nickname, state,
                created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id,
                biller_id = excluded.biller_id, reference = excluded.reference,
                nickname = excluded.nickname, state = excluded.state,
                created_at = excluded.created_at, updated_at = excluded.updated_at",
            params![
                int(saved.id),
                int(saved.user_id),
                int(saved.biller_id),
                saved.reference,
                saved.nickname,
                saved.state.as_str(),
                int(saved.created_at),
                int(saved.updated_at)
            ],
        ),
        Record::Invoice(invoice) => execute(
            connection,
            // An upsert by id that changes the state only: an invoice's content never changes,
            // and a number, order or original another invoice holds fails the batch instead
            // of replacing it.
            "INSERT INTO invoices (id, merchant_id, order_id, kind, sequence, number,
                original_id, seller_tax_id, buyer_name, buyer_tax_id, currency, amount, tax,
                total, document, digest, registration_id, state, issued_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                ?17, ?18, ?19, ?20)
             ON CONFLICT (id) DO UPDATE SET state = excluded.state,
                updated_at = excluded.updated_at",
            params![
                int(invoice.id),
                int(invoice.merchant_id),
                int(invoice.order_id),
                invoice.kind.as_str(),
                int(invoice.sequence),
                invoice.number,
                invoice.original_id.map(int),
                invoice.seller_tax_id,
                invoice.buyer_name,
                invoice.buyer_tax_id,
                invoice.currency,
                invoice.amount,
                invoice.tax,
                invoice.total,
                invoice.document,
                &invoice.digest[..],
                int(invoice.registration_id),
                invoice.state.as_str(),
                int(invoice.issued_at),
                int(invoice.updated_at)
            ],
        ),
        Record::InvoiceReimbursement(reimbursement) => execute(
            connection,
            "INSERT INTO invoice_reimbursements (id, invoice_id, organisation, claim_reference,
                credential_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                int(reimbursement.id),
                int(reimbursement.invoice_id),
                reimbursement.organisation,
                reimbursement.claim_reference,
                int(reimbursement.credential_id),
                int(reimbursement.created_at)
            ],
        ),
        Record::Idempotency(record) => execute(
            connection,
            "INSERT INTO idempotency_keys (principal, key, request_digest, status, response,
                created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                record.principal,
                record.key,
                &record.request_digest[..],
                record.status,
                record.response,
                int(record.created_at)
            ],
        ),
    }
}

const CODE_COLUMNS: &str = "id, merchant_id, outlet_id, order_id, kind, payload, registration_id,
     state, created_at, expires_at, updated_at, notify_url";

fn code_from_row(row: &Row<'_>) -> rusqlite::Result<MerchantCode> {
    let kind: String = row.get(4)?;
    let state: String = row.get(7)?;
    Ok(MerchantCode {
        id: get_u64(row, 0)?,
        merchant_id: get_u64(row, 1)?,
        outlet_id: get_opt_u64(row, 2)?,
        order_id: get_opt_u64(row, 3)?,
        kind: named(&kind, CodeKind::parse, "an unknown code kind")?,
        payload: row.get(5)?,
        registration_id: get_u64(row, 6)?,
        state: named(&state, CodeState::parse, "an unknown code state")?,
        created_at: get_u64(row, 8)?,
        expires_at: get_opt_u64(row, 9)?,
        updated_at: get_u64(row, 10)?,
        notify_url: row.get(11)?,
    })
}

const REPORT_COLUMNS: &str = "id, code_id, payload_digest, payload, user_id, reason, created_at";

fn report_from_row(row: &Row<'_>) -> rusqlite::Result<CodeReport> {
    Ok(CodeReport {
        id: get_u64(row, 0)?,
        code_id: get_opt_u64(row, 1)?,
        payload_digest: get_digest(row, 2)?,
        payload: row.get(3)?,
        user_id: get_u64(row, 4)?,
        reason: row.get(5)?,
        created_at: get_u64(row, 6)?,
    })
}

const DEVICE_COLUMNS: &str = "id, user_id, number, secret, name, state, created_at, revoked_at";

fn device_from_row(row: &Row<'_>) -> rusqlite::Result<PaymentDevice> {
    let state: String = row.get(5)?;
    Ok(PaymentDevice {
        id: get_u64(row, 0)?,
        user_id: get_u64(row, 1)?,
        number: row.get(2)?,
        secret: get_digest(row, 3)?,
        name: row.get(4)?,
        state: named(&state, DeviceState::parse, "an unknown device state")?,
        created_at: get_u64(row, 6)?,
        revoked_at: get_opt_u64(row, 7)?,
    })
}

fn code_use_from_row(row: &Row<'_>) -> rusqlite::Result<CodeUse> {
    Ok(CodeUse {
        device_id: get_u64(row, 0)?,
        step: get_u64(row, 1)?,
        slot: row.get(2)?,
        order_id: get_u64(row, 3)?,
        created_at: get_u64(row, 4)?,
    })
}

const ESCROW_COLUMNS: &str = "order_id, merchant_id, buyer_user_id, amount, state, carrier,
     tracking_no, ship_by, shipped_at, release_at, due_at, dispute_reason, dispute_evidence,
     released, refunded, settled_by, note, created_at, updated_at, version";

fn escrow_from_row(row: &Row<'_>) -> rusqlite::Result<Escrow> {
    let state: String = row.get(4)?;
    Ok(Escrow {
        order_id: get_u64(row, 0)?,
        merchant_id: get_u64(row, 1)?,
        buyer_user_id: get_u64(row, 2)?,
        amount: get_u64(row, 3)?,
        state: named(&state, EscrowState::parse, "an unknown escrow state")?,
        carrier: row.get(5)?,
        tracking_no: row.get(6)?,
        ship_by: get_u64(row, 7)?,
        shipped_at: get_opt_u64(row, 8)?,
        release_at: get_opt_u64(row, 9)?,
        due_at: get_opt_u64(row, 10)?,
        dispute_reason: row.get(11)?,
        dispute_evidence: row.get(12)?,
        released: get_u64(row, 13)?,
        refunded: get_u64(row, 14)?,
        settled_by: row.get(15)?,
        note: row.get(16)?,
        created_at: get_u64(row, 17)?,
        updated_at: get_u64(row, 18)?,
        version: row.get(19)?,
    })
}

const GROUP_COLUMNS: &str = "id, owner_user_id, name, created_at";

fn group_from_row(row: &Row<'_>) -> rusqlite::Result<Group> {
    Ok(Group {
        id: get_u64(row, 0)?,
        owner_user_id: get_u64(row, 1)?,
        name: row.get(2)?,
        created_at: get_u64(row, 3)?,
    })
}

fn member_from_row(row: &Row<'_>) -> rusqlite::Result<GroupMember> {
    Ok(GroupMember {
        group_id: get_u64(row, 0)?,
        user_id: get_u64(row, 1)?,
        joined_at: get_u64(row, 2)?,
    })
}

const ENVELOPE_COLUMNS: &str = "id, sender_user_id, group_id, recipient_user_id, kind, total,
     currency, packets, greeting, registration_id, state, created_at, expires_at, returned,
     closed_at";

fn envelope_from_row(row: &Row<'_>) -> rusqlite::Result<Envelope> {
    let kind: String = row.get(4)?;
    let packets: String = row.get(7)?;
    let state: String = row.get(10)?;
    Ok(Envelope {
        id: get_u64(row, 0)?,
        sender_user_id: get_u64(row, 1)?,
        group_id: get_opt_u64(row, 2)?,
        recipient_user_id: get_opt_u64(row, 3)?,
        kind: named(&kind, EnvelopeKind::parse, "an unknown envelope kind")?,
        total: get_u64(row, 5)?,
        currency: row.get(6)?,
        packets: store::parse_envelope_packets(&packets)
            .ok_or_else(|| corrupt_column("envelope packets that are not amounts"))?,
        greeting: row.get(8)?,
        registration_id: get_u64(row, 9)?,
        state: named(&state, EnvelopeState::parse, "an unknown envelope state")?,
        created_at: get_u64(row, 11)?,
        expires_at: get_u64(row, 12)?,
        returned: get_u64(row, 13)?,
        closed_at: get_opt_u64(row, 14)?,
    })
}

const BILLER_COLUMNS: &str = "id, code, name, category, reference_label, reference_charset,
    reference_length_min, reference_length_max, reference_prefix, check_digit, denominations,
    account_id, created_at";

fn biller_from_row(row: &Row<'_>) -> rusqlite::Result<Biller> {
    let category: String = row.get(3)?;
    let charset: String = row.get(5)?;
    let check_digit: String = row.get(9)?;
    let denominations: String = row.get(10)?;
    Ok(Biller {
        id: get_u64(row, 0)?,
        code: row.get(1)?,
        name: row.get(2)?,
        category: named(
            &category,
            BillerCategory::parse,
            "an unknown biller category",
        )?,
        reference_label: row.get(4)?,
        reference_charset: named(&charset, ReferenceCharset::parse, "an unknown charset")?,
        reference_length_min: row.get(6)?,
        reference_length_max: row.get(7)?,
        reference_prefix: row.get(8)?,
        check_digit: named(&check_digit, CheckDigit::parse, "an unknown check digit")?,
        denominations: store::parse_denominations(&denominations)
            .ok_or_else(|| corrupt_column("unreadable denominations"))?,
        account_id: get_u128(row, 11)?,
        created_at: get_u64(row, 12)?,
    })
}

const BILL_PAYMENT_COLUMNS: &str = "id, user_id, biller_id, reference, amount, currency, state,
    customer_name, confirmation, failure, created_at, updated_at";

fn bill_payment_from_row(row: &Row<'_>) -> rusqlite::Result<BillPayment> {
    let state: String = row.get(6)?;
    Ok(BillPayment {
        id: get_u64(row, 0)?,
        user_id: get_u64(row, 1)?,
        biller_id: get_u64(row, 2)?,
        reference: row.get(3)?,
        amount: get_u64(row, 4)?,
        currency: row.get(5)?,
        state: named(
            &state,
            BillPaymentState::parse,
            "an unknown bill payment state",
        )?,
        customer_name: row.get(7)?,
        confirmation: row.get(8)?,
        failure: row.get(9)?,
        created_at: get_u64(row, 10)?,
        updated_at: get_u64(row, 11)?,
    })
}

const SAVED_BILLER_COLUMNS: &str =
    "id, user_id, biller_id, reference, nickname, state, created_at, updated_at";

fn saved_biller_from_row(row: &Row<'_>) -> rusqlite::Result<SavedBiller> {
    let state: String = row.get(5)?;
    Ok(SavedBiller {
        id: get_u64(row, 0)?,
        user_id: get_u64(row, 1)?,
        biller_id: get_u64(row, 2)?,
        reference: row.get(3)?,
        nickname: row.get(4)?,
        state: named(
            &state,
            SavedBillerState::parse,
            "an unknown saved biller state",
        )?,
        created_at: get_u64(row, 6)?,
        updated_at: get_u64(row, 7)?,
    })
}
const INVOICE_COLUMNS: &str = "id, merchant_id, order_id, kind, sequence, number, original_id,
     seller_tax_id, buyer_name, buyer_tax_id, currency, amount, tax, total, document, digest,
     registration_id, state, issued_at, updated_at";

fn invoice_from_row(row: &Row<'_>) -> rusqlite::Result<Invoice> {
    let kind: String = row.get(3)?;
    let state: String = row.get(17)?;
    Ok(Invoice {
        id: get_u64(row, 0)?,
        merchant_id: get_u64(row, 1)?,
        order_id: get_u64(row, 2)?,
        kind: named(&kind, InvoiceKind::parse, "an unknown invoice kind")?,
        sequence: get_u64(row, 4)?,
        number: row.get(5)?,
        original_id: get_opt_u64(row, 6)?,
        seller_tax_id: row.get(7)?,
        buyer_name: row.get(8)?,
        buyer_tax_id: row.get(9)?,
        currency: row.get(10)?,
        amount: row.get(11)?,
        tax: row.get(12)?,
        total: row.get(13)?,
        document: row.get(14)?,
        digest: get_digest(row, 15)?,
        registration_id: get_u64(row, 16)?,
        state: named(&state, InvoiceState::parse, "an unknown invoice state")?,
        issued_at: get_u64(row, 18)?,
        updated_at: get_u64(row, 19)?,
    })
}

fn reimbursement_from_row(row: &Row<'_>) -> rusqlite::Result<InvoiceReimbursement> {
    Ok(InvoiceReimbursement {
        id: get_u64(row, 0)?,
        invoice_id: get_u64(row, 1)?,
        organisation: row.get(2)?,
        claim_reference: row.get(3)?,
        credential_id: get_u64(row, 4)?,
        created_at: get_u64(row, 5)?,
    })
}

const MERCHANT_COLUMNS: &str =
    "id, name, mcc, country, city, settlement_account, fee_rate_bps, account_id, notify_key,
     created_at";

fn merchant_from_row(row: &Row<'_>) -> rusqlite::Result<Merchant> {
    Ok(Merchant {
        id: get_u64(row, 0)?,
        name: row.get(1)?,
        mcc: row.get(2)?,
        country: row.get(3)?,
        city: row.get(4)?,
        settlement_account: row.get(5)?,
        fee_rate_bps: row.get(6)?,
        account_id: get_u128(row, 7)?,
        notify_key: get_digest(row, 8)?,
        created_at: get_u64(row, 9)?,
    })
}

const KEY_COLUMNS: &str = "id, merchant_id, signing_key, created_at, revoked_at";

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<MerchantKey> {
    Ok(MerchantKey {
        id: get_u64(row, 0)?,
        merchant_id: get_u64(row, 1)?,
        signing_key: get_digest(row, 2)?,
        created_at: get_u64(row, 3)?,
        revoked_at: get_opt_u64(row, 4)?,
    })
}

const OUTLET_COLUMNS: &str = "id, merchant_id, kind, parent_id, name, created_at";

fn outlet_from_row(row: &Row<'_>) -> rusqlite::Result<Outlet> {
    let kind: String = row.get(2)?;
    Ok(Outlet {
        id: get_u64(row, 0)?,
        merchant_id: get_u64(row, 1)?,
        kind: named(&kind, OutletKind::parse, "an unknown outlet kind")?,
        parent_id: get_opt_u64(row, 3)?,
        name: row.get(4)?,
        created_at: get_u64(row, 5)?,
    })
}

const ORDER_COLUMNS: &str = "id, merchant_id, outlet_id, out_trade_no, amount, currency,
    description, notify_url, state, payer_user_id, fee, refunded, created_at, expires_at,
    paid_at, closed_at, version, payment_transfer_id, escrow";

fn order_from_row(row: &Row<'_>) -> rusqlite::Result<Order> {
    let state: String = row.get(8)?;
    Ok(Order {
        id: get_u64(row, 0)?,
        merchant_id: get_u64(row, 1)?,
        outlet_id: get_opt_u64(row, 2)?,
        out_trade_no: row.get(3)?,
        amount: get_u64(row, 4)?,
        currency: row.get(5)?,
        description: row.get(6)?,
        notify_url: row.get(7)?,
        state: named(&state, OrderState::parse, "an unknown order state")?,
        payer_user_id: get_opt_u64(row, 9)?,
        fee: get_u64(row, 10)?,
        refunded: get_u64(row, 11)?,
        created_at: get_u64(row, 12)?,
        expires_at: get_u64(row, 13)?,
        paid_at: get_opt_u64(row, 14)?,
        closed_at: get_opt_u64(row, 15)?,
        version: row.get(16)?,
        payment_transfer_id: get_u128(row, 17)?,
        escrow: row.get(18)?,
    })
}

const REFUND_COLUMNS: &str =
    "id, order_id, merchant_id, out_refund_no, amount, fee_refunded, reason, created_at";

fn refund_from_row(row: &Row<'_>) -> rusqlite::Result<Refund> {
    Ok(Refund {
        id: get_u64(row, 0)?,
        order_id: get_u64(row, 1)?,
        merchant_id: get_u64(row, 2)?,
        out_refund_no: row.get(3)?,
        amount: get_u64(row, 4)?,
        fee_refunded: get_u64(row, 5)?,
        reason: row.get(6)?,
        created_at: get_u64(row, 7)?,
    })
}

const CARD_COLUMNS: &str = "id, user_id, token, bin, last4, bank, state, created_at";

fn card_from_row(row: &Row<'_>) -> rusqlite::Result<Card> {
    let state: String = row.get(6)?;
    Ok(Card {
        id: get_u64(row, 0)?,
        user_id: get_u64(row, 1)?,
        token: row.get(2)?,
        bin: row.get(3)?,
        last4: row.get(4)?,
        bank: row.get(5)?,
        state: named(&state, CardState::parse, "an unknown card state")?,
        created_at: get_u64(row, 7)?,
    })
}

const BANK_COLUMNS: &str = "id, user_id, card_id, direction, amount, currency, state,
    bank_reference, failure, created_at, updated_at";

fn bank_from_row(row: &Row<'_>) -> rusqlite::Result<BankTransfer> {
    let direction: String = row.get(3)?;
    let state: String = row.get(6)?;
    Ok(BankTransfer {
        id: get_u64(row, 0)?,
        user_id: get_u64(row, 1)?,
        card_id: get_u64(row, 2)?,
        direction: named(&direction, BankDirection::parse, "an unknown direction")?,
        amount: get_u64(row, 4)?,
        currency: row.get(5)?,
        state: named(
            &state,
            BankTransferState::parse,
            "an unknown bank transfer state",
        )?,
        bank_reference: row.get(7)?,
        failure: row.get(8)?,
        created_at: get_u64(row, 9)?,
        updated_at: get_u64(row, 10)?,
    })
}

const EVENT_COLUMNS: &str = "id, merchant_id, object_id, object_sequence, kind, payload,
    notify_url, created_at, delivery, attempts, next_attempt_at, last_result";

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    let state: String = row.get(8)?;
    Ok(StoredEvent {
        event: BusinessEvent {
            id: get_u64(row, 0)?,
            merchant_id: get_u64(row, 1)?,
            object_id: get_u64(row, 2)?,
            object_sequence: row.get(3)?,
            kind: row.get(4)?,
            payload: row.get(5)?,
            notify_url: row.get(6)?,
            created_at: get_u64(row, 7)?,
        },
        delivery: named(&state, DeliveryState::parse, "an unknown delivery state")?,
        attempts: row.get(9)?,
        next_attempt_at: get_u64(row, 10)?,
        last_result: row.get(11)?,
    })
}

/// Reads business records on a read-only connection of its own.
pub(crate) struct SqliteRecords {
    connection: Connection,
}

impl SqliteRecords {
    pub(crate) fn new(connection: Connection) -> Self {
        SqliteRecords { connection }
    }

    fn one<T>(
        &self,
        sql: &str,
        values: &[&dyn ToSql],
        map: fn(&Row<'_>) -> rusqlite::Result<T>,
    ) -> StoreResult<Option<T>> {
        self.connection
            .prepare_cached(sql)
            .map_err(map_error)?
            .query_row(values, map)
            .optional()
            .map_err(map_error)
    }

    fn many<T>(
        &self,
        sql: &str,
        values: &[&dyn ToSql],
        map: fn(&Row<'_>) -> rusqlite::Result<T>,
    ) -> StoreResult<Vec<T>> {
        let mut statement = self.connection.prepare_cached(sql).map_err(map_error)?;
        let rows = statement.query_map(values, map).map_err(map_error)?;
        rows.collect::<rusqlite::Result<Vec<T>>>()
            .map_err(map_error)
    }
}

impl RecordReader for SqliteRecords {
    fn group(&mut self, id: u64) -> StoreResult<Option<Group>> {
        self.one(
            &format!("SELECT {GROUP_COLUMNS} FROM groups WHERE id = ?1"),
            params![int(id)],
            group_from_row,
        )
    }

    fn group_members(&mut self, group_id: u64) -> StoreResult<Vec<GroupMember>> {
        self.many(
            "SELECT group_id, user_id, joined_at FROM group_members WHERE group_id = ?1
             ORDER BY user_id",
            params![int(group_id)],
            member_from_row,
        )
    }

    fn groups_of_user(&mut self, user_id: u64) -> StoreResult<Vec<Group>> {
        self.many(
            &format!(
                "SELECT {GROUP_COLUMNS} FROM groups WHERE id IN
                    (SELECT group_id FROM group_members WHERE user_id = ?1)
                 ORDER BY id LIMIT {RECORD_PAGE_LIMIT_MAX}"
            ),
            params![int(user_id)],
            group_from_row,
        )
    }

    fn envelope(&mut self, id: u64) -> StoreResult<Option<Envelope>> {
        self.one(
            &format!("SELECT {ENVELOPE_COLUMNS} FROM envelopes WHERE id = ?1"),
            params![int(id)],
            envelope_from_row,
        )
    }

    fn escrow(&mut self, order_id: u64) -> StoreResult<Option<Escrow>> {
        self.one(
            &format!("SELECT {ESCROW_COLUMNS} FROM escrows WHERE order_id = ?1"),
            params![int(order_id)],
            escrow_from_row,
        )
    }

    fn escrows_due(&mut self, now: u64, count: usize) -> StoreResult<Vec<Escrow>> {
        self.many(
            &format!(
                "SELECT {ESCROW_COLUMNS} FROM escrows WHERE due_at <= ?1 ORDER BY due_at LIMIT ?2"
            ),
            params![int(now), limit(count)],
            escrow_from_row,
        )
    }

    fn envelopes_due(&mut self, now: u64, count: usize) -> StoreResult<Vec<Envelope>> {
        self.many(
            &format!(
                "SELECT {ENVELOPE_COLUMNS} FROM envelopes
                 WHERE state = 'open' AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2"
            ),
            params![int(now), limit(count)],
            envelope_from_row,
        )
    }
    fn invoice(&mut self, id: u64) -> StoreResult<Option<Invoice>> {
        self.one(
            &format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = ?1"),
            params![int(id)],
            invoice_from_row,
        )
    }

    fn invoices(
        &mut self,
        merchant_id: u64,
        after_id: u64,
        count: usize,
    ) -> StoreResult<Vec<Invoice>> {
        self.many(
            &format!(
                "SELECT {INVOICE_COLUMNS} FROM invoices WHERE merchant_id = ?1 AND id > ?2
                 ORDER BY id LIMIT ?3"
            ),
            params![int(merchant_id), int(after_id), limit(count)],
            invoice_from_row,
        )
    }

    fn invoices_by_number(
        &mut self,
        seller_tax_id: &str,
        number: &str,
    ) -> StoreResult<Vec<Invoice>> {
        self.many(
            &format!(
                "SELECT {INVOICE_COLUMNS} FROM invoices WHERE seller_tax_id = ?1 AND number = ?2
                 ORDER BY id LIMIT {RECORD_PAGE_LIMIT_MAX}"
            ),
            params![seller_tax_id, number],
            invoice_from_row,
        )
    }

    fn invoices_of_order(&mut self, order_id: u64) -> StoreResult<Vec<Invoice>> {
        self.many(
            &format!(
                "SELECT {INVOICE_COLUMNS} FROM invoices WHERE order_id = ?1 ORDER BY id
                 LIMIT {RECORD_PAGE_LIMIT_MAX}"
            ),
            params![int(order_id)],
            invoice_from_row,
        )
    }

    fn invoice_last(&mut self, merchant_id: u64) -> StoreResult<Option<Invoice>> {
        self.one(
            &format!(
                "SELECT {INVOICE_COLUMNS} FROM invoices WHERE merchant_id = ?1
                 ORDER BY sequence DESC LIMIT 1"
            ),
            params![int(merchant_id)],
            invoice_from_row,
        )
    }

    fn invoice_reimbursement(
        &mut self,
        invoice_id: u64,
    ) -> StoreResult<Option<InvoiceReimbursement>> {
        self.one(
            "SELECT id, invoice_id, organisation, claim_reference, credential_id, created_at
             FROM invoice_reimbursements WHERE invoice_id = ?1",
            params![int(invoice_id)],
            reimbursement_from_row,
        )
    }

    fn orders_awaiting_payer(&mut self, user_id: u64, count: usize) -> StoreResult<Vec<Order>> {
        self.many(
            &format!(
                "SELECT {ORDER_COLUMNS} FROM orders
                 WHERE payer_user_id = ?1 AND state = 'NOTPAY' ORDER BY id DESC LIMIT ?2"
            ),
            params![int(user_id), limit(count)],
            order_from_row,
        )
    }

    fn merchant_code(&mut self, id: u64) -> StoreResult<Option<MerchantCode>> {
        self.one(
            &format!("SELECT {CODE_COLUMNS} FROM merchant_codes WHERE id = ?1"),
            params![int(id)],
            code_from_row,
        )
    }

    fn merchant_codes(
        &mut self,
        merchant_id: u64,
        after_id: u64,
        count: usize,
    ) -> StoreResult<Vec<MerchantCode>> {
        self.many(
            &format!(
                "SELECT {CODE_COLUMNS} FROM merchant_codes
                 WHERE merchant_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
            ),
            params![int(merchant_id), int(after_id), limit(count)],
            code_from_row,
        )
    }

    fn code_reports(&mut self, code_id: u64) -> StoreResult<Vec<CodeReport>> {
        self.many(
            &format!(
                "SELECT {REPORT_COLUMNS} FROM code_reports WHERE code_id = ?1 ORDER BY id
                 LIMIT {RECORD_PAGE_LIMIT_MAX}"
            ),
            params![int(code_id)],
            report_from_row,
        )
    }

    fn code_reports_recent(&mut self, count: usize) -> StoreResult<Vec<CodeReport>> {
        self.many(
            &format!("SELECT {REPORT_COLUMNS} FROM code_reports ORDER BY id DESC LIMIT ?1"),
            params![limit(count)],
            report_from_row,
        )
    }

    fn payment_device(&mut self, id: u64) -> StoreResult<Option<PaymentDevice>> {
        self.one(
            &format!("SELECT {DEVICE_COLUMNS} FROM payment_devices WHERE id = ?1"),
            params![int(id)],
            device_from_row,
        )
    }

    fn payment_device_by_number(&mut self, number: u32) -> StoreResult<Option<PaymentDevice>> {
        self.one(
            &format!("SELECT {DEVICE_COLUMNS} FROM payment_devices WHERE number = ?1"),
            params![number],
            device_from_row,
        )
    }

    fn payment_devices(&mut self, user_id: u64) -> StoreResult<Vec<PaymentDevice>> {
        self.many(
            &format!(
                "SELECT {DEVICE_COLUMNS} FROM payment_devices WHERE user_id = ?1 ORDER BY id
                 LIMIT {RECORD_PAGE_LIMIT_MAX}"
            ),
            params![int(user_id)],
            device_from_row,
        )
    }

    fn code_use(&mut self, device_id: u64, step: u64, slot: u8) -> StoreResult<Option<CodeUse>> {
        self.one(
            "SELECT device_id, step, slot, order_id, created_at FROM code_uses
             WHERE device_id = ?1 AND step = ?2 AND slot = ?3",
            params![int(device_id), int(step), slot],
            code_use_from_row,
        )
    }

    fn biller(&mut self, id: u64) -> StoreResult<Option<Biller>> {
        self.one(
            &format!("SELECT {BILLER_COLUMNS} FROM billers WHERE id = ?1"),
            params![int(id)],
            biller_from_row,
        )
    }

    fn biller_by_code(&mut self, code: &str) -> StoreResult<Option<Biller>> {
        self.one(
            &format!("SELECT {BILLER_COLUMNS} FROM billers WHERE code = ?1"),
            params![code],
            biller_from_row,
        )
    }

    fn billers(
        &mut self,
        category: Option<BillerCategory>,
        after_id: u64,
        count: usize,
    ) -> StoreResult<Vec<Biller>> {
        match category {
            Some(category) => self.many(
                &format!(
                    "SELECT {BILLER_COLUMNS} FROM billers WHERE category = ?1 AND id > ?2
                     ORDER BY id LIMIT ?3"
                ),
                params![category.as_str(), int(after_id), limit(count)],
                biller_from_row,
            ),
            None => self.many(
                &format!("SELECT {BILLER_COLUMNS} FROM billers WHERE id > ?1 ORDER BY id LIMIT ?2"),
                params![int(after_id), limit(count)],
                biller_from_row,
            ),
        }
    }

    fn bill_payment(&mut self, id: u64) -> StoreResult<Option<BillPayment>> {
        self.one(
            &format!("SELECT {BILL_PAYMENT_COLUMNS} FROM bill_payments WHERE id = ?1"),
            params![int(id)],
            bill_payment_from_row,
        )
    }

    fn bill_payments(
        &mut self,
        user_id: u64,
        before_id: Option<u64>,
        count: usize,
    ) -> StoreResult<Vec<BillPayment>> {
        self.many(
            &format!(
                "SELECT {BILL_PAYMENT_COLUMNS} FROM bill_payments WHERE user_id = ?1 AND id < ?2
                 ORDER BY id DESC LIMIT ?3"
            ),
            params![int(user_id), before_id.map_or(i64::MAX, int), limit(count)],
            bill_payment_from_row,
        )
    }

    fn bill_payments_pending(&mut self, count: usize) -> StoreResult<Vec<BillPayment>> {
        self.many(
            &format!(
                "SELECT {BILL_PAYMENT_COLUMNS} FROM bill_payments WHERE state = 'pending'
                 ORDER BY id LIMIT ?1"
            ),
            params![limit(count)],
            bill_payment_from_row,
        )
    }

    fn saved_biller(&mut self, id: u64) -> StoreResult<Option<SavedBiller>> {
        self.one(
            &format!("SELECT {SAVED_BILLER_COLUMNS} FROM saved_billers WHERE id = ?1"),
            params![int(id)],
            saved_biller_from_row,
        )
    }

    fn saved_billers(&mut self, user_id: u64) -> StoreResult<Vec<SavedBiller>> {
        self.many(
            &format!(
                "SELECT {SAVED_BILLER_COLUMNS} FROM saved_billers
                 WHERE user_id = ?1 AND state = 'active' ORDER BY id LIMIT {RECORD_PAGE_LIMIT_MAX}"
            ),
            params![int(user_id)],
            saved_biller_from_row,
        )
    }

    fn merchant(&mut self, id: u64) -> StoreResult<Option<Merchant>> {
        self.one(
            &format!("SELECT {MERCHANT_COLUMNS} FROM merchants WHERE id = ?1"),
            params![int(id)],
            merchant_from_row,
        )
    }

    fn merchants(&mut self, after_id: u64, count: usize) -> StoreResult<Vec<Merchant>> {
        self.many(
            &format!("SELECT {MERCHANT_COLUMNS} FROM merchants WHERE id > ?1 ORDER BY id LIMIT ?2"),
            params![int(after_id), limit(count)],
            merchant_from_row,
        )
    }

    fn merchant_key(&mut self, id: u64) -> StoreResult<Option<MerchantKey>> {
        self.one(
            &format!("SELECT {KEY_COLUMNS} FROM merchant_keys WHERE id = ?1"),
            params![int(id)],
            key_from_row,
        )
    }

    fn merchant_keys(&mut self, merchant_id: u64) -> StoreResult<Vec<MerchantKey>> {
        self.many(
            &format!("SELECT {KEY_COLUMNS} FROM merchant_keys WHERE merchant_id = ?1 ORDER BY id"),
            params![int(merchant_id)],
            key_from_row,
        )
    }

    fn outlets(&mut self, merchant_id: u64) -> StoreResult<Vec<Outlet>> {
        self.many(
            &format!("SELECT {OUTLET_COLUMNS} FROM outlets WHERE merchant_id = ?1 ORDER BY id"),
            params![int(merchant_id)],
            outlet_from_row,
        )
    }

    fn outlet(&mut self, id: u64) -> StoreResult<Option<Outlet>> {
        self.one(
            &format!("SELECT {OUTLET_COLUMNS} FROM outlets WHERE id = ?1"),
            params![int(id)],
            outlet_from_row,
        )
    }

    fn order(&mut self, id: u64) -> StoreResult<Option<Order>> {
        self.one(
            &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?1"),
            params![int(id)],
            order_from_row,
        )
    }

    fn order_by_out_trade_no(
        &mut self,
        merchant_id: u64,
        out_trade_no: &str,
    ) -> StoreResult<Option<Order>> {
        self.one(
            &format!(
                "SELECT {ORDER_COLUMNS} FROM orders WHERE merchant_id = ?1 AND out_trade_no = ?2"
            ),
            params![int(merchant_id), out_trade_no],
            order_from_row,
        )
    }

    fn orders(&mut self, merchant_id: u64, after_id: u64, count: usize) -> StoreResult<Vec<Order>> {
        self.many(
            &format!(
                "SELECT {ORDER_COLUMNS} FROM orders WHERE merchant_id = ?1 AND id > ?2
                 ORDER BY id LIMIT ?3"
            ),
            params![int(merchant_id), int(after_id), limit(count)],
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
            &format!(
                "SELECT {ORDER_COLUMNS} FROM orders WHERE merchant_id = ?1 AND paid_at >= ?2
                 AND paid_at < ?3 ORDER BY paid_at, id"
            ),
            params![int(merchant_id), int(from), int(to)],
            order_from_row,
        )
    }

    fn orders_expired(&mut self, now: u64, count: usize) -> StoreResult<Vec<Order>> {
        self.many(
            &format!(
                "SELECT {ORDER_COLUMNS} FROM orders WHERE state = 'NOTPAY' AND expires_at <= ?1
                 ORDER BY expires_at LIMIT ?2"
            ),
            params![int(now), limit(count)],
            order_from_row,
        )
    }

    fn refund(&mut self, id: u64) -> StoreResult<Option<Refund>> {
        self.one(
            &format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE id = ?1"),
            params![int(id)],
            refund_from_row,
        )
    }

    fn refund_by_out_refund_no(
        &mut self,
        merchant_id: u64,
        out_refund_no: &str,
    ) -> StoreResult<Option<Refund>> {
        self.one(
            &format!(
                "SELECT {REFUND_COLUMNS} FROM refunds
                 WHERE merchant_id = ?1 AND out_refund_no = ?2"
            ),
            params![int(merchant_id), out_refund_no],
            refund_from_row,
        )
    }

    fn refunds_of_order(&mut self, order_id: u64) -> StoreResult<Vec<Refund>> {
        self.many(
            &format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE order_id = ?1 ORDER BY id"),
            params![int(order_id)],
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
            &format!(
                "SELECT {REFUND_COLUMNS} FROM refunds WHERE merchant_id = ?1
                 AND created_at >= ?2 AND created_at < ?3 ORDER BY created_at, id"
            ),
            params![int(merchant_id), int(from), int(to)],
            refund_from_row,
        )
    }

    fn p2p_transfer(&mut self, id: u64) -> StoreResult<Option<P2pTransfer>> {
        self.one(
            "SELECT id, from_user_id, to_user_id, amount, currency, note, created_at
             FROM p2p_transfers WHERE id = ?1",
            params![int(id)],
            |row| {
                Ok(P2pTransfer {
                    id: get_u64(row, 0)?,
                    from_user_id: get_u64(row, 1)?,
                    to_user_id: get_u64(row, 2)?,
                    amount: get_u64(row, 3)?,
                    currency: row.get(4)?,
                    note: row.get(5)?,
                    created_at: get_u64(row, 6)?,
                })
            },
        )
    }

    fn card(&mut self, id: u64) -> StoreResult<Option<Card>> {
        self.one(
            &format!("SELECT {CARD_COLUMNS} FROM cards WHERE id = ?1"),
            params![int(id)],
            card_from_row,
        )
    }

    fn cards(&mut self, user_id: u64) -> StoreResult<Vec<Card>> {
        self.many(
            &format!("SELECT {CARD_COLUMNS} FROM cards WHERE user_id = ?1 ORDER BY id"),
            params![int(user_id)],
            card_from_row,
        )
    }

    fn bank_transfer(&mut self, id: u64) -> StoreResult<Option<BankTransfer>> {
        self.one(
            &format!("SELECT {BANK_COLUMNS} FROM bank_transfers WHERE id = ?1"),
            params![int(id)],
            bank_from_row,
        )
    }

    fn bank_transfers_pending(&mut self, count: usize) -> StoreResult<Vec<BankTransfer>> {
        self.many(
            &format!(
                "SELECT {BANK_COLUMNS} FROM bank_transfers WHERE state = 'pending'
                 ORDER BY id LIMIT ?1"
            ),
            params![limit(count)],
            bank_from_row,
        )
    }

    fn events(
        &mut self,
        merchant_id: u64,
        after_id: u64,
        count: usize,
    ) -> StoreResult<Vec<StoredEvent>> {
        self.many(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE merchant_id = ?1 AND id > ?2
                 ORDER BY id LIMIT ?3"
            ),
            params![int(merchant_id), int(after_id), limit(count)],
            event_from_row,
        )
    }

    fn events_recent(&mut self, count: usize) -> StoreResult<Vec<StoredEvent>> {
        self.many(
            &format!("SELECT {EVENT_COLUMNS} FROM events ORDER BY id DESC LIMIT ?1"),
            params![limit(count)],
            event_from_row,
        )
    }

    fn events_due(&mut self, now: u64, count: usize) -> StoreResult<Vec<StoredEvent>> {
        self.many(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE delivery = 'pending'
                 AND next_attempt_at <= ?1 ORDER BY next_attempt_at LIMIT ?2"
            ),
            params![int(now), limit(count)],
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
             FROM idempotency_keys WHERE principal = ?1 AND key = ?2",
            params![principal, key],
            |row| {
                Ok(IdempotencyRecord {
                    principal: row.get(0)?,
                    key: row.get(1)?,
                    request_digest: get_digest(row, 2)?,
                    status: row.get(3)?,
                    response: row.get(4)?,
                    created_at: get_u64(row, 5)?,
                })
            },
        )
    }
}

/// Writes the outbox's delivery progress, in short transactions of its own.
pub(crate) struct SqliteOutbox {
    connection: Connection,
}

impl SqliteOutbox {
    pub(crate) fn new(connection: Connection) -> Self {
        SqliteOutbox { connection }
    }
}

impl OutboxWriter for SqliteOutbox {
    fn record_deliveries(&mut self, updates: &[DeliveryUpdate]) -> StoreResult<()> {
        let transaction = self.connection.transaction().map_err(map_error)?;
        {
            let mut statement = transaction
                .prepare_cached(
                    "UPDATE events SET delivery = ?2, attempts = ?3, next_attempt_at = ?4,
                        last_result = ?5 WHERE id = ?1",
                )
                .map_err(map_error)?;
            for update in updates {
                let changed = statement
                    .execute(params![
                        int(update.event_id),
                        update.delivery.as_str(),
                        update.attempts,
                        int(update.next_attempt_at),
                        update.last_result
                    ])
                    .map_err(map_error)?;
                if changed != 1 {
                    return Err(StoreError::corrupt(format!(
                        "no event {} to record a delivery of",
                        update.event_id
                    )));
                }
            }
        }
        transaction.commit().map_err(map_error)
    }
}
