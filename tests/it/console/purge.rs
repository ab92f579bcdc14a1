//! The admin panel's purge (issue 15, item 3): a retention, a preview with
//! the count and the days, then a confirm button; by keyboard alone.

use std::sync::Arc;

use evlog::{Event, EventType, Level, ManualClock};
use fantoccini::key::Key;

use super::browser::press;
use super::pages::{Admin, Header, SignIn};
use super::{Browser, Site, runtime};
use crate::util::{Store, open_with_clock};

#[test]
fn purge_previews_the_count_then_purges_on_confirm_by_keyboard() {
    // Two events 40 days ago, an open warning 35 days ago.
    let store = Store::new();
    let now = chrono::Utc::now();
    let clock = Arc::new(ManualClock::new(now - chrono::Duration::days(40)));
    let log = open_with_clock(store.path(), &clock);
    for i in 0..2 {
        log.append(Event::new(
            EventType::Custom("deploy".into()),
            "old",
            format!("old deploy {i}"),
        ))
        .unwrap();
    }
    clock.set(now - chrono::Duration::days(35));
    log.append(
        Event::new(EventType::Custom("deploy".into()), "old", "failed deploy")
            .level(Level::Warning),
    )
    .unwrap();
    log.flush().unwrap();
    drop(log);
    let old = (now - chrono::Duration::days(40)).date_naive();
    let site = Site::on(store);
    let (base, admin) = (site.serve.base.clone(), site.admin.clone());

    runtime().block_on(async {
        let b = Browser::start(&base).await;
        b.goto("/").await;
        SignIn(&b).sign_in(&admin).await;
        Header(&b).open("Admin").await;
        let panel = Admin(&b);
        // Below the minimum: the server's reason, nothing to confirm.
        let refused = panel.preview_purge("10", "Purge failed:").await;
        assert!(
            refused.contains("minimum retention of 30 days"),
            "{refused}"
        );
        assert!(!b.button("Purge now").await.is_enabled().await.unwrap());
        // The preview: the count and the days; focus moves to the confirm button.
        assert_eq!(
            panel.preview_purge("30", "Would purge").await,
            "Would purge 2 events in 1 day (1 day kept: open warnings)"
        );
        assert!(b.shows(&format!("{old}: 2 events")).await);
        assert!(
            site.store.file(&format!("events_{old}.jsonl")).exists(),
            "a preview deleted"
        );
        let focused = b.focused().await;
        assert_eq!(focused.text().await.unwrap(), "Purge now");
        press(&focused, Key::Enter).await;
        assert_eq!(
            panel.said("Purged").await,
            "Purged 2 events in 1 day (1 day kept: open warnings)"
        );
        assert!(!site.store.file(&format!("events_{old}.jsonl")).exists());
        // Done: nothing left to confirm until the next preview.
        assert!(!b.button("Purge now").await.is_enabled().await.unwrap());
        b.assert_no_errors(&["400 (Bad Request)"]).await;
        b.quit().await;
    });
}
