//! `tally bench red-envelopes`: many red envelopes grabbed at once, through the service layer
//! and the ledger, durably.
//!
//! Set-up: `--users` wallets in one group and a few senders; `--envelopes` lucky envelopes of
//! `--packets` packets each, sent to the group. Then every packet is grabbed at once: envelope
//! `e` by `--packets` members starting at member `e × packets`, each grab a task calling
//! `Payments::grab`, so grabs of many envelopes and many users share each batch and every grab
//! debits the one red-envelope account. Only the grab phase is timed; every grab is durable
//! (SQLite, `synchronous=FULL`) before it counts.

// The benchmark measures wall time, which the services never do.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Context};
use clap::Args;
use ledger::{Event, EventResult, NewTransfer};
use sequencer::Sequencer;
use services::payments::{
    EnvelopeConfig, NewEnvelope, Outcome, PaymentConfig, Payments, Recipient, TierLimits,
    ENVELOPES_ACCOUNT_ID, RESERVE_ACCOUNT_ID,
};
use services::support::Handles;
use store::{EnvelopeKind, Store, User};

const USERS_MAX: usize = 100_000;
const ENVELOPES_MAX: usize = 100_000;
/// Envelopes sent by each sender (a sender's requests take turns on its wallet's lock).
const ENVELOPES_PER_SENDER: usize = 50;
/// Minor units per packet.
const PACKET_MEAN: u64 = 100;

#[derive(Debug, Args)]
pub struct EnvelopesArgs {
    /// Data directory for the store; it must not hold a store yet (default: a new temporary
    /// directory, removed afterwards).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Members of the group the envelopes go to.
    #[arg(long, default_value_t = 2_000)]
    users: usize,
    /// Envelopes sent, then grabbed.
    #[arg(long, default_value_t = 2_000)]
    envelopes: usize,
    /// Packets per envelope (every one is grabbed).
    #[arg(long, default_value_t = 100)]
    packets: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn config(args: &EnvelopesArgs) -> PaymentConfig {
    let unlimited = TierLimits {
        single_max: u64::MAX / 4,
        daily_max: u64::MAX / 4,
        yearly_max: u64::MAX / 4,
    };
    PaymentConfig {
        tiers: [unlimited; 3],
        envelopes: EnvelopeConfig {
            packets_max: args.packets,
            group_members_max: args.users + args.envelopes.div_ceil(ENVELOPES_PER_SENDER),
            ..EnvelopeConfig::default()
        },
        ..PaymentConfig::default()
    }
}

fn fund(sequencer: &Sequencer, users: &[User], amount: u128, now: u64) -> anyhow::Result<()> {
    let currency = PaymentConfig::default().currency;
    let events = users
        .iter()
        .map(|user| {
            let id = services::ids::transfer_id(services::ids::new_id(now * 1000)?, 1);
            Ok(Event::CreateTransfer(NewTransfer::new(
                id,
                RESERVE_ACCOUNT_ID,
                user.wallet_account_id,
                amount,
                currency,
            )))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let results = sequencer.handle().execute(events)?;
    ensure!(
        results.iter().all(|result| *result == EventResult::Ok),
        "funding the senders failed: {results:?}"
    );
    Ok(())
}

pub fn run(args: EnvelopesArgs) -> anyhow::Result<()> {
    ensure!(
        (1..=USERS_MAX).contains(&args.users),
        "--users must be between 1 and {USERS_MAX}"
    );
    ensure!(
        (1..=ENVELOPES_MAX).contains(&args.envelopes),
        "--envelopes must be between 1 and {ENVELOPES_MAX}"
    );
    ensure!(
        (1..=store::ENVELOPE_PACKETS_MAX).contains(&args.packets) && args.packets <= args.users,
        "--packets must be between 1 and {} and at most --users",
        store::ENVELOPE_PACKETS_MAX
    );
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
    let handles = Arc::new(Handles::new(store.clone()));
    let payments = Arc::new(Payments::new(
        handles.clone(),
        sequencer.handle(),
        config(&args),
        Arc::new(services::billers::SimulatedBiller::new(
            "Simulated Biller",
            server::unix_seconds(),
        )),
    )?);
    let now = server::unix_seconds();
    let currency = payments.config().currency;
    let senders_count = args.envelopes.div_ceil(ENVELOPES_PER_SENDER);
    if !args.json {
        eprintln!(
            "setting up {} members, {senders_count} senders and {} envelopes of {} packets…",
            args.users, args.envelopes, args.packets
        );
    }
    let members = services::seed::users(
        &handles,
        &sequencer.handle(),
        currency,
        8_619_900_000_000,
        args.users,
        now,
    )
    .map_err(anyhow::Error::msg)?;
    let senders = services::seed::users(
        &handles,
        &sequencer.handle(),
        currency,
        8_619_800_000_000,
        senders_count,
        now,
    )
    .map_err(anyhow::Error::msg)?;
    let total = PACKET_MEAN * args.packets as u64;
    fund(
        &sequencer,
        &senders,
        u128::from(total) * ENVELOPES_PER_SENDER as u128,
        now,
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // The senders are members too (an envelope goes to a group its sender belongs to); grabs
    // come from the members.
    let member_ids: Vec<u64> = members.iter().chain(&senders).map(|user| user.id).collect();
    let envelope_ids: Vec<u64> = runtime.block_on(async {
        let (group, _) = payments
            .create_group(&senders[0], "benchmark", &member_ids, now)
            .await?;
        let sends: Vec<_> = (0..args.envelopes)
            .map(|index| {
                let payments = payments.clone();
                let sender = senders[index / ENVELOPES_PER_SENDER].clone();
                let packets = args.packets;
                tokio::spawn(async move {
                    let render = |_: &store::Envelope| (201, String::new());
                    payments
                        .send_envelope(
                            &sender,
                            NewEnvelope {
                                to: Recipient::Group(group.id),
                                kind: EnvelopeKind::Lucky,
                                amount: total,
                                count: packets,
                                greeting: "恭喜发财".to_owned(),
                            },
                            None,
                            &render,
                            now,
                        )
                        .await
                })
            })
            .collect();
        let mut ids = Vec::with_capacity(sends.len());
        for send in sends {
            match send.await?? {
                Outcome::Done(envelope) => ids.push(envelope.id),
                Outcome::Replayed { .. } => anyhow::bail!("an envelope was replayed"),
            }
        }
        anyhow::Ok(ids)
    })?;
    if !args.json {
        eprintln!("grabbing {} packets…", args.envelopes * args.packets);
    }
    let cpu_before = crate::bench::cpu_seconds();
    let started = Instant::now();
    let (grabbed, refused, amount) = runtime.block_on(async {
        let grabs: Vec<_> = envelope_ids
            .iter()
            .enumerate()
            .flat_map(|(index, &envelope_id)| {
                (0..args.packets)
                    .map(move |offset| (envelope_id, (index * args.packets + offset) % args.users))
            })
            .map(|(envelope_id, member)| {
                let payments = payments.clone();
                let user = members[member].clone();
                tokio::spawn(async move { payments.grab(&user, envelope_id, now).await })
            })
            .collect();
        let (mut grabbed, mut refused, mut amount) = (0u64, 0u64, 0u64);
        for grab in grabs {
            match grab.await? {
                Ok(grab) => {
                    grabbed += 1;
                    amount += grab.amount;
                }
                Err(_) => refused += 1,
            }
        }
        anyhow::Ok((grabbed, refused, amount))
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = crate::bench::cpu_seconds() - cpu_before;
    drop(runtime);
    let left = {
        let account = store
            .reader()?
            .account(ENVELOPES_ACCOUNT_ID)?
            .context("the red-envelope account")?;
        account.credits_posted - account.debits_posted
    };
    let batches = sequencer::Metrics::read(&sequencer.handle().metrics().batches_committed);
    sequencer.shutdown();
    let sent = total * args.envelopes as u64;
    let balanced = refused == 0 && amount == sent && left == 0;
    let grabs_per_second = grabbed as f64 / elapsed;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "grabs": grabbed,
                "refused": refused,
                "envelopes": args.envelopes,
                "packets_per_envelope": args.packets,
                "members": args.users,
                "seconds": elapsed,
                "grabs_per_second": grabs_per_second.round(),
                "cpu_seconds": cpu,
                "batches": batches,
                "amount_grabbed": amount,
                "amount_sent": sent,
                "red_envelope_account_left": u64::try_from(left).unwrap_or(u64::MAX),
                "balanced": balanced,
            })
        );
    } else {
        println!(
            "{grabbed} grabs of {} envelopes in {elapsed:.2} s: {grabs_per_second:.0} grabs/s \
             ({cpu:.1} CPU-seconds, {batches} batches in all)",
            args.envelopes
        );
        println!(
            "grabbed {amount} of {sent} minor units sent; refused {refused}; left in the red-envelope account {left}"
        );
    }
    ensure!(
        balanced,
        "the grabs did not add up: {grabbed} grabbed, {refused} refused, {amount} of {sent}, {left} left"
    );
    Ok(())
}
