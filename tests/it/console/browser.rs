//! Headless Chromium driven over WebDriver (thirtyfour): the test starts its
//! own `chromedriver` on a free port (and ends it), one browser per test with
//! a fresh profile and download directory, browser-log capture
//! (`goog:loggingPrefs`), and finders by label and visible text.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use thirtyfour::prelude::*;
use thirtyfour::{ChromiumLikeCapabilities, LoggingPrefsLogLevel};

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

/// A headless Chromium session on its own chromedriver.
pub struct Browser {
    pub driver: WebDriver,
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

impl Browser {
    /// Starts chromedriver and a headless Chromium (1280×900 window) for the
    /// console at `base`. Fails, naming the packages, when either is missing.
    pub async fn start(base: &str) -> Browser {
        let port = free_port();
        let chromedriver = Command::new("chromedriver")
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
        let profile = tempfile::tempdir().unwrap();
        let downloads = tempfile::tempdir().unwrap();
        let mut caps = DesiredCapabilities::chrome();
        for arg in [
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
            &format!("--user-data-dir={}", profile.path().display()),
        ] {
            caps.add_arg(arg).unwrap();
        }
        caps.add_experimental_option(
            "prefs",
            json!({
                "download.default_directory": downloads.path(),
                "download.prompt_for_download": false,
            }),
        )
        .unwrap();
        caps.set_browser_log_level(LoggingPrefsLogLevel::All)
            .unwrap();
        let mut chromedriver = chromedriver;
        let driver = match WebDriver::new(&url, caps).await {
            Ok(d) => d,
            Err(e) => {
                let _ = chromedriver.kill();
                panic!("chromedriver could not start Chromium ({e}): {INSTALL}");
            }
        };
        let b = Browser {
            driver,
            chromedriver,
            _profile: profile,
            downloads,
            base: base.to_string(),
        };
        // Downloads without a prompt, into our directory (headless Chromium
        // takes this from the DevTools protocol).
        b.cdp(
            "Browser.setDownloadBehavior",
            json!({ "behavior": "allow", "downloadPath": b.downloads.path() }),
        )
        .await;
        b
    }

    /// Runs a DevTools protocol command.
    pub async fn cdp(&self, method: &str, params: Value) -> Value {
        self.driver.cdp().send_raw(method, params).await.unwrap()
    }

    /// Opens `path` (e.g. `/?range=all`) of the console.
    pub async fn goto(&self, path: &str) {
        self.driver
            .goto(format!("{}{path}", self.base))
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
        self.driver
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
            .convert()
            .unwrap()
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

    /// The element whose XPath is `xpath`, waiting for it to appear.
    pub async fn xpath(&self, xpath: &str) -> WebElement {
        let what = format!("an element {xpath}");
        self.wait(&what, || async {
            let found = self.driver.find_all(By::XPath(xpath)).await.ok()?;
            found.into_iter().next()
        })
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
        !self
            .driver
            .find_all(By::XPath(xpath))
            .await
            .unwrap()
            .is_empty()
    }

    /// The form control labelled `label` (by `<label for>`, or the control
    /// inside the `<label>`).
    pub async fn control(&self, label: &str) -> WebElement {
        let l = self
            .xpath(&format!("//label[normalize-space(.)={}]", lit(label)))
            .await;
        match l.attr("for").await.unwrap() {
            Some(id) => self.driver.find(By::Id(&id)).await.unwrap(),
            None => l.find(By::XPath(".//input|.//select")).await.unwrap(),
        }
    }

    /// The button whose visible text is `text`.
    pub async fn button(&self, text: &str) -> WebElement {
        self.xpath(&format!("//button[normalize-space(.)={}]", lit(text)))
            .await
    }

    /// The link whose visible text is `text`.
    pub async fn link(&self, text: &str) -> WebElement {
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
        c.send_keys(Key::Enter).await.unwrap();
    }

    /// Picks the option with text `option` in the list labelled `label`.
    pub async fn choose(&self, label: &str, option: &str) {
        let s = self.control(label).await;
        let o = s
            .find(By::XPath(format!(
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
        self.driver
            .browser_log()
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.level == "SEVERE")
            .map(|e| e.message)
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
        let png = self.driver.screenshot_as_png().await.unwrap();
        std::fs::write(&path, png).unwrap();
        path
    }

    /// The download directory.
    pub fn downloads(&self) -> &Path {
        self.downloads.path()
    }

    /// Ends the session (closing Chromium), then chromedriver.
    pub async fn quit(mut self) {
        let driver = self.driver.clone();
        let _ = driver.quit().await;
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
