//! Benchmark helper for scripts/bench_progress.py: watch a session folder for SECONDS at rd-chain's poll
//! interval, exactly as a running phase is watched, and print the work done as one JSON line. Its CPU time is
//! measured from outside (wait4), so this program does nothing but watch.
//!
//! Usage: progress_bench LOG_DIR SECONDS

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use rd_chain::json::Json;
use rd_chain::progress::{SessionWatcher, POLL_EVERY};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [log_dir, seconds] = args.as_slice() else {
        eprintln!("usage: progress_bench LOG_DIR SECONDS");
        std::process::exit(2);
    };
    let seconds: f64 = seconds.parse().expect("SECONDS is a number");
    let mut watcher = SessionWatcher::new(&PathBuf::from(log_dir));
    watcher.baseline(SystemTime::now());
    let baseline = watcher.work;
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let (mut polls, mut loops) = (0u64, 0u64);
    while Instant::now() < end {
        std::thread::sleep(POLL_EVERY);
        loops += watcher.poll(SystemTime::now()).len() as u64;
        polls += 1;
    }
    let w = watcher.work;
    let line = Json::object()
        .with("polls", polls)
        .with("loops_reported", loops)
        .with("baseline_decodes", baseline.decodes)
        .with("stats", w.stats - baseline.stats)
        .with("listings", w.listings - baseline.listings)
        .with("decodes", w.decodes - baseline.decodes);
    println!("{}", line.compact());
}
