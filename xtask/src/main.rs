//! Project automation, run as `cargo xtask <command>` from anywhere in the repository.
//!
//! - `cargo xtask demo [ARGS]`: builds Tally and runs `tally demo` on the embedded store.
//! - `cargo xtask test`: the whole test suite, as CI and the README run it.
//! - `cargo xtask sim [--seed N] [--events M] [--batch-max B]`: the ledger simulator.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use ledger_sim::{Failure, Options, Report, Simulator, BATCH_EVENTS_MAX, BATCH_EVENTS_MAX_DEFAULT};

/// Events in a `cargo xtask sim` run unless `--events` says otherwise.
const SIM_EVENTS_DEFAULT: u64 = 100_000;
/// Batches of the simulator step in `cargo xtask test`: about 3 000 of up to the default size.
const TEST_SIM_BATCHES: u64 = 3_000;
const TEST_SIM_EVENTS: u64 = TEST_SIM_BATCHES * (BATCH_EVENTS_MAX_DEFAULT as u64 + 1) / 2;
/// How often the progress line is redrawn on a terminal.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  demo [ARGS]                                   build Tally and run `tally demo [ARGS]`
  test                                          the whole test suite (what CI runs)
  sim [--seed N] [--events M] [--batch-max B]   the ledger simulator
        --seed       seed of the workload (default: drawn from the clock)
        --events     events to apply (default: 100000)
        --batch-max  largest batch, 1 to ledger::BATCH_EVENTS_MAX (default: 200)";

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match run(&arguments) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(arguments: &[String]) -> Result<ExitCode> {
    let Some((command, rest)) = arguments.split_first() else {
        eprintln!("{USAGE}");
        return Ok(ExitCode::FAILURE);
    };
    match command.as_str() {
        "test" => {
            if !rest.is_empty() {
                bail!("`test` takes no arguments, got {rest:?}\n\n{USAGE}");
            }
            test()
        }
        "sim" => sim(&SimArguments::parse(rest)?),
        "demo" => demo(rest),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
}

/// The workspace root: the xtask crate lives in `<root>/xtask`.
fn workspace_root() -> PathBuf {
    let manifest_directory = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_directory
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// The cargo that runs us (`cargo xtask` sets `CARGO`), or the one on the `PATH`.
fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(workspace_root());
    command
}

fn demo(arguments: &[String]) -> Result<ExitCode> {
    let status = cargo()
        .args([
            "run",
            "--quiet",
            "--release",
            "--package",
            "tally",
            "--",
            "demo",
        ])
        .args(arguments)
        .status()
        .context("could not start cargo")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Installs a Debian package when its command is missing (CI starts from a bare machine).
fn ensure_installed(command: &str, package: &str) -> Result<()> {
    let present = Command::new(command)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if present {
        return Ok(());
    }
    println!("xtask test: installing {package} (needed for {command})");
    apt_install(package)
}

/// Whether the PostgreSQL server binaries (`initdb`, `postgres`) are where the store-postgres
/// test server looks for them: `pg_config --bindir`, Debian's `/usr/lib/postgresql/*/bin`, or
/// `PATH`.
fn postgres_server_installed() -> bool {
    let has_server = |directory: &Path| {
        directory.join("initdb").is_file() && directory.join("postgres").is_file()
    };
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .is_ok_and(|output| {
            output.status.success()
                && has_server(Path::new(String::from_utf8_lossy(&output.stdout).trim()))
        });
    let debian = std::fs::read_dir("/usr/lib/postgresql").is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|entry| has_server(&entry.path().join("bin")))
    });
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|directory| has_server(&directory)));
    from_pg_config || debian || on_path
}

/// The PostgreSQL server for the store-postgres tests, which start their own throwaway server
/// from these binaries (a missing binary fails those tests; it never skips them).
fn ensure_postgres_installed() -> Result<()> {
    if postgres_server_installed() {
        return Ok(());
    }
    println!("xtask test: installing postgresql (the store-postgres tests start their own server)");
    apt_install("postgresql")?;
    ensure!(
        postgres_server_installed(),
        "postgresql was installed but initdb and postgres are still not found"
    );
    Ok(())
}

/// Installs a Debian package with apt-get (through sudo unless root).
fn apt_install(package: &str) -> Result<()> {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0");
    let run = |arguments: &[&str]| -> Result<()> {
        let mut command = if is_root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        let status = command
            .args(arguments)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("could not run apt-get")?;
        ensure!(
            status.success(),
            "apt-get {} failed ({status})",
            arguments.join(" ")
        );
        Ok(())
    };
    run(&["update"])?;
    run(&["install", "-y", "--no-install-recommends", package])
        .with_context(|| format!("install {package} (Debian) and run again"))
}

/// The independent receipt verifier's own tests (Python, standard library only).
fn python_tests() -> Result<(u64, u64)> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/tlog-verify");
    let output = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s"])
        .arg(&directory)
        .output()
        .context("could not run python3")?;
    let report = String::from_utf8_lossy(&output.stderr);
    print!("{report}");
    let ran: u64 = report
        .lines()
        .find_map(|line| line.strip_prefix("Ran "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or(0);
    if output.status.success() && ran > 0 {
        Ok((ran, 0))
    } else {
        Ok((0, ran.max(1)))
    }
}

fn test() -> Result<ExitCode> {
    ensure_installed("python3", "python3")?;
    ensure_postgres_installed()?;

    let arguments = SimArguments {
        seed: random_seed(),
        events: TEST_SIM_EVENTS,
        batch_events_max: BATCH_EVENTS_MAX_DEFAULT,
    };
    println!(
        "xtask test: step 1/3: simulator, seed {} (~{TEST_SIM_BATCHES} batches); to repeat it: {}",
        arguments.seed,
        arguments.command()
    );
    let code = sim(&arguments)?;
    if code != ExitCode::SUCCESS {
        return Ok(code);
    }

    println!("xtask test: step 2/3: cargo test --workspace --all-targets");
    let mut child = cargo()
        .args(["test", "--workspace", "--all-targets"])
        .stdout(Stdio::piped())
        .spawn()
        .context("could not start cargo")?;
    // Pass the output through, adding up the test counts for one closing line.
    let mut passed = 1; // the simulator run above
    let mut failed = 0;
    let stdout = child.stdout.take().context("cargo's output")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's output")?;
        println!("{line}");
        if let Some(counts) = line.strip_prefix("test result: ") {
            passed += count_before(counts, " passed");
            failed += count_before(counts, " failed");
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    println!("xtask test: step 3/3: the independent receipt verifier (tools/tlog-verify)");
    let (python_passed, python_failed) = python_tests()?;
    passed += python_passed;
    failed += python_failed;
    println!("xtask test: {passed} passed, {failed} failed");
    if !status.success() {
        bail!("cargo test --workspace failed ({status})");
    }
    if python_failed > 0 {
        bail!("the independent verifier's tests failed");
    }
    Ok(ExitCode::SUCCESS)
}

/// In "ok. 12 passed; 0 failed; …", the number before `word`.
fn count_before(text: &str, word: &str) -> u64 {
    text.split(';')
        .find_map(|part| {
            part.trim()
                .trim_start_matches("ok. ")
                .trim_start_matches("FAILED. ")
                .strip_suffix(word.trim_start())
        })
        .and_then(|number| number.trim().parse().ok())
        .unwrap_or(0)
}

#[derive(Debug)]
struct SimArguments {
    seed: u64,
    events: u64,
    batch_events_max: usize,
}

impl SimArguments {
    fn parse(arguments: &[String]) -> Result<Self> {
        let mut seed = None;
        let mut events = SIM_EVENTS_DEFAULT;
        let mut batch_events_max = BATCH_EVENTS_MAX_DEFAULT;
        let mut remaining = arguments.iter();
        while let Some(flag) = remaining.next() {
            let (name, inline_value) = match flag.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (flag.as_str(), None),
            };
            let mut value = || -> Result<String> {
                match &inline_value {
                    Some(value) => Ok(value.clone()),
                    None => remaining
                        .next()
                        .cloned()
                        .with_context(|| format!("{name} needs a value")),
                }
            };
            match name {
                "--seed" => seed = Some(parse_number(name, &value()?)?),
                "--events" => events = parse_number(name, &value()?)?,
                "--batch-max" => {
                    let maximum = BATCH_EVENTS_MAX as u64;
                    let batch_max = parse_number(name, &value()?)?;
                    if !(1..=maximum).contains(&batch_max) {
                        bail!("--batch-max must be between 1 and {maximum}, got {batch_max}");
                    }
                    batch_events_max = batch_max as usize;
                }
                other => bail!("unknown option {other:?} for `sim`\n\n{USAGE}"),
            }
        }
        Ok(SimArguments {
            seed: seed.unwrap_or_else(random_seed),
            events,
            batch_events_max,
        })
    }

    /// The command that repeats this run exactly.
    fn command(&self) -> String {
        format!(
            "cargo xtask sim --seed {} --events {} --batch-max {}",
            self.seed, self.events, self.batch_events_max
        )
    }
}

fn parse_number(name: &str, text: &str) -> Result<u64> {
    let text = text.replace('_', "");
    text.parse()
        .with_context(|| format!("{name} wants a whole number, got {text:?}"))
}

/// A seed that differs between runs. Only the xtask reads the clock; the cores never do.
#[allow(clippy::disallowed_methods)]
fn random_seed() -> u64 {
    let nanoseconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let mixed =
        (nanoseconds as u64) ^ ((nanoseconds >> 64) as u64) ^ (u64::from(std::process::id()) << 32);
    // One splitmix64 round, so that runs a moment apart get unrelated seeds.
    let mut z = mixed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Timing the run for people; the simulator itself never reads the clock.
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

fn sim(arguments: &SimArguments) -> Result<ExitCode> {
    println!(
        "sim: seed {} ({} events, batches of 1 to {} events)",
        arguments.seed, arguments.events, arguments.batch_events_max
    );
    let options = Options {
        batch_events_max: arguments.batch_events_max,
    };
    let mut simulator = Simulator::new(arguments.seed, options);
    let started = now();
    let mut progress = Progress::new(started);
    let outcome = loop {
        let report = simulator.report();
        if report.events >= arguments.events {
            break simulator.harness().check_full_state();
        }
        progress.show(report, arguments.events);
        let events_left = usize::try_from(arguments.events - report.events).unwrap_or(usize::MAX);
        if let Err(failure) = simulator.step(events_left) {
            break Err(failure);
        }
    };
    progress.clear();
    let elapsed = started.elapsed();
    let report = simulator.report();
    match outcome {
        Ok(()) => {
            print_summary(report, elapsed);
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            print_failure(&failure, arguments, report);
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A progress line redrawn in place, on terminals only.
struct Progress {
    enabled: bool,
    shown_at: Instant,
}

impl Progress {
    fn new(started: Instant) -> Self {
        Progress {
            enabled: std::io::stderr().is_terminal(),
            shown_at: started,
        }
    }

    fn show(&mut self, report: &Report, events_total: u64) {
        if !self.enabled || self.shown_at.elapsed() < PROGRESS_INTERVAL {
            return;
        }
        self.shown_at = now();
        let percent = report.events * 100 / events_total.max(1);
        eprint!(
            "\rsim: {percent:>3}%  batch {}  events {}  transfers {}  expired {}",
            report.batches, report.events, report.transfers_committed, report.pendings_expired
        );
        let _ = std::io::stderr().flush();
    }

    fn clear(&self) {
        if self.enabled {
            eprint!("\r{:80}\r", "");
        }
    }
}

fn print_summary(report: &Report, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    println!(
        "sim: ok: seed {}, {} batches, {} events, {} accounts, {} transfers committed, {} pending \
         transfers expired, in {seconds:.2} s ({:.0} events/s)",
        report.seed,
        report.batches,
        report.events,
        report.accounts_created,
        report.transfers_committed,
        report.pendings_expired,
        report.events as f64 / seconds.max(1e-9)
    );
    print_histogram(report);
}

fn print_histogram(report: &Report) {
    println!("results:");
    for (result, count) in report.histogram() {
        let percent = count as f64 * 100.0 / report.events.max(1) as f64;
        println!(
            "  {:>2} {:<40} {count:>10} {percent:>6.2}%",
            result.code(),
            result.name()
        );
    }
}

fn print_failure(failure: &Failure, arguments: &SimArguments, report: &Report) {
    eprintln!();
    eprintln!("sim: FAILED");
    eprintln!("  seed:  {}", failure.seed);
    eprintln!(
        "  batch: {} (counted from 0; {} events applied before it)",
        failure.batch, report.events
    );
    eprintln!("{}", failure.description);
    eprintln!("to reproduce: {}", arguments.command());
}
