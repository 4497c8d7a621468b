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

use crate::chart::{self, Format, MarkKind};
use crate::html;

mod comparison;
mod run;
pub mod sample;

pub use comparison::comparison_chart;
pub use run::phase_chart;

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
    /// The report file the hook appended to during this attempt (model phase, hook on), as the record has it.
    pub hook_report_file: Option<String>,
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
    /// The hook's report, when the run's model phase ran with the hook on.
    pub hook: Option<Box<crate::hook::HookReport>>,
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
        PageData::Run(r) => document(&r.title, r.generated.as_deref(), &run::body(r)),
        PageData::Comparison(c) => document(&c.title, c.generated.as_deref(), &comparison::body(c)),
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

// ------------------------------------------------------------------------------------------- shared cells

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

#[cfg(test)]
mod check;
#[cfg(test)]
mod tests;
