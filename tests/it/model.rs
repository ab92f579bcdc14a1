//! Model test: random sequences of appends, batches, clock moves (across UTC
//! midnight), reopens, torn writes by a "crashed writer" and flushes, checked
//! against a plain `Vec` of what was appended.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use evlog::store::day;
use evlog::{Config, DayRange, Durability, Event, EventLog, ManualClock};
use proptest::prelude::*;
use uuid::Uuid;

use crate::clock_model::{Step, start_time, step};
use crate::util::event;

#[derive(Debug, Clone)]
enum Action {
    /// `n` single appends.
    Append(u8),
    /// One `append_batch` of `n` events (0 is an empty batch).
    AppendBatch(u8),
    AdvanceClock(Step),
    /// Drop the `EventLog` and open a new one on the same directory.
    Reopen,
    /// Garbage without a newline at the end of today's file, as a writer
    /// killed in the middle of a line leaves it.
    TornWrite(Vec<u8>),
    Flush,
}

fn action() -> impl Strategy<Value = Action> {
    let garbage = prop::collection::vec(
        any::<u8>().prop_filter("no newline", |b| *b != b'\n'),
        1..64,
    );
    prop_oneof![
        5 => (1u8..5).prop_map(Action::Append),
        3 => (0u8..6).prop_map(Action::AppendBatch),
        3 => step(1..5_000_000).prop_map(Action::AdvanceClock),
        2 => Just(Action::Reopen),
        2 => garbage.prop_map(Action::TornWrite),
        1 => Just(Action::Flush),
    ]
}

/// What the model expects of one stored event.
#[derive(Debug)]
struct Expected {
    id: Uuid,
    event: Event,
    timestamp: DateTime<Utc>,
    day: NaiveDate,
}

struct Harness {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    durability: Durability,
    log: Option<EventLog>,
    model: Vec<Expected>,
    next: u64,
    /// Garbage at the end of a day file that no writer has moved aside yet.
    unrecovered: BTreeMap<NaiveDate, Vec<u8>>,
    /// What each day's `.torn` file must hold.
    torn: BTreeMap<NaiveDate, Vec<u8>>,
}

impl Harness {
    fn new(start: DateTime<Utc>, durability: Durability) -> Harness {
        let mut h = Harness {
            dir: tempfile::tempdir().unwrap(),
            clock: Arc::new(ManualClock::new(start)),
            durability,
            log: None,
            model: Vec::new(),
            next: 0,
            unrecovered: BTreeMap::new(),
            torn: BTreeMap::new(),
        };
        h.open();
        h
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn now(&self) -> DateTime<Utc> {
        evlog::Clock::now(&*self.clock)
    }

    fn open(&mut self) {
        self.log = None;
        self.log = Some(
            EventLog::open(
                Config::new(self.path())
                    .durability(self.durability)
                    .clock(self.clock.clone()),
            )
            .unwrap(),
        );
        // Opening recovers every day's torn tail.
        let days: Vec<NaiveDate> = self.unrecovered.keys().copied().collect();
        for d in days {
            self.recovered(d);
        }
    }

    fn recovered(&mut self, day: NaiveDate) {
        if let Some(mut g) = self.unrecovered.remove(&day) {
            g.push(b'\n');
            self.torn.entry(day).or_default().extend(g);
        }
    }

    fn log(&self) -> &EventLog {
        self.log.as_ref().unwrap()
    }

    fn new_event(&mut self) -> Event {
        self.next += 1;
        event("m", self.next)
    }

    fn expect(&mut self, id: Uuid, event: Event) {
        let now = self.now();
        self.model.push(Expected {
            id,
            event,
            timestamp: now,
            day: now.date_naive(),
        });
    }

    fn apply(&mut self, a: &Action) {
        match a {
            Action::Append(n) => {
                for _ in 0..*n {
                    let e = self.new_event();
                    let id = self.log().append(e.clone()).unwrap();
                    self.expect(id, e);
                }
                if *n > 0 {
                    self.recovered(self.now().date_naive());
                }
            }
            Action::AppendBatch(n) => {
                let events: Vec<Event> = (0..*n).map(|_| self.new_event()).collect();
                let ids = self.log().append_batch(events.clone()).unwrap();
                assert_eq!(ids.len(), events.len());
                for (id, e) in ids.into_iter().zip(events) {
                    self.expect(id, e);
                }
                if *n > 0 {
                    self.recovered(self.now().date_naive());
                }
            }
            Action::AdvanceClock(step) => step.apply(&self.clock),
            Action::Reopen => self.open(),
            Action::TornWrite(garbage) => {
                let day = self.now().date_naive();
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(day::plain_path(self.path(), day))
                    .unwrap();
                f.write_all(garbage).unwrap();
                self.unrecovered.entry(day).or_default().extend(garbage);
            }
            Action::Flush => self.log().flush().unwrap(),
        }
    }

    /// The store holds exactly the model's events, in order, on the days of
    /// their appends, and the chain verifies.
    fn check(&self, when: &str) {
        let log = self.log();
        let records: Vec<_> = log
            .scan(DayRange::all())
            .unwrap()
            .map(|r| r.unwrap_or_else(|e| panic!("{when}: scan: {e}")))
            .collect();
        assert_eq!(records.len(), self.model.len(), "{when}: event count");
        for (i, (r, m)) in records.iter().zip(&self.model).enumerate() {
            assert_eq!(r.seq, i as u64 + 1, "{when}: seq of event {i}");
            assert_eq!(r.event.id, Some(m.id), "{when}: id of event {i}");
            assert_eq!(r.event.timestamp, Some(m.timestamp), "{when}: event {i}");
            let mut content = r.event.clone();
            content.id = None;
            content.timestamp = None;
            assert_eq!(content, m.event, "{when}: content of event {i}");
            assert_eq!(
                r.path,
                day::plain_path(self.path(), m.day),
                "{when}: day file of event {i}"
            );
        }
        let report = log.verify(DayRange::all()).unwrap();
        assert!(report.ok(), "{when}: {:?}", report.failure);
        assert_eq!(report.lines, self.model.len() as u64, "{when}");
    }

    /// Every torn write, and nothing else, was moved to its day's `.torn` file.
    fn check_torn(&self) {
        let mut found = BTreeMap::new();
        for entry in std::fs::read_dir(self.path()).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if let Some(plain) = name.strip_suffix(".torn") {
                let (day, compressed) = day::parse_name(plain).expect(&name);
                assert!(!compressed, "{name}");
                found.insert(day, std::fs::read(self.path().join(&name)).unwrap());
            }
        }
        assert_eq!(found, self.torn);
        // After recovery every day file ends with a complete line.
        for f in day::list(self.path(), DayRange::all()).unwrap() {
            let bytes = std::fs::read(&f.path).unwrap();
            assert!(
                bytes.is_empty() || bytes.ends_with(b"\n"),
                "{}",
                f.path.display()
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn the_store_holds_exactly_what_was_appended(
        start in start_time(),
        durability in prop_oneof![Just(Durability::None), Just(Durability::Batch)],
        actions in prop::collection::vec(action(), 1..40),
    ) {
        let mut h = Harness::new(start, durability);
        for (i, a) in actions.iter().enumerate() {
            h.apply(a);
            h.check(&format!("after action {i} {a:?}"));
        }
        h.open();
        h.check("after the final reopen");
        h.check_torn();
        // The days written are exactly the days of the appends.
        let days: Vec<NaiveDate> = day::list(h.path(), DayRange::all())
            .unwrap()
            .into_iter()
            .filter(|f| std::fs::metadata(&f.path).unwrap().len() > 0)
            .map(|f| f.day)
            .collect();
        let mut want: Vec<NaiveDate> = h.model.iter().map(|m| m.day).collect();
        want.dedup();
        prop_assert_eq!(days, want);
    }
}
