//! The index: tantivy, fed by tailing the day files. The files stay the
//! source of truth; everything here can be rebuilt with `evlog reindex`.
//!
//! - [`schema`] — fields, tokenizer, line → document.
//! - [`indexer`] — the tail indexer (notify + rescan, commit payload checkpoint).
//! - [`query`] — filters → tantivy queries, paging.
//! - [`mod@stats`] — aggregations.
//! - [`resolved`] — derived state: which events are resolved.
//! - [`follow`] — live tails; [`lag`] — how far the index is behind;
//!   `lookup` — one event by id, which ids are stored, the newest `seq`.

pub mod checkpoint;
pub mod follow;
pub mod indexer;
pub mod lag;
mod lookup;
pub mod query;
pub mod resolved;
pub mod schema;
pub mod stats;
pub mod tail;
pub mod timeline;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

pub use follow::Follow;
pub use indexer::{IndexConfig, Indexer, Wake};
pub use lookup::IdsStored;
pub use query::{Query, QueryError, QueryResponse};
pub use stats::StatsResponse;
pub use tail::IndexerHandle;

/// Errors of the index.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A client mistake in a query.
    #[error("invalid query: {0}")]
    Query(#[from] QueryError),
    /// The index is of an older format (rebuilt by the indexer at open).
    #[error("outdated index: {0}")]
    Outdated(String),
    /// Another indexer holds the index writer.
    #[error("another evlog process is indexing this storage directory")]
    Locked,
    /// An error from tantivy.
    #[error("index: {0}")]
    Tantivy(String),
    /// The file watcher could not start.
    #[error("file watcher: {0}")]
    Watch(String),
    /// An I/O error.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: Arc<std::io::Error>,
    },
}

impl Error {
    pub(crate) fn io(path: impl AsRef<Path>, e: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source: Arc::new(e),
        }
    }
    pub(crate) fn tantivy(e: impl std::fmt::Display) -> Error {
        Error::Tantivy(e.to_string())
    }
}

/// Read access to the index of a storage directory. Clones share one slot:
/// when the indexer rebuilds a deleted index, every clone (the server's
/// handlers, live streams) searches the new one.
#[derive(Clone)]
pub struct IndexSearch {
    fields: schema::Fields,
    current: Arc<RwLock<Current>>,
    /// Documents whose columns the searches read (see [`IndexSearch::docs_examined`]).
    examined: Arc<AtomicU64>,
}

/// The reader searched now, with its warmed time summaries and resolved
/// events.
#[derive(Clone)]
pub(crate) struct Current {
    reader: tantivy::IndexReader,
    caches: Caches,
}

/// What is derived per searcher and kept warm by the reader's warmers.
#[derive(Clone, Default)]
pub(crate) struct Caches {
    pub(crate) times: Arc<timeline::TimeCache>,
    pub(crate) resolutions: Arc<resolved::ResolutionCache>,
}

impl Caches {
    /// Both, as a reader's warmers.
    pub(crate) fn warmers(&self) -> Vec<std::sync::Weak<dyn tantivy::Warmer>> {
        vec![
            Arc::downgrade(&(self.times.clone() as Arc<dyn tantivy::Warmer>)),
            Arc::downgrade(&(self.resolutions.clone() as Arc<dyn tantivy::Warmer>)),
        ]
    }
}

/// One searcher with its derived state.
pub(crate) struct View {
    pub(crate) searcher: tantivy::Searcher,
    pub(crate) times: timeline::Times,
    pub(crate) resolutions: Arc<resolved::Resolutions>,
}

impl Current {
    fn view(&self) -> Result<View, Error> {
        let searcher = self.reader.searcher();
        Ok(View {
            times: self.caches.times.of(&searcher)?,
            resolutions: self.caches.resolutions.of(&searcher)?,
            searcher,
        })
    }
}

impl IndexSearch {
    /// Opens (creating if missing) `<storage>/index` for reading.
    pub fn open(storage: &Path) -> Result<IndexSearch, Error> {
        let (index, _) = indexer::open_index(&storage.join(indexer::INDEX_DIR))?;
        let reader = index
            .reader_builder()
            .reload_policy(tantivy::ReloadPolicy::Manual)
            .try_into()
            .map_err(Error::tantivy)?;
        Ok(IndexSearch::from_reader(reader))
    }

    /// Over the reader of a running indexer.
    pub fn from_reader(reader: tantivy::IndexReader) -> IndexSearch {
        IndexSearch::with_caches(reader, Caches::default())
    }

    /// Over `reader`, sharing `caches` (kept warm by the reader's warmers).
    pub(crate) fn with_caches(reader: tantivy::IndexReader, caches: Caches) -> IndexSearch {
        IndexSearch {
            fields: schema::Fields::new(),
            current: Arc::new(RwLock::new(Current { reader, caches })),
            examined: Arc::default(),
        }
    }

    /// Makes every clone search `reader` from now on (a rebuilt index).
    pub(crate) fn replace(&self, reader: tantivy::IndexReader, caches: Caches) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Current { reader, caches };
    }

    fn current(&self) -> Current {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The tantivy reader searched now.
    pub fn reader(&self) -> tantivy::IndexReader {
        self.current().reader
    }

    /// Picks up the latest commit.
    pub fn reload(&self) -> Result<(), Error> {
        self.reader().reload().map_err(Error::tantivy)
    }

    /// One page of events matching `q`, newest first.
    pub fn query(&self, q: &Query) -> Result<QueryResponse, Error> {
        let view = self.current().view()?;
        query::search(&view, &self.fields, q, chrono::Utc::now(), &self.examined)
    }

    /// The derived state of the events as of the searcher searched now:
    /// which are resolved.
    pub fn resolutions(&self) -> Result<Arc<resolved::Resolutions>, Error> {
        let cur = self.current();
        cur.caches.resolutions.of(&cur.reader.searcher())
    }

    /// Documents whose `timestamp` or `seq` columns the queries and live
    /// tails of this handle and its clones have read so far: the work done,
    /// for tests and benchmarks (a page reads about as many as it returns).
    pub fn docs_examined(&self) -> u64 {
        self.examined.load(Ordering::Relaxed)
    }

    /// Statistics of the events matching `q`.
    pub fn stats(&self, q: &Query) -> Result<StatsResponse, Error> {
        let view = self.current().view()?;
        stats::stats(&view, &self.fields, q, chrono::Utc::now())
    }

    /// Documents in the index.
    pub fn num_docs(&self) -> u64 {
        self.reader().searcher().num_docs()
    }
}

impl crate::EventLog {
    /// Queries the index of this log's storage directory, as of its last
    /// commit (an in-process indexer commits every 500 ms by default).
    pub fn query(&self, q: &Query) -> Result<QueryResponse, Error> {
        let s = self.index_search()?;
        s.reload()?;
        s.query(q)
    }

    /// Statistics from the index of this log's storage directory.
    pub fn stats(&self, q: &Query) -> Result<StatsResponse, Error> {
        let s = self.index_search()?;
        s.reload()?;
        s.stats(q)
    }

    fn index_search(&self) -> Result<IndexSearch, Error> {
        self.extension(|| IndexSearch::open(self.storage_path()))
    }

    /// Starts the tail indexer of this log's storage directory on a thread,
    /// woken directly by this log's appends (and by the file watcher and a
    /// periodic rescan for other writers).
    pub fn start_indexer(&self, cfg: IndexConfig) -> Result<IndexerHandle, Error> {
        let handle = IndexerHandle::spawn(cfg)?;
        let waker = handle.waker();
        self.on_commit(move || {
            let _ = waker.try_send(Wake::Changed);
        });
        Ok(handle)
    }
}
