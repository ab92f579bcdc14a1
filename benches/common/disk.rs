//! A store on disk: its days, the size of its day files and of any
//! directory, and reading files once into the page cache, so that queries
//! run from memory as on a serving machine.

use std::path::Path;

use chrono::NaiveDate;
use evlog::index::indexer::INDEX_DIR;
use evlog::store::day::{self, DayRange};

/// The days of the store's day files, oldest first.
pub fn stored_days(store: &Path) -> Vec<NaiveDate> {
    day::list(store, DayRange::all())
        .expect("listing day files")
        .iter()
        .map(|f| f.day)
        .collect()
}

/// Bytes of the store's day files.
pub fn day_file_bytes(store: &Path) -> u64 {
    day::list(store, DayRange::all())
        .expect("listing day files")
        .iter()
        .map(|f| std::fs::metadata(&f.path).map_or(0, |m| m.len()))
        .sum()
}

/// Bytes of the files below `p`, at any depth.
pub fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Reads the file at `p` to its end; returns the bytes read.
pub fn read_through(p: &Path) -> u64 {
    std::io::copy(
        &mut std::fs::File::open(p).expect("open a file to read through"),
        &mut std::io::sink(),
    )
    .expect("read a file through")
}

/// Reads every file of the store's index once; returns the bytes read.
pub fn warm_index(store: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(store.join(INDEX_DIR)).expect("index dir") {
        let p = e.expect("entry").path();
        if p.is_file() {
            n += read_through(&p);
        }
    }
    n
}
