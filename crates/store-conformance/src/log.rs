//! The trust log: registrations, tiles, checkpoints, receipts, cosignatures, audits.

use std::sync::Arc;
use std::time::Duration;

use ledger::{AccountFlags, Event, EventResult};
use sequencer::{RegistrationOutcome, Sequencer, SequencerConfig};
use store::{LogLeaf, NewRegistration, RegistrationKind, Store};

use crate::common::{config, new_account, new_transfer, ManualClock};

const SIGNER_NAME: &str = "test-log";
const SIGNER_SEED: [u8; 32] = [9; 32];

fn signer() -> Arc<trustlog::NoteSigner> {
    Arc::new(trustlog::NoteSigner::from_seed(SIGNER_NAME, &SIGNER_SEED).expect("a signer"))
}

fn signed_config(clock: Arc<ManualClock>) -> SequencerConfig {
    SequencerConfig {
        log_signer: Some(signer()),
        // Only registrations and explicit requests sign checkpoints here.
        checkpoint_interval: Duration::from_secs(3600),
        ..config(clock)
    }
}

fn deposit(registrant: u128, key: &str, digest_byte: u8) -> NewRegistration {
    NewRegistration::new(
        RegistrationKind::Document,
        [digest_byte; 32],
        registrant,
        "contract 7",
        key,
    )
    .expect("a valid registration")
}

fn open_accounts(sequencer: &Sequencer) {
    let results = sequencer
        .handle()
        .execute(vec![
            new_account(1, AccountFlags::empty()),
            new_account(2, AccountFlags::empty()),
        ])
        .expect("committed");
    assert_eq!(results, vec![EventResult::Ok, EventResult::Ok]);
}

pub fn registrations_are_idempotent_per_registrant_and_key(store: &dyn Store) {
    let clock = ManualClock::at(1_000_000_000);
    let sequencer = Sequencer::start(store, signed_config(clock.clone())).expect("sequencer");
    open_accounts(&sequencer);
    let handle = sequencer.handle();
    handle
        .execute(vec![Event::CreateTransfer(new_transfer(1, 1, 2, 100))])
        .expect("committed");
    // Two registrations in one request, and the same key asked twice in it.
    let outcomes = handle
        .register(vec![
            deposit(5, "a", 1),
            deposit(5, "b", 2),
            deposit(5, "a", 1),
        ])
        .expect("queued")
        .wait()
        .expect("committed");
    let RegistrationOutcome::Created(first) = &outcomes[0] else {
        panic!("expected a new registration, got {outcomes:?}");
    };
    let RegistrationOutcome::Created(second) = &outcomes[1] else {
        panic!("expected a new registration, got {outcomes:?}");
    };
    assert_eq!(outcomes[2], RegistrationOutcome::Exists(first.clone()));
    assert_eq!((first.registration.id, first.leaf_index), (1, 1));
    assert_eq!((second.registration.id, second.leaf_index), (2, 2));

    let mut reader = store.reader().expect("a reader");
    let head = reader.head().expect("head");
    assert_eq!((head.log_size, head.registration_id_max), (3, 2));
    assert_eq!(
        reader
            .latest_checkpoint()
            .expect("read")
            .expect("a checkpoint")
            .size,
        3
    );
    assert_eq!(reader.registration(2).expect("read"), Some(second.clone()));
    assert_eq!(
        reader.registration_by_key(5, "b").expect("read"),
        Some(second.clone())
    );
    assert_eq!(reader.registration_by_key(6, "b").expect("read"), None);
    let mut leaves = Vec::new();
    reader.leaves(0, 10, &mut leaves).expect("leaves");
    assert_eq!(leaves.len(), 3);
    assert!(matches!(&leaves[0], (0, LogLeaf::Transfer(transfer)) if transfer.id == 1));
    assert_eq!(
        leaves[2],
        (2, LogLeaf::Registration(second.registration.clone()))
    );
    let mut visited = Vec::new();
    reader
        .visit_registrations(&mut |stored| visited.push(stored.registration.id))
        .expect("visit");
    assert_eq!(visited, vec![1, 2]);

    // A retry: the first registration, nothing appended. Another registrant may use the same
    // key. The same key for other content is refused.
    let outcomes = handle
        .register(vec![
            deposit(5, "b", 2),
            deposit(6, "b", 2),
            deposit(5, "a", 9),
        ])
        .expect("queued")
        .wait()
        .expect("committed");
    assert_eq!(outcomes[0], RegistrationOutcome::Exists(second.clone()));
    assert!(
        matches!(&outcomes[1], RegistrationOutcome::Created(stored) if stored.registration.id == 3)
    );
    assert_eq!(
        outcomes[2],
        RegistrationOutcome::ExistsWithDifferentFields(first.clone())
    );
    assert_eq!(reader.head().expect("head").log_size, 4);

    // After a restart the sequencer numbers on and still knows the keys.
    sequencer.shutdown();
    let sequencer = Sequencer::start(store, signed_config(clock)).expect("sequencer");
    let outcomes = sequencer
        .handle()
        .register(vec![deposit(5, "a", 1), deposit(5, "c", 3)])
        .expect("queued")
        .wait()
        .expect("committed");
    assert_eq!(outcomes[0], RegistrationOutcome::Exists(first.clone()));
    assert!(matches!(&outcomes[1], RegistrationOutcome::Created(stored)
        if stored.registration.id == 4 && stored.leaf_index == 4));
}

pub fn receipts_of_transfers_and_registrations_verify(store: &dyn Store) {
    let clock = ManualClock::at(1_000_000_000);
    let sequencer = Sequencer::start(store, signed_config(clock)).expect("sequencer");
    open_accounts(&sequencer);
    let handle = sequencer.handle();
    // More than a full tile of leaves (256), over several batches.
    let mut id = 0u128;
    for batch in 0..3u128 {
        let events: Vec<Event> = (0..100 + batch * 50)
            .map(|_| {
                id += 1;
                Event::CreateTransfer(new_transfer(id, 1, 2, 1))
            })
            .collect();
        handle.execute(events).expect("committed");
    }
    let outcomes = handle
        .register(vec![deposit(5, "receipt", 3)])
        .expect("queued")
        .wait()
        .expect("committed");
    let RegistrationOutcome::Created(registration) = &outcomes[0] else {
        panic!("expected a new registration, got {outcomes:?}");
    };
    assert_eq!(registration.leaf_index, 450);
    let verifier_key = signer().verifier_key_text();
    let mut reader = store.reader().expect("a reader");
    for transfer_id in [1, 200, 256, 257, 450] {
        let receipt = sequencer::transfer_receipt(reader.as_mut(), transfer_id).expect("receipt");
        assert_eq!(
            receipt.leaf_index,
            u64::try_from(transfer_id).expect("small") - 1
        );
        let checkpoint = trustlog::verify_receipt(&receipt, &verifier_key).expect("it verifies");
        assert_eq!(checkpoint.size(), 451);
    }
    let receipt = sequencer::registration_receipt(reader.as_mut(), registration.registration.id)
        .expect("receipt");
    trustlog::verify_receipt(&receipt, &verifier_key).expect("it verifies");
    // The full first tile is stored at full width; a narrower prefix is served from it.
    let full = reader
        .log_tile(0, 0, 256)
        .expect("read")
        .expect("the full tile");
    assert_eq!(full.len(), 256 * 32);
    let prefix = reader.log_tile(0, 0, 10).expect("read").expect("a prefix");
    assert_eq!(prefix, full[..10 * 32].to_vec());
    // The right edge's partial tile: 451 - 256 = 195 hashes, no more.
    assert!(reader.log_tile(0, 1, 195).expect("read").is_some());
    assert!(reader.log_tile(0, 1, 196).expect("read").is_none());
    assert!(reader.log_tile(0, 9, 1).expect("read").is_none());
}

pub fn checkpoints_cosignatures_and_audits_are_kept(store: &dyn Store) {
    let clock = ManualClock::at(1_000_000_000);
    let sequencer = Sequencer::start(store, signed_config(clock.clone())).expect("sequencer");
    open_accounts(&sequencer);
    let handle = sequencer.handle();
    for id in 1..=3u128 {
        handle
            .execute(vec![Event::CreateTransfer(new_transfer(id, 1, 2, 5))])
            .expect("committed");
        clock.advance(1_000_000);
        handle.request_checkpoint().expect("asked");
        // The checkpoint rides in the next batch.
        handle
            .execute(vec![Event::CreateTransfer(new_transfer(100 + id, 2, 1, 1))])
            .expect("committed");
    }
    sequencer.shutdown();
    let mut reader = store.reader().expect("a reader");
    let checkpoints = reader.checkpoints().expect("checkpoints");
    assert!(!checkpoints.is_empty());
    assert!(checkpoints
        .windows(2)
        .all(|pair| pair[0].size < pair[1].size));
    let latest = reader
        .latest_checkpoint()
        .expect("read")
        .expect("a checkpoint");
    assert_eq!(Some(&latest), checkpoints.last());
    assert_eq!(
        reader.checkpoint(latest.size).expect("read"),
        Some(latest.clone())
    );
    assert_eq!(reader.checkpoint(latest.size + 1000).expect("read"), None);
    assert!(latest.note.contains(SIGNER_NAME), "{}", latest.note);
    // Witness cosignatures: stored per witness, a newer line replacing the older one.
    let mut admin = store.admin().expect("admin");
    admin
        .add_cosignature(latest.size, "witness-b", "— witness-b line1", 10)
        .expect("stored");
    admin
        .add_cosignature(latest.size, "witness-a", "— witness-a old", 11)
        .expect("stored");
    admin
        .add_cosignature(latest.size, "witness-a", "— witness-a new", 12)
        .expect("stored");
    assert_eq!(
        reader.cosignatures(latest.size).expect("read"),
        vec!["— witness-a new".to_owned(), "— witness-b line1".to_owned()]
    );
    assert!(reader
        .cosignatures(latest.size + 1)
        .expect("read")
        .is_empty());
    // The self-audit's progress: the latest recorded size wins.
    assert_eq!(reader.last_audit().expect("read"), None);
    admin.record_audit(4, &[4; 32], 100).expect("recorded");
    admin.record_audit(6, &[6; 32], 200).expect("recorded");
    assert_eq!(reader.last_audit().expect("read"), Some((6, [6; 32])));
}
