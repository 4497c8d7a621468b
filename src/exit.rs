//! The exit codes rd-chain documents (README, docs/usage.md, `--help`). One place, so they cannot drift.

/// Everything asked for was done.
pub const OK: u8 = 0;
/// A bug or an unexpected I/O failure in rd-chain itself.
pub const INTERNAL: u8 = 1;
/// The command line or an environment variable is wrong.
pub const USAGE: u8 = 2;
/// The SOTA factor workspace could not be resolved (no snapshot, no accepted factor experiment, no parquet).
pub const RESOLUTION: u8 = 3;
/// The `rdagent` program was not found or is not executable.
pub const RDAGENT_MISSING: u8 = 4;
/// rd-chain was interrupted with Ctrl-C (SIGINT).
pub const INTERRUPTED: u8 = 130;

/// The code for a child killed by signal `n` (128 + n, as shells report it).
pub fn for_signal(n: i32) -> u8 {
    (128 + n).clamp(0, 255) as u8
}
