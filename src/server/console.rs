//! The web console: the files of `console/` (HTML, CSS, ES modules, an SVG
//! icon), embedded in the binary at compile time and served at `/` (the
//! page) and `/ui/<file>` (its assets), plus `GET /whoami`, the one endpoint
//! the console needs beyond the public API.
//!
//! Each file is gzipped once (level 9, on first use) and sent gzipped when
//! the request's `Accept-Encoding` allows, else as is. Every file is
//! `Cache-Control: no-cache` with a strong `ETag` (a SHA-256 of its bytes, per
//! encoding): the browser keeps it but asks each time, and an unchanged
//! file is a `304 Not Modified` without a body. Content hashes in the file
//! names would save those requests but need the ES module imports rewritten
//! at build time; a 304 per file costs little next to that machinery.
//!
//! [`secure`] adds the security headers to every response of the server
//! (the API's too): a `Content-Security-Policy` that allows only this
//! origin's files (no inline script or style, no framing),
//! `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`.

use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use warp::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
};
use warp::http::{HeaderMap, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};

use super::State;
use super::access::Ctx;
use super::reject::ApiError;

/// The `Content-Security-Policy` of every response: scripts, styles,
/// images and connections from this origin only; no inline script or
/// style; no `<base>`; forms post only here; never inside a frame.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The console's files: name under `/ui/`, content type, bytes. `index.html`
/// is served at `/`.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../console/index.html"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/style.css"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_bytes!("../../console/icon.svg"),
    ),
    ("app.js", JAVASCRIPT, include_bytes!("../../console/app.js")),
    ("api.js", JAVASCRIPT, include_bytes!("../../console/api.js")),
    ("dom.js", JAVASCRIPT, include_bytes!("../../console/dom.js")),
    (
        "filters.js",
        JAVASCRIPT,
        include_bytes!("../../console/filters.js"),
    ),
    (
        "form.js",
        JAVASCRIPT,
        include_bytes!("../../console/form.js"),
    ),
    (
        "events.js",
        JAVASCRIPT,
        include_bytes!("../../console/events.js"),
    ),
    (
        "details.js",
        JAVASCRIPT,
        include_bytes!("../../console/details.js"),
    ),
    (
        "live.js",
        JAVASCRIPT,
        include_bytes!("../../console/live.js"),
    ),
    (
        "stats.js",
        JAVASCRIPT,
        include_bytes!("../../console/stats.js"),
    ),
    (
        "admin.js",
        JAVASCRIPT,
        include_bytes!("../../console/admin.js"),
    ),
];

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// One file, ready to send.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    identity: Bytes,
    /// The gzip form, when it is smaller.
    gzip: Option<Bytes>,
    /// The strong ETag of the identity form (the gzip form's adds `-gz`).
    etag: String,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(name, content_type, body)| {
            let hash = Sha256::digest(body);
            let gz = gzip(body);
            Asset {
                name,
                content_type,
                identity: Bytes::from_static(body),
                gzip: (gz.len() < body.len()).then(|| Bytes::from(gz)),
                etag: format!("\"{}\"", hex::encode(&hash[..16])),
            }
        })
        .collect()
});

fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(body).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

/// Compresses the files now rather than on the first request.
pub(crate) fn prepare() {
    LazyLock::force(&ASSETS);
}

/// The names of the embedded files (for tests).
pub fn file_names() -> Vec<&'static str> {
    FILES.iter().map(|f| f.0).collect()
}

/// `GET /`: the console's page.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "console_page",
    tag = "console",
    summary = "The web console",
    params(("If-None-Match" = Option<String>, Header, description = "The page's ETag: 304 while it is unchanged")),
    responses(
        (status = 200, description = "The page", content((String = "text/html"))),
        (status = 304, description = "Not modified"),
    ),
)]
pub(crate) fn page(headers: &HeaderMap) -> Result<Response, ApiError> {
    asset("index.html", headers)
}

/// `GET /ui/<name>`: one of the console's files.
#[utoipa::path(
    get,
    path = "/ui/{file}",
    operation_id = "console_file",
    tag = "console",
    summary = "A file of the web console",
    params(
        ("file" = String, Path, description = "The file's name"),
        ("If-None-Match" = Option<String>, Header, description = "The file's ETag: 304 while it is unchanged"),
    ),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/javascript"), (String = "text/css"), (String = "image/svg+xml"), (String = "text/html"),
        )),
        (status = 304, description = "Not modified"),
    ),
    extensions(("x-error-codes" = json!(["not_found"]))),
)]
pub(crate) fn file(name: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    asset(name, headers)
}

/// The file `name`, for `GET /` and `GET /ui/<name>`: the file, gzipped if the client accepts
/// it, or `304` when `If-None-Match` names its current ETag. An unknown
/// name is the API's 404.
fn asset(name: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let a = ASSETS.iter().find(|a| a.name == name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no console file `{}`", name.escape_debug()),
        )
    })?;
    let gz = a.gzip.as_ref().filter(|_| accepts_gzip(headers));
    let etag = match gz {
        Some(_) => format!("{}-gz\"", a.etag.trim_end_matches('"')),
        None => a.etag.clone(),
    };
    let fresh = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| none_match_hits(v, &etag));
    let mut r = if fresh {
        let mut r = Response::new(Bytes::new().into());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let body = gz.unwrap_or(&a.identity).clone();
        let mut r = Response::new(body.into());
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(a.content_type));
        if gz.is_some() {
            h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        r
    };
    let h = r.headers_mut();
    h.insert(ETAG, HeaderValue::from_str(&etag).expect("hex digits"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    Ok(r)
}

/// Whether `Accept-Encoding` allows gzip (`gzip` or `*` with a non-zero `q`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let Some(v) = headers.get(ACCEPT_ENCODING).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut star = false;
    for item in v.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match coding.as_str() {
            "gzip" | "x-gzip" => return q > 0.0,
            "*" => star = q > 0.0,
            _ => {}
        }
    }
    star
}

/// Whether an `If-None-Match` value names `etag` (weak comparison, as RFC
/// 9110 asks for this header; `*` matches any).
fn none_match_hits(value: &str, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_string();
    value.trim() == "*" || value.split(',').any(|t| strip(t) == strip(etag))
}

#[utoipa::path(
    get,
    path = "/whoami",
    operation_id = "whoami",
    tag = "console",
    summary = "The key's role, user, id and tenant",
    responses((status = 200, description = "Who the key is", body = Whoami)),
    security(("api_key" = []), ("bearer" = [])),
    extensions(("x-error-codes" = json!(["invalid_parameter"]))),
)]
/// `GET /whoami`: the role, user, key id and tenant of the request's key (never the
/// key). Authenticated like every other private route; takes no parameters.
pub(crate) async fn whoami(state: Arc<State>, ctx: Ctx, raw: String) -> Result<Response, ApiError> {
    let who = state.authenticate(&ctx)?;
    super::params::parse(&raw, &[], false)?;
    Ok(warp::reply::json(&Whoami {
        role: who.role,
        user_id: who.user_id,
        key_id: who.key_id,
        tenant: who.tenant,
        all_tenants: who.all_tenants,
    })
    .into_response())
}

/// The body of `GET /whoami`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Whoami {
    /// The key's role.
    role: crate::auth::Role,
    /// The key's user.
    user_id: String,
    /// The key's id (`k_…`), never the key.
    key_id: String,
    /// The key's tenant; `null`: the default tenant (or every tenant, for
    /// an all-tenants admin).
    #[schema(required = true)]
    tenant: Option<String>,
    /// An admin key of every tenant: reads any (`tenant=` picks one).
    all_tenants: bool,
}

/// Adds the security headers to a response (every route's, errors included).
pub(crate) fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn gzip_only_when_accepted() {
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "gzip, deflate, br, zstd"
        )])));
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "br;q=1, *;q=0.5"
        )])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "gzip;q=0")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "identity")])));
        assert!(!accepts_gzip(&headers(&[(
            "accept-encoding",
            "*;q=1, gzip;q=0"
        )])));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn if_none_match_compares_weakly() {
        assert!(none_match_hits("\"ab\"", "\"ab\""));
        assert!(none_match_hits("W/\"ab\"", "\"ab\""));
        assert!(none_match_hits("\"x\", \"ab\"", "\"ab\""));
        assert!(none_match_hits("*", "\"ab\""));
        assert!(!none_match_hits("\"abc\"", "\"ab\""));
    }

    /// Every file of `console/` is embedded (a new module must be listed in
    /// `FILES`, or the browser would get a 404 for it), and nothing else.
    #[test]
    fn every_console_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = file_names().iter().map(|s| s.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }

    /// No stored string may become markup or code: the console builds its
    /// DOM with `createElement` and `textContent` only, and has no inline
    /// script, style or event handler (the CSP would refuse them anyway).
    #[test]
    fn console_never_parses_strings_as_html_or_code() {
        let banned = [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "setTimeout(\"",
            "setTimeout('",
            "createContextualFragment",
            "DOMParser",
            "srcdoc",
            ".style.cssText",
            "setAttribute('style'",
            "setAttribute(\"style\"",
        ];
        for &(name, _, body) in FILES {
            let text = std::str::from_utf8(body).unwrap();
            for b in banned {
                assert!(!text.contains(b), "console/{name} contains `{b}`");
            }
            if name.ends_with(".html") || name.ends_with(".svg") {
                let lower = text.to_ascii_lowercase();
                assert!(!lower.contains(" style="), "console/{name}: inline style");
                assert!(
                    !has_handler_attribute(&lower),
                    "console/{name}: inline handler"
                );
                // Scripts only by `src`.
                for (i, _) in lower.match_indices("<script") {
                    let tag = &lower[i..i + lower[i..].find('>').unwrap()];
                    assert!(tag.contains(" src="), "console/{name}: inline script");
                }
            }
        }
    }

    /// Whether markup has an `on…=` attribute.
    fn has_handler_attribute(markup: &str) -> bool {
        markup.match_indices(" on").any(|(i, _)| {
            let rest = &markup[i + 3..];
            let name_len = rest.chars().take_while(char::is_ascii_lowercase).count();
            name_len > 0 && rest[name_len..].trim_start().starts_with('=')
        })
    }

    #[test]
    fn files_are_served_gzipped_with_etags_and_revalidated() {
        let gz = asset("app.js", &headers(&[("accept-encoding", "gzip")])).unwrap();
        assert_eq!(gz.status(), StatusCode::OK);
        assert_eq!(gz.headers()[CONTENT_ENCODING], "gzip");
        assert_eq!(gz.headers()[CACHE_CONTROL], "no-cache");
        let tag = gz.headers()[ETAG].to_str().unwrap().to_string();
        assert!(tag.ends_with("-gz\""), "{tag}");
        let plain = asset("app.js", &HeaderMap::new()).unwrap();
        assert!(plain.headers().get(CONTENT_ENCODING).is_none());
        assert_ne!(plain.headers()[ETAG], tag.as_str());
        let mut h = headers(&[("accept-encoding", "gzip")]);
        h.insert(IF_NONE_MATCH, HeaderValue::from_str(&tag).unwrap());
        assert_eq!(
            asset("app.js", &h).unwrap().status(),
            StatusCode::NOT_MODIFIED
        );
        // The identity form's tag does not revalidate the gzip form.
        let mut h = headers(&[("accept-encoding", "gzip")]);
        h.insert(IF_NONE_MATCH, plain.headers()[ETAG].clone());
        assert_eq!(asset("app.js", &h).unwrap().status(), StatusCode::OK);
        assert_eq!(
            asset("nope.js", &HeaderMap::new()).unwrap_err().status,
            StatusCode::NOT_FOUND
        );
    }
}
