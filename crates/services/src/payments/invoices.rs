//! E-invoices for paid orders.
//!
//! A merchant issues an invoice for a paid order: its lines must add up to what the buyer paid
//! and kept (the order's amount less its refunds); the platform numbers it from the merchant's
//! own sequence, writes its canonical document ([`crate::invoices`]) and registers the
//! document's SHA-256 in the trust log, then stores the invoice with its registration. Anyone
//! holding the document can check it: the number, the seller's tax id and the digest (or the
//! document itself) say whether it was registered, and its status. An organisation reimburses
//! an invoice once; the merchant voids an unreimbursed one with a red-letter invoice, also
//! registered. Each change is one request to the sequencer, and the store refuses a second
//! reimbursement of an invoice, a second red-letter invoice for one, and a second invoice in
//! force for an order, whatever the locks did.

use sequencer::RegistrationOutcome;
use store::{
    Invoice, InvoiceKind, InvoiceReimbursement, InvoiceState, Merchant, NewRegistration,
    OrderState, Record, RegistrationKind,
};

use super::{
    bounded_text, check_amount, invalid, Idempotency, Outcome, PaymentError, Payments, Render,
    PAYMENT_AMOUNT_MAX,
};
use crate::ids::new_id;
use crate::invoices::{
    self, Document, InvoiceCommand, InvoiceRefusal, LineRequest, Party, DOCUMENT_VERSION,
    INVOICE_ITEMS_MAX, ITEM_DESCRIPTION_BYTES_MAX, ITEM_QUANTITY_MAX, PARTY_NAME_BYTES_MAX,
    TAX_ID_BYTES_MAX, TAX_RATE_BPS_MAX,
};
use crate::orders::OrderRefusal;
use crate::secrets;
use crate::support::lock_key;
use crate::time::rfc3339_seconds;

/// Longest organisation's claim reference, in bytes.
pub const CLAIM_REFERENCE_BYTES_MAX: usize = 64;
/// Longest invoice number looked up, in bytes.
const NUMBER_BYTES_MAX: usize = 32;

/// An invoice as the merchant asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvoice {
    pub order_id: u64,
    pub seller_tax_id: String,
    pub buyer_name: String,
    /// An individual buyer may have none.
    pub buyer_tax_id: Option<String>,
    pub items: Vec<LineRequest>,
}

/// An organisation's claim on an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub organisation: String,
    pub claim_reference: String,
    /// SHA-256 of the document the claimant holds: only the registered one is reimbursed.
    pub digest: [u8; 32],
    /// The operator credential recording it.
    pub credential_id: u64,
}

/// An invoice just reimbursed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reimbursed {
    pub invoice: Invoice,
    pub reimbursement: InvoiceReimbursement,
}

/// An invoice just voided, and the red-letter invoice that voids it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voided {
    pub original: Invoice,
    pub red_letter: Invoice,
}

/// An invoice and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceStatus {
    pub invoice: Invoice,
    pub reimbursement: Option<InvoiceReimbursement>,
    /// The red-letter invoice that voided it.
    pub voided_by: Option<Invoice>,
    /// The invoice a red-letter invoice voids.
    pub original: Option<Invoice>,
}

/// A tax id: 1 to 32 upper-case letters and digits (one way to write each, so the documents
/// and the lookups agree).
fn check_tax_id(field: &'static str, text: &str) -> Result<(), PaymentError> {
    let valid = !text.is_empty()
        && text.len() <= TAX_ID_BYTES_MAX
        && text
            .bytes()
            .all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("1 to {TAX_ID_BYTES_MAX} upper-case letters and digits"),
        ))
    }
}

fn required_text(field: &'static str, text: &str, bytes_max: usize) -> Result<(), PaymentError> {
    bounded_text(field, text, bytes_max)?;
    if text.trim().is_empty() {
        return Err(invalid(field, "required"));
    }
    Ok(())
}

fn check_items(items: &[LineRequest]) -> Result<(), PaymentError> {
    if items.is_empty() || items.len() > INVOICE_ITEMS_MAX {
        return Err(invalid("items", format!("1 to {INVOICE_ITEMS_MAX} lines")));
    }
    for (index, item) in items.iter().enumerate() {
        let wrong = |reason: String| invalid("items", format!("line {}: {reason}", index + 1));
        if item.description.trim().is_empty()
            || item.description.len() > ITEM_DESCRIPTION_BYTES_MAX
            || item.description.chars().any(char::is_control)
        {
            return Err(wrong(format!(
                "description: 1 to {ITEM_DESCRIPTION_BYTES_MAX} bytes, no control characters"
            )));
        }
        if item.quantity == 0 || item.quantity > ITEM_QUANTITY_MAX {
            return Err(wrong(format!("quantity: 1 to {ITEM_QUANTITY_MAX}")));
        }
        check_amount(item.unit_price).map_err(|_| {
            wrong(format!(
                "unit_price: 1 to {PAYMENT_AMOUNT_MAX} minor units, tax included"
            ))
        })?;
        if u128::from(item.quantity) * u128::from(item.unit_price) > u128::from(PAYMENT_AMOUNT_MAX)
        {
            return Err(wrong(format!(
                "quantity × unit_price: at most {PAYMENT_AMOUNT_MAX} minor units"
            )));
        }
        if item.tax_rate_bps > TAX_RATE_BPS_MAX {
            return Err(wrong(format!(
                "tax_rate_bps: 0 to {TAX_RATE_BPS_MAX} basis points"
            )));
        }
    }
    Ok(())
}

fn salt() -> Result<String, PaymentError> {
    Ok(secrets::hex(&secrets::random_bytes::<16>()?))
}

impl Payments {
    /// Registers an invoice's document digest in the trust log; the registration's id.
    async fn register_invoice(
        &self,
        merchant_id: u64,
        invoice_id: u64,
        digest: [u8; 32],
    ) -> Result<u64, PaymentError> {
        let reference = format!("inv_{invoice_id}");
        let registration = NewRegistration::new(
            RegistrationKind::Invoice,
            digest,
            u128::from(merchant_id),
            &reference,
            &reference,
        )
        .map_err(|error| PaymentError::Ledger(error.to_string()))?;
        let mut outcomes = self.ledger.register(vec![registration])?.await?;
        match outcomes.pop() {
            Some(RegistrationOutcome::Created(stored) | RegistrationOutcome::Exists(stored)) => {
                Ok(stored.registration.id)
            }
            other => Err(PaymentError::Ledger(format!(
                "the invoice's registration was refused: {other:?}"
            ))),
        }
    }

    /// The sequence number the merchant's next invoice takes, and the seller tax id the
    /// merchant invoices as (none before its first invoice). Call with the merchant's
    /// sequence lock held.
    fn next_sequence(&self, merchant_id: u64) -> Result<(u64, Option<String>), PaymentError> {
        let last = self
            .handles
            .records(|records| records.invoice_last(merchant_id))?;
        Ok(match last {
            Some(last) => (last.sequence + 1, Some(last.seller_tax_id)),
            None => (1, None),
        })
    }

    /// Issues an invoice for one of the merchant's paid orders, registered in the trust log.
    /// With an `Idempotency-Key`, a retry answers the first invoice.
    pub async fn issue_invoice(
        &self,
        merchant: &Merchant,
        input: NewInvoice,
        idempotency: Option<&Idempotency>,
        render: Render<'_, Invoice>,
        now_s: u64,
    ) -> Result<Outcome<Invoice>, PaymentError> {
        check_tax_id("seller_tax_id", &input.seller_tax_id)?;
        required_text("buyer.name", &input.buyer_name, PARTY_NAME_BYTES_MAX)?;
        if let Some(tax_id) = &input.buyer_tax_id {
            check_tax_id("buyer.tax_id", tax_id)?;
        }
        check_items(&input.items)?;
        let mut keys = vec![
            lock_key("order", input.order_id),
            lock_key("invoice_sequence", merchant.id),
        ];
        keys.extend(idempotency.map(Idempotency::lock_key));
        let _guards = self.locks.lock(&keys).await;
        if let Some((status, body)) = Idempotency::replay(idempotency, &self.handles)? {
            return Ok(Outcome::Replayed { status, body });
        }
        let order = self.order(merchant.id, input.order_id)?;
        if !matches!(order.state, OrderState::Success | OrderState::Refund) {
            return Err(PaymentError::Order(OrderRefusal::NotPaid));
        }
        let lines: Vec<invoices::Line> = input.items.iter().map(invoices::line).collect();
        invoices::check_total(&lines, order.amount - order.refunded)?;
        let in_force = self
            .handles
            .records(|records| records.invoices_of_order(order.id))?
            .into_iter()
            .find(|invoice| {
                invoice.kind == InvoiceKind::Standard && invoice.state != InvoiceState::Voided
            });
        if let Some(invoice) = in_force {
            return Err(InvoiceRefusal::OrderInvoiced {
                number: invoice.number,
            }
            .into());
        }
        let (sequence, bound) = self.next_sequence(merchant.id)?;
        if let Some(bound) = bound.filter(|bound| *bound != input.seller_tax_id) {
            return Err(InvoiceRefusal::SellerTaxIdMismatch { bound }.into());
        }
        let id = new_id(now_s * 1000)?;
        let totals = invoices::totals(&lines);
        let document = Document {
            buyer: Party {
                name: input.buyer_name.clone(),
                tax_id: input.buyer_tax_id.clone(),
            },
            currency: order.currency.clone(),
            issued_at: rfc3339_seconds(now_s),
            items: lines,
            kind: InvoiceKind::Standard.as_str().to_owned(),
            number: invoices::number(sequence),
            order_id: format!("ord_{}", order.id),
            original: None,
            salt: salt()?,
            seller: Party {
                name: merchant.name.clone(),
                tax_id: Some(input.seller_tax_id.clone()),
            },
            totals,
            version: DOCUMENT_VERSION,
        };
        let text = document.canonical();
        let digest = invoices::digest(&text);
        let registration_id = self.register_invoice(merchant.id, id, digest).await?;
        let invoice = Invoice {
            id,
            merchant_id: merchant.id,
            order_id: order.id,
            kind: InvoiceKind::Standard,
            sequence,
            number: document.number,
            original_id: None,
            seller_tax_id: input.seller_tax_id,
            buyer_name: input.buyer_name,
            buyer_tax_id: input.buyer_tax_id,
            currency: order.currency,
            amount: totals.amount,
            tax: totals.tax,
            total: totals.total,
            document: text,
            digest,
            registration_id,
            state: InvoiceState::Issued,
            issued_at: now_s,
            updated_at: now_s,
        };
        let mut records = vec![Record::Invoice(invoice.clone())];
        records.extend(Idempotency::record(idempotency, render, &invoice, now_s));
        self.commit(Vec::new(), records).await?;
        Ok(Outcome::Done(invoice))
    }

    /// One of the merchant's invoices; another merchant's is "not found".
    pub fn invoice(&self, merchant_id: u64, invoice_id: u64) -> Result<Invoice, PaymentError> {
        self.handles
            .records(|records| records.invoice(invoice_id))?
            .filter(|invoice| invoice.merchant_id == merchant_id)
            .ok_or(PaymentError::NotFound("invoice"))
    }

    /// A page of the merchant's invoices.
    pub fn invoices(
        &self,
        merchant_id: u64,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<Invoice>, PaymentError> {
        Ok(self
            .handles
            .records(|records| records.invoices(merchant_id, after_id, limit))?)
    }

    /// An invoice with its reimbursement, the red-letter invoice that voided it, or the
    /// invoice it voids.
    pub fn invoice_status(&self, invoice: Invoice) -> Result<InvoiceStatus, PaymentError> {
        self.handles
            .records(|records| {
                let reimbursement = match invoice.state {
                    InvoiceState::Reimbursed => records.invoice_reimbursement(invoice.id)?,
                    InvoiceState::Issued | InvoiceState::Voided => None,
                };
                let voided_by = match invoice.state {
                    InvoiceState::Voided => records
                        .invoices_of_order(invoice.order_id)?
                        .into_iter()
                        .find(|other| other.original_id == Some(invoice.id)),
                    InvoiceState::Issued | InvoiceState::Reimbursed => None,
                };
                let original = match invoice.original_id {
                    Some(id) => records.invoice(id)?,
                    None => None,
                };
                Ok(InvoiceStatus {
                    invoice,
                    reimbursement,
                    voided_by,
                    original,
                })
            })
            .map_err(PaymentError::from)
    }

    /// Whether a document with this digest was registered as the invoice of this number and
    /// seller, and what became of it; `None` when it was not (altered, or never issued here).
    pub fn verify_invoice(
        &self,
        seller_tax_id: &str,
        number: &str,
        digest: &[u8; 32],
    ) -> Result<Option<InvoiceStatus>, PaymentError> {
        check_tax_id("seller_tax_id", seller_tax_id)?;
        if number.is_empty()
            || number.len() > NUMBER_BYTES_MAX
            || !number.bytes().all(|byte| byte.is_ascii_graphic())
        {
            return Err(invalid(
                "number",
                format!("1 to {NUMBER_BYTES_MAX} printable characters"),
            ));
        }
        let found = self
            .handles
            .records(|records| records.invoices_by_number(seller_tax_id, number))?
            .into_iter()
            .find(|invoice| secrets::equal(&invoice.digest, digest));
        found
            .map(|invoice| self.invoice_status(invoice))
            .transpose()
    }

    /// An organisation reimburses an invoice, once: a second claim is refused, naming when the
    /// first was made. The claimant must hold the registered document (its digest).
    pub async fn reimburse_invoice(
        &self,
        invoice_id: u64,
        claim: Claim,
        idempotency: Option<&Idempotency>,
        render: Render<'_, Reimbursed>,
        now_s: u64,
    ) -> Result<Outcome<Reimbursed>, PaymentError> {
        required_text("organisation", &claim.organisation, PARTY_NAME_BYTES_MAX)?;
        required_text(
            "claim_reference",
            &claim.claim_reference,
            CLAIM_REFERENCE_BYTES_MAX,
        )?;
        let mut keys = vec![lock_key("invoice", invoice_id)];
        keys.extend(idempotency.map(Idempotency::lock_key));
        let _guards = self.locks.lock(&keys).await;
        if let Some((status, body)) = Idempotency::replay(idempotency, &self.handles)? {
            return Ok(Outcome::Replayed { status, body });
        }
        let invoice = self
            .handles
            .records(|records| records.invoice(invoice_id))?
            .ok_or(PaymentError::NotFound("invoice"))?;
        if !secrets::equal(&invoice.digest, &claim.digest) {
            return Err(InvoiceRefusal::DigestMismatch.into());
        }
        let reimbursed =
            match invoices::transition(&invoice, InvoiceCommand::Reimburse { now: now_s }) {
                Ok(reimbursed) => reimbursed,
                Err(InvoiceRefusal::AlreadyReimbursed { at, .. }) => {
                    let first = self
                        .handles
                        .records(|records| records.invoice_reimbursement(invoice_id))?;
                    return Err(InvoiceRefusal::AlreadyReimbursed {
                        at,
                        by: first.map(|first| {
                            format!("by {}, claim {}", first.organisation, first.claim_reference)
                        }),
                    }
                    .into());
                }
                Err(refusal) => return Err(refusal.into()),
            };
        let reimbursement = InvoiceReimbursement {
            id: new_id(now_s * 1000)?,
            invoice_id,
            organisation: claim.organisation,
            claim_reference: claim.claim_reference,
            credential_id: claim.credential_id,
            created_at: now_s,
        };
        let result = Reimbursed {
            invoice: reimbursed,
            reimbursement,
        };
        let mut records = vec![
            Record::Invoice(result.invoice.clone()),
            Record::InvoiceReimbursement(result.reimbursement.clone()),
        ];
        records.extend(Idempotency::record(idempotency, render, &result, now_s));
        self.commit(Vec::new(), records).await?;
        Ok(Outcome::Done(result))
    }

    /// The merchant voids an invoice not yet reimbursed: a red-letter invoice, its lines
    /// negated, numbered from the merchant's sequence and registered in the trust log.
    pub async fn void_invoice(
        &self,
        merchant: &Merchant,
        invoice_id: u64,
        idempotency: Option<&Idempotency>,
        render: Render<'_, Voided>,
        now_s: u64,
    ) -> Result<Outcome<Voided>, PaymentError> {
        let mut keys = vec![
            lock_key("invoice", invoice_id),
            lock_key("invoice_sequence", merchant.id),
        ];
        keys.extend(idempotency.map(Idempotency::lock_key));
        let _guards = self.locks.lock(&keys).await;
        if let Some((status, body)) = Idempotency::replay(idempotency, &self.handles)? {
            return Ok(Outcome::Replayed { status, body });
        }
        let invoice = self.invoice(merchant.id, invoice_id)?;
        let original = invoices::transition(&invoice, InvoiceCommand::Void { now: now_s })?;
        let document = Document::parse(&invoice.document).ok_or_else(|| {
            PaymentError::Ledger(format!("invoice {invoice_id}'s document cannot be read"))
        })?;
        let (sequence, _) = self.next_sequence(merchant.id)?;
        let id = new_id(now_s * 1000)?;
        let red = document.red_letter(invoices::number(sequence), &invoice.digest, salt()?, now_s);
        let text = red.canonical();
        let digest = invoices::digest(&text);
        let registration_id = self.register_invoice(merchant.id, id, digest).await?;
        let red_letter = Invoice {
            id,
            kind: InvoiceKind::RedLetter,
            sequence,
            number: red.number,
            original_id: Some(invoice.id),
            amount: red.totals.amount,
            tax: red.totals.tax,
            total: red.totals.total,
            document: text,
            digest,
            registration_id,
            state: InvoiceState::Issued,
            issued_at: now_s,
            updated_at: now_s,
            ..invoice
        };
        let result = Voided {
            original,
            red_letter,
        };
        let mut records = vec![
            Record::Invoice(result.original.clone()),
            Record::Invoice(result.red_letter.clone()),
        ];
        records.extend(Idempotency::record(idempotency, render, &result, now_s));
        self.commit(Vec::new(), records).await?;
        Ok(Outcome::Done(result))
    }
}
