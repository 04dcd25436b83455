//! The strict encoder: each rule it enforces, with its message.

use std::borrow::Cow;

use qr::mpm::{
    self, AdditionalData, DataObject, EncodeErrorKind, LanguageTemplate, MerchantAccount,
    MerchantPresented, PointOfInitiation, Template,
};

use crate::mpm_vectors::emvco_example_model;

fn text(value: &str) -> Option<Cow<'_, str>> {
    Some(Cow::Borrowed(value))
}

/// A small conforming model: a Pix merchant in Brasília.
fn valid() -> MerchantPresented<'static> {
    MerchantPresented {
        point_of_initiation: Some(PointOfInitiation::Static),
        merchant_accounts: vec![MerchantAccount::Template(
            Template::new(26, "br.gov.bcb.pix").with(1, "pix@example.com"),
        )],
        merchant_category_code: text("5812"),
        transaction_currency: text("986"),
        country_code: text("BR"),
        merchant_name: text("PADARIA"),
        merchant_city: text("BRASILIA"),
        ..MerchantPresented::default()
    }
}

fn refusal(model: &MerchantPresented<'_>) -> String {
    match mpm::encode(model) {
        Ok(payload) => panic!("encoded {payload:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn the_valid_model_encodes_in_ascending_order_and_decodes_without_warnings() {
    let payload = mpm::encode(&valid()).unwrap();
    assert!(payload.starts_with("000201010211263"), "{payload}");
    assert!(payload.contains("52045812530398658"), "{payload}");
    let decoded = mpm::decode(&payload).unwrap();
    assert_eq!(decoded.warnings, vec![]);
    assert_eq!(
        decoded.payload,
        valid(),
        "ascending order decodes as an empty order"
    );
}

#[test]
fn mandatory_objects() {
    for (object_id, name) in [
        (52, "merchant category code"),
        (53, "transaction currency"),
        (58, "country code"),
        (59, "merchant name"),
        (60, "merchant city"),
    ] {
        let mut model = valid();
        match object_id {
            52 => model.merchant_category_code = None,
            53 => model.transaction_currency = None,
            58 => model.country_code = None,
            59 => model.merchant_name = None,
            _ => model.merchant_city = None,
        }
        assert_eq!(
            refusal(&model),
            format!("mandatory {name} is missing (object {object_id})")
        );
    }
    let mut model = valid();
    model.merchant_accounts.clear();
    assert_eq!(
        refusal(&model),
        "no merchant account information (ids 02–51)"
    );
}

#[test]
fn payload_format_indicator_must_be_01() {
    let mut model = valid();
    model.payload_format_indicator = Cow::Borrowed("02");
    assert_eq!(
        refusal(&model),
        "payload format indicator is \"02\"; this version of the specification writes \"01\" (object 00)"
    );
}

#[test]
fn point_of_initiation_must_be_static_or_dynamic() {
    let mut model = valid();
    model.point_of_initiation = Some(PointOfInitiation::Other(Cow::Borrowed("13")));
    assert_eq!(
        refusal(&model),
        "point of initiation method is \"13\", neither \"11\" (static) nor \"12\" (dynamic) (object 01)"
    );
}

#[test]
fn field_lengths_and_formats() {
    type Change = fn(&mut MerchantPresented<'static>);
    let cases: [(Change, &str); 9] = [
        (
            |model| model.merchant_name = text("A NAME OF TWENTY-SIX CHARS"),
            "merchant name is 26 characters; at most 25 allowed (object 59)",
        ),
        (
            |model| model.merchant_city = text("SÃO JOSÉ DO RIO PRETO"),
            "merchant city is 21 characters; at most 15 allowed (object 60)",
        ),
        (
            |model| model.country_code = text("br"),
            "country code \"br\" is not upper-case letters (object 58)",
        ),
        (
            |model| model.country_code = text("BRA"),
            "country code is 3 characters; it must be exactly 2 (object 58)",
        ),
        (
            |model| model.transaction_currency = text("97"),
            "transaction currency is 2 characters; it must be exactly 3 (object 53)",
        ),
        (
            |model| model.transaction_currency = text("BRL"),
            "transaction currency \"BRL\" is not all digits (object 53)",
        ),
        (
            |model| model.transaction_amount = text("1,00"),
            "transaction amount \"1,00\" is not digits with an optional \".\" decimal mark (object 54)",
        ),
        (
            |model| model.transaction_amount = text("12345678901.00"),
            "transaction amount is 14 characters; at most 13 allowed (object 54)",
        ),
        (
            |model| model.merchant_name = text("TAB\tNAME"),
            "merchant name contains a control character (object 59)",
        ),
    ];
    for (change, message) in cases {
        let mut model = valid();
        change(&mut model);
        assert_eq!(refusal(&model), message);
    }
}

#[test]
fn utf8_names_count_characters() {
    let mut model = valid();
    model.merchant_city = text("SÃO JOSÉ");
    let payload = mpm::encode(&model).unwrap();
    assert!(payload.contains("6008SÃO JOSÉ"), "{payload}");
    assert_eq!(mpm::decode(&payload).unwrap().payload, model);
}

#[test]
fn convenience_fees_follow_their_indicator() {
    let mut model = valid();
    model.tip_or_convenience_indicator = text("03");
    assert_eq!(
        refusal(&model),
        "tip or convenience indicator 03 needs a convenience fee percentage (57) (object 57)"
    );
    model.convenience_fee_percentage = text("100");
    assert_eq!(
        refusal(&model),
        "convenience fee percentage \"100\" is not a percentage from 00.01 to 99.99 (object 57)"
    );
    model.convenience_fee_percentage = text("3.5");
    assert!(mpm::encode(&model).is_ok());
    model.convenience_fee_fixed = text("2.00");
    assert_eq!(
        refusal(&model),
        "a fixed convenience fee (56) needs tip or convenience indicator 02 (object 56)"
    );
}

#[test]
fn ids_must_be_in_their_ranges_and_unique() {
    let mut model = valid();
    model
        .merchant_accounts
        .push(MerchantAccount::Primitive(DataObject::new(30, "4111")));
    assert_eq!(
        refusal(&model),
        "id 30 is outside 02–25, the primitive merchant accounts (object 30)"
    );

    let mut model = valid();
    model.merchant_accounts.push(MerchantAccount::Template(
        Template::new(26, "br.gov.bcb.pix").with(1, "other@example.com"),
    ));
    assert_eq!(
        refusal(&model),
        "duplicate id: another object at this level has the same id (object 26)"
    );

    let mut model = valid();
    model.unreserved.push(Template::new(79, "X.Y"));
    assert_eq!(
        refusal(&model),
        "id 79 is outside 80–99, the unreserved templates (object 79)"
    );

    let mut model = valid();
    model.additional_data = Some(AdditionalData {
        reserved: vec![DataObject::new(51, "X")],
        ..AdditionalData::default()
    });
    assert_eq!(
        refusal(&model),
        "id 51 is outside 00 and 12–49, the reserved additional data fields (object 62.51)"
    );
}

#[test]
fn templates_must_fit_a_two_digit_length() {
    let mut model = valid();
    model.merchant_accounts = vec![MerchantAccount::Template(
        Template::new(26, "br.gov.bcb.pix")
            .with(1, "a".repeat(50))
            .with(2, "b".repeat(50)),
    )];
    assert_eq!(
        refusal(&model),
        "value is 126 characters; a two-digit length holds at most 99 (object 26)"
    );
}

#[test]
fn empty_template_is_refused() {
    let mut model = valid();
    model.additional_data = Some(AdditionalData::default());
    assert_eq!(
        refusal(&model),
        "additional data field template is empty; lengths run from 01 to 99 (object 62)"
    );
}

#[test]
fn globally_unique_identifier_is_mandatory_and_short() {
    let mut model = valid();
    model.merchant_accounts = vec![MerchantAccount::Template(Template::new(26, ""))];
    assert_eq!(
        refusal(&model),
        "template has no globally unique identifier (sub-id 00) (object 26.00)"
    );
    model.merchant_accounts = vec![MerchantAccount::Template(Template::new(
        26,
        "a.gui.longer.than.thirty.two.chars",
    ))];
    assert_eq!(
        refusal(&model),
        "globally unique identifier is 34 characters; at most 32 allowed (object 26.00)"
    );
}

#[test]
fn language_template_needs_preference_and_name() {
    let mut model = valid();
    model.language = Some(LanguageTemplate {
        merchant_name: text("パン屋"),
        ..LanguageTemplate::default()
    });
    assert_eq!(
        refusal(&model),
        "mandatory language preference is missing (object 64.00)"
    );
}

#[test]
fn order_must_list_exactly_the_objects_present() {
    let mut model = valid();
    model.order = vec![1, 26, 52, 53, 58, 59];
    assert_eq!(refusal(&model), "order leaves out an id that is present");
    model.order = vec![1, 26, 52, 53, 58, 59, 60, 54];
    assert_eq!(refusal(&model), "order lists an id that is not present");
    model.order = vec![1, 26, 52, 53, 58, 59, 60, 60];
    assert_eq!(refusal(&model), "order lists an id twice");
    model.order = vec![60, 59, 58, 53, 52, 26, 1];
    let payload = mpm::encode(&model).unwrap();
    assert!(
        payload.starts_with("0002016008BRASILIA5907PADARIA"),
        "{payload}"
    );
}

#[test]
fn payloads_longer_than_512_characters_are_refused() {
    let mut model = valid();
    for object_id in 80..=85 {
        model
            .unreserved
            .push(Template::new(object_id, "x".repeat(32)).with(1, "y".repeat(59)));
    }
    let error = mpm::encode(&model).unwrap_err();
    assert!(matches!(error.kind, EncodeErrorKind::Rule(_)), "{error}");
    assert!(
        error
            .to_string()
            .ends_with("characters; the specification allows at most 512"),
        "{error}"
    );
}

#[test]
fn the_emvco_example_model_breaks_no_rule() {
    assert!(mpm::encode(&emvco_example_model()).is_ok());
}
