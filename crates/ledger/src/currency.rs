//! ISO 4217 currencies: a three-letter code and the exponent of its minor unit.

use std::fmt;

/// An ISO 4217 alphabetic currency code, three upper-case ASCII letters.
///
/// The ledger only compares currencies; it never converts between them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrencyError(pub String);

impl fmt::Display for CurrencyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "currency must be three upper-case letters (ISO 4217), got {:?}",
            self.0
        )
    }
}

impl std::error::Error for CurrencyError {}

impl Currency {
    /// Parses a code such as `"CNY"`. Lower case is refused rather than guessed.
    pub fn parse(text: &str) -> Result<Self, CurrencyError> {
        let bytes = text.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_uppercase) {
            return Err(CurrencyError(text.chars().take(16).collect()));
        }
        Ok(Currency([bytes[0], bytes[1], bytes[2]]))
    }

    /// Builds a currency from raw bytes; `None` unless they are three upper-case letters.
    pub fn from_bytes(bytes: [u8; 3]) -> Option<Self> {
        bytes
            .iter()
            .all(u8::is_ascii_uppercase)
            .then_some(Currency(bytes))
    }

    pub fn as_bytes(&self) -> [u8; 3] {
        self.0
    }

    pub fn as_str(&self) -> &str {
        // The constructor admits only ASCII upper-case letters.
        std::str::from_utf8(&self.0).expect("currency codes are ASCII")
    }

    /// Number of decimal places of the minor unit (ISO 4217), for display only.
    pub fn exponent(&self) -> u32 {
        match self.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF"
            | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            _ => 2,
        }
    }

    /// Renders an amount of minor units for people: `1234` CNY is `"12.34 CNY"`.
    pub fn format_amount(&self, minor_units: u128) -> String {
        format!("{} {}", self.format_decimal(minor_units), self.as_str())
    }

    /// The amount as a decimal string in major units, as APIs carry it: `1234` CNY is
    /// `"12.34"`, `1234` JPY is `"1234"`.
    pub fn format_decimal(&self, minor_units: u128) -> String {
        let exponent = self.exponent();
        if exponent == 0 {
            return minor_units.to_string();
        }
        let scale = 10u128.pow(exponent);
        format!(
            "{}.{:0width$}",
            minor_units / scale,
            minor_units % scale,
            width = exponent as usize
        )
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let cny = Currency::parse("CNY").unwrap();
        assert_eq!(cny.format_amount(1234), "12.34 CNY");
        assert_eq!(cny.format_amount(5), "0.05 CNY");
        assert_eq!(
            Currency::parse("JPY").unwrap().format_amount(500),
            "500 JPY"
        );
        assert_eq!(
            Currency::parse("KWD").unwrap().format_amount(1001),
            "1.001 KWD"
        );
        assert!(Currency::parse("cny").is_err());
        assert!(Currency::parse("CNYX").is_err());
        assert!(Currency::parse("").is_err());
    }
}
