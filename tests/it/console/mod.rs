//! The web console in a real browser: headless Chromium over WebDriver
//! against a real `evlog serve` on a temporary store. Sign-in, the paging
//! checklist (totals 0, 1, 50, 51), every filter, the details, export,
//! statistics, the admin panel, the live tail (and its resumption after a
//! server restart), a user key's scope, hostile strings shown as text, the
//! keyboard, both widths and colour schemes, tenants (the picker of an
//! all-tenants admin, the tenant of any other key), and no error in the
//! browser console. Screenshots go to `<target>/tmp/console-screenshots/`.
//!
//! Needs `chromium` and `chromium-driver` (Debian); a test fails, naming
//! them, when they are missing.

mod browser;
mod live;
mod pages;
mod paging;
mod purge;
mod resolve;
mod safety;
mod tenants;
mod views;

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::serve::{Serve, caught_up, client};
use crate::util::{Store, ids};

pub use browser::Browser;

/// A store and its server, with an admin key.
pub struct Site {
    pub store: Store,
    pub serve: Serve,
    pub admin: String,
}

impl Site {
    /// A server on a fresh store.
    pub fn start() -> Site {
        Site::on(Store::new())
    }

    /// A server on `store` (its first start prints the admin key).
    pub fn on(store: Store) -> Site {
        let serve = Serve::start(&store);
        let admin = serve.admin.clone();
        assert!(admin.starts_with("evk_"), "{}", serve.stdout());
        Site {
            store,
            serve,
            admin,
        }
    }

    /// Appends `events` (a JSON array) as admin; waits until they are searchable.
    pub fn append(&self, events: Value) -> Vec<String> {
        append(&self.serve, &self.admin, events)
    }

    /// Adds a key (`evlog keys add`) and returns it once the server (which
    /// reloads the keys file every second) accepts it.
    pub fn add_key(&self, role: &str, user: &str) -> String {
        self.add_key_with(role, user, &[])
    }

    /// As [`Site::add_key`], with more flags of `evlog keys add` (`--tenant acme`).
    pub fn add_key_with(&self, role: &str, user: &str, flags: &[&str]) -> String {
        let key = self.store.add_key_with(role, user, flags);
        let http = client();
        crate::serve::eventually("the server to load the new key", || {
            let r = http
                .get(self.serve.url("/whoami"))
                .header("X-API-Key", &key)
                .send()
                .ok()?;
            (r.status() == 200).then_some(())
        });
        key
    }
}

/// Appends `events` (a JSON array) with `key`; waits until they are
/// searchable. Blocking: call outside the async runtime.
pub fn append(serve: &Serve, key: &str, events: Value) -> Vec<String> {
    let r = client()
        .post(serve.url("/events"))
        .header("X-API-Key", key)
        .json(&events)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let body: Value = r.json().unwrap();
    caught_up(serve);
    body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// An async HTTP client (reqwest needs its TLS provider installed first).
pub fn http() -> reqwest::Client {
    evlog::checkpoint::deliver::install_tls_provider();
    reqwest::Client::new()
}

/// `GET path` with `params` as `key`, async (inside the browser runtime).
pub async fn api(base: &str, key: &str, path: &str, params: &[(&str, String)]) -> (u16, String) {
    let url = reqwest::Url::parse_with_params(&format!("{base}{path}"), params).unwrap();
    let r = crate::console::http()
        .get(url)
        .header("X-API-Key", key)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The ids `GET /events` answers for `params` (up to 1000), newest first.
pub async fn api_ids(base: &str, key: &str, params: &[(&str, String)]) -> Vec<String> {
    let mut p = params.to_vec();
    p.push(("limit", "1000".into()));
    let (status, body) = api(base, key, "/events", &p).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    ids(v["events"].as_array().unwrap())
}

/// `now - hours`, as the API takes it.
pub fn ago(hours: i64) -> String {
    rfc3339(Utc::now() - chrono::Duration::hours(hours))
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An event for `user` with a description.
pub fn ev(user: &str, desc: &str) -> Value {
    json!({"event_type": "commit", "user_id": user, "action_description": desc, "status": "success"})
}

/// A multi-threaded runtime for the browser steps (fantoccini is async).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
