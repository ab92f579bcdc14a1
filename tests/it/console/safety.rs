//! Safety: a user key sees only its own events everywhere in the console;
//! stored strings built to be markup (`<img src=x onerror=…>`, `<script>`)
//! show as text and run nothing; the console's files and every response
//! carry the security headers; `/whoami` and the files' caching.

use serde_json::{Value, json};

use super::pages::{Details, Events, Header, SignIn, Stats};
use super::{Browser, Site, runtime};
use crate::serve::client;

/// Strings that would run script if any of them were parsed as HTML.
const HOSTILE: &[&str] = &[
    "<img src=x onerror=\"window.__xss=1;alert(1)\">",
    "<script>window.__xss=2</script>",
    "\"><svg onload=\"window.__xss=3\">",
    "<a href=\"javascript:window.__xss=4\">click</a>",
];

#[test]
fn a_user_key_sees_only_its_own_events_everywhere() {
    let site = Site::start();
    let alice = site.add_key("user", "alice");
    let mut batch: Vec<Value> = (0..3)
        .map(|i| super::ev("alice", &format!("mine {i}")))
        .collect();
    batch.extend((0..4).map(|i| super::ev("bob", &format!("not mine {i}"))));
    site.append(Value::Array(batch));
    let base = site.serve.base.clone();

    runtime().block_on(async {
        let b = Browser::start(&base).await;
        b.goto("/").await;
        SignIn(&b).sign_in(&alice).await;
        assert_eq!(Header(&b).who().await, "alice (user) · default tenant");
        assert_eq!(
            Header(&b).views().await,
            ["Events", "Statistics"],
            "no Admin for a user key"
        );
        let events = Events(&b);
        events.settled().await;
        let rows = events.rows().await;
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r.user == "alice"), "{rows:?}");
        let user = b.control("User").await;
        assert!(!user.is_enabled().await.unwrap());
        assert_eq!(user.prop("value").await.unwrap().as_deref(), Some("alice"));

        Header(&b).open("Statistics").await;
        assert_eq!(Stats(&b).card("Events").await, "3");
        assert_eq!(Stats(&b).card("Unique users").await, "1");

        // Another user's events by link: the API refuses, in words.
        b.goto("/?user_id=bob").await;
        b.wait("the refusal", || async { events.problem().await })
            .await;
        let problem = events.problem().await.unwrap();
        assert!(
            problem.contains("a user key reads only its own events") && problem.contains("403"),
            "{problem}"
        );
        // The admin panel by link: refused by the console, and by the API.
        b.goto("/?view=admin").await;
        b.wait("the admin refusal", || async {
            b.shows("The admin panel needs an admin key.")
                .await
                .then_some(())
        })
        .await;
        let r = crate::console::http()
            .post(format!("{base}/admin/rotate?dry_run=true"))
            .header("X-API-Key", &alice)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        b.assert_no_errors(&["403 (Forbidden)"]).await;
        b.quit().await;
    });
}

#[test]
fn stored_markup_shows_as_text_and_runs_nothing() {
    let site = Site::start();
    let evil_user = HOSTILE[0];
    let description = format!("{} {}", HOSTILE[1], HOSTILE[2]);
    let mut meta = serde_json::Map::new();
    for (i, h) in HOSTILE.iter().enumerate() {
        meta.insert(h.to_string(), json!(format!("value {i} {h}")));
    }
    let ids = site.append(json!([{
        "event_type": "commit",
        "user_id": evil_user,
        "action_description": description,
        "status": "success",
        "request_id": HOSTILE[3],
        "files_changed": HOSTILE,
        "comments": HOSTILE[1],
        "metadata": meta,
    }]));
    let base = site.serve.base.clone();
    let admin = site.admin.clone();

    runtime().block_on(async {
        let b = Browser::start(&base).await;
        b.goto("/").await;
        SignIn(&b).sign_in(&admin).await;
        Header(&b).who().await;
        let events = Events(&b);
        // Typed into the User filter, carried in the URL, sent to the API.
        b.enter("User", evil_user).await;
        events
            .until("the hostile event", async |e: &Events<'_>| e.ids().await == ids)
            .await;
        let row = &events.rows().await[0];
        assert_eq!(row.user, evil_user);
        assert_eq!(row.description, description);

        events.key_on_row(0, fantoccini::key::Key::Enter).await;
        let details = Details(&b);
        details.wait_for(&ids[0]).await;
        assert_eq!(details.field("User").await.unwrap(), evil_user);
        assert_eq!(details.field("Description").await.unwrap(), description);
        assert_eq!(details.field("Request id").await.unwrap(), HOSTILE[3]);
        assert_eq!(details.field("Files").await.unwrap(), HOSTILE.join("\n"));
        assert_eq!(details.field("Comments").await.unwrap(), HOSTILE[1]);
        let metadata = details.field("Metadata").await.unwrap();
        for h in HOSTILE {
            let key = serde_json::to_string(h).unwrap();
            assert!(metadata.contains(&key), "metadata key {key} shown as text: {metadata}");
        }

        // Nothing became markup, nothing ran, nothing was even fetched.
        let (elements, canary): (u32, Option<i64>) = b
            .js(
                "return [document.querySelectorAll('main img, main script, main iframe, main a[href^=javascript], dialog img, dialog script, dialog svg, dialog a[href^=javascript]').length,
                         window.__xss ?? null]",
                vec![],
            )
            .await;
        assert_eq!((elements, canary), (0, None), "no element made from a stored string, no script ran");
        assert!(b.client.get_alert_text().await.is_err(), "no alert opened");
        details.escape().await;
        let resources: Vec<String> = b
            .js("return performance.getEntriesByType('resource').map(r => r.name)", vec![])
            .await;
        assert!(
            resources.iter().all(|r| r.starts_with(&base)),
            "only this origin: {resources:?}"
        );
        assert!(!resources.iter().any(|r| r.ends_with("/x")), "no <img src=x> loaded");
        // A script or handler blocked by the CSP would show as an error here.
        b.assert_no_errors(&[]).await;
        b.quit().await;
    });
}

#[test]
fn console_files_are_compressed_cached_and_every_response_is_hardened() {
    let site = Site::start();
    let http = client();
    let csp = evlog::server::CONTENT_SECURITY_POLICY;
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    for path in [
        "/",
        "/ui/app.js",
        "/health",
        "/events",
        "/nope",
        "/ui/nope.js",
    ] {
        let r = http.get(site.serve.url(path)).send().unwrap();
        let h = r.headers();
        assert_eq!(h["content-security-policy"], csp, "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
    }
    // The page and every file: gzip when accepted, an ETag, revalidation.
    for name in evlog::server::console_files() {
        let path = if name == "index.html" {
            "/".to_string()
        } else {
            format!("/ui/{name}")
        };
        let plain = http.get(site.serve.url(&path)).send().unwrap();
        assert_eq!(plain.status(), 200, "{path}");
        assert!(plain.headers().get("content-encoding").is_none());
        assert_eq!(plain.headers()["cache-control"], "no-cache");
        let body = plain.bytes().unwrap();
        let gz = http
            .get(site.serve.url(&path))
            .header("accept-encoding", "gzip, deflate, br")
            .send()
            .unwrap();
        let etag = gz.headers()["etag"].clone();
        let zipped = gz.headers().get("content-encoding").is_some();
        let raw = gz.bytes().unwrap();
        if zipped {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&raw[..]), &mut out)
                .unwrap();
            assert_eq!(out, body, "{path}: the gzip form holds the file");
            assert!(raw.len() < body.len());
        } else {
            assert_eq!(raw, body);
        }
        let again = http
            .get(site.serve.url(&path))
            .header("accept-encoding", "gzip")
            .header("if-none-match", etag.clone())
            .send()
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert!(again.bytes().unwrap().is_empty());
    }
    let r = http.get(site.serve.url("/ui/nope.js")).send().unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "not_found");

    // /whoami: the key's role, user and id; never the key; no key → 403.
    let bob = site.add_key("user", "bob");
    let r = http
        .get(site.serve.url("/whoami"))
        .header("X-API-Key", &bob)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let me: Value = r.json().unwrap();
    assert_eq!(
        (me["role"].as_str(), me["user_id"].as_str()),
        (Some("user"), Some("bob"))
    );
    assert!(me["key_id"].as_str().unwrap().starts_with("k_"));
    assert!(!me.to_string().contains(&bob[4..]));
    assert_eq!(
        http.get(site.serve.url("/whoami")).send().unwrap().status(),
        403
    );
    let r = http
        .get(site.serve.url("/whoami?x=1"))
        .header("X-API-Key", &bob)
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
}
