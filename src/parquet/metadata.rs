//! The part of parquet's `FileMetaData` (parquet-format's `parquet.thrift`) that names columns: the flattened
//! schema tree, the row count and the key/value metadata. Everything else (row groups, column orders,
//! encryption) is skipped generically, field by field.

use super::thrift::{CType, FieldHeader, Reader, TResult};

/// Parquet's physical types (`Type` in parquet.thrift).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhysicalType {
    Boolean,
    Int32,
    Int64,
    Int96,
    Float,
    Double,
    ByteArray,
    FixedLenByteArray,
    /// A value this reader does not know (kept, not refused: it does not affect column names).
    Other(i32),
}

impl PhysicalType {
    fn from_i32(v: i32) -> PhysicalType {
        match v {
            0 => PhysicalType::Boolean,
            1 => PhysicalType::Int32,
            2 => PhysicalType::Int64,
            3 => PhysicalType::Int96,
            4 => PhysicalType::Float,
            5 => PhysicalType::Double,
            6 => PhysicalType::ByteArray,
            7 => PhysicalType::FixedLenByteArray,
            other => PhysicalType::Other(other),
        }
    }
}

/// `FieldRepetitionType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repetition {
    Required,
    Optional,
    Repeated,
    Other(i32),
}

impl Repetition {
    fn from_i32(v: i32) -> Repetition {
        match v {
            0 => Repetition::Required,
            1 => Repetition::Optional,
            2 => Repetition::Repeated,
            other => Repetition::Other(other),
        }
    }
}

/// One `SchemaElement`: the schema is these in depth-first order, groups announcing their child count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaElement {
    pub name: String,
    pub physical_type: Option<PhysicalType>,
    pub repetition: Option<Repetition>,
    pub num_children: Option<i32>,
}

/// The decoded fields of `FileMetaData` rd-chain uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMetaData {
    pub version: i32,
    pub schema: Vec<SchemaElement>,
    pub num_rows: i64,
    /// Key/value pairs in file order (a pair without a value has `None`).
    pub key_value: Vec<(String, Option<String>)>,
    pub created_by: Option<String>,
}

fn expect(r: &Reader, h: FieldHeader, want: CType, what: &str) -> TResult<()> {
    let ok = h.ctype == want || (want == CType::List && h.ctype == CType::Set);
    if ok {
        Ok(())
    } else {
        r.err(format!(
            "{what} (field {}) has compact type {:?}, expected {want:?}",
            h.id, h.ctype
        ))
    }
}

/// Decode a `FileMetaData` struct that fills `buf` (trailing bytes are an error: the declared footer length
/// must match what was written).
pub fn decode_file_metadata(buf: &[u8]) -> TResult<FileMetaData> {
    let mut r = Reader::new(buf);
    let mut version = None;
    let mut schema = None;
    let mut num_rows = None;
    let mut key_value = Vec::new();
    let mut created_by = None;
    let mut signed_plaintext_footer = false;
    let mut st = r.begin_struct()?;
    while let Some(h) = r.field(&mut st)? {
        match h.id {
            1 => {
                expect(&r, h, CType::I32, "FileMetaData.version")?;
                version = Some(r.i32()?);
            }
            2 => {
                expect(&r, h, CType::List, "FileMetaData.schema")?;
                schema = Some(schema_list(&mut r)?);
            }
            3 => {
                expect(&r, h, CType::I64, "FileMetaData.num_rows")?;
                num_rows = Some(r.i64()?);
            }
            5 => {
                expect(&r, h, CType::List, "FileMetaData.key_value_metadata")?;
                key_value = key_value_list(&mut r)?;
            }
            6 => {
                expect(&r, h, CType::Binary, "FileMetaData.created_by")?;
                // Not UTF-8 is tolerated here: it is informational only.
                created_by = Some(String::from_utf8_lossy(r.binary()?).into_owned());
            }
            8 => {
                // encryption_algorithm: a plaintext footer of an encrypted file, followed by its signature.
                signed_plaintext_footer = true;
                r.skip(h.ctype, false)?;
            }
            _ => r.skip(h.ctype, false)?,
        }
    }
    r.end_struct();
    if r.remaining() != 0 && !signed_plaintext_footer {
        return r.err(format!(
            "{} bytes follow the end of FileMetaData inside the declared footer",
            r.remaining()
        ));
    }
    let Some(version) = version else {
        return r.err("FileMetaData has no version (field 1)");
    };
    let Some(schema) = schema else {
        return r.err("FileMetaData has no schema (field 2)");
    };
    let Some(num_rows) = num_rows else {
        return r.err("FileMetaData has no num_rows (field 3)");
    };
    if num_rows < 0 {
        return r.err(format!("FileMetaData.num_rows is negative ({num_rows})"));
    }
    Ok(FileMetaData {
        version,
        schema,
        num_rows,
        key_value,
        created_by,
    })
}

fn schema_list(r: &mut Reader) -> TResult<Vec<SchemaElement>> {
    let start = r.pos();
    let (elem, size) = r.list_header()?;
    if elem != CType::Struct {
        return r.err(format!(
            "FileMetaData.schema is a list of {elem:?}, expected structs (list at byte {start})"
        ));
    }
    r.nested(|r| {
        // `size` is bounded by the remaining bytes (each struct takes at least its STOP byte).
        let mut out = Vec::with_capacity(size);
        for _ in 0..size {
            out.push(schema_element(r)?);
        }
        Ok(out)
    })
}

fn schema_element(r: &mut Reader) -> TResult<SchemaElement> {
    let start = r.pos();
    let mut name = None;
    let mut physical_type = None;
    let mut repetition = None;
    let mut num_children = None;
    let mut st = r.begin_struct()?;
    while let Some(h) = r.field(&mut st)? {
        match h.id {
            1 => {
                expect(r, h, CType::I32, "SchemaElement.type")?;
                physical_type = Some(PhysicalType::from_i32(r.i32()?));
            }
            3 => {
                expect(r, h, CType::I32, "SchemaElement.repetition_type")?;
                repetition = Some(Repetition::from_i32(r.i32()?));
            }
            4 => {
                expect(r, h, CType::Binary, "SchemaElement.name")?;
                name = Some(r.string("a column name")?);
            }
            5 => {
                expect(r, h, CType::I32, "SchemaElement.num_children")?;
                num_children = Some(r.i32()?);
            }
            _ => r.skip(h.ctype, false)?,
        }
    }
    r.end_struct();
    let Some(name) = name else {
        return Err(super::thrift::ThriftError {
            offset: start,
            message: "a SchemaElement has no name (field 4)".to_string(),
        });
    };
    Ok(SchemaElement {
        name,
        physical_type,
        repetition,
        num_children,
    })
}

fn key_value_list(r: &mut Reader) -> TResult<Vec<(String, Option<String>)>> {
    let (elem, size) = r.list_header()?;
    if elem != CType::Struct {
        return r.err(format!(
            "FileMetaData.key_value_metadata is a list of {elem:?}, expected structs"
        ));
    }
    r.nested(|r| {
        let mut out = Vec::with_capacity(size);
        for _ in 0..size {
            let start = r.pos();
            let mut key = None;
            let mut value = None;
            let mut st = r.begin_struct()?;
            while let Some(h) = r.field(&mut st)? {
                match h.id {
                    1 => {
                        expect(r, h, CType::Binary, "KeyValue.key")?;
                        key = Some(r.string("a key_value_metadata key")?);
                    }
                    2 => {
                        expect(r, h, CType::Binary, "KeyValue.value")?;
                        // A value that is not UTF-8 cannot be rd-chain's concern; keep it lossily.
                        value = Some(String::from_utf8_lossy(r.binary()?).into_owned());
                    }
                    _ => r.skip(h.ctype, false)?,
                }
            }
            r.end_struct();
            let Some(key) = key else {
                return Err(super::thrift::ThriftError {
                    offset: start,
                    message: "a key_value_metadata entry has no key (field 1)".to_string(),
                });
            };
            out.push((key, value));
        }
        Ok(out)
    })
}
