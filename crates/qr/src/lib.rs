//! The QR payment codec: EMVCo merchant-presented payloads ([`mpm`]), EMVCo consumer-presented
//! payloads ([`cpm`]), UPI links ([`upi`]) and Tally payment codes ([`payment_code`]), plus
//! [`detect`] and [`decode_any`] to tell them apart.
//!
//! Pure: no I/O, no clock, no randomness. Decoders borrow from their input where they can.

mod base64;
pub mod cpm;
mod crc;
pub mod mpm;
pub mod network;
pub mod payment_code;
pub mod upi;

pub use crc::crc16_ccitt_false;
pub use network::Network;
pub use payment_code::{PaymentCodeError, PaymentCodePrefix, TallyPaymentCode};

/// EMVCo merchant-presented mode: a payload holds at most 512 characters. The encoder refuses
/// more; the decoder warns (Singapore's published SGQR examples run past a thousand).
pub const MPM_PAYLOAD_CHARS_MAX: usize = 512;
/// A two-digit length: a value holds at most 99 characters.
pub const MPM_VALUE_CHARS_MAX: usize = 99;
/// A globally unique identifier (sub-id 00 of a template) holds at most 32 characters.
pub const MPM_GUI_CHARS_MAX: usize = 32;
/// Templates are read one level deep; templates inside templates (62's sub-ids 50–99) are kept
/// as raw text.
pub const MPM_NESTING_DEPTH_MAX: usize = 1;
/// Ids are two digits and unique per level.
pub const MPM_OBJECTS_PER_LEVEL_MAX: usize = 100;
/// The most any decoder reads: the byte capacity of the largest QR code (version 40, error
/// correction level L).
pub const INPUT_BYTES_MAX: usize = 2953;
/// Consumer-presented payloads, once base64 is decoded.
pub const CPM_PAYLOAD_BYTES_MAX: usize = INPUT_BYTES_MAX / 4 * 3;
/// Templates in a consumer-presented payload: 61/62, then 63/64 inside them.
pub const CPM_NESTING_DEPTH_MAX: usize = 2;
/// BER-TLV tags of up to three bytes (EMV uses at most two).
pub const BER_TAG_BYTES_MAX: usize = 3;
/// BER-TLV lengths of up to three bytes: 0x82 and two bytes.
pub const BER_LENGTH_BYTES_MAX: usize = 3;
/// Parameters in a UPI link.
pub const UPI_PARAMETERS_MAX: usize = 32;
/// Digits in a Tally payment code, prefix included.
pub const TALLY_PAYMENT_CODE_DIGITS: usize = 18;

const _: () = assert!(MPM_PAYLOAD_CHARS_MAX <= INPUT_BYTES_MAX);
const _: () = assert!(MPM_GUI_CHARS_MAX <= MPM_VALUE_CHARS_MAX);
const _: () = assert!(MPM_VALUE_CHARS_MAX < 100, "lengths are two decimal digits");
const _: () = assert!(
    MPM_OBJECTS_PER_LEVEL_MAX <= 128,
    "ids are tracked in a u128"
);
const _: () = assert!(CPM_PAYLOAD_BYTES_MAX <= u16::MAX as usize, "0x82 lengths");
const _: () = assert!(TALLY_PAYMENT_CODE_DIGITS > 2, "the prefix is two digits");

/// The format of a scanned text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    EmvMpm,
    EmvCpm,
    Upi,
    TallyPaymentCode,
    Unknown,
}

impl Scheme {
    /// "emv-mpm", "emv-cpm", "upi", "tally-payment-code" or "unknown".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EmvMpm => "emv-mpm",
            Self::EmvCpm => "emv-cpm",
            Self::Upi => "upi",
            Self::TallyPaymentCode => "tally-payment-code",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Settings of recognition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recognition {
    pub payment_code_prefix: PaymentCodePrefix,
}

/// The base64 of the first six bytes of every "CPV01" consumer-presented payload:
/// 85 05 'C' 'P' 'V' '0'.
const CPM_BASE64_PREFIX: &str = "hQVDUFYw";

/// Says which format `text` is in, from its first characters (and, for payment codes, its
/// length and prefix), with the default payment code prefix.
pub fn detect(text: &str) -> Scheme {
    detect_with(text, &Recognition::default())
}

/// [`detect`] with settings.
pub fn detect_with(text: &str, recognition: &Recognition) -> Scheme {
    let bytes = text.as_bytes();
    if upi::is_upi(text) {
        Scheme::Upi
    } else if bytes.len() == TALLY_PAYMENT_CODE_DIGITS
        && bytes.iter().all(u8::is_ascii_digit)
        && text.starts_with(recognition.payment_code_prefix.as_str())
    {
        Scheme::TallyPaymentCode
    } else if bytes.len() >= 4
        && bytes.starts_with(b"00")
        && bytes[2..4].iter().all(u8::is_ascii_digit)
    {
        Scheme::EmvMpm
    } else if text.starts_with(CPM_BASE64_PREFIX) {
        Scheme::EmvCpm
    } else {
        Scheme::Unknown
    }
}

/// A decoded payload of any supported format.
///
/// Not boxed although the merchant-presented variant is the largest: it is also the common
/// one, and boxing would cost an allocation on every decode.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyPayload<'a> {
    EmvMpm(mpm::Decoded<'a>),
    EmvCpm(cpm::ConsumerPresented),
    Upi(upi::UpiLink<'a>),
    TallyPaymentCode(TallyPaymentCode),
}

impl AnyPayload<'_> {
    pub fn scheme(&self) -> Scheme {
        match self {
            Self::EmvMpm(_) => Scheme::EmvMpm,
            Self::EmvCpm(_) => Scheme::EmvCpm,
            Self::Upi(_) => Scheme::Upi,
            Self::TallyPaymentCode(_) => Scheme::TallyPaymentCode,
        }
    }
}

/// Why [`decode_any`] refused a text: the format it was taken for, and that decoder's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnyError {
    #[error("emv-mpm: {0}")]
    EmvMpm(#[from] mpm::DecodeError),
    #[error("emv-cpm: {0}")]
    EmvCpm(#[from] cpm::CpmDecodeError),
    #[error("upi: {0}")]
    Upi(#[from] upi::UpiError),
    #[error("tally-payment-code: {0}")]
    TallyPaymentCode(#[from] PaymentCodeError),
    #[error("unrecognised format: not an EMV merchant- or consumer-presented payload, a UPI link or a Tally payment code")]
    Unrecognized,
}

impl AnyError {
    /// The format the text was taken for.
    pub fn scheme(&self) -> Scheme {
        match self {
            Self::EmvMpm(_) => Scheme::EmvMpm,
            Self::EmvCpm(_) => Scheme::EmvCpm,
            Self::Upi(_) => Scheme::Upi,
            Self::TallyPaymentCode(_) => Scheme::TallyPaymentCode,
            Self::Unrecognized => Scheme::Unknown,
        }
    }
}

/// Detects the format of `text` and decodes it, with the default payment code prefix.
pub fn decode_any(text: &str) -> Result<AnyPayload<'_>, AnyError> {
    decode_any_with(text, &Recognition::default())
}

/// [`decode_any`] with settings.
pub fn decode_any_with<'a>(
    text: &'a str,
    recognition: &Recognition,
) -> Result<AnyPayload<'a>, AnyError> {
    Ok(match detect_with(text, recognition) {
        Scheme::EmvMpm => AnyPayload::EmvMpm(mpm::decode(text)?),
        Scheme::EmvCpm => AnyPayload::EmvCpm(cpm::decode(text)?),
        Scheme::Upi => AnyPayload::Upi(upi::decode(text)?),
        Scheme::TallyPaymentCode => AnyPayload::TallyPaymentCode(TallyPaymentCode::parse(
            text,
            recognition.payment_code_prefix,
        )?),
        Scheme::Unknown => {
            // All digits but not a payment code: say what is wrong with it as one.
            if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
                TallyPaymentCode::parse(text, recognition.payment_code_prefix)?;
            }
            return Err(AnyError::Unrecognized);
        }
    })
}
