//! Stored events as CSV or NDJSON: the formats of `evlog query --format csv|ndjson`
//! and of `GET /events/export`, written one page at a time.

use std::io::{self, Write};

use serde_json::Value;

/// Columns of the CSV output, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "timestamp",
    "id",
    "event_type",
    "user_id",
    "status",
    "level",
    "action_description",
    "request_id",
    "source_ip",
    "duration_ms",
    "files_changed",
    "comments",
    "metadata",
    "appended_by",
    "source",
    "tenant",
    "resolved",
    "resolved_at",
    "resolved_by",
];

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CSV with a header row ([`CSV_COLUMNS`]; files joined by `;`, metadata
    /// as JSON; text that a spreadsheet would run as a formula prefixed with `'`).
    Csv,
    /// One stored event (chain fields included) per line.
    Ndjson,
}

impl Format {
    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
        }
    }

    /// What goes before the first event: the CSV header row.
    pub fn write_header(self, out: &mut impl Write) -> io::Result<()> {
        match self {
            Format::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(CSV_COLUMNS)?;
                w.flush()
            }
            Format::Ndjson => Ok(()),
        }
    }

    /// Writes `events` as rows (no header).
    pub fn write_rows(self, out: &mut impl Write, events: &[Value]) -> io::Result<()> {
        match self {
            Format::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(out);
                for e in events {
                    w.write_record(CSV_COLUMNS.iter().map(|c| cell(&e[*c], c)))?;
                }
                w.flush()
            }
            Format::Ndjson => events.iter().try_for_each(|e| writeln!(out, "{e}")),
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "csv" => Ok(Format::Csv),
            "ndjson" => Ok(Format::Ndjson),
            other => Err(format!(
                "`{other}` is not an export format: want csv or ndjson"
            )),
        }
    }
}

/// The CSV cell of one field. Text that a spreadsheet would run as a
/// formula (OWASP "CSV injection": a cell beginning with `=`, `+`, `-`, `@`,
/// tab or CR) gets a `'` in front, and so does text already beginning with
/// `'`, so that removing one leading `'` always gives the stored value back.
/// JSON numbers (`duration_ms`, never negative) are written as they are: a
/// number is never a formula.
fn cell(v: &Value, column: &str) -> String {
    let text = match v {
        Value::Null => return String::new(),
        Value::Number(n) => return n.to_string(),
        Value::String(s) => s.clone(),
        // Each file neutralised on its own: a spreadsheet that splits cells
        // on `;` (Excel in many locales) would start a cell with each.
        Value::Array(items) if column == "files_changed" => {
            return items
                .iter()
                .filter_map(Value::as_str)
                .map(|f| neutralised(f.to_string()))
                .collect::<Vec<_>>()
                .join(";");
        }
        other => other.to_string(),
    };
    neutralised(text)
}

/// First characters that make a spreadsheet evaluate a cell (and `'`, the
/// mark of a neutralised cell).
const FORMULA_START: &[char] = &['=', '+', '-', '@', '\t', '\r', '\''];

/// `text` with a `'` in front when it begins like a formula.
fn neutralised(text: String) -> String {
    if text.starts_with(FORMULA_START) {
        format!("'{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_rows_follow_the_header_and_quote_what_needs_it() {
        let e = json!({"timestamp":"2026-11-23T12:00:00.000000Z","id":"x","event_type":"commit",
            "user_id":"dev","status":"success","level":"info","action_description":"a, \"b\"",
            "files_changed":["a.rs","b.rs"],"metadata":{"k":1},"duration_ms":5.0});
        let mut out = Vec::new();
        Format::Csv.write_header(&mut out).unwrap();
        Format::Csv
            .write_rows(&mut out, std::slice::from_ref(&e))
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut r = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(r.headers().unwrap().len(), CSV_COLUMNS.len());
        let row = r.records().next().unwrap().unwrap();
        assert_eq!(&row[6], "a, \"b\"");
        assert_eq!(&row[9], "5.0");
        assert_eq!(&row[10], "a.rs;b.rs");
        assert_eq!(&row[12], "{\"k\":1}");

        let mut out = Vec::new();
        Format::Ndjson.write_header(&mut out).unwrap();
        Format::Ndjson.write_rows(&mut out, &[e]).unwrap();
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
        assert!(
            "tsv"
                .parse::<Format>()
                .unwrap_err()
                .contains("csv or ndjson")
        );
    }

    /// Issue 12: a stored `=HYPERLINK(...)` or `=cmd|...` reached an
    /// admin's spreadsheet as a live formula.
    #[test]
    fn csv_cells_that_a_spreadsheet_would_run_get_a_quote() {
        let row = |e: Value| {
            let mut out = Vec::new();
            Format::Csv.write_rows(&mut out, &[e]).unwrap();
            let mut r = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(&out[..]);
            let rec = r.records().next().unwrap().unwrap();
            rec.iter().map(str::to_string).collect::<Vec<_>>()
        };
        for (stored, shown) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("'=x", "''=x"),
            ("a=b", "a=b"),
            (" =x", " =x"),
            ("", ""),
        ] {
            let r = row(json!({"action_description": stored, "user_id": stored,
                "comments": stored, "request_id": stored, "source": stored}));
            for c in [3, 6, 7, 11, 14] {
                assert_eq!(r[c], shown, "column {} of {stored:?}", CSV_COLUMNS[c]);
                // One leading quote off gives the stored value back.
                let back = r[c].strip_prefix('\'').filter(|_| shown != stored);
                assert_eq!(back.unwrap_or(&r[c]), stored);
            }
        }
        let r = row(
            json!({"files_changed": ["=a.rs", "b.rs"], "metadata": {"k": "=1"},
            "duration_ms": 0.5}),
        );
        assert_eq!(r[10], "'=a.rs;b.rs");
        // Review of issue 12: only the first file was neutralised, and a
        // spreadsheet splitting on `;` ran the others.
        let files = row(json!({"files_changed": ["a.rs", "=1+1", "@x", "b-c.rs"]}));
        assert_eq!(files[10], "a.rs;'=1+1;'@x;b-c.rs");
        let mut out = Vec::new();
        Format::Csv
            .write_rows(
                &mut out,
                &[json!({"files_changed": ["a.rs", "=1+1", "-2"]})],
            )
            .unwrap();
        let mut semi = csv::ReaderBuilder::new()
            .has_headers(false)
            .delimiter(b';')
            .flexible(true)
            .from_reader(&out[..]);
        for rec in semi.records() {
            for cell in rec.unwrap().iter() {
                assert!(!cell.starts_with(['=', '+', '-', '@']), "{cell:?}");
            }
        }
        assert_eq!(r[12], "{\"k\":\"=1\"}");
        assert_eq!(r[9], "0.5");
        // A number stays a number, even a negative one (not stored by evlog).
        assert_eq!(row(json!({"duration_ms": -1.0}))[9], "-1.0");
    }
}
