//! Headless Chromium driven over WebDriver (fantoccini): the test starts its
//! own `chromedriver` on a free port (and ends it), one browser per test with
//! a fresh profile and download directory, browser-log capture
//! (`goog:loggingPrefs`), DevTools commands through chromedriver, and
//! finders by label and visible text.
//!
//! (Not thirtyfour: it turns on serde_json's `preserve_order`, and features
//! unify across a test build, so the `evlog` under test would write metadata
//! keys in another order than the one shipped.)

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// What to install when Chromium or its driver is missing.
const INSTALL: &str = "install Chromium and its WebDriver: `apt-get install -y chromium chromium-driver` (.ci/run does this)";

/// How long a wait for the page lasts before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Where the test run saves its screenshots (printed by the tests).
pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A chromedriver command outside the W3C set (`POST /session/{id}/<path>`).
#[derive(Debug)]
struct Extension {
    path: &'static str,
    body: Value,
}

impl WebDriverCompatibleCommand for Extension {
    fn endpoint(
        &self,
        base: &reqwest::Url,
        session: Option<&str>,
    ) -> Result<reqwest::Url, url_error::ParseError> {
        base.join(&format!("session/{}/{}", session.unwrap_or(""), self.path))
    }

    fn method_and_body(&self, _: &reqwest::Url) -> (warp::http::Method, Option<String>) {
        (warp::http::Method::POST, Some(self.body.to_string()))
    }
}

/// The URL crate's error type, as the trait names it.
mod url_error {
    pub type ParseError = <reqwest::Url as std::str::FromStr>::Err;
}

/// A headless Chromium session on its own chromedriver.
pub struct Browser {
    pub client: Client,
    chromedriver: Child,
    _profile: tempfile::TempDir,
    downloads: tempfile::TempDir,
    /// The console's origin, `http://127.0.0.1:PORT`.
    pub base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The capabilities of a headless Chromium with a fresh profile.
pub fn chrome_capabilities(
    profile: &Path,
    downloads: Option<&Path>,
) -> serde_json::Map<String, Value> {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        &format!("--user-data-dir={}", profile.display()),
    ];
    let mut options = json!({ "args": args });
    if let Some(d) = downloads {
        options["prefs"] = json!({
            "download.default_directory": d,
            "download.prompt_for_download": false,
        });
    }
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": options,
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    caps.as_object().unwrap().clone()
}

/// Starts chromedriver on a free port, in its own process group; returns it
/// and its URL once it listens. Fails naming the packages when it is missing.
pub async fn chromedriver() -> (Child, String) {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so that Drop can end it and the browser it started.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run chromedriver ({e}): {INSTALL}"));
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + PATIENCE;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen on {url}: {INSTALL}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, url)
}

/// A WebDriver session on the chromedriver at `url` with `caps`.
pub async fn session(url: &str, caps: serde_json::Map<String, Value>) -> Result<Client, String> {
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(url)
        .await
        .map_err(|e| e.to_string())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium (1280×900 window) for the
    /// console at `base`. Fails, naming the packages, when either is missing.
    pub async fn start(base: &str) -> Browser {
        let (mut chromedriver, url) = chromedriver().await;
        let profile = tempfile::tempdir().unwrap();
        let downloads = tempfile::tempdir().unwrap();
        let caps = chrome_capabilities(profile.path(), Some(downloads.path()));
        let client = match session(&url, caps).await {
            Ok(c) => c,
            Err(e) => {
                let _ = chromedriver.kill();
                panic!("chromedriver could not start Chromium ({e}): {INSTALL}");
            }
        };
        let b = Browser {
            client,
            chromedriver,
            _profile: profile,
            downloads,
            base: base.to_string(),
        };
        // Downloads without a prompt, into our directory.
        b.cdp(
            "Browser.setDownloadBehavior",
            json!({ "behavior": "allow", "downloadPath": b.downloads.path() }),
        )
        .await;
        b
    }

    /// Runs a DevTools protocol command (through chromedriver).
    pub async fn cdp(&self, method: &str, params: Value) -> Value {
        cdp(&self.client, method, params).await
    }

    /// Opens `path` (e.g. `/?range=all`) of the console.
    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    /// The path and query of the current page.
    pub async fn location(&self) -> String {
        self.js("return location.pathname + location.search", vec![])
            .await
    }

    /// Runs `script` (with `arguments`) and converts its result.
    pub async fn js<T: DeserializeOwned>(&self, script: &str, args: Vec<Value>) -> T {
        let v = self
            .client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"));
        serde_json::from_value(v).unwrap()
    }

    /// Runs `script` asynchronously: it ends by calling its last argument.
    pub async fn js_async<T: DeserializeOwned>(&self, script: &str) -> T {
        let v = self
            .client
            .execute_async(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"));
        serde_json::from_value(v).unwrap()
    }

    /// Waits (up to [`PATIENCE`]) until `f` gives `Some`; fails naming `what`.
    pub async fn wait<T, F, Fut>(&self, what: &str, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(v) = f().await {
                return v;
            }
            if Instant::now() > deadline {
                let shot = self.screenshot("timeout").await;
                panic!("gave up waiting: {what} (screenshot {})", shot.display());
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }

    /// Every element matching `xpath` now.
    pub async fn all(&self, xpath: &str) -> Vec<Element> {
        self.client.find_all(Locator::XPath(xpath)).await.unwrap()
    }

    /// The element whose XPath is `xpath`, waiting for it to appear.
    pub async fn xpath(&self, xpath: &str) -> Element {
        let what = format!("an element {xpath}");
        self.wait(&what, || async { self.all(xpath).await.into_iter().next() })
            .await
    }

    /// The text of the first element matching `xpath` now (read in one step
    /// in the page, so that a re-rendered element is never stale).
    pub async fn text_of(&self, xpath: &str) -> Option<String> {
        self.js(
            "const n = document.evaluate(arguments[0], document, null, XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue;
             return n ? n.innerText : null",
            vec![json!(xpath)],
        )
        .await
    }

    /// Whether any element matches `xpath` now.
    pub async fn exists(&self, xpath: &str) -> bool {
        !self.all(xpath).await.is_empty()
    }

    /// The element that has the keyboard focus.
    pub async fn focused(&self) -> Element {
        self.client.active_element().await.unwrap()
    }

    /// The form control labelled `label` (by `<label for>`, or the control
    /// inside the `<label>`).
    pub async fn control(&self, label: &str) -> Element {
        let l = self
            .xpath(&format!("//label[normalize-space(.)={}]", lit(label)))
            .await;
        match l.attr("for").await.unwrap() {
            Some(id) => self.client.find(Locator::Id(&id)).await.unwrap(),
            None => l.find(Locator::XPath(".//input|.//select")).await.unwrap(),
        }
    }

    /// The button whose visible text is `text`.
    pub async fn button(&self, text: &str) -> Element {
        self.xpath(&format!("//button[normalize-space(.)={}]", lit(text)))
            .await
    }

    /// The link whose visible text is `text`.
    pub async fn link(&self, text: &str) -> Element {
        self.xpath(&format!("//a[normalize-space(.)={}]", lit(text)))
            .await
    }

    /// Types `value` into the field labelled `label` (replacing what it
    /// held) and presses Enter.
    pub async fn enter(&self, label: &str, value: &str) {
        let c = self.control(label).await;
        c.clear().await.unwrap();
        if !value.is_empty() {
            c.send_keys(value).await.unwrap();
        }
        press(&c, Key::Enter).await;
    }

    /// Picks the option with text `option` in the list labelled `label`.
    pub async fn choose(&self, label: &str, option: &str) {
        let s = self.control(label).await;
        let o = s
            .find(Locator::XPath(&format!(
                ".//option[normalize-space(.)={}]",
                lit(option)
            )))
            .await
            .unwrap_or_else(|_| panic!("no option {option:?} in {label:?}"));
        o.click().await.unwrap();
    }

    /// Whether `text` shows anywhere on the page.
    pub async fn shows(&self, text: &str) -> bool {
        let body: String = self.js("return document.body.innerText", vec![]).await;
        body.contains(text)
    }

    /// Drains the browser log; returns the entries at level SEVERE.
    pub async fn severe_log(&self) -> Vec<String> {
        let v = self
            .client
            .issue_cmd(Extension {
                path: "se/log",
                body: json!({ "type": "browser" }),
            })
            .await
            .unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// Fails on any error in the browser's console since the last call,
    /// except those containing one of `expected` (e.g. the 401 of a wrong key).
    pub async fn assert_no_errors(&self, expected: &[&str]) {
        let errors: Vec<String> = self
            .severe_log()
            .await
            .into_iter()
            .filter(|m| !expected.iter().any(|x| m.contains(x)))
            .collect();
        assert!(
            errors.is_empty(),
            "errors in the browser console: {errors:#?}"
        );
    }

    /// Sets the viewport (CSS pixels) and the colour scheme the page sees.
    pub async fn emulate(&self, width: u32, height: u32, dark: bool) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600 }),
        )
        .await;
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-color-scheme", "value": if dark { "dark" } else { "light" } }] }),
        )
        .await;
    }

    /// Saves a screenshot as `<screenshot_dir>/<name>.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let path = screenshot_dir().join(format!("{name}.png"));
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(&path, png).unwrap();
        path
    }

    /// The download directory.
    pub fn downloads(&self) -> &Path {
        self.downloads.path()
    }

    /// Ends the session (closing Chromium), then chromedriver.
    pub async fn quit(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.chromedriver.kill();
        let _ = self.chromedriver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failed test does not reach quit(): end chromedriver's process
        // group (it and the Chromium it started) by its id.
        if let Ok(None) = self.chromedriver.try_wait() {
            let pgid = self.chromedriver.id() as i32;
            // SAFETY: kill(2) with a negative id signals that process group only.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
            let _ = self.chromedriver.wait();
        }
    }
}

/// Runs a DevTools protocol command through chromedriver.
pub async fn cdp(client: &Client, method: &str, params: Value) -> Value {
    client
        .issue_cmd(Extension {
            path: "goog/cdp/execute",
            body: json!({ "cmd": method, "params": params }),
        })
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

/// Presses `key` on `element`.
pub async fn press(element: &Element, key: Key) {
    element.send_keys(&key.to_string()).await.unwrap();
}

/// `s` as an XPath string literal.
pub fn lit(s: &str) -> String {
    if !s.contains('\'') {
        format!("'{s}'")
    } else if !s.contains('"') {
        format!("\"{s}\"")
    } else {
        let parts: Vec<String> = s.split('\'').map(|p| format!("'{p}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}
