//! Skipped values (`Options::skip_values_of`): every pickle CPython writes decodes to the same graph as without
//! skipping, node for node and reference for reference, except that each value under a skipped key is
//! `Node::Skipped`; objects first defined inside a skipped value are decoded when something else refers to them;
//! whatever skimming cannot predict is decoded as usual; and the cost stays linear.

use std::collections::HashMap;

use super::support::{case, cpython_cases, decode_default};
use crate::pickle::{decode, Graph, Node, NodeId, Options, Value};
use crate::work;

const KEY: &str = "based_experiments";

fn skipping() -> Options {
    Options {
        skip_values_of: &[KEY],
        ..Options::default()
    }
}

fn decode_skipping(data: &[u8]) -> Graph {
    decode(data, &skipping()).unwrap_or_else(|e| panic!("decode with skipping: {e}"))
}

/// How the value under a skipped key must look in the graph decoded with skipping.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// Always `Node::Skipped`.
    Skipped,
    /// Never skipped: skimming cannot predict it, or skipping gave up.
    Decoded,
    /// Skipped or decoded: a value that went on where skimming took it to end (a list of one item, appended
    /// after the list's first opcodes) is decoded, and so is any once skimming has read its share of the input.
    Either,
}

/// Walk the graph decoded without skipping (`full`) and the one decoded with it (`lean`) side by side: the same
/// values and nodes everywhere, each node of `full` matched to exactly one node of `lean` (so shared references
/// and cycles are kept), except the values under a skipped key. Returns how many values were skipped.
fn compare(full: &Graph, lean: &Graph, expect: Expect) -> Result<usize, String> {
    compare_keys(full, lean, expect, &[KEY]).map(|by_key| by_key.values().sum())
}

/// `compare` for the values under any of `keys`; returns how many were skipped under each key.
fn compare_keys(
    full: &Graph,
    lean: &Graph,
    expect: Expect,
    keys: &[&str],
) -> Result<HashMap<String, usize>, String> {
    let mut walk = Walk {
        lean,
        expect,
        keys,
        todo: vec![(full.root.clone(), lean.root.clone(), "root".to_string())],
        skipped: HashMap::new(),
    };
    let mut matched: HashMap<NodeId, NodeId> = HashMap::new();
    while let Some((a, b, path)) = walk.todo.pop() {
        let (ia, ib) = match (&a, &b) {
            (Value::Node(ia), Value::Node(ib)) => (*ia, *ib),
            _ if format!("{a:?}") == format!("{b:?}") => continue,
            _ => return Err(format!("{path}: {a:?} against {b:?}")),
        };
        match matched.insert(ia, ib) {
            Some(seen) if seen == ib => continue,
            Some(seen) => {
                return Err(format!(
                    "{path}: node {ia:?} is {seen:?} elsewhere but {ib:?} here"
                ))
            }
            None => {}
        }
        match (full.node(ia), lean.node(ib)) {
            (Node::List(x), Node::List(y))
            | (Node::Tuple(x), Node::Tuple(y))
            | (Node::Set(x), Node::Set(y))
            | (Node::FrozenSet(x), Node::FrozenSet(y)) => walk.items(x, y, &path)?,
            (Node::Dict(x), Node::Dict(y)) => walk.pairs(x, y, &path)?,
            (Node::ByteArray(x), Node::ByteArray(y)) if x == y => {}
            (Node::Global { module, name }, Node::Global { module: m, name: n })
                if module == m && name == n => {}
            (Node::Object(x), Node::Object(y)) if x.kind == y.kind => {
                walk.items(
                    std::slice::from_ref(x.callable),
                    std::slice::from_ref(y.callable),
                    &format!("{path}.callable"),
                )?;
                walk.items(x.args, y.args, &format!("{path}.args"))?;
                walk.items(x.list_items, y.list_items, &format!("{path}.list_items"))?;
                match (x.state, y.state) {
                    (Some(p), Some(q)) => walk.items(
                        std::slice::from_ref(p),
                        std::slice::from_ref(q),
                        &format!("{path}.state"),
                    )?,
                    (None, None) => {}
                    _ => return Err(format!("{path}: a state on one side only")),
                }
                walk.pairs(x.kwargs, y.kwargs, &format!("{path}.kwargs"))?;
                walk.pairs(x.dict_items, y.dict_items, &format!("{path}.dict_items"))?;
            }
            (x, y) => return Err(format!("{path}: {x:?} against {y:?}")),
        }
    }
    Ok(walk.skipped)
}

struct Walk<'g> {
    lean: &'g Graph,
    expect: Expect,
    keys: &'g [&'g str],
    todo: Vec<(Value, Value, String)>,
    skipped: HashMap<String, usize>,
}

impl Walk<'_> {
    fn items(&mut self, x: &[Value], y: &[Value], at: &str) -> Result<(), String> {
        if x.len() != y.len() {
            return Err(format!("{at}: {} items against {}", x.len(), y.len()));
        }
        for (i, (p, q)) in x.iter().zip(y).enumerate() {
            self.todo.push((p.clone(), q.clone(), format!("{at}[{i}]")));
        }
        Ok(())
    }

    fn pairs(
        &mut self,
        x: &[(Value, Value)],
        y: &[(Value, Value)],
        at: &str,
    ) -> Result<(), String> {
        if x.len() != y.len() {
            return Err(format!("{at}: {} pairs against {}", x.len(), y.len()));
        }
        for (i, ((ka, va), (kb, vb))) in x.iter().zip(y).enumerate() {
            let under_key = ka.as_str().is_some_and(|k| self.keys.contains(&k));
            let skipped = matches!(vb, Value::Node(id) if self.lean.node(*id) == Node::Skipped);
            match (under_key, skipped, self.expect) {
                (true, true, Expect::Skipped | Expect::Either) => {
                    *self
                        .skipped
                        .entry(ka.as_str().unwrap_or_default().to_string())
                        .or_default() += 1
                }
                (true, true, Expect::Decoded) => {
                    return Err(format!("{at}[{i}]: skipped, expected decoded"))
                }
                (true, false, Expect::Skipped) => {
                    return Err(format!("{at}[{i}]: decoded, expected skipped"))
                }
                _ => self
                    .todo
                    .push((va.clone(), vb.clone(), format!("{at}[{i}].value"))),
            }
            self.todo
                .push((ka.clone(), kb.clone(), format!("{at}[{i}].key")));
        }
        Ok(())
    }
}

fn skip_case_names() -> Vec<&'static String> {
    let mut names: Vec<&String> = cpython_cases()
        .keys()
        .filter(|n| n.starts_with("skip/"))
        .collect();
    names.sort();
    names
}

#[test]
fn every_pickle_cpython_writes_decodes_alike_but_for_the_skipped_values() {
    let mut skipped_in_skip_cases = HashMap::new();
    let mut names: Vec<&String> = cpython_cases().keys().collect();
    names.sort();
    for name in names {
        let data = case(name);
        let full = decode_default(data).unwrap_or_else(|e| panic!("{name}: {e}"));
        let lean = decode_skipping(data);
        // Protocols 0 and 1 have no PROTO opcode: nothing is skipped there.
        let expect =
            if name.ends_with(".p0") || name.ends_with(".p1") || name.contains("chain_of_40") {
                Expect::Decoded
            } else {
                Expect::Either
            };
        let skipped = compare(&full, &lean, expect).unwrap_or_else(|e| panic!("{name}: {e}"));
        if name.starts_with("skip/") {
            skipped_in_skip_cases.insert(name.clone(), skipped);
        }
    }
    // The comparison is not vacuous: these values, and only these, were skipped. A value that goes on within a
    // few opcodes of where it first stands complete is skipped whole (a list's one short item APPENDed, an
    // object's NEWOBJ and BUILD); one that goes on further is not (a list of one object with a state).
    for (name, count) in &skipped_in_skip_cases {
        let expected = match name.rsplit_once('.').map(|(stem, _)| stem) {
            _ if name.ends_with(".p0") || name.ends_with(".p1") => 0,
            Some("skip/later_reference") => 1,
            // `{KEY: only}`, not `{KEY: [only]}` (the object's state comes before the list's APPEND).
            Some("skip/single_item") => 1,
            // The outer value; inside `middle`, `[deep]` is a list of one object with a state.
            Some("skip/nested") => 1,
            // `cycle`'s reference to itself and `looped`, a list whose one item is itself.
            Some("skip/cycles") => 2,
            Some("skip/not_a_key") => 0,
            Some("skip/deep_tuple") => 1,
            // All six: the str, and the dict, the object, the list, the set and the pair that go on.
            Some("skip/goes_on") => 6,
            // Every experiment's list: the first one's holds its baseline alone.
            Some("skip/rdagent_shape") => 9,
            Some("skip/chain_of_8") => 8,
            Some("skip/chain_of_40") => 0,
            other => panic!("no expected count for {other:?}"),
        };
        assert_eq!(*count, expected, "{name}: values skipped");
    }
    assert_eq!(skipped_in_skip_cases.len(), skip_case_names().len());
}

#[test]
fn lists_of_several_items_are_always_skipped() {
    for p in 2..=5 {
        for stem in ["skip/later_reference", "skip/chain_of_8"] {
            let name = format!("{stem}.p{p}");
            let full = decode_default(case(&name)).expect("decodes");
            compare(&full, &decode_skipping(case(&name)), Expect::Skipped)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

#[test]
fn an_object_first_defined_in_a_skipped_value_is_the_same_node_wherever_it_is_referred_to() {
    let g = decode_skipping(case("skip/later_reference.p4"));
    // [{KEY: [inner, Point(4, 5)], "after": inner}, inner]
    let top = g.items(&g.root).expect("a list");
    let dict = g.pairs(&top[0]).expect("a dict");
    assert!(matches!(dict[0].1, Value::Node(id) if g.node(id) == Node::Skipped));
    assert_eq!(dict[1].0.as_str(), Some("after"));
    let (after, last) = (&dict[1].1, &top[1]);
    assert!(matches!((after, last), (Value::Node(a), Value::Node(b)) if a == b));
    assert_eq!(g.class_of(last), Some(("fakemod.things", "Point")));
    assert!(matches!(g.attr(last, "x"), Some(Value::Int(1))));
}

#[test]
fn skipping_gives_up_and_decodes_everything_when_deferred_values_nest_too_deep() {
    // Forty values, each referring to an object the one before defines: bringing the last one back nests
    // forty decodes, more than the decoder allows, so it decodes the pickle again without skipping.
    for p in 2..=5 {
        let name = format!("skip/chain_of_40.p{p}");
        let lean = decode_skipping(case(&name));
        let full = decode_default(case(&name)).expect("decodes");
        compare(&full, &lean, Expect::Decoded).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// `PROTO 4`, a dict `{KEY: <value>, "k": 1}` in one SETITEMS batch, STOP.
fn dict_with(value: &[u8], before: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 4];
    p.extend_from_slice(before);
    p.extend_from_slice(b"}(");
    p.push(0x8c);
    p.push(KEY.len() as u8);
    p.extend_from_slice(KEY.as_bytes());
    p.extend_from_slice(value);
    p.extend_from_slice(b"\x8c\x01kK\x01u");
    p
}

#[test]
fn values_skimming_cannot_predict_are_decoded_as_usual() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // The value appends to a list stored before it (memo 0): that list must see the item.
        (
            "changes a memo reference",
            dict_with(b"h\x00K\x07a", b"]\x94"),
        ),
        // DUP, which CPython never writes.
        ("DUP", dict_with(b"]20", b"")),
        // Memo ids that do not count up one by one.
        ("a PUT out of order", dict_with(b"]q\x09", b"")),
        // A GET of an id not stored yet: the decoder's error to report.
        ("a GET ahead", dict_with(b"h\x05", b"")),
    ];
    for (what, mut data) in cases {
        data.extend_from_slice(b"0.");
        if what == "changes a memo reference" {
            // Keep the list: [list, dict] instead of popping.
            data.truncate(data.len() - 2);
            data.extend_from_slice(b"\x86.");
        }
        let lean = decode(&data, &skipping());
        let full = decode(&data, &Options::default());
        match (full, lean) {
            (Ok(full), Ok(lean)) => {
                compare(&full, &lean, Expect::Decoded).unwrap_or_else(|e| panic!("{what}: {e}"));
            }
            (Err(a), Err(b)) => assert_eq!(a, b, "{what}: the same error"),
            (a, b) => panic!("{what}: {a:?} against {b:?}"),
        }
    }
}

#[test]
fn the_key_must_be_a_dict_key_for_its_value_to_be_skipped() {
    for p in 2..=5 {
        let name = format!("skip/not_a_key.p{p}");
        let full = decode_default(case(&name)).expect("decodes");
        compare(&full, &decode_skipping(case(&name)), Expect::Decoded)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// `PROTO 4` and `n` dicts nested through their second entry, whose key is a tuple:
/// `{KEY: None, (1, 2, 3, 4): {KEY: None, (1, 2, 3, 4): ...}}`. The tuple's MARK could open a batch of items for
/// the `KEY` value, so skimming that value reads on to its dict's SETITEMS, past every deeper dict.
fn nested_siblings(n: usize) -> Vec<u8> {
    let mut p = vec![0x80, 4];
    for _ in 0..n {
        p.extend_from_slice(b"}\x94(");
        p.push(0x8c);
        p.push(KEY.len() as u8);
        p.extend_from_slice(KEY.as_bytes());
        p.extend_from_slice(b"N(K\x01K\x02K\x03K\x04t");
    }
    p.extend_from_slice(b"}");
    p.extend(vec![b'u'; n]);
    p.push(b'.');
    p
}

#[test]
fn skimming_reads_at_most_as_many_opcodes_as_the_input_has_bytes() {
    let work_for = |n: usize| {
        let data = nested_siblings(n);
        work::take();
        let lean = decode_skipping(&data);
        let spent = work::take();
        let full = decode_default(&data).expect("decodes");
        let plain = work::take();
        let skipped = compare(&full, &lean, Expect::Either).expect("the same graph");
        (spent, plain, data.len() as u64, skipped)
    };
    for n in [500, 2000] {
        let (spent, plain, len, skipped) = work_for(n);
        // Without a bound the skims alone would read n * n / 2 opcodes.
        assert!(
            spent <= plain + len,
            "{n} dicts: {spent} steps, {plain} without skipping, {len} bytes"
        );
        assert!(skipped > 0 && skipped < n, "{n} dicts: {skipped} skipped");
    }
}

#[test]
fn rdagent_shaped_history_keeps_every_experiment_and_decision() {
    for p in 2..=5 {
        let name = format!("skip/rdagent_shape.p{p}");
        let g = decode_skipping(case(&name));
        let hist = g
            .attr(&g.root, "hist")
            .and_then(|h| g.items(h))
            .expect("hist");
        assert_eq!(hist.len(), 8, "{name}");
        for (i, entry) in hist.iter().enumerate() {
            let items = g.items(entry).expect("a tuple");
            let path = g
                .attr(&items[0], "workspace")
                .and_then(|w| g.attr(w, "workspace_path"))
                .expect("a workspace path");
            assert_eq!(g.class_of(path).map(|c| c.1), Some("PosixPath"), "{name}");
            assert_eq!(
                g.attr(&items[1], "decision").and_then(Value::as_bool),
                Some(i % 3 != 1),
                "{name} entry {i}"
            );
        }
    }
}

#[test]
fn snapshots_shaped_like_rdagents_give_the_same_history_when_skipping() {
    for protocol in 2..=5 {
        let data = super::fixtures::fixture_snapshot(protocol, 12, protocol == 4);
        let full = decode_default(&data).unwrap_or_else(|e| panic!("p{protocol}: {e}"));
        let lean = decode_skipping(&data);
        let skipped =
            compare(&full, &lean, Expect::Either).unwrap_or_else(|e| panic!("p{protocol}: {e}"));
        let history =
            |g: &Graph| crate::session::history::read_history(g).expect("a loop snapshot");
        let (plain, skipping) = (history(&full), history(&lean));
        // Every experiment's list but those of one item (the first factor loop's baseline alone).
        assert!(
            skipped + 2 >= plain.len(),
            "p{protocol}: {skipped} values skipped for {} entries",
            plain.len()
        );
        assert_eq!(plain, skipping, "p{protocol}");
    }
}

#[test]
fn the_history_readers_skims_leave_the_history_as_it_is_and_skip_what_they_list() {
    use crate::session::snapshot::HISTORY_SKIPS;
    let history_reader = Options {
        skip_values_of: HISTORY_SKIPS,
        ..Options::default()
    };
    for protocol in 2..=5 {
        for signed in [false, true] {
            let at = format!("p{protocol} signed={signed}");
            let data = super::fixtures::fixture_snapshot(protocol, 12, signed);
            let full = decode_default(&data).unwrap_or_else(|e| panic!("{at}: {e}"));
            let lean = decode(&data, &history_reader).unwrap_or_else(|e| panic!("{at}: {e}"));
            let skipped = compare_keys(&full, &lean, Expect::Either, HISTORY_SKIPS)
                .unwrap_or_else(|e| panic!("{at}: {e}"));
            let history =
                |g: &Graph| crate::session::history::read_history(g).expect("a loop snapshot");
            assert_eq!(history(&full), history(&lean), "{at}");
            // Every experiment's hypothesis, tasks, workspaces, per-task results and files.
            let count = |key: &str| skipped.get(key).copied().unwrap_or(0);
            for key in [
                "hypothesis",
                "sub_tasks",
                "sub_workspace_list",
                "sub_results",
                "file_dict",
            ] {
                assert!(count(key) >= 12, "{at}: {key} skipped {} times", count(key));
            }
            // The loop's own bookkeeping, once each.
            for key in ["dag_parent", "loop_trace", "timer", "tracker"] {
                assert_eq!(count(key), 1, "{at}: {key}");
            }
            assert!(count("based_experiments") >= 10, "{at}");
        }
    }
}

#[test]
fn without_metrics_the_history_is_the_same_but_for_the_metrics_and_each_result_is_skimmed() {
    use crate::session::snapshot::Reading;
    // The two lists differ by the result keys alone.
    let (all, lean) = (Reading::Everything.skips(), Reading::WithoutMetrics.skips());
    assert!(all.iter().all(|k| lean.contains(k)));
    let extra: Vec<&&str> = lean.iter().filter(|k| !all.contains(k)).collect();
    assert_eq!(extra, [&"running_info", &"result"]);
    let options = |reading: Reading| Options {
        skip_values_of: reading.skips(),
        ..Options::default()
    };
    for protocol in 2..=5 {
        let at = format!("p{protocol}");
        let data = super::fixtures::fixture_snapshot(protocol, 12, protocol == 5);
        let history = |reading: Reading| {
            let graph = decode(&data, &options(reading)).unwrap_or_else(|e| panic!("{at}: {e}"));
            crate::session::history::read_history(&graph).expect("a loop snapshot")
        };
        let (all, lean) = (
            history(Reading::Everything),
            history(Reading::WithoutMetrics),
        );
        let with_metrics = all.iter().filter(|e| e.metrics.is_some()).count();
        assert!(
            with_metrics >= 10,
            "{at}: {with_metrics} entries with metrics"
        );
        assert!(lean.iter().all(|e| e.metrics.is_none()), "{at}");
        let without = |h: &[crate::session::HistoryEntry]| {
            h.iter()
                .map(|e| crate::session::HistoryEntry {
                    metrics: None,
                    ..e.clone()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(without(&all), lean, "{at}");
        // Each experiment's result is skimmed, not decoded and dropped.
        let full = decode_default(&data).expect("decodes");
        let leaner = decode(&data, &options(Reading::WithoutMetrics)).expect("decodes");
        let skipped = compare_keys(
            &full,
            &leaner,
            Expect::Either,
            Reading::WithoutMetrics.skips(),
        )
        .unwrap_or_else(|e| panic!("{at}: {e}"));
        let results = skipped.get("running_info").copied().unwrap_or(0)
            + skipped.get("result").copied().unwrap_or(0);
        assert!(results >= with_metrics, "{at}: {skipped:?}");
    }
}

#[test]
fn the_deferred_values_are_found_by_the_highest_first_id_at_or_below_an_id() {
    use crate::pickle::decode::Deferred;
    let mut d = Deferred::default();
    assert!(d.is_empty() && d.at_or_before(5).is_none());
    // The main decode's values in order, then one of them decoded: the values skipped inside it take ids it had
    // set aside (the first of them at its very first id).
    d.insert(10, 0, false);
    d.insert(20, 1, false);
    d.insert(40, 2, false);
    assert_eq!(d.at_or_before(9), None);
    assert_eq!(d.at_or_before(10), Some(0));
    assert_eq!(d.at_or_before(24), Some(1));
    assert_eq!(d.at_or_before(u64::MAX), Some(2));
    d.remove(20);
    assert_eq!(
        d.at_or_before(24),
        None,
        "20 was decoded: nothing else can hold 24"
    );
    d.insert(20, 3, true);
    d.insert(25, 4, true);
    assert_eq!(d.at_or_before(21), Some(3));
    assert_eq!(d.at_or_before(25), Some(4));
    assert_eq!(d.at_or_before(39), Some(4));
    assert_eq!(d.at_or_before(40), Some(2));
    // A main-decode value out of order goes with the nested ones; removing an id not there changes nothing.
    d.insert(30, 5, false);
    assert_eq!(d.at_or_before(31), Some(5));
    d.remove(21);
    d.remove(25);
    assert_eq!(d.at_or_before(26), Some(3));
    for id in [10, 20, 30, 40, 40] {
        d.remove(id);
    }
    assert!(d.is_empty());
    assert_eq!(d.at_or_before(45), None);
}

#[test]
fn the_memo_keeps_no_slots_for_ids_set_aside_and_finds_every_id_around_them() {
    use crate::pickle::decode::Memo;
    // Ids 0..3 stored, 3..103 set aside, 103..105 stored, 105..1105 set aside, then 1105..1108 stored: the ids a
    // decode of CPython's output stores around two skipped values.
    let mut memo = Memo::default();
    let stored = |id: u64| Value::Int(id as i64);
    for id in 0..3 {
        memo.put(id, stored(id));
    }
    assert!(memo.is_dense());
    memo.reserve(100);
    for id in 103..105 {
        memo.put(id, stored(id));
    }
    memo.reserve(1000);
    for id in 1105..1108 {
        memo.put(id, stored(id));
    }
    assert_eq!(memo.count, 1108);
    assert_eq!(
        memo.dense.len(),
        8,
        "one slot per id stored, none per id set aside"
    );
    assert!(memo.is_dense());
    // Looked up in every order (the lookup remembers the run it last searched).
    let ids: Vec<u64> = (0..1110)
        .chain((0..1110).rev())
        .chain([104, 3, 1104, 50, 103, 2, 1107])
        .collect();
    for id in ids {
        let expected = match id {
            0..=2 | 103..=104 | 1105..=1107 => Some(stored(id)),
            _ => None,
        };
        assert_eq!(memo.get(id), expected.as_ref(), "id {id}");
    }
    // A deferred value decoded after all stores its objects under its ids; only set-aside ids take them.
    assert!(memo.fill(3, Value::Int(-3)));
    assert!(memo.fill(1104, Value::Int(-1104)));
    assert!(
        !memo.fill(104, Value::Int(0)),
        "104 was stored, not set aside"
    );
    assert!(!memo.fill(1108, Value::Int(0)), "1108 is past every run");
    assert_eq!(memo.get(3), Some(&Value::Int(-3)));
    assert_eq!(memo.get(1104), Some(&Value::Int(-1104)));
    assert_eq!(memo.get(4), None, "the run's other ids are still set aside");
    assert_eq!(memo.get(104), Some(&stored(104)));
    assert_eq!((memo.count, memo.dense.len()), (1108, 8));
    // The next stored id lands in the next slot.
    memo.put(1108, stored(1108));
    assert_eq!((memo.get(1108), memo.dense.len()), (Some(&stored(1108)), 9));
}

#[test]
fn skip_keys_are_told_apart_from_strs_of_the_same_length_and_first_bytes() {
    use crate::pickle::decode::SkipKeys;
    let long: &'static str =
        "a_key_of_seventy_bytes_which_no_snapshot_has_but_the_test_does_________";
    let keys: &'static [&'static str] = Box::leak(
        vec![
            "result",
            "sub_tasks",
            "based_experiments",
            "based_experiments_2",
            long,
        ]
        .into_boxed_slice(),
    );
    let k = SkipKeys::new(keys);
    for key in keys {
        assert!(k.may_be(key.len()) && k.contains(key), "{key}");
    }
    // Same length, other bytes; same first 8 bytes, other length or end; not a key at all.
    for not in [
        "stdout",
        "file_dict",
        "based_experimentz",
        "based_exp",
        "based_experiments_3",
        "",
        "r",
        "resul",
        "results",
    ] {
        assert!(!k.contains(not), "{not}");
    }
    assert!(!k.may_be(0) && !k.may_be(5) && !k.may_be(63) && k.may_be(6) && k.may_be(9));
    assert!(
        k.may_be(70) && k.may_be(64),
        "a key of 64 bytes or more: every long str may be one"
    );
    let short = SkipKeys::new(&["result"]);
    assert!(!short.may_be(64) && !short.may_be(1000));
}

#[test]
fn ids_between_many_runs_are_found_however_lookups_alternate_and_runs_are_added() {
    use crate::pickle::decode::Memo;
    // Runs of set-aside ids of lengths 1 to 7 with 1 to 3 ids stored between them, like the values a long
    // snapshot skips; ids looked up again and again (early keys) and ids that share a cache entry (equal modulo
    // any power of two up to 4,096) alternate with ids near the end, and runs are added between lookups.
    let mut memo = Memo::default();
    let mut stored = std::collections::BTreeSet::new();
    let mut id = 0u64;
    let check = |memo: &Memo, stored: &std::collections::BTreeSet<u64>, top: u64| {
        let early = [0u64, 1, 2, 5, 9, 4096, 8192, 4097];
        for i in 0..top {
            for probe in [i, early[(i % 8) as usize], top - 1 - i, (i * 4096) % top] {
                let expected = stored.contains(&probe).then_some(Value::Int(probe as i64));
                assert_eq!(memo.get(probe), expected.as_ref(), "id {probe} of {top}");
            }
        }
    };
    for round in 0..3u64 {
        for k in 0..2000u64 {
            for _ in 0..(k % 3 + 1) {
                memo.put(id, Value::Int(id as i64));
                stored.insert(id);
                id += 1;
            }
            let n = (k + round) % 7 + 1;
            memo.reserve(n);
            id += n;
        }
        assert_eq!(memo.count, id);
        check(&memo, &stored, id);
    }
}

/// `n` dicts `{"skipme": [i]}`, each list memoized inside the skipped value, then one list referring to every one
/// of those lists in turn: each reference decodes one deferred value.
fn referred_in_turn(n: i32) -> Vec<u8> {
    let mut w = crate::pickle::testpickle::Writer::default();
    w.op(b']').mark();
    let mut ids = Vec::new();
    for i in 0..n {
        w.op(b'}').str("skipme").op(b']');
        ids.push(w.memoize());
        w.int(i).op(b'a').op(b's');
    }
    w.op(b']').mark();
    for id in ids {
        w.get(id);
    }
    w.op(b'e').op(b'e');
    w.stop()
}

#[test]
fn values_skipped_then_each_referred_to_in_turn_decode_alike_in_linear_work() {
    let options = Options {
        skip_values_of: &["skipme"],
        ..Options::default()
    };
    let mut work = Vec::new();
    for n in [2_000, 4_000] {
        let data = referred_in_turn(n);
        let full = decode_default(&data).expect("decodes");
        work::take();
        let lean = decode(&data, &options).expect("decodes");
        work.push(work::take());
        let skipped = compare_keys(&full, &lean, Expect::Either, &["skipme"]).expect("alike");
        assert_eq!(
            skipped.get("skipme").copied(),
            Some(n as usize),
            "every value skipped first"
        );
    }
    assert!(work[1] <= 2 * work[0] + 1_000, "work {work:?}");
}
