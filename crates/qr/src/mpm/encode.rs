//! The strict encoder: a model that breaks any rule of the specification is refused, so every
//! payload Tally prints is one any conforming reader accepts.

use std::fmt;
use std::fmt::Write as _;

use super::rules::{self, Issue};
use super::{
    id, AdditionalData, DataObject, LanguageTemplate, MerchantAccount, MerchantPresented,
    ObjectPath, Template,
};
use crate::crc::{crc16_ccitt_false, crc_hex};
use crate::MPM_VALUE_CHARS_MAX;

/// Why a model cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    pub kind: EncodeErrorKind,
    pub path: Option<ObjectPath>,
}

impl std::error::Error for EncodeError {}

impl fmt::Display for EncodeError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.kind)?;
        if let Some(path) = self.path {
            write!(formatter, " (object {path})")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeErrorKind {
    #[error("{0}")]
    Rule(Issue),
    #[error("duplicate id: another object at this level has the same id")]
    DuplicateId,
    #[error("id {id:02} is outside {expected}")]
    IdOutOfRange { id: u8, expected: &'static str },
    #[error("order {problem}")]
    Order { problem: &'static str },
    #[error("value is {chars} characters; a two-digit length holds at most 99")]
    ValueTooLong { chars: usize },
    #[error("template is empty; lengths run from 01 to 99")]
    EmptyTemplate,
}

fn error(kind: EncodeErrorKind, path: Option<ObjectPath>) -> EncodeError {
    EncodeError { kind, path }
}

/// The ids present at one level, refusing duplicates and ids outside their range.
#[derive(Default, Clone, Copy)]
struct IdSet(u128);

impl IdSet {
    fn insert(
        &mut self,
        object_id: u8,
        allowed: impl Fn(u8) -> bool,
        expected: &'static str,
        path: ObjectPath,
    ) -> Result<(), EncodeError> {
        if !allowed(object_id) {
            return Err(error(
                EncodeErrorKind::IdOutOfRange {
                    id: object_id,
                    expected,
                },
                Some(path),
            ));
        }
        let bit = 1u128 << object_id;
        if self.0 & bit != 0 {
            return Err(error(EncodeErrorKind::DuplicateId, Some(path)));
        }
        self.0 |= bit;
        Ok(())
    }

    fn contains(self, object_id: u8) -> bool {
        object_id < 128 && self.0 & (1u128 << object_id) != 0
    }

    fn ascending(self) -> impl Iterator<Item = u8> {
        (0..=99u8).filter(move |&object_id| self.contains(object_id))
    }
}

/// The order to write one level in: `order` when given (it must list exactly the present
/// ids), ascending otherwise.
fn resolve_order(
    order: &[u8],
    present: IdSet,
    path: Option<ObjectPath>,
) -> Result<Vec<u8>, EncodeError> {
    if order.is_empty() {
        return Ok(present.ascending().collect());
    }
    let mut listed = IdSet::default();
    for &object_id in order {
        if !present.contains(object_id) {
            return Err(error(
                EncodeErrorKind::Order {
                    problem: "lists an id that is not present",
                },
                path,
            ));
        }
        if listed.contains(object_id) {
            return Err(error(
                EncodeErrorKind::Order {
                    problem: "lists an id twice",
                },
                path,
            ));
        }
        listed.0 |= 1u128 << object_id;
    }
    if listed.0 != present.0 {
        return Err(error(
            EncodeErrorKind::Order {
                problem: "leaves out an id that is present",
            },
            path,
        ));
    }
    Ok(order.to_vec())
}

fn push_object(
    out: &mut String,
    object_id: u8,
    value: &str,
    path: ObjectPath,
) -> Result<(), EncodeError> {
    let chars = rules::char_count(value);
    if chars == 0 {
        return Err(error(EncodeErrorKind::EmptyTemplate, Some(path)));
    }
    if chars > MPM_VALUE_CHARS_MAX {
        return Err(error(EncodeErrorKind::ValueTooLong { chars }, Some(path)));
    }
    // Writing to a String cannot fail.
    let _ = write!(out, "{object_id:02}{chars:02}");
    out.push_str(value);
    Ok(())
}

/// Encodes a merchant-presented payload, refusing any model that breaks the specification:
/// ids outside their ranges or repeated, a missing mandatory object (00, 52, 53, 58, 59, 60,
/// a merchant account), a field of the wrong length or format, a value or template longer than
/// 99 characters, a payload longer than [`crate::MPM_PAYLOAD_CHARS_MAX`] characters, or an
/// `order` that does not list exactly the objects present. Object 00 is written first and the
/// CRC (63) last.
pub fn encode(model: &MerchantPresented<'_>) -> Result<String, EncodeError> {
    let present = top_level_ids(model)?;
    let mut first_issue = None;
    rules::inspect(model, &mut |path, issue| {
        first_issue.get_or_insert((path, issue));
    });
    if let Some((path, issue)) = first_issue {
        return Err(error(EncodeErrorKind::Rule(issue), path));
    }
    let order = resolve_order(&model.order, present, None)?;

    let mut out = String::with_capacity(160);
    push_object(
        &mut out,
        id::PAYLOAD_FORMAT_INDICATOR,
        &model.payload_format_indicator,
        ObjectPath::top(id::PAYLOAD_FORMAT_INDICATOR),
    )?;
    let mut scratch = String::new();
    for object_id in order {
        write_top_level(model, object_id, &mut out, &mut scratch)?;
    }
    out.push_str("6304");
    let crc = crc16_ccitt_false(out.as_bytes());
    out.extend(crc_hex(crc).map(char::from));
    if let Some(issue) = rules::check_payload_chars(rules::char_count(&out)) {
        return Err(error(EncodeErrorKind::Rule(issue), None));
    }
    Ok(out)
}

fn top_level_ids(model: &MerchantPresented<'_>) -> Result<IdSet, EncodeError> {
    let mut present = IdSet::default();
    let any = |_| true;
    if model.point_of_initiation.is_some() {
        present.insert(
            id::POINT_OF_INITIATION_METHOD,
            any,
            "",
            ObjectPath::top(id::POINT_OF_INITIATION_METHOD),
        )?;
    }
    for account in &model.merchant_accounts {
        let (range, expected) = match account {
            MerchantAccount::Primitive(_) => (
                id::MERCHANT_ACCOUNT_PRIMITIVE,
                "02–25, the primitive merchant accounts",
            ),
            MerchantAccount::Template(_) => (
                id::MERCHANT_ACCOUNT_TEMPLATE,
                "26–51, the merchant account templates",
            ),
        };
        let object_id = account.id();
        present.insert(
            object_id,
            |object_id| range.contains(&object_id),
            expected,
            ObjectPath::top(object_id),
        )?;
    }
    for object_id in id::MERCHANT_CATEGORY_CODE..=id::POSTAL_CODE {
        if model.field(object_id).is_some() {
            present.insert(object_id, any, "", ObjectPath::top(object_id))?;
        }
    }
    if model.additional_data.is_some() {
        present.insert(
            id::ADDITIONAL_DATA,
            any,
            "",
            ObjectPath::top(id::ADDITIONAL_DATA),
        )?;
    }
    if model.language.is_some() {
        present.insert(
            id::LANGUAGE_TEMPLATE,
            any,
            "",
            ObjectPath::top(id::LANGUAGE_TEMPLATE),
        )?;
    }
    for object in &model.reserved {
        present.insert(
            object.id,
            |object_id| id::RESERVED.contains(&object_id),
            "65–79, the reserved objects",
            ObjectPath::top(object.id),
        )?;
    }
    for template in &model.unreserved {
        present.insert(
            template.id,
            |object_id| id::UNRESERVED_TEMPLATE.contains(&object_id),
            "80–99, the unreserved templates",
            ObjectPath::top(template.id),
        )?;
    }
    Ok(present)
}

fn write_top_level(
    model: &MerchantPresented<'_>,
    object_id: u8,
    out: &mut String,
    scratch: &mut String,
) -> Result<(), EncodeError> {
    let path = ObjectPath::top(object_id);
    scratch.clear();
    let value: &str = match object_id {
        id::POINT_OF_INITIATION_METHOD => model
            .point_of_initiation
            .as_ref()
            .map_or("", |point| point.as_str()),
        2..=51 => match model.merchant_account(object_id) {
            Some(MerchantAccount::Primitive(object)) => &object.value,
            Some(MerchantAccount::Template(template)) => {
                write_template(template, scratch)?;
                scratch
            }
            None => "",
        },
        id::ADDITIONAL_DATA => {
            if let Some(additional) = &model.additional_data {
                write_additional_data(additional, scratch)?;
            }
            scratch
        }
        id::LANGUAGE_TEMPLATE => {
            if let Some(language) = &model.language {
                write_language(language, scratch)?;
            }
            scratch
        }
        65..=79 => find(&model.reserved, object_id),
        80..=99 => {
            if let Some(template) = model
                .unreserved
                .iter()
                .find(|template| template.id == object_id)
            {
                write_template(template, scratch)?;
            }
            scratch
        }
        _ => model.field(object_id).map_or("", |value| value),
    };
    push_object(out, object_id, value, path)
}

fn find<'m>(objects: &'m [DataObject<'_>], object_id: u8) -> &'m str {
    objects
        .iter()
        .find(|object| object.id == object_id)
        .map_or("", |object| &object.value)
}

fn write_template(template: &Template<'_>, out: &mut String) -> Result<(), EncodeError> {
    let mut present = IdSet::default();
    for field in &template.fields {
        present.insert(
            field.id,
            |sub| (1..=99).contains(&sub),
            "01–99, the template fields after the globally unique identifier",
            ObjectPath::sub(template.id, field.id),
        )?;
    }
    push_object(
        out,
        id::GLOBALLY_UNIQUE_IDENTIFIER,
        &template.globally_unique_identifier,
        ObjectPath::sub(template.id, id::GLOBALLY_UNIQUE_IDENTIFIER),
    )?;
    for field in &template.fields {
        push_object(
            out,
            field.id,
            &field.value,
            ObjectPath::sub(template.id, field.id),
        )?;
    }
    Ok(())
}

fn write_additional_data(
    additional: &AdditionalData<'_>,
    out: &mut String,
) -> Result<(), EncodeError> {
    let parent = id::ADDITIONAL_DATA;
    let mut present = IdSet::default();
    for sub in 1..=id::additional::MERCHANT_CHANNEL {
        if additional.named(sub).is_some() {
            present.insert(sub, |_| true, "", ObjectPath::sub(parent, sub))?;
        }
    }
    for object in &additional.reserved {
        present.insert(
            object.id,
            |sub| sub == 0 || id::additional::RESERVED.contains(&sub),
            "00 and 12–49, the reserved additional data fields",
            ObjectPath::sub(parent, object.id),
        )?;
    }
    for object in &additional.payment_system_specific {
        present.insert(
            object.id,
            |sub| id::additional::PAYMENT_SYSTEM_SPECIFIC.contains(&sub),
            "50–99, the payment system specific templates",
            ObjectPath::sub(parent, object.id),
        )?;
    }
    let order = resolve_order(&additional.order, present, Some(ObjectPath::top(parent)))?;
    for sub in order {
        let value = match additional.named(sub) {
            Some(value) => value.as_ref(),
            None if sub >= 50 => find(&additional.payment_system_specific, sub),
            None => find(&additional.reserved, sub),
        };
        push_object(out, sub, value, ObjectPath::sub(parent, sub))?;
    }
    Ok(())
}

fn write_language(language: &LanguageTemplate<'_>, out: &mut String) -> Result<(), EncodeError> {
    use id::language::*;
    let parent = id::LANGUAGE_TEMPLATE;
    let named = [
        (LANGUAGE_PREFERENCE, &language.language_preference),
        (MERCHANT_NAME, &language.merchant_name),
        (MERCHANT_CITY, &language.merchant_city),
    ];
    let mut present = IdSet::default();
    for (sub, value) in &named {
        if value.is_some() {
            present.insert(*sub, |_| true, "", ObjectPath::sub(parent, *sub))?;
        }
    }
    for object in &language.reserved {
        present.insert(
            object.id,
            |sub| RESERVED.contains(&sub),
            "03–99, the reserved language template fields",
            ObjectPath::sub(parent, object.id),
        )?;
    }
    let order = resolve_order(&language.order, present, Some(ObjectPath::top(parent)))?;
    for sub in order {
        let value = match named.iter().find(|(named_sub, _)| *named_sub == sub) {
            Some((_, Some(value))) => value.as_ref(),
            _ => find(&language.reserved, sub),
        };
        push_object(out, sub, value, ObjectPath::sub(parent, sub))?;
    }
    Ok(())
}
