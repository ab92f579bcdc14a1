//! Console timings in headless Chromium against `evlog serve` over a store
//! of 10M events (issue 13, item 12). A plain `main` (harness = false), run
//! by `scripts/bench-console.sh`, which builds the store with
//! the index bench (`benches/index/`) and the release binary first.
//!
//! 1. Starts `evlog serve` (the given binary) on the store with a fresh
//!    admin key, waits for the index to catch up, starts chromedriver and a
//!    headless Chromium, signs in through the form.
//! 2. First view: the browser cache cleared (DevTools
//!    `Network.clearBrowserCache`), `/` is loaded; the bytes of the page and
//!    its files come from Resource Timing (`transferSize`: headers and
//!    compressed bodies; `encodedBodySize`: bodies).
//! 3. Navigation: `/` (the default view: last 7 days, 50 a page) loaded N
//!    times, with a cleared cache and with a warm one (then every file is a
//!    304); each run's time is the app's User Timing measure
//!    `evlog:nav-to-first-results` (navigation start → the first page of
//!    events painted).
//! 4. Filter changes: M changes made through the form as a person would
//!    (status, level, user, full text, time range, event type and back);
//!    each run's time is `evlog:filter-to-results` (the change → its results
//!    painted).
//!
//! Options (`--name value`, or `EVLOG_BENCH_<NAME>`): `--evlog PATH`
//! (required), `--store DIR` (required), `--nav-runs 40`, `--filter-runs 120`,
//! `--warmup 5`.
//!
//! Prints the figures, `RESULT name=value` lines and one
//! `TARGET|label|measured|goal|PASS or FAIL` line per target.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use common::flags::Flags;
use common::report::pct;
use common::serve::Server;

struct Opts {
    evlog: String,
    store: String,
    nav_runs: usize,
    filter_runs: usize,
    warmup: usize,
}

impl Opts {
    fn parse() -> Opts {
        let f = Flags::parse();
        Opts {
            evlog: f
                .get("evlog")
                .expect("--evlog PATH (the release evlog binary)"),
            store: f.get("store").expect("--store DIR (a store with an index)"),
            nav_runs: f.num("nav-runs", 40),
            filter_runs: f.num("filter-runs", 120),
            warmup: f.num("warmup", 5),
        }
    }
}

/// `evlog serve` on the store with a fresh admin key: (the server, the key).
fn start_server(o: &Opts) -> (Server, String) {
    let out = Command::new(&o.evlog)
        .args([
            "--storage",
            &o.store,
            "keys",
            "add",
            "--role",
            "admin",
            "--user",
            "bench",
        ])
        .output()
        .expect("running evlog keys add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut cmd = Command::new(&o.evlog);
    cmd.args(["--storage", &o.store, "serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::null());
    (Server::start(cmd), key)
}

async fn caught_up(base: &str) {
    evlog::checkpoint::deliver::install_tls_provider();
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{base}/health")).send().await
            && let Ok(h) = r.json::<Value>().await
            && h["index"]["lag_events"] == 0
        {
            println!(
                "index caught up ({} documents) after {:.1} s",
                h["index"]["documents"],
                t0.elapsed().as_secs_f64()
            );
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(1800),
            "the index did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct Chrome {
    client: Client,
    chromedriver: Child,
    _profile: tempfile::TempDir,
}

/// chromedriver's DevTools command (`POST /session/{id}/goog/cdp/execute`).
#[derive(Debug)]
struct Cdp(Value);

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &reqwest::Url,
        session: Option<&str>,
    ) -> Result<reqwest::Url, <reqwest::Url as std::str::FromStr>::Err> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or("")
        ))
    }

    fn method_and_body(&self, _: &reqwest::Url) -> (warp::http::Method, Option<String>) {
        (warp::http::Method::POST, Some(self.0.to_string()))
    }
}

async fn start_chrome() -> Chrome {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let chromedriver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver: apt-get install -y chromium chromium-driver");
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let profile = tempfile::tempdir().unwrap();
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
            format!("--user-data-dir={}", profile.path().display()),
        ]},
    });
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps.as_object().unwrap().clone())
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("starting Chromium");
    Chrome {
        client,
        chromedriver,
        _profile: profile,
    }
}

async fn js<T: serde::de::DeserializeOwned>(d: &Client, script: &str) -> T {
    serde_json::from_value(d.execute(script, vec![]).await.unwrap()).unwrap()
}

/// Waits until the page has `n` measures named `name`; returns the last one's duration.
async fn measure(d: &Client, name: &str, n: usize) -> f64 {
    let script =
        format!("return performance.getEntriesByName('{name}', 'measure').map(m => m.duration)");
    let t0 = Instant::now();
    loop {
        let v: Vec<f64> = js(d, &script).await;
        if v.len() >= n {
            return *v.last().unwrap();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no measure {name} #{n} after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn summary(label: &str, v: &[f64]) -> (f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let (p50, p95) = (pct(&s, 50.0), pct(&s, 95.0));
    println!(
        "  {label:<44} runs {:>4}  p50 {p50:>7.1} ms  p95 {p95:>7.1} ms  max {:>7.1} ms",
        v.len(),
        pct(&s, 100.0)
    );
    (p50, p95)
}

async fn navigate(d: &Client, base: &str, cold: bool) -> f64 {
    if cold {
        d.issue_cmd(Cdp(
            json!({"cmd": "Network.clearBrowserCache", "params": {}}),
        ))
        .await
        .unwrap();
    }
    d.goto(&format!("{base}/")).await.unwrap();
    measure(d, "evlog:nav-to-first-results", 1).await
}

/// The form control labelled `label`.
async fn control(d: &Client, label: &str) -> Element {
    let l = d
        .find(Locator::XPath(&format!(
            "//label[normalize-space(.)='{label}']"
        )))
        .await
        .unwrap();
    let id = l.attr("for").await.unwrap().unwrap();
    d.find(Locator::Id(&id)).await.unwrap()
}

async fn choose(d: &Client, label: &str, option: &str) {
    control(d, label)
        .await
        .find(Locator::XPath(&format!(
            ".//option[normalize-space(.)='{option}']"
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn enter(d: &Client, label: &str, value: &str) {
    let c = control(d, label).await;
    c.clear().await.unwrap();
    if !value.is_empty() {
        c.send_keys(value).await.unwrap();
    }
    c.send_keys(&Key::Enter.to_string()).await.unwrap();
}

async fn toggle_type(d: &Client, name: &str) {
    let summary = d.find(Locator::Id("types-summary")).await.unwrap();
    let open: bool = js(
        d,
        "return document.getElementById('types-summary').parentElement.open",
    )
    .await;
    if !open {
        summary.click().await.unwrap();
    }
    let x = format!(
        "//*[@aria-label='Event types']//label[starts-with(normalize-space(.), '{name} (')]//input"
    );
    let t0 = Instant::now();
    let boxes = loop {
        let found = d.find_all(Locator::XPath(&x)).await.unwrap();
        if !found.is_empty() {
            break found;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the type list did not load"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    boxes[0].click().await.unwrap();
}

/// One filter change (the `i`-th of a cycle that returns to the defaults);
/// returns its kind.
async fn change(d: &Client, i: usize) -> &'static str {
    match i % 12 {
        0 => choose(d, "Status", "failure").await,
        1 => choose(d, "Status", "Any").await,
        2 => choose(d, "Level", "error").await,
        3 => choose(d, "Level", "Any").await,
        4 => enter(d, "User", &format!("user-{}", 1 + (i / 12) % 199)).await,
        5 => enter(d, "User", "").await,
        6 => enter(d, "Search", "orders").await,
        7 => enter(d, "Search", "").await,
        8 => choose(d, "Time range", "Last 24 hours").await,
        9 => choose(d, "Time range", "Last 7 days").await,
        10 => toggle_type(d, "commit").await,
        _ => toggle_type(d, "commit").await,
    }
    [
        "status",
        "status",
        "level",
        "level",
        "user",
        "user",
        "full text",
        "full text",
        "range",
        "range",
        "type",
        "type",
    ][i % 12]
}

async fn run(o: Opts) {
    let (server, key) = start_server(&o);
    let base = format!("http://{}", server.addr);
    caught_up(&base).await;
    let chrome = start_chrome().await;
    let d = &chrome.client;

    // Sign in through the form.
    d.goto(&format!("{base}/")).await.unwrap();
    enter(d, "API key", &key).await;
    measure(d, "evlog:nav-to-first-results", 1).await;
    let first: Value = js(d, "return [document.body.innerText.match(/Page 1 of [0-9,]+/)?.[0], document.body.innerText.match(/[0-9,]+ events/)?.[0]]").await;
    println!("first view shows {first}");

    // The bytes of a first view (nothing cached).
    navigate(d, &base, true).await;
    let bytes: Value = js(
        d,
        "const n = performance.getEntriesByType('navigation')[0];
         const files = performance.getEntriesByType('resource').filter(r => new URL(r.name).pathname.startsWith('/ui/'));
         const api = performance.getEntriesByType('resource').filter(r => !new URL(r.name).pathname.startsWith('/ui/'));
         const sum = (l, k) => l.reduce((a, r) => a + r[k], 0);
         return {files: files.length + 1, transfer: n.transferSize + sum(files, 'transferSize'),
                 encoded: n.encodedBodySize + sum(files, 'encodedBodySize'),
                 decoded: n.decodedBodySize + sum(files, 'decodedBodySize'),
                 api_transfer: sum(api, 'transferSize'), api: api.map(r => new URL(r.name).pathname)}",
    )
    .await;
    println!("first view (cache cleared): {bytes}");
    let transfer_kb = bytes["transfer"].as_f64().unwrap() / 1024.0;

    // Navigation, cold and warm cache.
    for _ in 0..o.warmup {
        navigate(d, &base, false).await;
    }
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..o.nav_runs {
        cold.push(navigate(d, &base, true).await);
        warm.push(navigate(d, &base, false).await);
    }

    // Filter changes on the default view.
    navigate(d, &base, false).await;
    for i in 0..o.warmup * 12 {
        let n: usize = js(
            d,
            "return performance.getEntriesByName('evlog:filter-to-results', 'measure').length",
        )
        .await;
        change(d, i).await;
        measure(d, "evlog:filter-to-results", n + 1).await;
    }
    let mut all = Vec::new();
    let mut by_kind: Vec<(&str, Vec<f64>)> = Vec::new();
    for i in 0..o.filter_runs {
        let n: usize = js(
            d,
            "return performance.getEntriesByName('evlog:filter-to-results', 'measure').length",
        )
        .await;
        let kind = change(d, i).await;
        let ms = measure(d, "evlog:filter-to-results", n + 1).await;
        all.push(ms);
        match by_kind.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, v)) => v.push(ms),
            None => by_kind.push((kind, vec![ms])),
        }
    }

    println!("\nresults (User Timing measures of the console, ms)");
    let (_, cold95) = summary("navigation → first page (cache cleared)", &cold);
    let (warm50, warm95) = summary("navigation → first page (warm cache)", &warm);
    let (f50, f95) = summary("filter change → results (all kinds)", &all);
    for (k, v) in &by_kind {
        summary(&format!("  filter change: {k}"), v);
    }
    println!("RESULT nav_cold_p95_ms={cold95:.1}");
    println!("RESULT nav_warm_p50_ms={warm50:.1}");
    println!("RESULT nav_warm_p95_ms={warm95:.1}");
    println!("RESULT filter_p50_ms={f50:.1}");
    println!("RESULT filter_p95_ms={f95:.1}");
    println!("RESULT first_view_kb={transfer_kb:.1}");
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let worst_nav = cold95.max(warm95);
    println!(
        "TARGET|navigation → first page p95 (worse of cold, warm)|{worst_nav:.0} ms|<= 300 ms|{}",
        verdict(worst_nav <= 300.0)
    );
    println!(
        "TARGET|filter change → results p95|{f95:.0} ms|<= 150 ms|{}",
        verdict(f95 <= 150.0)
    );
    println!(
        "TARGET|first view, files transferred (compressed)|{transfer_kb:.1} KB|<= 100 KB|{}",
        verdict(transfer_kb <= 100.0)
    );

    let mut chrome = chrome;
    let _ = chrome.client.clone().close().await;
    let _ = chrome.chromedriver.kill();
    let _ = chrome.chromedriver.wait();
    drop(server);
}

fn main() {
    let o = Opts::parse();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(o));
}
