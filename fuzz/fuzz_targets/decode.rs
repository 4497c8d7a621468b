//! The pickle decoder on arbitrary bytes, with and without skipped values, then every accessor of the graph it
//! returns on every node.
//! Must never panic, and must stay within the decoder's complexity rules (libFuzzer's timeout and RSS
//! limit catch a superlinear case).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rd_chain::pickle::{decode, Graph, Node, NodeId, Options, Value};

/// Attribute names the session reader asks for, plus one longer than any index key.
const NAMES: &[&str] = &[
    "trace",
    "hist",
    "idx2loop_id",
    "decision",
    "experiment_workspace",
    "workspace_path",
    "result",
    "running_info",
    "_mgr",
    "_data",
    "_pa_array",
    "a name longer than sixty-four bytes, which is never indexed but still found by a scan",
];

fuzz_target!(|data: &[u8]| {
    // The first byte picks the keep limit, so both kept and dropped payloads are exercised.
    let keep = if data.first().is_some_and(|b| b & 1 == 1) {
        16
    } else {
        64 * 1024
    };
    let options = Options {
        keep_bytes_up_to: keep,
        keep_str_up_to: keep,
        ..Options::default()
    };
    let decoded = decode(data, &options);
    // Skipping the values of the session reader's key (the seeds have it) and of a one-letter key (random input
    // has it) changes nothing but those values: whatever decodes without skipping decodes with it.
    let skipping = Options {
        skip_values_of: &["based_experiments", "a"],
        ..options.clone()
    };
    let lean = decode(data, &skipping);
    if decoded.is_ok() {
        assert!(lean.is_ok(), "decodes plainly but not when skipping: {lean:?}");
    }
    if let Ok(lean) = &lean {
        assert!(lean.input_len <= data.len());
        visit(lean, data, lean.root());
    }
    let Ok(graph) = decoded else {
        return;
    };
    assert!(graph.input_len <= data.len());
    visit(&graph, data, graph.root());
    for i in 0..graph.node_count() {
        let value = Value::Node(NodeId(i as u32));
        visit(&graph, data, &value);
        // `attrs` lists every pair, so it is asked of the first nodes only (an object sharing a large
        // state dict with thousands of others would make this harness, not the decoder, quadratic).
        if i < 256 {
            let attrs = graph.attrs(&value);
            for (key, v) in attrs.iter().rev().take(4) {
                if let Some(name) = key.as_str() {
                    // `attr` agrees with the last assignment in `attrs`.
                    let last = attrs
                        .iter()
                        .rev()
                        .find(|(k, _)| k.as_str() == Some(name))
                        .map(|(_, v)| *v);
                    assert_eq!(graph.attr(&value, name), last);
                }
                let _ = v;
            }
        }
    }
});

fn visit(graph: &Graph, data: &[u8], value: &Value) {
    let _ = graph.deref(value);
    let _ = graph.class_of(value);
    let _ = graph.object(value);
    for name in NAMES {
        let _ = graph.attr(value, name);
    }
    let _ = graph.items(value);
    if let Some(pairs) = graph.pairs(value) {
        if let Some((first_key, _)) = pairs.first() {
            let _ = graph.dict_get(value, first_key);
        }
        let _ = graph.dict_get(value, &Value::str("data"));
        let _ = graph.dict_get(value, &Value::Int(0));
    }
    if let Some(Node::Object(obj)) = graph.deref(value) {
        let _ = (obj.callable, obj.args.len(), obj.kwargs.len(), obj.state);
    }
    if let Some(text) = graph.long_str(data, value) {
        let _ = text.len();
    }
    let _ = (
        value.as_str(),
        value.as_bool(),
        value.as_i64(),
        value.as_f64(),
    );
}
