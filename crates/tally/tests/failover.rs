//! Fail-over on PostgreSQL, as an operator would live it: `tally bench push` writes transfers
//! through a multi-host URL to a primary with a synchronous standby; the primary is killed
//! with SIGKILL at a random moment (the standby having fallen behind just before:
//! only a synchronous standby keeps every acknowledged transfer then), the standby is promoted, the worker is started again on
//! the same URL, and every transfer it had acknowledged must be on the new primary, with a
//! ledger that still balances.

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

    // Under load: the worker runs until the primary goes away.
    let mut child = worker(&data, &url, &ack_file, "1", "0").spawn().unwrap();
    let started = Instant::now();
    while acknowledged_ids(&ack_file).is_empty() {
        assert!(
            started.elapsed() < WORKER_TIMEOUT,
            "the worker acknowledged nothing"
        );
        if child.try_wait().unwrap().is_some() {
            let output = child.wait_with_output().unwrap();
            panic!(
                "the worker exited early: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
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

    // The batch in flight is answered with an error: the worker stops, acknowledging nothing
    // more (its answers came only from commits the standby had confirmed).
    let output = wait_for(child, "after the primary was killed");
    assert!(
        !output.status.success(),
        "the worker kept going without a primary"
    );
    let acknowledged = acknowledged_ids(&ack_file);
    println!(
        "primary killed {kill_after:?} after the first acknowledgement, {} transfers \
         acknowledged; the worker said: {}",
        acknowledged.len(),
        String::from_utf8_lossy(&output.stderr).trim()
    );

    standby.promote().unwrap();

    // The same URL now leads to the new primary: the worker starts again and goes on.
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
        "the new primary acknowledged nothing"
    );

    let store = PostgresStore::open_existing(&standby.url(&database)).unwrap();
    let mut reader = store.reader().unwrap();
    let mut found = Vec::new();
    reader.load_transfers(&acknowledged, &mut found).unwrap();
    assert_eq!(
        found.len(),
        acknowledged.len(),
        "an acknowledged transfer is missing after the fail-over (killed {kill_after:?} after \
         the first acknowledgement)"
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
