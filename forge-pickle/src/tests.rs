//! Real pickles from CPython (fixtures written by
//! `scripts/make_pickle_fixtures.py`) and hostile, hand-made ones.

use std::path::{Path, PathBuf};

use crate::{Limits, Value, loads, loads_with_limits, read_str_f64_map, read_str_i64_map};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

fn s(x: &str) -> Value {
    Value::Str(x.to_string())
}

fn ints(v: &[i64]) -> Vec<Value> {
    v.iter().map(|&i| Value::Int(i)).collect()
}

/// The object `core` of the fixture script, by hand.
fn core_expected() -> Value {
    let shared = Value::List(ints(&[7]));
    Value::Dict(vec![
        (s("ENSG00000000003"), Value::Float(2.5)),
        (
            s("ints"),
            Value::List(ints(&[
                0,
                1,
                -1,
                255,
                256,
                65535,
                65536,
                -(1 << 31),
                (1 << 31) - 1,
                1 << 40,
                i64::MIN,
                i64::MAX,
            ])),
        ),
        (
            s("flags"),
            Value::List(vec![Value::Bool(true), Value::Bool(false), Value::None]),
        ),
        (
            s("floats"),
            Value::List(vec![
                Value::Float(0.1),
                Value::Float(-1e300),
                Value::Float(f64::INFINITY),
            ]),
        ),
        (
            s("tuples"),
            Value::List(vec![
                Value::Tuple(vec![]),
                Value::Tuple(ints(&[1])),
                Value::Tuple(ints(&[1, 2])),
                Value::Tuple(ints(&[1, 2, 3])),
                Value::Tuple(ints(&[1, 2, 3, 4])),
            ]),
        ),
        (s("unicode"), s("h\u{e9}llo \u{2713} \u{1d11e} \\ back")),
        (
            s("nested"),
            Value::Dict(vec![(
                s("x"),
                Value::Dict(vec![(
                    s("y"),
                    Value::List(vec![Value::List(vec![]), Value::Dict(vec![])]),
                )]),
            )]),
        ),
        (s("shared"), Value::List(vec![shared.clone(), shared])),
    ])
}

#[test]
fn every_protocol_round_trips_the_same_plain_data() {
    for proto in 0..=5 {
        let got = loads(&bytes(&format!("core_p{proto}.pkl")))
            .unwrap_or_else(|e| panic!("protocol {proto}: {e}"));
        assert_eq!(got, core_expected(), "protocol {proto}");
    }
}

#[test]
fn bytes_sets_and_bytearrays_read_at_the_protocols_that_have_them() {
    let base = vec![
        (s("bytes"), Value::Bytes(vec![0, 0xff])),
        (s("long"), Value::Bytes(vec![b'x'; 300])),
    ];
    assert_eq!(
        loads(&bytes("extra_p3.pkl")).unwrap(),
        Value::Dict(base.clone())
    );
    let mut p4 = base;
    p4.push((s("set"), Value::Set(ints(&[3]))));
    p4.push((s("frozen"), Value::Set(ints(&[4]))));
    assert_eq!(
        loads(&bytes("extra_p4.pkl")).unwrap(),
        Value::Dict(p4.clone())
    );
    let mut p5 = p4;
    p5.push((s("ba"), Value::Bytes(b"ab".to_vec())));
    assert_eq!(loads(&bytes("extra_p5.pkl")).unwrap(), Value::Dict(p5));
}

#[test]
fn a_reduce_payload_is_refused_naming_the_opcode_and_offset() {
    let e = loads(&bytes("hostile_reduce.pkl")).unwrap_err();
    // pickletools: `48: \x93 STACK_GLOBAL` (posix.system), before REDUCE.
    assert_eq!(e.offset, 48, "{e}");
    assert!(e.message.contains("STACK_GLOBAL (0x93) is refused"), "{e}");
    let e = read_str_f64_map(&fixture("hostile_reduce.pkl")).unwrap_err();
    assert!(e.to_string().contains("hostile_reduce.pkl"), "{e}");
    assert!(e.to_string().contains("STACK_GLOBAL"), "{e}");
}

#[test]
fn numpy_scalars_read_as_numbers_and_nothing_else_numpy_does() {
    for name in ["numpy_values_p3.pkl", "numpy_values_p4.pkl"] {
        let Value::Dict(d) = loads(&bytes(name)).unwrap() else {
            panic!("{name}: not a dict")
        };
        let got: Vec<(String, Value)> = d
            .into_iter()
            .map(|(k, v)| match k {
                Value::Str(k) => (k, v),
                other => panic!("{other:?}"),
            })
            .collect();
        let want = vec![
            ("f8", Value::Float(2.001186019549122)),
            ("f4", Value::Float(1.5)),
            ("f2", Value::Float(-0.5)),
            ("i8", Value::Int(-5)),
            ("i4", Value::Int(-70000)),
            ("i2", Value::Int(2)),
            ("i1", Value::Int(-3)),
            ("u1", Value::Int(200)),
            ("u2", Value::Int(65535)),
            ("u8", Value::Int(7)),
            ("b1", Value::Bool(true)),
            ("big", Value::Float(3.25)),
            ("plain", Value::Int(1)),
        ];
        let want: Vec<(String, Value)> =
            want.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        assert_eq!(got, want, "{name}");
    }
    let e = loads(&bytes("numpy_dtype.pkl")).unwrap_err();
    assert!(e.message.contains("not plain data"), "{e}");
    // Any other global is still refused, e.g. numpy.load.
    let mut p = vec![0x80, 4, 0x8c, 5];
    p.extend(b"numpy");
    p.extend([0x8c, 4]);
    p.extend(b"load");
    p.extend([0x93, b'.']);
    let e = loads(&p).unwrap_err();
    assert_eq!(e.offset, 15);
    assert!(e.message.contains("STACK_GLOBAL (0x93) is refused"), "{e}");
}

#[test]
fn every_refused_opcode_is_named() {
    let cases: &[(u8, &str)] = &[
        (b'c', "GLOBAL"),
        (0x93, "STACK_GLOBAL"),
        (b'R', "REDUCE"),
        (b'b', "BUILD"),
        (b'i', "INST"),
        (b'o', "OBJ"),
        (0x81, "NEWOBJ"),
        (0x92, "NEWOBJ_EX"),
        (b'P', "PERSID"),
        (b'Q', "BINPERSID"),
        (0x82, "EXT1"),
        (0x83, "EXT2"),
        (0x84, "EXT4"),
        (0x97, "NEXT_BUFFER"),
        (0x98, "READONLY_BUFFER"),
    ];
    for &(op, name) in cases {
        // PROTO 4, EMPTY_DICT, then the opcode at offset 3.
        let e = loads(&[0x80, 4, b'}', op, b'.']).unwrap_err();
        assert_eq!(e.offset, 3);
        assert!(
            e.message
                .starts_with(&format!("opcode {name} (0x{op:02x}) is refused")),
            "{e}"
        );
    }
    let e = loads(&[0x80, 4, 0xff]).unwrap_err();
    assert!(e.message.contains("unknown opcode 0xff"), "{e}");
}

#[test]
fn huge_declared_lengths_are_refused_before_allocating() {
    // BINUNICODE declaring 2^32 - 1 bytes with 3 present.
    let e = loads(&[0x80, 4, b'X', 0xff, 0xff, 0xff, 0xff, b'a', b'b', b'.']).unwrap_err();
    assert_eq!(e.offset, 2);
    assert!(
        e.message
            .contains("BINUNICODE needs 4294967295 bytes but only 3 remain"),
        "{e}"
    );
    // 8-byte lengths up to 2^64 - 1.
    for op in [0x8d, 0x8e, 0x96, 0x95] {
        let mut p = vec![0x80, 4, op];
        p.extend([0xff; 8]);
        p.push(b'.');
        let e = loads(&p).unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(e.message.contains("18446744073709551615"), "{e}");
    }
    // LONG4 with a huge (and a negative) byte count.
    let e = loads(&[0x80, 2, 0x8b, 0xff, 0xff, 0xff, 0x7f, 0, b'.']).unwrap_err();
    assert!(e.message.contains("LONG4 needs 2147483647 bytes"), "{e}");
    let e = loads(&[0x80, 2, 0x8b, 0xff, 0xff, 0xff, 0xff, b'.']).unwrap_err();
    assert!(e.message.contains("negative length"), "{e}");
}

#[test]
fn truncation_at_every_byte_is_a_clear_error() {
    for name in ["core_p0.pkl", "core_p2.pkl", "core_p4.pkl", "extra_p5.pkl"] {
        let full = bytes(name);
        for cut in 0..full.len() {
            let e = loads(&full[..cut]).expect_err(&format!("{name} cut at {cut}"));
            assert!(e.offset <= cut, "{name} cut at {cut}: {e}");
            assert!(
                e.message.contains("truncated") || e.message.contains("remain"),
                "{name} cut at {cut}: {e}"
            );
        }
    }
}

#[test]
fn trailing_data_and_leftover_stack_are_refused() {
    let mut p = bytes("core_p4.pkl");
    p.push(b'N');
    assert!(
        loads(&p)
            .unwrap_err()
            .message
            .contains("1 bytes of trailing data")
    );
    let e = loads(b"NN.").unwrap_err();
    assert!(e.message.contains("1 extra objects"), "{e}");
    let e = loads(b"(N.").unwrap_err();
    assert!(e.message.contains("unclosed MARK"), "{e}");
}

#[test]
fn integers_beyond_i64_are_refused() {
    // LONG1 of 9 bytes: 2^64.
    let e = loads(&[0x80, 2, 0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1, b'.']).unwrap_err();
    assert!(e.message.contains("outside the 64-bit range"), "{e}");
    // LONG1 of 8 bytes: 2^63 (positive, sign bit of the 8th byte set).
    let e = loads(&[0x80, 2, 0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, b'.']).unwrap_err();
    assert!(e.message.contains("outside the 64-bit range"), "{e}");
    // A 9-byte sign-extended i64::MIN still fits.
    let v = loads(&[0x80, 2, 0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, b'.']).unwrap();
    assert_eq!(v, Value::Int(i64::MIN));
    let e = loads(b"L9223372036854775808L\n.").unwrap_err();
    assert!(
        e.message.contains("outside the 64-bit integer range"),
        "{e}"
    );
    let e = loads(b"I12x\n.").unwrap_err();
    assert!(e.message.contains("not an integer"), "{e}");
}

#[test]
fn deep_nesting_and_self_reference_are_bounded() {
    // 10,000 open MARKs.
    let mut p = vec![0x80, 2];
    p.extend(std::iter::repeat_n(b'(', 10_000));
    let e = loads(&p).unwrap_err();
    assert!(e.message.contains("MARKs nested deeper than 200"), "{e}");
    // 10,000 nested lists built by EMPTY_LIST ... APPEND.
    let mut p = vec![0x80, 2];
    p.extend(std::iter::repeat_n(b']', 10_000));
    p.extend(std::iter::repeat_n(b'a', 9_999));
    p.push(b'.');
    let e = loads(&p).unwrap_err();
    assert!(e.message.contains("nested deeper than 200"), "{e}");
    // Within the limit it reads.
    let limits = Limits {
        max_depth: 50,
        ..Limits::default()
    };
    let mut p = vec![0x80, 2];
    p.extend(std::iter::repeat_n(b']', 40));
    p.extend(std::iter::repeat_n(b'a', 39));
    p.push(b'.');
    let mut v = loads_with_limits(&p, limits).unwrap();
    for _ in 0..39 {
        let Value::List(mut l) = v else {
            panic!("not a list")
        };
        assert_eq!(l.len(), 1);
        v = l.pop().unwrap();
    }
    assert_eq!(v, Value::List(vec![]));
    // A list that contains itself: l = []; l.append(l).
    let e = loads(&[0x80, 2, b']', b'q', 0, b'h', 0, b'a', b'.']).unwrap_err();
    assert!(e.message.contains("contains itself"), "{e}");
}

#[test]
fn shared_references_cannot_expand_without_bound() {
    // x = None; 64 times x = (x, x): 2^65 values if copied naively.
    let mut p = vec![0x80, 2, b'N'];
    for _ in 0..64 {
        p.extend([b'2', 0x86]);
    }
    p.push(b'.');
    let e = loads(&p).unwrap_err();
    assert!(e.message.contains("would exceed 16777216 values"), "{e}");
}

#[test]
fn memo_size_is_bounded() {
    let limits = Limits {
        max_memo: 2,
        ..Limits::default()
    };
    let e = loads_with_limits(&[0x80, 4, b'N', 0x94, 0x94, 0x94, b'.'], limits).unwrap_err();
    assert_eq!(e.offset, 5);
    assert!(e.message.contains("memo would exceed 2 entries"), "{e}");
    let e = loads(&[0x80, 2, b'h', 9, b'.']).unwrap_err();
    assert!(e.message.contains("memo key 9 was never stored"), "{e}");
}

#[test]
fn gene_dictionaries_read_from_pickle_and_json_alike() {
    for name in ["medians_p2.pkl", "medians_p4.pkl", "medians.json"] {
        let m = read_str_f64_map(&fixture(name)).unwrap();
        assert_eq!(m.len(), 3, "{name}");
        assert_eq!(m["ENSG00000000003"], 2.001186019549122, "{name}");
        assert_eq!(m["ENSG00000000419"], 3.0, "{name}");
    }
    for name in ["tokens_p4.pkl", "tokens.json"] {
        let t = read_str_i64_map(&fixture(name)).unwrap();
        assert_eq!(t.len(), 5, "{name}");
        assert_eq!(t["<mask>"], 1, "{name}");
        assert_eq!(t["ENSG00000000419"], 4, "{name}");
    }
    // Floats are not token ids.
    let e = read_str_i64_map(&fixture("medians_p4.pkl")).unwrap_err();
    assert!(e.to_string().contains("medians_p4.pkl"), "{e}");
    assert!(e.to_string().contains("expected int"), "{e}");
}

#[test]
fn other_formats_duplicates_and_wrong_types_are_refused_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("forge-pickle-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, data: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        p
    };
    let p = write("genes.csv", b"ENSG1,1.0\n");
    let e = read_str_f64_map(&p).unwrap_err().to_string();
    assert!(
        e.contains("genes.csv") && e.contains("starts with byte 0x45"),
        "{e}"
    );
    assert!(
        e.contains("pickle of protocol 2-5") && e.contains("JSON object"),
        "{e}"
    );
    let e = read_str_f64_map(&write("empty.json", b""))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("empty.json: neither") && e.contains("empty"),
        "{e}"
    );
    let e = read_str_f64_map(&write("dup.json", br#"{"A": 1.0, "A": 2.0}"#))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("dup.json") && e.contains("\"A\" is set twice"),
        "{e}"
    );
    let e = read_str_f64_map(&write("bool.json", br#"{"A": true}"#))
        .unwrap_err()
        .to_string();
    assert!(e.contains("bool.json") && e.contains("is a bool"), "{e}");
    let e = read_str_f64_map(&write("bad.json", br#" {"A": 1.0"#))
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.json: not valid JSON"), "{e}");
    // A pickle of a list is not a dict; a non-string key is refused.
    let e = read_str_f64_map(&write("list.pkl", &[0x80, 4, b']', b'.']))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("list.pkl: the pickle holds a list, not a dict"),
        "{e}"
    );
    let e = read_str_f64_map(&write(
        "intkey.pkl",
        &[0x80, 4, b'}', b'K', 1, b'N', b's', b'.'],
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("a key is a int"), "{e}");
    let e = read_str_f64_map(&dir.join("missing.pkl"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.pkl: cannot read"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
