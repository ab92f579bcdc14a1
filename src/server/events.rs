//! The `/events` read endpoints: query, one event, types, statistics,
//! export and the live stream (appends: `append`). Each authenticates
//! first, then checks its parameters, then the role.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use super::access::Ctx;
use super::denials::Source;
use super::params::{self, FILTERS, PAGING};
use super::reject::ApiError;
use super::streams::{self, Ending, Hangup, Lease};
use super::{State, blocking, sse};
use crate::auth::{Principal, Role};
use crate::event::{DEFAULT_TENANT, Event, EventType, Level, SERVER_APPENDER, Status};
use crate::export::Format;
use crate::index::query::MAX_LIMIT;
use crate::index::{Follow, Query};

/// The query of a read endpoint, scoped to what the caller may read.
async fn scoped(
    state: &State,
    ctx: &Ctx,
    raw: &str,
    groups: &[&[&str]],
    with_format: bool,
) -> Result<params::Params, ApiError> {
    let who = state.authenticate(ctx)?;
    let mut p = params::parse(raw, groups, with_format)?;
    state.scope_read(ctx, &who, &mut p.query)?;
    Ok(p)
}

/// `GET /events`.
#[utoipa::path(
    get,
    path = "/events",
    operation_id = "query_events",
    tag = "events",
    summary = "Query events",
    description = "One page of the matching events, newest first (today by default); \
        `next_cursor` pages on. A user key reads only its own events.",
    params(params::Filters, params::Paging),
    responses(
        (status = 200, description = "A page of events", body = crate::index::QueryResponse),
    ),
    security(("api_key" = []), ("bearer" = [])),
    extensions(("x-error-codes" = json!(["invalid_parameter", "forbidden"]))),
)]
pub(crate) async fn query(state: Arc<State>, ctx: Ctx, raw: String) -> Result<Response, ApiError> {
    let p = scoped(&state, &ctx, &raw, &[FILTERS, PAGING], false).await?;
    let search = state.search.clone();
    let resp = blocking(move || search.query(&p.query)).await??;
    Ok(warp::reply::json(&resp).into_response())
}

/// `GET /events/stats`.
#[utoipa::path(
    get,
    path = "/events/stats",
    operation_id = "event_stats",
    tag = "events",
    summary = "Statistics of the matching events",
    description = "Counts by type, status and level, users, durations, error rate and a \
        histogram (today by default).",
    params(params::Filters),
    responses(
        (status = 200, description = "The statistics", body = crate::index::StatsResponse),
    ),
    security(("api_key" = []), ("bearer" = [])),
    extensions(("x-error-codes" = json!(["invalid_parameter", "forbidden"]))),
)]
pub(crate) async fn stats(state: Arc<State>, ctx: Ctx, raw: String) -> Result<Response, ApiError> {
    let p = scoped(&state, &ctx, &raw, &[FILTERS], false).await?;
    let search = state.search.clone();
    let resp = blocking(move || search.stats(&p.query)).await??;
    Ok(warp::reply::json(&resp).into_response())
}

/// `GET /events/{id}`.
#[utoipa::path(
    get,
    path = "/events/{id}",
    operation_id = "get_event",
    tag = "events",
    summary = "One event by id",
    description = "The stored event. Another user's event is answered, for a user key, \
        exactly as an id that does not exist.",
    params(("id" = String, Path, format = Uuid, description = "The event's id")),
    responses(
        (status = 200, description = "The stored event", body = crate::event::schema::StoredEvent),
    ),
    security(("api_key" = []), ("bearer" = [])),
    extensions(("x-error-codes" = json!(["invalid_parameter", "invalid_id", "forbidden", "not_found"]))),
)]
pub(crate) async fn get(
    state: Arc<State>,
    ctx: Ctx,
    id: String,
    raw: String,
) -> Result<Response, ApiError> {
    let who = state.authenticate(&ctx)?;
    params::parse(&raw, &[], false)?;
    let id = event_id(&id)?;
    // A service reads nothing: refuse before looking.
    state.scope_read(&ctx, &who, &mut Query::default())?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no event with id {id}"),
        )
    };
    let search = state.search.clone();
    let event = blocking(move || search.get(id))
        .await??
        .ok_or_else(not_found)?;
    if hidden_from(&state, &who, &event) {
        record_hidden_denial(&state, &ctx, &who, id, event["tenant"].as_str());
        return Err(not_found());
    }
    Ok(warp::reply::json(&event).into_response())
}

/// The event id of a route's `{id}`: a UUID, else 400 `invalid_id`.
pub(crate) fn event_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            format!("id: `{id}` is not an event id (a UUID)"),
        )
    })
}

/// Whether `event` is another tenant's or (for a user key) another user's
/// than `who`'s. Such an event is answered exactly as no event at all, so
/// that a key cannot learn which ids exist; the caller records the denial
/// with [`record_hidden_denial`]: under the server's own user, which no
/// user key reads, in the event's tenant, whose admins know it exists
/// (under the caller's user or tenant it would tell them the id exists).
pub(crate) fn hidden_from(state: &State, who: &Principal, event: &serde_json::Value) -> bool {
    let tenant = event["tenant"].as_str();
    let other_tenant = who
        .tenant_scope()
        .is_some_and(|own| own != tenant.unwrap_or(DEFAULT_TENANT));
    other_tenant
        || who.role == Role::User
            && event["user_id"].as_str() != Some(&state.log.stored_user_id(&who.user_id))
}

/// Records, as an `auth_failure` event of the user `evlog` (what admins
/// read, never a user key) in the event's `tenant`, that `who` asked for
/// another user's or tenant's event `id` and was answered 404; within a
/// budget of the key's for such denials, apart from its budget for those
/// stored under its user (see `denials`).
pub(crate) fn record_hidden_denial(
    state: &State,
    ctx: &Ctx,
    who: &Principal,
    id: Uuid,
    tenant: Option<&str>,
) {
    let source = Source::key(&who.key_id, SERVER_APPENDER, tenant);
    let whose = if who
        .tenant_scope()
        .is_some_and(|own| own != tenant.unwrap_or(DEFAULT_TENANT))
    {
        "another tenant than"
    } else {
        "another user than"
    };
    state.record_denial(ctx, &source, || {
        let mut e = Event::new(
            EventType::AuthFailure,
            SERVER_APPENDER,
            format!(
                "{} {} denied: event {id} belongs to {whose} that of key {}; answered 404 as if it did not exist",
                ctx.method, ctx.path, who.key_id
            ),
        )
        .status(Status::Failure)
        .level(Level::Security)
        .metadata(json!({
            "method": ctx.method.as_str(),
            "path": ctx.path,
            "http_status": 404,
            "code": "not_found",
            "key_id": who.key_id,
            "role": who.role.as_str(),
        }));
        e.tenant = tenant.map(str::to_string);
        e
    });
}

#[utoipa::path(
    get,
    path = "/events/types",
    operation_id = "event_types",
    tag = "events",
    summary = "Event types with counts",
    params((
        "tenant" = Option<String>, Query,
        pattern = "^(_|[a-z0-9][a-z0-9_-]{0,62})$",
        description = "Count the events of this tenant (`_`: the default tenant's); \
            only an all-tenants admin key may name another tenant than its own"
    )),
    responses((status = 200, description = "The types", body = TypeList)),
    security(("api_key" = []), ("bearer" = [])),
    extensions(("x-error-codes" = json!(["invalid_parameter", "forbidden"]))),
)]
/// `GET /events/types`: the built-in types with descriptions, then the
/// custom types seen, each with its count among the events the caller may read.
pub(crate) async fn types(state: Arc<State>, ctx: Ctx, raw: String) -> Result<Response, ApiError> {
    let who = state.authenticate(&ctx)?;
    let mut q = Query {
        start: Some(DateTime::<Utc>::UNIX_EPOCH),
        ..params::parse(&raw, &[params::TENANT], false)?.query
    };
    state.scope_read(&ctx, &who, &mut q)?;
    let search = state.search.clone();
    let mut counts = blocking(move || search.stats(&q)).await??.by_type;
    let mut types: Vec<TypeCount> = EventType::BUILTIN
        .iter()
        .map(|t| TypeCount {
            name: t.as_str().to_string(),
            description: t.description(),
            builtin: true,
            count: counts.remove(t.as_str()).unwrap_or(0),
        })
        .collect();
    types.extend(counts.into_iter().map(|(name, count)| TypeCount {
        name,
        description: None,
        builtin: false,
        count,
    }));
    Ok(warp::reply::json(&TypeList { types }).into_response())
}

/// The body of `GET /events/types`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct TypeList {
    /// The built-in types in documentation order, then the custom types
    /// seen, by name.
    types: Vec<TypeCount>,
}

/// An event type and how many events of it the caller may read.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct TypeCount {
    /// The wire name.
    #[schema(value_type = crate::event::EventType)]
    name: String,
    /// What it means; `null` for a custom type.
    #[schema(required = true)]
    description: Option<&'static str>,
    /// Whether it is one of the built-in types.
    builtin: bool,
    /// Events of this type the caller may read, all time.
    count: u64,
}

/// The query of an export or stream, scoped to what the caller may read,
/// and its lease (a place under `max_streams_per_key`, the key checked
/// again while it is open).
fn leased(
    state: &Arc<State>,
    ctx: &Ctx,
    raw: &str,
    with_format: bool,
) -> Result<(params::Params, Lease), ApiError> {
    let granted = state.grant(ctx)?;
    let mut p = params::parse(raw, &[FILTERS], with_format)?;
    state.scope_read(ctx, &granted.principal, &mut p.query)?;
    let lease = Lease::open(state, ctx, granted)?;
    Ok((p, lease))
}

#[utoipa::path(
    get,
    path = "/events/export",
    operation_id = "export_events",
    tag = "events",
    summary = "Export every matching event",
    params(params::Filters, params::ExportFormat),
    responses(
        (status = 200, description = "Every match, streamed (today by default, as `/events`); a failure \
            midway, or the key's revocation, breaks the transfer",
            content(
                (String = "application/x-ndjson"),
                (String = "text/csv"),
            ),
            headers(("Content-Disposition" = String, description = "attachment; filename=\"events.ndjson\" (or .csv)")),
        ),
    ),
    security(("api_key" = []), ("bearer" = [])),
    extensions(("x-error-codes" = json!(["invalid_parameter", "forbidden", "too_many_streams"]))),
)]
/// `GET /events/export?format=csv|ndjson`: every match, streamed page by
/// page through the cursor (no 1000 cap). Each page is queried on the
/// blocking pool once the previous one was taken by the connection; the
/// wait for the client holds no thread.
pub(crate) async fn export(
    state: Arc<State>,
    ctx: Ctx,
    raw: String,
    hangup: Option<Hangup>,
) -> Result<Response, ApiError> {
    let (p, lease) = leased(&state, &ctx, &raw, true)?;
    let format = p.format.unwrap_or(Format::Ndjson);
    let mut q = p.query;
    q.limit = Some(MAX_LIMIT);
    // "Today" is the day the export started, whatever the time of its last page.
    q.pin_default_day(chrono::Utc::now());
    let (tx, body) = streams::body::<Result<Bytes, std::io::Error>>(1);
    tokio::spawn(async move {
        let mut lease = lease;
        let ended = feed_export(&state, &mut lease, q, format, &tx).await;
        let last = match ended {
            // Dropping the sender ends the body.
            Ok(()) | Err(Ending::Gone) => return,
            // The body breaks, so the client sees an incomplete transfer.
            Err(Ending::Key(code, message)) => {
                tracing::info!(key_id = %lease.who().key_id, code, "export ended: {message}");
                Some(Err(std::io::Error::other(message)))
            }
        };
        streams::end_early(tx, last, hangup.as_ref()).await;
    });
    let ext = match format {
        Format::Csv => "csv",
        Format::Ndjson => "ndjson",
    };
    let mut r = warp::reply::stream(body).into_response();
    let h = r.headers_mut();
    h.insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static(format.content_type()),
    );
    h.insert(
        warp::http::header::CONTENT_DISPOSITION,
        format!("attachment; filename=\"events.{ext}\"")
            .parse()
            .expect("valid header"),
    );
    Ok(r)
}

/// The pages of an export, until the last or until something ends it.
async fn feed_export(
    state: &Arc<State>,
    lease: &mut Lease,
    mut q: Query,
    format: Format,
    tx: &mpsc::Sender<Option<Result<Bytes, std::io::Error>>>,
) -> Result<(), Ending> {
    let mut head = Vec::new();
    format.write_header(&mut head).expect("writing to memory");
    if !head.is_empty() {
        lease.send(tx, Ok(head.into())).await?;
    }
    loop {
        // A place for the page first: a client that reads nothing costs
        // no query and holds at most one page.
        let permit = lease.reserve(tx).await?;
        let search = state.search.clone();
        let query = q.clone();
        let page = lease
            .query(move || search.query(&query))
            .await?
            .map_err(|e| e.message)
            .and_then(|page| page.map_err(|e| e.to_string()));
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(error = %e, "export stopped");
                // An error ends the body early, so the client sees a broken transfer.
                permit.send(Some(Err(std::io::Error::other(e))));
                return Ok(());
            }
        };
        // Nothing read after the key was revoked is sent.
        lease.check()?;
        let mut buf = Vec::with_capacity(page.events.len() * 512);
        format
            .write_rows(&mut buf, &page.events)
            .expect("writing to memory");
        permit.send(Some(Ok(buf.into())));
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return Ok(()),
        }
    }
}

/// How often an idle stream sends a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[utoipa::path(
    get,
    path = "/events/stream",
    operation_id = "stream_events",
    tag = "events",
    summary = "Follow matching events live",
    description = "Server-sent events: a `:ready` comment, then one `event` message per \
        matching event stored from then on (`data:` the stored event, `id:` its `seq`). \
        When the server ends the stream because of its key, a last `end` message carries \
        the error shape (codes `key_revoked`, `key_expired`, `key_changed`, `keys_unavailable`).",
    params(
        params::Filters,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after the event with this `seq`"),
    ),
    responses(
        (status = 200, description = "The live stream", content((ref("#/components/schemas/StreamMessage") = "text/event-stream"))),
    ),
    security(("api_key" = []), ("bearer" = [])),
    extensions(("x-error-codes" = json!(["invalid_parameter", "invalid_header", "forbidden", "too_many_streams"]))),
)]
/// `GET /events/stream`: server-sent events of the matching events stored
/// from now on (or after the `Last-Event-ID`, a `seq`), one `event` message
/// per event with its `seq` as id, each batch the tail reads (up to a page)
/// written as one chunk ([`sse`]). A `:ready` comment says the tail is set
/// up; an `end` message (the JSON error shape) says why the server ended it
/// (key revoked, expired or changed, keys file unusable).
pub(crate) async fn stream(
    state: Arc<State>,
    ctx: Ctx,
    raw: String,
    hangup: Option<Hangup>,
) -> Result<Response, ApiError> {
    let (p, lease) = leased(&state, &ctx, &raw, false)?;
    let last_id = match ctx.headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_header",
                        "Last-Event-ID: want the seq of the last event received",
                    )
                })?,
        ),
    };
    let search = state.search.clone();
    let after = match last_id {
        Some(seq) => seq,
        None => blocking(move || search.max_seq()).await??,
    };
    let follow = Follow::new(p.query, after);
    // One batch at a time: a client that reads nothing costs no query and
    // holds at most one batch (as an export holds one page).
    let (tx, body) = streams::body::<Bytes>(1);
    tokio::spawn(async move {
        let mut lease = lease;
        let ended = tail(&state, &mut lease, follow, &tx).await;
        match ended {
            Ok(()) | Err(Ending::Gone) => {}
            Err(Ending::Key(code, message)) => {
                tracing::info!(key_id = %lease.who().key_id, code, "live stream ended: {message}");
                let body = json!({ "error": { "code": code, "message": message } });
                let mut end = Vec::new();
                sse::message(&mut end, "end", &body, None);
                // After the batch queued before it, if the client takes it.
                streams::end_with(tx, Bytes::from(end), hangup.as_ref()).await;
            }
        }
    });
    Ok(sse::reply(body, KEEP_ALIVE))
}

/// Feeds one live stream until the server shuts down (`Ok`) or something
/// ends it.
async fn tail(
    state: &Arc<State>,
    lease: &mut Lease,
    mut follow: Follow,
    tx: &mpsc::Sender<Option<Bytes>>,
) -> Result<(), Ending> {
    let mut commits = state.commits.clone();
    let mut shutdown = state.shutdown.subscribe();
    lease.send(tx, sse::comment("ready")).await?;
    loop {
        loop {
            // A place for the batch first, as an export does for a page.
            let permit = lease.reserve(tx).await?;
            let search = state.search.clone();
            let res = lease
                .query(move || {
                    let batch = follow.next_batch(&search);
                    (follow, batch)
                })
                .await?;
            let batch = match res {
                Ok((f, Ok(b))) => {
                    follow = f;
                    b
                }
                Ok((_, Err(e))) => {
                    tracing::error!(error = %e, "live stream stopped");
                    return Ok(());
                }
                Err(_) => return Ok(()),
            };
            // Nothing read after the key was revoked is sent.
            lease.check()?;
            if batch.is_empty() {
                break;
            }
            // The whole batch (up to a page of events) as one chunk.
            permit.send(Some(sse::events(&batch)));
        }
        tokio::select! {
            changed = commits.changed() => if changed.is_err() { return Ok(()) },
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
            () = tx.closed() => return Err(Ending::Gone),
            ending = lease.revoked() => return Err(ending),
        }
    }
}
