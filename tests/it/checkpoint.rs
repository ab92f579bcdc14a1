//! Signed checkpoints (issue 17): a store tampered with after a checkpoint
//! — its tail cut, a line rewritten with every later hash recomputed, a
//! checkpoint forged, edited or removed — is named by `verify
//! --checkpoints`; rotation between checkpoints still verifies; a key
//! others can read is refused; a crash while writing a checkpoint leaves a
//! readable file.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::SigningKey;
use evlog::checkpoint::verify::{Problem, Report};
use evlog::checkpoint::{self, Stored, Written, key};
use evlog::store::chain::{self, ChainHead};
use evlog::{Event, EventType, ManualClock};

use crate::util::{Out, Store, open_with_clock, utc};

const NODE: &str = "node-a";

/// Appends `n` info events at `at`, a second apart.
fn append(store: &Store, at: DateTime<Utc>, n: u64) {
    let clock = Arc::new(ManualClock::new(at));
    let log = open_with_clock(store.path(), &clock);
    for i in 0..n {
        log.append(Event::new(EventType::Commit, "dev", format!("change {i}")))
            .unwrap();
        clock.advance(Duration::seconds(1));
    }
    log.close().unwrap();
}

fn write(store: &Store, key: &SigningKey, at: DateTime<Utc>) -> Stored {
    match checkpoint::write(store.path(), key, NODE, at, false).unwrap() {
        Written::New(s) => s,
        other => panic!("{other:?}"),
    }
}

/// A copy of the store's checkpoints, as kept off the host.
fn off_host(store: &Store) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(store.path().join(checkpoint::DIR)).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "jsonl") {
            std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    dir
}

/// `evlog verify --checkpoints DIR --public-key PUBLIC`.
fn cli_verify(store: &Store, dir: &Path, public: &str) -> Out {
    store.run(
        &[
            "verify",
            "--checkpoints",
            dir.to_str().unwrap(),
            "--public-key",
            public,
        ],
        b"",
    )
}

fn check(store: &Store, dir: &Path, key: &SigningKey) -> Report {
    checkpoint::verify::verify(store.path(), dir, &[key.verifying_key()]).unwrap()
}

fn problems(r: &Report) -> Vec<(Problem, u64)> {
    r.findings
        .iter()
        .map(|f| (f.problem.clone(), f.seq))
        .collect()
}

/// The lines of `file`, each rebuilt by `edit` (its JSON object without
/// `seq` and `hash`) and chained again from the head before the file —
/// what someone who can write the files can do.
fn rechain(file: &Path, prev: ChainHead, edit: impl Fn(u64, &mut serde_json::Value)) {
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = Vec::new();
    let mut head = prev;
    for line in text.lines() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        let seq = v["seq"].as_u64().unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("seq");
        o.remove("hash");
        edit(seq, &mut v);
        head = chain::seal(
            &head,
            serde_json::to_string(&v).unwrap().as_bytes(),
            &mut out,
        );
    }
    std::fs::write(file, out).unwrap();
}

#[test]
fn a_tail_cut_after_a_checkpoint_is_named_truncated_by_the_cli() {
    let store = Store::new();
    let t = utc("2026-12-01T10:00:00Z");
    append(&store, t, 10);
    let out = store
        .run(&["checkpoint", "init"], b"")
        .expect_code(0)
        .stdout
        .clone();
    let public = out.trim().to_string();
    assert_eq!(public.len(), 64, "{out}");
    store
        .run(&["checkpoint", "write", "--node", NODE], b"")
        .expect_code(0);
    append(&store, t + Duration::minutes(5), 5);
    store
        .run(&["checkpoint", "write", "--node", NODE], b"")
        .expect_code(0);
    let kept = off_host(&store);
    let ok = cli_verify(&store, kept.path(), &public);
    ok.expect_code(0);
    assert!(ok.stdout.contains("ok: 2 checkpoint(s)"), "{}", ok.stdout);

    // Cut the last 7 lines: the chain alone still says ok.
    let file = store.file("events_2026-12-01.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    let keep: Vec<&str> = text.lines().take(8).collect();
    std::fs::write(&file, format!("{}\n", keep.join("\n"))).unwrap();
    assert!(store.verify().ok(), "the chain alone sees no cut tail");
    let cut = cli_verify(&store, kept.path(), &public);
    cut.expect_code(1);
    assert!(cut.stdout.contains("hash chain intact"), "{}", cut.stdout);
    for seq in [10, 15] {
        assert!(
            cut.stdout.contains(&format!(
                "FAILED: truncated: checkpoint seq {seq} is missing from the files (they end at seq 8"
            )),
            "{}",
            cut.stdout
        );
    }
    assert!(
        cut.stdout.contains("2026-12-"),
        "names the checkpoint file: {}",
        cut.stdout
    );
}

#[test]
fn a_line_rewritten_with_its_later_hashes_recomputed_is_named_rewritten() {
    let store = Store::new();
    let k = key::init(store.path(), false).unwrap();
    let t = utc("2026-12-01T10:00:00Z");
    append(&store, t, 6);
    write(&store, &k, t + Duration::minutes(1));
    append(&store, t + Duration::minutes(2), 4);
    let second = write(&store, &k, t + Duration::minutes(3));
    let kept = off_host(&store);
    assert!(check(&store, kept.path(), &k).ok());
    rechain(
        &store.file("events_2026-12-01.jsonl"),
        ChainHead::GENESIS,
        |seq, v| {
            if seq == 4 {
                v["action_description"] = "nothing happened".into();
            }
        },
    );
    assert!(store.verify().ok(), "the chain alone sees no rewrite");
    let r = check(&store, kept.path(), &k);
    assert_eq!(
        problems(&r),
        [(Problem::Rewritten, 6), (Problem::Rewritten, 10)]
    );
    let f = r.findings[1].to_string();
    assert!(
        f.starts_with("rewritten: hash at seq 10 differs from checkpoint")
            && f.contains(&second.at().replace(
                &store.path().join(checkpoint::DIR).display().to_string(),
                &kept.path().display().to_string()
            )),
        "{f}"
    );
}

#[test]
fn forged_edited_and_removed_checkpoints_are_named() {
    let store = Store::new();
    let k = key::init(store.path(), false).unwrap();
    let t = utc("2026-12-01T10:00:00Z");
    for i in 0..3 {
        append(&store, t + Duration::minutes(10 * i), 3);
        write(&store, &k, t + Duration::minutes(10 * i + 5));
    }
    let kept = off_host(&store);
    let file = kept.path().join("2026-12-01.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 3);

    // Signed with another key (one that claims to be ours, and its own).
    let other = SigningKey::from_bytes(&[7; 32]);
    let head = ChainHead {
        seq: 9,
        hash: [1; 32],
    };
    let last: checkpoint::Checkpoint = serde_json::from_str(&lines[2]).unwrap();
    let mut forged = checkpoint::Checkpoint::sign(
        head,
        last.day,
        t + Duration::hours(1),
        NODE,
        Some(&last),
        &other,
    );
    std::fs::write(&file, format!("{}\n{}\n", lines.join("\n"), forged.line())).unwrap();
    let r = check(&store, kept.path(), &k);
    assert_eq!(problems(&r), [(Problem::BadSignature, 9)]);
    assert!(r.findings[0].to_string().contains("bad signature"));
    forged.key = last.key.clone();
    std::fs::write(&file, format!("{}\n{}\n", lines.join("\n"), forged.line())).unwrap();
    assert_eq!(
        problems(&check(&store, kept.path(), &k)),
        [(Problem::BadSignature, 9)]
    );

    // An edited checkpoint: its signature no longer matches.
    let mut edited: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    edited["seq"] = 5.into();
    std::fs::write(&file, format!("{}\n{edited}\n{}\n", lines[0], lines[2])).unwrap();
    // (and the one after it no longer follows it).
    assert_eq!(
        problems(&check(&store, kept.path(), &k)),
        [(Problem::BadSignature, 5), (Problem::BrokenChain, 9)]
    );

    // A removed checkpoint: the next one no longer follows.
    std::fs::write(&file, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
    let r = check(&store, kept.path(), &k);
    assert_eq!(problems(&r), [(Problem::BrokenChain, 9)]);
    assert!(
        r.findings[0]
            .to_string()
            .contains("broken checkpoint chain")
    );
}

#[test]
fn rotation_between_checkpoints_still_verifies() {
    let store = Store::new();
    let k = key::init(store.path(), false).unwrap();
    let days = ["2026-09-01", "2026-09-02", "2026-09-03", "2026-12-01"];
    for d in days {
        let t = utc(&format!("{d}T10:00:00Z"));
        append(&store, t, 2);
        write(&store, &k, t + Duration::hours(1));
        append(&store, t + Duration::hours(2), 2);
        write(&store, &k, t + Duration::hours(3));
    }
    let kept = off_host(&store);
    let now = utc("2026-12-01T12:00:00Z");
    let mut o = evlog::rotate::Options::new(
        evlog::rotate::Policy {
            compress_after: Some(Duration::days(7)),
            delete_after: Some(Duration::days(90)),
            max_total_size: None,
        },
        now,
    );
    o.index = evlog::rotate::IndexMode::Without;
    o.keep_open = false;
    let r = evlog::rotate::run(store.path(), &o).unwrap();
    assert!(!r.deleted.is_empty() && !r.compressed.is_empty(), "{r:?}");
    assert!(!store.file("events_2026-09-01.jsonl").exists());
    assert!(!store.file("events_2026-09-01.jsonl.gz").exists());
    assert!(store.verify().ok());
    let c = check(&store, kept.path(), &k);
    assert!(c.ok(), "{:?}", c.findings);
    assert_eq!(c.checkpoints, 8);
    // The checkpoints of seq 2 and 4 are of the deleted day.
    assert_eq!(c.retired, 2, "{c:?}");
    assert_eq!(c.last.as_ref().map(|l| l.0), Some(16));

    // `chain.anchor` is a plain file: moved forward over a day still there
    // (which the chain check then passes over), a line of that day edited
    // is still found.
    let day2 = store.file("events_2026-09-02.jsonl.gz");
    let plain = store.file("events_2026-09-02.jsonl");
    let text = {
        use std::io::Read;
        let mut t = String::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(&day2).unwrap())
            .read_to_string(&mut t)
            .unwrap();
        t
    };
    let last = chain::parse_tail(text.lines().last().unwrap().as_bytes())
        .unwrap()
        .head();
    assert_eq!(last.seq, 8);
    std::fs::remove_file(&day2).unwrap();
    std::fs::write(&plain, text.replacen("change 1", "change X", 1)).unwrap();
    chain::write_anchor(store.path(), &last).unwrap();
    assert!(store.verify().ok(), "the chain check passes over the day");
    let c = check(&store, kept.path(), &k);
    assert_eq!(problems(&c), [(Problem::Changed, 6)], "{c:?}");

    // The anchor set to the newest checkpoint (its seq and hash are on this
    // host) and the tail under it cut: the newest must still be found.
    let newest = checkpoint::read_dir(kept.path())
        .unwrap()
        .checkpoints
        .pop()
        .unwrap()
        .checkpoint;
    let mut hash = [0u8; 32];
    hex::decode_to_slice(&newest.hash, &mut hash).unwrap();
    let forged = ChainHead {
        seq: newest.seq,
        hash,
    };
    let today = store.file("events_2026-12-01.jsonl");
    let text = std::fs::read_to_string(&today).unwrap();
    let kept_lines: Vec<&str> = text.lines().take(3).collect();
    std::fs::write(&today, format!("{}\n", kept_lines.join("\n"))).unwrap();
    chain::write_anchor(store.path(), &forged).unwrap();
    assert!(store.verify().ok(), "the chain check passes over every day");
    let c = check(&store, kept.path(), &k);
    assert_eq!(
        problems(&c),
        [(Problem::Changed, 6), (Problem::Truncated, 16)],
        "{c:?}"
    );

    // Every day wiped, the same anchor: not a retention.
    for f in store.day_files() {
        std::fs::remove_file(&f.path).unwrap();
    }
    assert!(store.verify().ok(), "the chain alone sees nothing");
    let c = check(&store, kept.path(), &k);
    assert_eq!(problems(&c), [(Problem::Truncated, 16)], "{c:?}");
}

#[test]
fn a_key_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let store = Store::new();
    append(&store, utc("2026-12-01T10:00:00Z"), 1);
    store.run(&["checkpoint", "init"], b"").expect_code(0);
    let again = store.run(&["checkpoint", "init"], b"");
    again.expect_code(2);
    assert!(again.stderr.contains("--rotate"), "{}", again.stderr);
    let path = store.file(key::KEY_FILE);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = store.run(&["checkpoint", "write"], b"");
    out.expect_code(2);
    assert!(out.stderr.contains("chmod 600"), "{}", out.stderr);
    assert!(
        !store
            .file(checkpoint::DIR)
            .join("2026-12-01.jsonl")
            .exists()
    );
}

#[test]
fn a_crash_while_writing_a_checkpoint_leaves_a_readable_file() {
    let store = Store::new();
    let k = key::init(store.path(), false).unwrap();
    let t = utc("2026-12-01T10:00:00Z");
    append(&store, t, 3);
    let first = write(&store, &k, t + Duration::minutes(1));
    // A crash in the middle of the next line: half of it on disk.
    append(&store, t + Duration::minutes(2), 2);
    let line = checkpoint::Checkpoint::sign(
        ChainHead {
            seq: 5,
            hash: [0; 32],
        },
        t.date_naive(),
        t + Duration::minutes(3),
        NODE,
        Some(&first.checkpoint),
        &k,
    )
    .line();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&first.path)
        .unwrap();
    std::io::Write::write_all(&mut f, &line.as_bytes()[..line.len() / 2]).unwrap();
    drop(f);
    let read = checkpoint::read_dir(&store.file(checkpoint::DIR)).unwrap();
    assert_eq!(read.checkpoints.len(), 1);
    assert!(read.unreadable.is_empty());
    assert!(
        read.notes[0].contains("unfinished last line"),
        "{:?}",
        read.notes
    );
    let r = check(&store, &store.file(checkpoint::DIR), &k);
    assert!(r.ok(), "{:?}", r.findings);
    // The next checkpoint cuts the half line and follows the first.
    let next = write(&store, &k, t + Duration::minutes(4));
    assert_eq!(next.line, 2);
    let read = checkpoint::read_dir(&store.file(checkpoint::DIR)).unwrap();
    assert_eq!(read.checkpoints.len(), 2);
    assert!(read.notes.is_empty());
    assert!(check(&store, &store.file(checkpoint::DIR), &k).ok());
}

/// A tiny HTTP receiver: answers every request 204 and keeps each body.
fn receiver() -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/checkpoints", l.local_addr().unwrap());
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let got2 = got.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut len = 0usize;
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                line.clear();
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            got2.lock().unwrap().push(String::from_utf8(body).unwrap());
            let _ = c.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        }
    });
    (url, got)
}

#[test]
fn the_server_signs_on_schedule_delivers_to_each_sink_and_shows_a_failing_one() {
    use crate::serve::{Opts, Serve, client, eventually};
    let store = Store::new();
    let public = store
        .run(&["checkpoint", "init"], b"")
        .expect_code(0)
        .stdout
        .clone();
    let public = public.trim().to_string();
    let off = tempfile::tempdir().unwrap();
    let (live, posted) = receiver();
    // An endpoint that takes the connection and never answers.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/in", hung.local_addr().unwrap());
    // The hung one first: the live one must not wait for it.
    let posts = format!("{dead},{live}");
    // As /health shows them: no path (it may hold a token).
    let shown = |url: &str| format!("{}/…", url.rsplit_once('/').unwrap().0);
    let s = Serve::start_opts(
        &store,
        Opts {
            args: &[],
            env: &[
                ("EVLOG_CHECKPOINT_INTERVAL", "1s"),
                ("EVLOG_CHECKPOINT_DIR", off.path().to_str().unwrap()),
                ("EVLOG_CHECKPOINT_POST", &posts),
                ("EVLOG_NODE", NODE),
            ],
        },
    );
    assert!(
        s.log().contains(&public),
        "the banner names the key: {}",
        s.log()
    );
    let c = client();
    for i in 0..5 {
        let r = c
            .post(s.url("/events"))
            .header("X-API-Key", &s.admin)
            .json(&crate::serve::deploy("alice", &format!("release {i}")))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let head = || {
        store.lines().last().map(|l| {
            serde_json::from_slice::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
    };
    let health =
        || -> serde_json::Value { c.get(s.url("/health")).send().unwrap().json().unwrap() };
    // The first checkpoint reaches the live endpoint while the hung one
    // still holds its own sink's first attempt (it fails only after the
    // 10 s timeout): each sink runs on its own.
    let first = eventually("a checkpoint POSTed", || {
        let v = health();
        (v["checkpoints"]["sinks"][2]["delivered"].as_u64()? >= 1).then_some(v)
    });
    assert!(
        first["checkpoints"]["sinks"][1]["last_error"].is_null(),
        "the live sink waited for the hung one: {first}"
    );
    // A checkpoint of the head after the appends, in the copy and POSTed;
    // the hung endpoint's sink failing.
    let h = eventually("a checkpoint of the head, delivered", || {
        let want = head()?;
        let v = health();
        let sinks = v["checkpoints"]["sinks"].as_array()?.clone();
        (v["checkpoints"]["last_seq"] == want
            && sinks[0]["pending"] == 0
            && sinks[2]["pending"] == 0
            && sinks[1]["last_error"].is_string())
        .then_some(v)
    });
    let cp = &h["checkpoints"];
    assert_eq!(cp["interval_seconds"], 1, "{h}");
    assert!(cp["written"].as_u64().unwrap() >= 1, "{h}");
    let names: Vec<&str> = cp["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["sink"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            format!("dir:{}", off.path().display()),
            format!("post:{}", shown(&dead)),
            format!("post:{}", shown(&live))
        ]
    );
    let failing = &cp["sinks"][1];
    assert!(failing["pending"].as_u64().unwrap() >= 1, "{h}");
    assert!(
        failing["last_error"]
            .as_str()
            .unwrap()
            .starts_with(&format!("POST {}", shown(&dead))),
        "{h}"
    );
    let metrics = c.get(s.url("/metrics")).send().unwrap().text().unwrap();
    let failures = metrics
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "evlog_checkpoint_delivery_failures_total{{sink=\"post:{}\"}}",
                shown(&dead)
            ))
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(!failures.ends_with(" 0"), "{failures}");
    assert!(
        metrics.contains("evlog_checkpoints_written_total "),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "evlog_checkpoint_pending{{sink=\"post:{}\"}} 0",
            shown(&live)
        )),
        "{metrics}"
    );

    // The admin's list: the public key and the checkpoints, oldest first.
    let list: serde_json::Value = c
        .get(s.url("/admin/checkpoints?limit=2"))
        .header("X-API-Key", &s.admin)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(list["public_key"], public.as_str(), "{list}");
    let shown = list["checkpoints"].as_array().unwrap();
    assert!(!shown.is_empty() && shown.len() <= 2, "{list}");
    assert!(
        list["total"].as_u64().unwrap() >= shown.len() as u64,
        "{list}"
    );
    assert_eq!(shown.last().unwrap()["node"], NODE, "{list}");
    let bad = c
        .get(s.url("/admin/checkpoints?limit=0"))
        .header("X-API-Key", &s.admin)
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);

    // Stopped, the server signs the head once more (its `system_stop`),
    // and stops although a sink still hangs.
    let (status, log) = s.terminate();
    assert!(status.success(), "{log}");
    drop(hung);
    let all = checkpoint::read_dir(&store.path().join(checkpoint::DIR))
        .unwrap()
        .checkpoints;
    assert_eq!(Some(all.last().unwrap().checkpoint.seq), head(), "{log}");
    // Every checkpoint reached the copy and the receiver, in order.
    let copied = checkpoint::read_dir(off.path()).unwrap().checkpoints;
    let lines = |v: &[Stored]| v.iter().map(|s| s.checkpoint.line()).collect::<Vec<_>>();
    assert_eq!(lines(&copied), lines(&all));
    assert_eq!(*posted.lock().unwrap(), lines(&all));
    // The copy verifies, and catches a cut tail.
    cli_verify(&store, off.path(), &public).expect_code(0);
    let day = store.day_files().last().unwrap().path.clone();
    let text = std::fs::read_to_string(&day).unwrap();
    let n = text.lines().count();
    let kept: Vec<&str> = text.lines().take(n - 2).collect();
    std::fs::write(&day, format!("{}\n", kept.join("\n"))).unwrap();
    let cut = cli_verify(&store, off.path(), &public);
    cut.expect_code(1);
    assert!(
        cut.stdout.contains("truncated: checkpoint seq"),
        "{}",
        cut.stdout
    );
}

#[test]
fn serve_refuses_sinks_without_a_key_and_a_missing_directory() {
    let store = Store::new();
    let off = tempfile::tempdir().unwrap();
    let out = store.run(
        &[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--checkpoint-dir",
            off.path().to_str().unwrap(),
        ],
        b"",
    );
    out.expect_code(2);
    assert!(
        out.stderr.contains("evlog checkpoint init"),
        "{}",
        out.stderr
    );
    store.run(&["checkpoint", "init"], b"").expect_code(0);
    let gone = off.path().join("not-mounted");
    let out = store.run(
        &[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--checkpoint-dir",
            gone.to_str().unwrap(),
        ],
        b"",
    );
    out.expect_code(2);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
}

#[test]
fn the_day_end_checkpoint_pins_the_last_line_of_the_day_that_ended() {
    let store = Store::new();
    let k = key::init(store.path(), false).unwrap();
    append(&store, utc("2026-12-01T23:59:50Z"), 3);
    append(&store, utc("2026-12-02T00:00:01Z"), 2);
    let ended = utc("2026-12-01T12:00:00Z").date_naive();
    let at = utc("2026-12-02T00:00:03Z");
    let day_end = match checkpoint::write_upto(store.path(), &k, NODE, at, true, Some(ended)) {
        Ok(Written::New(s)) => s.checkpoint,
        other => panic!("{other:?}"),
    };
    assert_eq!((day_end.seq, day_end.day), (3, ended));
    // The next one signs the head, after midnight.
    let next = write(&store, &k, at);
    assert_eq!(next.checkpoint.seq, 5);
    assert_eq!(
        next.checkpoint.previous_checkpoint_hash,
        Some(day_end.digest())
    );
    assert!(check(&store, &store.file(checkpoint::DIR), &k).ok());
}
