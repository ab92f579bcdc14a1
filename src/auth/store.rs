//! [`KeyStore`]: the server's keys, reloaded when the keys file changes,
//! failing closed while it cannot be used.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};

use super::{Denied, Error, Granted, Keys, KeysFile};

/// Identity of a file version: modification and change times, size,
/// device, inode and mode (a `chmod` changes only the last two of these).
type Stamp = (Option<SystemTime>, i64, i64, u64, u64, u64, u32);

/// What a look at the keys file found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Observed {
    File(Stamp),
    Missing,
    /// `stat` failed other than with "not found" (e.g. a directory that
    /// lost its search permission).
    Unreadable(String),
}

fn observe(path: &Path) -> Observed {
    match std::fs::metadata(path) {
        Ok(m) => Observed::File((
            m.modified().ok(),
            m.ctime(),
            m.ctime_nsec(),
            m.len(),
            m.dev(),
            m.ino(),
            m.mode(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Observed::Missing,
        Err(e) => Observed::Unreadable(e.to_string()),
    }
}

/// The keys in force, or why there are none.
#[derive(Debug, Clone)]
enum Loaded {
    Keys(Arc<Keys>),
    Missing,
    /// Why the file cannot be used, without its path (for `/health`).
    Unusable(String),
}

/// Why a keys file cannot be used, without its path (the server log has
/// the path; `/health`, which anyone may read, gets this).
fn unusable_reason(e: &Error) -> String {
    match e {
        Error::Io { source, .. } => format!("the keys file cannot be read: {source}"),
        Error::Parse { message, .. } => format!("the keys file is not valid: {message}"),
        Error::Permissions { mode, .. } => {
            format!("the keys file is accessible by group or others (mode {mode:o})")
        }
        other => other.to_string(),
    }
}

/// Loads what `seen` found: the keys, or why there are none. The second
/// value is the error with its path, for the server log.
fn load(path: &Path, seen: &Observed) -> (Loaded, Option<String>) {
    match seen {
        Observed::Missing => (Loaded::Missing, None),
        Observed::Unreadable(e) => (
            Loaded::Unusable(format!("the keys file cannot be read: {e}")),
            Some(format!("keys file {}: {e}", path.display())),
        ),
        Observed::File(_) => match KeysFile::load(path) {
            Ok(f) => (Loaded::Keys(Arc::new(Keys::new(&f))), None),
            Err(e) => (Loaded::Unusable(unusable_reason(&e)), Some(e.to_string())),
        },
    }
}

/// How often a keys file that failed to load is tried again although it did
/// not change (an I/O error may pass).
const RETRY_UNUSABLE: Duration = Duration::from_secs(1);

/// What [`KeyStore::reload_if_changed`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// Nothing changed (or the file fails again the same way).
    Unchanged,
    /// The file changed and loaded.
    Loaded {
        /// Keys that authenticate now.
        active: usize,
        /// Whether the keys were missing or unusable before.
        recovered: bool,
    },
    /// The file was removed: there are no keys.
    Missing,
    /// The file cannot be used (the error, with its path): no key is
    /// accepted until it loads again.
    Unusable(String),
}

/// What `/health` says about the keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysStatus {
    /// `ok`, `missing` (the file does not exist: no key is accepted) or
    /// `unavailable` (it cannot be used: no key is accepted).
    pub state: &'static str,
    /// Keys that authenticate now.
    pub active: usize,
    /// What is wrong (without the file's path), unless `ok`.
    pub message: Option<String>,
    /// When the keys in force (or the failure) were loaded.
    pub since: DateTime<Utc>,
}

struct Current {
    loaded: Loaded,
    since: DateTime<Utc>,
}

/// The keys of a keys file, reloaded when the file changes (the server).
/// Fails closed: see the module documentation.
pub struct KeyStore {
    path: PathBuf,
    current: RwLock<Current>,
    /// The file as last loaded and when; held for a whole reload, so that
    /// concurrent callers see (and report) each change once.
    seen: Mutex<(Observed, Instant)>,
    /// Moves on every change of the keys in force.
    generation: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// Loads `path`, which must pass [`KeysFile::load`]; a missing file
    /// holds no keys (until it exists).
    pub fn open(path: &Path) -> Result<KeyStore, Error> {
        let seen = observe(path);
        let loaded = match seen {
            Observed::Missing => Loaded::Missing,
            _ => Loaded::Keys(Arc::new(Keys::new(&KeysFile::load(path)?))),
        };
        Ok(KeyStore {
            path: path.to_path_buf(),
            current: RwLock::new(Current {
                loaded,
                since: Utc::now(),
            }),
            seen: Mutex::new((seen, Instant::now())),
            generation: tokio::sync::watch::channel(0).0,
        })
    }

    fn loaded(&self) -> Loaded {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .loaded
            .clone()
    }

    /// The keys in force (none while the file is missing or unusable).
    pub fn keys(&self) -> Arc<Keys> {
        match self.loaded() {
            Loaded::Keys(k) => k,
            _ => Arc::new(Keys::default()),
        }
    }

    /// Who `presented` belongs to at `now`, or why it is not accepted.
    pub fn authenticate(&self, presented: &str, now: DateTime<Utc>) -> Result<Granted, Denied> {
        match self.loaded() {
            Loaded::Keys(k) => k.check(presented, now),
            Loaded::Missing => Err(Denied::NoKeysFile),
            Loaded::Unusable(why) => Err(Denied::Unavailable(why)),
        }
    }

    /// The keys' state for `/health`.
    pub fn status(&self, now: DateTime<Utc>) -> KeysStatus {
        let cur = self.current.read().unwrap_or_else(|e| e.into_inner());
        let (state, active, message) = match &cur.loaded {
            Loaded::Keys(k) => ("ok", k.active_at(now), None),
            Loaded::Missing => (
                "missing",
                0,
                Some("the keys file does not exist: no key is accepted".to_string()),
            ),
            Loaded::Unusable(why) => (
                "unavailable",
                0,
                Some(format!("{why}; no key is accepted until it loads")),
            ),
        };
        KeysStatus {
            state,
            active,
            message,
            since: cur.since,
        }
    }

    /// A receiver whose value moves on every change of the keys in force.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The keys file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reloads the file if it changed since the last load (a `stat`
    /// otherwise; a file that failed to load is tried again every second).
    /// A file that cannot be used leaves no key in force, and a missing one
    /// none either: a revocation is never lost to a broken file. Reports
    /// each change once: a file that keeps failing the same way is
    /// [`Reload::Unchanged`].
    pub fn reload_if_changed(&self) -> Reload {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let now_seen = observe(&self.path);
        let retry =
            matches!(self.loaded(), Loaded::Unusable(_)) && seen.1.elapsed() >= RETRY_UNUSABLE;
        if now_seen == seen.0 && !retry {
            return Reload::Unchanged;
        }
        let (loaded, detail) = load(&self.path, &now_seen);
        *seen = (now_seen, Instant::now());
        let mut cur = self.current.write().unwrap_or_else(|e| e.into_inner());
        let reload = match (&cur.loaded, &loaded) {
            (Loaded::Missing, Loaded::Missing) => return Reload::Unchanged,
            (Loaded::Unusable(a), Loaded::Unusable(b)) if a == b => return Reload::Unchanged,
            (before, Loaded::Keys(k)) => Reload::Loaded {
                active: k.len(),
                recovered: !matches!(before, Loaded::Keys(_)),
            },
            (_, Loaded::Missing) => Reload::Missing,
            (_, Loaded::Unusable(why)) => Reload::Unusable(detail.unwrap_or_else(|| why.clone())),
        };
        *cur = Current {
            loaded,
            since: Utc::now(),
        };
        drop(cur);
        self.generation.send_modify(|g| *g += 1);
        reload
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::auth::{Role, update};

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Before: a keys file that failed to load kept the old keys in force,
    /// so a revocation written as a broken file (or with loose permissions)
    /// was lost, and the failure was logged every second.
    /// A keys file holding one key of `user`, and a store opened on it.
    struct OneKey {
        dir: tempfile::TempDir,
        path: PathBuf,
        key: String,
        /// The file's bytes.
        good: Vec<u8>,
        store: KeyStore,
    }

    fn one_key(role: Role, user: &str) -> OneKey {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let (key, _) = update(&path, |f| f.add(role, user, None)).unwrap();
        let good = std::fs::read(&path).unwrap();
        let store = KeyStore::open(&path).unwrap();
        OneKey {
            dir,
            path,
            key,
            good,
            store,
        }
    }

    /// Asserts that the next reload recovers the one key, which is accepted again.
    #[track_caller]
    fn accepted_again(store: &KeyStore, key: &str, now: DateTime<Utc>) {
        assert_eq!(
            store.reload_if_changed(),
            Reload::Loaded {
                active: 1,
                recovered: true
            }
        );
        assert!(store.authenticate(key, now).is_ok());
    }

    #[test]
    fn an_unusable_keys_file_accepts_no_key_until_it_loads_again_and_says_so_once() {
        let OneKey {
            dir: _dir,
            path,
            key,
            good,
            store,
        } = one_key(Role::Admin, "ops");
        let mut generation = store.subscribe();
        let now = Utc::now();
        assert!(store.authenticate(&key, now).is_ok());
        assert_eq!(store.status(now).state, "ok");

        std::fs::write(&path, b"{not json").unwrap();
        let Reload::Unusable(why) = store.reload_if_changed() else {
            panic!("a broken file is reported")
        };
        assert!(
            why.contains("keys.json") && why.contains("key must be a string"),
            "{why}"
        );
        assert!(generation.has_changed().unwrap());
        generation.mark_unchanged();
        let Err(Denied::Unavailable(reason)) = store.authenticate(&key, now) else {
            panic!("no key is accepted")
        };
        assert!(
            !reason.contains("keys.json"),
            "no path for clients: {reason}"
        );
        let st = store.status(now);
        assert_eq!((st.state, st.active), ("unavailable", 0));
        assert!(st.message.unwrap().contains("not valid"));
        // Reported once: tried again after the retry interval, the same failure is no news.
        std::thread::sleep(RETRY_UNUSABLE + Duration::from_millis(50));
        assert_eq!(store.reload_if_changed(), Reload::Unchanged);
        assert!(!generation.has_changed().unwrap());

        std::fs::write(&path, &good).unwrap();
        accepted_again(&store, &key, now);
        assert!(generation.has_changed().unwrap());

        // Loose permissions: no key until chmod 600 (seen by the mode and
        // change time: a chmod leaves the modification time alone).
        chmod(&path, 0o644);
        let Reload::Unusable(why) = store.reload_if_changed() else {
            panic!("loose permissions are reported")
        };
        assert!(why.contains("chmod 600"), "{why}");
        assert!(matches!(
            store.authenticate(&key, now),
            Err(Denied::Unavailable(_))
        ));
        chmod(&path, 0o600);
        assert!(matches!(
            store.reload_if_changed(),
            Reload::Loaded {
                recovered: true,
                ..
            }
        ));
        assert!(store.authenticate(&key, now).is_ok());
    }

    #[test]
    fn a_removed_keys_file_holds_no_keys_until_it_is_back() {
        let OneKey {
            dir,
            path,
            key,
            good,
            store,
        } = one_key(Role::User, "alice");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(store.reload_if_changed(), Reload::Missing);
        assert_eq!(store.reload_if_changed(), Reload::Unchanged);
        let now = Utc::now();
        assert_eq!(store.authenticate(&key, now), Err(Denied::NoKeysFile));
        assert_eq!(store.status(now).state, "missing");
        std::fs::write(&path, &good).unwrap();
        chmod(&path, 0o600);
        accepted_again(&store, &key, now);
        // A store opened on a missing file holds no keys either.
        let none = KeyStore::open(&dir.path().join("absent.json")).unwrap();
        assert_eq!(none.authenticate(&key, now), Err(Denied::NoKeysFile));
    }
}
