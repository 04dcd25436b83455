//! Business records: written with their ledger events, only when all of them commit, and read
//! back as they were written.

use std::time::Duration;

use ledger::{AccountFlags, Event, EventResult};
use sequencer::RegistrationOutcome;
use sequencer::{CommitError, Sequencer};
use store::{
    BankDirection, BankTransfer, BankTransferState, BillPayment, BillPaymentState, Biller,
    BillerCategory, BusinessEvent, Card, CardState, CheckDigit, CodeKind, CodeReport, CodeState,
    CodeUse, DeliveryState, DeliveryUpdate, DeviceState, Envelope, EnvelopeKind, EnvelopeState,
    Escrow, EscrowState, Group, GroupMember, IdempotencyRecord, Invoice, InvoiceKind,
    InvoiceReimbursement, InvoiceState, Merchant, MerchantCode, MerchantKey, NewRegistration,
    Order, OrderState, Outlet, OutletKind, P2pTransfer, PaymentDevice, Record, ReferenceCharset,
    Refund, RegistrationKind, SavedBiller, SavedBillerState, Store,
};

use crate::common::{config, new_account, new_transfer, ManualClock};

/// How many times a request aborted behind a failed batch is submitted again.
const ABORTED_RETRIES_MAX: usize = 200;

fn merchant(id: u64) -> Merchant {
    Merchant {
        id,
        name: "Tea House".into(),
        mcc: "5814".into(),
        country: "CN".into(),
        city: "Hangzhou".into(),
        settlement_account: "6222 0000 1111".into(),
        fee_rate_bps: 60,
        account_id: 3,
        notify_key: [7; 32],
        created_at: 1,
    }
}

fn order(id: u64, state: OrderState) -> Order {
    Order {
        id,
        merchant_id: 7,
        outlet_id: None,
        out_trade_no: format!("T{id}"),
        amount: 100,
        currency: "CNY".into(),
        description: "tea".into(),
        notify_url: None,
        state,
        payer_user_id: None,
        fee: 0,
        refunded: 0,
        created_at: 10 + id,
        expires_at: 100,
        paid_at: None,
        closed_at: None,
        version: 1,
        payment_transfer_id: u128::from(id) * 16 + 1,
        escrow: false,
    }
}

fn commit(sequencer: &Sequencer, events: Vec<Event>, records: Vec<Record>) -> Vec<EventResult> {
    sequencer
        .handle()
        .submit_with_records(events, records)
        .expect("queued")
        .wait()
        .expect("committed")
}

/// Records commit with their request's events when every one of them is `ok`, and not at all
/// otherwise (nor again on a retry that finds the events already committed).
pub fn records_ride_with_their_events(store: &dyn Store) {
    let sequencer = Sequencer::start(store, config(ManualClock::at(1_000_000_000))).unwrap();
    let opened = commit(
        &sequencer,
        vec![
            new_account(1, AccountFlags::empty()),
            new_account(2, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS),
            new_account(3, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS),
        ],
        Vec::new(),
    );
    assert!(opened.iter().all(|result| *result == EventResult::Ok));
    // Records alone ride with the next batch.
    let alone = commit(
        &sequencer,
        Vec::new(),
        vec![
            Record::Merchant(merchant(7)),
            Record::Order(order(1, OrderState::NotPay)),
        ],
    );
    assert!(alone.is_empty());
    let paid = commit(
        &sequencer,
        vec![Event::CreateTransfer(new_transfer(50, 1, 2, 100))],
        vec![Record::Order(order(1, OrderState::Success))],
    );
    assert_eq!(paid, vec![EventResult::Ok]);
    // Account 3 is empty: the transfer fails and its record is not written.
    let refused = commit(
        &sequencer,
        vec![Event::CreateTransfer(new_transfer(51, 3, 2, 100))],
        vec![Record::Order(order(2, OrderState::Success))],
    );
    assert_ne!(refused, vec![EventResult::Ok]);
    // A retry finds its transfer committed: its records are not written again.
    let retried = commit(
        &sequencer,
        vec![Event::CreateTransfer(new_transfer(50, 1, 2, 100))],
        vec![Record::Order(order(1, OrderState::Closed))],
    );
    assert_eq!(retried, vec![EventResult::Exists]);
    sequencer.shutdown();
    let mut records = store.records().unwrap();
    assert_eq!(
        records.order(1).unwrap().unwrap().state,
        OrderState::Success
    );
    assert_eq!(records.order(2).unwrap(), None);
    assert_eq!(records.merchant(7).unwrap().unwrap(), merchant(7));
    assert_eq!(
        records.order_by_out_trade_no(7, "T1").unwrap().unwrap().id,
        1
    );
}

fn idempotency(key: &str) -> IdempotencyRecord {
    IdempotencyRecord {
        principal: "mch_7".into(),
        key: key.into(),
        request_digest: [3; 32],
        status: 201,
        response: format!("{{\"key\":\"{key}\"}}"),
        created_at: 20,
    }
}

/// A claimed order lands only if its id and its merchant's out_trade_no are free; a refused
/// claim writes nothing of its request and leaves the rest of its batch to commit.
pub fn claimed_orders_land_only_with_free_keys(store: &dyn Store) {
    let sequencer = Sequencer::start(store, config(ManualClock::at(1_000_000_000))).unwrap();
    let handle = sequencer.handle();
    commit(&sequencer, Vec::new(), vec![Record::Merchant(merchant(7))]);
    let first = handle
        .submit_claim(vec![
            Record::Order(order(1, OrderState::NotPay)),
            Record::Idempotency(idempotency("k1")),
        ])
        .unwrap()
        .wait();
    assert!(
        matches!(first, Ok(ref results) if results.is_empty()),
        "{first:?}"
    );
    // Queued together, so that most of them share a batch.
    let with_taken_number = handle
        .submit_claim(vec![
            Record::Order(Order {
                out_trade_no: "T1".into(),
                ..order(2, OrderState::NotPay)
            }),
            Record::Idempotency(idempotency("k2")),
        ])
        .unwrap();
    let free = handle
        .submit_claim(vec![
            Record::Order(order(3, OrderState::NotPay)),
            Record::Idempotency(idempotency("k3")),
        ])
        .unwrap();
    let unclaimed = handle
        .submit_with_records(
            Vec::new(),
            vec![Record::Order(order(4, OrderState::NotPay))],
        )
        .unwrap();
    let twin_first = handle
        .submit_claim(vec![Record::Order(order(5, OrderState::NotPay))])
        .unwrap();
    let twin_second = handle
        .submit_claim(vec![
            Record::Order(Order {
                out_trade_no: "T5".into(),
                ..order(6, OrderState::NotPay)
            }),
            Record::Idempotency(idempotency("k6")),
        ])
        .unwrap();
    let with_taken_id = handle
        .submit_claim(vec![Record::Order(Order {
            out_trade_no: "T9".into(),
            ..order(1, OrderState::NotPay)
        })])
        .unwrap();
    let answer = with_taken_number.wait();
    assert!(
        matches!(answer, Err(CommitError::Taken)),
        "with_taken_number: {answer:?}"
    );
    let answer = free.wait();
    assert!(
        matches!(answer, Ok(ref results) if results.is_empty()),
        "free: {answer:?}"
    );
    let answer = unclaimed.wait();
    assert!(
        matches!(answer, Ok(ref results) if results.is_empty()),
        "unclaimed: {answer:?}"
    );
    let answer = twin_first.wait();
    assert!(
        matches!(answer, Ok(ref results) if results.is_empty()),
        "twin_first: {answer:?}"
    );
    let answer = twin_second.wait();
    assert!(
        matches!(answer, Err(CommitError::Taken)),
        "twin_second: {answer:?}"
    );
    let answer = with_taken_id.wait();
    assert!(
        matches!(answer, Err(CommitError::Taken)),
        "with_taken_id: {answer:?}"
    );
    assert!(matches!(
        handle.submit_claim(vec![Record::Idempotency(idempotency("k7"))]),
        Err(CommitError::ClaimWithoutOrder)
    ));
    sequencer.shutdown();
    let mut records = store.records().unwrap();
    for (id, kept) in [
        (1, true),
        (2, false),
        (3, true),
        (4, true),
        (5, true),
        (6, false),
    ] {
        assert_eq!(records.order(id).unwrap().is_some(), kept, "order {id}");
    }
    for (key, kept) in [("k1", true), ("k2", false), ("k3", true), ("k6", false)] {
        assert_eq!(
            records.idempotency("mch_7", key).unwrap().is_some(),
            kept,
            "idempotency record {key}"
        );
    }
    assert_eq!(
        records.order_by_out_trade_no(7, "T1").unwrap().unwrap().id,
        1
    );
    assert_eq!(
        records.order_by_out_trade_no(7, "T5").unwrap().unwrap().id,
        5
    );
    assert_eq!(records.order_by_out_trade_no(7, "T9").unwrap(), None);
    assert_eq!(records.order(1).unwrap().unwrap().out_trade_no, "T1");
}

/// Every kind of record reads back as written, through every lookup the services use.
#[allow(clippy::too_many_lines)]
pub fn business_records_read_back_as_written(store: &dyn Store) {
    let sequencer = Sequencer::start(store, config(ManualClock::at(1_000_000_000))).unwrap();
    let key = MerchantKey {
        id: 70,
        merchant_id: 7,
        signing_key: [9; 32],
        created_at: 2,
        revoked_at: None,
    };
    let shop = Outlet {
        id: 71,
        merchant_id: 7,
        kind: OutletKind::Store,
        parent_id: None,
        name: "West Lake".into(),
        created_at: 3,
    };
    let till = Outlet {
        id: 72,
        kind: OutletKind::Terminal,
        parent_id: Some(71),
        name: "Till 1".into(),
        ..shop.clone()
    };
    let mut paid = order(2, OrderState::Refund);
    paid.payer_user_id = Some(900);
    paid.fee = 1;
    paid.refunded = 40;
    paid.paid_at = Some(500);
    paid.notify_url = Some("http://shop.example/notify".into());
    paid.outlet_id = Some(72);
    paid.version = 3;
    let refund = Refund {
        id: 80,
        order_id: 2,
        merchant_id: 7,
        out_refund_no: "R1".into(),
        amount: 40,
        fee_refunded: 0,
        reason: "spilt".into(),
        created_at: 600,
    };
    let p2p = P2pTransfer {
        id: 81,
        from_user_id: 900,
        to_user_id: 901,
        amount: 5,
        currency: "CNY".into(),
        note: "tea".into(),
        created_at: 601,
    };
    let card = Card {
        id: 82,
        user_id: 900,
        token: "tok_abc".into(),
        bin: "622202".into(),
        last4: "3446".into(),
        bank: "Sim".into(),
        state: CardState::Active,
        created_at: 602,
    };
    let top_up = BankTransfer {
        id: 83,
        user_id: 900,
        card_id: 82,
        direction: BankDirection::TopUp,
        amount: 1_000,
        currency: "CNY".into(),
        state: BankTransferState::Pending,
        bank_reference: None,
        failure: None,
        created_at: 603,
        updated_at: 603,
    };
    let withdrawal = BankTransfer {
        id: 84,
        direction: BankDirection::Withdrawal,
        state: BankTransferState::Failed,
        failure: Some("card frozen".into()),
        ..top_up.clone()
    };
    let event = |id: u64, sequence: u32, notify_url: Option<&str>| BusinessEvent {
        id,
        merchant_id: 7,
        object_id: 2,
        object_sequence: sequence,
        kind: "order.paid".into(),
        payload: format!("{{\"sequence\":{sequence}}}"),
        notify_url: notify_url.map(str::to_owned),
        created_at: 700 + id,
    };
    let idempotency = IdempotencyRecord {
        principal: "usr_900".into(),
        key: "k-1".into(),
        request_digest: [5; 32],
        status: 201,
        response: "{\"id\":\"p2p_81\"}".into(),
        created_at: 604,
    };
    commit(
        &sequencer,
        Vec::new(),
        vec![
            Record::Merchant(merchant(7)),
            Record::MerchantKey(key.clone()),
            Record::Outlet(shop.clone()),
            Record::Outlet(till.clone()),
            Record::Order(order(1, OrderState::NotPay)),
            Record::Order(paid.clone()),
            Record::Order(order(3, OrderState::NotPay)),
            Record::Refund(refund.clone()),
            Record::P2pTransfer(p2p.clone()),
            Record::Card(card.clone()),
            Record::BankTransfer(top_up.clone()),
            Record::BankTransfer(withdrawal.clone()),
            Record::Event(event(90, 2, Some("http://shop.example/notify"))),
            Record::Event(event(91, 3, None)),
            Record::Idempotency(idempotency.clone()),
        ],
    );
    // An upsert replaces the row: the key revoked.
    let revoked = MerchantKey {
        revoked_at: Some(9),
        ..key.clone()
    };
    commit(
        &sequencer,
        Vec::new(),
        vec![Record::MerchantKey(revoked.clone())],
    );
    sequencer.shutdown();

    let mut records = store.records().unwrap();
    assert_eq!(records.merchants(0, 10).unwrap(), vec![merchant(7)]);
    assert_eq!(records.merchant_key(70).unwrap(), Some(revoked.clone()));
    assert_eq!(records.merchant_keys(7).unwrap(), vec![revoked]);
    assert_eq!(records.outlets(7).unwrap(), vec![shop, till.clone()]);
    assert_eq!(records.outlet(72).unwrap(), Some(till));
    assert_eq!(records.order(2).unwrap(), Some(paid.clone()));
    assert_eq!(
        records.order_by_out_trade_no(7, "T2").unwrap(),
        Some(paid.clone())
    );
    assert_eq!(records.order_by_out_trade_no(8, "T2").unwrap(), None);
    let page: Vec<u64> = records
        .orders(7, 1, 10)
        .unwrap()
        .iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(page, [2, 3]);
    assert_eq!(records.orders(7, 0, 1).unwrap().len(), 1);
    assert_eq!(
        records.orders_paid_between(7, 500, 501).unwrap(),
        vec![paid]
    );
    assert!(records.orders_paid_between(7, 501, 600).unwrap().is_empty());
    let expired: Vec<u64> = records
        .orders_expired(100, 10)
        .unwrap()
        .iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(expired, [1, 3], "unpaid orders at or past their expiry");
    assert!(records.orders_expired(99, 10).unwrap().is_empty());
    assert_eq!(records.refund(80).unwrap(), Some(refund.clone()));
    assert_eq!(
        records.refund_by_out_refund_no(7, "R1").unwrap(),
        Some(refund.clone())
    );
    assert_eq!(records.refunds_of_order(2).unwrap(), vec![refund.clone()]);
    assert_eq!(records.refunds_between(7, 600, 601).unwrap(), vec![refund]);
    assert_eq!(records.p2p_transfer(81).unwrap(), Some(p2p));
    assert_eq!(records.card(82).unwrap(), Some(card.clone()));
    assert_eq!(records.cards(900).unwrap(), vec![card]);
    assert_eq!(records.bank_transfer(84).unwrap(), Some(withdrawal));
    assert_eq!(records.bank_transfers_pending(10).unwrap(), vec![top_up]);
    assert_eq!(
        records.idempotency("usr_900", "k-1").unwrap(),
        Some(idempotency)
    );
    assert_eq!(records.idempotency("usr_901", "k-1").unwrap(), None);

    // The outbox: only events with an address wait for delivery.
    let events = records.events(7, 0, 10).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].delivery, DeliveryState::Pending);
    assert_eq!(events[1].delivery, DeliveryState::None);
    assert_eq!(records.events(7, 90, 10).unwrap().len(), 1);
    assert_eq!(records.events_recent(1).unwrap()[0].event.id, 91);
    let due = records.events_due(10_000, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        due[0].event,
        event(90, 2, Some("http://shop.example/notify"))
    );
    store
        .outbox()
        .unwrap()
        .record_deliveries(&[DeliveryUpdate {
            event_id: 90,
            delivery: DeliveryState::Pending,
            attempts: 1,
            next_attempt_at: 20_000,
            last_result: Some("500".into()),
        }])
        .unwrap();
    assert!(
        records.events_due(10_000, 10).unwrap().is_empty(),
        "waits for its retry"
    );
    let retry = records.events_due(20_000, 10).unwrap();
    assert_eq!(
        (retry[0].attempts, retry[0].last_result.as_deref()),
        (1, Some("500"))
    );
    store
        .outbox()
        .unwrap()
        .record_deliveries(&[DeliveryUpdate {
            event_id: 90,
            delivery: DeliveryState::Delivered,
            attempts: 2,
            next_attempt_at: 20_000,
            last_result: Some("200".into()),
        }])
        .unwrap();
    assert!(records.events_due(u64::MAX >> 2, 10).unwrap().is_empty());
    assert_eq!(
        records.events(7, 0, 1).unwrap()[0].delivery,
        DeliveryState::Delivered
    );
    let missing = store.outbox().unwrap().record_deliveries(&[DeliveryUpdate {
        event_id: 999,
        delivery: DeliveryState::Delivered,
        attempts: 1,
        next_attempt_at: 0,
        last_result: None,
    }]);
    assert!(
        missing.is_err(),
        "an unknown event is an error, not a silent no-op"
    );
}

/// QR records: merchant codes (replaced in place when revoked), reports, enrolled devices, the
/// single use of a payment code (a second use fails its whole batch), and the orders waiting
/// for their payer.
pub fn qr_records_read_back_as_written(store: &dyn Store) {
    let sequencer = Sequencer::start(store, config(ManualClock::at(1_000_000_000))).unwrap();
    let outcomes = sequencer
        .handle()
        .register(vec![NewRegistration::new(
            RegistrationKind::MerchantCode,
            [3; 32],
            7,
            "qrc_60",
            "qrc_60",
        )
        .unwrap()])
        .expect("queued")
        .wait()
        .expect("committed");
    let Some(RegistrationOutcome::Created(registration)) = outcomes.first() else {
        panic!("expected a registration, got {outcomes:?}");
    };
    let static_code = MerchantCode {
        id: 60,
        merchant_id: 7,
        outlet_id: Some(71),
        order_id: None,
        kind: CodeKind::Static,
        payload: "000201010211".into(),
        registration_id: registration.registration.id,
        state: CodeState::Active,
        created_at: 5,
        expires_at: None,
        updated_at: 5,
        notify_url: Some("http://shop.example/qr".into()),
    };
    let dynamic_code = MerchantCode {
        id: 61,
        outlet_id: None,
        order_id: Some(1),
        kind: CodeKind::Dynamic,
        expires_at: Some(100),
        notify_url: None,
        ..static_code.clone()
    };
    let report = |id: u64, code_id: Option<u64>| CodeReport {
        id,
        code_id,
        payload_digest: [4; 32],
        payload: "00020101021226".into(),
        user_id: 900,
        reason: "sticker over the shop's code".into(),
        created_at: 6 + id,
    };
    let device = PaymentDevice {
        id: 62,
        user_id: 900,
        number: 12_345_678,
        secret: [8; 32],
        name: "phone".into(),
        state: DeviceState::Active,
        created_at: 7,
        revoked_at: None,
    };
    let mut awaiting = order(2, OrderState::NotPay);
    awaiting.payer_user_id = Some(900);
    let code_use = CodeUse {
        device_id: 62,
        step: 29_000_000,
        slot: 3,
        order_id: 2,
        created_at: 8,
    };
    commit(
        &sequencer,
        Vec::new(),
        vec![
            Record::Merchant(merchant(7)),
            Record::Order(order(1, OrderState::NotPay)),
            Record::Order(awaiting.clone()),
            Record::Order(order(3, OrderState::NotPay)),
            Record::MerchantCode(static_code.clone()),
            Record::MerchantCode(dynamic_code.clone()),
            Record::CodeReport(report(63, Some(60))),
            Record::CodeReport(report(64, None)),
            Record::PaymentDevice(device.clone()),
            Record::CodeUse(code_use.clone()),
        ],
    );
    let revoked = MerchantCode {
        state: CodeState::Revoked,
        updated_at: 9,
        ..static_code.clone()
    };
    let device_revoked = PaymentDevice {
        state: DeviceState::Revoked,
        revoked_at: Some(10),
        ..device.clone()
    };
    commit(
        &sequencer,
        Vec::new(),
        vec![
            Record::MerchantCode(revoked.clone()),
            Record::PaymentDevice(device_revoked.clone()),
        ],
    );
    // The same code used again: the batch fails, and nothing of the request is kept.
    let reused = sequencer
        .handle()
        .submit_with_records(
            Vec::new(),
            vec![
                Record::Order(order(4, OrderState::NotPay)),
                Record::CodeUse(CodeUse {
                    order_id: 4,
                    ..code_use.clone()
                }),
            ],
        )
        .expect("queued")
        .wait();
    assert!(reused.is_err(), "a second use of a code must not commit");
    sequencer.shutdown();

    let mut records = store.records().unwrap();
    assert_eq!(records.merchant_code(60).unwrap(), Some(revoked.clone()));
    assert_eq!(
        records.merchant_code(61).unwrap(),
        Some(dynamic_code.clone())
    );
    assert_eq!(records.merchant_code(65).unwrap(), None);
    assert_eq!(
        records.merchant_codes(7, 0, 10).unwrap(),
        vec![revoked, dynamic_code.clone()]
    );
    assert_eq!(
        records.merchant_codes(7, 60, 10).unwrap(),
        vec![dynamic_code]
    );
    assert_eq!(records.merchant_codes(8, 0, 10).unwrap(), vec![]);
    assert_eq!(
        records.code_reports(60).unwrap(),
        vec![report(63, Some(60))]
    );
    assert_eq!(
        records.code_reports_recent(10).unwrap(),
        vec![report(64, None), report(63, Some(60))]
    );
    assert_eq!(
        records.payment_device(62).unwrap(),
        Some(device_revoked.clone())
    );
    assert_eq!(
        records.payment_device_by_number(12_345_678).unwrap(),
        Some(device_revoked.clone())
    );
    assert_eq!(records.payment_device_by_number(12_345_679).unwrap(), None);
    assert_eq!(records.payment_devices(900).unwrap(), vec![device_revoked]);
    assert_eq!(records.payment_devices(901).unwrap(), vec![]);
    assert_eq!(records.code_use(62, 29_000_000, 3).unwrap(), Some(code_use));
    assert_eq!(records.code_use(62, 29_000_000, 4).unwrap(), None);
    assert_eq!(records.order(4).unwrap(), None);
    assert_eq!(
        records.orders_awaiting_payer(900, 10).unwrap(),
        vec![awaiting]
    );
    assert_eq!(records.orders_awaiting_payer(901, 10).unwrap(), vec![]);
}

/// Groups (members inserted once: a member twice fails the batch) and envelopes (their packets
/// read back exactly; later records change their state only), the envelopes due to expire, and
/// escrows with their timers.
pub fn envelope_records_read_back_as_written(store: &dyn Store) {
    let sequencer = Sequencer::start(store, config(ManualClock::at(1_000_000_000))).unwrap();
    let outcomes = sequencer
        .handle()
        .register(vec![NewRegistration::new(
            RegistrationKind::Document,
            [5; 32],
            900,
            "env_40",
            "env_40",
        )
        .unwrap()])
        .expect("queued")
        .wait()
        .expect("committed");
    let Some(RegistrationOutcome::Created(registration)) = outcomes.first() else {
        panic!("expected a registration, got {outcomes:?}");
    };
    let group = Group {
        id: 30,
        owner_user_id: 900,
        name: "family 🧧".into(),
        created_at: 1,
    };
    let member = |user_id: u64| GroupMember {
        group_id: 30,
        user_id,
        joined_at: 2,
    };
    let envelope = Envelope {
        id: 40,
        sender_user_id: 900,
        group_id: Some(30),
        recipient_user_id: None,
        kind: EnvelopeKind::Lucky,
        total: 1_000,
        currency: "CNY".into(),
        packets: vec![1, 500, 12, 487],
        greeting: "恭喜发财".into(),
        registration_id: registration.registration.id,
        state: EnvelopeState::Open,
        created_at: 3,
        expires_at: 100,
        returned: 0,
        closed_at: None,
    };
    let to_friend = Envelope {
        id: 50,
        group_id: None,
        recipient_user_id: Some(901),
        kind: EnvelopeKind::Ordinary,
        total: 200,
        packets: vec![200],
        expires_at: 200,
        ..envelope.clone()
    };
    commit(
        &sequencer,
        Vec::new(),
        vec![
            Record::Group(group.clone()),
            Record::GroupMember(member(902)),
            Record::GroupMember(member(900)),
            Record::Envelope(envelope.clone()),
            Record::Envelope(to_friend.clone()),
        ],
    );
    let expired = Envelope {
        state: EnvelopeState::Expired,
        returned: 487,
        closed_at: Some(101),
        ..envelope.clone()
    };
    commit(
        &sequencer,
        Vec::new(),
        vec![Record::Envelope(expired.clone())],
    );
    // An escrow follows its order, and changes in place.
    let mut escrowed = order(1, OrderState::Success);
    escrowed.escrow = true;
    let held = Escrow {
        order_id: 1,
        merchant_id: 7,
        buyer_user_id: 900,
        amount: 100,
        state: EscrowState::Held,
        carrier: None,
        tracking_no: None,
        ship_by: 700,
        shipped_at: None,
        release_at: None,
        due_at: Some(700),
        dispute_reason: None,
        dispute_evidence: None,
        released: 0,
        refunded: 0,
        settled_by: None,
        note: None,
        created_at: 5,
        updated_at: 5,
        version: 1,
    };
    commit(
        &sequencer,
        Vec::new(),
        vec![
            Record::Merchant(merchant(7)),
            Record::Order(escrowed.clone()),
            Record::Escrow(held.clone()),
        ],
    );
    let shipped = Escrow {
        state: EscrowState::Shipped,
        carrier: Some("SF Express".into()),
        tracking_no: Some("SF1234567890".into()),
        shipped_at: Some(600),
        release_at: Some(900),
        due_at: Some(900),
        updated_at: 600,
        version: 2,
        ..held.clone()
    };
    commit(
        &sequencer,
        Vec::new(),
        vec![Record::Escrow(shipped.clone())],
    );
    let again = sequencer
        .handle()
        .submit_with_records(Vec::new(), vec![Record::GroupMember(member(902))])
        .expect("queued")
        .wait();
    assert!(again.is_err(), "a member added twice must not commit");
    sequencer.shutdown();

    let mut records = store.records().unwrap();
    assert_eq!(records.group(30).unwrap(), Some(group.clone()));
    assert_eq!(records.group(31).unwrap(), None);
    assert_eq!(
        records.group_members(30).unwrap(),
        vec![member(900), member(902)]
    );
    assert_eq!(records.groups_of_user(902).unwrap(), vec![group]);
    assert_eq!(records.groups_of_user(901).unwrap(), vec![]);
    assert_eq!(records.envelope(40).unwrap(), Some(expired));
    assert_eq!(records.envelope(50).unwrap(), Some(to_friend.clone()));
    assert_eq!(records.envelopes_due(199, 10).unwrap(), vec![]);
    assert_eq!(records.envelopes_due(200, 10).unwrap(), vec![to_friend]);
    assert_eq!(records.order(1).unwrap(), Some(escrowed));
    assert_eq!(records.escrow(1).unwrap(), Some(shipped.clone()));
    assert_eq!(records.escrow(2).unwrap(), None);
    assert_eq!(records.escrows_due(899, 10).unwrap(), vec![]);
    assert_eq!(records.escrows_due(900, 10).unwrap(), vec![shipped]);
}

fn biller(id: u64, code: &str, category: BillerCategory) -> Biller {
    Biller {
        id,
        code: code.into(),
        name: format!("Biller {id}"),
        category,
        reference_label: "Customer number".into(),
        reference_charset: ReferenceCharset::Digits,
        reference_length_min: 10,
        reference_length_max: 10,
        reference_prefix: String::new(),
        check_digit: CheckDigit::Luhn,
        denominations: Vec::new(),
        account_id: u128::from(id),
        created_at: 3,
    }
}

/// Billers, bill payments (pending, then finished in place) and saved billers read back as
/// written; a second biller with a taken code, or a second active entry for the same saved
/// biller, fails its batch and keeps nothing of it.
pub fn bill_records_read_back_as_written(store: &dyn Store) {
    let sequencer = Sequencer::start(store, config(ManualClock::at(1_000_000_000))).unwrap();
    let power = biller(80, "POWER", BillerCategory::Electricity);
    let phone = Biller {
        category: BillerCategory::Phone,
        reference_label: "Phone number".into(),
        reference_charset: ReferenceCharset::Alphanumeric,
        reference_length_min: 11,
        reference_length_max: 11,
        reference_prefix: "1".into(),
        check_digit: CheckDigit::None,
        denominations: vec![1_000, 5_000, 10_000],
        ..biller(81, "MOBILE", BillerCategory::Phone)
    };
    let pending = BillPayment {
        id: 90,
        user_id: 900,
        biller_id: 80,
        reference: "1234567897".into(),
        amount: 12_880,
        currency: "CNY".into(),
        state: BillPaymentState::Pending,
        customer_name: Some("L* L**".into()),
        confirmation: None,
        failure: None,
        created_at: 20,
        updated_at: 20,
    };
    let top_up = BillPayment {
        id: 91,
        biller_id: 81,
        reference: "13800138000".into(),
        amount: 5_000,
        customer_name: None,
        ..pending.clone()
    };
    let other_user = BillPayment {
        id: 92,
        user_id: 901,
        ..pending.clone()
    };
    let saved = SavedBiller {
        id: 95,
        user_id: 900,
        biller_id: 80,
        reference: "1234567897".into(),
        nickname: "home".into(),
        state: SavedBillerState::Active,
        created_at: 21,
        updated_at: 21,
    };
    let saved_phone = SavedBiller {
        id: 96,
        biller_id: 81,
        reference: "13800138000".into(),
        nickname: String::new(),
        ..saved.clone()
    };
    commit(
        &sequencer,
        Vec::new(),
        vec![
            Record::Biller(power.clone()),
            Record::Biller(phone.clone()),
            Record::BillPayment(pending.clone()),
            Record::BillPayment(top_up.clone()),
            Record::BillPayment(other_user.clone()),
            Record::SavedBiller(saved.clone()),
            Record::SavedBiller(saved_phone.clone()),
        ],
    );
    // Finished in place: one succeeded with its confirmation, one failed with its reason; the
    // saved phone deleted, and saved again as a new entry.
    let succeeded = BillPayment {
        state: BillPaymentState::Succeeded,
        confirmation: Some("SB000000000042".into()),
        updated_at: 25,
        ..pending.clone()
    };
    let failed = BillPayment {
        state: BillPaymentState::Failed,
        failure: Some("the biller refused: account under review".into()),
        updated_at: 26,
        ..top_up.clone()
    };
    let deleted = SavedBiller {
        state: SavedBillerState::Deleted,
        updated_at: 27,
        ..saved_phone.clone()
    };
    let saved_again = SavedBiller {
        id: 97,
        nickname: "my phone".into(),
        created_at: 28,
        updated_at: 28,
        ..saved_phone.clone()
    };
    commit(
        &sequencer,
        Vec::new(),
        vec![
            Record::BillPayment(succeeded.clone()),
            Record::BillPayment(failed.clone()),
            Record::SavedBiller(deleted.clone()),
            Record::SavedBiller(saved_again.clone()),
        ],
    );
    // Another biller with a taken code, and the same biller and reference saved twice: each
    // batch fails, and nothing of it is kept.
    for refused in [
        vec![
            Record::BillPayment(BillPayment {
                id: 93,
                ..pending.clone()
            }),
            Record::Biller(biller(82, "POWER", BillerCategory::Water)),
        ],
        vec![
            Record::BillPayment(BillPayment {
                id: 94,
                ..pending.clone()
            }),
            Record::SavedBiller(SavedBiller {
                id: 98,
                ..saved.clone()
            }),
        ],
    ] {
        let answer = sequencer
            .handle()
            .submit_with_records(Vec::new(), refused)
            .expect("queued")
            .wait();
        assert!(answer.is_err(), "a unique key broken must not commit");
    }
    sequencer.shutdown();

    let mut records = store.records().unwrap();
    assert_eq!(records.biller(80).unwrap(), Some(power.clone()));
    assert_eq!(records.biller(81).unwrap(), Some(phone.clone()));
    assert_eq!(records.biller(82).unwrap(), None);
    assert_eq!(
        records.biller_by_code("MOBILE").unwrap(),
        Some(phone.clone())
    );
    assert_eq!(records.biller_by_code("WATER").unwrap(), None);
    assert_eq!(
        records.billers(None, 0, 10).unwrap(),
        vec![power.clone(), phone.clone()]
    );
    assert_eq!(records.billers(None, 80, 10).unwrap(), vec![phone.clone()]);
    assert_eq!(records.billers(None, 0, 1).unwrap(), vec![power.clone()]);
    assert_eq!(
        records.billers(Some(BillerCategory::Phone), 0, 10).unwrap(),
        vec![phone]
    );
    assert_eq!(
        records.billers(Some(BillerCategory::Gas), 0, 10).unwrap(),
        vec![]
    );
    assert_eq!(records.bill_payment(90).unwrap(), Some(succeeded.clone()));
    assert_eq!(records.bill_payment(93).unwrap(), None);
    assert_eq!(records.bill_payment(94).unwrap(), None);
    assert_eq!(
        records.bill_payments(900, None, 10).unwrap(),
        vec![failed.clone(), succeeded.clone()]
    );
    assert_eq!(
        records.bill_payments(900, Some(91), 10).unwrap(),
        vec![succeeded]
    );
    assert_eq!(records.bill_payments(900, None, 1).unwrap(), vec![failed]);
    assert_eq!(records.bill_payments(902, None, 10).unwrap(), vec![]);
    assert_eq!(records.bill_payments_pending(10).unwrap(), vec![other_user]);
    assert_eq!(records.saved_biller(96).unwrap(), Some(deleted));
    assert_eq!(records.saved_biller(98).unwrap(), None);
    assert_eq!(
        records.saved_billers(900).unwrap(),
        vec![saved, saved_again]
    );
    assert_eq!(records.saved_billers(901).unwrap(), vec![]);
}

/// Submits `records` alone and waits; a request the sequencer aborted because the batch before
/// it failed (it has not reloaded yet) is submitted again.
fn submit_records(
    sequencer: &Sequencer,
    records: Vec<Record>,
) -> Result<Vec<EventResult>, CommitError> {
    for _ in 0..ABORTED_RETRIES_MAX {
        match sequencer
            .handle()
            .submit_with_records(Vec::new(), records.clone())
            .expect("queued")
            .wait()
        {
            Err(CommitError::Aborted) => std::thread::sleep(Duration::from_millis(5)),
            other => return other,
        }
    }
    panic!("still aborted after {ABORTED_RETRIES_MAX} tries");
}

/// Registers `digests` as invoices; their registration ids, in order.
fn register_invoices(sequencer: &Sequencer, digests: &[[u8; 32]]) -> Vec<u64> {
    let requests = digests
        .iter()
        .enumerate()
        .map(|(index, digest)| {
            let reference = format!("inv_{index}");
            NewRegistration::new(
                RegistrationKind::Invoice,
                *digest,
                7,
                &reference,
                &reference,
            )
            .unwrap()
        })
        .collect();
    let outcomes = sequencer
        .handle()
        .register(requests)
        .expect("queued")
        .wait()
        .expect("committed");
    outcomes
        .iter()
        .map(|outcome| match outcome {
            RegistrationOutcome::Created(stored) => stored.registration.id,
            other => panic!("expected a registration, got {other:?}"),
        })
        .collect()
}

/// E-invoices: an invoice changes its state in place and nothing else; it is reimbursed once (a
/// second reimbursement fails its whole batch); an order has one invoice in force at most, and
/// an invoice one red-letter invoice at most; every lookup reads them back as written.
#[allow(clippy::too_many_lines)]
pub fn invoice_records_read_back_as_written(store: &dyn Store) {
    let sequencer = Sequencer::start(store, config(ManualClock::at(1_000_000_000))).unwrap();
    let registrations = register_invoices(&sequencer, &[[11; 32], [12; 32], [13; 32], [14; 32]]);
    let mut paid = order(1, OrderState::Success);
    paid.paid_at = Some(50);
    let mut other_order = order(2, OrderState::Refund);
    other_order.refunded = 40;
    let first = Invoice {
        id: 100,
        merchant_id: 7,
        order_id: 1,
        kind: InvoiceKind::Standard,
        sequence: 1,
        number: "00000001".into(),
        original_id: None,
        seller_tax_id: "91330100MA27XYZ12K".into(),
        buyer_name: "Hangzhou Widgets Ltd".into(),
        buyer_tax_id: Some("91330106MA2B0ABC3D".into()),
        currency: "CNY".into(),
        amount: 94,
        tax: 6,
        total: 100,
        document: "{\"number\":\"00000001\"}".into(),
        digest: [11; 32],
        registration_id: registrations[0],
        state: InvoiceState::Issued,
        issued_at: 60,
        updated_at: 60,
    };
    let second = Invoice {
        id: 101,
        order_id: 2,
        sequence: 2,
        number: "00000002".into(),
        buyer_name: "Li Lei".into(),
        buyer_tax_id: None,
        amount: 57,
        tax: 3,
        total: 60,
        document: "{\"number\":\"00000002\"}".into(),
        digest: [12; 32],
        registration_id: registrations[1],
        issued_at: 61,
        updated_at: 61,
        ..first.clone()
    };
    commit(
        &sequencer,
        Vec::new(),
        vec![
            Record::Merchant(merchant(7)),
            Record::Order(paid),
            Record::Order(other_order),
            Record::Invoice(first.clone()),
            Record::Invoice(second.clone()),
        ],
    );
    // The first is reimbursed; the second voided by a red-letter invoice. An upsert changes
    // the state and its time only: the rest of an invoice never changes.
    let reimbursed = Invoice {
        state: InvoiceState::Reimbursed,
        updated_at: 70,
        ..first.clone()
    };
    let reimbursement = InvoiceReimbursement {
        id: 110,
        invoice_id: 100,
        organisation: "Hangzhou Widgets Ltd".into(),
        claim_reference: "EXP-2026-0042".into(),
        credential_id: 3,
        created_at: 70,
    };
    let voided = Invoice {
        state: InvoiceState::Voided,
        updated_at: 71,
        document: "{\"changed\":true}".into(),
        amount: 1,
        tax: 0,
        total: 1,
        ..second.clone()
    };
    let red_letter = Invoice {
        id: 102,
        kind: InvoiceKind::RedLetter,
        sequence: 3,
        number: "00000003".into(),
        original_id: Some(101),
        amount: -57,
        tax: -3,
        total: -60,
        document: "{\"number\":\"00000003\"}".into(),
        digest: [13; 32],
        registration_id: registrations[2],
        issued_at: 71,
        updated_at: 71,
        ..second.clone()
    };
    commit(
        &sequencer,
        Vec::new(),
        vec![
            Record::Invoice(reimbursed.clone()),
            Record::InvoiceReimbursement(reimbursement.clone()),
            Record::Invoice(voided),
            Record::Invoice(red_letter.clone()),
        ],
    );
    let voided = Invoice {
        state: InvoiceState::Voided,
        updated_at: 71,
        ..second.clone()
    };
    // A second claim on the same invoice: the batch fails and nothing of it is kept.
    let claimed_again = submit_records(
        &sequencer,
        vec![
            Record::Order(order(3, OrderState::NotPay)),
            Record::InvoiceReimbursement(InvoiceReimbursement {
                id: 111,
                organisation: "Another Org".into(),
                ..reimbursement.clone()
            }),
        ],
    );
    assert!(
        matches!(claimed_again, Err(CommitError::Store(_))),
        "a second reimbursement must not commit: {claimed_again:?}"
    );
    // A second invoice in force for the first order, and a second red-letter invoice for the
    // voided one: both refused.
    let in_force = Invoice {
        id: 103,
        sequence: 4,
        number: "00000004".into(),
        digest: [14; 32],
        registration_id: registrations[3],
        ..first.clone()
    };
    let second_red_letter = Invoice {
        id: 103,
        sequence: 4,
        number: "00000004".into(),
        digest: [14; 32],
        registration_id: registrations[3],
        ..red_letter.clone()
    };
    for refused in [in_force, second_red_letter] {
        let result = submit_records(&sequencer, vec![Record::Invoice(refused)]);
        assert!(
            matches!(result, Err(CommitError::Store(_))),
            "a duplicate invoice must not commit: {result:?}"
        );
    }
    // After the void, the second order may be invoiced again.
    let reissued = Invoice {
        id: 104,
        sequence: 4,
        number: "00000004".into(),
        digest: [14; 32],
        registration_id: registrations[3],
        issued_at: 72,
        updated_at: 72,
        ..second.clone()
    };
    submit_records(&sequencer, vec![Record::Invoice(reissued.clone())]).expect("committed");
    sequencer.shutdown();

    let mut records = store.records().unwrap();
    assert_eq!(records.invoice(100).unwrap(), Some(reimbursed.clone()));
    assert_eq!(records.invoice(101).unwrap(), Some(voided.clone()));
    assert_eq!(records.invoice(103).unwrap(), None);
    assert_eq!(records.order(3).unwrap(), None);
    assert_eq!(
        records.invoices(7, 0, 10).unwrap(),
        vec![
            reimbursed.clone(),
            voided.clone(),
            red_letter.clone(),
            reissued.clone()
        ]
    );
    assert_eq!(
        records.invoices(7, 101, 1).unwrap(),
        vec![red_letter.clone()]
    );
    assert_eq!(records.invoices(8, 0, 10).unwrap(), vec![]);
    assert_eq!(
        records
            .invoices_by_number("91330100MA27XYZ12K", "00000002")
            .unwrap(),
        vec![voided.clone()]
    );
    assert_eq!(
        records
            .invoices_by_number("91330100MA27XYZ12X", "00000002")
            .unwrap(),
        vec![]
    );
    assert_eq!(
        records.invoices_of_order(2).unwrap(),
        vec![voided, red_letter, reissued.clone()]
    );
    assert_eq!(records.invoices_of_order(1).unwrap(), vec![reimbursed]);
    assert_eq!(records.invoice_last(7).unwrap(), Some(reissued));
    assert_eq!(records.invoice_last(8).unwrap(), None);
    assert_eq!(
        records.invoice_reimbursement(100).unwrap(),
        Some(reimbursement)
    );
    assert_eq!(records.invoice_reimbursement(101).unwrap(), None);
}
