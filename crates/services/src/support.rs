//! Plumbing the workflows share: striped locks that serialise the work on one object (within
//! the process, and on a shared store with the other nodes too), and a pool of store handles so
//! a request does not open a connection.

use std::hash::{Hash, Hasher};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use store::{RecordReader, SharedLocks, Store, StoreReader, StoreResult, UserStore};
use tokio::sync::{oneshot, MutexGuard};

/// Stripes of [`KeyedLocks`]: two unrelated objects share one with odds of 1 in this.
pub const LOCK_STRIPES: usize = 4096;
/// Idle store handles a pool keeps.
pub const POOL_HANDLES_MAX: usize = 64;

/// The class of objects' locks among a shared store's locks.
pub const OBJECT_LOCK_CLASS: i32 = 0x7461_6c6f;
/// The class of node numbers: a running node holds its number's lock.
pub const NODE_LOCK_CLASS: i32 = 0x7461_6c6e;
/// The class of background workers only one node runs at a time (the notification deliverer).
pub const WORKER_LOCK_CLASS: i32 = 0x7461_6c77;
/// How long a node waits, at most, before it asks again for a lock another node holds.
const SHARED_LOCK_RETRY_MAX: Duration = Duration::from_millis(16);

/// Serialises the work on one object (an order, a wallet, an idempotency key): its state is
/// read, checked and changed while the lock is held, until the change is durable. Within the
/// process the locks are striped mutexes, taken in stripe order, so two workflows never wait
/// on each other in a circle. On a shared store the object's lock among the store's shared
/// locks is taken next, in key order, so that two nodes do not work on one object at once.
#[derive(Debug)]
pub struct KeyedLocks {
    stripes: Vec<tokio::sync::Mutex<()>>,
    shared: Option<SharedLockClient>,
}

impl Default for KeyedLocks {
    fn default() -> Self {
        KeyedLocks {
            stripes: (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            shared: None,
        }
    }
}

/// Locks taken on one object or several: released when dropped.
#[derive(Debug)]
pub struct Locked<'a> {
    _stripes: Vec<MutexGuard<'a, ()>>,
    _shared: Option<SharedHold>,
}

/// Keys held among the shared locks, released when dropped.
#[derive(Debug)]
struct SharedHold {
    client: SharedLockClient,
    keys: Vec<i32>,
}

impl Drop for SharedHold {
    fn drop(&mut self) {
        if !self.keys.is_empty() {
            let keys = std::mem::take(&mut self.keys);
            let _ = self.client.commands.send(LockCommand::Release { keys });
        }
    }
}

enum LockCommand {
    /// Take these keys in order, stopping at the first another node holds; answer how many.
    Take {
        keys: Vec<i32>,
        reply: oneshot::Sender<usize>,
    },
    Release {
        keys: Vec<i32>,
    },
}

/// The process's session of shared locks, on a thread of its own: taking and releasing are
/// quick statements, in the order they are asked for.
#[derive(Clone)]
pub struct SharedLockClient {
    commands: mpsc::Sender<LockCommand>,
}

impl std::fmt::Debug for SharedLockClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("SharedLockClient")
    }
}

impl SharedLockClient {
    /// Starts the thread; its session is opened on first use (and again after it failed: the
    /// locks of a lost session are lost with it, and the ledger's fixed transfer ids remain
    /// the last guard against a second payment).
    fn start(store: Arc<dyn Store>) -> SharedLockClient {
        let (commands, received) = mpsc::channel::<LockCommand>();
        let spawned = std::thread::Builder::new()
            .name("shared-locks".into())
            .spawn(move || {
                let mut session: Option<Box<dyn SharedLocks>> = None;
                while let Ok(command) = received.recv() {
                    match command {
                        LockCommand::Take { keys, reply } => {
                            let taken = take_keys(store.as_ref(), &mut session, &keys);
                            if let Err(taken) = reply.send(taken) {
                                // The asker gave up (its request ended): let go again.
                                release_keys(&mut session, &keys[..taken]);
                            }
                        }
                        LockCommand::Release { keys } => release_keys(&mut session, &keys),
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "the shared-locks thread did not start");
        }
        SharedLockClient { commands }
    }

    /// Takes every key, in order, waiting while other nodes hold them.
    async fn lock(&self, mut keys: Vec<i32>) -> SharedHold {
        keys.sort_unstable();
        keys.dedup();
        let mut hold = SharedHold {
            client: self.clone(),
            keys: Vec::with_capacity(keys.len()),
        };
        let mut wait = Duration::from_millis(1);
        while hold.keys.len() < keys.len() {
            let rest = keys[hold.keys.len()..].to_vec();
            let (reply, answer) = oneshot::channel();
            if self
                .commands
                .send(LockCommand::Take {
                    keys: rest.clone(),
                    reply,
                })
                .is_err()
            {
                // No thread: nothing can be shared; the ledger still guards the money.
                tracing::error!("the shared-locks thread is gone");
                break;
            }
            let taken = answer.await.unwrap_or(0);
            hold.keys.extend_from_slice(&rest[..taken]);
            if hold.keys.len() < keys.len() {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(SHARED_LOCK_RETRY_MAX);
            }
        }
        hold
    }
}

fn take_keys(store: &dyn Store, session: &mut Option<Box<dyn SharedLocks>>, keys: &[i32]) -> usize {
    if session.is_none() {
        match store.shared_locks() {
            Ok(opened) => *session = opened,
            Err(error) => {
                tracing::warn!(%error, "the shared locks' session could not be opened");
                return 0;
            }
        }
    }
    let Some(locks) = session.as_mut() else {
        return 0;
    };
    let mut taken = 0;
    for key in keys {
        match locks.try_lock(OBJECT_LOCK_CLASS, *key) {
            Ok(true) => taken += 1,
            Ok(false) => break,
            Err(error) => {
                tracing::warn!(%error, "the shared locks' session failed");
                *session = None;
                return 0;
            }
        }
    }
    taken
}

fn release_keys(session: &mut Option<Box<dyn SharedLocks>>, keys: &[i32]) {
    let Some(locks) = session.as_mut() else {
        return;
    };
    for key in keys {
        if locks.unlock(OBJECT_LOCK_CLASS, *key).is_err() {
            // The session is gone, and its locks with it.
            *session = None;
            return;
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
    /// Locks for the services of one process on `handles`' store: shared with the other
    /// nodes when the store is.
    pub fn for_store(handles: &Handles) -> KeyedLocks {
        KeyedLocks {
            shared: handles.shared_locks.clone(),
            ..KeyedLocks::default()
        }
    }

    /// Locks every key, in stripe order (then, on a shared store, in key order among the
    /// shared locks); the guard releases them when dropped.
    pub async fn lock(&self, keys: &[u64]) -> Locked<'_> {
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
        let shared = match &self.shared {
            // The low 32 bits of the key: two objects share a lock with odds of 1 in 2^32.
            #[allow(clippy::cast_possible_truncation)]
            Some(client) => Some(
                client
                    .lock(keys.iter().map(|key| *key as u32 as i32).collect())
                    .await,
            ),
            None => None,
        };
        Locked {
            _stripes: guards,
            _shared: shared,
        }
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
    /// On a shared store: the process's session of locks shared with the other nodes.
    shared_locks: Option<SharedLockClient>,
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
            records: Mutex::new(Vec::new()),
            readers: Mutex::new(Vec::new()),
            users: Mutex::new(Vec::new()),
            user_writes: Mutex::new(()),
            shared_locks: store
                .shared()
                .then(|| SharedLockClient::start(store.clone())),
            store,
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
