//! `evlog append`: one event from flags, or NDJSON from standard input.

use std::io::{self, BufRead, Write};
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
    /// Outcome: success, failure, pending or in_progress.
    #[arg(long, default_value = "success")]
    pub status: String,
    /// Severity: info, warning, error or security (default info).
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
        Err(e) => Err(e.into()),
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

/// Most events gathered into one submission.
const MAX_CHUNK: usize = 8192;

/// One chunk of input lines on its way to the printer.
struct Chunk {
    ids: Vec<Uuid>,
    rejects: Vec<(u64, String)>,
    pending: Option<Pending>,
}

/// Pipeline: a parser thread reads, validates and serializes lines and submits
/// each chunk to the committer without waiting; this thread waits for each
/// chunk in order and prints its ids. A chunk is cut at MAX_CHUNK events or
/// whenever no complete line is left in the input buffer (the next read may
/// block), so a slow producer (a pipe) gets its acknowledgements promptly
/// while a file is imported in bulk.
fn run_stdin(ctx: &Context) -> anyhow::Result<ExitCode> {
    let log = ctx.open_log()?;
    let (tx, rx) = mpsc::sync_channel::<anyhow::Result<Chunk>>(16);
    let parser_log = log.clone();
    let parser = std::thread::Builder::new()
        .name("evlog-parse".into())
        .spawn(move || parse_stdin(&parser_log, &tx))?;

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
                failure = Some(anyhow::anyhow!(
                    "write failed after {appended} event(s) were appended: {e}"
                ));
                break;
            }
            for id in &chunk.ids {
                writeln!(out, "{id}")?;
            }
            out.flush()?;
            appended += chunk.ids.len() as u64;
        }
    }
    drop(log);
    let _ = parser.join();
    if let Some(e) = failure {
        return Err(e);
    }
    eprintln!("appended {appended} event(s), rejected {rejected}");
    Ok(if rejected > 0 {
        ExitCode::from(EXIT_PROBLEM)
    } else {
        ExitCode::SUCCESS
    })
}

fn parse_stdin(log: &EventLog, tx: &mpsc::SyncSender<anyhow::Result<Chunk>>) {
    let stdin = io::stdin();
    let mut input = io::BufReader::with_capacity(1 << 20, stdin.lock());
    let mut line = Vec::with_capacity(1024);
    let mut line_no = 0u64;
    let new_chunk = || Chunk {
        ids: Vec::new(),
        rejects: Vec::new(),
        pending: None,
    };
    let mut chunk = new_chunk();
    let mut bodies = Vec::new();
    loop {
        line.clear();
        let n = match input.read_until(b'\n', &mut line) {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(Err(anyhow::anyhow!("reading standard input: {e}")));
                return;
            }
        };
        let eof = n == 0;
        if !eof {
            line_no += 1;
            let text = line.trim_ascii();
            if !text.is_empty() {
                match Event::from_json(text).and_then(|e| log.prepare(e)) {
                    Ok((id, body)) => {
                        chunk.ids.push(id);
                        bodies.push(body);
                    }
                    Err(e) => chunk.rejects.push((line_no, e.to_string())),
                }
            }
        }
        // About to block on a read (no complete line buffered): cut the
        // chunk now so a slow producer gets its acknowledgements promptly.
        let idle = memchr::memchr(b'\n', input.buffer()).is_none();
        if eof
            || chunk.ids.len() >= MAX_CHUNK
            || (idle && (!bodies.is_empty() || !chunk.rejects.is_empty()))
        {
            if !bodies.is_empty() {
                match log.submit_async(std::mem::take(&mut bodies)) {
                    Ok(p) => chunk.pending = Some(p),
                    Err(e) => {
                        let _ = tx.send(Err(e.into()));
                        return;
                    }
                }
            }
            if tx
                .send(Ok(std::mem::replace(&mut chunk, new_chunk())))
                .is_err()
            {
                return;
            }
        }
        if eof {
            return;
        }
    }
}
