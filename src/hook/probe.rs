//! Asks rdagent's interpreter where the rdagent package is, without importing rdagent: the interpreter is read
//! from the rdagent program's `#!` line and asked only for `importlib.util.find_spec("rdagent")` (the top-level
//! package, whose parents are not imported).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long rdagent's interpreter may take to say where the rdagent package is.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the probe's group gets between SIGTERM and SIGKILL when it has to be ended.
const PROBE_GRACE: Duration = Duration::from_secs(1);

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

/// The environment the probe runs in.
#[derive(Clone, Copy)]
pub(super) enum ProbeEnv<'a> {
    /// rd-chain's own, with PATH replaced when given.
    Inherit(Option<&'a OsStr>),
    /// Exactly this.
    Exact(&'a BTreeMap<String, OsString>),
}

impl ProbeEnv<'_> {
    fn path(&self) -> Option<OsString> {
        match self {
            ProbeEnv::Inherit(Some(p)) => Some(p.to_os_string()),
            ProbeEnv::Inherit(None) => std::env::var_os("PATH"),
            ProbeEnv::Exact(env) => env.get("PATH").cloned(),
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

/// The first bytes of the rdagent program, enough for its `#!` line and a second line.
pub(super) fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    std::fs::File::open(path)?
        .take(8192)
        .read_to_end(&mut head)?;
    Ok(head)
}

/// How a script's `#!` line starts its interpreter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Launch {
    /// A path, or (`via_env`) a name to look up on PATH.
    pub program: OsString,
    /// The interpreter's own options from the `#!` line.
    pub args: Vec<OsString>,
    pub via_env: bool,
}

/// Read the interpreter from a script's first line(s). Handles `#!/path/python [opts]`,
/// `#!/usr/bin/env [-S] [VAR=value] python3 [opts]`, and the `#!/bin/sh` + `'''exec' /path/python "$0" "$@"`
/// form pip writes when the interpreter's path is too long or has spaces. `Err` says why there is none.
pub(super) fn parse_shebang(head: &[u8]) -> std::result::Result<Launch, &'static str> {
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

pub(super) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `name` on the probe's PATH (a name with a slash is taken as a path).
pub(super) fn lookup(name: &OsStr, env: &ProbeEnv<'_>) -> Option<PathBuf> {
    if Path::new(name).components().count() > 1 {
        return Some(PathBuf::from(name));
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    which::which_in(name, env.path(), cwd).ok()
}

/// Run the probe: `Ok(Some(dir))` is the rdagent package directory, `Ok(None)` means not found.
pub(super) fn probe(
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
    // A process group of its own with a guard: if rd-chain is killed while the probe runs (even in --dry-run),
    // the interpreter and anything it started go too.
    let mut group = crate::process::spawn(&mut cmd, PROBE_GRACE)
        .map_err(|e| format!("cannot start it: {e}"))?;
    let stdout = drain(group.child_mut().stdout.take());
    let stderr = drain(group.child_mut().stderr.take());
    let started = Instant::now();
    let status = loop {
        match group.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                group.kill();
                let _ = group.finish();
                return Err(format!("no answer within {} s", timeout.as_secs_f64()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
    };
    let _ = group.finish();
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
}
