//! Single-document lookups: one event by id (`GET /events/{id}`), whether
//! ids are stored already (the server's duplicate-id check), and the newest
//! chain position in the index (where a live tail starts).

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;
use tantivy::collector::{DocSetCollector, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery, TermSetQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{Order, Term};
use uuid::Uuid;

use super::checkpoint::{mark_matches, read_checkpoint};
use super::{Error, IndexSearch};
use crate::store::day::{self, DayRange};
use crate::store::reader::LineReader;

/// The answer of [`IndexSearch::stored_ids`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdsStored {
    /// The ids asked about that are stored (empty: none is).
    Found(HashSet<Uuid>),
    /// More than the allowed bytes of day-file lines are past the index's
    /// last commit (an index being rebuilt, or far behind): not checked.
    TooFarBehind {
        /// Bytes past the checkpoint (plain files), or the size of a
        /// compressed day the index has not read.
        bytes: u64,
    },
}

impl IndexSearch {
    /// The stored event with this id (chain fields included), if indexed.
    /// With several (a client may reuse an id), the last one stored.
    pub fn get(&self, id: Uuid) -> Result<Option<Value>, Error> {
        let view = self.current().view()?;
        let searcher = &view.searcher;
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
            .map(|(_, addr)| super::query::returned_event(&view, &self.fields, *addr))
            .transpose()
    }

    /// Which of `ids` are stored in the day files of `storage`: those in
    /// the index as of its last commit, plus those in the complete lines
    /// past that commit's checkpoint (read from the files: the lines the
    /// indexer has not committed yet, including a day cut back under it,
    /// read whole). The checkpoint is read before the reader is reloaded,
    /// so every line is either in the reader searched or in the bytes read.
    /// At most `max_scan` bytes are read; beyond, nothing is checked.
    ///
    /// Lines written while this runs may be missed: a caller that must not
    /// miss them keeps such writes out meanwhile (the server reserves the
    /// ids of its appends in flight).
    pub fn stored_ids(
        &self,
        storage: &Path,
        ids: &HashSet<Uuid>,
        max_scan: u64,
    ) -> Result<IdsStored, Error> {
        let reader = self.reader();
        let checkpoint = read_checkpoint(reader.searcher().index())?;
        reader.reload().map_err(Error::tantivy)?;
        let searcher = reader.searcher();
        // What the checkpoint does not cover, and from where.
        let files = day::list(storage, DayRange::all()).map_err(|e| Error::io(storage, e))?;
        let mut tail = Vec::new();
        // Days read whole from their file: the index's documents of them
        // are not trusted (a cut day's may be lines that are gone).
        let mut whole = Vec::new();
        let mut bytes = 0u64;
        for f in files {
            let mark = checkpoint.files.get(&f.day);
            if f.compressed {
                if mark.is_none() {
                    // A compressed day the index never read (a rebuild).
                    let len = std::fs::metadata(&f.path).map_or(0, |m| m.len());
                    return Ok(IdsStored::TooFarBehind {
                        bytes: bytes + len.max(1),
                    });
                }
                // In the checkpoint: complete, indexed.
                continue;
            }
            let len = match std::fs::metadata(&f.path) {
                Ok(m) => Some(m.len()),
                // Compressed since the listing: rotation compresses only
                // days a commit covers to their end, but that commit may be
                // newer than the reader; the rest of the day is read from
                // its .gz (`LineReader` falls back to it).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(Error::io(&f.path, e)),
            };
            let from = match (mark, len) {
                // A day cut back under the index (a failed write or
                // fdatasync): the index may hold lines that are gone and
                // lack the ones written since.
                (Some(m), Some(len)) if len < m.offset || !mark_matches(&f.path, m) => {
                    whole.push(f.day);
                    0
                }
                (Some(m), _) => m.offset,
                (None, _) => 0,
            };
            match len {
                Some(len) if len <= from => {}
                Some(len) => {
                    bytes += len - from;
                    tail.push((f, from));
                }
                None => tail.push((f, from)),
            }
        }
        if bytes > max_scan {
            return Ok(IdsStored::TooFarBehind { bytes });
        }
        let mut found = self.ids_in(&searcher, ids, &whole)?;
        let mut buf = Vec::new();
        for (f, from) in tail {
            let mut r = match LineReader::open_from(&f, from, 0) {
                Ok(r) => r,
                // Deleted by retention since the listing: gone, not stored.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&f.path, e)),
            };
            while let Some((_, line)) = r.next_line(&mut buf).map_err(|e| Error::io(&f.path, e))? {
                if let Some(id) = line_id(line)
                    && ids.contains(&id)
                {
                    found.insert(id);
                }
            }
        }
        Ok(IdsStored::Found(found))
    }

    /// Which of `ids` the index holds as of its last commit (a follower's
    /// check of the copies it was sent: what it appended since is its own
    /// to remember).
    pub fn indexed_ids(&self, ids: &HashSet<Uuid>) -> Result<HashSet<Uuid>, Error> {
        let reader = self.reader();
        reader.reload().map_err(Error::tantivy)?;
        self.ids_in(&reader.searcher(), ids, &[])
    }

    /// The ids of `ids` with a document in `searcher`, leaving out the
    /// documents of the days `excluded`.
    fn ids_in(
        &self,
        searcher: &tantivy::Searcher,
        ids: &HashSet<Uuid>,
        excluded: &[chrono::NaiveDate],
    ) -> Result<HashSet<Uuid>, Error> {
        let mut found = HashSet::new();
        if ids.is_empty() {
            return Ok(found);
        }
        let terms = ids
            .iter()
            .map(|id| Term::from_field_text(self.fields.id, &id.to_string()));
        let mut clauses: Vec<(Occur, Box<dyn Query>)> =
            vec![(Occur::Must, Box::new(TermSetQuery::new(terms)))];
        for d in excluded {
            let term = Term::from_field_u64(self.fields.day, super::schema::day_number(*d));
            clauses.push((
                Occur::MustNot,
                Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
            ));
        }
        let hits = searcher
            .search(&BooleanQuery::new(clauses), &DocSetCollector)
            .map_err(Error::tantivy)?;
        for addr in hits {
            let event = super::query::stored_event(searcher, &self.fields, addr)?;
            if let Some(id) = event["id"].as_str().and_then(|s| Uuid::parse_str(s).ok()) {
                found.insert(id);
            }
        }
        Ok(found)
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

/// The `id` of a stored line: the store writes it first
/// (`{"id":"<uuid>",…`); other lines are parsed.
fn line_id(line: &[u8]) -> Option<Uuid> {
    const HEAD: &[u8] = b"{\"id\":\"";
    if let Some(rest) = line.strip_prefix(HEAD)
        && let Some(id) = rest.get(..36)
        && rest.get(36) == Some(&b'"')
    {
        return Uuid::try_parse_ascii(id).ok();
    }
    #[derive(serde::Deserialize)]
    struct Id {
        id: Option<Uuid>,
    }
    serde_json::from_slice::<Id>(line).ok()?.id
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
        ix.catch_up_and_commit().unwrap();
        let e = search.get(ids[1]).unwrap().expect("indexed");
        assert_eq!(e["action_description"], "e1");
        assert_eq!(e["seq"], 2);
        assert_eq!(search.get(uuid::Uuid::now_v7()).unwrap(), None);
        assert_eq!(search.max_seq().unwrap(), 3);
    }

    fn ids(of: &[uuid::Uuid]) -> std::collections::HashSet<uuid::Uuid> {
        of.iter().copied().collect()
    }

    #[test]
    fn stored_ids_sees_the_index_and_the_lines_past_its_last_commit() {
        use super::IdsStored::{Found, TooFarBehind};
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(Config::new(dir.path())).unwrap();
        let mut ix = Indexer::open(IndexConfig::new(dir.path())).unwrap();
        let search = IndexSearch::from_reader(ix.reader());
        let ev = |d: &str| Event::new(EventType::Push, "dev", d);
        let indexed = log.append(ev("indexed")).unwrap();
        ix.catch_up_and_commit().unwrap();
        let pending = log.append(ev("not indexed yet")).unwrap();
        let unknown = uuid::Uuid::now_v7();
        let all = ids(&[indexed, pending, unknown]);
        assert_eq!(
            search.stored_ids(dir.path(), &all, 1 << 20).unwrap(),
            Found(ids(&[indexed, pending]))
        );
        // Past the scan limit: not checked.
        let behind = search.stored_ids(dir.path(), &all, 10).unwrap();
        assert!(
            matches!(behind, TooFarBehind { bytes } if bytes > 100),
            "{behind:?}"
        );
        // Once committed, the index alone answers.
        ix.catch_up_and_commit().unwrap();
        assert_eq!(
            search.stored_ids(dir.path(), &all, 0).unwrap(),
            Found(ids(&[indexed, pending]))
        );

        // A day cut back under the index (a failed fdatasync): its
        // documents are not trusted, the file is read whole.
        let file = crate::store::day::list(dir.path(), crate::DayRange::all()).unwrap()[0]
            .path
            .clone();
        drop(log);
        let text = std::fs::read_to_string(&file).unwrap();
        let first_line = text.find('\n').unwrap() + 1;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(first_line as u64)
            .unwrap();
        let log = EventLog::open(Config::new(dir.path())).unwrap();
        let after = log
            .append(ev("written after the cut, longer than the cut line"))
            .unwrap();
        let all = ids(&[indexed, pending, after]);
        assert_eq!(
            search.stored_ids(dir.path(), &all, 1 << 20).unwrap(),
            Found(ids(&[indexed, after])),
            "the cut line is gone although the index still holds it"
        );

        // A compressed day the index never read (an index being rebuilt).
        let gz = dir.path().join("events_2020-01-01.jsonl.gz");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::default(),
        );
        std::io::Write::write_all(&mut enc, b"{}\n").unwrap();
        enc.finish().unwrap();
        assert!(matches!(
            search.stored_ids(dir.path(), &all, 1 << 20).unwrap(),
            TooFarBehind { .. }
        ));
    }
}
