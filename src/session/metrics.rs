//! An experiment's `result` (a pandas float Series of backtest metrics: IC, ICIR, Rank IC, annualized return,
//! ...) as (label, value) pairs.
//!
//! Liberal in the pandas layouts it accepts (`_mgr` or `_data`; an object-ndarray index, pandas 3's
//! `StringArray`, or a pyarrow-backed `ArrowStringArray`), strict about the values: only a 1-D little-endian
//! float64 block whose length matches the string labels becomes metrics. Anything else is `None`, never a guess.
//!
//! Every label and value copied out of the graph is charged to a `CopyBudget` before it is copied, so labels
//! that all reference one huge memoized string cannot make a small snapshot cost gigabytes; the result is
//! shared (`Metrics` is reference-counted), so entries reading the same Series hold one copy.

use std::ops::Deref;
use std::sync::Arc;

use crate::pickle::{Graph, Node, Value};
use crate::work;

use super::numpy::{bytes_of, f64_vector, ndarray, str_vector, ArrayData};

/// The metrics a pandas Series holds, in index order. Cloning shares them.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics(Arc<[(String, f64)]>);

impl Deref for Metrics {
    type Target = [(String, f64)];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'a> IntoIterator for &'a Metrics {
    type Item = &'a (String, f64);
    type IntoIter = std::slice::Iter<'a, (String, f64)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl From<Vec<(String, f64)>> for Metrics {
    fn from(pairs: Vec<(String, f64)>) -> Self {
        Metrics(pairs.into())
    }
}

/// How many bytes may still be copied out of a graph into what is read from it (history text, metric labels
/// and values). Exhausting it means the input references a few objects far more often than any real snapshot
/// does; the reader then gives up on the input instead of amplifying it.
#[derive(Clone, Debug)]
pub struct CopyBudget {
    left: usize,
    limit: usize,
}

/// The budget ran out (see `CopyBudget`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exhausted {
    pub limit: usize,
}

impl CopyBudget {
    /// Bytes that may be copied out of any graph, however small.
    pub const ALLOWANCE: usize = 64 * 1024;
    /// Bytes that may be copied per byte of pickle input.
    pub const PER_INPUT_BYTE: usize = 8;

    /// The budget for a graph decoded from `input_len` bytes.
    pub fn for_input(input_len: usize) -> CopyBudget {
        let limit = input_len
            .saturating_mul(Self::PER_INPUT_BYTE)
            .saturating_add(Self::ALLOWANCE);
        CopyBudget { left: limit, limit }
    }

    pub fn unlimited() -> CopyBudget {
        CopyBudget {
            left: usize::MAX,
            limit: usize::MAX,
        }
    }

    /// Account for `n` bytes about to be copied.
    pub fn charge(&mut self, n: usize) -> Result<(), Exhausted> {
        work::add(n);
        match self.left.checked_sub(n) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => {
                self.left = 0;
                Err(Exhausted { limit: self.limit })
            }
        }
    }
}

/// Per label: its bytes plus this, for the `String` and the pair around them.
const LABEL_OVERHEAD: usize = 32;

fn is_pandas(graph: &Graph, value: &Value, names: &[&str]) -> bool {
    matches!(graph.class_of(value), Some((m, n)) if (m == "pandas" || m.starts_with("pandas.")) && names.contains(&n))
}

/// The metrics of a pickled `pandas.Series` of float64 with str labels; `None` for anything else.
pub fn series_metrics(graph: &Graph, value: &Value) -> Option<Metrics> {
    series_metrics_within(graph, value, &mut CopyBudget::unlimited())
        .ok()
        .flatten()
}

/// `series_metrics`, charging what it copies to `budget`.
pub fn series_metrics_within(
    graph: &Graph,
    value: &Value,
    budget: &mut CopyBudget,
) -> Result<Option<Metrics>, Exhausted> {
    if !is_pandas(graph, value, &["Series"]) {
        return Ok(None);
    }
    let Some(manager) = graph
        .attr(value, "_mgr")
        .or_else(|| graph.attr(value, "_data"))
    else {
        return Ok(None);
    };
    let Some((index, values)) = manager_parts(graph, manager) else {
        return Ok(None);
    };
    let Some(labels) = index_labels(graph, index, budget)? else {
        return Ok(None);
    };
    // Charged before it is converted (whether it turns out to be float64 or not).
    if let Some(ArrayData::Raw(raw)) = ndarray(graph, values).map(|a| a.data) {
        budget.charge(raw.len())?;
    }
    let Some(numbers) = f64_vector(graph, values) else {
        return Ok(None);
    };
    if labels.len() != numbers.len() {
        return Ok(None);
    }
    Ok(Some(Metrics::from(
        labels.into_iter().zip(numbers).collect::<Vec<_>>(),
    )))
}

/// The index and the values array of a `SingleBlockManager`, whose BUILD state is
/// `(axes, block values, block items, {"0.14.1": {"axes": ..., "blocks": [{"values": ...}]}})`.
fn manager_parts<'g>(graph: &'g Graph, manager: &'g Value) -> Option<(&'g Value, &'g Value)> {
    if !is_pandas(graph, manager, &["SingleBlockManager", "BlockManager"]) {
        return None;
    }
    let state = graph.items(graph.object(manager)?.state.as_ref()?)?;
    let first = |v: &'g Value| graph.items(v).and_then(|items| items.first());
    let from_tuple = || -> Option<(&'g Value, &'g Value)> {
        let [axes, values, ..] = state else {
            return None;
        };
        Some((first(axes)?, first(values)?))
    };
    let from_extra = || -> Option<(&'g Value, &'g Value)> {
        let extra = state.get(3)?;
        let v14 = graph.dict_get(extra, &Value::str("0.14.1"))?;
        let axes = graph.dict_get(v14, &Value::str("axes"))?;
        let blocks = graph.dict_get(v14, &Value::str("blocks"))?;
        let block = first(blocks)?;
        Some((first(axes)?, graph.dict_get(block, &Value::str("values"))?))
    };
    from_tuple().or_else(from_extra)
}

/// The str labels of a pandas Index: `_new_Index(cls, {"data": array, "name": ...})` where the array is an
/// object ndarray, an `NDArrayBacked` extension array (pandas 3's `StringArray`) wrapping one, or an
/// `ArrowStringArray` whose `_pa_array` is a pyarrow string array. Each label is charged before it is copied.
fn index_labels(
    graph: &Graph,
    index: &Value,
    budget: &mut CopyBudget,
) -> Result<Option<Vec<String>>, Exhausted> {
    let Some(obj) = graph.object(index) else {
        return Ok(None);
    };
    let Some((_, func)) = graph.class_of(index) else {
        return Ok(None);
    };
    if func != "_new_Index" {
        return Ok(None);
    }
    let Some(data) = obj
        .args
        .get(1)
        .and_then(|fields| graph.dict_get(fields, &Value::str("data")))
    else {
        return Ok(None);
    };
    if ndarray(graph, data).is_some() {
        return labels_of_array(graph, data, budget);
    }
    if let Some(arrow) = graph.attr(data, "_pa_array") {
        return arrow_strings_within(graph, arrow, budget);
    }
    // NDArrayBacked: BUILD((dtype, ndarray, attrs)); use the one element that is an object ndarray.
    let parts = match graph
        .object(data)
        .and_then(|backed| backed.state)
        .and_then(|state| graph.deref(state))
    {
        Some(Node::Tuple(parts)) => parts,
        _ => return Ok(None),
    };
    budget.charge(parts.len())?;
    for part in parts {
        if let Some(labels) = labels_of_array(graph, part, budget)? {
            return Ok(Some(labels));
        }
    }
    Ok(None)
}

/// The str elements of a 1-D object array, copied; the elements scanned are charged before the scan, so an
/// array that fails late (its last element not a str) still costs its length once from the budget.
fn labels_of_array(
    graph: &Graph,
    array: &Value,
    budget: &mut CopyBudget,
) -> Result<Option<Vec<String>>, Exhausted> {
    if let Some(ArrayData::Objects(items)) = ndarray(graph, array).map(|a| a.data) {
        budget.charge(items.len())?;
    }
    owned(str_vector(graph, array), budget)
}

/// Copy borrowed labels, charging each to the budget first.
fn owned(
    labels: Option<Vec<&str>>,
    budget: &mut CopyBudget,
) -> Result<Option<Vec<String>>, Exhausted> {
    let Some(labels) = labels else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(labels.len());
    for label in labels {
        budget.charge(label.len().saturating_add(LABEL_OVERHEAD))?;
        out.push(label.to_string());
    }
    Ok(Some(out))
}

fn is_pyarrow(graph: &Graph, value: &Value, name: &str) -> bool {
    matches!(graph.class_of(value), Some((m, n)) if n == name && (m == "pyarrow" || m.starts_with("pyarrow.")))
}

#[cfg(test)]
fn arrow_strings(graph: &Graph, value: &Value) -> Option<Vec<String>> {
    arrow_strings_within(graph, value, &mut CopyBudget::unlimited())
        .ok()
        .flatten()
}

/// A pyarrow string array without nulls: `_restore_array((type_for_alias('string' | 'large_string'), length,
/// null_count, offset, [validity, py_buffer(offsets), py_buffer(data)], children, dictionary))`, or a
/// `chunked_array([...], type)` of such arrays.
fn arrow_strings_within(
    graph: &Graph,
    value: &Value,
    budget: &mut CopyBudget,
) -> Result<Option<Vec<String>>, Exhausted> {
    // A chunked array holds plain arrays (pyarrow never nests them): no recursion on hostile nesting.
    if is_pyarrow(graph, value, "chunked_array") {
        let Some(chunks) = graph
            .object(value)
            .and_then(|obj| obj.args.first())
            .and_then(|list| graph.items(list))
        else {
            return Ok(None);
        };
        budget.charge(chunks.len())?;
        let mut out = Vec::new();
        for chunk in chunks {
            match arrow_chunk(graph, chunk, budget)? {
                Some(strings) => out.extend(strings),
                None => return Ok(None),
            }
        }
        return Ok(Some(out));
    }
    arrow_chunk(graph, value, budget)
}

/// The strings of one (not chunked) pyarrow string array.
fn arrow_chunk(
    graph: &Graph,
    value: &Value,
    budget: &mut CopyBudget,
) -> Result<Option<Vec<String>>, Exhausted> {
    let Some(array) = arrow_array(graph, value, budget)? else {
        return Ok(None);
    };
    let Some(end) = array.offset.checked_add(array.length) else {
        return Ok(None);
    };
    // Never reserve for a declared length: the offsets buffer bounds how many strings there can be.
    let mut out = Vec::with_capacity(array.length.min(array.offsets.len() / array.offset_width));
    for i in array.offset..end {
        let Some(bytes) = array
            .at(i)
            .zip(array.at(i + 1))
            .and_then(|(a, b)| array.data.get(a..b))
        else {
            return Ok(None);
        };
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Ok(None);
        };
        budget.charge(text.len().saturating_add(LABEL_OVERHEAD))?;
        out.push(text.to_string());
    }
    Ok(Some(out))
}

/// The parts of one pyarrow string array that `arrow_strings_within` reads.
struct ArrowArray {
    offset_width: usize,
    length: usize,
    offset: usize,
    offsets: Vec<u8>,
    data: Vec<u8>,
}

impl ArrowArray {
    fn at(&self, i: usize) -> Option<usize> {
        let start = i.checked_mul(self.offset_width)?;
        let raw = self
            .offsets
            .get(start..start.checked_add(self.offset_width)?)?;
        let n = if self.offset_width == 4 {
            i64::from(i32::from_le_bytes(raw.try_into().ok()?))
        } else {
            i64::from_le_bytes(raw.try_into().ok()?)
        };
        usize::try_from(n).ok()
    }
}

fn arrow_array(
    graph: &Graph,
    value: &Value,
    budget: &mut CopyBudget,
) -> Result<Option<ArrowArray>, Exhausted> {
    if !is_pyarrow(graph, value, "_restore_array") {
        return Ok(None);
    }
    let Some(fields) = graph
        .object(value)
        .and_then(|obj| obj.args.first())
        .and_then(|t| graph.items(t))
    else {
        return Ok(None);
    };
    let [arrow_type, length, null_count, offset, buffers, ..] = fields else {
        return Ok(None);
    };
    if !is_pyarrow(graph, arrow_type, "type_for_alias") {
        return Ok(None);
    }
    let offset_width = match graph
        .object(arrow_type)
        .and_then(|t| t.args.first())
        .and_then(Value::as_str)
    {
        Some("string" | "utf8") => 4,
        Some("large_string" | "large_utf8") => 8,
        _ => return Ok(None),
    };
    let (Some(length), Some(offset), Some(0)) = (
        length.as_i64().and_then(|n| usize::try_from(n).ok()),
        offset.as_i64().and_then(|n| usize::try_from(n).ok()),
        null_count.as_i64(),
    ) else {
        return Ok(None);
    };
    let Some([_validity, offsets, data]) = graph.items(buffers) else {
        return Ok(None);
    };
    let mut buffer = |v: &Value| -> Result<Option<Vec<u8>>, Exhausted> {
        if !is_pyarrow(graph, v, "py_buffer") {
            return Ok(None);
        }
        match graph
            .object(v)
            .and_then(|b| b.args.first())
            .and_then(|b| bytes_of(graph, b))
        {
            Some(bytes) => {
                budget.charge(bytes.len())?;
                Ok(Some(bytes.into_owned()))
            }
            None => Ok(None),
        }
    };
    let (Some(offsets), Some(data)) = (buffer(offsets)?, buffer(data)?) else {
        return Ok(None);
    };
    Ok(Some(ArrowArray {
        offset_width,
        length,
        offset,
        offsets,
        data,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::numpy::build::*;
    use super::*;
    use crate::pickle::BuildKind;

    /// The graph pandas writes for a float Series: `Series()` + BUILD({_mgr: SingleBlockManager() + BUILD(...)}).
    fn series(
        b: &mut GraphBuilder,
        labels: &[&str],
        values: Value,
        n: usize,
        backed: bool,
        pandas_mod: &str,
    ) -> Value {
        let np = if pandas_mod == "pandas" {
            "numpy._core.multiarray"
        } else {
            "numpy.core.multiarray"
        };
        let obj_dtype = b.dtype("numpy", "O8", "|");
        let items = b.list(labels.iter().map(|l| s(l)).collect());
        let mut data = b.reconstruct(np, obj_dtype, labels.len(), items);
        if backed {
            let func = b.global("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked");
            let cls = b.global("pandas.arrays", "StringArray");
            let string_dtype = b.global("pandas", "StringDtype");
            let attrs = b.dict(vec![("_readonly", Value::Bool(false))]);
            let state = b.tuple(vec![string_dtype, data, attrs]);
            data = b.object(
                BuildKind::Reduce,
                func,
                vec![cls, Value::Int(82904607), Value::None],
                Some(state),
            );
        }
        let new_index = b.global("pandas.core.indexes.base", "_new_Index");
        let index_cls = b.global(pandas_mod, "Index");
        let fields = b.dict(vec![("data", data), ("name", Value::None)]);
        let index = b.object(BuildKind::Reduce, new_index, vec![index_cls, fields], None);
        let axes = b.list(vec![index]);
        let block_values = b.list(vec![values]);
        let block_items = b.list(vec![]);
        let extra = b.dict(vec![]);
        let state = b.tuple(vec![axes, block_values, block_items, extra]);
        let mgr_cls = b.global("pandas.core.internals.managers", "SingleBlockManager");
        let mgr = b.object(BuildKind::NewObj, mgr_cls, vec![], Some(state));
        let _ = n;
        let module = if pandas_mod == "pandas" {
            "pandas"
        } else {
            "pandas.core.series"
        };
        b.instance(module, "Series", vec![("_mgr", mgr), ("_typ", s("series"))])
    }

    #[test]
    fn reads_series_from_pandas_1_and_3_layouts() {
        let raw = le_f64(&[0.0123, 0.2, f64::NAN]);
        let labels = ["IC", "ICIR", "Rank IC"];
        for (backed, pandas_mod) in [(false, "pandas.core.series"), (true, "pandas")] {
            let mut b = GraphBuilder::default();
            let dt = b.dtype("numpy", "f8", "<");
            let values = b.reconstruct("numpy.core.multiarray", dt, 3, bytes(&raw));
            let v = series(&mut b, &labels, values, 3, backed, pandas_mod);
            let m = series_metrics(&b.graph, &v).expect("metrics");
            assert_eq!(m.len(), 3);
            assert_eq!((m[0].0.as_str(), m[0].1), ("IC", 0.0123));
            assert_eq!((m[1].0.as_str(), m[1].1), ("ICIR", 0.2));
            assert_eq!(m[2].0, "Rank IC");
            assert!(m[2].1.is_nan());
        }
    }

    #[test]
    fn wrong_dtype_length_or_class_gives_none() {
        let labels = ["IC", "ICIR"];
        let mut b = GraphBuilder::default();
        let dt = b.dtype("numpy", "f8", ">");
        let values = b.reconstruct("numpy.core.multiarray", dt, 2, bytes(&le_f64(&[1.0, 2.0])));
        let v = series(&mut b, &labels, values, 2, false, "pandas.core.series");
        assert_eq!(series_metrics(&b.graph, &v), None, "big-endian");

        let mut b = GraphBuilder::default();
        let dt = b.dtype("numpy", "f8", "<");
        let values = b.reconstruct(
            "numpy.core.multiarray",
            dt,
            3,
            bytes(&le_f64(&[1.0, 2.0, 3.0])),
        );
        let v = series(&mut b, &labels, values, 3, false, "pandas.core.series");
        assert_eq!(series_metrics(&b.graph, &v), None, "3 values for 2 labels");

        let mut b = GraphBuilder::default();
        let dt = b.dtype("numpy", "f8", "<");
        let values = b.reconstruct("numpy.core.multiarray", dt, 2, bytes(&le_f64(&[1.0, 2.0])));
        let v = series(&mut b, &labels, values, 2, false, "pandas.core.series");
        assert_eq!(series_metrics(&b.graph, &v).map(|m| m.len()), Some(2));
        // The same state under another class name is not a Series.
        let mgr = b.graph.attr(&v, "_mgr").cloned().unwrap();
        let fake = b.instance("mylib", "Series", vec![("_mgr", mgr)]);
        assert_eq!(series_metrics(&b.graph, &fake), None);
        assert_eq!(series_metrics(&b.graph, &Value::None), None);
        let d = b.dict(vec![("IC", Value::Float(0.1))]);
        assert_eq!(series_metrics(&b.graph, &d), None, "a dict is not a Series");
    }

    #[test]
    fn falls_back_to_the_extra_state() {
        let mut b = GraphBuilder::default();
        let obj_dtype = b.dtype("numpy", "O8", "|");
        let items = b.list(vec![s("IC")]);
        let data = b.reconstruct("numpy.core.multiarray", obj_dtype, 1, items);
        let new_index = b.global("pandas.core.indexes.base", "_new_Index");
        let index_cls = b.global("pandas.core.indexes.base", "Index");
        let fields = b.dict(vec![("data", data)]);
        let index = b.object(BuildKind::Reduce, new_index, vec![index_cls, fields], None);
        let dt = b.dtype("numpy", "f8", "<");
        let values = b.reconstruct("numpy.core.multiarray", dt, 1, bytes(&le_f64(&[0.5])));
        let axes = b.list(vec![index]);
        let block = b.dict(vec![("values", values)]);
        let blocks = b.list(vec![block]);
        let v14 = b.dict(vec![("axes", axes), ("blocks", blocks)]);
        let extra = b.dict(vec![("0.14.1", v14)]);
        let empty1 = b.list(vec![]);
        let empty2 = b.list(vec![]);
        let state = b.tuple(vec![empty1, empty2, Value::None, extra]);
        let mgr_cls = b.global("pandas.core.internals", "SingleBlockManager");
        let mgr = b.object(BuildKind::NewObj, mgr_cls, vec![], Some(state));
        let v = b.instance("pandas.core.series", "Series", vec![("_data", mgr)]);
        assert_eq!(
            series_metrics(&b.graph, &v).map(|m| m.to_vec()),
            Some(vec![("IC".to_string(), 0.5)])
        );
    }
    /// Decode a pandas-written pickle from `testdata/` the way snapshots are decoded.
    fn real(name: &str, data: &[u8]) -> Option<Metrics> {
        let options = crate::pickle::Options {
            keep_bytes_up_to: super::super::snapshot::KEEP_BYTES_UP_TO,
            ..Default::default()
        };
        let graph = crate::pickle::decode(data, &options).unwrap_or_else(|e| panic!("{name}: {e}"));
        series_metrics(&graph, graph.root())
    }

    const LABELS: [&str; 6] = [
        "IC",
        "ICIR",
        "Rank IC",
        "Rank ICIR",
        "1day.excess_return_with_cost.annualized_return",
        "1day.excess_return_with_cost.max_drawdown",
    ];
    const VALUES: [f64; 6] = [0.0123, 0.0987, 0.0234, 0.1234, 0.0567, -0.0891];

    #[test]
    fn reads_series_that_pandas_2_and_3_wrote_under_protocols_2_4_5() {
        let files: [(&str, &[u8]); 9] = [
            (
                "pandas2-p2",
                include_bytes!("testdata/series-pandas2-p2.pkl"),
            ),
            (
                "pandas2-p4",
                include_bytes!("testdata/series-pandas2-p4.pkl"),
            ),
            (
                "pandas2-p5",
                include_bytes!("testdata/series-pandas2-p5.pkl"),
            ),
            (
                "pandas3-p2",
                include_bytes!("testdata/series-pandas3-p2.pkl"),
            ),
            (
                "pandas3-p4",
                include_bytes!("testdata/series-pandas3-p4.pkl"),
            ),
            (
                "pandas3-p5",
                include_bytes!("testdata/series-pandas3-p5.pkl"),
            ),
            (
                "pandas3-arrow-p4",
                include_bytes!("testdata/series-pandas3-arrow-p4.pkl"),
            ),
            (
                "pandas3-arrow-p5",
                include_bytes!("testdata/series-pandas3-arrow-p5.pkl"),
            ),
            (
                "pandas2-arrow-p4",
                include_bytes!("testdata/series-pandas2-arrow-p4.pkl"),
            ),
        ];
        for (name, data) in files {
            let metrics = real(name, data).unwrap_or_else(|| panic!("{name}: no metrics"));
            let labels: Vec<&str> = metrics.iter().map(|(l, _)| l.as_str()).collect();
            let values: Vec<f64> = metrics.iter().map(|(_, v)| *v).collect();
            assert_eq!(labels, LABELS, "{name}");
            assert_eq!(values, VALUES, "{name}");
        }
    }

    #[test]
    fn real_series_of_other_dtypes_or_without_labels_give_none() {
        let files: [(&str, &[u8]); 4] = [
            ("f4", include_bytes!("testdata/series-f4-p4.pkl")),
            ("i8", include_bytes!("testdata/series-i8-p4.pkl")),
            ("big-endian", include_bytes!("testdata/series-be-p4.pkl")),
            (
                "range index",
                include_bytes!("testdata/series-intindex-p4.pkl"),
            ),
        ];
        for (name, data) in files {
            assert_eq!(real(name, data), None, "{name}");
        }
        let nan = real("nan", include_bytes!("testdata/series-nan-p5.pkl")).expect("metrics");
        assert_eq!(nan[0], ("IC".to_string(), 0.5));
        assert_eq!(nan[1].0, "ICIR");
        assert!(nan[1].1.is_nan());
    }
    /// `_restore_array((type_for_alias(alias), n, nulls, offset, [None, py_buffer(offsets), py_buffer(data)], [], None))`.
    fn arrow_array(
        b: &mut GraphBuilder,
        alias: &str,
        labels: &[&str],
        nulls: i64,
        offset: i64,
    ) -> Value {
        let wide = alias.starts_with("large");
        let mut offsets = vec![0u8; if wide { 8 } else { 4 }];
        let mut data = Vec::new();
        for label in labels {
            data.extend_from_slice(label.as_bytes());
            if wide {
                offsets.extend_from_slice(&(data.len() as i64).to_le_bytes());
            } else {
                offsets.extend_from_slice(&(data.len() as i32).to_le_bytes());
            }
        }
        let alias_fn = b.global("pyarrow.lib", "type_for_alias");
        let arrow_type = b.object(BuildKind::Reduce, alias_fn, vec![s(alias)], None);
        let mut buffers = vec![Value::None];
        for raw in [offsets, data] {
            let py_buffer = b.global("pyarrow.lib", "py_buffer");
            let payload = b.bytearray(&raw);
            buffers.push(b.object(BuildKind::Reduce, py_buffer, vec![payload], None));
        }
        let buffers = b.list(buffers);
        let children = b.list(vec![]);
        let fields = b.tuple(vec![
            arrow_type,
            Value::Int(labels.len() as i64 - offset),
            Value::Int(nulls),
            Value::Int(offset),
            buffers,
            children,
            Value::None,
        ]);
        let restore = b.global("pyarrow.lib", "_restore_array");
        b.object(BuildKind::Reduce, restore, vec![fields], None)
    }

    #[test]
    fn reads_arrow_strings_of_both_offset_widths_offsets_and_chunks() {
        let mut b = GraphBuilder::default();
        let narrow = arrow_array(&mut b, "string", &["IC", "Rank IC"], 0, 0);
        assert_eq!(
            arrow_strings(&b.graph, &narrow),
            Some(vec!["IC".to_string(), "Rank IC".to_string()])
        );
        let shifted = arrow_array(&mut b, "large_string", &["x", "IC", "ICIR"], 0, 1);
        assert_eq!(
            arrow_strings(&b.graph, &shifted),
            Some(vec!["IC".to_string(), "ICIR".to_string()])
        );
        let with_nulls = arrow_array(&mut b, "string", &["IC", ""], 1, 0);
        assert_eq!(arrow_strings(&b.graph, &with_nulls), None);
        let binary = arrow_array(&mut b, "binary", &["IC"], 0, 0);
        assert_eq!(arrow_strings(&b.graph, &binary), None);
        let chunks = b.list(vec![narrow, shifted]);
        let chunked_fn = b.global("pyarrow.lib", "chunked_array");
        let chunked = b.object(BuildKind::Reduce, chunked_fn, vec![chunks], None);
        assert_eq!(
            arrow_strings(&b.graph, &chunked).map(|v| v.join(",")),
            Some("IC,Rank IC,IC,ICIR".to_string())
        );
    }
}
