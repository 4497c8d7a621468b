//! The run record, `<log root>/rd-chain/<run id>.json`: its fields, its state, its schema version, and how
//! it is written (atomically, so a crash leaves the last true state) and read back. The dry run's `phases[]`
//! have the same shape as the record's, so one reader handles both. Every field is documented in one table in
//! docs/usage.md ("The run record"); a test checks that each field written here is listed there.
//!
//! This module decides nothing about the run: `execute` fills the record, this module owns its form.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use crate::cli::{ChainArgs, RunConfig, SETTINGS};
use crate::hook::{HookDecision, HookReport};
use crate::json::Json;
use crate::plan::PhaseKind;
use crate::signals::{self, Stop};
use crate::timestamp::Utc;
use crate::{exit, Error, Result};

/// The record format's version, written as `schema`. 1: the records written before the field existed (the same
/// fields otherwise); 2: `schema` and every phase's `loops`; 3: `run_id`, `cwd`, `invocation`, `partial_factor`
/// and every phase's `attempts`; 4: every attempt's `hook_report_file`. A record with a higher number than this
/// is refused.
pub const SCHEMA: i64 = 4;

/// How a phase ended.
#[derive(Clone, Debug, PartialEq)]
pub enum PhaseEnd {
    Exited(i32),
    Signaled(i32),
}

impl PhaseEnd {
    pub fn from_status(status: ExitStatus) -> PhaseEnd {
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            if let Some(sig) = status.signal() {
                return PhaseEnd::Signaled(sig);
            }
        }
        PhaseEnd::Exited(status.code().unwrap_or(1))
    }

    /// The chain's exit code for this end (0 only for a clean exit).
    pub fn exit_code(&self) -> u8 {
        match self {
            PhaseEnd::Exited(0) => exit::OK,
            PhaseEnd::Exited(c) => u8::try_from(*c)
                .ok()
                .filter(|c| *c != 0)
                .unwrap_or(exit::INTERNAL),
            PhaseEnd::Signaled(n) => exit::for_signal(*n),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            PhaseEnd::Exited(c) => format!("exit code {c}"),
            PhaseEnd::Signaled(n) => format!("killed by signal {n}"),
        }
    }
}

/// How the chain ended, typed: the state and the exit code are derived from it.
#[derive(Clone, Debug, PartialEq)]
pub enum Ending {
    /// Every phase asked for finished with exit code 0.
    Succeeded,
    /// rd-chain itself received a stop signal.
    Stopped(Stop),
    /// A phase's rdagent ended badly (non-zero exit or killed by a signal); the chain stopped there.
    PhaseFailed(PhaseEnd),
    /// Anything else (resolution, I/O, usage), with its exit code.
    Failed(u8),
}

impl Ending {
    /// The ending an error means.
    pub fn of_error(e: &Error) -> Ending {
        match e {
            Error::Interrupted { stop, .. } => Ending::Stopped(*stop),
            Error::Phase { end, .. } => Ending::PhaseFailed(end.clone()),
            other => Ending::Failed(other.exit_code()),
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Ending::Succeeded => exit::OK,
            Ending::Stopped(stop) => stop.exit_code(),
            Ending::PhaseFailed(end) => end.exit_code(),
            Ending::Failed(code) => *code,
        }
    }

    pub fn state(&self) -> State {
        match self {
            Ending::Succeeded => State::Done,
            Ending::Stopped(_) => State::Interrupted,
            // rdagent stopped by a stop signal someone else sent it counts as an interruption too, as does an
            // rdagent (a wrapper script, say) that exits with a shell's code for one (128 + the signal).
            Ending::PhaseFailed(PhaseEnd::Signaled(n)) if signals::is_stop_signal(*n) => {
                State::Interrupted
            }
            Ending::PhaseFailed(PhaseEnd::Exited(c))
                if c.checked_sub(128).is_some_and(signals::is_stop_signal) =>
            {
                State::Interrupted
            }
            Ending::PhaseFailed(_) | Ending::Failed(_) => State::Failed,
        }
    }
}

/// The record's `state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// The chain has not finished (or rd-chain died without a word).
    Running,
    /// Every phase finished with exit code 0.
    Done,
    /// A phase failed or the SOTA could not be resolved.
    Failed,
    /// Stopped by SIGINT, SIGTERM or SIGHUP (rd-chain's or rdagent's).
    Interrupted,
}

impl State {
    pub const ALL: [State; 4] = [
        State::Running,
        State::Done,
        State::Failed,
        State::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Done => "done",
            State::Failed => "failed",
            State::Interrupted => "interrupted",
        }
    }
}

/// How the chain ended and what it said.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub ending: Ending,
    pub message: String,
}

impl Outcome {
    pub fn of(result: &Result<()>) -> Outcome {
        match result {
            Ok(()) => Outcome {
                ending: Ending::Succeeded,
                message: "the chain finished".to_string(),
            },
            Err(e) => Outcome {
                ending: Ending::of_error(e),
                message: e.to_string(),
            },
        }
    }
}

/// Why an attempt of a phase was started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptReason {
    /// The phase's first attempt.
    Start,
    /// `rd-chain resume`, or the same run id started again.
    Resume,
    /// `--retries`: the previous attempt exited with an error after gaining snapshots.
    Retry,
    /// `--on-stall restart`: the previous attempt wrote no snapshot for `--stall-after`.
    StallRestart,
}

impl AttemptReason {
    pub const ALL: [AttemptReason; 4] = [
        AttemptReason::Start,
        AttemptReason::Resume,
        AttemptReason::Retry,
        AttemptReason::StallRestart,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptReason::Start => "start",
            AttemptReason::Resume => "resume",
            AttemptReason::Retry => "retry",
            AttemptReason::StallRestart => "stall-restart",
        }
    }
}

/// One run of rdagent for a phase: the first, or a continuation on a copy of the previous attempt's log.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub reason: AttemptReason,
    pub argv: Vec<OsString>,
    /// The log dir this attempt wrote (`LOG_TRACE_PATH`).
    pub log_dir: PathBuf,
    /// The previous attempt's log dir this one is a copy of (`None` for a fresh start).
    pub continues: Option<PathBuf>,
    /// The snapshot (in `continues`) it resumed from; its copy in `log_dir` was passed to `--path`.
    pub resumed_from: Option<PathBuf>,
    pub started: Utc,
    pub finished: Option<Utc>,
    pub duration: Option<Duration>,
    pub end: Option<PhaseEnd>,
    pub stopped_by: Option<Stop>,
    /// No new snapshot for `--stall-after` was seen during this attempt.
    pub stalled: bool,
    /// Snapshot files written past the one resumed from (all of them for a fresh start).
    pub snapshots_gained: Option<u64>,
    /// The report file the hook appended to during this attempt (model phase, hook on): in the hook dir while
    /// its rd-chain runs, in the kept `<run>.hook.attempt-N` once a continuation moved it; `None` when the
    /// hook wrote no report.
    pub hook_report_file: Option<PathBuf>,
}

/// What happened to one phase, for the summary and the run record.
#[derive(Clone, Debug)]
pub struct PhaseRecord {
    pub kind: PhaseKind,
    pub loops: u64,
    pub argv: Vec<OsString>,
    pub cwd: PathBuf,
    pub log_dir: PathBuf,
    pub env: Vec<(&'static str, Option<OsString>)>,
    pub started: Utc,
    pub duration: Option<Duration>,
    pub end: Option<PhaseEnd>,
    pub stopped_by: Option<Stop>,
    /// Every attempt, in order; `log_dir`, `started` are the first's, `end`, `stopped_by` the last's,
    /// `duration` their sum.
    pub attempts: Vec<Attempt>,
}

impl PhaseRecord {
    /// The log dir of the last attempt (the whole history so far: a continuation holds its predecessors').
    pub fn last_log_dir(&self) -> &Path {
        self.attempts.last().map_or(&self.log_dir, |a| &a.log_dir)
    }

    /// Finished with exit code 0, not stopped.
    pub fn succeeded(&self) -> bool {
        self.end == Some(PhaseEnd::Exited(0)) && self.stopped_by.is_none()
    }

    /// Copy the last attempt's ending to the phase and add up the durations.
    pub fn sum_up(&mut self) {
        if let Some(last) = self.attempts.last() {
            self.end = last.end.clone();
            self.stopped_by = last.stopped_by;
        }
        let total: Duration = self.attempts.iter().filter_map(|a| a.duration).sum();
        self.duration = Some(total);
    }
}

/// A factor phase that failed for good but whose SOTA the model phase used (`--accept-partial`).
#[derive(Clone, Debug, PartialEq)]
pub struct PartialFactor {
    /// Entries in the history of the snapshot the SOTA came from (one per finished loop).
    pub loops_done: u64,
    pub loops_asked: u64,
}

/// The SOTA factors the model phase gets.
#[derive(Clone, Debug)]
pub struct SotaRecord {
    pub log_dir: Option<PathBuf>,
    pub loop_id: Option<u64>,
    pub index: Option<usize>,
    pub workspace: PathBuf,
    pub parquet: PathBuf,
    pub parquet_bytes: u64,
    pub mapping: Option<String>,
}

/// The run record.
#[derive(Debug)]
pub struct RunRecord {
    pub path: PathBuf,
    pub run_id: String,
    /// Where rd-chain was started (relative paths of the invocation are relative to it).
    pub cwd: PathBuf,
    /// The arguments and variables rd-chain was started with; `resume` starts the same chain from them.
    pub invocation: ChainArgs,
    pub started: Utc,
    pub finished: Option<Utc>,
    /// `settings_json` of the run's settings.
    pub settings: Json,
    pub hook: Option<HookDecision>,
    /// What the hook reported from the model phase (hook on only).
    pub hook_report: Option<HookReport>,
    pub sota: Option<SotaRecord>,
    pub phases: Vec<PhaseRecord>,
    pub partial_factor: Option<PartialFactor>,
    pub outcome: Option<Outcome>,
    /// The chain's two answers (SOTA factor set, SOTA model and its gain), once the phases are done.
    pub answers: Option<crate::answers::ChainAnswers>,
}

impl RunRecord {
    /// The model phase's attempts, in order (none before the model phase starts).
    pub fn model_attempts(&self) -> impl Iterator<Item = &Attempt> {
        self.phases
            .iter()
            .filter(|p| p.kind == PhaseKind::Model)
            .flat_map(|p| p.attempts.iter())
    }

    pub fn model_attempts_mut(&mut self) -> impl Iterator<Item = &mut Attempt> {
        self.phases
            .iter_mut()
            .filter(|p| p.kind == PhaseKind::Model)
            .flat_map(|p| p.attempts.iter_mut())
    }

    pub fn state(&self) -> State {
        self.outcome
            .as_ref()
            .map_or(State::Running, |o| o.ending.state())
    }

    pub fn to_json(&self) -> Json {
        let sota = self.sota.as_ref().map(|s| {
            Json::object()
                .with("log_dir", s.log_dir.as_ref())
                .with("loop", s.loop_id)
                .with("index", s.index)
                .with("workspace", &s.workspace)
                .with("parquet", &s.parquet)
                .with("parquet_bytes", s.parquet_bytes)
                .with("path_mapping", s.mapping.clone())
        });
        let invocation = Json::object()
            .with("args", self.invocation.args.clone())
            .with(
                "env",
                Json::Object(
                    self.invocation
                        .env
                        .iter()
                        .map(|(k, v)| (k.clone(), Json::from(v.as_str())))
                        .collect(),
                ),
            );
        let partial = self.partial_factor.as_ref().map(|p| {
            Json::object()
                .with("loops_done", p.loops_done)
                .with("loops_asked", p.loops_asked)
        });
        Json::object()
            .with("schema", SCHEMA)
            .with("rd_chain_version", env!("CARGO_PKG_VERSION"))
            .with("run_id", self.run_id.as_str())
            .with("state", self.state().as_str())
            .with("started", self.started.iso())
            .with("finished", self.finished.map(|t| t.iso()))
            .with(
                "exit_code",
                self.outcome
                    .as_ref()
                    .map(|o| i64::from(o.ending.exit_code())),
            )
            .with("message", self.outcome.as_ref().map(|o| o.message.clone()))
            .with("cwd", &self.cwd)
            .with("invocation", invocation)
            .with("settings", self.settings.clone())
            .with("hook", self.hook.as_ref().map(hook_json))
            .with(
                "hook_report",
                self.hook_report.as_ref().map(hook_report_json),
            )
            .with("sota", sota)
            .with("partial_factor", partial)
            .with(
                "phases",
                self.phases
                    .iter()
                    .map(phase_record_json)
                    .collect::<Vec<_>>(),
            )
            .with(
                "answers",
                self.answers
                    .as_ref()
                    .map_or(Json::Null, crate::answers::ChainAnswers::to_json),
            )
    }

    /// Rewrite the record atomically (temp file + rename).
    pub fn save(&self) -> Result<()> {
        write_atomic(&self.path, self.to_json().pretty().as_bytes())
    }
}

/// Every setting with its value and origin (the record's and the dry run's `settings`), from `cli::SETTINGS`.
pub fn settings_json(c: &RunConfig) -> Json {
    let mut out = Json::object();
    for entry in SETTINGS {
        let (value, _, origin) = entry.show(c);
        out.push(
            entry.key,
            Json::object()
                .with("value", value)
                .with("origin", origin.to_string()),
        );
    }
    out
}

/// The hook decision (the record's and the dry run's `hook`).
pub fn hook_json(d: &HookDecision) -> Json {
    Json::object()
        .with("mode", d.mode.as_str())
        .with("enabled", d.enabled)
        .with("consumer", d.consumer())
        .with("reason", d.reason.as_str())
        .with("python", d.python.as_ref())
        .with("model_runner", d.model_runner.as_ref())
}

/// A record's `hook_report` read back (`None` when absent or null).
pub fn hook_report_of(j: Option<&Json>) -> Option<HookReport> {
    let h = j.filter(|h| !matches!(h, Json::Null))?;
    let n = |k: &str| h.get(k).and_then(Json::as_i64);
    Some(HookReport {
        armed: n("armed").unwrap_or(0) as usize,
        used: n("used").unwrap_or(0) as usize,
        shape: n("rows")
            .zip(n("columns"))
            .map(|(r, c)| (r as u64, c as u64)),
        base_features_dropped: n("base_features_dropped").unwrap_or(0) as usize,
        template_problem: h
            .get("template_problem")
            .and_then(Json::as_str)
            .map(str::to_string),
    })
}

/// What the hook reported (`hook_report`).
pub fn hook_report_json(r: &HookReport) -> Json {
    Json::object()
        .with("armed", r.armed)
        .with("used", r.used)
        .with("rows", r.shape.map(|s| s.0))
        .with("columns", r.shape.map(|s| s.1))
        .with("base_features_dropped", r.base_features_dropped)
        .with("template_problem", r.template_problem.as_deref())
}

/// What one phase will do or did: the fields the dry run and the record share.
pub struct PhaseJson {
    pub kind: PhaseKind,
    pub loops: u64,
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// A path, or (dry run, not created yet) `{fresh_under: DIR}`.
    pub log_dir: Json,
    /// name -> value; `null` for a variable removed, `{pending: what}` (dry run) for a value known later.
    pub env: Json,
}

/// A phase as JSON, in one shape for the dry run (`ran` = None: the run fields are null) and the record.
pub fn phase_json(p: PhaseJson, ran: Option<&PhaseRecord>) -> Json {
    let (code, signal) = match ran.and_then(|r| r.end.as_ref()) {
        Some(PhaseEnd::Exited(c)) => (Some(i64::from(*c)), None),
        Some(PhaseEnd::Signaled(n)) => (None, Some(i64::from(*n))),
        None => (None, None),
    };
    Json::object()
        .with("phase", p.kind.name())
        .with("loops", p.loops)
        .with("argv", p.argv)
        .with("cwd", &p.cwd)
        .with("log_dir", p.log_dir)
        .with("env", p.env)
        .with("started", ran.map(|r| r.started.iso()))
        .with(
            "duration_seconds",
            ran.and_then(|r| r.duration).map(|d| d.as_secs_f64()),
        )
        .with("exit_code", code)
        .with("signal", signal)
        .with(
            "stopped_by",
            ran.and_then(|r| r.stopped_by).map(|s| s.name()),
        )
        .with(
            "attempts",
            ran.map(|r| r.attempts.iter().map(attempt_json).collect::<Vec<_>>()),
        )
}

fn end_json(end: Option<&PhaseEnd>) -> (Option<i64>, Option<i64>) {
    match end {
        Some(PhaseEnd::Exited(c)) => (Some(i64::from(*c)), None),
        Some(PhaseEnd::Signaled(n)) => (None, Some(i64::from(*n))),
        None => (None, None),
    }
}

fn attempt_json(a: &Attempt) -> Json {
    let (code, signal) = end_json(a.end.as_ref());
    Json::object()
        .with("reason", a.reason.as_str())
        .with(
            "argv",
            a.argv
                .iter()
                .map(|x| x.to_string_lossy().into_owned())
                .collect::<Vec<_>>(),
        )
        .with("log_dir", &a.log_dir)
        .with("continues", a.continues.as_ref())
        .with("resumed_from", a.resumed_from.as_ref())
        .with("started", a.started.iso())
        .with("finished", a.finished.map(|t| t.iso()))
        .with("duration_seconds", a.duration.map(|d| d.as_secs_f64()))
        .with("exit_code", code)
        .with("signal", signal)
        .with("stopped_by", a.stopped_by.map(|s| s.name()))
        .with("stalled", a.stalled)
        .with("snapshots_gained", a.snapshots_gained)
        .with("hook_report_file", a.hook_report_file.as_ref())
}

fn phase_record_json(p: &PhaseRecord) -> Json {
    let env = Json::Object(
        p.env
            .iter()
            .map(|(k, v)| {
                let value = v
                    .as_ref()
                    .map_or(Json::Null, |v| Json::from(v.to_string_lossy().into_owned()));
                (k.to_string(), value)
            })
            .collect(),
    );
    phase_json(
        PhaseJson {
            kind: p.kind,
            loops: p.loops,
            argv: p
                .argv
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            cwd: p.cwd.clone(),
            log_dir: Json::from(&p.log_dir),
            env,
        },
        Some(p),
    )
}

/// Write `bytes` to `path` through a temp file in the same dir and a rename, so readers never see half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, bytes, &mut |file, bytes| {
        file.write_all(bytes)?;
        file.sync_all()
    })
}

/// `write_atomic` with the writing given (tests inject failures). The temp file is created fresh (never through
/// a symlink) next to `path`; on any failure it is removed, so a full disk leaves no `*.tmp-PID` behind and
/// the previous record intact.
pub fn write_atomic_with(
    path: &Path,
    bytes: &[u8],
    write: &mut dyn FnMut(&mut std::fs::File, &[u8]) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = path.with_extension(format!("json.tmp-{}", std::process::id()));
    let fail = |e: std::io::Error| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("cannot write the run record", path, e)
    };
    let mut file = match create_fresh(&tmp) {
        // A leftover of a dead rd-chain that had this pid: it is ours to replace.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(&tmp);
            create_fresh(&tmp)
        }
        other => other,
    }
    .map_err(|e| Error::io("cannot write the run record", &tmp, e))?;
    write(&mut file, bytes).map_err(fail)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(fail)
}

/// Create `path` new (`O_CREAT|O_EXCL`, and `O_NOFOLLOW` on unix), mode 0600 on unix.
pub fn create_fresh(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(O_NOFOLLOW);
    }
    options.open(path)
}

/// O_NOFOLLOW (Linux's value on x86 and arm; the BSDs and macOS use 0x100).
#[cfg(all(unix, any(target_os = "linux", target_os = "android")))]
pub const O_NOFOLLOW: i32 = if cfg!(any(target_arch = "arm", target_arch = "aarch64")) {
    0o100000
} else {
    0o400000
};
#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
pub const O_NOFOLLOW: i32 = 0x100;

/// A run record read back: its schema, state and outcome checked, the whole document kept as written.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedRecord {
    /// 1 for records without `schema`.
    pub schema: i64,
    pub state: State,
    pub started: String,
    pub finished: Option<String>,
    pub exit_code: Option<u8>,
    pub message: Option<String>,
    pub document: Json,
}

/// Read a run record (this version's or an older one). A newer schema, a broken file or a missing field is an
/// error naming the file.
pub fn load(path: &Path) -> Result<LoadedRecord> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io("cannot read the run record", path, e))?;
    parse_record(&text).map_err(|why| {
        Error::Usage(format!(
            "the run record {} cannot be read: {why}",
            path.display()
        ))
    })
}

/// `load` without the file.
pub fn parse_record(text: &str) -> std::result::Result<LoadedRecord, String> {
    let doc = crate::json::parse(text).map_err(|e| format!("not JSON ({e})"))?;
    if !matches!(doc, Json::Object(_)) {
        return Err("not a JSON object".to_string());
    }
    let schema = match doc.get("schema") {
        None => 1,
        Some(v) => v
            .as_i64()
            .filter(|n| *n >= 1)
            .ok_or("`schema` is not a positive whole number")?,
    };
    if schema > SCHEMA {
        return Err(format!(
            "it has schema {schema}, and this rd-chain reads up to schema {SCHEMA}; use a newer rd-chain"
        ));
    }
    let text_field = |name: &str| -> std::result::Result<Option<String>, String> {
        match doc.get(name) {
            None => Err(format!("`{name}` is missing")),
            Some(Json::Null) => Ok(None),
            Some(v) => v
                .as_str()
                .map(|s| Some(s.to_string()))
                .ok_or(format!("`{name}` is not a string")),
        }
    };
    let state_text = text_field("state")?.ok_or("`state` is null")?;
    let state = State::ALL
        .into_iter()
        .find(|s| s.as_str() == state_text)
        .ok_or(format!("unknown state {state_text:?}"))?;
    let exit_code = match doc.get("exit_code") {
        None => return Err("`exit_code` is missing".to_string()),
        Some(Json::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .and_then(|c| u8::try_from(c).ok())
                .ok_or("`exit_code` is not an exit code")?,
        ),
    };
    Ok(LoadedRecord {
        schema,
        state,
        started: text_field("started")?.ok_or("`started` is null")?,
        finished: text_field("finished")?,
        exit_code,
        message: text_field("message")?,
        document: doc,
    })
}

/// Read a run record back into the typed `RunRecord` (what `resume` continues). Records from a newer rd-chain
/// are refused; records from before schema 3 load with one attempt per phase and an empty invocation.
pub fn load_typed(path: &Path) -> Result<RunRecord> {
    let loaded = load(path)?;
    typed(path, &loaded).map_err(|why| {
        Error::Usage(format!(
            "the run record {} cannot be read: {why}; it was not written by rd-chain, or was edited",
            path.display()
        ))
    })
}

fn typed(path: &Path, loaded: &LoadedRecord) -> std::result::Result<RunRecord, String> {
    let doc = &loaded.document;
    let time = time_field;
    let text = |v: Option<&Json>| v.and_then(Json::as_str).map(str::to_string);
    let started = time(doc.get("started"), "started")?.ok_or("`started` is null")?;
    let run_id = text(doc.get("run_id")).unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let mut invocation = ChainArgs::default();
    if let Some(inv) = doc.get("invocation") {
        for a in inv.get("args").and_then(Json::as_array).unwrap_or(&[]) {
            invocation.args.push(
                a.as_str()
                    .ok_or("`invocation.args` holds a non-string")?
                    .to_string(),
            );
        }
        if let Some(Json::Object(fields)) = inv.get("env") {
            for (k, v) in fields {
                let v = v.as_str().ok_or("`invocation.env` holds a non-string")?;
                invocation.env.push((k.clone(), v.to_string()));
            }
        }
    }
    let sota = match doc.get("sota") {
        None | Some(Json::Null) => None,
        Some(s) => Some(SotaRecord {
            log_dir: text(s.get("log_dir")).map(PathBuf::from),
            loop_id: s.get("loop").and_then(Json::as_i64).map(|n| n as u64),
            index: s.get("index").and_then(Json::as_i64).map(|n| n as usize),
            workspace: text(s.get("workspace"))
                .ok_or("`sota.workspace` is missing")?
                .into(),
            parquet: text(s.get("parquet"))
                .ok_or("`sota.parquet` is missing")?
                .into(),
            parquet_bytes: s.get("parquet_bytes").and_then(Json::as_i64).unwrap_or(0) as u64,
            mapping: text(s.get("path_mapping")),
        }),
    };
    let hook_report = hook_report_of(doc.get("hook_report"));
    let hook = match doc.get("hook") {
        None | Some(Json::Null) => None,
        Some(h) => Some(HookDecision {
            enabled: h.get("enabled").and_then(Json::as_bool).unwrap_or(false),
            mode: text(h.get("mode"))
                .and_then(|m| m.parse().ok())
                .ok_or("`hook.mode` is not a hook mode")?,
            reason: text(h.get("reason")).unwrap_or_default(),
            python: text(h.get("python")).map(PathBuf::from),
            model_runner: text(h.get("model_runner")).map(PathBuf::from),
        }),
    };
    let mut phases = Vec::new();
    for p in doc.get("phases").and_then(Json::as_array).unwrap_or(&[]) {
        phases.push(typed_phase(p)?);
    }
    let partial_factor = match doc.get("partial_factor") {
        None | Some(Json::Null) => None,
        Some(p) => Some(PartialFactor {
            loops_done: p.get("loops_done").and_then(Json::as_i64).unwrap_or(0) as u64,
            loops_asked: p.get("loops_asked").and_then(Json::as_i64).unwrap_or(0) as u64,
        }),
    };
    let outcome = match (loaded.state, loaded.exit_code) {
        (State::Running, _) => None,
        (state, code) => {
            let code = code.unwrap_or(exit::INTERNAL);
            let ending = match state {
                State::Done => Ending::Succeeded,
                State::Interrupted => match code {
                    exit::INTERRUPTED => Ending::Stopped(Stop::Interrupt),
                    exit::HUNG_UP => Ending::Stopped(Stop::HangUp),
                    _ => Ending::Stopped(Stop::Terminate),
                },
                _ => Ending::Failed(code),
            };
            Some(Outcome {
                ending,
                message: loaded.message.clone().unwrap_or_default(),
            })
        }
    };
    Ok(RunRecord {
        path: path.to_path_buf(),
        run_id,
        cwd: text(doc.get("cwd")).map(PathBuf::from).unwrap_or_default(),
        invocation,
        started,
        finished: time(doc.get("finished"), "finished")?,
        settings: doc.get("settings").cloned().unwrap_or(Json::object()),
        hook,
        hook_report,
        sota,
        phases,
        partial_factor,
        outcome,
        // Computed again when a continued chain ends; a finished run's record is not rewritten.
        answers: None,
    })
}

/// A time field written by `Utc::iso` (`None` for a missing or null one).
fn time_field(v: Option<&Json>, name: &str) -> std::result::Result<Option<Utc>, String> {
    match v {
        None | Some(Json::Null) => Ok(None),
        Some(v) => v
            .as_str()
            .and_then(Utc::parse_iso)
            .map(Some)
            .ok_or(format!("`{name}` is not a time")),
    }
}

fn typed_end(v: &Json) -> std::result::Result<Option<PhaseEnd>, String> {
    let code = v.get("exit_code").and_then(Json::as_i64);
    let signal = v.get("signal").and_then(Json::as_i64);
    Ok(match (code, signal) {
        (Some(c), _) => Some(PhaseEnd::Exited(
            i32::try_from(c).map_err(|_| "an exit code is out of range")?,
        )),
        (None, Some(n)) => Some(PhaseEnd::Signaled(
            i32::try_from(n).map_err(|_| "a signal is out of range")?,
        )),
        (None, None) => None,
    })
}

fn typed_stop(v: &Json) -> Option<Stop> {
    let name = v.get("stopped_by").and_then(Json::as_str)?;
    [Stop::Interrupt, Stop::Terminate, Stop::HangUp]
        .into_iter()
        .find(|s| s.name() == name)
}

fn typed_phase(p: &Json) -> std::result::Result<PhaseRecord, String> {
    let time = time_field;
    let strings = |v: Option<&Json>| -> Vec<OsString> {
        v.and_then(Json::as_array)
            .unwrap_or(&[])
            .iter()
            .filter_map(Json::as_str)
            .map(OsString::from)
            .collect()
    };
    let path = |v: Option<&Json>| v.and_then(Json::as_str).map(PathBuf::from);
    let kind = match p.get("phase").and_then(Json::as_str) {
        Some("factor") => PhaseKind::Factor,
        Some("model") => PhaseKind::Model,
        _ => return Err("a phase is neither factor nor model".to_string()),
    };
    let seconds = |v: &Json| {
        v.get("duration_seconds")
            .and_then(Json::as_f64)
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
    };
    let log_dir = path(p.get("log_dir")).ok_or("a phase has no `log_dir`")?;
    let started = time(p.get("started"), "phases[].started")?.ok_or("a phase has no start time")?;
    let env = match p.get("env") {
        Some(Json::Object(fields)) => fields
            .iter()
            .filter_map(|(k, v)| {
                // The names are rd-chain's own: keep only those it sets (a `&'static str` each).
                crate::plan::ENV_NAMES
                    .iter()
                    .find(|n| **n == k.as_str())
                    .map(|n| (*n, v.as_str().map(OsString::from)))
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut record = PhaseRecord {
        kind,
        loops: p.get("loops").and_then(Json::as_i64).unwrap_or(0) as u64,
        argv: strings(p.get("argv")),
        cwd: path(p.get("cwd")).unwrap_or_default(),
        log_dir: log_dir.clone(),
        env,
        started,
        duration: seconds(p),
        end: typed_end(p)?,
        stopped_by: typed_stop(p),
        attempts: Vec::new(),
    };
    match p.get("attempts").and_then(Json::as_array) {
        Some(items) => {
            for a in items {
                let reason = a
                    .get("reason")
                    .and_then(Json::as_str)
                    .and_then(|r| AttemptReason::ALL.into_iter().find(|x| x.as_str() == r))
                    .ok_or("an attempt has no known `reason`")?;
                record.attempts.push(Attempt {
                    reason,
                    argv: strings(a.get("argv")),
                    log_dir: path(a.get("log_dir")).ok_or("an attempt has no `log_dir`")?,
                    continues: path(a.get("continues")),
                    resumed_from: path(a.get("resumed_from")),
                    started: time(a.get("started"), "attempts[].started")?
                        .ok_or("an attempt has no start time")?,
                    finished: time(a.get("finished"), "attempts[].finished")?,
                    duration: seconds(a),
                    end: typed_end(a)?,
                    stopped_by: typed_stop(a),
                    stalled: a.get("stalled").and_then(Json::as_bool).unwrap_or(false),
                    snapshots_gained: a
                        .get("snapshots_gained")
                        .and_then(Json::as_i64)
                        .map(|n| n as u64),
                    hook_report_file: path(a.get("hook_report_file")),
                });
            }
        }
        // Before schema 3: the phase was one attempt.
        None => record.attempts.push(Attempt {
            reason: AttemptReason::Start,
            argv: record.argv.clone(),
            log_dir,
            continues: None,
            resumed_from: None,
            started,
            finished: None,
            duration: record.duration,
            end: record.end.clone(),
            stopped_by: record.stopped_by,
            stalled: false,
            snapshots_gained: None,
            hook_report_file: None,
        }),
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(outcome: Option<Outcome>) -> RunRecord {
        let started = Utc::from_unix(1_768_407_292, 886_218);
        RunRecord {
            path: PathBuf::from("/log/rd-chain/x.json"),
            run_id: "x".to_string(),
            cwd: "/p".into(),
            invocation: ChainArgs {
                args: vec!["--factor-loops".into(), "2".into()],
                env: vec![("RD_CHAIN_RETRIES".into(), "1".into())],
            },
            started,
            finished: outcome.as_ref().map(|_| started),
            settings: Json::object().with("factor_loops", Json::object()),
            hook: Some(HookDecision {
                enabled: true,
                mode: crate::hook::HookMode::Auto,
                reason: "r".to_string(),
                python: Some("/usr/bin/python3".into()),
                model_runner: None,
            }),
            hook_report: Some(HookReport {
                armed: 1,
                used: 1,
                shape: Some((20, 4)),
                ..HookReport::default()
            }),
            sota: Some(SotaRecord {
                log_dir: Some("/log/a".into()),
                loop_id: Some(3),
                index: Some(7),
                workspace: "/ws/a".into(),
                parquet: "/ws/a/combined_factors_df.parquet".into(),
                parquet_bytes: 10,
                mapping: Some("recorded".to_string()),
            }),
            phases: vec![PhaseRecord {
                kind: PhaseKind::Factor,
                loops: 2,
                argv: vec!["rdagent".into(), "fin_factor".into()],
                cwd: "/p".into(),
                log_dir: "/log/a".into(),
                env: vec![
                    ("LOG_TRACE_PATH", Some("/log/a".into())),
                    ("SOTA_LOG_PATH", None),
                ],
                started,
                duration: Some(Duration::from_millis(1500)),
                end: Some(PhaseEnd::Exited(0)),
                stopped_by: None,
                attempts: vec![
                    Attempt {
                        reason: AttemptReason::Start,
                        argv: vec!["rdagent".into(), "fin_factor".into()],
                        log_dir: "/log/a".into(),
                        continues: None,
                        resumed_from: None,
                        started,
                        finished: Some(started),
                        duration: Some(Duration::from_millis(500)),
                        end: Some(PhaseEnd::Exited(1)),
                        stopped_by: None,
                        stalled: true,
                        snapshots_gained: Some(3),
                        hook_report_file: None,
                    },
                    Attempt {
                        reason: AttemptReason::Retry,
                        argv: vec!["rdagent".into(), "fin_factor".into(), "--path".into()],
                        log_dir: "/log/a.resume-1".into(),
                        continues: Some("/log/a".into()),
                        resumed_from: Some("/log/a/__session__/1/2_running".into()),
                        started,
                        finished: None,
                        duration: Some(Duration::from_millis(1000)),
                        end: Some(PhaseEnd::Exited(0)),
                        stopped_by: None,
                        stalled: false,
                        snapshots_gained: Some(5),
                        hook_report_file: Some("/log/rd-chain/x.hook.attempt-1/report.tsv".into()),
                    },
                ],
            }],
            partial_factor: Some(PartialFactor {
                loops_done: 2,
                loops_asked: 3,
            }),
            outcome,
            answers: None,
        }
    }

    #[test]
    fn phase_end_maps_to_exit_codes() {
        assert_eq!(PhaseEnd::Exited(0).exit_code(), 0);
        assert_eq!(PhaseEnd::Exited(7).exit_code(), 7);
        assert_eq!(PhaseEnd::Exited(256).exit_code(), exit::INTERNAL);
        assert_eq!(PhaseEnd::Signaled(9).exit_code(), 137);
        assert_eq!(PhaseEnd::Signaled(15).exit_code(), 143);
    }

    #[test]
    fn the_state_comes_from_the_typed_ending() {
        let cases = [
            (Ending::Succeeded, State::Done, 0),
            (Ending::Stopped(Stop::Interrupt), State::Interrupted, 130),
            (Ending::Stopped(Stop::Terminate), State::Interrupted, 143),
            (Ending::Stopped(Stop::HangUp), State::Interrupted, 129),
            (
                Ending::PhaseFailed(PhaseEnd::Signaled(signals::SIGTERM)),
                State::Interrupted,
                143,
            ),
            (
                Ending::PhaseFailed(PhaseEnd::Signaled(9)),
                State::Failed,
                137,
            ),
            (Ending::PhaseFailed(PhaseEnd::Exited(5)), State::Failed, 5),
            (
                Ending::PhaseFailed(PhaseEnd::Exited(130)),
                State::Interrupted,
                130,
            ),
            (
                Ending::PhaseFailed(PhaseEnd::Exited(137)),
                State::Failed,
                137,
            ),
            (Ending::Failed(exit::RESOLUTION), State::Failed, 3),
        ];
        for (ending, state, code) in cases {
            assert_eq!(
                (ending.state(), ending.exit_code()),
                (state, code),
                "{ending:?}"
            );
        }
        assert_eq!(sample(None).state(), State::Running);
    }

    #[test]
    fn atomic_write_replaces_the_whole_file() {
        let dir = std::env::temp_dir().join(format!("rd-chain-exec-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.json");
        write_atomic(&path, b"{\"a\": 1}").unwrap();
        write_atomic(&path, b"{}").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}");
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file may remain");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_no_temp_file_and_the_old_record() {
        let dir = std::env::temp_dir().join(format!("rd-chain-full-disk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.json");
        write_atomic(&path, b"{\"old\": 1}").unwrap();
        // Half the bytes written, then the disk is full.
        let err = write_atomic_with(&path, b"{\"new\": 2}", &mut |file, bytes| {
            file.write_all(&bytes[..4])?;
            Err(std::io::Error::from(std::io::ErrorKind::StorageFull))
        })
        .unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        // The real device: /dev/full refuses every write with ENOSPC.
        let err = write_atomic_with(&path, b"{}", &mut |_, bytes| {
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")?
                .write_all(bytes)
        })
        .unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["r.json"], "no temp file may remain");
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"old\": 1}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_saved_record_loads_back() {
        let dir = std::env::temp_dir().join(format!("rd-chain-record-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut record = sample(Some(Outcome {
            ending: Ending::PhaseFailed(PhaseEnd::Exited(5)),
            message: "the factor phase failed".to_string(),
        }));
        record.path = dir.join("r.json");
        // The hook report's fields all load back too (a resumed run keeps them).
        if let Some(report) = record.hook_report.as_mut() {
            report.base_features_dropped = 2;
            report.template_problem = Some("no base features".to_string());
        }
        record.save().unwrap();
        let loaded = load(&record.path).unwrap();
        assert_eq!(loaded.schema, SCHEMA);
        assert_eq!(loaded.state, State::Failed);
        assert_eq!(loaded.exit_code, Some(5));
        assert_eq!(loaded.message.as_deref(), Some("the factor phase failed"));
        assert_eq!(loaded.started, "2026-01-14T16:14:52.886218Z");
        assert_eq!(loaded.document, record.to_json());
        // And back into the typed record: the same document again.
        let typed = load_typed(&record.path).unwrap();
        assert_eq!(typed.to_json(), record.to_json());
        assert_eq!(typed.phases[0].attempts, record.phases[0].attempts);
        assert_eq!(typed.phases[0].last_log_dir(), Path::new("/log/a.resume-1"));
        assert_eq!(typed.invocation, record.invocation);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_older_record_without_schema_loads_as_schema_1_and_a_newer_one_is_refused() {
        let old = r#"{"rd_chain_version": "0.1.0", "state": "done", "started": "2026-01-14T16:14:52.886218Z",
            "finished": "2026-01-14T17:00:00.000000Z", "exit_code": 0, "message": "the chain finished",
            "settings": {}, "hook": null, "hook_report": null, "sota": null, "phases": []}"#;
        let loaded = parse_record(old).unwrap();
        assert_eq!(
            (loaded.schema, loaded.state, loaded.exit_code),
            (1, State::Done, Some(0))
        );
        let newer = old.replacen('{', &format!("{{\"schema\": {}, ", SCHEMA + 1), 1);
        let err = parse_record(&newer).unwrap_err();
        assert!(err.contains("use a newer rd-chain"), "{err}");
        for (bad, why) in [
            ("[]", "not a JSON object"),
            ("{\"state\": \"done\"", "not JSON"),
            (&old.replace("\"done\"", "\"weird\"")[..], "unknown state"),
            (
                &old.replace("\"exit_code\": 0", "\"exit_code\": 300")[..],
                "not an exit code",
            ),
            (
                &old.replace("\"started\"", "\"begun\"")[..],
                "`started` is missing",
            ),
        ] {
            let err = parse_record(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        let err = load(Path::new("/nonexistent/rd-chain/r.json")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/rd-chain/r.json"),
            "{err}"
        );
    }

    /// The keys of every object in `json`, with their parents' names (`phases[].env` values excluded: they are
    /// variable names).
    fn keys(json: &Json, out: &mut Vec<String>) {
        match json {
            Json::Object(fields) => {
                for (k, v) in fields {
                    out.push(k.clone());
                    if k != "env" && k != "settings" {
                        keys(v, out);
                    }
                }
            }
            Json::Array(items) => items.iter().for_each(|i| keys(i, out)),
            _ => {}
        }
    }

    #[test]
    fn every_field_written_is_documented_in_usage_md() {
        let usage =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/usage.md")).unwrap();
        let section = usage
            .split("### The run record")
            .nth(1)
            .expect("docs/usage.md has a section \"The run record\"");
        let section = section.split("\n### ").next().unwrap();
        let record = sample(Some(Outcome::of(&Ok(()))));
        let mut names = Vec::new();
        keys(&record.to_json(), &mut names);
        names.sort();
        names.dedup();
        assert!(names.len() > 30, "{names:?}");
        let missing: Vec<&String> = names
            .iter()
            .filter(|n| !section.contains(&format!("`{n}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "not documented in docs/usage.md: {missing:?}"
        );
        for state in State::ALL {
            assert!(
                section.contains(&format!("`{}`", state.as_str())),
                "{state:?}"
            );
        }
    }
}
