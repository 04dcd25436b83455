//! UPI deep links (NPCI "UPI Linking Specifications"): `upi://pay?pa=…&pn=…&am=…&cu=…&tn=…`.
//! The query is read as `application/x-www-form-urlencoded`: "%XX" escapes are decoded and
//! "+" is a space.

use std::borrow::Cow;
use std::fmt;

use crate::{INPUT_BYTES_MAX, UPI_PARAMETERS_MAX};

/// A UPI payment link. Values borrow from the input unless they had escapes to decode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpiLink<'a> {
    /// `pa`: the payee's virtual payment address, "name@handle". Mandatory.
    pub payee_address: Cow<'a, str>,
    /// `pn`.
    pub payee_name: Option<Cow<'a, str>>,
    /// `am`: digits with an optional "." decimal mark, kept as written.
    pub amount: Option<Cow<'a, str>>,
    /// `mam`: minimum amount, kept as written (NPCI's own example writes "null").
    pub minimum_amount: Option<Cow<'a, str>>,
    /// `cu`: "INR".
    pub currency: Option<Cow<'a, str>>,
    /// `tn`.
    pub transaction_note: Option<Cow<'a, str>>,
    /// `tr`: the payee's reference (order or invoice number).
    pub transaction_reference: Option<Cow<'a, str>>,
    /// `tid`: the payee PSP's transaction id.
    pub transaction_id: Option<Cow<'a, str>>,
    /// `mc`: merchant category code.
    pub merchant_category_code: Option<Cow<'a, str>>,
    /// `url`.
    pub url: Option<Cow<'a, str>>,
    /// Every other parameter, in link order.
    pub other: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

/// Why a UPI link was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpiError {
    pub kind: UpiErrorKind,
    /// Character offset in the link, when the problem has a place.
    pub at: Option<usize>,
}

impl std::error::Error for UpiError {}

impl fmt::Display for UpiError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.kind)?;
        if let Some(at) = self.at {
            write!(formatter, " (at character {at})")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpiErrorKind {
    #[error("link is {bytes} bytes; the decoder reads at most {max}", max = INPUT_BYTES_MAX)]
    TooLong { bytes: usize },
    #[error("not a UPI link: it does not start with \"upi://\"")]
    NotUpi,
    #[error("UPI action {found:?} is not \"pay\"")]
    UnsupportedAction { found: String },
    #[error("invalid percent escape: \"%\" must be followed by two hexadecimal digits")]
    PercentEscape,
    #[error("parameter {name:?} is not UTF-8 once its escapes are decoded")]
    NotUtf8 { name: String },
    #[error("parameter {name:?} appears twice")]
    DuplicateParameter { name: String },
    #[error("more than {max} parameters", max = UPI_PARAMETERS_MAX)]
    TooManyParameters,
    #[error("missing payee address (pa)")]
    MissingPayeeAddress,
    #[error("payee address {found:?} is not of the form name@handle")]
    PayeeAddress { found: String },
    #[error("amount {found:?} is not digits with an optional \".\" decimal mark")]
    Amount { found: String },
}

fn error(kind: UpiErrorKind, at: Option<usize>) -> UpiError {
    UpiError { kind, at }
}

const SCHEME: &str = "upi://";

/// Whether `text` starts with the UPI scheme (ignoring ASCII case, as URI schemes do).
pub fn is_upi(text: &str) -> bool {
    text.get(..SCHEME.len())
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case(SCHEME))
}

fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte).to_digit(16).map(|digit| digit as u8)
}

/// Decodes "%XX" escapes and "+"; borrows when there is nothing to decode.
fn percent_decode<'a>(text: &'a str, offset: usize, name: &str) -> Result<Cow<'a, str>, UpiError> {
    if !text.bytes().any(|byte| byte == b'%' || byte == b'+') {
        return Ok(Cow::Borrowed(text));
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let digits = bytes
                    .get(index + 1..index + 3)
                    .and_then(|pair| Some(hex_digit(pair[0])? << 4 | hex_digit(pair[1])?));
                let Some(byte) = digits else {
                    let at = offset + text[..index].chars().count();
                    return Err(error(UpiErrorKind::PercentEscape, Some(at)));
                };
                out.push(byte);
                index += 3;
            }
            b'+' => {
                out.push(b' ');
                index += 1;
            }
            byte => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| {
        error(
            UpiErrorKind::NotUtf8 {
                name: name.to_owned(),
            },
            Some(offset),
        )
    })
}

fn is_amount(value: &str) -> bool {
    let (whole, fraction) = match value.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (value, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit());
    digits(whole) && fraction.is_none_or(digits)
}

fn is_payee_address(value: &str) -> bool {
    match value.split_once('@') {
        Some((name, handle)) => {
            !name.is_empty()
                && !handle.is_empty()
                && !handle.contains('@')
                && !value
                    .chars()
                    .any(|character| character.is_whitespace() || character.is_control())
        }
        None => false,
    }
}

/// Decodes a `upi://pay?…` link. Refused: another scheme or action, a bad percent escape,
/// a value that is not UTF-8, a parameter given twice (which amount would be meant?), more
/// than [`UPI_PARAMETERS_MAX`] parameters, a missing or malformed payee address, and a
/// malformed amount.
pub fn decode(link: &str) -> Result<UpiLink<'_>, UpiError> {
    if link.len() > INPUT_BYTES_MAX {
        return Err(error(UpiErrorKind::TooLong { bytes: link.len() }, None));
    }
    if !is_upi(link) {
        return Err(error(UpiErrorKind::NotUpi, Some(0)));
    }
    let rest = &link[SCHEME.len()..];
    let (action, query) = rest.split_once('?').unwrap_or((rest, ""));
    let action_trimmed = action.strip_suffix('/').unwrap_or(action);
    if !action_trimmed.eq_ignore_ascii_case("pay") {
        return Err(error(
            UpiErrorKind::UnsupportedAction {
                found: action.to_owned(),
            },
            Some(SCHEME.len()),
        ));
    }
    let mut upi = UpiLink::default();
    let mut payee_address = None;
    let mut names: Vec<Cow<'_, str>> = Vec::new();
    let mut offset = SCHEME.len() + action.chars().count() + 1;
    for pair in query.split('&') {
        let pair_offset = offset;
        offset += pair.chars().count() + 1;
        if pair.is_empty() {
            continue;
        }
        if names.len() == UPI_PARAMETERS_MAX {
            return Err(error(UpiErrorKind::TooManyParameters, Some(pair_offset)));
        }
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(raw_name, pair_offset, raw_name)?;
        let value_offset = pair_offset + raw_name.chars().count() + 1;
        let value = percent_decode(raw_value, value_offset, &name)?;
        if names.contains(&name) {
            return Err(error(
                UpiErrorKind::DuplicateParameter {
                    name: name.into_owned(),
                },
                Some(pair_offset),
            ));
        }
        let slot = match name.as_ref() {
            "pa" => &mut payee_address,
            "pn" => &mut upi.payee_name,
            "am" => {
                if !is_amount(&value) {
                    return Err(error(
                        UpiErrorKind::Amount {
                            found: value.into_owned(),
                        },
                        Some(value_offset),
                    ));
                }
                &mut upi.amount
            }
            "mam" => &mut upi.minimum_amount,
            "cu" => &mut upi.currency,
            "tn" => &mut upi.transaction_note,
            "tr" => &mut upi.transaction_reference,
            "tid" => &mut upi.transaction_id,
            "mc" => &mut upi.merchant_category_code,
            "url" => &mut upi.url,
            _ => {
                names.push(name.clone());
                upi.other.push((name, value));
                continue;
            }
        };
        *slot = Some(value);
        names.push(name);
    }
    let Some(payee_address) = payee_address else {
        return Err(error(UpiErrorKind::MissingPayeeAddress, None));
    };
    if !is_payee_address(&payee_address) {
        return Err(error(
            UpiErrorKind::PayeeAddress {
                found: payee_address.into_owned(),
            },
            None,
        ));
    }
    upi.payee_address = payee_address;
    Ok(upi)
}
