//! `tally serve`: the HTTP API on the embedded store, until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use sequencer::Sequencer;
use server::AppState;
use store::Store;
use store_sqlite::SqliteStore;

use crate::DataArgs;

/// Threads serving HTTP; the ledger's sequencer and writer have threads of their own.
const HTTP_WORKER_THREADS: usize = 2;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Address to listen on (port 0: any free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

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
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&directory)?);
    let sequencer = Sequencer::start(store.as_ref(), crate::sequencer_config(&directory)?)?;
    let state = AppState::new(store.clone(), sequencer.handle());
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
        tracing::info!(%address, backend = store.backend(), data = %directory.display(), "listening");
        println!("listening on http://{address}");
        server::serve(listener, state, shutdown_signal()).await.context("serving HTTP")
    })?;
    // Everything queued is committed and answered before the process ends.
    sequencer.shutdown();
    tracing::info!("stopped; the ledger is drained");
    Ok(())
}
