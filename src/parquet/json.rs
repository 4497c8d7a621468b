//! A small strict JSON reader (RFC 8259) for the `pandas` key of a parquet footer. Private to the parquet
//! reader: rd-chain otherwise only writes JSON. Bounded: nesting deeper than `MAX_DEPTH` is refused, and
//! nothing is allocated beyond what the input text holds.

/// Deepest array/object nesting accepted (pandas metadata nests 4 levels).
const MAX_DEPTH: usize = 128;

#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// A field of an object (the first one, if a key repeats).
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Arr(items) => Some(items),
            _ => None,
        }
    }
}

/// Parse one JSON document (surrounding whitespace allowed, nothing else). The error names the byte offset.
pub fn parse(text: &str) -> Result<Json, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    p.ws();
    let v = p.value()?;
    p.ws();
    if p.pos != p.s.len() {
        return Err(p.msg("unexpected text after the JSON value"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn msg(&self, what: &str) -> String {
        format!("{what} at byte {}", self.pos)
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.pos) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, lit: &[u8]) -> bool {
        if self.s[self.pos..].starts_with(lit) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        match self.s.get(self.pos) {
            None => Err(self.msg("the JSON ends where a value should be")),
            Some(b'{') => self.container(true),
            Some(b'[') => self.container(false),
            Some(b'"') => self.string().map(Json::Str),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => {
                if self.eat(b"null") {
                    Ok(Json::Null)
                } else if self.eat(b"true") {
                    Ok(Json::Bool(true))
                } else if self.eat(b"false") {
                    Ok(Json::Bool(false))
                } else {
                    Err(self.msg("not a JSON value"))
                }
            }
        }
    }

    fn container(&mut self, object: bool) -> Result<Json, String> {
        if self.depth >= MAX_DEPTH {
            return Err(self.msg(&format!("JSON nests deeper than {MAX_DEPTH} levels")));
        }
        self.depth += 1;
        self.pos += 1;
        let close = if object { b'}' } else { b']' };
        let mut fields = Vec::new();
        let mut items = Vec::new();
        self.ws();
        if self.s.get(self.pos) == Some(&close) {
            self.pos += 1;
        } else {
            loop {
                self.ws();
                if object {
                    if self.s.get(self.pos) != Some(&b'"') {
                        return Err(self.msg("expected an object key"));
                    }
                    let key = self.string()?;
                    self.ws();
                    if !self.eat(b":") {
                        return Err(self.msg("expected ':'"));
                    }
                    self.ws();
                    fields.push((key, self.value()?));
                } else {
                    items.push(self.value()?);
                }
                self.ws();
                if self.eat(b",") {
                    continue;
                }
                if self.s.get(self.pos) == Some(&close) {
                    self.pos += 1;
                    break;
                }
                return Err(self.msg("expected ',' or the end of the container"));
            }
        }
        self.depth -= 1;
        Ok(if object {
            Json::Obj(fields)
        } else {
            Json::Arr(items)
        })
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.pos;
        self.eat(b"-");
        let digits = |p: &mut Self| {
            let s = p.pos;
            while let Some(b'0'..=b'9') = p.s.get(p.pos) {
                p.pos += 1;
            }
            p.pos - s
        };
        if self.s.get(self.pos) == Some(&b'0') {
            self.pos += 1;
        } else if digits(self) == 0 {
            return Err(self.msg("a number without digits"));
        }
        if self.eat(b".") && digits(self) == 0 {
            return Err(self.msg("a number without digits after '.'"));
        }
        if let Some(b'e' | b'E') = self.s.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.s.get(self.pos) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(self.msg("a number without exponent digits"));
            }
        }
        let text =
            std::str::from_utf8(&self.s[start..self.pos]).map_err(|_| self.msg("bad number"))?;
        text.parse::<f64>()
            .map(Json::Num)
            .map_err(|_| self.msg("bad number"))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let Some(h) = self.s.get(self.pos..self.pos + 4) else {
            return Err(self.msg("a \\u escape with fewer than 4 hex digits"));
        };
        let text = std::str::from_utf8(h).map_err(|_| self.msg("a bad \\u escape"))?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.msg("a bad \\u escape"));
        }
        self.pos += 4;
        u32::from_str_radix(text, 16).map_err(|_| self.msg("a bad \\u escape"))
    }

    fn string(&mut self) -> Result<String, String> {
        self.pos += 1; // the opening quote
        let mut out = String::new();
        loop {
            let start = self.pos;
            while let Some(&b) = self.s.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // The input is a &str and we stop only at ASCII bytes, so this slice is valid UTF-8.
            out.push_str(
                std::str::from_utf8(&self.s[start..self.pos]).map_err(|_| self.msg("bad UTF-8"))?,
            );
            match self.s.get(self.pos) {
                None => return Err(self.msg("an unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let Some(&e) = self.s.get(self.pos) else {
                        return Err(self.msg("an unterminated escape"));
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let c = if (0xd800..0xdc00).contains(&hi) {
                                if !self.eat(b"\\u") {
                                    return Err(self.msg("a lone high surrogate"));
                                }
                                let lo = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&lo) {
                                    return Err(self.msg("a high surrogate without a low one"));
                                }
                                0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                            } else if (0xdc00..0xe000).contains(&hi) {
                                return Err(self.msg("a lone low surrogate"));
                            } else {
                                hi
                            };
                            out.push(
                                char::from_u32(c).ok_or_else(|| self.msg("a bad \\u escape"))?,
                            );
                        }
                        _ => return Err(self.msg("an unknown escape")),
                    }
                }
                Some(_) => return Err(self.msg("a control character inside a string")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documents() {
        let v = parse(r#" {"a": [1, -2.5e3, true, false, null], "b": "x\"\u00e9\ud83d\ude00\n"} "#)
            .unwrap();
        assert_eq!(
            v.get("a").unwrap().as_array().unwrap(),
            &[
                Json::Num(1.0),
                Json::Num(-2500.0),
                Json::Bool(true),
                Json::Bool(false),
                Json::Null
            ]
        );
        assert_eq!(v.get("b").unwrap().as_str(), Some("x\"é😀\n"));
        assert_eq!(parse("[]").unwrap(), Json::Arr(vec![]));
        assert_eq!(parse("{}").unwrap(), Json::Obj(vec![]));
    }

    #[test]
    fn rejects_what_rfc_8259_rejects() {
        for bad in [
            "",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "[1 2]",
            "{'a':1}",
            "\"\t\"",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "nul",
            "[1] x",
            "{\"a\" 1}",
            "[",
            "\"abc",
            "NaN",
            "+1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = "[".repeat(100_000);
        assert!(parse(&deep).unwrap_err().contains("deeper"));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }
}
