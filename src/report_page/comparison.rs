//! The comparison page's body: the runs' answers side by side, then per phase and metric a chart with each
//! run's SOTA so far.

use std::fmt::Write as _;

use super::{gain_cell, num_cell, sota_so_far, ComparisonPage, Decision, Metric, RunPage};
use crate::chart::{Chart, Format, Line, Stroke};
use crate::html;

/// Phase names in order of first appearance across runs.
fn phase_names(runs: &[RunPage]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for p in runs.iter().flat_map(|r| &r.phases) {
        if !names.contains(&p.name.as_str()) {
            names.push(&p.name);
        }
    }
    names
}

/// The chart of one metric of one phase: a SOTA-so-far line per run.
pub fn comparison_chart(runs: &[RunPage], phase: &str, m: Metric) -> Chart {
    Chart {
        title: format!("{phase}: {}, SOTA so far, per run", m.label()),
        x_title: "loop".into(),
        y_title: m.label().into(),
        x_format: Format::Integer,
        y_format: m.format(),
        lines: runs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let p = r.phases.iter().find(|p| p.name == phase)?;
                Some(Line {
                    name: r.title.clone(),
                    stroke: Stroke::Palette(i),
                    step: true,
                    points: sota_so_far(&p.loops, m),
                })
            })
            .collect(),
        marks: vec![],
        highlight: None,
    }
}

pub(super) fn body(c: &ComparisonPage) -> String {
    let mut s = String::new();
    answers_side_by_side(&mut s, &c.runs);
    for (i, name) in phase_names(&c.runs).into_iter().enumerate() {
        let _ = write!(
            s,
            "<section class=\"phase\" id=\"phase-{i}\"><h2>{}: SOTA so far</h2><div class=\"charts\">",
            html::text(name)
        );
        for m in Metric::ALL {
            let chart = comparison_chart(&c.runs, name, m);
            if chart
                .lines
                .iter()
                .any(|l| l.points.iter().any(|p| p.1.is_some()))
            {
                let _ = write!(
                    s,
                    "<figure><figcaption>{}</figcaption>{}</figure>",
                    m.label(),
                    chart.svg()
                );
            }
        }
        s.push_str("</div></section>\n");
    }
    s
}

fn answers_side_by_side(s: &mut String, runs: &[RunPage]) {
    s.push_str("<section class=\"side\"><h2>Answers side by side</h2><div class=\"scroll\"><table><thead><tr><th></th>");
    for (i, r) in runs.iter().enumerate() {
        let _ = write!(
            s,
            "<th class=\"num run p{}\">{}</th>",
            i % 8,
            html::text(&r.title)
        );
    }
    s.push_str("</tr></thead><tbody>");
    let mut titles: Vec<&str> = Vec::new();
    for a in runs.iter().flat_map(|r| &r.answers) {
        if !titles.contains(&a.title.as_str()) {
            titles.push(&a.title);
        }
    }
    let cols = runs.len() + 1;
    for title in titles {
        let _ = write!(
            s,
            "<tr class=\"group\"><th colspan=\"{cols}\">{}</th></tr>",
            html::text(title)
        );
        let answer = |r: &'_ RunPage| r.answers.iter().find(|a| a.title == title).cloned();
        s.push_str("<tr><th>Loop</th>");
        for r in runs {
            let id = answer(r).and_then(|a| a.loop_id);
            let _ = write!(
                s,
                "<td class=\"num\">{}</td>",
                id.map_or("—".into(), |id| id.to_string())
            );
        }
        s.push_str("</tr>");
        for m in Metric::ALL {
            let _ = write!(s, "<tr><th>{}</th>", m.label());
            for r in runs {
                let v = answer(r).and_then(|a| m.of(&a.metrics));
                s.push_str(&num_cell(m, v));
            }
            s.push_str("</tr>");
        }
        if runs
            .iter()
            .any(|r| answer(r).is_some_and(|a| a.baseline.is_some()))
        {
            for m in Metric::ALL {
                let _ = write!(s, "<tr><th>{} gain over baseline</th>", m.short());
                for r in runs {
                    let a = answer(r);
                    let v = a.as_ref().and_then(|a| m.of(&a.metrics));
                    let b = a
                        .as_ref()
                        .and_then(|a| a.baseline.as_ref())
                        .and_then(|b| m.of(b));
                    s.push_str(&gain_cell(m, v, b));
                }
                s.push_str("</tr>");
            }
        }
    }
    let _ = write!(
        s,
        "<tr class=\"group\"><th colspan=\"{cols}\">Loops</th></tr>"
    );
    for name in phase_names(runs) {
        let _ = write!(s, "<tr><th>{}</th>", html::text(name));
        for r in runs {
            match r.phases.iter().find(|p| p.name == name) {
                Some(p) => {
                    let acc = p
                        .loops
                        .iter()
                        .filter(|l| l.decision == Decision::Accepted)
                        .count();
                    let fail = p
                        .loops
                        .iter()
                        .filter(|l| l.decision == Decision::Failed)
                        .count();
                    let _ = write!(
                        s,
                        "<td class=\"num\">{} <span class=\"sub\">({acc} accepted, {fail} failed)</span></td>",
                        p.loops.len()
                    );
                }
                None => s.push_str("<td class=\"num na\">—</td>"),
            }
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></div></section>\n");
}
