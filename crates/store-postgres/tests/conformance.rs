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
