//! EMVCo merchant-presented mode: the typed model, the strict encoder and the lenient decoder.
//!
//! A payload is a flat list of data objects, each a two-digit id, a two-digit length counted in
//! characters, and the value. Some objects are templates whose value is itself such a list, one
//! level deep ([`crate::MPM_NESTING_DEPTH_MAX`]). Object 00 comes first, object 63 (the CRC)
//! last; everything else may come in any order, which the model keeps in `order` so that a
//! decoded payload encodes back to the same text.

mod decode;
mod encode;
pub(crate) mod rules;

use std::borrow::Cow;
use std::fmt;

pub use decode::{decode, DecodeError, DecodeErrorKind, Decoded, Position, Warning};
pub use encode::{encode, EncodeError, EncodeErrorKind};
pub use rules::Issue;

/// The ids of the top-level data objects, from the EMVCo specification.
pub mod id {
    use std::ops::RangeInclusive;

    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0;
    pub const POINT_OF_INITIATION_METHOD: u8 = 1;
    /// Card-network merchant identifiers: Visa 02–03, Mastercard 04–05, EMVCo 06–08,
    /// Discover 09–10, Amex 11–12, JCB 13–14, UnionPay 15–16, EMVCo 17–25. Primitive values.
    pub const MERCHANT_ACCOUNT_PRIMITIVE: RangeInclusive<u8> = 2..=25;
    /// Merchant account templates, each with a globally unique identifier at sub-id 00.
    pub const MERCHANT_ACCOUNT_TEMPLATE: RangeInclusive<u8> = 26..=51;
    pub const MERCHANT_CATEGORY_CODE: u8 = 52;
    pub const TRANSACTION_CURRENCY: u8 = 53;
    pub const TRANSACTION_AMOUNT: u8 = 54;
    pub const TIP_OR_CONVENIENCE_INDICATOR: u8 = 55;
    pub const CONVENIENCE_FEE_FIXED: u8 = 56;
    pub const CONVENIENCE_FEE_PERCENTAGE: u8 = 57;
    pub const COUNTRY_CODE: u8 = 58;
    pub const MERCHANT_NAME: u8 = 59;
    pub const MERCHANT_CITY: u8 = 60;
    pub const POSTAL_CODE: u8 = 61;
    pub const ADDITIONAL_DATA: u8 = 62;
    pub const CRC: u8 = 63;
    pub const LANGUAGE_TEMPLATE: u8 = 64;
    /// Reserved for future use by EMVCo; kept as primitive values, in order.
    pub const RESERVED: RangeInclusive<u8> = 65..=79;
    /// Unreserved templates, each with a globally unique identifier at sub-id 00.
    pub const UNRESERVED_TEMPLATE: RangeInclusive<u8> = 80..=99;

    /// Sub-ids of the additional data field template (62).
    pub mod additional {
        use std::ops::RangeInclusive;

        pub const BILL_NUMBER: u8 = 1;
        pub const MOBILE_NUMBER: u8 = 2;
        pub const STORE_LABEL: u8 = 3;
        pub const LOYALTY_NUMBER: u8 = 4;
        pub const REFERENCE_LABEL: u8 = 5;
        pub const CUSTOMER_LABEL: u8 = 6;
        pub const TERMINAL_LABEL: u8 = 7;
        pub const PURPOSE_OF_TRANSACTION: u8 = 8;
        pub const ADDITIONAL_CONSUMER_DATA_REQUEST: u8 = 9;
        pub const MERCHANT_TAX_ID: u8 = 10;
        pub const MERCHANT_CHANNEL: u8 = 11;
        /// Reserved for EMVCo: 12–49 (and 00, which the specification does not assign).
        pub const RESERVED: RangeInclusive<u8> = 12..=49;
        /// Payment system specific templates, kept as raw values: the decoder goes one level
        /// deep only.
        pub const PAYMENT_SYSTEM_SPECIFIC: RangeInclusive<u8> = 50..=99;
    }

    /// Sub-ids of the merchant information language template (64).
    pub mod language {
        use std::ops::RangeInclusive;

        pub const LANGUAGE_PREFERENCE: u8 = 0;
        pub const MERCHANT_NAME: u8 = 1;
        pub const MERCHANT_CITY: u8 = 2;
        pub const RESERVED: RangeInclusive<u8> = 3..=99;
    }

    /// Sub-id of the globally unique identifier in templates 26–51 and 80–99.
    pub const GLOBALLY_UNIQUE_IDENTIFIER: u8 = 0;
}

/// Where a data object sits: a top-level id, and a sub-id inside a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectPath {
    pub id: u8,
    pub sub: Option<u8>,
}

impl ObjectPath {
    pub const fn top(id: u8) -> Self {
        Self { id, sub: None }
    }

    pub const fn sub(id: u8, sub: u8) -> Self {
        Self { id, sub: Some(sub) }
    }
}

impl fmt::Display for ObjectPath {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sub {
            None => write!(formatter, "{:02}", self.id),
            Some(sub) => write!(formatter, "{:02}.{:02}", self.id, sub),
        }
    }
}

/// A primitive data object: an id and its value, exactly as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataObject<'a> {
    pub id: u8,
    pub value: Cow<'a, str>,
}

impl<'a> DataObject<'a> {
    pub fn new(id: u8, value: impl Into<Cow<'a, str>>) -> Self {
        Self {
            id,
            value: value.into(),
        }
    }
}

/// A template with a globally unique identifier (sub-id 00): merchant accounts 26–51 and
/// unreserved templates 80–99.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template<'a> {
    pub id: u8,
    /// Sub-id 00: a reverse domain name, an application identifier or a UUID. Always written
    /// first.
    pub globally_unique_identifier: Cow<'a, str>,
    /// Sub-ids 01–99, in payload order.
    pub fields: Vec<DataObject<'a>>,
}

impl<'a> Template<'a> {
    pub fn new(id: u8, globally_unique_identifier: impl Into<Cow<'a, str>>) -> Self {
        Self {
            id,
            globally_unique_identifier: globally_unique_identifier.into(),
            fields: Vec::new(),
        }
    }

    /// Adds a sub-field (builder style).
    pub fn with(mut self, sub: u8, value: impl Into<Cow<'a, str>>) -> Self {
        self.fields.push(DataObject::new(sub, value));
        self
    }

    /// The value of sub-field `sub`, if present.
    pub fn field(&self, sub: u8) -> Option<&str> {
        self.fields
            .iter()
            .find(|object| object.id == sub)
            .map(|object| object.value.as_ref())
    }
}

/// Merchant account information (ids 02–51).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MerchantAccount<'a> {
    /// Ids 02–25: a card network's merchant identifier.
    Primitive(DataObject<'a>),
    /// Ids 26–51: a template naming its payment system by globally unique identifier.
    Template(Template<'a>),
}

impl MerchantAccount<'_> {
    pub fn id(&self) -> u8 {
        match self {
            Self::Primitive(object) => object.id,
            Self::Template(template) => template.id,
        }
    }
}

/// Point of initiation method (01).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointOfInitiation<'a> {
    /// "11": the same code for many payments.
    Static,
    /// "12": a code for one payment.
    Dynamic,
    /// Any other value, as found by the lenient decoder. The encoder refuses it.
    Other(Cow<'a, str>),
}

impl PointOfInitiation<'_> {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Static => "11",
            Self::Dynamic => "12",
            Self::Other(value) => value,
        }
    }
}

/// Additional data field template (62), sub-fields by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdditionalData<'a> {
    pub bill_number: Option<Cow<'a, str>>,
    pub mobile_number: Option<Cow<'a, str>>,
    pub store_label: Option<Cow<'a, str>>,
    pub loyalty_number: Option<Cow<'a, str>>,
    pub reference_label: Option<Cow<'a, str>>,
    pub customer_label: Option<Cow<'a, str>>,
    pub terminal_label: Option<Cow<'a, str>>,
    pub purpose_of_transaction: Option<Cow<'a, str>>,
    /// Letters "A" (address), "M" (mobile), "E" (e-mail), each at most once.
    pub additional_consumer_data_request: Option<Cow<'a, str>>,
    pub merchant_tax_id: Option<Cow<'a, str>>,
    pub merchant_channel: Option<Cow<'a, str>>,
    /// Sub-ids reserved for EMVCo (00, 12–49), in order.
    pub reserved: Vec<DataObject<'a>>,
    /// Payment system specific templates (50–99), raw, in order.
    pub payment_system_specific: Vec<DataObject<'a>>,
    /// Sub-ids in payload order; empty means ascending order (the decoder leaves it empty
    /// when the payload's order is ascending).
    pub order: Vec<u8>,
}

impl<'a> AdditionalData<'a> {
    /// The named sub-field with sub-id `sub` (01–11).
    pub fn named(&self, sub: u8) -> Option<&Cow<'a, str>> {
        use id::additional::*;
        match sub {
            BILL_NUMBER => self.bill_number.as_ref(),
            MOBILE_NUMBER => self.mobile_number.as_ref(),
            STORE_LABEL => self.store_label.as_ref(),
            LOYALTY_NUMBER => self.loyalty_number.as_ref(),
            REFERENCE_LABEL => self.reference_label.as_ref(),
            CUSTOMER_LABEL => self.customer_label.as_ref(),
            TERMINAL_LABEL => self.terminal_label.as_ref(),
            PURPOSE_OF_TRANSACTION => self.purpose_of_transaction.as_ref(),
            ADDITIONAL_CONSUMER_DATA_REQUEST => self.additional_consumer_data_request.as_ref(),
            MERCHANT_TAX_ID => self.merchant_tax_id.as_ref(),
            MERCHANT_CHANNEL => self.merchant_channel.as_ref(),
            _ => None,
        }
    }

    pub(crate) fn named_slot(&mut self, sub: u8) -> Option<&mut Option<Cow<'a, str>>> {
        use id::additional::*;
        Some(match sub {
            BILL_NUMBER => &mut self.bill_number,
            MOBILE_NUMBER => &mut self.mobile_number,
            STORE_LABEL => &mut self.store_label,
            LOYALTY_NUMBER => &mut self.loyalty_number,
            REFERENCE_LABEL => &mut self.reference_label,
            CUSTOMER_LABEL => &mut self.customer_label,
            TERMINAL_LABEL => &mut self.terminal_label,
            PURPOSE_OF_TRANSACTION => &mut self.purpose_of_transaction,
            ADDITIONAL_CONSUMER_DATA_REQUEST => &mut self.additional_consumer_data_request,
            MERCHANT_TAX_ID => &mut self.merchant_tax_id,
            MERCHANT_CHANNEL => &mut self.merchant_channel,
            _ => return None,
        })
    }
}

/// Merchant information in an alternate language (64).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LanguageTemplate<'a> {
    /// Sub-id 00, ISO 639 two-letter code. Mandatory.
    pub language_preference: Option<Cow<'a, str>>,
    /// Sub-id 01. Mandatory.
    pub merchant_name: Option<Cow<'a, str>>,
    /// Sub-id 02.
    pub merchant_city: Option<Cow<'a, str>>,
    /// Sub-ids 03–99, in order.
    pub reserved: Vec<DataObject<'a>>,
    /// Sub-ids in payload order; empty means ascending order.
    pub order: Vec<u8>,
}

/// A merchant-presented payload. Text fields keep exactly what is written (an amount stays
/// "23.72", a currency stays "156"); the mandatory ones are `Option`s because the lenient
/// decoder accepts payloads without them, and [`encode`] refuses a model that lacks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantPresented<'a> {
    /// 00: "01" in this version of the specification.
    pub payload_format_indicator: Cow<'a, str>,
    /// 01.
    pub point_of_initiation: Option<PointOfInitiation<'a>>,
    /// 02–51, in payload order. At least one.
    pub merchant_accounts: Vec<MerchantAccount<'a>>,
    /// 52: four digits (ISO 18245).
    pub merchant_category_code: Option<Cow<'a, str>>,
    /// 53: three digits (ISO 4217 numeric), kept as written.
    pub transaction_currency: Option<Cow<'a, str>>,
    /// 54: digits with an optional "." decimal mark, at most 13 characters, kept as written.
    pub transaction_amount: Option<Cow<'a, str>>,
    /// 55: "01" prompt for a tip, "02" fixed fee (56), "03" percentage fee (57).
    pub tip_or_convenience_indicator: Option<Cow<'a, str>>,
    /// 56.
    pub convenience_fee_fixed: Option<Cow<'a, str>>,
    /// 57.
    pub convenience_fee_percentage: Option<Cow<'a, str>>,
    /// 58: ISO 3166-1 alpha-2.
    pub country_code: Option<Cow<'a, str>>,
    /// 59: at most 25 characters.
    pub merchant_name: Option<Cow<'a, str>>,
    /// 60: at most 15 characters.
    pub merchant_city: Option<Cow<'a, str>>,
    /// 61: at most 10 characters.
    pub postal_code: Option<Cow<'a, str>>,
    /// 62.
    pub additional_data: Option<AdditionalData<'a>>,
    /// 64.
    pub language: Option<LanguageTemplate<'a>>,
    /// 65–79, reserved for future use, kept in order.
    pub reserved: Vec<DataObject<'a>>,
    /// 80–99, in order.
    pub unreserved: Vec<Template<'a>>,
    /// Top-level ids in payload order, without 00 (always first) and 63 (always last);
    /// empty means ascending order, and the decoder leaves it empty when the payload's order
    /// is ascending. When not empty it must list exactly the objects present. It decides the
    /// order of the encoded objects; `merchant_accounts` and the other lists are kept in
    /// payload order by the decoder.
    pub order: Vec<u8>,
}

impl Default for MerchantPresented<'_> {
    fn default() -> Self {
        Self {
            payload_format_indicator: Cow::Borrowed("01"),
            point_of_initiation: None,
            merchant_accounts: Vec::new(),
            merchant_category_code: None,
            transaction_currency: None,
            transaction_amount: None,
            tip_or_convenience_indicator: None,
            convenience_fee_fixed: None,
            convenience_fee_percentage: None,
            country_code: None,
            merchant_name: None,
            merchant_city: None,
            postal_code: None,
            additional_data: None,
            language: None,
            reserved: Vec::new(),
            unreserved: Vec::new(),
            order: Vec::new(),
        }
    }
}

impl<'a> MerchantPresented<'a> {
    /// The primitive top-level field with id `id` (52–61), if present.
    pub fn field(&self, id: u8) -> Option<&Cow<'a, str>> {
        match id {
            id::MERCHANT_CATEGORY_CODE => self.merchant_category_code.as_ref(),
            id::TRANSACTION_CURRENCY => self.transaction_currency.as_ref(),
            id::TRANSACTION_AMOUNT => self.transaction_amount.as_ref(),
            id::TIP_OR_CONVENIENCE_INDICATOR => self.tip_or_convenience_indicator.as_ref(),
            id::CONVENIENCE_FEE_FIXED => self.convenience_fee_fixed.as_ref(),
            id::CONVENIENCE_FEE_PERCENTAGE => self.convenience_fee_percentage.as_ref(),
            id::COUNTRY_CODE => self.country_code.as_ref(),
            id::MERCHANT_NAME => self.merchant_name.as_ref(),
            id::MERCHANT_CITY => self.merchant_city.as_ref(),
            id::POSTAL_CODE => self.postal_code.as_ref(),
            _ => None,
        }
    }

    pub(crate) fn field_slot(&mut self, id: u8) -> Option<&mut Option<Cow<'a, str>>> {
        Some(match id {
            id::MERCHANT_CATEGORY_CODE => &mut self.merchant_category_code,
            id::TRANSACTION_CURRENCY => &mut self.transaction_currency,
            id::TRANSACTION_AMOUNT => &mut self.transaction_amount,
            id::TIP_OR_CONVENIENCE_INDICATOR => &mut self.tip_or_convenience_indicator,
            id::CONVENIENCE_FEE_FIXED => &mut self.convenience_fee_fixed,
            id::CONVENIENCE_FEE_PERCENTAGE => &mut self.convenience_fee_percentage,
            id::COUNTRY_CODE => &mut self.country_code,
            id::MERCHANT_NAME => &mut self.merchant_name,
            id::MERCHANT_CITY => &mut self.merchant_city,
            id::POSTAL_CODE => &mut self.postal_code,
            _ => return None,
        })
    }

    /// The merchant account with id `id`, if present.
    pub fn merchant_account(&self, id: u8) -> Option<&MerchantAccount<'a>> {
        self.merchant_accounts
            .iter()
            .find(|account| account.id() == id)
    }

    /// The first merchant account template whose globally unique identifier is `gui`
    /// (compared ignoring ASCII case).
    pub fn template_by_gui(&self, gui: &str) -> Option<&Template<'a>> {
        self.merchant_accounts
            .iter()
            .find_map(|account| match account {
                MerchantAccount::Template(template)
                    if template
                        .globally_unique_identifier
                        .eq_ignore_ascii_case(gui) =>
                {
                    Some(template)
                }
                _ => None,
            })
    }
}
