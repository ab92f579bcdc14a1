//! Who is asking, and may they: keys from `X-API-Key` or
//! `Authorization: Bearer`, role checks after the route matched, and an
//! `auth_failure` event for every denial (within a budget per address or
//! key: see `denials`).

use std::net::{IpAddr, SocketAddr};

use serde_json::json;
use warp::Filter;
use warp::http::{HeaderMap, Method, StatusCode};

use super::State;
use super::denials::{Admit, MAX_DESCRIPTION_BYTES, MAX_PATH_BYTES, Source, truncated};
use super::reject::ApiError;
use crate::auth::{Denied, Granted, Principal, Role};
use crate::event::{DEFAULT_TENANT, Event, EventType, Level, Status};
use crate::index::Query;

/// `Retry-After` of 503 `keys_unavailable`.
const KEYS_RETRY_AFTER_SECS: u32 = 5;

/// The peer address of a connection, put into each request by the server
/// loop (absent under `warp::test` unless a test adds it).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The key a request presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Presented {
    None,
    Key(String),
    /// An `Authorization` header that is not `Bearer <key>`.
    Malformed,
}

/// What the handlers need to know about a request.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub method: Method,
    pub path: String,
    pub ip: Option<IpAddr>,
    pub key: Presented,
    pub request_id: Option<String>,
    pub headers: HeaderMap,
}

/// Extracts the [`Ctx`] of a request.
pub(crate) fn ctx() -> impl Filter<Extract = (Ctx,), Error = std::convert::Infallible> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<ClientAddr>())
        .map(
            |method, path: warp::path::FullPath, headers: HeaderMap, addr: Option<ClientAddr>| {
                Ctx {
                    method,
                    path: path.as_str().to_string(),
                    ip: addr.map(|a| a.0.ip()),
                    key: presented(&headers),
                    request_id: headers
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .filter(|s| !s.is_empty() && s.chars().count() <= 256)
                        .map(str::to_string),
                    headers,
                }
            },
        )
}

fn presented(h: &HeaderMap) -> Presented {
    if let Some(v) = h.get("x-api-key") {
        return match v.to_str() {
            Ok(k) if !k.trim().is_empty() => Presented::Key(k.trim().to_string()),
            _ => Presented::Malformed,
        };
    }
    match h.get(warp::http::header::AUTHORIZATION) {
        None => Presented::None,
        Some(v) => match v.to_str().ok().and_then(|s| {
            let (scheme, key) = s.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
        }) {
            Some(k) if !k.is_empty() => Presented::Key(k.to_string()),
            _ => Presented::Malformed,
        },
    }
}

impl State {
    /// The principal of the request's key: see [`State::grant`].
    pub(crate) fn authenticate(&self, ctx: &Ctx) -> Result<Principal, ApiError> {
        self.grant(ctx).map(|g| g.principal)
    }

    /// The principal of the request's key and its expiry: 403 without a
    /// key, 401 for an unknown, revoked, expired or malformed one (denials
    /// are recorded), 503 `keys_unavailable` while the keys file cannot be
    /// used (the server's fault, logged once, not recorded per request),
    /// 429 `rate_limited` beyond the key's rate (see `ratelimit`).
    pub(crate) fn grant(&self, ctx: &Ctx) -> Result<Granted, ApiError> {
        let key = match &ctx.key {
            Presented::None => {
                return Err(self.deny(
                    ctx,
                    None,
                    ApiError::new(
                        StatusCode::FORBIDDEN,
                        "api_key_required",
                        "this endpoint needs an API key (header X-API-Key or Authorization: Bearer)",
                    ),
                ));
            }
            Presented::Malformed => {
                return Err(self.deny(
                    ctx,
                    None,
                    ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "the Authorization header must be `Bearer <key>`",
                    ),
                ));
            }
            Presented::Key(k) => k,
        };
        let refused = match self.keys.authenticate(key, chrono::Utc::now()) {
            Ok(g) => {
                self.rates.take(&g.principal, std::time::Instant::now())?;
                return Ok(g);
            }
            Err(Denied::Unavailable(why)) => {
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "keys_unavailable",
                    format!(
                        "the server cannot load its keys file ({why}): no key is accepted until it does; see /health"
                    ),
                );
                e.retry_after = Some(KEYS_RETRY_AFTER_SECS);
                return Err(e);
            }
            Err(Denied::Unknown) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "unknown or revoked API key",
            ),
            Err(Denied::NoKeysFile) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "unknown or revoked API key (the server's keys file does not exist: no key is accepted)",
            ),
            Err(Denied::Expired { key_id, at }) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "key_expired",
                format!(
                    "API key {key_id} expired at {}",
                    crate::event::format_timestamp(&at)
                ),
            ),
        };
        Err(self.deny(ctx, None, refused))
    }

    /// Restricts a read to what `who` may see: admin everything, a user
    /// only its own events (asking for another user is a 403), a service
    /// nothing; and only its tenant's (see [`State::scope_tenant`]).
    pub(crate) fn scope_read(
        &self,
        ctx: &Ctx,
        who: &Principal,
        q: &mut Query,
    ) -> Result<(), ApiError> {
        self.scope_role(ctx, who, q)?;
        self.scope_tenant(ctx, who, q)
    }

    /// The tenant filter of a read by `who`: its tenant's events (the
    /// default tenant's for a key without one), whatever it asks for (naming
    /// another tenant is a 403); for an all-tenants admin, the `tenant=` it
    /// gave, else every tenant.
    fn scope_tenant(&self, ctx: &Ctx, who: &Principal, q: &mut Query) -> Result<(), ApiError> {
        let Some(own) = who.tenant_scope() else {
            return Ok(());
        };
        if q.tenant.as_deref().is_some_and(|t| t != own) {
            return Err(self.deny(
                ctx,
                Some(who),
                ApiError::forbidden(format!(
                    "tenant: a key of {} reads only its tenant's events",
                    tenant_named(own)
                )),
            ));
        }
        q.tenant = Some(own.to_string());
        Ok(())
    }

    /// Refuses (403, recorded) what acts on whole day files, which every
    /// tenant's events share (rotation, purge), to any key but an
    /// all-tenants admin; `what` names the action ("run rotation").
    pub(crate) fn require_all_tenants(
        &self,
        ctx: &Ctx,
        who: &Principal,
        what: &str,
    ) -> Result<(), ApiError> {
        if who.role == Role::Admin && who.all_tenants {
            return Ok(());
        }
        let why = if who.role == Role::Admin {
            format!(
                "only an all-tenants admin key may {what}: it acts on whole day files, which every tenant's events share, and this admin key is of {} (see `evlog keys add --all-tenants`)",
                tenant_named(who.tenant_scope().unwrap_or(DEFAULT_TENANT))
            )
        } else {
            format!("only an all-tenants admin key may {what}")
        };
        Err(self.deny(ctx, Some(who), ApiError::forbidden(why)))
    }

    fn scope_role(&self, ctx: &Ctx, who: &Principal, q: &mut Query) -> Result<(), ApiError> {
        match who.role {
            Role::Admin => {
                // With hashing on, events are stored under the hashed id: an
                // admin may filter by the user or by the stored id.
                if let Some(u) = q.user_id.as_mut() {
                    *u = self.log.user_id_filter(u);
                }
                Ok(())
            }
            Role::Service => Err(self.deny(
                ctx,
                Some(who),
                ApiError::forbidden("a service key may append events but not read them"),
            )),
            Role::User => {
                // Always the hash of the key's user when hashing is on (never
                // a value taken as already hashed: a user named like a hash
                // must not read the events of the user it names).
                let own = self.log.stored_user_id(&who.user_id);
                if q.user_id
                    .as_ref()
                    .is_some_and(|u| *u != who.user_id && *u != own)
                {
                    return Err(self.deny(
                        ctx,
                        Some(who),
                        ApiError::forbidden(format!(
                            "user_id: a user key reads only its own events (user_id {})",
                            who.user_id
                        )),
                    ));
                }
                q.user_id = Some(own);
                Ok(())
            }
        }
    }

    /// Records an `auth_failure` event for a denied request and returns the
    /// error. The event goes through a fire-and-forget queue, never through
    /// HTTP, so recording a denial cannot itself be denied or recorded
    /// again; it names the key by id, never the key. It is recorded within
    /// its source's budget (see [`State::record_denial`]): its key's, or
    /// for a request without a valid key (`who` is `None`) its address's.
    /// The path and the description are cut to a bounded size.
    pub(crate) fn deny(&self, ctx: &Ctx, who: Option<&Principal>, e: ApiError) -> ApiError {
        let source = match who {
            None => Source::of(ctx.ip),
            Some(p) => Source::key(&p.key_id, &p.user_id, p.event_tenant()),
        };
        self.record_denial(ctx, &source, || {
            let (path, path_cut) = truncated(&ctx.path, MAX_PATH_BYTES);
            let description = format!("{} {path} denied: {}", ctx.method, e.message);
            let (description, _) = truncated(&description, MAX_DESCRIPTION_BYTES);
            let mut meta = json!({
                "method": ctx.method.as_str(),
                "path": path,
                "http_status": e.status.as_u16(),
                "code": e.code,
                "key_id": who.map(|p| p.key_id.as_str()),
                "role": who.map(|p| p.role.as_str()),
            });
            if path_cut {
                meta["path_bytes"] = ctx.path.len().into();
            }
            let mut event = Event::new(
                EventType::AuthFailure,
                who.map_or("anonymous", |p| p.user_id.as_str()),
                description,
            )
            .status(Status::Failure)
            .level(Level::Security)
            .metadata(meta);
            event.tenant = who.and_then(|p| p.event_tenant()).map(str::to_string);
            event
        });
        e
    }

    /// Records the `auth_failure` event `event()` (plus the request's
    /// address and id) of a denial from `source` if its budget allows;
    /// otherwise the denial is counted for its source's summary (see
    /// `denials`).
    pub(crate) fn record_denial(&self, ctx: &Ctx, source: &Source, event: impl FnOnce() -> Event) {
        let now = std::time::Instant::now();
        if self.denials.admit(source, now) == Admit::Suppress {
            return;
        }
        let mut event = event();
        if let Some(ip) = ctx.ip {
            event = event.source_ip(ip.to_string());
        }
        if let Some(r) = &ctx.request_id {
            event = event.request_id(r.clone());
        }
        self.denials.record(source, event, now, &self.appender);
    }
}

/// A tenant for messages: `tenant acme`, or `the default tenant`.
pub(crate) fn tenant_named(t: &str) -> String {
    if t == DEFAULT_TENANT {
        "the default tenant".into()
    } else {
        format!("tenant {t}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_x_api_key_or_bearer() {
        let mut h = HeaderMap::new();
        assert_eq!(presented(&h), Presented::None);
        h.insert("authorization", "Bearer evk_1".parse().unwrap());
        assert_eq!(presented(&h), Presented::Key("evk_1".into()));
        h.insert("authorization", "Basic dXNlcg==".parse().unwrap());
        assert_eq!(presented(&h), Presented::Malformed);
        h.insert("x-api-key", "evk_2".parse().unwrap());
        assert_eq!(presented(&h), Presented::Key("evk_2".into()));
    }
}
