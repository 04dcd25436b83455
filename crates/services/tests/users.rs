//! The user workflows against the real SQLite store and the commit pipeline.

use std::sync::Arc;

use services::users::{CodePurpose, UserConfig, UserError, Users};
use store::Store;
use store_sqlite::SqliteStore;

struct World {
    _directory: tempfile::TempDir,
    store: Arc<dyn Store>,
    _sequencer: sequencer::Sequencer,
    users: Arc<Users>,
}

fn world() -> World {
    let directory = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(directory.path()).unwrap());
    let sequencer =
        sequencer::Sequencer::start(store.as_ref(), sequencer::SequencerConfig::default()).unwrap();
    let users = Arc::new(
        Users::new(
            Arc::new(services::support::Handles::new(store.clone())),
            Arc::new(services::sms::OutboxGateway::new(store.clone())),
            sequencer.handle(),
            UserConfig::default(),
        )
        .unwrap(),
    );
    World {
        _directory: directory,
        store,
        _sequencer: sequencer,
        users,
    }
}

fn last_code(store: &Arc<dyn Store>, phone: &str) -> String {
    let messages = store.users().unwrap().sms_outbox(10).unwrap();
    let text = &messages
        .iter()
        .find(|message| message.phone == phone)
        .unwrap()
        .text;
    let start = text.find(" is ").unwrap() + 4;
    text[start..start + 6].to_owned()
}

const NOW: u64 = 1_795_000_000;

#[test]
fn the_payment_password_locks_after_five_wrong_tries_even_in_parallel() {
    let world = world();
    let phone = "+8613800138000";
    world
        .users
        .send_code(phone, CodePurpose::Register, NOW)
        .unwrap();
    let code = last_code(&world.store, phone);
    let user = world
        .users
        .register(phone, "correct horse", &code, NOW)
        .unwrap();
    assert!(matches!(
        world.users.verify_payment_password(user.id, "123456", NOW),
        Err(UserError::PaymentPasswordNotSet)
    ));
    // Setting it needs a code for that purpose; a login code will not do.
    world
        .users
        .send_code(phone, CodePurpose::PaymentPassword, NOW)
        .unwrap();
    let code = last_code(&world.store, phone);
    assert!(matches!(
        world.users.set_payment_password(&user, "12345", &code, NOW),
        Err(UserError::InvalidPaymentPassword)
    ));
    world
        .users
        .set_payment_password(&user, "135790", &code, NOW)
        .unwrap();
    world
        .users
        .verify_payment_password(user.id, "135790", NOW)
        .unwrap();

    for left in (1..=4).rev() {
        match world.users.verify_payment_password(user.id, "000000", NOW) {
            Err(UserError::WrongPaymentPassword { attempts_left }) => {
                assert_eq!(attempts_left, left)
            }
            other => panic!("expected a wrong password, got {other:?}"),
        }
    }
    // The fifth wrong try locks paying for three hours, even for the right password.
    let lock = NOW + 3 * 3600;
    assert!(matches!(
        world.users.verify_payment_password(user.id, "000000", NOW),
        Err(UserError::PaymentLocked { until }) if until == lock
    ));
    assert!(matches!(
        world.users.verify_payment_password(user.id, "135790", NOW + 60),
        Err(UserError::PaymentLocked { until }) if until == lock
    ));
    // After the lock, the right password works and clears the count.
    world
        .users
        .verify_payment_password(user.id, "135790", lock)
        .unwrap();

    // Guesses in parallel are counted before they are checked: no more than five get through.
    let threads: Vec<_> = (0..12)
        .map(|_| {
            let users = world.users.clone();
            std::thread::spawn(move || users.verify_payment_password(user.id, "999999", lock + 1))
        })
        .collect();
    let outcomes: Vec<_> = threads
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .collect();
    let wrong = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Err(UserError::WrongPaymentPassword { .. })))
        .count();
    let locked = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Err(UserError::PaymentLocked { .. })))
        .count();
    assert_eq!(wrong, 4, "{outcomes:?}");
    assert_eq!(locked, 8, "{outcomes:?}");
}
