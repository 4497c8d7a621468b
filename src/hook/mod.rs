//! The model phase's factor hand-off: rd-chain's `sitecustomize` hook, where it is written, how the child's
//! PYTHONPATH is composed, whether `--hook auto` turns it on, and what the hook reports back.
//!
//! - `contract`: every name and format shared with the Python hook (scripts/rdagent_hook/sitecustomize.py);
//! - `install`: writes the embedded hook into rd-chain's own run directory (a continued run keeps the earlier
//!   hook dir under an attempt-numbered name) and composes PYTHONPATH;
//! - `decide`: `--hook auto|on|off` -> a `HookDecision`, reading the model runner's source as text;
//! - `probe`: asks rdagent's interpreter where the rdagent package is, without importing it;
//! - `report`: reads the report the hook appends to during the model phase;
//! - `template`: whether the installed RD-Agent's SOTA config can train without base features
//!   (`USE_ALPHA_FACTORS=false`), decided from its text.
//!
//! The hook is only ever written into rd-chain's own run directory, never into site-packages or the rdagent
//! installation. Deciding `auto` never imports or runs rdagent code.

pub mod contract;
mod decide;
mod install;
mod probe;
mod report;
mod template;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub use decide::{decide, decide_in_env, CONSUMER_TEXT};
pub use install::{
    check_dir, check_parent, install, kept_dir, pythonpath, reinstall, Earlier, FILE_NAME,
    SITECUSTOMIZE,
};
pub use probe::PROBE_TIMEOUT;
pub use report::HookReport;
pub use template::{check_installed, TemplateCheck, TemplateVerdict};

/// `--hook` / RD_CHAIN_HOOK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookMode {
    /// The hook, unless the installed rdagent reads SOTA_WORKSPACE_PATH itself.
    Auto,
    /// Always the hook.
    On,
    /// Only the environment variables (a fork of RD-Agent with its own consumer).
    Off,
}

impl HookMode {
    pub const ALL: [HookMode; 3] = [HookMode::Auto, HookMode::On, HookMode::Off];

    pub fn as_str(self) -> &'static str {
        match self {
            HookMode::Auto => "auto",
            HookMode::On => "on",
            HookMode::Off => "off",
        }
    }
}

impl fmt::Display for HookMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HookMode {
    type Err = String;

    /// Any case, surrounding blanks ignored.
    fn from_str(text: &str) -> std::result::Result<HookMode, String> {
        let wanted = text.trim();
        HookMode::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| "expected one of auto, on, off".to_string())
    }
}

/// What the model phase will use to hand the SOTA factors to rdagent, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookDecision {
    /// Write the hook and put its directory first on the child's PYTHONPATH.
    pub enabled: bool,
    pub mode: HookMode,
    /// One sentence for the dry-run plan and the run record.
    pub reason: String,
    /// The interpreter asked where rdagent is (`auto` only).
    pub python: Option<PathBuf>,
    /// The model runner whose source was read (`auto` only, when found).
    pub model_runner: Option<PathBuf>,
}

impl HookDecision {
    /// Who turns the environment variables into training on the SOTA factors.
    pub fn consumer(&self) -> &'static str {
        if self.enabled {
            "rd-chain hook"
        } else {
            "rdagent"
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system temp dir, removed on drop unless the test failed.
    pub struct Scratch(pub PathBuf);

    impl Scratch {
        pub fn new(name: &str) -> Scratch {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "rd-chain-hook-{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    pub fn write(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    pub fn python3() -> PathBuf {
        which::which("python3").expect("these tests need python3 on PATH")
    }

    /// A fake rdagent installation: `<root>/pkg/rdagent/...` whose model runner holds `runner_source`.
    pub fn fake_package(root: &Path, runner_source: &str) -> PathBuf {
        let pkg = root.join("pkg");
        write(
            &pkg.join("rdagent/__init__.py"),
            b"raise SystemExit('rdagent must not be imported')\n",
        );
        let runner = super::contract::model_runner_file(&pkg.join("rdagent"));
        write(&runner, runner_source.as_bytes());
        pkg
    }

    pub fn child_env(pythonpath: Option<&Path>) -> BTreeMap<String, std::ffi::OsString> {
        let mut env = BTreeMap::new();
        env.insert("PATH".to_string(), std::env::var_os("PATH").unwrap());
        if let Some(p) = pythonpath {
            env.insert("PYTHONPATH".to_string(), p.as_os_str().to_os_string());
        }
        env
    }

    pub const UPSTREAM_RUNNER: &str = "def process_factor_data(exps):\n    pass\n";
    pub const FORK_RUNNER: &str = "import os\nws = os.getenv('SOTA_WORKSPACE_PATH')\n";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_in_any_case_and_the_error_lists_the_values() {
        assert_eq!("auto".parse::<HookMode>(), Ok(HookMode::Auto));
        assert_eq!(" ON ".parse::<HookMode>(), Ok(HookMode::On));
        assert_eq!("Off".parse::<HookMode>(), Ok(HookMode::Off));
        let err = "yes".parse::<HookMode>().unwrap_err();
        assert_eq!(err, "expected one of auto, on, off");
        for mode in HookMode::ALL {
            assert_eq!(mode.as_str().parse::<HookMode>(), Ok(mode));
            assert_eq!(mode.to_string(), mode.as_str());
        }
    }
}
