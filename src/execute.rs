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

use crate::cli::OnStall;
use crate::hook::{contract, HookReport};
use crate::plan::{self, EnvValue, LogDir, Phase, PhaseKind, Plan, SotaState};
use crate::process::{self, Group};
use crate::record::{
    self, Attempt, AttemptReason, Outcome, PartialFactor, PhaseEnd, PhaseRecord, RunRecord,
    SotaRecord, State,
};
use crate::resolve::{self, ResolveRequest};
use crate::runs::RunLock;
use crate::signals::{self, Received, Stop};
use crate::timestamp::Utc;
use crate::watch::{PhaseStall, PhaseWatcher, StallWatch, WatchAction};
use crate::{continuation, exit, hook, progress, render, Error, Result};

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

/// What a phase of this run does: start afresh, continue from its last attempt (an earlier rd-chain of the same
/// run stopped in it), or nothing (it finished in an earlier rd-chain of the same run).
#[derive(Clone, Debug, PartialEq)]
enum PhaseStart {
    Fresh,
    Continue(continuation::Plan),
    Done,
}

/// Run the chain. Prints the summary to stderr (and the run record as one JSON line on stdout with `--json`).
/// A run id with a record already continues that run: a finished one prints its summary and runs nothing, an
/// unfinished one goes on where it stopped.
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
    let mut lock = RunLock::acquire(&plan.lock)?;
    let prior = if plan.run_record.exists() {
        Some(record::load_typed(&plan.run_record)?)
    } else {
        None
    };
    if prior.as_ref().is_some_and(|r| r.state() == State::Done) {
        let Some(mut done) = prior else {
            return Err(Error::Internal(
                "a finished run lost its record".to_string(),
            ));
        };
        eprintln!(
            "rd-chain: run {} already finished; nothing was run again",
            done.run_id
        );
        // The record's answers are read from its logs again (load_typed does not parse them back).
        done.answers = Some(crate::answers::chain_answers(&plan, &done).0);
        return finish_output(&plan, &done, Ok(()));
    }
    // Everything a continuation needs is checked before anything is written.
    let starts = match &prior {
        None => plan.phases.iter().map(|_| PhaseStart::Fresh).collect(),
        Some(r) => continuation_starts(&plan, r)?,
    };
    let continued = prior.is_some();
    let mut record = match prior {
        Some(mut r) => {
            eprintln!(
                "{}",
                render::escape_message(&format!(
                    "rd-chain: continuing run {} (was {}) from its record {}",
                    r.run_id,
                    r.state().as_str(),
                    r.path.display()
                ))
            );
            r.finished = None;
            r.outcome = None;
            r.answers = None;
            r.hook = plan.hook.clone();
            // What this rd-chain was started with (a requeue may add flags, e.g. more retries).
            r.settings = record::settings_json(&plan.config);
            r.invocation = plan.config.invocation.clone();
            r.cwd = plan.cwd.clone();
            r
        }
        None => RunRecord {
            path: plan.run_record.clone(),
            run_id: plan.run_id.clone(),
            cwd: plan.cwd.clone(),
            invocation: plan.config.invocation.clone(),
            started: plan.started,
            finished: None,
            settings: record::settings_json(&plan.config),
            hook: plan.hook.clone(),
            hook_report: None,
            sota: initial_sota(&plan.sota),
            phases: Vec::new(),
            partial_factor: None,
            outcome: None,
            answers: None,
        },
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
    let mut result = run_phases(&plan, &mut record, starts, &mut lock, &mut saver, continued);
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
    finish_output(&plan, &record, result.and(saved))
}

fn finish_output(plan: &Plan, record: &RunRecord, result: Result<()>) -> Result<()> {
    let report = crate::report_data::at_chain_end(plan, record);
    eprint!(
        "{}",
        render::escape_message(&summary(plan, record, &report))
    );
    let printed = if plan.config.json {
        // One line, the last on stdout after rdagent's own output: `rd-chain --json ... | tail -n 1`. It starts
        // with a line break, so it stands on a line of its own even when rdagent's last line had none.
        crate::print_stdout(&format!("\n{}\n", record.to_json().compact()))
    } else {
        Ok(())
    };
    result.and(printed)
}

/// For each planned phase, what an unfinished earlier run of the same id left to do; checks every
/// continuation (its log dir, snapshot, signature, the fresh dir) without writing anything.
fn continuation_starts(plan: &Plan, prior: &RunRecord) -> Result<Vec<PhaseStart>> {
    let mut starts = Vec::new();
    for phase in &plan.phases {
        let Some(done) = prior.phases.iter().find(|p| p.kind == phase.kind) else {
            starts.push(PhaseStart::Fresh);
            continue;
        };
        if done.succeeded() {
            let dir = done.last_log_dir();
            if !dir.is_dir() {
                return Err(Error::usage(format!(
                    "the {} phase's log dir {} recorded for run {} does not exist (deleted or moved); put it back \
                     where it was, or start a new run (a new --run-id)",
                    phase.kind.name(),
                    dir.display(),
                    prior.run_id
                )));
            }
            starts.push(PhaseStart::Done);
            continue;
        }
        let k = u32::try_from(done.attempts.len()).unwrap_or(u32::MAX);
        let prepared = continuation::prepare(
            done.last_log_dir(),
            k,
            plan.signing_key.as_ref(),
            plan.config.allow_legacy_pickle.value,
        )?;
        starts.push(PhaseStart::Continue(prepared));
    }
    Ok(starts)
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

/// Resolve the factor phase's SOTA (the outer error: a stop signal while resolving).
fn resolve_factor_log(
    plan: &Plan,
    phase: &Phase,
    log_dir: &Path,
    record: &RunRecord,
) -> Result<Result<resolve::Resolution>> {
    log::info!("resolving the SOTA factors from {}", log_dir.display());
    let req = ResolveRequest {
        path: log_dir.to_path_buf(),
        pick: plan.config.pick.value,
        workspace_path_env: plan.config.workspace_path_env.clone(),
        cwd: plan.cwd.clone(),
        signing_key: plan.signing_key.clone(),
        verify: crate::session::Verify::WithKeyAtHand,
        // rdagent ran in the phase's cwd: a relative WORKSPACE_PATH is relative to that, wherever the log is.
        project_root: Some(phase.cwd.clone()),
        reading: crate::session::Reading::Everything,
    };
    resolve_or_stop(req, record)
}

fn run_phases(
    plan: &Plan,
    record: &mut RunRecord,
    starts: Vec<PhaseStart>,
    lock: &mut RunLock,
    saver: &mut Saver,
    continued: bool,
) -> Result<()> {
    // `blocking_error` has refused a plan whose phases have no rdagent, so this is used only when valid.
    let program = plan.rdagent.clone().unwrap_or_default();
    let start_of = |kind: PhaseKind| {
        plan.phases
            .iter()
            .position(|p| p.kind == kind)
            .and_then(|i| starts.get(i).cloned())
            .unwrap_or(PhaseStart::Fresh)
    };

    let mut sota_state: Option<resolve::Resolution> = None;
    if let Some(phase) = plan.phase(PhaseKind::Factor) {
        let outcome = run_phase(
            plan,
            phase,
            &program,
            &phase.env,
            start_of(PhaseKind::Factor),
            record,
            lock,
            saver,
        );
        let log_dir = match outcome {
            Ok(dir) => dir,
            Err(e @ Error::Phase { .. }) if plan.config.accept_partial.value => {
                accept_partial(plan, phase, record, e, saver)?
            }
            Err(e) => return Err(e),
        };
        let resolution = match resolve_factor_log(plan, phase, &log_dir, record)? {
            Ok(r) => r,
            Err(Error::Resolution(m)) => {
                return Err(Error::Resolution(format!(
                "the factor phase finished but its SOTA factors could not be resolved from {}: {m}",
                log_dir.display()
            )))
            }
            Err(other) => return Err(other),
        };
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
    let mut env: Vec<(&'static str, EnvValue)> = phase
        .env
        .iter()
        .map(|(name, planned)| {
            let known = sota_env.iter().find(|(n, _)| n == name).map(|(_, v)| v);
            (*name, known.unwrap_or(planned).clone())
        })
        .collect();
    // A model phase that ran before in this run continues with exactly the environment it had (the same SOTA).
    if let Some(before) = record.phases.iter().find(|p| p.kind == PhaseKind::Model) {
        for (name, value) in env.iter_mut() {
            if let Some((_, v)) = before.env.iter().find(|(n, _)| n == name) {
                if *name != "LOG_TRACE_PATH" {
                    *value = v.clone().map_or(EnvValue::Unset, EnvValue::Known);
                }
            }
        }
    }
    // A model phase that finished in an earlier rd-chain of this run runs nothing: its hook dir stays as it is.
    let hook_on = plan.hook.as_ref().is_some_and(|h| h.enabled)
        && start_of(PhaseKind::Model) != PhaseStart::Done;
    let live_report = plan.hook_dir.join(contract::REPORT_FILE);
    // Where this rd-chain's hook lines start in the report (after an earlier attempt's that could not be moved).
    let mut report_offset = 0;
    if hook_on {
        if continued {
            report_offset = keep_earlier_hook_dir(plan, record, saver)?;
        } else {
            hook::install(&plan.hook_dir)?;
        }
        log::info!("rd-chain's factor hook is in {}", plan.hook_dir.display());
    }
    let result = run_phase(
        plan,
        phase,
        &program,
        &env,
        start_of(PhaseKind::Model),
        record,
        lock,
        saver,
    );
    if hook_on {
        let report = HookReport::read_from(&live_report, report_offset);
        if result.is_ok() && !report.factors_reached_training() {
            log::warn!("the model phase finished, but {}", report.outcome());
        }
        record.hook_report = Some(report);
        if std::fs::symlink_metadata(&live_report).is_err() {
            // The hook wrote nothing: no attempt of this rd-chain points at a report.
            point_hook_reports(record, &live_report, None);
        }
        saver.save(record);
    }
    result.map(|_| ())
}

/// A continued run, before its model phase: reinstall the hook, keeping what the earlier rd-chain's hook wrote
/// under `<run>.hook.attempt-N` (N: the model phase's attempts so far) and pointing those attempts at it.
/// Returns where this rd-chain's lines will start in the report (0 unless the earlier one stays in place).
fn keep_earlier_hook_dir(plan: &Plan, record: &mut RunRecord, saver: &mut Saver) -> Result<u64> {
    let attempts_before = record.model_attempts().count();
    let kept = hook::kept_dir(&plan.hook_dir, attempts_before);
    let live_report = plan.hook_dir.join(contract::REPORT_FILE);
    match hook::reinstall(&plan.hook_dir, &kept)? {
        hook::Earlier::Nothing => Ok(0),
        hook::Earlier::Kept { dir, report } => {
            eprintln!(
                "{}",
                render::escape_message(&format!(
                    "rd-chain: the earlier attempt's hook dir is kept as {}{}",
                    dir.display(),
                    if report.is_some() {
                        " (its report.tsv inside)"
                    } else {
                        " (no report in it)"
                    }
                ))
            );
            let mut pointed = false;
            let mut last = None;
            for a in record.model_attempts_mut() {
                pointed |= a.hook_report_file.as_deref() == Some(live_report.as_path());
                last = Some(a);
            }
            match last {
                // A record from before schema 4 names no report: the last attempt is the one that used the dir.
                Some(a) if !pointed => a.hook_report_file = report,
                _ => point_hook_reports(record, &live_report, report),
            }
            saver.save(record);
            Ok(0)
        }
        hook::Earlier::Reused { why, offset } => {
            log::warn!("{why}");
            Ok(offset)
        }
    }
}

/// The kept hook reports of earlier rd-chains of this run, oldest first, each with the model phase's attempts
/// that wrote it ("attempt 1", "attempts 2-3").
fn earlier_hook_reports(record: &RunRecord, live: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(usize, usize, PathBuf)> = Vec::new();
    for (i, a) in record.model_attempts().enumerate() {
        let Some(file) = a.hook_report_file.as_ref().filter(|f| f.as_path() != live) else {
            continue;
        };
        match out.last_mut() {
            Some((_, last, f)) if f == file => *last = i + 1,
            _ => out.push((i + 1, i + 1, file.clone())),
        }
    }
    out.into_iter()
        .map(|(first, last, file)| {
            let which = if first == last {
                format!("attempt {first}")
            } else {
                format!("attempts {first}-{last}")
            };
            (which, file)
        })
        .collect()
}

/// The model phase's attempts whose hook report is `from` now point at `to`.
fn point_hook_reports(record: &mut RunRecord, from: &Path, to: Option<PathBuf>) {
    for a in record.model_attempts_mut() {
        if a.hook_report_file.as_deref() == Some(from) {
            a.hook_report_file = to.clone();
        }
    }
}

/// `--accept-partial`: the factor phase failed for good; go on with its SOTA if its log holds one.
fn accept_partial(
    plan: &Plan,
    phase: &Phase,
    record: &mut RunRecord,
    failure: Error,
    saver: &mut Saver,
) -> Result<PathBuf> {
    let Some(dir) = record
        .phases
        .iter()
        .find(|p| p.kind == PhaseKind::Factor)
        .map(|p| p.last_log_dir().to_path_buf())
    else {
        return Err(failure);
    };
    match resolve_factor_log(plan, phase, &dir, record)? {
        Ok(r) => {
            let done = r.history().len() as u64;
            log::warn!(
                "PARTIAL FACTOR RESULT: the factor phase failed ({failure}); its log {} holds {done} finished \
                 loop(s) of the {} asked, with an accepted SOTA (loop {}): the model phase runs on it because of \
                 --accept-partial",
                dir.display(),
                phase.loops,
                r.picked_loop
                    .map_or_else(|| "unknown".to_string(), |l| l.to_string())
            );
            record.partial_factor = Some(PartialFactor {
                loops_done: done,
                loops_asked: phase.loops,
            });
            saver.save(record);
            Ok(dir)
        }
        Err(e) => {
            log::warn!("--accept-partial: the failed factor phase's log has no usable SOTA: {e}");
            Err(failure)
        }
    }
}

/// The longest wait between retries.
pub const RETRY_WAIT_CAP: Duration = Duration::from_secs(30 * 60);

/// The wait before retry number `n` (0-based): `first` doubled `n` times, at most `RETRY_WAIT_CAP`.
pub fn retry_wait(first: Duration, n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.min(20)).unwrap_or(u32::MAX);
    first.saturating_mul(factor).min(RETRY_WAIT_CAP)
}

/// Run a phase to its end: attempts (the first, or a continuation of an earlier rd-chain's, then retries and
/// stall restarts) until one succeeds, the retries run out, an attempt gains no snapshot, or a stop signal.
/// Returns the log dir of the attempt that finished.
#[allow(clippy::too_many_arguments)]
fn run_phase(
    plan: &Plan,
    phase: &Phase,
    program: &Path,
    env_list: &[(&'static str, EnvValue)],
    start: PhaseStart,
    record: &mut RunRecord,
    lock: &mut RunLock,
    saver: &mut Saver,
) -> Result<PathBuf> {
    let kill_after = Duration::from_secs(plan.config.kill_after.value);
    let mut next = match start {
        PhaseStart::Done => {
            let p = record
                .phases
                .iter()
                .find(|p| p.kind == phase.kind)
                .ok_or_else(|| Error::Internal("a finished phase has no record".to_string()))?;
            eprintln!(
                "{}",
                render::escape_message(&format!(
                    "rd-chain: {} phase: finished in an earlier attempt of this run (log {})",
                    phase.kind.name(),
                    p.last_log_dir().display()
                ))
            );
            return Ok(p.last_log_dir().to_path_buf());
        }
        PhaseStart::Fresh => (AttemptReason::Start, continuation::Plan::Fresh),
        PhaseStart::Continue(c) => (AttemptReason::Resume, c),
    };
    // Live progress and the events file for every attempt of this phase.
    let live = progress::Live::new(plan)?;
    let mut retries_used = 0u64;
    loop {
        let (reason, how) = next;
        // A stall restart uses a retry: with none left, a stall is only reported.
        let restart = plan.config.on_stall.value == OnStall::Restart
            && retries_used < plan.config.retries.value;
        let done = run_attempt(
            plan, phase, program, env_list, kill_after, reason, how, restart, &live, record, lock,
            saver,
        )?;
        let attempt = record
            .phases
            .iter()
            .find(|p| p.kind == phase.kind)
            .and_then(|p| p.attempts.last())
            .cloned()
            .ok_or_else(|| Error::Internal("an attempt was not recorded".to_string()))?;
        let failure = match done {
            Ok(dir) => return Ok(dir),
            Err(e) => e,
        };
        if matches!(failure, Error::Interrupted { .. }) {
            return Err(failure);
        }
        let user_signal = matches!(&attempt.end, Some(PhaseEnd::Signaled(n)) if signals::is_stop_signal(*n))
            && !attempt.stalled;
        let gained = attempt.snapshots_gained.unwrap_or(0);
        let why_not = if user_signal {
            Some("rdagent was stopped by a signal".to_string())
        } else if retries_used >= plan.config.retries.value {
            (plan.config.retries.value > 0).then(|| {
                format!(
                    "all {} retries (--retries) were used",
                    plan.config.retries.value
                )
            })
        } else if gained == 0 && !attempt.stalled {
            Some(
                "its last attempt wrote no new snapshot, so another would most likely fail the same way"
                    .to_string(),
            )
        } else {
            None
        };
        if let Some(why) = why_not {
            return Err(match failure {
                Error::Phase { end, message } => Error::Phase {
                    end,
                    message: format!("{message}; not retried: {why}"),
                },
                other => other,
            });
        }
        if retries_used >= plan.config.retries.value {
            return Err(failure);
        }
        let wait = retry_wait(
            plan.config.retry_wait.value,
            u32::try_from(retries_used).unwrap_or(u32::MAX),
        );
        retries_used += 1;
        let reason = if attempt.stalled {
            AttemptReason::StallRestart
        } else {
            AttemptReason::Retry
        };
        eprintln!(
            "{}",
            render::escape_message(&format!(
                "rd-chain: {} phase: {}; retry {retries_used} of {} in {} (it gained {gained} snapshot(s))",
                phase.kind.name(),
                failure,
                plan.config.retries.value,
                crate::cli::format_duration(wait)
            ))
        );
        let next_attempt = record
            .phases
            .iter()
            .find(|p| p.kind == phase.kind)
            .map_or(1, |p| p.attempts.len() + 1);
        live.events().retry(
            phase.kind,
            u32::try_from(next_attempt).unwrap_or(u32::MAX),
            wait,
            reason.as_str(),
        );
        if let Some(stop) = sleep_unless_stopped(wait, lock) {
            return Err(stopped(stop, phase.kind, Some(&attempt.log_dir), record));
        }
        let k = record
            .phases
            .iter()
            .find(|p| p.kind == phase.kind)
            .map_or(1, |p| u32::try_from(p.attempts.len()).unwrap_or(u32::MAX));
        let how = continuation::prepare(
            &attempt.log_dir,
            k,
            plan.signing_key.as_ref(),
            plan.config.allow_legacy_pickle.value,
        )?;
        next = (reason, how);
    }
}

/// Sleep `d` (keeping the run's lock fresh), waking early for a stop signal (returned).
fn sleep_unless_stopped(d: Duration, lock: &mut RunLock) -> Option<Stop> {
    let since = Received::now();
    let until = Instant::now() + d;
    loop {
        if let Some(stop) = pending_stop(since) {
            return Some(stop);
        }
        lock.touch();
        let now = Instant::now();
        if now >= until {
            return None;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}

/// The `--all-duration` of a continuation: what is left of the phase's limit after its earlier attempts.
fn remaining_duration(limit: Option<&str>, used: Duration) -> Option<String> {
    let total = crate::cli::parse_duration(limit?).ok()?;
    let left = total.saturating_sub(used).as_secs().max(1);
    Some(format!("{left}s"))
}

/// One attempt of a phase: a fresh log dir, or a copy of the previous attempt's with `--path` to its snapshot.
/// The outer `Result` is rd-chain's own failure; the inner one is the attempt's (a failed rdagent, a signal).
#[allow(clippy::too_many_arguments)]
fn run_attempt(
    plan: &Plan,
    phase: &Phase,
    program: &Path,
    env_list: &[(&'static str, EnvValue)],
    kill_after: Duration,
    reason: AttemptReason,
    how: continuation::Plan,
    restart_allowed: bool,
    live: &progress::Live,
    record: &mut RunRecord,
    lock: &mut RunLock,
    saver: &mut Saver,
) -> Result<Result<PathBuf>> {
    if let Some(stop) = pending_stop(Received::default()) {
        return Err(stopped(stop, phase.kind, None, record));
    }
    let (log_dir, continues, resumed_from, from_key, legacy, path_arg) = match &how {
        continuation::Plan::Continue(c) => {
            continuation::copy(c)?;
            eprintln!(
                "{}",
                render::escape_message(&format!(
                    "rd-chain: {} phase: continuing from {} on the copy {} (the original is left as it is)",
                    phase.kind.name(),
                    c.snapshot.display(),
                    c.dir.display()
                ))
            );
            (
                c.dir.clone(),
                Some(c.from.clone()),
                Some(c.snapshot.clone()),
                Some(c.key),
                c.legacy,
                Some(c.snapshot_copy.clone()),
            )
        }
        continuation::Plan::Fresh => {
            let dir = match (&phase.log_dir, reason) {
                (LogDir::UserSet(p), AttemptReason::Start) => {
                    if p.join("__session__").exists() {
                        log::warn!(
                            "LOG_TRACE_PATH {} already holds a session from an earlier run; rdagent will add to it",
                            p.display()
                        );
                    }
                    p.clone()
                }
                _ => fresh_log_dir(&plan.log_root)?,
            };
            (dir, None, None, None, false, None)
        }
    };
    let used: Duration = record
        .phases
        .iter()
        .find(|p| p.kind == phase.kind)
        .map(|p| p.attempts.iter().filter_map(|a| a.duration).sum())
        .unwrap_or_default();
    let args = match &path_arg {
        None => phase.args.clone(),
        Some(snapshot) => {
            let limit = match phase.kind {
                PhaseKind::Factor => plan.config.factor_duration.value.as_deref(),
                PhaseKind::Model => plan.config.model_duration.value.as_deref(),
            };
            let mut a = plan::rdagent_args(
                phase.kind,
                phase.loops,
                remaining_duration(limit, used).as_deref(),
            );
            a.push("--path".into());
            a.push(snapshot.clone().into_os_string());
            a
        }
    };
    let mut cmd = Command::new(program);
    cmd.args(&args).current_dir(&phase.cwd);
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
    // Only a resumed rdagent that must unpickle an unsigned snapshot, and only when asked.
    if legacy {
        cmd.env(plan::LEGACY_PICKLE_ENV, "true");
    } else {
        cmd.env_remove(plan::LEGACY_PICKLE_ENV);
    }
    let mut argv = vec![program.as_os_str().to_os_string()];
    argv.extend(args.iter().cloned());
    let attempt = Attempt {
        reason,
        argv: argv.clone(),
        log_dir: log_dir.clone(),
        continues,
        resumed_from,
        started: Utc::now(),
        finished: None,
        duration: None,
        end: None,
        stopped_by: None,
        stalled: false,
        snapshots_gained: None,
        hook_report_file: (phase.kind == PhaseKind::Model
            && plan.hook.as_ref().is_some_and(|h| h.enabled))
        .then(|| plan.hook_dir.join(contract::REPORT_FILE)),
    };
    match record.phases.iter_mut().find(|p| p.kind == phase.kind) {
        Some(p) => p.attempts.push(attempt),
        None => record.phases.push(PhaseRecord {
            kind: phase.kind,
            loops: phase.loops,
            argv,
            cwd: phase.cwd.clone(),
            log_dir: log_dir.clone(),
            env: env_record,
            started: attempt.started,
            duration: None,
            end: None,
            stopped_by: None,
            attempts: vec![attempt],
        }),
    }
    saver.save(record);
    eprintln!(
        "{}",
        render::escape_message(&format!(
            "rd-chain: {} phase ({}): {} {} (log {})",
            phase.kind.name(),
            reason.as_str(),
            program.display(),
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            log_dir.display()
        ))
    );
    // Live progress (src/progress): route rdagent's output (appended to `<phase>.out`, one heading per
    // attempt) and take the baseline of this attempt's own log dir (a continuation's copy on a resume).
    let prepared = live.prepare(phase, &log_dir, &mut cmd)?;
    if let Some(out) = prepared.output() {
        progress::attempt_heading(out, phase.kind, reason.as_str(), &log_dir);
    }
    let start = Instant::now();
    let group = process::spawn(&mut cmd, kill_after).map_err(|e| {
        Error::RdagentMissing(format!(
            "cannot start {}: {e}; check that it is an executable rdagent (or pass --rdagent PATH)",
            program.display()
        ))
    })?;
    let watch = prepared.start();
    // The stall watch reads the progress watcher's last-snapshot time: one thread looks at the session dir.
    let mut stall = PhaseStall::new(
        &watch,
        StallWatch::new(
            phase.kind,
            plan.config.stall_after.value,
            restart_allowed,
            start,
        ),
    );
    let (status, stop) = wait_phase(group, kill_after, &mut [&mut stall, lock])?;
    let stalled = stall.stalled();
    let end = PhaseEnd::from_status(status);
    watch.finish(
        end.exit_code(),
        stop.is_none() && end != PhaseEnd::Exited(0),
    );
    let gained = continuation::gained_since(&log_dir, from_key);
    if let Some(p) = record.phases.iter_mut().find(|p| p.kind == phase.kind) {
        if let Some(last) = p.attempts.last_mut() {
            last.duration = Some(start.elapsed());
            last.finished = Some(Utc::now());
            last.end = Some(end.clone());
            last.stopped_by = stop;
            last.stalled = stalled;
            last.snapshots_gained = Some(gained);
        }
        p.sum_up();
    }
    saver.save(record);
    if let Some(stop) = stop {
        return Ok(Err(stopped(stop, phase.kind, Some(&log_dir), record)));
    }
    if end != PhaseEnd::Exited(0) {
        let stalled = if stalled && restart_allowed {
            " after rd-chain terminated it for a stall"
        } else {
            ""
        };
        return Ok(Err(Error::Phase {
            end: end.clone(),
            message: format!(
                "the {} phase failed ({}){stalled}: rdagent {} stopped; see its log in {}; no further phase was \
                 started",
                phase.kind.name(),
                end.describe(),
                phase.kind.subcommand(),
                log_dir.display()
            ),
        }));
    }
    Ok(Ok(log_dir))
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
/// ended too (`Group::finish`), so no worker outlives the phase. Watchers are ticked on every turn; one asking
/// for a restart gets the group terminated as a SIGTERM would (SIGKILL after `kill_after`), without counting as
/// a stop of rd-chain.
fn wait_phase(
    mut group: Group,
    kill_after: Duration,
    watchers: &mut [&mut dyn PhaseWatcher],
) -> Result<(ExitStatus, Option<Stop>)> {
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
        for w in watchers.iter_mut() {
            if w.tick(now_t) == WatchAction::Restart && stop.is_none() && kill_at.is_none() {
                group.signal(process::SIGTERM);
                kill_at = deadline(now_t, kill_after);
            }
        }
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

/// The human summary printed at the end of a run; `report` is the report page's line (empty without one),
/// printed after the record's.
pub fn summary(plan: &Plan, record: &RunRecord, report: &str) -> String {
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
        if p.attempts.len() > 1 {
            for (i, a) in p.attempts.iter().enumerate() {
                let end = match (&a.end, a.stopped_by) {
                    (_, Some(s)) => s.name().to_string(),
                    (Some(e), None) => e.describe(),
                    (None, None) => "not finished".to_string(),
                };
                let gained = a
                    .snapshots_gained
                    .map_or_else(String::new, |g| format!(", {g} new snapshot(s)"));
                let stalled = if a.stalled { ", stalled" } else { "" };
                out.push_str(&format!(
                    "         attempt {} ({}, {}): {end}{gained}{stalled}, {}; log {}\n",
                    i + 1,
                    a.reason.as_str(),
                    a.started.iso(),
                    a.duration.map(render::human_duration).unwrap_or_default(),
                    a.log_dir.display()
                ));
            }
        }
    }
    if let Some(p) = &record.partial_factor {
        out.push_str(&format!(
            "  PARTIAL the factor phase failed; its SOTA after {} of {} loop(s) was used (--accept-partial)\n",
            p.loops_done, p.loops_asked
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
        let warning = if report.factors_reached_training() {
            ""
        } else {
            "WARNING: "
        };
        out.push_str(&format!("  hook   {warning}{}\n", report.outcome()));
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
    for (attempts, file) in earlier_hook_reports(record, &plan.hook_dir.join(contract::REPORT_FILE))
    {
        out.push_str(&format!(
            "  hook   earlier {attempts}: {}; its report is kept in {}\n",
            HookReport::read(&file).outcome(),
            file.display()
        ));
    }
    if let Some(outcome) = &record.outcome {
        let code = outcome.ending.exit_code();
        if code != exit::OK {
            out.push_str(&format!("  result exit {code}: {}\n", outcome.message));
        }
    }
    out.push_str(&format!("  record {}\n", record.path.display()));
    out.push_str(report);
    if let Some(answers) = &record.answers {
        out.push_str(&answers.text());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_waits_double_up_to_30_minutes() {
        let s = Duration::from_secs;
        let waits: Vec<Duration> = (0..8).map(|n| retry_wait(s(60), n)).collect();
        assert_eq!(
            waits,
            [
                s(60),
                s(120),
                s(240),
                s(480),
                s(960),
                s(1800),
                s(1800),
                s(1800)
            ]
        );
        assert_eq!(retry_wait(s(0), 5), s(0));
        assert_eq!(retry_wait(s(60), 1000), RETRY_WAIT_CAP);
    }

    #[test]
    fn a_continuation_gets_what_is_left_of_the_time_limit() {
        let s = Duration::from_secs;
        assert_eq!(
            remaining_duration(Some("2h"), s(1800)).as_deref(),
            Some("5400s")
        );
        assert_eq!(
            remaining_duration(Some("90"), s(30)).as_deref(),
            Some("60s")
        );
        // Used up: one second, so rdagent stops at once rather than running without a limit.
        assert_eq!(
            remaining_duration(Some("1m"), s(600)).as_deref(),
            Some("1s")
        );
        assert_eq!(remaining_duration(None, s(5)), None);
    }

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
            run_id: "r".to_string(),
            cwd: PathBuf::new(),
            invocation: crate::cli::ChainArgs::default(),
            started: Utc::now(),
            finished: None,
            settings: crate::json::Json::Null,
            hook: None,
            hook_report: None,
            sota: None,
            phases: Vec::new(),
            partial_factor: None,
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
