//! Helpers shared by the bench targets: a simple event, the directory
//! benchmark data goes to, and (in submodules) options, figures, what /proc
//! tells, the realistic event generator and its store, the query kinds,
//! closed-loop load, a running `evlog serve` and SQLite as a durable peer.
//!
//! Each bench target compiles this module on its own and uses only part of it.
#![allow(dead_code)]

pub mod disk;
pub mod flags;
pub mod kinds;
pub mod load;
pub mod proc;
pub mod realistic;
pub mod report;
pub mod serve;
pub mod sqlite;

use std::path::PathBuf;

use evlog::{Event, EventType, Level, Status};
use serde_json::json;

/// API paths; [`event`] uses the first 8, the realistic generator all of them.
const PATHS: [&str; 10] = [
    "/v1/things",
    "/v1/things/8812",
    "/v1/orders",
    "/v1/orders/551/items",
    "/v1/users/me",
    "/v1/search",
    "/v1/invoices/2026-11",
    "/v1/health",
    "/v2/reports/daily",
    "/v2/exports",
];
const METHODS: [&str; 4] = ["GET", "GET", "POST", "PUT"];

/// A realistic API-request event, varied by `i`. Stored (with the `id`,
/// `timestamp`, `seq` and `hash` the store adds) it is a line of about 370 bytes:
///
/// ```text
/// {"id":"…","timestamp":"…","event_type":"api_request","user_id":"user-42",
///  "action_description":"GET /v1/things","status":"success","level":"info",
///  "metadata":{"method":"GET","path":"/v1/things","status_code":200},
///  "source_ip":"10.0.0.42","seq":…,"hash":"…"}
/// ```
pub fn event(i: u64) -> Event {
    let method = METHODS[(i % 4) as usize];
    let path = PATHS[(i % 8) as usize];
    let ok = !i.is_multiple_of(50);
    Event::new(
        EventType::ApiRequest,
        format!("user-{}", i % 10_000),
        format!("{method} {path}"),
    )
    .status(if ok { Status::Success } else { Status::Failure })
    .level(if ok { Level::Info } else { Level::Error })
    .source_ip(format!(
        "10.{}.{}.{}",
        (i >> 16) & 255,
        (i >> 8) & 255,
        i & 255
    ))
    .metadata(json!({
        "method": method,
        "path": path,
        "status_code": if ok { 200 } else { 503 },
    }))
}

/// Where benchmark data goes: `$EVLOG_BENCH_DIR`, else `/tmp`. It must be a
/// real disk, not tmpfs, or fsync costs nothing and the figures mean nothing.
pub fn bench_base_dir() -> PathBuf {
    let dir = std::env::var_os("EVLOG_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    std::fs::create_dir_all(&dir).expect("creating the bench directory");
    dir
}

/// A fresh temporary directory under [`bench_base_dir`], removed on drop.
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(bench_base_dir())
        .expect("creating a temporary directory")
}
