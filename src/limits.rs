//! The server's request limits (`[server.limits]` of the config file): a
//! plain settings type below both the configuration and the server, so that
//! resolving the configuration never reaches into the server.

use std::time::Duration;

use serde::Deserialize;

/// Request limits (`[server.limits]` of the config file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body, in bytes (413 `body_too_large`).
    pub max_body_bytes: usize,
    /// Largest single event, in bytes of JSON (413 `event_too_large`).
    pub max_event_bytes: usize,
    /// Most events in one request (413 `batch_too_large`).
    pub max_batch_events: usize,
    /// Deepest nesting of objects and arrays in one event (400 `invalid_body`).
    pub max_json_depth: usize,
    /// Largest request head (request line and headers), in bytes; at least
    /// 8192. A larger head is refused by the HTTP layer with 431.
    pub max_header_bytes: usize,
    /// Time for a client to send the request head, in milliseconds.
    pub header_timeout_ms: u64,
    /// Time for a request body to arrive (else 408 `request_timeout`); a
    /// response must start within twice this (else 503 `timeout`).
    pub request_timeout_ms: u64,
    /// Append requests being written at once; more get 503 `overloaded`
    /// with `Retry-After`. An append takes its slot before it reads its body.
    pub max_pending_appends: usize,
    /// Denials recorded one by one per source (without a valid key: IPv4
    /// address, IPv6 /64; with one: the key) and minute (a token bucket of
    /// this size); the rest are counted into summary events. 0: summaries
    /// only.
    pub auth_failures_per_minute: u32,
    /// Seconds between two summary `auth_failure` events of one source
    /// (each carrying the count of the denials not recorded one by one).
    pub auth_failure_summary_secs: u64,
    /// Addresses whose denials are tracked at once; beyond, the one tracked
    /// longest is forgotten (its count goes to a summary of forgotten
    /// sources), and new ones share one budget of `auth_failures_per_minute`.
    pub auth_failure_sources: usize,
    /// A response write that makes no progress for this long, in
    /// milliseconds, closes the connection: a client that stops reading an
    /// export or a live stream (or any answer) holds nothing longer.
    pub write_timeout_ms: u64,
    /// Live streams and exports open at once per key; more get 429
    /// `too_many_streams` with `Retry-After`.
    pub max_streams_per_key: usize,
    /// Request-body bytes that appends in flight may hold together (at
    /// least `max_body_bytes`): each takes its share (its `Content-Length`,
    /// or its buffer as a chunked body grows) before reading, and keeps it
    /// until answered; beyond, 503 `overloaded` with `Retry-After`.
    pub max_buffered_body_bytes: usize,
    /// Appends in flight of one key (at most `max_pending_appends`); more
    /// get 503 `overloaded` with `Retry-After`.
    pub max_pending_appends_per_key: usize,
    /// Request-body bytes the appends in flight of one key may hold (at
    /// least `max_body_bytes`, at most `max_buffered_body_bytes`); beyond,
    /// 503 `overloaded` with `Retry-After`.
    pub max_buffered_body_bytes_per_key: usize,
    /// Requests per second of one admin key (a token bucket per key, refilled
    /// at this rate); beyond, 429 `rate_limited` with `Retry-After`. 0: off.
    pub rate_admin_per_sec: u32,
    /// Size of an admin key's bucket (requests at once); 0: `rate_admin_per_sec`.
    pub rate_admin_burst: u32,
    /// Requests per second of one user key; 0: off.
    pub rate_user_per_sec: u32,
    /// Size of a user key's bucket; 0: `rate_user_per_sec`.
    pub rate_user_burst: u32,
    /// Requests per second of one service key; 0: off.
    pub rate_service_per_sec: u32,
    /// Size of a service key's bucket; 0: `rate_service_per_sec`.
    pub rate_service_burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 10 << 20,
            max_event_bytes: 64 << 10,
            max_batch_events: 10_000,
            max_json_depth: 32,
            max_header_bytes: 16 << 10,
            header_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            max_pending_appends: 512,
            auth_failures_per_minute: 10,
            auth_failure_summary_secs: 60,
            auth_failure_sources: 10_000,
            write_timeout_ms: 30_000,
            max_streams_per_key: 4,
            max_buffered_body_bytes: 64 << 20,
            max_pending_appends_per_key: 128,
            max_buffered_body_bytes_per_key: 32 << 20,
            rate_admin_per_sec: 0,
            rate_admin_burst: 0,
            rate_user_per_sec: 100,
            rate_user_burst: 1000,
            rate_service_per_sec: 0,
            rate_service_burst: 0,
        }
    }
}

impl Limits {
    /// `request_timeout_ms` as a duration (at least 1 ms).
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }

    /// `write_timeout_ms` as a duration (at least 1 ms).
    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms.max(1))
    }
}
