//! Reading day files: plain files through buffered reads, `.jsonl.gz`
//! through flate2 (multi-member gzip is fine). Only complete lines are
//! returned: a final line without its newline is a write in progress or a
//! torn tail, never an event.
//!
//! Plain files are not memory-mapped: the writer may cut whole lines off
//! the end of today's file (a failed write or `fdatasync`, see
//! `writer::recover_from_failures`), and touching a mapped page past the new
//! end would kill the process with SIGBUS. A read that comes up short is the
//! end of the file instead.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::chain::{self, ChainHead};
use super::day::{self, DayFile, DayRange};
use super::error::Error;
use crate::event::Event;

/// Reads the complete lines of one day file, in order.
pub struct LineReader {
    inner: Inner,
    line_no: u64,
    /// Byte offset (in the uncompressed content) just after the last line returned.
    offset: u64,
    /// Bytes after the last newline (plain files only), if any.
    torn_tail: u64,
}

/// Read buffer of plain files.
const PLAIN_BUF: usize = 1024 * 1024;

enum Inner {
    /// The complete lines of a plain file as it was at open (its length up
    /// to the last newline), read from `offset` on.
    Plain(Box<BufReader<io::Take<File>>>),
    Gz(Box<BufReader<MultiGzDecoder<File>>>),
}

impl LineReader {
    /// Opens `file` for reading. A plain file that is gone by now was
    /// compressed since it was listed (rotation renames the `.gz` into place
    /// before it removes the plain file): its `.gz` is opened instead, so a
    /// reader racing a rotation still reads the day exactly once.
    pub fn open(file: &DayFile) -> io::Result<LineReader> {
        match (
            Self::open_path(&file.path, file.compressed),
            file.compressed_form(),
        ) {
            (Err(e), Some(gz)) if e.kind() == io::ErrorKind::NotFound => {
                Self::open_path(&gz.path, true).map_err(|_| e)
            }
            (other, _) => other,
        }
    }

    /// Opens the file at `path`, compressed or not.
    pub fn open_path(path: &Path, compressed: bool) -> io::Result<LineReader> {
        let f = File::open(path)?;
        if compressed {
            return Ok(LineReader {
                inner: Inner::Gz(Box::new(BufReader::with_capacity(
                    256 * 1024,
                    MultiGzDecoder::new(f),
                ))),
                line_no: 0,
                offset: 0,
                torn_tail: 0,
            });
        }
        // Read only up to the last newline: what follows is a write in
        // progress or a torn tail.
        let len = f.metadata()?.len();
        let complete = complete_len(&f, len)?;
        let mut f = f;
        f.seek(SeekFrom::Start(0))?;
        Ok(LineReader {
            inner: Inner::Plain(Box::new(BufReader::with_capacity(
                PLAIN_BUF,
                f.take(complete),
            ))),
            line_no: 0,
            offset: 0,
            torn_tail: len - complete,
        })
    }

    /// Opens `file` and skips to byte `offset` (which must be a line start),
    /// numbering the next line `line_no + 1`. Used by the tail indexer to
    /// resume from a checkpoint.
    pub fn open_from(file: &DayFile, offset: u64, line_no: u64) -> io::Result<LineReader> {
        let mut r = Self::open(file)?;
        match &mut r.inner {
            Inner::Plain(r) => {
                let limit = r.get_ref().limit();
                let to = offset.min(limit);
                r.get_mut().get_mut().seek(SeekFrom::Start(to))?;
                r.get_mut().set_limit(limit - to);
            }
            Inner::Gz(g) => {
                io::copy(&mut (&mut **g).take(offset), &mut io::sink())?;
            }
        }
        r.offset = offset;
        r.line_no = line_no;
        Ok(r)
    }

    /// Byte offset just after the last line returned (uncompressed).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of the last line returned.
    pub fn line_no(&self) -> u64 {
        self.line_no
    }

    /// Bytes after the last newline of a plain file (a torn or in-progress write).
    pub fn torn_tail(&self) -> u64 {
        self.torn_tail
    }

    /// The next complete line without its newline (held in `buf`), and its
    /// 1-based number.
    pub fn next_line<'a>(
        &'a mut self,
        buf: &'a mut Vec<u8>,
    ) -> io::Result<Option<(u64, &'a [u8])>> {
        match &mut self.inner {
            Inner::Plain(r) => {
                buf.clear();
                let n = r.read_until(b'\n', buf)?;
                if buf.last() != Some(&b'\n') {
                    // The end, or the file was cut back under us (a failed
                    // write or fdatasync): no complete line here.
                    return Ok(None);
                }
                self.offset += n as u64;
                buf.pop();
                self.line_no += 1;
                Ok(Some((self.line_no, &buf[..])))
            }
            Inner::Gz(r) => {
                buf.clear();
                let n = r.read_until(b'\n', buf)?;
                if n == 0 {
                    return Ok(None);
                }
                if buf.last() != Some(&b'\n') {
                    // A gz file is written whole by rotation; a missing final
                    // newline means it was cut short.
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "compressed day file ends inside a line",
                    ));
                }
                self.offset += n as u64;
                buf.pop();
                self.line_no += 1;
                Ok(Some((self.line_no, &buf[..])))
            }
        }
    }
}

/// Length of `f` up to and including its last newline (reads backwards).
pub(crate) fn complete_len(f: &File, len: u64) -> io::Result<u64> {
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut f = f;
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut chunk[..n])?;
        if let Some(i) = memchr::memrchr(b'\n', &chunk[..n]) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// The chain head of the last chained line of a day file, if any.
pub(crate) fn last_head(file: &DayFile) -> io::Result<Option<ChainHead>> {
    if file.compressed {
        let mut r = LineReader::open(file)?;
        let mut buf = Vec::new();
        let mut head = None;
        while let Some((_, line)) = r.next_line(&mut buf)? {
            if let Some(t) = chain::parse_tail(line) {
                head = Some(t.head());
            }
        }
        return Ok(head);
    }
    let f = match File::open(&file.path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Compressed by rotation since it was listed.
            return match file.compressed_form() {
                Some(gz) if gz.path.exists() => last_head(&gz),
                _ => Err(e),
            };
        }
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    last_head_plain(&f, len)
}

/// The chain head of the last chained line among the first `len` bytes of `f`.
/// Reads backwards in growing windows; lines without a chain suffix are
/// passed over.
pub(crate) fn last_head_plain(f: &File, len: u64) -> io::Result<Option<ChainHead>> {
    let end = complete_len(f, len)?;
    let mut f = f;
    let mut window: u64 = 64 * 1024;
    loop {
        let start = end.saturating_sub(window);
        let mut buf = vec![0u8; (end - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf)?;
        // Walk complete lines from the end; the first one is only complete
        // when the window starts at the beginning of the file.
        let mut stop = buf.len().saturating_sub(1); // drop the final '\n'
        loop {
            let line_start = match memchr::memrchr(b'\n', &buf[..stop]) {
                Some(i) => i + 1,
                None if start == 0 => 0,
                None => break,
            };
            if let Some(t) = chain::parse_tail(&buf[line_start..stop]) {
                return Ok(Some(t.head()));
            }
            if line_start == 0 {
                return Ok(None);
            }
            stop = line_start - 1;
        }
        if start == 0 {
            return Ok(None);
        }
        window *= 4;
    }
}

/// One event read back from a day file.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The event (with `id` and `timestamp` set).
    pub event: Event,
    /// Its position in the hash chain (1 for the first event ever).
    pub seq: u64,
    /// Its chain hash (64 hex digits).
    pub hash: String,
    /// The file it came from.
    pub path: PathBuf,
    /// Its 1-based line number in that file.
    pub line: u64,
}

/// Iterates over the events of a day range, oldest file first.
///
/// A malformed line yields `Err(Error::Malformed { .. })` and the scan goes
/// on; an unreadable file yields `Err(Error::Io { .. })` and the scan moves
/// to the next file.
pub struct Scan {
    files: std::vec::IntoIter<DayFile>,
    current: Option<(PathBuf, LineReader)>,
    buf: Vec<u8>,
}

impl Scan {
    /// Scans the day files of `dir` in `range`.
    pub fn new(dir: &Path, range: DayRange) -> Result<Scan, Error> {
        let files = day::list(dir, range).map_err(|e| Error::io(dir, e))?;
        Ok(Scan {
            files: files.into_iter(),
            current: None,
            buf: Vec::new(),
        })
    }
}

/// Parses one stored line into a [`Record`].
pub fn parse_record(path: &Path, line_no: u64, line: &[u8]) -> Result<Record, Error> {
    let malformed = |reason: String| Error::Malformed {
        path: path.to_path_buf(),
        line: line_no,
        reason,
    };
    let mut event = Event::from_json(line).map_err(|e| malformed(e.to_string()))?;
    let seq = event._seq.take();
    let hash = event._hash.take();
    let (Some(seq), Some(hash)) = (seq, hash) else {
        return Err(malformed("no seq/hash chain fields".into()));
    };
    if event.id.is_none() || event.timestamp.is_none() {
        return Err(malformed("stored event lacks id or timestamp".into()));
    }
    Ok(Record {
        event,
        seq,
        hash,
        path: path.to_path_buf(),
        line: line_no,
    })
}

impl Iterator for Scan {
    type Item = Result<Record, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.current.is_none() {
                let file = self.files.next()?;
                match LineReader::open(&file) {
                    Ok(r) => self.current = Some((file.path, r)),
                    Err(e) => return Some(Err(Error::io(&file.path, e))),
                }
            }
            let (path, reader) = self.current.as_mut().expect("set above");
            match reader.next_line(&mut self.buf) {
                Ok(Some((no, line))) => {
                    let path = path.clone();
                    return Some(parse_record(&path, no, line));
                }
                Ok(None) => self.current = None,
                Err(e) => {
                    let path = path.clone();
                    self.current = None;
                    return Some(Err(Error::io(&path, e)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review finding: plain files were memory-mapped, and a writer cutting
    /// lines off after a failed write or fdatasync made the next touch of a
    /// mapped page past the new end kill the process (SIGBUS). A reader now
    /// sees the end of the file instead.
    #[test]
    fn a_file_cut_back_under_a_reader_ends_its_lines_without_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events_2026-01-01.jsonl");
        let line = format!("{{\"n\":\"{}\"}}\n", "x".repeat(200));
        let lines = 3 * PLAIN_BUF / line.len();
        std::fs::write(&path, line.repeat(lines)).unwrap();
        let file = DayFile {
            day: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            path: path.clone(),
            compressed: false,
        };
        let mut r = LineReader::open(&file).unwrap();
        let mut buf = Vec::new();
        let (no, first) = r.next_line(&mut buf).unwrap().unwrap();
        assert_eq!((no, first), (1, line.trim_end().as_bytes()));
        // Cut to 10 lines while the reader is open (as the writer's cut-back does).
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len((10 * line.len()) as u64)
            .unwrap();
        let mut n = 1;
        while let Some((no, got)) = r.next_line(&mut buf).unwrap() {
            n += 1;
            assert_eq!(no, n);
            assert_eq!(got, line.trim_end().as_bytes(), "line {no} is whole");
        }
        // Lines already buffered may still come; never more than the file had.
        assert!((10..lines as u64).contains(&n), "{n} lines");
        assert_eq!(r.offset(), n * line.len() as u64);
    }
}
