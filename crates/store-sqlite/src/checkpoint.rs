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
/// WAL frames past which the WAL is started over (16 MiB of 4 KiB pages).
const RESTART_FRAMES: i64 = 4_096;
const RESTART_WAIT_STEP: Duration = Duration::from_micros(100);
const RESTART_WAIT_STEPS: i32 = 200;

#[derive(Debug)]
pub(crate) struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Checkpoints each of the database files at `paths`.
    pub(crate) fn start(paths: &[&Path]) -> StoreResult<Checkpointer> {
        Checkpointer::start_restarting_at(paths, RESTART_FRAMES)
    }

    /// The same, starting a WAL over once it holds `restart_frames` frames.
    fn start_restarting_at(paths: &[&Path], restart_frames: i64) -> StoreResult<Checkpointer> {
        let connections = paths
            .iter()
            .map(|path| {
                let connection = open_connection(path, false)?;
                // A RESTART holds the write lock while it waits for readers to leave the WAL:
                // every commit waits behind it. It gives up after ~20 ms and tries again at the
                // next round, rather than stopping the writer for seconds.
                connection
                    .busy_handler(Some(wait_briefly))
                    .map_err(crate::map_error)?;
                Ok(connection)
            })
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
                        if frames >= restart_frames {
                            let _ =
                                connection
                                    .query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()));
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

/// The checkpointer's busy handler: 200 tries 100 µs apart.
fn wait_briefly(attempts: i32) -> bool {
    std::thread::sleep(RESTART_WAIT_STEP);
    attempts < RESTART_WAIT_STEPS
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes about 40 MiB of WAL frames while three connections read without pause, then
    /// returns the WAL file's size.
    fn wal_size_under_reads(restart_frames: i64) -> u64 {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("wal.sqlite");
        let writer = open_connection(&path, false).unwrap();
        writer
            .execute_batch(
                "PRAGMA synchronous = OFF;
                 CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL);",
            )
            .unwrap();
        let checkpointer = Checkpointer::start_restarting_at(&[&path], restart_frames).unwrap();
        let reading = Arc::new(AtomicBool::new(true));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (path, reading) = (path.clone(), reading.clone());
                std::thread::spawn(move || {
                    let connection = open_connection(&path, true).unwrap();
                    while reading.load(Ordering::Relaxed) {
                        let _: i64 = connection
                            .query_row(
                                "SELECT coalesce(sum(length(data)), 0) FROM blobs",
                                [],
                                |row| row.get(0),
                            )
                            .unwrap();
                    }
                })
            })
            .collect();
        let data = vec![7u8; 3 * 1024];
        for round in 0..100 {
            writer.execute_batch("BEGIN").unwrap();
            for row in 0..128 {
                writer
                    .execute(
                        "INSERT OR REPLACE INTO blobs (id, data) VALUES (?1, ?2)",
                        rusqlite::params![(round % 4) * 128 + row, &data],
                    )
                    .unwrap();
            }
            writer.execute_batch("COMMIT").unwrap();
            std::thread::sleep(Duration::from_millis(25));
        }
        reading.store(false, Ordering::Relaxed);
        for reader in readers {
            reader.join().unwrap();
        }
        drop(checkpointer);
        std::fs::metadata(directory.path().join("wal.sqlite-wal"))
            .unwrap()
            .len()
    }

    #[test]
    fn the_wal_starts_over_although_readers_never_pause() {
        // 100 commits of ~128 pages of 4 KiB over 2.5 s. Never started over, the WAL grew to
        // 9.5 and 16 MiB in two runs here (the readers seldom leave it a moment of its own to
        // restart); started over at 256 frames, to 2.6 and 3.2 MiB.
        let bounded = wal_size_under_reads(256);
        assert!(
            bounded < 8 * 1024 * 1024,
            "the WAL grew to {bounded} bytes although it is started over at 256 frames"
        );
    }
}
