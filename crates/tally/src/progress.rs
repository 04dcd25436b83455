//! A small progress bar on standard error for long commands.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const REFRESH_INTERVAL_MS: u64 = 200;
const BAR_WIDTH: u64 = 30;

#[derive(Debug)]
pub struct Progress {
    done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Draws `label` and a bar for `total` units until dropped; `enabled: false` draws nothing.
    pub fn start(label: &'static str, total: u64, enabled: bool) -> Progress {
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = enabled.then(|| {
            let done = done.clone();
            let stop = stop.clone();
            std::thread::spawn(move || draw_until_stopped(label, total, &done, &stop))
        });
        Progress { done, stop, thread }
    }

    pub fn counter(&self) -> Arc<AtomicU64> {
        self.done.clone()
    }
}

fn draw_until_stopped(label: &str, total: u64, done: &AtomicU64, stop: &AtomicBool) {
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_tenth = 0;
    loop {
        let finished = stop.load(Ordering::Relaxed);
        let count = done.load(Ordering::Relaxed).min(total);
        let fraction_per_mille = (count * 1000).checked_div(total).unwrap_or(1000);
        let elapsed = started.elapsed().as_secs_f64().max(1e-9);
        let rate = count as f64 / elapsed;
        let filled = fraction_per_mille * BAR_WIDTH / 1000;
        let bar: String = (0..BAR_WIDTH)
            .map(|cell| if cell < filled { '#' } else { '.' })
            .collect();
        let text = format!(
            "{label} [{bar}] {:>3}% {count}/{total} {:.0}/s",
            fraction_per_mille / 10,
            rate
        );
        let mut stderr = std::io::stderr().lock();
        if terminal {
            let _ = write!(stderr, "\r{text}");
        } else if fraction_per_mille / 100 > last_tenth || finished {
            last_tenth = fraction_per_mille / 100;
            let _ = writeln!(stderr, "{text}");
        }
        let _ = stderr.flush();
        if finished {
            if terminal {
                let _ = writeln!(stderr);
            }
            return;
        }
        drop(stderr);
        std::thread::sleep(Duration::from_millis(REFRESH_INTERVAL_MS));
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
