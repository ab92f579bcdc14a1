//! Append events durably, read them back and verify the hash chain.
//!
//! Run: `cargo run --example basic [STORAGE_DIR]` (default: a temp directory).

use evlog::{Config, DayRange, Durability, Event, EventLog, EventType, Level, Status};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("evlog-example-{}", std::process::id()))
        });
    let log = EventLog::open(Config::new(&dir).durability(Durability::Fsync))?;

    // One event: returns once it is on disk (fdatasync, shared with concurrent appends).
    let id = log.append(
        Event::new(EventType::Commit, "dev", "Updated config")
            .files_changed(["config.toml"])
            .metadata(json!({"branch": "main", "password": "masked before writing"})),
    )?;
    println!("appended {id}");

    // A batch: all-or-nothing, one write, one fsync.
    let ids = log.append_batch(vec![
        Event::new(EventType::AuthLogin, "alice", "Logged in").source_ip("203.0.113.9"),
        Event::new(EventType::ApiError, "alice", "GET /reports failed")
            .status(Status::Failure)
            .level(Level::Error)
            .duration_ms(412.0),
    ])?;
    println!("appended batch of {}", ids.len());

    for record in log.scan(DayRange::all())? {
        match record {
            Ok(r) => println!(
                "seq {:>3} {} {}",
                r.seq, r.event.event_type, r.event.action_description
            ),
            Err(e) => eprintln!("skipped: {e}"),
        }
    }
    let report = log.verify(DayRange::all())?;
    println!("chain intact: {} ({} lines)", report.ok(), report.lines);
    println!("files are in {}", dir.display());
    Ok(())
}
