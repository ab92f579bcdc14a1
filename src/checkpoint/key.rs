//! The checkpoint signing key: an Ed25519 key in
//! `<storage>/checkpoint.key` (its 32-byte seed in hex), readable by its
//! owner only. Public keys are written as 64 hex digits.

use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};

/// The key file, in the storage directory.
pub const KEY_FILE: &str = "checkpoint.key";

/// Why a key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No key yet.
    #[error("no checkpoint key at {0}: create one with `evlog checkpoint init`")]
    Missing(PathBuf),
    /// `init` would replace a key.
    #[error(
        "{0} exists: a new key would leave the checkpoints signed so far verifiable only with \
         the old public key; to rotate the key, keep that public key and run `evlog checkpoint \
         init --rotate`"
    )]
    Exists(PathBuf),
    /// Others can read it.
    #[error(
        "{path} is readable by its group or others (mode {mode:o}): anyone who can read it can \
         sign checkpoints; `chmod 600 {path}` and, if it may have been read, rotate the key"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Not a key.
    #[error("{0}: not a checkpoint key (64 hex digits)")]
    Invalid(PathBuf),
    /// Not a public key.
    #[error("`{0}` is not a public key (64 hex digits, or a file holding them)")]
    InvalidPublic(String),
    /// The file system said no.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates a key in `dir` (mode 0600) and returns it. An existing key is
/// an error unless `rotate`, which moves it aside to
/// `checkpoint.key.<unix seconds>` (`.2`, `.3`… when taken; still 0600)
/// first. The key is written whole to a temporary file, fsynced, then
/// linked into place (which fails rather than replace a key another
/// `init` made meanwhile): a crash leaves no key or the whole key.
pub fn init(dir: &Path, rotate: bool) -> Result<SigningKey, KeyError> {
    let path = dir.join(KEY_FILE);
    if path.exists() {
        if !rotate {
            return Err(KeyError::Exists(path));
        }
        let stamp = chrono::Utc::now().timestamp();
        let aside = (1..)
            .map(|n| match n {
                1 => dir.join(format!("{KEY_FILE}.{stamp}")),
                n => dir.join(format!("{KEY_FILE}.{stamp}.{n}")),
            })
            .find(|p| !p.exists())
            .expect("a free name");
        // A hard link, then the unlink: never replaces a key set aside.
        std::fs::hard_link(&path, &aside).map_err(io_err(&aside))?;
        std::fs::remove_file(&path).map_err(io_err(&path))?;
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the operating system's random number generator");
    let key = SigningKey::from_bytes(&seed);
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join(format!(".{KEY_FILE}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(format!("{}\n", hex::encode(seed)).as_bytes())?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, &path)
    })();
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(KeyError::Exists(path)),
        Err(e) => return Err(io_err(&path)(e)),
    }
    crate::store::sync_dir(dir).map_err(io_err(dir))?;
    Ok(key)
}

/// The key of `dir`, refused when its group or others may read it.
pub fn load(dir: &Path) -> Result<SigningKey, KeyError> {
    let path = dir.join(KEY_FILE);
    // One open, not following a symbolic link; the mode checked is the
    // opened file's.
    let mut f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(KeyError::Missing(path)),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(io_err(&path)(io::Error::other(
                "a symbolic link: the key is read from a plain file only",
            )));
        }
        Err(e) => return Err(io_err(&path)(e)),
    };
    let meta = f.metadata().map_err(io_err(&path))?;
    if !meta.is_file() {
        return Err(io_err(&path)(io::Error::other(
            "not a plain file: the key is read from a plain file only",
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed { path, mode });
    }
    let mut text = String::new();
    io::Read::read_to_string(&mut f, &mut text).map_err(io_err(&path))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed).map_err(|_| KeyError::Invalid(path.clone()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// A public key as written: 64 hex digits.
pub fn public_hex(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().as_bytes())
}

/// A public key given on the command line: its 64 hex digits, or a file
/// holding them.
pub fn parse_public(given: &str) -> Result<VerifyingKey, KeyError> {
    let text = if Path::new(given).is_file() {
        std::fs::read_to_string(given).map_err(io_err(Path::new(given)))?
    } else {
        given.to_string()
    };
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes)
        .ok()
        .and_then(|()| VerifyingKey::from_bytes(&bytes).ok())
        .ok_or_else(|| KeyError::InvalidPublic(given.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_an_owner_only_key_that_loads_and_refuses_to_replace_it() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(load(dir.path()), Err(KeyError::Missing(_))));
        let key = init(dir.path(), false).unwrap();
        let path = dir.path().join(KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load(dir.path()).unwrap().to_bytes(), key.to_bytes());
        assert!(matches!(init(dir.path(), false), Err(KeyError::Exists(_))));
        let public = public_hex(&key);
        assert_eq!(parse_public(&public).unwrap(), key.verifying_key());
        let file = dir.path().join("pub.txt");
        std::fs::write(&file, format!("{public}\n")).unwrap();
        assert_eq!(
            parse_public(file.to_str().unwrap()).unwrap(),
            key.verifying_key()
        );
        assert!(parse_public("abc").is_err());
        // Rotation: a new key, each old one kept aside (twice in one
        // second too), nothing else left behind.
        let new = init(dir.path(), true).unwrap();
        assert_ne!(new.to_bytes(), key.to_bytes());
        let newer = init(dir.path(), true).unwrap();
        assert_eq!(load(dir.path()).unwrap().to_bytes(), newer.to_bytes());
        let mut kept: Vec<[u8; 32]> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("checkpoint.key.")
            })
            .map(|e| {
                let text = std::fs::read_to_string(e.path()).unwrap();
                let mut seed = [0u8; 32];
                hex::decode_to_slice(text.trim(), &mut seed).unwrap();
                seed
            })
            .collect();
        kept.sort();
        let mut want = [key.to_bytes(), new.to_bytes()];
        want.sort();
        assert_eq!(kept, want);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn a_symbolic_link_in_place_of_the_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        init(other.path(), false).unwrap();
        std::os::unix::fs::symlink(other.path().join(KEY_FILE), dir.path().join(KEY_FILE)).unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("a symbolic link"), "{e}");
    }

    #[test]
    fn a_key_readable_by_others_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), false).unwrap();
        let path = dir.path().join(KEY_FILE);
        for mode in [0o640, 0o604, 0o644] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = load(dir.path()).unwrap_err().to_string();
            assert!(
                e.contains("chmod 600") && e.contains(&format!("{mode:o}")),
                "{e}"
            );
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(load(dir.path()).is_ok());
    }
}
