//! Merchants, orders, payments, refunds, P2P transfers and notifications through HTTP.

use std::sync::atomic::{AtomicU64, Ordering};

use ledger::{Currency, Event, NewTransfer};
use serde_json::{json, Value};
use services::payments::RESERVE_ACCOUNT_ID;

use super::{last_code, post_json, request, spawn_app, token, Answer, TestApp};

pub(crate) const PAYMENT_PASSWORD: &str = "246810";

fn app_state(app: &TestApp) -> &std::sync::Arc<server::AppState> {
    &app.state
}

/// A merchant as the tests hold it: its id, API key and notification secret.
pub(crate) struct TestMerchant {
    pub id: String,
    pub key_id: u64,
    pub signing_key: [u8; 32],
    pub notify_key: [u8; 32],
}

static NONCE: AtomicU64 = AtomicU64::new(0);

impl TestMerchant {
    /// Sends a request signed with the merchant's key.
    pub async fn send(
        &self,
        app: &TestApp,
        method: &str,
        path: &str,
        body: &str,
        idempotency_key: Option<&str>,
    ) -> Answer {
        let nonce = format!("nonce-{:08}", NONCE.fetch_add(1, Ordering::Relaxed));
        let now = server::unix_seconds();
        let authorization = services::signatures::authorization(
            self.key_id,
            &self.signing_key,
            method,
            path,
            now,
            &nonce,
            body.as_bytes(),
        );
        let mut headers = vec![
            ("Authorization", authorization.as_str()),
            ("Content-Type", "application/json"),
        ];
        if let Some(key) = idempotency_key {
            headers.push(("Idempotency-Key", key));
        }
        request(app, method, path, &headers, body).await
    }

    pub async fn create_order(&self, app: &TestApp, out_trade_no: &str, amount: u64) -> Value {
        let answer = self
            .send(
                app,
                "POST",
                "/v1/orders",
                &json!({"out_trade_no": out_trade_no, "amount": amount, "currency": "CNY",
                        "description": "green tea"})
                .to_string(),
                None,
            )
            .await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        answer.json()
    }
}

pub(crate) async fn onboard(app: &TestApp, name: &str, fee_rate_bps: u32) -> TestMerchant {
    let operator = token(app, store::CredentialRole::Operator);
    let bearer = format!("Bearer {operator}");
    let answer = request(
        app,
        "POST",
        "/v1/merchants",
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        &json!({"name": name, "mcc": "5814", "country": "CN", "city": "Hangzhou",
                "settlement_account": "6222020200112233", "fee_rate_bps": fee_rate_bps})
        .to_string(),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let body = answer.json();
    let secret = body["api_key"]["secret"].as_str().unwrap();
    let notify_secret = body["notify_secret"].as_str().unwrap();
    TestMerchant {
        id: body["id"].as_str().unwrap().to_owned(),
        key_id: services::ids::parse_prefixed("mk_", body["api_key"]["id"].as_str().unwrap())
            .unwrap(),
        signing_key: services::payments::signing_key(secret),
        notify_key: services::secrets::parse_hex32(notify_secret.strip_prefix("whsec_").unwrap())
            .unwrap(),
    }
}

/// A registered, logged-in user with a payment password: (session token, user id, wallet).
pub(crate) async fn sign_up(app: &TestApp, phone: &str) -> (String, String, u128) {
    let password = "correct horse battery";
    for purpose in ["register", "login"] {
        let sent = post_json(app, "/v1/otp", json!({"phone": phone, "purpose": purpose})).await;
        assert_eq!(sent.status, 202, "{}", sent.body);
        let code = last_code(app, phone);
        let path = if purpose == "register" {
            "/v1/users"
        } else {
            "/v1/sessions"
        };
        let answer = post_json(
            app,
            path,
            json!({"phone": phone, "password": password, "code": code}),
        )
        .await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        if purpose == "login" {
            let body = answer.json();
            let token = body["token"].as_str().unwrap().to_owned();
            let bearer = format!("Bearer {token}");
            let sent = request(
                app,
                "POST",
                "/v1/otp",
                &[("Content-Type", "application/json")],
                &json!({"phone": phone, "purpose": "payment_password"}).to_string(),
            )
            .await;
            assert_eq!(sent.status, 202, "{}", sent.body);
            let set = request(
                app,
                "PUT",
                "/v1/me/payment-password",
                &[
                    ("Authorization", &bearer),
                    ("Content-Type", "application/json"),
                ],
                &json!({"payment_password": PAYMENT_PASSWORD, "code": last_code(app, phone)})
                    .to_string(),
            )
            .await;
            assert_eq!(set.status, 204, "{}", set.body);
            let wallet = body["user"]["wallet_account_id"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            return (
                token,
                body["user"]["id"].as_str().unwrap().to_owned(),
                wallet,
            );
        }
    }
    unreachable!("returned after logging in")
}

/// Credits a wallet from the reserve, as a top-up does.
pub(crate) async fn fund(app: &TestApp, wallet: u128, amount: u128) {
    let handle = app.sequencer.as_ref().unwrap().handle();
    let id = services::ids::transfer_id(
        services::ids::new_id(server::unix_seconds() * 1000).unwrap(),
        1,
    );
    let mut transfer = NewTransfer::new(
        id,
        RESERVE_ACCOUNT_ID,
        wallet,
        amount,
        Currency::parse("CNY").unwrap(),
    );
    transfer.kind = services::accounts::TRANSFER_TOP_UP;
    let results =
        tokio::task::spawn_blocking(move || handle.execute(vec![Event::CreateTransfer(transfer)]))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(results, vec![ledger::EventResult::Ok]);
}

pub(crate) fn balance(app: &TestApp, account: u128) -> u128 {
    let account = app
        .store
        .reader()
        .unwrap()
        .account(account)
        .unwrap()
        .unwrap();
    account.credits_posted - account.debits_posted
}

pub(crate) async fn pay(
    app: &TestApp,
    token: &str,
    order_id: &str,
    amount: u64,
    password: &str,
    idempotency_key: Option<&str>,
) -> Answer {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    if let Some(key) = idempotency_key {
        headers.push(("Idempotency-Key", key));
    }
    request(
        app,
        "POST",
        &format!("/v1/orders/{order_id}/pay"),
        &headers,
        &json!({"amount": amount, "payment_password": password}).to_string(),
    )
    .await
}

#[tokio::test]
async fn an_order_is_created_paid_once_and_refunded_with_its_fee() {
    let app = spawn_app().await;
    let merchant = onboard(&app, "Tea House", 60).await;
    let (token, _, wallet) = sign_up(&app, "+8613800000001").await;
    fund(&app, wallet, 10_000).await;

    let order = merchant.create_order(&app, "T-0001", 1_000).await;
    assert_eq!(order["state"], "NOTPAY");
    let order_id = order["id"].as_str().unwrap();

    // The wrong amount and the wrong password are refused and move nothing.
    let wrong_amount = pay(&app, &token, order_id, 999, PAYMENT_PASSWORD, None).await;
    assert_eq!(wrong_amount.status, 422, "{}", wrong_amount.body);
    assert_eq!(wrong_amount.json()["code"], "amount_mismatch");
    let wrong_password = pay(&app, &token, order_id, 1_000, "135790", None).await;
    assert_eq!(wrong_password.status, 401, "{}", wrong_password.body);
    assert_eq!(wrong_password.json()["code"], "wrong_payment_password");
    assert_eq!(balance(&app, wallet), 10_000);

    let paid = pay(&app, &token, order_id, 1_000, PAYMENT_PASSWORD, None).await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!(paid.json()["state"], "SUCCESS");
    assert_eq!(paid.json()["fee"], 6);
    assert_eq!(balance(&app, wallet), 9_000);
    let merchant_account = merchant.id.strip_prefix("mch_").unwrap().parse().unwrap();
    assert_eq!(balance(&app, merchant_account), 994);
    assert_eq!(balance(&app, services::payments::FEES_ACCOUNT_ID), 6);

    let again = pay(&app, &token, order_id, 1_000, PAYMENT_PASSWORD, None).await;
    assert_eq!(again.status, 422);
    assert_eq!(again.json()["code"], "order_paid");
    let closed = merchant
        .send(
            &app,
            "POST",
            &format!("/v1/orders/{order_id}/close"),
            "",
            None,
        )
        .await;
    assert_eq!(closed.json()["code"], "order_paid", "{}", closed.body);

    // Query by id and by out_trade_no.
    let by_id = merchant
        .send(&app, "GET", &format!("/v1/orders/{order_id}"), "", None)
        .await;
    assert_eq!(by_id.json()["state"], "SUCCESS");
    let by_reference = merchant
        .send(&app, "GET", "/v1/orders?out_trade_no=T-0001", "", None)
        .await;
    assert_eq!(by_reference.json()["id"], order_id);

    // Refunds: partial, a retry of it, too much, then the rest with the rest of the fee.
    let refund_path = format!("/v1/orders/{order_id}/refunds");
    let refund = json!({"out_refund_no": "R-1", "amount": 400, "reason": "one cup spilt"});
    let first = merchant
        .send(&app, "POST", &refund_path, &refund.to_string(), None)
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.json()["fee_refunded"], 2);
    let retried = merchant
        .send(&app, "POST", &refund_path, &refund.to_string(), None)
        .await;
    assert_eq!(retried.json()["id"], first.json()["id"], "{}", retried.body);
    assert_eq!(balance(&app, wallet), 9_400);
    let too_much = merchant
        .send(
            &app,
            "POST",
            &refund_path,
            &json!({"out_refund_no": "R-2", "amount": 601}).to_string(),
            None,
        )
        .await;
    assert_eq!(
        too_much.json()["code"],
        "refund_exceeds_paid",
        "{}",
        too_much.body
    );
    let reused = merchant
        .send(
            &app,
            "POST",
            &refund_path,
            &json!({"out_refund_no": "R-1", "amount": 100}).to_string(),
            None,
        )
        .await;
    assert_eq!(reused.json()["code"], "out_refund_no_used");
    let rest = merchant
        .send(
            &app,
            "POST",
            &refund_path,
            &json!({"out_refund_no": "R-2", "amount": 600}).to_string(),
            None,
        )
        .await;
    assert_eq!(rest.status, 201, "{}", rest.body);
    assert_eq!(rest.json()["fee_refunded"], 4);
    assert_eq!(balance(&app, wallet), 10_000);
    assert_eq!(balance(&app, merchant_account), 0);
    assert_eq!(balance(&app, services::payments::FEES_ACCOUNT_ID), 0);
    let order = merchant
        .send(&app, "GET", &format!("/v1/orders/{order_id}"), "", None)
        .await
        .json();
    assert_eq!(
        (order["state"].as_str(), order["refunded"].as_u64()),
        (Some("REFUND"), Some(1_000))
    );

    // The merchant's events tell the story in order, each with the order's sequence.
    let events = merchant
        .send(&app, "GET", "/v1/events", "", None)
        .await
        .json();
    let kinds: Vec<(&str, u64)> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| {
            (
                event["type"].as_str().unwrap(),
                event["sequence"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("order.paid", 2),
            ("refund.succeeded", 3),
            ("refund.succeeded", 4)
        ]
    );

    // The daily bill has the payment, both refunds and the totals.
    let today = &services::time::rfc3339_seconds(server::unix_seconds())[..10];
    let bill = merchant
        .send(&app, "GET", &format!("/v1/bills/{today}"), "", None)
        .await;
    assert_eq!(bill.status, 200, "{}", bill.body);
    assert!(
        bill.content_type.starts_with("text/csv"),
        "{}",
        bill.content_type
    );
    let lines: Vec<&str> = bill.body.lines().collect();
    assert_eq!(lines.len(), 1 + 1 + 2 + 3, "{}", bill.body);
    assert!(
        lines[1].starts_with("payment,") && lines[1].contains(",10.00,0.06,9.94,CNY"),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains(",-4.00,-0.02,-3.98,CNY"), "{}", lines[2]);
    assert!(
        lines.last().unwrap().starts_with("total_net,")
            && lines.last().unwrap().contains(",0.00,CNY"),
        "{}",
        bill.body
    );

    // The user's history shows the payment and both refunds.
    let history = request(
        &app,
        "GET",
        "/v1/me/transactions",
        &[("Authorization", &format!("Bearer {token}"))],
        "",
    )
    .await
    .json();
    let kinds: Vec<&str> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "top_up",
            "payment",
            "refund",
            "fee_refund",
            "refund",
            "fee_refund"
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn merchants_sign_every_request_and_see_only_their_own_orders() {
    let app = spawn_app().await;
    let tea = onboard(&app, "Tea House", 60).await;
    let books = onboard(&app, "Book Corner", 30).await;
    let order = tea.create_order(&app, "T-1", 500).await;
    let order_id = order["id"].as_str().unwrap();

    let foreign = books
        .send(&app, "GET", &format!("/v1/orders/{order_id}"), "", None)
        .await;
    assert_eq!(foreign.status, 404, "{}", foreign.body);
    let foreign_refund = books
        .send(
            &app,
            "POST",
            &format!("/v1/orders/{order_id}/refunds"),
            &json!({"out_refund_no": "X", "amount": 1}).to_string(),
            None,
        )
        .await;
    assert_eq!(foreign_refund.status, 404);

    // Unsigned, tampered with, replayed: refused.
    let unsigned = request(&app, "GET", &format!("/v1/orders/{order_id}"), &[], "").await;
    assert_eq!(unsigned.status, 401);
    assert_eq!(unsigned.json()["code"], "invalid_signature");
    let body = json!({"out_trade_no": "T-2", "amount": 500, "currency": "CNY"}).to_string();
    let authorization = services::signatures::authorization(
        tea.key_id,
        &tea.signing_key,
        "POST",
        "/v1/orders",
        server::unix_seconds(),
        "fixed-nonce-1",
        body.as_bytes(),
    );
    let headers = [("Authorization", authorization.as_str())];
    let tampered = request(
        &app,
        "POST",
        "/v1/orders",
        &headers,
        &body.replace("500", "5"),
    )
    .await;
    assert_eq!(tampered.status, 401, "{}", tampered.body);
    let first = request(&app, "POST", "/v1/orders", &headers, &body).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let replayed = request(&app, "POST", "/v1/orders", &headers, &body).await;
    assert_eq!(replayed.status, 401);
    assert!(replayed.json()["detail"]
        .as_str()
        .unwrap()
        .contains("nonce"));

    // The same out_trade_no: the same order again, or a conflict when it differs.
    let same = tea.send(&app, "POST", "/v1/orders", &body, None).await;
    assert_eq!(same.json()["id"], first.json()["id"]);
    let different = tea
        .send(
            &app,
            "POST",
            "/v1/orders",
            &json!({"out_trade_no": "T-2", "amount": 501, "currency": "CNY"}).to_string(),
            None,
        )
        .await;
    assert_eq!(different.status, 409);
    assert_eq!(different.json()["code"], "out_trade_no_used");
    // Eight creations of one new out_trade_no at once: one order, and every answer is it.
    let racing = json!({"out_trade_no": "T-race", "amount": 300, "currency": "CNY"}).to_string();
    let answers =
        crate::futures_join((0..8).map(|_| tea.send(&app, "POST", "/v1/orders", &racing, None)))
            .await;
    let ids: std::collections::HashSet<String> = answers
        .iter()
        .map(|answer| {
            assert_eq!(answer.status, 201, "{:?}", answer.json());
            answer.json()["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one order for one out_trade_no: {ids:?}");

    // Bad input: unknown fields, bad currency, zero amount.
    for (bad, code) in [
        (
            json!({"out_trade_no": "T-3", "amount": 5, "currency": "CNY", "tip": 1}),
            "invalid_body",
        ),
        (
            json!({"out_trade_no": "T-3", "amount": 5, "currency": "USD"}),
            "invalid_request",
        ),
        (
            json!({"out_trade_no": "T-3", "amount": 0, "currency": "CNY"}),
            "invalid_request",
        ),
        (
            json!({"out_trade_no": "T 3", "amount": 5, "currency": "CNY"}),
            "invalid_request",
        ),
    ] {
        let answer = tea
            .send(&app, "POST", "/v1/orders", &bad.to_string(), None)
            .await;
        assert_eq!(answer.status, 400, "{bad}: {}", answer.body);
        assert_eq!(answer.json()["code"], code, "{bad}");
        assert_eq!(answer.content_type, "application/problem+json");
    }
    let listed = tea
        .send(&app, "GET", "/v1/orders?limit=10", "", None)
        .await
        .json();
    // T-1, T-2 and the race's one order.
    assert_eq!(listed["data"].as_array().unwrap().len(), 3);
    assert_eq!(
        books.send(&app, "GET", "/v1/orders", "", None).await.json()["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // A revoked key stops working at once.
    let operator = token(&app, store::CredentialRole::Operator);
    let revoked = request(
        &app,
        "DELETE",
        &format!("/v1/merchants/{}/keys/mk_{}", tea.id, tea.key_id),
        &[("Authorization", &format!("Bearer {operator}"))],
        "",
    )
    .await;
    assert_eq!(revoked.status, 204, "{}", revoked.body);
    let after = tea.send(&app, "GET", "/v1/orders", "", None).await;
    assert_eq!(after.status, 401);
    app.stop().await;
}

#[tokio::test]
async fn closed_and_expired_orders_cannot_be_paid() {
    let app = spawn_app().await;
    let merchant = onboard(&app, "Tea House", 0).await;
    let (token, _, wallet) = sign_up(&app, "+8613800000002").await;
    fund(&app, wallet, 5_000).await;
    let order = merchant.create_order(&app, "C-1", 100).await;
    let order_id = order["id"].as_str().unwrap();
    let closed = merchant
        .send(
            &app,
            "POST",
            &format!("/v1/orders/{order_id}/close"),
            "",
            None,
        )
        .await;
    assert_eq!(closed.json()["state"], "CLOSED", "{}", closed.body);
    let refused = pay(&app, &token, order_id, 100, PAYMENT_PASSWORD, None).await;
    assert_eq!(refused.json()["code"], "order_closed");

    let short = merchant
        .send(
            &app,
            "POST",
            "/v1/orders",
            &json!({"out_trade_no": "C-2", "amount": 100, "currency": "CNY", "expires_in": 1})
                .to_string(),
            None,
        )
        .await
        .json();
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let late = pay(
        &app,
        &token,
        short["id"].as_str().unwrap(),
        100,
        PAYMENT_PASSWORD,
        None,
    )
    .await;
    assert_eq!(late.json()["code"], "order_expired", "{}", late.body);
    assert_eq!(balance(&app, wallet), 5_000);
    app.stop().await;
}

#[tokio::test]
async fn a_wallet_funded_for_fifty_pays_exactly_fifty_of_a_hundred_concurrent_orders() {
    let app = spawn_app().await;
    let merchant = onboard(&app, "Tea House", 0).await;
    let (token, _, wallet) = sign_up(&app, "+8613800000003").await;
    fund(&app, wallet, 50 * 100).await;
    let mut orders = Vec::new();
    for index in 0..100 {
        let order = merchant
            .create_order(&app, &format!("P-{index}"), 100)
            .await;
        orders.push(order["id"].as_str().unwrap().to_owned());
    }
    let app = std::sync::Arc::new(app);
    let payments: Vec<_> = orders
        .into_iter()
        .map(|order_id| {
            let app = app.clone();
            let token = token.clone();
            tokio::spawn(async move {
                pay(&app, &token, &order_id, 100, PAYMENT_PASSWORD, None)
                    .await
                    .status
            })
        })
        .collect();
    let mut succeeded = 0;
    for payment in payments {
        let status = payment.await.unwrap();
        if status == 200 {
            succeeded += 1;
        } else {
            assert_eq!(status, 422);
        }
    }
    assert_eq!(succeeded, 50);
    assert_eq!(balance(&app, wallet), 0);
    let app = std::sync::Arc::into_inner(app).unwrap();
    app.stop().await;
}

#[tokio::test]
async fn twenty_concurrent_retries_of_one_idempotency_key_move_money_once() {
    let app = std::sync::Arc::new(spawn_app().await);
    let (token, _, wallet) = sign_up(&app, "+8613800000004").await;
    let (_, friend, friend_wallet) = sign_up(&app, "+8613800000005").await;
    fund(&app, wallet, 1_000).await;
    let body = json!({"to": friend, "amount": 150, "payment_password": PAYMENT_PASSWORD,
                      "note": "dinner"})
    .to_string();
    let retries: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            let token = token.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let bearer = format!("Bearer {token}");
                request(
                    &app,
                    "POST",
                    "/v1/transfers",
                    &[
                        ("Authorization", &bearer),
                        ("Idempotency-Key", "dinner-2026-11-22"),
                    ],
                    &body,
                )
                .await
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for retry in retries {
        let answer = retry.await.unwrap();
        assert_eq!(answer.status, 201, "{}", answer.body);
        ids.insert(answer.json()["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "every retry answers the first transfer");
    assert_eq!(balance(&app, wallet), 850);
    assert_eq!(balance(&app, friend_wallet), 150);
    // The same key with another body is a conflict, and moves nothing.
    let conflict = request(
        &app,
        "POST",
        "/v1/transfers",
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Idempotency-Key", "dinner-2026-11-22"),
        ],
        &body.replace("150", "151"),
    )
    .await;
    assert_eq!(conflict.status, 409, "{}", conflict.body);
    assert_eq!(conflict.json()["code"], "idempotency_conflict");
    // Too much, or to oneself: refused with their codes.
    let too_much = request(
        &app,
        "POST",
        "/v1/transfers",
        &[("Authorization", &format!("Bearer {token}"))],
        &json!({"to": friend, "amount": 851, "payment_password": PAYMENT_PASSWORD}).to_string(),
    )
    .await;
    assert_eq!(
        too_much.json()["code"],
        "insufficient_funds",
        "{}",
        too_much.body
    );
    assert_eq!(balance(&app, wallet), 850);
    let app = std::sync::Arc::into_inner(app).unwrap();
    app.stop().await;
}

#[tokio::test]
async fn tier_limits_refuse_what_a_tier_does_not_allow() {
    let app = spawn_app().await;
    let (token, user, wallet) = sign_up(&app, "+8613800000006").await;
    let (_, friend, _) = sign_up(&app, "+8613800000007").await;
    fund(&app, wallet, 10_000_000).await;
    let send = |amount: u64| {
        let token = token.clone();
        let friend = friend.clone();
        let app = &app;
        async move {
            request(
                app,
                "POST",
                "/v1/transfers",
                &[("Authorization", &format!("Bearer {token}"))],
                &json!({"to": friend, "amount": amount, "payment_password": PAYMENT_PASSWORD})
                    .to_string(),
            )
            .await
        }
    };
    // Tier 0: 1,000.00 a payment, 2,000.00 a day.
    let single = send(100_001).await;
    assert_eq!(single.json()["code"], "limit_exceeded", "{}", single.body);
    assert_eq!(send(100_000).await.status, 201);
    assert_eq!(send(100_000).await.status, 201);
    let daily = send(1).await;
    assert_eq!(daily.json()["code"], "limit_exceeded");
    assert!(daily.json()["detail"].as_str().unwrap().contains("daily"));
    // The operator raises the tier after a document check.
    let operator = token_for_operator(&app);
    let raised = request(
        &app,
        "PUT",
        &format!("/v1/users/{user}/tier"),
        &[("Authorization", &format!("Bearer {operator}"))],
        r#"{"tier": 2}"#,
    )
    .await;
    assert_eq!(raised.status, 204, "{}", raised.body);
    assert_eq!(send(1).await.status, 201);
    assert_eq!(balance(&app, wallet), 10_000_000 - 200_001);
    app.stop().await;
}

fn token_for_operator(app: &TestApp) -> String {
    token(app, store::CredentialRole::Operator)
}

#[tokio::test]
async fn paid_orders_notify_the_merchant_with_a_signed_post() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app().await;
    let merchant = onboard(&app, "Tea House", 60).await;
    let (token, _, wallet) = sign_up(&app, "+8613800000008").await;
    fund(&app, wallet, 1_000).await;
    // The merchant's receiver: refuses the first delivery, accepts the second.
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = receiver.local_addr().unwrap();
    let received = tokio::spawn(async move {
        let mut deliveries = Vec::new();
        for attempt in 0..2 {
            let (mut stream, _) = receiver.accept().await.unwrap();
            let mut raw = Vec::new();
            let mut buffer = [0u8; 4096];
            loop {
                let read = stream.read(&mut buffer).await.unwrap();
                raw.extend_from_slice(&buffer[..read]);
                let text = String::from_utf8_lossy(&raw).to_string();
                if let Some(split) = text.find("\r\n\r\n") {
                    let length: usize = text
                        .lines()
                        .find_map(|line| {
                            line.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(str::to_owned)
                        })
                        .and_then(|value| value.trim().parse().ok())
                        .unwrap_or(0);
                    if raw.len() >= split + 4 + length {
                        break;
                    }
                }
                if read == 0 {
                    break;
                }
            }
            let status = if attempt == 0 {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            stream
                .write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await
                .unwrap();
            deliveries.push(String::from_utf8_lossy(&raw).to_string());
        }
        deliveries
    });
    let order = merchant
        .send(
            &app,
            "POST",
            "/v1/orders",
            &json!({"out_trade_no": "N-1", "amount": 200, "currency": "CNY",
                    "notify_url": format!("http://{address}/notify")})
            .to_string(),
            None,
        )
        .await
        .json();
    let paid = pay(
        &app,
        &token,
        order["id"].as_str().unwrap(),
        200,
        PAYMENT_PASSWORD,
        None,
    )
    .await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    // The worker with a short interval; the retry schedule is shortened by moving time.
    let metrics = server::workers::WorkerMetrics::new();
    let worker = server::workers::start_notifications(
        app.store.clone(),
        metrics.clone(),
        std::time::Duration::from_millis(50),
    )
    .unwrap();
    // First attempt fails (500); make the retry due now.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while metrics.notification_failures.load(Ordering::Relaxed) == 0 {
        assert!(std::time::Instant::now() < deadline, "no first attempt");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let event = merchant
        .send(&app, "GET", "/v1/events", "", None)
        .await
        .json()["data"][0]
        .clone();
    assert_eq!(event["delivery"]["state"], "pending");
    assert_eq!(event["delivery"]["last_result"], "500");
    let event_id = services::ids::parse_prefixed("evt_", event["id"].as_str().unwrap()).unwrap();
    app.store
        .outbox()
        .unwrap()
        .record_deliveries(&[store::DeliveryUpdate {
            event_id,
            delivery: store::DeliveryState::Pending,
            attempts: 1,
            next_attempt_at: 0,
            last_result: Some("500".into()),
        }])
        .unwrap();
    let deliveries = tokio::time::timeout(std::time::Duration::from_secs(10), received)
        .await
        .unwrap()
        .unwrap();
    drop(worker);
    let delivery = &deliveries[1];
    let (head, body) = delivery.split_once("\r\n\r\n").unwrap();
    let signature = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(": ")?;
            name.eq_ignore_ascii_case("tally-signature")
                .then_some(value)
        })
        .unwrap_or_else(|| panic!("unsigned: {head}"));
    assert!(services::signatures::verify_notification(
        &merchant.notify_key,
        signature,
        body.as_bytes(),
        server::unix_seconds()
    ));
    assert!(!services::signatures::verify_notification(
        &[0u8; 32],
        signature,
        body.as_bytes(),
        server::unix_seconds()
    ));
    let payload: Value = serde_json::from_str(body).unwrap();
    assert_eq!(payload["type"], "order.paid");
    assert_eq!(payload["data"]["state"], "SUCCESS");
    let event = merchant
        .send(&app, "GET", "/v1/events", "", None)
        .await
        .json()["data"][0]
        .clone();
    assert_eq!(event["delivery"]["state"], "delivered", "{event}");
    assert_eq!(event["delivery"]["attempts"], 2);
    app.stop().await;
}

pub(crate) async fn user_post(
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

/// Every file of the store, as bytes, to search for what must never be stored.
fn stored_bytes(app: &TestApp) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(app._directory.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            bytes.extend(std::fs::read(path).unwrap());
        }
    }
    bytes
}

#[tokio::test]
async fn cards_are_bound_with_the_banks_code_and_move_money_both_ways() {
    let app = spawn_app().await;
    // The simulated bank's sample card of Li Lei, whose bank phone is +8613800138000.
    let phone = "+8613800138000";
    let number = "6222020200112233446";
    let (token, _, wallet) = sign_up(&app, phone).await;
    let card_request = |holder: &str| {
        json!({"card_number": "6222 0202 0011 2233 446", "holder_name": holder,
               "id_number": "110101199003070011", "phone": phone})
    };
    let typo = user_post(
        &app,
        &token,
        "/v1/me/cards",
        json!({"card_number": "6222020200112233445", "holder_name": "Li Lei",
               "id_number": "110101199003070011", "phone": phone}),
        None,
    )
    .await;
    assert_eq!(typo.status, 400, "{}", typo.body);
    assert_eq!(typo.json()["code"], "invalid_card");
    let mismatch = user_post(&app, &token, "/v1/me/cards", card_request("Wang Wu"), None).await;
    assert_eq!(
        mismatch.json()["code"],
        "card_details_mismatch",
        "{}",
        mismatch.body
    );
    let started = user_post(&app, &token, "/v1/me/cards", card_request("Li Lei"), None).await;
    assert_eq!(started.status, 202, "{}", started.body);
    let binding = started.json()["binding_id"].as_str().unwrap().to_owned();
    let wrong_code = user_post(
        &app,
        &token,
        "/v1/me/cards/confirm",
        json!({"binding_id": binding, "code": "000000"}),
        None,
    )
    .await;
    assert_eq!(wrong_code.status, 422, "{}", wrong_code.body);
    assert_eq!(wrong_code.json()["code"], "invalid_code");
    // A wrong code ends the binding: even the right code no longer confirms it.
    let ended = user_post(
        &app,
        &token,
        "/v1/me/cards/confirm",
        json!({"binding_id": binding, "code": last_code(&app, phone)}),
        None,
    )
    .await;
    assert_eq!(ended.status, 404, "{}", ended.body);
    let started = user_post(&app, &token, "/v1/me/cards", card_request("Li Lei"), None).await;
    let binding = started.json()["binding_id"].as_str().unwrap().to_owned();
    let card = user_post(
        &app,
        &token,
        "/v1/me/cards/confirm",
        json!({"binding_id": binding, "code": last_code(&app, phone)}),
        None,
    )
    .await;
    assert_eq!(card.status, 201, "{}", card.body);
    let card = card.json();
    assert_eq!(
        (card["bin"].as_str(), card["last4"].as_str()),
        (Some("622202"), Some("3446"))
    );
    let card_id = card["id"].as_str().unwrap().to_owned();
    let me = request(
        &app,
        "GET",
        "/v1/me",
        &[("Authorization", &format!("Bearer {token}"))],
        "",
    )
    .await;
    assert_eq!(me.json()["tier"], 1, "a bound card raises the tier");

    let move_money = |path: &'static str, amount: u64, key: &'static str| {
        let (token, card_id, app) = (token.clone(), card_id.clone(), &app);
        async move {
            user_post(
                app,
                &token,
                path,
                json!({"card_id": card_id, "amount": amount, "payment_password": PAYMENT_PASSWORD}),
                Some(key),
            )
            .await
        }
    };
    let topped = move_money("/v1/me/top-ups", 300_000, "top-up-1").await;
    assert_eq!(topped.status, 201, "{}", topped.body);
    assert_eq!(topped.json()["state"], "succeeded");
    let again = move_money("/v1/me/top-ups", 300_000, "top-up-1").await;
    assert_eq!(
        again.body, topped.body,
        "a retry replays, and moves nothing"
    );
    assert_eq!(balance(&app, wallet), 300_000);
    // More than the card holds: the bank refuses, nothing moves.
    let refused = move_money("/v1/me/top-ups", 90_000_000, "top-up-2").await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.json()["state"], "failed");
    assert_eq!(balance(&app, wallet), 300_000);
    // The bank's answer is lost: pending, until the bank is asked.
    let lost = move_money("/v1/me/top-ups", 1_099, "top-up-3").await;
    assert_eq!(lost.status, 202, "{}", lost.body);
    assert_eq!(balance(&app, wallet), 300_000);

    let withdrawn = move_money("/v1/me/withdrawals", 100_000, "withdrawal-1").await;
    assert_eq!(withdrawn.status, 201, "{}", withdrawn.body);
    assert_eq!(balance(&app, wallet), 200_000);
    let too_much = move_money("/v1/me/withdrawals", 900_000, "withdrawal-2").await;
    assert_eq!(
        too_much.json()["code"],
        "insufficient_funds",
        "{}",
        too_much.body
    );
    // A withdrawal whose answer is lost stays held: not spendable, not paid out yet.
    let held = move_money("/v1/me/withdrawals", 50_099, "withdrawal-3").await;
    assert_eq!(held.status, 202, "{}", held.body);
    let account = app
        .store
        .reader()
        .unwrap()
        .account(wallet)
        .unwrap()
        .unwrap();
    assert_eq!(account.debits_pending, 50_099);

    // The resolver asks the bank and finishes both, once.
    let later = server::unix_seconds() + 3_600;
    let finished = app_state(&app)
        .cards
        .resolve_pending(later, 60)
        .await
        .unwrap();
    assert_eq!(finished, 2);
    assert_eq!(
        app_state(&app)
            .cards
            .resolve_pending(later, 60)
            .await
            .unwrap(),
        0
    );
    let account = app
        .store
        .reader()
        .unwrap()
        .account(wallet)
        .unwrap()
        .unwrap();
    assert_eq!(account.debits_pending, 0);
    assert_eq!(balance(&app, wallet), 200_000 + 1_099 - 50_099);
    let lost_id = lost.json()["id"].as_str().unwrap().to_owned();
    let resolved = request(
        &app,
        "GET",
        &format!("/v1/me/bank-transfers/{lost_id}"),
        &[("Authorization", &format!("Bearer {token}"))],
        "",
    )
    .await;
    assert_eq!(resolved.json()["state"], "succeeded", "{}", resolved.body);

    // The reserve mirrors what the platform owes: here, this one wallet.
    let reserve = app
        .store
        .reader()
        .unwrap()
        .account(RESERVE_ACCOUNT_ID)
        .unwrap()
        .unwrap();
    assert_eq!(
        reserve.debits_posted - reserve.credits_posted,
        balance(&app, wallet)
    );
    // The card number is nowhere in the store.
    let bytes = stored_bytes(&app);
    assert!(!bytes
        .windows(number.len())
        .any(|window| window == number.as_bytes()));
    // Unbinding: the card can no longer be used.
    let unbound = request(
        &app,
        "DELETE",
        &format!("/v1/me/cards/{card_id}"),
        &[("Authorization", &format!("Bearer {token}"))],
        "",
    )
    .await;
    assert_eq!(unbound.status, 204);
    let after = move_money("/v1/me/top-ups", 100, "top-up-4").await;
    assert_eq!(after.status, 404, "{}", after.body);
    app.stop().await;
}

#[tokio::test]
async fn users_never_reach_each_others_cards_transfers_or_history() {
    let app = spawn_app().await;
    let (li_lei, _, li_wallet) = sign_up(&app, "+8613800138000").await;
    let (han, _, han_wallet) = sign_up(&app, "+8613900139000").await;
    let started = user_post(
        &app,
        &li_lei,
        "/v1/me/cards",
        json!({"card_number": "6222020200112233446", "holder_name": "Li Lei",
               "id_number": "110101199003070011", "phone": "+8613800138000"}),
        None,
    )
    .await;
    let binding = started.json()["binding_id"].as_str().unwrap().to_owned();
    // Han cannot confirm Li Lei's binding, even with the right code.
    let stolen = user_post(
        &app,
        &han,
        "/v1/me/cards/confirm",
        json!({"binding_id": binding, "code": last_code(&app, "+8613800138000")}),
        None,
    )
    .await;
    assert_eq!(stolen.status, 404, "{}", stolen.body);
    let started = user_post(
        &app,
        &li_lei,
        "/v1/me/cards",
        json!({"card_number": "6222020200112233446", "holder_name": "Li Lei",
               "id_number": "110101199003070011", "phone": "+8613800138000"}),
        None,
    )
    .await;
    let card = user_post(
        &app,
        &li_lei,
        "/v1/me/cards/confirm",
        json!({"binding_id": started.json()["binding_id"], "code": last_code(&app, "+8613800138000")}),
        None,
    )
    .await
    .json();
    let card_id = card["id"].as_str().unwrap();
    let top_up = user_post(
        &app,
        &li_lei,
        "/v1/me/top-ups",
        json!({"card_id": card_id, "amount": 10_000, "payment_password": PAYMENT_PASSWORD}),
        None,
    )
    .await
    .json();
    // Han: not Li Lei's card, not his top-up, not his withdrawal, not his history.
    let with_his_card = user_post(
        &app,
        &han,
        "/v1/me/withdrawals",
        json!({"card_id": card_id, "amount": 1, "payment_password": PAYMENT_PASSWORD}),
        None,
    )
    .await;
    assert_eq!(with_his_card.status, 404, "{}", with_his_card.body);
    let bearer = format!("Bearer {han}");
    for (method, path) in [
        (
            "GET",
            format!("/v1/me/bank-transfers/{}", top_up["id"].as_str().unwrap()),
        ),
        ("DELETE", format!("/v1/me/cards/{card_id}")),
    ] {
        let answer = request(&app, method, &path, &[("Authorization", &bearer)], "").await;
        assert_eq!(answer.status, 404, "{method} {path}: {}", answer.body);
    }
    let cards = request(
        &app,
        "GET",
        "/v1/me/cards",
        &[("Authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(cards.json()["data"].as_array().unwrap().len(), 0);
    let history = request(
        &app,
        "GET",
        "/v1/me/transactions",
        &[("Authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(history.json()["data"].as_array().unwrap().len(), 0);
    // A forged or revoked session is no one.
    let forged = format!("Bearer sess_{}", "0".repeat(64));
    let me = request(&app, "GET", "/v1/me", &[("Authorization", &forged)], "").await;
    assert_eq!(me.status, 401);
    assert_eq!(balance(&app, li_wallet), 10_000);
    assert_eq!(balance(&app, han_wallet), 0);
    app.stop().await;
}

#[tokio::test]
async fn onboarding_a_merchant_twice_with_one_key_creates_one_merchant() {
    let app = spawn_app().await;
    let operator = format!("Bearer {}", token(&app, store::CredentialRole::Operator));
    let body = json!({"name": "Tea House", "mcc": "5814", "country": "CN", "city": "Hangzhou",
                      "settlement_account": "6222020200112233", "fee_rate_bps": 60})
    .to_string();
    let headers = [
        ("Authorization", operator.as_str()),
        ("Idempotency-Key", "onboard-tea-house"),
    ];
    let first = request(&app, "POST", "/v1/merchants", &headers, &body).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert!(first.json()["api_key"]["secret"]
        .as_str()
        .unwrap()
        .starts_with("msk_"));
    let again = request(&app, "POST", "/v1/merchants", &headers, &body).await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(again.json()["id"], first.json()["id"]);
    assert!(
        again.json()["api_key"].is_null(),
        "the secret is shown once: {}",
        again.body
    );
    assert!(!again.body.contains("msk_"));
    let other = request(
        &app,
        "POST",
        "/v1/merchants",
        &headers,
        &body.replace("Tea", "Coffee"),
    )
    .await;
    assert_eq!(other.status, 409);
    let merchants = app.store.records().unwrap().merchants(0, 10).unwrap();
    assert_eq!(merchants.len(), 1);
    // The stored answer holds no secret either.
    let stored = app
        .store
        .query(
            "SELECT response FROM idempotency_keys",
            store::QueryLimits {
                rows_max: 100,
                time_max: None,
            },
        )
        .unwrap();
    assert!(!format!("{:?}", stored.rows).contains("msk_"));
    app.stop().await;
}
