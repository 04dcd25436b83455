//! Groups and red envelopes through HTTP.

use base64::Engine as _;
use serde_json::{json, Value};

use super::payments::{fund, sign_up};
use super::{request, signed_app_config, spawn_app_with, Answer, TestApp};

const PAYMENT_PASSWORD: &str = "246810";

async fn post(app: &TestApp, token: &str, path: &str, body: Value, key: Option<&str>) -> Answer {
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

async fn get(app: &TestApp, token: &str, path: &str) -> Answer {
    let bearer = format!("Bearer {token}");
    request(app, "GET", path, &[("Authorization", bearer.as_str())], "").await
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

#[tokio::test]
async fn a_group_envelope_is_sent_grabbed_once_each_and_shown_with_its_luckiest() {
    let (config, _) = signed_app_config();
    let app = spawn_app_with(config).await;
    let (sender, _, sender_wallet) = sign_up(&app, "+8613900000101").await;
    fund(&app, sender_wallet, 10_000).await;
    let mut members = Vec::new();
    for index in 0..4 {
        members.push(sign_up(&app, &format!("+86139000002{index:02}")).await);
    }
    let (outsider, _, _) = sign_up(&app, "+8613900000301").await;
    let group = post(
        &app,
        &sender,
        "/v1/groups",
        json!({"name": "family", "members": ["+8613900000200", "+8613900000201", members[2].1, members[3].1]}),
        None,
    )
    .await;
    assert_eq!(group.status, 201, "{}", group.body);
    let group = group.json();
    assert_eq!(group["members"].as_array().unwrap().len(), 5);
    let group_id = group["id"].as_str().unwrap();
    let seen = get(&app, &members[0].0, &format!("/v1/groups/{group_id}")).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(
        get(&app, &outsider, &format!("/v1/groups/{group_id}"))
            .await
            .status,
        404
    );
    assert_eq!(
        get(&app, &members[1].0, "/v1/me/groups").await.json()["data"][0]["id"],
        group_id
    );

    // Refusals move nothing.
    let wrong_password = post(&app, &sender, "/v1/red-envelopes",
        json!({"group_id": group_id, "kind": "lucky", "amount": 888, "count": 4, "payment_password": "135790"}), None).await;
    assert_eq!(wrong_password.status, 401, "{}", wrong_password.body);
    let too_thin = post(&app, &sender, "/v1/red-envelopes",
        json!({"group_id": group_id, "kind": "lucky", "amount": 3, "count": 4, "payment_password": PAYMENT_PASSWORD}), None).await;
    assert_eq!(
        too_thin.json()["code"],
        "invalid_request",
        "{}",
        too_thin.body
    );
    let too_much = post(&app, &sender, "/v1/red-envelopes",
        json!({"group_id": group_id, "kind": "lucky", "amount": 20_000, "count": 4, "payment_password": PAYMENT_PASSWORD}), None).await;
    assert_eq!(
        too_much.json()["code"],
        "insufficient_funds",
        "{}",
        too_much.body
    );
    assert_eq!(balance(&app, sender_wallet), 10_000);

    let body = json!({"group_id": group_id, "kind": "lucky", "amount": 888, "count": 4,
                      "greeting": "恭喜发财", "payment_password": PAYMENT_PASSWORD});
    let sent = post(
        &app,
        &sender,
        "/v1/red-envelopes",
        body.clone(),
        Some("env-1"),
    )
    .await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    let retry = post(&app, &sender, "/v1/red-envelopes", body, Some("env-1")).await;
    assert_eq!(retry.body, sent.body, "a retry answers the first envelope");
    let envelope = sent.json();
    assert_eq!(balance(&app, sender_wallet), 10_000 - 888);
    // While it is open its packets stay secret.
    assert!(envelope.get("packets").is_none(), "{envelope}");
    let id = envelope["id"].as_str().unwrap();
    let grab_path = format!("/v1/red-envelopes/{id}/grab");
    assert_eq!(
        post(&app, &outsider, &grab_path, json!({}), None)
            .await
            .status,
        404
    );

    let mut total = 0;
    for (token, _, wallet) in &members {
        let grabbed = post(&app, token, &grab_path, json!({}), None).await;
        assert_eq!(grabbed.status, 200, "{}", grabbed.body);
        let amount = grabbed.json()["amount"].as_u64().unwrap();
        assert!(amount >= 1);
        assert_eq!(balance(&app, *wallet), u128::from(amount));
        total += amount;
        let again = post(&app, token, &grab_path, json!({}), None).await;
        assert_eq!(
            (again.status, again.json()["code"].clone()),
            (409, json!("already_grabbed"))
        );
    }
    assert_eq!(total, 888);
    let late = post(&app, &sender, &grab_path, json!({}), None).await;
    assert_eq!(late.json()["code"], "envelope_empty", "{}", late.body);

    // Finished: who got how much, the luckiest, and the packets with their commitment, whose
    // digest is the one registered in the trust log before the first grab.
    let shown = get(&app, &members[0].0, &format!("/v1/red-envelopes/{id}"))
        .await
        .json();
    assert_eq!(shown["state"], "finished", "{shown}");
    let grabs = shown["grabs"].as_array().unwrap();
    assert_eq!(grabs.len(), 4);
    let largest = grabs
        .iter()
        .map(|grab| grab["amount"].as_u64().unwrap())
        .max()
        .unwrap();
    let luckiest: Vec<&Value> = grabs
        .iter()
        .filter(|grab| grab["luckiest"] == true)
        .collect();
    assert_eq!(luckiest.len(), 1);
    assert_eq!(luckiest[0]["amount"].as_u64().unwrap(), largest);
    let packets: Vec<u64> = shown["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|amount| amount.as_u64().unwrap())
        .collect();
    assert_eq!(packets.iter().sum::<u64>(), 888);
    let commitment = shown["commitment"].as_str().unwrap();
    let leaf = base64::engine::general_purpose::STANDARD
        .decode(shown["receipt"]["leaf"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        &leaf[12..44],
        &services::payments::payload_digest(commitment)[..]
    );
    assert_eq!(
        get(&app, &outsider, &format!("/v1/red-envelopes/{id}"))
            .await
            .status,
        404
    );

    // An envelope to one friend.
    let gift = post(&app, &sender, "/v1/red-envelopes",
        json!({"to": "+8613900000200", "kind": "ordinary", "amount": 520, "payment_password": PAYMENT_PASSWORD}), None).await;
    assert_eq!(gift.status, 201, "{}", gift.body);
    let gift_id = gift.json()["id"].as_str().unwrap().to_owned();
    let not_yours = post(
        &app,
        &members[1].0,
        &format!("/v1/red-envelopes/{gift_id}/grab"),
        json!({}),
        None,
    )
    .await;
    assert_eq!(not_yours.status, 404, "{}", not_yours.body);
    let taken = post(
        &app,
        &members[0].0,
        &format!("/v1/red-envelopes/{gift_id}/grab"),
        json!({}),
        None,
    )
    .await;
    assert_eq!(taken.json()["amount"], 520, "{}", taken.body);
    assert_eq!(balance(&app, sender_wallet), 10_000 - 888 - 520);
    let history = get(&app, &sender, "/v1/me/transactions").await.json();
    assert!(history.to_string().contains("red_envelope"), "{history}");
    app.stop().await;
}
