//! `evlog serve`: the HTTP server with the tail indexer in-process, until
//! SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use super::Context;
use crate::auth::{self, KeyStore, KeysFile, Role};
use crate::event::EventType;
use crate::server::Server;
use crate::settings::{self, ServerSettings};
use crate::store::EventLog;

/// Flags of `evlog serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Listen address (default: the config file's server.addr, else 127.0.0.1:8080).
    #[arg(long, env = "EVLOG_ADDR", value_name = "HOST:PORT")]
    addr: Option<SocketAddr>,
    /// The keys file (default: the config file's server.keys_file, else <storage>/keys.json).
    #[arg(long, env = "EVLOG_KEYS_FILE", value_name = "FILE")]
    keys: Option<PathBuf>,
    /// Time of the daily rotation, HH:MM in UTC, or `off` (default: the
    /// config file's rotation.rotate_at, else 00:15). Its policy comes from
    /// [rotation] and EVLOG_COMPRESS_AFTER, EVLOG_DELETE_AFTER, EVLOG_MAX_TOTAL_SIZE,
    /// EVLOG_KEEP_OPEN, EVLOG_CATCH_UP_GRACE; purges from EVLOG_MIN_RETENTION_DAYS.
    #[arg(long, env = "EVLOG_ROTATE_AT", value_name = "HH:MM", value_parser = rotate_at_arg)]
    rotate_at: Option<RotateAt>,
    /// Publish every event, once durable here, to the NATS JetStream stream
    /// at these servers (nats://HOST:PORT, comma-separated). Appends never
    /// wait for NATS: the backlog is read from the day files, from the
    /// cursor in <storage>/replication.cursor.
    #[arg(long, env = "EVLOG_REPLICATE_TO", value_name = "URL[,URL…]")]
    replicate_to: Option<String>,
    /// Append the events of the stream at these servers into this store
    /// while serving (a central node or read replica; see `evlog follow`).
    #[arg(long, env = "EVLOG_FOLLOW", value_name = "URL[,URL…]")]
    follow: Option<String>,
    #[command(flatten)]
    node: super::follow::NodeArgs,
    #[command(flatten)]
    nats: super::follow::NatsArgs,
    #[command(flatten)]
    checkpoints: CheckpointArgs,
}

/// Signed checkpoints (README "Tamper evidence"): on when the storage
/// directory holds a signing key (`evlog checkpoint init`).
#[derive(Debug, Clone, clap::Args)]
struct CheckpointArgs {
    /// How often to sign a checkpoint of the chain head (only when something
    /// was appended since the last; also at each UTC day end and at stop):
    /// 30s, 5m, 1h, or `off` (default: [checkpoints] interval, else 5m).
    #[arg(long, env = "EVLOG_CHECKPOINT_INTERVAL", value_name = "SPAN|off", value_parser = interval_arg)]
    checkpoint_interval: Option<Interval>,
    /// Copy every checkpoint into this directory, kept off this host (an
    /// NFS mount, a bucket mounted by its own tools); repeatable, or
    /// comma-separated in the variable.
    #[arg(
        long,
        env = "EVLOG_CHECKPOINT_DIR",
        value_name = "DIR",
        value_delimiter = ','
    )]
    checkpoint_dir: Vec<PathBuf>,
    /// POST every checkpoint (its JSON line) to this http:// or https:// URL;
    /// a 2xx answer delivers it. Repeatable, or comma-separated in the variable.
    #[arg(
        long,
        env = "EVLOG_CHECKPOINT_POST",
        value_name = "URL",
        value_delimiter = ','
    )]
    checkpoint_post: Vec<String>,
}

/// `--checkpoint-interval`: a span or off.
#[derive(Debug, Clone, Copy)]
struct Interval(Option<std::time::Duration>);

fn interval_arg(s: &str) -> Result<Interval, String> {
    let d = crate::rotate::parse_age(s)?;
    match d.map(|d| d.to_std()) {
        None => Ok(Interval(None)),
        Some(Ok(d)) if d >= std::time::Duration::from_secs(1) => Ok(Interval(Some(d))),
        Some(_) => Err(format!("`{s}`: want at least 1s")),
    }
}

/// The checkpoint settings of `serve` and the public key of its signing
/// key (for the banner; the server reads the key for each checkpoint):
/// `None` when off (no key, or the interval `off`). Sinks without a key
/// are an error, as is a key others can read.
fn checkpoint_settings(
    args: &CheckpointArgs,
    ctx: &Context,
    node: String,
    nats: Option<&crate::replicate::nats::NatsConfig>,
) -> anyhow::Result<Option<(String, crate::checkpoint::deliver::Settings)>> {
    use crate::checkpoint::deliver::{DEFAULT_INTERVAL, Settings, Sink};
    use crate::checkpoint::key;
    let file = ctx.file.checkpoints.clone().unwrap_or_default();
    let interval = match (args.checkpoint_interval, &file.interval) {
        (Some(i), _) => i.0,
        (None, Some(s)) => {
            interval_arg(s)
                .map_err(|e| anyhow::anyhow!("[checkpoints] interval: {e}"))?
                .0
        }
        (None, None) => Some(DEFAULT_INTERVAL),
    };
    let dirs = if args.checkpoint_dir.is_empty() {
        file.dirs.unwrap_or_default()
    } else {
        args.checkpoint_dir.clone()
    };
    let posts = if args.checkpoint_post.is_empty() {
        file.post.unwrap_or_default()
    } else {
        args.checkpoint_post.clone()
    };
    let mut sinks: Vec<Sink> = dirs.into_iter().map(Sink::Dir).collect();
    sinks.extend(posts.into_iter().map(Sink::Post));
    for s in &sinks {
        s.check().map_err(anyhow::Error::msg)?;
    }
    let dir = &ctx.store.storage_path;
    let Some(interval) = interval else {
        eprintln!("evlog: signed checkpoints off (--checkpoint-interval off)");
        return Ok(None);
    };
    let k = match key::load(dir) {
        Ok(k) => k,
        Err(key::KeyError::Missing(_)) if sinks.is_empty() => {
            eprintln!(
                "evlog: signed checkpoints off: no signing key (`evlog checkpoint init` makes one)"
            );
            return Ok(None);
        }
        Err(key::KeyError::Missing(path)) => anyhow::bail!(
            "checkpoint sinks are configured but {} does not exist: create the signing key with \
             `evlog checkpoint init`",
            path.display()
        ),
        Err(e) => return Err(e.into()),
    };
    // With replication on, checkpoints go on the stream too.
    sinks.extend(nats.cloned().map(Sink::Nats));
    Ok(Some((
        key::public_hex(&k),
        Settings {
            interval,
            node,
            sinks,
        },
    )))
}

/// `--rotate-at`: a time of day or off.
#[derive(Debug, Clone, Copy)]
pub struct RotateAt(Option<chrono::NaiveTime>);

fn rotate_at_arg(s: &str) -> Result<RotateAt, String> {
    crate::rotate::parse_time_of_day(s).map(RotateAt)
}

pub(crate) fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    raise_open_files_limit();
    let settings =
        settings::resolve_server(args.addr, args.keys, &ctx.file, &ctx.store.storage_path);
    let mut over = settings::RotationOverrides::from_env()?;
    over.rotate_at = args.rotate_at.map(|a| a.0);
    let rotation = settings::resolve_rotation(&over, &ctx.file)?;
    let dedup = settings::resolve_dedup(&ctx.file)?;
    let file = ctx.file.replication.clone().unwrap_or_default();
    let publish = match args.replicate_to.as_ref().or(file.replicate_to.as_ref()) {
        Some(urls) => Some((args.nats.config(urls, &file)?, args.node.node(&file))),
        None => None,
    };
    let follow = match args.follow.as_ref().or(file.follow.as_ref()) {
        Some(urls) => Some(args.node.follow(args.nats.config(urls, &file)?, &file)),
        None => None,
    };
    let node = match &publish {
        Some((_, node)) => node.clone(),
        None => args.node.node(&file),
    };
    let checkpoints =
        checkpoint_settings(&args.checkpoints, ctx, node, publish.as_ref().map(|p| &p.0))?;
    let log = ctx.open_log()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("evlog-http")
        .build()?;
    let served = rt.block_on(serve(
        &settings,
        rotation,
        &dedup,
        log,
        Replication { publish, follow },
        checkpoints,
    ));
    let closed = served.map(|server| server.close());
    // Whatever happened: a task stuck in a blocking call (a checkpoint
    // directory on a hung mount) must not hold the process up.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    closed??;
    eprintln!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// What `serve` replicates.
struct Replication {
    publish: Option<(crate::replicate::nats::NatsConfig, String)>,
    follow: Option<crate::replicate::follow::FollowConfig>,
}

async fn serve(
    settings: &ServerSettings,
    rotation: settings::RotationSettings,
    dedup: &[crate::dedup::DedupRule],
    log: EventLog,
    Replication { publish, follow }: Replication,
    checkpoints: Option<(String, crate::checkpoint::deliver::Settings)>,
) -> anyhow::Result<Server> {
    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .with_context(|| format!("listening on {}", settings.addr))?;
    let addr = listener.local_addr()?;
    first_admin_key(settings, &log, addr)?;
    let keys = KeyStore::open(&settings.keys_file)?;
    let server = Server::new(log.clone(), keys, settings.limits.clone()).map_err(|e| {
        anyhow::anyhow!(
            "{e}\n(is `evlog index` or another `evlog serve` running on {}?)",
            log.storage_path().display()
        )
    })?;
    server.set_rotation(rotation);
    server.set_dedup(dedup);
    if let Some((cfg, node)) = &publish {
        eprintln!(
            "evlog: publishing to stream {} at {} as node {node}",
            cfg.stream,
            cfg.urls.join(",")
        );
    }
    if let Some(f) = &follow {
        eprintln!(
            "evlog: following stream {} at {} as consumer {}",
            f.nats.stream,
            f.nats.urls.join(","),
            f.consumer
        );
    }
    server.start_replication(publish, follow);
    if let Some((public_key, cs)) = checkpoints {
        let to: Vec<String> = cs.sinks.iter().map(|s| s.name()).collect();
        eprintln!(
            "evlog: signing checkpoints every {}s as node {} (public key {}){}",
            cs.interval.as_secs(),
            cs.node,
            public_key,
            if to.is_empty() {
                " — kept in <storage>/checkpoints only: give --checkpoint-dir or --checkpoint-post to keep them off this host".to_string()
            } else {
                format!(", delivered to {}", to.join(", "))
            }
        );
        server.start_checkpoints(cs);
    }
    server.record_system(
        EventType::SystemStart,
        format!("evlog serve started on {addr}"),
    );
    eprintln!(
        "evlog: serving {} on http://{addr} (Ctrl-C or SIGTERM to stop)",
        log.storage_path().display()
    );
    server.run(listener, shutdown_signal()).await;
    server.record_system(EventType::SystemStop, "evlog serve stopped".into());
    Ok(server)
}

/// With no keys at all, creates an all-tenants admin key and prints it once.
fn first_admin_key(
    settings: &ServerSettings,
    log: &EventLog,
    addr: SocketAddr,
) -> anyhow::Result<()> {
    if !KeysFile::load(&settings.keys_file)?.keys.is_empty() {
        return Ok(());
    }
    let created = auth::update(&settings.keys_file, |f| {
        // Another process may have added one meanwhile.
        if f.keys.is_empty() {
            // Of every tenant: the first key must be able to do everything,
            // rotation included.
            f.add_scoped(
                Role::Admin,
                "admin",
                Some("created by the first `evlog serve`"),
                None,
                None,
                true,
            )
            .map(Some)
        } else {
            Ok(None)
        }
    })?;
    let Some((key, entry)) = created else {
        return Ok(());
    };
    super::keys::record(log, "key added", &entry)?;
    println!(
        "No API keys yet: created an admin key ({}). It is shown only this once;\n\
         {} keeps only its hash. Add more with `evlog keys add`.\n\n    {key}\n\n\
         Try it:\n\n    curl -H 'X-API-Key: {key}' 'http://{addr}/events'\n",
        entry.id,
        settings.keys_file.display()
    );
    Ok(())
}

/// Each connection holds a file descriptor; the common soft limit of 1024
/// would refuse connections long before the machine runs short. Raises the
/// soft limit to the hard limit (at most 65536). A failure is only logged:
/// the server still runs, and a refused accept backs off and retries.
fn raise_open_files_limit() {
    const WANT: libc::rlim_t = 65536;
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the local struct only.
    let ok = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && {
            let want = WANT.min(r.rlim_max);
            r.rlim_cur >= want || {
                r.rlim_cur = want;
                libc::setrlimit(libc::RLIMIT_NOFILE, &r) == 0
            }
        }
    };
    if ok {
        tracing::debug!(open_files = r.rlim_cur, "open files limit");
    } else {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "could not raise the open files limit"
        );
    }
}

pub(super) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "no SIGTERM handler; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    eprintln!("evlog: stopping: finishing requests in flight");
}
