//! Isolation and secrets over a real `evlog serve`: a user key never sees
//! another user's events through any route (query, by id, export, stream,
//! stats, types), with plain and with hashed user ids, and no key of a
//! tenant sees or writes another tenant's (the tenant matrix: every route ×
//! two tenants and the default one × every role); keys are never
//! logged, stored or shown after creation, and no user key acts as the
//! server's own users; the keys file is 0600 and refused when group or
//! others may read it; day files are at most 0640 and the index and storage
//! directories at most 0750.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;

use serde_json::{Value, json};

use crate::serve::{Opts, Serve, caught_up, client};
use crate::util::Store;

const HASH_KEY: &str = "isolation-test-hash-key";

/// A server with keys for admin, alice, bob and a service, and events of
/// alice and bob (each with their own custom type, words and request id).
struct World {
    store: Store,
    s: Serve,
    admin: String,
    alice: String,
    bob: String,
    service: String,
    alice_ids: Vec<String>,
    bob_ids: Vec<String>,
    /// Every response body seen, for the secrets check.
    seen: Vec<String>,
}

fn ev(user: &str, kind: &str, desc: &str, request: &str) -> Value {
    json!({"event_type": kind, "user_id": user, "action_description": desc,
           "status": "failure", "request_id": request, "metadata": {"who": desc}})
}

impl World {
    fn new(hashed: bool, log_level: &str) -> World {
        let store = Store::new();
        let admin = store.add_key("admin", "root");
        let alice = store.add_key("user", "alice");
        let bob = store.add_key("user", "bob");
        let service = store.add_key("service", "ingest");
        let mut env = vec![("EVLOG_LOG", log_level)];
        if hashed {
            env.push(("EVLOG_USER_ID_HASH_KEY", HASH_KEY));
        }
        let s = Serve::start_opts(
            &store,
            Opts {
                args: &[],
                env: &env,
            },
        );
        assert!(s.admin.is_empty(), "keys existed: no key printed");
        let mut w = World {
            store,
            s,
            admin,
            alice,
            bob,
            service,
            alice_ids: Vec::new(),
            bob_ids: Vec::new(),
            seen: Vec::new(),
        };
        // Bob's through the service key, alice's through her own key.
        let bob_events: Vec<Value> = (0..3)
            .map(|i| {
                ev(
                    "bob",
                    "bob.secret",
                    &format!("bobword{i} payroll"),
                    "req-bob",
                )
            })
            .collect();
        let ids = w.post(&w.service.clone(), &json!(bob_events));
        w.bob_ids = ids;
        let alice_events: Vec<Value> = (0..2)
            .map(|i| ev("alice", "alice.own", &format!("aliceword{i}"), "req-alice"))
            .collect();
        let ids = w.post(&w.alice.clone(), &json!(alice_events));
        w.alice_ids = ids;
        caught_up(&w.s);
        w
    }

    fn post(&mut self, key: &str, body: &Value) -> Vec<String> {
        let r = client()
            .post(self.s.url("/events"))
            .header("X-API-Key", key)
            .json(body)
            .send()
            .unwrap();
        let status = r.status();
        let text = r.text().unwrap();
        assert_eq!(status, 201, "{text}");
        self.seen.push(text.clone());
        let v: Value = serde_json::from_str(&text).unwrap();
        match v.get("ids") {
            Some(ids) => ids
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_str().unwrap().to_string())
                .collect(),
            None => vec![v["id"].as_str().unwrap().to_string()],
        }
    }

    /// GET with a key: status and body.
    fn get(&mut self, key: &str, path: &str) -> (u16, String) {
        let r = client()
            .get(self.s.url(path))
            .header("Authorization", format!("Bearer {key}"))
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        self.seen.push(text.clone());
        (status, text)
    }

    fn get_json(&mut self, key: &str, path: &str) -> Value {
        let (status, text) = self.get(key, path);
        assert_eq!(status, 200, "{path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// What bob's events would show of him: ids, words, type, request id.
    fn assert_nothing_of_bob(&self, what: &str, text: &str) {
        for id in &self.bob_ids {
            assert!(!text.contains(id.as_str()), "{what}: bob's id {id}: {text}");
        }
        for leak in ["bobword", "payroll", "bob.secret", "req-bob"] {
            assert!(!text.contains(leak), "{what}: {leak}: {text}");
        }
    }
}

/// The `user_id` alice's events are stored under.
fn stored(user: &str, hashed: bool) -> String {
    if hashed {
        evlog::event::privacy::hash_user_id(HASH_KEY, user)
    } else {
        user.to_string()
    }
}

fn user_sees_only_own_events(hashed: bool) {
    let mut w = World::new(hashed, "info");
    let alice_id = stored("alice", hashed);
    let bob_id = stored("bob", hashed);
    let alice = w.alice.clone();
    let all = "start=2000-01-01T00:00:00Z";

    // Admin sees both (and may filter by the user's name or stored id).
    let admin = w.admin.clone();
    let ours = "event_type=alice.own&event_type=bob.secret";
    let v = w.get_json(&admin, &format!("/events?{all}&{ours}"));
    assert_eq!(v["total"], 5, "{v}");
    let v = w.get_json(&admin, &format!("/events?{all}&user_id=bob"));
    assert_eq!(v["total"], 3, "an admin filters by user name: {v}");
    let v = w.get_json(&admin, &format!("/events?{all}&user_id={bob_id}"));
    assert_eq!(v["total"], 3, "an admin filters by stored id: {v}");

    // Query: only her events, whatever the filters.
    for q in [
        format!("/events?{all}"),
        format!("/events?{all}&q=bobword0"),
        format!("/events?{all}&q=payroll"),
        format!("/events?{all}&request_id=req-bob"),
        format!("/events?{all}&event_type=bob.secret"),
        format!("/events?{all}&user_id=alice"),
        format!("/events?{all}&user_id={alice_id}"),
        format!("/events?{all}&limit=1000&offset=0"),
    ] {
        let v = w.get_json(&alice, &q);
        for e in v["events"].as_array().unwrap() {
            assert_eq!(e["user_id"], alice_id.as_str(), "{q}: {e}");
        }
        // (`filters_applied` echoes the filters, bob's words included.)
        w.assert_nothing_of_bob(&q, &v["events"].to_string());
    }
    let v = w.get_json(&alice, &format!("/events?{all}"));
    assert_eq!(v["total"], 2, "her own events: {v}");
    // Paging: an admin's cursor used with her key still shows only hers.
    let page = w.get_json(&admin, &format!("/events?{all}&limit=1"));
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let v = w.get_json(&alice, &format!("/events?{all}&cursor={cursor}"));
    w.assert_nothing_of_bob("cursor", &v.to_string());

    // By id: hers (also when user ids are hashed); bob's are 404 below.
    for id in w.alice_ids.clone() {
        let v = w.get_json(&alice, &format!("/events/{id}"));
        assert_eq!(v["id"], id.as_str());
        assert_eq!(v["user_id"], alice_id.as_str());
    }
    // Export, both formats.
    for fmt in ["ndjson", "csv"] {
        let (status, text) = w.get(&alice, &format!("/events/export?format={fmt}&{all}"));
        assert_eq!(status, 200, "{text}");
        w.assert_nothing_of_bob(fmt, &text);
        // Description and metadata of each of her two events.
        assert_eq!(text.matches("aliceword").count(), 4, "{text}");
    }

    // Stats and types.
    let v = w.get_json(&alice, &format!("/events/stats?{all}"));
    assert_eq!(
        (v["total"].as_u64(), v["unique_users"].as_u64()),
        (Some(2), Some(1)),
        "{v}"
    );
    w.assert_nothing_of_bob("stats", &v.to_string());
    let v = w.get_json(&alice, "/events/types");
    w.assert_nothing_of_bob("types", &v.to_string());
    let own = v["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "alice.own")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(own["count"], 2);

    // Live stream, replayed from the start (Last-Event-ID: 0) and live:
    // only her events, though bob's come first and in between.
    let mut stream = client()
        .get(w.s.url("/events/stream"))
        .header("X-API-Key", &alice)
        .header("Last-Event-ID", "0")
        .send()
        .unwrap();
    assert_eq!(stream.status(), 200);
    let service = w.service.clone();
    w.post(
        &service,
        &json!(ev("bob", "bob.secret", "bobword9 payroll", "req-bob")),
    );
    let last = w.post(
        &alice,
        &json!(ev("alice", "alice.own", "alicelast", "req-alice")),
    );
    let mut lines = BufReader::new(&mut stream);
    let mut got = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        assert!(lines.read_line(&mut line).unwrap() > 0, "stream ended");
        w.assert_nothing_of_bob("stream", &line);
        if let Some(d) = line.strip_prefix("data:") {
            let e: Value = serde_json::from_str(d.trim()).unwrap();
            assert_eq!(e["user_id"], alice_id.as_str(), "{e}");
            got.push(e["id"].as_str().unwrap().to_string());
            if got.last() == last.first() {
                break;
            }
        }
    }
    let want: HashSet<&String> = w.alice_ids.iter().chain(&last).collect();
    assert_eq!(got.iter().collect::<HashSet<_>>(), want);

    // Refusals come last: each is recorded as an auth_failure event of
    // alice's (naming the path she asked for), which she may read.
    for q in [
        format!("/events?{all}&user_id=bob"),
        format!("/events?{all}&user_id={bob_id}"),
        format!("/events/stats?{all}&user_id=bob"),
        format!("/events/export?{all}&user_id={bob_id}"),
        "/events/stream?user_id=bob".to_string(),
    ] {
        let (status, text) = w.get(&alice, &q);
        assert_eq!(status, 403, "{q}: {text}");
        w.assert_nothing_of_bob(&q, &text);
    }

    // Another user's event by id is answered exactly like an id that does
    // not exist (status, code, message): a user key cannot tell them apart.
    let made_up = uuid::Uuid::now_v7().to_string();
    let (none_status, none_text) = w.get(&alice, &format!("/events/{made_up}"));
    assert_eq!(none_status, 404, "{none_text}");
    for id in w.bob_ids.clone() {
        let (status, text) = w.get(&alice, &format!("/events/{id}"));
        assert_eq!(status, 404, "{text}");
        // The message names the id asked for, as for any id; nothing else.
        let text = text.replace(id.as_str(), "ID");
        assert_eq!(
            text,
            none_text.replace(&made_up, "ID"),
            "bob's event looks like no event"
        );
        w.assert_nothing_of_bob("by id", &text);
    }

    // A service reads nothing, anywhere.
    for path in [
        "/events",
        "/events/stats",
        "/events/types",
        "/events/export",
        "/events/stream",
    ] {
        let (status, _) = w.get(&service, path);
        assert_eq!(status, 403, "service {path}");
    }
    let id = w.alice_ids[0].clone();
    assert_eq!(w.get(&service, &format!("/events/{id}")).0, 403);

    // Bob, symmetrically, sees none of alice's.
    caught_up(&w.s);
    let bob = w.bob.clone();
    let v = w.get_json(&bob, &format!("/events?{all}"));
    assert_eq!(v["total"], 4, "{v}");
    assert!(!v.to_string().contains("aliceword"), "{v}");
    let (status, _) = w.get(&bob, &format!("/events/{id}"));
    assert_eq!(status, 404);
}

#[test]
fn a_user_sees_only_own_events_through_every_route() {
    user_sees_only_own_events(false);
}

#[test]
fn a_user_sees_only_own_events_through_every_route_with_hashed_user_ids() {
    user_sees_only_own_events(true);
}

#[test]
fn keys_are_never_logged_stored_or_shown_again() {
    let mut w = World::new(false, "trace");
    let wrong = format!("evk_{}", "5a".repeat(32));
    let keys = [
        w.admin.clone(),
        w.alice.clone(),
        w.bob.clone(),
        w.service.clone(),
        wrong.clone(),
    ];
    // Good keys, a wrong key, a key where it is not allowed, a malformed header.
    for k in &keys {
        w.get(k, "/events");
        w.get(k, "/events?user_id=someone");
        w.get(k, "/events/stats");
    }
    let r = client()
        .get(w.s.url("/events"))
        .header("Authorization", format!("Basic {wrong}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    w.seen.push(r.text().unwrap());
    let listed_json = w.store.run(&["keys", "list", "--format", "json"], b"");
    let listed_table = w.store.run(&["keys", "list", "--format", "table"], b"");
    let keys_file = std::fs::read_to_string(w.store.file("keys.json")).unwrap();
    let World { store, s, seen, .. } = w;
    // Keys existed: the server printed none.
    assert!(!s.stdout().contains("evk_"), "{}", s.stdout());
    let (status, log) = s.terminate();
    assert!(status.success());
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "the log level took: {log}"
    );
    let lines: Vec<String> = store
        .lines()
        .into_iter()
        .map(|l| String::from_utf8(l).unwrap())
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("auth_failure")),
        "denials are recorded"
    );
    for k in &keys {
        // The whole key and its secret part (without the `evk_` prefix).
        for needle in [k.as_str(), &k[4..]] {
            assert!(!log.contains(needle), "the server logged a key");
            assert!(
                !lines.iter().any(|l| l.contains(needle)),
                "a key in the events"
            );
            assert!(!seen.iter().any(|b| b.contains(needle)), "a key in a reply");
            assert!(!listed_json.stdout.contains(needle), "a key in keys list");
            assert!(!listed_table.stdout.contains(needle), "a key in keys list");
            assert!(!keys_file.contains(needle), "a key in the keys file");
        }
    }
    // Nor the stored hashes in the listings.
    let file: Value = serde_json::from_str(&keys_file).unwrap();
    for k in file["keys"].as_array().unwrap() {
        let hash = k["hash"].as_str().unwrap();
        assert!(!listed_json.stdout.contains(hash) && !listed_table.stdout.contains(hash));
        assert!(!log.contains(hash), "a key hash in the log");
    }
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn keys_file_is_0600_and_refused_when_group_or_others_may_read_it() {
    let store = Store::new();
    store.add_key("admin", "ops");
    let path = store.file("keys.json");
    assert_eq!(mode(&path), 0o600);
    for loose in [0o640, 0o604, 0o620, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(loose)).unwrap();
        for args in [
            &["keys", "list"][..],
            &["keys", "add", "--role", "user", "--user", "u"][..],
            &["serve", "--addr", "127.0.0.1:0"][..],
        ] {
            let out = store.run(args, b"");
            out.expect_code(2);
            assert!(
                out.stderr.contains(&format!("{loose:o}")) && out.stderr.contains("chmod 600"),
                "{args:?} {loose:o}: {}",
                out.stderr
            );
        }
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    store.run(&["keys", "list"], b"").expect_code(0);
}

#[test]
fn day_files_index_and_storage_directories_are_closed_to_others() {
    let store = Store::new();
    let s = Serve::start(&store);
    let r = client()
        .post(s.url("/events"))
        .header("X-API-Key", &s.admin)
        .json(&ev("ops", "deploy", "d", "r"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    caught_up(&s);
    let (status, _) = s.terminate();
    assert!(status.success());
    // At most these modes (the umask may take more away).
    assert_eq!(mode(store.path()) & !0o750, 0, "storage dir");
    assert_eq!(mode(&store.file("index")) & !0o750, 0, "index dir");
    assert_eq!(mode(&store.file("keys.json")), 0o600);
    let files = store.day_files();
    assert!(!files.is_empty());
    for f in files {
        assert_eq!(mode(&f.path) & !0o640, 0, "{}", f.path.display());
    }
}

/// Denials of requests without a key are recorded as user `anonymous`, the
/// server's start and stop as `evlog`: a user key for either would read
/// other people's denied requests (paths, addresses).
#[test]
fn no_user_key_for_the_users_of_the_servers_own_events() {
    let store = Store::new();
    for user in ["anonymous", "evlog"] {
        let out = store.run(&["keys", "add", "--role", "user", "--user", user], b"");
        out.expect_code(2);
        assert!(out.stderr.contains("its own events"), "{}", out.stderr);
        assert!(out.stdout.is_empty(), "no key printed: {}", out.stdout);
    }
    // An admin or service key may act as them (they read everything or nothing anyway).
    store.add_key("service", "evlog");
}

// ---------------------------------------------------------------------------
// Tenants (issue 15): every route × two tenants (and the default one) ×
// roles (admin of a tenant, all-tenants admin, user, service, anonymous),
// with plain and hashed user ids. Every tenant has a user `alice` (with
// hashing on, the same stored id in each): only the tenant tells them apart.

/// The tenants of the matrix: two named ones and the default (`_`).
const TENANTS: [&str; 3] = ["acme", "globex", "_"];

/// The word, custom type prefix and request id of a tenant's events.
fn tag(t: &str) -> &'static str {
    match t {
        "acme" => "acme",
        "globex" => "globex",
        _ => "dflt",
    }
}

/// One tenant's keys and events.
struct Tenant {
    name: &'static str,
    admin: String,
    alice: String,
    service: String,
    /// Alice's events (2, appended with her key, no `tenant` given).
    alice_ids: Vec<String>,
    /// Bob's events (3, appended with the tenant's service key).
    bob_ids: Vec<String>,
}

impl Tenant {
    fn ids(&self) -> impl Iterator<Item = &String> {
        self.alice_ids.iter().chain(&self.bob_ids)
    }
}

struct Tenants {
    store: Store,
    s: Serve,
    /// An all-tenants admin key.
    all: String,
    t: Vec<Tenant>,
}

/// Every custom type of the matrix's events, as query parameters, so that
/// counts leave out the server's own events (denials come and go).
fn ours() -> String {
    TENANTS
        .iter()
        .flat_map(|t| {
            let t = tag(t);
            [
                format!("event_type={t}.alice"),
                format!("event_type={t}.bob"),
            ]
        })
        .collect::<Vec<_>>()
        .join("&")
}

const ALL: &str = "start=2000-01-01T00:00:00Z";

fn call(
    s: &Serve,
    method: reqwest::Method,
    key: Option<&str>,
    path: &str,
    body: Option<&Value>,
) -> (u16, String) {
    let mut r = client().request(method, s.url(path));
    if let Some(k) = key {
        r = r.header("X-API-Key", k);
    }
    if let Some(b) = body {
        r = r.json(b);
    }
    let r = r.send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn get(s: &Serve, key: Option<&str>, path: &str) -> (u16, String) {
    call(s, reqwest::Method::GET, key, path, None)
}

fn get_json(s: &Serve, key: &str, path: &str) -> Value {
    let (status, text) = get(s, Some(key), path);
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn post(s: &Serve, key: Option<&str>, body: &Value) -> (u16, String) {
    call(s, reqwest::Method::POST, key, "/events", Some(body))
}

fn posted_ids(text: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(text).unwrap();
    match v.get("ids") {
        Some(ids) => ids
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap().to_string())
            .collect(),
        None => vec![v["id"].as_str().unwrap().to_string()],
    }
}

impl Tenants {
    fn new(hashed: bool) -> Tenants {
        let store = Store::new();
        let all = store.add_key_with("admin", "root", &["--all-tenants"]);
        let mut keys = Vec::new();
        for name in TENANTS {
            let flags: Vec<&str> = if name == "_" {
                vec![]
            } else {
                vec!["--tenant", name]
            };
            keys.push((
                name,
                store.add_key_with("admin", "root", &flags),
                store.add_key_with("user", "alice", &flags),
                store.add_key_with("service", "ingest", &flags),
            ));
        }
        let mut env = vec![];
        if hashed {
            env.push(("EVLOG_USER_ID_HASH_KEY", HASH_KEY));
        }
        let s = Serve::start_opts(
            &store,
            Opts {
                args: &[],
                env: &env,
            },
        );
        let mut t = Vec::new();
        for (name, admin, alice, service) in keys {
            let w = tag(name);
            let alice_events: Vec<Value> = (0..2)
                .map(|i| {
                    ev(
                        "alice",
                        &format!("{w}.alice"),
                        &format!("{w}word a{i}"),
                        &format!("req-{w}"),
                    )
                })
                .collect();
            let (status, text) = post(&s, Some(&alice), &json!(alice_events));
            assert_eq!(status, 201, "{text}");
            let alice_ids = posted_ids(&text);
            // Bob's name their tenant (acme) or leave it to the key.
            let bob_events: Vec<Value> = (0..3)
                .map(|i| {
                    let mut e = ev(
                        "bob",
                        &format!("{w}.bob"),
                        &format!("{w}word b{i}"),
                        &format!("req-{w}"),
                    );
                    if name == "acme" {
                        e["tenant"] = name.into();
                    }
                    e
                })
                .collect();
            let (status, text) = post(&s, Some(&service), &json!(bob_events));
            assert_eq!(status, 201, "{text}");
            let bob_ids = posted_ids(&text);
            t.push(Tenant {
                name,
                admin,
                alice,
                service,
                alice_ids,
                bob_ids,
            });
        }
        caught_up(&s);
        Tenants { store, s, all, t }
    }

    /// Asserts that `text` shows nothing of any tenant but `own` (`None`:
    /// of none): their ids, words, types and request ids.
    fn assert_nothing_of_others(&self, own: &str, what: &str, text: &str) {
        for other in self.t.iter().filter(|o| o.name != own) {
            for id in other.ids() {
                assert!(
                    !text.contains(id.as_str()),
                    "{what}: an id of {}: {text}",
                    other.name
                );
            }
            let w = tag(other.name);
            assert!(
                !text.contains(&format!("{w}word")),
                "{what}: words of {}: {text}",
                other.name
            );
            assert!(
                !text.contains(&format!("{w}.")),
                "{what}: a type of {}: {text}",
                other.name
            );
            assert!(
                !text.contains(&format!("req-{w}")),
                "{what}: {}: {text}",
                other.name
            );
        }
    }
}

/// The tenant an event (as the API answers it) belongs to.
fn tenant_of(e: &Value) -> &str {
    e["tenant"].as_str().unwrap_or("_")
}

fn tenants_are_isolated_through_every_route(hashed: bool) {
    let w = Tenants::new(hashed);
    let s = &w.s;
    let ours = ours();

    // On disk: each event in its key's tenant; the default tenant's
    // events carry no `tenant` at all.
    for r in w.store.records() {
        let d = &r.event.action_description;
        if let Some(t) = TENANTS
            .iter()
            .find(|t| d.starts_with(&format!("{}word", tag(t))))
        {
            let want = (*t != "_").then_some(*t);
            assert_eq!(r.event.tenant.as_deref(), want, "{d}");
        }
    }

    for t in &w.t {
        let own = t.name;
        // Admin and user of the tenant: query, stats, types, export, by id.
        for (role, key, n) in [("admin", &t.admin, 5), ("user", &t.alice, 2)] {
            let what = format!("{role} of {own}");
            for q in [
                format!("/events?{ALL}&{ours}"),
                format!("/events?{ALL}&{ours}&tenant={own}"),
                format!("/events?{ALL}&{ours}&user_id=alice"),
                format!("/events?{ALL}&{ours}&limit=1000"),
            ] {
                let v = get_json(s, key, &q);
                let events = v["events"].as_array().unwrap();
                let want = if q.contains("user_id") { 2 } else { n };
                assert_eq!(
                    (v["total"].as_u64(), events.len()),
                    (Some(want), want as usize),
                    "{what} {q}: {v}"
                );
                assert!(
                    events.iter().all(|e| tenant_of(e) == own),
                    "{what} {q}: {v}"
                );
                assert_eq!(v["filters_applied"]["tenant"], own, "{what}: {v}");
                w.assert_nothing_of_others(own, &format!("{what} {q}"), &v["events"].to_string());
            }
            // Full text and request ids of another tenant find nothing.
            for other in TENANTS.iter().filter(|o| **o != own) {
                let o = tag(other);
                for q in [
                    format!("q={o}word"),
                    format!("request_id=req-{o}"),
                    format!("event_type={o}.alice"),
                ] {
                    let v = get_json(s, key, &format!("/events?{ALL}&{q}"));
                    assert_eq!(v["total"], 0, "{what} {q}: {v}");
                }
            }
            let v = get_json(s, key, &format!("/events/stats?{ALL}&{ours}"));
            assert_eq!(v["total"], n, "{what} stats: {v}");
            w.assert_nothing_of_others(own, &what, &v["by_type"].to_string());
            let v = get_json(s, key, "/events/types");
            w.assert_nothing_of_others(own, &format!("{what} types"), &v.to_string());
            let count = |name: String| {
                v["types"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|x| x["name"] == name.as_str())
                    .map(|x| x["count"].clone())
            };
            assert_eq!(
                count(format!("{}.alice", tag(own))),
                Some(json!(2)),
                "{what}: {v}"
            );
            for fmt in ["ndjson", "csv"] {
                let (status, text) = get(
                    s,
                    Some(key),
                    &format!("/events/export?format={fmt}&{ALL}&{ours}"),
                );
                assert_eq!(status, 200, "{text}");
                w.assert_nothing_of_others(own, &format!("{what} {fmt}"), &text);
                assert_eq!(
                    text.matches(&format!("{}word", tag(own))).count(),
                    2 * n as usize,
                    "{what} {fmt}: {text}"
                );
            }
            let v = get_json(s, key, "/whoami");
            assert_eq!(
                (v["tenant"].as_str(), v["all_tenants"].as_bool()),
                ((own != "_").then_some(own), Some(false)),
                "{v}"
            );
            // By id: its own; another tenant's is the 404 of an unknown id.
            let mine: Vec<&String> = if role == "admin" {
                t.ids().collect()
            } else {
                t.alice_ids.iter().collect()
            };
            for id in mine {
                let v = get_json(s, key, &format!("/events/{id}"));
                assert_eq!(tenant_of(&v), own);
            }
            let made_up = uuid::Uuid::now_v7().to_string();
            let (status, unknown) = get(s, Some(key), &format!("/events/{made_up}"));
            assert_eq!(status, 404, "{unknown}");
            for other in w.t.iter().filter(|o| o.name != own) {
                for id in other.ids() {
                    let (status, text) = get(s, Some(key), &format!("/events/{id}"));
                    assert_eq!(status, 404, "{what}: {text}");
                    assert_eq!(
                        text.replace(id.as_str(), "ID"),
                        unknown.replace(&made_up, "ID"),
                        "{what}"
                    );
                }
            }
        }
        // A service and no key read nothing, anywhere.
        for (who, key) in [("service", Some(t.service.as_str())), ("anonymous", None)] {
            for path in [
                "/events",
                "/events/stats",
                "/events/types",
                "/events/export",
                "/events/stream",
            ] {
                let (status, text) = get(
                    s,
                    key,
                    &format!("{path}?tenant={own}").replace("?tenant=_", ""),
                );
                assert_eq!(status, 403, "{who} of {own} {path}: {text}");
                w.assert_nothing_of_others("", &format!("{who} {path}"), &text);
            }
            let (status, _) = get(s, key, &format!("/events/{}", t.alice_ids[0]));
            assert_eq!(status, 403, "{who} by id");
        }
    }

    // The all-tenants admin: every tenant, or the one it names.
    let v = get_json(s, &w.all, &format!("/events?{ALL}&{ours}"));
    assert_eq!(v["total"], 15, "{v}");
    assert!(v["filters_applied"].get("tenant").is_none(), "{v}");
    for t in &w.t {
        let v = get_json(
            s,
            &w.all,
            &format!("/events?{ALL}&{ours}&tenant={}", t.name),
        );
        assert_eq!(v["total"], 5, "{v}");
        assert!(
            v["events"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| tenant_of(e) == t.name)
        );
        let v = get_json(
            s,
            &w.all,
            &format!("/events/stats?{ALL}&{ours}&tenant={}", t.name),
        );
        assert_eq!(
            (v["total"].as_u64(), v["unique_users"].as_u64()),
            (Some(5), Some(2)),
            "{v}"
        );
        let (status, text) = get(
            s,
            Some(&w.all),
            &format!("/events/export?{ALL}&{ours}&tenant={}", t.name),
        );
        assert_eq!((status, text.lines().count()), (200, 5), "{text}");
        w.assert_nothing_of_others(t.name, "all-tenants export", &text);
        for id in t.ids() {
            assert_eq!(
                get_json(s, &w.all, &format!("/events/{id}"))["id"],
                id.as_str()
            );
        }
    }
    let v = get_json(s, &w.all, &format!("/events/stats?{ALL}&{ours}"));
    assert_eq!(v["total"], 15, "{v}");
    let v = get_json(s, &w.all, "/whoami");
    assert_eq!(
        (v["tenant"].clone(), v["all_tenants"].clone()),
        (Value::Null, json!(true)),
        "{v}"
    );

    // Live streams: only the tenant's events, though others' come first
    // and in between. (An all-tenants admin naming globex: globex's.)
    let (acme, globex) = (&w.t[0], &w.t[1]);
    for (i, (what, key, own, filter)) in [
        ("admin of acme", &acme.admin, "acme", ""),
        ("user of acme", &acme.alice, "acme", ""),
        ("all-tenants admin", &w.all, "globex", "?tenant=globex"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut stream = client()
            .get(s.url(&format!("/events/stream{filter}")))
            .header("X-API-Key", key)
            .header("Last-Event-ID", "0")
            .send()
            .unwrap();
        assert_eq!(stream.status(), 200, "{what}");
        let marker = ev(
            "alice",
            &format!("{}.alice", tag(own)),
            &format!("{}word last", tag(own)),
            "r",
        );
        let foreign = if own == "acme" {
            &globex.service
        } else {
            &acme.service
        };
        let (status, text) = post(
            s,
            Some(foreign),
            &json!(ev("bob", "x.bob", &format!("foreign{i} payroll"), "r")),
        );
        assert_eq!(status, 201, "{text}");
        let (status, text) = post(
            s,
            Some(if own == "acme" {
                &acme.alice
            } else {
                &globex.alice
            }),
            &marker,
        );
        assert_eq!(status, 201, "{text}");
        let last = posted_ids(&text).remove(0);
        let mut lines = BufReader::new(&mut stream);
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                lines.read_line(&mut line).unwrap() > 0,
                "{what}: stream ended"
            );
            assert!(!line.contains(&format!("foreign{i}")), "{what}: {line}");
            w.assert_nothing_of_others(own, what, &line);
            if let Some(d) = line.strip_prefix("data:") {
                let e: Value = serde_json::from_str(d.trim()).unwrap();
                assert_eq!(tenant_of(&e), own, "{what}: {e}");
                if e["id"] == last.as_str() {
                    break;
                }
            }
        }
    }

    // Appends: an event naming another tenant is refused (nothing
    // written); naming its own, or none, is stored in the key's tenant; an
    // all-tenants admin names any.
    let before = w.store.records().len();
    for t in &w.t {
        for other in TENANTS.iter().filter(|o| **o != t.name && **o != "_") {
            for (role, key) in [
                ("admin", &t.admin),
                ("user", &t.alice),
                ("service", &t.service),
            ] {
                let mut e = ev("alice", "deploy", "elsewhere", "r");
                e["tenant"] = (*other).into();
                let (status, text) = post(
                    s,
                    Some(key),
                    &json!([ev("alice", "deploy", "fine", "r"), e]),
                );
                assert_eq!(status, 403, "{role} of {} → {other}: {text}", t.name);
                let v: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["error"]["events"][0]["field"], "tenant", "{v}");
                assert_eq!(v["error"]["events"][0]["index"], 1, "{v}");
            }
        }
    }
    assert!(
        w.store.records()[before..]
            .iter()
            .all(|r| r.event.action_description != "fine"),
        "a refused append wrote"
    );
    let (status, text) = post(
        s,
        Some(&acme.service),
        &json!(ev("u", "deploy", "named own", "r"))
            .as_object()
            .map(|o| {
                let mut o = o.clone();
                o.insert("tenant".into(), "acme".into());
                Value::Object(o)
            })
            .unwrap(),
    );
    assert_eq!(status, 201, "{text}");
    let mut e = ev("u", "deploy", "by the all-tenants admin", "r");
    e["tenant"] = "globex".into();
    let (status, text) = post(s, Some(&w.all), &e);
    assert_eq!(status, 201, "{text}");
    let id = posted_ids(&text).remove(0);
    caught_up(s);
    assert_eq!(
        get_json(s, &globex.admin, &format!("/events/{id}"))["tenant"],
        "globex"
    );
    assert_eq!(get(s, Some(&acme.admin), &format!("/events/{id}")).0, 404);
    let (status, _) = post(s, None, &json!(ev("u", "deploy", "anonymous", "r")));
    assert_eq!(status, 403);

    // Rotation acts on whole days, which every tenant shares, and the
    // checkpoints sign them: only the all-tenants admin runs the one and
    // lists the other.
    for (method, path) in [
        (reqwest::Method::POST, "/admin/rotate?dry_run=true"),
        (reqwest::Method::GET, "/admin/checkpoints"),
    ] {
        for t in &w.t {
            for (role, key) in [
                ("admin", &t.admin),
                ("user", &t.alice),
                ("service", &t.service),
            ] {
                let (status, text) = call(s, method.clone(), Some(key), path, None);
                assert_eq!(status, 403, "{method} {path}: {role} of {}: {text}", t.name);
                assert!(text.contains("all-tenants admin"), "{text}");
            }
        }
        let (status, text) = call(s, method.clone(), None, path, None);
        assert_eq!(status, 403, "{method} {path}: anonymous: {text}");
        let (status, text) = call(s, method.clone(), Some(&w.all), path, None);
        assert_eq!(status, 200, "{method} {path}: {text}");
    }

    // Resolve and reopen: a tenant's admin changes its own tenant's events
    // only (another tenant's id is 404, as for no event; user and service
    // keys are refused); the all-tenants admin any tenant's. A resolution
    // is stored in its target's tenant.
    let post_to = |key: &str, path: String| call(s, reqwest::Method::POST, Some(key), &path, None);
    for t in &w.t {
        let own = &t.bob_ids[0];
        for other in w.t.iter().filter(|o| o.name != t.name) {
            for verb in ["resolve", "reopen"] {
                let (status, text) =
                    post_to(&t.admin, format!("/events/{}/{verb}", other.bob_ids[0]));
                assert_eq!(
                    status, 404,
                    "admin of {} {verb}s {}'s: {text}",
                    t.name, other.name
                );
                assert_eq!(
                    text,
                    get(
                        s,
                        Some(&t.admin),
                        "/events/0190f5e5-0000-7000-8000-000000000000"
                    )
                    .1
                    .replace("0190f5e5-0000-7000-8000-000000000000", &other.bob_ids[0]),
                    "the same 404"
                );
            }
        }
        for key in [&t.alice, &t.service] {
            assert_eq!(post_to(key, format!("/events/{own}/resolve")).0, 403);
        }
        let (status, text) = post_to(&t.admin, format!("/events/{own}/resolve"));
        assert_eq!(status, 200, "{text}");
        let (status, text) = post_to(&w.all, format!("/events/{}/resolve", t.bob_ids[1]));
        assert_eq!(status, 200, "{text}");
    }
    caught_up(s);
    for t in &w.t {
        let page = get_json(s, &t.admin, &format!("/events?{ALL}&resolved=true"));
        let mut got: Vec<&str> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        got.sort_unstable();
        let mut want = vec![t.bob_ids[0].as_str(), t.bob_ids[1].as_str()];
        want.sort_unstable();
        assert_eq!(got, want, "{} sees its resolved events only", t.name);
        let resolutions = get_json(
            s,
            &t.admin,
            &format!("/events?{ALL}&event_type=event_resolved"),
        );
        assert_eq!(resolutions["total"], 2, "{}: {resolutions}", t.name);
        for r in resolutions["events"].as_array().unwrap() {
            assert_eq!(tenant_of(r), t.name, "{r}");
        }
    }

    // Refusals come last (each is recorded, in the key's tenant): naming
    // another tenant on a read is a 403, for an admin of a tenant too.
    for t in &w.t {
        for (role, key) in [("admin", &t.admin), ("user", &t.alice)] {
            for other in TENANTS.iter().filter(|o| **o != t.name) {
                for path in [
                    "/events",
                    "/events/stats",
                    "/events/export",
                    "/events/stream",
                ] {
                    let (status, text) = get(s, Some(key), &format!("{path}?tenant={other}"));
                    assert_eq!(status, 403, "{role} of {} {path} → {other}: {text}", t.name);
                    assert!(text.contains("reads only its tenant"), "{text}");
                }
            }
        }
    }
    // The denials are in the denying key's tenant (acme's admin sees
    // acme's keys refused), and a probe of another tenant's id is recorded
    // in that tenant (which knew the id), never in the prober's: acme's
    // admin sees the probes of acme's ids, and nothing of the others'.
    caught_up(s);
    let denials = |key: &str| {
        get_json(
            s,
            key,
            &format!("/events?{ALL}&event_type=auth_failure&limit=1000"),
        )
    };
    let v = denials(&acme.admin);
    let events = v["events"].as_array().unwrap();
    let says = |e: &Value, what: &str| e["action_description"].as_str().unwrap().contains(what);
    assert!(events.iter().all(|e| tenant_of(e) == "acme"), "{v}");
    assert!(
        events
            .iter()
            .any(|e| says(e, "a key of tenant acme reads only its tenant's events")),
        "{v}"
    );
    assert!(
        events
            .iter()
            .any(|e| says(e, "a key of tenant acme appends only to its tenant")),
        "{v}"
    );
    w.assert_nothing_of_others("acme", "acme's denials", &v["events"].to_string());
    let probed = globex.ids().next().unwrap();
    let v = denials(&globex.admin);
    assert!(
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| says(e, probed) && says(e, "another tenant")),
        "{v}"
    );
}

#[test]
fn tenants_are_isolated_through_every_route_by_every_role() {
    tenants_are_isolated_through_every_route(false);
}

#[test]
fn tenants_are_isolated_through_every_route_by_every_role_with_hashed_user_ids() {
    tenants_are_isolated_through_every_route(true);
}
