//! The NATS side: connection options (token, user and password, a
//! credentials file, TLS) and the stream, created when absent and checked
//! when present.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, stream};

use super::backlog::SUBJECT_PREFIX;

/// Default stream name.
pub const DEFAULT_STREAM: &str = "EVLOG";

/// How to reach the stream.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// Server URLs (`nats://host:port`, `tls://host:port`); the client
    /// moves to another one of them (and of those the cluster announces)
    /// when one fails.
    pub urls: Vec<String>,
    /// The stream's name.
    pub stream: String,
    /// Authentication.
    pub auth: Auth,
    /// TLS: required, with these trust roots and client certificate.
    pub tls: Option<Tls>,
    /// Replicas of the stream when evlog creates it (1 or 3).
    pub replicas: usize,
    /// Messages older than this leave the stream (0: kept).
    pub max_age: Duration,
    /// The stream's size limit in bytes (-1: none); the oldest messages
    /// leave first.
    pub max_bytes: i64,
    /// How long the stream remembers a `Nats-Msg-Id` to drop a duplicate.
    pub duplicate_window: Duration,
}

impl NatsConfig {
    /// The defaults for `urls`: stream `EVLOG`, one replica, 30 days, no
    /// size limit, a one-hour duplicate window.
    pub fn new(urls: Vec<String>) -> NatsConfig {
        NatsConfig {
            urls,
            stream: DEFAULT_STREAM.into(),
            auth: Auth::None,
            tls: None,
            replicas: 1,
            max_age: Duration::from_secs(30 * 86_400),
            max_bytes: -1,
            duplicate_window: Duration::from_secs(3600),
        }
    }
}

/// NATS authentication.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// None.
    #[default]
    None,
    /// A token.
    Token(String),
    /// A user and password.
    UserPassword(String, String),
    /// A `.creds` file (JWT and NKey seed).
    Credentials(PathBuf),
}

/// TLS settings.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// PEM file of the CA certificates to trust (else the system's).
    pub ca: Option<PathBuf>,
    /// PEM files of a client certificate and its key (mutual TLS).
    pub client: Option<(PathBuf, PathBuf)>,
}

/// Why the stream cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// No server answered, or one refused the credentials.
    #[error("cannot connect to NATS at {urls}: {reason}")]
    Connect {
        /// The URLs tried.
        urls: String,
        /// Why.
        reason: String,
    },
    /// The stream exists but cannot hold evlog's events as they are sent.
    #[error("stream {stream} is not usable by evlog: {reason}")]
    Incompatible {
        /// The stream.
        stream: String,
        /// Why.
        reason: String,
    },
    /// A JetStream request failed.
    #[error("stream {stream}: {reason}")]
    Stream {
        /// The stream.
        stream: String,
        /// Why.
        reason: String,
    },
}

/// Connects to the servers of `cfg` (retrying in the background after a
/// successful first connection; the first one must succeed).
pub async fn connect(cfg: &NatsConfig, name: &str) -> Result<async_nats::Client, NatsError> {
    let urls = cfg.urls.join(",");
    let fail = |reason: String| NatsError::Connect {
        urls: urls.clone(),
        reason,
    };
    let mut opts = match &cfg.auth {
        Auth::None => async_nats::ConnectOptions::new(),
        Auth::Token(t) => async_nats::ConnectOptions::with_token(t.clone()),
        Auth::UserPassword(u, p) => {
            async_nats::ConnectOptions::with_user_and_password(u.clone(), p.clone())
        }
        Auth::Credentials(path) => async_nats::ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|e| fail(format!("credentials file {}: {e}", path.display())))?,
    };
    if let Some(tls) = &cfg.tls {
        opts = opts.require_tls(true);
        if let Some(ca) = &tls.ca {
            opts = opts.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &tls.client {
            opts = opts.add_client_certificate(cert.clone(), key.clone());
        }
    }
    let addrs: Vec<async_nats::ServerAddr> = cfg
        .urls
        .iter()
        .map(|u| u.parse().map_err(|e| fail(format!("`{u}`: {e}"))))
        .collect::<Result<_, _>>()?;
    opts.name(name)
        .connection_timeout(Duration::from_secs(5))
        .connect(addrs)
        .await
        .map_err(|e| fail(e.to_string()))
}

/// The stream configuration evlog creates.
pub fn stream_config(cfg: &NatsConfig) -> stream::Config {
    stream::Config {
        name: cfg.stream.clone(),
        subjects: vec![format!("{SUBJECT_PREFIX}.>")],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        num_replicas: cfg.replicas,
        max_age: cfg.max_age,
        max_bytes: cfg.max_bytes,
        duplicate_window: cfg.duplicate_window,
        ..Default::default()
    }
}

/// Gets the stream of `cfg`, creating it when absent; an existing stream
/// must take the subjects `evlog.>` and keep messages by limits (a work
/// queue or interest stream would drop what one follower acknowledged
/// before another read it).
pub async fn ensure_stream(
    js: &jetstream::Context,
    cfg: &NatsConfig,
) -> Result<stream::Stream, NatsError> {
    let stream = js
        .get_or_create_stream(stream_config(cfg))
        .await
        .map_err(|e| NatsError::Stream {
            stream: cfg.stream.clone(),
            reason: e.to_string(),
        })?;
    check(&stream.cached_info().config).map_err(|reason| NatsError::Incompatible {
        stream: cfg.stream.clone(),
        reason,
    })?;
    Ok(stream)
}

/// Whether an existing stream's configuration suits evlog.
pub fn check(c: &stream::Config) -> Result<(), String> {
    let wanted = format!("{SUBJECT_PREFIX}.>");
    if !c.subjects.iter().any(|s| s == &wanted || s == ">") {
        return Err(format!(
            "its subjects are {:?}; evlog publishes on `{wanted}` (create it with that subject, \
             or let evlog create it)",
            c.subjects
        ));
    }
    if c.retention != stream::RetentionPolicy::Limits {
        return Err(format!(
            "its retention is {:?}; evlog needs `limits` (a work-queue or interest stream \
             drops messages one follower acknowledged before the others read them)",
            c.retention
        ));
    }
    if c.duplicate_window.is_zero() {
        return Err("its duplicate window is 0: a re-published event would be stored twice".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_created_stream_passes_the_check_and_others_are_named() {
        let cfg = NatsConfig::new(vec!["nats://127.0.0.1:4222".into()]);
        let c = stream_config(&cfg);
        assert_eq!(check(&c), Ok(()));
        let other = stream::Config {
            subjects: vec!["orders.>".into()],
            ..c.clone()
        };
        assert!(check(&other).unwrap_err().contains("evlog.>"));
        let queue = stream::Config {
            retention: stream::RetentionPolicy::WorkQueue,
            ..c
        };
        assert!(check(&queue).unwrap_err().contains("limits"));
    }
}
