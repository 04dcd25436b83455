//! Fixed seeds, and the tricky rules spelled out as scenarios. Every scenario runs through the
//! harness, so the model checks the core at each batch while the test checks the numbers.

use ledger::{
    Account, AccountFlags, Applied, Currency, Event, EventResult, NewAccount, NewTransfer,
    PendingStatus, TransferFlags, BATCH_EVENTS_MAX,
};

use crate::{run, Harness, Options, Route};

use EventResult as R;

const SECOND_NANOSECONDS: u64 = 1_000_000_000;
const ROUTES: [Route; 2] = [Route::FullState, Route::Prefetch];

fn cny() -> Currency {
    Currency::parse("CNY").unwrap()
}

fn open(id: u128, flags: AccountFlags) -> Event {
    Event::CreateAccount(NewAccount {
        id,
        currency: cny(),
        kind: 1,
        flags,
        user_data: 0,
    })
}

fn transfer(id: u128, debit: u128, credit: u128, amount: u128) -> NewTransfer {
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
        currency: cny(),
    }
}

fn with(mut request: NewTransfer, flags: TransferFlags) -> NewTransfer {
    request.flags |= flags;
    request
}

fn settle(id: u128, pending_id: u128, amount: u128, flag: TransferFlags) -> NewTransfer {
    NewTransfer {
        pending_id,
        flags: flag,
        ..transfer(id, 0, 0, amount)
    }
}

fn linked(request: NewTransfer) -> Event {
    Event::CreateTransfer(with(request, TransferFlags::LINKED))
}

fn event(request: NewTransfer) -> Event {
    Event::CreateTransfer(request)
}

const WALLET: AccountFlags = AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS;

/// A harness with a clock; every batch goes through the model and all the checks.
struct Scenario {
    harness: Harness,
    route: Route,
    clock: u64,
}

impl Scenario {
    fn new(route: Route) -> Self {
        Scenario {
            harness: Harness::new(0),
            route,
            clock: 1_000 * SECOND_NANOSECONDS,
        }
    }

    fn batch(&mut self, events: &[Event]) -> Applied {
        let timestamp = self.harness.timestamp_last().max(self.clock) + 1_000;
        self.batch_at(timestamp, &[], events)
    }

    fn batch_at(&mut self, timestamp: u64, expiring: &[u128], events: &[Event]) -> Applied {
        self.clock = timestamp;
        self.harness
            .apply(timestamp, expiring, events, self.route)
            .unwrap_or_else(|failure| panic!("{failure}"))
    }

    fn results(&mut self, events: &[Event]) -> Vec<EventResult> {
        self.batch(events).results
    }

    fn account(&self, id: u128) -> Account {
        self.harness.state().accounts[&id]
    }

    fn status(&self, id: u128) -> Option<PendingStatus> {
        self.harness.state().pending.get(&id).copied()
    }
}

#[test]
fn fixed_seeds_agree_with_the_model_and_reach_every_result() {
    let mut seen = [0u64; EventResult::ALL.len()];
    for seed in [1, 2, 3] {
        let report =
            run(seed, 30_000, Options::default()).unwrap_or_else(|failure| panic!("{failure}"));
        assert_eq!(report.events, 30_000);
        assert!(
            report.batches >= 200,
            "seed {seed}: only {} batches",
            report.batches
        );
        assert!(
            report.transfers_committed > 5_000,
            "seed {seed}: {report:?}"
        );
        assert!(report.pendings_expired > 0, "seed {seed}: nothing expired");
        assert!(report.batches_prefetched > 0 && report.batches_prefetched < report.batches);
        assert_eq!(report.results.iter().sum::<u64>(), report.events);
        for (total, count) in seen.iter_mut().zip(report.results) {
            *total += count;
        }
    }
    let missing: Vec<&str> = EventResult::ALL
        .iter()
        .filter(|result| seen[result.code() as usize] == 0)
        .map(|result| result.name())
        .collect();
    assert!(
        missing.is_empty(),
        "the workload never produced {missing:?}"
    );
}

#[test]
fn batch_sizes_from_one_to_the_maximum() {
    let single = run(
        11,
        400,
        Options {
            batch_events_max: 1,
        },
    )
    .unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!(single.batches, 400);
    let large = run(
        12,
        3 * BATCH_EVENTS_MAX as u64,
        Options {
            batch_events_max: BATCH_EVENTS_MAX,
        },
    )
    .unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!(large.events, 3 * BATCH_EVENTS_MAX as u64);
    assert!(large.batches < single.batches);
}

#[test]
fn same_seed_same_run() {
    let first = run(7, 5_000, Options::default()).unwrap();
    let second = run(7, 5_000, Options::default()).unwrap();
    let other = run(8, 5_000, Options::default()).unwrap();
    assert_eq!(first, second);
    assert_ne!(first.results, other.results);
}

#[test]
fn the_harness_notices_a_corrupted_core() {
    let mut scenario = Scenario::new(Route::FullState);
    scenario.batch(&[
        open(1, AccountFlags::empty()),
        open(2, AccountFlags::empty()),
    ]);
    scenario
        .harness
        .state_mut()
        .accounts
        .get_mut(&1)
        .unwrap()
        .credits_posted += 5;
    let failure = scenario
        .harness
        .apply(
            scenario.clock + SECOND_NANOSECONDS,
            &[],
            &[event(transfer(10, 1, 2, 1))],
            Route::FullState,
        )
        .unwrap_err();
    assert_eq!(failure.batch, 1);
    assert!(
        failure.description.contains("account 1 differs"),
        "{failure}"
    );
}

#[test]
fn two_phase_partial_post() {
    for route in ROUTES {
        let mut s = Scenario::new(route);
        s.batch(&[
            open(1, AccountFlags::empty()),
            open(2, WALLET | AccountFlags::HISTORY),
            open(3, AccountFlags::empty()),
        ]);
        assert_eq!(s.results(&[event(transfer(10, 1, 2, 1_000))]), [R::Ok]);
        // Hold 600 of the wallet's 1 000: only 400 is left to spend.
        let hold = with(transfer(11, 2, 3, 600), TransferFlags::PENDING);
        assert_eq!(
            s.results(&[event(hold), event(transfer(12, 2, 3, 500))]),
            [R::Ok, R::ExceedsCredits]
        );
        assert_eq!(s.account(2).available_credit_balance(), 400);
        assert_eq!(s.account(3).credits_pending, 600);

        let applied = s.batch(&[event(settle(13, 11, 250, TransferFlags::POST_PENDING))]);
        assert_eq!(applied.results, [R::Ok]);
        assert_eq!(applied.transfers[0].amount, 250);
        assert_eq!(applied.pending, [(11, PendingStatus::Posted)]);
        let wallet = s.account(2);
        assert_eq!((wallet.debits_pending, wallet.debits_posted), (0, 250));
        assert_eq!(wallet.available_credit_balance(), 750);
        let merchant = s.account(3);
        assert_eq!(
            (merchant.credits_pending, merchant.credits_posted),
            (0, 250)
        );
        // The wallet keeps history: its balance after the hold and after the post.
        assert_eq!(applied.balances.len(), 1);
        assert_eq!(applied.balances[0].debits_posted, 250);

        // The same post retried is recognised; asking instead for the full amount is not the
        // same request, since only 250 of 600 was posted.
        let post_retry = event(settle(13, 11, 250, TransferFlags::POST_PENDING));
        assert_eq!(s.results(&[post_retry]), [R::Exists]);
        let full_retry = event(settle(13, 11, 0, TransferFlags::POST_PENDING));
        assert_eq!(s.results(&[full_retry]), [R::ExistsWithDifferentFields]);

        // A pending transfer is settled once.
        let again = [
            event(settle(14, 11, 0, TransferFlags::POST_PENDING)),
            event(settle(15, 11, 0, TransferFlags::VOID_PENDING)),
        ];
        assert_eq!(
            s.results(&again),
            [R::PendingAlreadyPosted, R::PendingAlreadyPosted]
        );

        // Zero posts the full amount; more than held is refused.
        let hold = with(transfer(16, 2, 3, 100), TransferFlags::PENDING);
        let results = s.results(&[
            event(hold),
            event(settle(17, 16, 101, TransferFlags::POST_PENDING)),
            event(settle(18, 16, 0, TransferFlags::POST_PENDING)),
        ]);
        assert_eq!(results, [R::Ok, R::AmountExceedsPending, R::Ok]);
        assert_eq!(s.harness.state().transfers[&18].amount, 100);
        assert_eq!(s.account(2).debits_posted, 350);

        // A void names no amount or exactly the held amount, and releases all of it.
        let hold = with(transfer(19, 2, 3, 50), TransferFlags::PENDING);
        let results = s.results(&[
            event(hold),
            event(settle(20, 19, 49, TransferFlags::VOID_PENDING)),
            event(settle(21, 19, 0, TransferFlags::VOID_PENDING)),
            event(settle(22, 19, 0, TransferFlags::POST_PENDING)),
        ]);
        assert_eq!(
            results,
            [
                R::Ok,
                R::VoidAmountMustMatchPending,
                R::Ok,
                R::PendingAlreadyVoided
            ]
        );
        assert_eq!(s.account(2).debits_pending, 0);
        assert_eq!(s.account(2).available_credit_balance(), 650);
        assert_eq!(s.status(19), Some(PendingStatus::Voided));
    }
}

#[test]
fn a_pending_transfer_expires_exactly_once() {
    for route in ROUTES {
        let mut s = Scenario::new(route);
        s.batch(&[open(1, AccountFlags::empty()), open(2, WALLET)]);
        s.batch(&[event(transfer(9, 1, 2, 100))]);
        let hold = NewTransfer {
            timeout_seconds: 1,
            ..with(transfer(10, 2, 1, 70), TransferFlags::PENDING)
        };
        let created = s.batch(&[event(hold)]);
        let expires_at = created.transfers[0].timestamp + SECOND_NANOSECONDS;

        // The sweep judges by the batch's first timestamp, a post by its own: here the sweep
        // slot is before the expiry and the post after it. The post is refused, the hold stays.
        let post = event(settle(11, 10, 0, TransferFlags::POST_PENDING));
        let applied = s.batch_at(expires_at - 2, &[10], &[event(transfer(12, 1, 2, 1)), post]);
        assert_eq!(applied.results, [R::Ok, R::PendingExpired]);
        assert!(applied.expired.is_empty());
        assert_eq!(s.account(2).debits_pending, 70);
        assert_eq!(s.status(10), Some(PendingStatus::Pending));

        // Named twice, released once.
        let applied = s.batch_at(expires_at + 1, &[10, 10], &[]);
        assert_eq!(applied.expired, [10]);
        assert_eq!(applied.pending, [(10, PendingStatus::Expired)]);
        assert_eq!(s.account(2).debits_pending, 0);
        assert_eq!(s.account(1).credits_pending, 0);
        assert_eq!(s.account(2).available_credit_balance(), 101);

        // Named again later: nothing more happens, and it cannot be settled.
        let late = [
            event(settle(13, 10, 0, TransferFlags::POST_PENDING)),
            event(settle(14, 10, 0, TransferFlags::VOID_PENDING)),
        ];
        let applied = s.batch_at(expires_at + SECOND_NANOSECONDS, &[10], &late);
        assert!(applied.expired.is_empty());
        assert_eq!(applied.results, [R::PendingExpired, R::PendingExpired]);
        assert_eq!(s.account(2).debits_pending, 0);
        assert_eq!(s.account(2).credits_posted, 101);
    }
}

#[test]
fn a_failed_linked_chain_leaves_nothing_behind() {
    for route in ROUTES {
        let mut s = Scenario::new(route);
        s.batch(&[
            open(1, AccountFlags::empty()),
            open(2, AccountFlags::empty()),
            open(3, WALLET),
        ]);

        // The wallet has nothing: the last transfer fails and takes the others with it.
        let chain = [
            linked(transfer(10, 1, 2, 100)),
            linked(transfer(11, 2, 1, 30)),
            event(transfer(12, 3, 1, 5)),
        ];
        let applied = s.batch(&chain);
        assert_eq!(
            applied.results,
            [
                R::LinkedEventFailed,
                R::LinkedEventFailed,
                R::ExceedsCredits
            ]
        );
        assert!(applied.transfers.is_empty());
        assert_eq!(s.account(1).debits_posted + s.account(1).credits_posted, 0);
        assert_eq!(s.account(2).debits_posted + s.account(2).credits_posted, 0);
        // The ids were not used up.
        assert_eq!(s.results(&[event(transfer(10, 1, 2, 100))]), [R::Ok]);

        // An account opened inside a failed chain does not exist afterwards.
        let chain = [
            Event::CreateAccount(NewAccount {
                id: 4,
                currency: cny(),
                kind: 1,
                flags: AccountFlags::LINKED,
                user_data: 0,
            }),
            linked(transfer(30, 1, 4, 10)),
            event(transfer(0, 1, 4, 10)),
        ];
        let applied = s.batch(&chain);
        assert_eq!(
            applied.results,
            [
                R::LinkedEventFailed,
                R::LinkedEventFailed,
                R::IdMustNotBeZero
            ]
        );
        assert!(applied.accounts_created.is_empty());
        assert!(!s.harness.state().accounts.contains_key(&4));

        // A chain left open at the end of the batch fails on its last event.
        let applied = s.batch(&[
            event(transfer(19, 1, 2, 1)),
            linked(transfer(20, 1, 2, 7)),
            linked(transfer(21, 2, 1, 3)),
        ]);
        assert_eq!(
            applied.results,
            [R::Ok, R::LinkedEventFailed, R::LinkedEventChainOpen]
        );
        assert_eq!(s.account(2).credits_posted, 101);

        // Committed alone, retried inside a chain: not the same request.
        let applied = s.batch(&[
            linked(transfer(10, 1, 2, 100)),
            event(transfer(40, 1, 2, 5)),
        ]);
        assert_eq!(
            applied.results,
            [R::ExistsWithDifferentFields, R::LinkedEventFailed]
        );
        assert!(!s.harness.state().transfers.contains_key(&40));

        // Half old, half new: a committed chain retried with another tail is refused.
        let chain = [linked(transfer(60, 1, 2, 4)), event(transfer(61, 2, 1, 1))];
        assert_eq!(s.results(&chain), [R::Ok, R::Ok]);
        let applied = s.batch(&[linked(transfer(60, 1, 2, 4)), event(transfer(62, 2, 1, 1))]);
        assert_eq!(
            applied.results,
            [R::LinkedChainDiffers, R::LinkedEventFailed]
        );
        assert!(!s.harness.state().transfers.contains_key(&62));

        // A whole committed chain, retried, is answered `exists` and moves nothing.
        let chain = [linked(transfer(50, 1, 2, 8)), event(transfer(51, 2, 1, 3))];
        assert_eq!(s.results(&chain), [R::Ok, R::Ok]);
        let before = (s.account(1), s.account(2));
        assert_eq!(s.results(&chain), [R::Exists, R::Exists]);
        assert_eq!((s.account(1), s.account(2)), before);
    }
}

#[test]
fn an_idempotent_retry_returns_exists_and_moves_nothing() {
    for route in ROUTES {
        let mut s = Scenario::new(route);
        let accounts = [open(1, AccountFlags::empty()), open(2, WALLET)];
        s.batch(&accounts);
        assert_eq!(s.results(&accounts), [R::Exists, R::Exists]);
        let other_flags = open(2, AccountFlags::empty());
        assert_eq!(s.results(&[other_flags]), [R::ExistsWithDifferentFields]);

        let payment = transfer(10, 1, 2, 100);
        assert_eq!(s.results(&[event(payment)]), [R::Ok]);
        let before = (s.account(1), s.account(2));
        let applied = s.batch(&[event(payment), event(payment)]);
        assert_eq!(applied.results, [R::Exists, R::Exists]);
        assert!(applied.transfers.is_empty());
        assert_eq!((s.account(1), s.account(2)), before);

        let changed = NewTransfer {
            amount: 101,
            ..payment
        };
        assert_eq!(s.results(&[event(changed)]), [R::ExistsWithDifferentFields]);
        assert_eq!((s.account(1), s.account(2)), before);
        assert_eq!(s.account(2).credits_posted, 100);
    }
}

#[test]
fn balancing_moves_at_most_what_is_available() {
    for route in ROUTES {
        let mut s = Scenario::new(route);
        let debt = AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS;
        s.batch(&[
            open(1, AccountFlags::empty()),
            open(2, WALLET),
            open(3, AccountFlags::empty()),
            open(5, debt),
        ]);
        s.batch(&[event(transfer(10, 1, 2, 300))]);

        let sweep = with(transfer(11, 2, 3, 1_000), TransferFlags::BALANCING_DEBIT);
        let applied = s.batch(&[event(sweep)]);
        assert_eq!(applied.results, [R::Ok]);
        assert_eq!(applied.transfers[0].amount, 300);
        assert_eq!(s.account(2).available_credit_balance(), 0);
        let again = with(transfer(12, 2, 3, 1_000), TransferFlags::BALANCING_DEBIT);
        assert_eq!(s.results(&[event(again)]), [R::ExceedsCredits]);

        // A hold counts against what can be spent.
        let hold = with(transfer(14, 2, 3, 60), TransferFlags::PENDING);
        let sweep = with(transfer(15, 2, 3, 1_000), TransferFlags::BALANCING_DEBIT);
        let applied = s.batch(&[event(transfer(13, 1, 2, 100)), event(hold), event(sweep)]);
        assert_eq!(applied.results, [R::Ok, R::Ok, R::Ok]);
        assert_eq!(applied.transfers[2].amount, 40);
        assert!(s.account(2).respects_flags());

        // The credit side: no more than the account's debits allow.
        s.batch(&[event(transfer(20, 5, 1, 500))]);
        let repay = with(transfer(21, 1, 5, 10_000), TransferFlags::BALANCING_CREDIT);
        let applied = s.batch(&[event(repay)]);
        assert_eq!(applied.transfers[0].amount, 500);
        let again = with(transfer(22, 1, 5, 10_000), TransferFlags::BALANCING_CREDIT);
        assert_eq!(s.results(&[event(again)]), [R::ExceedsDebits]);

        // A retry of a balancing transfer matches what it moved.
        assert_eq!(
            s.results(&[event(with(
                transfer(11, 2, 3, 1_000),
                TransferFlags::BALANCING_DEBIT
            ))]),
            [R::Exists]
        );
    }
}

#[test]
fn checks_run_in_the_core_order() {
    let mut s = Scenario::new(Route::FullState);
    s.batch(&[
        open(1, AccountFlags::empty()),
        open(2, AccountFlags::empty()),
    ]);
    let zero_everything = NewTransfer {
        id: 0,
        amount: 0,
        ..transfer(0, 0, 0, 0)
    };
    let both_flags = with(
        transfer(5, 1, 2, 0),
        TransferFlags::PENDING | TransferFlags::VOID_PENDING,
    );
    let timeout_without_pending = NewTransfer {
        timeout_seconds: 3,
        ..transfer(6, 1, 2, 0)
    };
    // A settlement naming the same account twice and no pending transfer: the core checks
    // the pending id first, although `accounts_must_be_different` has the smaller code.
    let settlement = NewTransfer {
        debit_account_id: 1,
        credit_account_id: 1,
        ..settle(7, 0, 0, TransferFlags::POST_PENDING)
    };
    let results = s.results(&[
        event(zero_everything),
        event(both_flags),
        event(timeout_without_pending),
        event(settlement),
        event(transfer(8, 1, 3, 1)),
    ]);
    assert_eq!(
        results,
        [
            R::IdMustNotBeZero,
            R::FlagsAreMutuallyExclusive,
            R::TimeoutReservedForPendingTransfer,
            R::PendingIdMustNotBeZero,
            R::CreditAccountNotFound,
        ]
    );
}
