//! Golden-structure tests of the report page: well-formed, self-contained, escaped, and every chart shows
//! every loop, the right SOTA point and gaps for failed loops.

use super::*;
use crate::hook::HookReport;

use super::check::{charts, marks, number_attr, phase_section_of, well_formed};

#[test]
fn the_checker_rejects_what_it_must() {
    assert!(well_formed("<p>a</p>").is_ok());
    assert!(well_formed("<p>a<b>c</p></b>").is_err());
    assert!(well_formed("<p>a < b</p>").is_err());
    assert!(well_formed("<p>a > b</p>").is_err());
    assert!(well_formed("<p title=\"<x>\">a</p>").is_err());
    assert!(well_formed("<p>a &c</p>").is_err());
    assert!(well_formed("<p><br/></p>").is_err());
    assert!(well_formed("<svg><path d=\"M0 0\"/></svg>").is_ok());
    assert!(well_formed("<div>").is_err());
}

fn page_of(run: &RunPage) -> String {
    render_page(&PageData::Run(run.clone()))
}

#[test]
fn the_hook_says_whether_the_model_phase_trained_on_the_factors_and_each_attempts_report() {
    let mut run = sample::run_page();
    let page = page_of(&run);
    well_formed(&page).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        page.contains("<th>Hook report</th>"),
        "a column, as attempts have reports"
    );
    assert!(page
        .contains("<td><code>log/rd-chain/20260114-161452.hook.attempt-1/report.tsv</code></td>"));
    assert!(page.contains("<td><code>log/rd-chain/20260114-161452.hook/report.tsv</code></td>"));
    assert!(
        page.contains("<p>rd-chain's hook handed the SOTA factors to RD-Agent's model runner 6 times (the last: 245000 rows x 21 columns), armed in 6 rdagent processes.</p>"),
        "{page}"
    );
    assert!(!page.contains("class=\"warn\""));
    // Armed but never used: said as a warning; base features and a template problem are said too.
    run.hook = Some(Box::new(HookReport {
        armed: 1,
        used: 0,
        shape: None,
        base_features_dropped: 2,
        template_problem: Some("no $close".into()),
    }));
    let page = page_of(&run);
    assert!(page.contains(
        "<p class=\"warn\">rd-chain's hook never handed the SOTA factors to RD-Agent's model runner: it was armed in 1 rdagent process,"
    ), "{page}");
    assert!(page.contains("Base features left out of 2 model experiments"));
    assert!(page.contains("cannot train without the base features: no $close"));
    // Never armed at all: said so.
    run.hook = Some(Box::new(HookReport::default()));
    assert!(page_of(&run).contains("model runner: it was never armed"));
    // No hook report (hook off, or a record from before reports): no section, no column.
    run.hook = None;
    for a in &mut run.attempts {
        a.hook_report_file = None;
    }
    let page = page_of(&run);
    assert!(!page.contains("<h3>Hook</h3>") && !page.contains("Hook report"));
}

#[test]
fn run_page_is_well_formed_self_contained_and_escaped() {
    let run = sample::run_page();
    let page = page_of(&run);
    let elements = well_formed(&page).unwrap_or_else(|e| panic!("{e}"));
    assert!(elements.iter().filter(|e| *e == "svg").count() == 10);
    let lower = page.to_lowercase();
    for forbidden in [
        "http://", "https://", "<script", "url(", "@import", " src=", " href=", "<link",
    ] {
        assert!(!lower.contains(forbidden), "{forbidden} in the page");
    }
    assert!(page.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    assert!(page.contains("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"));
    assert!(page.contains("@media (prefers-color-scheme: dark)") && page.contains("@media print"));
    // The hostile hypothesis shows as text in the table and in tooltips.
    let shown = "&lt;script&gt;alert(\"hypothesis\")&lt;/script&gt; &amp; a factor named 'x&lt;y' with \"quotes\"";
    let hostile_loops = run
        .phases
        .iter()
        .flat_map(|p| &p.loops)
        .filter(|l| l.hypothesis.contains("<script>"))
        .count();
    assert!(hostile_loops > 5);
    assert!(
        page.matches(shown).count() >= hostile_loops,
        "table rows and tooltips show it"
    );
    assert!(
        page.contains("Intraday range scaled by 20-day turnover &lt;b&gt;(not bold)&lt;/b&gt;.")
    );
}

#[test]
fn every_string_of_the_model_is_escaped() {
    let x = "<i>X</i>&\"'";
    let mut run = sample::run("t", 5, 6, 3);
    run.title = x.into();
    run.generated = Some(x.into());
    run.commands = vec![x.into()];
    run.settings = vec![Setting {
        name: x.into(),
        value: x.into(),
        origin: x.into(),
    }];
    run.timings = vec![Timing {
        label: x.into(),
        seconds: None,
    }];
    run.attempts = vec![Attempt {
        phase: x.into(),
        number: 1,
        outcome: x.into(),
        seconds: None,
        hook_report_file: Some(x.into()),
    }];
    run.hook = Some(Box::new(HookReport {
        armed: 1,
        used: 0,
        shape: None,
        base_features_dropped: 0,
        template_problem: Some(x.into()),
    }));
    for a in &mut run.answers {
        (a.title, a.log, a.workspace) = (x.into(), x.into(), x.into());
    }
    for p in &mut run.phases {
        p.name = x.into();
        for l in &mut p.loops {
            (l.hypothesis, l.reason) = (x.into(), x.into());
        }
    }
    for f in &mut run.sota_factors {
        (f.name, f.formulation, f.description) = (x.into(), x.into(), x.into());
    }
    let page = page_of(&run);
    well_formed(&page).unwrap_or_else(|e| panic!("{e}"));
    assert!(!page.contains("<i>"));
    let strings = 1 + 1 + 1 + 1 + 3 + 1 + 4 + 2 * 3 + run.sota_factors.len() * 3;
    assert!(
        page.matches("&lt;i&gt;X&lt;/i&gt;").count() > strings,
        "{}",
        page.matches("&lt;i&gt;X").count()
    );
    let comparison = render_page(&PageData::Comparison(ComparisonPage {
        title: x.into(),
        generated: None,
        runs: vec![run.clone(), run],
    }));
    well_formed(&comparison).unwrap_or_else(|e| panic!("{e}"));
    assert!(!comparison.contains("<i>"));
}

#[test]
fn every_chart_has_a_mark_per_loop_and_failed_loops_are_gaps() {
    let run = sample::run_page();
    let page = page_of(&run);
    assert_eq!(run.phases[0].loops.len(), 100);
    for (n, phase) in run.phases.iter().enumerate() {
        let section = phase_section_of(&page, n);
        let svgs = charts(section);
        assert_eq!(svgs.len(), 5, "{}", phase.name);
        let count = |d| phase.loops.iter().filter(|l| l.decision == d).count();
        let failed = count(Decision::Failed);
        assert!(failed >= 1, "the sample has failed loops");
        // Runs of consecutive loops with a value: each is one subpath of the metric line.
        let runs = phase
            .loops
            .split(|l| l.decision == Decision::Failed)
            .filter(|r| !r.is_empty())
            .count();
        for svg in svgs {
            let marks = marks(svg);
            assert_eq!(marks.len(), phase.loops.len());
            let of = |class: &str| marks.iter().filter(|m| m.0 == class).count();
            assert_eq!(of("mark accepted"), count(Decision::Accepted));
            assert_eq!(of("mark rejected"), count(Decision::Rejected));
            assert_eq!(
                of("mark failed missing"),
                failed,
                "failed loops sit in the no-result strip"
            );
            let axis = &svg[svg.find("<line class=\"domain\"").unwrap()..];
            let axis_y = number_attr(axis, "y1");
            for m in marks.iter().filter(|m| m.0 == "mark failed missing") {
                let d = &m.2[m.2.find("d=\"M").unwrap() + 4..];
                let y: f64 = d.split(['L', ' ']).nth(1).unwrap().parse().unwrap();
                assert!(
                    y > axis_y,
                    "a failed loop is drawn below the axis, not at zero"
                );
            }
            let metric = &svg[svg.find("class=\"line metric\" d=\"").unwrap()..];
            let d = &metric[..metric.find("\"/>").unwrap()];
            assert_eq!(
                d.matches('M').count(),
                runs,
                "one subpath per run of loops with results"
            );
            // Tooltips carry the loop, the decision and the hypothesis.
            assert!(marks[0].1.starts_with("loop 0 · "));
        }
    }
}

#[test]
fn the_sota_point_is_the_phases_sota_loop() {
    let run = sample::run_page();
    let page = page_of(&run);
    for (n, phase) in run.phases.iter().enumerate() {
        let sota = phase.sota_loop.expect("the sample has a SOTA");
        let last_accepted = phase
            .loops
            .iter()
            .rev()
            .find(|l| l.decision == Decision::Accepted)
            .unwrap();
        assert_eq!(sota, last_accepted.id);
        assert!(
            sota > 0 && sota + 1 < phase.loops.len() as u32,
            "not trivially the first or last loop"
        );
        let section = phase_section_of(&page, n);
        assert!(section.contains(&format!("SOTA is loop {sota}")));
        for svg in charts(section) {
            assert_eq!(svg.matches("<g class=\"sota\">").count(), 1);
            let ring = &svg[svg.find("<g class=\"sota\">").unwrap()..];
            assert!(ring.starts_with(&format!(
                "<g class=\"sota\"><title>SOTA: loop {sota} · accepted · "
            )));
            let marks = marks(svg);
            let mark = marks
                .iter()
                .find(|m| m.1.starts_with(&format!("loop {sota} · ")))
                .unwrap();
            assert_eq!(mark.0, "mark accepted");
            assert_eq!(number_attr(ring, "cx"), number_attr(mark.2, "cx"));
            assert_eq!(number_attr(ring, "cy"), number_attr(mark.2, "cy"));
        }
        let row = format!("<tr class=\"accepted sota\"><td class=\"num\">{sota}</td>");
        assert_eq!(section.matches(&row).count(), 1);
    }
}

#[test]
fn the_running_best_steps_only_at_accepted_loops() {
    let run = sample::run_page();
    let phase = &run.phases[0];
    let best = sota_so_far(&phase.loops, Metric::Ic);
    let mut changes = 0;
    for (w, l) in best.windows(2).zip(&phase.loops[1..]) {
        if w[0].1 != w[1].1 {
            changes += 1;
            assert_eq!(l.decision, Decision::Accepted, "loop {}", l.id);
        }
    }
    let accepted = phase
        .loops
        .iter()
        .filter(|l| l.decision == Decision::Accepted)
        .count();
    let first = phase
        .loops
        .iter()
        .position(|l| l.decision == Decision::Accepted)
        .unwrap();
    assert_eq!(
        changes,
        accepted - usize::from(first == 0),
        "every acceptance moves the SOTA"
    );
    assert_eq!(
        best.last().unwrap().1,
        Metric::Ic.of(&phase.loops[phase.sota_loop.unwrap() as usize].metrics)
    );
    let page = page_of(&run);
    let svg = charts(phase_section_of(&page, 0))[0];
    let path = &svg[svg.find("class=\"line best step\" d=\"").unwrap()..];
    let path = &path[..path.find("\"/>").unwrap()];
    assert_eq!(
        path.matches('M').count(),
        1,
        "SOTA so far holds through failed loops"
    );
    assert_eq!(path.matches('V').count(), phase.loops.len() - 1 - first);
}

#[test]
fn long_texts_are_collapsed_and_short_ones_are_not() {
    let page = page_of(&sample::run_page());
    let long = "Volume-price divergence predicts returns";
    let short = "Momentum over 20 days, skipping the most recent day to avoid the reversal effect.";
    assert!(page.contains(&format!("<details><summary>{long}")));
    assert!(page.contains(&format!("<td class=\"text\">{short}</td>")));
    // A multi-line text is collapsed even when short enough, its summary is the first line.
    assert!(page.contains("<details><summary>Intraday range (high - low) / close as a volatility proxy: low-volatility stocks earn higher…</summary>"));
    assert_eq!(long_text("First line.\nSecond"), "<details><summary>First line. …</summary><div class=\"full\">First line.\nSecond</div></details>");
    assert!(page.contains("<div class=\"full\">Intraday range (high - low) / close as a volatility proxy: low-volatility stocks earn higher risk-adjusted returns.\nCombine"));
}

#[test]
fn answers_show_the_gain_over_the_baseline() {
    let run = sample::run_page();
    let page = page_of(&run);
    let model = &run.answers[1];
    let ic = model.metrics.ic.unwrap() - model.baseline.as_ref().unwrap().ic.unwrap();
    let cell = format!(
        "{}{}",
        if ic > 0.0 { "+" } else { "" },
        Format::Decimal.value(ic)
    );
    assert!(page.contains(&format!(">{cell}</td>")), "{cell}");
    assert_eq!(
        gain_cell(Metric::AnnualizedReturn, Some(0.1), Some(0.0812)),
        "<td class=\"num gain up\">+1.88 pp</td>"
    );
    assert_eq!(
        gain_cell(Metric::MaxDrawdown, Some(-0.15), Some(-0.1173)),
        "<td class=\"num gain down\">−3.27 pp</td>"
    );
    assert_eq!(
        gain_cell(Metric::Ic, None, Some(0.1)),
        "<td class=\"num na\">—</td>"
    );
    let factor_card = &page[page.find("<h2>SOTA factor set</h2>").unwrap()..];
    let factor_card = &factor_card[..factor_card.find("</article>").unwrap()];
    assert!(!factor_card.contains("Gain"), "no baseline, no gain column");
}

#[test]
fn cut_texts_end_at_a_word_and_keep_short_ones() {
    assert_eq!(cut("alpha beta gamma", 11), "alpha beta…");
    assert_eq!(cut("alpha beta gamma", 16), "alpha beta gamma");
    assert_eq!(cut("abcdefghijklmnop qr", 10), "abcdefghij…");
    assert_eq!(cut("ααααα βββββ", 7), "ααααα…");
}

#[test]
fn durations_read_naturally() {
    assert_eq!(duration(Some(0.042)), "0.0 s");
    assert_eq!(duration(Some(12.34)), "12.3 s");
    assert_eq!(duration(Some(185.0)), "3 min 05 s");
    assert_eq!(duration(Some(17_936.0)), "4 h 59 min");
    assert_eq!(duration(None), "—");
    assert_eq!(duration(Some(f64::NAN)), "—");
}

#[test]
fn empty_and_failed_only_runs_render() {
    let empty = page_of(&RunPage {
        title: "nothing yet".into(),
        ..RunPage::default()
    });
    well_formed(&empty).unwrap_or_else(|e| panic!("{e}"));
    assert!(charts(&empty).is_empty());
    let failed = RunPage {
        title: "all failed".into(),
        phases: vec![Phase {
            name: "Factor loop".into(),
            loops: (0..3)
                .map(|id| LoopRow {
                    id,
                    decision: Decision::Failed,
                    hypothesis: String::new(),
                    reason: String::new(),
                    metrics: Metrics {
                        ic: Some(f64::NAN),
                        ..Metrics::default()
                    },
                })
                .collect(),
            sota_loop: None,
        }],
        ..RunPage::default()
    };
    let page = page_of(&failed);
    well_formed(&page).unwrap_or_else(|e| panic!("{e}"));
    assert!(charts(&page).is_empty(), "no metric has a value: no chart");
    assert!(page.contains("No loop reported IC, ICIR, Rank IC, Annualized return, Max drawdown."));
    assert!(page.contains("3 loops: 0 accepted, 0 rejected, 3 failed"));
}

#[test]
fn comparison_page_draws_a_line_per_run_and_answers_side_by_side() {
    let c = sample::comparison_page();
    let page = render_page(&PageData::Comparison(c.clone()));
    well_formed(&page).unwrap_or_else(|e| panic!("{e}"));
    assert!(!page.to_lowercase().contains("http://") && !page.to_lowercase().contains("https://"));
    let svgs = charts(&page);
    assert_eq!(svgs.len(), 2 * 5);
    for svg in &svgs {
        for (i, run) in c.runs.iter().enumerate() {
            assert_eq!(
                svg.matches(&format!("<path class=\"line pal p{i} step\" d=\""))
                    .count(),
                1
            );
            let label = html::text(&run.title);
            assert!(svg.contains(&format!(">{label}</text>")), "{label}");
        }
        assert!(marks(svg).is_empty());
        assert_eq!(
            svg.matches("<circle class=\"end pal p").count(),
            3,
            "each run's final SOTA"
        );
    }
    // The shorter runs end further left.
    let ends: Vec<f64> = (0..3)
        .map(|i| {
            let p = &svgs[0][svgs[0]
                .find(&format!("class=\"line pal p{i} step\" d=\""))
                .unwrap()..];
            let d = &p[..p.find("\"/>").unwrap()];
            let last_h = d.rfind('H').unwrap();
            d[last_h + 1..last_h + d[last_h..].find('V').unwrap()]
                .parse()
                .unwrap()
        })
        .collect();
    assert!(ends[0] > ends[1] && ends[1] > ends[2], "{ends:?}");
    let header = &page[page.find("<thead><tr><th></th>").unwrap()..];
    let header = &header[..header.find("</thead>").unwrap()];
    assert_eq!(header.matches("<th class=\"num run").count(), 3);
    assert!(header.contains("2026-11-15 &lt;baseline&gt; (30 loops)"));
    for run in &c.runs {
        let sota = run.answers[0].loop_id.unwrap();
        assert!(page.contains(&format!("<td class=\"num\">{sota}</td>")));
    }
    assert!(page.contains("<tr><th>Factor loop</th><td class=\"num\">100 <span class=\"sub\">("));
}
