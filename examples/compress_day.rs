//! Compresses one day file the way `evlog rotate` does (parallel gzip
//! members, then the read-back check), without touching any storage
//! directory; used by `scripts/bench-rotate.sh`.
//!
//! ```sh
//! cargo run --release --example compress_day -- events_2026-11-23.jsonl out.jsonl.gz [THREADS]
//! ```
//!
//! Prints `key=value` pairs: seconds spent compressing (including the
//! fsync) and checking, members, lines and bytes in and out.

use std::fs::File;
use std::process::ExitCode;
use std::time::Instant;

use evlog::rotate::gzip;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: compress_day IN OUT [THREADS]");
        return ExitCode::from(2);
    }
    let threads = args
        .get(3)
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    match run(&args[1], &args[2], threads) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(input: &str, output: &str, threads: usize) -> Result<(), Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    let f = File::open(input)?;
    // SAFETY: the input is not modified while this program runs.
    let data = unsafe { memmap2::Mmap::map(&f)? };
    let mut out = File::create(output)?;
    let members = gzip::compress_file(&data, &mut out, threads, &mut |_| {})?;
    let compress_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let back = File::open(output)?;
    // SAFETY: written above and no longer modified.
    let gz = unsafe { memmap2::Mmap::map(&back)? };
    let lines = gzip::check(&data, &gz, &members, threads)?;
    let check_s = t1.elapsed().as_secs_f64();
    println!(
        "compress_seconds={compress_s:.3} check_seconds={check_s:.3} members={} lines={lines} bytes_in={} bytes_out={} threads={threads}",
        members.len(),
        data.len(),
        gz.len()
    );
    Ok(())
}
