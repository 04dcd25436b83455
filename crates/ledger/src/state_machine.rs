//! Applying a batch of events to a prefetched view of the ledger.
//!
//! `apply` reads no clock, no storage and no randomness: the caller prefetches every account
//! and transfer the batch names (see [`Batch::prefetch_keys`]) and passes the timestamp. The same
//! prior state, batch and timestamp always give the same results.

use crate::id_map::{IdMap, IdSet};
use crate::types::*;
use crate::EventResult;

/// Most events in one batch.
pub const BATCH_EVENTS_MAX: usize = 8190;
/// Most pending transfers expired in one batch.
pub const BATCH_EXPIRIES_MAX: usize = 8190;

/// The part of the ledger a batch can touch, prefetched by the caller.
///
/// `accounts` must hold every existing account the batch names (and those of every pending
/// transfer it names); `transfers` every existing transfer whose id the batch uses as an id or
/// a `pending_id`, with `pending` holding the status of each pending one. A missing entry means
/// "does not exist". The sequencer may keep more than that (a cache of accounts).
#[derive(Debug, Default, Clone)]
pub struct State {
    pub accounts: IdMap<Account>,
    pub transfers: IdMap<Transfer>,
    pub pending: IdMap<PendingStatus>,
}

/// What the batch changed, for the store to write in one transaction.
#[derive(Debug, Default, Clone)]
pub struct Applied {
    /// One result per event, in order.
    pub results: Vec<EventResult>,
    /// Accounts created by this batch (their final values are in the state).
    pub accounts_created: Vec<u128>,
    /// Existing accounts whose balances may have changed (their final values are in the state).
    pub accounts_updated: Vec<u128>,
    /// Transfers created, in timestamp order.
    pub transfers: Vec<Transfer>,
    /// The final status of every pending transfer created or settled by this batch.
    pub pending: Vec<(u128, PendingStatus)>,
    /// Balances after each transfer, for accounts with the `HISTORY` flag.
    pub balances: Vec<AccountBalance>,
    /// Pending transfers whose hold this batch released because their timeout passed.
    pub expired: Vec<u128>,
    /// The timestamp of the last event (or expiry); the next batch must start after it.
    pub timestamp_last: u64,
}

/// The ids a batch needs prefetched.
#[derive(Debug, Default)]
pub struct PrefetchKeys {
    pub accounts: Vec<u128>,
    pub transfers: Vec<u128>,
}

/// Events and expiries applied together.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// Pending transfers whose timeout may have passed; the ledger expires those that are
    /// still pending and due at the batch timestamp, and ignores the rest.
    pub expiring: &'a [u128],
    pub events: &'a [Event],
}

impl Batch<'_> {
    /// Every account and transfer id the batch names directly. The caller loads these, then
    /// the accounts of the pending transfers among the loaded transfers.
    pub fn prefetch_keys(&self) -> PrefetchKeys {
        let mut keys = PrefetchKeys::default();
        keys.transfers.extend_from_slice(self.expiring);
        for event in self.events {
            match event {
                Event::CreateAccount(account) => keys.accounts.push(account.id),
                Event::CreateTransfer(transfer) => {
                    keys.transfers.push(transfer.id);
                    if transfer.pending_id != 0 {
                        keys.transfers.push(transfer.pending_id);
                    }
                    for id in [transfer.debit_account_id, transfer.credit_account_id] {
                        if id != 0 {
                            keys.accounts.push(id);
                        }
                    }
                }
            }
        }
        keys
    }
}

enum Undo {
    Account(u128, Option<Account>),
    Transfer(u128),
    Pending(u128, Option<PendingStatus>),
}

struct Applier<'s> {
    state: &'s mut State,
    out: Applied,
    created: IdSet,
    updated: IdSet,
    pending_touched: IdSet,
    pending_order: Vec<u128>,
    /// Some while inside a linked chain: how to take the chain back.
    undo: Option<Vec<Undo>>,
}

/// Applies `batch` to `state` with the first event at `timestamp` (each later expiry or event
/// one nanosecond after the previous). Panics if the batch is larger than the maximums, which
/// callers check first.
pub fn apply(state: &mut State, batch: Batch<'_>, timestamp: u64) -> Applied {
    assert!(batch.events.len() <= BATCH_EVENTS_MAX);
    assert!(batch.expiring.len() <= BATCH_EXPIRIES_MAX);
    assert!(timestamp > 0);
    let mut applier = Applier {
        state,
        out: Applied {
            results: Vec::with_capacity(batch.events.len()),
            ..Applied::default()
        },
        created: IdSet::default(),
        updated: IdSet::default(),
        pending_touched: IdSet::default(),
        pending_order: Vec::new(),
        undo: None,
    };
    let mut now = timestamp;
    for pending_id in batch.expiring {
        applier.expire(*pending_id, timestamp, now);
        now += 1;
    }
    let events = batch.events;
    let mut index = 0;
    while index < events.len() {
        if !events[index].is_linked() {
            let result = applier.event(&events[index], now);
            applier.out.results.push(result);
            now += 1;
            index += 1;
            continue;
        }
        // A linked chain runs to the first event without the flag, or to the end of the batch.
        let chain_end = (index..events.len())
            .find(|position| !events[*position].is_linked())
            .unwrap_or(events.len() - 1);
        let chain_open = events[chain_end].is_linked();
        let transfers_before = applier.out.transfers.len();
        let balances_before = applier.out.balances.len();
        let expired_before = applier.out.expired.len();
        applier.undo = Some(Vec::new());
        let mut chain_results = Vec::with_capacity(chain_end - index + 1);
        let mut failed = None;
        for (offset, event) in events[index..=chain_end].iter().enumerate() {
            let result = applier.event(event, now + offset as u64);
            chain_results.push(result);
            if !result.is_committed() {
                failed = Some((offset, result));
                break;
            }
        }
        let all_exist = chain_results
            .iter()
            .all(|result| *result == EventResult::Exists)
            && chain_results.len() == chain_end - index + 1;
        if failed.is_none() && !all_exist {
            if let Some(first_exists) = chain_results
                .iter()
                .position(|result| *result == EventResult::Exists)
            {
                // Part of the chain was committed before and part is new: refuse rather
                // than complete a chain half of which belongs to an earlier request.
                failed = Some((first_exists, EventResult::LinkedChainDiffers));
            } else if chain_open {
                failed = Some((chain_end - index, EventResult::LinkedEventChainOpen));
            }
        }
        if failed.is_none() && all_exist && chain_open {
            failed = Some((chain_end - index, EventResult::LinkedEventChainOpen));
        }
        let undo = applier.undo.take().expect("inside a chain");
        match failed {
            None => applier.out.results.extend(chain_results),
            Some((failed_offset, failed_result)) => {
                applier.roll_back(undo);
                applier.out.transfers.truncate(transfers_before);
                applier.out.balances.truncate(balances_before);
                applier.out.expired.truncate(expired_before);
                for offset in 0..=(chain_end - index) {
                    applier.out.results.push(if offset == failed_offset {
                        failed_result
                    } else {
                        EventResult::LinkedEventFailed
                    });
                }
            }
        }
        now += (chain_end - index + 1) as u64;
        index = chain_end + 1;
    }
    applier.out.timestamp_last = now - 1;
    applier.finish()
}

impl Applier<'_> {
    fn finish(mut self) -> Applied {
        let state = &*self.state;
        self.out
            .accounts_created
            .retain(|id| state.accounts.contains_key(id));
        let created = &self.created;
        self.out.accounts_updated.retain(|id| !created.contains(id));
        for id in &self.pending_order {
            if let Some(status) = state.pending.get(id) {
                self.out.pending.push((*id, *status));
            }
        }
        // Unique by construction (the `updated` set); checked in debug builds only, since the
        // check copies and sorts every batch's accounts on the commit path.
        debug_assert_eq!(self.out.accounts_updated.len(), {
            let mut unique = self.out.accounts_updated.clone();
            unique.sort_unstable();
            unique.dedup();
            unique.len()
        });
        self.out
    }

    fn roll_back(&mut self, undo: Vec<Undo>) {
        for entry in undo.into_iter().rev() {
            match entry {
                Undo::Account(id, Some(previous)) => {
                    self.state.accounts.insert(id, previous);
                }
                Undo::Account(id, None) => {
                    self.state.accounts.remove(&id);
                }
                Undo::Transfer(id) => {
                    self.state.transfers.remove(&id);
                }
                Undo::Pending(id, Some(previous)) => {
                    self.state.pending.insert(id, previous);
                }
                Undo::Pending(id, None) => {
                    self.state.pending.remove(&id);
                }
            }
        }
    }

    fn event(&mut self, event: &Event, timestamp: u64) -> EventResult {
        match event {
            Event::CreateAccount(account) => self.create_account(account, timestamp),
            Event::CreateTransfer(transfer) => self.create_transfer(transfer, timestamp),
        }
    }

    fn put_account(&mut self, account: Account) {
        let previous = self.state.accounts.insert(account.id, account);
        if let Some(undo) = &mut self.undo {
            undo.push(Undo::Account(account.id, previous));
        }
        if previous.is_none() {
            if self.created.insert(account.id) {
                self.out.accounts_created.push(account.id);
            }
        } else if self.updated.insert(account.id) {
            self.out.accounts_updated.push(account.id);
        }
    }

    fn put_pending(&mut self, id: u128, status: PendingStatus) {
        let previous = self.state.pending.insert(id, status);
        if let Some(undo) = &mut self.undo {
            undo.push(Undo::Pending(id, previous));
        }
        if self.pending_touched.insert(id) {
            self.pending_order.push(id);
        }
    }

    fn put_transfer(&mut self, transfer: Transfer) {
        let previous = self.state.transfers.insert(transfer.id, transfer);
        assert!(previous.is_none(), "a transfer id is committed once");
        if let Some(undo) = &mut self.undo {
            undo.push(Undo::Transfer(transfer.id));
        }
        self.out.transfers.push(transfer);
    }

    /// Stores the two accounts of a transfer (or an expiry) and their balance history.
    fn put_both(&mut self, debit: Account, credit: Account, timestamp: u64) {
        self.put_account(debit);
        self.put_account(credit);
        self.record_balance(&debit, timestamp);
        self.record_balance(&credit, timestamp);
    }

    fn record_balance(&mut self, account: &Account, timestamp: u64) {
        if account.flags.contains(AccountFlags::HISTORY) {
            self.out.balances.push(AccountBalance {
                account_id: account.id,
                timestamp,
                debits_pending: account.debits_pending,
                debits_posted: account.debits_posted,
                credits_pending: account.credits_pending,
                credits_posted: account.credits_posted,
            });
        }
    }

    fn create_account(&mut self, request: &NewAccount, timestamp: u64) -> EventResult {
        use EventResult as R;
        if request.id == 0 {
            return R::IdMustNotBeZero;
        }
        if request.id > VALUE_MAX {
            return R::IdExceedsMaximum;
        }
        if request.flags.contains(
            AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS
                | AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
        ) {
            return R::FlagsAreMutuallyExclusive;
        }
        if request.user_data > VALUE_MAX {
            return R::UserDataExceedsMaximum;
        }
        if let Some(existing) = self.state.accounts.get(&request.id) {
            let same = existing.currency == request.currency
                && existing.kind == request.kind
                && existing.flags == request.flags
                && existing.user_data == request.user_data;
            return if same {
                R::Exists
            } else {
                R::ExistsWithDifferentFields
            };
        }
        self.put_account(Account {
            id: request.id,
            currency: request.currency,
            kind: request.kind,
            flags: request.flags,
            user_data: request.user_data,
            debits_pending: 0,
            debits_posted: 0,
            credits_pending: 0,
            credits_posted: 0,
            timestamp,
        });
        R::Ok
    }

    fn create_transfer(&mut self, request: &NewTransfer, timestamp: u64) -> EventResult {
        use EventResult as R;
        use TransferFlags as F;
        let flags = request.flags;
        let settles = flags.contains(F::POST_PENDING) || flags.contains(F::VOID_PENDING);
        let balancing = flags.contains(F::BALANCING_DEBIT) || flags.contains(F::BALANCING_CREDIT);
        if request.id == 0 {
            return R::IdMustNotBeZero;
        }
        if request.id > VALUE_MAX {
            return R::IdExceedsMaximum;
        }
        let phase_flags = [F::PENDING, F::POST_PENDING, F::VOID_PENDING]
            .iter()
            .filter(|flag| flags.contains(**flag))
            .count();
        if phase_flags > 1 || (settles && balancing) {
            return R::FlagsAreMutuallyExclusive;
        }
        if request.user_data > VALUE_MAX {
            return R::UserDataExceedsMaximum;
        }
        if !settles {
            if request.debit_account_id == 0 {
                return R::DebitAccountIdMustNotBeZero;
            }
            if request.credit_account_id == 0 {
                return R::CreditAccountIdMustNotBeZero;
            }
            if request.debit_account_id == request.credit_account_id {
                return R::AccountsMustBeDifferent;
            }
            if request.pending_id != 0 {
                return R::PendingIdMustBeZero;
            }
        } else {
            if request.pending_id == 0 {
                return R::PendingIdMustNotBeZero;
            }
            if request.pending_id == request.id {
                return R::PendingIdMustBeDifferent;
            }
            if request.debit_account_id != 0
                && request.debit_account_id == request.credit_account_id
            {
                return R::AccountsMustBeDifferent;
            }
        }
        if request.timeout_seconds != 0 && !flags.contains(F::PENDING) {
            return R::TimeoutReservedForPendingTransfer;
        }
        if request.amount == 0 && !settles {
            return R::AmountMustNotBeZero;
        }
        if request.amount > VALUE_MAX {
            return R::AmountExceedsMaximum;
        }
        if let Some(existing) = self.state.transfers.get(&request.id) {
            let pending_amount = self
                .state
                .transfers
                .get(&request.pending_id)
                .map(|pending| pending.amount);
            return if same_transfer(existing, request, pending_amount) {
                R::Exists
            } else {
                R::ExistsWithDifferentFields
            };
        }
        if settles {
            self.settle_pending(request, timestamp)
        } else {
            self.move_money(request, timestamp)
        }
    }

    fn move_money(&mut self, request: &NewTransfer, timestamp: u64) -> EventResult {
        use EventResult as R;
        use TransferFlags as F;
        let Some(mut debit) = self.state.accounts.get(&request.debit_account_id).copied() else {
            return R::DebitAccountNotFound;
        };
        let Some(mut credit) = self.state.accounts.get(&request.credit_account_id).copied() else {
            return R::CreditAccountNotFound;
        };
        if debit.currency != request.currency || credit.currency != request.currency {
            return R::CurrencyMismatch;
        }
        let mut amount = request.amount;
        if request.flags.contains(F::BALANCING_DEBIT) {
            let available = debit
                .credits_posted
                .saturating_sub(debit.debits_posted + debit.debits_pending);
            amount = amount.min(available);
            if amount == 0 {
                return R::ExceedsCredits;
            }
        }
        if request.flags.contains(F::BALANCING_CREDIT) {
            let available = credit
                .debits_posted
                .saturating_sub(credit.credits_posted + credit.credits_pending);
            amount = amount.min(available);
            if amount == 0 {
                return R::ExceedsDebits;
            }
        }
        let pending = request.flags.contains(F::PENDING);
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
        self.put_both(debit, credit, timestamp);
        self.put_transfer(Transfer {
            id: request.id,
            debit_account_id: debit.id,
            credit_account_id: credit.id,
            amount,
            pending_id: 0,
            user_data: request.user_data,
            timeout_seconds: request.timeout_seconds,
            kind: request.kind,
            flags: request.flags,
            currency: request.currency,
            timestamp,
        });
        if pending {
            self.put_pending(request.id, PendingStatus::Pending);
        }
        R::Ok
    }

    fn settle_pending(&mut self, request: &NewTransfer, timestamp: u64) -> EventResult {
        use EventResult as R;
        use TransferFlags as F;
        let Some(pending) = self.state.transfers.get(&request.pending_id).copied() else {
            return R::PendingNotFound;
        };
        if !pending.flags.contains(F::PENDING) {
            return R::PendingTransferNotPending;
        }
        if (request.debit_account_id != 0 && request.debit_account_id != pending.debit_account_id)
            || (request.credit_account_id != 0
                && request.credit_account_id != pending.credit_account_id)
        {
            return R::PendingTransferHasDifferentAccounts;
        }
        if request.currency != pending.currency {
            return R::CurrencyMismatch;
        }
        let status = self.state.pending.get(&pending.id).copied();
        match status {
            Some(PendingStatus::Posted) => return R::PendingAlreadyPosted,
            Some(PendingStatus::Voided) => return R::PendingAlreadyVoided,
            Some(PendingStatus::Expired) => return R::PendingExpired,
            Some(PendingStatus::Pending) => {}
            None => panic!(
                "pending transfer {} has no status in the prefetched state",
                pending.id
            ),
        }
        if pending
            .expires_at()
            .is_some_and(|expires_at| expires_at <= timestamp)
        {
            return R::PendingExpired;
        }
        let posting = request.flags.contains(F::POST_PENDING);
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
        let mut debit = *self
            .state
            .accounts
            .get(&pending.debit_account_id)
            .expect("the accounts of a prefetched pending transfer are prefetched");
        let mut credit = *self
            .state
            .accounts
            .get(&pending.credit_account_id)
            .expect("the accounts of a prefetched pending transfer are prefetched");
        if posting {
            if debit.debits_posted + amount > VALUE_MAX {
                return R::OverflowsDebits;
            }
            if credit.credits_posted + amount > VALUE_MAX {
                return R::OverflowsCredits;
            }
        }
        assert!(debit.debits_pending >= pending.amount);
        assert!(credit.credits_pending >= pending.amount);
        debit.debits_pending -= pending.amount;
        credit.credits_pending -= pending.amount;
        if posting {
            debit.debits_posted += amount;
            credit.credits_posted += amount;
        }
        self.put_both(debit, credit, timestamp);
        self.put_transfer(Transfer {
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
        let settled = if posting {
            PendingStatus::Posted
        } else {
            PendingStatus::Voided
        };
        self.put_pending(pending.id, settled);
        R::Ok
    }

    /// Releases the hold of a pending transfer whose timeout has passed, exactly once.
    fn expire(&mut self, pending_id: u128, batch_timestamp: u64, timestamp: u64) {
        let Some(pending) = self.state.transfers.get(&pending_id).copied() else {
            return;
        };
        if self.state.pending.get(&pending_id) != Some(&PendingStatus::Pending) {
            return;
        }
        if pending
            .expires_at()
            .is_none_or(|expires_at| expires_at > batch_timestamp)
        {
            return;
        }
        let mut debit = *self
            .state
            .accounts
            .get(&pending.debit_account_id)
            .expect("prefetched");
        let mut credit = *self
            .state
            .accounts
            .get(&pending.credit_account_id)
            .expect("prefetched");
        assert!(debit.debits_pending >= pending.amount);
        assert!(credit.credits_pending >= pending.amount);
        debit.debits_pending -= pending.amount;
        credit.credits_pending -= pending.amount;
        self.put_both(debit, credit, timestamp);
        self.put_pending(pending_id, PendingStatus::Expired);
        self.out.expired.push(pending_id);
    }
}

/// Whether a resubmitted request matches what was committed under its id.
///
/// The `linked` flag is part of the identity: a chain is retried as the same chain.
/// `pending_amount` is the amount of the pending transfer a settlement names, when known.
fn same_transfer(existing: &Transfer, request: &NewTransfer, pending_amount: Option<u128>) -> bool {
    use TransferFlags as F;
    let flags = request.flags;
    if existing.flags != flags
        || existing.user_data != request.user_data
        || existing.kind != request.kind
        || existing.currency != request.currency
        || existing.timeout_seconds != request.timeout_seconds
        || existing.pending_id != request.pending_id
    {
        return false;
    }
    let settles = flags.contains(F::POST_PENDING) || flags.contains(F::VOID_PENDING);
    let balancing = flags.contains(F::BALANCING_DEBIT) || flags.contains(F::BALANCING_CREDIT);
    // Zero accounts and amounts on settlements mean "as the pending transfer"; a balancing
    // request names the most to move, so a smaller committed amount still matches.
    let account_matches =
        |requested: u128, committed: u128| requested == committed || (settles && requested == 0);
    let amount_matches = if settles {
        // Zero asks for the full pending amount: a retry matches only if that is what moved.
        request.amount == existing.amount
            || (request.amount == 0 && pending_amount == Some(existing.amount))
    } else if balancing {
        existing.amount <= request.amount
    } else {
        existing.amount == request.amount
    };
    account_matches(request.debit_account_id, existing.debit_account_id)
        && account_matches(request.credit_account_id, existing.credit_account_id)
        && amount_matches
}
