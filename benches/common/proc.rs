//! What `/proc` tells about this process and the machine: CPU time (the
//! machine's, a process's, each of this process's threads'), resident
//! memory, page faults, and how much of the machine other processes used
//! during a phase. Where `/proc` is missing, the figures are 0.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::report::result;

/// CPU time so far, in clock ticks (USER_HZ = 100): (all CPUs busy, this process).
pub fn cpu_ticks() -> (u64, u64) {
    let busy = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let f: Vec<u64> = s
                .lines()
                .next()?
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal
            Some(f[0] + f[1] + f[2] + f[5] + f[6] + f.get(7).copied().unwrap_or(0))
        })
        .unwrap_or(0);
    (busy, own_ticks())
}

/// utime + stime of this process, in ticks.
pub fn own_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| stat_ticks(&s))
        .unwrap_or(0)
}

/// utime + stime from a `/proc/.../stat` line: after the command name (in
/// parentheses) come the state (field 3), …, utime (field 14) and stime
/// (field 15), in clock ticks.
pub fn stat_ticks(s: &str) -> Option<u64> {
    let f: Vec<&str> = s[s.rfind(')')? + 2..].split(' ').collect();
    Some(f[11].parse::<u64>().ok()? + f[12].parse::<u64>().ok()?)
}

/// CPU seconds (user + system) process `pid` has used so far.
pub fn process_cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    let ticks = stat_ticks(&stat).expect("utime and stime in /proc/PID/stat");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ticks as f64 / hz as f64
}

/// Minor page faults of the calling thread so far.
pub fn minor_faults() -> u64 {
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the `(comm)`: state is field 3, minflt is field 10.
            let rest = &s[s.rfind(')')? + 2..];
            rest.split(' ').nth(7)?.parse().ok()
        })
        .unwrap_or(0)
}

/// How much CPU other processes used during a phase: a busy machine
/// (another build or benchmark, a test suite) makes every figure worse.
pub struct Noise {
    start: (u64, u64),
    t0: Instant,
}

impl Noise {
    pub fn start() -> Noise {
        Noise {
            start: cpu_ticks(),
            t0: Instant::now(),
        }
    }

    /// CPU seconds used by other processes since `start`, and their share
    /// of the machine (%).
    pub fn other(&self) -> (f64, f64) {
        let (busy, own) = cpu_ticks();
        let other = (busy - self.start.0).saturating_sub(own - self.start.1) as f64 / 100.0;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let pct = 100.0 * other / (self.t0.elapsed().as_secs_f64() * cpus).max(1e-9);
        (other, pct)
    }

    /// Share of the machine (%) used by other processes since `start`.
    pub fn pct(&self) -> f64 {
        self.other().1
    }

    /// Prints the share and `RESULT {phase}_other_cpu_pct`; returns the share.
    pub fn report(&self, phase: &str) -> f64 {
        let pct = self.pct();
        println!(
            "        other processes used {pct:.0}% of the machine meanwhile{}",
            noisy(pct)
        );
        result(&format!("{phase}_other_cpu_pct"), format!("{pct:.0}"));
        pct
    }
}

/// The mark after a share of the machine that spoils the figures (> 10%).
pub fn noisy(pct: f64) -> &'static str {
    if pct > 10.0 { "  <-- NOISY" } else { "" }
}

/// CPU ticks of each live thread of this process: tid → (name, ticks).
fn thread_ticks() -> HashMap<u64, (String, u64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) else {
            continue;
        };
        let Ok(s) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let name = s
            .find('(')
            .zip(s.rfind(')'))
            .map(|(a, b)| s[a + 1..b].to_string())
            .unwrap_or_default();
        if let Some(t) = stat_ticks(&s) {
            out.insert(tid, (name, t));
        }
    }
    out
}

/// A snapshot of the process's CPU: its total and each live thread's.
pub struct CpuSnap {
    total: u64,
    threads: HashMap<u64, (String, u64)>,
}

pub fn cpu_snap() -> CpuSnap {
    CpuSnap {
        total: own_ticks(),
        threads: thread_ticks(),
    }
}

/// CPU seconds per thread name (digits stripped) between two snapshots,
/// largest first. Threads that ended in between (tantivy's indexing worker
/// ends at each commit) are counted together as `(ended threads)`.
pub fn thread_cpu_between(a: &CpuSnap, b: &CpuSnap) -> Vec<(String, f64)> {
    let mut by: BTreeMap<String, u64> = BTreeMap::new();
    let mut live = 0u64;
    for (tid, (name, t1)) in &b.threads {
        let t0 = a.threads.get(tid).map_or(0, |x| x.1);
        let key = if *tid == u64::from(std::process::id()) {
            "main".to_string()
        } else {
            name.trim_end_matches(|c: char| c.is_ascii_digit())
                .to_string()
        };
        *by.entry(key).or_default() += t1.saturating_sub(t0);
        live += t1.saturating_sub(t0);
    }
    let ended = b.total.saturating_sub(a.total).saturating_sub(live);
    *by.entry("(ended threads)".into()).or_default() += ended;
    let mut v: Vec<(String, f64)> = by
        .into_iter()
        .filter(|(_, t)| *t > 0)
        .map(|(n, t)| (n, t as f64 / 100.0))
        .collect();
    v.sort_by(|x, y| y.1.total_cmp(&x.1));
    v
}

/// Prints [`thread_cpu_between`]'s figures, each also as a share of `wall` seconds.
pub fn print_threads(v: &[(String, f64)], wall: f64) {
    let s: Vec<String> = v
        .iter()
        .map(|(n, t)| format!("{n} {t:.1} s ({:.0}%)", 100.0 * t / wall.max(1e-9)))
        .collect();
    println!("        CPU by thread: {}", s.join(", "));
}

/// (VmRSS, RssAnon, RssFile) of this process, in KiB.
pub fn rss_kib() -> (u64, u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("RssAnon:"), field("RssFile:"))
}

/// Waits until this process has been idle (background merges done) for
/// 500 ms, at most `limit`. Returns (seconds waited, CPU seconds used meanwhile).
pub fn settle(limit: Duration) -> (f64, f64) {
    let t0 = Instant::now();
    let c0 = own_ticks();
    let mut last = c0;
    while t0.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(500));
        let now = own_ticks();
        if now - last <= 2 {
            break;
        }
        last = now;
    }
    (
        t0.elapsed().as_secs_f64(),
        (own_ticks() - c0) as f64 / 100.0,
    )
}
