//! The realistic event generator of the index and peers benches: 22 event
//! types with skewed weights, skewed users, metadata, files, durations and
//! request ids (a stored line is about 370 bytes on average), and a store of
//! N of them spread over whole days, indexed as a server indexes it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use evlog::index::{IndexConfig, IndexerHandle};
use evlog::{Config, Durability, Event, EventLog, EventType, Level, ManualClock, Status};
use serde_json::json;

use super::PATHS;

/// splitmix64: a deterministic stream of pseudo-random numbers from a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len() as u64) as usize]
    }
}

/// Event types and their weights (per mille).
const TYPES: &[(&str, u64)] = &[
    ("api_request", 280),
    ("api_response", 180),
    ("api_error", 20),
    ("commit", 80),
    ("push", 30),
    ("pull_request", 30),
    ("merge", 20),
    ("file_change", 80),
    ("file_create", 20),
    ("file_delete", 10),
    ("comment", 30),
    ("review", 20),
    ("auth_login", 50),
    ("auth_logout", 30),
    ("auth_failure", 10),
    ("auth_api_key", 10),
    ("clone", 10),
    ("fetch", 20),
    ("system_config", 10),
    ("system_start", 5),
    ("system_stop", 5),
    ("deploy.finished", 50),
];
const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE"];
const REGIONS: &[&str] = &["eu-west-1", "us-east-1", "us-west-2", "ap-south-1"];
const REPOS: &[&str] = &[
    "evlog",
    "billing-api",
    "web-frontend",
    "infra-terraform",
    "mobile-app",
    "data-pipeline",
];
const BRANCHES: &[&str] = &[
    "main",
    "main",
    "develop",
    "release/2.4",
    "feature/search-cursor",
    "fix/upload-timeout",
];
const FILES: &[&str] = &[
    "src/lib.rs",
    "src/main.rs",
    "src/index/query.rs",
    "src/index/indexer.rs",
    "src/store/writer.rs",
    "src/api/handlers.rs",
    "src/api/auth.rs",
    "Cargo.toml",
    "Cargo.lock",
    "README.md",
    "tests/it/cli.rs",
    "web/src/App.tsx",
    "web/src/components/Table.tsx",
    "web/package.json",
    "infra/main.tf",
    "infra/modules/db/variables.tf",
    ".github/workflows/ci.yml",
    "docs/ARCHITECTURE.md",
    "migrations/0042_add_index.sql",
    "pipeline/jobs/daily_export.py",
];
const MESSAGES: &[&str] = &[
    "Fix timeout in uploader retry loop",
    "Add cursor paging to search",
    "Bump dependencies",
    "Refactor auth middleware",
    "Handle empty batch in exporter",
    "Fix flaky integration test",
    "Add migration for orders index",
    "Rollback cache warmup change",
    "Speed up daily report query",
    "Fix deadlock in connection pool",
    "Document retention settings",
    "Tune writer memory budget",
];
const COMMENTS: &[&str] = &[
    "flaky test retried twice",
    "looks good, ship it",
    "needs a rollback plan",
    "client saw a timeout after 30s",
    "duplicate of the earlier incident",
    "waiting on review from the db team",
    "deadlock reproduced locally",
    "customer reported slow exports",
];
const SERVICES: &[&str] = &["api", "worker", "scheduler", "gateway", "exporter"];
const PROVIDERS: &[&str] = &["sso", "password", "github", "saml"];
const CLIENTS: &[&str] = &["cli/1.4.2", "web/2026.11", "ios/5.2.0", "android/5.1.9"];
const VERSIONS: &[&str] = &["2.4.0", "2.4.1", "2.5.0-rc.1", "2.3.9"];

/// Half of the events come from 200 busy users, the rest from 10,000.
fn user(r: &mut Rng) -> String {
    if r.below(2) == 0 {
        format!("user-{}", r.below(200))
    } else {
        format!("user-{}", r.below(10_000))
    }
}

/// Realistic event number `i`: 22 types (one custom), skewed users, four
/// statuses, metadata with strings, files on code events, durations,
/// request ids and client addresses on request-like events. Stored with the
/// fields the store adds, a line is about 370 bytes on average.
pub fn make_event(i: u64) -> Event {
    let mut r = Rng::new(i);
    let mut w = r.below(1000);
    let ty = TYPES
        .iter()
        .find(|(_, p)| {
            if w < *p {
                true
            } else {
                w -= p;
                false
            }
        })
        .map_or("api_request", |(t, _)| *t);
    let user = user(&mut r);
    let status = match r.below(1000) {
        0..880 => Status::Success,
        880..950 => Status::Failure,
        950..975 => Status::Pending,
        _ => Status::InProgress,
    };
    let mut level = match status {
        Status::Failure => Level::Error,
        _ if r.below(100) < 3 => Level::Warning,
        _ => Level::Info,
    };
    let ip = |r: &mut Rng| format!("10.{}.{}.{}", r.below(32), r.below(256), r.below(256));
    let req = |r: &mut Rng| format!("req-{:012x}", r.next() >> 16);
    let mut e = match ty {
        "api_request" => {
            let (m, p) = (r.pick(METHODS), r.pick(&PATHS));
            Event::new(EventType::ApiRequest, user, format!("{m} {p}"))
                .metadata(json!({"path": p, "region": r.pick(REGIONS)}))
                .request_id(req(&mut r))
        }
        "api_response" | "api_error" => {
            let (m, p) = (r.pick(METHODS), r.pick(&PATHS));
            let code = match status {
                Status::Failure => [500, 503, 404, 429][r.below(4) as usize],
                _ => 200,
            };
            let d = (r.below(20_000) as f64) / 100.0 + 0.5;
            Event::new(EventType::parse(ty), user, format!("{m} {p}"))
                .metadata(json!({"status_code": code}))
                .request_id(req(&mut r))
                .duration_ms(d)
        }
        "commit" | "push" | "merge" | "pull_request" => {
            let files: Vec<&str> = (0..1 + r.below(2)).map(|_| r.pick(FILES)).collect();
            let e = Event::new(EventType::parse(ty), user, r.pick(MESSAGES))
                .files_changed(files)
                .metadata(json!({
                    "repo": r.pick(REPOS), "branch": r.pick(BRANCHES),
                    "sha": format!("{:07x}", r.below(1 << 28)),
                }));
            if ty == "push" || ty == "merge" {
                e.duration_ms(r.below(5_000) as f64 + 40.0)
            } else {
                e
            }
        }
        "file_change" | "file_create" | "file_delete" => {
            let f = r.pick(FILES);
            let verb = match ty {
                "file_change" => "Edited",
                "file_create" => "Created",
                _ => "Deleted",
            };
            let editor = ["vscode", "vim", "idea"][r.below(3) as usize];
            Event::new(EventType::parse(ty), user, format!("{verb} {f}"))
                .files_changed([f])
                .metadata(json!({"repo": r.pick(REPOS), "editor": editor}))
        }
        "comment" | "review" => {
            let pr = 100 + r.below(4000);
            let desc = if ty == "comment" {
                format!("Commented on PR #{pr}")
            } else {
                format!("Reviewed PR #{pr}")
            };
            Event::new(EventType::parse(ty), user, desc)
                .comments(r.pick(COMMENTS))
                .metadata(json!({"repo": r.pick(REPOS), "pr": pr}))
        }
        "auth_login" | "auth_logout" | "auth_failure" | "auth_api_key" => {
            if ty == "auth_failure" {
                level = Level::Security;
            }
            let p = r.pick(PROVIDERS);
            Event::new(EventType::parse(ty), user, format!("{ty} via {p}"))
                .metadata(json!({"provider": p, "client": r.pick(CLIENTS)}))
                .source_ip(ip(&mut r))
        }
        "clone" | "fetch" => {
            let repo = r.pick(REPOS);
            Event::new(EventType::parse(ty), user, format!("{ty} {repo}"))
                .metadata(json!({"repo": repo, "remote": "origin", "client": r.pick(CLIENTS)}))
                .duration_ms(r.below(20_000) as f64 + 100.0)
        }
        "deploy.finished" => {
            let (s, v) = (r.pick(SERVICES), r.pick(VERSIONS));
            let env = ["production", "staging"][r.below(2) as usize];
            Event::new(
                EventType::parse(ty),
                user,
                format!("Deployed {s} {v} to {env}"),
            )
            .metadata(json!({"service": s, "version": v, "env": env, "region": r.pick(REGIONS)}))
            .duration_ms(r.below(300_000) as f64 + 1000.0)
        }
        _ => {
            let (s, v) = (r.pick(SERVICES), r.pick(VERSIONS));
            Event::new(EventType::parse(ty), user, format!("{ty} {s} {v}")).metadata(
                json!({"service": s, "version": v, "host": format!("node-{}", r.below(40))}),
            )
        }
    };
    if r.below(100) < 5 && e.comments.is_none() {
        e = e.comments(r.pick(COMMENTS));
    }
    e.status(status).level(level)
}

pub fn midnight(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"))
}

/// The `days` days ending yesterday (the system clock's), oldest first.
pub fn past_days(days: u64) -> Vec<NaiveDate> {
    let last = Utc::now().date_naive() - chrono::Duration::days(1);
    (0..days)
        .rev()
        .map(|k| last - chrono::Duration::days(k as i64))
        .collect()
}

/// The user who resolves events in the generated stores.
pub const RESOLVER: &str = "admin-1";

/// The resolution (`event_resolved`) of `target`, by [`RESOLVER`], as
/// `evlog::resolution::resolution_event` makes it.
fn resolution(target: uuid::Uuid) -> Event {
    evlog::resolution::resolution_event(evlog::resolution::Action::Resolve, target, RESOLVER, None)
}

/// Whether the generated stores resolve event `i` (of level `level`): 1%
/// of the `warning`, `error` and `security` events.
fn resolves(i: u64, level: Level) -> bool {
    matches!(level, Level::Warning | Level::Error | Level::Security)
        && Rng::new(i ^ 0x005E_ED0F_2E50_17ED).below(100) == 0
}

/// Appends `total` events spread evenly over `days` (one day file each, event
/// times spread over the day in order), under `Durability::None`, with a
/// `ManualClock` set to each day. Returns seconds taken.
pub fn build_store(dir: &Path, total: u64, days: &[NaiveDate]) -> f64 {
    build_store_resolving(dir, total, days, false).0
}

/// [`build_store`], and with `resolve`, after each batch of 10,000 events
/// the resolutions of 1% of its `warning`+ events (about 0.1% of the
/// events), in the same day and at the same time as the batch's last event.
/// Returns seconds taken and the number of resolutions appended.
pub fn build_store_resolving(
    dir: &Path,
    total: u64,
    days: &[NaiveDate],
    resolve: bool,
) -> (f64, u64) {
    let t0 = Instant::now();
    let clock = Arc::new(ManualClock::new(midnight(days[0])));
    let log = EventLog::open(
        Config::new(dir)
            .durability(Durability::None)
            .clock(clock.clone()),
    )
    .expect("opening the store");
    // A second thread builds the events while this one prepares and submits them.
    // (day index, events, positions of the events to resolve)
    type Batch = (usize, Vec<Event>, Vec<usize>);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Option<Batch>>(4);
    let days_v = days.to_vec();
    let n_days = days.len() as u64;
    let producer = std::thread::spawn(move || {
        let mut i = 0u64;
        for (d, day) in days_v.iter().enumerate() {
            let per_day = total / n_days + u64::from((d as u64) < total % n_days);
            let start = midnight(*day);
            let mut j = 0u64;
            while j < per_day {
                let k = (per_day - j).min(10_000);
                let batch: Vec<Event> = (j..j + k)
                    .map(|jj| {
                        let us = (jj as u128 * 86_400_000_000u128 / per_day as u128) as i64;
                        let e = make_event(i + jj - j);
                        e.timestamp(start + chrono::Duration::microseconds(us))
                    })
                    .collect();
                let picked: Vec<usize> = if resolve {
                    (0..batch.len())
                        .filter(|&p| resolves(i + p as u64, batch[p].level))
                        .collect()
                } else {
                    Vec::new()
                };
                i += k;
                j += k;
                if tx.send(Some((d, batch, picked))).is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(None);
    });
    let mut resolutions = 0u64;
    while let Ok(Some((d, batch, picked))) = rx.recv() {
        clock.set(midnight(days[d]) + chrono::Duration::hours(12));
        let last = batch.last().and_then(|e| e.timestamp);
        let ids = log.append_batch(batch).expect("append_batch");
        if !picked.is_empty() {
            let res: Vec<Event> = picked
                .iter()
                .map(|&p| {
                    let e = resolution(ids[p]);
                    match last {
                        Some(t) => e.timestamp(t),
                        None => e,
                    }
                })
                .collect();
            resolutions += res.len() as u64;
            log.append_batch(res).expect("append_batch (resolutions)");
        }
    }
    producer.join().expect("producer");
    log.flush().expect("flush");
    drop(log);
    (t0.elapsed().as_secs_f64(), resolutions)
}

/// Indexes the store at `dir` of `total` events with the real run loop
/// (`IndexerHandle`, merges included) and waits until every event is
/// committed; panics after `hours`. Returns the running indexer (whose
/// shutdown waits for the merges) and the seconds taken.
pub fn index_store(dir: &Path, total: u64, hours: u64) -> (IndexerHandle, f64) {
    let t0 = Instant::now();
    let handle = IndexerHandle::spawn(IndexConfig::new(dir)).expect("spawn the indexer");
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let s = handle.stats();
        if s.commits.load(Ordering::Relaxed) > 0 && s.indexed.load(Ordering::Relaxed) >= total {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(hours * 3600),
            "indexing the query store did not finish in {hours} h"
        );
    }
    (handle, t0.elapsed().as_secs_f64())
}
