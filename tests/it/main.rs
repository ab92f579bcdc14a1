//! Integration tests: one binary (`cargo test --test it`), one module per area.

mod util;

/// Signed checkpoints: tampering after a checkpoint is named by verify.
mod checkpoint;
/// The `evlog` binary: flags, stdin import, cat, verify, help, exit codes.
mod cli;
/// The clock-step model of the model tests (shared helper).
mod clock_model;
/// The web console in headless Chromium (WebDriver) against `evlog serve`.
mod console;
/// SIGKILLed appenders lose no acknowledged event.
mod crash;
/// Storage faults (disk full, failed fsync, read-only), the index deleted
/// or outdated, the clock stepping back: clear errors, nothing acknowledged lost.
mod faults;
/// The committed on-disk format v1 fixtures.
mod fixtures;
/// Regression tests for what the fuzz targets found.
mod fuzz_regressions;
/// Hostile key-holders against `evlog serve` (issue 12, items 3 and 5):
/// bodies that never finish, duplicate ids, other users' ids, forged
/// provenance and reserved users.
mod hostile_ingest;
/// Hostile key-holders against exports and live streams: stalled readers,
/// hundreds of exports from one user, revoked, expired and changed keys, a
/// broken keys file.
mod hostile_streams;
/// HTTP routes with `warp::test`: access matrix, validation, error shape.
mod http;
/// Hostile HTTP against `evlog serve`: big bodies and heads, deep nesting,
/// bad UTF-8, slow and idle clients, traversal strings in every parameter.
mod http_abuse;
/// `evlog serve` over a socket: keys, live stream, export, SIGTERM under load.
mod http_e2e;
mod index;
/// SIGKILLed `evlog index` processes index every line exactly once.
mod index_crash;
/// Random appends, clock moves, indexer restarts and queries against a scan.
mod index_model;
/// Index regression tests named after what broke.
mod index_regressions;
/// Full text by hand-picked cases.
mod index_text;
/// A user never sees another's events on any route (plain and hashed user
/// ids); keys never logged, stored or shown again; file and directory modes.
mod isolation;
/// Random action sequences against a model of the log.
mod model;
/// Several processes appending to one store at once.
mod multiprocess;
/// Real `nats-server` processes (single and three-node cluster).
mod nats;
/// The OpenAPI document: exactly the router's routes, well-formed 3.1,
/// README's route table.
mod openapi;
/// Purge with counts and the open-day rule: library, HTTP, CLI, catch-up.
mod purge;
/// Hostile payloads and floods aimed at the log's readers (issue 12):
/// CSV formulas, terminal escapes, denial floods, key-change events, replay.
mod readers;
/// Regression tests named after what broke.
mod regressions;
/// Replication through a real NATS JetStream: edges publish, followers copy
/// exactly once, through NATS, edge and follower kills (issue 16).
mod replication;
/// Resolve and reopen over HTTP and in the CLI: routes, filters, derived fields.
mod resolve;
/// Model test of the resolved state: latest wins, through crashes and reindexes.
mod resolve_model;
/// Rotation and retention: dry runs, injected ages, crashes between steps, HTTP and CLI.
mod rotate;
/// A running `evlog serve` with its output captured (shared helper).
mod serve;
