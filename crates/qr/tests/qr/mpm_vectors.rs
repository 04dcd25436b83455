//! Published payloads, decoded field by field and, where they conform, encoded back from a
//! hand-built model to the exact published text (the CRCs are the published ones).

use std::borrow::Cow;

use qr::mpm::{
    self, AdditionalData, DataObject, Issue, LanguageTemplate, MerchantAccount, MerchantPresented,
    ObjectPath, PointOfInitiation, Template,
};
use qr::Network;

/// EMVCo, "EMV QR Code Specification for Payment Systems: Merchant-Presented Mode",
/// Appendix A example (with a Chinese alternate-language template). CRC A13A.
pub const EMVCO_EXAMPLE: &str = "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A";

/// Banco Central do Brasil, "Manual de Padrões para Iniciação do Pix", static BR Code
/// example. CRC 1D3D.
pub const PIX_BCB_STATIC: &str = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D";

/// PromptPay payloads from the test suite of dtinth/promptpay-qr, the reference open-source
/// PromptPay generator: a phone number, a national id, and a phone number with an amount.
/// PromptPay writes no merchant category code, name or city.
pub const PROMPTPAY_PHONE: &str =
    "00020101021129370016A000000677010111011300668012345675802TH530376463046197";
pub const PROMPTPAY_NATIONAL_ID: &str =
    "00020101021129370016A000000677010111021311111111111115802TH530376463047B5A";
pub const PROMPTPAY_AMOUNT: &str =
    "00020101021229370016A000000677010111011300660000000005802TH530376454044.226304E469";

/// The SGQR sample payload ("FOOD XYZ PTE LTD"), reproduced in SGQR parsers' test suites
/// (rationally-app/payment-qr-parser): seventeen merchant accounts, 1069 characters.
pub const SGQR_SAMPLE: &str = "00020101021102164761360000000*1704155123456789123451110123456789012153123456789012341531250003440001034450003445311000126330015SG.COM.DASH.WWW0110000005550127670014A00000076200010120COM.LQDPALLIANCE.WWW021512345678901234503020028660011SG.COM.OCBC0147OCBCP2P629A358D-ECE7-4554-AD56-EBD12D84CA7E4F7329500006SG.EZI013603600006-76bb-4a5a-aa1a-fbcb64d6ecf530850013SG.COM.EZLINK01201234567890123456-1230204SGQR0324A123456,B123456,C12345670404A23X31260008COM.GRAB0110A93FO3230Q32390007COM.DBS011012345678900210123456789033900011SG.COM.NETS01230201401832831128823590002150001118703240000308885872010901199084E5DC3D834430017COM.QQ.WEIXIN.PAY011012345678900204123435660010SG.COM.UOB014845D233507F5E8C306E3871A4E9FACA601A80C114B5645E5D36840009SG.PAYNOW010120216+621234567890123030100408209912310525123456789012345678901234537270009SG.AIRPAY0110A11BC0000X51860007SG.SGQR0112180307510317020701.0003030608100604020205031380609Counter010708201804075204581453037025802SG5916FOOD XYZ PTE LTD6009SINGAPORE6106081006626001081234567R0607876543050330015SG.COM.DASH.WWW0110000005550263045E8D";

/// A DuitNow payload (PayNet, Malaysia). DuitNow's specification (PayNet developer docs,
/// v1.5) writes payload format indicator "02", not EMVCo's "01".
pub const DUITNOW: &str = "00020201021126410014A0000006150001010650166402091234567895204999953034585802MY5909QRCSDNBHD6005BANGI6304184A";

/// A PayNow payload (Singapore) for a charity fund, from the test suite of pyPayNowSg.
pub const PAYNOW_CHARITY: &str = "00020101021126400009SG.PAYNOW010120213200002150HWCF030115204000053037025802SG5923NATIONAL HEALTHCARE GRO6009Singapore6304DF3F";

fn text(value: &str) -> Option<Cow<'_, str>> {
    Some(Cow::Borrowed(value))
}

/// The EMVCo example as a model built by hand, in the example's own object order.
pub fn emvco_example_model() -> MerchantPresented<'static> {
    MerchantPresented {
        point_of_initiation: Some(PointOfInitiation::Dynamic),
        merchant_accounts: vec![
            MerchantAccount::Template(Template::new(29, "D15600000000").with(5, "A93FO3230Q")),
            MerchantAccount::Template(Template::new(31, "D15600000001").with(3, "12345678")),
        ],
        merchant_category_code: text("4111"),
        country_code: text("CN"),
        merchant_name: text("BEST TRANSPORT"),
        merchant_city: text("BEIJING"),
        language: Some(LanguageTemplate {
            language_preference: text("ZH"),
            merchant_name: text("最佳运输"),
            merchant_city: text("北京"),
            ..LanguageTemplate::default()
        }),
        transaction_amount: text("23.72"),
        transaction_currency: text("156"),
        tip_or_convenience_indicator: text("01"),
        additional_data: Some(AdditionalData {
            store_label: text("1234"),
            customer_label: text("***"),
            terminal_label: text("A6008667"),
            additional_consumer_data_request: text("ME"),
            ..AdditionalData::default()
        }),
        unreserved: vec![Template::new(91, "A011223344998877").with(7, "12345678")],
        order: vec![1, 29, 31, 52, 58, 59, 60, 64, 54, 53, 55, 62, 91],
        ..MerchantPresented::default()
    }
}

#[test]
fn emvco_example_decodes_field_by_field() {
    let decoded = mpm::decode(EMVCO_EXAMPLE).unwrap();
    let payload = &decoded.payload;
    assert_eq!(
        decoded.warnings,
        vec![],
        "the specification's example conforms"
    );
    assert_eq!(decoded.crc, 0xA13A);
    assert_eq!(payload.payload_format_indicator, "01");
    assert_eq!(
        payload.point_of_initiation,
        Some(PointOfInitiation::Dynamic)
    );
    assert_eq!(payload.merchant_accounts.len(), 2);
    let MerchantAccount::Template(first) = &payload.merchant_accounts[0] else {
        panic!("29 is a template");
    };
    assert_eq!(first.id, 29);
    assert_eq!(first.globally_unique_identifier, "D15600000000");
    assert_eq!(first.field(5), Some("A93FO3230Q"));
    assert_eq!(payload.merchant_category_code.as_deref(), Some("4111"));
    assert_eq!(payload.transaction_currency.as_deref(), Some("156"));
    assert_eq!(payload.transaction_amount.as_deref(), Some("23.72"));
    assert_eq!(payload.tip_or_convenience_indicator.as_deref(), Some("01"));
    assert_eq!(payload.country_code.as_deref(), Some("CN"));
    assert_eq!(payload.merchant_name.as_deref(), Some("BEST TRANSPORT"));
    assert_eq!(payload.merchant_city.as_deref(), Some("BEIJING"));
    let language = payload.language.as_ref().unwrap();
    assert_eq!(language.language_preference.as_deref(), Some("ZH"));
    assert_eq!(language.merchant_name.as_deref(), Some("最佳运输"));
    assert_eq!(language.merchant_city.as_deref(), Some("北京"));
    let additional = payload.additional_data.as_ref().unwrap();
    assert_eq!(additional.store_label.as_deref(), Some("1234"));
    assert_eq!(additional.customer_label.as_deref(), Some("***"));
    assert_eq!(additional.terminal_label.as_deref(), Some("A6008667"));
    assert_eq!(
        additional.additional_consumer_data_request.as_deref(),
        Some("ME")
    );
    assert_eq!(
        payload.unreserved[0].globally_unique_identifier,
        "A011223344998877"
    );
    assert_eq!(payload.unreserved[0].field(7), Some("12345678"));
    assert_eq!(
        payload.order,
        [1, 29, 31, 52, 58, 59, 60, 64, 54, 53, 55, 62, 91]
    );
}

#[test]
fn emvco_example_decoder_borrows_from_the_input() {
    let decoded = mpm::decode(EMVCO_EXAMPLE).unwrap();
    assert!(matches!(
        decoded.payload.merchant_name,
        Some(Cow::Borrowed(_))
    ));
    let language = decoded.payload.language.unwrap();
    assert!(matches!(language.merchant_name, Some(Cow::Borrowed(_))));
}

#[test]
fn emvco_example_encodes_from_a_hand_built_model() {
    assert_eq!(mpm::encode(&emvco_example_model()).unwrap(), EMVCO_EXAMPLE);
}

#[test]
fn emvco_example_round_trips_through_the_model() {
    let decoded = mpm::decode(EMVCO_EXAMPLE).unwrap();
    assert_eq!(decoded.payload, emvco_example_model());
    assert_eq!(mpm::encode(&decoded.payload).unwrap(), EMVCO_EXAMPLE);
}

#[test]
fn pix_static_example_decodes_and_encodes() {
    let decoded = mpm::decode(PIX_BCB_STATIC).unwrap();
    assert_eq!(decoded.warnings, vec![]);
    assert_eq!(decoded.network(), Some(Network::Pix));
    let payload = &decoded.payload;
    let pix = payload.template_by_gui("BR.GOV.BCB.PIX").unwrap();
    assert_eq!(pix.id, 26);
    assert_eq!(pix.field(1), Some("123e4567-e12b-12d1-a456-426655440000"));
    assert_eq!(payload.point_of_initiation, None);
    assert_eq!(payload.merchant_category_code.as_deref(), Some("0000"));
    assert_eq!(payload.transaction_currency.as_deref(), Some("986"));
    assert_eq!(payload.transaction_amount, None);
    assert_eq!(payload.merchant_name.as_deref(), Some("Fulano de Tal"));
    assert_eq!(payload.merchant_city.as_deref(), Some("BRASILIA"));
    assert_eq!(
        payload
            .additional_data
            .as_ref()
            .and_then(|additional| additional.reference_label.as_deref()),
        Some("***")
    );

    // Built by hand with no explicit order: ascending ids is the Pix order too, and the
    // decoder says so with an empty order.
    let model = MerchantPresented {
        merchant_accounts: vec![MerchantAccount::Template(
            Template::new(26, "br.gov.bcb.pix").with(1, "123e4567-e12b-12d1-a456-426655440000"),
        )],
        merchant_category_code: text("0000"),
        transaction_currency: text("986"),
        country_code: text("BR"),
        merchant_name: text("Fulano de Tal"),
        merchant_city: text("BRASILIA"),
        additional_data: Some(AdditionalData {
            reference_label: text("***"),
            ..AdditionalData::default()
        }),
        ..MerchantPresented::default()
    };
    assert_eq!(payload, &model);
    assert_eq!(mpm::encode(&model).unwrap(), PIX_BCB_STATIC);
}

#[test]
fn promptpay_payloads_decode_with_warnings_for_what_promptpay_leaves_out() {
    for (payload, proxy_sub, proxy, amount) in [
        (PROMPTPAY_PHONE, 1, "0066801234567", None),
        (PROMPTPAY_NATIONAL_ID, 2, "1111111111111", None),
        (PROMPTPAY_AMOUNT, 1, "0066000000000", Some("4.22")),
    ] {
        let decoded = mpm::decode(payload).unwrap();
        assert_eq!(decoded.network(), Some(Network::PromptPay), "{payload}");
        let template = decoded.payload.template_by_gui("A000000677010111").unwrap();
        assert_eq!(template.id, 29);
        assert_eq!(template.field(proxy_sub), Some(proxy));
        assert_eq!(decoded.payload.transaction_amount.as_deref(), amount);
        assert_eq!(decoded.payload.transaction_currency.as_deref(), Some("764"));
        assert_eq!(decoded.payload.country_code.as_deref(), Some("TH"));
        let missing: Vec<String> = decoded.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            missing,
            [
                "mandatory merchant category code is missing (object 52)",
                "mandatory merchant name is missing (object 59)",
                "mandatory merchant city is missing (object 60)",
            ]
        );
    }
    let dynamic = mpm::decode(PROMPTPAY_AMOUNT).unwrap();
    assert_eq!(
        dynamic.payload.point_of_initiation,
        Some(PointOfInitiation::Dynamic)
    );
    assert_eq!(dynamic.payload.order, [1, 29, 58, 53, 54]);
}

#[test]
fn sgqr_sample_decodes_all_seventeen_accounts_and_warns_about_its_length() {
    let decoded = mpm::decode(SGQR_SAMPLE).unwrap();
    assert_eq!(decoded.crc, 0x5E8D);
    let payload = &decoded.payload;
    let ids: Vec<u8> = payload
        .merchant_accounts
        .iter()
        .map(MerchantAccount::id)
        .collect();
    assert_eq!(
        ids,
        [2, 4, 11, 12, 15, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 51]
    );
    assert_eq!(
        payload.merchant_account(2),
        Some(&MerchantAccount::Primitive(DataObject::new(
            2,
            "4761360000000*17"
        )))
    );
    let paynow = payload.template_by_gui("SG.PAYNOW").unwrap();
    assert_eq!(paynow.field(2), Some("+621234567890123"));
    assert_eq!(paynow.field(3), Some("0"));
    assert_eq!(paynow.field(4), Some("20991231"));
    let networks: Vec<Network> = decoded.networks().collect();
    assert_eq!(
        networks,
        [
            Network::Visa,
            Network::Mastercard,
            Network::AmericanExpress,
            Network::AmericanExpress,
            Network::UnionPay,
            Network::Nets,
            Network::PayNow,
            Network::Sgqr,
        ]
    );
    assert_eq!(payload.merchant_name.as_deref(), Some("FOOD XYZ PTE LTD"));
    assert_eq!(payload.postal_code.as_deref(), Some("081006"));
    let additional = payload.additional_data.as_ref().unwrap();
    assert_eq!(additional.bill_number.as_deref(), Some("1234567R"));
    assert_eq!(additional.customer_label.as_deref(), Some("8765430"));
    assert_eq!(
        additional.payment_system_specific,
        [DataObject::new(50, "0015SG.COM.DASH.WWW01100000055502")]
    );
    assert_eq!(
        decoded.warnings,
        [mpm::Warning {
            path: None,
            issue: Issue::PayloadTooLong {
                chars: 1069,
                max: 512
            }
        }]
    );
    assert_eq!(
        decoded.warnings[0].to_string(),
        "payload is 1069 characters; the specification allows at most 512"
    );
}

#[test]
fn duitnow_payload_decodes_with_a_warning_for_its_format_indicator() {
    let decoded = mpm::decode(DUITNOW).unwrap();
    assert_eq!(decoded.network(), Some(Network::DuitNow));
    let duitnow = decoded.payload.template_by_gui("A0000006150001").unwrap();
    assert_eq!(duitnow.field(1), Some("501664"));
    assert_eq!(duitnow.field(2), Some("123456789"));
    assert_eq!(decoded.payload.merchant_city.as_deref(), Some("BANGI"));
    assert_eq!(
        decoded.warnings,
        [mpm::Warning {
            path: Some(ObjectPath::top(0)),
            issue: Issue::PayloadFormatIndicator {
                found: "02".to_owned()
            }
        }]
    );
    assert_eq!(
        decoded.warnings[0].to_string(),
        "payload format indicator is \"02\"; this version of the specification writes \"01\" (object 00)"
    );
}

#[test]
fn paynow_payload_decodes() {
    let decoded = mpm::decode(PAYNOW_CHARITY).unwrap();
    assert_eq!(decoded.warnings, vec![]);
    assert_eq!(decoded.network(), Some(Network::PayNow));
    let paynow = decoded.payload.template_by_gui("SG.PAYNOW").unwrap();
    assert_eq!(paynow.field(2), Some("200002150HWCF"));
    assert_eq!(
        decoded.payload.merchant_name.as_deref(),
        Some("NATIONAL HEALTHCARE GRO")
    );
    assert_eq!(mpm::encode(&decoded.payload).unwrap(), PAYNOW_CHARITY);
}
