//! `evlog follow`: copy the events of a NATS JetStream stream into this
//! node's store (and index), until SIGINT or SIGTERM; and the NATS flags
//! that `evlog serve --replicate-to/--follow` share.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Context;
use crate::index::IndexConfig;
use crate::replicate::follow::{self, FollowConfig, FollowStatus};
use crate::replicate::nats::{Auth, NatsConfig, Tls};
use crate::settings::ReplicationFileConfig;

/// How to reach the stream (flags of `follow` and `serve`; each falls
/// back on the `[replication]` table of the config file, then a default).
#[derive(Debug, Clone, clap::Args)]
pub struct NatsArgs {
    /// The JetStream stream, created when absent [default: EVLOG].
    #[arg(long, env = "EVLOG_STREAM", value_name = "NAME")]
    pub stream: Option<String>,
    /// Replicas of the stream when evlog creates it: 1, or 3 on a cluster [default: 1].
    #[arg(long, env = "EVLOG_STREAM_REPLICAS", value_parser = clap::value_parser!(u8).range(1..=5))]
    pub replicas: Option<u8>,
    /// Age after which the stream drops a message, in days; 0 = never [default: 30].
    #[arg(long, env = "EVLOG_STREAM_MAX_AGE_DAYS", value_name = "DAYS")]
    pub stream_max_age_days: Option<u64>,
    /// The stream's size limit in MiB, oldest messages dropped first; 0 = none [default: 0].
    #[arg(long, env = "EVLOG_STREAM_MAX_MIB", value_name = "MIB")]
    pub stream_max_mib: Option<u64>,
    /// NATS token.
    #[arg(long, env = "EVLOG_NATS_TOKEN", value_name = "TOKEN")]
    pub nats_token: Option<String>,
    /// NATS user (with --nats-password).
    #[arg(long, env = "EVLOG_NATS_USER", value_name = "USER")]
    pub nats_user: Option<String>,
    /// NATS password.
    #[arg(long, env = "EVLOG_NATS_PASSWORD", value_name = "PASSWORD")]
    pub nats_password: Option<String>,
    /// NATS credentials file (`.creds`: JWT and NKey seed).
    #[arg(long, env = "EVLOG_NATS_CREDS", value_name = "FILE")]
    pub nats_creds: Option<PathBuf>,
    /// Require TLS (implied by --nats-tls-ca, --nats-tls-cert and tls:// URLs).
    #[arg(long, env = "EVLOG_NATS_TLS")]
    pub nats_tls: bool,
    /// PEM file of the CA certificates to trust (default: the system's).
    #[arg(long, env = "EVLOG_NATS_TLS_CA", value_name = "FILE")]
    pub nats_tls_ca: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with --nats-tls-key).
    #[arg(long, env = "EVLOG_NATS_TLS_CERT", value_name = "FILE")]
    pub nats_tls_cert: Option<PathBuf>,
    /// PEM key of --nats-tls-cert.
    #[arg(long, env = "EVLOG_NATS_TLS_KEY", value_name = "FILE")]
    pub nats_tls_key: Option<PathBuf>,
}

impl NatsArgs {
    /// The connection and stream settings for the servers `urls`
    /// (comma-separated), the flags over the file's `[replication]`.
    pub fn config(&self, urls: &str, file: &ReplicationFileConfig) -> anyhow::Result<NatsConfig> {
        let urls: Vec<String> = urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect();
        if urls.is_empty() {
            anyhow::bail!("no NATS server given: want nats://HOST:PORT[,nats://HOST:PORT…]");
        }
        for u in &urls {
            if let Err(e) = u.parse::<async_nats::ServerAddr>() {
                anyhow::bail!("`{u}` is not a NATS server URL ({e}): want nats://HOST:PORT");
            }
        }
        let mut cfg = NatsConfig::new(urls);
        if let Some(s) = self.stream.clone().or_else(|| file.stream.clone()) {
            cfg.stream = s;
        }
        let replicas = self.replicas.or(file.replicas).unwrap_or(1);
        if !(1..=5).contains(&replicas) {
            anyhow::bail!(
                "[replication] replicas: {replicas} is not 1 to 5 (use 1, or 3 on a cluster)"
            );
        }
        cfg.replicas = usize::from(replicas);
        let days = self
            .stream_max_age_days
            .or(file.stream_max_age_days)
            .unwrap_or(30);
        cfg.max_age = Duration::from_secs(days.saturating_mul(86_400));
        cfg.max_bytes = match self.stream_max_mib.or(file.stream_max_mib).unwrap_or(0) {
            0 => -1,
            n => i64::try_from(n.saturating_mul(1 << 20)).unwrap_or(i64::MAX),
        };
        let token = self.nats_token.clone().or_else(|| file.nats_token.clone());
        let user = self.nats_user.clone().or_else(|| file.nats_user.clone());
        let password = self
            .nats_password
            .clone()
            .or_else(|| file.nats_password.clone());
        let creds = self.nats_creds.clone().or_else(|| file.nats_creds.clone());
        cfg.auth = match (token, user, password, creds) {
            (Some(t), None, None, None) => Auth::Token(t),
            (None, Some(u), Some(p), None) => Auth::UserPassword(u, p),
            (None, None, None, Some(c)) => Auth::Credentials(c),
            (None, None, None, None) => Auth::None,
            (None, Some(_), None, None) | (None, None, Some(_), None) => {
                anyhow::bail!("NATS user and password go together (--nats-user, --nats-password)")
            }
            _ => anyhow::bail!(
                "give one NATS authentication: a token, a user and password, or a credentials file"
            ),
        };
        let ca = self
            .nats_tls_ca
            .clone()
            .or_else(|| file.nats_tls_ca.clone());
        let cert = self
            .nats_tls_cert
            .clone()
            .or_else(|| file.nats_tls_cert.clone());
        let key = self
            .nats_tls_key
            .clone()
            .or_else(|| file.nats_tls_key.clone());
        if cert.is_some() != key.is_some() {
            anyhow::bail!(
                "a NATS client certificate goes with its key (--nats-tls-cert, --nats-tls-key)"
            );
        }
        let tls_url = cfg.urls.iter().any(|u| u.starts_with("tls://"));
        if self.nats_tls || file.nats_tls == Some(true) || tls_url || ca.is_some() || cert.is_some()
        {
            cfg.tls = Some(Tls {
                ca,
                client: cert.zip(key),
            });
        }
        Ok(cfg)
    }
}

/// The node name: `--node`, else the host name.
pub fn node_name(given: Option<&str>) -> String {
    if let Some(n) = given {
        return n.to_string();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "evlog".into())
}

/// The node's name and the follower's place and filter (flags of `follow`
/// and `serve`, over the file's `[replication]`).
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// The durable consumer that keeps this follower's place in the stream
    /// (default: evlog-<node>). Two followers with one name share the work
    /// and each gets part of the events: give each store its own.
    #[arg(long, value_name = "NAME")]
    pub consumer: Option<String>,
    /// Follow only the subjects matching this, e.g. `evlog.acme.>` (one
    /// tenant's events). Subjects are evlog.<tenant or _>.<event_type>.
    #[arg(long, value_name = "SUBJECT")]
    pub filter: Option<String>,
    /// This node's name in the stream (default: the host name).
    #[arg(long, env = "EVLOG_NODE", value_name = "NAME")]
    pub node: Option<String>,
}

impl NodeArgs {
    /// The node's name.
    pub fn node(&self, file: &ReplicationFileConfig) -> String {
        node_name(self.node.as_deref().or(file.node.as_deref()))
    }

    /// What to follow on the stream of `nats`.
    pub fn follow(&self, nats: NatsConfig, file: &ReplicationFileConfig) -> FollowConfig {
        FollowConfig {
            nats,
            consumer: self
                .consumer
                .clone()
                .or_else(|| file.consumer.clone())
                .unwrap_or_else(|| format!("evlog-{}", self.node(file))),
            filter: self.filter.clone().or_else(|| file.filter.clone()),
            node: self.node(file),
        }
    }
}

/// Flags of `evlog follow`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// NATS server(s) of the stream: nats://HOST:PORT[,nats://HOST:PORT…].
    #[arg(value_name = "URL")]
    url: String,
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    nats: NatsArgs,
}

pub(crate) fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let file = ctx.file.replication.clone().unwrap_or_default();
    let cfg = args.node.follow(args.nats.config(&args.url, &file)?, &file);
    let log = ctx.open_log()?;
    let indexer = log.start_indexer(IndexConfig::new(&ctx.store.storage_path))?;
    let search = indexer.search().clone();
    let status = Arc::new(FollowStatus::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("evlog-follow")
        .build()?;
    eprintln!(
        "following stream {} at {} as consumer {} into {} (Ctrl-C or SIGTERM to stop)",
        cfg.nats.stream,
        cfg.nats.urls.join(","),
        cfg.consumer,
        ctx.store.storage_path.display()
    );
    rt.block_on(async {
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(follow::run(
            cfg,
            log.clone(),
            search,
            follow::Claims::default(),
            status.clone(),
            stop,
        ));
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        let mut said = (u64::MAX, u64::MAX);
        loop {
            tokio::select! {
                _ = super::serve::shutdown_signal() => break,
                _ = tick.tick() => {
                    let now = (
                        status.appended.load(Ordering::Relaxed),
                        status.pending.load(Ordering::Relaxed),
                    );
                    if now != said {
                        eprintln!("{} appended, {} already here, {} pending in the stream{}",
                            now.0,
                            status.duplicates.load(Ordering::Relaxed),
                            now.1,
                            if status.link_up.load(Ordering::Relaxed) { "" } else { " (NATS unreachable, retrying)" });
                        said = now;
                    }
                }
            }
        }
        let _ = stop_tx.send(true);
        let _ = task.await;
    });
    indexer.shutdown()?;
    log.close().map_err(super::store_error)?;
    eprintln!(
        "stopped: {} event(s) appended, {} already here, {} refused",
        status.appended.load(Ordering::Relaxed),
        status.duplicates.load(Ordering::Relaxed),
        status.refused.load(Ordering::Relaxed)
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct T {
        #[command(flatten)]
        nats: NatsArgs,
    }

    fn config(args: &[&str], urls: &str) -> anyhow::Result<NatsConfig> {
        let t = T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))?;
        t.nats.config(urls, &ReplicationFileConfig::default())
    }

    #[test]
    fn flags_make_the_config_and_mistakes_are_named() {
        let c = config(
            &["--stream", "AUDIT", "--replicas", "3", "--nats-token", "s3"],
            "nats://a:4222, nats://b:4222",
        )
        .unwrap();
        assert_eq!(c.urls, ["nats://a:4222", "nats://b:4222"]);
        assert_eq!((c.stream.as_str(), c.replicas), ("AUDIT", 3));
        assert!(matches!(c.auth, Auth::Token(ref t) if t == "s3"));
        assert!(c.tls.is_none());
        assert_eq!(c.max_age, Duration::from_secs(30 * 86_400));
        let tls = config(&[], "tls://a:4222").unwrap();
        assert!(tls.tls.is_some());
        for (args, urls, says) in [
            (&[][..], " , ", "no NATS server"),
            (&[][..], "http://a:4222", "not a NATS server URL"),
            (&["--nats-user", "u"][..], "nats://a:4222", "go together"),
            (
                &[
                    "--nats-token",
                    "t",
                    "--nats-user",
                    "u",
                    "--nats-password",
                    "p",
                ][..],
                "nats://a:4222",
                "give one NATS authentication",
            ),
            (
                &["--nats-tls-cert", "c.pem"][..],
                "nats://a:4222",
                "goes with its key",
            ),
        ] {
            let e = config(args, urls).unwrap_err().to_string();
            assert!(e.contains(says), "{args:?} {urls}: {e}");
        }
    }
}
