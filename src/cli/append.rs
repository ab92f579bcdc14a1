//! `evlog append`: one event from flags, or NDJSON from standard input.

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::sync::mpsc;

use uuid::Uuid;

use super::{Context, EXIT_PROBLEM};
use crate::event::{Event, EventType, Level, Status, ValidationError, parse_timestamp};
use crate::store::{EventLog, Pending};

/// Flags of the subcommand (documented on `Command`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Read NDJSON events from standard input instead of flags.
    #[arg(long, conflicts_with_all = ["event_type", "user", "desc"])]
    pub stdin: bool,
    /// Event type: a built-in type (commit, push, auth_login, ...) or a custom
    /// type matching ^[a-z][a-z0-9_.]{0,63}$.
    #[arg(long = "type", value_name = "TYPE", required_unless_present = "stdin")]
    pub event_type: Option<String>,
    /// Who did it (1-256 characters).
    #[arg(long, value_name = "USER", required_unless_present = "stdin")]
    pub user: Option<String>,
    /// What was done, for humans.
    #[arg(long, value_name = "TEXT", required_unless_present = "stdin")]
    pub desc: Option<String>,
    /// Outcome: success, failure, pending or in_progress (any case; stored lowercase).
    #[arg(long, default_value = "success")]
    pub status: String,
    /// Severity: info, warning, error or security (default info; any case,
    /// stored lowercase).
    #[arg(long)]
    pub level: Option<String>,
    /// Metadata as a JSON object, e.g. '{"branch":"main"}'.
    #[arg(long, value_name = "JSON")]
    pub meta: Option<String>,
    /// Files changed, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub files: Vec<String>,
    /// Free-form comments.
    #[arg(long)]
    pub comments: Option<String>,
    /// Request id correlating events of one request.
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
    /// The emitting service (1-128 characters), e.g. api-service.
    #[arg(long, value_name = "SERVICE")]
    pub source: Option<String>,
    /// The tenant it belongs to (^[a-z0-9][a-z0-9_-]{0,62}$); default: the
    /// default tenant.
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// Client IP address.
    #[arg(long, value_name = "IP")]
    pub source_ip: Option<String>,
    /// Duration in milliseconds (>= 0).
    #[arg(long, value_name = "N")]
    pub duration_ms: Option<f64>,
    /// When it happened (RFC 3339); default: now.
    #[arg(long, value_name = "RFC3339")]
    pub timestamp: Option<String>,
}

pub(crate) fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    if args.stdin {
        return run_stdin(ctx);
    }
    let event = match event_from_flags(&args) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_PROBLEM));
        }
    };
    let log = ctx.open_log()?;
    match log.append(event) {
        Ok(id) => {
            println!("{id}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.is_client_error() => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(EXIT_PROBLEM))
        }
        Err(e) => Err(super::store_error(e)),
    }
}

fn event_from_flags(a: &Args) -> Result<Event, ValidationError> {
    let ty: EventType = a.event_type.as_deref().unwrap_or_default().parse()?;
    let mut e = Event::new(
        ty,
        a.user.clone().unwrap_or_default(),
        a.desc.clone().unwrap_or_default(),
    )
    .status(a.status.parse::<Status>()?)
    .files_changed(a.files.iter().filter(|f| !f.is_empty()).cloned());
    if let Some(l) = &a.level {
        e = e.level(l.parse::<Level>()?);
    }
    if let Some(m) = &a.meta {
        let v: serde_json::Value = serde_json::from_str(m).map_err(|err| {
            ValidationError::new("metadata", format!("--meta is not valid JSON: {err}"))
        })?;
        e = e.metadata(v);
    }
    if let Some(c) = &a.comments {
        e = e.comments(c.clone());
    }
    if let Some(r) = &a.request_id {
        e = e.request_id(r.clone());
    }
    if let Some(s) = &a.source {
        e = e.source(s.clone());
    }
    if let Some(t) = &a.tenant {
        e = e.tenant(t.clone());
    }
    if let Some(ip) = &a.source_ip {
        e = e.source_ip(ip.clone());
    }
    if let Some(d) = a.duration_ms {
        e = e.duration_ms(d);
    }
    if let Some(t) = &a.timestamp {
        let ts = parse_timestamp(t).map_err(|err| {
            ValidationError::new("timestamp", format!("`{t}` is not RFC 3339: {err}"))
        })?;
        e = e.timestamp(ts);
    }
    Ok(e)
}

/// Bytes read from standard input at a time (cut back to the last newline).
const BLOCK_BYTES: usize = 1 << 20;

/// One chunk of input lines on its way to the printer.
struct Chunk {
    ids: Vec<Uuid>,
    rejects: Vec<(u64, String)>,
    pending: Option<Pending>,
}

/// Complete lines read from standard input, numbered in input order.
struct Block {
    no: u64,
    first_line: u64,
    data: Vec<u8>,
}

/// A block after parsing, validation and serialization.
struct Parsed {
    no: u64,
    ids: Vec<Uuid>,
    bodies: Vec<Vec<u8>>,
    rejects: Vec<(u64, String)>,
}

/// Pipeline: a reader thread cuts standard input into blocks of complete
/// lines; one parser per core validates and serializes blocks; a sequencer
/// puts them back in input order and submits each to the committer without
/// waiting; this thread waits for each chunk in order and prints its ids. A
/// block is whatever one `read` returned (up to 1 MiB), so a slow producer
/// (a pipe) gets its acknowledgements promptly while a file is imported in
/// bulk on every core.
fn run_stdin(ctx: &Context) -> anyhow::Result<ExitCode> {
    let log = ctx.open_log()?;
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    let (block_tx, block_rx) = mpsc::sync_channel::<Block>(workers * 2);
    let block_rx = std::sync::Arc::new(std::sync::Mutex::new(block_rx));
    let (parsed_tx, parsed_rx) = mpsc::sync_channel::<Parsed>(workers * 2);
    let (tx, rx) = mpsc::sync_channel::<anyhow::Result<Chunk>>(16);

    let reader_err = tx.clone();
    let reader = std::thread::Builder::new()
        .name("evlog-read".into())
        .spawn(move || {
            if let Err(e) = read_blocks(&block_tx) {
                let _ = reader_err.send(Err(anyhow::anyhow!("reading standard input: {e}")));
            }
        })?;
    let mut parsers = Vec::new();
    for i in 0..workers {
        let rx = block_rx.clone();
        let out = parsed_tx.clone();
        let log = log.clone();
        parsers.push(
            std::thread::Builder::new()
                .name(format!("evlog-parse-{i}"))
                .spawn(move || {
                    loop {
                        let block = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                            Ok(b) => b,
                            Err(_) => return,
                        };
                        if out.send(parse_block(&log, block)).is_err() {
                            return;
                        }
                    }
                })?,
        );
    }
    drop(parsed_tx);
    let seq_log = log.clone();
    let sequencer = std::thread::Builder::new()
        .name("evlog-submit".into())
        .spawn(move || {
            let mut waiting = std::collections::BTreeMap::new();
            let mut next = 0u64;
            for p in parsed_rx {
                waiting.insert(p.no, p);
                while let Some(p) = waiting.remove(&next) {
                    next += 1;
                    let pending = if p.bodies.is_empty() {
                        None
                    } else {
                        match seq_log.submit_async(p.bodies) {
                            Ok(pending) => Some(pending),
                            Err(e) => {
                                let _ = tx.send(Err(e.into()));
                                return;
                            }
                        }
                    };
                    let chunk = Chunk {
                        ids: p.ids,
                        rejects: p.rejects,
                        pending,
                    };
                    if tx.send(Ok(chunk)).is_err() {
                        return;
                    }
                }
            }
        })?;

    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let (mut appended, mut rejected) = (0u64, 0u64);
    let mut failure: Option<anyhow::Error> = None;
    for chunk in rx {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        for (line, msg) in &chunk.rejects {
            eprintln!("line {line}: {msg}");
        }
        rejected += chunk.rejects.len() as u64;
        if let Some(p) = chunk.pending {
            if let Err(e) = p.wait() {
                failure = Some(super::store_error(e).context(format!(
                    "write failed after {appended} event(s) were appended"
                )));
                break;
            }
            for id in &chunk.ids {
                writeln!(out, "{id}")?;
            }
            out.flush()?;
            appended += chunk.ids.len() as u64;
        }
    }
    if let Some(e) = failure {
        // The reader may be blocked on standard input: do not wait for it,
        // but close the log, which cuts off what failed (other threads still
        // hold clones of it, so dropping ours would not).
        if let Err(close) = log.close() {
            tracing::warn!(error = %close, "closing the log after a failed write");
        }
        return Err(e);
    }
    let _ = reader.join();
    for p in parsers {
        let _ = p.join();
    }
    let _ = sequencer.join();
    drop(log);
    eprintln!("appended {appended} event(s), rejected {rejected}");
    Ok(if rejected > 0 {
        ExitCode::from(EXIT_PROBLEM)
    } else {
        ExitCode::SUCCESS
    })
}

/// Reads standard input into blocks of complete lines. Each `read` that
/// ends a line yields a block, so a pipe's lines are passed on as they come.
fn read_blocks(tx: &mpsc::SyncSender<Block>) -> io::Result<()> {
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut carry: Vec<u8> = Vec::new();
    let mut no = 0u64;
    let mut next_line = 1u64;
    loop {
        let start = carry.len();
        carry.resize(start + BLOCK_BYTES, 0);
        let n = match input.read(&mut carry[start..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                carry.truncate(start);
                continue;
            }
            Err(e) => return Err(e),
        };
        carry.truncate(start + n);
        let eof = n == 0;
        let cut = if eof {
            carry.len()
        } else {
            match memchr::memrchr(b'\n', &carry[start..]) {
                Some(i) => start + i + 1,
                None => continue,
            }
        };
        if cut > 0 {
            let rest = carry.split_off(cut);
            let data = std::mem::replace(&mut carry, rest);
            let lines = memchr::memchr_iter(b'\n', &data).count() as u64
                + u64::from(data.last() != Some(&b'\n'));
            let block = Block {
                no,
                first_line: next_line,
                data,
            };
            no += 1;
            next_line += lines;
            if tx.send(block).is_err() {
                return Ok(());
            }
        }
        if eof {
            return Ok(());
        }
    }
}

fn parse_block(log: &EventLog, block: Block) -> Parsed {
    let mut parsed = Parsed {
        no: block.no,
        ids: Vec::new(),
        bodies: Vec::new(),
        rejects: Vec::new(),
    };
    for (i, line) in block.data.split(|b| *b == b'\n').enumerate() {
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        match Event::from_json(text).and_then(|e| log.prepare(e)) {
            Ok((id, body)) => {
                parsed.ids.push(id);
                parsed.bodies.push(body);
            }
            Err(e) => parsed
                .rejects
                .push((block.first_line + i as u64, e.to_string())),
        }
    }
    parsed
}
