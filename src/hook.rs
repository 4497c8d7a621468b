//! The model phase's factor hand-off: rd-chain's `sitecustomize` hook (scripts/rdagent_hook/sitecustomize.py,
//! embedded so an installed rd-chain needs no checkout), where it is written, how the child's PYTHONPATH is
//! composed, and whether `--hook auto` turns it on.
//!
//! The hook is only ever written into rd-chain's own run directory, never into site-packages or the rdagent
//! installation. Deciding `auto` never imports or runs rdagent code: rdagent's interpreter is asked only for
//! `importlib.util.find_spec("rdagent")` (the top-level package, whose parents are not imported), and the
//! model runner's source is then read as text.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::json::Json;
use crate::{Error, Result};

/// The hook's source; `install` writes it as `sitecustomize.py`.
pub const SITECUSTOMIZE: &str = include_str!("../scripts/rdagent_hook/sitecustomize.py");

/// The file name Python imports at start-up from the first PYTHONPATH entry that has it.
pub const FILE_NAME: &str = "sitecustomize.py";

/// Text whose presence in rdagent's model runner means that rdagent (a fork) reads the SOTA factors itself.
pub const CONSUMER_TEXT: &str = "SOTA_WORKSPACE_PATH";

/// Where the model runner sits inside the `rdagent` package directory.
pub const MODEL_RUNNER: [&str; 4] = ["scenarios", "qlib", "developer", "model_runner.py"];

/// How long rdagent's interpreter may take to say where the rdagent package is.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Asks the interpreter for the rdagent package directory without importing rdagent. sys.path[0] becomes the
/// rdagent script's directory (argv[1]) as for a console script, instead of `-c`'s current directory.
const PROBE: &str = r#"import importlib.util, os, sys
if sys.path and sys.path[0] == "":
    sys.path[0] = sys.argv[1]
spec = importlib.util.find_spec("rdagent")
found = None
if spec is not None:
    if spec.origin and os.path.isfile(spec.origin):
        found = os.path.dirname(spec.origin)
    elif spec.submodule_search_locations:
        found = list(spec.submodule_search_locations)[0]
out = sys.stdout.buffer
out.write(b"\nRD_CHAIN_PROBE " + (b"DIR " + os.fsencode(found) if found else b"NOTFOUND") + b"\n")
out.flush()
"#;
const PROBE_PREFIX: &[u8] = b"RD_CHAIN_PROBE ";

/// `--hook` / RD_CHAIN_HOOK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookMode {
    /// The hook, unless the installed rdagent reads SOTA_WORKSPACE_PATH itself.
    Auto,
    /// Always the hook.
    On,
    /// Only the environment variables (a fork of RD-Agent with its own consumer).
    Off,
}

impl HookMode {
    pub const ALL: [HookMode; 3] = [HookMode::Auto, HookMode::On, HookMode::Off];

    pub fn as_str(self) -> &'static str {
        match self {
            HookMode::Auto => "auto",
            HookMode::On => "on",
            HookMode::Off => "off",
        }
    }
}

impl fmt::Display for HookMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HookMode {
    type Err = String;

    /// Any case, surrounding blanks ignored.
    fn from_str(text: &str) -> std::result::Result<HookMode, String> {
        let wanted = text.trim();
        HookMode::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| "expected one of auto, on, off".to_string())
    }
}

/// What the model phase will use to hand the SOTA factors to rdagent, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookDecision {
    /// Write the hook and put its directory first on the child's PYTHONPATH.
    pub enabled: bool,
    pub mode: HookMode,
    /// One sentence for the dry-run plan and the run record.
    pub reason: String,
    /// The interpreter asked where rdagent is (`auto` only).
    pub python: Option<PathBuf>,
    /// The model runner whose source was read (`auto` only, when found).
    pub model_runner: Option<PathBuf>,
}

impl HookDecision {
    /// Who turns the environment variables into training on the SOTA factors.
    pub fn consumer(&self) -> &'static str {
        if self.enabled {
            "rd-chain hook"
        } else {
            "rdagent"
        }
    }

    pub fn to_json(&self) -> Json {
        Json::object()
            .with("mode", self.mode.as_str())
            .with("enabled", self.enabled)
            .with("consumer", self.consumer())
            .with("reason", self.reason.as_str())
            .with("python", self.python.as_ref())
            .with("model_runner", self.model_runner.as_ref())
    }
}

/// Decide with the probe inheriting rd-chain's own environment (which the child inherits too), PATH replaced by
/// `path_env` when given. `Auto` runs rdagent's interpreter once; `On` and `Off` run nothing.
pub fn decide(mode: HookMode, rdagent: &Path, path_env: Option<&OsStr>) -> HookDecision {
    decide_with(mode, rdagent, ProbeEnv::Inherit(path_env), PROBE_TIMEOUT)
}

/// Decide with the probe seeing exactly `child_env` (the model phase's environment before the hook is added):
/// its PATH finds the interpreter, its PYTHONPATH (and the rest) decide where `rdagent` is found.
pub fn decide_in_env(
    mode: HookMode,
    rdagent: &Path,
    child_env: &BTreeMap<String, String>,
) -> HookDecision {
    decide_with(mode, rdagent, ProbeEnv::Exact(child_env), PROBE_TIMEOUT)
}

/// Create `dir` (and its parents), write the hook into it as `sitecustomize.py`, and return `dir` made absolute.
pub fn install(dir: &Path) -> Result<PathBuf> {
    let dir = std::path::absolute(dir)
        .map_err(|e| Error::io("cannot make the hook directory absolute:", dir, e))?;
    check_dir(&dir)?;
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io("cannot create the hook directory", &dir, e))?;
    let file = dir.join(FILE_NAME);
    std::fs::write(&file, SITECUSTOMIZE)
        .map_err(|e| Error::io("cannot write the hook", &file, e))?;
    Ok(dir)
}

/// The hook directory must be able to stand in PYTHONPATH (no path-list separator in it). Checked before the
/// chain starts, so a bad `--log-root` is reported before hours of factor loops, not after.
pub fn check_dir(dir: &Path) -> Result<()> {
    if dir.as_os_str().to_string_lossy().contains(PATH_SEPARATOR) {
        return Err(Error::usage(format!(
            "the hook directory {} contains {PATH_SEPARATOR:?}, which cannot stand in PYTHONPATH; choose a \
             --log-root without it (or run with --hook off)",
            dir.display()
        )));
    }
    Ok(())
}

/// The variable that tells the hook where to report what it did (see `HookReport`).
pub const REPORT_ENV: &str = "RD_CHAIN_HOOK_REPORT";

/// The report's file name in the hook dir.
pub const REPORT_FILE: &str = "report.tsv";

/// What the hook reported from the model phase: how many processes armed it, how many hand-overs reached
/// RD-Agent's model runner, and the shape of the factors handed over.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookReport {
    pub armed: usize,
    pub used: usize,
    /// (rows, columns) of the last hand-over.
    pub shape: Option<(u64, u64)>,
}

impl HookReport {
    /// Read the report the hook appended to (`armed\t<pid>\t<path>`, `used\t<pid>\t<rows>\t<cols>\t<path>`).
    /// A missing file means nothing was reported; lines of other shapes are ignored.
    pub fn read(path: &Path) -> HookReport {
        let mut report = HookReport::default();
        let Ok(text) = std::fs::read_to_string(path) else {
            return report;
        };
        for line in text.lines() {
            let fields: Vec<&str> = line.split('\t').collect();
            match fields.as_slice() {
                ["armed", _pid, ..] => report.armed += 1,
                ["used", _pid, rows, columns, ..] => {
                    report.used += 1;
                    report.shape = rows.parse().ok().zip(columns.parse().ok());
                }
                _ => {}
            }
        }
        report
    }

    pub fn to_json(&self) -> Json {
        Json::object()
            .with("armed", self.armed)
            .with("used", self.used)
            .with("rows", self.shape.map(|s| s.0))
            .with("columns", self.shape.map(|s| s.1))
    }
}

/// The child's PYTHONPATH: the hook directory first, then `existing` unchanged. An unset or empty `existing`
/// adds nothing (a trailing separator would put the current directory on sys.path).
pub fn pythonpath(hook_dir: &Path, existing: Option<&OsStr>) -> OsString {
    let mut out = OsString::from(hook_dir.as_os_str());
    if let Some(rest) = existing.filter(|e| !e.is_empty()) {
        out.push(PATH_SEPARATOR);
        out.push(rest);
    }
    out
}

const PATH_SEPARATOR: &str = if cfg!(windows) { ";" } else { ":" };

/// The environment the probe runs in.
#[derive(Clone, Copy)]
enum ProbeEnv<'a> {
    /// rd-chain's own, with PATH replaced when given.
    Inherit(Option<&'a OsStr>),
    /// Exactly this.
    Exact(&'a BTreeMap<String, String>),
}

impl ProbeEnv<'_> {
    fn path(&self) -> Option<OsString> {
        match self {
            ProbeEnv::Inherit(Some(p)) => Some(p.to_os_string()),
            ProbeEnv::Inherit(None) => std::env::var_os("PATH"),
            ProbeEnv::Exact(env) => env.get("PATH").map(OsString::from),
        }
    }

    fn apply(&self, cmd: &mut Command) {
        match self {
            ProbeEnv::Inherit(Some(p)) => {
                cmd.env("PATH", p);
            }
            ProbeEnv::Inherit(None) => {}
            ProbeEnv::Exact(env) => {
                cmd.env_clear().envs(env.iter());
            }
        }
    }
}

fn decide_with(
    mode: HookMode,
    rdagent: &Path,
    env: ProbeEnv<'_>,
    timeout: Duration,
) -> HookDecision {
    let fixed = |enabled: bool, reason: &str| HookDecision {
        enabled,
        mode,
        reason: reason.to_string(),
        python: None,
        model_runner: None,
    };
    match mode {
        HookMode::On => fixed(
            true,
            "hook mode on: the rd-chain hook hands the SOTA factors to rdagent's model runner",
        ),
        HookMode::Off => fixed(
            false,
            "hook mode off: only the environment variables are set; rdagent itself must read them (a fork)",
        ),
        HookMode::Auto => decide_auto(rdagent, env, timeout),
    }
}

fn decide_auto(rdagent: &Path, env: ProbeEnv<'_>, timeout: Duration) -> HookDecision {
    let mut decision = HookDecision {
        enabled: true,
        mode: HookMode::Auto,
        reason: String::new(),
        python: None,
        model_runner: None,
    };
    let mut notes = Vec::new();

    let launch = match read_head(rdagent) {
        Ok(head) => match parse_shebang(&head) {
            Ok(launch) => Some(launch),
            Err(why) => {
                notes.push(format!(
                    "{} {why}, so python3 on PATH was asked",
                    rdagent.display()
                ));
                None
            }
        },
        Err(e) => {
            notes.push(format!(
                "cannot read {} ({e}), so python3 on PATH was asked",
                rdagent.display()
            ));
            None
        }
    };
    let (program, args) = match launch {
        Some(Launch {
            program,
            args,
            via_env: false,
        }) => (PathBuf::from(program), args),
        Some(Launch {
            program,
            args,
            via_env: true,
        }) => match lookup(&program, &env) {
            Some(p) => (p, args),
            None => {
                decision.reason = format!(
                    "{}'s #! line runs {} through env, which is not on PATH: hook on",
                    rdagent.display(),
                    program.to_string_lossy()
                );
                return decision;
            }
        },
        None => match lookup(OsStr::new("python3"), &env) {
            Some(p) => (p, Vec::new()),
            None => {
                notes.push("python3 is not on PATH either".to_string());
                decision.reason = format!("{}: hook on", notes.join("; "));
                return decision;
            }
        },
    };
    decision.python = Some(program.clone());

    let script_dir = rdagent
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let package = match probe(&program, &args, script_dir, &env, timeout) {
        Ok(Some(dir)) => dir,
        Ok(None) => {
            notes.push(format!(
                "{} cannot find the rdagent package",
                program.display()
            ));
            decision.reason = format!("{}: hook on", notes.join("; "));
            return decision;
        }
        Err(why) => {
            notes.push(format!(
                "could not ask {} where rdagent is ({why})",
                program.display()
            ));
            decision.reason = format!("{}: hook on", notes.join("; "));
            return decision;
        }
    };

    let runner = MODEL_RUNNER
        .iter()
        .fold(package.clone(), |p, part| p.join(part));
    let source = match std::fs::read(&runner) {
        Ok(source) => source,
        Err(e) => {
            notes.push(format!(
                "the rdagent package at {} has no readable model runner {} ({e})",
                package.display(),
                runner.display()
            ));
            decision.reason = format!("{}: hook on", notes.join("; "));
            return decision;
        }
    };
    decision.model_runner = Some(runner.clone());
    let reads_it = contains(&source, CONSUMER_TEXT.as_bytes());
    decision.enabled = !reads_it;
    notes.push(if reads_it {
        format!(
            "{} reads {CONSUMER_TEXT} itself: hook off, only the environment variables are set",
            runner.display()
        )
    } else {
        format!(
            "{} does not read {CONSUMER_TEXT} (upstream RD-Agent): hook on",
            runner.display()
        )
    });
    decision.reason = notes.join("; ");
    decision
}

/// The first bytes of the rdagent program, enough for its `#!` line and a second line.
fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    std::fs::File::open(path)?
        .take(8192)
        .read_to_end(&mut head)?;
    Ok(head)
}

/// How a script's `#!` line starts its interpreter.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Launch {
    /// A path, or (`via_env`) a name to look up on PATH.
    program: OsString,
    /// The interpreter's own options from the `#!` line.
    args: Vec<OsString>,
    via_env: bool,
}

/// Read the interpreter from a script's first line(s). Handles `#!/path/python [opts]`,
/// `#!/usr/bin/env [-S] [VAR=value] python3 [opts]`, and the `#!/bin/sh` + `'''exec' /path/python "$0" "$@"`
/// form pip writes when the interpreter's path is too long or has spaces. `Err` says why there is none.
fn parse_shebang(head: &[u8]) -> std::result::Result<Launch, &'static str> {
    let Some(rest) = head.strip_prefix(b"#!") else {
        let binary = head.starts_with(b"\x7fELF")
            || head.starts_with(b"MZ")
            || head.iter().take(1024).any(|&b| b == 0);
        return Err(if binary {
            "is a binary, not a script"
        } else {
            "has no #! line"
        });
    };
    let (line, after) = split_line(rest);
    let mut tokens = line
        .split(|b| *b == b' ' || *b == b'\t')
        .filter(|t| !t.is_empty());
    let Some(first) = tokens.next() else {
        return Err("has an empty #! line");
    };
    let base = first.rsplit(|b| *b == b'/').next().unwrap_or(first);
    if base == b"env" {
        let mut program = None;
        let mut skip_next = false;
        for token in tokens.by_ref() {
            if skip_next {
                skip_next = false;
            } else if token == b"-u" || token == b"--unset" {
                skip_next = true;
            } else if token.starts_with(b"-") || token.contains(&b'=') {
                continue;
            } else {
                program = Some(token);
                break;
            }
        }
        let Some(program) = program else {
            return Err("runs env without a program on its #! line");
        };
        return Ok(Launch {
            program: bytes_to_os(program),
            args: tokens.map(bytes_to_os).collect(),
            via_env: true,
        });
    }
    if base == b"sh" || base == b"bash" {
        let (second, _) = split_line(after);
        if let Some(exec) = second.strip_prefix(b"'''exec' ") {
            let path = match exec.strip_prefix(b"\"") {
                Some(quoted) => quoted.split(|b| *b == b'"').next().unwrap_or(quoted),
                None => exec.split(|b| *b == b' ').next().unwrap_or(exec),
            };
            if !path.is_empty() {
                return Ok(Launch {
                    program: bytes_to_os(path),
                    args: Vec::new(),
                    via_env: false,
                });
            }
        }
    }
    Ok(Launch {
        program: bytes_to_os(first),
        args: tokens.map(bytes_to_os).collect(),
        via_env: false,
    })
}

/// The first line (without `\n` or `\r\n`) and what follows it.
fn split_line(bytes: &[u8]) -> (&[u8], &[u8]) {
    let (line, after) = match bytes.iter().position(|b| *b == b'\n') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &bytes[bytes.len()..]),
    };
    (line.strip_suffix(b"\r").unwrap_or(line), after)
}

#[cfg(unix)]
fn bytes_to_os(bytes: &[u8]) -> OsString {
    use std::os::unix::ffi::OsStrExt;
    OsStr::from_bytes(bytes).to_os_string()
}

#[cfg(not(unix))]
fn bytes_to_os(bytes: &[u8]) -> OsString {
    OsString::from(String::from_utf8_lossy(bytes).into_owned())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `name` on the probe's PATH (a name with a slash is taken as a path).
fn lookup(name: &OsStr, env: &ProbeEnv<'_>) -> Option<PathBuf> {
    if Path::new(name).components().count() > 1 {
        return Some(PathBuf::from(name));
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    which::which_in(name, env.path(), cwd).ok()
}

/// Run the probe: `Ok(Some(dir))` is the rdagent package directory, `Ok(None)` means not found.
fn probe(
    python: &Path,
    args: &[OsString],
    script_dir: &Path,
    env: &ProbeEnv<'_>,
    timeout: Duration,
) -> std::result::Result<Option<PathBuf>, String> {
    let mut cmd = Command::new(python);
    cmd.args(args)
        .arg("-c")
        .arg(PROBE)
        .arg(script_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    env.apply(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| format!("cannot start it: {e}"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {} s", timeout.as_secs_f64()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        let last = String::from_utf8_lossy(&stderr)
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string();
        return Err(format!("{status}: {last}"));
    }
    let answer = stdout
        .split(|b| *b == b'\n')
        .rev()
        .find_map(|line| line.strip_prefix(PROBE_PREFIX))
        .ok_or_else(|| "it printed no answer".to_string())?;
    if answer == b"NOTFOUND" {
        return Ok(None);
    }
    match answer.strip_prefix(b"DIR ") {
        Some(dir) => Ok(Some(PathBuf::from(bytes_to_os(dir)))),
        None => Err("it printed an answer rd-chain does not understand".to_string()),
    }
}

/// Read a pipe to its end on a thread, so a chatty child cannot block on a full pipe.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_counts_arming_and_hand_overs() {
        let dir = std::env::temp_dir().join(format!("rd-chain-report-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(REPORT_FILE);
        assert_eq!(
            HookReport::read(&path),
            HookReport::default(),
            "no file: nothing reported"
        );
        std::fs::write(
            &path,
            "armed\t7\t/f.parquet\nused\t7\t20\t4\t/f.parquet\ngarbage\nused\t7\t21\t5\t/f.parquet\narmed\t8\n",
        )
        .unwrap();
        let r = HookReport::read(&path);
        assert_eq!((r.armed, r.used, r.shape), (2, 2, Some((21, 5))));
        assert_eq!(
            r.to_json().compact(),
            "{\"armed\":2,\"used\":2,\"rows\":21,\"columns\":5}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system temp dir, removed on drop unless the test failed.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "rd-chain-hook-{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    fn python3() -> PathBuf {
        which::which("python3").expect("these tests need python3 on PATH")
    }

    /// A fake rdagent installation: `<root>/pkg/rdagent/...` whose model runner holds `runner_source`.
    fn fake_package(root: &Path, runner_source: &str) -> PathBuf {
        let pkg = root.join("pkg");
        write(
            &pkg.join("rdagent/__init__.py"),
            b"raise SystemExit('rdagent must not be imported')\n",
        );
        let runner = MODEL_RUNNER
            .iter()
            .fold(pkg.join("rdagent"), |p, part| p.join(part));
        write(&runner, runner_source.as_bytes());
        pkg
    }

    fn child_env(pythonpath: Option<&Path>) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert("PATH".to_string(), std::env::var("PATH").unwrap());
        if let Some(p) = pythonpath {
            env.insert("PYTHONPATH".to_string(), p.to_string_lossy().into_owned());
        }
        env
    }

    const UPSTREAM_RUNNER: &str = "def process_factor_data(exps):\n    pass\n";
    const FORK_RUNNER: &str = "import os\nws = os.getenv('SOTA_WORKSPACE_PATH')\n";

    #[test]
    fn modes_parse_in_any_case_and_the_error_lists_the_values() {
        assert_eq!("auto".parse::<HookMode>(), Ok(HookMode::Auto));
        assert_eq!(" ON ".parse::<HookMode>(), Ok(HookMode::On));
        assert_eq!("Off".parse::<HookMode>(), Ok(HookMode::Off));
        let err = "yes".parse::<HookMode>().unwrap_err();
        assert_eq!(err, "expected one of auto, on, off");
        for mode in HookMode::ALL {
            assert_eq!(mode.as_str().parse::<HookMode>(), Ok(mode));
            assert_eq!(mode.to_string(), mode.as_str());
        }
    }

    #[test]
    fn pythonpath_puts_the_hook_first_and_keeps_what_was_there() {
        let hook = Path::new("/run/rd-chain/x.hook");
        assert_eq!(
            pythonpath(hook, None),
            OsString::from("/run/rd-chain/x.hook")
        );
        assert_eq!(
            pythonpath(hook, Some(OsStr::new(""))),
            OsString::from("/run/rd-chain/x.hook")
        );
        assert_eq!(
            pythonpath(hook, Some(OsStr::new("/a:/b"))),
            OsString::from("/run/rd-chain/x.hook:/a:/b")
        );
        // The user's own empty entries (the current directory) stay as they were.
        assert_eq!(
            pythonpath(hook, Some(OsStr::new(":/a"))),
            OsString::from("/run/rd-chain/x.hook::/a")
        );
    }

    #[test]
    fn on_and_off_decide_without_running_anything() {
        let missing = Path::new("/nonexistent/rd-chain-test/rdagent");
        let on = decide(HookMode::On, missing, Some(OsStr::new("/nonexistent")));
        assert!(on.enabled);
        assert_eq!((on.python, on.model_runner), (None, None));
        assert_eq!(on.mode, HookMode::On);
        let off = decide(HookMode::Off, missing, None);
        assert!(!off.enabled);
        assert_eq!(off.python, None);
        assert!(
            off.reason.contains("only the environment variables"),
            "{}",
            off.reason
        );
        assert_eq!(off.consumer(), "rdagent");
    }

    #[test]
    fn install_writes_the_embedded_hook_into_a_new_directory() {
        let scratch = Scratch::new("install");
        let dir = install(&scratch.0.join("log/rd-chain/run-1.hook")).unwrap();
        assert!(dir.is_absolute());
        let written = std::fs::read_to_string(dir.join(FILE_NAME)).unwrap();
        assert_eq!(written, SITECUSTOMIZE);
        assert!(SITECUSTOMIZE.contains("RD_CHAIN_HOOK_STATE"));
        // Installing again (a re-run into the same directory) overwrites.
        std::fs::write(dir.join(FILE_NAME), "stale").unwrap();
        install(&dir).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join(FILE_NAME)).unwrap(),
            SITECUSTOMIZE
        );
    }

    #[test]
    fn the_installed_hook_runs_first_and_chains_the_users_sitecustomize() {
        let scratch = Scratch::new("startup");
        let hook_dir = install(&scratch.0.join("rd-chain/run.hook")).unwrap();
        let user_site = scratch.0.join("user site");
        write(
            &user_site.join(FILE_NAME),
            b"import os\nos.environ['USER_SITECUSTOMIZE'] = 'ran'\n",
        );
        let factors = scratch.0.join("combined_factors_df.parquet");
        write(&factors, b"PAR1 not read at start-up PAR1");
        let out = Command::new(python3())
            .arg("-c")
            .arg(
                "import os, sys\n\
                 s = sys.modules['sitecustomize'].RD_CHAIN_HOOK_STATE\n\
                 print(s['armed'], s['factors_path'], os.environ.get('USER_SITECUSTOMIZE'))",
            )
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env(
                "PYTHONPATH",
                pythonpath(&hook_dir, Some(user_site.as_os_str())),
            )
            .env("LOAD_SOTA_FROM_WORKSPACE", "Yes")
            .env("SOTA_WORKSPACE_PATH", &scratch.0)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("True {} ran", factors.display())
        );
        assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    }

    #[test]
    fn install_refuses_a_directory_pythonpath_cannot_hold() {
        let scratch = Scratch::new("colon");
        let err = install(&scratch.0.join("a:b/x.hook")).unwrap_err();
        assert_eq!(err.exit_code(), crate::exit::USAGE);
        assert!(err.to_string().contains("--log-root"), "{err}");
        assert!(!scratch.0.join("a:b").exists());
    }

    #[test]
    fn shebang_forms() {
        let os = |s: &str| OsString::from(s);
        assert_eq!(
            parse_shebang(b"#!/opt/conda/envs/rd/bin/python3.10\n# -*- coding: utf-8 -*-\n"),
            Ok(Launch {
                program: os("/opt/conda/envs/rd/bin/python3.10"),
                args: vec![],
                via_env: false
            })
        );
        assert_eq!(
            parse_shebang(b"#! /usr/bin/python3 -s\r\nimport sys\n"),
            Ok(Launch {
                program: os("/usr/bin/python3"),
                args: vec![os("-s")],
                via_env: false
            })
        );
        assert_eq!(
            parse_shebang(b"#!/usr/bin/env python3\n"),
            Ok(Launch {
                program: os("python3"),
                args: vec![],
                via_env: true
            })
        );
        assert_eq!(
            parse_shebang(b"#!/usr/bin/env -S PYTHONUTF8=1 python3.11 -u\n"),
            Ok(Launch {
                program: os("python3.11"),
                args: vec![os("-u")],
                via_env: true
            })
        );
        assert_eq!(
            parse_shebang(
                b"#!/bin/sh\n'''exec' \"/home/u/my envs/bin/python\" \"$0\" \"$@\"\n' '''\n"
            ),
            Ok(Launch {
                program: os("/home/u/my envs/bin/python"),
                args: vec![],
                via_env: false
            })
        );
        assert_eq!(
            parse_shebang(b"#!/bin/sh\n'''exec' /very/long/bin/python \"$0\" \"$@\"\n"),
            Ok(Launch {
                program: os("/very/long/bin/python"),
                args: vec![],
                via_env: false
            })
        );
        // A plain shell script is run by its shell; the probe will then fail and say so.
        assert_eq!(
            parse_shebang(b"#!/bin/sh\nexec python3 -m rdagent \"$@\"\n")
                .unwrap()
                .program,
            os("/bin/sh")
        );
        assert_eq!(
            parse_shebang(b"\x7fELF\x02\x01\x01\0\0"),
            Err("is a binary, not a script")
        );
        assert_eq!(parse_shebang(b"import sys\n"), Err("has no #! line"));
        assert_eq!(parse_shebang(b"#!\n"), Err("has an empty #! line"));
        assert_eq!(
            parse_shebang(b"#!/usr/bin/env -S\n"),
            Err("runs env without a program on its #! line")
        );
    }

    #[test]
    fn auto_turns_the_hook_on_for_an_upstream_model_runner() {
        let scratch = Scratch::new("upstream");
        let pkg = fake_package(&scratch.0, UPSTREAM_RUNNER);
        let rdagent = scratch.0.join("bin/rdagent");
        write(
            &rdagent,
            format!("#!{}\nimport rdagent\n", python3().display()).as_bytes(),
        );
        let d = decide_in_env(HookMode::Auto, &rdagent, &child_env(Some(&pkg)));
        assert!(d.enabled, "{d:?}");
        assert_eq!(d.python, Some(python3()));
        let runner = pkg.join("rdagent/scenarios/qlib/developer/model_runner.py");
        assert_eq!(
            d.model_runner
                .as_deref()
                .map(std::fs::canonicalize)
                .transpose()
                .unwrap(),
            Some(std::fs::canonicalize(&runner).unwrap())
        );
        assert!(
            d.reason.contains("does not read SOTA_WORKSPACE_PATH"),
            "{}",
            d.reason
        );
        assert_eq!(d.consumer(), "rd-chain hook");
    }

    #[test]
    fn auto_leaves_a_fork_that_reads_the_variable_itself_alone() {
        let scratch = Scratch::new("fork");
        let pkg = fake_package(&scratch.0, FORK_RUNNER);
        let rdagent = scratch.0.join("bin/rdagent");
        write(&rdagent, b"#!/usr/bin/env python3\nimport rdagent\n");
        let d = decide_in_env(HookMode::Auto, &rdagent, &child_env(Some(&pkg)));
        assert!(!d.enabled, "{d:?}");
        assert_eq!(d.python, Some(python3()));
        assert!(
            d.reason.contains("reads SOTA_WORKSPACE_PATH itself"),
            "{}",
            d.reason
        );
        assert_eq!(d.consumer(), "rdagent");
        let json = d.to_json().compact();
        assert!(
            json.starts_with("{\"mode\":\"auto\",\"enabled\":false,\"consumer\":\"rdagent\""),
            "{json}"
        );
        assert!(json.contains("model_runner.py"), "{json}");
    }

    #[test]
    fn auto_finds_a_package_next_to_the_script_like_a_console_script_does() {
        let scratch = Scratch::new("beside");
        let bin = scratch.0.join("bin");
        fake_package(&bin, FORK_RUNNER);
        // The package is at bin/pkg/rdagent; the script sits in bin/pkg, as a console script's dir is sys.path[0].
        let rdagent = bin.join("pkg/rdagent-script");
        write(&rdagent, format!("#!{}\n", python3().display()).as_bytes());
        let d = decide_in_env(HookMode::Auto, &rdagent, &child_env(None));
        assert!(!d.enabled, "{d:?}");
    }

    #[test]
    fn auto_with_a_binary_rdagent_asks_python3_on_path_and_says_so() {
        let scratch = Scratch::new("binary");
        let pkg = fake_package(&scratch.0, UPSTREAM_RUNNER);
        let rdagent = scratch.0.join("bin/rdagent");
        write(&rdagent, b"\x7fELF\x02\x01\x01\0\0\0\0\0");
        let d = decide_in_env(HookMode::Auto, &rdagent, &child_env(Some(&pkg)));
        assert!(d.enabled);
        assert_eq!(d.python, Some(python3()));
        assert!(
            d.reason
                .contains("is a binary, not a script, so python3 on PATH was asked"),
            "{}",
            d.reason
        );
        assert!(d.model_runner.is_some(), "{d:?}");
    }

    #[test]
    fn auto_without_an_rdagent_package_turns_the_hook_on() {
        let scratch = Scratch::new("nopkg");
        let rdagent = scratch.0.join("bin/rdagent");
        write(&rdagent, format!("#!{}\n", python3().display()).as_bytes());
        let d = decide_in_env(
            HookMode::Auto,
            &rdagent,
            &child_env(Some(&scratch.0.join("empty"))),
        );
        assert!(d.enabled);
        assert!(
            d.reason.contains("cannot find the rdagent package"),
            "{}",
            d.reason
        );
        assert_eq!(d.model_runner, None);
    }

    #[test]
    fn auto_with_a_package_missing_the_model_runner_turns_the_hook_on() {
        let scratch = Scratch::new("norunner");
        let pkg = scratch.0.join("pkg");
        write(&pkg.join("rdagent/__init__.py"), b"");
        let rdagent = scratch.0.join("bin/rdagent");
        write(&rdagent, format!("#!{}\n", python3().display()).as_bytes());
        let d = decide_in_env(HookMode::Auto, &rdagent, &child_env(Some(&pkg)));
        assert!(d.enabled);
        assert!(
            d.reason.contains("has no readable model runner"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn auto_with_an_interpreter_that_fails_or_hangs_turns_the_hook_on() {
        let scratch = Scratch::new("badpython");
        let failing = scratch.0.join("failing-python");
        write(
            &failing,
            b"#!/bin/sh\necho 'no such interpreter feature' >&2\nexit 7\n",
        );
        let hanging = scratch.0.join("hanging-python");
        write(&hanging, b"#!/bin/sh\nexec sleep 30\n");
        #[cfg(unix)]
        for script in [&failing, &hanging] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(script, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let rdagent = scratch.0.join("rdagent");

        write(&rdagent, format!("#!{}\n", failing.display()).as_bytes());
        let env = child_env(None);
        let d = decide_with(
            HookMode::Auto,
            &rdagent,
            ProbeEnv::Exact(&env),
            PROBE_TIMEOUT,
        );
        assert!(d.enabled);
        assert!(
            d.reason.contains("no such interpreter feature"),
            "{}",
            d.reason
        );

        write(&rdagent, format!("#!{}\n", hanging.display()).as_bytes());
        let started = Instant::now();
        let d = decide_with(
            HookMode::Auto,
            &rdagent,
            ProbeEnv::Exact(&env),
            Duration::from_millis(300),
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(d.enabled);
        assert!(d.reason.contains("no answer within 0.3 s"), "{}", d.reason);
    }

    #[test]
    fn auto_with_an_env_shebang_whose_program_is_missing_turns_the_hook_on() {
        let scratch = Scratch::new("envmissing");
        let rdagent = scratch.0.join("rdagent");
        write(&rdagent, b"#!/usr/bin/env python-rd-chain-does-not-exist\n");
        let d = decide_in_env(HookMode::Auto, &rdagent, &child_env(None));
        assert!(d.enabled);
        assert!(d.reason.contains("not on PATH"), "{}", d.reason);
        assert_eq!(d.python, None);
    }
}
