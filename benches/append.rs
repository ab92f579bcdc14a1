//! Criterion benchmarks of the append paths, in events/s.
//!
//! - `append/single_fsync`: one thread, one `EventLog::append` per iteration
//!   under `Durability::Fsync` (so one `fdatasync` per event: no one to group with).
//! - `append/batch1000_fsync`: `EventLog::append_batch` of 1000 events under
//!   `Durability::Fsync` (one write + one `fdatasync` per batch).
//! - `appender/enqueue`: the caller's cost of `Appender::append` (the queue is
//!   flushed, untimed, every 4096 events so that nothing is dropped).
//!
//! Data goes to `$EVLOG_BENCH_DIR` (default `/tmp`), which must be a real disk.
//! Run: `CARGO_TARGET_DIR=/work/target-bench cargo bench --bench append`.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use evlog::{Appender, Config, Durability, Event, EventLog};

fn open(dir: &std::path::Path) -> EventLog {
    EventLog::open(Config::new(dir).durability(Durability::Fsync)).expect("opening the log")
}

fn append_fsync(c: &mut Criterion) {
    let tmp = common::temp_dir("evlog-bench-append-");
    let log = open(tmp.path());
    // The first append creates the day file (and fsyncs the directory).
    log.append(common::event(0)).expect("append");

    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    let mut i = 0u64;
    g.bench_function("single_fsync", |b| {
        b.iter_batched(
            || {
                i += 1;
                common::event(i)
            },
            |e| black_box(log.append(e).expect("append")),
            BatchSize::SmallInput,
        )
    });

    g.throughput(Throughput::Elements(1000));
    g.sample_size(30);
    g.bench_function("batch1000_fsync", |b| {
        b.iter_batched(
            || {
                (0..1000)
                    .map(|_| {
                        i += 1;
                        common::event(i)
                    })
                    .collect::<Vec<Event>>()
            },
            |events| black_box(log.append_batch(events).expect("append_batch")),
            BatchSize::LargeInput,
        )
    });
    g.finish();
    drop(log);
}

fn appender_enqueue(c: &mut Criterion) {
    const CHUNK: u64 = 4096;
    let tmp = common::temp_dir("evlog-bench-appender-");
    let log = open(tmp.path());
    log.append(common::event(0)).expect("append");
    let appender = Appender::new(log);

    let mut g = c.benchmark_group("appender");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(2));
    let mut n = 0u64;
    g.bench_function("enqueue", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let k = left.min(CHUNK);
                left -= k;
                let events: Vec<Event> = (0..k)
                    .map(|_| {
                        n += 1;
                        common::event(n)
                    })
                    .collect();
                let start = Instant::now();
                for e in events {
                    black_box(appender.append(e));
                }
                timed += start.elapsed();
                // Untimed: let the background thread catch up so the queue
                // (65,536) never fills and no event takes the drop path.
                appender.flush();
            }
            timed
        })
    });
    g.finish();
    let dropped = appender.dropped();
    appender.shutdown();
    assert_eq!(
        dropped, 0,
        "the appender dropped events: the figure is void"
    );
}

criterion_group!(benches, append_fsync, appender_enqueue);
criterion_main!(benches);
