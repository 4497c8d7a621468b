//! What pandas records in a parquet footer (the `pandas` key/value entry, written by pyarrow's
//! `DataFrame.to_parquet`): which stored fields are the DataFrame's index, and each data column's original
//! label. A MultiIndex label such as `('feature', 'Mom 5')` is stored as the Python `str()` of a tuple of
//! strings; it is parsed here as that literal, never evaluated.

use crate::json::{self, Json};

/// The pandas view of a file's top-level fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PandasMetadata {
    /// Stored fields holding the DataFrame's index (a RangeIndex is not stored and does not appear).
    pub index_columns: Vec<String>,
    /// How many levels the column labels have (2 for RD-Agent's `('feature', name)`).
    pub column_levels: usize,
    /// Stored field name -> the label's levels (one entry for a flat label); `None` when pandas recorded no
    /// name or a name this reader cannot split into the declared levels.
    pub labels: Vec<(String, Option<Vec<String>>)>,
}

impl PandasMetadata {
    pub fn label_of(&self, field: &str) -> Option<&[String]> {
        self.labels
            .iter()
            .find(|(f, _)| f == field)
            .and_then(|(_, l)| l.as_deref())
    }
}

fn as_array(j: &Json) -> Option<&[Json]> {
    match j {
        Json::Array(items) => Some(items),
        _ => None,
    }
}

/// Parse the `pandas` metadata JSON (with rd-chain's strict reader).
pub fn parse(text: &str) -> Result<PandasMetadata, String> {
    let doc =
        json::parse(text).map_err(|e| format!("the pandas metadata is not valid JSON: {e}"))?;
    if !matches!(doc, Json::Object(_)) {
        return Err("the pandas metadata is not a JSON object".to_string());
    }
    let mut meta = PandasMetadata::default();
    if let Some(index) = doc.get("index_columns") {
        let Some(items) = as_array(index) else {
            return Err("the pandas metadata's index_columns is not a list".to_string());
        };
        // Strings name stored fields; objects describe a RangeIndex that is not stored.
        meta.index_columns = items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect();
    }
    meta.column_levels = match doc.get("column_indexes") {
        None => 1,
        Some(levels) => match as_array(levels) {
            Some(levels) => levels.len().max(1),
            None => return Err("the pandas metadata's column_indexes is not a list".to_string()),
        },
    };
    let Some(columns) = doc.get("columns").and_then(as_array) else {
        return Err("the pandas metadata has no list of columns".to_string());
    };
    for (i, c) in columns.iter().enumerate() {
        let name = c.get("name");
        // Old writers (pyarrow < 0.8) had no field_name: the stored field is then the name itself.
        let field = match c.get("field_name").or(name) {
            Some(Json::Str(s)) => s.clone(),
            _ => return Err(format!("pandas metadata column {i} has no field_name")),
        };
        let label = match name {
            Some(Json::Str(s)) if meta.column_levels > 1 => {
                parse_tuple_repr(s).filter(|l| l.len() == meta.column_levels)
            }
            Some(Json::Str(s)) => Some(vec![s.clone()]),
            _ => None,
        };
        meta.labels.push((field, label));
    }
    Ok(meta)
}

/// Parse Python's `repr` of a tuple of strings, e.g. `('feature', "it's")` or `('a',)`; None if the text is
/// anything else.
pub fn parse_tuple_repr(text: &str) -> Option<Vec<String>> {
    let mut chars = text.chars().peekable();
    if chars.next()? != '(' {
        return None;
    }
    let mut out = Vec::new();
    loop {
        match chars.peek()? {
            ')' => {
                chars.next();
                break;
            }
            '\'' | '"' => {}
            _ => return None,
        }
        out.push(parse_py_str(&mut chars)?);
        match chars.next()? {
            ',' => {
                if chars.peek() == Some(&' ') {
                    chars.next();
                }
            }
            ')' => break,
            _ => return None,
        }
    }
    if chars.next().is_some() || out.is_empty() {
        return None;
    }
    Some(out)
}

fn parse_py_str(chars: &mut std::iter::Peekable<std::str::Chars>) -> Option<String> {
    let quote = chars.next()?;
    let mut s = String::new();
    loop {
        let c = chars.next()?;
        if c == quote {
            return Some(s);
        }
        if c != '\\' {
            s.push(c);
            continue;
        }
        let hex = |chars: &mut std::iter::Peekable<std::str::Chars>, n: usize| -> Option<char> {
            let mut v: u32 = 0;
            for _ in 0..n {
                v = v * 16 + chars.next()?.to_digit(16)?;
            }
            char::from_u32(v)
        };
        match chars.next()? {
            '\\' => s.push('\\'),
            '\'' => s.push('\''),
            '"' => s.push('"'),
            'n' => s.push('\n'),
            'r' => s.push('\r'),
            't' => s.push('\t'),
            'x' => s.push(hex(chars, 2)?),
            'u' => s.push(hex(chars, 4)?),
            'U' => s.push(hex(chars, 8)?),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuple_reprs() {
        let v = |s: &[&str]| Some(s.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(
            parse_tuple_repr("('feature', 'Mom 5')"),
            v(&["feature", "Mom 5"])
        );
        assert_eq!(parse_tuple_repr("('a',)"), v(&["a"]));
        assert_eq!(
            parse_tuple_repr(r#"('feature', "it's")"#),
            v(&["feature", "it's"])
        );
        assert_eq!(
            parse_tuple_repr(r#"('a\\b', 'q\'\"', '\x07\u200b\U0001f600é')"#),
            v(&["a\\b", "q'\"", "\u{7}\u{200b}😀é"])
        );
        for bad in [
            "",
            "()",
            "('a'",
            "('a' 'b')",
            "['a']",
            "('a') x",
            "(1, 2)",
            "('\\q',)",
            "('a',,)",
        ] {
            assert_eq!(parse_tuple_repr(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn metadata_of_multiindex_columns() {
        let text = r#"{"index_columns": ["datetime", "instrument", {"kind": "range"}],
            "column_indexes": [{"name": null}, {"name": null}],
            "columns": [{"name": "('feature', 'A')", "field_name": "('feature', 'A')"},
                        {"name": "datetime", "field_name": "datetime"},
                        {"name": null, "field_name": "__index_level_0__"}]}"#;
        let m = parse(text).unwrap();
        assert_eq!(m.index_columns, ["datetime", "instrument"]);
        assert_eq!(m.column_levels, 2);
        assert_eq!(m.label_of("('feature', 'A')").unwrap(), ["feature", "A"]);
        // A level-1 name under 2 column levels is not a tuple: left unmapped rather than guessed.
        assert_eq!(m.label_of("datetime"), None);
        assert_eq!(m.label_of("__index_level_0__"), None);
    }

    #[test]
    fn bad_metadata_is_an_error() {
        assert!(parse("{").is_err());
        assert!(parse("[]").is_err());
        assert!(parse(r#"{"columns": 3}"#).is_err());
        assert!(parse(r#"{"columns": [{"name": 1}]}"#).is_err());
        assert!(parse(r#"{"columns": [], "index_columns": "x"}"#).is_err());
    }
}
