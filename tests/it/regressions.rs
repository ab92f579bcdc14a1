//! Regression tests, each named after what broke.

use evlog::store::verify::Problem;

use crate::util::written_store;

/// `verify` read one line ahead, then searched for the missing seq only
/// after that line: two swapped neighbours were reported as a removed line.
#[test]
fn verify_reported_swapped_adjacent_lines_as_removed() {
    for (a, b) in [(0, 1), (2, 3), (4, 5)] {
        let store = written_store(&[("2026-05-05T10:00:00Z", 6)]);
        let path = store.file("events_2026-05-05.jsonl");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.swap(a, b);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();

        let f = store.verify().failure.expect("a swap breaks the chain");
        assert_eq!(
            (f.line, f.problem),
            (a as u64 + 1, Problem::Reordered),
            "swap of lines {} and {}: {f}",
            a + 1,
            b + 1
        );
        assert!(
            f.detail.contains(&format!("at line {}", b + 1)),
            "{}",
            f.detail
        );
    }
}
