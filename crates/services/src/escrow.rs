//! Escrow ("guaranteed trade"), pure: an escrowed payment's life as a state machine.
//!
//! ```text
//! held ──ship──► shipped ──confirm / timer──► released
//!  │ ╲                │
//!  │  ╲ dispute       │ dispute
//!  │   ╲──────► disputed ◄┘ ──resolve──► refunded | released | split
//!  └──timer (not shipped in time)──► refunded
//! ```
//!
//! Every refusal is its own variant and leaves the escrow unchanged. A transition that settles
//! the escrow says how much goes to the seller and how much back to the buyer.

use store::{Escrow, EscrowState};

/// How long the seller has to ship, and the buyer to confirm once shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscrowConfig {
    /// Not shipped within this many seconds of the payment: refunded by itself.
    pub ship_within_s: u64,
    /// Not confirmed (nor disputed) within this many seconds of shipping: released by itself.
    pub confirm_within_s: u64,
}

impl Default for EscrowConfig {
    fn default() -> Self {
        EscrowConfig {
            ship_within_s: 7 * 86_400,
            confirm_within_s: 10 * 86_400,
        }
    }
}

/// How the operator settles a dispute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    RefundBuyer,
    ReleaseToSeller,
    /// `to_buyer` back to the buyer, the rest to the seller.
    Split {
        to_buyer: u64,
    },
}

/// What can happen to an escrow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EscrowCommand {
    Ship {
        carrier: String,
        tracking_no: String,
        now: u64,
    },
    /// The buyer confirms receipt.
    Confirm { now: u64 },
    Dispute {
        reason: String,
        evidence: String,
        now: u64,
    },
    /// The operator settles a dispute; `by` names the operator's credential.
    Resolve {
        resolution: Resolution,
        by: String,
        note: String,
        now: u64,
    },
    /// The timer: refunds what was not shipped in time, releases what was not confirmed.
    Timer { now: u64 },
}

/// Why a command was refused; the escrow is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EscrowRefusal {
    #[error("the order is not shipped yet")]
    NotShipped,
    #[error("the order is shipped already")]
    AlreadyShipped,
    #[error("the escrow is in dispute; the operator settles it")]
    InDispute,
    #[error("the escrow is settled already")]
    Settled,
    #[error("there is no dispute to resolve")]
    NoDispute,
    #[error("a split gives the buyer at most the amount held, {amount}")]
    SplitTooLarge { amount: u64 },
    #[error("no timer of this escrow is due")]
    NotDue,
}

/// What a transition pays out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settlement {
    pub to_seller: u64,
    pub to_buyer: u64,
}

/// A new escrow for an order paid at `now`.
pub fn held(
    order_id: u64,
    merchant_id: u64,
    buyer_user_id: u64,
    amount: u64,
    config: &EscrowConfig,
    now: u64,
) -> Escrow {
    let ship_by = now + config.ship_within_s;
    Escrow {
        order_id,
        merchant_id,
        buyer_user_id,
        amount,
        state: EscrowState::Held,
        carrier: None,
        tracking_no: None,
        ship_by,
        shipped_at: None,
        release_at: None,
        due_at: Some(ship_by),
        dispute_reason: None,
        dispute_evidence: None,
        released: 0,
        refunded: 0,
        settled_by: None,
        note: None,
        created_at: now,
        updated_at: now,
        version: 1,
    }
}

fn settle(next: &mut Escrow, settlement: Settlement, by: &str, now: u64) {
    next.state = match (settlement.to_seller, settlement.to_buyer) {
        (_, 0) => EscrowState::Released,
        (0, _) => EscrowState::Refunded,
        _ => EscrowState::Split,
    };
    next.released = settlement.to_seller;
    next.refunded = settlement.to_buyer;
    next.settled_by = Some(by.to_owned());
    next.due_at = None;
    next.updated_at = now;
}

/// The escrow after `command`, with what it pays out (nothing unless it settles); or why not.
pub fn transition(
    escrow: &Escrow,
    command: EscrowCommand,
    config: &EscrowConfig,
) -> Result<(Escrow, Settlement), EscrowRefusal> {
    let settled = matches!(
        escrow.state,
        EscrowState::Released | EscrowState::Refunded | EscrowState::Split
    );
    if settled {
        return Err(EscrowRefusal::Settled);
    }
    let mut next = escrow.clone();
    let mut settlement = Settlement::default();
    match command {
        EscrowCommand::Ship {
            carrier,
            tracking_no,
            now,
        } => match escrow.state {
            EscrowState::Held => {
                next.state = EscrowState::Shipped;
                next.carrier = Some(carrier);
                next.tracking_no = Some(tracking_no);
                next.shipped_at = Some(now);
                let release_at = now + config.confirm_within_s;
                next.release_at = Some(release_at);
                next.due_at = Some(release_at);
                next.updated_at = now;
            }
            EscrowState::Shipped => return Err(EscrowRefusal::AlreadyShipped),
            _ => return Err(EscrowRefusal::InDispute),
        },
        EscrowCommand::Confirm { now } => match escrow.state {
            EscrowState::Shipped => {
                settlement.to_seller = escrow.amount;
                settle(&mut next, settlement, "buyer", now);
            }
            EscrowState::Held => return Err(EscrowRefusal::NotShipped),
            _ => return Err(EscrowRefusal::InDispute),
        },
        EscrowCommand::Dispute {
            reason,
            evidence,
            now,
        } => match escrow.state {
            EscrowState::Held | EscrowState::Shipped => {
                next.state = EscrowState::Disputed;
                next.dispute_reason = Some(reason);
                next.dispute_evidence = Some(evidence);
                // Frozen: no timer runs while the operator looks at it.
                next.due_at = None;
                next.updated_at = now;
            }
            _ => return Err(EscrowRefusal::InDispute),
        },
        EscrowCommand::Resolve {
            resolution,
            by,
            note,
            now,
        } => {
            if escrow.state != EscrowState::Disputed {
                return Err(EscrowRefusal::NoDispute);
            }
            settlement = match resolution {
                Resolution::RefundBuyer => Settlement {
                    to_seller: 0,
                    to_buyer: escrow.amount,
                },
                Resolution::ReleaseToSeller => Settlement {
                    to_seller: escrow.amount,
                    to_buyer: 0,
                },
                Resolution::Split { to_buyer } => {
                    if to_buyer > escrow.amount {
                        return Err(EscrowRefusal::SplitTooLarge {
                            amount: escrow.amount,
                        });
                    }
                    Settlement {
                        to_seller: escrow.amount - to_buyer,
                        to_buyer,
                    }
                }
            };
            settle(&mut next, settlement, &by, now);
            next.note = Some(note);
        }
        EscrowCommand::Timer { now } => {
            if escrow.due_at.is_none_or(|due| now < due) {
                return Err(EscrowRefusal::NotDue);
            }
            settlement = match escrow.state {
                EscrowState::Held => Settlement {
                    to_seller: 0,
                    to_buyer: escrow.amount,
                },
                EscrowState::Shipped => Settlement {
                    to_seller: escrow.amount,
                    to_buyer: 0,
                },
                _ => return Err(EscrowRefusal::NotDue),
            };
            settle(&mut next, settlement, "timer", now);
        }
    }
    next.version += 1;
    assert_eq!(
        next.released + next.refunded,
        if matches!(
            next.state,
            EscrowState::Released | EscrowState::Refunded | EscrowState::Split
        ) {
            next.amount
        } else {
            0
        }
    );
    Ok((next, settlement))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: EscrowConfig = EscrowConfig {
        ship_within_s: 100,
        confirm_within_s: 1_000,
    };

    fn ship(now: u64) -> EscrowCommand {
        EscrowCommand::Ship {
            carrier: "SF".into(),
            tracking_no: "SF1".into(),
            now,
        }
    }

    #[test]
    fn shipped_then_confirmed_releases_everything_to_the_seller() {
        let escrow = held(1, 2, 3, 500, &CONFIG, 10);
        assert_eq!(escrow.due_at, Some(110));
        assert_eq!(
            transition(&escrow, EscrowCommand::Confirm { now: 11 }, &CONFIG),
            Err(EscrowRefusal::NotShipped)
        );
        let (shipped, paid) = transition(&escrow, ship(20), &CONFIG).unwrap();
        assert_eq!(
            (shipped.state, shipped.due_at, paid),
            (EscrowState::Shipped, Some(1_020), Settlement::default())
        );
        assert_eq!(
            transition(&shipped, ship(21), &CONFIG),
            Err(EscrowRefusal::AlreadyShipped)
        );
        let (released, paid) =
            transition(&shipped, EscrowCommand::Confirm { now: 30 }, &CONFIG).unwrap();
        assert_eq!(released.state, EscrowState::Released);
        assert_eq!(
            paid,
            Settlement {
                to_seller: 500,
                to_buyer: 0
            }
        );
        assert_eq!(released.settled_by.as_deref(), Some("buyer"));
        assert_eq!(released.due_at, None);
        assert_eq!(
            transition(&released, EscrowCommand::Confirm { now: 31 }, &CONFIG),
            Err(EscrowRefusal::Settled)
        );
    }

    #[test]
    fn timers_refund_what_was_not_shipped_and_release_what_was_not_confirmed() {
        let escrow = held(1, 2, 3, 500, &CONFIG, 10);
        assert_eq!(
            transition(&escrow, EscrowCommand::Timer { now: 109 }, &CONFIG),
            Err(EscrowRefusal::NotDue)
        );
        let (refunded, paid) =
            transition(&escrow, EscrowCommand::Timer { now: 110 }, &CONFIG).unwrap();
        assert_eq!(
            (refunded.state, paid.to_buyer),
            (EscrowState::Refunded, 500)
        );
        let (shipped, _) = transition(&escrow, ship(50), &CONFIG).unwrap();
        assert_eq!(
            transition(&shipped, EscrowCommand::Timer { now: 1_049 }, &CONFIG),
            Err(EscrowRefusal::NotDue)
        );
        let (released, paid) =
            transition(&shipped, EscrowCommand::Timer { now: 1_050 }, &CONFIG).unwrap();
        assert_eq!(
            (released.state, paid.to_seller),
            (EscrowState::Released, 500)
        );
    }

    #[test]
    fn a_dispute_freezes_the_escrow_until_the_operator_settles_it() {
        let (shipped, _) = transition(&held(1, 2, 3, 500, &CONFIG, 10), ship(20), &CONFIG).unwrap();
        let dispute = EscrowCommand::Dispute {
            reason: "broken".into(),
            evidence: "photo-1".into(),
            now: 30,
        };
        let (disputed, _) = transition(&shipped, dispute.clone(), &CONFIG).unwrap();
        assert_eq!(
            (disputed.state, disputed.due_at),
            (EscrowState::Disputed, None)
        );
        assert_eq!(
            transition(&disputed, EscrowCommand::Timer { now: 10_000 }, &CONFIG),
            Err(EscrowRefusal::NotDue)
        );
        assert_eq!(
            transition(&disputed, EscrowCommand::Confirm { now: 31 }, &CONFIG),
            Err(EscrowRefusal::InDispute)
        );
        assert_eq!(
            transition(&disputed, dispute, &CONFIG),
            Err(EscrowRefusal::InDispute)
        );
        let resolve = |resolution| EscrowCommand::Resolve {
            resolution,
            by: "key_9".into(),
            note: "checked the photos".into(),
            now: 40,
        };
        assert_eq!(
            transition(
                &disputed,
                resolve(Resolution::Split { to_buyer: 501 }),
                &CONFIG
            ),
            Err(EscrowRefusal::SplitTooLarge { amount: 500 })
        );
        let (split, paid) = transition(
            &disputed,
            resolve(Resolution::Split { to_buyer: 200 }),
            &CONFIG,
        )
        .unwrap();
        assert_eq!(
            (split.state, paid),
            (
                EscrowState::Split,
                Settlement {
                    to_seller: 300,
                    to_buyer: 200
                }
            )
        );
        assert_eq!(split.settled_by.as_deref(), Some("key_9"));
        let (refunded, _) =
            transition(&disputed, resolve(Resolution::RefundBuyer), &CONFIG).unwrap();
        assert_eq!(
            (refunded.state, refunded.refunded),
            (EscrowState::Refunded, 500)
        );
        assert_eq!(
            transition(&shipped, resolve(Resolution::RefundBuyer), &CONFIG),
            Err(EscrowRefusal::NoDispute)
        );
    }
}
