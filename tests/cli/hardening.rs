//! Hostile filesystems and environments, and output that must survive hostile text: a log root this user may
//! not write, a read-only mount, environment values that are not UTF-8, a run record that cannot be written
//! mid-chain, terminal escapes in recorded paths, and `--json` after rdagent output without a final newline.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::json_read::parse;
use crate::util::{describe, expect_code, rd_chain, run, script, TempDir};

/// A factor log written by the simulated rdagent (one accepted loop), with `extra` environment.
fn factor_log(dir: &Path, extra: &[(&str, &std::ffi::OsStr)]) -> PathBuf {
    let log = dir.join("old-log/2026-01-14_16-14-52-886218");
    let mut cmd = Command::new(script("fake-rdagent"));
    cmd.args(["fin_factor", "--loop-n", "3"])
        .current_dir(dir)
        .env("LOG_TRACE_PATH", &log)
        .env("FAKE_RDAGENT_ACCEPT", "1")
        .stdout(Stdio::null());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", describe(&cmd, &out));
    log
}

/// An executable shell script standing in for rdagent's model phase.
fn sh_rdagent(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("rdagent-sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path
}

#[cfg(unix)]
fn euid() -> u32 {
    extern "C" {
        fn geteuid() -> u32;
    }
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    unsafe { geteuid() }
}

#[cfg(target_os = "linux")]
#[test]
fn a_log_root_this_user_may_not_write_is_refused_by_the_dry_run_and_the_run() {
    use std::os::unix::fs::PermissionsExt;
    if euid() != 0 || !Path::new("/usr/bin/setpriv").exists() {
        eprintln!(
            "skipped: needs root and setpriv to run rd-chain as the unprivileged user nobody"
        );
        return;
    }
    let tmp = TempDir::new("unwritable-root");
    // Root-owned, 0755: writable for root by the mode bits' owner column, not for nobody.
    let root = tmp.join("shared-log");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for (target, what) in [
        (root.clone(), "the dir itself"),
        (root.join("sub/log"), "a dir to create in it"),
    ] {
        for dry in [true, false] {
            let mut cmd = rd_chain(tmp.path());
            let program = cmd.get_program().to_os_string();
            let mut nobody = Command::new("/usr/bin/setpriv");
            nobody
                .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
                .arg(program)
                .current_dir(tmp.path())
                .env_clear()
                .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
                .args(["--hook", "off", "--rdagent"])
                .arg(script("fake-rdagent"))
                .arg("--log-root")
                .arg(&target);
            if dry {
                nobody.arg("--dry-run");
            }
            cmd = nobody;
            let (_, err) = expect_code(&mut cmd, 2);
            assert!(
                err.contains("log root")
                    && err.contains(&root.display().to_string())
                    && err.contains("--log-root"),
                "{what}, dry run {dry}: {err}"
            );
        }
    }
    assert!(
        !root.join("rd-chain").exists() && !root.join("sub").exists(),
        "nothing may be written"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_log_root_on_a_read_only_mount_is_refused() {
    if euid() != 0 {
        eprintln!("skipped: needs root for a read-only bind mount in a private mount namespace");
        return;
    }
    let tmp = TempDir::new("ro-mount");
    let root = tmp.join("ro-log");
    std::fs::create_dir(&root).unwrap();
    let probe = Command::new("unshare")
        .args([
            "--mount",
            "sh",
            "-c",
            "mount --bind -o ro \"$0\" \"$0\"",
            root.to_str().unwrap(),
        ])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: this machine cannot make a read-only bind mount (unshare --mount)");
        return;
    }
    let base = rd_chain(tmp.path());
    for mode in ["--dry-run", "--factor-loops=3"] {
        let mut cmd = Command::new("unshare");
        cmd.current_dir(tmp.path())
            .env_clear()
            .envs(base.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .args([
                "--mount",
                "sh",
                "-c",
                "root=\"$1\"; shift; mount --bind -o ro \"$root\" \"$root\" && exec \"$@\"",
                "sh",
            ])
            .arg(&root)
            .arg(base.get_program())
            .arg("--log-root")
            .arg(&root)
            .args(["--hook", "off", mode, "--rdagent"])
            .arg(script("fake-rdagent"));
        let (_, err) = expect_code(&mut cmd, 2);
        assert!(
            err.contains("log root") && err.contains("Read-only file system"),
            "{mode}: {err}"
        );
    }
}

#[test]
fn a_kill_after_beyond_a_day_is_refused_before_anything_runs() {
    let tmp = TempDir::new("kill-after");
    for huge in ["86401", "9223372036854775808"] {
        let (_, err) = expect_code(
            rd_chain(tmp.path()).args(["--dry-run", "--hook", "off", "--kill-after", huge]),
            2,
        );
        assert!(
            err.contains("--kill-after") && err.contains("86400"),
            "{err}"
        );
    }
    assert!(!tmp.join("log").exists());
}

/// The model phase run by a shell script that writes the bytes of PYTHONPATH and LOG_TRACE_PATH it got.
#[cfg(unix)]
#[test]
fn environment_paths_that_are_not_utf8_reach_rdagent_unchanged() {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let tmp = TempDir::new("non-utf8-env");
    let log = factor_log(tmp.path(), &[]);
    let seen = tmp.join("seen");
    std::fs::create_dir(&seen).unwrap();
    let rdagent = sh_rdagent(
        tmp.path(),
        &format!(
            "printf '%s' \"$PYTHONPATH\" > '{0}/pythonpath'\nprintf '%s' \"$LOG_TRACE_PATH\" > '{0}/log_trace_path'",
            seen.display()
        ),
    );
    let mut root = tmp.path().as_os_str().as_bytes().to_vec();
    root.extend_from_slice(b"/r\xe9sultats-log");
    let root = OsString::from_vec(root);
    let user_pythonpath = OsString::from_vec(b"/opt/\xff-lib".to_vec());
    let mut cmd = rd_chain(tmp.path());
    cmd.args(["--model-loops", "1", "--hook", "on", "--sota-log"])
        .arg(&log)
        .env("RD_CHAIN_LOG_ROOT", &root)
        .env("RDAGENT_BIN", &rdagent)
        .env("PYTHONPATH", &user_pythonpath);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&cmd, &out));
    let pythonpath = std::fs::read(seen.join("pythonpath")).unwrap();
    assert!(
        pythonpath.ends_with(b":/opt/\xff-lib") && pythonpath.starts_with(root.as_bytes()),
        "{}",
        String::from_utf8_lossy(&pythonpath)
    );
    let log_trace = std::fs::read(seen.join("log_trace_path")).unwrap();
    assert!(
        log_trace.starts_with(root.as_bytes()),
        "{}",
        String::from_utf8_lossy(&log_trace)
    );
    assert!(Path::new(&root).join("rd-chain").is_dir());
    assert!(!tmp.join("log").exists(), "no ./log fallback");

    // A variable read as text that is not UTF-8 is refused, naming it.
    let (_, err) = expect_code(
        rd_chain(tmp.path())
            .args(["--dry-run", "--hook", "off"])
            .env("RD_CHAIN_MODEL_LOOPS", OsString::from_vec(b"\xff".to_vec())),
        2,
    );
    assert!(
        err.contains("RD_CHAIN_MODEL_LOOPS") && err.contains("UTF-8"),
        "{err}"
    );
}

#[test]
fn json_is_the_last_line_even_after_output_without_a_final_newline() {
    let tmp = TempDir::new("json-newline");
    let log = factor_log(tmp.path(), &[]);
    let rdagent = sh_rdagent(tmp.path(), "printf 'model phase done, no newline'");
    let mut cmd = rd_chain(tmp.path());
    cmd.args(["--model-loops", "1", "--hook", "off", "--json", "--rdagent"])
        .arg(&rdagent)
        .arg("--sota-log")
        .arg(&log);
    let (stdout, _) = expect_code(&mut cmd, 0);
    let last = stdout.lines().last().unwrap_or("");
    let record = parse(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {stdout:?}"));
    assert_eq!(record.get("state").str(), "done");
    assert!(
        stdout.starts_with("model phase done, no newline\n"),
        "{stdout:?}"
    );
}

/// Terminal escapes in a recorded workspace path (the workspace root's name holds ESC sequences) are printed
/// escaped by `inspect`, `list`, `resolve`'s errors and the dry run, and exactly by `--json`.
#[cfg(unix)]
#[test]
fn escape_sequences_in_recorded_paths_never_reach_the_terminal_raw() {
    let tmp = TempDir::new("escapes");
    let evil = tmp.join("ws\x1b[31mRED\x1b]0;title\x07\u{9b}2J");
    let log = factor_log(tmp.path(), &[("WORKSPACE_PATH", evil.as_os_str())]);
    let no_raw = |text: &str, what: &str| {
        assert!(
            !text.contains('\x1b') && !text.contains('\x07') && !text.contains('\u{9b}'),
            "{what} printed a raw control character: {text:?}"
        );
    };
    let (out, err) = expect_code(rd_chain(tmp.path()).arg("inspect").arg(&log), 0);
    no_raw(&out, "inspect");
    no_raw(&err, "inspect's stderr");
    assert!(
        out.contains("ws\\x1b[31mRED\\x1b]0;title\\x07\\u{9b}2J"),
        "{out}"
    );
    let (out, _) = expect_code(
        rd_chain(tmp.path()).arg("list").arg(log.parent().unwrap()),
        0,
    );
    no_raw(&out, "list");
    // JSON keeps the exact text, escaped per JSON.
    let (out, _) = expect_code(
        rd_chain(tmp.path()).args(["inspect", "--json"]).arg(&log),
        0,
    );
    assert!(out.contains("\\u001b[31mRED"), "{out}");
    // The dry run shows the resolved workspace.
    let (out, err) = expect_code(
        rd_chain(tmp.path())
            .args(["--dry-run", "--hook", "off", "--rdagent"])
            .arg(script("fake-rdagent"))
            .arg("--sota-log")
            .arg(&log),
        0,
    );
    no_raw(&out, "the dry run");
    no_raw(&err, "the dry run's warnings");
    // With the workspaces gone, resolve fails naming the recorded path: escaped.
    std::fs::remove_dir_all(&evil).unwrap();
    let out = run(rd_chain(tmp.path()).arg("resolve").arg(&log));
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    no_raw(&err, "resolve's error");
    assert!(err.contains("\\x1b[31m"), "{err}");

    // A class name with escapes: the pickles' class name replaced by one of the same length (the pickle stays
    // well formed; the HMAC no longer matches, which rd-chain reports and reads anyway).
    let evil_class: &[u8] = b"\x1b[31mEvilClass\x07\x1b[0mX";
    let name: &[u8] = b"QlibFactorExperiment\x94";
    assert_eq!(evil_class.len() + 1, name.len());
    let session = log.join("__session__");
    let mut patched = 0;
    for loop_dir in std::fs::read_dir(&session).unwrap() {
        for file in std::fs::read_dir(loop_dir.unwrap().path()).unwrap() {
            let file = file.unwrap().path();
            let mut bytes = std::fs::read(&file).unwrap();
            while let Some(at) = bytes.windows(name.len()).position(|w| w == name) {
                bytes[at..at + evil_class.len()].copy_from_slice(evil_class);
                patched += 1;
            }
            std::fs::write(&file, bytes).unwrap();
        }
    }
    assert!(
        patched > 0,
        "no class name to patch in {}",
        session.display()
    );
    let out = run(rd_chain(tmp.path()).arg("inspect").arg(&log));
    let text = String::from_utf8_lossy(&out.stdout);
    no_raw(&text, "inspect with an escaping class name");
    no_raw(&String::from_utf8_lossy(&out.stderr), "inspect's stderr");
    assert!(text.contains("\\x1b[31mEvilClass\\x07\\x1b[0mX"), "{text}");
}

/// The run record cannot be rewritten after the factor phase (its file was replaced by a directory): the
/// chain warns loudly naming the record, runs the model phase anyway, and exits 1 at the end saying so.
#[test]
fn a_run_record_that_cannot_be_written_mid_chain_does_not_abort_the_chain() {
    let tmp = TempDir::new("record-stuck");
    let calls = tmp.join("calls.jsonl");
    let mut cmd = rd_chain(tmp.path());
    cmd.args([
        "--factor-loops",
        "3",
        "--model-loops",
        "1",
        "--hook",
        "off",
        "--json",
        "--rdagent",
    ])
    .arg(script("fake-rdagent"))
    .env("FAKE_RDAGENT_RECORD", &calls)
    .env("FAKE_RDAGENT_STEP_SECONDS", "0.1")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    // Once the factor phase has started (the record lists it), make the record unwritable.
    let records = tmp.join("log/rd-chain");
    let start = std::time::Instant::now();
    let record = loop {
        let found = std::fs::read_dir(&records).ok().and_then(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.extension().is_some_and(|x| x == "json"))
        });
        if let Some(p) = found {
            if std::fs::read_to_string(&p).is_ok_and(|t| t.contains("fin_factor")) {
                break p;
            }
        }
        assert!(
            start.elapsed().as_secs() < 30,
            "the factor phase never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    std::fs::remove_file(&record).unwrap();
    std::fs::create_dir(&record).unwrap();
    std::fs::write(record.join("in-the-way"), b"x").unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let text = std::fs::read_to_string(&calls).unwrap();
    assert!(
        text.contains("fin_model"),
        "the model phase must still run: {err}"
    );
    assert!(
        err.contains("warning")
            && err.contains("stale")
            && err.contains(&record.display().to_string()),
        "{err}"
    );
    assert!(err.contains("the chain ended (0)"), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = parse(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last.get("state").str(), "done");
    let leftovers: Vec<String> = std::fs::read_dir(&records)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
