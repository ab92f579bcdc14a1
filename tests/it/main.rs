//! Integration tests: one binary (`cargo test --test it`), one module per area.

mod util;

/// The `evlog` binary: flags, stdin import, cat, verify, help, exit codes.
mod cli;
/// SIGKILLed appenders lose no acknowledged event.
mod crash;
/// The committed on-disk format v1 fixtures.
mod fixtures;
mod index;
/// Random action sequences against a model of the log.
mod model;
/// Several processes appending to one store at once.
mod multiprocess;
/// Regression tests named after what broke.
mod regressions;
