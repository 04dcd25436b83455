//! E-invoices through HTTP: issued for paid orders and registered in the trust log, verified by
//! anyone, reimbursed once, voided by red-letter invoices.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::payments::{fund, onboard, pay, sign_up, TestMerchant};
use super::{request, signed_app_config, spawn_app_with, token, Answer, TestApp};

const PAYMENT_PASSWORD: &str = "246810";
const SELLER: &str = "91330100MA27XYZ12K";
const BUYER: &str = "91330106MA2B0ABC3D";

fn balance(app: &TestApp, account: u128) -> u128 {
    let account = app
        .store
        .reader()
        .unwrap()
        .account(account)
        .unwrap()
        .unwrap();
    account.credits_posted - account.debits_posted
}

fn merchant_account(merchant: &TestMerchant) -> u128 {
    merchant.id.strip_prefix("mch_").unwrap().parse().unwrap()
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// An order of `amount` created by `merchant` and paid by the user.
async fn paid_order(
    app: &TestApp,
    merchant: &TestMerchant,
    payer: &str,
    out_trade_no: &str,
    amount: u64,
) -> String {
    let order = merchant.create_order(app, out_trade_no, amount).await;
    let order_id = order["id"].as_str().unwrap().to_owned();
    let paid = pay(app, payer, &order_id, amount, PAYMENT_PASSWORD, None).await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    order_id
}

fn invoice_body(order_id: &str, items: Value) -> Value {
    json!({
        "order_id": order_id,
        "seller_tax_id": SELLER,
        "buyer": {"name": "Hangzhou Widgets Ltd", "tax_id": BUYER},
        "items": items,
    })
}

/// Two bowls at 3.00 (6 % tax included) and a tea at 2.00 (no tax): 8.00.
fn lines() -> Value {
    json!([
        {"description": "beef noodles", "quantity": 2, "unit_price": 300, "tax_rate_bps": 600},
        {"description": "green tea", "quantity": 1, "unit_price": 200, "tax_rate_bps": 0},
    ])
}

async fn issue(app: &TestApp, merchant: &TestMerchant, body: Value, key: Option<&str>) -> Answer {
    merchant
        .send(app, "POST", "/v1/invoices", &body.to_string(), key)
        .await
}

async fn issued(app: &TestApp, merchant: &TestMerchant, order_id: &str) -> Value {
    let answer = issue(app, merchant, invoice_body(order_id, lines()), None).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    answer.json()
}

async fn verify(app: &TestApp, body: Value) -> Value {
    let answer = request(
        app,
        "POST",
        "/v1/invoices/verify",
        &[("Content-Type", "application/json")],
        &body.to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

async fn reimburse(
    app: &TestApp,
    bearer: &str,
    invoice_id: &str,
    body: Value,
    key: Option<&str>,
) -> Answer {
    let mut headers = vec![
        ("Authorization", bearer),
        ("Content-Type", "application/json"),
    ];
    if let Some(key) = key {
        headers.push(("Idempotency-Key", key));
    }
    request(
        app,
        "POST",
        &format!("/v1/invoices/{invoice_id}/reimbursements"),
        &headers,
        &body.to_string(),
    )
    .await
}

async fn void(app: &TestApp, merchant: &TestMerchant, invoice_id: &str) -> Answer {
    merchant
        .send(
            app,
            "POST",
            &format!("/v1/invoices/{invoice_id}/void"),
            "",
            None,
        )
        .await
}

async fn fetch(app: &TestApp, merchant: &TestMerchant, invoice_id: &str) -> Value {
    let answer = merchant
        .send(app, "GET", &format!("/v1/invoices/{invoice_id}"), "", None)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

async fn count_invoices(app: &TestApp, merchant: &TestMerchant) -> usize {
    let answer = merchant
        .send(app, "GET", "/v1/invoices?limit=100", "", None)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()["data"].as_array().unwrap().len()
}

/// The receipt verifies under the log's key, and its leaf registers `digest` as an e-invoice.
fn assert_receipt_registers(receipt: &Value, digest: &str, verifier_key: &str) {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let leaf = engine.decode(receipt["leaf"].as_str().unwrap()).unwrap();
    assert_eq!(leaf[0], store::LOG_LEAF_REGISTRATION);
    assert_eq!(&leaf[10..12], &[0, 3], "registration kind 3: an e-invoice");
    let in_leaf: String = leaf[12..44]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(in_leaf, digest);
    let receipt = trustlog::Receipt {
        leaf,
        leaf_index: receipt["leaf_index"].as_u64().unwrap(),
        tree_size: receipt["tree_size"].as_u64().unwrap(),
        inclusion_path: super::decode_hashes(&receipt["inclusion_path"]),
        checkpoint: receipt["checkpoint"].as_str().unwrap().to_owned(),
    };
    trustlog::verify_receipt(&receipt, verifier_key).unwrap();
}

#[tokio::test]
async fn invoices_are_issued_for_paid_orders_registered_and_verified_by_anyone() {
    let (config, verifier_key) = signed_app_config();
    let app = spawn_app_with(config).await;
    let merchant = onboard(&app, "West Lake Tea", 60).await;
    let other = onboard(&app, "Other Shop", 60).await;
    let (payer, _, wallet) = sign_up(&app, "+8613700000001").await;
    fund(&app, wallet, 100_000).await;

    // An unpaid order, another merchant's order: refused, nothing issued.
    let unpaid = merchant.create_order(&app, "T-unpaid", 1_000).await;
    let refused = issue(
        &app,
        &merchant,
        invoice_body(unpaid["id"].as_str().unwrap(), lines()),
        None,
    )
    .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.json()["code"], "order_not_paid");
    assert_eq!(refused.content_type, "application/problem+json");
    let theirs = paid_order(&app, &other, &payer, "O-1", 800).await;
    let refused = issue(&app, &merchant, invoice_body(&theirs, lines()), None).await;
    assert_eq!(refused.status, 404, "{}", refused.body);
    assert_eq!(refused.json()["code"], "not_found");

    // Paid 10.00, 2.00 refunded: the lines must add up to 8.00.
    let order_id = paid_order(&app, &merchant, &payer, "T-1", 1_000).await;
    let refunded = merchant
        .send(
            &app,
            "POST",
            &format!("/v1/orders/{order_id}/refunds"),
            &json!({"out_refund_no": "R-1", "amount": 200}).to_string(),
            None,
        )
        .await;
    assert_eq!(refunded.status, 201, "{}", refunded.body);
    let whole = json!([{"description": "beef noodles", "quantity": 2, "unit_price": 500, "tax_rate_bps": 600}]);
    let refused = issue(&app, &merchant, invoice_body(&order_id, whole), None).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.json()["code"], "invoice_amount_mismatch");
    let mut lower_case = invoice_body(&order_id, lines());
    lower_case["seller_tax_id"] = json!("91330100ma27xyz12k");
    let refused = issue(&app, &merchant, lower_case, None).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.json()["code"], "invalid_request");
    let too_many: Vec<Value> = (0..51)
        .map(|_| json!({"description": "x", "quantity": 1, "unit_price": 1, "tax_rate_bps": 0}))
        .collect();
    let refused = issue(
        &app,
        &merchant,
        invoice_body(&order_id, json!(too_many)),
        None,
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(count_invoices(&app, &merchant).await, 0);
    let merchant_before = balance(&app, merchant_account(&merchant));

    let invoice = issued(&app, &merchant, &order_id).await;
    assert_eq!(invoice["object"], "invoice");
    assert_eq!(invoice["number"], "00000001");
    assert_eq!(invoice["kind"], "standard");
    assert_eq!(invoice["state"], "issued");
    assert_eq!(invoice["order_id"], order_id.as_str());
    // 6.00 at 6 % holds 0.34 of tax (33.96, half up); the tea none.
    assert_eq!(
        (&invoice["amount"], &invoice["tax"], &invoice["total"]),
        (&json!(766), &json!(34), &json!(800))
    );
    assert_eq!(invoice["items"][0]["amount"], 566);
    assert_eq!(invoice["items"][0]["tax"], 34);
    assert_eq!(invoice["seller"]["name"], "West Lake Tea");
    assert_eq!(invoice["seller"]["tax_id"], SELLER);
    assert_eq!(invoice["buyer"]["tax_id"], BUYER);
    // The canonical document: compact, keys in order, amounts in minor units; its digest is
    // its plain SHA-256.
    let document = invoice["document"].as_str().unwrap().to_owned();
    assert!(
        document.starts_with(r#"{"buyer":{"name":"Hangzhou Widgets Ltd","tax_id":"91330106MA2B0ABC3D"},"currency":"CNY","#),
        "{document}"
    );
    assert!(
        document.contains(r#""totals":{"amount":766,"tax":34,"total":800},"version":1}"#),
        "{document}"
    );
    let digest = sha256_hex(&document);
    assert_eq!(invoice["digest"], digest.as_str());
    let invoice_id = invoice["id"].as_str().unwrap().to_owned();

    // The receipt's leaf registers that digest, under a signed checkpoint.
    let fetched = fetch(&app, &merchant, &invoice_id).await;
    assert_eq!(fetched["document"], document.as_str());
    assert_eq!(fetched["registration_id"], invoice["registration_id"]);
    assert_receipt_registers(&fetched["receipt"], &digest, &verifier_key);
    let hidden = other
        .send(&app, "GET", &format!("/v1/invoices/{invoice_id}"), "", None)
        .await;
    assert_eq!(hidden.status, 404, "{}", hidden.body);

    // One invoice in force per order.
    let again = issue(&app, &merchant, invoice_body(&order_id, lines()), None).await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.json()["code"], "order_invoiced");
    assert!(again.json()["detail"]
        .as_str()
        .unwrap()
        .contains("00000001"));

    // Anyone verifies it, with the document or its digest, without credentials.
    let by_document = verify(
        &app,
        json!({"number": "00000001", "seller_tax_id": SELLER, "document": document}),
    )
    .await;
    assert_eq!(by_document["registered"], true, "{by_document}");
    assert_eq!(by_document["status"], "issued");
    assert_eq!(by_document["invoice"]["id"], invoice_id.as_str());
    assert_receipt_registers(&by_document["receipt"], &digest, &verifier_key);
    let by_digest = verify(
        &app,
        json!({"number": "00000001", "seller_tax_id": SELLER, "digest": digest}),
    )
    .await;
    assert_eq!(by_digest["registered"], true, "{by_digest}");
    // A tampered copy (another total), another number, another seller: not registered.
    let tampered = document.replace(r#""total":800"#, r#""total":8000"#);
    assert_ne!(tampered, document);
    for body in [
        json!({"number": "00000001", "seller_tax_id": SELLER, "document": tampered}),
        json!({"number": "00000002", "seller_tax_id": SELLER, "document": document}),
        json!({"number": "00000001", "seller_tax_id": BUYER, "digest": digest}),
    ] {
        let answer = verify(&app, body).await;
        assert_eq!(answer["registered"], false, "{answer}");
        assert_eq!(answer["status"], Value::Null);
    }
    let both = request(
        &app,
        "POST",
        "/v1/invoices/verify",
        &[("Content-Type", "application/json")],
        &json!({"number": "00000001", "seller_tax_id": SELLER, "digest": digest, "document": document}).to_string(),
    )
    .await;
    assert_eq!(both.status, 400, "{}", both.body);

    // With an Idempotency-Key a retry answers the first invoice; the next number follows.
    let second_order = paid_order(&app, &merchant, &payer, "T-2", 800).await;
    let first = issue(
        &app,
        &merchant,
        invoice_body(&second_order, lines()),
        Some("inv-T-2"),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.json()["number"], "00000002");
    let retried = issue(
        &app,
        &merchant,
        invoice_body(&second_order, lines()),
        Some("inv-T-2"),
    )
    .await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    assert_eq!(retried.body, first.body);
    let reused = issue(
        &app,
        &merchant,
        invoice_body(&order_id, lines()),
        Some("inv-T-2"),
    )
    .await;
    assert_eq!(reused.status, 409, "{}", reused.body);
    assert_eq!(reused.json()["code"], "idempotency_conflict");
    assert_eq!(count_invoices(&app, &merchant).await, 2);

    // A merchant invoices under one seller tax id.
    let third_order = paid_order(&app, &merchant, &payer, "T-3", 800).await;
    let mut other_seller = invoice_body(&third_order, lines());
    other_seller["seller_tax_id"] = json!("91330100MA27XYZ99X");
    let refused = issue(&app, &merchant, other_seller, None).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.json()["code"], "seller_tax_id_mismatch");
    // Invoices move no money.
    assert_eq!(
        balance(&app, merchant_account(&merchant)),
        merchant_before + 1_590
    );
    app.stop().await;
}

#[tokio::test]
async fn an_invoice_is_reimbursed_once_and_then_cannot_be_voided() {
    let (config, _) = signed_app_config();
    let app = spawn_app_with(config).await;
    let merchant = onboard(&app, "West Lake Tea", 60).await;
    let (payer, _, wallet) = sign_up(&app, "+8613700000002").await;
    fund(&app, wallet, 10_000).await;
    let order_id = paid_order(&app, &merchant, &payer, "T-1", 800).await;
    let invoice = issued(&app, &merchant, &order_id).await;
    let invoice_id = invoice["id"].as_str().unwrap();
    let document = invoice["document"].as_str().unwrap();
    let digest = invoice["digest"].as_str().unwrap();
    let operator = format!("Bearer {}", token(&app, store::CredentialRole::Operator));
    let claim = |organisation: &str, reference: &str| json!({"organisation": organisation, "claim_reference": reference, "digest": digest});

    // Operators record reimbursements: no credential, or an auditor's, is refused.
    let anonymous = request(
        &app,
        "POST",
        &format!("/v1/invoices/{invoice_id}/reimbursements"),
        &[("Content-Type", "application/json")],
        &claim("Hangzhou Widgets Ltd", "EXP-1").to_string(),
    )
    .await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    let auditor = format!("Bearer {}", token(&app, store::CredentialRole::Auditor));
    let forbidden = reimburse(
        &app,
        &auditor,
        invoice_id,
        claim("Hangzhou Widgets Ltd", "EXP-1"),
        None,
    )
    .await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.body);
    // A claim on an altered document is refused.
    let altered = document.replace("Hangzhou Widgets Ltd", "Hangzhou Gadgets Ltd");
    let refused = reimburse(
        &app,
        &operator,
        invoice_id,
        json!({"organisation": "Hangzhou Gadgets Ltd", "claim_reference": "EXP-0", "document": altered}),
        None,
    )
    .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.json()["code"], "invoice_digest_mismatch");
    assert_eq!(fetch(&app, &merchant, invoice_id).await["state"], "issued");

    let reimbursed = reimburse(
        &app,
        &operator,
        invoice_id,
        claim("Hangzhou Widgets Ltd", "EXP-1"),
        Some("claim-1"),
    )
    .await;
    assert_eq!(reimbursed.status, 201, "{}", reimbursed.body);
    let reimbursement = reimbursed.json();
    assert_eq!(reimbursement["invoice_state"], "reimbursed");
    assert_eq!(reimbursement["organisation"], "Hangzhou Widgets Ltd");
    // The same request again is a retry: the first answer.
    let retried = reimburse(
        &app,
        &operator,
        invoice_id,
        claim("Hangzhou Widgets Ltd", "EXP-1"),
        Some("claim-1"),
    )
    .await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    assert_eq!(retried.body, reimbursed.body);

    // A second claim on the same invoice, by anyone: refused, naming the first.
    for (organisation, reference, key) in [
        ("Another Company", "EXP-77", Some("claim-2")),
        ("Hangzhou Widgets Ltd", "EXP-2", None),
    ] {
        let again = reimburse(
            &app,
            &operator,
            invoice_id,
            claim(organisation, reference),
            key,
        )
        .await;
        assert_eq!(again.status, 409, "{}", again.body);
        let problem = again.json();
        assert_eq!(problem["code"], "invoice_already_reimbursed");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains(reimbursement["created_at"].as_str().unwrap())
                && detail.contains("Hangzhou Widgets Ltd")
                && detail.contains("EXP-1"),
            "{detail}"
        );
    }
    let verified = verify(
        &app,
        json!({"number": invoice["number"], "seller_tax_id": SELLER, "document": document}),
    )
    .await;
    assert_eq!(verified["status"], "reimbursed", "{verified}");
    assert_eq!(verified["reimbursed_at"], reimbursement["created_at"]);

    // A reimbursed invoice cannot be voided: refused, nothing issued.
    let refused = void(&app, &merchant, invoice_id).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(refused.json()["code"], "invoice_reimbursed");
    let fetched = fetch(&app, &merchant, invoice_id).await;
    assert_eq!(fetched["state"], "reimbursed");
    assert_eq!(fetched["reimbursement"]["claim_reference"], "EXP-1");
    assert_eq!(fetched["voided_by"], Value::Null);
    assert_eq!(count_invoices(&app, &merchant).await, 1);
    let unknown = reimburse(
        &app,
        &operator,
        "inv_1",
        claim("Hangzhou Widgets Ltd", "EXP-1"),
        None,
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    app.stop().await;
}

#[tokio::test]
async fn a_voided_invoice_is_replaced_by_a_registered_red_letter_invoice() {
    let (config, verifier_key) = signed_app_config();
    let app = spawn_app_with(config).await;
    let merchant = onboard(&app, "West Lake Tea", 60).await;
    let (payer, _, wallet) = sign_up(&app, "+8613700000003").await;
    fund(&app, wallet, 10_000).await;
    let order_id = paid_order(&app, &merchant, &payer, "T-1", 800).await;
    let invoice = issued(&app, &merchant, &order_id).await;
    let invoice_id = invoice["id"].as_str().unwrap();
    let merchant_before = balance(&app, merchant_account(&merchant));

    let voided = void(&app, &merchant, invoice_id).await;
    assert_eq!(voided.status, 201, "{}", voided.body);
    let red = voided.json();
    assert_eq!(red["kind"], "red_letter");
    assert_eq!(red["number"], "00000002");
    assert_eq!(red["original_id"], invoice_id);
    assert_eq!(red["original"]["state"], "voided");
    assert_eq!(
        (&red["amount"], &red["tax"], &red["total"]),
        (&json!(-766), &json!(-34), &json!(-800))
    );
    assert_eq!(red["items"][0]["quantity"], -2);
    assert_eq!(red["items"][0]["unit_price"], 300);
    let red_document = red["document"].as_str().unwrap();
    let red_digest = sha256_hex(red_document);
    assert_eq!(red["digest"], red_digest.as_str());
    let parsed: Value = serde_json::from_str(red_document).unwrap();
    assert_eq!(parsed["kind"], "red_letter");
    assert_eq!(parsed["original"]["number"], "00000001");
    assert_eq!(parsed["original"]["digest"], invoice["digest"]);
    assert_eq!(
        parsed["buyer"],
        serde_json::from_str::<Value>(invoice["document"].as_str().unwrap()).unwrap()["buyer"]
    );
    // The red-letter invoice is registered too.
    let red_id = red["id"].as_str().unwrap();
    let fetched = fetch(&app, &merchant, red_id).await;
    assert_receipt_registers(&fetched["receipt"], &red_digest, &verifier_key);
    let verified = verify(
        &app,
        json!({"number": "00000002", "seller_tax_id": SELLER, "document": red_document}),
    )
    .await;
    assert_eq!(verified["registered"], true, "{verified}");
    assert_eq!(verified["invoice"]["kind"], "red_letter");
    assert_eq!(verified["original"]["number"], "00000001");

    // The original now verifies as voided, naming the red-letter invoice.
    let original = verify(
        &app,
        json!({"number": "00000001", "seller_tax_id": SELLER, "digest": invoice["digest"]}),
    )
    .await;
    assert_eq!(original["registered"], true, "{original}");
    assert_eq!(original["status"], "voided");
    assert_eq!(original["voided_by"]["number"], "00000002");
    assert_eq!(
        fetch(&app, &merchant, invoice_id).await["voided_by"]["id"],
        red_id
    );

    // A voided invoice is not reimbursed nor voided again; a red-letter one is neither.
    let operator = format!("Bearer {}", token(&app, store::CredentialRole::Operator));
    let refused = reimburse(
        &app,
        &operator,
        invoice_id,
        json!({"organisation": "Hangzhou Widgets Ltd", "claim_reference": "EXP-1", "digest": invoice["digest"]}),
        None,
    )
    .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(refused.json()["code"], "invoice_voided");
    let again = void(&app, &merchant, invoice_id).await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.json()["code"], "invoice_voided");
    let red_void = void(&app, &merchant, red_id).await;
    assert_eq!(red_void.status, 422, "{}", red_void.body);
    assert_eq!(red_void.json()["code"], "invoice_red_letter");
    let red_claim = reimburse(
        &app,
        &operator,
        red_id,
        json!({"organisation": "Hangzhou Widgets Ltd", "claim_reference": "EXP-1", "digest": red_digest}),
        None,
    )
    .await;
    assert_eq!(red_claim.status, 422, "{}", red_claim.body);
    assert_eq!(red_claim.json()["code"], "invoice_red_letter");
    assert_eq!(count_invoices(&app, &merchant).await, 2);

    // The order can be invoiced again, under the next number.
    let reissued = issued(&app, &merchant, &order_id).await;
    assert_eq!(reissued["number"], "00000003");
    assert_eq!(reissued["state"], "issued");
    // None of it moved money.
    assert_eq!(balance(&app, merchant_account(&merchant)), merchant_before);
    app.stop().await;
}
