//! The few numpy shapes rd-chain reads out of a decoded pickle: byte payloads, dtypes, 1-D arrays and scalars.
//!
//! Accepts what several numpy and pickle versions write (`numpy.core` and `numpy._core`, `_reconstruct` + BUILD
//! and protocol 5's `_frombuffer`, bytes, bytearray and protocol 2's `_codecs.encode(str, 'latin1')`), and
//! answers `None` for anything else rather than guessing. Never interprets a buffer under a dtype it has not
//! checked.

use std::borrow::Cow;

use crate::pickle::{Graph, Node, Value};
use crate::work;

/// The longest protocol-2 latin-1 string turned back into bytes (metrics are tiny; numpy blobs are not, and the
/// session reader keeps real bytes payloads only up to 4 KiB).
const MAX_LATIN1_BYTES: usize = 64 * 1024;
/// How many `bytes(bytes(...))` / `bytearray(...)` wrappers are looked through (writers use one at most).
const MAX_WRAPPERS: usize = 4;
/// The most dimensions a shape may have (numpy's own limit is 64).
const MAX_DIMS: usize = 64;

/// A numpy dtype as pickled: `numpy.dtype(code, align, copy)` + BUILD(state) whose second field is the byte order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dtype<'g> {
    /// `f8`, `O8`, `b1`, `<U5`, ...
    pub code: &'g str,
    /// `<`, `>`, `|` or `=`; `None` when the state was missing.
    pub byte_order: Option<&'g str>,
}

impl Dtype<'_> {
    /// Little-endian IEEE 754 double: exactly `f8` with byte order `<`.
    pub fn is_le_f64(&self) -> bool {
        self.code == "f8" && self.byte_order == Some("<")
    }

    /// Python objects (`O8`, or `O` / `O4` on 32-bit builds).
    pub fn is_object(&self) -> bool {
        matches!(self.code, "O" | "O4" | "O8")
    }
}

/// The content of a 1-D numpy array.
#[derive(Clone, Debug, PartialEq)]
pub enum ArrayData<'g> {
    /// Raw buffer (numeric dtypes).
    Raw(Cow<'g, [u8]>),
    /// Python objects (object dtype: the BUILD state holds a list).
    Objects(&'g [Value]),
}

/// A numpy array as pickled.
#[derive(Clone, Debug, PartialEq)]
pub struct NdArray<'g> {
    pub dtype: Dtype<'g>,
    pub shape: Vec<usize>,
    pub data: ArrayData<'g>,
}

/// True when `value` is a global (or an object made by one) from numpy named `name`.
fn is_numpy_callable(graph: &Graph, value: &Value, name: &str) -> bool {
    matches!(graph.class_of(value), Some((m, n)) if n == name && (m == "numpy" || m.starts_with("numpy.")))
}

/// The bytes a value holds: `bytes`, `bytearray`, or protocol 2's `_codecs.encode(s, 'latin1')` /
/// `bytearray(s, 'latin-1')` / `bytes()`. `None` when the payload was dropped by the decoder.
pub fn bytes_of<'g>(graph: &'g Graph, value: &'g Value) -> Option<Cow<'g, [u8]>> {
    bytes_at_most(graph, value, MAX_LATIN1_BYTES)
}

/// `bytes_of`, or `None` without converting anything when a latin-1 text holds more than `max` bytes. Looks
/// through at most `MAX_WRAPPERS` nested `bytes(...)`/`bytearray(...)` calls (no recursion on hostile nesting).
pub fn bytes_at_most<'g>(graph: &'g Graph, value: &'g Value, max: usize) -> Option<Cow<'g, [u8]>> {
    let mut value = value;
    for _ in 0..=MAX_WRAPPERS {
        let obj = match value {
            Value::Bytes(blob) => return blob.data.as_deref().map(Cow::Borrowed),
            Value::Node(_) => match graph.deref(value)? {
                Node::ByteArray(blob) => return blob.data.as_deref().map(Cow::Borrowed),
                Node::Object(obj) => obj,
                _ => return None,
            },
            _ => return None,
        };
        let (module, name) = graph.class_of(value)?;
        let known = matches!(
            (module, name),
            ("_codecs", "encode")
                | ("codecs", "encode")
                | ("builtins" | "__builtin__", "bytearray" | "bytes")
        );
        if !known {
            return None;
        }
        match obj.args {
            [] => return Some(Cow::Owned(Vec::new())),
            [text, encoding]
                if matches!(encoding.as_str(), Some("latin1" | "latin-1" | "iso-8859-1"))
                    && text.as_str().is_some() =>
            {
                let text = text.as_str().unwrap_or_default();
                // A latin-1 char is at most 2 bytes of UTF-8: longer text cannot fit `max` bytes.
                if text.len() > 2 * max {
                    return None;
                }
                return latin1_bytes(text).map(Cow::Owned);
            }
            [inner @ (Value::Bytes(_) | Value::Node(_))]
                if name == "bytearray" || name == "bytes" =>
            {
                value = inner;
            }
            _ => return None,
        }
    }
    None
}

fn latin1_bytes(text: &str) -> Option<Vec<u8>> {
    if text.len() > 2 * MAX_LATIN1_BYTES {
        return None;
    }
    work::add(text.len());
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect()
}

/// A pickled `numpy.dtype`.
pub fn dtype<'g>(graph: &'g Graph, value: &'g Value) -> Option<Dtype<'g>> {
    let (module, name) = graph.class_of(value)?;
    if !(module == "numpy" || module.starts_with("numpy."))
        || !(name == "dtype" || name.ends_with("DType"))
    {
        return None;
    }
    let obj = graph.object(value)?;
    let code = obj.args.first()?.as_str()?;
    let byte_order = obj
        .state
        .as_ref()
        .and_then(|state| graph.items(state))
        .and_then(|fields| fields.get(1))
        .and_then(Value::as_str);
    Some(Dtype { code, byte_order })
}

fn shape_of(graph: &Graph, value: &Value) -> Option<Vec<usize>> {
    match value {
        Value::Int(n) => usize::try_from(*n).ok().map(|n| vec![n]),
        _ => graph
            .items(value)
            .filter(|dims| dims.len() <= MAX_DIMS)?
            .iter()
            .map(|v| v.as_i64().and_then(|n| usize::try_from(n).ok()))
            .collect(),
    }
}

/// A pickled numpy array: `_reconstruct(ndarray, (0,), b'b')` + BUILD((version, shape, dtype, fortran, data)),
/// or protocol 5's `_frombuffer(buffer, dtype, shape, order)`.
pub fn ndarray<'g>(graph: &'g Graph, value: &'g Value) -> Option<NdArray<'g>> {
    let obj = graph.object(value)?;
    if is_numpy_callable(graph, value, "_reconstruct") {
        let state = graph.items(obj.state.as_ref()?)?;
        // (version, shape, dtype, is_fortran, data); very old numpy leaves the version out.
        let fields = match state.len() {
            5 => &state[1..],
            4 => state,
            _ => return None,
        };
        let shape = shape_of(graph, &fields[0])?;
        let dtype = dtype(graph, &fields[1])?;
        let data = &fields[3];
        let data = if dtype.is_object() {
            match graph.deref(data)? {
                Node::List(items) => ArrayData::Objects(items),
                _ => return None,
            }
        } else {
            ArrayData::Raw(bytes_of(graph, data)?)
        };
        return Some(NdArray { dtype, shape, data });
    }
    if is_numpy_callable(graph, value, "_frombuffer") {
        let [buffer, dtype_value, shape, ..] = obj.args else {
            return None;
        };
        return Some(NdArray {
            dtype: dtype(graph, dtype_value)?,
            shape: shape_of(graph, shape)?,
            data: ArrayData::Raw(bytes_of(graph, buffer)?),
        });
    }
    None
}

/// The values of a 1-D little-endian float64 array; `None` for any other dtype, shape or a size mismatch.
pub fn f64_vector(graph: &Graph, value: &Value) -> Option<Vec<f64>> {
    let array = ndarray(graph, value)?;
    if !array.dtype.is_le_f64() {
        return None;
    }
    let [n] = array.shape.as_slice() else {
        return None;
    };
    let ArrayData::Raw(raw) = &array.data else {
        return None;
    };
    if raw.len() != n.checked_mul(8)? {
        return None;
    }
    Some(
        raw.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("chunks of 8")))
            .collect(),
    )
}

/// The str elements of a 1-D object array; `None` if any element is not a str.
pub fn str_vector<'g>(graph: &'g Graph, value: &'g Value) -> Option<Vec<&'g str>> {
    let array = ndarray(graph, value)?;
    let ArrayData::Objects(items) = array.data else {
        return None;
    };
    if array.shape.len() != 1 || array.shape[0] != items.len() {
        return None;
    }
    work::add(items.len());
    items.iter().map(Value::as_str).collect()
}

/// A numpy scalar bool (`numpy.bool_`), pickled as `scalar(dtype('b1'), b'\x00' | b'\x01')`.
pub fn scalar_bool(graph: &Graph, value: &Value) -> Option<bool> {
    if !is_numpy_callable(graph, value, "scalar") {
        return None;
    }
    let obj = graph.object(value)?;
    let [dtype_value, payload, ..] = obj.args else {
        return None;
    };
    if dtype(graph, dtype_value)?.code != "b1" {
        return None;
    }
    match bytes_at_most(graph, payload, 1)?.as_ref() {
        [0] => Some(false),
        [1] => Some(true),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod build {
    //! A tiny builder for hand-made graphs in unit tests.

    use std::rc::Rc;

    use crate::pickle::{Blob, BuildKind, Graph, ObjectParts, Value};

    #[derive(Default)]
    pub struct GraphBuilder {
        pub graph: Graph,
    }

    impl GraphBuilder {
        pub fn global(&mut self, module: &str, name: &str) -> Value {
            self.graph.add_global(module, name)
        }

        pub fn object(
            &mut self,
            kind: BuildKind,
            callable: Value,
            args: Vec<Value>,
            state: Option<Value>,
        ) -> Value {
            self.graph.add_object(ObjectParts {
                state,
                ..ObjectParts::new(kind, callable, args)
            })
        }

        pub fn tuple(&mut self, items: Vec<Value>) -> Value {
            self.graph.add_tuple(items)
        }

        pub fn list(&mut self, items: Vec<Value>) -> Value {
            self.graph.add_list(items)
        }

        pub fn dict(&mut self, pairs: Vec<(&str, Value)>) -> Value {
            self.dict_of(pairs.into_iter().map(|(k, v)| (s(k), v)).collect())
        }

        /// A dict with keys of any kind.
        pub fn dict_of(&mut self, pairs: Vec<(Value, Value)>) -> Value {
            self.graph.add_dict(pairs)
        }

        /// `cls()` + BUILD(state dict).
        pub fn instance(&mut self, module: &str, name: &str, attrs: Vec<(&str, Value)>) -> Value {
            let cls = self.global(module, name);
            let state = self.dict(attrs);
            self.object(BuildKind::NewObj, cls, Vec::new(), Some(state))
        }

        pub fn dtype(&mut self, module: &str, code: &str, order: &str) -> Value {
            let cls = self.global(module, "dtype");
            let state = self.tuple(vec![
                Value::Int(3),
                s(order),
                Value::None,
                Value::None,
                Value::None,
                Value::Int(-1),
                Value::Int(-1),
                Value::Int(0),
            ]);
            self.object(
                BuildKind::Reduce,
                cls,
                vec![s(code), Value::Bool(false), Value::Bool(true)],
                Some(state),
            )
        }

        /// `_reconstruct(ndarray, (0,), b'b')` + BUILD((1, (n,), dtype, False, data)).
        pub fn reconstruct(&mut self, module: &str, dtype: Value, n: usize, data: Value) -> Value {
            let func = self.global(module, "_reconstruct");
            let ndarray = self.global("numpy", "ndarray");
            let zero = self.tuple(vec![Value::Int(0)]);
            let shape = self.tuple(vec![Value::Int(n as i64)]);
            let state = self.tuple(vec![Value::Int(1), shape, dtype, Value::Bool(false), data]);
            self.object(
                BuildKind::Reduce,
                func,
                vec![ndarray, zero, bytes(b"b")],
                Some(state),
            )
        }

        /// `_frombuffer(buffer, dtype, (n,), 'C')`.
        pub fn frombuffer(&mut self, module: &str, buffer: Value, dtype: Value, n: usize) -> Value {
            let func = self.global(module, "_frombuffer");
            let shape = self.tuple(vec![Value::Int(n as i64)]);
            self.object(
                BuildKind::Reduce,
                func,
                vec![buffer, dtype, shape, s("C")],
                None,
            )
        }

        pub fn bytearray(&mut self, data: &[u8]) -> Value {
            self.graph.add_byte_array(Blob {
                len: data.len(),
                data: Some(Rc::from(data)),
            })
        }

        /// Protocol 2's spelling of bytes: `_codecs.encode(latin1 text, 'latin1')`.
        pub fn latin1(&mut self, data: &[u8]) -> Value {
            let func = self.global("_codecs", "encode");
            let text: String = data.iter().map(|b| char::from(*b)).collect();
            self.object(BuildKind::Reduce, func, vec![s(&text), s("latin1")], None)
        }
    }

    pub fn s(text: &str) -> Value {
        Value::str(text)
    }

    pub fn bytes(data: &[u8]) -> Value {
        Value::Bytes(Rc::new(Blob {
            len: data.len(),
            data: Some(Rc::from(data)),
        }))
    }

    pub fn dropped_bytes(len: usize) -> Value {
        Value::Bytes(Rc::new(Blob { len, data: None }))
    }

    pub fn le_f64(values: &[f64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;
    use crate::pickle::BuildKind;

    #[test]
    fn bytes_wrappers_nested_deeper_than_any_stack_are_not_followed() {
        // bytearray(bytearray(...(b'\x01')...)) 300 000 deep: no recursion, no answer past a few wrappers.
        let mut b = GraphBuilder::default();
        let cls = b.global("builtins", "bytearray");
        let mut value = bytes(b"\x01");
        for _ in 0..300_000 {
            value = b.object(BuildKind::Reduce, cls.clone(), vec![value], None);
        }
        assert_eq!(bytes_of(&b.graph, &value), None);
        let mut b = GraphBuilder::default();
        let cls = b.global("builtins", "bytearray");
        let once = b.object(BuildKind::Reduce, cls, vec![bytes(b"\x01")], None);
        assert_eq!(bytes_of(&b.graph, &once).as_deref(), Some(&b"\x01"[..]));
    }

    #[test]
    fn reads_f64_vectors_from_every_array_spelling() {
        let raw = le_f64(&[0.5, -1.25, 3.0]);
        for module in ["numpy.core.multiarray", "numpy._core.multiarray"] {
            let mut b = GraphBuilder::default();
            let dt = b.dtype("numpy", "f8", "<");
            let arr = b.reconstruct(module, dt, 3, bytes(&raw));
            assert_eq!(
                f64_vector(&b.graph, &arr),
                Some(vec![0.5, -1.25, 3.0]),
                "{module}"
            );
        }
        // Protocol 2: the buffer is a latin-1 str.
        let mut b = GraphBuilder::default();
        let dt = b.dtype("numpy", "f8", "<");
        let payload = b.latin1(&raw);
        let arr = b.reconstruct("numpy.core.multiarray", dt, 3, payload);
        assert_eq!(f64_vector(&b.graph, &arr), Some(vec![0.5, -1.25, 3.0]));
        // Protocol 5: _frombuffer with a bytearray or bytes.
        for module in ["numpy.core.numeric", "numpy._core.numeric"] {
            let mut b = GraphBuilder::default();
            let dt = b.dtype("numpy", "f8", "<");
            let buf = b.bytearray(&raw);
            let arr = b.frombuffer(module, buf, dt, 3);
            assert_eq!(f64_vector(&b.graph, &arr), Some(vec![0.5, -1.25, 3.0]));
            let dt = b.dtype("numpy", "f8", "<");
            let arr = b.frombuffer(module, bytes(&raw), dt, 3);
            assert_eq!(f64_vector(&b.graph, &arr), Some(vec![0.5, -1.25, 3.0]));
        }
    }

    #[test]
    fn refuses_anything_but_little_endian_f8_of_the_right_size() {
        let raw = le_f64(&[1.0, 2.0]);
        let cases: &[(&str, &str, usize, Vec<u8>)] = &[
            ("f8", ">", 2, raw.clone()),
            ("f4", "<", 4, raw.clone()),
            ("i8", "<", 2, raw.clone()),
            ("f8", "=", 2, raw.clone()),
            ("f8", "<", 3, raw.clone()),
            ("f8", "<", 2, raw[..15].to_vec()),
        ];
        for (code, order, n, data) in cases {
            let mut b = GraphBuilder::default();
            let dt = b.dtype("numpy", code, order);
            let arr = b.reconstruct("numpy.core.multiarray", dt, *n, bytes(data));
            assert_eq!(f64_vector(&b.graph, &arr), None, "{code} {order} {n}");
        }
        // A dropped payload is not data.
        let mut b = GraphBuilder::default();
        let dt = b.dtype("numpy", "f8", "<");
        let arr = b.reconstruct("numpy.core.multiarray", dt, 2, dropped_bytes(16));
        assert_eq!(f64_vector(&b.graph, &arr), None);
        // Not numpy at all.
        let mut b = GraphBuilder::default();
        let dt = b.dtype("numpy", "f8", "<");
        let arr = b.reconstruct("mynumpy.core", dt, 2, bytes(&raw));
        assert_eq!(f64_vector(&b.graph, &arr), None);
        assert_eq!(f64_vector(&b.graph, &Value::Float(1.0)), None);
    }

    #[test]
    fn reads_object_string_arrays_only_when_every_element_is_a_str() {
        let mut b = GraphBuilder::default();
        let dt = b.dtype("numpy", "O8", "|");
        let items = b.list(vec![s("IC"), s("ICIR")]);
        let arr = b.reconstruct("numpy._core.multiarray", dt, 2, items);
        assert_eq!(str_vector(&b.graph, &arr), Some(vec!["IC", "ICIR"]));
        let dt = b.dtype("numpy", "O8", "|");
        let items = b.list(vec![s("IC"), Value::Int(1)]);
        let arr = b.reconstruct("numpy._core.multiarray", dt, 2, items);
        assert_eq!(str_vector(&b.graph, &arr), None);
        let dt = b.dtype("numpy", "O8", "|");
        let items = b.list(vec![s("IC")]);
        let arr = b.reconstruct("numpy._core.multiarray", dt, 2, items);
        assert_eq!(
            str_vector(&b.graph, &arr),
            None,
            "shape and length disagree"
        );
    }

    #[test]
    fn reads_numpy_bools() {
        for (payload, expected) in [
            (&[1u8][..], Some(true)),
            (&[0u8][..], Some(false)),
            (&[2u8][..], None),
        ] {
            let mut b = GraphBuilder::default();
            let dt = b.dtype("numpy", "b1", "|");
            let func = b.global("numpy.core.multiarray", "scalar");
            let v = b.object(BuildKind::Reduce, func, vec![dt, bytes(payload)], None);
            assert_eq!(scalar_bool(&b.graph, &v), expected);
        }
        let mut b = GraphBuilder::default();
        let dt = b.dtype("numpy", "i8", "<");
        let func = b.global("numpy._core.multiarray", "scalar");
        let v = b.object(
            BuildKind::Reduce,
            func,
            vec![dt, bytes(&[1, 0, 0, 0, 0, 0, 0, 0])],
            None,
        );
        assert_eq!(scalar_bool(&b.graph, &v), None);
    }

    #[test]
    fn latin1_strings_out_of_range_are_not_bytes() {
        let mut b = GraphBuilder::default();
        let func = b.global("_codecs", "encode");
        let v = b.object(
            BuildKind::Reduce,
            func,
            vec![s("a\u{100}"), s("latin1")],
            None,
        );
        assert_eq!(bytes_of(&b.graph, &v), None);
        let func = b.global("_codecs", "encode");
        let v = b.object(BuildKind::Reduce, func, vec![s("ab"), s("utf-8")], None);
        assert_eq!(bytes_of(&b.graph, &v), None);
        let func = b.global("__builtin__", "bytes");
        let v = b.object(BuildKind::Reduce, func, vec![], None);
        assert_eq!(bytes_of(&b.graph, &v).as_deref(), Some(&[][..]));
    }
}
