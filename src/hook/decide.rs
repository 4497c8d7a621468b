//! `--hook auto|on|off` -> a `HookDecision`. `On` and `Off` run nothing; `Auto` asks rdagent's interpreter where
//! the package is (see `probe`) and reads the model runner's source as text: a runner that reads
//! `SOTA_WORKSPACE_PATH` itself (a fork) needs no hook.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::contract;
use super::probe::{
    contains, lookup, parse_shebang, probe, read_head, Launch, ProbeEnv, PROBE_TIMEOUT,
};
use super::{HookDecision, HookMode};

/// Text whose presence in rdagent's model runner means that rdagent (a fork) reads the SOTA factors itself.
pub const CONSUMER_TEXT: &str = contract::WORKSPACE_ENV;

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
    child_env: &BTreeMap<String, std::ffi::OsString>,
) -> HookDecision {
    decide_with(mode, rdagent, ProbeEnv::Exact(child_env), PROBE_TIMEOUT)
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
    let (python, package) = locate(rdagent, env, timeout, &mut notes);
    decision.python = python;
    let Some(package) = package else {
        decision.reason = format!("{}: hook on", notes.join("; "));
        return decision;
    };

    let runner = contract::model_runner_file(&package);
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

/// The rdagent package directory as rdagent's interpreter finds it (read from the script's `#!` line, else
/// python3 on PATH), without importing rdagent: (the interpreter asked, the package dir). When the package is
/// not found, `notes` says why.
fn locate(
    rdagent: &Path,
    env: ProbeEnv<'_>,
    timeout: Duration,
    notes: &mut Vec<String>,
) -> (Option<PathBuf>, Option<PathBuf>) {
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
                notes.push(format!(
                    "{}'s #! line runs {} through env, which is not on PATH",
                    rdagent.display(),
                    program.to_string_lossy()
                ));
                return (None, None);
            }
        },
        None => match lookup(OsStr::new("python3"), &env) {
            Some(p) => (p, Vec::new()),
            None => {
                notes.push("python3 is not on PATH either".to_string());
                return (None, None);
            }
        },
    };
    let script_dir = rdagent
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match probe(&program, &args, script_dir, &env, timeout) {
        Ok(Some(dir)) => (Some(program), Some(dir)),
        Ok(None) => {
            notes.push(format!(
                "{} cannot find the rdagent package",
                program.display()
            ));
            (Some(program), None)
        }
        Err(why) => {
            notes.push(format!(
                "could not ask {} where rdagent is ({why})",
                program.display()
            ));
            (Some(program), None)
        }
    }
}

/// The rdagent package directory the model phase's rdagent will import, asked of its interpreter with exactly
/// `child_env` (as `decide_in_env` does), or why it is not known.
pub fn find_package_in_env(
    rdagent: &Path,
    child_env: &BTreeMap<String, std::ffi::OsString>,
) -> std::result::Result<PathBuf, String> {
    let mut notes = Vec::new();
    match locate(
        rdagent,
        ProbeEnv::Exact(child_env),
        PROBE_TIMEOUT,
        &mut notes,
    ) {
        (_, Some(package)) => Ok(package),
        _ => Err(notes.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::test_support::*;
    use super::*;

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
        let json = crate::record::hook_json(&d).compact();
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
