//! The lenient decoder: it accepts payloads that break the specification's field rules and
//! reports each break as a [`Warning`], and it refuses, with a [`DecodeError`] that says where
//! and what, anything whose structure or checksum cannot be trusted.

use std::borrow::Cow;
use std::fmt;

use super::rules::{self, Issue};
use super::{
    id, AdditionalData, DataObject, LanguageTemplate, MerchantAccount, MerchantPresented,
    ObjectPath, PointOfInitiation, Template,
};
use crate::crc::crc16_ccitt_false;
use crate::network::{network_of, Network};
use crate::{INPUT_BYTES_MAX, MPM_OBJECTS_PER_LEVEL_MAX};

/// A place in the input: bytes for slicing, characters for people (lengths count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub byte: usize,
    pub char: usize,
}

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub kind: DecodeErrorKind,
    /// The object concerned, when there is one.
    pub path: Option<ObjectPath>,
    /// Where in the input the problem starts.
    pub at: Option<Position>,
}

impl std::error::Error for DecodeError {}

impl fmt::Display for DecodeError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.kind)?;
        match (self.path, self.at) {
            (Some(path), Some(at)) => write!(
                formatter,
                " (object {path} at character {}, byte {})",
                at.char, at.byte
            ),
            (Some(path), None) => write!(formatter, " (object {path})"),
            (None, Some(at)) => write!(formatter, " (at character {}, byte {})", at.char, at.byte),
            (None, None) => Ok(()),
        }
    }
}

/// What was wrong, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    #[error("empty payload")]
    Empty,
    #[error("payload is {bytes} bytes; the decoder reads at most {max}", max = INPUT_BYTES_MAX)]
    TooLong { bytes: usize },
    #[error("object id {found:?} is not two digits")]
    NonNumericId { found: String },
    #[error("length {found:?} is not two digits")]
    NonNumericLength { found: String },
    #[error("truncated object: {chars_left} characters left where an id and a length need 4")]
    Truncated { chars_left: usize },
    #[error("length {length} overflows {}: {chars_left} characters left", scope(*.template))]
    LengthOverflow {
        length: usize,
        chars_left: usize,
        /// The template being read, or `None` at the top level.
        template: Option<u8>,
    },
    #[error("duplicate id: an earlier object at this level has the same id")]
    DuplicateId,
    #[error("the first object must be the payload format indicator (00), found {found:02}")]
    PayloadFormatIndicatorNotFirst { found: u8 },
    #[error("the CRC (63) must be 4 characters long, found {length}")]
    CrcLength { length: usize },
    #[error("CRC {found:?} is not 4 hexadecimal digits")]
    CrcNotHex { found: String },
    #[error("CRC mismatch: payload says {stated}, computed {computed:04X}")]
    CrcMismatch { stated: String, computed: u16 },
    #[error("data after the CRC: {chars_left} characters follow object 63")]
    DataAfterCrc { chars_left: usize },
    #[error("missing CRC: the payload does not end with object 63")]
    MissingCrc,
}

fn scope(template: Option<u8>) -> String {
    match template {
        None => "the payload".to_owned(),
        Some(id) => format!("template {id:02}"),
    }
}

/// A rule the payload breaks that did not stop decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub path: Option<ObjectPath>,
    pub issue: Issue,
}

impl fmt::Display for Warning {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.issue)?;
        if let Some(path) = self.path {
            write!(formatter, " (object {path})")?;
        }
        Ok(())
    }
}

/// A decoded merchant-presented payload, borrowing its text from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    pub payload: MerchantPresented<'a>,
    /// The checksum, verified.
    pub crc: u16,
    /// Every rule the payload breaks, in payload order; empty for a conforming payload.
    pub warnings: Vec<Warning>,
}

impl Decoded<'_> {
    /// The payment networks recognised from the merchant accounts, in payload order.
    pub fn networks(&self) -> impl Iterator<Item = Network> + '_ {
        self.payload.merchant_accounts.iter().filter_map(network_of)
    }

    /// The first recognised payment network: a hint for routing, not a guarantee.
    pub fn network(&self) -> Option<Network> {
        self.networks().next()
    }
}

struct Raw<'a> {
    id: u8,
    value: &'a str,
    /// Where the object (its id) starts.
    at: Position,
    /// Where its value starts.
    value_at: Position,
}

/// Reads the objects of one level: the whole payload, or one template's value.
struct Reader<'a> {
    text: &'a str,
    byte: usize,
    char: usize,
    end: usize,
    template: Option<u8>,
}

impl<'a> Reader<'a> {
    fn at_end(&self) -> bool {
        self.byte >= self.end
    }

    fn position(&self) -> Position {
        Position {
            byte: self.byte,
            char: self.char,
        }
    }

    fn path(&self, object_id: Option<u8>) -> Option<ObjectPath> {
        match (self.template, object_id) {
            (None, Some(object_id)) => Some(ObjectPath::top(object_id)),
            (Some(template), Some(sub)) => Some(ObjectPath::sub(template, sub)),
            (Some(template), None) => Some(ObjectPath::top(template)),
            (None, None) => None,
        }
    }

    fn error(&self, kind: DecodeErrorKind, object_id: Option<u8>, at: Position) -> DecodeError {
        DecodeError {
            kind,
            path: self.path(object_id),
            at: Some(at),
        }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.byte..self.end]
    }

    // Inlined so that the object comes back in registers: returned through memory, the
    // large `Result` cost a store-forwarding stall per object.
    #[inline(always)]
    fn next(&mut self) -> Result<Raw<'a>, DecodeError> {
        let at = self.position();
        let bytes = &self.text.as_bytes()[self.byte..self.end];
        if bytes.len() < 4 {
            let chars_left = self.rest().chars().count();
            return Err(self.error(DecodeErrorKind::Truncated { chars_left }, None, at));
        }
        let Some(object_id) = two_digits(bytes[0], bytes[1]) else {
            let found = self.rest().chars().take(2).collect();
            return Err(self.error(DecodeErrorKind::NonNumericId { found }, None, at));
        };
        let Some(length) = two_digits(bytes[2], bytes[3]) else {
            let found = self.rest()[2..].chars().take(2).collect();
            return Err(self.error(
                DecodeErrorKind::NonNumericLength { found },
                Some(object_id),
                at,
            ));
        };
        let length = usize::from(length);
        let value_start = self.byte + 4;
        let value_at = Position {
            byte: value_start,
            char: self.char + 4,
        };
        let available = &self.text[value_start..self.end];
        // ASCII is the common case: `length` bytes are then `length` characters.
        let value_bytes = if available
            .as_bytes()
            .get(..length)
            .is_some_and(|prefix| prefix.is_ascii())
        {
            Some(length)
        } else {
            byte_length_of_chars(available, length)
        };
        let Some(value_bytes) = value_bytes else {
            let chars_left = available.chars().count();
            return Err(self.error(
                DecodeErrorKind::LengthOverflow {
                    length,
                    chars_left,
                    template: self.template,
                },
                Some(object_id),
                at,
            ));
        };
        self.byte = value_start + value_bytes;
        self.char += 4 + length;
        Ok(Raw {
            id: object_id,
            value: &self.text[value_start..self.byte],
            at,
            value_at,
        })
    }

    /// A reader over the value of template `raw`.
    fn template(&self, raw: &Raw<'a>) -> Reader<'a> {
        Reader {
            text: self.text,
            byte: raw.value_at.byte,
            char: raw.value_at.char,
            end: raw.value_at.byte + raw.value.len(),
            template: Some(raw.id),
        }
    }
}

fn two_digits(tens: u8, units: u8) -> Option<u8> {
    (tens.is_ascii_digit() && units.is_ascii_digit()).then(|| (tens - b'0') * 10 + (units - b'0'))
}

/// Bytes taken by the first `chars` characters of `text`, or `None` if it has fewer.
fn byte_length_of_chars(text: &str, chars: usize) -> Option<usize> {
    if chars == 0 {
        return Some(0);
    }
    text.char_indices()
        .nth(chars - 1)
        .map(|(index, character)| index + character.len_utf8())
}

fn hex_value(digits: &[u8]) -> Option<u16> {
    digits.iter().try_fold(0u16, |value, &digit| {
        let nibble = char::from(digit).to_digit(16)?;
        Some(value << 4 | nibble as u16)
    })
}

/// Ids already seen at one level: a duplicate is refused, because two values for one field
/// leave the reader to guess which one the merchant meant.
/// Two words rather than a `u128`, whose variable shifts cost a branchy sequence.
#[derive(Default)]
struct Seen([u64; 2]);

impl Seen {
    fn insert(&mut self, reader: &Reader<'_>, raw: &Raw<'_>) -> Result<(), DecodeError> {
        let word = &mut self.0[usize::from(raw.id >> 6)];
        let bit = 1u64 << (raw.id & 63);
        if *word & bit != 0 {
            return Err(reader.error(DecodeErrorKind::DuplicateId, Some(raw.id), raw.at));
        }
        *word |= bit;
        Ok(())
    }
}

/// Decodes a merchant-presented payload.
///
/// Refused: an empty or oversized input, an id or length that is not two digits, an object cut
/// short, a length running past the end of the payload or template, a duplicate id at one
/// level, a first object other than 00, a missing CRC, data after the CRC, and a CRC that is
/// malformed or does not match. Accepted with a [`Warning`]: every field rule the payload
/// breaks (missing mandatory objects, over-long names, a payload format other than "01",
/// lower-case CRC digits, …).
pub fn decode(input: &str) -> Result<Decoded<'_>, DecodeError> {
    if input.is_empty() {
        return Err(DecodeError {
            kind: DecodeErrorKind::Empty,
            path: None,
            at: None,
        });
    }
    if input.len() > INPUT_BYTES_MAX {
        return Err(DecodeError {
            kind: DecodeErrorKind::TooLong { bytes: input.len() },
            path: None,
            at: None,
        });
    }
    // Check the checksum before the structure when the payload ends the usual way: a damaged
    // payload is then reported as damaged, whatever the damage did to the structure.
    let verified_crc = check_trailing_crc(input)?;

    let mut payload = MerchantPresented {
        payload_format_indicator: Cow::Borrowed(""),
        ..MerchantPresented::default()
    };
    let mut warnings = Vec::new();
    let mut reader = Reader {
        text: input,
        byte: 0,
        char: 0,
        end: input.len(),
        template: None,
    };
    let mut seen = Seen::default();
    let mut order = Order::default();
    let mut crc = None;
    while !reader.at_end() {
        let raw = reader.next()?;
        if raw.at.byte == 0 && raw.id != id::PAYLOAD_FORMAT_INDICATOR {
            return Err(reader.error(
                DecodeErrorKind::PayloadFormatIndicatorNotFirst { found: raw.id },
                Some(raw.id),
                raw.at,
            ));
        }
        seen.insert(&reader, &raw)?;
        let value = Cow::Borrowed(raw.value);
        match raw.id {
            id::PAYLOAD_FORMAT_INDICATOR => payload.payload_format_indicator = value,
            id::POINT_OF_INITIATION_METHOD => {
                payload.point_of_initiation = Some(match raw.value {
                    "11" => PointOfInitiation::Static,
                    "12" => PointOfInitiation::Dynamic,
                    _ => PointOfInitiation::Other(value),
                });
            }
            2..=25 => payload
                .merchant_accounts
                .push(MerchantAccount::Primitive(DataObject { id: raw.id, value })),
            26..=51 => payload
                .merchant_accounts
                .push(MerchantAccount::Template(read_template(
                    &reader,
                    &raw,
                    &mut warnings,
                )?)),
            id::ADDITIONAL_DATA => {
                payload.additional_data = Some(read_additional_data(&reader, &raw)?);
            }
            id::CRC => {
                crc = Some(read_crc(&reader, &raw, verified_crc, &mut warnings)?);
                if !reader.at_end() {
                    let chars_left = reader.rest().chars().count();
                    return Err(reader.error(
                        DecodeErrorKind::DataAfterCrc { chars_left },
                        None,
                        reader.position(),
                    ));
                }
            }
            id::LANGUAGE_TEMPLATE => payload.language = Some(read_language(&reader, &raw)?),
            65..=79 => payload.reserved.push(DataObject { id: raw.id, value }),
            80..=99 => payload
                .unreserved
                .push(read_template(&reader, &raw, &mut warnings)?),
            field_id => {
                if let Some(slot) = payload.field_slot(field_id) {
                    *slot = Some(value);
                }
            }
        }
        if raw.id != id::PAYLOAD_FORMAT_INDICATOR && raw.id != id::CRC {
            order.push(raw.id);
        }
    }
    payload.order = order.into_vec();
    let Some(crc) = crc else {
        return Err(DecodeError {
            kind: DecodeErrorKind::MissingCrc,
            path: None,
            at: Some(reader.position()),
        });
    };
    rules::inspect(&payload, &mut |path, issue| {
        warnings.push(Warning { path, issue })
    });
    if let Some(issue) = rules::check_payload_chars(reader.char) {
        warnings.push(Warning { path: None, issue });
    }
    Ok(Decoded {
        payload,
        crc,
        warnings,
    })
}

/// The ids of one level in payload order, on the stack: most payloads list their objects in
/// ascending order, which the model writes as an empty list, so that a decoded model equals
/// one built by hand, and without allocating.
struct Order {
    ids: [u8; MPM_OBJECTS_PER_LEVEL_MAX],
    len: usize,
    ascending: bool,
}

impl Default for Order {
    fn default() -> Self {
        Self {
            ids: [0; MPM_OBJECTS_PER_LEVEL_MAX],
            len: 0,
            ascending: true,
        }
    }
}

impl Order {
    fn push(&mut self, object_id: u8) {
        // Ids are unique per level (checked before), so there are at most 100.
        assert!(self.len < MPM_OBJECTS_PER_LEVEL_MAX);
        if self.len > 0 && self.ids[self.len - 1] > object_id {
            self.ascending = false;
        }
        self.ids[self.len] = object_id;
        self.len += 1;
    }

    fn into_vec(self) -> Vec<u8> {
        if self.ascending {
            Vec::new()
        } else {
            self.ids[..self.len].to_vec()
        }
    }
}

/// When the input ends with "6304" and four hexadecimal digits, verifies that checksum and
/// returns it; refuses a mismatch. Anything else is left to the object-by-object reading.
fn check_trailing_crc(input: &str) -> Result<Option<u16>, DecodeError> {
    let bytes = input.as_bytes();
    let Some(header_start) = bytes.len().checked_sub(8) else {
        return Ok(None);
    };
    if &bytes[header_start..header_start + 4] != b"6304" {
        return Ok(None);
    }
    let Some(stated) = hex_value(&bytes[header_start + 4..]) else {
        return Ok(None);
    };
    let computed = crc16_ccitt_false(&bytes[..header_start + 4]);
    if computed != stated {
        return Err(DecodeError {
            kind: DecodeErrorKind::CrcMismatch {
                stated: input[header_start + 4..].to_owned(),
                computed,
            },
            path: Some(ObjectPath::top(id::CRC)),
            at: Some(Position {
                byte: header_start,
                char: input[..header_start].chars().count(),
            }),
        });
    }
    Ok(Some(stated))
}

fn read_crc(
    reader: &Reader<'_>,
    raw: &Raw<'_>,
    verified: Option<u16>,
    warnings: &mut Vec<Warning>,
) -> Result<u16, DecodeError> {
    let length = rules::char_count(raw.value);
    if length != 4 {
        return Err(reader.error(DecodeErrorKind::CrcLength { length }, Some(raw.id), raw.at));
    }
    let Some(stated) = hex_value(raw.value.as_bytes()) else {
        return Err(reader.error(
            DecodeErrorKind::CrcNotHex {
                found: raw.value.to_owned(),
            },
            Some(raw.id),
            raw.at,
        ));
    };
    if raw.value.bytes().any(|byte| byte.is_ascii_lowercase()) {
        warnings.push(Warning {
            path: Some(ObjectPath::top(id::CRC)),
            issue: Issue::LowerCaseCrc,
        });
    }
    // The trailing check covered this object when it ends the input; otherwise the caller
    // refuses the data after it, and the checksum does not matter.
    if verified.is_none() {
        let computed = crc16_ccitt_false(&reader.text.as_bytes()[..raw.value_at.byte]);
        if computed != stated {
            return Err(reader.error(
                DecodeErrorKind::CrcMismatch {
                    stated: raw.value.to_owned(),
                    computed,
                },
                Some(raw.id),
                raw.at,
            ));
        }
    }
    Ok(stated)
}

fn read_template<'a>(
    parent: &Reader<'a>,
    raw: &Raw<'a>,
    warnings: &mut Vec<Warning>,
) -> Result<Template<'a>, DecodeError> {
    let mut reader = parent.template(raw);
    let mut seen = Seen::default();
    let mut template = Template {
        id: raw.id,
        globally_unique_identifier: Cow::Borrowed(""),
        fields: Vec::new(),
    };
    while !reader.at_end() {
        let sub = reader.next()?;
        seen.insert(&reader, &sub)?;
        if sub.id == id::GLOBALLY_UNIQUE_IDENTIFIER {
            if sub.at.byte != raw.value_at.byte {
                warnings.push(Warning {
                    path: Some(ObjectPath::sub(raw.id, sub.id)),
                    issue: Issue::GloballyUniqueIdentifierNotFirst,
                });
            }
            template.globally_unique_identifier = Cow::Borrowed(sub.value);
        } else {
            template.fields.push(DataObject {
                id: sub.id,
                value: Cow::Borrowed(sub.value),
            });
        }
    }
    Ok(template)
}

fn read_additional_data<'a>(
    parent: &Reader<'a>,
    raw: &Raw<'a>,
) -> Result<AdditionalData<'a>, DecodeError> {
    let mut reader = parent.template(raw);
    let mut seen = Seen::default();
    let mut additional = AdditionalData::default();
    let mut order = Order::default();
    while !reader.at_end() {
        let sub = reader.next()?;
        seen.insert(&reader, &sub)?;
        let object = DataObject {
            id: sub.id,
            value: Cow::Borrowed(sub.value),
        };
        if let Some(slot) = additional.named_slot(sub.id) {
            *slot = Some(object.value);
        } else if id::additional::PAYMENT_SYSTEM_SPECIFIC.contains(&sub.id) {
            additional.payment_system_specific.push(object);
        } else {
            additional.reserved.push(object);
        }
        order.push(sub.id);
    }
    additional.order = order.into_vec();
    Ok(additional)
}

fn read_language<'a>(
    parent: &Reader<'a>,
    raw: &Raw<'a>,
) -> Result<LanguageTemplate<'a>, DecodeError> {
    use id::language::*;
    let mut reader = parent.template(raw);
    let mut seen = Seen::default();
    let mut language = LanguageTemplate::default();
    let mut order = Order::default();
    while !reader.at_end() {
        let sub = reader.next()?;
        seen.insert(&reader, &sub)?;
        let value = Cow::Borrowed(sub.value);
        match sub.id {
            LANGUAGE_PREFERENCE => language.language_preference = Some(value),
            MERCHANT_NAME => language.merchant_name = Some(value),
            MERCHANT_CITY => language.merchant_city = Some(value),
            _ => language.reserved.push(DataObject { id: sub.id, value }),
        }
        order.push(sub.id);
    }
    language.order = order.into_vec();
    Ok(language)
}
