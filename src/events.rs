//! The events file (`--events FILE`, `RD_CHAIN_EVENTS`): one JSON object per line, appended and flushed as each
//! event happens, for dashboards that tail it.
//!
//! Every event has `event` (its kind), `run` (the run id), `phase` (`"factor"` or `"model"`) and `time` (UTC,
//! ISO 8601); the other fields per kind are documented in docs/usage.md and built by the functions below. A
//! write that fails (a full disk) is warned about once and never stops the chain: the events are a view of the
//! run, the run record is its truth.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::json::Json;
use crate::plan::PhaseKind;
use crate::timestamp::Utc;
use crate::{Error, Result};

/// Where events go: a file opened for appending, or nowhere.
#[derive(Debug)]
pub struct Events {
    run: String,
    sink: Option<Sink>,
}

#[derive(Debug)]
struct Sink {
    path: PathBuf,
    file: Mutex<File>,
    /// Set after the first failed write, so the warning is given once.
    failed: Mutex<bool>,
}

impl Events {
    /// Events that go nowhere.
    pub fn none(run: &str) -> Events {
        Events {
            run: run.to_string(),
            sink: None,
        }
    }

    /// Append to `path` (created if missing; its dir must exist). `setting` names where the path came from
    /// for the error message.
    pub fn open(path: &Path, run: &str, setting: &str) -> Result<Events> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                Error::usage(format!(
                    "cannot open the events file {} ({setting}) for appending: {e}; pass a file in an existing, \
                     writable directory",
                    path.display()
                ))
            })?;
        Ok(Events {
            run: run.to_string(),
            sink: Some(Sink {
                path: path.to_path_buf(),
                file: Mutex::new(file),
                failed: Mutex::new(false),
            }),
        })
    }

    /// The common fields of an event of `kind` in `phase`, now.
    pub fn event(&self, kind: &str, phase: PhaseKind) -> Json {
        Json::object()
            .with("event", kind)
            .with("run", self.run.as_str())
            .with("phase", phase.name())
            .with("time", Utc::now().iso())
    }

    /// Write one event as a line and flush it.
    pub fn emit(&self, event: &Json) {
        let Some(sink) = &self.sink else {
            return;
        };
        let mut line = event.compact();
        line.push('\n');
        let written = match sink.file.lock() {
            Ok(mut f) => f.write_all(line.as_bytes()).and_then(|()| f.flush()),
            Err(_) => return,
        };
        if let Err(e) = written {
            if let Ok(mut failed) = sink.failed.lock() {
                if !*failed {
                    *failed = true;
                    log::warn!(
                        "cannot write to the events file {}: {e}; the chain goes on, later events may be missing",
                        sink.path.display()
                    );
                }
            }
        }
    }

    /// `phase_start`: `loops_total`, `log_dir`.
    pub fn phase_start(&self, phase: PhaseKind, loops_total: u64, log_dir: &Path) {
        self.emit(
            &self
                .event("phase_start", phase)
                .with("loops_total", loops_total)
                .with("log_dir", log_dir),
        );
    }

    /// `phase_end`: `exit_code` (rd-chain's reading of how rdagent ended, 128+N for a signal), `ok`,
    /// `elapsed_seconds`, `loops_finished`, `accepted`, `sota_loop`, `ic`.
    pub fn phase_end(
        &self,
        phase: PhaseKind,
        exit_code: u8,
        elapsed: Duration,
        status: &LoopCounts,
    ) {
        self.emit(
            &self
                .event("phase_end", phase)
                .with("exit_code", u64::from(exit_code))
                .with("ok", exit_code == 0)
                .with("elapsed_seconds", seconds(elapsed))
                .with("loops_finished", status.finished)
                .with("accepted", status.accepted)
                .with("sota_loop", status.sota_loop)
                .with("ic", status.ic),
        );
    }

    /// `loop`: one loop finished. `loop` (RD-Agent's loop id), `loops_total`, `loops_finished` (this phase so
    /// far), `accepted`, `sota_loop`, `ic` (the SOTA's IC), `elapsed_seconds`, `eta_seconds` (or null).
    pub fn loop_finished(
        &self,
        phase: PhaseKind,
        loop_id: u64,
        loops_total: u64,
        status: &LoopCounts,
        elapsed: Duration,
        eta: Option<Duration>,
    ) {
        self.emit(
            &self
                .event("loop", phase)
                .with("loop", loop_id)
                .with("loops_total", loops_total)
                .with("loops_finished", status.finished)
                .with("accepted", status.accepted)
                .with("sota_loop", status.sota_loop)
                .with("ic", status.ic)
                .with("elapsed_seconds", seconds(elapsed))
                .with("eta_seconds", eta.map(seconds)),
        );
    }

    /// `sota`: a loop's experiment became the new SOTA. `loop` (the finished loop), `sota_loop`, `ic`,
    /// `accepted`.
    pub fn new_sota(&self, phase: PhaseKind, loop_id: u64, status: &LoopCounts) {
        self.emit(
            &self
                .event("sota", phase)
                .with("loop", loop_id)
                .with("sota_loop", status.sota_loop)
                .with("ic", status.ic)
                .with("accepted", status.accepted),
        );
    }

    /// `retry`: a failed phase is started again. `attempt` (the attempt about to start, 2 for the first retry),
    /// `wait_seconds` (before it starts), `reason`.
    pub fn retry(&self, phase: PhaseKind, attempt: u32, wait: Duration, reason: &str) {
        self.emit(
            &self
                .event("retry", phase)
                .with("attempt", attempt)
                .with("wait_seconds", seconds(wait))
                .with("reason", reason),
        );
    }

    /// `stall`: no new snapshot for a while. `since_seconds` (since the last snapshot, or the phase start),
    /// `action` (e.g. `"warn"`, `"restart"`).
    pub fn stall(&self, phase: PhaseKind, since: Duration, action: &str) {
        self.emit(
            &self
                .event("stall", phase)
                .with("since_seconds", seconds(since))
                .with("action", action),
        );
    }
}

/// What the finished loops of a phase add up to, as the events and the progress line report it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoopCounts {
    /// Loops finished in this phase (including any finished before rd-chain started watching).
    pub finished: u64,
    /// Accepted experiments in the history so far.
    pub accepted: u64,
    /// The loop of the last accepted experiment, when recorded.
    pub sota_loop: Option<u64>,
    /// The SOTA's IC, when its result records one.
    pub ic: Option<f64>,
}

/// Seconds with millisecond precision.
fn seconds(d: Duration) -> f64 {
    (d.as_millis() as f64) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    #[test]
    fn every_event_is_one_flushed_line_with_the_common_fields() {
        let dir = std::env::temp_dir().join(format!("rd-chain-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let _ = std::fs::remove_file(&path);
        let events = Events::open(&path, "run-1", "--events").unwrap();
        let counts = LoopCounts {
            finished: 2,
            accepted: 1,
            sota_loop: Some(0),
            ic: Some(0.05),
        };
        events.phase_start(PhaseKind::Factor, 5, Path::new("/l/x"));
        events.loop_finished(
            PhaseKind::Factor,
            1,
            5,
            &counts,
            Duration::from_millis(1500),
            None,
        );
        events.new_sota(PhaseKind::Factor, 1, &counts);
        events.retry(PhaseKind::Model, 2, Duration::from_secs(60), "exit 1");
        events.stall(PhaseKind::Model, Duration::from_secs(7200), "warn");
        events.phase_end(PhaseKind::Model, 0, Duration::from_secs(3), &counts);
        // Written and flushed already, before `events` is dropped.
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<json::Json> = text.lines().map(|l| json::parse(l).unwrap()).collect();
        let kinds: Vec<&str> = lines
            .iter()
            .map(|j| j.get("event").and_then(json::Json::as_str).unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["phase_start", "loop", "sota", "retry", "stall", "phase_end"]
        );
        for j in &lines {
            assert_eq!(j.get("run").and_then(json::Json::as_str), Some("run-1"));
            assert!(j.get("phase").and_then(json::Json::as_str).is_some());
            let time = j.get("time").and_then(json::Json::as_str).unwrap();
            assert!(time.ends_with('Z') && time.len() == 27, "{time}");
        }
        let lp = &lines[1];
        assert_eq!(lp.get("loop").and_then(json::Json::as_i64), Some(1));
        assert_eq!(lp.get("loops_total").and_then(json::Json::as_i64), Some(5));
        assert_eq!(lp.get("accepted").and_then(json::Json::as_i64), Some(1));
        assert_eq!(lp.get("sota_loop").and_then(json::Json::as_i64), Some(0));
        assert_eq!(lp.get("ic"), Some(&json::Json::Float(0.05)));
        assert_eq!(lp.get("eta_seconds"), Some(&json::Json::Null));
        // Appending: a second writer adds to the same file.
        drop(events);
        Events::open(&path, "run-2", "--events").unwrap().stall(
            PhaseKind::Factor,
            Duration::ZERO,
            "warn",
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 7);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_events_file_that_cannot_be_opened_is_a_usage_error_naming_it() {
        let path = Path::new("/nonexistent-dir-for-rd-chain/events.jsonl");
        let err = Events::open(path, "r", "RD_CHAIN_EVENTS").unwrap_err();
        assert_eq!(err.exit_code(), crate::exit::USAGE);
        let text = err.to_string();
        assert!(
            text.contains("/nonexistent-dir-for-rd-chain/events.jsonl")
                && text.contains("RD_CHAIN_EVENTS"),
            "{text}"
        );
    }
}
