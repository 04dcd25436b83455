//! Several `tally serve` nodes on one PostgreSQL database, as behind a load balancer. Three
//! nodes take conflicting payments at once: one hot merchant, every wallet spent from two nodes
//! at the same time, one order paid through two nodes, one order refunded through two nodes, a
//! signed request replayed through another node, a tier's daily limit reached through three
//! nodes. The ledger must show no double spend and no lost update; no client may see a server
//! error (a deadlock, a batch overtaken by another node's); `tally verify` must find the
//! invariants and one consistent trust log.

// Tests drive real processes and time.
#![allow(clippy::disallowed_methods)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ledger::{Event, EventResult, NewTransfer};
use sequencer::{Sequencer, SequencerConfig};
use serde_json::{json, Value};
use store::Store;
use store_postgres::test_server::TestServer;
use store_postgres::PostgresStore;
use support::{http, Serving};

const NODES: usize = 3;
const USERS: usize = 6;
/// What each wallet is funded with, and what each phase costs (minor units).
const FUNDS: u64 = 55_00;
const ORDER_AMOUNT: u64 = 10_00;
/// Orders each of a user's two phones tries to pay: twice what the funds allow between them.
const ATTEMPTS_PER_PHONE: usize = 5;
const CONTESTED_ORDER: u64 = 3_00;
const CONTESTED_REFUND: u64 = 2_00;
const PAYMENT_PASSWORD: &str = "135790";
/// A registered user's (tier 0) daily limit, by default, and an order that fits under it.
const DAILY_MAX: u64 = 200_000;
const BIG_ORDER: u64 = 60_000;

static NONCES: AtomicU64 = AtomicU64::new(0);

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn serve(data: &Path, url: &str, node: usize) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tally"));
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--node",
            &node.to_string(),
        ])
        .arg("--data")
        .arg(data)
        .args(["--database-url", url])
        .env_remove("TALLY_DATABASE_URL")
        .env_remove("TALLY_NODE");
    command
}

/// Starts node `node` and waits until it listens; its address.
fn start_node(data: &Path, url: &str, node: usize, logs: &Path) -> (Serving, String) {
    let log_path = logs.join(format!("node-{node}.log"));
    let child = serve(data, url, node)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut serving = Serving { child, log_path };
    let mut line = String::new();
    BufReader::new(serving.child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("node {node}: {line:?}\n{}", serving.log()))
        .to_owned();
    (serving, address)
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"))
}

/// Fails on any server error: a deadlock, a batch overtaken by another node's, a lost
/// connection must never reach a client.
fn call(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let (status, text) = http(address, method, path, headers, body);
    assert!(
        status < 500,
        "{method} {path} on {address}: {status} {text}"
    );
    (
        status,
        if text.is_empty() {
            Value::Null
        } else {
            json_of(&text)
        },
    )
}

/// A merchant's signed request, with a nonce never used before.
fn signed_headers(merchant: &(u64, [u8; 32]), method: &str, path: &str, body: &str) -> String {
    let nonce = format!(
        "nodes-{}-{}",
        std::process::id(),
        NONCES.fetch_add(1, Ordering::Relaxed)
    );
    services::signatures::authorization(
        merchant.0,
        &merchant.1,
        method,
        path,
        unix_now(),
        &nonce,
        body.as_bytes(),
    )
}

fn signed(
    address: &str,
    merchant: &(u64, [u8; 32]),
    method: &str,
    path: &str,
    body: &str,
) -> (u16, Value) {
    let authorization = signed_headers(merchant, method, path, body);
    call(
        address,
        method,
        path,
        &[
            ("Authorization", &authorization),
            ("Content-Type", "application/json"),
        ],
        body,
    )
}

fn user_call(address: &str, bearer: &str, method: &str, path: &str, body: &Value) -> (u16, Value) {
    call(
        address,
        method,
        path,
        &[
            ("Authorization", bearer),
            ("Content-Type", "application/json"),
        ],
        &body.to_string(),
    )
}

/// The code last texted to `phone` (the development SMS gateway keeps them in the database).
fn last_code(store: &PostgresStore, phone: &str) -> String {
    let messages = store.users().unwrap().sms_outbox(200).unwrap();
    let message = messages
        .iter()
        .find(|message| message.phone == phone)
        .unwrap_or_else(|| panic!("no SMS to {phone}"));
    message
        .text
        .split_whitespace()
        .find(|word| word.len() == 7 && word[..6].bytes().all(|byte| byte.is_ascii_digit()))
        .map(|word| word[..6].to_owned())
        .unwrap_or_else(|| panic!("no code in {:?}", message.text))
}

/// Registers a user through `address`, logs in, sets the payment password: the session's
/// Authorization and the wallet's account id.
fn sign_up(address: &str, store: &PostgresStore, phone: &str) -> (String, u128) {
    let password = "a long node password";
    let otp = |purpose: &str| {
        let (status, body) = call(
            address,
            "POST",
            "/v1/otp",
            &[("Content-Type", "application/json")],
            &json!({"phone": phone, "purpose": purpose}).to_string(),
        );
        assert_eq!(status, 202, "{body}");
    };
    let json_headers = [("Content-Type", "application/json")];
    otp("register");
    let body = json!({"phone": phone, "password": password, "code": last_code(store, phone)});
    let (status, user) = call(
        address,
        "POST",
        "/v1/users",
        &json_headers,
        &body.to_string(),
    );
    assert_eq!(status, 201, "{user}");
    otp("login");
    let body = json!({"phone": phone, "password": password, "code": last_code(store, phone)});
    let (status, session) = call(
        address,
        "POST",
        "/v1/sessions",
        &json_headers,
        &body.to_string(),
    );
    assert_eq!(status, 201, "{session}");
    let bearer = format!("Bearer {}", session["token"].as_str().unwrap());
    otp("payment_password");
    let body = json!({"payment_password": PAYMENT_PASSWORD, "code": last_code(store, phone)});
    let (status, answer) = user_call(address, &bearer, "PUT", "/v1/me/payment-password", &body);
    assert_eq!(status, 204, "{answer}");
    let wallet = store
        .users()
        .unwrap()
        .user_by_phone(phone)
        .unwrap()
        .unwrap()
        .wallet_account_id;
    (bearer, wallet)
}

fn balance(store: &PostgresStore, account: u128) -> u128 {
    let account = store.reader().unwrap().account(account).unwrap().unwrap();
    account.credits_posted - account.debits_posted
}

/// A new order of the merchant's, created through `address`: its id.
fn new_order(address: &str, merchant: &(u64, [u8; 32]), reference: &str, amount: u64) -> String {
    let body = json!({"out_trade_no": reference, "amount": amount, "currency": "CNY",
                      "description": "tea"})
    .to_string();
    let (status, order) = signed(address, merchant, "POST", "/v1/orders", &body);
    assert_eq!(status, 201, "{order}");
    order["id"].as_str().unwrap().to_owned()
}

fn pay(address: &str, bearer: &str, order: &str, amount: u64) -> (u16, Value) {
    user_call(
        address,
        bearer,
        "POST",
        &format!("/v1/orders/{order}/pay"),
        &json!({"amount": amount, "payment_password": PAYMENT_PASSWORD}),
    )
}

#[test]
fn three_nodes_on_one_database_take_conflicting_payments() {
    let server = TestServer::shared().expect("a PostgreSQL server for the tests");
    let url = server.create_database().expect("a database");
    let directory = tempfile::tempdir().unwrap();
    // One operator, one signing key: every node signs the one log's checkpoints.
    let data = directory.path().join("keys");

    let mut nodes = Vec::new();
    for node in 0..NODES {
        nodes.push(start_node(&data, &url, node, directory.path()));
    }
    let addresses: Vec<String> = nodes.iter().map(|(_, address)| address.clone()).collect();

    // A fourth node given a number already in use is refused: its ids would collide.
    let mut duplicate = serve(&data, &url, 1)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while duplicate.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = duplicate.kill();
            panic!("a second node 1 was not refused");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let refused = duplicate.wait_with_output().unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("node 1 already serves this database"),
        "{said}"
    );

    // The operator onboards one merchant, whose orders every node takes.
    let created = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args([
            "admin",
            "credentials",
            "create",
            "--role",
            "operator",
            "--database-url",
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let operator = format!("Bearer {}", String::from_utf8_lossy(&created.stdout).trim());
    let (status, merchant) = user_call(
        &addresses[0],
        &operator,
        "POST",
        "/v1/merchants",
        &json!({"name": "Hot Tea", "mcc": "5814", "country": "CN", "city": "Hangzhou",
                "settlement_account": "6222020200112233", "fee_rate_bps": 60}),
    );
    assert_eq!(status, 201, "{merchant}");
    let merchant = (
        services::ids::parse_prefixed("mk_", merchant["api_key"]["id"].as_str().unwrap()).unwrap(),
        services::payments::signing_key(merchant["api_key"]["secret"].as_str().unwrap()),
    );

    // Users sign up through different nodes; the operator funds their wallets from the reserve
    // through a ledger writer of its own on the same database (a fourth writer).
    let store = PostgresStore::open(&url).unwrap();
    let users: Vec<(String, u128)> = (0..USERS)
        .map(|user| {
            sign_up(
                &addresses[user % NODES],
                &store,
                &format!("+8613800{user:06}"),
            )
        })
        .collect();
    services::ids::set_node(15).unwrap();
    let funding = Sequencer::start(&store, SequencerConfig::default()).unwrap();
    let now_ms = unix_now() * 1000;
    let top_ups = users
        .iter()
        .map(|(_, wallet)| {
            let id = services::ids::transfer_id(services::ids::new_id(now_ms).unwrap(), 1);
            let mut transfer = NewTransfer::new(
                id,
                services::payments::RESERVE_ACCOUNT_ID,
                *wallet,
                u128::from(FUNDS),
                ledger::Currency::parse("CNY").unwrap(),
            );
            transfer.kind = services::accounts::TRANSFER_TOP_UP;
            Event::CreateTransfer(transfer)
        })
        .collect();
    let results = funding.handle().execute(top_ups).unwrap();
    assert!(
        results.iter().all(|result| *result == EventResult::Ok),
        "{results:?}"
    );
    funding.shutdown();

    // Every wallet is spent from two nodes at once (two phones of one user), on orders of the
    // hot merchant created through a third: twice what the wallet holds is tried.
    let threads: Vec<_> = users
        .iter()
        .enumerate()
        .flat_map(|(user, (bearer, _))| (0..2).map(move |phone| (user, phone, bearer.clone())))
        .map(|(user, phone, bearer)| {
            let addresses = addresses.clone();
            std::thread::spawn(move || {
                let here = &addresses[(user + phone) % NODES];
                let mut paid = 0;
                for attempt in 0..ATTEMPTS_PER_PHONE {
                    let reference = format!("U{user}-P{phone}-{attempt}");
                    let order = new_order(
                        &addresses[(user + phone + attempt + 1) % NODES],
                        &merchant,
                        &reference,
                        ORDER_AMOUNT,
                    );
                    let (status, answer) = pay(here, &bearer, &order, ORDER_AMOUNT);
                    match status {
                        200 => paid += 1,
                        _ => assert_eq!(answer["code"], "insufficient_funds", "{answer}"),
                    }
                }
                (user, paid)
            })
        })
        .collect();
    let mut paid = [0; USERS];
    for thread in threads {
        let (user, count) = thread.join().unwrap();
        paid[user] += count;
    }
    for (user, (_, wallet)) in users.iter().enumerate() {
        assert_eq!(
            paid[user],
            usize::try_from(FUNDS / ORDER_AMOUNT).unwrap(),
            "user {user}: as many payments as the funds allow, not one more"
        );
        assert_eq!(balance(&store, *wallet), u128::from(FUNDS % ORDER_AMOUNT));
    }

    // One order paid by its user through two nodes at once: paid once.
    let (bearer, wallet) = &users[0];
    let contested = new_order(&addresses[0], &merchant, "CONTESTED", CONTESTED_ORDER);
    let attempts: Vec<_> = [1, 2]
        .into_iter()
        .map(|node| {
            let (address, bearer, order) =
                (addresses[node].clone(), bearer.clone(), contested.clone());
            std::thread::spawn(move || pay(&address, &bearer, &order, CONTESTED_ORDER))
        })
        .collect();
    let mut outcomes: Vec<(u16, Value)> = attempts.into_iter().map(|t| t.join().unwrap()).collect();
    outcomes.sort_by_key(|(status, _)| *status);
    assert_eq!(outcomes[0].0, 200, "{outcomes:?}");
    assert_eq!(outcomes[1].1["code"], "order_paid", "{outcomes:?}");
    let left = u128::from(FUNDS % ORDER_AMOUNT - CONTESTED_ORDER);
    assert_eq!(balance(&store, *wallet), left);

    // The merchant refunds most of it twice at once, through two nodes, under two refund
    // numbers: only one fits in what was paid.
    let refunds: Vec<_> = [0, 2]
        .into_iter()
        .map(|node| {
            let (address, order) = (addresses[node].clone(), contested.clone());
            std::thread::spawn(move || {
                let body = json!({"out_refund_no": format!("R-{node}"), "amount": CONTESTED_REFUND,
                                  "reason": "cold"})
                .to_string();
                signed(
                    &address,
                    &merchant,
                    "POST",
                    &format!("/v1/orders/{order}/refunds"),
                    &body,
                )
            })
        })
        .collect();
    let mut outcomes: Vec<(u16, Value)> = refunds.into_iter().map(|t| t.join().unwrap()).collect();
    outcomes.sort_by_key(|(status, _)| *status);
    assert_eq!(outcomes[0].0, 201, "{outcomes:?}");
    assert_eq!(outcomes[1].1["code"], "refund_exceeds_paid", "{outcomes:?}");
    assert_eq!(
        balance(&store, *wallet),
        left + u128::from(CONTESTED_REFUND)
    );

    // A signed request replayed through another node is refused there.
    let path = format!("/v1/orders/{contested}");
    let authorization = signed_headers(&merchant, "GET", &path, "");
    let (status, order) = call(
        &addresses[0],
        "GET",
        &path,
        &[("Authorization", &authorization)],
        "",
    );
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["state"], "REFUND");
    let (status, replayed) = call(
        &addresses[2],
        "GET",
        &path,
        &[("Authorization", &authorization)],
        "",
    );
    assert_eq!(status, 401, "{replayed}");
    assert_eq!(replayed["code"], "invalid_signature");

    // The tier's daily limit holds across nodes: a user whose payments go through three nodes
    // in turn is refused the one that would pass it, whichever node takes it.
    let (bearer, wallet) = &users[1];
    let funding = Sequencer::start(&store, SequencerConfig::default()).unwrap();
    let id = services::ids::transfer_id(services::ids::new_id(unix_now() * 1000).unwrap(), 1);
    let mut top_up = NewTransfer::new(
        id,
        services::payments::RESERVE_ACCOUNT_ID,
        *wallet,
        u128::from(3 * DAILY_MAX),
        ledger::Currency::parse("CNY").unwrap(),
    );
    top_up.kind = services::accounts::TRANSFER_TOP_UP;
    let results = funding
        .handle()
        .execute(vec![Event::CreateTransfer(top_up)])
        .unwrap();
    assert_eq!(results, vec![EventResult::Ok]);
    funding.shutdown();
    // Already spent today: the phase above.
    let mut spent_today = FUNDS - FUNDS % ORDER_AMOUNT;
    for payment in 0.. {
        let node = payment % NODES;
        let order = new_order(
            &addresses[node],
            &merchant,
            &format!("BIG-{payment}"),
            BIG_ORDER,
        );
        let (status, answer) = pay(&addresses[(node + 1) % NODES], bearer, &order, BIG_ORDER);
        if spent_today + BIG_ORDER <= DAILY_MAX {
            assert_eq!(status, 200, "payment {payment}: {answer}");
            spent_today += BIG_ORDER;
        } else {
            assert_eq!(
                answer["code"], "limit_exceeded",
                "payment {payment}: {answer}"
            );
            break;
        }
    }

    // How often a node's batch was overtaken by another's and applied again.
    let retried: u64 = addresses
        .iter()
        .map(|address| {
            let (status, metrics) = http(address, "GET", "/metrics", &[], "");
            assert_eq!(status, 200);
            metrics
                .lines()
                .find_map(|line| line.strip_prefix("tally_ledger_batches_retried_total "))
                .and_then(|value| value.trim().parse::<u64>().ok())
                .expect("the retry counter")
        })
        .sum();
    println!("batches applied again after another node's: {retried}");

    // Stop the nodes as an operator would (SIGTERM: each drains its sequencer).
    for (mut serving, _) in nodes {
        let killed = Command::new("kill")
            .args(["-TERM", &serving.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = serving.child.wait().unwrap();
        assert!(status.success(), "exit {status:?}\n{}", serving.log());
    }

    // The ledger balances, and the trust log is one sequence every stored checkpoint agrees
    // with, whichever node signed it.
    let verified = Command::new(env!("CARGO_BIN_EXE_tally"))
        .arg("verify")
        .arg("--data")
        .arg(&data)
        .args(["--database-url", &url])
        .env_remove("TALLY_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "tally verify: {}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
}
