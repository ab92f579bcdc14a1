//! Request logging for other warp services: [`log_requests`] wraps a warp
//! filter (`.with(..)`) and records one event per request through a
//! fire-and-forget [`Appender`], so logging never blocks or fails a request.
//!
//! ```no_run
//! use std::sync::Arc;
//! use evlog::{Appender, Config, EventLog};
//! use warp::Filter;
//!
//! # async fn run() -> evlog::Result<()> {
//! let log = EventLog::open(Config::new("./evlog-data"))?;
//! let appender = Arc::new(Appender::new(log));
//! let routes = warp::path!("hello" / String)
//!     .map(|name| format!("hello {name}"))
//!     .with(evlog::middleware::log_requests(appender, |h: &warp::http::HeaderMap| {
//!         h.get("x-user").and_then(|v| v.to_str().ok()).map(String::from)
//!     }));
//! warp::serve(routes).run(([127, 0, 0, 1], 3030)).await;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use ::warp::filters::log::{Info, Log};
use ::warp::http::HeaderMap;
use serde_json::json;

use crate::event::{Event, EventType, Level, MAX_USER_ID_CHARS, Status};
use crate::store::Appender;

/// The `user_id` of requests whose user `user_of` does not name.
pub const ANONYMOUS: &str = "anonymous";

/// A warp wrapper that records each request as one event:
///
/// - `api_request` (status `success`, level `info`) for 1xx–3xx responses,
///   `api_request` (`failure`, `warning`) for 4xx, `api_error` (`failure`,
///   `error`) for 5xx;
/// - `action_description` `"GET /path 200"`; `duration_ms`; `request_id` from
///   the `X-Request-Id` header, else a new UUIDv7; `source_ip`;
///   metadata `{method, path, http_status}`;
/// - `user_id` from `user_of(request headers)`, else [`ANONYMOUS`].
///
/// Events go through `appender`: a full queue drops (and counts) rather
/// than slowing the service down.
pub fn log_requests<U>(appender: Arc<Appender>, user_of: U) -> Log<impl Fn(Info<'_>) + Clone + Send>
where
    U: Fn(&HeaderMap) -> Option<String> + Clone + Send + Sync + 'static,
{
    ::warp::log::custom(move |info: Info<'_>| {
        appender.append(request_event(&info, &user_of));
    })
}

fn request_event(info: &Info<'_>, user_of: &impl Fn(&HeaderMap) -> Option<String>) -> Event {
    let code = info.status();
    let (event_type, status, level) = if code.is_server_error() {
        (EventType::ApiError, Status::Failure, Level::Error)
    } else if code.is_client_error() {
        (EventType::ApiRequest, Status::Failure, Level::Warning)
    } else {
        (EventType::ApiRequest, Status::Success, Level::Info)
    };
    let headers = info.request_headers();
    let valid = |s: &String| !s.is_empty() && s.chars().count() <= MAX_USER_ID_CHARS;
    let user = user_of(headers)
        .filter(valid)
        .unwrap_or_else(|| ANONYMOUS.to_string());
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .filter(valid)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let mut e = Event::new(
        event_type,
        user,
        format!("{} {} {}", info.method(), info.path(), code.as_u16()),
    )
    .status(status)
    .level(level)
    .request_id(request_id)
    .duration_ms(info.elapsed().as_secs_f64() * 1000.0)
    .metadata(json!({
        "method": info.method().as_str(),
        "path": info.path(),
        "http_status": code.as_u16(),
    }));
    if let Some(addr) = info.remote_addr() {
        e = e.source_ip(addr.ip().to_string());
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, DayRange, EventLog};
    use ::warp::Filter;

    #[tokio::test]
    async fn records_one_event_per_request_with_status_and_request_id() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(Config::new(dir.path())).unwrap();
        let appender = Arc::new(Appender::new(log.clone()));
        let routes = ::warp::path!("ok")
            .map(|| "fine")
            .or(::warp::path!("boom").map(|| {
                ::warp::reply::with_status("no", ::warp::http::StatusCode::INTERNAL_SERVER_ERROR)
            }))
            .with(log_requests(appender.clone(), |h: &HeaderMap| {
                h.get("x-user")
                    .and_then(|v| v.to_str().ok())
                    .map(String::from)
            }));
        let r = ::warp::test::request()
            .path("/ok")
            .header("x-user", "alice")
            .header("x-request-id", "req-1")
            .reply(&routes)
            .await;
        assert_eq!(r.status(), 200);
        ::warp::test::request().path("/boom").reply(&routes).await;
        ::warp::test::request()
            .path("/missing")
            .reply(&routes)
            .await;
        appender.flush();
        let events: Vec<Event> = log
            .scan(DayRange::all())
            .unwrap()
            .map(|r| r.unwrap().event)
            .collect();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].event_type, EventType::ApiRequest);
        assert_eq!(events[0].user_id, "alice");
        assert_eq!(events[0].request_id.as_deref(), Some("req-1"));
        assert_eq!(events[0].action_description, "GET /ok 200");
        assert!(events[0].duration_ms.is_some());
        assert_eq!(
            (events[1].event_type.clone(), events[1].level),
            (EventType::ApiError, Level::Error)
        );
        assert_eq!(events[1].user_id, ANONYMOUS);
        assert_eq!(
            (events[2].status, events[2].level),
            (Status::Failure, Level::Warning)
        );
        assert_eq!(events[2].metadata.as_ref().unwrap()["http_status"], 404);
    }
}
