//! Config -> the plan of a chain run: which `rdagent`, which SOTA source and its resolution, each phase's argv,
//! cwd and environment, where the run record goes, and the first problem that would stop the run.
//!
//! This is where rd-chain touches the machine before running anything (PATH lookup, reading the SOTA source,
//! asking the rdagent interpreter about the hook), so `--dry-run` shows exactly what the run would do. It
//! writes nothing and starts no phase.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::cli::{RunConfig, SotaSource};
use crate::hook::{self, contract, HookDecision};
use crate::resolve::{self, absolute, ParquetInfo, Resolution, ResolveRequest};
use crate::session::SigningKey;
use crate::timestamp::Utc;
use crate::{Error, Result};

/// rd-chain's own dir under the log root (run records, hook dirs); not a run of rdagent.
pub const RECORD_DIR_NAME: &str = "rd-chain";

/// Every variable rd-chain sets or removes in a phase's environment.
pub const ENV_NAMES: &[&str] = &[
    "LOG_TRACE_PATH",
    contract::LOAD_ENV,
    contract::WORKSPACE_ENV,
    contract::FACTORS_PATH_ENV,
    "SOTA_LOG_PATH",
    "LOAD_SOTA_FROM_LOG",
    "USE_ALPHA_FACTORS",
    "PYTHONPATH",
    contract::REPORT_ENV,
    LEGACY_PICKLE_ENV,
];

/// RD-Agent 1.0 unpickles an unsigned snapshot only with this set to true (`--allow-legacy-pickle`).
pub const LEGACY_PICKLE_ENV: &str = "ALLOW_UNSAFE_LEGACY_PICKLE";

/// The two phases, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhaseKind {
    Factor,
    Model,
}

impl PhaseKind {
    pub fn name(self) -> &'static str {
        match self {
            PhaseKind::Factor => "factor",
            PhaseKind::Model => "model",
        }
    }

    pub fn subcommand(self) -> &'static str {
        match self {
            PhaseKind::Factor => "fin_factor",
            PhaseKind::Model => "fin_model",
        }
    }
}

/// A value rd-chain sets in a phase's environment: known now, or only once an earlier phase has run.
#[derive(Clone, Debug, PartialEq)]
pub enum EnvValue {
    Known(OsString),
    /// What it will be, in words ("the SOTA workspace resolved from the factor log").
    Pending(&'static str),
    /// Removed from the child's environment (a stale value must not reach it).
    Unset,
}

/// Where a phase's log dir comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum LogDir {
    /// `LOG_TRACE_PATH` the user set.
    UserSet(PathBuf),
    /// A fresh `<log root>/<UTC time>` rd-chain creates right before the phase starts.
    Fresh,
}

/// One `rdagent` invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    pub kind: PhaseKind,
    pub loops: u64,
    pub args: Vec<OsString>,
    pub cwd: PathBuf,
    pub log_dir: LogDir,
    /// Variables rd-chain sets on top of its own environment (the rest is inherited).
    pub env: Vec<(&'static str, EnvValue)>,
}

/// The state of the SOTA factors before anything runs.
#[derive(Debug)]
pub enum SotaState {
    /// Resolved from the factor phase's log once it has run.
    AfterFactorPhase,
    /// Resolved now from an existing log.
    Resolved(Box<Resolution>),
    /// A workspace given as is, checked now.
    Workspace { dir: PathBuf, parquet: ParquetInfo },
    /// The given source does not resolve; the run would stop with this error.
    Failed(Error),
}

/// Everything a chain run will do.
#[derive(Debug)]
pub struct Plan {
    pub config: RunConfig,
    pub cwd: PathBuf,
    pub started: Utc,
    /// The run's name: `--run-id`, else the start time; names the record, the lock and the hook dir.
    pub run_id: String,
    /// The run's lock file, `<log root>/rd-chain/<run id>.lock`.
    pub lock: PathBuf,
    /// The rdagent program, or why it cannot be used.
    pub rdagent: std::result::Result<PathBuf, String>,
    /// `false` when no phase runs (only the resolution is reported).
    pub needs_rdagent: bool,
    pub log_root: PathBuf,
    /// The key signed snapshots are checked with (RD-Agent's own: ARTIFACT_SIGNING_KEY or the key file).
    pub signing_key: Option<SigningKey>,
    pub run_record: PathBuf,
    pub hook_dir: PathBuf,
    pub sota: SotaState,
    /// `None` when there is no model phase.
    pub hook: Option<HookDecision>,
    /// With USE_ALPHA_FACTORS false and the hook on: can the installed rdagent's SOTA template train without
    /// base features? (`None` otherwise.)
    pub alpha_template: Option<hook::TemplateCheck>,
    pub phases: Vec<Phase>,
    pub warnings: Vec<String>,
}

impl Plan {
    /// The first problem that stops the run, in the order the run meets them: rdagent, log root (and the hook dir
    /// in it), a SOTA template that cannot train without the base features asked to be left out, SOTA source.
    pub fn blocking_error(&self) -> Option<Error> {
        if self.needs_rdagent {
            if let Err(why) = &self.rdagent {
                return Some(Error::RdagentMissing(why.clone()));
            }
        }
        if let Err(e) = check_writable(&self.log_root) {
            return Some(e);
        }
        if self.hook.as_ref().is_some_and(|h| h.enabled) {
            if let Err(e) = hook::check_dir(&self.hook_dir) {
                return Some(e);
            }
        }
        if let Some(e) = self.alpha_template.as_ref().and_then(template_error) {
            return Some(e);
        }
        match &self.sota {
            SotaState::Failed(e) => Some(clone_error(e)),
            _ => None,
        }
    }

    pub fn phase(&self, kind: PhaseKind) -> Option<&Phase> {
        self.phases.iter().find(|p| p.kind == kind)
    }
}

/// The refusal of a run whose SOTA template cannot train without the base features USE_ALPHA_FACTORS=false
/// leaves out (exit 2: the variable asks for what this rdagent cannot do).
fn template_error(check: &hook::TemplateCheck) -> Option<Error> {
    let problem = check.verdict.problem()?;
    let template = check
        .template
        .as_ref()
        .map_or_else(String::new, |p| format!(" ({})", p.display()));
    Some(Error::usage(format!(
        "{env}=false (or --no-alpha-factors) asks the model phase to train on the SOTA factors without base \
         features, but the installed RD-Agent's SOTA template{template} cannot: {problem}. Set {env}=true (or pass \
         --alpha-factors) to keep the base features, or use an RD-Agent release or SOTA template that loads the \
         SOTA factors without the base features; nothing was started",
        env = contract::ALPHA_FACTORS_ENV
    )))
}

/// Errors are not `Clone` (they may hold an io::Error); the plan keeps one and reports a copy of its text.
fn clone_error(e: &Error) -> Error {
    match e {
        Error::Usage(m) => Error::Usage(m.clone()),
        Error::Resolution(m) => Error::Resolution(m.clone()),
        Error::RdagentMissing(m) => Error::RdagentMissing(m.clone()),
        other => Error::Internal(other.to_string()),
    }
}

/// Build the plan. Reads the SOTA source (if given), looks rdagent up, asks its interpreter about the hook.
/// `env` is the whole environment (paths and PYTHONPATH kept as they are); `text_env` its UTF-8 part, for the
/// signing key.
pub fn build(
    config: RunConfig,
    cwd: &Path,
    env: &BTreeMap<String, OsString>,
    text_env: &BTreeMap<String, String>,
    warnings: Vec<String>,
) -> Plan {
    let started = Utc::now();
    let log_root = absolute(cwd, &config.log_root.value);
    let run_id = config
        .run_id
        .value
        .clone()
        .unwrap_or_else(|| started.log_dir_name());
    let record_dir = log_root.join(RECORD_DIR_NAME);
    let run_record = record_dir.join(format!("{run_id}.json"));
    let lock = record_dir.join(format!("{run_id}.lock"));
    let hook_dir = record_dir.join(format!("{run_id}.hook"));

    let runs_factor = config.sota.source == SotaSource::FactorPhase;
    let runs_model = config.model_loops.value > 0;
    let needs_rdagent = runs_factor || runs_model;
    let rdagent = find_rdagent(config.rdagent.value.as_deref(), cwd, env);
    let signing_key = SigningKey::from_env(text_env);

    let sota = match &config.sota.source {
        SotaSource::FactorPhase => SotaState::AfterFactorPhase,
        SotaSource::Log(p) => {
            let req = ResolveRequest {
                path: absolute(cwd, p),
                pick: config.pick.value,
                workspace_path_env: config.workspace_path_env.clone(),
                cwd: cwd.to_path_buf(),
                signing_key: signing_key.clone(),
                verify: crate::session::Verify::WithKeyAtHand,
                project_root: None,
                reading: crate::session::Reading::Everything,
            };
            match resolve::resolve(&req) {
                Ok(r) => SotaState::Resolved(Box::new(r)),
                Err(e) => SotaState::Failed(e),
            }
        }
        SotaSource::Workspace(p) => {
            let dir = absolute(cwd, p);
            match resolve::check_workspace(&dir) {
                Ok(parquet) => SotaState::Workspace { dir, parquet },
                Err(e) => SotaState::Failed(e),
            }
        }
    };

    // The probe sees the environment the model phase's rdagent will see.
    let hook = match (&rdagent, runs_model) {
        (_, false) => None,
        (Ok(program), true) => Some(hook::decide_in_env(config.hook.value, program, env)),
        (Err(_), true) => Some(hook::decide_in_env(
            config.hook.value,
            Path::new("rdagent"),
            env,
        )),
    };

    // Asked to leave the base features out, the hook empties them: check now that RD-Agent's SOTA template can
    // train that way, so a run that cannot is refused before anything starts.
    let alpha_template = match &hook {
        Some(h) if h.enabled && !config.alpha_factors.value => Some(hook::check_installed(
            h,
            rdagent.as_deref().map_err(String::as_str),
            env,
        )),
        _ => None,
    };

    let mut phases = Vec::new();
    // A LOG_TRACE_PATH the user set goes to the first phase that runs; later ones get fresh dirs.
    let mut user_log = config.log_trace_path.as_ref().map(|p| absolute(cwd, p));
    let mut phase = |kind, loops, duration: &Option<String>, env| Phase {
        kind,
        loops,
        args: rdagent_args(kind, loops, duration.as_deref()),
        cwd: cwd.to_path_buf(),
        log_dir: user_log.take().map_or(LogDir::Fresh, LogDir::UserSet),
        env,
    };
    let log_trace = ("LOG_TRACE_PATH", EnvValue::Pending("the phase's log dir"));
    if runs_factor {
        phases.push(phase(
            PhaseKind::Factor,
            config.factor_loops.value,
            &config.factor_duration.value,
            vec![log_trace.clone()],
        ));
    }
    if runs_model {
        let mut env_set = vec![log_trace];
        env_set.extend(model_sota_env(&sota));
        let alpha = if config.alpha_factors.value {
            "true"
        } else {
            "false"
        };
        env_set.push((contract::ALPHA_FACTORS_ENV, EnvValue::Known(alpha.into())));
        if hook.as_ref().is_some_and(|h| h.enabled) {
            let existing = env.get("PYTHONPATH").map(OsString::as_os_str);
            env_set.push((
                "PYTHONPATH",
                EnvValue::Known(hook::pythonpath(&hook_dir, existing)),
            ));
            env_set.push((
                hook::contract::REPORT_ENV,
                EnvValue::Known(hook_dir.join(hook::contract::REPORT_FILE).into()),
            ));
        }
        phases.push(phase(
            PhaseKind::Model,
            config.model_loops.value,
            &config.model_duration.value,
            env_set,
        ));
    }

    Plan {
        config,
        cwd: cwd.to_path_buf(),
        started,
        run_id,
        lock,
        rdagent,
        needs_rdagent,
        log_root,
        signing_key,
        run_record,
        hook_dir,
        sota,
        hook,
        alpha_template,
        phases,
        warnings,
    }
}

/// `fin_factor --loop-n N [--all-duration D]`: `--loop-n` is the spelling every rdagent release accepts.
pub fn rdagent_args(kind: PhaseKind, loops: u64, duration: Option<&str>) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        kind.subcommand().into(),
        "--loop-n".into(),
        loops.to_string().into(),
    ];
    if let Some(d) = duration {
        args.push("--all-duration".into());
        args.push(d.into());
    }
    args
}

/// The SOTA variables of the model phase: known when the SOTA is, pending while the factor phase has to run.
pub fn model_sota_env(sota: &SotaState) -> Vec<(&'static str, EnvValue)> {
    let (workspace, parquet, log) = match sota {
        SotaState::Resolved(r) => (
            EnvValue::Known(r.workspace.clone().into()),
            EnvValue::Known(r.parquet.path.clone().into()),
            EnvValue::Known(r.log_dir.clone().into()),
        ),
        SotaState::Workspace { dir, parquet } => (
            EnvValue::Known(dir.clone().into()),
            EnvValue::Known(parquet.path.clone().into()),
            EnvValue::Unset,
        ),
        SotaState::AfterFactorPhase => (
            EnvValue::Pending("the SOTA workspace resolved from the factor phase's log"),
            EnvValue::Pending("<that workspace>/combined_factors_df.parquet"),
            EnvValue::Pending("the factor phase's log dir"),
        ),
        SotaState::Failed(_) => (
            EnvValue::Pending("unresolved"),
            EnvValue::Pending("unresolved"),
            EnvValue::Pending("unresolved"),
        ),
    };
    let mut out = vec![
        (contract::LOAD_ENV, EnvValue::Known("true".into())),
        (contract::WORKSPACE_ENV, workspace),
        (contract::FACTORS_PATH_ENV, parquet),
    ];
    // A workspace given as is has no factor log to record: SOTA_LOG_PATH is then removed for the child.
    out.push(("SOTA_LOG_PATH", log));
    out.push(("LOAD_SOTA_FROM_LOG", EnvValue::Known("false".into())));
    out
}

/// Find the rdagent program: a path as given, or a bare name looked up on the environment's PATH.
pub fn find_rdagent(
    given: Option<&Path>,
    cwd: &Path,
    env: &BTreeMap<String, OsString>,
) -> std::result::Result<PathBuf, String> {
    let install_hint =
        "install RD-Agent (`pip install rdagent`) in the active environment, or point rd-chain \
                        at it with --rdagent PATH or RDAGENT_BIN";
    let name = given.unwrap_or(Path::new("rdagent"));
    if name.components().count() > 1 || name.is_absolute() {
        let path = absolute(cwd, name);
        return match std::fs::metadata(&path) {
            Err(e) => Err(format!(
                "rdagent program {} cannot be used: {e}; {install_hint}",
                path.display()
            )),
            Ok(m) if !m.is_file() => Err(format!(
                "rdagent program {} is not a file; {install_hint}",
                path.display()
            )),
            Ok(m) if !is_executable(&m) => Err(format!(
                "rdagent program {} is not executable: chmod +x it, or {install_hint}",
                path.display()
            )),
            Ok(_) => Ok(path),
        };
    }
    let path_var = env.get("PATH").cloned().unwrap_or_default();
    which::which_in(name, Some(path_var), cwd)
        .map_err(|_| format!("`{}` was not found on PATH; {install_hint}", name.display()))
}

#[cfg(unix)]
fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &std::fs::Metadata) -> bool {
    true
}

/// The log root must be a directory rd-chain may create entries in (access(2) with W_OK|X_OK: the
/// caller's uid, groups, ACLs and read-only mounts, not the mode bits), or creatable under its nearest
/// existing ancestor (which must then pass the same test).
pub fn check_writable(log_root: &Path) -> Result<()> {
    check_writable_with(log_root, &may_create_in)
}

/// `check_writable` with the access test given: `Err(why)` when entries cannot be created in the dir.
pub fn check_writable_with(
    log_root: &Path,
    may_create: &dyn Fn(&Path) -> std::result::Result<(), std::io::Error>,
) -> Result<()> {
    let mut probe = log_root;
    loop {
        match std::fs::metadata(probe) {
            Ok(m) if m.is_dir() => {
                return may_create(probe).map_err(|why| {
                    let what = if probe == log_root {
                        "cannot be written".to_string()
                    } else {
                        format!("cannot be created: {} does not exist and", log_root.display())
                    };
                    Error::usage(format!(
                        "the log root {} {what} rd-chain may not create entries in {} ({why}); choose another \
                         with --log-root DIR (or RD_CHAIN_LOG_ROOT)",
                        log_root.display(),
                        probe.display()
                    ))
                });
            }
            Ok(_) => {
                return Err(Error::usage(format!(
                    "the log root {} cannot be used: {} is not a directory; choose another with --log-root DIR",
                    log_root.display(),
                    probe.display()
                )))
            }
            Err(_) => match probe.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => probe = parent,
                _ => return Ok(()),
            },
        }
    }
}

/// May this process create entries in `dir`? access(2) with W_OK|X_OK on unix (the kernel's own answer for
/// this uid, including read-only mounts); elsewhere the read-only attribute.
fn may_create_in(dir: &Path) -> std::result::Result<(), std::io::Error> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        extern "C" {
            fn access(
                path: *const std::os::raw::c_char,
                mode: std::os::raw::c_int,
            ) -> std::os::raw::c_int;
        }
        const W_OK: std::os::raw::c_int = 2;
        const X_OK: std::os::raw::c_int = 1;
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::other("the path holds a NUL byte"))?;
        // SAFETY: `c` is a NUL-terminated string that outlives the call; access(2) only reads it.
        if unsafe { access(c.as_ptr(), W_OK | X_OK) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
    #[cfg(not(unix))]
    {
        match std::fs::metadata(dir) {
            Ok(m) if m.permissions().readonly() => {
                Err(std::io::Error::other("the directory is read-only"))
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_uses_the_dash_spelling_and_passes_durations() {
        let a = rdagent_args(PhaseKind::Factor, 10, None);
        assert_eq!(a, ["fin_factor", "--loop-n", "10"].map(OsString::from));
        let a = rdagent_args(PhaseKind::Model, 3, Some("6h"));
        assert_eq!(
            a,
            ["fin_model", "--loop-n", "3", "--all-duration", "6h"].map(OsString::from)
        );
    }

    #[test]
    fn rdagent_lookup_reports_what_to_do() {
        let env = BTreeMap::from([("PATH".to_string(), OsString::from("/nonexistent-dir"))]);
        let e = find_rdagent(None, Path::new("/"), &env).unwrap_err();
        assert!(
            e.contains("not found on PATH") && e.contains("--rdagent"),
            "{e}"
        );
        let e = find_rdagent(
            Some(Path::new("/nonexistent-dir/rdagent")),
            Path::new("/"),
            &env,
        )
        .unwrap_err();
        assert!(e.contains("/nonexistent-dir/rdagent"), "{e}");
    }

    #[test]
    fn writable_check_walks_up_to_an_existing_dir() {
        let tmp = std::env::temp_dir();
        assert!(check_writable(&tmp.join("rd-chain-no-such/deeper/log")).is_ok());
        let file = tmp.join(format!("rd-chain-plan-test-{}", std::process::id()));
        std::fs::write(&file, b"x").unwrap();
        let e = check_writable(&file.join("log")).unwrap_err();
        std::fs::remove_file(&file).unwrap();
        assert!(e.to_string().contains("is not a directory"), "{e}");
    }

    #[test]
    fn writable_check_asks_the_access_test_of_the_nearest_existing_dir() {
        let tmp = std::env::temp_dir();
        let asked = std::cell::RefCell::new(Vec::new());
        let refuse = |dir: &Path| {
            asked.borrow_mut().push(dir.to_path_buf());
            Err(std::io::Error::from_raw_os_error(13))
        };
        let root = tmp.join("rd-chain-no-such-root/log");
        let e = check_writable_with(&root, &refuse).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::USAGE);
        assert_eq!(*asked.borrow(), std::slice::from_ref(&tmp));
        let m = e.to_string();
        assert!(
            m.contains(&tmp.display().to_string())
                && m.contains("--log-root")
                && m.contains("denied"),
            "{m}"
        );
        let e = check_writable_with(&tmp, &refuse).unwrap_err();
        assert!(e.to_string().contains("cannot be written"), "{e}");
        assert!(check_writable_with(&tmp, &|_| Ok(())).is_ok());
    }
}
