//! The random workload: batches of account creations, transfers valid and invalid, retries,
//! linked chains and two-phase transfers, with a clock that moves between batches.
//!
//! The generator reads the model to aim well (an account that has money, a transfer that is
//! still pending) but never needs it to be right: a wrong aim is just another invalid request.

use ledger::{
    AccountFlags, Currency, Event, NewAccount, NewTransfer, PendingStatus, TransferFlags,
    BATCH_EVENTS_MAX, BATCH_EXPIRIES_MAX, VALUE_MAX,
};

use crate::model::Model;
use crate::rng::Rng;

/// Requests, chains and pending transfers remembered for retries and settlements.
const RECENT_MAX: usize = 1024;
/// Longest linked chain generated.
const CHAIN_EVENTS_MAX: usize = 6;
/// Longest timeout of a generated pending transfer.
const PENDING_TIMEOUT_SECONDS_MAX: u64 = 5;
/// Longest pause of the simulated clock between two batches: longer than the longest timeout,
/// so that pending transfers expire.
const CLOCK_ADVANCE_NANOSECONDS_MAX: u64 = 8_000_000_000;
/// Ids this far above the account counter are never created: "unknown account".
const UNKNOWN_ACCOUNT_OFFSET: u128 = 1 << 40;
/// Where the simulated clock starts: 2023-11-14, in nanoseconds since the Unix epoch.
const CLOCK_START_NANOSECONDS: u64 = 1_700_000_000_000_000_000;
/// Currencies of ordinary accounts, and the ISO 4217 test currency used for amounts near
/// `VALUE_MAX`, kept apart so that overflowing accounts do not clog the rest.
const CURRENCIES: [&str; 3] = ["CNY", "USD", "JPY"];
const HUGE_AMOUNT_CURRENCY: &str = "XTS";

/// Until this many accounts exist, most events open accounts.
const ACCOUNTS_AT_START: usize = 12;
/// Share of linked chains with a failing event put in on purpose.
const CHAIN_BROKEN_PERCENT: u64 = 20;
/// Share of batches timed exactly around a pending transfer's expiry.
const BOUNDARY_BATCH_PERCENT: u64 = 3;

const _: () = assert!(PENDING_TIMEOUT_SECONDS_MAX * 1_000_000_000 < CLOCK_ADVANCE_NANOSECONDS_MAX);
const _: () = assert!(CHAIN_EVENTS_MAX < BATCH_EVENTS_MAX);

/// A batch ready to apply.
#[derive(Debug, Clone)]
pub struct PlannedBatch {
    pub timestamp: u64,
    pub expiring: Vec<u128>,
    pub events: Vec<Event>,
}

/// What the generator remembers of a pending transfer it asked for.
#[derive(Debug, Clone, Copy)]
struct PendingRequest {
    id: u128,
    debit_account_id: u128,
    credit_account_id: u128,
    amount: u128,
    currency: Currency,
}

/// The seeded generator of batches.
#[derive(Debug)]
pub struct Workload {
    rng: Rng,
    batch_events_max: usize,
    currencies: Vec<Currency>,
    huge_currency: Currency,
    next_account_id: u128,
    next_transfer_id: u128,
    /// Accounts known to exist, by currency (learned from the model before each batch).
    accounts_by_currency: Vec<(Currency, Vec<u128>)>,
    accounts_learned: usize,
    account_requests: Vec<NewAccount>,
    transfer_requests: Vec<NewTransfer>,
    chains: Vec<Vec<Event>>,
    pending_requests: Vec<PendingRequest>,
}

impl Workload {
    pub fn new(seed: u64, batch_events_max: usize) -> Self {
        assert!((1..=BATCH_EVENTS_MAX).contains(&batch_events_max));
        let parse = |code: &str| Currency::parse(code).expect("valid currency code");
        let currencies: Vec<Currency> = CURRENCIES.iter().map(|code| parse(code)).collect();
        let huge_currency = parse(HUGE_AMOUNT_CURRENCY);
        let mut accounts_by_currency: Vec<(Currency, Vec<u128>)> = currencies
            .iter()
            .map(|currency| (*currency, Vec::new()))
            .collect();
        accounts_by_currency.push((huge_currency, Vec::new()));
        Workload {
            rng: Rng::new(seed),
            batch_events_max,
            currencies,
            huge_currency,
            next_account_id: 1,
            next_transfer_id: 1,
            accounts_by_currency,
            accounts_learned: 0,
            account_requests: Vec::new(),
            transfer_requests: Vec::new(),
            chains: Vec::new(),
            pending_requests: Vec::new(),
        }
    }

    /// The next batch: at most `events_left` events, starting after `timestamp_last`.
    pub fn next_batch(
        &mut self,
        model: &Model,
        timestamp_last: u64,
        events_left: usize,
    ) -> PlannedBatch {
        assert!(events_left > 0);
        self.learn_accounts(model);
        if self.rng.percent(BOUNDARY_BATCH_PERCENT) {
            if let Some(batch) = self.boundary_batch(model, timestamp_last) {
                return batch;
            }
        }
        let timestamp = timestamp_last.max(CLOCK_START_NANOSECONDS) + self.clock_advance();
        let expiring = self.expiring(model, timestamp);
        let size_max = self.batch_events_max.min(events_left);
        let size = self.rng.between(1, size_max as u64) as usize;
        let mut events = Vec::with_capacity(size);
        while events.len() < size {
            let room = size - events.len();
            self.push_events(model, &mut events, room);
        }
        assert_eq!(events.len(), size);
        // Sometimes the batch ends inside a chain: the last event asks to be linked to an
        // event that is not there.
        if self.rng.percent(6) {
            set_linked(events.last_mut().expect("at least one event"), true);
        }
        PlannedBatch {
            timestamp,
            expiring,
            events,
        }
    }

    /// A batch timed to the nanosecond around a pending transfer's expiry: one settlement of
    /// it, with or without the transfer in the sweep list. The sweep compares the expiry
    /// with the batch's first timestamp, the settlement with its own.
    fn boundary_batch(&mut self, model: &Model, timestamp_last: u64) -> Option<PlannedBatch> {
        let candidates: Vec<(u128, u64)> = model
            .pending_expiring_after(timestamp_last + 2)
            .take(64)
            .collect();
        let (id, expires_at) = *self.rng.pick(&candidates)?;
        let held = model.transfer(id)?;
        let flag = if self.rng.percent(50) {
            TransferFlags::POST_PENDING
        } else {
            TransferFlags::VOID_PENDING
        };
        let settlement = NewTransfer {
            id: self.fresh_transfer_id(),
            debit_account_id: 0,
            credit_account_id: 0,
            amount: 0,
            pending_id: id,
            user_data: 0,
            timeout_seconds: 0,
            kind: 1,
            flags: flag,
            currency: held.currency,
        };
        self.remember_transfer(settlement);
        let (timestamp, expiring) = match self.rng.below(4) {
            // Not swept (due one nanosecond later), and the settlement lands on the expiry.
            0 => (expires_at - 1, vec![id]),
            // Swept at exactly its expiry; the settlement finds it expired.
            1 => (expires_at, vec![id]),
            // Settled one nanosecond before it would expire.
            2 => (expires_at - 1, vec![]),
            // Named twice, not swept; the settlement lands on the expiry.
            _ => (expires_at - 2, vec![id, id]),
        };
        Some(PlannedBatch {
            timestamp,
            expiring,
            events: vec![Event::CreateTransfer(settlement)],
        })
    }

    fn learn_accounts(&mut self, model: &Model) {
        for id in &model.account_ids()[self.accounts_learned..] {
            let currency = model.account(*id).expect("listed accounts exist").currency;
            if let Some((_, ids)) = self
                .accounts_by_currency
                .iter_mut()
                .find(|(c, _)| *c == currency)
            {
                ids.push(*id);
            }
        }
        self.accounts_learned = model.account_ids().len();
    }

    fn clock_advance(&mut self) -> u64 {
        match self.rng.below(100) {
            0..60 => self.rng.between(1, 1_000_000),
            60..85 => self.rng.between(1_000_000, 500_000_000),
            85..95 => self.rng.between(500_000_000, 3_000_000_000),
            _ => self
                .rng
                .between(3_000_000_000, CLOCK_ADVANCE_NANOSECONDS_MAX),
        }
    }

    /// The due pending transfers (usually all of them, sometimes only some, so that a post
    /// meets one that is due but not yet swept), plus ids the core must ignore.
    fn expiring(&mut self, model: &Model, timestamp: u64) -> Vec<u128> {
        let due = model.pending_due(timestamp);
        let mut expiring: Vec<u128> = if self.rng.percent(80) {
            due
        } else {
            due.into_iter().filter(|_| self.rng.percent(50)).collect()
        };
        let extras = self.rng.below(4);
        for _ in 0..extras {
            let extra = match self.rng.below(5) {
                // Still pending: not due yet, or never due (no timeout).
                0 => {
                    let open: Vec<u128> = model.open_pending().take(64).collect();
                    self.rng.pick(&open).copied()
                }
                // Settled or expired already, or never committed.
                1 => self
                    .rng
                    .pick(&self.pending_requests)
                    .map(|pending| pending.id),
                // Not a pending transfer at all.
                2 => self
                    .rng
                    .pick(&self.transfer_requests)
                    .map(|request| request.id),
                // Twice in the same list.
                3 => self.rng.pick(&expiring).copied(),
                _ => Some(u128::from(self.rng.next_u64())),
            };
            expiring.extend(extra);
        }
        self.rng.shuffle(&mut expiring);
        expiring.truncate(BATCH_EXPIRIES_MAX);
        expiring
    }

    fn push_events(&mut self, model: &Model, events: &mut Vec<Event>, room: usize) {
        if model.account_count() < ACCOUNTS_AT_START && self.rng.percent(70) {
            let account = self.new_account();
            self.push_account(events, account);
            return;
        }
        match self.rng.below(100) {
            0..5 => {
                let account = self.account_request();
                self.push_account(events, account);
            }
            5..36 => {
                let transfer = self.simple_transfer(model);
                self.push_transfer(events, transfer);
            }
            36..46 => {
                let transfer = self.invalid_transfer(model);
                self.push_transfer(events, transfer);
            }
            46..54 => {
                let transfer = self.resubmission(model);
                self.push_transfer(events, transfer);
            }
            54..64 if room >= 2 => {
                let chain = self.chain(model, room);
                events.extend(chain);
            }
            64..75 => {
                let transfer = self.pending_transfer(model);
                self.push_transfer(events, transfer);
            }
            75..82 => {
                let transfer = self.clean_settlement(model);
                self.push_transfer(events, transfer);
            }
            82..89 => {
                let transfer = self.settlement(model);
                self.push_transfer(events, transfer);
            }
            89..96 => {
                let transfer = self.balancing_transfer(model);
                self.push_transfer(events, transfer);
            }
            _ => {
                let transfer = self.huge_transfer(model);
                self.push_transfer(events, transfer);
            }
        }
    }

    fn push_account(&mut self, events: &mut Vec<Event>, account: NewAccount) {
        remember(&mut self.rng, &mut self.account_requests, account);
        events.push(Event::CreateAccount(account));
    }

    fn push_transfer(&mut self, events: &mut Vec<Event>, transfer: NewTransfer) {
        self.remember_transfer(transfer);
        events.push(Event::CreateTransfer(transfer));
    }

    fn remember_transfer(&mut self, transfer: NewTransfer) {
        remember(&mut self.rng, &mut self.transfer_requests, transfer);
        if transfer.flags.contains(TransferFlags::PENDING) {
            let pending = PendingRequest {
                id: transfer.id,
                debit_account_id: transfer.debit_account_id,
                credit_account_id: transfer.credit_account_id,
                amount: transfer.amount,
                currency: transfer.currency,
            };
            remember(&mut self.rng, &mut self.pending_requests, pending);
        }
    }

    fn fresh_account_id(&mut self) -> u128 {
        let id = self.next_account_id;
        self.next_account_id += 1;
        id
    }

    fn fresh_transfer_id(&mut self) -> u128 {
        // Now and then a large id anywhere in the valid range.
        if self.rng.percent(2) {
            return u128::from(self.rng.between(1 << 40, VALUE_MAX as u64));
        }
        let id = self.next_transfer_id;
        self.next_transfer_id += 1;
        id
    }

    fn unknown_account_id(&mut self) -> u128 {
        self.next_account_id + UNKNOWN_ACCOUNT_OFFSET + u128::from(self.rng.below(1000))
    }

    fn user_data(&mut self) -> u128 {
        if self.rng.percent(70) {
            0
        } else {
            u128::from(self.rng.below(1_000_000))
        }
    }

    fn new_account(&mut self) -> NewAccount {
        let currency = if self.rng.percent(15) {
            self.huge_currency
        } else {
            *self.rng.pick(&self.currencies).expect("currencies")
        };
        let mut flags = match self.rng.below(100) {
            0..40 => AccountFlags::empty(),
            40..70 => AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
            70..97 => AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
            _ => {
                AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS
                    | AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS
            }
        };
        if self.rng.percent(20) {
            flags |= AccountFlags::HISTORY;
        }
        NewAccount {
            id: self.fresh_account_id(),
            currency,
            kind: self.rng.between(1, 5) as u16,
            flags,
            user_data: self.user_data(),
        }
    }

    /// A new account, or one of the ways to get an account creation wrong.
    fn account_request(&mut self) -> NewAccount {
        let mut account = self.new_account();
        match self.rng.below(100) {
            0..75 => {}
            75..80 => account.id = 0,
            80..84 => account.id = VALUE_MAX + 1 + u128::from(self.rng.below(1000)),
            84..88 => account.user_data = VALUE_MAX + 1,
            88..94 => {
                if let Some(previous) = self.rng.pick(&self.account_requests) {
                    account = *previous;
                    account.flags = account.flags.without(AccountFlags::LINKED);
                }
            }
            _ => {
                // Same id, another field.
                if let Some(previous) = self.rng.pick(&self.account_requests).copied() {
                    account = previous;
                    account.flags = account.flags.without(AccountFlags::LINKED);
                    match self.rng.below(3) {
                        0 => account.kind = account.kind.wrapping_add(1),
                        1 => account.user_data = account.user_data.wrapping_add(1),
                        _ => account.currency = self.other_currency(account.currency),
                    }
                }
            }
        }
        account
    }

    fn other_currency(&mut self, currency: Currency) -> Currency {
        let others: Vec<Currency> = self
            .currencies
            .iter()
            .chain([&self.huge_currency])
            .copied()
            .filter(|other| *other != currency)
            .collect();
        *self.rng.pick(&others).expect("several currencies")
    }

    /// Two different existing accounts of one currency, when there are any.
    fn account_pair(&mut self, currency: Option<Currency>) -> Option<(Currency, u128, u128)> {
        let candidates: Vec<usize> = (0..self.accounts_by_currency.len())
            .filter(|index| {
                let (account_currency, ids) = &self.accounts_by_currency[*index];
                ids.len() >= 2 && currency.is_none_or(|wanted| wanted == *account_currency)
            })
            .collect();
        let index = *self.rng.pick(&candidates)?;
        let (currency, ids) = &self.accounts_by_currency[index];
        let debit = ids[self.rng.index(ids.len())];
        let mut credit = ids[self.rng.index(ids.len())];
        while credit == debit {
            credit = ids[self.rng.index(ids.len())];
        }
        Some((*currency, debit, credit))
    }

    /// An ordinary currency's pair, or any pair when there is none.
    fn ordinary_pair(&mut self) -> Option<(Currency, u128, u128)> {
        for _ in 0..4 {
            let pair = self.account_pair(None);
            if pair.is_none_or(|(currency, _, _)| currency != self.huge_currency) {
                return pair;
            }
        }
        self.account_pair(None)
    }

    /// An amount that the accounts' flags usually allow.
    fn amount_for(&mut self, model: &Model, debit_id: u128, credit_id: u128) -> u128 {
        let mut amount = match self.rng.below(100) {
            0..70 => u128::from(self.rng.between(1, 10_000)),
            70..95 => u128::from(self.rng.between(1, 1_000_000)),
            _ => u128::from(self.rng.between(1, 100)),
        };
        let (Some(debit), Some(credit)) = (model.account(debit_id), model.account(credit_id))
        else {
            return amount;
        };
        let spendable = debit
            .credits_posted
            .saturating_sub(debit.debits_posted + debit.debits_pending);
        let room = credit
            .debits_posted
            .saturating_sub(credit.credits_posted + credit.credits_pending);
        let debit_limited = debit
            .flags
            .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS);
        let credit_limited = credit
            .flags
            .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS);
        match self.rng.below(100) {
            // Exactly what the flags allow, or one more.
            0..10 if debit_limited => amount = (spendable + u128::from(self.rng.below(2))).max(1),
            10..20 if credit_limited => amount = (room + u128::from(self.rng.below(2))).max(1),
            20..100 => {
                if debit_limited && spendable > 0 {
                    amount = 1 + self.below_u128(amount.min(spendable));
                }
                if credit_limited && room > 0 {
                    amount = amount.min(room);
                }
            }
            _ => {}
        }
        amount
    }

    /// Whether the accounts' flags leave room for some transfer from `debit` to `credit`.
    fn can_move(model: &Model, debit: u128, credit: u128) -> bool {
        let (Some(debit), Some(credit)) = (model.account(debit), model.account(credit)) else {
            return false;
        };
        let spendable = debit
            .credits_posted
            .saturating_sub(debit.debits_posted + debit.debits_pending);
        let room = credit
            .debits_posted
            .saturating_sub(credit.credits_posted + credit.credits_pending);
        (!debit
            .flags
            .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
            || spendable > 0)
            && (!credit
                .flags
                .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
                || room > 0)
    }

    fn simple_transfer(&mut self, model: &Model) -> NewTransfer {
        // Mostly between accounts that can move something, so that chains get committed too.
        let mut pair = self.ordinary_pair();
        for _ in 0..4 {
            let Some((_, debit, credit)) = pair else {
                break;
            };
            if Self::can_move(model, debit, credit) || self.rng.percent(20) {
                break;
            }
            pair = self.ordinary_pair();
        }
        let Some((currency, debit, credit)) = pair else {
            // No accounts yet: a transfer between accounts that do not exist.
            let unknown = self.unknown_account_id();
            return NewTransfer {
                id: self.fresh_transfer_id(),
                debit_account_id: unknown,
                credit_account_id: unknown + 1,
                amount: 1,
                pending_id: 0,
                user_data: 0,
                timeout_seconds: 0,
                kind: 1,
                flags: TransferFlags::empty(),
                currency: self.currencies[0],
            };
        };
        let amount = self.amount_for(model, debit, credit);
        NewTransfer {
            id: self.fresh_transfer_id(),
            debit_account_id: debit,
            credit_account_id: credit,
            amount,
            pending_id: 0,
            user_data: self.user_data(),
            timeout_seconds: 0,
            kind: self.rng.between(1, 3) as u16,
            flags: TransferFlags::empty(),
            currency,
        }
    }

    /// A transfer with one to three things wrong with it, to exercise the order of checks.
    fn invalid_transfer(&mut self, model: &Model) -> NewTransfer {
        let mut transfer = if self.rng.percent(70) {
            self.simple_transfer(model)
        } else {
            self.settlement(model)
        };
        let mistakes = self.rng.between(1, 3);
        for _ in 0..mistakes {
            self.break_transfer(&mut transfer);
        }
        transfer
    }

    fn break_transfer(&mut self, transfer: &mut NewTransfer) {
        use TransferFlags as F;
        match self.rng.below(22) {
            0 => transfer.id = 0,
            1 => transfer.id = VALUE_MAX + 1 + u128::from(self.rng.below(1000)),
            2 => transfer.id = u128::MAX,
            3 => transfer.user_data = VALUE_MAX + 1,
            4 => transfer.debit_account_id = 0,
            5 => transfer.credit_account_id = 0,
            6 => transfer.credit_account_id = transfer.debit_account_id,
            7 => transfer.pending_id = transfer.id.wrapping_add(1).max(1),
            8 => transfer.pending_id = 0,
            9 => transfer.pending_id = transfer.id,
            10 => transfer.timeout_seconds = self.rng.between(1, 10) as u32,
            11 => transfer.amount = 0,
            12 => transfer.amount = VALUE_MAX + 1,
            13 => transfer.amount = u128::MAX,
            14 => transfer.debit_account_id = self.unknown_account_id(),
            15 => transfer.credit_account_id = self.unknown_account_id(),
            16 => transfer.currency = self.other_currency(transfer.currency),
            17 => transfer.flags = transfer.flags | F::PENDING | F::POST_PENDING,
            18 => transfer.flags = transfer.flags | F::POST_PENDING | F::VOID_PENDING,
            19 => transfer.flags = transfer.flags | F::POST_PENDING | F::BALANCING_DEBIT,
            20 => transfer.flags = transfer.flags | F::VOID_PENDING | F::BALANCING_CREDIT,
            _ => transfer.pending_id = self.unknown_pending_id(),
        }
    }

    /// Uniform in `0..bound` for amounts; bounds past `u64::MAX` are cut to it.
    fn below_u128(&mut self, bound: u128) -> u128 {
        u128::from(self.rng.below(bound.min(u128::from(u64::MAX)) as u64))
    }

    fn unknown_pending_id(&mut self) -> u128 {
        self.next_transfer_id + (1 << 50) + u128::from(self.rng.below(1000))
    }

    fn pending_transfer(&mut self, model: &Model) -> NewTransfer {
        let mut transfer = self.simple_transfer(model);
        transfer.flags |= TransferFlags::PENDING;
        if self.rng.percent(60) {
            transfer.timeout_seconds = self.rng.between(1, PENDING_TIMEOUT_SECONDS_MAX) as u32;
        }
        if self.rng.percent(10) {
            transfer.flags |= TransferFlags::BALANCING_DEBIT;
            transfer.amount = transfer.amount.saturating_mul(10);
        }
        transfer
    }

    /// A pending transfer remembered, preferably one the model says is still pending; with
    /// `open_only`, only such a one.
    fn pending_target(&mut self, model: &Model, open_only: bool) -> Option<PendingRequest> {
        let attempts = if open_only { 8 } else { 4 };
        let mut target = None;
        for _ in 0..attempts {
            target = self.rng.pick(&self.pending_requests).copied();
            let open = target.is_some_and(|pending| {
                model.pending_status(pending.id) == Some(PendingStatus::Pending)
            });
            if open {
                break;
            }
            if open_only {
                target = None;
            } else if self.rng.percent(15) {
                break;
            }
        }
        // What was committed wins over what was asked (a balancing hold may be smaller).
        target.map(|mut pending| {
            if let Some(committed) = model.transfer(pending.id) {
                pending.amount = committed.amount;
            }
            pending
        })
    }

    /// A post or void: full, partial, too much, twice, after expiry, with wrong details.
    fn settlement(&mut self, model: &Model) -> NewTransfer {
        let Some(pending) = self.pending_target(model, false) else {
            return self.pending_transfer(model);
        };
        let posting = self.rng.percent(60);
        let held = pending.amount.max(1);
        let amount = if posting {
            match self.rng.below(100) {
                // Posting exactly up to the limit of a posted column, or one past it.
                0..30 if pending.currency == self.huge_currency => {
                    let one_more = u128::from(self.rng.below(2));
                    let column = if self.rng.percent(50) {
                        model
                            .account(pending.debit_account_id)
                            .map_or(0, |account| account.debits_posted)
                    } else {
                        model
                            .account(pending.credit_account_id)
                            .map_or(0, |account| account.credits_posted)
                    };
                    (VALUE_MAX - column.min(VALUE_MAX) + one_more).clamp(1, held)
                }
                0..30 => 0,
                30..60 => held,
                60..85 if held > 1 => 1 + self.below_u128(held - 1),
                85..95 => held.saturating_add(1 + u128::from(self.rng.below(100))),
                _ => u128::from(self.rng.between(1, 10_000)),
            }
        } else {
            match self.rng.below(100) {
                0..60 => 0,
                60..90 => held,
                _ => held.saturating_add(1),
            }
        };
        let (debit_account_id, credit_account_id) = match self.rng.below(100) {
            0..70 => (0, 0),
            70..90 => (pending.debit_account_id, pending.credit_account_id),
            90..95 => (pending.credit_account_id, pending.debit_account_id),
            _ => (0, pending.debit_account_id),
        };
        let currency = if self.rng.percent(4) {
            self.other_currency(pending.currency)
        } else {
            pending.currency
        };
        let pending_id = match self.rng.below(100) {
            0..96 => pending.id,
            96..98 => self
                .rng
                .pick(&self.transfer_requests)
                .map_or(pending.id, |request| request.id),
            _ => self.unknown_pending_id(),
        };
        let flag = if posting {
            TransferFlags::POST_PENDING
        } else {
            TransferFlags::VOID_PENDING
        };
        NewTransfer {
            id: self.fresh_transfer_id(),
            debit_account_id,
            credit_account_id,
            amount,
            pending_id,
            user_data: self.user_data(),
            timeout_seconds: 0,
            kind: self.rng.between(1, 3) as u16,
            flags: flag,
            currency,
        }
    }

    /// A post or void that should succeed: of a transfer still pending, with nothing wrong.
    fn clean_settlement(&mut self, model: &Model) -> NewTransfer {
        let Some(pending) = self.pending_target(model, true) else {
            return self.pending_transfer(model);
        };
        let posting = self.rng.percent(60);
        let amount = match self.rng.below(3) {
            0 => 0,
            1 if posting && pending.amount > 1 => 1 + self.below_u128(pending.amount - 1),
            _ => pending.amount,
        };
        let (debit_account_id, credit_account_id) = if self.rng.percent(70) {
            (0, 0)
        } else {
            (pending.debit_account_id, pending.credit_account_id)
        };
        NewTransfer {
            id: self.fresh_transfer_id(),
            debit_account_id,
            credit_account_id,
            amount,
            pending_id: pending.id,
            user_data: self.user_data(),
            timeout_seconds: 0,
            kind: self.rng.between(1, 3) as u16,
            flags: if posting {
                TransferFlags::POST_PENDING
            } else {
                TransferFlags::VOID_PENDING
            },
            currency: pending.currency,
        }
    }

    /// A balancing transfer asking for more than there usually is.
    fn balancing_transfer(&mut self, model: &Model) -> NewTransfer {
        use TransferFlags as F;
        let flags = match self.rng.below(100) {
            0..55 => F::BALANCING_DEBIT,
            55..85 => F::BALANCING_CREDIT,
            _ => F::BALANCING_DEBIT | F::BALANCING_CREDIT,
        };
        // Aim at an account the flag matters for.
        let mut chosen = self.ordinary_pair();
        for _ in 0..8 {
            let Some((_, debit, credit)) = chosen else {
                break;
            };
            let fits = if flags.contains(F::BALANCING_DEBIT) {
                model.account(debit).is_some_and(|account| {
                    account
                        .flags
                        .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
                })
            } else {
                model.account(credit).is_some_and(|account| {
                    account
                        .flags
                        .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
                })
            };
            if fits {
                break;
            }
            chosen = self.ordinary_pair();
        }
        let mut transfer = self.simple_transfer(model);
        if let Some((currency, debit, credit)) = chosen {
            transfer.currency = currency;
            transfer.debit_account_id = debit;
            transfer.credit_account_id = credit;
        }
        transfer.amount = u128::from(self.rng.between(1, 2_000_000));
        transfer.flags = flags;
        if self.rng.percent(15) {
            transfer.flags |= F::PENDING;
        }
        transfer
    }

    /// Amounts near `VALUE_MAX` between test-currency accounts, to reach the overflow checks.
    fn huge_transfer(&mut self, model: &Model) -> NewTransfer {
        let mut transfer = self.simple_transfer(model);
        if let Some((currency, debit, credit)) = self.account_pair(Some(self.huge_currency)) {
            transfer.currency = currency;
            transfer.debit_account_id = debit;
            transfer.credit_account_id = credit;
        }
        transfer.flags = match self.rng.below(4) {
            0 => TransferFlags::PENDING,
            1 => TransferFlags::BALANCING_CREDIT,
            _ => TransferFlags::empty(),
        };
        let pending = transfer.flags.contains(TransferFlags::PENDING);
        let debit_column = model
            .account(transfer.debit_account_id)
            .map_or(0, |account| {
                if pending {
                    account.debits_pending
                } else {
                    account.debits_posted
                }
            });
        let credit_column = model
            .account(transfer.credit_account_id)
            .map_or(0, |account| {
                if pending {
                    account.credits_pending
                } else {
                    account.credits_posted
                }
            });
        let below_maximum = u128::from(self.rng.below(1_000_000));
        let one_more = u128::from(self.rng.below(2));
        transfer.amount = match self.rng.below(6) {
            0 => VALUE_MAX,
            1 => VALUE_MAX - below_maximum,
            2 => VALUE_MAX / 2 + below_maximum,
            // Exactly to the limit of a column, or one past it.
            3 => (VALUE_MAX - debit_column + one_more).max(1),
            4 => (VALUE_MAX - credit_column + one_more).max(1),
            _ => u128::from(self.rng.between(1, 1 << 62)),
        };
        transfer
    }

    /// An earlier request again: exactly (a retry), or with the same id and another field.
    fn resubmission(&mut self, model: &Model) -> NewTransfer {
        let Some(mut transfer) = self.rng.pick(&self.transfer_requests).copied() else {
            return self.simple_transfer(model);
        };
        transfer.flags = transfer.flags.without(TransferFlags::LINKED);
        if self.rng.percent(70) {
            return transfer;
        }
        match self.rng.below(6) {
            0 => transfer.amount = transfer.amount.wrapping_add(1),
            1 => transfer.user_data = transfer.user_data.wrapping_add(1),
            2 => transfer.kind = transfer.kind.wrapping_add(1),
            3 => std::mem::swap(
                &mut transfer.debit_account_id,
                &mut transfer.credit_account_id,
            ),
            4 => transfer.timeout_seconds = transfer.timeout_seconds.wrapping_add(1),
            _ => transfer.flags = transfer.flags.union(TransferFlags::PENDING),
        }
        transfer
    }

    /// A linked chain of at most `room` events: new work, a retry of an earlier chain, or an
    /// earlier chain with something new added. Some have a failing event somewhere.
    fn chain(&mut self, model: &Model, room: usize) -> Vec<Event> {
        assert!(room >= 2);
        let mut chain: Vec<Event> = match self.rng.below(100) {
            0..12 if !self.chains.is_empty() => {
                let previous = self.rng.pick(&self.chains).expect("not empty").clone();
                previous.into_iter().take(room).collect()
            }
            12..20 if !self.chains.is_empty() => {
                let mut previous = self.rng.pick(&self.chains).expect("not empty").clone();
                previous.truncate((room - 1).min(CHAIN_EVENTS_MAX - 1));
                let position = self.rng.index(previous.len() + 1);
                let transfer = self.simple_transfer(model);
                self.remember_transfer(transfer);
                previous.insert(position, Event::CreateTransfer(transfer));
                previous
            }
            20..45 => {
                // Open an account and fund it in one go.
                let account = self.new_account();
                remember(&mut self.rng, &mut self.account_requests, account);
                let mut chain = vec![Event::CreateAccount(account)];
                if let Some((_, source, _)) = self.account_pair(Some(account.currency)) {
                    let mut funding = self.simple_transfer(model);
                    funding.debit_account_id = source;
                    funding.credit_account_id = account.id;
                    funding.currency = account.currency;
                    self.remember_transfer(funding);
                    chain.push(Event::CreateTransfer(funding));
                } else {
                    let second = self.new_account();
                    remember(&mut self.rng, &mut self.account_requests, second);
                    chain.push(Event::CreateAccount(second));
                }
                chain
            }
            _ => {
                let length = self.rng.between(2, room.min(CHAIN_EVENTS_MAX) as u64) as usize;
                let mut chain = Vec::with_capacity(length);
                for _ in 0..length {
                    let transfer = match self.rng.below(10) {
                        0..5 => self.simple_transfer(model),
                        5..7 => self.pending_transfer(model),
                        7..9 => self.clean_settlement(model),
                        _ => self.balancing_transfer(model),
                    };
                    self.remember_transfer(transfer);
                    chain.push(Event::CreateTransfer(transfer));
                }
                chain
            }
        };
        if chain.len() >= 2 && self.rng.percent(CHAIN_BROKEN_PERCENT) {
            let position = self.rng.index(chain.len());
            let broken = self.invalid_transfer(model);
            self.remember_transfer(broken);
            chain[position] = Event::CreateTransfer(broken);
        }
        let last = chain.len() - 1;
        for (position, event) in chain.iter_mut().enumerate() {
            set_linked(event, position != last);
        }
        assert!(chain.len() <= room);
        remember(&mut self.rng, &mut self.chains, chain.clone());
        chain
    }
}

/// Keeps at most `RECENT_MAX` items, replacing a random one when full.
fn remember<T>(rng: &mut Rng, items: &mut Vec<T>, item: T) {
    if items.len() < RECENT_MAX {
        items.push(item);
    } else {
        let position = rng.index(items.len());
        items[position] = item;
    }
}

fn set_linked(event: &mut Event, linked: bool) {
    match event {
        Event::CreateAccount(account) => {
            account.flags = if linked {
                account.flags | AccountFlags::LINKED
            } else {
                account.flags.without(AccountFlags::LINKED)
            };
        }
        Event::CreateTransfer(transfer) => {
            transfer.flags = if linked {
                transfer.flags | TransferFlags::LINKED
            } else {
                transfer.flags.without(TransferFlags::LINKED)
            };
        }
    }
}
