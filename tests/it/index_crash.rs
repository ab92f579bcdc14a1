//! Exactly-once indexing under SIGKILL: `evlog index` is killed at random
//! moments, over and over, while an `evlog append --stdin` child keeps
//! appending. The documents and the checkpoint are committed together, so
//! after every kill the index holds exactly the lines its checkpoint covers,
//! and after a final catch-up exactly the lines of the files, each once.

use std::collections::HashSet;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use evlog::index::indexer::{self, IndexConfig, Indexer};
use evlog::index::{IndexSearch, Query};

use crate::util::{Rng, Store, feed_lines, ids, read_acks, utc};

const KILLS: u64 = 12;

/// The committed state of the index: (documents, lines its checkpoint covers).
fn committed(storage: &Path) -> (u64, u64) {
    let (index, _) = indexer::open_index(&storage.join(indexer::INDEX_DIR)).unwrap();
    let cp = evlog::index::checkpoint::read_checkpoint(&index).unwrap();
    let search = IndexSearch::open(storage).unwrap();
    (
        search.num_docs(),
        cp.files.values().map(|m| m.lines).sum::<u64>(),
    )
}

/// Every id in the index, newest first, by cursor pages of 1000.
fn all_indexed_ids(search: &IndexSearch) -> Vec<String> {
    let mut q = Query {
        start: Some(utc("2000-01-01T00:00:00Z")),
        limit: Some(1000),
        ..Default::default()
    };
    let mut out = Vec::new();
    loop {
        let resp = search.query(&q).unwrap();
        out.extend(ids(&resp.events));
        match resp.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return out,
        }
    }
}

#[test]
fn sigkilled_indexers_index_every_line_exactly_once() {
    let mut rng = Rng::from_env_or(0x1de7_c4a5);
    let store = Store::new();
    let durability = if rng.range(0, 2) == 0 {
        "batch"
    } else {
        "none"
    };
    let mut appender = store.spawn_append_stdin(durability);
    // Blocks of lines a few milliseconds apart until `stop`.
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let feeder = feed_lines(&mut appender, "ix", rng.next_u64(), 10, move |rng| {
        std::thread::sleep(Duration::from_millis(rng.range(1, 5)));
        !stopped.load(Ordering::SeqCst)
    });
    let (first_tx, first_rx) = mpsc::sync_channel(1);
    let reader = read_acks(&mut appender, first_tx);
    first_rx.recv().expect("the appender acknowledged nothing");

    let mut last_docs = 0;
    let mut progressed = 0;
    for kill in 0..KILLS {
        let mut ix = store
            .cmd()
            .args([
                "index",
                "--commit-interval-ms",
                "50",
                "--rescan-interval-ms",
                "50",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if progressed == 0 && kill >= KILLS / 2 {
            // A loaded machine may not have let any indexer commit yet: this
            // one is killed only after its first commit, at a random moment.
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while committed(store.path()).0 <= last_docs {
                assert!(
                    std::time::Instant::now() < deadline,
                    "kill {kill}: the indexer committed nothing in 60 s"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        std::thread::sleep(Duration::from_millis(rng.range(50, 401)));
        if let Some(status) = ix.try_wait().unwrap() {
            let mut err = String::new();
            ix.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("kill {kill}: the indexer ended by itself ({status}):\n{err}");
        }
        ix.kill().unwrap(); // SIGKILL
        let status = ix.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "kill {kill}: {status}");

        // Documents and checkpoint moved together; nothing went backwards.
        let (docs, covered) = committed(store.path());
        assert_eq!(
            docs, covered,
            "kill {kill}: the index holds {docs} documents but its checkpoint covers {covered} lines"
        );
        assert!(docs >= last_docs, "kill {kill}: {docs} < {last_docs}");
        if docs > last_docs {
            progressed += 1;
        }
        last_docs = docs;
    }
    assert!(
        progressed > 0,
        "no killed indexer ever committed: the test exercised nothing"
    );

    stop.store(true, Ordering::SeqCst);
    let fed = feeder
        .join()
        .unwrap()
        .expect("the appender stopped reading");
    let status = appender.wait().unwrap();
    let mut err = String::new();
    appender
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "appender: {status}\n{err}");
    let acked = reader.join().unwrap();
    assert_eq!(acked.len() as u64, fed, "every line fed was acknowledged");

    // The final catch-up.
    let mut ix = Indexer::open(IndexConfig::new(store.path())).unwrap();
    ix.catch_up_and_commit().unwrap();
    drop(ix);
    let search = IndexSearch::open(store.path()).unwrap();
    let lines = store.lines().len() as u64;
    let records = store.records();
    assert_eq!(records.len() as u64, lines);
    assert_eq!(search.num_docs(), lines, "documents == lines in the files");

    let indexed = all_indexed_ids(&search);
    let unique: HashSet<&String> = indexed.iter().collect();
    assert_eq!(unique.len(), indexed.len(), "an event is indexed twice");
    let mut want: Vec<&evlog::Record> = records.iter().collect();
    want.sort_by_key(|r| std::cmp::Reverse((r.event.timestamp.unwrap(), r.seq)));
    let want: Vec<String> = want
        .iter()
        .map(|r| r.event.id.unwrap().to_string())
        .collect();
    assert_eq!(indexed, want, "the index holds exactly the files' events");
    let stored: HashSet<String> = want.into_iter().collect();
    assert!(acked.iter().all(|id| stored.contains(&id.to_string())));
    eprintln!(
        "{KILLS} kills ({progressed} with progress), {lines} events, durability {durability}"
    );
}
