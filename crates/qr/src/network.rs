//! Well-known payment networks, recognised from the merchant account information of a
//! merchant-presented payload: by id for the card networks EMVCo reserves ids for, by globally
//! unique identifier for national schemes.

use crate::mpm::{MerchantAccount, Template};

/// A payment network a merchant account points to. A hint for routing, not a guarantee: the
/// payload's issuer decides what it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    Visa,
    Mastercard,
    Discover,
    AmericanExpress,
    Jcb,
    UnionPay,
    /// Brazil, Banco Central do Brasil: GUI "br.gov.bcb.pix".
    Pix,
    /// Thailand: application identifiers A000000677010111 (credit transfer) and
    /// A000000677010112 (bill payment).
    PromptPay,
    /// Singapore: GUI "SG.PAYNOW".
    PayNow,
    /// Singapore: the SGQR identifier template, GUI "SG.SGQR".
    Sgqr,
    /// Singapore: GUI "SG.COM.NETS".
    Nets,
    /// Malaysia, PayNet: application identifier A0000006150001.
    DuitNow,
    /// Indonesia: GUI "ID.CO.QRIS.WWW".
    Qris,
    /// Vietnam, NAPAS: application identifier A000000727.
    VietQr,
}

impl Network {
    /// A stable lower-case name for logs and APIs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Visa => "visa",
            Self::Mastercard => "mastercard",
            Self::Discover => "discover",
            Self::AmericanExpress => "american-express",
            Self::Jcb => "jcb",
            Self::UnionPay => "unionpay",
            Self::Pix => "pix",
            Self::PromptPay => "promptpay",
            Self::PayNow => "paynow",
            Self::Sgqr => "sgqr",
            Self::Nets => "nets",
            Self::DuitNow => "duitnow",
            Self::Qris => "qris",
            Self::VietQr => "vietqr",
        }
    }
}

/// Globally unique identifiers, compared ignoring ASCII case (Pix payloads write both
/// "br.gov.bcb.pix" and "BR.GOV.BCB.PIX").
const KNOWN_IDENTIFIERS: [(&str, Network); 9] = [
    ("br.gov.bcb.pix", Network::Pix),
    ("A000000677010111", Network::PromptPay),
    ("A000000677010112", Network::PromptPay),
    ("SG.PAYNOW", Network::PayNow),
    ("SG.SGQR", Network::Sgqr),
    ("SG.COM.NETS", Network::Nets),
    ("A0000006150001", Network::DuitNow),
    ("ID.CO.QRIS.WWW", Network::Qris),
    ("A000000727", Network::VietQr),
];

/// The network a template's globally unique identifier names, if well known.
pub fn network_of_template(template: &Template<'_>) -> Option<Network> {
    let gui = template.globally_unique_identifier.as_ref();
    KNOWN_IDENTIFIERS
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(gui))
        .map(|&(_, network)| network)
}

/// The network a merchant account points to, if well known.
pub fn network_of(account: &MerchantAccount<'_>) -> Option<Network> {
    match account {
        MerchantAccount::Primitive(object) => match object.id {
            2..=3 => Some(Network::Visa),
            4..=5 => Some(Network::Mastercard),
            9..=10 => Some(Network::Discover),
            11..=12 => Some(Network::AmericanExpress),
            13..=14 => Some(Network::Jcb),
            15..=16 => Some(Network::UnionPay),
            _ => None,
        },
        MerchantAccount::Template(template) => network_of_template(template),
    }
}
