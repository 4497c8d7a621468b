//! Shared test support: pickles written by CPython (scripts/gen_plain_pickles.py, run once per test process),
//! a comparable tree form of decoded values (ours and serde-pickle's), and a deterministic PRNG.

use std::collections::HashMap;
use std::process::Command;
use std::sync::OnceLock;

use crate::pickle::{decode, Graph, Node, Options, PickleError, Value};

pub fn decode_default(data: &[u8]) -> Result<Graph, PickleError> {
    decode(data, &Options::default())
}

/// Decode input that must be valid; panics with the error otherwise.
pub fn ok(data: &[u8]) -> Graph {
    match decode_default(data) {
        Ok(g) => g,
        Err(e) => panic!("decode of {:?} failed: {e}", String::from_utf8_lossy(data)),
    }
}

/// Decode input that must be rejected.
pub fn err(data: &[u8]) -> PickleError {
    match decode_default(data) {
        Ok(g) => panic!(
            "decode of {:?} unexpectedly succeeded: {:?}",
            String::from_utf8_lossy(data),
            g.root
        ),
        Err(e) => e,
    }
}

/// Every case the generator writes, by name ("plain/ints.p3", "graph/selfref.p0", ...).
pub fn cpython_cases() -> &'static HashMap<String, Vec<u8>> {
    static CASES: OnceLock<HashMap<String, Vec<u8>>> = OnceLock::new();
    CASES.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/gen_plain_pickles.py");
        let out = Command::new("python3")
            .arg(script)
            .arg("--stream")
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run python3 {script}: {e} (python3 is needed by these tests)")
            });
        assert!(
            out.status.success(),
            "{script} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_stream(&out.stdout)
    })
}

pub fn case(name: &str) -> &'static [u8] {
    cpython_cases()
        .get(name)
        .unwrap_or_else(|| panic!("generator wrote no case {name}"))
}

fn parse_stream(mut data: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut cases = HashMap::new();
    while !data.is_empty() {
        let mut line = || {
            let end = data
                .iter()
                .position(|&b| b == b'\n')
                .expect("frame header line");
            let text = String::from_utf8(data[..end].to_vec()).expect("utf-8 header");
            data = &data[end + 1..];
            text
        };
        let name = line();
        let len: usize = line().parse().expect("frame length");
        cases.insert(name, data[..len].to_vec());
        data = &data[len..];
    }
    cases
}

/// A value as plain comparable data. Integers are decimal text so i64 and big ints compare alike; floats are
/// their bits (so -0.0 differs from 0.0 and every NaN is one NaN); sets and dicts are sorted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tree {
    None,
    Bool(bool),
    Int(String),
    Float(u64),
    Bytes(Vec<u8>),
    Str(String),
    List(Vec<Tree>),
    Tuple(Vec<Tree>),
    Set(Vec<Tree>),
    FrozenSet(Vec<Tree>),
    Dict(Vec<(Tree, Tree)>),
    /// `Node::Skipped`: a value `Options::skip_values_of` left out.
    Skipped,
}

pub fn float_tree(f: f64) -> Tree {
    Tree::Float(if f.is_nan() {
        f64::NAN.to_bits()
    } else {
        f.to_bits()
    })
}

fn sorted(mut v: Vec<Tree>) -> Vec<Tree> {
    v.sort();
    v
}

fn sorted_pairs(mut v: Vec<(Tree, Tree)>) -> Vec<(Tree, Tree)> {
    v.sort();
    v
}

/// serde-pickle's value as a tree.
pub fn serde_tree(v: &serde_pickle::Value) -> Tree {
    use serde_pickle::Value as S;
    match v {
        S::None => Tree::None,
        S::Bool(b) => Tree::Bool(*b),
        S::I64(i) => Tree::Int(i.to_string()),
        S::Int(i) => Tree::Int(i.to_string()),
        S::F64(f) => float_tree(*f),
        S::Bytes(b) => Tree::Bytes(b.clone()),
        S::String(s) => Tree::Str(s.clone()),
        S::List(items) => Tree::List(items.iter().map(serde_tree).collect()),
        S::Tuple(items) => Tree::Tuple(items.iter().map(serde_tree).collect()),
        S::Set(items) => Tree::Set(sorted(
            items
                .iter()
                .map(|h| serde_tree(&h.clone().into_value()))
                .collect(),
        )),
        S::FrozenSet(items) => Tree::FrozenSet(sorted(
            items
                .iter()
                .map(|h| serde_tree(&h.clone().into_value()))
                .collect(),
        )),
        S::Dict(map) => Tree::Dict(sorted_pairs(
            map.iter()
                .map(|(k, v)| (serde_tree(&k.clone().into_value()), serde_tree(v)))
                .collect(),
        )),
    }
}

/// Our decoded value as a tree, expanding shared nodes (plain data has no cycles; depth is capped anyway).
/// The reductions CPython uses for plain data at low protocols (`set([...])`, `frozenset([...])`,
/// `_codecs.encode(text, 'latin1')`, `bytes()`, `bytearray(...)`) are read as the values they build.
pub fn graph_tree(g: &Graph, v: &Value) -> Tree {
    tree_at(g, v, 0)
}

fn tree_at(g: &Graph, v: &Value, depth: usize) -> Tree {
    assert!(depth < 200, "value nested too deeply for a plain-data test");
    let sub = |x: &Value| tree_at(g, x, depth + 1);
    match v {
        Value::None => Tree::None,
        Value::Bool(b) => Tree::Bool(*b),
        Value::Int(i) => Tree::Int(i.to_string()),
        Value::BigInt(bytes) => Tree::Int(twos_complement_decimal(bytes)),
        Value::Float(f) => float_tree(*f),
        Value::Str(_) | Value::Short(_) => Tree::Str(v.as_str().unwrap_or_default().to_string()),
        Value::LongStr { .. } => {
            panic!("a str left in the input: compare trees of fully kept graphs")
        }
        Value::Bytes(blob) => Tree::Bytes(blob.data.as_deref().expect("blob kept").to_vec()),
        Value::Node(id) => match g.node(*id) {
            Node::List(items) => Tree::List(items.iter().map(sub).collect()),
            Node::Tuple(items) => Tree::Tuple(items.iter().map(sub).collect()),
            Node::Set(items) => Tree::Set(sorted(items.iter().map(sub).collect())),
            Node::FrozenSet(items) => Tree::FrozenSet(sorted(items.iter().map(sub).collect())),
            Node::Dict(pairs) => Tree::Dict(sorted_pairs(
                pairs.iter().map(|(k, v)| (sub(k), sub(v))).collect(),
            )),
            Node::ByteArray(blob) => Tree::Bytes(blob.data.as_deref().expect("blob kept").to_vec()),
            Node::Skipped => Tree::Skipped,
            Node::Global { module, name } => {
                panic!("unexpected global {module}.{name} in plain data")
            }
            Node::Object(obj) => {
                let class = g.class_of(v).expect("object with a global callable");
                let args: Vec<Tree> = obj.args.iter().map(sub).collect();
                match (class, args.as_slice()) {
                    ((_, "set"), [Tree::List(items)]) => Tree::Set(sorted(items.clone())),
                    ((_, "frozenset"), [Tree::List(items)]) => {
                        Tree::FrozenSet(sorted(items.clone()))
                    }
                    (("_codecs", "encode"), [Tree::Str(s), Tree::Str(_)])
                    | ((_, "bytearray"), [Tree::Str(s), Tree::Str(_)]) => Tree::Bytes(
                        s.chars()
                            .map(|c| u8::try_from(u32::from(c)).expect("latin-1"))
                            .collect(),
                    ),
                    ((_, "bytes" | "bytearray"), []) => Tree::Bytes(Vec::new()),
                    ((_, "bytearray"), [Tree::Bytes(b)]) => Tree::Bytes(b.clone()),
                    _ => panic!("unexpected object {class:?} with args {args:?} in plain data"),
                }
            }
        },
    }
}

/// Little-endian two's complement to decimal text (test-side reference, independent of the decoder).
pub fn twos_complement_decimal(bytes: &[u8]) -> String {
    let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
    let mut magnitude: Vec<u8> = bytes.to_vec();
    if negative {
        // Negate: invert and add one.
        let mut carry = 1u16;
        for b in magnitude.iter_mut() {
            let sum = u16::from(!*b) + carry;
            *b = sum as u8;
            carry = sum >> 8;
        }
    }
    // Repeated division by 10 over big-endian bytes.
    let mut be: Vec<u8> = magnitude
        .into_iter()
        .rev()
        .skip_while(|&b| b == 0)
        .collect();
    let mut digits = Vec::new();
    while !be.is_empty() {
        let mut rem = 0u16;
        for b in be.iter_mut() {
            let cur = (rem << 8) | u16::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
        be = be.into_iter().skip_while(|&b| b == 0).collect();
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    if negative {
        digits.push(b'-');
    }
    digits.reverse();
    String::from_utf8(digits).expect("ascii digits")
}

/// xorshift64*: deterministic, good enough to generate inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Join path segments like `os.path.join` of a POSIX path (an absolute segment restarts the path).
pub fn join_posix(parts: &[&str]) -> String {
    let mut out = String::new();
    for part in parts {
        if part.starts_with('/') || out.is_empty() {
            out = part.to_string();
        } else {
            if !out.ends_with('/') {
                out.push('/');
            }
            out.push_str(part);
        }
    }
    out
}
