//! `tally qr`: decode any payment code a wallet may be shown, and encode EMVCo merchant codes.

use std::borrow::Cow;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use qr::mpm::{
    AdditionalData, DataObject, LanguageTemplate, MerchantAccount, MerchantPresented,
    PointOfInitiation, Template,
};
use qr::AnyPayload;
use serde_json::{json, Map, Value};

#[derive(Debug, Subcommand)]
pub enum QrCommand {
    /// Decode a payload: EMVCo merchant-presented or consumer-presented, UPI, or a Tally
    /// payment code. Exit code 2 and one line on stderr when it cannot be trusted.
    Decode(DecodeArgs),
    /// Encode an EMVCo merchant-presented payload (every rule of the specification checked).
    Encode(Box<EncodeArgs>),
    /// Draw a payload as a QR symbol: SVG, PNG, or on the terminal.
    Render(RenderArgs),
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The payload to draw.
    payload: String,
    /// svg, png or terminal.
    #[arg(long, default_value = "terminal")]
    format: String,
    /// Write here instead of standard output (needed for png).
    #[arg(long, value_name = "FILE")]
    out: Option<std::path::PathBuf>,
    /// qr, or code128 (the barcode a POS scans for a numeric payment code).
    #[arg(long, default_value = "qr")]
    symbology: String,
}

#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// The payload, as scanned.
    payload: String,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct EncodeArgs {
    /// static (the payer types the amount) or dynamic (one payment).
    #[arg(long, default_value = "static")]
    point_of_initiation: String,
    /// A merchant account: `ID=VALUE` for a card network's primitive (ids 02–25), or
    /// `ID:GUI[:SUB=VALUE]...` for a template (ids 26–51), e.g. `26:br.gov.bcb.pix:01=key`.
    /// Repeatable; at least one.
    #[arg(long = "merchant-account", value_name = "ACCOUNT", required = true)]
    merchant_accounts: Vec<String>,
    /// Merchant category code (ISO 18245), four digits.
    #[arg(long)]
    mcc: String,
    /// Transaction currency, ISO 4217 numeric (e.g. 156 for CNY, 986 for BRL).
    #[arg(long)]
    currency: String,
    /// Amount as written on the code, e.g. 10.00 (dynamic codes).
    #[arg(long)]
    amount: Option<String>,
    /// 01 prompt for a tip, 02 fixed convenience fee, 03 percentage fee.
    #[arg(long)]
    tip_indicator: Option<String>,
    #[arg(long)]
    fee_fixed: Option<String>,
    #[arg(long)]
    fee_percentage: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    #[arg(long)]
    country: String,
    /// At most 25 characters.
    #[arg(long)]
    merchant_name: String,
    /// At most 15 characters.
    #[arg(long)]
    merchant_city: String,
    #[arg(long)]
    postal_code: Option<String>,
    #[arg(long)]
    bill_number: Option<String>,
    #[arg(long)]
    mobile_number: Option<String>,
    #[arg(long)]
    store_label: Option<String>,
    #[arg(long)]
    loyalty_number: Option<String>,
    #[arg(long)]
    reference_label: Option<String>,
    #[arg(long)]
    customer_label: Option<String>,
    #[arg(long)]
    terminal_label: Option<String>,
    #[arg(long)]
    purpose: Option<String>,
    /// Letters A (address), M (mobile), E (e-mail).
    #[arg(long)]
    consumer_data_request: Option<String>,
    #[arg(long)]
    merchant_tax_id: Option<String>,
    #[arg(long)]
    merchant_channel: Option<String>,
    /// Language of the alternate merchant name (ISO 639, two letters), with --alt-name.
    #[arg(long)]
    language: Option<String>,
    #[arg(long)]
    alt_name: Option<String>,
    #[arg(long)]
    alt_city: Option<String>,
    /// An unreserved template (ids 80–99): `ID:GUI[:SUB=VALUE]...`. Repeatable.
    #[arg(long = "unreserved", value_name = "TEMPLATE")]
    unreserved: Vec<String>,
}

pub fn run(command: QrCommand) -> anyhow::Result<()> {
    match command {
        QrCommand::Decode(args) => {
            let decoded =
                qr::decode_any(&args.payload).map_err(|error| anyhow::anyhow!("{error}"))?;
            let report = decoded_json(&decoded);
            if args.json {
                println!("{report}");
            } else {
                print_report(&report);
            }
            Ok(())
        }
        QrCommand::Render(args) => {
            let bitmap = match args.symbology.as_str() {
                "qr" => crate::qr_render::qr_bitmap(&args.payload)?,
                "code128" => crate::qr_render::code128_bitmap(&args.payload)?,
                other => bail!("--symbology is qr or code128, not {other:?}"),
            };
            let bytes = match args.format.as_str() {
                "svg" => crate::qr_render::svg(&bitmap).into_bytes(),
                "png" => crate::qr_render::png(&bitmap),
                "terminal" => crate::qr_render::terminal(&bitmap).into_bytes(),
                other => bail!("--format is svg, png or terminal, not {other:?}"),
            };
            match &args.out {
                Some(path) => std::fs::write(path, bytes)
                    .with_context(|| format!("writing {}", path.display()))?,
                None if args.format == "png" => {
                    bail!("a PNG goes to a file: give --out FILE")
                }
                None => {
                    use std::io::Write;
                    std::io::stdout().write_all(&bytes)?;
                }
            }
            Ok(())
        }
        QrCommand::Encode(args) => {
            let model = model(&args)?;
            let payload = qr::mpm::encode(&model).map_err(|error| anyhow::anyhow!("{error}"))?;
            println!("{payload}");
            Ok(())
        }
    }
}

fn text(value: Option<&Cow<'_, str>>) -> Value {
    value.map_or(Value::Null, |value| Value::from(value.as_ref()))
}

fn template_json(template: &Template<'_>) -> Value {
    let fields: Map<String, Value> = template
        .fields
        .iter()
        .map(|object| {
            (
                format!("{:02}", object.id),
                Value::from(object.value.as_ref()),
            )
        })
        .collect();
    json!({
        "id": format!("{:02}", template.id),
        "gui": template.globally_unique_identifier.as_ref(),
        "fields": fields,
        "network": qr::network::network_of_template(template).map(|network| network.name()),
    })
}

const ADDITIONAL_DATA_NAMES: [(u8, &str); 11] = [
    (1, "bill_number"),
    (2, "mobile_number"),
    (3, "store_label"),
    (4, "loyalty_number"),
    (5, "reference_label"),
    (6, "customer_label"),
    (7, "terminal_label"),
    (8, "purpose_of_transaction"),
    (9, "additional_consumer_data_request"),
    (10, "merchant_tax_id"),
    (11, "merchant_channel"),
];

fn additional_data_json(data: &AdditionalData<'_>) -> Value {
    let mut object = Map::new();
    for (sub, name) in ADDITIONAL_DATA_NAMES {
        if let Some(value) = data.named(sub) {
            object.insert(name.to_owned(), Value::from(value.as_ref()));
        }
    }
    for raw in data.reserved.iter().chain(&data.payment_system_specific) {
        object.insert(format!("{:02}", raw.id), Value::from(raw.value.as_ref()));
    }
    Value::Object(object)
}

/// The JSON `tally qr decode --json` prints: the same keys for every format, `null` where a
/// format or a payload does not carry a field.
fn decoded_json(decoded: &AnyPayload<'_>) -> Value {
    let mut report = json!({
        "format": decoded.scheme().as_str(),
        "crc_valid": null,
        "point_of_initiation": null,
        "merchant_name": null,
        "merchant_city": null,
        "country_code": null,
        "merchant_category_code": null,
        "currency": null,
        "amount": null,
        "merchant_accounts": [],
        "additional_data": null,
        "warnings": [],
    });
    match decoded {
        AnyPayload::EmvMpm(decoded) => {
            let payload = &decoded.payload;
            report["crc_valid"] = Value::from(true);
            report["crc"] = Value::from(format!("{:04X}", decoded.crc));
            report["payload_format_indicator"] =
                Value::from(payload.payload_format_indicator.as_ref());
            report["point_of_initiation"] = match &payload.point_of_initiation {
                Some(PointOfInitiation::Static) => Value::from("static"),
                Some(PointOfInitiation::Dynamic) => Value::from("dynamic"),
                Some(PointOfInitiation::Other(value)) => Value::from(value.as_ref()),
                None => Value::Null,
            };
            report["merchant_name"] = text(payload.merchant_name.as_ref());
            report["merchant_city"] = text(payload.merchant_city.as_ref());
            report["country_code"] = text(payload.country_code.as_ref());
            report["merchant_category_code"] = text(payload.merchant_category_code.as_ref());
            report["currency"] = text(payload.transaction_currency.as_ref());
            report["amount"] = text(payload.transaction_amount.as_ref());
            report["postal_code"] = text(payload.postal_code.as_ref());
            report["tip_or_convenience_indicator"] =
                text(payload.tip_or_convenience_indicator.as_ref());
            report["convenience_fee_fixed"] = text(payload.convenience_fee_fixed.as_ref());
            report["convenience_fee_percentage"] =
                text(payload.convenience_fee_percentage.as_ref());
            report["merchant_accounts"] = payload
                .merchant_accounts
                .iter()
                .map(|account| match account {
                    MerchantAccount::Primitive(object) => json!({
                        "id": format!("{:02}", object.id),
                        "gui": null,
                        "fields": { "value": object.value.as_ref() },
                        "network": qr::network::network_of(account).map(|network| network.name()),
                    }),
                    MerchantAccount::Template(template) => template_json(template),
                })
                .collect();
            report["additional_data"] = payload
                .additional_data
                .as_ref()
                .map_or(Value::Null, additional_data_json);
            report["language"] = payload.language.as_ref().map_or(Value::Null, |language| {
                json!({
                    "language_preference": text(language.language_preference.as_ref()),
                    "merchant_name": text(language.merchant_name.as_ref()),
                    "merchant_city": text(language.merchant_city.as_ref()),
                })
            });
            report["unreserved"] = payload.unreserved.iter().map(template_json).collect();
            report["warnings"] = decoded
                .warnings
                .iter()
                .map(|warning| Value::from(warning.to_string()))
                .collect();
        }
        AnyPayload::EmvCpm(decoded) => {
            report["applications"] = decoded
                .applications
                .iter()
                .map(|application| {
                    json!({
                        "adf_name": application.adf_name().map(hex),
                        "application_label": application.application_label(),
                        // Card data: never more than the last four digits.
                        "pan_last4": application.application_pan().map(|pan| {
                            pan.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect::<String>()
                        }),
                        "application_transaction_counter": application.application_transaction_counter(),
                    })
                })
                .collect();
        }
        AnyPayload::Upi(link) => {
            report["payee_address"] = Value::from(link.payee_address.as_ref());
            report["merchant_name"] = text(link.payee_name.as_ref());
            report["merchant_category_code"] = text(link.merchant_category_code.as_ref());
            report["currency"] = text(link.currency.as_ref());
            report["amount"] = text(link.amount.as_ref());
            report["transaction_reference"] = text(link.transaction_reference.as_ref());
            report["transaction_note"] = text(link.transaction_note.as_ref());
        }
        AnyPayload::TallyPaymentCode(code) => {
            report["payment_code"] = Value::from(code.as_str());
        }
    }
    report
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02X}")).collect()
}

fn print_report(report: &Value) {
    let Value::Object(fields) = report else {
        return;
    };
    for (name, value) in fields {
        match value {
            Value::Null => {}
            Value::Array(items) if items.is_empty() => {}
            Value::String(text) => println!("{name}: {text}"),
            other => println!("{name}: {other}"),
        }
    }
}

fn owned(value: &Option<String>) -> Option<Cow<'static, str>> {
    value.clone().map(Cow::Owned)
}

/// `ID:GUI[:SUB=VALUE]...` → a template.
fn parse_template(
    text: &str,
    ids: std::ops::RangeInclusive<u8>,
) -> anyhow::Result<Template<'static>> {
    let mut parts = text.split(':');
    let id: u8 = parts
        .next()
        .and_then(|id| id.parse().ok())
        .filter(|id| ids.contains(id))
        .with_context(|| {
            format!(
                "{text:?}: the id must be {:02}–{:02}",
                ids.start(),
                ids.end()
            )
        })?;
    let gui = parts
        .next()
        .filter(|gui| !gui.is_empty())
        .with_context(|| format!("{text:?}: expected ID:GUI[:SUB=VALUE]..."))?;
    let mut template = Template::new(id, gui.to_owned());
    for field in parts {
        let (sub, value) = field
            .split_once('=')
            .with_context(|| format!("{text:?}: a sub-field is SUB=VALUE, not {field:?}"))?;
        let sub: u8 = sub
            .parse()
            .ok()
            .filter(|sub| (1..=99).contains(sub))
            .with_context(|| format!("{text:?}: sub-ids are 01–99"))?;
        template = template.with(sub, value.to_owned());
    }
    Ok(template)
}

fn model(args: &EncodeArgs) -> anyhow::Result<MerchantPresented<'static>> {
    let point_of_initiation = match args.point_of_initiation.as_str() {
        "static" | "11" => PointOfInitiation::Static,
        "dynamic" | "12" => PointOfInitiation::Dynamic,
        other => bail!("--point-of-initiation is static or dynamic, not {other:?}"),
    };
    let mut merchant_accounts = Vec::new();
    for account in &args.merchant_accounts {
        if let Some((id, value)) = account.split_once('=').filter(|(id, _)| !id.contains(':')) {
            let id: u8 = id
                .parse()
                .ok()
                .filter(|id| (2..=25).contains(id))
                .with_context(|| format!("{account:?}: a primitive account's id is 02–25"))?;
            merchant_accounts.push(MerchantAccount::Primitive(DataObject::new(
                id,
                value.to_owned(),
            )));
        } else {
            merchant_accounts.push(MerchantAccount::Template(parse_template(account, 26..=51)?));
        }
    }
    let additional = AdditionalData {
        bill_number: owned(&args.bill_number),
        mobile_number: owned(&args.mobile_number),
        store_label: owned(&args.store_label),
        loyalty_number: owned(&args.loyalty_number),
        reference_label: owned(&args.reference_label),
        customer_label: owned(&args.customer_label),
        terminal_label: owned(&args.terminal_label),
        purpose_of_transaction: owned(&args.purpose),
        additional_consumer_data_request: owned(&args.consumer_data_request),
        merchant_tax_id: owned(&args.merchant_tax_id),
        merchant_channel: owned(&args.merchant_channel),
        ..AdditionalData::default()
    };
    let language = (args.language.is_some() || args.alt_name.is_some() || args.alt_city.is_some())
        .then(|| LanguageTemplate {
            language_preference: owned(&args.language),
            merchant_name: owned(&args.alt_name),
            merchant_city: owned(&args.alt_city),
            ..LanguageTemplate::default()
        });
    Ok(MerchantPresented {
        point_of_initiation: Some(point_of_initiation),
        merchant_accounts,
        merchant_category_code: Some(Cow::Owned(args.mcc.clone())),
        transaction_currency: Some(Cow::Owned(args.currency.clone())),
        transaction_amount: owned(&args.amount),
        tip_or_convenience_indicator: owned(&args.tip_indicator),
        convenience_fee_fixed: owned(&args.fee_fixed),
        convenience_fee_percentage: owned(&args.fee_percentage),
        country_code: Some(Cow::Owned(args.country.clone())),
        merchant_name: Some(Cow::Owned(args.merchant_name.clone())),
        merchant_city: Some(Cow::Owned(args.merchant_city.clone())),
        postal_code: owned(&args.postal_code),
        additional_data: (additional != AdditionalData::default()).then_some(additional),
        language,
        unreserved: args
            .unreserved
            .iter()
            .map(|text| parse_template(text, 80..=99))
            .collect::<anyhow::Result<_>>()?,
        ..MerchantPresented::default()
    })
}
