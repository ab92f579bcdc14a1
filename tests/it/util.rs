//! Helpers shared by the integration tests: temporary stores (fresh or copied
//! from `fixtures/`), an `evlog` command builder, feeding a child `evlog`
//! and reading its acknowledgements, event generators and a small seeded RNG.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};
use evlog::store::VerifyReport;
use evlog::store::day::{self, DayFile};
use evlog::store::reader::LineReader;
use evlog::{
    Config, DayRange, Durability, Event, EventLog, EventType, Level, ManualClock, Record, Status,
};
use serde_json::{Value, json};

/// The `evlog` binary built for these tests.
pub const EVLOG: &str = env!("CARGO_BIN_EXE_evlog");

/// The committed fixtures of on-disk format v1.
pub fn fixtures_v1() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/v1")
}

/// A storage directory inside a temporary directory that is removed on drop.
/// Commands run with the temporary directory (not the storage) as their
/// working directory, so no stray `./evlog.toml` is picked up.
pub struct Store {
    root: tempfile::TempDir,
    dir: PathBuf,
}

impl Store {
    /// An empty store (the directory does not exist yet; `EventLog::open` creates it).
    pub fn new() -> Store {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("store");
        Store { root, dir }
    }

    /// A store holding a copy of the files of `fixtures/v1/<name>/`, so that
    /// nothing ever writes to the committed fixtures.
    pub fn from_fixture(name: &str) -> Store {
        let s = Store::new();
        std::fs::create_dir_all(&s.dir).unwrap();
        let src = fixtures_v1().join(name);
        let mut n = 0;
        for entry in std::fs::read_dir(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display())) {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), s.dir.join(entry.file_name())).unwrap();
                n += 1;
            }
        }
        assert!(n > 0, "fixture {} is empty", src.display());
        s
    }

    /// The storage directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A file of the storage directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Adds a key with `evlog keys add --role <role> --user <user>`; returns it.
    pub fn add_key(&self, role: &str, user: &str) -> String {
        self.add_key_with(role, user, &[])
    }

    /// As [`Store::add_key`], with more flags of `evlog keys add`
    /// (`--tenant acme`, `--all-tenants`).
    pub fn add_key_with(&self, role: &str, user: &str, flags: &[&str]) -> String {
        let mut args = vec!["keys", "add", "--role", role, "--user", user];
        args.extend_from_slice(flags);
        let out = self.run(&args, b"");
        out.expect_code(0);
        out.stdout.trim().to_string()
    }

    /// The key id (`k_…`) of each user's key, from `evlog keys list`
    /// (the last listed for a user with several).
    pub fn key_ids(&self) -> HashMap<String, String> {
        let out = self.run(&["keys", "list", "--format", "json"], b"");
        out.expect_code(0);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["user_id"].as_str().unwrap().to_string(),
                    k["id"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Spawns `evlog append --stdin --durability <durability>` with piped stdio.
    pub fn spawn_append_stdin(&self, durability: &str) -> Child {
        self.cmd()
            .args(["append", "--stdin", "--durability", durability])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Takes the writers' lock (`evlog.lock`) as another writer would: every
    /// commit waits until the returned file is unlocked or dropped.
    pub fn hold_writers_lock(&self) -> std::fs::File {
        let lock = std::fs::File::options()
            .read(true)
            .write(true)
            .open(self.file("evlog.lock"))
            .unwrap();
        lock.lock().unwrap();
        lock
    }

    /// `evlog --storage <dir>` with a clean environment.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(EVLOG);
        c.arg("--storage")
            .arg(&self.dir)
            .current_dir(self.root.path());
        for var in [
            "EVLOG_STORAGE_PATH",
            "EVLOG_DURABILITY",
            "EVLOG_CONFIG",
            "EVLOG_USER_ID_HASH_KEY",
            "EVLOG_LOG",
            "EVLOG_ADDR",
            "EVLOG_KEYS_FILE",
            "EVLOG_COMPRESS_AFTER",
            "EVLOG_DELETE_AFTER",
            "EVLOG_MAX_TOTAL_SIZE",
            "EVLOG_ROTATE_AT",
            "EVLOG_REPLICATE_TO",
            "EVLOG_FOLLOW",
            "EVLOG_NODE",
            "EVLOG_STREAM",
            "EVLOG_STREAM_REPLICAS",
            "EVLOG_STREAM_MAX_AGE_DAYS",
            "EVLOG_STREAM_MAX_MIB",
            "EVLOG_NATS_TOKEN",
            "EVLOG_NATS_USER",
            "EVLOG_NATS_PASSWORD",
            "EVLOG_NATS_CREDS",
            "EVLOG_NATS_TLS",
            "EVLOG_NATS_TLS_CA",
            "EVLOG_NATS_TLS_CERT",
            "EVLOG_NATS_TLS_KEY",
        ] {
            c.env_remove(var);
        }
        c
    }

    /// Runs `evlog --storage <dir> <args>` with `stdin` as standard input.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Out {
        run(self.cmd().args(args), stdin)
    }

    /// The day files, oldest first.
    pub fn day_files(&self) -> Vec<DayFile> {
        day::list(&self.dir, DayRange::all()).unwrap()
    }

    /// Every complete line of every day file (plain and gz), in order.
    pub fn lines(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for f in self.day_files() {
            let mut r = LineReader::open(&f).unwrap();
            let mut buf = Vec::new();
            while let Some((_, line)) = r.next_line(&mut buf).unwrap() {
                out.push(line.to_vec());
            }
        }
        out
    }

    /// Every stored event; panics on a malformed line.
    pub fn records(&self) -> Vec<Record> {
        evlog::store::Scan::new(&self.dir, DayRange::all())
            .unwrap()
            .map(|r| r.unwrap_or_else(|e| panic!("scan: {e}")))
            .collect()
    }

    /// Verifies the whole chain with the library.
    pub fn verify(&self) -> VerifyReport {
        evlog::store::verify::verify(&self.dir, DayRange::all()).unwrap()
    }

    /// Runs `evlog verify`: exit 0, and its report says `says` (e.g.
    /// `"8 line(s) in 2 file(s)"`).
    #[track_caller]
    pub fn expect_cli_verifies(&self, says: &str) {
        let out = self.run(&["verify"], b"");
        out.expect_code(0);
        assert!(out.stdout.contains(says), "{}", out.stdout);
    }

    /// Names of the `*.torn` files, sorted.
    pub fn torn_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "torn"))
            .collect();
        v.sort();
        v
    }
}

/// The outcome of a finished command.
#[derive(Debug)]
pub struct Out {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Out {
    /// Panics with the full output unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "want exit {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `cmd` to completion, feeding it `stdin`.
pub fn run(cmd: &mut Command, stdin: &[u8]) -> Out {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning evlog");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    // Feed from a thread so that a child filling its stdout cannot deadlock us.
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    feeder.join().unwrap();
    Out {
        code: status.code(),
        stdout,
        stderr: err_reader.join().unwrap(),
    }
}

/// The most bytes one write to a pipe may carry and still reach the reader
/// whole (Linux's `PIPE_BUF`).
pub const PIPE_BUF: usize = 4096;

/// Feeds `child`'s standard input from a thread with the lines
/// `bulk_line(tag, i)`, `i` from 0, in blocks of 1 to `max_lines - 1` whole
/// lines (as drawn by `Rng::new(seed)`) and at most [`PIPE_BUF`] bytes, which
/// the kernel writes whole: the child's reads then end at line boundaries.
/// After each block, `go_on` (given the same RNG) says whether to write
/// another. Returns the number of lines written when `go_on` stopped it (its
/// stdin is then closed), or the error of the write that failed (the child
/// is gone).
pub fn feed_lines(
    child: &mut Child,
    tag: &str,
    seed: u64,
    max_lines: u64,
    mut go_on: impl FnMut(&mut Rng) -> bool + Send + 'static,
) -> JoinHandle<std::io::Result<u64>> {
    let mut stdin = child.stdin.take().unwrap();
    let tag = tag.to_string();
    std::thread::spawn(move || {
        let mut rng = Rng::new(seed);
        let mut i = 0u64;
        let mut block = String::new();
        loop {
            block.clear();
            for _ in 0..rng.range(1, max_lines) {
                let line = bulk_line(&tag, i);
                if block.len() + line.len() > PIPE_BUF {
                    break;
                }
                block.push_str(&line);
                i += 1;
            }
            stdin.write_all(block.as_bytes())?;
            if !go_on(&mut rng) {
                return Ok(i);
            }
        }
    })
}

/// Collects from a thread the ids `child` acknowledges on its standard
/// output, one a line: complete lines only (a kill can cut the last one
/// short). Signals `first` at the first acknowledgement.
pub fn read_acks(child: &mut Child, first: SyncSender<()>) -> JoinHandle<Vec<uuid::Uuid>> {
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut ids = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            if r.read_until(b'\n', &mut line).unwrap() == 0 || line.last() != Some(&b'\n') {
                return ids;
            }
            let text = std::str::from_utf8(&line).unwrap().trim_end();
            ids.push(
                text.parse()
                    .unwrap_or_else(|e| panic!("`{text}` is not an id: {e}")),
            );
            let _ = first.try_send(());
        }
    })
}

/// A UTC time from an RFC 3339 literal.
pub fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// An `EventLog` on `dir` that does not fsync, reading the time from `clock`.
pub fn open_with_clock(dir: &Path, clock: &Arc<ManualClock>) -> EventLog {
    EventLog::open(
        Config::new(dir)
            .durability(Durability::None)
            .clock(clock.clone()),
    )
    .unwrap()
}

/// A store written with the library and a manual clock: for each `(start,
/// n)`, `n` events `event("v", i)` appended one second apart from `start`
/// (so each group lands on the day of its `start`, unless it crosses midnight).
pub fn written_store(groups: &[(&str, u64)]) -> Store {
    let store = Store::new();
    let clock = Arc::new(ManualClock::new(utc(groups[0].0)));
    let log = open_with_clock(store.path(), &clock);
    let mut i = 0;
    for (start, n) in groups {
        clock.set(utc(start));
        for _ in 0..*n {
            log.append(event("v", i)).unwrap();
            clock.advance(chrono::Duration::seconds(1));
            i += 1;
        }
    }
    store
}

/// The `i`-th generated event: types, statuses, levels, optional fields and
/// non-ASCII text vary with `i`; `tag` goes into `user_id` and `request_id`
/// to tell producers apart. No `id` or `timestamp` (the store assigns them).
pub fn event(tag: &str, i: u64) -> Event {
    let types = EventType::BUILTIN;
    let ty = if i % 7 == 6 {
        EventType::Custom(format!("custom.kind_{}", i % 3))
    } else {
        types[i as usize % types.len()].clone()
    };
    let mut e = Event::new(
        ty,
        format!("user-{tag}"),
        format!("action {i} — été ✓ 事件"),
    )
    .status(Status::ALL[i as usize % Status::ALL.len()])
    .level(Level::ALL[(i / 2) as usize % Level::ALL.len()])
    .request_id(format!("{tag}-{i}"));
    if i.is_multiple_of(2) {
        e = e.metadata(json!({"i": i, "tag": tag, "nested": {"ok": i.is_multiple_of(4)}}));
    }
    if i.is_multiple_of(3) {
        e = e.files_changed([format!("src/f{i}.rs"), "docs/ü.md".to_string()]);
    }
    if i.is_multiple_of(5) {
        e = e.duration_ms(i as f64 / 4.0).source_ip("2001:db8::7");
    }
    e
}

/// `event(tag, i)` as one NDJSON line (with newline).
pub fn ndjson(tag: &str, i: u64) -> String {
    let mut s = serde_json::to_string(&event(tag, i)).unwrap();
    s.push('\n');
    s
}

/// A cheap NDJSON line (with newline) for bulk input: formatted, not
/// serialized, so that generating 100,000 of them costs little in debug builds.
pub fn bulk_line(tag: &str, i: u64) -> String {
    const TYPES: [&str; 4] = ["commit", "api_request", "file_change", "deploy.step"];
    const STATUS: [&str; 3] = ["success", "failure", "in_progress"];
    format!(
        concat!(
            r#"{{"event_type":"{}","user_id":"user-{}","action_description":"action {} — été ✓ 事件","#,
            r#""status":"{}","metadata":{{"i":{},"files":["a.rs","b/ü.rs"]}},"request_id":"{}-{}"}}"#,
            "\n"
        ),
        TYPES[i as usize % 4],
        tag,
        i,
        STATUS[i as usize % 3],
        i,
        tag,
        i
    )
}

/// The `id` of each event of an answer (`"events"` of `GET /events`), in order.
pub fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

/// The ids of a store's records, asserting that none repeats.
pub fn distinct_ids(records: &[Record]) -> HashSet<uuid::Uuid> {
    let mut seen = HashSet::with_capacity(records.len());
    for r in records {
        let id = r.event.id.expect("stored events have ids");
        assert!(
            seen.insert(id),
            "id {id} stored twice ({}:{})",
            r.path.display(),
            r.line
        );
    }
    seen
}

/// Asserts that `records` carry seq 1, 2, 3, ... in order.
#[track_caller]
pub fn assert_consecutive_seqs(records: &[Record]) {
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1, "{}:{}", r.path.display(), r.line);
    }
}

/// Raises this process's soft limit on open files so that a test can hold
/// `connections` sockets and some (the hard limit caps it); fails if the
/// machine does not allow that many.
pub fn open_files_for(connections: usize) {
    let want = connections as u64;
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut r), 0);
        if r.rlim_cur < want + 1024 {
            r.rlim_cur = (want + 1024).min(r.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &r), 0);
        }
    }
    assert!(
        r.rlim_cur >= want + 256,
        "this machine allows {} open files; the test needs {connections} and some",
        r.rlim_cur
    );
}

/// SplitMix64: a tiny seeded RNG, so that a failing run can be replayed.
pub struct Rng(u64);

impl Rng {
    /// An RNG from `EVLOG_TEST_SEED` if set, else from `default`; prints the seed.
    pub fn from_env_or(default: u64) -> Rng {
        let seed = std::env::var("EVLOG_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default);
        eprintln!("seed {seed} (replay with EVLOG_TEST_SEED={seed})");
        Rng(seed)
    }

    /// An RNG from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
}
