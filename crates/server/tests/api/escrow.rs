//! Escrow through HTTP: shipped and confirmed, disputed and split by an operator, and the
//! timers that refund what was not shipped and release what was not confirmed.

use serde_json::{json, Value};
use services::payments::{ESCROW_ACCOUNT_ID, FEES_ACCOUNT_ID};

use super::payments::{fund, onboard, pay, sign_up, TestMerchant};
use super::{request, spawn_app, token, Answer, TestApp};

const PAYMENT_PASSWORD: &str = "246810";
const DAY: u64 = 86_400;

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

async fn escrow_order(
    app: &TestApp,
    merchant: &TestMerchant,
    out_trade_no: &str,
    amount: u64,
) -> String {
    let answer = merchant
        .send(
            app,
            "POST",
            "/v1/orders",
            &json!({"out_trade_no": out_trade_no, "amount": amount, "currency": "CNY",
                    "description": "a lamp", "escrow": true})
            .to_string(),
            None,
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.json()["escrow"], true);
    answer.json()["id"].as_str().unwrap().to_owned()
}

async fn buyer_post(app: &TestApp, token: &str, path: &str, body: Value) -> Answer {
    let bearer = format!("Bearer {token}");
    request(
        app,
        "POST",
        path,
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        &body.to_string(),
    )
    .await
}

async fn ship(app: &TestApp, merchant: &TestMerchant, order: &str) -> Answer {
    merchant
        .send(
            app,
            "POST",
            &format!("/v1/orders/{order}/shipment"),
            &json!({"carrier": "SF Express", "tracking_no": "SF1234567890"}).to_string(),
            None,
        )
        .await
}

#[tokio::test]
async fn an_escrowed_payment_waits_for_the_buyer_and_disputes_are_settled_by_an_operator() {
    let app = spawn_app().await;
    let merchant = onboard(&app, "Lamp Shop", 60).await;
    let me = merchant
        .send(&app, "GET", "/v1/merchant", "", None)
        .await
        .json();
    let merchant_account: u128 = me["account_id"].as_str().unwrap().parse().unwrap();
    let (buyer, _, wallet) = sign_up(&app, "+8613900000401").await;
    let (stranger, _, _) = sign_up(&app, "+8613900000402").await;
    fund(&app, wallet, 20_000).await;

    // Paid into escrow: the merchant has nothing yet and cannot refund from its own balance.
    let first = escrow_order(&app, &merchant, "L-1", 5_000).await;
    assert_eq!(
        pay(&app, &buyer, &first, 5_000, PAYMENT_PASSWORD, None)
            .await
            .status,
        200
    );
    assert_eq!(balance(&app, wallet), 15_000);
    assert_eq!(balance(&app, ESCROW_ACCOUNT_ID), 5_000);
    assert_eq!(balance(&app, merchant_account), 0);
    let seen = request(
        &app,
        "GET",
        &format!("/v1/escrows/{first}"),
        &[("Authorization", &format!("Bearer {buyer}"))],
        "",
    )
    .await;
    assert_eq!(seen.json()["state"], "held", "{}", seen.body);
    let hidden = request(
        &app,
        "GET",
        &format!("/v1/escrows/{first}"),
        &[("Authorization", &format!("Bearer {stranger}"))],
        "",
    )
    .await;
    assert_eq!(hidden.status, 404);
    let refund = merchant
        .send(
            &app,
            "POST",
            &format!("/v1/orders/{first}/refunds"),
            &json!({"out_refund_no": "R-1", "amount": 100}).to_string(),
            None,
        )
        .await;
    assert_eq!(refund.json()["code"], "escrow_open", "{}", refund.body);
    let early = buyer_post(
        &app,
        &buyer,
        &format!("/v1/escrows/{first}/confirm"),
        json!({"payment_password": PAYMENT_PASSWORD}),
    )
    .await;
    assert_eq!(early.json()["code"], "escrow_not_shipped", "{}", early.body);

    // Shipped, then confirmed: released to the merchant less its fee (0.6 % of 5,000 = 30).
    let shipped = ship(&app, &merchant, &first).await;
    assert_eq!(shipped.json()["state"], "shipped", "{}", shipped.body);
    assert_eq!(
        ship(&app, &merchant, &first).await.json()["code"],
        "escrow_already_shipped"
    );
    let wrong = buyer_post(
        &app,
        &buyer,
        &format!("/v1/escrows/{first}/confirm"),
        json!({"payment_password": "135790"}),
    )
    .await;
    assert_eq!(wrong.status, 401);
    let confirmed = buyer_post(
        &app,
        &buyer,
        &format!("/v1/escrows/{first}/confirm"),
        json!({"payment_password": PAYMENT_PASSWORD}),
    )
    .await;
    assert_eq!(confirmed.json()["state"], "released", "{}", confirmed.body);
    assert_eq!(balance(&app, merchant_account), 4_970);
    assert_eq!(balance(&app, FEES_ACCOUNT_ID), 30);
    assert_eq!(balance(&app, ESCROW_ACCOUNT_ID), 0);
    let again = buyer_post(
        &app,
        &buyer,
        &format!("/v1/escrows/{first}/confirm"),
        json!({"payment_password": PAYMENT_PASSWORD}),
    )
    .await;
    assert_eq!(again.json()["code"], "escrow_settled");
    let events = merchant
        .send(&app, "GET", "/v1/events", "", None)
        .await
        .json();
    let kinds: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"escrow.shipped") && kinds.contains(&"escrow.released"),
        "{kinds:?}"
    );

    // Disputed: frozen; the operator splits it, with a note.
    let second = escrow_order(&app, &merchant, "L-2", 5_000).await;
    pay(&app, &buyer, &second, 5_000, PAYMENT_PASSWORD, None).await;
    let disputed = buyer_post(
        &app,
        &buyer,
        &format!("/v1/escrows/{second}/dispute"),
        json!({"reason": "never arrived", "evidence": "chat-77"}),
    )
    .await;
    assert_eq!(disputed.json()["state"], "disputed", "{}", disputed.body);
    assert_eq!(
        ship(&app, &merchant, &second).await.json()["code"],
        "escrow_in_dispute"
    );
    let operator = format!("Bearer {}", token(&app, store::CredentialRole::Operator));
    let resolve = |body: Value| {
        let path = format!("/v1/escrows/{second}/resolution");
        let operator = operator.clone();
        let app = &app;
        async move {
            request(
                app,
                "POST",
                &path,
                &[
                    ("Authorization", &operator),
                    ("Content-Type", "application/json"),
                ],
                &body.to_string(),
            )
            .await
        }
    };
    let too_much = resolve(json!({"outcome": "split", "to_buyer": 5_001, "note": "half"})).await;
    assert_eq!(
        too_much.json()["code"],
        "invalid_request",
        "{}",
        too_much.body
    );
    let split =
        resolve(json!({"outcome": "split", "to_buyer": 1_000, "note": "damaged in transit"})).await;
    let split = split.json();
    assert_eq!(split["state"], "split", "{split}");
    assert!(split["settled_by"].as_str().unwrap().starts_with("key_"));
    assert_eq!(split["note"], "damaged in transit");
    assert_eq!(balance(&app, wallet), 20_000 - 10_000 + 1_000);
    assert_eq!(balance(&app, merchant_account), 4_970 + 4_000 - 24);
    let order = merchant
        .send(&app, "GET", &format!("/v1/orders/{second}"), "", None)
        .await
        .json();
    assert_eq!(
        (order["state"].as_str(), order["refunded"].as_u64()),
        (Some("REFUND"), Some(1_000))
    );

    // Timers: not shipped in time → refunded; shipped and not confirmed → released; once each.
    let third = escrow_order(&app, &merchant, "L-3", 2_000).await;
    pay(&app, &buyer, &third, 2_000, PAYMENT_PASSWORD, None).await;
    let fourth = escrow_order(&app, &merchant, "L-4", 3_000).await;
    pay(&app, &buyer, &fourth, 3_000, PAYMENT_PASSWORD, None).await;
    ship(&app, &merchant, &fourth).await;
    let now = server::unix_seconds();
    let payments = &app.state.payments;
    assert_eq!(
        payments
            .run_escrow_timers(now + 7 * DAY - 60, 10)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        payments
            .run_escrow_timers(now + 7 * DAY + 60, 10)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        payments
            .run_escrow_timers(now + 7 * DAY + 120, 10)
            .await
            .unwrap(),
        0
    );
    let refunded = merchant
        .send(&app, "GET", &format!("/v1/orders/{third}/escrow"), "", None)
        .await
        .json();
    assert_eq!(
        (refunded["state"].as_str(), refunded["settled_by"].as_str()),
        (Some("refunded"), Some("timer"))
    );
    assert_eq!(
        payments
            .run_escrow_timers(now + 10 * DAY + 60, 10)
            .await
            .unwrap(),
        1
    );
    let released = merchant
        .send(
            &app,
            "GET",
            &format!("/v1/orders/{fourth}/escrow"),
            "",
            None,
        )
        .await
        .json();
    assert_eq!(released["state"], "released", "{released}");
    assert_eq!(balance(&app, wallet), 20_000 - 10_000 + 1_000 - 3_000);
    assert_eq!(balance(&app, ESCROW_ACCOUNT_ID), 0);
    app.stop().await;
}
