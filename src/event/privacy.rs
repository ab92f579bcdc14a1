//! Privacy filters, applied to an event before a byte of it is written.
//!
//! - Metadata keys that look like secrets (`password`, `token`, ...) are
//!   masked (default) or dropped, at any depth.
//! - Optionally `source_ip` is truncated: IPv4 to its /24, IPv6 to its /48.
//! - Optionally `user_id` is replaced by a keyed hash (HMAC-SHA256), so that
//!   the same user always maps to the same opaque id.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use super::Event;

/// The value that replaces a masked secret.
pub const MASK: &str = "[REDACTED]";

/// Substrings that make a metadata key look like a secret (compared
/// case-insensitively, with `-` read as `_`).
pub const DEFAULT_SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "api_key",
    "apikey",
    "private_key",
    "credential",
    "cookie",
    "session_id",
];

/// What to do with a secret-looking metadata key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretMode {
    /// Keep the key, replace its value by `"[REDACTED]"`.
    #[default]
    Mask,
    /// Remove the key.
    Drop,
    /// Leave secrets as they are (not recommended).
    Off,
}

/// Privacy settings (`[privacy]` in the TOML file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Mask, drop or keep secret-looking metadata keys.
    pub secrets: SecretMode,
    /// Key substrings treated as secrets.
    pub secret_keys: Vec<String>,
    /// Truncate `source_ip` to IPv4 /24 or IPv6 /48.
    pub truncate_ip: bool,
    /// When set, `user_id` is stored as `uh_` + 32 hex digits of
    /// HMAC-SHA256(key, user_id).
    pub user_id_hash_key: Option<String>,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            secrets: SecretMode::Mask,
            secret_keys: DEFAULT_SECRET_KEYS.iter().map(|s| s.to_string()).collect(),
            truncate_ip: false,
            user_id_hash_key: None,
        }
    }
}

impl PrivacyConfig {
    /// Prepares the filters for repeated use (the store does this once at open).
    pub fn compile(&self) -> Privacy {
        // One automaton for every pattern, case-insensitive; `-` and `_` are
        // interchangeable in key names (`X-Api-Key` is `api_key`).
        let mut patterns: Vec<String> = Vec::new();
        for k in &self.secret_keys {
            let k = k.to_ascii_lowercase();
            patterns.push(k.replace('-', "_"));
            patterns.push(k.replace('_', "-"));
        }
        let matcher = aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(&patterns)
            .expect("secret key patterns are plain strings");
        Privacy {
            matcher,
            cfg: self.clone(),
        }
    }

    /// Applies every enabled filter to `event` in place.
    pub fn apply(&self, event: &mut Event) {
        self.compile().apply(event)
    }
}

/// [`PrivacyConfig`] ready to apply: the secret-key searchers are built once.
#[derive(Debug, Clone)]
pub struct Privacy {
    cfg: PrivacyConfig,
    matcher: aho_corasick::AhoCorasick,
}

impl Privacy {
    /// Applies every enabled filter to `event` in place.
    pub fn apply(&self, event: &mut Event) {
        if self.cfg.secrets != SecretMode::Off
            && let Some(meta) = event.metadata.as_mut()
        {
            self.filter_secrets(meta);
        }
        if self.cfg.truncate_ip
            && let Some(ip) = event.source_ip.as_mut()
            && let Ok(addr) = ip.parse::<IpAddr>()
        {
            *ip = truncate_ip(addr).to_string();
        }
        if let Some(key) = &self.cfg.user_id_hash_key {
            event.user_id = hash_user_id(key, &event.user_id);
        }
    }

    /// The `user_id` that events of `user_id` are stored under: its keyed
    /// hash when `user_id_hash_key` is set, else `user_id` itself (what
    /// [`Privacy::apply`] does to an event).
    pub fn stored_user_id(&self, user_id: &str) -> String {
        match &self.cfg.user_id_hash_key {
            Some(key) => hash_user_id(key, user_id),
            None => user_id.to_string(),
        }
    }

    /// What a `user_id` filter should match: the stored id of `user_id`,
    /// unless it already is a stored hash (`uh_…`), which is kept as given.
    pub fn user_id_filter(&self, user_id: &str) -> String {
        if self.hashes_user_ids() && is_user_id_hash(user_id) {
            user_id.to_string()
        } else {
            self.stored_user_id(user_id)
        }
    }

    /// Whether `user_id` is replaced by its hash.
    pub fn hashes_user_ids(&self) -> bool {
        self.cfg.user_id_hash_key.is_some()
    }

    fn is_secret(&self, key: &str) -> bool {
        self.matcher.is_match(key)
    }

    fn filter_secrets(&self, v: &mut Value) {
        match v {
            Value::Object(map) => {
                if self.cfg.secrets == SecretMode::Drop {
                    map.retain(|k, _| !self.is_secret(k));
                }
                for (k, val) in map.iter_mut() {
                    if self.is_secret(k) {
                        *val = Value::String(MASK.to_string());
                    } else {
                        self.filter_secrets(val);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.filter_secrets(i)),
            _ => {}
        }
    }
}

/// IPv4 → its /24 network address; IPv6 → its /48.
pub fn truncate_ip(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], 0))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
        }
    }
}

/// Whether `s` has the form of a hashed user id: `uh_` + 32 lowercase hex digits.
pub fn is_user_id_hash(s: &str) -> bool {
    s.strip_prefix("uh_").is_some_and(|h| {
        h.len() == 32
            && h.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    })
}

/// `uh_` + the first 32 hex digits of HMAC-SHA256(key, user_id).
pub fn hash_user_id(key: &str, user_id: &str) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()).expect("HMAC takes any key size");
    mac.update(user_id.as_bytes());
    let out = mac.finalize().into_bytes();
    format!("uh_{}", hex::encode(&out[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventType;
    use serde_json::json;

    fn ev(meta: Value) -> Event {
        Event::new(EventType::ApiRequest, "alice", "GET /").metadata(meta)
    }

    #[test]
    fn secrets_are_masked_at_any_depth_by_default() {
        let mut e = ev(json!({
            "method": "GET",
            "Password": "hunter2",
            "nested": {"X-Api-Key": "k", "list": [{"access_token": "t", "ok": 1}]}
        }));
        PrivacyConfig::default().apply(&mut e);
        assert_eq!(
            e.metadata.unwrap(),
            json!({
                "method": "GET",
                "Password": MASK,
                "nested": {"X-Api-Key": MASK, "list": [{"access_token": MASK, "ok": 1}]}
            })
        );
    }

    #[test]
    fn drop_mode_removes_secret_keys_and_off_keeps_them() {
        let cfg = PrivacyConfig {
            secrets: SecretMode::Drop,
            ..Default::default()
        };
        let mut e = ev(json!({"token": "t", "keep": 1}));
        cfg.apply(&mut e);
        assert_eq!(e.metadata.unwrap(), json!({"keep": 1}));

        let cfg = PrivacyConfig {
            secrets: SecretMode::Off,
            ..Default::default()
        };
        let mut e = ev(json!({"token": "t"}));
        cfg.apply(&mut e);
        assert_eq!(e.metadata.unwrap(), json!({"token": "t"}));
    }

    #[test]
    fn ip_truncation() {
        let cfg = PrivacyConfig {
            truncate_ip: true,
            ..Default::default()
        };
        let mut e = ev(json!({})).source_ip("192.168.17.201");
        cfg.apply(&mut e);
        assert_eq!(e.source_ip.as_deref(), Some("192.168.17.0"));
        let mut e = ev(json!({})).source_ip("2001:db8:abcd:12:1:2:3:4");
        cfg.apply(&mut e);
        assert_eq!(e.source_ip.as_deref(), Some("2001:db8:abcd::"));
        // Off by default.
        let mut e = ev(json!({})).source_ip("10.1.2.3");
        PrivacyConfig::default().apply(&mut e);
        assert_eq!(e.source_ip.as_deref(), Some("10.1.2.3"));
    }

    #[test]
    fn user_id_hashing_is_keyed_and_stable() {
        let cfg = PrivacyConfig {
            user_id_hash_key: Some("k1".into()),
            ..Default::default()
        };
        let mut a = ev(json!({}));
        cfg.apply(&mut a);
        let mut b = ev(json!({}));
        cfg.apply(&mut b);
        assert_eq!(a.user_id, b.user_id);
        assert!(a.user_id.starts_with("uh_") && a.user_id.len() == 35);
        assert_ne!(a.user_id, hash_user_id("k2", "alice"));
        assert_ne!(a.user_id, "alice");
        let p = cfg.compile();
        assert_eq!(p.stored_user_id("alice"), a.user_id);
        assert!(p.hashes_user_ids() && !PrivacyConfig::default().compile().hashes_user_ids());
        assert!(is_user_id_hash(&a.user_id) && !is_user_id_hash("uh_x"));
        assert_eq!(
            PrivacyConfig::default().compile().stored_user_id("alice"),
            "alice"
        );
    }
}
