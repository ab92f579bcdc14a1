//! Steps 2 and 3: delete days older than `delete_after`, then the oldest
//! days while the day files take more than `max_total_size` (oldest first,
//! never today, always a prefix of the days), each after writing
//! `chain.anchor`; then the index drops the documents of deleted days.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::time::{Duration as StdDuration, Instant};

use chrono::NaiveDate;

use super::plan::{Day, older_than};
use super::{Ctx, Error, FileError, IndexMode, Step};
use crate::index::Indexer;
use crate::index::checkpoint;
use crate::store::day::{self, DayFile};
use crate::store::{StorageLock, chain, reader, sync_dir};

/// Deletes the days of `days` that the policy says are due: by age, then
/// by total size. A failure stops the deletions.
pub(super) fn delete_due(
    cx: &mut Ctx<'_>,
    days: &mut BTreeMap<NaiveDate, Day>,
) -> Result<(), Error> {
    let (policy, now) = (cx.opts.policy, cx.opts.now);
    let today = now.date_naive();
    let expired: Vec<NaiveDate> = days
        .keys()
        .filter(|d| older_than(**d, policy.delete_after, now))
        .copied()
        .collect();
    for d in expired {
        if !delete_day(cx, days, d)? {
            return Ok(());
        }
    }
    let Some(max) = policy.max_total_size else {
        return Ok(());
    };
    let mut total: u64 = days.values().map(Day::bytes).sum();
    let oldest: Vec<NaiveDate> = days.keys().filter(|d| **d < today).copied().collect();
    for d in oldest {
        if total <= max {
            break;
        }
        let bytes = days[&d].bytes();
        if !delete_day(cx, days, d)? {
            return Ok(());
        }
        total -= bytes;
    }
    if total > max {
        cx.report.notes.push(format!(
            "the day files still take {} bytes, over max_total_size {max}: only today's file is left and it is never deleted",
            total
        ));
    }
    if cx.opts.dry_run && !cx.report.compressed.is_empty() {
        cx.report.notes.push(
            "files to be compressed are counted at their plain size: a real run may delete fewer days for max_total_size".into(),
        );
    }
    Ok(())
}

/// Makes the index drop the documents of the days deleted: committed here
/// when this process holds the index (`own`), else by the running indexer
/// (woken, and waited for).
pub(super) fn forget_deleted(cx: &mut Ctx<'_>, own: Option<&mut Indexer>) -> Result<(), Error> {
    if cx.opts.dry_run || cx.report.deleted.is_empty() {
        return Ok(());
    }
    let gone: Vec<NaiveDate> = cx
        .report
        .deleted
        .iter()
        .filter_map(|n| day::parse_name(n).map(|(d, _)| d))
        .collect();
    match (&cx.opts.index, own) {
        (IndexMode::Without, _) => {}
        (_, Some(ix)) => {
            ix.catch_up()?;
            ix.commit()?;
        }
        (mode, None) => {
            if let IndexMode::Running { wake } = mode {
                wake();
            }
            if !wait_for_index(cx.dir, &gone, cx.opts.index_wait, mode) {
                cx.report.notes.push(
                    "the running indexer has not yet dropped the deleted days; it will on its next pass".into(),
                );
            }
        }
    }
    Ok(())
}

/// Waits until the index's last commit no longer lists any of `gone`.
fn wait_for_index(dir: &Path, gone: &[NaiveDate], patience: StdDuration, mode: &IndexMode) -> bool {
    let deadline = Instant::now() + patience;
    loop {
        match checkpoint::committed(dir) {
            Ok(cp) if !gone.iter().any(|d| cp.files.contains_key(d)) => return true,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "reading the index checkpoint");
                return false;
            }
        }
        if Instant::now() >= deadline {
            return false;
        }
        if let IndexMode::Running { wake } = mode {
            wake();
        }
        std::thread::sleep(StdDuration::from_millis(50));
    }
}

/// Deletes every file of day `d` after moving the chain anchor past it.
/// Returns `Ok(false)` if it failed (reported; later days must stay, or the
/// chain would have a hole), `Err` only for an injected crash.
pub(super) fn delete_day(
    cx: &mut Ctx<'_>,
    days: &mut BTreeMap<NaiveDate, Day>,
    d: NaiveDate,
) -> Result<bool, Error> {
    let Some(e) = days.get(&d).cloned() else {
        return Ok(true);
    };
    let mut names = Vec::new();
    if e.plain.is_some() {
        names.push(day::plain_name(d));
    }
    if e.gz.is_some() {
        names.push(format!("{}.gz", day::plain_name(d)));
    }
    if cx.opts.dry_run {
        cx.report.deleted.extend(names);
        days.remove(&d);
        return Ok(true);
    }
    match delete_files(cx, d, &e) {
        Ok(()) => {
            cx.report.deleted.extend(names);
            days.remove(&d);
            Ok(true)
        }
        Err(FileError::Crashed(s, p)) => Err(Error::Crashed(s, p)),
        Err(FileError::Failed(msg)) => {
            let path = if e.plain.is_some() {
                day::plain_path(cx.dir, d)
            } else {
                day::gz_path(cx.dir, d)
            };
            cx.fail(
                &path,
                format!("{msg} (younger days are kept until it can be deleted)"),
            );
            Ok(false)
        }
    }
}

fn delete_files(cx: &Ctx<'_>, d: NaiveDate, e: &Day) -> Result<(), FileError> {
    let dir = cx.dir;
    let plain = day::plain_path(dir, d);
    let gz = day::gz_path(dir, d);
    let file = if e.plain.is_some() {
        DayFile {
            day: d,
            path: plain.clone(),
            compressed: false,
        }
    } else {
        DayFile {
            day: d,
            path: gz.clone(),
            compressed: true,
        }
    };
    if std::fs::metadata(&file.path).is_ok_and(|m| !m.is_file()) {
        return Err(FileError::Failed("not a regular file".into()));
    }
    let head = reader::last_head(&file)?;
    let _l = StorageLock::acquire(dir)?;
    if let Some(h) = head {
        let current = chain::read_anchor(dir)?;
        if current.is_none_or(|a| a.seq < h.seq) {
            chain::write_anchor(dir, &h)?;
            cx.crash(Step::AnchorWritten, &file.path)?;
        }
    }
    for p in [&plain, &gz] {
        match std::fs::remove_file(p) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(FileError::Failed(err.to_string())),
        }
    }
    let mut torn = plain.into_os_string();
    torn.push(".torn");
    let _ = std::fs::remove_file(torn);
    cx.crash(Step::Deleted, &file.path)?;
    sync_dir(dir)?;
    Ok(())
}
