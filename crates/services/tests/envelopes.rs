//! Red envelopes against the real SQLite store and the commit pipeline: a crowd grabbing at
//! once, a restart, and the expiry that gives the rest back once.

use std::collections::HashSet;
use std::sync::Arc;

use ledger::{Currency, Event, EventResult, NewTransfer};
use services::payments::{
    EnvelopeConfig, NewEnvelope, PaymentConfig, PaymentError, Payments, Recipient,
    ENVELOPES_ACCOUNT_ID, RESERVE_ACCOUNT_ID,
};
use services::support::Handles;
use store::{EnvelopeKind, EnvelopeState, Store, User};
use store_sqlite::SqliteStore;

const NOW: u64 = 1_795_000_000;

struct World {
    _directory: tempfile::TempDir,
    store: Arc<dyn Store>,
    sequencer: sequencer::Sequencer,
    payments: Arc<Payments>,
}

fn config() -> PaymentConfig {
    PaymentConfig {
        envelopes: EnvelopeConfig {
            group_members_max: 2_000,
            ..EnvelopeConfig::default()
        },
        ..PaymentConfig::default()
    }
}

fn world() -> World {
    let directory = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(directory.path()).unwrap());
    let sequencer =
        sequencer::Sequencer::start(store.as_ref(), sequencer::SequencerConfig::default()).unwrap();
    let payments = Arc::new(
        Payments::new(
            Arc::new(Handles::new(store.clone())),
            sequencer.handle(),
            config(),
            Arc::new(services::billers::SimulatedBiller::new(
                "Simulated Biller",
                NOW,
            )),
        )
        .unwrap(),
    );
    World {
        _directory: directory,
        store,
        sequencer,
        payments,
    }
}

fn currency() -> Currency {
    Currency::parse("CNY").unwrap()
}

fn users(world: &World, first_phone: u64, count: usize) -> Vec<User> {
    services::seed::users(
        world.payments.handles(),
        &world.sequencer.handle(),
        currency(),
        first_phone,
        count,
        NOW,
    )
    .unwrap()
}

fn fund(world: &World, user: &User, amount: u128) {
    let id = services::ids::transfer_id(services::ids::new_id(NOW * 1000).unwrap(), 1);
    let transfer = NewTransfer::new(
        id,
        RESERVE_ACCOUNT_ID,
        user.wallet_account_id,
        amount,
        currency(),
    );
    let results = world
        .sequencer
        .handle()
        .execute(vec![Event::CreateTransfer(transfer)])
        .unwrap();
    assert_eq!(results, vec![EventResult::Ok]);
}

fn balance(world: &World, account: u128) -> u128 {
    let account = world
        .store
        .reader()
        .unwrap()
        .account(account)
        .unwrap()
        .unwrap();
    account.credits_posted - account.debits_posted
}

fn render(envelope: &store::Envelope) -> (u16, String) {
    (201, format!("{{\"id\":\"env_{}\"}}", envelope.id))
}

async fn send(
    world: &World,
    sender: &User,
    to: Recipient,
    kind: EnvelopeKind,
    amount: u64,
    count: usize,
) -> Result<store::Envelope, PaymentError> {
    let outcome = world
        .payments
        .send_envelope(
            sender,
            NewEnvelope {
                to,
                kind,
                amount,
                count,
                greeting: "恭喜发财".into(),
            },
            None,
            &render,
            NOW,
        )
        .await?;
    match outcome {
        services::payments::Outcome::Done(envelope) => Ok(envelope),
        services::payments::Outcome::Replayed { .. } => panic!("no idempotency key was given"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_grab_a_hundred_packets_exactly_once_each() {
    let world = world();
    let people = tokio::task::block_in_place(|| users(&world, 8_619_900_000_000, 1_001));
    let (sender, crowd) = people.split_first().unwrap();
    tokio::task::block_in_place(|| fund(&world, sender, 100_000));
    let members: Vec<u64> = crowd.iter().map(|user| user.id).collect();
    let (group, listed) = world
        .payments
        .create_group(sender, "the whole village", &members, NOW)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1_001);
    let envelope = send(
        &world,
        sender,
        Recipient::Group(group.id),
        EnvelopeKind::Lucky,
        100_000,
        100,
    )
    .await
    .unwrap();
    assert_eq!(envelope.packets.len(), 100);
    assert_eq!(envelope.packets.iter().sum::<u64>(), 100_000);
    assert!(envelope.packets.iter().all(|&amount| amount >= 1));
    assert_eq!(balance(&world, sender.wallet_account_id), 0);
    assert_eq!(balance(&world, ENVELOPES_ACCOUNT_ID), 100_000);

    // A thousand members at once, and a hundred of them twice.
    let grabs: Vec<_> = crowd
        .iter()
        .chain(crowd.iter().take(100))
        .cloned()
        .map(|user| {
            let payments = world.payments.clone();
            tokio::spawn(async move { (user.id, payments.grab(&user, envelope.id, NOW + 1).await) })
        })
        .collect();
    let mut won = Vec::new();
    let mut refusals = std::collections::HashMap::<&'static str, usize>::new();
    for grab in grabs {
        match grab.await.unwrap() {
            (user, Ok(grab)) => won.push((user, grab)),
            (_, Err(error)) => *refusals.entry(error.code()).or_default() += 1,
        }
    }
    assert_eq!(won.len(), 100, "{refusals:?}");
    let winners: HashSet<u64> = won.iter().map(|(user, _)| *user).collect();
    assert_eq!(winners.len(), 100, "nobody grabs twice");
    let packets: HashSet<usize> = won.iter().map(|(_, grab)| grab.packet).collect();
    assert_eq!(packets.len(), 100, "every packet goes once");
    assert_eq!(
        won.iter().map(|(_, grab)| grab.amount).sum::<u64>(),
        100_000
    );
    assert_eq!(
        refusals.values().sum::<usize>(),
        1_000,
        "everyone else is refused: {refusals:?}"
    );
    assert!(refusals
        .get("envelope_empty")
        .is_some_and(|count| *count >= 900));
    for (user, grab) in &won {
        assert_eq!(balance(&world, u128::from(*user)), u128::from(grab.amount));
    }
    assert_eq!(balance(&world, ENVELOPES_ACCOUNT_ID), 0);

    // After a restart the ledger still says who got what, and the envelope is finished.
    let restarted = Payments::new(
        Arc::new(Handles::new(world.store.clone())),
        world.sequencer.handle(),
        config(),
        Arc::new(services::billers::SimulatedBiller::new(
            "Simulated Biller",
            NOW,
        )),
    )
    .unwrap();
    let view = restarted.envelope_view(sender.id, envelope.id).unwrap();
    assert_eq!(view.envelope.state, EnvelopeState::Finished);
    let listed: HashSet<(u64, u64)> = view
        .grabs
        .iter()
        .map(|(_, user, amount)| (*user, *amount))
        .collect();
    let expected: HashSet<(u64, u64)> = won
        .iter()
        .map(|(user, grab)| (*user, grab.amount))
        .collect();
    assert_eq!(listed, expected);
    let luckiest = services::payments::luckiest(&view).unwrap();
    assert_eq!(
        view.grabs.iter().find(|grab| grab.0 == luckiest).unwrap().2,
        *envelope.packets.iter().max().unwrap()
    );
    let late = restarted.grab(&crowd[500], envelope.id, NOW + 2).await;
    assert!(matches!(late, Err(PaymentError::Grab(_))), "{late:?}");
    // An outsider sees nothing of it.
    let outsider = &tokio::task::block_in_place(|| users(&world, 8_619_910_000_000, 1))[0];
    assert!(matches!(
        restarted.envelope_view(outsider.id, envelope.id),
        Err(PaymentError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_nobody_grabbed_goes_back_once_when_the_envelope_expires() {
    let world = world();
    let people = tokio::task::block_in_place(|| users(&world, 8_619_920_000_000, 4));
    let (sender, friends) = people.split_first().unwrap();
    tokio::task::block_in_place(|| fund(&world, sender, 10_000));
    let members: Vec<u64> = friends.iter().map(|user| user.id).collect();
    let (group, _) = world
        .payments
        .create_group(sender, "friends", &members, NOW)
        .await
        .unwrap();
    let envelope = send(
        &world,
        sender,
        Recipient::Group(group.id),
        EnvelopeKind::Ordinary,
        1_000,
        5,
    )
    .await
    .unwrap();
    assert_eq!(envelope.packets, vec![1_000; 5]);
    for friend in &friends[..2] {
        world
            .payments
            .grab(friend, envelope.id, NOW + 10)
            .await
            .unwrap();
    }
    let lifetime = EnvelopeConfig::default().lifetime_s;
    assert_eq!(
        world
            .payments
            .expire_envelopes(NOW + lifetime - 1, 10)
            .await
            .unwrap(),
        0
    );
    let expired = world
        .payments
        .grab(&friends[2], envelope.id, NOW + lifetime)
        .await;
    assert!(
        matches!(
            expired,
            Err(PaymentError::Grab(
                services::envelopes::GrabRefusal::Expired
            ))
        ),
        "{expired:?}"
    );
    assert_eq!(
        world
            .payments
            .expire_envelopes(NOW + lifetime, 10)
            .await
            .unwrap(),
        1
    );
    assert_eq!(balance(&world, sender.wallet_account_id), 10_000 - 2_000);
    assert_eq!(balance(&world, ENVELOPES_ACCOUNT_ID), 0);
    // Once: the next run, and a restarted service, find nothing to return.
    assert_eq!(
        world
            .payments
            .expire_envelopes(NOW + lifetime + 60, 10)
            .await
            .unwrap(),
        0
    );
    let restarted = Payments::new(
        Arc::new(Handles::new(world.store.clone())),
        world.sequencer.handle(),
        config(),
        Arc::new(services::billers::SimulatedBiller::new(
            "Simulated Biller",
            NOW,
        )),
    )
    .unwrap();
    assert_eq!(
        restarted
            .expire_envelopes(NOW + lifetime + 120, 10)
            .await
            .unwrap(),
        0
    );
    assert_eq!(balance(&world, sender.wallet_account_id), 8_000);
    let view = restarted.envelope_view(friends[0].id, envelope.id).unwrap();
    assert_eq!(
        (view.envelope.state, view.envelope.returned),
        (EnvelopeState::Expired, 3_000)
    );
    assert_eq!(view.grabs.len(), 2);

    // An envelope to one friend: one packet, for that friend only; refusals move nothing.
    let gift = send(
        &world,
        sender,
        Recipient::User(friends[1].id),
        EnvelopeKind::Ordinary,
        520,
        1,
    )
    .await
    .unwrap();
    let refused = world.payments.grab(&friends[0], gift.id, NOW + 1).await;
    assert_eq!(refused.unwrap_err().code(), "not_found");
    assert_eq!(
        world
            .payments
            .grab(&friends[1], gift.id, NOW + 1)
            .await
            .unwrap()
            .amount,
        520
    );
    let too_much = send(
        &world,
        sender,
        Recipient::Group(group.id),
        EnvelopeKind::Lucky,
        10_000,
        2,
    )
    .await;
    assert_eq!(too_much.unwrap_err().code(), "insufficient_funds");
    let split_too_thin = send(
        &world,
        sender,
        Recipient::Group(group.id),
        EnvelopeKind::Lucky,
        3,
        4,
    )
    .await;
    assert_eq!(split_too_thin.unwrap_err().code(), "invalid_request");
    assert_eq!(balance(&world, sender.wallet_account_id), 8_000 - 520);
}
