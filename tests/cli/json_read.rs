//! The tests' view of JSON: rd-chain's strict reader (`rd_chain::json::parse`) with accessors that panic loudly,
//! for rd-chain's output, the fixture generator's expected.json and the simulated rdagent's records.
#![allow(dead_code)]

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    /// A field of an object (panics with the available keys if missing: tests want loud failures).
    pub fn get(&self, key: &str) -> &J {
        match self {
            J::Obj(fields) => fields
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .unwrap_or_else(|| {
                    panic!(
                        "no key {key:?} in object with keys {:?}",
                        fields.iter().map(|(k, _)| k).collect::<Vec<_>>()
                    )
                }),
            other => panic!("get({key:?}) on a non-object: {other:?}"),
        }
    }

    pub fn opt(&self, key: &str) -> Option<&J> {
        match self {
            J::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn str(&self) -> &str {
        match self {
            J::Str(s) => s,
            other => panic!("expected a string, got {other:?}"),
        }
    }

    pub fn num(&self) -> f64 {
        match self {
            J::Num(n) => *n,
            other => panic!("expected a number, got {other:?}"),
        }
    }

    pub fn int(&self) -> i64 {
        let n = self.num();
        assert_eq!(n, n.trunc(), "expected an integer, got {n}");
        n as i64
    }

    pub fn bool(&self) -> bool {
        match self {
            J::Bool(b) => *b,
            other => panic!("expected a bool, got {other:?}"),
        }
    }

    pub fn arr(&self) -> &[J] {
        match self {
            J::Arr(a) => a,
            other => panic!("expected an array, got {other:?}"),
        }
    }

    pub fn obj(&self) -> BTreeMap<&str, &J> {
        match self {
            J::Obj(f) => f.iter().map(|(k, v)| (k.as_str(), v)).collect(),
            other => panic!("expected an object, got {other:?}"),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, J::Null)
    }
}

/// rd-chain's own strict reader, its values turned into `J` (numbers as f64) for the tests' accessors.
pub fn parse(text: &str) -> Result<J, String> {
    rd_chain::json::parse(text).map(J::from)
}

impl From<rd_chain::json::Json> for J {
    fn from(v: rd_chain::json::Json) -> J {
        use rd_chain::json::Json;
        match v {
            Json::Null => J::Null,
            Json::Bool(b) => J::Bool(b),
            Json::Int(i) => J::Num(i as f64),
            Json::Float(f) => J::Num(f),
            Json::Str(s) => J::Str(s),
            Json::Array(a) => J::Arr(a.into_iter().map(J::from).collect()),
            Json::Object(f) => J::Obj(f.into_iter().map(|(k, v)| (k, J::from(v))).collect()),
        }
    }
}

#[test]
fn json_reader_parses_and_rejects() {
    let v = parse(r#" {"a": [1, -2.5e3, true, null, "x\n\u00e9\ud83d\ude00"], "b": {}} "#).unwrap();
    assert_eq!(v.get("a").arr()[1].num(), -2500.0);
    assert_eq!(v.get("a").arr()[4].str(), "x\né😀");
    assert!(v.get("b").obj().is_empty());
    for bad in [
        "",
        "{",
        "[1,]",
        "{\"a\" 1}",
        "01",
        "\"\u{1}\"",
        "[1] x",
        "nul",
    ] {
        assert!(parse(bad).is_err(), "{bad:?} should not parse");
    }
}
