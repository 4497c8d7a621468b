//! A pickle reader that never executes anything.
//!
//! It decodes the opcodes CPython writes (protocols 0 to 5) into a `Graph` of plain data: globals stay names,
//! REDUCE/NEWOBJ/BUILD become object records, memo references share one node. It must never import, call or
//! evaluate anything named in the input, never allocate more than the input justifies, and never panic on
//! hostile bytes: every failure is a `PickleError` with the offset of the opcode that caused it.

pub(crate) mod decode;
#[cfg(test)]
pub(crate) mod testpickle;
pub mod value;

pub use decode::{decode, decode_reporting, REPORT_EVERY};
pub use value::{Blob, BuildKind, Graph, Node, NodeId, Object, ObjectParts, Value};

use std::fmt;

/// Limits and choices for one decode.
#[derive(Clone, Debug)]
pub struct Options {
    /// Bytes/bytearray payloads longer than this are kept as their length only (`Blob::data == None`).
    pub keep_bytes_up_to: usize,
    /// BINUNICODE* strs longer than this are kept as their place in the input (`Value::LongStr`), not copied.
    pub keep_str_up_to: usize,
    /// The deepest MARK / container nesting accepted before the input is rejected.
    pub max_depth: usize,
    /// Dict entries with one of these str keys get `Node::Skipped` for a value: their opcodes are only
    /// skimmed, and decoded later only if a memo reference elsewhere needs an object they define.
    pub skip_values_of: &'static [&'static str],
}

impl Default for Options {
    fn default() -> Self {
        Options {
            keep_bytes_up_to: 64 * 1024,
            keep_str_up_to: usize::MAX,
            max_depth: 10_000,
            skip_values_of: &[],
        }
    }
}

/// Why a pickle could not be decoded, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PickleError {
    /// Byte offset of the opcode (or of the input end) where decoding stopped.
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

impl std::error::Error for PickleError {}
