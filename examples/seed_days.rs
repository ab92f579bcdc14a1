//! Seeds a storage directory with past days, for soak and rotation tests:
//! `DAYS` day files, from `DAYS` days ago to yesterday, `PER_DAY` events
//! each, appended in order with a manual clock so that the hash chain runs
//! through them as if they had been written on those days. Prints one line
//! per day: `DAY COUNT` (the soak script accounts for days that retention
//! deletes later).
//!
//! Run: `cargo run --example seed_days -- STORAGE_DIR [DAYS] [PER_DAY]`
//! (defaults 10 and 500) on a storage directory with no day file from
//! today or later.

use std::sync::Arc;

use chrono::{Duration, Utc};
use evlog::{Config, Durability, Event, EventLog, EventType, ManualClock, Status};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: seed_days STORAGE_DIR [DAYS] [PER_DAY]")?;
    let days: i64 = args.next().map_or(Ok(10), |s| s.parse())?;
    let per_day: u64 = args.next().map_or(Ok(500), |s| s.parse())?;
    let today = Utc::now().date_naive();
    let start = today - Duration::days(days);
    let clock = Arc::new(ManualClock::new(
        start.and_hms_opt(0, 0, 0).unwrap().and_utc(),
    ));
    let log = EventLog::open(
        Config::new(&dir)
            .durability(Durability::None)
            .clock(clock.clone()),
    )?;
    for d in 0..days {
        let day = start + Duration::days(d);
        let midnight = day.and_hms_opt(0, 0, 0).unwrap().and_utc();
        // Spread over the day, a batch at a time.
        let step = 86_000 / per_day.max(1) as i64;
        let mut batch = Vec::new();
        for i in 0..per_day {
            clock.set(midnight + Duration::seconds(i as i64 * step));
            batch.push(
                Event::new(
                    EventType::ApiRequest,
                    format!("seed-{}", i % 7),
                    "seeded past event",
                )
                .status(if i % 10 == 0 {
                    Status::Failure
                } else {
                    Status::Success
                })
                .timestamp(clock.now_utc())
                .metadata(json!({"day": day.to_string(), "i": i})),
            );
            if batch.len() == 100 {
                log.append_batch(std::mem::take(&mut batch))?;
            }
        }
        if !batch.is_empty() {
            log.append_batch(batch)?;
        }
        println!("{day} {per_day}");
    }
    log.flush()?;
    Ok(())
}

/// `Clock::now` without importing the trait at every call.
trait NowUtc {
    fn now_utc(&self) -> chrono::DateTime<Utc>;
}

impl NowUtc for ManualClock {
    fn now_utc(&self) -> chrono::DateTime<Utc> {
        evlog::Clock::now(self)
    }
}
