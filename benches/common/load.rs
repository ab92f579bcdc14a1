//! Closed-loop load from many threads: each waits for its own operation
//! before the next, as synchronous clients do.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Runs `threads` workers, started together, each calling `op(&mut state,
/// thread, i)` until `secs` have passed; each makes its `state` with
/// `make(thread)` before the clock starts. Returns (events, elapsed, per-op
/// latencies in ns, sorted).
pub fn run_threads<S, M, F>(threads: usize, secs: f64, make: M, op: F) -> (u64, Duration, Vec<u64>)
where
    M: Fn(usize) -> S + Send + Sync + 'static,
    F: Fn(&mut S, usize, u64) + Send + Sync + 'static,
{
    let (make, op) = (Arc::new(make), Arc::new(op));
    let stop = Arc::new(AtomicBool::new(false));
    let start_line = Arc::new(Barrier::new(threads + 1));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (make, op) = (make.clone(), op.clone());
            let (stop, start_line) = (stop.clone(), start_line.clone());
            std::thread::spawn(move || {
                let mut state = make(t);
                let mut lat = Vec::with_capacity(1 << 16);
                start_line.wait();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    op(&mut state, t, i);
                    lat.push(t0.elapsed().as_nanos() as u64);
                    i += 1;
                }
                lat
            })
        })
        .collect();
    start_line.wait();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.join().expect("worker panicked"));
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    (all.len() as u64, elapsed, all)
}
