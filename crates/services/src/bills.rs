//! A merchant's daily bill: one CSV line per payment and per refund of a UTC day, then the
//! totals, as WeChat Pay's and Alipay's downloadable bills give them.

use std::fmt::Write;

use ledger::Currency;
use store::Merchant;

use crate::payments::PaymentError;
use crate::support::Handles;
use crate::time::rfc3339_seconds;

const SECONDS_PER_DAY: u64 = 86_400;
pub const HEADER: &str =
    "type,time,order_id,out_trade_no,refund_id,out_refund_no,amount,fee,net,currency";

fn decimal(currency: Currency, minor: u64, negative: bool) -> String {
    let text = currency.format_decimal(u128::from(minor));
    if negative && minor > 0 {
        format!("-{text}")
    } else {
        text
    }
}

/// The bill of the day starting at `day_start` (Unix seconds, UTC midnight).
pub fn daily_bill(
    handles: &Handles,
    merchant: &Merchant,
    day_start: u64,
) -> Result<String, PaymentError> {
    let day_end = day_start + SECONDS_PER_DAY;
    let (orders, refunds) = handles.records(|records| {
        let orders = records.orders_paid_between(merchant.id, day_start, day_end)?;
        let refunds = records.refunds_between(merchant.id, day_start, day_end)?;
        let mut refunded_orders = Vec::with_capacity(refunds.len());
        for refund in &refunds {
            refunded_orders.push(records.order(refund.order_id)?);
        }
        Ok((
            orders,
            refunds.into_iter().zip(refunded_orders).collect::<Vec<_>>(),
        ))
    })?;
    let mut csv = String::from(HEADER);
    csv.push('\n');
    let mut currency_name = String::from("CNY");
    let (mut paid_count, mut paid_amount, mut paid_fee) = (0u64, 0u64, 0u64);
    for order in &orders {
        let currency = Currency::parse(&order.currency)
            .map_err(|_| PaymentError::Ledger(format!("order {} has a bad currency", order.id)))?;
        currency_name.clone_from(&order.currency);
        paid_count += 1;
        paid_amount += order.amount;
        paid_fee += order.fee;
        let _ = writeln!(
            csv,
            "payment,{},ord_{},{},,,{},{},{},{}",
            rfc3339_seconds(order.paid_at.unwrap_or(order.created_at)),
            order.id,
            order.out_trade_no,
            decimal(currency, order.amount, false),
            decimal(currency, order.fee, false),
            decimal(currency, order.amount - order.fee, false),
            order.currency,
        );
    }
    let (mut refund_count, mut refund_amount, mut refund_fee) = (0u64, 0u64, 0u64);
    for (refund, order) in &refunds {
        let code = order
            .as_ref()
            .map_or("CNY", |order| order.currency.as_str());
        let currency = Currency::parse(code).map_err(|_| {
            PaymentError::Ledger(format!("refund {} has a bad currency", refund.id))
        })?;
        refund_count += 1;
        refund_amount += refund.amount;
        refund_fee += refund.fee_refunded;
        let _ = writeln!(
            csv,
            "refund,{},ord_{},{},rfd_{},{},{},{},{},{}",
            rfc3339_seconds(refund.created_at),
            refund.order_id,
            order
                .as_ref()
                .map_or("", |order| order.out_trade_no.as_str()),
            refund.id,
            refund.out_refund_no,
            decimal(currency, refund.amount, true),
            decimal(currency, refund.fee_refunded, true),
            decimal(currency, refund.amount - refund.fee_refunded, true),
            code,
        );
    }
    let currency =
        Currency::parse(&currency_name).unwrap_or(Currency::parse("CNY").expect("valid"));
    let _ = writeln!(
        csv,
        "total_payments,{paid_count},,,,,{},{},{},{currency_name}",
        decimal(currency, paid_amount, false),
        decimal(currency, paid_fee, false),
        decimal(currency, paid_amount - paid_fee, false)
    );
    let _ = writeln!(
        csv,
        "total_refunds,{refund_count},,,,,{},{},{},{currency_name}",
        decimal(currency, refund_amount, true),
        decimal(currency, refund_fee, true),
        decimal(currency, refund_amount - refund_fee, true)
    );
    let net = i128::from(paid_amount - paid_fee) - i128::from(refund_amount - refund_fee);
    let _ = writeln!(
        csv,
        "total_net,{},,,,,,,{},{currency_name}",
        paid_count + refund_count,
        decimal(currency, net.unsigned_abs() as u64, net < 0),
    );
    Ok(csv)
}
