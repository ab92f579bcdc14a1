//! The clock-step model shared by the model tests ([`crate::model`],
//! [`crate::index_model`]): a manual clock that starts anywhere in two days
//! (sometimes a hair before midnight) and moves forward by small and large
//! steps, often to either side of the next UTC midnight.

use chrono::{DateTime, Duration, Utc};
use evlog::ManualClock;
use proptest::prelude::*;

use crate::util::utc;

/// One move of the clock.
#[derive(Debug, Clone)]
pub enum Step {
    Micros(i64),
    Hours(i64),
    /// To `micros` before the next UTC midnight.
    BeforeMidnight(i64),
    /// To `micros` after the next UTC midnight.
    PastMidnight(i64),
}

impl Step {
    /// Moves `clock` by this step. Time only moves forward: a clock already
    /// within `micros` of midnight stays where it is.
    pub fn apply(&self, clock: &ManualClock) {
        let now = evlog::Clock::now(clock);
        let midnight = (now.date_naive() + Duration::days(1))
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        let to = match self {
            Step::Micros(us) => now + Duration::microseconds(*us),
            Step::Hours(h) => now + Duration::hours(*h),
            Step::BeforeMidnight(us) => midnight - Duration::microseconds(*us),
            Step::PastMidnight(us) => midnight + Duration::microseconds(*us),
        };
        clock.set(to.max(now));
    }
}

/// Steps of `micros` microseconds (a range that starts at 0 allows ties),
/// 1 to 29 hours, or to a few microseconds either side of midnight.
pub fn step(micros: std::ops::Range<i64>) -> impl Strategy<Value = Step> {
    prop_oneof![
        micros.prop_map(Step::Micros),
        (1i64..30).prop_map(Step::Hours),
        (1i64..3).prop_map(Step::BeforeMidnight),
        (0i64..2).prop_map(Step::PastMidnight),
    ]
}

/// Where the clock starts: anywhere in two days from 2026-03-01, sometimes a
/// hair before midnight.
pub fn start_time() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        (0i64..2 * 86_400_000_000)
            .prop_map(|us| utc("2026-03-01T00:00:00Z") + Duration::microseconds(us)),
        (1i64..1_000).prop_map(|us| utc("2026-03-02T00:00:00Z") - Duration::microseconds(us)),
    ]
}
