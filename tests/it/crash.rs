//! Crash safety: `evlog append --stdin --durability fsync` killed with SIGKILL
//! at random moments while a pipe feeds it. An id it printed is an
//! acknowledged, durable event: it must be stored exactly once whatever
//! happens after, the chain must stay intact, and a torn tail moved aside
//! must never count as an event.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::Child;
use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use uuid::Uuid;

use crate::util::{Rng, Store, assert_consecutive_seqs, bulk_line, distinct_ids};

const KILLS: u64 = 24;

/// Feeds `child` events of round `round` until the pipe breaks, in writes
/// of whole lines of at most `PIPE_BUF` bytes, which the kernel keeps whole:
/// the child's reads then end at line boundaries, and it acknowledges what
/// it read after each read instead of every 8192 events.
fn feed(child: &mut Child, round: u64, seed: u64) -> JoinHandle<u64> {
    const PIPE_BUF: usize = 4096;
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        let mut rng = Rng::new(seed);
        let mut i = 0u64;
        let mut block = String::new();
        loop {
            block.clear();
            for _ in 0..rng.range(1, 20) {
                let line = bulk_line(&format!("r{round}"), i);
                if block.len() + line.len() > PIPE_BUF {
                    break;
                }
                block.push_str(&line);
                i += 1;
            }
            if stdin.write_all(block.as_bytes()).is_err() {
                return i; // the child is gone
            }
        }
    })
}

/// Collects the ids the child acknowledges: complete lines only (a kill can
/// cut the last one short). Signals `first` at the first acknowledgement.
fn acks(child: &mut Child, first: SyncSender<()>) -> JoinHandle<Vec<Uuid>> {
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

#[test]
fn sigkilled_appenders_lose_and_duplicate_no_acknowledged_event() {
    let mut rng = Rng::from_env_or(0x00c0_ffee_5eed);
    let store = Store::new();
    let mut acked: Vec<Uuid> = Vec::new();
    for round in 0..KILLS {
        let mut child = store.spawn_append_stdin();
        let feeder = feed(&mut child, round, rng.next_u64());
        let (first_tx, first_rx) = mpsc::sync_channel(1);
        let reader = acks(&mut child, first_tx);
        // Mostly kill in full flow, some time after the first acknowledgement
        // (however long a loaded machine takes to get there); sometimes at
        // any moment from the start, recovery and opening included.
        if rng.range(0, 4) != 0 {
            let _ = first_rx.recv(); // Err: the child is gone, caught below
        }
        std::thread::sleep(Duration::from_millis(rng.range(1, 120)));
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("round {round}: the appender ended by itself ({status}):\n{err}");
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "round {round}: {status}");
        feeder.join().unwrap();
        let ids = reader.join().unwrap();
        acked.extend(ids);
    }
    assert!(
        !acked.is_empty(),
        "no acknowledgement in {KILLS} rounds: the test exercised nothing"
    );

    // A clean run after the last crash appends normally.
    let input: String = (0..5).map(|i| bulk_line("after", i)).collect();
    let out = store.run(&["append", "--stdin"], input.as_bytes());
    out.expect_code(0);
    let after: Vec<Uuid> = out.stdout.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(after.len(), 5);

    let records = store.records();
    assert_consecutive_seqs(&records);
    let stored = distinct_ids(&records);
    // Every acknowledged id is stored, in acknowledgement order.
    let acked_set: HashSet<Uuid> = acked.iter().copied().collect();
    assert_eq!(acked_set.len(), acked.len(), "an id was acknowledged twice");
    let stored_acked: Vec<Uuid> = records
        .iter()
        .map(|r| r.event.id.unwrap())
        .filter(|id| acked_set.contains(id))
        .collect();
    if stored_acked != acked {
        let lost: Vec<_> = acked.iter().filter(|id| !stored.contains(id)).collect();
        panic!(
            "acknowledged events lost or out of order: {} acked, {} stored, lost {lost:?}",
            acked.len(),
            stored_acked.len()
        );
    }
    let tail: Vec<Uuid> = records[records.len() - 5..]
        .iter()
        .map(|r| r.event.id.unwrap())
        .collect();
    assert_eq!(tail, after);
    assert_eq!(store.lines().len(), records.len(), "every line is an event");

    // Torn tails were moved aside and none of them is an event.
    let stored_lines: HashSet<Vec<u8>> = store.lines().into_iter().collect();
    let mut torn_lines = 0;
    for path in store.torn_files() {
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.ends_with(b"\n"), "{}", path.display());
        for line in bytes[..bytes.len() - 1].split(|b| *b == b'\n') {
            torn_lines += 1;
            assert!(!line.contains(&b'\n'));
            assert!(
                !stored_lines.contains(line),
                "torn content is stored as an event: {}",
                String::from_utf8_lossy(line)
            );
            // Its id, if the cut left it whole, belongs to no stored event.
            if let Some(id) = line
                .strip_prefix(br#"{"id":""#)
                .and_then(|rest| rest.get(..36))
                .and_then(|s| std::str::from_utf8(s).ok()?.parse::<Uuid>().ok())
            {
                assert!(!stored.contains(&id), "torn event {id} is also stored");
                assert!(!acked_set.contains(&id), "torn event {id} was acknowledged");
            }
        }
    }
    eprintln!(
        "{KILLS} kills: {} acknowledged, {} stored, {torn_lines} torn tail(s) moved aside",
        acked.len(),
        records.len()
    );

    let report = store.verify();
    assert!(report.ok(), "{:?}", report.failure);
    store.run(&["verify"], b"").expect_code(0);
}
