//! The store conformance suite against the SQLite backend.

use store::Store;
use store_sqlite::SqliteStore;

/// A store in its own temporary data directory.
struct SqliteFixture {
    directory: tempfile::TempDir,
    store: SqliteStore,
}

impl store_conformance::Fixture for SqliteFixture {
    fn store(&self) -> &dyn Store {
        &self.store
    }

    fn open_again(&self) -> Box<dyn Store> {
        Box::new(SqliteStore::open(self.directory.path()).expect("the same store again"))
    }
}

fn fixture() -> SqliteFixture {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(directory.path()).expect("a new store");
    SqliteFixture { directory, store }
}

store_conformance::conformance_tests!(fixture);
store_conformance::business_conformance_tests!(fixture);
