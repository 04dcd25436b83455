//! `tally bench api`: a server on loopback and a built-in load generator that creates and pays
//! merchant orders through the HTTP API, as merchants' backends and wallet apps do: each order
//! is created by a signed merchant request and paid by a user's session with the payment
//! password (checked with Argon2id on a session's first payment, then remembered for the
//! session, as an app keeps its user "signed in to pay").

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::Args;
use ledger::{Event, EventResult, NewTransfer};
use sequencer::Sequencer;
use server::AppState;
use services::payments::{NewMerchant, RESERVE_ACCOUNT_ID};
use services::users::CodePurpose;
use store::{InvariantReport, Store};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const CLIENTS_MAX: usize = 1024;
const SECONDS_MAX: u64 = 3_600;
const MERCHANTS: usize = 8;
/// Each order's amount, in minor units.
const ORDER_AMOUNT: u64 = 100;
const PAYMENT_PASSWORD: &str = "135790";
/// What each user is topped up with before the run.
const USER_FUNDS: u128 = 100_000_000;
/// Largest response the load generator reads.
const RESPONSE_BYTES_MAX: usize = 64 * 1024;
const HTTP_WORKER_THREADS: usize = 2;

#[derive(Debug, Args)]
pub struct ApiArgs {
    /// A data directory for the store (default: a temporary one, removed afterwards).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Keep the ledger and the payment records in this (empty) PostgreSQL database; the data
    /// directory keeps the log's signing key.
    #[command(flatten)]
    database: crate::backend::DatabaseArgs,
    /// Concurrent clients; each is one user paying orders of one merchant, on one keep-alive
    /// connection for the merchant and one for the user.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// How long to measure.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// One keep-alive HTTP/1.1 connection.
pub(crate) struct Connection {
    stream: BufReader<TcpStream>,
    line: String,
    /// The request being sent, its allocation kept from one request to the next.
    request: String,
    /// The last response's body, its allocation kept too.
    body: Vec<u8>,
}

impl Connection {
    pub(crate) async fn open(address: std::net::SocketAddr) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream: BufReader::new(stream),
            line: String::new(),
            request: String::new(),
            body: Vec::new(),
        })
    }

    pub(crate) async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> anyhow::Result<(u16, &[u8])> {
        let request = &mut self.request;
        request.clear();
        for part in [method, " ", path, " HTTP/1.1\r\nHost: bench\r\n"] {
            request.push_str(part);
        }
        for (name, value) in headers {
            for part in [*name, ": ", *value, "\r\n"] {
                request.push_str(part);
            }
        }
        // Into the kept buffer: no allocation.
        let _ = write!(request, "Content-Length: {}\r\n\r\n", body.len());
        request.push_str(body);
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        self.line.clear();
        self.stream.read_line(&mut self.line).await?;
        let status: u16 = self
            .line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .context("a malformed status line")?;
        let mut length = 0usize;
        loop {
            self.line.clear();
            if self.stream.read_line(&mut self.line).await? == 0 {
                bail!("the connection closed mid-response");
            }
            let line = self.line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().context("a bad Content-Length")?;
                }
            }
        }
        ensure!(length <= RESPONSE_BYTES_MAX, "a response of {length} bytes");
        self.body.clear();
        self.body.resize(length, 0);
        self.stream.read_exact(&mut self.body).await?;
        Ok((status, &self.body))
    }
}

/// What one client needs: a merchant key and a user session.
#[derive(Clone)]
struct Client {
    key_id: u64,
    signing_key: [u8; 32],
    /// `Bearer <session token>`.
    bearer: String,
}

/// What the load generator measured.
struct Measured {
    tally: Arc<Tally>,
    latencies_us: Vec<u64>,
    elapsed: Duration,
    /// The process's CPU seconds.
    cpu: f64,
    /// The machine's idle and stolen shares, in per cent, where /proc/stat is readable.
    host: Option<(f64, f64)>,
}

struct Tally {
    paid: AtomicU64,
    errors: AtomicU64,
    requests: AtomicU64,
}

/// Milliseconds since the Unix epoch.
fn unix_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis())
}

fn percentile(sorted: &[u64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    sorted[index] as f64 / 1_000.0
}

pub fn run(args: ApiArgs) -> anyhow::Result<()> {
    // What the server logs (a refused request's cause, at warn and above with TALLY_LOG=warn).
    crate::serve::init_logging();
    ensure!(
        (1..=CLIENTS_MAX).contains(&args.clients),
        "--clients must be between 1 and {CLIENTS_MAX}"
    );
    ensure!(
        (1..=SECONDS_MAX).contains(&args.seconds),
        "--seconds must be between 1 and {SECONDS_MAX}"
    );
    let temporary;
    let directory = match &args.data {
        Some(directory) => directory.clone(),
        None => {
            temporary = tempfile::tempdir()?;
            temporary.path().to_path_buf()
        }
    };
    let store: Arc<dyn Store> = crate::backend::open_store(&directory, &args.database)?.into();
    ensure!(
        store.reader()?.head()?.batches == 0,
        "{} already holds a ledger; the benchmark needs a fresh one",
        crate::backend::describe(&directory, &args.database)
    );
    let sequencer = Sequencer::start(store.as_ref(), crate::sequencer_config(&directory)?)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(HTTP_WORKER_THREADS)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let state = AppState::new(store.clone(), sequencer.handle())?;
    if !args.json {
        eprintln!(
            "setting up {} users and {MERCHANTS} merchants…",
            args.clients
        );
    }
    let clients = runtime.block_on(set_up(&state, &sequencer, args.clients))?;
    if !args.json {
        eprintln!("measuring for {} s…", args.seconds);
    }
    let outcome = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(server::serve(listener, state.clone(), async {
            let _ = stopped.await;
        }));
        let outcome = load(address, clients, Duration::from_secs(args.seconds)).await;
        let _ = stop.send(());
        server.await??;
        outcome
    })?;
    drop(runtime);
    let Measured {
        tally,
        mut latencies_us,
        elapsed,
        cpu,
        host,
    } = outcome;
    let handle = sequencer.handle();
    let metrics = handle.metrics();
    let batches = sequencer::Metrics::read(&metrics.batches_committed);
    let commit_micros = sequencer::Metrics::read(&metrics.commit_duration_micros_total);
    sequencer.shutdown();
    let mut reader = store.reader()?;
    let report = InvariantReport::check(reader.as_mut())?;
    ensure!(
        report.holds(),
        "the ledger's invariants do not hold: {report:?}"
    );
    latencies_us.sort_unstable();
    let paid = tally.paid.load(Ordering::Relaxed);
    let errors = tally.errors.load(Ordering::Relaxed);
    let requests = tally.requests.load(Ordering::Relaxed);
    let seconds = elapsed.as_secs_f64();
    let rate = paid as f64 / seconds;
    let (p50, p90, p99) = (
        percentile(&latencies_us, 0.50),
        percentile(&latencies_us, 0.90),
        percentile(&latencies_us, 0.99),
    );
    let max = latencies_us.last().copied().unwrap_or(0) as f64 / 1_000.0;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "backend": store.backend(),
                "paid_orders": paid,
                "paid_orders_per_second": rate.round(),
                "requests_per_second": (requests as f64 / seconds).round(),
                "errors": errors,
                "clients": args.clients,
                "seconds": seconds,
                "latency_ms": {"p50": p50, "p90": p90, "p99": p99, "max": max},
                "cpu_seconds": cpu,
                "cpu_us_per_paid_order": (cpu * 1e6 / paid.max(1) as f64).round(),
                "host": host.map(|(idle, steal)| serde_json::json!({
                    "idle_percent": (idle * 10.0).round() / 10.0,
                    "steal_percent": (steal * 10.0).round() / 10.0,
                })),
                "invariants_hold": true,
            })
        );
    } else {
        println!(
            "{paid} orders created and paid in {seconds:.1} s by {} clients: {rate:.0} paid orders/s ({:.0} requests/s), {errors} errors",
            args.clients,
            requests as f64 / seconds
        );
        println!("latency of a paid order (create + pay), ms: p50 {p50:.1}  p90 {p90:.1}  p99 {p99:.1}  max {max:.1}");
        println!(
            "CPU: {cpu:.1} s in all, {:.0} µs per paid order",
            cpu * 1e6 / paid.max(1) as f64
        );
        if let Some((idle, steal)) = host {
            println!(
                "the machine's cores meanwhile: {idle:.1} % idle, {steal:.1} % taken by the hypervisor (steal)"
            );
        }
        println!(
            "{batches} batches committed, {:.1} ms each on average",
            commit_micros as f64 / batches.max(1) as f64 / 1_000.0
        );
        println!("invariants hold: debits equal credits, no account breaks its flags");
    }
    ensure!(errors == 0, "{errors} requests failed");
    Ok(())
}

/// Merchants, users with sessions and payment passwords, tier 2, funded.
async fn set_up(
    state: &Arc<AppState>,
    sequencer: &Sequencer,
    clients: usize,
) -> anyhow::Result<Vec<Client>> {
    let now = server::unix_seconds();
    let mut merchants = Vec::with_capacity(MERCHANTS);
    for index in 0..MERCHANTS {
        let onboarded = state
            .payments
            .onboard_merchant(
                NewMerchant {
                    name: format!("Bench Merchant {index}"),
                    mcc: "5814".into(),
                    country: "CN".into(),
                    city: "Hangzhou".into(),
                    settlement_account: format!("62220000{index:08}"),
                    fee_rate_bps: 60,
                },
                None,
                &|_| (201, String::new()),
                now,
            )
            .await?;
        let services::payments::Outcome::Done(onboarded) = onboarded else {
            bail!("a new merchant cannot be a replay");
        };
        merchants.push((
            onboarded.key.key.id,
            services::payments::signing_key(&onboarded.key.secret),
        ));
    }
    let users = state.users.clone();
    let store = state.store.clone();
    let sessions =
        tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(String, u64, u128)>> {
            let code_for = |phone: &str| crate::demo_api::last_code(store.as_ref(), phone);
            let mut sessions = Vec::new();
            let base = 13_900_000_000u64 + u64::from(std::process::id() % 1_000) * 100_000;
            for index in 0..clients as u64 {
                let phone = format!("+86{}", base + index);
                let password = "bench password";
                users.send_code(&phone, CodePurpose::Register, now)?;
                let user = users.register(&phone, password, &code_for(&phone)?, now)?;
                users.send_code(&phone, CodePurpose::Login, now)?;
                let session = users.login(&phone, password, &code_for(&phone)?, now)?;
                users.send_code(&phone, CodePurpose::PaymentPassword, now)?;
                users.set_payment_password(&user, PAYMENT_PASSWORD, &code_for(&phone)?, now)?;
                store.users()?.set_tier(user.id, 2)?;
                sessions.push((session.token, user.id, user.wallet_account_id));
            }
            Ok(sessions)
        })
        .await??;
    let currency = state.payments.config().currency;
    let top_ups: Vec<Event> = sessions
        .iter()
        .map(|(_, _, wallet)| {
            let mut transfer = NewTransfer::new(
                services::ids::transfer_id(services::ids::new_id(now * 1000).expect("ids"), 1),
                RESERVE_ACCOUNT_ID,
                *wallet,
                USER_FUNDS,
                currency,
            );
            transfer.kind = services::accounts::TRANSFER_TOP_UP;
            Event::CreateTransfer(transfer)
        })
        .collect();
    let results = sequencer.handle().submit(top_ups)?.await?;
    ensure!(
        results.iter().all(|result| *result == EventResult::Ok),
        "funding the users failed: {results:?}"
    );
    Ok(sessions
        .into_iter()
        .enumerate()
        .map(|(index, (session, _, _))| {
            let (key_id, signing_key) = merchants[index % MERCHANTS];
            Client {
                key_id,
                signing_key,
                bearer: format!("Bearer {session}"),
            }
        })
        .collect())
}

/// The `id` of an order answer.
fn order_id(response: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(response).ok()?;
    let start = text.find(r#""id":""#)? + r#""id":""#.len();
    let length = text[start..].find('"')?;
    Some(&text[start..start + length])
}

/// What a client writes for each order, the allocations kept from one order to the next,
/// as a merchant's backend and a wallet app reuse their buffers.
#[derive(Default)]
struct Scratch {
    out_trade_no: String,
    nonce: String,
    body: String,
    authorization: String,
    path: String,
}

/// The body of every payment: `ORDER_AMOUNT` and `PAYMENT_PASSWORD`, spelled out once (a test
/// checks that they agree).
const PAY_BODY: &str = r#"{"amount":100,"payment_password":"135790"}"#;

/// One order created and paid.
async fn paid_order(
    client: &Client,
    merchant: &mut Connection,
    user: &mut Connection,
    scratch: &mut Scratch,
) -> anyhow::Result<()> {
    let Scratch {
        out_trade_no,
        nonce,
        body,
        authorization,
        path,
    } = scratch;
    body.clear();
    let _ = write!(
        body,
        r#"{{"out_trade_no":"{out_trade_no}","amount":{ORDER_AMOUNT},"currency":"CNY","description":"bench"}}"#
    );
    services::signatures::write_authorization(
        authorization,
        client.key_id,
        &client.signing_key,
        "POST",
        "/v1/orders",
        server::unix_seconds(),
        nonce,
        body.as_bytes(),
    );
    let (status, response) = merchant
        .send(
            "POST",
            "/v1/orders",
            &[
                ("Authorization", authorization),
                ("Content-Type", "application/json"),
            ],
            body,
        )
        .await?;
    ensure!(
        status == 201,
        "creating an order: {status} {}",
        String::from_utf8_lossy(response)
    );
    // Only the id is needed: the answer starts with it (`{"id":"ord_…",`), so the client
    // does not pay for parsing the whole order, as a lean merchant backend would not.
    let order_id = order_id(response).context("an order without an id")?;
    path.clear();
    for part in ["/v1/orders/", order_id, "/pay"] {
        path.push_str(part);
    }
    let (status, response) = user
        .send(
            "POST",
            path,
            &[
                ("Authorization", &client.bearer),
                ("Content-Type", "application/json"),
            ],
            PAY_BODY,
        )
        .await?;
    ensure!(
        status == 200,
        "paying an order: {status} {}",
        String::from_utf8_lossy(response)
    );
    Ok(())
}

async fn load(
    address: std::net::SocketAddr,
    clients: Vec<Client>,
    duration: Duration,
) -> anyhow::Result<Measured> {
    let tally = Arc::new(Tally {
        paid: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        requests: AtomicU64::new(0),
    });
    let measuring = Arc::new(AtomicBool::new(false));
    let stopping = Arc::new(AtomicBool::new(false));
    let warmed = Arc::new(tokio::sync::Barrier::new(clients.len() + 1));
    let mut tasks = Vec::with_capacity(clients.len());
    for (index, client) in clients.into_iter().enumerate() {
        let (tally, measuring, stopping, warmed) = (
            tally.clone(),
            measuring.clone(),
            stopping.clone(),
            warmed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut merchant = Connection::open(address).await?;
            let mut user = Connection::open(address).await?;
            let mut scratch = Scratch::default();
            // The session's first payment checks the password with Argon2id: not measured.
            let _ = write!(scratch.out_trade_no, "W{index}");
            let _ = write!(scratch.nonce, "warm-{index:08}");
            let warm_up = paid_order(&client, &mut merchant, &mut user, &mut scratch).await;
            warmed.wait().await;
            warm_up?;
            let mut sequence = 0u64;
            while !stopping.load(Ordering::Relaxed) {
                sequence += 1;
                let began = Instant::now();
                // As merchants number their orders: by time first (WeChat Pay's and Alipay's
                // examples start with the date and time), then the till and its count. A
                // merchant's numbers grow, and each lands at the end of its range in the
                // unique index, rather than at one place per till.
                scratch.out_trade_no.clear();
                let _ = write!(
                    scratch.out_trade_no,
                    "{:013}{index:04}{sequence:08}",
                    unix_millis()
                );
                scratch.nonce.clear();
                let _ = write!(scratch.nonce, "n{index:04}-{sequence:010}");
                let outcome = paid_order(&client, &mut merchant, &mut user, &mut scratch).await;
                let counted = measuring.load(Ordering::Relaxed);
                match outcome {
                    Ok(()) if counted => {
                        latencies.push(began.elapsed().as_micros() as u64);
                        tally.paid.fetch_add(1, Ordering::Relaxed);
                        tally.requests.fetch_add(2, Ordering::Relaxed);
                    }
                    Ok(()) => {}
                    Err(error) => {
                        tally.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%error, "a bench request failed");
                        merchant = Connection::open(address).await?;
                        user = Connection::open(address).await?;
                    }
                }
            }
            anyhow::Ok(latencies)
        }));
    }
    warmed.wait().await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    // The whole process's CPU time while measuring: server, load generator and the ledger's
    // threads. Steadier than throughput on a shared host (a stolen core slows both alike).
    let cpu_before = crate::bench::cpu_seconds();
    let host_before = crate::bench::HostTimes::now();
    tokio::time::sleep(duration).await;
    measuring.store(false, Ordering::Relaxed);
    let cpu = crate::bench::cpu_seconds() - cpu_before;
    let host = crate::bench::HostTimes::now()
        .zip(host_before)
        .and_then(|(now, before)| now.shares_since(&before));
    let elapsed = started.elapsed();
    stopping.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(Measured {
        tally,
        latencies_us: latencies,
        elapsed,
        cpu,
        host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payment_body_carries_the_order_amount_and_the_password() {
        let body: serde_json::Value = serde_json::from_str(PAY_BODY).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"amount": ORDER_AMOUNT, "payment_password": PAYMENT_PASSWORD})
        );
    }

    #[test]
    fn an_order_id_is_read_from_the_start_of_the_answer() {
        assert_eq!(
            order_id(br#"{"id":"ord_123","object":"order"}"#),
            Some("ord_123")
        );
        assert_eq!(order_id(br#"{"object":"order"}"#), None);
    }
}
