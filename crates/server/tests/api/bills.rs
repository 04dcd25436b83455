//! Bill payments through HTTP: billers registered by an operator, inquiries, payments held and
//! settled once (confirmed, refused, or left pending and settled by the resolver, across a
//! restart too), phone top-ups in fixed amounts, saved billers and the history.

use serde_json::{json, Value};

use super::payments::{balance, fund, sign_up, user_post, PAYMENT_PASSWORD};
use super::{
    request, signed_app_config, spawn_app, spawn_app_in, spawn_app_with, token, Answer, TestApp,
};

/// Li Lei's electricity account at the simulated biller (10 digits, Luhn).
const POWER_LI_LEI: &str = "1002030409";
/// An account the biller refuses payments to, once asked to take one.
const POWER_UNDER_REVIEW: &str = "1002030425";
/// The biller takes the payment but its answer is lost.
const POWER_SLOW_PAYS: &str = "1002030433";
/// The biller refuses the payment and its answer is lost.
const POWER_SLOW_REFUSES: &str = "1002030441";
const POWER_CLOSED: &str = "1002030458";

fn electricity(code: &str) -> Value {
    json!({"code": code, "name": "Capital Power", "category": "electricity",
           "reference_label": "Customer number", "reference_length_min": 10,
           "reference_length_max": 10, "check_digit": "luhn"})
}

fn phone() -> Value {
    json!({"code": "SKYLINE-MOBILE", "name": "Skyline Mobile", "category": "phone",
           "reference_label": "Phone number", "reference_length_min": 11,
           "reference_length_max": 11, "reference_prefix": "1",
           "denominations": [1_000, 3_000, 5_000, 10_000]})
}

async fn operator_post(app: &TestApp, operator: &str, path: &str, body: Value) -> Answer {
    let bearer = format!("Bearer {operator}");
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

/// Registers a biller: (its id, its ledger account).
async fn register(app: &TestApp, body: Value) -> (String, u128) {
    let operator = token(app, store::CredentialRole::Operator);
    let answer = operator_post(app, &operator, "/v1/billers", body).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let biller = answer.json();
    (
        biller["id"].as_str().unwrap().to_owned(),
        biller["account_id"].as_str().unwrap().parse().unwrap(),
    )
}

async fn user_get(app: &TestApp, token: &str, path: &str) -> Answer {
    request(
        app,
        "GET",
        path,
        &[("Authorization", &format!("Bearer {token}"))],
        "",
    )
    .await
}

async fn pay_bill(
    app: &TestApp,
    token: &str,
    biller: &str,
    reference: &str,
    amount: u64,
    key: Option<&str>,
) -> Answer {
    user_post(
        app,
        token,
        "/v1/bill-payments",
        json!({"biller_id": biller, "reference": reference, "amount": amount,
               "payment_password": PAYMENT_PASSWORD}),
        key,
    )
    .await
}

fn account(app: &TestApp, id: u128) -> ledger::Account {
    app.store.reader().unwrap().account(id).unwrap().unwrap()
}

/// Whether leg `leg` of a bill payment is in the ledger.
fn leg_exists(app: &TestApp, payment: &Value, leg: u8) -> bool {
    let id = services::ids::parse_prefixed("bp_", payment["id"].as_str().unwrap()).unwrap();
    app.store
        .reader()
        .unwrap()
        .transfer(services::ids::transfer_id(id, leg))
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn a_bill_is_inquired_paid_and_receipted_and_every_refusal_moves_nothing() {
    let (config, verifier_key) = signed_app_config();
    let app = spawn_app_with(config).await;
    let operator = token(&app, store::CredentialRole::Operator);
    // Registering is the operator's: a user's session is not a credential, a taken code and a
    // rule no reference can meet are refused.
    let (token, _, wallet) = sign_up(&app, "+8613800000201").await;
    let by_user = user_post(
        &app,
        &token,
        "/v1/billers",
        electricity("CAPITAL-POWER"),
        None,
    )
    .await;
    assert_eq!(by_user.status, 401, "{}", by_user.body);
    let (biller, biller_account) = register(&app, electricity("CAPITAL-POWER")).await;
    let taken = operator_post(&app, &operator, "/v1/billers", electricity("CAPITAL-POWER")).await;
    assert_eq!(taken.status, 409, "{}", taken.body);
    assert_eq!(taken.json()["code"], "biller_code_used");
    let mut impossible = electricity("OTHER-POWER");
    impossible["reference_charset"] = json!("alphanumeric");
    let refused = operator_post(&app, &operator, "/v1/billers", impossible).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.json()["detail"]
        .as_str()
        .unwrap()
        .contains("check_digit"));
    let mut unknown_category = electricity("OTHER-POWER");
    unknown_category["category"] = json!("lottery");
    let refused = operator_post(&app, &operator, "/v1/billers", unknown_category).await;
    assert_eq!(
        refused.json()["code"],
        "invalid_request",
        "{}",
        refused.body
    );
    assert_eq!(
        account(&app, biller_account).kind,
        services::accounts::KIND_BILLER
    );

    // Users see the biller and its rule.
    let listed = user_get(&app, &token, "/v1/billers?category=electricity").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let listed = listed.json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert_eq!(listed["data"][0]["id"], biller.as_str());
    assert_eq!(listed["data"][0]["check_digit"], "luhn");
    let phones = user_get(&app, &token, "/v1/billers?category=phone").await;
    assert_eq!(phones.json()["data"], json!([]));

    // An inquiry: the name masked, the amount due, the due date.
    let inquiry = user_post(
        &app,
        &token,
        "/v1/bill-inquiries",
        json!({"biller_id": biller, "reference": "100 203 0409"}),
        None,
    )
    .await;
    assert_eq!(inquiry.status, 200, "{}", inquiry.body);
    let inquiry = inquiry.json();
    assert_eq!(inquiry["reference"], POWER_LI_LEI);
    assert_eq!(inquiry["customer_name"], "L* L**");
    assert_eq!(inquiry["amount_due"], 12_880);
    assert_eq!(inquiry["due_date"].as_str().unwrap().len(), 10);
    for (reference, status, code) in [
        ("1002030408", 422, "check_digit_mismatch"),
        ("10020304", 422, "invalid_reference"),
        ("10020304AB", 422, "invalid_reference"),
        ("1002030466", 422, "unknown_reference"),
        (POWER_CLOSED, 422, "account_closed"),
    ] {
        let answer = user_post(
            &app,
            &token,
            "/v1/bill-inquiries",
            json!({"biller_id": biller, "reference": reference}),
            None,
        )
        .await;
        assert_eq!(answer.status, status, "{reference}: {}", answer.body);
        assert_eq!(answer.content_type, "application/problem+json");
        assert_eq!(answer.json()["code"], code, "{reference}");
    }

    // Payments refused before anything moves: a mistyped check digit, a closed account, the
    // wrong payment password, more than the wallet holds, more than the tier allows at once.
    fund(&app, wallet, 100_000).await;
    for (reference, amount, password, code) in [
        (
            "1002030408",
            12_880,
            PAYMENT_PASSWORD,
            "check_digit_mismatch",
        ),
        (POWER_CLOSED, 12_880, PAYMENT_PASSWORD, "account_closed"),
        (POWER_LI_LEI, 12_880, "135791", "wrong_payment_password"),
        (POWER_LI_LEI, 100_001, PAYMENT_PASSWORD, "limit_exceeded"),
    ] {
        let answer = user_post(
            &app,
            &token,
            "/v1/bill-payments",
            json!({"biller_id": biller, "reference": reference, "amount": amount,
                   "payment_password": password}),
            None,
        )
        .await;
        assert_eq!(answer.json()["code"], code, "{}", answer.body);
    }
    assert_eq!(balance(&app, wallet), 100_000);
    assert_eq!(account(&app, wallet).debits_pending, 0);
    let history = user_get(&app, &token, "/v1/me/bill-payments").await;
    assert_eq!(history.json()["data"], json!([]), "nothing was recorded");

    // Paid: the hold posted at once, the biller's confirmation is the receipt.
    let paid = pay_bill(&app, &token, &biller, POWER_LI_LEI, 12_880, None).await;
    assert_eq!(paid.status, 201, "{}", paid.body);
    let paid = paid.json();
    assert_eq!(paid["state"], "succeeded");
    assert_eq!(paid["biller"]["name"], "Capital Power");
    assert_eq!(paid["customer_name"], "L* L**");
    let confirmation = paid["confirmation"].as_str().unwrap().to_owned();
    assert!(confirmation.starts_with("SB"), "{confirmation}");
    assert_eq!(balance(&app, wallet), 100_000 - 12_880);
    assert_eq!(account(&app, wallet).debits_pending, 0);
    assert_eq!(balance(&app, biller_account), 12_880);
    assert!(leg_exists(&app, &paid, 1) && leg_exists(&app, &paid, 2));
    assert!(!leg_exists(&app, &paid, 3));
    // The hold is a leaf of the trust log: its receipt verifies with the log's key.
    let signed = operator_post(&app, &operator, "/v1/log/checkpoint", json!({})).await;
    assert_eq!(signed.status, 200, "{}", signed.body);
    let hold: u128 = paid["hold_transfer_id"].as_str().unwrap().parse().unwrap();
    let receipt = request(&app, "GET", &format!("/v1/log/receipts/{hold}"), &[], "").await;
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    let checkpoint = receipt.json()["checkpoint"].as_str().unwrap().to_owned();
    trustlog::verify_note(&checkpoint, &verifier_key).unwrap();

    let id = paid["id"].as_str().unwrap().to_owned();
    let fetched = user_get(&app, &token, &format!("/v1/bill-payments/{id}")).await;
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    assert_eq!(fetched.json()["confirmation"], confirmation.as_str());
    let (stranger, _, _) = sign_up(&app, "+8613800000202").await;
    let hidden = user_get(&app, &stranger, &format!("/v1/bill-payments/{id}")).await;
    assert_eq!(hidden.status, 404, "another user's payment is not found");

    // More than the wallet holds (within the tier's limits): refused, nothing held.
    let too_much = pay_bill(&app, &token, &biller, POWER_LI_LEI, 90_000, None).await;
    assert_eq!(too_much.status, 422, "{}", too_much.body);
    assert_eq!(too_much.json()["code"], "insufficient_funds");
    assert_eq!(balance(&app, wallet), 100_000 - 12_880);
    assert_eq!(account(&app, wallet).debits_pending, 0);

    // The wallet's history shows the hold and its posting, both naming the payment.
    let movements = user_get(&app, &token, "/v1/me/transactions").await.json();
    let bills: Vec<&Value> = movements["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["kind"] == "bill")
        .collect();
    assert_eq!(bills.len(), 2, "{movements}");
    assert!(bills.iter().all(|entry| entry["reference"] == id.as_str()));
    assert_eq!(bills[0]["phase"], "hold");
    assert_eq!(bills[1]["phase"], "posted");
    app.stop().await;
}

#[tokio::test]
async fn a_biller_that_refuses_after_the_hold_gives_the_money_back_once() {
    let app = spawn_app().await;
    let (biller, biller_account) = register(&app, electricity("CAPITAL-POWER")).await;
    let (token, _, wallet) = sign_up(&app, "+8613800000211").await;
    fund(&app, wallet, 300_000).await;

    let refused = pay_bill(&app, &token, &biller, POWER_UNDER_REVIEW, 60_000, None).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.content_type, "application/problem+json");
    let refused = refused.json();
    assert_eq!(refused["code"], "biller_rejected");
    assert_eq!(refused["state"], "failed");
    assert!(
        refused["failure"]
            .as_str()
            .unwrap()
            .contains("under review"),
        "{refused}"
    );
    // Held, then voided: the money is back, the biller has nothing, and the hold was never
    // posted.
    assert_eq!(balance(&app, wallet), 300_000);
    assert_eq!(account(&app, wallet).debits_pending, 0);
    assert_eq!(balance(&app, biller_account), 0);
    assert_eq!(account(&app, biller_account).credits_pending, 0);
    assert!(leg_exists(&app, &refused, 1) && leg_exists(&app, &refused, 3));
    assert!(!leg_exists(&app, &refused, 2));
    // Nothing is left for the resolver, and asking it changes nothing.
    let later = server::unix_seconds() + 3_600;
    assert_eq!(
        app.state
            .payments
            .resolve_pending_bills(later, 60)
            .await
            .unwrap(),
        0
    );
    let id = refused["id"].as_str().unwrap();
    let stored = user_get(&app, &token, &format!("/v1/bill-payments/{id}")).await;
    assert_eq!(stored.json()["state"], "failed");
    assert_eq!(balance(&app, wallet), 300_000);

    // The refused amount no longer counts against the day's limit (tier 0: 2,000.00 a day):
    // 600.00 refused and 1,400.00 paid leave exactly nothing more to pay today.
    for _ in 0..2 {
        let paid = pay_bill(&app, &token, &biller, POWER_LI_LEI, 70_000, None).await;
        assert_eq!(paid.status, 201, "{}", paid.body);
    }
    let over = pay_bill(&app, &token, &biller, POWER_LI_LEI, 60_001, None).await;
    assert_eq!(over.json()["code"], "limit_exceeded", "{}", over.body);
    let exactly = pay_bill(&app, &token, &biller, POWER_LI_LEI, 60_000, None).await;
    assert_eq!(exactly.status, 201, "{}", exactly.body);
    assert_eq!(balance(&app, wallet), 300_000 - 200_000);
    assert_eq!(balance(&app, biller_account), 200_000);
    app.stop().await;
}

#[tokio::test]
async fn a_payment_left_pending_is_settled_once_by_the_resolver_even_after_a_restart() {
    let app = spawn_app().await;
    let (biller, biller_account) = register(&app, electricity("CAPITAL-POWER")).await;
    let (token, _, wallet) = sign_up(&app, "+8613800000221").await;
    fund(&app, wallet, 300_000).await;
    // Today so far: 1,400.00 paid and 600.00 refused; tier 0 allows 2,000.00 a day.
    for _ in 0..2 {
        let paid = pay_bill(&app, &token, &biller, POWER_LI_LEI, 70_000, None).await;
        assert_eq!(paid.status, 201, "{}", paid.body);
    }
    let refused = pay_bill(&app, &token, &biller, POWER_UNDER_REVIEW, 60_000, None).await;
    assert_eq!(refused.status, 422, "{}", refused.body);

    // The biller's answers are lost: both payments stay pending, their money held.
    let slow_pays = pay_bill(
        &app,
        &token,
        &biller,
        POWER_SLOW_PAYS,
        7_420,
        Some("slow-1"),
    )
    .await;
    assert_eq!(slow_pays.status, 202, "{}", slow_pays.body);
    let slow_pays = slow_pays.json();
    assert_eq!(slow_pays["state"], "pending");
    let slow_refuses = pay_bill(
        &app,
        &token,
        &biller,
        POWER_SLOW_REFUSES,
        3_310,
        Some("slow-2"),
    )
    .await;
    assert_eq!(slow_refuses.status, 202, "{}", slow_refuses.body);
    let slow_refuses = slow_refuses.json();
    assert_eq!(account(&app, wallet).debits_pending, 7_420 + 3_310);
    assert_eq!(account(&app, biller_account).credits_pending, 7_420 + 3_310);
    // A retry answers the same payment, still pending; nothing more is held.
    let retried = pay_bill(
        &app,
        &token,
        &biller,
        POWER_SLOW_REFUSES,
        3_310,
        Some("slow-2"),
    )
    .await;
    assert_eq!(retried.status, 202, "{}", retried.body);
    assert_eq!(retried.json()["id"], slow_refuses["id"]);
    assert_eq!(account(&app, wallet).debits_pending, 7_420 + 3_310);
    // Too young for the resolver: their requests might still be waiting for the biller.
    assert_eq!(
        app.state
            .payments
            .resolve_pending_bills(server::unix_seconds(), 60)
            .await
            .unwrap(),
        0
    );

    // A restart: the payments are still pending in the store, and the resolver of the new
    // process asks the biller and settles each once.
    let directory = app.stop_keeping_data().await;
    let app = spawn_app_in(directory, sequencer::SequencerConfig::default()).await;
    assert_eq!(account(&app, wallet).debits_pending, 7_420 + 3_310);
    let later = server::unix_seconds() + 3_600;
    let settled = app
        .state
        .payments
        .resolve_pending_bills(later, 60)
        .await
        .unwrap();
    assert_eq!(settled, 2);
    assert_eq!(
        app.state
            .payments
            .resolve_pending_bills(later, 60)
            .await
            .unwrap(),
        0,
        "settled once"
    );
    let wallet_now = account(&app, wallet);
    assert_eq!(wallet_now.debits_pending, 0);
    assert_eq!(balance(&app, wallet), 300_000 - 140_000 - 7_420);
    assert_eq!(balance(&app, biller_account), 140_000 + 7_420);
    assert!(leg_exists(&app, &slow_pays, 2) && !leg_exists(&app, &slow_pays, 3));
    assert!(leg_exists(&app, &slow_refuses, 3) && !leg_exists(&app, &slow_refuses, 2));

    let id = slow_pays["id"].as_str().unwrap();
    let settled = user_get(&app, &token, &format!("/v1/bill-payments/{id}")).await;
    let settled = settled.json();
    assert_eq!(settled["state"], "succeeded", "{settled}");
    assert!(settled["confirmation"].as_str().unwrap().starts_with("SB"));
    // The retry of the refused one now answers how it ended.
    let retried = pay_bill(
        &app,
        &token,
        &biller,
        POWER_SLOW_REFUSES,
        3_310,
        Some("slow-2"),
    )
    .await;
    assert_eq!(retried.status, 422, "{}", retried.body);
    assert_eq!(retried.json()["state"], "failed");
    assert_eq!(retried.json()["id"], slow_refuses["id"]);

    // The new process read the day's spending back from the ledger: the holds counted once,
    // the voided ones not at all. 1,400.00 + 74.20 paid leaves 525.80.
    let over = pay_bill(&app, &token, &biller, POWER_LI_LEI, 52_581, None).await;
    assert_eq!(over.json()["code"], "limit_exceeded", "{}", over.body);
    assert!(
        over.json()["detail"].as_str().unwrap().contains("52580"),
        "{}",
        over.body
    );
    let exactly = pay_bill(&app, &token, &biller, POWER_LI_LEI, 52_580, None).await;
    assert_eq!(exactly.status, 201, "{}", exactly.body);
    app.stop().await;
}

#[tokio::test]
async fn a_retried_payment_is_the_same_payment() {
    let app = spawn_app().await;
    let (biller, biller_account) = register(&app, electricity("CAPITAL-POWER")).await;
    let (token, _, wallet) = sign_up(&app, "+8613800000231").await;
    fund(&app, wallet, 50_000).await;
    let first = pay_bill(&app, &token, &biller, POWER_LI_LEI, 12_880, Some("bill-1")).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let again = pay_bill(&app, &token, &biller, POWER_LI_LEI, 12_880, Some("bill-1")).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body, "the same answer");
    assert_eq!(balance(&app, wallet), 50_000 - 12_880, "paid once");
    assert_eq!(balance(&app, biller_account), 12_880);
    let other = pay_bill(&app, &token, &biller, POWER_LI_LEI, 5_000, Some("bill-1")).await;
    assert_eq!(other.status, 409, "{}", other.body);
    assert_eq!(other.json()["code"], "idempotency_conflict");
    let history = user_get(&app, &token, "/v1/me/bill-payments").await.json();
    assert_eq!(history["data"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn phones_are_topped_up_in_the_carriers_fixed_amounts() {
    let app = spawn_app().await;
    let operator = token(&app, store::CredentialRole::Operator);
    let mut without_amounts = phone();
    without_amounts["denominations"] = json!([]);
    let refused = operator_post(&app, &operator, "/v1/billers", without_amounts).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    let mut unordered = phone();
    unordered["denominations"] = json!([5_000, 1_000]);
    let refused = operator_post(&app, &operator, "/v1/billers", unordered).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    let (carrier, carrier_account) = register(&app, phone()).await;
    let (token, _, wallet) = sign_up(&app, "+8613800000241").await;
    fund(&app, wallet, 20_000).await;

    let inquiry = user_post(
        &app,
        &token,
        "/v1/bill-inquiries",
        json!({"biller_id": carrier, "reference": "138-0013-8000"}),
        None,
    )
    .await;
    assert_eq!(inquiry.status, 200, "{}", inquiry.body);
    let inquiry = inquiry.json();
    assert_eq!(inquiry["reference"], "13800138000");
    assert_eq!(
        inquiry["amount_due"],
        Value::Null,
        "a prepaid line owes nothing"
    );
    assert_eq!(
        inquiry["denominations"],
        json!([1_000, 3_000, 5_000, 10_000])
    );
    for (reference, code) in [
        ("23800138000", "invalid_reference"),
        ("1380013800", "invalid_reference"),
        ("13600136000", "account_closed"),
        ("13500135000", "unknown_reference"),
    ] {
        let answer = pay_bill(&app, &token, &carrier, reference, 5_000, None).await;
        assert_eq!(answer.json()["code"], code, "{reference}: {}", answer.body);
    }
    let odd = pay_bill(&app, &token, &carrier, "13800138000", 2_000, None).await;
    assert_eq!(odd.status, 422, "{}", odd.body);
    assert_eq!(odd.json()["code"], "denomination_not_offered");
    assert_eq!(balance(&app, wallet), 20_000);

    let topped = pay_bill(&app, &token, &carrier, "13800138000", 5_000, None).await;
    assert_eq!(topped.status, 201, "{}", topped.body);
    assert_eq!(topped.json()["state"], "succeeded");
    assert_eq!(topped.json()["biller"]["category"], "phone");
    assert_eq!(balance(&app, wallet), 15_000);
    assert_eq!(balance(&app, carrier_account), 5_000);
    app.stop().await;
}

#[tokio::test]
async fn saved_billers_and_the_history_belong_to_their_user() {
    let app = spawn_app().await;
    let (power, _) = register(&app, electricity("CAPITAL-POWER")).await;
    let (carrier, _) = register(&app, phone()).await;
    let (token, _, wallet) = sign_up(&app, "+8613800000251").await;
    let (other, _, _) = sign_up(&app, "+8613800000252").await;
    fund(&app, wallet, 50_000).await;

    let save = |body: Value| {
        let (app, token) = (&app, token.clone());
        async move { user_post(app, &token, "/v1/me/saved-billers", body, None).await }
    };
    let home =
        save(json!({"biller_id": power, "reference": "1002 0304 09", "nickname": "home"})).await;
    assert_eq!(home.status, 201, "{}", home.body);
    let home = home.json();
    assert_eq!(home["reference"], POWER_LI_LEI);
    assert_eq!(home["biller"]["name"], "Capital Power");
    // Saving it again renames it: one entry.
    let renamed =
        save(json!({"biller_id": power, "reference": POWER_LI_LEI, "nickname": "flat"})).await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(renamed.json()["id"], home["id"]);
    assert_eq!(renamed.json()["nickname"], "flat");
    let mobile = save(json!({"biller_id": carrier, "reference": "13800138000"})).await;
    assert_eq!(mobile.status, 201, "{}", mobile.body);
    let typo = save(json!({"biller_id": power, "reference": "1002030408"})).await;
    assert_eq!(typo.json()["code"], "check_digit_mismatch", "{}", typo.body);
    let nowhere = save(json!({"biller_id": "blr_1", "reference": "1002030409"})).await;
    assert_eq!(nowhere.status, 404, "{}", nowhere.body);

    let listed = user_get(&app, &token, "/v1/me/saved-billers").await.json();
    let nicknames: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["nickname"].as_str().unwrap())
        .collect();
    assert_eq!(nicknames, ["flat", ""]);
    let theirs = user_get(&app, &other, "/v1/me/saved-billers").await.json();
    assert_eq!(theirs["data"], json!([]));
    let path = format!("/v1/me/saved-billers/{}", home["id"].as_str().unwrap());
    let not_theirs = request(
        &app,
        "DELETE",
        &path,
        &[("Authorization", &format!("Bearer {other}"))],
        "",
    )
    .await;
    assert_eq!(not_theirs.status, 404);
    let delete = || {
        let (app, path, token) = (&app, path.clone(), token.clone());
        async move {
            request(
                app,
                "DELETE",
                &path,
                &[("Authorization", &format!("Bearer {token}"))],
                "",
            )
            .await
        }
    };
    assert_eq!(delete().await.status, 204);
    assert_eq!(delete().await.status, 404, "deleted already");
    let listed = user_get(&app, &token, "/v1/me/saved-billers").await.json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert_eq!(listed["data"][0]["id"], mobile.json()["id"]);

    // The history: newest first, page by page.
    let power_paid = pay_bill(&app, &token, &power, POWER_LI_LEI, 12_880, None).await;
    let phone_paid = pay_bill(&app, &token, &carrier, "13800138000", 3_000, None).await;
    let refused = pay_bill(&app, &token, &power, POWER_UNDER_REVIEW, 1_000, None).await;
    assert_eq!(refused.status, 422);
    let first = user_get(&app, &token, "/v1/me/bill-payments?limit=2")
        .await
        .json();
    let ids: Vec<&Value> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["id"])
        .collect();
    assert_eq!(ids, [&refused.json()["id"], &phone_paid.json()["id"]]);
    assert_eq!(first["has_more"], true);
    assert_eq!(first["data"][0]["state"], "failed");
    let cursor = first["data"][1]["id"].as_str().unwrap();
    let rest = user_get(
        &app,
        &token,
        &format!("/v1/me/bill-payments?limit=2&starting_after={cursor}"),
    )
    .await
    .json();
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest["data"][0]["id"], power_paid.json()["id"]);
    assert_eq!(rest["data"][0]["biller"]["name"], "Capital Power");
    assert_eq!(rest["has_more"], false);
    let theirs = user_get(&app, &other, "/v1/me/bill-payments").await.json();
    assert_eq!(theirs["data"], json!([]));
    app.stop().await;
}
