//! `POST /events/{id}/resolve` and `POST /events/{id}/reopen` (admin): append
//! the `event_resolved` / `event_reopened` event that changes the target's
//! state (see [`crate::resolution`]); the target's line is never touched.

use std::sync::Arc;

use bytes::Buf;
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use super::access::Ctx;
use super::reject::ApiError;
use super::{State, blocking, params};
use crate::auth::Role;
use crate::event::format_timestamp;
use crate::resolution::{self, Action, PlanError};

/// How long an answer waits for the index to have the resolution it wrote
/// (the in-process indexer commits every 500 ms by default); past it, the
/// answer goes and queries catch up a moment later.
const INDEX_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Largest body: a note of [`resolution::MAX_NOTE_CHARS`] characters fits.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// The answer: the target's state after the call.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Resolved {
    /// The target event.
    #[schema(format = Uuid)]
    id: Uuid,
    /// Its state now.
    resolved: bool,
    /// Whether this call changed it (`false`: it already was; nothing appended).
    changed: bool,
    /// The `event_resolved` / `event_reopened` event appended (absent when
    /// nothing changed).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    resolution_id: Option<Uuid>,
    /// When it was resolved (when resolved).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    resolved_at: Option<String>,
    /// Who resolved it (when resolved).
    #[serde(skip_serializing_if = "Option::is_none")]
    resolved_by: Option<String>,
}

/// The optional body.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResolveBody {
    /// Why (at most 2000 characters); stored in the resolution event's
    /// `metadata.note` and description.
    #[schema(max_length = 2000)]
    note: Option<String>,
}

#[utoipa::path(
    post,
    path = "/events/{id}/resolve",
    operation_id = "resolve_event",
    tag = "events",
    summary = "Mark an event resolved",
    description = "Appends an `event_resolved` event naming the target (its line is never \
        changed), and answers once the index has it (at most 5 s): queries after the answer show \
        the target's new `resolved`, `resolved_at` and `resolved_by`. Admin keys only. \
        Resolving a resolved event changes nothing.",
    params(("id" = String, Path, format = Uuid, description = "The event's id")),
    request_body(content = Option<ResolveBody>, content_type = "application/json"),
    responses((status = 200, description = "The event's state", body = Resolved)),
    security(("api_key" = []), ("bearer" = [])),
    extensions(("x-error-codes" = json!(["invalid_parameter", "invalid_id", "invalid_body", "forbidden", "not_found", "not_resolvable"]))),
)]
#[allow(dead_code)]
fn resolve_doc() {}

#[utoipa::path(
    post,
    path = "/events/{id}/reopen",
    operation_id = "reopen_event",
    tag = "events",
    summary = "Reopen a resolved event",
    description = "Appends an `event_reopened` event naming the target: it is open again. \
        Admin keys only. Reopening an open event changes nothing.",
    params(("id" = String, Path, format = Uuid, description = "The event's id")),
    request_body(content = Option<ResolveBody>, content_type = "application/json"),
    responses((status = 200, description = "The event's state", body = Resolved)),
    security(("api_key" = []), ("bearer" = [])),
    extensions(("x-error-codes" = json!(["invalid_parameter", "invalid_id", "invalid_body", "forbidden", "not_found", "not_resolvable"]))),
)]
#[allow(dead_code)]
fn reopen_doc() {}

/// `POST /events/{id}/resolve` or `/reopen`.
pub(crate) async fn resolve<S, B>(
    state: Arc<State>,
    ctx: Ctx,
    id: String,
    raw: String,
    body: S,
    action: Action,
) -> Result<Response, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let who = state.authenticate(&ctx)?;
    params::parse(&raw, &[], false)?;
    let id = super::events::event_id(&id)?;
    if who.role != Role::Admin {
        return Err(state.deny(
            &ctx,
            Some(&who),
            ApiError::forbidden(format!(
                "only an admin key may mark events {}",
                action.past()
            )),
        ));
    }
    let note = read_note(body).await?;
    let search = state.search.clone();
    let by = who.user_id.clone();
    let (st, whom) = (state.clone(), who.clone());
    let plan = blocking(move || {
        resolution::plan(&search, action, id, &by, note.as_deref(), |e| {
            !super::events::hidden_from(&st, &whom, e)
        })
    })
    .await?
    .map_err(|e| match e {
        PlanError::Hidden(_, ref target) => {
            super::events::record_hidden_denial(&state, &ctx, &who, id, target["tenant"].as_str());
            ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
        }
        PlanError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
        PlanError::NotResolvable(..) => {
            ApiError::new(StatusCode::BAD_REQUEST, "not_resolvable", e.to_string())
        }
        PlanError::Index(e) => e.into(),
    })?;
    let Some(mut event) = plan.event else {
        let current = plan.current.filter(|s| s.resolved);
        let answer = Resolved {
            id,
            resolved: action.resolves(),
            changed: false,
            resolution_id: None,
            resolved_at: current
                .as_ref()
                .and_then(|s| chrono::DateTime::from_timestamp_micros(s.at))
                .map(|t| format_timestamp(&t)),
            resolved_by: current.map(|s| s.by),
        };
        return Ok(warp::reply::json(&answer).into_response());
    };
    let now = state.log.clock().now();
    event.timestamp = Some(now);
    event.appended_by = Some(who.key_id.clone());
    let (rid, line) = state
        .log
        .prepare(event)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.to_string()))?;
    // As stored (a hashed user id, with `user_id_hash_key`).
    let by = serde_json::from_slice::<Value>(&line)
        .ok()
        .and_then(|v| v["user_id"].as_str().map(str::to_string))
        .unwrap_or_else(|| who.user_id.clone());
    let committed = state
        .log
        .submit_future(vec![line])
        .map_err(super::append::store_error)?;
    committed.await.map_err(super::append::store_error)?;
    // Read your writes: answer once the index has the resolution (within
    // a bound), so that a query after the answer shows the new state and a
    // second call sees the first.
    let deadline = tokio::time::Instant::now() + INDEX_WAIT;
    loop {
        let search = state.search.clone();
        let states = blocking(move || search.resolutions()).await??;
        let indexed = states
            .state(&id)
            .is_some_and(|s| s.at == now.timestamp_micros() && s.resolved == action.resolves());
        if indexed || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let resolved = action.resolves();
    let answer = Resolved {
        id,
        resolved,
        changed: true,
        resolution_id: Some(rid),
        resolved_at: resolved.then(|| format_timestamp(&now)),
        resolved_by: resolved.then_some(by),
    };
    Ok(warp::reply::json(&answer).into_response())
}

/// The note of the body: none when the body is empty, else a JSON object
/// with at most `note` in it.
async fn read_note<S, B>(mut body: S) -> Result<Option<String>, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))?;
        while chunk.has_remaining() {
            let c = chunk.chunk();
            if bytes.len() + c.len() > MAX_BODY_BYTES {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    format!(
                        "the body is larger than {MAX_BODY_BYTES} bytes: it holds a note at most"
                    ),
                ));
            }
            bytes.extend_from_slice(c);
            let n = c.len();
            chunk.advance(n);
        }
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let invalid = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", m);
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(format!("the body is not JSON: {e}")))?;
    resolution::check_note(v.get("note")).map_err(|e| invalid(e.to_string()))?;
    let body: ResolveBody = serde_json::from_value(v).map_err(|e| {
        invalid(format!(
            "the body is an object with an optional `note` (a string): {e}"
        ))
    })?;
    Ok(body.note.filter(|n| !n.trim().is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn note(body: &str) -> Result<Option<String>, ApiError> {
        let chunks: Vec<Result<bytes::Bytes, warp::Error>> =
            vec![Ok(bytes::Bytes::from(body.to_string()))];
        read_note(futures_util::stream::iter(chunks)).await
    }

    #[tokio::test]
    async fn a_note_is_optional_and_checked() {
        assert_eq!(note("").await.unwrap(), None);
        assert_eq!(note("{}").await.unwrap(), None);
        assert_eq!(
            note(r#"{"note":"fixed in 1.2"}"#).await.unwrap().as_deref(),
            Some("fixed in 1.2")
        );
        for bad in ["nope", "[]", r#"{"note":3}"#, r#"{"note":"x","extra":1}"#] {
            let e = note(bad).await.unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (StatusCode::BAD_REQUEST, "invalid_body"),
                "{bad}"
            );
        }
        let long = json!({"note": "n".repeat(2001)}).to_string();
        assert!(note(&long).await.unwrap_err().message.contains("2000"));
        let huge = "x".repeat(MAX_BODY_BYTES + 1);
        assert!(
            note(&huge)
                .await
                .unwrap_err()
                .message
                .contains("larger than")
        );
    }
}
