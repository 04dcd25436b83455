//! Store readers for async handlers: blocking reads run on tokio's blocking pool, each with a
//! reader taken from a small pool and given back afterwards.

use std::sync::{Arc, Mutex};

use store::{Store, StoreError, StoreErrorKind, StoreReader, StoreResult};

/// Readers kept open between requests, at most.
const READERS_IDLE_MAX: usize = 16;

pub struct ReaderPool {
    store: Arc<dyn Store>,
    idle: Mutex<Vec<Box<dyn StoreReader>>>,
}

impl std::fmt::Debug for ReaderPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderPool")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl ReaderPool {
    pub fn new(store: Arc<dyn Store>) -> Self {
        ReaderPool {
            store,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn take(&self) -> StoreResult<Box<dyn StoreReader>> {
        let idle = self.idle.lock().map(|mut idle| idle.pop()).unwrap_or(None);
        match idle {
            Some(reader) => Ok(reader),
            None => self.store.reader(),
        }
    }

    fn give_back(&self, reader: Box<dyn StoreReader>) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < READERS_IDLE_MAX {
                idle.push(reader);
            }
        }
    }

    /// Runs `read` with a reader on the blocking pool.
    pub async fn run<T: Send + 'static>(
        self: &ReaderPoolHandle,
        read: impl FnOnce(&mut dyn StoreReader) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut reader = pool.take()?;
            let result = read(reader.as_mut());
            // A reader that failed may be broken: open a fresh one next time.
            if result.is_ok() {
                pool.give_back(reader);
            }
            result
        })
        .await
        .unwrap_or_else(|error| Err(StoreError::new(StoreErrorKind::Other, error.to_string())))
    }
}

pub type ReaderPoolHandle = Arc<ReaderPool>;
