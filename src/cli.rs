//! Command line and environment -> one `Invocation`, with the origin of every value.
//!
//! One table (`FLAGS`) drives both parsing and `--help`. Precedence is defaults < environment < flags. This
//! module does no I/O: the environment arrives as a map, paths stay as given, nothing is looked up or read
//! (that is `plan`'s job). `--help` and `--version` return before any environment variable is interpreted.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::answers::Kind;
use crate::hook::{contract, HookMode};
use crate::json::Json;
use crate::resolve::Pick;
use crate::{Error, Result};

/// Where a setting's value came from; `--dry-run` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Default,
    Env(&'static str),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::Env(name) => write!(f, "env {name}"),
            Origin::Flag(name) => write!(f, "flag {name}"),
        }
    }
}

/// A value and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> Setting<T> {
    fn default(value: T) -> Self {
        Setting {
            value,
            origin: Origin::Default,
        }
    }
}

/// Where the model phase's SOTA factors come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SotaSource {
    /// Resolve from the log of the factor phase rd-chain runs first.
    FactorPhase,
    /// Resolve from an existing factor log (a run dir, its `__session__`, or one snapshot file).
    Log(PathBuf),
    /// Use this workspace as it is.
    Workspace(PathBuf),
}

/// The SOTA source that won, and what every other candidate was and why it lost.
#[derive(Clone, Debug, PartialEq)]
pub struct SotaChoice {
    pub source: SotaSource,
    pub origin: Origin,
    /// One line per candidate that was considered and not used ("env SOTA_LOG_PATH: ignored, ...").
    pub others: Vec<String>,
}

/// Everything the chain (`rd-chain` without a subcommand) needs.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    pub factor_loops: Setting<u64>,
    pub model_loops: Setting<u64>,
    pub factor_duration: Setting<Option<String>>,
    pub model_duration: Setting<Option<String>>,
    pub sota: SotaChoice,
    pub pick: Setting<Pick>,
    /// `None`: look `rdagent` up on PATH.
    pub rdagent: Setting<Option<PathBuf>>,
    pub log_root: Setting<PathBuf>,
    pub alpha_factors: Setting<bool>,
    pub hook: Setting<HookMode>,
    pub kill_after: Setting<u64>,
    pub dry_run: Setting<bool>,
    /// Append one JSON line per progress event to this file.
    pub events: Setting<Option<PathBuf>>,
    /// Keep rdagent's output on the terminal (no status line).
    pub show_output: Setting<bool>,
    /// `None`: the start time names the run.
    pub run_id: Setting<Option<String>>,
    pub retries: Setting<u64>,
    pub retry_wait: Setting<Duration>,
    pub stall_after: Setting<Duration>,
    pub on_stall: Setting<OnStall>,
    pub accept_partial: Setting<bool>,
    pub allow_legacy_pickle: Setting<bool>,
    pub json: bool,
    /// The arguments and the variables rd-chain reads, as given: the run record keeps them so `resume` can
    /// start the same chain again.
    pub invocation: ChainArgs,
    /// A `LOG_TRACE_PATH` the user set: the first phase writes there instead of a fresh dir.
    pub log_trace_path: Option<PathBuf>,
    /// `WORKSPACE_PATH` as the user set it (RD-Agent's workspace root), used to find moved workspaces.
    pub workspace_path_env: Option<PathBuf>,
    /// `--export DIR`: write the answers' bundle there at the end (`None`: no bundle).
    pub export: Setting<Option<PathBuf>>,
    /// Write the report page at the end (`--no-report`: not).
    pub report: Setting<bool>,
}

/// What to do when a phase writes no snapshot for `--stall-after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnStall {
    /// Log a warning once.
    Warn,
    /// Warn, terminate the phase and resume it (counts as a retry).
    Restart,
}

impl OnStall {
    pub fn as_str(self) -> &'static str {
        match self {
            OnStall::Warn => "warn",
            OnStall::Restart => "restart",
        }
    }
}

/// The command line as given (arguments and the environment variables rd-chain reads), kept in the run record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChainArgs {
    pub args: Vec<String>,
    /// Every variable of `INVOCATION_ENV` that was set (non-empty), with its value.
    pub env: Vec<(String, String)>,
}

/// What to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Help,
    Version,
    Run(Box<RunConfig>),
    Resolve(LogQuery),
    Inspect(LogQuery),
    List {
        root: PathBuf,
        json: bool,
        /// `WORKSPACE_PATH`, as for `LogQuery`.
        workspace_path_env: Option<PathBuf>,
    },
    /// `export LOG --to DIR [--kind K] [--force]`.
    Export {
        query: LogQuery,
        to: PathBuf,
        force: bool,
    },
    /// `rd-chain resume [RUN]`: RUN is a run id or a run record's path; `None`: the newest unfinished run.
    Resume {
        run: Option<PathBuf>,
        log_root: Setting<PathBuf>,
    },
    /// `report [RUN|LOG ...] [-o FILE]`.
    Report(ReportQuery),
}

/// What `report` draws: run ids, run records or log dirs (none: the newest run under the log root).
#[derive(Clone, Debug, PartialEq)]
pub struct ReportQuery {
    /// As given, in order; several make a comparison page.
    pub targets: Vec<PathBuf>,
    /// `-o FILE`; `None`: the run's `<log root>/rd-chain/<run>/report.html`, or `report.html` here for logs.
    pub output: Option<PathBuf>,
    /// Where run ids are looked up (`<log root>/rd-chain/<run>.json`).
    pub log_root: Setting<PathBuf>,
    /// `WORKSPACE_PATH`, as for `LogQuery`.
    pub workspace_path_env: Option<PathBuf>,
}

/// What `resolve` and `inspect` ask of one log.
#[derive(Clone, Debug, PartialEq)]
pub struct LogQuery {
    pub path: PathBuf,
    pub pick: Setting<Pick>,
    pub json: bool,
    /// `WORKSPACE_PATH` as the user set it (RD-Agent's workspace root), used to find moved workspaces.
    pub workspace_path_env: Option<PathBuf>,
    /// `--kind factor|model`; `None`: not given (resolve: factor; inspect and export: what the run holds).
    pub kind: Option<Kind>,
    /// `inspect --factors`: the SOTA factor set in detail.
    pub factors: bool,
    /// `resolve --verify`: check the snapshot's signature and fail unless it verifies.
    pub verify: bool,
}

/// How much rd-chain logs to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
    Debug,
}

/// A parsed command line.
#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    pub command: Command,
    pub verbosity: Verbosity,
    /// Settings that were ignored, each with how to enable it; printed as warnings.
    pub warnings: Vec<String>,
}

/// Which commands a flag belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// Every command.
    All,
    /// The chain only.
    Run,
    /// The chain, `resolve` and `inspect`.
    Pick,
    /// The chain, `resolve`, `inspect`, `list` and `export`.
    Json,
    /// `resolve`, `inspect` and `export`.
    Kind,
    /// `inspect` only.
    Inspect,
    /// `resolve` only.
    Resolve,
    /// `export` only.
    Export,
    /// The chain, `resume` and `report` (where runs are).
    Chain,
    /// `report` only.
    Report,
}

impl RunConfig {
    /// Every setting at its typed default from `FLAGS`; the SOTA from the factor phase.
    fn defaults() -> RunConfig {
        let DefaultValue::Pick(pick) = default_of("pick") else {
            panic!("--pick's default is not a pick policy")
        };
        let DefaultValue::Hook(hook) = default_of("hook") else {
            panic!("--hook's default is not a hook mode")
        };
        let DefaultValue::Dir(log_root) = default_of("log-root") else {
            panic!("--log-root's default is not a directory")
        };
        RunConfig {
            factor_loops: Setting::default(count_default("factor-loops")),
            model_loops: Setting::default(count_default("model-loops")),
            factor_duration: Setting::default(None),
            model_duration: Setting::default(None),
            sota: SotaChoice {
                source: SotaSource::FactorPhase,
                origin: Origin::Default,
                others: Vec::new(),
            },
            pick: Setting::default(pick),
            rdagent: Setting::default(None),
            log_root: Setting::default(PathBuf::from(log_root)),
            alpha_factors: Setting::default(bool_default("alpha-factors")),
            hook: Setting::default(hook),
            kill_after: Setting::default(count_default("kill-after")),
            dry_run: Setting::default(bool_default("dry-run")),
            events: Setting::default(None),
            show_output: Setting::default(bool_default("show-output")),
            run_id: Setting::default(None),
            retries: Setting::default(count_default("retries")),
            retry_wait: Setting::default(seconds_default("retry-wait")),
            stall_after: Setting::default(seconds_default("stall-after")),
            on_stall: Setting::default(OnStall::Warn),
            accept_partial: Setting::default(bool_default("accept-partial")),
            allow_legacy_pickle: Setting::default(bool_default("allow-legacy-pickle")),
            json: false,
            invocation: ChainArgs::default(),
            log_trace_path: None,
            workspace_path_env: None,
            export: Setting::default(None),
            report: Setting::default(bool_default("report")),
        }
    }
}

/// The flags given on the command line, in order, with their values.
type Given = [(&'static Flag, Option<OsString>)];

/// One setting of the chain: its flag (whose `FLAGS` entry carries the environment variable, the typed default
/// and the help), its name in the dry-run JSON and the run record (`settings.<key>`), its row in the dry-run
/// text, how it is read, and how it is shown. The parser, the dry run (text and JSON) and the record iterate
/// `SETTINGS`, so a new setting is one entry here plus its field in `RunConfig`.
pub struct SettingEntry {
    /// `settings.<key>` in the dry-run JSON and the run record.
    pub key: &'static str,
    /// The flag's long name.
    pub flag: &'static str,
    /// The row label in the dry-run text; `None`: not shown there.
    pub label: Option<&'static str>,
    /// Flag, else environment variable, else keep the default already in the config.
    read: fn(&'static str, &Given, &Env, &mut RunConfig) -> Result<()>,
    /// The value as JSON, as plan text, and its origin.
    show: fn(&RunConfig) -> (Json, String, Origin),
}

impl SettingEntry {
    /// The value as JSON, as plan text, and where it came from.
    pub fn show(&self, c: &RunConfig) -> (Json, String, Origin) {
        (self.show)(c)
    }
}

fn shown<T: Clone + Into<Json>>(s: &Setting<T>, text: String) -> (Json, String, Origin) {
    (s.value.clone().into(), text, s.origin.clone())
}

/// An optional path: JSON null and `none_text` when unset.
fn shown_path(s: &Setting<Option<PathBuf>>, none_text: &str) -> (Json, String, Origin) {
    let value = s.value.as_ref();
    let text = value.map_or_else(|| none_text.to_string(), |p| p.display().to_string());
    let json = value.map(|p| Json::from(p.as_path()));
    (json.into(), text, s.origin.clone())
}

fn no_duration(d: &Option<String>) -> String {
    d.clone().unwrap_or_else(|| "none".into())
}

/// Every setting of the chain, in the order the dry run and the record show them.
pub const SETTINGS: &[SettingEntry] = &[
    SettingEntry {
        key: "factor_loops",
        flag: "factor-loops",
        label: Some("factor loops"),
        read: |long, g, e, c| read_into(&mut c.factor_loops, long, g, e, whole_number),
        show: |c| shown(&c.factor_loops, c.factor_loops.value.to_string()),
    },
    SettingEntry {
        key: "model_loops",
        flag: "model-loops",
        label: Some("model loops"),
        read: |long, g, e, c| read_into(&mut c.model_loops, long, g, e, whole_number),
        show: |c| shown(&c.model_loops, c.model_loops.value.to_string()),
    },
    SettingEntry {
        key: "factor_duration",
        flag: "factor-duration",
        label: Some("factor duration"),
        read: |long, g, e, c| read_into(&mut c.factor_duration, long, g, e, duration),
        show: |c| shown(&c.factor_duration, no_duration(&c.factor_duration.value)),
    },
    SettingEntry {
        key: "model_duration",
        flag: "model-duration",
        label: Some("model duration"),
        read: |long, g, e, c| read_into(&mut c.model_duration, long, g, e, duration),
        show: |c| shown(&c.model_duration, no_duration(&c.model_duration.value)),
    },
    SettingEntry {
        key: "pick",
        flag: "pick",
        label: Some("pick"),
        read: |long, g, e, c| read_into(&mut c.pick, long, g, e, parse_pick),
        show: |c| {
            let text = c.pick.value.to_string();
            (Json::from(text.as_str()), text, c.pick.origin.clone())
        },
    },
    SettingEntry {
        key: "rdagent",
        flag: "rdagent",
        label: Some("rdagent"),
        read: |long, g, e, c| {
            if let Some((p, origin)) = read_path(long, g, e) {
                c.rdagent = Setting {
                    value: Some(p),
                    origin,
                };
            }
            Ok(())
        },
        show: |c| shown_path(&c.rdagent, RDAGENT_ON_PATH),
    },
    SettingEntry {
        key: "log_root",
        flag: "log-root",
        label: Some("log root"),
        read: |long, g, e, c| {
            if let Some((value, origin)) = read_path(long, g, e) {
                c.log_root = Setting { value, origin };
            }
            Ok(())
        },
        show: |c| {
            let json = Json::from(c.log_root.value.as_path());
            (
                json,
                c.log_root.value.display().to_string(),
                c.log_root.origin.clone(),
            )
        },
    },
    SettingEntry {
        key: "alpha_factors",
        flag: "alpha-factors",
        label: Some("alpha factors"),
        read: read_alpha_factors,
        show: |c| shown(&c.alpha_factors, c.alpha_factors.value.to_string()),
    },
    SettingEntry {
        key: "hook",
        flag: "hook",
        label: Some("hook"),
        read: |long, g, e, c| {
            read_into(&mut c.hook, long, g, e, |t| {
                t.parse::<HookMode>().map_err(|e| e.to_string())
            })
        },
        show: |c| {
            let text = c.hook.value.as_str();
            (Json::from(text), text.to_string(), c.hook.origin.clone())
        },
    },
    SettingEntry {
        key: "kill_after",
        flag: "kill-after",
        label: Some("kill after"),
        read: |long, g, e, c| read_into(&mut c.kill_after, long, g, e, kill_after_seconds),
        show: |c| shown(&c.kill_after, format!("{}s", c.kill_after.value)),
    },
    SettingEntry {
        key: "events",
        flag: "events",
        label: Some("events"),
        read: |long, g, e, c| read_into(&mut c.events, long, g, e, |t| Ok(Some(PathBuf::from(t)))),
        show: |c| shown_path(&c.events, "none"),
    },
    SettingEntry {
        key: "show_output",
        flag: "show-output",
        label: Some("show output"),
        read: |long, g, e, c| read_switch(&mut c.show_output, long, g, e),
        show: |c| shown(&c.show_output, c.show_output.value.to_string()),
    },
    SettingEntry {
        key: "export",
        flag: "export",
        label: Some("export"),
        read: |long, g, e, c| read_into(&mut c.export, long, g, e, |t| Ok(Some(PathBuf::from(t)))),
        show: |c| shown_path(&c.export, "none"),
    },
    SettingEntry {
        key: "report",
        flag: "report",
        label: Some("report"),
        read: read_report,
        show: |c| shown(&c.report, c.report.value.to_string()),
    },
    SettingEntry {
        key: "dry_run",
        flag: "dry-run",
        label: None,
        read: |long, g, e, c| read_switch(&mut c.dry_run, long, g, e),
        show: |c| shown(&c.dry_run, c.dry_run.value.to_string()),
    },
    SettingEntry {
        key: "run_id",
        flag: "run-id",
        label: Some("run id"),
        read: |long, g, e, c| read_into(&mut c.run_id, long, g, e, |t| run_id(t).map(Some)),
        show: |c| {
            let text = c
                .run_id
                .value
                .clone()
                .unwrap_or_else(|| RUN_ID_DEFAULT.to_string());
            (c.run_id.value.clone().into(), text, c.run_id.origin.clone())
        },
    },
    SettingEntry {
        key: "retries",
        flag: "retries",
        label: Some("retries"),
        read: |long, g, e, c| read_into(&mut c.retries, long, g, e, whole_number),
        show: |c| shown(&c.retries, c.retries.value.to_string()),
    },
    SettingEntry {
        key: "retry_wait",
        flag: "retry-wait",
        label: Some("retry wait"),
        read: |long, g, e, c| read_into(&mut c.retry_wait, long, g, e, parse_duration),
        show: |c| seconds_shown(&c.retry_wait),
    },
    SettingEntry {
        key: "stall_after",
        flag: "stall-after",
        label: Some("stall after"),
        read: |long, g, e, c| read_into(&mut c.stall_after, long, g, e, parse_duration),
        show: |c| seconds_shown(&c.stall_after),
    },
    SettingEntry {
        key: "on_stall",
        flag: "on-stall",
        label: Some("on stall"),
        read: |long, g, e, c| {
            read_into(&mut c.on_stall, long, g, e, |t| match t.trim() {
                "warn" => Ok(OnStall::Warn),
                "restart" => Ok(OnStall::Restart),
                _ => Err("expected warn or restart".to_string()),
            })
        },
        show: |c| {
            let text = c.on_stall.value.as_str();
            (
                Json::from(text),
                text.to_string(),
                c.on_stall.origin.clone(),
            )
        },
    },
    SettingEntry {
        key: "accept_partial",
        flag: "accept-partial",
        label: Some("accept partial"),
        read: |long, g, e, c| read_switch(&mut c.accept_partial, long, g, e),
        show: |c| shown(&c.accept_partial, c.accept_partial.value.to_string()),
    },
    SettingEntry {
        key: "allow_legacy_pickle",
        flag: "allow-legacy-pickle",
        label: Some("legacy pickle"),
        read: |long, g, e, c| read_switch(&mut c.allow_legacy_pickle, long, g, e),
        show: |c| {
            shown(
                &c.allow_legacy_pickle,
                c.allow_legacy_pickle.value.to_string(),
            )
        },
    },
];

/// How the plan text shows a run id that is not chosen.
pub const RUN_ID_DEFAULT: &str = "the start time";

fn seconds_shown(s: &Setting<Duration>) -> (Json, String, Origin) {
    (
        Json::from(s.value.as_secs()),
        format_duration(s.value),
        s.origin.clone(),
    )
}

/// One flag: its spellings, its value's name, its environment variable, default and help text.
struct Flag {
    long: &'static str,
    short: Option<char>,
    /// Name of the value in help (`N`, `PATH`); `None` for a switch.
    value: Option<&'static str>,
    env: Option<&'static str>,
    default: DefaultValue,
    help: &'static str,
    scope: Scope,
}

/// A flag's typed default: the parser starts from it and `--help` prints it, so it is written once.
#[derive(Clone, Copy, Debug, PartialEq)]
enum DefaultValue {
    /// No default worth printing (a switch that is off, a flag without a value).
    Nothing,
    Count(u64),
    /// A directory, relative to the current one.
    Dir(&'static str),
    Bool(bool),
    Pick(Pick),
    Hook(HookMode),
    /// A program found on PATH.
    OnPath,
    /// A duration in seconds, printed with the largest unit that divides it (`60s`, `3h`).
    Seconds(u64),
    /// A word among the flag's choices.
    Word(&'static str),
}

/// How the plan text and `--help` describe an `rdagent` that is looked up on PATH.
pub const RDAGENT_ON_PATH: &str = "rdagent on PATH";

impl DefaultValue {
    fn help(self) -> Option<String> {
        match self {
            DefaultValue::Nothing => None,
            DefaultValue::Count(n) => Some(n.to_string()),
            DefaultValue::Dir(d) => Some(format!("./{d}")),
            DefaultValue::Bool(b) => Some(b.to_string()),
            DefaultValue::Pick(p) => Some(p.to_string()),
            DefaultValue::Hook(h) => Some(h.as_str().to_string()),
            DefaultValue::OnPath => Some(RDAGENT_ON_PATH.to_string()),
            DefaultValue::Seconds(n) => Some(format_duration(Duration::from_secs(n))),
            DefaultValue::Word(w) => Some(w.to_string()),
        }
    }
}

/// The typed default of `--long` (a mismatch between the table and the caller is a bug the tests catch).
fn default_of(long: &str) -> DefaultValue {
    flag(long).expect("flag in table").default
}

fn count_default(long: &str) -> u64 {
    match default_of(long) {
        DefaultValue::Count(n) => n,
        other => panic!("--{long} has the default {other:?}, not a count"),
    }
}

fn seconds_default(long: &str) -> Duration {
    match default_of(long) {
        DefaultValue::Seconds(n) => Duration::from_secs(n),
        other => panic!("--{long} has the default {other:?}, not a duration"),
    }
}

fn bool_default(long: &str) -> bool {
    match default_of(long) {
        DefaultValue::Bool(b) => b,
        other => panic!("--{long} has the default {other:?}, not a boolean"),
    }
}

const FLAGS: &[Flag] = &[
    Flag {
        long: "factor-loops",
        short: None,
        value: Some("N"),
        env: Some("RD_CHAIN_FACTOR_LOOPS"),
        default: DefaultValue::Count(10),
        help: "Loops of `rdagent fin_factor`. 0 skips the factor phase (then a SOTA source is required).",
        scope: Scope::Run,
    },
    Flag {
        long: "model-loops",
        short: None,
        value: Some("N"),
        env: Some("RD_CHAIN_MODEL_LOOPS"),
        default: DefaultValue::Count(10),
        help: "Loops of `rdagent fin_model`. 0 stops after resolving the SOTA (run factors, report).",
        scope: Scope::Run,
    },
    Flag {
        long: "factor-duration",
        short: None,
        value: Some("D"),
        env: Some("RD_CHAIN_FACTOR_DURATION"),
        default: DefaultValue::Nothing,
        help: "Time limit of the factor phase, passed as rdagent `--all-duration D` (e.g. 6h).",
        scope: Scope::Run,
    },
    Flag {
        long: "model-duration",
        short: None,
        value: Some("D"),
        env: Some("RD_CHAIN_MODEL_DURATION"),
        default: DefaultValue::Nothing,
        help: "Time limit of the model phase, passed as rdagent `--all-duration D`.",
        scope: Scope::Run,
    },
    Flag {
        long: "sota-log",
        short: None,
        value: Some("PATH"),
        env: Some("LOAD_SOTA_FROM_LOG + SOTA_LOG_PATH"),
        default: DefaultValue::Nothing,
        help: "Take the SOTA factors from this existing factor log (skips the factor phase).",
        scope: Scope::Run,
    },
    Flag {
        long: "sota-workspace",
        short: None,
        value: Some("PATH"),
        env: Some("LOAD_SOTA_FROM_WORKSPACE + SOTA_WORKSPACE_PATH"),
        default: DefaultValue::Nothing,
        help: "Use this factor workspace as it is (skips the factor phase).",
        scope: Scope::Run,
    },
    Flag {
        long: "pick",
        short: None,
        value: Some("POLICY"),
        env: Some("RD_CHAIN_PICK"),
        default: DefaultValue::Pick(Pick::Sota),
        help: "Which experiment: sota (last accepted factor experiment, RD-Agent's own rule), latest (last \
               one with a parquet), loop:N.",
        scope: Scope::Pick,
    },
    Flag {
        long: "rdagent",
        short: None,
        value: Some("PATH"),
        env: Some("RDAGENT_BIN"),
        default: DefaultValue::OnPath,
        help: "The rdagent program to run.",
        scope: Scope::Run,
    },
    Flag {
        long: "log-root",
        short: None,
        value: Some("DIR"),
        env: Some("RD_CHAIN_LOG_ROOT"),
        default: DefaultValue::Dir("log"),
        help: "Where each phase's log dir and rd-chain's run record are created (report: where run ids are \
               looked up).",
        scope: Scope::Chain,
    },
    Flag {
        long: "alpha-factors",
        short: None,
        value: None,
        env: Some("USE_ALPHA_FACTORS"),
        default: DefaultValue::Bool(true),
        help: "Set USE_ALPHA_FACTORS=true for the model phase (--no-alpha-factors sets false).",
        scope: Scope::Run,
    },
    Flag {
        long: "no-alpha-factors",
        short: None,
        value: None,
        env: None,
        default: DefaultValue::Nothing,
        help: "Set USE_ALPHA_FACTORS=false for the model phase.",
        scope: Scope::Run,
    },
    Flag {
        long: "hook",
        short: None,
        value: Some("MODE"),
        env: Some("RD_CHAIN_HOOK"),
        default: DefaultValue::Hook(HookMode::Auto),
        help: "How the model phase gets the factors: auto (the rd-chain hook unless the installed rdagent reads \
               SOTA_WORKSPACE_PATH itself), on, off (env vars only).",
        scope: Scope::Run,
    },
    Flag {
        long: "kill-after",
        short: None,
        value: Some("SECONDS"),
        env: Some("RD_CHAIN_KILL_AFTER"),
        default: DefaultValue::Count(10),
        help: "After SIGTERM/SIGHUP is forwarded to rdagent's process group, wait this long before SIGKILL \
               (seconds, or with s, m, h; at most 86400, one day).",
        scope: Scope::Run,
    },
    Flag {
        long: "events",
        short: None,
        value: Some("FILE"),
        env: Some("RD_CHAIN_EVENTS"),
        default: DefaultValue::Nothing,
        help: "Append one JSON object per line to FILE for each event (phase start/end, finished loop, new \
               SOTA, retry, stall), flushed as it happens (fields in docs/usage.md).",
        scope: Scope::Run,
    },
    Flag {
        long: "show-output",
        short: None,
        value: None,
        env: Some("RD_CHAIN_SHOW_OUTPUT"),
        default: DefaultValue::Bool(false),
        help: "On a terminal, keep rdagent's output there instead of <log root>/rd-chain/<run>/<phase>.out \
               (progress then comes as one line per finished loop, not a status line).",
        scope: Scope::Run,
    },
    Flag {
        long: "export",
        short: None,
        value: Some("DIR"),
        env: Some("RD_CHAIN_EXPORT"),
        default: DefaultValue::Nothing,
        help: "At the end, write the bundle of both answers (SOTA factors with their code, SOTA model) to DIR, \
               as `rd-chain export` does; DIR must not exist or be empty.",
        scope: Scope::Run,
    },
    Flag {
        long: "report",
        short: None,
        value: None,
        env: Some("RD_CHAIN_REPORT"),
        default: DefaultValue::Bool(true),
        help: "At the end, write the run's report page to LOG_ROOT/rd-chain/RUN/report.html (as \
               `rd-chain report` does); --no-report skips it.",
        scope: Scope::Run,
    },
    Flag {
        long: "no-report",
        short: None,
        value: None,
        env: None,
        default: DefaultValue::Nothing,
        help: "Do not write the report page at the end.",
        scope: Scope::Run,
    },
    Flag {
        long: "output",
        short: Some('o'),
        value: Some("FILE"),
        env: None,
        default: DefaultValue::Nothing,
        help: "report: the page's file (default: LOG_ROOT/rd-chain/RUN/report.html for one chain run, else \
               report.html in the current directory).",
        scope: Scope::Report,
    },
    Flag {
        long: "kind",
        short: None,
        value: Some("KIND"),
        env: None,
        default: DefaultValue::Nothing,
        help: "resolve/inspect/export: which answer, factor (the SOTA factor workspace; resolve's default) or \
               model (the SOTA model: the last accepted model experiment). inspect and export default to what \
               the log holds.",
        scope: Scope::Kind,
    },
    Flag {
        long: "verify",
        short: None,
        value: None,
        env: None,
        default: DefaultValue::Nothing,
        help: "resolve: check the snapshot's HMAC with RD-Agent's signing key and fail (exit 3) unless it \
               verifies; without it resolve checks no signature (it only reads a path; nothing in a snapshot is \
               ever run). inspect, export, report, the chain and a resume check whenever the key is at hand.",
        scope: Scope::Resolve,
    },
    Flag {
        long: "factors",
        short: None,
        value: None,
        env: None,
        default: DefaultValue::Nothing,
        help: "inspect: every factor of the SOTA parquet with the loop that introduced it, its description, \
               formulation, variables, whether its code is in the snapshot, and that loop's hypothesis.",
        scope: Scope::Inspect,
    },
    Flag {
        long: "to",
        short: None,
        value: Some("DIR"),
        env: None,
        default: DefaultValue::Nothing,
        help: "export: the bundle's directory (must not exist or be empty).",
        scope: Scope::Export,
    },
    Flag {
        long: "force",
        short: None,
        value: None,
        env: None,
        default: DefaultValue::Nothing,
        help: "export: replace an earlier bundle in --to DIR, removing only the files its manifest.json lists.",
        scope: Scope::Export,
    },
    Flag {
        long: "dry-run",
        short: Some('n'),
        value: None,
        env: Some("RD_CHAIN_DRY_RUN"),
        default: DefaultValue::Bool(false),
        help: "Print the whole plan (settings and their origins, resolution, each phase's argv and env) and \
               run nothing.",
        scope: Scope::Run,
    },
    Flag {
        long: "run-id",
        short: None,
        value: Some("ID"),
        env: Some("RD_CHAIN_RUN_ID"),
        default: DefaultValue::Nothing,
        help: "Name the run (letters, digits, '.', '_', '-'; up to 100 characters; default: the start time). \
               Starting the same run id again continues it where it stopped; a run id that finished prints \
               its summary and runs nothing.",
        scope: Scope::Run,
    },
    Flag {
        long: "retries",
        short: None,
        value: Some("N"),
        env: Some("RD_CHAIN_RETRIES"),
        default: DefaultValue::Count(0),
        help: "Resume a phase that exits with an error up to N times, each only if its log gained a snapshot \
               since the previous attempt.",
        scope: Scope::Run,
    },
    Flag {
        long: "retry-wait",
        short: None,
        value: Some("D"),
        env: Some("RD_CHAIN_RETRY_WAIT"),
        default: DefaultValue::Seconds(60),
        help: "Wait before the first retry, doubled for each next one, at most 30m. Durations: seconds \
               (90) or with s, m, h (90s, 15m, 3h).",
        scope: Scope::Run,
    },
    Flag {
        long: "stall-after",
        short: None,
        value: Some("D"),
        env: Some("RD_CHAIN_STALL_AFTER"),
        default: DefaultValue::Seconds(3 * 3600),
        help: "A phase that writes no new snapshot for D is stalled: warn once (see --on-stall).",
        scope: Scope::Run,
    },
    Flag {
        long: "on-stall",
        short: None,
        value: Some("ACTION"),
        env: Some("RD_CHAIN_ON_STALL"),
        default: DefaultValue::Word("warn"),
        help: "warn, or restart: terminate the stalled phase and resume it (counts as a retry).",
        scope: Scope::Run,
    },
    Flag {
        long: "accept-partial",
        short: None,
        value: None,
        env: Some("RD_CHAIN_ACCEPT_PARTIAL"),
        default: DefaultValue::Bool(false),
        help: "When the factor phase fails for good but its log holds an accepted SOTA, run the model phase \
               on it (saying how many loops were done).",
        scope: Scope::Run,
    },
    Flag {
        long: "allow-legacy-pickle",
        short: None,
        value: None,
        env: Some("RD_CHAIN_ALLOW_LEGACY_PICKLE"),
        default: DefaultValue::Bool(false),
        help: "Resume from an unsigned (pre-1.0) snapshot: passes ALLOW_UNSAFE_LEGACY_PICKLE=true to the \
               resumed rdagent, which then unpickles it (only for logs you trust).",
        scope: Scope::Run,
    },
    Flag {
        long: "json",
        short: None,
        value: None,
        env: None,
        default: DefaultValue::Nothing,
        help: "Print JSON instead of text (fields in docs/usage.md).",
        scope: Scope::Json,
    },
    Flag {
        long: "verbose",
        short: Some('v'),
        value: None,
        env: Some("RUST_LOG"),
        default: DefaultValue::Nothing,
        help: "Log more to stderr (-vv for debug).",
        scope: Scope::All,
    },
    Flag {
        long: "quiet",
        short: Some('q'),
        value: None,
        env: None,
        default: DefaultValue::Nothing,
        help: "Log only errors.",
        scope: Scope::All,
    },
    Flag {
        long: "help",
        short: Some('h'),
        value: None,
        env: None,
        default: DefaultValue::Nothing,
        help: "Print this help.",
        scope: Scope::All,
    },
    Flag {
        long: "version",
        short: Some('V'),
        value: None,
        env: None,
        default: DefaultValue::Nothing,
        help: "Print the version.",
        scope: Scope::All,
    },
];

fn flag(long: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|f| f.long == long)
}

fn short_flag(c: char) -> Option<&'static Flag> {
    FLAGS.iter().find(|f| f.short == Some(c))
}

/// The subcommands besides the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sub {
    Run,
    Resolve,
    Inspect,
    List,
    Export,
    Resume,
    Report,
}

impl Sub {
    fn name(self) -> &'static str {
        match self {
            Sub::Run => "rd-chain",
            Sub::Resolve => "resolve",
            Sub::Inspect => "inspect",
            Sub::List => "list",
            Sub::Export => "export",
            Sub::Resume => "resume",
            Sub::Report => "report",
        }
    }

    fn accepts(self, scope: Scope) -> bool {
        if self == Sub::Run {
            return !matches!(scope, Scope::Report | Scope::Resolve);
        }
        matches!(
            (self, scope),
            (_, Scope::All)
                | (Sub::Resolve | Sub::Inspect, Scope::Pick | Scope::Json)
                | (Sub::List | Sub::Export | Sub::Resume, Scope::Json)
                | (Sub::Resolve | Sub::Inspect | Sub::Export, Scope::Kind)
                | (Sub::Inspect, Scope::Inspect)
                | (Sub::Resolve, Scope::Resolve)
                | (Sub::Export, Scope::Export | Scope::Pick)
                | (Sub::Resume, Scope::Chain)
                | (Sub::Report, Scope::Report | Scope::Chain)
        )
    }
}

/// Parse the arguments (without the program name) and the environment into an `Invocation`.
pub fn parse<I>(args: I, env: &BTreeMap<String, OsString>) -> Result<Invocation>
where
    I: IntoIterator<Item = OsString>,
{
    let mut given: Vec<(&'static Flag, Option<OsString>)> = Vec::new();
    let mut positionals: Vec<OsString> = Vec::new();
    let args: Vec<OsString> = args.into_iter().collect();
    let given_args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut args = args.into_iter();
    let mut verbose = 0u32;
    let mut quiet = false;
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else {
            // Not UTF-8: can only be a positional (a path).
            positionals.push(arg);
            continue;
        };
        if text == "--" {
            positionals.extend(args.by_ref());
            break;
        }
        if let Some(body) = text.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(OsString::from(v))),
                None => (body, None),
            };
            let f = flag(name).ok_or_else(|| unknown_flag(&format!("--{name}")))?;
            if f.long == "help" {
                return Ok(help_invocation(Command::Help));
            }
            if f.long == "version" {
                return Ok(help_invocation(Command::Version));
            }
            let value = match (f.value, inline) {
                (Some(_), Some(v)) => Some(v),
                (Some(_), None) => Some(
                    args.next()
                        .ok_or_else(|| Error::usage(format!("missing value for --{}", f.long)))?,
                ),
                (None, Some(_)) => {
                    return Err(Error::usage(format!("--{} takes no value", f.long)));
                }
                (None, None) => None,
            };
            match f.long {
                "verbose" => verbose += 1,
                "quiet" => quiet = true,
                _ => given.push((f, value)),
            }
        } else if text.len() > 1 && text.starts_with('-') && !is_number(text) {
            // One or more short switches: -vv, -n, -q; a short flag with a value ends the group: -o FILE,
            // -oFILE, -qo FILE.
            for (i, c) in text[1..].char_indices() {
                let f = short_flag(c).ok_or_else(|| unknown_flag(&format!("-{c}")))?;
                match f.long {
                    "help" => return Ok(help_invocation(Command::Help)),
                    "version" => return Ok(help_invocation(Command::Version)),
                    "verbose" => verbose += 1,
                    "quiet" => quiet = true,
                    _ if f.value.is_some() => {
                        let rest = &text[1 + i + c.len_utf8()..];
                        let value = if rest.is_empty() {
                            args.next().ok_or_else(|| {
                                Error::usage(format!("missing value for -{c} (--{})", f.long))
                            })?
                        } else {
                            OsString::from(rest)
                        };
                        given.push((f, Some(value)));
                        break;
                    }
                    _ => given.push((f, None)),
                }
            }
        } else {
            positionals.push(arg);
        }
    }

    let sub = match positionals.first().and_then(|p| p.to_str()) {
        Some("resolve") => Sub::Resolve,
        Some("inspect") => Sub::Inspect,
        Some("list") => Sub::List,
        Some("export") => Sub::Export,
        Some("resume") => Sub::Resume,
        Some("report") => Sub::Report,
        Some("help") => return Ok(help_invocation(Command::Help)),
        _ => Sub::Run,
    };
    if sub != Sub::Run {
        positionals.remove(0);
    }
    for (f, _) in &given {
        if !sub.accepts(f.scope) {
            return Err(Error::usage(format!(
                "--{} does not apply to `{}`",
                f.long,
                sub.name()
            )));
        }
    }

    let verbosity = if quiet {
        Verbosity::Quiet
    } else {
        match verbose {
            0 => Verbosity::Normal,
            1 => Verbosity::Verbose,
            _ => Verbosity::Debug,
        }
    };
    let mut warnings = Vec::new();
    let env = Env(env);
    let json = given.iter().any(|(f, _)| f.long == "json");
    let workspace_path_env = env.path("WORKSPACE_PATH");
    let kind = match last_value(&given, "kind") {
        Some(v) => Some(
            flag_text(v, "kind")?
                .parse::<Kind>()
                .map_err(|why| Error::usage(format!("invalid value for --kind: {why}")))?,
        ),
        None => None,
    };
    let factors = given.iter().any(|(f, _)| f.long == "factors");
    let verify = given.iter().any(|(f, _)| f.long == "verify");
    // What `resolve`, `inspect` and `export` ask of a log.
    let log_query = |path: PathBuf| -> Result<LogQuery> {
        Ok(LogQuery {
            path,
            pick: pick_setting(&given, &env)?,
            json,
            workspace_path_env: workspace_path_env.clone(),
            kind,
            factors,
            verify,
        })
    };

    let command = match sub {
        Sub::Run => {
            if let Some(p) = positionals.first() {
                return Err(Error::usage(format!(
                    "unexpected argument '{}': the chain takes flags only (subcommands: resolve, inspect, list, \
                     export, report)",
                    p.to_string_lossy()
                )));
            }
            let mut config = run_config(&given, &env, json, &mut warnings)?;
            config.invocation = ChainArgs {
                args: given_args.clone(),
                env: INVOCATION_ENV
                    .iter()
                    .filter_map(|n| {
                        env.0
                            .get(*n)
                            .filter(|v| !v.is_empty())
                            .map(|v| (n.to_string(), v.to_string_lossy().into_owned()))
                    })
                    .collect(),
            };
            Command::Run(Box::new(config))
        }
        Sub::Resume => {
            let log_root = log_root_setting(&given, &env)?;
            Command::Resume {
                run: one_positional(&positionals, sub, "RUN")?,
                log_root,
            }
        }
        Sub::Export => {
            let path = one_positional(&positionals, sub, "LOG")?.ok_or_else(|| {
                Error::usage(
                    "`rd-chain export` needs a LOG (a log dir such as log/2026-01-14_16-14-52-886218, its \
                     __session__ dir, or one snapshot file) and --to DIR",
                )
            })?;
            let to = last_value(&given, "to").map(PathBuf::from).ok_or_else(|| {
                Error::usage(
                    "`rd-chain export` needs --to DIR: a new or empty directory for the bundle",
                )
            })?;
            Command::Export {
                query: log_query(path)?,
                to,
                force: given.iter().any(|(f, _)| f.long == "force"),
            }
        }
        Sub::Resolve | Sub::Inspect => {
            let path = one_positional(&positionals, sub, "PATH")?
                .ok_or_else(|| {
                    Error::usage(format!(
                        "`rd-chain {}` needs a PATH: a log dir such as log/2026-01-14_16-14-52-886218, its \
                         __session__ dir, or one snapshot file",
                        sub.name()
                    ))
                })?;
            let query = log_query(path)?;
            if sub == Sub::Resolve {
                Command::Resolve(query)
            } else {
                Command::Inspect(query)
            }
        }
        Sub::Report => {
            let log_root = log_root_setting(&given, &env)?;
            Command::Report(ReportQuery {
                targets: positionals.iter().map(PathBuf::from).collect(),
                output: last_value(&given, "output").map(PathBuf::from),
                log_root,
                workspace_path_env,
            })
        }
        Sub::List => Command::List {
            root: one_positional(&positionals, sub, "LOG_ROOT")?
                .unwrap_or_else(|| PathBuf::from("log")),
            json,
            workspace_path_env,
        },
    };
    Ok(Invocation {
        command,
        verbosity,
        warnings,
    })
}

fn help_invocation(command: Command) -> Invocation {
    Invocation {
        command,
        verbosity: Verbosity::Normal,
        warnings: Vec::new(),
    }
}

fn unknown_flag(spelled: &str) -> Error {
    let hint = if spelled.contains('_') {
        format!(" (flags use dashes: {})", spelled.replace('_', "-"))
    } else {
        String::new()
    };
    Error::usage(format!("unknown flag {spelled}{hint}"))
}

fn is_number(text: &str) -> bool {
    text[1..].chars().all(|c| c.is_ascii_digit())
}

fn one_positional(positionals: &[OsString], sub: Sub, what: &str) -> Result<Option<PathBuf>> {
    match positionals {
        [] => Ok(None),
        [one] => Ok(Some(PathBuf::from(one))),
        [_, extra, ..] => Err(Error::usage(format!(
            "`rd-chain {}` takes one {what}; unexpected '{}'",
            sub.name(),
            extra.to_string_lossy()
        ))),
    }
}

/// The environment as a map, with the lookups rd-chain needs. Empty values count as unset. Paths stay as the
/// bytes they are (`OsString`); a value read as text that is not UTF-8 is a usage error naming the variable,
/// never silently dropped or replaced by a default.
struct Env<'a>(&'a BTreeMap<String, OsString>);

impl Env<'_> {
    fn text(&self, name: &str) -> Result<Option<&str>> {
        match self.0.get(name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v.to_str().map(Some).ok_or_else(|| not_utf8(name)),
        }
    }

    fn path(&self, name: &str) -> Option<PathBuf> {
        self.0
            .get(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }

    fn bool(&self, name: &'static str) -> Result<Option<bool>> {
        match self.text(name)? {
            None => Ok(None),
            Some(v) => parse_bool(v).map(Some).ok_or_else(|| {
                Error::usage(format!(
                    "environment variable {name}={v:?} is not a boolean: use true/false, 1/0, yes/no or on/off"
                ))
            }),
        }
    }
}

/// The error for a variable rd-chain reads as text whose value is not UTF-8.
pub fn not_utf8(name: &str) -> Error {
    Error::usage(format!(
        "environment variable {name} is not valid UTF-8: set it to text (or unset it)"
    ))
}

/// A path setting from its flag (kept as given, any bytes), else its environment variable; `None`: neither.
fn read_path(long: &'static str, given: &Given, env: &Env) -> Option<(PathBuf, Origin)> {
    let spec = flag(long).expect("flag in table");
    if let Some(v) = last_value(given, long) {
        return Some((PathBuf::from(v), Origin::Flag(spec.long)));
    }
    let name = spec.env?;
    env.path(name).map(|p| (p, Origin::Env(name)))
}

/// true/false/1/0/yes/no/on/off in any case.
pub fn parse_bool(text: &str) -> Option<bool> {
    if contract::is_true_word(text) {
        Some(true)
    } else if contract::is_false_word(text) {
        Some(false)
    } else {
        None
    }
}

/// The last value given for a flag (a later flag overrides an earlier one), as text.
fn last_value<'a>(
    given: &'a [(&'static Flag, Option<OsString>)],
    long: &str,
) -> Option<&'a OsString> {
    given
        .iter()
        .rev()
        .find(|(f, _)| f.long == long)
        .and_then(|(_, v)| v.as_ref())
}

fn flag_text(value: &OsString, long: &str) -> Result<String> {
    value
        .to_str()
        .map(str::to_string)
        .ok_or_else(|| Error::usage(format!("the value of --{long} is not valid UTF-8")))
}

/// A setting from flag, else environment variable, else default, converted by `conv`.
fn setting<T>(
    given: &[(&'static Flag, Option<OsString>)],
    env: &Env,
    long: &'static str,
    default: T,
    conv: impl Fn(&str) -> std::result::Result<T, String>,
) -> Result<Setting<T>> {
    let spec = flag(long).expect("flag in table");
    if let Some(v) = last_value(given, long) {
        let text = flag_text(v, long)?;
        let value = conv(&text)
            .map_err(|why| Error::usage(format!("invalid value {text:?} for --{long}: {why}")))?;
        return Ok(Setting {
            value,
            origin: Origin::Flag(spec.long),
        });
    }
    if let Some(name) = spec.env {
        if let Some(text) = env.text(name)? {
            let value = conv(text).map_err(|why| {
                Error::usage(format!(
                    "invalid value {text:?} in environment variable {name}: {why}"
                ))
            })?;
            return Ok(Setting {
                value,
                origin: Origin::Env(name),
            });
        }
    }
    Ok(Setting::default(default))
}

fn whole_number(text: &str) -> std::result::Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .map_err(|_| "expected a whole number (0 or more)".to_string())
}

/// The longest `--kill-after` accepted, in seconds (one day): a grace period is added to the current time, and
/// a bound keeps every such sum far inside what the clock can hold.
pub const MAX_KILL_AFTER: u64 = 86_400;

/// Whole seconds, or a duration with s, m, h (the one duration parser; a fraction of a second is dropped).
fn kill_after_seconds(text: &str) -> std::result::Result<u64, String> {
    let too_long = || {
        format!("at most {MAX_KILL_AFTER} seconds (one day): the grace period between SIGTERM and SIGKILL")
    };
    let t = text.trim();
    match parse_duration(t) {
        Ok(d) if d.as_secs() <= MAX_KILL_AFTER => Ok(d.as_secs()),
        Ok(_) => Err(too_long()),
        // A whole number too large for the parser is too long too.
        Err(_) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => Err(too_long()),
        Err(why) => Err(why),
    }
}

/// A phase's time limit: checked by the one duration parser, passed to rdagent `--all-duration` as written.
fn duration(text: &str) -> std::result::Result<Option<String>, String> {
    let t = text.trim();
    parse_duration(t)
        .map(|_| Some(t.to_string()))
        .map_err(|why| format!("{why} (passed to rdagent --all-duration, which also takes 1d)"))
}

fn parse_pick(text: &str) -> std::result::Result<Pick, String> {
    text.parse::<Pick>().map_err(|e| e.to_string())
}

fn pick_setting(given: &Given, env: &Env) -> Result<Setting<Pick>> {
    let mut pick = RunConfig::defaults().pick;
    read_into(&mut pick, "pick", given, env, parse_pick)?;
    Ok(pick)
}

/// Replace `target` by the flag's value, else the environment variable's, else keep it (the default).
/// --log-root, else its variable, else the default (for `resume` and `report`).
fn log_root_setting(given: &Given, env: &Env) -> Result<Setting<PathBuf>> {
    let mut log_root = RunConfig::defaults().log_root;
    read_into(&mut log_root, "log-root", given, env, |t| {
        Ok(PathBuf::from(t))
    })?;
    Ok(log_root)
}

fn read_into<T: Clone>(
    target: &mut Setting<T>,
    long: &'static str,
    given: &Given,
    env: &Env,
    conv: impl Fn(&str) -> std::result::Result<T, String>,
) -> Result<()> {
    *target = setting(given, env, long, target.value.clone(), conv)?;
    Ok(())
}

/// --alpha-factors / --no-alpha-factors: the last one given wins; else the variable; else the default.
fn read_alpha_factors(
    long: &'static str,
    given: &Given,
    env: &Env,
    c: &mut RunConfig,
) -> Result<()> {
    read_on_off(&mut c.alpha_factors, long, "no-alpha-factors", given, env)
}

/// `--X` / `--no-X`: the last one given wins; else the variable of `--X`; else the default.
fn read_on_off(
    target: &mut Setting<bool>,
    long: &'static str,
    no_long: &str,
    given: &Given,
    env: &Env,
) -> Result<()> {
    let flag = given
        .iter()
        .rev()
        .find(|(f, _)| f.long == long || f.long == no_long);
    if let Some((f, _)) = flag {
        *target = Setting {
            value: f.long == long,
            origin: Origin::Flag(f.long),
        };
    } else {
        read_bool_env(target, long, env)?;
    }
    Ok(())
}

/// A switch (given means true); else its variable; else the default.
fn read_switch(
    target: &mut Setting<bool>,
    long: &'static str,
    given: &Given,
    env: &Env,
) -> Result<()> {
    if let Some((f, _)) = given.iter().find(|(f, _)| f.long == long) {
        *target = Setting {
            value: true,
            origin: Origin::Flag(f.long),
        };
    } else {
        read_bool_env(target, long, env)?;
    }
    Ok(())
}

/// --report / --no-report: the last one given wins; else the variable; else the default.
fn read_report(long: &'static str, given: &Given, env: &Env, c: &mut RunConfig) -> Result<()> {
    read_on_off(&mut c.report, long, "no-report", given, env)
}

/// The variables rd-chain reads for the chain (besides the key and the path), kept in the run record.
pub const INVOCATION_ENV: &[&str] = &[
    "RD_CHAIN_FACTOR_LOOPS",
    "RD_CHAIN_MODEL_LOOPS",
    "RD_CHAIN_FACTOR_DURATION",
    "RD_CHAIN_MODEL_DURATION",
    "LOAD_SOTA_FROM_LOG",
    "SOTA_LOG_PATH",
    "LOAD_SOTA_FROM_WORKSPACE",
    "SOTA_WORKSPACE_PATH",
    "RD_CHAIN_PICK",
    "RDAGENT_BIN",
    "RD_CHAIN_LOG_ROOT",
    "USE_ALPHA_FACTORS",
    "RD_CHAIN_HOOK",
    "RD_CHAIN_KILL_AFTER",
    "RD_CHAIN_RUN_ID",
    "RD_CHAIN_RETRIES",
    "RD_CHAIN_RETRY_WAIT",
    "RD_CHAIN_STALL_AFTER",
    "RD_CHAIN_ON_STALL",
    "RD_CHAIN_ACCEPT_PARTIAL",
    "RD_CHAIN_ALLOW_LEGACY_PICKLE",
    "LOG_TRACE_PATH",
    "WORKSPACE_PATH",
];

/// A run id: 1 to 100 of `A-Z a-z 0-9 . _ -`, not starting with `.` or `-` (it names files under the log root).
pub fn run_id(text: &str) -> std::result::Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 100
        && !text.starts_with(['.', '-'])
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(text.to_string())
    } else {
        Err("a run id is 1 to 100 letters, digits, '.', '_' or '-', not starting with '.' or '-' (e.g. \
             slurm-4242_7)"
            .to_string())
    }
}

/// A duration: whole or decimal seconds (`0`, `90`, `1.5`), or with a unit `s`, `m`, `h` (`90s`, `15m`, `3h`;
/// `d` for days, as rdagent's `--all-duration` also takes it). The one parser of every duration flag.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let (number, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c),
        _ => (t, 's'),
    };
    let scale = match unit {
        's' => 1.0,
        'm' => 60.0,
        'h' => 3600.0,
        'd' => 86_400.0,
        _ => -1.0,
    };
    let digits_ok = !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && number.bytes().filter(|b| *b == b'.').count() <= 1
        && !number.starts_with('.')
        && !number.ends_with('.');
    match number.parse::<f64>() {
        Ok(n) if digits_ok && scale > 0.0 && (n * scale) < 1e12 => {
            Ok(Duration::from_secs_f64(n * scale))
        }
        _ => Err(format!(
            "expected a duration: seconds (90) or a number with s, m or h (90s, 15m, 3h); got {text:?}"
        )),
    }
}

/// A duration as the flags take it: the largest of h, m, s that divides it (`3h`, `90m`, `45s`).
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_millis() != 0 {
        format!("{:.3}s", d.as_secs_f64())
    } else if s != 0 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s != 0 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// A boolean from the flag's environment variable, if set.
fn read_bool_env(target: &mut Setting<bool>, long: &str, env: &Env) -> Result<()> {
    if let Some(name) = flag(long).and_then(|f| f.env) {
        if let Some(b) = env.bool(name)? {
            *target = Setting {
                value: b,
                origin: Origin::Env(name),
            };
        }
    }
    Ok(())
}

fn run_config(
    given: &[(&'static Flag, Option<OsString>)],
    env: &Env,
    json: bool,
    warnings: &mut Vec<String>,
) -> Result<RunConfig> {
    let mut config = RunConfig::defaults();
    for entry in SETTINGS {
        (entry.read)(entry.flag, given, env, &mut config)?;
    }
    let factor_loops = &config.factor_loops;

    let sota = sota_choice(given, env, warnings)?;
    if sota.source != SotaSource::FactorPhase {
        if factor_loops.origin == Origin::Flag("factor-loops") && factor_loops.value > 0 {
            return Err(Error::usage(format!(
                "--factor-loops {} conflicts with the SOTA source ({}): with a SOTA source the factor phase \
                 is skipped; drop --factor-loops, or drop the SOTA source to run the factor phase",
                factor_loops.value, sota.origin
            )));
        }
    } else if factor_loops.value == 0 {
        return Err(Error::usage(format!(
            "factor loops is 0 ({}) and no SOTA source is given: pass --sota-log PATH or --sota-workspace PATH \
             (or LOAD_SOTA_FROM_LOG=true with SOTA_LOG_PATH), or run at least one factor loop",
            factor_loops.origin
        )));
    }

    config.sota = sota;
    config.json = json;
    config.log_trace_path = env.path("LOG_TRACE_PATH");
    config.workspace_path_env = env.path("WORKSPACE_PATH");
    Ok(config)
}

/// The SOTA source by the priority of run_factor_then_model_with_log.sh and its model_runner.py patch: a flag; else LOAD_SOTA_FROM_LOG=true + SOTA_LOG_PATH; else
/// LOAD_SOTA_FROM_WORKSPACE=true + SOTA_WORKSPACE_PATH; else the factor phase's own log.
fn sota_choice(
    given: &[(&'static Flag, Option<OsString>)],
    env: &Env,
    warnings: &mut Vec<String>,
) -> Result<SotaChoice> {
    let log_flag = last_value(given, "sota-log").map(PathBuf::from);
    let ws_flag = last_value(given, "sota-workspace").map(PathBuf::from);
    if log_flag.is_some() && ws_flag.is_some() {
        return Err(Error::usage(
            "--sota-log and --sota-workspace both given: choose one SOTA source",
        ));
    }

    // The environment's candidates, each either usable or ignored with a reason.
    let from_log = env.bool("LOAD_SOTA_FROM_LOG")?;
    let log_path = env.path("SOTA_LOG_PATH");
    let from_ws = env.bool("LOAD_SOTA_FROM_WORKSPACE")?;
    let ws_path = env.path("SOTA_WORKSPACE_PATH");

    let mut others = Vec::new();
    let env_log = env_candidate(
        ("LOAD_SOTA_FROM_LOG", from_log),
        ("SOTA_LOG_PATH", &log_path),
        (
            "--sota-log",
            "the factor log dir (e.g. ./log/2026-01-14_16-14-52-886218)",
        ),
        &mut others,
        warnings,
    )?;
    let env_ws = env_candidate(
        ("LOAD_SOTA_FROM_WORKSPACE", from_ws),
        ("SOTA_WORKSPACE_PATH", &ws_path),
        ("--sota-workspace", "the factor workspace dir"),
        &mut others,
        warnings,
    )?;

    let (source, origin) = if let Some(p) = log_flag {
        (SotaSource::Log(p), Origin::Flag("sota-log"))
    } else if let Some(p) = ws_flag {
        (SotaSource::Workspace(p), Origin::Flag("sota-workspace"))
    } else if let Some(p) = env_log.clone() {
        (SotaSource::Log(p), Origin::Env("LOAD_SOTA_FROM_LOG"))
    } else if let Some(p) = env_ws.clone() {
        (
            SotaSource::Workspace(p),
            Origin::Env("LOAD_SOTA_FROM_WORKSPACE"),
        )
    } else {
        (SotaSource::FactorPhase, Origin::Default)
    };

    // Say why each usable candidate lost to the winner.
    if let Some(p) = env_log {
        if origin != Origin::Env("LOAD_SOTA_FROM_LOG") {
            others.push(format!(
                "env LOAD_SOTA_FROM_LOG=true + SOTA_LOG_PATH={}: lost to {origin} (flags win over the environment)",
                p.display()
            ));
        }
    }
    if let Some(p) = env_ws {
        if origin != Origin::Env("LOAD_SOTA_FROM_WORKSPACE") {
            let why = if origin == Origin::Env("LOAD_SOTA_FROM_LOG") {
                "the log source has priority over the workspace source"
            } else {
                "flags win over the environment"
            };
            others.push(format!(
                "env LOAD_SOTA_FROM_WORKSPACE=true + SOTA_WORKSPACE_PATH={}: lost to {origin} ({why})",
                p.display()
            ));
        }
    }
    if source != SotaSource::FactorPhase {
        others.push("the factor phase's own log: not used, a SOTA source was given".to_string());
    }
    Ok(SotaChoice {
        source,
        origin,
        others,
    })
}

/// One environment SOTA source: a `LOAD_*` switch and its path variable. Usable only with the switch true and
/// the path set; the switch without the path is a usage error; a path without the switch is ignored with a
/// warning saying how to enable it. Every ignored path is also explained in `others`.
fn env_candidate(
    (switch, on): (&str, Option<bool>),
    (var, path): (&str, &Option<PathBuf>),
    (flag, what): (&str, &str),
    others: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Result<Option<PathBuf>> {
    match (on, path) {
        (Some(true), Some(p)) => Ok(Some(p.clone())),
        (Some(true), None) => Err(Error::usage(format!(
            "{switch}=true but {var} is not set: set {var} to {what}, or unset {switch}"
        ))),
        (Some(false), Some(p)) => {
            others.push(format!(
                "env {var}={}: not used because {switch} is false",
                p.display()
            ));
            Ok(None)
        }
        (None, Some(p)) => {
            warnings.push(format!(
                "{var}={} is ignored because {switch} is not set: set {switch}=true to use it (or pass {flag})",
                p.display()
            ));
            others.push(format!(
                "env {var}={}: ignored, {switch} is not set",
                p.display()
            ));
            Ok(None)
        }
        (_, None) => Ok(None),
    }
}

/// Width of a flag's help text in `--help` (after the 33-column flag names: about 100 columns in all).
const HELP_WIDTH: usize = 68;

/// Split `text` into lines of at most `width` characters at spaces (a longer word stands alone).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The `--help` text, generated from `FLAGS`.
pub fn help_text() -> String {
    let mut out = String::new();
    out.push_str(concat!(
        "rd-chain ",
        env!("CARGO_PKG_VERSION"),
        ": run RD-Agent's factor loop, then its model loop on the state-of-the-art (SOTA) factors\n\n"
    ));
    out.push_str(
        "USAGE:
    rd-chain [FLAGS]                 run `rdagent fin_factor`, resolve the SOTA factor workspace from that
                                     run's own log, check its combined_factors_df.parquet, run
                                     `rdagent fin_model` with the factors handed over
    rd-chain resolve PATH [--kind factor|model] [--pick P] [--json] [--verify]
                                     print the SOTA factor (or model) workspace of a log (PATH: a log dir,
                                     its __session__ dir, or one snapshot file), alone on stdout
    rd-chain inspect PATH [--kind factor|model] [--factors] [--pick P] [--json]
                                     the history as a table, SOTA marked; a model or quant log adds the
                                     model table; both answers; --factors: the SOTA factor set in detail
    rd-chain list [LOG_ROOT] [--json]
                                     one line per run dir under LOG_ROOT (default ./log), newest first,
                                     with each run's kind and its SOTA of that kind (a run's continuations
                                     are shown with it)
    rd-chain export LOG --to DIR [--kind factor|model] [--force]
                                     write the answers' bundle (parquet, factors/<name>.py, factors.json,
                                     model.py, model.json, manifest.json with SHA-256s) to a new DIR
    rd-chain resume [RUN] [--log-root DIR]
                                     continue an interrupted or failed chain where it stopped (RUN: a run
                                     id or a run record's path; default the newest unfinished run)
    rd-chain report [RUN|LOG ...] [-o FILE] [--log-root DIR]
                                     one self-contained HTML page (charts per loop, hypotheses, answers,
                                     SOTA factors) of a chain run (RUN: a run id under <log root>/rd-chain/
                                     or its record .json; none: the newest) or of run dirs (LOG); several
                                     make a comparison page; prints the page's path

FLAGS (flag > environment variable > default):
",
    );
    for f in FLAGS {
        let mut name = String::new();
        if let Some(c) = f.short {
            name.push_str(&format!("-{c}, "));
        }
        name.push_str("--");
        name.push_str(f.long);
        if let Some(v) = f.value {
            name.push(' ');
            name.push_str(v);
        }
        let mut lines = wrap(f.help, HELP_WIDTH);
        let mut extra = Vec::new();
        if let Some(e) = f.env {
            extra.push(format!("env {e}"));
        }
        if let Some(default) = f.default.help() {
            extra.push(format!("default {default}"));
        }
        if !extra.is_empty() {
            lines.push(format!("[{}]", extra.join("; ")));
        }
        for (i, line) in lines.iter().enumerate() {
            let label = if i == 0 { name.as_str() } else { "" };
            out.push_str(&format!("    {label:<28} {line}\n"));
        }
    }
    out.push_str(
        "
SOTA SOURCE (first that applies wins):
    1. --sota-log PATH or --sota-workspace PATH
    2. LOAD_SOTA_FROM_LOG=true with SOTA_LOG_PATH
    3. LOAD_SOTA_FROM_WORKSPACE=true with SOTA_WORKSPACE_PATH
    4. the log of the factor phase rd-chain runs first
    With a SOTA source the factor phase is skipped. A *_PATH variable without its LOAD_* switch is ignored
    with a warning. Booleans: true/false, 1/0, yes/no, on/off (any case).

WHAT THE MODEL PHASE GETS:
    LOAD_SOTA_FROM_WORKSPACE=true, SOTA_WORKSPACE_PATH, SOTA_FACTORS_PATH, SOTA_LOG_PATH,
    LOAD_SOTA_FROM_LOG=false, USE_ALPHA_FACTORS, a fresh LOG_TRACE_PATH, and (hook on) PYTHONPATH
    starting with rd-chain's sitecustomize hook, which makes unmodified RD-Agent train on the SOTA factors,
    and RD_CHAIN_HOOK_REPORT, where the hook notes each hand-over (the summary warns if there was none).

RESUMING (resume, the same --run-id again, --retries, --on-stall restart):
    The phase that stopped continues on a copy of its log dir, <log dir>.resume-K, from its most complete
    readable snapshot, with rdagent --path <that snapshot> --loop-n <the phase's total>; the original log
    is never changed. The snapshot's signature is checked first with the key rdagent will use
    (ARTIFACT_SIGNING_KEY or ARTIFACT_SIGNING_KEY_PATH / ~/.rdagent/artifact_signing.key).

SIGNATURES:
    With RD-Agent's signing key at hand (ARTIFACT_SIGNING_KEY, else the file ARTIFACT_SIGNING_KEY_PATH,
    default ~/.rdagent/artifact_signing.key), inspect, export, report, the SOTA resolution of a run and a
    resume check the HMAC of each snapshot they read and say verified, mismatch (a warning; nothing in a
    snapshot is ever run) or not checked (no key); the hash runs beside the decoding. resolve checks only
    with --verify (then anything but verified fails with exit 3, and no key is exit 2): it only reads a path
    out of the snapshot, and a resume checks again before rdagent unpickles anything. list checks none.

EXIT CODES:
",
    );
    out.push_str(&crate::exit::help_section());
    out.push_str(
        "
EXAMPLES:
    rd-chain --factor-loops 10 --model-loops 10
    rd-chain --dry-run --json
    rd-chain --sota-log log/2026-01-14_16-14-52-886218 --model-loops 5
    LOAD_SOTA_FROM_LOG=true SOTA_LOG_PATH=./log/2026-01-14_16-14-52-886218 rd-chain
    rd-chain inspect log/2026-01-14_16-14-52-886218 --factors
    rd-chain resolve --kind model log/2026-01-15_09-00-00-000000
    rd-chain export log/2026-01-14_16-14-52-886218 --to bundle
    rd-chain report 2026-01-14_16-14-52-886218
    rd-chain report log/2026-01-14_16-14-52-886218 log/2026-01-21_09-30-00-000000 -o compare.html
    export SOTA_WORKSPACE_PATH=$(rd-chain resolve log/2026-01-14_16-14-52-886218)

Documentation: docs/usage.md (every flag, variable and JSON field), docs/migrating.md (from
run_factor_then_model_with_log.sh and its model_runner.py patch).
",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, OsString> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect()
    }

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn run(list: &[&str], pairs: &[(&str, &str)]) -> Result<RunConfig> {
        match parse(args(list), &env(pairs))?.command {
            Command::Run(c) => Ok(*c),
            other => panic!("expected the chain, got {other:?}"),
        }
    }

    fn run_env(list: &[&str], e: &BTreeMap<String, OsString>) -> Result<RunConfig> {
        match parse(args(list), e)?.command {
            Command::Run(c) => Ok(*c),
            other => panic!("expected the chain, got {other:?}"),
        }
    }

    fn usage_msg(r: Result<impl fmt::Debug>) -> String {
        match r {
            Err(e @ Error::Usage(_)) => e.to_string(),
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_env_and_flags_in_precedence_order() {
        let c = run(&[], &[]).unwrap();
        assert_eq!(c.factor_loops, Setting::default(10));
        assert_eq!(c.model_loops.value, 10);
        assert_eq!(c.log_root.value, PathBuf::from("log"));
        assert!(c.alpha_factors.value);
        assert_eq!(c.pick.value, Pick::Sota);
        assert_eq!(c.hook.value, HookMode::Auto);
        assert_eq!(c.kill_after.value, 10);
        assert!(!c.dry_run.value);

        let e = [
            ("RD_CHAIN_FACTOR_LOOPS", "3"),
            ("RD_CHAIN_MODEL_LOOPS", "4"),
        ];
        let c = run(&[], &e).unwrap();
        assert_eq!(c.factor_loops.value, 3);
        assert_eq!(c.factor_loops.origin, Origin::Env("RD_CHAIN_FACTOR_LOOPS"));
        let c = run(&["--factor-loops", "7", "--model-loops=8"], &e).unwrap();
        assert_eq!(c.factor_loops.value, 7);
        assert_eq!(c.factor_loops.origin, Origin::Flag("factor-loops"));
        assert_eq!(c.model_loops.value, 8);
        // The last occurrence of a flag wins.
        let c = run(&["--model-loops", "1", "--model-loops", "2"], &[]).unwrap();
        assert_eq!(c.model_loops.value, 2);
    }

    #[test]
    fn errors_name_the_flag_or_variable() {
        assert!(usage_msg(run(&["--model-loops"], &[])).contains("missing value for --model-loops"));
        assert!(usage_msg(run(&["--model-loops", "x"], &[])).contains("--model-loops"));
        assert!(
            usage_msg(run(&[], &[("RD_CHAIN_MODEL_LOOPS", "-1")])).contains("RD_CHAIN_MODEL_LOOPS")
        );
        assert!(usage_msg(run(&["--loop_n", "3"], &[])).contains("--loop-n"));
        assert!(usage_msg(run(&["--bogus"], &[])).contains("unknown flag --bogus"));
        assert!(usage_msg(run(&["--dry-run=yes"], &[])).contains("takes no value"));
        assert!(usage_msg(run(&["extra"], &[])).contains("unexpected argument 'extra'"));
        let m = usage_msg(run(&[], &[("USE_ALPHA_FACTORS", "maybe")]));
        assert!(
            m.contains("USE_ALPHA_FACTORS") && m.contains("maybe"),
            "{m}"
        );
        assert!(usage_msg(run(&["--factor-duration", "soon"], &[])).contains("--factor-duration"));
        assert!(usage_msg(parse(args(&["list", "--pick", "sota"]), &env(&[]))).contains("--pick"));
        assert!(usage_msg(parse(args(&["resolve"]), &env(&[]))).contains("needs a PATH"));
    }

    #[test]
    fn kill_after_is_bounded_at_parse_time() {
        assert_eq!(
            run(&["--kill-after", "86400"], &[])
                .unwrap()
                .kill_after
                .value,
            MAX_KILL_AFTER
        );
        assert_eq!(
            run(&["--kill-after", "2m"], &[]).unwrap().kill_after.value,
            120
        );
        assert_eq!(
            run(&["--kill-after", "0"], &[]).unwrap().kill_after.value,
            0
        );
        assert!(usage_msg(run(&["--kill-after", "25h"], &[])).contains("86400"));
        assert!(usage_msg(run(&["--kill-after", "soon"], &[])).contains("--kill-after"));
        for huge in ["86401", "9223372036854775808", "18446744073709551615"] {
            let m = usage_msg(run(&["--kill-after", huge], &[]));
            assert!(m.contains("--kill-after") && m.contains("86400"), "{m}");
            let m = usage_msg(run(&[], &[("RD_CHAIN_KILL_AFTER", huge)]));
            assert!(m.contains("RD_CHAIN_KILL_AFTER"), "{m}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn path_variables_keep_their_bytes_and_text_variables_that_are_not_utf8_are_refused() {
        use std::os::unix::ffi::OsStringExt;
        let odd = OsString::from_vec(b"/data/r\xe9sultats".to_vec());
        let mut e = env(&[]);
        for name in [
            "RD_CHAIN_LOG_ROOT",
            "RDAGENT_BIN",
            "LOG_TRACE_PATH",
            "WORKSPACE_PATH",
        ] {
            e.insert(name.to_string(), odd.clone());
        }
        let c = run_env(&[], &e).unwrap();
        assert_eq!(c.log_root.value.as_os_str(), odd);
        assert_eq!(c.log_root.origin, Origin::Env("RD_CHAIN_LOG_ROOT"));
        assert_eq!(
            c.rdagent.value.as_deref().map(|p| p.as_os_str()),
            Some(odd.as_os_str())
        );
        assert_eq!(
            c.log_trace_path.as_deref().map(|p| p.as_os_str()),
            Some(odd.as_os_str())
        );
        assert_eq!(
            c.workspace_path_env.as_deref().map(|p| p.as_os_str()),
            Some(odd.as_os_str())
        );
        // Flags too.
        let c = match parse(vec![OsString::from("--log-root"), odd.clone()], &env(&[]))
            .unwrap()
            .command
        {
            Command::Run(c) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(c.log_root.value.as_os_str(), odd);
        let mut e = env(&[("LOAD_SOTA_FROM_LOG", "true")]);
        e.insert("SOTA_LOG_PATH".to_string(), odd.clone());
        assert_eq!(
            run_env(&[], &e).unwrap().sota.source,
            SotaSource::Log(odd.clone().into())
        );
        for name in ["RD_CHAIN_MODEL_LOOPS", "USE_ALPHA_FACTORS", "RD_CHAIN_HOOK"] {
            let mut e = env(&[]);
            e.insert(name.to_string(), odd.clone());
            let m = usage_msg(run_env(&[], &e));
            assert!(m.contains(name) && m.contains("UTF-8"), "{m}");
        }
    }

    #[test]
    fn booleans_accept_every_documented_spelling() {
        for (t, b) in [
            ("true", true),
            ("TRUE", true),
            ("1", true),
            ("Yes", true),
            ("on", true),
            ("false", false),
            ("0", false),
            ("NO", false),
            ("Off", false),
        ] {
            assert_eq!(parse_bool(t), Some(b), "{t}");
            let c = run(&[], &[("USE_ALPHA_FACTORS", t)]).unwrap();
            assert_eq!(c.alpha_factors.value, b);
        }
        assert_eq!(parse_bool("2"), None);
        let c = run(&["--no-alpha-factors"], &[("USE_ALPHA_FACTORS", "true")]).unwrap();
        assert!(!c.alpha_factors.value);
        assert_eq!(c.alpha_factors.origin, Origin::Flag("no-alpha-factors"));
        let c = run(&["--no-alpha-factors", "--alpha-factors"], &[]).unwrap();
        assert!(c.alpha_factors.value);
    }

    /// Every combination of the four variables of run_factor_then_model_with_log.sh, with and without flags.
    #[test]
    fn sota_priority_matrix() {
        let log = ("SOTA_LOG_PATH", "/l");
        let ws = ("SOTA_WORKSPACE_PATH", "/w");
        for from_log in [None, Some("true"), Some("false")] {
            for log_path in [false, true] {
                for from_ws in [None, Some("true"), Some("false")] {
                    for ws_path in [false, true] {
                        for flag in [None, Some("--sota-log"), Some("--sota-workspace")] {
                            let mut e = Vec::new();
                            if let Some(v) = from_log {
                                e.push(("LOAD_SOTA_FROM_LOG", v));
                            }
                            if log_path {
                                e.push(log);
                            }
                            if let Some(v) = from_ws {
                                e.push(("LOAD_SOTA_FROM_WORKSPACE", v));
                            }
                            if ws_path {
                                e.push(ws);
                            }
                            let mut a = vec![];
                            if let Some(f) = flag {
                                a.extend([f, "/flag"]);
                            }
                            let got = run(&a, &e);
                            let case = format!("{e:?} {a:?}");
                            let log_missing = from_log == Some("true") && !log_path;
                            let ws_missing = from_ws == Some("true") && !ws_path;
                            if log_missing || ws_missing {
                                let m = usage_msg(got);
                                let var = if log_missing {
                                    "SOTA_LOG_PATH"
                                } else {
                                    "SOTA_WORKSPACE_PATH"
                                };
                                assert!(m.contains(var), "{case}: {m}");
                                continue;
                            }
                            let c = got.unwrap_or_else(|e| panic!("{case}: {e}"));
                            let want = match flag {
                                Some("--sota-log") => SotaSource::Log("/flag".into()),
                                Some(_) => SotaSource::Workspace("/flag".into()),
                                None if from_log == Some("true") => SotaSource::Log("/l".into()),
                                None if from_ws == Some("true") => {
                                    SotaSource::Workspace("/w".into())
                                }
                                None => SotaSource::FactorPhase,
                            };
                            assert_eq!(c.sota.source, want, "{case}");
                            // Every set path that did not win is explained.
                            if log_path
                                && !matches!(&want, SotaSource::Log(p) if p == Path::new("/l"))
                            {
                                assert!(
                                    c.sota.others.iter().any(|o| o.contains("SOTA_LOG_PATH=/l")),
                                    "{case}: {:?}",
                                    c.sota.others
                                );
                            }
                            if ws_path
                                && !matches!(&want, SotaSource::Workspace(p) if p == Path::new("/w"))
                            {
                                assert!(
                                    c.sota
                                        .others
                                        .iter()
                                        .any(|o| o.contains("SOTA_WORKSPACE_PATH=/w")),
                                    "{case}: {:?}",
                                    c.sota.others
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    use std::path::Path;

    #[test]
    fn path_without_switch_warns_how_to_enable_it() {
        let inv = parse(args(&[]), &env(&[("SOTA_LOG_PATH", "/l")])).unwrap();
        assert_eq!(inv.warnings.len(), 1);
        assert!(
            inv.warnings[0].contains("LOAD_SOTA_FROM_LOG=true"),
            "{:?}",
            inv.warnings
        );
    }

    #[test]
    fn sota_source_and_factor_loops() {
        let m = usage_msg(run(&["--sota-log", "/l", "--factor-loops", "3"], &[]));
        assert!(m.contains("--factor-loops 3 conflicts"), "{m}");
        // From the environment the factor loops are simply not used.
        let c = run(&["--sota-log", "/l"], &[("RD_CHAIN_FACTOR_LOOPS", "3")]).unwrap();
        assert_eq!(c.sota.source, SotaSource::Log("/l".into()));
        // --factor-loops 0 with a source is fine; without one it is an error.
        assert!(run(&["--sota-workspace", "/w", "--factor-loops", "0"], &[]).is_ok());
        let m = usage_msg(run(&["--factor-loops", "0"], &[]));
        assert!(m.contains("no SOTA source"), "{m}");
        let m = usage_msg(run(&["--sota-log", "/a", "--sota-workspace", "/b"], &[]));
        assert!(m.contains("choose one"), "{m}");
    }

    #[test]
    fn help_and_version_win_before_the_environment_is_read() {
        let bad = env(&[("USE_ALPHA_FACTORS", "maybe")]);
        assert_eq!(
            parse(args(&["--help"]), &bad).unwrap().command,
            Command::Help
        );
        assert_eq!(
            parse(args(&["-h", "--bogus"]), &bad).unwrap().command,
            Command::Help
        );
        assert_eq!(
            parse(args(&["-V"]), &bad).unwrap().command,
            Command::Version
        );
        assert_eq!(parse(args(&["help"]), &bad).unwrap().command, Command::Help);
    }

    #[test]
    fn subcommands_take_their_flags() {
        let inv = parse(
            args(&["resolve", "log/x", "--pick", "loop:3", "--json"]),
            &env(&[("WORKSPACE_PATH", "/ws")]),
        )
        .unwrap();
        assert_eq!(
            inv.command,
            Command::Resolve(LogQuery {
                path: "log/x".into(),
                pick: Setting {
                    value: Pick::Loop(3),
                    origin: Origin::Flag("pick")
                },
                json: true,
                workspace_path_env: Some("/ws".into()),
                kind: None,
                factors: false,
                verify: false,
            })
        );
        let inv = parse(args(&["resolve", "log/x", "--verify"]), &env(&[])).unwrap();
        assert!(matches!(
            inv.command,
            Command::Resolve(LogQuery { verify: true, .. })
        ));
        for other in ["inspect", "export", "list"] {
            let e = parse(args(&[other, "log/x", "--verify"]), &env(&[])).unwrap_err();
            assert!(
                e.to_string().contains("--verify does not apply"),
                "{other}: {e}"
            );
        }
        let e = parse(args(&["--verify"]), &env(&[])).unwrap_err();
        assert!(e.to_string().contains("--verify does not apply"), "{e}");
        let inv = parse(args(&["resolve", "--kind", "model", "log/x"]), &env(&[])).unwrap();
        assert!(matches!(
            inv.command,
            Command::Resolve(LogQuery {
                kind: Some(Kind::Model),
                ..
            })
        ));
        let inv = parse(args(&["inspect", "log/x", "--factors"]), &env(&[])).unwrap();
        assert!(matches!(
            inv.command,
            Command::Inspect(LogQuery {
                kind: None,
                factors: true,
                ..
            })
        ));
        let inv = parse(
            args(&["export", "log/x", "--to", "out", "--kind=factor", "--force"]),
            &env(&[]),
        )
        .unwrap();
        match inv.command {
            Command::Export { query, to, force } => {
                assert_eq!(query.path, PathBuf::from("log/x"));
                assert_eq!(query.kind, Some(Kind::Factor));
                assert_eq!(to, PathBuf::from("out"));
                assert!(force);
            }
            other => panic!("expected export, got {other:?}"),
        }
        assert!(usage_msg(parse(args(&["export", "log/x"]), &env(&[]))).contains("--to DIR"));
        assert!(usage_msg(parse(args(&["export", "--to", "d"]), &env(&[]))).contains("needs a LOG"));
        assert!(
            usage_msg(parse(args(&["resolve", "x", "--kind", "quant"]), &env(&[])))
                .contains("factor or model")
        );
        assert!(
            usage_msg(parse(args(&["resolve", "x", "--factors"]), &env(&[])))
                .contains("--factors does not apply")
        );
        assert!(
            usage_msg(parse(args(&["list", "--kind", "model"]), &env(&[])))
                .contains("--kind does not apply")
        );
        assert!(
            usage_msg(parse(args(&["inspect", "x", "--force"]), &env(&[])))
                .contains("--force does not apply")
        );
        let c = run(&["--export", "bundle"], &[]).unwrap();
        assert_eq!(c.export.value, Some(PathBuf::from("bundle")));
        let c = run(&[], &[("RD_CHAIN_EXPORT", "b2")]).unwrap();
        assert_eq!(c.export.origin, Origin::Env("RD_CHAIN_EXPORT"));
        let inv = parse(args(&["list"]), &env(&[])).unwrap();
        assert_eq!(
            inv.command,
            Command::List {
                root: "log".into(),
                json: false,
                workspace_path_env: None,
            }
        );
        let inv = parse(
            args(&["-vv", "inspect", "--", "-odd name"]),
            &env(&[("RD_CHAIN_PICK", "latest")]),
        )
        .unwrap();
        assert_eq!(inv.verbosity, Verbosity::Debug);
        match inv.command {
            Command::Inspect(LogQuery { path, pick, .. }) => {
                assert_eq!(path, PathBuf::from("-odd name"));
                assert_eq!(pick.value, Pick::Latest);
                assert_eq!(pick.origin, Origin::Env("RD_CHAIN_PICK"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            usage_msg(parse(args(&["resolve", "a", "b"]), &env(&[]))).contains("unexpected 'b'")
        );
    }

    #[test]
    fn one_duration_parser_for_every_duration_flag() {
        let s = Duration::from_secs;
        for (text, want) in [
            ("0", s(0)),
            ("90", s(90)),
            ("90s", s(90)),
            ("15m", s(900)),
            ("3h", s(10800)),
            ("1d", s(86400)),
            (" 2h ", s(7200)),
            ("1.5h", s(5400)),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in ["", "h", "-1", "1x", "1.5.2h", ".5h", "5.h", "1e3", "3 h h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        let c = run(&["--retry-wait", "2m", "--stall-after", "45"], &[]).unwrap();
        assert_eq!((c.retry_wait.value, c.stall_after.value), (s(120), s(45)));
        assert_eq!(c.stall_after.origin, Origin::Flag("stall-after"));
        let c = run(&[], &[("RD_CHAIN_STALL_AFTER", "10m")]).unwrap();
        assert_eq!(c.stall_after.value, s(600));
        assert_eq!(run(&[], &[]).unwrap().stall_after.value, s(3 * 3600));
        assert!(usage_msg(run(&["--retry-wait", "soon"], &[])).contains("--retry-wait"));
        assert!(usage_msg(run(&["--factor-duration", "6x"], &[])).contains("--factor-duration"));
        assert_eq!(
            run(&["--factor-duration", "6h"], &[])
                .unwrap()
                .factor_duration
                .value
                .as_deref(),
            Some("6h")
        );
        assert_eq!(format_duration(s(3 * 3600)), "3h");
        assert_eq!(format_duration(s(90)), "90s");
        assert_eq!(format_duration(s(120)), "2m");
    }

    #[test]
    fn run_ids_are_validated_and_kept_in_the_invocation() {
        for good in ["2026-01-14_16-14-52-886218", "slurm-4242_7", "a", "job.v2"] {
            assert_eq!(run_id(good).as_deref(), Ok(good));
        }
        let long = "x".repeat(101);
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "a b",
            "é",
            long.as_str(),
            "..",
            "a\\b",
        ] {
            assert!(run_id(bad).is_err(), "{bad:?}");
        }
        let c = run(
            &["--run-id", "job-1"],
            &[("RD_CHAIN_RETRIES", "2"), ("OTHER", "x")],
        )
        .unwrap();
        assert_eq!(c.run_id.value.as_deref(), Some("job-1"));
        assert_eq!(c.retries.value, 2);
        assert_eq!(c.invocation.args, ["--run-id", "job-1"]);
        assert_eq!(
            c.invocation.env,
            [("RD_CHAIN_RETRIES".to_string(), "2".to_string())]
        );
        let msg = usage_msg(run(&[], &[("RD_CHAIN_RUN_ID", "a/b")]));
        assert!(msg.contains("RD_CHAIN_RUN_ID"), "{msg}");
        match parse(args(&["resume", "job-1", "--log-root", "x"]), &env(&[]))
            .unwrap()
            .command
        {
            Command::Resume { run, log_root } => {
                assert_eq!(run, Some(PathBuf::from("job-1")));
                assert_eq!(log_root.value, PathBuf::from("x"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            usage_msg(parse(args(&["resume", "--retries", "1"]), &env(&[])).map(|_| ()))
                .contains("does not apply to `resume`")
        );
    }

    #[test]
    fn report_takes_targets_an_output_and_the_log_root() {
        let inv = parse(
            args(&[
                "report",
                "2026-01-14_16-14-52-886218",
                "log/b",
                "-o",
                "out.html",
            ]),
            &env(&[("RD_CHAIN_LOG_ROOT", "runs"), ("WORKSPACE_PATH", "/ws")]),
        )
        .unwrap();
        assert_eq!(
            inv.command,
            Command::Report(ReportQuery {
                targets: vec!["2026-01-14_16-14-52-886218".into(), "log/b".into()],
                output: Some("out.html".into()),
                log_root: Setting {
                    value: "runs".into(),
                    origin: Origin::Env("RD_CHAIN_LOG_ROOT")
                },
                workspace_path_env: Some("/ws".into()),
            })
        );
        for (list, output) in [
            (&["report", "-oa.html"][..], "a.html"),
            (&["report", "-qo", "b.html"][..], "b.html"),
            (
                &["report", "--output=c.html", "--log-root", "x"][..],
                "c.html",
            ),
        ] {
            match parse(args(list), &env(&[])).unwrap().command {
                Command::Report(q) => {
                    assert_eq!(q.output, Some(PathBuf::from(output)), "{list:?}");
                    assert!(q.targets.is_empty());
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(
            usage_msg(parse(args(&["report", "-o"]), &env(&[]))).contains("missing value for -o")
        );
        assert!(
            usage_msg(parse(args(&["report", "--pick", "sota"]), &env(&[])))
                .contains("--pick does not apply to `report`")
        );
        assert!(usage_msg(parse(args(&["-o", "x.html"]), &env(&[])))
            .contains("--output does not apply to `rd-chain`"));
        assert!(
            usage_msg(parse(args(&["report", "--no-report"]), &env(&[])))
                .contains("--no-report does not apply")
        );
        // The chain's --report / --no-report: the last flag wins over the variable and the default.
        assert!(run(&[], &[]).unwrap().report.value);
        let c = run(&["--no-report"], &[]).unwrap();
        assert_eq!(
            (c.report.value, c.report.origin),
            (false, Origin::Flag("no-report"))
        );
        let c = run(&["--no-report", "--report"], &[("RD_CHAIN_REPORT", "no")]).unwrap();
        assert_eq!(
            (c.report.value, c.report.origin),
            (true, Origin::Flag("report"))
        );
        let c = run(&[], &[("RD_CHAIN_REPORT", "off")]).unwrap();
        assert_eq!(
            (c.report.value, c.report.origin),
            (false, Origin::Env("RD_CHAIN_REPORT"))
        );
        assert!(usage_msg(run(&[], &[("RD_CHAIN_REPORT", "maybe")])).contains("RD_CHAIN_REPORT"));
    }

    #[test]
    fn wrap_breaks_at_spaces_within_the_width() {
        assert_eq!(wrap("aa bb cc dd", 5), ["aa bb", "cc dd"]);
        assert_eq!(wrap("a verylongword b", 4), ["a", "verylongword", "b"]);
        assert!(wrap("", 10).is_empty());
        for line in help_text().lines() {
            assert!(line.chars().count() <= 110, "help line too long: {line}");
        }
    }

    #[test]
    fn help_lists_every_flag_and_its_variable() {
        let h = help_text();
        for f in FLAGS {
            assert!(h.contains(&format!("--{}", f.long)), "{}", f.long);
            if let Some(e) = f.env {
                assert!(h.contains(e), "{e}");
            }
        }
        for code in ["130", "143", "129", "128+N"] {
            assert!(h.contains(code));
        }
    }

    #[test]
    fn every_setting_has_its_flag_and_is_documented() {
        let usage =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/usage.md")).unwrap();
        let settings_row = usage
            .lines()
            .find(|l| l.starts_with("| `settings.<name>` |"))
            .expect("docs/usage.md documents settings.<name>");
        let c = run(&[], &[]).unwrap();
        for entry in SETTINGS {
            let f = flag(entry.flag).unwrap_or_else(|| panic!("no flag --{}", entry.flag));
            assert!(
                matches!(f.scope, Scope::Run | Scope::Pick | Scope::Chain),
                "{}",
                entry.flag
            );
            assert!(
                settings_row.contains(&format!("`{}`", entry.key)),
                "{}",
                entry.key
            );
            // Every default is typed and printed by --help.
            let (_, _, origin) = entry.show(&c);
            assert_eq!(origin, Origin::Default, "{}", entry.key);
        }
        assert_eq!(default_of("factor-loops").help().as_deref(), Some("10"));
        assert_eq!(default_of("log-root").help().as_deref(), Some("./log"));
        assert!(help_text().contains("[env RD_CHAIN_KILL_AFTER; default 10]"));
    }

    #[test]
    fn docs_flag_table_shows_each_settings_env_and_default() {
        let usage =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/usage.md")).unwrap();
        for entry in SETTINGS {
            let f = flag(entry.flag).unwrap();
            let row = usage
                .lines()
                .find(|l| {
                    l.starts_with("| ")
                        && (l.contains(&format!("`--{} ", f.long))
                            || l.contains(&format!("`--{}`", f.long)))
                })
                .unwrap_or_else(|| panic!("docs/usage.md has no row for --{}", f.long));
            let cells: Vec<String> = row.split(" | ").map(|c| c.replace('`', "")).collect();
            assert_eq!(Some(cells[1].as_str()), f.env, "{row}");
            let documented = cells[2].trim();
            match f.default.help() {
                Some(default) => assert_eq!(documented, default, "{row}"),
                None => assert_eq!(documented, "none", "{row}"),
            }
        }
    }
}
