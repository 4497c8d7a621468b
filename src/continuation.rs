//! Continuing a phase without touching its log: the previous attempt's log dir is copied (a real copy, never
//! hard links: rdagent rewrites files in place and its default `--checkout` deletes later snapshots) to a fresh
//! `<original name>.resume-K` dir next to it, and rdagent is pointed at the copy of the most complete readable
//! snapshot. The original is only read.
//!
//! The name marks a continuation, so `list` shows it with its run and `resolve`/`inspect` of the original follow
//! it to the newest history (a continuation's snapshots hold the whole trace since the run began).

use std::fs;
use std::path::{Path, PathBuf};

use crate::plan::LEGACY_PICKLE_ENV;
use crate::session::{self, Signature, SigningKey, SESSION_DIR};
use crate::{Error, Result};

/// What separates a continuation's number from its original's name.
pub const MARK: &str = ".resume-";

/// `(original name, K)` of `<original>.resume-K`; `(name, None)` for any other name.
pub fn split_name(name: &str) -> (&str, Option<u32>) {
    if let Some(at) = name.rfind(MARK) {
        let (base, rest) = (&name[..at], &name[at + MARK.len()..]);
        if !base.is_empty() && !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(k) = rest.parse::<u32>() {
                return (base, Some(k));
            }
        }
    }
    (name, None)
}

/// `<dir of log_dir>/<original name>.resume-K`.
pub fn dir_for(log_dir: &Path, k: u32) -> PathBuf {
    let name = log_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (base, _) = split_name(&name);
    log_dir.with_file_name(format!("{base}{MARK}{k}"))
}

/// The newest continuation (highest K) of the run `log_dir` belongs to, if it has one with a session dir.
pub fn latest(log_dir: &Path) -> Option<PathBuf> {
    let name = log_dir.file_name()?.to_string_lossy().into_owned();
    let (base, own) = split_name(&name);
    let parent = log_dir.parent()?;
    let mut best: Option<(u32, PathBuf)> = None;
    for entry in fs::read_dir(parent).ok()?.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        if let (b, Some(k)) = split_name(&entry_name) {
            let path = entry.path();
            if b == base
                && best.as_ref().is_none_or(|(bk, _)| k > *bk)
                && path.join(SESSION_DIR).is_dir()
            {
                best = Some((k, path));
            }
        }
    }
    best.filter(|(k, _)| own.is_none_or(|o| *k > o))
        .map(|(_, p)| p)
}

/// A snapshot's place in its run: (loop, step).
pub type Key = (u64, u64);

/// The (loop, step) of every snapshot file in `log_dir`'s session (names only; nothing is decoded).
pub fn snapshot_keys(log_dir: &Path) -> Vec<Key> {
    let session = log_dir.join(SESSION_DIR);
    match session::snapshot::snapshot_names(&session) {
        Ok(files) => files.iter().map(|f| (f.loop_id, f.step)).collect(),
        Err(_) => Vec::new(),
    }
}

/// How many snapshots in `log_dir` lie past `from` (all of them when `from` is `None`).
pub fn gained_since(log_dir: &Path, from: Option<Key>) -> u64 {
    snapshot_keys(log_dir)
        .into_iter()
        .filter(|k| from.is_none_or(|f| *k > f))
        .count() as u64
}

/// A continuation checked and ready to be copied.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    /// The previous attempt's log dir (read only).
    pub from: PathBuf,
    /// The fresh dir it will be copied to.
    pub dir: PathBuf,
    /// The chosen snapshot in `from`.
    pub snapshot: PathBuf,
    /// Its copy in `dir`, passed to `--path`.
    pub snapshot_copy: PathBuf,
    pub key: Key,
    /// Unsigned (pre-1.0) snapshot, allowed with `--allow-legacy-pickle`.
    pub legacy: bool,
}

/// What a phase continues from.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// The previous attempt wrote no snapshot: start the phase afresh (as rdagent itself would).
    Fresh,
    Continue(Prepared),
}

/// Check everything a continuation of `from` needs, writing nothing: `from` exists, its most complete readable
/// snapshot (the rule resolution uses; a truncated newest file is skipped) verifies with the key rdagent will
/// use (or is unsigned and `allow_legacy`), and `<original>.resume-k` does not exist yet.
pub fn prepare(from: &Path, k: u32, key: Option<&SigningKey>, allow_legacy: bool) -> Result<Plan> {
    if !from.is_dir() {
        return Err(Error::usage(format!(
            "the log dir {} recorded for this run does not exist (deleted or moved); put it back where it was, \
             or start a new run (a new --run-id)",
            from.display()
        )));
    }
    if snapshot_keys(from).is_empty() {
        return Ok(Plan::Fresh);
    }
    let found =
        session::load(&from.join(SESSION_DIR), key, session::Reading::Everything).map_err(|e| {
            match e {
                Error::Resolution(m) => Error::Resolution(format!(
                    "cannot continue from {}: {m}; nothing was written",
                    from.display()
                )),
                other => other,
            }
        })?;
    let snap = &found.snapshot;
    let legacy = match &snap.signature {
        Signature::Verified { .. } => false,
        Signature::Unsigned if allow_legacy => true,
        Signature::Unsigned => {
            return Err(Error::usage(format!(
                "cannot continue from {}: it is an unsigned (pre-1.0) pickle, which RD-Agent 1.0 refuses to load \
                 unless {LEGACY_PICKLE_ENV}=true; if you trust this log, pass --allow-legacy-pickle (or set \
                 RD_CHAIN_ALLOW_LEGACY_PICKLE=true) and rd-chain passes {LEGACY_PICKLE_ENV}=true to the resumed \
                 rdagent only",
                snap.path.display()
            )))
        }
        Signature::Unchecked => {
            return Err(Error::usage(format!(
                "cannot continue from {}: it is signed, but no signing key is set here, so rdagent would refuse \
                 it; set ARTIFACT_SIGNING_KEY to the key the run was signed with, or ARTIFACT_SIGNING_KEY_PATH to \
                 its key file (RD-Agent's default is ~/.rdagent/artifact_signing.key of the user who ran it)",
                snap.path.display()
            )))
        }
        Signature::Skipped => {
            return Err(Error::Internal(format!(
                "the signature of {} was not checked before a resume",
                snap.path.display()
            )))
        }
        Signature::Mismatch { key_source } => {
            return Err(Error::usage(format!(
                "cannot continue from {}: its signature does not verify with the key from {key_source}, so \
                 rdagent would refuse it; set ARTIFACT_SIGNING_KEY to the key the run was signed with, or \
                 ARTIFACT_SIGNING_KEY_PATH to its key file",
                snap.path.display()
            )))
        }
    };
    let (Some(loop_id), Some(step)) = (snap.loop_id, snap.step) else {
        return Err(Error::Internal(format!(
            "snapshot {} has no loop and step",
            snap.path.display()
        )));
    };
    let dir = dir_for(from, k);
    if fs::symlink_metadata(&dir).is_ok() {
        return Err(Error::usage(format!(
            "the continuation dir {} already exists; rd-chain continues only into a fresh dir: move it away \
             (or delete it if it is not needed) and run again",
            dir.display()
        )));
    }
    let relative = snap.path.strip_prefix(from).map_err(|_| {
        Error::Internal(format!(
            "snapshot {} is not under {}",
            snap.path.display(),
            from.display()
        ))
    })?;
    Ok(Plan::Continue(Prepared {
        from: from.to_path_buf(),
        snapshot_copy: dir.join(relative),
        dir,
        snapshot: snap.path.clone(),
        key: (loop_id, step),
        legacy,
    }))
}

/// Copy `p.from` to the fresh `p.dir` (created here; an existing one is an error).
pub fn copy(p: &Prepared) -> Result<()> {
    fs::create_dir(&p.dir).map_err(|e| {
        Error::io(
            "cannot create the continuation dir (it must not exist yet)",
            &p.dir,
            e,
        )
    })?;
    copy_tree(&p.from, &p.dir)
}

/// Copy the contents of `from` into the existing dir `to`: files byte for byte with their modification times
/// (the snapshot choice looks at them), dirs recursively, symbolic links as links.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let entries = fs::read_dir(from).map_err(|e| Error::io("cannot list", from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot list", from, e))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = fs::symlink_metadata(&src).map_err(|e| Error::io("cannot read", &src, e))?;
        if meta.is_dir() {
            fs::create_dir(&dst).map_err(|e| Error::io("cannot create", &dst, e))?;
            copy_tree(&src, &dst)?;
        } else if meta.file_type().is_symlink() {
            #[cfg(unix)]
            {
                let target = fs::read_link(&src).map_err(|e| Error::io("cannot read", &src, e))?;
                std::os::unix::fs::symlink(&target, &dst)
                    .map_err(|e| Error::io("cannot create", &dst, e))?;
            }
        } else {
            fs::copy(&src, &dst).map_err(|e| Error::io("cannot copy to", &dst, e))?;
            if let Ok(mtime) = meta.modified() {
                let file = fs::OpenOptions::new()
                    .write(true)
                    .open(&dst)
                    .map_err(|e| Error::io("cannot open", &dst, e))?;
                file.set_modified(mtime)
                    .map_err(|e| Error::io("cannot set the time of", &dst, e))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_mark_continuations_of_the_original() {
        assert_eq!(
            split_name("2026-01-14_16-14-52-886218"),
            ("2026-01-14_16-14-52-886218", None)
        );
        assert_eq!(split_name("run.resume-3"), ("run", Some(3)));
        assert_eq!(split_name("run.resume-x"), ("run.resume-x", None));
        assert_eq!(split_name(".resume-2"), (".resume-2", None));
        let d = dir_for(Path::new("/l/run.resume-1"), 2);
        assert_eq!(d, PathBuf::from("/l/run.resume-2"));
        assert_eq!(
            dir_for(Path::new("/l/run"), 1),
            PathBuf::from("/l/run.resume-1")
        );
    }

    #[test]
    fn a_copy_is_byte_identical_with_the_same_times_and_the_original_is_untouched() {
        let root = std::env::temp_dir().join(format!("rd-chain-copy-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let from = root.join("run");
        fs::create_dir_all(from.join("__session__/0")).unwrap();
        fs::write(from.join("__session__/0/0_direct_exp_gen"), b"abc").unwrap();
        fs::write(from.join("top.pkl"), vec![7u8; 5000]).unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        fs::OpenOptions::new()
            .write(true)
            .open(from.join("top.pkl"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let p = Prepared {
            from: from.clone(),
            dir: dir_for(&from, 1),
            snapshot: from.join("__session__/0/0_direct_exp_gen"),
            snapshot_copy: dir_for(&from, 1).join("__session__/0/0_direct_exp_gen"),
            key: (0, 0),
            legacy: false,
        };
        copy(&p).unwrap();
        assert_eq!(fs::read(p.dir.join("top.pkl")).unwrap(), vec![7u8; 5000]);
        assert_eq!(fs::read(&p.snapshot_copy).unwrap(), b"abc");
        assert_eq!(
            fs::metadata(p.dir.join("top.pkl"))
                .unwrap()
                .modified()
                .unwrap(),
            old
        );
        // A real copy: writing the copy leaves the original as it was.
        fs::write(&p.snapshot_copy, b"changed").unwrap();
        assert_eq!(fs::read(&p.snapshot).unwrap(), b"abc");
        // The dir exists now: a second copy is refused, and `latest` finds it.
        assert!(copy(&p).is_err());
        assert_eq!(latest(&from), Some(p.dir.clone()));
        assert_eq!(latest(&p.dir), None);
        assert_eq!(gained_since(&p.dir, None), 1);
        assert_eq!(gained_since(&p.dir, Some((0, 0))), 0);
        fs::remove_dir_all(&root).unwrap();
    }
}
