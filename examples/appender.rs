//! Fire-and-forget appends from a request path with [`evlog::Appender`].
//!
//! Run: `cargo run --example appender`. Enqueueing never blocks; a full queue
//! drops (and counts) the event; failed writes are logged as
//! `EVENT_WRITE_FAILED user_id=.. event_type=.. error=..`.

use evlog::{Appender, Config, Event, EventLog, EventType};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let dir = std::env::temp_dir().join(format!("evlog-appender-{}", std::process::id()));
    let log = EventLog::open(Config::new(&dir))?;
    let appender = Appender::new(log.clone());

    for i in 0..1000 {
        appender.append(
            Event::new(
                EventType::ApiRequest,
                format!("user-{}", i % 10),
                "GET /v1/items",
            )
            .metadata(json!({"method": "GET", "status": 200}))
            .duration_ms(1.5),
        );
    }
    // An invalid event is not an error for the caller: it is logged and counted.
    appender.append(Event::new(
        EventType::Custom("Not Valid".into()),
        "bob",
        "x",
    ));

    appender.flush(); // wait until everything queued so far is durable
    println!(
        "written {}, failed {}, dropped {}",
        appender
            .stats()
            .written
            .load(std::sync::atomic::Ordering::Relaxed),
        appender
            .stats()
            .failed
            .load(std::sync::atomic::Ordering::Relaxed),
        appender.dropped()
    );
    appender.shutdown(); // also happens on drop
    println!("files are in {}", dir.display());
    Ok(())
}
