//! Banks: the connector trait a bank integration implements, the card-number checks done
//! before a number leaves the request, and a simulated bank for tests and the demo.
//!
//! A card number crosses Tally only on its way to the bank: the bank answers with a token,
//! and Tally keeps the token, the BIN and the last four digits. Never the number.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::secrets;

pub const CARD_DIGITS_MIN: usize = 12;
pub const CARD_DIGITS_MAX: usize = 19;
/// Longest cardholder name and ID number accepted.
pub const HOLDER_TEXT_BYTES_MAX: usize = 64;

/// Why a bank refused or could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankError {
    #[error("the card number is not valid")]
    InvalidCard,
    #[error("the bank does not know this card")]
    UnknownCard,
    #[error("the cardholder's name, ID number or phone do not match the bank's records")]
    DetailsMismatch,
    #[error("the bank's one-time code is wrong or has expired")]
    CodeInvalid,
    #[error("the card does not hold enough money")]
    InsufficientFunds,
    #[error("the card is frozen")]
    CardFrozen,
    /// The bank did not answer in time: the operation may or may not have happened. Ask
    /// [`BankConnector::status`] later; never assume either way.
    #[error("the bank did not answer in time")]
    Timeout,
    #[error("the bank declined: {0}")]
    Declined(String),
}

impl BankError {
    pub fn code(&self) -> &'static str {
        match self {
            BankError::InvalidCard => "invalid_card",
            BankError::UnknownCard => "unknown_card",
            BankError::DetailsMismatch => "card_details_mismatch",
            BankError::CodeInvalid => "invalid_code",
            BankError::InsufficientFunds => "card_insufficient_funds",
            BankError::CardFrozen => "card_frozen",
            BankError::Timeout => "bank_timeout",
            BankError::Declined(_) => "bank_declined",
        }
    }
}

/// What a user types to bind a card.
#[derive(Clone, PartialEq, Eq)]
pub struct CardDetails {
    pub number: String,
    pub holder_name: String,
    pub id_number: String,
    /// The phone the bank has on file for the card.
    pub phone: String,
}

impl std::fmt::Debug for CardDetails {
    // Never print the number, the name or the ID number.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CardDetails")
            .field("number", &mask(&self.number))
            .finish_non_exhaustive()
    }
}

/// `6222 **** **** 1234`-style: the BIN's first four digits and the last four.
pub fn mask(number: &str) -> String {
    if number.len() < 8 {
        return "****".into();
    }
    format!("{}…{}", &number[..4], &number[number.len() - 4..])
}

/// A card bound at the bank: what Tally keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundCard {
    pub token: String,
    pub bin: String,
    pub last4: String,
    pub bank: String,
}

/// A bank's answer to a money movement: its reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankReceipt {
    pub bank_reference: String,
}

/// What became of a movement the bank did not answer in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BankStatus {
    Done(BankReceipt),
    Failed(BankError),
    /// The bank never saw it.
    Unknown,
}

/// A bank integration. Calls block; the services call them off the async threads.
/// `reference` is Tally's id of the movement: a bank must treat a repeated reference as the
/// same movement (so a retry never moves money twice).
pub trait BankConnector: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &str;
    /// Checks the details and sends a one-time code to the card's phone; returns the binding's
    /// reference.
    fn start_binding(&self, card: &CardDetails) -> Result<String, BankError>;
    /// Confirms a binding with the code the cardholder received.
    fn confirm_binding(&self, binding: &str, code: &str) -> Result<BoundCard, BankError>;
    /// Takes money from the card (a top-up).
    fn debit(&self, token: &str, amount: u64, reference: &str) -> Result<BankReceipt, BankError>;
    /// Pays money to the card (a withdrawal).
    fn credit(&self, token: &str, amount: u64, reference: &str) -> Result<BankReceipt, BankError>;
    /// What became of `reference`.
    fn status(&self, reference: &str) -> Result<BankStatus, BankError>;
}

/// The Luhn check digit test (ISO/IEC 7812-1).
pub fn luhn_valid(number: &str) -> bool {
    let digits: Option<Vec<u32>> = number.chars().map(|c| c.to_digit(10)).collect();
    let Some(digits) = digits else {
        return false;
    };
    if !(CARD_DIGITS_MIN..=CARD_DIGITS_MAX).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(position, digit)| {
            if position % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                *digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A card number as typed (spaces and dashes removed), Luhn-checked.
pub fn parse_card_number(text: &str) -> Result<String, BankError> {
    let compact: String = text.chars().filter(|c| *c != ' ' && *c != '-').collect();
    if luhn_valid(&compact) {
        Ok(compact)
    } else {
        Err(BankError::InvalidCard)
    }
}

/// Where the simulated bank sends its one-time codes: (phone, text).
pub type CodeSender = Arc<dyn Fn(&str, &str) + Send + Sync>;

#[derive(Debug, Clone)]
struct Cardholder {
    holder_name: String,
    id_number: String,
    phone: String,
    balance: u64,
    frozen: bool,
}

#[derive(Debug)]
struct PendingBinding {
    number: String,
    code: String,
}

#[derive(Debug, Default)]
struct BankState {
    cards: HashMap<String, Cardholder>,
    tokens: HashMap<String, String>,
    bindings: HashMap<String, PendingBinding>,
    movements: HashMap<String, Result<BankReceipt, BankError>>,
    next_reference: u64,
}

/// A bank in memory: cardholders with balances, and the failures real banks have.
///
/// - a card's balance limits debits (`InsufficientFunds`), a frozen card refuses everything;
/// - an amount whose minor units end in `99` times out: the bank *does* the movement but the
///   answer is lost, as happens in real networks, and [`BankConnector::status`] tells the truth.
pub struct SimulatedBank {
    name: String,
    state: Mutex<BankState>,
    send_code: CodeSender,
}

impl std::fmt::Debug for SimulatedBank {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SimulatedBank")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The simulated bank's sample cardholders: (number, name, ID number, phone, balance, frozen).
pub const SAMPLE_CARDS: [(&str, &str, &str, &str, u64, bool); 4] = [
    (
        "6222020200112233446",
        "Li Lei",
        "110101199003070011",
        "+8613800138000",
        5_000_000,
        false,
    ),
    (
        "6228480402564890018",
        "Han Meimei",
        "110101199205080022",
        "+8613900139000",
        2_000_000,
        false,
    ),
    (
        "4111111111111111",
        "Test Holder",
        "X1234567",
        "+8613700137000",
        100_000_000,
        false,
    ),
    (
        "6212260200000000006",
        "Frozen Holder",
        "110101198001010033",
        "+8613600136000",
        1_000_000,
        true,
    ),
];

impl SimulatedBank {
    pub fn new(name: &str, send_code: CodeSender) -> SimulatedBank {
        let bank = SimulatedBank {
            name: name.to_owned(),
            state: Mutex::new(BankState::default()),
            send_code,
        };
        for (number, holder, id_number, phone, balance, frozen) in SAMPLE_CARDS {
            bank.open_card(number, holder, id_number, phone, balance, frozen);
        }
        bank
    }

    /// Adds a cardholder account.
    pub fn open_card(
        &self,
        number: &str,
        holder_name: &str,
        id_number: &str,
        phone: &str,
        balance: u64,
        frozen: bool,
    ) {
        self.state.lock().expect("bank").cards.insert(
            number.to_owned(),
            Cardholder {
                holder_name: holder_name.to_owned(),
                id_number: id_number.to_owned(),
                phone: phone.to_owned(),
                balance,
                frozen,
            },
        );
    }

    /// A card's balance at the bank.
    pub fn balance(&self, number: &str) -> Option<u64> {
        self.state
            .lock()
            .expect("bank")
            .cards
            .get(number)
            .map(|card| card.balance)
    }

    fn reference(state: &mut BankState, prefix: &str) -> String {
        state.next_reference += 1;
        format!("{prefix}{:010}", state.next_reference)
    }

    fn move_money(
        &self,
        token: &str,
        amount: u64,
        reference: &str,
        outgoing: bool,
    ) -> Result<BankReceipt, BankError> {
        let mut state = self.state.lock().expect("bank");
        if let Some(done) = state.movements.get(reference) {
            return done.clone();
        }
        let number = state
            .tokens
            .get(token)
            .cloned()
            .ok_or(BankError::UnknownCard)?;
        let receipt_reference = Self::reference(&mut state, "SIMB");
        let card = state.cards.get_mut(&number).ok_or(BankError::UnknownCard)?;
        let outcome = if card.frozen {
            Err(BankError::CardFrozen)
        } else if outgoing && card.balance < amount {
            Err(BankError::InsufficientFunds)
        } else {
            if outgoing {
                card.balance -= amount;
            } else {
                card.balance += amount;
            }
            Ok(BankReceipt {
                bank_reference: receipt_reference,
            })
        };
        state
            .movements
            .insert(reference.to_owned(), outcome.clone());
        if amount % 100 == 99 {
            return Err(BankError::Timeout);
        }
        outcome
    }
}

impl BankConnector for SimulatedBank {
    fn name(&self) -> &str {
        &self.name
    }

    fn start_binding(&self, card: &CardDetails) -> Result<String, BankError> {
        let number = parse_card_number(&card.number)?;
        let mut state = self.state.lock().expect("bank");
        let holder = state.cards.get(&number).ok_or(BankError::UnknownCard)?;
        let matches = holder.holder_name == card.holder_name
            && holder.id_number == card.id_number
            && holder.phone == card.phone;
        if !matches {
            return Err(BankError::DetailsMismatch);
        }
        if holder.frozen {
            return Err(BankError::CardFrozen);
        }
        let phone = holder.phone.clone();
        let code =
            secrets::random_digits(6).map_err(|error| BankError::Declined(error.to_string()))?;
        let binding = Self::reference(&mut state, "bind_");
        state.bindings.insert(
            binding.clone(),
            PendingBinding {
                number,
                code: code.clone(),
            },
        );
        drop(state);
        (self.send_code)(
            &phone,
            &format!(
                "{}: your code to link your card to Tally is {code}. Never share it.",
                self.name
            ),
        );
        Ok(binding)
    }

    fn confirm_binding(&self, binding: &str, code: &str) -> Result<BoundCard, BankError> {
        let mut state = self.state.lock().expect("bank");
        let pending = state.bindings.get(binding).ok_or(BankError::CodeInvalid)?;
        if pending.code != code {
            state.bindings.remove(binding);
            return Err(BankError::CodeInvalid);
        }
        let number = pending.number.clone();
        state.bindings.remove(binding);
        let token = format!(
            "tok_{}",
            secrets::hex(
                &secrets::random_bytes::<16>()
                    .map_err(|error| BankError::Declined(error.to_string()))?
            )
        );
        state.tokens.insert(token.clone(), number.clone());
        Ok(BoundCard {
            token,
            bin: number[..6].to_owned(),
            last4: number[number.len() - 4..].to_owned(),
            bank: self.name.clone(),
        })
    }

    fn debit(&self, token: &str, amount: u64, reference: &str) -> Result<BankReceipt, BankError> {
        self.move_money(token, amount, reference, true)
    }

    fn credit(&self, token: &str, amount: u64, reference: &str) -> Result<BankReceipt, BankError> {
        self.move_money(token, amount, reference, false)
    }

    fn status(&self, reference: &str) -> Result<BankStatus, BankError> {
        let state = self.state.lock().expect("bank");
        Ok(match state.movements.get(reference) {
            Some(Ok(receipt)) => BankStatus::Done(receipt.clone()),
            Some(Err(error)) => BankStatus::Failed(error.clone()),
            None => BankStatus::Unknown,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_real_numbers_and_refuses_typos() {
        for (number, ..) in SAMPLE_CARDS {
            assert!(luhn_valid(number), "{number}");
        }
        assert!(
            !luhn_valid("79927398713"),
            "the classic example is too short for a card"
        );
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid("41111111111111a1"));
        assert_eq!(
            parse_card_number("4111 1111-1111 1111").unwrap(),
            "4111111111111111"
        );
        assert_eq!(
            parse_card_number("4111 1111 1111 1121"),
            Err(BankError::InvalidCard)
        );
    }

    #[test]
    fn the_simulated_bank_binds_moves_money_and_fails_like_a_bank() {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let outbox = sent.clone();
        let bank = SimulatedBank::new(
            "Sim Bank",
            Arc::new(move |phone: &str, text: &str| {
                outbox
                    .lock()
                    .unwrap()
                    .push((phone.to_owned(), text.to_owned()))
            }),
        );
        let card = CardDetails {
            number: "6222020200112233446".into(),
            holder_name: "Li Lei".into(),
            id_number: "110101199003070011".into(),
            phone: "+8613800138000".into(),
        };
        let wrong = CardDetails {
            holder_name: "Someone Else".into(),
            ..card.clone()
        };
        assert_eq!(bank.start_binding(&wrong), Err(BankError::DetailsMismatch));
        assert!(!format!("{card:?}").contains("0200112233"), "{card:?}");
        let binding = bank.start_binding(&card).unwrap();
        let text = sent.lock().unwrap().last().unwrap().1.clone();
        let code: String = text
            .split_whitespace()
            .find(|word| word.len() == 7)
            .unwrap()[..6]
            .into();
        let bound = bank.confirm_binding(&binding, &code).unwrap();
        assert_eq!(
            (bound.bin.as_str(), bound.last4.as_str()),
            ("622202", "3446")
        );
        assert_eq!(
            bank.debit(&bound.token, 1_000, "bt_1")
                .unwrap()
                .bank_reference
                .len(),
            14
        );
        assert_eq!(bank.balance(&card.number), Some(4_999_000));
        // A retry of the same reference moves nothing more.
        bank.debit(&bound.token, 1_000, "bt_1").unwrap();
        assert_eq!(bank.balance(&card.number), Some(4_999_000));
        assert_eq!(
            bank.debit(&bound.token, 10_000_000, "bt_2"),
            Err(BankError::InsufficientFunds)
        );
        // A lost answer: the money moved, and the status says so.
        assert_eq!(
            bank.debit(&bound.token, 199, "bt_3"),
            Err(BankError::Timeout)
        );
        assert!(matches!(bank.status("bt_3"), Ok(BankStatus::Done(_))));
        assert_eq!(bank.balance(&card.number), Some(4_998_801));
        assert_eq!(bank.status("bt_9"), Ok(BankStatus::Unknown));
    }
}
