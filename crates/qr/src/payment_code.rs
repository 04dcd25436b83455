//! Tally payment codes: 18 digits a wallet shows as a barcode or QR code for a merchant to
//! scan, starting with a two-digit prefix that says "Tally" (by default "28").

use std::fmt;

use crate::TALLY_PAYMENT_CODE_DIGITS;

/// The two digits a Tally payment code starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PaymentCodePrefix([u8; 2]);

impl PaymentCodePrefix {
    /// "28".
    pub const DEFAULT: Self = Self(*b"28");

    /// Parses a prefix: exactly two ASCII digits.
    pub fn new(prefix: &str) -> Result<Self, PaymentCodeError> {
        match prefix.as_bytes() {
            [tens, units] if tens.is_ascii_digit() && units.is_ascii_digit() => {
                Ok(Self([*tens, *units]))
            }
            _ => Err(PaymentCodeError::InvalidPrefix {
                found: prefix.to_owned(),
            }),
        }
    }

    pub fn as_str(&self) -> &str {
        // Two ASCII digits, checked on construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl Default for PaymentCodePrefix {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for PaymentCodePrefix {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A well-formed Tally payment code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TallyPaymentCode([u8; TALLY_PAYMENT_CODE_DIGITS]);

impl TallyPaymentCode {
    /// Parses a payment code: exactly [`TALLY_PAYMENT_CODE_DIGITS`] ASCII digits starting
    /// with `prefix`.
    pub fn parse(text: &str, prefix: PaymentCodePrefix) -> Result<Self, PaymentCodeError> {
        let chars = text.chars().count();
        if chars != TALLY_PAYMENT_CODE_DIGITS {
            return Err(PaymentCodeError::Length { chars });
        }
        if let Some((at, found)) = text
            .chars()
            .enumerate()
            .find(|(_, character)| !character.is_ascii_digit())
        {
            return Err(PaymentCodeError::NotDigit { at, found });
        }
        let mut digits = [0u8; TALLY_PAYMENT_CODE_DIGITS];
        digits.copy_from_slice(text.as_bytes());
        if digits[..2] != prefix.0 {
            return Err(PaymentCodeError::Prefix {
                expected: prefix,
                found: text[..2].to_owned(),
            });
        }
        Ok(Self(digits))
    }

    pub fn as_str(&self) -> &str {
        // ASCII digits, checked on construction.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The digits after the prefix.
    pub fn body(&self) -> &str {
        &self.as_str()[2..]
    }
}

impl fmt::Display for TallyPaymentCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentCodeError {
    #[error("payment code prefix {found:?} is not two digits")]
    InvalidPrefix { found: String },
    #[error("payment code is {chars} characters; it must be {TALLY_PAYMENT_CODE_DIGITS} digits")]
    Length { chars: usize },
    #[error("payment code has {found:?} at character {at}; it must be all digits")]
    NotDigit { at: usize, found: char },
    #[error("payment code starts with {found}, not the Tally prefix {expected}")]
    Prefix {
        expected: PaymentCodePrefix,
        found: String,
    },
}
