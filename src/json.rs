//! A small JSON value and writer for rd-chain's machine-readable output (`--json`, the run record).
//!
//! It only writes: rd-chain never needs to read JSON. Output is valid RFC 8259 JSON: strings are escaped,
//! non-finite floats become `null`, object keys keep their insertion order so documents read top-down.

use std::fmt::Write as _;

#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// An empty object to `push` fields into.
    pub fn object() -> Json {
        Json::Object(Vec::new())
    }

    /// Add a field to an object (no-op on other values is a bug, so it panics in debug builds).
    pub fn with(mut self, key: &str, value: impl Into<Json>) -> Json {
        self.push(key, value);
        self
    }

    pub fn push(&mut self, key: &str, value: impl Into<Json>) {
        match self {
            Json::Object(fields) => fields.push((key.to_string(), value.into())),
            _ => debug_assert!(false, "Json::push on a non-object"),
        }
    }

    /// Two-space indented text with a trailing newline.
    pub fn pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, Some(0));
        out.push('\n');
        out
    }

    /// One line, no spaces.
    pub fn compact(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, None);
        out
    }

    fn write(&self, out: &mut String, indent: Option<usize>) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Json::Float(f) => write_float(out, *f),
            Json::Str(s) => write_str(out, s),
            Json::Array(items) => {
                if items.is_empty() {
                    out.push_str("[]");
                    return;
                }
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, indent.map(|n| n + 1));
                    item.write(out, indent.map(|n| n + 1));
                }
                newline(out, indent);
                out.push(']');
            }
            Json::Object(fields) => {
                if fields.is_empty() {
                    out.push_str("{}");
                    return;
                }
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, indent.map(|n| n + 1));
                    write_str(out, key);
                    out.push(':');
                    if indent.is_some() {
                        out.push(' ');
                    }
                    value.write(out, indent.map(|n| n + 1));
                }
                newline(out, indent);
                out.push('}');
            }
        }
    }
}

fn newline(out: &mut String, indent: Option<usize>) {
    if let Some(n) = indent {
        out.push('\n');
        for _ in 0..n {
            out.push_str("  ");
        }
    }
}

fn write_float(out: &mut String, f: f64) {
    if !f.is_finite() {
        out.push_str("null");
    } else if f == f.trunc() && f.abs() < 1e15 {
        // Keep a float a float for readers that care: 3.0, not 3.
        let _ = write!(out, "{f:.1}");
    } else {
        // Rust's shortest round-trip representation; exponents are valid JSON ("1e-7").
        let _ = write!(out, "{f}");
    }
}

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl From<bool> for Json {
    fn from(b: bool) -> Json {
        Json::Bool(b)
    }
}
impl From<i64> for Json {
    fn from(i: i64) -> Json {
        Json::Int(i)
    }
}
impl From<u64> for Json {
    fn from(i: u64) -> Json {
        i64::try_from(i).map_or(Json::Float(i as f64), Json::Int)
    }
}
impl From<usize> for Json {
    fn from(i: usize) -> Json {
        Json::from(i as u64)
    }
}
impl From<u32> for Json {
    fn from(i: u32) -> Json {
        Json::Int(i as i64)
    }
}
impl From<i32> for Json {
    fn from(i: i32) -> Json {
        Json::Int(i as i64)
    }
}
impl From<f64> for Json {
    fn from(f: f64) -> Json {
        Json::Float(f)
    }
}
impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::Str(s.to_string())
    }
}
impl From<String> for Json {
    fn from(s: String) -> Json {
        Json::Str(s)
    }
}
impl From<&std::path::Path> for Json {
    /// Paths are written lossily: a non-UTF-8 byte becomes U+FFFD (JSON strings are Unicode).
    fn from(p: &std::path::Path) -> Json {
        Json::Str(p.to_string_lossy().into_owned())
    }
}
impl From<&std::path::PathBuf> for Json {
    fn from(p: &std::path::PathBuf) -> Json {
        Json::from(p.as_path())
    }
}
impl<T: Into<Json>> From<Option<T>> for Json {
    fn from(o: Option<T>) -> Json {
        o.map_or(Json::Null, Into::into)
    }
}
impl<T: Into<Json>> From<Vec<T>> for Json {
    fn from(v: Vec<T>) -> Json {
        Json::Array(v.into_iter().map(Into::into).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_strings_and_control_characters() {
        let j = Json::from("a\"b\\c\nd\u{1}e\u{2028}é");
        assert_eq!(j.compact(), "\"a\\\"b\\\\c\\nd\\u0001e\\u2028é\"");
    }

    #[test]
    fn floats_stay_floats_and_non_finite_is_null() {
        assert_eq!(Json::Float(3.0).compact(), "3.0");
        assert_eq!(Json::Float(0.0123).compact(), "0.0123");
        assert_eq!(Json::Float(-1.5e-9).compact(), "-0.0000000015");
        assert_eq!(Json::Float(f64::NAN).compact(), "null");
        assert_eq!(Json::Float(f64::INFINITY).compact(), "null");
        assert_eq!(Json::Float(1e300).compact().parse::<f64>().unwrap(), 1e300);
    }

    #[test]
    fn objects_keep_order_and_nest() {
        let j = Json::object()
            .with("b", 1i64)
            .with("a", vec![Json::Null, Json::Bool(true)])
            .with("e", Json::object())
            .with("f", Vec::<Json>::new())
            .with("o", Option::<i64>::None);
        assert_eq!(
            j.compact(),
            "{\"b\":1,\"a\":[null,true],\"e\":{},\"f\":[],\"o\":null}"
        );
        assert_eq!(
            j.pretty(),
            "{\n  \"b\": 1,\n  \"a\": [\n    null,\n    true\n  ],\n  \"e\": {},\n  \"f\": [],\n  \"o\": null\n}\n"
        );
    }

    #[test]
    fn big_unsigned_does_not_wrap() {
        let big = Json::from(u64::MAX).compact();
        assert_eq!(big.parse::<f64>().unwrap(), u64::MAX as f64, "{big}");
        assert!(!big.starts_with('-'), "{big}");
        assert_eq!(Json::from(42u64).compact(), "42");
    }
}
