//! The merchant order as a state machine, pure: `NOTPAY → SUCCESS` (paid), `NOTPAY → CLOSED`
//! (closed by the merchant, or expired), `SUCCESS → REFUND` (after the first refund; further
//! refunds up to the paid amount). Every refusal is its own variant, checked in a fixed order.

use store::{Order, OrderState};

/// What can happen to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderCommand {
    /// A user pays `amount` at `now` (Unix seconds).
    Pay {
        payer_user_id: u64,
        amount: u64,
        fee: u64,
        now: u64,
    },
    /// The merchant closes it.
    Close { now: u64 },
    /// Its expiry passed without payment.
    Expire { now: u64 },
    /// The merchant refunds `amount`.
    Refund { amount: u64 },
}

/// Why a command was refused; the order is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OrderRefusal {
    #[error("the order is already paid")]
    AlreadyPaid,
    #[error("the order is closed")]
    Closed,
    #[error("the order has expired")]
    Expired,
    #[error("the amount does not match the order's amount of {expected}")]
    AmountMismatch { expected: u64 },
    #[error("the order is not paid, so nothing can be refunded")]
    NotPaid,
    #[error("a refund of at most {refundable} is left on this order")]
    RefundExceedsPaid { refundable: u64 },
    #[error("an amount must be positive")]
    ZeroAmount,
    #[error("the order has not expired yet")]
    NotExpired,
}

/// The order after `command`, with its version counted up; or why not.
pub fn transition(order: &Order, command: OrderCommand) -> Result<Order, OrderRefusal> {
    let mut next = order.clone();
    match (order.state, command) {
        (
            OrderState::NotPay,
            OrderCommand::Pay {
                payer_user_id,
                amount,
                fee,
                now,
            },
        ) => {
            if now >= order.expires_at {
                return Err(OrderRefusal::Expired);
            }
            if amount != order.amount {
                return Err(OrderRefusal::AmountMismatch {
                    expected: order.amount,
                });
            }
            assert!(fee <= amount, "the fee is a part of the amount");
            next.state = OrderState::Success;
            next.payer_user_id = Some(payer_user_id);
            next.fee = fee;
            next.paid_at = Some(now);
        }
        (OrderState::Success | OrderState::Refund, OrderCommand::Pay { .. }) => {
            return Err(OrderRefusal::AlreadyPaid)
        }
        (OrderState::Closed, OrderCommand::Pay { .. }) => return Err(OrderRefusal::Closed),
        (OrderState::NotPay, OrderCommand::Close { now }) => {
            next.state = OrderState::Closed;
            next.closed_at = Some(now);
        }
        (OrderState::NotPay, OrderCommand::Expire { now }) => {
            if now < order.expires_at {
                return Err(OrderRefusal::NotExpired);
            }
            next.state = OrderState::Closed;
            next.closed_at = Some(now);
        }
        (OrderState::Success | OrderState::Refund, OrderCommand::Close { .. })
        | (OrderState::Success | OrderState::Refund, OrderCommand::Expire { .. }) => {
            return Err(OrderRefusal::AlreadyPaid)
        }
        (OrderState::Closed, OrderCommand::Close { .. } | OrderCommand::Expire { .. }) => {
            return Err(OrderRefusal::Closed)
        }
        (OrderState::NotPay | OrderState::Closed, OrderCommand::Refund { .. }) => {
            return Err(OrderRefusal::NotPaid)
        }
        (OrderState::Success | OrderState::Refund, OrderCommand::Refund { amount }) => {
            if amount == 0 {
                return Err(OrderRefusal::ZeroAmount);
            }
            let refundable = order.amount - order.refunded;
            if amount > refundable {
                return Err(OrderRefusal::RefundExceedsPaid { refundable });
            }
            next.state = OrderState::Refund;
            next.refunded += amount;
        }
    }
    next.version += 1;
    assert!(next.refunded <= next.amount);
    Ok(next)
}

/// The state an order shows: its stored state, except that an unpaid order a POS bound to its
/// payer shows `USERPAYING` (waiting for the payer to confirm), as WeChat Pay's micropay does.
pub fn trade_state(order: &Order) -> &'static str {
    match (order.state, order.payer_user_id) {
        (OrderState::NotPay, Some(_)) => "USERPAYING",
        (state, _) => state.as_str(),
    }
}

/// The merchant fee of a payment: `amount × rate` in basis points, rounded half up.
pub fn fee(amount: u64, fee_rate_bps: u32) -> u64 {
    let fee = (u128::from(amount) * u128::from(fee_rate_bps) + 5_000) / 10_000;
    u64::try_from(fee)
        .expect("a fee is at most the amount")
        .min(amount)
}

/// The part of the fee given back with a refund of `amount`: in proportion, and the last
/// refund takes whatever is left, so a full refund gives back the whole fee exactly.
pub fn fee_refunded(order: &Order, amount: u64, fee_refunded_before: u64) -> u64 {
    let fee_left = order.fee - fee_refunded_before;
    if order.refunded + amount == order.amount {
        return fee_left;
    }
    let share = u128::from(order.fee) * u128::from(amount) / u128::from(order.amount);
    u64::try_from(share).expect("below the fee").min(fee_left)
}

/// An unpaid order of 1,000 minor units, for tests.
#[cfg(test)]
pub(crate) fn sample_order(id: u64) -> Order {
    Order {
        id,
        merchant_id: 2,
        outlet_id: None,
        out_trade_no: format!("T{id}"),
        amount: 1_000,
        currency: "CNY".into(),
        description: "tea".into(),
        notify_url: None,
        state: OrderState::NotPay,
        payer_user_id: None,
        fee: 0,
        refunded: 0,
        created_at: 100,
        expires_at: 200,
        paid_at: None,
        closed_at: None,
        version: 1,
        payment_transfer_id: crate::ids::transfer_id(id, 1),
        escrow: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Order {
        sample_order(1)
    }

    fn pay(amount: u64, now: u64) -> OrderCommand {
        OrderCommand::Pay {
            payer_user_id: 9,
            amount,
            fee: 6,
            now,
        }
    }

    #[test]
    fn an_order_is_paid_once_then_refunded_up_to_its_amount() {
        let paid = transition(&order(), pay(1_000, 150)).unwrap();
        assert_eq!(paid.state, OrderState::Success);
        assert_eq!(
            (paid.payer_user_id, paid.fee, paid.version),
            (Some(9), 6, 2)
        );
        assert_eq!(
            transition(&paid, pay(1_000, 151)),
            Err(OrderRefusal::AlreadyPaid)
        );
        assert_eq!(
            transition(&paid, OrderCommand::Close { now: 160 }),
            Err(OrderRefusal::AlreadyPaid)
        );
        let refunded = transition(&paid, OrderCommand::Refund { amount: 400 }).unwrap();
        assert_eq!(
            (refunded.state, refunded.refunded),
            (OrderState::Refund, 400)
        );
        assert_eq!(
            transition(&refunded, OrderCommand::Refund { amount: 601 }),
            Err(OrderRefusal::RefundExceedsPaid { refundable: 600 })
        );
        let full = transition(&refunded, OrderCommand::Refund { amount: 600 }).unwrap();
        assert_eq!(full.refunded, 1_000);
        assert_eq!(
            transition(&full, OrderCommand::Refund { amount: 1 }),
            Err(OrderRefusal::RefundExceedsPaid { refundable: 0 })
        );
    }

    #[test]
    fn refusals_say_why_and_change_nothing() {
        let open = order();
        assert_eq!(
            transition(&open, pay(999, 150)),
            Err(OrderRefusal::AmountMismatch { expected: 1_000 })
        );
        assert_eq!(
            transition(&open, pay(1_000, 200)),
            Err(OrderRefusal::Expired)
        );
        assert_eq!(
            transition(&open, OrderCommand::Refund { amount: 1 }),
            Err(OrderRefusal::NotPaid)
        );
        assert_eq!(
            transition(&open, OrderCommand::Expire { now: 199 }),
            Err(OrderRefusal::NotExpired)
        );
        let closed = transition(&open, OrderCommand::Close { now: 150 }).unwrap();
        assert_eq!(closed.state, OrderState::Closed);
        assert_eq!(
            transition(&closed, pay(1_000, 151)),
            Err(OrderRefusal::Closed)
        );
        let expired = transition(&open, OrderCommand::Expire { now: 200 }).unwrap();
        assert_eq!(expired.state, OrderState::Closed);
    }

    #[test]
    fn fees_round_half_up_and_refunds_give_the_whole_fee_back() {
        assert_eq!(fee(1_000, 60), 6);
        assert_eq!(fee(1_234, 60), 7); // 7.404
        assert_eq!(fee(1_250, 60), 8); // 7.5 → 8
        assert_eq!(fee(1, 10_000), 1);
        let mut paid = transition(&order(), pay(1_000, 150)).unwrap();
        paid.fee = 7;
        let first = fee_refunded(&paid, 333, 0);
        assert_eq!(first, 2); // 7 × 333 / 1000 = 2.33
        let after = transition(&paid, OrderCommand::Refund { amount: 333 }).unwrap();
        assert_eq!(fee_refunded(&after, 667, first), 5);
    }
}
