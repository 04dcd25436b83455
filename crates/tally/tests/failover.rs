//! Fail-over on PostgreSQL, as an operator would live it: `tally bench push` writes transfers
//! through a multi-host URL to a primary with a synchronous standby; the primary is killed
//! with SIGKILL at a random moment (the standby having fallen behind just before: only a
//! synchronous standby keeps every acknowledged transfer then) and the standby is promoted.
//! The running worker must carry on by itself on the new primary, a worker started again on
//! the same URL too, and every transfer acknowledged must be on the new primary, with a ledger
//! that still balances and passes `tally verify`.

// Tests drive real time and processes.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use store::{InvariantReport, Store};
use store_postgres::test_server::TestServer;
use store_postgres::PostgresStore;

const STANDBY_NAME: &str = "tally_standby";
/// Accounts the worker moves money between.
const ACCOUNTS: &str = "40";
/// How long the standby receives nothing before the primary is killed.
const STANDBY_STALL: Duration = Duration::from_millis(300);
/// How long the worker may take to acknowledge its first transfer, or to stop.
const WORKER_TIMEOUT: Duration = Duration::from_secs(60);

fn acknowledged_ids(ack_file: &Path) -> Vec<u128> {
    let text = std::fs::read_to_string(ack_file).unwrap_or_default();
    // The last line may have been cut by the kill; only complete lines count.
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    complete
        .lines()
        .map(|line| line.parse().expect("an id per line"))
        .collect()
}

fn worker(data: &Path, url: &str, ack_file: &Path, seed: &str, requests: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tally"));
    command
        .args(["bench", "push", "--accounts", ACCOUNTS, "--seed", seed])
        .args(["--requests", requests])
        .arg("--data")
        .arg(data)
        .arg("--database-url")
        .arg(url)
        .arg("--ack-file")
        .arg(ack_file)
        .env_remove("TALLY_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// A running worker, killed when dropped: a failing assertion leaves no worker behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for the worker to end by itself.
fn wait_for(mut child: Child, what: &str) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > WORKER_TIMEOUT {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{what}: the worker did not stop within {WORKER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn acknowledged_transfers_survive_the_loss_of_the_primary() {
    let primary = TestServer::start().unwrap();
    let standby = primary.add_synchronous_standby(STANDBY_NAME).unwrap();
    let database_url = primary.create_database().unwrap();
    let database = database_url.rsplit('/').next().unwrap().to_owned();
    let url = format!(
        "postgres://tally@127.0.0.1:{},127.0.0.1:{}/{database}?target_session_attrs=read-write",
        primary.port(),
        standby.port()
    );
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let ack_file = directory.path().join("acks.txt");
    let kill_after = Duration::from_millis(
        u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos(),
        ) % 700,
    );

    // Under load: a worker that keeps going when a batch fails, as a server does.
    let worker_log = directory.path().join("worker.log");
    let mut running = Running(
        worker(&data, &url, &ack_file, "1", "0")
            .arg("--keep-going")
            .stderr(std::fs::File::create(&worker_log).unwrap())
            .spawn()
            .unwrap(),
    );
    let child = &mut running.0;
    let worker_said = || std::fs::read_to_string(&worker_log).unwrap_or_default();
    let started = Instant::now();
    while acknowledged_ids(&ack_file).is_empty() {
        assert!(
            started.elapsed() < WORKER_TIMEOUT,
            "the worker acknowledged nothing"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the worker exited early: {}",
            worker_said()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(kill_after);
    // The standby falls behind just before the primary dies: it receives nothing more, and
    // loses what it had received but not written. A synchronous primary acknowledges nothing
    // meanwhile (its commits wait for the standby's disk); an asynchronous one would go on, and
    // what it acknowledged would be missing after the fail-over.
    let stalled = standby.stall_wal_receiver().unwrap();
    std::thread::sleep(STANDBY_STALL);
    primary.kill().unwrap();
    drop(stalled);
    let acknowledged_at_kill = acknowledged_ids(&ack_file).len();

    standby.promote().unwrap();

    // The running worker carries on by itself on the new primary, through the same URL.
    let acknowledged_at_promotion = acknowledged_ids(&ack_file).len();
    let promoted = Instant::now();
    while acknowledged_ids(&ack_file).len() <= acknowledged_at_promotion {
        assert!(
            promoted.elapsed() < WORKER_TIMEOUT,
            "the running worker acknowledged nothing on the new primary: {}",
            worker_said()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the worker stopped: {}",
            worker_said()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(running); // SIGKILL
                   // The batch in flight when the primary died was answered with an error.
    assert!(
        worker_said().contains("batch failed, not acknowledged"),
        "no batch failed when the primary was killed: {}",
        worker_said()
    );
    println!(
        "primary killed {kill_after:?} after the first acknowledgement, {acknowledged_at_kill} \
         transfers acknowledged; the worker said: {}",
        worker_said().lines().next().unwrap_or_default()
    );

    // A worker started again on the same URL goes on too.
    let acknowledged = acknowledged_ids(&ack_file);
    let output = wait_for(
        worker(&data, &url, &ack_file, "2", "30").spawn().unwrap(),
        "after the promotion",
    );
    assert!(
        output.status.success(),
        "the worker failed on the new primary: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let acknowledged_after = acknowledged_ids(&ack_file);
    assert!(
        acknowledged_after.len() > acknowledged.len(),
        "the restarted worker acknowledged nothing"
    );

    let store = PostgresStore::open_existing(&standby.url(&database)).unwrap();
    let mut reader = store.reader().unwrap();
    let mut found = Vec::new();
    reader.load_transfers(&acknowledged, &mut found).unwrap();
    assert_eq!(
        found.len(),
        acknowledged.len(),
        "an acknowledged transfer is missing after the fail-over (primary killed {kill_after:?} \
         after the first acknowledgement)"
    );
    let mut found = Vec::new();
    reader
        .load_transfers(&acknowledged_after, &mut found)
        .unwrap();
    assert_eq!(found.len(), acknowledged_after.len());
    let report = InvariantReport::check(reader.as_mut()).unwrap();
    assert!(
        report.holds(),
        "invariants broken on the new primary: {report:?}"
    );
    drop(reader);
    drop(store);

    // What an operator runs after a fail-over: `tally verify` on the new primary.
    let verified = Command::new(env!("CARGO_BIN_EXE_tally"))
        .arg("verify")
        .arg("--data")
        .arg(&data)
        .arg("--database-url")
        .arg(&url)
        .env_remove("TALLY_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "tally verify on the new primary: {}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
}
