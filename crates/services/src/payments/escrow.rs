//! Escrow ("guaranteed trade"): an order created with `escrow` is paid into the escrow
//! account, not to the merchant. The merchant ships; the buyer confirms receipt and the money
//! is released to the merchant less its fee; timers refund what is not shipped in time and
//! release what is not confirmed in time; a buyer's dispute freezes it until the operator
//! settles it (refund, release or split), with who and why recorded. Every transition is one
//! request with its money, the escrow's new state and the merchant's notification.

use ledger::{Event, EventResult, NewTransfer, TransferFlags};
use store::{Escrow, EscrowState, Order, Record, User, RECORD_TEXT_BYTES_MAX};

use super::{
    bounded_text, event_record, first_refusal, invalid, PaymentError, Payments, ESCROW_ACCOUNT_ID,
    FEES_ACCOUNT_ID,
};
use crate::accounts::{TRANSFER_ESCROW_REFUND, TRANSFER_ESCROW_RELEASE, TRANSFER_FEE};
use crate::escrow::{self, EscrowCommand, Resolution, Settlement};
use crate::ids::transfer_id;
use crate::orders::{self, OrderCommand};
use crate::support::lock_key;

/// Ledger legs of an escrowed order (leg 1 is its payment into escrow).
const LEG_FEE: u8 = 2;
const LEG_RELEASE: u8 = 3;
const LEG_REFUND: u8 = 4;

/// Who acts on an escrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscrowActor {
    Merchant(u64),
    Buyer(u64),
    /// An operator, by credential id.
    Operator(u64),
    Timer,
}

/// An escrow as the API shows it.
pub fn escrow_json(escrow: &Escrow) -> serde_json::Value {
    let time = crate::time::rfc3339_seconds;
    serde_json::json!({
        "order_id": format!("ord_{}", escrow.order_id),
        "object": "escrow",
        "merchant_id": format!("mch_{}", escrow.merchant_id),
        "buyer_id": format!("usr_{}", escrow.buyer_user_id),
        "amount": escrow.amount,
        "state": escrow.state.as_str(),
        "carrier": escrow.carrier,
        "tracking_no": escrow.tracking_no,
        "ship_by": time(escrow.ship_by),
        "shipped_at": escrow.shipped_at.map(time),
        "release_at": escrow.release_at.map(time),
        "dispute": escrow.dispute_reason.as_ref().map(|reason| serde_json::json!({
            "reason": reason,
            "evidence": escrow.dispute_evidence,
        })),
        "released": escrow.released,
        "refunded": escrow.refunded,
        "settled_by": escrow.settled_by,
        "note": escrow.note,
        "created_at": time(escrow.created_at),
        "updated_at": time(escrow.updated_at),
        "version": escrow.version,
    })
}

impl Payments {
    /// An escrow, to its buyer, its merchant or an operator (`None`).
    pub fn escrow(
        &self,
        viewer: Option<EscrowActor>,
        order_id: u64,
    ) -> Result<Escrow, PaymentError> {
        let escrow = self
            .handles
            .records(|records| records.escrow(order_id))?
            .ok_or(PaymentError::NotFound("escrow"))?;
        let visible = match viewer {
            Some(EscrowActor::Merchant(id)) => escrow.merchant_id == id,
            Some(EscrowActor::Buyer(id)) => escrow.buyer_user_id == id,
            Some(EscrowActor::Operator(_) | EscrowActor::Timer) | None => true,
        };
        if visible {
            Ok(escrow)
        } else {
            Err(PaymentError::NotFound("escrow"))
        }
    }

    /// The merchant marks an escrowed order shipped.
    pub async fn ship(
        &self,
        merchant_id: u64,
        order_id: u64,
        carrier: &str,
        tracking_no: &str,
        now_s: u64,
    ) -> Result<Escrow, PaymentError> {
        for (field, text) in [("carrier", carrier), ("tracking_no", tracking_no)] {
            bounded_text(field, text, RECORD_TEXT_BYTES_MAX)?;
            if text.trim().is_empty() {
                return Err(invalid(field, "required"));
            }
        }
        self.act(
            EscrowActor::Merchant(merchant_id),
            order_id,
            EscrowCommand::Ship {
                carrier: carrier.to_owned(),
                tracking_no: tracking_no.to_owned(),
                now: now_s,
            },
        )
        .await
    }

    /// The buyer confirms receipt (the payment password checked by the caller): released.
    pub async fn confirm_receipt(
        &self,
        buyer: &User,
        order_id: u64,
        now_s: u64,
    ) -> Result<Escrow, PaymentError> {
        self.act(
            EscrowActor::Buyer(buyer.id),
            order_id,
            EscrowCommand::Confirm { now: now_s },
        )
        .await
    }

    /// The buyer opens a dispute: frozen until the operator settles it.
    pub async fn dispute(
        &self,
        buyer: &User,
        order_id: u64,
        reason: &str,
        evidence: &str,
        now_s: u64,
    ) -> Result<Escrow, PaymentError> {
        bounded_text("reason", reason, RECORD_TEXT_BYTES_MAX)?;
        bounded_text("evidence", evidence, RECORD_TEXT_BYTES_MAX)?;
        if reason.trim().is_empty() {
            return Err(invalid("reason", "required"));
        }
        self.act(
            EscrowActor::Buyer(buyer.id),
            order_id,
            EscrowCommand::Dispute {
                reason: reason.to_owned(),
                evidence: evidence.to_owned(),
                now: now_s,
            },
        )
        .await
    }

    /// An operator settles a dispute.
    pub async fn resolve_dispute(
        &self,
        operator_credential: u64,
        order_id: u64,
        resolution: Resolution,
        note: &str,
        now_s: u64,
    ) -> Result<Escrow, PaymentError> {
        bounded_text("note", note, RECORD_TEXT_BYTES_MAX)?;
        if note.trim().is_empty() {
            return Err(invalid("note", "say why: it is the dispute's audit trail"));
        }
        self.act(
            EscrowActor::Operator(operator_credential),
            order_id,
            EscrowCommand::Resolve {
                resolution,
                by: format!("key_{operator_credential}"),
                note: note.to_owned(),
                now: now_s,
            },
        )
        .await
    }

    /// Runs every escrow timer due at `now`; returns how many settled.
    pub async fn run_escrow_timers(&self, now_s: u64, limit: usize) -> Result<usize, PaymentError> {
        let due = self
            .handles
            .records(|records| records.escrows_due(now_s, limit))?;
        let mut settled = 0;
        for escrow in due {
            match self
                .act(
                    EscrowActor::Timer,
                    escrow.order_id,
                    EscrowCommand::Timer { now: now_s },
                )
                .await
            {
                Ok(_) => settled += 1,
                // Shipped, confirmed or disputed meanwhile.
                Err(PaymentError::Escrow(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(settled)
    }

    /// Applies `command` to the escrow of `order_id` as `actor`: the money it settles, the
    /// escrow's and the order's new state and the merchant's notification, in one request.
    async fn act(
        &self,
        actor: EscrowActor,
        order_id: u64,
        command: EscrowCommand,
    ) -> Result<Escrow, PaymentError> {
        let _guards = self.locks.lock(&[lock_key("order", order_id)]).await;
        let escrow = self.escrow(Some(actor), order_id)?;
        let (next, settlement) = escrow::transition(&escrow, command, &self.config.escrow)
            .map_err(PaymentError::Escrow)?;
        let order = self
            .read_order(order_id)?
            .ok_or(PaymentError::NotFound("order"))?;
        let now_s = next.updated_at;
        // Every transition counts up the order's version: its notification's sequence number.
        let (events, order) = self.settle(&order, &escrow, settlement, now_s)?;
        let kind = format!("escrow.{}", next.state.as_str());
        let records = vec![
            Record::Escrow(next.clone()),
            Record::Order(order.clone()),
            event_record(
                next.merchant_id,
                next.order_id,
                order.version,
                &kind,
                &escrow_json(&next),
                order.notify_url.clone(),
                now_s,
            )?,
        ];
        let results = self.commit(events, records).await?;
        match first_refusal(&results) {
            None => Ok(next),
            Some(EventResult::Exists) => Err(PaymentError::Escrow(escrow::EscrowRefusal::Settled)),
            Some(result) => Err(Self::refusal(result)),
        }
    }

    /// The transfers that pay out `settlement` (release less the fee, refund), linked, and the
    /// order as it is after them, its version counted up.
    fn settle(
        &self,
        order: &Order,
        escrow: &Escrow,
        settlement: Settlement,
        now_s: u64,
    ) -> Result<(Vec<Event>, Order), PaymentError> {
        let mut changed = order.clone();
        changed.version += 1;
        if settlement == Settlement::default() {
            return Ok((Vec::new(), changed));
        }
        let merchant = self.merchant_cached(escrow.merchant_id, now_s)?;
        let currency = self.config.currency;
        let mut transfers = Vec::new();
        if settlement.to_seller > 0 {
            let mut release = NewTransfer::new(
                transfer_id(order.id, LEG_RELEASE),
                ESCROW_ACCOUNT_ID,
                merchant.account_id,
                u128::from(settlement.to_seller),
                currency,
            );
            release.user_data = u128::from(order.id);
            release.kind = TRANSFER_ESCROW_RELEASE;
            transfers.push(release);
            let fee = orders::fee(settlement.to_seller, merchant.fee_rate_bps);
            if fee > 0 {
                let mut charge = NewTransfer::new(
                    transfer_id(order.id, LEG_FEE),
                    merchant.account_id,
                    FEES_ACCOUNT_ID,
                    u128::from(fee),
                    currency,
                );
                charge.user_data = u128::from(order.id);
                charge.kind = TRANSFER_FEE;
                transfers.push(charge);
            }
            changed.fee = fee;
        }
        if settlement.to_buyer > 0 {
            let mut back = NewTransfer::new(
                transfer_id(order.id, LEG_REFUND),
                ESCROW_ACCOUNT_ID,
                u128::from(escrow.buyer_user_id),
                u128::from(settlement.to_buyer),
                currency,
            );
            back.user_data = u128::from(order.id);
            back.kind = TRANSFER_ESCROW_REFUND;
            transfers.push(back);
            changed = orders::transition(
                &changed,
                OrderCommand::Refund {
                    amount: settlement.to_buyer,
                },
            )?;
        }
        let last = transfers.len() - 1;
        for transfer in &mut transfers[..last] {
            transfer.flags |= TransferFlags::LINKED;
        }
        Ok((
            transfers.into_iter().map(Event::CreateTransfer).collect(),
            changed,
        ))
    }

    /// Refuses a merchant's refund of an escrowed order whose money is still in escrow: it
    /// goes back through the escrow (a dispute) until it is released.
    pub(super) fn check_refundable(&self, order: &Order) -> Result<(), PaymentError> {
        if !order.escrow {
            return Ok(());
        }
        let escrow = self.escrow(None, order.id)?;
        match escrow.state {
            EscrowState::Released | EscrowState::Split | EscrowState::Refunded => Ok(()),
            EscrowState::Held | EscrowState::Shipped | EscrowState::Disputed => {
                Err(PaymentError::EscrowOpen)
            }
        }
    }
}
