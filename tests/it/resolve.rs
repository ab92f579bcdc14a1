//! Resolve and reopen end to end: `POST /events/{id}/resolve|reopen` on a
//! running server, the `resolved=` filter of every read route, the derived
//! fields of returned events, and `evlog resolve` / `evlog reopen` /
//! `--resolved` in the CLI. The target's stored line never changes.

use std::io::Read;

use serde_json::{Value, json};

use crate::serve::{Serve, caught_up, client};
use crate::util::Store;

/// `POST /events/{id}/{verb}` with `key` and `body`: status and JSON.
fn call(s: &Serve, key: Option<&str>, id: &str, verb: &str, body: &str) -> (u16, Value) {
    let mut r = client().post(s.url(&format!("/events/{id}/{verb}")));
    if let Some(k) = key {
        r = r.header("x-api-key", k);
    }
    if !body.is_empty() {
        r = r.header("content-type", "application/json");
    }
    let resp = r.body(body.to_string()).send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

fn get(s: &Serve, key: &str, path: &str) -> Value {
    let resp = client()
        .get(s.url(path))
        .header("x-api-key", key)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().unwrap()
}

fn ids(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn resolve_and_reopen_over_http_with_every_read_route_filtering() {
    let store = Store::new();
    let admin = store.add_key("admin", "root");
    let alice = store.add_key("user", "alice");
    let service = store.add_key("service", "ci");
    let s = Serve::start(&store);
    let http = client();
    let mut targets = Vec::new();
    for (desc, level) in [
        ("disk full", "error"),
        ("slow", "warning"),
        ("hello", "info"),
    ] {
        let r: Value = http
            .post(s.url("/events"))
            .header("x-api-key", &service)
            .json(&json!({"event_type": "api_error", "user_id": "alice",
                "action_description": desc, "status": "failure", "level": level}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        targets.push(
            r["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{r}"))
                .to_string(),
        );
    }
    caught_up(&s);
    let before = store.lines();
    let me = get(&s, &admin, "/whoami");
    let target = &targets[0];

    // Resolve, with a note.
    let (status, r) = call(
        &s,
        Some(&admin),
        target,
        "resolve",
        r#"{"note":"disk replaced"}"#,
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["resolved"], true);
    assert_eq!(r["changed"], true);
    assert_eq!(r["resolved_by"], me["user_id"], "{r}");
    let resolution = r["resolution_id"].as_str().unwrap().to_string();
    // Again: nothing changes, nothing is appended.
    let (status, again) = call(&s, Some(&admin), target, "resolve", "");
    assert_eq!(
        (status, &again["changed"], &again["resolved"]),
        (200, &json!(false), &json!(true))
    );
    assert_eq!(again["resolved_at"], r["resolved_at"]);

    // Every read route sees it once the index has the resolution.
    caught_up(&s);
    let resolved = get(&s, &admin, "/events?resolved=true");
    assert_eq!(ids(&resolved), std::slice::from_ref(target), "{resolved}");
    assert_eq!(resolved["total"], 1);
    assert_eq!(resolved["filters_applied"]["resolved"], true);
    let e = &resolved["events"][0];
    assert_eq!(
        (&e["resolved"], &e["resolved_by"]),
        (&json!(true), &me["user_id"])
    );
    assert_eq!(e["resolved_at"], r["resolved_at"]);
    let open = get(&s, &admin, "/events?resolved=false");
    assert!(!ids(&open).contains(target), "{open}");
    assert!(ids(&open).contains(&targets[1]) && ids(&open).contains(&resolution));
    assert_eq!(open["total"].as_u64().unwrap() as usize, ids(&open).len());
    assert!(
        open["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["resolved"] == false)
    );
    let one = get(&s, &admin, &format!("/events/{target}"));
    assert_eq!(
        (&one["resolved"], &one["resolved_by"]),
        (&json!(true), &me["user_id"])
    );
    assert_eq!(get(&s, &admin, "/events/stats?resolved=true")["total"], 1);
    assert_eq!(
        get(&s, &admin, "/events/stats?resolved=false")["total"],
        open["total"]
    );
    // A user key reads the state of its own events too.
    let mine = get(&s, &alice, "/events?user_id=alice&resolved=true");
    assert_eq!(ids(&mine), std::slice::from_ref(target));
    let export = http
        .get(s.url("/events/export?resolved=true"))
        .header("x-api-key", &admin)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let lines: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{export}");
    assert_eq!(
        (&lines[0]["id"], &lines[0]["resolved"]),
        (&json!(target), &json!(true))
    );
    let csv = http
        .get(s.url("/events/export?resolved=true&format=csv"))
        .header("x-api-key", &admin)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    assert_eq!(row[col("resolved")], "true", "{csv}");
    assert_eq!(row[col("resolved_by")], me["user_id"].as_str().unwrap());
    // The live stream replays resolved events only.
    let mut stream = http
        .get(s.url("/events/stream?resolved=true"))
        .header("x-api-key", &admin)
        .header("last-event-id", "0")
        .send()
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains(target.as_str()) {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(!seen.contains(&targets[1]), "{seen}");
    drop(stream);

    // Reopen: open again.
    let (status, r) = call(&s, Some(&admin), target, "reopen", "");
    assert_eq!(
        (status, &r["resolved"], &r["changed"]),
        (200, &json!(false), &json!(true))
    );
    assert!(r.get("resolved_by").is_none(), "{r}");
    caught_up(&s);
    assert_eq!(get(&s, &admin, "/events?resolved=true")["total"], 0);
    assert_eq!(
        get(&s, &admin, &format!("/events/{target}"))["resolved"],
        false
    );

    // The target's line is as it was; the resolutions are lines of their own.
    let after = store.lines();
    assert_eq!(after[..before.len()], before[..]);
    assert_eq!(after.len(), before.len() + 2);
    store.expect_cli_verifies("ok");
}

#[test]
fn resolve_refuses_what_it_should() {
    let store = Store::new();
    let admin = store.add_key("admin", "root");
    let alice = store.add_key("user", "alice");
    let service = store.add_key("service", "ci");
    let s = Serve::start(&store);
    let r: Value = client()
        .post(s.url("/events"))
        .header("x-api-key", &service)
        .json(&json!({"event_type": "api_error", "user_id": "alice",
            "action_description": "x", "status": "failure", "level": "error"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = r["id"].as_str().unwrap().to_string();
    caught_up(&s);
    let code = |r: &(u16, Value)| (r.0, r.1["error"]["code"].as_str().unwrap_or("").to_string());
    for key in [&alice, &service] {
        for verb in ["resolve", "reopen"] {
            let r = call(&s, Some(key), &id, verb, "");
            assert_eq!(code(&r), (403, "forbidden".into()), "{verb}: {}", r.1);
        }
    }
    assert_eq!(code(&call(&s, None, &id, "resolve", "")).0, 403);
    let unknown = "0190f5e5-0000-7000-8000-000000000000";
    assert_eq!(
        code(&call(&s, Some(&admin), unknown, "resolve", "")),
        (404, "not_found".into())
    );
    assert_eq!(
        code(&call(&s, Some(&admin), "nope", "resolve", "")),
        (400, "invalid_id".into())
    );
    for body in ["nope", r#"{"note":1}"#, r#"{"note":"x","why":"y"}"#, "[1]"] {
        assert_eq!(
            code(&call(&s, Some(&admin), &id, "resolve", body)),
            (400, "invalid_body".into()),
            "{body}"
        );
    }
    let long = json!({"note": "n".repeat(2001)}).to_string();
    assert_eq!(code(&call(&s, Some(&admin), &id, "resolve", &long)).0, 400);
    assert_eq!(
        code(&call(&s, Some(&admin), &id, "resolve?dry_run=true", "")),
        (400, "invalid_parameter".into())
    );
    // A resolution is not itself resolved.
    let (_, r) = call(&s, Some(&admin), &id, "resolve", "");
    let resolution = r["resolution_id"].as_str().unwrap().to_string();
    caught_up(&s);
    assert_eq!(
        code(&call(&s, Some(&admin), &resolution, "reopen", "")),
        (400, "not_resolvable".into())
    );
    // POST /events does not take resolutions, from any key.
    for key in [&admin, &service] {
        let r = client()
            .post(s.url("/events"))
            .header("x-api-key", key)
            .json(&json!({"event_type": "event_resolved", "user_id": "alice",
                "action_description": "sneaky", "status": "success",
                "metadata": {"target_id": id}}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 403);
        let body: Value = r.json().unwrap();
        assert_eq!(body["error"]["events"][0]["field"], "event_type", "{body}");
    }
    let bad = client()
        .get(s.url("/events?resolved=maybe"))
        .header("x-api-key", &admin)
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
    // Only the one resolution above was written.
    caught_up(&s);
    let all = get(
        &s,
        &admin,
        "/events?event_type=event_resolved&event_type=event_reopened",
    );
    assert_eq!(ids(&all), [resolution]);
}

#[test]
fn the_cli_resolves_reopens_and_filters() {
    let store = Store::new();
    let out = store.run(
        &[
            "append",
            "--type",
            "api_error",
            "--user",
            "u",
            "--desc",
            "broken",
            "--level",
            "error",
        ],
        b"",
    );
    out.expect_code(0);
    let id = out.stdout.trim().to_string();
    store
        .run(
            &[
                "append", "--type", "commit", "--user", "u", "--desc", "fine",
            ],
            b"",
        )
        .expect_code(0);
    let out = store.run(
        &["resolve", &id, "--note", "patched", "--by", "oncall"],
        b"",
    );
    out.expect_code(0);
    assert!(
        out.stdout.starts_with(&format!("{id} resolved (event ")),
        "{}",
        out.stdout
    );
    let out = store.run(&["resolve", &id], b"");
    out.expect_code(0);
    assert!(
        out.stdout.contains("already resolved; nothing appended"),
        "{}",
        out.stdout
    );
    let query = |args: &[&str]| -> Vec<Value> {
        let mut a = vec!["query", "--format", "ndjson"];
        a.extend_from_slice(args);
        let out = store.run(&a, b"");
        out.expect_code(0);
        out.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let resolved = query(&["--resolved"]);
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0]["id"], id.as_str());
    assert_eq!(resolved[0]["resolved_by"], "oncall");
    let open = query(&["--resolved=false"]);
    assert_eq!(open.len(), 2, "the other event and the resolution");
    assert!(
        open.iter()
            .all(|e| e["id"] != id.as_str() && e["resolved"] == false)
    );
    let stats = store.run(&["stats", "--resolved", "--format", "json"], b"");
    stats.expect_code(0);
    let stats: Value = serde_json::from_str(&stats.stdout).unwrap();
    assert_eq!(stats["total"], 1);
    store.run(&["reopen", &id], b"").expect_code(0);
    assert!(query(&["--resolved"]).is_empty());
    let resolution = query(&["--event-type", "event_resolved"]);
    assert_eq!(
        resolution[0]["metadata"],
        json!({"note": "patched", "target_id": id})
    );
    // Mistakes: exit 2, a message.
    let out = store.run(&["resolve", "nope"], b"");
    out.expect_code(2);
    assert!(out.stderr.contains("not an event id"), "{}", out.stderr);
    let out = store.run(&["reopen", "0190f5e5-0000-7000-8000-000000000000"], b"");
    out.expect_code(2);
    assert!(out.stderr.contains("no event with id"), "{}", out.stderr);
    let out = store.run(&["query", "--resolved=perhaps"], b"");
    out.expect_code(2);
    // An export, with its derived fields, appends back as it was.
    let exported = store.run(&["export", "--format", "ndjson"], b"");
    exported.expect_code(0);
    let other = Store::new();
    other
        .run(&["append", "--stdin"], exported.stdout.as_bytes())
        .expect_code(0);
    assert_eq!(other.records().len(), 4);
}
