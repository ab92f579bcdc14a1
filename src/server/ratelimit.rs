//! Requests per key: a token bucket per key, sized by its role
//! (`rate_{admin,user,service}_per_sec` and `_burst` of [`Limits`]; a rate
//! of 0 turns the role's limit off). A request beyond its key's bucket is
//! answered 429 `rate_limited` with `Retry-After` (the seconds until a
//! token is back) and counted in `evlog_rate_limited_total{role}`; it is
//! not an `auth_failure`. The bucket is taken where a key is authenticated
//! (`State::grant`), so every keyed route draws from it; requests without
//! a valid key are budgeted by address in `denials`.
//!
//! The table holds one bucket per key id that asked since the server
//! started: at most as many as the keys file ever held.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use warp::http::StatusCode;

use super::Limits;
use super::reject::ApiError;
use crate::auth::{Principal, Role};

/// One role's rate: tokens per second and the bucket's size.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rate {
    per_sec: f64,
    burst: f64,
}

impl Rate {
    /// `None` when off (`per_sec` 0); a burst of 0 is one second's worth.
    fn of(per_sec: u32, burst: u32) -> Option<Rate> {
        (per_sec > 0).then(|| Rate {
            per_sec: f64::from(per_sec),
            burst: f64::from(if burst == 0 { per_sec } else { burst }),
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The per-key buckets.
pub(crate) struct RateLimits {
    admin: Option<Rate>,
    user: Option<Rate>,
    service: Option<Rate>,
    buckets: Mutex<HashMap<String, Bucket>>,
    limited: prometheus::IntCounterVec,
}

impl RateLimits {
    /// The rates of `limits`, counting refusals into `limited` (by role).
    pub(crate) fn new(limits: &Limits, limited: prometheus::IntCounterVec) -> RateLimits {
        RateLimits {
            admin: Rate::of(limits.rate_admin_per_sec, limits.rate_admin_burst),
            user: Rate::of(limits.rate_user_per_sec, limits.rate_user_burst),
            service: Rate::of(limits.rate_service_per_sec, limits.rate_service_burst),
            buckets: Mutex::default(),
            limited,
        }
    }

    /// Takes a token of `who`'s bucket at `now`, or 429 `rate_limited`.
    pub(crate) fn take(&self, who: &Principal, now: Instant) -> Result<(), ApiError> {
        let (rate, name) = match who.role {
            Role::Admin => (self.admin, "rate_admin_per_sec"),
            Role::User => (self.user, "rate_user_per_sec"),
            Role::Service => (self.service, "rate_service_per_sec"),
        };
        let Some(rate) = rate else { return Ok(()) };
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let b = buckets.entry(who.key_id.clone()).or_insert(Bucket {
            tokens: rate.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate.per_sec).min(rate.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - b.tokens) / rate.per_sec).ceil().max(1.0);
        drop(buckets);
        self.limited.with_label_values(&[who.role.as_str()]).inc();
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "key {} sent more requests than its role allows (limit {name} = {}, burst {}); retry after {wait} s",
                who.key_id, rate.per_sec, rate.burst
            ),
        );
        e.retry_after = Some(wait as u32);
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key(id: &str, role: Role) -> Principal {
        Principal::new(id, role, "u")
    }

    fn counter() -> prometheus::IntCounterVec {
        prometheus::IntCounterVec::new(prometheus::Opts::new("t", "t"), &["role"]).unwrap()
    }

    #[test]
    fn a_key_gets_its_burst_then_429_until_a_token_is_back() {
        let limits = Limits {
            rate_user_per_sec: 2,
            rate_user_burst: 3,
            ..Limits::default()
        };
        let c = counter();
        let r = RateLimits::new(&limits, c.clone());
        let (a, b) = (key("a", Role::User), key("b", Role::User));
        let t0 = Instant::now();
        for _ in 0..3 {
            r.take(&a, t0).unwrap();
        }
        let e = r.take(&a, t0).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (429, "rate_limited"));
        assert_eq!(e.retry_after, Some(1));
        assert!(e.message.contains("rate_user_per_sec"), "{}", e.message);
        // Another key has its own bucket.
        r.take(&b, t0).unwrap();
        // Half a second at 2/s gives one token back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        r.take(&a, t1).unwrap();
        assert!(r.take(&a, t1).is_err());
        assert_eq!(c.with_label_values(&["user"]).get(), 2);
        // The bucket never holds more than the burst.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..3 {
            r.take(&a, t2).unwrap();
        }
        assert!(r.take(&a, t2).is_err());
    }

    #[test]
    fn a_rate_of_zero_is_off_and_a_burst_of_zero_is_one_seconds_worth() {
        let limits = Limits {
            rate_admin_per_sec: 0,
            rate_service_per_sec: 5,
            rate_service_burst: 0,
            ..Limits::default()
        };
        let r = RateLimits::new(&limits, counter());
        let t = Instant::now();
        for _ in 0..10_000 {
            r.take(&key("adm", Role::Admin), t).unwrap();
        }
        for _ in 0..5 {
            r.take(&key("svc", Role::Service), t).unwrap();
        }
        let e = r.take(&key("svc", Role::Service), t).unwrap_err();
        assert_eq!(e.retry_after, Some(1));
    }
}
