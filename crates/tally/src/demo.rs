//! `tally demo`: a seeded story on a fresh embedded store, told as it happens.

// Amounts are written as units_cents (500_00 is 500.00 CNY), which clippy reads as odd grouping.
#![allow(clippy::inconsistent_digit_grouping)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::Args;
use ledger::{
    Account, AccountFlags, Currency, Event, EventResult, NewAccount, NewTransfer, PendingStatus,
    TransferFlags,
};
use sequencer::{RegistrationOutcome, Sequencer, SequencerHandle};
use sha2::{Digest, Sha256};
use store::{InvariantReport, NewRegistration, RegistrationKind, Store, StoreReader};
use store_sqlite::SqliteStore;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to create the store (default: a new temporary directory, kept so you can query it).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

use services::accounts::{KIND_FEES, KIND_MERCHANT, KIND_RESERVE, KIND_WALLET};

const RESERVE: u128 = 1;
const FEES: u128 = 2;
const NOODLE_BAR: u128 = 101;
const BOOK_CORNER: u128 = 102;
const ALICE: u128 = 1001;
const BOB: u128 = 1002;
const CHEN: u128 = 1003;
const DANA: u128 = 1004;
const EMEKA: u128 = 1005;

/// Merchant fee: 0.6 %, in basis points.
const FEE_BASIS_POINTS: u128 = 60;

struct World {
    handle: SequencerHandle,
    reader: Box<dyn StoreReader>,
    currency: Currency,
    next_transfer_id: u128,
}

fn name(id: u128) -> &'static str {
    match id {
        RESERVE => "customer reserve",
        FEES => "platform fees",
        NOODLE_BAR => "Noodle Bar",
        BOOK_CORNER => "Book Corner",
        ALICE => "Alice",
        BOB => "Bob",
        CHEN => "Chen",
        DANA => "Dana",
        EMEKA => "Emeka",
        _ => "account",
    }
}

impl World {
    fn money(&self, amount: u128) -> String {
        self.currency.format_amount(amount)
    }

    fn account(&mut self, id: u128) -> anyhow::Result<Account> {
        self.reader
            .account(id)?
            .with_context(|| format!("account {id} is missing"))
    }

    fn transfer(
        &mut self,
        debit: u128,
        credit: u128,
        amount: u128,
        flags: TransferFlags,
    ) -> NewTransfer {
        self.next_transfer_id += 1;
        let mut transfer =
            NewTransfer::new(self.next_transfer_id, debit, credit, amount, self.currency);
        transfer.kind = 1;
        transfer.flags = flags;
        transfer
    }

    fn submit(&self, transfers: &[NewTransfer]) -> anyhow::Result<Vec<EventResult>> {
        let events = transfers
            .iter()
            .copied()
            .map(Event::CreateTransfer)
            .collect();
        Ok(self.handle.execute(events)?)
    }

    fn expect_ok(&self, transfers: &[NewTransfer]) -> anyhow::Result<()> {
        let results = self.submit(transfers)?;
        if let Some(result) = results.iter().find(|result| **result != EventResult::Ok) {
            bail!("the demo expected success but the ledger answered {result}");
        }
        Ok(())
    }

    /// "Alice 461.50 CNY" for a wallet or merchant (what it can spend).
    fn show(&mut self, ids: &[u128]) -> anyhow::Result<()> {
        let parts: Vec<String> = ids
            .iter()
            .map(|id| {
                let account = self.account(*id)?;
                let mut text = format!(
                    "{} {}",
                    name(*id),
                    self.money(account.available_credit_balance().max(0) as u128)
                );
                if account.debits_pending > 0 {
                    text.push_str(&format!(
                        " (and {} on hold)",
                        self.money(account.debits_pending)
                    ));
                }
                Ok(text)
            })
            .collect::<anyhow::Result<_>>()?;
        println!("     balances: {}", parts.join(", "));
        Ok(())
    }
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let directory = match args.data {
        Some(directory) => {
            ensure!(
                !directory.join(store_sqlite::DATABASE_FILE_NAME).exists(),
                "{} already holds a store; give the demo a new directory",
                directory.display()
            );
            directory
        }
        None => tempfile::Builder::new()
            .prefix("tally-demo-")
            .tempdir()?
            .keep(),
    };
    let store = SqliteStore::open(&directory)?;
    println!(
        "Tally demo — a fresh embedded store at {}",
        directory.display()
    );
    println!();
    let sequencer = Sequencer::start(&store, crate::sequencer_config(&directory)?)?;
    let mut world = World {
        handle: sequencer.handle(),
        reader: store.reader()?,
        currency: Currency::parse("CNY").expect("valid code"),
        next_transfer_id: 0,
    };
    let lunch_payment = story(&mut world)?;
    let step = crate::demo_api::run(std::sync::Arc::new(store.clone()), sequencer.handle(), 11)?;
    sequencer.shutdown();

    let mut reader = store.reader()?;
    let report = InvariantReport::check(reader.as_mut())?;
    println!("{step}. Checking the ledger's invariants on what is on disk:");
    for totals in &report.totals {
        println!(
            "     {}: {} accounts, debits {} = credits {} (posted), pending {} = {}",
            totals.currency,
            totals.accounts,
            totals.currency.format_amount(totals.debits_posted),
            totals.currency.format_amount(totals.credits_posted),
            totals.currency.format_amount(totals.debits_pending),
            totals.currency.format_amount(totals.credits_pending),
        );
    }
    println!(
        "     accounts breaking their flags: {}",
        report.accounts_violating_flags.len()
    );
    let reserve = reader.account(RESERVE)?.context("reserve")?;
    let mut owed = 0i128;
    reader.visit_accounts(&mut |account| {
        if services::accounts::KINDS_OWED.contains(&account.kind) {
            owed += account.posted_credit_balance();
        }
    })?;
    println!(
        "     money held for customers, merchants and fees: {}; customer reserve: {}",
        world.money(owed.max(0) as u128),
        world.money(reserve.posted_debit_balance().max(0) as u128)
    );
    ensure!(report.holds(), "the invariants do not hold: {report:?}");
    ensure!(
        owed == reserve.posted_debit_balance(),
        "the reserve does not cover what is owed"
    );
    println!("     ✓ the invariants hold: every debit has its credit, no wallet is negative,");
    println!("       and the reserve mirrors exactly what the platform owes.");
    println!();
    println!(
        "{}. Every transfer is also a leaf of the operator's tamper-evident log. Here is the",
        step + 1
    );
    println!(
        "    receipt of Alice's lunch payment, checked offline with the operator's public key:"
    );
    let receipt = crate::log::receipt(&store, lunch_payment)?;
    let verifier_key = crate::log::load_signer(&directory)?.verifier_key_text();
    println!("{}", serde_json::to_string_pretty(&receipt)?);
    println!("     verifier key: {verifier_key}");
    let verdict = crate::log::verify_receipt(&receipt.to_string(), &verifier_key)?;
    println!("     ✓ {verdict}");
    println!();
    println!("Look around with read-only SQL, for example:");
    // Name the program as it was started, so the line can be pasted as it is.
    let program = std::env::args()
        .next()
        .unwrap_or_else(|| "tally".to_owned());
    println!(
        "  {program} sql --data {} \"SELECT id, debit_account_id, credit_account_id, amount, currency FROM transfers\"",
        directory.display()
    );
    Ok(())
}

/// Tells the story; returns the id of Alice's lunch payment.
fn story(world: &mut World) -> anyhow::Result<u128> {
    let wallet = AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS;
    let opening = [
        (
            RESERVE,
            KIND_RESERVE,
            AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
        ),
        (FEES, KIND_FEES, wallet),
        (NOODLE_BAR, KIND_MERCHANT, wallet),
        (BOOK_CORNER, KIND_MERCHANT, wallet),
        (ALICE, KIND_WALLET, wallet),
        (BOB, KIND_WALLET, wallet),
        (CHEN, KIND_WALLET, wallet),
        (DANA, KIND_WALLET, wallet | AccountFlags::HISTORY),
        (EMEKA, KIND_WALLET, wallet),
    ];
    println!("1. Opening the platform's accounts, two merchants and five users' wallets.");
    println!("   Wallets may never go below zero: the ledger enforces it, not the application.");
    let events = opening
        .iter()
        .map(|(id, kind, flags)| {
            Event::CreateAccount(NewAccount {
                id: *id,
                currency: world.currency,
                kind: *kind,
                flags: *flags,
                user_data: 0,
            })
        })
        .collect();
    let results = world.handle.execute(events)?;
    ensure!(
        results.iter().all(|result| *result == EventResult::Ok),
        "opening accounts failed: {results:?}"
    );
    println!("     {} accounts opened in one batch.", results.len());
    println!();

    println!("2. Top-ups: each user moves money in from a bank card. The customer reserve");
    println!("   (the mirror of the custodian bank account) is debited, the wallet credited.");
    let top_ups = [
        (ALICE, 500_00),
        (BOB, 200_00),
        (CHEN, 75_00),
        (DANA, 1_000_00),
        (EMEKA, 20_00),
    ];
    let transfers: Vec<NewTransfer> = top_ups
        .iter()
        .map(|(user, amount)| world.transfer(RESERVE, *user, *amount, TransferFlags::empty()))
        .collect();
    world.expect_ok(&transfers)?;
    world.show(&[ALICE, BOB, CHEN, DANA, EMEKA])?;
    println!();

    println!(
        "3. Alice pays Noodle Bar {} for lunch. The payment and the 0.6 % merchant fee",
        world.money(38_50)
    );
    println!("   are one linked chain: both happen, or neither does.");
    let mut payment = world.transfer(ALICE, NOODLE_BAR, 38_50, TransferFlags::LINKED);
    let fee = world.transfer(
        NOODLE_BAR,
        FEES,
        38_50 * FEE_BASIS_POINTS / 10_000,
        TransferFlags::empty(),
    );
    world.expect_ok(&[payment, fee])?;
    world.show(&[ALICE, NOODLE_BAR, FEES])?;
    println!();

    println!("4. Bob sends Chen {} (peer to peer).", world.money(25_00));
    let p2p = world.transfer(BOB, CHEN, 25_00, TransferFlags::empty());
    world.expect_ok(&[p2p])?;
    world.show(&[BOB, CHEN])?;
    println!();

    println!(
        "5. Dana orders books at Book Corner: the shop places a hold of {} on her wallet",
        world.money(120_00)
    );
    println!(
        "   (two-phase payment), then captures only {} when one title is out of stock.",
        world.money(95_00)
    );
    let hold = world.transfer(DANA, BOOK_CORNER, 120_00, TransferFlags::PENDING);
    world.expect_ok(&[hold])?;
    world.show(&[DANA])?;
    let mut capture = world.transfer(0, 0, 95_00, TransferFlags::POST_PENDING);
    capture.pending_id = hold.id;
    world.expect_ok(&[capture])?;
    println!(
        "     captured {}; the remaining {} of the hold is released.",
        world.money(95_00),
        world.money(25_00)
    );
    world.show(&[DANA, BOOK_CORNER])?;
    println!();

    println!(
        "6. Emeka starts a {} purchase that places a hold for one second; he never",
        world.money(15_00)
    );
    println!("   confirms it, so the hold expires and the ledger releases it exactly once.");
    let mut expiring = world.transfer(EMEKA, NOODLE_BAR, 15_00, TransferFlags::PENDING);
    expiring.timeout_seconds = 1;
    world.expect_ok(&[expiring])?;
    world.show(&[EMEKA])?;
    let started = Instant::now();
    loop {
        let status = world
            .reader
            .transfer(expiring.id)?
            .and_then(|stored| stored.pending_status);
        if status == Some(PendingStatus::Expired) {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(10),
            "the hold did not expire in time"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "     after {:.1} s the hold has expired:",
        started.elapsed().as_secs_f64()
    );
    world.show(&[EMEKA])?;
    let mut late_capture = world.transfer(0, 0, 0, TransferFlags::POST_PENDING);
    late_capture.pending_id = expiring.id;
    let results = world.submit(&[late_capture])?;
    println!(
        "     a late attempt to capture it is refused: {}",
        results[0]
    );
    ensure!(
        results[0] == EventResult::PendingExpired,
        "expected pending_expired, got {}",
        results[0]
    );
    println!();

    let chen_before = world.account(CHEN)?;
    println!(
        "7. Chen tries to pay Noodle Bar {} but has only {}.",
        world.money(100_01),
        world.money(chen_before.available_credit_balance().max(0) as u128)
    );
    let too_much = world.transfer(CHEN, NOODLE_BAR, 100_01, TransferFlags::empty());
    let results = world.submit(&[too_much])?;
    println!("     refused: {}; nothing moved.", results[0]);
    ensure!(
        results[0] == EventResult::ExceedsCredits,
        "expected exceeds_credits, got {}",
        results[0]
    );
    ensure!(
        world.account(CHEN)? == chen_before,
        "a refused payment changed a balance"
    );
    world.show(&[CHEN])?;
    println!();

    println!("8. Alice's phone loses the network after paying and retries the same payment");
    println!("   (same transfer id). The ledger recognises it and does not charge her twice.");
    let alice_before = world.account(ALICE)?;
    payment.flags = TransferFlags::LINKED;
    let results = world.submit(&[payment, fee])?;
    println!("     answers: {}, {}", results[0], results[1]);
    ensure!(
        results.iter().all(|result| *result == EventResult::Exists),
        "expected exists, got {results:?}"
    );
    ensure!(
        world.account(ALICE)? == alice_before,
        "a retry changed a balance"
    );
    world.show(&[ALICE])?;
    println!();

    println!("9. Dana's wallet keeps its history: her balance after each transfer.");
    let balances = world.reader.account_balances(store::HistoryQuery {
        account_id: DANA,
        after_timestamp: 0,
        limit: 10,
    })?;
    for balance in &balances {
        let available = balance.credits_posted as i128
            - balance.debits_posted as i128
            - balance.debits_pending as i128;
        println!(
            "     available {} (on hold {})",
            world.money(available.max(0) as u128),
            world.money(balance.debits_pending)
        );
    }
    let transfers = world.reader.account_transfers(store::HistoryQuery {
        account_id: DANA,
        after_timestamp: 0,
        limit: 10,
    })?;
    ensure!(
        transfers.len() == balances.len(),
        "history and transfers disagree"
    );
    println!();

    println!("10. Noodle Bar deposits the fingerprint (SHA-256) of its signed supply contract in");
    println!("    the log: anyone can later prove the document existed, unchanged, by now.");
    let contract = b"Supply contract between Noodle Bar and Green Farm, 2026-11";
    let digest: [u8; 32] = Sha256::digest(contract).into();
    let deposit = NewRegistration::new(
        RegistrationKind::Document,
        digest,
        0,
        "noodle-bar/contract-2026-11",
        "demo-contract",
    )?;
    let outcomes = world.handle.register(vec![deposit.clone()])?.wait()?;
    let Some(RegistrationOutcome::Created(stored)) = outcomes.first() else {
        bail!("the deposit was not registered: {outcomes:?}");
    };
    println!(
        "     registration {} is leaf {} of the log; asking again with the same key:",
        stored.registration.id, stored.leaf_index
    );
    let again = world.handle.register(vec![deposit])?.wait()?;
    ensure!(
        again == vec![RegistrationOutcome::Exists(stored.clone())],
        "a repeated deposit was appended again: {again:?}"
    );
    println!("     the same registration, nothing appended.");
    println!();
    Ok(payment.id)
}
