//! Bytes as a `.jsonl.gz` day file: either arbitrary bytes (a corrupt or
//! hostile file) or arbitrary content gzip-compressed (one or two members).
//! The reader never panics and never returns a partial line: of compressed
//! content it returns exactly the complete lines, and an error when the
//! content does not end with a newline.
#![no_main]

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use libfuzzer_sys::fuzz_target;

fn gz(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(p).expect("memory");
        out.extend(e.finish().expect("memory"));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let dir = evlog_fuzz::scratch().join("gz");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("events_2026-01-01.jsonl.gz");
    if mode & 1 == 0 {
        std::fs::write(&path, rest).expect("write");
        evlog_fuzz::read_day(&path, true, None);
    } else {
        let file = if mode & 2 == 0 {
            gz(&[rest])
        } else {
            let (a, b) = rest.split_at(rest.len() / 2);
            gz(&[a, b])
        };
        std::fs::write(&path, file).expect("write");
        let (seen, failed) = evlog_fuzz::read_day(&path, true, Some(rest));
        let complete = rest.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        assert_eq!(seen, &rest[..complete], "the complete lines");
        assert_eq!(
            failed,
            complete != rest.len(),
            "an error exactly when a line is cut"
        );
    }
    evlog_fuzz::scan_and_verify(&dir);
});
