//! `evlog serve` as a child process on a free port of 127.0.0.1, stopped
//! (SIGTERM, then waited for) when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running `evlog serve`.
pub struct Server {
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Server {
    /// Spawns `cmd`, an `evlog … serve --addr 127.0.0.1:0` (stdin closed,
    /// stderr piped; stdout as `cmd` sets it), and waits for the banner that
    /// names its address. The rest of its log is drained, so that the server
    /// never blocks on it.
    pub fn start(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running evlog serve");
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        let addr = loop {
            line.clear();
            assert!(
                err.read_line(&mut line).expect("reading the server's log") > 0,
                "evlog serve ended before listening"
            );
            if let Some(rest) = line.split("on http://").nth(1) {
                break rest
                    .split_whitespace()
                    .next()
                    .expect("an address")
                    .to_string();
            }
        };
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        Server { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
