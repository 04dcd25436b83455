//! Telling formats apart, and the network hint.

use qr::{
    decode_any, decode_any_with, detect, detect_with, AnyError, AnyPayload, Network,
    PaymentCodePrefix, Recognition, Scheme, TallyPaymentCode,
};

use crate::mpm_vectors::{DUITNOW, EMVCO_EXAMPLE, PIX_BCB_STATIC, PROMPTPAY_PHONE};

const CPM: &str = "hQVDUFYwMWETTwegAAAAVVVVUAhQcm9kdWN0MWETTwegAAAAZmZmUAhQcm9kdWN0MmJJWggSNFZ4kBI0WF8gDkNBUkRIT0xERVIvRU1WXy0IcnVlc2RlZW5kIZ8QBwYBCgMAAACfJghYT9OF+iNLzJ82AgABnzcEbVjvEw==";

#[test]
fn detect_names_each_format() {
    assert_eq!(detect(EMVCO_EXAMPLE), Scheme::EmvMpm);
    assert_eq!(detect(DUITNOW), Scheme::EmvMpm);
    assert_eq!(detect(CPM), Scheme::EmvCpm);
    assert_eq!(detect("upi://pay?pa=a@b"), Scheme::Upi);
    assert_eq!(detect("280123456789012345"), Scheme::TallyPaymentCode);
    assert_eq!(detect("270123456789012345"), Scheme::Unknown);
    assert_eq!(detect("https://example.com"), Scheme::Unknown);
    assert_eq!(detect(""), Scheme::Unknown);
    let names: Vec<&str> = [
        Scheme::EmvMpm,
        Scheme::EmvCpm,
        Scheme::Upi,
        Scheme::TallyPaymentCode,
        Scheme::Unknown,
    ]
    .iter()
    .map(|scheme| scheme.as_str())
    .collect();
    assert_eq!(
        names,
        ["emv-mpm", "emv-cpm", "upi", "tally-payment-code", "unknown"]
    );
}

#[test]
fn the_payment_code_prefix_is_a_parameter() {
    let recognition = Recognition {
        payment_code_prefix: PaymentCodePrefix::new("27").unwrap(),
    };
    assert_eq!(
        detect_with("270123456789012345", &recognition),
        Scheme::TallyPaymentCode
    );
    assert_eq!(
        detect_with("280123456789012345", &recognition),
        Scheme::Unknown
    );
    let Ok(AnyPayload::TallyPaymentCode(code)) =
        decode_any_with("270123456789012345", &recognition)
    else {
        panic!("a payment code with the configured prefix");
    };
    assert_eq!(code.body(), "0123456789012345");
    assert_eq!(
        PaymentCodePrefix::new("2a").unwrap_err().to_string(),
        "payment code prefix \"2a\" is not two digits"
    );
}

#[test]
fn payment_codes_are_validated() {
    let prefix = PaymentCodePrefix::DEFAULT;
    assert_eq!(
        TallyPaymentCode::parse("28012345678901234", prefix)
            .unwrap_err()
            .to_string(),
        "payment code is 17 characters; it must be 18 digits"
    );
    assert_eq!(
        TallyPaymentCode::parse("28012345678901234x", prefix)
            .unwrap_err()
            .to_string(),
        "payment code has 'x' at character 17; it must be all digits"
    );
    assert_eq!(
        decode_any("270123456789012345").unwrap_err().to_string(),
        "tally-payment-code: payment code starts with 27, not the Tally prefix 28"
    );
    assert_eq!(
        decode_any("2801234567890123").unwrap_err().to_string(),
        "tally-payment-code: payment code is 16 characters; it must be 18 digits"
    );
}

#[test]
fn decode_any_says_which_format_it_decoded() {
    for (text, scheme) in [
        (EMVCO_EXAMPLE, Scheme::EmvMpm),
        (CPM, Scheme::EmvCpm),
        ("upi://pay?pa=a@b", Scheme::Upi),
        ("280123456789012345", Scheme::TallyPaymentCode),
    ] {
        assert_eq!(decode_any(text).unwrap().scheme(), scheme);
    }
    let error = decode_any("hello").unwrap_err();
    assert_eq!(error, AnyError::Unrecognized);
    assert_eq!(error.scheme(), Scheme::Unknown);
    let damaged = PIX_BCB_STATIC.replace("1D3D", "FFFF");
    let error = decode_any(&damaged).unwrap_err();
    assert_eq!(error.scheme(), Scheme::EmvMpm);
    assert!(error
        .to_string()
        .starts_with("emv-mpm: CRC mismatch: payload says FFFF, computed 1D3D"));
}

#[test]
fn network_hints_come_from_merchant_accounts() {
    let network = |payload: &str| match decode_any(payload).unwrap() {
        AnyPayload::EmvMpm(decoded) => decoded.network(),
        other => panic!("{other:?}"),
    };
    assert_eq!(network(PIX_BCB_STATIC), Some(Network::Pix));
    assert_eq!(network(PROMPTPAY_PHONE), Some(Network::PromptPay));
    assert_eq!(network(DUITNOW), Some(Network::DuitNow));
    assert_eq!(network(EMVCO_EXAMPLE), None, "its GUIs are placeholders");
    assert_eq!(Network::PromptPay.name(), "promptpay");
}
