//! The server's checkpoints: written on a schedule and delivered to sinks
//! off the host (README "Tamper evidence").
//!
//! [`run`] writes a checkpoint at start, every `interval` and at each UTC
//! day end (each only when something was appended since the last one), and
//! at stop. Each [`Sink`] is a task of its own, brought up to date after
//! each round and every [`RETRY`] while it fails. None blocks an append:
//! the checkpoints wait in `<storage>/checkpoints/` until a sink takes them.
//!
//! - [`Sink::Dir`]: each `checkpoints/YYYY-MM-DD.jsonl` is copied to the
//!   directory by appending the lines it lacks. A copy that is not a prefix
//!   of the local file is never overwritten: that is an error to look at
//!   (`evlog verify --checkpoints` on each tells which one was changed).
//! - [`Sink::Post`]: each checkpoint is POSTed (its JSON line) in order; a
//!   2xx answer delivers it. The place is saved in
//!   `checkpoints/.delivered-<sink>` after each: a restart resends at most
//!   the one in flight.
//! - [`Sink::Nats`]: each checkpoint is published on the replication stream
//!   under `evlog._checkpoints.<node>`, `Nats-Msg-Id` = its digest (so a
//!   resend is dropped by the stream); followers skip these subjects.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::{DIR, Stored, Written, read_dir, write_upto};
use crate::replicate::backlog::SUBJECT_PREFIX;
use crate::replicate::nats::NatsConfig;
use crate::replicate::publish::NODE_HEADER;

/// The default `checkpoint_interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
/// How soon a failed delivery is tried again.
pub const RETRY: Duration = Duration::from_secs(10);
/// How long one HTTP POST may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// The subject token under which checkpoints go on the stream (not a
/// tenant name: those start with a letter or digit).
pub const NATS_TOKEN: &str = "_checkpoints";

/// Where checkpoints are delivered.
#[derive(Debug, Clone)]
pub enum Sink {
    /// A directory (an NFS mount, a bucket mounted by its own tools).
    Dir(PathBuf),
    /// An HTTP(S) URL each checkpoint is POSTed to.
    Post(String),
    /// The replication stream.
    Nats(NatsConfig),
}

impl Sink {
    /// Its name in `/health` and `/metrics`: `dir:PATH`, `post:URL`,
    /// `nats:STREAM`.
    pub fn name(&self) -> String {
        match self {
            Sink::Dir(d) => format!("dir:{}", d.display()),
            Sink::Post(u) => format!("post:{}", redact(u)),
            Sink::Nats(c) => format!("nats:{}", c.stream),
        }
    }

    /// Checks a sink given by the operator: a directory must exist, a URL
    /// must be `http://` or `https://`.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Sink::Dir(d) if !d.is_dir() => Err(format!(
                "checkpoint directory {} does not exist (or is not a directory): create or mount it",
                d.display()
            )),
            Sink::Post(u) => match reqwest::Url::parse(u) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(()),
                Ok(_) => Err(format!(
                    "checkpoint URL {}: want http:// or https://",
                    redact(u)
                )),
                Err(e) => Err(format!("a checkpoint URL does not parse: {e}")),
            },
            _ => Ok(()),
        }
    }
}

/// A URL as names and messages show it (`/health` is open to anyone):
/// scheme, host and port only — user, password, path, query and fragment
/// may each carry a token (webhook URLs put theirs in the path); nothing of
/// one that does not parse.
fn redact(u: &str) -> String {
    match reqwest::Url::parse(u) {
        Ok(url) => {
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            let more = !url.username().is_empty()
                || url.password().is_some()
                || url.path() != "/"
                || url.query().is_some()
                || url.fragment().is_some();
            format!(
                "{}://{}{port}/{}",
                url.scheme(),
                url.host_str().unwrap_or_default(),
                if more { "…" } else { "" }
            )
        }
        Err(_) => "(a URL that does not parse)".into(),
    }
}

/// The server's checkpoint settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How often (only when something was appended since the last).
    pub interval: Duration,
    /// This node's name.
    pub node: String,
    /// Where they go.
    pub sinks: Vec<Sink>,
}

/// One sink's state (for `/health` and `/metrics`).
#[derive(Debug)]
pub struct SinkStatus {
    /// [`Sink::name`].
    pub name: String,
    /// Checkpoints delivered since start.
    pub delivered: AtomicU64,
    /// Checkpoints not delivered yet.
    pub pending: AtomicU64,
    /// Failed attempts since start.
    pub failures: AtomicU64,
    /// The last failure, cleared by a success.
    pub last_error: Mutex<Option<String>>,
}

/// The state of the checkpoints (for `/health` and `/metrics`).
#[derive(Debug)]
pub struct Status {
    /// Checkpoints written since start.
    pub written: AtomicU64,
    /// The newest checkpoint: `seq` and time.
    pub last: Mutex<Option<(u64, String)>>,
    /// Why the last write failed, cleared by a success.
    pub last_error: Mutex<Option<String>>,
    /// Each sink's state, in the order given.
    pub sinks: Vec<SinkStatus>,
}

impl Status {
    /// A status for `sinks`.
    pub fn new(sinks: &[Sink]) -> Status {
        Status {
            written: AtomicU64::new(0),
            last: Mutex::new(None),
            last_error: Mutex::new(None),
            sinks: sinks
                .iter()
                .enumerate()
                .map(|(i, s)| SinkStatus {
                    // Two URLs may show alike (only their hidden parts
                    // differ): the later ones get their position.
                    name: if sinks[..i].iter().any(|o| o.name() == s.name()) {
                        format!("{} #{}", s.name(), i + 1)
                    } else {
                        s.name()
                    },
                    delivered: AtomicU64::new(0),
                    pending: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                    last_error: Mutex::new(None),
                })
                .collect(),
        }
    }
}

fn set(m: &Mutex<Option<String>>, v: Option<String>) {
    *m.lock().unwrap_or_else(|e| e.into_inner()) = v;
}

/// The next UTC midnight after `now`.
fn next_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
}

/// How long the sinks get, at stop, to take the last checkpoint.
const LAST_DELIVERY: Duration = Duration::from_secs(5);

/// Writes the checkpoints of the store in `dir`, and runs a task for each
/// sink, until `stop` turns true (or its sender is dropped); then writes a
/// last one and gives each sink [`LAST_DELIVERY`] to take it. The key is
/// read from the storage directory for each checkpoint, so a rotated key
/// (`evlog checkpoint init --rotate`) signs the next one.
///
/// The writer and each sink run apart: a sink that hangs (a hard NFS mount
/// that stopped answering) holds up neither the checkpoints nor the other
/// sinks.
pub async fn run(
    dir: PathBuf,
    settings: Settings,
    status: Arc<Status>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    // Each round: a generation, and whether it is the last.
    let (round, _) = tokio::sync::watch::channel((0u64, false));
    let sinks: Vec<_> = settings
        .sinks
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let d = Delivery::new(&dir, s.clone(), &settings.node);
            tokio::spawn(sink_task(
                dir.clone(),
                d,
                status.clone(),
                i,
                round.subscribe(),
            ))
        })
        .collect();
    let mut generation = 0;
    let mut next_write = tokio::time::Instant::now();
    let mut day = Utc::now().date_naive();
    loop {
        let today = Utc::now().date_naive();
        if today > day {
            // The day that ended, pinned at its last line.
            write_one(&dir, &settings.node, &status, Some(day)).await;
            day = today;
        }
        if tokio::time::Instant::now() >= next_write {
            write_one(&dir, &settings.node, &status, None).await;
            next_write = tokio::time::Instant::now() + settings.interval;
        }
        generation += 1;
        round.send_replace((generation, false));
        let until_midnight = (next_midnight(Utc::now()) - Utc::now())
            .to_std()
            .unwrap_or_default();
        let wake = next_write.min(tokio::time::Instant::now() + until_midnight);
        let stopped = tokio::select! {
            _ = tokio::time::sleep_until(wake) => false,
            r = stop.changed() => r.is_err() || *stop.borrow(),
        };
        if stopped {
            write_one(&dir, &settings.node, &status, None).await;
            round.send_replace((generation + 1, true));
            let all = futures_util::future::join_all(sinks);
            match tokio::time::timeout(LAST_DELIVERY, all).await {
                Ok(ended) => {
                    for e in ended.into_iter().filter_map(Result::err) {
                        tracing::error!(error = %e, "a checkpoint sink task failed");
                    }
                }
                Err(_) => tracing::warn!(
                    "a checkpoint sink did not take the last checkpoint within {}s",
                    LAST_DELIVERY.as_secs()
                ),
            }
            break;
        }
    }
}

/// Delivers to one sink at each round, and every [`RETRY`] while it fails,
/// until the last round.
async fn sink_task(
    dir: PathBuf,
    mut sink: Delivery,
    status: Arc<Status>,
    i: usize,
    mut round: tokio::sync::watch::Receiver<(u64, bool)>,
) {
    let st = &status.sinks[i];
    loop {
        let last = round.borrow_and_update().1;
        let failing = match sink.deliver(&dir.join(DIR), st).await {
            Ok(()) => {
                set(&st.last_error, None);
                false
            }
            Err(e) => {
                st.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    key = "CHECKPOINT_DELIVERY_FAILED",
                    sink = %st.name,
                    error = %e,
                    "delivering checkpoints failed; retrying in {}s",
                    RETRY.as_secs()
                );
                set(&st.last_error, Some(e));
                true
            }
        };
        if last {
            return;
        }
        tokio::select! {
            r = round.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(RETRY), if failing => {}
        }
    }
}

/// Writes a checkpoint if something was appended since the last one (with
/// `upto`, of the head at the end of that day).
async fn write_one(dir: &Path, node: &str, status: &Status, upto: Option<chrono::NaiveDate>) {
    let (d, n) = (dir.to_path_buf(), node.to_string());
    let res = tokio::task::spawn_blocking(move || {
        let key = super::key::load(&d).map_err(io::Error::other)?;
        write_upto(&d, &key, &n, Utc::now(), true, upto)
    })
    .await
    .map_err(io::Error::other)
    .and_then(|r| r);
    match res {
        Ok(Written::New(s)) => {
            status.written.fetch_add(1, Ordering::Relaxed);
            *status.last.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((s.checkpoint.seq, s.checkpoint.time.clone()));
            set(&status.last_error, None);
            tracing::info!(seq = s.checkpoint.seq, at = %s.at(), "checkpoint written");
        }
        Ok(Written::Unchanged(c)) => {
            let mut last = status.last.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_none() {
                *last = Some((c.seq, c.time));
            }
            set(&status.last_error, None);
        }
        Ok(Written::Empty) => set(&status.last_error, None),
        Err(e) => {
            tracing::warn!(key = "CHECKPOINT_FAILED", error = %e, "writing a checkpoint failed");
            set(&status.last_error, Some(e.to_string()));
        }
    }
}

/// Where a POST or NATS sink is: the last checkpoint it took.
#[derive(Debug, Clone)]
struct Place {
    path: PathBuf,
    line: u64,
    digest: String,
}

/// The checkpoints of `cdir` after `place` (read from its file on: the
/// files before it were delivered), or, when the place is not where it
/// says, after the one whose digest is `saved` (all of them when none is).
fn after_place(cdir: &Path, place: Option<&Place>, saved: Option<&str>) -> io::Result<Vec<Stored>> {
    let files = match super::files(cdir) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let unreadable = |l: &super::Listing| match l.unreadable.first() {
        // Never passed over in silence: the sink shows it, every round.
        Some((p, line, why)) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}:{line} is not a checkpoint ({why}): not delivered",
                p.display()
            ),
        )),
        None => Ok(()),
    };
    if let Some(p) = place
        && let Some(i) = files.iter().position(|f| *f == p.path)
    {
        let mut l = super::Listing::default();
        for f in &files[i..] {
            super::read_file(f, &mut l)?;
        }
        if let Some(k) = l
            .checkpoints
            .iter()
            .position(|s| s.path == p.path && s.line == p.line)
            && l.checkpoints[k].checkpoint.digest() == p.digest
        {
            unreadable(&l)?;
            return Ok(l.checkpoints.split_off(k + 1));
        }
    }
    let read = read_dir(cdir)?;
    unreadable(&read)?;
    let mut all = read.checkpoints;
    let from = saved
        .and_then(|d| all.iter().position(|s| s.checkpoint.digest() == d))
        .map_or(0, |i| i + 1);
    Ok(all.split_off(from))
}

/// A sink and what it needs between rounds.
struct Delivery {
    sink: Sink,
    /// `checkpoints/.delivered-<sink>` (POST and NATS): the digest of the
    /// last checkpoint taken, for a restart.
    place: PathBuf,
    /// The same, with its file and line, once known.
    at: Option<Place>,
    node: String,
    http: Option<reqwest::Client>,
    nats: Option<async_nats::jetstream::Context>,
}

impl Delivery {
    fn new(dir: &Path, sink: Sink, node: &str) -> Delivery {
        // From the whole URL (never shown): two sinks that show alike keep
        // places of their own.
        let raw = match &sink {
            Sink::Dir(d) => format!("dir:{}", d.display()),
            Sink::Post(u) => format!("post:{u}"),
            Sink::Nats(c) => format!("nats:{}", c.stream),
        };
        let slug = hex::encode(&Sha256::digest(raw.as_bytes())[..8]);
        Delivery {
            place: dir.join(DIR).join(format!(".delivered-{slug}")),
            sink,
            at: None,
            node: node.to_string(),
            http: None,
            nats: None,
        }
    }

    async fn deliver(&mut self, cdir: &Path, st: &SinkStatus) -> Result<(), String> {
        if let Sink::Dir(to) = &self.sink {
            let (to, cdir) = (to.clone(), cdir.to_path_buf());
            let (copied, pending, errors) =
                tokio::task::spawn_blocking(move || match super::files(&cdir) {
                    Ok(files) => copy_dir(&to, &files),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => (0, 0, Vec::new()),
                    Err(e) => (0, 0, vec![e.to_string()]),
                })
                .await
                .map_err(|e| e.to_string())?;
            st.delivered.fetch_add(copied, Ordering::Relaxed);
            st.pending.store(pending, Ordering::Relaxed);
            return if errors.is_empty() {
                Ok(())
            } else {
                Err(errors.join("; "))
            };
        }
        let (cdir, at) = (cdir.to_path_buf(), self.at.clone());
        let saved = match &at {
            Some(p) => Some(p.digest.clone()),
            None => std::fs::read_to_string(&self.place)
                .ok()
                .map(|d| d.trim().to_string()),
        };
        let all =
            tokio::task::spawn_blocking(move || after_place(&cdir, at.as_ref(), saved.as_deref()))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        st.pending.store(all.len() as u64, Ordering::Relaxed);
        for (i, s) in all.iter().enumerate() {
            let digest = s.checkpoint.digest();
            let line = s.checkpoint.line();
            match &self.sink {
                Sink::Post(url) => self.post(url.clone(), line).await?,
                Sink::Nats(cfg) => {
                    let cfg = cfg.clone();
                    self.publish(&cfg, line, &digest).await?
                }
                Sink::Dir(_) => unreachable!("copied above"),
            }
            let (cdir, name) = (
                self.place.parent().expect("in checkpoints/"),
                self.place.file_name().expect("a file").to_string_lossy(),
            );
            crate::store::write_file_atomic(cdir, &name, digest.as_bytes())
                .map_err(|e| format!("{}: {e}", self.place.display()))?;
            self.at = Some(Place {
                path: s.path.clone(),
                line: s.line,
                digest,
            });
            st.delivered.fetch_add(1, Ordering::Relaxed);
            st.pending
                .store((all.len() - i - 1) as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn post(&mut self, url: String, line: String) -> Result<(), String> {
        if self.http.is_none() {
            install_tls_provider();
            self.http = Some(
                reqwest::Client::builder()
                    .timeout(POST_TIMEOUT)
                    .user_agent(concat!("evlog/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| format!("HTTP client: {e}"))?,
            );
        }
        let client = self.http.as_ref().expect("set above");
        let r = client
            .post(&url)
            .header("content-type", "application/json")
            .body(line)
            .send()
            .await
            .map_err(|e| format!("POST {}: {}", redact(&url), without_url(&e)))?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!("POST {}: answered {}", redact(&url), r.status()))
        }
    }

    async fn publish(
        &mut self,
        cfg: &NatsConfig,
        line: String,
        digest: &str,
    ) -> Result<(), String> {
        if self.nats.is_none() {
            let client =
                crate::replicate::nats::connect(cfg, &format!("evlog-checkpoints-{}", self.node))
                    .await
                    .map_err(|e| e.to_string())?;
            self.nats = Some(async_nats::jetstream::new(client));
        }
        let js = self.nats.as_ref().expect("set above");
        let msg = async_nats::jetstream::message::PublishMessage::build()
            .payload(line.into())
            .message_id(digest)
            .header(NODE_HEADER, self.node.as_str());
        let res = async {
            js.send_publish(subject(&self.node), msg)
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        if let Err(e) = res {
            // Connect again next time (the stream may have moved).
            self.nats = None;
            return Err(format!("publishing to stream {}: {e}", cfg.stream));
        }
        Ok(())
    }
}

/// Makes rustls's *ring* provider (the one async-nats uses) the process
/// default, which every reqwest client needs (reqwest is built with rustls
/// and no provider of its own: tests and benches call this too); later
/// calls do nothing. rustls
/// deprecates it for lacking post-quantum key exchange; its aws-lc-rs
/// provider has that, at the price of a second crypto library (a C and
/// assembly build) beside the one NATS already needs.
pub fn install_tls_provider() {
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A reqwest error without the URL it carries (it may hold a password).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}

/// The subject of `node`'s checkpoints on the stream.
pub fn subject(node: &str) -> String {
    let safe: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{SUBJECT_PREFIX}.{NATS_TOKEN}.{safe}")
}

/// Whether a stream subject carries checkpoints (not events).
pub fn is_checkpoint_subject(subject: &str) -> bool {
    subject
        .strip_prefix(SUBJECT_PREFIX)
        .and_then(|s| s.strip_prefix('.'))
        .and_then(|s| s.strip_prefix(NATS_TOKEN))
        .is_some_and(|s| s.starts_with('.'))
}

/// Copies the checkpoint files `files` into `to`, appending to each copy
/// the lines it lacks: the lines copied, the lines of the files that could
/// not be, and why not.
fn copy_dir(to: &Path, files: &[PathBuf]) -> (u64, u64, Vec<String>) {
    let (mut copied, mut pending, mut errors) = (0, 0, Vec::new());
    for path in files {
        // A copy as long as the file holds it already (each round reads
        // only the files that grew: today's).
        let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).ok();
        let dest = to.join(path.file_name().expect("a file"));
        if len(path).is_some_and(|l| Some(l) == len(&dest)) {
            continue;
        }
        let local = match std::fs::read(path) {
            Ok(l) => l,
            Err(e) => {
                errors.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let local = &local[..super::whole_len(&local)];
        match copy_file(local, &dest) {
            Ok(n) => copied += n,
            Err(e) => {
                pending += super::count_lines(local);
                errors.push(e);
            }
        }
    }
    (copied, pending, errors)
}

/// Makes the file at `dest` hold `local` (whole lines) by appending what it
/// lacks (an unfinished last line of the copy, a crash while copying, is
/// cut first): the lines appended. A copy that is not a prefix of `local`
/// is left alone, as an error.
fn copy_file(local: &[u8], dest: &Path) -> Result<u64, String> {
    let mut added = 0;
    super::append_whole(dest, |copy| {
        let Some(rest) = local.strip_prefix(copy) else {
            return Err(io::Error::other(
                "differs from the local checkpoints: not overwritten (one of them was changed; \
                 `evlog verify --checkpoints` on each tells which)",
            ));
        };
        added = super::count_lines(rest);
        Ok(rest.to_vec())
    })
    .map_err(|e| format!("{}: {e}", dest.display()))?;
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_gets_the_lines_it_lacks_and_a_changed_copy_is_left_alone() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("2026-12-05.jsonl");
        assert_eq!(copy_file(b"a\nb\n", &dest).unwrap(), 2);
        assert_eq!(copy_file(b"a\nb\nc\n", &dest).unwrap(), 1);
        assert_eq!(std::fs::read(&dest).unwrap(), b"a\nb\nc\n");
        assert_eq!(copy_file(b"a\nb\nc\n", &dest).unwrap(), 0);
        // A torn copy is cut, then completed.
        std::fs::write(&dest, b"a\nb\nc").unwrap();
        assert_eq!(copy_file(b"a\nb\nc\n", &dest).unwrap(), 1);
        assert_eq!(std::fs::read(&dest).unwrap(), b"a\nb\nc\n");
        // A rewritten local file never overwrites the copy.
        let e = copy_file(b"a\nX\nc\nd\n", &dest).unwrap_err();
        assert!(e.contains("not overwritten"), "{e}");
        assert_eq!(std::fs::read(&dest).unwrap(), b"a\nb\nc\n");
    }

    #[test]
    fn a_sink_reads_from_its_place_and_finds_it_again_when_it_moved() {
        let d = tempfile::tempdir().unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let mut prev: Option<super::super::Checkpoint> = None;
        for (i, day) in ["2026-12-01", "2026-12-01", "2026-12-02"]
            .iter()
            .enumerate()
        {
            let head = crate::store::chain::ChainHead {
                seq: i as u64 + 1,
                hash: [i as u8; 32],
            };
            let c = super::super::Checkpoint::sign(
                head,
                day.parse().unwrap(),
                Utc::now(),
                "n",
                prev.as_ref(),
                &key,
            );
            super::super::append_line(&d.path().join(format!("{day}.jsonl")), c.line().as_bytes())
                .unwrap();
            prev = Some(c);
        }
        let all = read_dir(d.path()).unwrap().checkpoints;
        let seqs = |v: Vec<Stored>| v.iter().map(|s| s.checkpoint.seq).collect::<Vec<_>>();
        let second = Place {
            path: all[1].path.clone(),
            line: all[1].line,
            digest: all[1].checkpoint.digest(),
        };
        assert_eq!(
            seqs(after_place(d.path(), Some(&second), None).unwrap()),
            [3]
        );
        // Its line holds another checkpoint now: found again by digest.
        let moved = Place {
            line: 1,
            ..second.clone()
        };
        let got = after_place(d.path(), Some(&moved), Some(&second.digest)).unwrap();
        assert_eq!(seqs(got), [3]);
        // Nothing known yet: every checkpoint.
        assert_eq!(seqs(after_place(d.path(), None, None).unwrap()), [1, 2, 3]);
        assert!(
            after_place(&d.path().join("none"), None, None)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn checkpoint_subjects_are_not_tenants_and_names_are_made_safe() {
        assert_eq!(subject("edge-1"), "evlog._checkpoints.edge-1");
        assert_eq!(subject("a.b c*"), "evlog._checkpoints.a_b_c_");
        assert!(is_checkpoint_subject("evlog._checkpoints.edge-1"));
        assert!(!is_checkpoint_subject("evlog._.user_login"));
        assert!(!is_checkpoint_subject("evlog._checkpointsx.a"));
        assert!(!crate::event::is_valid_tenant(NATS_TOKEN));
    }

    #[test]
    fn sinks_are_checked_and_passwords_kept_out_of_names() {
        let d = tempfile::tempdir().unwrap();
        assert!(Sink::Dir(d.path().into()).check().is_ok());
        let e = Sink::Dir(d.path().join("nope")).check().unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
        assert!(Sink::Post("https://ckpt.example/in".into()).check().is_ok());
        let e = Sink::Post("ftp://x/y".into()).check().unwrap_err();
        assert!(e.contains("http://"), "{e}");
        assert!(Sink::Post("not a url".into()).check().is_err());
        let n = Sink::Post("https://u:secret@h.example:8443/p/T0K?token=t0k".into()).name();
        assert_eq!(n, "post:https://h.example:8443/…");
        assert_eq!(Sink::Post("http://h".into()).name(), "post:http://h/");
        let e = Sink::Post("https://u:secret@h.example:99999/p".into())
            .check()
            .unwrap_err();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn the_next_midnight_is_the_start_of_the_next_utc_day() {
        let t = DateTime::parse_from_rfc3339("2026-12-05T23:59:59Z")
            .unwrap()
            .to_utc();
        assert_eq!(next_midnight(t).to_rfc3339(), "2026-12-06T00:00:00+00:00");
    }
}
