//! The pickle virtual machine, run without executing anything: each opcode CPython writes (protocols 0-5) moves
//! plain values between a stack, a mark stack and a memo, and builds `Node`s in one arena.
//!
//! It must never import, call or evaluate a name from the input, never recurse (deep input cannot overflow the
//! Rust stack), never allocate for a declared length before checking the input holds it, and never panic:
//! every failure is a `PickleError` naming the opcode and its offset.
//!
//! Rules for the cases Python would have resolved by running code:
//! - A global is `Node::Global`; REDUCE of any callable is an `Object` of kind `Reduce` (callable, args).
//!   Three protocol-0/1 helpers are read as what they build: `copyreg.__newobj__(cls, *args)`,
//!   `copyreg.__newobj_ex__(cls, args, kwargs)` and `copyreg._reconstructor(cls, object, None)` become kind
//!   `NewObj` with `cls` as the callable (`copy_reg` too). `_reconstructor` with another base stays `Reduce`.
//! - BUILD sets `Object::state`; a second BUILD on the same object replaces it. BUILD on anything that is not
//!   an object (a global, a list, a number) is ignored and the target is left as it was, so every memo reference
//!   still sees the same node (CPython would raise there; the pickler never writes it).
//! - APPEND(S) go to a list in place or to an object's `list_items`; SETITEM(S) to a dict in place or to an
//!   object's `dict_items`; ADDITEMS to a set in place or to an object's `list_items`. Any other target is an
//!   error.
//! - The memo behaves like CPython's dict: a repeated PUT of an id replaces the entry, MEMOIZE uses the number
//!   of distinct ids stored, a GET of an id never stored is an error.
//! - Text and bytes: STRING/BINSTRING/SHORT_BINSTRING (Python 2 `str`) decode as latin-1 text; invalid UTF-8 in
//!   BINUNICODE* (lone surrogates CPython writes with `surrogatepass`) is replaced by U+FFFD, never an error.
//!   Bytes payloads longer than `Options::keep_bytes_up_to` keep only their length and are not copied.
//! - Limits: the mark stack and the value stack each hold at most `Options::max_depth` entries. Argument tuples
//!   are copied into `Object::args`; the values copied that way are bounded by the input length (plus a small
//!   allowance), so reusing one memoized tuple in many REDUCEs cannot multiply memory.
//! - Global names are kept as written (no Python 2 to 3 renaming such as `__builtin__` -> `builtins`).

mod opcodes;
#[cfg(test)]
mod tests;
pub(crate) mod text;

use std::collections::HashMap;
use std::rc::Rc;

use super::work;
use super::{Blob, BuildKind, Graph, Node, NodeId, Object, Options, PickleError, Value};
use opcodes as op;

/// Decode one pickle (up to its STOP opcode; bytes after it are ignored) into an object graph.
pub fn decode(data: &[u8], opts: &Options) -> std::result::Result<Graph, PickleError> {
    Machine::new(data, opts).run()
}

type Result<T> = std::result::Result<T, PickleError>;

/// Values that may be copied into object arguments beyond one per input byte (see `Machine::charge_copy`).
const COPY_ALLOWANCE: usize = 4096;

/// The memo: ids CPython assigns are dense from 0, so they index a vector; an id far beyond the number of
/// entries stored (hostile input, or a hand-written PUT) goes to a map instead, so the memory stays
/// proportional to the number of PUTs whatever the ids are. An id lives in exactly one of the two: one stored in
/// the map stays there even after the vector has grown past it, so growing never moves or rescans entries.
#[derive(Default)]
struct Memo {
    dense: Vec<Option<Value>>,
    sparse: HashMap<u64, Value>,
    /// The number of distinct ids stored (what MEMOIZE uses as its id).
    count: u64,
}

impl Memo {
    /// The dense part may grow to this many slots: twice the entries plus a small constant.
    fn dense_limit(&self) -> u64 {
        self.count.saturating_mul(2).saturating_add(1024)
    }

    fn put(&mut self, id: u64, value: Value) {
        if !self.sparse.is_empty() {
            work::add(1);
            if let Some(slot) = self.sparse.get_mut(&id) {
                *slot = value;
                return;
            }
        }
        let dense_len = self.dense.len() as u64;
        if id == dense_len && id < self.dense_limit() {
            // The common case (CPython's ids count up from 0): one more slot.
            work::add(1);
            self.dense.push(Some(value));
            self.count += 1;
            return;
        }
        if id > dense_len && id < self.dense_limit() {
            // Fill only up to the id: the vector's capacity still grows geometrically (amortized O(1) per PUT),
            // but slots past the highest id are neither written nor, for a large memo, ever made resident. The
            // slots filled over a whole decode stay below the final limit.
            let wanted = id + 1;
            let before = self.dense.len();
            self.dense
                .resize(usize::try_from(wanted).unwrap_or(before), None);
            work::add(self.dense.len() - before);
        }
        if let Some(slot) = usize::try_from(id).ok().and_then(|i| self.dense.get_mut(i)) {
            if slot.replace(value).is_none() {
                self.count += 1;
            }
        } else if self.sparse.insert(id, value).is_none() {
            self.count += 1;
        }
    }

    fn get(&self, id: u64) -> Option<&Value> {
        match usize::try_from(id).ok().and_then(|i| self.dense.get(i)) {
            Some(Some(value)) => Some(value),
            _ => self.sparse.get(&id),
        }
    }
}

struct Machine<'a> {
    data: &'a [u8],
    /// Read position: the byte after the current opcode and the arguments read so far.
    pos: usize,
    /// Offset of the opcode being executed (what errors report).
    op_start: usize,
    opcode: u8,
    opts: &'a Options,
    nodes: Vec<Node>,
    stack: Vec<Value>,
    /// Stack lengths at each open MARK; items below the last one are out of reach until it is popped.
    marks: Vec<usize>,
    memo: Memo,
    /// How many more values may be copied out of existing tuples and dicts into object arguments.
    copy_budget: usize,
    announced_protocol: Option<u8>,
    /// The highest protocol among the opcodes seen (reported when the stream has no PROTO).
    opcode_protocol: u8,
}

impl<'a> Machine<'a> {
    fn new(data: &'a [u8], opts: &'a Options) -> Self {
        Machine {
            data,
            pos: 0,
            op_start: 0,
            opcode: 0,
            opts,
            nodes: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: Memo::default(),
            copy_budget: data.len().saturating_add(COPY_ALLOWANCE),
            announced_protocol: None,
            opcode_protocol: 0,
        }
    }

    fn run(mut self) -> Result<Graph> {
        loop {
            self.op_start = self.pos;
            let Some(&code) = self.data.get(self.pos) else {
                return Err(PickleError {
                    offset: self.data.len(),
                    message: if self.data.is_empty() {
                        "empty pickle data".to_string()
                    } else {
                        "pickle data ends without a STOP opcode (truncated?)".to_string()
                    },
                });
            };
            self.pos += 1;
            self.opcode = code;
            work::add(1);
            if self.announced_protocol.is_none() {
                self.opcode_protocol = self.opcode_protocol.max(op::introduced_in(code));
            }
            if code == op::STOP {
                let root = self.pop()?;
                let mut nodes = self.nodes;
                nodes.shrink_to_fit();
                return Ok(Graph {
                    nodes,
                    root,
                    protocol: self.announced_protocol.unwrap_or(self.opcode_protocol),
                    input_len: self.pos,
                    ..Graph::default()
                });
            }
            self.step(code)?;
        }
    }

    /// Execute one opcode other than STOP.
    fn step(&mut self, code: u8) -> Result<()> {
        match code {
            op::PROTO => {
                let version = self.read_u8()?;
                if version > op::HIGHEST_PROTOCOL {
                    return Err(self.error(format!("unsupported pickle protocol {version}")));
                }
                self.announced_protocol = Some(version);
            }
            op::FRAME => {
                let len = self.read_u64()?;
                let remaining = self.remaining();
                if len > remaining as u64 {
                    return Err(self.error(format!(
                        "FRAME declares {len} bytes but only {remaining} remain (truncated pickle?)"
                    )));
                }
            }

            // Scalars.
            op::NONE => self.push(Value::None)?,
            op::NEWTRUE => self.push(Value::Bool(true))?,
            op::NEWFALSE => self.push(Value::Bool(false))?,
            op::INT => {
                let line = self.read_line()?;
                let value = match line {
                    b"01" => Value::Bool(true),
                    b"00" => Value::Bool(false),
                    _ => text::parse_decimal_int(line).map_err(|m| self.error(m))?,
                };
                self.push(value)?;
            }
            op::LONG => {
                let line = self.read_line()?;
                let digits = line.strip_suffix(b"L").unwrap_or(line);
                let value = text::parse_decimal_int(digits).map_err(|m| self.error(m))?;
                self.push(value)?;
            }
            op::BININT => {
                let v = i32::from_le_bytes(self.read_array()?);
                self.push(Value::Int(i64::from(v)))?;
            }
            op::BININT1 => {
                let v = self.read_u8()?;
                self.push(Value::Int(i64::from(v)))?;
            }
            op::BININT2 => {
                let v = u16::from_le_bytes(self.read_array()?);
                self.push(Value::Int(i64::from(v)))?;
            }
            op::LONG1 => {
                let len = usize::from(self.read_u8()?);
                let bytes = self.read_bytes(len)?;
                self.push(text::twos_complement_to_value(bytes))?;
            }
            op::LONG4 => {
                let len = self.read_i32_len()?;
                let bytes = self.read_bytes(len)?;
                self.push(text::twos_complement_to_value(bytes))?;
            }
            op::FLOAT => {
                let line = self.read_line()?;
                let value = std::str::from_utf8(line)
                    .ok()
                    .and_then(|s| s.trim_ascii().parse::<f64>().ok())
                    .ok_or_else(|| {
                        self.error(format!(
                            "invalid float literal {:?}",
                            String::from_utf8_lossy(line)
                        ))
                    })?;
                self.push(Value::Float(value))?;
            }
            op::BINFLOAT => {
                let v = f64::from_be_bytes(self.read_array()?);
                self.push(Value::Float(v))?;
            }

            // Text.
            op::STRING => {
                let line = self.read_line()?;
                let body = match line {
                    [q @ (b'\'' | b'"'), body @ .., last] if last == q => body,
                    _ => return Err(self.error("the STRING argument must be quoted".to_string())),
                };
                let bytes = text::unescape_bytes_literal(body).map_err(|m| self.error(m))?;
                let s = text::latin1(&bytes);
                self.push(Value::Str(Rc::from(&*s)))?;
            }
            op::BINSTRING => {
                let len = self.read_i32_len()?;
                let bytes = self.read_bytes(len)?;
                self.push(Value::Str(Rc::from(&*text::latin1(bytes))))?;
            }
            op::SHORT_BINSTRING => {
                let len = usize::from(self.read_u8()?);
                let bytes = self.read_bytes(len)?;
                self.push(Value::Str(Rc::from(&*text::latin1(bytes))))?;
            }
            op::UNICODE => {
                let line = self.read_line()?;
                let s = text::raw_unicode_escape(line).map_err(|m| self.error(m))?;
                self.push(Value::Str(Rc::from(s)))?;
            }
            op::SHORT_BINUNICODE => {
                let len = usize::from(self.read_u8()?);
                self.push_utf8(len)?;
            }
            op::BINUNICODE => {
                let len = self.read_u32_len()?;
                self.push_utf8(len)?;
            }
            op::BINUNICODE8 => {
                let len = self.read_u64_len()?;
                self.push_utf8(len)?;
            }

            // Bytes.
            op::SHORT_BINBYTES => {
                let len = usize::from(self.read_u8()?);
                let blob = self.read_blob(len)?;
                self.push(Value::Bytes(Rc::new(blob)))?;
            }
            op::BINBYTES => {
                let len = self.read_u32_len()?;
                let blob = self.read_blob(len)?;
                self.push(Value::Bytes(Rc::new(blob)))?;
            }
            op::BINBYTES8 => {
                let len = self.read_u64_len()?;
                let blob = self.read_blob(len)?;
                self.push(Value::Bytes(Rc::new(blob)))?;
            }
            op::BYTEARRAY8 => {
                let len = self.read_u64_len()?;
                let blob = self.read_blob(len)?;
                self.push_node(Node::ByteArray(blob))?;
            }

            // Containers.
            op::EMPTY_TUPLE => self.push_node(Node::Tuple(Vec::new()))?,
            op::EMPTY_LIST => self.push_node(Node::List(Vec::new()))?,
            op::EMPTY_DICT => self.push_node(Node::Dict(Vec::new()))?,
            op::EMPTY_SET => self.push_node(Node::Set(Vec::new()))?,
            op::MARK => {
                if self.marks.len() >= self.opts.max_depth {
                    return Err(self.error(format!(
                        "MARK nesting deeper than {} (Options::max_depth)",
                        self.opts.max_depth
                    )));
                }
                self.marks.push(self.stack.len());
            }
            op::TUPLE => {
                let items = self.pop_mark()?;
                self.push_node(Node::Tuple(items))?;
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let items = self.pop_n(usize::from(code - op::TUPLE1) + 1)?;
                self.push_node(Node::Tuple(items))?;
            }
            op::LIST => {
                let items = self.pop_mark()?;
                self.push_node(Node::List(items))?;
            }
            op::DICT => {
                let items = self.pop_mark()?;
                let pairs = self.pairs(items)?;
                self.push_node(Node::Dict(pairs))?;
            }
            op::FROZENSET => {
                let items = self.pop_mark()?;
                self.push_node(Node::FrozenSet(items))?;
            }
            op::APPEND => {
                let start = self.stack.len().saturating_sub(1);
                self.append_from(start)?;
            }
            op::APPENDS | op::ADDITEMS => {
                let start = self.take_mark()?;
                self.append_from(start)?;
            }
            op::SETITEM => {
                let start = self.stack.len().saturating_sub(2);
                self.setitems_from(start)?;
            }
            op::SETITEMS => {
                let start = self.take_mark()?;
                self.setitems_from(start)?;
            }

            // Stack manipulation.
            op::POP => {
                if self.stack.len() > self.fence() {
                    self.stack.pop();
                } else if self.marks.pop().is_none() {
                    return Err(self.underflow(1));
                }
            }
            op::POP_MARK => {
                let start = self.take_mark()?;
                self.stack.truncate(start);
            }
            op::DUP => {
                let top = self.top()?.clone();
                self.push(top)?;
            }

            // Memo.
            op::PUT => {
                let line = self.read_line()?;
                let id = self.decimal_id(line)?;
                self.memo_put(id)?;
            }
            op::BINPUT => {
                let id = self.read_u8()?;
                self.memo_put(u64::from(id))?;
            }
            op::LONG_BINPUT => {
                let id = u32::from_le_bytes(self.read_array()?);
                self.memo_put(u64::from(id))?;
            }
            op::MEMOIZE => {
                let id = self.memo.count;
                self.memo_put(id)?;
            }
            op::GET => {
                let line = self.read_line()?;
                let id = self.decimal_id(line)?;
                self.memo_get(id)?;
            }
            op::BINGET => {
                let id = self.read_u8()?;
                self.memo_get(u64::from(id))?;
            }
            op::LONG_BINGET => {
                let id = u32::from_le_bytes(self.read_array()?);
                self.memo_get(u64::from(id))?;
            }

            // Globals and objects.
            op::GLOBAL => {
                let module = text::utf8_surrogatepass_lossy(self.read_line()?);
                let name = text::utf8_surrogatepass_lossy(self.read_line()?);
                let (module, name) = (Rc::from(&*module), Rc::from(&*name));
                self.push_node(Node::Global { module, name })?;
            }
            op::STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (module, name) {
                    (Value::Str(module), Value::Str(name)) => {
                        self.push_node(Node::Global { module, name })?
                    }
                    _ => return Err(self.error("STACK_GLOBAL needs two str values".to_string())),
                }
            }
            op::REDUCE => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let args = self.tuple_items(&args, "argument")?;
                let object = self.reduce_record(callable, args)?;
                self.push_node(Node::Object(Box::new(object)))?;
            }
            op::NEWOBJ => {
                let args = self.pop()?;
                let cls = self.pop()?;
                let args = self.tuple_items(&args, "argument")?;
                self.push_object(BuildKind::NewObj, cls, args, Vec::new())?;
            }
            op::NEWOBJ_EX => {
                let kwargs = self.pop()?;
                let args = self.pop()?;
                let cls = self.pop()?;
                let args = self.tuple_items(&args, "argument")?;
                let kwargs = self.dict_pairs(&kwargs)?;
                self.push_object(BuildKind::NewObj, cls, args, kwargs)?;
            }
            op::INST => {
                let module = text::utf8_surrogatepass_lossy(self.read_line()?);
                let name = text::utf8_surrogatepass_lossy(self.read_line()?);
                let (module, name) = (Rc::from(&*module), Rc::from(&*name));
                let args = self.pop_mark()?;
                let cls = self.new_node(Node::Global { module, name })?;
                self.push_object(BuildKind::Inst, cls, args, Vec::new())?;
            }
            op::OBJ => {
                let mut items = self.pop_mark()?;
                if items.is_empty() {
                    return Err(self.error("OBJ without a class after its MARK".to_string()));
                }
                let cls = items.remove(0);
                self.push_object(BuildKind::Inst, cls, items, Vec::new())?;
            }
            op::BUILD => {
                let state = self.pop()?;
                let target = match self.top()? {
                    Value::Node(id) => Some(id.0 as usize),
                    _ => None,
                };
                if let Some(Node::Object(obj)) = target.and_then(|i| self.nodes.get_mut(i)) {
                    obj.state = Some(state);
                }
            }

            op::PERSID | op::BINPERSID => {
                return Err(self.unsupported(
                    "a persistent id, which only the writer's persistent_load can resolve",
                ))
            }
            op::EXT1 | op::EXT2 | op::EXT4 => {
                return Err(self.unsupported(
                    "a copyreg extension code, which needs the writer's extension registry",
                ))
            }
            op::NEXT_BUFFER | op::READONLY_BUFFER => {
                return Err(self
                    .unsupported("an out-of-band buffer, which is not stored in the pickle data"))
            }
            _ => return Err(self.error(format!("unknown opcode 0x{code:02x}"))),
        }
        Ok(())
    }

    // ---- errors ----

    #[cold]
    fn error(&self, message: String) -> PickleError {
        PickleError {
            offset: self.op_start,
            message,
        }
    }

    fn op_name(&self) -> &'static str {
        op::name(self.opcode).unwrap_or("unknown opcode")
    }

    #[cold]
    fn unsupported(&self, what: &str) -> PickleError {
        self.error(format!(
            "unsupported opcode {} (it refers to {what})",
            self.op_name()
        ))
    }

    #[cold]
    fn underflow(&self, needed: usize) -> PickleError {
        self.error(format!(
            "{} needs {needed} value(s) on the stack above the last MARK (malformed pickle)",
            self.op_name()
        ))
    }

    #[cold]
    fn wrong_target(&self, expected: &str) -> PickleError {
        self.error(format!(
            "{} applied to something that is not {expected} or an object",
            self.op_name()
        ))
    }

    #[cold]
    fn truncated(&self, wanted: u64) -> PickleError {
        self.error(format!(
            "{} needs {wanted} byte(s) but only {} remain (truncated pickle?)",
            self.op_name(),
            self.remaining()
        ))
    }

    // ---- reading arguments ----

    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    fn read_bytes(&mut self, len: usize) -> Result<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let slice = self
            .pos
            .checked_add(len)
            .and_then(|end| data.get(self.pos..end))
            .ok_or_else(|| self.truncated(len as u64))?;
        self.pos += len;
        Ok(slice)
    }

    fn read_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let bytes = self.read_bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn read_u8(&mut self) -> Result<u8> {
        Ok(self.read_array::<1>()?[0])
    }

    fn read_u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.read_array()?))
    }

    /// A length argument, checked against the remaining input before anything is allocated for it.
    fn checked_len(&self, len: u64) -> Result<usize> {
        match usize::try_from(len) {
            Ok(n) if n <= self.remaining() => Ok(n),
            _ => Err(self.truncated(len)),
        }
    }

    fn read_u32_len(&mut self) -> Result<usize> {
        let len = u32::from_le_bytes(self.read_array()?);
        self.checked_len(u64::from(len))
    }

    fn read_i32_len(&mut self) -> Result<usize> {
        let len = i32::from_le_bytes(self.read_array()?);
        let len = u64::try_from(len)
            .map_err(|_| self.error(format!("{} has a negative length", self.op_name())))?;
        self.checked_len(len)
    }

    fn read_u64_len(&mut self) -> Result<usize> {
        let len = self.read_u64()?;
        self.checked_len(len)
    }

    /// The text argument up to the next newline (the newline is consumed, not returned).
    fn read_line(&mut self) -> Result<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let rest = data.get(self.pos..).unwrap_or_default();
        let Some(len) = rest.iter().position(|&b| b == b'\n') else {
            return Err(self.error(format!(
                "{} argument has no terminating newline (truncated pickle?)",
                self.op_name()
            )));
        };
        self.pos += len + 1;
        Ok(rest.get(..len).unwrap_or_default())
    }

    fn read_blob(&mut self, len: usize) -> Result<Blob> {
        let bytes = self.read_bytes(len)?;
        let data = (len <= self.opts.keep_bytes_up_to).then(|| Rc::from(bytes));
        Ok(Blob { len, data })
    }

    fn push_utf8(&mut self, len: usize) -> Result<()> {
        if len > self.opts.keep_str_up_to {
            let offset = self.pos;
            self.read_bytes(len)?;
            return self.push(Value::LongStr { offset, len });
        }
        let bytes = self.read_bytes(len)?;
        let s = text::utf8_surrogatepass_lossy(bytes);
        self.push(Value::Str(Rc::from(&*s)))
    }

    fn decimal_id(&self, line: &[u8]) -> Result<u64> {
        text::parse_decimal_index(line).ok_or_else(|| {
            self.error(format!(
                "{} argument {:?} is not a memo index",
                self.op_name(),
                String::from_utf8_lossy(line)
            ))
        })
    }

    // ---- stack ----

    /// The stack index below which the current opcode may not reach (the last MARK).
    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    #[inline]
    fn push(&mut self, value: Value) -> Result<()> {
        if self.stack.len() >= self.opts.max_depth {
            return Err(self.stack_full());
        }
        self.stack.push(value);
        Ok(())
    }

    #[cold]
    fn stack_full(&self) -> PickleError {
        self.error(format!(
            "pickle stack holds more than {} values (Options::max_depth): nesting too deep or a tuple too long",
            self.opts.max_depth
        ))
    }

    fn new_node(&mut self, node: Node) -> Result<Value> {
        let id = u32::try_from(self.nodes.len())
            .map_err(|_| self.error("too many objects in one pickle".to_string()))?;
        self.nodes.push(node);
        Ok(Value::Node(NodeId(id)))
    }

    fn push_node(&mut self, node: Node) -> Result<()> {
        let value = self.new_node(node)?;
        self.push(value)
    }

    fn pop(&mut self) -> Result<Value> {
        if self.stack.len() <= self.fence() {
            return Err(self.underflow(1));
        }
        self.stack.pop().ok_or_else(|| self.underflow(1))
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<Value>> {
        let available = self.stack.len().saturating_sub(self.fence());
        if available < n {
            return Err(self.underflow(n));
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn top(&self) -> Result<&Value> {
        if self.stack.len() <= self.fence() {
            return Err(self.underflow(1));
        }
        self.stack.last().ok_or_else(|| self.underflow(1))
    }

    /// Close the last MARK: returns the stack length it recorded.
    fn take_mark(&mut self) -> Result<usize> {
        let start = self
            .marks
            .pop()
            .ok_or_else(|| self.error(format!("{} without a MARK before it", self.op_name())))?;
        if start > self.stack.len() {
            return Err(self.error(format!("{} found a MARK beyond the stack", self.op_name())));
        }
        Ok(start)
    }

    /// Close the last MARK and take the values pushed since it.
    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let start = self.take_mark()?;
        Ok(self.stack.split_off(start))
    }

    fn pairs(&self, items: Vec<Value>) -> Result<Vec<(Value, Value)>> {
        if items.len() % 2 != 0 {
            return Err(self.error(format!(
                "{} has an odd number of keys and values",
                self.op_name()
            )));
        }
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        Ok(pairs)
    }

    /// The node at `stack[start - 1]` that APPEND(S)/SETITEM(S)/ADDITEMS add `stack[start..]` to. It must lie
    /// above the last MARK, and at least `min_items` values must follow it.
    fn target_below(&self, start: usize, min_items: usize) -> Result<usize> {
        let below = start.checked_sub(1).filter(|&i| i >= self.fence());
        let (Some(index), true) = (below, self.stack.len().saturating_sub(start) >= min_items)
        else {
            return Err(self.underflow(min_items + 1));
        };
        match self.stack.get(index) {
            Some(Value::Node(id)) => Ok(id.0 as usize),
            _ => Err(self.wrong_target(if self.opcode == op::ADDITEMS {
                "a set"
            } else {
                "a list"
            })),
        }
    }

    /// APPEND, APPENDS, ADDITEMS: move `stack[start..]` into the list, set or object below them, in place.
    fn append_from(&mut self, start: usize) -> Result<()> {
        let min_items = usize::from(self.opcode == op::APPEND);
        let target = self.target_below(start, min_items)?;
        let is_set_op = self.opcode == op::ADDITEMS;
        match self.nodes.get_mut(target) {
            Some(Node::List(list)) if !is_set_op => list.extend(self.stack.drain(start..)),
            Some(Node::Set(set)) if is_set_op => set.extend(self.stack.drain(start..)),
            Some(Node::Object(obj)) => obj.list_items.extend(self.stack.drain(start..)),
            _ => return Err(self.wrong_target(if is_set_op { "a set" } else { "a list" })),
        }
        Ok(())
    }

    /// SETITEM, SETITEMS: move the key/value pairs `stack[start..]` into the dict or object below them.
    fn setitems_from(&mut self, start: usize) -> Result<()> {
        let min_items = if self.opcode == op::SETITEM { 2 } else { 0 };
        let target = self.target_below(start, min_items)?;
        if (self.stack.len() - start) % 2 != 0 {
            return Err(self.error(format!(
                "{} has an odd number of keys and values",
                self.op_name()
            )));
        }
        if !matches!(
            self.nodes.get(target),
            Some(Node::Dict(_) | Node::Object(_))
        ) {
            return Err(self.wrong_target("a dict"));
        }
        let count = (self.stack.len() - start) / 2;
        let mut items = self.stack.drain(start..);
        let pairs = std::iter::from_fn(move || Some((items.next()?, items.next()?)));
        let dict = match self.nodes.get_mut(target) {
            Some(Node::Dict(dict)) => dict,
            Some(Node::Object(obj)) => &mut obj.dict_items,
            _ => return Ok(()),
        };
        dict.reserve(count);
        dict.extend(pairs);
        Ok(())
    }

    // ---- memo ----

    fn memo_put(&mut self, id: u64) -> Result<()> {
        let value = self.top()?.clone();
        self.memo.put(id, value);
        Ok(())
    }

    fn memo_get(&mut self, id: u64) -> Result<()> {
        let value = self.memo.get(id).cloned().ok_or_else(|| {
            self.error(format!(
                "{} of memo id {id}, which was never stored",
                self.op_name()
            ))
        })?;
        self.push(value)
    }

    // ---- objects ----

    /// Account for `n` values copied out of an existing node into an object's arguments. A memoized tuple
    /// can be passed to REDUCE again and again; without this bound a few bytes per REDUCE could copy
    /// megabytes each time.
    fn charge_copy(&mut self, n: usize) -> Result<()> {
        match self.copy_budget.checked_sub(n) {
            Some(left) => {
                self.copy_budget = left;
                Ok(())
            }
            None => Err(self.error(format!(
                "{} argument tuples are reused more often than the input size allows",
                self.op_name()
            ))),
        }
    }

    fn tuple_items(&mut self, value: &Value, what: &str) -> Result<Vec<Value>> {
        let len = match self.deref(value) {
            Some(Node::Tuple(items)) => items.len(),
            _ => return Err(self.error(format!("{} {what} is not a tuple", self.op_name()))),
        };
        self.charge_copy(len)?;
        match self.deref(value) {
            Some(Node::Tuple(items)) => Ok(items.clone()),
            _ => Ok(Vec::new()),
        }
    }

    fn dict_pairs(&mut self, value: &Value) -> Result<Vec<(Value, Value)>> {
        let len = match self.deref(value) {
            Some(Node::Dict(pairs)) => pairs.len(),
            _ => {
                return Err(self.error(format!(
                    "{} keyword arguments are not a dict",
                    self.op_name()
                )))
            }
        };
        self.charge_copy(len.saturating_mul(2))?;
        match self.deref(value) {
            Some(Node::Dict(pairs)) => Ok(pairs.clone()),
            _ => Ok(Vec::new()),
        }
    }

    fn deref(&self, value: &Value) -> Option<&Node> {
        match value {
            Value::Node(id) => self.nodes.get(id.0 as usize),
            _ => None,
        }
    }

    fn global_name(&self, value: &Value) -> Option<(&str, &str)> {
        match self.deref(value)? {
            Node::Global { module, name } => Some((module, name)),
            _ => None,
        }
    }

    fn is_builtin_object(&self, value: &Value) -> bool {
        matches!(
            self.global_name(value),
            Some(("builtins" | "__builtin__", "object"))
        )
    }

    /// The record of `callable(*args)`, reading the copyreg helpers as the objects they create.
    fn reduce_record(&mut self, callable: Value, mut args: Vec<Value>) -> Result<Object> {
        let helper = match self.global_name(&callable) {
            Some(("copyreg" | "copy_reg", name)) => name,
            _ => "",
        };
        match (helper, args.as_slice()) {
            ("__newobj__", [_, ..]) => {
                let cls = args.remove(0);
                return Ok(object(BuildKind::NewObj, cls, args, Vec::new()));
            }
            ("__newobj_ex__", [cls, new_args, kwargs]) => {
                let is_tuple = matches!(self.deref(new_args), Some(Node::Tuple(_)));
                if is_tuple && matches!(self.deref(kwargs), Some(Node::Dict(_))) {
                    let (cls, new_args, kwargs) = (cls.clone(), new_args.clone(), kwargs.clone());
                    let new_args = self.tuple_items(&new_args, "argument")?;
                    let kwargs = self.dict_pairs(&kwargs)?;
                    return Ok(object(BuildKind::NewObj, cls, new_args, kwargs));
                }
            }
            ("_reconstructor", [cls, base, Value::None]) if self.is_builtin_object(base) => {
                return Ok(object(
                    BuildKind::NewObj,
                    cls.clone(),
                    Vec::new(),
                    Vec::new(),
                ));
            }
            _ => {}
        }
        Ok(object(BuildKind::Reduce, callable, args, Vec::new()))
    }

    fn push_object(
        &mut self,
        kind: BuildKind,
        cls: Value,
        args: Vec<Value>,
        kwargs: Vec<(Value, Value)>,
    ) -> Result<()> {
        self.push_node(Node::Object(Box::new(object(kind, cls, args, kwargs))))
    }
}

fn object(
    kind: BuildKind,
    callable: Value,
    args: Vec<Value>,
    kwargs: Vec<(Value, Value)>,
) -> Object {
    Object {
        kind,
        callable,
        args,
        kwargs,
        state: None,
        list_items: Vec::new(),
        dict_items: Vec::new(),
    }
}
