//! The HTTP API through real sockets: each test gets its own data directory and port.

// Tests drive real sockets and time.
#![allow(clippy::disallowed_methods)]

mod bills;
mod envelopes;
mod escrow;
mod invoices;
mod payments;
mod qr;

use std::net::SocketAddr;
use std::sync::Arc;

use ledger::{AccountFlags, Currency, Event, NewAccount, NewTransfer};
use sequencer::{Sequencer, SequencerConfig};
use server::AppState;
use store::Store;
use store_sqlite::SqliteStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An account of the tests' ledger, of any balance.
fn account(id: u128, currency: Currency) -> Event {
    Event::CreateAccount(NewAccount {
        id,
        currency,
        kind: 1,
        flags: AccountFlags::empty(),
        user_data: 0,
    })
}

struct TestApp {
    address: SocketAddr,
    state: Arc<AppState>,
    store: Arc<dyn Store>,
    sequencer: Option<Sequencer>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _directory: tempfile::TempDir,
}

async fn spawn_app() -> TestApp {
    spawn_app_with(SequencerConfig::default()).await
}

/// A server on its own data directory and a free port, with the given sequencer settings.
async fn spawn_app_with(config: SequencerConfig) -> TestApp {
    spawn_app_in(tempfile::tempdir().unwrap(), config).await
}

/// A server on `directory` (a new one, or one a stopped server left, to restart it).
async fn spawn_app_in(directory: tempfile::TempDir, config: SequencerConfig) -> TestApp {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(directory.path()).unwrap());
    let sequencer = Sequencer::start(store.as_ref(), config).unwrap();
    let state = AppState::new(store.clone(), sequencer.handle()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(listener, state.clone(), async {
        let _ = stopped.await;
    }));
    TestApp {
        address,
        state,
        store,
        sequencer: Some(sequencer),
        stop: Some(stop),
        server: Some(server),
        _directory: directory,
    }
}

struct Answer {
    status: u16,
    content_type: String,
    body: String,
    bytes: Vec<u8>,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
}

/// A minimal HTTP/1.1 client: one request per connection.
async fn request(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: tally\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a complete response");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let bytes = raw[split + 4..].to_vec();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|line| line.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_owned();
    Answer {
        status,
        content_type,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        bytes,
    }
}

async fn get(app: &TestApp, path: &str) -> Answer {
    request(app, "GET", path, &[], "").await
}

impl TestApp {
    async fn stop(self) {
        self.stop_keeping_data().await;
    }

    /// Stops the server, drains its ledger and closes its store; the data directory is
    /// returned, for a server started on it again.
    async fn stop_keeping_data(mut self) -> tempfile::TempDir {
        let _ = self.stop.take().unwrap().send(());
        self.server.take().unwrap().await.unwrap().unwrap();
        let sequencer = self.sequencer.take().unwrap();
        tokio::task::spawn_blocking(move || sequencer.shutdown())
            .await
            .unwrap();
        let TestApp {
            state,
            store,
            _directory,
            ..
        } = self;
        drop(state);
        drop(store);
        _directory
    }
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    let health = get(&app, "/healthz").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body, r#"{"status":"ok"}"#);
    let ready = get(&app, "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    let body: serde_json::Value = serde_json::from_str(&ready.body).unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["backend"], "sqlite");
    // One batch: the platform's own accounts, opened at start.
    assert_eq!(body["ledger_batches"], 1);
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_what_the_ledger_committed() {
    let app = spawn_app().await;
    let handle = app.sequencer.as_ref().unwrap().handle();
    let currency = Currency::parse("CNY").unwrap();
    let events = vec![
        account(101, currency),
        account(102, currency),
        Event::CreateTransfer(NewTransfer::new(10, 101, 102, 500, currency)),
        Event::CreateTransfer(NewTransfer::new(11, 102, 101, 200, currency)),
    ];
    let results = tokio::task::spawn_blocking(move || handle.execute(events))
        .await
        .unwrap()
        .unwrap();
    assert!(results
        .iter()
        .all(|result| *result == ledger::EventResult::Ok));
    let metrics = get(&app, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.content_type.starts_with("text/plain"),
        "{}",
        metrics.content_type
    );
    assert!(
        metrics
            .body
            .contains("\ntally_ledger_transfers_committed_total 2\n"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            // The platform's five accounts, opened at start, and the test's four events.
            .contains("\ntally_ledger_events_committed_total 9\n"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("tally_ledger_commit_duration_seconds_count 2\n"),
        "{}",
        metrics.body
    );
    let ready = get(&app, "/readyz").await;
    assert!(
        ready.body.contains(r#""ledger_batches":2"#),
        "{}",
        ready.body
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_path_is_a_problem_document() {
    let app = spawn_app().await;
    let answer = get(&app, "/v1/nothing-here").await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.content_type, "application/problem+json");
    let problem: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(problem["code"], "not_found");
    assert_eq!(problem["status"], 404);
    app.stop().await;
}

#[tokio::test]
async fn receipts_and_checkpoints_are_served_and_verify() {
    let signer = trustlog::NoteSigner::from_seed("test-log", &[7u8; 32]).unwrap();
    let verifier_key = signer.verifier_key_text();
    let app = spawn_app_with(SequencerConfig {
        log_signer: Some(Arc::new(signer)),
        ..SequencerConfig::default()
    })
    .await;

    let none_yet = get(&app, "/v1/log/checkpoint").await;
    assert_eq!(none_yet.status, 404);
    let handle = app.sequencer.as_ref().unwrap().handle();
    let currency = Currency::parse("CNY").unwrap();
    let events = vec![
        account(101, currency),
        account(102, currency),
        Event::CreateTransfer(NewTransfer::new(10, 101, 102, 500, currency)),
        Event::CreateTransfer(NewTransfer::new(11, 102, 101, 200, currency)),
    ];
    tokio::task::spawn_blocking(move || handle.execute(events))
        .await
        .unwrap()
        .unwrap();

    let checkpoint = get(&app, "/v1/log/checkpoint").await;
    assert_eq!(checkpoint.status, 200);
    let note = trustlog::verify_note(&checkpoint.body, &verifier_key).unwrap();
    assert!(note.text.starts_with("test-log\n2\n"), "{}", note.text);

    let answer = get(&app, "/v1/log/receipts/11").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let json: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(json["transfer_id"], "11");
    assert_eq!(json["leaf_index"], 1);
    assert_eq!(json["tree_size"], 2);
    use base64::Engine;
    let engine = base64::engine::general_purpose::STANDARD;
    let receipt = trustlog::Receipt {
        leaf: engine.decode(json["leaf"].as_str().unwrap()).unwrap(),
        leaf_index: 1,
        tree_size: 2,
        inclusion_path: json["inclusion_path"]
            .as_array()
            .unwrap()
            .iter()
            .map(|hash| {
                engine
                    .decode(hash.as_str().unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap()
            })
            .collect(),
        checkpoint: json["checkpoint"].as_str().unwrap().to_owned(),
    };
    trustlog::verify_receipt(&receipt, &verifier_key).unwrap();

    let missing = get(&app, "/v1/log/receipts/999").await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("transfer_not_found"));
    let malformed = get(&app, "/v1/log/receipts/abc").await;
    assert_eq!(malformed.status, 400);
    assert!(malformed.body.contains("invalid_transfer_id"));
    app.stop().await;
}

fn decode_hashes(json: &serde_json::Value) -> Vec<trustlog::Hash> {
    use base64::Engine;
    json.as_array()
        .unwrap()
        .iter()
        .map(|hash| {
            base64::engine::general_purpose::STANDARD
                .decode(hash.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect()
}

fn signed_app_config() -> (SequencerConfig, String) {
    let signer = trustlog::NoteSigner::from_seed("test-log", &[7u8; 32]).unwrap();
    let verifier_key = signer.verifier_key_text();
    let config = SequencerConfig {
        log_signer: Some(Arc::new(signer)),
        ..SequencerConfig::default()
    };
    (config, verifier_key)
}

fn token(app: &TestApp, role: store::CredentialRole) -> String {
    let mut admin = app.store.admin().unwrap();
    let (_, token) = server::issue_credential(admin.as_mut(), role, "test", 1).unwrap();
    token
}

#[tokio::test]
async fn deposits_are_authenticated_idempotent_and_answered_with_a_receipt() {
    let (config, verifier_key) = signed_app_config();
    let app = spawn_app_with(config).await;
    let depositor = token(&app, store::CredentialRole::Depositor);
    let auditor = token(&app, store::CredentialRole::Auditor);
    let bearer = format!("Bearer {depositor}");
    let digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let body =
        format!(r#"{{"kind": "document", "digest": "{digest}", "reference": "contract-7"}}"#);
    let deposit = |headers: Vec<(&'static str, String)>, body: String| {
        let app = &app;
        async move {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(name, value)| (*name, value.as_str()))
                .collect();
            request(app, "POST", "/v1/log/deposits", &headers, &body).await
        }
    };

    // No token, a wrong token, the wrong role: nothing is appended.
    let anonymous = deposit(vec![("Idempotency-Key", "k1".into())], body.clone()).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert_eq!(anonymous.content_type, "application/problem+json");
    // The same token with its last secret digit changed.
    let last = if depositor.ends_with('0') { "1" } else { "0" };
    let forged = depositor[..depositor.len() - 1].to_owned() + last;
    let forged = deposit(
        vec![
            ("Authorization", format!("Bearer {forged}")),
            ("Idempotency-Key", "k1".into()),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(forged.status, 401, "{}", forged.body);
    let wrong_role = deposit(
        vec![
            ("Authorization", format!("Bearer {auditor}")),
            ("Idempotency-Key", "k1".into()),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(wrong_role.status, 403, "{}", wrong_role.body);
    let no_key = deposit(vec![("Authorization", bearer.clone())], body.clone()).await;
    assert_eq!(no_key.status, 400);
    assert_eq!(no_key.json()["code"], "idempotency_key_required");
    let bad_digest = deposit(
        vec![
            ("Authorization", bearer.clone()),
            ("Idempotency-Key", "k1".into()),
        ],
        body.replace(digest, "abc"),
    )
    .await;
    assert_eq!(bad_digest.json()["code"], "invalid_digest");
    let bad_kind = deposit(
        vec![
            ("Authorization", bearer.clone()),
            ("Idempotency-Key", "k1".into()),
        ],
        body.replace("document", "passport"),
    )
    .await;
    assert_eq!(bad_kind.json()["code"], "invalid_kind");
    assert_eq!(app.store.reader().unwrap().head().unwrap().log_size, 0);

    // The deposit: 201 with a receipt that verifies offline.
    let created = deposit(
        vec![
            ("Authorization", bearer.clone()),
            ("Idempotency-Key", "k1".into()),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let json = created.json();
    assert_eq!(json["id"], "reg_1");
    assert_eq!(json["digest"], digest);
    assert_eq!(json["reference"], "contract-7");
    let receipt_json = &json["receipt"];
    assert_eq!(receipt_json["registration_id"], "1");
    use base64::Engine;
    let leaf = base64::engine::general_purpose::STANDARD
        .decode(receipt_json["leaf"].as_str().unwrap())
        .unwrap();
    let registration = store::Registration::from_log_leaf(&leaf).unwrap();
    assert_eq!(registration.id, 1);
    assert_eq!(registration.reference, "contract-7");
    let receipt = trustlog::Receipt {
        leaf,
        leaf_index: receipt_json["leaf_index"].as_u64().unwrap(),
        tree_size: receipt_json["tree_size"].as_u64().unwrap(),
        inclusion_path: decode_hashes(&receipt_json["inclusion_path"]),
        checkpoint: receipt_json["checkpoint"].as_str().unwrap().to_owned(),
    };
    trustlog::verify_receipt(&receipt, &verifier_key).unwrap();

    // A retry replays the first answer; the key for another document is a conflict.
    let retried = deposit(
        vec![
            ("Authorization", bearer.clone()),
            ("Idempotency-Key", "k1".into()),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(retried.json()["id"], "reg_1");
    let reused = deposit(
        vec![
            ("Authorization", bearer.clone()),
            ("Idempotency-Key", "k1".into()),
        ],
        body.replace("contract-7", "contract-8"),
    )
    .await;
    assert_eq!(reused.status, 409);
    assert_eq!(reused.json()["code"], "idempotency_key_reused");
    assert_eq!(app.store.reader().unwrap().head().unwrap().log_size, 1);

    let fetched = request(
        &app,
        "GET",
        "/v1/log/deposits/reg_1",
        &[("Authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    assert_eq!(fetched.json()["digest"], digest);
    let other = token(&app, store::CredentialRole::Depositor);
    let foreign = request(
        &app,
        "GET",
        "/v1/log/deposits/reg_1",
        &[("Authorization", &format!("Bearer {other}"))],
        "",
    )
    .await;
    assert_eq!(foreign.status, 404);

    // A revoked token stops working at once.
    let id: u64 = depositor.split('_').nth(1).unwrap().parse().unwrap();
    assert!(app.store.admin().unwrap().revoke_credential(id, 2).unwrap());
    let revoked = request(
        &app,
        "GET",
        "/v1/log/deposits/reg_1",
        &[("Authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(revoked.status, 401);
    app.stop().await;
}

#[tokio::test]
async fn consistency_proofs_and_tiles_let_anyone_audit_the_log() {
    let (config, verifier_key) = signed_app_config();
    let app = spawn_app_with(config).await;
    let handle = app.sequencer.as_ref().unwrap().handle();
    let currency = Currency::parse("CNY").unwrap();
    let first: Vec<Event> = [account(101, currency), account(102, currency)]
        .into_iter()
        .chain(
            (1..=3u128)
                .map(|id| Event::CreateTransfer(NewTransfer::new(id, 101, 102, 5, currency))),
        )
        .collect();
    let handle_first = handle.clone();
    tokio::task::spawn_blocking(move || handle_first.execute(first))
        .await
        .unwrap()
        .unwrap();
    let old_note = get(&app, "/v1/log/checkpoint").await.body;
    let old = trustlog::Checkpoint::parse(
        &trustlog::verify_note(&old_note, &verifier_key)
            .unwrap()
            .text,
    )
    .unwrap();
    assert_eq!(old.size(), 3);
    // Wait out the checkpoint interval so the next batch signs a new one.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let second: Vec<Event> = (4..=300u128)
        .map(|id| Event::CreateTransfer(NewTransfer::new(id, 102, 101, 1, currency)))
        .collect();
    tokio::task::spawn_blocking(move || handle.execute(second))
        .await
        .unwrap()
        .unwrap();
    let new_note = get(&app, "/v1/log/checkpoint").await.body;
    let new = trustlog::Checkpoint::parse(
        &trustlog::verify_note(&new_note, &verifier_key)
            .unwrap()
            .text,
    )
    .unwrap();
    assert_eq!(new.size(), 300);

    let answer = get(&app, "/v1/log/consistency?from=3&to=300").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let proof = decode_hashes(&answer.json()["proof"]);
    trustlog::verify_consistency(3, 300, old.root(), new.root(), &proof).unwrap();
    let mut forged = proof.clone();
    forged[0][0] ^= 1;
    assert!(trustlog::verify_consistency(3, 300, old.root(), new.root(), &forged).is_err());
    for bad in [
        "/v1/log/consistency?from=300&to=3",
        "/v1/log/consistency?from=1&to=301",
        "/v1/log/consistency?from=x",
    ] {
        let refused = get(&app, bad).await;
        assert_eq!(refused.status, 400, "{bad}: {}", refused.body);
        assert_eq!(refused.json()["code"], "invalid_range");
    }

    // Tiles at their C2SP paths: the full first tile of leaf hashes, the partial right edge,
    // and the entry bundle whose leaves hash to the tile.
    let full = get(&app, "/v1/log/tile/0/000").await;
    assert_eq!(full.status, 200);
    assert_eq!(full.bytes.len(), 256 * 32);
    let partial = get(&app, "/v1/log/tile/0/001.p/44").await;
    assert_eq!(partial.status, 200);
    assert_eq!(partial.bytes.len(), 44 * 32);
    assert_eq!(get(&app, "/v1/log/tile/0/001.p/45").await.status, 404);
    assert_eq!(get(&app, "/v1/log/tile/0/001").await.status, 404);
    assert_eq!(
        get(&app, "/v1/log/tile/0/1").await.status,
        404,
        "non-canonical path"
    );
    let bundle = get(&app, "/v1/log/tile/entries/000").await;
    assert_eq!(bundle.status, 200);
    let entries = trustlog::decode_entry_bundle(&bundle.bytes, 256).unwrap();
    for (index, entry) in entries.iter().enumerate() {
        assert_eq!(
            &full.bytes[index * 32..(index + 1) * 32],
            &trustlog::leaf_hash(entry)[..],
            "leaf {index}"
        );
    }
    let level_one = get(&app, "/v1/log/tile/1/000.p/1").await;
    assert_eq!(level_one.status, 200);
    let first_tile: Vec<trustlog::Hash> = full
        .bytes
        .chunks(32)
        .map(|hash| hash.try_into().unwrap())
        .collect();
    let mut level = first_tile;
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| trustlog::node_hash(&pair[0], &pair[1]))
            .collect();
    }
    assert_eq!(level_one.bytes, level[0].to_vec());
    app.stop().await;
}

#[tokio::test]
async fn auditors_query_read_only_sql_with_limits() {
    let (config, _) = signed_app_config();
    let app = spawn_app_with(config).await;
    let auditor = format!("Bearer {}", token(&app, store::CredentialRole::Auditor));
    let depositor = format!("Bearer {}", token(&app, store::CredentialRole::Depositor));
    let sql = |authorization: String, body: &'static str| {
        let app = &app;
        async move {
            request(
                app,
                "POST",
                "/v1/sql",
                &[("Authorization", &authorization)],
                body,
            )
            .await
        }
    };
    let answer = sql(
        auditor.clone(),
        r#"{"query": "SELECT role, label FROM api_credentials ORDER BY id"}"#,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let json = answer.json();
    assert_eq!(json["columns"], serde_json::json!(["role", "label"]));
    assert_eq!(json["rows"][0], serde_json::json!(["auditor", "test"]));
    assert_eq!(json["truncated"], false);
    let limited = sql(
        auditor.clone(),
        r#"{"query": "SELECT id FROM api_credentials", "limit": 1}"#,
    )
    .await;
    assert_eq!(limited.json()["rows"].as_array().unwrap().len(), 1);
    assert_eq!(limited.json()["truncated"], true);
    let write = sql(
        auditor.clone(),
        r#"{"query": "DELETE FROM api_credentials"}"#,
    )
    .await;
    assert_eq!(write.status, 400);
    assert_eq!(write.json()["code"], "query_refused");
    let endless = sql(
        auditor.clone(),
        r#"{"query": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"}"#,
    )
    .await;
    assert_eq!(endless.status, 400);
    assert!(endless.body.contains("ran longer than"), "{}", endless.body);
    let too_many = sql(auditor.clone(), r#"{"query": "SELECT 1", "limit": 10001}"#).await;
    assert_eq!(too_many.json()["code"], "invalid_limit");
    let forbidden = sql(depositor, r#"{"query": "SELECT 1"}"#).await;
    assert_eq!(forbidden.status, 403);
    let anonymous = request(&app, "POST", "/v1/sql", &[], r#"{"query": "SELECT 1"}"#).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        app.store.admin().unwrap().credentials().unwrap().len(),
        2,
        "nothing was deleted"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_self_audit_follows_the_log_and_catches_a_rewritten_row() {
    let (config, verifier_key) = signed_app_config();
    let app = spawn_app_with(config).await;
    let handle = app.sequencer.as_ref().unwrap().handle();
    let currency = Currency::parse("CNY").unwrap();
    let transfers = |ids: std::ops::RangeInclusive<u128>| -> Vec<Event> {
        ids.map(|id| Event::CreateTransfer(NewTransfer::new(id, 101, 102, 5, currency)))
            .collect()
    };
    let first: Vec<Event> = [account(101, currency), account(102, currency)]
        .into_iter()
        .chain(transfers(1..=10))
        .collect();
    let submit = |events: Vec<Event>| {
        let handle = handle.clone();
        async move {
            tokio::task::spawn_blocking(move || handle.execute(events))
                .await
                .unwrap()
                .unwrap()
        }
    };
    submit(first).await;
    let store = app.store.clone();
    let mut audit = server::workers::SelfAudit::new(verifier_key.clone());
    let run = |audit: &mut server::workers::SelfAudit| {
        let mut reader = store.reader().unwrap();
        audit.run(reader.as_mut())
    };
    assert_eq!(run(&mut audit), Ok(10));
    assert_eq!(audit.verified_size(), 10);

    // The log grows; the next run verifies only the new stretch and follows it.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    submit(transfers(11..=20)).await;
    assert_eq!(run(&mut audit), Ok(20));

    // Its progress, once recorded, lets a restarted server resume at 20 leaves.
    store
        .admin()
        .unwrap()
        .record_audit(20, &audit.verified_root(), 1)
        .unwrap();
    let resumed =
        server::workers::SelfAudit::resume(verifier_key.clone(), store.reader().unwrap().as_mut());
    assert_eq!(resumed.verified_size(), 20);
    assert_eq!(resumed.verified_root(), audit.verified_root());
    // A recorded root the stored tiles no longer lead to: start again from the first leaf.
    store
        .admin()
        .unwrap()
        .record_audit(20, &[0; 32], 2)
        .unwrap();
    let restarted =
        server::workers::SelfAudit::resume(verifier_key.clone(), store.reader().unwrap().as_mut());
    assert_eq!(restarted.verified_size(), 0);

    // Someone rewrites a row of the next stretch: the next run says so.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    submit(transfers(21..=30)).await;
    let path = app._directory.path().join("tally.sqlite");
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute("UPDATE transfers SET amount = 6 WHERE id = 25", [])
        .unwrap();
    drop(connection);
    let problem = run(&mut audit).unwrap_err();
    assert!(problem.contains("do not lead to the root"), "{problem}");
    assert_eq!(
        audit.verified_size(),
        20,
        "a failed run verifies nothing more"
    );
    // A fresh audit from the first leaf finds it too; with another key, the signature fails.
    let mut fresh = server::workers::SelfAudit::new(verifier_key);
    assert!(run(&mut fresh).is_err());
    let other_key = trustlog::NoteSigner::from_seed("test-log", &[8u8; 32])
        .unwrap()
        .verifier_key_text();
    let mut wrong_key = server::workers::SelfAudit::new(other_key);
    assert!(run(&mut wrong_key)
        .unwrap_err()
        .contains("checkpoint at size 30"));
    app.stop().await;
}

#[tokio::test]
async fn operators_get_a_checkpoint_on_demand() {
    let (mut config, verifier_key) = signed_app_config();
    config.checkpoint_interval = std::time::Duration::from_secs(3600);
    let app = spawn_app_with(config).await;
    let handle = app.sequencer.as_ref().unwrap().handle();
    let currency = Currency::parse("CNY").unwrap();
    let operator = format!("Bearer {}", token(&app, store::CredentialRole::Operator));
    let auditor = format!("Bearer {}", token(&app, store::CredentialRole::Auditor));
    let empty = request(
        &app,
        "POST",
        "/v1/log/checkpoint",
        &[("Authorization", &operator)],
        "",
    )
    .await;
    assert_eq!(empty.status, 404, "{}", empty.body);
    // The first batch is signed at once; the second waits for the interval (an hour here).
    for events in [
        vec![
            account(101, currency),
            account(102, currency),
            Event::CreateTransfer(NewTransfer::new(1, 101, 102, 5, currency)),
        ],
        vec![Event::CreateTransfer(NewTransfer::new(
            2, 101, 102, 5, currency,
        ))],
    ] {
        let handle = handle.clone();
        tokio::task::spawn_blocking(move || handle.execute(events))
            .await
            .unwrap()
            .unwrap();
    }
    let latest = get(&app, "/v1/log/checkpoint").await.body;
    assert!(latest.starts_with("test-log\n1\n"), "{latest}");
    let refused = request(
        &app,
        "POST",
        "/v1/log/checkpoint",
        &[("Authorization", &auditor)],
        "",
    )
    .await;
    assert_eq!(refused.status, 403);
    let signed = request(
        &app,
        "POST",
        "/v1/log/checkpoint",
        &[("Authorization", &operator)],
        "",
    )
    .await;
    assert_eq!(signed.status, 200, "{}", signed.body);
    let note = trustlog::verify_note(&signed.body, &verifier_key).unwrap();
    assert!(note.text.starts_with("test-log\n2\n"), "{}", note.text);
    assert_eq!(get(&app, "/v1/log/checkpoint").await.body, signed.body);
    app.stop().await;
}

/// The last code the development SMS gateway sent to `phone`.
fn last_code(app: &TestApp, phone: &str) -> String {
    let messages = app.store.users().unwrap().sms_outbox(50).unwrap();
    let message = messages
        .iter()
        .find(|message| message.phone == phone)
        .unwrap_or_else(|| panic!("no SMS to {phone}: {messages:?}"));
    message
        .text
        .split_whitespace()
        .find(|word| word.len() == 7 && word[..6].bytes().all(|byte| byte.is_ascii_digit()))
        .map(|word| word[..6].to_owned())
        .unwrap_or_else(|| panic!("no code in {:?}", message.text))
}

async fn post_json(app: &TestApp, path: &str, body: serde_json::Value) -> Answer {
    request(
        app,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        &body.to_string(),
    )
    .await
}

#[tokio::test]
async fn users_register_and_log_in_with_a_password_and_a_code_sent_to_their_phone() {
    let app = spawn_app().await;
    let phone = "+8613800138000";
    let password = "correct horse battery";

    // Registration needs a code sent to the phone.
    let refused = post_json(
        &app,
        "/v1/users",
        serde_json::json!({"phone": phone, "password": password, "code": "123456"}),
    )
    .await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(refused.json()["code"], "invalid_code");
    let sent = post_json(
        &app,
        "/v1/otp",
        serde_json::json!({"phone": phone, "purpose": "register"}),
    )
    .await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    let again = post_json(
        &app,
        "/v1/otp",
        serde_json::json!({"phone": phone, "purpose": "register"}),
    )
    .await;
    assert_eq!(again.status, 429, "one code a minute");
    let code = last_code(&app, phone);
    for (body, expected) in [
        (
            serde_json::json!({"phone": "13800138000", "password": password, "code": code}),
            "invalid_phone",
        ),
        (
            serde_json::json!({"phone": phone, "password": "12345678", "code": code}),
            "weak_password",
        ),
        (
            serde_json::json!({"phone": phone, "password": password, "code": code, "extra": 1}),
            "invalid_body",
        ),
    ] {
        let answer = post_json(&app, "/v1/users", body).await;
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert_eq!(answer.json()["code"], expected);
    }
    let created = post_json(
        &app,
        "/v1/users",
        serde_json::json!({"phone": phone, "password": password, "code": code}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let user = created.json();
    assert!(user["id"].as_str().unwrap().starts_with("usr_"));
    assert_eq!(user["tier"], 0);
    // The wallet is a ledger account that may not go negative.
    let wallet_id: u128 = user["wallet_account_id"].as_str().unwrap().parse().unwrap();
    let wallet = app
        .store
        .reader()
        .unwrap()
        .account(wallet_id)
        .unwrap()
        .unwrap();
    assert!(wallet
        .flags
        .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS));
    // The code is used up, and the number cannot register twice.
    let reused = post_json(
        &app,
        "/v1/users",
        serde_json::json!({"phone": phone, "password": password, "code": code}),
    )
    .await;
    assert_eq!(reused.json()["code"], "phone_taken");

    // Log in: password and a login code. A wrong password and a wrong code look the same.
    post_json(
        &app,
        "/v1/otp",
        serde_json::json!({"phone": phone, "purpose": "login"}),
    )
    .await;
    let login_code = last_code(&app, phone);
    let wrong_password = post_json(
        &app,
        "/v1/sessions",
        serde_json::json!({"phone": phone, "password": "wrong horse battery", "code": login_code}),
    )
    .await;
    assert_eq!(wrong_password.status, 401);
    assert_eq!(wrong_password.json()["code"], "wrong_credentials");
    // That attempt used the code up: it cannot be replayed with the right password.
    let replayed = post_json(
        &app,
        "/v1/sessions",
        serde_json::json!({"phone": phone, "password": password, "code": login_code}),
    )
    .await;
    assert_eq!(replayed.json()["code"], "wrong_credentials");
    let unknown = post_json(
        &app,
        "/v1/sessions",
        serde_json::json!({"phone": "+8613900139000", "password": password, "code": "000000"}),
    )
    .await;
    assert_eq!(unknown.json()["code"], "wrong_credentials");

    // A minute later, a new code; a right login gives a session token.
    app.store
        .users()
        .unwrap()
        .put_code(
            phone,
            "login",
            &store::OneTimeCode {
                digest: [0; 32],
                created_at: 0,
                expires_at: 1,
                attempts: 0,
            },
        )
        .unwrap();
    post_json(
        &app,
        "/v1/otp",
        serde_json::json!({"phone": phone, "purpose": "login"}),
    )
    .await;
    let login_code = last_code(&app, phone);
    let session = post_json(
        &app,
        "/v1/sessions",
        serde_json::json!({"phone": phone, "password": password, "code": login_code}),
    )
    .await;
    assert_eq!(session.status, 201, "{}", session.body);
    let token = session.json()["token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    let me = request(&app, "GET", "/v1/me", &[("Authorization", &bearer)], "").await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["phone"], phone);
    assert_eq!(me.json()["wallet"]["available"], "0.00");
    // The payment password: six digits, set with a code sent for that purpose.
    post_json(
        &app,
        "/v1/otp",
        serde_json::json!({"phone": phone, "purpose": "payment_password"}),
    )
    .await;
    let pin_code = last_code(&app, phone);
    let put = |body: serde_json::Value| {
        let app = &app;
        let bearer = bearer.clone();
        async move {
            request(
                app,
                "PUT",
                "/v1/me/payment-password",
                &[
                    ("Authorization", &bearer),
                    ("Content-Type", "application/json"),
                ],
                &body.to_string(),
            )
            .await
        }
    };
    let short = put(serde_json::json!({"payment_password": "1234", "code": pin_code})).await;
    assert_eq!(short.json()["code"], "invalid_payment_password");
    let set = put(serde_json::json!({"payment_password": "135790", "code": pin_code})).await;
    assert_eq!(set.status, 204, "{}", set.body);
    let stored = app
        .store
        .users()
        .unwrap()
        .user_by_phone(phone)
        .unwrap()
        .unwrap();
    assert!(stored
        .payment_password_hash
        .unwrap()
        .starts_with("$argon2id$"));
    assert_eq!(request(&app, "GET", "/v1/me", &[], "").await.status, 401);
    // Logging out ends the session at once.
    let out = request(
        &app,
        "DELETE",
        "/v1/sessions/current",
        &[("Authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(out.status, 204);
    let after = request(&app, "GET", "/v1/me", &[("Authorization", &bearer)], "").await;
    assert_eq!(after.status, 401);
    app.stop().await;
}

#[tokio::test]
async fn a_code_survives_five_wrong_guesses_and_no_more() {
    let app = spawn_app().await;
    let phone = "+14155550100";
    post_json(
        &app,
        "/v1/otp",
        serde_json::json!({"phone": phone, "purpose": "register"}),
    )
    .await;
    let code = last_code(&app, phone);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let guess = post_json(
            &app,
            "/v1/users",
            serde_json::json!({"phone": phone, "password": "correct horse", "code": wrong}),
        )
        .await;
        assert_eq!(guess.json()["code"], "invalid_code");
    }
    let right_too_late = post_json(
        &app,
        "/v1/users",
        serde_json::json!({"phone": phone, "password": "correct horse", "code": code}),
    )
    .await;
    assert_eq!(right_too_late.json()["code"], "code_attempts_exceeded");
    assert!(app
        .store
        .users()
        .unwrap()
        .user_by_phone(phone)
        .unwrap()
        .is_none());
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_and_the_reference_describe_every_route() {
    let app = spawn_app().await;
    let answer = get(&app, "/v1/openapi.json").await;
    assert_eq!(answer.status, 200);
    let document = answer.json();
    assert_eq!(document["openapi"], "3.1.0");
    // Every documented operation is routed: no fallback, no 405.
    for endpoint in server::api::endpoints() {
        let path = endpoint
            .path
            .replace("{path}", "0/x000")
            .replace("{date}", "2026-11-22")
            .replace(['{', '}'], "");
        let routed = request(&app, endpoint.method, &path, &[], "").await;
        assert_ne!(routed.status, 405, "{} {path}", endpoint.method);
        assert!(
            !routed.body.contains("No such endpoint"),
            "{} {path} is documented but not routed",
            endpoint.method
        );
        let operation = &document["paths"][endpoint.path][endpoint.method.to_ascii_lowercase()];
        assert!(operation["summary"].is_string(), "{endpoint:?}");
    }
    // The reference in the repository is the one the table renders.
    let reference =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md"))
            .unwrap_or_default();
    assert!(
        reference == server::api::markdown(),
        "docs/api.md is stale: run `cargo run -p tally -- openapi --markdown > docs/api.md`"
    );
    app.stop().await;
}

/// Runs the futures concurrently on this task and returns their outputs in order.
pub(crate) async fn futures_join<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs = Vec::new();
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|context| {
        let mut done = true;
        for (slot, future) in pending.iter_mut().enumerate() {
            if let Some(running) = future {
                match running.as_mut().poll(context) {
                    std::task::Poll::Ready(output) => {
                        results[slot] = Some(output);
                        *future = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.extend(results.into_iter().map(Option::unwrap));
    outputs
}
