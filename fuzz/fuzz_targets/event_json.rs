//! Event JSON parsing and validation: never a panic; an accepted event
//! round-trips (serialize → parse → equal) and reads back from a stored line.
#![no_main]

use evlog::Event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = Event::from_json(data) else {
        return;
    };
    if event.validate().is_ok() {
        evlog_fuzz::check_accepted(&event);
    }
});
