//! Request bodies of `POST /events` → events: one JSON object, a JSON array,
//! or NDJSON (`Content-Type: application/x-ndjson`).
//!
//! A body is read only as far as its append's share of the buffered-body
//! budget covers it (`quota`), and parsed one event at a
//! time: each event is handed to the caller as soon as it is parsed and
//! validated (the server checks the key's role on it, then turns it into its
//! stored line and drops it), so parsing holds the body, the lines made so
//! far and one event — never every event of the body at once. Every event
//! is parsed and validated before anything is written; the rejection lists
//! each bad event by index (and line, for NDJSON) and field. A caller's
//! refusal of the whole request (a role check) ends parsing at that event.

use std::fmt;

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use serde::Deserializer as _;
use serde::de::{SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use warp::http::StatusCode;

use super::Limits;
use super::quota::Ticket;
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

/// Reads the body, refusing more than `limit` bytes (413) and what the
/// append's `ticket` cannot cover (503, see `quota`). `declared` (the
/// `Content-Length`, at most `limit`) is covered before the first byte is
/// read.
pub(crate) async fn read_body<S, B>(
    body: S,
    limit: usize,
    declared: Option<usize>,
    ticket: &mut Ticket,
) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut buf = Vec::new();
    if let Some(n) = declared {
        ticket.cover(n)?;
        buf.reserve_exact(n);
    }
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("the request body could not be read: {e}"),
            )
        })?;
        let needed = buf.len() + chunk.remaining();
        if needed > limit {
            return Err(body_too_large(limit));
        }
        if needed > buf.capacity() {
            // Grow by doubling (at least 64 KiB), within the limit, or to
            // just what is needed when the budget cannot cover that; the
            // budget covers the new buffer before it is allocated.
            let mut cap = needed.max(buf.capacity() * 2).max(64 << 10).min(limit);
            if ticket.cover(cap).is_err() {
                cap = needed;
                ticket.cover(cap)?;
            }
            buf.reserve_exact(cap - buf.len());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            buf.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(Bytes::from(buf))
}

pub(crate) fn body_too_large(limit: usize) -> ApiError {
    ApiError::too_large(
        "body_too_large",
        format!("the request body is over {limit} bytes (limit max_body_bytes)"),
    )
}

/// Where an event is in a body: its index, and its line for NDJSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct At {
    /// Position among the body's events (0-based).
    pub index: usize,
    /// Line of an NDJSON body (1-based).
    pub line: Option<usize>,
}

impl At {
    /// A bad event at this place.
    pub(crate) fn reject(self, field: &str, message: impl Into<String>) -> EventReject {
        EventReject {
            index: self.index,
            line: self.line,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for At {
    /// `events[3]`, or `line 4` for NDJSON: how messages name an event.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}"),
            None => write!(f, "events[{}]", self.index),
        }
    }
}

/// A caller's refusal of one parsed event.
pub(crate) enum Refusal {
    /// This event is bad: parsing goes on, and the request is answered 400
    /// with every bad event listed.
    Event(ValidationError),
    /// The whole request is refused with this answer, now: the rest of the
    /// body is not parsed.
    Request(ApiError),
}

/// What a body held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// A single JSON object (answered with `{"id":..}`).
    pub single: bool,
    /// Events in the body.
    pub count: usize,
}

/// Parses and validates the events of `body` one at a time, handing each
/// valid one to `each(at, event, doomed)` in order; `doomed` says an earlier
/// event was refused, so nothing of the body will be written (check the
/// event, keep nothing of it). Any bad event refuses the whole body (400,
/// each listed); `each` may refuse an event (listed too) or the request.
pub(crate) fn parse<F>(
    framing: Framing,
    body: &[u8],
    limits: &Limits,
    each: F,
) -> Result<Parsed, ApiError>
where
    F: FnMut(At, Event, bool) -> Result<(), Refusal>,
{
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
    let mut walk = Walk {
        limits,
        each,
        rejects: Vec::new(),
        seen: 0,
    };
    let single = match framing {
        Framing::Json => parse_json(body, &mut walk)?,
        Framing::Ndjson => {
            parse_ndjson(body, &mut walk)?;
            false
        }
    };
    if walk.rejects.is_empty() {
        Ok(Parsed {
            single,
            count: walk.seen,
        })
    } else {
        Err(ApiError::invalid_events(walk.rejects))
    }
}

fn invalid_body(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message)
}

/// The events of one body, as they come.
struct Walk<'l, F> {
    limits: &'l Limits,
    each: F,
    rejects: Vec<EventReject>,
    /// Events seen so far.
    seen: usize,
}

impl<F> Walk<'_, F>
where
    F: FnMut(At, Event, bool) -> Result<(), Refusal>,
{
    /// One event of the body, `what` naming it in size errors.
    fn event(&mut self, at: At, bytes: &[u8], what: &dyn fmt::Display) -> Result<(), ApiError> {
        check_count(at.index + 1, self.limits)?;
        check_event_size(bytes.len(), what, self.limits)?;
        self.seen += 1;
        let refusal = match one(bytes, self.limits) {
            Ok(event) => match (self.each)(at, event, !self.rejects.is_empty()) {
                Ok(()) => return Ok(()),
                Err(Refusal::Request(e)) => return Err(e),
                Err(Refusal::Event(e)) => e,
            },
            Err(e) => e,
        };
        self.rejects
            .push(EventReject::new(at.index, at.line, refusal));
        Ok(())
    }
}

fn parse_json<F>(body: &[u8], walk: &mut Walk<'_, F>) -> Result<bool, ApiError>
where
    F: FnMut(At, Event, bool) -> Result<(), Refusal>,
{
    let trimmed = body.trim_ascii();
    match trimmed.first() {
        Some(b'{') => {
            walk.event(
                At {
                    index: 0,
                    line: None,
                },
                trimmed,
                &"the event",
            )?;
            Ok(true)
        }
        Some(b'[') => {
            // Element by element: nothing but the current element is held.
            // serde_json refuses nesting past 128 levels before it could
            // exhaust the stack; each event's own depth is checked in `one`.
            let mut de = serde_json::Deserializer::from_slice(trimmed);
            let mut stop = None;
            let parsed = (&mut de)
                .deserialize_seq(Items {
                    walk,
                    stop: &mut stop,
                })
                .and_then(|()| de.end());
            if let Some(e) = stop {
                return Err(e);
            }
            parsed.map_err(|e| invalid_body(format!("invalid JSON: {e}")))?;
            if walk.seen == 0 {
                return Err(invalid_body(
                    "an empty array: want at least one event, nothing written",
                ));
            }
            Ok(false)
        }
        None => Err(invalid_body(
            "empty body: want a JSON object, an array of objects, or NDJSON",
        )),
        Some(_) => Err(invalid_body(
            "want a JSON object or an array of objects (or NDJSON with Content-Type application/x-ndjson)",
        )),
    }
}

/// The elements of a JSON array, each handed to the walk as it is read.
struct Items<'w, 'l, F> {
    walk: &'w mut Walk<'l, F>,
    /// Why the walk stopped the array, if it did.
    stop: &'w mut Option<ApiError>,
}

impl<'de, F> Visitor<'de> for Items<'_, '_, F>
where
    F: FnMut(At, Event, bool) -> Result<(), Refusal>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of event objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            let at = At { index, line: None };
            if let Err(e) = self.walk.event(at, raw.get().as_bytes(), &at) {
                *self.stop = Some(e);
                return Err(serde::de::Error::custom("refused"));
            }
            index += 1;
        }
        Ok(())
    }
}

fn parse_ndjson<F>(body: &[u8], walk: &mut Walk<'_, F>) -> Result<(), ApiError>
where
    F: FnMut(At, Event, bool) -> Result<(), Refusal>,
{
    let lines = body
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_ascii()))
        .filter(|(_, l)| !l.is_empty());
    for (index, (no, line)) in lines.enumerate() {
        let at = At {
            index,
            line: Some(no),
        };
        walk.event(at, line, &at)?;
    }
    if walk.seen == 0 {
        return Err(invalid_body("empty body: want one JSON object per line"));
    }
    Ok(())
}

/// Parses and validates one event.
fn one(bytes: &[u8], limits: &Limits) -> Result<Event, ValidationError> {
    let e = Event::from_json(bytes)?;
    if e.appended_by.is_some() {
        return Err(ValidationError::new(
            "appended_by",
            "is set by the server (the id of the key that appends); a request cannot set it",
        ));
    }
    if e.origin.is_some() {
        return Err(ValidationError::new(
            "origin",
            "is set by `evlog follow` on the copies of replicated events; a request cannot set it",
        ));
    }
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

/// `n` events seen so far: more than `max_batch_events` is a 413 (said as
/// soon as the limit is crossed, without reading the rest).
fn check_count(n: usize, limits: &Limits) -> Result<(), ApiError> {
    if n > limits.max_batch_events {
        return Err(ApiError::too_large(
            "batch_too_large",
            format!(
                "more than {} events in one request (limit max_batch_events)",
                limits.max_batch_events
            ),
        ));
    }
    Ok(())
}

fn check_event_size(len: usize, what: &dyn fmt::Display, limits: &Limits) -> Result<(), ApiError> {
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

    /// The events of a body, as the parser hands them over.
    fn collect(framing: Framing, body: &[u8], limits: &Limits) -> Result<Batch, ApiError> {
        let mut events = Vec::new();
        let parsed = parse(framing, body, limits, |_, e, _| {
            events.push(e);
            Ok(())
        })?;
        assert_eq!(parsed.count, events.len());
        Ok(Batch {
            single: parsed.single,
            events,
        })
    }

    #[derive(Debug)]
    struct Batch {
        single: bool,
        events: Vec<Event>,
    }

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
        let b = collect(Framing::Json, OK.as_bytes(), &limits()).unwrap();
        assert!(b.single && b.events.len() == 1);
        let arr = format!("[{OK},{OK}]");
        let b = collect(Framing::Json, arr.as_bytes(), &limits()).unwrap();
        assert!(!b.single && b.events.len() == 2);
        let nd = format!("{OK}\n\n{OK}\r\n");
        assert_eq!(
            collect(Framing::Ndjson, nd.as_bytes(), &limits())
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
        let e = collect(Framing::Json, arr.as_bytes(), &limits()).unwrap_err();
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
        let e = collect(Framing::Ndjson, nd.as_bytes(), &limits()).unwrap_err();
        assert_eq!((e.events[0].index, e.events[0].line), (1, Some(3)));
        assert!(e.message.contains("line 3: status"), "{}", e.message);
    }

    #[test]
    fn limits_and_malformed_bodies() {
        let four = format!("[{OK},{OK},{OK},{OK}]");
        assert_eq!(
            collect(Framing::Json, four.as_bytes(), &limits())
                .unwrap_err()
                .code,
            "batch_too_large"
        );
        let big = OK.replace(r#""d""#, &format!("\"{}\"", "x".repeat(300)));
        assert_eq!(
            collect(Framing::Json, big.as_bytes(), &limits())
                .unwrap_err()
                .code,
            "event_too_large"
        );
        let deep = OK.replace(
            r#""status":"success""#,
            r#""status":"success","metadata":{"a":{"b":{"c":{"d":1}}}}"#,
        );
        let e = collect(Framing::Json, deep.as_bytes(), &limits()).unwrap_err();
        assert_eq!(e.code, "invalid_event");
        assert_eq!(e.events[0].field, "metadata");
        assert!(e.message.contains("max_json_depth"), "{}", e.message);
        // Exactly at the limit (event, metadata, a, b): accepted.
        let at_limit = OK.replace(
            r#""status":"success""#,
            r#""status":"success","metadata":{"a":{"b":[1]}}"#,
        );
        assert!(collect(Framing::Json, at_limit.as_bytes(), &limits()).is_ok());
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
            let e = collect(framing, body.as_bytes(), &roomy).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (StatusCode::BAD_REQUEST, "invalid_event")
            );
        }
        // Brackets inside strings do not count.
        let quoted = OK.replace(r#""d""#, r#""[[[[[{{{{\"""#);
        assert!(collect(Framing::Json, quoted.as_bytes(), &limits()).is_ok());
        for body in ["", "42", "[1,", "{\"a\":"] {
            let e = collect(Framing::Json, body.as_bytes(), &limits()).unwrap_err();
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

    /// A body stream of `chunks` (as warp hands it over).
    fn chunks(chunks: Vec<usize>) -> impl Stream<Item = Result<Bytes, warp::Error>> {
        futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|n| Ok::<_, warp::Error>(Bytes::from(vec![b' '; n]))),
        )
    }

    /// A body that must not be read.
    fn unread() -> impl Stream<Item = Result<Bytes, warp::Error>> {
        futures_util::stream::poll_fn(|_| -> std::task::Poll<Option<Result<Bytes, warp::Error>>> {
            panic!("the body was read although the budget could not cover it")
        })
    }

    #[tokio::test]
    async fn the_body_budget_is_taken_before_reading_and_given_back_when_answered() {
        let quota = super::super::quota::Quota::new(&Limits {
            max_body_bytes: 10 << 10,
            max_buffered_body_bytes: 100 << 10,
            max_buffered_body_bytes_per_key: 100 << 10,
            ..Limits::default()
        });
        assert_eq!(quota.available_kib(), 100);
        // A declared length is covered whole before the first byte.
        let mut first = quota.admit("k").unwrap();
        let body = read_body(
            chunks(vec![30 << 10, 30 << 10]),
            1 << 20,
            Some(60 << 10),
            &mut first,
        )
        .await
        .ok()
        .unwrap();
        assert_eq!(body.len(), 60 << 10);
        assert_eq!(quota.available_kib(), 40);
        // One that does not fit is refused unread: 503 with Retry-After.
        let mut t = quota.admit("k").unwrap();
        let e = read_body(unread(), 1 << 20, Some(41 << 10), &mut t)
            .await
            .err()
            .unwrap();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::SERVICE_UNAVAILABLE, "overloaded")
        );
        assert_eq!(e.retry_after, Some(1));
        assert!(
            e.message.contains("max_buffered_body_bytes"),
            "{}",
            e.message
        );
        // A chunked body covers its buffer as it grows (64 KiB first):
        // refused at the chunk that would pass the budget.
        drop(t);
        let mut t = quota.admit("k").unwrap();
        let e = read_body(chunks(vec![1 << 10; 80]), 1 << 20, None, &mut t)
            .await
            .err()
            .unwrap();
        assert_eq!(e.code, "overloaded");
        drop(t);
        assert_eq!(
            quota.available_kib(),
            40,
            "a refused request gives back all"
        );
        let mut t = quota.admit("k").unwrap();
        drop(first);
        assert_eq!(quota.available_kib(), 100);
        let second = read_body(chunks(vec![1 << 10; 80]), 1 << 20, None, &mut t)
            .await
            .ok()
            .unwrap();
        assert_eq!(second.len(), 80 << 10);
        assert_eq!(
            quota.available_kib(),
            20,
            "64 KiB, then (no room to double) what each chunk needs"
        );
        drop(t);
        assert_eq!(quota.available_kib(), 100);
        // Over max_body_bytes: 413 as before.
        let mut t = quota.admit("k").unwrap();
        let e = read_body(chunks(vec![8 << 10; 2]), 10 << 10, None, &mut t)
            .await
            .err()
            .unwrap();
        assert_eq!(e.code, "body_too_large");
    }

    #[test]
    fn a_refusal_ends_the_parse_and_the_count_is_refused_when_crossed() {
        let limits = limits();
        let bad_status = OK.replace("success", "done");
        // The caller refuses events[1]: events[2] (bad) and [3] (over the
        // batch limit) are never looked at.
        let body = format!("[{OK},{OK},{bad_status},{OK}]");
        let mut seen = Vec::new();
        let e = parse(Framing::Json, body.as_bytes(), &limits, |at, _, _| {
            seen.push(at.index);
            match at.index {
                1 => Err(Refusal::Request(ApiError::forbidden("no"))),
                _ => Ok(()),
            }
        })
        .unwrap_err();
        assert_eq!((e.code, seen), ("forbidden", vec![0, 1]));
        // An event refused by the caller is listed with the invalid ones;
        // events after a refused one are still checked but doomed.
        let nd = format!("{OK}\n{bad_status}\n{OK}\n");
        let mut doomed = Vec::new();
        let e = parse(Framing::Ndjson, nd.as_bytes(), &limits, |at, _, d| {
            doomed.push(d);
            match at.index {
                0 => Err(Refusal::Event(ValidationError::new("user_id", "not yours"))),
                _ => Ok(()),
            }
        })
        .unwrap_err();
        assert_eq!(doomed, [false, true]);
        let got: Vec<(usize, Option<usize>, &str)> = e
            .events
            .iter()
            .map(|r| (r.index, r.line, r.field.as_str()))
            .collect();
        assert_eq!(got, [(0, Some(1), "user_id"), (1, Some(2), "status")]);
        // The fourth event of a batch of at most three: 413 before it is parsed.
        let mut n = 0;
        let four = format!("{OK}\n{OK}\n{OK}\n{{broken\n");
        let e = parse(Framing::Ndjson, four.as_bytes(), &limits, |_, _, _| {
            n += 1;
            Ok(())
        })
        .unwrap_err();
        assert_eq!((e.code, n), ("batch_too_large", 3));
        assert!(e.message.contains("more than 3 events"), "{}", e.message);
    }

    #[test]
    fn a_body_cannot_say_who_appended_it() {
        let forged = OK.replace(r#""status""#, r#""appended_by":"evlog","status""#);
        let e = collect(Framing::Json, forged.as_bytes(), &limits()).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, "invalid_event")
        );
        assert_eq!(e.events[0].field, "appended_by");
        assert!(e.message.contains("appended_by"), "{}", e.message);
    }
}
