//! `tally serve`: the HTTP API on the embedded store or on PostgreSQL (`--database-url`),
//! until SIGTERM or Ctrl-C. The data directory keeps the log's signing key and the witness
//! state whichever the store.

use std::net::SocketAddr;
use std::path::PathBuf;
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
    /// A TOML configuration file (see `crates/tally/src/config.rs`): flags and `TALLY_…`
    /// environment variables win over it.
    #[arg(long, value_name = "FILE", env = "TALLY_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (port 0: any free port; the chosen address is printed).
    /// Default 127.0.0.1:8080.
    #[arg(long, env = "TALLY_LISTEN")]
    listen: Option<SocketAddr>,
    /// A witness that cosigns this log's checkpoints, as `<its witness key>@<its URL>`, e.g.
    /// `tally-witness-1a2b+89abcdef+BASE64@http://10.0.0.2:8080/v1/witness` (repeatable).
    #[arg(long = "witness", value_name = "KEY@URL")]
    witnesses: Vec<String>,
    /// Witness another institution's log: its verifier key (repeatable). Serves
    /// `POST /v1/witness/add-checkpoint`, cosigning with this node's witness key.
    #[arg(long = "witness-for", value_name = "LOG_KEY")]
    witness_for: Vec<String>,
    /// This node's number, 0 to 15, when several nodes serve one PostgreSQL database: each
    /// needs its own (ids drawn on two nodes never collide). Default 0.
    #[arg(long, env = "TALLY_NODE", value_parser = clap::value_parser!(u64).range(0..16))]
    node: Option<u64>,
    /// Seconds between two self-audits of the trust log (default 600).
    #[arg(long, env = "TALLY_AUDIT_INTERVAL_SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    audit_interval_seconds: Option<u64>,
}

/// Address `tally serve` listens on unless told otherwise.
const LISTEN_DEFAULT: &str = "127.0.0.1:8080";

/// How often the outbox is looked at for notifications due.
const NOTIFICATION_INTERVAL: Duration = Duration::from_millis(500);
/// How often the bank is asked about transfers it did not answer in time.
const BANK_RESOLVE_INTERVAL: Duration = Duration::from_secs(10);
/// How often the billers are asked about payments they did not answer in time.
const BILL_RESOLVE_INTERVAL: Duration = Duration::from_secs(10);
/// How often unpaid orders past their expiry are closed.
const ORDER_EXPIRY_INTERVAL: Duration = Duration::from_secs(5);
/// How often the log looks for a new checkpoint to send to its witnesses.
const COSIGNING_INTERVAL: Duration = Duration::from_millis(500);

pub fn init_logging() {
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

pub fn run(mut args: ServeArgs) -> anyhow::Result<()> {
    init_logging();
    let file = match &args.config {
        Some(path) => crate::config::FileConfig::load(path)?,
        None => crate::config::FileConfig::default(),
    };
    let services = file.services()?;
    if args.data.data.is_none() && std::env::var_os("TALLY_DATA").is_none() {
        args.data.data.clone_from(&file.data);
    }
    let listen = match args.listen.or(file.listen) {
        Some(listen) => listen,
        None => LISTEN_DEFAULT.parse().expect("a valid address"),
    };
    let audit_interval_seconds = args
        .audit_interval_seconds
        .or(file.audit_interval_seconds)
        .unwrap_or(server::workers::AUDIT_INTERVAL.as_secs());
    anyhow::ensure!(
        audit_interval_seconds > 0,
        "audit_interval_seconds must be positive"
    );
    if args.database.database_url.is_none() {
        args.database.database_url.clone_from(&file.database_url);
    }
    if args.witnesses.is_empty() {
        args.witnesses.clone_from(&file.witnesses);
    }
    if args.witness_for.is_empty() {
        args.witness_for.clone_from(&file.witness_for);
    }
    let node = args.node.or(file.node).unwrap_or(0);
    services::ids::set_node(node).map_err(|error| anyhow::anyhow!("node: {error}"))?;
    let directory = args.data.directory();
    let store: Arc<dyn Store> = crate::backend::open_store(&directory, &args.database)?.into();
    // Two nodes with one number would draw the same ids: the number's lock, held for as long
    // as this process runs, refuses the second.
    let _node_lock = match store.shared_locks()? {
        Some(mut locks) => {
            anyhow::ensure!(
                locks.try_lock(services::support::NODE_LOCK_CLASS, i32::try_from(node)?)?,
                "node {node} already serves this database: give each node its own --node (0 to 15)"
            );
            Some(locks)
        }
        None => None,
    };
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
    let state = AppState::with_config(
        store.clone(),
        sequencer.handle(),
        metrics.clone(),
        witness,
        services,
    )?;
    let audit = server::workers::start_self_audit(
        store.clone(),
        server::workers::SelfAudit::resume(verifier_key, store.reader()?.as_mut()),
        metrics.clone(),
        Duration::from_secs(audit_interval_seconds),
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
    let bill_payments = state.payments.clone();
    let cards = state.cards.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(HTTP_WORKER_THREADS)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {}", listen))?;
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
            stopped.clone(),
        ));
        let bill_resolver = tokio::spawn(server::workers::resolve_bill_payments(
            bill_payments,
            BILL_RESOLVE_INTERVAL,
            stopped,
        ));
        let served = server::serve(listener, state, shutdown_signal()).await;
        let _ = stop_expiry.send(true);
        let _ = expiry.await;
        let _ = resolver.await;
        let _ = bill_resolver.await;
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
