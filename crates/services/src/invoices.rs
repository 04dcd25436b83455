//! The e-invoice, pure: its lines (each price split into the amount net of tax and the tax),
//! its canonical document — the text whose SHA-256 the trust log registers — and its state
//! machine: `issued → reimbursed` (once), `issued → voided` (by a red-letter invoice, the same
//! lines negated). A reimbursed invoice cannot be voided, a voided one cannot be reimbursed,
//! and a red-letter invoice is neither. Every refusal is its own variant, with its own code.
//!
//! The canonical document is JSON as RFC 8785 (JCS) writes it: no whitespace, object keys in
//! ascending order, integers as plain decimals, strings with only `"`, `\` and control
//! characters escaped (the inputs hold no control characters). Amounts are integers in minor
//! units. The fields, every one always present (`null` when empty):
//!
//! ```text
//! {"buyer":{"name","tax_id"},"currency","issued_at","items":[{"amount","description",
//!  "quantity","tax","tax_rate_bps","total","unit_price"}…],"kind","number","order_id",
//!  "original":{"digest","number"},"salt","seller":{"name","tax_id"},
//!  "totals":{"amount","tax","total"},"version"}
//! ```
//!
//! `salt` is 128 random bits in hex: the digest in the log is a salted commitment, so the
//! buyer's name cannot be confirmed by guessing documents.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use store::{Invoice, InvoiceKind, InvoiceState};

use crate::time::rfc3339_seconds;

/// Lines one invoice may hold.
pub const INVOICE_ITEMS_MAX: usize = 50;
/// Longest description of a line, in bytes.
pub const ITEM_DESCRIPTION_BYTES_MAX: usize = 120;
/// Largest quantity of a line.
pub const ITEM_QUANTITY_MAX: u64 = 1_000_000;
/// Highest tax rate, in basis points (100 %).
pub const TAX_RATE_BPS_MAX: u32 = 10_000;
/// Longest tax id, in bytes.
pub const TAX_ID_BYTES_MAX: usize = 32;
/// Longest name of a party (the buyer; the seller's is the merchant's), in bytes.
pub const PARTY_NAME_BYTES_MAX: usize = store::RECORD_TEXT_BYTES_MAX;
/// The canonical document's format version.
pub const DOCUMENT_VERSION: u32 = 1;
/// The largest canonical document.
pub const INVOICE_DOCUMENT_BYTES_MAX: usize = 32 * 1024;
/// Digits of an invoice number (more once a merchant passes 99,999,999 invoices).
pub const NUMBER_DIGITS: usize = 8;

/// A line at its longest: the description with every byte escaped, and the numbers' fields.
const LINE_BYTES_MAX: usize = 2 * ITEM_DESCRIPTION_BYTES_MAX + 160;
/// Everything else at its longest: two names escaped, tax ids, digest, salt, keys and totals.
const HEADER_BYTES_MAX: usize = 4 * PARTY_NAME_BYTES_MAX + 4 * TAX_ID_BYTES_MAX + 512;
const _: () =
    assert!(INVOICE_ITEMS_MAX * LINE_BYTES_MAX + HEADER_BYTES_MAX <= INVOICE_DOCUMENT_BYTES_MAX);

/// A line as the merchant asks for it: what was sold, how many, at what price (tax included,
/// as the buyer paid it) and the tax rate. The caller checked the bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRequest {
    pub description: String,
    pub quantity: u64,
    pub unit_price: u64,
    pub tax_rate_bps: u32,
}

// The structs below are serialised in field order: the fields are in ascending order of their
// names, as the canonical form wants.

/// A line of the document: `total` is `quantity × unit_price`, `amount + tax`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub amount: i64,
    pub description: String,
    pub quantity: i64,
    pub tax: i64,
    pub tax_rate_bps: u32,
    pub total: i64,
    pub unit_price: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Party {
    pub name: String,
    pub tax_id: Option<String>,
}

/// What a red-letter invoice voids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginalReference {
    /// SHA-256 of the original's document, in hex.
    pub digest: String,
    pub number: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    pub amount: i64,
    pub tax: i64,
    pub total: i64,
}

/// An invoice's document, as registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub buyer: Party,
    pub currency: String,
    /// RFC 3339, whole seconds, UTC.
    pub issued_at: String,
    pub items: Vec<Line>,
    /// `standard` or `red_letter`.
    pub kind: String,
    pub number: String,
    /// `ord_<id>`.
    pub order_id: String,
    pub original: Option<OriginalReference>,
    pub salt: String,
    pub seller: Party,
    pub totals: Totals,
    pub version: u32,
}

impl Document {
    /// The canonical text (see the module documentation).
    pub fn canonical(&self) -> String {
        let text = serde_json::to_string(self).expect("a document always serializes");
        assert!(
            text.len() <= INVOICE_DOCUMENT_BYTES_MAX,
            "inputs are bounded"
        );
        text
    }

    /// A document read back from its canonical text.
    pub fn parse(text: &str) -> Option<Document> {
        serde_json::from_str(text).ok()
    }

    /// The red-letter document that voids this one: the same parties, order and currency, each
    /// line's quantity, amount, tax and total negated (unit prices stay as they were), and the
    /// original's number and digest.
    pub fn red_letter(
        &self,
        number: String,
        original_digest: &[u8; 32],
        salt: String,
        issued_at: u64,
    ) -> Document {
        assert_eq!(self.kind, InvoiceKind::Standard.as_str());
        let items: Vec<Line> = self
            .items
            .iter()
            .map(|line| Line {
                amount: -line.amount,
                description: line.description.clone(),
                quantity: -line.quantity,
                tax: -line.tax,
                tax_rate_bps: line.tax_rate_bps,
                total: -line.total,
                unit_price: line.unit_price,
            })
            .collect();
        let totals = totals(&items);
        assert_eq!(totals.total, -self.totals.total);
        Document {
            buyer: self.buyer.clone(),
            currency: self.currency.clone(),
            issued_at: rfc3339_seconds(issued_at),
            items,
            kind: InvoiceKind::RedLetter.as_str().to_owned(),
            number,
            order_id: self.order_id.clone(),
            original: Some(OriginalReference {
                digest: crate::secrets::hex(original_digest),
                number: self.number.clone(),
            }),
            salt,
            seller: self.seller.clone(),
            totals,
            version: DOCUMENT_VERSION,
        }
    }
}

/// SHA-256 of the document's UTF-8 bytes: what the trust log holds, and what anyone holding
/// the document can recompute.
pub fn digest(document: &str) -> [u8; 32] {
    Sha256::digest(document.as_bytes()).into()
}

/// The number printed on the invoice of `sequence`.
pub fn number(sequence: u64) -> String {
    assert!(sequence > 0);
    format!("{sequence:0NUMBER_DIGITS$}")
}

/// The tax included in `gross` at `rate_bps`: `gross × rate / (10000 + rate)`, rounded half up.
pub fn tax_included(gross: u64, rate_bps: u32) -> u64 {
    assert!(rate_bps <= TAX_RATE_BPS_MAX);
    let rate = u128::from(rate_bps);
    let denominator = 10_000 + rate;
    let tax = (u128::from(gross) * rate * 2 + denominator) / (2 * denominator);
    u64::try_from(tax).expect("below the gross amount")
}

/// A line of the document from the merchant's request: its total split into the amount and
/// the tax included in it.
pub fn line(request: &LineRequest) -> Line {
    assert!(request.quantity > 0 && request.quantity <= ITEM_QUANTITY_MAX);
    assert!(request.tax_rate_bps <= TAX_RATE_BPS_MAX);
    let total = request
        .quantity
        .checked_mul(request.unit_price)
        .expect("the caller bounded the line's total");
    let tax = tax_included(total, request.tax_rate_bps);
    let signed = |value: u64| i64::try_from(value).expect("bounded amounts fit i64");
    Line {
        amount: signed(total - tax),
        description: request.description.clone(),
        quantity: signed(request.quantity),
        tax: signed(tax),
        tax_rate_bps: request.tax_rate_bps,
        total: signed(total),
        unit_price: signed(request.unit_price),
    }
}

/// The sums of the lines.
pub fn totals(lines: &[Line]) -> Totals {
    let totals = Totals {
        amount: lines.iter().map(|line| line.amount).sum(),
        tax: lines.iter().map(|line| line.tax).sum(),
        total: lines.iter().map(|line| line.total).sum(),
    };
    assert_eq!(totals.amount + totals.tax, totals.total);
    totals
}

/// The lines must add up to what the buyer paid for the order and kept: the order's amount
/// less its refunds.
pub fn check_total(lines: &[Line], invoiceable: u64) -> Result<(), InvoiceRefusal> {
    let total = totals(lines).total;
    if u64::try_from(total).ok() == Some(invoiceable) {
        Ok(())
    } else {
        Err(InvoiceRefusal::AmountMismatch {
            lines: total,
            invoiceable,
        })
    }
}

/// What can happen to an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceCommand {
    /// An organisation reimburses it at `now` (Unix seconds).
    Reimburse { now: u64 },
    /// The merchant voids it with a red-letter invoice at `now`.
    Void { now: u64 },
}

fn time(at: &u64) -> String {
    rfc3339_seconds(*at)
}

fn reimbursed_by(by: &Option<String>) -> String {
    by.as_ref().map(|by| format!(" ({by})")).unwrap_or_default()
}

/// Why an invoice request was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvoiceRefusal {
    #[error("the lines add up to {lines}, but the order was paid {invoiceable} net of refunds")]
    AmountMismatch { lines: i64, invoiceable: u64 },
    #[error("the order has invoice {number} in force; void it before issuing another")]
    OrderInvoiced { number: String },
    #[error("this merchant invoices as seller {bound}: its invoices keep one sequence")]
    SellerTaxIdMismatch { bound: String },
    #[error("the digest is not the registered invoice's: the document was altered, or is another")]
    DigestMismatch,
    #[error("the invoice was reimbursed already, at {}{}; it is reimbursed once", time(.at), reimbursed_by(.by))]
    AlreadyReimbursed { at: u64, by: Option<String> },
    #[error("the invoice was reimbursed at {}; a reimbursed invoice cannot be voided", time(.at))]
    Reimbursed { at: u64 },
    #[error("the invoice was voided by a red-letter invoice")]
    Voided,
    #[error("a red-letter invoice voids another: it is neither reimbursed nor voided")]
    RedLetter,
}

impl InvoiceRefusal {
    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            InvoiceRefusal::AmountMismatch { .. } => "invoice_amount_mismatch",
            InvoiceRefusal::OrderInvoiced { .. } => "order_invoiced",
            InvoiceRefusal::SellerTaxIdMismatch { .. } => "seller_tax_id_mismatch",
            InvoiceRefusal::DigestMismatch => "invoice_digest_mismatch",
            InvoiceRefusal::AlreadyReimbursed { .. } => "invoice_already_reimbursed",
            InvoiceRefusal::Reimbursed { .. } => "invoice_reimbursed",
            InvoiceRefusal::Voided => "invoice_voided",
            InvoiceRefusal::RedLetter => "invoice_red_letter",
        }
    }
}

/// The invoice after `command`; or why not.
pub fn transition(invoice: &Invoice, command: InvoiceCommand) -> Result<Invoice, InvoiceRefusal> {
    if invoice.kind == InvoiceKind::RedLetter {
        return Err(InvoiceRefusal::RedLetter);
    }
    let mut next = invoice.clone();
    match (invoice.state, command) {
        (InvoiceState::Issued, InvoiceCommand::Reimburse { now }) => {
            next.state = InvoiceState::Reimbursed;
            next.updated_at = now;
        }
        (InvoiceState::Issued, InvoiceCommand::Void { now }) => {
            next.state = InvoiceState::Voided;
            next.updated_at = now;
        }
        // Nothing else changes a reimbursed invoice: its last change is its reimbursement.
        (InvoiceState::Reimbursed, InvoiceCommand::Reimburse { .. }) => {
            return Err(InvoiceRefusal::AlreadyReimbursed {
                at: invoice.updated_at,
                by: None,
            })
        }
        (InvoiceState::Reimbursed, InvoiceCommand::Void { .. }) => {
            return Err(InvoiceRefusal::Reimbursed {
                at: invoice.updated_at,
            })
        }
        (InvoiceState::Voided, _) => return Err(InvoiceRefusal::Voided),
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Document {
        let items: Vec<Line> = [
            LineRequest {
                description: "beef noodles".into(),
                quantity: 2,
                unit_price: 1_500,
                tax_rate_bps: 600,
            },
            LineRequest {
                description: "tea \"longjing\"".into(),
                quantity: 1,
                unit_price: 1_000,
                tax_rate_bps: 0,
            },
        ]
        .iter()
        .map(line)
        .collect();
        Document {
            buyer: Party {
                name: "Silk Road Trading".into(),
                tax_id: None,
            },
            currency: "CNY".into(),
            issued_at: rfc3339_seconds(1_795_305_600),
            totals: totals(&items),
            items,
            kind: "standard".into(),
            number: number(1),
            order_id: "ord_42".into(),
            original: None,
            salt: "00112233445566778899aabbccddeeff".into(),
            seller: Party {
                name: "Lanzhou Noodles".into(),
                tax_id: Some("91620102MA7LZN0D1X".into()),
            },
            version: DOCUMENT_VERSION,
        }
    }

    fn invoice(kind: InvoiceKind, state: InvoiceState) -> Invoice {
        Invoice {
            id: 1,
            merchant_id: 2,
            order_id: 3,
            kind,
            sequence: 1,
            number: number(1),
            original_id: (kind == InvoiceKind::RedLetter).then_some(9),
            seller_tax_id: "91620102MA7LZN0D1X".into(),
            buyer_name: "Silk Road Trading".into(),
            buyer_tax_id: None,
            currency: "CNY".into(),
            amount: 2_830,
            tax: 170,
            total: 3_000,
            document: String::new(),
            digest: [0; 32],
            registration_id: 5,
            state,
            issued_at: 100,
            updated_at: 100,
        }
    }

    #[test]
    fn the_canonical_document_is_sorted_compact_json() {
        let text = document().canonical();
        assert_eq!(
            text,
            concat!(
                r#"{"buyer":{"name":"Silk Road Trading","tax_id":null},"currency":"CNY","#,
                r#""issued_at":"2026-11-22T00:00:00Z","items":["#,
                r#"{"amount":2830,"description":"beef noodles","quantity":2,"tax":170,"#,
                r#""tax_rate_bps":600,"total":3000,"unit_price":1500},"#,
                r#"{"amount":1000,"description":"tea \"longjing\"","quantity":1,"tax":0,"#,
                r#""tax_rate_bps":0,"total":1000,"unit_price":1000}],"#,
                r#""kind":"standard","number":"00000001","order_id":"ord_42","original":null,"#,
                r#""salt":"00112233445566778899aabbccddeeff","#,
                r#""seller":{"name":"Lanzhou Noodles","tax_id":"91620102MA7LZN0D1X"},"#,
                r#""totals":{"amount":3830,"tax":170,"total":4000},"version":1}"#,
            )
        );
        // Keys in ascending order at every level, as RFC 8785 writes them.
        fn sorted(value: &serde_json::Value) -> bool {
            match value {
                serde_json::Value::Object(map) => {
                    let keys: Vec<&String> = map.keys().collect();
                    keys.windows(2).all(|pair| pair[0] < pair[1]) && map.values().all(sorted)
                }
                serde_json::Value::Array(values) => values.iter().all(sorted),
                _ => true,
            }
        }
        assert!(sorted(&serde_json::from_str(&text).unwrap()));
        assert_eq!(Document::parse(&text), Some(document()));
        assert_eq!(
            crate::secrets::hex(&digest("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn taxes_are_split_out_of_the_price_half_up() {
        assert_eq!(tax_included(3_000, 600), 170); // 169.81
        assert_eq!(tax_included(10_600, 600), 600);
        assert_eq!(tax_included(1_000, 0), 0);
        assert_eq!(tax_included(1, 10_000), 1); // 0.5 → 1
        assert_eq!(tax_included(1_130, 1_300), 130);
        let split = line(&LineRequest {
            description: "x".into(),
            quantity: 3,
            unit_price: 333,
            tax_rate_bps: 900,
        });
        assert_eq!((split.total, split.amount + split.tax), (999, 999));
        assert_eq!(number(42), "00000042");
        assert_eq!(number(123_456_789), "123456789");
    }

    #[test]
    fn the_lines_must_add_up_to_what_was_paid_and_kept() {
        let lines = document().items;
        assert_eq!(check_total(&lines, 4_000), Ok(()));
        assert_eq!(
            check_total(&lines, 3_000),
            Err(InvoiceRefusal::AmountMismatch {
                lines: 4_000,
                invoiceable: 3_000
            })
        );
    }

    #[test]
    fn a_red_letter_document_negates_the_lines_and_names_the_original() {
        let original = document();
        let red = original.red_letter(number(2), &[0xab; 32], "ff".repeat(16), 1_795_305_700);
        assert_eq!(red.kind, "red_letter");
        assert_eq!(red.number, "00000002");
        assert_eq!(
            red.original,
            Some(OriginalReference {
                digest: "ab".repeat(32),
                number: "00000001".into()
            })
        );
        assert_eq!(
            red.totals,
            Totals {
                amount: -3_830,
                tax: -170,
                total: -4_000
            }
        );
        assert_eq!(
            (
                red.items[0].quantity,
                red.items[0].unit_price,
                red.items[0].tax
            ),
            (-2, 1_500, -170)
        );
        assert_eq!((red.buyer, red.seller), (original.buyer, original.seller));
    }

    #[test]
    fn an_invoice_is_reimbursed_once_and_a_reimbursed_one_is_not_voided() {
        let issued = invoice(InvoiceKind::Standard, InvoiceState::Issued);
        let reimbursed = transition(&issued, InvoiceCommand::Reimburse { now: 200 }).unwrap();
        assert_eq!(
            (reimbursed.state, reimbursed.updated_at),
            (InvoiceState::Reimbursed, 200)
        );
        assert_eq!(
            transition(&reimbursed, InvoiceCommand::Reimburse { now: 300 }),
            Err(InvoiceRefusal::AlreadyReimbursed { at: 200, by: None })
        );
        assert_eq!(
            transition(&reimbursed, InvoiceCommand::Void { now: 300 }),
            Err(InvoiceRefusal::Reimbursed { at: 200 })
        );
        let message = InvoiceRefusal::AlreadyReimbursed {
            at: 1_795_305_600,
            by: Some("Silk Road Trading".into()),
        }
        .to_string();
        assert!(
            message.contains("2026-11-22T00:00:00Z (Silk Road Trading)"),
            "{message}"
        );
    }

    #[test]
    fn a_voided_invoice_and_a_red_letter_one_take_no_further_step() {
        let issued = invoice(InvoiceKind::Standard, InvoiceState::Issued);
        let voided = transition(&issued, InvoiceCommand::Void { now: 200 }).unwrap();
        assert_eq!(voided.state, InvoiceState::Voided);
        for command in [
            InvoiceCommand::Reimburse { now: 300 },
            InvoiceCommand::Void { now: 300 },
        ] {
            assert_eq!(transition(&voided, command), Err(InvoiceRefusal::Voided));
            assert_eq!(
                transition(
                    &invoice(InvoiceKind::RedLetter, InvoiceState::Issued),
                    command
                ),
                Err(InvoiceRefusal::RedLetter)
            );
        }
        assert_eq!(InvoiceRefusal::Voided.code(), "invoice_voided");
    }
}
