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
//! hashed and compared with every stored hash in constant time.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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
            created: crate::event::format_timestamp(&chrono::Utc::now()),
            revoked: None,
        };
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

/// The active keys of a keys file, ready for lookups.
#[derive(Debug, Default)]
pub struct Keys {
    entries: Vec<([u8; 32], Principal)>,
}

impl Keys {
    /// The active keys of `file` (entries with a malformed hash are skipped).
    pub fn new(file: &KeysFile) -> Keys {
        let entries = file
            .active()
            .filter_map(|k| {
                let mut h = [0u8; 32];
                hex::decode_to_slice(&k.hash, &mut h).ok()?;
                Some((
                    h,
                    Principal {
                        key_id: k.id.clone(),
                        role: k.role,
                        user_id: k.user_id.clone(),
                    },
                ))
            })
            .collect();
        Keys { entries }
    }

    /// Who `presented` belongs to, if it is an active key. Compares the hash
    /// with every stored hash in constant time, whatever matches.
    pub fn authenticate(&self, presented: &str) -> Option<&Principal> {
        let h = digest(presented);
        let mut found = None;
        for (stored, p) in &self.entries {
            if bool::from(stored.ct_eq(&h)) {
                found = Some(p);
            }
        }
        found
    }

    /// How many keys authenticate.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key authenticates.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Identity of a file version: modification time, size and inode.
type Stamp = (Option<SystemTime>, u64, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok(), m.len(), m.ino()))
}

/// The keys of a keys file, reloaded when the file changes (the server).
#[derive(Debug)]
pub struct KeyStore {
    path: PathBuf,
    current: RwLock<(Arc<Keys>, Option<Stamp>)>,
}

impl KeyStore {
    /// Loads `path` (which must pass [`KeysFile::load`]).
    pub fn open(path: &Path) -> Result<KeyStore, Error> {
        let st = stamp(path);
        let keys = Keys::new(&KeysFile::load(path)?);
        Ok(KeyStore {
            path: path.to_path_buf(),
            current: RwLock::new((Arc::new(keys), st)),
        })
    }

    /// The keys in force.
    pub fn keys(&self) -> Arc<Keys> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// The keys file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reloads the file if it changed since the last load. Returns the number
    /// of active keys after a reload, `None` when nothing changed. On an
    /// error (unreadable, bad JSON, loose permissions) the keys in force stay.
    pub fn reload_if_changed(&self) -> Result<Option<usize>, Error> {
        let st = stamp(&self.path);
        if st == self.current.read().unwrap_or_else(|e| e.into_inner()).1 {
            return Ok(None);
        }
        let keys = Keys::new(&KeysFile::load(&self.path)?);
        let n = keys.len();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = (Arc::new(keys), st);
        Ok(Some(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_keys_authenticate_until_revoked_and_are_stored_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let (key, entry) = update(&path, |f| f.add(Role::User, "alice", Some("laptop"))).unwrap();
        assert!(key.starts_with(KEY_PREFIX) && key.len() == 4 + 64);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&key[4..]), "the key itself is never stored");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let store = KeyStore::open(&path).unwrap();
        let p = store.keys().authenticate(&key).cloned().unwrap();
        assert_eq!((p.role, p.user_id.as_str()), (Role::User, "alice"));
        assert_eq!(p.key_id, entry.id);
        assert!(store.keys().authenticate("evk_nope").is_none());
        assert_eq!(store.reload_if_changed().unwrap(), None);

        update(&path, |f| f.revoke(&entry.id)).unwrap();
        assert_eq!(store.reload_if_changed().unwrap(), Some(0));
        assert!(store.keys().authenticate(&key).is_none());
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
    fn a_group_readable_keys_file_is_refused_and_a_bad_reload_keeps_the_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let (key, _) = update(&path, |f| f.add(Role::Admin, "ops", None)).unwrap();
        let store = KeyStore::open(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = KeysFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        // A reload that fails keeps the keys in force.
        std::fs::write(&path, b"{not json").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(store.reload_if_changed().is_err());
        assert!(store.keys().authenticate(&key).is_some());
    }
}
