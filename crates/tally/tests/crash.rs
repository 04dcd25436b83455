//! Kill a process that is committing transfers with SIGKILL at random moments, restart it, and

// Tests drive real time and processes.
#![allow(clippy::disallowed_methods)]
//! check that every transfer it had acknowledged is on disk and the ledger still balances.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use store::{InvariantReport, Store};
use store_sqlite::SqliteStore;

const ROUNDS: usize = 5;

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

/// A small deterministic generator, seeded from the clock so every run kills at other moments.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn acknowledged_transfers_survive_sigkill() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let ack_file = directory.path().join("acks.txt");
    let mut seed = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos(),
    ) | 1;
    println!("kill-point seed {seed}");
    let mut acknowledged_before = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
            .args([
                "bench",
                "push",
                "--accounts",
                "40",
                "--seed",
                &round.to_string(),
            ])
            .arg("--data")
            .arg(&data)
            .arg("--ack-file")
            .arg(&ack_file)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        // Let it commit something first, then kill it at a random moment.
        let started = Instant::now();
        while acknowledged_ids(&ack_file).len() <= acknowledged_before {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the worker acknowledged nothing"
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "the worker exited early"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let kill_after = Duration::from_millis(next_random(&mut seed) % 700);
        std::thread::sleep(kill_after);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let acknowledged = acknowledged_ids(&ack_file);
        assert!(acknowledged.len() > acknowledged_before);
        acknowledged_before = acknowledged.len();
        let store = SqliteStore::open(&data).unwrap();
        let mut reader = store.reader().unwrap();
        let mut found = Vec::new();
        reader.load_transfers(&acknowledged, &mut found).unwrap();
        assert_eq!(
            found.len(),
            acknowledged.len(),
            "round {round} (killed {kill_after:?} after its first acknowledgement): an acknowledged transfer is missing"
        );
        let report = InvariantReport::check(reader.as_mut()).unwrap();
        assert!(
            report.holds(),
            "round {round}: invariants broken after the crash: {report:?}"
        );
        let head = reader.head().unwrap();
        assert!(head.transfer_id_max >= *acknowledged.iter().max().unwrap());
    }
    // The history index, repaired when a writer starts, holds every committed transfer twice
    // (its debit and its credit) and nothing else.
    let store = SqliteStore::open(&data).unwrap();
    drop(store.writer().unwrap());
    let connection = store.read_only_connection().unwrap();
    let query = "SELECT (SELECT count(*) FROM account_history),
                        (SELECT 2 * count(*) FROM transfers),
                        (SELECT count(*) FROM account_history h JOIN transfers t ON t.id = h.transfer_id
                          WHERE h.account_id IN (t.debit_account_id, t.credit_account_id))";
    let output = store_sqlite::query_read_only(
        &connection,
        query,
        store::QueryLimits {
            rows_max: 10_000_000,
            time_max: None,
        },
    )
    .unwrap();
    let row = &output.rows[0];
    assert_eq!(row[0], row[1], "history entries vs. twice the transfers");
    assert_eq!(
        row[0], row[2],
        "every history entry names a transfer of its account"
    );
}
