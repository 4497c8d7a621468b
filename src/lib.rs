//! rd-chain: run RD-Agent's factor loop, resolve its state-of-the-art factor workspace from the session log
//! (reading the snapshots without executing them), and run the model loop on those factors.
//!
//! Data flow: argv + env -> `cli` (flags, no I/O) -> `plan` (PATH lookup, resolution, hook decision) ->
//! `render` (dry run) or `execute` (phases, signals, run record). `session` + `pickle` read snapshots;
//! `resolve` picks the workspace; `report` prints what `resolve`, `inspect` and `list` found; `hook` hands the
//! factors to an unmodified RD-Agent.

pub mod cli;
pub mod error;
pub mod execute;
pub mod exit;
pub mod hook;
pub mod json;
pub mod pickle;
pub mod plan;
pub mod render;
pub mod report;
pub mod resolve;
pub mod session;
pub mod signals;
pub mod timestamp;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use cli::{Command, Invocation, Verbosity};
pub use error::{Error, Result};

/// Run rd-chain with these arguments (without the program name) and environment; returns the exit code.
pub fn main_with(args: Vec<OsString>, env: BTreeMap<String, String>) -> u8 {
    let inv = match cli::parse(args, &env) {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("rd-chain: {e}");
            return e.exit_code();
        }
    };
    init_logging(inv.verbosity, env.get("RUST_LOG").map(String::as_str));
    match run(inv, &env) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("rd-chain: {e}");
            e.exit_code()
        }
    }
}

fn init_logging(verbosity: Verbosity, rust_log: Option<&str>) {
    let mut builder = env_logger::Builder::new();
    let level = match verbosity {
        Verbosity::Quiet => log::LevelFilter::Error,
        Verbosity::Normal => log::LevelFilter::Warn,
        Verbosity::Verbose => log::LevelFilter::Info,
        Verbosity::Debug => log::LevelFilter::Debug,
    };
    builder.filter_level(level);
    // RUST_LOG refines the level unless -v/-q was given on the command line.
    if let (Some(spec), Verbosity::Normal) = (rust_log, verbosity) {
        builder.parse_filters(spec);
    }
    builder.format(|buf, record| {
        let level = match record.level() {
            log::Level::Warn => "warning".to_string(),
            other => other.as_str().to_lowercase(),
        };
        writeln!(buf, "rd-chain: {level}: {}", record.args())
    });
    let _ = builder.try_init();
}

/// Write to stdout; a closed pipe (`rd-chain list | head -1`) is not an error.
pub fn print_stdout(text: &str) {
    print_bytes(text.as_bytes());
}

/// Write raw bytes to stdout (paths that are not UTF-8 survive `$(rd-chain resolve ...)`).
pub fn print_bytes(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes).and_then(|()| out.flush());
}

fn current_dir() -> Result<PathBuf> {
    std::env::current_dir()
        .map_err(|e| Error::Internal(format!("cannot read the current directory: {e}")))
}

fn resolve_request(
    path: PathBuf,
    pick: resolve::Pick,
    workspace_path_env: Option<PathBuf>,
    env: &BTreeMap<String, String>,
) -> Result<resolve::ResolveRequest> {
    let cwd = current_dir()?;
    Ok(resolve::ResolveRequest {
        path,
        pick,
        workspace_path_env,
        cwd,
        signing_key: session::SigningKey::from_env(env),
        project_root: None,
    })
}

fn run(inv: Invocation, env: &BTreeMap<String, String>) -> Result<()> {
    for w in &inv.warnings {
        log::warn!("{w}");
    }
    match inv.command {
        Command::Help => {
            print_stdout(&cli::help_text());
            Ok(())
        }
        Command::Version => {
            print_stdout(concat!("rd-chain ", env!("CARGO_PKG_VERSION"), "\n"));
            Ok(())
        }
        Command::Resolve {
            path,
            pick,
            json,
            workspace_path_env,
        } => {
            let req = resolve_request(path, pick.value, workspace_path_env, env)?;
            print_bytes(&report::resolve_command(&req, json)?);
            Ok(())
        }
        Command::Inspect {
            path,
            pick,
            json,
            workspace_path_env,
        } => {
            // The table is printed even when the pick fails (exit 3), so the user sees what the log holds.
            let req = resolve_request(path, pick.value, workspace_path_env, env)?;
            let (out, result) = report::inspect_command(&req, json);
            print_bytes(&out);
            result
        }
        Command::List { root, json } => {
            let cwd = current_dir()?;
            let workspace_env = env
                .get("WORKSPACE_PATH")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from);
            print_bytes(&report::list_command(
                &root,
                workspace_env.as_deref(),
                &cwd,
                json,
            )?);
            Ok(())
        }
        Command::Run(config) => {
            let cwd = current_dir()?;
            let dry_run = config.dry_run.value;
            let json = config.json;
            let plan = plan::build(*config, &cwd, env, inv.warnings);
            if dry_run {
                if json {
                    print_stdout(&render::plan_json(&plan).pretty());
                } else {
                    print_stdout(&render::plan_text(&plan));
                }
                return match plan.blocking_error() {
                    None => Ok(()),
                    Some(e) => Err(e),
                };
            }
            execute::run(plan)
        }
    }
}
