//! An experiment's `result` (a pandas float Series of backtest metrics: IC, ICIR, Rank IC, annualized return,
//! ...) as (label, value) pairs.
//!
//! Liberal in the pandas layouts it accepts (`_mgr` or `_data`; an object-ndarray index, pandas 3's
//! `StringArray`, or a pyarrow-backed `ArrowStringArray`), strict about the values: only a 1-D little-endian float64 block whose length matches the
//! string labels becomes metrics. Anything else is `None`, never a guess.

use crate::pickle::{Graph, Node, Value};

use super::numpy::{bytes_of, f64_vector, ndarray, str_vector};

/// The metrics a pandas Series holds, in index order.
pub type Metrics = Vec<(String, f64)>;

fn is_pandas(graph: &Graph, value: &Value, names: &[&str]) -> bool {
    matches!(graph.class_of(value), Some((m, n)) if (m == "pandas" || m.starts_with("pandas.")) && names.contains(&n))
}

/// The metrics of a pickled `pandas.Series` of float64 with str labels; `None` for anything else.
pub fn series_metrics(graph: &Graph, value: &Value) -> Option<Metrics> {
    if !is_pandas(graph, value, &["Series"]) {
        return None;
    }
    let manager = graph
        .attr(value, "_mgr")
        .or_else(|| graph.attr(value, "_data"))?;
    let (index, values) = manager_parts(graph, manager)?;
    let labels = index_labels(graph, index)?;
    let numbers = f64_vector(graph, values)?;
    if labels.len() != numbers.len() {
        return None;
    }
    Some(labels.into_iter().zip(numbers).collect())
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
        let v14 = graph.dict_get(extra, &Value::Str("0.14.1".into()))?;
        let axes = graph.dict_get(v14, &Value::Str("axes".into()))?;
        let blocks = graph.dict_get(v14, &Value::Str("blocks".into()))?;
        let block = first(blocks)?;
        Some((
            first(axes)?,
            graph.dict_get(block, &Value::Str("values".into()))?,
        ))
    };
    from_tuple().or_else(from_extra)
}

/// The str labels of a pandas Index: `_new_Index(cls, {"data": array, "name": ...})` where the array is an
/// object ndarray, an `NDArrayBacked` extension array (pandas 3's `StringArray`) wrapping one, or an
/// `ArrowStringArray` whose `_pa_array` is a pyarrow string array.
fn index_labels(graph: &Graph, index: &Value) -> Option<Vec<String>> {
    let obj = graph.object(index)?;
    let (_, func) = graph.class_of(index)?;
    if func != "_new_Index" {
        return None;
    }
    let fields = obj.args.get(1)?;
    let data = graph.dict_get(fields, &Value::Str("data".into()))?;
    let owned = |v: Vec<&str>| v.into_iter().map(str::to_string).collect::<Vec<_>>();
    if ndarray(graph, data).is_some() {
        return str_vector(graph, data).map(owned);
    }
    if let Some(arrow) = graph.attr(data, "_pa_array") {
        return arrow_strings(graph, arrow);
    }
    // NDArrayBacked: BUILD((dtype, ndarray, attrs)); use the one element that is an object ndarray.
    let backed = graph.object(data)?;
    let parts = match graph.deref(backed.state.as_ref()?)? {
        Node::Tuple(parts) => parts,
        _ => return None,
    };
    parts
        .iter()
        .find_map(|part| str_vector(graph, part))
        .map(owned)
}

fn is_pyarrow(graph: &Graph, value: &Value, name: &str) -> bool {
    matches!(graph.class_of(value), Some((m, n)) if n == name && (m == "pyarrow" || m.starts_with("pyarrow.")))
}

/// A pyarrow string array without nulls: `_restore_array((type_for_alias('string' | 'large_string'), length,
/// null_count, offset, [validity, py_buffer(offsets), py_buffer(data)], children, dictionary))`, or a
/// `chunked_array([...], type)` of such arrays.
fn arrow_strings(graph: &Graph, value: &Value) -> Option<Vec<String>> {
    if is_pyarrow(graph, value, "chunked_array") {
        let chunks = graph.items(graph.object(value)?.args.first()?)?;
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend(arrow_strings(graph, chunk)?);
        }
        return Some(out);
    }
    if !is_pyarrow(graph, value, "_restore_array") {
        return None;
    }
    let fields = graph.items(graph.object(value)?.args.first()?)?;
    let [arrow_type, length, null_count, offset, buffers, ..] = fields else {
        return None;
    };
    if !is_pyarrow(graph, arrow_type, "type_for_alias") {
        return None;
    }
    let offset_width = match graph.object(arrow_type)?.args.first()?.as_str()? {
        "string" | "utf8" => 4,
        "large_string" | "large_utf8" => 8,
        _ => return None,
    };
    let length = usize::try_from(length.as_i64()?).ok()?;
    let offset = usize::try_from(offset.as_i64()?).ok()?;
    if null_count.as_i64()? != 0 {
        return None;
    }
    let buffer = |v: &Value| -> Option<Vec<u8>> {
        if !is_pyarrow(graph, v, "py_buffer") {
            return None;
        }
        bytes_of(graph, graph.object(v)?.args.first()?).map(|b| b.into_owned())
    };
    let [_validity, offsets, data] = graph.items(buffers)? else {
        return None;
    };
    let offsets = buffer(offsets)?;
    let data = buffer(data)?;
    let at = |i: usize| -> Option<usize> {
        let start = i.checked_mul(offset_width)?;
        let raw = offsets.get(start..start.checked_add(offset_width)?)?;
        let n = if offset_width == 4 {
            i64::from(i32::from_le_bytes(raw.try_into().ok()?))
        } else {
            i64::from_le_bytes(raw.try_into().ok()?)
        };
        usize::try_from(n).ok()
    };
    (offset..offset.checked_add(length)?)
        .map(|i| {
            let bytes = data.get(at(i)?..at(i + 1)?)?;
            std::str::from_utf8(bytes).ok().map(str::to_string)
        })
        .collect()
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
            series_metrics(&b.graph, &v),
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
