//! The benches' options: `--name value` (or `--name=value`) on the command
//! line, else the environment variable `EVLOG_BENCH_<NAME>` (upper case, `-`
//! as `_`). `cargo bench` appends `--bench`, which is ignored, as is any bare word.

use std::collections::HashMap;
use std::path::PathBuf;

/// Options given on the command line.
pub struct Flags(HashMap<String, String>);

impl Flags {
    /// Reads the command line.
    pub fn parse() -> Flags {
        let mut flags = HashMap::new();
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let Some(name) = a.strip_prefix("--") else {
                continue;
            };
            if name == "bench" {
                continue;
            }
            match name.split_once('=') {
                Some((k, v)) => {
                    flags.insert(k.to_string(), v.to_string());
                }
                None => {
                    let v = args
                        .next()
                        .unwrap_or_else(|| panic!("--{name} wants a value"));
                    flags.insert(name.to_string(), v);
                }
            }
        }
        Flags(flags)
    }

    /// The value of option `name`, from the command line or the environment.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned().or_else(|| {
            let var = format!("EVLOG_BENCH_{}", name.to_uppercase().replace('-', "_"));
            std::env::var(var).ok().filter(|v| !v.is_empty())
        })
    }

    /// A number (`_` allowed as a separator), else `default`.
    pub fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        match self.get(name) {
            Some(s) => s
                .replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("--{name}: `{s}` is not a number")),
            None => default,
        }
    }

    /// A comma-separated list, else `default`.
    pub fn list(&self, name: &str, default: &str) -> Vec<String> {
        self.get(name)
            .unwrap_or_else(|| default.into())
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// `--kinds a,b`: the names a query kind must contain one of, if given.
    pub fn kinds(&self) -> Option<Vec<String>> {
        self.get("kinds")
            .map(|k| k.split(',').map(|s| s.trim().to_string()).collect())
    }

    /// Where benchmark data goes: `--dir DIR` (created if need be), else
    /// [`super::bench_base_dir`]. It is also set as `EVLOG_BENCH_DIR`, so that
    /// [`super::temp_dir`] creates its directories there: call this before
    /// any thread starts.
    pub fn dir(&self) -> PathBuf {
        let dir = match self.get("dir") {
            Some(d) => {
                std::fs::create_dir_all(&d).expect("creating --dir");
                PathBuf::from(d)
            }
            None => super::bench_base_dir(),
        };
        // SAFETY: called while the bench has one thread (see above).
        unsafe { std::env::set_var("EVLOG_BENCH_DIR", &dir) };
        dir
    }
}
