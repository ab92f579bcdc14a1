//! Configuration: command-line flags > environment > TOML file > defaults.
//!
//! The TOML file is `--config FILE` (env `EVLOG_CONFIG`), or `./evlog.toml`
//! when it exists. Example:
//!
//! ```toml
//! storage_path = "/var/lib/evlog"
//! durability = "fsync"          # fsync | batch | none
//! batch_interval_ms = 100       # fsync period under "batch"
//!
//! [privacy]
//! secrets = "mask"              # mask | drop | off
//! truncate_ip = false
//! # user_id_hash_key = "..."    # better: env EVLOG_USER_ID_HASH_KEY
//!
//! [server]
//! addr = "127.0.0.1:8080"       # env EVLOG_ADDR, flag --addr
//! keys_file = "/var/lib/evlog/keys.json"   # default <storage>/keys.json
//!
//! [server.limits]               # see crate::limits::Limits for every key
//! max_body_bytes = 10485760
//! rate_user_per_sec = 100       # requests a second of one user key; 0 = off
//! rate_user_burst = 1000
//!
//! [rotation]                    # evlog rotate and the server's daily run
//! compress_after = "7d"         # env EVLOG_COMPRESS_AFTER; "off" never compresses
//! delete_after = "90d"          # env EVLOG_DELETE_AFTER; "off" never deletes by age
//! max_total_size = "10GiB"      # env EVLOG_MAX_TOTAL_SIZE; default "off"
//! rotate_at = "00:15"           # server's daily run, UTC; env EVLOG_ROTATE_AT; "off"
//! catch_up_grace = "1h"         # a daily run missed while down runs at start within this; "off"
//! keep_open = true              # retention keeps days with open warning+ events; env EVLOG_KEEP_OPEN
//! min_retention_days = 30       # the least retention_days a purge takes; env EVLOG_MIN_RETENTION_DAYS
//!
//! [checkpoints]                 # signed checkpoints (needs `evlog checkpoint init`)
//! interval = "5m"               # env EVLOG_CHECKPOINT_INTERVAL, flag --checkpoint-interval; "off"
//! dirs = ["/mnt/audit/evlog"]   # copies kept off the host; env EVLOG_CHECKPOINT_DIR
//! post = ["https://audit.example/checkpoints"]   # each POSTed; env EVLOG_CHECKPOINT_POST
//!
//! [[dedup]]                     # at most `max` per (user_id, event_type) per `per`
//! event_types = ["login_failed"]
//! per = "10m"
//! max = 1
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::event::privacy::PrivacyConfig;
use crate::limits::Limits;
use crate::store::{self, DEFAULT_STORAGE_PATH, Durability};

/// A configuration file that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable file.
    #[error("config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Invalid TOML or an unknown key.
    #[error("config file {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
    /// A setting (in the file or the environment) whose value does not parse.
    #[error("{key}: {message}")]
    Invalid {
        /// Where it comes from: `[rotation] compress_after` or `EVLOG_COMPRESS_AFTER`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The contents of the TOML file; every key optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Storage directory.
    pub storage_path: Option<PathBuf>,
    /// Durability mode.
    pub durability: Option<Durability>,
    /// fsync period under `batch`, in milliseconds.
    pub batch_interval_ms: Option<u64>,
    /// Privacy filters.
    pub privacy: Option<PrivacyConfig>,
    /// The HTTP server.
    pub server: Option<ServerFileConfig>,
    /// Rotation and retention.
    pub rotation: Option<RotationFileConfig>,
    /// `[[dedup]]` rules (see [`crate::dedup`]).
    pub dedup: Option<Vec<DedupFileRule>>,
    /// Replication through NATS JetStream (see [`crate::replicate`]); the
    /// flags and `EVLOG_…` variables of `serve` and `follow` win.
    pub replication: Option<ReplicationFileConfig>,
    /// Signed checkpoints (see [`crate::checkpoint`]); the flags and
    /// `EVLOG_CHECKPOINT_…` variables of `serve` win.
    pub checkpoints: Option<CheckpointsFileConfig>,
}

/// The `[checkpoints]` table of the TOML file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointsFileConfig {
    /// How often the server writes one (`5m`; `off`).
    pub interval: Option<String>,
    /// Directories each checkpoint file is copied to.
    pub dirs: Option<Vec<PathBuf>>,
    /// URLs each checkpoint is POSTed to.
    pub post: Option<Vec<String>>,
}

/// The `[replication]` table of the TOML file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationFileConfig {
    /// `serve` publishes to these NATS servers (comma-separated URLs).
    pub replicate_to: Option<String>,
    /// `serve` follows the stream at these NATS servers.
    pub follow: Option<String>,
    /// This node's name (default: the host name).
    pub node: Option<String>,
    /// The follower's durable consumer (default: `evlog-<node>`).
    pub consumer: Option<String>,
    /// The follower's subject filter (`evlog.acme.>`).
    pub filter: Option<String>,
    /// The stream (default `EVLOG`).
    pub stream: Option<String>,
    /// Replicas of the stream when evlog creates it (1 or 3).
    pub replicas: Option<u8>,
    /// The stream drops messages older than this many days (0: never; default 30).
    pub stream_max_age_days: Option<u64>,
    /// The stream's size limit in MiB (0: none, the default).
    pub stream_max_mib: Option<u64>,
    /// NATS token.
    pub nats_token: Option<String>,
    /// NATS user (with `nats_password`).
    pub nats_user: Option<String>,
    /// NATS password.
    pub nats_password: Option<String>,
    /// NATS credentials file.
    pub nats_creds: Option<PathBuf>,
    /// Require TLS.
    pub nats_tls: Option<bool>,
    /// CA certificates (PEM) to trust.
    pub nats_tls_ca: Option<PathBuf>,
    /// Client certificate (PEM), with `nats_tls_key`.
    pub nats_tls_cert: Option<PathBuf>,
    /// Its key (PEM).
    pub nats_tls_key: Option<PathBuf>,
}

/// One `[[dedup]]` table of the TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupFileRule {
    /// The event types it applies to.
    pub event_types: Vec<String>,
    /// The window: an age like `"10m"`.
    pub per: String,
    /// Events admitted per (user_id, event_type) and window (at least 1).
    pub max: u32,
}

/// Resolves the file's `[[dedup]]` rules: each type a valid event type,
/// `per` a positive age, `max` at least 1.
pub fn resolve_dedup(file: &FileConfig) -> Result<Vec<crate::dedup::DedupRule>, ConfigError> {
    let mut rules = Vec::new();
    for (i, r) in file.dedup.iter().flatten().enumerate() {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: format!("config file [[dedup]] #{} {key}", i + 1),
            message,
        };
        if r.event_types.is_empty() {
            return Err(invalid("event_types", "lists no type".into()));
        }
        for t in &r.event_types {
            t.parse::<crate::event::EventType>()
                .map_err(|e| invalid("event_types", e.message))?;
        }
        let per = crate::rotate::policy::parse_age(&r.per)
            .map_err(|m| invalid("per", m))?
            .filter(|d| *d > chrono::Duration::zero())
            .ok_or_else(|| invalid("per", format!("`{}`: want a positive age like 10m", r.per)))?;
        if r.max == 0 {
            return Err(invalid("max", "must be at least 1".into()));
        }
        rules.push(crate::dedup::DedupRule {
            event_types: r.event_types.clone(),
            per,
            max: r.max,
        });
    }
    Ok(rules)
}

/// The `[rotation]` table of the TOML file: ages like `"7d"`, sizes like
/// `"10GiB"` (or a number of bytes), `"off"` to turn a rule off.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationFileConfig {
    /// Age after which plain day files are compressed.
    pub compress_after: Option<String>,
    /// Age after which day files are deleted.
    pub delete_after: Option<String>,
    /// Most bytes of day files to keep.
    pub max_total_size: Option<SizeValue>,
    /// Time of the server's daily rotation (`HH:MM`, UTC) or `off`.
    pub rotate_at: Option<String>,
    /// How late the server may start and still run a daily rotation it
    /// missed (an age, or `off`).
    pub catch_up_grace: Option<String>,
    /// Whether retention keeps days holding open events of level warning
    /// or above.
    pub keep_open: Option<bool>,
    /// The least `retention_days` a purge accepts.
    pub min_retention_days: Option<u32>,
}

/// A size in the TOML file: a number of bytes or a string with a unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SizeValue {
    /// Bytes.
    Bytes(u64),
    /// `"500MB"`, `"2GiB"`, `"off"`.
    Text(String),
}

/// Rotation settings given as flags or environment (already parsed): `None`
/// when not given, `Some(None)` for `off`.
#[derive(Debug, Default, Clone, Copy)]
pub struct RotationOverrides {
    /// `--compress-after` / `EVLOG_COMPRESS_AFTER`.
    pub compress_after: Option<Option<chrono::Duration>>,
    /// `--delete-after` / `EVLOG_DELETE_AFTER`.
    pub delete_after: Option<Option<chrono::Duration>>,
    /// `--max-total-size` / `EVLOG_MAX_TOTAL_SIZE`.
    pub max_total_size: Option<Option<u64>>,
    /// `--rotate-at` / `EVLOG_ROTATE_AT`.
    pub rotate_at: Option<Option<chrono::NaiveTime>>,
    /// `EVLOG_CATCH_UP_GRACE`.
    pub catch_up_grace: Option<Option<chrono::Duration>>,
    /// `--keep-open` / `EVLOG_KEEP_OPEN`.
    pub keep_open: Option<bool>,
    /// `--min-retention-days` / `EVLOG_MIN_RETENTION_DAYS`.
    pub min_retention_days: Option<u32>,
}

impl RotationOverrides {
    /// Reads `EVLOG_COMPRESS_AFTER`, `EVLOG_DELETE_AFTER`,
    /// `EVLOG_MAX_TOTAL_SIZE`, `EVLOG_ROTATE_AT`, `EVLOG_CATCH_UP_GRACE`,
    /// `EVLOG_KEEP_OPEN` and `EVLOG_MIN_RETENTION_DAYS` (for commands whose
    /// flags do not read them already); an empty variable counts as unset.
    pub fn from_env() -> Result<RotationOverrides, ConfigError> {
        use crate::rotate::policy::{parse_age, parse_size, parse_time_of_day};
        fn var<T>(
            name: &str,
            parse: impl Fn(&str) -> Result<T, String>,
        ) -> Result<Option<T>, ConfigError> {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => {
                    parse(&v).map(Some).map_err(|message| ConfigError::Invalid {
                        key: name.to_string(),
                        message,
                    })
                }
                _ => Ok(None),
            }
        }
        Ok(RotationOverrides {
            compress_after: var("EVLOG_COMPRESS_AFTER", parse_age)?,
            delete_after: var("EVLOG_DELETE_AFTER", parse_age)?,
            max_total_size: var("EVLOG_MAX_TOTAL_SIZE", parse_size)?,
            rotate_at: var("EVLOG_ROTATE_AT", parse_time_of_day)?,
            catch_up_grace: var("EVLOG_CATCH_UP_GRACE", parse_age)?,
            keep_open: var("EVLOG_KEEP_OPEN", parse_bool)?,
            min_retention_days: var("EVLOG_MIN_RETENTION_DAYS", parse_days)?,
        })
    }
}

/// Parses `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("`{s}` is not a boolean: want true or false")),
    }
}

/// Parses a whole number of days.
pub fn parse_days(s: &str) -> Result<u32, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of days: want a whole number, e.g. 30"))
}

/// Resolved rotation settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationSettings {
    /// What to compress and delete.
    pub policy: crate::rotate::Policy,
    /// The server's daily run (UTC), `None` when off.
    pub rotate_at: Option<chrono::NaiveTime>,
    /// A daily run missed while the server was down runs when it starts
    /// within this of the run's time (`None`: never caught up).
    pub catch_up_grace: Option<chrono::Duration>,
    /// Retention keeps days holding open events of level warning or above
    /// (see [`crate::rotate::open`]).
    pub keep_open: bool,
    /// The least `retention_days` a purge accepts.
    pub min_retention_days: u32,
}

impl Default for RotationSettings {
    /// The defaults: compress after 7d, delete after 90d, no size limit,
    /// daily at 00:15 UTC caught up within 1h, keep open days, purge
    /// retention at least 30 days.
    fn default() -> Self {
        RotationSettings {
            policy: crate::rotate::Policy::default(),
            rotate_at: chrono::NaiveTime::from_hms_opt(0, 15, 0),
            catch_up_grace: Some(chrono::Duration::hours(1)),
            keep_open: true,
            min_retention_days: crate::rotate::purge::DEFAULT_MIN_RETENTION_DAYS,
        }
    }
}

/// Resolves the rotation settings: flags/environment over the file's
/// `[rotation]` over the defaults ([`RotationSettings::default`]).
pub fn resolve_rotation(
    over: &RotationOverrides,
    file: &FileConfig,
) -> Result<RotationSettings, ConfigError> {
    use crate::rotate::policy::{self as s, parse_age, parse_size, parse_time_of_day};
    let section = file.rotation.clone().unwrap_or_default();
    let invalid = |key: &str| {
        let key = format!("config file [rotation] {key}");
        move |message| ConfigError::Invalid { key, message }
    };
    let compress_after = match over.compress_after {
        Some(v) => v,
        None => parse_age(
            section
                .compress_after
                .as_deref()
                .unwrap_or(s::DEFAULT_COMPRESS_AFTER),
        )
        .map_err(invalid("compress_after"))?,
    };
    let delete_after = match over.delete_after {
        Some(v) => v,
        None => parse_age(
            section
                .delete_after
                .as_deref()
                .unwrap_or(s::DEFAULT_DELETE_AFTER),
        )
        .map_err(invalid("delete_after"))?,
    };
    let max_total_size = match over.max_total_size {
        Some(v) => v,
        None => match &section.max_total_size {
            None => None,
            Some(SizeValue::Bytes(n)) => Some(*n),
            Some(SizeValue::Text(t)) => parse_size(t).map_err(invalid("max_total_size"))?,
        },
    };
    let rotate_at = match over.rotate_at {
        Some(v) => v,
        None => parse_time_of_day(section.rotate_at.as_deref().unwrap_or(s::DEFAULT_ROTATE_AT))
            .map_err(invalid("rotate_at"))?,
    };
    let catch_up_grace = match over.catch_up_grace {
        Some(v) => v,
        None => parse_age(
            section
                .catch_up_grace
                .as_deref()
                .unwrap_or(crate::rotate::schedule::DEFAULT_CATCH_UP_GRACE),
        )
        .map_err(invalid("catch_up_grace"))?,
    };
    let defaults = RotationSettings::default();
    Ok(RotationSettings {
        policy: crate::rotate::Policy {
            compress_after,
            delete_after,
            max_total_size,
        },
        rotate_at,
        catch_up_grace,
        keep_open: over
            .keep_open
            .or(section.keep_open)
            .unwrap_or(defaults.keep_open),
        min_retention_days: over
            .min_retention_days
            .or(section.min_retention_days)
            .unwrap_or(defaults.min_retention_days),
    })
}

/// The `[server]` table of the TOML file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFileConfig {
    /// Listen address.
    pub addr: Option<SocketAddr>,
    /// The keys file.
    pub keys_file: Option<PathBuf>,
    /// Request limits (`[server.limits]`); unset keys keep their defaults.
    pub limits: Option<Limits>,
}

/// Default listen address of `evlog serve`.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// The resolved settings of `evlog serve`.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Listen address.
    pub addr: SocketAddr,
    /// The keys file.
    pub keys_file: PathBuf,
    /// Request limits.
    pub limits: Limits,
}

/// Resolves the server settings: `addr` and `keys_file` (flags or
/// environment, as clap read them) over the file over the defaults
/// (`127.0.0.1:8080`, `<storage>/keys.json`).
pub fn resolve_server(
    addr: Option<SocketAddr>,
    keys_file: Option<PathBuf>,
    file: &FileConfig,
    storage: &Path,
) -> ServerSettings {
    let section = file.server.clone().unwrap_or_default();
    ServerSettings {
        addr: addr
            .or(section.addr)
            .unwrap_or_else(|| DEFAULT_ADDR.parse().expect("default address")),
        keys_file: resolve_keys_file(keys_file, file, storage),
        limits: section.limits.unwrap_or_default(),
    }
}

/// The keys file: the flag or environment, else the file's `server.keys_file`,
/// else `<storage>/keys.json`.
pub fn resolve_keys_file(keys_file: Option<PathBuf>, file: &FileConfig, storage: &Path) -> PathBuf {
    keys_file
        .or_else(|| file.server.as_ref().and_then(|s| s.keys_file.clone()))
        .unwrap_or_else(|| storage.join(crate::auth::KEYS_FILE))
}

impl FileConfig {
    /// Loads `explicit`, else `./evlog.toml` if it exists, else empty.
    pub fn load(explicit: Option<&Path>) -> Result<FileConfig, ConfigError> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => {
                let p = PathBuf::from("evlog.toml");
                if !p.exists() {
                    return Ok(FileConfig::default());
                }
                p
            }
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path,
            message: e.to_string(),
        })
    }
}

/// Values given on the command line or in the environment (clap reads both).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--storage` / `EVLOG_STORAGE_PATH`.
    pub storage_path: Option<PathBuf>,
    /// `--durability` / `EVLOG_DURABILITY`.
    pub durability: Option<Durability>,
    /// `EVLOG_USER_ID_HASH_KEY`.
    pub user_id_hash_key: Option<String>,
}

/// Resolves flags/env over the file over defaults into a store [`store::Config`].
pub fn resolve(over: &Overrides, file: &FileConfig) -> store::Config {
    let storage = over
        .storage_path
        .clone()
        .or_else(|| file.storage_path.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STORAGE_PATH));
    let mut cfg = store::Config::new(storage);
    cfg.durability = over.durability.or(file.durability).unwrap_or_default();
    if let Some(ms) = file.batch_interval_ms {
        cfg.batch_interval = Duration::from_millis(ms.max(1));
    }
    let mut privacy = file.privacy.clone().unwrap_or_default();
    if let Some(k) = &over.user_id_hash_key {
        privacy.user_id_hash_key = Some(k.clone());
    }
    cfg.privacy = privacy;
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_beat_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "storage_path = \"/from/file\"\ndurability = \"batch\"\nbatch_interval_ms = 250\n[privacy]\ntruncate_ip = true\n",
        )
        .unwrap();
        let file = FileConfig::load(Some(&p)).unwrap();
        let cfg = resolve(&Overrides::default(), &file);
        assert_eq!(cfg.storage_path, PathBuf::from("/from/file"));
        assert_eq!(cfg.durability, Durability::Batch);
        assert_eq!(cfg.batch_interval, Duration::from_millis(250));
        assert!(cfg.privacy.truncate_ip);
        assert!(
            !cfg.privacy.secret_keys.is_empty(),
            "unset privacy keys keep defaults"
        );

        let over = Overrides {
            storage_path: Some("/flag".into()),
            durability: Some(Durability::None),
            user_id_hash_key: Some("k".into()),
        };
        let cfg = resolve(&over, &file);
        assert_eq!(cfg.storage_path, PathBuf::from("/flag"));
        assert_eq!(cfg.durability, Durability::None);
        assert_eq!(cfg.privacy.user_id_hash_key.as_deref(), Some("k"));

        let cfg = resolve(&Overrides::default(), &FileConfig::default());
        assert_eq!(cfg.storage_path, PathBuf::from(DEFAULT_STORAGE_PATH));
        assert_eq!(cfg.durability, Durability::Fsync);
    }

    #[test]
    fn server_settings_flags_beat_file_beat_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[server]\naddr = \"0.0.0.0:9000\"\nkeys_file = \"/etc/evlog/keys.json\"\n[server.limits]\nmax_batch_events = 5\n",
        )
        .unwrap();
        let file = FileConfig::load(Some(&p)).unwrap();
        let s = resolve_server(None, None, &file, Path::new("/data"));
        assert_eq!(s.addr.to_string(), "0.0.0.0:9000");
        assert_eq!(s.keys_file, PathBuf::from("/etc/evlog/keys.json"));
        assert_eq!(s.limits.max_batch_events, 5);
        assert_eq!(s.limits.max_body_bytes, Limits::default().max_body_bytes);
        let s = resolve_server(
            Some("127.0.0.1:1".parse().unwrap()),
            Some("/k.json".into()),
            &file,
            Path::new("/data"),
        );
        assert_eq!((s.addr.port(), s.keys_file), (1, PathBuf::from("/k.json")));
        let s = resolve_server(None, None, &FileConfig::default(), Path::new("/data"));
        assert_eq!(s.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(s.keys_file, PathBuf::from("/data/keys.json"));
        std::fs::write(&p, "[server.limits]\nmax_body = 1\n").unwrap();
        assert!(
            FileConfig::load(Some(&p)).is_err(),
            "unknown limit keys are errors"
        );
    }

    #[test]
    fn rotation_flags_beat_file_beat_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        let d = RotationSettings::default();
        let none = RotationOverrides::default();
        assert_eq!(resolve_rotation(&none, &FileConfig::default()).unwrap(), d);
        assert_eq!(d.catch_up_grace, Some(chrono::Duration::hours(1)));
        assert_eq!((d.keep_open, d.min_retention_days), (true, 30));
        std::fs::write(
            &p,
            "[rotation]\ncompress_after = \"2d\"\ndelete_after = \"off\"\nmax_total_size = 1000\nrotate_at = \"off\"\n\
             catch_up_grace = \"off\"\nkeep_open = false\nmin_retention_days = 7\n",
        )
        .unwrap();
        let file = FileConfig::load(Some(&p)).unwrap();
        let r = resolve_rotation(&none, &file).unwrap();
        assert_eq!(r.catch_up_grace, None);
        assert_eq!((r.keep_open, r.min_retention_days), (false, 7));
        let r2 = resolve_rotation(
            &RotationOverrides {
                keep_open: Some(true),
                min_retention_days: Some(60),
                catch_up_grace: Some(Some(chrono::Duration::minutes(30))),
                ..Default::default()
            },
            &file,
        )
        .unwrap();
        assert_eq!((r2.keep_open, r2.min_retention_days), (true, 60));
        assert_eq!(r2.catch_up_grace, Some(chrono::Duration::minutes(30)));
        assert_eq!(r.policy.compress_after, Some(chrono::Duration::days(2)));
        assert_eq!(r.policy.delete_after, None);
        assert_eq!(r.policy.max_total_size, Some(1000));
        assert_eq!(r.rotate_at, None);
        let over = RotationOverrides {
            compress_after: Some(Some(chrono::Duration::hours(12))),
            max_total_size: Some(None),
            ..Default::default()
        };
        let r = resolve_rotation(&over, &file).unwrap();
        assert_eq!(r.policy.compress_after, Some(chrono::Duration::hours(12)));
        assert_eq!(r.policy.max_total_size, None);
        std::fs::write(&p, "[rotation]\nmax_total_size = \"lots\"\n").unwrap();
        let file = FileConfig::load(Some(&p)).unwrap();
        let e = resolve_rotation(&none, &file).unwrap_err().to_string();
        assert!(e.contains("max_total_size") && e.contains("lots"), "{e}");
    }

    #[test]
    fn dedup_rules_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        assert!(resolve_dedup(&FileConfig::default()).unwrap().is_empty());
        std::fs::write(
            &p,
            "[[dedup]]\nevent_types = [\"login_failed\", \"auth_login\"]\nper = \"10m\"\nmax = 1\n\
             [[dedup]]\nevent_types = [\"deploy\"]\nper = \"1h\"\nmax = 5\n",
        )
        .unwrap();
        let rules = resolve_dedup(&FileConfig::load(Some(&p)).unwrap()).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].event_types, ["login_failed", "auth_login"]);
        assert_eq!(rules[0].per, chrono::Duration::minutes(10));
        assert_eq!(
            (rules[1].max, rules[1].per),
            (5, chrono::Duration::hours(1))
        );
        for (bad, names) in [
            (
                "event_types = [\"Bad Type\"]\nper = \"10m\"\nmax = 1",
                "event_types",
            ),
            ("event_types = []\nper = \"10m\"\nmax = 1", "event_types"),
            ("event_types = [\"x\"]\nper = \"off\"\nmax = 1", "per"),
            ("event_types = [\"x\"]\nper = \"10m\"\nmax = 0", "max"),
        ] {
            std::fs::write(&p, format!("[[dedup]]\n{bad}\n")).unwrap();
            let e = resolve_dedup(&FileConfig::load(Some(&p)).unwrap())
                .unwrap_err()
                .to_string();
            assert!(e.contains(names) && e.contains("#1"), "{e}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "storage = \"x\"\n").unwrap();
        let e = FileConfig::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("storage"), "{e}");
        std::fs::write(&p, "durability = \"sometimes\"\n").unwrap();
        assert!(FileConfig::load(Some(&p)).is_err());
        assert!(FileConfig::load(Some(&dir.path().join("missing.toml"))).is_err());
    }
}
