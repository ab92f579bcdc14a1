//! Hostile key-holders against `/events/export` and `/events/stream`, over
//! real sockets: exports that are never read, streams that outlive their
//! key (revoked, expired, changed, or a keys file that breaks), and
//! hundreds of stalled exports from one user. Each test fails on the code
//! before issue 12 (export parked a blocking thread per stalled client;
//! nothing ended an open response when its key went; a broken keys file kept
//! the old keys).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use evlog::auth::{self, KeyStore, Role};
use evlog::server::{Limits, Server};
use evlog::{Config, Durability, Event, EventLog, EventType};
use serde_json::Value;

use crate::serve::{Serve, caught_up, client, deploy, eventually};
use crate::util::{Store, open_files_for};

/// Events of alice in [`big_store`]: an export of them is about 9 MB, more
/// than a stalled reader's socket buffers hold (about 4 MiB on loopback),
/// so the server is left with data it cannot send.
const BIG: usize = 20_000;

/// Keys of a test: an admin, alice (two keys) and bob.
struct Keys {
    admin: String,
    alice: String,
    alice_id: String,
    alice2: String,
    bob: String,
}

/// A store with `n` events of alice (about 450 bytes each in an export)
/// and the keys of [`Keys`], all written before a server starts.
fn big_store(n: usize) -> (Store, Keys) {
    let store = Store::new();
    let log = EventLog::open(Config::new(store.path()).durability(Durability::None)).unwrap();
    let filler = "x".repeat(300);
    for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
        let batch = chunk
            .iter()
            .map(|i| Event::new(EventType::Commit, "alice", format!("seeded {i} {filler}")))
            .collect();
        log.append_batch(batch).unwrap();
    }
    drop(log);
    let path = store.file("keys.json");
    let add = |role, user: &str| auth::update(&path, |f| f.add(role, user, None)).unwrap();
    let admin = add(Role::Admin, "ops").0;
    let (alice, entry) = add(Role::User, "alice");
    let alice2 = add(Role::User, "alice").0;
    let bob = add(Role::User, "bob").0;
    let keys = Keys {
        admin,
        alice,
        alice_id: entry.id,
        alice2,
        bob,
    };
    (store, keys)
}

/// Every export of alice's seeded events (all time, so that a test running
/// across midnight still finds them).
const EXPORT: &str = "/events/export?start=1970-01-01T00:00:00Z";

/// A request on a raw socket of which only the response head is read: the
/// client stops reading there.
struct Raw {
    sock: TcpStream,
    status: u16,
    head: String,
    /// Body bytes that came with the head.
    body: Vec<u8>,
}

impl Raw {
    fn get(addr: &str, path: &str, key: &str) -> Raw {
        let mut sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        write!(
            sock,
            "GET {path} HTTP/1.1\r\nHost: t\r\nX-API-Key: {key}\r\n\r\n"
        )
        .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = sock.read(&mut buf).unwrap();
            assert!(n > 0, "closed before the head: {got:?}");
            got.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&got[..end]).into_owned();
        let status = head[9..12].parse().unwrap();
        Raw {
            sock,
            status,
            head,
            body: got[end..].to_vec(),
        }
    }

    /// A header's value (lowercase name).
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The JSON body of a short answer (with a Content-Length).
    fn json(mut self) -> Value {
        let len: usize = self.header("content-length").unwrap().parse().unwrap();
        while self.body.len() < len {
            let mut buf = [0u8; 4096];
            let n = self.sock.read(&mut buf).unwrap();
            assert!(n > 0);
            self.body.extend_from_slice(&buf[..n]);
        }
        serde_json::from_slice(&self.body[..len]).unwrap()
    }

    /// Reads the rest until the server closes the connection (or, failing
    /// the test, 60 s pass). Returns the body bytes (chunked framing left in).
    fn drain(mut self) -> Vec<u8> {
        let mut buf = [0u8; 65536];
        loop {
            match self.sock.read(&mut buf) {
                Ok(0) => return self.body,
                Ok(n) => {
                    self.body.extend_from_slice(&buf[..n]);
                    // A complete chunked body: the server would keep the connection.
                    if self.body.ends_with(b"\r\n0\r\n\r\n") {
                        return self.body;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return self.body,
                Err(e) => panic!("the server neither finished nor closed: {e}"),
            }
        }
    }
}

/// Whether a chunked body ended properly (not cut by the server).
fn complete(body: &[u8]) -> bool {
    body.ends_with(b"\r\n0\r\n\r\n")
}

/// Events in an NDJSON export body.
fn exported(body: &[u8]) -> usize {
    String::from_utf8_lossy(body)
        .matches("\"action_description\"")
        .count()
}

/// A live stream read by a thread, line by line, with the time each came.
struct Sse {
    lines: mpsc::Receiver<Option<String>>,
}

/// What a live stream delivered until it ended.
struct Ended {
    events: Vec<Value>,
    /// The `end` message, if the server said why it ended the stream.
    end: Option<Value>,
    at: Instant,
}

impl Sse {
    fn open(s: &Serve, key: &str, query: &str) -> Sse {
        let r = client()
            .get(s.url(&format!("/events/stream?{query}")))
            .header("X-API-Key", key)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(r);
            loop {
                let mut line = String::new();
                match r.read_line(&mut line) {
                    Ok(n) if n > 0 => {
                        if tx.send(Some(line.trim_end().to_string())).is_err() {
                            return;
                        }
                    }
                    _ => {
                        let _ = tx.send(None);
                        return;
                    }
                }
            }
        });
        let sse = Sse { lines };
        assert_eq!(sse.line().as_deref(), Some(":ready"));
        sse
    }

    /// The next line (`None` at the end); fails after 30 s.
    fn line(&self) -> Option<String> {
        self.line_by(Instant::now() + Duration::from_secs(30))
    }

    /// The next line (`None` at the end); fails at `deadline`.
    fn line_by(&self, deadline: Instant) -> Option<String> {
        self.lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the stream neither sent nor ended in time")
    }

    /// Reads until an event whose description starts with `desc`.
    fn wait_for(&self, desc: &str) -> Value {
        loop {
            let line = self.line().unwrap_or_else(|| panic!("ended before {desc}"));
            if let Some(d) = line.strip_prefix("data:") {
                let v: Value = serde_json::from_str(d.trim()).unwrap();
                if v["action_description"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(desc))
                {
                    return v;
                }
            }
        }
    }

    /// Reads until the stream ends; fails if it has not within 30 s (the
    /// server's keep-alive comments would otherwise keep it going for ever).
    fn until_end(&self) -> Ended {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut events = Vec::new();
        let mut end = None;
        let mut next_is_end = false;
        while let Some(line) = self.line_by(deadline) {
            if line == "event:end" || line == "event: end" {
                next_is_end = true;
            } else if let Some(d) = line.strip_prefix("data:") {
                let v: Value = serde_json::from_str(d.trim()).unwrap();
                if std::mem::take(&mut next_is_end) {
                    end = Some(v);
                } else {
                    events.push(v);
                }
            }
        }
        Ended {
            events,
            end,
            at: Instant::now(),
        }
    }
}

fn append(s: &Serve, key: &str, user: &str, desc: &str) {
    let r = client()
        .post(s.url("/events"))
        .header("X-API-Key", key)
        .json(&deploy(user, desc))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "append {desc}");
}

fn status_of(s: &Serve, key: &str) -> (u16, Value) {
    let r = client()
        .get(s.url("/events"))
        .header("X-API-Key", key)
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

/// `n` requests `GET url` with `key` at once, each from its own thread:
/// their statuses (0 for no answer).
fn at_once(n: usize, http: &reqwest::blocking::Client, url: &str, key: &str) -> Vec<u16> {
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..n)
            .map(|_| {
                sc.spawn(|| {
                    http.get(url)
                        .header("X-API-Key", key)
                        .send()
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn health(s: &Serve) -> Value {
    client()
        .get(s.url("/health"))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// Before: each export ran on a blocking thread that waited there for its
/// client, so two stalled exports on a pool of two threads left every
/// query and `/health` waiting forever. Now the wait holds no thread.
#[test]
fn stalled_exports_hold_no_blocking_thread() {
    let (store, keys) = big_store(BIG);
    // The server in this process, on a runtime whose blocking pool has two threads.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let log = EventLog::open(Config::new(store.path()).durability(Durability::None)).unwrap();
    let limits = Limits {
        max_streams_per_key: 6,
        write_timeout_ms: 600_000,
        ..Limits::default()
    };
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let key_store = KeyStore::open(&store.file("keys.json")).unwrap();
    let server = rt
        .block_on(async { Server::new(log, key_store, limits) })
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = rt.spawn(async move {
        server
            .run(listener, async {
                let _ = stopped.await;
            })
            .await;
        server
    });
    let base = format!("http://{addr}");
    let http = client();
    eventually("the index holds the seeded events", || {
        let h: Value = http
            .get(format!("{base}/health"))
            .send()
            .ok()?
            .json()
            .ok()?;
        (h["index"]["documents"].as_u64()? >= BIG as u64).then_some(())
    });

    // Six exports that are never read, three times the blocking pool.
    let stalled: Vec<Raw> = (0..6)
        .map(|_| Raw::get(&addr, EXPORT, &keys.alice))
        .collect();
    assert!(stalled.iter().all(|r| r.status == 200));
    // Time for each to fill its socket and stop (a ~9 MB export cannot fit).
    std::thread::sleep(Duration::from_secs(3));

    // Sixteen queries at once, and /health, are all answered.
    let answered = at_once(16, &client(), &format!("{base}/events"), &keys.bob);
    assert_eq!(answered, vec![200; 16], "queries while 6 exports stall");
    let h = http.get(format!("{base}/health")).send().unwrap();
    assert_eq!(h.status(), 200);

    // The stalled exports were waiting, not dropped: read now, one is whole.
    let mut stalled = stalled.into_iter();
    let body = stalled.next().unwrap().drain();
    assert!(complete(&body));
    assert_eq!(exported(&body), BIG);
    drop(stalled);
    stop.send(()).unwrap();
    let server = rt.block_on(running).unwrap();
    server.close().unwrap();
}

/// Before: 600 exports of one user that are never read parked 512
/// blocking threads (tokio's pool) and queued the rest, and from then on
/// `/health` and every other user's query waited for ever. Now a key has
/// at most `max_streams_per_key` (4) open; the others get 429.
#[test]
fn six_hundred_stalled_exports_of_one_user_leave_others_served() {
    const CONNECTIONS: usize = 600;
    open_files_for(CONNECTIONS);
    let (store, keys) = big_store(BIG);
    // Stalled exports stay stalled for the whole test.
    let s = Serve::with_limits(&store, "write_timeout_ms = 600000");
    caught_up(&s);
    let mut admitted = Vec::new();
    let mut refused = 0;
    for i in 0..CONNECTIONS {
        let r = Raw::get(&s.addr, EXPORT, &keys.alice);
        match r.status {
            200 => admitted.push(r),
            429 => {
                assert_eq!(r.header("retry-after").as_deref(), Some("5"), "{}", r.head);
                let body = r.json();
                assert_eq!(body["error"]["code"], "too_many_streams", "{body}");
                assert!(
                    body["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("max_streams_per_key"),
                    "{body}"
                );
                refused += 1;
            }
            other => panic!("connection {i}: {other}"),
        }
    }
    assert_eq!((admitted.len(), refused), (4, CONNECTIONS - 4));

    // /health and bob's queries answer (a bound of 10 s each, not a latency
    // target: before, they never answered).
    evlog::checkpoint::deliver::install_tls_provider();
    let quick = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let h = quick.get(s.url("/health")).send().unwrap();
    assert_eq!(h.status(), 200);
    let answered = at_once(16, &quick, &s.url("/events"), &keys.bob);
    assert_eq!(answered, vec![200; 16]);
    // Another key of the same user has its own four.
    let other = Raw::get(&s.addr, EXPORT, &keys.alice2);
    assert_eq!(other.status, 200);
    drop(other);

    // A place is released when its export ends, here by the client leaving.
    drop(admitted.pop());
    let again = eventually("a place is free again", || {
        let r = Raw::get(&s.addr, EXPORT, &keys.alice);
        (r.status == 200).then_some(r)
    });
    drop(again);
    drop(admitted);
}

/// Before: a client that stopped reading an export or a stream kept it
/// open for ever (and, for an export, a blocking thread). Now a write that
/// makes no progress for `write_timeout_ms` closes the connection, and the
/// key's place is released.
#[test]
fn a_stalled_reader_is_dropped_after_the_write_timeout() {
    let (store, keys) = big_store(BIG);
    let s = Serve::with_limits(&store, "write_timeout_ms = 1000\nmax_streams_per_key = 1");
    caught_up(&s);
    let export = Raw::get(&s.addr, EXPORT, &keys.alice);
    assert_eq!(export.status, 200);
    // Its place frees once the server gave up on it.
    let waited = Instant::now();
    let next = eventually("the stalled export is dropped", || {
        let r = Raw::get(&s.addr, "/events/stream", &keys.alice);
        match r.status {
            429 => None,
            200 => Some(r),
            other => panic!("{other}"),
        }
    });
    assert!(waited.elapsed() >= Duration::from_millis(900));
    let body = export.drain();
    assert!(!complete(&body), "the export was cut");
    assert!(exported(&body) < BIG, "{} events", exported(&body));
    drop(next);

    // A stream replaying everything to a client that reads nothing: dropped too.
    let replay = eventually("the place is free", || {
        let mut sock = TcpStream::connect(&s.addr).unwrap();
        write!(
            sock,
            "GET /events/stream?start=1970-01-01T00:00:00Z HTTP/1.1\r\nHost: t\r\nX-API-Key: {}\r\nLast-Event-ID: 0\r\n\r\n",
            keys.alice
        )
        .unwrap();
        let mut head = [0u8; 12];
        sock.read_exact(&mut head).unwrap();
        (&head[9..12] == b"200").then_some(sock)
    });
    let mut probe = None;
    eventually("the stalled stream is dropped", || {
        let r = Raw::get(&s.addr, EXPORT, &keys.alice);
        (r.status == 200).then(|| probe = Some(r))
    });
    let mut replay = replay;
    replay
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut got = Vec::new();
    let _ = replay.read_to_end(&mut got);
    let sent = String::from_utf8_lossy(&got).matches("event:").count();
    assert!(sent < BIG, "the replay was cut ({sent} events)");
    drop(probe);
    // Everyone else is still served.
    assert_eq!(status_of(&s, &keys.bob).0, 200);
}

/// Review of issue 12: a reader that kept reading, but took longer than
/// `write_timeout_ms` to take one page, was cut as "stalled" (the wait for
/// the page's place in the body had one deadline, whatever the socket did).
/// Now only a socket write that makes no progress for `write_timeout_ms`
/// ends it. Here pages of about 8 MB, a reader taking 64 KiB every 50 ms
/// (about 1.3 MB/s: a page takes about 3 s to go, beyond the 2 s write
/// timeout; the socket shows progress about every second, as each ~1.3 MB
/// of its send buffer drains) gets the whole export.
#[test]
fn a_slow_reader_that_keeps_reading_gets_the_whole_export() {
    const EVENTS: usize = 1_500;
    let (store, keys) = big_store(0);
    let log = EventLog::open(Config::new(store.path()).durability(Durability::None)).unwrap();
    let filler = "y".repeat(8000);
    log.append_batch(
        (0..EVENTS)
            .map(|i| Event::new(EventType::Commit, "alice", format!("slow {i} {filler}")))
            .collect(),
    )
    .unwrap();
    drop(log);
    let s = Serve::with_limits(&store, "write_timeout_ms = 2000");
    caught_up(&s);
    let mut export = Raw::get(&s.addr, EXPORT, &keys.alice);
    assert_eq!(export.status, 200);
    let mut buf = vec![0u8; 64 << 10];
    let started = Instant::now();
    while !complete(&export.body) {
        std::thread::sleep(Duration::from_millis(50));
        match export.sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => export.body.extend_from_slice(&buf[..n]),
            Err(e) => panic!("the export was cut: {e}"),
        }
    }
    eprintln!("{} bytes in {:?}", export.body.len(), started.elapsed());
    assert!(complete(&export.body), "the export was cut");
    assert_eq!(exported(&export.body), EVENTS);
}

/// Before: revoking a key changed nothing for its open stream and export,
/// which went on sending whatever matched. Now they end within the
/// keys-file check interval (200 ms) of the change, and nothing stored
/// after it is sent on them.
#[test]
fn revoking_a_key_ends_its_open_stream_and_export() {
    let (store, keys) = big_store(BIG);
    let s = Serve::with_limits(&store, "write_timeout_ms = 600000");
    caught_up(&s);
    let revoked = Sse::open(&s, &keys.alice, "");
    let kept = Sse::open(&s, &keys.alice2, "");
    let export = Raw::get(&s.addr, EXPORT, &keys.alice);
    assert_eq!(export.status, 200);
    append(&s, &keys.admin, "alice", "before the revocation");
    revoked.wait_for("before the revocation");
    kept.wait_for("before the revocation");

    store
        .run(&["keys", "revoke", &keys.alice_id], b"")
        .expect_code(0);
    let at = Instant::now();
    append(&s, &keys.admin, "alice", "after the revocation");

    let ended = revoked.until_end();
    let took = ended.at - at;
    assert!(
        ended.events.is_empty(),
        "nothing after the revocation: {:?}",
        ended.events
    );
    let end = ended.end.expect("an end message");
    assert_eq!(end["error"]["code"], "key_revoked", "{end}");
    // Issue 12: within 2 s of the keys file changing (about 0.2 s measured).
    assert!(took < Duration::from_secs(2), "ended after {took:?}");
    eprintln!("stream ended {took:?} after the revocation");
    // The export's connection is closed: cut, not completed, as soon.
    let body = export.drain();
    let export_took = at.elapsed();
    assert!(
        export_took < Duration::from_secs(2),
        "export cut after {export_took:?}"
    );
    assert!(!complete(&body));
    assert!(exported(&body) < BIG);
    // The user's other key goes on.
    kept.wait_for("after the revocation");
    assert_eq!(status_of(&s, &keys.alice).0, 401);
    assert_eq!(status_of(&s, &keys.alice2).0, 200);
}

/// Keys had no expiry. Now `keys add --expires` sets one: the key works
/// until then, then gets 401 `key_expired`, and a stream it opened ends at
/// that moment.
#[test]
fn an_expiring_key_works_until_its_expiry_and_its_stream_ends_then() {
    let store = Store::new();
    let s = Serve::start(&store);
    let add_carol = |expires: &str| {
        store.run(
            &[
                "keys",
                "add",
                "--role",
                "user",
                "--user",
                "carol",
                "--expires",
                expires,
            ],
            b"",
        )
    };
    for (bad, says) in [
        ("next tuesday", "neither an RFC 3339 time"),
        ("2001-01-01T00:00:00Z", "not in the future"),
        ("0", "cannot expire now or never"),
    ] {
        let out = add_carol(bad);
        out.expect_code(2);
        assert!(out.stderr.contains(says), "{bad}: {}", out.stderr);
    }
    let out = add_carol("8s");
    out.expect_code(0);
    let carol = out.stdout.trim().to_string();
    let listed: Value = serde_json::from_str(
        &store
            .run(&["keys", "list", "--format", "json"], b"")
            .expect_code(0)
            .stdout,
    )
    .unwrap();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["user_id"] == "carol")
        .unwrap()
        .clone();
    assert_eq!(entry["expired"], false);
    let expires: chrono::DateTime<chrono::Utc> =
        entry["expires"].as_str().unwrap().parse().unwrap();
    eventually("the new key is loaded", || {
        (status_of(&s, &carol).0 == 200).then_some(())
    });
    let stream = Sse::open(&s, &carol, "");
    let ended = stream.until_end();
    assert!(
        chrono::Utc::now() >= expires,
        "the stream ended before the expiry"
    );
    let end = ended.end.expect("an end message");
    assert_eq!(end["error"]["code"], "key_expired", "{end}");
    let late = chrono::Utc::now() - expires;
    assert!(late < chrono::Duration::seconds(2), "ended {late} late");
    let (status, body) = status_of(&s, &carol);
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "key_expired");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired at"),
        "{body}"
    );
    let table = store.run(&["keys", "list", "--format", "table"], b"");
    assert!(table.stdout.contains("EXPIRES"), "{}", table.stdout);
    assert!(table.stdout.contains("(expired)"), "{}", table.stdout);
}

/// Replaces the keys file as `evlog keys` does (temp file with mode 0600,
/// rename), so that the server never reads half of it.
fn write_keys(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("edit");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Rewrites the keys file with `f` applied to its JSON.
fn edit_keys(path: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    f(&mut v);
    write_keys(path, &serde_json::to_vec_pretty(&v).unwrap());
}

/// A key whose role or user is changed by hand is a different principal:
/// its open stream ends (`key_changed`).
#[test]
fn a_changed_role_or_user_ends_the_stream() {
    let (store, keys) = big_store(1);
    let s = Serve::with_limits(&store, "");
    let path = store.file("keys.json");
    for (field, value) in [("role", "admin"), ("user_id", "mallory")] {
        let key = if field == "role" {
            &keys.alice
        } else {
            &keys.alice2
        };
        let stream = Sse::open(&s, key, "");
        let hash = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(key.as_bytes()))
        };
        edit_keys(&path, |v| {
            for k in v["keys"].as_array_mut().unwrap() {
                if k["hash"] == hash.as_str() {
                    k[field] = value.into();
                }
            }
        });
        let ended = stream.until_end();
        let end = ended.end.expect("an end message");
        assert_eq!(end["error"]["code"], "key_changed", "{field}: {end}");
    }
}

/// Before: a keys file that failed to load (bad JSON, loose permissions)
/// kept the old keys in force, so a revocation written that way was lost,
/// and the error was logged every second. Now no key is accepted until it
/// loads again (503 `keys_unavailable`), open streams end, `/health` says
/// `degraded`, and the log says why once per change. A removed keys file
/// holds no keys (401).
#[test]
fn an_unusable_keys_file_fails_closed_until_it_loads_again() {
    let (store, keys) = big_store(1);
    let s = Serve::with_limits(&store, "");
    let path = store.file("keys.json");
    let good = std::fs::read(&path).unwrap();
    assert_eq!(health(&s)["keys"]["state"], "ok");
    assert_eq!(health(&s)["keys"]["active"], 4);
    let stream = Sse::open(&s, &keys.alice, "");

    // Not JSON.
    write_keys(&path, b"{\"version\": 1, \"keys\": [");
    let at = Instant::now();
    let ended = stream.until_end();
    assert_eq!(ended.end.unwrap()["error"]["code"], "keys_unavailable");
    let took = ended.at - at;
    assert!(took < Duration::from_secs(2), "ended after {took:?}");
    let r = client()
        .get(s.url("/events"))
        .header("X-API-Key", &keys.admin)
        .send()
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "keys_unavailable", "{body}");
    assert!(
        !body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("keys.json"),
        "no server path for clients: {body}"
    );
    let h = health(&s);
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["keys"]["state"], "unavailable", "{h}");
    assert!(
        h["keys"]["message"].as_str().unwrap().contains("not valid"),
        "{h}"
    );
    // Logged once, not every second.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        s.log().matches("keys file unusable").count(),
        1,
        "{}",
        s.log()
    );

    write_keys(&path, &good);
    eventually("the keys are accepted again", || {
        (status_of(&s, &keys.admin).0 == 200).then_some(())
    });
    assert_eq!(health(&s)["status"], "ok");
    assert!(s.log().contains("loaded again"), "{}", s.log());

    // Loose permissions: refused the same way until chmod 600.
    let mode = |m: u32| {
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(m)).unwrap()
    };
    mode(0o644);
    eventually("loose permissions refuse every key", || {
        (status_of(&s, &keys.admin).0 == 503).then_some(())
    });
    assert!(
        health(&s)["keys"]["message"]
            .as_str()
            .unwrap()
            .contains("mode 644")
    );
    mode(0o600);
    eventually("accepted again after chmod 600", || {
        (status_of(&s, &keys.admin).0 == 200).then_some(())
    });

    // Removed: no keys at all, until it is back.
    std::fs::remove_file(&path).unwrap();
    let (status, body) = eventually("a removed keys file holds no keys", || {
        let r = status_of(&s, &keys.admin);
        (r.0 == 401).then_some(r)
    });
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{body}"
    );
    assert_eq!(health(&s)["keys"]["state"], "missing");
    assert_eq!(health(&s)["status"], "degraded");
    write_keys(&path, &good);
    eventually("accepted again once it is back", || {
        (status_of(&s, &keys.admin).0 == 200).then_some(())
    });

    // Each change was recorded once in the log itself, as user evlog.
    caught_up(&s);
    let r: Value = client()
        .get(s.url("/events?event_type=system_config&user_id=evlog&start=1970-01-01T00:00:00Z"))
        .header("X-API-Key", &keys.admin)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let said: Vec<&str> = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| e["action_description"].as_str().unwrap())
        .filter(|d| d.starts_with("keys file"))
        .collect();
    assert_eq!(said.len(), 6, "{said:#?}");
    assert!(
        said[0].contains("unusable") && said[0].contains("not valid"),
        "{said:#?}"
    );
    assert!(said[1].contains("loaded again"), "{said:#?}");
    assert!(
        said[2].contains("unusable") && said[2].contains("mode 644"),
        "{said:#?}"
    );
    assert!(said[3].contains("loaded again"), "{said:#?}");
    assert!(said[4].contains("removed"), "{said:#?}");
    assert!(said[5].contains("loaded again"), "{said:#?}");
}

/// Issue 15: `/events/stream?source=` delivers only the events of that
/// emitting service.
#[test]
fn a_stream_filtered_by_source_delivers_only_that_services_events() {
    let store = Store::new();
    let s = Serve::start(&store);
    let sse = Sse::open(&s, &s.admin, "source=api-service");
    for (source, desc) in [("background-job", "not this"), ("api-service", "this one")] {
        let mut e = deploy("dev", desc);
        e["source"] = source.into();
        let r = client()
            .post(s.url("/events"))
            .header("X-API-Key", &s.admin)
            .json(&e)
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let first = loop {
        let line = sse.line().expect("the stream ended");
        if let Some(d) = line.strip_prefix("data:") {
            break serde_json::from_str::<Value>(d.trim()).unwrap();
        }
    };
    assert_eq!(first["action_description"], "this one", "{first}");
    assert_eq!(first["source"], "api-service");
}
