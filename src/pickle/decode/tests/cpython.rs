//! Pickles written by CPython's own pickler (scripts/gen_plain_pickles.py): plain data compared with
//! serde-pickle, and object graphs checked for the shape RD-Agent snapshots rely on.

use super::support::{
    case, cpython_cases, decode_default, graph_tree, join_posix, serde_tree, Tree,
};
use crate::pickle::{BuildKind, Graph, Node, NodeId, Value};

const PROTOCOLS: std::ops::RangeInclusive<u8> = 0..=5;

fn decoded(name: &str) -> Graph {
    decode_default(case(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn node_id(v: &Value) -> NodeId {
    match v {
        Value::Node(id) => *id,
        other => panic!("expected a node, got {other:?}"),
    }
}

fn text(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected str, got {v:?}"))
}

/// Cases serde-pickle itself cannot read (it has no `bytes()` or `bytearray()` without arguments); our decoder
/// is checked on them against the value the generator pickled instead.
fn serde_cannot_read(name: &str) -> Option<Tree> {
    match name {
        "plain/bytes_empty.p0" | "plain/bytes_empty.p1" | "plain/bytes_empty.p2" => {
            Some(Tree::Bytes(Vec::new()))
        }
        _ => None,
    }
}

#[test]
fn plain_data_matches_serde_pickle_for_every_protocol() {
    let mut names: Vec<&String> = cpython_cases()
        .keys()
        .filter(|n| n.starts_with("plain/"))
        .collect();
    names.sort();
    let mut compared = 0;
    for name in names {
        let data = &cpython_cases()[name];
        let g = decode_default(data).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ours = graph_tree(&g, &g.root);
        if let Some(expected) = serde_cannot_read(name) {
            assert_eq!(ours, expected, "{name}");
            continue;
        }
        let theirs = serde_pickle::value_from_slice(data, serde_pickle::DeOptions::new())
            .unwrap_or_else(|e| panic!("serde-pickle cannot read {name}: {e}"));
        assert_eq!(ours, serde_tree(&theirs), "{name}");
        compared += 1;
    }
    // 20 plain cases x 6 protocols, less the three serde-pickle cannot read.
    assert_eq!(compared, 20 * 6 - 3);
}

#[test]
fn plain_values_survive_exactly() {
    for p in PROTOCOLS {
        let g = decoded(&format!("plain/floats.p{p}"));
        let items = g.items(&g.root).unwrap();
        assert!(
            matches!(items[1], Value::Float(f) if f == 0.0 && f.is_sign_negative()),
            "p{p}"
        );
        assert_eq!(items[8], Value::Float(f64::INFINITY), "p{p}");
        let g = decoded(&format!("plain/nan.p{p}"));
        assert!(matches!(g.root, Value::Float(f) if f.is_nan()), "p{p}");
        let g = decoded(&format!("plain/bigints.p{p}"));
        let first = graph_tree(&g, &g.items(&g.root).unwrap()[0]);
        assert_eq!(first, Tree::Int("9223372036854775808".into()), "p{p}");
        let g = decoded(&format!("plain/strs.p{p}"));
        let items = g.items(&g.root).unwrap();
        assert_eq!(text(&items[4]), "\u{1f600}", "p{p}");
        assert_eq!(text(&items[5]), "back\\slash\nnew\rline\x1a\x00end", "p{p}");
        let g = decoded(&format!("plain/long_list.p{p}"));
        assert_eq!(g.items(&g.root).unwrap().len(), 2500, "p{p}");
        assert_eq!(g.items(&g.root).unwrap()[2499], Value::Int(2499), "p{p}");
    }
}

#[test]
fn shared_plain_values_are_one_node() {
    for p in PROTOCOLS {
        let g = decoded(&format!("plain/shared.p{p}"));
        let items = g.items(&g.root).unwrap();
        let tuple_item = g.items(&items[2]).unwrap()[0].clone();
        let dict_item = g.dict_get(&items[3], &Value::str("k")).unwrap().clone();
        assert_eq!(items[0], items[1], "p{p}");
        assert_eq!(items[0], tuple_item, "p{p}");
        assert_eq!(items[0], dict_item, "p{p}");
        if p >= 1 {
            // A memoized short str is held in place both times (no allocation at all)...
            match (&items[4], &items[5]) {
                (Value::Short(a), Value::Short(b)) => {
                    assert_eq!(
                        (a.as_str(), b.as_str()),
                        ("shared text", "shared text"),
                        "p{p}"
                    )
                }
                other => panic!("{other:?}"),
            }
            // ...and a longer one is one allocation reached twice.
            match (&items[6], &items[7]) {
                (Value::Str(a), Value::Str(b)) => assert!(std::rc::Rc::ptr_eq(a, b), "p{p}"),
                other => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn instances_have_their_class_and_attributes() {
    for p in PROTOCOLS {
        let g = decoded(&format!("graph/instance.p{p}"));
        assert_eq!(
            g.class_of(&g.root),
            Some(("fakemod.things", "Point")),
            "p{p}"
        );
        assert_eq!(g.object(&g.root).unwrap().kind, BuildKind::NewObj, "p{p}");
        assert_eq!(g.attr(&g.root, "x"), Some(&Value::Int(1)), "p{p}");
        assert_eq!(g.attr(&g.root, "y").map(text), Some("two"), "p{p}");
    }
}

#[test]
fn defaultdicts_keep_factory_and_items() {
    for p in PROTOCOLS {
        let g = decoded(&format!("graph/defaultdict.p{p}"));
        let lists = g.dict_get(&g.root, &Value::str("lists")).unwrap();
        assert_eq!(
            g.class_of(lists),
            Some(("collections", "defaultdict")),
            "p{p}"
        );
        let obj = g.object(lists).unwrap();
        assert_eq!(obj.kind, BuildKind::Reduce);
        let factory = g.class_of(&obj.args[0]).unwrap();
        assert!(
            matches!(factory, ("builtins" | "__builtin__", "list")),
            "p{p}: {factory:?}"
        );
        let a = g.dict_get(lists, &Value::str("a")).unwrap();
        assert_eq!(
            graph_tree(&g, a),
            Tree::List(vec![Tree::Int("1".into())]),
            "p{p}"
        );
        let b = g.dict_get(lists, &Value::str("b")).unwrap();
        assert_eq!(g.items(b).unwrap(), &[Value::Int(2), Value::Int(3)], "p{p}");

        let counts = g.dict_get(&g.root, &Value::str("counts")).unwrap();
        let factory = g.class_of(&g.object(counts).unwrap().args[0]).unwrap();
        assert!(
            matches!(factory, ("builtins", "int") | ("__builtin__", "long")),
            "p{p}: {factory:?}"
        );
        assert_eq!(
            g.dict_get(counts, &Value::Int(5)),
            Some(&Value::Int(7)),
            "p{p}"
        );
    }
}

#[test]
fn ordered_dicts_keep_order() {
    for p in PROTOCOLS {
        let g = decoded(&format!("graph/ordereddict.p{p}"));
        assert_eq!(
            g.class_of(&g.root),
            Some(("collections", "OrderedDict")),
            "p{p}"
        );
        let keys: Vec<&str> = g
            .pairs(&g.root)
            .unwrap()
            .iter()
            .map(|(k, _)| text(k))
            .collect();
        assert_eq!(keys, ["z", "a", "m"], "p{p}");
    }
}

#[test]
fn self_reference_is_an_id_pointing_back() {
    for p in PROTOCOLS {
        let g = decoded(&format!("graph/selfref.p{p}"));
        let me = g.attr(&g.root, "me").unwrap();
        assert_eq!(node_id(me), node_id(&g.root), "p{p}");
        let items = g.attr(&g.root, "items").unwrap();
        assert_eq!(g.items(items).unwrap()[0], g.root, "p{p}");
    }
}

#[test]
fn shared_sub_objects_are_decoded_once() {
    for p in PROTOCOLS {
        let g = decoded(&format!("graph/shared.p{p}"));
        let first = node_id(g.attr(&g.root, "first").unwrap());
        let second = node_id(g.attr(&g.root, "second").unwrap());
        assert_eq!(first, second, "p{p}");
        let both = g.items(g.attr(&g.root, "both").unwrap()).unwrap();
        assert_eq!(
            (node_id(&both[0]), node_id(&both[1])),
            (first, first),
            "p{p}"
        );
        let points = g.nodes().filter(|n| matches!(n, Node::Object(_))).count();
        assert_eq!(points, 2, "p{p}: one Holder and one Point");
    }
}

#[test]
fn slots_state_tuples() {
    for p in 2..=5 {
        let g = decoded(&format!("graph/slots.p{p}"));
        let items = g.items(&g.root).unwrap();
        assert_eq!(g.class_of(&items[0]), Some(("fakemod.things", "Slotted")));
        let state = g.object(&items[0]).unwrap().state.unwrap();
        let parts = g.items(state).unwrap();
        assert_eq!(parts[0], Value::None, "p{p}: no __dict__, only slots");
        assert_eq!(g.attr(&items[0], "a"), Some(&Value::Int(1)), "p{p}");
        assert_eq!(g.attr(&items[0], "b").map(text), Some("bee"), "p{p}");
        assert_eq!(g.attr(&items[1], "d").map(text), Some("dict"), "p{p}");
        assert_eq!(g.attr(&items[1], "s").map(text), Some("slot"), "p{p}");
    }
}

#[test]
fn newobj_ex_keeps_keyword_arguments() {
    for p in 4..=5 {
        let g = decoded(&format!("graph/newobj_ex.p{p}"));
        let obj = g.object(&g.root).unwrap();
        assert_eq!(
            (obj.kind, g.class_of(&g.root)),
            (BuildKind::NewObj, Some(("fakemod.things", "KwNew")))
        );
        assert_eq!(obj.args[0], Value::Int(1));
        assert_eq!(obj.kwargs, vec![(Value::str("flag"), Value::Bool(true))]);
    }
    // Protocols 2 and 3 write functools.partial(KwNew.__new__, ...) instead: a call record on a call record.
    for p in 2..=3 {
        let g = decoded(&format!("graph/newobj_ex.p{p}"));
        let obj = g.object(&g.root).unwrap();
        assert_eq!(obj.kind, BuildKind::Reduce);
        assert_eq!(g.class_of(obj.callable), Some(("functools", "partial")));
    }
}

#[test]
fn posix_paths_are_reduce_records_with_their_parts() {
    for p in PROTOCOLS {
        let g = decoded(&format!("graph/path.p{p}"));
        let (module, class) = g.class_of(&g.root).unwrap();
        assert!(
            matches!(module, "pathlib" | "pathlib._local"),
            "p{p}: {module}"
        );
        assert_eq!(class, "PosixPath");
        let obj = g.object(&g.root).unwrap();
        assert_eq!(obj.kind, BuildKind::Reduce);
        let parts: Vec<&str> = obj.args.iter().map(text).collect();
        assert_eq!(
            join_posix(&parts),
            "/home/u/git_ignore_folder/RD-Agent_workspace/003d196d",
            "p{p}"
        );
    }
}

#[test]
fn datetimes_are_reduce_records_with_bytes() {
    for p in PROTOCOLS {
        let g = decoded(&format!("graph/datetime.p{p}"));
        assert_eq!(g.class_of(&g.root), Some(("datetime", "datetime")), "p{p}");
        let obj = g.object(&g.root).unwrap();
        let Tree::Bytes(bytes) = graph_tree(&g, &obj.args[0]) else {
            panic!("p{p}: datetime argument is not bytes");
        };
        assert_eq!(bytes.len(), 10, "p{p}");
        assert_eq!(u16::from_be_bytes([bytes[0], bytes[1]]), 2026, "p{p}");
        assert_eq!((bytes[2], bytes[3]), (1, 14), "p{p}");
    }
}

#[test]
fn blobs_above_the_keep_limit_keep_only_their_length() {
    for p in 3..=5 {
        let g = decoded(&format!("graph/blobs.p{p}"));
        let get = |k: &str| g.dict_get(&g.root, &Value::str(k)).unwrap();
        match get("big") {
            Value::Bytes(blob) => {
                assert_eq!((blob.len, blob.data.is_none()), (100_000, true), "p{p}")
            }
            other => panic!("p{p}: {other:?}"),
        }
        match get("small") {
            Value::Bytes(blob) => {
                assert_eq!(blob.data.as_deref(), Some(&b"xxxxxxxxxx"[..]), "p{p}")
            }
            other => panic!("p{p}: {other:?}"),
        }
        let array = get("bigarray");
        let blob = match g.deref(array) {
            Some(Node::ByteArray(blob)) => blob.clone(),
            Some(Node::Object(obj)) => {
                assert!(matches!(g.class_of(array), Some((_, "bytearray"))), "p{p}");
                match &obj.args[0] {
                    Value::Bytes(blob) => (**blob).clone(),
                    other => panic!("p{p}: {other:?}"),
                }
            }
            other => panic!("p{p}: {other:?}"),
        };
        assert_eq!((blob.len, blob.data.is_none()), (100_000, true), "p{p}");
        if p == 5 {
            assert!(
                matches!(g.deref(array), Some(Node::ByteArray(_))),
                "protocol 5 writes BYTEARRAY8"
            );
        }
    }
}

#[test]
fn list_and_dict_subclasses_get_their_items() {
    for p in 2..=5 {
        let g = decoded(&format!("graph/subclasses.p{p}"));
        let items = g.items(&g.root).unwrap();
        assert_eq!(
            g.class_of(&items[0]),
            Some(("fakemod.things", "MyList")),
            "p{p}"
        );
        assert_eq!(
            g.items(&items[0]).unwrap(),
            &[Value::Int(1), Value::Int(2), Value::Int(3)],
            "p{p}"
        );
        assert_eq!(g.attr(&items[0], "tag").map(text), Some("L"), "p{p}");
        assert_eq!(
            g.class_of(&items[1]),
            Some(("fakemod.things", "MyDict")),
            "p{p}"
        );
        assert_eq!(
            g.dict_get(&items[1], &Value::str("k")),
            Some(&Value::Int(1)),
            "p{p}"
        );
        assert_eq!(g.attr(&items[1], "tag").map(text), Some("D"), "p{p}");
    }
    // Protocols 0 and 1 pass the items to copyreg._reconstructor (base list/dict), which stays a call record.
    for p in 0..=1 {
        let g = decoded(&format!("graph/subclasses.p{p}"));
        let items = g.items(&g.root).unwrap();
        let obj = g.object(&items[0]).unwrap();
        assert_eq!(
            g.class_of(&items[0]),
            Some(("copy_reg", "_reconstructor")),
            "p{p}"
        );
        assert_eq!(
            g.class_of(&obj.args[0]),
            Some(("fakemod.things", "MyList")),
            "p{p}"
        );
        assert_eq!(g.items(&obj.args[2]).unwrap().len(), 3, "p{p}");
        assert_eq!(g.attr(&items[0], "tag").map(text), Some("L"), "p{p}");
    }
}

#[test]
fn exceptions_are_reduce_records() {
    for p in PROTOCOLS {
        let g = decoded(&format!("graph/exception.p{p}"));
        let (module, name) = g.class_of(&g.root).unwrap();
        assert!(
            matches!(module, "builtins" | "exceptions"),
            "p{p}: {module}"
        );
        assert_eq!(name, "ValueError");
        let obj = g.object(&g.root).unwrap();
        assert_eq!(
            (text(&obj.args[0]), &obj.args[1]),
            ("boom", &Value::Int(3)),
            "p{p}"
        );
    }
}

#[test]
fn snapshot_shaped_graph() {
    for p in PROTOCOLS {
        let g = decoded(&format!("graph/snapshot.p{p}"));
        assert_eq!(
            g.class_of(&g.root),
            Some(("fakemod.things", "Loop")),
            "p{p}"
        );
        let trace = g.attr(&g.root, "trace").unwrap();
        let hist = g.items(g.attr(trace, "hist").unwrap()).unwrap();
        assert_eq!(hist.len(), 6, "p{p}");
        let exp = |i: usize| g.items(&hist[i]).unwrap()[0].clone();
        let fb = |i: usize| g.items(&hist[i]).unwrap()[1].clone();
        let decisions: Vec<bool> = (0..6)
            .map(|i| g.attr(&fb(i), "decision").unwrap().as_bool().unwrap())
            .collect();
        assert_eq!(decisions, [true, false, true, false, true, false], "p{p}");
        // Experiment 5 is based on the accepted experiments 0, 2 and 4: the same nodes as in the history.
        let exp5 = exp(5);
        let based = g
            .items(g.attr(&exp5, "based_experiments").unwrap())
            .unwrap();
        let based_ids: Vec<NodeId> = based.iter().map(node_id).collect();
        assert_eq!(
            based_ids,
            [node_id(&exp(0)), node_id(&exp(2)), node_id(&exp(4))],
            "p{p}"
        );
        let exp3 = exp(3);
        let ws = g.attr(&exp3, "experiment_workspace").unwrap();
        let path = g.object(g.attr(ws, "workspace_path").unwrap()).unwrap();
        let parts: Vec<&str> = path.args.iter().map(text).collect();
        assert!(join_posix(&parts).ends_with(&format!("{:032x}", 3)), "p{p}");
        let tracker = g.attr(&g.root, "tracker").unwrap();
        assert_eq!(g.attr(tracker, "loop_base"), Some(&g.root), "p{p}");
        let step_idx = g.attr(&g.root, "step_idx").unwrap();
        assert_eq!(
            g.class_of(step_idx),
            Some(("collections", "defaultdict")),
            "p{p}"
        );
        assert_eq!(g.pairs(step_idx).unwrap().len(), 6, "p{p}");
    }
}
