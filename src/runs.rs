//! Runs by id: the lock that keeps two rd-chains off one run, and `rd-chain resume [RUN]`, which finds a run's
//! record and starts the same chain again with the same run id (the chain then continues where it stopped).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{self, Command, INVOCATION_ENV};
use crate::plan::RECORD_DIR_NAME;
use crate::record::{self, State};
use crate::resolve::absolute;
use crate::{Error, Result};

/// `<log root>/rd-chain/<run>.lock`, holding `<pid> <host>` of the rd-chain running that run; removed when
/// dropped. rd-chain refreshes its time while it runs (`touch`), so a lock left on shared storage by a machine
/// that died is recognised as stale by its age.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    touched: std::time::Instant,
}

/// How often a held lock's time is refreshed.
pub const LOCK_REFRESH: Duration = Duration::from_secs(60);
/// A lock of another machine not refreshed for this long is stale.
pub const LOCK_STALE: Duration = Duration::from_secs(5 * 60);

/// This machine's name (for the lock), or `unknown`.
pub fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "unknown".to_string())
}

impl RunLock {
    /// Take the lock (created with O_EXCL). A lock left by a process that no longer exists on this machine, or
    /// by another machine and not refreshed for `LOCK_STALE`, is taken over; a live one is an error naming it.
    pub fn acquire(path: &Path) -> Result<RunLock> {
        let host = host_name();
        for _ in 0..3 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut f) => {
                    let _ = writeln!(f, "{} {host}", std::process::id());
                    return Ok(RunLock {
                        path: path.to_path_buf(),
                        touched: std::time::Instant::now(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = fs::read_to_string(path).unwrap_or_default();
                    let mut words = text.split_whitespace();
                    let pid = words.next().and_then(|p| p.parse::<u32>().ok());
                    let owner = words.next().unwrap_or(&host).to_string();
                    let age = fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .unwrap_or_default();
                    let live = match pid {
                        Some(pid) if owner == host => {
                            pid != std::process::id() && crate::signals::alive(pid)
                        }
                        Some(_) => age < LOCK_STALE,
                        None => false,
                    };
                    if live {
                        let pid = pid.unwrap_or_default();
                        return Err(Error::Busy(format!(
                            "another rd-chain (pid {pid} on {owner}) is running this run: its lock is {}; wait \
                             for it to end or stop it (kill {pid} on {owner}); if no rd-chain runs this run any \
                             more, delete the lock file (a lock of another machine is also taken over once it \
                             has not been refreshed for {} minutes)",
                            path.display(),
                            LOCK_STALE.as_secs() / 60
                        )));
                    }
                    log::warn!(
                        "taking over the stale lock {} (its rd-chain no longer runs)",
                        path.display()
                    );
                    let _ = fs::remove_file(path);
                }
                Err(e) => return Err(Error::io("cannot create the run's lock file", path, e)),
            }
        }
        Err(Error::Busy(format!(
            "cannot take the run's lock {}: other rd-chains keep taking it",
            path.display()
        )))
    }

    /// Refresh the lock's modification time (at most once per `LOCK_REFRESH`).
    pub fn touch(&mut self) {
        if self.touched.elapsed() >= LOCK_REFRESH {
            self.touched = std::time::Instant::now();
            if let Ok(f) = fs::OpenOptions::new().write(true).open(&self.path) {
                let _ = f.set_modified(std::time::SystemTime::now());
            }
        }
    }
}

impl crate::watch::PhaseWatcher for RunLock {
    fn tick(&mut self, _now: std::time::Instant) -> crate::watch::WatchAction {
        self.touch();
        crate::watch::WatchAction::Continue
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The record `rd-chain resume [RUN]` means: a record's path, a run id under `<log root>/rd-chain/`, or (none)
/// the newest unfinished run there.
pub fn find_record(run: Option<&Path>, log_root: &Path, cwd: &Path) -> Result<PathBuf> {
    let dir = absolute(cwd, log_root).join(RECORD_DIR_NAME);
    match run {
        Some(p) => {
            let text = p.to_string_lossy();
            let as_path = absolute(cwd, p);
            if text.ends_with(".json") || text.contains('/') {
                if as_path.is_file() {
                    return Ok(as_path);
                }
                return Err(Error::usage(format!(
                    "no run record {}: give a run id or the path of a run's record (<log root>/rd-chain/<run \
                     id>.json)",
                    as_path.display()
                )));
            }
            let id = cli::run_id(&text).map_err(|why| {
                Error::usage(format!("`rd-chain resume {text}`: not a run id: {why}"))
            })?;
            let path = dir.join(format!("{id}.json"));
            if path.is_file() {
                Ok(path)
            } else {
                Err(Error::usage(format!(
                    "no run {id} under {}: there is no {}; check the run id (`ls {}`) or pass --log-root DIR",
                    absolute(cwd, log_root).display(),
                    path.display(),
                    dir.display()
                )))
            }
        }
        None => {
            let mut newest: Option<(String, PathBuf)> = None;
            if let Ok(entries) = fs::read_dir(&dir) {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.extension().is_none_or(|x| x != "json") {
                        continue;
                    }
                    match record::load(&path) {
                        Ok(r) if r.state != State::Done => {
                            if newest.as_ref().is_none_or(|(s, _)| r.started > *s) {
                                newest = Some((r.started.clone(), path));
                            }
                        }
                        Ok(_) => {}
                        Err(e) => log::warn!("skipping {}: {e}", path.display()),
                    }
                }
            }
            newest.map(|(_, p)| p).ok_or_else(|| {
                Error::usage(format!(
                    "no unfinished run under {}: every run record in {} finished, or there is none; pass RUN (a \
                     run id or a record's path) or --log-root DIR",
                    absolute(cwd, log_root).display(),
                    dir.display()
                ))
            })
        }
    }
}

/// The chain a record was started with, to run again: the recorded arguments plus `--run-id`, the recorded
/// variables over the current environment, and the recorded working directory.
pub fn chain_of(
    record_path: &Path,
    env: &BTreeMap<String, OsString>,
) -> Result<(Command, PathBuf, BTreeMap<String, OsString>)> {
    let rec = record::load_typed(record_path)?;
    if rec.invocation.args.is_empty() && rec.cwd.as_os_str().is_empty() {
        return Err(Error::usage(format!(
            "the run record {} was written by an rd-chain without resume (no `invocation`); start the chain \
             again with its flags and --run-id",
            record_path.display()
        )));
    }
    if !rec.cwd.is_dir() {
        return Err(Error::usage(format!(
            "the directory {} the run was started in no longer exists; recreate it, or start the chain again \
             with its flags and --run-id {}",
            rec.cwd.display(),
            rec.run_id
        )));
    }
    let mut env = env.clone();
    for name in INVOCATION_ENV {
        env.remove(*name);
    }
    for (k, v) in &rec.invocation.env {
        env.insert(k.clone(), OsString::from(v));
    }
    let mut args: Vec<OsString> = rec.invocation.args.iter().map(OsString::from).collect();
    args.push("--run-id".into());
    args.push(rec.run_id.clone().into());
    let inv = cli::parse(args, &env)?;
    Ok((inv.command, rec.cwd, env))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_exclusive_and_a_stale_one_is_taken_over() {
        let dir = std::env::temp_dir().join(format!("rd-chain-lock-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.lock");
        // A lock of a live process (this test's parent, pid 1's child chain: use our parent's pid).
        let parent = std::os::unix::process::parent_id();
        fs::write(&path, format!("{parent}\n")).unwrap();
        let err = RunLock::acquire(&path).unwrap_err();
        assert_eq!(err.exit_code(), crate::exit::BUSY);
        assert!(err.to_string().contains(&parent.to_string()), "{err}");
        // A dead pid: taken over, and the file then holds ours until dropped.
        fs::write(&path, format!("999999999 {}\n", host_name())).unwrap();
        let lock = RunLock::acquire(&path).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap().trim(),
            format!("{} {}", std::process::id(), host_name())
        );
        drop(lock);
        // Another machine's lock: live while it is refreshed, stale once it is old.
        fs::write(&path, "4242 some-other-node\n").unwrap();
        let err = RunLock::acquire(&path).unwrap_err();
        assert!(err.to_string().contains("some-other-node"), "{err}");
        let old = std::time::SystemTime::now() - LOCK_STALE - Duration::from_secs(1);
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let lock = RunLock::acquire(&path).unwrap();
        drop(lock);
        assert!(!path.exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
