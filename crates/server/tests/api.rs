//! The HTTP API through real sockets: each test gets its own data directory and port.

// Tests drive real sockets and time.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::sync::Arc;

use ledger::{AccountFlags, Currency, Event, NewAccount, NewTransfer};
use sequencer::{Sequencer, SequencerConfig};
use server::AppState;
use store::Store;
use store_sqlite::SqliteStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct TestApp {
    address: SocketAddr,
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
    let directory = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(directory.path()).unwrap());
    let sequencer = Sequencer::start(store.as_ref(), config).unwrap();
    let state = AppState::new(store, sequencer.handle());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(listener, state, async {
        let _ = stopped.await;
    }));
    TestApp {
        address,
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
}

/// A minimal HTTP/1.1 client: one request per connection.
async fn get(app: &TestApp, path: &str) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: tally\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|line| line.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_owned();
    Answer {
        status,
        content_type,
        body: body.to_owned(),
    }
}

impl TestApp {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.server.take().unwrap().await.unwrap().unwrap();
        let sequencer = self.sequencer.take().unwrap();
        tokio::task::spawn_blocking(move || sequencer.shutdown())
            .await
            .unwrap();
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
    assert_eq!(body["ledger_batches"], 0);
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_what_the_ledger_committed() {
    let app = spawn_app().await;
    let handle = app.sequencer.as_ref().unwrap().handle();
    let currency = Currency::parse("CNY").unwrap();
    let events = vec![
        Event::CreateAccount(NewAccount {
            id: 1,
            currency,
            kind: 1,
            flags: AccountFlags::empty(),
            user_data: 0,
        }),
        Event::CreateAccount(NewAccount {
            id: 2,
            currency,
            kind: 1,
            flags: AccountFlags::empty(),
            user_data: 0,
        }),
        Event::CreateTransfer(NewTransfer::new(10, 1, 2, 500, currency)),
        Event::CreateTransfer(NewTransfer::new(11, 2, 1, 200, currency)),
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
            .contains("\ntally_ledger_events_committed_total 4\n"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("tally_ledger_commit_duration_seconds_count 1\n"),
        "{}",
        metrics.body
    );
    let ready = get(&app, "/readyz").await;
    assert!(
        ready.body.contains(r#""ledger_batches":1"#),
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
        Event::CreateAccount(NewAccount {
            id: 1,
            currency,
            kind: 1,
            flags: AccountFlags::empty(),
            user_data: 0,
        }),
        Event::CreateAccount(NewAccount {
            id: 2,
            currency,
            kind: 1,
            flags: AccountFlags::empty(),
            user_data: 0,
        }),
        Event::CreateTransfer(NewTransfer::new(10, 1, 2, 500, currency)),
        Event::CreateTransfer(NewTransfer::new(11, 2, 1, 200, currency)),
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
