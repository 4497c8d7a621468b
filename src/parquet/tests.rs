//! Tests against real footers written by pyarrow (scripts/gen_parquet_fixtures.py writes them with the
//! column names pyarrow reports) and against corrupt, truncated and hostile ones.

use super::*;
use crate::json::{self, Json};
use std::io::Cursor;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/parquet/testdata")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(testdata().join(format!("{name}.parquet"))).unwrap()
}

fn from_bytes(bytes: &[u8]) -> Result<ParquetColumns, ParquetErrorKind> {
    read_columns_from(&mut Cursor::new(bytes), bytes.len() as u64)
}

fn strings(j: &Json) -> Vec<String> {
    let Json::Array(items) = j else {
        panic!("not a list: {j:?}")
    };
    items
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn footer_len(bytes: &[u8]) -> usize {
    let n = bytes.len();
    u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize
}

/// A parquet file around `footer` (no row data: the footer reader never looks at it).
fn wrap(footer: &[u8]) -> Vec<u8> {
    let mut f = b"PAR1".to_vec();
    f.extend_from_slice(footer);
    f.extend_from_slice(&(footer.len() as u32).to_le_bytes());
    f.extend_from_slice(b"PAR1");
    f
}

#[test]
fn every_fixture_matches_what_pyarrow_reports() {
    let mut seen = 0;
    let mut entries: Vec<_> = std::fs::read_dir(testdata())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    entries.sort();
    for path in entries {
        let exp_path = path.with_extension("expected.json");
        let exp = json::parse(&std::fs::read_to_string(&exp_path).unwrap()).unwrap();
        let got = read_columns(&path).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<String> = got.columns.iter().map(|c| c.name.clone()).collect();
        assert_eq!(
            names,
            strings(exp.get("columns").unwrap()),
            "{}",
            path.display()
        );
        let rows = exp.get("num_rows").and_then(Json::as_i64).unwrap();
        assert_eq!(got.num_rows, rows, "{}", path.display());
        let version = exp.get("format_version").and_then(Json::as_i64).unwrap();
        assert_eq!(i64::from(got.format_version), version, "{}", path.display());
        let index: Vec<String> = got
            .columns
            .iter()
            .filter(|c| c.is_index)
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(
            index,
            strings(exp.get("index_columns").unwrap()),
            "{}",
            path.display()
        );
        assert_eq!(
            got.factor_names(),
            strings(exp.get("factors").unwrap()),
            "{}",
            path.display()
        );
        seen += 1;
    }
    assert!(
        seen >= 12,
        "only {seen} fixtures: run scripts/gen_parquet_fixtures.py"
    );
}

#[test]
fn rdagent_combined_factors_gives_factor_names_in_order() {
    let got = from_bytes(&fixture("rdagent_combined_factors")).unwrap();
    assert_eq!(
        got.factor_names(),
        [
            "Momentum_10D",
            "Volatility 20D",
            "it's_a_quote",
            "say \"hi\"",
            "back\\slash",
            "成交量比率",
            "tab\there"
        ]
    );
    assert_eq!(got.num_rows, 6);
    assert!(got.other_data_columns().is_empty());
    let first = &got.columns[0];
    assert_eq!(first.name, "('feature', 'Momentum_10D')");
    assert_eq!(first.physical_type, Some(PhysicalType::Double));
    assert_eq!(first.repetition, Some(Repetition::Optional));
    let index: Vec<&str> = got
        .columns
        .iter()
        .filter(|c| c.is_index)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(index, ["datetime", "instrument"]);
    let pandas = got.pandas.as_ref().unwrap();
    assert_eq!(pandas.column_levels, 2);
    assert!(got
        .created_by
        .as_deref()
        .unwrap()
        .starts_with("parquet-cpp-arrow"));
}

#[test]
fn plain_labels_are_data_columns_but_not_factors() {
    let got = from_bytes(&fixture("plain_columns")).unwrap();
    assert!(got.factor_names().is_empty());
    let other: Vec<(&str, Option<&[String]>)> = got
        .other_data_columns()
        .iter()
        .map(|c| (c.name.as_str(), c.label.as_deref()))
        .collect();
    assert_eq!(other.len(), 3);
    assert_eq!(other[1].0, "beta gamma");
    assert_eq!(other[1].1.unwrap(), ["beta gamma"]);
    assert_eq!(got.columns[1].physical_type, Some(PhysicalType::ByteArray));
}

#[test]
fn nested_columns_have_dotted_paths_and_no_pandas() {
    let got = from_bytes(&fixture("nested_no_pandas")).unwrap();
    assert!(got.pandas.is_none());
    assert_eq!(got.columns[3].path, ["l", "list", "element"]);
    assert_eq!(got.columns[3].repetition, Some(Repetition::Optional));
    assert_eq!(got.other_data_columns().len(), 4);
}

/// Counts the bytes read and the seeks made through it.
struct Counting<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[test]
fn reads_only_the_magic_numbers_and_the_footer() {
    for name in ["rdagent_combined_factors", "wide_500"] {
        let bytes = fixture(name);
        let mut r = Counting {
            inner: Cursor::new(&bytes),
            read: 0,
        };
        let got = read_columns_from(&mut r, bytes.len() as u64).unwrap();
        assert!(!got.columns.is_empty());
        assert_eq!(r.read, 12 + footer_len(&bytes) as u64, "{name}");
        assert!(r.read < bytes.len() as u64);
    }
}

/// A file of `len` bytes that exists only as its tail: reading anything else fails the test.
struct Sparse {
    len: u64,
    tail: Vec<u8>,
    pos: u64,
    read: u64,
}

impl Read for Sparse {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let tail_start = self.len - self.tail.len() as u64;
        let n = if self.pos < 4 {
            let head = b"PAR1";
            let n = buf.len().min(4 - self.pos as usize);
            buf[..n].copy_from_slice(&head[self.pos as usize..self.pos as usize + n]);
            n
        } else {
            assert!(
                self.pos >= tail_start,
                "read at {} of a sparse file",
                self.pos
            );
            let off = (self.pos - tail_start) as usize;
            let n = buf.len().min(self.tail.len() - off);
            buf[..n].copy_from_slice(&self.tail[off..off + n]);
            n
        };
        self.pos += n as u64;
        self.read += n as u64;
        Ok(n)
    }
}

impl Seek for Sparse {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let SeekFrom::Start(p) = pos else { panic!() };
        self.pos = p;
        Ok(p)
    }
}

#[test]
fn footer_lengths_beyond_the_file_or_the_cap_are_refused_before_reading() {
    // 100 MiB declared in a 1 GiB file: over the cap.
    let declared = 100u32 * 1024 * 1024;
    let mut tail = declared.to_le_bytes().to_vec();
    tail.extend_from_slice(b"PAR1");
    let mut r = Sparse {
        len: 1 << 30,
        tail: tail.clone(),
        pos: 0,
        read: 0,
    };
    let e = read_columns_from(&mut r, 1 << 30).unwrap_err();
    let ParquetErrorKind::Layout(m) = e else {
        panic!("{e:?}")
    };
    assert!(m.contains("more than the 67108864"), "{m}");
    assert_eq!(r.read, 12);

    // More than the file holds: u32::MAX, and one byte more than fits.
    let bytes = fixture("rdagent_combined_factors");
    let n = bytes.len();
    for declared in [u32::MAX, (n - 11) as u32] {
        let mut b = bytes.clone();
        b[n - 8..n - 4].copy_from_slice(&declared.to_le_bytes());
        let ParquetErrorKind::Layout(m) = from_bytes(&b).unwrap_err() else {
            panic!()
        };
        assert!(
            m.contains(&format!("declares a footer of {declared} bytes")),
            "{m}"
        );
    }
    // Exactly everything between the magic numbers is accepted as a length, and then fails to decode.
    let mut b = bytes.clone();
    b[n - 8..n - 4].copy_from_slice(&((n - 12) as u32).to_le_bytes());
    assert!(matches!(from_bytes(&b), Err(ParquetErrorKind::Footer(_))));
}

#[test]
fn every_prefix_and_suffix_cut_is_an_error() {
    let bytes = fixture("rdagent_combined_factors");
    for k in 0..bytes.len() {
        assert!(from_bytes(&bytes[..k]).is_err(), "prefix of {k} bytes");
        assert!(
            from_bytes(&bytes[k + 1..]).is_err(),
            "suffix from byte {}",
            k + 1
        );
    }
}

#[test]
fn every_cut_of_the_footer_itself_is_an_error() {
    let bytes = fixture("rdagent_combined_factors");
    let flen = footer_len(&bytes);
    let footer = &bytes[bytes.len() - 8 - flen..bytes.len() - 8];
    assert!(from_bytes(&wrap(footer)).is_ok());
    let mut suffix_errors = 0;
    for j in 0..flen {
        // A footer cut short ends inside FileMetaData: always an error.
        let e = from_bytes(&wrap(&footer[..j])).unwrap_err();
        assert!(
            matches!(e, ParquetErrorKind::Footer(_) | ParquetErrorKind::Layout(_)),
            "{e:?}"
        );
        if from_bytes(&wrap(&footer[j + 1..])).is_err() {
            suffix_errors += 1;
        }
    }
    // A footer missing its start decodes as garbage; nearly every such cut must be caught.
    assert!(
        suffix_errors >= flen * 99 / 100,
        "{suffix_errors} of {flen}"
    );
}

#[test]
fn bit_flips_in_the_footer_never_panic() {
    let bytes = fixture("rdagent_combined_factors");
    let n = bytes.len();
    let start = n - 8 - footer_len(&bytes);
    let (mut ok, mut err) = (0, 0);
    let mut b = bytes.clone();
    for i in start..n {
        for bit in 0..8 {
            b[i] ^= 1 << bit;
            match from_bytes(&b) {
                Ok(c) => {
                    // A flip inside a name or a statistic can decode; the structure must still hold.
                    assert!(c.columns.len() <= 9 + 1, "{i}:{bit}");
                    ok += 1;
                }
                Err(ParquetErrorKind::Io(e)) => panic!("I/O error on memory: {e}"),
                Err(_) => err += 1,
            }
            b[i] ^= 1 << bit;
        }
    }
    assert_eq!(ok + err, (n - start) * 8);
    assert!(err > 0 && ok > 0, "ok {ok}, err {err}");
}

/// A minimal compact-protocol writer for hostile footers.
fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn zz(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// A schema element struct: name and optional num_children / type.
fn element(name: &str, children: Option<i32>, out: &mut Vec<u8>) {
    let mut last = 0;
    if children.is_none() {
        out.push(0x15); // field 1 i32: type DOUBLE
        varint(zz(5), out);
        last = 1;
    }
    out.push(((4 - last) << 4) as u8 | 8); // field 4 binary
    varint(name.len() as u64, out);
    out.extend_from_slice(name.as_bytes());
    if let Some(n) = children {
        out.push(0x15); // field 5 i32
        varint(zz(n.into()), out);
    }
    out.push(0);
}

/// FileMetaData with version 1, the given schema elements, num_rows 0, and `extra` before the STOP.
fn metadata(elements: &[(&str, Option<i32>)], extra: &[u8]) -> Vec<u8> {
    let mut f = vec![0x15, 0x02, 0x19];
    if elements.len() < 15 {
        f.push(((elements.len() as u8) << 4) | 0x0c);
    } else {
        f.push(0xfc);
        varint(elements.len() as u64, &mut f);
    }
    for (name, children) in elements {
        element(name, *children, &mut f);
    }
    f.extend_from_slice(&[0x16, 0x00]); // field 3 i64 num_rows = 0
    f.extend_from_slice(extra);
    f.push(0);
    f
}

#[test]
fn a_synthetic_footer_decodes() {
    let m = metadata(&[("schema", Some(2)), ("a", None), ("b", None)], &[]);
    let got = from_bytes(&wrap(&m)).unwrap();
    let names: Vec<&str> = got.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn huge_declared_list_and_string_sizes_are_errors() {
    // schema: list<struct> of 2^40 elements.
    let mut f = vec![0x15, 0x02, 0x19, 0xfc];
    varint(1 << 40, &mut f);
    f.extend_from_slice(&[0; 16]);
    let ParquetErrorKind::Footer(e) = from_bytes(&wrap(&f)).unwrap_err() else {
        panic!()
    };
    assert!(e.message.contains("declares 1099511627776 elements"), "{e}");

    // A column name declaring 2^62 bytes.
    let mut f = vec![0x15, 0x02, 0x19, 0x1c, 0x48];
    varint(1 << 62, &mut f);
    f.extend_from_slice(b"abc\0\0");
    let ParquetErrorKind::Footer(e) = from_bytes(&wrap(&f)).unwrap_err() else {
        panic!()
    };
    assert!(
        e.message.contains("declares 4611686018427387904 bytes"),
        "{e}"
    );

    // key_value_metadata with 2^31 entries.
    let mut extra = vec![0x29, 0xfc];
    varint(1 << 31, &mut extra);
    let m = metadata(&[("schema", Some(0))], &extra);
    assert!(matches!(
        from_bytes(&wrap(&m)),
        Err(ParquetErrorKind::Footer(_))
    ));

    // An unknown map field declaring 2^50 entries.
    let mut extra = vec![0x0b, 0x40, 0x00];
    varint(1 << 50, &mut extra);
    extra.push(0x88);
    let m = metadata(&[("schema", Some(0))], &extra);
    assert!(matches!(
        from_bytes(&wrap(&m)),
        Err(ParquetErrorKind::Footer(_))
    ));
}

#[test]
fn unknown_fields_of_every_type_are_skipped() {
    // Field 20 (long form) list<list<list<i32>>>, then field 22 struct{map<binary,double>, bool}, then field
    // 23 uuid.
    let mut extra = vec![0x09, 0x28, 0x19, 0x19, 0x15, 0x04];
    extra.extend_from_slice(&[0x2c, 0x1b, 0x01, 0x87, 0x01, b'k']);
    extra.extend_from_slice(&[0; 8]);
    extra.extend_from_slice(&[0x11, 0x00, 0x1d]);
    extra.extend_from_slice(&[0x55; 16]);
    let m = metadata(&[("schema", Some(1)), ("x", None)], &extra);
    let got = from_bytes(&wrap(&m)).unwrap();
    assert_eq!(got.columns[0].name, "x");
}

#[test]
fn deep_nesting_in_an_unknown_field_is_an_error_not_a_stack_overflow() {
    let mut extra = vec![0x0c, 0x40]; // field 32 struct
    extra.extend(std::iter::repeat_n(0x1c, 1_000_000)); // field 1 struct, nested
    let m = metadata(&[("schema", Some(0))], &extra);
    let ParquetErrorKind::Footer(e) = from_bytes(&wrap(&m)).unwrap_err() else {
        panic!()
    };
    assert!(e.message.contains("nest deeper than 64"), "{e}");
}

#[test]
fn inconsistent_schemas_are_errors() {
    type Elements<'a> = &'a [(&'a str, Option<i32>)];
    let cases: &[(Elements, &str)] = &[
        (
            &[("schema", Some(3)), ("a", None)],
            "declares 2 more elements",
        ),
        (
            &[("schema", Some(1)), ("a", None), ("b", None)],
            "1 elements after its tree",
        ),
        (&[("schema", Some(-1))], "declares -1 children"),
        (&[("schema", None)], "not a group"),
        (
            &[("schema", Some(1)), ("g", Some(-5))],
            "declares -5 children",
        ),
        (
            &[("schema", Some(1)), ("g", Some(i32::MAX))],
            "more elements than it holds",
        ),
        (&[], "schema is empty"),
    ];
    for (elements, want) in cases {
        let m = metadata(elements, &[]);
        match from_bytes(&wrap(&m)) {
            Err(ParquetErrorKind::Content(msg)) => assert!(msg.contains(want), "{msg} / {want}"),
            other => panic!("{elements:?}: {other:?}"),
        }
    }
}

#[test]
fn missing_required_fields_and_trailing_bytes_are_errors() {
    // No schema.
    let e = from_bytes(&wrap(&[0x15, 0x02, 0x26, 0x00, 0x00])).unwrap_err();
    assert!(format!("{e:?}").contains("no schema"), "{e:?}");
    // Wrong type for num_rows (binary).
    let mut m = metadata(&[("schema", Some(0))], &[]);
    let i = m.len() - 3;
    m[i] = 0x18;
    assert!(matches!(
        from_bytes(&wrap(&m)),
        Err(ParquetErrorKind::Footer(_))
    ));
    // Bytes after FileMetaData's STOP.
    let mut m = metadata(&[("schema", Some(0))], &[]);
    m.push(0);
    let ParquetErrorKind::Footer(e) = from_bytes(&wrap(&m)).unwrap_err() else {
        panic!()
    };
    assert!(e.message.contains("1 bytes follow"), "{e}");
}

#[test]
fn corrupt_pandas_metadata_is_an_error() {
    // key_value_metadata: [{key: "pandas", value: "{\"columns\": ["}]
    let value = br#"{"columns": ["#;
    let mut extra = vec![0x29, 0x1c, 0x18, 6];
    extra.extend_from_slice(b"pandas");
    extra.push(0x18);
    varint(value.len() as u64, &mut extra);
    extra.extend_from_slice(value);
    extra.push(0);
    let m = metadata(&[("schema", Some(0))], &extra);
    let ParquetErrorKind::Content(msg) = from_bytes(&wrap(&m)).unwrap_err() else {
        panic!()
    };
    assert!(msg.contains("pandas metadata is not valid JSON"), "{msg}");
}

#[test]
fn other_files_are_refused_with_the_reason() {
    let e = from_bytes(b"PAR1PAR1").unwrap_err();
    assert!(format!("{e:?}").contains("8 bytes, fewer than the 12"));
    let mut enc = fixture("plain_columns");
    let n = enc.len();
    enc[n - 4..].copy_from_slice(b"PARE");
    assert!(format!("{:?}", from_bytes(&enc).unwrap_err()).contains("encrypted"));
    let mut head = fixture("plain_columns");
    head[0] = b'X';
    assert!(format!("{:?}", from_bytes(&head).unwrap_err()).contains("does not start with PAR1"));
    let e = from_bytes(&wrap(&[])).unwrap_err();
    assert!(format!("{e:?}").contains("empty footer"));
}

#[test]
fn errors_name_the_file_and_map_to_exit_codes() {
    let dir = std::env::temp_dir().join(format!("rd-chain-parquet-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("combined_factors_df.parquet");
    let bytes = fixture("rdagent_combined_factors");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let e = read_columns(&path).unwrap_err();
    let text = e.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("not a complete parquet file"), "{text}");
    assert_eq!(crate::Error::from(e).exit_code(), crate::exit::RESOLUTION);

    let missing = dir.join("absent.parquet");
    let e = read_columns(&missing).unwrap_err();
    assert!(e.to_string().contains("absent.parquet"));
    assert_eq!(crate::Error::from(e).exit_code(), crate::exit::INTERNAL);
    std::fs::remove_dir_all(&dir).unwrap();
}
