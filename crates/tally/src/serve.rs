//! `tally serve`: the HTTP API on the embedded store or on PostgreSQL (`--database-url`),
//! until SIGTERM or Ctrl-C. The data directory keeps the log's signing key and the witness
//! state whichever the store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use sequencer::Sequencer;
use server::AppState;
use store::Store;

use crate::DataArgs;

/// Threads serving HTTP; the ledger's sequencer and writer have threads of their own.
const HTTP_WORKER_THREADS: usize = 2;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Holds the log's signing key and the witness state; with the SQLite store, the ledger
    /// and the payment records too.
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    database: crate::backend::DatabaseArgs,
    /// Address to listen on (port 0: any free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// A witness that cosigns this log's checkpoints, as `<its witness key>@<its URL>`, e.g.
    /// `tally-witness-1a2b+89abcdef+BASE64@http://10.0.0.2:8080/v1/witness` (repeatable).
    #[arg(long = "witness", value_name = "KEY@URL")]
    witnesses: Vec<String>,
    /// Witness another institution's log: its verifier key (repeatable). Serves
    /// `POST /v1/witness/add-checkpoint`, cosigning with this node's witness key.
    #[arg(long = "witness-for", value_name = "LOG_KEY")]
    witness_for: Vec<String>,
    /// Seconds between two self-audits of the trust log.
    #[arg(long, default_value_t = server::workers::AUDIT_INTERVAL.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    audit_interval_seconds: u64,
}

/// How often the log looks for a new checkpoint to send to its witnesses.
/// How often the outbox is looked at for notifications due.
const NOTIFICATION_INTERVAL: Duration = Duration::from_millis(500);
/// How often the bank is asked about transfers it did not answer in time.
const BANK_RESOLVE_INTERVAL: Duration = Duration::from_secs(10);
/// How often unpaid orders past their expiry are closed.
const ORDER_EXPIRY_INTERVAL: Duration = Duration::from_secs(5);
const COSIGNING_INTERVAL: Duration = Duration::from_millis(500);

fn init_logging() {
    // TALLY_LOG=debug|info|warn|error; structured fields, one line per event.
    let level = std::env::var("TALLY_LOG")
        .ok()
        .and_then(|text| text.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async {
        match terminate.as_mut() {
            Some(signal) => {
                signal.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {},
        () = terminated => {},
    }
    tracing::info!("shutting down: no new connections; finishing requests in flight");
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging();
    let directory = args.data.directory();
    let store: Arc<dyn Store> = crate::backend::open_store(&directory, &args.database)?.into();
    let config = crate::sequencer_config(&directory)?;
    let verifier_key = config
        .log_signer
        .as_ref()
        .map(|signer| signer.verifier_key_text())
        .context("the log has no signing key")?;
    let targets = args
        .witnesses
        .iter()
        .map(|text| server::workers::WitnessTarget::parse(text))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| anyhow::anyhow!("--witness {error}"))?;
    let witness = if args.witness_for.is_empty() {
        None
    } else {
        let cosigner = crate::log::load_or_create_cosigner(&directory)?;
        let logs = args
            .witness_for
            .iter()
            .map(|key| {
                let name = key.split('+').next().unwrap_or_default().to_owned();
                witness::KnownLog {
                    origin: name,
                    verifier_key_text: key.clone(),
                }
            })
            .collect();
        tracing::info!(key = %cosigner.verifier_key_text(), "witnessing {} log(s)", args.witness_for.len());
        Some(Arc::new(
            witness::Witness::open(&directory.join("witness.sqlite"), cosigner, logs)
                .map_err(|error| anyhow::anyhow!("--witness-for: {error}"))?,
        ))
    };
    let sequencer = Sequencer::start(store.as_ref(), config)?;
    let metrics = server::workers::WorkerMetrics::new();
    let state =
        AppState::with_workers(store.clone(), sequencer.handle(), metrics.clone(), witness)?;
    let audit = server::workers::start_self_audit(
        store.clone(),
        server::workers::SelfAudit::resume(verifier_key, store.reader()?.as_mut()),
        metrics.clone(),
        Duration::from_secs(args.audit_interval_seconds),
    )?;
    let cosigning = if targets.is_empty() {
        None
    } else {
        Some(server::workers::start_cosigning(
            store.clone(),
            targets,
            metrics.clone(),
            COSIGNING_INTERVAL,
        )?)
    };
    let notifications = server::workers::start_notifications(
        store.clone(),
        metrics.clone(),
        NOTIFICATION_INTERVAL,
    )?;
    let payments = state.payments.clone();
    let cards = state.cards.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(HTTP_WORKER_THREADS)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        tracing::info!(
            %address,
            store = %crate::backend::describe(&directory, &args.database),
            data = %directory.display(),
            "listening"
        );
        println!("listening on http://{address}");
        let (stop_expiry, stopped) = tokio::sync::watch::channel(false);
        let expiry = tokio::spawn(server::workers::expire_orders(
            payments,
            metrics,
            ORDER_EXPIRY_INTERVAL,
            stopped.clone(),
        ));
        let resolver = tokio::spawn(server::workers::resolve_bank_transfers(
            cards,
            BANK_RESOLVE_INTERVAL,
            stopped,
        ));
        let served = server::serve(listener, state, shutdown_signal()).await;
        let _ = stop_expiry.send(true);
        let _ = expiry.await;
        let _ = resolver.await;
        served.context("serving HTTP")
    })?;
    drop(notifications);
    drop(cosigning);
    drop(audit);
    // Everything queued is committed and answered before the process ends.
    sequencer.shutdown();
    tracing::info!("stopped; the ledger is drained");
    Ok(())
}
