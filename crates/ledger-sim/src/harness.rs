//! Applies batches to the core and to the model side by side, and checks them against each
//! other and against the ledger's invariants after every batch.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

use ledger::{Applied, Batch, Currency, Event, EventResult, State, TransferFlags};

use crate::model::{Expected, Model};
use crate::Failure;

/// How the core sees the ledger for a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `apply` runs on a state that holds every account, transfer and pending status.
    FullState,
    /// As the sequencer does it: `apply` runs on a state holding only what
    /// `Batch::prefetch_keys` names (plus the accounts of the pending transfers among them),
    /// and only what `Applied` names is written back. Checks that `Applied` is complete.
    Prefetch,
}

/// Compare every account, transfer and pending status, not only those a batch could reach,
/// this often (and at the end of a run).
const FULL_COMPARISON_INTERVAL_BATCHES: u64 = 128;

/// The core and the model, fed the same batches.
#[derive(Debug)]
pub struct Harness {
    seed: u64,
    state: State,
    model: Model,
    batches: u64,
    timestamp_last: u64,
}

impl Harness {
    /// `seed` is only quoted in failures.
    pub fn new(seed: u64) -> Self {
        Harness {
            seed,
            state: State::default(),
            model: Model::new(),
            batches: 0,
            timestamp_last: 0,
        }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The core's view: every account, transfer and pending status committed so far.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Batches applied so far.
    pub fn batches(&self) -> u64 {
        self.batches
    }

    /// The last timestamp used; the next batch must start after it.
    pub fn timestamp_last(&self) -> u64 {
        self.timestamp_last
    }

    #[cfg(test)]
    pub(crate) fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    /// Applies one batch to both sides and checks everything. Returns what the core returned.
    ///
    /// Panics if `timestamp` is not after the previous batch's last timestamp: that is a bug
    /// in the caller, not in the ledger.
    pub fn apply(
        &mut self,
        timestamp: u64,
        expiring: &[u128],
        events: &[Event],
        route: Route,
    ) -> Result<Applied, Failure> {
        assert!(
            timestamp > self.timestamp_last,
            "batch timestamps must increase"
        );
        let batch_number = self.batches;
        self.batches += 1;
        let failure = |description: String| Failure {
            seed: self.seed,
            batch: batch_number,
            description,
        };

        let expected = self.model.apply(expiring, events, timestamp);
        let batch = Batch { expiring, events };
        let state = &mut self.state;
        let outcome = catch_unwind(AssertUnwindSafe(|| match route {
            Route::FullState => Ok(ledger::apply(state, batch, timestamp)),
            Route::Prefetch => apply_prefetched(state, batch, timestamp),
        }));
        let applied = match outcome {
            Ok(Ok(applied)) => applied,
            Ok(Err(description)) => return Err(failure(description)),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
                    .unwrap_or_else(|| "(no message)".to_string());
                return Err(failure(format!(
                    "ledger::apply panicked ({route:?}): {message}\n{}",
                    describe_batch(expiring, events)
                )));
            }
        };
        let full = batch_number % FULL_COMPARISON_INTERVAL_BATCHES == 0;
        self.check(expiring, events, &applied, &expected, full)
            .map_err(failure)?;
        self.timestamp_last = applied.timestamp_last;
        Ok(applied)
    }

    /// Compares the whole of the core's state with the model's.
    pub fn check_full_state(&self) -> Result<(), Failure> {
        self.compare_everything().map_err(|description| Failure {
            seed: self.seed,
            batch: self.batches.saturating_sub(1),
            description,
        })
    }

    fn check(
        &self,
        expiring: &[u128],
        events: &[Event],
        applied: &Applied,
        expected: &Expected,
        full: bool,
    ) -> Result<(), String> {
        check_results(events, &applied.results, &expected.results)?;
        check_applied(applied, expected, events, self.timestamp_last)?;
        self.check_accounts_named(applied, expected)?;
        self.check_pending_named(applied, expected)?;
        let reachable = self.reachable_accounts(expiring, events, applied, expected);
        self.check_state_against_model(expected, &reachable)?;
        check_invariants(&self.state)?;
        if full {
            self.compare_everything()?;
        }
        Ok(())
    }

    /// Every account the batch could have changed: those its events name, those of the
    /// pending transfers it names, and those either side says it changed. The others are
    /// compared every `FULL_COMPARISON_INTERVAL_BATCHES` batches.
    fn reachable_accounts(
        &self,
        expiring: &[u128],
        events: &[Event],
        applied: &Applied,
        expected: &Expected,
    ) -> BTreeSet<u128> {
        let mut reachable: BTreeSet<u128> = BTreeSet::new();
        let mut transfers: Vec<u128> = expiring.to_vec();
        for event in events {
            match event {
                Event::CreateAccount(account) => {
                    reachable.insert(account.id);
                }
                Event::CreateTransfer(transfer) => {
                    reachable.extend([transfer.debit_account_id, transfer.credit_account_id]);
                    transfers.extend([transfer.id, transfer.pending_id]);
                }
            }
        }
        for id in transfers {
            if let Some(transfer) = self.model.transfer(id) {
                reachable.extend([transfer.debit_account_id, transfer.credit_account_id]);
            }
        }
        reachable.extend(&applied.accounts_created);
        reachable.extend(&applied.accounts_updated);
        reachable.extend(&expected.accounts_created);
        reachable.extend(&expected.accounts_changed);
        reachable
    }

    /// `accounts_created` is exactly the accounts created; `accounts_updated` holds every
    /// existing account that changed, and only accounts that exist and were not created.
    fn check_accounts_named(&self, applied: &Applied, expected: &Expected) -> Result<(), String> {
        let created: BTreeSet<u128> = applied.accounts_created.iter().copied().collect();
        if created.len() != applied.accounts_created.len() {
            return Err(format!(
                "accounts_created repeats an id: {:?}",
                applied.accounts_created
            ));
        }
        let expected_created: BTreeSet<u128> = expected.accounts_created.iter().copied().collect();
        if created != expected_created {
            return Err(format!(
                "accounts_created is {:?}, the model created {:?}",
                applied.accounts_created, expected.accounts_created
            ));
        }
        let updated: BTreeSet<u128> = applied.accounts_updated.iter().copied().collect();
        if updated.len() != applied.accounts_updated.len() {
            return Err(format!(
                "accounts_updated repeats an id: {:?}",
                applied.accounts_updated
            ));
        }
        if let Some(id) = updated.intersection(&created).next() {
            return Err(format!(
                "account {id} is both in accounts_created and accounts_updated"
            ));
        }
        if let Some(id) = updated
            .iter()
            .find(|id| !self.state.accounts.contains_key(id))
        {
            return Err(format!(
                "accounts_updated names account {id}, which does not exist"
            ));
        }
        if let Some(id) = expected
            .accounts_changed
            .iter()
            .find(|id| !updated.contains(id))
        {
            return Err(format!(
                "account {id} changed but is missing from accounts_updated {:?}: a store would \
                 not write it",
                applied.accounts_updated
            ));
        }
        Ok(())
    }

    /// `pending` holds every pending transfer created or settled, with the model's status.
    fn check_pending_named(&self, applied: &Applied, expected: &Expected) -> Result<(), String> {
        let mut seen = BTreeSet::new();
        for (id, status) in &applied.pending {
            if !seen.insert(*id) {
                return Err(format!("Applied.pending repeats transfer {id}"));
            }
            let model_status = self.model.pending_status(*id);
            if model_status != Some(*status) {
                return Err(format!(
                    "Applied.pending says transfer {id} is {status:?}, the model says {model_status:?}"
                ));
            }
        }
        for (id, status) in &expected.pending_changed {
            if !seen.contains(id) {
                return Err(format!(
                    "pending transfer {id} became {status:?} but is missing from Applied.pending"
                ));
            }
        }
        Ok(())
    }

    /// The accounts, transfers and statuses the batch could reach equal the model's, and both
    /// sides hold as many of each.
    fn check_state_against_model(
        &self,
        expected: &Expected,
        reachable_accounts: &BTreeSet<u128>,
    ) -> Result<(), String> {
        if self.state.accounts.len() != self.model.account_count() {
            return Err(format!(
                "the core holds {} accounts, the model {}",
                self.state.accounts.len(),
                self.model.account_count()
            ));
        }
        for id in reachable_accounts {
            let core = self.state.accounts.get(id);
            let model = self.model.account(*id);
            if core != model {
                return Err(format!(
                    "account {id} differs\n  core:  {core:?}\n  model: {model:?}"
                ));
            }
        }
        if self.state.transfers.len() != self.model.transfer_count() {
            return Err(format!(
                "the core holds {} transfers, the model {}",
                self.state.transfers.len(),
                self.model.transfer_count()
            ));
        }
        for transfer in &expected.transfers {
            if self.state.transfers.get(&transfer.id) != Some(transfer) {
                return Err(format!(
                    "transfer {} differs\n  core:  {:?}\n  model: {transfer:?}",
                    transfer.id,
                    self.state.transfers.get(&transfer.id)
                ));
            }
        }
        if self.state.pending.len() != self.model.pending_count() {
            return Err(format!(
                "the core holds {} pending statuses, the model {}",
                self.state.pending.len(),
                self.model.pending_count()
            ));
        }
        for (id, _) in &expected.pending_changed {
            let core = self.state.pending.get(id).copied();
            if core != self.model.pending_status(*id) {
                return Err(format!(
                    "pending transfer {id} is {core:?} in the core, {:?} in the model",
                    self.model.pending_status(*id)
                ));
            }
        }
        Ok(())
    }

    fn compare_everything(&self) -> Result<(), String> {
        for account in self.model.accounts() {
            let core = self.state.accounts.get(&account.id);
            if core != Some(account) {
                return Err(format!(
                    "account {} differs\n  core:  {core:?}\n  model: {account:?}",
                    account.id
                ));
            }
        }
        for transfer in self.model.transfers() {
            let core = self.state.transfers.get(&transfer.id);
            if core != Some(transfer) {
                return Err(format!(
                    "transfer {} differs\n  core:  {core:?}\n  model: {transfer:?}",
                    transfer.id
                ));
            }
        }
        if self.state.transfers.len() != self.model.transfer_count() {
            return Err("the core holds transfers the model does not".to_string());
        }
        for (id, status) in self.model.pending_statuses() {
            let core = self.state.pending.get(&id).copied();
            if core != Some(status) {
                return Err(format!(
                    "pending transfer {id} is {core:?} in the core, {status:?} in the model"
                ));
            }
        }
        if self.state.pending.len() != self.model.pending_count() {
            return Err("the core holds pending statuses the model does not".to_string());
        }
        Ok(())
    }
}

/// Results equal the model's, event by event.
fn check_results(
    events: &[Event],
    results: &[EventResult],
    expected: &[EventResult],
) -> Result<(), String> {
    if results.len() != events.len() {
        return Err(format!(
            "{} events but {} results",
            events.len(),
            results.len()
        ));
    }
    assert_eq!(expected.len(), events.len());
    let Some(index) = (0..events.len()).find(|index| results[*index] != expected[*index]) else {
        return Ok(());
    };
    let mut description = format!(
        "event {index} of {}: the core returned {} but the model expects {}\n",
        events.len(),
        results[index],
        expected[index]
    );
    // Show the linked chain the event belongs to, or the event alone.
    let mut start = index;
    while start > 0 && events[start - 1].is_linked() {
        start -= 1;
    }
    let mut end = index;
    while end + 1 < events.len() && events[end].is_linked() {
        end += 1;
    }
    for position in start..=end {
        let _ = writeln!(
            description,
            "  [{position}] core {} / model {}: {:?}",
            results[position], expected[position], events[position]
        );
    }
    Err(description)
}

/// `Applied` carries what the model committed: transfers, balances, expiries, timestamps.
fn check_applied(
    applied: &Applied,
    expected: &Expected,
    events: &[Event],
    timestamp_previous: u64,
) -> Result<(), String> {
    let transfers_ok = events
        .iter()
        .zip(&applied.results)
        .filter(|(event, result)| {
            matches!(event, Event::CreateTransfer(_)) && **result == EventResult::Ok
        })
        .count();
    if applied.transfers.len() != transfers_ok {
        return Err(format!(
            "{} transfers returned but {transfers_ok} transfer events were ok",
            applied.transfers.len()
        ));
    }
    if applied.transfers != expected.transfers {
        let index = (0..applied.transfers.len().min(expected.transfers.len()))
            .find(|index| applied.transfers[*index] != expected.transfers[*index]);
        return Err(format!(
            "Applied.transfers differs from the model's (first difference at {index:?})\n  core:  {:?}\n  model: {:?}",
            index.map(|index| applied.transfers[index]),
            index.map(|index| expected.transfers[index]),
        ));
    }
    let mut previous = timestamp_previous;
    for transfer in &applied.transfers {
        if transfer.timestamp <= previous {
            return Err(format!(
                "transfer {} has timestamp {}, not after {previous}",
                transfer.id, transfer.timestamp
            ));
        }
        previous = transfer.timestamp;
    }
    if applied.timestamp_last != expected.timestamp_last {
        return Err(format!(
            "timestamp_last is {}, the model says {}",
            applied.timestamp_last, expected.timestamp_last
        ));
    }
    if applied.timestamp_last <= timestamp_previous {
        return Err(format!(
            "timestamp_last {} is not after the previous batch's {timestamp_previous}",
            applied.timestamp_last
        ));
    }
    if applied.expired != expected.expired {
        return Err(format!(
            "Applied.expired is {:?}, the model expired {:?}",
            applied.expired, expected.expired
        ));
    }
    if applied.balances != expected.balances {
        let index = (0..applied.balances.len().min(expected.balances.len()))
            .find(|index| applied.balances[*index] != expected.balances[*index]);
        return Err(format!(
            "Applied.balances differs from the model's ({} vs {} entries, first difference at {index:?})",
            applied.balances.len(),
            expected.balances.len()
        ));
    }
    Ok(())
}

/// Per currency, debits equal credits (posted and pending separately), and every account
/// respects its flags.
pub fn check_invariants(state: &State) -> Result<(), String> {
    #[derive(Default)]
    struct Totals {
        debits_posted: u128,
        credits_posted: u128,
        debits_pending: u128,
        credits_pending: u128,
    }
    // A handful of currencies: a list is simpler and faster than a map.
    let mut totals: Vec<(Currency, Totals)> = Vec::new();
    for account in state.accounts.values() {
        if !account.respects_flags() {
            return Err(format!(
                "account {} does not respect its flags: {account:?}",
                account.id
            ));
        }
        let position = match totals
            .iter()
            .position(|(currency, _)| *currency == account.currency)
        {
            Some(position) => position,
            None => {
                totals.push((account.currency, Totals::default()));
                totals.len() - 1
            }
        };
        let total = &mut totals[position].1;
        total.debits_posted += account.debits_posted;
        total.credits_posted += account.credits_posted;
        total.debits_pending += account.debits_pending;
        total.credits_pending += account.credits_pending;
    }
    for (currency, total) in &totals {
        if total.debits_posted != total.credits_posted {
            return Err(format!(
                "{currency}: posted debits {} != posted credits {}",
                total.debits_posted, total.credits_posted
            ));
        }
        if total.debits_pending != total.credits_pending {
            return Err(format!(
                "{currency}: pending debits {} != pending credits {}",
                total.debits_pending, total.credits_pending
            ));
        }
    }
    Ok(())
}

/// Runs `apply` on only what the batch names, then writes back only what `Applied` names.
fn apply_prefetched(
    state: &mut State,
    batch: Batch<'_>,
    timestamp: u64,
) -> Result<Applied, String> {
    let keys = batch.prefetch_keys();
    let mut view = State::default();
    for id in &keys.transfers {
        let Some(transfer) = state.transfers.get(id) else {
            continue;
        };
        view.transfers.insert(*id, *transfer);
        if let Some(status) = state.pending.get(id) {
            view.pending.insert(*id, *status);
        }
        if transfer.flags.contains(TransferFlags::PENDING) {
            for account_id in [transfer.debit_account_id, transfer.credit_account_id] {
                view.accounts
                    .insert(account_id, state.accounts[&account_id]);
            }
        }
    }
    for id in &keys.accounts {
        if let Some(account) = state.accounts.get(id) {
            view.accounts.insert(*id, *account);
        }
    }
    let applied = ledger::apply(&mut view, batch, timestamp);
    for id in applied
        .accounts_created
        .iter()
        .chain(&applied.accounts_updated)
    {
        let Some(account) = view.accounts.get(id) else {
            return Err(format!(
                "Applied names account {id}, which the batch's state does not hold"
            ));
        };
        state.accounts.insert(*id, *account);
    }
    for transfer in &applied.transfers {
        if state.transfers.insert(transfer.id, *transfer).is_some() {
            return Err(format!(
                "Applied.transfers holds transfer {}, committed before",
                transfer.id
            ));
        }
    }
    for (id, status) in &applied.pending {
        state.pending.insert(*id, *status);
    }
    Ok(applied)
}

fn describe_batch(expiring: &[u128], events: &[Event]) -> String {
    let mut description = format!("expiring: {expiring:?}\n");
    for (index, event) in events.iter().enumerate() {
        let _ = writeln!(description, "  [{index}] {event:?}");
    }
    description
}
