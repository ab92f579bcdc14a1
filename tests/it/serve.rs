//! A running `evlog serve` on 127.0.0.1 for end-to-end tests, with its
//! standard output and log (standard error) captured as they come, so that a
//! test can grep what the server printed and logged.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::Store;

/// `evlog serve --addr 127.0.0.1:0` on a store, killed on drop if still running.
pub struct Serve {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The admin key a first start printed (empty if the keys file had keys).
    pub admin: String,
    stdout: Arc<Mutex<String>>,
    log: Arc<Mutex<String>>,
}

/// Options of a start.
#[derive(Default)]
pub struct Opts<'a> {
    /// Global flags before `serve` (e.g. `--config FILE`).
    pub args: &'a [&'a str],
    /// Environment variables (e.g. `EVLOG_LOG=trace`).
    pub env: &'a [(&'a str, &'a str)],
}

fn capture(mut from: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => into
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    });
}

impl Serve {
    /// Starts a server with default options.
    pub fn start(store: &Store) -> Serve {
        Serve::start_opts(store, Opts::default())
    }

    /// Starts a server whose config file holds `limits` (TOML lines of
    /// `[server.limits]`, e.g. `"max_streams_per_key = 1"`).
    pub fn with_limits(store: &Store, limits: &str) -> Serve {
        Serve::with_config(store, &format!("[server.limits]\n{limits}\n"))
    }

    /// Starts a server whose config file is `toml`.
    pub fn with_config(store: &Store, toml: &str) -> Serve {
        let config = store.path().with_file_name("evlog.toml");
        std::fs::write(&config, toml).unwrap();
        let config = config.to_str().unwrap().to_string();
        Serve::start_opts(
            store,
            Opts {
                args: &["--config", &config],
                env: &[],
            },
        )
    }

    /// Starts a server; waits until it listens.
    pub fn start_opts(store: &Store, opts: Opts<'_>) -> Serve {
        Serve::start_at(store, opts, "127.0.0.1:0")
    }

    /// Starts a server listening on `addr` (a fixed port lets a restarted
    /// server come back where its clients expect it); waits until it listens.
    pub fn start_at(store: &Store, opts: Opts<'_>, addr: &str) -> Serve {
        let mut cmd = store.cmd();
        cmd.args(opts.args)
            .args(["serve", "--addr", addr])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = Arc::new(Mutex::new(String::new()));
        let log = Arc::new(Mutex::new(String::new()));
        capture(child.stdout.take().unwrap(), stdout.clone());
        // The banner with the address comes on stderr; the rest is the log.
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                log2.lock().unwrap().push_str(&line);
                if let Some(rest) = line.split("on http://").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap().to_string());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "evlog serve did not start:\n{}",
                    log.lock().unwrap().as_str()
                );
            }
        };
        // The key block (on a first start) is printed before the banner.
        let deadline = Instant::now() + Duration::from_secs(10);
        let admin = loop {
            let out = stdout.lock().unwrap().clone();
            if let Some(k) = out.split_whitespace().find(|w| w.starts_with("evk_")) {
                break k.to_string();
            }
            if Instant::now() > deadline {
                break String::new();
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Serve {
            child,
            base: format!("http://{addr}"),
            addr,
            admin,
            stdout,
            log,
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What the server wrote on standard error so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// What the server printed on standard output so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// The server's process id (for /proc/<pid>/status).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL) and waits for it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits for the exit; returns the status and the whole log.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(ok.success());
        let status = self.child.wait().unwrap();
        // The capture threads end with the pipes.
        std::thread::sleep(Duration::from_millis(100));
        (status, self.log())
    }

    /// One raw HTTP/1.1 exchange on a new connection: sends `request`, reads
    /// until the server closes (use `Connection: close`).
    pub fn raw(&self, request: &[u8]) -> String {
        let mut c = TcpStream::connect(&self.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        // The server may answer (and close) before it read everything.
        let _ = c.write_all(request);
        let mut reply = Vec::new();
        let _ = c.read_to_end(&mut reply);
        String::from_utf8_lossy(&reply).into_owned()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A blocking HTTP client with a generous timeout.
pub fn client() -> reqwest::blocking::Client {
    evlog::checkpoint::deliver::install_tls_provider();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A `deploy` event of `user` described as `desc`: the JSON of one event
/// for `POST /events`.
pub fn deploy(user: &str, desc: &str) -> Value {
    json!({"event_type": "deploy", "user_id": user, "action_description": desc, "status": "success"})
}

/// Polls `f` until it returns `Some` (at most 30 s, then fails).
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Waits until the index has caught up with every event on disk.
pub fn caught_up(s: &Serve) {
    let http = client();
    eventually("the index catches up", || {
        let h: Value = http.get(s.url("/health")).send().ok()?.json().ok()?;
        (h["index"]["lag_events"] == 0).then_some(())
    });
}
