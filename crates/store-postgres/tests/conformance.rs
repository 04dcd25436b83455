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
        ]
    );
    let server = TestServer::shared().expect("the server");
    let empty = server.create_database().expect("a database");
    let error = PostgresStore::open_existing(&empty).expect_err("not a store yet");
    assert!(error.message.contains("schema is version 0"), "{error}");
    let error = PostgresStore::open("postgres://tally@127.0.0.1:1/nothing").expect_err("no server");
    assert_eq!(error.kind, store::StoreErrorKind::Unavailable, "{error}");
}
