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
];

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CSV with a header row ([`CSV_COLUMNS`]; files joined by `;`, metadata as JSON).
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

fn cell(v: &Value, column: &str) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) if column == "files_changed" => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(";"),
        other => other.to_string(),
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
}
