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

/// Create `dir` (and its parents), write the hook into it as `sitecustomize.py`, and return `dir` made absolute.
pub fn install(dir: &Path) -> Result<PathBuf> {
    let dir = std::path::absolute(dir)
        .map_err(|e| Error::io("cannot make the hook directory absolute:", dir, e))?;
    check_dir(&dir)?;
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io("cannot create the hook directory", &dir, e))?;
    let file = dir.join(FILE_NAME);
    std::fs::write(&file, SITECUSTOMIZE)
        .map_err(|e| Error::io("cannot write the hook", &file, e))?;
    Ok(dir)
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
        // Installing again (a re-run into the same directory) overwrites.
        std::fs::write(dir.join(FILE_NAME), "stale").unwrap();
        install(&dir).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join(FILE_NAME)).unwrap(),
            SITECUSTOMIZE
        );
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

    #[test]
    fn install_refuses_a_directory_pythonpath_cannot_hold() {
        let scratch = Scratch::new("colon");
        let err = install(&scratch.0.join("a:b/x.hook")).unwrap_err();
        assert_eq!(err.exit_code(), crate::exit::USAGE);
        assert!(err.to_string().contains("--log-root"), "{err}");
        assert!(!scratch.0.join("a:b").exists());
    }
}
