//! Linear scales, "nice" ticks on 1-2-5 steps, and how axis values are written (decimals, percent, whole
//! numbers). Pure arithmetic; never panics, whatever the floats.

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
