//! Regression tests for what the fuzz targets (`fuzz/`, RELIABILITY.md)
//! found, each named after what broke.

use evlog::Event;
use evlog::event::{MAX_TIMESTAMP, MIN_TIMESTAMP};
use evlog::index::Query;
use evlog::index::schema::Fields;
use evlog::server::fuzzing::{self, Endpoint};
use evlog::store::chain::{self, ChainHead};
use evlog::store::reader::parse_record;

const OK: &str =
    r#"{"event_type":"commit","user_id":"u","action_description":"d","status":"success""#;

fn event_with(extra: &str) -> Vec<u8> {
    format!("{OK}{extra}}}").into_bytes()
}

/// A timestamp that converts to year 10000 in UTC was accepted, then stored
/// as `+10000-…`, which no reader parses back; year 9999 or 0001 overflowed
/// the index's nanosecond time (a panic in debug builds, a wrong time in
/// release). Timestamps are now limited to the years 1678 to 2261.
#[test]
fn timestamps_outside_the_years_1678_to_2261_are_refused() {
    for ts in [
        "9999-12-31T23:00:00-05:00",
        "9999-01-01T00:00:00Z",
        "2262-01-01T00:00:00Z",
        "1677-12-31T23:59:59.999999Z",
        "0001-01-01T00:00:00Z",
    ] {
        let e = Event::from_json(&event_with(&format!(r#","timestamp":"{ts}""#))).unwrap();
        let err = e.validate().unwrap_err();
        assert_eq!(err.field, "timestamp", "{ts}");
        assert!(err.message.contains("1678 to 2261"), "{ts}: {err}");
        // The HTTP body parser says the same.
        let (status, msg) =
            fuzzing::ingest_body(&event_with(&format!(r#","timestamp":"{ts}""#)), false)
                .unwrap_err();
        assert_eq!(status, 400);
        assert!(msg.contains("timestamp"), "{msg}");
    }
    for ts in [
        "1678-01-01T00:00:00Z",
        "2261-12-31T23:59:59.999999Z",
        "2262-01-01T04:00:00+05:00",
    ] {
        let e = Event::from_json(&event_with(&format!(r#","timestamp":"{ts}""#))).unwrap();
        e.validate().unwrap_or_else(|err| panic!("{ts}: {err}"));
        let back = Event::from_json(&serde_json::to_vec(&e).unwrap()).unwrap();
        assert_eq!(back, e, "{ts}");
    }
    assert_eq!(
        evlog::event::format_timestamp(&MIN_TIMESTAMP),
        "1678-01-01T00:00:00.000000Z"
    );
    assert_eq!(
        evlog::event::format_timestamp(&MAX_TIMESTAMP),
        "2261-12-31T23:59:59.999999Z"
    );
}

/// A day file written elsewhere may still hold such a time: indexing its
/// line clamps the time instead of overflowing.
#[test]
fn a_stored_line_with_an_out_of_range_timestamp_is_indexed_without_overflow() {
    let fields = Fields::new();
    for ts in ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"] {
        let body = format!(
            r#"{{"id":"01a2087b-cc35-7143-a985-a368c640bab9","timestamp":"{ts}","event_type":"commit","user_id":"u","action_description":"d","status":"success"}}"#
        );
        let mut line = Vec::new();
        chain::seal(&ChainHead::GENESIS, body.as_bytes(), &mut line);
        line.pop();
        let rec = parse_record(std::path::Path::new("x"), 1, &line).unwrap();
        let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        fields.document(&rec, day, &line);
    }
    let clamped = evlog::index::schema::to_tantivy("9999-01-01T00:00:00Z".parse().unwrap());
    assert_eq!(
        clamped.into_timestamp_micros(),
        MAX_TIMESTAMP.timestamp_micros()
    );
}

/// serde_json's default float parser could be one unit in the last place
/// off, so an accepted `duration_ms` or metadata number changed on its way
/// through a day file. The `float_roundtrip` feature parses exactly.
#[test]
fn floats_round_trip_exactly() {
    for x in [
        51.248_178_375_505_404_f64,
        -93.311_370_376_880_33,
        2.003_039_774_426_776_2e-253,
        7.101_215_824_554_616e260,
    ] {
        let d = x.abs();
        let e = Event::from_json(&event_with(&format!(
            r#","duration_ms":{d},"metadata":{{"x":{x}}}"#
        )))
        .unwrap();
        assert_eq!(e.duration_ms, Some(d));
        assert_eq!(e.metadata.as_ref().unwrap()["x"].as_f64(), Some(x));
        let back = Event::from_json(&serde_json::to_vec(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }
}

/// `POST /events` with `[]` answered 201 with no ids: a request that
/// appends nothing is a mistake.
#[test]
fn an_empty_array_is_400_not_201() {
    for body in ["[]", " [ ] ", "[\n]"] {
        let (status, msg) = fuzzing::ingest_body(body.as_bytes(), false).unwrap_err();
        assert_eq!(status, 400, "{body}");
        assert!(msg.contains("empty array"), "{msg}");
    }
}

/// `?=x` was refused as ": unknown parameter; …", naming nothing.
#[test]
fn a_query_parameter_without_a_name_says_so() {
    for (raw, want) in [
        ("=x", "query string: `=x` has no parameter name"),
        (
            "date=2026-01-01&=",
            "query string: `=` has no parameter name",
        ),
    ] {
        let (status, msg) = fuzzing::query_string(raw, Endpoint::Query).unwrap_err();
        assert_eq!(status, 400);
        assert!(msg.starts_with(want), "{raw}: {msg}");
    }
    // Empty pieces (`&&`) are still skipped.
    fuzzing::query_string("&&limit=5&", Endpoint::Query).unwrap();
}

/// Bytes that are not UTF-8 were reported as a JSON error deep inside a
/// string ("invalid unicode code point at line 1 column N") or, in a query
/// string, silently replaced by U+FFFD. Both now say where, as a byte offset.
#[test]
fn invalid_utf8_is_reported_with_its_byte_offset() {
    let mut body = b"{\"a\":\"\n".to_vec();
    body.extend_from_slice(b"x\xc3\x28\"}");
    for ndjson in [false, true] {
        let (status, msg) = fuzzing::ingest_body(&body, ndjson).unwrap_err();
        assert_eq!(status, 400);
        assert!(
            msg.contains("not valid UTF-8")
                && msg.contains("byte offset 8")
                && msg.contains("line 2"),
            "{msg}"
        );
    }
    let (status, msg) = fuzzing::query_string("q=ok%20then%FF", Endpoint::Stats).unwrap_err();
    assert_eq!(status, 400);
    assert!(msg.starts_with("q: ") && msg.contains("offset 9"), "{msg}");
    let (_, msg) = fuzzing::query_string("%E2%82=1", Endpoint::Stats).unwrap_err();
    assert!(
        msg.starts_with("query string: ") && msg.contains("offset 0"),
        "{msg}"
    );
    // Valid escapes still decode, `+` is a space, a stray `%` stays.
    let (q, _) = fuzzing::query_string("q=caf%C3%A9+100%&user_id=a%2Bb", Endpoint::Stats).unwrap();
    assert_eq!(q.q.as_deref(), Some("café 100%"));
    assert_eq!(q.user_id.as_deref(), Some("a+b"));
}

/// `q=../` (or any `q` of punctuation alone) made no search term and
/// matched every event; it is now a 400 naming `q`.
#[test]
fn a_q_of_punctuation_alone_is_refused_rather_than_matching_everything() {
    for raw in ["q=..%2F", "q=%00", "q=%22%22", "q=-+-"] {
        let (status, msg) = fuzzing::query_string(raw, Endpoint::Query).unwrap_err();
        assert_eq!(status, 400, "{raw}");
        assert!(
            msg.starts_with("q: ") && msg.contains("no word"),
            "{raw}: {msg}"
        );
    }
    // Blank is no filter at all; words among punctuation are searched.
    assert!(
        fuzzing::query_string("q=+", Endpoint::Query)
            .unwrap()
            .0
            .q
            .is_none()
    );
    let q = Query {
        q: Some("../etc/passwd".into()),
        ..Query::default()
    };
    q.validate().unwrap();
}

/// Found by `query_string`: an unknown parameter named `: ` (from `:+`) was
/// refused as ": : unknown parameter", whose parameter reads as nothing. A
/// name that is not a plain word is now quoted.
#[test]
fn an_unknown_parameter_with_an_odd_name_is_quoted() {
    for (raw, want) in [
        (":+=1", "query string: parameter `: `: unknown parameter"),
        ("%0A=1", "query string: parameter `\\n`: unknown parameter"),
        (
            "a%3A+b=1",
            "query string: parameter `a: b`: unknown parameter",
        ),
    ] {
        let (status, msg) = fuzzing::query_string(raw, Endpoint::Stats).unwrap_err();
        assert_eq!(status, 400);
        assert!(msg.starts_with(want), "{raw}: {msg}");
        assert!(msg.contains("this endpoint takes date"), "{msg}");
    }
    // The same for a value that is not UTF-8 under such a name.
    let (_, msg) = fuzzing::query_string(":+=%FF", Endpoint::Stats).unwrap_err();
    assert!(
        msg.starts_with("query string: parameter `: `: the value is not UTF-8"),
        "{msg}"
    );
    let (_, msg) = fuzzing::query_string("colour=red", Endpoint::Stats).unwrap_err();
    assert!(msg.starts_with("colour: unknown parameter; "), "{msg}");
}
