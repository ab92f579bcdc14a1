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

impl NatsServer {
    fn spawn(args: Vec<String>, port: u16, log: PathBuf) -> NatsServer {
        let mut s = NatsServer {
            child: None,
            port,
            args,
            log,
        };
        s.restart();
        s
    }

    /// One server, its store under `dir`.
    pub fn single(dir: &Path) -> NatsServer {
        NatsServer::single_with(dir, &[])
    }

    /// One server with these flags too (e.g. `--user U --pass P`).
    pub fn single_with(dir: &Path, extra: &[&str]) -> NatsServer {
        let port = free_port();
        let sd = dir.join(format!("nats-{port}"));
        let mut args = jetstream_args(port, &sd);
        args.extend(extra.iter().map(|a| a.to_string()));
        NatsServer::spawn(args, port, dir.join(format!("nats-{port}.log")))
    }

    /// A three-node JetStream cluster, stores under `dir`.
    pub fn cluster(dir: &Path) -> Vec<NatsServer> {
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let routes = ports
            .iter()
            .map(|(_, c)| format!("nats://127.0.0.1:{c}"))
            .collect::<Vec<_>>()
            .join(",");
        ports
            .iter()
            .enumerate()
            .map(|(i, &(port, cluster))| {
                let sd = dir.join(format!("nats-{i}"));
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
                NatsServer::spawn(args, port, dir.join(format!("nats-{i}.log")))
            })
            .collect()
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
    /// accepts connections.
    pub fn restart(&mut self) {
        self.kill();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(binary())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server on port {} did not start:\n{}",
                self.port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
