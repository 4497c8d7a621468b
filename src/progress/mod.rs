//! Live progress of a running phase: where rdagent's output goes, a thread that watches the phase's session
//! folder (`watch`), and what it reports: a status line on a terminal, one plain line per finished loop
//! otherwise, and the events file (`crate::events`).
//!
//! On a terminal (stderr is a tty) rdagent's stdout and stderr go to `<log root>/rd-chain/<run>/<phase>.out`
//! (its last lines are shown if the phase fails) unless `--show-output`; elsewhere they pass through unchanged.
//! The watcher only stats and lists the session folder and reads a snapshot when a loop finishes; it never
//! writes there. Text that came from the session folder or rdagent is escaped (`render::escape_value`) before
//! it reaches the terminal.

pub mod watch;

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::cli::Origin;
use crate::events::{Events, LoopCounts};
use crate::plan::{Phase, PhaseKind, Plan};
use crate::{render, Error, Result};

pub use watch::{FinishedLoop, SessionWatcher, Work};

/// How often the session folder is looked at, and the status line redrawn (at most).
pub const POLL_EVERY: Duration = Duration::from_secs(1);
/// How many lines of rdagent's output are shown when a phase whose output went to a file fails.
pub const TAIL_LINES: usize = 40;
/// Status lines are cut to this many characters, so a redraw stays on one terminal row.
const STATUS_WIDTH: usize = 100;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Display {
    /// One status line on stderr, redrawn; rdagent's output goes to a file.
    StatusLine,
    /// One plain line per finished loop; rdagent's output passes through.
    Lines,
}

/// Progress settings for the whole run: the events file, how progress is shown, where output files go.
pub struct Live {
    events: Arc<Events>,
    display: Display,
    /// `<log root>/rd-chain/<run>`: where `<phase>.out` is written.
    output_dir: PathBuf,
}

impl Live {
    /// From the plan, with stderr's terminal-ness.
    pub fn new(plan: &Plan) -> Result<Live> {
        Live::with_terminal(plan, std::io::stderr().is_terminal())
    }

    /// From the plan; `terminal`: whether stderr is a terminal.
    pub fn with_terminal(plan: &Plan, terminal: bool) -> Result<Live> {
        let run = run_name(&plan.run_record);
        let events = match &plan.config.events.value {
            Some(path) => {
                let from = match &plan.config.events.origin {
                    Origin::Flag(name) => format!("--{name}"),
                    other => other.to_string(),
                };
                Events::open(&plan.cwd.join(path), &run, &from)?
            }
            None => Events::none(&run),
        };
        let display = if terminal && !plan.config.show_output.value {
            Display::StatusLine
        } else {
            Display::Lines
        };
        let record_dir = plan.run_record.parent().unwrap_or(&plan.log_root);
        Ok(Live {
            events: Arc::new(events),
            display,
            output_dir: record_dir.join(&run),
        })
    }

    /// The events file, for events of other parts of the run (retries, stalls).
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Before `cmd` (the phase's rdagent) is spawned: route its output, and take the baseline of its session
    /// folder (what is there before it starts is not news).
    pub fn prepare(&self, phase: &Phase, log_dir: &Path, cmd: &mut Command) -> Result<Prepared> {
        let output = match self.display {
            Display::StatusLine => {
                let path = self.output_dir.join(format!("{}.out", phase.kind.name()));
                let file = open_output(&self.output_dir, &path)?;
                let copy = file
                    .try_clone()
                    .map_err(|e| Error::io("cannot use rdagent's output file", &path, e))?;
                cmd.stdout(Stdio::from(file)).stderr(Stdio::from(copy));
                Some(path)
            }
            Display::Lines => None,
        };
        let mut watcher = SessionWatcher::new(log_dir);
        watcher.baseline(SystemTime::now());
        Ok(Prepared {
            events: Arc::clone(&self.events),
            display: self.display,
            kind: phase.kind,
            loops_total: phase.loops,
            log_dir: log_dir.to_path_buf(),
            output,
            watcher,
        })
    }
}

/// A phase about to start: its watcher has its baseline.
pub struct Prepared {
    events: Arc<Events>,
    display: Display,
    kind: PhaseKind,
    loops_total: u64,
    log_dir: PathBuf,
    output: Option<PathBuf>,
    watcher: SessionWatcher,
}

impl Prepared {
    /// Where rdagent's output goes (`None`: the terminal or whatever stdout/stderr are).
    pub fn output(&self) -> Option<&Path> {
        self.output.as_deref()
    }

    /// The phase has started: emit `phase_start` and start watching.
    pub fn start(self) -> PhaseWatch {
        self.events
            .phase_start(self.kind, self.loops_total, &self.log_dir);
        if let Some(out) = &self.output {
            eprintln!(
                "{}",
                render::escape_message(&format!(
                    "rd-chain: rdagent's output goes to {} (--show-output keeps it here)",
                    out.display()
                ))
            );
        }
        let started = Instant::now();
        let status = Arc::new(Mutex::new(Status {
            kind: self.kind,
            loops_total: self.loops_total,
            current: None,
            counts: self.watcher.counts().clone(),
            finished_here: 0,
            started,
            last_snapshot: started,
        }));
        let (stop, stopped) = mpsc::channel();
        let reporter = Reporter {
            events: Arc::clone(&self.events),
            display: self.display,
            status: Arc::clone(&status),
        };
        let mut watcher = self.watcher;
        let thread = std::thread::Builder::new()
            .name("rd-chain-progress".into())
            .spawn(move || reporter.run(&mut watcher, &stopped))
            .ok();
        if thread.is_none() {
            log::warn!("cannot start the progress thread; the phase runs without live progress");
        }
        PhaseWatch {
            events: Arc::clone(&self.events),
            status,
            stop: Some(stop),
            thread,
            output: self.output,
        }
    }
}

/// What is known about a running phase.
#[derive(Clone, Debug)]
pub struct Status {
    pub kind: PhaseKind,
    pub loops_total: u64,
    /// The loop running now and its newest step's name.
    pub current: Option<(u64, Option<String>)>,
    pub counts: LoopCounts,
    /// Loops finished since watching began (the mean loop time is taken over these).
    pub finished_here: u64,
    pub started: Instant,
    /// When a new snapshot was last seen (the phase's start until one is): for a stall watch.
    pub last_snapshot: Instant,
}

impl Status {
    /// The remaining time at the mean loop time of the loops finished since watching began.
    pub fn eta(&self, now: Instant) -> Option<Duration> {
        if self.finished_here == 0 {
            return None;
        }
        let mean = now.duration_since(self.started) / self.finished_here as u32;
        let left = self.loops_total.saturating_sub(self.counts.finished);
        Some(mean * left as u32)
    }

    /// How long no new snapshot has appeared.
    pub fn since_last_snapshot(&self, now: Instant) -> Duration {
        now.duration_since(self.last_snapshot)
    }

    /// `accepted 2, SOTA loop 1 (IC 0.0412)`.
    fn sota_text(&self) -> String {
        let c = &self.counts;
        let sota = match (c.sota_loop, c.ic) {
            (Some(l), Some(ic)) => format!("SOTA loop {l} (IC {ic:.4})"),
            (Some(l), None) => format!("SOTA loop {l}"),
            (None, Some(ic)) => format!("SOTA IC {ic:.4}"),
            (None, None) if c.accepted > 0 => "SOTA loop not recorded".to_string(),
            (None, None) => "no SOTA yet".to_string(),
        };
        format!("accepted {}, {sota}", c.accepted)
    }

    fn times_text(&self, now: Instant) -> String {
        let elapsed = render::human_duration(now.duration_since(self.started));
        match self.eta(now) {
            Some(eta) => format!("elapsed {elapsed}, ETA {}", render::human_duration(eta)),
            None => format!("elapsed {elapsed}"),
        }
    }

    /// The status line: `rd-chain: factor loop 4/10 coding | accepted 2, SOTA loop 1 (IC 0.0412) | elapsed 12m 03s,
    /// ETA 25m 10s`.
    pub fn line(&self, now: Instant) -> String {
        let at = match &self.current {
            Some((id, Some(step))) => format!(
                "loop {}/{} {}",
                id + 1,
                self.loops_total,
                render::escape_value(step)
            ),
            Some((id, None)) => format!("loop {}/{}", id + 1, self.loops_total),
            None => format!("starting, {} loops", self.loops_total),
        };
        format!(
            "rd-chain: {} {at} | {} | {}",
            self.kind.name(),
            self.sota_text(),
            self.times_text(now)
        )
    }

    /// The plain line for a finished loop.
    fn loop_line(&self, loop_id: u64, now: Instant) -> String {
        format!(
            "rd-chain: {} loop {loop_id} finished ({} of {}): {}; {}",
            self.kind.name(),
            self.counts.finished,
            self.loops_total,
            self.sota_text(),
            self.times_text(now)
        )
    }
}

/// The watcher thread's side: polls, updates the status, reports.
struct Reporter {
    events: Arc<Events>,
    display: Display,
    status: Arc<Mutex<Status>>,
}

impl Reporter {
    fn run(&self, watcher: &mut SessionWatcher, stopped: &mpsc::Receiver<()>) {
        loop {
            let last = stopped.recv_timeout(POLL_EVERY);
            // One more look after the phase ended, so its last loop is reported.
            self.poll(watcher);
            match last {
                Err(RecvTimeoutError::Timeout) => {
                    if self.display == Display::StatusLine {
                        self.draw();
                    }
                }
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        if self.display == Display::StatusLine {
            eprint!("\r\x1b[K");
        }
    }

    fn poll(&self, watcher: &mut SessionWatcher) {
        let finished = watcher.poll(SystemTime::now());
        let now = Instant::now();
        let Ok(mut status) = self.status.lock() else {
            return;
        };
        status.current = watcher.current();
        if let Some(seen) = watcher.last_snapshot() {
            let ago = SystemTime::now().duration_since(seen).unwrap_or_default();
            status.last_snapshot = now.checked_sub(ago).unwrap_or(now).max(status.started);
        }
        for done in finished {
            status.counts = done.counts.clone();
            status.finished_here += 1;
            let eta = status.eta(now);
            self.events.loop_finished(
                status.kind,
                done.loop_id,
                status.loops_total,
                &status.counts,
                now.duration_since(status.started),
                eta,
            );
            if done.new_sota {
                self.events
                    .new_sota(status.kind, done.loop_id, &status.counts);
            }
            if self.display == Display::Lines {
                eprintln!("{}", status.loop_line(done.loop_id, now));
            }
        }
    }

    fn draw(&self) {
        let Ok(status) = self.status.lock() else {
            return;
        };
        let line: String = status
            .line(Instant::now())
            .chars()
            .take(STATUS_WIDTH)
            .collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{line}");
        let _ = err.flush();
    }
}

/// A running phase's watcher.
pub struct PhaseWatch {
    events: Arc<Events>,
    status: Arc<Mutex<Status>>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    output: Option<PathBuf>,
}

impl PhaseWatch {
    /// What is known now (for a stall watch: `since_last_snapshot`).
    pub fn status(&self) -> Option<Status> {
        self.status.lock().ok().map(|s| s.clone())
    }

    /// The events file.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// The phase ended with `exit_code` (128+N for a signal); `failed`: it failed on its own (not stopped by
    /// the user), so the tail of its output file is shown. Stops the watcher after one last look and emits
    /// `phase_end`.
    pub fn finish(mut self, exit_code: u8, failed: bool) {
        self.stop_thread();
        if let Some(status) = self.status() {
            self.events.phase_end(
                status.kind,
                exit_code,
                status.started.elapsed(),
                &status.counts,
            );
        }
        if failed {
            if let Some(path) = &self.output {
                eprint!("{}", tail_text(path, TAIL_LINES));
            }
        }
    }

    fn stop_thread(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for PhaseWatch {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// Append a heading for one attempt of a phase to its output file (every attempt appends to the same
/// `<phase>.out`), so the lines of a retry or a resume can be told from the earlier attempt's. A failed write
/// is only logged: rdagent's output still goes there.
pub fn attempt_heading(out: &Path, kind: PhaseKind, reason: &str, log_dir: &Path) {
    let line = format!(
        "==== rd-chain: {} phase, attempt ({reason}) at {}, log {} ====\n",
        kind.name(),
        crate::timestamp::Utc::now().iso(),
        log_dir.display()
    );
    let written = OpenOptions::new()
        .append(true)
        .open(out)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        log::warn!(
            "cannot write to rdagent's output file {}: {e}",
            out.display()
        );
    }
}

/// The run's name for its own folder: the run record's file name without `.json`.
fn run_name(record: &Path) -> String {
    record
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".to_string())
}

fn open_output(dir: &Path, path: &Path) -> Result<File> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io("cannot create rd-chain's output dir", dir, e))?;
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io("cannot create rdagent's output file", path, e))
}

/// The last `n` lines of the output file, escaped, under a heading naming the file.
pub fn tail_text(path: &Path, n: usize) -> String {
    let lines = match last_lines(path, n) {
        Ok(lines) => lines,
        Err(e) => {
            return render::escape_message(&format!(
                "rd-chain: cannot read rdagent's output {}: {e}\n",
                path.display()
            ))
        }
    };
    let mut out = render::escape_message(&format!(
        "rd-chain: the last {} line(s) of rdagent's output ({}):\n",
        lines.len(),
        path.display()
    ));
    for line in lines {
        out.push_str("  ");
        out.push_str(&render::escape_value(&line));
        out.push('\n');
    }
    out
}

/// The last `n` lines of a file, reading at most its last 256 KiB.
fn last_lines(path: &Path, n: usize) -> std::io::Result<Vec<String>> {
    const WINDOW: u64 = 256 * 1024;
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let from = len.saturating_sub(WINDOW);
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if from > 0 && !lines.is_empty() {
        // The first line is probably cut.
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(n);
    Ok(lines[skip..].iter().map(|l| l.to_string()).collect())
}

#[cfg(test)]
mod tests;
