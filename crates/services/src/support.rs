//! Plumbing the workflows share: striped locks that serialise the work on one object, and a
//! pool of store handles so a request does not open a connection.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use store::{RecordReader, Store, StoreReader, StoreResult, UserStore};
use tokio::sync::MutexGuard;

/// Stripes of [`KeyedLocks`]: two unrelated objects share one with odds of 1 in this.
pub const LOCK_STRIPES: usize = 4096;
/// Idle store handles a pool keeps.
pub const POOL_HANDLES_MAX: usize = 64;

/// Serialises the work on one object (an order, a wallet, an idempotency key) within this
/// process: its state is read, checked and changed while the lock is held, until the change is
/// durable. Locks are taken in stripe order, so two workflows never wait on each other in a
/// circle.
#[derive(Debug)]
pub struct KeyedLocks {
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl Default for KeyedLocks {
    fn default() -> Self {
        KeyedLocks {
            stripes: (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }
}

/// What a lock is taken on.
pub fn lock_key(kind: &str, id: impl Hash) -> u64 {
    // A fixed hasher: stripes are the same in every run.
    let mut hasher = std::hash::DefaultHasher::new();
    kind.hash(&mut hasher);
    id.hash(&mut hasher);
    hasher.finish()
}

impl KeyedLocks {
    /// Locks every key, in stripe order; the guards release them when dropped.
    pub async fn lock(&self, keys: &[u64]) -> Vec<MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = keys
            .iter()
            .map(|key| (*key % LOCK_STRIPES as u64) as usize)
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for stripe in stripes {
            guards.push(self.stripes[stripe].lock().await);
        }
        guards
    }
}

/// Record readers and user stores, reused across requests.
pub struct Handles {
    store: Arc<dyn Store>,
    records: Mutex<Vec<Box<dyn RecordReader>>>,
    readers: Mutex<Vec<Box<dyn StoreReader>>>,
    users: Mutex<Vec<Box<dyn UserStore>>>,
    /// One write to the user tables at a time from this process: a crowd of writers (every
    /// session's first payment counts a try) would otherwise queue on the database's write lock
    /// beside the ledger's writer, with no fairness among them.
    user_writes: Mutex<()>,
}

/// A user store that may write, and this process's turn to write.
pub struct UserWriter<'a> {
    handle: Pooled<'a, dyn UserStore>,
    _turn: std::sync::MutexGuard<'a, ()>,
}

impl std::fmt::Debug for UserWriter<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("UserWriter")
    }
}

impl std::ops::Deref for UserWriter<'_> {
    type Target = dyn UserStore;
    fn deref(&self) -> &(dyn UserStore + 'static) {
        &*self.handle
    }
}

impl std::ops::DerefMut for UserWriter<'_> {
    fn deref_mut(&mut self) -> &mut (dyn UserStore + 'static) {
        &mut *self.handle
    }
}

impl std::fmt::Debug for Handles {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Handles").finish_non_exhaustive()
    }
}

/// A pooled handle: back to its pool when dropped, unless it failed.
pub struct Pooled<'a, T: ?Sized> {
    handle: Option<Box<T>>,
    pool: &'a Mutex<Vec<Box<T>>>,
}

impl<T: ?Sized> std::fmt::Debug for Pooled<'_, T> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Pooled")
    }
}

impl<T: ?Sized> std::ops::Deref for Pooled<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.handle.as_deref().expect("present until dropped")
    }
}

impl<T: ?Sized> std::ops::DerefMut for Pooled<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.handle.as_deref_mut().expect("present until dropped")
    }
}

impl<T: ?Sized> Drop for Pooled<'_, T> {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            if std::thread::panicking() {
                return;
            }
            let mut pool = self.pool.lock().expect("pool lock");
            if pool.len() < POOL_HANDLES_MAX {
                pool.push(handle);
            }
        }
    }
}

impl Handles {
    pub fn new(store: Arc<dyn Store>) -> Handles {
        Handles {
            store,
            records: Mutex::new(Vec::new()),
            readers: Mutex::new(Vec::new()),
            users: Mutex::new(Vec::new()),
            user_writes: Mutex::new(()),
        }
    }

    /// A user store for writing, once it is this process's turn (see [`Handles`]). Blocks:
    /// call it off the async threads.
    pub fn user_writer(&self) -> StoreResult<UserWriter<'_>> {
        let turn = self
            .user_writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(UserWriter {
            handle: self.user_store()?,
            _turn: turn,
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Runs `read` on a pooled ledger reader (accounts, transfers). A handle that failed is
    /// dropped, not reused.
    pub fn ledger<T>(
        &self,
        read: impl FnOnce(&mut dyn StoreReader) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let pooled = self.readers.lock().expect("pool lock").pop();
        let mut handle = Pooled {
            handle: Some(match pooled {
                Some(handle) => handle,
                None => self.store.reader()?,
            }),
            pool: &self.readers,
        };
        let result = read(&mut *handle);
        if result.is_err() {
            handle.handle = None;
        }
        result
    }

    /// Runs `read` on a pooled record reader. A handle that failed is dropped, not reused.
    pub fn records<T>(
        &self,
        read: impl FnOnce(&mut dyn RecordReader) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut handle = self.record_reader()?;
        let result = read(&mut *handle);
        if result.is_err() {
            handle.handle = None;
        }
        result
    }

    pub fn record_reader(&self) -> StoreResult<Pooled<'_, dyn RecordReader>> {
        let pooled = self.records.lock().expect("pool lock").pop();
        let handle = match pooled {
            Some(handle) => handle,
            None => self.store.records()?,
        };
        Ok(Pooled {
            handle: Some(handle),
            pool: &self.records,
        })
    }

    /// A pooled user store.
    pub fn user_store(&self) -> StoreResult<Pooled<'_, dyn UserStore>> {
        let pooled = self.users.lock().expect("pool lock").pop();
        let handle = match pooled {
            Some(handle) => handle,
            None => self.store.users()?,
        };
        Ok(Pooled {
            handle: Some(handle),
            pool: &self.users,
        })
    }

    /// Runs `work` on a pooled user store.
    pub fn users<T, E: From<store::StoreError>>(
        &self,
        work: impl FnOnce(&mut dyn UserStore) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut handle = self.user_store()?;
        work(&mut *handle)
    }
}
