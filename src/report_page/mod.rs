//! The report page: one self-contained HTML file (inline CSS and SVG) for a chain run ([`RunPage`]) or for
//! several runs side by side ([`ComparisonPage`]).
//!
//! Pure: the caller fills the data model (from snapshots and the run record), [`render_page`] returns the
//! page. It must never reference anything outside the file (no URL, no script, no web font) and never emit
//! a caller string unescaped: every string here is data, often LLM output.
//!
//! All five metrics are "higher is better": qlib reports max drawdown as a negative fraction, so a gain over
//! the baseline is `SOTA - baseline` for each of them.

use std::fmt::Write as _;

use crate::chart::{self, Chart, Format, Highlight, Line, Mark, MarkKind, Stroke};
use crate::html;

pub mod sample;

const CSS: &str = include_str!("page.css");
/// Texts longer than this (or with a line break) are collapsed into `<details>`.
const SHORT_TEXT: usize = 110;
/// Hypotheses are cut to this many characters in chart tooltips.
const TOOLTIP_TEXT: usize = 280;

/// The backtest metrics the report shows, per loop and per answer; `None` where the loop has no value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    pub ic: Option<f64>,
    pub icir: Option<f64>,
    pub rank_ic: Option<f64>,
    pub annualized_return: Option<f64>,
    pub max_drawdown: Option<f64>,
}

/// One of the [`Metrics`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Ic,
    Icir,
    RankIc,
    AnnualizedReturn,
    MaxDrawdown,
}

impl Metric {
    pub const ALL: [Metric; 5] = [
        Metric::Ic,
        Metric::Icir,
        Metric::RankIc,
        Metric::AnnualizedReturn,
        Metric::MaxDrawdown,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Metric::Ic => "IC",
            Metric::Icir => "ICIR",
            Metric::RankIc => "Rank IC",
            Metric::AnnualizedReturn => "Annualized return",
            Metric::MaxDrawdown => "Max drawdown",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Metric::AnnualizedReturn => "Ann. return",
            Metric::MaxDrawdown => "Max DD",
            other => other.label(),
        }
    }

    pub fn format(self) -> Format {
        match self {
            Metric::AnnualizedReturn | Metric::MaxDrawdown => Format::Percent,
            _ => Format::Decimal,
        }
    }

    pub fn of(self, m: &Metrics) -> Option<f64> {
        let v = match self {
            Metric::Ic => m.ic,
            Metric::Icir => m.icir,
            Metric::RankIc => m.rank_ic,
            Metric::AnnualizedReturn => m.annualized_return,
            Metric::MaxDrawdown => m.max_drawdown,
        };
        v.filter(|v| v.is_finite())
    }
}

/// What RD-Agent decided about a loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Accepted,
    Rejected,
    /// The loop ended without feedback (an error, or the run stopped): no metrics.
    Failed,
}

impl Decision {
    fn mark(self) -> MarkKind {
        match self {
            Decision::Accepted => MarkKind::Accepted,
            Decision::Rejected => MarkKind::Rejected,
            Decision::Failed => MarkKind::Failed,
        }
    }

    fn label(self) -> &'static str {
        self.mark().class()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LoopRow {
    pub id: u32,
    pub decision: Decision,
    pub hypothesis: String,
    pub reason: String,
    pub metrics: Metrics,
}

/// One loop phase (factor or model) of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    /// "Factor loop", "Model loop".
    pub name: String,
    pub loops: Vec<LoopRow>,
    /// The loop whose workspace is the phase's answer.
    pub sota_loop: Option<u32>,
}

/// A value and where it came from ("flag", "environment", "default").
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    pub name: String,
    pub value: String,
    pub origin: String,
}

/// A measured duration ("factor phase", "whole chain").
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    pub label: String,
    pub seconds: Option<f64>,
}

/// One start of a phase's `rdagent` and how it ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub phase: String,
    pub number: u32,
    pub outcome: String,
    pub seconds: Option<f64>,
}

/// A phase's result: the SOTA workspace and its metrics, with the baseline's metrics when known.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// "SOTA factor set", "SOTA model".
    pub title: String,
    pub log: String,
    pub loop_id: Option<u32>,
    pub workspace: String,
    pub metrics: Metrics,
    pub baseline: Option<Metrics>,
}

/// A factor of the SOTA factor set.
#[derive(Clone, Debug, PartialEq)]
pub struct SotaFactor {
    pub name: String,
    pub loop_id: Option<u32>,
    pub formulation: String,
    pub description: String,
}

/// Everything a run's page shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunPage {
    pub title: String,
    /// When the page was written, as text ("2026-11-30 02:00:00 UTC").
    pub generated: Option<String>,
    pub commands: Vec<String>,
    pub settings: Vec<Setting>,
    pub timings: Vec<Timing>,
    pub attempts: Vec<Attempt>,
    pub answers: Vec<Answer>,
    pub phases: Vec<Phase>,
    pub sota_factors: Vec<SotaFactor>,
}

/// Several runs (each titled by its [`RunPage::title`]) compared.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ComparisonPage {
    pub title: String,
    pub generated: Option<String>,
    pub runs: Vec<RunPage>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum PageData {
    Run(RunPage),
    Comparison(ComparisonPage),
}

/// The whole HTML document.
pub fn render_page(page: &PageData) -> String {
    match page {
        PageData::Run(run) => document(&run.title, run.generated.as_deref(), &run_body(run)),
        PageData::Comparison(c) => document(&c.title, c.generated.as_deref(), &comparison_body(c)),
    }
}

fn document(title: &str, generated: Option<&str>, body: &str) -> String {
    let mut s = String::with_capacity(body.len() + CSS.len() + 1024);
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    // Nothing may load or run, even if some text escaped our escaping.
    s.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n");
    s.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    s.push_str("<meta name=\"color-scheme\" content=\"light dark\">\n");
    let _ = writeln!(s, "<title>{}</title>", html::text(title));
    let _ = writeln!(s, "<style>{CSS}{}</style>\n</head>\n<body>", chart::CSS);
    let _ = write!(s, "<header class=\"page\"><h1>{}</h1>", html::text(title));
    if let Some(g) = generated {
        let _ = write!(s, "<p class=\"sub\">Written {}</p>", html::text(g));
    }
    s.push_str("</header>\n<main>\n");
    s.push_str(body);
    let _ = write!(
        s,
        "</main>\n<footer>rd-chain {}</footer>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    );
    s
}

// ------------------------------------------------------------------------------------------------ run page

fn run_body(run: &RunPage) -> String {
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

fn num_cell(m: Metric, v: Option<f64>) -> String {
    match v {
        Some(v) => format!(
            "<td class=\"num\">{}</td>",
            html::text(&m.format().value(v))
        ),
        None => "<td class=\"num na\">—</td>".into(),
    }
}

/// `SOTA - baseline`: percentage points for percent metrics.
fn gain_cell(m: Metric, v: Option<f64>, base: Option<f64>) -> String {
    let (Some(v), Some(b)) = (v, base) else {
        return "<td class=\"num na\">—</td>".into();
    };
    let d = v - b;
    let text = match m.format() {
        Format::Percent => format!("{} pp", Format::Decimal.fixed(d * 100.0, 2)),
        f => f.value(d),
    };
    let (class, sign) = match d {
        d if d > 0.0 => ("up", "+"),
        d if d < 0.0 => ("down", ""),
        _ => ("", ""),
    };
    format!(
        "<td class=\"num gain {class}\">{sign}{}</td>",
        html::text(&text)
    )
}

fn what_ran(s: &mut String, run: &RunPage) {
    if run.commands.is_empty()
        && run.settings.is_empty()
        && run.timings.is_empty()
        && run.attempts.is_empty()
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
            s.push_str("<h3>Attempts</h3><table><thead><tr><th>Phase</th><th>#</th><th>Outcome</th><th>Duration</th></tr></thead><tbody>");
            for a in &run.attempts {
                let _ = write!(
                    s,
                    "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
                    html::text(&a.phase),
                    a.number,
                    html::text(&a.outcome),
                    duration(a.seconds)
                );
            }
            s.push_str("</tbody></table>");
        }
        s.push_str("</div>");
    }
    s.push_str("</div></section>\n");
}

/// "1 h 02 min", "3 min 05 s", "12.3 s"; "—" when unknown.
fn duration(seconds: Option<f64>) -> String {
    match seconds.filter(|s| s.is_finite() && *s >= 0.0) {
        None => "—".into(),
        Some(s) if s < 60.0 => format!("{s:.1} s"),
        Some(s) if s < 3600.0 => {
            let s = s.round() as u64;
            format!("{} min {:02} s", s / 60, s % 60)
        }
        Some(s) => {
            let m = (s / 60.0).round() as u64;
            format!("{} h {:02} min", m / 60, m % 60)
        }
    }
}

/// Per loop, the value of the latest accepted loop so far (RD-Agent's SOTA as the run went).
fn sota_so_far(loops: &[LoopRow], m: Metric) -> Vec<(f64, Option<f64>)> {
    let mut current = None;
    loops
        .iter()
        .map(|l| {
            if l.decision == Decision::Accepted {
                current = m.of(&l.metrics);
            }
            (f64::from(l.id), current)
        })
        .collect()
}

fn cut(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        s.to_string()
    } else {
        // At a word boundary when there is one in the second half.
        let mut out: String = s.chars().take(max + 1).collect();
        let cut_at = match out.rfind(char::is_whitespace) {
            Some(i) if i > out.len() / 2 => i,
            _ => out.char_indices().nth(max).map_or(out.len(), |(i, _)| i),
        };
        out.truncate(cut_at);
        out.truncate(out.trim_end().len());
        out.push('…');
        out
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

/// Text that may be long: as is when short, else a `<details>` whose summary is its start.
fn long_text(s: &str) -> String {
    let t = s.trim();
    if t.is_empty() {
        return "<span class=\"na\">—</span>".into();
    }
    if t.chars().count() <= SHORT_TEXT && !t.contains('\n') {
        return html::text(t);
    }
    let first_line = t.lines().next().unwrap_or("");
    let mut summary = cut(first_line, SHORT_TEXT - 10);
    if !summary.ends_with('…') {
        summary.push_str(" …");
    }
    format!(
        "<details><summary>{}</summary><div class=\"full\">{}</div></details>",
        html::text(&summary),
        html::text(t)
    )
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

// -------------------------------------------------------------------------------------------- comparison

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

fn comparison_body(c: &ComparisonPage) -> String {
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

#[cfg(test)]
mod tests;
