//! A background checkpointer: copies the WAL back into the database file on its own
//! connection, so that the writer's commits never wait for a checkpoint.
//!
//! SQLite lets a PASSIVE checkpoint run while the writer appends to the WAL; the WAL restarts
//! from its beginning once a checkpoint has caught up with it and no reader still reads from
//! it. Under a steady stream of short reads that moment rarely comes, and the WAL grew without
//! end (180 MB in 15 s of the API bench): every commit then appended to new blocks of the
//! file, and its sync wrote the file system's metadata too, two more waits on the disk per
//! commit. So once the WAL holds [`RESTART_FRAMES`] frames, a RESTART checkpoint follows the
//! PASSIVE one: it copies the few frames committed since, waits for the readers still in the
//! WAL to finish (microseconds), and makes the next commit start the WAL over, into blocks the
//! file already has. The writer waits for it at most once per [`RESTART_FRAMES`] frames.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use store::StoreResult;

use crate::open_connection;

const CHECKPOINT_INTERVAL_MS: u64 = 100;
/// WAL frames past which the WAL is started over (64 MiB of 16 KiB pages).
const RESTART_FRAMES: i64 = 4_096;

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
                        let frames = connection
                            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                                row.get::<_, i64>(1)
                            })
                            .unwrap_or(0);
                        if frames >= RESTART_FRAMES {
                            let _ = connection.query_row(
                                "PRAGMA wal_checkpoint(RESTART)",
                                [],
                                |_| Ok(()),
                            );
                        }
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
