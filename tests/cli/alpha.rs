//! `USE_ALPHA_FACTORS=false` (`--no-alpha-factors`) with the hook on: the plan checks the installed rdagent's
//! SOTA template (found by the hook probe, nothing imported) and refuses, exit 2 and nothing started, a
//! template that cannot train without the base features.

use std::path::{Path, PathBuf};

use crate::json_read::{parse, J};
use crate::util::{expect_code, rd_chain, repo, run_records, script, TempDir};

/// The test double's installed SOTA template, shaped like RD-Agent 1.0's (an Alpha158DL fed only by the base
/// features).
fn rdagent_1_0_like_template() -> PathBuf {
    repo().join(
        "scripts/rdagent_double/rdagent/scenarios/qlib/experiment/model_template/conf_sota_factors_model.yaml",
    )
}

/// A shared case that trains on the SOTA factors alone.
fn static_only_template() -> PathBuf {
    repo().join("scripts/rdagent_double/sota_templates/static_factors_only.yaml")
}

/// An rdagent package dir (`<dir>/site/rdagent`) with an upstream model runner and, when given, this SOTA
/// template; importing it fails, so the plan can only have read it as text.
fn site(dir: &Path, template: Option<&Path>) -> PathBuf {
    let root = dir.join("site");
    let pkg = root.join("rdagent");
    let runner = pkg.join("scenarios/qlib/developer");
    std::fs::create_dir_all(&runner).unwrap();
    std::fs::write(
        pkg.join("__init__.py"),
        "raise SystemExit('rdagent must not be imported by rd-chain')\n",
    )
    .unwrap();
    std::fs::write(
        runner.join("model_runner.py"),
        "def process_factor_data(exps):\n    pass\n",
    )
    .unwrap();
    if let Some(template) = template {
        let dest = pkg.join("scenarios/qlib/experiment/model_template");
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::copy(template, dest.join("conf_sota_factors_model.yaml")).unwrap();
    }
    root
}

/// rd-chain with the simulated rdagent, whose interpreter (python3 on PATH) finds the package in `site`.
fn chain(dir: &Path, site: &Path, record: &Path) -> std::process::Command {
    let mut cmd = rd_chain(dir);
    cmd.arg("--rdagent")
        .arg(script("fake-rdagent"))
        .env("PYTHONPATH", site)
        .env("FAKE_RDAGENT_RECORD", record);
    cmd
}

fn dry_run_json(cmd: &mut std::process::Command, code: i32) -> J {
    let (out, _) = expect_code(cmd.args(["--dry-run", "--json"]), code);
    parse(&out).unwrap()
}

#[test]
fn a_template_that_needs_the_base_features_is_refused_before_anything_starts() {
    let tmp = TempDir::new("alpha-refused");
    let site = site(tmp.path(), Some(&rdagent_1_0_like_template()));
    let record = tmp.join("calls.jsonl");
    for hook in ["auto", "on"] {
        // The dry run shows it as the blocking error, exit 2.
        let plan = dry_run_json(
            chain(tmp.path(), &site, &record).args(["--no-alpha-factors", "--hook", hook]),
            2,
        );
        assert!(!plan.get("can_run").bool());
        assert_eq!(plan.get("exit_code").int(), 2);
        let check = plan.get("alpha_template");
        assert_eq!(
            check.get("verdict").str(),
            "needs-base-features",
            "{check:?}"
        );
        assert_eq!(
            check.get("loader").str(),
            "qlib.contrib.data.loader.Alpha158DL"
        );
        assert_eq!(check.get("group").str(), "feature");
        let template = check.get("template").str();
        assert!(
            Path::new(template).starts_with(&site)
                || std::fs::canonicalize(template)
                    .unwrap()
                    .starts_with(std::fs::canonicalize(&site).unwrap()),
            "{template}"
        );
        let problem = plan.get("problem").str();
        for words in [
            "USE_ALPHA_FACTORS=false",
            "fields cannot be empty",
            "Set USE_ALPHA_FACTORS=true",
            "nothing was started",
        ] {
            assert!(problem.contains(words), "{words:?} in {problem}");
        }
    }
    let (text, _) = expect_code(
        chain(tmp.path(), &site, &record).args(["--dry-run", "--no-alpha-factors"]),
        2,
    );
    assert!(
        text.contains("USE_ALPHA_FACTORS=false: ")
            && text.contains("CANNOT train without base features"),
        "{text}"
    );
    assert!(
        text.contains("Result: the run would stop with exit 2"),
        "{text}"
    );

    // The run itself: exit 2 with the same message, no rdagent started, nothing written.
    let (_, err) = expect_code(
        chain(tmp.path(), &site, &record).args([
            "--no-alpha-factors",
            "--factor-loops",
            "1",
            "--model-loops",
            "1",
        ]),
        2,
    );
    assert!(
        err.contains("Set USE_ALPHA_FACTORS=true (or pass --alpha-factors)"),
        "{err}"
    );
    assert!(!record.exists(), "rdagent was started");
    assert!(
        !tmp.join("log").exists(),
        "something was written under the log root"
    );

    // USE_ALPHA_FACTORS=true (the default) keeps today's behaviour: no check, the plan can run.
    let plan = dry_run_json(&mut chain(tmp.path(), &site, &record), 0);
    assert!(plan.get("can_run").bool());
    assert!(plan.get("alpha_template").is_null());
    // So does --hook off: rdagent itself (a fork) reads the variable.
    let plan = dry_run_json(
        chain(tmp.path(), &site, &record).args(["--no-alpha-factors", "--hook", "off"]),
        0,
    );
    assert!(plan.get("alpha_template").is_null());
}

#[test]
fn a_template_that_trains_on_the_sota_factors_alone_can_run() {
    let tmp = TempDir::new("alpha-runs");
    let site = site(tmp.path(), Some(&static_only_template()));
    let record = tmp.join("calls.jsonl");
    let plan = dry_run_json(
        chain(tmp.path(), &site, &record).env("USE_ALPHA_FACTORS", "off"),
        0,
    );
    assert!(plan.get("can_run").bool());
    assert_eq!(plan.get("alpha_template").get("verdict").str(), "runs");
    assert!(plan.get("alpha_template").get("reason").is_null());
    let model = &plan.get("phases").arr()[1];
    assert_eq!(model.get("env").get("USE_ALPHA_FACTORS").str(), "false");
    let (text, _) = expect_code(
        chain(tmp.path(), &site, &record).args(["--dry-run", "--no-alpha-factors"]),
        0,
    );
    assert!(text.contains("can train without base features"), "{text}");

    // The chain runs; the hook leaves the base features out and the summary and the record say so.
    let (out, err) = expect_code(
        chain(tmp.path(), &site, &record).args([
            "--no-alpha-factors",
            "--factor-loops",
            "2",
            "--model-loops",
            "1",
        ]),
        0,
    );
    assert!(record.exists());
    if out.contains("pandas is not installed")
        && std::env::var_os("RD_CHAIN_TEST_REQUIRE_PANDAS").is_none()
    {
        return;
    }
    let records = run_records(&tmp.join("log"));
    let rec = &records[0];
    let report = rec.get("hook_report");
    assert_eq!(report.get("used").int(), 1, "{report:?}\n{out}\n{err}");
    assert_eq!(report.get("base_features_dropped").int(), 1, "{report:?}");
    assert!(report.get("template_problem").is_null(), "{report:?}");
    assert!(
        err.contains(
            "USE_ALPHA_FACTORS=false: the base features were left out of 1 model experiment(s)"
        ),
        "{err}"
    );
}

#[test]
fn a_template_that_cannot_be_found_is_said_so_and_not_guessed() {
    let tmp = TempDir::new("alpha-unknown");
    let record = tmp.join("calls.jsonl");
    // A package without the template file.
    let site_without = site(tmp.path(), None);
    let plan = dry_run_json(
        chain(tmp.path(), &site_without, &record).args(["--no-alpha-factors", "--hook", "on"]),
        0,
    );
    let check = plan.get("alpha_template");
    assert_eq!(check.get("verdict").str(), "undecided", "{check:?}");
    assert!(check.get("template").is_null());
    let reason = check.get("reason").str();
    assert!(
        reason.contains("was not checked") && reason.contains("cannot read"),
        "{reason}"
    );
    // No rdagent package at all: the probe found none.
    let plan = dry_run_json(
        chain(tmp.path(), &tmp.join("empty"), &record).args(["--no-alpha-factors"]),
        0,
    );
    let reason = plan.get("alpha_template").get("reason").str().to_string();
    assert!(
        reason.contains("the rdagent package was not found"),
        "{reason}"
    );
    let (text, _) = expect_code(
        chain(tmp.path(), &tmp.join("empty"), &record).args(["--dry-run", "--no-alpha-factors"]),
        0,
    );
    assert!(
        text.contains(
            "warning: USE_ALPHA_FACTORS=false: whether RD-Agent's conf_sota_factors_model.yaml"
        ),
        "{text}"
    );
    assert!(!record.exists());
}

#[test]
fn a_template_problem_found_only_while_the_model_phase_runs_is_in_the_summary_and_the_record() {
    // No rdagent package on the probe's path: the plan cannot check and says so; the run goes ahead, and the
    // hook finds the 1.0-shaped template in the workspace RD-Agent's model experiment filled.
    let tmp = TempDir::new("alpha-runtime");
    let record = tmp.join("calls.jsonl");
    let (out, err) = expect_code(
        chain(tmp.path(), &tmp.join("empty"), &record)
            .args([
                "--no-alpha-factors",
                "--hook",
                "on",
                "--factor-loops",
                "2",
                "--model-loops",
                "1",
            ])
            .env("RDAGENT_DOUBLE_INJECT_TEMPLATE", "1"),
        0,
    );
    assert!(
        err.contains("was not checked: the rdagent package was not found"),
        "{err}"
    );
    if out.contains("pandas is not installed")
        && std::env::var_os("RD_CHAIN_TEST_REQUIRE_PANDAS").is_none()
    {
        return;
    }
    if !err.contains("rd-chain hook: warning:") {
        // The hook needs jinja2 and PyYAML (RD-Agent's own dependencies) to render the workspace's template.
        assert!(
            err.contains("cannot check conf_sota_factors_model.yaml without jinja2 and PyYAML"),
            "{err}"
        );
        return;
    }
    let records = run_records(&tmp.join("log"));
    let rec = &records[0];
    let report = rec.get("hook_report");
    assert_eq!(report.get("base_features_dropped").int(), 1, "{report:?}");
    let problem = report.get("template_problem").str();
    assert!(
        problem.contains("Alpha158DL an empty 'feature' field list"),
        "{problem}"
    );
    assert!(
        err.contains("  hook   WARNING: conf_sota_factors_model.yaml gives"),
        "{err}"
    );
}
