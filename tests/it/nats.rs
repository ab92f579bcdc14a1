//! Real `nats-server` processes for the replication tests: one server or a
//! three-node cluster, JetStream on, on free loopback ports, their data in
//! a temporary directory; killed on drop. A missing `nats-server` fails the
//! test with how to install it.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `nats-server` binary, or a failure saying how to get it.
fn binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "nats-server not found (PATH, /usr/sbin): the replication tests run a real NATS \
             server. Install it: `apt-get install -y nats-server` (.ci/run does)"
        )
    })
}

/// The flags of a JetStream server on 127.0.0.1:`port`, its store in `sd`.
fn jetstream_args(port: u16, sd: &Path) -> Vec<String> {
    vec![
        "-js".into(),
        "-a".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-sd".into(),
        sd.display().to_string(),
    ]
}

/// One `nats-server` with JetStream.
pub struct NatsServer {
    child: Option<Child>,
    /// Client port on 127.0.0.1.
    pub port: u16,
    args: Vec<String>,
    log: PathBuf,
}

/// Attempts at a start on fresh free ports: a port found free can be taken
/// by another test's server before nats-server binds it.
const ATTEMPTS: usize = 5;

impl NatsServer {
    fn new(args: Vec<String>, port: u16, log: PathBuf) -> NatsServer {
        NatsServer {
            child: None,
            port,
            args,
            log,
        }
    }

    /// One server, its store under `dir`.
    pub fn single(dir: &Path) -> NatsServer {
        NatsServer::single_with(dir, &[])
    }

    /// One server with these flags too (e.g. `--user U --pass P`).
    pub fn single_with(dir: &Path, extra: &[&str]) -> NatsServer {
        for _ in 0..ATTEMPTS {
            let port = free_port();
            let sd = dir.join(format!("nats-{port}"));
            let mut args = jetstream_args(port, &sd);
            args.extend(extra.iter().map(|a| a.to_string()));
            let mut s = NatsServer::new(args, port, dir.join(format!("nats-{port}.log")));
            if s.try_start() {
                return s;
            }
        }
        panic!(
            "nats-server did not start in {ATTEMPTS} attempts (logs in {})",
            dir.display()
        )
    }

    /// A three-node JetStream cluster, stores under `dir`.
    pub fn cluster(dir: &Path) -> Vec<NatsServer> {
        for attempt in 0..ATTEMPTS {
            let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
            let routes = ports
                .iter()
                .map(|(_, c)| format!("nats://127.0.0.1:{c}"))
                .collect::<Vec<_>>()
                .join(",");
            let mut nodes: Vec<NatsServer> = ports
                .iter()
                .enumerate()
                .map(|(i, &(port, cluster))| {
                    let sd = dir.join(format!("nats-{attempt}-{i}"));
                    let mut args = jetstream_args(port, &sd);
                    args.extend([
                        "-n".into(),
                        format!("n{i}"),
                        "--cluster_name".into(),
                        "evlog".into(),
                        "--cluster".into(),
                        format!("nats://127.0.0.1:{cluster}"),
                        "--routes".into(),
                        routes.clone(),
                    ]);
                    NatsServer::new(args, port, dir.join(format!("nats-{attempt}-{i}.log")))
                })
                .collect();
            if nodes.iter_mut().all(NatsServer::try_start) {
                return nodes;
            }
        }
        panic!(
            "a nats-server cluster did not start in {ATTEMPTS} attempts (logs in {})",
            dir.display()
        )
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills it at once (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it (again), with the same ports and store; waits until it
    /// says it is ready.
    pub fn restart(&mut self) {
        assert!(
            self.try_start(),
            "nats-server on port {} did not start:\n{}",
            self.port,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// Starts it; true once it logs that it is ready, false if it exits
    /// first (its port was taken) or takes more than 20 s.
    fn try_start(&mut self) -> bool {
        self.kill();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let from = log.metadata().unwrap().len() as usize;
        let child = Command::new(binary())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let text = std::fs::read(&self.log).unwrap_or_default();
            if String::from_utf8_lossy(&text[from.min(text.len())..]).contains("Server is ready")
                && TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return true;
            }
            if let Some(c) = self.child.as_mut()
                && c.try_wait().unwrap().is_some()
            {
                self.child = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
