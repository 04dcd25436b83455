//! The ledger's invariants re-derived from the rows, in one pass over the transfers: every
//! balance equals what its transfers add up to, and every transfer names existing accounts of
//! its currency. Pure: the caller feeds it what it reads.

use ledger::{Account, IdMap, PendingStatus, TransferFlags};

use crate::{BalanceMismatch, StoredTransfer};

/// Sums per account, built from every transfer.
#[derive(Debug, Default)]
pub struct LedgerAudit {
    /// Account id → its place in `accounts` and `sums`: the map stays small, so the two
    /// lookups per transfer mostly hit the cache.
    places: IdMap<u32>,
    accounts: Vec<Account>,
    /// Per account, its currency: kept apart from the accounts so the per-transfer check reads
    /// 3 bytes an account, not a whole account (measured: the cache misses dominated).
    currencies: Vec<ledger::Currency>,
    /// Per account: debits pending/posted, credits pending/posted from its transfers. 64 bits
    /// are enough: every stored balance is below 2^63, so sums of a sound ledger are too, and a
    /// sum that saturates differs from its balance anyway.
    sums: Vec<[u64; 4]>,
    bad_transfers: Vec<u128>,
    findings_max: usize,
}

const DEBITS_PENDING: usize = 0;
const DEBITS_POSTED: usize = 1;
const CREDITS_PENDING: usize = 2;
const CREDITS_POSTED: usize = 3;

impl LedgerAudit {
    /// An audit of `accounts`; each list of findings keeps its first `findings_max`.
    pub fn new(findings_max: usize) -> LedgerAudit {
        LedgerAudit {
            findings_max,
            ..LedgerAudit::default()
        }
    }

    pub fn add_account(&mut self, account: &Account) {
        let place = u32::try_from(self.accounts.len()).expect("fewer than 2^32 accounts");
        if self.places.insert(account.id, place).is_none() {
            self.accounts.push(*account);
            self.currencies.push(account.currency);
            self.sums.push([0; 4]);
        }
    }

    /// Adds one transfer: posted amounts of single-phase and posting transfers, pending
    /// amounts of pending transfers still pending; voids move nothing.
    pub fn add_transfer(&mut self, stored: &StoredTransfer) {
        let transfer = &stored.transfer;
        let still_pending = transfer.flags.contains(TransferFlags::PENDING)
            && stored.pending_status == Some(PendingStatus::Pending);
        let posted = !transfer.flags.contains(TransferFlags::PENDING)
            && !transfer.flags.contains(TransferFlags::VOID_PENDING);
        let sides = [
            (transfer.debit_account_id, DEBITS_PENDING, DEBITS_POSTED),
            (transfer.credit_account_id, CREDITS_PENDING, CREDITS_POSTED),
        ];
        let amount = u64::try_from(transfer.amount).unwrap_or(u64::MAX);
        let mut names_bad_account = false;
        for (account_id, pending_slot, posted_slot) in sides {
            let place = self.places.get(&account_id).map(|place| *place as usize);
            match place {
                Some(place) if self.currencies[place] == transfer.currency => {
                    let sums = &mut self.sums[place];
                    if still_pending {
                        sums[pending_slot] = sums[pending_slot].saturating_add(amount);
                    }
                    if posted {
                        sums[posted_slot] = sums[posted_slot].saturating_add(amount);
                    }
                }
                _ => names_bad_account = true,
            }
        }
        if names_bad_account && self.bad_transfers.len() < self.findings_max {
            self.bad_transfers.push(transfer.id);
        }
    }

    /// Per currency with a reserve account (of a kind in `reserve_kinds`): the reserve's posted
    /// debit balance and the posted credit balance of every account whose kind is in
    /// `owed_kinds`, where the two differ. The reserve mirrors the money a bank holds for the
    /// platform's customers, so it must equal what the platform owes them.
    pub fn reserve_mismatches(
        &self,
        reserve_kinds: &[u16],
        owed_kinds: &[u16],
    ) -> Vec<(ledger::Currency, i128, i128)> {
        let mut totals: std::collections::BTreeMap<[u8; 3], (ledger::Currency, i128, i128, bool)> =
            std::collections::BTreeMap::new();
        for account in &self.accounts {
            let entry = totals.entry(account.currency.as_bytes()).or_insert((
                account.currency,
                0,
                0,
                false,
            ));
            if reserve_kinds.contains(&account.kind) {
                entry.1 += account.posted_debit_balance();
                entry.3 = true;
            } else if owed_kinds.contains(&account.kind) {
                entry.2 += account.posted_credit_balance();
            }
        }
        totals
            .into_values()
            .filter(|(_, reserve, owed, has_reserve)| *has_reserve && reserve != owed)
            .map(|(currency, reserve, owed, _)| (currency, reserve, owed))
            .collect()
    }

    /// Transfers that name a missing account or another currency than their accounts'.
    pub fn transfers_with_bad_accounts(&self) -> &[u128] {
        &self.bad_transfers
    }

    /// Accounts whose stored balances differ from what their transfers add up to, lowest id
    /// first.
    pub fn balance_mismatches(&self) -> Vec<BalanceMismatch> {
        let mut mismatches: Vec<BalanceMismatch> = self
            .accounts
            .iter()
            .zip(&self.sums)
            .filter_map(|(account, sums)| {
                let stored = [
                    account.debits_pending,
                    account.debits_posted,
                    account.credits_pending,
                    account.credits_posted,
                ];
                let from_transfers = sums.map(u128::from);
                (stored != from_transfers).then_some(BalanceMismatch {
                    account_id: account.id,
                    stored,
                    from_transfers,
                })
            })
            .collect();
        mismatches.sort_unstable_by_key(|mismatch| mismatch.account_id);
        mismatches.truncate(self.findings_max);
        mismatches
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::{AccountFlags, Currency, NewTransfer, Transfer};

    fn account(id: u128, currency: &str, balances: [u128; 4]) -> Account {
        Account {
            id,
            currency: Currency::parse(currency).unwrap(),
            kind: 1,
            flags: AccountFlags::empty(),
            user_data: 0,
            debits_pending: balances[0],
            debits_posted: balances[1],
            credits_pending: balances[2],
            credits_posted: balances[3],
            timestamp: 1,
        }
    }

    fn stored(
        id: u128,
        amount: u128,
        flags: TransferFlags,
        status: Option<PendingStatus>,
    ) -> StoredTransfer {
        let new = NewTransfer::new(id, 1, 2, amount, Currency::parse("CNY").unwrap());
        StoredTransfer {
            transfer: Transfer {
                id,
                debit_account_id: new.debit_account_id,
                credit_account_id: new.credit_account_id,
                amount,
                currency: new.currency,
                pending_id: 0,
                user_data: 0,
                timeout_seconds: 0,
                kind: 0,
                flags,
                timestamp: id as u64,
            },
            pending_status: status,
            leaf_index: id as u64,
        }
    }

    #[test]
    fn balances_that_match_their_transfers_pass_and_others_are_named() {
        let mut audit = LedgerAudit::new(10);
        // 100 posted, a hold of 30 still pending, a hold of 20 posted by a post of 15, a void.
        audit.add_account(&account(1, "CNY", [30, 115, 0, 0]));
        audit.add_account(&account(2, "CNY", [0, 0, 30, 115]));
        audit.add_transfer(&stored(1, 100, TransferFlags::empty(), None));
        audit.add_transfer(&stored(
            2,
            30,
            TransferFlags::PENDING,
            Some(PendingStatus::Pending),
        ));
        audit.add_transfer(&stored(
            3,
            20,
            TransferFlags::PENDING,
            Some(PendingStatus::Posted),
        ));
        audit.add_transfer(&stored(4, 15, TransferFlags::POST_PENDING, None));
        audit.add_transfer(&stored(
            5,
            9,
            TransferFlags::PENDING,
            Some(PendingStatus::Voided),
        ));
        audit.add_transfer(&stored(6, 9, TransferFlags::VOID_PENDING, None));
        assert!(audit.balance_mismatches().is_empty());
        assert!(audit.transfers_with_bad_accounts().is_empty());

        audit.add_transfer(&stored(7, 1, TransferFlags::empty(), None));
        let mismatches = audit.balance_mismatches();
        assert_eq!(mismatches.len(), 2);
        assert_eq!(mismatches[0].account_id, 1);
        assert_eq!(mismatches[0].stored, [30, 115, 0, 0]);
        assert_eq!(mismatches[0].from_transfers, [30, 116, 0, 0]);
    }

    #[test]
    fn the_reserve_must_mirror_what_is_owed() {
        let mut audit = LedgerAudit::new(10);
        let mut reserve = account(1, "CNY", [0, 500, 0, 0]);
        reserve.kind = 1;
        let mut wallet = account(2, "CNY", [0, 0, 0, 500]);
        wallet.kind = 10;
        let mut other = account(3, "USD", [0, 0, 0, 7]);
        other.kind = 10;
        audit.add_account(&reserve);
        audit.add_account(&wallet);
        audit.add_account(&other);
        assert!(
            audit.reserve_mismatches(&[1], &[10]).is_empty(),
            "USD has no reserve: skipped"
        );
        let mut short = LedgerAudit::new(10);
        reserve.debits_posted = 499;
        short.add_account(&reserve);
        short.add_account(&wallet);
        let mismatches = short.reserve_mismatches(&[1], &[10]);
        assert_eq!(mismatches.len(), 1);
        assert_eq!((mismatches[0].1, mismatches[0].2), (499, 500));
    }

    #[test]
    fn transfers_naming_missing_accounts_or_another_currency_are_named() {
        let mut audit = LedgerAudit::new(10);
        audit.add_account(&account(1, "CNY", [0; 4]));
        audit.add_account(&account(2, "USD", [0; 4]));
        audit.add_transfer(&stored(1, 5, TransferFlags::empty(), None));
        assert_eq!(audit.transfers_with_bad_accounts(), &[1]);
    }
}
