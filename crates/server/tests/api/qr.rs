//! QR payments through HTTP: merchant codes registered, scanned, paid, reported, revoked and
//! forged; payment codes charged by a POS.

use serde_json::{json, Value};

use super::payments::{fund, onboard, pay, sign_up, TestMerchant};
use super::{request, signed_app_config, spawn_app_with, token, Answer, TestApp};

const PAYMENT_PASSWORD: &str = "246810";
const PIX: &str = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D";
const UPI: &str = "upi://pay?pa=nadeem@npci&pn=nadeem%20chinna&am=10&cu=INR";

async fn user_post(
    app: &TestApp,
    token: &str,
    path: &str,
    body: Value,
    key: Option<&str>,
) -> Answer {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    if let Some(key) = key {
        headers.push(("Idempotency-Key", key));
    }
    request(app, "POST", path, &headers, &body.to_string()).await
}

async fn user_get(app: &TestApp, token: &str, path: &str) -> Answer {
    let bearer = format!("Bearer {token}");
    request(app, "GET", path, &[("Authorization", bearer.as_str())], "").await
}

async fn scan(app: &TestApp, token: &str, payload: &str) -> Value {
    let answer = user_post(app, token, "/v1/qr/scan", json!({"payload": payload}), None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

async fn pay_code(app: &TestApp, token: &str, payload: &str, amount: Option<u64>) -> Answer {
    let mut body = json!({"payload": payload, "payment_password": PAYMENT_PASSWORD});
    if let Some(amount) = amount {
        body["amount"] = json!(amount);
    }
    user_post(app, token, "/v1/qr/pay", body, None).await
}

async fn issue(app: &TestApp, merchant: &TestMerchant, body: Value) -> Value {
    let answer = merchant
        .send(app, "POST", "/v1/qr-codes", &body.to_string(), None)
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    answer.json()
}

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

/// The payload with another merchant name and a correct CRC: what a fraudster prints.
fn forged(payload: &str) -> String {
    let mut decoded = qr::mpm::decode(payload).unwrap().payload;
    decoded.merchant_name = Some("Evil Tea".into());
    qr::mpm::encode(&decoded).unwrap()
}

#[tokio::test]
async fn merchant_codes_are_registered_scanned_paid_reported_revoked_and_forgeries_caught() {
    let (config, _) = signed_app_config();
    let app = spawn_app_with(config).await;
    let merchant = onboard(&app, "West Lake Tea", 60).await;
    let other = onboard(&app, "Other Shop", 60).await;
    let outlet = merchant
        .send(
            &app,
            "POST",
            "/v1/outlets",
            &json!({"kind": "store", "name": "Lakeside"}).to_string(),
            None,
        )
        .await
        .json();
    let outlet_id = outlet["id"].as_str().unwrap();

    // A static code for the store: an EMVCo payload carrying this network's template.
    let code = issue(
        &app,
        &merchant,
        json!({"kind": "static", "outlet_id": outlet_id, "notify_url": "http://shop.example/qr"}),
    )
    .await;
    let payload = code["payload"].as_str().unwrap().to_owned();
    assert!(payload.starts_with("000201010211"), "{payload}");
    let decoded = qr::mpm::decode(&payload).unwrap();
    assert!(decoded.warnings.is_empty(), "{:?}", decoded.warnings);
    assert!(decoded.payload.template_by_gui("NET.TALLY").is_some());
    assert_eq!(
        decoded.payload.merchant_name.as_deref(),
        Some("West Lake Tea")
    );
    assert_eq!(decoded.payload.transaction_amount, None);
    let code_id = code["id"].as_str().unwrap();

    // Its receipt: a registration leaf holding the payload's SHA-256, under a checkpoint.
    let fetched = merchant
        .send(&app, "GET", &format!("/v1/qr-codes/{code_id}"), "", None)
        .await;
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    let receipt = &fetched.json()["receipt"];
    use base64::Engine as _;
    let leaf = base64::engine::general_purpose::STANDARD
        .decode(receipt["leaf"].as_str().unwrap())
        .unwrap();
    assert_eq!(leaf[0], store::LOG_LEAF_REGISTRATION);
    assert_eq!(
        &leaf[12..44],
        &services::payments::payload_digest(&payload)[..]
    );
    assert!(receipt["leaf_index"].as_u64().unwrap() < receipt["tree_size"].as_u64().unwrap());
    assert!(receipt["checkpoint"].as_str().unwrap().contains("test-log"));
    // Another merchant does not see it.
    let hidden = other
        .send(&app, "GET", &format!("/v1/qr-codes/{code_id}"), "", None)
        .await;
    assert_eq!(hidden.status, 404, "{}", hidden.body);

    let (payer, _, wallet) = sign_up(&app, "+8613900000001").await;
    fund(&app, wallet, 10_000).await;

    // Scanned: registered and active, the payer types the amount.
    let scanned = scan(&app, &payer, &payload).await;
    assert_eq!(scanned["status"], "active", "{scanned}");
    assert_eq!(scanned["payable"], true);
    assert_eq!(scanned["network"], "tally");
    assert_eq!(scanned["merchant"]["name"], "West Lake Tea");
    assert_eq!(scanned["amount"], Value::Null);
    assert_eq!(scanned["code"]["id"], code_id);
    assert!(scanned["code"]["receipt"]["leaf"].is_string(), "{scanned}");

    let no_amount = pay_code(&app, &payer, &payload, None).await;
    assert_eq!(no_amount.status, 400, "{}", no_amount.body);
    assert_eq!(balance(&app, wallet), 10_000);
    let paid = pay_code(&app, &payer, &payload, Some(1_234)).await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    let paid = paid.json();
    assert_eq!(paid["state"], "SUCCESS");
    assert_eq!(paid["amount"], 1_234);
    assert_eq!(paid["outlet_id"], outlet_id);
    assert_eq!(paid["notify_url"], "http://shop.example/qr");
    assert_eq!(balance(&app, wallet), 10_000 - 1_234);
    // The merchant sees the order and its notification.
    let order = merchant
        .send(
            &app,
            "GET",
            &format!("/v1/orders/{}", paid["id"].as_str().unwrap()),
            "",
            None,
        )
        .await;
    assert_eq!(order.json()["state"], "SUCCESS", "{}", order.body);

    // A dynamic code pays its order once.
    let order = merchant.create_order(&app, "T-dyn-1", 500).await;
    let dynamic = issue(
        &app,
        &merchant,
        json!({"kind": "dynamic", "order_id": order["id"]}),
    )
    .await;
    let dynamic_payload = dynamic["payload"].as_str().unwrap().to_owned();
    assert!(
        dynamic_payload.starts_with("000201010212"),
        "{dynamic_payload}"
    );
    assert_eq!(
        qr::mpm::decode(&dynamic_payload)
            .unwrap()
            .payload
            .transaction_amount
            .as_deref(),
        Some("5.00")
    );
    let scanned = scan(&app, &payer, &dynamic_payload).await;
    assert_eq!(
        (scanned["status"].as_str(), scanned["amount"].as_u64()),
        (Some("active"), Some(500))
    );
    let wrong_amount = pay_code(&app, &payer, &dynamic_payload, Some(400)).await;
    assert_eq!(
        wrong_amount.json()["code"],
        "amount_mismatch",
        "{}",
        wrong_amount.body
    );
    let paid = pay_code(&app, &payer, &dynamic_payload, None).await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!(paid.json()["id"], order["id"]);
    assert_eq!(scan(&app, &payer, &dynamic_payload).await["status"], "used");
    let again = pay_code(&app, &payer, &dynamic_payload, None).await;
    assert_eq!(again.json()["code"], "code_used", "{}", again.body);
    assert_eq!(balance(&app, wallet), 10_000 - 1_234 - 500);

    // A forged code: this network's template and a real code id, another name, a valid CRC.
    let fake = forged(&payload);
    let scanned = scan(&app, &payer, &fake).await;
    assert_eq!(scanned["status"], "unknown", "{scanned}");
    assert_eq!(scanned["payable"], false);
    assert_eq!(scanned["code"], Value::Null);
    let refused = pay_code(&app, &payer, &fake, Some(100)).await;
    assert_eq!(refused.json()["code"], "code_unknown", "{}", refused.body);

    // Other networks' codes are recognised, not paid.
    let pix = scan(&app, &payer, PIX).await;
    assert_eq!(
        (pix["status"].as_str(), pix["network"].as_str()),
        (Some("not_payable_here"), Some("pix"))
    );
    let upi = scan(&app, &payer, UPI).await;
    assert_eq!(
        (upi["scheme"].as_str(), upi["status"].as_str()),
        (Some("upi"), Some("not_payable_here"))
    );
    let refused = pay_code(&app, &payer, PIX, Some(100)).await;
    assert_eq!(
        refused.json()["code"],
        "not_payable_here",
        "{}",
        refused.body
    );
    // A damaged payload says what is wrong.
    let damaged = format!("{}0000", &payload[..payload.len() - 4]);
    let unreadable = user_post(
        &app,
        &payer,
        "/v1/qr/scan",
        json!({"payload": damaged}),
        None,
    )
    .await;
    assert_eq!(unreadable.status, 422, "{}", unreadable.body);
    assert_eq!(unreadable.json()["code"], "qr_unreadable");
    assert!(unreadable.body.contains("CRC"), "{}", unreadable.body);
    assert_eq!(balance(&app, wallet), 10_000 - 1_234 - 500);

    // Reports: the forged code is kept for the operator; three payers flag the real one.
    let reported = user_post(
        &app,
        &payer,
        "/v1/qr/reports",
        json!({"payload": fake, "reason": "sticker"}),
        None,
    )
    .await;
    assert_eq!(reported.status, 201, "{}", reported.body);
    assert_eq!(reported.json()["code_id"], Value::Null);
    for (index, phone) in ["+8613900000002", "+8613900000003", "+8613900000004"]
        .iter()
        .enumerate()
    {
        let (reporter, _, _) = sign_up(&app, phone).await;
        let answer = user_post(
            &app,
            &reporter,
            "/v1/qr/reports",
            json!({"payload": payload, "reason": "wrong shop"}),
            None,
        )
        .await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        let expected = if index < 2 { "active" } else { "flagged" };
        assert_eq!(answer.json()["code_state"], expected, "{}", answer.body);
    }
    assert_eq!(scan(&app, &payer, &payload).await["status"], "flagged");
    let refused = pay_code(&app, &payer, &payload, Some(100)).await;
    assert_eq!(refused.json()["code"], "code_flagged", "{}", refused.body);
    let operator = format!("Bearer {}", token(&app, store::CredentialRole::Operator));
    let reports = request(
        &app,
        "GET",
        "/v1/qr-reports",
        &[("Authorization", &operator)],
        "",
    )
    .await;
    assert_eq!(
        reports.json()["data"].as_array().unwrap().len(),
        4,
        "{}",
        reports.body
    );
    let cleared = request(
        &app,
        "PUT",
        &format!("/v1/qr-codes/{code_id}/state"),
        &[
            ("Authorization", &operator),
            ("Content-Type", "application/json"),
        ],
        &json!({"state": "active"}).to_string(),
    )
    .await;
    assert_eq!(cleared.json()["state"], "active", "{}", cleared.body);
    assert_eq!(scan(&app, &payer, &payload).await["status"], "active");

    // Revoked by its merchant, for good.
    let revoked = merchant
        .send(
            &app,
            "POST",
            &format!("/v1/qr-codes/{code_id}/revoke"),
            "",
            None,
        )
        .await;
    assert_eq!(revoked.json()["state"], "revoked", "{}", revoked.body);
    assert_eq!(scan(&app, &payer, &payload).await["status"], "revoked");
    let refused = pay_code(&app, &payer, &payload, Some(100)).await;
    assert_eq!(refused.json()["code"], "code_revoked", "{}", refused.body);
    let reactivated = request(
        &app,
        "PUT",
        &format!("/v1/qr-codes/{code_id}/state"),
        &[
            ("Authorization", &operator),
            ("Content-Type", "application/json"),
        ],
        &json!({"state": "active"}).to_string(),
    )
    .await;
    assert_eq!(reactivated.status, 400, "{}", reactivated.body);
    let listed = merchant
        .send(&app, "GET", "/v1/qr-codes", "", None)
        .await
        .json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(balance(&app, wallet), 10_000 - 1_234 - 500);
    app.stop().await;
}

async fn charge(
    app: &TestApp,
    merchant: &TestMerchant,
    auth_code: &str,
    out_trade_no: &str,
    amount: u64,
) -> Answer {
    merchant
        .send(
            app,
            "POST",
            "/v1/pos/charges",
            &json!({"auth_code": auth_code, "out_trade_no": out_trade_no, "amount": amount,
                    "currency": "CNY", "description": "noodles"})
            .to_string(),
            None,
        )
        .await
}

#[tokio::test]
async fn payment_codes_are_charged_once_small_at_once_larger_after_the_payer_confirms() {
    let (config, _) = signed_app_config();
    let app = spawn_app_with(config).await;
    let merchant = onboard(&app, "Noodle Bar", 0).await;
    let (payer, _, wallet) = sign_up(&app, "+8613900000011").await;
    let (stranger, _, stranger_wallet) = sign_up(&app, "+8613900000012").await;
    fund(&app, wallet, 100_000).await;
    fund(&app, stranger_wallet, 100_000).await;

    let wrong = user_post(
        &app,
        &payer,
        "/v1/me/devices",
        json!({"name": "phone", "payment_password": "135790"}),
        None,
    )
    .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let enrolled = user_post(
        &app,
        &payer,
        "/v1/me/devices",
        json!({"name": "phone", "payment_password": PAYMENT_PASSWORD}),
        None,
    )
    .await;
    assert_eq!(enrolled.status, 201, "{}", enrolled.body);
    let device = enrolled.json();
    let secret = services::secrets::parse_hex32(device["secret"].as_str().unwrap()).unwrap();
    let number: u32 = device["number"].as_str().unwrap().parse().unwrap();
    let prefix = qr::PaymentCodePrefix::new(device["code"]["prefix"].as_str().unwrap()).unwrap();
    let listed = user_get(&app, &payer, "/v1/me/devices").await.json();
    assert_eq!(listed["data"][0]["id"], device["id"]);
    assert!(listed["data"][0].get("secret").is_none(), "{listed}");
    // What the device shows, offline.
    let code = |slot: u8| {
        services::payment_codes::derive(&secret, prefix, number, server::unix_seconds(), slot)
            .to_string()
    };

    // A small charge is paid at once, without the password.
    let first = code(0);
    let paid = charge(&app, &merchant, &first, "P-1", 1_500).await;
    assert_eq!(paid.status, 201, "{}", paid.body);
    assert_eq!(paid.json()["state"], "SUCCESS");
    assert_eq!(balance(&app, wallet), 100_000 - 1_500);
    // The POS retrying the same charge gets the same order; the code is spent for any other.
    let retry = charge(&app, &merchant, &first, "P-1", 1_500).await;
    assert_eq!(retry.json()["id"], paid.json()["id"], "{}", retry.body);
    let reused = charge(&app, &merchant, &first, "P-2", 1_500).await;
    assert_eq!(
        reused.json()["code"],
        "payment_code_used",
        "{}",
        reused.body
    );
    assert_eq!(balance(&app, wallet), 100_000 - 1_500);

    // Ten tills charging one code at once: one charge.
    let second = code(1);
    let tills = (0..10).map(|till| {
        let second = second.clone();
        let merchant = &merchant;
        let app = &app;
        async move { charge(app, merchant, &second, &format!("P-race-{till}"), 100).await }
    });
    let answers = crate::futures_join(tills).await;
    let succeeded = answers.iter().filter(|answer| answer.status == 201).count();
    assert_eq!(
        succeeded,
        1,
        "{:?}",
        answers
            .iter()
            .map(|answer| &answer.body)
            .collect::<Vec<_>>()
    );
    assert_eq!(balance(&app, wallet), 100_000 - 1_600);

    // Above the no-password amount the order waits for its payer.
    let waiting = charge(&app, &merchant, &code(2), "P-3", 50_000).await;
    assert_eq!(waiting.status, 201, "{}", waiting.body);
    let waiting = waiting.json();
    assert_eq!(waiting["state"], "USERPAYING");
    assert_eq!(balance(&app, wallet), 100_000 - 1_600);
    let pending = user_get(&app, &payer, "/v1/me/pending-payments")
        .await
        .json();
    assert_eq!(pending["data"][0]["id"], waiting["id"], "{pending}");
    let order_id = waiting["id"].as_str().unwrap();
    // Nobody else sees or pays it.
    let hidden = user_get(&app, &stranger, &format!("/v1/checkout/{order_id}")).await;
    assert_eq!(hidden.status, 404, "{}", hidden.body);
    let not_theirs = pay(&app, &stranger, order_id, 50_000, PAYMENT_PASSWORD, None).await;
    assert_eq!(not_theirs.status, 404, "{}", not_theirs.body);
    let confirmed = pay(&app, &payer, order_id, 50_000, PAYMENT_PASSWORD, None).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert_eq!(confirmed.json()["state"], "SUCCESS");
    assert_eq!(balance(&app, wallet), 100_000 - 51_600);
    assert_eq!(balance(&app, stranger_wallet), 100_000);
    let queried = merchant
        .send(&app, "GET", &format!("/v1/orders/{order_id}"), "", None)
        .await;
    assert_eq!(queried.json()["state"], "SUCCESS", "{}", queried.body);
    assert_eq!(
        user_get(&app, &payer, "/v1/me/pending-payments")
            .await
            .json()["data"],
        json!([])
    );

    // A mistyped code is refused; five in a row lock the device's codes for a while.
    let good = code(3);
    let mut digits: Vec<u8> = good.clone().into_bytes();
    digits[17] = if digits[17] == b'9' {
        b'0'
    } else {
        digits[17] + 1
    };
    let mistyped = String::from_utf8(digits).unwrap();
    for attempt in 0..5 {
        let refused = charge(&app, &merchant, &mistyped, &format!("P-bad-{attempt}"), 100).await;
        assert_eq!(
            refused.json()["code"],
            "payment_code_invalid",
            "{}",
            refused.body
        );
    }
    let locked = charge(&app, &merchant, &good, "P-4", 100).await;
    assert_eq!(locked.status, 423, "{}", locked.body);
    assert_eq!(balance(&app, wallet), 100_000 - 51_600);

    // A revoked device's codes are refused.
    let revoked = request(
        &app,
        "DELETE",
        &format!("/v1/me/devices/{}", device["id"].as_str().unwrap()),
        &[("Authorization", &format!("Bearer {payer}"))],
        "",
    )
    .await;
    assert_eq!(revoked.json()["state"], "revoked", "{}", revoked.body);
    app.stop().await;
}
