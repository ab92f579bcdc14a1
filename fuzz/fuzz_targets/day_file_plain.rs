//! Arbitrary bytes as a plain day file: the reader returns exactly the
//! complete lines (never a partial one), parsing and indexing a line never
//! panics, and a scan and `verify` of the directory never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = evlog_fuzz::scratch().join("plain");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("events_2026-01-01.jsonl");
    std::fs::write(&path, data).expect("write");
    let complete = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let (seen, failed) = evlog_fuzz::read_day(&path, false, Some(data));
    assert!(!failed, "reading a plain file failed");
    assert_eq!(
        seen,
        &data[..complete],
        "the complete lines, no more, no less"
    );
    evlog_fuzz::scan_and_verify(&dir);
});
