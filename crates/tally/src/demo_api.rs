//! The second part of `tally demo`: the payment platform as its users meet it, through the
//! HTTP API on loopback. A user registers and binds a card, tops up, pays a merchant's order,
//! sends money to a friend and gets a partial refund; the merchant's notification receiver
//! checks every notification's signature and says so. Then QR payments, bills, red envelopes,
//! escrow, and an e-invoice for the meal, verified and reimbursed once.

// Amounts are written as units_cents (500_00 is 500.00 CNY), which clippy reads as odd grouping.
#![allow(clippy::inconsistent_digit_grouping)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use ledger::Currency;
use serde_json::{json, Value};
use server::AppState;
use store::Store;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::bench_api::Connection;

const PAYMENT_PASSWORD: &str = "135790";
/// How long the demo waits for the merchant's notifications.
const NOTIFICATIONS_WAIT: Duration = Duration::from_secs(15);

struct Api {
    connection: Connection,
    currency: Currency,
}

impl Api {
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: Option<Value>,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let body = body.map(|body| body.to_string()).unwrap_or_default();
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(value) = authorization {
            headers.push(("Authorization", value));
        }
        if let Some(key) = idempotency_key {
            headers.push(("Idempotency-Key", key));
        }
        let (status, bytes) = self.connection.send(method, path, &headers, &body).await?;
        let value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
        Ok((status, value))
    }

    async fn expect(
        &mut self,
        status: u16,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: Option<Value>,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<Value> {
        let (got, value) = self
            .call(method, path, authorization, body, idempotency_key)
            .await?;
        ensure!(
            got == status,
            "{method} {path}: expected {status}, got {got}: {value}"
        );
        Ok(value)
    }

    /// A merchant's signed request.
    async fn signed(
        &mut self,
        merchant: &Merchant,
        status: u16,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let text = body.as_ref().map(Value::to_string).unwrap_or_default();
        let nonce = format!(
            "demo-{:016x}",
            u64::from_be_bytes(services::secrets::random_bytes::<8>()?)
        );
        let authorization = services::signatures::authorization(
            merchant.key_id,
            &merchant.signing_key,
            method,
            path,
            server::unix_seconds(),
            &nonce,
            text.as_bytes(),
        );
        self.expect(status, method, path, Some(&authorization), body, None)
            .await
    }

    fn money(&self, minor: &Value) -> String {
        self.currency
            .format_amount(u128::from(minor.as_u64().unwrap_or(0)))
    }
}

struct Merchant {
    key_id: u64,
    signing_key: [u8; 32],
}

/// The last code the development SMS gateway sent to `phone`.
pub(crate) fn last_code(store: &dyn Store, phone: &str) -> anyhow::Result<String> {
    let messages = store.users()?.sms_outbox(50)?;
    let message = messages
        .iter()
        .find(|message| message.phone == phone)
        .context("no SMS was sent")?;
    message
        .text
        .split_whitespace()
        .find(|word| word.len() == 7 && word[..6].bytes().all(|byte| byte.is_ascii_digit()))
        .map(|word| word[..6].to_owned())
        .context("no code in the SMS")
}

/// Registers, logs in and sets the payment password; returns the session's Authorization.
async fn sign_up(
    api: &mut Api,
    store: &dyn Store,
    phone: &str,
) -> anyhow::Result<(String, String)> {
    let password = "a long demo password";
    api.expect(
        202,
        "POST",
        "/v1/otp",
        None,
        Some(json!({"phone": phone, "purpose": "register"})),
        None,
    )
    .await?;
    let user = api
        .expect(
            201,
            "POST",
            "/v1/users",
            None,
            Some(json!({"phone": phone, "password": password, "code": last_code(store, phone)?})),
            None,
        )
        .await?;
    api.expect(
        202,
        "POST",
        "/v1/otp",
        None,
        Some(json!({"phone": phone, "purpose": "login"})),
        None,
    )
    .await?;
    let session = api
        .expect(
            201,
            "POST",
            "/v1/sessions",
            None,
            Some(json!({"phone": phone, "password": password, "code": last_code(store, phone)?})),
            None,
        )
        .await?;
    let bearer = format!("Bearer {}", session["token"].as_str().context("no token")?);
    api.expect(
        202,
        "POST",
        "/v1/otp",
        None,
        Some(json!({"phone": phone, "purpose": "payment_password"})),
        None,
    )
    .await?;
    api.expect(
        204,
        "PUT",
        "/v1/me/payment-password",
        Some(&bearer),
        Some(json!({"payment_password": PAYMENT_PASSWORD, "code": last_code(store, phone)?})),
        None,
    )
    .await?;
    Ok((bearer, user["id"].as_str().context("no id")?.to_owned()))
}

/// The merchant's side: an HTTP endpoint that checks each notification's signature.
async fn receive_notifications(
    listener: tokio::net::TcpListener,
    notify_key: Arc<Mutex<Option<[u8; 32]>>>,
    seen: Arc<Mutex<Vec<String>>>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        let mut length = 0usize;
        let mut signature = String::new();
        if reader.read_line(&mut line).await.is_err() {
            continue;
        }
        loop {
            line.clear();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                break;
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("tally-signature") {
                    value.trim().clone_into(&mut signature);
                }
            }
        }
        let mut body = vec![0u8; length.min(64 * 1024)];
        if reader.read_exact(&mut body).await.is_err() {
            continue;
        }
        let key = *notify_key.lock().expect("key");
        let verified = key.is_some_and(|key| {
            services::signatures::verify_notification(
                &key,
                &signature,
                &body,
                server::unix_seconds(),
            )
        });
        let status = if verified {
            "200 OK"
        } else {
            "401 Unauthorized"
        };
        let _ = reader
            .get_mut()
            .write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await;
        let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let description = format!(
            "{} (sequence {}) — signature {}",
            event["type"].as_str().unwrap_or("?"),
            event["sequence"],
            if verified {
                "verified ✓"
            } else {
                "WRONG ✗"
            }
        );
        println!("     ⇢ the merchant's server received {description}");
        seen.lock().expect("seen").push(description);
    }
}

/// Tells the second part of the story, numbering its steps from `first_step`.
pub fn run(
    store: Arc<dyn Store>,
    ledger: sequencer::SequencerHandle,
    first_step: u32,
) -> anyhow::Result<u32> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(story(store, ledger, first_step))
}

#[allow(clippy::too_many_lines)]
async fn story(
    store: Arc<dyn Store>,
    ledger: sequencer::SequencerHandle,
    first_step: u32,
) -> anyhow::Result<u32> {
    let state = AppState::new(store.clone(), ledger)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(listener, state.clone(), async {
        let _ = stopped.await;
    }));
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let notify_url = format!("http://{}/tally/notify", receiver.local_addr()?);
    let notify_key = Arc::new(Mutex::new(None));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let receiving = tokio::spawn(receive_notifications(
        receiver,
        notify_key.clone(),
        seen.clone(),
    ));
    let metrics = server::workers::WorkerMetrics::new();
    let outbox =
        server::workers::start_notifications(store.clone(), metrics, Duration::from_millis(100))?;
    let mut api = Api {
        connection: Connection::open(address).await?,
        currency: state.payments.config().currency,
    };
    let mut step = first_step;
    let mut next = || {
        step += 1;
        step - 1
    };

    println!("Part two: the payment platform, through its HTTP API on {address}.");
    println!();
    println!(
        "{}. The operator onboards a merchant, Lanzhou Noodles (fee 0.6 %), which gets an API",
        next()
    );
    println!("    key to sign its requests and a secret that signs the notifications it receives.");
    let (_, operator) = server::issue_credential(
        store.admin()?.as_mut(),
        store::CredentialRole::Operator,
        "demo operator",
        server::unix_seconds(),
    )?;
    let onboarded = api
        .expect(
            201,
            "POST",
            "/v1/merchants",
            Some(&format!("Bearer {operator}")),
            Some(
                json!({"name": "Lanzhou Noodles", "mcc": "5814", "country": "CN", "city": "Lanzhou",
                        "settlement_account": "6222 0200 0000 1111", "fee_rate_bps": 60}),
            ),
            None,
        )
        .await?;
    let merchant = Merchant {
        key_id: services::ids::parse_prefixed(
            "mk_",
            onboarded["api_key"]["id"].as_str().context("key")?,
        )
        .context("key id")?,
        signing_key: services::payments::signing_key(
            onboarded["api_key"]["secret"].as_str().context("secret")?,
        ),
    };
    let secret = onboarded["notify_secret"]
        .as_str()
        .context("notify secret")?;
    *notify_key.lock().expect("key") =
        services::secrets::parse_hex32(secret.trim_start_matches("whsec_"));
    println!(
        "     merchant {} (API key mk_{})",
        onboarded["id"].as_str().unwrap_or("?"),
        merchant.key_id
    );
    println!();

    println!(
        "{}. Li Lei registers with his phone, a password and an SMS code, logs in (password",
        next()
    );
    println!(
        "    and a fresh code) and sets a 6-digit payment password. So does his friend Han Meimei."
    );
    let (li_lei, _) = sign_up(&mut api, store.as_ref(), "+8613800138000").await?;
    let (han_meimei, han_id) = sign_up(&mut api, store.as_ref(), "+8613900139000").await?;
    println!("     two wallets opened; only Argon2id digests of their passwords are stored.");
    println!();

    println!(
        "{}. Li Lei binds his bank card: the bank checks his name, ID number and phone and",
        next()
    );
    println!("    texts him a code. Tally keeps the bank's token, the BIN and the last four digits only.");
    let binding = api
        .expect(
            202,
            "POST",
            "/v1/me/cards",
            Some(&li_lei),
            Some(
                json!({"card_number": "6222 0202 0011 2233 446", "holder_name": "Li Lei",
                        "id_number": "110101199003070011", "phone": "+8613800138000"}),
            ),
            None,
        )
        .await?;
    let card = api
        .expect(201, "POST", "/v1/me/cards/confirm", Some(&li_lei),
            Some(json!({"binding_id": binding["binding_id"], "code": last_code(store.as_ref(), "+8613800138000")?})), None)
        .await?;
    let me = api
        .expect(200, "GET", "/v1/me", Some(&li_lei), None, None)
        .await?;
    println!(
        "     card {} ({}, BIN {}, ending {}); Li Lei is now tier {}",
        card["id"].as_str().unwrap_or("?"),
        card["bank"].as_str().unwrap_or("?"),
        card["bin"].as_str().unwrap_or("?"),
        card["last4"].as_str().unwrap_or("?"),
        me["tier"]
    );
    println!();

    println!(
        "{}. He tops up {} from the card.",
        next(),
        api.money(&json!(500_00))
    );
    let top_up = api
        .expect(201, "POST", "/v1/me/top-ups", Some(&li_lei),
            Some(json!({"card_id": card["id"], "amount": 500_00, "payment_password": PAYMENT_PASSWORD})), Some("demo-top-up-1"))
        .await?;
    println!(
        "     {} {} — bank reference {}",
        top_up["id"].as_str().unwrap_or("?"),
        top_up["state"].as_str().unwrap_or("?"),
        top_up["bank_reference"].as_str().unwrap_or("?")
    );
    println!();

    println!(
        "{}. Lanzhou Noodles creates an order for {} (a signed request) and Li Lei pays it",
        next(),
        api.money(&json!(38_00))
    );
    println!("    with his payment password. Paying it twice is refused.");
    let order = api
        .signed(
            &merchant,
            201,
            "POST",
            "/v1/orders",
            Some(
                json!({"out_trade_no": "LZ-20261122-0001", "amount": 38_00, "currency": "CNY",
                        "description": "beef noodles ×2", "notify_url": notify_url}),
            ),
        )
        .await?;
    let order_id = order["id"].as_str().context("order id")?.to_owned();
    let paid = api
        .expect(
            200,
            "POST",
            &format!("/v1/orders/{order_id}/pay"),
            Some(&li_lei),
            Some(json!({"amount": 38_00, "payment_password": PAYMENT_PASSWORD})),
            Some("demo-pay-1"),
        )
        .await?;
    println!(
        "     {order_id}: {} → {}, merchant fee {}",
        order["state"].as_str().unwrap_or("?"),
        paid["state"].as_str().unwrap_or("?"),
        api.money(&paid["fee"])
    );
    let (status, again) = api
        .call(
            "POST",
            &format!("/v1/orders/{order_id}/pay"),
            Some(&li_lei),
            Some(json!({"amount": 38_00, "payment_password": PAYMENT_PASSWORD})),
            None,
        )
        .await?;
    println!(
        "     paying again: {status} {}",
        again["code"].as_str().unwrap_or("?")
    );
    println!();

    println!(
        "{}. Li Lei sends Han Meimei {} for her share.",
        next(),
        api.money(&json!(19_00))
    );
    let sent = api
        .expect(201, "POST", "/v1/transfers", Some(&li_lei),
            Some(json!({"to": han_id, "amount": 19_00, "payment_password": PAYMENT_PASSWORD, "note": "noodles"})), Some("demo-p2p-1"))
        .await?;
    println!("     {} sent", sent["id"].as_str().unwrap_or("?"));
    println!();

    println!(
        "{}. One bowl came cold: Lanzhou Noodles refunds {} of the order; the fee is",
        next(),
        api.money(&json!(8_00))
    );
    println!("    given back in proportion.");
    let refund = api
        .signed(
            &merchant,
            201,
            "POST",
            &format!("/v1/orders/{order_id}/refunds"),
            Some(json!({"out_refund_no": "LZ-R-0001", "amount": 8_00, "reason": "cold soup"})),
        )
        .await?;
    println!(
        "     {} {}: {} back, {} of it from the fee",
        refund["id"].as_str().unwrap_or("?"),
        refund["state"].as_str().unwrap_or("?"),
        api.money(&refund["amount"]),
        api.money(&refund["fee_refunded"])
    );
    println!();

    println!(
        "{}. The merchant's server receives each notification, signed, and checks it:",
        next()
    );
    let deadline = Instant::now() + NOTIFICATIONS_WAIT;
    while seen.lock().expect("seen").len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let received = seen.lock().expect("seen").clone();
    ensure!(
        received.len() >= 2 && received.iter().all(|line| line.contains("verified")),
        "the merchant did not receive both notifications, signed: {received:?}"
    );
    println!();

    qr_payments(
        &mut api,
        &merchant,
        &li_lei,
        &han_meimei,
        &operator,
        &notify_url,
        &mut next,
    )
    .await?;

    bill_payments(&mut api, &li_lei, &operator, &mut next).await?;

    invoices(&mut api, &merchant, &operator, &order_id, &mut next).await?;

    envelopes_and_escrow(
        &mut api,
        &state,
        store.as_ref(),
        &merchant,
        &li_lei,
        &han_id,
        &operator,
        &mut next,
    )
    .await?;

    println!("{}. Where the money is now:", next());
    let li = api
        .expect(200, "GET", "/v1/me", Some(&li_lei), None, None)
        .await?;
    let han = api
        .expect(200, "GET", "/v1/me", Some(&han_meimei), None, None)
        .await?;
    let noodles = api
        .signed(&merchant, 200, "GET", "/v1/merchant", None)
        .await?;
    println!(
        "     Li Lei {} CNY, Han Meimei {} CNY, Lanzhou Noodles {}",
        li["wallet"]["available"].as_str().unwrap_or("?"),
        han["wallet"]["available"].as_str().unwrap_or("?"),
        api.money(&noodles["balance"])
    );
    let today = &services::time::rfc3339_seconds(server::unix_seconds())[..10];
    let (status, _) = api
        .call("GET", "/v1/openapi.json", None, None, None)
        .await?;
    ensure!(status == 200, "no OpenAPI document");
    let nonce = format!(
        "demo-bill-{:08x}",
        u32::from_be_bytes(services::secrets::random_bytes::<4>()?)
    );
    let path = format!("/v1/bills/{today}");
    let authorization = services::signatures::authorization(
        merchant.key_id,
        &merchant.signing_key,
        "GET",
        &path,
        server::unix_seconds(),
        &nonce,
        b"",
    );
    let (status, bill) = api
        .connection
        .send("GET", &path, &[("Authorization", &authorization)], "")
        .await?;
    ensure!(status == 200, "no daily bill: {status}");
    println!("     the merchant's bill for {today}:");
    for line in String::from_utf8_lossy(bill).lines() {
        println!("       {line}");
    }
    println!();

    drop(outbox);
    let _ = stop.send(());
    server.await??;
    receiving.abort();
    Ok(step)
}

/// QR payments, both directions: a store's static code scanned and paid, an order's dynamic
/// code, a payment code charged at a POS, and a forged code caught.
#[allow(clippy::too_many_lines)]
async fn qr_payments(
    api: &mut Api,
    merchant: &Merchant,
    li_lei: &str,
    han_meimei: &str,
    operator: &str,
    notify_url: &str,
    next: &mut impl FnMut() -> u32,
) -> anyhow::Result<()> {
    println!(
        "{}. Lanzhou Noodles prints a static QR code for its Zhongshan Road store. The code is",
        next()
    );
    println!("    EMVCo, readable by any wallet, and its SHA-256 is registered in the trust log.");
    let store = api
        .signed(
            merchant,
            201,
            "POST",
            "/v1/outlets",
            Some(json!({"kind": "store", "name": "Zhongshan Road"})),
        )
        .await?;
    let code = api
        .signed(
            merchant,
            201,
            "POST",
            "/v1/qr-codes",
            Some(json!({"kind": "static", "outlet_id": store["id"]})),
        )
        .await?;
    let payload = code["payload"].as_str().context("payload")?.to_owned();
    let bitmap = crate::qr_render::qr_bitmap(&payload)?;
    print!("{}", crate::qr_render::terminal(&bitmap));
    println!("     {payload}");
    println!(
        "     {} registered as {}",
        code["id"].as_str().unwrap_or("?"),
        code["registration_id"].as_str().unwrap_or("?")
    );
    println!();

    println!(
        "{}. Han Meimei scans it: the platform recognises a code it issued, with the",
        next()
    );
    println!(
        "    registration's receipt; she types {} and pays with her payment password.",
        api.money(&json!(12_00))
    );
    let scanned = api
        .expect(
            200,
            "POST",
            "/v1/qr/scan",
            Some(han_meimei),
            Some(json!({"payload": payload})),
            None,
        )
        .await?;
    ensure!(
        scanned["status"] == "active",
        "the store's code scans as {scanned}"
    );
    println!(
        "     scan: {} — {} in {}, amount: {}, receipt leaf {} of a tree of {}",
        scanned["status"].as_str().unwrap_or("?"),
        scanned["merchant"]["name"].as_str().unwrap_or("?"),
        scanned["merchant"]["city"].as_str().unwrap_or("?"),
        if scanned["amount"].is_null() {
            "to be entered".to_owned()
        } else {
            api.money(&scanned["amount"])
        },
        scanned["code"]["receipt"]["leaf_index"],
        scanned["code"]["receipt"]["tree_size"],
    );
    let paid = api
        .expect(
            200,
            "POST",
            "/v1/qr/pay",
            Some(han_meimei),
            Some(
                json!({"payload": payload, "amount": 12_00, "payment_password": PAYMENT_PASSWORD}),
            ),
            Some("demo-qr-static-1"),
        )
        .await?;
    println!(
        "     {} {}: {}",
        paid["id"].as_str().unwrap_or("?"),
        paid["state"].as_str().unwrap_or("?"),
        api.money(&paid["amount"])
    );
    println!();

    println!(
        "{}. For a takeaway order of {} the till shows a dynamic code: the amount is in",
        next(),
        api.money(&json!(26_00))
    );
    println!("    the code, it pays that order only, once.");
    let order = api
        .signed(
            merchant,
            201,
            "POST",
            "/v1/orders",
            Some(
                json!({"out_trade_no": "LZ-20261122-0002", "amount": 26_00, "currency": "CNY",
                        "description": "takeaway", "notify_url": notify_url}),
            ),
        )
        .await?;
    let dynamic = api
        .signed(
            merchant,
            201,
            "POST",
            "/v1/qr-codes",
            Some(json!({"kind": "dynamic", "order_id": order["id"]})),
        )
        .await?;
    let dynamic_payload = dynamic["payload"].as_str().context("payload")?.to_owned();
    let paid = api
        .expect(
            200,
            "POST",
            "/v1/qr/pay",
            Some(li_lei),
            Some(json!({"payload": dynamic_payload, "payment_password": PAYMENT_PASSWORD})),
            Some("demo-qr-dynamic-1"),
        )
        .await?;
    let (status, again) = api
        .call(
            "POST",
            "/v1/qr/pay",
            Some(li_lei),
            Some(json!({"payload": dynamic_payload, "payment_password": PAYMENT_PASSWORD})),
            None,
        )
        .await?;
    println!(
        "     {} {} by Li Lei; scanning it again: {status} {}",
        paid["id"].as_str().unwrap_or("?"),
        paid["state"].as_str().unwrap_or("?"),
        again["code"].as_str().unwrap_or("?")
    );
    println!();

    println!(
        "{}. At the counter Li Lei shows a payment code instead. His phone was enrolled once;",
        next()
    );
    println!("    it makes a new 18-digit code every minute without the network. The POS scans it");
    println!("    and charges it; a small amount needs no password, and the code works once.");
    let device = api
        .expect(
            201,
            "POST",
            "/v1/me/devices",
            Some(li_lei),
            Some(json!({"name": "Li Lei's phone", "payment_password": PAYMENT_PASSWORD})),
            None,
        )
        .await?;
    let secret = services::secrets::parse_hex32(device["secret"].as_str().context("secret")?)
        .context("secret")?;
    let number: u32 = device["number"].as_str().context("number")?.parse()?;
    let prefix = qr::PaymentCodePrefix::new(device["code"]["prefix"].as_str().context("prefix")?)?;
    let shown = services::payment_codes::derive(&secret, prefix, number, server::unix_seconds(), 0)
        .to_string();
    let barcode = crate::qr_render::code128_bitmap(&shown)?;
    print!("{}", crate::qr_render::terminal(&barcode));
    println!("     {shown}");
    let charge = |out_trade_no: &str| {
        json!({"auth_code": shown, "out_trade_no": out_trade_no, "amount": 9_00,
               "currency": "CNY", "description": "tea eggs", "notify_url": notify_url})
    };
    let charged = api
        .signed(
            merchant,
            201,
            "POST",
            "/v1/pos/charges",
            Some(charge("LZ-POS-0001")),
        )
        .await?;
    let replay = api
        .signed(
            merchant,
            422,
            "POST",
            "/v1/pos/charges",
            Some(charge("LZ-POS-0002")),
        )
        .await?;
    println!(
        "     {} {}: {}; the same code at another till: {}",
        charged["id"].as_str().unwrap_or("?"),
        charged["state"].as_str().unwrap_or("?"),
        api.money(&charged["amount"]),
        replay["code"].as_str().unwrap_or("?")
    );
    println!();

    println!(
        "{}. Someone sticks a forged code over the store's: the same template and code id,",
        next()
    );
    println!("    another name, a valid checksum. The wallet is told the network never issued it;");
    println!("    Li Lei reports it, and the operator sees the report.");
    let mut model = qr::mpm::decode(&payload)
        .map_err(|error| anyhow::anyhow!("{error}"))?
        .payload;
    model.merchant_name = Some("Lanzhou Noodles Pay".into());
    let forged = qr::mpm::encode(&model).map_err(|error| anyhow::anyhow!("{error}"))?;
    let scanned = api
        .expect(
            200,
            "POST",
            "/v1/qr/scan",
            Some(li_lei),
            Some(json!({"payload": forged})),
            None,
        )
        .await?;
    ensure!(
        scanned["status"] == "unknown",
        "the forged code scans as {scanned}"
    );
    println!(
        "     scan: {} — {}",
        scanned["status"].as_str().unwrap_or("?"),
        scanned["message"].as_str().unwrap_or("?")
    );
    api.expect(
        201,
        "POST",
        "/v1/qr/reports",
        Some(li_lei),
        Some(json!({"payload": forged, "reason": "sticker over the store's code"})),
        None,
    )
    .await?;
    let reports = api
        .expect(
            200,
            "GET",
            "/v1/qr-reports",
            Some(&format!("Bearer {operator}")),
            None,
            None,
        )
        .await?;
    println!(
        "     the operator's report list: {} report(s), the newest \"{}\"",
        reports["data"].as_array().map_or(0, Vec::len),
        reports["data"][0]["reason"].as_str().unwrap_or("?")
    );
    println!();
    Ok(())
}

/// A group red envelope grabbed by five friends and its expiry (the clock advanced), and two
/// escrowed purchases: one shipped and confirmed, one disputed and settled by the operator.
#[allow(clippy::too_many_lines, clippy::too_many_arguments)]
async fn envelopes_and_escrow(
    api: &mut Api,
    state: &AppState,
    store: &dyn Store,
    merchant: &Merchant,
    li_lei: &str,
    han_id: &str,
    operator: &str,
    next: &mut impl FnMut() -> u32,
) -> anyhow::Result<()> {
    println!(
        "{}. Li Lei makes a group with Han Meimei and five more friends and sends it a lucky",
        next()
    );
    println!(
        "    red envelope of {} in six packets. The packets are drawn when it is sent and their",
        api.money(&json!(66_00))
    );
    println!("    digest goes into the trust log before anyone can grab.");
    let mut friends = Vec::new();
    for index in 0..5 {
        friends.push(sign_up(api, store, &format!("+86137001370{index:02}")).await?);
    }
    let mut members = vec![json!(han_id)];
    members.extend(friends.iter().map(|(_, id)| json!(id)));
    let group = api
        .expect(
            201,
            "POST",
            "/v1/groups",
            Some(li_lei),
            Some(json!({"name": "Noodle friends", "members": members})),
            None,
        )
        .await?;
    let envelope = api
        .expect(
            201,
            "POST",
            "/v1/red-envelopes",
            Some(li_lei),
            Some(
                json!({"group_id": group["id"], "kind": "lucky", "amount": 66_00, "count": 6,
                        "greeting": "恭喜发财", "payment_password": PAYMENT_PASSWORD}),
            ),
            Some("demo-envelope-1"),
        )
        .await?;
    let envelope_id = envelope["id"].as_str().context("envelope id")?.to_owned();
    println!(
        "     {envelope_id}: {} in {} packets, registered as {}",
        api.money(&envelope["total"]),
        envelope["count"],
        envelope["registration_id"].as_str().unwrap_or("?")
    );
    let grab_path = format!("/v1/red-envelopes/{envelope_id}/grab");
    let mut grabbed = Vec::new();
    for (token, _) in &friends {
        let grab = api
            .expect(200, "POST", &grab_path, Some(token), None, None)
            .await?;
        grabbed.push(api.money(&grab["amount"]));
    }
    let (status, twice) = api
        .call("POST", &grab_path, Some(&friends[0].0), None, None)
        .await?;
    println!(
        "     five friends grab {}; grabbing twice: {status} {}",
        grabbed.join(", "),
        twice["code"].as_str().unwrap_or("?")
    );
    println!(
        "{}. Han Meimei is on a plane: a day later the sixth packet is still there. With",
        next()
    );
    println!("    the clock advanced past the expiry, what is left goes back to Li Lei, once.");
    let lifetime = state.payments.config().envelopes.lifetime_s;
    let later = server::unix_seconds() + lifetime + 1;
    let closed = state.payments.expire_envelopes(later, 100).await?;
    let again = state.payments.expire_envelopes(later + 60, 100).await?;
    let shown = api
        .expect(
            200,
            "GET",
            &format!("/v1/red-envelopes/{envelope_id}"),
            Some(li_lei),
            None,
            None,
        )
        .await?;
    let luckiest = shown["grabs"]
        .as_array()
        .and_then(|grabs| grabs.iter().find(|grab| grab["luckiest"] == true))
        .map_or_else(|| "?".to_owned(), |grab| api.money(&grab["amount"]));
    println!(
        "     {closed} envelope closed ({again} on the next run): {} back to Li Lei; the luckiest got {luckiest};",
        api.money(&shown["returned"])
    );
    println!(
        "     the packets {} hash to the digest in the trust log",
        shown["packets"]
    );
    println!();

    println!(
        "{}. Li Lei buys a gift box of tea for {} with escrow (\"guaranteed trade\"): the",
        next(),
        api.money(&json!(88_00))
    );
    println!("    money waits in escrow until he confirms it arrived.");
    let (order_id, shipped) = escrowed_and_shipped(
        api,
        merchant,
        li_lei,
        ("LZ-ESC-0001", "gift box of tea", 88_00),
        "SF1122334455",
    )
    .await?;
    let released = api
        .expect(
            200,
            "POST",
            &format!("/v1/escrows/{order_id}/confirm"),
            Some(li_lei),
            Some(json!({"payment_password": PAYMENT_PASSWORD})),
            None,
        )
        .await?;
    println!(
        "     {order_id}: held → {} ({} {}) → {}: {} to Lanzhou Noodles, less its fee",
        shipped["state"].as_str().unwrap_or("?"),
        shipped["carrier"].as_str().unwrap_or("?"),
        shipped["tracking_no"].as_str().unwrap_or("?"),
        released["state"].as_str().unwrap_or("?"),
        api.money(&released["released"])
    );
    println!(
        "{}. A second box arrives broken. Li Lei opens a dispute before confirming; the",
        next()
    );
    println!("    operator looks at the photos and refunds him in full, with a note.");
    let (order_id, _) = escrowed_and_shipped(
        api,
        merchant,
        li_lei,
        ("LZ-ESC-0002", "tea cups", 20_00),
        "SF5566778899",
    )
    .await?;
    let disputed = api
        .expect(
            200,
            "POST",
            &format!("/v1/escrows/{order_id}/dispute"),
            Some(li_lei),
            Some(json!({"reason": "two cups arrived broken", "evidence": "photos 1-3"})),
            None,
        )
        .await?;
    let settled = api
        .expect(
            200,
            "POST",
            &format!("/v1/escrows/{order_id}/resolution"),
            Some(&format!("Bearer {operator}")),
            Some(json!({"outcome": "refund", "note": "the photos show the damage"})),
            None,
        )
        .await?;
    println!(
        "     {order_id}: {} → {} by {}: {} back to Li Lei",
        disputed["state"].as_str().unwrap_or("?"),
        settled["state"].as_str().unwrap_or("?"),
        settled["settled_by"].as_str().unwrap_or("?"),
        api.money(&settled["refunded"])
    );
    println!();
    Ok(())
}

/// Bill payments: an electricity bill inquired and paid (a mistyped customer number caught by
/// its check digit first), the biller saved, and a phone topped up in one of the carrier's
/// fixed amounts.
#[allow(clippy::too_many_lines)]
/// An escrowed order of `merchant`'s (reference, description, amount), paid by `payer` and
/// shipped: its id and the shipment's answer.
async fn escrowed_and_shipped(
    api: &mut Api,
    merchant: &Merchant,
    payer: &str,
    (reference, description, amount): (&str, &str, u64),
    tracking_no: &str,
) -> anyhow::Result<(String, Value)> {
    let order = api
        .signed(
            merchant,
            201,
            "POST",
            "/v1/orders",
            Some(
                json!({"out_trade_no": reference, "amount": amount, "currency": "CNY",
                        "description": description, "escrow": true}),
            ),
        )
        .await?;
    let order_id = order["id"].as_str().context("order id")?.to_owned();
    api.expect(
        200,
        "POST",
        &format!("/v1/orders/{order_id}/pay"),
        Some(payer),
        Some(json!({"amount": amount, "payment_password": PAYMENT_PASSWORD})),
        Some(&format!("demo-pay-{reference}")),
    )
    .await?;
    let shipped = api
        .signed(
            merchant,
            200,
            "POST",
            &format!("/v1/orders/{order_id}/shipment"),
            Some(json!({"carrier": "SF Express", "tracking_no": tracking_no})),
        )
        .await?;
    Ok((order_id, shipped))
}

async fn bill_payments(
    api: &mut Api,
    li_lei: &str,
    operator: &str,
    next: &mut impl FnMut() -> u32,
) -> anyhow::Result<()> {
    println!(
        "{}. The operator registers two billers: Capital Power (electricity: customer numbers",
        next()
    );
    println!("    of 10 digits, the last a Luhn check digit) and Skyline Mobile (phone top-ups of");
    println!("    fixed amounts). Each gets an account in the ledger.");
    let operator = format!("Bearer {operator}");
    let power = api
        .expect(
            201,
            "POST",
            "/v1/billers",
            Some(&operator),
            Some(
                json!({"code": "CAPITAL-POWER", "name": "Capital Power", "category": "electricity",
                        "reference_label": "Customer number", "reference_length_min": 10,
                        "reference_length_max": 10, "check_digit": "luhn"}),
            ),
            Some("demo-biller-power"),
        )
        .await?;
    let mobile = api
        .expect(
            201,
            "POST",
            "/v1/billers",
            Some(&operator),
            Some(
                json!({"code": "SKYLINE-MOBILE", "name": "Skyline Mobile", "category": "phone",
                        "reference_label": "Phone number", "reference_length_min": 11,
                        "reference_length_max": 11, "reference_prefix": "1",
                        "denominations": [10_00, 30_00, 50_00, 100_00]}),
            ),
            Some("demo-biller-mobile"),
        )
        .await?;
    let amounts: Vec<String> = mobile["denominations"]
        .as_array()
        .map(|amounts| amounts.iter().map(|amount| api.money(amount)).collect())
        .unwrap_or_default();
    println!(
        "     {} {} and {} {} ({})",
        power["id"].as_str().unwrap_or("?"),
        power["name"].as_str().unwrap_or("?"),
        mobile["id"].as_str().unwrap_or("?"),
        mobile["name"].as_str().unwrap_or("?"),
        amounts.join(", ")
    );
    println!();

    println!(
        "{}. Li Lei types his customer number with a slip of the finger: the check digit catches",
        next()
    );
    println!(
        "    it before the biller is asked. With the right number the biller answers the name on"
    );
    println!(
        "    the account (masked), what is due and by when; he pays it with his payment password"
    );
    println!("    and saves the biller as \"home\".");
    let (status, typo) = api
        .call(
            "POST",
            "/v1/bill-inquiries",
            Some(li_lei),
            Some(json!({"biller_id": power["id"], "reference": "1002 0304 06"})),
            None,
        )
        .await?;
    ensure!(
        status == 422,
        "a mistyped customer number was accepted: {typo}"
    );
    println!(
        "     1002 0304 06: {status} {}",
        typo["code"].as_str().unwrap_or("?")
    );
    let inquiry = api
        .expect(
            200,
            "POST",
            "/v1/bill-inquiries",
            Some(li_lei),
            Some(json!({"biller_id": power["id"], "reference": "1002 0304 09"})),
            None,
        )
        .await?;
    println!(
        "     1002 0304 09: {}, {} due by {}",
        inquiry["customer_name"].as_str().unwrap_or("?"),
        api.money(&inquiry["amount_due"]),
        inquiry["due_date"].as_str().unwrap_or("?")
    );
    let paid = api
        .expect(
            201,
            "POST",
            "/v1/bill-payments",
            Some(li_lei),
            Some(
                json!({"biller_id": power["id"], "reference": inquiry["reference"],
                        "amount": inquiry["amount_due"], "payment_password": PAYMENT_PASSWORD}),
            ),
            Some("demo-bill-power-1"),
        )
        .await?;
    api.expect(
        201,
        "POST",
        "/v1/me/saved-billers",
        Some(li_lei),
        Some(json!({"biller_id": power["id"], "reference": inquiry["reference"], "nickname": "home"})),
        None,
    )
    .await?;
    println!(
        "     {} {}: {} to {}, confirmation {}",
        paid["id"].as_str().unwrap_or("?"),
        paid["state"].as_str().unwrap_or("?"),
        api.money(&paid["amount"]),
        paid["biller"]["name"].as_str().unwrap_or("?"),
        paid["confirmation"].as_str().unwrap_or("?")
    );
    println!();

    println!(
        "{}. He tops up his phone with {}, one of the carrier's amounts ({} is not).",
        next(),
        api.money(&json!(50_00)),
        api.money(&json!(20_00))
    );
    let (status, odd) = api
        .call(
            "POST",
            "/v1/bill-payments",
            Some(li_lei),
            Some(
                json!({"biller_id": mobile["id"], "reference": "13800138000", "amount": 20_00,
                        "payment_password": PAYMENT_PASSWORD}),
            ),
            None,
        )
        .await?;
    ensure!(
        status == 422,
        "an amount the carrier does not offer was paid: {odd}"
    );
    let topped = api
        .expect(
            201,
            "POST",
            "/v1/bill-payments",
            Some(li_lei),
            Some(
                json!({"biller_id": mobile["id"], "reference": "13800138000", "amount": 50_00,
                        "payment_password": PAYMENT_PASSWORD}),
            ),
            Some("demo-top-up-phone-1"),
        )
        .await?;
    println!(
        "     {}: {status} {}; {} {}: confirmation {}",
        api.money(&json!(20_00)),
        odd["code"].as_str().unwrap_or("?"),
        topped["id"].as_str().unwrap_or("?"),
        topped["state"].as_str().unwrap_or("?"),
        topped["confirmation"].as_str().unwrap_or("?")
    );
    let history = api
        .expect(200, "GET", "/v1/me/bill-payments", Some(li_lei), None, None)
        .await?;
    println!(
        "     his bill payments: {}",
        history["data"]
            .as_array()
            .map(|payments| payments
                .iter()
                .map(|payment| format!(
                    "{} {}",
                    payment["biller"]["name"].as_str().unwrap_or("?"),
                    api.money(&payment["amount"])
                ))
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default()
    );
    println!();
    Ok(())
}

/// E-invoices: Lanzhou Noodles invoices the paid order (what it kept after the refund), the
/// invoice is registered in the trust log, verified by the buyer's employer, reimbursed once,
/// and a second claim on it is refused.
async fn invoices(
    api: &mut Api,
    merchant: &Merchant,
    operator: &str,
    order_id: &str,
    next: &mut impl FnMut() -> u32,
) -> anyhow::Result<()> {
    const SELLER: &str = "91620102MA7LZN0D1X";
    println!(
        "{}. Li Lei wants to claim the noodles as a business meal: Lanzhou Noodles issues an",
        next()
    );
    println!(
        "    e-invoice to his employer for what the order kept after the refund, {} (2 bowls,",
        api.money(&json!(30_00))
    );
    println!("    6 % VAT included). The SHA-256 of its canonical document is registered in the trust log.");
    let invoice = api
        .signed(
            merchant,
            201,
            "POST",
            "/v1/invoices",
            Some(json!({
                "order_id": order_id,
                "seller_tax_id": SELLER,
                "buyer": {"name": "Silk Road Trading Co.", "tax_id": "91620100MA72SRT88Q"},
                "items": [{"description": "beef noodles", "quantity": 2, "unit_price": 15_00,
                           "tax_rate_bps": 600}],
            })),
        )
        .await?;
    let invoice_id = invoice["id"].as_str().context("invoice id")?.to_owned();
    let number = invoice["number"].as_str().context("number")?.to_owned();
    let document = invoice["document"].as_str().context("document")?.to_owned();
    let digest = invoice["digest"].as_str().context("digest")?.to_owned();
    println!(
        "     invoice {number} ({invoice_id}): {} + tax {} = {}, registered as {}",
        api.money(&invoice["amount"]),
        api.money(&invoice["tax"]),
        api.money(&invoice["total"]),
        invoice["registration_id"].as_str().unwrap_or("?")
    );
    println!("     digest {digest}");
    println!();

    println!(
        "{}. His employer's finance office checks the invoice it was handed: number, seller tax",
        next()
    );
    println!(
        "    id and document. Anyone may ask; a copy with the amount changed is not registered."
    );
    let verified = api
        .expect(
            200,
            "POST",
            "/v1/invoices/verify",
            None,
            Some(json!({"number": number, "seller_tax_id": SELLER, "document": document})),
            None,
        )
        .await?;
    ensure!(
        verified["registered"] == true,
        "the invoice does not verify: {verified}"
    );
    let altered = document.replace("\"total\":3000", "\"total\":30000");
    ensure!(altered != document, "no total to alter in {document}");
    let forged = api
        .expect(
            200,
            "POST",
            "/v1/invoices/verify",
            None,
            Some(json!({"number": number, "seller_tax_id": SELLER, "document": altered})),
            None,
        )
        .await?;
    println!(
        "     verify: registered, {} — leaf {} of a tree of {}; the altered copy: registered {}",
        verified["status"].as_str().unwrap_or("?"),
        verified["receipt"]["leaf_index"],
        verified["receipt"]["tree_size"],
        forged["registered"]
    );
    println!();

    println!(
        "{}. The employer reimburses Li Lei (the operator records the claim). A second claim",
        next()
    );
    println!("    on the same invoice — the old problem of duplicate invoices — is refused, and a");
    println!("    reimbursed invoice can no longer be voided.");
    let bearer = format!("Bearer {operator}");
    let reimbursed = api
        .expect(
            201,
            "POST",
            &format!("/v1/invoices/{invoice_id}/reimbursements"),
            Some(&bearer),
            Some(
                json!({"organisation": "Silk Road Trading Co.", "claim_reference": "EXP-2026-117",
                        "digest": digest}),
            ),
            Some("demo-reimbursement-1"),
        )
        .await?;
    println!(
        "     {} {}: invoice {number} {}",
        reimbursed["id"].as_str().unwrap_or("?"),
        reimbursed["created_at"].as_str().unwrap_or("?"),
        reimbursed["invoice_state"].as_str().unwrap_or("?")
    );
    let (status, again) = api
        .call(
            "POST",
            &format!("/v1/invoices/{invoice_id}/reimbursements"),
            Some(&bearer),
            Some(
                json!({"organisation": "Another Employer Ltd", "claim_reference": "X-9",
                        "digest": digest}),
            ),
            None,
        )
        .await?;
    ensure!(status == 409, "a second claim answered {status}: {again}");
    println!(
        "     second claim: {status} {} — {}",
        again["code"].as_str().unwrap_or("?"),
        again["detail"].as_str().unwrap_or("?")
    );
    let voided = api
        .signed(
            merchant,
            409,
            "POST",
            &format!("/v1/invoices/{invoice_id}/void"),
            None,
        )
        .await?;
    println!(
        "     voiding it now: 409 {}",
        voided["code"].as_str().unwrap_or("?")
    );
    println!();
    Ok(())
}
