//! The routes: the table of every method and path the server serves
//! ([`ROUTES`], which the OpenAPI document and the metrics' route labels
//! read too), the warp filters taken from it, and the whole filter tree.

use std::convert::Infallible;
use std::sync::Arc;

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use super::{
    ApiError, State, access, admin, append, checkpoints, console, events, openapi, ops, reject,
    resolve, streams,
};

fn respond(r: Result<Response, ApiError>) -> Response {
    r.unwrap_or_else(ApiError::into_response)
}

/// The query string, empty when there is none.
fn raw_query() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// Every route the server serves: method and path template (`{name}` is
/// one path segment), as the OpenAPI document writes them. [`routes`]
/// takes each route's method and path filter from this table (`at`, `at1`)
/// and from nowhere else.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/events"),
    ("GET", "/events"),
    ("GET", "/events/stats"),
    ("GET", "/events/types"),
    ("GET", "/events/export"),
    ("GET", "/events/stream"),
    ("GET", "/events/{id}"),
    ("POST", "/events/{id}/resolve"),
    ("POST", "/events/{id}/reopen"),
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("POST", "/admin/rotate"),
    ("POST", "/admin/purge"),
    ("GET", "/admin/checkpoints"),
    ("GET", "/openapi.json"),
    ("GET", "/"),
    ("GET", "/ui/{file}"),
    ("GET", "/whoami"),
];

/// The segments of a route template: literals, and `None` for a `{name}`.
fn segments(template: &str) -> impl Iterator<Item = Option<&str>> {
    template
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| (!s.starts_with('{')).then_some(s))
}

/// Whether `path` matches the route template `template`.
fn matches(template: &str, path: &str) -> bool {
    let given: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let want: Vec<Option<&str>> = segments(template).collect();
    want.len() == given.len()
        && want
            .iter()
            .zip(&given)
            .all(|(w, g)| w.is_none_or(|w| w == *g))
}

/// The template of [`ROUTES`] that `path` matches (for metric labels).
pub(crate) fn route_of(path: &str) -> Option<&'static str> {
    ROUTES.iter().map(|r| r.1).find(|t| matches(t, path))
}

/// Adds `Allow` (the methods [`ROUTES`] serve on the request's path) to a
/// 405, as RFC 9110 asks.
fn allow(path: &str, mut r: Response) -> Response {
    if r.status() == StatusCode::METHOD_NOT_ALLOWED {
        let mut methods: Vec<&str> = ROUTES
            .iter()
            .filter(|(_, t)| matches(t, path))
            .map(|(m, _)| *m)
            .collect();
        methods.sort_unstable();
        methods.dedup();
        if let Ok(v) = warp::http::HeaderValue::from_str(&methods.join(", ")) {
            r.headers_mut().insert(warp::http::header::ALLOW, v);
        }
    }
    r
}

/// The filter of `method` (GET or POST: no route takes another).
fn method_filter(method: &str) -> BoxedFilter<()> {
    match method {
        "GET" => warp::get().boxed(),
        "POST" => warp::post().boxed(),
        other => unreachable!("no route takes {other}"),
    }
}

/// The method and path filter of the route `method template` of
/// [`ROUTES`], which has no parameter: the path (whole), then the method.
fn at(method: &'static str, template: &'static str) -> BoxedFilter<()> {
    assert!(
        ROUTES.contains(&(method, template)),
        "{method} {template} is not in ROUTES"
    );
    let mut f = warp::any().boxed();
    for seg in segments(template) {
        let seg = seg.unwrap_or_else(|| panic!("{template} has a parameter: use at1"));
        f = f.and(warp::path(seg)).boxed();
    }
    f.and(warp::path::end()).and(method_filter(method)).boxed()
}

/// As [`at`], for a template with one parameter, which it extracts.
fn at1(method: &'static str, template: &'static str) -> BoxedFilter<(String,)> {
    assert!(
        ROUTES.contains(&(method, template)),
        "{method} {template} is not in ROUTES"
    );
    let (before, after) = template
        .split_once('{')
        .and_then(|(b, rest)| Some((b, rest.split_once('}')?.1)))
        .unwrap_or_else(|| panic!("{template} has no parameter: use at"));
    let mut f = warp::any().boxed();
    for seg in segments(before) {
        f = f.and(warp::path(seg.expect("literal"))).boxed();
    }
    let mut f = f.and(warp::path::param::<String>()).boxed();
    for seg in segments(after) {
        let seg = seg.unwrap_or_else(|| panic!("{template}: one parameter at most"));
        f = f.and(warp::path(seg)).boxed();
    }
    f.and(warp::path::end()).and(method_filter(method)).boxed()
}

/// The web console: `GET /` (the page), `GET /ui/<file>` (its files) and
/// `GET /whoami`.
fn console_routes(
    st: impl Filter<Extract = (Arc<State>,), Error = Infallible> + Clone + Send + Sync + 'static,
    ctx: impl Filter<Extract = (access::Ctx,), Error = Infallible> + Clone + Send + Sync + 'static,
) -> BoxedFilter<(Response,)> {
    console::prepare();
    let page = at("GET", "/")
        .and(warp::header::headers_cloned())
        .map(|h: warp::http::HeaderMap| respond(console::page(&h)));
    let file = at1("GET", "/ui/{file}")
        .and(warp::header::headers_cloned())
        .map(|name: String, h: warp::http::HeaderMap| respond(console::file(&name, &h)));
    let whoami = at("GET", "/whoami")
        .and(st)
        .and(ctx)
        .and(raw_query())
        .then(|s, c, q| async move { respond(console::whoami(s, c, q).await) });
    page.or(file).unify().or(whoami).unify().boxed()
}

pub(super) fn routes(state: Arc<State>) -> BoxedFilter<(Response,)> {
    openapi::prepare();
    let st = warp::any().map(move || state.clone());
    let ctx = access::ctx();
    let append = at("POST", "/events")
        .and(st.clone())
        .and(ctx.clone())
        .and(warp::body::stream())
        .then(|s, c, body| async move { respond(append::append(s, c, body).await) });
    // A GET of `$path` with the state, the request's context and its query.
    macro_rules! get {
        ($path:expr) => {
            $path.and(st.clone()).and(ctx.clone()).and(raw_query())
        };
    }
    macro_rules! read {
        ($path:expr, $handler:path) => {
            get!($path).then(|s, c, q| async move { respond($handler(s, c, q).await) })
        };
    }
    let query = read!(at("GET", "/events"), events::query);
    let stats = read!(at("GET", "/events/stats"), events::stats);
    let types = read!(at("GET", "/events/types"), events::types);
    // Exports and streams may close their connection (revoked key, stalled client).
    macro_rules! open {
        ($path:expr, $handler:path) => {
            get!($path)
                .and(warp::ext::optional::<streams::Hangup>())
                .then(|s, c, q, h| async move { respond($handler(s, c, q, h).await) })
        };
    }
    let export = open!(at("GET", "/events/export"), events::export);
    let stream = open!(at("GET", "/events/stream"), events::stream);
    let one = get!(at1("GET", "/events/{id}"))
        .then(|id, s, c, q| async move { respond(events::get(s, c, id, q).await) });
    // Resolve and reopen take a small JSON body (`{"note": ".."}`, optional).
    macro_rules! resolution {
        ($path:expr, $action:expr) => {
            at1("POST", $path)
                .and(st.clone())
                .and(ctx.clone())
                .and(raw_query())
                .and(warp::body::stream())
                .then(|id, s, c, q, body| async move {
                    respond(resolve::resolve(s, c, id, q, Box::pin(body), $action).await)
                })
        };
    }
    let resolve = resolution!("/events/{id}/resolve", crate::resolution::Action::Resolve);
    let reopen = resolution!("/events/{id}/reopen", crate::resolution::Action::Reopen);
    let health = at("GET", "/health")
        .and(st.clone())
        .then(|s| async move { respond(ops::health(s).await) });
    let metrics = at("GET", "/metrics")
        .and(st.clone())
        .then(|s| async move { respond(ops::metrics(s).await) });
    let openapi =
        at("GET", "/openapi.json").then(|| async move { respond(openapi::openapi().await) });
    let rotate = at("POST", "/admin/rotate")
        .and(st.clone())
        .and(ctx.clone())
        .and(raw_query())
        .then(|s, c, q| async move { respond(admin::rotate(s, c, q).await) });
    let purge = at("POST", "/admin/purge")
        .and(st.clone())
        .and(ctx.clone())
        .and(raw_query())
        .then(|s, c, q| async move { respond(admin::purge(s, c, q).await) });
    let checkpoints = read!(at("GET", "/admin/checkpoints"), checkpoints::list);
    // Boxed in parts: each `or` nests the types of those before it, and
    // the whole chain unboxed takes rustc minutes to check.
    let events = append
        .or(query)
        .unify()
        .or(stats)
        .unify()
        .or(types)
        .unify()
        .or(export)
        .unify()
        .or(stream)
        .unify()
        .or(one)
        .unify()
        .or(resolve)
        .unify()
        .or(reopen)
        .unify()
        .boxed();
    let ops = health
        .or(metrics)
        .unify()
        .or(rotate)
        .unify()
        .or(purge)
        .unify()
        .or(checkpoints)
        .unify()
        .or(openapi)
        .unify()
        .boxed();
    let api = events
        .or(ops)
        .unify()
        .or(console_routes(st, ctx))
        .unify()
        .recover(reject::recover)
        .unify();
    warp::path::full()
        .and(api)
        .map(|path: warp::path::FullPath, r| console::secure(allow(path.as_str(), r)))
        .boxed()
}
