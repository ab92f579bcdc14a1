//! Figures as the benches print them: nearest-rank percentiles, medians and
//! the machine-readable `RESULT name=value` lines the scripts read.

/// Nearest-rank percentile of sorted values (the default of an empty slice).
pub fn pct<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median; the lower one for an even count (like the append script's
/// `median`).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[(s.len() - 1) / 2]
}

/// Prints `RESULT name=value`.
pub fn result(name: &str, value: impl std::fmt::Display) {
    println!("RESULT {name}={value}");
}
