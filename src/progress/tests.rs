//! The watcher over real RD-Agent-shaped logs (signed 1.0-era sessions written by scripts/fixtures): the
//! counts it reports per finished loop, and the work it does per poll, counted (never timed).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use super::*;
use crate::json::{self, Json};

/// Far enough after every file's time that each listing is trusted (no racy re-listing).
fn later() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3600)
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rd-chain-progress-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A whole signed factor session of `loops` loops in `<dir>/log`; returns the generator's summary.
fn generate(dir: &Path, loops: u32) -> Json {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/fixtures");
    let out = Command::new("python3")
        .arg(script)
        .args(["run", "--kind", "factor", "--signed", "--parquet", "stub"])
        .arg("--log-dir")
        .arg(dir.join("log"))
        .arg("--workspace-root")
        .arg(dir.join("ws"))
        .args(["--loops", &loops.to_string()])
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {script}: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    json::parse(text.trim().lines().last().unwrap()).unwrap()
}

/// (loop, accepted) of every experiment in the generator's summary.
fn decisions(summary: &Json) -> Vec<(u64, bool)> {
    let Some(Json::Array(exps)) = summary.get("experiments") else {
        panic!("no experiments in {summary:?}")
    };
    exps.iter()
        .map(|e| {
            (
                e.get("loop").and_then(Json::as_i64).unwrap() as u64,
                e.get("decision") == Some(&Json::Bool(true)),
            )
        })
        .collect()
}

/// The step files of `<log>/__session__`, in the order RD-Agent writes them (sequential loops).
fn step_files(log: &Path) -> Vec<(u64, String)> {
    let session = log.join("__session__");
    let mut out = Vec::new();
    for loop_entry in std::fs::read_dir(&session).unwrap() {
        let loop_entry = loop_entry.unwrap();
        let id: u64 = loop_entry.file_name().to_str().unwrap().parse().unwrap();
        for step in std::fs::read_dir(loop_entry.path()).unwrap() {
            out.push((id, step.unwrap().file_name().into_string().unwrap()));
        }
    }
    out.sort_by_key(|(id, name)| (*id, name.split('_').next().unwrap().parse::<u64>().unwrap()));
    out
}

fn copy_step(from: &Path, to: &Path, loop_id: u64, name: &str) {
    let dir = to.join("__session__").join(loop_id.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        from.join("__session__")
            .join(loop_id.to_string())
            .join(name),
        dir.join(name),
    )
    .unwrap();
}

#[test]
fn a_growing_session_is_reported_loop_by_loop_with_one_decode_per_finished_loop() {
    let dir = temp("grow");
    let loops = 7;
    let summary = generate(&dir, loops);
    let source = dir.join("log");
    let target = dir.join("live");
    std::fs::create_dir_all(&target).unwrap();

    let mut watcher = SessionWatcher::new(&target);
    watcher.baseline(later());
    assert_eq!(watcher.work.decodes, 0);
    let mut reported = Vec::new();
    for (loop_id, name) in step_files(&source) {
        copy_step(&source, &target, loop_id, &name);
        let before = watcher.work;
        let done = watcher.poll(later());
        let work = watcher.work;
        // One stat of the session folder, one per loop not finished yet (here at most the loop being written
        // and, right after a loop's last step, none).
        assert!(work.stats - before.stats <= 3, "{before:?} -> {work:?}");
        assert!(
            work.listings - before.listings <= 2,
            "{before:?} -> {work:?}"
        );
        if name.ends_with("_record") {
            assert_eq!(
                work.decodes - before.decodes,
                1,
                "loop {loop_id}: one decode when it finishes"
            );
            assert_eq!(done.len(), 1, "loop {loop_id}");
            assert_eq!(done[0].loop_id, loop_id);
        } else {
            assert_eq!(
                work.decodes, before.decodes,
                "no decode before loop {loop_id} finishes ({name})"
            );
            assert!(done.is_empty(), "{done:?}");
        }
        reported.extend(done);
        let (current, step) = watcher.current().unwrap();
        assert_eq!(current, loop_id);
        let shown = if name.ends_with("_record") {
            "done"
        } else {
            name.split_once('_').unwrap().1
        };
        assert_eq!(Some(shown), step.as_deref());
    }
    assert_eq!(watcher.work.decodes, u64::from(loops));
    let expected = decisions(&summary);
    assert_eq!(reported.len(), loops as usize);
    let mut last_sota = None;
    for (k, done) in reported.iter().enumerate() {
        let upto: Vec<u64> = expected
            .iter()
            .filter(|(l, a)| *a && *l <= done.loop_id)
            .map(|(l, _)| *l)
            .collect();
        assert_eq!(done.counts.finished, k as u64 + 1);
        assert_eq!(
            done.counts.accepted,
            upto.len() as u64,
            "loop {}",
            done.loop_id
        );
        assert_eq!(done.counts.sota_loop, upto.last().copied());
        assert_eq!(done.counts.ic.is_some(), upto.last().is_some());
        assert_eq!(
            done.new_sota,
            upto.last() != last_sota.as_ref() && !upto.is_empty()
        );
        last_sota = upto.last().copied();
    }
    // The generator accepts some loops and not others: the counts above were not trivially equal.
    assert!(expected.iter().any(|(_, a)| *a) && expected.iter().any(|(_, a)| !*a));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_idle_poll_costs_the_same_on_a_long_log_as_on_a_short_one() {
    let dir = temp("idle");
    let mut per_poll = Vec::new();
    for loops in [3u32, 24] {
        let run = dir.join(loops.to_string());
        generate(&run, loops);
        let mut watcher = SessionWatcher::new(&run.join("log"));
        watcher.baseline(later());
        // The baseline reads the newest finished loop once and reports nothing.
        assert_eq!(watcher.work.decodes, 1);
        assert_eq!(watcher.counts().finished, u64::from(loops));
        let start = watcher.work;
        for _ in 0..10 {
            assert!(watcher.poll(later()).is_empty());
        }
        let w = watcher.work;
        per_poll.push((
            (w.stats - start.stats) / 10,
            w.listings - start.listings,
            w.decodes - start.decodes,
        ));
    }
    // Every loop is finished: one stat of the session folder per poll, no listing, no decode.
    assert_eq!(per_poll, [(1, 0, 0), (1, 0, 0)]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The stall watch reads this watcher's `last_snapshot` (it has no stat loop of its own): on a 100-loop log
/// with its highest loop running, an unchanged session dir costs two stats per look whatever the number of
/// loops, and only a new step file moves the last-snapshot time.
#[test]
fn the_stall_clock_costs_two_stats_per_look_on_a_long_log() {
    let dir = temp("stall-clock");
    generate(&dir, 100);
    let source = dir.join("log");
    let target = dir.join("live");
    let steps = step_files(&source);
    let (last_loop, last_name) = steps.last().cloned().unwrap();
    assert_eq!(last_loop, 99);
    for (loop_id, name) in &steps[..steps.len() - 1] {
        copy_step(&source, &target, *loop_id, name);
    }
    let mut watcher = SessionWatcher::new(&target);
    watcher.baseline(later());
    let first = watcher.work;
    // Stat and list the session dir, stat and list each loop dir once, read the newest finished loop.
    assert_eq!(first.stats, 101);
    assert_eq!(first.listings, 101);
    assert_eq!(first.decodes, 1);
    assert_eq!(watcher.last_snapshot(), None, "the baseline is not news");
    for _ in 0..10 {
        assert!(watcher.poll(later()).is_empty());
    }
    // Unchanged session dir: two stats per look (it and the running loop), no listing, no decode.
    assert_eq!(watcher.work.stats - first.stats, 20);
    assert_eq!(watcher.work.listings, first.listings);
    assert_eq!(watcher.work.decodes, first.decodes);
    assert_eq!(watcher.current().map(|(id, _)| id), Some(99));
    assert_eq!(
        watcher.last_snapshot(),
        None,
        "no new snapshot: the stall clock does not move"
    );
    // The running loop's last step appears: the last-snapshot time is that look's time.
    copy_step(&source, &target, last_loop, &last_name);
    let at = later() + Duration::from_secs(60);
    let done = watcher.poll(at);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].loop_id, 99);
    assert_eq!(watcher.last_snapshot(), Some(at));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_folder_changed_within_the_time_granularity_is_listed_again_until_its_time_is_old() {
    let dir = temp("racy");
    generate(&dir, 2);
    let log = dir.join("log");
    let mut watcher = SessionWatcher::new(&log);
    let mtime = std::fs::metadata(log.join("__session__"))
        .unwrap()
        .modified()
        .unwrap();
    // Listed at the very time of the last change: a change in the same tick would not move the time.
    watcher.baseline(mtime);
    let after_baseline = watcher.work.listings;
    watcher.poll(mtime + Duration::from_secs(1));
    assert_eq!(
        watcher.work.listings,
        after_baseline + 1,
        "racy listing is repeated"
    );
    watcher.poll(mtime + Duration::from_secs(10));
    let trusted = watcher.work.listings;
    watcher.poll(mtime + Duration::from_secs(11));
    watcher.poll(mtime + Duration::from_secs(12));
    assert_eq!(
        watcher.work.listings, trusted,
        "a listing taken well after the change is trusted"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_snapshot_cut_short_is_read_again_at_the_next_poll() {
    let dir = temp("cut");
    // Two loops: the generator never accepts the last one, so loop 0 is accepted.
    let summary = generate(&dir, 2);
    assert_eq!(decisions(&summary)[0], (0, true));
    let source = dir.join("log");
    let target = dir.join("live");
    std::fs::create_dir_all(&target).unwrap();
    let mut watcher = SessionWatcher::new(&target);
    watcher.baseline(later());
    let files: Vec<(u64, String)> = step_files(&source)
        .into_iter()
        .filter(|(l, _)| *l == 0)
        .collect();
    let (last, rest) = files.split_last().unwrap();
    for (loop_id, name) in rest {
        copy_step(&source, &target, *loop_id, name);
    }
    assert!(watcher.poll(later()).is_empty());
    // The last step's file while it is being written: half of it.
    let full = std::fs::read(source.join("__session__/0").join(&last.1)).unwrap();
    let path = target.join("__session__/0").join(&last.1);
    std::fs::write(&path, &full[..full.len() / 2]).unwrap();
    assert!(
        watcher.poll(later()).is_empty(),
        "not reported from a cut file"
    );
    assert_eq!(watcher.work.decodes, 1);
    std::fs::write(&path, &full).unwrap();
    let done = watcher.poll(later());
    assert_eq!(watcher.work.decodes, 2);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].counts.accepted, 1);
    assert_eq!(done[0].counts.sota_loop, Some(0));
    assert!(done[0].new_sota);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_tail_is_the_last_lines_escaped_under_a_heading() {
    let dir = temp("tail");
    let path = dir.join("factor.out");
    let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&path, format!("{text}bad \x1b[2J end\n")).unwrap();
    let tail = tail_text(&path, 40);
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(lines.len(), 41, "{tail}");
    assert!(lines[0].contains("last 40 line(s)") && lines[0].contains("factor.out"));
    assert_eq!(lines[1], "  line 61");
    assert_eq!(lines[40], "  bad \\x1b[2J end");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_status_line_has_the_loop_step_counts_and_times() {
    let started = Instant::now();
    let status = Status {
        kind: PhaseKind::Factor,
        loops_total: 10,
        current: Some((3, Some("run\x1bning".to_string()))),
        counts: LoopCounts {
            finished: 3,
            accepted: 2,
            sota_loop: Some(1),
            ic: Some(0.04125),
        },
        finished_here: 3,
        started,
        last_snapshot: started,
    };
    let now = started + Duration::from_secs(300);
    // 3 loops in 300 s: 100 s per loop, 7 to go.
    assert_eq!(status.eta(now), Some(Duration::from_secs(700)));
    let line = status.line(now);
    assert!(
        line.starts_with("rd-chain: factor loop 4/10 run\\x1bning | accepted 2, SOTA loop 1 (IC 0.0413) | elapsed"),
        "{line}"
    );
    assert!(line.contains("ETA"), "{line}");
    assert_eq!(status.since_last_snapshot(now), Duration::from_secs(300));
}
