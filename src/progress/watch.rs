//! Watching a running phase's session folder (`<log>/__session__/<loop>/<step>_<name>`) cheaply.
//!
//! A poll costs one `stat` of the session folder plus one per loop still running; a folder is listed again only
//! when its modification time moved (or is too recent to trust: a change within the file system's time
//! granularity leaves it unchanged). A snapshot is decoded only when a loop finishes (a loop's last step file
//! appears, or, while the last step is not known yet, a later loop starts), and only the newest finished
//! loop's, once per poll. Nothing is ever written; a file being written right now is read again at the next
//! poll. `Work` counts every stat, listing and decode so tests can hold the cost constant per poll.

use std::collections::btree_map::{BTreeMap, Entry};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::events::LoopCounts;
use crate::session::snapshot::{parse_loop_name, parse_step_name, read_snapshot, Reading};
use crate::session::HistoryEntry;

/// A listing is trusted only when it was taken this long after the folder's modification time: a change in
/// the same time tick (1 s or 2 s on coarse file systems) would not move the time.
const RACY: Duration = Duration::from_secs(2);
/// How often a finished loop's snapshot is read before the loop is reported without new counts.
const DECODE_TRIES: u32 = 3;

/// File-system and decoding work done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    pub stats: u64,
    pub listings: u64,
    pub decodes: u64,
}

/// A loop that finished, with the counts of the history up to it.
#[derive(Clone, Debug, PartialEq)]
pub struct FinishedLoop {
    pub loop_id: u64,
    pub counts: LoopCounts,
    /// Its experiment is the new SOTA (the last accepted one changed).
    pub new_sota: bool,
}

/// A folder as last listed: its modification time and when the listing was taken.
#[derive(Clone, Copy, Debug)]
struct Listed {
    mtime: SystemTime,
    at: SystemTime,
}

impl Listed {
    /// Whether a folder whose time is now `mtime` must be listed again.
    fn stale(seen: Option<Listed>, mtime: SystemTime) -> bool {
        match seen {
            None => true,
            Some(l) => l.mtime != mtime || l.at < l.mtime + RACY,
        }
    }
}

#[derive(Debug, Default)]
struct LoopDir {
    listed: Option<Listed>,
    /// Step index -> file name.
    steps: BTreeMap<u64, String>,
    finished: bool,
}

impl LoopDir {
    fn last_step(&self) -> Option<(u64, &str)> {
        self.steps.iter().next_back().map(|(i, n)| (*i, n.as_str()))
    }
}

/// The watcher of one session folder.
#[derive(Debug)]
pub struct SessionWatcher {
    session_dir: PathBuf,
    listed: Option<Listed>,
    loops: BTreeMap<u64, LoopDir>,
    /// The index of a loop's last step, once known (RD-Agent 1.0: 4, `record`).
    last_step: Option<u64>,
    /// Finished loops whose counts are not known yet, and how often their snapshot was tried.
    pending: Vec<u64>,
    tries: u32,
    counts: LoopCounts,
    sota_index: Option<usize>,
    /// The first poll that found the folder: what was there is the baseline, not news.
    baseline_done: bool,
    /// When a new snapshot file was last seen.
    last_snapshot: Option<SystemTime>,
    pub work: Work,
}

impl SessionWatcher {
    /// Watch `<log_dir>/__session__`. Signatures are not checked here (progress only shows counts; the SOTA's
    /// snapshot is checked when it is resolved), so a key mismatch is not warned about once per loop.
    pub fn new(log_dir: &Path) -> SessionWatcher {
        SessionWatcher {
            session_dir: log_dir.join(crate::session::SESSION_DIR),
            listed: None,
            loops: BTreeMap::new(),
            last_step: None,
            pending: Vec::new(),
            tries: 0,
            counts: LoopCounts::default(),
            sota_index: None,
            baseline_done: false,
            last_snapshot: None,
            work: Work::default(),
        }
    }

    /// The counts after the last reported loop.
    pub fn counts(&self) -> &LoopCounts {
        &self.counts
    }

    /// When a new snapshot file was last seen (`None`: none since watching began).
    pub fn last_snapshot(&self) -> Option<SystemTime> {
        self.last_snapshot
    }

    /// The loop running now (the highest loop folder) and the name of its newest step (`2_running` ->
    /// `running`; `done` once that loop has finished).
    pub fn current(&self) -> Option<(u64, Option<String>)> {
        let (id, dir) = self.loops.iter().next_back()?;
        let step = if dir.finished {
            Some("done".to_string())
        } else {
            dir.last_step()
                .map(|(_, name)| step_title(name).to_string())
        };
        Some((*id, step))
    }

    /// Take what the folder holds before the phase starts as the baseline: its finished loops are counted
    /// (the newest one's snapshot is read once) but never reported. Call once, before the first `poll`.
    pub fn baseline(&mut self, now: SystemTime) {
        self.poll(now);
    }

    /// Look at the folder once; returns the loops that finished since the last poll, in loop order. `now` is
    /// the wall clock (compared with modification times).
    pub fn poll(&mut self, now: SystemTime) -> Vec<FinishedLoop> {
        self.work.stats += 1;
        let Some(mtime) = mtime_of(&self.session_dir) else {
            self.baseline_done = true;
            return Vec::new();
        };
        if Listed::stale(self.listed, mtime) {
            self.list_session(now, mtime);
        }
        let open: Vec<u64> = self
            .loops
            .iter()
            .filter(|(_, d)| !d.finished)
            .map(|(id, _)| *id)
            .collect();
        for id in &open {
            self.refresh_loop(*id, now);
        }
        let newly = self.finish_loops();
        if !self.baseline_done {
            self.baseline_done = true;
            // What finished before watching began: counted, read once, not reported.
            self.counts.finished = newly.len() as u64;
            if let Some(last) = newly.last() {
                if let Some(history) = self.decode(*last) {
                    let (counts, sota) = counts_at(&history, *last, self.counts.finished);
                    self.counts = counts;
                    self.sota_index = sota;
                }
            }
            self.last_snapshot = None;
            return Vec::new();
        }
        self.pending.extend(newly);
        self.report_pending()
    }

    fn list_session(&mut self, now: SystemTime, mtime: SystemTime) {
        self.work.listings += 1;
        let Ok(entries) = fs::read_dir(&self.session_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Some(id) = parse_loop_name(&entry.file_name()) else {
                continue;
            };
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                self.loops.entry(id).or_default();
            }
        }
        self.listed = Some(Listed { mtime, at: now });
    }

    fn refresh_loop(&mut self, id: u64, now: SystemTime) {
        let dir = self.session_dir.join(id.to_string());
        self.work.stats += 1;
        let Some(mtime) = mtime_of(&dir) else {
            return;
        };
        let Some(state) = self.loops.get_mut(&id) else {
            return;
        };
        if !Listed::stale(state.listed, mtime) {
            return;
        }
        self.work.listings += 1;
        let Ok(entries) = fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(step) = parse_step_name(&name) else {
                continue;
            };
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            if let Entry::Vacant(slot) = state.steps.entry(step) {
                slot.insert(name.to_string_lossy().into_owned());
                self.last_snapshot = Some(now);
            }
        }
        state.listed = Some(Listed { mtime, at: now });
    }

    /// Mark the loops that are now finished; returns them in order.
    fn finish_loops(&mut self) -> Vec<u64> {
        let highest = self.loops.keys().next_back().copied();
        let mut done = Vec::new();
        for (id, dir) in self.loops.iter_mut() {
            if dir.finished {
                continue;
            }
            let Some((last, name)) = dir.last_step() else {
                continue;
            };
            let by_name = step_title(name) == "record";
            let by_known_last = self.last_step.is_some_and(|l| last >= l);
            let by_next_loop = self.last_step.is_none() && highest.is_some_and(|h| h > *id);
            if by_name || by_known_last || by_next_loop {
                dir.finished = true;
                if self.last_step.is_none() {
                    self.last_step = Some(last);
                }
                done.push(*id);
            }
        }
        done
    }

    /// Report the pending loops with counts read from the newest one's snapshot.
    fn report_pending(&mut self) -> Vec<FinishedLoop> {
        let Some(&newest) = self.pending.iter().max() else {
            return Vec::new();
        };
        let history = self.decode(newest);
        if history.is_none() {
            self.tries += 1;
            if self.tries < DECODE_TRIES {
                return Vec::new();
            }
        }
        self.tries = 0;
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_unstable();
        let mut out = Vec::new();
        for id in pending {
            self.counts.finished += 1;
            let new_sota = match &history {
                Some(h) => {
                    let (counts, sota) = counts_at(h, id, self.counts.finished);
                    let changed = sota.is_some() && sota != self.sota_index;
                    self.counts = counts;
                    self.sota_index = sota;
                    changed
                }
                None => false,
            };
            out.push(FinishedLoop {
                loop_id: id,
                counts: self.counts.clone(),
                new_sota,
            });
        }
        out
    }

    /// The history of loop `id`'s newest snapshot, or `None` when it cannot be read yet.
    fn decode(&mut self, id: u64) -> Option<Vec<HistoryEntry>> {
        let (_, name) = self.loops.get(&id)?.last_step()?;
        let path = self.session_dir.join(id.to_string()).join(name);
        self.work.decodes += 1;
        match read_snapshot(&path, None, Reading::Everything) {
            Ok(read) => Some(read.history),
            Err(why) => {
                log::debug!("progress: cannot read {} yet: {why}", path.display());
                None
            }
        }
    }
}

/// `3_feedback` -> `feedback`.
fn step_title(name: &str) -> &str {
    name.split_once('_').map_or(name, |(_, rest)| rest)
}

fn mtime_of(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).ok()?.modified().ok()
}

/// The counts of `history` up to loop `upto` (entries without a loop id count: they are in the history), and
/// the index of the SOTA entry.
fn counts_at(history: &[HistoryEntry], upto: u64, finished: u64) -> (LoopCounts, Option<usize>) {
    let mut counts = LoopCounts {
        finished,
        ..LoopCounts::default()
    };
    let mut sota = None;
    for entry in history {
        if entry.loop_id.is_some_and(|l| l > upto) || entry.decision != Some(true) {
            continue;
        }
        counts.accepted += 1;
        counts.sota_loop = entry.loop_id;
        counts.ic = entry
            .metrics
            .as_ref()
            .and_then(|m| m.iter().find(|(label, _)| label == "IC").map(|(_, v)| *v));
        sota = Some(entry.index);
    }
    (counts, sota)
}
