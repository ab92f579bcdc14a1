//! Steps 2 and 3: delete days older than `delete_after`, then the oldest
//! days while the day files take more than `max_total_size` (oldest first,
//! never today, always a prefix of the days), each after writing
//! `chain.anchor`; then the index drops the documents of deleted days.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::time::{Duration as StdDuration, Instant};

use chrono::NaiveDate;

use super::plan::{self, Day, older_than};
use super::{Ctx, Error, FileError, IndexMode, IndexState, Step, Work};
use crate::index::Indexer;
use crate::index::checkpoint;
use crate::store::day;
use crate::store::{StorageLock, chain, reader, sync_dir};

/// Deletes the days of `days` that the policy says are due: by age, then
/// by total size; with `keep_open`, never a day holding an open event of
/// level warning or above, nor a day after it. A failure stops the deletions.
pub(super) fn delete_due(
    cx: &mut Ctx<'_>,
    days: &mut BTreeMap<NaiveDate, Day>,
    index: &mut IndexState,
) -> Result<(), Error> {
    let (policy, now) = (cx.opts.policy, cx.opts.now);
    let today = now.date_naive();
    let expired: Vec<NaiveDate> = days
        .keys()
        .filter(|d| older_than(**d, policy.delete_after, now))
        .copied()
        .collect();
    let free = judge(cx, days, index, &expired)?;
    for &d in &expired[..free] {
        if !delete_day(cx, days, d)? {
            return Ok(());
        }
    }
    if free < expired.len() {
        // An older day stays: the size limit cannot delete past it either.
        if policy.max_total_size.is_some() {
            cx.report
                .notes
                .push("max_total_size deletes nothing while an older day is kept open".into());
        }
        return Ok(());
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
        if judge(cx, days, index, &[d])? == 0 {
            cx.report.notes.push(format!(
                "the day files take {total} bytes, over max_total_size {max}: {d} is kept open"
            ));
            return Ok(());
        }
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

/// How many of `candidates` (oldest first), from the first, the
/// replication publisher is done with: with a `replication.cursor` in the
/// storage directory, a day whose last `seq` is past the cursor is kept
/// (`kept_unpublished_days`), and the days after it too (the cursor moves
/// in `seq` order). Without a cursor, all of them.
fn published(cx: &mut Ctx<'_>, days: &BTreeMap<NaiveDate, Day>, candidates: &[NaiveDate]) -> usize {
    use crate::replicate::cursor::{CURSOR_FILE, Cursor};
    if candidates.is_empty() || !cx.dir.join(CURSOR_FILE).exists() {
        return candidates.len();
    }
    let cursor = match Cursor::load(cx.dir) {
        Ok(c) => c,
        Err(e) => {
            cx.report
                .notes
                .push(format!("days due for deletion are kept: {e}"));
            cx.report
                .kept_unpublished_days
                .extend(candidates.iter().map(|d| d.to_string()));
            return 0;
        }
    };
    for (i, &d) in candidates.iter().enumerate() {
        let Some(e) = days.get(&d) else { continue };
        let last = match reader::last_head(&e.file(cx.dir, d)) {
            Ok(h) => h.map_or(0, |h| h.seq),
            Err(err) => {
                cx.report.notes.push(format!(
                    "{d} kept: its last seq cannot be read to compare with the replication cursor ({err})"
                ));
                u64::MAX
            }
        };
        if last > cursor.seq {
            cx.report.notes.push(format!(
                "{d} kept: its events up to seq {last} are not all published to the stream yet (published up to seq {}); younger days are kept with it",
                cursor.seq
            ));
            cx.report
                .kept_unpublished_days
                .extend(candidates[i..].iter().map(|d| d.to_string()));
            return i;
        }
    }
    candidates.len()
}

/// Counts the events of `candidates` (days due for deletion, oldest first)
/// and, with `keep_open`, applies the open-day rule to them. Returns how
/// many of them, from the first, may be deleted; the rest are listed in
/// the report as kept (open, or behind an open day). A day whose events
/// cannot be counted is a failure, and neither it nor a later day goes.
fn judge(
    cx: &mut Ctx<'_>,
    days: &BTreeMap<NaiveDate, Day>,
    index: &mut IndexState,
    candidates: &[NaiveDate],
) -> Result<usize, Error> {
    let mut counted = candidates.len();
    for (i, &d) in candidates.iter().enumerate() {
        if events_of(cx, days, d).is_none() {
            counted = i;
            break;
        }
    }
    let counted = published(cx, days, &candidates[..counted]);
    let candidates = &candidates[..counted];
    if !cx.opts.keep_open || candidates.is_empty() {
        return Ok(counted);
    }
    // A day the index does not cover wholly may hold an open event it has
    // not seen: it counts as open.
    let mut unknown: BTreeMap<NaiveDate, String> = BTreeMap::new();
    let mut covered = Vec::new();
    for &d in candidates {
        let events = cx.counts[&d];
        let seen = cx
            .checkpoint
            .as_ref()
            .and_then(|cp| cp.files.get(&d))
            .map_or(0, |m| m.lines);
        if seen >= events || cx.assume_covered {
            if seen < events {
                cx.report.notes.push(format!(
                    "{d} is not fully indexed yet: a real run indexes it first, and keeps it if it holds open events"
                ));
            }
            covered.push(d);
        } else {
            unknown.insert(
                d,
                format!("the index has seen {seen} of its {events} events"),
            );
        }
    }
    let open = match index.open_days(cx.dir, &covered)? {
        Some(open) => open,
        None => {
            cx.report.notes.push(
                "there is no index to tell which days hold open events: days due for deletion are kept \
                 (build the index, or turn keep-open off)"
                    .into(),
            );
            for &d in &covered {
                unknown.insert(d, "no index".into());
            }
            BTreeMap::new()
        }
    };
    let Some(first) = candidates
        .iter()
        .position(|d| open.contains_key(d) || unknown.contains_key(d))
    else {
        return Ok(counted);
    };
    for &d in &candidates[first..] {
        if let Some(n) = open.get(&d) {
            cx.report.notes.push(format!(
                "{d} kept: {n} open event(s) of level warning or above"
            ));
            cx.report.kept_open_days.push(d.to_string());
        } else if let Some(why) = unknown.get(&d) {
            cx.report
                .notes
                .push(format!("{d} kept: it may hold open events ({why})"));
            cx.report.kept_open_days.push(d.to_string());
        } else {
            cx.report.kept_behind_open_days.push(d.to_string());
        }
    }
    if first + 1 < candidates.len() {
        cx.report.notes.push(
            "days after a kept day are kept too: deletions always take the oldest days, so the hash chain has one start"
                .into(),
        );
    }
    Ok(first)
}

/// The events of day `d` (counted once, from its file; see
/// [`plan::count_events`]), `None` after reporting a failure to count them.
fn events_of(cx: &mut Ctx<'_>, days: &BTreeMap<NaiveDate, Day>, d: NaiveDate) -> Option<u64> {
    if let Some(n) = cx.counts.get(&d) {
        return Some(*n);
    }
    let e = days.get(&d)?;
    let progress = cx.opts.progress.clone();
    let mut report = |p: &Path, done: u64, total: u64| {
        if let Some(f) = &progress {
            f(Work::Count, p, done, total);
        }
    };
    match plan::count_events(cx.dir, d, e, &mut report) {
        Ok(n) => {
            cx.counts.insert(d, n);
            Some(n)
        }
        Err(err) => {
            cx.fail(
                &e.file(cx.dir, d).path,
                format!("counting its events: {err} (it and younger days are kept)"),
            );
            None
        }
    }
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
    let Some(events) = events_of(cx, days, d) else {
        return Ok(false);
    };
    if cx.opts.dry_run {
        cx.report.deleted.extend(names);
        cx.report.deleted_events.insert(d.to_string(), events);
        days.remove(&d);
        return Ok(true);
    }
    match delete_files(cx, d, &e) {
        Ok(()) => {
            cx.report.deleted.extend(names);
            cx.report.deleted_events.insert(d.to_string(), events);
            days.remove(&d);
            Ok(true)
        }
        Err(FileError::Crashed(s, p)) => Err(Error::Crashed(s, p)),
        Err(FileError::Failed(msg)) => {
            cx.fail(
                &e.file(cx.dir, d).path,
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
    let file = e.file(dir, d);
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
