//! rd-chain: run RD-Agent's factor loop, resolve its state-of-the-art factor workspace from the session log
//! (reading the snapshots without executing them), and run the model loop on those factors.
//!
//! Data flow: argv + env -> `cli` (flags, no I/O) -> `config` -> `plan` (resolution, PATH lookup) ->
//! `render` (dry run) or `execute` (phases). `session` + `pickle` read snapshots; `resolve` picks the workspace.

pub mod error;
pub mod exit;
pub mod json;
pub mod pickle;

use std::collections::BTreeMap;
use std::ffi::OsString;

pub use error::{Error, Result};

/// Run rd-chain with these arguments (without the program name) and environment; returns the exit code.
pub fn main_with(args: Vec<OsString>, env: BTreeMap<String, String>) -> u8 {
    let _ = (args, env);
    exit::OK
}
