//! The decoded object graph of one pickle.
//!
//! Every container, instance and call record lives once in the graph (`Graph::slots`) and is referred to by
//! `NodeId`, so a memo reference shares the node instead of copying it and a self-reference is just an id that
//! points back: nothing is expanded into a tree and nothing is reference-counted in a cycle. Leaves (numbers,
//! strings, bytes) are stored inline. A node's items are runs in two arenas (values, and dict pairs), not
//! vectors of their own, and `Graph::node` hands out a `Node` view of them. Nothing here ever runs or imports
//! Python code: a class is only its name.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Index of a node in its graph (`Graph::node`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

/// A map by node: node ids are the decoder's own arena indices, never chosen by the input, so they need no
/// hash that resists chosen keys; a multiplication spreads them (SipHash was a tenth of reading a 1,000-loop
/// history).
pub type NodeMap<V> = HashMap<NodeId, V, std::hash::BuildHasherDefault<NodeHasher>>;

/// The hash of `NodeMap`: each word multiplied into the state by an odd constant (as rustc's FxHash). Bytes are
/// taken 8 at a time (the decoder's cache of recent strs hashes their bytes with it: a text chosen to collide
/// there only misses the cache).
#[derive(Default)]
pub struct NodeHasher(u64);

impl std::hash::Hasher for NodeHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.write_u64(u64::from_le_bytes([
                w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7],
            ]));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(last));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// A str shared between values (the memo hands out the same one): a thin pointer, so a `Value` stays two words.
pub type SharedStr = Rc<Box<str>>;

/// A new shared str holding `text`.
pub fn shared(text: &str) -> SharedStr {
    Rc::new(Box::from(text))
}

/// A bytes or bytearray payload. Large payloads (numpy buffers) may be kept as their length only.
#[derive(Clone, Debug, PartialEq)]
pub struct Blob {
    pub len: usize,
    /// The content, or `None` when the decoder was told to drop payloads longer than its keep limit.
    pub data: Option<Rc<[u8]>>,
}

/// One decoded value. Containers and objects are `Node`s in the graph.
///
/// A str is `Short` (up to `ShortStr::CAP` bytes, stored in the value: copying it touches no other memory)
/// or `Str` (shared); `Value::str` picks, and equality compares the text whichever form holds it.
///
/// A value is two words (checked below): the arenas, the memo and the stack hold millions of them in a large
/// snapshot, and their pages are most of what decoding costs the kernel. Shared payloads are therefore behind
/// thin pointers (`Rc<Box<..>>`), and a long str's length is a `u32`.
#[derive(Clone, Debug, Default)]
pub enum Value {
    #[default]
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit i64: little-endian two's complement bytes, as LONG1/LONG4 carry it.
    BigInt(Rc<Box<[u8]>>),
    Float(f64),
    Str(SharedStr),
    Short(ShortStr),
    /// A BINUNICODE* str longer than the decoder's `keep_str_up_to`: where its bytes are in the decoded input,
    /// not copied and not checked as UTF-8 until someone reads it with `Graph::long_str`.
    LongStr {
        offset: usize,
        len: u32,
    },
    Bytes(Rc<Blob>),
    /// `NotImplemented` and `Ellipsis` and other singletons reached as globals are `Node::Global`.
    Node(NodeId),
}

const _: () = assert!(std::mem::size_of::<Value>() == 16);
const _: () = assert!(std::mem::size_of::<Option<Value>>() == 16);

/// A str of at most `CAP` bytes held in place.
#[derive(Clone, Copy)]
pub struct ShortStr {
    len: u8,
    bytes: [u8; ShortStr::CAP],
}

impl ShortStr {
    /// The most bytes a short str holds: what fits beside the tag and the length in a `Value` of two words.
    pub const CAP: usize = 14;

    fn new(text: &str) -> Option<ShortStr> {
        let len = u8::try_from(text.len())
            .ok()
            .filter(|&n| usize::from(n) <= Self::CAP)?;
        let mut bytes = [0u8; Self::CAP];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Some(ShortStr { len, bytes })
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: `new` is the only constructor, and it copies `len` bytes of a `&str`: they are UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.bytes[..usize::from(self.len)]) }
    }
}

impl std::fmt::Debug for ShortStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        use Value::*;
        match (self, other) {
            (None, None) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (BigInt(a), BigInt(b)) => a == b,
            (Float(a), Float(b)) => a == b,
            (Str(_) | Short(_), Str(_) | Short(_)) => self.as_str() == other.as_str(),
            (
                LongStr { offset, len },
                LongStr {
                    offset: o2,
                    len: l2,
                },
            ) => (offset, len) == (o2, l2),
            (Bytes(a), Bytes(b)) => a == b,
            (Node(a), Node(b)) => a == b,
            _ => false,
        }
    }
}

/// What an object-like node was built with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildKind {
    /// NEWOBJ / NEWOBJ_EX / `copyreg.__newobj__`: `cls.__new__(cls, *args)`.
    NewObj,
    /// REDUCE of any callable: a call record.
    Reduce,
    /// INST / OBJ (protocol 0/1 instance creation).
    Inst,
}

/// An instance or a call record, as a view into its graph: `callable(*args, **kwargs)`, then BUILD(state),
/// APPEND(S), SETITEM(S).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Object<'g> {
    pub kind: BuildKind,
    /// The class or callable, normally a `Node::Global`.
    pub callable: &'g Value,
    pub args: &'g [Value],
    pub kwargs: &'g [(Value, Value)],
    /// The BUILD argument, if any (a dict, or a `(dict, slots dict)` tuple, or anything `__setstate__` takes).
    pub state: Option<&'g Value>,
    /// Items added by APPEND/APPENDS (list subclasses).
    pub list_items: &'g [Value],
    /// Items added by SETITEM/SETITEMS (dict subclasses such as `collections.defaultdict`, `OrderedDict`).
    pub dict_items: &'g [(Value, Value)],
}

/// One node of a graph, as a view: its items are slices of the graph's arenas.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Node<'g> {
    List(&'g [Value]),
    Tuple(&'g [Value]),
    Dict(&'g [(Value, Value)]),
    Set(&'g [Value]),
    FrozenSet(&'g [Value]),
    ByteArray(&'g Blob),
    /// A global reference by name; never resolved.
    Global {
        module: &'g str,
        name: &'g str,
    },
    Object(Object<'g>),
    /// A value the decoder did not build: the value of a dict entry whose key is in
    /// `Options::skip_values_of`.
    Skipped,
}

/// A run of items in one of the graph's two arenas (`Graph::values` or `Graph::pairs`). Items below `len` are
/// never changed once written; `cap - len` slots after them are reserved for this sequence alone, so a list that
/// grows by APPENDs interleaved with other nodes' items moves at most a logarithmic number of times.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Seq {
    pub(crate) start: u32,
    pub(crate) len: u32,
    pub(crate) cap: u32,
}

impl Seq {
    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.start as usize + self.len as usize
    }

    /// The items written so far, as a sequence of its own that never grows (arguments taken from a tuple,
    /// keyword arguments taken from a dict).
    pub(crate) fn frozen(self) -> Seq {
        Seq {
            cap: self.len,
            ..self
        }
    }
}

/// An object's record in `Graph::objects`: what nearly every object has. Keyword arguments and items added by
/// APPEND/SETITEM are rare, so they live in `Graph::object_extras` (a record is 56 bytes, not 96; a 1,000-loop
/// snapshot holds 41,000 objects).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ObjectRec {
    pub(crate) callable: Value,
    pub(crate) state: Option<Value>,
    pub(crate) args: Seq,
    /// Index of the object's `ObjectExtras`, or `NO_EXTRAS`.
    pub(crate) extras: u32,
    pub(crate) kind: BuildKind,
}

/// An object's keyword arguments and added items (`ObjectRec::extras`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct ObjectExtras {
    pub(crate) kwargs: Seq,
    pub(crate) list_items: Seq,
    pub(crate) dict_items: Seq,
}

/// `ObjectRec::extras` of an object with no keyword arguments and no added items.
pub(crate) const NO_EXTRAS: u32 = u32::MAX;

const _: () = assert!(std::mem::size_of::<ObjectRec>() == 56);

/// Store `parts` in `extras` and give the index an `ObjectRec` refers to them by; `NO_EXTRAS` for none.
pub(crate) fn add_extras(
    extras: &mut Vec<ObjectExtras>,
    parts: ObjectExtras,
) -> Result<u32, ArenaFull> {
    if parts == ObjectExtras::default() {
        return Ok(NO_EXTRAS);
    }
    push_extras(extras, parts)
}

fn push_extras(extras: &mut Vec<ObjectExtras>, parts: ObjectExtras) -> Result<u32, ArenaFull> {
    let index = to_u32(extras.len())?;
    if index == NO_EXTRAS {
        return Err(ArenaFull);
    }
    extras.push(parts);
    Ok(index)
}

/// The extras of `objects[i]`, created empty on first use.
pub(crate) fn extras_mut<'a>(
    objects: &mut [ObjectRec],
    extras: &'a mut Vec<ObjectExtras>,
    i: usize,
) -> Result<&'a mut ObjectExtras, ArenaFull> {
    let rec = &mut objects[i];
    if rec.extras == NO_EXTRAS {
        rec.extras = push_extras(extras, ObjectExtras::default())?;
    }
    Ok(&mut extras[rec.extras as usize])
}

/// A node's record in `Graph::slots`: sequences point into the arenas, the rest into side tables.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Slot {
    List(Seq),
    Tuple(Seq),
    Dict(Seq),
    Set(Seq),
    FrozenSet(Seq),
    ByteArray(u32),
    Global(u32),
    Object(u32),
    /// A skipped value (`Options::skip_values_of`): the decoder's index of it.
    Skipped(u32),
}

/// Which arena a growing sequence lives in.
pub(crate) trait Arena: Clone {
    const EMPTY: Self;
}

impl Arena for Value {
    const EMPTY: Self = Value::None;
}

impl Arena for (Value, Value) {
    const EMPTY: Self = (Value::None, Value::None);
}

/// Why an item could not be stored: the arena would pass `u32::MAX` entries.
#[derive(Debug)]
pub(crate) struct ArenaFull;

fn to_u32(n: usize) -> Result<u32, ArenaFull> {
    u32::try_from(n).map_err(|_| ArenaFull)
}

/// Append `items` to the sequence `seq` of `arena`: in place when it is the arena's last sequence or has room
/// reserved, else moved to the end with room for as many items again. Each item is written once plus the moves,
/// which double the room each time: amortized O(1) per item, and the arena stays within a small factor of the
/// items stored.
pub(crate) fn extend_seq<T: Arena>(
    arena: &mut Vec<T>,
    seq: &mut Seq,
    items: impl ExactSizeIterator<Item = T>,
) -> Result<(), ArenaFull> {
    let n = items.len();
    let (start, len, cap) = (seq.start as usize, seq.len as usize, seq.cap as usize);
    let new_len = to_u32(len + n)?;
    if seq.cap == 0 {
        seq.start = to_u32(arena.len())?;
        to_u32(arena.len() + n)?;
        arena.extend(items);
        *seq = Seq {
            start: seq.start,
            len: new_len,
            cap: new_len,
        };
    } else if start + cap == arena.len() {
        // The last sequence of the arena: drop its reserve and grow the arena itself.
        to_u32(start + len + n)?;
        arena.truncate(start + len);
        arena.extend(items);
        seq.len = new_len;
        seq.cap = new_len;
    } else if len + n <= cap {
        for (slot, item) in arena[start + len..start + len + n].iter_mut().zip(items) {
            *slot = item;
        }
        seq.len = new_len;
    } else {
        let new_cap = (len + n).saturating_mul(2).max(8);
        let new_start = arena.len();
        to_u32(new_start + new_cap)?;
        crate::work::add(len);
        arena.reserve(new_cap);
        arena.extend_from_within(start..start + len);
        arena.extend(items);
        arena.resize(new_start + new_cap, T::EMPTY);
        *seq = Seq {
            start: new_start as u32,
            len: new_len,
            cap: new_cap as u32,
        };
    }
    Ok(())
}

/// Keys longer than this are not indexed by `Graph::attr`/`dict_get` (no attribute name rd-chain looks up is
/// near it); a lookup of a longer name scans. Bounding the key length bounds the hashing work per pair, even
/// when every key of a dict is the same memoized megabyte string.
pub const MAX_INDEXED_KEY: usize = 64;

/// Dicts of at most this many pairs are scanned instead of indexed: a bounded scan, cheaper than hashing.
const SCAN_UP_TO: usize = 16;

/// The str keys of one dict (or a dict-like object's SETITEM items) and the position of the last pair with
/// each: what makes `attr`/`dict_get` O(1) after one pass over the pairs.
type KeyIndex = HashMap<Box<str>, usize>;

/// A decoded pickle: its nodes, the arenas their items live in, and its top value.
///
/// Nodes are small records (`Slot`) in one vector; the items of every list, tuple, set and object argument list
/// live in one arena of values, the pairs of every dict in one arena of pairs, and an object's fields in one
/// more table. Decoding allocates per arena, not per node, and arguments taken from a tuple share its items.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub(crate) slots: Vec<Slot>,
    pub(crate) values: Vec<Value>,
    pub(crate) pairs: Vec<(Value, Value)>,
    pub(crate) objects: Vec<ObjectRec>,
    pub(crate) object_extras: Vec<ObjectExtras>,
    pub(crate) globals: Vec<(SharedStr, SharedStr)>,
    pub(crate) byte_arrays: Vec<Blob>,
    pub root: Value,
    /// The protocol announced by PROTO, or 0/1 when the stream has none.
    pub protocol: u8,
    /// How many bytes of input the pickle took, up to and including its STOP opcode (0 for a graph built
    /// by hand). Readers of the graph bound what they copy out of it by this.
    pub input_len: usize,
    /// Key indexes built on first lookup, one per dict node looked into (see `KeyIndex`).
    pub(crate) key_index: RefCell<NodeMap<Rc<KeyIndex>>>,
}

/// An object's parts, for building a graph by hand with `Graph::add_object`.
#[derive(Clone, Debug)]
pub struct ObjectParts {
    pub kind: BuildKind,
    pub callable: Value,
    pub args: Vec<Value>,
    pub kwargs: Vec<(Value, Value)>,
    pub state: Option<Value>,
    pub list_items: Vec<Value>,
    pub dict_items: Vec<(Value, Value)>,
}

impl ObjectParts {
    /// `callable(*args)` with no keyword arguments, state or items yet.
    pub fn new(kind: BuildKind, callable: Value, args: Vec<Value>) -> Self {
        ObjectParts {
            kind,
            callable,
            args,
            kwargs: Vec::new(),
            state: None,
            list_items: Vec::new(),
            dict_items: Vec::new(),
        }
    }
}

impl Graph {
    /// The node `id` (panics for an id not in this graph, as indexing does).
    pub fn node(&self, id: NodeId) -> Node<'_> {
        self.view(self.slots[id.0 as usize])
    }

    /// How many nodes the graph has (ids `0..node_count()`).
    pub fn node_count(&self) -> usize {
        self.slots.len()
    }

    /// Every node, in id order.
    pub fn nodes(&self) -> impl Iterator<Item = Node<'_>> + '_ {
        self.slots.iter().map(|slot| self.view(*slot))
    }

    fn view(&self, slot: Slot) -> Node<'_> {
        match slot {
            Slot::List(seq) => Node::List(self.items_of(seq)),
            Slot::Tuple(seq) => Node::Tuple(self.items_of(seq)),
            Slot::Set(seq) => Node::Set(self.items_of(seq)),
            Slot::FrozenSet(seq) => Node::FrozenSet(self.items_of(seq)),
            Slot::Dict(seq) => Node::Dict(self.pairs_of(seq)),
            Slot::ByteArray(i) => Node::ByteArray(&self.byte_arrays[i as usize]),
            Slot::Skipped(_) => Node::Skipped,
            Slot::Global(i) => {
                let (module, name) = &self.globals[i as usize];
                Node::Global { module, name }
            }
            Slot::Object(i) => {
                let rec = &self.objects[i as usize];
                let extras = self
                    .object_extras
                    .get(rec.extras as usize)
                    .copied()
                    .unwrap_or_default();
                Node::Object(Object {
                    kind: rec.kind,
                    callable: &rec.callable,
                    args: self.items_of(rec.args),
                    kwargs: self.pairs_of(extras.kwargs),
                    state: rec.state.as_ref(),
                    list_items: self.items_of(extras.list_items),
                    dict_items: self.pairs_of(extras.dict_items),
                })
            }
        }
    }

    pub(crate) fn items_of(&self, seq: Seq) -> &[Value] {
        &self.values[seq.range()]
    }

    fn pairs_of(&self, seq: Seq) -> &[(Value, Value)] {
        &self.pairs[seq.range()]
    }

    /// How many items and pairs the arenas hold (reserved room included): what the graph's size is
    /// proportional to, for tests that bound it.
    pub fn arena_len(&self) -> usize {
        self.values.len() + self.pairs.len()
    }

    // ---- building by hand (tests, and graphs made from other data) ----

    fn add_slot(&mut self, slot: Slot) -> Value {
        self.slots.push(slot);
        Value::Node(NodeId((self.slots.len() - 1) as u32))
    }

    fn add_items(&mut self, items: Vec<Value>) -> Seq {
        let mut seq = Seq::default();
        extend_seq(&mut self.values, &mut seq, items.into_iter()).expect("a hand-built graph fits");
        seq
    }

    fn add_pairs(&mut self, pairs: Vec<(Value, Value)>) -> Seq {
        let mut seq = Seq::default();
        extend_seq(&mut self.pairs, &mut seq, pairs.into_iter()).expect("a hand-built graph fits");
        seq
    }

    pub fn add_list(&mut self, items: Vec<Value>) -> Value {
        let seq = self.add_items(items);
        self.add_slot(Slot::List(seq))
    }

    pub fn add_tuple(&mut self, items: Vec<Value>) -> Value {
        let seq = self.add_items(items);
        self.add_slot(Slot::Tuple(seq))
    }

    pub fn add_set(&mut self, items: Vec<Value>) -> Value {
        let seq = self.add_items(items);
        self.add_slot(Slot::Set(seq))
    }

    pub fn add_dict(&mut self, pairs: Vec<(Value, Value)>) -> Value {
        let seq = self.add_pairs(pairs);
        self.add_slot(Slot::Dict(seq))
    }

    pub fn add_byte_array(&mut self, blob: Blob) -> Value {
        self.byte_arrays.push(blob);
        self.add_slot(Slot::ByteArray((self.byte_arrays.len() - 1) as u32))
    }

    pub fn add_global(&mut self, module: &str, name: &str) -> Value {
        self.globals.push((shared(module), shared(name)));
        self.add_slot(Slot::Global((self.globals.len() - 1) as u32))
    }

    pub fn add_object(&mut self, parts: ObjectParts) -> Value {
        let args = self.add_items(parts.args);
        let extras = ObjectExtras {
            kwargs: self.add_pairs(parts.kwargs),
            list_items: self.add_items(parts.list_items),
            dict_items: self.add_pairs(parts.dict_items),
        };
        let extras = add_extras(&mut self.object_extras, extras).expect("a hand-built graph fits");
        self.objects.push(ObjectRec {
            callable: parts.callable,
            state: parts.state,
            args,
            extras,
            kind: parts.kind,
        });
        self.add_slot(Slot::Object((self.objects.len() - 1) as u32))
    }

    /// The text of a `Value::LongStr`, from `input` (the bytes this graph was decoded from), decoded the way
    /// the decoder decodes kept strings (invalid UTF-8 replaced); `None` for any other value or other input.
    pub fn long_str<'a>(
        &self,
        input: &'a [u8],
        value: &Value,
    ) -> Option<std::borrow::Cow<'a, str>> {
        match value {
            Value::LongStr { offset, len } => {
                let bytes = input.get(*offset..offset.checked_add(*len as usize)?)?;
                Some(crate::pickle::decode::text::utf8_surrogatepass_lossy(bytes))
            }
            _ => None,
        }
    }

    /// The top value.
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// The node a value refers to, if it is a node.
    pub fn deref(&self, value: &Value) -> Option<Node<'_>> {
        match value {
            Value::Node(id) => Some(self.node(*id)),
            _ => None,
        }
    }

    /// `(module, name)` of a global value, or of the class/callable of an object value.
    pub fn class_of(&self, value: &Value) -> Option<(&str, &str)> {
        match self.deref(value)? {
            Node::Global { module, name } => Some((module, name)),
            Node::Object(obj) => match self.deref(obj.callable)? {
                Node::Global { module, name } => Some((module, name)),
                _ => None,
            },
            _ => None,
        }
    }

    /// The object a value refers to.
    pub fn object(&self, value: &Value) -> Option<Object<'_>> {
        match self.deref(value)? {
            Node::Object(obj) => Some(obj),
            _ => None,
        }
    }

    /// The instance attributes of an object: its BUILD state when that is a dict, or the first element of a
    /// `(dict, slots)` state tuple, merged with the slots dict. Returns the pairs in pickle order.
    pub fn attrs(&self, value: &Value) -> Vec<(&Value, &Value)> {
        let Some(state) = self.object(value).and_then(|obj| obj.state) else {
            return Vec::new();
        };
        match self.deref(state) {
            Some(Node::Dict(pairs)) => {
                crate::work::add(pairs.len());
                pairs.iter().map(|(k, v)| (k, v)).collect()
            }
            Some(Node::Tuple(parts)) if parts.len() == 2 => {
                let mut out = Vec::new();
                for part in parts {
                    if let Some(Node::Dict(pairs)) = self.deref(part) {
                        crate::work::add(pairs.len());
                        out.extend(pairs.iter().map(|(k, v)| (k, v)));
                    }
                }
                out
            }
            _ => Vec::new(),
        }
    }

    /// One attribute of an object by name (see `attrs`). The last assignment wins, as in Python.
    ///
    /// O(1) after the first lookup in a state dict: each dict is indexed once, however many objects share
    /// it and however many times it is asked (a history with N references to one experiment whose state
    /// has M entries costs O(N + M), not O(N * M)).
    pub fn attr(&self, value: &Value, name: &str) -> Option<&Value> {
        let Value::Node(id) = self.object(value)?.state? else {
            return None;
        };
        match self.node(*id) {
            Node::Dict(_) => self.lookup(*id, name),
            // `(dict, slots)`: the slots dict comes last, so its entries win.
            Node::Tuple(parts) if parts.len() == 2 => {
                parts.iter().rev().find_map(|part| match part {
                    Value::Node(part_id) if matches!(self.node(*part_id), Node::Dict(_)) => {
                        self.lookup(*part_id, name)
                    }
                    _ => None,
                })
            }
            _ => None,
        }
    }

    /// Look a key up in a dict value (a plain dict or a dict-like object's SETITEM items). The last pair
    /// with the key wins. A str key is found through the dict's index (see `attr`); other keys scan.
    pub fn dict_get(&self, value: &Value, key: &Value) -> Option<&Value> {
        let Value::Node(id) = value else {
            return None;
        };
        let pairs = self.pairs(value)?;
        match key.as_str() {
            Some(name) => self.lookup(*id, name),
            None => {
                crate::work::add(pairs.len());
                pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
            }
        }
    }

    /// The value of the last pair whose key is the str `name`, in the dict-like node `id`.
    fn lookup(&self, id: NodeId, name: &str) -> Option<&Value> {
        let pairs = self.pairs(&Value::Node(id))?;
        if name.len() > MAX_INDEXED_KEY || pairs.len() <= SCAN_UP_TO {
            crate::work::add(pairs.len());
            return pairs
                .iter()
                .rev()
                .find(|(k, _)| k.as_str() == Some(name))
                .map(|(_, v)| v);
        }
        let index = self.key_index(id, pairs);
        let at = *index.get(name)?;
        pairs.get(at).map(|(_, v)| v)
    }

    fn key_index(&self, id: NodeId, pairs: &[(Value, Value)]) -> Rc<KeyIndex> {
        crate::work::add(1);
        if let Some(index) = self.key_index.borrow().get(&id) {
            return Rc::clone(index);
        }
        crate::work::add(pairs.len());
        let mut index = KeyIndex::with_capacity(pairs.len().min(1024));
        for (at, (key, _)) in pairs.iter().enumerate() {
            if let Some(s) = key.as_str() {
                if s.len() <= MAX_INDEXED_KEY {
                    index.insert(Box::from(s), at);
                }
            }
        }
        let index = Rc::new(index);
        self.key_index.borrow_mut().insert(id, Rc::clone(&index));
        index
    }

    /// The elements of a list, tuple, set, or a list-like object's APPEND items.
    pub fn items(&self, value: &Value) -> Option<&[Value]> {
        match self.deref(value)? {
            Node::List(v) | Node::Tuple(v) | Node::Set(v) | Node::FrozenSet(v) => Some(v),
            Node::Object(obj) => Some(obj.list_items),
            _ => None,
        }
    }

    /// The pairs of a dict, or a dict-like object's SETITEM items.
    pub fn pairs(&self, value: &Value) -> Option<&[(Value, Value)]> {
        match self.deref(value)? {
            Node::Dict(pairs) => Some(pairs),
            Node::Object(obj) => Some(obj.dict_items),
            _ => None,
        }
    }
}

impl Value {
    /// A str value: held in place when short, shared otherwise.
    pub fn str(text: &str) -> Value {
        match ShortStr::new(text) {
            Some(short) => Value::Short(short),
            None => Value::Str(shared(text)),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Short(s) => Some(s.as_str()),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pickle::decode::tests::support::ok;

    #[test]
    fn node_ids_hash_apart_in_their_low_bits_and_a_node_map_finds_each() {
        use std::hash::BuildHasher;
        let hasher = std::hash::BuildHasherDefault::<NodeHasher>::default();
        // Sequential ids (what the decoder hands out) land in distinct buckets of a 1,024-bucket table.
        let buckets: std::collections::BTreeSet<u64> = (0..1024)
            .map(|i| hasher.hash_one(NodeId(i)) & 1023)
            .collect();
        assert_eq!(buckets.len(), 1024);
        let hashes: std::collections::BTreeSet<u64> =
            (0..100_000).map(|i| hasher.hash_one(NodeId(i))).collect();
        assert_eq!(hashes.len(), 100_000);
        let mut map: NodeMap<u32> = NodeMap::default();
        for i in (0..50_000).step_by(7) {
            map.insert(NodeId(i), i * 2);
        }
        assert!((0..50_000).all(|i| map.get(&NodeId(i)).copied() == (i % 7 == 0).then_some(i * 2)));
    }

    #[test]
    fn a_value_is_two_words_and_short_strs_fit_in_it() {
        assert_eq!(std::mem::size_of::<Value>(), 16);
        assert_eq!(std::mem::size_of::<Option<Value>>(), 16);
        let fits = "x".repeat(ShortStr::CAP);
        let over = "x".repeat(ShortStr::CAP + 1);
        assert!(matches!(Value::str(&fits), Value::Short(s) if s.as_str() == fits));
        assert!(matches!(Value::str(&over), Value::Str(s) if **s == *over));
        assert!(matches!(Value::str(""), Value::Short(s) if s.as_str().is_empty()));
        // A multi-byte char is never cut: the length counted is in bytes.
        let wide = "\u{65e5}".repeat(5); // 15 bytes
        assert_eq!(Value::str(&wide).as_str(), Some(wide.as_str()));
        assert!(matches!(Value::str(&wide), Value::Str(_)));
        // Equality is by text, whichever form holds it.
        assert_eq!(Value::str("k"), Value::Str(Rc::new(Box::from("k"))));
        assert_ne!(Value::str("k"), Value::str("K"));
        assert_ne!(Value::str("1"), Value::Int(1));
    }

    /// Two lists grown by single APPENDs in turn, so neither is ever the arena's last sequence for long.
    fn interleaved_appends(n: usize) -> Vec<u8> {
        let mut data = b"\x80\x02]q\x00]q\x01".to_vec();
        for i in 0..n {
            let byte = (i % 200) as u8;
            data.extend_from_slice(&[b'h', 0, b'K', byte, b'a', b'0']);
            data.extend_from_slice(&[b'h', 1, b'K', byte, b'a', b'0']);
        }
        data.extend_from_slice(b"h\x00h\x01\x86.");
        data
    }

    #[test]
    fn interleaved_appends_keep_order_and_grow_the_arena_linearly() {
        let count = |n: usize| {
            let data = interleaved_appends(n);
            crate::work::take();
            let g = ok(&data);
            let work = crate::work::take();
            let lists = g.items(&g.root).unwrap();
            for list in lists {
                let items = g.items(list).unwrap();
                assert_eq!(items.len(), n);
                for (i, v) in items.iter().enumerate() {
                    assert_eq!(v, &Value::Int((i % 200) as i64));
                }
            }
            // Each list moves when its room runs out, doubling the room: the arena holds at most a few
            // times the items, and the items moved are as many again.
            assert!(
                g.arena_len() <= 8 * n + 64,
                "{} slots for {} items",
                g.arena_len(),
                2 * n
            );
            work
        };
        let (w1, w2) = (count(1000), count(4000));
        assert!(
            w2 <= 5 * w1,
            "work grew from {w1} to {w2} for 4x the appends"
        );
    }

    #[test]
    fn a_moved_sequence_leaves_earlier_views_intact() {
        // A dict passed as NEWOBJ_EX keyword arguments, then (after another dict took the arena's end) given
        // more pairs, which moves it: the object keeps the pairs the dict had when the object was made.
        let data = b"\x80\x04\x8c\x01m\x8c\x01C\x93)}\x8c\x01a\x4b\x01s\x94\x92}\x8c\x01z\x4b\x09s0h\x00\x8c\x01b\x4b\x02s\x86.";
        let g = ok(data);
        let items = g.items(&g.root).unwrap();
        let obj = g.object(&items[0]).unwrap();
        assert_eq!(obj.kwargs.len(), 1);
        assert_eq!(obj.kwargs[0].0.as_str(), Some("a"));
        let pairs = g.pairs(&items[1]).unwrap();
        let keys: Vec<_> = pairs.iter().map(|(k, _)| k.as_str().unwrap()).collect();
        assert_eq!(keys, ["a", "b"]);
    }
}
