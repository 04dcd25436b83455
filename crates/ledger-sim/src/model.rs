//! The reference model: what the ledger should do to a batch, written for clarity, not speed.
//!
//! It is written from the documented rules and shares no code with `ledger::apply`: it uses
//! only the ledger's data types, result codes and `VALUE_MAX`. Where the two differ, one of
//! them is wrong, and the simulator says which event showed it.
//!
//! Each linked chain (an unlinked event is a chain of one) is applied to a [`Draft`]: a
//! copy-on-write layer over the model that holds the chain's writes. A chain that succeeds
//! merges its draft; a chain that fails drops it. This is the "clone the model, restore on
//! failure" rule, without copying every transfer ever made for every chain.

use std::collections::{BTreeMap, BTreeSet};

use ledger::{
    Account, AccountBalance, AccountFlags, Event, EventResult, NewAccount, NewTransfer,
    PendingStatus, Transfer, TransferFlags, VALUE_MAX,
};

const NANOSECONDS_PER_SECOND: u64 = 1_000_000_000;

/// Every account, transfer and pending status the ledger should hold.
#[derive(Debug, Clone, Default)]
pub struct Model {
    accounts: BTreeMap<u128, Account>,
    /// Account ids in the order they were created, for the workload to pick from.
    account_ids: Vec<u128>,
    transfers: BTreeMap<u128, Transfer>,
    pending: BTreeMap<u128, PendingStatus>,
    /// Pending transfers whose status is still `Pending`.
    open_pending: BTreeSet<u128>,
    /// Those of them with a timeout, by expiry time.
    open_pending_by_expiry: BTreeSet<(u64, u128)>,
}

/// What the model says one batch does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    pub results: Vec<EventResult>,
    /// Transfers committed, in order.
    pub transfers: Vec<Transfer>,
    /// Balances after each transfer or expiry, for accounts with the `HISTORY` flag.
    pub balances: Vec<AccountBalance>,
    /// Pending transfers whose hold the expiry sweep released, in sweep order.
    pub expired: Vec<u128>,
    /// Accounts created, in order.
    pub accounts_created: Vec<u128>,
    /// Accounts that existed before the batch and whose values changed.
    pub accounts_changed: Vec<u128>,
    /// Pending transfers created or whose status changed, with their final status.
    pub pending_changed: Vec<(u128, PendingStatus)>,
    /// The timestamp of the last expiry slot or event.
    pub timestamp_last: u64,
}

/// When a pending transfer expires: its timestamp plus its timeout, if it has one.
pub fn expiry_time(transfer: &Transfer) -> Option<u64> {
    let is_pending = transfer.flags.contains(TransferFlags::PENDING);
    if !is_pending || transfer.timeout_seconds == 0 {
        return None;
    }
    let timeout_nanoseconds = u64::from(transfer.timeout_seconds) * NANOSECONDS_PER_SECOND;
    Some(transfer.timestamp.saturating_add(timeout_nanoseconds))
}

impl Model {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn account(&self, id: u128) -> Option<&Account> {
        self.accounts.get(&id)
    }

    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// Account ids in creation order.
    pub fn account_ids(&self) -> &[u128] {
        &self.account_ids
    }

    pub fn transfer(&self, id: u128) -> Option<&Transfer> {
        self.transfers.get(&id)
    }

    pub fn transfers(&self) -> impl Iterator<Item = &Transfer> {
        self.transfers.values()
    }

    pub fn transfer_count(&self) -> usize {
        self.transfers.len()
    }

    pub fn pending_status(&self, id: u128) -> Option<PendingStatus> {
        self.pending.get(&id).copied()
    }

    pub fn pending_statuses(&self) -> impl Iterator<Item = (u128, PendingStatus)> + '_ {
        self.pending.iter().map(|(id, status)| (*id, *status))
    }

    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Pending transfers still pending, in id order.
    pub fn open_pending(&self) -> impl Iterator<Item = u128> + '_ {
        self.open_pending.iter().copied()
    }

    /// Pending transfers still pending whose timeout has passed at `timestamp`, by expiry.
    pub fn pending_due(&self, timestamp: u64) -> Vec<u128> {
        self.open_pending_by_expiry
            .range(..=(timestamp, u128::MAX))
            .map(|(_, id)| *id)
            .collect()
    }

    /// Pending transfers still pending that expire after `timestamp`, with their expiry, by
    /// expiry.
    pub fn pending_expiring_after(&self, timestamp: u64) -> impl Iterator<Item = (u128, u64)> + '_ {
        let after = (timestamp.saturating_add(1), 0);
        self.open_pending_by_expiry
            .range(after..)
            .map(|(expires_at, id)| (*id, *expires_at))
    }

    /// Applies a batch: first the expiry sweep, one timestamp per entry of `expiring`, then
    /// the events, one timestamp each, chain by chain.
    pub fn apply(&mut self, expiring: &[u128], events: &[Event], timestamp: u64) -> Expected {
        assert!(timestamp > 0);
        let mut expected = Expected::default();
        let mut before = Before::default();
        let mut clock = timestamp;
        for pending_id in expiring {
            let mut draft = Draft::new(self);
            draft.expire(*pending_id, timestamp, clock);
            let changes = draft.changes;
            self.merge(changes, &mut expected, &mut before);
            clock += 1;
        }
        for chain in chains(events) {
            let chain_events = &events[chain.start..chain.end];
            let mut draft = Draft::new(self);
            let mut results = Vec::with_capacity(chain_events.len());
            for (offset, event) in chain_events.iter().enumerate() {
                let result = draft.event(event, clock + offset as u64);
                results.push(result);
                if !matches!(result, EventResult::Ok | EventResult::Exists) {
                    break;
                }
            }
            let changes = draft.changes;
            match chain_verdict(&results, chain_events.len(), chain.open) {
                Verdict::Commit => {
                    self.merge(changes, &mut expected, &mut before);
                    expected.results.extend(results);
                }
                Verdict::Fail { position, result } => {
                    // The draft is dropped: nothing of the chain happened.
                    for offset in 0..chain_events.len() {
                        expected.results.push(if offset == position {
                            result
                        } else {
                            EventResult::LinkedEventFailed
                        });
                    }
                }
            }
            clock += chain_events.len() as u64;
        }
        expected.timestamp_last = clock - 1;
        for (id, previous) in &before.accounts {
            let now = self.accounts.get(id);
            if previous.is_some() && previous.as_ref() != now {
                expected.accounts_changed.push(*id);
            }
        }
        for (id, previous) in &before.pending {
            let now = self.pending.get(id).copied();
            if *previous != now {
                expected
                    .pending_changed
                    .push((*id, now.expect("statuses are never removed")));
            }
        }
        expected
    }

    fn merge(&mut self, changes: Changes, expected: &mut Expected, before: &mut Before) {
        for id in &changes.accounts_created {
            self.account_ids.push(*id);
        }
        for (id, account) in changes.accounts {
            before
                .accounts
                .entry(id)
                .or_insert_with(|| self.accounts.get(&id).copied());
            self.accounts.insert(id, account);
        }
        for transfer in &changes.transfers {
            let previous = self.transfers.insert(transfer.id, *transfer);
            assert!(
                previous.is_none(),
                "the model commits transfer {} twice",
                transfer.id
            );
        }
        for (id, status) in changes.pending {
            before
                .pending
                .entry(id)
                .or_insert_with(|| self.pending.get(&id).copied());
            self.pending.insert(id, status);
            let expiry = expiry_time(&self.transfers[&id]).map(|expires_at| (expires_at, id));
            if status == PendingStatus::Pending {
                self.open_pending.insert(id);
                self.open_pending_by_expiry.extend(expiry);
            } else {
                self.open_pending.remove(&id);
                if let Some(key) = expiry {
                    self.open_pending_by_expiry.remove(&key);
                }
            }
        }
        expected.transfers.extend(changes.transfers);
        expected.balances.extend(changes.balances);
        expected.expired.extend(changes.expired);
        expected.accounts_created.extend(changes.accounts_created);
    }
}

/// The values of what a batch touched, as they were before it.
#[derive(Default)]
struct Before {
    accounts: BTreeMap<u128, Option<Account>>,
    pending: BTreeMap<u128, Option<PendingStatus>>,
}

/// A run of linked events ending with the first unlinked one (or the batch's end: `open`).
struct Chain {
    start: usize,
    end: usize,
    open: bool,
}

fn chains(events: &[Event]) -> Vec<Chain> {
    let mut chains = Vec::new();
    let mut start = 0;
    for (index, event) in events.iter().enumerate() {
        if !event.is_linked() {
            chains.push(Chain {
                start,
                end: index + 1,
                open: false,
            });
            start = index + 1;
        }
    }
    if start < events.len() {
        chains.push(Chain {
            start,
            end: events.len(),
            open: true,
        });
    }
    chains
}

enum Verdict {
    Commit,
    /// The chain is refused: `result` at `position`, `linked_event_failed` everywhere else.
    Fail {
        position: usize,
        result: EventResult,
    },
}

/// Decides a chain from the results of its events, which stop at the first failure.
fn chain_verdict(results: &[EventResult], length: usize, open: bool) -> Verdict {
    use EventResult as R;
    if let Some(position) = results
        .iter()
        .position(|result| !matches!(result, R::Ok | R::Exists))
    {
        return Verdict::Fail {
            position,
            result: results[position],
        };
    }
    assert_eq!(results.len(), length);
    let last = length - 1;
    if results.iter().all(|result| *result == R::Exists) {
        // A retry of a whole chain: answered `exists`, unless the chain was left open.
        return if open {
            Verdict::Fail {
                position: last,
                result: R::LinkedEventChainOpen,
            }
        } else {
            Verdict::Commit
        };
    }
    if let Some(position) = results.iter().position(|result| *result == R::Exists) {
        // Part old, part new: refused at the first old event.
        return Verdict::Fail {
            position,
            result: R::LinkedChainDiffers,
        };
    }
    if open {
        return Verdict::Fail {
            position: last,
            result: R::LinkedEventChainOpen,
        };
    }
    Verdict::Commit
}

/// The writes of one chain or one expiry, not yet merged into the model.
#[derive(Default)]
struct Changes {
    accounts: BTreeMap<u128, Account>,
    accounts_created: Vec<u128>,
    transfers: Vec<Transfer>,
    pending: BTreeMap<u128, PendingStatus>,
    balances: Vec<AccountBalance>,
    expired: Vec<u128>,
}

/// The model as seen through uncommitted changes.
struct Draft<'m> {
    model: &'m Model,
    changes: Changes,
}

impl<'m> Draft<'m> {
    fn new(model: &'m Model) -> Self {
        Draft {
            model,
            changes: Changes::default(),
        }
    }

    fn account(&self, id: u128) -> Option<Account> {
        self.changes
            .accounts
            .get(&id)
            .or_else(|| self.model.accounts.get(&id))
            .copied()
    }

    fn transfer(&self, id: u128) -> Option<Transfer> {
        let drafted = self
            .changes
            .transfers
            .iter()
            .find(|transfer| transfer.id == id);
        drafted.or_else(|| self.model.transfers.get(&id)).copied()
    }

    fn pending_status(&self, id: u128) -> Option<PendingStatus> {
        self.changes
            .pending
            .get(&id)
            .or_else(|| self.model.pending.get(&id))
            .copied()
    }

    /// Writes both accounts of a transfer and, for those that keep history, their balances.
    fn write_accounts(&mut self, debit: Account, credit: Account, timestamp: u64) {
        for account in [debit, credit] {
            self.changes.accounts.insert(account.id, account);
            if account.flags.contains(AccountFlags::HISTORY) {
                self.changes.balances.push(AccountBalance {
                    account_id: account.id,
                    timestamp,
                    debits_pending: account.debits_pending,
                    debits_posted: account.debits_posted,
                    credits_pending: account.credits_pending,
                    credits_posted: account.credits_posted,
                });
            }
        }
    }

    fn event(&mut self, event: &Event, timestamp: u64) -> EventResult {
        match event {
            Event::CreateAccount(request) => self.create_account(request, timestamp),
            Event::CreateTransfer(request) => self.create_transfer(request, timestamp),
        }
    }

    fn create_account(&mut self, request: &NewAccount, timestamp: u64) -> EventResult {
        use EventResult as R;
        let exclusive = AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS
            | AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS;
        let flags = request.flags;
        if request.id == 0 {
            return R::IdMustNotBeZero;
        }
        if request.id > VALUE_MAX {
            return R::IdExceedsMaximum;
        }
        if flags.contains(exclusive) {
            return R::FlagsAreMutuallyExclusive;
        }
        if request.user_data > VALUE_MAX {
            return R::UserDataExceedsMaximum;
        }
        if let Some(existing) = self.account(request.id) {
            let same = (
                existing.currency,
                existing.kind,
                existing.flags,
                existing.user_data,
            ) == (request.currency, request.kind, flags, request.user_data);
            return if same {
                R::Exists
            } else {
                R::ExistsWithDifferentFields
            };
        }
        let account = Account {
            id: request.id,
            currency: request.currency,
            kind: request.kind,
            flags,
            user_data: request.user_data,
            debits_pending: 0,
            debits_posted: 0,
            credits_pending: 0,
            credits_posted: 0,
            timestamp,
        };
        self.changes.accounts.insert(account.id, account);
        self.changes.accounts_created.push(account.id);
        R::Ok
    }

    fn create_transfer(&mut self, request: &NewTransfer, timestamp: u64) -> EventResult {
        if let Some(problem) = request_problem(request) {
            return problem;
        }
        if let Some(existing) = self.transfer(request.id) {
            let pending_amount = self
                .transfer(request.pending_id)
                .map(|pending| pending.amount);
            return if is_retry_of(request, &existing, pending_amount) {
                EventResult::Exists
            } else {
                EventResult::ExistsWithDifferentFields
            };
        }
        if settles(request.flags) {
            self.settle(request, timestamp)
        } else {
            self.move_money(request, timestamp)
        }
    }

    fn move_money(&mut self, request: &NewTransfer, timestamp: u64) -> EventResult {
        use EventResult as R;
        let flags = request.flags;
        let Some(mut debit) = self.account(request.debit_account_id) else {
            return R::DebitAccountNotFound;
        };
        let Some(mut credit) = self.account(request.credit_account_id) else {
            return R::CreditAccountNotFound;
        };
        if debit.currency != request.currency || credit.currency != request.currency {
            return R::CurrencyMismatch;
        }
        let mut amount = request.amount;
        if flags.contains(TransferFlags::BALANCING_DEBIT) {
            // What the debit account can still spend; the flag applies whatever its flags.
            let spent = debit.debits_posted + debit.debits_pending;
            let spendable = debit.credits_posted.saturating_sub(spent);
            amount = amount.min(spendable);
            if amount == 0 {
                return R::ExceedsCredits;
            }
        }
        if flags.contains(TransferFlags::BALANCING_CREDIT) {
            let taken = credit.credits_posted + credit.credits_pending;
            let room = credit.debits_posted.saturating_sub(taken);
            amount = amount.min(room);
            if amount == 0 {
                return R::ExceedsDebits;
            }
        }
        let pending = flags.contains(TransferFlags::PENDING);
        let (debit_column, credit_column) = if pending {
            (debit.debits_pending, credit.credits_pending)
        } else {
            (debit.debits_posted, credit.credits_posted)
        };
        if debit_column + amount > VALUE_MAX {
            return R::OverflowsDebits;
        }
        if credit_column + amount > VALUE_MAX {
            return R::OverflowsCredits;
        }
        if debit
            .flags
            .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
            && debit.debits_posted + debit.debits_pending + amount > debit.credits_posted
        {
            return R::ExceedsCredits;
        }
        if credit
            .flags
            .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
            && credit.credits_posted + credit.credits_pending + amount > credit.debits_posted
        {
            return R::ExceedsDebits;
        }
        if pending {
            debit.debits_pending += amount;
            credit.credits_pending += amount;
        } else {
            debit.debits_posted += amount;
            credit.credits_posted += amount;
        }
        self.write_accounts(debit, credit, timestamp);
        self.changes.transfers.push(Transfer {
            id: request.id,
            debit_account_id: debit.id,
            credit_account_id: credit.id,
            amount,
            pending_id: 0,
            user_data: request.user_data,
            timeout_seconds: request.timeout_seconds,
            kind: request.kind,
            flags,
            currency: request.currency,
            timestamp,
        });
        if pending {
            self.changes
                .pending
                .insert(request.id, PendingStatus::Pending);
        }
        R::Ok
    }

    fn settle(&mut self, request: &NewTransfer, timestamp: u64) -> EventResult {
        use EventResult as R;
        let Some(pending) = self.transfer(request.pending_id) else {
            return R::PendingNotFound;
        };
        if !pending.flags.contains(TransferFlags::PENDING) {
            return R::PendingTransferNotPending;
        }
        let names_other_account = |requested: u128, held: u128| requested != 0 && requested != held;
        if names_other_account(request.debit_account_id, pending.debit_account_id)
            || names_other_account(request.credit_account_id, pending.credit_account_id)
        {
            return R::PendingTransferHasDifferentAccounts;
        }
        if request.currency != pending.currency {
            return R::CurrencyMismatch;
        }
        match self
            .pending_status(pending.id)
            .expect("every pending transfer has a status")
        {
            PendingStatus::Pending => {}
            PendingStatus::Posted => return R::PendingAlreadyPosted,
            PendingStatus::Voided => return R::PendingAlreadyVoided,
            PendingStatus::Expired => return R::PendingExpired,
        }
        // Due but not yet swept: refused all the same, at the event's own timestamp.
        if expiry_time(&pending).is_some_and(|expires_at| expires_at <= timestamp) {
            return R::PendingExpired;
        }
        let posting = request.flags.contains(TransferFlags::POST_PENDING);
        let amount = if posting {
            if request.amount > pending.amount {
                return R::AmountExceedsPending;
            }
            if request.amount == 0 {
                pending.amount
            } else {
                request.amount
            }
        } else {
            if request.amount != 0 && request.amount != pending.amount {
                return R::VoidAmountMustMatchPending;
            }
            pending.amount
        };
        let mut debit = self
            .account(pending.debit_account_id)
            .expect("pending debit account");
        let mut credit = self
            .account(pending.credit_account_id)
            .expect("pending credit account");
        if posting && debit.debits_posted + amount > VALUE_MAX {
            return R::OverflowsDebits;
        }
        if posting && credit.credits_posted + amount > VALUE_MAX {
            return R::OverflowsCredits;
        }
        debit.debits_pending = debit
            .debits_pending
            .checked_sub(pending.amount)
            .expect("held");
        credit.credits_pending = credit
            .credits_pending
            .checked_sub(pending.amount)
            .expect("held");
        if posting {
            debit.debits_posted += amount;
            credit.credits_posted += amount;
        }
        self.write_accounts(debit, credit, timestamp);
        self.changes.transfers.push(Transfer {
            id: request.id,
            debit_account_id: pending.debit_account_id,
            credit_account_id: pending.credit_account_id,
            amount,
            pending_id: pending.id,
            user_data: request.user_data,
            timeout_seconds: 0,
            kind: request.kind,
            flags: request.flags,
            currency: pending.currency,
            timestamp,
        });
        let status = if posting {
            PendingStatus::Posted
        } else {
            PendingStatus::Voided
        };
        self.changes.pending.insert(pending.id, status);
        R::Ok
    }

    /// The sweep: releases the hold of a pending transfer that is still pending and due at
    /// the batch's first timestamp; ignores every other id.
    fn expire(&mut self, pending_id: u128, batch_timestamp: u64, timestamp: u64) {
        let Some(pending) = self.transfer(pending_id) else {
            return;
        };
        if self.pending_status(pending_id) != Some(PendingStatus::Pending) {
            return;
        }
        let Some(expires_at) = expiry_time(&pending) else {
            return;
        };
        if expires_at > batch_timestamp {
            return;
        }
        let mut debit = self
            .account(pending.debit_account_id)
            .expect("pending debit account");
        let mut credit = self
            .account(pending.credit_account_id)
            .expect("pending credit account");
        debit.debits_pending = debit
            .debits_pending
            .checked_sub(pending.amount)
            .expect("held");
        credit.credits_pending = credit
            .credits_pending
            .checked_sub(pending.amount)
            .expect("held");
        self.write_accounts(debit, credit, timestamp);
        self.changes
            .pending
            .insert(pending_id, PendingStatus::Expired);
        self.changes.expired.push(pending_id);
    }
}

fn settles(flags: TransferFlags) -> bool {
    flags.contains(TransferFlags::POST_PENDING) || flags.contains(TransferFlags::VOID_PENDING)
}

fn balancing(flags: TransferFlags) -> bool {
    flags.contains(TransferFlags::BALANCING_DEBIT)
        || flags.contains(TransferFlags::BALANCING_CREDIT)
}

/// The checks that need nothing but the request, in the core's order. This is the order of
/// the result codes except for settlements, where the core checks `pending_id` (11, 12)
/// before `accounts_must_be_different` (9).
fn request_problem(request: &NewTransfer) -> Option<EventResult> {
    use EventResult as R;
    use TransferFlags as F;
    let flags = request.flags;
    let phases = [F::PENDING, F::POST_PENDING, F::VOID_PENDING]
        .into_iter()
        .filter(|phase| flags.contains(*phase))
        .count();
    let settlement = settles(flags);
    let checks_before_accounts = [
        (request.id == 0, R::IdMustNotBeZero),
        (request.id > VALUE_MAX, R::IdExceedsMaximum),
        (
            phases > 1 || (settlement && balancing(flags)),
            R::FlagsAreMutuallyExclusive,
        ),
        (request.user_data > VALUE_MAX, R::UserDataExceedsMaximum),
    ];
    let account_checks = if settlement {
        [
            (request.pending_id == 0, R::PendingIdMustNotBeZero),
            (
                request.pending_id == request.id,
                R::PendingIdMustBeDifferent,
            ),
            (
                request.debit_account_id != 0
                    && request.debit_account_id == request.credit_account_id,
                R::AccountsMustBeDifferent,
            ),
            (false, R::Ok),
        ]
    } else {
        [
            (
                request.debit_account_id == 0,
                R::DebitAccountIdMustNotBeZero,
            ),
            (
                request.credit_account_id == 0,
                R::CreditAccountIdMustNotBeZero,
            ),
            (
                request.debit_account_id == request.credit_account_id,
                R::AccountsMustBeDifferent,
            ),
            (request.pending_id != 0, R::PendingIdMustBeZero),
        ]
    };
    let checks_after_accounts = [
        (
            request.timeout_seconds != 0 && !flags.contains(F::PENDING),
            R::TimeoutReservedForPendingTransfer,
        ),
        (request.amount == 0 && !settlement, R::AmountMustNotBeZero),
        (request.amount > VALUE_MAX, R::AmountExceedsMaximum),
    ];
    checks_before_accounts
        .into_iter()
        .chain(account_checks)
        .chain(checks_after_accounts)
        .find(|(failed, _)| *failed)
        .map(|(_, result)| result)
}

/// Whether `request` resubmits the committed transfer `existing`. Zero accounts and amounts on
/// a settlement mean "as the pending transfer"; a balancing request names the most to move,
/// so a smaller committed amount still matches.
fn is_retry_of(request: &NewTransfer, existing: &Transfer, pending_amount: Option<u128>) -> bool {
    let flags = request.flags;
    let same_fields = (
        existing.flags,
        existing.user_data,
        existing.kind,
        existing.currency,
        existing.timeout_seconds,
        existing.pending_id,
    ) == (
        flags,
        request.user_data,
        request.kind,
        request.currency,
        request.timeout_seconds,
        request.pending_id,
    );
    if !same_fields {
        return false;
    }
    if settles(flags) {
        let account_matches =
            |requested: u128, committed: u128| requested == 0 || requested == committed;
        account_matches(request.debit_account_id, existing.debit_account_id)
            && account_matches(request.credit_account_id, existing.credit_account_id)
            && (request.amount == existing.amount
                || (request.amount == 0 && pending_amount == Some(existing.amount)))
    } else {
        let amount_matches = if balancing(flags) {
            existing.amount <= request.amount
        } else {
            existing.amount == request.amount
        };
        request.debit_account_id == existing.debit_account_id
            && request.credit_account_id == existing.credit_account_id
            && amount_matches
    }
}
