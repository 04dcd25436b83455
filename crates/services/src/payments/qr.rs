//! QR payments, both directions.
//!
//! Merchant-presented: the platform issues EMVCo codes, static (per store or terminal, the payer
//! types the amount) or dynamic (one order). The code's merchant-account template carries the
//! operator network's globally unique identifier, the merchant id and the code id; the SHA-256
//! of the payload is registered in the trust log when the code is issued, so a wallet can tell a
//! code this network issued (with its receipt) from a forged one. Codes can be revoked by their
//! merchant, reported by payers and flagged by the operator (or by enough reports).
//!
//! Customer-presented: a user enrols a device, which then derives one-time payment codes offline
//! ([`crate::payment_codes`]); a POS charges one with an amount. Small charges are paid at once;
//! above the no-password amount the order waits, bound to its payer, for the payer to confirm
//! with the payment password (`USERPAYING`).

use std::collections::{HashMap, HashSet};

use qr::mpm::{self, AdditionalData, MerchantAccount, MerchantPresented, PointOfInitiation};
use qr::{AnyPayload, PaymentCodePrefix, Recognition, Scheme, TallyPaymentCode};
use sequencer::RegistrationOutcome;
use sha2::{Digest, Sha256};
use store::{
    CodeKind, CodeReport, CodeState, CodeUse, DeviceState, Merchant, MerchantCode, NewRegistration,
    Order, OrderState, PaymentDevice, Record, RegistrationKind, User, CODE_PAYLOAD_BYTES_MAX,
    RECORD_TEXT_BYTES_MAX,
};

use super::{
    bounded_text, check_amount, check_notify_url, invalid, Idempotency, Outcome, PaymentError,
    Payments, Render,
};
use crate::ids::{new_id, transfer_id};
use crate::payment_codes::{self, DEVICE_NUMBER_MAX};
use crate::secrets;
use crate::support::lock_key;

/// QR settings of the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrConfig {
    /// The globally unique identifier of this network's merchant-account template (sub-id 00
    /// of template 26 in the codes it issues).
    pub network_gui: String,
    /// The two digits payment codes start with.
    pub payment_code_prefix: PaymentCodePrefix,
    /// Payment-code charges up to this amount (minor units) are paid without the payment
    /// password; above it the payer confirms in the app.
    pub no_password_max: u64,
    /// How long a charge waiting for its payer stays open, in seconds.
    pub confirm_lifetime_s: u64,
    /// Reports from this many different payers flag a code until the operator looks at it.
    pub reports_to_flag: usize,
    /// Active devices one user may enrol.
    pub devices_per_user_max: usize,
    /// Wrong codes in a row for one device before its codes are refused for a while.
    pub device_failures_max: u32,
    /// How long, in seconds.
    pub device_lock_s: u64,
}

impl Default for QrConfig {
    fn default() -> Self {
        QrConfig {
            network_gui: "NET.TALLY".to_owned(),
            payment_code_prefix: PaymentCodePrefix::DEFAULT,
            no_password_max: 20_000,
            confirm_lifetime_s: 300,
            reports_to_flag: 3,
            devices_per_user_max: 5,
            device_failures_max: 5,
            device_lock_s: 600,
        }
    }
}

/// Merchant-account sub-fields of this network's template.
const FIELD_MERCHANT: u8 = 1;
const FIELD_CODE: u8 = 2;
/// The merchant-account template id the platform writes.
const TEMPLATE_ID: u8 = 26;
/// Characters of the payload's name and city fields (EMVCo 59 and 60) and of an additional
/// data sub-field.
const NAME_CHARS_MAX: usize = 25;
const CITY_CHARS_MAX: usize = 15;
const LABEL_CHARS_MAX: usize = 25;

/// ISO 4217 numeric codes of the currencies the platform can issue codes in.
const NUMERIC_CURRENCIES: [(&str, &str); 16] = [
    ("BRL", "986"),
    ("CNY", "156"),
    ("EUR", "978"),
    ("GBP", "826"),
    ("HKD", "344"),
    ("IDR", "360"),
    ("INR", "356"),
    ("JPY", "392"),
    ("KES", "404"),
    ("MYR", "458"),
    ("PHP", "608"),
    ("SGD", "702"),
    ("THB", "764"),
    ("TZS", "834"),
    ("USD", "840"),
    ("VND", "704"),
];

/// The ISO 4217 numeric code of `alphabetic`, if known.
pub fn numeric_currency(alphabetic: &str) -> Option<&'static str> {
    NUMERIC_CURRENCIES
        .iter()
        .find(|(code, _)| *code == alphabetic)
        .map(|(_, numeric)| *numeric)
}

fn truncated(text: &str, chars: usize) -> String {
    text.chars().take(chars).collect()
}

/// SHA-256 of the payload's bytes: what the trust log holds for a code, and what anyone can
/// recompute from a scanned code.
pub fn payload_digest(payload: &str) -> [u8; 32] {
    Sha256::digest(payload.as_bytes()).into()
}

/// What a merchant asks a code for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRequest {
    /// For the merchant, or one of its stores or terminals; its payments are notified at
    /// `notify_url`.
    Static {
        outlet_id: Option<u64>,
        notify_url: Option<String>,
    },
    /// For one unpaid order.
    Dynamic { order_id: u64 },
}

/// What a scanned code is, for the payer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanStatus {
    /// Issued here, registered, payable.
    Active,
    Revoked,
    Flagged,
    /// A dynamic code whose order is closed or expired.
    Expired,
    /// A dynamic code whose order is paid.
    Used,
    /// Looks like this network's but was never issued here (or was altered): forged.
    Unknown,
    /// Another scheme's or institution's code: recognised, not payable here yet.
    NotPayableHere,
}

impl ScanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::Active => "active",
            ScanStatus::Revoked => "revoked",
            ScanStatus::Flagged => "flagged",
            ScanStatus::Expired => "expired",
            ScanStatus::Used => "used",
            ScanStatus::Unknown => "unknown",
            ScanStatus::NotPayableHere => "not_payable_here",
        }
    }

    /// What the wallet tells its user.
    pub fn message(self) -> &'static str {
        match self {
            ScanStatus::Active => "A code issued by this network and registered in its trust log.",
            ScanStatus::Revoked => "The merchant has withdrawn this code; do not pay with it.",
            ScanStatus::Flagged => {
                "This code has been reported as fraudulent; do not pay with it."
            }
            ScanStatus::Expired => "This code's order is closed or has expired.",
            ScanStatus::Used => "This code's order is already paid.",
            ScanStatus::Unknown => {
                "This network never issued this code: it may be forged. Do not pay with it, and report it."
            }
            ScanStatus::NotPayableHere => {
                "A code of another payment network: it is not payable on this network yet."
            }
        }
    }

    /// The problem code of a payment refused because of it.
    pub fn refusal_code(self) -> &'static str {
        match self {
            ScanStatus::Active => "code_active",
            ScanStatus::Revoked => "code_revoked",
            ScanStatus::Flagged => "code_flagged",
            ScanStatus::Expired => "code_expired",
            ScanStatus::Used => "code_used",
            ScanStatus::Unknown => "code_unknown",
            ScanStatus::NotPayableHere => "not_payable_here",
        }
    }
}

/// A scanned payload, as the platform reads it.
#[derive(Debug, Clone)]
pub struct Scan {
    pub scheme: Scheme,
    /// "tally" for this network's codes, or the network recognised in the payload.
    pub network: Option<&'static str>,
    pub status: ScanStatus,
    /// The registered code, when the payload is one.
    pub code: Option<MerchantCode>,
    pub merchant: Option<Merchant>,
    /// A dynamic code's order.
    pub order: Option<Order>,
    /// What the payload itself says (for codes of other networks).
    pub merchant_name: Option<String>,
    pub merchant_city: Option<String>,
    pub amount_text: Option<String>,
    /// Rules the payload breaks, as the lenient decoder reports them.
    pub warnings: Vec<String>,
}

impl Scan {
    fn of(scheme: Scheme, status: ScanStatus) -> Scan {
        Scan {
            scheme,
            network: None,
            status,
            code: None,
            merchant: None,
            order: None,
            merchant_name: None,
            merchant_city: None,
            amount_text: None,
            warnings: Vec::new(),
        }
    }

    /// The amount the payer will pay: a dynamic code's order amount; `None` for "enter the
    /// amount".
    pub fn amount(&self) -> Option<u64> {
        self.order.as_ref().map(|order| order.amount)
    }
}

/// A device just enrolled; its secret is shown this once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolledDevice {
    pub device: PaymentDevice,
    pub prefix: PaymentCodePrefix,
}

/// A charge a POS asks for with a payment code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCharge {
    pub auth_code: String,
    pub out_trade_no: String,
    pub amount: u64,
    pub currency: String,
    pub description: String,
    pub notify_url: Option<String>,
    pub outlet_id: Option<u64>,
}

/// Wrong payment codes of a device: how many in a row, since when.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Failures {
    count: u32,
    last_at: u64,
}

impl Payments {
    fn recognition(&self) -> Recognition {
        Recognition {
            payment_code_prefix: self.config.qr.payment_code_prefix,
        }
    }

    // ---- Merchant-presented codes -----------------------------------------------------------

    /// The EMVCo payload of a code.
    fn code_payload(
        &self,
        merchant: &Merchant,
        code_id: u64,
        outlet_name: Option<&str>,
        order: Option<&Order>,
    ) -> Result<String, PaymentError> {
        let currency = self.config.currency;
        let numeric = numeric_currency(currency.as_str()).ok_or_else(|| {
            invalid(
                "currency",
                format!(
                    "no ISO 4217 numeric code is known for {}",
                    currency.as_str()
                ),
            )
        })?;
        let merchant_id = merchant.id.to_string();
        let code = code_id.to_string();
        let template = mpm::Template::new(TEMPLATE_ID, self.config.qr.network_gui.as_str())
            .with(FIELD_MERCHANT, merchant_id.as_str())
            .with(FIELD_CODE, code.as_str());
        let mut additional = AdditionalData::default();
        if let Some(name) = outlet_name {
            additional.store_label = Some(truncated(name, LABEL_CHARS_MAX).into());
        }
        let amount = order.map(|order| currency.format_decimal(u128::from(order.amount)));
        if let Some(order) = order {
            additional.reference_label = Some(format!("ord_{}", order.id).into());
        }
        let model = MerchantPresented {
            point_of_initiation: Some(if order.is_some() {
                PointOfInitiation::Dynamic
            } else {
                PointOfInitiation::Static
            }),
            merchant_accounts: vec![MerchantAccount::Template(template)],
            merchant_category_code: Some(merchant.mcc.as_str().into()),
            transaction_currency: Some(numeric.into()),
            transaction_amount: amount.map(Into::into),
            country_code: Some(merchant.country.as_str().into()),
            merchant_name: Some(truncated(&merchant.name, NAME_CHARS_MAX).into()),
            merchant_city: Some(truncated(&merchant.city, CITY_CHARS_MAX).into()),
            additional_data: (additional != AdditionalData::default()).then_some(additional),
            ..MerchantPresented::default()
        };
        mpm::encode(&model).map_err(|error| {
            PaymentError::Ledger(format!("a code's payload cannot be encoded: {error}"))
        })
    }

    /// Issues a merchant-presented code: registers its payload's digest in the trust log,
    /// then stores it. With an `Idempotency-Key`, a retry answers the first code.
    pub async fn issue_code(
        &self,
        merchant: &Merchant,
        request: CodeRequest,
        idempotency: Option<&Idempotency>,
        render: Render<'_, MerchantCode>,
        now_s: u64,
    ) -> Result<Outcome<MerchantCode>, PaymentError> {
        if let CodeRequest::Static {
            notify_url: Some(url),
            ..
        } = &request
        {
            check_notify_url(url)?;
        }
        let mut keys: Vec<u64> = idempotency.map(Idempotency::lock_key).into_iter().collect();
        if let CodeRequest::Dynamic { order_id } = request {
            keys.push(lock_key("order", order_id));
        }
        let _guards = self.locks.lock(&keys).await;
        if let Some((status, body)) = Idempotency::replay(idempotency, &self.handles)? {
            return Ok(Outcome::Replayed { status, body });
        }
        let notify_url = match &request {
            CodeRequest::Static { notify_url, .. } => notify_url.clone(),
            CodeRequest::Dynamic { .. } => None,
        };
        let (outlet, order) = match request {
            CodeRequest::Static {
                outlet_id: None, ..
            } => (None, None),
            CodeRequest::Static {
                outlet_id: Some(outlet_id),
                ..
            } => {
                let outlet = self
                    .handles
                    .records(|records| records.outlet(outlet_id))?
                    .filter(|outlet| outlet.merchant_id == merchant.id)
                    .ok_or(PaymentError::NotFound("outlet"))?;
                (Some(outlet), None)
            }
            CodeRequest::Dynamic { order_id } => {
                let order = self.order(merchant.id, order_id)?;
                if order.state != OrderState::NotPay || order.payer_user_id.is_some() {
                    return Err(invalid("order_id", "an unpaid order waiting for any payer"));
                }
                if now_s >= order.expires_at {
                    return Err(PaymentError::Order(super::OrderRefusal::Expired));
                }
                let outlet = match order.outlet_id {
                    Some(id) => self.handles.records(|records| records.outlet(id))?,
                    None => None,
                };
                (outlet, Some(order))
            }
        };
        let id = new_id(now_s * 1000)?;
        let payload = self.code_payload(
            merchant,
            id,
            outlet.as_ref().map(|outlet| outlet.name.as_str()),
            order.as_ref(),
        )?;
        let reference = format!("qrc_{id}");
        let registration = NewRegistration::new(
            RegistrationKind::MerchantCode,
            payload_digest(&payload),
            u128::from(merchant.id),
            &reference,
            &reference,
        )
        .map_err(|error| PaymentError::Ledger(error.to_string()))?;
        let mut outcomes = self.ledger.register(vec![registration])?.await?;
        let registration_id = match outcomes.pop() {
            Some(RegistrationOutcome::Created(stored) | RegistrationOutcome::Exists(stored)) => {
                stored.registration.id
            }
            other => {
                return Err(PaymentError::Ledger(format!(
                    "the code's registration was refused: {other:?}"
                )))
            }
        };
        let code = MerchantCode {
            id,
            merchant_id: merchant.id,
            outlet_id: outlet.as_ref().map(|outlet| outlet.id),
            order_id: order.as_ref().map(|order| order.id),
            kind: if order.is_some() {
                CodeKind::Dynamic
            } else {
                CodeKind::Static
            },
            payload,
            registration_id,
            state: CodeState::Active,
            created_at: now_s,
            expires_at: order.as_ref().map(|order| order.expires_at),
            updated_at: now_s,
            notify_url,
        };
        let mut records = vec![Record::MerchantCode(code.clone())];
        records.extend(Idempotency::record(idempotency, render, &code, now_s));
        self.commit(Vec::new(), records).await?;
        Ok(Outcome::Done(code))
    }

    /// One of the merchant's codes.
    pub fn merchant_code(
        &self,
        merchant_id: u64,
        code_id: u64,
    ) -> Result<MerchantCode, PaymentError> {
        self.handles
            .records(|records| records.merchant_code(code_id))?
            .filter(|code| code.merchant_id == merchant_id)
            .ok_or(PaymentError::NotFound("code"))
    }

    pub fn merchant_codes(
        &self,
        merchant_id: u64,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<MerchantCode>, PaymentError> {
        Ok(self
            .handles
            .records(|records| records.merchant_codes(merchant_id, after_id, limit))?)
    }

    /// Changes a code's state: the merchant revokes it (`merchant_id` given; final), the
    /// operator flags it or clears a flag.
    pub async fn set_code_state(
        &self,
        merchant_id: Option<u64>,
        code_id: u64,
        state: CodeState,
        now_s: u64,
    ) -> Result<MerchantCode, PaymentError> {
        let _guards = self.locks.lock(&[lock_key("code", code_id)]).await;
        let code = self
            .handles
            .records(|records| records.merchant_code(code_id))?
            .filter(|code| merchant_id.is_none_or(|merchant| merchant == code.merchant_id))
            .ok_or(PaymentError::NotFound("code"))?;
        if code.state == CodeState::Revoked && state != CodeState::Revoked {
            return Err(invalid("state", "a revoked code stays revoked"));
        }
        if code.state == state {
            return Ok(code);
        }
        let changed = MerchantCode {
            state,
            updated_at: now_s,
            ..code
        };
        self.commit(Vec::new(), vec![Record::MerchantCode(changed.clone())])
            .await?;
        Ok(changed)
    }

    /// Reads a scanned payload: which scheme, and for this network's codes whether it was
    /// issued here (its payload exactly as registered), and whether it may be paid.
    pub fn scan(&self, payload: &str, now_s: u64) -> Result<Scan, PaymentError> {
        if payload.len() > CODE_PAYLOAD_BYTES_MAX {
            return Err(invalid(
                "payload",
                format!("at most {CODE_PAYLOAD_BYTES_MAX} bytes"),
            ));
        }
        let decoded = qr::decode_any_with(payload, &self.recognition())
            .map_err(|error| PaymentError::QrUnreadable(error.to_string()))?;
        let AnyPayload::EmvMpm(decoded) = decoded else {
            // A payment code, a consumer-presented payload, a UPI link: not for a payer.
            let mut scan = Scan::of(decoded.scheme(), ScanStatus::NotPayableHere);
            if let AnyPayload::Upi(link) = &decoded {
                scan.network = Some("upi");
                scan.merchant_name = link.payee_name.as_deref().map(str::to_owned);
                scan.amount_text = link.amount.as_deref().map(str::to_owned);
            }
            return Ok(scan);
        };
        let fields = &decoded.payload;
        let mut scan = Scan::of(Scheme::EmvMpm, ScanStatus::Unknown);
        scan.merchant_name = fields.merchant_name.as_deref().map(str::to_owned);
        scan.merchant_city = fields.merchant_city.as_deref().map(str::to_owned);
        scan.amount_text = fields.transaction_amount.as_deref().map(str::to_owned);
        scan.warnings = decoded.warnings.iter().map(ToString::to_string).collect();
        let Some(template) = fields.template_by_gui(&self.config.qr.network_gui) else {
            scan.status = ScanStatus::NotPayableHere;
            scan.network = decoded.network().map(qr::Network::name);
            return Ok(scan);
        };
        scan.network = Some("tally");
        let code_id = template
            .field(FIELD_CODE)
            .and_then(|text| text.parse::<u64>().ok());
        let Some(code) = code_id
            .map(|id| self.handles.records(|records| records.merchant_code(id)))
            .transpose()?
            .flatten()
        else {
            return Ok(scan);
        };
        // The payload must be the registered one, byte for byte: a code id copied into a
        // payload with another name, amount or account is a forgery.
        if !secrets::equal(&payload_digest(payload), &payload_digest(&code.payload)) {
            return Ok(scan);
        }
        scan.merchant = Some(Merchant::clone(
            &*self.merchant_cached(code.merchant_id, now_s)?,
        ));
        scan.status = match code.state {
            CodeState::Revoked => ScanStatus::Revoked,
            CodeState::Flagged => ScanStatus::Flagged,
            CodeState::Active => ScanStatus::Active,
        };
        if let Some(order_id) = code.order_id {
            let order = self
                .read_order(order_id)?
                .ok_or(PaymentError::NotFound("order"))?;
            if scan.status == ScanStatus::Active {
                scan.status = match order.state {
                    OrderState::NotPay if now_s < order.expires_at => ScanStatus::Active,
                    OrderState::NotPay | OrderState::Closed => ScanStatus::Expired,
                    OrderState::Success | OrderState::Refund => ScanStatus::Used,
                };
            }
            scan.order = Some(order);
        }
        scan.code = Some(code);
        Ok(scan)
    }

    /// The user pays a scanned code (the payment password checked by the caller): a dynamic
    /// code pays its order; a static code makes an order of `amount` for its merchant and pays
    /// it, in one request.
    pub async fn pay_code(
        &self,
        user: &User,
        payload: &str,
        amount: Option<u64>,
        idempotency: Option<&Idempotency>,
        render: Render<'_, Order>,
        now_s: u64,
    ) -> Result<Outcome<Order>, PaymentError> {
        let scan = self.scan(payload, now_s)?;
        if scan.status != ScanStatus::Active {
            return Err(PaymentError::Code(scan.status));
        }
        let code = scan.code.expect("an active scan has its code");
        if let Some(order_id) = code.order_id {
            let amount = amount.unwrap_or(scan.order.as_ref().map_or(0, |order| order.amount));
            return self
                .pay_order(user, order_id, amount, idempotency, render, now_s)
                .await;
        }
        let amount = amount.ok_or_else(|| invalid("amount", "a static code needs the amount"))?;
        check_amount(amount)?;
        let mut keys = vec![lock_key("user", user.id), lock_key("code", code.id)];
        keys.extend(idempotency.map(Idempotency::lock_key));
        let _guards = self.locks.lock(&keys).await;
        if let Some((status, body)) = Idempotency::replay(idempotency, &self.handles)? {
            return Ok(Outcome::Replayed { status, body });
        }
        let id = new_id(now_s * 1000)?;
        let description = match code.outlet_id {
            Some(outlet) => self
                .handles
                .records(|records| records.outlet(outlet))?
                .map_or_else(String::new, |outlet| outlet.name),
            None => String::new(),
        };
        let order = Order {
            id,
            merchant_id: code.merchant_id,
            outlet_id: code.outlet_id,
            out_trade_no: format!("qr{id}"),
            amount,
            currency: self.config.currency.as_str().to_owned(),
            description: truncated(&format!("QR payment {description}"), RECORD_TEXT_BYTES_MAX)
                .trim_end()
                .to_owned(),
            notify_url: code.notify_url.clone(),
            state: OrderState::NotPay,
            payer_user_id: None,
            fee: 0,
            refunded: 0,
            created_at: now_s,
            expires_at: now_s + self.config.order_lifetime_default_s,
            paid_at: None,
            closed_at: None,
            version: 1,
            payment_transfer_id: transfer_id(id, 1),
            escrow: false,
        };
        let paid = self
            .pay_loaded(user, &order, amount, Vec::new(), idempotency, render, now_s)
            .await?;
        Ok(Outcome::Done(paid))
    }

    /// A payer reports a scanned code as fraudulent. A registered code reported by
    /// [`QrConfig::reports_to_flag`] different payers is flagged until the operator looks at
    /// it; reports of codes this network never issued are kept for the operator.
    pub async fn report_code(
        &self,
        user: &User,
        payload: &str,
        reason: &str,
        now_s: u64,
    ) -> Result<(CodeReport, Option<MerchantCode>), PaymentError> {
        if payload.is_empty() || payload.len() > CODE_PAYLOAD_BYTES_MAX {
            return Err(invalid(
                "payload",
                format!("1 to {CODE_PAYLOAD_BYTES_MAX} bytes"),
            ));
        }
        bounded_text("reason", reason, RECORD_TEXT_BYTES_MAX)?;
        // An unreadable payload is still worth reporting: it was on a sticker somewhere.
        let code = match self.scan(payload, now_s) {
            Ok(scan) => scan.code,
            Err(PaymentError::QrUnreadable(_)) => None,
            Err(error) => return Err(error),
        };
        let _guards = match &code {
            Some(code) => Some(self.locks.lock(&[lock_key("code", code.id)]).await),
            None => None,
        };
        let report = CodeReport {
            id: new_id(now_s * 1000)?,
            code_id: code.as_ref().map(|code| code.id),
            payload_digest: payload_digest(payload),
            payload: payload.to_owned(),
            user_id: user.id,
            reason: reason.to_owned(),
            created_at: now_s,
        };
        let mut records = vec![Record::CodeReport(report.clone())];
        let mut code = match code {
            Some(code) => self
                .handles
                .records(|records| records.merchant_code(code.id))?,
            None => None,
        };
        if let Some(current) = &mut code {
            let reporters: HashSet<u64> = self
                .handles
                .records(|records| records.code_reports(current.id))?
                .iter()
                .map(|report| report.user_id)
                .chain([user.id])
                .collect();
            if current.state == CodeState::Active
                && reporters.len() >= self.config.qr.reports_to_flag
            {
                current.state = CodeState::Flagged;
                current.updated_at = now_s;
                records.push(Record::MerchantCode(current.clone()));
            }
        }
        self.commit(Vec::new(), records).await?;
        Ok((report, code))
    }

    // ---- Customer-presented payment codes ---------------------------------------------------

    /// Enrols a device of the user (the payment password checked by the caller): a random
    /// device number and secret, which the device keeps to derive its codes offline.
    pub async fn enrol_device(
        &self,
        user: &User,
        name: &str,
        now_s: u64,
    ) -> Result<EnrolledDevice, PaymentError> {
        bounded_text("name", name, RECORD_TEXT_BYTES_MAX)?;
        // Both locks in one call (see `charge_code`): the user's devices, and the numbers.
        let _guards = self
            .locks
            .lock(&[lock_key("devices", user.id), lock_key("device-numbers", 0)])
            .await;
        let active = self
            .handles
            .records(|records| records.payment_devices(user.id))?
            .into_iter()
            .filter(|device| device.state == DeviceState::Active)
            .count();
        if active >= self.config.qr.devices_per_user_max {
            return Err(PaymentError::TooManyDevices {
                max: self.config.qr.devices_per_user_max,
            });
        }
        let mut number = None;
        for _ in 0..8 {
            let candidate: u32 = secrets::random_digits(8)?.parse().expect("eight digits");
            if candidate <= DEVICE_NUMBER_MAX
                && self
                    .handles
                    .records(|records| records.payment_device_by_number(candidate))?
                    .is_none()
            {
                number = Some(candidate);
                break;
            }
        }
        let number = number.ok_or_else(|| {
            PaymentError::Ledger("no free device number was found; retry".to_owned())
        })?;
        let device = PaymentDevice {
            id: new_id(now_s * 1000)?,
            user_id: user.id,
            number,
            secret: secrets::random_bytes()?,
            name: name.to_owned(),
            state: DeviceState::Active,
            created_at: now_s,
            revoked_at: None,
        };
        self.commit(Vec::new(), vec![Record::PaymentDevice(device.clone())])
            .await?;
        Ok(EnrolledDevice {
            device,
            prefix: self.config.qr.payment_code_prefix,
        })
    }

    pub fn devices(&self, user_id: u64) -> Result<Vec<PaymentDevice>, PaymentError> {
        Ok(self
            .handles
            .records(|records| records.payment_devices(user_id))?)
    }

    /// Revokes one of the user's devices: its codes are refused from now on.
    pub async fn revoke_device(
        &self,
        user_id: u64,
        device_id: u64,
        now_s: u64,
    ) -> Result<PaymentDevice, PaymentError> {
        let _guards = self.locks.lock(&[lock_key("devices", user_id)]).await;
        let device = self
            .handles
            .records(|records| records.payment_device(device_id))?
            .filter(|device| device.user_id == user_id)
            .ok_or(PaymentError::NotFound("device"))?;
        if device.state == DeviceState::Revoked {
            return Ok(device);
        }
        let revoked = PaymentDevice {
            state: DeviceState::Revoked,
            revoked_at: Some(now_s),
            ..device
        };
        self.commit(Vec::new(), vec![Record::PaymentDevice(revoked.clone())])
            .await?;
        Ok(revoked)
    }

    fn device_locked(&self, number: u32, now_s: u64) -> bool {
        let failures = self.code_failures.lock().expect("code failures");
        failures.get(&number).is_some_and(|failures| {
            failures.count >= self.config.qr.device_failures_max
                && now_s < failures.last_at + self.config.qr.device_lock_s
        })
    }

    fn count_failure(&self, number: u32, now_s: u64) {
        let mut failures = self.code_failures.lock().expect("code failures");
        if failures.len() >= super::MERCHANTS_CACHED_MAX {
            failures.retain(|_, failures| now_s < failures.last_at + self.config.qr.device_lock_s);
        }
        let entry = failures.entry(number).or_default();
        if now_s >= entry.last_at + self.config.qr.device_lock_s {
            entry.count = 0;
        }
        entry.count += 1;
        entry.last_at = now_s;
    }

    /// Checks a payment code: its device, active and not locked by wrong codes, and its MAC in
    /// the time window. Returns the device and the code's step and slot. Does not check that
    /// the code is unused.
    pub fn verify_payment_code(
        &self,
        auth_code: &str,
        now_s: u64,
    ) -> Result<(PaymentDevice, u64, u8), PaymentError> {
        let code = TallyPaymentCode::parse(auth_code, self.config.qr.payment_code_prefix)
            .map_err(|_| PaymentError::PaymentCodeInvalid)?;
        let parts = payment_codes::parts(&code);
        if self.device_locked(parts.device_number, now_s) {
            return Err(PaymentError::PaymentCodeLocked);
        }
        let device = self
            .handles
            .records(|records| records.payment_device_by_number(parts.device_number))?
            .filter(|device| device.state == DeviceState::Active);
        let verified = device.as_ref().and_then(|device| {
            payment_codes::verify(&device.secret, &parts, now_s).map(|step| (step, parts.slot))
        });
        match (device, verified) {
            (Some(device), Some((step, slot))) => {
                self.code_failures
                    .lock()
                    .expect("code failures")
                    .remove(&parts.device_number);
                Ok((device, step, slot))
            }
            _ => {
                self.count_failure(parts.device_number, now_s);
                Err(PaymentError::PaymentCodeInvalid)
            }
        }
    }

    /// A POS charges a payment code. Up to the no-password amount the order is paid at once;
    /// above it the order waits, bound to its payer, until the payer confirms with the payment
    /// password (`USERPAYING`) or it expires. The same `out_trade_no` with the same content
    /// answers the existing order; a code is charged once.
    pub async fn charge_code(
        &self,
        merchant: &Merchant,
        input: NewCharge,
        idempotency: Option<&Idempotency>,
        render: Render<'_, Order>,
        now_s: u64,
    ) -> Result<Outcome<Order>, PaymentError> {
        self.check_order_fields(
            &input.out_trade_no,
            input.amount,
            &input.currency,
            &input.description,
            input.notify_url.as_deref(),
        )?;
        self.check_outlet(merchant.id, input.outlet_id)?;
        // A retry is answered from what is stored, whatever its code says by now; asked again
        // below, under the locks.
        if let Some(answer) = self.charge_answered(merchant, &input, idempotency)? {
            return answer;
        }
        let (device, step, slot) = self.verify_payment_code(&input.auth_code, now_s)?;
        let id = new_id(now_s * 1000)?;
        // Every lock of the charge in one call: taken in two calls, one after the other, two
        // charges could each hold a stripe the other waits for (or one charge its own).
        let mut keys = vec![
            lock_key("out_trade_no", (merchant.id, &input.out_trade_no)),
            lock_key("code-use", device.id),
            lock_key("user", device.user_id),
            lock_key("order", id),
        ];
        keys.extend(idempotency.map(Idempotency::lock_key));
        let _guards = self.locks.lock(&keys).await;
        if let Some(answer) = self.charge_answered(merchant, &input, idempotency)? {
            return answer;
        }
        if self
            .handles
            .records(|records| records.code_use(device.id, step, slot))?
            .is_some()
        {
            return Err(PaymentError::PaymentCodeUsed);
        }
        let user = self
            .handles
            .users(|users| users.user(device.user_id))?
            .ok_or(PaymentError::NotFound("user"))?;
        if now_s < user.payment_locked_until {
            return Err(PaymentError::User(crate::users::UserError::PaymentLocked {
                until: user.payment_locked_until,
            }));
        }
        let order = Order {
            id,
            merchant_id: merchant.id,
            outlet_id: input.outlet_id,
            out_trade_no: input.out_trade_no,
            amount: input.amount,
            currency: input.currency,
            description: input.description,
            notify_url: input.notify_url,
            state: OrderState::NotPay,
            payer_user_id: Some(user.id),
            fee: 0,
            refunded: 0,
            created_at: now_s,
            expires_at: now_s + self.config.qr.confirm_lifetime_s,
            paid_at: None,
            closed_at: None,
            version: 1,
            payment_transfer_id: transfer_id(id, 1),
            escrow: false,
        };
        let code_use = Record::CodeUse(CodeUse {
            device_id: device.id,
            step,
            slot,
            order_id: id,
            created_at: now_s,
        });
        if order.amount <= self.config.qr.no_password_max {
            let paid = self
                .pay_loaded(
                    &user,
                    &order,
                    order.amount,
                    vec![code_use],
                    idempotency,
                    render,
                    now_s,
                )
                .await?;
            return Ok(Outcome::Done(paid));
        }
        // Refused now rather than after the payer confirms.
        self.check_limits(&user, order.amount, now_s)?;
        let waiting = super::event_record(
            order.merchant_id,
            order.id,
            order.version,
            "order.userpaying",
            &super::OrderView::of(&order),
            order.notify_url.clone(),
            now_s,
        )?;
        let mut records = vec![Record::Order(order.clone()), code_use, waiting];
        records.extend(Idempotency::record(idempotency, render, &order, now_s));
        self.commit(Vec::new(), records).await?;
        Ok(Outcome::Done(order))
    }

    /// The answer to a charge already made: its stored answer (an `Idempotency-Key` seen
    /// before), or the order of its `out_trade_no` if the content is the same (another
    /// content is refused).
    fn charge_answered(
        &self,
        merchant: &Merchant,
        input: &NewCharge,
        idempotency: Option<&Idempotency>,
    ) -> Result<Option<Result<Outcome<Order>, PaymentError>>, PaymentError> {
        if let Some((status, body)) = Idempotency::replay(idempotency, &self.handles)? {
            return Ok(Some(Ok(Outcome::Replayed { status, body })));
        }
        let existing = self
            .handles
            .records(|records| records.order_by_out_trade_no(merchant.id, &input.out_trade_no))?;
        Ok(existing.map(|existing| {
            let same = existing.amount == input.amount
                && existing.description == input.description
                && existing.notify_url == input.notify_url
                && existing.outlet_id == input.outlet_id
                && existing.payer_user_id.is_some();
            if same {
                Ok(Outcome::Done(existing))
            } else {
                Err(PaymentError::OutTradeNoUsed)
            }
        }))
    }

    /// The user's charges waiting for confirmation, newest first (expired ones left out).
    pub fn orders_awaiting(&self, user_id: u64, now_s: u64) -> Result<Vec<Order>, PaymentError> {
        let mut orders = self
            .handles
            .records(|records| records.orders_awaiting_payer(user_id, super::PAGE_AWAITING_MAX))?;
        orders.retain(|order| now_s < order.expires_at);
        Ok(orders)
    }
}

/// Failures per device number.
pub(super) type FailureMap = HashMap<u32, Failures>;
