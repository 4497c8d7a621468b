//! Small SVG line charts for the report page: linear scales, "nice" 1-2-5 ticks, axes with titles, lines
//! with gaps, step lines, point marks by decision, a highlighted SOTA point and a legend.
//!
//! Pure: numbers and text in, an inline-SVG fragment out (no `xmlns`, so no URL; no scripts; colours come
//! from CSS classes styled by [`CSS`]). A missing or non-finite value is a gap, never a zero: lines break
//! there and the loop's mark sits in a "no result" strip under the plot. Never panics, whatever the data
//! (empty, one point, all equal, NaN, infinities). Every caller-given text is escaped here.

use std::fmt::Write as _;

use crate::html;

mod scale;
pub use scale::{nice_ticks, Format, Scale, Ticks};

/// Overall size of a chart (SVG user units; the page scales it to its column width).
pub const WIDTH: f64 = 640.0;
const PLOT_LEFT: f64 = 64.0;
const PLOT_RIGHT: f64 = WIDTH - 20.0;
const PLOT_HEIGHT: f64 = 200.0;
const LEGEND_ROW: f64 = 20.0;
const LEGEND_TOP: f64 = 8.0;
/// Space between the legend and the plot's top edge (room for the SOTA label).
const PLOT_GAP: f64 = 18.0;
/// The strip under the x axis where loops without a value are marked.
const MISSING_STRIP: f64 = 18.0;
/// Width of a legend character at the legend's font size (an estimate; labels are short).
const CHAR_WIDTH: f64 = 6.4;
const LEGEND_LABEL_MAX: usize = 32;

/// The colour of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stroke {
    /// The metric per loop.
    Metric,
    /// The running best (SOTA so far).
    Best,
    /// One of several runs on a comparison chart (colours cycle after 8); ends in a dot at its last value.
    Palette(usize),
}

impl Stroke {
    fn class(self) -> String {
        match self {
            Stroke::Metric => "metric".into(),
            Stroke::Best => "best".into(),
            Stroke::Palette(i) => format!("pal p{}", i % 8),
        }
    }
}

/// A line through `(x, y)` points; a `None` or non-finite `y` breaks it.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// Legend label; empty for no legend entry.
    pub name: String,
    pub stroke: Stroke,
    /// Draw as steps (the value holds until the next point) instead of straight segments.
    pub step: bool,
    pub points: Vec<(f64, Option<f64>)>,
}

/// What a loop's mark says about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkKind {
    Accepted,
    Rejected,
    Failed,
}

impl MarkKind {
    pub fn class(self) -> &'static str {
        match self {
            MarkKind::Accepted => "accepted",
            MarkKind::Rejected => "rejected",
            MarkKind::Failed => "failed",
        }
    }
}

/// A point mark; without a finite `y` it goes into the "no result" strip under the plot.
#[derive(Clone, Debug, PartialEq)]
pub struct Mark {
    pub x: f64,
    pub y: Option<f64>,
    pub kind: MarkKind,
    /// Tooltip text (an SVG `<title>`).
    pub title: String,
}

/// The point to single out (the SOTA): a ring and a label.
#[derive(Clone, Debug, PartialEq)]
pub struct Highlight {
    pub x: f64,
    pub y: f64,
    pub label: String,
    pub title: String,
}

/// One chart. Build it with a struct literal, then [`Chart::svg`].
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// The SVG's accessible name.
    pub title: String,
    pub x_title: String,
    pub y_title: String,
    pub x_format: Format,
    pub y_format: Format,
    pub lines: Vec<Line>,
    pub marks: Vec<Mark>,
    pub highlight: Option<Highlight>,
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite())
}

/// The computed geometry of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub x: Scale,
    pub y: Scale,
    pub x_ticks: Ticks,
    pub y_ticks: Ticks,
    pub legend: Vec<LegendEntry>,
    /// Legend rows; the plot starts below them.
    pub legend_rows: usize,
    pub height: f64,
    /// Whether some mark has no value (draws the "no result" strip).
    pub missing_strip: bool,
    /// Whether there is any finite value to plot.
    pub has_values: bool,
}

/// A legend entry and its position.
#[derive(Clone, Debug, PartialEq)]
pub struct LegendEntry {
    pub swatch: Swatch,
    pub label: String,
    pub x: f64,
    pub row: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Swatch {
    Line(Stroke),
    Mark(MarkKind),
    Highlight,
}

fn extent(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

impl Chart {
    fn x_values(&self) -> impl Iterator<Item = f64> + '_ {
        let lines = self.lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
        let marks = self.marks.iter().map(|m| m.x);
        let hl = self.highlight.iter().map(|h| h.x);
        lines.chain(marks).chain(hl).filter(|x| x.is_finite())
    }

    fn y_values(&self) -> impl Iterator<Item = f64> + '_ {
        let lines = self.lines.iter().flat_map(|l| {
            l.points
                .iter()
                .filter(|p| p.0.is_finite())
                .filter_map(|p| finite(p.1))
        });
        let marks = self
            .marks
            .iter()
            .filter(|m| m.x.is_finite())
            .filter_map(|m| finite(m.y));
        let hl = self
            .highlight
            .iter()
            .filter(|h| h.x.is_finite() && h.y.is_finite())
            .map(|h| h.y);
        lines.chain(marks).chain(hl)
    }

    fn legend(&self) -> Vec<LegendEntry> {
        let mut items: Vec<(Swatch, String)> = Vec::new();
        for line in self.lines.iter().filter(|l| !l.name.is_empty()) {
            items.push((Swatch::Line(line.stroke), line.name.clone()));
        }
        for kind in [MarkKind::Accepted, MarkKind::Rejected, MarkKind::Failed] {
            if self.marks.iter().any(|m| m.kind == kind) {
                items.push((Swatch::Mark(kind), kind.class().to_string()));
            }
        }
        if let Some(h) = &self.highlight {
            items.push((Swatch::Highlight, h.label.clone()));
        }
        let mut entries = Vec::new();
        let (mut x, mut row) = (PLOT_LEFT, 0);
        for (swatch, label) in items {
            let label = shorten(&label, LEGEND_LABEL_MAX);
            let width = 24.0 + label.chars().count() as f64 * CHAR_WIDTH + 16.0;
            if x > PLOT_LEFT && x + width > PLOT_RIGHT {
                x = PLOT_LEFT;
                row += 1;
            }
            entries.push(LegendEntry {
                swatch,
                label,
                x,
                row,
            });
            x += width;
        }
        entries
    }

    /// Scales, ticks and legend placement.
    pub fn layout(&self) -> Layout {
        let legend = self.legend();
        let legend_rows = legend.last().map_or(0, |e| e.row + 1);
        let plot_top = LEGEND_TOP + legend_rows as f64 * LEGEND_ROW + PLOT_GAP;
        let plot_bottom = plot_top + PLOT_HEIGHT;
        let missing_strip = self
            .marks
            .iter()
            .any(|m| m.x.is_finite() && finite(m.y).is_none());
        let strip = if missing_strip { MISSING_STRIP } else { 0.0 };
        let height = plot_bottom + strip + 48.0;

        let (x_lo, x_hi) = extent(self.x_values()).unwrap_or((0.0, 1.0));
        let x_ticks = nice_ticks(x_lo, x_hi, 8, self.x_format == Format::Integer);
        // Points never sit on the y axis: half a step (at least half a loop) of room on both sides.
        let pad = if self.x_format == Format::Integer {
            0.5f64.max((x_hi - x_lo) * 0.02)
        } else {
            x_ticks.step / 2.0
        };
        let x = Scale {
            domain: (x_lo - pad, x_hi + pad),
            range: (PLOT_LEFT, PLOT_RIGHT),
        };
        let x_ticks = Ticks {
            values: x_ticks
                .values
                .iter()
                .copied()
                .filter(|v| *v >= x.domain.0 && *v <= x.domain.1)
                .collect(),
            ..x_ticks
        };
        let y_extent = extent(self.y_values());
        let (y_lo, y_hi) = y_extent.unwrap_or((0.0, 1.0));
        let y_ticks = nice_ticks(y_lo, y_hi, 5, self.y_format == Format::Integer);
        let y = Scale {
            domain: (y_ticks.lo, y_ticks.hi),
            range: (plot_bottom, plot_top),
        };
        Layout {
            x,
            y,
            x_ticks,
            y_ticks,
            legend,
            legend_rows,
            height,
            missing_strip,
            has_values: y_extent.is_some(),
        }
    }

    /// The chart as an inline `<svg>` element.
    pub fn svg(&self) -> String {
        let l = self.layout();
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{t}"><title>{tt}</title>"#,
            w = WIDTH,
            h = n(l.height),
            t = html::attr(&self.title),
            tt = html::text(&self.title),
        );
        self.write_axes(&l, &mut s);
        self.write_lines(&l, &mut s);
        self.write_marks(&l, &mut s);
        write_legend(&l, &mut s);
        s.push_str("</svg>");
        s
    }

    /// Grid, ticks and their labels, axis titles, and the "no result" / "no results to plot" notes.
    fn write_axes(&self, l: &Layout, s: &mut String) {
        let (plot_top, plot_bottom) = (l.y.range.1, l.y.range.0);
        let labels_y = plot_bottom + if l.missing_strip { MISSING_STRIP } else { 0.0 } + 18.0;
        let strip_y = strip_y(l);
        s.push_str(r#"<g class="axis y">"#);
        for &v in &l.y_ticks.values {
            let y = n(l.y.map(v));
            let zero = if v == 0.0 && l.y_ticks.lo < 0.0 {
                " zero"
            } else {
                ""
            };
            let _ = write!(
                s,
                r#"<line class="grid{zero}" x1="{x1}" x2="{x2}" y1="{y}" y2="{y}"/><text x="{tx}" y="{y}" dy="0.32em" text-anchor="end">{label}</text>"#,
                x1 = n(PLOT_LEFT),
                x2 = n(PLOT_RIGHT),
                tx = n(PLOT_LEFT - 8.0),
                label = html::text(&self.y_format.tick(v, &l.y_ticks)),
            );
        }
        s.push_str("</g>");

        // x axis.
        let _ = write!(
            s,
            r#"<g class="axis x"><line class="domain" x1="{x1}" x2="{x2}" y1="{y}" y2="{y}"/>"#,
            x1 = n(PLOT_LEFT),
            x2 = n(PLOT_RIGHT),
            y = n(plot_bottom),
        );
        for &v in &l.x_ticks.values {
            let x = n(l.x.map(v));
            let _ = write!(
                s,
                r#"<line class="tick" x1="{x}" x2="{x}" y1="{y1}" y2="{y2}"/><text x="{x}" y="{ty}" text-anchor="middle">{label}</text>"#,
                y1 = n(plot_bottom),
                y2 = n(plot_bottom + 4.0),
                ty = n(labels_y),
                label = html::text(&self.x_format.tick(v, &l.x_ticks)),
            );
        }
        s.push_str("</g>");
        let _ = write!(
            s,
            r#"<text class="axis-title x" x="{x}" y="{y}" text-anchor="middle">{t}</text><text class="axis-title y" transform="translate(14 {ym}) rotate(-90)" text-anchor="middle">{yt}</text>"#,
            x = n((PLOT_LEFT + PLOT_RIGHT) / 2.0),
            y = n(labels_y + 22.0),
            t = html::text(&self.x_title),
            ym = n((plot_top + plot_bottom) / 2.0),
            yt = html::text(&self.y_title),
        );
        if l.missing_strip {
            let _ = write!(
                s,
                r#"<text class="strip-label" x="{x}" y="{y}" dy="0.32em" text-anchor="end">no result</text>"#,
                x = n(PLOT_LEFT - 8.0),
                y = n(strip_y),
            );
        }
        if !l.has_values {
            let _ = write!(
                s,
                r#"<text class="empty" x="{x}" y="{y}" text-anchor="middle">no results to plot</text>"#,
                x = n((PLOT_LEFT + PLOT_RIGHT) / 2.0),
                y = n((plot_top + plot_bottom) / 2.0),
            );
        }
    }

    /// The lines, each broken at its gaps; palette lines end in a dot.
    fn write_lines(&self, l: &Layout, s: &mut String) {
        s.push_str(r#"<g class="lines">"#);
        for line in &self.lines {
            let d = path(line, l);
            if !d.is_empty() {
                let _ = write!(
                    s,
                    r#"<path class="line {c}{st}" d="{d}"/>"#,
                    c = line.stroke.class(),
                    st = if line.step { " step" } else { "" },
                );
            }
            let last = line
                .points
                .iter()
                .rev()
                .find(|p| p.0.is_finite() && finite(p.1).is_some());
            if let (Stroke::Palette(_), Some(&(x, Some(y)))) = (line.stroke, last) {
                let _ = write!(
                    s,
                    r#"<circle class="end {c}" cx="{x}" cy="{y}" r="3.5"/>"#,
                    c = line.stroke.class(),
                    x = n(l.x.map(x)),
                    y = n(l.y.map(y)),
                );
            }
        }
        s.push_str("</g>");
    }

    /// One mark per loop (in the strip under the axis when it has no value), then the highlight.
    fn write_marks(&self, l: &Layout, s: &mut String) {
        let strip_y = strip_y(l);
        s.push_str(r#"<g class="marks">"#);
        let radius = mark_radius(&l.x, self.marks.len());
        for m in self.marks.iter().filter(|m| m.x.is_finite()) {
            let x = l.x.map(m.x);
            let (y, missing) = match finite(m.y) {
                Some(v) => (l.y.map(v), ""),
                None => (strip_y, " missing"),
            };
            let _ = write!(
                s,
                r#"<g class="mark {k}{missing}"><title>{t}</title>{shape}</g>"#,
                k = m.kind.class(),
                t = html::text(&m.title),
                shape = shape(m.kind, x, y, radius),
            );
        }
        s.push_str("</g>");

        if let Some(h) = self
            .highlight
            .as_ref()
            .filter(|h| h.x.is_finite() && h.y.is_finite())
        {
            let (x, y) = (n(l.x.map(h.x)), n(l.y.map(h.y)));
            let _ = write!(
                s,
                r#"<g class="sota"><title>{t}</title><circle class="ring" cx="{x}" cy="{y}" r="8"/><text x="{x}" y="{ty}" text-anchor="middle">{label}</text></g>"#,
                t = html::text(&h.title),
                ty = n(l.y.map(h.y) - 13.0),
                label = html::text(&h.label),
            );
        }
    }
}

/// The legend rows above the plot.
fn write_legend(l: &Layout, s: &mut String) {
    s.push_str(r#"<g class="legend">"#);
    for e in &l.legend {
        let cy = LEGEND_TOP + e.row as f64 * LEGEND_ROW + LEGEND_ROW / 2.0;
        let sw = match &e.swatch {
            Swatch::Line(stroke) => format!(
                r#"<path class="line {c}" d="M{x0} {y}H{x1}"/>"#,
                c = stroke.class(),
                x0 = n(e.x),
                x1 = n(e.x + 18.0),
                y = n(cy),
            ),
            Swatch::Mark(kind) => {
                format!(
                    r#"<g class="mark {} key">{}</g>"#,
                    kind.class(),
                    shape(*kind, e.x + 9.0, cy, 4.0)
                )
            }
            Swatch::Highlight => format!(
                r#"<g class="sota key"><circle class="ring" cx="{x}" cy="{y}" r="6"/></g>"#,
                x = n(e.x + 9.0),
                y = n(cy),
            ),
        };
        let _ = write!(
            s,
            r#"<g class="entry">{sw}<text x="{x}" y="{y}" dy="0.32em">{t}</text></g>"#,
            x = n(e.x + 24.0),
            y = n(cy),
            t = html::text(&e.label),
        );
    }
    s.push_str("</g>");
}

/// The middle of the "no result" strip under the x axis.
fn strip_y(l: &Layout) -> f64 {
    l.y.range.0 + MISSING_STRIP / 2.0 + 2.0
}

/// A coordinate with one decimal.
fn n(v: f64) -> String {
    let v = if v.is_finite() { v } else { 0.0 };
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// The `d` of a line: a new `M` after every gap, `H`/`V` pairs for steps.
fn path(line: &Line, l: &Layout) -> String {
    let mut d = String::new();
    let mut prev: Option<(f64, f64)> = None;
    for &(x, y) in line.points.iter().filter(|p| p.0.is_finite()) {
        let Some(y) = finite(y) else {
            prev = None;
            continue;
        };
        let (px, py) = (l.x.map(x), l.y.map(y));
        match prev {
            None => {
                let _ = write!(d, "M{} {}", n(px), n(py));
            }
            Some(_) if line.step => {
                let _ = write!(d, "H{}V{}", n(px), n(py));
            }
            Some(_) => {
                let _ = write!(d, "L{} {}", n(px), n(py));
            }
        }
        prev = Some((px, py));
    }
    d
}

/// A mark of size `r` (the circle's radius; squares and crosses match its area and width).
fn shape(kind: MarkKind, x: f64, y: f64, r: f64) -> String {
    let h = r * 0.875;
    match kind {
        MarkKind::Accepted => format!(r#"<circle cx="{}" cy="{}" r="{}"/>"#, n(x), n(y), n(r)),
        MarkKind::Rejected => format!(
            r#"<rect x="{}" y="{}" width="{w}" height="{w}"/>"#,
            n(x - h),
            n(y - h),
            w = n(2.0 * h)
        ),
        MarkKind::Failed => format!(
            r#"<path d="M{a} {b}L{c} {e}M{a} {e}L{c} {b}"/>"#,
            a = n(x - h),
            b = n(y - h),
            c = n(x + h),
            e = n(y + h),
        ),
    }
}

/// Mark size: 4 units, smaller when loops crowd (down to 2.5 at about 110 loops or more).
fn mark_radius(x: &Scale, marks: usize) -> f64 {
    let spacing = (x.range.1 - x.range.0).abs() / marks.max(1) as f64;
    (spacing * 0.55).clamp(2.5, 4.0)
}

/// The charts' styles: colours from CSS variables the page defines for light and dark mode.
pub const CSS: &str = r#"
svg.chart { display: block; width: 100%; height: auto; font-size: 11px; overflow: visible; }
svg.chart text { fill: var(--muted); }
svg.chart .grid { stroke: var(--grid); stroke-width: 1; }
svg.chart .grid.zero { stroke: var(--muted); stroke-dasharray: 3 3; }
svg.chart .domain, svg.chart .tick { stroke: var(--muted); }
svg.chart .axis-title { fill: var(--fg); font-weight: 600; }
svg.chart .strip-label, svg.chart .empty { font-style: italic; }
svg.chart .line { fill: none; stroke-width: 1.5; stroke-linejoin: round; }
svg.chart .line.metric { stroke: var(--metric); stroke-width: 1.25; }
svg.chart .line.best { stroke: var(--best); stroke-width: 2.25; }
svg.chart .p0 { color: var(--p0); } svg.chart .p1 { color: var(--p1); } svg.chart .p2 { color: var(--p2); }
svg.chart .p3 { color: var(--p3); } svg.chart .p4 { color: var(--p4); } svg.chart .p5 { color: var(--p5); }
svg.chart .p6 { color: var(--p6); } svg.chart .p7 { color: var(--p7); }
svg.chart .line.pal { stroke: currentColor; stroke-width: 2; }
svg.chart .end { fill: currentColor; stroke: var(--card); stroke-width: 1.5; }
svg.chart .mark.accepted circle { fill: var(--accepted); stroke: var(--bg); stroke-width: 1; }
svg.chart .mark.rejected rect { fill: var(--bg); stroke: var(--rejected); stroke-width: 1.5; }
svg.chart .mark.failed path { stroke: var(--failed); stroke-width: 2; stroke-linecap: round; }
svg.chart .sota .ring { fill: none; stroke: var(--sota); stroke-width: 2.5; }
svg.chart .sota text { fill: var(--sota); font-weight: 700; }
svg.chart .legend text { fill: var(--fg); }
"#;

#[cfg(test)]
mod tests;
