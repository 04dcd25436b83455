//! The field rules of the EMVCo merchant-presented specification, in one place. The encoder
//! refuses a model that breaks any of them; the decoder reports each one it finds as a warning.

use super::{id, MerchantAccount, MerchantPresented, ObjectPath, PointOfInitiation, Template};
use crate::{MPM_GUI_CHARS_MAX, MPM_PAYLOAD_CHARS_MAX, MPM_VALUE_CHARS_MAX};

/// A rule of the specification that a payload or model breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Issue {
    #[error(
        "payload format indicator is {found:?}; this version of the specification writes \"01\""
    )]
    PayloadFormatIndicator { found: String },
    #[error(
        "point of initiation method is {found:?}, neither \"11\" (static) nor \"12\" (dynamic)"
    )]
    PointOfInitiation { found: String },
    #[error("mandatory {name} is missing")]
    Missing { name: &'static str },
    #[error("no merchant account information (ids 02–51)")]
    NoMerchantAccount,
    #[error("{name} is empty; lengths run from 01 to 99")]
    Empty { name: &'static str },
    #[error("{name} is {actual} characters; at most {max} allowed")]
    TooLong {
        name: &'static str,
        max: usize,
        actual: usize,
    },
    #[error("{name} is {actual} characters; it must be exactly {expected}")]
    WrongLength {
        name: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("{name} {value:?} is not {expected}")]
    Format {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{name} contains a control character")]
    ControlCharacter { name: &'static str },
    #[error("template has no globally unique identifier (sub-id 00)")]
    MissingGloballyUniqueIdentifier,
    #[error("{detail}")]
    ConvenienceFee { detail: &'static str },
    #[error("the globally unique identifier (sub-id 00) is not the first sub-field")]
    GloballyUniqueIdentifierNotFirst,
    #[error("CRC is written in lower case; the specification writes upper-case hexadecimal")]
    LowerCaseCrc,
    #[error("payload is {chars} characters; the specification allows at most {max}")]
    PayloadTooLong { chars: usize, max: usize },
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Format {
    /// Any characters except control characters.
    Text,
    /// ASCII digits.
    Digits,
    /// Digits with an optional "." and more digits: "23.72", "10".
    Amount,
    /// An amount from 00.01 to 99.99.
    Percentage,
    /// ASCII letters (ISO 639 language codes; EMVCo's own example writes "ZH").
    Letters,
    /// Upper-case ASCII letters (ISO 3166-1 alpha-2).
    UpperLetters,
    /// "A", "M" and "E", each at most once.
    ConsumerDataRequest,
    /// One of the listed values.
    OneOf(&'static [&'static str]),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    pub name: &'static str,
    pub min_chars: usize,
    pub max_chars: usize,
    pub format: Format,
}

const fn rule(name: &'static str, min_chars: usize, max_chars: usize, format: Format) -> Rule {
    assert!(min_chars <= max_chars);
    assert!(max_chars <= MPM_VALUE_CHARS_MAX);
    Rule {
        name,
        min_chars,
        max_chars,
        format,
    }
}

const MERCHANT_NAME_CHARS_MAX: usize = 25;
const MERCHANT_CITY_CHARS_MAX: usize = 15;
const AMOUNT_CHARS_MAX: usize = 13;
const ADDITIONAL_FIELD_CHARS_MAX: usize = 25;

pub(crate) const GLOBALLY_UNIQUE_IDENTIFIER: Rule = rule(
    "globally unique identifier",
    1,
    MPM_GUI_CHARS_MAX,
    Format::Text,
);
pub(crate) const TEMPLATE_FIELD: Rule =
    rule("template field", 1, MPM_VALUE_CHARS_MAX, Format::Text);

/// The rule of top-level object `id`, for primitive objects. The rules are constants
/// (`const` blocks): the decoder looks one up for every field of every payload.
pub(crate) fn top_rule(object_id: u8) -> Rule {
    match object_id {
        id::PAYLOAD_FORMAT_INDICATOR => {
            const { rule("payload format indicator", 2, 2, Format::Digits) }
        }
        id::POINT_OF_INITIATION_METHOD => {
            const {
                rule(
                    "point of initiation method",
                    2,
                    2,
                    Format::OneOf(&["11", "12"]),
                )
            }
        }
        id::MERCHANT_CATEGORY_CODE => {
            const { rule("merchant category code", 4, 4, Format::Digits) }
        }
        id::TRANSACTION_CURRENCY => const { rule("transaction currency", 3, 3, Format::Digits) },
        id::TRANSACTION_AMOUNT => {
            const { rule("transaction amount", 1, AMOUNT_CHARS_MAX, Format::Amount) }
        }
        id::TIP_OR_CONVENIENCE_INDICATOR => {
            const {
                rule(
                    "tip or convenience indicator",
                    2,
                    2,
                    Format::OneOf(&["01", "02", "03"]),
                )
            }
        }
        id::CONVENIENCE_FEE_FIXED => {
            const { rule("fixed convenience fee", 1, AMOUNT_CHARS_MAX, Format::Amount) }
        }
        id::CONVENIENCE_FEE_PERCENTAGE => {
            const { rule("convenience fee percentage", 1, 5, Format::Percentage) }
        }
        id::COUNTRY_CODE => const { rule("country code", 2, 2, Format::UpperLetters) },
        id::MERCHANT_NAME => {
            const { rule("merchant name", 1, MERCHANT_NAME_CHARS_MAX, Format::Text) }
        }
        id::MERCHANT_CITY => {
            const { rule("merchant city", 1, MERCHANT_CITY_CHARS_MAX, Format::Text) }
        }
        id::POSTAL_CODE => const { rule("postal code", 1, 10, Format::Text) },
        2..=25 => {
            const {
                rule(
                    "merchant account information",
                    1,
                    MPM_VALUE_CHARS_MAX,
                    Format::Text,
                )
            }
        }
        _ => const { rule("reserved data object", 1, MPM_VALUE_CHARS_MAX, Format::Text) },
    }
}

/// The rule of sub-field `sub` of the additional data field template (62).
pub(crate) fn additional_rule(sub: u8) -> Rule {
    use id::additional::*;
    match sub {
        BILL_NUMBER => const { rule("bill number", 1, ADDITIONAL_FIELD_CHARS_MAX, Format::Text) },
        MOBILE_NUMBER => {
            const { rule("mobile number", 1, ADDITIONAL_FIELD_CHARS_MAX, Format::Text) }
        }
        STORE_LABEL => const { rule("store label", 1, ADDITIONAL_FIELD_CHARS_MAX, Format::Text) },
        LOYALTY_NUMBER => {
            const {
                rule(
                    "loyalty number",
                    1,
                    ADDITIONAL_FIELD_CHARS_MAX,
                    Format::Text,
                )
            }
        }
        REFERENCE_LABEL => {
            const {
                rule(
                    "reference label",
                    1,
                    ADDITIONAL_FIELD_CHARS_MAX,
                    Format::Text,
                )
            }
        }
        CUSTOMER_LABEL => {
            const {
                rule(
                    "customer label",
                    1,
                    ADDITIONAL_FIELD_CHARS_MAX,
                    Format::Text,
                )
            }
        }
        TERMINAL_LABEL => {
            const {
                rule(
                    "terminal label",
                    1,
                    ADDITIONAL_FIELD_CHARS_MAX,
                    Format::Text,
                )
            }
        }
        PURPOSE_OF_TRANSACTION => {
            const {
                rule(
                    "purpose of transaction",
                    1,
                    ADDITIONAL_FIELD_CHARS_MAX,
                    Format::Text,
                )
            }
        }
        ADDITIONAL_CONSUMER_DATA_REQUEST => {
            const {
                rule(
                    "additional consumer data request",
                    1,
                    3,
                    Format::ConsumerDataRequest,
                )
            }
        }
        MERCHANT_TAX_ID => const { rule("merchant tax id", 1, 20, Format::Text) },
        MERCHANT_CHANNEL => const { rule("merchant channel", 3, 3, Format::Text) },
        50..=99 => {
            const {
                rule(
                    "payment system specific template",
                    1,
                    MPM_VALUE_CHARS_MAX,
                    Format::Text,
                )
            }
        }
        _ => {
            const {
                rule(
                    "reserved additional data field",
                    1,
                    MPM_VALUE_CHARS_MAX,
                    Format::Text,
                )
            }
        }
    }
}

/// The rule of sub-field `sub` of the merchant information language template (64).
pub(crate) fn language_rule(sub: u8) -> Rule {
    use id::language::*;
    match sub {
        LANGUAGE_PREFERENCE => const { rule("language preference", 2, 2, Format::Letters) },
        MERCHANT_NAME => {
            const {
                rule(
                    "alternate merchant name",
                    1,
                    MERCHANT_NAME_CHARS_MAX,
                    Format::Text,
                )
            }
        }
        MERCHANT_CITY => {
            const {
                rule(
                    "alternate merchant city",
                    1,
                    MERCHANT_CITY_CHARS_MAX,
                    Format::Text,
                )
            }
        }
        _ => {
            const {
                rule(
                    "reserved language template field",
                    1,
                    MPM_VALUE_CHARS_MAX,
                    Format::Text,
                )
            }
        }
    }
}

/// Number of characters: lengths in a merchant-presented payload count characters, not bytes.
pub(crate) fn char_count(value: &str) -> usize {
    if value.is_ascii() {
        value.len()
    } else {
        value.chars().count()
    }
}

fn is_amount(value: &str) -> bool {
    let (whole, fraction) = match value.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (value, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit());
    digits(whole) && fraction.is_none_or(digits)
}

fn is_percentage(value: &str) -> bool {
    if !is_amount(value) {
        return false;
    }
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    whole.len() <= 2 && fraction.len() <= 2 && value.bytes().any(|byte| matches!(byte, b'1'..=b'9'))
}

fn is_consumer_data_request(value: &str) -> bool {
    let mut seen = [false; 3];
    value.bytes().all(|byte| {
        let slot = match byte {
            b'A' => 0,
            b'M' => 1,
            b'E' => 2,
            _ => return false,
        };
        !std::mem::replace(&mut seen[slot], true)
    })
}

/// How a value breaks its rule, small enough to come back in registers: the decoder checks
/// every field of every payload, and almost all of them pass.
#[derive(Debug, Clone, Copy)]
enum Problem {
    Empty,
    WrongLength(usize),
    TooLong(usize),
    ControlCharacter,
    Format(&'static str),
}

fn find_problem(value: &str, rule: &Rule) -> Result<(), Problem> {
    // The common case, printable ASCII, in one branch-free pass that the compiler can
    // vectorise: then characters are bytes and there is no control character.
    let printable = value.bytes().fold(true, |printable, byte| {
        printable & (byte.wrapping_sub(0x20) < 0x5F)
    });
    let chars = if printable {
        value.len()
    } else {
        value.chars().count()
    };
    if chars == 0 {
        return Err(Problem::Empty);
    }
    if rule.min_chars == rule.max_chars && chars != rule.min_chars {
        return Err(Problem::WrongLength(chars));
    }
    if chars > rule.max_chars {
        return Err(Problem::TooLong(chars));
    }
    if !printable && value.chars().any(char::is_control) {
        return Err(Problem::ControlCharacter);
    }
    let (valid, expected) = match rule.format {
        Format::Text => return Ok(()),
        Format::Digits => (
            value.bytes().all(|byte| byte.is_ascii_digit()),
            "all digits",
        ),
        Format::Amount => (
            is_amount(value),
            "digits with an optional \".\" decimal mark",
        ),
        Format::Percentage => (is_percentage(value), "a percentage from 00.01 to 99.99"),
        Format::Letters => (
            value.bytes().all(|byte| byte.is_ascii_alphabetic()),
            "letters",
        ),
        Format::UpperLetters => (
            value.bytes().all(|byte| byte.is_ascii_uppercase()),
            "upper-case letters",
        ),
        Format::ConsumerDataRequest => (
            is_consumer_data_request(value),
            "made of \"A\", \"M\" and \"E\", each at most once",
        ),
        Format::OneOf(allowed) => (allowed.contains(&value), "one of the defined values"),
    };
    if valid {
        Ok(())
    } else {
        Err(Problem::Format(expected))
    }
}

/// The first way `value` breaks `rule`, if any.
pub(crate) fn check(value: &str, rule: &Rule) -> Option<Issue> {
    let problem = find_problem(value, rule).err()?;
    let name = rule.name;
    Some(match problem {
        Problem::Empty => Issue::Empty { name },
        Problem::WrongLength(actual) => Issue::WrongLength {
            name,
            expected: rule.min_chars,
            actual,
        },
        Problem::TooLong(actual) => Issue::TooLong {
            name,
            max: rule.max_chars,
            actual,
        },
        Problem::ControlCharacter => Issue::ControlCharacter { name },
        Problem::Format(expected) => Issue::Format {
            name,
            value: value.to_owned(),
            expected,
        },
    })
}

/// Reports every rule the model breaks, in payload order of the objects concerned. Id ranges,
/// duplicates and `order` are the encoder's business: a decoded model cannot break them.
pub(crate) fn inspect(
    model: &MerchantPresented<'_>,
    report: &mut dyn FnMut(Option<ObjectPath>, Issue),
) {
    if model.payload_format_indicator != "01" {
        report(
            Some(ObjectPath::top(id::PAYLOAD_FORMAT_INDICATOR)),
            Issue::PayloadFormatIndicator {
                found: model.payload_format_indicator.to_string(),
            },
        );
    }
    if let Some(PointOfInitiation::Other(found)) = &model.point_of_initiation {
        report(
            Some(ObjectPath::top(id::POINT_OF_INITIATION_METHOD)),
            Issue::PointOfInitiation {
                found: found.to_string(),
            },
        );
    }
    if model.merchant_accounts.is_empty() {
        report(None, Issue::NoMerchantAccount);
    }
    for account in &model.merchant_accounts {
        match account {
            MerchantAccount::Primitive(object) => {
                if let Some(issue) = check(&object.value, &top_rule(object.id)) {
                    report(Some(ObjectPath::top(object.id)), issue);
                }
            }
            MerchantAccount::Template(template) => inspect_template(template, report),
        }
    }
    for (object_id, name) in [
        (id::MERCHANT_CATEGORY_CODE, "merchant category code"),
        (id::TRANSACTION_CURRENCY, "transaction currency"),
        (id::COUNTRY_CODE, "country code"),
        (id::MERCHANT_NAME, "merchant name"),
        (id::MERCHANT_CITY, "merchant city"),
    ] {
        if model.field(object_id).is_none() {
            report(Some(ObjectPath::top(object_id)), Issue::Missing { name });
        }
    }
    for object_id in id::MERCHANT_CATEGORY_CODE..=id::POSTAL_CODE {
        if let Some(value) = model.field(object_id) {
            if let Some(issue) = check(value, &top_rule(object_id)) {
                report(Some(ObjectPath::top(object_id)), issue);
            }
        }
    }
    inspect_convenience_fee(model, report);
    if let Some(additional) = &model.additional_data {
        let named =
            (1..=id::additional::MERCHANT_CHANNEL).any(|sub| additional.named(sub).is_some());
        if !named && additional.reserved.is_empty() && additional.payment_system_specific.is_empty()
        {
            report(
                Some(ObjectPath::top(id::ADDITIONAL_DATA)),
                Issue::Empty {
                    name: "additional data field template",
                },
            );
        }
        for sub in 1..=id::additional::MERCHANT_CHANNEL {
            if let Some(value) = additional.named(sub) {
                if let Some(issue) = check(value, &additional_rule(sub)) {
                    report(Some(ObjectPath::sub(id::ADDITIONAL_DATA, sub)), issue);
                }
            }
        }
        for object in additional
            .reserved
            .iter()
            .chain(&additional.payment_system_specific)
        {
            if let Some(issue) = check(&object.value, &additional_rule(object.id)) {
                report(Some(ObjectPath::sub(id::ADDITIONAL_DATA, object.id)), issue);
            }
        }
    }
    if let Some(language) = &model.language {
        use id::language::*;
        let named = [
            (LANGUAGE_PREFERENCE, &language.language_preference, true),
            (MERCHANT_NAME, &language.merchant_name, true),
            (MERCHANT_CITY, &language.merchant_city, false),
        ];
        for (sub, value, mandatory) in named {
            let path = Some(ObjectPath::sub(id::LANGUAGE_TEMPLATE, sub));
            match value {
                Some(value) => {
                    if let Some(issue) = check(value, &language_rule(sub)) {
                        report(path, issue);
                    }
                }
                None if mandatory => report(
                    path,
                    Issue::Missing {
                        name: language_rule(sub).name,
                    },
                ),
                None => {}
            }
        }
        for object in &language.reserved {
            if let Some(issue) = check(&object.value, &language_rule(object.id)) {
                report(
                    Some(ObjectPath::sub(id::LANGUAGE_TEMPLATE, object.id)),
                    issue,
                );
            }
        }
    }
    for object in &model.reserved {
        if let Some(issue) = check(&object.value, &top_rule(object.id)) {
            report(Some(ObjectPath::top(object.id)), issue);
        }
    }
    for template in &model.unreserved {
        inspect_template(template, report);
    }
}

fn inspect_template(template: &Template<'_>, report: &mut dyn FnMut(Option<ObjectPath>, Issue)) {
    let gui_path = Some(ObjectPath::sub(template.id, id::GLOBALLY_UNIQUE_IDENTIFIER));
    if template.globally_unique_identifier.is_empty() {
        report(gui_path, Issue::MissingGloballyUniqueIdentifier);
    } else if let Some(issue) = check(
        &template.globally_unique_identifier,
        &GLOBALLY_UNIQUE_IDENTIFIER,
    ) {
        report(gui_path, issue);
    }
    for field in &template.fields {
        if let Some(issue) = check(&field.value, &TEMPLATE_FIELD) {
            report(Some(ObjectPath::sub(template.id, field.id)), issue);
        }
    }
}

fn inspect_convenience_fee(
    model: &MerchantPresented<'_>,
    report: &mut dyn FnMut(Option<ObjectPath>, Issue),
) {
    let indicator = model.tip_or_convenience_indicator.as_deref();
    let checks = [
        (
            indicator == Some("02") && model.convenience_fee_fixed.is_none(),
            id::CONVENIENCE_FEE_FIXED,
            "tip or convenience indicator 02 needs a fixed convenience fee (56)",
        ),
        (
            indicator == Some("03") && model.convenience_fee_percentage.is_none(),
            id::CONVENIENCE_FEE_PERCENTAGE,
            "tip or convenience indicator 03 needs a convenience fee percentage (57)",
        ),
        (
            indicator != Some("02") && model.convenience_fee_fixed.is_some(),
            id::CONVENIENCE_FEE_FIXED,
            "a fixed convenience fee (56) needs tip or convenience indicator 02",
        ),
        (
            indicator != Some("03") && model.convenience_fee_percentage.is_some(),
            id::CONVENIENCE_FEE_PERCENTAGE,
            "a convenience fee percentage (57) needs tip or convenience indicator 03",
        ),
    ];
    for (broken, object_id, detail) in checks {
        if broken {
            report(
                Some(ObjectPath::top(object_id)),
                Issue::ConvenienceFee { detail },
            );
        }
    }
}

/// Payload-level rule: at most [`MPM_PAYLOAD_CHARS_MAX`] characters.
pub(crate) fn check_payload_chars(chars: usize) -> Option<Issue> {
    (chars > MPM_PAYLOAD_CHARS_MAX).then_some(Issue::PayloadTooLong {
        chars,
        max: MPM_PAYLOAD_CHARS_MAX,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        for good in ["1", "23.72", "0.5", "1000000000.00"] {
            assert!(is_amount(good), "{good}");
        }
        for bad in ["", ".", "1.", ".5", "1,00", "1.2.3", "-1", "1e3", " 1"] {
            assert!(!is_amount(bad), "{bad}");
        }
    }

    #[test]
    fn percentages() {
        for good in ["3", "00.01", "99.99", "3.5"] {
            assert!(is_percentage(good), "{good}");
        }
        for bad in ["0", "00.00", "100", "3.555", "x"] {
            assert!(!is_percentage(bad), "{bad}");
        }
    }

    #[test]
    fn consumer_data_requests() {
        assert!(is_consumer_data_request("AME"));
        assert!(is_consumer_data_request("ME"));
        assert!(!is_consumer_data_request("MM"));
        assert!(!is_consumer_data_request("X"));
    }

    #[test]
    fn checks_report_the_first_problem() {
        let city = top_rule(id::MERCHANT_CITY);
        assert_eq!(check("BEIJING", &city), None);
        assert_eq!(
            check("A CITY FAR TOO LONG", &city),
            Some(Issue::TooLong {
                name: "merchant city",
                max: 15,
                actual: 19
            })
        );
        assert_eq!(
            check("北京", &city),
            None,
            "two characters, six bytes: lengths count characters"
        );
        assert_eq!(
            check("1234", &top_rule(id::TRANSACTION_CURRENCY)),
            Some(Issue::WrongLength {
                name: "transaction currency",
                expected: 3,
                actual: 4
            })
        );
        assert_eq!(
            check("br", &top_rule(id::COUNTRY_CODE)).map(|issue| issue.to_string()),
            Some("country code \"br\" is not upper-case letters".to_owned())
        );
        assert_eq!(
            check("A\nB", &top_rule(id::MERCHANT_NAME)),
            Some(Issue::ControlCharacter {
                name: "merchant name"
            })
        );
    }
}
