//! Request bodies of `POST /events` → events: one JSON object, a JSON array,
//! or NDJSON (`Content-Type: application/x-ndjson`). Every event is parsed
//! and validated before anything is written; the rejection lists each bad
//! event by index (and line, for NDJSON) and field.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use serde_json::value::RawValue;
use warp::http::StatusCode;

use super::Limits;
use super::reject::{ApiError, EventReject};
use crate::event::{Event, ValidationError};

/// How the body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `application/json` (or no Content-Type): an object or an array of objects.
    Json,
    /// `application/x-ndjson`: one object per line.
    Ndjson,
}

impl Framing {
    /// The framing of a Content-Type; anything else is a 415.
    pub(crate) fn of(content_type: Option<&str>) -> Result<Framing, ApiError> {
        let Some(ct) = content_type else {
            return Ok(Framing::Json);
        };
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/json" => Ok(Framing::Json),
            "application/x-ndjson" | "application/jsonl" => Ok(Framing::Ndjson),
            _ => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "Content-Type `{ct}`: want application/json (an object or an array) or application/x-ndjson"
                ),
            )),
        }
    }
}

/// The events of a request body.
#[derive(Debug)]
pub(crate) struct Batch {
    /// A single JSON object (answered with `{"id":..}`).
    pub single: bool,
    /// The events, in order.
    pub events: Vec<Event>,
}

/// Reads the body, refusing more than `limit` bytes.
pub(crate) async fn read_body<S, B>(body: S, limit: usize) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("the request body could not be read: {e}"),
            )
        })?;
        if buf.len() + chunk.remaining() > limit {
            return Err(body_too_large(limit));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            buf.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(buf.freeze())
}

pub(crate) fn body_too_large(limit: usize) -> ApiError {
    ApiError::too_large(
        "body_too_large",
        format!("the request body is over {limit} bytes (limit max_body_bytes)"),
    )
}

/// Parses and validates every event of `body`.
pub(crate) fn parse(framing: Framing, body: &[u8], limits: &Limits) -> Result<Batch, ApiError> {
    // JSON is UTF-8; say where it stops being so rather than leave it to a
    // JSON error deep inside one string.
    if let Err(e) = std::str::from_utf8(body) {
        let at = e.valid_up_to();
        let line = 1 + body[..at].iter().filter(|b| **b == b'\n').count();
        return Err(invalid_body(format!(
            "the body is not valid UTF-8: invalid byte 0x{:02x} at byte offset {at} (line {line})",
            body[at]
        )));
    }
    match framing {
        Framing::Json => parse_json(body, limits),
        Framing::Ndjson => parse_ndjson(body, limits),
    }
}

fn invalid_body(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message)
}

fn parse_json(body: &[u8], limits: &Limits) -> Result<Batch, ApiError> {
    let trimmed = body.trim_ascii();
    match trimmed.first() {
        Some(b'{') => {
            check_event_size(trimmed.len(), "the event", limits)?;
            let event = one(trimmed, limits)
                .map_err(|e| ApiError::invalid_events(vec![EventReject::new(0, None, e)]))?;
            Ok(Batch {
                single: true,
                events: vec![event],
            })
        }
        Some(b'[') => {
            // serde_json refuses nesting past 128 levels before it could
            // exhaust the stack; each event's own depth is checked below.
            let items: Vec<&RawValue> = serde_json::from_slice(trimmed)
                .map_err(|e| invalid_body(format!("invalid JSON: {e}")))?;
            if items.is_empty() {
                return Err(invalid_body(
                    "an empty array: want at least one event, nothing written",
                ));
            }
            check_count(items.len(), limits)?;
            let mut events = Vec::with_capacity(items.len());
            let mut rejects = Vec::new();
            for (i, raw) in items.iter().enumerate() {
                check_event_size(raw.get().len(), &format!("events[{i}]"), limits)?;
                match one(raw.get().as_bytes(), limits) {
                    Ok(e) => events.push(e),
                    Err(e) => rejects.push(EventReject::new(i, None, e)),
                }
            }
            finish(false, events, rejects)
        }
        None => Err(invalid_body(
            "empty body: want a JSON object, an array of objects, or NDJSON",
        )),
        Some(_) => Err(invalid_body(
            "want a JSON object or an array of objects (or NDJSON with Content-Type application/x-ndjson)",
        )),
    }
}

fn parse_ndjson(body: &[u8], limits: &Limits) -> Result<Batch, ApiError> {
    let lines: Vec<(usize, &[u8])> = body
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_ascii()))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return Err(invalid_body("empty body: want one JSON object per line"));
    }
    check_count(lines.len(), limits)?;
    let mut events = Vec::with_capacity(lines.len());
    let mut rejects = Vec::new();
    for (i, (no, line)) in lines.into_iter().enumerate() {
        check_event_size(line.len(), &format!("line {no}"), limits)?;
        match one(line, limits) {
            Ok(e) => events.push(e),
            Err(e) => rejects.push(EventReject::new(i, Some(no), e)),
        }
    }
    finish(false, events, rejects)
}

fn finish(single: bool, events: Vec<Event>, rejects: Vec<EventReject>) -> Result<Batch, ApiError> {
    if rejects.is_empty() {
        Ok(Batch { single, events })
    } else {
        Err(ApiError::invalid_events(rejects))
    }
}

/// Parses and validates one event.
fn one(bytes: &[u8], limits: &Limits) -> Result<Event, ValidationError> {
    let e = Event::from_json(bytes)?;
    // Only metadata can nest (every other field is a scalar or a list of
    // strings); the event object is the first level.
    if let Some(m) = &e.metadata
        && 1 + depth(m) > limits.max_json_depth
    {
        return Err(ValidationError::new(
            "metadata",
            format!(
                "JSON nested deeper than {} levels (limit max_json_depth)",
                limits.max_json_depth
            ),
        ));
    }
    e.validate()?;
    Ok(e)
}

/// Levels of objects and arrays in `v` (a scalar is 0). Recursion is bounded
/// by serde_json's own nesting limit (128), enforced while parsing.
fn depth(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn check_count(n: usize, limits: &Limits) -> Result<(), ApiError> {
    if n > limits.max_batch_events {
        return Err(ApiError::too_large(
            "batch_too_large",
            format!(
                "{n} events in one request; at most {} (limit max_batch_events)",
                limits.max_batch_events
            ),
        ));
    }
    Ok(())
}

fn check_event_size(len: usize, what: &str, limits: &Limits) -> Result<(), ApiError> {
    if len > limits.max_event_bytes {
        return Err(ApiError::too_large(
            "event_too_large",
            format!(
                "{what} is {len} bytes; at most {} (limit max_event_bytes)",
                limits.max_event_bytes
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str =
        r#"{"event_type":"commit","user_id":"u","action_description":"d","status":"success"}"#;

    fn limits() -> Limits {
        Limits {
            max_batch_events: 3,
            max_event_bytes: 200,
            max_json_depth: 4,
            ..Limits::default()
        }
    }

    #[test]
    fn objects_arrays_and_ndjson() {
        let b = parse(Framing::Json, OK.as_bytes(), &limits()).unwrap();
        assert!(b.single && b.events.len() == 1);
        let arr = format!("[{OK},{OK}]");
        let b = parse(Framing::Json, arr.as_bytes(), &limits()).unwrap();
        assert!(!b.single && b.events.len() == 2);
        let nd = format!("{OK}\n\n{OK}\r\n");
        assert_eq!(
            parse(Framing::Ndjson, nd.as_bytes(), &limits())
                .unwrap()
                .events
                .len(),
            2
        );
    }

    #[test]
    fn a_rejection_names_index_line_and_field_of_every_bad_event() {
        let bad_status = OK.replace("success", "done");
        let no_user = OK.replace(r#""user_id":"u","#, "");
        let arr = format!("[{OK},{bad_status},{no_user}]");
        let e = parse(Framing::Json, arr.as_bytes(), &limits()).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, "invalid_event")
        );
        let got: Vec<(usize, &str)> = e
            .events
            .iter()
            .map(|r| (r.index, r.field.as_str()))
            .collect();
        assert_eq!(got, [(1, "status"), (2, "event")]);
        assert!(e.events[1].message.contains("user_id"), "{:?}", e.events[1]);
        let nd = format!("{OK}\n\n{bad_status}\n");
        let e = parse(Framing::Ndjson, nd.as_bytes(), &limits()).unwrap_err();
        assert_eq!((e.events[0].index, e.events[0].line), (1, Some(3)));
        assert!(e.message.contains("line 3: status"), "{}", e.message);
    }

    #[test]
    fn limits_and_malformed_bodies() {
        let four = format!("[{OK},{OK},{OK},{OK}]");
        assert_eq!(
            parse(Framing::Json, four.as_bytes(), &limits())
                .unwrap_err()
                .code,
            "batch_too_large"
        );
        let big = OK.replace(r#""d""#, &format!("\"{}\"", "x".repeat(300)));
        assert_eq!(
            parse(Framing::Json, big.as_bytes(), &limits())
                .unwrap_err()
                .code,
            "event_too_large"
        );
        let deep = OK.replace(
            r#""status":"success""#,
            r#""status":"success","metadata":{"a":{"b":{"c":{"d":1}}}}"#,
        );
        let e = parse(Framing::Json, deep.as_bytes(), &limits()).unwrap_err();
        assert_eq!(e.code, "invalid_event");
        assert_eq!(e.events[0].field, "metadata");
        assert!(e.message.contains("max_json_depth"), "{}", e.message);
        // Exactly at the limit (event, metadata, a, b): accepted.
        let at_limit = OK.replace(
            r#""status":"success""#,
            r#""status":"success","metadata":{"a":{"b":[1]}}"#,
        );
        assert!(parse(Framing::Json, at_limit.as_bytes(), &limits()).is_ok());
        // Past serde_json's own nesting limit (128): refused, not a stack
        // overflow, whether alone, in an array or on an NDJSON line.
        let roomy = Limits {
            max_event_bytes: 1 << 20,
            ..limits()
        };
        let abyss = OK.replace(
            r#""status":"success""#,
            &format!(
                r#""status":"success","metadata":{}1{}"#,
                "[".repeat(5000),
                "]".repeat(5000)
            ),
        );
        for (framing, body) in [
            (Framing::Json, abyss.clone()),
            (Framing::Json, format!("[{abyss}]")),
            (Framing::Ndjson, abyss.clone()),
        ] {
            let e = parse(framing, body.as_bytes(), &roomy).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (StatusCode::BAD_REQUEST, "invalid_event")
            );
        }
        // Brackets inside strings do not count.
        let quoted = OK.replace(r#""d""#, r#""[[[[[{{{{\"""#);
        assert!(parse(Framing::Json, quoted.as_bytes(), &limits()).is_ok());
        for body in ["", "42", "[1,", "{\"a\":"] {
            let e = parse(Framing::Json, body.as_bytes(), &limits()).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{body}");
        }
        assert_eq!(
            Framing::of(Some("text/plain")).unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            Framing::of(Some("application/x-ndjson; charset=utf-8")).unwrap(),
            Framing::Ndjson
        );
    }
}
