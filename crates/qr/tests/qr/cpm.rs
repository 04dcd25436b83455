//! Consumer-presented mode: the specification's example, refusals, and the round trip.

use proptest::prelude::*;

use qr::cpm::{
    self, tag, ConsumerPresented, CpmDecodeErrorKind, CpmEncodeErrorKind, CpmTemplate, Tag,
};

use crate::strategies::consumer_presented;
use crate::support::hex;

/// EMVCo, "EMV QR Code Specification for Payment Systems: Consumer-Presented Mode", the
/// example payload with two applications and a common data template.
const EMVCO_EXAMPLE_BASE64: &str = "hQVDUFYwMWETTwegAAAAVVVVUAhQcm9kdWN0MWETTwegAAAAZmZmUAhQcm9kdWN0MmJJWggSNFZ4kBI0WF8gDkNBUkRIT0xERVIvRU1WXy0IcnVlc2RlZW5kIZ8QBwYBCgMAAACfJghYT9OF+iNLzJ82AgABnzcEbVjvEw==";
const EMVCO_EXAMPLE_HEX: &str = "85 05 43 50 56 30 31
    61 13 4F 07 A0 00 00 00 55 55 55 50 08 50 72 6F 64 75 63 74 31
    61 13 4F 07 A0 00 00 00 66 66 66 50 08 50 72 6F 64 75 63 74 32
    62 49 5A 08 12 34 56 78 90 12 34 58
          5F 20 0E 43 41 52 44 48 4F 4C 44 45 52 2F 45 4D 56
          5F 2D 08 72 75 65 73 64 65 65 6E
          64 21 9F 10 07 06 01 0A 03 00 00 00
                9F 26 08 58 4F D3 85 FA 23 4B CC
                9F 36 02 00 01
                9F 37 04 6D 58 EF 13";

fn emvco_example_model() -> ConsumerPresented {
    ConsumerPresented {
        applications: vec![
            CpmTemplate::new()
                .with(tag::ADF_NAME, hex("A0000000555555"))
                .with(tag::APPLICATION_LABEL, "Product1"),
            CpmTemplate::new()
                .with(tag::ADF_NAME, hex("A0000000666666"))
                .with(tag::APPLICATION_LABEL, "Product2"),
        ],
        common: Some(
            CpmTemplate::new()
                .with(tag::APPLICATION_PAN, hex("1234567890123458"))
                .with(tag::CARDHOLDER_NAME, "CARDHOLDER/EMV")
                .with(tag::LANGUAGE_PREFERENCE, "ruesdeen")
                .with_transparent(tag::ISSUER_APPLICATION_DATA, hex("06010A03000000"))
                .with_transparent(tag::APPLICATION_CRYPTOGRAM, hex("584FD385FA234BCC"))
                .with_transparent(tag::APPLICATION_TRANSACTION_COUNTER, hex("0001"))
                .with_transparent(tag::UNPREDICTABLE_NUMBER, hex("6D58EF13")),
        ),
    }
}

#[test]
fn emvco_example_decodes_field_by_field() {
    let decoded = cpm::decode(EMVCO_EXAMPLE_BASE64).unwrap();
    assert_eq!(decoded.applications.len(), 2);
    assert_eq!(
        decoded.applications[0].adf_name(),
        Some(&hex("A0000000555555")[..])
    );
    assert_eq!(
        decoded.applications[0].application_label(),
        Some("Product1")
    );
    assert_eq!(
        decoded.applications[1].application_label(),
        Some("Product2")
    );
    let common = decoded.common.as_ref().unwrap();
    assert_eq!(
        common.application_pan().as_deref(),
        Some("1234567890123458")
    );
    assert_eq!(common.cardholder_name(), Some("CARDHOLDER/EMV"));
    assert_eq!(common.language_preference(), Some("ruesdeen"));
    assert_eq!(
        common.issuer_application_data(),
        Some(&hex("06010A03000000")[..])
    );
    assert_eq!(
        common.application_cryptogram(),
        Some(&hex("584FD385FA234BCC")[..])
    );
    assert_eq!(common.application_transaction_counter(), Some(1));
    assert_eq!(common.unpredictable_number(), Some(&hex("6D58EF13")[..]));
    assert_eq!(common.cryptogram_information_data(), None);
    assert_eq!(decoded, emvco_example_model());
}

#[test]
fn emvco_example_encodes_to_the_published_bytes_and_text() {
    let model = emvco_example_model();
    assert_eq!(cpm::encode_bytes(&model).unwrap(), hex(EMVCO_EXAMPLE_HEX));
    assert_eq!(cpm::encode(&model).unwrap(), EMVCO_EXAMPLE_BASE64);
}

fn refusal_of_bytes(bytes: &[u8]) -> String {
    match cpm::decode_bytes(bytes) {
        Ok(model) => panic!("accepted {bytes:02X?}: {model:?}"),
        Err(error) => error.to_string(),
    }
}

const HEADER: &str = "85 05 43 50 56 30 31";

#[test]
fn refusals_say_what_and_where() {
    let cases = [
        ("", "empty payload"),
        ("61 03 4F 01 A0", "the first object must be the payload format indicator (85) (tag 61 at byte 0)"),
        ("85 05 43 50 56 30 32 61 00", "payload format indicator is \"CPV02\"; this decoder knows \"CPV01\" (tag 85 at byte 0)"),
        (HEADER, "no application template (61) (at byte 7)"),
        ("85 05 43 50 56 30 31 61 09 4F 07 A0 00 00 00 55 55", "length 9 overflows the payload: 8 bytes left (tag 61 at byte 7)"),
        ("85 05 43 50 56 30 31 61 04 4F 07 A0 00", "length 7 overflows template 61: 2 bytes left (tag 4F at byte 9)"),
        ("85 05 43 50 56 30 31 61 80", "indefinite length (80) is not allowed (tag 61 at byte 7)"),
        ("85 05 43 50 56 30 31 61 83 00 00 01", "length takes 4 bytes; at most 3 allowed (tag 61 at byte 7)"),
        ("85 05 43 50 56 30 31 61 81", "truncated length: the payload ends inside it (tag 61 at byte 7)"),
        ("85 05 43 50 56 30 31 9F", "truncated tag: the payload ends inside it (at byte 7)"),
        ("85 05 43 50 56 30 31 9F 81 82 83 01 00", "tag runs over 3 bytes (at byte 7)"),
        ("85 05 43 50 56 30 31 00", "byte 00 is padding, not a tag (at byte 7)"),
        ("85 05 43 50 56 30 31 61 02 50 00", "application template has no ADF name (4F) (tag 61 at byte 7)"),
        ("85 05 43 50 56 30 31 61 06 4F 01 A0 4F 01 A1", "duplicate tag in template 61 (tag 4F at byte 12)"),
        ("85 05 43 50 56 30 31 61 05 4F 01 A0 64 00", "tag is not allowed in template 61 (tag 64 at byte 12)"),
        ("85 05 43 50 56 30 31 61 07 4F 01 A0 63 02 70 00", "tag is not allowed in template 63 (tag 70 at byte 14)"),
        ("85 05 43 50 56 30 31 61 03 4F 01 A0 5A 00", "tag is not allowed at the top level (tag 5A at byte 12)"),
        ("85 05 43 50 56 30 31 61 03 4F 01 A0 62 00 62 00", "duplicate tag at the top level (tag 62 at byte 14)"),
    ];
    for (bytes, message) in cases {
        assert_eq!(refusal_of_bytes(&hex(bytes)), message, "{bytes}");
    }
}

#[test]
fn base64_refusals() {
    let refusal = |text: &str| cpm::decode(text).unwrap_err();
    assert_eq!(
        refusal("hQVDUFYwMWE").kind,
        CpmDecodeErrorKind::Base64Length { chars: 11 }
    );
    assert_eq!(
        refusal("hQVDUFYw-WE=").to_string(),
        "not base64: unexpected character at character 8"
    );
    assert_eq!(
        refusal("hQVDUFYwMWF=").kind,
        CpmDecodeErrorKind::Base64TrailingBits { at: 10 }
    );
}

#[test]
fn encoder_refusals() {
    let application = || CpmTemplate::new().with(tag::ADF_NAME, hex("A0000000555555"));
    let refusal = |model: ConsumerPresented| cpm::encode(&model).unwrap_err().to_string();
    assert_eq!(
        refusal(ConsumerPresented::default()),
        "no application template: at least one is required"
    );
    assert_eq!(
        refusal(ConsumerPresented {
            applications: vec![CpmTemplate::new().with(tag::APPLICATION_LABEL, "X")],
            common: None
        }),
        "application template 0 has no ADF name (4F) (tag 61)"
    );
    assert_eq!(
        refusal(ConsumerPresented {
            applications: vec![CpmTemplate::new().with(tag::ADF_NAME, hex("A000"))],
            common: None
        }),
        "ADF name is 2 bytes; it must be 5 to 16 (tag 4F)"
    );
    assert_eq!(
        refusal(ConsumerPresented {
            applications: vec![application().with(tag::APPLICATION_LABEL, "Product\n")],
            common: None
        }),
        "application label must be 1 to 16 printable ASCII characters (tag 50)"
    );
    assert_eq!(
        refusal(ConsumerPresented {
            applications: vec![application().with(tag::LANGUAGE_PREFERENCE, "EN")],
            common: None
        }),
        "language preference must be 1 to 4 two-letter lower-case ISO 639 codes (tag 5F2D)"
    );
    assert_eq!(
        refusal(ConsumerPresented {
            applications: vec![application().with(Tag(0x1F), "x")],
            common: None
        }),
        "tag is not a well-formed BER-TLV tag (tag 1F)"
    );
    assert_eq!(
        refusal(ConsumerPresented {
            applications: vec![application().with(Tag(0x70), "x")],
            common: None
        }),
        "tag is constructed; templates hold primitive objects here (tag 70)"
    );
    assert_eq!(
        refusal(ConsumerPresented {
            applications: vec![
                application().with(tag::APPLICATION_SPECIFIC_TRANSPARENT_TEMPLATE, "x")
            ],
            common: None
        }),
        "tag belongs to the payload structure and cannot be a data object (tag 63)"
    );
    assert_eq!(
        refusal(ConsumerPresented {
            applications: vec![application()
                .with(tag::APPLICATION_LABEL, "A")
                .with(tag::APPLICATION_LABEL, "B")],
            common: None
        }),
        "duplicate tag in one template (tag 50)"
    );
    assert_eq!(
        refusal(ConsumerPresented {
            applications: vec![application().with(tag::ISSUER_URL, vec![b'u'; 2300])],
            common: None
        }),
        "payload is 2300 bytes; at most 2214 allowed (tag 5F50)"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_is_the_identity(model in consumer_presented()) {
        let text = match cpm::encode(&model) {
            Ok(text) => text,
            Err(error) if matches!(error.kind, CpmEncodeErrorKind::TooLong { .. }) => {
                return Err(TestCaseError::reject("payload over the size limit"));
            }
            Err(error) => return Err(TestCaseError::fail(error.to_string())),
        };
        prop_assert_eq!(qr::detect(&text), qr::Scheme::EmvCpm);
        prop_assert_eq!(cpm::decode(&text).unwrap(), model);
    }
}
