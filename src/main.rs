//! The `evlog` binary: parses flags, sets up logging, runs a subcommand and
//! maps its outcome to an exit code (0 ok, 1 a problem found, 2 an error).

use std::process::ExitCode;

use clap::Parser;
use evlog::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EVLOG_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(cli::EXIT_ERROR)
        }
    }
}
