//! A background checkpointer: copies the WAL back into the database file on its own
//! connection, so that the writer's commits never wait for a checkpoint.
//!
//! SQLite lets a PASSIVE checkpoint run while the writer appends to the WAL; the WAL restarts
//! from its beginning once a checkpoint has caught up with it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use store::StoreResult;

use crate::open_connection;

const CHECKPOINT_INTERVAL_MS: u64 = 100;

#[derive(Debug)]
pub(crate) struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Checkpoints each of the database files at `paths`.
    pub(crate) fn start(paths: &[&Path]) -> StoreResult<Checkpointer> {
        let connections = paths
            .iter()
            .map(|path| open_connection(path, false))
            .collect::<StoreResult<Vec<_>>>()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    // Errors here are not fatal: the writer's own autocheckpoint is the backstop.
                    for connection in &connections {
                        let _ =
                            connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    }
                    std::thread::sleep(Duration::from_millis(CHECKPOINT_INTERVAL_MS));
                }
            })
            .map_err(|error| {
                store::StoreError::new(store::StoreErrorKind::Other, error.to_string())
            })?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
