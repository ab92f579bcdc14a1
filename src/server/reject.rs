//! Every error of the API as `{"error":{"code":"..","message":".."}}` with
//! its status. Handlers return [`ApiError`]; [`recover`] turns warp's own
//! rejections (no route, wrong method, unreadable body) into one as well, so
//! this is the one place that renders errors.

use std::convert::Infallible;

use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use crate::event::ValidationError;

/// One bad event of a rejected batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EventReject {
    /// Position of the event in the request (0-based).
    pub index: usize,
    /// The input line, for NDJSON bodies (1-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub line: Option<usize>,
    /// The field (`status`, `metadata`, `files_changed[2]`, or `event` for the whole event).
    pub field: String,
    /// The rule it broke.
    pub message: String,
}

impl EventReject {
    pub(crate) fn new(index: usize, line: Option<usize>, e: ValidationError) -> EventReject {
        EventReject {
            index,
            line,
            field: e.field,
            message: e.message,
        }
    }
}

/// An API error: status, stable code, message (naming the parameter or
/// field), and for rejected batches the bad events.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (see README, "Errors").
    pub code: &'static str,
    /// What is wrong, for humans.
    pub message: String,
    /// The bad events of a rejected batch.
    pub events: Vec<EventReject>,
    /// Seconds for `Retry-After` (overload).
    pub retry_after: Option<u32>,
}

impl warp::reject::Reject for ApiError {}

/// The body of every error response (and the `data` of a live stream's
/// `end` message).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub(crate) struct Body<'a> {
    error: Inner<'a>,
}

/// What went wrong.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorDetail)]
pub(crate) struct Inner<'a> {
    /// Stable machine-readable code (README, "Errors").
    #[schema(pattern = "^[a-z_]+$")]
    code: &'a str,
    /// What is wrong, for humans: names the parameter, field or limit.
    message: &'a str,
    /// The bad events of a rejected append.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    #[schema(value_type = Vec<EventReject>)]
    events: &'a [EventReject],
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            events: Vec::new(),
            retry_after: None,
        }
    }

    /// 400 `invalid_parameter`: a query parameter is wrong; the message names it.
    pub fn param(name: &str, message: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            format!("{name}: {message}"),
        )
    }

    /// 400 `invalid_event`: events failed parsing or validation; nothing was written.
    pub fn invalid_events(events: Vec<EventReject>) -> ApiError {
        let first = &events[0];
        let at = match first.line {
            Some(l) => format!("line {l}"),
            None => format!("events[{}]", first.index),
        };
        let mut e = ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_event",
            format!(
                "{} invalid event(s), nothing written; first: {at}: {}: {}",
                events.len(),
                first.field,
                first.message
            ),
        );
        e.events = events;
        e
    }

    /// 403 `forbidden`: the key's role does not allow this.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 413 with a code naming the limit.
    pub fn too_large(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, code, message)
    }

    /// 503 `overloaded` with `Retry-After`.
    pub fn overloaded(message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message);
        e.retry_after = Some(1);
        e
    }

    /// A storage failure under an append: 507 `insufficient_storage` (disk
    /// full), 503 `storage_read_only`, or 503 `storage_failed` (an I/O or
    /// fdatasync error; `Retry-After: 1`, the log recovers on the next
    /// append). Nothing of the request was stored in any case. The path and
    /// OS error go to the server log only.
    pub fn storage(fault: crate::store::StorageFault, e: &crate::store::Error) -> ApiError {
        use crate::store::StorageFault;
        tracing::error!(error = %e, "append failed");
        let advice = e.advice().unwrap_or("the storage failed");
        let (status, code) = match fault {
            StorageFault::Full => (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage"),
            StorageFault::ReadOnly => (StatusCode::SERVICE_UNAVAILABLE, "storage_read_only"),
            StorageFault::Failed => (StatusCode::SERVICE_UNAVAILABLE, "storage_failed"),
        };
        let mut err = ApiError::new(status, code, advice);
        if fault == StorageFault::Failed {
            err.retry_after = Some(1);
        }
        err
    }

    /// 500 `internal`: the server's fault (details go to the server log only).
    pub fn internal(context: &str, e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "{context}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{context} failed; see the server log"),
        )
    }

    /// The JSON response.
    pub fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                events: &self.events,
            },
        };
        let mut r = warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(warp::http::header::RETRY_AFTER, s.into());
        }
        r
    }
}

impl From<crate::index::QueryError> for ApiError {
    fn from(e: crate::index::QueryError) -> ApiError {
        ApiError::param(e.param, e.message)
    }
}

impl From<crate::index::Error> for ApiError {
    fn from(e: crate::index::Error) -> ApiError {
        match e {
            crate::index::Error::Query(q) => q.into(),
            other => ApiError::internal("reading the index", other),
        }
    }
}

/// Turns any rejection into the JSON error response.
pub async fn recover(r: warp::Rejection) -> Result<Response, Infallible> {
    Ok(from_rejection(&r).into_response())
}

fn from_rejection(r: &warp::Rejection) -> ApiError {
    use warp::reject::{
        InvalidHeader, InvalidQuery, LengthRequired, MethodNotAllowed, MissingHeader,
        PayloadTooLarge, UnsupportedMediaType,
    };
    if let Some(e) = r.find::<ApiError>() {
        return e.clone();
    }
    if r.is_not_found() {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
    }
    if r.find::<MethodNotAllowed>().is_some() {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this endpoint does not take that method",
        );
    }
    if r.find::<PayloadTooLarge>().is_some() {
        return ApiError::too_large("body_too_large", "the request body is too large");
    }
    if r.find::<LengthRequired>().is_some() {
        return ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "a Content-Length header is required",
        );
    }
    if r.find::<UnsupportedMediaType>().is_some() {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "unsupported Content-Type",
        );
    }
    if r.find::<InvalidQuery>().is_some() {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "the query string cannot be parsed",
        );
    }
    if let Some(h) = r.find::<InvalidHeader>() {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_header",
            format!("header {} is invalid", h.name()),
        );
    }
    if let Some(h) = r.find::<MissingHeader>() {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_header",
            format!("header {} is missing", h.name()),
        );
    }
    // Anything else warp rejects with (e.g. an unreadable body) is a client
    // mistake; say what warp said.
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_request",
        format!("the request could not be read: {r:?}"),
    )
}
