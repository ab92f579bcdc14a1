//! Query strings → [`Query`]: the parameters of `evlog query` under the same
//! names. Every value is checked and a mistake names the parameter; unknown
//! and repeated parameters are mistakes too (only `event_type` repeats).

use crate::event::{
    DEFAULT_TENANT, Level, MAX_SOURCE_CHARS, MAX_USER_ID_CHARS, Status, TENANT_RULE,
    is_valid_tenant, parse_timestamp,
};
use crate::export::Format;
use crate::index::Query;

use super::reject::ApiError;

/// The filters every read endpoint takes.
pub(crate) const FILTERS: &[&str] = &[
    "date",
    "start",
    "end",
    "event_type",
    "status",
    "level",
    "user_id",
    "request_id",
    "source",
    "resolved",
    "tenant",
    "q",
];
/// The one filter of `GET /events/types` (its counts are per tenant).
pub(crate) const TENANT: &[&str] = &["tenant"];
/// Paging of `GET /events`.
pub(crate) const PAGING: &[&str] = &["limit", "offset", "cursor"];

/// Longest `q`, in characters.
pub(crate) const MAX_Q_CHARS: usize = 1024;
/// Largest `offset` (deeper pages: use `cursor`).
pub(crate) const MAX_OFFSET: usize = 100_000;

/// The [`FILTERS`] as the OpenAPI document lists them (a test checks the
/// names match): only their documentation, never built.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct Filters {
    /// A day (UTC). Without `date`, `start` or `end`: today on `/events`,
    /// `/events/stats` and `/events/export` (the day the export started),
    /// all time on `/events/stream`.
    #[param(format = Date, example = "2026-11-23")]
    date: Option<String>,
    /// From this time on (RFC 3339, inclusive).
    #[param(format = DateTime)]
    start: Option<String>,
    /// Before this time (RFC 3339, exclusive); after `start`.
    #[param(format = DateTime)]
    end: Option<String>,
    /// Event types (repeat the parameter for several: any of them).
    #[param(value_type = Option<Vec<crate::event::EventType>>, style = Form, explode)]
    event_type: Option<Vec<String>>,
    /// Outcome.
    status: Option<Status>,
    /// Severity.
    level: Option<Level>,
    /// Events of this user (a user key: only its own).
    #[param(min_length = 1, max_length = 256)]
    user_id: Option<String>,
    /// Events of this request id.
    #[param(min_length = 1, max_length = 256)]
    request_id: Option<String>,
    /// Events of this emitting service (`api-service`, `background-job`).
    #[param(min_length = 1, max_length = 128)]
    source: Option<String>,
    /// `true`: resolved events only; `false`: open ones only (see `POST
    /// /events/{id}/resolve`).
    resolved: Option<bool>,
    /// Events of this tenant (`_`: the default tenant's). Only an
    /// all-tenants admin key may name another tenant than its own; without
    /// it, such a key reads every tenant and any other key its own.
    #[param(pattern = "^(_|[a-z0-9][a-z0-9_-]{0,62})$")]
    tenant: Option<String>,
    /// Full text over the description, comments, files and metadata (at
    /// most 1024 characters; punctuation alone is refused).
    #[param(max_length = 1024)]
    q: Option<String>,
}

/// The [`PAGING`] parameters of `GET /events`, as the OpenAPI document
/// lists them.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct Paging {
    /// Events per page (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Events to skip (deeper pages: `cursor`).
    #[param(minimum = 0, maximum = 100_000)]
    offset: Option<u32>,
    /// The `next_cursor` of the previous page, with the same filters.
    cursor: Option<String>,
}

/// The `format` of `GET /events/export`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct ExportFormat {
    /// `ndjson` (the default: one stored event per line) or `csv` (the
    /// columns of `evlog query --format csv`).
    #[param(value_type = Option<String>, pattern = "^(csv|ndjson)$")]
    format: Option<String>,
}

/// A parsed query string.
#[derive(Debug, Default)]
pub(crate) struct Params {
    /// The filters and paging.
    pub query: Query,
    /// `format` of `/events/export`.
    pub format: Option<Format>,
}

/// Parses `raw` allowing the parameters of `groups` (plus `format` when
/// `with_format`), then validates the query as a whole.
pub(crate) fn parse(raw: &str, groups: &[&[&str]], with_format: bool) -> Result<Params, ApiError> {
    let mut p = Params::default();
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in pairs(raw)? {
        let known = groups.iter().any(|g| g.contains(&&*name)) || (with_format && name == "format");
        if !known {
            let mut allowed: Vec<&str> = groups.iter().flat_map(|g| g.iter().copied()).collect();
            if with_format {
                allowed.push("format");
            }
            let takes = if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            };
            return Err(param_error(
                &name,
                format!("unknown parameter; this endpoint takes {takes}"),
            ));
        }
        if name != "event_type" {
            if seen.contains(&name) {
                return Err(ApiError::param(&name, "given more than once"));
            }
            seen.push(name.clone());
        }
        set(&mut p, &name, &value)?;
    }
    p.query.validate()?;
    Ok(p)
}

/// The `name=value` pairs of a query string (`&`-separated, `+` for a
/// space, `%XX` escapes), decoded. A pair without a name, or a name or value
/// that does not decode to UTF-8, is an error that says which and where
/// (form decoding would quietly put U+FFFD in its place).
pub(crate) fn pairs(raw: &str) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(n).map_err(|at| {
            ApiError::param(
                "query string",
                format!(
                    "the parameter name `{n}` is not UTF-8 once decoded (bad byte at offset {at})"
                ),
            )
        })?;
        if name.is_empty() {
            return Err(ApiError::param(
                "query string",
                format!("`{pair}` has no parameter name (want name=value)"),
            ));
        }
        let value = decode(v).map_err(|at| {
            param_error(
                &name,
                format!("the value is not UTF-8 once decoded (bad byte at offset {at})"),
            )
        })?;
        out.push((name, value));
    }
    Ok(out)
}

/// An error about parameter `name`, named as it is when it is a plain word,
/// else quoted (`query string: parameter `: `: …`), so that a name such as
/// `: ` or a control character cannot make the message unreadable.
fn param_error(name: &str, message: impl std::fmt::Display) -> ApiError {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if plain {
        ApiError::param(name, message)
    } else {
        ApiError::param(
            "query string",
            format!("parameter `{}`: {message}", name.escape_debug()),
        )
    }
}

/// Decodes `+` and `%XX` (a `%` not followed by two hex digits stays as it
/// is); `Err` holds the offset in `s` of the first byte (or escape) that is
/// not UTF-8.
fn decode(s: &str) -> Result<String, usize> {
    let b = s.as_bytes();
    if !b.iter().any(|c| *c == b'%' || *c == b'+') {
        return Ok(s.to_string());
    }
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    // Where each decoded byte came from in `s`.
    let mut from = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        from.push(i);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push(h << 4 | l);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|e| from[e.utf8_error().valid_up_to()])
}

fn set(p: &mut Params, name: &str, v: &str) -> Result<(), ApiError> {
    let q = &mut p.query;
    let bad = |m: String| ApiError::param(name, m);
    match name {
        "date" => q.date = Some(crate::store::day::parse_day(v).map_err(bad)?),
        "start" | "end" => {
            let t = parse_timestamp(v).map_err(|e| {
                bad(format!(
                    "`{v}` is not RFC 3339 ({e}), e.g. 2026-11-23T08:00:00Z"
                ))
            })?;
            if name == "start" {
                q.start = Some(t);
            } else {
                q.end = Some(t);
            }
        }
        "event_type" => q.event_types.push(v.to_string()),
        "status" => q.status = Some(v.parse::<Status>().map_err(|e| bad(e.message))?),
        "level" => q.level = Some(v.parse::<Level>().map_err(|e| bad(e.message))?),
        "user_id" | "request_id" => {
            let n = v.chars().count();
            if n == 0 || n > MAX_USER_ID_CHARS {
                return Err(bad(format!(
                    "must be 1 to {MAX_USER_ID_CHARS} characters (got {n})"
                )));
            }
            if name == "user_id" {
                q.user_id = Some(v.to_string());
            } else {
                q.request_id = Some(v.to_string());
            }
        }
        "source" => {
            let n = v.chars().count();
            if n == 0 || n > MAX_SOURCE_CHARS {
                return Err(bad(format!(
                    "must be 1 to {MAX_SOURCE_CHARS} characters (got {n})"
                )));
            }
            q.source = Some(v.to_string());
        }
        "resolved" => {
            q.resolved = Some(match v {
                "true" => true,
                "false" => false,
                _ => return Err(bad(format!("`{v}` is neither true nor false"))),
            })
        }
        "tenant" => {
            if v != DEFAULT_TENANT && !is_valid_tenant(v) {
                return Err(bad(format!(
                    "`{v}` is not a tenant: {TENANT_RULE}, or `{DEFAULT_TENANT}` for the default tenant"
                )));
            }
            q.tenant = Some(v.to_string());
        }
        "q" => {
            let n = v.chars().count();
            if n > MAX_Q_CHARS {
                return Err(bad(format!("at most {MAX_Q_CHARS} characters (got {n})")));
            }
            q.q = Some(v.to_string()).filter(|s| !s.trim().is_empty());
        }
        "limit" => q.limit = Some(number(name, v)?),
        "offset" => {
            let n = number(name, v)?;
            if n > MAX_OFFSET {
                return Err(bad(format!(
                    "at most {MAX_OFFSET} (use `cursor` to page deeper)"
                )));
            }
            q.offset = n;
        }
        "cursor" => q.cursor = Some(v.to_string()),
        "format" => p.format = Some(v.parse::<Format>().map_err(bad)?),
        _ => unreachable!("checked against the allowed names"),
    }
    Ok(())
}

fn number(name: &str, v: &str) -> Result<usize, ApiError> {
    v.parse::<usize>()
        .map_err(|_| ApiError::param(name, format!("`{v}` is not a whole number")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(raw: &str) -> String {
        parse(raw, &[FILTERS, PAGING], false).unwrap_err().message
    }

    #[test]
    fn resolved_is_true_or_false() {
        let q = |raw: &str| parse(raw, &[FILTERS], false).unwrap().query.resolved;
        assert_eq!(q("resolved=true"), Some(true));
        assert_eq!(q("resolved=false"), Some(false));
        assert_eq!(q(""), None);
        assert_eq!(
            err("resolved=yes"),
            "resolved: `yes` is neither true nor false"
        );
    }

    /// The OpenAPI document lists exactly the parameters the parser takes.
    #[test]
    fn documented_parameters_are_the_parsed_ones() {
        use utoipa::IntoParams;
        let names = |p: Vec<utoipa::openapi::path::Parameter>| -> Vec<String> {
            p.into_iter().map(|p| p.name).collect()
        };
        assert_eq!(names(Filters::into_params(|| None)), FILTERS);
        assert_eq!(names(Paging::into_params(|| None)), PAGING);
        assert_eq!(names(ExportFormat::into_params(|| None)), ["format"]);
    }

    #[test]
    fn parameters_map_onto_the_query() {
        let p = parse(
            "date=2026-11-23&event_type=commit&event_type=push&status=failure&level=error&user_id=alice&source=api-service&tenant=acme&q=src%2Flib.rs+fix&limit=5&offset=2",
            &[FILTERS, PAGING],
            false,
        )
        .unwrap();
        let q = p.query;
        assert_eq!(q.date.unwrap().to_string(), "2026-11-23");
        assert_eq!(q.event_types, ["commit", "push"]);
        assert_eq!(q.status, Some(Status::Failure));
        assert_eq!(q.level, Some(Level::Error));
        assert_eq!(q.user_id.as_deref(), Some("alice"));
        assert_eq!(q.source.as_deref(), Some("api-service"));
        assert_eq!(q.tenant.as_deref(), Some("acme"));
        let p = parse("tenant=_", &[FILTERS], false).unwrap();
        assert_eq!(p.query.tenant.as_deref(), Some(DEFAULT_TENANT));
        assert_eq!(q.q.as_deref(), Some("src/lib.rs fix"));
        assert_eq!((q.limit, q.offset), (Some(5), 2));
        let p = parse("format=csv", &[FILTERS], true).unwrap();
        assert_eq!(p.format, Some(Format::Csv));
    }

    #[test]
    fn every_mistake_names_its_parameter() {
        assert!(
            err("date=../../etc").starts_with("date: "),
            "{}",
            err("date=../../etc")
        );
        assert!(err("start=yesterday").starts_with("start: "));
        assert!(err("status=done").starts_with("status: "));
        assert!(err("level=loud").starts_with("level: "));
        assert!(err("limit=0").starts_with("limit: "));
        assert!(err("limit=ten").starts_with("limit: "));
        assert!(err("offset=100001").starts_with("offset: "));
        assert!(err("cursor=xyz").starts_with("cursor: "));
        assert!(err("event_type=Bad-Type").starts_with("event_type: "));
        assert!(err("user_id=").starts_with("user_id: "));
        assert!(err(&format!("source={}", "s".repeat(129))).starts_with("source: "));
        for t in ["", "Acme", "-a", "__", "a.b"] {
            assert!(err(&format!("tenant={t}")).starts_with("tenant: "), "{t}");
        }
        assert!(parse("q=", &[FILTERS], false).unwrap().query.q.is_none());
        assert!(err(&format!("q={}", "x".repeat(MAX_Q_CHARS + 1))).starts_with("q: "));
        assert!(err("date=2026-11-23&date=2026-11-24").contains("more than once"));
        assert!(err("date=2026-11-23&start=2026-11-23T00:00:00Z").starts_with("date: "));
        assert!(err("colour=red").starts_with("colour: unknown parameter"));
        assert!(
            parse("limit=5", &[FILTERS], false)
                .unwrap_err()
                .message
                .starts_with("limit: unknown parameter")
        );
        assert!(err("format=csv").starts_with("format: unknown"));
    }
}
