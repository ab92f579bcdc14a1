//! Replication through NATS JetStream (issue 16), against a running
//! `nats-server -js` given with `--nats URL` (scripts/bench-replication.sh
//! starts one).
//!
//! 1. **evlog, end to end**: an edge store and a follower store (with its
//!    tail indexer) in this process; `--events` events appended to the
//!    edge in batches of 1000 (fdatasync each) as fast as it takes them;
//!    timed from the first append to the follower's durable copy of the
//!    last one (its `appended` count): events/s.
//! 2. **evlog, lag at a rate**: `--rate` events/s (default 20,000) for
//!    `--seconds` (default 20) appended in batches every 10 ms; the lag of a
//!    batch is from the return of its durable append on the edge to the
//!    follower's durable copy of its last event. p50/p99/max.
//! 3. **The publisher alone**: a backlog of `--events` lines in a new
//!    edge's files, published from its cursor: events/s to the last
//!    acknowledgement.
//! 4. **Bare**: the same lines published with `async-nats` alone (same
//!    bytes, `Nats-Msg-Id` = the id, acknowledgements awaited, `--window`
//!    of them in flight) to a stream of its own: messages/s, and the
//!    ratios of 1 and 3 to it.
//!
//! Options (`--name value` or `EVLOG_BENCH_<NAME>`): `--nats`, `--events`
//! (default 200000), `--window` (default 1024), `--rate`, `--seconds`.
//! Data goes to `$EVLOG_BENCH_DIR` (default `/tmp`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage, stream};
use common::flags::Flags;
use common::report::{pct, result};
use evlog::index::IndexConfig;
use evlog::replicate::follow::{self, FollowConfig, FollowStatus};
use evlog::replicate::nats::NatsConfig;
use evlog::replicate::publish::{self, Status};
use evlog::{Config, Durability, EventLog};
use tokio::sync::watch;

fn open(dir: &std::path::Path) -> EventLog {
    EventLog::open(Config::new(dir).durability(Durability::Fsync)).expect("opening a store")
}

/// The lines of the store in `dir`, as stored.
fn lines_of(dir: &std::path::Path) -> Vec<(String, bytes::Bytes)> {
    let files = evlog::store::day::list(dir, evlog::DayRange::all()).expect("listing");
    let mut out = Vec::new();
    for f in files {
        for line in std::fs::read_to_string(&f.path).expect("reading").lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("a stored line");
            let id = v["id"].as_str().expect("an id").to_string();
            out.push((id, bytes::Bytes::copy_from_slice(line.as_bytes())));
        }
    }
    out
}

/// Publishes `lines` with async-nats alone, `window` acknowledgements in
/// flight; messages/s.
async fn bare(url: &str, lines: &[(String, bytes::Bytes)], window: usize) -> f64 {
    let client = async_nats::connect(url).await.expect("connecting");
    let js = jetstream::new(client);
    let _ = js.delete_stream("BENCH_BARE").await;
    js.create_stream(stream::Config {
        name: "BENCH_BARE".into(),
        subjects: vec!["bare.>".into()],
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(3600),
        ..Default::default()
    })
    .await
    .expect("creating the bare stream");
    let started = Instant::now();
    let mut pending = std::collections::VecDeque::with_capacity(window);
    for (id, line) in lines {
        if pending.len() >= window {
            let ack: jetstream::context::PublishAckFuture = pending.pop_front().expect("not empty");
            ack.await.expect("acknowledged");
        }
        let msg = PublishMessage::build()
            .payload(line.clone())
            .message_id(id.clone())
            .header("Evlog-Node", "bare");
        pending.push_back(
            js.send_publish("bare._.api_request", msg)
                .await
                .expect("publishing"),
        );
    }
    for ack in pending {
        ack.await.expect("acknowledged");
    }
    lines.len() as f64 / started.elapsed().as_secs_f64()
}

/// Deletes stream `name` after `settle` (for the tasks using it to stop);
/// whether it was there to delete.
async fn delete_stream(url: &str, name: &str, settle: Duration) -> bool {
    tokio::time::sleep(settle).await;
    let js = jetstream::new(async_nats::connect(url).await.expect("connecting"));
    js.delete_stream(name).await.is_ok()
}

/// Waits until the follower has appended `n` events in all.
fn wait_appended(status: &FollowStatus, n: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    while status.appended.load(Ordering::Relaxed) < n {
        assert!(
            Instant::now() < deadline,
            "the follower has {} of {n} events after {limit:?}",
            status.appended.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn main() {
    let flags = Flags::parse();
    let url = flags
        .get("nats")
        .expect("--nats URL (scripts/bench-replication.sh starts a nats-server)");
    let events: u64 = flags.num("events", 200_000);
    let window: usize = flags.num("window", 1024);
    let rate: u64 = flags.num("rate", 20_000);
    let seconds: u64 = flags.num("seconds", 20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // The edge, the follower (indexed, like a central node) and the stream.
    let edge_dir = common::temp_dir("evlog-bench-repl-edge-");
    let follower_dir = common::temp_dir("evlog-bench-repl-follower-");
    let edge = open(edge_dir.path());
    let follower = open(follower_dir.path());
    let indexer = follower
        .start_indexer(IndexConfig::new(follower_dir.path()))
        .expect("indexer");
    let mut cfg = NatsConfig::new(vec![url.clone()]);
    cfg.stream = "BENCH_EVLOG".into();
    // Left by an earlier run, if any.
    rt.block_on(delete_stream(&url, "BENCH_EVLOG", Duration::ZERO));
    let (stop_tx, stop) = watch::channel(false);
    let published = Arc::new(Status::default());
    let followed = Arc::new(FollowStatus::default());
    {
        let _rt = rt.enter();
        publish::start(
            &edge,
            cfg.clone(),
            "edge".into(),
            published.clone(),
            stop.clone(),
        );
        rt.spawn(follow::run(
            FollowConfig {
                nats: cfg,
                consumer: "bench".into(),
                filter: None,
                node: "follower".into(),
            },
            follower.clone(),
            indexer.search().clone(),
            follow::Claims::default(),
            followed.clone(),
            stop,
        ));
    }

    // 1. Throughput, from the edge's append to the follower's copy.
    println!("== evlog: {events} events appended to the edge, followed into the follower");
    let started = Instant::now();
    let mut i = 0u64;
    while i < events {
        let n = 1000.min(events - i);
        edge.append_batch((i..i + n).map(common::event).collect())
            .expect("append");
        i += n;
    }
    let appended_in = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while published.acked_seq.load(Ordering::Relaxed) < events && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
    let published_in = started.elapsed();
    wait_appended(&followed, events, Duration::from_secs(600));
    let evlog_secs = started.elapsed().as_secs_f64();
    let evlog_rate = events as f64 / evlog_secs;
    println!(
        "appended to the edge in {:.2} s, published in {:.2} s, followed in {evlog_secs:.2} s: \
         {evlog_rate:.0} events/s",
        appended_in.as_secs_f64(),
        published_in.as_secs_f64()
    );

    // 2. Lag at `rate` events/s.
    println!("== lag: {rate} events/s for {seconds} s");
    let per_tick = (rate / 100).max(1);
    let base = followed.appended.load(Ordering::Relaxed);
    let done = Arc::new(AtomicBool::new(false));
    let samples = {
        let (followed, done) = (followed.clone(), done.clone());
        std::thread::spawn(move || {
            let mut s: Vec<(Instant, u64)> = Vec::new();
            let mut last = u64::MAX;
            while !done.load(Ordering::Relaxed) {
                let n = followed.appended.load(Ordering::Relaxed);
                if n != last {
                    s.push((Instant::now(), n));
                    last = n;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            s
        })
    };
    let mut sent: Vec<(Instant, u64)> = Vec::new();
    let start = Instant::now();
    let mut total = 0u64;
    let ticks = seconds * 100;
    let mut late = 0u64;
    for t in 0..ticks {
        let due = start + Duration::from_millis(10 * t);
        let now = Instant::now();
        if now < due {
            std::thread::sleep(due - now);
        } else if now > due + Duration::from_millis(10) {
            late += 1;
        }
        edge.append_batch(
            (0..per_tick)
                .map(|k| common::event(events + total + k))
                .collect(),
        )
        .expect("append");
        total += per_tick;
        sent.push((Instant::now(), base + total));
    }
    let offered = total as f64 / start.elapsed().as_secs_f64();
    wait_appended(&followed, base + total, Duration::from_secs(120));
    done.store(true, Ordering::Relaxed);
    let samples = samples.join().expect("sampler");
    let mut lags: Vec<f64> = sent
        .iter()
        .map(|&(at, want)| {
            let i = samples.partition_point(|&(_, n)| n < want);
            let copied = samples.get(i).map_or_else(Instant::now, |s| s.0);
            copied.saturating_duration_since(at).as_secs_f64() * 1000.0
        })
        .collect();
    lags.sort_by(f64::total_cmp);
    println!(
        "offered {offered:.0} events/s ({late} of {ticks} batches late); lag ms: p50 {:.1}, p99 {:.1}, max {:.1}",
        pct(&lags, 50.0),
        pct(&lags, 99.0),
        lags.last().copied().unwrap_or_default()
    );
    result("lag_rate_offered", format!("{offered:.0}"));
    result("lag_p50_ms", format!("{:.1}", pct(&lags, 50.0)));
    result("lag_p99_ms", format!("{:.1}", pct(&lags, 99.0)));
    result(
        "lag_max_ms",
        format!("{:.1}", lags.last().copied().unwrap_or_default()),
    );
    let dup = followed.duplicates.load(Ordering::Relaxed);
    assert_eq!(dup, 0, "the follower saw {dup} duplicates");

    let _ = stop_tx.send(true);
    assert!(
        rt.block_on(delete_stream(
            &url,
            "BENCH_EVLOG",
            Duration::from_millis(600)
        )),
        "deleting the stream"
    );
    indexer.shutdown().expect("indexer");
    follower.close().expect("closing");
    edge.close().expect("closing");

    // 3. The publisher alone, like for like with bare: a backlog of
    // `events` lines in an edge's files, published from its cursor.
    println!("== evlog publisher alone: a backlog of {events} events");
    let pub_dir = common::temp_dir("evlog-bench-repl-publish-");
    let backlog = open(pub_dir.path());
    for i in (0..events).step_by(1000) {
        backlog
            .append_batch((i..(i + 1000).min(events)).map(common::event).collect())
            .expect("append");
    }
    let (stop_tx, stop) = watch::channel(false);
    let status = Arc::new(Status::default());
    let mut cfg = NatsConfig::new(vec![url.clone()]);
    cfg.stream = "BENCH_PUBLISH".into();
    let started = Instant::now();
    {
        let _rt = rt.enter();
        publish::start(&backlog, cfg, "edge".into(), status.clone(), stop);
    }
    while status.acked_seq.load(Ordering::Relaxed) < events {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "not published"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    let publish_rate = events as f64 / started.elapsed().as_secs_f64();
    println!(
        "published in {:.2} s: {publish_rate:.0} events/s",
        started.elapsed().as_secs_f64()
    );
    let _ = stop_tx.send(true);
    assert!(
        rt.block_on(delete_stream(
            &url,
            "BENCH_PUBLISH",
            Duration::from_millis(300)
        )),
        "deleting the stream"
    );

    // 4. Bare, the same bytes.
    let lines = lines_of(pub_dir.path());
    println!(
        "== bare async-nats: {} lines ({} bytes), {window} acknowledgements in flight",
        lines.len(),
        lines.iter().map(|(_, l)| l.len()).sum::<usize>()
    );
    let bare_rate = rt.block_on(bare(&url, &lines, window));
    println!("bare: {bare_rate:.0} messages/s");
    result("bare_msgs_per_s", format!("{bare_rate:.0}"));
    result("evlog_events_per_s", format!("{evlog_rate:.0}"));
    result("ratio", format!("{:.2}", evlog_rate / bare_rate));
    result("publish_events_per_s", format!("{publish_rate:.0}"));
    result("publish_ratio", format!("{:.2}", publish_rate / bare_rate));
    drop(rt);
    backlog.close().expect("closing");
}
