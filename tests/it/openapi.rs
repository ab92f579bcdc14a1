//! The OpenAPI document at `GET /openapi.json`: it names exactly the
//! routes the router serves, it is well-formed OpenAPI 3.1, and README's
//! route table agrees with both. (`scripts/api-fuzz.sh` checks the live
//! server's answers against it.)

use std::collections::BTreeSet;

use evlog::auth::KeyStore;
use evlog::server::{Limits, ROUTES, Server, openapi_document};
use evlog::{Config, Durability, EventLog};
use serde_json::Value;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

/// A server over a fresh store (no keys: every request here is keyless).
struct Routes {
    _dir: tempfile::TempDir,
    _server: Server,
    routes: BoxedFilter<(Response,)>,
}

fn routes() -> Routes {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("store");
    let log = EventLog::open(Config::new(&storage).durability(Durability::None)).unwrap();
    let keys = KeyStore::open(&storage.join("keys.json")).unwrap();
    let server = Server::new(log, keys, Limits::default()).unwrap();
    Routes {
        routes: server.routes(),
        _server: server,
        _dir: dir,
    }
}

/// The (method, path template) pairs the document names.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

/// A concrete path for a template: each `{name}` filled with a value the
/// route takes.
fn concrete(template: &str) -> String {
    template
        .replace("{id}", "0190a1b2-0000-7000-8000-000000000000")
        .replace("{file}", "app.js")
}

/// Whether the router itself refused `method path` (no route matched the
/// path: 404 `no such endpoint`; or none took the method: 405), rather
/// than a route answering (whatever its answer).
async fn router_refuses(r: &Routes, method: &str, path: &str) -> bool {
    let resp = warp::test::request()
        .method(method)
        .path(path)
        .reply(&r.routes)
        .await;
    let body: Value = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
    match resp.status() {
        StatusCode::METHOD_NOT_ALLOWED => true,
        StatusCode::NOT_FOUND => body["error"]["message"] == "no such endpoint",
        _ => false,
    }
}

/// The document names exactly the routes the router serves.
///
/// The router's side comes from the router: `Server::routes` builds every
/// route's method and path filter from `evlog::server::ROUTES` and from
/// nowhere else (its helpers `at`/`at1` refuse anything not in the
/// table). So this test checks, and fails if any of it breaks:
/// 1. the document's (method, path) pairs are exactly `ROUTES`: a route
///    missing from the document, or a documented one not in the table;
/// 2. every `ROUTES` entry is served: the method on the path (parameters
///    filled in), sent to the router with `warp::test`, is answered by a
///    route, not by the router's own 404 (`no such endpoint`) or 405 — a
///    table entry that `routes()` does not wire is caught;
/// 3. on each of those paths every other method is the router's 404 or
///    405, so a route on a known path added beside the table shows up;
/// 4. no source file of the server builds a path filter of its own
///    (`warp::path!`, or `warp::path(…)` outside `routes.rs`'s helpers), so a
///    route on a new path cannot bypass the table either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_names_exactly_the_routes_the_router_serves() {
    let doc = openapi_document();
    let table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(table.len(), ROUTES.len(), "ROUTES has a duplicate");
    let in_doc = documented(&doc);
    let undocumented: Vec<_> = table.difference(&in_doc).collect();
    let unserved: Vec<_> = in_doc.difference(&table).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "routes missing from the document: {undocumented:?}; documented but not routed: {unserved:?}"
    );

    let r = routes();
    let methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];
    let paths: BTreeSet<&str> = ROUTES.iter().map(|(_, p)| *p).collect();
    for template in paths {
        let path = concrete(template);
        for method in methods {
            let routed = table.contains(&(method.to_string(), template.to_string()));
            let refused = router_refuses(&r, method, &path).await;
            assert_eq!(
                routed,
                !refused,
                "{method} {path}: in ROUTES: {routed}; the router {}",
                if refused { "refuses it" } else { "serves it" }
            );
        }
    }

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/server");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        for (no, line) in text.lines().enumerate() {
            let own_filter = line.contains("warp::path!")
                || (name != "routes.rs"
                    && ["warp::path(", "warp::path::param", "warp::path::end"]
                        .iter()
                        .any(|f| line.contains(f)));
            assert!(
                !own_filter,
                "src/server/{name}:{}: a path filter outside ROUTES: {line}",
                no + 1
            );
        }
    }
}

/// Every value of `v` under the key `$ref`.
/// Every `oneOf` whose alternatives are all inline objects.
fn one_of_objects<'a>(v: &'a Value, out: &mut Vec<&'a Vec<Value>>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(alts)) = m.get("oneOf")
                && alts.iter().all(|a| a["type"] == "object")
            {
                out.push(alts);
            }
            m.values().for_each(|x| one_of_objects(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| one_of_objects(x, out)),
        _ => {}
    }
}

fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    out.push(x.as_str().expect("a $ref is a string"));
                } else {
                    refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// The document is well-formed OpenAPI 3.1 as far as a tool that reads it
/// cares: version, every `$ref` resolves, every operation has a unique id,
/// its path parameters and a success answer, every 4xx and 5xx answer is
/// the JSON error shape, and the routes that need a key say so through the
/// two security schemes (the headers `access` reads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_openapi_3_1_with_the_error_shape_and_both_key_headers() {
    let r = routes();
    let resp = warp::test::request()
        .path("/openapi.json")
        .reply(&r.routes)
        .await;
    assert_eq!(resp.status(), StatusCode::OK, "public: no key needed");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let doc: Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!(doc, openapi_document());

    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    // A `oneOf` of objects tells its alternatives apart: each requires a
    // property that every other alternative either does not require or
    // fixes to another `const` (a value valid under two alternatives breaks
    // `oneOf`: the fuzzer found the append answer's `{"ids":[..]}` valid
    // under `{"id"?}` too).
    let mut one_ofs = Vec::new();
    one_of_objects(&doc, &mut one_ofs);
    assert!(!one_ofs.is_empty());
    for alts in one_ofs {
        let required = |a: &Value| -> Vec<String> {
            a["required"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        for (i, a) in alts.iter().enumerate() {
            let told_apart = required(a).iter().any(|p| {
                alts.iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .all(|(_, b)| {
                        !required(b).contains(p)
                            || (!a["properties"][p]["const"].is_null()
                                && !b["properties"][p]["const"].is_null()
                                && a["properties"][p]["const"] != b["properties"][p]["const"])
                    })
            });
            assert!(
                told_apart,
                "a oneOf alternative is not told apart: {alts:?}"
            );
        }
    }
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 20, "{} $refs", all.len());
    for r in all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{r}: not local"));
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }

    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["type"], "apiKey");
    assert_eq!(schemes["api_key"]["in"], "header");
    assert_eq!(schemes["api_key"]["name"], "X-API-Key");
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");

    let public = ["/", "/ui/{file}", "/health", "/metrics", "/openapi.json"];
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let at = format!("{method} {path}");
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{at}"));
            assert!(ids.insert(id.to_string()), "{at}: operationId {id} twice");
            // Path parameters: each declared, required.
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            for name in path
                .split('{')
                .skip(1)
                .map(|s| s.split('}').next().unwrap())
            {
                assert!(
                    params
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true),
                    "{at}: path parameter {name} not declared"
                );
            }
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{at}: no success answer"
            );
            for (status, resp) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        resp["content"]["application/json"]["schema"]["allOf"][0]["$ref"],
                        "#/components/schemas/Error",
                        "{at} {status}: not the error shape"
                    );
                }
            }
            // Every route answers 500 `internal` and 503 `timeout`.
            assert!(
                responses.contains_key("500") && responses.contains_key("503"),
                "{at}"
            );
            if public.contains(&path.as_str()) {
                assert!(op.get("security").is_none(), "{at}: public, yet keyed");
            } else {
                assert_eq!(
                    op["security"],
                    serde_json::json!([{"api_key": []}, {"bearer": []}]),
                    "{at}"
                );
                for s in ["401", "403"] {
                    assert!(responses.contains_key(s), "{at}: keyed, no {s}");
                }
            }
        }
    }
    // The error shape itself.
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], serde_json::json!(["error"]));
    let detail = doc
        .pointer(
            error["properties"]["error"]["$ref"]
                .as_str()
                .unwrap()
                .strip_prefix('#')
                .unwrap(),
        )
        .unwrap();
    assert_eq!(detail["required"], serde_json::json!(["code", "message"]));
}

/// README's route table lists exactly the routes (so it documents `GET
/// /openapi.json` too).
#[test]
fn readme_route_table_lists_every_route() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("\n## HTTP API\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has an HTTP API section");
    let mut listed = BTreeSet::new();
    for line in section.lines().skip_while(|l| !l.starts_with("| method |")) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split(" | ").collect();
        let method = cells[0].trim_start_matches('|').trim();
        if !["GET", "POST"].contains(&method) {
            continue;
        }
        for path in cells[1].split('`').skip(1).step_by(2) {
            let path = path.split('?').next().unwrap();
            listed.insert((method.to_string(), path.to_string()));
        }
    }
    let table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(listed, table, "README's route table vs the router");
    assert!(section.contains("/openapi.json"));
}

/// Schemathesis found it: a 405 had no `Allow` header (RFC 9110 requires
/// one). Now it lists the methods the path takes, from the route table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_405_names_the_methods_the_path_takes() {
    let r = routes();
    let paths: BTreeSet<&str> = ROUTES.iter().map(|(_, p)| *p).collect();
    for template in paths {
        let path = concrete(template);
        let resp = warp::test::request()
            .method("TRACE")
            .path(&path)
            .reply(&r.routes)
            .await;
        assert_eq!(
            resp.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "TRACE {path}"
        );
        let mut want: Vec<&str> = ROUTES
            .iter()
            .filter(|(_, p)| *p == template)
            .map(|(m, _)| *m)
            .collect();
        want.sort_unstable();
        assert_eq!(
            resp.headers().get("allow").map(|v| v.to_str().unwrap()),
            Some(want.join(", ").as_str()),
            "TRACE {path}"
        );
    }
}
