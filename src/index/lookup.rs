//! Single-document lookups: one event by id (`GET /events/{id}`) and the
//! newest chain position in the index (where a live tail starts).

use serde_json::Value;
use tantivy::collector::TopDocs;
use tantivy::query::{AllQuery, TermQuery};
use tantivy::schema::{IndexRecordOption, Value as _};
use tantivy::{DocAddress, Order, Searcher, TantivyDocument, Term};
use uuid::Uuid;

use super::{Error, IndexSearch};

impl IndexSearch {
    /// The stored event with this id (chain fields included), if indexed.
    /// With several (a client may reuse an id), the last one stored.
    pub fn get(&self, id: Uuid) -> Result<Option<Value>, Error> {
        let searcher = self.reader.searcher();
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
            .map(|(_, addr)| self.stored_event(&searcher, *addr))
            .transpose()
    }

    /// The largest `seq` in the index (0 when it is empty).
    pub fn max_seq(&self) -> Result<u64, Error> {
        let hits = self
            .reader
            .searcher()
            .search(
                &AllQuery,
                &TopDocs::with_limit(1).order_by_u64_field("seq", Order::Desc),
            )
            .map_err(Error::tantivy)?;
        Ok(hits.first().and_then(|(seq, _)| *seq).unwrap_or(0))
    }

    fn stored_event(&self, searcher: &Searcher, addr: DocAddress) -> Result<Value, Error> {
        let doc: TantivyDocument = searcher.doc(addr).map_err(Error::tantivy)?;
        let line = doc
            .get_first(self.fields.line)
            .and_then(|v| v.as_bytes())
            .unwrap_or_default();
        serde_json::from_slice(line)
            .map_err(|e| Error::Tantivy(format!("stored line unreadable: {e}")))
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
