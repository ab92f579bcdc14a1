//! Resolve and reopen in the console (issue 15, item 2): "Open only" in the
//! filters, a state column with an admin's Resolve / Reopen button per row
//! (reached with Tab from its row), the same in the details with a note;
//! a resolved row leaves the open list at once; a user key sees no button.

use fantoccini::key::Key;
use serde_json::{Value, json};

use super::browser::press;
use super::pages::{Details, Events, Header, SignIn};
use super::{Browser, Site, api, api_ids, ev, runtime};

#[test]
fn admin_resolves_and_reopens_from_rows_and_details_a_user_sees_no_buttons() {
    let site = Site::start();
    // Newest first: three, two, one.
    let ids = site.append(json!([
        ev("alice", "one"),
        ev("alice", "two"),
        ev("alice", "three")
    ]));
    let (one, two, three) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    let alice = site.add_key("user", "alice");
    let (base, admin) = (site.serve.base.clone(), site.admin.clone());

    runtime().block_on(async {
        let b = Browser::start(&base).await;
        // Commits only: the resolutions (events themselves) stay out of the list.
        b.goto("/?range=all&event_type=commit").await;
        SignIn(&b).sign_in(&admin).await;
        let events = Events(&b);
        events
            .until("three rows", async |e| e.rows().await.len() == 3)
            .await;
        assert!(events.rows().await.iter().all(|r| r.state == "Open"));

        // Open only: in the URL and the API's filter.
        b.control("Open only").await.click().await.unwrap();
        events
            .until("the open list", async |e| {
                e.total().await.as_deref() == Some("3 events")
            })
            .await;
        assert!(
            b.location().await.contains("resolved=false"),
            "{}",
            b.location().await
        );

        // Resolve "two" by its row's button: the row leaves at once, the
        // count follows, and the details stay closed.
        events
            .row_button(&two, "Resolve")
            .await
            .click()
            .await
            .unwrap();
        events
            .until("the resolved row to leave", async |e| {
                e.ids().await == [three.clone(), one.clone()]
            })
            .await;
        assert_eq!(events.total().await.as_deref(), Some("2 events"));
        assert!(
            !Details(&b).is_open().await,
            "the button opened the details"
        );
        assert_eq!(
            api_ids(
                &base,
                &admin,
                &[
                    ("resolved", "false".into()),
                    ("event_type", "commit".into())
                ]
            )
            .await,
            [three.clone(), one.clone()]
        );

        // Every event again: "two" shows resolved, in place.
        b.control("Open only").await.click().await.unwrap();
        events
            .until("three rows", async |e| e.rows().await.len() == 3)
            .await;
        let states: Vec<String> = events.rows().await.into_iter().map(|r| r.state).collect();
        assert_eq!(states, ["Open", "Resolved", "Open"]);
        assert_eq!(events.row_buttons(&two).await, ["Reopen"]);

        // The details show who resolved it and when; Reopen there.
        let (_, body) = api(&base, &admin, &format!("/events/{two}"), &[]).await;
        let stored: Value = serde_json::from_str(&body).unwrap();
        events.key_on_row(1, Key::Enter).await;
        let details = Details(&b);
        details.wait_for(&two).await;
        assert_eq!(details.field("Resolved").await.as_deref(), Some("yes"));
        assert_eq!(
            details.field("Resolved by").await.as_deref(),
            stored["resolved_by"].as_str()
        );
        let at = details.field("Resolved at").await.unwrap();
        assert!(at.contains(stored["resolved_at"].as_str().unwrap()), "{at}");
        details.button("Reopen").await.click().await.unwrap();
        b.wait("the details to show it open", || async {
            (details.field("Resolved").await.as_deref() == Some("no")).then_some(())
        })
        .await;
        assert!(b.shows("Event reopened").await);
        assert_eq!(details.field("Resolved by").await, None);
        // The row behind changed in place.
        assert_eq!(events.rows().await[1].state, "Open");

        // Resolve again from the details, with a note.
        b.control("Note")
            .await
            .send_keys("disk replaced")
            .await
            .unwrap();
        details.button("Resolve").await.click().await.unwrap();
        b.wait("the details to show it resolved", || async {
            (details.field("Resolved").await.as_deref() == Some("yes")).then_some(())
        })
        .await;
        assert!(details.has_button("Reopen").await);
        let (_, body) = api(
            &base,
            &admin,
            "/events",
            &[("event_type", "event_resolved".into())],
        )
        .await;
        assert!(body.contains("disk replaced"), "{body}");
        details.escape().await;
        b.wait("the details to close", || async {
            (!details.is_open().await).then_some(())
        })
        .await;

        // By keyboard in the open list: Tab from a row reaches its button
        // (only the focused row's); Enter resolves without opening the details.
        b.control("Open only").await.click().await.unwrap();
        events
            .until("the open list", async |e| {
                e.ids().await == [three.clone(), one.clone()]
            })
            .await;
        let row = events.focus_row(1).await;
        press(&row, Key::Tab).await;
        let button = b.focused().await;
        assert_eq!(button.text().await.unwrap(), "Resolve");
        let in_row: Option<String> = b
            .js(
                "return document.activeElement.closest('tr').dataset.id",
                vec![],
            )
            .await;
        assert_eq!(in_row.as_deref(), Some(one.as_str()));
        press(&button, Key::Enter).await;
        events
            .until("the resolved row to leave", async |e| {
                e.ids().await == [three.clone()]
            })
            .await;
        assert_eq!(events.total().await.as_deref(), Some("1 event"));
        assert!(
            !Details(&b).is_open().await,
            "Enter on the button opened the details"
        );
        assert_eq!(
            events.focused_row().await.as_deref(),
            Some(three.as_str()),
            "the focus stays in the list"
        );

        // A refusal shows in the server's words, and the row stays (the
        // answer stands in for a server that refuses: 503 with the JSON error).
        b.js::<Value>(
            r#"const real = window.fetch;
               window.fetch = (u, o) => String(u).endsWith('/resolve')
                 ? Promise.resolve(new Response(
                     JSON.stringify({error: {code: 'unavailable', message: 'Try again later'}}),
                     {status: 503, headers: {'Content-Type': 'application/json'}}))
                 : real(u, o);"#,
            vec![],
        )
        .await;
        events
            .row_button(&three, "Resolve")
            .await
            .click()
            .await
            .unwrap();
        let said = b
            .wait("the refusal in words", || async { events.problem().await })
            .await;
        assert_eq!(
            said,
            "Could not resolve the event: Try again later (503 unavailable)"
        );
        assert_eq!(events.ids().await, std::slice::from_ref(&three));
        Header(&b).sign_out().await;

        // A user key: the state, no buttons, in the rows or the details.
        SignIn(&b).sign_in(&alice).await;
        b.goto("/?range=all").await;
        events
            .until("alice's rows", async |e| e.rows().await.len() == 3)
            .await;
        let states: Vec<String> = events.rows().await.into_iter().map(|r| r.state).collect();
        assert_eq!(states, ["Open", "Resolved", "Resolved"]);
        assert!(b.all("//table//button").await.is_empty());
        events.key_on_row(1, Key::Enter).await;
        details.wait_for(&two).await;
        assert_eq!(details.field("Resolved").await.as_deref(), Some("yes"));
        assert!(!details.has_button("Reopen").await && !details.has_button("Resolve").await);
        b.assert_no_errors(&[]).await;
        b.quit().await;
    });
}
