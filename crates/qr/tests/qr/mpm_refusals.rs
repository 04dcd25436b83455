//! Each refusal of the decoder, with its message, and each warning of the lenient decoder.

use qr::mpm::{self, DecodeErrorKind, Issue, ObjectPath, Position};

use crate::mpm_vectors::{EMVCO_EXAMPLE, PIX_BCB_STATIC};
use crate::support::with_crc;

fn refusal(payload: &str) -> String {
    match mpm::decode(payload) {
        Ok(decoded) => panic!("accepted {payload:?}: {decoded:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn crc_mismatch_says_what_the_payload_says_and_what_was_computed() {
    let damaged = PIX_BCB_STATIC.replace("63041D3D", "6304FFFF");
    assert_eq!(
        refusal(&damaged),
        "CRC mismatch: payload says FFFF, computed 1D3D (object 63 at character 129, byte 129)"
    );
    let error = mpm::decode(&damaged).unwrap_err();
    assert_eq!(
        error.kind,
        DecodeErrorKind::CrcMismatch {
            stated: "FFFF".to_owned(),
            computed: 0x1D3D
        }
    );
    assert_eq!(error.path, Some(ObjectPath::top(63)));
}

#[test]
fn crc_mismatch_counts_characters_and_bytes_separately() {
    // The EMVCo example holds six three-byte characters before its CRC.
    let damaged = EMVCO_EXAMPLE.replace("6304A13A", "6304A13B");
    let error = mpm::decode(&damaged).unwrap_err();
    let chars = EMVCO_EXAMPLE.chars().count();
    assert_eq!(
        error.at,
        Some(Position {
            byte: EMVCO_EXAMPLE.len() - 8,
            char: chars - 8
        })
    );
    assert_eq!(EMVCO_EXAMPLE.len() - chars, 12);
}

#[test]
fn damage_inside_the_payload_is_a_crc_mismatch() {
    let damaged = PIX_BCB_STATIC.replace("Fulano", "Fulana");
    assert!(refusal(&damaged).starts_with("CRC mismatch: payload says 1D3D, computed "));
}

#[test]
fn non_numeric_id() {
    assert_eq!(
        refusal(&with_crc("000201AB02xx")),
        "object id \"AB\" is not two digits (at character 6, byte 6)"
    );
}

#[test]
fn non_numeric_id_inside_a_template_names_the_template() {
    assert_eq!(
        refusal(&with_crc("0002012606X1020A")),
        "object id \"X1\" is not two digits (object 26 at character 10, byte 10)"
    );
}

#[test]
fn non_numeric_length() {
    assert_eq!(
        refusal(&with_crc("000201010X11")),
        "length \"0X\" is not two digits (object 01 at character 6, byte 6)"
    );
}

#[test]
fn truncated_object() {
    assert_eq!(
        refusal("00020101"),
        "truncated object: 2 characters left where an id and a length need 4 (at character 6, byte 6)"
    );
}

#[test]
fn truncated_object_inside_a_template() {
    assert_eq!(
        refusal(&with_crc("0002016203050")),
        "truncated object: 3 characters left where an id and a length need 4 (object 62 at character 10, byte 10)"
    );
}

#[test]
fn length_overflowing_the_payload() {
    assert_eq!(
        refusal("0002015999ABC"),
        "length 99 overflows the payload: 3 characters left (object 59 at character 6, byte 6)"
    );
}

#[test]
fn length_overflowing_a_template() {
    assert_eq!(
        refusal(&with_crc("00020162070520***")),
        "length 20 overflows template 62: 3 characters left (object 62.05 at character 10, byte 10)"
    );
}

#[test]
fn lengths_count_characters_not_bytes() {
    // "北京" is two characters and six bytes: a length of 06 overflows.
    assert_eq!(
        refusal("0002016006北京"),
        "length 6 overflows the payload: 2 characters left (object 60 at character 6, byte 6)"
    );
    let payload = with_crc("0002016002北京");
    let decoded = mpm::decode(&payload).unwrap();
    assert_eq!(decoded.payload.merchant_city.as_deref(), Some("北京"));
}

#[test]
fn duplicate_id_at_the_top_level() {
    assert_eq!(
        refusal(&with_crc("0002015802BR5802BR")),
        "duplicate id: an earlier object at this level has the same id (object 58 at character 12, byte 12)"
    );
}

#[test]
fn duplicate_id_inside_a_template() {
    assert_eq!(
        refusal(&with_crc("00020162120503***0501X")),
        "duplicate id: an earlier object at this level has the same id (object 62.05 at character 17, byte 17)"
    );
}

#[test]
fn payload_format_indicator_must_come_first() {
    assert_eq!(
        refusal(&with_crc("010211000201")),
        "the first object must be the payload format indicator (00), found 01 (object 01 at character 0, byte 0)"
    );
}

#[test]
fn data_after_the_crc() {
    let trailing = format!("{PIX_BCB_STATIC}5802BR");
    assert_eq!(
        refusal(&trailing),
        "data after the CRC: 6 characters follow object 63 (at character 137, byte 137)"
    );
}

#[test]
fn missing_crc() {
    assert_eq!(
        refusal("0002015802BR"),
        "missing CRC: the payload does not end with object 63 (at character 12, byte 12)"
    );
}

#[test]
fn crc_of_the_wrong_length() {
    assert_eq!(
        refusal("0002016305ABCDE"),
        "the CRC (63) must be 4 characters long, found 5 (object 63 at character 6, byte 6)"
    );
}

#[test]
fn crc_that_is_not_hexadecimal() {
    assert_eq!(
        refusal("0002016304XYZW"),
        "CRC \"XYZW\" is not 4 hexadecimal digits (object 63 at character 6, byte 6)"
    );
}

#[test]
fn empty_and_oversized_inputs() {
    assert_eq!(refusal(""), "empty payload");
    let huge = "0".repeat(qr::INPUT_BYTES_MAX + 1);
    assert_eq!(
        refusal(&huge),
        "payload is 2954 bytes; the decoder reads at most 2953"
    );
}

fn warnings(payload: &str) -> Vec<String> {
    mpm::decode(payload)
        .unwrap()
        .warnings
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn lower_case_crc_is_a_warning() {
    let lower = PIX_BCB_STATIC.replace("63041D3D", "63041d3d");
    let decoded = mpm::decode(&lower).unwrap();
    assert_eq!(decoded.crc, 0x1D3D);
    assert_eq!(
        warnings(&lower),
        ["CRC is written in lower case; the specification writes upper-case hexadecimal (object 63)"]
    );
}

#[test]
fn missing_merchant_category_code_and_name_are_warnings() {
    let payload = with_crc("0002012618001412345678901234530398658021T6005PARIS");
    let decoded = mpm::decode(&payload).unwrap();
    assert_eq!(decoded.payload.merchant_city.as_deref(), Some("PARIS"));
    assert_eq!(
        warnings(&payload),
        [
            "mandatory merchant category code is missing (object 52)",
            "mandatory merchant name is missing (object 59)",
            "country code \"1T\" is not upper-case letters (object 58)",
        ]
    );
}

#[test]
fn city_longer_than_15_characters_is_a_warning() {
    let payload = with_crc("0002010205123455204581253039785802FR5904SHOP6018SAINT-REMY-DE-PROV");
    let decoded = mpm::decode(&payload).unwrap();
    assert_eq!(
        decoded.payload.merchant_city.as_deref(),
        Some("SAINT-REMY-DE-PROV")
    );
    assert_eq!(
        decoded.warnings[0].issue,
        Issue::TooLong {
            name: "merchant city",
            max: 15,
            actual: 18
        }
    );
}

#[test]
fn field_format_warnings() {
    let payload = with_crc(
        "000201010213020512345520458A25303978540412,55802FR5904SHOP6005PARIS55020264060002ZZ",
    );
    assert_eq!(
        warnings(&payload),
        [
            "point of initiation method is \"13\", neither \"11\" (static) nor \"12\" (dynamic) (object 01)",
            "merchant category code \"58A2\" is not all digits (object 52)",
            "transaction amount \"12,5\" is not digits with an optional \".\" decimal mark (object 54)",
            "tip or convenience indicator 02 needs a fixed convenience fee (56) (object 56)",
            "mandatory alternate merchant name is missing (object 64.01)",
        ]
    );
}

#[test]
fn template_without_a_globally_unique_identifier_is_a_warning() {
    let payload = with_crc(concat!(
        "00020126080104ABCD520458125303978",
        "5802FR5904SHOP6005PARIS"
    ));
    assert!(warnings(&payload).contains(
        &"template has no globally unique identifier (sub-id 00) (object 26.00)".to_owned()
    ));
}

#[test]
fn globally_unique_identifier_not_first_is_a_warning() {
    let payload = with_crc(concat!(
        "00020126160104ABCD0004X.YZ520458125303978",
        "5802FR5904SHOP6005PARIS"
    ));
    let decoded = mpm::decode(&payload).unwrap();
    let template = decoded.payload.template_by_gui("X.YZ").unwrap();
    assert_eq!(template.field(1), Some("ABCD"));
    assert_eq!(
        decoded.warnings[0].to_string(),
        "the globally unique identifier (sub-id 00) is not the first sub-field (object 26.00)"
    );
}

#[test]
fn empty_value_is_a_warning() {
    let payload = with_crc("0002010205123455200530397858021T5904SHOP6005PARIS");
    assert_eq!(
        warnings(&payload),
        [
            "merchant category code is empty; lengths run from 01 to 99 (object 52)",
            "country code \"1T\" is not upper-case letters (object 58)",
        ]
    );
}

#[test]
fn empty_template_is_a_warning() {
    let payload = with_crc("0002010205123455204581253039785802FR5904SHOP6005PARIS6200");
    assert_eq!(
        warnings(&payload),
        ["additional data field template is empty; lengths run from 01 to 99 (object 62)"]
    );
}
