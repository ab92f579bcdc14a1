//! Following the index: the matching events stored after a chain position,
//! oldest first. `evlog tail -f` and `GET /events/stream` poll a [`Follow`]
//! after each index commit.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::query::MAX_LIMIT;
use super::{Error, IndexSearch, Query};

/// A live tail of the events matching a query.
#[derive(Debug, Clone)]
pub struct Follow {
    query: Query,
    after: u64,
}

/// A tail covers all time unless the query names a range (a plain query
/// means "today").
pub fn whole_history_unless_ranged(query: &mut Query) {
    if query.date.is_none() && query.start.is_none() && query.end.is_none() {
        query.start = Some(DateTime::<Utc>::UNIX_EPOCH);
    }
}

impl Follow {
    /// Follows the events matching `query`'s filters (its paging is ignored)
    /// stored after chain position `after`.
    pub fn new(mut query: Query, after: u64) -> Follow {
        whole_history_unless_ranged(&mut query);
        query.limit = Some(MAX_LIMIT);
        query.offset = 0;
        query.cursor = None;
        Follow { query, after }
    }

    /// The chain position of the last event returned (or the starting one).
    pub fn after(&self) -> u64 {
        self.after
    }

    /// The next matching events stored after [`Follow::after`], in `seq`
    /// order: at most one page ([`MAX_LIMIT`]); call again until it returns
    /// none. Only sees what `search` sees (reload it first if needed).
    pub fn next_batch(&mut self, search: &IndexSearch) -> Result<Vec<Value>, Error> {
        self.query.after_seq = Some(self.after);
        self.query.cursor = None;
        let mut page = search.query(&self.query)?;
        // Pages come newest first; the oldest page is the one to send first.
        while let Some(c) = page.next_cursor.take() {
            self.query.cursor = Some(c);
            page = search.query(&self.query)?;
        }
        let mut events = page.events;
        events.sort_by_key(|e| e["seq"].as_u64());
        if let Some(seq) = events.last().and_then(|e| e["seq"].as_u64()) {
            self.after = seq;
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{IndexConfig, Indexer};
    use crate::{Config, Event, EventLog, EventType};

    #[test]
    fn returns_each_new_matching_event_once_oldest_first_across_pages() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(Config::new(dir.path())).unwrap();
        let mut ix = Indexer::open(IndexConfig::new(dir.path())).unwrap();
        let search = IndexSearch::from_reader(ix.reader());
        log.append(Event::new(EventType::Push, "dev", "before"))
            .unwrap();
        ix.sync().unwrap();
        let mut follow = Follow::new(
            Query {
                event_types: vec!["commit".into()],
                ..Default::default()
            },
            search.max_seq().unwrap(),
        );
        assert!(follow.next_batch(&search).unwrap().is_empty());
        let n = MAX_LIMIT + 5;
        let events: Vec<Event> = (0..n)
            .flat_map(|i| {
                [
                    Event::new(EventType::Commit, "dev", format!("c{i}")),
                    Event::new(EventType::Push, "dev", format!("p{i}")),
                ]
            })
            .collect();
        log.append_batch(events).unwrap();
        ix.sync().unwrap();
        let mut seen = Vec::new();
        loop {
            let batch = follow.next_batch(&search).unwrap();
            if batch.is_empty() {
                break;
            }
            seen.extend(batch);
        }
        let names: Vec<String> = seen
            .iter()
            .map(|e| e["action_description"].as_str().unwrap().to_string())
            .collect();
        let want: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
        assert_eq!(names, want);
        assert_eq!(
            follow.after(),
            seen.last().unwrap()["seq"].as_u64().unwrap()
        );
    }
}
