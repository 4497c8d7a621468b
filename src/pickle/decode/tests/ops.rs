//! One or more hand-written byte strings per opcode, protocol 0/1 text forms included.

use super::support::{err, graph_tree, ok, twos_complement_decimal, Tree};
use crate::pickle::{decode, BuildKind, Graph, Node, Options, Value};

fn root_tree(data: &[u8]) -> Tree {
    let g = ok(data);
    graph_tree(&g, &g.root)
}

fn int(i: i64) -> Tree {
    Tree::Int(i.to_string())
}

fn s(text: &str) -> Tree {
    Tree::Str(text.to_string())
}

fn big_decimal(g: &Graph) -> String {
    match &g.root {
        Value::BigInt(bytes) => twos_complement_decimal(bytes),
        other => panic!("expected a big int, got {other:?}"),
    }
}

#[test]
fn int_text_forms_and_bools() {
    assert_eq!(ok(b"I42\n.").root, Value::Int(42));
    assert_eq!(ok(b"I-7\n.").root, Value::Int(-7));
    assert_eq!(ok(b"I01\n.").root, Value::Bool(true));
    assert_eq!(ok(b"I00\n.").root, Value::Bool(false));
    assert_eq!(ok(b"I0\n.").root, Value::Int(0));
    assert_eq!(ok(b"I-9223372036854775808\n.").root, Value::Int(i64::MIN));
    assert_eq!(
        big_decimal(&ok(b"I99999999999999999999\n.")),
        "99999999999999999999"
    );
    let e = err(b"I12x\n.");
    assert!(e.message.contains("invalid integer"), "{e}");
}

#[test]
fn long_text_with_and_without_suffix() {
    assert_eq!(ok(b"L123L\n.").root, Value::Int(123));
    assert_eq!(ok(b"L5\n.").root, Value::Int(5));
    assert_eq!(
        big_decimal(&ok(b"L-99999999999999999999L\n.")),
        "-99999999999999999999"
    );
    assert_eq!(
        big_decimal(&ok(b"L9223372036854775808L\n.")),
        "9223372036854775808"
    );
    assert_eq!(
        big_decimal(&ok(b"L-9223372036854775809L\n.")),
        "-9223372036854775809"
    );
    let digits = "1".repeat(5000);
    let e = err(format!("L{digits}L\n.").as_bytes());
    assert!(e.message.contains("5000 digits"), "{e}");
}

#[test]
fn binary_ints() {
    assert_eq!(ok(b"J\xff\xff\xff\xff.").root, Value::Int(-1));
    assert_eq!(
        ok(b"J\x00\x00\x00\x80.").root,
        Value::Int(i64::from(i32::MIN))
    );
    assert_eq!(ok(b"K\xff.").root, Value::Int(255));
    assert_eq!(ok(b"M\xff\xff.").root, Value::Int(65535));
    assert_eq!(ok(b"\x80\x02\x8a\x00.").root, Value::Int(0));
    assert_eq!(ok(b"\x80\x02\x8a\x01\xff.").root, Value::Int(-1));
    assert_eq!(ok(b"\x80\x02\x8a\x02\x00\x80.").root, Value::Int(-32768));
    assert_eq!(ok(b"\x80\x02\x8a\x03\x00\x80\x00.").root, Value::Int(32768));
    assert_eq!(
        ok(b"\x80\x02\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80.").root,
        Value::Int(i64::MIN)
    );
    // Nine bytes that only repeat the sign still fit.
    assert_eq!(
        ok(b"\x80\x02\x8a\x09\xff\xff\xff\xff\xff\xff\xff\xff\xff.").root,
        Value::Int(-1)
    );
    let g = ok(b"\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00.");
    assert_eq!(big_decimal(&g), "9223372036854775808");
    let g = ok(b"\x80\x02\x8b\x09\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01.");
    assert_eq!(big_decimal(&g), "18446744073709551616");
    assert_eq!(ok(b"\x80\x02\x8b\x00\x00\x00\x00.").root, Value::Int(0));
    let e = err(b"\x80\x02\x8b\xff\xff\xff\xff.");
    assert!(e.message.contains("LONG4 has a negative length"), "{e}");
}

#[test]
fn floats_text_and_binary() {
    assert_eq!(ok(b"F1.5\n.").root, Value::Float(1.5));
    assert_eq!(ok(b"F-2e-3\n.").root, Value::Float(-0.002));
    assert_eq!(ok(b"F-inf\n.").root, Value::Float(f64::NEG_INFINITY));
    assert!(matches!(ok(b"Fnan\n.").root, Value::Float(f) if f.is_nan()));
    let mut data = b"G".to_vec();
    data.extend_from_slice(&(-0.0f64).to_be_bytes());
    data.push(b'.');
    assert!(matches!(ok(&data).root, Value::Float(f) if f == 0.0 && f.is_sign_negative()));
    let e = err(b"Fabc\n.");
    assert!(e.message.contains("invalid float"), "{e}");
}

#[test]
fn python2_str_forms_decode_as_latin1() {
    assert_eq!(root_tree(b"S'abc'\n."), s("abc"));
    assert_eq!(root_tree(b"S\"it's\"\n."), s("it's"));
    assert_eq!(
        root_tree(b"S'a\\x41\\n\\\\\\351\\'q'\n."),
        s("aA\n\\\u{e9}'q")
    );
    assert_eq!(root_tree(b"T\x03\x00\x00\x00a\xe9b."), s("a\u{e9}b"));
    assert_eq!(root_tree(b"U\x02\xe9a."), s("\u{e9}a"));
    let e = err(b"Sabc\n.");
    assert!(e.message.contains("must be quoted"), "{e}");
    let e = err(b"T\xff\xff\xff\xff.");
    assert!(e.message.contains("BINSTRING has a negative length"), "{e}");
}

#[test]
fn unicode_raw_escape() {
    assert_eq!(
        root_tree(b"Vcaf\\u00e9 \\U0001f600 \xe9\n."),
        s("caf\u{e9} \u{1f600} \u{e9}")
    );
    // CPython escapes backslash and newline this way in protocol 0.
    assert_eq!(root_tree(b"Va\\u005cb\\u000ac\n."), s("a\\b\nc"));
    // A backslash not followed by u/U stays.
    assert_eq!(root_tree(b"Va\\tb\n."), s("a\\tb"));
    // A lone surrogate becomes U+FFFD.
    assert_eq!(root_tree(b"V\\ud800\n."), s("\u{fffd}"));
    let e = err(b"V\\u12\n.");
    assert!(e.message.contains("truncated \\uXXXX"), "{e}");
    let e = err(b"V\\U00110000\n.");
    assert!(e.message.contains("out of range"), "{e}");
}

#[test]
fn binunicode_forms_and_surrogates() {
    assert_eq!(root_tree(b"X\x03\x00\x00\x00h\xc3\xa9."), s("h\u{e9}"));
    assert_eq!(root_tree(b"\x80\x04\x8c\x03abc."), s("abc"));
    assert_eq!(
        root_tree(b"\x80\x04\x8d\x01\x00\x00\x00\x00\x00\x00\x00z."),
        s("z")
    );
    // surrogatepass-encoded lone surrogate: one U+FFFD each; other invalid bytes as from_utf8_lossy.
    assert_eq!(root_tree(b"X\x03\x00\x00\x00\xed\xa0\x80."), s("\u{fffd}"));
    assert_eq!(
        root_tree(b"X\x06\x00\x00\x00a\xed\xb0\x80b\xff."),
        s("a\u{fffd}b\u{fffd}")
    );
    assert_eq!(root_tree(b"\x80\x04\x8c\x00."), s(""));
}

#[test]
fn bytes_forms_and_keep_limit() {
    assert_eq!(
        root_tree(b"\x80\x03C\x03a\x00b."),
        Tree::Bytes(b"a\x00b".to_vec())
    );
    assert_eq!(
        root_tree(b"\x80\x03B\x02\x00\x00\x00xy."),
        Tree::Bytes(b"xy".to_vec())
    );
    assert_eq!(
        root_tree(b"\x80\x04\x8e\x01\x00\x00\x00\x00\x00\x00\x00q."),
        Tree::Bytes(b"q".to_vec())
    );
    let opts = Options {
        keep_bytes_up_to: 2,
        ..Options::default()
    };
    let g = decode(b"\x80\x03C\x03abc.", &opts).unwrap();
    match &g.root {
        Value::Bytes(blob) => {
            assert_eq!(blob.len, 3);
            assert!(blob.data.is_none());
        }
        other => panic!("{other:?}"),
    }
    let g = decode(b"\x80\x03C\x02ab.", &opts).unwrap();
    assert!(matches!(&g.root, Value::Bytes(b) if b.data.as_deref() == Some(&b"ab"[..])));
    let g = decode(b"\x80\x05\x96\x03\x00\x00\x00\x00\x00\x00\x00abc.", &opts).unwrap();
    match g.deref(&g.root) {
        Some(Node::ByteArray(blob)) => assert_eq!((blob.len, blob.data.is_none()), (3, true)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        root_tree(b"\x80\x05\x96\x02\x00\x00\x00\x00\x00\x00\x00\x01\x02."),
        Tree::Bytes(vec![1, 2])
    );
}

/// Strs over `keep_str_up_to` stay places in the input: not copied, not checked as UTF-8 until read; shorter ones
/// (and every str when the limit is left at its default) are kept as text.
#[test]
fn str_keep_limit_leaves_long_strs_in_the_input() {
    let opts = Options {
        keep_str_up_to: 3,
        ..Options::default()
    };
    // (BINUNICODE "abcd" (over the limit), SHORT_BINUNICODE "ab" (kept), a memo GET of the first).
    let data = b"\x80\x04X\x04\x00\x00\x00abcd\x94\x8c\x02ab\x94h\x00\x87.";
    let g = decode(data, &opts).unwrap();
    let items = g.items(&g.root).expect("a tuple");
    assert_eq!(items[0], Value::LongStr { offset: 7, len: 4 });
    assert_eq!(g.long_str(data, &items[0]).as_deref(), Some("abcd"));
    assert_eq!(
        items[0].as_str(),
        None,
        "a long str is not text until read from the input"
    );
    assert_eq!(items[1].as_str(), Some("ab"));
    assert_eq!(g.long_str(data, &items[1]), None);
    assert_eq!(items[2], items[0], "the memo shares the place");
    // Invalid UTF-8 (a lone surrogate, as CPython writes with surrogatepass) is replaced when read, never an
    // error, exactly as for kept strs.
    let bad = b"\x80\x04X\x05\x00\x00\x00a\xed\xa0\x80b.";
    let g = decode(bad, &opts).unwrap();
    let text = g.long_str(bad, &g.root).expect("a long str");
    assert!(
        text.starts_with('a') && text.ends_with('b') && text.contains('\u{fffd}'),
        "{text:?}"
    );
    let kept = decode(bad, &Options::default()).unwrap();
    assert_eq!(kept.root.as_str(), Some(&*text));
    // A declared length beyond the input is still an error, not a place past its end.
    assert!(decode(b"\x80\x04X\x09\x00\x00\x00abcd.", &opts).is_err());
    // Other input, or a place outside it, reads as nothing.
    assert_eq!(g.long_str(b"short", &g.root), None);
}

#[test]
fn none_and_bools() {
    assert_eq!(ok(b"N.").root, Value::None);
    assert_eq!(ok(b"\x80\x02\x88.").root, Value::Bool(true));
    assert_eq!(ok(b"\x80\x02\x89.").root, Value::Bool(false));
}

#[test]
fn container_opcodes() {
    assert_eq!(root_tree(b")."), Tree::Tuple(vec![]));
    assert_eq!(root_tree(b"]."), Tree::List(vec![]));
    assert_eq!(root_tree(b"}."), Tree::Dict(vec![]));
    assert_eq!(root_tree(b"\x80\x04\x8f."), Tree::Set(vec![]));
    assert_eq!(root_tree(b"(I1\nI2\nt."), Tree::Tuple(vec![int(1), int(2)]));
    assert_eq!(root_tree(b"(I1\nI2\nl."), Tree::List(vec![int(1), int(2)]));
    assert_eq!(
        root_tree(b"(I1\nI2\nd."),
        Tree::Dict(vec![(int(1), int(2))])
    );
    assert_eq!(root_tree(b"\x80\x02K\x01\x85."), Tree::Tuple(vec![int(1)]));
    assert_eq!(
        root_tree(b"\x80\x02K\x01K\x02\x86."),
        Tree::Tuple(vec![int(1), int(2)])
    );
    assert_eq!(
        root_tree(b"\x80\x02K\x01K\x02K\x03\x87."),
        Tree::Tuple(vec![int(1), int(2), int(3)])
    );
    assert_eq!(
        root_tree(b"\x80\x04(K\x02K\x01\x91."),
        Tree::FrozenSet(vec![int(1), int(2)])
    );
    assert_eq!(
        root_tree(b"\x80\x04\x8f(K\x02K\x01\x90."),
        Tree::Set(vec![int(1), int(2)])
    );
    assert_eq!(root_tree(b"]K\x01a."), Tree::List(vec![int(1)]));
    assert_eq!(
        root_tree(b"](K\x01K\x02e."),
        Tree::List(vec![int(1), int(2)])
    );
    assert_eq!(
        root_tree(b"}K\x01K\x02s."),
        Tree::Dict(vec![(int(1), int(2))])
    );
    assert_eq!(
        root_tree(b"}(K\x01K\x02K\x03K\x04u."),
        Tree::Dict(vec![(int(1), int(2)), (int(3), int(4))])
    );
    // Pairs keep pickle order (the tree sorts, the graph does not).
    let g = ok(b"}(K\x03K\x04K\x01K\x02u.");
    let keys: Vec<_> = g
        .pairs(&g.root)
        .unwrap()
        .iter()
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(keys, vec![Value::Int(3), Value::Int(1)]);
    let e = err(b"(K\x01d.");
    assert!(e.message.contains("DICT has an odd number"), "{e}");
    let e = err(b"}(K\x01u.");
    assert!(e.message.contains("SETITEMS has an odd number"), "{e}");
}

#[test]
fn stack_opcodes() {
    assert_eq!(ok(b"K\x01K\x020.").root, Value::Int(1));
    // POP with nothing above the last MARK removes the MARK (as CPython does).
    assert_eq!(ok(b"K\x07(0.").root, Value::Int(7));
    assert_eq!(ok(b"K\x07(K\x01K\x021.").root, Value::Int(7));
    let g = ok(b"]2K\x01a0.");
    // DUP shares the node: the appended item shows through the copy.
    assert_eq!(graph_tree(&g, &g.root), Tree::List(vec![int(1)]));
    let e = err(b"0.");
    assert!(e.message.contains("POP needs 1"), "{e}");
    let e = err(b"1.");
    assert!(e.message.contains("POP_MARK without a MARK"), "{e}");
    // Items below the last MARK are out of reach.
    let e = err(b"K\x01(R.");
    assert!(e.message.contains("REDUCE needs 1"), "{e}");
    let e = err(b"K\x01(.");
    assert!(e.message.contains("STOP needs 1"), "{e}");
}

#[test]
fn memo_text_and_binary_forms() {
    // A protocol 0 list that contains itself: one node, no expansion.
    let g = ok(b"(lp0\ng0\na.");
    let Value::Node(id) = g.root else { panic!() };
    assert_eq!(g.items(&g.root).unwrap(), &[Value::Node(id)]);
    assert_eq!(g.node_count(), 1);
    assert_eq!(ok(b"K\x05q\x07h\x07\x86.").node_count(), 1);
    assert_eq!(
        root_tree(b"K\x05r\x00\x01\x00\x00j\x00\x01\x00\x00\x86."),
        Tree::Tuple(vec![int(5), int(5)])
    );
    // MEMOIZE numbers entries by how many distinct ids are stored.
    assert_eq!(
        root_tree(b"\x80\x04K\x01\x94K\x02q\x05K\x03\x94h\x02h\x05h\x00\x87."),
        Tree::Tuple(vec![int(3), int(2), int(1)])
    );
    // A repeated PUT replaces the entry (last one wins) and does not advance MEMOIZE.
    assert_eq!(
        root_tree(b"\x80\x04K\x01q\x00K\x02q\x00K\x03\x94h\x00h\x01\x86."),
        Tree::Tuple(vec![int(2), int(3)])
    );
    let e = err(b"h\x05.");
    assert!(
        e.message.contains("memo id 5, which was never stored"),
        "{e}"
    );
    let e = err(b"N\x94j\x01\x00\x00\x00.");
    assert!(e.message.contains("LONG_BINGET of memo id 1"), "{e}");
    let e = err(b"Ng9\n.");
    assert!(e.message.contains("GET of memo id 9"), "{e}");
    let e = err(b"Np-1\n.");
    assert!(e.message.contains("not a memo index"), "{e}");
    let e = err(b"q\x00.");
    assert!(e.message.contains("BINPUT needs 1"), "{e}");
}

#[test]
fn globals_are_names_only() {
    let g = ok(b"cos\nsystem\n.");
    assert_eq!(g.class_of(&g.root), Some(("os", "system")));
    let g = ok(b"\x80\x04\x8c\x08builtins\x94\x8c\x04eval\x94\x93.");
    assert_eq!(g.class_of(&g.root), Some(("builtins", "eval")));
    // Two globals of one memoized module string share it (a shared str, not a copy); a short one (held in
    // the value itself) is copied, a few bytes.
    for module in ["mod", "a.module.name.longer.than.a.short.str"] {
        let mut data = vec![0x80, 0x04, 0x8c, module.len() as u8];
        data.extend_from_slice(module.as_bytes());
        data.extend_from_slice(b"\x94\x8c\x01A\x93h\x00\x8c\x01B\x93\x86.");
        let g = ok(&data);
        let items = g.items(&g.root).unwrap();
        match (g.deref(&items[0]), g.deref(&items[1])) {
            (
                Some(Node::Global {
                    module: a,
                    name: na,
                }),
                Some(Node::Global {
                    module: b,
                    name: nb,
                }),
            ) => {
                assert_eq!((a, b, na, nb), (module, module, "A", "B"));
                assert_eq!(
                    std::ptr::eq(a, b),
                    module.len() > crate::pickle::value::ShortStr::CAP,
                    "{module}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    let e = err(b"\x80\x04K\x01K\x02\x93.");
    assert!(e.message.contains("STACK_GLOBAL needs two str"), "{e}");
    let e = err(b"cos\nsystem");
    assert!(
        e.message
            .contains("GLOBAL argument has no terminating newline"),
        "{e}"
    );
}

#[test]
fn reduce_is_a_record_never_a_call() {
    let g = ok(b"cos\nsystem\n(S'echo hi'\ntR.");
    let obj = g.object(&g.root).expect("object");
    assert_eq!(obj.kind, BuildKind::Reduce);
    assert_eq!(g.class_of(&g.root), Some(("os", "system")));
    assert_eq!(obj.args, vec![Value::str("echo hi")]);
    let e = err(b"cos\nsystem\nK\x01R.");
    assert!(e.message.contains("REDUCE argument is not a tuple"), "{e}");
}

#[test]
fn newobj_newobj_ex_and_build() {
    let g = ok(b"\x80\x02cmod\nCls\nK\x01\x85\x81}X\x01\x00\x00\x00aK\x02sb.");
    let obj = g.object(&g.root).unwrap();
    assert_eq!(obj.kind, BuildKind::NewObj);
    assert_eq!(g.class_of(&g.root), Some(("mod", "Cls")));
    assert_eq!(obj.args, vec![Value::Int(1)]);
    assert_eq!(g.attr(&g.root, "a"), Some(&Value::Int(2)));

    let g = ok(b"\x80\x04\x8c\x03mod\x8c\x03Cls\x93K\x01\x85}\x8c\x01kK\x02s\x92.");
    let obj = g.object(&g.root).unwrap();
    assert_eq!(obj.kind, BuildKind::NewObj);
    assert_eq!(obj.args, vec![Value::Int(1)]);
    assert_eq!(obj.kwargs, vec![(Value::str("k"), Value::Int(2))]);
    let e = err(b"\x80\x04\x8c\x03mod\x8c\x03Cls\x93)K\x01\x92.");
    assert!(
        e.message
            .contains("NEWOBJ_EX keyword arguments are not a dict"),
        "{e}"
    );

    // A second BUILD replaces the state.
    let g = ok(b"\x80\x02cmod\nCls\n)\x81}X\x01\x00\x00\x00aK\x01sb}X\x01\x00\x00\x00bK\x02sb.");
    assert_eq!(g.attr(&g.root, "a"), None);
    assert_eq!(g.attr(&g.root, "b"), Some(&Value::Int(2)));
}

#[test]
fn build_on_a_non_object_is_ignored() {
    let g = ok(b"](K\x01e}X\x01\x00\x00\x00aK\x02sb.");
    assert_eq!(graph_tree(&g, &g.root), Tree::List(vec![int(1)]));
    let g = ok(b"cmod\nname\nK\x01b.");
    assert_eq!(g.class_of(&g.root), Some(("mod", "name")));
    assert_eq!(ok(b"K\x03K\x01b.").root, Value::Int(3));
}

#[test]
fn inst_and_obj() {
    let g = ok(b"(S'a'\nI2\nimod\nCls\n.");
    let obj = g.object(&g.root).unwrap();
    assert_eq!(obj.kind, BuildKind::Inst);
    assert_eq!(g.class_of(&g.root), Some(("mod", "Cls")));
    assert_eq!(obj.args, vec![Value::str("a"), Value::Int(2)]);

    let g = ok(b"(cmod\nCls\nK\x01o}X\x01\x00\x00\x00xK\x05sb.");
    let obj = g.object(&g.root).unwrap();
    assert_eq!(obj.kind, BuildKind::Inst);
    assert_eq!(g.class_of(&g.root), Some(("mod", "Cls")));
    assert_eq!(obj.args, vec![Value::Int(1)]);
    assert_eq!(g.attr(&g.root, "x"), Some(&Value::Int(5)));
    let e = err(b"(o.");
    assert!(e.message.contains("OBJ without a class"), "{e}");
}

#[test]
fn copyreg_helpers_read_as_the_objects_they_create() {
    let g = ok(b"\x80\x02ccopyreg\n__newobj__\ncmod\nCls\nK\x01\x86R.");
    let obj = g.object(&g.root).unwrap();
    assert_eq!(
        (obj.kind, g.class_of(&g.root)),
        (BuildKind::NewObj, Some(("mod", "Cls")))
    );
    assert_eq!(obj.args, vec![Value::Int(1)]);

    let g = ok(
        b"\x80\x02ccopy_reg\n__newobj_ex__\ncmod\nCls\nK\x01\x85}X\x01\x00\x00\x00kK\x02s\x87R.",
    );
    let obj = g.object(&g.root).unwrap();
    assert_eq!(
        (obj.kind, g.class_of(&g.root)),
        (BuildKind::NewObj, Some(("mod", "Cls")))
    );
    assert_eq!(obj.kwargs.len(), 1);

    let g = ok(b"ccopy_reg\n_reconstructor\n(cmod\nCls\nc__builtin__\nobject\nNtR.");
    let obj = g.object(&g.root).unwrap();
    assert_eq!(
        (obj.kind, g.class_of(&g.root)),
        (BuildKind::NewObj, Some(("mod", "Cls")))
    );
    assert!(obj.args.is_empty());

    // Another base keeps the call record.
    let g = ok(b"ccopy_reg\n_reconstructor\n(cmod\nCls\nc__builtin__\nlist\n(ltR.");
    let obj = g.object(&g.root).unwrap();
    assert_eq!(
        (obj.kind, g.class_of(&g.root)),
        (BuildKind::Reduce, Some(("copy_reg", "_reconstructor")))
    );
    assert_eq!(obj.args.len(), 3);
}

#[test]
fn appends_and_setitems_on_objects_and_wrong_targets() {
    let g = ok(b"ccollections\ndefaultdict\n(cbuiltins\nlist\ntR(K\x01K\x02u]K\x03aK\x04s.");
    let obj = g.object(&g.root).unwrap();
    assert_eq!(obj.kind, BuildKind::Reduce);
    assert_eq!(g.dict_get(&g.root, &Value::Int(1)), Some(&Value::Int(2)));
    assert_eq!(obj.dict_items.len(), 2);
    let g = ok(b"\x80\x02cmod\nL\n)\x81(K\x01K\x02eK\x03a.");
    assert_eq!(
        g.items(&g.root).unwrap(),
        &[Value::Int(1), Value::Int(2), Value::Int(3)]
    );
    let g = ok(b"\x80\x04cmod\nS\n)\x81(K\x01\x90.");
    assert_eq!(g.items(&g.root).unwrap(), &[Value::Int(1)]);

    let e = err(b")K\x01a.");
    assert!(
        e.message
            .contains("APPEND applied to something that is not a list"),
        "{e}"
    );
    let e = err(b"K\x01(K\x01e.");
    assert!(
        e.message
            .contains("APPENDS applied to something that is not a list"),
        "{e}"
    );
    let e = err(b"]K\x01K\x02s.");
    assert!(
        e.message
            .contains("SETITEM applied to something that is not a dict"),
        "{e}"
    );
    let e = err(b"\x80\x04](K\x01\x90.");
    assert!(
        e.message
            .contains("ADDITEMS applied to something that is not a set"),
        "{e}"
    );
    let e = err(b"\x80\x04(K\x01\x91(K\x01\x90.");
    assert!(e.message.contains("ADDITEMS"), "{e}");
    let e = err(b"(K\x01e.");
    assert!(e.message.contains("APPENDS needs"), "{e}");
}

#[test]
fn appends_mutate_the_shared_node_in_place() {
    // The list is memoized before its items arrive; every reference sees them.
    let g = ok(b"\x80\x02]q\x00(K\x01K\x02eh\x00\x86.");
    let items = g.items(&g.root).unwrap();
    assert_eq!(items[0], items[1]);
    assert_eq!(g.items(&items[1]).unwrap(), &[Value::Int(1), Value::Int(2)]);
    let g = ok(b"\x80\x02}q\x00h\x00K\x01K\x02s\x86.");
    let items = g.items(&g.root).unwrap();
    assert_eq!(g.pairs(&items[0]).unwrap().len(), 1);
}

#[test]
fn proto_frame_and_protocol_reporting() {
    assert_eq!(ok(b"N.").protocol, 0);
    assert_eq!(ok(b"].").protocol, 1);
    assert_eq!(ok(b"\x80\x03N.").protocol, 3);
    assert_eq!(
        ok(b"\x80\x05\x95\x02\x00\x00\x00\x00\x00\x00\x00N..").protocol,
        5
    );
    let e = err(b"\x80\x06N.");
    assert!(e.message.contains("unsupported pickle protocol 6"), "{e}");
    let e = err(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00N.");
    assert!(
        e.message
            .contains("FRAME declares 16 bytes but only 2 remain"),
        "{e}"
    );
    // Bytes after STOP are not read.
    assert_eq!(ok(b"K\x01.\xff\xff").root, Value::Int(1));
}

#[test]
fn unsupported_opcodes_are_named_with_their_offset() {
    for (data, name, offset) in [
        (&b"Pid\n."[..], "PERSID", 0),
        (b"\x80\x02N0Q.", "BINPERSID", 4),
        (b"\x80\x02\x82\x01.", "EXT1", 2),
        (b"\x80\x02\x83\x01\x00.", "EXT2", 2),
        (b"\x80\x02\x84\x01\x00\x00\x00.", "EXT4", 2),
        (b"\x80\x05\x97.", "NEXT_BUFFER", 2),
        (b"\x80\x05N\x98.", "READONLY_BUFFER", 3),
    ] {
        let e = err(data);
        assert!(
            e.message.contains(&format!("unsupported opcode {name}")),
            "{e}"
        );
        assert_eq!(e.offset, offset, "{e}");
    }
    let e = err(b"N0\xff.");
    assert_eq!((e.offset, e.message.as_str()), (2, "unknown opcode 0xff"));
    assert_eq!(e.to_string(), "unknown opcode 0xff at byte 2");
}

#[test]
fn empty_and_unterminated_input() {
    let e = err(b"");
    assert_eq!((e.offset, e.message.as_str()), (0, "empty pickle data"));
    let e = err(b"N");
    assert_eq!(e.offset, 1);
    assert!(e.message.contains("without a STOP"), "{e}");
}

#[test]
fn decoding_reports_its_progress_front_to_back() {
    // A list of 3,000 strs of 1 KiB: about 3 MiB, so about three reports.
    let mut data = b"\x80\x04]q\x00(".to_vec();
    for i in 0..3000u32 {
        data.extend_from_slice(b"X\x00\x04\x00\x00");
        data.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, 1024));
    }
    data.extend_from_slice(b"e.");
    let mut seen = Vec::new();
    let g = crate::pickle::decode_reporting(&data, &crate::pickle::Options::default(), &mut |n| {
        seen.push(n)
    })
    .unwrap();
    assert_eq!(g.items(&g.root).unwrap().len(), 3000);
    assert_eq!(g.root, ok(&data).root);
    assert_eq!(
        seen.len(),
        data.len() / crate::pickle::REPORT_EVERY,
        "{seen:?}"
    );
    for pair in seen.windows(2) {
        assert!(pair[1] >= pair[0] + crate::pickle::REPORT_EVERY, "{seen:?}");
    }
    assert!(seen.iter().all(|&n| n <= data.len()));
}

/// A tuple of the strs `texts`, each written out (BINUNICODE, never memoized).
fn tuple_of_strs(texts: &[&[u8]]) -> Vec<u8> {
    let mut p = vec![0x80, 4, b'('];
    for t in texts {
        p.push(b'X');
        p.extend_from_slice(&(t.len() as u32).to_le_bytes());
        p.extend_from_slice(t);
    }
    p.extend_from_slice(b"t.");
    p
}

#[test]
fn the_same_text_written_twice_decodes_equal_and_shares_one_allocation() {
    let path = b"git_ignore_folder".as_slice();
    let other = b"RD-Agent_workspace".as_slice();
    // A lone surrogate (CPython's surrogatepass) and a byte that is no UTF-8: decoded lossily each time.
    let odd = b"\xed\xa0\x80 seventeen bytes!!".as_slice();
    let bad = b"\xff and more than fourteen bytes".as_slice();
    let long = [b'x'; 65];
    let texts = [
        path, other, path, odd, odd, bad, bad, &long, &long, other, path,
    ];
    let g = ok(&tuple_of_strs(&texts));
    let Some(Node::Tuple(items)) = g.deref(&g.root) else {
        panic!("a tuple");
    };
    let lossy = |b: &[u8]| crate::pickle::decode::text::utf8_surrogatepass_lossy(b).into_owned();
    for (item, text) in items.iter().zip(texts) {
        assert_eq!(item.as_str(), Some(lossy(text).as_str()));
    }
    let rc = |i: usize| match &items[i] {
        Value::Str(s) => s.clone(),
        other => panic!("item {i}: {other:?}"),
    };
    assert!(std::rc::Rc::ptr_eq(&rc(0), &rc(2)) && std::rc::Rc::ptr_eq(&rc(0), &rc(10)));
    assert!(std::rc::Rc::ptr_eq(&rc(1), &rc(9)));
    assert!(!std::rc::Rc::ptr_eq(&rc(0), &rc(1)));
    // Text that is not as written, and texts longer than 64 bytes, are decoded anew.
    assert!(!std::rc::Rc::ptr_eq(&rc(3), &rc(4)) && !std::rc::Rc::ptr_eq(&rc(5), &rc(6)));
    assert!(!std::rc::Rc::ptr_eq(&rc(7), &rc(8)));
}

#[test]
fn texts_sharing_an_entry_of_the_recent_strs_each_decode_as_written() {
    // 3,000 distinct texts of 15 to 64 bytes, each twice in a row and once more at the end: 1,024 entries cannot
    // hold them all, so entries are taken over again and again.
    let texts: Vec<Vec<u8>> = (0..3000)
        .map(|i| format!("{i:0>width$}", width = 15 + i % 50).into_bytes())
        .collect();
    let mut all: Vec<&[u8]> = Vec::new();
    for t in &texts {
        all.extend([t.as_slice(), t.as_slice()]);
    }
    all.extend(texts.iter().map(Vec::as_slice));
    let g = ok(&tuple_of_strs(&all));
    let Some(Node::Tuple(items)) = g.deref(&g.root) else {
        panic!("a tuple");
    };
    assert_eq!(items.len(), all.len());
    for (item, text) in items.iter().zip(&all) {
        assert_eq!(item.as_str().map(str::as_bytes), Some(*text));
    }
}
