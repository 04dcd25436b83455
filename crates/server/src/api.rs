//! The API's one table: every endpoint with its handler and its documentation. The router is
//! built from it and so is the OpenAPI 3.1 document (`GET /v1/openapi.json`) and the
//! reference in `docs/api.md`, so none of them can drift from the code.

use std::sync::Arc;

use axum::routing::{delete, get, post, put, MethodRouter};
use serde_json::{json, Map, Value};

use crate::{bill_payments, envelopes, escrow, invoices, log, payments, qr, sql, users, AppState};

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    /// `Authorization: Bearer tally_…` with this role (or operator).
    Credential(&'static str),
    /// A user's session: `Authorization: Bearer sess_…`.
    Session,
    /// A merchant's signed request: `Authorization: TALLY-HMAC-SHA256 …`.
    Merchant,
}

pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub access: Access,
    /// Whether it takes an `Idempotency-Key`.
    pub idempotent: bool,
    /// The JSON schema of the request body.
    pub body: Option<Value>,
    /// Query parameters: (name, description).
    pub query: &'static [(&'static str, &'static str)],
    /// Status codes it answers with, and what each means.
    pub responses: &'static [(u16, &'static str)],
    pub handler: MethodRouter<Arc<AppState>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} {}", self.method, self.path)
    }
}

fn object(properties: &[(&str, Value)], required: &[&str]) -> Value {
    let mut map = Map::new();
    for (name, schema) in properties {
        map.insert((*name).to_owned(), schema.clone());
    }
    json!({"type": "object", "properties": map, "required": required, "additionalProperties": false})
}

fn text(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

/// `schema` with a description, for the reference.
fn described(mut schema: Value, description: &str) -> Value {
    schema["description"] = json!(description);
    schema
}

fn minor_units(description: &str) -> Value {
    json!({"type": "integer", "minimum": 1, "description": description})
}

const PROBLEM: &str = "a problem document (application/problem+json) with a stable `code`";

#[allow(clippy::too_many_lines)]
pub fn endpoints() -> Vec<Endpoint> {
    use Access::{Credential, Merchant, Public, Session};
    let endpoint = |method: &'static str,
                    path: &'static str,
                    tag: &'static str,
                    summary: &'static str,
                    access: Access,
                    handler: MethodRouter<Arc<AppState>>| Endpoint {
        method,
        path,
        tag,
        summary,
        access,
        idempotent: false,
        body: None,
        query: &[],
        responses: &[(200, "OK")],
        handler,
    };
    let payment_password = text("the user's 6-digit payment password");
    vec![
        // ---- Trust log ----
        endpoint("GET", "/v1/log/checkpoint", "trust log", "The latest signed checkpoint (a C2SP signed note), with witness cosignatures.", Public, get(log::checkpoint)),
        Endpoint {
            responses: &[(200, "the new checkpoint"), (401, PROBLEM), (403, PROBLEM)],
            ..endpoint("POST", "/v1/log/checkpoint", "trust log", "Sign a checkpoint of everything committed so far, now.", Credential("operator"), post(log::sign_checkpoint))
        },
        Endpoint {
            responses: &[(200, "the receipt: leaf, inclusion proof, checkpoint"), (404, PROBLEM)],
            ..endpoint("GET", "/v1/log/receipts/{transfer_id}", "trust log", "A transfer's receipt, verifiable offline with the log's key.", Public, get(log::receipt))
        },
        Endpoint {
            query: &[("from", "the smaller tree size"), ("to", "the larger tree size")],
            responses: &[(200, "the consistency proof"), (400, PROBLEM)],
            ..endpoint("GET", "/v1/log/consistency", "trust log", "A consistency proof between two tree sizes (RFC 9162).", Public, get(log::consistency))
        },
        endpoint("GET", "/v1/log/tile/{path}", "trust log", "Tiles and entry bundles at their C2SP tlog-tiles paths.", Public, get(log::tile)),
        Endpoint {
            idempotent: true,
            body: Some(object(&[("kind", text("document, merchant_code, invoice or device_certificate")), ("digest", text("the SHA-256 of the document, 64 hex digits")), ("reference", text("the depositor's own reference"))], &["kind", "digest"])),
            responses: &[(201, "deposited, with its receipt"), (200, "a retry: the first answer"), (409, PROBLEM)],
            ..endpoint("POST", "/v1/log/deposits", "trust log", "Deposit a document's hash in the trust log.", Credential("depositor"), post(log::deposit))
        },
        endpoint("GET", "/v1/log/deposits/{id}", "trust log", "A deposit, to its depositor or an operator.", Credential("depositor"), get(log::get_deposit)),
        Endpoint {
            body: Some(object(&[("sql", text("one read-only statement"))], &["sql"])),
            responses: &[(200, "columns and rows (at most 10,000; 5 s)"), (400, PROBLEM)],
            ..endpoint("POST", "/v1/sql", "audit", "Run a read-only SQL query over the ledger, the log and the business tables.", Credential("auditor"), post(sql::query))
        },
        // ---- Users ----
        Endpoint {
            body: Some(object(&[("phone", text("E.164, e.g. +8613800138000")), ("purpose", text("register, login or payment_password"))], &["phone", "purpose"])),
            responses: &[(202, "sent"), (429, PROBLEM)],
            ..endpoint("POST", "/v1/otp", "users", "Send a one-time code by SMS.", Public, post(users::send_code))
        },
        Endpoint {
            body: Some(object(&[("phone", text("E.164")), ("password", text("8 to 128 bytes, not only digits")), ("code", text("the code sent for register"))], &["phone", "password", "code"])),
            responses: &[(201, "the user"), (401, PROBLEM), (409, PROBLEM)],
            ..endpoint("POST", "/v1/users", "users", "Register: a user and a wallet.", Public, post(users::register))
        },
        Endpoint {
            body: Some(object(&[("phone", text("E.164")), ("password", text("the login password")), ("code", text("the code sent for login"))], &["phone", "password", "code"])),
            responses: &[(201, "a session token"), (401, PROBLEM)],
            ..endpoint("POST", "/v1/sessions", "users", "Log in with phone, password and a one-time code.", Public, post(users::login))
        },
        Endpoint {
            responses: &[(204, "logged out"), (401, PROBLEM)],
            ..endpoint("DELETE", "/v1/sessions/current", "users", "Log out: the token stops working at once.", Session, delete(users::logout))
        },
        endpoint("GET", "/v1/me", "users", "The signed-in user and the wallet's balance.", Session, get(users::me)),
        Endpoint {
            body: Some(object(&[("payment_password", text("six digits")), ("code", text("the code sent for payment_password"))], &["payment_password", "code"])),
            responses: &[(204, "set"), (400, PROBLEM), (401, PROBLEM)],
            ..endpoint("PUT", "/v1/me/payment-password", "users", "Set or change the payment password.", Session, put(users::set_payment_password))
        },
        Endpoint {
            query: &[("limit", "1 to 100 (20)"), ("starting_after", "the cursor of the previous page")],
            ..endpoint("GET", "/v1/me/transactions", "users", "The wallet's movements: payments, refunds, transfers, top-ups, withdrawals, bills (a held amount, then its posting or voiding: `phase`).", Session, get(payments::my_transactions))
        },
        // ---- Cards ----
        Endpoint {
            body: Some(object(&[("card_number", text("12 to 19 digits, Luhn-checked; sent to the bank, never stored")), ("holder_name", text("as the bank knows it")), ("id_number", text("the holder's ID number")), ("phone", text("the phone the bank has for the card"))], &["card_number", "holder_name", "id_number", "phone"])),
            responses: &[(202, "the bank sent a code to the card's phone"), (400, PROBLEM), (422, PROBLEM)],
            ..endpoint("POST", "/v1/me/cards", "cards", "Start binding a bank card.", Session, post(payments::start_binding))
        },
        Endpoint {
            body: Some(object(&[("binding_id", text("from POST /v1/me/cards")), ("code", text("the bank's code"))], &["binding_id", "code"])),
            responses: &[(201, "the card (token, BIN, last four)"), (404, PROBLEM), (422, PROBLEM)],
            ..endpoint("POST", "/v1/me/cards/confirm", "cards", "Confirm a binding with the bank's code; raises tier 0 to 1.", Session, post(payments::confirm_binding))
        },
        endpoint("GET", "/v1/me/cards", "cards", "The user's cards.", Session, get(payments::list_cards)),
        Endpoint {
            responses: &[(204, "unbound"), (404, PROBLEM)],
            ..endpoint("DELETE", "/v1/me/cards/{id}", "cards", "Unbind a card.", Session, delete(payments::unbind_card))
        },
        Endpoint {
            idempotent: true,
            body: Some(object(&[("card_id", text("card_…")), ("amount", minor_units("minor units")), ("payment_password", payment_password.clone())], &["card_id", "amount", "payment_password"])),
            responses: &[(201, "succeeded"), (202, "the bank has not answered yet: pending"), (422, PROBLEM)],
            ..endpoint("POST", "/v1/me/top-ups", "cards", "Top up the wallet from a card.", Session, post(payments::top_up))
        },
        Endpoint {
            idempotent: true,
            body: Some(object(&[("card_id", text("card_…")), ("amount", minor_units("minor units")), ("payment_password", payment_password.clone())], &["card_id", "amount", "payment_password"])),
            responses: &[(201, "paid out"), (202, "held; the bank has not answered yet"), (422, PROBLEM)],
            ..endpoint("POST", "/v1/me/withdrawals", "cards", "Withdraw from the wallet to a card (held, then posted or voided).", Session, post(payments::withdraw))
        },
        endpoint("GET", "/v1/me/bank-transfers/{id}", "cards", "A top-up or withdrawal.", Session, get(payments::get_bank_transfer)),
        // ---- Payments (users) ----
        endpoint("GET", "/v1/checkout/{id}", "payments", "What a user about to pay sees of an order.", Session, get(payments::checkout)),
        Endpoint {
            idempotent: true,
            body: Some(object(&[("amount", minor_units("must equal the order's amount")), ("payment_password", payment_password.clone())], &["amount", "payment_password"])),
            responses: &[(200, "the paid order"), (401, PROBLEM), (422, PROBLEM), (423, PROBLEM)],
            ..endpoint("POST", "/v1/orders/{id}/pay", "payments", "Pay an order from the wallet.", Session, post(payments::pay_order))
        },
        Endpoint {
            idempotent: true,
            body: Some(object(&[("to", text("a phone number or usr_…")), ("amount", minor_units("minor units")), ("payment_password", payment_password.clone()), ("note", text("up to 256 bytes"))], &["to", "amount", "payment_password"])),
            responses: &[(201, "sent"), (409, PROBLEM), (422, PROBLEM)],
            ..endpoint("POST", "/v1/transfers", "payments", "Send money to another user.", Session, post(payments::send_transfer))
        },
        // ---- Groups and red envelopes ----
        Endpoint {
            body: Some(object(&[("name", text("the group's name")), ("members", json!({"type": "array", "items": {"type": "string"}, "description": "phone numbers or usr_… (the owner is always a member)"}))], &["name"])),
            responses: &[(201, "the group and its members"), (422, PROBLEM)],
            ..endpoint("POST", "/v1/groups", "red envelopes", "Make a group.", Session, post(envelopes::create_group))
        },
        Endpoint {
            body: Some(object(&[("members", json!({"type": "array", "items": {"type": "string"}, "description": "phone numbers or usr_…"}))], &["members"])),
            responses: &[(200, "the group and its members"), (404, PROBLEM)],
            ..endpoint("POST", "/v1/groups/{id}/members", "red envelopes", "Add members (the owner only).", Session, post(envelopes::add_members))
        },
        endpoint("GET", "/v1/groups/{id}", "red envelopes", "A group, to its members.", Session, get(envelopes::get_group)),
        endpoint("GET", "/v1/me/groups", "red envelopes", "The groups the user belongs to.", Session, get(envelopes::my_groups)),
        Endpoint {
            idempotent: true,
            body: Some(object(&[("group_id", text("grp_… of a group the sender belongs to")), ("to", text("or one friend: a phone number or usr_…")), ("kind", text("ordinary (equal packets) or lucky (random packets)")), ("amount", minor_units("lucky: the total; ordinary: each packet")), ("count", json!({"type": "integer", "minimum": 1, "description": "packets (1 for a friend)"})), ("greeting", text("up to 256 bytes")), ("payment_password", payment_password.clone())], &["kind", "amount", "payment_password"])),
            responses: &[(201, "the envelope (packets fixed and their digest registered in the trust log)"), (400, PROBLEM), (422, PROBLEM)],
            ..endpoint("POST", "/v1/red-envelopes", "red envelopes", "Send a red envelope to a group or a friend.", Session, post(envelopes::send))
        },
        Endpoint {
            responses: &[(200, "the packet: its amount"), (404, PROBLEM), (422, PROBLEM)],
            ..endpoint("POST", "/v1/red-envelopes/{id}/grab", "red envelopes", "Grab the next packet (once per member, in arrival order).", Session, post(envelopes::grab))
        },
        endpoint("GET", "/v1/red-envelopes/{id}", "red envelopes", "An envelope and who got how much (the luckiest marked; the packets and their commitment once it is closed).", Session, get(envelopes::get)),
        // ---- Escrow ----
        Endpoint {
            body: Some(object(&[("carrier", text("the carrier")), ("tracking_no", text("the tracking reference"))], &["carrier", "tracking_no"])),
            responses: &[(200, "the escrow, shipped"), (404, PROBLEM), (422, PROBLEM)],
            ..endpoint("POST", "/v1/orders/{id}/shipment", "escrow", "Mark an escrowed order shipped (the buyer then has 10 days to confirm).", Merchant, post(escrow::ship))
        },
        endpoint("GET", "/v1/orders/{id}/escrow", "escrow", "An escrowed order's escrow.", Merchant, get(escrow::merchant_view)),
        endpoint("GET", "/v1/escrows/{order_id}", "escrow", "The buyer's escrow.", Session, get(escrow::buyer_view)),
        Endpoint {
            body: Some(object(&[("payment_password", payment_password.clone())], &["payment_password"])),
            responses: &[(200, "released to the merchant, less its fee"), (401, PROBLEM), (422, PROBLEM)],
            ..endpoint("POST", "/v1/escrows/{order_id}/confirm", "escrow", "Confirm receipt: the money goes to the merchant.", Session, post(escrow::confirm))
        },
        Endpoint {
            body: Some(object(&[("reason", text("why")), ("evidence", text("a reference to the evidence"))], &["reason"])),
            responses: &[(200, "disputed: frozen until an operator settles it"), (422, PROBLEM)],
            ..endpoint("POST", "/v1/escrows/{order_id}/dispute", "escrow", "Open a dispute before the money is released.", Session, post(escrow::dispute))
        },
        Endpoint {
            body: Some(object(&[("outcome", text("refund, release or split")), ("to_buyer", minor_units("a split: what goes back to the buyer")), ("note", text("why: the audit trail"))], &["outcome", "note"])),
            responses: &[(200, "settled"), (404, PROBLEM), (422, PROBLEM)],
            ..endpoint("POST", "/v1/escrows/{order_id}/resolution", "operators", "Settle a dispute: refund the buyer, release to the seller, or split.", Credential("operator"), post(escrow::resolve))
        },
        // ---- QR payments (users) ----
        Endpoint {
            body: Some(object(&[("payload", text("the scanned text, as read from the QR code"))], &["payload"])),
            responses: &[(200, "scheme, network, status (active, revoked, flagged, expired, used, unknown, not_payable_here), payable, merchant, amount or null (enter the amount), and for this network's codes the registration receipt"), (422, PROBLEM)],
            ..endpoint("POST", "/v1/qr/scan", "qr", "Read a scanned code: issued here and registered, revoked, flagged, forged, or another network's.", Session, post(qr::scan))
        },
        Endpoint {
            idempotent: true,
            body: Some(object(&[("payload", text("the scanned text")), ("amount", minor_units("required for a static code; for a dynamic code, must equal the order's")), ("payment_password", payment_password.clone())], &["payload", "payment_password"])),
            responses: &[(200, "the paid order"), (422, PROBLEM)],
            ..endpoint("POST", "/v1/qr/pay", "qr", "Pay a scanned merchant code: a dynamic code pays its order, a static one the amount typed.", Session, post(qr::pay_code))
        },
        Endpoint {
            body: Some(object(&[("payload", text("the scanned text")), ("reason", text("up to 256 bytes"))], &["payload"])),
            responses: &[(201, "the report, and the code's state (flagged after enough reports)")],
            ..endpoint("POST", "/v1/qr/reports", "qr", "Report a code as fraudulent.", Session, post(qr::report_code))
        },
        Endpoint {
            body: Some(object(&[("name", text("the device's name")), ("payment_password", payment_password.clone())], &["name", "payment_password"])),
            responses: &[(201, "the device, its number and secret (shown once) and how to derive codes"), (422, PROBLEM)],
            ..endpoint("POST", "/v1/me/devices", "qr", "Enrol a device to make one-time payment codes offline.", Session, post(qr::enrol_device))
        },
        endpoint("GET", "/v1/me/devices", "qr", "The user's enrolled devices.", Session, get(qr::list_devices)),
        Endpoint {
            responses: &[(200, "revoked"), (404, PROBLEM)],
            ..endpoint("DELETE", "/v1/me/devices/{id}", "qr", "Revoke a device: its codes are refused from now on.", Session, delete(qr::revoke_device))
        },
        endpoint("GET", "/v1/me/pending-payments", "qr", "Payment-code charges waiting for the user to confirm (USERPAYING); confirm with POST /v1/orders/{id}/pay.", Session, get(qr::pending_payments)),
        // ---- QR payments (merchants and operators) ----
        Endpoint {
            idempotent: true,
            body: Some(object(&[("kind", text("static or dynamic")), ("outlet_id", text("a static code's store or terminal (out_…)")), ("order_id", text("a dynamic code's unpaid order (ord_…)")), ("notify_url", text("http:// address notified of a static code's payments"))], &["kind"])),
            responses: &[(201, "the code: its EMVCo payload and registration"), (400, PROBLEM), (404, PROBLEM)],
            ..endpoint("POST", "/v1/qr-codes", "qr", "Issue a merchant-presented code, registered in the trust log.", Merchant, post(qr::issue_code))
        },
        Endpoint {
            query: &[("limit", "1 to 100 (20)"), ("starting_after", "qrc_… of the previous page")],
            ..endpoint("GET", "/v1/qr-codes", "qr", "The merchant's codes.", Merchant, get(qr::list_codes))
        },
        endpoint("GET", "/v1/qr-codes/{id}", "qr", "One of the merchant's codes, with its registration receipt.", Merchant, get(qr::get_code)),
        Endpoint {
            responses: &[(200, "revoked"), (404, PROBLEM)],
            ..endpoint("POST", "/v1/qr-codes/{id}/revoke", "qr", "Revoke a code, for good.", Merchant, post(qr::revoke_code))
        },
        Endpoint {
            body: Some(object(&[("state", text("flagged or active"))], &["state"])),
            responses: &[(200, "the code"), (404, PROBLEM)],
            ..endpoint("PUT", "/v1/qr-codes/{id}/state", "operators", "Flag a code as fraudulent, or clear the flag.", Credential("operator"), put(qr::set_code_state))
        },
        Endpoint {
            query: &[("limit", "1 to 100 (20)")],
            ..endpoint("GET", "/v1/qr-reports", "operators", "The newest reports of fraudulent codes.", Credential("operator"), get(qr::list_reports))
        },
        Endpoint {
            idempotent: true,
            body: Some(object(&[("auth_code", text("the 18-digit payment code the POS scanned")), ("out_trade_no", text("the merchant's reference, unique per merchant")), ("amount", minor_units("minor units")), ("currency", text("ISO 4217, the platform's currency")), ("description", text("up to 256 bytes")), ("notify_url", text("http:// address for notifications")), ("outlet_id", text("out_…"))], &["auth_code", "out_trade_no", "amount", "currency"])),
            responses: &[(201, "the order: SUCCESS (paid without the password), or USERPAYING (waiting for the payer)"), (200, "the same out_trade_no again: the existing order"), (409, PROBLEM), (422, PROBLEM), (423, PROBLEM)],
            ..endpoint("POST", "/v1/pos/charges", "qr", "Charge a customer's payment code at a POS.", Merchant, post(qr::charge))
        },
        // ---- Bill payments ----
        Endpoint {
            query: &[("category", "electricity, water, gas, phone, internet or television"), ("limit", "1 to 100 (20)"), ("starting_after", "blr_… of the previous page")],
            ..endpoint("GET", "/v1/billers", "bills", "The billers bills can be paid to, with the rule of their references and, for top-ups, their fixed amounts.", Session, get(bill_payments::list_billers))
        },
        Endpoint {
            responses: &[(200, "the biller"), (404, PROBLEM)],
            ..endpoint("GET", "/v1/billers/{id}", "bills", "One biller.", Session, get(bill_payments::get_biller))
        },
        Endpoint {
            body: Some(object(&[("biller_id", text("blr_…")), ("reference", text("the customer reference (account or phone number) as on the bill; spaces and dashes are ignored"))], &["biller_id", "reference"])),
            responses: &[(200, "the name on the account (masked), the amount due and the due date (null for a prepaid line), the biller's fixed amounts"), (404, PROBLEM), (422, PROBLEM), (504, PROBLEM)],
            ..endpoint("POST", "/v1/bill-inquiries", "bills", "Ask a biller about a customer reference; one that breaks the biller's rule (length, characters, check digit) is refused without asking.", Session, post(bill_payments::inquire))
        },
        Endpoint {
            idempotent: true,
            body: Some(object(&[("biller_id", text("blr_…")), ("reference", text("the customer reference")), ("amount", minor_units("minor units; for a biller with fixed amounts (phone top-up), one of them")), ("payment_password", payment_password.clone())], &["biller_id", "reference", "amount", "payment_password"])),
            responses: &[(201, "succeeded: the biller's confirmation number is the receipt"), (202, "held; the biller has not answered yet (settled later, once)"), (401, PROBLEM), (422, PROBLEM), (504, PROBLEM)],
            ..endpoint("POST", "/v1/bill-payments", "bills", "Pay a bill or top up a phone: the amount is held, then posted when the biller confirms or given back when it refuses.", Session, post(bill_payments::pay))
        },
        Endpoint {
            responses: &[(200, "the bill payment: state, confirmation or failure"), (404, PROBLEM)],
            ..endpoint("GET", "/v1/bill-payments/{id}", "bills", "One of the user's bill payments.", Session, get(bill_payments::get_payment))
        },
        Endpoint {
            query: &[("limit", "1 to 100 (20)"), ("starting_after", "bp_… of the previous page")],
            ..endpoint("GET", "/v1/me/bill-payments", "bills", "The user's bill payments, newest first.", Session, get(bill_payments::my_payments))
        },
        Endpoint {
            body: Some(object(&[("biller_id", text("blr_…")), ("reference", text("the customer reference")), ("nickname", text("up to 64 bytes, e.g. home"))], &["biller_id", "reference"])),
            responses: &[(201, "saved"), (200, "saved already: renamed"), (404, PROBLEM), (422, PROBLEM)],
            ..endpoint("POST", "/v1/me/saved-billers", "bills", "Save a biller and reference to pay again.", Session, post(bill_payments::save))
        },
        endpoint("GET", "/v1/me/saved-billers", "bills", "The user's saved billers.", Session, get(bill_payments::list_saved)),
        Endpoint {
            responses: &[(204, "deleted"), (404, PROBLEM)],
            ..endpoint("DELETE", "/v1/me/saved-billers/{id}", "bills", "Forget a saved biller.", Session, delete(bill_payments::delete_saved))
        },
        // ---- Merchants ----
        Endpoint {
            idempotent: true,
            body: Some(object(&[("name", text("trading name")), ("mcc", text("ISO 18245, four digits")), ("country", text("ISO 3166-1 alpha-2")), ("city", text("city")), ("settlement_account", text("the merchant's bank account")), ("fee_rate_bps", json!({"type": "integer", "minimum": 0, "maximum": 10000}))], &["name", "mcc", "country", "city", "settlement_account", "fee_rate_bps"])),
            responses: &[(201, "the merchant, its API key and notification secret (shown once)"), (400, PROBLEM)],
            ..endpoint("POST", "/v1/merchants", "operators", "Onboard a merchant.", Credential("operator"), post(payments::onboard_merchant))
        },
        Endpoint {
            responses: &[(201, "the key and its secret (shown once)"), (404, PROBLEM)],
            ..endpoint("POST", "/v1/merchants/{id}/keys", "operators", "A new API key for a merchant.", Credential("operator"), post(payments::create_key))
        },
        Endpoint {
            responses: &[(204, "revoked"), (404, PROBLEM)],
            ..endpoint("DELETE", "/v1/merchants/{id}/keys/{key}", "operators", "Revoke an API key.", Credential("operator"), delete(payments::revoke_key))
        },
        Endpoint {
            body: Some(object(&[("tier", json!({"type": "integer", "minimum": 0, "maximum": 2}))], &["tier"])),
            responses: &[(204, "set"), (404, PROBLEM)],
            ..endpoint("PUT", "/v1/users/{id}/tier", "operators", "Set a user's real-name tier (2 after a document check).", Credential("operator"), put(payments::set_tier))
        },
        Endpoint {
            idempotent: true,
            body: Some(object(&[("code", text("the biller's code at its connector: 1 to 32 of A-Z 0-9 _ -, unique")), ("name", text("the biller's name")), ("category", text("electricity, water, gas, phone, internet or television")), ("reference_label", text("what the reference is called on the bills, e.g. Customer number")), ("reference_charset", text("digits (default) or alphanumeric")), ("reference_length_min", json!({"type": "integer", "minimum": 1, "maximum": 32})), ("reference_length_max", json!({"type": "integer", "minimum": 1, "maximum": 32})), ("reference_prefix", text("what every reference starts with (default: anything)")), ("check_digit", text("none (default), luhn or mod11 (weights 2-7 from the right)")), ("denominations", json!({"type": "array", "items": {"type": "integer", "minimum": 1}, "description": "the only amounts accepted, ascending (required for phone top-up)"}))], &["code", "name", "category", "reference_label", "reference_length_min", "reference_length_max"])),
            responses: &[(201, "the biller, with its ledger account"), (400, PROBLEM), (409, PROBLEM)],
            ..endpoint("POST", "/v1/billers", "operators", "Register a biller (electricity, water, gas, phone top-up …) with its reference rule.", Credential("operator"), post(bill_payments::register_biller))
        },
        Endpoint {
            query: &[("limit", "1 to 100 (20)")],
            ..endpoint("GET", "/v1/admin/events", "operators", "The newest notifications and their delivery attempts.", Credential("operator"), get(payments::recent_events))
        },
        endpoint("GET", "/v1/merchant", "merchants", "The signed-in merchant and its balance.", Merchant, get(payments::merchant_me)),
        Endpoint {
            idempotent: true,
            body: Some(object(&[("kind", text("store or terminal")), ("name", text("name")), ("store_id", text("the store of a terminal (out_…)"))], &["kind", "name"])),
            responses: &[(201, "created"), (400, PROBLEM), (404, PROBLEM)],
            ..endpoint("POST", "/v1/outlets", "merchants", "Add a store, or a terminal in a store.", Merchant, post(payments::create_outlet))
        },
        Endpoint {
            idempotent: true,
            body: Some(object(&[("out_trade_no", text("the merchant's reference: 1 to 32 of A-Z a-z 0-9 _ - | *, unique per merchant")), ("amount", minor_units("minor units")), ("currency", text("ISO 4217, the platform's currency")), ("description", text("up to 256 bytes")), ("notify_url", text("http:// address for notifications")), ("outlet_id", text("out_…")), ("expires_in", json!({"type": "integer", "minimum": 1, "description": "seconds (default 7200)"})), ("escrow", json!({"type": "boolean", "description": "paid into escrow until the buyer confirms receipt (default false)"}))], &["out_trade_no", "amount", "currency"])),
            responses: &[(201, "the order (NOTPAY)"), (200, "the same out_trade_no again: the existing order"), (400, PROBLEM), (401, PROBLEM), (409, PROBLEM)],
            ..endpoint("POST", "/v1/orders", "orders", "Create an order.", Merchant, post(payments::create_order))
        },
        Endpoint {
            query: &[("out_trade_no", "find one order by the merchant's reference"), ("limit", "1 to 100 (20)"), ("starting_after", "ord_… of the previous page")],
            ..endpoint("GET", "/v1/orders", "orders", "The merchant's orders, or one by out_trade_no.", Merchant, get(payments::list_orders))
        },
        Endpoint {
            responses: &[(200, "the order"), (404, PROBLEM)],
            ..endpoint("GET", "/v1/orders/{id}", "orders", "One of the merchant's orders.", Merchant, get(payments::get_order))
        },
        Endpoint {
            responses: &[(200, "the closed order"), (422, PROBLEM)],
            ..endpoint("POST", "/v1/orders/{id}/close", "orders", "Close an unpaid order.", Merchant, post(payments::close_order))
        },
        Endpoint {
            idempotent: true,
            body: Some(object(&[("out_refund_no", text("the merchant's reference, unique per merchant")), ("amount", minor_units("up to what is left of the paid amount")), ("reason", text("up to 256 bytes"))], &["out_refund_no", "amount"])),
            responses: &[(201, "the refund"), (409, PROBLEM), (422, PROBLEM)],
            ..endpoint("POST", "/v1/orders/{id}/refunds", "orders", "Refund part or all of a paid order.", Merchant, post(payments::refund_order))
        },
        endpoint("GET", "/v1/orders/{id}/refunds", "orders", "An order's refunds.", Merchant, get(payments::list_refunds)),
        Endpoint {
            query: &[("limit", "1 to 100 (20)"), ("starting_after", "evt_… of the previous page")],
            ..endpoint("GET", "/v1/events", "orders", "The merchant's notifications, oldest first (polling instead of, or besides, notify_url).", Merchant, get(payments::list_events))
        },
        Endpoint {
            responses: &[(200, "text/csv: one line per payment and refund, then totals"), (400, PROBLEM)],
            ..endpoint("GET", "/v1/bills/{date}", "orders", "The merchant's bill of one UTC day (YYYY-MM-DD).", Merchant, get(payments::daily_bill))
        },
        // ---- E-invoices ----
        Endpoint {
            idempotent: true,
            body: Some(object(&[
                ("order_id", text("a paid order of the merchant (ord_…)")),
                ("seller_tax_id", text("the merchant's tax id, 1 to 32 upper-case letters and digits; the same on all its invoices")),
                ("buyer", described(object(&[("name", text("the buyer's name, up to 256 bytes")), ("tax_id", text("the buyer's tax id; none for an individual"))], &["name"]), "the buyer: name (up to 256 bytes) and tax_id (upper-case letters and digits; none for an individual)")),
                ("items", json!({"type": "array", "minItems": 1, "maxItems": 50, "description": "1 to 50 lines: description (up to 120 bytes), quantity (1 to 1000000), unit_price (minor units, tax included), tax_rate_bps (0 to 10000); the lines' totals must add up to the order's amount less its refunds",
                    "items": object(&[("description", text("what was sold")), ("quantity", json!({"type": "integer", "minimum": 1, "maximum": 1_000_000})), ("unit_price", minor_units("tax included")), ("tax_rate_bps", json!({"type": "integer", "minimum": 0, "maximum": 10_000}))], &["description", "quantity", "unit_price", "tax_rate_bps"])})),
            ], &["order_id", "seller_tax_id", "buyer", "items"])),
            responses: &[(201, "the invoice: its number, lines split into amount and tax, canonical document, digest and registration"), (400, PROBLEM), (404, PROBLEM), (409, PROBLEM), (422, PROBLEM)],
            ..endpoint("POST", "/v1/invoices", "invoices", "Issue an e-invoice for a paid order, its document's SHA-256 registered in the trust log.", Merchant, post(invoices::issue))
        },
        Endpoint {
            query: &[("limit", "1 to 100 (20)"), ("starting_after", "inv_… of the previous page")],
            ..endpoint("GET", "/v1/invoices", "invoices", "The merchant's invoices, red-letter ones included.", Merchant, get(invoices::list))
        },
        Endpoint {
            responses: &[(200, "the invoice, its reimbursement or the red-letter invoice that voided it, and its registration receipt"), (404, PROBLEM)],
            ..endpoint("GET", "/v1/invoices/{id}", "invoices", "One of the merchant's invoices, with its receipt.", Merchant, get(invoices::get))
        },
        Endpoint {
            idempotent: true,
            responses: &[(201, "the red-letter invoice (lines negated, registered) and the original, now voided"), (404, PROBLEM), (409, PROBLEM), (422, PROBLEM)],
            ..endpoint("POST", "/v1/invoices/{id}/void", "invoices", "Void an invoice not yet reimbursed with a red-letter invoice; the order may then be invoiced again.", Merchant, post(invoices::void))
        },
        Endpoint {
            body: Some(object(&[("number", text("the invoice number")), ("seller_tax_id", text("the seller's tax id")), ("digest", text("SHA-256 of the canonical document, 64 hex digits (this or document)")), ("document", text("the canonical document itself, exactly as issued (this or digest)"))], &["number", "seller_tax_id"])),
            responses: &[(200, "registered (true or false), status (issued, reimbursed, voided), the red-letter invoice that voided it, and the registration receipt"), (400, PROBLEM)],
            ..endpoint("POST", "/v1/invoices/verify", "invoices", "Verify an invoice: registered or not (altered, forged), and its status.", Public, post(invoices::verify))
        },
        Endpoint {
            idempotent: true,
            body: Some(object(&[("organisation", text("the organisation reimbursing it, up to 256 bytes")), ("claim_reference", text("its expense claim, up to 64 bytes")), ("digest", text("SHA-256 of the document claimed, 64 hex digits (this or document)")), ("document", text("the document claimed, exactly as issued (this or digest)"))], &["organisation", "claim_reference"])),
            responses: &[(201, "reimbursed"), (404, PROBLEM), (409, PROBLEM), (422, PROBLEM)],
            ..endpoint("POST", "/v1/invoices/{id}/reimbursements", "invoices", "Record an organisation's reimbursement of an invoice, once: a second claim is refused with invoice_already_reimbursed, naming when.", Credential("operator"), post(invoices::reimburse))
        },
    ]
}

fn security(access: Access) -> Value {
    match access {
        Access::Public => json!([]),
        Access::Credential(_) => json!([{"credential": []}]),
        Access::Session => json!([{"session": []}]),
        Access::Merchant => json!([{"merchantSignature": []}]),
    }
}

/// The OpenAPI 3.1 document of [`endpoints`].
pub fn document() -> Value {
    let mut paths = Map::new();
    for endpoint in endpoints() {
        let mut operation = Map::new();
        operation.insert("summary".into(), json!(endpoint.summary));
        operation.insert("tags".into(), json!([endpoint.tag]));
        operation.insert("security".into(), security(endpoint.access));
        if let Access::Credential(role) = endpoint.access {
            operation.insert(
                "description".into(),
                json!(format!(
                    "Needs a credential with the {role} role (or operator)."
                )),
            );
        }
        let mut parameters = Vec::new();
        for segment in endpoint.path.split('/') {
            if let Some(name) = segment
                .strip_prefix('{')
                .and_then(|rest| rest.strip_suffix('}'))
            {
                parameters.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
            }
        }
        for (name, description) in endpoint.query {
            parameters.push(json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": "string"}}));
        }
        if endpoint.idempotent {
            parameters.push(json!({"name": "Idempotency-Key", "in": "header", "required": false,
                "description": "retries with the same key replay the first answer; the same key with another request is a 409",
                "schema": {"type": "string", "maxLength": 255}}));
        }
        if !parameters.is_empty() {
            operation.insert("parameters".into(), Value::Array(parameters));
        }
        if let Some(body) = &endpoint.body {
            operation.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": body}}}),
            );
        }
        let mut responses = Map::new();
        for (status, description) in endpoint.responses {
            let content = if *description == PROBLEM {
                json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}})
            } else {
                json!({"application/json": {}})
            };
            responses.insert(
                status.to_string(),
                json!({"description": description, "content": content}),
            );
        }
        operation.insert("responses".into(), Value::Object(responses));
        let entry = paths
            .entry(endpoint.path.to_owned())
            .or_insert_with(|| json!({}));
        entry[endpoint.method.to_ascii_lowercase()] = Value::Object(operation);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Tally",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Wallets, merchant orders, refunds, P2P transfers, cards, QR payments, bill payments and the trust log. Amounts are integers in minor units of the currency; ids are prefixed (usr_, mch_, ord_, rfd_ …); times are RFC 3339 UTC.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "credential": {"type": "http", "scheme": "bearer", "description": "tally_<id>_<secret> from `tally admin credentials create`"},
                "session": {"type": "http", "scheme": "bearer", "description": "sess_… from POST /v1/sessions"},
                "merchantSignature": {"type": "apiKey", "in": "header", "name": "Authorization",
                    "description": "TALLY-HMAC-SHA256 key=mk_…,timestamp=<unix>,nonce=<8-64 of A-Za-z0-9_->,signature=<hex HMAC-SHA256, keyed by SHA-256 of the API secret, of METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nhex(SHA-256(body))>; 5-minute window; a nonce is accepted once"},
            },
            "schemas": {
                "Problem": {"type": "object", "description": "RFC 9457", "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                    "code": {"type": "string", "description": "stable, snake_case: insufficient_funds, limit_exceeded, order_paid, order_closed, order_expired, amount_mismatch, wrong_payment_password, payment_locked, invalid_signature, idempotency_conflict …"},
                    "detail": {"type": "string"}}},
            },
        },
    })
}

/// The reference in Markdown, as `docs/api.md` holds it.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Tally HTTP API\n\nGenerated from the server's endpoint table (`crates/server/src/api.rs`); the same table builds the router and `GET /v1/openapi.json` (OpenAPI 3.1). Amounts are integers in minor units (`\"amount\": 1234, \"currency\": \"CNY\"` is 12.34 CNY); ids are prefixed and time-sortable; times are RFC 3339 UTC; every error is an RFC 9457 problem document with a stable `code`.\n\nAuthentication: **credential** — `Authorization: Bearer tally_…` (operators, auditors, depositors); **session** — `Authorization: Bearer sess_…` (users); **merchant** — `Authorization: TALLY-HMAC-SHA256 key=mk_…,timestamp=…,nonce=…,signature=…`, the HMAC-SHA256 keyed by SHA-256 of the API secret over `METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nhex(SHA-256(body))`, within 5 minutes, each nonce once.\n\nNotifications: `POST notify_url` with the event as body and `Tally-Signature: t=<unix>,v1=<hex HMAC-SHA256 of \"t.body\">` keyed by the merchant's notification secret (`whsec_…`, the 32 bytes after the prefix); `sequence` orders an object's events; answer 2xx, or it is retried after 15 s, 30 s, 3 min, 10 min, 20 min, 30 min, 1 h, 3 h and 6 h.\n",
    );
    let mut tag = "";
    for endpoint in endpoints() {
        if endpoint.tag != tag {
            tag = endpoint.tag;
            out.push_str(&format!("\n## {}\n", tag[..1].to_uppercase() + &tag[1..]));
        }
        let access = match endpoint.access {
            Access::Public => "public".to_owned(),
            Access::Credential(role) => format!("credential ({role})"),
            Access::Session => "session".to_owned(),
            Access::Merchant => "merchant".to_owned(),
        };
        out.push_str(&format!(
            "\n### `{} {}`\n\n{} Access: {access}.{}\n",
            endpoint.method,
            endpoint.path,
            endpoint.summary,
            if endpoint.idempotent {
                " Takes an `Idempotency-Key`."
            } else {
                ""
            }
        ));
        if !endpoint.query.is_empty() {
            out.push_str("\nQuery:\n");
            for (name, description) in endpoint.query {
                out.push_str(&format!("- `{name}`: {description}\n"));
            }
        }
        if let Some(body) = &endpoint.body {
            out.push_str("\nBody (JSON, unknown fields refused):\n");
            let required: Vec<&str> = body["required"]
                .as_array()
                .map(|names| names.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(properties) = body["properties"].as_object() {
                for (name, schema) in properties {
                    let description = schema["description"]
                        .as_str()
                        .unwrap_or(schema["type"].as_str().unwrap_or(""));
                    let optional = if required.contains(&name.as_str()) {
                        ""
                    } else {
                        " (optional)"
                    };
                    out.push_str(&format!("- `{name}`{optional}: {description}\n"));
                }
            }
        }
        out.push_str("\nAnswers: ");
        let answers: Vec<String> = endpoint
            .responses
            .iter()
            .map(|(status, description)| format!("{status} {description}"))
            .collect();
        out.push_str(&answers.join("; "));
        out.push('\n');
    }
    out
}

/// `GET /v1/openapi.json`.
pub(crate) async fn openapi() -> axum::Json<Value> {
    axum::Json(document())
}
