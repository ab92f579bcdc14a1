//! SQLite as a durable peer: a connection in WAL mode with
//! `synchronous=FULL` (each commit fsynced) and a 60 s busy timeout.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

/// Opens the database at `path` as above (and checks that it took).
pub fn open_durable(path: &Path) -> Connection {
    let c = Connection::open(path).expect("opening sqlite");
    c.busy_timeout(Duration::from_secs(60))
        .expect("busy_timeout");
    let mode: String = c
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
    c.execute_batch("PRAGMA synchronous=FULL")
        .expect("synchronous");
    let sync: i64 = c
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .expect("synchronous");
    assert_eq!(sync, 2, "synchronous=FULL");
    c
}
