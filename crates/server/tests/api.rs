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
    let directory = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(directory.path()).unwrap());
    let sequencer = Sequencer::start(store.as_ref(), SequencerConfig::default()).unwrap();
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
