//! Runs a plan: the factor phase, the resolution of its SOTA workspace, the model phase with the factors
//! handed over, and a run record rewritten atomically after every step so a crash leaves the last true state.
//!
//! Phases run one after another in the foreground process group, inheriting stdin/stdout/stderr (on a
//! terminal `progress` sends rdagent's stdout/stderr to a file and shows a status line instead). rd-chain
//! never writes into a user's log or workspace: it creates fresh log dirs for rdagent and writes only its own
//! files under `<log root>/rd-chain/`. No child may outlive rd-chain: every way out of `wait_phase` has reaped it.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::hook::{contract, HookReport};
use crate::plan::{self, EnvValue, LogDir, Phase, PhaseKind, Plan, SotaState};
use crate::process::{self, Group};
use crate::record::{self, Outcome, PhaseEnd, PhaseRecord, RunRecord, SotaRecord};
use crate::resolve::{self, ResolveRequest};
use crate::signals::{self, Received, Stop};
use crate::timestamp::Utc;
use crate::{exit, hook, progress, render, Error, Result};

/// Create a fresh `<root>/<UTC time>` dir; never reuses an existing one.
pub fn fresh_log_dir(root: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(root).map_err(|e| Error::io("cannot create the log root", root, e))?;
    loop {
        let dir = root.join(Utc::now().log_dir_name());
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::thread::sleep(Duration::from_micros(10));
            }
            Err(e) => return Err(Error::io("cannot create the log dir", &dir, e)),
        }
    }
}

/// Run the chain. Prints the summary to stderr (and the run record as one JSON line on stdout with `--json`).
pub fn run(plan: Plan) -> Result<()> {
    if let Some(e) = plan.blocking_error() {
        return Err(e);
    }
    if let Some(warning) = plan.alpha_template.as_ref().and_then(|t| t.undecided()) {
        log::warn!("{warning}");
    }
    signals::install().map_err(|e| Error::Internal(e.to_string()))?;
    process::adopt_orphans();
    // A bad --events file stops the run before anything starts.
    progress::Live::new(&plan)?;
    let record_dir = plan
        .run_record
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| plan.log_root.clone());
    std::fs::create_dir_all(&record_dir)
        .map_err(|e| Error::io("cannot create rd-chain's record dir", &record_dir, e))?;
    if plan.hook.as_ref().is_some_and(|h| h.enabled) {
        // The hook dir is made in there before the model phase: refuse a shared dir now, not hours later.
        hook::check_parent(&record_dir)?;
    }
    let mut record = RunRecord {
        path: plan.run_record.clone(),
        started: plan.started,
        finished: None,
        settings: record::settings_json(&plan.config),
        hook: plan.hook.clone(),
        hook_report: None,
        sota: initial_sota(&plan.sota),
        phases: Vec::new(),
        outcome: None,
        answers: None,
    };
    let export_dir = plan
        .config
        .export
        .value
        .as_ref()
        .map(|d| resolve::absolute(&plan.cwd, d));
    if let Some(dir) = &export_dir {
        crate::export::check_target(dir)?;
    }
    record.save()?;
    let mut saver = Saver::default();
    let mut result = run_phases(&plan, &mut record, &mut saver);
    if result.is_ok() {
        let (answers, bundle) = crate::answers::chain_answers(&plan, &record);
        record.answers = Some(answers);
        if let Some(dir) = &export_dir {
            result = crate::answers::export_chain(bundle, dir, &mut record);
        }
    }
    record.finished = Some(Utc::now());
    record.outcome = Some(Outcome::of(&result));
    // The record is the last true state; failing to write it must not hide the run's own error.
    let saved = record.save().map_err(|e| {
        Error::Internal(format!(
            "the chain ended ({}) but its run record could not be written: {e}; the record {} is stale (it may \
             still say running); the summary above{} has the true state",
            record
                .outcome
                .as_ref()
                .map_or("?".to_string(), |o| o.ending.exit_code().to_string()),
            record.path.display(),
            if plan.config.json {
                " and the JSON on stdout"
            } else {
                ""
            }
        ))
    });
    eprint!("{}", render::escape_message(&summary(&plan, &record)));
    let printed = if plan.config.json {
        // One line, the last on stdout after rdagent's own output: `rd-chain --json ... | tail -n 1`. It starts
        // with a line break, so it stands on a line of its own even when rdagent's last line had none.
        crate::print_stdout(&format!("\n{}\n", record.to_json().compact()))
    } else {
        Ok(())
    };
    result.and(saved).and(printed)
}

/// Saves the record between steps. A save that fails once the chain is under way does not stop it (hours of
/// rdagent's work are at stake and its logs are written elsewhere): rd-chain warns loudly, naming the record,
/// goes on, and tries again at the next step and at the end (where a failure is exit 1 after the summary).
#[derive(Default)]
struct Saver {
    failed: bool,
}

impl Saver {
    fn save(&mut self, record: &RunRecord) {
        self.save_with(record, |r| r.save());
    }

    fn save_with(&mut self, record: &RunRecord, save: impl FnOnce(&RunRecord) -> Result<()>) {
        match save(record) {
            Ok(()) => {
                if self.failed {
                    log::warn!(
                        "the run record {} is up to date again",
                        record.path.display()
                    );
                }
                self.failed = false;
            }
            Err(e) => {
                log::warn!(
                    "{e}; the chain goes on, but the run record {} is stale until a later write succeeds \
                     (it may still say running); the summary at the end has the true state",
                    record.path.display()
                );
                self.failed = true;
            }
        }
    }
}

fn initial_sota(sota: &SotaState) -> Option<SotaRecord> {
    match sota {
        SotaState::Resolved(r) => Some(sota_from_resolution(r)),
        SotaState::Workspace { dir, parquet } => Some(SotaRecord {
            log_dir: None,
            loop_id: None,
            index: None,
            workspace: dir.clone(),
            parquet: parquet.path.clone(),
            parquet_bytes: parquet.bytes,
            mapping: None,
        }),
        _ => None,
    }
}

fn sota_from_resolution(r: &resolve::Resolution) -> SotaRecord {
    SotaRecord {
        log_dir: Some(r.log_dir.clone()),
        loop_id: r.picked_loop,
        index: Some(r.picked_index),
        workspace: r.workspace.clone(),
        parquet: r.parquet.path.clone(),
        parquet_bytes: r.parquet.bytes,
        mapping: Some(r.mapping.to_string()),
    }
}

fn run_phases(plan: &Plan, record: &mut RunRecord, saver: &mut Saver) -> Result<()> {
    // `blocking_error` has refused a plan whose phases have no rdagent, so this is used only when valid.
    let program = plan.rdagent.clone().unwrap_or_default();
    let kill_after = Duration::from_secs(plan.config.kill_after.value);

    let mut sota_state: Option<resolve::Resolution> = None;
    if let Some(phase) = plan.phase(PhaseKind::Factor) {
        let log_dir = run_one(plan, phase, &program, &phase.env, kill_after, record, saver)?;
        log::info!("resolving the SOTA factors from {}", log_dir.display());
        let req = ResolveRequest {
            path: log_dir.clone(),
            pick: plan.config.pick.value,
            workspace_path_env: plan.config.workspace_path_env.clone(),
            cwd: plan.cwd.clone(),
            signing_key: plan.signing_key.clone(),
            // rdagent ran in the phase's cwd: a relative WORKSPACE_PATH is relative to that, wherever the log is.
            project_root: Some(phase.cwd.clone()),
        };
        let resolution = resolve_or_stop(req, record)?.map_err(|e| match e {
            Error::Resolution(m) => Error::Resolution(format!(
                "the factor phase finished but its SOTA factors could not be resolved from {}: {m}",
                log_dir.display()
            )),
            other => other,
        })?;
        record.sota = Some(sota_from_resolution(&resolution));
        saver.save(record);
        sota_state = Some(resolution);
    }

    let Some(phase) = plan.phase(PhaseKind::Model) else {
        return Ok(());
    };
    // The planned environment, with the SOTA values the factor phase has made known.
    let sota_env = match sota_state {
        Some(r) => plan::model_sota_env(&SotaState::Resolved(Box::new(r))),
        None => plan::model_sota_env(&plan.sota),
    };
    let env: Vec<(&'static str, EnvValue)> = phase
        .env
        .iter()
        .map(|(name, planned)| {
            let known = sota_env.iter().find(|(n, _)| n == name).map(|(_, v)| v);
            (*name, known.unwrap_or(planned).clone())
        })
        .collect();
    if plan.hook.as_ref().is_some_and(|h| h.enabled) {
        hook::install(&plan.hook_dir)?;
        log::info!("rd-chain's factor hook is in {}", plan.hook_dir.display());
    }
    let result = run_one(plan, phase, &program, &env, kill_after, record, saver);
    if plan.hook.as_ref().is_some_and(|h| h.enabled) {
        let report = HookReport::read(&plan.hook_dir.join(hook::contract::REPORT_FILE));
        if result.is_ok() && report.used == 0 {
            log::warn!("{}", factors_never_used(&report));
        }
        record.hook_report = Some(report);
        saver.save(record);
    }
    result.map(|_| ())
}

/// Resolve on a worker thread while this one watches for a stop: a SIGTERM/SIGHUP/Ctrl-C during a long
/// resolution ends the chain at once with the signal's code (the resolver reads only; it is left behind).
fn resolve_or_stop(req: ResolveRequest, record: &RunRecord) -> Result<Result<resolve::Resolution>> {
    until_stopped(
        move || resolve::resolve(&req),
        "while resolving the SOTA factors after the factor phase",
        record,
    )
}

/// Run `work` on a thread; return its result, or the stop that arrived first (checked every 20 ms).
fn until_stopped<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
    what: &str,
    record: &RunRecord,
) -> Result<T> {
    let worker = std::thread::spawn(work);
    loop {
        if worker.is_finished() {
            return worker
                .join()
                .map_err(|_| Error::Internal(format!("rd-chain's work {what} panicked")));
        }
        if let Some(stop) = pending_stop(Received::default()) {
            return Err(Error::Interrupted {
                stop,
                message: format!(
                    "{} {what}; no further phase was started; run record: {}",
                    stop.name(),
                    record.path.display()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The warning for a model phase that finished without the factors ever reaching RD-Agent's model runner.
fn factors_never_used(report: &HookReport) -> String {
    let why = if report.armed == 0 {
        format!(
            "the hook was never armed: no process imported {} with rd-chain's sitecustomize loaded (is site \
             disabled, e.g. python -S or -I, or PYTHONPATH reset?)",
            contract::TARGET_MODULE
        )
    } else {
        "the model runner was patched but never developed a model experiment (did every loop fail before \
         training?)"
            .to_string()
    };
    format!(
        "the model phase finished, but rd-chain's hook never handed the SOTA factors to RD-Agent's model \
         runner: {why}; the model phase did not train on them"
    )
}

/// Start one phase with `env_list` set on top of rd-chain's own environment, wait for it (handling signals),
/// record it. Returns its log dir.
fn run_one(
    plan: &Plan,
    phase: &Phase,
    program: &Path,
    env_list: &[(&'static str, EnvValue)],
    kill_after: Duration,
    record: &mut RunRecord,
    saver: &mut Saver,
) -> Result<PathBuf> {
    if let Some(stop) = pending_stop(Received::default()) {
        return Err(stopped(stop, phase.kind, None, record));
    }
    let log_dir = match &phase.log_dir {
        LogDir::UserSet(p) => {
            if p.join("__session__").exists() {
                log::warn!(
                    "LOG_TRACE_PATH {} already holds a session from an earlier run; rdagent will add to it",
                    p.display()
                );
            }
            p.clone()
        }
        LogDir::Fresh => fresh_log_dir(&plan.log_root)?,
    };
    let mut cmd = Command::new(program);
    cmd.args(&phase.args).current_dir(&phase.cwd);
    let mut env_record = Vec::new();
    for (name, value) in env_list {
        match (name, value) {
            (&"LOG_TRACE_PATH", _) => {
                cmd.env(name, &log_dir);
                env_record.push((*name, Some(log_dir.clone().into_os_string())));
            }
            (_, EnvValue::Known(v)) => {
                cmd.env(name, v);
                env_record.push((*name, Some(v.clone())));
            }
            (_, EnvValue::Unset) => {
                cmd.env_remove(name);
                env_record.push((*name, None));
            }
            (_, EnvValue::Pending(what)) => {
                return Err(Error::Internal(format!(
                    "{name} for the {} phase was still unknown ({what})",
                    phase.kind.name()
                )))
            }
        }
    }
    let mut argv = vec![program.as_os_str().to_os_string()];
    argv.extend(phase.args.iter().cloned());
    record.phases.push(PhaseRecord {
        kind: phase.kind,
        loops: phase.loops,
        argv,
        cwd: phase.cwd.clone(),
        log_dir: log_dir.clone(),
        env: env_record,
        started: Utc::now(),
        duration: None,
        end: None,
        stopped_by: None,
    });
    saver.save(record);
    eprintln!(
        "{}",
        render::escape_message(&format!(
            "rd-chain: {} phase: {} {} (log {})",
            phase.kind.name(),
            program.display(),
            phase
                .args
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            log_dir.display()
        ))
    );
    // Live progress (src/progress): route rdagent's output and take the session folder's baseline.
    let live = progress::Live::new(plan)?.prepare(phase, &log_dir, &mut cmd)?;
    let start = Instant::now();
    let group = process::spawn(&mut cmd, kill_after).map_err(|e| {
        Error::RdagentMissing(format!(
            "cannot start {}: {e}; check that it is an executable rdagent (or pass --rdagent PATH)",
            program.display()
        ))
    })?;
    let watch = live.start();
    let (status, stop) = wait_phase(group, kill_after)?;
    let end = PhaseEnd::from_status(status);
    watch.finish(
        end.exit_code(),
        stop.is_none() && end != PhaseEnd::Exited(0),
    );
    if let Some(last) = record.phases.last_mut() {
        last.duration = Some(start.elapsed());
        last.end = Some(end.clone());
        last.stopped_by = stop;
    }
    saver.save(record);
    if let Some(stop) = stop {
        return Err(stopped(stop, phase.kind, Some(&log_dir), record));
    }
    if end != PhaseEnd::Exited(0) {
        return Err(Error::Phase {
            end: end.clone(),
            message: format!(
                "the {} phase failed ({}): rdagent {} stopped; see its log in {}; no further phase was started",
                phase.kind.name(),
                end.describe(),
                phase.kind.subcommand(),
                log_dir.display()
            ),
        });
    }
    Ok(log_dir)
}

fn stopped(stop: Stop, kind: PhaseKind, log_dir: Option<&Path>, record: &RunRecord) -> Error {
    let logs = match log_dir {
        Some(d) => format!("; rdagent's log: {}", d.display()),
        None => String::new(),
    };
    Error::Interrupted {
        stop,
        message: format!(
            "{} during the {} phase; no further phase was started{logs}; run record: {}",
            stop.name(),
            kind.name(),
            record.path.display()
        ),
    }
}

/// A stop signal that arrived since `since`, if any (SIGTERM/SIGHUP win over SIGINT: they come from a
/// supervisor that wants rd-chain gone).
fn pending_stop(since: Received) -> Option<Stop> {
    let now = Received::now();
    if now.term > since.term {
        Some(Stop::Terminate)
    } else if now.hup > since.hup {
        Some(Stop::HangUp)
    } else if now.int > since.int {
        Some(Stop::Interrupt)
    } else {
        None
    }
}

/// `now + d`, or `None` (never) when that is beyond what an `Instant` can hold.
fn deadline(now: Instant, d: Duration) -> Option<Instant> {
    now.checked_add(d)
}

/// Wait for rdagent's process group. Ctrl-C (rdagent's group is not the terminal's foreground group, so only
/// rd-chain gets it): forward SIGINT to the group and wait; if rdagent is still there after `kill_after`,
/// SIGTERM the group, then SIGKILL after as long again. A second Ctrl-C kills at once. SIGTERM/SIGHUP: SIGTERM
/// to the group at once, SIGKILL after `kill_after`. When rdagent has exited, what is left of its group is
/// ended too (`Group::finish`), so no worker outlives the phase.
fn wait_phase(mut group: Group, kill_after: Duration) -> Result<(ExitStatus, Option<Stop>)> {
    let mut seen = Received::now();
    let mut stop: Option<Stop> = None;
    let mut term_at: Option<Instant> = None;
    let mut kill_at: Option<Instant> = None;
    loop {
        match group.try_wait() {
            Ok(Some(status)) => {
                // Ctrl-C is forwarded; rdagent can be reaped before the handler thread has counted rd-chain's
                // copy, so look once more, and read a death by SIGINT as the interrupt.
                let stop =
                    stop.or_else(|| pending_stop(seen))
                        .or(match PhaseEnd::from_status(status) {
                            PhaseEnd::Signaled(signals::SIGINT) => Some(Stop::Interrupt),
                            _ => None,
                        });
                let _ = group.finish();
                return Ok((status, stop));
            }
            Ok(None) => {}
            Err(e) => {
                group.kill();
                let _ = group.finish();
                return Err(Error::Internal(format!("cannot wait for rdagent: {e}")));
            }
        }
        let now = Received::now();
        let now_t = Instant::now();
        if now.term > seen.term || now.hup > seen.hup {
            let this = if now.term > seen.term {
                Stop::Terminate
            } else {
                Stop::HangUp
            };
            if matches!(stop, Some(Stop::Terminate | Stop::HangUp)) {
                // Asked twice: no more grace.
                group.kill();
            } else {
                group.signal(process::SIGTERM);
                kill_at = deadline(now_t, kill_after);
                term_at = None;
            }
            stop = Some(this);
        } else if now.int > seen.int {
            if stop.is_some() || now.int - seen.int > 1 {
                group.kill();
            } else {
                group.signal(process::SIGINT);
                stop = Some(Stop::Interrupt);
                term_at = deadline(now_t, kill_after);
            }
        }
        seen = now;
        if term_at.is_some_and(|t| now_t >= t) {
            log::warn!("rdagent did not stop after Ctrl-C; sending its process group SIGTERM");
            group.signal(process::SIGTERM);
            term_at = None;
            kill_at = deadline(now_t, kill_after);
        }
        if kill_at.is_some_and(|t| now_t >= t) {
            log::warn!("rdagent did not stop after SIGTERM; killing its process group");
            group.kill();
            kill_at = None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The human summary printed at the end of a run.
pub fn summary(plan: &Plan, record: &RunRecord) -> String {
    let mut out = String::new();
    out.push_str("rd-chain summary\n");
    for p in &record.phases {
        let argv = p
            .argv
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        let end = match (&p.end, p.stopped_by) {
            (_, Some(s)) => s.name().to_string(),
            (Some(e), None) => e.describe(),
            (None, None) => "not finished".to_string(),
        };
        let took = p.duration.map(render::human_duration).unwrap_or_default();
        out.push_str(&format!(
            "  {:<6} {argv}\n         {end}, {took}; log {}\n",
            p.kind.name(),
            p.log_dir.display()
        ));
    }
    match &record.sota {
        Some(s) => {
            let at = match (s.loop_id, s.index) {
                (Some(l), Some(i)) => format!("loop {l} (history entry {i})"),
                (None, Some(i)) => format!("history entry {i}"),
                _ => "given workspace".to_string(),
            };
            out.push_str(&format!(
                "  SOTA   {at}: {}\n         {} ({} bytes)\n",
                s.workspace.display(),
                s.parquet.display(),
                s.parquet_bytes
            ));
        }
        None if plan.config.model_loops.value == 0 || plan.phases.is_empty() => {}
        None => out.push_str("  SOTA   not resolved\n"),
    }
    if let Some(report) = &record.hook_report {
        let line = match (report.used, report.shape) {
            (0, _) => format!("WARNING: {}", factors_never_used(report)),
            (n, Some((rows, columns))) => format!(
                "the SOTA factors ({rows} rows x {columns} columns) reached RD-Agent's model runner {n} time(s)"
            ),
            (n, None) => format!("the SOTA factors reached RD-Agent's model runner {n} time(s)"),
        };
        out.push_str(&format!("  hook   {line}\n"));
        if report.base_features_dropped > 0 {
            out.push_str(&format!(
                "  hook   {}=false: the base features were left out of {} model experiment(s)\n",
                contract::ALPHA_FACTORS_ENV,
                report.base_features_dropped
            ));
        }
        if let Some(problem) = &report.template_problem {
            out.push_str(&format!(
                "  hook   WARNING: {}\n",
                render::escape_value(problem)
            ));
        }
    }
    if let Some(outcome) = &record.outcome {
        let code = outcome.ending.exit_code();
        if code != exit::OK {
            out.push_str(&format!("  result exit {code}: {}\n", outcome.message));
        }
    }
    out.push_str(&format!("  record {}\n", record.path.display()));
    if let Some(answers) = &record.answers {
        out.push_str(&answers.text());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_log_dirs_are_distinct_and_named_by_utc_time() {
        let root = std::env::temp_dir().join(format!("rd-chain-fresh-test-{}", std::process::id()));
        let a = fresh_log_dir(&root).unwrap();
        let b = fresh_log_dir(&root).unwrap();
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(name.len(), "2026-01-14_16-14-52-886218".len(), "{name}");
        assert_eq!(&name[4..5], "-");
        assert_eq!(&name[10..11], "_");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_sigterm_during_a_long_step_between_phases_stops_it_at_once() {
        extern "C" {
            fn raise(sig: i32) -> i32;
        }
        signals::install().unwrap();
        let record = RunRecord {
            path: PathBuf::from("/nonexistent/r.json"),
            started: Utc::now(),
            finished: None,
            settings: crate::json::Json::Null,
            hook: None,
            hook_report: None,
            sota: None,
            phases: Vec::new(),
            outcome: None,
            answers: None,
        };
        // A step that never ends by itself (a resolution stuck on a slow disk).
        let (_keep, never) = std::sync::mpsc::channel::<()>();
        // SAFETY: raise(3) sends SIGTERM to this process, whose handler (installed above) only counts it.
        unsafe {
            raise(signals::SIGTERM);
        }
        let err =
            until_stopped(move || never.recv().is_ok(), "while resolving", &record).unwrap_err();
        assert_eq!(err.exit_code(), crate::exit::TERMINATED);
        let m = err.to_string();
        assert!(
            m.contains("SIGTERM") && m.contains("while resolving") && m.contains("r.json"),
            "{m}"
        );
        // The record reads it as an interruption, not a failed resolution.
        let outcome = Outcome::of(&Err(err));
        assert_eq!(outcome.ending.state(), record::State::Interrupted);
    }
}
