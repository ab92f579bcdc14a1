//! Sign-in, the paging checklist of issue 13 (totals 0, 1, 50 and 51: the
//! texts `Page X of Y`, `Previous`/`Next` disabled where they lead nowhere,
//! `No events match these filters`), the keyboard, the URL, sign out.

use fantoccini::key::Key;
use serde_json::{Value, json};

use super::browser::press;
use super::pages::{Details, Events, Header, SignIn};
use super::{Browser, Site, ago, api_ids, ev, runtime};

/// Fills the User filter with `user` and waits for its results.
async fn show_user(b: &Browser, user: &str) {
    b.enter("User", user).await;
    let want = format!("user_id={user}");
    b.wait("the filter in the URL", || async {
        b.location().await.contains(&want).then_some(())
    })
    .await;
    Events(b).settled().await;
}

/// The URLs of the `/events` requests the page made, oldest first.
async fn events_requests(b: &Browser) -> Vec<String> {
    b.js(
        "return performance.getEntriesByType('resource').map(r => r.name).filter(n => n.includes('/events?'))",
        vec![],
    )
    .await
}

#[test]
fn sign_in_paging_checklist_keyboard_and_sign_out() {
    let site = Site::start();
    let mut batch = Vec::new();
    for (user, n) in [("p1", 1), ("p50", 50), ("p51", 51)] {
        for i in 0..n {
            batch.push(ev(user, &format!("{user} event {i}")));
        }
    }
    site.append(Value::Array(batch));
    let base = site.serve.base.clone();
    let admin = site.admin.clone();

    runtime().block_on(async {
        let b = Browser::start(&base).await;
        let events = Events(&b);

        // No key: the sign-in form and nothing else.
        b.goto("/").await;
        let sign_in = SignIn(&b);
        sign_in.wait().await;
        assert!(Header(&b).views().await.is_empty(), "no views before sign-in");
        assert!(!b.exists("//table").await);

        // A wrong key: the form again, with the server's message.
        sign_in.sign_in("evk_not_a_key").await;
        b.wait("the server's message", || async {
            sign_in
                .message()
                .await
                .contains("unknown or revoked API key")
                .then_some(())
        })
        .await;
        let stored: Option<String> = b
            .js("return sessionStorage.getItem('evlog.key')", vec![])
            .await;
        assert_eq!(stored, None, "a refused key is forgotten");
        b.assert_no_errors(&["401 (Unauthorized)"]).await;

        // The right key: role and user shown; the key only in sessionStorage.
        sign_in.sign_in(&admin).await;
        assert_eq!(Header(&b).who().await, "admin (admin) · all tenants");
        events.settled().await;
        let stored: (Option<String>, u32, String) = b
            .js(
                "return [sessionStorage.getItem('evlog.key'), localStorage.length, document.cookie]",
                vec![],
            )
            .await;
        assert_eq!(stored, (Some(admin.clone()), 0, String::new()));
        assert!(!b.location().await.contains(&admin[4..]));

        // Defaults: the last 7 days, 50 a page.
        let range: String = b
            .js(
                "return arguments[0].selectedOptions[0].textContent",
                vec![serde_json::to_value(b.control("Time range").await).unwrap()],
            )
            .await;
        assert_eq!(range, "Last 7 days");
        assert_eq!(b.control("Page size").await.prop("value").await.unwrap().as_deref(), Some("50"));

        // A slow answer: a visible loading state; the rows shown stay meanwhile.
        let slow = |latency: u32| {
            json!({"offline": false, "latency": latency, "downloadThroughput": -1, "uploadThroughput": -1})
        };
        b.cdp("Network.enable", json!({})).await;
        b.cdp("Network.emulateNetworkConditions", slow(1500)).await;
        let shown = events.ids().await;
        assert!(!shown.is_empty());
        b.enter("User", "p1").await;
        b.wait("the loading state", || async {
            b.shows("Loading events…").await.then_some(())
        })
        .await;
        assert!(b.exists("//*[@aria-busy='true']").await);
        assert_eq!(events.ids().await, shown, "the rows stay until the answer");
        events.settled().await;
        b.cdp("Network.emulateNetworkConditions", slow(0)).await;

        // Total 0: the message, no paging.
        show_user(&b, "nobody").await;
        assert!(events.shows_no_matches().await);
        assert_eq!(events.page_text().await, None, "no pager for no events");
        assert!(events.rows().await.is_empty());

        // Totals 1 and 50: one page, both buttons disabled.
        for (user, n) in [("p1", 1), ("p50", 50)] {
            show_user(&b, user).await;
            assert!(!events.shows_no_matches().await);
            assert_eq!(events.page_text().await.as_deref(), Some("Page 1 of 1"), "{user}");
            assert!(!events.pager_button("Previous").await.1, "{user}: Previous");
            assert!(!events.pager_button("Next").await.1, "{user}: Next");
            assert_eq!(events.rows().await.len(), n);
        }

        // Total 51: two pages; Next, then one event on page 2.
        show_user(&b, "p51").await;
        let want = api_ids(&base, &admin, &[("user_id", "p51".into()), ("start", ago(24 * 7))]).await;
        assert_eq!(want.len(), 51);
        assert_eq!(events.page_text().await.as_deref(), Some("Page 1 of 2"));
        assert!(!events.pager_button("Previous").await.1);
        let (next, enabled) = events.pager_button("Next").await;
        assert!(enabled);
        let first = events.ids().await;
        assert_eq!(first, want[..50], "page 1 is the newest 50, as the API orders them");
        next.click().await.unwrap();
        events.until_page("Page 2 of 2").await;
        assert_eq!(events.ids().await, want[50..], "page 2 holds the 51st");
        assert!(events.pager_button("Previous").await.1);
        assert!(!events.pager_button("Next").await.1);
        let url = b.location().await;
        assert!(url.contains("page=2") && url.contains("user_id=p51"), "{url}");

        // A link past the end shows the last page; a reload keeps the page.
        b.goto("/?user_id=p51&page=9").await;
        events.until_page("Page 2 of 2").await;
        assert!(b.location().await.contains("page=2"), "the URL names the page shown");

        // Keyboard: Previous by Enter; rows by arrows; Enter opens; Escape closes.
        let (prev, _) = events.pager_button("Previous").await;
        press(&prev, Key::Enter).await;
        events.until_page("Page 1 of 2").await;
        events.key_on_row(0, Key::Down).await;
        assert_eq!(events.focused_row().await.as_deref(), Some(want[1].as_str()));
        events.key_on_row(1, Key::End).await;
        assert_eq!(events.focused_row().await.as_deref(), Some(want[49].as_str()));
        events.key_on_row(49, Key::Home).await;
        events.key_on_row(0, Key::Down).await;
        press(&b.focused().await, Key::Enter).await;
        let details = Details(&b);
        details.wait_for(&want[1]).await;
        assert!(b.location().await.contains(&format!("event={}", want[1])));
        details.escape().await;
        b.wait("the details to close", || async {
            (!details.is_open().await).then_some(())
        })
        .await;
        assert_eq!(
            events.focused_row().await.as_deref(),
            Some(want[1].as_str()),
            "the focus goes back to the row"
        );
        assert!(!b.location().await.contains("event="));

        // A shared link opens the details by id.
        b.goto(&format!("/?user_id=p51&event={}", want[7])).await;
        details.wait_for(&want[7]).await;

        // No layout jump when the results of a fresh page arrive.
        b.goto("/?user_id=p51").await;
        events.settled().await;
        let shift: f64 = b
            .js_async(
                r#"const done = arguments[arguments.length - 1]; let sum = 0;
                   new PerformanceObserver(l => { for (const e of l.getEntries()) if (!e.hadRecentInput) sum += e.value; })
                     .observe({type: 'layout-shift', buffered: true});
                   setTimeout(() => done(sum), 200);"#,
            )
            .await;
        assert!(shift < 0.05, "cumulative layout shift {shift}");

        // Sign out: back to the form, the key forgotten.
        Header(&b).sign_out().await;
        sign_in.wait().await;
        let stored: Option<String> = b
            .js("return sessionStorage.getItem('evlog.key')", vec![])
            .await;
        assert_eq!(stored, None);
        b.assert_no_errors(&[]).await;
        b.quit().await;
    });
}

/// Pages past the API's offset limit (100,000) are reached by cursor: one
/// hop (the event before the page, found with the largest offset) and the
/// page from its cursor; Next goes on from the page's own cursor.
#[test]
fn deep_pages_hop_by_cursor_past_the_offset_limit() {
    const N: usize = 100_250;
    let store = crate::util::Store::new();
    let mut lines = String::with_capacity(N * 80);
    for i in 0..N {
        lines.push_str(&format!(
            "{{\"event_type\":\"commit\",\"user_id\":\"deep\",\"action_description\":\"deep {i}\",\"status\":\"success\"}}\n"
        ));
    }
    store
        .run(
            &["--durability", "none", "append", "--stdin"],
            lines.as_bytes(),
        )
        .expect_code(0);
    let site = Site::on(store);
    crate::serve::caught_up(&site.serve);
    let base = site.serve.base.clone();
    let admin = site.admin.clone();
    // The oldest 50 events are page 502 at 200 a page (offsets 100,200..).
    let rt = runtime();
    let (status, all) = rt.block_on(super::api(
        &base,
        &admin,
        "/events/export",
        &[("user_id", "deep".into()), ("start", ago(24))],
    ));
    assert_eq!(status, 200);
    let want: Vec<String> = all
        .lines()
        .skip(501 * 200)
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(want.len(), 50);

    rt.block_on(async {
        let b = Browser::start(&base).await;
        b.goto("/?user_id=deep&limit=200&page=502").await;
        SignIn(&b).sign_in(&admin).await;
        let events = Events(&b);
        events.until_page("Page 502 of 502").await;
        assert_eq!(events.ids().await, want);
        let asked = events_requests(&b).await;
        let last = &asked[asked.len() - 2..];
        assert!(
            last[0].contains("offset=99999") && last[0].contains("limit=1"),
            "the hop: {last:?}"
        );
        assert!(
            last[1].contains("cursor=")
                && last[1].contains("offset=200")
                && last[1].contains("limit=200"),
            "the page from the hop's cursor: {last:?}"
        );
        // Back one page, then Next: from the cursor of page 501, no offset.
        events
            .pager_button("Previous")
            .await
            .0
            .click()
            .await
            .unwrap();
        events.until_page("Page 501 of 502").await;
        events.pager_button("Next").await.0.click().await.unwrap();
        events.until_page("Page 502 of 502").await;
        assert_eq!(events.ids().await, want);
        let asked = events_requests(&b).await;
        let next = asked.last().unwrap();
        assert!(
            next.contains("cursor=") && !next.contains("offset="),
            "{next}"
        );
        // A link far past the end shows the last page.
        b.goto("/?user_id=deep&limit=200&page=9999").await;
        events.until_page("Page 502 of 502").await;
        assert_eq!(events.ids().await, want);
        b.assert_no_errors(&[]).await;
        b.quit().await;
    });
}
