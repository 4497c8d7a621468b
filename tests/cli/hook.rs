//! `--hook auto|on|off` as the plan shows it: `auto` asks the interpreter of the `rdagent` script where the
//! rdagent package is and turns the hook off only when its model runner reads SOTA_WORKSPACE_PATH itself.

use std::path::Path;

use crate::json_read::{parse, J};
use crate::util::{expect_code, rd_chain, TempDir};

/// A fake installation: an `rdagent` script run by python3 and a package dir with a model runner whose
/// source is `runner_source`.
fn installation(dir: &Path, runner_source: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let pkg_root = dir.join("site");
    let runner_dir = pkg_root.join("rdagent/scenarios/qlib/developer");
    std::fs::create_dir_all(&runner_dir).unwrap();
    // If anything imported rdagent, the probe would exit non-zero and the decision would say so.
    std::fs::write(
        pkg_root.join("rdagent/__init__.py"),
        "raise SystemExit('rdagent must not be imported by rd-chain')\n",
    )
    .unwrap();
    std::fs::write(runner_dir.join("model_runner.py"), runner_source).unwrap();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("rdagent");
    std::fs::write(&script, "#!/usr/bin/env python3\nimport sys\nsys.exit(0)\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (script, pkg_root)
}

fn plan_hook(dir: &Path, script: &Path, pkg_root: &Path, extra: &[&str]) -> J {
    let (out, _) = expect_code(
        rd_chain(dir)
            .args(["--dry-run", "--json", "--rdagent"])
            .arg(script)
            .args(extra)
            .env("PYTHONPATH", pkg_root),
        0,
    );
    parse(&out).unwrap().get("hook").clone()
}

#[test]
fn auto_keeps_the_hook_for_an_upstream_rdagent() {
    let tmp = TempDir::new("hook-upstream");
    let (script, pkg) = installation(tmp.path(), "def develop(exp):\n    return exp\n");
    let hook = plan_hook(tmp.path(), &script, &pkg, &[]);
    assert!(hook.get("enabled").bool(), "{hook:?}");
    assert_eq!(hook.get("mode").str(), "auto");
    let runner = hook.get("model_runner").str();
    assert!(
        runner.ends_with("rdagent/scenarios/qlib/developer/model_runner.py"),
        "{runner}"
    );
}

#[test]
fn auto_turns_the_hook_off_for_a_fork_that_reads_the_workspace_itself() {
    let tmp = TempDir::new("hook-fork");
    let (script, pkg) = installation(
        tmp.path(),
        "import os\nSOTA = os.getenv('SOTA_WORKSPACE_PATH')\n",
    );
    let hook = plan_hook(tmp.path(), &script, &pkg, &[]);
    assert!(!hook.get("enabled").bool(), "{hook:?}");
    assert!(
        hook.get("reason").str().contains("SOTA_WORKSPACE_PATH"),
        "{hook:?}"
    );
    // `on` overrides the detection; the plan then puts the hook dir first on PYTHONPATH.
    let (out, _) = expect_code(
        rd_chain(tmp.path())
            .args(["--dry-run", "--json", "--hook", "on", "--rdagent"])
            .arg(&script)
            .env("PYTHONPATH", &pkg),
        0,
    );
    let plan = parse(&out).unwrap();
    assert!(plan.get("hook").get("enabled").bool());
    let model = &plan.get("phases").arr()[1];
    let pp = model.get("env").get("PYTHONPATH").str();
    let first = pp.split(':').next().unwrap();
    assert!(first.ends_with(".hook"), "{pp}");
    assert!(
        pp.ends_with(pkg.to_str().unwrap()),
        "the user's PYTHONPATH is kept: {pp}"
    );
}

#[test]
fn off_and_the_text_plan_say_which_consumer_is_used() {
    let tmp = TempDir::new("hook-off");
    let (script, pkg) = installation(tmp.path(), "pass\n");
    let (text, _) = expect_code(
        rd_chain(tmp.path())
            .args(["--dry-run", "--hook", "off", "--rdagent"])
            .arg(&script)
            .env("PYTHONPATH", &pkg),
        0,
    );
    assert!(text.contains("rdagent itself (env vars only)"), "{text}");
    assert!(!text.contains("PYTHONPATH="), "{text}");
    let (text, _) = expect_code(
        rd_chain(tmp.path())
            .args(["--dry-run", "--rdagent"])
            .arg(&script)
            .env("RD_CHAIN_HOOK", "ON")
            .env("PYTHONPATH", &pkg),
        0,
    );
    assert!(text.contains("rd-chain's sitecustomize hook"), "{text}");
    let (_, err) = expect_code(
        rd_chain(tmp.path()).args(["--dry-run", "--hook", "sometimes"]),
        2,
    );
    assert!(err.contains("--hook") && err.contains("auto"), "{err}");
}
