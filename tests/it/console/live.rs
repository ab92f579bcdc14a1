//! Live: a new event shows on top within 2 s without moving the rows the
//! reader looks at (nor their keyboard focus), and after a server restart
//! the tail resumes from the last event received (`Last-Event-ID`): events
//! stored while the server was down still arrive.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::pages::{Events, Header, SignIn};
use super::{Browser, append, ev, runtime};
use crate::serve::{Opts, Serve};

/// Where the row `id` is on the screen (px from the top of the viewport),
/// if shown.
async fn row_top(b: &Browser, id: &str) -> Option<f64> {
    b.js(
        "const r = [...document.querySelectorAll('tr[data-id]')].find(r => r.dataset.id === arguments[0]);
         return r ? r.getBoundingClientRect().top : null",
        vec![json!(id)],
    )
    .await
}

#[test]
fn live_events_arrive_on_top_keep_the_readers_place_and_resume_after_a_restart() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let store = crate::util::Store::new();
    let serve = Serve::start_at(&store, Opts::default(), &addr);
    let admin = serve.admin.clone();
    let batch: Vec<Value> = (0..60)
        .map(|i| ev("tail", &format!("before {i}")))
        .collect();
    append(&serve, &admin, Value::Array(batch));
    let base = serve.base.clone();
    let rt = runtime();

    let b = rt.block_on(async {
        let b = Browser::start(&base).await;
        b.goto("/?user_id=tail").await;
        SignIn(&b).sign_in(&admin).await;
        Header(&b).who().await;
        let events = Events(&b);
        events.settled().await;
        assert_eq!(events.page_text().await.as_deref(), Some("Page 1 of 2"));

        b.control("Live").await.click().await.unwrap();
        b.wait("the live stream", || async {
            b.shows("Live: new events appear on top")
                .await
                .then_some(())
        })
        .await;
        assert!(b.location().await.contains("live=1"));

        // The reader looks at row 20, scrolled to the middle, focused.
        let rows = events.ids().await;
        let watched = rows[20].clone();
        events.focus_row(20).await;
        b.js::<Value>(
            "document.activeElement.scrollIntoView({block: 'center'})",
            vec![],
        )
        .await;
        let before = row_top(&b, &watched).await.unwrap();

        // An event appended now shows on top within 2 s.
        let t0 = Instant::now();
        let r = crate::console::http()
            .post(format!("{base}/events"))
            .header("X-API-Key", &admin)
            .json(&ev("tail", "arrived live"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let acked = t0.elapsed();
        b.wait("the live event on top", || async {
            (events.ids().await.first() == Some(&id)).then_some(())
        })
        .await;
        let shown = t0.elapsed();
        assert!(
            shown <= Duration::from_secs(2),
            "a live event showed {shown:?} after its append (acknowledged after {acked:?})"
        );
        let rows = events.rows().await;
        assert_eq!(rows[0].description, "arrived live");
        assert_eq!(rows.len(), 51, "the page stays, the new event on top");
        assert_eq!(
            events.focused_row().await.as_deref(),
            Some(watched.as_str())
        );
        let after = row_top(&b, &watched).await.unwrap();
        assert!(
            (after - before).abs() < 1.0,
            "the row read moved from {before} to {after} px"
        );
        assert!(b.shows("61 events").await);
        b.assert_no_errors(&[]).await;
        b
    });

    // The server goes away; events are stored meanwhile; it comes back.
    let (status, log) = serve.terminate();
    assert!(status.success(), "{log}");
    rt.block_on(async {
        b.wait("the console to notice", || async {
            b.shows("Connection lost").await.then_some(())
        })
        .await;
    });
    store
        .run(
            &[
                "append",
                "--type",
                "commit",
                "--user",
                "tail",
                "--desc",
                "stored while down",
            ],
            b"",
        )
        .expect_code(0);
    let _serve = Serve::start_at(&store, Opts::default(), &addr);
    rt.block_on(async {
        let events = Events(&b);
        b.wait("the event stored while the server was down", || async {
            let rows = events.rows().await;
            (rows.first()?.description == "stored while down").then_some(())
        })
        .await;
        assert_eq!(
            events.rows().await[1].description,
            "arrived live",
            "resumed after the last event received, nothing repeated"
        );
        assert!(b.shows("Live: new events appear on top").await);
        // Refused connections while the server was down are expected.
        b.assert_no_errors(&[
            "ERR_CONNECTION_REFUSED",
            "ERR_EMPTY_RESPONSE",
            "ERR_INCOMPLETE_CHUNKED_ENCODING",
        ])
        .await;
        b.quit().await;
    });
}
