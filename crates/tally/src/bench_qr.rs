//! `tally bench qr`: QR decoding and payment-code verification on one core.
//!
//! Decoding runs over published payloads of several schemes. Payment codes are checked two
//! ways: the MAC alone (parse, HMAC-SHA256, compare), and the whole check a POS charge makes
//! (`Payments::verify_payment_code`: the device looked up by number in a real store, its state,
//! the MAC in the time window). Each figure is the best of several runs on one thread, by wall
//! clock and by the thread's own time on a CPU (so time another program holds the core does not
//! count).

// The benchmark measures wall time, which the cores never do.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Context};
use clap::Args;
use sequencer::Sequencer;
use services::payment_codes;
use store::{DeviceState, PaymentDevice, Record, Store, REQUEST_RECORDS_MAX};

/// Published payloads (see the qr crate's tests for their sources).
const EMVCO_EXAMPLE: &str = "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A";
const PIX: &str = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D";
const PROMPTPAY: &str =
    "00020101021129370016A000000677010111011300668012345675802TH530376463046197";
const PROMPTPAY_AMOUNT: &str =
    "00020101021229370016A000000677010111011300660000000005802TH530376454044.226304E469";
const DUITNOW: &str = "00020201021126410014A0000006150001010650166402091234567895204999953034585802MY5909QRCSDNBHD6005BANGI6304184A";
const PAYNOW: &str = "00020101021126400009SG.PAYNOW010120213200002150HWCF030115204000053037025802SG5923NATIONAL HEALTHCARE GRO6009Singapore6304DF3F";
const CPM: &str = "hQVDUFYwMWETTwegAAAAVVVVUAhQcm9kdWN0MWETTwegAAAAZmZmUAhQcm9kdWN0MmJJWggSNFZ4kBI0WF8gDkNBUkRIT0xERVIvRU1WXy0IcnVlc2RlZW5kIZ8QBwYBCgMAAACfJghYT9OF+iNLzJ82AgABnzcEbVjvEw==";
const UPI: &str = "upi://pay?pa=nadeem@npci&pn=nadeem%20chinna&mc=0000&tid=cxnkjcnkjdfdvjndkjfvn&tr=4894398cndhcd23&tn=Pay%20to%20mystar%20store&am=10&mam=null&cu=INR&url=https://mystar.com/orderid=9298yw89e8973e87389e78923ue892";
const PAYMENT_CODE: &str = "280123456789012345";

const MERCHANT_PRESENTED: [&str; 6] = [
    EMVCO_EXAMPLE,
    PIX,
    PROMPTPAY,
    PROMPTPAY_AMOUNT,
    DUITNOW,
    PAYNOW,
];
const EVERY_SCHEME: [&str; 9] = [
    EMVCO_EXAMPLE,
    PIX,
    PROMPTPAY,
    PROMPTPAY_AMOUNT,
    DUITNOW,
    PAYNOW,
    CPM,
    UPI,
    PAYMENT_CODE,
];

const DEVICES_MAX: u32 = 1_000_000;

#[derive(Debug, Args)]
pub struct QrArgs {
    /// Data directory for the store of enrolled devices; it must not hold a store yet
    /// (default: a new temporary directory, removed afterwards).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Decodes per run.
    #[arg(long, default_value_t = 250_000)]
    decodes: usize,
    /// Payment codes checked per run.
    #[arg(long, default_value_t = 50_000)]
    codes: usize,
    /// Devices enrolled in the store (codes are drawn from all of them).
    #[arg(long, default_value_t = 10_000)]
    devices: u32,
    /// Runs of each measurement; the best is reported. Many short runs rather than a few long
    /// ones: the shared machines change speed from one second to the next, and the best run
    /// is the one least disturbed.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Nanoseconds this thread has spent on a CPU, from the kernel's scheduler statistics. `None`
/// off Linux.
fn on_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Best operations per second over `runs` runs of `count` calls of `work(index)`: by wall
/// clock, and by on-CPU time.
#[derive(Debug, Clone, Copy)]
struct Rate {
    wall: f64,
    cpu: Option<f64>,
}

fn measure(runs: usize, count: usize, mut work: impl FnMut(usize) -> bool) -> Rate {
    let mut rate = Rate {
        wall: 0.0,
        cpu: None,
    };
    for _ in 0..runs {
        let cpu_start = on_cpu_ns();
        let start = Instant::now();
        let mut failures = 0usize;
        for index in 0..count {
            if !black_box(work(black_box(index))) {
                failures += 1;
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        assert_eq!(failures, 0, "every operation of the benchmark succeeds");
        rate.wall = rate.wall.max(count as f64 / seconds);
        if let (Some(before), Some(after)) = (cpu_start, on_cpu_ns()) {
            let cpu = count as f64 / ((after - before) as f64 / 1e9);
            rate.cpu = Some(rate.cpu.map_or(cpu, |best: f64| best.max(cpu)));
        }
    }
    rate
}

fn print(name: &str, rate: Rate) {
    let cpu = rate.cpu.map_or("n/a".to_owned(), |cpu| format!("{cpu:.0}"));
    println!(
        "{name:<56} {:>10.0} /s wall {cpu:>10} /s on-CPU  ({:>6.0} ns)",
        rate.wall,
        1e9 / rate.wall
    );
}

/// Enrols `count` devices in the store: device `n` has number `n` and a secret derived from it.
fn enrol_devices(sequencer: &Sequencer, count: u32) -> anyhow::Result<Vec<PaymentDevice>> {
    let devices: Vec<PaymentDevice> = (0..count)
        .map(|number| PaymentDevice {
            id: u64::from(number) + 1,
            user_id: u64::from(number) + 1,
            number,
            secret: services::secrets::sha256(&[b"bench device", &number.to_be_bytes()]),
            name: "bench".to_owned(),
            state: DeviceState::Active,
            created_at: 0,
            revoked_at: None,
        })
        .collect();
    let handle = sequencer.handle();
    let tickets = devices
        .chunks(REQUEST_RECORDS_MAX)
        .map(|chunk| {
            handle.submit_with_records(
                Vec::new(),
                chunk.iter().cloned().map(Record::PaymentDevice).collect(),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    for ticket in tickets {
        ticket.wait()?;
    }
    Ok(devices)
}

pub fn run(args: QrArgs) -> anyhow::Result<()> {
    ensure!(
        (1..=DEVICES_MAX).contains(&args.devices),
        "--devices must be between 1 and {DEVICES_MAX}"
    );
    ensure!(
        args.runs >= 1 && args.decodes >= 1 && args.codes >= 1,
        "counts must be positive"
    );
    let runs = args.runs;
    if !args.json {
        println!("one thread, best of {runs} runs");
    }
    let mpm = measure(runs, args.decodes, |index| {
        qr::mpm::decode(MERCHANT_PRESENTED[index % MERCHANT_PRESENTED.len()]).is_ok()
    });
    let any = measure(runs, args.decodes, |index| {
        qr::decode_any(EVERY_SCHEME[index % EVERY_SCHEME.len()]).is_ok()
    });

    let temporary;
    let directory = match &args.data {
        Some(directory) => directory.clone(),
        None => {
            temporary = tempfile::tempdir()?;
            temporary.path().to_path_buf()
        }
    };
    let store: Arc<dyn Store> = Arc::new(
        store_sqlite::SqliteStore::open(&directory)
            .with_context(|| format!("opening the store in {}", directory.display()))?,
    );
    ensure!(
        store.reader()?.head()?.batches == 0,
        "{} already holds a ledger; the benchmark needs a fresh one",
        directory.display()
    );
    let sequencer = Sequencer::start(store.as_ref(), crate::sequencer_config(&directory)?)?;
    let state = server::AppState::new(store.clone(), sequencer.handle())?;
    let devices = enrol_devices(&sequencer, args.devices)?;
    let now = server::unix_seconds();
    let prefix = state.payments.config().qr.payment_code_prefix;
    // Codes of every device, shown now in slot 0, in a scattered order.
    let codes: Vec<String> = (0..args.devices.min(100_000) as usize)
        .map(|index| {
            let device = &devices[index * 7919 % devices.len()];
            payment_codes::derive(&device.secret, prefix, device.number, now, 0).to_string()
        })
        .collect();
    let secrets: std::collections::HashMap<u32, [u8; 32]> = devices
        .iter()
        .map(|device| (device.number, device.secret))
        .collect();
    let mac = measure(runs, args.codes, |index| {
        let Ok(code) = qr::TallyPaymentCode::parse(&codes[index % codes.len()], prefix) else {
            return false;
        };
        let parts = payment_codes::parts(&code);
        secrets
            .get(&parts.device_number)
            .and_then(|secret| payment_codes::verify(secret, &parts, now))
            .is_some()
    });
    let service = measure(runs, args.codes, |index| {
        state
            .payments
            .verify_payment_code(&codes[index % codes.len()], now)
            .is_ok()
    });
    drop(state);
    sequencer.shutdown();

    if args.json {
        let json = serde_json::json!({
            "runs": runs,
            "mpm_decodes_per_second": mpm.wall.round(),
            "mpm_decodes_per_cpu_second": mpm.cpu.map(f64::round),
            "decode_any_per_second": any.wall.round(),
            "decode_any_per_cpu_second": any.cpu.map(f64::round),
            "payment_code_macs_per_second": mac.wall.round(),
            "payment_code_verifications_per_second": service.wall.round(),
            "payment_code_verifications_per_cpu_second": service.cpu.map(f64::round),
            "devices": args.devices,
        });
        println!("{json}");
    } else {
        print("mpm::decode, six published payloads", mpm);
        for (name, payload) in [
            (
                "  EMVCo example (UTF-8 names, 230 characters)",
                EMVCO_EXAMPLE,
            ),
            ("  Pix", PIX),
            ("  PromptPay", PROMPTPAY),
            ("  PayNow", PAYNOW),
        ] {
            print(
                name,
                measure(runs, args.decodes, |_| qr::mpm::decode(payload).is_ok()),
            );
        }
        print("decode_any, the six + CPM + UPI + payment code", any);
        print("payment code, parse and MAC only", mac);
        print(
            &format!(
                "payment code, full check (device looked up among {})",
                args.devices
            ),
            service,
        );
    }
    Ok(())
}
