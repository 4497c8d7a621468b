//! The run page's body: the answers, what ran, per phase its charts and hypotheses, the SOTA factor set.

use std::fmt::Write as _;

use super::{
    cut, duration, gain_cell, long_text, num_cell, sota_so_far, Answer, Decision, LoopRow, Metric,
    Phase, RunPage, SotaFactor, TOOLTIP_TEXT,
};
use crate::chart::{Chart, Format, Highlight, Line, Mark, Stroke};
use crate::hook::HookReport;
use crate::html;

pub(super) fn body(run: &RunPage) -> String {
    let mut s = String::new();
    if !run.answers.is_empty() {
        s.push_str("<section class=\"answers\">");
        for a in &run.answers {
            answer_card(&mut s, a);
        }
        s.push_str("</section>\n");
    }
    what_ran(&mut s, run);
    for (i, phase) in run.phases.iter().enumerate() {
        phase_section(&mut s, phase, i);
    }
    if !run.sota_factors.is_empty() {
        sota_factors(&mut s, &run.sota_factors);
    }
    s
}

fn answer_card(s: &mut String, a: &Answer) {
    let _ = write!(
        s,
        "<article class=\"card\"><h2>{}</h2>",
        html::text(&a.title)
    );
    s.push_str("<dl class=\"facts\">");
    if let Some(id) = a.loop_id {
        let _ = write!(s, "<dt>Loop</dt><dd>{id}</dd>");
    }
    let _ = write!(
        s,
        "<dt>Log</dt><dd><code>{}</code></dd><dt>Workspace</dt><dd><code>{}</code></dd></dl>",
        html::text(&a.log),
        html::text(&a.workspace)
    );
    s.push_str("<table class=\"metrics\"><thead><tr><th>Metric</th><th>SOTA</th>");
    if a.baseline.is_some() {
        s.push_str("<th>Baseline</th><th>Gain</th>");
    }
    s.push_str("</tr></thead><tbody>");
    for m in Metric::ALL {
        let v = m.of(&a.metrics);
        let _ = write!(s, "<tr><th>{}</th>{}", m.label(), num_cell(m, v));
        if let Some(base) = &a.baseline {
            let b = m.of(base);
            let _ = write!(s, "{}{}", num_cell(m, b), gain_cell(m, v, b));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></article>");
}

fn what_ran(s: &mut String, run: &RunPage) {
    if run.commands.is_empty()
        && run.settings.is_empty()
        && run.timings.is_empty()
        && run.attempts.is_empty()
        && run.hook.is_none()
    {
        return;
    }
    s.push_str("<section class=\"ran\"><h2>What ran</h2>");
    if !run.commands.is_empty() {
        s.push_str("<h3>Commands</h3><pre class=\"commands\">");
        for c in &run.commands {
            let _ = writeln!(s, "<code>{}</code>", html::text(c));
        }
        s.push_str("</pre>");
    }
    s.push_str("<div class=\"cols\">");
    if !run.settings.is_empty() {
        s.push_str("<div><h3>Settings</h3><table><thead><tr><th>Setting</th><th>Value</th><th>From</th></tr></thead><tbody>");
        for st in &run.settings {
            let _ = write!(
                s,
                "<tr><td><code>{}</code></td><td><code>{}</code></td><td><span class=\"origin\">{}</span></td></tr>",
                html::text(&st.name),
                html::text(&st.value),
                html::text(&st.origin)
            );
        }
        s.push_str("</tbody></table></div>");
    }
    if !run.timings.is_empty() || !run.attempts.is_empty() {
        s.push_str("<div>");
        if !run.timings.is_empty() {
            s.push_str("<h3>Durations</h3><table><tbody>");
            for t in &run.timings {
                let _ = write!(
                    s,
                    "<tr><th>{}</th><td class=\"num\">{}</td></tr>",
                    html::text(&t.label),
                    duration(t.seconds)
                );
            }
            s.push_str("</tbody></table>");
        }
        if !run.attempts.is_empty() {
            // The hook's report file of each attempt, when any attempt has one.
            let reports = run.attempts.iter().any(|a| a.hook_report_file.is_some());
            s.push_str("<h3>Attempts</h3><table><thead><tr><th>Phase</th><th>#</th><th>Outcome</th><th>Duration</th>");
            if reports {
                s.push_str("<th>Hook report</th>");
            }
            s.push_str("</tr></thead><tbody>");
            for a in &run.attempts {
                let _ = write!(
                    s,
                    "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td>",
                    html::text(&a.phase),
                    a.number,
                    html::text(&a.outcome),
                    duration(a.seconds)
                );
                if reports {
                    match &a.hook_report_file {
                        Some(f) => {
                            let _ = write!(s, "<td><code>{}</code></td>", html::text(f));
                        }
                        None => s.push_str("<td></td>"),
                    }
                }
                s.push_str("</tr>");
            }
            s.push_str("</tbody></table>");
        }
        s.push_str("</div>");
    }
    s.push_str("</div>");
    if let Some(h) = &run.hook {
        hook_summary(s, h);
    }
    s.push_str("</section>\n");
}

/// Whether the model phase really trained on the SOTA factors, as the hook reported it.
fn hook_summary(s: &mut String, h: &HookReport) {
    s.push_str("<h3>Hook</h3>");
    let class = if h.factors_reached_training() {
        ""
    } else {
        " class=\"warn\""
    };
    let _ = write!(s, "<p{class}>{}.</p>", html::text(&h.outcome()));
    if h.base_features_dropped > 0 {
        let _ = write!(
            s,
            "<p>Base features left out of {} model experiment{} (USE_ALPHA_FACTORS=false).</p>",
            h.base_features_dropped,
            if h.base_features_dropped == 1 {
                ""
            } else {
                "s"
            }
        );
    }
    if let Some(problem) = &h.template_problem {
        let _ = write!(
            s,
            "<p class=\"warn\">The SOTA template cannot train without the base features: {}</p>",
            html::text(problem)
        );
    }
}

fn loop_tooltip(l: &LoopRow, m: Metric) -> String {
    let value = m
        .of(&l.metrics)
        .map_or("no result".into(), |v| m.format().value(v));
    let mut t = format!(
        "loop {} · {} · {} {}",
        l.id,
        l.decision.label(),
        m.label(),
        value
    );
    if !l.hypothesis.trim().is_empty() {
        t.push('\n');
        t.push_str(&cut(&l.hypothesis, TOOLTIP_TEXT));
    }
    t
}

/// The chart of one metric over a phase's loops.
pub fn phase_chart(phase: &Phase, m: Metric) -> Chart {
    let highlight = phase.sota_loop.and_then(|id| {
        let l = phase.loops.iter().find(|l| l.id == id)?;
        Some(Highlight {
            x: f64::from(id),
            y: m.of(&l.metrics)?,
            label: "SOTA".into(),
            title: format!("SOTA: {}", loop_tooltip(l, m)),
        })
    });
    Chart {
        title: format!("{}: {} per loop", phase.name, m.label()),
        x_title: "loop".into(),
        y_title: m.label().into(),
        x_format: Format::Integer,
        y_format: m.format(),
        lines: vec![
            Line {
                name: m.short().into(),
                stroke: Stroke::Metric,
                step: false,
                points: phase
                    .loops
                    .iter()
                    .map(|l| (f64::from(l.id), m.of(&l.metrics)))
                    .collect(),
            },
            Line {
                name: "SOTA so far".into(),
                stroke: Stroke::Best,
                step: true,
                points: sota_so_far(&phase.loops, m),
            },
        ],
        marks: phase
            .loops
            .iter()
            .map(|l| Mark {
                x: f64::from(l.id),
                y: m.of(&l.metrics),
                kind: l.decision.mark(),
                title: loop_tooltip(l, m),
            })
            .collect(),
        highlight,
    }
}

fn phase_section(s: &mut String, phase: &Phase, index: usize) {
    let count = |d| phase.loops.iter().filter(|l| l.decision == d).count();
    let _ = write!(
        s,
        "<section class=\"phase\" id=\"phase-{index}\"><h2>{}</h2><p class=\"sub\">{} loops: {} accepted, {} rejected, {} failed{}</p>",
        html::text(&phase.name),
        phase.loops.len(),
        count(Decision::Accepted),
        count(Decision::Rejected),
        count(Decision::Failed),
        phase.sota_loop.map_or(String::new(), |id| format!("; SOTA is loop {id}")),
    );
    let (with, without): (Vec<Metric>, Vec<Metric>) = Metric::ALL
        .iter()
        .partition(|m| phase.loops.iter().any(|l| m.of(&l.metrics).is_some()));
    s.push_str("<div class=\"charts\">");
    for m in with {
        let _ = write!(
            s,
            "<figure><figcaption>{}</figcaption>{}</figure>",
            m.label(),
            phase_chart(phase, m).svg()
        );
    }
    s.push_str("</div>");
    if !without.is_empty() {
        let names: Vec<&str> = without.iter().map(|m| m.label()).collect();
        let _ = write!(
            s,
            "<p class=\"note\">No loop reported {}.</p>",
            names.join(", ")
        );
    }
    hypotheses(s, phase);
    s.push_str("</section>\n");
}

fn hypotheses(s: &mut String, phase: &Phase) {
    s.push_str("<h3>Hypotheses</h3><div class=\"scroll\"><table class=\"loops\"><thead><tr><th>Loop</th><th>Decision</th><th class=\"text\">Hypothesis</th>");
    for m in Metric::ALL {
        let _ = write!(s, "<th class=\"num\">{}</th>", m.short());
    }
    s.push_str("<th class=\"text\">Reason</th></tr></thead><tbody>");
    for l in &phase.loops {
        let sota = phase.sota_loop == Some(l.id);
        let _ = write!(
            s,
            "<tr class=\"{d}{sc}\"><td class=\"num\">{id}</td><td><span class=\"badge {d}\">{d}</span>{sb}</td><td class=\"text\">{h}</td>",
            d = l.decision.label(),
            sc = if sota { " sota" } else { "" },
            id = l.id,
            sb = if sota { " <span class=\"badge sota\">SOTA</span>" } else { "" },
            h = long_text(&l.hypothesis),
        );
        for m in Metric::ALL {
            s.push_str(&num_cell(m, m.of(&l.metrics)));
        }
        let _ = write!(s, "<td class=\"text\">{}</td></tr>", long_text(&l.reason));
    }
    s.push_str("</tbody></table></div>");
}

fn sota_factors(s: &mut String, factors: &[SotaFactor]) {
    s.push_str("<section class=\"factors\"><h2>SOTA factor set</h2><div class=\"scroll\"><table><thead><tr><th>Factor</th><th>Loop</th><th class=\"text\">Formulation</th><th class=\"text\">Description</th></tr></thead><tbody>");
    for f in factors {
        let _ = write!(
            s,
            "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"text\"><code>{}</code></td><td class=\"text\">{}</td></tr>",
            html::text(&f.name),
            f.loop_id.map_or("—".into(), |id| id.to_string()),
            html::text(&f.formulation),
            long_text(&f.description)
        );
    }
    s.push_str("</tbody></table></div></section>\n");
}
