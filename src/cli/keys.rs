//! `evlog keys add|list|revoke`: the API keys of the server. A running
//! server picks up changes within a second. Every change is recorded in the
//! log as a `system_config` event of the user `evlog` (naming the key by id,
//! never the key; the operator's login in its metadata).

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

use super::{Context, term};
use crate::auth::{self, KeyEntry, KeysFile, Role};
use crate::event::{Event, EventType, SERVER_APPENDER};
use crate::store::EventLog;

/// Flags of `evlog keys`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The keys file (default: the config file's server.keys_file, else <storage>/keys.json).
    #[arg(long, global = true, env = "EVLOG_KEYS_FILE", value_name = "FILE")]
    keys: Option<PathBuf>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Create a key and print it alone on standard output, once (only its
    /// hash is stored).
    Add {
        /// admin (everything), user (reads and appends only as --user) or
        /// service (appends for anyone, reads nothing).
        #[arg(long, value_enum)]
        role: Role,
        /// The user the key acts as.
        #[arg(long, value_name = "USER")]
        user: String,
        /// A note for humans (where the key is used).
        #[arg(long)]
        label: Option<String>,
        /// When the key stops authenticating: an RFC 3339 time
        /// (2027-01-31T00:00:00Z) or a time from now (30d, 12h, 2w). Default: never.
        #[arg(long, value_name = "TIME|AGE", value_parser = expires_arg)]
        expires: Option<chrono::DateTime<chrono::Utc>>,
        /// The tenant the key belongs to (^[a-z0-9][a-z0-9_-]{0,62}$): it
        /// reads and appends only that tenant's events. Default: the
        /// default tenant (events without `tenant`).
        #[arg(long, value_name = "TENANT", conflicts_with = "all_tenants")]
        tenant: Option<String>,
        /// An admin key of every tenant: reads any tenant's events and runs
        /// what acts on whole days (rotation). Admin keys only.
        #[arg(long)]
        all_tenants: bool,
    },
    /// List the keys (ids, roles, users, tenants: `-` the default tenant, `*`
    /// every tenant; never the keys).
    List {
        /// table (default on a terminal) or json.
        #[arg(long, value_enum)]
        format: Option<ListFormat>,
    },
    /// Revoke a key by id (it stays listed, marked revoked).
    Revoke {
        /// The key's id (`k_...`, see `evlog keys list`).
        id: String,
    },
}

/// `--expires`: an RFC 3339 time, or an age from now (`30d`, `12h`).
fn expires_arg(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(at) = crate::event::parse_timestamp(s) {
        return Ok(at);
    }
    match crate::rotate::parse_age(s) {
        Ok(Some(age)) if age > chrono::Duration::zero() => Ok(chrono::Utc::now() + age),
        Ok(_) => Err(format!(
            "`{s}`: a key cannot expire now or never; leave --expires out for a key that does not expire"
        )),
        Err(_) => Err(format!(
            "`{s}` is neither an RFC 3339 time (2027-01-31T00:00:00Z) nor an age from now (30d, 12h, 2w)"
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ListFormat {
    Table,
    Json,
}

pub(crate) fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let path = crate::settings::resolve_keys_file(args.keys, &ctx.file, &ctx.store.storage_path);
    match args.action {
        Action::Add {
            role,
            user,
            label,
            expires,
            tenant,
            all_tenants,
        } => {
            let (key, entry) = auth::update(&path, |f| {
                f.add_scoped(
                    role,
                    &user,
                    label.as_deref(),
                    expires,
                    tenant.as_deref(),
                    all_tenants,
                )
            })?;
            record(&ctx.open_log()?, "key added", &entry)?;
            println!("{key}");
        }
        Action::List { format } => {
            let file = KeysFile::load(&path)?;
            let now = chrono::Utc::now();
            let json = format.unwrap_or(if io::stdout().is_terminal() {
                ListFormat::Table
            } else {
                ListFormat::Json
            }) == ListFormat::Json;
            let mut out = io::stdout().lock();
            if json {
                // The stored hashes stay out of the listing too.
                let keys: Vec<_> = file
                    .keys
                    .iter()
                    .map(|k| {
                        json!({"id": k.id, "role": k.role, "user_id": k.user_id,
                               "label": k.label, "created": k.created, "revoked": k.revoked,
                               "expires": k.expires, "expired": k.expired_at(now),
                               "tenant": k.tenant, "all_tenants": k.all_tenants})
                    })
                    .collect();
                serde_json::to_writer_pretty(&mut out, &keys)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{:<16} {:<8} {:<20} {:<20} {:<28} {:<28} {:<37} LABEL",
                    "ID", "ROLE", "USER", "TENANT", "CREATED", "REVOKED", "EXPIRES"
                )?;
                for k in &file.keys {
                    let expires = match &k.expires {
                        None => "-".to_string(),
                        Some(e) if k.expired_at(now) => format!("{e} (expired)"),
                        Some(e) => e.clone(),
                    };
                    writeln!(
                        out,
                        "{:<16} {:<8} {:<20} {:<20} {:<28} {:<28} {:<37} {}",
                        k.id,
                        k.role.as_str(),
                        term::visible(&k.user_id),
                        k.tenant_shown(),
                        k.created,
                        k.revoked.as_deref().unwrap_or("-"),
                        expires,
                        term::visible(k.label.as_deref().unwrap_or(""))
                    )?;
                }
            }
        }
        Action::Revoke { id } => {
            let entry = auth::update(&path, |f| f.revoke(&id))?;
            record(&ctx.open_log()?, "key revoked", &entry)?;
            eprintln!(
                "revoked {id} ({} key of {})",
                entry.role.as_str(),
                entry.user_id
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Records a change of the keys as a `system_config` event, durable before
/// the command reports success. It is stored under the reserved user
/// `evlog` (no `user` key can be made for it), with the operator's login in
/// `metadata.operator`: stored under the login, a `user` key named like the
/// operator would read every key change. Like the server's own events, it
/// says `appended_by` `evlog` (no key appended it).
pub(crate) fn record(log: &EventLog, what: &str, k: &KeyEntry) -> anyhow::Result<()> {
    let mut event = Event::new(
        EventType::SystemConfig,
        SERVER_APPENDER,
        format!(
            "{what}: {} ({} key of {})",
            k.id,
            k.role.as_str(),
            k.user_id
        ),
    )
    .metadata(json!({
        "change": what,
        "key_id": k.id,
        "role": k.role,
        "key_user_id": k.user_id,
        "label": k.label,
        "operator": operator(),
        "tenant": k.tenant,
        "all_tenants": k.all_tenants,
    }))
    .appended_by(SERVER_APPENDER);
    // In the key's tenant, whose admins see its keys come and go.
    event.tenant = k.tenant.clone();
    log.append(event)?;
    Ok(())
}

/// Who runs the command: `$USER`, else `$LOGNAME`, else `uid N`.
pub(super) fn operator() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        // SAFETY: getuid has no preconditions and cannot fail.
        .unwrap_or_else(|| format!("uid {}", unsafe { libc::getuid() }))
}
