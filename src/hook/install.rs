//! Writes the embedded hook into rd-chain's own run directory and composes the child's PYTHONPATH. Never writes
//! anywhere else (not site-packages, not the rdagent installation).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The hook's source; `install` writes it as `sitecustomize.py`. It stays under scripts/ (the project keeps its
/// Python there), in a folder of its own away from the test doubles.
pub const SITECUSTOMIZE: &str = include_str!("../../scripts/rdagent_hook/sitecustomize.py");

/// The file name Python imports at start-up from the first PYTHONPATH entry that has it.
pub const FILE_NAME: &str = "sitecustomize.py";

/// Create `dir` fresh and exclusively (its parents as needed, the leaf itself with one mkdir, mode 0700), check
/// that it is a real directory owned by this user in a parent no other user can rename entries in, write the hook
/// into it as `sitecustomize.py` (created new, never through a symlink), and return `dir` made absolute.
///
/// The run id is visible in the run record hours before the model phase, so on a shared log root another user
/// could plant `<run>.hook` (or a symlink in it) to run code in the model phase: an existing `dir` is refused.
pub fn install(dir: &Path) -> Result<PathBuf> {
    let dir = std::path::absolute(dir)
        .map_err(|e| Error::io("cannot make the hook directory absolute:", dir, e))?;
    check_dir(&dir)?;
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io("cannot create rd-chain's directory", parent, e))?;
        check_parent(parent)?;
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(&dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Usage(format!(
                "the hook directory {} already exists, but rd-chain creates it fresh for each run: something else \
                 made it (another user on a shared log root?); rd-chain will not run code from it. Remove it after \
                 checking what it holds, or use a --log-root only you can write to",
                dir.display()
            ))
        } else {
            Error::io("cannot create the hook directory", &dir, e)
        }
    })?;
    check_owned(&dir)?;
    let file = dir.join(FILE_NAME);
    let mut out = crate::record::create_fresh(&file)
        .map_err(|e| Error::io("cannot create the hook", &file, e))?;
    std::io::Write::write_all(&mut out, SITECUSTOMIZE.as_bytes())
        .map_err(|e| Error::io("cannot write the hook", &file, e))?;
    Ok(dir)
}

/// A continued run's hook dir, left by the earlier rd-chain of the same run id (same path, so the model phase
/// gets the same environment), is written fresh as `install` does, and what the earlier hook wrote is kept.
///
/// The earlier dir is used only when it is a real directory owned by this user in a parent no other user can
/// change. If it holds anything besides rd-chain's own `sitecustomize.py` and Python's `__pycache__` (the
/// hook's report, above all), the whole dir is renamed to `kept` (one rename in the same parent: all or
/// nothing) and a fresh dir is made; else it is removed. A dir that does not exist is simply installed.
///
/// A dir that cannot be renamed (`kept` exists, or the rename fails) is not touched beyond the hook file: it is
/// used again as it is, the hook appending to the same report, and `Earlier::Reused` says so; nothing is
/// deleted.
pub fn reinstall(dir: &Path, kept: &Path) -> Result<Earlier> {
    reinstall_with(dir, kept, &mut |from, to| std::fs::rename(from, to))
}

/// What `reinstall` did with the earlier hook dir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Earlier {
    /// There was none, or it held nothing the hook wrote (it was removed).
    Nothing,
    /// Renamed to `dir`; `report` is the hook's report in it (`None`: the hook wrote no report).
    Kept {
        dir: PathBuf,
        report: Option<PathBuf>,
    },
    /// It could not be renamed (`why`, naming the report): it is the hook dir again, and the earlier report
    /// holds `offset` bytes before this rd-chain's hook appends to it.
    Reused { why: String, offset: u64 },
}

/// `reinstall` with the rename given (tests inject failures).
pub fn reinstall_with(
    dir: &Path,
    kept: &Path,
    rename: &mut dyn FnMut(&Path, &Path) -> std::io::Result<()>,
) -> Result<Earlier> {
    let dir = std::path::absolute(dir)
        .map_err(|e| Error::io("cannot make the hook directory absolute:", dir, e))?;
    let kept = &std::path::absolute(kept)
        .map_err(|e| Error::io("cannot make the kept hook directory absolute:", kept, e))?;
    if std::fs::symlink_metadata(&dir).is_err() {
        install(&dir)?;
        return Ok(Earlier::Nothing);
    }
    if let Some(parent) = dir.parent() {
        check_parent(parent)?;
    }
    check_owned(&dir)?;
    let report = dir.join(super::contract::REPORT_FILE);
    if !holds_hook_output(&dir)? {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| Error::io("cannot remove the earlier hook directory", &dir, e))?;
        install(&dir)?;
        return Ok(Earlier::Nothing);
    }
    let had_report = std::fs::symlink_metadata(&report).is_ok_and(|m| m.is_file());
    let moved = if std::fs::symlink_metadata(kept).is_ok() {
        Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} already exists", kept.display()),
        ))
    } else {
        rename(&dir, kept)
    };
    match moved {
        Ok(()) => {
            install(&dir)?;
            Ok(Earlier::Kept {
                dir: kept.to_path_buf(),
                report: had_report.then(|| kept.join(super::contract::REPORT_FILE)),
            })
        }
        Err(e) => {
            let what = if had_report { &report } else { &dir };
            let why = format!(
                "cannot keep the earlier attempt's hook report {} by moving {} to {} ({e}); it stays where it \
                 is and nothing was deleted: this attempt's hook adds its lines to the same file",
                what.display(),
                dir.display(),
                kept.display()
            );
            refresh_hook_file(&dir)?;
            let offset = std::fs::metadata(&report).map_or(0, |m| m.len());
            Ok(Earlier::Reused { why, offset })
        }
    }
}

/// The name a continued run keeps its earlier hook dir under: `<run>.hook.attempt-N`, N the number of the model
/// phase's last attempt that used it.
pub fn kept_dir(hook_dir: &Path, attempt: usize) -> PathBuf {
    let mut name = hook_dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".attempt-{attempt}"));
    hook_dir.with_file_name(name)
}

/// Does the hook dir hold anything besides rd-chain's hook file and Python's byte-code cache of it?
fn holds_hook_output(dir: &Path) -> Result<bool> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io("cannot list the hook directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot list the hook directory", dir, e))?;
        let name = entry.file_name();
        if name != FILE_NAME && name != "__pycache__" {
            return Ok(true);
        }
    }
    Ok(false)
}

/// An earlier hook dir used again: its hook file becomes this rd-chain's (a new file renamed over it, created
/// fresh and never through a symlink), unless it already is.
fn refresh_hook_file(dir: &Path) -> Result<()> {
    let file = dir.join(FILE_NAME);
    let current = std::fs::symlink_metadata(&file).is_ok_and(|m| m.is_file())
        && std::fs::read(&file).is_ok_and(|bytes| bytes == SITECUSTOMIZE.as_bytes());
    if current {
        return Ok(());
    }
    let tmp = dir.join(format!("{FILE_NAME}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = crate::record::create_fresh(&tmp).and_then(|mut out| {
        std::io::Write::write_all(&mut out, SITECUSTOMIZE.as_bytes())?;
        std::fs::rename(&tmp, &file)
    });
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("cannot write the hook", &file, e)
    })
}

/// The hook dir just made (or an earlier one to be used again) must be a directory (not a symlink) owned by the
/// effective user.
fn check_owned(dir: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| Error::io("cannot read the hook directory", dir, e))?;
    if !meta.is_dir() {
        return Err(Error::Internal(format!(
            "the hook directory {} is not a directory rd-chain made (a symlink?); rd-chain will not use it",
            dir.display()
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let me = euid();
        if meta.uid() != me {
            return Err(Error::Internal(format!(
                "the hook directory {} belongs to uid {}, not to rd-chain's uid {me}; rd-chain will not use it",
                dir.display(),
                meta.uid()
            )));
        }
    }
    Ok(())
}

/// The hook dir's parent (`<log root>/rd-chain`) must be a real directory that no other user can rename entries
/// in: owned by this user or root, and not writable by group or others unless sticky (as /tmp is).
pub fn check_parent(parent: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(parent)
        .map_err(|e| Error::io("cannot read rd-chain's directory", parent, e))?;
    if !meta.is_dir() {
        return Err(Error::Usage(format!(
            "rd-chain's directory {} is not a directory (a symlink?); the hook is not written there; use a \
             --log-root only you can write to",
            parent.display()
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode();
        let shared = mode & 0o022 != 0 && mode & 0o1000 == 0;
        if (meta.uid() != euid() && meta.uid() != 0) || shared {
            return Err(Error::Usage(format!(
                "rd-chain's directory {} can be changed by other users (owner uid {}, mode {:o}); the hook, which \
                 runs in the model phase, is not written there; make it yours and not group- or world-writable \
                 (chmod go-w), or use a --log-root only you can write to",
                parent.display(),
                meta.uid(),
                mode & 0o7777
            )));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn euid() -> u32 {
    extern "C" {
        fn geteuid() -> u32;
    }
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    unsafe { geteuid() }
}

/// The hook directory must be able to stand in PYTHONPATH (no path-list separator in it). Checked before the
/// chain starts, so a bad `--log-root` is reported before hours of factor loops, not after.
pub fn check_dir(dir: &Path) -> Result<()> {
    if dir.as_os_str().to_string_lossy().contains(PATH_SEPARATOR) {
        return Err(Error::usage(format!(
            "the hook directory {} contains {PATH_SEPARATOR:?}, which cannot stand in PYTHONPATH; choose a \
             --log-root without it (or run with --hook off)",
            dir.display()
        )));
    }
    Ok(())
}

/// The child's PYTHONPATH: the hook directory first, then `existing` unchanged. An unset or empty `existing`
/// adds nothing (a trailing separator would put the current directory on sys.path).
pub fn pythonpath(hook_dir: &Path, existing: Option<&OsStr>) -> OsString {
    let mut out = OsString::from(hook_dir.as_os_str());
    if let Some(rest) = existing.filter(|e| !e.is_empty()) {
        out.push(PATH_SEPARATOR);
        out.push(rest);
    }
    out
}

const PATH_SEPARATOR: &str = if cfg!(windows) { ";" } else { ":" };

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::super::test_support::*;
    use super::*;

    #[test]
    fn pythonpath_puts_the_hook_first_and_keeps_what_was_there() {
        let hook = Path::new("/run/rd-chain/x.hook");
        assert_eq!(
            pythonpath(hook, None),
            OsString::from("/run/rd-chain/x.hook")
        );
        assert_eq!(
            pythonpath(hook, Some(OsStr::new(""))),
            OsString::from("/run/rd-chain/x.hook")
        );
        assert_eq!(
            pythonpath(hook, Some(OsStr::new("/a:/b"))),
            OsString::from("/run/rd-chain/x.hook:/a:/b")
        );
        // The user's own empty entries (the current directory) stay as they were.
        assert_eq!(
            pythonpath(hook, Some(OsStr::new(":/a"))),
            OsString::from("/run/rd-chain/x.hook::/a")
        );
    }

    #[test]
    fn install_writes_the_embedded_hook_into_a_new_directory() {
        let scratch = Scratch::new("install");
        let dir = install(&scratch.0.join("log/rd-chain/run-1.hook")).unwrap();
        assert!(dir.is_absolute());
        let written = std::fs::read_to_string(dir.join(FILE_NAME)).unwrap();
        assert_eq!(written, SITECUSTOMIZE);
        assert!(SITECUSTOMIZE.contains("RD_CHAIN_HOOK_STATE"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{mode:o}");
        }
        // Installing again into the same directory is refused: the directory is made fresh for each run.
        let err = install(&dir).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
    }

    #[test]
    fn a_planted_hook_directory_is_refused_and_left_alone() {
        let scratch = Scratch::new("planted");
        let dir = scratch.0.join("log/rd-chain/run-1.hook");
        write(&dir.join(FILE_NAME), b"print('planted')\n");
        let err = install(&dir).unwrap_err();
        let m = err.to_string();
        assert!(
            m.contains("already exists") && m.contains(&dir.display().to_string()),
            "{m}"
        );
        assert_eq!(
            std::fs::read(dir.join(FILE_NAME)).unwrap(),
            b"print('planted')\n"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_is_never_followed() {
        let scratch = Scratch::new("symlink");
        let target = scratch.0.join("elsewhere");
        std::fs::create_dir_all(&target).unwrap();
        let dir = scratch.0.join("log/rd-chain/run-1.hook");
        std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
        // The hook directory as a symlink to a directory of the attacker's.
        std::os::unix::fs::symlink(&target, &dir).unwrap();
        let err = install(&dir).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert!(
            !target.join(FILE_NAME).exists(),
            "wrote through the symlink"
        );
        // A symlink planted where sitecustomize.py goes is not followed either.
        let victim = scratch.0.join("victim");
        let fresh = scratch.0.join("log2/rd-chain/run-2.hook");
        std::fs::create_dir_all(&fresh).unwrap();
        std::os::unix::fs::symlink(&victim, fresh.join(FILE_NAME)).unwrap();
        assert!(crate::record::create_fresh(&fresh.join(FILE_NAME)).is_err());
        assert!(!victim.exists(), "created through the symlink");
    }

    #[cfg(unix)]
    #[test]
    fn a_parent_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let scratch = Scratch::new("shared");
        let parent = scratch.0.join("log/rd-chain");
        std::fs::create_dir_all(&parent).unwrap();
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = install(&parent.join("run.hook")).unwrap_err();
        assert!(err.to_string().contains("other users"), "{err}");
        assert!(!parent.join("run.hook").exists());
    }

    #[test]
    fn the_installed_hook_runs_first_and_chains_the_users_sitecustomize() {
        let scratch = Scratch::new("startup");
        let hook_dir = install(&scratch.0.join("rd-chain/run.hook")).unwrap();
        let user_site = scratch.0.join("user site");
        write(
            &user_site.join(FILE_NAME),
            b"import os\nos.environ['USER_SITECUSTOMIZE'] = 'ran'\n",
        );
        let factors = scratch.0.join("combined_factors_df.parquet");
        write(&factors, b"PAR1 not read at start-up PAR1");
        let out = Command::new(python3())
            .arg("-c")
            .arg(
                "import os, sys\n\
                 s = sys.modules['sitecustomize'].RD_CHAIN_HOOK_STATE\n\
                 print(s['armed'], s['factors_path'], os.environ.get('USER_SITECUSTOMIZE'))",
            )
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env(
                "PYTHONPATH",
                pythonpath(&hook_dir, Some(user_site.as_os_str())),
            )
            .env("LOAD_SOTA_FROM_WORKSPACE", "Yes")
            .env("SOTA_WORKSPACE_PATH", &scratch.0)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("True {} ran", factors.display())
        );
        assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    }

    /// An earlier attempt's hook dir at `<scratch>/log/rd-chain/run.hook`, with a report of `report` (if any).
    fn earlier_dir(scratch: &Scratch, report: Option<&[u8]>) -> PathBuf {
        let dir = install(&scratch.0.join("log/rd-chain/run.hook")).unwrap();
        write(
            &dir.join("__pycache__/sitecustomize.cpython-312.pyc"),
            b"cache",
        );
        if let Some(bytes) = report {
            write(&dir.join(super::super::contract::REPORT_FILE), bytes);
        }
        dir
    }

    fn report_of(dir: &Path) -> PathBuf {
        dir.join(super::super::contract::REPORT_FILE)
    }

    #[test]
    fn reinstall_keeps_the_earlier_report_and_anything_else_the_hook_wrote() {
        let scratch = Scratch::new("keep");
        let dir = earlier_dir(
            &scratch,
            Some(b"armed\t7\t/f.parquet\nused\t7\t20\t4\t/f.parquet\n"),
        );
        write(&dir.join("notes.txt"), b"written by the hook's process");
        let kept = kept_dir(&dir, 1);
        assert_eq!(kept, scratch.0.join("log/rd-chain/run.hook.attempt-1"));
        let outcome = reinstall(&dir, &kept).unwrap();
        assert_eq!(
            outcome,
            Earlier::Kept {
                dir: kept.clone(),
                report: Some(report_of(&kept))
            }
        );
        assert_eq!(
            std::fs::read(report_of(&kept)).unwrap(),
            b"armed\t7\t/f.parquet\nused\t7\t20\t4\t/f.parquet\n"
        );
        assert_eq!(
            std::fs::read(kept.join("notes.txt")).unwrap(),
            b"written by the hook's process"
        );
        // The hook dir itself is fresh: the hook file only, no report.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE_NAME]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for d in [&dir, &kept] {
                let mode = std::fs::metadata(d).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o700, "{}: {mode:o}", d.display());
            }
        }

        // The next continuation keeps attempt 2's report beside attempt 1's.
        write(&report_of(&dir), b"armed\t8\t/f.parquet\n");
        let kept_2 = kept_dir(&dir, 2);
        assert_eq!(
            reinstall(&dir, &kept_2).unwrap(),
            Earlier::Kept {
                dir: kept_2.clone(),
                report: Some(report_of(&kept_2))
            }
        );
        assert_eq!(
            std::fs::read(report_of(&kept_2)).unwrap(),
            b"armed\t8\t/f.parquet\n"
        );
        assert!(report_of(&kept).exists());
        assert!(!report_of(&dir).exists());
    }

    #[test]
    fn reinstall_without_an_earlier_report_keeps_nothing() {
        let scratch = Scratch::new("no-report");
        // No earlier hook dir at all (the earlier attempt died before the model phase).
        let dir = scratch.0.join("log/rd-chain/run.hook");
        assert_eq!(
            reinstall(&dir, &kept_dir(&dir, 0)).unwrap(),
            Earlier::Nothing
        );
        assert_eq!(
            std::fs::read_to_string(dir.join(FILE_NAME)).unwrap(),
            SITECUSTOMIZE
        );
        // A dir holding only the hook file and Python's cache of it: nothing of the hook's to keep.
        std::fs::remove_dir_all(&dir).unwrap();
        let dir = earlier_dir(&scratch, None);
        assert!(dir.join("__pycache__").exists());
        let kept = kept_dir(&dir, 1);
        assert_eq!(reinstall(&dir, &kept).unwrap(), Earlier::Nothing);
        assert!(!kept.exists());
        assert!(!dir.join("__pycache__").exists());
        assert_eq!(
            std::fs::read_to_string(dir.join(FILE_NAME)).unwrap(),
            SITECUSTOMIZE
        );
    }

    #[test]
    fn a_report_that_cannot_be_moved_stays_and_nothing_is_deleted() {
        let report = b"armed\t7\t/f.parquet\nused\t7\t20\t4\t/f.parquet\n";
        // The rename fails.
        let scratch = Scratch::new("unmovable");
        let dir = earlier_dir(&scratch, Some(report));
        // An older rd-chain's hook file: the one used again is this rd-chain's.
        std::fs::remove_file(dir.join(FILE_NAME)).unwrap();
        write(&dir.join(FILE_NAME), b"# an older hook\n");
        let kept = kept_dir(&dir, 1);
        let outcome = reinstall_with(&dir, &kept, &mut |_, _| {
            Err(std::io::Error::from_raw_os_error(16))
        })
        .unwrap();
        let Earlier::Reused { why, offset } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(offset, report.len() as u64);
        let path = report_of(&dir).display().to_string();
        assert!(
            why.contains(&format!(
                "cannot keep the earlier attempt's hook report {path}"
            )) && why.contains("nothing was deleted"),
            "{why}"
        );
        assert_eq!(std::fs::read(report_of(&dir)).unwrap(), report);
        assert!(dir.join("__pycache__").exists());
        assert_eq!(
            std::fs::read_to_string(dir.join(FILE_NAME)).unwrap(),
            SITECUSTOMIZE
        );
        assert!(!kept.exists());
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 3, "no temp file left: {names:?}");

        // The kept name is taken already (by a file): neither it nor the report is replaced.
        let scratch = Scratch::new("taken");
        let dir = earlier_dir(&scratch, Some(report));
        let kept = kept_dir(&dir, 1);
        write(&kept, b"not rd-chain's");
        let Earlier::Reused { why, offset } = reinstall(&dir, &kept).unwrap() else {
            panic!("the kept name was taken")
        };
        assert!(why.contains("already exists"), "{why}");
        assert_eq!(offset, report.len() as u64);
        assert_eq!(std::fs::read(&kept).unwrap(), b"not rd-chain's");
        assert_eq!(std::fs::read(report_of(&dir)).unwrap(), report);
        // An empty directory there (which rename(2) would silently replace) is not replaced either.
        std::fs::remove_file(&kept).unwrap();
        std::fs::create_dir(&kept).unwrap();
        assert!(matches!(
            reinstall(&dir, &kept).unwrap(),
            Earlier::Reused { .. }
        ));
        assert_eq!(std::fs::read_dir(&kept).unwrap().count(), 0);
        assert_eq!(std::fs::read(report_of(&dir)).unwrap(), report);
    }

    #[cfg(unix)]
    #[test]
    fn reinstall_refuses_an_earlier_dir_that_is_not_ours() {
        let scratch = Scratch::new("not-ours");
        let target = scratch.0.join("elsewhere");
        write(&target.join("report.tsv"), b"armed\t7\n");
        let dir = scratch.0.join("log/rd-chain/run.hook");
        std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&target, &dir).unwrap();
        let kept = kept_dir(&dir, 1);
        let err = reinstall(&dir, &kept).unwrap_err();
        assert!(
            err.to_string().contains("not a directory rd-chain made"),
            "{err}"
        );
        assert!(!kept.exists() && target.join("report.tsv").exists());
        // Another user's directory (settable only as root).
        if euid() == 0 {
            std::fs::remove_file(&dir).unwrap();
            std::fs::create_dir(&dir).unwrap();
            write(&report_of(&dir), b"armed\t7\n");
            std::os::unix::fs::chown(&dir, Some(4321), None).unwrap();
            let err = reinstall(&dir, &kept).unwrap_err();
            assert!(err.to_string().contains("belongs to uid 4321"), "{err}");
            assert!(!kept.exists() && report_of(&dir).exists());
        }
    }

    #[test]
    fn install_refuses_a_directory_pythonpath_cannot_hold() {
        let scratch = Scratch::new("colon");
        let err = install(&scratch.0.join("a:b/x.hook")).unwrap_err();
        assert_eq!(err.exit_code(), crate::exit::USAGE);
        assert!(err.to_string().contains("--log-root"), "{err}");
        assert!(!scratch.0.join("a:b").exists());
    }
}
