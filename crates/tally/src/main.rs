//! `tally`: the command-line face of Tally.

// An edge of the system: it may read the clock and wait (see clippy.toml).
#![allow(clippy::disallowed_methods)]

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod admin;
mod backend;
mod bench;
mod bench_api;
mod bench_envelopes;
mod bench_qr;
mod bench_receipts;
mod code128;
mod config;
mod demo;
mod demo_api;
mod log;
mod progress;
mod push;
mod qr;
mod qr_render;
mod serve;
mod sql;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tally",
    version,
    about = "Tally: a self-hostable mobile payment platform on an auditable ledger"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Seed a small world on a fresh embedded store and tell its story step by step.
    Demo(demo::DemoArgs),
    /// Serve the HTTP API (health, readiness, metrics) on the embedded store.
    Serve(serve::ServeArgs),
    /// Run one read-only SQL query over the store.
    Sql(sql::SqlArgs),
    /// Check the ledger on disk: balances against transfers, invariants, the history index.
    Verify(verify::VerifyArgs),
    /// The trust log: the operator's key, receipts, offline verification.
    #[command(subcommand)]
    Log(log::LogCommand),
    /// Measure the ledger.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Payment codes: decode what a wallet scans, encode EMVCo merchant codes.
    #[command(subcommand)]
    Qr(qr::QrCommand),
    /// Print the HTTP API's OpenAPI 3.1 document (or, with --markdown, its reference).
    Openapi(OpenapiArgs),
    /// Operator tasks: API credentials.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
}

#[derive(Debug, Args)]
struct OpenapiArgs {
    /// The reference in Markdown (docs/api.md) instead of the JSON document.
    #[arg(long)]
    markdown: bool,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Push transfers through the same sequencer and store the server uses, durably.
    Ledger(bench::LedgerArgs),
    /// Create and pay merchant orders through the HTTP API on loopback, and time them.
    Api(bench_api::ApiArgs),
    /// Send red envelopes and grab every packet at once through the services and the ledger,
    /// durably, and time the grabs.
    RedEnvelopes(bench_envelopes::EnvelopesArgs),
    /// Decode QR payloads and check payment codes on one core, and time them.
    Qr(bench_qr::QrArgs),
    /// Build receipts for random transfers of an existing store and time each.
    Receipts(bench_receipts::ReceiptsArgs),
    /// Push transfers until stopped, appending each acknowledged transfer id to a file
    /// (used by the crash tests).
    #[command(hide = true)]
    Push(push::PushArgs),
}

/// Where the embedded store lives.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// The data directory (default: $TALLY_DATA, or ./tally-data).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

impl DataArgs {
    pub fn directory(&self) -> PathBuf {
        self.data
            .clone()
            .or_else(|| std::env::var_os("TALLY_DATA").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("tally-data"))
    }
}

/// The sequencer's configuration for a store in `directory`: the operator's log key, created
/// there on first use.
pub fn sequencer_config(directory: &std::path::Path) -> anyhow::Result<sequencer::SequencerConfig> {
    let signer = log::load_or_create_signer(directory)?;
    Ok(sequencer::SequencerConfig {
        log_signer: Some(std::sync::Arc::new(signer)),
        ..sequencer::SequencerConfig::default()
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Sql(args) => sql::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Log(command) => log::run(command),
        Command::Admin(command) => admin::run(command),
        Command::Qr(command) => qr::run(command),
        Command::Openapi(args) => {
            if args.markdown {
                print!("{}", server::api::markdown());
            } else {
                println!("{:#}", server::api::document());
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Ledger(args)) => bench::run(args),
        Command::Bench(BenchCommand::Receipts(args)) => bench_receipts::run(args),
        Command::Bench(BenchCommand::Api(args)) => bench_api::run(args),
        Command::Bench(BenchCommand::Qr(args)) => bench_qr::run(args),
        Command::Bench(BenchCommand::RedEnvelopes(args)) => bench_envelopes::run(args),
        Command::Bench(BenchCommand::Push(args)) => push::run(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
