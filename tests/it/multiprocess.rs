//! Several `evlog` processes appending to one storage directory at once: the
//! storage lock must keep one linear hash chain with every event exactly once.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, Barrier};

use uuid::Uuid;

use crate::util::{Store, assert_consecutive_seqs, bulk_line, distinct_ids};

#[test]
fn four_processes_appending_at_once_write_one_intact_chain() {
    const PROCS: usize = 4;
    const PER_PROC: u64 = 25_000;
    let store = Store::new();
    std::fs::create_dir_all(store.path()).unwrap();

    let inputs: Vec<Vec<u8>> = (0..PROCS)
        .map(|p| {
            (0..PER_PROC)
                .flat_map(|i| bulk_line(&format!("p{p}"), i).into_bytes())
                .collect()
        })
        .collect();

    let mut children = Vec::new();
    for _ in 0..PROCS {
        children.push(store.spawn_append_stdin("fsync"));
    }
    // Every feeder starts writing at the same moment.
    let start = Arc::new(Barrier::new(PROCS));
    let mut threads = Vec::new();
    for (child, input) in children.iter_mut().zip(inputs) {
        let mut stdin = child.stdin.take().unwrap();
        let start = start.clone();
        let feeder = std::thread::spawn(move || {
            start.wait();
            stdin.write_all(&input).unwrap();
        });
        let mut stdout = child.stdout.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            stdout.read_to_string(&mut s).unwrap();
            s
        });
        let mut stderr = child.stderr.take().unwrap();
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            stderr.read_to_string(&mut s).unwrap();
            s
        });
        threads.push((feeder, out, err));
    }
    let mut printed: Vec<Vec<Uuid>> = Vec::new();
    for (p, (mut child, (feeder, out, err))) in children.into_iter().zip(threads).enumerate() {
        feeder.join().unwrap();
        let status = child.wait().unwrap();
        let (out, err) = (out.join().unwrap(), err.join().unwrap());
        assert!(status.success(), "process {p}: {status}\n{err}");
        assert!(
            err.contains(&format!("appended {PER_PROC} event(s), rejected 0")),
            "process {p}: {err}"
        );
        let ids: Vec<Uuid> = out.lines().map(|l| l.parse().unwrap()).collect();
        assert_eq!(ids.len(), PER_PROC as usize, "process {p}");
        printed.push(ids);
    }

    // Every line parses (records() panics otherwise), no line is lost or doubled.
    let lines = store.lines();
    assert_eq!(lines.len(), PROCS * PER_PROC as usize);
    let records = store.records();
    assert_eq!(records.len(), lines.len());
    assert_consecutive_seqs(&records);
    let stored = distinct_ids(&records);
    assert_eq!(stored.len(), PROCS * PER_PROC as usize);
    assert!(store.torn_files().is_empty());

    // Each process's events are stored in its input order, with the ids it printed.
    let mut by_proc: HashMap<String, Vec<(u64, Uuid)>> = HashMap::new();
    for r in &records {
        let req = r.event.request_id.as_deref().unwrap();
        let (tag, i) = req.split_once('-').unwrap();
        by_proc
            .entry(tag.to_string())
            .or_default()
            .push((i.parse().unwrap(), r.event.id.unwrap()));
    }
    for (p, ids) in printed.iter().enumerate() {
        let got = &by_proc[&format!("p{p}")];
        let order: Vec<u64> = got.iter().map(|(i, _)| *i).collect();
        assert_eq!(order, (0..PER_PROC).collect::<Vec<_>>(), "process {p}");
        let got_ids: Vec<Uuid> = got.iter().map(|(_, id)| *id).collect();
        assert!(
            &got_ids == ids,
            "process {p}: stored ids differ from printed ids"
        );
    }

    store.expect_cli_verifies(&format!("{} line(s)", PROCS * PER_PROC as usize));
}
