//! An experiment's `result` (a pandas float Series of backtest metrics: IC, ICIR, Rank IC, annualized return,
//! ...) as (label, value) pairs.
//!
//! Liberal in the pandas layouts it accepts (`_mgr` or `_data`, an object-ndarray index or pandas 3's
//! `StringArray`), strict about the values: only a 1-D little-endian float64 block whose length matches the
//! string labels becomes metrics. Anything else is `None`, never a guess.

use crate::pickle::{Graph, Node, Value};

use super::numpy::{f64_vector, ndarray, str_vector};

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
    Some(
        labels
            .into_iter()
            .map(str::to_string)
            .zip(numbers)
            .collect(),
    )
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
/// object ndarray or an `NDArrayBacked` extension array (pandas 3's `StringArray`) wrapping one.
fn index_labels<'g>(graph: &'g Graph, index: &'g Value) -> Option<Vec<&'g str>> {
    let obj = graph.object(index)?;
    let (_, func) = graph.class_of(index)?;
    if func != "_new_Index" {
        return None;
    }
    let fields = obj.args.get(1)?;
    let data = graph.dict_get(fields, &Value::Str("data".into()))?;
    if ndarray(graph, data).is_some() {
        return str_vector(graph, data);
    }
    // NDArrayBacked: BUILD((dtype, ndarray, attrs)); use the one element that is an object ndarray.
    let backed = graph.object(data)?;
    let parts = match graph.deref(backed.state.as_ref()?)? {
        Node::Tuple(parts) => parts,
        _ => return None,
    };
    parts.iter().find_map(|part| str_vector(graph, part))
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
        let files: [(&str, &[u8]); 6] = [
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
}
