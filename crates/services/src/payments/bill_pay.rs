//! Bill payments: billers registered by the operator (each with its account in the ledger and
//! the rule of its customer references), inquiries, payments, the users' saved billers and
//! their history.
//!
//! Paying a bill is three steps. The biller is asked about the reference first (an unknown or
//! closed account is refused before anything moves). Then the amount is held: a pending
//! transfer from the wallet to the biller's account, committed with the payment's record in
//! state `pending` (and the request's idempotency record) before the biller is asked to take
//! it. Last, the biller's answer settles the hold: posted when it confirms (the payment
//! `succeeded`, with its confirmation number), voided when it refuses (`failed`, the money
//! back in the wallet). A biller that does not answer leaves the payment pending for
//! [`Payments::resolve_pending_bills`], which asks the biller what happened. The settling
//! transfers have ids fixed by the payment's (hold `+ 1`, post `+ 2`, void `+ 3`), and the
//! ledger settles a pending transfer once: a payment is posted or voided exactly once, whoever
//! gets there first.

use ledger::{AccountFlags, Event, NewAccount, NewTransfer, TransferFlags};
use store::{
    BillPayment, BillPaymentState, Biller, BillerCategory, CheckDigit, Record, ReferenceCharset,
    SavedBiller, SavedBillerState, User, BILLER_DENOMINATIONS_MAX, RECORD_PAGE_LIMIT_MAX,
    RECORD_TEXT_BYTES_MAX,
};

use super::{
    bounded_text, check_amount, first_refusal, invalid, Idempotency, Outcome, PaymentError,
    Payments, Render,
};
use crate::accounts::{KIND_BILLER, TRANSFER_BILL};
use crate::bill_payments::{self, BillCommand, ReferenceRule};
use crate::billers::{BillRequest, BillerConnector, BillerError, BillerReceipt, BillerStatus};
use crate::ids::{new_id, transfer_id};
use crate::support::lock_key;

/// Longest biller code: the biller's identifier at its connector.
pub const BILLER_CODE_BYTES_MAX: usize = 32;
/// Longest name of a reference ("Customer number") and nickname of a saved biller.
pub const REFERENCE_LABEL_BYTES_MAX: usize = 64;
pub const NICKNAME_BYTES_MAX: usize = 64;
/// Longest reference as typed, spaces and dashes included.
pub const TYPED_REFERENCE_BYTES_MAX: usize = 64;
/// Longest name on an account kept from a biller's answer, in characters.
pub const CUSTOMER_NAME_CHARS_MAX: usize = 64;
/// Billers one user may keep saved.
pub const SAVED_BILLERS_PER_USER_MAX: usize = 50;
/// Pending bill payments asked about per round of the resolver.
pub const BILL_PENDING_PER_ROUND_MAX: usize = 100;

const _: () = assert!(SAVED_BILLERS_PER_USER_MAX <= RECORD_PAGE_LIMIT_MAX);
const _: () = assert!(CUSTOMER_NAME_CHARS_MAX * 4 <= RECORD_TEXT_BYTES_MAX);

/// Legs of a bill payment in the ledger.
const LEG_HOLD: u8 = 1;
const LEG_POST: u8 = 2;
const LEG_VOID: u8 = 3;

/// A biller as the operator registers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillerInput {
    pub code: String,
    pub name: String,
    pub category: BillerCategory,
    pub reference_label: String,
    pub reference_charset: ReferenceCharset,
    pub reference_length_min: u8,
    pub reference_length_max: u8,
    pub reference_prefix: String,
    pub check_digit: CheckDigit,
    pub denominations: Vec<u64>,
}

/// What the biller says about a reference, as the payer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inquiry {
    pub biller: Biller,
    /// The reference as the biller's rule reads it.
    pub reference: String,
    /// The name on the account, masked.
    pub customer_name: String,
    pub amount_due: Option<u64>,
    pub due_date: Option<String>,
}

fn check_biller_code(code: &str) -> Result<(), PaymentError> {
    let valid = !code.is_empty()
        && code.len() <= BILLER_CODE_BYTES_MAX
        && code.bytes().all(|byte| {
            byte.is_ascii_uppercase() || byte.is_ascii_digit() || b"_-".contains(&byte)
        });
    if valid {
        Ok(())
    } else {
        Err(invalid(
            "code",
            format!("1 to {BILLER_CODE_BYTES_MAX} of A-Z 0-9 _ -"),
        ))
    }
}

fn required_text(field: &'static str, text: &str, bytes_max: usize) -> Result<(), PaymentError> {
    bounded_text(field, text, bytes_max)?;
    if text.trim().is_empty() {
        return Err(invalid(field, "required"));
    }
    Ok(())
}

/// The reference as typed, read by the biller's rule.
fn read_reference(biller: &Biller, typed: &str) -> Result<String, PaymentError> {
    if typed.len() > TYPED_REFERENCE_BYTES_MAX {
        return Err(invalid(
            "reference",
            format!("at most {TYPED_REFERENCE_BYTES_MAX} bytes"),
        ));
    }
    Ok(ReferenceRule::of(biller).read(typed)?)
}

fn bill_request(payment: &BillPayment) -> BillRequest {
    BillRequest {
        reference: payment.reference.clone(),
        amount: payment.amount,
        payment_reference: format!("bp_{}", payment.id),
    }
}

/// The ledger transfer that holds a bill payment's money.
pub fn bill_hold_transfer_id(payment_id: u64) -> u128 {
    transfer_id(payment_id, LEG_HOLD)
}

impl Payments {
    /// Runs a connector call off the async threads; a call that cannot finish is a timeout
    /// (its outcome is unknown).
    async fn biller_call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn BillerConnector) -> Result<T, BillerError> + Send + 'static,
    ) -> Result<T, BillerError> {
        let billers = self.billers.clone();
        tokio::task::spawn_blocking(move || work(billers.as_ref()))
            .await
            .unwrap_or(Err(BillerError::Timeout))
    }

    // ---- Billers -----------------------------------------------------------------------------

    /// Registers a biller: its ledger account (which may not go negative) and its record, in
    /// one request. Its code is unique.
    pub async fn register_biller(
        &self,
        input: BillerInput,
        idempotency: Option<&Idempotency>,
        render: Render<'_, Biller>,
        now_s: u64,
    ) -> Result<Outcome<Biller>, PaymentError> {
        check_biller_code(&input.code)?;
        required_text("name", &input.name, RECORD_TEXT_BYTES_MAX)?;
        required_text(
            "reference.label",
            &input.reference_label,
            REFERENCE_LABEL_BYTES_MAX,
        )?;
        let rule = ReferenceRule {
            label: input.reference_label.clone(),
            charset: input.reference_charset,
            length_min: input.reference_length_min,
            length_max: input.reference_length_max,
            prefix: input.reference_prefix.clone(),
            check_digit: input.check_digit,
        };
        rule.validate()
            .map_err(|(field, reason)| invalid(field, reason))?;
        if input.denominations.len() > BILLER_DENOMINATIONS_MAX {
            return Err(invalid(
                "denominations",
                format!("at most {BILLER_DENOMINATIONS_MAX}"),
            ));
        }
        for amount in &input.denominations {
            check_amount(*amount).map_err(|_| {
                invalid(
                    "denominations",
                    "each 1 minor unit or more, within the payment maximum",
                )
            })?;
        }
        if !input.denominations.windows(2).all(|pair| pair[0] < pair[1]) {
            return Err(invalid("denominations", "ascending, each once"));
        }
        if input.category == BillerCategory::Phone && input.denominations.is_empty() {
            return Err(invalid(
                "denominations",
                "a phone top-up biller offers fixed amounts",
            ));
        }
        let mut keys = vec![lock_key("biller-code", &input.code)];
        keys.extend(idempotency.map(Idempotency::lock_key));
        let _guards = self.locks.lock(&keys).await;
        if let Some((status, body)) = Idempotency::replay(idempotency, &self.handles)? {
            return Ok(Outcome::Replayed { status, body });
        }
        let taken = self
            .handles
            .records(|records| records.biller_by_code(&input.code))?;
        if taken.is_some() {
            return Err(PaymentError::BillerCodeUsed);
        }
        let id = new_id(now_s * 1000)?;
        let biller = Biller {
            id,
            code: input.code,
            name: input.name,
            category: input.category,
            reference_label: input.reference_label,
            reference_charset: input.reference_charset,
            reference_length_min: input.reference_length_min,
            reference_length_max: input.reference_length_max,
            reference_prefix: input.reference_prefix,
            check_digit: input.check_digit,
            denominations: input.denominations,
            account_id: u128::from(id),
            created_at: now_s,
        };
        let account = Event::CreateAccount(NewAccount {
            id: biller.account_id,
            currency: self.config.currency,
            kind: KIND_BILLER,
            flags: AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS | AccountFlags::HISTORY,
            user_data: 0,
        });
        let mut records = vec![Record::Biller(biller.clone())];
        records.extend(Idempotency::record(idempotency, render, &biller, now_s));
        let results = self.commit(vec![account], records).await?;
        if let Some(result) = first_refusal(&results) {
            return Err(PaymentError::Ledger(format!("{result:?}")));
        }
        Ok(Outcome::Done(biller))
    }

    pub fn biller(&self, id: u64) -> Result<Biller, PaymentError> {
        self.handles
            .records(|records| records.biller(id))?
            .ok_or(PaymentError::NotFound("biller"))
    }

    /// Billers by id, of one category or all.
    pub fn billers(
        &self,
        category: Option<BillerCategory>,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<Biller>, PaymentError> {
        Ok(self
            .handles
            .records(|records| records.billers(category, after_id, limit))?)
    }

    // ---- Inquiries and payments ----------------------------------------------------------

    /// Asks the biller about a reference: the name on the account (masked), what is due and
    /// by when. A reference that breaks the biller's rule is refused without asking it.
    pub async fn inquire_bill(
        &self,
        biller_id: u64,
        typed_reference: &str,
    ) -> Result<Inquiry, PaymentError> {
        let biller = self.biller(biller_id)?;
        let reference = read_reference(&biller, typed_reference)?;
        self.ask_biller(biller, reference).await
    }

    async fn ask_biller(&self, biller: Biller, reference: String) -> Result<Inquiry, PaymentError> {
        let (asked, asked_reference) = (biller.clone(), reference.clone());
        let answer = self
            .biller_call(move |connector| connector.inquire(&asked, &asked_reference))
            .await?;
        let customer_name: String = bill_payments::mask_name(&answer.customer_name)
            .chars()
            .take(CUSTOMER_NAME_CHARS_MAX)
            .collect();
        Ok(Inquiry {
            biller,
            reference,
            customer_name,
            amount_due: answer.amount_due,
            due_date: answer.due_date,
        })
    }

    /// Pays a bill (or tops up a phone) from the user's wallet; the payment password was
    /// checked by the caller. Answers the payment: `succeeded` with the biller's confirmation,
    /// `failed` with its reason (the hold voided: the money is back), or `pending` when the
    /// biller did not answer in time.
    ///
    /// With an `Idempotency-Key`, the first answer is stored with the hold, before the biller
    /// is asked: a retry (even after a crash) finds that payment, never makes another.
    #[allow(clippy::too_many_arguments)]
    pub async fn pay_bill(
        &self,
        user: &User,
        biller_id: u64,
        typed_reference: &str,
        amount: u64,
        idempotency: Option<&Idempotency>,
        render: Render<'_, BillPayment>,
        now_s: u64,
    ) -> Result<Outcome<BillPayment>, PaymentError> {
        check_amount(amount)?;
        let biller = self.biller(biller_id)?;
        let reference = read_reference(&biller, typed_reference)?;
        if !biller.denominations.is_empty() && !biller.denominations.contains(&amount) {
            return Err(PaymentError::DenominationNotOffered {
                denominations: biller.denominations.clone(),
            });
        }
        let id = new_id(now_s * 1000)?;
        let mut keys = vec![lock_key("user", user.id), lock_key("bill-payment", id)];
        keys.extend(idempotency.map(Idempotency::lock_key));
        let _guards = self.locks.lock(&keys).await;
        if let Some((status, body)) = Idempotency::replay(idempotency, &self.handles)? {
            return Ok(Outcome::Replayed { status, body });
        }
        // Refusals of the biller come before anything moves.
        let inquiry = self.ask_biller(biller.clone(), reference.clone()).await?;
        let spending = self.check_limits(user, amount, now_s)?;
        let pending = BillPayment {
            id,
            user_id: user.id,
            biller_id,
            reference,
            amount,
            currency: self.config.currency.as_str().to_owned(),
            state: BillPaymentState::Pending,
            customer_name: Some(inquiry.customer_name),
            confirmation: None,
            failure: None,
            created_at: now_s,
            updated_at: now_s,
        };
        let mut hold = NewTransfer::new(
            bill_hold_transfer_id(id),
            user.wallet_account_id,
            biller.account_id,
            u128::from(amount),
            self.config.currency,
        );
        hold.flags = TransferFlags::PENDING;
        hold.kind = TRANSFER_BILL;
        hold.user_data = u128::from(id);
        let mut records = vec![Record::BillPayment(pending.clone())];
        records.extend(Idempotency::record(idempotency, render, &pending, now_s));
        let results = self
            .commit(vec![Event::CreateTransfer(hold)], records)
            .await?;
        if let Some(result) = first_refusal(&results) {
            return Err(Self::refusal(result));
        }
        self.remember_spending(user, spending);
        let request = bill_request(&pending);
        let answer = self
            .biller_call(move |connector| connector.pay(&biller, &request))
            .await;
        let finished = self.settle_bill(pending, answer, now_s).await?;
        Ok(Outcome::Done(finished))
    }

    /// Settles a pending payment with the biller's answer: posts its hold on a receipt, voids
    /// it on a refusal; a timeout leaves it pending. The caller holds the payment's lock.
    async fn settle_bill(
        &self,
        payment: BillPayment,
        answer: Result<BillerReceipt, BillerError>,
        now_s: u64,
    ) -> Result<BillPayment, PaymentError> {
        let hold = bill_hold_transfer_id(payment.id);
        let reason;
        let (leg, flags, command) = match &answer {
            Err(BillerError::Timeout) => return Ok(payment),
            Ok(receipt) => (
                LEG_POST,
                TransferFlags::POST_PENDING,
                BillCommand::Confirm {
                    confirmation: &receipt.confirmation,
                    now_s,
                },
            ),
            Err(error) => {
                reason = error.to_string();
                (
                    LEG_VOID,
                    TransferFlags::VOID_PENDING,
                    BillCommand::Refuse {
                        reason: &reason,
                        now_s,
                    },
                )
            }
        };
        let next = bill_payments::transition(&payment, command)
            .map_err(|refusal| PaymentError::Ledger(refusal.to_string()))?;
        let mut settle =
            NewTransfer::new(transfer_id(payment.id, leg), 0, 0, 0, self.config.currency);
        settle.flags = flags;
        settle.pending_id = hold;
        settle.kind = TRANSFER_BILL;
        settle.user_data = u128::from(payment.id);
        let results = self
            .commit(
                vec![Event::CreateTransfer(settle)],
                vec![Record::BillPayment(next.clone())],
            )
            .await?;
        if first_refusal(&results).is_some() {
            // Settled meanwhile (the ledger settles a hold once): answer what was recorded.
            return self.bill_payment(payment.user_id, payment.id);
        }
        if next.state == BillPaymentState::Failed {
            self.release_spending(payment.user_id, payment.amount, payment.created_at);
        }
        Ok(next)
    }

    /// Asks the billers about payments pending for at least `age_s` (a timeout, a crash, a
    /// restart) and settles them. Returns how many were settled.
    pub async fn resolve_pending_bills(
        &self,
        now_s: u64,
        age_s: u64,
    ) -> Result<usize, PaymentError> {
        let pending = self
            .handles
            .records(|records| records.bill_payments_pending(BILL_PENDING_PER_ROUND_MAX))?;
        let mut settled = 0;
        for payment in pending {
            if now_s < payment.created_at.saturating_add(age_s) {
                continue;
            }
            let _guards = self
                .locks
                .lock(&[
                    lock_key("user", payment.user_id),
                    lock_key("bill-payment", payment.id),
                ])
                .await;
            // Read again under the lock: its own request may have settled it meanwhile.
            let current = self
                .handles
                .records(|records| records.bill_payment(payment.id))?
                .filter(|current| current.state == BillPaymentState::Pending);
            let Some(payment) = current else {
                continue;
            };
            let biller = self.biller(payment.biller_id)?;
            let request = bill_request(&payment);
            let status = self
                .biller_call(move |connector| connector.status(&biller, &request))
                .await;
            let answer = match status {
                Ok(BillerStatus::Done(receipt)) => Ok(receipt),
                Ok(BillerStatus::Failed(BillerError::Timeout)) => Err(BillerError::Rejected(
                    "the biller did not complete the payment".into(),
                )),
                Ok(BillerStatus::Failed(error)) => Err(error),
                // The biller never saw it: nothing was paid there.
                Ok(BillerStatus::Unknown) => Err(BillerError::Rejected(
                    "the biller never received the payment".into(),
                )),
                // Not reachable now: asked again next round.
                Err(_) => continue,
            };
            let done = self.settle_bill(payment, answer, now_s).await?;
            if done.state != BillPaymentState::Pending {
                settled += 1;
            }
        }
        Ok(settled)
    }

    /// One of the user's bill payments; another user's is "not found".
    pub fn bill_payment(&self, user_id: u64, id: u64) -> Result<BillPayment, PaymentError> {
        self.handles
            .records(|records| records.bill_payment(id))?
            .filter(|payment| payment.user_id == user_id)
            .ok_or(PaymentError::NotFound("bill payment"))
    }

    /// The user's bill payments, newest first, older than `before_id`.
    pub fn bill_payments(
        &self,
        user_id: u64,
        before_id: Option<u64>,
        limit: usize,
    ) -> Result<Vec<BillPayment>, PaymentError> {
        Ok(self
            .handles
            .records(|records| records.bill_payments(user_id, before_id, limit))?)
    }

    // ---- Saved billers -------------------------------------------------------------------

    /// Saves a biller and reference to pay again. Saving one already saved renames it.
    /// Returns the entry, and whether it is new.
    pub async fn save_biller(
        &self,
        user: &User,
        biller_id: u64,
        typed_reference: &str,
        nickname: &str,
        now_s: u64,
    ) -> Result<(SavedBiller, bool), PaymentError> {
        let nickname = nickname.trim();
        bounded_text("nickname", nickname, NICKNAME_BYTES_MAX)?;
        let biller = self.biller(biller_id)?;
        let reference = read_reference(&biller, typed_reference)?;
        let _guards = self.locks.lock(&[lock_key("saved-billers", user.id)]).await;
        let saved = self.saved_billers(user.id)?;
        let existing = saved
            .iter()
            .find(|entry| entry.biller_id == biller_id && entry.reference == reference);
        let (entry, created) = match existing {
            Some(entry) if entry.nickname == nickname => return Ok((entry.clone(), false)),
            Some(entry) => (
                SavedBiller {
                    nickname: nickname.to_owned(),
                    updated_at: now_s,
                    ..entry.clone()
                },
                false,
            ),
            None if saved.len() >= SAVED_BILLERS_PER_USER_MAX => {
                return Err(PaymentError::TooManySavedBillers {
                    max: SAVED_BILLERS_PER_USER_MAX,
                })
            }
            None => (
                SavedBiller {
                    id: new_id(now_s * 1000)?,
                    user_id: user.id,
                    biller_id,
                    reference,
                    nickname: nickname.to_owned(),
                    state: SavedBillerState::Active,
                    created_at: now_s,
                    updated_at: now_s,
                },
                true,
            ),
        };
        self.commit(Vec::new(), vec![Record::SavedBiller(entry.clone())])
            .await?;
        Ok((entry, created))
    }

    /// The user's saved billers, oldest first.
    pub fn saved_billers(&self, user_id: u64) -> Result<Vec<SavedBiller>, PaymentError> {
        Ok(self
            .handles
            .records(|records| records.saved_billers(user_id))?)
    }

    /// Forgets a saved biller.
    pub async fn delete_saved_biller(
        &self,
        user_id: u64,
        id: u64,
        now_s: u64,
    ) -> Result<SavedBiller, PaymentError> {
        let _guards = self.locks.lock(&[lock_key("saved-billers", user_id)]).await;
        let entry = self
            .handles
            .records(|records| records.saved_biller(id))?
            .filter(|entry| entry.user_id == user_id && entry.state == SavedBillerState::Active)
            .ok_or(PaymentError::NotFound("saved biller"))?;
        let deleted = SavedBiller {
            state: SavedBillerState::Deleted,
            updated_at: now_s,
            ..entry
        };
        self.commit(Vec::new(), vec![Record::SavedBiller(deleted.clone())])
            .await?;
        Ok(deleted)
    }
}
