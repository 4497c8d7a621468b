//! RD-Agent session snapshots: where they are, which one to read, and the experiment history inside it.
//!
//! `load` takes a log directory, its `__session__` directory or one snapshot file and returns the history of
//! the snapshot with the most complete `trace.hist`. It reads only a handful of files, never executes a
//! snapshot, and never looks at workspaces (that is `resolve`).

pub mod details;
pub mod history;
#[cfg(test)]
pub(crate) mod hostile;
pub mod mapped;
pub mod metrics;
pub mod numpy;
pub mod paths;
pub mod signature;
pub mod snapshot;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use history::{ExperimentKind, HistoryEntry, LoopSource};
pub use metrics::Metrics;
pub use paths::{PathFlavour, RecordedPath};
pub use signature::{Signature, SigningKey, Verify};
pub use snapshot::{Input, Reading, SnapshotFile, SESSION_DIR};

use snapshot::{choose_in, locate, read_snapshot, snapshot_names, ReadSnapshot, SessionListing};

/// The snapshot a history was read from.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotInfo {
    pub path: PathBuf,
    /// From `__session__/<loop>/`; `None` for a loose file given directly.
    pub loop_id: Option<u64>,
    /// From `<step>_<name>`.
    pub step: Option<u64>,
    /// RD-Agent 1.0's signed envelope.
    pub signed: bool,
    /// Whether the envelope's HMAC matches the signing key (when there is one to check with).
    pub signature: Signature,
    /// The pickle protocol.
    pub protocol: u8,
    pub bytes: u64,
    /// The top object's class, e.g. `rdagent.app.qlib_rd_loop.factor.FactorRDLoop`.
    pub loop_class: Option<String>,
    /// One line naming the RD-Agent release the snapshot looks like.
    pub era: String,
}

/// A file that was read and could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// The history of one run, from its best snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub log_dir: PathBuf,
    /// `None` when one snapshot file was given directly.
    pub session_dir: Option<PathBuf>,
    /// Loop directories (`__session__/<int>`); 0 for a file given directly.
    pub loop_dirs: usize,
    /// Snapshot files in the session (1 for a file given directly), counted when first asked.
    pub snapshot_files: SnapshotCount,
    pub snapshot: SnapshotInfo,
    pub history: Vec<HistoryEntry>,
    /// Candidates that could not be read (a snapshot being written right now is cut short).
    pub skipped: Vec<Skipped>,
    /// How many snapshot files were read (including the skipped ones).
    pub candidates_read: usize,
}

/// How many snapshot files a session holds. Counting reads every loop directory, which choosing a snapshot
/// does not need, so it is done when first asked: only by the commands that show the number.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotCount {
    session_dir: Option<PathBuf>,
    /// `None` inside: the session directory could not be listed.
    counted: OnceLock<Option<usize>>,
}

impl SnapshotCount {
    /// A number already known.
    pub fn known(n: usize) -> SnapshotCount {
        SnapshotCount {
            session_dir: None,
            counted: OnceLock::from(Some(n)),
        }
    }

    /// The `<loop>/<step>_<name>` files of `session_dir`, counted when first asked.
    pub fn of(session_dir: &Path) -> SnapshotCount {
        SnapshotCount {
            session_dir: Some(session_dir.to_path_buf()),
            counted: OnceLock::new(),
        }
    }

    /// The number of snapshot files; `None` when the session directory can no longer be listed (with a warning).
    pub fn get(&self) -> Option<usize> {
        *self.counted.get_or_init(|| {
            let dir = self.session_dir.as_deref()?;
            snapshot_names(dir)
                .map(|files| files.len())
                .map_err(|e| log::warn!("{e}: the snapshot files are not counted"))
                .ok()
        })
    }
}

fn info(path: &Path, loop_id: Option<u64>, step: Option<u64>, read: &ReadSnapshot) -> SnapshotInfo {
    SnapshotInfo {
        path: path.to_path_buf(),
        loop_id,
        step,
        signed: read.signed,
        signature: read.signature.clone(),
        protocol: read.protocol,
        bytes: read.bytes,
        loop_class: read.loop_class.clone(),
        era: read.era.clone(),
    }
}

/// Read the history of a log directory, its `__session__` directory, or one snapshot file (`path` absolute);
/// signed snapshots are checked against `key` when one is given. `Reading::WithoutMetrics`: every entry's
/// `metrics` is `None`.
pub fn load(path: &Path, key: Option<&SigningKey>, reading: Reading) -> crate::Result<Session> {
    match locate(path)? {
        Input::File {
            log_dir,
            path,
            loop_id,
            step,
        } => {
            let read = read_snapshot(&path, key, reading).map_err(|reason| {
                crate::Error::resolution(format!(
                    "cannot use snapshot {}: {reason}",
                    path.display()
                ))
            })?;
            Ok(Session {
                log_dir,
                session_dir: None,
                loop_dirs: 0,
                snapshot_files: SnapshotCount::known(1),
                snapshot: info(&path, loop_id, step, &read),
                history: read.history,
                skipped: Vec::new(),
                candidates_read: 1,
            })
        }
        Input::Session {
            log_dir,
            session_dir,
        } => {
            let mut listing = SessionListing::open(&session_dir)?;
            if !listing.has_files() {
                return Err(crate::Error::resolution(format!(
                    "no session snapshot under {}; {} has no <loop>/<step>_<name> files: RD-Agent writes one \
                     after each step, so the run has not finished a step yet or crashed before its first one",
                    log_dir.display(),
                    session_dir.display()
                )));
            }
            let loop_dirs = listing.loop_dirs();
            let choice = choose_in(
                &mut listing,
                loop_dirs,
                |file| read_snapshot(&file.path, key, reading),
                |read| read.history.len(),
            );
            let skipped: Vec<Skipped> = choice
                .skipped
                .iter()
                .map(|(i, reason)| Skipped {
                    path: listing.file(*i).path.clone(),
                    reason: reason.clone(),
                })
                .collect();
            let Some((best, read)) = choice.best else {
                let tried: Vec<String> = skipped
                    .iter()
                    .map(|s| format!("  {}: {}", s.path.display(), s.reason))
                    .collect();
                return Err(crate::Error::resolution(format!(
                    "no snapshot in {} could be read; tried:\n{}",
                    session_dir.display(),
                    tried.join("\n")
                )));
            };
            let file = listing.file(best);
            Ok(Session {
                log_dir,
                snapshot_files: SnapshotCount::of(&session_dir),
                session_dir: Some(session_dir),
                loop_dirs,
                snapshot: info(&file.path, Some(file.loop_id), Some(file.step), &read),
                history: read.history,
                skipped,
                candidates_read: choice.tried.len(),
            })
        }
    }
}
