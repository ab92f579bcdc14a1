//! A model of a proposed indexer loop, built from the public `Indexer` API,
//! for the lag phase (`--lag-loop model`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use evlog::EventLog;
use evlog::index::indexer::IndexStats;
use evlog::index::{IndexConfig, Indexer};

/// The proposed loop: commits on a fixed cadence measured from the start of
/// the previous commit (not its end), catches up right before each commit,
/// and is woken only by this log's commits (no file watcher).
pub struct ModelIndexer {
    reader: tantivy::IndexReader,
    stats: Arc<IndexStats>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Duration>>,
}

impl ModelIndexer {
    pub fn start(log: &EventLog, dir: &Path) -> ModelIndexer {
        let mut ix = Indexer::open(IndexConfig::new(dir)).expect("Indexer::open");
        let reader = ix.reader();
        let stats = ix.stats();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        log.on_commit(move || {
            let _ = tx.try_send(());
        });
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("model-indexer".into())
            .spawn(move || {
                let interval = Duration::from_millis(500);
                let mut durations = Vec::new();
                let mut next = Instant::now() + interval;
                loop {
                    if stop2.load(Ordering::Relaxed) {
                        ix.catch_up().expect("catch_up");
                        ix.commit().expect("commit");
                        return durations;
                    }
                    let now = Instant::now();
                    if now >= next {
                        ix.catch_up().expect("catch_up");
                        let t0 = Instant::now();
                        ix.commit().expect("commit");
                        durations.push(t0.elapsed());
                        next = t0 + interval;
                        continue;
                    }
                    let wait = (next - now).min(Duration::from_millis(100));
                    match rx.recv_timeout(wait) {
                        Ok(()) => {
                            ix.catch_up().expect("catch_up");
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                            stop2.store(true, Ordering::Relaxed);
                        }
                    }
                }
            })
            .expect("spawn");
        ModelIndexer {
            reader,
            stats,
            stop,
            thread,
        }
    }

    /// The reader of its index.
    pub fn reader(&self) -> &tantivy::IndexReader {
        &self.reader
    }

    /// Its counters.
    pub fn stats(&self) -> &IndexStats {
        &self.stats
    }

    /// Stops it after a last catch-up and commit; returns the durations of
    /// its commits.
    pub fn shutdown(self) -> Vec<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("model indexer")
    }
}
