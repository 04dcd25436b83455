//! Generators of valid models, for the property tests.

use std::borrow::Cow;

use proptest::collection::{btree_set, vec};
use proptest::prelude::*;
use proptest::sample::select;

use qr::cpm::{tag, BerObject, ConsumerPresented, CpmTemplate, Tag};
use qr::mpm::{
    AdditionalData, DataObject, LanguageTemplate, MerchantAccount, MerchantPresented,
    PointOfInitiation, Template,
};

/// Characters of generated text: printable ASCII and a few multi-byte characters, because
/// lengths count characters and the CRC counts bytes.
const CHARACTERS: &[char] = &[
    ' ', '*', '-', '.', '/', '0', '1', '7', '9', '@', 'A', 'B', 'M', 'Z', 'a', 'q', 'z', '~', 'é',
    'Ã', 'ß', '€', '北', '京', 'ü',
];

fn text(min: usize, max: usize) -> impl Strategy<Value = Cow<'static, str>> {
    vec(select(CHARACTERS), min..=max).prop_map(|chars| Cow::Owned(chars.into_iter().collect()))
}

fn digits(count: usize) -> impl Strategy<Value = Cow<'static, str>> {
    vec(select(&['0', '1', '2', '5', '8', '9'][..]), count)
        .prop_map(|chars| Cow::Owned(chars.into_iter().collect()))
}

fn amount() -> impl Strategy<Value = Cow<'static, str>> {
    (1usize..=8, prop::option::of(1usize..=3)).prop_flat_map(|(whole, fraction)| {
        (
            digits(whole),
            prop::option::of(digits(fraction.unwrap_or(1))),
        )
            .prop_map(move |(whole, fraction)| match (fraction, whole) {
                (Some(fraction), whole) => Cow::Owned(format!("{whole}.{fraction}")),
                (None, whole) => whole,
            })
    })
}

fn upper(count: usize) -> impl Strategy<Value = Cow<'static, str>> {
    vec(select(&['A', 'B', 'R', 'S', 'G', 'T', 'H', 'Z'][..]), count)
        .prop_map(|chars| Cow::Owned(chars.into_iter().collect()))
}

/// Sorts `ids` by a random key: a random order of the objects present.
/// An ascending order is written as an empty list, as the decoder does.
fn shuffled(mut ids: Vec<u8>, keys: &[u32]) -> Vec<u8> {
    ids.sort_by_key(|&id| keys[usize::from(id)]);
    if ids.windows(2).all(|pair| pair[0] < pair[1]) {
        ids.clear();
    }
    ids
}

fn template(id: u8) -> impl Strategy<Value = Template<'static>> {
    (text(1, 32), btree_set(1u8..=99, 0..=2), vec(text(1, 20), 2)).prop_map(
        move |(gui, subs, values)| Template {
            id,
            globally_unique_identifier: gui,
            fields: subs
                .into_iter()
                .zip(values)
                .map(|(sub, value)| DataObject { id: sub, value })
                .collect(),
        },
    )
}

fn merchant_accounts() -> impl Strategy<Value = Vec<MerchantAccount<'static>>> {
    btree_set(2u8..=51, 1..=3).prop_flat_map(|ids| {
        ids.into_iter()
            .map(|id| {
                if id <= 25 {
                    text(1, 30)
                        .prop_map(move |value| MerchantAccount::Primitive(DataObject { id, value }))
                        .boxed()
                } else {
                    template(id).prop_map(MerchantAccount::Template).boxed()
                }
            })
            .collect::<Vec<_>>()
    })
}

fn additional_data() -> impl Strategy<Value = AdditionalData<'static>> {
    (
        btree_set(1u8..=11, 0..=3),
        vec(text(1, 18), 3),
        select(&["A", "M", "E", "AME", "ME", "EA"][..]),
        text(3, 3),
        prop::option::of((12u8..=49, text(1, 10))),
        prop::option::of((50u8..=99, text(1, 10))),
        vec(any::<u32>(), 100),
    )
        .prop_filter(
            "a template holds at least one field",
            |(subs, _, _, _, reserved, specific, _)| {
                !subs.is_empty() || reserved.is_some() || specific.is_some()
            },
        )
        .prop_map(
            |(subs, values, request, channel, reserved, specific, keys)| {
                let mut additional = AdditionalData::default();
                for (sub, value) in subs.iter().zip(values) {
                    let value = match sub {
                        9 => Cow::Borrowed(request),
                        11 => channel.clone(),
                        _ => value,
                    };
                    *named_slot(&mut additional, *sub) = Some(value);
                }
                let mut present: Vec<u8> = subs.into_iter().collect();
                if let Some((id, value)) = reserved {
                    additional.reserved.push(DataObject { id, value });
                    present.push(id);
                }
                if let Some((id, value)) = specific {
                    additional
                        .payment_system_specific
                        .push(DataObject { id, value });
                    present.push(id);
                }
                additional.order = shuffled(present, &keys);
                additional
            },
        )
}

fn named_slot<'m>(
    additional: &'m mut AdditionalData<'static>,
    sub: u8,
) -> &'m mut Option<Cow<'static, str>> {
    match sub {
        1 => &mut additional.bill_number,
        2 => &mut additional.mobile_number,
        3 => &mut additional.store_label,
        4 => &mut additional.loyalty_number,
        5 => &mut additional.reference_label,
        6 => &mut additional.customer_label,
        7 => &mut additional.terminal_label,
        8 => &mut additional.purpose_of_transaction,
        9 => &mut additional.additional_consumer_data_request,
        10 => &mut additional.merchant_tax_id,
        _ => &mut additional.merchant_channel,
    }
}

fn language() -> impl Strategy<Value = LanguageTemplate<'static>> {
    (
        select(&["ZH", "th", "pt", "Ja"][..]),
        text(1, 25),
        prop::option::of(text(1, 15)),
        prop::option::of((3u8..=99, text(1, 10))),
        vec(any::<u32>(), 100),
    )
        .prop_map(|(preference, name, city, reserved, keys)| {
            let mut present = vec![0, 1];
            if city.is_some() {
                present.push(2);
            }
            let reserved: Vec<DataObject<'static>> = reserved
                .map(|(id, value)| DataObject { id, value })
                .into_iter()
                .collect();
            present.extend(reserved.iter().map(|object| object.id));
            LanguageTemplate {
                language_preference: Some(Cow::Borrowed(preference)),
                merchant_name: Some(name),
                merchant_city: city,
                reserved,
                order: shuffled(present, &keys),
            }
        })
}

/// Tip or convenience indicator with the fee it needs.
type Fees = (
    Option<Cow<'static, str>>,
    Option<Cow<'static, str>>,
    Option<Cow<'static, str>>,
);

fn fees() -> impl Strategy<Value = Fees> {
    prop_oneof![
        Just((None, None, None)),
        Just((Some(Cow::Borrowed("01")), None, None)),
        amount().prop_map(|fee| (Some(Cow::Borrowed("02")), Some(fee), None)),
        select(&["3", "3.5", "00.01", "99.99", "12.5"][..]).prop_map(|percentage| (
            Some(Cow::Borrowed("03")),
            None,
            Some(Cow::Borrowed(percentage))
        )),
    ]
}

/// Valid merchant-presented models with an explicit random object order. Some encode to more
/// than 512 characters; the tests skip those.
pub fn merchant_presented() -> impl Strategy<Value = MerchantPresented<'static>> {
    (
        (
            prop::option::of(prop_oneof![
                Just(PointOfInitiation::Static),
                Just(PointOfInitiation::Dynamic)
            ]),
            merchant_accounts(),
            digits(4),
            digits(3),
            prop::option::of(amount()),
            fees(),
            upper(2),
            text(1, 25),
            text(1, 15),
            prop::option::of(text(1, 10)),
        ),
        (
            prop::option::of(additional_data()),
            prop::option::of(language()),
            prop::option::of((65u8..=79, text(1, 20))),
            prop::option::of((80u8..=99).prop_flat_map(template)),
            vec(any::<u32>(), 100),
        ),
    )
        .prop_map(
            |(
                (point, accounts, category, currency, amount, fees, country, name, city, postal),
                (additional, language, reserved, unreserved, keys),
            )| {
                let mut model = MerchantPresented {
                    point_of_initiation: point,
                    merchant_accounts: accounts,
                    merchant_category_code: Some(category),
                    transaction_currency: Some(currency),
                    transaction_amount: amount,
                    tip_or_convenience_indicator: fees.0,
                    convenience_fee_fixed: fees.1,
                    convenience_fee_percentage: fees.2,
                    country_code: Some(country),
                    merchant_name: Some(name),
                    merchant_city: Some(city),
                    postal_code: postal,
                    additional_data: additional,
                    language,
                    reserved: reserved
                        .map(|(id, value)| DataObject { id, value })
                        .into_iter()
                        .collect(),
                    unreserved: unreserved.into_iter().collect(),
                    ..MerchantPresented::default()
                };
                let mut present = Vec::new();
                if model.point_of_initiation.is_some() {
                    present.push(1);
                }
                present.extend(model.merchant_accounts.iter().map(MerchantAccount::id));
                present.extend((52..=61).filter(|&id| model.field(id).is_some()));
                if model.additional_data.is_some() {
                    present.push(62);
                }
                if model.language.is_some() {
                    present.push(64);
                }
                present.extend(model.reserved.iter().map(|object| object.id));
                present.extend(model.unreserved.iter().map(|template| template.id));
                model.order = shuffled(present, &keys);
                // The decoder lists merchant accounts in payload order.
                let position = |id: u8| model.order.iter().position(|&listed| listed == id);
                // (An empty order is ascending, and the accounts came sorted.)
                let mut accounts = std::mem::take(&mut model.merchant_accounts);
                accounts.sort_by_key(|account| position(account.id()));
                model.merchant_accounts = accounts;
                model
            },
        )
}

fn bytes(min: usize, max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), min..=max)
}

const APPLICATION_TAGS: &[Tag] = &[
    tag::TRACK_2_EQUIVALENT_DATA,
    tag::APPLICATION_PAN,
    tag::CARDHOLDER_NAME,
    tag::ISSUER_URL,
    tag::APPLICATION_VERSION_NUMBER,
    tag::TOKEN_REQUESTOR_ID,
    tag::PAYMENT_ACCOUNT_REFERENCE,
    tag::LAST_4_DIGITS_OF_PAN,
];

const TRANSPARENT_TAGS: &[Tag] = &[
    tag::APPLICATION_INTERCHANGE_PROFILE,
    tag::ISSUER_APPLICATION_DATA,
    tag::APPLICATION_CRYPTOGRAM,
    tag::CRYPTOGRAM_INFORMATION_DATA,
    tag::APPLICATION_TRANSACTION_COUNTER,
    tag::UNPREDICTABLE_NUMBER,
];

fn objects(tags: &'static [Tag], max: usize) -> impl Strategy<Value = Vec<BerObject>> {
    // Values up to 200 bytes exercise the long length form (0x81).
    prop::sample::subsequence(tags, 0..=max).prop_flat_map(|tags| {
        tags.into_iter()
            .map(|tag| bytes(0, 200).prop_map(move |value| BerObject { tag, value }))
            .collect::<Vec<_>>()
    })
}

fn cpm_template(application: bool) -> impl Strategy<Value = CpmTemplate> {
    (
        bytes(5, 16),
        prop::option::of(vec(0x20u8..=0x7E, 1..=16)),
        prop::option::of(select(&["en", "ruesdeen", "th"][..])),
        objects(APPLICATION_TAGS, 3),
        prop::option::of(objects(TRANSPARENT_TAGS, 4)),
    )
        .prop_map(move |(adf, label, language, mut objects, transparent)| {
            let mut head = Vec::new();
            if application {
                head.push(BerObject {
                    tag: tag::ADF_NAME,
                    value: adf,
                });
            }
            if let Some(label) = label {
                head.push(BerObject {
                    tag: tag::APPLICATION_LABEL,
                    value: label,
                });
            }
            if let Some(language) = language {
                head.push(BerObject {
                    tag: tag::LANGUAGE_PREFERENCE,
                    value: language.as_bytes().to_vec(),
                });
            }
            head.append(&mut objects);
            CpmTemplate {
                objects: head,
                transparent,
            }
        })
}

/// Valid consumer-presented models.
pub fn consumer_presented() -> impl Strategy<Value = ConsumerPresented> {
    (
        vec(cpm_template(true), 1..=3),
        prop::option::of(cpm_template(false)),
    )
        .prop_map(|(applications, common)| ConsumerPresented {
            applications,
            common,
        })
}
