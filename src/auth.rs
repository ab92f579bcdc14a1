//! API keys: the keys file, roles, and who a presented key belongs to.
//!
//! The keys file (`<storage>/keys.json` by default, JSON) lists each key's
//! SHA-256 hash, never the key itself, with its role, user, label and
//! creation time; a revoked key stays listed with its revocation time. The
//! file is created with mode 0600 and refused when group or others may read
//! it. `evlog keys` edits it under a lock (`<file>.lock`, an flock held for
//! one read-modify-write; safe to delete when no `evlog keys` runs) and
//! replaces it atomically (temp file, fsync, rename), so the server, which
//! reloads it when it changes, never reads half a file.
//!
//! A key is `evk_` + 64 hex digits (32 random bytes). Presented keys are
//! hashed and compared with every stored hash in constant time. A key may
//! carry an expiry (`expires`, RFC 3339): from then on it authenticates no one.
//!
//! [`KeyStore`] is the server's view of the file, and it fails closed: while
//! the file cannot be used (unreadable, not JSON, loose permissions) no key
//! is accepted, and while it does not exist it holds no key, so that a
//! revocation is never undone by a broken file. Every change of the keys in
//! force moves its generation ([`KeyStore::subscribe`]), which open streams
//! watch to check their key again.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

mod store;

pub use store::{KeyStore, KeysStatus, Reload};

/// Name of the keys file in the storage directory (the default location).
pub const KEYS_FILE: &str = "keys.json";
/// Every key starts with this.
pub const KEY_PREFIX: &str = "evk_";
/// Mode of the keys file.
pub const KEYS_FILE_MODE: u32 = 0o600;
/// Users the server's own events are recorded as (`anonymous` for denials
/// of requests without a valid key, `evlog` for start and stop): no `user`
/// key may act as them, or it would read those events.
pub const RESERVED_USERS: &[&str] = &["anonymous", "evlog"];

/// What a key may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Admin,
    /// Reads only its own user's events; appends only as its own user.
    User,
    /// Appends for any user; reads nothing.
    Service,
}

impl Role {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
            Role::Service => "service",
        }
    }
}

/// One key of the keys file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Public name of the key (`k_` + 12 hex digits), for `keys list` and `keys revoke`.
    pub id: String,
    /// SHA-256 of the key, hex.
    pub hash: String,
    /// What it may do.
    pub role: Role,
    /// The user it acts as (for `user` keys, the only user it may read and append as).
    pub user_id: String,
    /// A note for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// When it was created (RFC 3339).
    pub created: String,
    /// When it was revoked (RFC 3339); a revoked key authenticates no one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
    /// When it expires (RFC 3339); from then on it authenticates no one.
    /// Absent: never (files written before expiries existed load as they were).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// The tenant it belongs to; absent: the default tenant (files written
    /// before tenants existed load and save as they were).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// An admin key of every tenant (`--all-tenants`): reads any tenant's
    /// events (`tenant=` picks one) and runs what acts on whole days.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_tenants: bool,
}

impl KeyEntry {
    /// Its expiry, if it has one (and it parses: [`KeysFile::load`] refuses
    /// a file where one does not).
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires
            .as_deref()
            .and_then(|e| crate::event::parse_timestamp(e).ok())
    }

    /// Whether it has expired at `now`.
    pub fn expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at().is_some_and(|at| now >= at)
    }

    /// Why its tenant fields are not those of a key, if they are not: a
    /// tenant must be a tenant's name, and only an admin key without a
    /// tenant may be of every tenant.
    fn tenancy_error(&self) -> Option<String> {
        if let Some(t) = &self.tenant
            && !crate::event::is_valid_tenant(t)
        {
            return Some(format!("tenant `{t}` {}", crate::event::TENANT_RULE));
        }
        if self.all_tenants && self.role != Role::Admin {
            return Some(format!(
                "--all-tenants is for admin keys only (a {} key belongs to one tenant)",
                self.role.as_str()
            ));
        }
        if self.all_tenants && self.tenant.is_some() {
            return Some(
                "a key is of one tenant (--tenant) or of all (--all-tenants), not both".into(),
            );
        }
        None
    }

    /// Its tenant for humans: its name, `-` for the default tenant, `*` for every tenant.
    pub fn tenant_shown(&self) -> &str {
        if self.all_tenants {
            "*"
        } else {
            self.tenant.as_deref().unwrap_or("-")
        }
    }
}

/// The keys file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    /// Format version (1).
    pub version: u32,
    /// Every key ever added, revoked ones included.
    pub keys: Vec<KeyEntry>,
}

impl Default for KeysFile {
    fn default() -> Self {
        KeysFile {
            version: 1,
            keys: Vec::new(),
        }
    }
}

/// Who presented a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's public id.
    pub key_id: String,
    /// Its role.
    pub role: Role,
    /// Its user.
    pub user_id: String,
    /// Its tenant (`None`: the default tenant).
    pub tenant: Option<String>,
    /// An admin key of every tenant.
    pub all_tenants: bool,
}

impl Principal {
    /// A key of the default tenant.
    pub fn new(key_id: impl Into<String>, role: Role, user_id: impl Into<String>) -> Principal {
        Principal {
            key_id: key_id.into(),
            role,
            user_id: user_id.into(),
            tenant: None,
            all_tenants: false,
        }
    }

    /// The one tenant whose events the key reads and appends, as indexed
    /// (its name, or [`DEFAULT_TENANT`](crate::event::DEFAULT_TENANT)); `None`
    /// for an all-tenants admin, which may act for any.
    pub fn tenant_scope(&self) -> Option<&str> {
        if self.all_tenants {
            None
        } else {
            Some(
                self.tenant
                    .as_deref()
                    .unwrap_or(crate::event::DEFAULT_TENANT),
            )
        }
    }

    /// The tenant the server's own events about this key belong to: its
    /// tenant (`None`: the default tenant, also for an all-tenants admin).
    pub fn event_tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }
}

/// What can go wrong with keys.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the keys file.
    #[error("keys file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a keys file.
    #[error("keys file {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Group or others may read the file.
    #[error(
        "keys file {} is accessible by group or others (mode {mode:o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// `keys revoke` of an id that is not in the file.
    #[error("no key with id `{0}` (see `evlog keys list`)")]
    UnknownId(String),
    /// A bad `--user` or `--label`.
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// SHA-256 of a key.
fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random number generator");
    hex::encode(buf)
}

impl KeysFile {
    /// Reads `path`; a missing file is an empty one. Refuses a file that
    /// group or others may read.
    pub fn load(path: &Path) -> Result<KeysFile, Error> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(KeysFile::default()),
            Err(e) => return Err(io(path)(e)),
        };
        check_mode(path)?;
        let file: KeysFile = serde_json::from_str(&text).map_err(|e| Error::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if file.version != 1 {
            return Err(Error::Parse {
                path: path.to_path_buf(),
                message: format!("unknown version {} (this evlog reads 1)", file.version),
            });
        }
        for k in &file.keys {
            if let Some(why) = k.tenancy_error() {
                return Err(Error::Parse {
                    path: path.to_path_buf(),
                    message: format!("key {}: {why}", k.id),
                });
            }
            if let Some(e) = &k.expires
                && let Err(err) = crate::event::parse_timestamp(e)
            {
                return Err(Error::Parse {
                    path: path.to_path_buf(),
                    message: format!(
                        "key {}: expires `{e}` is not an RFC 3339 time ({err})",
                        k.id
                    ),
                });
            }
        }
        Ok(file)
    }

    /// Writes the file atomically with mode 0600 (temp file, fsync, rename,
    /// directory fsync).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(d) = dir {
            create_dir(d)?;
        }
        let tmp = path.with_extension("json.tmp");
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(KEYS_FILE_MODE)
            .open(&tmp)
            .map_err(io(&tmp))?;
        // An existing temp file keeps its mode; make sure.
        f.set_permissions(std::fs::Permissions::from_mode(KEYS_FILE_MODE))
            .map_err(io(&tmp))?;
        let mut text = serde_json::to_vec_pretty(self).expect("keys serialize");
        text.push(b'\n');
        f.write_all(&text).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))?;
        crate::store::sync_dir(dir.unwrap_or(Path::new("."))).map_err(io(path))?;
        Ok(())
    }

    /// Adds a new key; returns the key (shown once, stored only hashed) and its entry.
    pub fn add(
        &mut self,
        role: Role,
        user_id: &str,
        label: Option<&str>,
    ) -> Result<(String, KeyEntry), Error> {
        self.add_expiring(role, user_id, label, None)
    }

    /// Adds a new key that stops authenticating at `expires` (which must be
    /// in the future), or never with `None`; as [`KeysFile::add`] otherwise.
    pub fn add_expiring(
        &mut self,
        role: Role,
        user_id: &str,
        label: Option<&str>,
        expires: Option<DateTime<Utc>>,
    ) -> Result<(String, KeyEntry), Error> {
        self.add_scoped(role, user_id, label, expires, None, false)
    }

    /// Adds a new key of `tenant` (`None`: the default tenant), or, for an
    /// admin key with `all_tenants`, of every tenant; as
    /// [`KeysFile::add_expiring`] otherwise.
    pub fn add_scoped(
        &mut self,
        role: Role,
        user_id: &str,
        label: Option<&str>,
        expires: Option<DateTime<Utc>>,
        tenant: Option<&str>,
        all_tenants: bool,
    ) -> Result<(String, KeyEntry), Error> {
        let now = Utc::now();
        if let Some(at) = expires.filter(|at| *at <= now) {
            return Err(Error::Invalid(format!(
                "--expires {} is not in the future",
                crate::event::format_timestamp(&at)
            )));
        }
        let n = user_id.chars().count();
        if n == 0 || n > crate::event::MAX_USER_ID_CHARS {
            return Err(Error::Invalid(format!(
                "--user must be 1 to {} characters (got {n})",
                crate::event::MAX_USER_ID_CHARS
            )));
        }
        if role == Role::User && RESERVED_USERS.contains(&user_id) {
            return Err(Error::Invalid(format!(
                "--user {user_id}: the server records its own events (denials of requests without a key, start, stop) as user `{user_id}`; a user key for it would read them"
            )));
        }
        if label.is_some_and(|l| l.chars().count() > 256) {
            return Err(Error::Invalid(
                "--label must be at most 256 characters".into(),
            ));
        }
        let key = format!("{KEY_PREFIX}{}", random_hex(32));
        let entry = KeyEntry {
            id: format!("k_{}", random_hex(6)),
            hash: hex::encode(digest(&key)),
            role,
            user_id: user_id.to_string(),
            label: label.map(str::to_string),
            created: crate::event::format_timestamp(&now),
            revoked: None,
            expires: expires.map(|at| crate::event::format_timestamp(&at)),
            tenant: tenant.map(str::to_string),
            all_tenants,
        };
        if let Some(why) = entry.tenancy_error() {
            let why = why.replacen("tenant `", "--tenant `", 1);
            return Err(Error::Invalid(why));
        }
        self.keys.push(entry.clone());
        Ok((key, entry))
    }

    /// Marks the key `id` revoked (revoking twice keeps the first time).
    pub fn revoke(&mut self, id: &str) -> Result<KeyEntry, Error> {
        let entry = self
            .keys
            .iter_mut()
            .find(|k| k.id == id)
            .ok_or_else(|| Error::UnknownId(id.to_string()))?;
        if entry.revoked.is_none() {
            entry.revoked = Some(crate::event::format_timestamp(&chrono::Utc::now()));
        }
        Ok(entry.clone())
    }

    /// The keys that authenticate.
    pub fn active(&self) -> impl Iterator<Item = &KeyEntry> {
        self.keys.iter().filter(|k| k.revoked.is_none())
    }
}

/// Loads `path`, applies `f` and saves the result, holding `<path>.lock` so
/// that concurrent `evlog keys` runs do not lose each other's changes.
pub fn update<T>(
    path: &Path,
    f: impl FnOnce(&mut KeysFile) -> Result<T, Error>,
) -> Result<T, Error> {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_dir(d)?;
    }
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(KEYS_FILE_MODE)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    lock.lock().map_err(io(&lock_path))?;
    let mut file = KeysFile::load(path)?;
    let out = f(&mut file)?;
    file.save(path)?;
    Ok(out)
}

/// Creates the keys file's directory (and parents) if missing, with the
/// storage directory's mode (0750).
fn create_dir(d: &Path) -> Result<(), Error> {
    std::os::unix::fs::DirBuilderExt::mode(
        std::fs::DirBuilder::new().recursive(true),
        crate::store::STORAGE_DIR_MODE,
    )
    .create(d)
    .map_err(io(d))
}

fn check_mode(path: &Path) -> Result<(), Error> {
    let mode = std::fs::metadata(path).map_err(io(path))?.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// A key of [`Keys`]: its hash, who it is and until when.
#[derive(Debug)]
struct Entry {
    hash: [u8; 32],
    principal: Principal,
    expires: Option<DateTime<Utc>>,
}

/// The keys of a keys file that are not revoked, ready for lookups.
#[derive(Debug, Default)]
pub struct Keys {
    entries: Vec<Entry>,
}

/// A presented key that authenticates: who, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// Who presented it.
    pub principal: Principal,
    /// When it expires (none: never).
    pub expires: Option<DateTime<Utc>>,
}

/// Why a presented key is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// Not a key of the file, or a revoked one.
    Unknown,
    /// A key of the file past its expiry.
    Expired {
        /// The key's public id.
        key_id: String,
        /// When it expired.
        at: DateTime<Utc>,
    },
    /// The keys file does not exist: there are no keys.
    NoKeysFile,
    /// The keys file cannot be used (why, without its path): no key is
    /// accepted until it loads again.
    Unavailable(String),
}

impl Keys {
    /// The keys of `file` that are not revoked (entries with a malformed
    /// hash are skipped).
    pub fn new(file: &KeysFile) -> Keys {
        let entries = file
            .active()
            .filter_map(|k| {
                let mut h = [0u8; 32];
                hex::decode_to_slice(&k.hash, &mut h).ok()?;
                Some(Entry {
                    hash: h,
                    principal: Principal {
                        key_id: k.id.clone(),
                        role: k.role,
                        user_id: k.user_id.clone(),
                        tenant: k.tenant.clone(),
                        all_tenants: k.all_tenants,
                    },
                    expires: k.expires_at(),
                })
            })
            .collect();
        Keys { entries }
    }

    /// Who `presented` belongs to at `now`. Compares the hash with every
    /// stored hash in constant time, whatever matches.
    pub fn check(&self, presented: &str, now: DateTime<Utc>) -> Result<Granted, Denied> {
        let h = digest(presented);
        let mut found = None;
        for e in &self.entries {
            if bool::from(e.hash.ct_eq(&h)) {
                found = Some(e);
            }
        }
        let e = found.ok_or(Denied::Unknown)?;
        match e.expires {
            Some(at) if now >= at => Err(Denied::Expired {
                key_id: e.principal.key_id.clone(),
                at,
            }),
            expires => Ok(Granted {
                principal: e.principal.clone(),
                expires,
            }),
        }
    }

    /// Who `presented` belongs to, if it is a key that authenticates now.
    pub fn authenticate(&self, presented: &str) -> Option<&Principal> {
        let g = self.check(presented, Utc::now()).ok()?;
        self.entries
            .iter()
            .map(|e| &e.principal)
            .find(|p| **p == g.principal)
    }

    /// How many keys authenticate at `now` (neither revoked nor expired).
    pub fn active_at(&self, now: DateTime<Utc>) -> usize {
        self.entries
            .iter()
            .filter(|e| e.expires.is_none_or(|at| now < at))
            .count()
    }

    /// How many keys authenticate now.
    pub fn len(&self) -> usize {
        self.active_at(Utc::now())
    }

    /// Whether no key authenticates now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::SubsecRound;

    #[test]
    fn added_keys_authenticate_until_revoked_and_are_stored_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let (key, entry) = update(&path, |f| f.add(Role::User, "alice", Some("laptop"))).unwrap();
        assert!(key.starts_with(KEY_PREFIX) && key.len() == 4 + 64);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&key[4..]), "the key itself is never stored");
        assert!(!text.contains("expires"), "no expiry unless asked for");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let store = KeyStore::open(&path).unwrap();
        let p = store.keys().authenticate(&key).cloned().unwrap();
        assert_eq!((p.role, p.user_id.as_str()), (Role::User, "alice"));
        assert_eq!(p.key_id, entry.id);
        assert!(store.keys().authenticate("evk_nope").is_none());
        assert_eq!(store.reload_if_changed(), Reload::Unchanged);

        update(&path, |f| f.revoke(&entry.id)).unwrap();
        assert_eq!(
            store.reload_if_changed(),
            Reload::Loaded {
                active: 0,
                recovered: false
            }
        );
        assert!(store.keys().authenticate(&key).is_none());
        assert_eq!(
            store.authenticate(&key, Utc::now()),
            Err(Denied::Unknown),
            "a revoked key is unknown"
        );
        let listed = KeysFile::load(&path).unwrap();
        assert!(listed.keys[0].revoked.is_some(), "revoked keys stay listed");
        assert!(matches!(
            update(&path, |f| f.revoke("k_missing")),
            Err(Error::UnknownId(_))
        ));
        assert!(matches!(
            update(&path, |f| f.add(Role::Admin, "", None)),
            Err(Error::Invalid(_))
        ));
        for reserved in RESERVED_USERS {
            assert!(matches!(
                update(&path, |f| f.add(Role::User, reserved, None)),
                Err(Error::Invalid(_))
            ));
        }
    }

    #[test]
    fn a_group_readable_keys_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        update(&path, |f| f.add(Role::Admin, "ops", None)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = KeysFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        assert!(KeyStore::open(&path).is_err());
    }

    /// Keys files written before keys could expire (no `expires` field)
    /// load as they were, and their keys never expire.
    #[test]
    fn keys_files_without_expiries_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let key = format!("{KEY_PREFIX}{}", "ab".repeat(32));
        let old = format!(
            r#"{{"version":1,"keys":[{{"id":"k_000000000001","hash":"{}","role":"user","user_id":"alice","created":"2026-01-01T00:00:00.000000Z"}},
               {{"id":"k_000000000002","hash":"{}","role":"admin","user_id":"ops","created":"2026-01-01T00:00:00.000000Z","revoked":"2026-01-02T00:00:00.000000Z"}}]}}"#,
            hex::encode(digest(&key)),
            "00".repeat(32)
        );
        std::fs::write(&path, old).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let file = KeysFile::load(&path).unwrap();
        assert_eq!(file.keys.len(), 2);
        assert!(file.keys.iter().all(|k| k.expires.is_none()));
        let far = "2261-01-01T00:00:00Z".parse().unwrap();
        let g = Keys::new(&file).check(&key, far).unwrap();
        assert_eq!((g.principal.user_id.as_str(), g.expires), ("alice", None));
        // Rewriting it (any `evlog keys` change) keeps it readable the old way.
        update(&path, |_| Ok(())).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("expires"));
        // Nor tenants: its keys are of the default tenant, and say nothing of it.
        assert!(!text.contains("tenant"), "{text}");
        assert!(
            file.keys
                .iter()
                .all(|k| k.tenant.is_none() && !k.all_tenants)
        );
        assert_eq!(
            g.principal.tenant_scope(),
            Some(crate::event::DEFAULT_TENANT)
        );
    }

    /// A key belongs to one tenant, or (an admin key) to all; the keys file
    /// keeps which, and a hand-edited file that breaks the rule is refused
    /// as a whole (fail closed), not read as some other scope.
    #[test]
    fn tenant_keys_carry_their_scope_and_only_admins_span_tenants() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let (acme, _) = update(&path, |f| {
            f.add_scoped(Role::User, "alice", None, None, Some("acme"), false)
        })
        .unwrap();
        let (all, _) = update(&path, |f| {
            f.add_scoped(Role::Admin, "root", None, None, None, true)
        })
        .unwrap();
        let keys = Keys::new(&KeysFile::load(&path).unwrap());
        let p = keys.check(&acme, Utc::now()).unwrap().principal;
        assert_eq!(
            (p.tenant.as_deref(), p.tenant_scope()),
            (Some("acme"), Some("acme"))
        );
        let p = keys.check(&all, Utc::now()).unwrap().principal;
        assert!(p.all_tenants && p.tenant_scope().is_none());
        for (role, tenant, all_tenants, why) in [
            (
                Role::User,
                None,
                true,
                "--all-tenants is for admin keys only",
            ),
            (
                Role::Service,
                None,
                true,
                "--all-tenants is for admin keys only",
            ),
            (Role::Admin, Some("acme"), true, "not both"),
            (
                Role::Admin,
                Some("Acme"),
                false,
                "--tenant `Acme` must match",
            ),
            (Role::User, Some("_"), false, "--tenant `_` must match"),
        ] {
            let e = update(&path, |f| {
                f.add_scoped(role, "u", None, None, tenant, all_tenants)
            })
            .unwrap_err()
            .to_string();
            assert!(e.contains(why), "{e}");
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(r#""tenant": "acme""#) && text.contains(r#""all_tenants": true"#));
        let bad = text.replacen(r#""role": "admin""#, r#""role": "service""#, 1);
        std::fs::write(&path, bad).unwrap();
        let e = KeysFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("--all-tenants is for admin keys only"), "{e}");
    }

    #[test]
    fn an_expired_key_is_denied_as_expired() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let at = Utc::now() + chrono::Duration::days(30);
        let (key, entry) = update(&path, |f| {
            f.add_expiring(Role::User, "alice", None, Some(at))
        })
        .unwrap();
        assert_eq!(entry.expires_at(), Some(at.trunc_subsecs(6)));
        let keys = Keys::new(&KeysFile::load(&path).unwrap());
        let before = at - chrono::Duration::seconds(1);
        let g = keys.check(&key, before).unwrap();
        assert_eq!(g.expires, Some(at.trunc_subsecs(6)));
        assert_eq!(keys.active_at(before), 1);
        assert_eq!(
            keys.check(&key, at),
            Err(Denied::Expired {
                key_id: entry.id.clone(),
                at: at.trunc_subsecs(6)
            })
        );
        assert_eq!(keys.active_at(at), 0);
        // A past expiry is refused; a hand-written one that does not parse
        // makes the file invalid (fail closed, not "never expires").
        let past = Utc::now() - chrono::Duration::seconds(1);
        let e = update(&path, |f| {
            f.add_expiring(Role::User, "bob", None, Some(past))
        })
        .unwrap_err();
        assert!(e.to_string().contains("not in the future"), "{e}");
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace(&entry.expires.clone().unwrap(), "next tuesday");
        std::fs::write(&path, text).unwrap();
        let e = KeysFile::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("expires `next tuesday` is not an RFC 3339 time"),
            "{e}"
        );
    }
}
