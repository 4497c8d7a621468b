//! Finding and opening session snapshots: `<log>/__session__/<loop>/<step>_<name>` files, which of them to
//! read, and RD-Agent 1.0's signed envelope around the pickle.
//!
//! Reads only the few files needed to decide which snapshot has the most complete history (never every file
//! of a long run), and never executes a snapshot: the payload goes to `crate::pickle::decode`. The HMAC of a
//! signed file's HMAC is checked when the key is at hand (see `signature`); nothing in the payload is ever run.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::SystemTime;

use crate::pickle::{self, Options};

use super::history::{era, loop_class, read_history, HistoryEntry};
use super::mapped::{open_bytes, read_at_most, Bytes};
use super::signature::{Signature, SigningKey};

/// The directory RD-Agent writes snapshots to, inside a log directory.
pub const SESSION_DIR: &str = "__session__";
/// The first bytes of an RD-Agent 1.0 signed snapshot.
pub const SIGNED_MAGIC: &[u8] = b"RDAGENT_SIGNED_PICKLE_V1\n";
/// The HMAC-SHA256 that follows the magic.
pub const HMAC_LEN: usize = 32;
/// How many of the highest-numbered loops contribute their last snapshot as a candidate.
pub const LAST_LOOPS: usize = 3;
/// Snapshot files larger than this are skipped with a warning instead of read (the whole file is held in memory
/// while it is decoded). RD-Agent's snapshots are a few MB, and hundreds of MB for very long runs; 4 GiB leaves
/// an order of magnitude above those, and stops a multi-GB file that is no snapshot from costing that much RAM.
pub const MAX_SNAPSHOT_BYTES: u64 = 4 << 30;
/// Payloads longer than this stay lengths only: metrics need a few floats, numpy blobs are never copied.
pub const KEEP_BYTES_UP_TO: usize = 4096;
/// Strs longer than this stay places in the file, never copied nor checked as UTF-8: the history needs class
/// names, attribute names, paths (at most 4,095 bytes on Linux) and metric names, never a step's stdout.
pub const KEEP_STR_UP_TO: usize = 4096;
/// Values no reader of a snapshot looks at, only skimmed by the decoder: `based_experiments` lists every accepted
/// experiment so far, so over a run these lists hold a number of references that grows with the square of the
/// loops (half the opcodes of a 1,000-loop snapshot). An experiment they define first is decoded when something
/// else refers to it.
pub const SKIP_VALUES_OF: &[&str] = &["based_experiments"];
/// What the history reader (`read_snapshot`: resolve, inspect's tables, list, live progress) skims as well: it
/// takes each entry's classes, workspace path, result and decision, never an experiment's hypothesis (its
/// presence alone tells an entry's items apart), tasks, their code, the per-task results, the trace's parent
/// links, nor the loop's own bookkeeping (`loop_trace`: the start and end of every step; `timer`, `tracker`):
/// together about two fifths of a 1,000-loop snapshot's opcodes (a hypothesis is about 45 opcodes more an
/// entry). `details` decodes the hypothesis, tasks and code where it needs them (the SOTA's factors).
pub const HISTORY_SKIPS: &[&str] = HISTORY_SKIPS_WITHOUT_METRICS.split_at(METRICS_KEYS).1;
/// `HISTORY_SKIPS` and each experiment's result (`running_info` from RD-Agent 0.7, `result` before): a pandas
/// Series of metrics, a sixth of a 1,000-loop snapshot's opcodes, skimmed when the command shows no metrics.
pub const HISTORY_SKIPS_WITHOUT_METRICS: &[&str] = &[
    "running_info",
    "result",
    "based_experiments",
    "hypothesis",
    "sub_tasks",
    "sub_workspace_list",
    "sub_results",
    "file_dict",
    "dag_parent",
    "loop_trace",
    "timer",
    "tracker",
];
/// How many of `HISTORY_SKIPS_WITHOUT_METRICS`'s keys, first, hold the metrics.
const METRICS_KEYS: usize = 2;

/// Whether the history's metrics are read: `resolve` without `--json` prints a path and needs none (every
/// entry's `metrics` is then `None`); everything else reads them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reading {
    #[default]
    Everything,
    WithoutMetrics,
}

impl Reading {
    /// The keys the history reader skims.
    pub fn skips(self) -> &'static [&'static str] {
        match self {
            Reading::Everything => HISTORY_SKIPS,
            Reading::WithoutMetrics => HISTORY_SKIPS_WITHOUT_METRICS,
        }
    }
}

/// One snapshot file: `<session>/<loop>/<step>_<name>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SnapshotFile {
    pub loop_id: u64,
    pub step: u64,
    pub path: PathBuf,
}

/// What the user pointed at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A log directory (or its `__session__`): choose among its snapshots.
    Session {
        log_dir: PathBuf,
        session_dir: PathBuf,
    },
    /// One snapshot file: read exactly that one.
    File {
        log_dir: PathBuf,
        path: PathBuf,
        loop_id: Option<u64>,
        step: Option<u64>,
    },
}

/// `<int>` directory names: a loop.
pub fn parse_loop_name(name: &OsStr) -> Option<u64> {
    let bytes = name.as_encoded_bytes();
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// `<int>_<anything>` file names: a step.
pub fn parse_step_name(name: &OsStr) -> Option<u64> {
    let bytes = name.as_encoded_bytes();
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || bytes.get(digits) != Some(&b'_') {
        return None;
    }
    std::str::from_utf8(&bytes[..digits]).ok()?.parse().ok()
}

fn is_named(path: &Path, name: &str) -> bool {
    path.file_name() == Some(OsStr::new(name))
}

/// Work out what `path` (absolute) is: a log dir, a `__session__` dir, or one snapshot file.
pub fn locate(path: &Path) -> crate::Result<Input> {
    let meta = fs::metadata(path).map_err(|e| {
        crate::Error::resolution(format!(
            "cannot use {}: {e}; pass a log directory (log/<run>), its {SESSION_DIR} directory or one snapshot file",
            path.display()
        ))
    })?;
    if meta.is_file() {
        let parent = path.parent().unwrap_or(path);
        let grandparent = parent.parent();
        let in_session = parse_loop_name(parent.file_name().unwrap_or_default()).is_some()
            && grandparent.is_some_and(|g| is_named(g, SESSION_DIR));
        let (log_dir, loop_id) = if in_session {
            let session = grandparent.expect("checked above");
            (
                session.parent().unwrap_or(session).to_path_buf(),
                parse_loop_name(parent.file_name().unwrap_or_default()),
            )
        } else {
            (parent.to_path_buf(), None)
        };
        return Ok(Input::File {
            log_dir,
            path: path.to_path_buf(),
            loop_id,
            step: parse_step_name(path.file_name().unwrap_or_default()),
        });
    }
    let session = path.join(SESSION_DIR);
    if session.is_dir() {
        return Ok(Input::Session {
            log_dir: path.to_path_buf(),
            session_dir: session,
        });
    }
    if is_named(path, SESSION_DIR) {
        return Ok(Input::Session {
            log_dir: path.parent().unwrap_or(path).to_path_buf(),
            session_dir: path.to_path_buf(),
        });
    }
    if let (Some(_), Some(session)) = (
        parse_loop_name(path.file_name().unwrap_or_default()),
        path.parent(),
    ) {
        if is_named(session, SESSION_DIR) {
            return Err(crate::Error::resolution(format!(
                "{} is the directory of one loop: pass the log directory {} (or one snapshot file)",
                path.display(),
                session.parent().unwrap_or(session).display()
            )));
        }
    }
    Err(crate::Error::resolution(format!(
        "no {SESSION_DIR} directory in {}: RD-Agent writes its snapshots to <log dir>/{SESSION_DIR}/<loop>/<step>_<name>; \
         pass a run directory such as log/2026-01-14_16-14-52-886218 (a run that has finished at least one step)",
        path.display()
    )))
}

/// The snapshot files of a session directory, sorted by (loop, step), and how many loop directories it has.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Listing {
    pub files: Vec<SnapshotFile>,
    /// Modification time of each file in `files` (same order): only the last step of each loop is asked.
    pub mtimes: Vec<Option<SystemTime>>,
    /// Directories named `<int>`.
    pub loop_dirs: usize,
}

impl Listing {
    /// The file with the newest modification time (ties: highest (loop, step)).
    pub fn newest(&self) -> Option<usize> {
        (0..self.files.len())
            .filter(|i| self.mtimes[*i].is_some())
            .max_by_key(|i| (self.mtimes[*i], *i))
    }
}

/// The directories of one loop id (normally one; `7` and `007` are both loop 7) and, once read, its files.
#[derive(Clone, Debug)]
struct LoopDirs {
    loop_id: u64,
    /// The directory's name in the session directory, and those of any more directories of the same loop id.
    name: std::ffi::OsString,
    more: Vec<std::ffi::OsString>,
    /// Sorted by (step, path); `None` until the directories are read.
    files: Option<Vec<SnapshotFile>>,
    /// Modification time of the loop's last step (or, while the loop is unread, of the file assumed to be it).
    time: Option<SystemTime>,
}

impl LoopDirs {
    /// The loop's directories, under `session_dir`.
    fn dirs(&self, session_dir: &Path) -> Vec<PathBuf> {
        std::iter::once(&self.name)
            .chain(&self.more)
            .map(|name| session_dir.join(name))
            .collect()
    }
}

/// The `<int>` directories of a session, grouped by loop id and sorted, and how many directories there are.
/// Entry types come from the directory entries; a symlink is followed with one `stat`.
fn loop_dirs_of(session_dir: &Path) -> crate::Result<(Vec<LoopDirs>, usize)> {
    let cannot = |e: std::io::Error| {
        crate::Error::resolution(format!(
            "cannot list the snapshots in {}: {e}",
            session_dir.display()
        ))
    };
    // Names only: a loop's path is made when its directory is read (most never are).
    let mut dirs: Vec<(u64, std::ffi::OsString)> = Vec::new();
    for entry in fs::read_dir(session_dir).map_err(cannot)? {
        let entry = entry.map_err(cannot)?;
        let name = entry.file_name();
        let Some(loop_id) = parse_loop_name(&name) else {
            continue;
        };
        if entry_is(&entry, fs::FileType::is_dir) {
            dirs.push((loop_id, name));
        }
    }
    let count = dirs.len();
    dirs.sort_unstable();
    let mut loops: Vec<LoopDirs> = Vec::with_capacity(count);
    for (loop_id, name) in dirs {
        match loops.last_mut() {
            Some(l) if l.loop_id == loop_id => l.more.push(name),
            _ => loops.push(LoopDirs {
                loop_id,
                name,
                more: Vec::new(),
                files: None,
                time: None,
            }),
        }
    }
    Ok((loops, count))
}

/// The `<int>_<name>` regular files of one loop's directories, sorted by (step, path); other entries are
/// ignored, and a directory that cannot be listed is skipped with a warning.
fn read_loop(loop_id: u64, dirs: &[PathBuf]) -> Vec<SnapshotFile> {
    let mut files = Vec::new();
    for dir in dirs {
        let Ok(steps) = fs::read_dir(dir) else {
            log::warn!("cannot list {}: skipping that loop", dir.display());
            continue;
        };
        for step_entry in steps.flatten() {
            let Some(step) = parse_step_name(&step_entry.file_name()) else {
                continue;
            };
            if entry_is(&step_entry, fs::FileType::is_file) {
                files.push(SnapshotFile {
                    loop_id,
                    step,
                    path: step_entry.path(),
                });
            }
        }
    }
    files.sort();
    files
}

fn modified(path: &Path) -> Option<SystemTime> {
    crate::work::add(1);
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// List `<session>/<int>/<int>_<name>` files; other entries are ignored. Every loop directory is read.
///
/// Entry types come from the directory entries (no `stat` per entry; symlinks are followed with one), and only
/// the last step of each loop is asked for its modification time: steps of one loop are written in order, so
/// that file is the loop's newest, and the newest of those is the newest file of the session.
pub fn list_snapshots(session_dir: &Path) -> crate::Result<Listing> {
    let (loops, loop_dirs) = loop_dirs_of(session_dir)?;
    let mut listing = Listing {
        loop_dirs,
        ..Listing::default()
    };
    for l in &loops {
        let files = read_loop(l.loop_id, &l.dirs(session_dir));
        let last = files.len().checked_sub(1);
        for (i, file) in files.into_iter().enumerate() {
            listing.mtimes.push(if Some(i) == last {
                modified(&file.path)
            } else {
                None
            });
            listing.files.push(file);
        }
    }
    Ok(listing)
}

/// The `<session>/<int>/<int>_<name>` files, sorted by (loop, step): names only, no `stat` of any file.
pub fn snapshot_names(session_dir: &Path) -> crate::Result<Vec<SnapshotFile>> {
    let (loops, _) = loop_dirs_of(session_dir)?;
    Ok(loops
        .iter()
        .flat_map(|l| read_loop(l.loop_id, &l.dirs(session_dir)))
        .collect())
}

/// Whether a directory entry is a directory / regular file (`is`), from its type in the directory listing; a
/// symlink (or a file system that gives no type) is followed with one `stat`.
fn entry_is(entry: &fs::DirEntry, is: fn(&fs::FileType) -> bool) -> bool {
    match entry.file_type() {
        Ok(t) if !t.is_symlink() => is(&t),
        _ => fs::metadata(entry.path()).is_ok_and(|m| is(&m.file_type())),
    }
}

/// A place in a `SessionListing`: (index of the loop, index of the file in that loop's sorted files). Ordered
/// like the files' (loop, step, path).
pub type LoopStep = (usize, usize);

/// A session's snapshots, listed only as far as choosing among them needs, with the same outcome as the full
/// `list_snapshots`:
/// - `__session__` is listed once (entry types from the directory entries);
/// - the highest loops are read, down to the `LAST_LOOPS`-th with files and further until two loops in a row
///   end with the same step (loops still running in parallel can end early; finished ones end alike); the last
///   step name seen there (e.g. `4_record`) is what every older loop is expected to end with;
/// - the newest file is looked for only when asked (`choose_in` asks once the highest file has not settled the
///   choice, so a sequential run times no loop): then each older loop's newest-file time costs one `stat`, of
///   that expected last file; a loop without it (a loop that stopped early, another RD-Agent release) is read
///   and its real last step asked instead;
/// - the loop holding the newest file is read, and if its last step is not the expected one the real last
///   step is asked and the newest chosen again; other loops are read only when `choose` falls back to them.
///
/// One case differs from reading every loop: an older loop that holds the expected file and also a later step
/// than any loop read is timed by the expected file (written before that later step), so it is missed as the
/// newest if that later step is. RD-Agent writes the same steps in every loop of a run, so this takes older
/// loops with more steps than every loop read.
#[derive(Clone, Debug)]
pub struct SessionListing {
    session_dir: PathBuf,
    loops: Vec<LoopDirs>,
    loop_dirs: usize,
    /// The step every loop is expected to end with (the last step of the highest loops read).
    expected: Option<std::ffi::OsString>,
    /// The newest file, once asked for.
    newest: Option<Option<LoopStep>>,
}

impl SessionListing {
    /// List `session_dir` as far as the first candidates need (the newest file is found when asked).
    pub fn open(session_dir: &Path) -> crate::Result<SessionListing> {
        let (loops, loop_dirs) = loop_dirs_of(session_dir)?;
        let mut listing = SessionListing {
            session_dir: session_dir.to_path_buf(),
            loops,
            loop_dirs,
            expected: None,
            newest: None,
        };
        let mut with_files: Vec<usize> = Vec::new();
        for li in (0..listing.loops.len()).rev() {
            if with_files.len() >= LAST_LOOPS.max(2) {
                let (a, b) = (
                    with_files[with_files.len() - 2],
                    with_files[with_files.len() - 1],
                );
                let name = |li: usize| listing.last_file(li).and_then(|f| f.path.file_name());
                if name(a) == name(b) {
                    break;
                }
            }
            if !listing.read(li).is_empty() {
                with_files.push(li);
            }
        }
        listing.expected = with_files
            .iter()
            .filter_map(|li| listing.last_file(*li))
            .max_by(|a, b| (a.step, a.path.file_name()).cmp(&(b.step, b.path.file_name())))
            .and_then(|f| f.path.file_name())
            .map(OsStr::to_os_string);
        Ok(listing)
    }

    /// Time every loop by its last step (an unread loop by one `stat` of the expected file) and find the newest.
    fn find_newest(&mut self) -> Option<LoopStep> {
        let expected = self.expected.clone();
        for li in 0..self.loops.len() {
            if self.loops[li].files.is_none() {
                let l = &self.loops[li];
                if let (Some(name), true) = (&expected, l.more.is_empty()) {
                    crate::work::add(1);
                    if let Ok(meta) = fs::metadata(self.session_dir.join(&l.name).join(name)) {
                        if meta.is_file() {
                            self.loops[li].time = meta.modified().ok();
                            continue;
                        }
                    }
                }
                self.read(li);
            }
            self.time_last_step(li);
        }
        // The newest by (time, place), as `Listing::newest`; a loop timed by its expected file is read first.
        while let Some(li) = (0..self.loops.len())
            .filter(|li| self.loops[*li].time.is_some())
            .max_by_key(|li| (self.loops[*li].time, *li))
        {
            if let Some(files) = &self.loops[li].files {
                return Some((li, files.len() - 1));
            }
            let assumed = expected
                .as_ref()
                .map(|name| self.session_dir.join(&self.loops[li].name).join(name));
            self.read(li);
            if self.last_file(li).map(|f| &f.path) != assumed.as_ref() {
                self.time_last_step(li);
            }
        }
        None
    }

    /// Directories named `<int>`.
    pub fn loop_dirs(&self) -> usize {
        self.loop_dirs
    }

    /// Whether the session holds any snapshot file (known without reading every loop: the highest loops are
    /// read until one with files is found).
    pub fn has_files(&self) -> bool {
        self.loops
            .iter()
            .any(|l| l.files.as_ref().is_some_and(|f| !f.is_empty()))
    }

    /// The file with the newest modification time (ties: highest (loop, step)), found on first use.
    pub fn newest(&mut self) -> Option<LoopStep> {
        if self.newest.is_none() {
            self.newest = Some(self.find_newest());
        }
        self.newest.flatten()
    }

    /// How many loops' directories have been read so far.
    pub fn loops_read(&self) -> usize {
        self.loops.iter().filter(|l| l.files.is_some()).count()
    }

    /// The file at `at` (a place this listing gave out).
    pub fn file(&self, at: LoopStep) -> &SnapshotFile {
        &self.loops[at.0]
            .files
            .as_ref()
            .expect("a place given out is read")[at.1]
    }

    /// The files of loop `li`, read on first use (one listing per directory).
    fn read(&mut self, li: usize) -> &[SnapshotFile] {
        let l = &mut self.loops[li];
        if l.files.is_none() {
            crate::work::add(1 + l.more.len());
            l.files = Some(read_loop(l.loop_id, &l.dirs(&self.session_dir)));
        }
        l.files.as_deref().unwrap_or_default()
    }

    fn last_file(&self, li: usize) -> Option<&SnapshotFile> {
        self.loops[li].files.as_ref().and_then(|f| f.last())
    }

    /// Ask the last step of read loop `li` for its time (no file: no time).
    fn time_last_step(&mut self, li: usize) {
        self.loops[li].time = self.last_file(li).and_then(|f| modified(&f.path));
    }
}

/// Where `choose` takes its files from: a complete list, or a `SessionListing` that reads loops on demand.
pub trait Snapshots {
    /// A file's place, ordered like the files' (loop, step, path).
    type At: Copy + Ord;
    fn file(&self, at: Self::At) -> &SnapshotFile;
    /// The first files to read: the last file of each of the `LAST_LOOPS` highest loops (the first of them is
    /// the highest file of all).
    fn initial(&mut self) -> BTreeSet<Self::At>;
    /// The file with the newest modification time: a candidate too, but never above the highest file, so
    /// `choose_in` asks for it only when the highest file does not settle the choice.
    fn newest(&mut self) -> Option<Self::At>;
    /// The file just before `at` in the same loop.
    fn previous_step(&mut self, at: Self::At) -> Option<Self::At>;
    /// The file just before `at` in (loop, step) order, whatever its loop; from the last file when `at` is
    /// `None`.
    fn before(&mut self, at: Option<Self::At>) -> Option<Self::At>;
}

/// A complete list of files sorted by (loop, step), and the index of the newest.
struct Complete<'a> {
    files: &'a [SnapshotFile],
    newest: Option<usize>,
}

impl Snapshots for Complete<'_> {
    type At = usize;
    fn file(&self, at: usize) -> &SnapshotFile {
        &self.files[at]
    }
    fn initial(&mut self) -> BTreeSet<usize> {
        initial_candidates(self.files, None)
    }
    fn newest(&mut self) -> Option<usize> {
        self.newest
    }
    fn previous_step(&mut self, at: usize) -> Option<usize> {
        at.checked_sub(1)
            .filter(|p| self.files[*p].loop_id == self.files[at].loop_id)
    }
    fn before(&mut self, at: Option<usize>) -> Option<usize> {
        at.unwrap_or(self.files.len()).checked_sub(1)
    }
}

impl Snapshots for SessionListing {
    type At = LoopStep;
    fn file(&self, at: LoopStep) -> &SnapshotFile {
        SessionListing::file(self, at)
    }
    fn initial(&mut self) -> BTreeSet<LoopStep> {
        let mut chosen = BTreeSet::new();
        for li in (0..self.loops.len()).rev() {
            if chosen.len() == LAST_LOOPS {
                break;
            }
            if let Some(last) = self.read(li).len().checked_sub(1) {
                chosen.insert((li, last));
            }
        }
        chosen
    }
    fn newest(&mut self) -> Option<LoopStep> {
        SessionListing::newest(self)
    }
    fn previous_step(&mut self, at: LoopStep) -> Option<LoopStep> {
        at.1.checked_sub(1).map(|s| (at.0, s))
    }
    fn before(&mut self, at: Option<LoopStep>) -> Option<LoopStep> {
        let mut li = match at {
            None => self.loops.len(),
            Some((li, 0)) => li,
            Some((li, s)) => return Some((li, s - 1)),
        };
        while li > 0 {
            li -= 1;
            if let Some(last) = self.read(li).len().checked_sub(1) {
                return Some((li, last));
            }
        }
        None
    }
}

/// The candidates: the last snapshot of each of the `LAST_LOOPS` highest loops, plus `newest`, the newest by
/// modification time (with parallel loops that is the one written last, holding the latest trace). `choose_in`
/// starts from these without the newest and queues it once the highest file has been read, as it sorts below.
pub fn initial_candidates(files: &[SnapshotFile], newest: Option<usize>) -> BTreeSet<usize> {
    let mut chosen = BTreeSet::new();
    let mut loops_seen = 0;
    for i in (0..files.len()).rev() {
        if loops_seen == LAST_LOOPS {
            break;
        }
        if i + 1 == files.len() || files[i + 1].loop_id != files[i].loop_id {
            chosen.insert(i);
            loops_seen += 1;
        }
    }
    chosen.extend(newest);
    chosen
}

/// The outcome of reading candidates; `At` is a file's place (an index into a complete list by default).
#[derive(Debug)]
pub struct Choice<T, At = usize> {
    /// The file's place and what was read from it.
    pub best: Option<(At, T)>,
    /// Every file read, in the order read.
    pub tried: Vec<At>,
    /// Files that could not be read, with the reason.
    pub skipped: Vec<(At, String)>,
}

/// Read candidates in descending (loop, step) order and keep the one with the longest history (ties: the
/// highest (loop, step), i.e. the first read). A file that fails is replaced by the previous step of its loop;
/// if every candidate fails, older files are tried one by one. Stops early once a history is at least
/// `loop_dirs` long: no snapshot can hold more entries than there are loops.
pub fn choose<T>(
    files: &[SnapshotFile],
    newest: Option<usize>,
    loop_dirs: usize,
    read: impl FnMut(&SnapshotFile) -> Result<T, String>,
    hist_len: impl Fn(&T) -> usize,
) -> Choice<T> {
    choose_in(&mut Complete { files, newest }, loop_dirs, read, hist_len)
}

/// `choose` over any source of files (a `SessionListing` reads a loop's directory only when it gets there).
pub fn choose_in<S: Snapshots, T>(
    files: &mut S,
    loop_dirs: usize,
    mut read: impl FnMut(&SnapshotFile) -> Result<T, String>,
    hist_len: impl Fn(&T) -> usize,
) -> Choice<T, S::At> {
    let mut queue = files.initial();
    let mut choice = Choice {
        best: None,
        tried: Vec::new(),
        skipped: Vec::new(),
    };
    // What was tried, and where the descending fallback scan has got to: every file is looked at a bounded
    // number of times however many fail (no scan of `tried` inside a scan of the files).
    let mut was_tried = BTreeSet::new();
    let mut fallback = None;
    let mut newest_queued = false;
    loop {
        // The newest file joins once the highest has been read without settling the choice: it sorts at or
        // below that one, so the files read and their order are as if it had been queued from the start, and a
        // sequential run (settled by its highest file) never times its older loops.
        if !newest_queued && !choice.tried.is_empty() {
            newest_queued = true;
            if let Some(newest) = files.newest().filter(|n| !was_tried.contains(n)) {
                queue.insert(newest);
            }
        }
        let next = match queue.pop_last() {
            Some(i) => i,
            None if choice.best.is_none() => {
                let mut found = None;
                while let Some(j) = files.before(fallback) {
                    fallback = Some(j);
                    if !was_tried.contains(&j) {
                        found = Some(j);
                        break;
                    }
                    crate::work::add(1);
                }
                match found {
                    Some(j) => j,
                    None => break,
                }
            }
            None => break,
        };
        crate::work::add(1);
        if !was_tried.insert(next) {
            continue;
        }
        choice.tried.push(next);
        let file = files.file(next);
        match read(file) {
            Ok(value) => {
                let len = hist_len(&value);
                let better = choice
                    .best
                    .as_ref()
                    .is_none_or(|(_, best)| len > hist_len(best));
                if better {
                    choice.best = Some((next, value));
                }
                if len >= loop_dirs {
                    break;
                }
            }
            Err(reason) => {
                log::warn!("skipping snapshot {}: {reason}", file.path.display());
                choice.skipped.push((next, reason));
                if let Some(previous) = files.previous_step(next) {
                    if !was_tried.contains(&previous) {
                        queue.insert(previous);
                    }
                }
            }
        }
    }
    choice
}

/// A snapshot's bytes with the envelope taken off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// RD-Agent 1.0's `RDAGENT_SIGNED_PICKLE_V1` envelope.
    pub signed: bool,
    /// The envelope's HMAC-SHA256 of the payload (signed files only).
    pub mac: Option<&'a [u8]>,
    pub payload: &'a [u8],
}

/// Take RD-Agent 1.0's signed envelope off, or pass a bare pickle through.
pub fn open_envelope(data: &[u8]) -> Result<Envelope<'_>, String> {
    let prefix_len = data.len().min(SIGNED_MAGIC.len());
    if !data.is_empty() && data[..prefix_len] == SIGNED_MAGIC[..prefix_len] {
        let header = SIGNED_MAGIC.len() + HMAC_LEN;
        if data.len() <= header {
            return Err(format!(
                "signed envelope cut short: {} bytes, the header alone is {header}",
                data.len()
            ));
        }
        return Ok(Envelope {
            signed: true,
            mac: Some(&data[SIGNED_MAGIC.len()..header]),
            payload: &data[header..],
        });
    }
    Ok(Envelope {
        signed: false,
        mac: None,
        payload: data,
    })
}

/// What one snapshot file holds.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadSnapshot {
    pub signed: bool,
    pub signature: Signature,
    pub protocol: u8,
    pub bytes: u64,
    pub loop_class: Option<String>,
    /// Which RD-Agent release the snapshot looks like (`history::era`).
    pub era: String,
    pub history: Vec<HistoryEntry>,
}

/// Read, unwrap and decode one snapshot file, and take its history (with its metrics or not: `reading`); the
/// error is the reason, for a warning. Files larger than `MAX_SNAPSHOT_BYTES` are refused.
pub fn read_snapshot(
    path: &Path,
    key: Option<&SigningKey>,
    reading: Reading,
) -> Result<ReadSnapshot, String> {
    read_snapshot_within(path, key, MAX_SNAPSHOT_BYTES, reading)
}

/// `read_snapshot` with the size limit given. Reads at most the size the file had when it was opened: a file
/// still being appended to is read as it was then (and is normally cut short, so it fails to decode).
pub fn read_snapshot_within(
    path: &Path,
    key: Option<&SigningKey>,
    limit: u64,
    reading: Reading,
) -> Result<ReadSnapshot, String> {
    let data = read_capped(path, limit)?;
    if data.is_empty() {
        return Err("empty file (0 bytes): being written, or cut short".to_string());
    }
    let read = snapshot_releasing(&data, key, path, reading, &|n| data.release_before(n));
    if !data.changed() {
        return read;
    }
    // The file shrank while it was mapped: what was read from it is void. Read it again, as it is now.
    drop(data);
    log::warn!(
        "snapshot {} changed while it was being read: reading it again",
        path.display()
    );
    let data = read_capped_into_buffer(path, limit)?;
    if data.is_empty() {
        return Err("empty file (0 bytes): being written, or cut short".to_string());
    }
    snapshot_releasing(&data, key, path, reading, &|_| {})
}

fn open_capped(path: &Path, limit: u64) -> Result<(fs::File, fs::Metadata), String> {
    let cannot = |e: std::io::Error| format!("cannot read it: {e}");
    let file = fs::File::open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    let len = meta.len();
    if len > limit {
        return Err(format!(
            "it is {len} bytes, more than the {limit}-byte limit for a snapshot (RD-Agent writes a few MB): \
             not read; move it out of the session directory if it is in the way"
        ));
    }
    Ok((file, meta))
}

/// The file's bytes up to its size at open time: mapped or read (see `mapped`).
fn read_capped(path: &Path, limit: u64) -> Result<Bytes, String> {
    let (file, meta) = open_capped(path, limit)?;
    open_bytes(file, meta.len(), meta.modified().ok()).map_err(|e| format!("cannot read it: {e}"))
}

fn read_capped_into_buffer(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let (file, meta) = open_capped(path, limit)?;
    read_at_most(file, meta.len()).map_err(|e| format!("cannot read it: {e}"))
}

fn decode_history(
    payload: &[u8],
    options: &Options,
    done: &mut dyn FnMut(usize),
) -> Result<(pickle::Graph, Vec<HistoryEntry>), String> {
    let graph = pickle::decode_reporting(payload, options, done)
        .map_err(|e| format!("not a complete pickle ({e})"))?;
    let history =
        read_history(&graph).map_err(|e| format!("not an RD-Agent loop snapshot: {}", e.0))?;
    Ok((graph, history))
}

/// Unwrap and decode the bytes of one snapshot file (`path` only names it in warnings), and take its history.
pub fn snapshot_from_bytes(
    data: &[u8],
    key: Option<&SigningKey>,
    path: &Path,
) -> Result<ReadSnapshot, String> {
    snapshot_releasing(data, key, path, Reading::Everything, &|_| {})
}

/// `snapshot_from_bytes`, calling `release(n)` whenever no byte of `data` before `n` will be read again by the
/// decoder nor the HMAC (a mapped file's pages then leave the resident memory behind them).
fn snapshot_releasing(
    data: &[u8],
    key: Option<&SigningKey>,
    path: &Path,
    reading: Reading,
    release: &(dyn Fn(usize) + Sync),
) -> Result<ReadSnapshot, String> {
    let envelope = open_envelope(data)?;
    let base = envelope.payload.as_ptr() as usize - data.as_ptr() as usize;
    let options = Options {
        keep_bytes_up_to: KEEP_BYTES_UP_TO,
        keep_str_up_to: KEEP_STR_UP_TO,
        skip_values_of: reading.skips(),
        ..Options::default()
    };
    // The HMAC (SHA-256 over the whole payload) and the decoding each read every byte: with a key and a signed
    // file they run side by side, the HMAC on a second thread, so checking costs no more time than the longer
    // of the two.
    let (decoded, signature) = if envelope.mac.is_some() && key.is_some() {
        // Both read front to back: what lies before the slower of the two is given back.
        let (decoded_to, hashed_to) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let give_back = || release(base + decoded_to.load(Relaxed).min(hashed_to.load(Relaxed)));
        std::thread::scope(|s| {
            // The thread only hashes, and says how far it has got.
            let hmac = s.spawn(|| {
                key.map(|key| {
                    key.mac_reporting(envelope.payload, &|n| {
                        hashed_to.store(n, Relaxed);
                        give_back();
                    })
                })
            });
            let decoded = decode_history(envelope.payload, &options, &mut |n| {
                decoded_to.store(n, Relaxed);
                give_back();
            });
            let want = hmac
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (decoded, Signature::judge(envelope.mac, want, key))
        })
    } else {
        (
            decode_history(envelope.payload, &options, &mut |n| release(base + n)),
            Signature::check(envelope.mac, envelope.payload, key),
        )
    };
    let (graph, history) = decoded?;
    if let (Signature::Mismatch { key_source }, false) = (&signature, mismatches_refused()) {
        log::warn!(
            "snapshot {}: its HMAC does not match the key from {key_source}: the file was changed after RD-Agent \
             wrote it, or it was signed with another key (it is read anyway; nothing in it is run)",
            path.display()
        );
    }
    let read = ReadSnapshot {
        signed: envelope.signed,
        signature,
        protocol: graph.protocol,
        bytes: data.len() as u64,
        loop_class: loop_class(&graph),
        era: era(&graph, &history, envelope.signed, graph.protocol),
        history,
    };
    discard(graph);
    Ok(read)
}

/// Set when a snapshot whose signature does not verify is refused, not read (see `refuse_mismatches`).
static MISMATCH_REFUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// For a command that refuses a snapshot whose signature does not verify (`resolve --verify`): the reader then
/// does not warn that it reads such a snapshot anyway, since the command's error says what is wrong with it.
pub fn refuse_mismatches() {
    MISMATCH_REFUSED.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn mismatches_refused() -> bool {
    MISMATCH_REFUSED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Set once a command will exit right after reading (see `skip_freeing_graphs`).
static SKIP_FREEING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// For a command that exits right after reading snapshots (`resolve`, `inspect`): decoded graphs are then not
/// freed node by node (about a sixth of the decode's instructions at 1,000 loops) but left to the process's
/// exit. They are few: the candidates decoded, one for a sequential run. Long-lived work (`list`, the chain,
/// progress) frees each graph as before.
pub fn skip_freeing_graphs() {
    SKIP_FREEING.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn discard(graph: pickle::Graph) {
    if SKIP_FREEING.load(std::sync::atomic::Ordering::Relaxed) {
        std::mem::forget(graph);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(unix)]
    use std::ffi::OsString;

    fn files(spec: &[(u64, u64)]) -> Vec<SnapshotFile> {
        let mut v: Vec<SnapshotFile> = spec
            .iter()
            .map(|(l, s)| SnapshotFile {
                loop_id: *l,
                step: *s,
                path: PathBuf::from(format!("{l}/{s}_x")),
            })
            .collect();
        v.sort();
        v
    }

    fn names(files: &[SnapshotFile], idx: impl IntoIterator<Item = usize>) -> Vec<(u64, u64)> {
        idx.into_iter()
            .map(|i| (files[i].loop_id, files[i].step))
            .collect()
    }

    #[test]
    fn parses_loop_and_step_names_numerically() {
        assert_eq!(parse_loop_name(OsStr::new("10")), Some(10));
        assert_eq!(parse_loop_name(OsStr::new("007")), Some(7));
        assert_eq!(parse_loop_name(OsStr::new("1a")), None);
        assert_eq!(parse_loop_name(OsStr::new("")), None);
        assert_eq!(parse_loop_name(OsStr::new("99999999999999999999999")), None);
        assert_eq!(parse_step_name(OsStr::new("4_feedback")), Some(4));
        assert_eq!(parse_step_name(OsStr::new("12_record")), Some(12));
        assert_eq!(parse_step_name(OsStr::new("0_")), Some(0));
        assert_eq!(parse_step_name(OsStr::new("feedback")), None);
        assert_eq!(parse_step_name(OsStr::new("3feedback")), None);
        assert_eq!(parse_step_name(OsStr::new(".3_x.swp")), None);
        assert_eq!(parse_step_name(OsStr::new("3")), None);
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStringExt;
            let odd = OsString::from_vec(b"2_r\xffsult".to_vec());
            assert_eq!(parse_step_name(&odd), Some(2));
        }
        let mut v = files(&[(9, 3), (10, 0), (2, 11), (2, 9)]);
        v.sort();
        assert_eq!(names(&v, 0..4), vec![(2, 9), (2, 11), (9, 3), (10, 0)]);
    }

    #[test]
    fn candidates_are_the_last_step_of_the_last_loops_plus_the_newest() {
        let f = files(&[
            (0, 0),
            (0, 3),
            (1, 0),
            (1, 3),
            (2, 0),
            (2, 3),
            (3, 0),
            (3, 3),
            (4, 0),
            (4, 1),
        ]);
        assert_eq!(
            names(&f, initial_candidates(&f, None)),
            vec![(2, 3), (3, 3), (4, 1)]
        );
        assert_eq!(
            names(&f, initial_candidates(&f, Some(1))),
            vec![(0, 3), (2, 3), (3, 3), (4, 1)]
        );
        assert_eq!(
            names(&f, initial_candidates(&f, Some(9))),
            vec![(2, 3), (3, 3), (4, 1)]
        );
        let one = files(&[(0, 0)]);
        assert_eq!(names(&one, initial_candidates(&one, None)), vec![(0, 0)]);
        assert!(initial_candidates(&[], None).is_empty());
    }

    /// (best, tried, skipped) as (loop, step) pairs.
    type ChooseOutcome = (Option<(u64, u64)>, Vec<(u64, u64)>, Vec<(u64, u64)>);

    /// Runs `choose` where each file's "history length" comes from `lens` (None: the file fails).
    fn run_choose(
        f: &[SnapshotFile],
        lens: &[Option<usize>],
        newest: Option<usize>,
        loop_dirs: usize,
    ) -> ChooseOutcome {
        let choice = choose(
            f,
            newest,
            loop_dirs,
            |file| {
                let i = f.iter().position(|x| x == file).unwrap();
                lens[i].ok_or_else(|| "truncated".to_string())
            },
            |len| *len,
        );
        (
            choice.best.map(|(i, _)| (f[i].loop_id, f[i].step)),
            names(f, choice.tried),
            names(f, choice.skipped.into_iter().map(|(i, _)| i)),
        )
    }

    #[test]
    fn stops_early_when_the_history_covers_every_loop() {
        let f = files(&[(0, 3), (1, 3), (2, 3)]);
        let (best, tried, skipped) = run_choose(&f, &[Some(1), Some(2), Some(3)], Some(2), 3);
        assert_eq!(best, Some((2, 3)));
        assert_eq!(tried, vec![(2, 3)]);
        assert!(skipped.is_empty());
    }

    #[test]
    fn a_longer_history_in_a_lower_loop_wins_and_ties_go_to_the_highest() {
        // Parallel loops: loop 3 started (short trace) after loop 2 finished (longer).
        let f = files(&[(1, 3), (2, 3), (3, 0)]);
        let (best, tried, _) = run_choose(&f, &[Some(2), Some(3), Some(2)], None, 4);
        assert_eq!(best, Some((2, 3)));
        assert_eq!(tried, vec![(3, 0), (2, 3), (1, 3)]);
        let (best, _, _) = run_choose(&f, &[Some(2), Some(2), Some(2)], None, 4);
        assert_eq!(best, Some((3, 0)));
    }

    #[test]
    fn the_newest_file_by_mtime_is_a_candidate_even_in_an_old_loop() {
        let f = files(&[(0, 3), (1, 3), (2, 3), (3, 0), (4, 0), (5, 0)]);
        let (best, tried, _) = run_choose(
            &f,
            &[Some(5), Some(1), Some(2), Some(3), Some(3), Some(3)],
            Some(0),
            6,
        );
        assert_eq!(best, Some((0, 3)));
        assert_eq!(tried, vec![(5, 0), (4, 0), (3, 0), (0, 3)]);
    }

    #[test]
    fn a_failing_file_is_replaced_by_the_previous_step_of_its_loop() {
        let f = files(&[(0, 3), (1, 0), (1, 1), (1, 2), (1, 3)]);
        let lens = [Some(1), Some(1), Some(1), Some(1), None];
        let (best, tried, skipped) = run_choose(&f, &lens, Some(4), 2);
        assert_eq!(best, Some((1, 2)));
        assert_eq!(tried, vec![(1, 3), (1, 2), (0, 3)]);
        assert_eq!(skipped, vec![(1, 3)]);
    }

    #[test]
    fn when_every_candidate_fails_older_files_are_tried_until_one_reads() {
        let f = files(&[(0, 0), (0, 1), (1, 0), (2, 0), (3, 0)]);
        let lens = [None, Some(0), None, None, None];
        let (best, tried, skipped) = run_choose(&f, &lens, None, 4);
        assert_eq!(best, Some((0, 1)));
        assert_eq!(tried, vec![(3, 0), (2, 0), (1, 0), (0, 1)]);
        assert_eq!(skipped.len(), 3);
        let (best, tried, _) = run_choose(&f, &[None; 5], None, 4);
        assert_eq!(best, None);
        assert_eq!(tried.len(), 5, "every file was tried once");
    }

    #[test]
    fn when_every_file_fails_choosing_costs_linear_work() {
        let count = |n: usize| {
            let f: Vec<SnapshotFile> = (0..n as u64)
                .map(|l| SnapshotFile {
                    loop_id: l,
                    step: 0,
                    path: PathBuf::from(format!("{l}/0_x")),
                })
                .collect();
            crate::work::take();
            let mut reads = 0;
            let choice = choose(
                &f,
                None,
                n,
                |_| -> Result<usize, String> {
                    reads += 1;
                    Err("truncated".to_string())
                },
                |len| *len,
            );
            let work = crate::work::take();
            assert!(choice.best.is_none());
            assert_eq!((reads, choice.tried.len(), choice.skipped.len()), (n, n, n));
            work
        };
        let (w1, w2) = (count(200), count(800));
        assert!(
            w2 <= 5 * w1 && w2 <= 16 * 800,
            "choosing among failing files: work grew from {w1} (200 files) to {w2} (800 files)"
        );
    }

    #[test]
    fn envelope_signed_bare_and_cut_short() {
        let mut signed = SIGNED_MAGIC.to_vec();
        signed.extend_from_slice(&[7u8; HMAC_LEN]);
        signed.extend_from_slice(b"\x80\x05N.");
        let e = open_envelope(&signed).unwrap();
        assert!(e.signed);
        assert_eq!(e.payload, b"\x80\x05N.");
        let bare = b"\x80\x04N.";
        assert_eq!(
            open_envelope(bare).unwrap(),
            Envelope {
                signed: false,
                mac: None,
                payload: bare
            }
        );
        assert!(open_envelope(&signed[..SIGNED_MAGIC.len() + HMAC_LEN])
            .unwrap_err()
            .contains("cut short"));
        assert!(open_envelope(&signed[..10])
            .unwrap_err()
            .contains("cut short"));
        // "R" alone is a prefix of the magic: a signed file cut after one byte.
        assert!(open_envelope(b"R").is_err());
        assert!(!open_envelope(b"RX").unwrap().signed);
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("rd-chain-snapshot-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn lists_snapshots_numerically_and_ignores_other_entries() {
        let dir = temp_dir("list");
        let session = dir.join(SESSION_DIR);
        for (l, s) in [
            ("9", "3_feedback"),
            ("10", "0_direct_exp_gen"),
            ("10", "10_x"),
            ("10", "2_running"),
            ("2", "1_coding"),
        ] {
            fs::create_dir_all(session.join(l)).unwrap();
            fs::write(session.join(l).join(s), b"x").unwrap();
        }
        fs::create_dir_all(session.join("notes")).unwrap();
        fs::write(session.join("notes").join("1_x"), b"x").unwrap();
        fs::write(session.join("10").join("README"), b"x").unwrap();
        fs::create_dir_all(session.join("10").join("3_dir")).unwrap();
        fs::write(session.join("11"), b"a file named like a loop").unwrap();
        fs::create_dir_all(session.join("12")).unwrap();
        crate::work::take();
        let listing = list_snapshots(&session).unwrap();
        let stats = crate::work::take();
        let got: Vec<(u64, u64)> = listing.files.iter().map(|f| (f.loop_id, f.step)).collect();
        assert_eq!(got, vec![(2, 1), (9, 3), (10, 0), (10, 2), (10, 10)]);
        assert_eq!(listing.loop_dirs, 4, "2, 9, 10 and the empty 12");
        assert!(listing.files[4].path.ends_with("10/10_x"));
        // Only the last step of each loop is asked for its time: one stat per loop with files.
        let timed: Vec<bool> = listing.mtimes.iter().map(Option::is_some).collect();
        assert_eq!(timed, vec![true, true, false, false, true]);
        assert_eq!(stats, 3);

        // locate: log dir, __session__, a file, a loop dir, a dir without a session.
        let file = session.join("10").join("2_running");
        assert_eq!(
            locate(&dir).unwrap(),
            Input::Session {
                log_dir: dir.clone(),
                session_dir: session.clone()
            }
        );
        assert_eq!(
            locate(&session).unwrap(),
            Input::Session {
                log_dir: dir.clone(),
                session_dir: session.clone()
            }
        );
        assert_eq!(
            locate(&file).unwrap(),
            Input::File {
                log_dir: dir.clone(),
                path: file.clone(),
                loop_id: Some(10),
                step: Some(2)
            }
        );
        let loop_err = locate(&session.join("10")).unwrap_err().to_string();
        assert!(
            loop_err.contains("one loop") && loop_err.contains(&dir.display().to_string()),
            "{loop_err}"
        );
        let none = locate(&session.join("12")).unwrap_err().to_string();
        assert!(none.contains("one loop"), "{none}");
        let loose = dir.join("loose");
        fs::write(&loose, b"x").unwrap();
        assert_eq!(
            locate(&loose).unwrap(),
            Input::File {
                log_dir: dir.clone(),
                path: loose.clone(),
                loop_id: None,
                step: None
            }
        );
        let other = dir.join("other");
        fs::create_dir_all(&other).unwrap();
        let msg = locate(&other).unwrap_err().to_string();
        assert!(
            msg.contains("no __session__ directory") && msg.contains(&other.display().to_string()),
            "{msg}"
        );
        let missing = locate(&dir.join("missing")).unwrap_err().to_string();
        assert!(missing.contains("missing"), "{missing}");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Parallel loops: loop 3's first step written after loop 2's last; the newest file is found from the last
    /// step of each loop alone, and symlinked loops and steps are followed.
    #[cfg(unix)]
    #[test]
    fn the_newest_file_comes_from_the_last_step_of_each_loop() {
        let dir = temp_dir("newest");
        let session = dir.join(SESSION_DIR);
        let at =
            |s: u64| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000 + s);
        for (l, s, t) in [(1, 0, 1), (1, 1, 2), (2, 0, 3), (2, 1, 6), (3, 0, 5)] {
            fs::create_dir_all(session.join(l.to_string())).unwrap();
            let path = session.join(l.to_string()).join(format!("{s}_x"));
            fs::write(&path, b"x").unwrap();
            fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(at(t))
                .unwrap();
        }
        let listing = list_snapshots(&session).unwrap();
        let newest = listing
            .newest()
            .map(|i| (listing.files[i].loop_id, listing.files[i].step));
        assert_eq!(newest, Some((2, 1)));
        // A loop dir and a step file reached through symlinks are listed like the real ones.
        let elsewhere = dir.join("elsewhere");
        fs::create_dir_all(&elsewhere).unwrap();
        fs::write(elsewhere.join("0_x"), b"x").unwrap();
        std::os::unix::fs::symlink(&elsewhere, session.join("4")).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("0_x"), session.join("3").join("1_x")).unwrap();
        let listing = list_snapshots(&session).unwrap();
        let got: Vec<(u64, u64)> = listing.files.iter().map(|f| (f.loop_id, f.step)).collect();
        assert_eq!(
            got,
            vec![(1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1), (4, 0)]
        );
        assert_eq!(listing.loop_dirs, 4);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// RD-Agent 1.0's steps.
    const STEPS: [&str; 5] = [
        "0_direct_exp_gen",
        "1_coding",
        "2_running",
        "3_feedback",
        "4_record",
    ];

    /// `(loop dir, step file, modification time in seconds)` for loops `0..n`, each with every step, written in
    /// order.
    fn sequential(n: u64) -> Vec<(String, String, u64)> {
        (0..n)
            .flat_map(|l| {
                STEPS
                    .iter()
                    .enumerate()
                    .map(move |(s, name)| (l.to_string(), name.to_string(), l * 10 + s as u64))
            })
            .collect()
    }

    /// A session directory holding `spec`'s files (times set as given).
    fn session_of(name: &str, spec: &[(String, String, u64)]) -> (PathBuf, PathBuf) {
        let dir = temp_dir(name);
        let session = dir.join(SESSION_DIR);
        for (l, s, t) in spec {
            let path = session.join(l).join(s);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, b"x").unwrap();
            let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000 + t);
            fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(at)
                .unwrap();
        }
        (dir, session)
    }

    /// (best, tried, skipped) as paths.
    type PathOutcome = (Option<PathBuf>, Vec<PathBuf>, Vec<PathBuf>);

    /// Chooses in `session` with the complete listing and with `SessionListing`, where a file whose path ends
    /// with one of `failing` cannot be read and the others hold `loop / 2` entries; asserts both listings give
    /// the same loop count, newest file and choice, and returns the lazy listing and the choice.
    fn same_choice(session: &Path, failing: &[&str]) -> (SessionListing, PathOutcome) {
        let read = |f: &SnapshotFile| {
            if failing.iter().any(|s| f.path.ends_with(s)) {
                Err("truncated".to_string())
            } else {
                Ok(f.loop_id as usize / 2)
            }
        };
        let full = list_snapshots(session).unwrap();
        let c = choose(&full.files, full.newest(), full.loop_dirs, read, |n| *n);
        let path = |i: usize| full.files[i].path.clone();
        let want: PathOutcome = (
            c.best.map(|(i, _)| path(i)),
            c.tried.into_iter().map(path).collect(),
            c.skipped.into_iter().map(|(i, _)| path(i)).collect(),
        );
        let mut lazy = SessionListing::open(session).unwrap();
        assert_eq!(lazy.loop_dirs(), full.loop_dirs);
        assert_eq!(lazy.has_files(), !full.files.is_empty());
        let loop_dirs = lazy.loop_dirs();
        let c = choose_in(&mut lazy, loop_dirs, read, |n| *n);
        let got: PathOutcome = (
            c.best.map(|(at, _)| lazy.file(at).path.clone()),
            c.tried
                .iter()
                .map(|at| lazy.file(*at).path.clone())
                .collect(),
            c.skipped
                .iter()
                .map(|(at, _)| lazy.file(*at).path.clone())
                .collect(),
        );
        assert_eq!(got, want, "best, tried, skipped");
        assert_eq!(
            lazy.newest().map(|at| lazy.file(at).path.clone()),
            full.newest().map(path),
            "newest file"
        );
        (lazy, got)
    }

    #[test]
    fn choosing_in_a_sequential_run_reads_three_loops_and_finding_the_newest_one_stat_per_older_loop(
    ) {
        let cost = |n: u64| {
            let (dir, session) = session_of(&format!("cost{n}"), &sequential(n));
            crate::work::take();
            let mut listing = SessionListing::open(&session).unwrap();
            let opened = crate::work::take();
            assert_eq!(
                listing.loops_read(),
                3,
                "{n} loops: only the last three are read"
            );
            // A sequential run's highest file holds every loop: it settles the choice, nothing is timed.
            let loop_dirs = listing.loop_dirs();
            let choice = choose_in(
                &mut listing,
                loop_dirs,
                |f| Ok::<_, String>(f.loop_id as usize + 1),
                |n| *n,
            );
            let chose = crate::work::take();
            assert_eq!(choice.tried.len(), 1);
            assert!(listing
                .file(choice.best.unwrap().0)
                .path
                .ends_with(format!("{}/4_record", n - 1)));
            assert_eq!(listing.loops_read(), 3);
            // The newest file, asked for, times each older loop with one stat of its expected last step.
            assert!(listing.newest().is_some());
            let timed = crate::work::take();
            assert_eq!(listing.loops_read(), 3);
            // And the outcome is the complete listing's when the highest file does not settle it.
            let (listing, (best, _, _)) = same_choice(&session, &[]);
            assert!(best.unwrap().ends_with(format!("{}/4_record", n - 1)));
            assert_eq!(listing.loops_read(), 3);
            fs::remove_dir_all(&dir).unwrap();
            (opened, chose, timed)
        };
        let ((o1, c1, t1), (o4, c4, t4)) = (cost(25), cost(100));
        assert_eq!((o1, o4), (3, 3), "opening reads the last three loops");
        assert_eq!(
            (c1, c4),
            (1, 1),
            "choosing reads one file, whatever the length"
        );
        // One stat per loop: an older loop's expected last step, a read loop's last file.
        assert_eq!(
            t4 - t1,
            75,
            "timing grew from {t1} (25 loops) to {t4} (100 loops)"
        );
        assert_eq!(t1, 25);
    }

    #[test]
    fn older_loops_without_the_expected_last_step_are_read() {
        let mut spec: Vec<_> = sequential(12)
            .into_iter()
            // Loop 3 stopped after running; loop 5 lost a middle step; loop 7's last step is a directory.
            .filter(|(l, s, _)| !(l == "3" && s.starts_with(['3', '4'])))
            .filter(|(l, s, _)| !(l == "5" && s == "2_running"))
            .filter(|(l, s, _)| !(l == "7" && s == "4_record"))
            .collect();
        // Loops 0 and 1 come from a release without `4_record`; the newest loop is still running.
        spec.retain(|(l, s, _)| !((l == "0" || l == "1") && s == "4_record"));
        spec.retain(|(l, s, _)| !(l == "11" && s != "0_direct_exp_gen"));
        let (dir, session) = session_of("steps", &spec);
        fs::create_dir_all(session.join("7").join("4_record")).unwrap();
        // Entries that are no loops or steps.
        fs::create_dir_all(session.join("notes")).unwrap();
        fs::write(session.join("notes").join("4_record"), b"x").unwrap();
        fs::write(session.join("12"), b"a file named like a loop").unwrap();
        fs::write(session.join("4").join("README"), b"x").unwrap();
        crate::work::take();
        let (listing, (best, tried, _)) = same_choice(&session, &[]);
        // Read: loops 11, 10, 9 (candidates), and 0, 1, 3 and 7, which lack a `4_record` file.
        assert_eq!(listing.loops_read(), 7);
        assert_eq!(listing.loop_dirs(), 12);
        // Loops 11 and 10 hold as many entries: the highest wins.
        assert!(best.unwrap().ends_with("11/0_direct_exp_gen"), "{tried:?}");
        assert_eq!(tried.len(), 3, "{tried:?}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parallel_loops_still_running_do_not_set_the_expected_last_step() {
        // Loops 6, 7 and 8 run side by side and stopped after different steps; loop 5 finished last.
        let spec: Vec<_> = sequential(9)
            .into_iter()
            .filter(|(l, s, _)| match l.as_str() {
                "8" => s.as_str() < "1",
                "7" => s.as_str() < "2",
                "6" => s.as_str() < "4",
                _ => true,
            })
            .map(|(l, s, t)| {
                let t = if l == "5" && s == "4_record" { 1000 } else { t };
                (l, s, t)
            })
            .collect();
        let (dir, session) = session_of("parallel", &spec);
        let (mut listing, _) = same_choice(&session, &[]);
        // 8, 7, 6, then 5 and 4, which end alike: `4_record` is what older loops are asked for.
        assert_eq!(listing.loops_read(), 5);
        assert_eq!(
            listing.newest().map(|at| listing.file(at).path.clone()),
            Some(session.join("5").join("4_record"))
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn an_old_loop_holding_the_newest_file_is_a_candidate_also_through_a_symlink() {
        let mut spec = sequential(10);
        // Loop 2 finished last (parallel loops); loop 4 rewrote its steps later still, but only up to
        // `3_feedback`, so its last step, `4_record`, is older: the newest file is loop 2's.
        for (l, s, t) in spec.iter_mut() {
            if l == "2" && s == "4_record" {
                *t = 1000;
            }
            if l == "4" && s.as_str() < "4" {
                *t = 2000;
            }
        }
        // Loop 3 has a step after `4_record` (written before it): its `4_record` is not its newest file.
        spec.push(("3".to_string(), "5_extra".to_string(), 5));
        for (l, s, t) in spec.iter_mut() {
            if l == "3" && s == "4_record" {
                *t = 3000;
            }
        }
        let (dir, session) = session_of("old-newest", &spec);
        // Loop 6 lives elsewhere, reached through a symlink.
        let elsewhere = dir.join("elsewhere");
        fs::rename(session.join("6"), &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, session.join("6")).unwrap();
        let (mut listing, (best, tried, _)) = same_choice(&session, &[]);
        assert_eq!(
            listing.newest().map(|at| listing.file(at).path.clone()),
            Some(session.join("2").join("4_record"))
        );
        assert!(
            tried.contains(&session.join("2").join("4_record")),
            "{tried:?}"
        );
        assert!(best.unwrap().ends_with("9/4_record"));
        assert_eq!(
            listing.loops_read(),
            5,
            "7, 8, 9, 3 (checked) and 2 (the newest file's loop)"
        );
        assert_eq!(listing.loop_dirs(), 10);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failing_files_fall_back_into_older_loops_as_the_complete_listing_does() {
        let mut spec = sequential(8);
        for (l, s, t) in spec.iter_mut() {
            if l == "1" && s == "4_record" {
                *t = 1000;
            }
        }
        let (dir, session) = session_of("fallback", &spec);
        // The newest file (in loop 1) fails: the step before it in loop 1 is read instead.
        let (_, (best, tried, skipped)) = same_choice(&session, &["1/4_record"]);
        assert!(best.unwrap().ends_with("7/4_record"));
        assert!(
            tried.contains(&session.join("1").join("3_feedback")),
            "{tried:?}"
        );
        assert_eq!(skipped, vec![session.join("1").join("4_record")]);
        // Every candidate fails: older files are scanned down to one that reads.
        let failing: Vec<String> = sequential(8)
            .into_iter()
            .filter(|(l, _, _)| l.as_str() >= "3" || l == "1")
            .map(|(l, s, _)| format!("{l}/{s}"))
            .collect();
        let failing: Vec<&str> = failing.iter().map(String::as_str).collect();
        let (listing, (best, _, skipped)) = same_choice(&session, &failing);
        assert!(best.unwrap().ends_with("2/4_record"));
        assert_eq!(skipped.len(), 30);
        assert_eq!(
            listing.loops_read(),
            7,
            "every loop down to 2, and 1 (the newest file)"
        );
        // No file reads at all: every loop is read, in the same order as the complete listing.
        let all: Vec<String> = sequential(8)
            .into_iter()
            .map(|(l, s, _)| format!("{l}/{s}"))
            .collect();
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let (listing, (best, tried, _)) = same_choice(&session, &all);
        assert_eq!((best, tried.len(), listing.loops_read()), (None, 40, 8));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_empty_session_or_one_of_empty_loops_has_no_files() {
        let dir = temp_dir("empty");
        let session = dir.join(SESSION_DIR);
        fs::create_dir_all(session.join("0")).unwrap();
        fs::create_dir_all(session.join("1")).unwrap();
        let (listing, (best, tried, _)) = same_choice(&session, &[]);
        assert!(!listing.has_files() && best.is_none() && tried.is_empty());
        assert_eq!((listing.loop_dirs(), listing.loops_read()), (2, 2));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn newest_prefers_mtime_then_position() {
        let t = |s: u64| Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s));
        let listing = Listing {
            files: files(&[(0, 0), (1, 0), (2, 0)]),
            mtimes: vec![t(5), t(9), t(9)],
            loop_dirs: 3,
        };
        assert_eq!(listing.newest(), Some(2));
        let listing = Listing {
            files: files(&[(0, 0), (1, 0), (2, 0)]),
            mtimes: vec![t(10), None, t(9)],
            loop_dirs: 3,
        };
        assert_eq!(listing.newest(), Some(0));
    }

    #[test]
    fn a_file_over_the_size_limit_is_skipped_with_a_reason_naming_the_limit() {
        let dir = temp_dir("cap");
        let data = crate::session::hostile::shared_experiment(2, 1);
        let path = dir.join("0_x");
        fs::write(&path, &data).unwrap();
        let n = data.len() as u64;
        let read = read_snapshot_within(&path, None, n, Reading::Everything)
            .expect("at the limit it is read");
        assert_eq!((read.bytes, read.history.len()), (n, 2));
        let reason = read_snapshot_within(&path, None, n - 1, Reading::Everything).unwrap_err();
        assert!(
            reason.contains(&format!("{n} bytes"))
                && reason.contains(&format!("{}-byte limit", n - 1)),
            "{reason}"
        );
        // In a session directory the file is skipped and the one before it used; the warning names it.
        let f = files(&[(0, 0), (0, 1)]);
        let choice = choose(
            &f,
            None,
            5,
            |file| {
                if file.step == 1 {
                    read_snapshot_within(&path, None, n - 1, Reading::Everything)
                } else {
                    read_snapshot_within(&path, None, n, Reading::Everything)
                }
            },
            |r| r.history.len(),
        );
        assert_eq!(choice.best.map(|(i, _)| i), Some(0));
        assert!(choice.skipped[0].1.contains("limit"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_growing_file_is_read_only_up_to_its_size_at_open_time() {
        use std::io::Write;
        let dir = temp_dir("grow");
        let path = dir.join("0_x");
        fs::write(&path, b"first part").unwrap();
        let file = fs::File::open(&path).unwrap();
        let len = file.metadata().unwrap().len();
        let mut writer = fs::OpenOptions::new().append(true).open(&path).unwrap();
        writer.write_all(&[b'x'; 100_000]).unwrap();
        writer.flush().unwrap();
        assert_eq!(read_at_most(file, len).unwrap(), b"first part");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reading_reports_empty_and_unreadable_files() {
        let dir = temp_dir("read");
        let empty = dir.join("0_x");
        fs::write(&empty, b"").unwrap();
        assert!(read_snapshot(&empty, None, Reading::Everything)
            .unwrap_err()
            .contains("empty"));
        assert!(
            read_snapshot(&dir.join("missing"), None, Reading::Everything)
                .unwrap_err()
                .contains("cannot read")
        );
        let cut = dir.join("1_x");
        fs::write(&cut, &SIGNED_MAGIC[..20]).unwrap();
        assert!(read_snapshot(&cut, None, Reading::Everything)
            .unwrap_err()
            .contains("cut short"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
