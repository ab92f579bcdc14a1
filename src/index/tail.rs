//! The tailing loop: an [`Indexer`] run on its own thread
//! ([`IndexerHandle`]), woken by file-system notifications (notify) and a
//! periodic rescan, committing on a short interval while documents are
//! pending, at a lower CPU priority than the process that spawned it.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use notify::Watcher;
use tantivy::IndexReader;

use super::Error;
use super::indexer::{IndexConfig, IndexStats, Indexer, Wake};

impl Indexer {
    /// Runs until a [`Wake::Shutdown`] arrives on `wake` (or every sender is
    /// gone): watches the storage directory, rescans every
    /// `rescan_interval`, commits every `commit_interval` while documents are
    /// pending, and commits once more before returning.
    pub fn run(mut self, wake_tx: SyncSender<Wake>, wake: Receiver<Wake>) -> Result<(), Error> {
        let watcher_tx = wake_tx.clone();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if res.is_ok() {
                let _ = watcher_tx.try_send(Wake::Changed);
            }
        })
        .map_err(|e| Error::Watch(e.to_string()))?;
        if let Err(e) = watcher.watch(&self.cfg.storage_path, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(error = %e, "file watcher unavailable; relying on the periodic rescan");
        }
        drop(wake_tx);
        let mut last_commit = Instant::now();
        let mut last_scan = Instant::now() - self.cfg.rescan_interval;
        // A busy writer wakes the indexer at every group commit (and the
        // watcher at every write): passes are at least this far apart, so
        // that each reads a batch worth the file listing it costs.
        const MIN_PASS_GAP: Duration = Duration::from_millis(20);
        let mut woken = false;
        loop {
            if last_scan.elapsed() >= self.cfg.rescan_interval
                || (woken && last_scan.elapsed() >= MIN_PASS_GAP)
            {
                self.catch_up_logged();
                last_scan = Instant::now();
                woken = false;
            }
            if self.dirty && last_commit.elapsed() >= self.cfg.commit_interval {
                // The interval runs from one commit's start to the next, so
                // that the time a commit takes does not add to the lag.
                last_commit = Instant::now();
                if let Err(e) = self.commit() {
                    tracing::error!(error = %e, "index commit failed; will retry");
                    if self.index_missing() {
                        self.catch_up_logged();
                    }
                }
            }
            let mut timeout = self.cfg.rescan_interval.saturating_sub(last_scan.elapsed());
            if woken {
                timeout = timeout.min(MIN_PASS_GAP.saturating_sub(last_scan.elapsed()));
            }
            if self.dirty {
                timeout = timeout.min(
                    self.cfg
                        .commit_interval
                        .saturating_sub(last_commit.elapsed()),
                );
            }
            match wake.recv_timeout(timeout) {
                Ok(Wake::Changed) => {
                    while let Ok(w) = wake.try_recv() {
                        if w == Wake::Shutdown {
                            return self.finish();
                        }
                    }
                    woken = true;
                }
                Ok(Wake::Shutdown) | Err(RecvTimeoutError::Disconnected) => return self.finish(),
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    fn catch_up_logged(&mut self) {
        if self.index_missing()
            && let Err(e) = self.rebuild()
        {
            tracing::error!(error = %e, "rebuilding the index failed; will retry");
            return;
        }
        if let Err(e) = self.catch_up() {
            tracing::error!(error = %e, "indexing pass failed; will retry");
        }
    }

    fn finish(mut self) -> Result<(), Error> {
        if self.index_missing() {
            self.rebuild()?;
        }
        self.catch_up()?;
        self.commit()?;
        if let Some(w) = self.writer.take() {
            w.wait_merging_threads().map_err(Error::tantivy)?;
        }
        Ok(())
    }
}

/// A running in-process indexer.
pub struct IndexerHandle {
    wake: SyncSender<Wake>,
    thread: Option<std::thread::JoinHandle<Result<(), Error>>>,
    stats: Arc<IndexStats>,
    search: super::IndexSearch,
}

impl IndexerHandle {
    /// Opens the indexer and runs it on a thread of its own (at a lower CPU
    /// priority if `cfg.nice` says so; the writer, and so tantivy's threads,
    /// are created on that thread and inherit it).
    pub fn spawn(cfg: IndexConfig) -> Result<IndexerHandle, Error> {
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let (tx, rx) = mpsc::sync_channel(64);
        let run_tx = tx.clone();
        let thread = std::thread::Builder::new()
            .name("evlog-indexer".into())
            .spawn(move || {
                lower_priority(cfg.nice);
                match Indexer::open(cfg) {
                    Ok(indexer) => {
                        let _ = ready_tx.send(Ok((indexer.stats(), indexer.search())));
                        indexer.run(run_tx, rx)
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        Ok(())
                    }
                }
            })
            .map_err(|e| Error::io("indexer thread", e))?;
        let (stats, search) = ready_rx
            .recv()
            .unwrap_or_else(|_| Err(Error::Tantivy("indexer thread panicked".into())))?;
        Ok(IndexerHandle {
            wake: tx,
            thread: Some(thread),
            stats,
            search,
        })
    }

    /// A sender that wakes the indexer (give it to [`crate::EventLog::on_commit`]).
    pub fn waker(&self) -> SyncSender<Wake> {
        self.wake.clone()
    }

    /// The counters.
    pub fn stats(&self) -> &IndexStats {
        &self.stats
    }

    /// A search over the indexer's reader (reloaded after each commit, time
    /// summaries warmed before a reload is published).
    pub fn search(&self) -> &super::IndexSearch {
        &self.search
    }

    /// The reader behind [`IndexerHandle::search`], reloaded after each commit.
    pub fn reader(&self) -> IndexReader {
        self.search.reader()
    }

    /// Commits what is pending, stops the indexer and waits for it.
    pub fn shutdown(mut self) -> Result<(), Error> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), Error> {
        let _ = self.wake.send(Wake::Shutdown);
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(Error::Tantivy("indexer thread panicked".into()))),
            None => Ok(()),
        }
    }
}

/// Adds `inc` to the calling thread's nice value (on Linux the nice value is
/// per thread, and threads it spawns inherit it). Failures are ignored: the
/// priority is a preference, not a requirement.
fn lower_priority(inc: i32) {
    #[cfg(target_os = "linux")]
    if inc > 0 {
        // SAFETY: nice(2) has no memory-safety preconditions; on Linux it
        // changes the calling thread only.
        unsafe {
            libc::nice(inc);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = inc;
}

impl Drop for IndexerHandle {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::error!(error = %e, "indexer stopped with an error");
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Nice values of this process's threads whose name starts with `prefix`.
    fn nice_of(prefix: &str) -> Vec<i64> {
        let mut out = Vec::new();
        for t in std::fs::read_dir("/proc/self/task").unwrap() {
            let dir = t.unwrap().path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if !comm.starts_with(prefix) {
                continue;
            }
            // Threads of other tests come and go: one may end after the listing.
            let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
                continue;
            };
            // Fields after the parenthesised name: state is field 3, nice 19.
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            out.push(rest.split(' ').nth(16).unwrap().parse().unwrap());
        }
        out
    }

    #[test]
    fn a_spawned_indexer_and_tantivys_threads_run_at_the_lower_priority() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = IndexConfig::new(dir.path());
        cfg.nice = 5;
        let base = nice_of("").into_iter().min().unwrap();
        let handle = IndexerHandle::spawn(cfg).unwrap();
        // Other tests may run indexers of their own (at the base priority)
        // meanwhile: this one's threads are those at base + 5.
        let want = (base + 5).min(19);
        // A new thread inherits its creator's priority at once but names
        // itself a moment later: poll until the names show (or give up).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        for name in ["evlog-indexer", "merge_thread"] {
            while !nice_of(name).contains(&want) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no {name} thread at nice {want}: {:?}",
                    nice_of("")
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        handle.shutdown().unwrap();
    }
}
