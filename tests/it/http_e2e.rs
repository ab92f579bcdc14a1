//! `evlog serve` as a process, over a real socket: the first admin key,
//! keys added and revoked while it runs, the live stream, CSV export, and
//! SIGTERM under load losing no acknowledged event.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::serve::{Serve, client, deploy, eventually};
use crate::util::*;

#[test]
fn first_start_key_keys_cli_live_stream_and_csv_export_over_a_socket() {
    let store = Store::new();
    let s = Serve::start(&store);
    assert!(
        s.admin.len() == 68,
        "first start prints an admin key: {}",
        s.stdout()
    );
    let curl = format!("curl -H 'X-API-Key: {}' '{}/events'", s.admin, s.base);
    eventually("the key block's curl example", || {
        s.stdout().contains(&curl).then_some(())
    });
    let keys_file = std::fs::read_to_string(store.file("keys.json")).unwrap();
    assert!(
        !keys_file.contains(&s.admin[4..]),
        "only the hash is stored"
    );
    let http = client();

    // A user key added by the CLI while the server runs works within a second or so.
    let out = store.run(
        &[
            "keys", "add", "--role", "user", "--user", "alice", "--label", "e2e",
        ],
        b"",
    );
    out.expect_code(0);
    let alice = out.stdout.trim().to_string();
    assert!(
        alice.starts_with("evk_") && !alice.contains('\n'),
        "the key alone: {:?}",
        out.stdout
    );
    let status = |key: &str| {
        http.get(s.url("/events"))
            .header("Authorization", format!("Bearer {key}"))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    eventually("the new key is loaded", || {
        (status(&alice) == 200).then_some(())
    });

    // The live stream sees an event appended after it connected.
    let mut stream = http
        .get(s.url("/events/stream?event_type=deploy"))
        .header("X-API-Key", &alice)
        .send()
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut lines = BufReader::new(&mut stream);
    let mut line = String::new();
    lines.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), ":ready");
    let posted = http
        .post(s.url("/events"))
        .header("X-API-Key", &alice)
        .json(&deploy("alice", "after connecting"))
        .send()
        .unwrap();
    assert_eq!(posted.status(), 201);
    let id = posted.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let data = loop {
        line.clear();
        assert!(lines.read_line(&mut line).unwrap() > 0, "stream ended");
        if let Some(d) = line.strip_prefix("data:") {
            break serde_json::from_str::<Value>(d.trim()).unwrap();
        }
    };
    assert_eq!(data["id"], id.as_str());
    assert_eq!(data["action_description"], "after connecting");
    drop(lines);
    drop(stream);

    // CSV export parses with the csv crate and has every match.
    let batch: Vec<Value> = (0..1500)
        .map(|i| deploy(if i % 2 == 0 { "alice" } else { "bob" }, &format!("e{i}")))
        .collect();
    let r = http
        .post(s.url("/events"))
        .header("X-API-Key", &s.admin)
        .json(&batch)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    eventually("indexed", || {
        let h: Value = http.get(s.url("/health")).send().ok()?.json().ok()?;
        (h["index"]["lag_events"] == 0 && h["status"] == "ok").then_some(())
    });
    let body = http
        .get(s.url("/events/export?format=csv&event_type=deploy"))
        .header("X-API-Key", &s.admin)
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let mut csv = csv::Reader::from_reader(&body[..]);
    assert_eq!(
        csv.headers().unwrap().len(),
        evlog::export::CSV_COLUMNS.len()
    );
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1501);
    assert!(rows.iter().all(|r| &r[2] == "deploy"));
    let mine = http
        .get(s.url("/events/export?format=csv&event_type=deploy"))
        .header("X-API-Key", &alice)
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let rows = csv::Reader::from_reader(&mine[..])
        .records()
        .map(Result::unwrap)
        .collect::<Vec<_>>();
    assert_eq!(rows.len(), 751, "a user exports only its own events");
    assert!(rows.iter().all(|r| &r[3] == "alice"));

    // Metrics count the requests and the appended events.
    let metrics = http.get(s.url("/metrics")).send().unwrap().text().unwrap();
    assert!(
        metrics.contains(
            "evlog_http_requests_total{method=\"POST\",route=\"/events\",status=\"201\"} 2"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("evlog_http_request_duration_seconds_bucket"));
    assert!(metrics.contains("evlog_index_lag_events 0"));

    // Revoked: 401 once the server reloads the file.
    let listed = store.run(&["keys", "list", "--format", "json"], b"");
    let listed: Vec<Value> = serde_json::from_str(&listed.expect_code(0).stdout).unwrap();
    assert!(
        listed.iter().all(|k| k.get("hash").is_none()),
        "no hash in the listing"
    );
    let alice_id = listed.iter().find(|k| k["user_id"] == "alice").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    store
        .run(&["keys", "revoke", &alice_id], b"")
        .expect_code(0);
    eventually("the revoked key is refused", || {
        (status(&alice) == 401).then_some(())
    });

    let admin = s.admin.clone();
    assert!(s.terminate().0.success());
    // Key changes are recorded as system_config events, never with the key.
    let lines: Vec<String> = store
        .lines()
        .into_iter()
        .map(|l| String::from_utf8(l).unwrap())
        .collect();
    let changes = lines
        .iter()
        .filter(|l| l.contains("\"system_config\""))
        .count();
    assert_eq!(changes, 3, "first admin key, alice's key, the revocation");
    for key in [&admin, &alice] {
        assert!(!lines.iter().any(|l| l.contains(&key[4..])));
    }
    assert!(lines.iter().any(|l| l.contains("\"system_stop\"")));
}

#[test]
fn slow_bodies_time_out_and_oversized_heads_are_refused_per_the_config_file() {
    use std::io::{Read, Write};
    let store = Store::new();
    let s = Serve::with_limits(&store, "request_timeout_ms = 300\nmax_header_bytes = 8192");
    let addr = s.base.trim_start_matches("http://").to_string();
    let exchange = |request: &[u8]| {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        c.write_all(request).unwrap();
        let mut reply = String::new();
        let _ = c.read_to_string(&mut reply);
        reply
    };
    // Promises 100 bytes, sends 10, then waits: 408 once request_timeout_ms passes.
    let slow = format!(
        "POST /events HTTP/1.1\r\nHost: x\r\nX-API-Key: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{\"event_ty",
        s.admin
    );
    let reply = exchange(slow.as_bytes());
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("\"request_timeout\""), "{reply}");
    let big = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(10_000)
    );
    let reply = exchange(big.as_bytes());
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    let ok = exchange(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

#[test]
fn a_keys_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let store = Store::new();
    store
        .run(&["keys", "add", "--role", "admin", "--user", "ops"], b"")
        .expect_code(0);
    let path = store.file("keys.json");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = store.run(&["serve", "--addr", "127.0.0.1:0"], b"");
    out.expect_code(2);
    assert!(out.stderr.contains("chmod 600"), "{}", out.stderr);
}

#[test]
fn sigterm_under_load_loses_no_acknowledged_event() {
    let store = Store::new();
    let s = Serve::start(&store);
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (acked, stop, url, key) = (
                acked.clone(),
                stop.clone(),
                s.url("/events"),
                s.admin.clone(),
            );
            std::thread::spawn(move || {
                let http = client();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let batch = vec![
                        deploy("load", &format!("c{c}-{i}-a")),
                        deploy("load", &format!("c{c}-{i}-b")),
                    ];
                    // Errors (connection refused or closed at shutdown) are
                    // not acknowledgements; keep going until told to stop.
                    let Ok(r) = http
                        .post(&url)
                        .header("X-API-Key", &key)
                        .json(&batch)
                        .send()
                    else {
                        continue;
                    };
                    if r.status() == 201 {
                        let ids: Value = r.json().unwrap();
                        let mut a = acked.lock().unwrap();
                        a.extend(
                            ids["ids"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|v| v.as_str().unwrap().to_string()),
                        );
                    } else {
                        assert_eq!(r.status(), 503, "only shutdown refusals");
                    }
                }
            })
        })
        .collect();
    eventually("load is flowing", || {
        (acked.lock().unwrap().len() >= 400).then_some(())
    });
    let (status, _) = s.terminate();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    assert!(status.success(), "{status}");
    let stored: HashSet<String> = store
        .records()
        .iter()
        .map(|r| r.event.id.unwrap().to_string())
        .collect();
    let acked = acked.lock().unwrap();
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events lost",
        lost.len(),
        acked.len()
    );
    assert!(store.verify().ok());
    // The final index commit covers everything on disk.
    let ix = evlog::index::IndexSearch::open(store.path()).unwrap();
    assert_eq!(ix.lag(store.path()).unwrap().events, 0);
}

/// `[[dedup]]` rules in `POST /events` (issue 15, item 4): at most one
/// `login_failed` per (user_id, event_type) per 10 minutes; the request is
/// still answered 201 as a whole, with `null` in place of the id of each
/// suppressed event and their positions under `suppressed`; other types,
/// `auth_failure` included, are untouched; the suppressed are counted in
/// `/metrics` and summarised in `events_suppressed` events.
#[test]
fn dedup_rules_suppress_repeats_and_the_answer_and_summaries_say_so() {
    let store = Store::new();
    let svc = store.add_key("service", "emitter");
    let root = store.add_key("admin", "root");
    let s = Serve::with_config(
        &store,
        "[[dedup]]\nevent_types = [\"login_failed\"]\nper = \"10m\"\nmax = 1\n",
    );
    let http = client();
    let post = |body: &Value| {
        let r = http
            .post(s.url("/events"))
            .header("X-API-Key", &svc)
            .json(body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    let failed = |user: &str| {
        serde_json::json!({"event_type": "login_failed", "user_id": user,
            "action_description": "bad password", "status": "failure"})
    };
    let denied = serde_json::json!({"event_type": "auth_failure", "user_id": "alice",
        "action_description": "denied", "status": "failure"});
    let (status, v) = post(&serde_json::json!([
        failed("alice"),
        failed("alice"),
        deploy("alice", "not listed"),
        failed("bob"),
        denied,
        denied
    ]));
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["suppressed"], serde_json::json!([1]), "{v}");
    let ids = v["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 6);
    assert!(ids[1].is_null(), "{v}");
    assert!(
        ids.iter()
            .enumerate()
            .all(|(i, id)| i == 1 || id.is_string()),
        "{v}"
    );
    let (status, v) = post(&failed("alice"));
    assert_eq!(status, 201, "{v}");
    assert_eq!(v, serde_json::json!({"id": null, "suppressed": [0]}));
    // Without a suppression the answer is as it always was.
    let (status, v) = post(&failed("carol"));
    assert_eq!(status, 201);
    assert!(v["id"].is_string() && v.get("suppressed").is_none(), "{v}");
    let metrics = http.get(s.url("/metrics")).send().unwrap().text().unwrap();
    assert!(
        metrics.contains("evlog_events_suppressed_total{event_type=\"login_failed\"} 2"),
        "{metrics}"
    );
    // A summary comes within seconds of the first suppression.
    eventually("a summary event", || {
        let v: Value = http
            .get(s.url("/events?event_type=events_suppressed"))
            .header("X-API-Key", &root)
            .send()
            .ok()?
            .json()
            .ok()?;
        (!v["events"].as_array()?.is_empty()).then_some(())
    });
    let (status, _) = s.terminate();
    assert!(status.success());
    let events: Vec<evlog::Event> = store.records().into_iter().map(|r| r.event).collect();
    let stored = |t: &str, u: &str| {
        events
            .iter()
            .filter(|e| e.event_type.as_str() == t && e.user_id == u)
            .count()
    };
    assert_eq!(stored("login_failed", "alice"), 1);
    assert_eq!(stored("login_failed", "bob"), 1);
    assert_eq!(stored("auth_failure", "alice"), 2);
    assert_eq!(stored("deploy", "alice"), 1);
    // Every suppression is in one summary or another (the rest at shutdown).
    let summarised: u64 = events
        .iter()
        .filter(|e| e.event_type.as_str() == "events_suppressed")
        .map(|e| {
            e.metadata.as_ref().unwrap()["suppressed"]["login_failed"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(summarised, 2);
}
