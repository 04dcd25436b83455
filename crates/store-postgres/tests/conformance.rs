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
