//! The store conformance suite against the PostgreSQL backend, on a throwaway server started
//! for this test binary (one database per test).

use store::Store;
use store_postgres::test_server::TestServer;
use store_postgres::PostgresStore;

struct PostgresFixture {
    url: String,
    store: PostgresStore,
}

impl store_conformance::Fixture for PostgresFixture {
    fn store(&self) -> &dyn Store {
        &self.store
    }

    fn open_again(&self) -> Box<dyn Store> {
        Box::new(PostgresStore::open(&self.url).expect("the same store again"))
    }
}

fn fixture() -> PostgresFixture {
    let server = TestServer::shared().expect("a PostgreSQL server for the tests");
    let url = server.create_database().expect("a new database");
    let store = PostgresStore::open(&url).expect("a new store");
    PostgresFixture { url, store }
}

store_conformance::conformance_tests!(fixture);
store_conformance::business_conformance_tests!(fixture);

// What only PostgreSQL can be asked.

fn query(store: &PostgresStore, sql: &str) -> store::StoreResult<store::QueryOutput> {
    store.query(
        sql,
        store::QueryLimits {
            rows_max: 100,
            time_max: Some(std::time::Duration::from_secs(5)),
        },
    )
}

#[test]
fn writes_hidden_in_a_query_and_server_files_are_refused() {
    let fixture = fixture();
    for statement in [
        "WITH gone AS (DELETE FROM transfers RETURNING id) SELECT count(*) FROM gone",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT nextval('api_credentials_id_seq')",
        "COPY transfers TO STDOUT",
        "SET TRANSACTION READ WRITE",
        "COMMIT",
    ] {
        let error = query(&fixture.store, statement).expect_err(statement);
        assert_eq!(
            error.kind,
            store::StoreErrorKind::Refused,
            "{statement}: {error}"
        );
    }
}

#[test]
fn migrations_are_recorded_once_and_an_empty_database_is_not_opened_as_a_store() {
    let fixture = fixture();
    PostgresStore::open(&fixture.url).expect("opened again, nothing to migrate");
    let output = query(
        &fixture.store,
        "SELECT version, name FROM schema_migrations ORDER BY version",
    )
    .expect("the migrations");
    assert_eq!(
        output.rows,
        vec![
            vec![
                store::Value::Integer(1),
                store::Value::Text("ledger".into())
            ],
            vec![store::Value::Integer(2), store::Value::Text("users".into())],
            vec![
                store::Value::Integer(3),
                store::Value::Text("payments".into())
            ],
            vec![store::Value::Integer(4), store::Value::Text("qr".into())],
            vec![
                store::Value::Integer(5),
                store::Value::Text("envelopes".into())
            ],
            vec![store::Value::Integer(6), store::Value::Text("bills".into())],
            vec![
                store::Value::Integer(7),
                store::Value::Text("invoices".into())
            ],
            vec![
                store::Value::Integer(8),
                store::Value::Text("nonces".into())
            ],
        ]
    );
    let server = TestServer::shared().expect("the server");
    let empty = server.create_database().expect("a database");
    let error = PostgresStore::open_existing(&empty).expect_err("not a store yet");
    assert!(error.message.contains("schema is version 0"), "{error}");
    let error = PostgresStore::open("postgres://tally@127.0.0.1:1/nothing").expect_err("no server");
    assert_eq!(error.kind, store::StoreErrorKind::Unavailable, "{error}");
}

/// Runs `sql` as the database's owner, outside the store.
fn as_owner(url: &str, sql: &str) {
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("a connection");
    client.batch_execute(sql).expect("the statement");
}

#[test]
fn a_server_that_could_lose_commits_gets_no_writer() {
    let fixture = fixture();
    let database = fixture.url.rsplit('/').next().expect("a database name");
    as_owner(
        &fixture.url,
        &format!("ALTER DATABASE {database} SET synchronous_commit = off"),
    );
    let error = fixture.store.writer().err().expect("no writer");
    assert_eq!(error.kind, store::StoreErrorKind::Refused);
    assert!(
        error.message.contains("synchronous_commit = off"),
        "{error}"
    );
    as_owner(
        &fixture.url,
        &format!("ALTER DATABASE {database} RESET synchronous_commit"),
    );
    assert!(
        fixture.store.writer().is_ok(),
        "a durable server gets its writer"
    );
}

#[test]
fn the_writer_reconnects_after_its_connection_is_lost() {
    let fixture = fixture();
    let mut writer = fixture.store.writer().expect("the writer");
    let first = store::CommitBatch {
        sequence: 1,
        timestamp_last: 5,
        ..store::CommitBatch::default()
    };
    writer.commit(&first).expect("batch 1");
    // An operator (or a fail-over) ends the writer's session.
    let server = TestServer::shared().expect("the server");
    let database = fixture.url.rsplit('/').next().expect("a database name");
    as_owner(
        &server.superuser_url(database),
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    let second = store::CommitBatch {
        sequence: 2,
        timestamp_last: 6,
        ..store::CommitBatch::default()
    };
    let error = writer.commit(&second).expect_err("the connection was lost");
    assert_eq!(error.kind, store::StoreErrorKind::Unavailable, "{error}");
    writer.commit(&second).expect("batch 2 on a new connection");
    let mut reader = fixture.store.reader().expect("a reader");
    assert_eq!(reader.head().expect("the head").batches, 2);
}

fn tea_house() -> store::Merchant {
    store::Merchant {
        id: 7,
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

fn unpaid_order(id: u64) -> store::Order {
    store::Order {
        id,
        merchant_id: 7,
        outlet_id: None,
        out_trade_no: format!("T{id}"),
        amount: 100 + id,
        currency: "CNY".into(),
        description: "tea".into(),
        notify_url: Some("http://shop.example/notify".into()),
        state: store::OrderState::NotPay,
        payer_user_id: None,
        fee: 0,
        refunded: 0,
        created_at: 10,
        expires_at: 1_000,
        paid_at: None,
        closed_at: None,
        version: 1,
        payment_transfer_id: u128::from(id) * 16 + 1,
        escrow: false,
    }
}

/// Orders created and paid in the same batch, as the payment API commits them under load.
const ORDERS_IN_ONE_BATCH: u64 = 5_000;

#[test]
fn thousands_of_orders_created_and_paid_in_one_batch_end_paid_with_their_events() {
    let fixture = fixture();
    let mut records = vec![store::Record::Merchant(tea_house())];
    for id in 1..=ORDERS_IN_ONE_BATCH {
        records.push(store::Record::Order(unpaid_order(id)));
    }
    for id in 1..=ORDERS_IN_ONE_BATCH {
        let paid = store::Order {
            state: store::OrderState::Success,
            payer_user_id: Some(900),
            fee: 1,
            paid_at: Some(20),
            version: 2,
            ..unpaid_order(id)
        };
        records.push(store::Record::Order(paid));
        records.push(store::Record::Event(store::BusinessEvent {
            id: 100_000 + id,
            merchant_id: 7,
            object_id: id,
            object_sequence: 2,
            kind: "order.paid".into(),
            payload: format!("{{\"order\":{id}}}"),
            notify_url: (id % 2 == 0).then(|| "http://shop.example/notify".into()),
            created_at: 20,
        }));
    }
    let mut writer = fixture.store.writer().expect("the writer");
    writer
        .commit(&store::CommitBatch {
            sequence: 1,
            timestamp_last: 5,
            records: &records,
            ..store::CommitBatch::default()
        })
        .expect("one batch");
    let mut reader = fixture.store.records().expect("records");
    let order = reader
        .order(ORDERS_IN_ONE_BATCH)
        .expect("read")
        .expect("the order");
    assert_eq!(order.state, store::OrderState::Success, "the last one wins");
    assert_eq!((order.version, order.paid_at), (2, Some(20)));
    assert!(
        reader.orders_expired(1_000, 10).expect("read").is_empty(),
        "no order was left unpaid"
    );
    let paid = reader
        .orders_paid_between(7, 20, 21)
        .expect("the day's orders");
    assert_eq!(paid.len() as u64, ORDERS_IN_ONE_BATCH);
    let total: u64 = paid.iter().map(|order| order.amount).sum();
    assert_eq!(
        total,
        (1..=ORDERS_IN_ONE_BATCH).map(|id| 100 + id).sum::<u64>()
    );
    let due = reader.events_due(20, 1_000).expect("due");
    assert_eq!(due.len(), 1_000, "a page of the events with an address");
    assert!(due.iter().all(|event| event.event.notify_url.is_some()));
    let output = query(
        &fixture.store,
        "SELECT delivery, count(*) FROM events GROUP BY delivery ORDER BY delivery",
    )
    .expect("the outbox");
    let half = i64::try_from(ORDERS_IN_ONE_BATCH / 2).expect("small");
    assert_eq!(
        output.rows,
        vec![
            vec![
                store::Value::Text("none".into()),
                store::Value::Integer(half)
            ],
            vec![
                store::Value::Text("pending".into()),
                store::Value::Integer(half)
            ],
        ]
    );
}

#[test]
fn a_batch_with_a_record_the_schema_refuses_keeps_nothing() {
    let fixture = fixture();
    let mut writer = fixture.store.writer().expect("the writer");
    let event = store::BusinessEvent {
        id: 1,
        merchant_id: 7,
        object_id: 1,
        object_sequence: 1,
        kind: "order.created".into(),
        payload: "{}".into(),
        notify_url: None,
        created_at: 10,
    };
    // An event is written once: the same id twice fails the whole batch.
    let records = [
        store::Record::Merchant(tea_house()),
        store::Record::Order(unpaid_order(1)),
        store::Record::Event(event.clone()),
        store::Record::Event(event),
    ];
    let batch = store::CommitBatch {
        sequence: 1,
        timestamp_last: 5,
        records: &records,
        ..store::CommitBatch::default()
    };
    writer.commit(&batch).expect_err("a duplicate event");
    let mut reader = fixture.store.records().expect("records");
    assert_eq!(reader.merchant(7).expect("read"), None);
    assert_eq!(reader.order(1).expect("read"), None);
    assert_eq!(
        fixture
            .store
            .reader()
            .expect("reader")
            .head()
            .expect("head")
            .batches,
        0,
        "the batch is not counted"
    );
    // An order of nothing is refused by the schema too.
    let nothing = store::Order {
        amount: 0,
        ..unpaid_order(2)
    };
    let records = [
        store::Record::Merchant(tea_house()),
        store::Record::Order(nothing),
    ];
    let error = writer
        .commit(&store::CommitBatch {
            records: &records,
            ..batch
        })
        .expect_err("an order of nothing");
    assert!(error.message.contains("orders_amount_check"), "{error}");
}

/// Two processes' sequencers on one database (what several `tally serve` nodes run): they take
/// turns at writing, a batch overtaken by the other's is applied again on the new state rather
/// than refused, and the ledger's rules hold across both — no wallet spends what it does not
/// have, no transfer is committed twice, no request sees an error.
#[test]
fn two_sequencers_on_one_database_take_turns() {
    use ledger::{AccountFlags, Event, EventResult, NewAccount, NewTransfer};
    use sequencer::{Metrics, Sequencer, SequencerConfig};
    use store_conformance::support::cny;
    use store_conformance::Fixture;

    const WALLETS: u128 = 8;
    const FUNDS: u128 = 60;
    const SUBMITTERS_PER_NODE: u128 = 4;
    const SPENDS_PER_SUBMITTER: u128 = 3 * FUNDS * WALLETS / (2 * SUBMITTERS_PER_NODE * 2);

    let fixture = fixture();
    let second = fixture.open_again();
    let first = Sequencer::start(fixture.store(), SequencerConfig::default()).unwrap();
    let mut events = vec![Event::CreateAccount(NewAccount {
        id: 1,
        currency: cny(),
        kind: 1,
        flags: AccountFlags::empty(),
        user_data: 0,
    })];
    for wallet in 2..WALLETS + 2 {
        events.push(Event::CreateAccount(NewAccount {
            id: wallet,
            currency: cny(),
            kind: 1,
            flags: AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
            user_data: 0,
        }));
        events.push(Event::CreateTransfer(NewTransfer::new(
            1_000 + wallet,
            1,
            wallet,
            FUNDS,
            cny(),
        )));
    }
    let results = first.handle().execute(events).unwrap();
    assert!(results.iter().all(|result| *result == EventResult::Ok));
    // The second node starts after the first wrote: its view is the store's.
    let second_sequencer = Sequencer::start(second.as_ref(), SequencerConfig::default()).unwrap();

    // Every wallet is spent from both nodes at once, one unit at a time, into the shared
    // account 1: half again as many spends as there are funds. Each spend is also sent to the
    // other node under the same id, as a client retrying through another node would.
    let handles = [first.handle(), second_sequencer.handle()];
    let threads: Vec<_> = (0..2 * SUBMITTERS_PER_NODE)
        .map(|submitter| {
            let here = handles[(submitter % 2) as usize].clone();
            let there = handles[1 - (submitter % 2) as usize].clone();
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                for spend in 0..SPENDS_PER_SUBMITTER {
                    let id = 100_000 + submitter * 10_000 + spend;
                    let wallet = 2 + (submitter + spend) % WALLETS;
                    let event = Event::CreateTransfer(NewTransfer::new(id, wallet, 1, 1, cny()));
                    let first = here.submit(vec![event]).unwrap();
                    let again = there.submit(vec![event]).unwrap();
                    let first = first.wait().expect("no request sees an error")[0];
                    let again = again.wait().expect("no request sees an error")[0];
                    outcomes.push((wallet, first, again));
                }
                outcomes
            })
        })
        .collect();
    let mut spent = [0u128; WALLETS as usize];
    for thread in threads {
        for (wallet, first, again) in thread.join().unwrap() {
            let pair = [first, again];
            let created = pair.iter().filter(|r| **r == EventResult::Ok).count();
            let repeated = pair.iter().filter(|r| **r == EventResult::Exists).count();
            let refused = pair
                .iter()
                .filter(|r| **r == EventResult::ExceedsCredits)
                .count();
            assert!(
                (created == 1 && repeated == 1) || refused == 2,
                "one spend sent to both nodes: {pair:?}"
            );
            if created == 1 {
                spent[(wallet - 2) as usize] += 1;
            }
        }
    }
    let retried = Metrics::read(&first.handle().metrics().batches_retried)
        + Metrics::read(&second_sequencer.handle().metrics().batches_retried);
    let failed = Metrics::read(&first.handle().metrics().commit_failures)
        + Metrics::read(&second_sequencer.handle().metrics().commit_failures);
    first.shutdown();
    second_sequencer.shutdown();
    assert_eq!(failed, 0, "no batch failed");
    assert!(retried > 0, "the two nodes never overtook each other");

    let mut reader = fixture.store().reader().unwrap();
    for wallet in 2..WALLETS + 2 {
        let account = reader.account(wallet).unwrap().unwrap();
        assert_eq!(
            account.debits_posted,
            spent[(wallet - 2) as usize],
            "wallet {wallet}: what was acknowledged is what left it"
        );
        assert_eq!(
            account.debits_posted, FUNDS,
            "wallet {wallet} was spent to zero"
        );
    }
    let report = store::InvariantReport::check(reader.as_mut()).unwrap();
    assert!(report.holds(), "{report:?}");
    let head = reader.head().unwrap();
    let total: u128 = spent.iter().sum();
    assert_eq!(
        head.log_size,
        u64::try_from(WALLETS + total).unwrap(),
        "one leaf per committed transfer, in one sequence"
    );
}
