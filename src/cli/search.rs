//! Opening the index for the CLI: catch it up first, so that `evlog query`
//! answers with every event on disk.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::index::indexer::{self, IndexConfig, Indexer};
use crate::index::{Error, IndexSearch};

/// An up-to-date searcher of `storage`. If no other process is indexing, this
/// one indexes what is new and commits; otherwise it waits (up to 5 s) for the
/// other indexer's checkpoint to cover the files as they are now.
pub fn fresh_search(storage: &Path) -> anyhow::Result<IndexSearch> {
    if !storage.is_dir() {
        anyhow::bail!("storage directory {} does not exist", storage.display());
    }
    match Indexer::open(IndexConfig::new(storage)) {
        Ok(mut ix) => {
            ix.catch_up_and_commit()?;
            Ok(ix.search())
        }
        Err(Error::Locked) => {
            wait_for_other_indexer(storage, Duration::from_secs(5));
            Ok(IndexSearch::open(storage)?)
        }
        Err(e) => Err(e.into()),
    }
}

fn wait_for_other_indexer(storage: &Path, patience: Duration) {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if covered(storage).unwrap_or(true) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::warn!("the running indexer has not caught up yet; answering from its last commit");
}

/// Whether the last commit covers every complete line of the day files.
fn covered(storage: &Path) -> Result<bool, Error> {
    let (index, _) = indexer::open_index(&storage.join(indexer::INDEX_DIR))?;
    Ok(crate::index::lag::lag(storage, &index)?.bytes == 0)
}
