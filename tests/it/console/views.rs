//! Every filter against the API's answer for the same filters, the details
//! of an event, export (the downloaded file against `/events/export`), the
//! statistics and their bars, the admin panel's health and rotation, and
//! both widths and colour schemes (with the screenshots).

use std::path::PathBuf;
use std::sync::Arc;

use evlog::{Event, EventType, ManualClock};
use fantoccini::key::Key;
use serde_json::{Value, json};

use super::browser::{press, screenshot_dir};
use super::pages::{Admin, Details, Events, Header, SignIn, Stats};
use super::{Browser, Site, ago, api, api_ids, runtime};
use crate::util::{Store, open_with_clock};

/// A store with two events of ten days ago (a day file rotation compresses).
fn store_with_an_old_day() -> (Store, Vec<String>) {
    let store = Store::new();
    let ten_days_ago = chrono::Utc::now() - chrono::Duration::days(10);
    let clock = Arc::new(ManualClock::new(ten_days_ago));
    let log = open_with_clock(store.path(), &clock);
    let ids = (0..2)
        .map(|i| {
            log.append(Event::new(
                EventType::Custom("deploy".into()),
                "old",
                format!("old deploy {i}"),
            ))
            .unwrap()
            .to_string()
        })
        .collect();
    log.flush().unwrap();
    (store, ids)
}

fn seed() -> Value {
    json!([
        {"event_type": "commit", "user_id": "alice", "action_description": "Fix parser rollback",
         "status": "success", "request_id": "req-a1", "source": "api-service", "duration_ms": 12,
         "files_changed": ["src/lib.rs", "src/parser.rs"], "comments": "looks good",
         "metadata": {"branch": "main", "nested": {"k": [1, 2]}}},
        {"event_type": "push", "user_id": "alice", "action_description": "Push to main", "status": "success"},
        {"event_type": "deploy", "user_id": "bob", "action_description": "Deploy api rollback to eu-west-1",
         "status": "failure", "level": "error", "request_id": "req-b1", "source": "background-job",
         "duration_ms": 950},
        {"event_type": "login", "user_id": "carol", "action_description": "Login from a new device",
         "status": "success", "level": "security"},
        {"event_type": "commit", "user_id": "bob", "action_description": "Refactor the store",
         "status": "failure", "level": "warning", "duration_ms": 40},
        {"event_type": "push", "user_id": "carol", "action_description": "Push a feature branch", "status": "pending"},
        {"event_type": "api_request", "user_id": "alice", "action_description": "GET /v1/things",
         "status": "success", "source": "api-service", "duration_ms": 5},
        {"event_type": "logout", "user_id": "bob", "action_description": "Logout", "status": "success"}
    ])
}

/// Waits until the rows shown are `want` (the API's answer), naming `what`.
async fn expect_rows(b: &Browser, what: &str, want: &[String]) {
    Events(b)
        .until(what, async |e: &Events<'_>| e.ids().await == want)
        .await;
}

/// The file the browser saved with extension `ext`, once complete.
async fn downloaded(b: &Browser, ext: &str) -> PathBuf {
    let dir = b.downloads().to_path_buf();
    let ext = ext.to_string();
    b.wait("the download", || {
        let (dir, ext) = (dir.clone(), ext.clone());
        async move {
            let names: Vec<PathBuf> = std::fs::read_dir(&dir)
                .ok()?
                .map(|e| e.unwrap().path())
                .collect();
            // Chromium writes `.crdownload` until the file is complete.
            if names
                .iter()
                .any(|p| p.to_string_lossy().ends_with(".crdownload"))
            {
                return None;
            }
            names
                .into_iter()
                .find(|p| p.extension().is_some_and(|x| x == ext.as_str()))
        }
    })
    .await
}

#[test]
fn filters_details_export_statistics_admin_widths_and_schemes() {
    let (store, old) = store_with_an_old_day();
    let site = Site::on(store);
    site.append(seed());
    let base = site.serve.base.clone();
    let admin = site.admin.clone();

    runtime().block_on(async {
        let b = Browser::start(&base).await;
        let events = Events(&b);
        b.goto("/").await;
        SignIn(&b).sign_in(&admin).await;
        Header(&b).who().await;
        let week = || ("start", ago(24 * 7));

        // Time range: the default week, presets, all time, a custom range.
        expect_rows(&b, "the last 7 days", &api_ids(&base, &admin, &[week()]).await).await;
        for (option, hours) in [("Last 30 days", 24 * 30), ("Last 24 hours", 24)] {
            b.choose("Time range", option).await;
            let want = api_ids(&base, &admin, &[("start", ago(hours))]).await;
            expect_rows(&b, option, &want).await;
            assert_eq!(want.iter().any(|id| old.contains(id)), hours > 24 * 10, "{option}");
        }
        b.choose("Time range", "All time").await;
        let all = api_ids(&base, &admin, &[("start", "0001-01-01T00:00:00Z".into())]).await;
        expect_rows(&b, "all time", &all).await;
        let (from, to) = (ago(24 * 12), ago(24 * 8));
        b.goto(&format!("/?start={from}&end={to}")).await;
        let want = api_ids(&base, &admin, &[("start", from.clone()), ("end", to.clone())]).await;
        assert_eq!(want.len(), 2);
        expect_rows(&b, "a custom range", &want).await;
        assert!(!b.control("From").await.prop("value").await.unwrap().unwrap_or_default().is_empty());
        assert!(!b.control("To").await.prop("value").await.unwrap().unwrap_or_default().is_empty());

        // Reset: back to the defaults (a bare URL).
        b.button("Reset").await.click().await.unwrap();
        b.wait("a bare URL", || async { (b.location().await == "/").then_some(()) })
            .await;

        // Event types (two), status, level, user, request id, full text.
        events.toggle_type("commit").await;
        events.toggle_type("push").await;
        let want = api_ids(
            &base,
            &admin,
            &[week(), ("event_type", "commit".into()), ("event_type", "push".into())],
        )
        .await;
        assert_eq!(want.len(), 4);
        expect_rows(&b, "two event types", &want).await;
        b.button("Reset").await.click().await.unwrap();
        for (label, option, param) in [("Status", "failure", "status"), ("Level", "error", "level")] {
            b.choose(label, option).await;
            let want = api_ids(&base, &admin, &[week(), (param, option.into())]).await;
            assert!(!want.is_empty());
            expect_rows(&b, label, &want).await;
            let rows = events.rows().await;
            assert!(rows.iter().all(|r| [&r.status, &r.level][usize::from(param == "level")] == option));
            b.choose(label, "Any").await;
        }
        // Lists work from the keyboard too: ↓ on Level picks the next level.
        press(&b.control("Level").await, Key::Down).await;
        let want = api_ids(&base, &admin, &[week(), ("level", "info".into())]).await;
        expect_rows(&b, "level info by keyboard", &want).await;
        assert!(b.location().await.contains("level=info"));
        press(&b.control("Level").await, Key::Up).await;
        b.wait("any level", || async {
            (!b.location().await.contains("level=")).then_some(())
        })
        .await;
        for (label, value, param, n) in [
            ("User", "alice", "user_id", 3),
            ("Request id", "req-b1", "request_id", 1),
            ("Source", "api-service", "source", 2),
            ("Search", "rollback", "q", 2),
        ] {
            b.enter(label, value).await;
            let want = api_ids(&base, &admin, &[week(), (param, value.into())]).await;
            assert_eq!(want.len(), n, "{label}");
            expect_rows(&b, label, &want).await;
            assert!(b.location().await.contains(&format!("{param}={value}")));
            b.enter(label, "").await;
        }

        // A mistake the API refuses is shown in its words.
        b.enter("Search", "../").await;
        let problem = b
            .wait("the refusal", || async { Events(&b).problem().await })
            .await;
        assert!(
            problem.contains("has no word to search for") && problem.contains("400 invalid_parameter"),
            "{problem}"
        );
        b.assert_no_errors(&["400 (Bad Request)"]).await;
        b.enter("Search", "").await;
        expect_rows(&b, "the week again", &api_ids(&base, &admin, &[week()]).await).await;

        // Times: local, the UTC time on hover (title), or UTC with the toggle.
        let rows = events.rows().await;
        assert!(rows.iter().all(|r| r.utc.starts_with("UTC ") && !r.time.ends_with("UTC")));
        b.control("Times in UTC").await.click().await.unwrap();
        events
            .until("UTC times", async |e: &Events<'_>| {
                e.rows().await.iter().all(|r| r.time.ends_with(" UTC"))
            })
            .await;
        let r = &events.rows().await[0];
        // `UTC 2026-11-23T08:00:00.123456Z` shows as `2026-11-23 08:00:00 UTC`.
        assert_eq!(r.time, format!("{} {} UTC", &r.utc[4..14], &r.utc[15..23]));
        assert!(b.location().await.contains("tz=utc"));
        b.control("Times in UTC").await.click().await.unwrap();

        // Details: every field of the stored event.
        b.enter("Request id", "req-a1").await;
        let one = api_ids(&base, &admin, &[week(), ("request_id", "req-a1".into())]).await;
        expect_rows(&b, "one event", &one).await;
        let (_, stored) = api(&base, &admin, &format!("/events/{}", one[0]), &[]).await;
        let stored: Value = serde_json::from_str(&stored).unwrap();
        events.key_on_row(0, Key::Enter).await;
        let details = Details(&b);
        details.wait_for(&one[0]).await;
        let labels = details.labels().await;
        for l in [
            "Id", "Time", "Type", "User", "Status", "Level", "Description", "Request id", "Source",
            "Duration (ms)", "Files", "Comments", "Metadata", "Seq", "Hash",
        ] {
            assert!(labels.contains(&l.to_string()), "{l} in {labels:?}");
        }
        assert_eq!(labels.len(), stored.as_object().unwrap().len(), "one per stored field");
        assert_eq!(details.field("Seq").await.unwrap(), stored["seq"].to_string());
        assert_eq!(details.field("Hash").await.unwrap(), stored["hash"].as_str().unwrap());
        let meta = details.field("Metadata").await.unwrap();
        assert!(meta.contains("\n  \"branch\": \"main\""), "pretty-printed: {meta}");
        assert_eq!(details.field("Files").await.unwrap(), "src/lib.rs\nsrc/parser.rs");
        b.link(&format!("GET /events/{}", one[0])).await;
        b.cdp(
            "Browser.grantPermissions",
            json!({"permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]}),
        )
        .await;
        b.button("Copy id").await.click().await.unwrap();
        b.wait("the copy", || async { b.shows("Id copied").await.then_some(()) })
            .await;
        let copied: String = b
            .js_async("navigator.clipboard.readText().then(arguments[arguments.length - 1])")
            .await;
        assert_eq!(copied, one[0]);
        details.escape().await;
        b.enter("Request id", "").await;

        // Export: the downloaded file is what the API exports for the filters.
        b.enter("User", "alice").await;
        for (option, ext) in [("CSV", "csv"), ("NDJSON", "ndjson")] {
            b.choose("Export as", option).await;
            b.button("Export").await.click().await.unwrap();
            let file = downloaded(&b, ext).await;
            let got = std::fs::read_to_string(&file).unwrap();
            let (status, want) = api(
                &base,
                &admin,
                "/events/export",
                &[week(), ("user_id", "alice".into()), ("format", ext.into())],
            )
            .await;
            assert_eq!(status, 200);
            assert_eq!(got, want, "{option} export");
            assert_eq!(got.lines().count(), 3 + usize::from(ext == "csv"));
            std::fs::remove_file(file).unwrap();
        }

        // Statistics on the same filters; a bar opens the events it counts.
        Header(&b).open("Statistics").await;
        let stats = Stats(&b);
        let (_, want) = api(&base, &admin, "/events/stats", &[week(), ("user_id", "alice".into())]).await;
        let want: Value = serde_json::from_str(&want).unwrap();
        assert_eq!(stats.card("Events").await, want["total"].to_string());
        assert_eq!(stats.card("Unique users").await, "1");
        let mut bars = stats.bars("By type").await;
        bars.sort();
        assert_eq!(
            bars,
            [("api_request", "1"), ("commit", "1"), ("push", "1")].map(|(a, b)| (a.to_string(), b.to_string()))
        );
        stats.click_bar("By type", "commit").await;
        let want = api_ids(&base, &admin, &[week(), ("user_id", "alice".into()), ("event_type", "commit".into())]).await;
        expect_rows(&b, "the events of a bar", &want).await;
        assert!(events.rows().await.iter().all(|r| r.ty == "commit" && r.user == "alice"));

        // Admin: health, then a rotation planned and run.
        Header(&b).open("Admin").await;
        let panel = Admin(&b);
        assert_eq!(panel.fact("Status").await, "ok");
        assert_eq!(
            panel.rotate("Plan rotation (dry run)", "Plan:").await,
            "Plan: 1 day to compress, 0 to delete"
        );
        assert_eq!(
            panel.rotate("Run rotation", "Done:").await,
            "Done: 1 day compressed, 0 deleted, 0 failed"
        );

        // Both widths, both colour schemes: no sideways scrolling; dark is dark.
        let mut backgrounds = Vec::new();
        for dark in [false, true] {
            for (width, height) in [(1280, 900), (390, 844)] {
                b.emulate(width, height, dark).await;
                b.goto("/?range=all").await;
                events.settled().await;
                let (scroll, inner, bg): (u32, u32, String) = b
                    .js(
                        "return [document.documentElement.scrollWidth, innerWidth, getComputedStyle(document.body).backgroundColor]",
                        vec![],
                    )
                    .await;
                assert_eq!(inner, width);
                assert!(scroll <= inner, "{width} px: content {scroll} px wide");
                assert!(b.button("Next").await.is_displayed().await.unwrap());
                let scheme = if dark { "dark" } else { "light" };
                b.screenshot(&format!("events-{width}-{scheme}")).await;
                backgrounds.push(bg);
                if width == 1280 {
                    events.key_on_row(2, Key::Enter).await;
                    b.xpath("//dialog[@open]").await;
                    b.screenshot(&format!("details-{width}-{scheme}")).await;
                    Details(&b).escape().await;
                    b.goto("/?view=stats&range=all").await;
                    Stats(&b).card("Events").await;
                    b.screenshot(&format!("stats-{width}-{scheme}")).await;
                }
            }
        }
        assert_eq!(backgrounds[0], backgrounds[1]);
        assert_ne!(backgrounds[0], backgrounds[2], "dark differs from light");
        println!("screenshots in {}", screenshot_dir().display());
        b.assert_no_errors(&[]).await;
        b.quit().await;
    });
}
