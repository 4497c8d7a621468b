//! The decoded object graph of one pickle.
//!
//! Every container, instance and call record lives once in an arena (`Graph::nodes`) and is referred to by
//! `NodeId`, so a memo reference shares the node instead of copying it and a self-reference is just an id that
//! points back: nothing is expanded into a tree and nothing is reference-counted in a cycle. Leaves (numbers,
//! strings, bytes) are stored inline. Nothing here ever runs or imports Python code: a class is only its name.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Index of a node in `Graph::nodes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

/// A bytes or bytearray payload. Large payloads (numpy buffers) may be kept as their length only.
#[derive(Clone, Debug, PartialEq)]
pub struct Blob {
    pub len: usize,
    /// The content, or `None` when the decoder was told to drop payloads longer than its keep limit.
    pub data: Option<Rc<[u8]>>,
}

/// One decoded value. Containers and objects are `Node`s in the graph.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Value {
    #[default]
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit i64: little-endian two's complement bytes, as LONG1/LONG4 carry it.
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    /// A BINUNICODE* str longer than the decoder's `keep_str_up_to`: where its bytes are in the decoded input,
    /// not copied and not checked as UTF-8 until someone reads it with `Graph::long_str`.
    LongStr {
        offset: usize,
        len: usize,
    },
    Bytes(Rc<Blob>),
    /// `NotImplemented` and `Ellipsis` and other singletons reached as globals are `Node::Global`.
    Node(NodeId),
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

/// An instance or a call record: `callable(*args, **kwargs)`, then BUILD(state), APPEND(S), SETITEM(S).
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    pub kind: BuildKind,
    /// The class or callable, normally a `Node::Global`.
    pub callable: Value,
    pub args: Vec<Value>,
    pub kwargs: Vec<(Value, Value)>,
    /// The BUILD argument, if any (a dict, or a `(dict, slots dict)` tuple, or anything `__setstate__` takes).
    pub state: Option<Value>,
    /// Items added by APPEND/APPENDS (list subclasses).
    pub list_items: Vec<Value>,
    /// Items added by SETITEM/SETITEMS (dict subclasses such as `collections.defaultdict`, `OrderedDict`).
    pub dict_items: Vec<(Value, Value)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
    FrozenSet(Vec<Value>),
    ByteArray(Blob),
    /// A global reference by name; never resolved.
    Global {
        module: Rc<str>,
        name: Rc<str>,
    },
    Object(Box<Object>),
}

/// Keys longer than this are not indexed by `Graph::attr`/`dict_get` (no attribute name rd-chain looks up is
/// near it); a lookup of a longer name scans. Bounding the key length bounds the hashing work per pair, even
/// when every key of a dict is the same memoized megabyte string.
pub const MAX_INDEXED_KEY: usize = 64;

/// The str keys of one dict (or a dict-like object's SETITEM items) and the position of the last pair with
/// each: what makes `attr`/`dict_get` O(1) after one pass over the pairs.
type KeyIndex = HashMap<Rc<str>, usize>;

/// A decoded pickle: its arena and its top value.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub root: Value,
    /// The protocol announced by PROTO, or 0/1 when the stream has none.
    pub protocol: u8,
    /// How many bytes of input the pickle took, up to and including its STOP opcode (0 for a graph built
    /// by hand). Readers of the graph bound what they copy out of it by this.
    pub input_len: usize,
    /// Key indexes built on first lookup, one per dict node looked into (see `KeyIndex`).
    pub(crate) key_index: RefCell<HashMap<NodeId, Rc<KeyIndex>>>,
}

impl Graph {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0 as usize]
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
                let bytes = input.get(*offset..offset.checked_add(*len)?)?;
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
    pub fn deref<'a>(&'a self, value: &Value) -> Option<&'a Node> {
        match value {
            Value::Node(id) => Some(self.node(*id)),
            _ => None,
        }
    }

    /// `(module, name)` of a global value, or of the class/callable of an object value.
    pub fn class_of<'a>(&'a self, value: &Value) -> Option<(&'a str, &'a str)> {
        match self.deref(value)? {
            Node::Global { module, name } => Some((module, name)),
            Node::Object(obj) => match self.deref(&obj.callable)? {
                Node::Global { module, name } => Some((module, name)),
                _ => None,
            },
            _ => None,
        }
    }

    /// The object a value refers to.
    pub fn object<'a>(&'a self, value: &Value) -> Option<&'a Object> {
        match self.deref(value)? {
            Node::Object(obj) => Some(obj),
            _ => None,
        }
    }

    /// The instance attributes of an object: its BUILD state when that is a dict, or the first element of a
    /// `(dict, slots)` state tuple, merged with the slots dict. Returns the pairs in pickle order.
    pub fn attrs<'a>(&'a self, value: &Value) -> Vec<(&'a Value, &'a Value)> {
        let Some(obj) = self.object(value) else {
            return Vec::new();
        };
        let Some(state) = &obj.state else {
            return Vec::new();
        };
        match self.deref(state) {
            Some(Node::Dict(pairs)) => {
                super::work::add(pairs.len());
                pairs.iter().map(|(k, v)| (k, v)).collect()
            }
            Some(Node::Tuple(parts)) if parts.len() == 2 => {
                let mut out = Vec::new();
                for part in parts {
                    if let Some(Node::Dict(pairs)) = self.deref(part) {
                        super::work::add(pairs.len());
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
    pub fn attr<'a>(&'a self, value: &Value, name: &str) -> Option<&'a Value> {
        let obj = self.object(value)?;
        let state = obj.state.as_ref()?;
        let Value::Node(id) = state else {
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
    pub fn dict_get<'a>(&'a self, value: &Value, key: &Value) -> Option<&'a Value> {
        let Value::Node(id) = value else {
            return None;
        };
        let pairs = self.pairs(value)?;
        match key {
            Value::Str(name) => self.lookup(*id, name),
            _ => {
                super::work::add(pairs.len());
                pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
            }
        }
    }

    /// The value of the last pair whose key is the str `name`, in the dict-like node `id`.
    fn lookup(&self, id: NodeId, name: &str) -> Option<&Value> {
        let pairs = self.pairs(&Value::Node(id))?;
        if name.len() > MAX_INDEXED_KEY {
            super::work::add(pairs.len());
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
        super::work::add(1);
        if let Some(index) = self.key_index.borrow().get(&id) {
            return Rc::clone(index);
        }
        super::work::add(pairs.len());
        let mut index = KeyIndex::with_capacity(pairs.len().min(1024));
        for (at, (key, _)) in pairs.iter().enumerate() {
            if let Value::Str(s) = key {
                if s.len() <= MAX_INDEXED_KEY {
                    index.insert(Rc::clone(s), at);
                }
            }
        }
        let index = Rc::new(index);
        self.key_index.borrow_mut().insert(id, Rc::clone(&index));
        index
    }

    /// The elements of a list, tuple, set, or a list-like object's APPEND items.
    pub fn items<'a>(&'a self, value: &Value) -> Option<&'a [Value]> {
        match self.deref(value)? {
            Node::List(v) | Node::Tuple(v) | Node::Set(v) | Node::FrozenSet(v) => Some(v),
            Node::Object(obj) => Some(&obj.list_items),
            _ => None,
        }
    }

    /// The pairs of a dict, or a dict-like object's SETITEM items.
    pub fn pairs<'a>(&'a self, value: &Value) -> Option<&'a [(Value, Value)]> {
        match self.deref(value)? {
            Node::Dict(pairs) => Some(pairs),
            Node::Object(obj) => Some(&obj.dict_items),
            _ => None,
        }
    }
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
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
