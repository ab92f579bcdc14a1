//! Phase 3, `queries`: filter, full-text and stats queries through
//! `IndexSearch` on a large store, each kind run many times with other
//! parameters; p50/p99/max against the goals.

use std::time::{Duration, Instant};

use evlog::index::IndexSearch;

use crate::common::disk::{stored_days, warm_index};
use crate::common::kinds::{Class, kinds, query_days, retain_named, state_kinds};
use crate::common::proc::Noise;
use crate::common::report::{pct, result};
use crate::report::{ms, target};
use crate::store::{query_store, request_ids};
use crate::{Opts, verify};

pub fn bench_queries(o: &Opts) {
    let days = query_days(o.query_events, o.query_days);
    let (store, docs, _tmp) = query_store(o, &days);
    // The day range actually stored (a reused store may have other days).
    let days = stored_days(&store);
    // A serving index is read all day and stays in the page cache; a freshly
    // built or reused one may be partly evicted. Read it once, so that the
    // figures are those of the steady state and not of disk reads.
    let t0 = Instant::now();
    let warm = warm_index(&store);
    println!(
        "        page cache warmed: read {:.2} GB of index files in {:.1} s",
        warm as f64 / 1e9,
        t0.elapsed().as_secs_f64()
    );
    let search = IndexSearch::open(&store).expect("IndexSearch::open");
    assert_eq!(search.num_docs(), docs);
    let mut kinds = kinds(&days, request_ids(&store, docs));
    kinds.extend(state_kinds(&days));
    retain_named(&mut kinds, o.kinds.as_deref());
    let verify = match o.verify.as_str() {
        "yes" => true,
        "no" => false,
        _ => o.query_events <= 1_000_000,
    };
    if verify {
        verify::totals(&store, &search, &kinds);
    }
    println!(
        "        {:<36} {:>6} {:>9} {:>9} {:>9} {:>9} {:>12}  goal",
        "kind (limit 100)", "runs", "first ms", "p50 ms", "p99 ms", "max ms", "mean total"
    );
    let mut summary = Vec::new();
    let phase_noise = Noise::start();
    for kind in &kinds {
        let is_stats = kind.is_stats();
        let run = |k: usize| -> (Duration, u64) {
            let q = (kind.make)(k);
            let t0 = Instant::now();
            let total = if is_stats {
                std::hint::black_box(search.stats(&q).expect("stats")).total
            } else {
                std::hint::black_box(search.query(&q).expect("query")).total
            };
            (t0.elapsed(), total)
        };
        // The first run after `IndexSearch::open` also builds what a
        // searcher caches (the resolved state, for instance): reported apart.
        let mut first = None;
        for k in 0..o.warmup {
            let (d, _) = run(1_000_000 + k);
            first.get_or_insert(d);
        }
        let noise = Noise::start();
        let t0 = Instant::now();
        let mut lat = Vec::with_capacity(o.runs);
        let mut slowest: Vec<(Duration, usize)> = Vec::new();
        let mut totals = 0u64;
        for k in 0..o.runs {
            let (d, total) = run(k);
            lat.push(d);
            slowest.push((d, k));
            totals += total;
            if t0.elapsed().as_secs_f64() > o.max_secs {
                break;
            }
        }
        if std::env::var_os("EVLOG_BENCH_SLOWEST").is_some() {
            slowest.sort_unstable_by(|a, b| b.cmp(a));
            for (d, k) in slowest.iter().take(5) {
                println!(
                    "          slow run {k}: {:.2} ms, {:?}",
                    ms(*d),
                    (kind.make)(*k)
                );
            }
        }
        // Below 2 s the tick counters are too coarse: the phase's share is used.
        let noise_pct = (t0.elapsed() >= Duration::from_secs(2)).then(|| noise.pct());
        lat.sort_unstable();
        let (p50, p99, max) = (
            ms(pct(&lat, 50.0)),
            ms(pct(&lat, 99.0)),
            ms(pct(&lat, 100.0)),
        );
        let goal = match kind.class {
            Class::Filter => Some(10.0),
            Class::Text => Some(20.0),
            Class::Stats => Some(100.0),
            Class::Info => None,
        };
        println!(
            "        {:<36} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>12.0}  {}{}",
            kind.name,
            lat.len(),
            first.map_or(f64::NAN, ms),
            p50,
            p99,
            max,
            totals as f64 / lat.len() as f64,
            goal.map_or("-".into(), |g| format!("p99 <= {g:.0} ms")),
            match noise_pct {
                Some(n) if n > 10.0 => format!("  NOISY ({n:.0}% other load)"),
                _ => String::new(),
            }
        );
        let key = kind.key();
        result(&format!("q_{key}_p50_ms"), format!("{p50:.2}"));
        result(&format!("q_{key}_p99_ms"), format!("{p99:.2}"));
        result(&format!("q_{key}_max_ms"), format!("{max:.2}"));
        result(&format!("q_{key}_runs"), lat.len());
        if let Some(f) = first {
            result(&format!("q_{key}_first_ms"), format!("{:.2}", ms(f)));
        }
        if let Some(g) = goal {
            summary.push((kind.name, p50, p99, max, g, lat.len(), noise_pct));
        }
    }
    let phase_pct = phase_noise.report("q_measure");
    for (name, p50, p99, max, g, n, noise_pct) in summary {
        let noise_pct: Option<f64> = noise_pct;
        target(
            &format!("query p99, {name} ({n} runs)"),
            &format!("{p99:.2} ms (p50 {p50:.2}, max {max:.2})"),
            &format!("<= {g:.0} ms"),
            p99 <= g,
            noise_pct.unwrap_or(phase_pct),
        );
    }
}
