//! What is left to publish: the committed lines after the cursor, read from
//! the day files in `seq` order (plain or `.jsonl.gz`), each made durable
//! (fdatasync of its file) before it is handed out. Copies followed from
//! the stream (with an `origin`) are passed over: their node published them.
//!
//! Reading the files rather than taking events from the append path is what
//! lets appends never wait for the stream: when NATS is slow or down the
//! backlog simply grows in the files, and a restarted node resumes from its
//! cursor.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::cursor::Cursor;
use crate::event::{DEFAULT_TENANT, Event};
use crate::store::Error;
use crate::store::day::{self, DayFile, DayRange};
use crate::store::reader::{LineReader, parse_record};

/// The subject prefix of every replicated event.
pub const SUBJECT_PREFIX: &str = "evlog";

/// The subject of an event: `evlog.<tenant or _>.<event_type>`, where the
/// dots a custom type may hold become `_` (a NATS subject's tokens are
/// separated by dots and may not be empty).
pub fn subject_of(event: &Event) -> String {
    let tenant = event.tenant.as_deref().unwrap_or(DEFAULT_TENANT);
    let ty = event.event_type.as_str().replace('.', "_");
    format!("{SUBJECT_PREFIX}.{tenant}.{ty}")
}

/// One committed line to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Its `seq` in this store.
    pub seq: u64,
    /// The event's id (the `Nats-Msg-Id`).
    pub id: Uuid,
    /// Its subject.
    pub subject: String,
    /// The stored line, without its newline.
    pub line: Bytes,
    /// The event's timestamp (for the lag in seconds).
    pub timestamp: DateTime<Utc>,
    /// The cursor once this line is acknowledged.
    pub after: Cursor,
}

/// A line the backlog skipped: it cannot be parsed (`evlog verify` names
/// it), so it cannot be published.
#[derive(Debug)]
pub struct Skipped(pub Error);

/// Reads the lines after a cursor, in order.
pub struct Backlog {
    dir: PathBuf,
    /// The position after the last line handed out.
    next: Cursor,
    /// The compressed file being read, kept open between reads (reopening
    /// would decompress it again from its start).
    gz: Option<(DayFile, LineReader)>,
    buf: Vec<u8>,
}

impl Backlog {
    /// A backlog of the store in `dir`, from `cursor` on.
    pub fn new(dir: &Path, cursor: Cursor) -> Backlog {
        Backlog {
            dir: dir.to_path_buf(),
            next: cursor,
            gz: None,
            buf: Vec::new(),
        }
    }

    /// Goes back to `cursor` (after a failed publish: everything after it
    /// is read and published again).
    pub fn rewind(&mut self, cursor: Cursor) {
        self.next = cursor;
        self.gz = None;
    }

    /// The position after the last line handed out.
    pub fn position(&self) -> Cursor {
        self.next
    }

    /// Up to `max` lines (and about `max_bytes`) after the last one handed
    /// out, durable. Unparseable lines are passed over and returned in
    /// `skipped`.
    pub fn read(
        &mut self,
        max: usize,
        max_bytes: usize,
        skipped: &mut Vec<Skipped>,
    ) -> Result<Vec<Outgoing>, Error> {
        let files = day::list(
            &self.dir,
            DayRange {
                from: self.next.day,
                to: None,
            },
        )
        .map_err(|e| Error::io(&self.dir, e))?;
        let mut out: Vec<Outgoing> = Vec::new();
        let mut bytes = 0usize;
        for (i, file) in files.iter().enumerate() {
            let file = file.clone();
            if out.len() >= max || bytes >= max_bytes {
                break;
            }
            let mut reader = match self.gz.take() {
                Some((f, r)) if f.day == file.day => r,
                _ => {
                    let (offset, line) = if Some(file.day) == self.next.day {
                        (self.next.offset, self.next.line)
                    } else {
                        (0, 0)
                    };
                    LineReader::open_from(&file, offset, line)
                        .map_err(|e| Error::io(&file.path, e))?
                }
            };
            let before = out.len();
            let mut ended = false;
            while out.len() < max && bytes < max_bytes {
                let Some((no, line)) = reader
                    .next_line(&mut self.buf)
                    .map_err(|e| Error::io(&file.path, e))?
                else {
                    ended = true;
                    break;
                };
                let line = Bytes::copy_from_slice(line);
                let record = match parse_record(&file.path, no, &line) {
                    Ok(r) => r,
                    Err(e) => {
                        skipped.push(Skipped(e));
                        continue;
                    }
                };
                let at = Cursor {
                    seq: record.seq,
                    day: Some(file.day),
                    offset: reader.offset(),
                    line: reader.line_no(),
                };
                // Read from a day's start (a cursor without a position, or
                // one whose file changed): lines up to the cursor are done.
                if record.seq <= self.next.seq {
                    self.next = Cursor {
                        seq: self.next.seq,
                        ..at
                    };
                    continue;
                }
                if record.event.origin.is_some() {
                    // A copy followed from the stream: its own node
                    // published it.
                    self.next = at;
                    continue;
                }
                bytes += line.len();
                out.push(Outgoing {
                    seq: record.seq,
                    id: record.event.id.expect("a stored event has an id"),
                    subject: subject_of(&record.event),
                    line,
                    timestamp: record
                        .event
                        .timestamp
                        .expect("a stored event has a timestamp"),
                    after: at,
                });
                self.next = at;
            }
            if out.len() > before && !file.compressed {
                // The writer acknowledges a line once its own fdatasync is
                // done; a line read before that is made durable here, so
                // that nothing published can be lost locally.
                std::fs::File::open(&file.path)
                    .and_then(|f| f.sync_data())
                    .map_err(|e| Error::io(&file.path, e))?;
            }
            if file.compressed {
                if !ended {
                    self.gz = Some((file, reader));
                    break;
                }
                // A compressed day never grows: the next read starts at the
                // next day instead of decompressing this one again.
                if let Some(next) = files.get(i + 1) {
                    self.next = Cursor {
                        seq: self.next.seq,
                        day: Some(next.day),
                        offset: 0,
                        line: 0,
                    };
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;
    use crate::store::{Config, EventLog};

    fn append(log: &EventLog, n: usize, tenant: Option<&str>) -> Vec<Uuid> {
        (0..n)
            .map(|i| {
                let mut e = Event::new(EventType::Commit, "ops", format!("commit {i}"));
                e.tenant = tenant.map(str::to_string);
                log.append(e).unwrap()
            })
            .collect()
    }

    fn read_all(b: &mut Backlog) -> Vec<Outgoing> {
        let mut skipped = Vec::new();
        let mut all = Vec::new();
        loop {
            let got = b.read(3, usize::MAX, &mut skipped).unwrap();
            if got.is_empty() {
                break;
            }
            all.extend(got);
        }
        assert!(skipped.is_empty(), "{skipped:?}");
        all
    }

    #[test]
    fn reads_every_line_once_in_order_then_the_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(Config::new(dir.path())).unwrap();
        let first = append(&log, 7, None);
        let mut b = Backlog::new(dir.path(), Cursor::default());
        let got = read_all(&mut b);
        assert_eq!(got.iter().map(|o| o.id).collect::<Vec<_>>(), first);
        assert_eq!(
            got.iter().map(|o| o.seq).collect::<Vec<_>>(),
            (1..=7).collect::<Vec<_>>()
        );
        assert!(got.iter().all(|o| o.subject == "evlog._.commit"));
        let more = append(&log, 2, Some("acme"));
        let got = read_all(&mut b);
        assert_eq!(got.iter().map(|o| o.id).collect::<Vec<_>>(), more);
        assert_eq!(got[0].subject, "evlog.acme.commit");
        // A new backlog from the cursor of the 7th line reads the last two.
        let mut again = Backlog::new(dir.path(), got[0].after);
        let rest = read_all(&mut again);
        assert_eq!(rest.iter().map(|o| o.id).collect::<Vec<_>>(), [more[1]]);
    }

    #[test]
    fn a_cursor_with_only_a_seq_skips_what_it_covers() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(Config::new(dir.path())).unwrap();
        let ids = append(&log, 5, None);
        let mut b = Backlog::new(
            dir.path(),
            Cursor {
                seq: 3,
                ..Cursor::default()
            },
        );
        let got = read_all(&mut b);
        assert_eq!(got.iter().map(|o| o.id).collect::<Vec<_>>(), ids[3..]);
    }

    #[test]
    fn copies_followed_from_the_stream_are_not_published_again() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(Config::new(dir.path())).unwrap();
        let own = append(&log, 2, None);
        let mut copy = Event::new(EventType::Commit, "ops", "from edge-2");
        copy.id = Some(Uuid::now_v7());
        copy.timestamp = Some(Utc::now());
        copy.origin = Some("edge-2".into());
        log.append_copies(vec![copy]).unwrap();
        let last = append(&log, 1, None);
        let mut b = Backlog::new(dir.path(), Cursor::default());
        let got = read_all(&mut b);
        assert_eq!(
            got.iter().map(|o| o.id).collect::<Vec<_>>(),
            [own[0], own[1], last[0]]
        );
        assert_eq!(got.iter().map(|o| o.seq).collect::<Vec<_>>(), [1, 2, 4]);
        // A backlog ending with a copy moves past it.
        let mut from_two = Backlog::new(dir.path(), got[1].after);
        assert_eq!(
            from_two.read(1, usize::MAX, &mut Vec::new()).unwrap()[0].seq,
            4
        );
        assert_eq!(from_two.position().seq, 4);
    }

    #[test]
    fn dots_of_custom_types_do_not_make_tokens() {
        let e = Event::new(EventType::Custom("deploy.prod".into()), "ops", "x");
        assert_eq!(subject_of(&e), "evlog._.deploy_prod");
    }
}
