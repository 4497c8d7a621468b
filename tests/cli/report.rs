//! `rd-chain report` on fixture run dirs (`scripts/report_fixture.py`: loops that fail in coding or in the
//! backtest, hypotheses holding markup) and on a whole chain run by the simulated rdagent: the page parses,
//! every chart has a mark per loop and a point per loop with metrics, failed loops are gaps, the SOTA ring
//! sits on RD-Agent's SOTA loop, markup from a snapshot stays text, nothing refers to the network; the
//! comparison page; where the page goes; errors that name what was asked for.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::json_read::{parse, J};
use crate::page_check::{charts, marks, number_attr, phase_section_of, well_formed};
use crate::util::{expect_code, python, rd_chain, script, TempDir};

const LOG_NAME: &str = "2026-01-14_16-14-52-886218";

/// What the fixture script says it wrote.
struct Fixture {
    log_dir: PathBuf,
    sota_loop: Option<i64>,
    /// (loop, decision) of each history entry.
    entries: Vec<(i64, bool)>,
    failed: Vec<i64>,
    hostile: Vec<i64>,
    loops: i64,
}

impl Fixture {
    fn accepted(&self) -> usize {
        self.entries.iter().filter(|e| e.1).count()
    }

    /// Entries that are not accepted and not failed: rejected loops with results.
    fn rejected(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| !e.1 && !self.failed.contains(&e.0))
            .count()
    }
}

/// A run dir under `<root>/log/<name>` with its workspaces under `<root>/git_ignore_folder`.
fn fixture(root: &Path, name: &str, loops: i64, extra: &[&str]) -> Fixture {
    let log_dir = root.join("log").join(name);
    let mut args: Vec<std::ffi::OsString> = vec![
        script("report_fixture.py").into(),
        "--log-dir".into(),
        log_dir.clone().into(),
        "--workspace-root".into(),
        root.join("git_ignore_folder/RD-Agent_workspace").into(),
        "--loops".into(),
        loops.to_string().into(),
    ];
    args.extend(extra.iter().map(Into::into));
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let out = python(&refs);
    let j = parse(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    let ints = |key: &str| -> Vec<i64> { j.get(key).arr().iter().map(J::int).collect() };
    Fixture {
        log_dir,
        sota_loop: j.opt("sota_loop").filter(|v| !v.is_null()).map(J::int),
        entries: j
            .get("experiments")
            .arr()
            .iter()
            .map(|e| (e.get("loop").int(), e.get("decision").bool()))
            .collect(),
        failed: ints("failed"),
        hostile: ints("hostile"),
        loops,
    }
}

fn report(cwd: &Path, args: &[&std::ffi::OsStr]) -> Command {
    let mut cmd = rd_chain(cwd);
    cmd.arg("report").args(args);
    cmd
}

/// Run `report`, expect exit 0 and one line on stdout: the page's path; return the path and the page.
fn page_of(mut cmd: Command) -> (PathBuf, String, String) {
    let (out, err) = expect_code(&mut cmd, 0);
    assert_eq!(out.lines().count(), 1, "{out}");
    let path = PathBuf::from(out.trim_end());
    let page = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, page, err)
}

/// What every page must be: well-formed, self-contained, no markup from a snapshot.
fn check_page(page: &str) {
    let elements = well_formed(page).unwrap_or_else(|e| panic!("{e}"));
    assert!(elements.iter().any(|e| e == "svg"));
    let lower = page.to_lowercase();
    for forbidden in ["http://", "https://", "<script", " src=", " href=", "url("] {
        assert!(!lower.contains(forbidden), "{forbidden} in the page");
    }
}

/// The factor phase of `page` (section 0) against the fixture: 5 charts, each with a mark per loop in the
/// decision's class, a metric line with a point per loop with metrics broken at every failed loop, and the
/// SOTA ring on the SOTA loop's mark.
fn check_factor_phase(page: &str, f: &Fixture) {
    let section = phase_section_of(page, 0);
    let svgs = charts(section);
    assert_eq!(
        svgs.len(),
        5,
        "IC, ICIR, Rank IC, annualized return, max drawdown"
    );
    let with_metrics = f.accepted() + f.rejected();
    assert_eq!(
        with_metrics + f.failed.len(),
        f.loops as usize,
        "every loop is accepted, rejected or failed"
    );
    let sota = f.sota_loop.expect("the fixture has a SOTA");
    for svg in svgs {
        let marks = marks(svg);
        assert_eq!(marks.len(), f.loops as usize, "a mark per loop");
        let of = |class: &str| marks.iter().filter(|m| m.0 == class).count();
        assert_eq!(of("mark accepted"), f.accepted());
        assert_eq!(of("mark rejected"), f.rejected());
        assert_eq!(
            of("mark failed missing"),
            f.failed.len(),
            "failed loops sit under the axis"
        );
        for failed in &f.failed {
            let m = marks
                .iter()
                .find(|m| m.1.starts_with(&format!("loop {failed} · ")))
                .unwrap_or_else(|| panic!("no mark for failed loop {failed}"));
            assert_eq!(m.0, "mark failed missing");
            assert!(m.1.contains("no result"), "{}", m.1);
        }
        let metric = &svg[svg.find("class=\"line metric\" d=\"").unwrap()..];
        let d = &metric[..metric.find("\"/>").unwrap()];
        assert_eq!(
            d.matches(['M', 'L']).count(),
            with_metrics,
            "a point per loop with metrics"
        );
        // The line restarts after each run of failed loops (none at the very start or end here).
        let mut sorted = f.failed.clone();
        sorted.sort();
        sorted.dedup_by(|b, a| *b == *a + 1);
        assert_eq!(d.matches('M').count(), 1 + sorted.len(), "gaps, not zeros");
        assert_eq!(svg.matches("<g class=\"sota\">").count(), 1);
        let ring = &svg[svg.find("<g class=\"sota\">").unwrap()..];
        assert!(
            ring.starts_with(&format!(
                "<g class=\"sota\"><title>SOTA: loop {sota} · accepted · "
            )),
            "{}",
            &ring[..200.min(ring.len())]
        );
        let mark = marks
            .iter()
            .find(|m| m.1.starts_with(&format!("loop {sota} · ")))
            .unwrap();
        assert_eq!(number_attr(ring, "cx"), number_attr(mark.2, "cx"));
        assert_eq!(number_attr(ring, "cy"), number_attr(mark.2, "cy"));
    }
    assert!(section.contains(&format!("SOTA is loop {sota}")));
    assert_eq!(
        section
            .matches(&format!(
                "<tr class=\"accepted sota\"><td class=\"num\">{sota}</td>"
            ))
            .count(),
        1
    );
}

/// Every hostile hypothesis shows as text in the table row and in the tooltips of its loop.
fn check_hostile(page: &str, f: &Fixture) {
    assert!(!f.hostile.is_empty());
    for h in &f.hostile {
        let shown =
            format!("&lt;script&gt;alert(\"loop {h}\")&lt;/script&gt; &amp; a factor 'x&lt;y'");
        assert!(
            page.matches(&shown).count() > 5,
            "loop {h}: the table row and the five charts' tooltips show it as text"
        );
    }
}

#[test]
fn a_100_loop_run_with_failed_loops_and_markup_in_hypotheses() {
    let tmp = TempDir::new("report-100");
    let f = fixture(
        tmp.path(),
        LOG_NAME,
        100,
        &[
            "--fail-coding",
            "7,20,21,64",
            "--fail-running",
            "33,71,72",
            "--hostile",
            "3,50,98",
            "--parquet",
            "stub",
        ],
    );
    assert_eq!(
        f.entries.len(),
        100 - 4,
        "coding failures leave no history entry"
    );
    let (path, page, err) = page_of(report(tmp.path(), &[f.log_dir.as_os_str()]));
    assert_eq!(
        path,
        tmp.join("report.html"),
        "a log's page goes to the current directory"
    );
    check_page(&page);
    check_factor_phase(&page, &f);
    check_hostile(&page, &f);
    assert!(page.contains(&format!("<h1>Run {LOG_NAME}</h1>")));
    assert!(page.contains("<p class=\"sub\">100 loops: "));
    // The stub parquet has no readable footer: the page says nothing wrong, the warning says why.
    assert!(!page.contains("<section class=\"factors\">"));
    assert!(err.contains("shows no SOTA factor table"), "{err}");
    // The factor answer is RD-Agent's SOTA with its metrics.
    let card = &page[page.find("<article class=\"card\">").unwrap()..];
    let card = &card[..card.find("</article>").unwrap()];
    assert!(
        card.contains(&format!("<dt>Loop</dt><dd>{}</dd>", f.sota_loop.unwrap())),
        "{card}"
    );
}

#[test]
fn a_run_with_failed_loops_shows_them_as_gaps_and_its_sota_factor_set() {
    let tmp = TempDir::new("report-failed");
    let f = fixture(
        tmp.path(),
        LOG_NAME,
        12,
        &[
            "--fail-coding",
            "2,7",
            "--fail-running",
            "4,9",
            "--hostile",
            "3,8",
        ],
    );
    assert_eq!(f.failed, [2, 4, 7, 9]);
    let out = tmp.join("out/page.html");
    std::fs::create_dir_all(tmp.join("out")).unwrap();
    let (path, page, err) = page_of(report(
        tmp.path(),
        &[
            f.log_dir.as_os_str(),
            "-o".as_ref(),
            "out/page.html".as_ref(),
        ],
    ));
    assert_eq!(path, out);
    check_page(&page);
    check_factor_phase(&page, &f);
    check_hostile(&page, &f);
    // The feedback's reason is in the hypotheses table.
    assert!(page.contains("The new factors improve the annualized return with cost."));
    // With pandas the fixture's parquet is real and the SOTA factor set is listed, each factor with the loop
    // that introduced it; without pandas the stub parquet has no footer and a warning says so.
    let pandas = page.contains("<section class=\"factors\">");
    if std::env::var_os("RD_CHAIN_TEST_REQUIRE_PANDAS").is_some() {
        assert!(pandas, "pandas is required in this test run: {err}");
    }
    if pandas {
        let table = &page[page.find("<section class=\"factors\">").unwrap()..];
        let table = &table[..table.find("</section>").unwrap()];
        // Two factors per accepted factor experiment up to the SOTA (the SOTA's parquet holds them all).
        let sota = f.sota_loop.unwrap();
        let accepted_up_to_sota: Vec<i64> = f
            .entries
            .iter()
            .filter(|e| e.1 && e.0 <= sota)
            .map(|e| e.0)
            .collect();
        assert_eq!(
            table.matches("<tr><td><code>").count(),
            2 * accepted_up_to_sota.len(),
            "{table}"
        );
        for l in &accepted_up_to_sota {
            assert!(
                table.contains(&format!("_L{l}</code></td><td class=\"num\">{l}</td>")),
                "loop {l}"
            );
        }
    } else {
        assert!(err.contains("shows no SOTA factor table"), "{err}");
    }
}

#[test]
fn two_runs_make_a_comparison_page() {
    let tmp = TempDir::new("report-compare");
    let a = fixture(
        tmp.path(),
        "2026-01-14_16-14-52-886218",
        30,
        &["--fail-running", "5", "--parquet", "stub"],
    );
    let b = fixture(
        tmp.path(),
        "2026-01-21_09-30-00-000000",
        18,
        &["--hostile", "4", "--parquet", "stub"],
    );
    let (path, page, _) = page_of(report(
        tmp.path(),
        &[
            a.log_dir.as_os_str(),
            b.log_dir.as_os_str(),
            "--output".as_ref(),
            "cmp.html".as_ref(),
        ],
    ));
    assert_eq!(path, tmp.join("cmp.html"));
    check_page(&page);
    assert!(page.contains("<h1>2 runs compared</h1>"));
    let svgs = charts(&page);
    assert_eq!(svgs.len(), 5, "one chart per metric");
    for svg in &svgs {
        for i in 0..2 {
            assert_eq!(
                svg.matches(&format!("<path class=\"line pal p{i} step\" d=\""))
                    .count(),
                1
            );
        }
        assert!(marks(svg).is_empty());
        assert_eq!(
            svg.matches("<circle class=\"end pal p").count(),
            2,
            "each run's final SOTA"
        );
        // Each run's line is named by the run in the legend.
        assert!(svg.contains(">Run 2026-01-14_16-14-52-886218</text>"));
        assert!(svg.contains(">Run 2026-01-21_09-30-00-000000</text>"));
    }
    // Answers side by side: each run's SOTA loop.
    let header = &page[page.find("<thead><tr><th></th>").unwrap()..];
    assert_eq!(
        header[..header.find("</thead>").unwrap()]
            .matches("<th class=\"num run")
            .count(),
        2
    );
    for f in [&a, &b] {
        assert!(page.contains(&format!("<td class=\"num\">{}</td>", f.sota_loop.unwrap())));
    }
}

/// The chain with the simulated rdagent in `dir`: 4 factor loops, 2 model loops.
fn chain(dir: &Path, extra: &[&str]) -> (String, String) {
    let mut cmd = rd_chain(dir);
    cmd.arg("--rdagent")
        .arg(script("fake-rdagent"))
        .args(["--factor-loops", "4", "--model-loops", "2"])
        .args(extra);
    expect_code(&mut cmd, 0)
}

fn run_ids(log_root: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(log_root.join("rd-chain"))
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".json").map(str::to_string)
        })
        .collect();
    ids.sort();
    ids
}

#[test]
fn the_chain_writes_its_report_and_report_redraws_it_by_run_id() {
    let tmp = TempDir::new("report-chain");
    let (_, err) = chain(tmp.path(), &[]);
    let ids = run_ids(&tmp.join("log"));
    assert_eq!(ids.len(), 1);
    let id = &ids[0];
    let own = tmp.join("log/rd-chain").join(id).join("report.html");
    assert!(
        err.contains(&format!("  report {}\n", own.display())),
        "the summary names the page: {err}"
    );
    let at_end = std::fs::read_to_string(&own).unwrap();
    check_page(&at_end);
    // By run id, by record path and without an argument (the newest run): the same place, the same page
    // apart from the time it was written.
    let record = tmp.join("log/rd-chain").join(format!("{id}.json"));
    for args in [vec![id.as_str()], vec![record.to_str().unwrap()], vec![]] {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        let (path, page, _) = page_of(report(tmp.path(), &args));
        assert_eq!(path, own, "{args:?}");
        let strip = |p: &str| p.split("<p class=\"sub\">Written ").next().unwrap().len();
        assert_eq!(strip(&page), strip(&at_end));
    }
    let page = at_end;
    // What ran: both commands, the settings with their origins, durations and attempts.
    assert!(page.contains(&format!("<h1>Chain {id}</h1>")));
    assert!(
        page.contains("fin_factor --loop-n 4</code>")
            && page.contains("fin_model --loop-n 2</code>")
    );
    assert!(page.contains("<tr><td><code>--factor-loops</code></td><td><code>4</code></td><td><span class=\"origin\">flag factor-loops</span></td></tr>"));
    assert!(page.contains("<tr><td><code>--report</code></td><td><code>true</code></td><td><span class=\"origin\">default</span></td></tr>"));
    for label in ["Factor phase", "Model phase", "Whole chain"] {
        assert!(
            page.contains(&format!("<tr><th>{label}</th><td class=\"num\">")),
            "{label}"
        );
    }
    assert_eq!(
        page.matches("<td class=\"num\">1</td><td>exit 0</td>")
            .count(),
        2,
        "one attempt per phase"
    );
    // The hook: whether the model phase trained on the factors (once per model loop), and the model attempt's
    // report file.
    assert!(
        page.contains(
            "<h3>Hook</h3><p>rd-chain's hook handed the SOTA factors to RD-Agent's model runner 2 times (the last: 20 rows x 4 columns), armed in 1 rdagent process.</p>"
        ),
        "{page}"
    );
    assert!(page.contains(&format!(
        "<td><code>log/rd-chain/{id}.hook/report.tsv</code></td>"
    )));
    // Both phases with their loops, both answers; the model's gain over its baseline.
    let factor = phase_section_of(&page, 0);
    assert!(factor.contains("<h2>Factor loop</h2>"));
    assert_eq!(marks(charts(factor)[0]).len(), 4);
    let model = phase_section_of(&page, 1);
    assert!(model.contains("<h2>Model loop</h2>"));
    assert_eq!(marks(charts(model)[0]).len(), 2);
    assert!(page.contains("<h2>SOTA factor set"));
    assert!(page.contains("<h2>SOTA model"));
    assert!(page.contains("<th>Baseline</th><th>Gain</th>"));
    // Logs and workspaces inside the project dir are shown relative to it.
    assert_eq!(page.matches("<dt>Log</dt><dd><code>log/20").count(), 2);
    assert_eq!(
        page.matches("<dt>Workspace</dt><dd><code>git_ignore_folder/RD-Agent_workspace/")
            .count(),
        2
    );
    assert!(!page.contains(&tmp.path().display().to_string()));
}

#[test]
fn without_an_argument_the_run_that_started_last_is_drawn_whatever_its_name() {
    let tmp = TempDir::new("report-newest");
    chain(tmp.path(), &["--no-report"]);
    // Named so that it sorts before the first run's time-stamped id, started after it.
    chain(tmp.path(), &["--no-report", "--run-id", "a-later-run"]);
    let (path, page, _) = page_of(report(tmp.path(), &[]));
    assert_eq!(path, tmp.join("log/rd-chain/a-later-run/report.html"));
    assert!(page.contains("<h1>Chain a-later-run</h1>"));
}

#[test]
fn no_report_skips_the_page() {
    let tmp = TempDir::new("report-none");
    let (_, err) = chain(tmp.path(), &["--no-report"]);
    assert!(!err.contains("  report "), "{err}");
    let id = &run_ids(&tmp.join("log"))[0];
    assert!(!tmp.join("log/rd-chain").join(id).exists(), "no report dir");
}

#[test]
fn unknown_runs_and_unreadable_logs_are_named() {
    let tmp = TempDir::new("report-errors");
    let (_, err) = expect_code(
        &mut report(tmp.path(), &["2020-01-01_00-00-00-000000".as_ref()]),
        2,
    );
    assert!(
        err.contains("no run or log '2020-01-01_00-00-00-000000'"),
        "{err}"
    );
    assert!(
        err.contains(&tmp.join("log/rd-chain").display().to_string()),
        "{err}"
    );
    assert!(err.contains("run id") && err.contains("run dir"), "{err}");
    let (_, err) = expect_code(&mut report(tmp.path(), &["log/missing".as_ref()]), 2);
    assert!(
        err.contains(&tmp.join("log/missing").display().to_string()),
        "{err}"
    );
    let (_, err) = expect_code(&mut report(tmp.path(), &[]), 2);
    assert!(err.contains("no chain run under"), "{err}");
    std::fs::create_dir_all(tmp.join("log/empty")).unwrap();
    let (_, err) = expect_code(&mut report(tmp.path(), &["log/empty".as_ref()]), 3);
    assert!(err.contains("log/empty"), "{err}");
    let f = fixture(tmp.path(), LOG_NAME, 3, &["--parquet", "stub"]);
    let (_, err) = expect_code(
        &mut report(
            tmp.path(),
            &[
                f.log_dir.as_os_str(),
                "-o".as_ref(),
                "no/such/dir/r.html".as_ref(),
            ],
        ),
        2,
    );
    assert!(
        err.contains("does not exist") && err.contains("no/such/dir"),
        "{err}"
    );
    assert!(
        !tmp.join("report.html").exists(),
        "nothing written on an error"
    );
}
