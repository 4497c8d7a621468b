//! `rd-chain resolve`, `inspect` and `list` against the fixture tree of `scripts/fixtures`: every
//! scenario's expected.json (the chosen snapshot, the whole history, each pick policy's workspace and mapping or
//! exit 3 naming what it should), plus broken inputs (no `__session__`, empty, cut-short and unreadable files)
//! and the output contracts (`resolve` prints one line; `--json` parses).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::json_read::{parse, J};
use crate::util::{describe, expect_code, python, rd_chain, run, script, TempDir};

/// The whole fixture tree, generated once per test process.
fn fixtures() -> &'static Path {
    static TREE: OnceLock<PathBuf> = OnceLock::new();
    TREE.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("resolve-fixtures");
        let _ = fs::remove_dir_all(&dir);
        python(&[
            script("fixtures").as_os_str(),
            OsStr::new("tree"),
            dir.as_os_str(),
        ]);
        dir
    })
}

/// A fresh copy of some scenarios, for tests that damage files.
fn fresh(name: &str, scenarios: &[&str]) -> TempDir {
    let tmp = TempDir::new(name);
    let mut args: Vec<OsString> = vec![script("fixtures").into(), "tree".into(), tmp.path().into()];
    for s in scenarios {
        args.push("--scenario".into());
        args.push((*s).into());
    }
    let refs: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
    python(&refs);
    tmp
}

struct Scenario {
    name: String,
    root: PathBuf,
    expected: J,
}

impl Scenario {
    fn load(root: &Path) -> Scenario {
        let text = fs::read_to_string(root.join("expected.json")).unwrap();
        let expected = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
        Scenario {
            name: expected.get("scenario").str().to_string(),
            root: root.to_path_buf(),
            expected,
        }
    }

    fn log_dir(&self) -> PathBuf {
        PathBuf::from(self.expected.get("log_dir").str())
    }

    /// `rd-chain ARGS` in the project root with the scenario's environment.
    fn cmd(&self, args: &[&OsStr]) -> Command {
        let mut cmd = rd_chain(&self.root);
        for (k, v) in self.expected.get("env").obj() {
            cmd.env(k, v.str());
        }
        cmd.args(args);
        cmd
    }
}

fn scenario(name: &str) -> Scenario {
    Scenario::load(&fixtures().join(name))
}

fn all_scenarios() -> Vec<Scenario> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("expected.json").is_file())
        .collect();
    dirs.sort();
    dirs.iter().map(|d| Scenario::load(d)).collect()
}

fn json_of(cmd: &mut Command, code: i32) -> (J, String) {
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(code), "{}", describe(cmd, &out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc = parse(&stdout).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{}", describe(cmd, &out)));
    (doc, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn opt_int(j: &J) -> Option<i64> {
    (!j.is_null()).then(|| j.int())
}

fn opt_str(j: &J) -> Option<&str> {
    (!j.is_null()).then(|| j.str())
}

fn opt_bool(j: &J) -> Option<bool> {
    (!j.is_null()).then(|| j.bool())
}

fn metrics(j: &J) -> Option<Vec<(String, f64)>> {
    match j {
        J::Null => None,
        J::Obj(fields) => Some(fields.iter().map(|(k, v)| (k.clone(), v.num())).collect()),
        other => panic!("metrics must be an object or null, got {other:?}"),
    }
}

/// How a field of rd-chain's JSON is compared with expected.json.
#[derive(Clone, Copy)]
enum Field {
    Int,
    OptInt,
    Str,
    OptStr,
    Bool,
    OptBool,
    Metrics,
    /// Null on both sides, or rd-chain's text contains expected.json's.
    Contains,
}

/// `inspect --json`'s `snapshot` against expected.json's: (rd-chain's key, expected.json's key, kind).
const SNAPSHOT_FIELDS: &[(&str, &str, Field)] = &[
    ("path", "file", Field::Str),
    ("loop", "loop", Field::Int),
    ("step", "step", Field::Int),
    ("signed", "signed", Field::Bool),
    ("protocol", "protocol", Field::Int),
    ("hist_len", "hist_len", Field::Int),
];

/// Each `history` entry: the same key on both sides.
const HISTORY_FIELDS: &[(&str, &str, Field)] = &[
    ("index", "index", Field::Int),
    ("loop", "loop", Field::OptInt),
    ("loop_source", "loop_source", Field::OptStr),
    ("note", "note", Field::Contains),
    ("class", "class", Field::OptStr),
    ("kind", "kind", Field::Str),
    ("decision", "decision", Field::OptBool),
    ("workspace_recorded", "workspace_recorded", Field::OptStr),
    ("workspace", "workspace", Field::OptStr),
    ("mapping", "mapping", Field::OptStr),
    ("parquet_exists", "parquet_exists", Field::Bool),
    ("metrics", "metrics", Field::Metrics),
];

/// `resolve --json` against a policy's expected pick (rd-chain's key may be a dotted path).
const PICK_FIELDS: &[(&str, &str, Field)] = &[
    ("pick.index", "index", Field::Int),
    ("pick.loop", "loop", Field::OptInt),
    ("workspace", "workspace", Field::Str),
    ("path_mapping", "mapping", Field::Str),
    ("parquet.path", "parquet", Field::Str),
];

/// `doc`'s value at a dotted path.
fn at_path<'a>(doc: &'a J, path: &str) -> &'a J {
    path.split('.').fold(doc, |j, key| j.get(key))
}

/// Every row of `table`: rd-chain's `got` against expected.json's `want`, failures naming `at` and the key.
fn check_fields(got: &J, want: &J, table: &[(&str, &str, Field)], at: &str) {
    for &(ours, theirs, kind) in table {
        let (g, w) = (at_path(got, ours), want.get(theirs));
        let what = format!("{at}: {ours}");
        match kind {
            Field::Int => assert_eq!(g.int(), w.int(), "{what}"),
            Field::OptInt => assert_eq!(opt_int(g), opt_int(w), "{what}"),
            Field::Str => assert_eq!(g.str(), w.str(), "{what}"),
            Field::OptStr => assert_eq!(opt_str(g), opt_str(w), "{what}"),
            Field::Bool => assert_eq!(g.bool(), w.bool(), "{what}"),
            Field::OptBool => assert_eq!(opt_bool(g), opt_bool(w), "{what}"),
            Field::Metrics => assert_eq!(metrics(g), metrics(w), "{what}"),
            Field::Contains => match (opt_str(g), opt_str(w)) {
                (Some(g), Some(w)) => assert!(g.contains(w), "{what}: {g:?} lacks {w:?}"),
                (g, w) => assert_eq!(g, w, "{what}"),
            },
        }
    }
}

/// The snapshot, skipped files and whole history of `inspect --json` against expected.json.
fn check_survey(s: &Scenario, doc: &J) {
    let exp = &s.expected;
    let name = &s.name;
    assert_eq!(
        doc.get("log_dir").str(),
        exp.get("log_dir").str(),
        "{name}: log_dir"
    );
    assert_eq!(
        doc.get("project_root").str(),
        exp.get("project_root").str(),
        "{name}: project_root"
    );
    let snap = doc.get("snapshot");
    let want = exp.get("snapshot");
    check_fields(snap, want, SNAPSHOT_FIELDS, &format!("{name}: snapshot"));
    // The scenarios carry RD-Agent's key in their environment: every signed snapshot verifies with it.
    let signed = want.get("signed").bool();
    assert_eq!(
        snap.get("hmac_verified").bool(),
        signed,
        "{name}: HMAC verified"
    );
    assert_eq!(
        snap.get("signature").str(),
        if signed { "verified" } else { "unsigned" },
        "{name}: signature"
    );
    if signed {
        assert_eq!(
            snap.get("signing_key_source").str(),
            "ARTIFACT_SIGNING_KEY",
            "{name}"
        );
    }
    assert_eq!(
        opt_str(snap.get("loop_class")),
        Some(exp.get("loop_class").str()),
        "{name}"
    );

    let mut skipped: Vec<&str> = doc
        .get("skipped")
        .arr()
        .iter()
        .map(|s| s.get("path").str())
        .collect();
    let mut want_skipped: Vec<&str> = exp.get("skipped").arr().iter().map(J::str).collect();
    skipped.sort();
    want_skipped.sort();
    assert_eq!(skipped, want_skipped, "{name}: skipped snapshots");

    // Only a handful of files are read: the last step of the last 3 loops, the newest by mtime, and the
    // replacements of skipped ones.
    let read = doc.get("candidates_read").int();
    let files = exp.get("snapshot_count").int();
    assert_eq!(
        doc.get("snapshot_files").int(),
        files,
        "{name}: snapshot files found"
    );
    assert!(read >= 1 && read <= files, "{name}: read {read} of {files}");
    assert!(
        read <= 4 + 2 * want_skipped.len() as i64,
        "{name}: read {read} snapshot files, more than the candidates"
    );

    let history = doc.get("history").arr();
    let want_history = exp.get("history").arr();
    assert_eq!(history.len(), want_history.len(), "{name}: history length");
    for (got, want) in history.iter().zip(want_history) {
        let at = format!("{name}: history entry {}", want.get("index").int());
        check_fields(got, want, HISTORY_FIELDS, &at);
    }
}

/// One policy through `resolve --json` and plain `resolve`.
fn check_policy(s: &Scenario, policy: &str, want: &J) {
    let name = format!("{} --pick {policy}", s.name);
    let log = s.log_dir();
    let args = [
        OsStr::new("resolve"),
        OsStr::new("--pick"),
        OsStr::new(policy),
    ];
    if let Some(code) = want.opt("exit") {
        let mut cmd = s.cmd(&args);
        cmd.arg(&log);
        let (stdout, stderr) = expect_code(&mut cmd, code.int() as i32);
        assert!(
            stdout.is_empty(),
            "{name}: nothing on stdout when resolution fails, got {stdout:?}"
        );
        let why = want.get("why").str();
        assert!(
            stderr.contains(why),
            "{name}: stderr should say {why:?}:\n{stderr}"
        );
        for mention in want.get("mentions").arr() {
            assert!(
                stderr.contains(mention.str()),
                "{name}: stderr should name {}:\n{stderr}",
                mention.str()
            );
        }
        return;
    }
    let mut cmd = s.cmd(&args);
    cmd.arg("--json").arg(&log);
    let (doc, _) = json_of(&mut cmd, 0);
    assert_eq!(doc.get("pick").get("policy").str(), policy, "{name}");
    check_fields(&doc, want, PICK_FIELDS, &name);
    assert!(doc.get("parquet").get("bytes").int() >= 12, "{name}");
    let tried = doc.get("paths_tried").arr();
    assert_eq!(
        tried.last().map(|t| t.get("path").str()),
        Some(want.get("workspace").str()),
        "{name}"
    );

    let mut cmd = s.cmd(&args);
    cmd.arg(&log);
    let (stdout, _) = expect_code(&mut cmd, 0);
    assert_eq!(
        stdout,
        format!("{}\n", want.get("workspace").str()),
        "{name}: resolve prints one line"
    );
}

fn check_scenario(s: &Scenario) {
    let exp = &s.expected;
    let sota = exp.get("expect").get("sota");
    let sota_code = sota.opt("exit").map_or(0, |c| c.int() as i32);
    let mut cmd = s.cmd(&[OsStr::new("inspect"), OsStr::new("--json")]);
    cmd.arg(s.log_dir());
    if exp.get("snapshot").is_null() {
        // Nothing readable: no document, exit 3 naming the log.
        let (stdout, stderr) = expect_code(&mut cmd, 3);
        assert!(stdout.is_empty(), "{}: {stdout}", s.name);
        assert!(
            stderr.contains(sota.get("why").str()),
            "{}: {stderr}",
            s.name
        );
    } else {
        // A model run's answer is its SOTA model (the last accepted model experiment): inspect exits 0 when
        // there is one, 3 when none was accepted. Every other run's answer is its factor pick.
        let history = exp.get("history").arr();
        let model_run =
            !history.is_empty() && history.iter().all(|h| h.get("kind").str() == "model");
        let sota_model = history
            .iter()
            .rev()
            .find(|h| h.get("kind").str() == "model" && opt_bool(h.get("decision")) == Some(true));
        let code = match (model_run, sota_model) {
            (true, Some(_)) => 0,
            (true, None) => 3,
            (false, _) => sota_code,
        };
        let (doc, _) = json_of(&mut cmd, code);
        check_survey(s, &doc);
        check_answers(s, &doc, sota_model);
    }
    for (policy, want) in exp.get("expect").obj() {
        check_policy(s, policy, want);
    }
}

/// `inspect --json`'s run kind, model table and answers against expected.json's history.
fn check_answers(s: &Scenario, doc: &J, sota_model: Option<&J>) {
    let name = &s.name;
    let history = s.expected.get("history").arr();
    let has = |kind: &str| history.iter().any(|h| h.get("kind").str() == kind);
    let class = s.expected.get("loop_class").str();
    let kind = match (has("factor"), has("model")) {
        (true, true) => "quant",
        _ if class.ends_with("QuantRDLoop") => "quant",
        (true, false) => "factor",
        (false, true) => "model",
        (false, false) if class.ends_with("ModelRDLoop") => "model",
        (false, false) => "factor",
    };
    assert_eq!(doc.get("run_kind").str(), kind, "{name}: run kind");
    let models: Vec<i64> = doc
        .get("models")
        .arr()
        .iter()
        .map(|m| m.get("index").int())
        .collect();
    let want: Vec<i64> = history
        .iter()
        .filter(|h| h.get("kind").str() == "model")
        .map(|h| h.get("index").int())
        .collect();
    assert_eq!(models, want, "{name}: model table rows");
    let answers = doc.get("answers");
    match sota_model {
        None => assert!(answers.get("model").is_null(), "{name}: no SOTA model"),
        Some(h) => {
            let sota = answers.get("model").get("sota");
            assert_eq!(
                sota.get("index").int(),
                h.get("index").int(),
                "{name}: SOTA model"
            );
            assert_eq!(
                opt_int(sota.get("loop")),
                opt_int(h.get("loop")),
                "{name}: SOTA model loop"
            );
            assert_eq!(
                metrics(sota.get("metrics")),
                metrics(h.get("metrics")),
                "{name}: SOTA model metrics"
            );
        }
    }
    let factor = answers.get("factor");
    match s.expected.get("expect").get("sota").opt("index") {
        Some(index) => assert_eq!(
            factor.get("index").int(),
            index.int(),
            "{name}: SOTA factor set"
        ),
        None => assert!(factor.is_null(), "{name}: no SOTA factor set"),
    }
}

#[test]
fn every_scenario_matches_its_expected_json() {
    let scenarios = all_scenarios();
    assert!(
        scenarios.len() >= 20,
        "the generator wrote only {} scenarios",
        scenarios.len()
    );
    let mut failed = Vec::new();
    for s in &scenarios {
        if std::panic::catch_unwind(|| check_scenario(s)).is_err() {
            failed.push(s.name.clone());
        }
    }
    assert!(
        failed.is_empty(),
        "scenarios that do not match expected.json: {failed:?}"
    );
}

#[test]
fn resolve_from_the_project_root_with_a_relative_path_prints_exactly_the_workspace() {
    let s = scenario("spaces and ünïcode");
    let log = s.log_dir();
    let relative = log.strip_prefix(&s.root).unwrap();
    let out = run(&mut s.cmd(&[OsStr::new("resolve"), relative.as_os_str()]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = s.expected.get("expect").get("sota").get("workspace").str();
    assert!(want.contains("spaces and ünïcode"), "{want}");
    assert_eq!(out.stdout, format!("{want}\n").into_bytes());
    // The `__session__` directory itself works the same.
    let session = log.join("__session__");
    let out = run(&mut s.cmd(&[OsStr::new("resolve"), session.as_os_str()]));
    assert_eq!(out.stdout, format!("{want}\n").into_bytes());
}

#[test]
fn one_snapshot_file_is_read_alone() {
    let s = scenario("basic-p4");
    let file = s.log_dir().join("__session__").join("2").join("3_feedback");
    let mut cmd = s.cmd(&[
        OsStr::new("inspect"),
        OsStr::new("--json"),
        file.as_os_str(),
    ]);
    let want_history = s.expected.get("history").arr();
    // That snapshot holds loops 0..=2; its SOTA is the last accepted factor experiment among them.
    let sota = want_history[..3].iter().rposition(|h| {
        h.get("kind").str() == "factor" && opt_bool(h.get("decision")) == Some(true)
    });
    let (doc, _) = json_of(&mut cmd, if sota.is_some() { 0 } else { 3 });
    assert_eq!(
        doc.get("snapshot").get("path").str(),
        file.to_str().unwrap()
    );
    assert_eq!(doc.get("snapshot").get("loop").int(), 2);
    assert_eq!(doc.get("snapshot").get("step").int(), 3);
    assert_eq!(doc.get("candidates_read").int(), 1);
    assert_eq!(doc.get("history").arr().len(), 3);
    assert_eq!(doc.get("log_dir").str(), s.log_dir().to_str().unwrap());
    if let Some(index) = sota {
        assert_eq!(doc.get("pick").get("index").int(), index as i64);
        assert_eq!(
            doc.get("workspace").str(),
            want_history[index].get("workspace").str()
        );
    }
}

#[test]
fn a_directory_without_session_snapshots_exits_3_with_a_clear_message() {
    let tmp = TempDir::new("no-session");
    let run_dir = tmp.join("log").join("2026-01-14_16-14-52-886218");
    fs::create_dir_all(&run_dir).unwrap();
    fs::write(run_dir.join("common_logs.log"), "x").unwrap();
    let (stdout, stderr) = expect_code(rd_chain(tmp.path()).arg("resolve").arg(&run_dir), 3);
    assert!(stdout.is_empty());
    assert!(stderr.contains("no __session__ directory"), "{stderr}");
    assert!(stderr.contains(run_dir.to_str().unwrap()), "{stderr}");

    let missing = tmp.join("log").join("nope");
    let (_, stderr) = expect_code(rd_chain(tmp.path()).arg("resolve").arg(&missing), 3);
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
}

#[test]
fn empty_and_cut_short_snapshots_are_skipped_with_a_warning() {
    let tmp = fresh("empty-snapshot", &["basic-p4"]);
    let s = Scenario::load(&tmp.join("basic-p4"));
    let session = s.log_dir().join("__session__");
    let newest = session.join("5").join("3_feedback");
    fs::write(&newest, b"").unwrap();
    let (doc, stderr) = json_of(
        s.cmd(&[OsStr::new("resolve"), OsStr::new("--json")])
            .arg(s.log_dir()),
        0,
    );
    assert!(
        stderr.contains(newest.to_str().unwrap()),
        "the warning names the file:\n{stderr}"
    );
    let skipped = doc.get("skipped").arr();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].get("path").str(), newest.to_str().unwrap());
    assert!(
        skipped[0].get("reason").str().contains("empty"),
        "{:?}",
        skipped[0]
    );
    // The previous step of the same loop holds as long a history (loop 5 never reached feedback).
    assert_eq!(doc.get("snapshot").get("loop").int(), 5);
    assert_eq!(doc.get("snapshot").get("step").int(), 2);
    assert_eq!(doc.get("snapshot").get("hist_len").int(), 5);

    // Given directly, an empty or cut-short file is an error naming it.
    let (_, stderr) = expect_code(&mut s.cmd(&[OsStr::new("resolve"), newest.as_os_str()]), 3);
    assert!(
        stderr.contains(newest.to_str().unwrap()) && stderr.contains("empty"),
        "{stderr}"
    );
    let cut = session.join("4").join("3_feedback");
    let data = fs::read(&cut).unwrap();
    fs::write(&cut, &data[..data.len() / 2]).unwrap();
    let (_, stderr) = expect_code(&mut s.cmd(&[OsStr::new("resolve"), cut.as_os_str()]), 3);
    assert!(
        stderr.contains(cut.to_str().unwrap()) && stderr.contains("not a complete pickle"),
        "{stderr}"
    );

    // Every candidate broken: the older files are tried until one reads.
    for dir in ["3", "4", "5"] {
        for entry in fs::read_dir(session.join(dir)).unwrap() {
            fs::write(entry.unwrap().path(), b"\x80\x04\x95").unwrap();
        }
    }
    let (doc, _) = json_of(
        s.cmd(&[OsStr::new("inspect"), OsStr::new("--json")])
            .arg(s.log_dir()),
        0,
    );
    assert_eq!(doc.get("snapshot").get("loop").int(), 2);
    assert_eq!(doc.get("snapshot").get("hist_len").int(), 3);

    // Nothing readable at all: exit 3 naming every file tried.
    for dir in ["0", "1", "2"] {
        for entry in fs::read_dir(session.join(dir)).unwrap() {
            fs::write(entry.unwrap().path(), b"garbage").unwrap();
        }
    }
    let (_, stderr) = expect_code(s.cmd(&[OsStr::new("resolve")]).arg(s.log_dir()), 3);
    assert!(
        stderr.contains("no snapshot in") && stderr.contains("could be read"),
        "{stderr}"
    );
    assert!(
        stderr.contains(session.join("0").join("0_direct_exp_gen").to_str().unwrap()),
        "{stderr}"
    );
}

#[cfg(unix)]
#[test]
fn an_unreadable_snapshot_is_named() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = fresh("unreadable", &["basic-p4"]);
    let s = Scenario::load(&tmp.join("basic-p4"));
    let newest = s.log_dir().join("__session__").join("5").join("3_feedback");
    fs::set_permissions(&newest, fs::Permissions::from_mode(0o000)).unwrap();
    if fs::read(&newest).is_ok() {
        // Running as root: permissions do not stop reads, so there is nothing to observe.
        fs::set_permissions(&newest, fs::Permissions::from_mode(0o644)).unwrap();
        return;
    }
    let (_, stderr) = expect_code(&mut s.cmd(&[OsStr::new("resolve"), newest.as_os_str()]), 3);
    assert!(
        stderr.contains(newest.to_str().unwrap()) && stderr.contains("ermission denied"),
        "{stderr}"
    );
    let (doc, _) = json_of(
        s.cmd(&[OsStr::new("resolve"), OsStr::new("--json")])
            .arg(s.log_dir()),
        0,
    );
    assert_eq!(
        doc.get("skipped").arr()[0].get("path").str(),
        newest.to_str().unwrap()
    );
    fs::set_permissions(&newest, fs::Permissions::from_mode(0o644)).unwrap();
}

#[test]
fn a_relative_workspace_path_env_is_taken_against_the_cwd() {
    let s = scenario("env-workspace");
    let absolute = s.expected.get("env").get("WORKSPACE_PATH").str();
    let relative = Path::new(absolute).strip_prefix(&s.root).unwrap();
    let mut cmd = rd_chain(&s.root);
    cmd.env("WORKSPACE_PATH", relative)
        .args(["resolve", "--json"])
        .arg(s.log_dir());
    let (doc, _) = json_of(&mut cmd, 0);
    let want = s.expected.get("expect").get("sota");
    assert_eq!(doc.get("workspace").str(), want.get("workspace").str());
    assert_eq!(doc.get("path_mapping").str(), "env-workspace");
    // Without it the moved workspaces are not found, and every path tried is named.
    let (_, stderr) = expect_code(rd_chain(&s.root).arg("resolve").arg(s.log_dir()), 3);
    assert!(
        stderr.contains("does not exist") && stderr.contains("project-workspace:"),
        "{stderr}"
    );
    assert!(stderr.contains("WORKSPACE_PATH"), "{stderr}");
}

/// The rows of `inspect`'s history table: the lines after its `#` header up to the next blank line.
fn table_rows(text: &str) -> Vec<&str> {
    text.lines()
        .skip_while(|l| !(l.trim_start().starts_with('#') && l.contains(" loop ")))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect()
}

#[test]
fn inspect_marks_the_pick_and_reports_the_signature() {
    let s = scenario("signed");
    let (text, _) = expect_code(s.cmd(&[OsStr::new("inspect")]).arg(s.log_dir()), 0);
    assert!(
        text.contains("HMAC verified with the key from ARTIFACT_SIGNING_KEY"),
        "{text}"
    );
    assert!(text.contains("protocol 5"), "{text}");
    let sota = s.expected.get("expect").get("sota");
    let marked: Vec<&str> = text.lines().filter(|l| l.starts_with('*')).collect();
    assert_eq!(marked.len(), 1, "{text}");
    let fields: Vec<&str> = marked[0].split_whitespace().collect();
    assert_eq!(fields[1], sota.get("index").int().to_string(), "{text}");
    assert!(text.contains(sota.get("workspace").str()), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("IC") && l.contains("ICIR") && l.contains("workspace")),
        "{text}"
    );
    let rows = table_rows(&text).len();
    assert_eq!(
        rows as i64,
        s.expected.get("snapshot").get("hist_len").int(),
        "{text}"
    );

    let bare = scenario("basic-p2");
    let (text, _) = expect_code(bare.cmd(&[OsStr::new("inspect")]).arg(bare.log_dir()), 0);
    assert!(
        text.contains("bare pickle (unsigned), protocol 2"),
        "{text}"
    );
}

#[test]
fn a_signature_that_does_not_match_is_a_warning_and_no_key_is_said() {
    let s = scenario("signed");
    let sota = s.expected.get("expect").get("sota").get("workspace").str();
    let home = TempDir::new("signature-home");
    // Another key: the snapshot is still read (nothing in it runs), with a warning naming the file.
    let (out, err) = expect_code(
        rd_chain(&s.root)
            .env("HOME", home.path())
            .env("ARTIFACT_SIGNING_KEY", "not the key RD-Agent used")
            .arg("inspect")
            .arg(s.log_dir()),
        0,
    );
    assert!(out.contains("HMAC does NOT match"), "{out}");
    assert!(
        err.contains("does not match") && err.contains("__session__"),
        "{err}"
    );
    let (out, _) = expect_code(
        rd_chain(&s.root)
            .env("HOME", home.path())
            .env("ARTIFACT_SIGNING_KEY", "not the key RD-Agent used")
            .arg("resolve")
            .arg(s.log_dir()),
        0,
    );
    assert_eq!(out.trim_end(), sota);
    // No key at all: said, not guessed.
    let (out, _) = expect_code(
        rd_chain(&s.root)
            .env("HOME", home.path())
            .arg("inspect")
            .arg(s.log_dir()),
        0,
    );
    assert!(out.contains("HMAC not checked: no key"), "{out}");
    // RD-Agent's key file in HOME is used when the variable is not set.
    let key = s.expected.get("env").get("ARTIFACT_SIGNING_KEY").str();
    fs::create_dir_all(home.join(".rdagent")).unwrap();
    let digest = Command::new("python3")
        .args(["-c", "import hashlib,sys; sys.stdout.buffer.write(hashlib.sha256(sys.argv[1].encode()).digest())", key])
        .output()
        .unwrap()
        .stdout;
    fs::write(home.join(".rdagent/artifact_signing.key"), digest).unwrap();
    let (out, _) = expect_code(
        rd_chain(&s.root)
            .env("HOME", home.path())
            .arg("inspect")
            .arg(s.log_dir()),
        0,
    );
    assert!(
        out.contains("HMAC verified with the key from") && out.contains("artifact_signing.key"),
        "{out}"
    );
}

#[test]
fn resolve_checks_the_signature_only_when_asked_and_then_strictly() {
    let s = scenario("signed");
    let sota = s.expected.get("expect").get("sota").get("workspace").str();
    let home = TempDir::new("verify-home");
    // The key is at hand (the scenario's environment), but resolve only reads a path: not checked, and said.
    let (doc, _) = json_of(
        s.cmd(&[OsStr::new("resolve"), OsStr::new("--json")])
            .env("HOME", home.path())
            .arg(s.log_dir()),
        0,
    );
    let snap = doc.get("snapshot");
    assert_eq!(snap.get("signature").str(), "skipped");
    assert!(!snap.get("hmac_verified").bool());
    // --verify: checked, and the path printed when it verifies.
    let (out, _) = expect_code(
        s.cmd(&[OsStr::new("resolve"), OsStr::new("--verify")])
            .env("HOME", home.path())
            .arg(s.log_dir()),
        0,
    );
    assert_eq!(out.trim_end(), sota);
    let (doc, _) = json_of(
        s.cmd(&[
            OsStr::new("resolve"),
            OsStr::new("--verify"),
            OsStr::new("--json"),
        ])
        .env("HOME", home.path())
        .arg(s.log_dir()),
        0,
    );
    assert_eq!(doc.get("snapshot").get("signature").str(), "verified");
    // Another key: exit 3, nothing on stdout, the snapshot named.
    let (out, err) = expect_code(
        rd_chain(&s.root)
            .env("HOME", home.path())
            .env("ARTIFACT_SIGNING_KEY", "not the key RD-Agent used")
            .args(["resolve", "--verify"])
            .arg(s.log_dir()),
        3,
    );
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("not verified")
            && err.contains("does NOT match")
            && err.contains("__session__"),
        "{err}"
    );
    // Refused, so no warning that it is read anyway; `inspect` reads it anyway, and warns.
    assert!(!err.contains("read anyway"), "{err}");
    let (_, err) = expect_code(
        rd_chain(&s.root)
            .env("HOME", home.path())
            .env("ARTIFACT_SIGNING_KEY", "not the key RD-Agent used")
            .arg("inspect")
            .arg(s.log_dir()),
        0,
    );
    assert!(
        err.contains("does not match") && err.contains("read anyway"),
        "{err}"
    );
    // No key at all: a usage error saying where the key comes from.
    let (out, err) = expect_code(
        rd_chain(&s.root)
            .env("HOME", home.path())
            .args(["resolve", "--verify"])
            .arg(s.log_dir()),
        2,
    );
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("--verify needs") && err.contains("ARTIFACT_SIGNING_KEY"),
        "{err}"
    );
    // A bare pickle has no signature to verify, whatever the key.
    let bare = scenario("basic-p2");
    let (out, err) = expect_code(
        bare.cmd(&[OsStr::new("resolve"), OsStr::new("--verify")])
            .env("HOME", home.path())
            .env("ARTIFACT_SIGNING_KEY", "any key")
            .arg(bare.log_dir()),
        3,
    );
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("unsigned"), "{err}");
}

#[test]
fn inspect_shows_the_history_even_when_the_pick_fails() {
    let s = scenario("no-accepted");
    let (text, stderr) = expect_code(s.cmd(&[OsStr::new("inspect")]).arg(s.log_dir()), 3);
    assert!(text.contains("sota -> none"), "{text}");
    assert!(!text.lines().any(|l| l.starts_with('*')), "{text}");
    let rows = table_rows(&text);
    assert_eq!(
        rows.len() as i64,
        s.expected.get("snapshot").get("hist_len").int(),
        "{text}"
    );
    assert!(
        rows.iter()
            .all(|r| r.contains("rejected") || r.contains(" - ")),
        "{text}"
    );
    assert!(
        stderr.contains("no accepted factor experiment") && stderr.contains("--pick latest"),
        "{stderr}"
    );
}

#[test]
fn inspect_names_the_era_marks_recovered_loop_ids_and_notes_bad_entries() {
    let cases = [
        ("era03", "looks like RD-Agent 0.3 (3-item history entries, step_idx an int"),
        ("era05-recovered", "looks like RD-Agent 0.4 to 0.7 (2-item history entries, no idx2loop_id"),
        ("era08-empty-map-py313", "looks like RD-Agent 0.8 (2-item history entries, idx2loop_id present but empty"),
        ("signed", "looks like RD-Agent 1.0 (2-item history entries, idx2loop_id filled, a record step, signed"),
    ];
    for (name, era) in cases {
        let s = scenario(name);
        let (text, _) = expect_code(s.cmd(&[OsStr::new("inspect")]).arg(s.log_dir()), 0);
        let line = text
            .lines()
            .find(|l| l.starts_with("era "))
            .unwrap_or_else(|| panic!("{name}:\n{text}"));
        assert!(line.contains(era), "{name}: {line}");
    }
    let s = scenario("era05-recovered");
    let (text, _) = expect_code(s.cmd(&[OsStr::new("inspect")]).arg(s.log_dir()), 0);
    let rows = table_rows(&text);
    assert_eq!(rows.len(), 6, "{text}");
    for (i, row) in rows.iter().enumerate() {
        assert!(row.contains(&format!("{i} (recovered)")), "{text}");
    }

    let s = scenario("bad-entries");
    let (text, _) = expect_code(s.cmd(&[OsStr::new("inspect")]).arg(s.log_dir()), 0);
    for (index, why) in [(1, "1 item;"), (2, "4 items"), (4, "RDAgentTimer")] {
        let note = format!("note: entry #{index} is not used: ");
        assert!(
            text.lines()
                .any(|l| l.starts_with(&note) && l.contains(why)),
            "{note}{why}:\n{text}"
        );
    }

    // No loop ids at all (0.3): `--pick loop:N` says why, naming the era.
    let s = scenario("era03-failed-loops");
    let (_, stderr) = expect_code(
        s.cmd(&[
            OsStr::new("resolve"),
            OsStr::new("--pick"),
            OsStr::new("loop:4"),
        ])
        .arg(s.log_dir()),
        3,
    );
    assert!(
        stderr.contains("no experiment of this log has a loop id")
            && stderr.contains("RD-Agent 0.3")
            && stderr.contains("--pick sota"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_pick_policy_is_a_usage_error_listing_the_forms() {
    let s = scenario("basic-p4");
    let (_, stderr) = expect_code(
        s.cmd(&[
            OsStr::new("resolve"),
            OsStr::new("--pick"),
            OsStr::new("best"),
        ])
        .arg(s.log_dir()),
        2,
    );
    assert!(
        stderr.contains("sota") && stderr.contains("latest") && stderr.contains("loop:N"),
        "{stderr}"
    );
}

/// Loop directories of a scenario's session.
#[cfg(unix)]
fn loop_dirs(s: &Scenario) -> i64 {
    fs::read_dir(s.log_dir().join("__session__"))
        .map(|rd| rd.filter(|e| e.as_ref().unwrap().path().is_dir()).count() as i64)
        .unwrap_or(0)
}

#[cfg(unix)]
#[test]
fn list_shows_every_run_newest_first_and_unreadable_ones_with_a_reason() {
    let names = [
        "basic-p4",
        "no-accepted",
        "model-only",
        "missing-parquet",
        "signed",
    ];
    let tmp = TempDir::new("list");
    let root = tmp.join("log");
    fs::create_dir_all(&root).unwrap();
    let mut runs: Vec<(String, Scenario)> = Vec::new();
    for name in names {
        let s = scenario(name);
        let run_name = s
            .log_dir()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        std::os::unix::fs::symlink(s.log_dir(), root.join(&run_name)).unwrap();
        runs.push((run_name, s));
    }
    fs::create_dir_all(root.join("scratch")).unwrap();
    fs::write(root.join("notes.txt"), "not a run").unwrap();
    runs.sort_by(|a, b| b.0.cmp(&a.0));

    let (doc, _) = json_of(rd_chain(tmp.path()).args(["list", "--json"]), 0);
    assert_eq!(doc.get("log_root").str(), root.to_str().unwrap());
    let listed = doc.get("runs").arr();
    assert_eq!(listed.len(), runs.len() + 1, "{listed:?}");
    for ((run_name, s), got) in runs.iter().zip(listed) {
        let at = format!("{} ({run_name})", s.name);
        assert_eq!(got.get("name").str(), run_name, "newest first");
        assert!(got.get("error").is_null(), "{at}: {got:?}");
        assert_eq!(got.get("loops").int(), loop_dirs(s), "{at}");
        assert_eq!(
            got.get("hist_entries").int(),
            s.expected.get("snapshot").get("hist_len").int(),
            "{at}"
        );
        let accepted = s
            .expected
            .get("history")
            .arr()
            .iter()
            .filter(|h| {
                h.get("kind").str() == "factor" && opt_bool(h.get("decision")) == Some(true)
            })
            .count();
        assert_eq!(got.get("accepted_factor").int(), accepted as i64, "{at}");
        let sota = s.expected.get("expect").get("sota");
        assert_eq!(
            opt_int(got.get("sota_loop")),
            sota.opt("loop").and_then(opt_int),
            "{at}"
        );
        assert_eq!(
            got.get("parquet_ok").bool(),
            sota.opt("exit").is_none(),
            "{at}"
        );
        if sota.opt("exit").is_some() {
            assert!(!got.get("reason").str().is_empty(), "{at}");
        }
    }
    let last = listed.last().unwrap();
    assert_eq!(last.get("name").str(), "scratch");
    assert!(last.get("error").str().contains("__session__"), "{last:?}");

    let (text, _) = expect_code(rd_chain(tmp.path()).arg("list"), 0);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        runs.len() + 2,
        "a header and one line per run:\n{text}"
    );
    for (i, (run_name, _)) in runs.iter().enumerate() {
        assert!(lines[i + 1].starts_with(run_name.as_str()), "{text}");
    }
    assert!(
        lines.last().unwrap().starts_with("scratch")
            && lines.last().unwrap().contains("unreadable"),
        "{text}"
    );

    // Another root given explicitly; a missing root is an error naming it.
    let (text, _) = expect_code(rd_chain(tmp.path()).arg("list").arg(&root), 0);
    assert_eq!(text.lines().count(), runs.len() + 2);
    let (_, stderr) = expect_code(rd_chain(tmp.path()).args(["list", "missing-root"]), 3);
    assert!(stderr.contains("missing-root"), "{stderr}");
}

#[cfg(unix)]
#[test]
fn non_utf8_paths_are_shown_lossily_and_never_panic() {
    use std::os::unix::ffi::OsStrExt;
    let s = scenario("basic-p4");
    let tmp = TempDir::new("non-utf8");
    let root = tmp.path().join(OsStr::from_bytes(b"runs-\xff")).join("log");
    fs::create_dir_all(&root).unwrap();
    let run_name = s.log_dir().file_name().unwrap().to_owned();
    std::os::unix::fs::symlink(s.log_dir(), root.join(&run_name)).unwrap();
    let run_dir = root.join(&run_name);
    let want = s.expected.get("expect").get("sota").get("workspace").str();

    let (stdout, _) = expect_code(rd_chain(tmp.path()).arg("resolve").arg(&run_dir), 0);
    assert_eq!(stdout, format!("{want}\n"));
    let (text, _) = expect_code(rd_chain(tmp.path()).arg("inspect").arg(&run_dir), 0);
    assert!(text.contains("runs-\u{fffd}"), "{text}");
    let (doc, _) = json_of(rd_chain(tmp.path()).args(["list", "--json"]).arg(&root), 0);
    assert!(
        doc.get("log_root").str().contains("runs-\u{fffd}"),
        "{doc:?}"
    );
    assert_eq!(doc.get("runs").arr().len(), 1);
    assert!(doc.get("runs").arr()[0].get("error").is_null());
}
