//! Property tests of `ledger::apply`: random batches over a handful of accounts and a small
//! id space (so that retries, duplicates and settlements of real pending transfers are
//! common), shrunk by proptest to a minimal batch when a property fails.
//!
//! The seeded simulator (`crates/ledger-sim`, `cargo xtask sim`) checks the same core
//! against a reference model over long runs; these properties are the short, shrinkable kind.

use std::collections::BTreeMap;

use ledger::{
    apply, Account, AccountFlags, Applied, Batch, Currency, Event, EventResult, NewAccount,
    NewTransfer, State, TransferFlags, VALUE_MAX,
};
use proptest::prelude::*;

/// Transfer ids the generated events use: small, so that they collide.
const TRANSFER_ID_MAX: u128 = 48;
/// Accounts 1 to 6 exist; 7 and 8 may be created by a batch; 9 never exists.
const ACCOUNT_ID_MAX: u128 = 9;
/// Ids of the setup's funding transfers, out of the generated range.
const SETUP_TRANSFER_ID_BASE: u128 = 1_000_000;
const BATCH_EVENTS_MAX: usize = 24;
const TIMESTAMP_START: u64 = 1_000_000_000_000;
const SECOND_NANOSECONDS: u64 = 1_000_000_000;

fn currency(code: &str) -> Currency {
    Currency::parse(code).unwrap()
}

/// Six accounts in two currencies with every kind of flag, some of them funded.
fn setup() -> (State, u64) {
    let wallet = AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS;
    let debt = AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS;
    let accounts = [
        (1, "CNY", AccountFlags::empty()),
        (2, "CNY", wallet),
        (3, "CNY", debt),
        (4, "CNY", wallet | AccountFlags::HISTORY),
        (5, "USD", AccountFlags::empty()),
        (6, "USD", wallet),
    ];
    let mut events: Vec<Event> = accounts
        .iter()
        .map(|(id, code, flags)| {
            Event::CreateAccount(NewAccount {
                id: *id,
                currency: currency(code),
                kind: 1,
                flags: *flags,
                user_data: 0,
            })
        })
        .collect();
    let funding = [
        (1, 2, 1_000, "CNY"),
        (1, 4, 1_000, "CNY"),
        (3, 1, 500, "CNY"),
        (5, 6, 1_000, "USD"),
    ];
    for (offset, (debit, credit, amount, code)) in funding.into_iter().enumerate() {
        events.push(Event::CreateTransfer(NewTransfer {
            id: SETUP_TRANSFER_ID_BASE + offset as u128,
            debit_account_id: debit,
            credit_account_id: credit,
            amount,
            pending_id: 0,
            user_data: 0,
            timeout_seconds: 0,
            kind: 1,
            flags: TransferFlags::empty(),
            currency: currency(code),
        }));
    }
    let mut state = State::default();
    let applied = apply(
        &mut state,
        Batch {
            expiring: &[],
            events: &events,
        },
        TIMESTAMP_START,
    );
    assert!(
        applied
            .results
            .iter()
            .all(|result| *result == EventResult::Ok),
        "{:?}",
        applied.results
    );
    (state, applied.timestamp_last)
}

fn transfer_flags() -> impl Strategy<Value = TransferFlags> {
    use TransferFlags as F;
    prop_oneof![
        4 => Just(F::empty()),
        3 => Just(F::PENDING),
        2 => Just(F::POST_PENDING),
        2 => Just(F::VOID_PENDING),
        1 => Just(F::BALANCING_DEBIT),
        1 => Just(F::BALANCING_CREDIT),
        1 => Just(F::PENDING | F::BALANCING_DEBIT),
        1 => (0u16..64).prop_map(|bits| F::from_bits(bits).unwrap()),
    ]
}

fn amount() -> impl Strategy<Value = u128> {
    prop_oneof![
        1 => Just(0u128),
        6 => 1u128..=1_500,
        1 => (VALUE_MAX - 2)..=(VALUE_MAX + 1),
    ]
}

/// Two different accounts of one currency, and that currency.
fn account_pair() -> impl Strategy<Value = (u128, u128, &'static str)> {
    prop_oneof![
        4 => (1u128..=4, 1u128..=4).prop_map(|(debit, credit)| {
            let credit = if credit == debit { debit % 4 + 1 } else { credit };
            (debit, credit, "CNY")
        }),
        1 => prop::bool::ANY.prop_map(|forward| if forward { (5, 6, "USD") } else { (6, 5, "USD") }),
    ]
}

fn transfer(id: u128, debit: u128, credit: u128, amount: u128, code: &str) -> NewTransfer {
    NewTransfer {
        id,
        debit_account_id: debit,
        credit_account_id: credit,
        amount,
        pending_id: 0,
        user_data: 0,
        timeout_seconds: 0,
        kind: 1,
        flags: TransferFlags::empty(),
        currency: currency(code),
    }
}

/// Mostly well-formed transfers, pending transfers and settlements of the ids in use, and
/// some with every field random.
fn new_transfer() -> impl Strategy<Value = NewTransfer> {
    use TransferFlags as F;
    let plain = (
        1..=TRANSFER_ID_MAX,
        account_pair(),
        1u128..=1_500,
        prop_oneof![
            4 => Just(F::empty()),
            1 => Just(F::BALANCING_DEBIT),
            1 => Just(F::BALANCING_CREDIT),
        ],
    )
        .prop_map(|(id, (debit, credit, code), amount, flags)| NewTransfer {
            flags,
            ..transfer(id, debit, credit, amount, code)
        });
    let pending = (1..=TRANSFER_ID_MAX, account_pair(), 1u128..=1_500, 0u32..=3).prop_map(
        |(id, (debit, credit, code), amount, timeout_seconds)| NewTransfer {
            flags: F::PENDING,
            timeout_seconds,
            ..transfer(id, debit, credit, amount, code)
        },
    );
    let settlement = (
        1..=TRANSFER_ID_MAX,
        1..=TRANSFER_ID_MAX,
        prop_oneof![2 => Just(0u128), 1 => 1u128..=1_500],
        prop::bool::ANY,
        prop_oneof![5 => Just("CNY"), 1 => Just("USD")],
    )
        .prop_map(|(id, pending_id, amount, post, code)| NewTransfer {
            pending_id,
            flags: if post {
                F::POST_PENDING
            } else {
                F::VOID_PENDING
            },
            ..transfer(id, 0, 0, amount, code)
        });
    let random = (
        0..=TRANSFER_ID_MAX,
        0..=ACCOUNT_ID_MAX,
        0..=ACCOUNT_ID_MAX,
        amount(),
        prop_oneof![2 => Just(0u128), 1 => 1..=TRANSFER_ID_MAX],
        prop_oneof![3 => Just(0u32), 1 => 1u32..=3],
        transfer_flags(),
        prop_oneof![5 => Just("CNY"), 1 => Just("USD")],
    )
        .prop_map(
            |(id, debit, credit, amount, pending_id, timeout_seconds, flags, code)| NewTransfer {
                pending_id,
                timeout_seconds,
                flags,
                ..transfer(id, debit, credit, amount, code)
            },
        );
    prop_oneof![5 => plain, 3 => pending, 4 => settlement, 2 => random]
}

fn new_account() -> impl Strategy<Value = NewAccount> {
    (
        1..=ACCOUNT_ID_MAX,
        prop_oneof![Just("CNY"), Just("USD")],
        0u16..16,
    )
        .prop_map(|(id, code, bits)| {
            let flags = AccountFlags::from_bits(bits)
                .unwrap()
                .without(AccountFlags::LINKED);
            NewAccount {
                id,
                currency: currency(code),
                kind: 1,
                flags,
                user_data: 0,
            }
        })
}

fn event() -> impl Strategy<Value = Event> {
    let unlinked = prop_oneof![
        8 => new_transfer().prop_map(Event::CreateTransfer),
        1 => new_account().prop_map(Event::CreateAccount),
    ];
    (unlinked, prop::bool::weighted(0.15)).prop_map(|(event, linked)| set_linked(event, linked))
}

fn set_linked(event: Event, linked: bool) -> Event {
    match event {
        Event::CreateAccount(mut account) => {
            account.flags = if linked {
                account.flags | AccountFlags::LINKED
            } else {
                account.flags.without(AccountFlags::LINKED)
            };
            Event::CreateAccount(account)
        }
        Event::CreateTransfer(mut transfer) => {
            transfer.flags = if linked {
                transfer.flags | TransferFlags::LINKED
            } else {
                transfer.flags.without(TransferFlags::LINKED)
            };
            Event::CreateTransfer(transfer)
        }
    }
}

#[derive(Debug, Clone)]
struct GeneratedBatch {
    /// Nanoseconds after the previous batch's last timestamp; sometimes past a timeout.
    pause_nanoseconds: u64,
    expiring: Vec<u128>,
    events: Vec<Event>,
}

fn batch() -> impl Strategy<Value = GeneratedBatch> {
    (
        prop_oneof![3 => 1u64..=1_000, 1 => SECOND_NANOSECONDS..=4 * SECOND_NANOSECONDS],
        prop::collection::vec(1..=TRANSFER_ID_MAX, 0..=4),
        prop::collection::vec(event(), 1..=BATCH_EVENTS_MAX),
    )
        .prop_map(|(pause_nanoseconds, expiring, events)| GeneratedBatch {
            pause_nanoseconds,
            expiring,
            events,
        })
}

fn apply_generated(state: &mut State, timestamp_last: &mut u64, batch: &GeneratedBatch) -> Applied {
    let timestamp = *timestamp_last + batch.pause_nanoseconds;
    let applied = apply(
        state,
        Batch {
            expiring: &batch.expiring,
            events: &batch.events,
        },
        timestamp,
    );
    assert_eq!(applied.results.len(), batch.events.len());
    *timestamp_last = applied.timestamp_last;
    applied
}

/// Per currency, posted debits equal posted credits and pending debits equal pending credits;
/// every account respects its flags.
fn assert_balanced(state: &State) -> Result<(), TestCaseError> {
    let mut totals: BTreeMap<Currency, [u128; 4]> = BTreeMap::new();
    for account in state.accounts.values() {
        prop_assert!(account.respects_flags(), "{account:?}");
        let total = totals.entry(account.currency).or_default();
        total[0] += account.debits_posted;
        total[1] += account.credits_posted;
        total[2] += account.debits_pending;
        total[3] += account.credits_pending;
    }
    for (currency, [debits_posted, credits_posted, debits_pending, credits_pending]) in totals {
        prop_assert_eq!(debits_posted, credits_posted, "posted, {}", currency);
        prop_assert_eq!(debits_pending, credits_pending, "pending, {}", currency);
    }
    Ok(())
}

fn accounts_by_id(state: &State) -> BTreeMap<u128, Account> {
    state
        .accounts
        .iter()
        .map(|(id, account)| (*id, *account))
        .collect()
}

fn config() -> ProptestConfig {
    // Failures print the shrunk case; no regression files are written into the source tree.
    ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn debits_equal_credits_and_flags_hold_after_any_batches(
        batches in prop::collection::vec(batch(), 1..=8)
    ) {
        let (mut state, mut timestamp_last) = setup();
        for batch in &batches {
            apply_generated(&mut state, &mut timestamp_last, batch);
            assert_balanced(&state)?;
        }
    }

    #[test]
    fn the_same_batch_on_the_same_state_gives_the_same_outcome(
        prefix in prop::collection::vec(batch(), 0..=4),
        batch in batch(),
    ) {
        let (mut state, mut timestamp_last) = setup();
        for earlier in &prefix {
            apply_generated(&mut state, &mut timestamp_last, earlier);
        }
        let mut first = state.clone();
        let mut second = state;
        let (mut first_last, mut second_last) = (timestamp_last, timestamp_last);
        let a = apply_generated(&mut first, &mut first_last, &batch);
        let b = apply_generated(&mut second, &mut second_last, &batch);
        prop_assert_eq!(&a.results, &b.results);
        prop_assert_eq!(&a.transfers, &b.transfers);
        prop_assert_eq!(&a.accounts_created, &b.accounts_created);
        prop_assert_eq!(&a.accounts_updated, &b.accounts_updated);
        prop_assert_eq!(&a.pending, &b.pending);
        prop_assert_eq!(&a.balances, &b.balances);
        prop_assert_eq!(&a.expired, &b.expired);
        prop_assert_eq!(a.timestamp_last, b.timestamp_last);
        prop_assert_eq!(&first.accounts, &second.accounts);
        prop_assert_eq!(&first.transfers, &second.transfers);
        prop_assert_eq!(&first.pending, &second.pending);
    }

    #[test]
    fn resubmitting_a_committed_batch_moves_nothing(
        prefix in prop::collection::vec(batch(), 0..=3),
        batch in batch(),
    ) {
        let (mut state, mut timestamp_last) = setup();
        for earlier in &prefix {
            apply_generated(&mut state, &mut timestamp_last, earlier);
        }
        let first = apply_generated(&mut state, &mut timestamp_last, &batch);

        // What the batch committed, sent again: all `exists`, nothing changes.
        let committed: Vec<Event> = batch
            .events
            .iter()
            .zip(&first.results)
            .filter(|(_, result)| **result == EventResult::Ok)
            .map(|(event, _)| *event)
            .collect();
        let accounts_before = accounts_by_id(&state);
        let transfers_before = state.transfers.clone();
        let pending_before = state.pending.clone();
        let retry = GeneratedBatch { pause_nanoseconds: 1, expiring: Vec::new(), events: committed };
        if !retry.events.is_empty() {
            let again = apply_generated(&mut state, &mut timestamp_last, &retry);
            prop_assert!(again.results.iter().all(|result| *result == EventResult::Exists), "{:?}", again.results);
            prop_assert!(again.transfers.is_empty());
            prop_assert!(again.accounts_created.is_empty());
            prop_assert!(again.balances.is_empty());
            prop_assert_eq!(accounts_by_id(&state), accounts_before);
            prop_assert_eq!(&state.transfers, &transfers_before);
            prop_assert_eq!(&state.pending, &pending_before);
        }

        // The whole batch again: whatever was `ok` is now `exists`. (Events that failed may
        // succeed now, since the first submission changed the state they were judged on.)
        let whole = GeneratedBatch { pause_nanoseconds: 1, expiring: Vec::new(), events: batch.events.clone() };
        let again = apply_generated(&mut state, &mut timestamp_last, &whole);
        for (index, (before, after)) in first.results.iter().zip(&again.results).enumerate() {
            if *before == EventResult::Ok {
                prop_assert_eq!(*after, EventResult::Exists, "event {}", index);
            }
        }
        assert_balanced(&state)?;
    }

    #[test]
    fn a_failed_linked_chain_changes_nothing(
        prefix in prop::collection::vec(batch(), 0..=3),
        chain in prop::collection::vec(event(), 1..=6),
        left_open in any::<bool>(),
    ) {
        let (mut state, mut timestamp_last) = setup();
        for earlier in &prefix {
            apply_generated(&mut state, &mut timestamp_last, earlier);
        }
        // Every event linked to the next; the chain ends either at the end of the batch
        // (left open) or at an event that always fails.
        let mut events: Vec<Event> = chain.into_iter().map(|event| set_linked(event, true)).collect();
        if !left_open {
            let mut failing = match events[0] {
                Event::CreateTransfer(transfer) => transfer,
                Event::CreateAccount(_) => NewTransfer {
                    id: 1,
                    debit_account_id: 1,
                    credit_account_id: 2,
                    amount: 1,
                    pending_id: 0,
                    user_data: 0,
                    timeout_seconds: 0,
                    kind: 1,
                    flags: TransferFlags::empty(),
                    currency: currency("CNY"),
                },
            };
            failing.id = 0;
            failing.flags = failing.flags.without(TransferFlags::LINKED);
            events.push(Event::CreateTransfer(failing));
        }
        let accounts_before = accounts_by_id(&state);
        let transfers_before = state.transfers.clone();
        let pending_before = state.pending.clone();
        let chain = GeneratedBatch { pause_nanoseconds: 1, expiring: Vec::new(), events };
        let applied = apply_generated(&mut state, &mut timestamp_last, &chain);

        let failures: Vec<&EventResult> =
            applied.results.iter().filter(|result| **result != EventResult::LinkedEventFailed).collect();
        prop_assert_eq!(failures.len(), 1, "{:?}", applied.results);
        prop_assert!(*failures[0] != EventResult::Ok, "{:?}", applied.results);
        prop_assert!(applied.transfers.is_empty());
        prop_assert!(applied.accounts_created.is_empty());
        prop_assert!(applied.balances.is_empty());
        prop_assert!(applied.pending.iter().all(|(id, status)| pending_before.get(id) == Some(status)));
        prop_assert_eq!(accounts_by_id(&state), accounts_before);
        prop_assert_eq!(&state.transfers, &transfers_before);
        prop_assert_eq!(&state.pending, &pending_before);
    }
}

/// The generators reach the paths the properties are about; without this, a property could
/// pass because its interesting cases never come up.
#[test]
fn the_generated_batches_reach_the_interesting_paths() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let mut seen: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut expired = 0;
    let strategy = prop::collection::vec(batch(), 4..=8);
    for _ in 0..200 {
        let batches = strategy.new_tree(&mut runner).unwrap().current();
        let (mut state, mut timestamp_last) = setup();
        for batch in &batches {
            let applied = apply_generated(&mut state, &mut timestamp_last, batch);
            expired += applied.expired.len();
            for result in applied.results {
                *seen.entry(result.name()).or_default() += 1;
            }
        }
    }
    for wanted in [
        EventResult::Ok,
        EventResult::Exists,
        EventResult::ExistsWithDifferentFields,
        EventResult::LinkedEventFailed,
        EventResult::PendingAlreadyPosted,
        EventResult::PendingExpired,
        EventResult::ExceedsCredits,
        EventResult::OverflowsDebits,
    ] {
        assert!(
            seen.get(wanted.name()).copied().unwrap_or(0) > 0,
            "never saw {wanted}: {seen:?}"
        );
    }
    assert!(expired > 0, "no pending transfer ever expired");
}
