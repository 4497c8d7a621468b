//! Chains that stop and go on: `resume`, the same `--run-id` again, retries, stall restarts, `--accept-partial`,
//! with the simulated rdagent's RD-Agent-like `--path` resume (destructive `--checkout` in the folder it is
//! given). Every test checks that the original log dirs are byte for byte as they were.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::json_read::{parse, J};
use crate::util::{argv, describe, env_of, expect_code, rd_chain, records, run, script, TempDir};

const SEED: &str = "chains-test-seed";
/// The key rdagent signs with here; rd-chain checks a snapshot with the same one before resuming.
const KEY: &str = "chains-test-signing-key, at least 32 bytes long";

/// The events file's objects, in order; every one has `event`, `phase` and `time`.
fn events(file: &Path) -> Vec<J> {
    let all = records(file);
    assert!(!all.is_empty(), "no events in {}", file.display());
    for e in &all {
        assert!(["factor", "model"].contains(&e.get("phase").str()), "{e:?}");
        assert!(e.get("time").str().ends_with('Z'), "{e:?}");
        assert!(!e.get("event").str().is_empty(), "{e:?}");
    }
    all
}

/// The events of one kind.
fn of_kind<'a>(all: &'a [J], kind: &str) -> Vec<&'a J> {
    all.iter()
        .filter(|e| e.get("event").str() == kind)
        .collect()
}

/// rd-chain in `dir` with the fake rdagent, its call record, a fixed seed, and 4 factor loops + 1 model loop.
fn chain(dir: &Path) -> Command {
    let mut cmd = rd_chain(dir);
    cmd.args(["--rdagent"])
        .arg(script("fake-rdagent"))
        .args(["--factor-loops", "4", "--model-loops", "1"])
        .env("FAKE_RDAGENT_RECORD", dir.join("calls.jsonl"))
        .env("FAKE_RDAGENT_SEED", SEED)
        .env("ARTIFACT_SIGNING_KEY", KEY);
    cmd
}

fn record_of(dir: &Path, run_id: &str) -> J {
    let path = dir.join("log/rd-chain").join(format!("{run_id}.json"));
    parse(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
}

/// sha256 of every file under `root`, by relative path.
fn hashes(root: &Path) -> BTreeMap<PathBuf, [u8; 32]> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let data = std::fs::read(&p).unwrap();
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    rd_chain::session::signature::sha256(&data),
                );
            }
        }
    }
    out
}

/// The phase object of `kind` in a record.
fn phase<'a>(rec: &'a J, kind: &str) -> &'a J {
    rec.get("phases")
        .arr()
        .iter()
        .find(|p| p.get("phase").str() == kind)
        .unwrap_or_else(|| panic!("no {kind} phase"))
}

/// (sota loop, sota index, workspace dir name) of a finished run's record.
fn sota(rec: &J) -> (i64, i64, String) {
    let s = rec.get("sota");
    let ws = Path::new(s.get("workspace").str())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    (s.get("loop").int(), s.get("index").int(), ws)
}

/// The SOTA an uninterrupted run with the same seed reaches (run once, shared by the tests).
fn uninterrupted_sota() -> (i64, i64, String) {
    static WHOLE: std::sync::OnceLock<(i64, i64, String)> = std::sync::OnceLock::new();
    WHOLE
        .get_or_init(|| {
            let tmp = TempDir::new("chains-uninterrupted");
            expect_code(chain(tmp.path()).args(["--run-id", "whole"]), 0);
            sota(&record_of(tmp.path(), "whole"))
        })
        .clone()
}

#[test]
fn a_crash_mid_factor_phase_is_resumed_on_a_copy_and_reaches_the_uninterrupted_sota() {
    let tmp = TempDir::new("chains-resume");
    let mut first = chain(tmp.path());
    first
        .args(["--run-id", "r1"])
        .env("FAKE_RDAGENT_CRASH_AFTER", "fin_factor:1:2");
    let (_, err) = expect_code(&mut first, 1);
    assert!(err.contains("the factor phase failed"), "{err}");
    let rec = record_of(tmp.path(), "r1");
    assert_eq!(rec.get("state").str(), "failed");
    let original = PathBuf::from(phase(&rec, "factor").get("log_dir").str());
    let before = hashes(&original);
    assert_eq!(
        before.len(),
        8,
        "loop 0's five steps and loop 1's first three"
    );

    // `resume` without RUN: the newest unfinished run. The crash knob is not set this time.
    let mut resume = rd_chain(tmp.path());
    resume
        .arg("resume")
        .env("FAKE_RDAGENT_RECORD", tmp.join("calls.jsonl"))
        .env("FAKE_RDAGENT_SEED", SEED)
        .env("ARTIFACT_SIGNING_KEY", KEY);
    let (_, err) = expect_code(&mut resume, 0);
    assert!(err.contains("continuing run r1"), "{err}");
    assert_eq!(hashes(&original), before, "the original log changed");

    let all = records(&tmp.join("calls.jsonl"));
    assert_eq!(all.len(), 3, "factor, factor resumed, model");
    let continuation = original.with_file_name(format!(
        "{}.resume-1",
        original.file_name().unwrap().to_string_lossy()
    ));
    let resumed = argv(&all[1]);
    let snapshot = continuation.join("__session__/1/2_running");
    assert_eq!(
        resumed[1..],
        [
            "fin_factor",
            "--loop-n",
            "4",
            "--path",
            snapshot.to_str().unwrap()
        ]
    );
    assert_eq!(env_of(&all[1], "LOG_TRACE_PATH"), continuation.to_str());
    assert_eq!(env_of(&all[1], "ALLOW_UNSAFE_LEGACY_PICKLE"), None);

    let rec = record_of(tmp.path(), "r1");
    assert_eq!(rec.get("state").str(), "done");
    let attempts = phase(&rec, "factor").get("attempts").arr();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].get("reason").str(), "start");
    assert_eq!(attempts[0].get("exit_code").int(), 1);
    assert_eq!(attempts[0].get("snapshots_gained").int(), 8);
    assert_eq!(attempts[1].get("reason").str(), "resume");
    assert_eq!(
        attempts[1].get("continues").str(),
        original.to_str().unwrap()
    );
    assert_eq!(
        attempts[1].get("resumed_from").str(),
        original.join("__session__/1/2_running").to_str().unwrap()
    );
    // Loop 1's last two steps, then loops 2 and 3.
    assert_eq!(attempts[1].get("snapshots_gained").int(), 12);
    assert_eq!(
        phase(&rec, "factor").get("log_dir").str(),
        original.to_str().unwrap()
    );
    assert_eq!(sota(&rec), uninterrupted_sota());
    // The model phase got that SOTA, resolved from the continuation (the whole history).
    assert_eq!(
        env_of(&all[2], "SOTA_WORKSPACE_PATH"),
        Some(rec.get("sota").get("workspace").str())
    );
    assert_eq!(env_of(&all[2], "SOTA_LOG_PATH"), continuation.to_str());

    // `list` shows one run for the original and its continuation; `resolve` of the original follows it.
    let (out, _) = expect_code(rd_chain(tmp.path()).args(["list", "--json"]), 0);
    let listed = parse(&out).unwrap();
    let factor_runs: Vec<&J> = listed
        .get("runs")
        .arr()
        .iter()
        .filter(|r| r.get("name").str() == original.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(factor_runs.len(), 1);
    assert_eq!(
        factor_runs[0].get("continuations").arr()[0].str(),
        continuation.file_name().unwrap().to_str().unwrap()
    );
    assert_eq!(factor_runs[0].get("sota_loop").int(), sota(&rec).0);
    assert!(!listed
        .get("runs")
        .arr()
        .iter()
        .any(|r| r.get("name").str().contains(".resume-")));
    let (out, err) = expect_code(rd_chain(tmp.path()).arg("resolve").arg(&original), 0);
    assert_eq!(out.trim(), rec.get("sota").get("workspace").str());
    assert!(err.contains("was continued in"), "{err}");
    assert_eq!(hashes(&original), before, "the original log changed");
}

#[test]
fn the_same_run_id_again_continues_and_a_finished_run_id_runs_nothing() {
    let tmp = TempDir::new("chains-requeue");
    expect_code(
        chain(tmp.path())
            .args(["--run-id", "job-7"])
            .env("FAKE_RDAGENT_CRASH_AFTER", "fin_factor:2:0"),
        1,
    );
    let original = PathBuf::from(
        phase(&record_of(tmp.path(), "job-7"), "factor")
            .get("log_dir")
            .str(),
    );
    let before = hashes(&original);
    // A requeued job: the same command line, the run id from the environment this time.
    let (_, err) = expect_code(chain(tmp.path()).env("RD_CHAIN_RUN_ID", "job-7"), 0);
    assert!(err.contains("continuing run job-7"), "{err}");
    assert_eq!(records(&tmp.join("calls.jsonl")).len(), 3);
    let rec = record_of(tmp.path(), "job-7");
    assert_eq!(rec.get("state").str(), "done");
    assert_eq!(sota(&rec), uninterrupted_sota());
    let finished = std::fs::read(tmp.join("log/rd-chain/job-7.json")).unwrap();

    // Finished: its summary, exit 0, nothing run, the record untouched.
    let (_, err) = expect_code(chain(tmp.path()).args(["--run-id", "job-7"]), 0);
    assert!(err.contains("already finished"), "{err}");
    assert!(err.contains("rd-chain summary"), "{err}");
    assert_eq!(records(&tmp.join("calls.jsonl")).len(), 3);
    assert_eq!(
        std::fs::read(tmp.join("log/rd-chain/job-7.json")).unwrap(),
        finished
    );
    let (_, err) = expect_code(rd_chain(tmp.path()).args(["resume", "job-7"]), 0);
    assert!(err.contains("already finished"), "{err}");
    assert_eq!(hashes(&original), before);
    assert!(
        !tmp.join("log/rd-chain/job-7.lock").exists(),
        "the lock is released"
    );
}

#[test]
fn retries_resume_after_progress_and_stop_when_an_attempt_gains_nothing() {
    let tmp = TempDir::new("chains-retries");
    let (_, err) = expect_code(
        chain(tmp.path())
            .args(["--run-id", "ok", "--retries", "2", "--retry-wait", "0"])
            .args(["--events", "events.jsonl"])
            .env("FAKE_RDAGENT_CRASH_AFTER", "fin_factor:1:3"),
        0,
    );
    assert!(err.contains("retry 1 of 2"), "{err}");
    let all = events(&tmp.join("events.jsonl"));
    let retries = of_kind(&all, "retry");
    assert_eq!(retries.len(), 1, "{all:?}");
    assert_eq!(retries[0].get("phase").str(), "factor");
    assert_eq!(retries[0].get("attempt").int(), 2);
    assert_eq!(retries[0].get("wait_seconds").num(), 0.0);
    assert_eq!(retries[0].get("reason").str(), "retry");
    // Each attempt is watched on its own log dir: a phase_start per attempt, the second on the continuation.
    let starts: Vec<&str> = of_kind(&all, "phase_start")
        .iter()
        .filter(|e| e.get("phase").str() == "factor")
        .map(|e| e.get("log_dir").str())
        .collect();
    assert_eq!(starts.len(), 2, "{all:?}");
    assert!(starts[1].ends_with(".resume-1"), "{starts:?}");
    assert!(of_kind(&all, "stall").is_empty(), "{all:?}");
    let rec = record_of(tmp.path(), "ok");
    let attempts = phase(&rec, "factor").get("attempts").arr();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[1].get("reason").str(), "retry");
    let original = PathBuf::from(attempts[0].get("log_dir").str());
    assert_eq!(
        hashes(&original).len(),
        9,
        "the first attempt's log as it stopped"
    );
    assert_eq!(sota(&rec), uninterrupted_sota());

    // The resumed attempt fails at once, writing nothing: no second retry although one is left.
    let tmp = TempDir::new("chains-no-progress");
    let (_, err) = expect_code(
        chain(tmp.path())
            .args(["--run-id", "stuck", "--retries", "3", "--retry-wait", "0s"])
            .env("FAKE_RDAGENT_CRASH_AFTER", "fin_factor:0:4")
            .env("FAKE_RDAGENT_FAIL_ON_RESUME", "fin_factor:7"),
        7,
    );
    assert!(
        err.contains("not retried") && err.contains("no new snapshot"),
        "{err}"
    );
    let rec = record_of(tmp.path(), "stuck");
    let attempts = phase(&rec, "factor").get("attempts").arr();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[1].get("snapshots_gained").int(), 0);
    assert_eq!(attempts[1].get("exit_code").int(), 7);
    assert_eq!(records(&tmp.join("calls.jsonl")).len(), 2, "no model phase");
}

#[test]
fn a_stalled_phase_is_restarted_and_a_failed_factor_phase_with_a_sota_can_be_accepted() {
    let tmp = TempDir::new("chains-stall");
    let (_, err) = expect_code(
        chain(tmp.path())
            .args(["--run-id", "st", "--retries", "1", "--retry-wait", "0"])
            .args([
                "--stall-after",
                "4",
                "--on-stall",
                "restart",
                "--kill-after",
                "2",
            ])
            .args(["--events", "events.jsonl"])
            .env("FAKE_RDAGENT_STALL_AFTER", "fin_factor:1:1"),
        0,
    );
    assert!(err.contains("has written no snapshot for"), "{err}");
    let all = events(&tmp.join("events.jsonl"));
    let stalls = of_kind(&all, "stall");
    assert_eq!(stalls.len(), 1, "{all:?}");
    assert_eq!(stalls[0].get("phase").str(), "factor");
    assert_eq!(stalls[0].get("action").str(), "restart");
    assert!(stalls[0].get("since_seconds").num() >= 4.0, "{all:?}");
    let retries = of_kind(&all, "retry");
    assert_eq!(retries.len(), 1, "{all:?}");
    assert_eq!(retries[0].get("phase").str(), "factor");
    assert_eq!(retries[0].get("attempt").int(), 2);
    assert_eq!(retries[0].get("reason").str(), "stall-restart");
    // The stall comes before the restart's retry, which comes before the restarted attempt's start.
    let order: Vec<&str> = all
        .iter()
        .map(|e| e.get("event").str())
        .filter(|k| ["stall", "retry", "phase_start"].contains(k))
        .collect();
    assert_eq!(
        order,
        [
            "phase_start",
            "stall",
            "retry",
            "phase_start",
            "phase_start"
        ],
        "{all:?}"
    );
    let rec = record_of(tmp.path(), "st");
    let attempts = phase(&rec, "factor").get("attempts").arr();
    assert_eq!(attempts.len(), 2);
    assert!(attempts[0].get("stalled").bool());
    assert_eq!(attempts[0].get("signal").int(), 15);
    assert_eq!(attempts[1].get("reason").str(), "stall-restart");
    assert_eq!(sota(&rec), uninterrupted_sota());

    let tmp = TempDir::new("chains-partial");
    let (_, err) = expect_code(
        chain(tmp.path())
            .args(["--run-id", "p", "--accept-partial"])
            .env("FAKE_RDAGENT_CRASH_AFTER", "fin_factor:2:4"),
        0,
    );
    assert!(err.contains("PARTIAL FACTOR RESULT"), "{err}");
    let rec = record_of(tmp.path(), "p");
    assert_eq!(rec.get("partial_factor").get("loops_done").int(), 3);
    assert_eq!(rec.get("partial_factor").get("loops_asked").int(), 4);
    assert_eq!(phase(&rec, "factor").get("exit_code").int(), 1);
    assert_eq!(phase(&rec, "model").get("exit_code").int(), 0);
    // Without the flag the same failure stops the chain.
    let tmp = TempDir::new("chains-partial-off");
    expect_code(
        chain(tmp.path())
            .args(["--run-id", "p"])
            .env("FAKE_RDAGENT_CRASH_AFTER", "fin_factor:2:4"),
        1,
    );
}

#[test]
fn a_failed_model_phase_resumes_with_the_same_sota_environment() {
    let tmp = TempDir::new("chains-model");
    expect_code(
        chain(tmp.path())
            .args(["--run-id", "m", "--model-loops", "3"])
            .env("FAKE_RDAGENT_FAIL", "fin_model"),
        1,
    );
    let rec = record_of(tmp.path(), "m");
    let model_log = PathBuf::from(phase(&rec, "model").get("log_dir").str());
    let factor_log = PathBuf::from(phase(&rec, "factor").get("log_dir").str());
    let (model_before, factor_before) = (hashes(&model_log), hashes(&factor_log));
    let mut resume = rd_chain(tmp.path());
    resume
        .args(["resume", "m"])
        .env("FAKE_RDAGENT_RECORD", tmp.join("calls.jsonl"))
        .env("FAKE_RDAGENT_SEED", SEED)
        .env("ARTIFACT_SIGNING_KEY", KEY);
    expect_code(&mut resume, 0);
    let all = records(&tmp.join("calls.jsonl"));
    assert_eq!(all.len(), 3, "factor, model, model resumed");
    let resumed = argv(&all[2]);
    assert_eq!(resumed[1..4], ["fin_model", "--loop-n", "3"]);
    assert!(
        resumed[5].contains(".resume-1/__session__/0/"),
        "{resumed:?}"
    );
    for name in [
        "SOTA_WORKSPACE_PATH",
        "SOTA_FACTORS_PATH",
        "SOTA_LOG_PATH",
        "LOAD_SOTA_FROM_WORKSPACE",
        "USE_ALPHA_FACTORS",
        "PYTHONPATH",
    ] {
        assert_eq!(env_of(&all[2], name), env_of(&all[1], name), "{name}");
    }
    assert_ne!(
        env_of(&all[2], "LOG_TRACE_PATH"),
        env_of(&all[1], "LOG_TRACE_PATH")
    );
    assert_eq!(hashes(&model_log), model_before);
    assert_eq!(hashes(&factor_log), factor_before);
    let rec = record_of(tmp.path(), "m");
    assert_eq!(rec.get("state").str(), "done");
    assert_eq!(phase(&rec, "factor").get("attempts").arr().len(), 1);
}

#[cfg(unix)]
#[test]
fn sigterm_mid_phase_then_the_requeued_run_continues() {
    use std::time::{Duration, Instant};
    let tmp = TempDir::new("chains-sigterm");
    let mut cmd = chain(tmp.path());
    cmd.args(["--run-id", "t"])
        .env("FAKE_RDAGENT_STEP_SECONDS", "0.15")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    let original = loop {
        let rec = std::fs::read_to_string(tmp.join("log/rd-chain/t.json"))
            .ok()
            .and_then(|t| parse(&t).ok());
        let dir = rec.and_then(|r| {
            r.get("phases")
                .arr()
                .first()
                .map(|p| PathBuf::from(p.get("log_dir").str()))
        });
        if let Some(d) = dir.filter(|d| d.join("__session__/1/0_direct_exp_gen").exists()) {
            break d;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no loop 1");
        std::thread::sleep(Duration::from_millis(20));
    };
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    let rec = record_of(tmp.path(), "t");
    assert_eq!(rec.get("state").str(), "interrupted");
    let before = hashes(&original);
    let out = run(chain(tmp.path()).args(["--run-id", "t"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(hashes(&original), before);
    let rec = record_of(tmp.path(), "t");
    assert_eq!(rec.get("state").str(), "done");
    assert_eq!(
        phase(&rec, "factor").get("attempts").arr()[1]
            .get("reason")
            .str(),
        "resume"
    );
    assert_eq!(sota(&rec), uninterrupted_sota());
}

// ---- bad input --------------------------------------------------------------------------------------------

/// A run `r` whose factor phase crashed after loop 1 step 2; returns its original log dir.
fn crashed(tmp: &TempDir) -> PathBuf {
    expect_code(
        chain(tmp.path())
            .args(["--run-id", "r"])
            .env("FAKE_RDAGENT_CRASH_AFTER", "fin_factor:1:2"),
        1,
    );
    PathBuf::from(
        phase(&record_of(tmp.path(), "r"), "factor")
            .get("log_dir")
            .str(),
    )
}

/// Everything under the log root, with contents.
fn tree(tmp: &TempDir) -> BTreeMap<PathBuf, [u8; 32]> {
    hashes(&tmp.join("log"))
}

#[test]
fn bad_resumes_say_what_to_do_and_write_nothing() {
    let tmp = TempDir::new("chains-bad");
    let original = crashed(&tmp);
    let resume = |extra: &[&str]| {
        let mut c = rd_chain(tmp.path());
        c.arg("resume")
            .args(extra)
            .env("FAKE_RDAGENT_RECORD", tmp.join("calls.jsonl"))
            .env("FAKE_RDAGENT_SEED", SEED)
            .env("ARTIFACT_SIGNING_KEY", KEY);
        c
    };
    let snapshot_before = tree(&tmp);

    let (_, err) = expect_code(&mut resume(&["nope"]), 2);
    assert!(
        err.contains("no run nope") && err.contains("rd-chain/nope.json"),
        "{err}"
    );
    let (_, err) = expect_code(&mut resume(&["bad/id.json"]), 2);
    assert!(err.contains("no run record"), "{err}");
    let (_, err) = expect_code(&mut resume(&["r", "--log-root", "elsewhere"]), 2);
    assert!(err.contains("elsewhere"), "{err}");

    // Another rd-chain holds the run (this test process stands in for it): exit 5, naming the lock.
    let lock = tmp.join("log/rd-chain/r.lock");
    std::fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
    let (_, err) = expect_code(&mut resume(&["r"]), 5);
    assert!(
        err.contains("r.lock") && err.contains(&std::process::id().to_string()),
        "{err}"
    );
    std::fs::remove_file(&lock).unwrap();

    // The continuation dir exists already.
    let taken = original.with_file_name(format!(
        "{}.resume-1",
        original.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir(&taken).unwrap();
    let with_taken = tree(&tmp);
    let (_, err) = expect_code(&mut resume(&["r"]), 2);
    assert!(
        err.contains("already exists") && err.contains(".resume-1"),
        "{err}"
    );
    assert_eq!(tree(&tmp), with_taken);
    std::fs::remove_dir(&taken).unwrap();

    // Another signing key than the one the run was signed with.
    let (_, err) = expect_code(resume(&["r"]).env("ARTIFACT_SIGNING_KEY", "another key"), 2);
    assert!(
        err.contains("does not verify") && err.contains("ARTIFACT_SIGNING_KEY"),
        "{err}"
    );
    assert_eq!(tree(&tmp), snapshot_before, "nothing written");
    assert_eq!(records(&tmp.join("calls.jsonl")).len(), 1, "nothing run");

    // A record from a newer rd-chain.
    let path = tmp.join("log/rd-chain/r.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let newer = text.replacen("\"schema\": 4", "\"schema\": 99", 1);
    assert_ne!(newer, text, "the record has this rd-chain's schema");
    std::fs::write(&path, newer).unwrap();
    let (_, err) = expect_code(&mut resume(&["r"]), 2);
    assert!(
        err.contains("use a newer rd-chain") && err.contains("r.json"),
        "{err}"
    );
    std::fs::write(&path, &text).unwrap();

    // The log dir was moved away.
    let moved = tmp.join("moved");
    std::fs::rename(&original, &moved).unwrap();
    let (_, err) = expect_code(&mut resume(&["r"]), 2);
    assert!(
        err.contains("does not exist (deleted or moved)")
            && err.contains(original.to_str().unwrap()),
        "{err}"
    );
    std::fs::rename(&moved, &original).unwrap();

    // No snapshot decodes.
    let before = hashes(&original);
    for rel in before.keys() {
        std::fs::write(original.join(rel), b"\x80\x05broken").unwrap();
    }
    let (_, err) = expect_code(&mut resume(&["r"]), 3);
    assert!(
        err.contains("could be read") && err.contains("nothing was written"),
        "{err}"
    );
    assert_eq!(records(&tmp.join("calls.jsonl")).len(), 1, "nothing run");
}

#[test]
fn an_unsigned_snapshot_resumes_only_with_allow_legacy_pickle() {
    let tmp = TempDir::new("chains-legacy");
    let original = crashed(&tmp);
    // Strip RD-Agent 1.0's envelope (magic + 32-byte HMAC) off every snapshot: a pre-1.0 log.
    for (rel, _) in hashes(&original) {
        let p = original.join(rel);
        let data = std::fs::read(&p).unwrap();
        let header = b"RDAGENT_SIGNED_PICKLE_V1\n".len() + 32;
        assert!(data.starts_with(b"RDAGENT_SIGNED_PICKLE_V1"));
        std::fs::write(&p, &data[header..]).unwrap();
    }
    let before = hashes(&original);
    let mut c = rd_chain(tmp.path());
    c.args(["resume", "r"])
        .env("FAKE_RDAGENT_RECORD", tmp.join("calls.jsonl"))
        .env("FAKE_RDAGENT_SEED", SEED)
        .env("ARTIFACT_SIGNING_KEY", KEY);
    let (_, err) = expect_code(&mut c, 2);
    assert!(
        err.contains("--allow-legacy-pickle") && err.contains("ALLOW_UNSAFE_LEGACY_PICKLE"),
        "{err}"
    );
    // Asked for: the resumed rdagent (only) gets the variable.
    let out = run(chain(tmp.path()).args(["--run-id", "r", "--allow-legacy-pickle"]));
    let cmd = chain(tmp.path());
    assert!(out.status.success(), "{}", describe(&cmd, &out));
    let all = records(&tmp.join("calls.jsonl"));
    assert_eq!(env_of(&all[1], "ALLOW_UNSAFE_LEGACY_PICKLE"), Some("true"));
    assert_eq!(env_of(&all[2], "ALLOW_UNSAFE_LEGACY_PICKLE"), None);
    assert_eq!(hashes(&original), before);
}

/// The lines of a hook report (`armed`/`used` events with their pids).
fn report_lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

/// A chain with `args` whose model phase crashes (exit 1) right after the hook handed the factors to the first
/// model experiment: its stderr, or `None` where the simulation lacks pandas or pyarrow (the model
/// phase then only checks that the hook is armed) and they are not required.
fn crashed_after_the_hook_handed_over(dir: &Path, args: &[&str]) -> Option<String> {
    let (out, err) = expect_code(
        chain(dir)
            .args(args)
            .env("FAKE_RDAGENT_CRASH_AFTER_DEVELOP", "1"),
        1,
    );
    let without_pandas = out
        .contains("is not installed; checked only that the rd-chain hook is armed")
        && std::env::var_os("RD_CHAIN_TEST_REQUIRE_PANDAS").is_none();
    (!without_pandas).then_some(err)
}

/// The model phase's attempts' `hook_report_file`s, in order.
fn hook_report_files(rec: &J) -> Vec<Option<PathBuf>> {
    phase(rec, "model")
        .get("attempts")
        .arr()
        .iter()
        .map(|a| {
            let f = a.get("hook_report_file");
            (!f.is_null()).then(|| PathBuf::from(f.str()))
        })
        .collect()
}

#[test]
fn every_attempts_hook_report_is_kept_when_the_run_continues() {
    let tmp = TempDir::new("chains-hook-reports");
    let rd_chain_dir = tmp.join("log/rd-chain");
    let live = rd_chain_dir.join("h.hook/report.tsv");
    let args = ["--run-id", "h", "--model-loops", "3", "--hook", "on"];
    // Attempt 1 crashes right after the hook handed the factors to the first model experiment.
    let Some(err) = crashed_after_the_hook_handed_over(tmp.path(), &args) else {
        return;
    };
    let rec = record_of(tmp.path(), "h");
    assert_eq!(rec.get("schema").int(), 4);
    assert_eq!(hook_report_files(&rec), [Some(live.clone())], "{err}");
    let first = report_lines(&live);
    let events: Vec<&str> = first
        .iter()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(events, ["armed", "used"], "{first:?}");

    // Attempt 2 (the same run id again) crashes the same way; attempt 3 finishes.
    let (_, err) = expect_code(
        chain(tmp.path())
            .args(args)
            .env("FAKE_RDAGENT_CRASH_AFTER_DEVELOP", "1"),
        1,
    );
    let kept_1 = rd_chain_dir.join("h.hook.attempt-1/report.tsv");
    assert!(
        err.contains(&format!(
            "the earlier attempt's hook dir is kept as {}",
            kept_1.parent().unwrap().display()
        )),
        "{err}"
    );
    assert_eq!(
        report_lines(&kept_1),
        first,
        "attempt 1's report, as it was"
    );
    let second = report_lines(&live);
    assert_eq!(second.len(), 2, "{second:?}");
    assert_ne!(second, first, "attempt 2's own lines (other pids)");
    let (_, err) = expect_code(chain(tmp.path()).args(args), 0);
    let kept_2 = rd_chain_dir.join("h.hook.attempt-2/report.tsv");
    assert_eq!(report_lines(&kept_1), first);
    assert_eq!(report_lines(&kept_2), second);
    let third = report_lines(&live);
    assert_eq!(third.len(), 2, "{third:?}");
    assert!(third != first && third != second, "{third:?}");

    // The record points every attempt at its own report; `hook_report` counts the last rd-chain's.
    let rec = record_of(tmp.path(), "h");
    assert_eq!(rec.get("state").str(), "done");
    assert_eq!(
        hook_report_files(&rec),
        [
            Some(kept_1.clone()),
            Some(kept_2.clone()),
            Some(live.clone())
        ]
    );
    assert_eq!(rec.get("hook_report").get("used").int(), 1);
    assert_eq!(rec.get("hook_report").get("armed").int(), 1);
    for kept in [&kept_1, &kept_2] {
        let line = err
            .lines()
            .find(|l| l.ends_with(&format!("; its report is kept in {}", kept.display())))
            .unwrap_or_else(|| panic!("no line for {}: {err}", kept.display()));
        assert!(
            line.contains("hook   earlier attempt")
                && line.contains("handed the SOTA factors to RD-Agent's model runner once"),
            "{line}"
        );
    }
    assert!(
        err.contains("earlier attempt 1:") && err.contains("earlier attempt 2:"),
        "{err}"
    );
    // The kept dirs stay rd-chain's own: private, next to the record, nowhere in the run's logs.
    #[cfg(unix)]
    for kept in [&kept_1, &kept_2] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(kept.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }
}

#[test]
fn a_record_from_before_attempts_named_their_hook_report_gets_the_kept_one_on_its_last_attempt() {
    let tmp = TempDir::new("chains-hook-report-schema-3");
    let rd_chain_dir = tmp.join("log/rd-chain");
    let args = ["--run-id", "old", "--model-loops", "2", "--hook", "on"];
    if crashed_after_the_hook_handed_over(tmp.path(), &args).is_none() {
        return;
    }
    let live = rd_chain_dir.join("old.hook/report.tsv");
    let first = report_lines(&live);
    // As an rd-chain of schema 3 wrote it: no attempt names a report.
    let path = rd_chain_dir.join("old.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let older = text.replacen("\"schema\": 4", "\"schema\": 3", 1).replace(
        &format!("\"hook_report_file\": \"{}\"", live.display()),
        "\"hook_report_file\": null",
    );
    assert_eq!(
        older.matches("\"hook_report_file\": null").count(),
        2,
        "{older}"
    );
    std::fs::write(&path, older).unwrap();
    expect_code(chain(tmp.path()).args(args), 0);
    let kept = rd_chain_dir.join("old.hook.attempt-1/report.tsv");
    assert_eq!(report_lines(&kept), first);
    let rec = record_of(tmp.path(), "old");
    assert_eq!(rec.get("schema").int(), 4);
    assert_eq!(hook_report_files(&rec), [Some(kept), Some(live)]);
}
