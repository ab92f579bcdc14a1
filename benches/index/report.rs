//! The summary lines of the index bench: one `TARGET|…` line per target.

use std::time::Duration;

/// One line of the summary table: label, measured, goal, PASS/FAIL, load.
pub fn target(label: &str, measured: &str, goal: &str, pass: bool, noise_pct: f64) {
    let load = if noise_pct > 10.0 {
        format!("{noise_pct:.0}% NOISY")
    } else {
        format!("{noise_pct:.0}%")
    };
    println!(
        "TARGET|{label}|{measured}|{goal}|{}|{load}",
        if pass { "PASS" } else { "FAIL" }
    );
}

/// Milliseconds of `d`.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
