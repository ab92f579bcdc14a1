//! Phase 2, `lag`: how long an appended event takes to become searchable
//! while a paced appender writes, with the process's RSS.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use evlog::index::{IndexConfig, IndexSearch, Query};
use evlog::{Config, Durability, Event, EventLog, EventType};

use crate::Opts;
use crate::common::kinds::all_time;
use crate::common::proc::{Noise, cpu_snap, noisy, print_threads, rss_kib, thread_cpu_between};
use crate::common::realistic::make_event;
use crate::common::report::{pct, result};
use crate::common::temp_dir;
use crate::model::ModelIndexer;
use crate::report::{ms, target};

/// The indexer under test in the lag phase: evlog's run loop, or a model of
/// a proposed loop built from the public `Indexer` API.
enum LagIndexer {
    Real(evlog::index::IndexerHandle),
    Model(ModelIndexer),
}

impl LagIndexer {
    fn reader(&self) -> tantivy::IndexReader {
        match self {
            LagIndexer::Real(h) => h.reader().clone(),
            LagIndexer::Model(m) => m.reader().clone(),
        }
    }
    fn counts(&self) -> (u64, u64) {
        let s: &evlog::index::indexer::IndexStats = match self {
            LagIndexer::Real(h) => h.stats(),
            LagIndexer::Model(m) => m.stats(),
        };
        (
            s.indexed.load(Ordering::Relaxed),
            s.commits.load(Ordering::Relaxed),
        )
    }
    /// Stops it; returns the model's commit durations (empty for evlog's).
    fn shutdown(self) -> Vec<Duration> {
        match self {
            LagIndexer::Real(h) => {
                h.shutdown().expect("indexer shutdown");
                Vec::new()
            }
            LagIndexer::Model(m) => m.shutdown(),
        }
    }
}

pub fn bench_lag(o: &Opts) {
    let tmp = temp_dir("evlog-ixlag-");
    let dir = tmp.path().to_path_buf();
    let log = EventLog::open(Config::new(&dir).durability(Durability::Batch)).expect("open");
    let rss0 = rss_kib();
    let model = match o.lag_loop.as_str() {
        "evlog" => false,
        "model" => true,
        other => panic!("--lag-loop: `{other}` is not evlog or model"),
    };
    let handle = if model {
        LagIndexer::Model(ModelIndexer::start(&log, &dir))
    } else {
        LagIndexer::Real(
            log.start_indexer(IndexConfig::new(&dir))
                .expect("start_indexer"),
        )
    };
    let reader = handle.reader();
    let search = IndexSearch::from_reader(reader.clone());
    println!(
        "lag  {} events/s for {:.0} s: append_batch of {} every {:.2} ms (one thread, Durability::Batch), \
         probe every {} ms; {}",
        o.lag_rate,
        o.lag_secs,
        o.lag_batch,
        1000.0 * o.lag_batch as f64 / o.lag_rate as f64,
        o.probe_ms,
        if model {
            "MODEL of the proposed indexer loop (commit every 500 ms from the previous commit's start, \
             catch up before each commit, woken by the log's commits, no file watcher)"
        } else {
            "in-process indexer EventLog::start_indexer (500 ms commit, 1 s rescan)"
        }
    );

    let stop = Arc::new(AtomicBool::new(false));
    let behind_max_us = Arc::new(AtomicU64::new(0));
    // RSS sampler.
    let rss_samples = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut v = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                v.push(rss_kib());
                std::thread::sleep(Duration::from_millis(250));
            }
            v
        })
    };
    // Paced appender.
    let th0 = cpu_snap();
    let noise = Noise::start();
    let t_start = Instant::now();
    let appender = {
        let (log, stop, behind) = (log.clone(), stop.clone(), behind_max_us.clone());
        let (rate, batch) = (o.lag_rate, o.lag_batch);
        std::thread::Builder::new()
            .name("bench-appender".into())
            .spawn(move || {
                let mut sent = 0u64;
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let due = t_start + Duration::from_secs_f64(sent as f64 / rate as f64);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    } else {
                        behind.fetch_max((now - due).as_micros() as u64, Ordering::Relaxed);
                    }
                    let events: Vec<Event> = (0..batch).map(|k| make_event(i + k)).collect();
                    i += batch;
                    log.append_batch(events).expect("append_batch");
                    sent += batch;
                }
                sent
            })
            .expect("spawn")
    };
    // Prober: this thread.
    let mut pending: std::collections::VecDeque<(String, Instant)> = Default::default();
    let mut lags: Vec<Duration> = Vec::new();
    let mut k = 0u64;
    let mut next_probe = Instant::now();
    let mut last_gen = u64::MAX;
    let mut seen_gen = u64::MAX;
    let mut reloads: Vec<Instant> = Vec::new();
    let mut last_check = Instant::now();
    let mut polls = 0u64;
    let run_for = Duration::from_secs_f64(o.lag_secs);
    let drain_limit = Duration::from_secs(30);
    let mut appending = true;
    let mut run_secs = 0.0;
    let mut sent = 0u64;
    let mut appender = Some(appender);
    loop {
        let now = Instant::now();
        if appending && now - t_start >= run_for {
            appending = false;
            stop.store(true, Ordering::Relaxed);
            sent = appender.take().expect("once").join().expect("appender");
            run_secs = t_start.elapsed().as_secs_f64();
        }
        if appending && now >= next_probe {
            let rid = format!("probe-{k:06}");
            k += 1;
            let e = Event::new(
                EventType::Custom("bench.probe".into()),
                "prober",
                "lag probe",
            )
            .request_id(rid.clone());
            log.append(e).expect("probe append");
            pending.push_back((rid, Instant::now()));
            next_probe += Duration::from_millis(o.probe_ms);
        }
        // Whenever the indexer's reader moved to a new commit (and every
        // 250 ms regardless), query the oldest pending probe, and the next
        // while they are found. Probes are appended one after the other and
        // a commit covers a prefix of the files, so a probe cannot become
        // searchable before an older one: querying only the oldest keeps the
        // prober's CPU small however long the backlog.
        let g = reader.searcher().generation().generation_id();
        if g != seen_gen {
            // A reload (after a commit) seen while appending: the commit cadence.
            if appending {
                reloads.push(Instant::now());
            }
            seen_gen = g;
        }
        if !pending.is_empty()
            && (g != last_gen || last_check.elapsed() >= Duration::from_millis(250))
        {
            last_gen = g;
            last_check = Instant::now();
            while let Some((rid, at)) = pending.front() {
                polls += 1;
                let r = search
                    .query(&Query {
                        start: all_time(),
                        request_id: Some(rid.clone()),
                        ..Default::default()
                    })
                    .expect("probe query");
                if r.total == 0 || r.events.is_empty() {
                    break;
                }
                lags.push(Instant::now() - *at);
                pending.pop_front();
            }
        }
        if !appending && (pending.is_empty() || t_start.elapsed() > run_for + drain_limit) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let lost = pending.len();
    let threads = thread_cpu_between(&th0, &cpu_snap());
    let wall = t_start.elapsed().as_secs_f64();
    let noise_pct = noise.pct();
    stop.store(true, Ordering::Relaxed);
    let samples = rss_samples.join().expect("rss sampler");
    let (indexed, commits) = handle.counts();
    let t_shut = Instant::now();
    let mut commit_durations = handle.shutdown();
    let shut_s = t_shut.elapsed().as_secs_f64();
    let appended = log.counters().appended.load(Ordering::Relaxed);
    drop(log);

    lags.sort_unstable();
    let (p50, p99, max) = (
        ms(pct(&lags, 50.0)),
        ms(pct(&lags, 99.0)),
        ms(pct(&lags, 100.0)),
    );
    let rate = sent as f64 / run_secs;
    let rss_max = samples.iter().map(|s| s.0).max().unwrap_or(0);
    let anon_max = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let file_max = samples.iter().map(|s| s.2).max().unwrap_or(0);
    let last = samples.last().copied().unwrap_or_default();
    println!(
        "        appended {sent} events in {run_secs:.1} s = {rate:.0} events/s (+{k} probes); \
         appender at most {:.1} ms behind schedule",
        behind_max_us.load(Ordering::Relaxed) as f64 / 1000.0
    );
    println!(
        "        probes {}: lag ms p50 {p50:.0}  p99 {p99:.0}  max {max:.0}; not found within 30 s after the run: {lost}",
        lags.len()
    );
    println!(
        "        indexer: {indexed} documents, {commits} commits by the end of the probes ({appended} appended); \
         shutdown (final commit + merges) {shut_s:.1} s; {polls} probe queries"
    );
    if !commit_durations.is_empty() {
        commit_durations.sort_unstable();
        println!(
            "        model: Indexer::commit took p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            ms(pct(&commit_durations, 50.0)),
            ms(pct(&commit_durations, 99.0)),
            ms(pct(&commit_durations, 100.0))
        );
    }
    println!(
        "        RSS (whole bench process: log, appender, prober, indexer, tantivy writer + merges, mapped index files): \
         max {:.0} MiB (anon max {:.0}, file-backed max {:.0}); before the indexer {:.0} MiB; at the end {:.0} MiB",
        rss_max as f64 / 1024.0,
        anon_max as f64 / 1024.0,
        file_max as f64 / 1024.0,
        rss0.0 as f64 / 1024.0,
        last.0 as f64 / 1024.0
    );
    let mut gaps: Vec<Duration> = reloads.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_unstable();
    println!(
        "        time between reader reloads (commits) while appending, ms: p50 {:.0}  p99 {:.0}  max {:.0} ({} reloads)",
        ms(pct(&gaps, 50.0)),
        ms(pct(&gaps, 99.0)),
        ms(pct(&gaps, 100.0)),
        reloads.len()
    );
    result(
        "lag_commit_gap_p50_ms",
        format!("{:.0}", ms(pct(&gaps, 50.0))),
    );
    result(
        "lag_commit_gap_max_ms",
        format!("{:.0}", ms(pct(&gaps, 100.0))),
    );
    print_threads(&threads, wall);
    println!(
        "        other processes used {noise_pct:.0}% of the machine meanwhile{}",
        noisy(noise_pct)
    );
    result("lag_rate", format!("{rate:.0}"));
    result("lag_probes", lags.len());
    result("lag_lost", lost);
    result("lag_p50_ms", format!("{p50:.0}"));
    result("lag_p99_ms", format!("{p99:.0}"));
    result("lag_max_ms", format!("{max:.0}"));
    result("lag_rss_max_mib", format!("{:.0}", rss_max as f64 / 1024.0));
    result(
        "lag_rss_anon_max_mib",
        format!("{:.0}", anon_max as f64 / 1024.0),
    );
    result(
        "lag_rss_growth_mib",
        format!("{:.0}", rss_max.saturating_sub(rss0.0) as f64 / 1024.0),
    );
    result("lag_other_cpu_pct", format!("{noise_pct:.0}"));
    let rate_ok = rate >= 0.98 * o.lag_rate as f64;
    target(
        &format!(
            "index lag p99 at {} events/s ({} probes)",
            o.lag_rate,
            lags.len()
        ),
        &format!(
            "{p99:.0} ms (p50 {p50:.0}, max {max:.0}{}{})",
            if lost > 0 {
                format!(", {lost} lost")
            } else {
                String::new()
            },
            if rate_ok {
                String::new()
            } else {
                format!(", only {rate:.0}/s appended")
            }
        ),
        "<= 1000 ms",
        p99 <= 1000.0 && lost == 0 && rate_ok && !lags.is_empty(),
        noise_pct,
    );
}
