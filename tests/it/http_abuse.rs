//! Hostile HTTP against a real `evlog serve` on 127.0.0.1: oversized
//! bodies, deep nesting, invalid UTF-8, huge heads, slow clients, thousands
//! of idle connections and traversal strings in every parameter. Each time
//! the server stays up, says what was wrong, and a normal client right after
//! gets a correct answer.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::serve::{Serve, caught_up, client, deploy};
use crate::util::{Store, open_files_for};

/// A normal client gets a correct answer: an append is acknowledged and
/// `/health` answers.
#[track_caller]
fn still_serves(s: &Serve, after: &str) {
    let http = client();
    let r = http
        .post(s.url("/events"))
        .header("X-API-Key", &s.admin)
        .json(&deploy("ops", &format!("after {after}")))
        .send()
        .unwrap_or_else(|e| panic!("after {after}: {e}"));
    assert_eq!(r.status(), 201, "after {after}");
    let id = r.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 36, "after {after}");
    let h = http.get(s.url("/health")).send().unwrap();
    assert_eq!(h.status(), 200, "after {after}");
}

/// Status code and JSON body of a raw reply.
fn parse_reply(reply: &str) -> (u16, Value) {
    let status = reply
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP reply: {reply:?}"));
    let body = reply.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn oversized_bodies_are_413_naming_the_limit() {
    let store = Store::new();
    let s = Serve::with_limits(&store, "max_body_bytes = 100000");
    let http = client();
    // Declared too large: refused from the Content-Length, before reading.
    let big = vec![deploy("ops", &"x".repeat(1000)); 200];
    let r = http
        .post(s.url("/events"))
        .header("X-API-Key", &s.admin)
        .json(&big)
        .send()
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "body_too_large");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("max_body_bytes") && msg.contains("100000"),
        "{msg}"
    );
    still_serves(&s, "a declared oversized body");

    // Chunked (no Content-Length): refused once the limit is crossed.
    let chunk = "y".repeat(50_000);
    let mut req = format!(
        "POST /events HTTP/1.1\r\nHost: x\r\nX-API-Key: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        s.admin
    );
    for _ in 0..4 {
        req.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    req.push_str("0\r\n\r\n");
    let (status, body) = parse_reply(&s.raw(req.as_bytes()));
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_body_bytes"),
        "{body}"
    );
    still_serves(&s, "a chunked oversized body");

    // One event over max_event_bytes (64 KiB by default) in a body under the limit.
    let r = http
        .post(s.url("/events"))
        .header("X-API-Key", &s.admin)
        .json(&deploy("ops", &"z".repeat(70_000)))
        .send()
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "event_too_large");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_event_bytes")
    );
    still_serves(&s, "an oversized event");
}

#[test]
fn deeply_nested_json_is_400_not_a_stack_overflow() {
    let store = Store::new();
    let s = Serve::with_limits(&store, "");
    let http = client();
    let nest = |open: &str, inner: &str, close: &str, n: usize| {
        format!("{}{inner}{}", open.repeat(n), close.repeat(n))
    };
    let with_metadata = |m: &str| {
        format!(
            r#"{{"event_type":"deploy","user_id":"ops","action_description":"d","status":"success","metadata":{{"m":{m}}}}}"#
        )
    };
    let mut cases = Vec::new();
    // 10,000 levels fit in one event's 64 KiB: the parser's depth limit
    // answers; 200,000 levels are mostly past the size limit first.
    for n in [10_000, 200_000] {
        let arrays = nest("[", "", "]", n);
        let objects = nest("{\"a\":", "1", "}", n);
        cases.push((format!("{n} arrays"), arrays.clone(), "application/json"));
        cases.push((format!("{n} objects"), objects.clone(), "application/json"));
        cases.push((
            format!("{n} in metadata"),
            with_metadata(&arrays),
            "application/json",
        ));
        cases.push((
            format!("{n} arrays, ndjson"),
            arrays,
            "application/x-ndjson",
        ));
        cases.push((
            format!("{n} objects, ndjson"),
            objects,
            "application/x-ndjson",
        ));
    }
    cases.push((
        "metadata past max_json_depth".into(),
        with_metadata(&nest("{\"a\":", "1", "}", 40)),
        "application/json",
    ));
    for (what, body, ct) in cases {
        let r = http
            .post(s.url("/events"))
            .header("X-API-Key", &s.admin)
            .header("Content-Type", ct)
            .body(body)
            .send()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = r.status().as_u16();
        let body: Value = r.json().unwrap();
        let msg = body["error"]["message"].as_str().unwrap_or_default();
        if what.starts_with("metadata") {
            assert_eq!(status, 400, "{what}: {body}");
            assert!(msg.contains("max_json_depth"), "{what}: {msg}");
        } else if what.starts_with("10000") {
            // The JSON parser's depth limit (128), or what is wrong before
            // the depth matters (an array is not an event; an unknown field `a`).
            assert_eq!(status, 400, "{what}: {body}");
            assert!(!msg.is_empty(), "{what}: {body}");
            if what.contains("metadata") {
                assert!(msg.contains("recursion"), "{what}: {msg}");
            }
        } else {
            // Whichever comes first: the size limit, or (in a bare array,
            // whose items are sized one by one) that an array is not an event.
            assert!(
                status == 400 || (status == 413 && msg.contains("max_event_bytes")),
                "{what}: {status} {msg}"
            );
            assert!(!msg.is_empty(), "{what}: {body}");
        }
        still_serves(&s, &what);
    }
}

#[test]
fn invalid_utf8_is_400_saying_where() {
    let store = Store::new();
    let s = Serve::with_limits(&store, "");
    let http = client();
    let mut body = br#"{"event_type":"deploy","user_id":"ops","action_description":"caf"#.to_vec();
    let at = body.len();
    body.extend_from_slice(b"\xff\xfe\",\"status\":\"success\"}");
    for ct in ["application/json", "application/x-ndjson"] {
        let r = http
            .post(s.url("/events"))
            .header("X-API-Key", &s.admin)
            .header("Content-Type", ct)
            .body(body.clone())
            .send()
            .unwrap();
        assert_eq!(r.status(), 400);
        let v: Value = r.json().unwrap();
        assert_eq!(v["error"]["code"], "invalid_body", "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("UTF-8") && msg.contains(&format!("byte offset {at}")),
            "{msg}"
        );
        still_serves(&s, "an invalid UTF-8 body");
    }
    // Percent-encoded bytes that are not UTF-8, in a value and in a name.
    for (query, names) in [
        ("user_id=ab%FFcd", "user_id: "),
        ("q=%C3%28", "q: "),
        ("%FF=1", "query string: "),
    ] {
        let r = http
            .get(s.url(&format!("/events?{query}")))
            .header("X-API-Key", &s.admin)
            .send()
            .unwrap();
        assert_eq!(r.status(), 400, "{query}");
        let v: Value = r.json().unwrap();
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.starts_with(names) && msg.contains("UTF-8") && msg.contains("offset"),
            "{query}: {msg}"
        );
    }
    // Raw bytes that are not UTF-8 in the request line: the HTTP layer refuses.
    let reply = s.raw(b"GET /events?q=\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply:?}");
    still_serves(&s, "invalid UTF-8 in the query string");
}

#[test]
fn huge_heads_are_refused_and_the_server_stays_up() {
    let store = Store::new();
    let s = Serve::with_limits(&store, "max_header_bytes = 16384");
    // One huge header.
    let reply = s.raw(
        format!(
            "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(1 << 20)
        )
        .as_bytes(),
    );
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply:?}");
    still_serves(&s, "a 1 MiB header");
    // A huge request line.
    let reply = s.raw(
        format!(
            "GET /events?q={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "q".repeat(100_000)
        )
        .as_bytes(),
    );
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply:?}");
    still_serves(&s, "a 100 KB request line");
    // Many small headers.
    let mut req = String::from("GET /health HTTP/1.1\r\nHost: x\r\n");
    for i in 0..500 {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    let reply = s.raw(req.as_bytes());
    assert!(
        reply.starts_with("HTTP/1.1 431") || reply.starts_with("HTTP/1.1 400"),
        "{reply:?}"
    );
    still_serves(&s, "500 headers");
    // An API key header far too long: 401 or 431, never a crash.
    let reply = s.raw(
        format!(
            "GET /events HTTP/1.1\r\nHost: x\r\nX-API-Key: evk_{}\r\nConnection: close\r\n\r\n",
            "0".repeat(10_000)
        )
        .as_bytes(),
    );
    assert!(
        reply.starts_with("HTTP/1.1 401") || reply.starts_with("HTTP/1.1 431"),
        "{reply:?}"
    );
    still_serves(&s, "a 10 KB key");
}

#[test]
fn slow_clients_time_out_while_others_are_served() {
    let store = Store::new();
    let s = Serve::with_limits(
        &store,
        "request_timeout_ms = 1000\nheader_timeout_ms = 1000",
    );
    // A body that never finishes, and a head that never finishes.
    let mut slow_body = TcpStream::connect(&s.addr).unwrap();
    slow_body
        .write_all(
            format!(
                "POST /events HTTP/1.1\r\nHost: x\r\nX-API-Key: {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"event_ty",
                s.admin
            )
            .as_bytes(),
        )
        .unwrap();
    let mut slow_head = TcpStream::connect(&s.addr).unwrap();
    slow_head
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    // Meanwhile others are served.
    still_serves(&s, "two slow clients connected");
    // The slow body gets 408 and its connection ends; the slow head is cut off.
    use std::io::Read;
    slow_body
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut reply = String::new();
    let _ = slow_body.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply:?}");
    assert!(reply.contains("request_timeout_ms"), "{reply}");
    slow_head
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut rest = Vec::new();
    // Closed by the server (EOF, possibly after a 408 head), not left open.
    let n = slow_head.read_to_end(&mut rest);
    assert!(
        n.is_ok(),
        "the slow head's connection was closed: {n:?} {rest:?}"
    );
    // Nothing of the unfinished body was written.
    assert!(
        !store
            .lines()
            .iter()
            .any(|l| String::from_utf8_lossy(l).contains("event_ty\"")),
    );
    still_serves(&s, "two slow clients timed out");
}

#[test]
fn two_thousand_idle_connections_do_not_keep_others_out() {
    const IDLE: usize = 2000;
    open_files_for(IDLE);
    let store = Store::new();
    // A long head timeout, so that the idle connections stay open while the
    // normal clients are served.
    let mut s = Serve::with_limits(&store, "header_timeout_ms = 120000");
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let c = TcpStream::connect(&s.addr).unwrap_or_else(|e| panic!("connection {i}: {e}"));
        // Half of them start a request and stop.
        if i % 2 == 0 {
            let mut c = &c;
            c.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
        }
        idle.push(c);
    }
    // Every normal request is answered, appends and reads alike.
    let http = client();
    for i in 0..20 {
        still_serves(&s, &format!("{IDLE} idle connections (request {i})"));
    }
    caught_up(&s);
    let r: Value = http
        .get(s.url("/events?event_type=deploy"))
        .header("X-API-Key", &s.admin)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["total"], 20, "{r}");
    drop(idle);
    assert!(s.running());
    still_serves(&s, "the idle connections closed");
}

/// Strings that try to leave the storage directory, or to smuggle a byte
/// past a check, as they would arrive in a URL (already percent-encoded).
const TRAVERSALS: &[&str] = &[
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%252e%252e%252fetc%252fpasswd",
    "..%5C..%5Cwindows%5Cwin.ini",
    "%2Fetc%2Fpasswd",
    "....%2F%2F....%2F%2Fetc%2Fpasswd",
    "events_2026-01-01.jsonl",
    "keys.json",
    "%00",
    "a%00..%2Fkeys.json",
    "%C0%AE%C0%AE%2F",
    "index%2F..%2F..%2Fkeys.json",
];

#[test]
fn traversal_strings_in_every_parameter_are_400_or_match_nothing() {
    let store = Store::new();
    let s = Serve::with_limits(&store, "");
    let http = client();
    // Something that must never show up in an answer.
    std::fs::write(store.path().join("secret.txt"), "TOP-SECRET-CONTENT").unwrap();
    let r = http
        .post(s.url("/events"))
        .header("X-API-Key", &s.admin)
        .json(&deploy("ops", "a normal event"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    caught_up(&s);
    let params = [
        "date",
        "start",
        "end",
        "event_type",
        "status",
        "level",
        "user_id",
        "request_id",
        "q",
        "limit",
        "offset",
        "cursor",
        "format",
    ];
    let endpoints = [
        "/events",
        "/events/stats",
        "/events/export",
        "/events/types",
        "/events/stream",
    ];
    let keys_file = std::fs::read_to_string(store.file("keys.json")).unwrap();
    let hash = keys_file
        .split('"')
        .find(|w| w.len() == 64 && w.bytes().all(|c| c.is_ascii_hexdigit()))
        .unwrap()
        .to_string();
    let mut answers = 0;
    for endpoint in endpoints {
        for param in params {
            for t in TRAVERSALS {
                let url = s.url(&format!("{endpoint}?{param}={t}"));
                let r = http.get(&url).header("X-API-Key", &s.admin).send().unwrap();
                let status = r.status().as_u16();
                if status == 200 && endpoint == "/events/stream" {
                    // A live stream that matches nothing yet: it stays open.
                    drop(r);
                    answers += 1;
                    continue;
                }
                let text = r.text().unwrap();
                for leak in ["root:", "TOP-SECRET", "[extensions]", &hash] {
                    assert!(!text.contains(leak), "{url}: {text}");
                }
                match status {
                    400 => {
                        let v: Value = serde_json::from_str(&text).unwrap();
                        assert_eq!(v["error"]["code"], "invalid_parameter", "{url}: {v}");
                        assert!(
                            v["error"]["message"].as_str().unwrap().contains(": "),
                            "{url}: {v}"
                        );
                    }
                    200 => {
                        // A filter that matched nothing.
                        match endpoint {
                            "/events" | "/events/stats" => {
                                let v: Value = serde_json::from_str(&text).unwrap();
                                assert_eq!(v["total"], 0, "{url}: {v}");
                            }
                            "/events/export" => assert!(text.lines().count() <= 1, "{url}: {text}"),
                            _ => panic!("{url}: 200 {text}"),
                        }
                    }
                    _ => panic!("{url}: {status} {text}"),
                }
                answers += 1;
            }
        }
    }
    assert_eq!(answers, endpoints.len() * params.len() * TRAVERSALS.len());
    // In the path: an id that is not a UUID, or a path that leaves the API.
    for path in [
        "/events/..%2F..%2Fetc%2Fpasswd",
        "/events/%2e%2e%2fkeys.json",
        "/events/keys.json",
        "/events/%00",
    ] {
        let r = http
            .get(s.url(path))
            .header("X-API-Key", &s.admin)
            .send()
            .unwrap();
        assert_eq!(r.status(), 400, "{path}");
        let v: Value = r.json().unwrap();
        assert_eq!(v["error"]["code"], "invalid_id", "{path}: {v}");
    }
    for raw in [
        "GET /../../etc/passwd HTTP/1.1",
        "GET /events/../keys.json HTTP/1.1",
        "GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1",
        "GET /index/meta.json HTTP/1.1",
    ] {
        let reply = s.raw(
            format!(
                "{raw}\r\nHost: x\r\nX-API-Key: {}\r\nConnection: close\r\n\r\n",
                s.admin
            )
            .as_bytes(),
        );
        let (status, body) = parse_reply(&reply);
        assert!(status == 400 || status == 404, "{raw}: {reply}");
        assert!(!reply.contains("root:") && !reply.contains(&hash), "{raw}");
        assert!(body["error"]["code"].is_string(), "{raw}: {reply}");
    }
    still_serves(&s, "traversal strings");
}

/// A key's burst beyond its role's bucket (issue 15, item 4): 429
/// `rate_limited` with `Retry-After` on every keyed route, counted in
/// `/metrics` by role; other keys keep being served, and after
/// `Retry-After` seconds the key is served again.
#[test]
fn a_burst_beyond_a_keys_bucket_is_429_until_its_retry_after() {
    let store = Store::new();
    let alice = store.add_key("user", "alice");
    let bob = store.add_key("user", "bob");
    let root = store.add_key("admin", "root");
    let s = Serve::with_limits(&store, "rate_user_per_sec = 1\nrate_user_burst = 3");
    let http = client();
    let whoami = |key: &str| {
        http.get(s.url("/whoami"))
            .header("X-API-Key", key)
            .send()
            .unwrap()
    };
    // At 1 token a second, 50 requests in a row overrun a bucket of 3.
    let mut served = 0;
    let refused = loop {
        let r = whoami(&alice);
        if r.status() == 429 {
            break r;
        }
        assert_eq!(r.status(), 200);
        served += 1;
        assert!(served < 50, "never limited");
    };
    assert!(served >= 3, "the burst is served first ({served})");
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry, 1);
    let v: Value = refused.json().unwrap();
    assert_eq!(v["error"]["code"], "rate_limited", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rate_user_per_sec"),
        "{v}"
    );
    // Appends draw from the same bucket.
    let r = http
        .post(s.url("/events"))
        .header("X-API-Key", &alice)
        .json(&deploy("alice", "over the rate"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 429);
    // Other keys are not affected: another user's, an admin's (off by default).
    assert_eq!(whoami(&bob).status(), 200);
    assert_eq!(whoami(&root).status(), 200);
    let metrics = http.get(s.url("/metrics")).send().unwrap().text().unwrap();
    assert!(
        metrics.contains("evlog_rate_limited_total{role=\"user\"} 2"),
        "{metrics}"
    );
    std::thread::sleep(Duration::from_secs(retry));
    assert_eq!(
        whoami(&alice).status(),
        200,
        "served again after Retry-After"
    );
}
