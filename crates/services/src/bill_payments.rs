//! Bill payments, pure: the rules a biller's customer references follow (characters, length,
//! prefix, check digit), the fixed amounts of top-ups, the masking of the name on an account,
//! and the state machine of a payment (`transition`).
//!
//! A payment is created `pending` with its hold in the ledger; the biller's confirmation makes
//! it `succeeded` (the hold is posted), its refusal `failed` (the hold is voided). Both ends are
//! final: a second answer is refused, so the hold is settled exactly once.

use store::{
    BillPayment, BillPaymentState, Biller, CheckDigit, ReferenceCharset, BILL_REFERENCE_CHARS_MAX,
};

/// Why a customer reference cannot be one of the biller's. Nothing was asked of the biller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceRefusal {
    #[error("a {label} here has {expected}")]
    Length { label: String, expected: String },
    #[error("a {label} here has {expected}")]
    Characters {
        label: String,
        expected: &'static str,
    },
    #[error("a {label} here starts with {prefix}")]
    Prefix { label: String, prefix: String },
    #[error("the {label}'s check digit does not match: a digit is mistyped or missing")]
    CheckDigit { label: String },
}

impl ReferenceRefusal {
    /// The stable machine code of the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            ReferenceRefusal::CheckDigit { .. } => "check_digit_mismatch",
            _ => "invalid_reference",
        }
    }
}

/// The rule of a biller's customer references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceRule {
    pub label: String,
    pub charset: ReferenceCharset,
    pub length_min: u8,
    pub length_max: u8,
    pub prefix: String,
    pub check_digit: CheckDigit,
}

impl ReferenceRule {
    pub fn of(biller: &Biller) -> ReferenceRule {
        ReferenceRule {
            label: biller.reference_label.to_lowercase(),
            charset: biller.reference_charset,
            length_min: biller.reference_length_min,
            length_max: biller.reference_length_max,
            prefix: biller.reference_prefix.clone(),
            check_digit: biller.check_digit,
        }
    }

    /// Whether the rule itself can be met: `(field, reason)` of the first thing wrong.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let max = BILL_REFERENCE_CHARS_MAX;
        if self.length_min == 0 || usize::from(self.length_max) > max {
            return Err(("reference.length", format!("1 to {max} characters")));
        }
        if self.length_min > self.length_max {
            return Err(("reference.length", "min at most max".into()));
        }
        if self.prefix.len() >= usize::from(self.length_min) {
            return Err((
                "reference.prefix",
                "shorter than the shortest reference".into(),
            ));
        }
        if !self.prefix.chars().all(|c| self.allows(c)) {
            return Err((
                "reference.prefix",
                format!("made of the reference's characters ({})", self.expected()),
            ));
        }
        if self.check_digit != CheckDigit::None {
            if self.charset != ReferenceCharset::Digits {
                return Err((
                    "reference.check_digit",
                    "a check digit needs digits-only references".into(),
                ));
            }
            if self.length_min < 2 {
                return Err((
                    "reference.check_digit",
                    "a check digit needs references of 2 digits or more".into(),
                ));
            }
        }
        Ok(())
    }

    fn allows(&self, c: char) -> bool {
        match self.charset {
            ReferenceCharset::Digits => c.is_ascii_digit(),
            ReferenceCharset::Alphanumeric => c.is_ascii_digit() || c.is_ascii_uppercase(),
        }
    }

    fn expected(&self) -> &'static str {
        match self.charset {
            ReferenceCharset::Digits => "digits only",
            ReferenceCharset::Alphanumeric => "letters and digits only",
        }
    }

    /// The reference as typed, read by the rule: spaces and dashes dropped, letters
    /// upper-cased. Refused when it breaks the rule.
    pub fn read(&self, typed: &str) -> Result<String, ReferenceRefusal> {
        let reference: String = typed
            .chars()
            .filter(|c| *c != ' ' && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        // Checked before the length, so a stray letter is called a letter, not a length.
        if !reference.chars().all(|c| self.allows(c)) {
            return Err(ReferenceRefusal::Characters {
                label: self.label.clone(),
                expected: self.expected(),
            });
        }
        let length = reference.len();
        if length < usize::from(self.length_min) || length > usize::from(self.length_max) {
            let expected = if self.length_min == self.length_max {
                format!("{} characters", self.length_min)
            } else {
                format!("{} to {} characters", self.length_min, self.length_max)
            };
            return Err(ReferenceRefusal::Length {
                label: self.label.clone(),
                expected,
            });
        }
        if !reference.starts_with(&self.prefix) {
            return Err(ReferenceRefusal::Prefix {
                label: self.label.clone(),
                prefix: self.prefix.clone(),
            });
        }
        let valid = match self.check_digit {
            CheckDigit::None => true,
            CheckDigit::Luhn => luhn_valid(&reference),
            CheckDigit::Mod11 => mod11_valid(&reference),
        };
        if !valid {
            return Err(ReferenceRefusal::CheckDigit {
                label: self.label.clone(),
            });
        }
        Ok(reference)
    }
}

fn digits(text: &str) -> Option<Vec<u32>> {
    text.chars().map(|c| c.to_digit(10)).collect()
}

/// The Luhn check digit (ISO/IEC 7812-1) of `payload`, a string of digits.
pub fn luhn_check_digit(payload: &str) -> Option<u32> {
    let digits = digits(payload)?;
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(position, digit)| {
            // The check digit will sit to the right, so the payload's last digit is doubled.
            if position % 2 == 0 {
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
    Some((10 - sum % 10) % 10)
}

/// Whether `number`'s last digit is the Luhn check digit of the rest.
pub fn luhn_valid(number: &str) -> bool {
    let Some(last) = number.chars().last() else {
        return false;
    };
    number.len() >= 2
        && last.is_ascii_digit()
        && luhn_check_digit(&number[..number.len() - 1]) == last.to_digit(10)
}

/// The mod-11 check digit of `payload`: weights 2, 3, 4, 5, 6, 7, 2, 3 … from the right, the
/// digit 11 minus the remainder (0 when that is 11). `None` when that is 10: no reference ends
/// such a payload.
pub fn mod11_check_digit(payload: &str) -> Option<u32> {
    let digits = digits(payload)?;
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(position, digit)| digit * (2 + (position as u32 % 6)))
        .sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        digit => Some(digit),
    }
}

/// Whether `number`'s last digit is the mod-11 check digit of the rest.
pub fn mod11_valid(number: &str) -> bool {
    let Some(last) = number.chars().last() else {
        return false;
    };
    number.len() >= 2
        && last.is_ascii_digit()
        && mod11_check_digit(&number[..number.len() - 1]) == last.to_digit(10)
}

/// The name on an account as the payer sees it: each word's first letter and stars, enough to
/// recognise one's own account and not enough to learn a stranger's name.
pub fn mask_name(name: &str) -> String {
    name.split_whitespace()
        .map(|word| {
            let mut chars = word.chars();
            let first = chars.next().map(String::from).unwrap_or_default();
            first + &"*".repeat(chars.count())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What happens to a pending payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillCommand<'a> {
    /// The biller took the payment: its confirmation number is the receipt.
    Confirm { confirmation: &'a str, now_s: u64 },
    /// The biller refused it (or never received it).
    Refuse { reason: &'a str, now_s: u64 },
}

/// A command a payment's state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BillRefusal {
    #[error("the bill payment has already {}", if *.0 == BillPaymentState::Succeeded { "succeeded" } else { "failed" })]
    Finished(BillPaymentState),
}

/// The payment after `command`; only a pending payment changes.
pub fn transition(
    payment: &BillPayment,
    command: BillCommand<'_>,
) -> Result<BillPayment, BillRefusal> {
    if payment.state != BillPaymentState::Pending {
        return Err(BillRefusal::Finished(payment.state));
    }
    let mut next = payment.clone();
    match command {
        BillCommand::Confirm {
            confirmation,
            now_s,
        } => {
            next.state = BillPaymentState::Succeeded;
            next.confirmation = Some(confirmation.to_owned());
            next.updated_at = now_s;
        }
        BillCommand::Refuse { reason, now_s } => {
            next.state = BillPaymentState::Failed;
            next.failure = Some(reason.to_owned());
            next.updated_at = now_s;
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        charset: ReferenceCharset,
        length: (u8, u8),
        prefix: &str,
        check: CheckDigit,
    ) -> ReferenceRule {
        ReferenceRule {
            label: "customer number".into(),
            charset,
            length_min: length.0,
            length_max: length.1,
            prefix: prefix.into(),
            check_digit: check,
        }
    }

    #[test]
    fn luhn_finds_every_single_digit_typo() {
        assert_eq!(luhn_check_digit("7992739871"), Some(3));
        assert!(luhn_valid("79927398713"));
        assert!(luhn_valid("4111111111111111"));
        let valid = "79927398713";
        for position in 0..valid.len() {
            for digit in b'0'..=b'9' {
                let mut typo = valid.as_bytes().to_vec();
                if typo[position] == digit {
                    continue;
                }
                typo[position] = digit;
                let typo = String::from_utf8(typo).unwrap();
                assert!(!luhn_valid(&typo), "{typo}");
            }
        }
        assert!(!luhn_valid("7"), "a check digit needs something to check");
        assert!(!luhn_valid("7992739871a"));
        assert_eq!(luhn_check_digit("12a"), None);
    }

    #[test]
    fn mod11_weighs_from_the_right_and_refuses_a_remainder_of_one() {
        // 0 3 6 5 3 2 7: weights 7 6 5 4 3 2 from the left → 0+18+30+20+9+4 = 81, 81 mod 11 = 4,
        // 11 − 4 = 7.
        assert_eq!(mod11_check_digit("036532"), Some(7));
        assert!(mod11_valid("0365327"));
        assert!(!mod11_valid("0365326"));
        // A sum of 11 × k: check digit 0. 2 → 2·2 = 4; "00000" → 0 → 11 − 0 = 11 → 0.
        assert_eq!(mod11_check_digit("00000"), Some(0));
        // Remainder 1 (sum 12 = 6 × 2): 11 − 1 = 10, no digit: no reference ends it.
        assert_eq!(mod11_check_digit("6"), None);
        for last in '0'..='9' {
            assert!(!mod11_valid(&format!("6{last}")));
        }
        // Weights cycle after 7: the seventh digit from the right weighs 2 again.
        assert_eq!(
            mod11_check_digit("1000000"),
            mod11_check_digit("0000001"),
            "both weigh 2"
        );
        // A transposition of neighbours is caught.
        assert!(!mod11_valid("3065327"));
    }

    #[test]
    fn a_reference_is_read_then_checked_in_a_fixed_order() {
        let power = rule(ReferenceCharset::Digits, (10, 10), "", CheckDigit::Luhn);
        assert_eq!(
            power.read("7992 7398-71 3"),
            Err(ReferenceRefusal::Length {
                label: "customer number".into(),
                expected: "10 characters".into()
            }),
            "eleven digits once spaces and dashes are dropped"
        );
        let check = luhn_check_digit("123456789").unwrap();
        let valid = format!("123456789{check}");
        assert_eq!(power.read(&format!("12345 6789{check}")), Ok(valid.clone()));
        let wrong = format!("123456789{}", (check + 1) % 10);
        let refused = power.read(&wrong).unwrap_err();
        assert_eq!(refused.code(), "check_digit_mismatch");
        let letters = power.read("12345678AB").unwrap_err();
        assert_eq!(letters.code(), "invalid_reference");
        assert!(letters.to_string().contains("digits only"), "{letters}");
        let phone = rule(ReferenceCharset::Digits, (11, 11), "1", CheckDigit::None);
        assert_eq!(phone.read("138 0013 8000"), Ok("13800138000".into()));
        let prefix = phone.read("23800138000").unwrap_err();
        assert!(prefix.to_string().contains("starts with 1"), "{prefix}");
        let account = rule(
            ReferenceCharset::Alphanumeric,
            (6, 12),
            "AC",
            CheckDigit::None,
        );
        assert_eq!(account.read("ac-12x9"), Ok("AC12X9".into()));
        assert!(account
            .read("AC1")
            .unwrap_err()
            .to_string()
            .contains("6 to 12 characters"));
        assert_eq!(
            account.read("AC12_9").unwrap_err().code(),
            "invalid_reference"
        );
    }

    #[test]
    fn a_rule_must_be_one_a_reference_can_meet() {
        let fine = rule(ReferenceCharset::Digits, (8, 8), "", CheckDigit::Mod11);
        assert_eq!(fine.validate(), Ok(()));
        for (broken, field) in [
            (
                rule(ReferenceCharset::Digits, (0, 8), "", CheckDigit::None),
                "reference.length",
            ),
            (
                rule(ReferenceCharset::Digits, (9, 8), "", CheckDigit::None),
                "reference.length",
            ),
            (
                rule(ReferenceCharset::Digits, (8, 33), "", CheckDigit::None),
                "reference.length",
            ),
            (
                rule(ReferenceCharset::Digits, (4, 8), "1234", CheckDigit::None),
                "reference.prefix",
            ),
            (
                rule(ReferenceCharset::Digits, (4, 8), "A", CheckDigit::None),
                "reference.prefix",
            ),
            (
                rule(ReferenceCharset::Alphanumeric, (4, 8), "", CheckDigit::Luhn),
                "reference.check_digit",
            ),
            (
                rule(ReferenceCharset::Digits, (1, 8), "", CheckDigit::Mod11),
                "reference.check_digit",
            ),
        ] {
            assert_eq!(broken.validate().unwrap_err().0, field, "{broken:?}");
        }
    }

    #[test]
    fn names_are_masked_word_by_word() {
        assert_eq!(mask_name("Li Lei"), "L* L**");
        assert_eq!(mask_name("  Han   Meimei "), "H** M*****");
        assert_eq!(mask_name("李雷"), "李*");
        assert_eq!(mask_name("X"), "X");
        assert_eq!(mask_name(""), "");
    }

    fn pending() -> BillPayment {
        BillPayment {
            id: 1,
            user_id: 2,
            biller_id: 3,
            reference: "13800138000".into(),
            amount: 5_000,
            currency: "CNY".into(),
            state: BillPaymentState::Pending,
            customer_name: None,
            confirmation: None,
            failure: None,
            created_at: 10,
            updated_at: 10,
        }
    }

    #[test]
    fn a_payment_ends_once_confirmed_or_refused() {
        let confirmed = transition(
            &pending(),
            BillCommand::Confirm {
                confirmation: "SB1",
                now_s: 11,
            },
        )
        .unwrap();
        assert_eq!(confirmed.state, BillPaymentState::Succeeded);
        assert_eq!(confirmed.confirmation.as_deref(), Some("SB1"));
        assert_eq!(confirmed.updated_at, 11);
        let refused = transition(
            &pending(),
            BillCommand::Refuse {
                reason: "closed",
                now_s: 12,
            },
        )
        .unwrap();
        assert_eq!(refused.state, BillPaymentState::Failed);
        assert_eq!(refused.failure.as_deref(), Some("closed"));
        for finished in [&confirmed, &refused] {
            for command in [
                BillCommand::Confirm {
                    confirmation: "SB2",
                    now_s: 13,
                },
                BillCommand::Refuse {
                    reason: "late",
                    now_s: 13,
                },
            ] {
                assert_eq!(
                    transition(finished, command),
                    Err(BillRefusal::Finished(finished.state))
                );
            }
        }
    }
}
