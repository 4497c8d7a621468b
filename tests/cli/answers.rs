//! The chain's answers: model runs in `inspect`, `resolve --kind`, `list`; `inspect --factors`; `export` and
//! the chain's `--export`. Against the answers fixture of `scripts/fixtures answers` (a signed 1.0-era
//! factor run whose SOTA parquet has one column no experiment explains, and a model run) and its answers.json.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::json_read::{parse, J};
use crate::util::{describe, expect_code, python, rd_chain, run, script, TempDir};

/// A fresh copy of the answers fixture per test (export tests must see an untouched source).
fn fixture(name: &str) -> (TempDir, J) {
    let tmp = TempDir::new(name);
    python(&[
        script("fixtures").as_os_str(),
        OsStr::new("answers"),
        tmp.path().as_os_str(),
    ]);
    let text = fs::read_to_string(tmp.join("answers/answers.json")).unwrap();
    let expected = parse(&text).unwrap();
    (tmp, expected)
}

/// `rd-chain ARGS` in the fixture's project root with its environment.
fn cmd(exp: &J, args: &[&str]) -> Command {
    let mut cmd = rd_chain(Path::new(exp.get("project_root").str()));
    for (k, v) in exp.get("env").obj() {
        cmd.env(k, v.str());
    }
    cmd.args(args);
    cmd
}

fn json_of(cmd: &mut Command, code: i32) -> J {
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(code), "{}", describe(cmd, &out));
    parse(&String::from_utf8_lossy(&out.stdout))
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", describe(cmd, &out)))
}

/// Every file under `dir` with its bytes (to prove a command changed nothing).
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// SHA-256 of each file, computed by Python's hashlib (independent of rd-chain's own implementation).
fn sha256_of(files: &[PathBuf]) -> Vec<String> {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("-c"),
        OsStr::new(
            "import hashlib,sys\nfor p in sys.argv[1:]:\n    print(hashlib.sha256(open(p,'rb').read()).hexdigest())",
        ),
    ];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let out = python(&args);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn inspect_factors_lists_every_sota_column_with_the_loop_that_introduced_it() {
    let (_tmp, exp) = fixture("ans-factors");
    let want = exp.get("factor");
    let log = exp.get("factor_log").str();
    let doc = json_of(&mut cmd(&exp, &["inspect", "--factors", "--json", log]), 0);
    let set = doc.get("factor_set");
    assert_eq!(set.get("sota_index").int(), want.get("sota_index").int());
    assert_eq!(set.get("parquet").str(), want.get("parquet").str());
    let names: Vec<&str> = set
        .get("factors")
        .arr()
        .iter()
        .map(|f| f.get("name").str())
        .collect();
    let columns: Vec<&str> = want.get("columns").arr().iter().map(J::str).collect();
    assert_eq!(names, columns, "every column, in order, none dropped");
    assert_eq!(set.get("unexplained").int(), 1);
    for (got, w) in set
        .get("factors")
        .arr()
        .iter()
        .zip(want.get("factors").arr())
    {
        let name = w.get("name").str();
        assert!(got.get("explained").bool(), "{name}");
        assert_eq!(got.get("loop").int(), w.get("loop").int(), "{name}: loop");
        assert_eq!(
            got.get("index").int(),
            w.get("index").int(),
            "{name}: index"
        );
        // JSON is exact: the escape sequence in one description stays as it is.
        assert_eq!(got.get("description"), w.get("description"), "{name}");
        assert_eq!(got.get("formulation"), w.get("formulation"), "{name}");
        assert_eq!(got.get("variables"), w.get("variables"), "{name}");
        assert_eq!(got.get("hypothesis"), w.get("hypothesis"), "{name}");
        assert!(got.get("code_in_snapshot").bool(), "{name}");
        assert!(
            !got.get("metrics").is_null(),
            "{name}: the introducing loop's metrics"
        );
    }
    let last = set.get("factors").arr().last().unwrap();
    assert_eq!(
        last.get("name").str(),
        want.get("unexplained").arr()[0].str()
    );
    assert!(!last.get("explained").bool());
    assert!(last.get("loop").is_null() && last.get("description").is_null());
    assert!(!last.get("code_in_snapshot").bool());

    let (text, _) = expect_code(&mut cmd(&exp, &["inspect", "--factors", log]), 0);
    assert!(
        !text.contains('\u{1b}'),
        "a terminal escape reached the terminal:\n{text}"
    );
    assert!(text.contains("\\x1b[31mRED"), "{text}");
    assert!(
        text.contains(&format!(
            "{}  NOT EXPLAINED",
            want.get("unexplained").arr()[0].str()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("SOTA factor set: {} factors", columns.len())),
        "{text}"
    );
    // The answer line counts the parquet footer's factor columns.
    assert!(
        text.contains(&format!(
            "loop {}, {} factors",
            want.get("sota_loop").int(),
            columns.len()
        )),
        "{text}"
    );
}

#[test]
fn model_logs_are_first_class_in_inspect_resolve_and_list() {
    let (_tmp, exp) = fixture("ans-model");
    let want = exp.get("model");
    let model_log = exp.get("model_log").str();
    let factor_log = exp.get("factor_log").str();

    let doc = json_of(&mut cmd(&exp, &["inspect", "--json", model_log]), 0);
    assert_eq!(doc.get("run_kind").str(), "model");
    let sota = doc.get("answers").get("model").get("sota");
    assert_eq!(sota.get("index").int(), want.get("sota_index").int());
    assert_eq!(sota.get("loop").int(), want.get("sota_loop").int());
    assert_eq!(sota.get("name").str(), want.get("name").str());
    assert_eq!(sota.get("model_type").str(), want.get("model_type").str());
    assert_eq!(sota.get("architecture"), want.get("architecture"));
    assert_eq!(sota.get("hyperparameters"), want.get("hyperparameters"));
    assert_eq!(
        sota.get("training_hyperparameters"),
        want.get("training_hyperparameters")
    );
    assert_eq!(sota.get("workspace").str(), want.get("workspace").str());
    assert_eq!(sota.get("metrics"), want.get("metrics"));
    let baseline = doc.get("answers").get("model").get("baseline");
    assert_eq!(baseline.get("loop").int(), want.get("baseline_loop").int());
    let gain = doc.get("answers").get("model").get("gain");
    for (key, label) in [
        ("IC", "IC"),
        ("ICIR", "ICIR"),
        ("Rank IC", "Rank IC"),
        (
            "annualized_return",
            "1day.excess_return_with_cost.annualized_return",
        ),
        ("max_drawdown", "1day.excess_return_with_cost.max_drawdown"),
    ] {
        let expected =
            want.get("metrics").get(label).num() - want.get("baseline_metrics").get(label).num();
        assert!((gain.get(key).num() - expected).abs() < 1e-12, "gain {key}");
    }

    let (text, _) = expect_code(&mut cmd(&exp, &["inspect", model_log]), 0);
    let marked: Vec<&str> = text.lines().filter(|l| l.starts_with('*')).collect();
    assert_eq!(marked.len(), 1, "{text}");
    assert!(
        marked[0].contains(want.get("name").str()) && marked[0].contains("TimeSeries"),
        "{text}"
    );
    assert!(
        marked[0].contains("accepted") && marked[0].contains(want.get("workspace").str()),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "over loop {} (baseline)",
            want.get("baseline_loop").int()
        )),
        "{text}"
    );

    // --factors asks for the factor set, which a model log does not have: the tables, then exit 3.
    let (text, err) = expect_code(&mut cmd(&exp, &["inspect", "--factors", model_log]), 3);
    assert!(text.contains("model experiments (model run):"), "{text}");
    assert!(err.contains("holds a model run"), "{err}");

    // resolve: the model's workspace alone on stdout; the wrong kind is exit 3 saying what the log holds.
    let (out, _) = expect_code(
        &mut cmd(&exp, &["resolve", "--kind", "model", model_log]),
        0,
    );
    assert_eq!(out, format!("{}\n", want.get("workspace").str()));
    let (out, err) = expect_code(&mut cmd(&exp, &["resolve", model_log]), 3);
    assert!(out.is_empty());
    assert!(
        err.contains("holds a model run") && err.contains("--kind model"),
        "{err}"
    );
    let (out, err) = expect_code(&mut cmd(&exp, &["resolve", "--kind=model", factor_log]), 3);
    assert!(out.is_empty());
    assert!(
        err.contains("no model experiment") && err.contains("factor run"),
        "{err}"
    );
    let (out, _) = expect_code(
        &mut cmd(&exp, &["resolve", "--kind", "factor", factor_log]),
        0,
    );
    assert_eq!(
        out,
        format!("{}\n", exp.get("factor").get("workspace").str())
    );

    // list: each run's kind and its SOTA of that kind; a healthy model run is not "no: ...".
    let (text, _) = expect_code(&mut cmd(&exp, &["list"]), 0);
    let model_name = Path::new(model_log).file_name().unwrap().to_str().unwrap();
    let row = text.lines().find(|l| l.starts_with(model_name)).unwrap();
    assert!(row.contains(" model ") && !row.contains("no:"), "{text}");
    assert!(
        row.contains(&format!("loop {} (IC ", want.get("sota_loop").int())),
        "{text}"
    );
    let doc = json_of(&mut cmd(&exp, &["list", "--json"]), 0);
    let kinds: BTreeMap<&str, &str> = doc
        .get("runs")
        .arr()
        .iter()
        .map(|r| (r.get("path").str(), r.get("kind").str()))
        .collect();
    assert_eq!(kinds.get(model_log), Some(&"model"));
    assert_eq!(kinds.get(factor_log), Some(&"factor"));
}

#[test]
fn a_quant_log_gives_both_answers() {
    let tmp = TempDir::new("ans-quant");
    python(&[
        script("fixtures").as_os_str(),
        OsStr::new("tree"),
        tmp.path().as_os_str(),
        OsStr::new("--scenario"),
        OsStr::new("quant"),
        OsStr::new("--parquet"),
        OsStr::new("real"),
    ]);
    let root = tmp.join("quant");
    let exp = parse(&fs::read_to_string(root.join("expected.json")).unwrap()).unwrap();
    let log = exp.get("log_dir").str();
    let history = exp.get("history").arr();
    let sota_model = history
        .iter()
        .rev()
        .find(|h| h.get("kind").str() == "model" && h.get("decision").bool())
        .unwrap();
    let (out, _) = expect_code(rd_chain(&root).args(["resolve", "--kind", "model", log]), 0);
    assert_eq!(out, format!("{}\n", sota_model.get("workspace").str()));
    let (out, _) = expect_code(rd_chain(&root).args(["resolve", log]), 0);
    assert_eq!(
        out,
        format!("{}\n", exp.get("expect").get("sota").get("workspace").str())
    );
    let doc = json_of(rd_chain(&root).args(["inspect", "--json", log]), 0);
    assert_eq!(doc.get("run_kind").str(), "quant");
    let answers = doc.get("answers");
    assert_eq!(
        answers.get("factor").get("index").int(),
        exp.get("expect").get("sota").get("index").int()
    );
    assert_eq!(
        answers.get("model").get("sota").get("index").int(),
        sota_model.get("index").int()
    );
    let (text, _) = expect_code(rd_chain(&root).args(["inspect", log]), 0);
    assert!(
        text.contains("\nanswers:\n  factors ") && text.contains("\n  model "),
        "{text}"
    );
    let (text, _) = expect_code(rd_chain(&root).args(["list", "log"]), 0);
    assert!(
        text.contains(" quant ")
            && text.contains("factors loop ")
            && text.contains("; model loop "),
        "{text}"
    );
}

/// The bundle's files (relative path -> bytes), the manifest excluded.
fn bundle_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    tree(dir)
        .into_iter()
        .map(|(p, b)| {
            (
                p.strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/"),
                b,
            )
        })
        .filter(|(p, _)| p != "manifest.json")
        .collect()
}

#[test]
fn export_writes_every_file_with_its_manifest_hash_and_changes_nothing_in_the_source() {
    let (tmp, exp) = fixture("ans-export");
    let root = PathBuf::from(exp.get("project_root").str());
    let before = tree(&root);
    let dir = tmp.join("bundle");
    let factor_log = exp.get("factor_log").str();
    let (out, _) = expect_code(
        &mut cmd(&exp, &["export", factor_log, "--to", dir.to_str().unwrap()]),
        0,
    );
    assert!(out.contains("manifest.json"), "{out}");
    assert_eq!(
        tree(&root),
        before,
        "export changed the source log or workspaces"
    );

    let want = exp.get("factor");
    let files = bundle_files(&dir);
    let mut expected_paths = vec![
        "combined_factors_df.parquet".to_string(),
        "factors.json".to_string(),
    ];
    for f in want.get("factors").arr() {
        expected_paths.push(format!("factors/{}.py", f.get("name").str()));
        assert_eq!(
            files[&format!("factors/{}.py", f.get("name").str())],
            f.get("code").str().as_bytes(),
            "the code is the snapshot's factor.py"
        );
    }
    expected_paths.sort();
    assert_eq!(files.keys().cloned().collect::<Vec<_>>(), expected_paths);
    assert_eq!(
        files["combined_factors_df.parquet"],
        fs::read(want.get("parquet").str()).unwrap()
    );
    let factors_json = parse(std::str::from_utf8(&files["factors.json"]).unwrap()).unwrap();
    let listed = factors_json.get("factors").arr();
    assert_eq!(listed.len(), want.get("columns").arr().len());
    for (got, w) in listed.iter().zip(want.get("factors").arr()) {
        assert_eq!(got.get("name"), w.get("name"));
        assert_eq!(got.get("loop"), w.get("loop"));
        assert_eq!(got.get("description"), w.get("description"));
        assert_eq!(got.get("formulation"), w.get("formulation"));
        assert_eq!(got.get("variables"), w.get("variables"));
        assert!(!got.get("metrics").is_null());
        assert_eq!(
            got.get("code_file").str(),
            format!("factors/{}.py", w.get("name").str())
        );
    }
    assert!(!listed.last().unwrap().get("explained").bool());
    assert!(listed.last().unwrap().get("code_file").is_null());

    // The manifest lists every file once, with the hash and size of what is on disk.
    let manifest = parse(&fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest.get("rd_chain_version").str(),
        env!("CARGO_PKG_VERSION")
    );
    let sources = manifest.get("sources").arr();
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].get("log_dir").str(), factor_log);
    assert!(sources[0].get("snapshot").str().starts_with(factor_log));
    let entries = manifest.get("files").arr();
    let paths: Vec<String> = manifest_paths(&manifest)
        .into_iter()
        .map(String::from)
        .collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(sorted, expected_paths);
    let on_disk: Vec<PathBuf> = paths.iter().map(|p| dir.join(p)).collect();
    let hashes = sha256_of(&on_disk);
    for ((entry, hash), path) in entries.iter().zip(&hashes).zip(&paths) {
        assert_eq!(entry.get("sha256").str(), hash, "{path}");
        assert_eq!(
            entry.get("bytes").int() as usize,
            files[path].len(),
            "{path}"
        );
    }

    // A model bundle: model.py from the snapshot, model.json with hyperparameters and metrics.
    let mdir = tmp.join("model-bundle");
    let model_log = exp.get("model_log").str();
    expect_code(
        &mut cmd(&exp, &["export", model_log, "--to", mdir.to_str().unwrap()]),
        0,
    );
    let files = bundle_files(&mdir);
    assert_eq!(
        files.keys().cloned().collect::<Vec<_>>(),
        vec!["model.json", "model.py"]
    );
    let want = exp.get("model");
    assert_eq!(files["model.py"], want.get("code").str().as_bytes());
    let model = parse(std::str::from_utf8(&files["model.json"]).unwrap()).unwrap();
    assert_eq!(model.get("sota").get("name"), want.get("name"));
    assert_eq!(
        model.get("sota").get("hyperparameters"),
        want.get("hyperparameters")
    );
    assert_eq!(model.get("sota").get("metrics"), want.get("metrics"));
    assert_eq!(model.get("code_file").str(), "model.py");
    // Asking a model log for factors is exit 3 saying what it holds; nothing is written.
    let (_, err) = expect_code(
        &mut cmd(
            &exp,
            &[
                "export",
                model_log,
                "--kind",
                "factor",
                "--to",
                tmp.join("none").to_str().unwrap(),
            ],
        ),
        3,
    );
    assert!(err.contains("holds a model run"), "{err}");
    assert!(!tmp.join("none").exists());
}

#[test]
fn export_refuses_a_non_empty_dir_and_force_removes_only_listed_files() {
    let (tmp, exp) = fixture("ans-force");
    let factor_log = exp.get("factor_log").str();
    let model_log = exp.get("model_log").str();
    let dir = tmp.join("bundle");
    let to = dir.to_str().unwrap();

    // A directory with someone else's file: refused, untouched, even with --force (it is not a bundle).
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("notes.txt"), "mine").unwrap();
    let (_, err) = expect_code(&mut cmd(&exp, &["export", factor_log, "--to", to]), 2);
    assert!(
        err.contains("not empty") && err.contains("--force"),
        "{err}"
    );
    let (_, err) = expect_code(
        &mut cmd(&exp, &["export", factor_log, "--to", to, "--force"]),
        2,
    );
    assert!(err.contains("manifest.json"), "{err}");
    assert_eq!(
        bundle_files(&dir).keys().collect::<Vec<_>>(),
        vec!["notes.txt"]
    );
    fs::remove_file(dir.join("notes.txt")).unwrap();

    // An earlier bundle plus a user's file: --force removes exactly the files its manifest lists.
    expect_code(&mut cmd(&exp, &["export", factor_log, "--to", to]), 0);
    fs::write(dir.join("notes.txt"), "mine").unwrap();
    fs::write(dir.join("factors").join("my_own.py"), "mine").unwrap();
    let (_, err) = expect_code(&mut cmd(&exp, &["export", model_log, "--to", to]), 2);
    assert!(err.contains("not empty"), "{err}");
    expect_code(
        &mut cmd(&exp, &["export", model_log, "--to", to, "--force"]),
        0,
    );
    let files = bundle_files(&dir);
    assert_eq!(
        files.keys().cloned().collect::<Vec<_>>(),
        vec!["factors/my_own.py", "model.json", "model.py", "notes.txt"],
        "the earlier bundle's files are gone, the user's stay"
    );
    let manifest = parse(&fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let paths = manifest_paths(&manifest);
    assert_eq!(paths, vec!["model.py", "model.json"]);

    // A manifest that names a path outside the bundle is refused before anything is removed.
    let outside = tmp.join("outside.txt");
    fs::write(&outside, "keep").unwrap();
    let text = fs::read_to_string(dir.join("manifest.json"))
        .unwrap()
        .replace("\"model.py\"", "\"../outside.txt\"");
    fs::write(dir.join("manifest.json"), text).unwrap();
    let (_, err) = expect_code(
        &mut cmd(&exp, &["export", model_log, "--to", to, "--force"]),
        2,
    );
    assert!(
        err.contains("../outside.txt") && err.contains("nothing was removed"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&outside).unwrap(), "keep");
    assert!(dir.join("model.py").exists() && dir.join("model.json").exists());
}

#[test]
fn the_chain_ends_with_both_answers_and_exports_the_bundle() {
    let tmp = TempDir::new("ans-chain");
    let bundle = tmp.join("bundle");
    let mut chain = rd_chain(tmp.path());
    chain
        .arg("--rdagent")
        .arg(script("fake-rdagent"))
        .args([
            "--factor-loops",
            "4",
            "--model-loops",
            "3",
            "--json",
            "--export",
        ])
        .arg(&bundle);
    let out = run(&mut chain);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&chain, &out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = &stderr[stderr.find("rd-chain summary").unwrap()..];
    let tail: Vec<&str> = summary.lines().rev().take(5).collect();
    assert!(tail[4].starts_with("answers"), "{summary}");
    assert!(tail[3].starts_with("  factors   loop "), "{summary}");
    assert!(tail[2].starts_with("  model     loop "), "{summary}");
    assert!(
        tail[1].starts_with("  gain      over loop 0 (baseline): IC "),
        "{summary}"
    );
    assert!(
        tail[0].starts_with("  export    ") && tail[0].ends_with("bundle"),
        "{summary}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let record = parse(stdout.lines().last().unwrap()).unwrap();
    let answers = record.get("answers");
    let factor = answers.get("factor");
    assert_eq!(
        factor.get("index").int(),
        record.get("sota").get("index").int()
    );
    assert_eq!(
        factor.get("factor_count").int(),
        4,
        "2 factors of each of the 2 accepted loops"
    );
    let model = answers.get("model");
    // The simulated model loop accepts loops 0 and 1 of 3 (never the last): the SOTA model is loop 1.
    assert_eq!(model.get("sota").get("loop").int(), 1);
    assert!(model.get("sota").get("name").str().ends_with("_L1"));
    assert_eq!(model.get("baseline").get("loop").int(), 0);
    let sota_ic = model.get("sota").get("headline").get("IC").num();
    let base_ic = model.get("baseline").get("headline").get("IC").num();
    assert!((model.get("gain").get("IC").num() - (sota_ic - base_ic)).abs() < 1e-12);
    assert_eq!(answers.get("export").str(), bundle.to_str().unwrap());
    let manifest = parse(&fs::read_to_string(bundle.join("manifest.json")).unwrap()).unwrap();
    let kinds: Vec<&str> = manifest
        .get("sources")
        .arr()
        .iter()
        .map(|s| s.get("kind").str())
        .collect();
    assert_eq!(kinds, vec!["factor", "model"]);
    let paths = manifest_paths(&manifest);
    assert!(
        paths.contains(&"model.py") && paths.contains(&"combined_factors_df.parquet"),
        "{paths:?}"
    );
    assert_eq!(
        paths.iter().filter(|p| p.starts_with("factors/")).count(),
        4
    );

    // The same --export DIR again: refused before any phase starts.
    let mut again = rd_chain(tmp.path());
    again
        .arg("--rdagent")
        .arg(script("fake-rdagent"))
        .args(["--factor-loops", "1", "--model-loops", "1", "--export"])
        .arg(&bundle);
    let before = fs::read_dir(tmp.join("log")).unwrap().count();
    let (_, err) = expect_code(&mut again, 2);
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(
        fs::read_dir(tmp.join("log")).unwrap().count(),
        before,
        "no phase ran"
    );
}

/// The `path` of every entry of a bundle manifest's `files`, in the manifest's order.
fn manifest_paths(manifest: &J) -> Vec<&str> {
    manifest
        .get("files")
        .arr()
        .iter()
        .map(|f| f.get("path").str())
        .collect()
}
