//! Test harness: a temp dir per test, the real binary with a cleared environment, and failure output that shows
//! the command, status, stdout and stderr.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::json_read::{parse, J};

/// The repository root (where Cargo.toml is).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A script under `scripts/`.
pub fn script(name: &str) -> PathBuf {
    repo().join("scripts").join(name)
}

/// A fresh, empty directory under the target dir, removed when dropped unless the test failed.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let path = base.join(format!("{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// `rd-chain` with a cleared environment (PATH kept so python3 and the fake rdagent can run) in `cwd`. HOME
/// points at a directory that does not exist, so no RD-Agent key file of the machine's user is picked up.
pub fn rd_chain(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rd-chain"));
    cmd.current_dir(cwd).env_clear();
    for key in ["PATH", "LANG", "LC_ALL", "TMPDIR"] {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    cmd.env(
        "HOME",
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-home"),
    );
    cmd
}

/// Run a command and return its output; never panics itself.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("could not start {cmd:?}: {e}"))
}

/// Describe a finished command for an assertion message.
pub fn describe(cmd: &Command, out: &Output) -> String {
    format!(
        "command: {cmd:?}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Run and assert the exit code; returns (stdout, stderr).
pub fn expect_code(cmd: &mut Command, code: i32) -> (String, String) {
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(code), "{}", describe(cmd, &out));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run a Python script from `scripts/` with the test's python3.
pub fn python(args: &[&OsStr]) -> Output {
    let mut cmd = Command::new("python3");
    cmd.args(args);
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", describe(&cmd, &out));
    out
}

/// The simulated rdagent's invocations (or any JSON-lines file), one object per line, in order; none for a
/// missing file.
pub fn records(file: &Path) -> Vec<J> {
    match std::fs::read_to_string(file) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| parse(l).unwrap_or_else(|e| panic!("bad record line {l:?}: {e}")))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The argv of one of the simulated rdagent's records.
pub fn argv(rec: &J) -> Vec<String> {
    rec.get("argv")
        .arr()
        .iter()
        .map(|a| a.str().to_string())
        .collect()
}

/// A variable of one of the simulated rdagent's records.
pub fn env_of<'a>(rec: &'a J, name: &str) -> Option<&'a str> {
    rec.get("env").opt(name).map(J::str)
}

/// The run records rd-chain wrote under `<log root>/rd-chain/`.
pub fn run_records(log_root: &Path) -> Vec<J> {
    let dir = log_root.join("rd-chain");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|f| parse(&std::fs::read_to_string(f).unwrap()).unwrap())
        .collect()
}
