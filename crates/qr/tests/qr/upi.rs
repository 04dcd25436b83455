//! UPI links.

use std::borrow::Cow;

use qr::upi::{self, UpiErrorKind};

/// NPCI, "UPI Linking Specifications" version 1.6, implementation sample (hyperlink and QR).
const NPCI_SAMPLE: &str = "upi://pay?pa=nadeem@npci&pn=nadeem%20chinna&mc=0000&tid=cxnkjcnkjdfdvjndkjfvn&tr=4894398cndhcd23&tn=Pay%20to%20mystar%20store&am=10&mam=null&cu=INR&url=https://mystar.com/orderid=9298yw89e8973e87389e78923ue892";

#[test]
fn npci_sample_decodes_into_named_fields() {
    let link = upi::decode(NPCI_SAMPLE).unwrap();
    assert_eq!(link.payee_address, "nadeem@npci");
    assert_eq!(link.payee_name.as_deref(), Some("nadeem chinna"));
    assert_eq!(link.merchant_category_code.as_deref(), Some("0000"));
    assert_eq!(
        link.transaction_id.as_deref(),
        Some("cxnkjcnkjdfdvjndkjfvn")
    );
    assert_eq!(
        link.transaction_reference.as_deref(),
        Some("4894398cndhcd23")
    );
    assert_eq!(
        link.transaction_note.as_deref(),
        Some("Pay to mystar store")
    );
    assert_eq!(link.amount.as_deref(), Some("10"));
    assert_eq!(link.minimum_amount.as_deref(), Some("null"));
    assert_eq!(link.currency.as_deref(), Some("INR"));
    assert_eq!(
        link.url.as_deref(),
        Some("https://mystar.com/orderid=9298yw89e8973e87389e78923ue892")
    );
    assert!(link.other.is_empty());
    assert!(
        matches!(link.payee_address, Cow::Borrowed(_)),
        "no escapes: borrowed"
    );
    assert!(
        matches!(link.payee_name, Some(Cow::Owned(_))),
        "escapes decoded"
    );
}

#[test]
fn unknown_parameters_are_kept_in_order_and_plus_is_a_space() {
    let link =
        upi::decode("UPI://PAY?pa=shop@okbank&pn=Chai+Stall&mode=02&purpose=00&am=25.50").unwrap();
    assert_eq!(link.payee_name.as_deref(), Some("Chai Stall"));
    assert_eq!(link.amount.as_deref(), Some("25.50"));
    assert_eq!(
        link.other,
        [
            (Cow::Borrowed("mode"), Cow::Borrowed("02")),
            (Cow::Borrowed("purpose"), Cow::Borrowed("00"))
        ]
    );
}

#[test]
fn utf8_names_are_percent_decoded() {
    let link = upi::decode("upi://pay?pa=a@b&pn=%E0%A4%9A%E0%A4%BE%E0%A4%AF").unwrap();
    assert_eq!(link.payee_name.as_deref(), Some("चाय"));
}

fn refusal(link: &str) -> String {
    upi::decode(link).unwrap_err().to_string()
}

#[test]
fn refusals() {
    assert_eq!(refusal("upi://pay?pn=Shop"), "missing payee address (pa)");
    assert_eq!(
        refusal("upi://pay?pa=shop"),
        "payee address \"shop\" is not of the form name@handle"
    );
    assert_eq!(
        refusal("upi://pay?pa=a@b&am=1,000"),
        "amount \"1,000\" is not digits with an optional \".\" decimal mark (at character 20)"
    );
    assert_eq!(
        refusal("upi://pay?pa=a@b&am=1&am=2"),
        "parameter \"am\" appears twice (at character 22)"
    );
    assert_eq!(
        refusal("upi://pay?pa=a@b&pn=50%"),
        "invalid percent escape: \"%\" must be followed by two hexadecimal digits (at character 22)"
    );
    assert_eq!(
        refusal("upi://pay?pa=a@b&pn=%FF"),
        "parameter \"pn\" is not UTF-8 once its escapes are decoded (at character 20)"
    );
    assert_eq!(
        refusal("upi://mandate?pa=a@b"),
        "UPI action \"mandate\" is not \"pay\" (at character 6)"
    );
    assert_eq!(
        refusal("http://pay?pa=a@b"),
        "not a UPI link: it does not start with \"upi://\" (at character 0)"
    );
    let many: String = (0..40).map(|index| format!("&k{index}=v")).collect();
    assert_eq!(
        upi::decode(&format!("upi://pay?pa=a@b{many}"))
            .unwrap_err()
            .kind,
        UpiErrorKind::TooManyParameters
    );
}
