//! Entry points for the cargo-fuzz targets in `fuzz/` (not a public API).
//!
//! The targets need what the server does with untrusted bytes: request
//! bodies → events (`ingest`) and query strings → filters (`params`). Both
//! modules stay private; these wrappers expose them with the server's
//! default limits and plain results.

use super::Limits;
use super::ingest::{self, Framing};
use super::params::{self, FILTERS, PAGING};
use crate::event::Event;
use crate::export::Format;
use crate::index::Query;

/// A request body of `POST /events` parsed and validated as the handler
/// does (default [`Limits`]): the events, or the status and message of the
/// error answer.
pub fn ingest_body(body: &[u8], ndjson: bool) -> Result<Vec<Event>, (u16, String)> {
    let framing = if ndjson {
        Framing::Ndjson
    } else {
        Framing::Json
    };
    let mut events = Vec::new();
    ingest::parse(framing, body, &Limits::default(), |_, e, _| {
        events.push(e);
        Ok(())
    })
    .map(|_| events)
    .map_err(|e| (e.status.as_u16(), e.message))
}

/// Which endpoint's parameters a query string is parsed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /events`: filters and paging.
    Query,
    /// `GET /events/stats` and `/events/stream`: filters.
    Stats,
    /// `GET /events/export`: filters and `format`.
    Export,
    /// `GET /events/{id}` and `/events/types`: none.
    None,
}

/// The query string `raw` parsed for `endpoint` as the handlers do: the
/// filters (and export format), or the status and message of the error.
pub fn query_string(
    raw: &str,
    endpoint: Endpoint,
) -> Result<(Query, Option<Format>), (u16, String)> {
    let (groups, with_format): (&[&[&str]], bool) = match endpoint {
        Endpoint::Query => (&[FILTERS, PAGING], false),
        Endpoint::Stats => (&[FILTERS], false),
        Endpoint::Export => (&[FILTERS], true),
        Endpoint::None => (&[], false),
    };
    params::parse(raw, groups, with_format)
        .map(|p| (p.query, p.format))
        .map_err(|e| (e.status.as_u16(), e.message))
}
