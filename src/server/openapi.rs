//! The OpenAPI 3.1 description of the HTTP API, served at `GET /openapi.json`.
//!
//! Built by `utoipa` from the code: each handler's `#[utoipa::path]` (its
//! route, parameters, body and answers), the types the handlers return
//! (`#[derive(ToSchema)]` on [`Event`](crate::event::Event),
//! [`QueryResponse`](crate::index::QueryResponse), the rotation report, …)
//! and the parameter lists of `params`. Then [`document`] adds what is the
//! same for many operations: the error responses (each operation names
//! the error codes it can answer in an `x-error-codes` extension; the
//! status, the meaning and `Retry-After` come from [`CODES`], the one list
//! of them), the ones every keyed route shares, and the security schemes
//! (`X-API-Key` or `Authorization: Bearer`, as `access` reads keys).

use std::borrow::Cow;
use std::sync::LazyLock;

use serde_json::{Map, Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{OpenApi, PartialSchema, ToSchema};
use warp::http::HeaderValue;
use warp::reply::Response;

use super::reject::ApiError;
use super::{admin, append, checkpoints, console, events, ops, resolve};

/// An error code, its HTTP status, when it is answered, and whether it
/// carries `Retry-After`.
type Code = (&'static str, u16, &'static str, bool);

/// Every error code the API answers with (README, "Errors", says the same).
const CODES: &[Code] = &[
    (
        "invalid_parameter",
        400,
        "a bad, unknown, repeated or nameless query parameter, or one that is not UTF-8 once decoded; the message names it",
        false,
    ),
    ("invalid_id", 400, "the id is not a UUID", false),
    (
        "invalid_body",
        400,
        "the body is not UTF-8, not JSON, not an object or a non-empty array of objects, or nested past 128 levels",
        false,
    ),
    (
        "invalid_event",
        400,
        "events failed parsing or validation; `events` lists each (index, line, field, message); nothing written",
        false,
    ),
    ("invalid_header", 400, "a bad `Last-Event-ID`", false),
    (
        "not_resolvable",
        400,
        "resolve or reopen of an `event_resolved` / `event_reopened` event (resolve the event it names)",
        false,
    ),
    (
        "bad_request",
        400,
        "the HTTP layer could not read the request (e.g. a broken chunked body)",
        false,
    ),
    (
        "unauthorized",
        401,
        "an unknown, revoked or malformed key",
        false,
    ),
    ("key_expired", 401, "the key is past its expiry", false),
    ("api_key_required", 403, "no key", false),
    (
        "forbidden",
        403,
        "the key's role does not allow it (another user's events, an append for a reserved user, a service reading); `events` names the refused event of an append",
        false,
    ),
    (
        "not_found",
        404,
        "no such event (also another user's, for a user key) or console file",
        false,
    ),
    (
        "request_timeout",
        408,
        "the body did not arrive within `request_timeout_ms`",
        false,
    ),
    (
        "duplicate_id",
        409,
        "an `id` already stored, twice in the request, or in another append in flight; `events` lists each; nothing written",
        false,
    ),
    (
        "rotation_running",
        409,
        "another rotation is running on the storage directory",
        false,
    ),
    (
        "body_too_large",
        413,
        "the body is over `max_body_bytes`",
        false,
    ),
    (
        "event_too_large",
        413,
        "an event is over `max_event_bytes`",
        false,
    ),
    (
        "batch_too_large",
        413,
        "more events than `max_batch_events`",
        false,
    ),
    (
        "unsupported_media_type",
        415,
        "a body that is neither `application/json` nor `application/x-ndjson`",
        false,
    ),
    (
        "too_many_streams",
        429,
        "the key has `max_streams_per_key` exports and live streams open",
        true,
    ),
    (
        "rate_limited",
        429,
        "the key sent more requests than its role's token bucket allows (`rate_{admin,user,service}_per_sec`, `_burst`)",
        true,
    ),
    (
        "internal",
        500,
        "the index failed, or a bug (details in the server log only)",
        false,
    ),
    (
        "keys_unavailable",
        503,
        "the server's keys file cannot be used: no key is accepted until it loads again (see `/health`)",
        true,
    ),
    (
        "overloaded",
        503,
        "appends in flight (or the bodies they hold) at their limit, in all or for this key; nothing read or written",
        true,
    ),
    (
        "index_behind",
        503,
        "an append giving its own ids while the index is too far behind to check them; nothing written",
        true,
    ),
    (
        "index_rebuilding",
        503,
        "the index directory is being rebuilt",
        false,
    ),
    (
        "storage_failed",
        503,
        "a write or fdatasync failed; nothing of the request is stored",
        true,
    ),
    (
        "storage_read_only",
        503,
        "the storage is read-only or not writable; nothing stored",
        false,
    ),
    (
        "shutting_down",
        503,
        "the event log closed under the append",
        false,
    ),
    (
        "timeout",
        503,
        "no response head within twice `request_timeout_ms`",
        false,
    ),
    (
        "insufficient_storage",
        507,
        "the disk holding the storage is full; nothing stored",
        false,
    ),
];

/// The codes every operation can answer.
const EVERY_OPERATION: &[&str] = &["internal", "timeout"];
/// The codes every operation that needs a key can answer.
const KEYED: &[&str] = &[
    "unauthorized",
    "key_expired",
    "api_key_required",
    "keys_unavailable",
    "rate_limited",
];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "evlog",
        description = "The HTTP API of `evlog serve`: append events, query, export and follow them, \
                       statistics, health and metrics, rotation and purge. Keys travel in `X-API-Key` or \
                       `Authorization: Bearer`. Every error is `{\"error\":{\"code\",\"message\"}}` \
                       (plus `events` for a rejected append) with the status its code names; a \
                       request head over `max_header_bytes` is refused with 431 and no body."
    ),
    paths(
        append::append,
        events::query,
        events::get,
        resolve::resolve_doc,
        resolve::reopen_doc,
        events::types,
        events::stats,
        events::export,
        events::stream,
        console::whoami,
        ops::health,
        ops::metrics,
        admin::rotate,
        admin::purge,
        checkpoints::list,
        console::page,
        console::file,
        openapi,
    ),
    components(schemas(super::reject::Body)),
    tags(
        (name = "events", description = "Append, read, export and follow events"),
        (name = "ops", description = "Health, metrics and this document: no key needed"),
        (name = "admin", description = "Maintenance (admin keys)"),
        (name = "console", description = "The web console's files and its key check"),
    )
)]
struct ApiDoc;

/// The document as served: utoipa's, plus the error responses of each
/// operation and the security schemes.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document is JSON");
    let mut schemes = Map::new();
    for path in doc["paths"].as_object_mut().expect("paths").values_mut() {
        for (method, op) in path.as_object_mut().expect("a path item") {
            let op = op.as_object_mut().expect("an operation");
            let mut codes: Vec<String> = match op.remove("x-error-codes") {
                Some(v) => serde_json::from_value(v).expect("x-error-codes: a list of codes"),
                None => Vec::new(),
            };
            let keyed = op.contains_key("security");
            let common = EVERY_OPERATION
                .iter()
                .chain(if keyed { KEYED } else { &[] });
            for c in common {
                if !codes.iter().any(|x| x == c) {
                    codes.push(c.to_string());
                }
            }
            let responses = op["responses"].as_object_mut().expect("responses");
            for (status, response) in error_responses(&codes, method) {
                responses.insert(status, response);
            }
        }
    }
    schemes.insert(
        "api_key".into(),
        json!({"type": "apiKey", "in": "header", "name": "X-API-Key",
               "description": "An evlog API key (`evlog keys add`)."}),
    );
    schemes.insert(
        "bearer".into(),
        json!({"type": "http", "scheme": "bearer",
               "description": "The same key as `Authorization: Bearer <key>` (`X-API-Key` wins when both are sent)."}),
    );
    doc["components"]["securitySchemes"] = Value::Object(schemes);
    doc["components"]["schemas"]["StreamMessage"] = stream_message();
    // The console's files, by name.
    let file = &mut doc["paths"]["/ui/{file}"]["get"]["parameters"][0]["schema"];
    file["enum"] = json!(console::file_names());
    doc
}

/// The error responses for `codes`, by status, each naming its codes.
fn error_responses(codes: &[String], method: &str) -> Vec<(String, Value)> {
    let mut by_status: Vec<(u16, Vec<&Code>)> = Vec::new();
    for c in codes {
        let entry = CODES
            .iter()
            .find(|e| e.0 == c)
            .unwrap_or_else(|| panic!("{method}: error code `{c}` is not in openapi::CODES"));
        match by_status.iter_mut().find(|(s, _)| *s == entry.1) {
            Some((_, list)) => list.push(entry),
            None => by_status.push((entry.1, vec![entry])),
        }
    }
    by_status.sort_by_key(|(s, _)| *s);
    by_status
        .into_iter()
        .map(|(status, list)| {
            let description = list
                .iter()
                .map(|(code, _, when, _)| format!("`{code}`: {when}"))
                .collect::<Vec<_>>()
                .join("; ");
            let names: Vec<&str> = list.iter().map(|e| e.0).collect();
            let mut response = json!({
                "description": description,
                "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/Error"},
                    {"properties": {"error": {"properties": {"code": {"enum": names}}}}},
                ]}}},
            });
            if list.iter().any(|e| e.3) {
                response["headers"] = json!({"Retry-After": {
                    "description": "Seconds to wait before retrying (with the codes that say so).",
                    "schema": {"type": "integer", "minimum": 0},
                }});
            }
            (status.to_string(), response)
        })
        .collect()
}

/// One message of `GET /events/stream` (OpenAPI 3.1 describes an event
/// stream by the schema of one message): an `event` with a stored event,
/// or the last message, `end`, with the error shape. (JSON: utoipa's schema
/// model has no `const` or `contentSchema`.)
fn stream_message() -> Value {
    let message = |event: &str, data: &str| {
        json!({
            "type": "object",
            "required": ["event", "data"],
            "properties": {
                "event": {"const": event},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": {"$ref": format!("#/components/schemas/{data}")},
                },
                "id": {"type": "string", "pattern": "^[0-9]+$", "description": "The event's `seq`"},
            },
        })
    };
    let mut event = message("event", "StoredEvent");
    event["required"] = json!(["event", "data", "id"]);
    let mut end = message("end", "Error");
    end["properties"].as_object_mut().unwrap().remove("id");
    json!({
        "description": "One message of the live stream: `event` (a stored event, its `seq` as id) or the last, `end` (why the server ended it)",
        "oneOf": [event, end],
    })
}

/// The body of `POST /events` as `application/json`: one event, or a
/// non-empty array of them. (Only the schema: bodies are parsed one event
/// at a time, see `ingest`.)
pub(crate) struct AppendBody;

impl PartialSchema for AppendBody {
    fn schema() -> RefOr<Schema> {
        RefOr::T(
            serde_json::from_value(json!({
                "oneOf": [
                    {"$ref": "#/components/schemas/Event"},
                    {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Event"}},
                ],
            }))
            .expect("a valid schema"),
        )
    }
}

impl ToSchema for AppendBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("AppendBody")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            "Event".into(),
            <crate::event::Event as PartialSchema>::schema(),
        ));
        <crate::event::Event as ToSchema>::schemas(schemas);
    }
}

/// Builds the document now rather than on the first request.
pub(crate) fn prepare() {
    LazyLock::force(&DOCUMENT);
}

static DOCUMENT: LazyLock<bytes::Bytes> = LazyLock::new(|| {
    serde_json::to_vec(&document())
        .expect("the document is JSON")
        .into()
});

/// `GET /openapi.json`: this document (no key needed).
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "ops",
    responses((status = 200, description = "The OpenAPI 3.1 description of this API", body = Object)),
)]
pub(crate) async fn openapi() -> Result<Response, ApiError> {
    let mut r = Response::new(DOCUMENT.clone().into());
    r.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}
