//! Billers: the connector trait a biller integration (a utility's API, a bill-payment switch, a
//! carrier's top-up gateway) implements, and a simulated biller for tests and the demo.
//!
//! Tally asks the biller about a customer reference (the name on the account, what is due and
//! by when), then holds the money and asks the biller to take the payment. A biller may refuse
//! after the money was held, or not answer in time; the payment is then settled from its
//! answer to a status query, exactly once.

use std::collections::HashMap;
use std::sync::Mutex;

use store::{Biller, BillerCategory};

use crate::secrets;
use crate::time::rfc3339_seconds;

/// Why a biller refused, or could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillerError {
    #[error("the biller has no account with this reference")]
    UnknownReference,
    #[error("the biller's account with this reference is closed")]
    AccountClosed,
    /// The biller did not answer in time: the payment may or may not have been taken. Ask
    /// [`BillerConnector::status`] later; never assume either way.
    #[error("the biller did not answer in time")]
    Timeout,
    #[error("the biller refused the payment: {0}")]
    Rejected(String),
}

impl BillerError {
    pub fn code(&self) -> &'static str {
        match self {
            BillerError::UnknownReference => "unknown_reference",
            BillerError::AccountClosed => "account_closed",
            BillerError::Timeout => "biller_timeout",
            BillerError::Rejected(_) => "biller_rejected",
        }
    }
}

/// What a biller says about a customer reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillInquiry {
    /// The name on the account, in full (the platform masks it before showing it).
    pub customer_name: String,
    /// What the current bill asks for, in minor units; `None` when nothing is billed (a
    /// prepaid line).
    pub amount_due: Option<u64>,
    /// When it is due, `YYYY-MM-DD`.
    pub due_date: Option<String>,
}

/// A payment as Tally asks a biller to take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillRequest {
    pub reference: String,
    pub amount: u64,
    /// Tally's id of the payment (`bp_…`): a biller must treat a repeated one as the same
    /// payment, so a retry never pays twice.
    pub payment_reference: String,
}

/// The biller's receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillerReceipt {
    pub confirmation: String,
}

/// What became of a payment the biller did not answer in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillerStatus {
    Done(BillerReceipt),
    Failed(BillerError),
    /// The biller never received it.
    Unknown,
}

/// A biller integration. Calls block; the services call them off the async threads.
pub trait BillerConnector: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &str;
    /// The account behind `reference` at `biller`.
    fn inquire(&self, biller: &Biller, reference: &str) -> Result<BillInquiry, BillerError>;
    /// Takes a payment.
    fn pay(&self, biller: &Biller, request: &BillRequest) -> Result<BillerReceipt, BillerError>;
    /// What became of `request` (by its payment reference).
    fn status(&self, biller: &Biller, request: &BillRequest) -> Result<BillerStatus, BillerError>;
}

/// How a sample account behaves when paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleBehaviour {
    /// Pays at once.
    Pays,
    /// Refuses every payment once it is asked to take one.
    RefusesPayments,
    /// Takes the payment but the answer is lost; the status query tells the truth.
    SlowThenPays,
    /// Refuses the payment and the answer is lost; the status query tells the truth.
    SlowThenRefuses,
    /// The account is closed: inquiries and payments are refused.
    Closed,
}

/// One of the simulated biller's sample accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub category: BillerCategory,
    pub reference: &'static str,
    pub name: &'static str,
    /// What the current bill asks for; `None` for a prepaid line or a closed account.
    pub amount_due: Option<u64>,
    /// Days from the biller's "today" to the due date.
    pub due_in_days: u64,
    pub behaviour: SampleBehaviour,
}

const fn sample(
    category: BillerCategory,
    reference: &'static str,
    name: &'static str,
    amount_due: Option<u64>,
    due_in_days: u64,
    behaviour: SampleBehaviour,
) -> Sample {
    Sample {
        category,
        reference,
        name,
        amount_due,
        due_in_days,
        behaviour,
    }
}

/// The simulated biller's sample accounts. References follow the demo billers' rules:
/// electricity 10 digits with a Luhn check digit, water 8 digits with a mod-11 one, gas 12
/// digits with a Luhn one, phone numbers 11 digits starting with 1.
pub const SAMPLE_ACCOUNTS: [Sample; 12] = {
    use BillerCategory::{Electricity, Gas, Phone, Water};
    use SampleBehaviour::{Closed, Pays, RefusesPayments, SlowThenPays, SlowThenRefuses};
    [
        sample(Electricity, "1002030409", "Li Lei", Some(12_880), 12, Pays),
        sample(
            Electricity,
            "1002030417",
            "Han Meimei",
            Some(5_630),
            5,
            Pays,
        ),
        sample(
            Electricity,
            "1002030425",
            "Wang Fang",
            Some(9_900),
            9,
            RefusesPayments,
        ),
        sample(
            Electricity,
            "1002030433",
            "Zhao Lei",
            Some(7_420),
            20,
            SlowThenPays,
        ),
        sample(
            Electricity,
            "1002030441",
            "Sun Li",
            Some(3_310),
            3,
            SlowThenRefuses,
        ),
        sample(Electricity, "1002030458", "Zhou Jie", None, 0, Closed),
        sample(Water, "31002028", "Li Lei", Some(4_250), 20, Pays),
        sample(Water, "31002036", "Han Meimei", Some(3_180), 18, Pays),
        sample(Gas, "510020300016", "Li Lei", Some(8_900), 15, Pays),
        sample(Phone, "13800138000", "Li Lei", None, 0, Pays),
        sample(Phone, "13900139000", "Han Meimei", None, 0, Pays),
        sample(Phone, "13600136000", "Qian Hao", None, 0, Closed),
    ]
};

/// Payments one simulated biller remembers, at most (then it forgets the oldest half).
pub const SIMULATED_PAYMENTS_MAX: usize = 100_000;

#[derive(Debug, Clone)]
struct SampleAccount {
    name: String,
    amount_due: Option<u64>,
    due_date: Option<String>,
    behaviour: SampleBehaviour,
}

/// A biller in memory with the failures real billers have: unknown references, closed
/// accounts, a refusal after the payment was requested, answers lost on the way back.
///
/// It keeps the payments it took in memory, as a bank keeps its ledger; a slow account's
/// outcome does not depend on that memory, so a payment left pending across a restart of
/// Tally is still settled from the status query's answer.
pub struct SimulatedBiller {
    name: String,
    accounts: HashMap<(BillerCategory, String), SampleAccount>,
    payments: Mutex<HashMap<String, Result<BillerReceipt, BillerError>>>,
}

impl std::fmt::Debug for SimulatedBiller {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SimulatedBiller")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SimulatedBiller {
    /// The sample accounts, their bills due counted from `today_s` (Unix seconds).
    pub fn new(name: &str, today_s: u64) -> SimulatedBiller {
        let accounts = SAMPLE_ACCOUNTS
            .iter()
            .map(|sample| {
                let due_date = sample.amount_due.map(|_| {
                    rfc3339_seconds(today_s + sample.due_in_days * 86_400)[..10].to_owned()
                });
                (
                    (sample.category, sample.reference.to_owned()),
                    SampleAccount {
                        name: sample.name.to_owned(),
                        amount_due: sample.amount_due,
                        due_date,
                        behaviour: sample.behaviour,
                    },
                )
            })
            .collect();
        SimulatedBiller {
            name: name.to_owned(),
            accounts,
            payments: Mutex::new(HashMap::new()),
        }
    }

    fn account(&self, biller: &Biller, reference: &str) -> Result<&SampleAccount, BillerError> {
        let account = self
            .accounts
            .get(&(biller.category, reference.to_owned()))
            .ok_or(BillerError::UnknownReference)?;
        if account.behaviour == SampleBehaviour::Closed {
            return Err(BillerError::AccountClosed);
        }
        Ok(account)
    }

    /// The confirmation number of a payment: derived from its reference, so a status query
    /// answers the same number whether or not the biller remembers the payment.
    fn confirmation(payment_reference: &str) -> String {
        let digest = secrets::sha256(&[
            b"simulated biller confirmation\0",
            payment_reference.as_bytes(),
        ]);
        let number = u64::from_be_bytes(digest[..8].try_into().expect("eight bytes"));
        format!("SB{:012}", number % 1_000_000_000_000)
    }

    /// The outcome of paying `account`, whether the answer reaches Tally or not.
    fn outcome(
        account: &SampleAccount,
        request: &BillRequest,
    ) -> Result<BillerReceipt, BillerError> {
        match account.behaviour {
            SampleBehaviour::Pays | SampleBehaviour::SlowThenPays => Ok(BillerReceipt {
                confirmation: Self::confirmation(&request.payment_reference),
            }),
            SampleBehaviour::RefusesPayments => Err(BillerError::Rejected(
                "the account is under review; payments to it are refused".into(),
            )),
            SampleBehaviour::SlowThenRefuses => Err(BillerError::Rejected(
                "the account's meter is being replaced; pay the next bill".into(),
            )),
            SampleBehaviour::Closed => Err(BillerError::AccountClosed),
        }
    }

    fn slow(account: &SampleAccount) -> bool {
        matches!(
            account.behaviour,
            SampleBehaviour::SlowThenPays | SampleBehaviour::SlowThenRefuses
        )
    }
}

impl BillerConnector for SimulatedBiller {
    fn name(&self) -> &str {
        &self.name
    }

    fn inquire(&self, biller: &Biller, reference: &str) -> Result<BillInquiry, BillerError> {
        let account = self.account(biller, reference)?;
        Ok(BillInquiry {
            customer_name: account.name.clone(),
            amount_due: account.amount_due,
            due_date: account.due_date.clone(),
        })
    }

    fn pay(&self, biller: &Biller, request: &BillRequest) -> Result<BillerReceipt, BillerError> {
        let mut payments = self.payments.lock().expect("payments");
        if let Some(done) = payments.get(&request.payment_reference) {
            return done.clone();
        }
        let account = self.account(biller, &request.reference)?;
        let outcome = Self::outcome(account, request);
        if payments.len() >= SIMULATED_PAYMENTS_MAX {
            // A bounded memory: the oldest entries are no longer asked about.
            let mut references: Vec<String> = payments.keys().cloned().collect();
            references.sort();
            for reference in references.iter().take(SIMULATED_PAYMENTS_MAX / 2) {
                payments.remove(reference);
            }
        }
        payments.insert(request.payment_reference.clone(), outcome.clone());
        if Self::slow(account) {
            return Err(BillerError::Timeout);
        }
        outcome
    }

    fn status(&self, biller: &Biller, request: &BillRequest) -> Result<BillerStatus, BillerError> {
        let remembered = self
            .payments
            .lock()
            .expect("payments")
            .get(&request.payment_reference)
            .cloned();
        let outcome = match remembered {
            Some(outcome) => outcome,
            None => match self
                .accounts
                .get(&(biller.category, request.reference.clone()))
            {
                // A slow account took (or refused) the payment whatever this process
                // remembers: its answer was lost, not its decision.
                Some(account) if Self::slow(account) => Self::outcome(account, request),
                _ => return Ok(BillerStatus::Unknown),
            },
        };
        Ok(match outcome {
            Ok(receipt) => BillerStatus::Done(receipt),
            Err(error) => BillerStatus::Failed(error),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bill_payments::{luhn_valid, mod11_valid};
    use store::{CheckDigit, ReferenceCharset};

    fn biller(category: BillerCategory) -> Biller {
        Biller {
            id: 1,
            code: "POWER".into(),
            name: "Power".into(),
            category,
            reference_label: "Customer number".into(),
            reference_charset: ReferenceCharset::Digits,
            reference_length_min: 10,
            reference_length_max: 10,
            reference_prefix: String::new(),
            check_digit: CheckDigit::Luhn,
            denominations: Vec::new(),
            account_id: 1,
            created_at: 0,
        }
    }

    fn request(reference: &str, payment: &str) -> BillRequest {
        BillRequest {
            reference: reference.into(),
            amount: 100,
            payment_reference: payment.into(),
        }
    }

    #[test]
    fn sample_references_carry_their_check_digits() {
        for Sample {
            category,
            reference,
            ..
        } in SAMPLE_ACCOUNTS
        {
            match category {
                BillerCategory::Electricity | BillerCategory::Gas => {
                    assert!(luhn_valid(reference), "{reference}")
                }
                BillerCategory::Water => assert!(mod11_valid(reference), "{reference}"),
                _ => assert!(reference.len() == 11 && reference.starts_with('1')),
            }
        }
    }

    #[test]
    fn the_simulated_biller_answers_and_fails_like_a_biller() {
        // 2026-11-22 00:00 UTC.
        let simulated = SimulatedBiller::new("Sim", 1_795_305_600);
        let power = biller(BillerCategory::Electricity);
        let inquiry = simulated.inquire(&power, "1002030409").unwrap();
        assert_eq!(inquiry.customer_name, "Li Lei");
        assert_eq!(inquiry.amount_due, Some(12_880));
        assert_eq!(inquiry.due_date.as_deref(), Some("2026-12-04"));
        assert_eq!(
            simulated.inquire(&power, "1002030458"),
            Err(BillerError::AccountClosed)
        );
        assert_eq!(
            simulated.inquire(&biller(BillerCategory::Water), "1002030409"),
            Err(BillerError::UnknownReference),
            "accounts belong to their category's billers"
        );
        let paid = simulated
            .pay(&power, &request("1002030409", "bp_1"))
            .unwrap();
        assert!(paid.confirmation.starts_with("SB"), "{paid:?}");
        assert_eq!(
            simulated.pay(&power, &request("1002030409", "bp_1")),
            Ok(paid.clone()),
            "a retry is the same payment"
        );
        assert_eq!(
            simulated.status(&power, &request("1002030409", "bp_1")),
            Ok(BillerStatus::Done(paid))
        );
        assert!(matches!(
            simulated.pay(&power, &request("1002030425", "bp_2")),
            Err(BillerError::Rejected(_))
        ));
        assert_eq!(
            simulated.pay(&power, &request("1002030433", "bp_3")),
            Err(BillerError::Timeout)
        );
        assert!(matches!(
            simulated.status(&power, &request("1002030433", "bp_3")),
            Ok(BillerStatus::Done(_))
        ));
        assert_eq!(
            simulated.status(&power, &request("1002030409", "bp_9")),
            Ok(BillerStatus::Unknown)
        );
        // A slow account's outcome survives the biller's memory (a restart of Tally).
        let restarted = SimulatedBiller::new("Sim", 1_795_305_600);
        assert_eq!(
            restarted.status(&power, &request("1002030433", "bp_3")),
            simulated.status(&power, &request("1002030433", "bp_3"))
        );
        assert!(matches!(
            restarted.status(&power, &request("1002030441", "bp_4")),
            Ok(BillerStatus::Failed(BillerError::Rejected(_)))
        ));
    }
}
