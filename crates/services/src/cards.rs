//! Bank cards and the money that crosses between them and wallets.
//!
//! - Binding: the card's number, holder name, ID number and phone go to the bank, which
//!   checks them and sends a one-time code to the phone; with the code the bank returns a
//!   token. Tally keeps the token, the BIN and the last four digits, and raises the user to
//!   tier 1 (real name checked by the bank).
//! - Top-up (card → wallet): the bank transfer is recorded as pending first (durable), then the
//!   bank is asked, then the reserve → wallet transfer commits with the record's new state.
//! - Withdrawal (wallet → card): a pending ledger transfer holds the money with the record,
//!   then the bank is asked; the hold is posted when the bank pays, voided when it refuses.
//! - A bank that does not answer in time leaves the movement pending; [`Cards::resolve_pending`]
//!   asks the bank what happened and finishes it, exactly once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ledger::{Currency, Event, EventResult, NewTransfer, TransferFlags};
use sequencer::SequencerHandle;
use store::{BankDirection, BankTransfer, BankTransferState, Card, CardState, Record, User};

use crate::accounts::{TRANSFER_TOP_UP, TRANSFER_WITHDRAWAL};
use crate::bank::{
    BankConnector, BankError, BankReceipt, BankStatus, CardDetails, HOLDER_TEXT_BYTES_MAX,
};
use crate::ids::{new_id, transfer_id};
use crate::payments::{Idempotency, Outcome, PaymentError, Render, RESERVE_ACCOUNT_ID};
use crate::support::{lock_key, Handles, KeyedLocks};

/// How long a binding waits for its code.
pub const BINDING_LIFETIME_S: u64 = 10 * 60;
/// Bindings waiting for a code, at most.
pub const BINDINGS_MAX: usize = 100_000;
/// Cards one user may bind.
pub const CARDS_PER_USER_MAX: usize = 10;
/// Pending bank transfers resolved per round.
pub const PENDING_PER_ROUND_MAX: usize = 100;

/// Legs of a bank transfer in the ledger.
const LEG_MOVE: u8 = 1;
const LEG_POST: u8 = 2;
const LEG_VOID: u8 = 3;

pub struct Cards {
    handles: Arc<Handles>,
    ledger: SequencerHandle,
    bank: Arc<dyn BankConnector>,
    currency: Currency,
    locks: KeyedLocks,
    /// Bindings started and not confirmed yet: the bank's reference → (user, expiry).
    bindings: Mutex<HashMap<String, (u64, u64)>>,
}

impl std::fmt::Debug for Cards {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Cards")
            .field("bank", &self.bank.name())
            .finish_non_exhaustive()
    }
}

fn invalid(field: &'static str, reason: &str) -> PaymentError {
    PaymentError::InvalidInput {
        field,
        reason: reason.to_owned(),
    }
}

impl Cards {
    pub fn new(
        handles: Arc<Handles>,
        ledger: SequencerHandle,
        bank: Arc<dyn BankConnector>,
        currency: Currency,
    ) -> Cards {
        Cards {
            locks: KeyedLocks::for_store(&handles),
            handles,
            ledger,
            bank,
            currency,
            bindings: Mutex::new(HashMap::new()),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn BankConnector) -> Result<T, BankError> + Send + 'static,
    ) -> Result<T, BankError> {
        let bank = self.bank.clone();
        tokio::task::spawn_blocking(move || work(bank.as_ref()))
            .await
            .unwrap_or(Err(BankError::Timeout))
    }

    /// Starts binding a card: the bank checks the details and texts a code to the card's
    /// phone. Returns the binding's reference.
    pub async fn start_binding(
        &self,
        user: &User,
        details: CardDetails,
        now_s: u64,
    ) -> Result<String, PaymentError> {
        for (field, text) in [
            ("holder_name", &details.holder_name),
            ("id_number", &details.id_number),
        ] {
            if text.trim().is_empty() || text.len() > HOLDER_TEXT_BYTES_MAX {
                return Err(invalid(field, "1 to 64 bytes"));
            }
        }
        let details = CardDetails {
            number: crate::bank::parse_card_number(&details.number)?,
            phone: crate::users::parse_phone(&details.phone)?,
            ..details
        };
        let active = self
            .cards(user.id)?
            .iter()
            .filter(|card| card.state == CardState::Active)
            .count();
        if active >= CARDS_PER_USER_MAX {
            return Err(invalid("card", "at most 10 cards per user"));
        }
        let binding = self
            .blocking(move |bank| bank.start_binding(&details))
            .await?;
        let mut bindings = self.bindings.lock().expect("bindings");
        bindings.retain(|_, (_, expires)| now_s < *expires);
        if bindings.len() >= BINDINGS_MAX {
            return Err(PaymentError::Bank(BankError::Declined(
                "too many bindings in progress; retry shortly".into(),
            )));
        }
        bindings.insert(binding.clone(), (user.id, now_s + BINDING_LIFETIME_S));
        Ok(binding)
    }

    /// Confirms a binding with the bank's code: the card is stored (token, BIN, last four)
    /// and a tier-0 user becomes tier 1.
    pub async fn confirm_binding(
        &self,
        user: &User,
        binding: &str,
        code: &str,
        now_s: u64,
    ) -> Result<Card, PaymentError> {
        let owner = self
            .bindings
            .lock()
            .expect("bindings")
            .remove(binding)
            .filter(|(owner, expires)| *owner == user.id && now_s < *expires);
        if owner.is_none() {
            return Err(PaymentError::NotFound("binding"));
        }
        let (binding, code) = (binding.to_owned(), code.to_owned());
        let bound = self
            .blocking(move |bank| bank.confirm_binding(&binding, &code))
            .await?;
        let card = Card {
            id: new_id(now_s * 1000)?,
            user_id: user.id,
            token: bound.token,
            bin: bound.bin,
            last4: bound.last4,
            bank: bound.bank,
            state: CardState::Active,
            created_at: now_s,
        };
        self.ledger
            .submit_with_records(Vec::new(), vec![Record::Card(card.clone())])?
            .await?;
        if user.tier == 0 {
            self.handles.user_writer()?.set_tier(user.id, 1)?;
        }
        Ok(card)
    }

    pub fn cards(&self, user_id: u64) -> Result<Vec<Card>, PaymentError> {
        Ok(self.handles.records(|records| records.cards(user_id))?)
    }

    fn active_card(&self, user_id: u64, card_id: u64) -> Result<Card, PaymentError> {
        self.handles
            .records(|records| records.card(card_id))?
            .filter(|card| card.user_id == user_id && card.state == CardState::Active)
            .ok_or(PaymentError::NotFound("card"))
    }

    /// Unbinds a card: it can no longer be used.
    pub async fn unbind(&self, user_id: u64, card_id: u64) -> Result<Card, PaymentError> {
        let mut card = self.active_card(user_id, card_id)?;
        card.state = CardState::Unbound;
        self.ledger
            .submit_with_records(Vec::new(), vec![Record::Card(card.clone())])?
            .await?;
        Ok(card)
    }

    pub fn bank_transfer(&self, user_id: u64, id: u64) -> Result<BankTransfer, PaymentError> {
        self.handles
            .records(|records| records.bank_transfer(id))?
            .filter(|transfer| transfer.user_id == user_id)
            .ok_or(PaymentError::NotFound("bank transfer"))
    }

    /// Card → wallet. Answers the bank transfer: succeeded, failed (with the bank's reason,
    /// nothing moved), or pending when the bank did not answer in time.
    pub async fn top_up(
        &self,
        user: &User,
        card_id: u64,
        amount: u64,
        idempotency: Option<&Idempotency>,
        render: Render<'_, BankTransfer>,
        now_s: u64,
    ) -> Result<Outcome<BankTransfer>, PaymentError> {
        crate::payments::check_amount(amount)?;
        let mut keys = vec![lock_key("user-bank", user.id)];
        keys.extend(idempotency.map(Idempotency::lock_key));
        let _guards = self.locks.lock(&keys).await;
        if let Some((status, body)) = Idempotency::replay(idempotency, &self.handles)? {
            return Ok(Outcome::Replayed { status, body });
        }
        let card = self.active_card(user.id, card_id)?;
        let pending = BankTransfer {
            id: new_id(now_s * 1000)?,
            user_id: user.id,
            card_id,
            direction: BankDirection::TopUp,
            amount,
            currency: self.currency.as_str().to_owned(),
            state: BankTransferState::Pending,
            bank_reference: None,
            failure: None,
            created_at: now_s,
            updated_at: now_s,
        };
        // Durable before the bank is asked: a crash in between leaves a record to resolve.
        self.ledger
            .submit_with_records(Vec::new(), vec![Record::BankTransfer(pending.clone())])?
            .await?;
        let (token, reference) = (card.token.clone(), format!("bt_{}", pending.id));
        let answer = self
            .blocking(move |bank| bank.debit(&token, amount, &reference))
            .await;
        let finished = self
            .finish(pending, answer, idempotency, render, now_s)
            .await?;
        Ok(Outcome::Done(finished))
    }

    /// Wallet → card: the money is held at once and paid out when the bank confirms.
    pub async fn withdraw(
        &self,
        user: &User,
        card_id: u64,
        amount: u64,
        idempotency: Option<&Idempotency>,
        render: Render<'_, BankTransfer>,
        now_s: u64,
    ) -> Result<Outcome<BankTransfer>, PaymentError> {
        crate::payments::check_amount(amount)?;
        let mut keys = vec![lock_key("user-bank", user.id)];
        keys.extend(idempotency.map(Idempotency::lock_key));
        let _guards = self.locks.lock(&keys).await;
        if let Some((status, body)) = Idempotency::replay(idempotency, &self.handles)? {
            return Ok(Outcome::Replayed { status, body });
        }
        let card = self.active_card(user.id, card_id)?;
        let pending = BankTransfer {
            id: new_id(now_s * 1000)?,
            user_id: user.id,
            card_id,
            direction: BankDirection::Withdrawal,
            amount,
            currency: self.currency.as_str().to_owned(),
            state: BankTransferState::Pending,
            bank_reference: None,
            failure: None,
            created_at: now_s,
            updated_at: now_s,
        };
        let mut hold = NewTransfer::new(
            transfer_id(pending.id, LEG_MOVE),
            user.wallet_account_id,
            RESERVE_ACCOUNT_ID,
            u128::from(amount),
            self.currency,
        );
        hold.flags = TransferFlags::PENDING;
        hold.kind = TRANSFER_WITHDRAWAL;
        hold.user_data = u128::from(pending.id);
        let results = self
            .ledger
            .submit_with_records(
                vec![Event::CreateTransfer(hold)],
                vec![Record::BankTransfer(pending.clone())],
            )?
            .await?;
        match results.first() {
            Some(EventResult::Ok) => {}
            Some(EventResult::ExceedsCredits) => return Err(PaymentError::InsufficientFunds),
            other => return Err(PaymentError::Ledger(format!("{other:?}"))),
        }
        let (token, reference) = (card.token.clone(), format!("bt_{}", pending.id));
        let answer = self
            .blocking(move |bank| bank.credit(&token, amount, &reference))
            .await;
        let finished = self
            .finish(pending, answer, idempotency, render, now_s)
            .await?;
        Ok(Outcome::Done(finished))
    }

    /// Completes a pending bank transfer with the bank's answer, exactly once: the ledger
    /// transfer ids are fixed by the bank transfer's id, so a second completion is refused by
    /// the ledger and changes nothing. A timeout leaves it pending, for
    /// [`Cards::resolve_pending`].
    async fn finish(
        &self,
        mut transfer: BankTransfer,
        answer: Result<BankReceipt, BankError>,
        idempotency: Option<&Idempotency>,
        render: Render<'_, BankTransfer>,
        now_s: u64,
    ) -> Result<BankTransfer, PaymentError> {
        let outcome = match answer {
            Err(BankError::Timeout) => {
                // Unknown at the bank: the record stays pending, and a retry with the same key
                // answers the same pending transfer rather than starting another.
                let records: Vec<Record> =
                    Idempotency::record(idempotency, render, &transfer, now_s)
                        .into_iter()
                        .collect();
                if !records.is_empty() {
                    self.ledger
                        .submit_with_records(Vec::new(), records)?
                        .await?;
                }
                return Ok(transfer);
            }
            other => other,
        };
        transfer.updated_at = now_s;
        let move_id = transfer_id(transfer.id, LEG_MOVE);
        let mut events = Vec::new();
        match (&outcome, transfer.direction) {
            (Ok(receipt), BankDirection::TopUp) => {
                let wallet = self
                    .handles
                    .user_store()?
                    .user(transfer.user_id)?
                    .ok_or(PaymentError::NotFound("user"))?
                    .wallet_account_id;
                let mut credit = NewTransfer::new(
                    move_id,
                    RESERVE_ACCOUNT_ID,
                    wallet,
                    u128::from(transfer.amount),
                    self.currency,
                );
                credit.kind = TRANSFER_TOP_UP;
                credit.user_data = u128::from(transfer.id);
                events.push(Event::CreateTransfer(credit));
                transfer.state = BankTransferState::Succeeded;
                transfer.bank_reference = Some(receipt.bank_reference.clone());
            }
            (Ok(receipt), BankDirection::Withdrawal) => {
                let mut post =
                    NewTransfer::new(transfer_id(transfer.id, LEG_POST), 0, 0, 0, self.currency);
                post.flags = TransferFlags::POST_PENDING;
                post.pending_id = move_id;
                post.kind = TRANSFER_WITHDRAWAL;
                post.user_data = u128::from(transfer.id);
                events.push(Event::CreateTransfer(post));
                transfer.state = BankTransferState::Succeeded;
                transfer.bank_reference = Some(receipt.bank_reference.clone());
            }
            (Err(error), direction) => {
                if direction == BankDirection::Withdrawal {
                    let mut void = NewTransfer::new(
                        transfer_id(transfer.id, LEG_VOID),
                        0,
                        0,
                        0,
                        self.currency,
                    );
                    void.flags = TransferFlags::VOID_PENDING;
                    void.pending_id = move_id;
                    void.kind = TRANSFER_WITHDRAWAL;
                    void.user_data = u128::from(transfer.id);
                    events.push(Event::CreateTransfer(void));
                }
                transfer.state = BankTransferState::Failed;
                transfer.failure = Some(error.to_string());
            }
        }
        let mut records = vec![Record::BankTransfer(transfer.clone())];
        records.extend(Idempotency::record(idempotency, render, &transfer, now_s));
        let results = self.ledger.submit_with_records(events, records)?.await?;
        if results.iter().any(|result| *result != EventResult::Ok) {
            // Finished meanwhile (by the resolver): answer what was recorded.
            return self.bank_transfer(transfer.user_id, transfer.id);
        }
        Ok(transfer)
    }

    /// Asks the bank about transfers left pending for at least `age_s` (a timeout, a crash)
    /// and finishes them. Returns how many were finished.
    pub async fn resolve_pending(&self, now_s: u64, age_s: u64) -> Result<usize, PaymentError> {
        let pending = self
            .handles
            .records(|records| records.bank_transfers_pending(PENDING_PER_ROUND_MAX))?;
        let mut finished = 0;
        for transfer in pending {
            if now_s < transfer.created_at + age_s {
                continue;
            }
            let _guards = self
                .locks
                .lock(&[lock_key("user-bank", transfer.user_id)])
                .await;
            let reference = format!("bt_{}", transfer.id);
            let status = self.blocking(move |bank| bank.status(&reference)).await;
            let answer = match status {
                Ok(BankStatus::Done(receipt)) => Ok(receipt),
                Ok(BankStatus::Failed(error)) => Err(error),
                // The bank never saw it: nothing moved there.
                Ok(BankStatus::Unknown) => {
                    Err(BankError::Declined("never reached the bank".into()))
                }
                Err(_) => continue,
            };
            let no_render: Render<'_, BankTransfer> = &|_| (200, String::new());
            let done = self
                .finish(transfer, answer, None, no_render, now_s)
                .await?;
            if done.state != BankTransferState::Pending {
                finished += 1;
            }
        }
        Ok(finished)
    }
}
