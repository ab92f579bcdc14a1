//! Single-document lookups: one event by id (`GET /events/{id}`) and the
//! newest chain position in the index (where a live tail starts).

use serde_json::Value;
use tantivy::collector::TopDocs;
use tantivy::query::TermQuery;
use tantivy::schema::IndexRecordOption;
use tantivy::{Order, Term};
use uuid::Uuid;

use super::{Error, IndexSearch};

impl IndexSearch {
    /// The stored event with this id (chain fields included), if indexed.
    /// With several (a client may reuse an id), the last one stored.
    pub fn get(&self, id: Uuid) -> Result<Option<Value>, Error> {
        let searcher = self.reader().searcher();
        let q = TermQuery::new(
            Term::from_field_text(self.fields.id, &id.to_string()),
            IndexRecordOption::Basic,
        );
        let hits = searcher
            .search(
                &q,
                &TopDocs::with_limit(1).order_by_u64_field("seq", Order::Desc),
            )
            .map_err(Error::tantivy)?;
        hits.first()
            .map(|(_, addr)| super::query::stored_event(&searcher, &self.fields, *addr))
            .transpose()
    }

    /// The largest `seq` in the index (0 when it is empty): the largest value
    /// of each segment's `seq` column (a deleted document may hold it; it
    /// is older than anything still to come either way).
    pub fn max_seq(&self) -> Result<u64, Error> {
        let mut max = 0;
        for r in self.reader().searcher().segment_readers() {
            if r.num_docs() > 0 {
                let col = r.fast_fields().u64("seq").map_err(Error::tantivy)?;
                max = max.max(col.max_value());
            }
        }
        Ok(max)
    }
}

#[cfg(test)]
mod tests {
    use crate::index::{IndexConfig, IndexSearch, Indexer};
    use crate::{Config, Event, EventLog, EventType};

    #[test]
    fn get_finds_by_id_and_max_seq_is_the_newest_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(Config::new(dir.path())).unwrap();
        let mut ix = Indexer::open(IndexConfig::new(dir.path())).unwrap();
        let search = IndexSearch::from_reader(ix.reader());
        assert_eq!(search.max_seq().unwrap(), 0);
        let ids: Vec<_> = (0..3)
            .map(|i| {
                log.append(Event::new(EventType::Push, "dev", format!("e{i}")))
                    .unwrap()
            })
            .collect();
        ix.sync().unwrap();
        let e = search.get(ids[1]).unwrap().expect("indexed");
        assert_eq!(e["action_description"], "e1");
        assert_eq!(e["seq"], 2);
        assert_eq!(search.get(uuid::Uuid::now_v7()).unwrap(), None);
        assert_eq!(search.max_seq().unwrap(), 3);
    }
}
