//! Rotation settings and their text forms: ages (`7d`, `12h`, `off`),
//! sizes (`500MB`, `2GiB`, `off`) and the daily time (`00:15`, `off`).

use chrono::{Duration, NaiveTime};
use serde::Serialize;

/// What rotation does: compress plain days older than `compress_after`,
/// delete days older than `delete_after`, then delete the oldest days while
/// the day files take more than `max_total_size`. `None` turns a rule off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Age after which a plain day file is compressed (default 7 days).
    #[serde(serialize_with = "ser_age")]
    pub compress_after: Option<Duration>,
    /// Age after which a day file is deleted (default 90 days).
    #[serde(serialize_with = "ser_age")]
    pub delete_after: Option<Duration>,
    /// Most bytes of day files to keep (default: no limit).
    pub max_total_size: Option<u64>,
}

fn ser_age<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format_age(*d)),
        None => s.serialize_str("off"),
    }
}

/// Default of `compress_after`.
pub const DEFAULT_COMPRESS_AFTER: &str = "7d";
/// Default of `delete_after`.
pub const DEFAULT_DELETE_AFTER: &str = "90d";
/// Default time of the server's daily rotation (UTC).
pub const DEFAULT_ROTATE_AT: &str = "00:15";

impl Default for Policy {
    fn default() -> Self {
        Policy {
            compress_after: Some(Duration::days(7)),
            delete_after: Some(Duration::days(90)),
            max_total_size: None,
        }
    }
}

/// Parses an age: a whole number with a unit `w`, `d`, `h`, `m` or `s`
/// (`7d`, `12h`, `90m`; `0` alone means now), or `off`/`never` for `None`.
pub fn parse_age(s: &str) -> Result<Option<Duration>, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("off") || t.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    let want = "want a number with a unit: 7d, 12h, 30m, 2w (or `off`)";
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!("`{s}` is not an age: {want}"));
    }
    let n: i64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not an age: {want}"))?;
    let secs_per = match unit.trim() {
        "" if n == 0 => 0,
        "w" => 7 * 86_400,
        "d" => 86_400,
        "h" => 3_600,
        "m" | "min" => 60,
        "s" => 1,
        _ => return Err(format!("`{s}` is not an age: {want}")),
    };
    n.checked_mul(secs_per)
        .filter(|v| *v <= 100 * 365 * 86_400)
        .map(|v| Some(Duration::seconds(v)))
        .ok_or_else(|| format!("`{s}` is too long an age (at most 100 years)"))
}

/// An age as text: the largest whole unit (`7d`, `36h`, `90m`, `10s`).
pub fn format_age(d: Duration) -> String {
    let s = d.num_seconds();
    if s == 0 {
        return "0".into();
    }
    for (unit, per) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s != 0 && s % per == 0 {
            return format!("{}{unit}", s / per);
        }
    }
    format!("{s}s")
}

/// Parses a size: a number (fractions allowed) with an optional unit, `B`,
/// `KB`/`MB`/`GB`/`TB` (powers of 1000), `KiB`/`MiB`/`GiB`/`TiB` or
/// `K`/`M`/`G`/`T` (powers of 1024); units are case-insensitive. `off` or
/// `none` is `None`.
pub fn parse_size(s: &str) -> Result<Option<u64>, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("off") || t.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let want = "want a size such as 500MB, 2GiB, 10G or a number of bytes (or `off`)";
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size: {want}"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024f64.powi(2),
        "g" | "gib" => 1024f64.powi(3),
        "t" | "tib" => 1024f64.powi(4),
        _ => return Err(format!("`{s}` is not a size: {want}")),
    };
    let v = n * mult;
    if !v.is_finite() || v >= 1.8e19 {
        return Err(format!("`{s}` is too large a size"));
    }
    Ok(Some(v as u64))
}

/// Parses the daily rotation time `HH:MM` (UTC), or `off` for `None`.
pub fn parse_time_of_day(s: &str) -> Result<Option<NaiveTime>, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("off") || t.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    NaiveTime::parse_from_str(t, "%H:%M")
        .map(Some)
        .map_err(|_| format!("`{s}` is not a time of day: want HH:MM (UTC), e.g. 00:15, or `off`"))
}

/// Formats a byte count for people (`1.5 GiB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(parse_age("7d").unwrap(), Some(Duration::days(7)));
        assert_eq!(parse_age("12h").unwrap(), Some(Duration::hours(12)));
        assert_eq!(parse_age("2w").unwrap(), Some(Duration::days(14)));
        assert_eq!(parse_age("0").unwrap(), Some(Duration::zero()));
        assert_eq!(parse_age("off").unwrap(), None);
        for bad in [
            "",
            "7",
            "d",
            "7x",
            "-1d",
            "1.5d",
            "99999999999999d",
            "7 days",
        ] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
        assert_eq!(format_age(Duration::days(7)), "7d");
        assert_eq!(format_age(Duration::hours(36)), "36h");
        assert_eq!(format_age(Duration::zero()), "0");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("500MB").unwrap(), Some(500_000_000));
        assert_eq!(parse_size("2GiB").unwrap(), Some(2 << 30));
        assert_eq!(parse_size("10g").unwrap(), Some(10 << 30));
        assert_eq!(parse_size("1.5K").unwrap(), Some(1536));
        assert_eq!(parse_size("4096").unwrap(), Some(4096));
        assert_eq!(parse_size("off").unwrap(), None);
        for bad in ["", "MB", "5XB", "-1", "1e30", "1..2G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_of_day() {
        assert_eq!(
            parse_time_of_day("00:15").unwrap(),
            NaiveTime::from_hms_opt(0, 15, 0)
        );
        assert_eq!(parse_time_of_day("off").unwrap(), None);
        for bad in ["24:00", "1:5x", "", "noon"] {
            assert!(parse_time_of_day(bad).is_err(), "{bad}");
        }
    }
}
