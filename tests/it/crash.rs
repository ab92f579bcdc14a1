//! Crash safety: `evlog append --stdin --durability fsync` killed with SIGKILL
//! at random moments while a pipe feeds it. An id it printed is an
//! acknowledged, durable event: it must be stored exactly once whatever
//! happens after, the chain must stay intact, and a torn tail moved aside
//! must never count as an event.

use std::collections::HashSet;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::sync::mpsc;
use std::time::Duration;

use uuid::Uuid;

use crate::util::{
    Rng, Store, assert_consecutive_seqs, bulk_line, distinct_ids, feed_lines, read_acks,
};

const KILLS: u64 = 24;

#[test]
fn sigkilled_appenders_lose_and_duplicate_no_acknowledged_event() {
    let mut rng = Rng::from_env_or(0x00c0_ffee_5eed);
    let store = Store::new();
    let mut acked: Vec<Uuid> = Vec::new();
    for round in 0..KILLS {
        let mut child = store.spawn_append_stdin("fsync");
        // Writes of whole lines let the child acknowledge what it read after
        // each read instead of every 8192 events; they go on until the kill.
        let tag = format!("r{round}");
        let feeder = feed_lines(&mut child, &tag, rng.next_u64(), 20, |_| true);
        let (first_tx, first_rx) = mpsc::sync_channel(1);
        let reader = read_acks(&mut child, first_tx);
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
        feeder
            .join()
            .unwrap()
            .expect_err("the feeder stops when the pipe breaks");
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
