//! The `tally` command as a person uses it: exit codes, messages, and what ends up on disk.

// Tests drive real processes and time.
#![allow(clippy::disallowed_methods)]

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::{http, Serving};

fn tally(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(arguments)
        .output()
        .unwrap()
}

/// `tally log verify-receipt FILE --vkey KEY`.
fn verify_receipt(file: &str, verifier_key: &str) -> Output {
    tally(&["log", "verify-receipt", file, "--vkey", verifier_key])
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn demo(directory: &Path) -> Output {
    tally(&["demo", "--data", directory.to_str().unwrap()])
}

#[test]
fn the_demo_tells_its_story_and_the_ledger_balances() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("demo");
    let output = demo(&data);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    for expected in [
        "Alice 461.50 CNY, Noodle Bar 38.27 CNY, platform fees 0.23 CNY",
        "Dana 905.00 CNY, Book Corner 95.00 CNY",
        "a late attempt to capture it is refused: pending_expired",
        "refused: exceeds_credits; nothing moved.",
        "answers: exists, exists",
        "NOTPAY → SUCCESS, merchant fee 0.23 CNY",
        "paying again: 422 order_paid",
        "order.paid (sequence 2) — signature verified ✓",
        "refund.succeeded (sequence 3) — signature verified ✓",
        // Li Lei's balance depends on the lucky envelope's random packets.
        "Han Meimei 7.00 CNY, Lanzhou Noodles 164.00 CNY",
        "grabbing twice: 409 already_grabbed",
        "1 envelope closed (0 on the next run)",
        "→ released: 88.00 CNY to Lanzhou Noodles, less its fee",
        "disputed → refunded by key_1: 20.00 CNY back to Li Lei",
        "total_net,7,,,,,,,184.00,CNY",
        "scan: active — Lanzhou Noodles in Lanzhou, amount: to be entered",
        "scanning it again: 422 code_used",
        "the same code at another till: payment_code_used",
        "scan: unknown — This network never issued this code",
        "1002 0304 06: 422 check_digit_mismatch",
        "1002 0304 09: L* L**, 128.80 CNY due by",
        "succeeded: 128.80 CNY to Capital Power, confirmation SB",
        "20.00 CNY: 422 denomination_not_offered",
        "his bill payments: Skyline Mobile 50.00 CNY, Capital Power 128.80 CNY",
        "28.30 CNY + tax 1.70 CNY = 30.00 CNY, registered as reg_",
        "verify: registered, issued",
        "the altered copy: registered false",
        "second claim: 409 invoice_already_reimbursed",
        "voiding it now: 409 invoice_reimbursed",
        "the invariants hold",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // What the story did is on disk, for SQL.
    let data_text = data.to_str().unwrap();
    let sums = tally(&[
        "sql",
        "--data",
        data_text,
        "--json",
        "SELECT sum(debits_posted) AS debits, sum(credits_posted) AS credits FROM accounts",
    ]);
    assert!(sums.status.success(), "{}", text(&sums.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&sums.stdout).unwrap();
    assert_eq!(rows[0]["debits"], rows[0]["credits"]);
    assert_eq!(rows[0]["debits"], serde_json::json!(309_357));
    // A second demo into the same directory is refused rather than mixed in.
    let again = demo(&data);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("already holds a store"));
}

#[test]
fn sql_prints_tables_csv_and_json_and_refuses_writes() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("demo");
    assert!(demo(&data).status.success());
    let data_text = data.to_str().unwrap();

    let table = tally(&[
        "sql",
        "--data",
        data_text,
        "SELECT id, currency FROM accounts WHERE id <= 2 ORDER BY id",
    ]);
    assert_eq!(
        text(&table.stdout),
        "id | currency\n---+---------\n 1 | CNY     \n 2 | CNY     \n(2 rows)\n"
    );

    let csv = tally(&[
        "sql",
        "--data",
        data_text,
        "--csv",
        "SELECT id, status FROM pending_transfers ORDER BY id",
    ]);
    let csv_text = text(&csv.stdout);
    assert!(csv_text.starts_with("id,status\n"), "{csv_text}");
    assert!(
        csv_text.contains(",posted\n") && csv_text.contains(",expired\n"),
        "{csv_text}"
    );

    let before = tally(&[
        "sql",
        "--data",
        data_text,
        "--json",
        "SELECT count(*) AS n FROM transfers",
    ]);
    for statement in [
        "DELETE FROM transfers",
        "UPDATE accounts SET credits_posted = 0",
        "PRAGMA query_only = 0",
        "DROP TABLE accounts",
    ] {
        let refused = tally(&["sql", "--data", data_text, statement]);
        assert_eq!(refused.status.code(), Some(2), "{statement}");
        assert!(
            text(&refused.stderr).contains("read-only"),
            "{statement}: {}",
            text(&refused.stderr)
        );
    }
    let after = tally(&[
        "sql",
        "--data",
        data_text,
        "--json",
        "SELECT count(*) AS n FROM transfers",
    ]);
    assert_eq!(
        before.stdout, after.stdout,
        "a refused statement changed nothing"
    );

    let bad = tally(&["sql", "--data", data_text, "SELEC 1"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("syntax error"));
    let missing = tally(&[
        "sql",
        "--data",
        directory.path().join("nowhere").to_str().unwrap(),
        "SELECT 1",
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("no Tally store"));
}

#[test]
fn bench_red_envelopes_grabs_every_packet_once_and_balances() {
    let output = tally(&[
        "bench",
        "red-envelopes",
        "--users",
        "60",
        "--envelopes",
        "30",
        "--packets",
        "20",
        "--json",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["grabs"], 600, "{report}");
    assert_eq!(report["refused"], 0);
    assert_eq!(report["balanced"], true);
    assert_eq!(report["red_envelope_account_left"], 0);
    assert_eq!(report["amount_grabbed"], report["amount_sent"]);
    assert!(report["grabs_per_second"].as_f64().unwrap() > 0.0);
    let refused = tally(&["bench", "red-envelopes", "--packets", "0"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
}

#[test]
fn bench_qr_decodes_and_checks_payment_codes_of_enrolled_devices() {
    let output = tally(&[
        "bench",
        "qr",
        "--decodes",
        "2000",
        "--codes",
        "500",
        "--devices",
        "50",
        "--runs",
        "2",
        "--json",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for figure in [
        "mpm_decodes_per_second",
        "decode_any_per_second",
        "payment_code_macs_per_second",
        "payment_code_verifications_per_second",
    ] {
        assert!(report[figure].as_f64().unwrap() > 0.0, "{figure}: {report}");
    }
    assert_eq!(report["devices"], 50);
    let refused = tally(&["bench", "qr", "--devices", "0"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("--devices"));
}

#[test]
fn bench_reports_json_and_refuses_bad_arguments() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("bench");
    let output = tally(&[
        "bench",
        "ledger",
        "--data",
        data.to_str().unwrap(),
        "--transfers",
        "20000",
        "--accounts",
        "100",
        "--pending-percent",
        "20",
        "--json",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(report["transfers"].as_u64().unwrap() >= 20_000);
    assert_eq!(report["accounts"], 100);
    assert_eq!(report["backend"], "sqlite");
    assert_eq!(report["invariants_hold"], true);
    assert_eq!(report["rejected"], 0);
    assert!(report["transfers_per_second"].as_f64().unwrap() > 0.0);
    assert!(report["peak_rss_bytes"].as_u64().unwrap() > 0);
    let latency = &report["batch_latency_ms"];
    assert!(latency["p50"].as_f64().unwrap() <= latency["p99"].as_f64().unwrap());
    assert!(latency["p99"].as_f64().unwrap() <= latency["p100"].as_f64().unwrap());
    // Everything it reported is on disk.
    let count = tally(&[
        "sql",
        "--data",
        data.to_str().unwrap(),
        "--csv",
        "SELECT count(*) FROM transfers",
    ]);
    assert_eq!(
        text(&count.stdout).lines().nth(1).unwrap(),
        report["transfers"].to_string()
    );
    // Receipts for random leaves of that store, each one built from the stored tiles. The
    // store is also a sound one: `verify` says so, and the self-audit's ranges read back.
    let receipts = tally(&[
        "bench",
        "receipts",
        "--data",
        data.to_str().unwrap(),
        "--samples",
        "200",
        "--json",
    ]);
    assert!(receipts.status.success(), "{}", text(&receipts.stderr));
    let report: serde_json::Value = serde_json::from_slice(&receipts.stdout).unwrap();
    assert_eq!(report["samples"], 200);
    assert!(report["leaves"].as_u64().unwrap() >= 20_000);
    let latency = &report["latency_ms"];
    assert!(latency["p50"].as_f64().unwrap() <= latency["p99"].as_f64().unwrap());
    let verified = tally(&["verify", "--data", data.to_str().unwrap(), "--json"]);
    assert!(verified.status.success(), "{}", text(&verified.stderr));
    let verified: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(verified["ok"], true);
    assert!(verified["leaves"].as_u64().unwrap() >= 20_000);
    // Running it again on the same store is refused: it needs a fresh one.
    let again = tally(&[
        "bench",
        "ledger",
        "--data",
        data.to_str().unwrap(),
        "--transfers",
        "10",
    ]);
    assert_eq!(again.status.code(), Some(2));

    for arguments in [
        &["bench", "ledger", "--transfers", "0"][..],
        &["bench", "ledger", "--accounts", "1"],
        &["bench", "ledger", "--batch", "9000"],
        &["bench", "ledger", "--pending-percent", "80"],
        &[
            "bench",
            "ledger",
            "--accounts",
            "10",
            "--hot-accounts",
            "10",
        ],
        &["bench", "ledger", "--transfers", "many"],
    ] {
        let refused = tally(arguments);
        assert_ne!(refused.status.code(), Some(0), "{arguments:?}");
        assert!(!refused.stderr.is_empty(), "{arguments:?} says why");
    }
}

#[test]
fn serve_answers_and_stops_cleanly_on_sigterm() {
    use std::io::{BufRead, BufReader, Read, Write};
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("serve");
    // A configuration file that does not parse is refused, naming the file.
    let broken = directory.path().join("broken.toml");
    std::fs::write(&broken, "listen = \"127.0.0.1:0\"\nunknown = 1\n").unwrap();
    let refused = tally(&["serve", "--config", broken.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("broken.toml"),
        "{}",
        text(&refused.stderr)
    );
    // The address and the data directory come from the file.
    let config = directory.path().join("tally.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata = {:?}\n[users]\npayment_attempts_max = 3\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let address = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: tally\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""status":"ready""#), "{response}");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(status.success(), "exit {status:?}\n{log}");
    assert!(log.contains("the ledger is drained"), "{log}");
}

#[test]
fn verify_passes_a_sound_ledger_and_names_each_kind_of_tampering() {
    let directory = tempfile::tempdir().unwrap();
    let pristine = directory.path().join("pristine");
    assert!(demo(&pristine).status.success());
    let sound = tally(&["verify", "--data", pristine.to_str().unwrap()]);
    assert!(
        sound.status.success(),
        "{}{}",
        text(&sound.stdout),
        text(&sound.stderr)
    );
    assert!(text(&sound.stdout).contains("everything holds"));
    let report = tally(&["verify", "--data", pristine.to_str().unwrap(), "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["ok"], true);

    let tamperings = [
        ("a changed amount", "UPDATE transfers SET amount = amount + 1 WHERE id = 2", "every balance equals the sum of its transfers"),
        ("a deleted transfer", "DELETE FROM transfers WHERE id = 3", "every balance equals the sum of its transfers"),
        (
            "an inserted transfer",
            "INSERT INTO transfers SELECT id + 1000, debit_account_id, credit_account_id, amount, currency, pending_id, user_data, timeout_seconds, kind, flags, timestamp + 1, leaf_index + 1000 FROM transfers WHERE id = 4",
            "every balance equals the sum of its transfers",
        ),
        ("a changed balance", "UPDATE accounts SET credits_posted = credits_posted + 500 WHERE id = 1001", "per currency, debits equal credits"),
        ("an account taken out of what is owed", "UPDATE accounts SET kind = 99 WHERE id = 101", "the customer reserve equals what is owed"),
        ("a moved transfer", "UPDATE transfers SET credit_account_id = 999 WHERE id = 5", "every transfer names existing accounts of its currency"),
        ("a rewritten checkpoint", "UPDATE log_checkpoints SET root = zeroblob(32)", "every checkpoint is signed and matches the transfers"),
        ("a changed deposit", "UPDATE registrations SET digest = zeroblob(32)", "the stored tree matches the transfers and registrations"),
        ("a deleted deposit", "PRAGMA foreign_keys = OFF; DELETE FROM registrations", "has no transfer or registration"),
        ("a rewritten tile", "UPDATE log_tiles SET hashes = zeroblob(length(hashes)) WHERE level = 0", "the stored tree matches the transfers"),
        (
            "a transfer and its balances rewritten together",
            "UPDATE transfers SET amount = amount + 7 WHERE id = 4; UPDATE accounts SET debits_posted = debits_posted + 7 WHERE id = 1; UPDATE accounts SET credits_posted = credits_posted + 7 WHERE id = 1004",
            "the stored tree matches the transfers",
        ),
    ];
    for (what, statement, broken_check) in tamperings {
        let copy = directory.path().join(what.replace(' ', "-"));
        std::fs::create_dir_all(&copy).unwrap();
        for file in ["tally.sqlite", "tally-history.sqlite"] {
            std::fs::copy(pristine.join(file), copy.join(file)).unwrap();
        }
        let connection = rusqlite::Connection::open(copy.join("tally.sqlite")).unwrap();
        connection.execute_batch(statement).unwrap();
        drop(connection);
        let output = tally(&["verify", "--data", copy.to_str().unwrap()]);
        assert_ne!(output.status.code(), Some(0), "{what} went unnoticed");
        let message = text(&output.stderr);
        assert!(message.contains(broken_check), "{what}: {message}");
    }
}

#[test]
fn receipts_verify_offline_and_tampered_ones_do_not() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("demo");
    let story = demo(&data);
    assert!(story.status.success(), "{}", text(&story.stderr));
    assert!(
        text(&story.stdout).contains("✓ receipt verifies: transfer"),
        "{}",
        text(&story.stdout)
    );
    let data_text = data.to_str().unwrap();
    let key = tally(&["log", "key", "--data", data_text]);
    assert!(key.status.success());
    let verifier_key = text(&key.stdout).trim().to_owned();
    assert!(
        verifier_key.starts_with("tally-log-") && verifier_key.splitn(3, '+').count() == 3,
        "{verifier_key}"
    );
    let receipt = tally(&["log", "receipt", "--data", data_text, "3"]);
    assert!(receipt.status.success(), "{}", text(&receipt.stderr));
    let file = directory.path().join("receipt.json");
    std::fs::write(&file, &receipt.stdout).unwrap();
    let verified = verify_receipt(file.to_str().unwrap(), &verifier_key);
    assert!(verified.status.success(), "{}", text(&verified.stderr));
    assert!(
        text(&verified.stdout).contains("transfer 3 (75.00 CNY from account 1 to account 1003)")
    );

    // Another amount in the leaf, another key: both refused.
    let mut json: serde_json::Value = serde_json::from_slice(&receipt.stdout).unwrap();
    let leaf = json["leaf"].as_str().unwrap().to_owned();
    let mut forged = leaf.clone().into_bytes();
    forged[70] = if forged[70] == b'A' { b'B' } else { b'A' };
    json["leaf"] = serde_json::Value::from(String::from_utf8(forged).unwrap());
    std::fs::write(&file, json.to_string()).unwrap();
    let refused = verify_receipt(file.to_str().unwrap(), &verifier_key);
    assert_ne!(refused.status.code(), Some(0));
    assert!(
        text(&refused.stderr).contains("does not verify"),
        "{}",
        text(&refused.stderr)
    );
    json["leaf"] = serde_json::Value::from(leaf);
    std::fs::write(&file, json.to_string()).unwrap();
    let other = tempfile::tempdir().unwrap();
    assert!(demo(&other.path().join("d")).status.success());
    let other_key = text(
        &tally(&[
            "log",
            "key",
            "--data",
            other.path().join("d").to_str().unwrap(),
        ])
        .stdout,
    )
    .trim()
    .to_owned();
    let wrong_key = verify_receipt(file.to_str().unwrap(), &other_key);
    assert_ne!(wrong_key.status.code(), Some(0));
    // The key file is the operator's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("log-signer.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// The independent verifier in `tools/tlog-verify`, written from RFC 9162, RFC 8032 and the
/// C2SP specifications in another language, shares no code with Tally.
fn independent_verifier(arguments: &[&str]) -> Output {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/tlog-verify/tlog_verify.py");
    Command::new("python3")
        .arg(script)
        .args(arguments)
        .output()
        .expect("python3 runs the independent verifier")
}

#[test]
fn receipts_verify_with_an_independently_written_verifier() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("demo");
    assert!(demo(&data).status.success());
    let data_text = data.to_str().unwrap();
    let verifier_key = text(&tally(&["log", "key", "--data", data_text]).stdout)
        .trim()
        .to_owned();
    let file = directory.path().join("receipt.json");
    for transfer_id in ["1", "3", "6"] {
        let receipt = tally(&["log", "receipt", "--data", data_text, transfer_id]);
        assert!(receipt.status.success(), "{}", text(&receipt.stderr));
        std::fs::write(&file, &receipt.stdout).unwrap();
        let verified =
            independent_verifier(&["receipt", file.to_str().unwrap(), "--vkey", &verifier_key]);
        assert!(
            verified.status.success(),
            "{}{}",
            text(&verified.stdout),
            text(&verified.stderr)
        );
        assert!(
            text(&verified.stdout).starts_with(&format!("ok: transfer {transfer_id} ")),
            "{}",
            text(&verified.stdout)
        );
    }
    // The demo's deposited document: its receipt verifies with both verifiers.
    let receipt = tally(&["log", "receipt", "--data", data_text, "--registration", "1"]);
    assert!(receipt.status.success(), "{}", text(&receipt.stderr));
    std::fs::write(&file, &receipt.stdout).unwrap();
    let ours = verify_receipt(file.to_str().unwrap(), &verifier_key);
    assert!(ours.status.success(), "{}", text(&ours.stderr));
    assert!(
        text(&ours.stdout).contains("registration 1 (document "),
        "{}",
        text(&ours.stdout)
    );
    let theirs =
        independent_verifier(&["receipt", file.to_str().unwrap(), "--vkey", &verifier_key]);
    assert!(
        theirs.status.success(),
        "{}{}",
        text(&theirs.stdout),
        text(&theirs.stderr)
    );
    assert!(
        text(&theirs.stdout).starts_with("ok: registration 1 "),
        "{}",
        text(&theirs.stdout)
    );
    // A changed amount is caught by the independent verifier too.
    let receipt = tally(&["log", "receipt", "--data", data_text, "3"]);
    let mut json: serde_json::Value = serde_json::from_slice(&receipt.stdout).unwrap();
    use base64::Engine;
    let engine = base64::engine::general_purpose::STANDARD;
    let mut leaf = engine.decode(json["leaf"].as_str().unwrap()).unwrap();
    leaf[64] ^= 1; // the low byte of the amount
    json["leaf"] = serde_json::Value::from(engine.encode(&leaf));
    std::fs::write(&file, json.to_string()).unwrap();
    let refused =
        independent_verifier(&["receipt", file.to_str().unwrap(), "--vkey", &verifier_key]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("inclusion proof"),
        "{}",
        text(&refused.stderr)
    );
}

/// A `tally serve` child process, stopped with SIGTERM when dropped.
struct Node {
    child: std::process::Child,
    address: String,
}

impl Node {
    fn start(data: &Path, extra: &[&str]) -> Node {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data",
                data.to_str().unwrap(),
            ])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("{line}"))
            .to_owned();
        Node { child, address }
    }

    /// The body of a GET.
    fn get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&self.address).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: tally\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {response}");
        body.to_owned()
    }

    /// The status line and body of a POST of `body` (JSON).
    fn post(&self, path: &str, body: &str) -> (String, String) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&self.address).unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: tally\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        (
            head.lines().next().unwrap_or_default().to_owned(),
            body.to_owned(),
        )
    }

    /// Waits until `condition` holds for the body of `path`.
    fn wait_for(&self, path: &str, condition: impl Fn(&str) -> bool) -> String {
        let started = std::time::Instant::now();
        loop {
            let body = self.get(path);
            if condition(&body) {
                return body;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "{path} never got there: {body}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn signature_lines(note: &str) -> usize {
    note.lines()
        .filter(|line| line.starts_with('\u{2014}'))
        .count()
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no metric {name}"))
        .parse()
        .unwrap()
}

#[test]
fn a_witness_cosigns_a_log_and_refuses_a_fork_of_it() {
    let directory = tempfile::tempdir().unwrap();
    let log = directory.path().join("log");
    let fork = directory.path().join("fork");
    let witness = directory.path().join("witness");
    // The log, and a fork of it: the same operator key, other leaves at the same size.
    assert!(demo(&log).status.success());
    std::fs::create_dir_all(&fork).unwrap();
    std::fs::copy(log.join("log-signer.key"), fork.join("log-signer.key")).unwrap();
    assert!(demo(&fork).status.success());
    let log_key = text(&tally(&["log", "key", "--data", log.to_str().unwrap()]).stdout)
        .trim()
        .to_owned();
    let witness_key = tally(&["log", "witness-key", "--data", witness.to_str().unwrap()]);
    assert!(
        witness_key.status.success(),
        "{}",
        text(&witness_key.stderr)
    );
    let witness_key = text(&witness_key.stdout).trim().to_owned();
    assert!(witness_key.starts_with("tally-witness-"), "{witness_key}");

    let witness_node = Node::start(&witness, &["--witness-for", &log_key]);
    let target = format!("{witness_key}@http://{}/v1/witness", witness_node.address);
    let log_node = Node::start(&log, &["--witness", &target]);
    let note = log_node.wait_for("/v1/log/checkpoint", |note| signature_lines(note) == 2);
    let verified = trustlog::verify_note_with(
        &note,
        &[
            trustlog::NoteVerifier::parse(&log_key).unwrap(),
            trustlog::NoteVerifier::parse(&witness_key).unwrap(),
        ],
    )
    .unwrap();
    assert_eq!(verified.signatures.len(), 2);

    // A receipt under the cosigned checkpoint verifies with the independent verifier, which
    // also checks the witness's cosignature.
    let receipt = log_node.get("/v1/log/receipts/6");
    let file = directory.path().join("receipt.json");
    std::fs::write(&file, &receipt).unwrap();
    let checked = independent_verifier(&[
        "receipt",
        file.to_str().unwrap(),
        "--vkey",
        &log_key,
        "--witness-vkey",
        &witness_key,
    ]);
    assert!(
        checked.status.success(),
        "{}{}",
        text(&checked.stdout),
        text(&checked.stderr)
    );

    // The self-audit re-derived every leaf of the log.
    let metrics = log_node.wait_for("/metrics", |text| {
        metric(text, "tally_audit_runs_total") >= 1
    });
    assert_eq!(metric(&metrics, "tally_audit_ok"), 1);
    assert_eq!(metric(&metrics, "tally_audit_verified_leaves"), 44);
    assert_eq!(metric(&metrics, "tally_witness_cosignatures_total"), 1);

    // The fork asks the same witness: refused, never cosigned.
    let fork_node = Node::start(&fork, &["--witness", &target]);
    let fork_metrics = fork_node.wait_for("/metrics", |text| {
        metric(text, "tally_witness_failures_total") >= 1
    });
    assert_eq!(metric(&fork_metrics, "tally_witness_cosignatures_total"), 0);
    assert_eq!(signature_lines(&fork_node.get("/v1/log/checkpoint")), 1);
    drop(fork_node);
    // The witness still stands by the log it cosigned.
    assert_eq!(signature_lines(&log_node.get("/v1/log/checkpoint")), 2);
}

#[test]
fn qr_decode_and_encode_speak_every_format_and_refuse_what_cannot_be_trusted() {
    let decode = |payload: &str| {
        let output = tally(&["qr", "decode", "--json", payload]);
        assert!(
            output.status.success(),
            "{payload}: {}",
            text(&output.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    // The Pix example of Brazil's central bank (a published EMVCo merchant-presented code).
    let pix = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D";
    let json = decode(pix);
    assert_eq!(json["format"], "emv-mpm");
    assert_eq!(json["crc_valid"], true);
    assert_eq!(json["point_of_initiation"], serde_json::Value::Null);
    assert_eq!(json["merchant_name"], "Fulano de Tal");
    assert_eq!(json["merchant_city"], "BRASILIA");
    assert_eq!(json["country_code"], "BR");
    assert_eq!(json["merchant_category_code"], "0000");
    assert_eq!(json["currency"], "986");
    assert_eq!(json["amount"], serde_json::Value::Null);
    assert_eq!(json["merchant_accounts"][0]["gui"], "br.gov.bcb.pix");
    assert_eq!(json["merchant_accounts"][0]["network"], "pix");
    assert_eq!(
        json["merchant_accounts"][0]["fields"]["01"],
        "123e4567-e12b-12d1-a456-426655440000"
    );
    assert_eq!(json["additional_data"]["reference_label"], "***");
    assert_eq!(json["warnings"], serde_json::json!([]));

    // A lower-case CRC is accepted with a warning; a wrong one is refused, naming both.
    let lower = pix.replace("1D3D", "1d3d");
    assert_eq!(decode(&lower)["warnings"].as_array().unwrap().len(), 1);
    let forged = tally(&["qr", "decode", "--json", &pix.replace("1D3D", "FFFF")]);
    assert_eq!(forged.status.code(), Some(2));
    assert!(forged.stdout.is_empty());
    let message = text(&forged.stderr);
    assert!(
        message.contains("CRC mismatch: payload says FFFF, computed 1D3D"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");

    // Encoding a dynamic code, then reading it back.
    let encoded = tally(&[
        "qr",
        "encode",
        "--point-of-initiation",
        "dynamic",
        "--merchant-account",
        "26:com.tally.wallet:01=mch_42:02=store_7",
        "--merchant-account",
        "04=5555666677778888",
        "--mcc",
        "5812",
        "--currency",
        "156",
        "--amount",
        "38.50",
        "--country",
        "CN",
        "--merchant-name",
        "Noodle Bar",
        "--merchant-city",
        "Shanghai",
        "--bill-number",
        "ord_1001",
        "--terminal-label",
        "T1",
        "--language",
        "ZH",
        "--alt-name",
        "面馆",
    ]);
    assert!(encoded.status.success(), "{}", text(&encoded.stderr));
    let payload = text(&encoded.stdout).trim().to_owned();
    assert!(payload.starts_with("000201010212"), "{payload}");
    let json = decode(&payload);
    assert_eq!(json["point_of_initiation"], "dynamic");
    assert_eq!(json["amount"], "38.50");
    // Objects come out in ascending id order: the card network's 04 before the template 26.
    assert_eq!(json["merchant_accounts"][0]["network"], "mastercard");
    assert_eq!(json["merchant_accounts"][1]["fields"]["02"], "store_7");
    assert_eq!(json["additional_data"]["bill_number"], "ord_1001");
    assert_eq!(json["language"]["merchant_name"], "面馆");
    // The encoder keeps every rule: a 16-character city is refused, nothing printed.
    let refused = tally(&[
        "qr",
        "encode",
        "--merchant-account",
        "04=1",
        "--mcc",
        "5812",
        "--currency",
        "156",
        "--country",
        "CN",
        "--merchant-name",
        "Noodle Bar",
        "--merchant-city",
        "Shanghai Pudong X",
    ]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(refused.stdout.is_empty());

    // The other formats a wallet may be shown.
    let cpm = "hQVDUFYwMWETTwegAAAAVVVVUAhQcm9kdWN0MWETTwegAAAAZmZmUAhQcm9kdWN0MmJJWggSNFZ4kBI0WF8gDkNBUkRIT0xERVIvRU1WXy0IcnVlc2RlZW5kIZ8QBwYBCgMAAACfJghYT9OF+iNLzJ82AgABnzcEbVjvEw==";
    let json = decode(cpm);
    assert_eq!(json["format"], "emv-cpm");
    assert_eq!(json["crc_valid"], serde_json::Value::Null);
    assert_eq!(json["applications"][0]["application_label"], "Product1");
    let upi = decode("upi://pay?pa=noodles@bank&pn=Noodle%20Bar&am=120.00&cu=INR&mc=5812");
    assert_eq!(upi["format"], "upi");
    assert_eq!(upi["merchant_name"], "Noodle Bar");
    assert_eq!(upi["amount"], "120.00");
    assert_eq!(upi["currency"], "INR");
    let code = decode("281234567890123456");
    assert_eq!(code["format"], "tally-payment-code");
    let unknown = tally(&["qr", "decode", "hello"]);
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn qr_render_draws_the_same_symbol_as_svg_png_and_on_the_terminal() {
    let directory = tempfile::tempdir().unwrap();
    let payload = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D";
    let svg = tally(&["qr", "render", payload, "--format", "svg"]);
    assert!(svg.status.success(), "{}", text(&svg.stderr));
    let svg = text(&svg.stdout);
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    let dark_modules = svg.matches("h1v1h-1z").count();
    assert!(dark_modules > 300, "{dark_modules}");

    let png = directory.path().join("code.png");
    let drawn = tally(&[
        "qr",
        "render",
        payload,
        "--format",
        "png",
        "--out",
        png.to_str().unwrap(),
    ]);
    assert!(drawn.status.success(), "{}", text(&drawn.stderr));
    // Read the PNG back with Python's own zlib: chunk CRCs hold, and its black pixels are the
    // SVG's dark modules, 8 × 8 pixels each.
    let check = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n'
at, idat, size = 8, b'', None
while at < len(data):
    (length,) = struct.unpack('>I', data[at:at + 4])
    kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
    (crc,) = struct.unpack('>I', data[at + 8 + length:at + 12 + length])
    assert zlib.crc32(kind + body) == crc, kind
    if kind == b'IHDR':
        size = struct.unpack('>II', body[:8])
    if kind == b'IDAT':
        idat += body
    at += 12 + length
raw = zlib.decompress(idat)
width, height = size
assert len(raw) == height * (width + 1)
black = sum(raw[row * (width + 1) + 1:(row + 1) * (width + 1)].count(0) for row in range(height))
print(black)
"#,
        )
        .arg(&png)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert_eq!(text(&check.stdout).trim(), (dark_modules * 64).to_string());

    let terminal = tally(&["qr", "render", payload]);
    assert!(terminal.status.success());
    let drawing = text(&terminal.stdout);
    assert!(drawing.contains('\u{2588}') && drawing.contains("\x1b[47;30m"));
    let refused = tally(&["qr", "render", payload, "--format", "png"]);
    assert_eq!(refused.status.code(), Some(2), "a PNG needs --out");

    // A payment code as the Code 128 barcode a POS scans: set C, quiet zones, 24 rows.
    let barcode = tally(&[
        "qr",
        "render",
        "281234567890123456",
        "--symbology",
        "code128",
        "--format",
        "svg",
    ]);
    assert!(barcode.status.success(), "{}", text(&barcode.stderr));
    let svg = text(&barcode.stdout);
    assert!(svg.contains("viewBox=\"0 0 154 24\""), "{svg}");
    let wrong = tally(&["qr", "render", "café", "--symbology", "code128"]);
    assert_eq!(wrong.status.code(), Some(2));
}

#[test]
fn one_time_codes_go_through_the_development_sms_outbox_the_operator_reads() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("node");
    let node = Node::start(&data, &[]);
    let (status, body) = node.post(
        "/v1/otp",
        r#"{"phone": "+8613800138000", "purpose": "register"}"#,
    );
    assert!(status.contains("202"), "{status} {body}");
    let outbox = tally(&[
        "admin",
        "sms",
        "--data",
        data.to_str().unwrap(),
        "--phone",
        "+8613800138000",
    ]);
    assert!(outbox.status.success(), "{}", text(&outbox.stderr));
    let listing = text(&outbox.stdout);
    assert!(
        listing.contains("+8613800138000  Tally: your code to open your wallet is "),
        "{listing}"
    );
    let others = tally(&[
        "admin",
        "sms",
        "--data",
        data.to_str().unwrap(),
        "--phone",
        "+10000000000",
    ]);
    assert!(text(&others.stdout).is_empty());
}

#[test]
fn bench_sql_and_verify_work_on_postgresql_too() {
    let server = store_postgres::test_server::TestServer::shared()
        .expect("a PostgreSQL server for the tests");
    let url = server.create_database().expect("a database");
    let directory = tempfile::tempdir().unwrap();
    // The operator's log key lives in the data directory; the ledger in PostgreSQL.
    let data = directory.path().join("keys");
    let data = data.to_str().unwrap();
    let output = tally(&[
        "bench",
        "ledger",
        "--database-url",
        &url,
        "--data",
        data,
        "--transfers",
        "20000",
        "--accounts",
        "100",
        "--pending-percent",
        "20",
        "--json",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["backend"], "postgres");
    assert_eq!(report["invariants_hold"], true);
    assert_eq!(report["rejected"], 0);
    let count = tally(&[
        "sql",
        "--database-url",
        &url,
        "--csv",
        "SELECT count(*) AS n FROM transfers",
    ]);
    assert!(count.status.success(), "{}", text(&count.stderr));
    assert_eq!(
        text(&count.stdout).lines().nth(1).unwrap(),
        report["transfers"].to_string()
    );
    let refused = tally(&["sql", "--database-url", &url, "DELETE FROM transfers"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("read-only"),
        "{}",
        text(&refused.stderr)
    );
    let verified = tally(&["verify", "--database-url", &url, "--data", data, "--json"]);
    assert!(verified.status.success(), "{}", text(&verified.stderr));
    let verified: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(verified["ok"], true);
    let again = tally(&[
        "bench",
        "ledger",
        "--database-url",
        &url,
        "--transfers",
        "10",
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("already holds a ledger"));
}

/// One HTTP/1.1 request on its own connection: (status, body).
/// A request signed with a merchant's API key, as its backend sends it.
fn signed(
    address: &str,
    (key_id, signing_key): (u64, &[u8; 32]),
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let nonce = format!("cli-{now}-{}", path.len() + body.len());
    let authorization = services::signatures::authorization(
        key_id,
        signing_key,
        method,
        path,
        now,
        &nonce,
        body.as_bytes(),
    );
    http(
        address,
        method,
        path,
        &[
            ("Authorization", &authorization),
            ("Content-Type", "application/json"),
        ],
        body,
    )
}

#[test]
fn serve_on_postgresql_takes_an_order_from_a_merchant_an_operator_onboarded() {
    use std::io::{BufRead, BufReader};
    let server = store_postgres::test_server::TestServer::shared()
        .expect("a PostgreSQL server for the tests");
    let url = server.create_database().expect("a database");
    let directory = tempfile::tempdir().unwrap();
    // The log's signing key stays in the data directory; the ledger and the orders go to
    // PostgreSQL.
    let data = directory.path().join("keys");
    let log_path = directory.path().join("serve.log");
    let child = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
            data.to_str().unwrap(),
            "--database-url",
            &url,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut serving = Serving { child, log_path };
    let mut stdout = BufReader::new(serving.child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let address = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    assert!(
        data.join("log-signer.key").exists(),
        "the log's key is kept in the data directory"
    );

    let created = tally(&[
        "admin",
        "credentials",
        "create",
        "--role",
        "operator",
        "--database-url",
        &url,
    ]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let operator = text(&created.stdout).trim().to_owned();
    let (status, body) = http(
        &address,
        "POST",
        "/v1/merchants",
        &[
            ("Authorization", &format!("Bearer {operator}")),
            ("Content-Type", "application/json"),
        ],
        r#"{"name":"Tea House","mcc":"5814","country":"CN","city":"Hangzhou",
            "settlement_account":"6222020200112233","fee_rate_bps":60}"#,
    );
    assert_eq!(status, 201, "{body}");
    let merchant: serde_json::Value = serde_json::from_str(&body).unwrap();
    let key_id =
        services::ids::parse_prefixed("mk_", merchant["api_key"]["id"].as_str().unwrap()).unwrap();
    let signing_key =
        services::payments::signing_key(merchant["api_key"]["secret"].as_str().unwrap());

    let (status, body) = signed(
        &address,
        (key_id, &signing_key),
        "POST",
        "/v1/orders",
        r#"{"out_trade_no":"T-0001","amount":1000,"currency":"CNY","description":"green tea"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let order: serde_json::Value = serde_json::from_str(&body).unwrap();
    let order_id = order["id"].as_str().unwrap();
    let (status, body) = signed(
        &address,
        (key_id, &signing_key),
        "GET",
        &format!("/v1/orders/{order_id}"),
        "",
    );
    assert_eq!(status, 200, "{body}");
    let read: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(read["out_trade_no"], "T-0001");
    assert_eq!(read["amount"], 1000);
    assert_eq!(read["state"], "NOTPAY");

    // The order is a row in PostgreSQL, for auditors as for the API.
    let rows = tally(&[
        "sql",
        "--database-url",
        &url,
        "--csv",
        "SELECT out_trade_no, amount, state FROM orders",
    ]);
    assert!(rows.status.success(), "{}", text(&rows.stderr));
    assert_eq!(
        text(&rows.stdout).lines().nth(1),
        Some("T-0001,1000,NOTPAY")
    );

    let killed = Command::new("kill")
        .args(["-TERM", &serving.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = serving.child.wait().unwrap();
    let log = serving.log();
    assert!(status.success(), "exit {status:?}\n{log}");
    assert!(log.contains("postgres at"), "{log}");
}
