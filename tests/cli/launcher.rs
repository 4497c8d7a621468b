//! The chain end to end with the simulated rdagent (`scripts/fake-rdagent`): phase order, exact argv and
//! environment (read from the fake's records), failures, dry runs, signals, exit codes, paths with spaces.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::json_read::{parse, J};
use crate::util::{
    argv, describe, env_of, expect_code, rd_chain, records, run, run_records, script, TempDir,
};

/// `rd-chain` in `dir` with the fake rdagent and its record file.
fn chain(dir: &Path, record: &Path) -> Command {
    let mut cmd = rd_chain(dir);
    cmd.arg("--rdagent")
        .arg(script("fake-rdagent"))
        .env("FAKE_RDAGENT_RECORD", record);
    cmd
}

fn subcommand(rec: &J) -> String {
    argv(rec)
        .into_iter()
        .find(|a| a.starts_with("fin_"))
        .unwrap_or_default()
}

#[test]
fn help_teaches_flags_env_and_exit_codes() {
    let tmp = TempDir::new("help");
    let (out, _) = expect_code(rd_chain(tmp.path()).arg("--help"), 0);
    for needle in [
        "--factor-loops",
        "--sota-log",
        "LOAD_SOTA_FROM_LOG",
        "SOTA_WORKSPACE_PATH",
        "--dry-run",
        "130",
        "rd-chain resolve PATH",
    ] {
        assert!(out.contains(needle), "help lacks {needle}:\n{out}");
    }
    let (out, _) = expect_code(rd_chain(tmp.path()).arg("--version"), 0);
    assert!(out.starts_with("rd-chain "), "{out}");
}

#[test]
fn usage_errors_exit_2_and_name_the_problem() {
    let tmp = TempDir::new("usage");
    let (_, err) = expect_code(rd_chain(tmp.path()).arg("--model-loops"), 2);
    assert!(err.contains("missing value for --model-loops"), "{err}");
    let (_, err) = expect_code(rd_chain(tmp.path()).env("LOAD_SOTA_FROM_LOG", "true"), 2);
    assert!(err.contains("SOTA_LOG_PATH is not set"), "{err}");
    let (_, err) = expect_code(
        rd_chain(tmp.path()).env("USE_ALPHA_FACTORS", "sometimes"),
        2,
    );
    assert!(
        err.contains("USE_ALPHA_FACTORS") && err.contains("sometimes"),
        "{err}"
    );
}

#[test]
fn the_chain_runs_both_phases_with_the_sota_factors_handed_over() {
    let tmp = TempDir::new("chain");
    let record = tmp.join("calls.jsonl");
    let (out, err) = expect_code(
        chain(tmp.path(), &record)
            .args(["--factor-loops", "5", "--model-loops", "2"])
            .env("FAKE_RDAGENT_ACCEPT", "0,2,3")
            .env("LOAD_SOTA_FROM_LOG", "false"),
        0,
    );
    let calls = records(&record);
    assert_eq!(calls.len(), 2, "{out}\n{err}");
    let (factor, model) = (&calls[0], &calls[1]);
    let fake = script("fake-rdagent");
    let fake = fake.to_str().unwrap();
    assert_eq!(argv(factor)[1..], ["fin_factor", "--loop-n", "5"]);
    assert_eq!(argv(model)[1..], ["fin_model", "--loop-n", "2"]);
    assert!(argv(factor)[0].ends_with("fake-rdagent") && fake.ends_with("fake-rdagent"));
    assert_eq!(factor.get("cwd").str(), tmp.path().to_str().unwrap());

    // Fresh, distinct, absolute log dirs under ./log.
    let flog = env_of(factor, "LOG_TRACE_PATH").expect("factor LOG_TRACE_PATH");
    let mlog = env_of(model, "LOG_TRACE_PATH").expect("model LOG_TRACE_PATH");
    assert!(
        flog.starts_with(tmp.join("log").to_str().unwrap()),
        "{flog}"
    );
    assert!(
        mlog.starts_with(tmp.join("log").to_str().unwrap()),
        "{mlog}"
    );
    assert_ne!(flog, mlog);
    assert!(Path::new(flog).join("__session__").is_dir());
    // The factor phase gets no SOTA variables of ours.
    assert_eq!(env_of(factor, "SOTA_WORKSPACE_PATH"), None);

    // The model phase: the SOTA of loop 3 (the last accepted), as the simulated rdagent reported it wrote.
    let sota_line = out
        .lines()
        .filter_map(|l| parse(l.trim()).ok())
        .find(|j| j.opt("sota_workspace").is_some())
        .unwrap_or_else(|| panic!("the fake prints its SOTA as JSON:\n{out}"));
    assert_eq!(sota_line.get("sota_loop").int(), 3);
    let ws = sota_line.get("sota_workspace").str();
    let ws = if Path::new(ws).is_absolute() {
        PathBuf::from(ws)
    } else {
        tmp.join(ws)
    };
    assert_eq!(env_of(model, "SOTA_WORKSPACE_PATH"), ws.to_str());
    let parquet = ws.join("combined_factors_df.parquet");
    assert_eq!(env_of(model, "SOTA_FACTORS_PATH"), parquet.to_str());
    assert_eq!(env_of(model, "LOAD_SOTA_FROM_WORKSPACE"), Some("true"));
    assert_eq!(env_of(model, "LOAD_SOTA_FROM_LOG"), Some("false"));
    assert_eq!(env_of(model, "SOTA_LOG_PATH"), Some(flog));
    assert_eq!(env_of(model, "USE_ALPHA_FACTORS"), Some("true"));

    // The run record tells the same story.
    let recs = run_records(&tmp.join("log"));
    assert_eq!(recs.len(), 1);
    let rec = &recs[0];
    assert_eq!(rec.get("state").str(), "done");
    assert_eq!(rec.get("exit_code").int(), 0);
    assert_eq!(rec.get("sota").get("loop").int(), 3);
    assert_eq!(rec.get("sota").get("workspace").str(), ws.to_str().unwrap());
    let phases = rec.get("phases").arr();
    assert_eq!(phases.len(), 2);
    assert_eq!(phases[0].get("phase").str(), "factor");
    assert_eq!(phases[1].get("exit_code").int(), 0);
    // The summary names both log dirs and the SOTA.
    assert!(err.contains(flog) && err.contains(mlog), "{err}");
    assert!(err.contains("loop 3"), "{err}");

    // `list` shows the two runs, not rd-chain's own record dir.
    let (listing, _) = expect_code(rd_chain(tmp.path()).arg("list"), 0);
    let lines: Vec<&str> = listing.lines().skip(1).collect();
    assert_eq!(lines.len(), 2, "{listing}");
    assert!(!listing.contains("rd-chain"), "{listing}");
}

#[test]
fn the_model_phase_child_has_the_hook_and_reports_the_factors_used() {
    let tmp = TempDir::new("hooked");
    let record = tmp.join("calls.jsonl");
    let (out, err) = expect_code(
        chain(tmp.path(), &record)
            .args(["--factor-loops", "3", "--model-loops", "1", "--hook", "on"])
            .env("PYTHONPATH", "/some/user/dir"),
        0,
    );
    let calls = records(&record);
    let model = &calls[1];
    let pythonpath = env_of(model, "PYTHONPATH").expect("PYTHONPATH");
    let mut parts = pythonpath.split(':');
    let hook_dir = parts.next().unwrap();
    assert!(
        hook_dir.starts_with(tmp.join("log/rd-chain").to_str().unwrap()),
        "{pythonpath}"
    );
    assert_eq!(
        parts.next(),
        Some("/some/user/dir"),
        "the user's PYTHONPATH is kept"
    );
    assert!(Path::new(hook_dir).join("sitecustomize.py").is_file());
    let loaded = model.get("sitecustomize").str();
    assert!(loaded.starts_with(hook_dir), "{loaded}");
    let state = model.get("hook_state");
    assert!(state.get("armed").bool(), "{state:?}");
    // The factor phase never gets the hook.
    assert!(env_of(&calls[0], "PYTHONPATH").is_none_or(|p| !p.contains("rd-chain")));
    // With pandas the double's model runner trains on the SOTA factors; without it the fake says so.
    let trained = out.contains("trained with conf_sota_factors_model.yaml");
    let no_pandas = out.contains("pandas is not installed");
    assert!(trained || no_pandas, "{out}\n{err}");
    if std::env::var_os("RD_CHAIN_TEST_REQUIRE_PANDAS").is_some() {
        assert!(
            trained,
            "pandas is required in this test run:\n{out}\n{err}"
        );
    }
    // The hook reported back what reached the model runner; the record and the summary say it.
    let report = env_of(model, "RD_CHAIN_HOOK_REPORT").expect("RD_CHAIN_HOOK_REPORT");
    assert!(report.starts_with(hook_dir), "{report}");
    let rec = &run_records(&tmp.join("log"))[0];
    let used = rec.get("hook_report").get("used").int();
    if trained {
        assert_eq!(used, 1, "one model loop, one hand-over");
        assert!(
            err.contains(
                "hook   rd-chain's hook handed the SOTA factors to RD-Agent's model runner once"
            ),
            "{err}"
        );
    } else {
        assert_eq!(used, 0);
        assert!(err.contains("never handed the SOTA factors"), "{err}");
    }
}

#[test]
fn a_model_phase_the_factors_never_reached_is_reported_loudly() {
    let tmp = TempDir::new("neverused");
    let record = tmp.join("calls.jsonl");
    let (_, err) = expect_code(
        chain(tmp.path(), &record)
            .args(["--factor-loops", "2", "--model-loops", "1", "--hook", "on"])
            .env("FAKE_RDAGENT_ACCEPT", "0")
            .env("FAKE_RDAGENT_NO_DEVELOP", "1"),
        0,
    );
    assert!(
        err.contains(
            "warning: the model phase finished, but rd-chain's hook never handed the SOTA factors"
        ),
        "{err}"
    );
    assert!(
        err.contains("hook   WARNING"),
        "the summary repeats it: {err}"
    );
    let rec = &run_records(&tmp.join("log"))[0];
    assert_eq!(rec.get("hook_report").get("armed").int(), 0);
    assert_eq!(rec.get("hook_report").get("used").int(), 0);
}

#[test]
fn hook_off_sets_only_the_variables() {
    let tmp = TempDir::new("hookoff");
    let record = tmp.join("calls.jsonl");
    expect_code(
        chain(tmp.path(), &record).args([
            "--factor-loops",
            "2",
            "--model-loops",
            "1",
            "--hook",
            "off",
        ]),
        0,
    );
    let calls = records(&record);
    assert!(env_of(&calls[1], "PYTHONPATH").is_none());
    assert!(env_of(&calls[1], "SOTA_WORKSPACE_PATH").is_some());
    assert!(!tmp.join("log/rd-chain").read_dir().unwrap().any(|e| e
        .unwrap()
        .path()
        .extension()
        .is_some_and(|x| x == "hook")));
}

#[test]
fn a_failing_factor_phase_stops_the_chain_with_its_code() {
    let tmp = TempDir::new("fail");
    let record = tmp.join("calls.jsonl");
    let (_, err) = expect_code(
        chain(tmp.path(), &record)
            .args(["--factor-loops", "3", "--model-loops", "2"])
            .env("FAKE_RDAGENT_FAIL", "fin_factor:7"),
        7,
    );
    let calls = records(&record);
    assert_eq!(calls.len(), 1, "no model phase after a failed factor phase");
    let flog = env_of(&calls[0], "LOG_TRACE_PATH").unwrap();
    assert!(
        err.contains("factor phase failed") && err.contains(flog),
        "{err}"
    );
    let rec = &run_records(&tmp.join("log"))[0];
    assert_eq!(rec.get("state").str(), "failed");
    assert_eq!(rec.get("exit_code").int(), 7);
}

#[test]
fn rdagent_missing_exits_4_with_an_install_hint() {
    let tmp = TempDir::new("missing");
    let (_, err) = expect_code(
        rd_chain(tmp.path())
            .env("PATH", tmp.path())
            .args(["--factor-loops", "1"]),
        4,
    );
    assert!(
        err.contains("not found on PATH") && err.contains("--rdagent"),
        "{err}"
    );
    let (_, err) = expect_code(rd_chain(tmp.path()).args(["--rdagent", "./nope"]), 4);
    assert!(err.contains("nope"), "{err}");
    assert!(
        !tmp.join("log").exists(),
        "nothing is written before the preflight passes"
    );
}

#[test]
fn dry_run_runs_and_writes_nothing_and_its_json_parses() {
    let tmp = TempDir::new("dry");
    let record = tmp.join("calls.jsonl");
    let (out, _) = expect_code(
        chain(tmp.path(), &record)
            .args(["--dry-run", "--json", "--model-loops", "4"])
            .env("SOTA_WORKSPACE_PATH", "/ignored/without/switch"),
        0,
    );
    assert!(!record.exists(), "the dry run started rdagent");
    assert!(
        !tmp.join("log").exists(),
        "the dry run wrote into the log root"
    );
    let plan = parse(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert!(plan.get("can_run").bool());
    assert_eq!(plan.get("exit_code").int(), 0);
    let s = plan.get("settings");
    assert_eq!(s.get("model_loops").get("value").int(), 4);
    assert_eq!(s.get("model_loops").get("origin").str(), "flag model-loops");
    assert_eq!(s.get("factor_loops").get("origin").str(), "default");
    assert_eq!(plan.get("sota").get("source").str(), "factor-phase");
    let others = plan.get("sota").get("others").arr();
    assert!(others
        .iter()
        .any(|o| o.str().contains("LOAD_SOTA_FROM_WORKSPACE is not set")));
    let phases = plan.get("phases").arr();
    assert_eq!(phases.len(), 2);
    let argv: Vec<&str> = phases[0].get("argv").arr().iter().map(J::str).collect();
    assert_eq!(argv[1..], ["fin_factor", "--loop-n", "10"]);
    let env = phases[1].get("env");
    assert_eq!(env.get("LOAD_SOTA_FROM_WORKSPACE").str(), "true");
    assert!(env
        .get("SOTA_WORKSPACE_PATH")
        .get("pending")
        .str()
        .contains("factor"));
    assert!(!plan.get("warnings").arr().is_empty());

    // Text form, and the dry-run exit code is what the real run would give.
    let (text, _) = expect_code(chain(tmp.path(), &record).arg("-n"), 0);
    assert!(
        text.contains("fin_factor --loop-n 10") && text.contains("Result: the plan can run"),
        "{text}"
    );
    let (text, _) = expect_code(
        chain(tmp.path(), &record).args(["--dry-run", "--sota-workspace", "no/such/ws"]),
        3,
    );
    assert!(text.contains("would stop with exit 3"), "{text}");
    expect_code(
        rd_chain(tmp.path())
            .env("PATH", tmp.path())
            .arg("--dry-run"),
        4,
    );
    assert!(!record.exists() && !tmp.join("log").exists());
}

/// A factor log written by the simulated rdagent, to use as an existing SOTA source.
fn factor_log(dir: &Path) -> PathBuf {
    let log = dir.join("old-log/2026-01-14_16-14-52-886218");
    let mut cmd = Command::new(script("fake-rdagent"));
    cmd.args(["fin_factor", "--loop-n", "4"])
        .current_dir(dir)
        .env("LOG_TRACE_PATH", &log)
        .env("FAKE_RDAGENT_ACCEPT", "1")
        .stdout(Stdio::null());
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", describe(&cmd, &out));
    log
}

#[test]
fn an_existing_sota_log_skips_the_factor_phase_by_every_route() {
    let tmp = TempDir::new("sotalog");
    let log = factor_log(tmp.path());
    let record = tmp.join("calls.jsonl");
    let log_os = log.as_os_str().to_os_string();
    // (flags, environment) of each route to the same SOTA source.
    type Route = (
        Vec<std::ffi::OsString>,
        Vec<(&'static str, std::ffi::OsString)>,
    );
    let routes: Vec<Route> = vec![
        (vec!["--sota-log".into(), log_os.clone()], vec![]),
        (
            vec![],
            vec![
                ("LOAD_SOTA_FROM_LOG", "TRUE".into()),
                ("SOTA_LOG_PATH", log_os.clone()),
            ],
        ),
        // The log source wins over a workspace source that is also switched on.
        (
            vec![],
            vec![
                ("LOAD_SOTA_FROM_LOG", "1".into()),
                ("SOTA_LOG_PATH", log_os.clone()),
                ("LOAD_SOTA_FROM_WORKSPACE", "yes".into()),
                ("SOTA_WORKSPACE_PATH", "/does/not/matter".into()),
            ],
        ),
    ];
    for (flags, env) in routes {
        let _ = std::fs::remove_file(&record);
        let mut cmd = chain(tmp.path(), &record);
        cmd.args(["--model-loops", "1"]).args(&flags).envs(env);
        expect_code(&mut cmd, 0);
        let calls = records(&record);
        assert_eq!(calls.len(), 1);
        assert_eq!(subcommand(&calls[0]), "fin_model");
        let ws = env_of(&calls[0], "SOTA_WORKSPACE_PATH").unwrap();
        assert!(Path::new(ws).join("combined_factors_df.parquet").is_file());
        assert_eq!(env_of(&calls[0], "SOTA_LOG_PATH"), log.to_str());
    }
    // Asking for factor loops on the command line at the same time is a usage error.
    let (_, err) = expect_code(
        chain(tmp.path(), &record)
            .arg("--sota-log")
            .arg(&log)
            .args(["--factor-loops", "3"]),
        2,
    );
    assert!(err.contains("conflicts"), "{err}");
    // A workspace given as is goes through unchanged, and SOTA_LOG_PATH is removed for the child.
    let ws = PathBuf::from(env_of(&records(&record)[0], "SOTA_WORKSPACE_PATH").unwrap());
    let _ = std::fs::remove_file(&record);
    expect_code(
        chain(tmp.path(), &record)
            .env("LOAD_SOTA_FROM_WORKSPACE", "on")
            .env("SOTA_WORKSPACE_PATH", &ws)
            .env("SOTA_LOG_PATH", "/stale")
            .args(["--model-loops", "1"]),
        0,
    );
    let calls = records(&record);
    assert_eq!(env_of(&calls[0], "SOTA_WORKSPACE_PATH"), ws.to_str());
    assert_eq!(env_of(&calls[0], "SOTA_LOG_PATH"), None);
    // A SOTA source that does not resolve stops the run before any phase (exit 3).
    let _ = std::fs::remove_file(&record);
    let (_, err) = expect_code(
        chain(tmp.path(), &record).args(["--sota-workspace", "missing-ws", "--model-loops", "1"]),
        3,
    );
    assert!(err.contains("missing-ws"), "{err}");
    assert!(records(&record).is_empty());
}

#[test]
fn model_loops_zero_stops_after_resolving() {
    let tmp = TempDir::new("noloops");
    let record = tmp.join("calls.jsonl");
    let (_, err) = expect_code(
        chain(tmp.path(), &record).args(["--factor-loops", "2", "--model-loops", "0"]),
        0,
    );
    let calls = records(&record);
    assert_eq!(calls.len(), 1);
    assert_eq!(subcommand(&calls[0]), "fin_factor");
    assert!(err.contains("SOTA"), "{err}");
}

#[test]
fn paths_with_spaces_and_non_ascii_work() {
    let tmp = TempDir::new("space");
    let dir = tmp.join("my project ü");
    std::fs::create_dir_all(&dir).unwrap();
    let record = tmp.join("calls.jsonl");
    expect_code(
        chain(&dir, &record).args([
            "--factor-loops",
            "2",
            "--model-loops",
            "1",
            "--log-root",
            "run logs",
        ]),
        0,
    );
    let calls = records(&record);
    assert_eq!(calls.len(), 2);
    let ws = env_of(&calls[1], "SOTA_FACTORS_PATH").unwrap();
    assert!(
        ws.contains("my project ü") && Path::new(ws).is_file(),
        "{ws}"
    );
    assert!(env_of(&calls[0], "LOG_TRACE_PATH")
        .unwrap()
        .contains("run logs"));
}

#[test]
fn a_log_trace_path_the_user_set_is_used_by_the_factor_phase() {
    let tmp = TempDir::new("usertrace");
    let record = tmp.join("calls.jsonl");
    let mine = tmp.join("my-trace");
    expect_code(
        chain(tmp.path(), &record)
            .env("LOG_TRACE_PATH", &mine)
            .args(["--factor-loops", "2", "--model-loops", "1"]),
        0,
    );
    let calls = records(&record);
    assert_eq!(env_of(&calls[0], "LOG_TRACE_PATH"), mine.to_str());
    assert_ne!(env_of(&calls[1], "LOG_TRACE_PATH"), mine.to_str());
    assert_eq!(env_of(&calls[1], "SOTA_LOG_PATH"), mine.to_str());
}

// ---- signals -----------------------------------------------------------------------------------------------

#[cfg(unix)]
mod signals {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Child;
    use std::time::{Duration, Instant};

    fn wait_for_file(path: &Path, child: &mut Child) -> String {
        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(path) {
                if !text.trim().is_empty() {
                    return text.trim().to_string();
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("rd-chain exited early with {status}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{} never appeared",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                panic!("rd-chain did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn alive(pid: &str) -> bool {
        // A reaped child has no /proc entry; a zombie would still have one, so this also checks reaping.
        Path::new("/proc").join(pid).exists()
    }

    fn send(sig: &str, target: &str) {
        let status = Command::new("kill")
            .args([sig, "--", target])
            .status()
            .unwrap();
        assert!(status.success(), "kill {sig} {target}");
    }

    /// Start the chain with the factor phase hanging; returns (rd-chain, fake's pid, record file).
    fn hanging(tmp: &TempDir, extra: &[(&str, &str)], args: &[&str]) -> (Child, String, PathBuf) {
        let record = tmp.join("calls.jsonl");
        let pidfile = tmp.join("fake.pid");
        let mut cmd = chain(tmp.path(), &record);
        cmd.args(["--factor-loops", "3", "--model-loops", "1"])
            .args(args)
            .env("FAKE_RDAGENT_HANG", "fin_factor")
            .env("FAKE_RDAGENT_PIDFILE", &pidfile)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, like a job in a terminal: Ctrl-C is sent to the whole group.
            .process_group(0);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let pid = wait_for_file(&pidfile, &mut child);
        (child, pid, record)
    }

    fn stderr_of(child: &mut Child) -> String {
        let mut s = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut s);
        }
        s
    }

    #[test]
    fn ctrl_c_reaches_the_child_and_the_chain_exits_130() {
        let tmp = TempDir::new("sigint");
        let (mut child, pid, record) = hanging(&tmp, &[], &[]);
        send("-INT", &format!("-{}", child.id()));
        let status = wait_exit(&mut child, Duration::from_secs(20));
        let err = stderr_of(&mut child);
        assert_eq!(status.code(), Some(130), "{err}");
        assert!(!alive(&pid), "the fake rdagent survived");
        assert_eq!(records(&record).len(), 1, "no model phase after Ctrl-C");
        assert!(err.contains("interrupted") && err.contains("log"), "{err}");
        let rec = &run_records(&tmp.join("log"))[0];
        assert_eq!(rec.get("state").str(), "interrupted");
    }

    #[test]
    fn sigterm_is_forwarded_and_the_chain_exits_143() {
        let tmp = TempDir::new("sigterm");
        let (mut child, pid, record) = hanging(&tmp, &[], &[]);
        send("-TERM", &child.id().to_string());
        let status = wait_exit(&mut child, Duration::from_secs(20));
        let err = stderr_of(&mut child);
        assert_eq!(status.code(), Some(143), "{err}");
        assert!(!alive(&pid), "the fake rdagent survived");
        assert_eq!(records(&record).len(), 1);
    }

    #[test]
    fn sighup_exits_129() {
        let tmp = TempDir::new("sighup");
        let (mut child, pid, _) = hanging(&tmp, &[], &[]);
        send("-HUP", &child.id().to_string());
        let status = wait_exit(&mut child, Duration::from_secs(20));
        assert_eq!(status.code(), Some(129), "{}", stderr_of(&mut child));
        assert!(!alive(&pid));
    }

    #[test]
    fn a_child_ignoring_sigterm_is_killed_after_the_grace_period() {
        let tmp = TempDir::new("sigkill");
        let (mut child, pid, _) = hanging(
            &tmp,
            &[("FAKE_RDAGENT_IGNORE_TERM", "1")],
            &["--kill-after", "1"],
        );
        let start = Instant::now();
        send("-TERM", &child.id().to_string());
        let status = wait_exit(&mut child, Duration::from_secs(20));
        assert_eq!(status.code(), Some(143), "{}", stderr_of(&mut child));
        assert!(
            start.elapsed() >= Duration::from_millis(900),
            "SIGKILL came before the grace period"
        );
        assert!(!alive(&pid));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn rdagent_does_not_outlive_an_rd_chain_killed_with_sigkill() {
        let tmp = TempDir::new("sigkill-parent");
        let (mut child, pid, _) = hanging(&tmp, &[], &[]);
        send("-KILL", &child.id().to_string());
        let status = wait_exit(&mut child, Duration::from_secs(10));
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        // The orphan gets SIGTERM from the kernel (parent-death signal); init reaps it.
        let start = Instant::now();
        while alive(&pid) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "rdagent {pid} outlived rd-chain"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Alive and not a zombie waiting for its parent.
    fn running(pid: &str) -> bool {
        match std::fs::read_to_string(Path::new("/proc").join(pid).join("stat")) {
            Err(_) => false,
            Ok(stat) => stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z"),
        }
    }

    fn gone_within(pids: &[String], limit: Duration) -> Vec<String> {
        let start = Instant::now();
        loop {
            let left: Vec<String> = pids.iter().filter(|p| running(p)).cloned().collect();
            if left.is_empty() || start.elapsed() > limit {
                return left;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill_all(pids: &[String]) {
        for p in pids {
            let _ = Command::new("kill").args(["-KILL", p]).status();
        }
    }

    /// The chain with the factor phase hanging after starting a worker and a grandchild that ignore every stop
    /// signal; returns (rd-chain, pids of rdagent, worker, grandchild).
    fn with_workers(tmp: &TempDir, extra: &[(&str, &str)]) -> (Child, Vec<String>) {
        let workers = tmp.join("workers.pid");
        let workers_env = workers.to_str().unwrap().to_string();
        let mut env = vec![("FAKE_RDAGENT_WORKERS", workers_env.as_str())];
        env.extend_from_slice(extra);
        let (mut child, pid, _) = hanging(tmp, &env, &["--kill-after", "1"]);
        let listed = wait_for_file(&workers, &mut child);
        let mut pids = vec![pid];
        pids.extend(listed.lines().map(str::to_string));
        assert_eq!(pids.len(), 3, "{pids:?}");
        (child, pids)
    }

    #[test]
    fn sigterm_ends_rdagents_whole_process_tree() {
        let tmp = TempDir::new("tree-term");
        let (mut child, pids) = with_workers(&tmp, &[]);
        send("-TERM", &child.id().to_string());
        let status = wait_exit(&mut child, Duration::from_secs(20));
        let left = gone_within(&pids, Duration::from_secs(5));
        kill_all(&left);
        assert_eq!(status.code(), Some(143), "{}", stderr_of(&mut child));
        assert!(
            left.is_empty(),
            "survived SIGTERM of rd-chain: {left:?} of {pids:?}"
        );
    }

    #[test]
    fn a_worker_that_left_the_group_is_found_and_killed() {
        let tmp = TempDir::new("tree-escape");
        let (mut child, pids) = with_workers(&tmp, &[("FAKE_RDAGENT_WORKER_ESCAPES", "1")]);
        send("-HUP", &child.id().to_string());
        let status = wait_exit(&mut child, Duration::from_secs(20));
        let left = gone_within(&pids, Duration::from_secs(5));
        kill_all(&left);
        assert_eq!(status.code(), Some(129), "{}", stderr_of(&mut child));
        assert!(left.is_empty(), "survived: {left:?} of {pids:?}");
    }

    /// Ctrl-C (SIGINT to rd-chain's group, as a terminal sends it) to a run with workers started with `env`:
    /// rd-chain exits 130 and no worker survives.
    fn ctrl_c_ends_every_worker(name: &str, env: &[(&str, &str)]) {
        let tmp = TempDir::new(name);
        let (mut child, pids) = with_workers(&tmp, env);
        send("-INT", &format!("-{}", child.id()));
        let status = wait_exit(&mut child, Duration::from_secs(20));
        let left = gone_within(&pids, Duration::from_secs(5));
        kill_all(&left);
        assert_eq!(status.code(), Some(130), "{}", stderr_of(&mut child));
        assert!(left.is_empty(), "survived: {left:?} of {pids:?}");
    }

    #[test]
    fn ctrl_c_escalation_ends_the_whole_tree() {
        ctrl_c_ends_every_worker(
            "tree-int",
            &[
                ("FAKE_RDAGENT_IGNORE_INT", "1"),
                ("FAKE_RDAGENT_IGNORE_TERM", "1"),
            ],
        );
    }

    #[test]
    fn nothing_of_a_term_ignoring_rdagent_outlives_a_sigkilled_rd_chain() {
        let tmp = TempDir::new("tree-kill");
        let (mut child, pids) = with_workers(&tmp, &[("FAKE_RDAGENT_IGNORE_TERM", "1")]);
        send("-KILL", &child.id().to_string());
        let _ = wait_exit(&mut child, Duration::from_secs(10));
        // The guard sends SIGTERM at once, SIGKILL after --kill-after (1 s).
        let left = gone_within(&pids, Duration::from_secs(10));
        kill_all(&left);
        assert!(left.is_empty(), "outlived rd-chain: {left:?} of {pids:?}");
    }

    #[test]
    fn a_worker_that_left_the_group_does_not_outlive_a_sigkilled_rd_chain() {
        let tmp = TempDir::new("tree-escape-kill");
        // A bystander: the same program running the same worker code (its grandchild also leaves its group),
        // started by the test rather than by rdagent. It must be left alone.
        let bystander_file = tmp.join("bystander.pid");
        let mut bystander = Command::new(script("fake-rdagent"))
            .arg("__worker")
            .arg(&bystander_file)
            .arg("1")
            .spawn()
            .unwrap();
        let bystanders: Vec<String> = wait_for_file(&bystander_file, &mut bystander)
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(bystanders.len(), 2, "{bystanders:?}");
        let (mut child, pids) = with_workers(&tmp, &[("FAKE_RDAGENT_WORKER_ESCAPES", "1")]);
        // The guard records rdagent's descendants once a second; rdagent itself dies with rd-chain (its
        // parent-death signal), which cuts the escaped grandchild off from the tree: only a process recorded
        // before that is found.
        std::thread::sleep(Duration::from_secs(2));
        send("-KILL", &child.id().to_string());
        let _ = wait_exit(&mut child, Duration::from_secs(10));
        let left = gone_within(&pids, Duration::from_secs(10));
        let untouched: Vec<String> = bystanders.iter().filter(|p| running(p)).cloned().collect();
        kill_all(&left);
        kill_all(&bystanders);
        let _ = bystander.wait();
        assert!(left.is_empty(), "outlived rd-chain: {left:?} of {pids:?}");
        assert_eq!(untouched, bystanders, "an unrelated process was killed");
    }

    #[test]
    fn ctrl_c_ends_a_worker_that_left_the_group() {
        ctrl_c_ends_every_worker("tree-escape-int", &[("FAKE_RDAGENT_WORKER_ESCAPES", "1")]);
    }

    #[test]
    fn the_hook_probe_does_not_outlive_rd_chain_in_a_dry_run() {
        let tmp = TempDir::new("probe-orphan");
        let pidfile = tmp.join("probe.pid");
        let python = tmp.join("slow-python");
        std::fs::write(
            &python,
            format!(
                "#!/bin/sh\necho $$ > '{}.tmp'\nmv '{0}.tmp' '{0}'\nexec sleep 600\n",
                pidfile.display()
            ),
        )
        .unwrap();
        let rdagent = tmp.join("rdagent");
        std::fs::write(&rdagent, format!("#!{}\n", python.display())).unwrap();
        for f in [&python, &rdagent] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut child = rd_chain(tmp.path())
            .args(["--dry-run", "--hook", "auto", "--rdagent"])
            .arg(&rdagent)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = wait_for_file(&pidfile, &mut child);
        send("-TERM", &child.id().to_string());
        let _ = wait_exit(&mut child, Duration::from_secs(10));
        let left = gone_within(std::slice::from_ref(&pid), Duration::from_secs(10));
        kill_all(&left);
        assert!(
            left.is_empty(),
            "the probe interpreter {pid} outlived rd-chain"
        );
    }

    #[test]
    fn a_second_ctrl_c_kills_at_once() {
        let tmp = TempDir::new("sigint2");
        // The child ignores SIGTERM and, being a Python process, turns SIGINT into KeyboardInterrupt; with
        // the hang loop catching nothing it dies at the first one, so use the TERM-ignoring mode with Ctrl-C
        // sent only to rd-chain: the first is recorded, the second kills.
        let (mut child, pid, _) = hanging(
            &tmp,
            &[
                ("FAKE_RDAGENT_IGNORE_TERM", "1"),
                // rd-chain forwards Ctrl-C to rdagent's process group: this child ignores it.
                ("FAKE_RDAGENT_IGNORE_INT", "1"),
            ],
            &["--kill-after", "60"],
        );
        send("-INT", &child.id().to_string());
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            alive(&pid),
            "one Ctrl-C to rd-chain alone must not kill the child at once"
        );
        send("-INT", &child.id().to_string());
        let status = wait_exit(&mut child, Duration::from_secs(10));
        assert_eq!(status.code(), Some(130), "{}", stderr_of(&mut child));
        assert!(!alive(&pid));
    }
}

#[test]
fn a_factor_log_without_an_accepted_experiment_stops_before_the_model_phase() {
    let tmp = TempDir::new("noaccept");
    let record = tmp.join("calls.jsonl");
    let (_, err) = expect_code(
        chain(tmp.path(), &record)
            .args(["--factor-loops", "3", "--model-loops", "2"])
            .env("FAKE_RDAGENT_ACCEPT", "none"),
        3,
    );
    let calls = records(&record);
    assert_eq!(calls.len(), 1, "no model phase without SOTA factors");
    let flog = env_of(&calls[0], "LOG_TRACE_PATH").unwrap();
    assert!(err.contains(flog) && err.contains("latest"), "{err}");
    let rec = &run_records(&tmp.join("log"))[0];
    assert_eq!(rec.get("exit_code").int(), 3);
    assert!(rec.get("sota").is_null());
}

#[test]
fn json_after_a_real_run_is_the_run_record_on_the_last_stdout_line() {
    let tmp = TempDir::new("runjson");
    let record = tmp.join("calls.jsonl");
    let (out, _) = expect_code(
        chain(tmp.path(), &record).args(["--factor-loops", "2", "--model-loops", "1", "--json"]),
        0,
    );
    let last = out.lines().last().unwrap_or_default();
    let rec = parse(last).unwrap_or_else(|e| panic!("{e}: {last}"));
    assert_eq!(rec.get("state").str(), "done");
    assert_eq!(rec.get("phases").arr().len(), 2);
    assert_eq!(
        rec,
        run_records(&tmp.join("log"))[0],
        "stdout and the record file agree"
    );
}

#[test]
fn a_log_root_that_cannot_stand_in_pythonpath_is_refused_before_any_phase() {
    let tmp = TempDir::new("colon");
    let record = tmp.join("calls.jsonl");
    let (_, err) = expect_code(
        chain(tmp.path(), &record).args([
            "--log-root",
            "a:b",
            "--hook",
            "on",
            "--model-loops",
            "1",
        ]),
        2,
    );
    assert!(
        err.contains("PYTHONPATH") && err.contains("--log-root"),
        "{err}"
    );
    assert!(records(&record).is_empty());
    // With the hook off the same log root is fine.
    expect_code(
        chain(tmp.path(), &record)
            .env("FAKE_RDAGENT_ACCEPT", "0")
            .args([
                "--log-root",
                "a:b",
                "--hook",
                "off",
                "--factor-loops",
                "1",
                "--model-loops",
                "1",
            ]),
        0,
    );
}

#[test]
fn environment_only_invocation_runs_the_same_chain() {
    let tmp = TempDir::new("envonly");
    let record = tmp.join("calls.jsonl");
    let (_, err) = expect_code(
        rd_chain(tmp.path())
            .env("RDAGENT_BIN", script("fake-rdagent"))
            .env("FAKE_RDAGENT_RECORD", &record)
            .env("RD_CHAIN_FACTOR_LOOPS", "3")
            .env("RD_CHAIN_MODEL_LOOPS", "1")
            .env("RD_CHAIN_LOG_ROOT", "ci-logs")
            .env("RD_CHAIN_HOOK", "off")
            .env("USE_ALPHA_FACTORS", "no")
            .env("FAKE_RDAGENT_ACCEPT", "1"),
        0,
    );
    let calls = records(&record);
    assert_eq!(calls.len(), 2, "{err}");
    assert_eq!(argv(&calls[0])[1..], ["fin_factor", "--loop-n", "3"]);
    assert_eq!(argv(&calls[1])[1..], ["fin_model", "--loop-n", "1"]);
    assert!(env_of(&calls[0], "LOG_TRACE_PATH")
        .unwrap()
        .starts_with(tmp.join("ci-logs").to_str().unwrap()));
    assert_eq!(env_of(&calls[1], "USE_ALPHA_FACTORS"), Some("false"));
    assert!(env_of(&calls[1], "PYTHONPATH").is_none());
    let rec = &run_records(&tmp.join("ci-logs"))[0];
    assert_eq!(
        rec.get("settings").get("factor_loops").get("origin").str(),
        "env RD_CHAIN_FACTOR_LOOPS"
    );
    assert_eq!(rec.get("sota").get("loop").int(), 1);
}

#[test]
fn a_failing_model_phase_exits_with_its_code_after_recording_the_sota() {
    let tmp = TempDir::new("modelfail");
    let record = tmp.join("calls.jsonl");
    let (_, err) = expect_code(
        chain(tmp.path(), &record)
            .args(["--factor-loops", "2", "--model-loops", "1"])
            .env("FAKE_RDAGENT_ACCEPT", "0")
            .env("FAKE_RDAGENT_FAIL", "fin_model:5"),
        5,
    );
    assert_eq!(records(&record).len(), 2);
    assert!(err.contains("model phase failed"), "{err}");
    let rec = &run_records(&tmp.join("log"))[0];
    assert_eq!(rec.get("state").str(), "failed");
    assert_eq!(rec.get("exit_code").int(), 5);
    assert_eq!(rec.get("sota").get("loop").int(), 0);
    assert_eq!(rec.get("phases").arr()[1].get("exit_code").int(), 5);
}

#[test]
fn the_old_script_name_still_works_through_rd_chain() {
    let tmp = TempDir::new("wrapper");
    let record = tmp.join("calls.jsonl");
    let mut cmd = Command::new(script("run_factor_then_model_with_log.sh"));
    cmd.current_dir(tmp.path())
        .env("RD_CHAIN", env!("CARGO_BIN_EXE_rd-chain"))
        .env("RDAGENT_BIN", script("fake-rdagent"))
        .env("FAKE_RDAGENT_RECORD", &record)
        .env("FACTOR_LOOPS", "2")
        .env("MODEL_LOOPS", "1")
        .arg("--dry-run");
    let (out, _) = expect_code(&mut cmd, 0);
    assert!(
        out.contains("fin_factor --loop-n 2") && out.contains("fin_model --loop-n 1"),
        "{out}"
    );
    assert!(
        !record.exists(),
        "a dry run through the wrapper ran rdagent"
    );
    let mut cmd = Command::new(script("run_factor_then_model_with_log.sh"));
    cmd.current_dir(tmp.path())
        .env("RD_CHAIN", tmp.join("no-such-rd-chain"));
    let (_, err) = expect_code(&mut cmd, 4);
    assert!(err.contains("cargo install"), "{err}");
}
