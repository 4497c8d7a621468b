//! Small SVG line charts for the report page: linear scales, "nice" 1-2-5 ticks, axes with titles, lines
//! with gaps, step lines, point marks by decision, a highlighted SOTA point and a legend.
//!
//! Pure: numbers and text in, an inline-SVG fragment out (no `xmlns`, so no URL; no scripts; colours come
//! from CSS classes styled by [`CSS`]). A missing or non-finite value is a gap, never a zero: lines break
//! there and the loop's mark sits in a "no result" strip under the plot. Never panics, whatever the data
//! (empty, one point, all equal, NaN, infinities). Every caller-given text is escaped here.

use std::fmt::Write as _;

use crate::html;

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

/// How values on an axis are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Plain decimals (IC, ICIR).
    Decimal,
    /// Fractions written as percent: 0.12 is "12%" (returns, drawdown).
    Percent,
    /// Whole numbers (loop ids); ticks are never fractional.
    Integer,
}

const MINUS: char = '\u{2212}';

impl Format {
    /// The label of tick `v` on an axis whose ticks are [`Ticks::step`] apart: just enough decimals to tell
    /// neighbouring ticks apart.
    pub fn tick(self, v: f64, ticks: &Ticks) -> String {
        let decimals = match self {
            Format::Decimal => (-ticks.exponent).max(0),
            Format::Percent => (-ticks.exponent - 2).max(0),
            Format::Integer => 0,
        } as usize;
        self.fixed(v, decimals)
    }

    /// A single value for tooltips and tables: 4 decimals, 2 for percent, none for integers.
    pub fn value(self, v: f64) -> String {
        match self {
            Format::Decimal => self.fixed(v, 4),
            Format::Percent => self.fixed(v, 2),
            Format::Integer => self.fixed(v, 0),
        }
    }

    /// `v` with exactly `decimals` decimals (scientific notation beyond 1e9), a true minus sign, and `%` for
    /// percent; "n/a" for a non-finite value.
    pub fn fixed(self, v: f64, decimals: usize) -> String {
        if !v.is_finite() {
            return "n/a".into();
        }
        let scaled = if self == Format::Percent {
            v * 100.0
        } else {
            v
        };
        let mut s = if scaled.abs() >= 1e9 || decimals > 9 {
            format!("{scaled:.2e}")
        } else {
            format!("{scaled:.decimals$}")
        };
        // "-0.00" is zero.
        if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
            s.remove(0);
        }
        let s = s.replacen('-', &MINUS.to_string(), 1);
        if self == Format::Percent {
            s + "%"
        } else {
            s
        }
    }
}

/// Tick positions from [`nice_ticks`]: multiples of a 1, 2 or 5 times a power of ten step, covering the data.
#[derive(Clone, Debug, PartialEq)]
pub struct Ticks {
    /// The first and last tick: the axis domain.
    pub lo: f64,
    pub hi: f64,
    pub step: f64,
    /// The power of ten of `step` (0.02 -> -2), which decides how many decimals labels need.
    pub exponent: i32,
    pub values: Vec<f64>,
}

/// `n * 10^e` as the double nearest that decimal (so 3 * 10^-1 is exactly the double 0.3, and 10^-301 is
/// not off by the rounding of a power computed in floating point).
fn decimal(n: i64, e: i32) -> f64 {
    format!("{n}e{e}").parse().unwrap_or(f64::NAN)
}

/// About `target` ticks on 1-2-5 steps whose first and last enclose `lo..=hi`. An empty range is widened
/// (by 10% of the value, or by 1 around zero); with `integer`, the step is at least 1.
pub fn nice_ticks(lo: f64, hi: f64, target: usize, integer: bool) -> Ticks {
    let (mut lo, mut hi) = match (lo.is_finite(), hi.is_finite()) {
        (true, true) if lo <= hi => (lo, hi),
        (true, true) => (hi, lo),
        _ => (0.0, 1.0),
    };
    let mid = lo / 2.0 + hi / 2.0;
    if hi - lo <= mid.abs() * 1e-9 {
        let pad = if integer || mid == 0.0 {
            1.0
        } else {
            mid.abs() * 0.1
        };
        lo = mid - pad;
        hi = mid + pad;
    }
    let span = hi - lo;
    if !span.is_finite() {
        // Only for values near f64::MAX: two ticks at the ends, no rounding.
        return Ticks {
            lo,
            hi,
            step: hi / 2.0 - lo / 2.0,
            exponent: 0,
            values: vec![lo, hi],
        };
    }
    let rough = span / (target.max(2) - 1) as f64;
    let mut exponent = rough.log10().floor() as i32;
    let fraction = rough / decimal(1, exponent);
    let mut multiple: i64 = match fraction {
        f if f <= 1.0 + 1e-9 => 1,
        f if f <= 2.0 + 1e-9 => 2,
        f if f <= 5.0 + 1e-9 => 5,
        _ => 10,
    };
    if multiple == 10 {
        multiple = 1;
        exponent += 1;
    }
    if integer && exponent < 0 {
        multiple = 1;
        exponent = 0;
    }
    let step = decimal(multiple, exponent);
    let first = (lo / step + 1e-9).floor() as i64;
    let last = ((hi / step - 1e-9).ceil() as i64).max(first + 1);
    let values: Vec<f64> = (first..=last)
        .map(|k| decimal(k * multiple, exponent))
        .collect();
    Ticks {
        lo: values[0],
        hi: values[values.len() - 1],
        step,
        exponent,
        values,
    }
}

/// A linear map from a domain to a range of SVG coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    pub domain: (f64, f64),
    pub range: (f64, f64),
}

impl Scale {
    pub fn map(&self, v: f64) -> f64 {
        let (d0, d1) = self.domain;
        let (r0, r1) = self.range;
        // Halved so that even domains near f64::MAX do not overflow.
        let width = d1 / 2.0 - d0 / 2.0;
        if width == 0.0 || !width.is_finite() || !v.is_finite() {
            return (r0 + r1) / 2.0;
        }
        r0 + (v / 2.0 - d0 / 2.0) / width * (r1 - r0)
    }
}

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
        let (plot_top, plot_bottom) = (l.y.range.1, l.y.range.0);
        let strip_y = plot_bottom + MISSING_STRIP / 2.0 + 2.0;
        let labels_y = plot_bottom + if l.missing_strip { MISSING_STRIP } else { 0.0 } + 18.0;
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{t}"><title>{tt}</title>"#,
            w = WIDTH,
            h = n(l.height),
            t = html::attr(&self.title),
            tt = html::text(&self.title),
        );

        // Grid and y axis.
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

        // Lines.
        s.push_str(r#"<g class="lines">"#);
        for line in &self.lines {
            let d = path(line, &l);
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

        // Marks.
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

        // Legend.
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
        s.push_str("</g></svg>");
        s
    }
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
mod tests {
    use super::*;

    fn ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
        nice_ticks(lo, hi, target, false).values
    }

    #[test]
    fn ticks_use_1_2_5_steps_and_exact_decimals() {
        assert_eq!(ticks(0.012, 0.087, 5), [0.0, 0.02, 0.04, 0.06, 0.08, 0.1]);
        assert_eq!(ticks(0.0, 1.0, 5), [0.0, 0.5, 1.0]);
        assert_eq!(ticks(-0.31, 0.07, 5), [-0.4, -0.3, -0.2, -0.1, 0.0, 0.1]);
        assert_eq!(ticks(3.0, 97.0, 5), [0.0, 50.0, 100.0]);
        assert_eq!(ticks(0.0, 0.3, 4), [0.0, 0.1, 0.2, 0.3]);
        assert_eq!(
            ticks(1234.0, 1301.0, 5),
            [1220.0, 1240.0, 1260.0, 1280.0, 1300.0, 1320.0]
        );
        let t = nice_ticks(-0.0842, -0.0213, 5, false);
        assert_eq!(t.values, [-0.1, -0.08, -0.06, -0.04, -0.02]);
        assert_eq!((t.lo, t.hi, t.step, t.exponent), (-0.1, -0.02, 0.02, -2));
    }

    #[test]
    fn ticks_on_a_tick_do_not_add_a_step() {
        assert_eq!(ticks(0.0, 0.08, 5), [0.0, 0.02, 0.04, 0.06, 0.08]);
        assert_eq!(ticks(0.2, 0.6, 5), [0.2, 0.3, 0.4, 0.5, 0.6]);
    }

    #[test]
    fn integer_ticks_are_whole_and_cover_100_loops() {
        assert_eq!(
            nice_ticks(0.0, 99.0, 8, true).values,
            [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(nice_ticks(0.0, 2.0, 8, true).values, [0.0, 1.0, 2.0]);
        assert_eq!(nice_ticks(5.0, 5.0, 8, true).values, [4.0, 5.0, 6.0]);
    }

    #[test]
    fn degenerate_ranges_are_widened_not_divided_by_zero() {
        assert_eq!(ticks(0.05, 0.05, 5), [0.045, 0.05, 0.055]);
        assert_eq!(ticks(0.0, 0.0, 5), [-1.0, -0.5, 0.0, 0.5, 1.0]);
        assert_eq!(ticks(f64::NAN, 1.0, 5), [0.0, 0.5, 1.0]);
        assert_eq!(ticks(2.0, 1.0, 5), [1.0, 1.5, 2.0]);
        let huge = nice_ticks(-f64::MAX, f64::MAX, 5, false);
        assert_eq!(huge.values, [-f64::MAX, f64::MAX]);
    }

    #[test]
    fn labels_have_just_enough_decimals_and_units() {
        let t = nice_ticks(-0.0842, -0.0213, 5, false);
        let labels: Vec<String> = t
            .values
            .iter()
            .map(|v| Format::Percent.tick(*v, &t))
            .collect();
        assert_eq!(labels, ["−10%", "−8%", "−6%", "−4%", "−2%"]);
        let t = nice_ticks(0.0, 0.0079, 5, false);
        let labels: Vec<String> = t
            .values
            .iter()
            .map(|v| Format::Percent.tick(*v, &t))
            .collect();
        assert_eq!(labels, ["0.0%", "0.2%", "0.4%", "0.6%", "0.8%"]);
        let t = nice_ticks(-0.031, 0.049, 5, false);
        let labels: Vec<String> = t
            .values
            .iter()
            .map(|v| Format::Decimal.tick(*v, &t))
            .collect();
        assert_eq!(labels, ["−0.04", "−0.02", "0.00", "0.02", "0.04", "0.06"]);
        assert_eq!(Format::Decimal.value(-0.00001), "0.0000");
        assert_eq!(Format::Percent.value(0.12345), "12.35%");
        assert_eq!(Format::Decimal.value(f64::NAN), "n/a");
        assert_eq!(Format::Integer.value(42.0), "42");
    }

    #[test]
    fn scale_maps_linearly_and_survives_empty_domains() {
        let s = Scale {
            domain: (0.0, 0.1),
            range: (300.0, 100.0),
        };
        assert_eq!(s.map(0.0), 300.0);
        assert_eq!(s.map(0.05), 200.0);
        assert_eq!(s.map(0.1), 100.0);
        let flat = Scale {
            domain: (1.0, 1.0),
            range: (0.0, 10.0),
        };
        assert_eq!(flat.map(1.0), 5.0);
        let huge = Scale {
            domain: (-f64::MAX, f64::MAX),
            range: (0.0, 10.0),
        };
        assert_eq!(huge.map(0.0), 5.0);
    }

    fn chart(points: &[Option<f64>], kinds: &[MarkKind]) -> Chart {
        Chart {
            title: "IC per loop".into(),
            x_title: "loop".into(),
            y_title: "IC".into(),
            x_format: Format::Integer,
            y_format: Format::Decimal,
            lines: vec![Line {
                name: "IC".into(),
                stroke: Stroke::Metric,
                step: false,
                points: points
                    .iter()
                    .enumerate()
                    .map(|(i, y)| (i as f64, *y))
                    .collect(),
            }],
            marks: points
                .iter()
                .zip(kinds)
                .enumerate()
                .map(|(i, (y, k))| Mark {
                    x: i as f64,
                    y: *y,
                    kind: *k,
                    title: format!("loop {i}"),
                })
                .collect(),
            highlight: None,
        }
    }

    fn count(haystack: &str, needle: &str) -> usize {
        haystack.matches(needle).count()
    }

    /// The numbers of the `name="..."` attributes of the first element after `marker`.
    fn attr_after(svg: &str, marker: &str, name: &str) -> f64 {
        let rest = &svg[svg.find(marker).expect(marker)..];
        let key = format!(" {name}=\"");
        let start = rest.find(&key).expect(name) + key.len();
        rest[start..start + rest[start..].find('"').unwrap()]
            .parse()
            .unwrap()
    }

    use MarkKind::{Accepted as A, Failed as F, Rejected as R};

    #[test]
    fn gaps_break_the_line_and_missing_marks_go_to_the_strip() {
        let c = chart(
            &[
                Some(0.01),
                Some(0.02),
                None,
                Some(0.03),
                Some(f64::NAN),
                Some(0.05),
            ],
            &[A, R, F, A, F, A],
        );
        let svg = c.svg();
        let d_start = svg.find(r#"class="line metric" d=""#).unwrap();
        let d = &svg[d_start..d_start + svg[d_start..].find("/>").unwrap()];
        // Three runs: loops 0-1, loop 3 alone, loop 5 alone.
        assert_eq!(count(d, "M"), 3, "{svg}");
        assert_eq!(count(d, "L"), 1, "{d}");
        assert_eq!(count(&svg, r#"<g class="mark accepted">"#), 3);
        assert_eq!(count(&svg, r#"<g class="mark rejected">"#), 1);
        assert_eq!(count(&svg, r#"<g class="mark failed missing">"#), 2);
        assert_eq!(count(&svg, "no result</text>"), 1);
        // The failed marks sit below the x axis, never at a value.
        let axis_y = attr_after(&svg, r#"<line class="domain""#, "y1");
        let failed = &svg[svg.find("mark failed missing").unwrap()..];
        let d = &failed[failed.find("d=\"M").unwrap() + 4..];
        let y: f64 = d.split(['L', ' ']).nth(1).unwrap().parse().unwrap();
        assert!(y > axis_y, "failed mark at y={y}, axis at {axis_y}");
    }

    #[test]
    fn sota_ring_is_at_the_points_coordinates() {
        let mut c = chart(&[Some(0.0), Some(0.05), Some(0.1)], &[A, A, R]);
        c.highlight = Some(Highlight {
            x: 1.0,
            y: 0.05,
            label: "SOTA".into(),
            title: "loop 1".into(),
        });
        let l = c.layout();
        // One legend row: plot from y=8+20+18=46 to 246; x domain -0.5..2.5 over 64..620.
        assert_eq!(
            (l.y.range, l.x.domain, l.x.range),
            ((246.0, 46.0), (-0.5, 2.5), (64.0, 620.0))
        );
        assert_eq!(l.y_ticks.values, [0.0, 0.05, 0.1]);
        let svg = c.svg();
        assert_eq!(attr_after(&svg, r#"<g class="sota">"#, "cx"), 342.0);
        assert_eq!(attr_after(&svg, r#"<g class="sota">"#, "cy"), 146.0);
        assert_eq!(
            attr_after(&svg, r#"<g class="mark accepted"><title>loop 1"#, "cx"),
            342.0
        );
        assert_eq!(
            count(&svg, r#"<circle class="ring""#),
            2,
            "the ring and its legend swatch"
        );
    }

    #[test]
    fn step_lines_hold_their_value_until_the_next_point() {
        let c = Chart {
            lines: vec![Line {
                name: "SOTA so far".into(),
                stroke: Stroke::Best,
                step: true,
                points: vec![
                    (0.0, Some(0.0)),
                    (1.0, Some(0.1)),
                    (2.0, None),
                    (3.0, Some(0.1)),
                ],
            }],
            marks: vec![],
            ..chart(&[], &[])
        };
        let svg = c.svg();
        assert!(
            svg.contains(r#"class="line best step" d="M133.5 246H272.5V46M550.5 46""#),
            "{svg}"
        );
    }

    #[test]
    fn degenerate_data_renders_without_panicking_or_nan() {
        let cases: Vec<Vec<Option<f64>>> = vec![
            vec![],
            vec![Some(0.07)],
            vec![Some(0.03); 5],
            vec![None, None, None],
            vec![Some(f64::NAN), Some(f64::INFINITY), Some(f64::NEG_INFINITY)],
            vec![Some(f64::MAX), Some(-f64::MAX)],
            vec![Some(0.0), Some(1e-300)],
        ];
        for points in cases {
            let kinds = vec![A; points.len()];
            let svg = chart(&points, &kinds).svg();
            assert!(
                !svg.contains("NaN") && !svg.contains("inf"),
                "{points:?}: {svg}"
            );
            assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
            assert_eq!(
                count(&svg, "<g class=\"mark accepted"),
                points.len() + usize::from(!points.is_empty())
            );
            assert_eq!(
                count(&svg, "<g class=\"mark accepted key\">"),
                usize::from(!points.is_empty())
            );
            let finite = points.iter().any(|p| p.is_some_and(f64::is_finite));
            assert_eq!(svg.contains("no results to plot"), !finite, "{points:?}");
        }
    }

    #[test]
    fn marks_shrink_when_loops_crowd() {
        let x = Scale {
            domain: (0.0, 1.0),
            range: (64.0, 620.0),
        };
        assert_eq!(mark_radius(&x, 10), 4.0);
        assert_eq!(mark_radius(&x, 100), 556.0 / 100.0 * 0.55);
        assert_eq!(mark_radius(&x, 1000), 2.5);
        assert_eq!(mark_radius(&x, 0), 4.0);
    }

    #[test]
    fn awkward_ranges_give_finite_ordered_ticks_or_no_panic() {
        let values = [
            0.0,
            1e-300,
            -1e-300,
            1e-10,
            -1e-10,
            1.0,
            -1.0,
            1e10,
            -1e10,
            1e300,
            -1e300,
            f64::MAX,
            -f64::MAX,
            f64::MIN_POSITIVE,
            0.1,
            0.3,
        ];
        for &lo in &values {
            for &hi in &values {
                let t = nice_ticks(lo, hi, 5, false);
                assert!(
                    t.values.len() >= 2 && t.values.len() <= 12,
                    "{lo} {hi}: {t:?}"
                );
                assert!(t.values.windows(2).all(|w| w[0] < w[1]), "{lo} {hi}: {t:?}");
                if t.values.iter().all(|v| v.is_finite()) {
                    // Enclosing, up to the float-noise tolerance of a billionth of a step.
                    let slack = t.step * 1e-9;
                    assert!(
                        t.lo <= lo.min(hi) + slack && t.hi >= lo.max(hi) - slack,
                        "{lo} {hi}: {t:?}"
                    );
                }
                let svg = chart(&[Some(lo), Some(hi)], &[A, R]).svg();
                assert!(!svg.contains("NaN") && !svg.contains("inf"), "{lo} {hi}");
            }
        }
    }

    #[test]
    fn all_equal_values_sit_mid_plot() {
        let c = chart(&[Some(0.03); 4], &[A; 4]);
        let l = c.layout();
        let y = l.y.map(0.03);
        assert!(y > l.y.range.1 && y < l.y.range.0);
    }

    #[test]
    fn caller_text_is_escaped_everywhere() {
        let mut c = chart(&[Some(0.1)], &[A]);
        c.title = "<b>t</b>\"".into();
        c.y_title = "<y>".into();
        c.marks[0].title = "<script>alert(1)</script>".into();
        c.lines[0].name = "a&b".into();
        let svg = c.svg();
        assert!(!svg.contains("<script") && !svg.contains("<b>") && !svg.contains("<y>"));
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(svg.contains(r#"aria-label="&lt;b&gt;t&lt;/b&gt;&quot;""#));
        assert!(svg.contains(">a&amp;b</text>"));
    }

    #[test]
    fn palette_lines_end_in_a_dot_at_their_last_value() {
        let line = |i: usize, points: Vec<(f64, Option<f64>)>| Line {
            name: format!("run {i}"),
            stroke: Stroke::Palette(i),
            step: true,
            points,
        };
        let c = Chart {
            lines: vec![
                line(0, vec![(0.0, Some(0.0)), (1.0, Some(0.1)), (2.0, None)]),
                line(9, vec![(0.0, None)]),
            ],
            marks: vec![],
            ..chart(&[], &[])
        };
        let svg = c.svg();
        let l = c.layout();
        let dot = format!(
            r#"<circle class="end pal p0" cx="{}" cy="{}" r="3.5"/>"#,
            n(l.x.map(1.0)),
            n(l.y.map(0.1))
        );
        assert!(svg.contains(&dot), "{svg}");
        assert_eq!(
            svg.matches("<circle class=\"end").count(),
            1,
            "no dot for a line without values"
        );
        assert!(
            svg.contains(r#"<path class="line pal p1" d="#),
            "colours cycle after 8"
        );
    }

    #[test]
    fn many_legend_entries_wrap_into_rows_inside_the_width() {
        let lines = (0..8)
            .map(|i| Line {
                name: format!("run 2026-11-{i:02} with a long name that gets shortened"),
                stroke: Stroke::Palette(i),
                step: true,
                points: vec![(0.0, Some(i as f64))],
            })
            .collect();
        let c = Chart {
            lines,
            marks: vec![],
            ..chart(&[], &[])
        };
        let l = c.layout();
        assert!(l.legend_rows >= 4, "{}", l.legend_rows);
        for e in &l.legend {
            assert!(e.label.chars().count() <= LEGEND_LABEL_MAX);
            assert!(
                e.x + 24.0 + e.label.chars().count() as f64 * CHAR_WIDTH <= PLOT_RIGHT + 1.0,
                "{e:?}"
            );
        }
        assert_eq!(
            l.y.range.1,
            LEGEND_TOP + l.legend_rows as f64 * LEGEND_ROW + PLOT_GAP
        );
    }
}
