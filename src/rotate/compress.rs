//! Step 1: compress each plain day older than `compress_after` (never
//! today's, never one the index's last commit does not fully cover) into
//! `events_D.jsonl.gz.tmp` ([`super::gzip`]), fsync, read it back, then under
//! the storage lock rename it to `.jsonl.gz` and remove the plain file.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use chrono::NaiveDate;

use super::plan::{Day, older_than};
use super::{Ctx, Error, FileError, Step, Work, gzip};
use crate::index::checkpoint;
use crate::store::day;
use crate::store::{DAY_FILE_MODE, StorageLock, cut_torn_tail, reader, sync_dir};

/// Compresses every day of `days` that the policy says is due.
pub(super) fn compress_due(
    cx: &mut Ctx<'_>,
    days: &mut BTreeMap<NaiveDate, Day>,
) -> Result<(), Error> {
    let (policy, now) = (cx.opts.policy, cx.opts.now);
    let due: Vec<NaiveDate> = days
        .iter()
        .filter(|(d, e)| {
            e.plain.is_some()
                && e.gz.is_none()
                && older_than(**d, policy.compress_after, now)
                && !older_than(**d, policy.delete_after, now)
        })
        .map(|(d, _)| *d)
        .collect();
    for d in due {
        match compress_day(cx, d) {
            Ok(Some(gz_len)) => {
                let e = days.get_mut(&d).expect("listed");
                cx.report.compressed.push(day::plain_name(d));
                if !cx.opts.dry_run {
                    e.plain = None;
                    e.gz = Some(gz_len);
                }
            }
            Ok(None) => {}
            Err(FileError::Crashed(s, p)) => return Err(Error::Crashed(s, p)),
            Err(FileError::Failed(msg)) => cx.fail(&day::plain_path(cx.dir, d), msg),
        }
    }
    Ok(())
}

/// Compresses the plain file of day `d`. `Ok(Some(gz bytes))` when done (or
/// planned, in a dry run), `Ok(None)` when skipped.
fn compress_day(cx: &mut Ctx<'_>, d: NaiveDate) -> Result<Option<u64>, FileError> {
    let dir = cx.dir;
    let plain = day::plain_path(dir, d);
    let gz = day::gz_path(dir, d);
    let tmp = dir.join(format!("{}.gz.tmp", day::plain_name(d)));
    let file = File::open(&plain)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(FileError::Failed("not a regular file".into()));
    }
    let mut len = meta.len();
    let mut complete = reader::complete_len(&file, len)?;
    if complete < len && !cx.opts.dry_run {
        // A writer crashed mid-line on this day: move the torn tail aside
        // (as the next writer would), so the day ends with a whole line.
        let lock = StorageLock::acquire(dir)?;
        complete = cut_torn_tail(&plain, &lock)?;
        len = complete;
    }
    if let Some(cp) = &cx.checkpoint {
        let mark = cp.files.get(&d).copied().unwrap_or_default();
        let done = mark.offset;
        if done > complete || (done == complete && !checkpoint::mark_matches(&plain, &mark)) {
            // The index holds lines the file no longer has (cut back after a
            // failed write or fdatasync): the indexer must index the day
            // again before it is frozen into a .gz.
            cx.skip(
                &plain,
                format!(
                    "the index saw {done} bytes of a day file now {complete} bytes or changed \
                     (cut back after a storage error): compressed once re-indexed"
                ),
            );
            return Ok(None);
        }
        if done < complete {
            if cx.assume_covered {
                cx.report.notes.push(format!(
                    "{} is not fully indexed yet: a real run indexes it first",
                    day::plain_name(d)
                ));
            } else {
                cx.skip(
                    &plain,
                    format!(
                        "the index covers {done} of its {complete} bytes so far (compressed on a later run)"
                    ),
                );
                return Ok(None);
            }
        }
    }
    if cx.opts.dry_run {
        return Ok(Some(len));
    }
    let data = if complete == 0 {
        None
    } else {
        // SAFETY: a day file is only appended to, and a past day not at all;
        // the mapping covers complete lines only (see store::reader).
        Some(unsafe {
            memmap2::MmapOptions::new()
                .len(complete as usize)
                .map(&file)?
        })
    };
    let data: &[u8] = data.as_deref().unwrap_or(&[]);
    let result = write_and_check(cx, data, &plain, &tmp);
    let lines = match result {
        Ok(n) => n,
        Err(FileError::Failed(msg)) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(FileError::Failed(msg));
        }
        Err(crash) => return Err(crash),
    };
    let gz_len = std::fs::metadata(&tmp)?.len();
    let lock = StorageLock::acquire(dir)?;
    let now_len = std::fs::metadata(&plain)?.len();
    if now_len != len {
        drop(lock);
        let _ = std::fs::remove_file(&tmp);
        cx.skip(
            &plain,
            format!(
                "it changed during compression ({len} -> {now_len} bytes); compressed on a later run"
            ),
        );
        return Ok(None);
    }
    std::fs::rename(&tmp, &gz)?;
    cx.crash(Step::Renamed, &gz)?;
    sync_dir(dir)?;
    cx.crash(Step::RenameSynced, &gz)?;
    std::fs::remove_file(&plain)?;
    cx.crash(Step::PlainRemoved, &plain)?;
    sync_dir(dir)?;
    drop(lock);
    tracing::info!(file = %plain.display(), lines, bytes = complete, gz_bytes = gz_len, "compressed");
    Ok(Some(gz_len))
}

/// Writes `tmp` (fsynced) and reads it back; returns the line count.
fn write_and_check(cx: &Ctx<'_>, data: &[u8], plain: &Path, tmp: &Path) -> Result<u64, FileError> {
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(DAY_FILE_MODE)
        .open(tmp)?;
    let total = data.len() as u64;
    let progress = cx.opts.progress.clone();
    let mut report = |done: u64| {
        if let Some(p) = &progress {
            p(Work::Compress, plain, done, total);
        }
    };
    let members = gzip::compress_file(data, &mut out, cx.opts.threads, &mut report)?;
    drop(out);
    cx.crash(Step::TmpWritten, tmp)?;
    let back = File::open(tmp)?;
    let gz_len = back.metadata()?.len();
    let map = if gz_len == 0 {
        None
    } else {
        // SAFETY: the temporary file is ours (rotate.lock) and no longer written.
        Some(unsafe { memmap2::Mmap::map(&back)? })
    };
    let lines = gzip::check(
        data,
        map.as_deref().unwrap_or(&[]),
        &members,
        cx.opts.threads,
    )?;
    let expected = memchr::memchr_iter(b'\n', data).count() as u64;
    if lines != expected {
        return Err(FileError::Failed(format!(
            "read back {lines} events, the day file has {expected}"
        )));
    }
    cx.crash(Step::TmpChecked, tmp)?;
    Ok(lines)
}
