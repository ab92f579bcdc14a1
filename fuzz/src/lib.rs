//! Checks shared by the fuzz targets (see `fuzz_targets/`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use evlog::Event;
use evlog::event::privacy::PrivacyConfig;
use evlog::index::schema::Fields;
use evlog::store::chain::{self, ChainHead};
use evlog::store::reader::{self, LineReader};
use evlog::store::{DayRange, Scan};

/// An accepted event survives what the store does to it: serialize → parse
/// gives the same event, still valid; the privacy filters keep it valid; and
/// sealed into a stored line it reads back as the same event.
pub fn check_accepted(event: &Event) {
    event
        .validate()
        .unwrap_or_else(|e| panic!("accepted but invalid: {e}: {event:?}"));
    let mut event = event.clone();
    // Chain fields are read but never written.
    event._seq = None;
    event._hash = None;
    let line = serde_json::to_vec(&event).expect("a valid event serializes");
    let back = Event::from_json(&line).unwrap_or_else(|e| {
        panic!(
            "does not parse back: {e}: {}",
            String::from_utf8_lossy(&line)
        )
    });
    assert_eq!(
        back,
        event,
        "round trip of {}",
        String::from_utf8_lossy(&line)
    );
    back.validate().expect("valid after the round trip");
    let value: serde_json::Value = serde_json::from_slice(&line).expect("JSON");
    assert_eq!(Event::from_value(value).expect("from_value"), event);

    // What the store writes: privacy filters, id, timestamp, then the chain.
    let privacy = PrivacyConfig {
        truncate_ip: true,
        user_id_hash_key: Some("fuzz".into()),
        ..PrivacyConfig::default()
    };
    let mut stored = event.clone();
    privacy.apply(&mut stored);
    stored
        .validate()
        .unwrap_or_else(|e| panic!("invalid after the privacy filters: {e}: {stored:?}"));
    let stored = stored
        .id(uuid::Uuid::now_v7())
        .timestamp(event.timestamp.unwrap_or_else(chrono::Utc::now));
    let body = serde_json::to_vec(&stored).expect("serializes");
    let mut sealed = Vec::new();
    chain::seal(&ChainHead::GENESIS, &body, &mut sealed);
    assert_eq!(sealed.last(), Some(&b'\n'));
    assert_eq!(
        memchr_count(&sealed),
        1,
        "one event, one line: {}",
        String::from_utf8_lossy(&sealed)
    );
    let line = &sealed[..sealed.len() - 1];
    let rec = reader::parse_record(Path::new("fuzz"), 1, line).unwrap_or_else(|e| {
        panic!(
            "stored line unreadable: {e}: {}",
            String::from_utf8_lossy(line)
        )
    });
    assert_eq!(rec.event, stored);
    assert_eq!(rec.seq, 1);
    let tail = chain::parse_tail(line).expect("chain fields");
    assert!(tail.links_to(&ChainHead::GENESIS.hash));
    fields().document(&rec, chrono::NaiveDate::MIN, line);
}

fn memchr_count(b: &[u8]) -> usize {
    b.iter().filter(|c| **c == b'\n').count()
}

/// The index schema's fields (for line → document).
pub fn fields() -> &'static Fields {
    static F: OnceLock<Fields> = OnceLock::new();
    F.get_or_init(Fields::new)
}

/// A scratch directory of this process, emptied of day files.
pub fn scratch() -> &'static Path {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("evlog-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("scratch dir");
        d
    })
}

/// Reads every line of a day file the way the scan and the indexer do and
/// checks that no partial line comes out: each line is newline-free, the
/// lines with their newlines are a prefix of `expect` (the uncompressed
/// content, when known), and the offset follows them. Returns the bytes
/// read as lines and whether reading ended in an error.
pub fn read_day(path: &Path, compressed: bool, expect: Option<&[u8]>) -> (Vec<u8>, bool) {
    let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).expect("day");
    let mut r = LineReader::open_path(path, compressed).expect("open");
    let mut seen = Vec::new();
    let mut buf = Vec::new();
    let failed = loop {
        match r.next_line(&mut buf) {
            Ok(Some((no, line))) => {
                let line = line.to_vec();
                let line = &line[..];
                assert!(!line.contains(&b'\n'), "a line with a newline inside");
                assert_eq!(no, r.line_no());
                seen.extend_from_slice(line);
                seen.push(b'\n');
                assert_eq!(r.offset() as usize, seen.len(), "offset after line {no}");
                if let Some(e) = expect {
                    assert!(e.starts_with(&seen), "line {no} is not what the file holds");
                }
                if let Ok(rec) = reader::parse_record(path, no, line) {
                    fields().document(&rec, day, line);
                }
                let _ = chain::parse_tail(line);
            }
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    (seen, failed)
}

/// Scans and verifies the scratch directory: no panic, whatever it holds.
pub fn scan_and_verify(dir: &Path) {
    for r in Scan::new(dir, DayRange::all()).expect("scan") {
        let _ = r;
    }
    let _ = evlog::store::verify::verify(dir, DayRange::all());
}
