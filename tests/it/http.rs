//! Route tests with `warp::test`: the access matrix (endpoint × role ×
//! own/other user), validation of bodies and parameters, and the error shape.

use std::time::{Duration, Instant};

use evlog::auth::{self, KeyStore, Role};
use evlog::server::{Limits, Server};
use evlog::{Config, DayRange, Durability, EventLog};
use serde_json::{Value, json};
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

/// A server over a fresh store with one key per role.
struct Api {
    _dir: tempfile::TempDir,
    log: EventLog,
    routes: BoxedFilter<(Response,)>,
    _server: Server,
    admin: String,
    alice: String,
    service: String,
}

const ALICE: &str = "alice";
const BOB: &str = "bob";

async fn api(limits: Limits) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("store");
    let log = EventLog::open(Config::new(&storage).durability(Durability::None)).unwrap();
    let keys = storage.join("keys.json");
    let add = |role, user: &str| auth::update(&keys, |f| f.add(role, user, None)).unwrap().0;
    let (admin, alice, service) = (
        add(Role::Admin, "root"),
        add(Role::User, ALICE),
        add(Role::Service, "ci"),
    );
    let server = Server::new(log.clone(), KeyStore::open(&keys).unwrap(), limits).unwrap();
    Api {
        routes: server.routes(),
        _server: server,
        _dir: dir,
        log,
        admin,
        alice,
        service,
    }
}

struct Reply {
    status: StatusCode,
    headers: warp::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    /// The error code, checking the error shape on the way.
    fn code(&self) -> String {
        let v = self.json();
        assert!(v["error"]["message"].is_string(), "{v}");
        v["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"))
            .to_string()
    }
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<(&str, &[u8])>,
    ) -> Reply {
        let mut r = warp::test::request().method(method).path(path);
        if let Some(k) = key {
            r = r.header("x-api-key", k);
        }
        if let Some((ct, b)) = body {
            r = r.header("content-type", ct).body(b);
        }
        let resp = r.reply(&self.routes).await;
        Reply {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.body().to_vec(),
        }
    }

    async fn get(&self, path: &str, key: Option<&str>) -> Reply {
        self.call("GET", path, key, None).await
    }

    async fn post(&self, key: Option<&str>, body: &Value) -> Reply {
        let b = body.to_string();
        self.call(
            "POST",
            "/events",
            key,
            Some(("application/json", b.as_bytes())),
        )
        .await
    }

    /// Waits until the index covers every line on disk.
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let h = self.get("/health", None).await.json();
            if h["index"]["lag_events"] == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "the index never caught up: {h}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every stored line, as text.
    fn stored(&self) -> Vec<String> {
        self.log
            .scan(DayRange::all())
            .unwrap()
            .map(|r| serde_json::to_string(&r.unwrap().event).unwrap())
            .collect()
    }
}

fn event(user: &str, ty: &str) -> Value {
    json!({"event_type": ty, "user_id": user, "action_description": format!("{ty} by {user}"), "status": "success"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_matrix_endpoint_by_role_by_own_or_other_user() {
    let api = api(Limits::default()).await;
    let (admin, alice, service) = (
        Some(api.admin.as_str()),
        Some(api.alice.as_str()),
        Some(api.service.as_str()),
    );
    let unknown = Some("evk_0000");

    // Appends: admin and service for anyone, a user only as itself.
    assert_eq!(
        api.post(admin, &event(BOB, "commit")).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        api.post(service, &event(BOB, "commit")).await.status,
        StatusCode::CREATED
    );
    let own = api.post(alice, &event(ALICE, "commit")).await;
    assert_eq!(own.status, StatusCode::CREATED);
    let alice_id = own.json()["id"].as_str().unwrap().to_string();
    let bob_id = api.post(admin, &event(BOB, "push")).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let as_other = api
        .post(
            alice,
            &json!([event(ALICE, "commit"), event(BOB, "commit")]),
        )
        .await;
    assert_eq!(
        (as_other.status, as_other.code().as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    assert_eq!(
        as_other.json()["error"]["events"][0]["index"],
        1,
        "names the event"
    );
    assert_eq!(
        api.post(None, &event(ALICE, "commit")).await.code(),
        "api_key_required"
    );
    assert_eq!(
        api.post(unknown, &event(ALICE, "commit")).await.status,
        StatusCode::UNAUTHORIZED
    );
    api.settle().await;

    let reads = [
        "/events?event_type=commit&event_type=push",
        "/events/stats?event_type=commit&event_type=push",
        "/events/export?event_type=commit&event_type=push",
        "/events/types",
    ];
    for path in reads {
        let sep = if path.contains('?') { '&' } else { '?' };
        let all = api.get(path, admin).await;
        assert_eq!(all.status, StatusCode::OK, "admin {path}");
        let mine = api.get(path, alice).await;
        assert_eq!(mine.status, StatusCode::OK, "user {path}");
        let text = String::from_utf8_lossy(&mine.body).to_string();
        assert!(
            !text.contains("by bob"),
            "a user sees only its own events: {path}: {text}"
        );
        if path != "/events/types" {
            assert!(
                text.contains("by alice") || path.contains("stats"),
                "{path}: {text}"
            );
            let explicit_own = api.get(&format!("{path}{sep}user_id={ALICE}"), alice).await;
            assert_eq!(explicit_own.status, StatusCode::OK, "user own {path}");
            let other = api.get(&format!("{path}{sep}user_id={BOB}"), alice).await;
            assert_eq!(
                (other.status, other.code().as_str()),
                (StatusCode::FORBIDDEN, "forbidden"),
                "user other {path}"
            );
            let admin_other = api.get(&format!("{path}{sep}user_id={BOB}"), admin).await;
            assert_eq!(admin_other.status, StatusCode::OK, "admin other {path}");
        }
        assert_eq!(
            api.get(path, service).await.code(),
            "forbidden",
            "service {path}"
        );
        assert_eq!(
            api.get(path, None).await.code(),
            "api_key_required",
            "no key {path}"
        );
        assert_eq!(
            api.get(path, unknown).await.code(),
            "unauthorized",
            "unknown key {path}"
        );
    }
    // Counts: the user's view is its own.
    let stats = |r: Reply| r.json()["total"].as_u64().unwrap();
    assert_eq!(
        stats(
            api.get("/events/stats?event_type=commit&event_type=push", admin)
                .await
        ),
        4
    );
    assert_eq!(
        stats(
            api.get("/events/stats?event_type=commit&event_type=push", alice)
                .await
        ),
        1
    );
    let types = api.get("/events/types", alice).await.json();
    let commit = types["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "commit")
        .unwrap()
        .clone();
    assert_eq!(
        (commit["count"].as_u64(), commit["description"].is_string()),
        (Some(1), true)
    );

    // One event: the owner and admin.
    let one = |id: &str| format!("/events/{id}");
    assert_eq!(
        api.get(&one(&alice_id), alice).await.json()["id"],
        alice_id.as_str()
    );
    assert_eq!(api.get(&one(&bob_id), admin).await.status, StatusCode::OK);
    // Another user's event is the 404 of no event (issue 12).
    assert_eq!(api.get(&one(&bob_id), alice).await.code(), "not_found");
    assert_eq!(api.get(&one(&bob_id), service).await.code(), "forbidden");
    assert_eq!(
        api.get(&one(&bob_id), None).await.code(),
        "api_key_required"
    );
    assert_eq!(api.get(&one(&bob_id), unknown).await.code(), "unauthorized");
    assert_eq!(
        api.get(&one(&uuid::Uuid::now_v7().to_string()), admin)
            .await
            .code(),
        "not_found"
    );

    // The live stream refuses before it streams.
    assert_eq!(
        api.get("/events/stream?user_id=bob", alice).await.code(),
        "forbidden"
    );
    assert_eq!(api.get("/events/stream", service).await.code(), "forbidden");
    assert_eq!(
        api.get("/events/stream", None).await.code(),
        "api_key_required"
    );
    assert_eq!(
        api.get("/events/stream", unknown).await.code(),
        "unauthorized"
    );

    // Health and metrics are open to anyone.
    for path in ["/health", "/metrics"] {
        assert_eq!(api.get(path, None).await.status, StatusCode::OK, "{path}");
    }

    // Denials are recorded as auth_failure events, and no key ever shows up
    // in what is stored.
    let deadline = Instant::now() + Duration::from_secs(30);
    let stored = loop {
        let lines = api.stored();
        let denials = lines
            .iter()
            .filter(|l| l.contains("\"auth_failure\""))
            .count();
        if denials >= 15 {
            break lines;
        }
        assert!(Instant::now() < deadline, "{denials} auth_failure events");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for key in [&api.admin, &api.alice, &api.service] {
        assert!(
            !stored.iter().any(|l| l.contains(&key[4..])),
            "a key was stored"
        );
    }
    assert!(stored.iter().any(|l| l.contains("\"auth_failure\"")
        && l.contains("\"user_id\":\"alice\"")
        && l.contains("\"role\":\"user\"")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_4xx_naming_index_and_field_and_write_nothing() {
    let api = api(Limits {
        max_body_bytes: 4096,
        max_event_bytes: 1024,
        max_batch_events: 3,
        max_json_depth: 5,
        ..Limits::default()
    })
    .await;
    let admin = Some(api.admin.as_str());
    let post = |ct: &'static str, body: String| {
        let api = &api;
        async move {
            api.call("POST", "/events", admin, Some((ct, body.as_bytes())))
                .await
        }
    };
    let ok = event("dev", "commit");
    let mut bad_status = ok.clone();
    bad_status["status"] = json!("done");
    let mut unknown_field = ok.clone();
    unknown_field["meta"] = json!({});
    let mut no_desc = ok.clone();
    no_desc
        .as_object_mut()
        .unwrap()
        .remove("action_description");

    let r = post(
        "application/json",
        json!([ok, bad_status, unknown_field, no_desc]).to_string(),
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large")
    );
    let r = post(
        "application/json",
        json!([bad_status, ok, unknown_field]).to_string(),
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_event")
    );
    let listed: Vec<(u64, String)> = r.json()["error"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["index"].as_u64().unwrap(),
                e["field"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(listed, [(0, "status".to_string()), (2, "meta".to_string())]);
    assert!(
        r.json()["error"]["events"][1]["message"]
            .as_str()
            .unwrap()
            .contains("meta")
    );
    let nd = format!("{ok}\n{no_desc}\n");
    let r = post("application/x-ndjson", nd).await;
    assert_eq!(r.json()["error"]["events"][0]["line"], 2);
    assert_eq!(r.json()["error"]["events"][0]["field"], "event");

    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        ("application/json", "not json".into(), StatusCode::BAD_REQUEST, "invalid_body"),
        ("application/json", "[1,".into(), StatusCode::BAD_REQUEST, "invalid_body"),
        ("application/json", "".into(), StatusCode::BAD_REQUEST, "invalid_body"),
        ("application/json", "{\"event_type\":".into(), StatusCode::BAD_REQUEST, "invalid_event"),
        ("text/plain", ok.to_string(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        (
            "application/json",
            json!({"event_type":"commit","user_id":"u","action_description":"x".repeat(2000),"status":"success"}).to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "event_too_large",
        ),
        ("application/json", format!("[{}]", "x".repeat(5000)), StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
        (
            "application/json",
            json!({"event_type":"commit","user_id":"u","action_description":"d","status":"success","metadata":{"a":{"b":{"c":{"d":{"e":1}}}}}}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_event",
        ),
    ];
    for (ct, body, status, code) in cases {
        let r = post(ct, body.clone()).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (status, code),
            "{ct} {body:.60}"
        );
    }
    assert!(
        api.stored().iter().all(|l| !l.contains("\"commit\"")),
        "a rejected request wrote something"
    );

    // Good requests still work and answer only once written.
    let r = post("application/json", json!([ok, ok]).to_string()).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json()["ids"].as_array().unwrap().len(), 2);
    assert_eq!(
        api.stored()
            .iter()
            .filter(|l| l.contains("\"commit\""))
            .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_paths_and_methods_are_4xx_naming_what_is_wrong() {
    let api = api(Limits::default()).await;
    let admin = Some(api.admin.as_str());
    let cases = [
        ("/events?date=../../etc", "invalid_parameter", "date"),
        ("/events?date=2026-13-01", "invalid_parameter", "date"),
        ("/events?start=yesterday", "invalid_parameter", "start"),
        (
            "/events?start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z",
            "invalid_parameter",
            "end",
        ),
        ("/events?limit=5000", "invalid_parameter", "limit"),
        ("/events?offset=-1", "invalid_parameter", "offset"),
        ("/events?cursor=nope", "invalid_parameter", "cursor"),
        ("/events?status=done", "invalid_parameter", "status"),
        ("/events?level=loud", "invalid_parameter", "level"),
        (
            "/events?event_type=Not%20A%20Type",
            "invalid_parameter",
            "event_type",
        ),
        ("/events?colour=red", "invalid_parameter", "colour"),
        (
            "/events?date=2026-01-01&date=2026-01-02",
            "invalid_parameter",
            "date",
        ),
        ("/events/stats?limit=5", "invalid_parameter", "limit"),
        ("/events/export?format=xml", "invalid_parameter", "format"),
        ("/events/not-a-uuid", "invalid_id", "id"),
        ("/events/..%2F..%2Fetc%2Fpasswd", "invalid_id", "id"),
        ("/events/types?x=1", "invalid_parameter", "x"),
    ];
    for (path, code, param) in cases {
        let r = api.get(path, admin).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, code),
            "{path}"
        );
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.starts_with(&format!("{param}: ")), "{path}: {msg}");
    }
    let r = api.call("PUT", "/events", admin, None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let r = api.call("DELETE", "/events/stats", admin, None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    // POST only (rotation, issue 5).
    let r = api.get("/admin/rotate", admin).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let r = api.get("/nowhere", None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert_eq!(r.headers["content-type"], "application/json");
    let r = api.call("GET", "/events", None, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let bearer = warp::test::request()
        .path("/events")
        .header("authorization", format!("Bearer {}", api.admin))
        .reply(&api.routes)
        .await;
    assert_eq!(bearer.status(), StatusCode::OK);
    let basic = warp::test::request()
        .path("/events")
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .reply(&api.routes)
        .await;
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_and_stats_bodies_are_the_cli_json_and_export_has_no_1000_cap() {
    let api = api(Limits::default()).await;
    let admin = Some(api.admin.as_str());
    let batch: Vec<Value> = (0..1203)
        .map(|i| {
            event(
                &format!("u{}", i % 7),
                if i % 3 == 0 { "push" } else { "commit" },
            )
        })
        .collect();
    assert_eq!(
        api.post(admin, &json!(batch)).await.status,
        StatusCode::CREATED
    );
    api.settle().await;

    // An admin key of the default tenant reads that tenant's events: the
    // server adds the filter (and says so in `filters_applied`).
    let q = evlog::index::Query {
        event_types: vec!["commit".into()],
        limit: Some(10),
        tenant: Some(evlog::event::DEFAULT_TENANT.into()),
        ..Default::default()
    };
    let from_lib = serde_json::to_value(api.log.query(&q).unwrap()).unwrap();
    let from_http = api
        .get("/events?event_type=commit&limit=10", admin)
        .await
        .json();
    assert_eq!(from_http, from_lib);
    assert_eq!(from_http["total"], 802);
    let stats_lib =
        serde_json::to_value(api.log.stats(&evlog::index::Query::default()).unwrap()).unwrap();
    let stats_http = api.get("/events/stats", admin).await.json();
    assert_eq!(stats_http["by_type"], stats_lib["by_type"]);
    assert_eq!(stats_http["unique_users"], 7);

    let csv = api
        .get("/events/export?format=csv&event_type=commit", admin)
        .await;
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    let mut r = csv::Reader::from_reader(&csv.body[..]);
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        evlog::export::CSV_COLUMNS
    );
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 802, "every match, past the 1000 cap of a page");
    let ids: std::collections::HashSet<&str> = rows.iter().map(|r| &r[1]).collect();
    assert_eq!(ids.len(), 802, "no row twice");
    let nd = api.get("/events/export", admin).await;
    assert_eq!(nd.headers["content-type"], "application/x-ndjson");
    let lines = nd
        .body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert!(lines >= 1203, "{lines}");
}

/// Issue 15: clients of older systems send `SECURITY`, `Success`: accepted
/// in any case, stored lowercase, and filters take any case too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_level_in_any_case_are_stored_lowercase_and_filter() {
    let api = api(Limits::default()).await;
    let admin = Some(api.admin.as_str());
    let mut shouted = event(ALICE, "auth_failure");
    shouted["status"] = json!("FAILURE");
    shouted["level"] = json!("SECURITY");
    let mut mixed = event(ALICE, "commit");
    mixed["status"] = json!("In_Progress");
    mixed["level"] = json!("Warning");
    let r = api.post(admin, &json!([shouted, mixed])).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let stored = api.stored();
    assert_eq!(stored.len(), 2);
    assert!(
        stored[0].contains(r#""status":"failure","level":"security""#),
        "{}",
        stored[0]
    );
    assert!(
        stored[1].contains(r#""status":"in_progress","level":"warning""#),
        "{}",
        stored[1]
    );
    api.settle().await;
    let v = api.get("/events?level=SECURITY", admin).await.json();
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["events"][0]["level"], "security");
    assert_eq!(v["filters_applied"]["level"], "security");
    let v = api
        .get("/events/stats?status=IN_PROGRESS", admin)
        .await
        .json();
    assert_eq!(v["total"], 1, "{v}");
    // Not a case of a value: still a 400 naming the parameter.
    let r = api.get("/events?level=FATAL", admin).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("level: ")
    );
}

/// Issue 15: an optional `source` (the emitting service) is stored after
/// `request_id`, checked (1–128 characters) and filters `/events`,
/// `/events/stats` and `/events/export`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_is_stored_checked_and_filters_every_read_endpoint() {
    let api = api(Limits::default()).await;
    let admin = Some(api.admin.as_str());
    let with = |source: &str, ty: &str| {
        let mut e = event(ALICE, ty);
        e["source"] = json!(source);
        e["request_id"] = json!("r1");
        e
    };
    let batch = json!([
        with("api-service", "commit"),
        with("background-job", "push"),
        with("api-service", "push"),
        event(ALICE, "commit"),
    ]);
    let r = api.post(admin, &batch).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let stored = api.stored();
    assert!(
        stored[0].contains(r#""request_id":"r1","source":"api-service""#),
        "{}",
        stored[0]
    );
    assert!(!stored[3].contains("source"), "{}", stored[3]);
    api.settle().await;

    let v = api.get("/events?source=api-service", admin).await.json();
    assert_eq!(v["total"], 2, "{v}");
    assert!(
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["source"] == "api-service")
    );
    assert_eq!(v["filters_applied"]["source"], "api-service");
    let v = api
        .get("/events?source=api-service&event_type=push", admin)
        .await
        .json();
    assert_eq!(v["total"], 1, "{v}");
    let v = api
        .get("/events/stats?source=background-job", admin)
        .await
        .json();
    assert_eq!(v["total"], 1, "{v}");
    // Exact match: another case is another service.
    let v = api.get("/events?source=API-SERVICE", admin).await.json();
    assert_eq!(v["total"], 0, "{v}");
    let nd = api.get("/events/export?source=api-service", admin).await;
    let lines: Vec<Value> = nd
        .body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let csv = api
        .get("/events/export?format=csv&source=background-job", admin)
        .await;
    let mut r = csv::Reader::from_reader(&csv.body[..]);
    let col = r
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "source")
        .unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][col], "background-job");

    // The rules: 1 to 128 characters, in a body and in a filter.
    for bad in [String::new(), "s".repeat(129)] {
        let r = api.post(admin, &with(&bad, "commit")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            r.json()["error"]["events"][0]["field"],
            "source",
            "{}",
            r.json()
        );
        for path in [
            "/events",
            "/events/stats",
            "/events/export",
            "/events/stream",
        ] {
            let r = api.get(&format!("{path}?source={bad}"), admin).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
            let m = r.json()["error"]["message"].as_str().unwrap().to_string();
            assert!(m.starts_with("source: must be 1 to 128"), "{path}: {m}");
        }
    }
    assert!(
        api.post(admin, &with(&"é".repeat(128), "commit"))
            .await
            .status
            .is_success()
    );
}

/// Issue 15: `tenant` is checked (^[a-z0-9][a-z0-9_-]{0,62}$) in a body and
/// in every filter (a 400 naming it, before any scoping), stored after
/// `source`, and an admin key of the default tenant stores an event
/// without one there: absent on disk, `_` in `filters_applied`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_is_checked_stored_after_source_and_defaulted_by_the_key() {
    let api = api(Limits::default()).await;
    let admin = Some(api.admin.as_str());
    for bad in ["", "Acme", "_", "-a", "a.b", &"a".repeat(64)] {
        let mut e = event(ALICE, "commit");
        e["tenant"] = json!(bad);
        let r = api.post(admin, &e).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        let v = r.json();
        assert_eq!(v["error"]["events"][0]["field"], "tenant", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("tenant: must match"),
            "{v}"
        );
        if bad == "_" {
            // `_` names the default tenant in a filter, never in an event.
            continue;
        }
        for path in [
            "/events",
            "/events/stats",
            "/events/export",
            "/events/stream",
            "/events/types",
        ] {
            let r = api.get(&format!("{path}?tenant={bad}"), admin).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path} {bad}");
            assert_eq!(r.code(), "invalid_parameter");
        }
    }
    let r = api.post(admin, &event(ALICE, "commit")).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(
        !api.stored()[0].contains("\"tenant\""),
        "{}",
        api.stored()[0]
    );
    // Naming another tenant is refused, naming none is the key's.
    let mut e = event(ALICE, "commit");
    e["source"] = json!("api");
    e["tenant"] = json!("acme");
    let r = api.post(admin, &e).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.json());
    api.settle().await;
    let v = api
        .get("/events?tenant=_&event_type=commit", admin)
        .await
        .json();
    assert_eq!(
        (v["total"].as_u64(), v["filters_applied"]["tenant"].as_str()),
        (Some(1), Some("_")),
        "{v}"
    );
    let r = api.get("/events?tenant=acme", admin).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let v = api.get("/whoami", admin).await.json();
    assert_eq!(
        (v["tenant"].clone(), v["all_tenants"].clone()),
        (Value::Null, json!(false)),
        "{v}"
    );
    // The field's place, from the library (an all-tenants admin could store it too).
    let line = serde_json::to_string(
        &evlog::Event::new(evlog::EventType::Commit, "u", "d")
            .source("s")
            .tenant("acme"),
    )
    .unwrap();
    assert!(line.contains(r#""source":"s","tenant":"acme""#), "{line}");
}
