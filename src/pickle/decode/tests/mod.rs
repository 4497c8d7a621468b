//! Tests of the pickle decoder: hand-written opcodes, a differential check against serde-pickle on pickles
//! CPython writes, object graphs, and hostile input (truncation, mutation, random bytes, huge lengths, depth).

mod cpython;
mod fixtures;
mod hostile;
mod ops;
mod skipping;
pub(crate) mod support;
