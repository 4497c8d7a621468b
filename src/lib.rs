//! rd-chain: run RD-Agent's factor loop, resolve its state-of-the-art factor workspace from the session log
//! (reading the snapshots without executing them), and run the model loop on those factors.
//!
//! Data flow: argv + env -> `cli` (flags and settings, no I/O) -> `plan` (PATH lookup, resolution, hook
//! decision) -> `render` (dry run) or `execute` (phases, signals), which fills the `record`. `session` +
//! `pickle` read snapshots; `resolve` picks the workspace; `listing` reads a log root's runs; `report` prints
//! what `resolve`, `inspect` and `list` found; `report_data` fills the HTML page `report_page` renders;
//! `hook` hands the factors to an unmodified RD-Agent.

pub mod answers;
pub mod chart;
pub mod cli;
pub mod continuation;
pub mod error;
pub mod events;
pub mod execute;
pub mod exit;
pub mod export;
pub mod factors;
pub mod hook;
pub mod html;
pub mod json;
pub mod listing;
pub mod parquet;
pub mod pickle;
pub mod plan;
pub mod process;
pub mod progress;
pub mod record;
pub mod render;
pub mod report;
pub mod report_data;
pub mod report_page;
pub mod resolve;
pub mod runs;
pub mod session;
pub mod signals;
pub mod timestamp;
pub mod watch;
pub(crate) mod work;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use cli::{Command, Invocation, LogQuery, Verbosity};
pub use error::{Error, Result};

/// Run rd-chain with these arguments (without the program name) and environment; returns the exit code.
/// Values rd-chain reads as paths stay `OsString`s (any bytes); variables it reads as text and that are not
/// UTF-8 stop it with exit 2 naming the variable.
pub fn main_with(args: Vec<OsString>, env: BTreeMap<String, OsString>) -> u8 {
    let inv = match cli::parse(args, &env).and_then(|inv| {
        let text = text_env(&inv, &env)?;
        Ok((inv, text))
    }) {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("rd-chain: {}", render::escape_message(&e.to_string()));
            return e.exit_code();
        }
    };
    let (inv, text) = inv;
    init_logging(inv.verbosity, text.get("RUST_LOG").map(String::as_str));
    match run(inv, &env, &text) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("rd-chain: {}", render::escape_message(&e.to_string()));
            e.exit_code()
        }
    }
}

/// Variables rd-chain reads as text outside `cli` (the signing key's, and the log filter): refused when not
/// UTF-8.
pub const TEXT_VARIABLES: &[&str] = &[
    "ARTIFACT_SIGNING_KEY",
    "ARTIFACT_SIGNING_KEY_PATH",
    "HOME",
    "RUST_LOG",
];

/// The environment's UTF-8 variables, for the readers that take text; one of `TEXT_VARIABLES` that is not
/// UTF-8 is a usage error (not for `--help`/`--version`, which read nothing).
fn text_env(
    inv: &Invocation,
    env: &BTreeMap<String, OsString>,
) -> Result<BTreeMap<String, String>> {
    if !matches!(inv.command, Command::Help | Command::Version) {
        for name in TEXT_VARIABLES {
            if env.get(*name).is_some_and(|v| v.to_str().is_none()) {
                return Err(cli::not_utf8(name));
            }
        }
    }
    Ok(env
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.to_str()?.to_string())))
        .collect())
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
        writeln!(
            buf,
            "rd-chain: {level}: {}",
            render::escape_message(&record.args().to_string())
        )
    });
    let _ = builder.try_init();
}

/// Write to stdout; a closed pipe (`rd-chain list | head -1`) is not an error, any other write error is.
pub fn print_stdout(text: &str) -> Result<()> {
    print_bytes(text.as_bytes())
}

/// Write raw bytes to stdout (paths that are not UTF-8 survive `$(rd-chain resolve ...)`).
pub fn print_bytes(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    write_output(&mut out, bytes)
}

/// Write and flush `bytes`: only a closed pipe is swallowed (the reader has seen all it wanted); any other
/// failure (a full disk, a revoked file) is an error with exit code 1, so output is never lost silently.
fn write_output(out: &mut impl Write, bytes: &[u8]) -> Result<()> {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::Internal(format!(
            "cannot write to standard output: {e}"
        ))),
    }
}

fn current_dir() -> Result<PathBuf> {
    std::env::current_dir()
        .map_err(|e| Error::Internal(format!("cannot read the current directory: {e}")))
}

fn resolve_request(
    query: LogQuery,
    env: &BTreeMap<String, String>,
    verify: session::Verify,
) -> Result<resolve::ResolveRequest> {
    let cwd = current_dir()?;
    let signing_key = verify.key(env)?;
    Ok(resolve::ResolveRequest {
        path: query.path,
        pick: query.pick.value,
        workspace_path_env: query.workspace_path_env,
        cwd,
        signing_key,
        verify,
        project_root: None,
        reading: session::Reading::Everything,
    })
}

fn run(
    inv: Invocation,
    os_env: &BTreeMap<String, OsString>,
    env: &BTreeMap<String, String>,
) -> Result<()> {
    for w in &inv.warnings {
        log::warn!("{w}");
    }
    match inv.command {
        Command::Help => print_stdout(&cli::help_text()),
        Command::Version => print_stdout(concat!("rd-chain ", env!("CARGO_PKG_VERSION"), "\n")),
        Command::Resolve(query) => {
            crate::session::snapshot::skip_freeing_graphs();
            let json = query.json;
            let kind = query.kind.unwrap_or_default();
            let verify = if query.verify {
                crate::session::snapshot::refuse_mismatches();
                session::Verify::Required
            } else {
                session::Verify::No
            };
            let mut req = resolve_request(query, env, verify)?;
            if kind == answers::Kind::Model {
                let run = answers::read_run(&req)?;
                let workspace =
                    answers::resolve_model(&run.inspection.survey, &run.answers.models)?;
                return if json {
                    print_stdout(&answers::model_resolution_json(&run, &workspace).pretty())
                } else {
                    let mut line = report::path_bytes(&workspace);
                    line.push(b'\n');
                    print_bytes(&line)
                };
            }
            // The path alone needs no metrics: skimming each experiment's result is a sixth of a long run's
            // snapshot. `--json` shows them.
            if !json {
                req.reading = session::Reading::WithoutMetrics;
            }
            let resolve::Inspection {
                survey,
                pick,
                outcome,
            } = resolve::inspect(&req)?;
            let outcome = outcome.map_err(|e| answers::not_a_factor_run(&survey, e));
            let r = resolve::Inspection {
                survey,
                pick,
                outcome,
            }
            .into_resolution()?;
            if json {
                print_stdout(&report::resolution_json(&r).pretty())
            } else {
                print_bytes(&report::resolve_stdout(&r))
            }
        }
        Command::Inspect(query) => {
            crate::session::snapshot::skip_freeing_graphs();
            // The tables are printed even when the pick fails (exit 3), so the user sees what the log holds.
            let (json, asked, with_factors) = (query.json, query.kind, query.factors);
            let run = answers::read_run(&resolve_request(
                query,
                env,
                session::Verify::WithKeyAtHand,
            )?)?;
            let kind = answers::effective_kind(asked, run.answers.kind);
            let factor_set = match (&run.inspection.outcome, with_factors) {
                (Ok(p), true) => Some(factors::factor_set(
                    &run.inspection.survey,
                    &run.details,
                    p.index,
                    p.parquet.path.clone(),
                )),
                _ => None,
            };
            let set = factor_set.as_ref().and_then(|r| r.as_ref().ok());
            if json {
                print_stdout(&answers::inspect_json(&run, set).pretty())?;
            } else {
                print_stdout(&render::escape_message(&answers::inspect_text(
                    &run, kind, set,
                )))?;
            }
            if let Some(Err(e)) = factor_set {
                return Err(e);
            }
            if kind == answers::Kind::Model {
                answers::resolve_model(&run.inspection.survey, &run.answers.models)?;
            }
            // The factor pick decides for a factor inspection, and for --factors whatever the kind.
            if kind == answers::Kind::Factor || with_factors {
                let survey = &run.inspection.survey;
                if let Err(e) = run.inspection.outcome {
                    return Err(answers::not_a_factor_run(survey, e));
                }
            }
            Ok(())
        }
        Command::Export { query, to, force } => {
            let (json, kind) = (query.json, query.kind);
            let cwd = current_dir()?;
            let run = answers::read_run(&resolve_request(
                query,
                env,
                session::Verify::WithKeyAtHand,
            )?)?;
            let bundle = export::bundle_of(&run, kind)?;
            let written = export::write(&bundle, &resolve::absolute(&cwd, &to), force)?;
            if json {
                print_stdout(&export::written_json(&written).pretty())
            } else {
                print_stdout(&render::escape_message(&export::written_text(&written)))
            }
        }
        Command::Report(query) => {
            let cwd = current_dir()?;
            let targets = if query.targets.is_empty() {
                vec![report_data::newest_run(&query.log_root.value, &cwd)?]
            } else {
                query
                    .targets
                    .iter()
                    .map(|t| report_data::target_of(t, &query.log_root.value, &cwd))
                    .collect::<Result<Vec<_>>>()?
            };
            let ctx = report_data::ReadContext {
                cwd: cwd.clone(),
                workspace_path_env: query.workspace_path_env,
                signing_key: session::SigningKey::from_env(env),
            };
            let page = report_data::page(&targets, &ctx)?;
            let (out, own_dir) = match &query.output {
                Some(o) => (resolve::absolute(&cwd, o), false),
                None => (report_data::default_output(&targets, &cwd), true),
            };
            report_data::write_page(&out, &report_page::render_page(&page), own_dir)?;
            let mut line = report::path_bytes(&out);
            line.push(b'\n');
            print_bytes(&line)
        }
        Command::List {
            root,
            json,
            workspace_path_env,
        } => {
            let cwd = current_dir()?;
            let runs = listing::list_runs(&root, workspace_path_env.as_deref(), &cwd)?;
            let root = resolve::absolute(&cwd, &root);
            if json {
                print_stdout(&report::list_json(&root, &runs).pretty())
            } else {
                print_stdout(&render::escape_message(&report::list_text(&root, &runs)))
            }
        }
        Command::Resume { run, log_root } => {
            let cwd = current_dir()?;
            let record = runs::find_record(run.as_deref(), &log_root.value, &cwd)?;
            let (command, cwd, os_env) = runs::chain_of(&record, os_env)?;
            let Command::Run(config) = command else {
                return Err(Error::Internal(format!(
                    "the run record {} does not describe a chain",
                    record.display()
                )));
            };
            let text: BTreeMap<String, String> = os_env
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.to_str()?.to_string())))
                .collect();
            let plan = plan::build(*config, &cwd, &os_env, &text, inv.warnings);
            execute::run(plan)
        }
        Command::Run(config) => {
            let cwd = current_dir()?;
            let dry_run = config.dry_run.value;
            let json = config.json;
            let plan = plan::build(*config, &cwd, os_env, env, inv.warnings);
            if dry_run {
                if json {
                    print_stdout(&render::plan_json(&plan).pretty())?;
                } else {
                    print_stdout(&render::escape_message(&render::plan_text(&plan)))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that fails every write with `kind`.
    struct Failing(std::io::ErrorKind);

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::new(self.0, "refused"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn only_a_closed_pipe_is_swallowed() {
        assert!(write_output(&mut Failing(std::io::ErrorKind::BrokenPipe), b"x").is_ok());
        let err = write_output(&mut Failing(std::io::ErrorKind::StorageFull), b"x").unwrap_err();
        assert_eq!(err.exit_code(), exit::INTERNAL);
        assert!(
            err.to_string().contains("cannot write to standard output"),
            "{err}"
        );
        let mut out = Vec::new();
        write_output(&mut out, b"ok\n").unwrap();
        assert_eq!(out, b"ok\n");
    }
}
