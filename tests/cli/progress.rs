//! Live progress through the binary with the simulated rdagent: one line per finished loop when stderr is not a
//! terminal, the events file, and on a real terminal (a pty from `script`) the status line with rdagent's output
//! in `<log root>/rd-chain/<run>/<phase>.out` and its tail on failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::json_read::{parse, J};
use crate::util::{describe, expect_code, rd_chain, script, TempDir};

fn chain(dir: &Path) -> Command {
    let mut cmd = rd_chain(dir);
    cmd.arg("--rdagent").arg(script("fake-rdagent"));
    cmd
}

fn events(file: &Path) -> Vec<J> {
    std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("no events file {}: {e}", file.display()))
        .lines()
        .map(|l| parse(l).unwrap_or_else(|e| panic!("event line is not JSON: {l:?}: {e}")))
        .collect()
}

/// The fake's SOTA JSON line on stdout (`{"sota_index", "sota_loop", ...}`).
fn fake_sota_loop(stdout: &str) -> i64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("{\"sota_index\""))
        .unwrap_or_else(|| panic!("no SOTA line from the fake in {stdout}"));
    parse(line).unwrap().get("sota_loop").int()
}

/// The loop lines rd-chain printed for `phase`.
fn loop_lines<'a>(stderr: &'a str, phase: &str) -> Vec<&'a str> {
    let prefix = format!("rd-chain: {phase} loop ");
    stderr
        .lines()
        .filter(|l| l.starts_with(&prefix) && l.contains(" finished ("))
        .collect()
}

#[test]
fn without_a_terminal_output_passes_through_and_each_finished_loop_is_one_line() {
    let tmp = TempDir::new("progress-lines");
    let ev = tmp.join("events.jsonl");
    let (out, err) = expect_code(
        chain(tmp.path())
            .args(["--factor-loops", "3", "--model-loops", "2", "--events"])
            .arg(&ev),
        0,
    );
    // rdagent's own output is untouched on stdout.
    assert!(
        out.contains("fake-rdagent: loop 0 step 0_direct_exp_gen"),
        "{out}"
    );
    assert!(out.contains("fake-rdagent: loop 2 step 4_record"), "{out}");
    // The fake accepts loops 0 and 1 of 3 (never the last).
    assert_eq!(fake_sota_loop(&out), 1);
    let factor = loop_lines(&err, "factor");
    assert_eq!(factor.len(), 3, "{err}");
    let expect = [
        ("loop 0 finished (1 of 3): accepted 1, SOTA loop 0 (IC "),
        ("loop 1 finished (2 of 3): accepted 2, SOTA loop 1 (IC "),
        ("loop 2 finished (3 of 3): accepted 2, SOTA loop 1 (IC "),
    ];
    for (line, want) in factor.iter().zip(expect) {
        assert!(line.contains(want), "{line:?} lacks {want:?}\n{err}");
        assert!(line.contains("elapsed"), "{line}");
    }
    // Each finished loop but the last has an ETA.
    assert!(
        factor[0].contains("ETA") && factor[1].contains("ETA"),
        "{err}"
    );
    assert_eq!(loop_lines(&err, "model").len(), 2, "{err}");
    // No status line redraws when stderr is not a terminal.
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
}

#[test]
fn the_events_file_has_one_json_object_per_event_with_the_documented_fields() {
    let tmp = TempDir::new("progress-events");
    let ev = tmp.join("events.jsonl");
    // Through the environment variable; a relative path is relative to the working dir.
    let (out, _) = expect_code(
        chain(tmp.path())
            .args(["--factor-loops", "3", "--model-loops", "2"])
            .env("RD_CHAIN_EVENTS", "events.jsonl"),
        0,
    );
    let all = events(&ev);
    for e in &all {
        for key in ["event", "run", "phase", "time"] {
            assert!(e.opt(key).is_some(), "{key} missing in {e:?}");
        }
        assert!(["factor", "model"].contains(&e.get("phase").str()), "{e:?}");
        assert!(e.get("time").str().ends_with('Z'), "{e:?}");
    }
    let kinds: Vec<(&str, &str)> = all
        .iter()
        .map(|e| (e.get("event").str(), e.get("phase").str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("phase_start", "factor"),
            ("loop", "factor"),
            ("sota", "factor"),
            ("loop", "factor"),
            ("sota", "factor"),
            ("loop", "factor"),
            ("phase_end", "factor"),
            ("phase_start", "model"),
            ("loop", "model"),
            ("sota", "model"),
            ("loop", "model"),
            ("phase_end", "model"),
        ]
    );
    let loops: Vec<&J> = all
        .iter()
        .filter(|e| e.get("event").str() == "loop" && e.get("phase").str() == "factor")
        .collect();
    let got: Vec<(i64, i64, i64, i64)> = loops
        .iter()
        .map(|e| {
            (
                e.get("loop").int(),
                e.get("loops_total").int(),
                e.get("accepted").int(),
                e.get("sota_loop").int(),
            )
        })
        .collect();
    assert_eq!(got, [(0, 3, 1, 0), (1, 3, 2, 1), (2, 3, 2, 1)]);
    assert_eq!(loops[2].get("sota_loop").int(), fake_sota_loop(&out));
    for e in &loops {
        assert!(matches!(e.get("ic"), J::Num(_)), "{e:?}");
    }
    let end = &all[6];
    assert_eq!(end.get("exit_code").int(), 0);
    assert_eq!(end.get("loops_finished").int(), 3);
    // One run id on every event: the run record's name.
    let record = std::fs::read_dir(tmp.join("log/rd-chain"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .unwrap();
    let run_id = record.file_stem().unwrap().to_str().unwrap().to_string();
    assert!(all.iter().all(|e| e.get("run").str() == run_id));
}

#[test]
fn an_events_file_that_cannot_be_opened_stops_before_any_phase_with_exit_2() {
    let tmp = TempDir::new("progress-events-bad");
    let record = tmp.join("calls.jsonl");
    let (_, err) = expect_code(
        chain(tmp.path()).env("FAKE_RDAGENT_RECORD", &record).args([
            "--factor-loops",
            "1",
            "--events",
            "no/such/dir/ev.jsonl",
        ]),
        2,
    );
    assert!(
        err.contains("no/such/dir/ev.jsonl") && err.contains("--events"),
        "{err}"
    );
    assert!(!record.exists(), "rdagent was started");
}

/// `rd-chain ARGS` run on a pseudo-terminal by util-linux `script`; returns (exit code, what the terminal got).
fn on_terminal(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut line = quote(env!("CARGO_BIN_EXE_rd-chain"));
    for a in ["--rdagent", script("fake-rdagent").to_str().unwrap()]
        .iter()
        .chain(args)
    {
        line.push(' ');
        line.push_str(&quote(a));
    }
    // The environment of `rd_chain`, kept by `script` for the shell it starts.
    let template = rd_chain(dir);
    let mut cmd = Command::new("script");
    cmd.current_dir(dir).env_clear();
    for (k, v) in template.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::null());
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot start util-linux `script` for a pseudo-terminal ({e}): install util-linux")
    });
    assert!(out.status.code().is_some(), "{}", describe(&cmd, &out));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `<log root>/rd-chain/<run>/<phase>.out` of the one run under `dir/log`.
fn output_file(dir: &Path, phase: &str) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(dir.join("log/rd-chain"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(format!("{phase}.out")).exists())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].join(format!("{phase}.out"))
}

#[cfg(target_os = "linux")]
#[test]
fn on_a_terminal_a_status_line_is_redrawn_and_rdagent_output_goes_to_a_file() {
    let tmp = TempDir::new("progress-tty");
    let (code, term) = on_terminal(
        tmp.path(),
        &["--factor-loops", "3", "--model-loops", "0"],
        &[("FAKE_RDAGENT_STEP_SECONDS", "0.15")],
    );
    assert_eq!(code, 0, "{term}");
    // Redrawn in place: carriage return, erase line, the status.
    assert!(term.contains("\r\x1b[Krd-chain: factor loop "), "{term:?}");
    assert!(term.contains(" | accepted "), "{term:?}");
    // rdagent's output is not on the terminal but in the phase's output file.
    assert!(!term.contains("fake-rdagent: loop 0 step"), "{term:?}");
    let out = std::fs::read_to_string(output_file(tmp.path(), "factor")).unwrap();
    assert!(
        out.contains("fake-rdagent: loop 0 step 0_direct_exp_gen"),
        "{out}"
    );
    assert!(out.contains("fake-rdagent: loop 2 step 4_record"), "{out}");
    assert!(
        term.contains("factor.out (--show-output keeps it here)"),
        "{term:?}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn on_a_terminal_a_failed_phase_shows_the_last_lines_of_its_output() {
    let tmp = TempDir::new("progress-tty-fail");
    let (code, term) = on_terminal(
        tmp.path(),
        &["--factor-loops", "3", "--model-loops", "0"],
        &[("FAKE_RDAGENT_FAIL", "fin_factor:7")],
    );
    assert_eq!(code, 7, "{term}");
    let out = std::fs::read_to_string(output_file(tmp.path(), "factor")).unwrap();
    let last = out.lines().last().unwrap();
    assert!(
        last.contains("fin_factor failed (FAKE_RDAGENT_FAIL), exit 7"),
        "{out}"
    );
    assert!(term.contains("line(s) of rdagent's output"), "{term:?}");
    assert!(term.contains(&format!("  {last}")), "{term:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn on_a_terminal_show_output_keeps_rdagent_output_there() {
    let tmp = TempDir::new("progress-tty-show");
    let (code, term) = on_terminal(
        tmp.path(),
        &["--factor-loops", "2", "--model-loops", "0", "--show-output"],
        &[],
    );
    assert_eq!(code, 0, "{term}");
    assert!(
        term.contains("fake-rdagent: loop 0 step 0_direct_exp_gen"),
        "{term:?}"
    );
    assert!(
        term.contains("rd-chain: factor loop 1 finished (2 of 2)"),
        "{term:?}"
    );
    assert!(!term.contains("\x1b[K"), "{term:?}");
    assert!(!tmp.join("log/rd-chain").read_dir().unwrap().any(|e| e
        .unwrap()
        .path()
        .join("factor.out")
        .exists()));
}
