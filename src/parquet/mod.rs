//! Reads a parquet file's column names from its footer, without Python and without reading any data page.
//!
//! A parquet file ends with `<FileMetaData, Thrift compact protocol><footer length: u32 LE>PAR1`. This
//! module reads the last 8 bytes, refuses a footer length larger than the file or than `MAX_FOOTER_BYTES`,
//! reads only the footer, and decodes the schema, the row count and the key/value metadata. The `pandas`
//! entry written by `DataFrame.to_parquet` maps stored fields back to pandas column labels, so RD-Agent's
//! `combined_factors_df.parquet` (columns `('feature', <factor name>)`) yields its factor names.
//!
//! It must never panic or allocate more than the footer justifies on corrupt or hostile files: every
//! failure is a `ParquetError` naming the file.

pub mod metadata;
pub mod pandas;
pub mod thrift;

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub use metadata::{PhysicalType, Repetition};
pub use pandas::PandasMetadata;

/// The largest footer accepted: 64 MiB. A footer holds a few hundred bytes per column and row group (a
/// 500-column, one-row-group file written by pyarrow has a footer of a few hundred KiB), so anything
/// larger is a corrupt length, not a factor table.
pub const MAX_FOOTER_BYTES: u64 = 64 * 1024 * 1024;

const MAGIC: &[u8; 4] = b"PAR1";
const MAGIC_ENCRYPTED: &[u8; 4] = b"PARE";

/// One leaf column of the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// The stored name: the leaf's path joined with '.' (for a flat schema, the field name itself).
    pub name: String,
    /// The path from the top-level field to the leaf.
    pub path: Vec<String>,
    pub physical_type: Option<PhysicalType>,
    pub repetition: Option<Repetition>,
    /// The pandas column label's levels, where the pandas metadata maps this column's top-level field.
    pub label: Option<Vec<String>>,
    /// The pandas metadata lists this column's top-level field as (part of) the DataFrame's index.
    pub is_index: bool,
}

/// What the footer says about the columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParquetColumns {
    /// `FileMetaData.version` (1 for files written as format 1.0, 2 for 2.x).
    pub format_version: i32,
    pub num_rows: i64,
    pub created_by: Option<String>,
    /// Leaf columns in schema order.
    pub columns: Vec<Column>,
    /// The parsed `pandas` metadata, when the file has it.
    pub pandas: Option<PandasMetadata>,
}

/// The first level of RD-Agent's factor column labels.
pub const FACTOR_LEVEL: &str = "feature";

impl ParquetColumns {
    /// The factor names: the second level of every data column labelled `('feature', <name>)`, in order.
    pub fn factor_names(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|c| !c.is_index)
            .filter_map(|c| match c.label.as_deref() {
                Some([level, name]) if level == FACTOR_LEVEL => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Data columns (not the index) that are not factors: to be listed as such, never dropped.
    pub fn other_data_columns(&self) -> Vec<&Column> {
        self.columns
            .iter()
            .filter(|c| !c.is_index)
            .filter(|c| !matches!(c.label.as_deref(), Some([level, _]) if level == FACTOR_LEVEL))
            .collect()
    }
}

/// Why a file's columns could not be read.
#[derive(Debug)]
pub struct ParquetError {
    pub path: PathBuf,
    pub kind: ParquetErrorKind,
}

#[derive(Debug)]
pub enum ParquetErrorKind {
    Io(io::Error),
    /// Not a parquet file, a truncated one, or a footer length that cannot be right.
    Layout(String),
    /// The footer bytes do not decode.
    Footer(thrift::ThriftError),
    /// The footer decodes but its schema or pandas metadata is inconsistent.
    Content(String),
}

impl fmt::Display for ParquetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.path.display();
        match &self.kind {
            ParquetErrorKind::Io(e) => write!(f, "cannot read the parquet file {p}: {e}"),
            ParquetErrorKind::Layout(m) => write!(
                f,
                "{p} is not a complete parquet file: {m}; it may be truncated or still being written"
            ),
            ParquetErrorKind::Footer(e) => {
                write!(f, "the parquet footer of {p} is corrupt: {e}")
            }
            ParquetErrorKind::Content(m) => {
                write!(f, "the parquet footer of {p} is inconsistent: {m}")
            }
        }
    }
}

impl std::error::Error for ParquetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ParquetErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ParquetError> for crate::Error {
    /// I/O failures are exit 1 like any unreadable file; a file that is not a readable parquet is a
    /// resolution failure (exit 3), like a missing one.
    fn from(e: ParquetError) -> crate::Error {
        match e.kind {
            ParquetErrorKind::Io(source) => {
                crate::Error::io("cannot read the parquet file", e.path, source)
            }
            _ => crate::Error::resolution(e.to_string()),
        }
    }
}

/// Read the column names of the parquet file at `path` (reads its last 8 bytes, the first 4 and the footer).
pub fn read_columns(path: &Path) -> Result<ParquetColumns, ParquetError> {
    let err = |kind| ParquetError {
        path: path.to_path_buf(),
        kind,
    };
    let mut file = File::open(path).map_err(|e| err(ParquetErrorKind::Io(e)))?;
    let len = file
        .metadata()
        .map_err(|e| err(ParquetErrorKind::Io(e)))?
        .len();
    read_columns_from(&mut file, len).map_err(err)
}

/// `read_columns` over any seekable reader of `len` bytes (tests use memory and count the bytes read).
pub fn read_columns_from<R: Read + Seek>(
    reader: &mut R,
    len: u64,
) -> Result<ParquetColumns, ParquetErrorKind> {
    let footer = read_footer(reader, len)?;
    let meta = metadata::decode_file_metadata(&footer).map_err(ParquetErrorKind::Footer)?;
    columns_of(meta).map_err(ParquetErrorKind::Content)
}

fn read_footer<R: Read + Seek>(reader: &mut R, len: u64) -> Result<Vec<u8>, ParquetErrorKind> {
    let io = ParquetErrorKind::Io;
    // Leading magic + footer + length + trailing magic: at least 12 bytes.
    if len < 12 {
        return Err(ParquetErrorKind::Layout(format!(
            "it has {len} bytes, fewer than the 12 of an empty parquet file"
        )));
    }
    let mut tail = [0u8; 8];
    reader.seek(SeekFrom::Start(len - 8)).map_err(io)?;
    reader.read_exact(&mut tail).map_err(io)?;
    if &tail[4..] == MAGIC_ENCRYPTED {
        return Err(ParquetErrorKind::Layout(
            "its footer is encrypted (ends in PARE); rd-chain reads only plaintext footers"
                .to_string(),
        ));
    }
    if &tail[4..] != MAGIC {
        return Err(ParquetErrorKind::Layout(format!(
            "it does not end in PAR1 (last 4 bytes: {})",
            hex(&tail[4..])
        )));
    }
    let mut head = [0u8; 4];
    reader.seek(SeekFrom::Start(0)).map_err(io)?;
    reader.read_exact(&mut head).map_err(io)?;
    if &head != MAGIC {
        return Err(ParquetErrorKind::Layout(format!(
            "it does not start with PAR1 (first 4 bytes: {})",
            hex(&head)
        )));
    }
    let footer_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer_len > len - 12 {
        return Err(ParquetErrorKind::Layout(format!(
            "it declares a footer of {footer_len} bytes but has only {} bytes between its magic numbers",
            len - 12
        )));
    }
    if footer_len > MAX_FOOTER_BYTES {
        return Err(ParquetErrorKind::Layout(format!(
            "it declares a footer of {footer_len} bytes, more than the {MAX_FOOTER_BYTES} rd-chain accepts"
        )));
    }
    if footer_len == 0 {
        return Err(ParquetErrorKind::Layout(
            "it declares an empty footer".to_string(),
        ));
    }
    reader
        .seek(SeekFrom::Start(len - 8 - footer_len))
        .map_err(io)?;
    // footer_len <= MAX_FOOTER_BYTES, so this allocation is bounded.
    let mut footer = vec![0u8; footer_len as usize];
    reader.read_exact(&mut footer).map_err(io)?;
    Ok(footer)
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Flatten the depth-first schema into leaf columns and attach the pandas labels.
fn columns_of(meta: metadata::FileMetaData) -> Result<ParquetColumns, String> {
    let pandas = match meta.key_value.iter().find(|(k, _)| k == "pandas") {
        Some((_, Some(text))) => Some(pandas::parse(text)?),
        _ => None,
    };
    let Some((root, rest)) = meta.schema.split_first() else {
        return Err("the schema is empty (no root element)".to_string());
    };
    let root_children = match root.num_children {
        Some(n) if n >= 0 => n as usize,
        Some(n) => return Err(format!("the schema root declares {n} children")),
        None => return Err("the schema root is not a group (no num_children)".to_string()),
    };
    // (children still expected, group name) for each open group; the root is not part of column paths.
    let mut open: Vec<(usize, Option<&str>)> = vec![(root_children, None)];
    let mut columns = Vec::new();
    for (i, e) in rest.iter().enumerate() {
        while matches!(open.last(), Some((0, _))) {
            open.pop();
        }
        let Some(parent) = open.last_mut() else {
            return Err(format!(
                "the schema has {} elements after its tree is complete (at element {})",
                rest.len() - i,
                i + 1
            ));
        };
        parent.0 -= 1;
        match e.num_children {
            Some(n) if n < 0 => {
                return Err(format!("schema element {:?} declares {n} children", e.name));
            }
            Some(n) => open.push((n as usize, Some(e.name.as_str()))),
            None => {
                let mut path: Vec<String> = open
                    .iter()
                    .filter_map(|(_, name)| name.map(str::to_string))
                    .collect();
                path.push(e.name.clone());
                columns.push(Column {
                    name: path.join("."),
                    path,
                    physical_type: e.physical_type,
                    repetition: e.repetition,
                    label: None,
                    is_index: false,
                });
            }
        }
    }
    let missing: usize = open.iter().map(|(n, _)| n).sum();
    if missing > 0 {
        return Err(format!(
            "the schema declares {missing} more elements than it holds"
        ));
    }
    if let Some(p) = &pandas {
        for c in &mut columns {
            let top = &c.path[0];
            c.is_index = p.index_columns.iter().any(|i| i == top);
            c.label = p.label_of(top).map(<[String]>::to_vec);
        }
    }
    Ok(ParquetColumns {
        format_version: meta.version,
        num_rows: meta.num_rows,
        created_by: meta.created_by,
        columns,
        pandas,
    })
}

#[cfg(test)]
mod tests;
