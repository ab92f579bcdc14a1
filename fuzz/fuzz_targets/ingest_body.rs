//! `POST /events` bodies (a JSON object, an array, or NDJSON) as the handler
//! parses them: never a panic; a rejection is a 4xx with a message; an
//! accepted body has at least one event, each of which round-trips.
#![no_main]

use evlog::server::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    match fuzzing::ingest_body(body, mode & 1 == 1) {
        Ok(events) => {
            assert!(!events.is_empty(), "an accepted body holds events");
            for e in &events {
                evlog_fuzz::check_accepted(e);
            }
        }
        Err((status, message)) => {
            assert!((400..500).contains(&status), "{status}: {message}");
            assert!(!message.is_empty());
        }
    }
});
