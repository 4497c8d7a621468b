//! Hostile input: every input must give a graph or a `PickleError`, never a panic, a hang, a huge allocation
//! or a stack overflow.

use super::super::Memo;
use super::support::{case, cpython_cases, decode_default, err, ok, Rng};
use crate::pickle::{decode, Graph, Node, Options, PickleError, Value};

/// Every node id reachable from the root or stored in a node is inside the arena.
fn assert_consistent(g: &Graph) {
    let n = g.node_count();
    let check = |v: &Value| {
        if let Value::Node(id) = v {
            assert!((id.0 as usize) < n, "dangling node id {id:?} of {n}");
        }
    };
    check(&g.root);
    for node in g.nodes() {
        match node {
            Node::List(v) | Node::Tuple(v) | Node::Set(v) | Node::FrozenSet(v) => {
                v.iter().for_each(check)
            }
            Node::Dict(pairs) => pairs.iter().for_each(|(k, v)| {
                check(k);
                check(v);
            }),
            Node::Object(obj) => {
                check(obj.callable);
                obj.args.iter().for_each(check);
                obj.kwargs.iter().chain(obj.dict_items).for_each(|(k, v)| {
                    check(k);
                    check(v);
                });
                obj.state.into_iter().for_each(check);
                obj.list_items.iter().for_each(check);
            }
            Node::ByteArray(_) | Node::Global { .. } | Node::Skipped => {}
        }
    }
}

/// Decode anything: a panic fails the test; an error must point inside the input.
fn decode_any(data: &[u8]) -> Result<Graph, PickleError> {
    let result = decode_default(data);
    match &result {
        Ok(g) => assert_consistent(g),
        Err(e) => {
            assert!(
                e.offset <= data.len(),
                "error offset {} beyond input of {}",
                e.offset,
                data.len()
            );
            assert!(!e.message.is_empty());
        }
    }
    result
}

/// The length of the nested chain below `v`, following the first item of each list or tuple (iteratively).
fn chain_depth(g: &Graph, v: &Value) -> usize {
    let mut depth = 0;
    let mut current = v.clone();
    while let Some(first) = g.items(&current).and_then(|items| items.first()) {
        current = first.clone();
        depth += 1;
    }
    depth
}

#[test]
fn every_prefix_of_real_pickles_is_an_error() {
    let mut names: Vec<&String> = cpython_cases()
        .keys()
        .filter(|n| n.starts_with("graph/") && !n.starts_with("graph/blobs"))
        .collect();
    names.sort();
    let mut prefixes = 0;
    for name in names {
        let data = case(name);
        for len in 0..data.len() {
            let e = match decode_any(&data[..len]) {
                Ok(g) => panic!("{name} cut at {len} decoded to {:?}", g.root),
                Err(e) => e,
            };
            assert!(e.offset <= len, "{name} cut at {len}: {e}");
            prefixes += 1;
        }
        assert!(decode_any(data).is_ok(), "{name}");
    }
    assert!(prefixes > 20_000, "only {prefixes} prefixes tried");
}

#[test]
fn truncated_big_blob_is_an_error_before_allocation() {
    for p in 3..=5 {
        let data = case(&format!("graph/blobs.p{p}"));
        // Cut inside the 100 kB payload: the declared length exceeds what remains.
        let e = decode_any(&data[..data.len() / 2]).unwrap_err();
        assert!(e.message.contains("but only"), "p{p}: {e}");
    }
}

#[test]
fn bit_flipped_real_pickles_never_panic() {
    let mut rng = Rng::new(0x5eed_f11b);
    let sources: Vec<&[u8]> = (0..=5)
        .map(|p| case(&format!("graph/snapshot.p{p}")))
        .chain(
            [
                "graph/subclasses.p2",
                "graph/slots.p4",
                "graph/defaultdict.p1",
                "graph/path.p0",
            ]
            .map(case),
        )
        .collect();
    let (mut decoded, mut rejected) = (0, 0);
    for round in 0..4000 {
        let mut data = sources[round % sources.len()].to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(data.len());
            match rng.below(4) {
                0 => data[at] = rng.next_u64() as u8,
                1 => data[at] ^= 1 << rng.below(8),
                2 => data[at] = 0xff,
                _ => {
                    data.remove(at);
                }
            }
        }
        match decode_any(&data) {
            Ok(_) => decoded += 1,
            Err(_) => rejected += 1,
        }
    }
    // Both outcomes occur: flips inside strings keep the pickle valid, flips of opcodes break it.
    assert!(
        decoded > 100 && rejected > 100,
        "decoded {decoded}, rejected {rejected}"
    );
}

/// Opcode bytes with plausible (small) arguments, so random programs get past the first opcode.
fn random_program(rng: &mut Rng) -> Vec<u8> {
    const TEXT_ARGS: [&[u8]; 8] = [
        b"1\n",
        b"00\n",
        b"-5\n",
        b"'a'\n",
        b"mod\nname\n",
        b"1.5\n",
        b"x\n",
        b"\n",
    ];
    const OPS: &[u8] = b"(.0123FIJKLMNPQRSTUVXabcd}eghijl]opqrst)uGBC\
        \x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98";
    let mut out = Vec::new();
    for _ in 0..rng.below(40) {
        let op = OPS[rng.below(OPS.len())];
        out.push(op);
        let small = |rng: &mut Rng| (rng.below(6)) as u8;
        match op {
            b'F' | b'I' | b'L' | b'S' | b'V' | b'c' | b'i' | b'g' | b'p' | b'P' => {
                out.extend_from_slice(TEXT_ARGS[rng.below(TEXT_ARGS.len())]);
            }
            b'K' | b'h' | b'q' | 0x80 | 0x82 => out.push(small(rng)),
            b'M' | 0x83 => out.extend_from_slice(&[small(rng), 0]),
            b'J' | b'j' | b'r' | 0x84 => out.extend_from_slice(&[small(rng), 0, 0, 0]),
            b'G' => out.extend_from_slice(&rng.next_u64().to_le_bytes()),
            b'U' | b'C' | 0x8c | 0x8a => {
                let n = small(rng);
                out.push(n);
                (0..n).for_each(|_| out.push(rng.next_u64() as u8));
            }
            b'T' | b'X' | b'B' | 0x8b => {
                let n = small(rng);
                out.extend_from_slice(&[n, 0, 0, 0]);
                (0..n).for_each(|_| out.push(b'a' + n));
            }
            0x8d | 0x8e | 0x96 | 0x95 => {
                let n = small(rng);
                out.extend_from_slice(&u64::from(n).to_le_bytes());
                if op != 0x95 {
                    (0..n).for_each(|_| out.push(0xc3));
                }
            }
            _ => {}
        }
    }
    if rng.below(4) != 0 {
        out.push(b'.');
    }
    out
}

#[test]
fn random_input_never_panics() {
    let mut rng = Rng::new(42);
    let mut decoded = 0;
    for round in 0..6000 {
        let data: Vec<u8> = if round % 3 == 0 {
            (0..rng.below(64)).map(|_| rng.next_u64() as u8).collect()
        } else {
            random_program(&mut rng)
        };
        if decode_any(&data).is_ok() {
            decoded += 1;
        }
    }
    assert!(
        decoded > 50,
        "random programs should sometimes be valid, got {decoded}"
    );
}

#[test]
fn huge_declared_lengths_are_rejected_before_allocation() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            [&b"\x80\x04\x8e"[..], &(1u64 << 63).to_le_bytes(), b"."].concat(),
            "BINBYTES8 needs 9223372036854775808",
        ),
        (
            [&b"\x80\x04\x8d"[..], &u64::MAX.to_le_bytes(), b"."].concat(),
            "BINUNICODE8 needs 18446744073709551615",
        ),
        (
            [&b"\x80\x05\x96"[..], &u64::MAX.to_le_bytes()].concat(),
            "BYTEARRAY8 needs",
        ),
        (
            b"X\xff\xff\xff\xffabc.".to_vec(),
            "BINUNICODE needs 4294967295 byte(s) but only 4 remain",
        ),
        (
            b"\x80\x03B\xff\xff\xff\xff.".to_vec(),
            "BINBYTES needs 4294967295",
        ),
        (b"T\xff\xff\xff\x7f.".to_vec(), "BINSTRING needs 2147483647"),
        (
            b"\x80\x02\x8b\xff\xff\xff\x7f.".to_vec(),
            "LONG4 needs 2147483647",
        ),
        (b"\x80\x03C\xffabc.".to_vec(), "SHORT_BINBYTES needs 255"),
        (
            [&b"\x80\x04\x95"[..], &u64::MAX.to_le_bytes(), b"N."].concat(),
            "FRAME declares 18446744073709551615",
        ),
        (b"\x80\x04\x95\x01\x00".to_vec(), "FRAME needs 8"),
    ];
    for (data, expected) in cases {
        let e = err(&data);
        assert!(e.message.contains(expected), "{expected}: {e}");
    }
}

#[test]
fn deep_list_nesting_is_bounded_or_decoded_iteratively() {
    let n = 100_000;
    let data = [vec![b']'; n], vec![b'a'; n - 1], vec![b'.']].concat();
    let e = err(&data);
    assert!(e.message.contains("Options::max_depth"), "{e}");
    assert_eq!(
        e.offset,
        Options::default().max_depth,
        "the stack fills at the limit"
    );

    let opts = Options {
        max_depth: 2 * n,
        ..Options::default()
    };
    let g = decode(&data, &opts).unwrap();
    assert_eq!(chain_depth(&g, &g.root), n - 1);
}

#[test]
fn mark_storms_are_bounded_or_decoded_iteratively() {
    let n = 100_000;
    let e = err(&[vec![b'('; n], vec![b'.']].concat());
    assert!(e.message.contains("MARK nesting deeper than 10000"), "{e}");

    let data = [vec![b'('; n], vec![b't'; n], vec![b'.']].concat();
    let opts = Options {
        max_depth: 2 * n,
        ..Options::default()
    };
    let g = decode(&data, &opts).unwrap();
    assert_eq!(chain_depth(&g, &g.root), n - 1);
}

#[test]
fn deep_chains_built_through_the_memo_decode_and_drop() {
    // L_k = [L_{k-1}] with a constant-size stack: the graph is 100k deep, the decoder and drop stay flat.
    let n: u32 = 100_000;
    let mut data = b"\x80\x02]r\x00\x00\x00\x000".to_vec();
    for k in 1..n {
        data.push(b']');
        data.push(b'r');
        data.extend_from_slice(&k.to_le_bytes());
        data.push(b'j');
        data.extend_from_slice(&(k - 1).to_le_bytes());
        data.extend_from_slice(b"a0");
    }
    data.push(b'j');
    data.extend_from_slice(&(n - 1).to_le_bytes());
    data.push(b'.');
    let g = ok(&data);
    assert_eq!(g.node_count(), n as usize);
    assert_eq!(chain_depth(&g, &g.root), n as usize - 1);
    drop(g);
}

#[test]
fn huge_memo_ids_do_not_allocate_a_huge_memo() {
    let g = ok(b"K\x07r\xff\xff\xff\xff0j\xff\xff\xff\xff.");
    assert_eq!(g.root, Value::Int(7));
    let g = ok(b"K\x07p18446744073709551615\n0g18446744073709551615\n.");
    assert_eq!(g.root, Value::Int(7));

    let mut memo = Memo::default();
    let mut rng = Rng::new(7);
    for i in 0..10_000u64 {
        let id = if i % 2 == 0 { rng.next_u64() } else { i };
        memo.put(id, Value::Int(i as i64));
        assert!(
            memo.dense.len() as u64 <= memo.dense_limit(),
            "dense memo grew to {}",
            memo.dense.len()
        );
    }
    assert!(memo.dense.len() <= 2 * 10_000 + 1024);
    assert_eq!(memo.count, 10_000);
}

#[test]
fn memo_entries_stored_sparse_stay_reachable_after_the_dense_part_grows() {
    let mut memo = Memo::default();
    memo.put(5000, Value::Int(-1));
    assert!(
        memo.dense.len() < 5000,
        "a far id goes to the sparse map first"
    );
    // The dense part is filled up to the highest id stored: ids past the sparse one make it grow past it.
    for i in (0..6000u64).filter(|i| *i != 4999 && *i != 5000) {
        memo.put(i, Value::Int(i as i64));
    }
    assert!(
        memo.dense.len() > 5000,
        "the dense part grew past the sparse id"
    );
    assert_eq!(memo.get(5000), Some(&Value::Int(-1)));
    assert_eq!(memo.get(4498), Some(&Value::Int(4498)));
    assert_eq!(memo.get(5999), Some(&Value::Int(5999)));
    assert_eq!(
        memo.dense.len(),
        6000,
        "filled up to the highest id, no further"
    );
    assert_eq!(memo.get(4999), None);
    assert_eq!(memo.count, 5999);
    // MEMOIZE after that uses the count of distinct ids.
    memo.put(5000, Value::Int(-2));
    assert_eq!((memo.count, memo.get(5000)), (5999, Some(&Value::Int(-2))));
}

#[test]
fn reusing_a_big_argument_tuple_cannot_multiply_memory() {
    // One 1000-item tuple (memo 0) and a callable (memo 1), then "h\x01h\x00R0" (6 bytes): a REDUCE of 1000
    // arguments, popped.
    let mut data = b"\x80\x02(".to_vec();
    data.extend(std::iter::repeat_n(b'N', 1000));
    data.extend_from_slice(b"tq\x00cm\nf\nq\x01");
    for _ in 0..20_000 {
        data.extend_from_slice(b"h\x01h\x00R0");
    }
    data.extend_from_slice(b"N.");
    // Every REDUCE shares the tuple's items instead of copying them: 20,000 objects of 1,000 arguments each
    // hold 1,000 values in all, not 20 million.
    crate::work::take();
    let g = ok(&data);
    let work = crate::work::take();
    assert_eq!(g.node_count(), 1 + 1 + 20_000);
    assert!(g.arena_len() <= 1000, "{} values stored", g.arena_len());
    assert!(
        work <= 4 * data.len() as u64,
        "{work} steps for {} bytes",
        data.len()
    );
    let last = g.nodes().last().unwrap();
    match last {
        Node::Object(obj) => assert_eq!(obj.args.len(), 1000),
        other => panic!("{other:?}"),
    }

    // A few reuses are fine.
    let mut data = b"\x80\x02(".to_vec();
    data.extend(std::iter::repeat_n(b'N', 1000));
    data.extend_from_slice(b"tq\x00cm\nf\nq\x01h\x01h\x00Rh\x01h\x00R\x86.");
    let g = ok(&data);
    let items = g.items(&g.root).unwrap();
    assert_eq!(g.object(&items[1]).unwrap().args.len(), 1000);
}

#[test]
fn memo_ids_just_below_the_dense_limit_cost_linear_work() {
    let count = |s: usize| {
        let data = crate::pickle::testpickle::memo_below_the_dense_limit(s);
        crate::work::take();
        let g = ok(&data);
        assert_eq!(g.root, Value::None);
        (data.len(), crate::work::take())
    };
    let (n1, w1) = count(2000);
    let (n2, w2) = count(8000);
    assert!(n2 <= 5 * n1);
    assert!(
        w2 <= 5 * w1 && w2 <= 16 * n2 as u64,
        "memo work grew from {w1} ({n1} bytes) to {w2} ({n2} bytes): more than linear"
    );
}

#[test]
fn room_reserved_from_the_input_length_is_capped() {
    // A length no snapshot has (1 TiB): each arena still reserves at most the cap in address space.
    let mut graph = Graph::default();
    let mut memo = Memo::default();
    super::super::reserve_by_input(1 << 40, &mut graph, &mut memo);
    let cap = super::super::RESERVE_CAP_BYTES;
    assert!(graph.values.capacity() * std::mem::size_of::<Value>() <= cap);
    assert!(graph.pairs.capacity() * std::mem::size_of::<(Value, Value)>() <= cap);
    assert!(graph.slots.capacity() * std::mem::size_of::<crate::pickle::value::Slot>() <= cap);
    assert!(
        graph.objects.capacity() * std::mem::size_of::<crate::pickle::value::ObjectRec>() <= cap
    );
    assert!(memo.dense.capacity() * std::mem::size_of::<Option<Value>>() <= cap);
    assert!(graph.values.capacity() > 0, "the cap still reserves");
    // A small input reserves in proportion: 3 MB, about what 100 loops hold.
    let mut graph = Graph::default();
    let mut memo = Memo::default();
    super::super::reserve_by_input(3_000_000, &mut graph, &mut memo);
    assert!((20_000..30_000).contains(&graph.values.capacity()));
    assert!((15_000..25_000).contains(&memo.dense.capacity()));
}
