//! EMVCo consumer-presented mode: BER-TLV data objects, base64 text.
//!
//! The payload is the payload format indicator (tag 85, "CPV01"), one or more application
//! templates (61), and at most one common data template (62); each template holds primitive
//! EMV data objects and at most one transparent template (63 in an application template, 64 in
//! the common one) of primitive objects passed through to the issuer. That is
//! [`crate::CPM_NESTING_DEPTH_MAX`] levels of templates; anything deeper is refused.

use std::fmt;

use crate::base64::{self, Base64Error};
use crate::{BER_LENGTH_BYTES_MAX, BER_TAG_BYTES_MAX, CPM_PAYLOAD_BYTES_MAX, INPUT_BYTES_MAX};

/// A BER-TLV tag of one to three bytes, kept as the big-endian number of its bytes: 0x9F26.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(pub u32);

impl Tag {
    /// The bytes of the tag and how many of them there are.
    fn bytes(self) -> ([u8; 3], usize) {
        let [_, high, middle, low] = self.0.to_be_bytes();
        match self.0 {
            0..=0xFF => ([low, 0, 0], 1),
            0x100..=0xFFFF => ([middle, low, 0], 2),
            _ => ([high, middle, low], 3),
        }
    }

    /// Whether the tag marks a constructed object (a template): bit 6 of its first byte.
    pub fn is_constructed(self) -> bool {
        self.bytes().0[0] & 0x20 != 0
    }

    /// Whether the tag is written the way BER requires: a one-byte tag without the "more
    /// bytes follow" pattern, or a first byte with it followed by bytes whose top bit says
    /// whether another follows.
    pub fn is_well_formed(self) -> bool {
        if self.0 > 0xFF_FFFF {
            return false;
        }
        let (bytes, count) = self.bytes();
        let first = bytes[0];
        let continues = first & 0x1F == 0x1F;
        match count {
            1 => !continues && first != 0x00 && first != 0xFF,
            2 => continues && bytes[1] & 0x80 == 0,
            _ => continues && bytes[1] & 0x80 != 0 && bytes[2] & 0x80 == 0,
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (bytes, count) = self.bytes();
        for byte in &bytes[..count] {
            write!(formatter, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Tag({self})")
    }
}

/// Tags of the consumer-presented specification and the EMV data objects it carries.
pub mod tag {
    use super::Tag;

    pub const PAYLOAD_FORMAT_INDICATOR: Tag = Tag(0x85);
    pub const APPLICATION_TEMPLATE: Tag = Tag(0x61);
    pub const COMMON_DATA_TEMPLATE: Tag = Tag(0x62);
    pub const APPLICATION_SPECIFIC_TRANSPARENT_TEMPLATE: Tag = Tag(0x63);
    pub const COMMON_DATA_TRANSPARENT_TEMPLATE: Tag = Tag(0x64);

    pub const ADF_NAME: Tag = Tag(0x4F);
    pub const APPLICATION_LABEL: Tag = Tag(0x50);
    pub const TRACK_2_EQUIVALENT_DATA: Tag = Tag(0x57);
    pub const APPLICATION_PAN: Tag = Tag(0x5A);
    pub const CARDHOLDER_NAME: Tag = Tag(0x5F20);
    pub const LANGUAGE_PREFERENCE: Tag = Tag(0x5F2D);
    pub const ISSUER_URL: Tag = Tag(0x5F50);
    pub const APPLICATION_VERSION_NUMBER: Tag = Tag(0x9F08);
    pub const TOKEN_REQUESTOR_ID: Tag = Tag(0x9F19);
    pub const PAYMENT_ACCOUNT_REFERENCE: Tag = Tag(0x9F24);
    pub const LAST_4_DIGITS_OF_PAN: Tag = Tag(0x9F25);

    pub const APPLICATION_INTERCHANGE_PROFILE: Tag = Tag(0x82);
    pub const ISSUER_APPLICATION_DATA: Tag = Tag(0x9F10);
    pub const APPLICATION_CRYPTOGRAM: Tag = Tag(0x9F26);
    pub const CRYPTOGRAM_INFORMATION_DATA: Tag = Tag(0x9F27);
    pub const APPLICATION_TRANSACTION_COUNTER: Tag = Tag(0x9F36);
    pub const UNPREDICTABLE_NUMBER: Tag = Tag(0x9F37);
}

/// The payload format indicator of this version of the specification.
pub const PAYLOAD_FORMAT_INDICATOR: &[u8] = b"CPV01";

const ADF_NAME_BYTES_MIN: usize = 5;
const ADF_NAME_BYTES_MAX: usize = 16;
const APPLICATION_LABEL_BYTES_MAX: usize = 16;
const LANGUAGE_PREFERENCE_BYTES_MAX: usize = 8;

/// A primitive BER-TLV data object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BerObject {
    pub tag: Tag,
    pub value: Vec<u8>,
}

/// An application template (61) or the common data template (62).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpmTemplate {
    /// Primitive data objects, in payload order.
    pub objects: Vec<BerObject>,
    /// The transparent template (63 in an application template, 64 in the common data
    /// template), written last.
    pub transparent: Option<Vec<BerObject>>,
}

impl CpmTemplate {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a primitive data object (builder style).
    pub fn with(mut self, tag: Tag, value: impl Into<Vec<u8>>) -> Self {
        self.objects.push(BerObject {
            tag,
            value: value.into(),
        });
        self
    }

    /// Adds a data object to the transparent template (builder style).
    pub fn with_transparent(mut self, tag: Tag, value: impl Into<Vec<u8>>) -> Self {
        self.transparent
            .get_or_insert_with(Vec::new)
            .push(BerObject {
                tag,
                value: value.into(),
            });
        self
    }

    /// The value of `tag`, looked for among the primitive objects, then in the transparent
    /// template.
    pub fn get(&self, tag: Tag) -> Option<&[u8]> {
        self.objects
            .iter()
            .chain(self.transparent.iter().flatten())
            .find(|object| object.tag == tag)
            .map(|object| object.value.as_slice())
    }

    fn text(&self, tag: Tag) -> Option<&str> {
        self.get(tag)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// 4F: the application identifier.
    pub fn adf_name(&self) -> Option<&[u8]> {
        self.get(tag::ADF_NAME)
    }

    /// 50.
    pub fn application_label(&self) -> Option<&str> {
        self.text(tag::APPLICATION_LABEL)
    }

    /// 5A, as digits: the BCD nibbles up to the first "F" pad.
    pub fn application_pan(&self) -> Option<String> {
        let value = self.get(tag::APPLICATION_PAN)?;
        let mut digits = String::with_capacity(value.len() * 2);
        for nibble in value.iter().flat_map(|byte| [byte >> 4, byte & 0xF]) {
            match nibble {
                0..=9 => digits.push(char::from(b'0' + nibble)),
                0xF => break,
                _ => return None,
            }
        }
        Some(digits)
    }

    /// 5F20.
    pub fn cardholder_name(&self) -> Option<&str> {
        self.text(tag::CARDHOLDER_NAME)
    }

    /// 5F2D: up to four ISO 639 codes, most preferred first ("ruesdeen").
    pub fn language_preference(&self) -> Option<&str> {
        self.text(tag::LANGUAGE_PREFERENCE)
    }

    /// 57.
    pub fn track_2_equivalent_data(&self) -> Option<&[u8]> {
        self.get(tag::TRACK_2_EQUIVALENT_DATA)
    }

    /// 9F10.
    pub fn issuer_application_data(&self) -> Option<&[u8]> {
        self.get(tag::ISSUER_APPLICATION_DATA)
    }

    /// 9F26.
    pub fn application_cryptogram(&self) -> Option<&[u8]> {
        self.get(tag::APPLICATION_CRYPTOGRAM)
    }

    /// 9F27.
    pub fn cryptogram_information_data(&self) -> Option<u8> {
        match self.get(tag::CRYPTOGRAM_INFORMATION_DATA)? {
            [byte] => Some(*byte),
            _ => None,
        }
    }

    /// 9F36.
    pub fn application_transaction_counter(&self) -> Option<u16> {
        match self.get(tag::APPLICATION_TRANSACTION_COUNTER)? {
            [high, low] => Some(u16::from_be_bytes([*high, *low])),
            _ => None,
        }
    }

    /// 9F37.
    pub fn unpredictable_number(&self) -> Option<&[u8]> {
        self.get(tag::UNPREDICTABLE_NUMBER)
    }
}

/// A consumer-presented payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerPresented {
    /// Application templates (61), at least one, in payload order.
    pub applications: Vec<CpmTemplate>,
    /// The common data template (62).
    pub common: Option<CpmTemplate>,
}

/// Why a consumer-presented payload was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpmDecodeError {
    pub kind: CpmDecodeErrorKind,
    /// The tag concerned, when one was read.
    pub tag: Option<Tag>,
    /// Offset in the decoded bytes (base64 problems give their character in the message).
    pub byte: Option<usize>,
}

impl std::error::Error for CpmDecodeError {}

impl fmt::Display for CpmDecodeError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.kind)?;
        match (self.tag, self.byte) {
            (Some(tag), Some(byte)) => write!(formatter, " (tag {tag} at byte {byte})"),
            (None, Some(byte)) => write!(formatter, " (at byte {byte})"),
            (Some(tag), None) => write!(formatter, " (tag {tag})"),
            (None, None) => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpmDecodeErrorKind {
    #[error("empty payload")]
    Empty,
    #[error("payload is {bytes} bytes; the decoder reads at most {max}", max = INPUT_BYTES_MAX)]
    TooLong { bytes: usize },
    #[error("not base64: {chars} characters is not a multiple of 4")]
    Base64Length { chars: usize },
    #[error("not base64: unexpected character at character {at}")]
    Base64Character { at: usize },
    #[error("not base64: non-zero padding bits at character {at}")]
    Base64TrailingBits { at: usize },
    #[error("truncated tag: the payload ends inside it")]
    TruncatedTag,
    #[error("tag runs over {max} bytes", max = BER_TAG_BYTES_MAX)]
    TagTooLong,
    #[error("byte {found:02X} is padding, not a tag")]
    Padding { found: u8 },
    #[error("truncated length: the payload ends inside it")]
    TruncatedLength,
    #[error("indefinite length (80) is not allowed")]
    IndefiniteLength,
    #[error("length takes {bytes} bytes; at most {max} allowed", max = BER_LENGTH_BYTES_MAX)]
    LengthTooLong { bytes: usize },
    #[error("length {length} overflows {}: {bytes_left} bytes left", scope(*.within))]
    LengthOverflow {
        length: usize,
        bytes_left: usize,
        within: Option<Tag>,
    },
    #[error("the first object must be the payload format indicator (85)")]
    PayloadFormatIndicatorNotFirst,
    #[error("payload format indicator is {found:?}; this decoder knows \"CPV01\"")]
    PayloadFormatIndicator { found: String },
    #[error("tag is not allowed {}", place(*.within))]
    UnexpectedTag { within: Option<Tag> },
    #[error("duplicate tag {}", place(*.within))]
    DuplicateTag { within: Option<Tag> },
    #[error("application template has no ADF name (4F)")]
    MissingAdfName,
    #[error("no application template (61)")]
    NoApplicationTemplate,
}

fn scope(within: Option<Tag>) -> String {
    match within {
        None => "the payload".to_owned(),
        Some(tag) => format!("template {tag}"),
    }
}

fn place(within: Option<Tag>) -> String {
    match within {
        None => "at the top level".to_owned(),
        Some(tag) => format!("in template {tag}"),
    }
}

/// Why a consumer-presented model cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpmEncodeError {
    pub kind: CpmEncodeErrorKind,
    pub tag: Option<Tag>,
}

impl std::error::Error for CpmEncodeError {}

impl fmt::Display for CpmEncodeError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.kind)?;
        if let Some(tag) = self.tag {
            write!(formatter, " (tag {tag})")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpmEncodeErrorKind {
    #[error("no application template: at least one is required")]
    NoApplicationTemplate,
    #[error("application template {index} has no ADF name (4F)")]
    MissingAdfName { index: usize },
    #[error("ADF name is {bytes} bytes; it must be {ADF_NAME_BYTES_MIN} to {ADF_NAME_BYTES_MAX}")]
    AdfNameLength { bytes: usize },
    #[error(
        "application label must be 1 to {APPLICATION_LABEL_BYTES_MAX} printable ASCII characters"
    )]
    ApplicationLabel,
    #[error("language preference must be 1 to 4 two-letter lower-case ISO 639 codes")]
    LanguagePreference,
    #[error("tag is not a well-formed BER-TLV tag")]
    MalformedTag,
    #[error("tag is constructed; templates hold primitive objects here")]
    ConstructedTag,
    #[error("tag belongs to the payload structure and cannot be a data object")]
    StructureTag,
    #[error("duplicate tag in one template")]
    DuplicateTag,
    #[error("payload is {bytes} bytes; at most {max} allowed", max = CPM_PAYLOAD_BYTES_MAX)]
    TooLong { bytes: usize },
}

fn encode_error(kind: CpmEncodeErrorKind, tag: Option<Tag>) -> CpmEncodeError {
    CpmEncodeError { kind, tag }
}

fn is_structure_tag(tag: Tag) -> bool {
    matches!(tag.0, 0x61..=0x64 | 0x85)
}

fn check_objects(objects: &[BerObject]) -> Result<(), CpmEncodeError> {
    for (index, object) in objects.iter().enumerate() {
        let tag = Some(object.tag);
        if !object.tag.is_well_formed() {
            return Err(encode_error(CpmEncodeErrorKind::MalformedTag, tag));
        }
        if is_structure_tag(object.tag) {
            return Err(encode_error(CpmEncodeErrorKind::StructureTag, tag));
        }
        if object.tag.is_constructed() {
            return Err(encode_error(CpmEncodeErrorKind::ConstructedTag, tag));
        }
        if objects[..index].iter().any(|other| other.tag == object.tag) {
            return Err(encode_error(CpmEncodeErrorKind::DuplicateTag, tag));
        }
        match object.tag {
            tag::ADF_NAME
                if !(ADF_NAME_BYTES_MIN..=ADF_NAME_BYTES_MAX).contains(&object.value.len()) =>
            {
                return Err(encode_error(
                    CpmEncodeErrorKind::AdfNameLength {
                        bytes: object.value.len(),
                    },
                    tag,
                ));
            }
            tag::APPLICATION_LABEL
                if object.value.is_empty()
                    || object.value.len() > APPLICATION_LABEL_BYTES_MAX
                    || !object.value.iter().all(|byte| (0x20..=0x7E).contains(byte)) =>
            {
                return Err(encode_error(CpmEncodeErrorKind::ApplicationLabel, tag));
            }
            tag::LANGUAGE_PREFERENCE
                if object.value.is_empty()
                    || object.value.len() > LANGUAGE_PREFERENCE_BYTES_MAX
                    || object.value.len() % 2 != 0
                    || !object.value.iter().all(u8::is_ascii_lowercase) =>
            {
                return Err(encode_error(CpmEncodeErrorKind::LanguagePreference, tag));
            }
            _ => {}
        }
    }
    Ok(())
}

fn push_tag(out: &mut Vec<u8>, tag: Tag) {
    let (bytes, count) = tag.bytes();
    out.extend_from_slice(&bytes[..count]);
}

fn push_length(out: &mut Vec<u8>, length: usize) {
    match length {
        0..=0x7F => out.push(length as u8),
        0x80..=0xFF => out.extend_from_slice(&[0x81, length as u8]),
        _ => {
            let [high, low] = (length as u16).to_be_bytes();
            out.extend_from_slice(&[0x82, high, low]);
        }
    }
}

fn push_object(out: &mut Vec<u8>, tag: Tag, value: &[u8]) -> Result<(), CpmEncodeError> {
    if value.len() > CPM_PAYLOAD_BYTES_MAX {
        return Err(encode_error(
            CpmEncodeErrorKind::TooLong { bytes: value.len() },
            Some(tag),
        ));
    }
    push_tag(out, tag);
    push_length(out, value.len());
    out.extend_from_slice(value);
    Ok(())
}

fn template_bytes(template: &CpmTemplate, transparent_tag: Tag) -> Result<Vec<u8>, CpmEncodeError> {
    check_objects(&template.objects)?;
    let mut out = Vec::new();
    for object in &template.objects {
        push_object(&mut out, object.tag, &object.value)?;
    }
    if let Some(transparent) = &template.transparent {
        check_objects(transparent)?;
        let mut inner = Vec::new();
        for object in transparent {
            push_object(&mut inner, object.tag, &object.value)?;
        }
        push_object(&mut out, transparent_tag, &inner)?;
    }
    Ok(out)
}

/// Encodes to BER-TLV bytes, refusing: no application template, an application template
/// without a 5–16 byte ADF name, a malformed or constructed tag among the data objects, one of
/// the structure's own tags (61–64, 85) used as a data object, a duplicate tag in one
/// template, a malformed application label or language preference, and a payload over
/// [`CPM_PAYLOAD_BYTES_MAX`] bytes.
pub fn encode_bytes(model: &ConsumerPresented) -> Result<Vec<u8>, CpmEncodeError> {
    if model.applications.is_empty() {
        return Err(encode_error(
            CpmEncodeErrorKind::NoApplicationTemplate,
            None,
        ));
    }
    let mut out = Vec::with_capacity(128);
    push_object(
        &mut out,
        tag::PAYLOAD_FORMAT_INDICATOR,
        PAYLOAD_FORMAT_INDICATOR,
    )?;
    for (index, application) in model.applications.iter().enumerate() {
        if application.adf_name().is_none() {
            return Err(encode_error(
                CpmEncodeErrorKind::MissingAdfName { index },
                Some(tag::APPLICATION_TEMPLATE),
            ));
        }
        let value = template_bytes(application, tag::APPLICATION_SPECIFIC_TRANSPARENT_TEMPLATE)?;
        push_object(&mut out, tag::APPLICATION_TEMPLATE, &value)?;
    }
    if let Some(common) = &model.common {
        let value = template_bytes(common, tag::COMMON_DATA_TRANSPARENT_TEMPLATE)?;
        push_object(&mut out, tag::COMMON_DATA_TEMPLATE, &value)?;
    }
    if out.len() > CPM_PAYLOAD_BYTES_MAX {
        return Err(encode_error(
            CpmEncodeErrorKind::TooLong { bytes: out.len() },
            None,
        ));
    }
    Ok(out)
}

/// Encodes to the base64 text a QR code carries.
pub fn encode(model: &ConsumerPresented) -> Result<String, CpmEncodeError> {
    encode_bytes(model).map(|bytes| base64::encode(&bytes))
}

/// Reads the BER-TLV objects of one level.
struct BerReader<'a> {
    bytes: &'a [u8],
    position: usize,
    end: usize,
    within: Option<Tag>,
}

struct RawBer<'a> {
    tag: Tag,
    value: &'a [u8],
    at: usize,
    value_at: usize,
}

impl<'a> BerReader<'a> {
    fn at_end(&self) -> bool {
        self.position >= self.end
    }

    fn error(&self, kind: CpmDecodeErrorKind, tag: Option<Tag>, at: usize) -> CpmDecodeError {
        CpmDecodeError {
            kind,
            tag,
            byte: Some(at),
        }
    }

    fn byte(
        &mut self,
        truncated: CpmDecodeErrorKind,
        tag: Option<Tag>,
        at: usize,
    ) -> Result<u8, CpmDecodeError> {
        if self.position >= self.end {
            return Err(self.error(truncated, tag, at));
        }
        let byte = self.bytes[self.position];
        self.position += 1;
        Ok(byte)
    }

    fn next(&mut self) -> Result<RawBer<'a>, CpmDecodeError> {
        let at = self.position;
        let first = self.byte(CpmDecodeErrorKind::TruncatedTag, None, at)?;
        if first == 0x00 || first == 0xFF {
            return Err(self.error(CpmDecodeErrorKind::Padding { found: first }, None, at));
        }
        let mut tag = u32::from(first);
        if first & 0x1F == 0x1F {
            let mut tag_bytes = 1;
            loop {
                let byte = self.byte(CpmDecodeErrorKind::TruncatedTag, None, at)?;
                tag_bytes += 1;
                if tag_bytes > BER_TAG_BYTES_MAX {
                    return Err(self.error(CpmDecodeErrorKind::TagTooLong, None, at));
                }
                tag = tag << 8 | u32::from(byte);
                if byte & 0x80 == 0 {
                    break;
                }
            }
        }
        let tag = Tag(tag);
        let length_byte = self.byte(CpmDecodeErrorKind::TruncatedLength, Some(tag), at)?;
        let length = match length_byte {
            0..=0x7F => usize::from(length_byte),
            0x80 => {
                return Err(self.error(CpmDecodeErrorKind::IndefiniteLength, Some(tag), at));
            }
            0x81 | 0x82 => {
                let mut length = 0usize;
                for _ in 0..(length_byte & 0x7F) {
                    let byte = self.byte(CpmDecodeErrorKind::TruncatedLength, Some(tag), at)?;
                    length = length << 8 | usize::from(byte);
                }
                length
            }
            _ => {
                return Err(self.error(
                    CpmDecodeErrorKind::LengthTooLong {
                        bytes: 1 + usize::from(length_byte & 0x7F),
                    },
                    Some(tag),
                    at,
                ));
            }
        };
        let value_at = self.position;
        let bytes_left = self.end - value_at;
        if length > bytes_left {
            return Err(self.error(
                CpmDecodeErrorKind::LengthOverflow {
                    length,
                    bytes_left,
                    within: self.within,
                },
                Some(tag),
                at,
            ));
        }
        self.position = value_at + length;
        Ok(RawBer {
            tag,
            value: &self.bytes[value_at..self.position],
            at,
            value_at,
        })
    }

    fn inner(&self, raw: &RawBer<'a>) -> BerReader<'a> {
        BerReader {
            bytes: self.bytes,
            position: raw.value_at,
            end: raw.value_at + raw.value.len(),
            within: Some(raw.tag),
        }
    }
}

/// Decodes the base64 text of a consumer-presented QR code.
pub fn decode(text: &str) -> Result<ConsumerPresented, CpmDecodeError> {
    let error = |kind| CpmDecodeError {
        kind,
        tag: None,
        byte: None,
    };
    if text.is_empty() {
        return Err(error(CpmDecodeErrorKind::Empty));
    }
    if text.len() > INPUT_BYTES_MAX {
        return Err(error(CpmDecodeErrorKind::TooLong { bytes: text.len() }));
    }
    let bytes = base64::decode(text).map_err(|problem| {
        error(match problem {
            Base64Error::Length { chars } => CpmDecodeErrorKind::Base64Length { chars },
            Base64Error::Character { at } => CpmDecodeErrorKind::Base64Character { at },
            Base64Error::TrailingBits { at } => CpmDecodeErrorKind::Base64TrailingBits { at },
        })
    })?;
    decode_bytes(&bytes)
}

/// Decodes BER-TLV bytes, refusing anything malformed: truncated tags and lengths, indefinite
/// or over-long lengths, a length running past its template, a first object other than the
/// payload format indicator "CPV01", a tag out of place, a duplicate tag in one template, an
/// application template without an ADF name, and a payload without application templates.
pub fn decode_bytes(bytes: &[u8]) -> Result<ConsumerPresented, CpmDecodeError> {
    if bytes.is_empty() {
        return Err(CpmDecodeError {
            kind: CpmDecodeErrorKind::Empty,
            tag: None,
            byte: None,
        });
    }
    if bytes.len() > CPM_PAYLOAD_BYTES_MAX {
        return Err(CpmDecodeError {
            kind: CpmDecodeErrorKind::TooLong { bytes: bytes.len() },
            tag: None,
            byte: None,
        });
    }
    let mut reader = BerReader {
        bytes,
        position: 0,
        end: bytes.len(),
        within: None,
    };
    let first = reader.next()?;
    if first.tag != tag::PAYLOAD_FORMAT_INDICATOR {
        return Err(reader.error(
            CpmDecodeErrorKind::PayloadFormatIndicatorNotFirst,
            Some(first.tag),
            first.at,
        ));
    }
    if first.value != PAYLOAD_FORMAT_INDICATOR {
        return Err(reader.error(
            CpmDecodeErrorKind::PayloadFormatIndicator {
                found: String::from_utf8_lossy(first.value).into_owned(),
            },
            Some(first.tag),
            first.at,
        ));
    }
    let mut model = ConsumerPresented::default();
    while !reader.at_end() {
        let raw = reader.next()?;
        match raw.tag {
            tag::APPLICATION_TEMPLATE => {
                let template = read_template(
                    &reader,
                    &raw,
                    tag::APPLICATION_SPECIFIC_TRANSPARENT_TEMPLATE,
                )?;
                if template.adf_name().is_none() {
                    return Err(reader.error(
                        CpmDecodeErrorKind::MissingAdfName,
                        Some(raw.tag),
                        raw.at,
                    ));
                }
                model.applications.push(template);
            }
            tag::COMMON_DATA_TEMPLATE => {
                if model.common.is_some() {
                    return Err(reader.error(
                        CpmDecodeErrorKind::DuplicateTag { within: None },
                        Some(raw.tag),
                        raw.at,
                    ));
                }
                model.common = Some(read_template(
                    &reader,
                    &raw,
                    tag::COMMON_DATA_TRANSPARENT_TEMPLATE,
                )?);
            }
            _ => {
                return Err(reader.error(
                    CpmDecodeErrorKind::UnexpectedTag { within: None },
                    Some(raw.tag),
                    raw.at,
                ));
            }
        }
    }
    if model.applications.is_empty() {
        return Err(CpmDecodeError {
            kind: CpmDecodeErrorKind::NoApplicationTemplate,
            tag: None,
            byte: Some(bytes.len()),
        });
    }
    Ok(model)
}

fn read_primitives(reader: &mut BerReader<'_>) -> Result<Vec<BerObject>, CpmDecodeError> {
    let mut objects: Vec<BerObject> = Vec::new();
    while !reader.at_end() {
        let raw = reader.next()?;
        if raw.tag.is_constructed() || is_structure_tag(raw.tag) {
            return Err(reader.error(
                CpmDecodeErrorKind::UnexpectedTag {
                    within: reader.within,
                },
                Some(raw.tag),
                raw.at,
            ));
        }
        if objects.iter().any(|object| object.tag == raw.tag) {
            return Err(reader.error(
                CpmDecodeErrorKind::DuplicateTag {
                    within: reader.within,
                },
                Some(raw.tag),
                raw.at,
            ));
        }
        objects.push(BerObject {
            tag: raw.tag,
            value: raw.value.to_vec(),
        });
    }
    Ok(objects)
}

fn read_template(
    parent: &BerReader<'_>,
    raw: &RawBer<'_>,
    transparent_tag: Tag,
) -> Result<CpmTemplate, CpmDecodeError> {
    let mut reader = parent.inner(raw);
    let mut template = CpmTemplate::default();
    while !reader.at_end() {
        let object = reader.next()?;
        if object.tag == transparent_tag {
            if template.transparent.is_some() {
                return Err(reader.error(
                    CpmDecodeErrorKind::DuplicateTag {
                        within: reader.within,
                    },
                    Some(object.tag),
                    object.at,
                ));
            }
            let mut inner = reader.inner(&object);
            template.transparent = Some(read_primitives(&mut inner)?);
            continue;
        }
        if object.tag.is_constructed() || is_structure_tag(object.tag) {
            return Err(reader.error(
                CpmDecodeErrorKind::UnexpectedTag {
                    within: reader.within,
                },
                Some(object.tag),
                object.at,
            ));
        }
        if template.objects.iter().any(|known| known.tag == object.tag) {
            return Err(reader.error(
                CpmDecodeErrorKind::DuplicateTag {
                    within: reader.within,
                },
                Some(object.tag),
                object.at,
            ));
        }
        template.objects.push(BerObject {
            tag: object.tag,
            value: object.value.to_vec(),
        });
    }
    Ok(template)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_know_their_form() {
        assert!(tag::APPLICATION_TEMPLATE.is_constructed());
        assert!(!tag::ADF_NAME.is_constructed());
        assert!(tag::APPLICATION_CRYPTOGRAM.is_well_formed());
        assert!(!Tag(0x1F).is_well_formed(), "announces a second byte");
        assert!(
            !Tag(0x9F80).is_well_formed(),
            "second byte announces a third"
        );
        assert!(Tag(0x9F8101).is_well_formed());
        assert_eq!(tag::CARDHOLDER_NAME.to_string(), "5F20");
    }

    #[test]
    fn lengths_use_the_short_form_below_128() {
        let mut out = Vec::new();
        push_length(&mut out, 127);
        push_length(&mut out, 128);
        push_length(&mut out, 300);
        assert_eq!(out, [0x7F, 0x81, 0x80, 0x82, 0x01, 0x2C]);
    }
}
