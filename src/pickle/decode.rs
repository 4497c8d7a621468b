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
//! - Limits: the mark stack and the value stack each hold at most `Options::max_depth` entries. An object's
//!   arguments share the items of the tuple they were passed in (and NEWOBJ_EX's keyword arguments the pairs of
//!   their dict as they were then): nothing is copied, so reusing one memoized tuple in many REDUCEs costs one
//!   node each and cannot multiply memory.
//! - Global names are kept as written (no Python 2 to 3 renaming such as `__builtin__` -> `builtins`).
//! - Skipped values (`Options::skip_values_of`; protocol 2 and later): the value of a dict entry whose str key is
//!   listed becomes `Node::Skipped`. Its opcodes are only skimmed (`skim`) to find where it ends and which memo
//!   ids it stores; those ids are set aside, and a later GET of one decodes the value's opcodes then, so the
//!   object is the same node wherever else it is referred to. Whatever skimming cannot predict is decoded as
//!   usual, and if a deferred value cannot be decoded later consistently (deferred values nested more than
//!   `MAX_NESTING` deep, a PUT replacing an id, an error in its opcodes) the whole pickle is decoded again
//!   without skipping, so errors are the plain decoder's. A skipped value nothing refers to is never decoded:
//!   what is wrong inside it beyond what skimming checks (opcodes, lengths, stack and MARK balance) goes
//!   unreported. Skimming reads at most as many opcodes as the input has bytes over a whole decode; after that,
//!   values are decoded.

mod opcodes;
mod skim;
#[cfg(test)]
pub(crate) mod tests;
pub(crate) mod text;

use std::collections::HashMap;
use std::rc::Rc;

use super::value::{
    add_extras, extend_seq, extras_mut, shared, ArenaFull, ObjectExtras, ObjectRec, Seq, SharedStr,
    ShortStr, Slot,
};
use super::{Blob, BuildKind, Graph, NodeId, Options, PickleError, Value};
use crate::work;
use opcodes as op;

/// Decode one pickle (up to its STOP opcode; bytes after it are ignored) into an object graph.
pub fn decode(data: &[u8], opts: &Options) -> std::result::Result<Graph, PickleError> {
    decode_reporting(data, opts, &mut |_| {})
}

/// How often `decode_reporting` says how far it has got.
pub const REPORT_EVERY: usize = 1 << 20;

/// `decode`, calling `done(n)` each time it has read about `REPORT_EVERY` more bytes: no byte before `n` is read
/// again by the decoder (a caller may give the memory of a mapped file's pages back), except the opcodes of a
/// skipped value when a later reference needs an object it defines (they are then read again, once).
pub fn decode_reporting(
    data: &[u8],
    opts: &Options,
    done: &mut dyn FnMut(usize),
) -> std::result::Result<Graph, PickleError> {
    let mut machine = Machine::new(data, opts, done);
    match machine.run_to_stop() {
        Ok(()) => Ok(machine.graph),
        Err(_) if machine.gave_up => {
            // The skipped values could not be brought back consistently (input no CPython writes, or deferred
            // values nested too deep): decode everything, as without skipping.
            let plain = Options {
                skip_values_of: &[],
                ..opts.clone()
            };
            let mut machine = Machine::new(data, &plain, done);
            machine.run_to_stop().map_err(|e| *e)?;
            Ok(machine.graph)
        }
        Err(e) => Err(*e),
    }
}

/// Errors are boxed inside the machine so that every step's result fits in registers.
type Result<T> = std::result::Result<T, Box<PickleError>>;

/// The memo: ids CPython assigns are dense from 0, so they index a vector; an id far beyond the number of
/// entries stored (hostile input, or a hand-written PUT) goes to a map instead, so the memory stays
/// proportional to the number of PUTs whatever the ids are. An id lives in exactly one of the two: one stored in
/// the map stays there even after the vector has grown past it, so growing never moves or rescans entries.
///
/// The ids a skipped value's opcodes store are set aside (`reserve`) and take no slot in the vector: an id after
/// such a run sits as many slots earlier as ids were set aside before it. Most of a long snapshot's ids are
/// skipped values' (150,000 of 180,000 at 1,000 loops), and a slot each would be most of the decoder's memory,
/// every page of it written once. A deferred value decoded after all stores its objects in slots of its run's
/// own (`filled`).
#[derive(Default)]
struct Memo {
    dense: Vec<Option<Value>>,
    sparse: HashMap<u64, Value>,
    /// The number of distinct ids stored (what MEMOIZE uses as its id), counting the ids of deferred values.
    count: u64,
    /// The runs of ids set aside, in id order: (first id, how many, how many set aside up to its end).
    aside: Vec<(u64, u64, u64)>,
    /// The runs whose value was decoded after all (by run index), with the objects stored under their ids: a few
    /// runs of thousands for CPython's output, and found in logarithmic time however many there are.
    filled: std::collections::BTreeMap<usize, Vec<Option<Value>>>,
    /// The run the last id looked up between runs fell in or after (references come in clusters).
    near: std::cell::Cell<usize>,
    /// The run each of the ids looked up between runs lately fell in or after, by id modulo its length: the ids
    /// looked up over and over (the keys of the objects a snapshot repeats, stored once near its start) are
    /// found without a search. An entry never goes stale: runs are only added after every id stored so far.
    seen: RunCache,
}

/// `Memo::seen`: (id + 1, run) per entry, 0 for an empty one; made on first use.
#[derive(Default)]
struct RunCache(std::cell::OnceCell<Box<[RunCacheEntry]>>);

type RunCacheEntry = std::cell::Cell<(u64, usize)>;

/// Entries in `RunCache` (a power of two).
const RUN_CACHE: usize = 512;

impl RunCache {
    fn get(&self, id: u64) -> Option<usize> {
        let entry = self.0.get()?[id as usize % RUN_CACHE].get();
        (entry.0 == id.wrapping_add(1)).then_some(entry.1)
    }

    fn set(&self, id: u64, run: usize) {
        let entries = self
            .0
            .get_or_init(|| vec![std::cell::Cell::new((0, 0)); RUN_CACHE].into_boxed_slice());
        entries[id as usize % RUN_CACHE].set((id.wrapping_add(1), run));
    }
}

/// Where the memo keeps an id: a slot of its vector (or the map of scattered ids), or a set-aside run and the id's
/// offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Slot(u64),
    Aside(usize, u64),
}

impl Memo {
    /// The dense part may grow to this many slots: twice the entries plus a small constant.
    fn dense_limit(&self) -> u64 {
        self.count.saturating_mul(2).saturating_add(1024)
    }

    /// How many ids were set aside in all.
    fn aside_total(&self) -> u64 {
        self.aside.last().map_or(0, |run| run.2)
    }

    #[inline]
    fn place(&self, id: u64) -> Place {
        let Some(&(first, n, total)) = self.aside.last() else {
            return Place::Slot(id);
        };
        // The ids stored since the last run (the object being decoded) and those before the first run (classes,
        // keys) are the common references: neither needs a search.
        if id >= first + n {
            return Place::Slot(id - total);
        }
        if id < self.aside[0].0 {
            return Place::Slot(id);
        }
        let near = self.near.get();
        let found = |run: usize| {
            self.aside.get(run).is_some_and(|r| r.0 <= id)
                && self.aside.get(run + 1).is_none_or(|r| id < r.0)
        };
        let run = if found(near) {
            near
        } else if let Some(run) = self.seen.get(id) {
            self.near.set(run);
            run
        } else {
            let run = self.aside.partition_point(|run| run.0 <= id) - 1;
            self.near.set(run);
            self.seen.set(id, run);
            run
        };
        let (first, n, total) = self.aside[run];
        if id < first + n {
            Place::Aside(run, id - first)
        } else {
            Place::Slot(id - total)
        }
    }

    fn put(&mut self, id: u64, value: Value) {
        if !self.sparse.is_empty() {
            work::add(1);
            if let Some(slot) = self.sparse.get_mut(&id) {
                *slot = value;
                return;
            }
        }
        let slot = match self.place(id) {
            Place::Slot(slot) => slot,
            Place::Aside(run, at) => {
                // Its id was counted when it was set aside.
                self.fill_at(run, at, value);
                return;
            }
        };
        let dense_len = self.dense.len() as u64;
        if slot == dense_len && slot < self.dense_limit() {
            // The common case (CPython's ids count up from 0): one more slot.
            work::add(1);
            self.dense.push(Some(value));
            self.count += 1;
            return;
        }
        if slot > dense_len && slot < self.dense_limit() {
            // Fill only up to the id: the vector's capacity still grows geometrically (amortized O(1) per PUT),
            // but slots past the highest id are neither written nor, for a large memo, ever made resident. The
            // slots filled over a whole decode stay below the final limit.
            let wanted = slot + 1;
            let before = self.dense.len();
            self.dense
                .resize(usize::try_from(wanted).unwrap_or(before), None);
            work::add(self.dense.len() - before);
        }
        if let Some(entry) = usize::try_from(slot)
            .ok()
            .and_then(|i| self.dense.get_mut(i))
        {
            if entry.replace(value).is_none() {
                self.count += 1;
            }
        } else if self.sparse.insert(id, value).is_none() {
            self.count += 1;
        }
    }

    /// Whether the ids are exactly `0..count`, all in the dense part or set aside (what CPython writes): only then
    /// can the ids of a skipped value be set aside.
    fn is_dense(&self) -> bool {
        self.sparse.is_empty() && self.dense.len() as u64 + self.aside_total() == self.count
    }

    /// Set aside the next `n` ids for a deferred value (only while `is_dense`).
    fn reserve(&mut self, n: u64) {
        work::add(1);
        let total = self.aside_total().saturating_add(n);
        self.aside.push((self.count, n, total));
        self.count = self.count.saturating_add(n);
    }

    /// Store a deferred value's object under an id set aside for it. False if the id was not set aside.
    fn fill(&mut self, id: u64, value: Value) -> bool {
        match self.place(id) {
            Place::Aside(run, at) => {
                self.fill_at(run, at, value);
                true
            }
            Place::Slot(_) => false,
        }
    }

    /// The run's slots are made when its first object is stored: as many as the ids it holds, which its value's
    /// opcodes (all in the input) stored, so no more than the input's length.
    fn fill_at(&mut self, run: usize, at: u64, value: Value) {
        let n = self.aside[run].1;
        let slots = self.filled.entry(run).or_insert_with(|| {
            let n = usize::try_from(n).unwrap_or(0);
            work::add(n);
            vec![None; n]
        });
        if let Some(slot) = usize::try_from(at).ok().and_then(|i| slots.get_mut(i)) {
            *slot = Some(value);
        }
    }

    #[inline]
    fn get(&self, id: u64) -> Option<&Value> {
        match self.place(id) {
            Place::Slot(slot) => match usize::try_from(slot).ok().and_then(|i| self.dense.get(i)) {
                Some(Some(value)) => Some(value),
                _ => self.sparse.get(&id),
            },
            Place::Aside(run, at) => self
                .filled
                .get(&run)?
                .get(usize::try_from(at).ok()?)?
                .as_ref(),
        }
    }
}

/// The longest str `RecentStrs` looks up (path segments, short texts; longer ones are rarely written twice).
const STR_CACHE_UP_TO: usize = 64;

/// Entries in `RecentStrs` (a power of two).
const STR_CACHE: usize = 1024;

/// The strs decoded lately (longer than a `ShortStr`, up to `STR_CACHE_UP_TO` bytes), one per entry by a hash of
/// their bytes. The same text written again (a workspace path's segments are written anew for every path:
/// `git_ignore_folder`, `RD-Agent_workspace`) is then one shared allocation, neither checked as UTF-8 nor copied
/// again. A str memoized and referred to shares its allocation anyway; this is for the same text written twice.
#[derive(Default)]
struct RecentStrs(Vec<Option<SharedStr>>);

impl RecentStrs {
    /// The value of the str whose UTF-8 (surrogates allowed) bytes are `bytes`.
    fn get_or_insert(&mut self, bytes: &[u8]) -> Value {
        if self.0.is_empty() {
            self.0.resize(STR_CACHE, None);
        }
        let slot = &mut self.0[str_hash(bytes) as usize % STR_CACHE];
        // Equal to a decoded text, the bytes are valid UTF-8 and decode to it (bytes that are not would decode
        // to other bytes, and are never equal to one).
        if let Some(s) = slot.as_ref().filter(|s| s.as_bytes() == bytes) {
            return Value::Str(Rc::clone(s));
        }
        // (Replacing bad bytes never shortens a text, so this is a `Value::Str`; kept only if it is.)
        let value = Value::str(&text::utf8_surrogatepass_lossy(bytes));
        if let Value::Str(s) = &value {
            *slot = Some(Rc::clone(s));
        }
        value
    }
}

/// `NodeMap`'s multiplicative hash of `bytes` and their length, its high bits folded into the low ones that pick an
/// entry.
fn str_hash(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut hasher = super::value::NodeHasher::default();
    hasher.write_u64(bytes.len() as u64);
    hasher.write(bytes);
    let h = hasher.finish();
    h ^ h >> 29
}

/// `Options::skip_values_of` for quick tests, made once per decode: a bit per key length (below 64 bytes), and each
/// key with its first 8 bytes as a number. Most strs that are not keys (`stdout` and `result`, `target_task` and
/// `sub_results` share a length) are told apart by a comparison of two numbers.
struct SkipKeys {
    lengths: u64,
    /// Whether a key is 64 bytes or longer (then every such length may be one).
    long: bool,
    keys: Vec<(u64, &'static str)>,
}

impl SkipKeys {
    fn new(keys: &'static [&'static str]) -> SkipKeys {
        SkipKeys {
            lengths: keys
                .iter()
                .filter(|k| (1..64).contains(&k.len()))
                .fold(0, |bits, k| bits | 1 << k.len()),
            long: keys.iter().any(|k| k.len() >= 64),
            keys: keys.iter().map(|k| (first_word(k), *k)).collect(),
        }
    }

    /// Whether a str of `len` bytes may be a key.
    #[inline]
    fn may_be(&self, len: usize) -> bool {
        if len < 64 {
            self.lengths >> len & 1 == 1
        } else {
            self.long
        }
    }

    fn contains(&self, s: &str) -> bool {
        let word = first_word(s);
        self.keys.iter().any(|&(w, k)| w == word && k == s)
    }
}

/// The first 8 bytes of `s` (fewer, zero-padded) as a number.
fn first_word(s: &str) -> u64 {
    let mut word = [0u8; 8];
    let n = s.len().min(8);
    word[..n].copy_from_slice(&s.as_bytes()[..n]);
    u64::from_le_bytes(word)
}

/// Room reserved in each arena before decoding, from the input's length: about what an RD-Agent snapshot of
/// that size holds (input bytes per item, measured on the 100- and 1,000-loop benchmark snapshots and rounded
/// down), so the arenas are not copied over and over as they grow (at 100 loops that copying was 1.3 M of 19 M
/// instructions). It is only address space: a buffer this large is mapped by the allocator and a page costs
/// memory once written, so input made of long strs or payloads reserves room it never touches. Capped at
/// `RESERVE_CAP_BYTES` of address space per arena.
fn reserve_by_input(len: usize, graph: &mut Graph, memo: &mut Memo) {
    reserve_for_input(&mut graph.values, 128, len);
    reserve_for_input(&mut graph.pairs, 256, len);
    reserve_for_input(&mut graph.slots, 192, len);
    reserve_for_input(&mut graph.objects, 640, len);
    reserve_for_input(&mut memo.dense, 160, len);
}

/// Room for one item per `input_bytes_per_item` bytes of a `len`-byte input, at most `RESERVE_CAP_BYTES`.
fn reserve_for_input<T>(v: &mut Vec<T>, input_bytes_per_item: usize, len: usize) {
    let cap = RESERVE_CAP_BYTES / std::mem::size_of::<T>().max(1);
    v.reserve((len / input_bytes_per_item).min(cap));
}

/// Room reserved for the skipped values' records when values are skipped, the same way (a skipped value per
/// 5 KB of a 1,000-loop snapshot, so these rarely grow and are never copied into fresh pages as they do).
fn reserve_skips_by_input(len: usize, machine: &mut Machine) {
    reserve_for_input(&mut machine.skips, SKIP_INPUT_BYTES, len);
    reserve_for_input(&mut machine.deferred.ordered, SKIP_INPUT_BYTES, len);
    reserve_for_input(&mut machine.memo.aside, SKIP_INPUT_BYTES, len);
}

/// Input bytes per skipped value reserved for (`reserve_skips_by_input`).
const SKIP_INPUT_BYTES: usize = 4096;

/// The most address space `reserve_by_input` reserves for one arena.
const RESERVE_CAP_BYTES: usize = 64 << 20;

struct Machine<'a> {
    data: &'a [u8],
    /// Told the position each time it passes `next_report`.
    done: &'a mut dyn FnMut(usize),
    next_report: usize,
    /// Read position: the byte after the current opcode and the arguments read so far.
    pos: usize,
    /// Offset of the opcode being executed (what errors report).
    op_start: usize,
    opcode: u8,
    opts: &'a Options,
    skip_keys: SkipKeys,
    recent_strs: RecentStrs,
    /// The graph being built: its nodes and arenas (`root` is set at STOP).
    graph: Graph,
    stack: Vec<Value>,
    /// Stack lengths at each open MARK; items below the last one are out of reach until it is popped.
    marks: Vec<usize>,
    memo: Memo,
    announced_protocol: Option<u8>,
    /// The highest protocol among the opcodes seen (reported when the stream has no PROTO).
    opcode_protocol: u8,
    /// Every value skipped (`Slot::Skipped` holds its index here).
    skips: Vec<Skip>,
    /// The skipped values that store memo ids and are not decoded yet: their index, by their first id.
    deferred: Deferred,
    /// Placeholders of skipped values on the stack (stack index, node, index in `skips`), lowest first. One
    /// may only leave the stack as the value SETITEM(S) puts in a dict; anything else that takes, changes or
    /// memoizes it decodes the value first (`unskip_from`).
    placeholders: Vec<(usize, NodeId, u32)>,
    /// While a deferred value is decoded: the id its next MEMOIZE stores.
    fill_next: Option<u64>,
    /// How many deferred values are being decoded inside one another.
    nesting: usize,
    /// Opcodes skimming may still read over the whole decode (as many as the input has bytes: the cost stays
    /// linear whatever the input).
    skim_budget: usize,
    /// The buffers skimming works in.
    scratch: skim::Scratch,
    /// Set when skipping cannot go on consistently: the error then only means "decode without skipping".
    gave_up: bool,
}

/// A skipped value: where its opcodes are, the memo ids they store, and the value once decoded.
#[derive(Clone, Debug)]
struct Skip {
    start: usize,
    end: usize,
    first_id: u64,
    ids: u64,
    value: Option<Value>,
}

/// The skipped values not decoded yet, by their first memo id. The values the main decode skips come in the order
/// of their ids and go at the end of a vector (a push each); one decoded after all is marked there, not removed.
/// The values skipped while a deferred one is decoded take ids set aside earlier and go in a map. Nothing ever
/// moves the entries after it, which input could otherwise make quadratic (a million values skipped, then each
/// referred to in turn).
///
/// The values not decoded yet never overlap: a value is skipped inside another only while that one is being
/// decoded, after it left. So the one that may hold an id is the one with the highest first id at or below it,
/// in the vector or in the map; and when that one in the vector was decoded, no earlier one there holds the id
/// (the main decode's values follow one another), only one in the map may.
#[derive(Default)]
struct Deferred {
    /// The main decode's skipped values in order: (first id, index in `skips`, or `DECODED`).
    ordered: Vec<(u64, u32)>,
    /// The values skipped inside deferred ones.
    nested: std::collections::BTreeMap<u64, u32>,
    /// How many entries of `ordered` are not decoded yet.
    waiting: usize,
}

/// An entry of `Deferred::ordered` whose value was decoded.
const DECODED: u32 = u32::MAX;

impl Deferred {
    /// A value skipped by the main decode (`nested` false) or inside a deferred one.
    fn insert(&mut self, first_id: u64, index: u32, nested: bool) {
        let in_order = self.ordered.last().is_none_or(|&(last, _)| last < first_id);
        if nested || !in_order {
            self.nested.insert(first_id, index);
        } else {
            self.ordered.push((first_id, index));
            self.waiting += 1;
        }
    }

    fn remove(&mut self, first_id: u64) {
        if self.nested.remove(&first_id).is_some() {
            return;
        }
        let at = self.ordered.partition_point(|&(id, _)| id < first_id);
        if let Some(entry) = self.ordered.get_mut(at) {
            if entry.0 == first_id && entry.1 != DECODED {
                entry.1 = DECODED;
                self.waiting -= 1;
            }
        }
    }

    /// The value that may hold `id`: the one with the highest first id at or below it (the caller checks that it
    /// holds `id`).
    fn at_or_before(&self, id: u64) -> Option<u32> {
        let after = self.ordered.partition_point(|&(first, _)| first <= id);
        let ordered = after
            .checked_sub(1)
            .map(|at| self.ordered[at])
            .filter(|&(_, index)| index != DECODED);
        let nested = self.nested.range(..=id).next_back().map(|(&f, &i)| (f, i));
        match (ordered, nested) {
            (Some(a), Some(b)) => Some(if a.0 >= b.0 { a.1 } else { b.1 }),
            (a, b) => a.or(b).map(|(_, index)| index),
        }
    }

    fn is_empty(&self) -> bool {
        self.waiting == 0 && self.nested.is_empty()
    }
}

/// How many deferred values may be decoded inside one another before skipping gives up.
const MAX_NESTING: usize = 32;

impl<'a> Machine<'a> {
    fn new(data: &'a [u8], opts: &'a Options, done: &'a mut dyn FnMut(usize)) -> Self {
        let mut graph = Graph::default();
        let mut memo = Memo::default();
        reserve_by_input(data.len(), &mut graph, &mut memo);
        let mut machine = Machine {
            data,
            done,
            next_report: REPORT_EVERY,
            pos: 0,
            op_start: 0,
            opcode: 0,
            opts,
            skip_keys: SkipKeys::new(opts.skip_values_of),
            recent_strs: RecentStrs::default(),
            graph,
            stack: Vec::new(),
            marks: Vec::new(),
            memo,
            announced_protocol: None,
            opcode_protocol: 0,
            skips: Vec::new(),
            deferred: Deferred::default(),
            placeholders: Vec::new(),
            fill_next: None,
            nesting: 0,
            skim_budget: data.len(),
            scratch: skim::Scratch::default(),
            gave_up: false,
        };
        if !opts.skip_values_of.is_empty() {
            reserve_skips_by_input(data.len(), &mut machine);
        }
        machine
    }

    /// Run up to STOP, which sets the graph's root.
    fn run_to_stop(&mut self) -> Result<()> {
        loop {
            if self.pos >= self.next_report {
                (self.done)(self.pos);
                self.next_report = self.pos.saturating_add(REPORT_EVERY);
            }
            self.op_start = self.pos;
            let Some(&code) = self.data.get(self.pos) else {
                return Err(Box::new(PickleError {
                    offset: self.data.len(),
                    message: if self.data.is_empty() {
                        "empty pickle data".to_string()
                    } else {
                        "pickle data ends without a STOP opcode (truncated?)".to_string()
                    },
                }));
            };
            self.pos += 1;
            self.opcode = code;
            work::add(1);
            if self.announced_protocol.is_none() {
                self.opcode_protocol = self.opcode_protocol.max(op::introduced_in(code));
            }
            if code == op::STOP {
                let root = self.pop()?;
                self.graph.root = root;
                self.graph.protocol = self.announced_protocol.unwrap_or(self.opcode_protocol);
                self.graph.input_len = self.pos;
                return Ok(());
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
                self.push(Value::str(&s))?;
            }
            op::BINSTRING => {
                let len = self.read_i32_len()?;
                let bytes = self.read_bytes(len)?;
                self.push(Value::str(&text::latin1(bytes)))?;
            }
            op::SHORT_BINSTRING => {
                let len = usize::from(self.read_u8()?);
                let bytes = self.read_bytes(len)?;
                self.push(Value::str(&text::latin1(bytes)))?;
            }
            op::UNICODE => {
                let line = self.read_line()?;
                let s = text::raw_unicode_escape(line).map_err(|m| self.error(m))?;
                self.push(Value::str(&s))?;
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
                self.graph.byte_arrays.push(blob);
                let index = self.index_u32(self.graph.byte_arrays.len() - 1)?;
                self.push_node(Slot::ByteArray(index))?;
            }

            // Containers.
            op::EMPTY_TUPLE => self.push_node(Slot::Tuple(Seq::default()))?,
            op::EMPTY_LIST => self.push_node(Slot::List(Seq::default()))?,
            op::EMPTY_DICT => self.push_node(Slot::Dict(Seq::default()))?,
            op::EMPTY_SET => self.push_node(Slot::Set(Seq::default()))?,
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
                let start = self.take_mark()?;
                let seq = self.values_from(start)?;
                self.push_node(Slot::Tuple(seq))?;
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let start = self.start_of_last(usize::from(code - op::TUPLE1) + 1)?;
                let seq = self.values_from(start)?;
                self.push_node(Slot::Tuple(seq))?;
            }
            op::LIST => {
                let start = self.take_mark()?;
                let seq = self.values_from(start)?;
                self.push_node(Slot::List(seq))?;
            }
            op::DICT => {
                let start = self.take_mark()?;
                let seq = self.pairs_from(start)?;
                self.push_node(Slot::Dict(seq))?;
            }
            op::FROZENSET => {
                let start = self.take_mark()?;
                let seq = self.values_from(start)?;
                self.push_node(Slot::FrozenSet(seq))?;
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
                self.unskip_from(self.stack.len().wrapping_sub(1))?;
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
                let id = self.fill_next.unwrap_or(self.memo.count);
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
                let global = self.new_global(shared(&module), shared(&name))?;
                self.push(global)?;
            }
            op::STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (shared_str(&module), shared_str(&name)) {
                    (Some(module), Some(name)) => {
                        let global = self.new_global(module, name)?;
                        self.push(global)?;
                    }
                    _ => return Err(self.error("STACK_GLOBAL needs two str values".to_string())),
                }
            }
            op::REDUCE => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let args = self.tuple_seq(&args, "argument")?;
                let object = self.reduce_record(callable, args)?;
                self.push_object(object)?;
            }
            op::NEWOBJ => {
                let args = self.pop()?;
                let cls = self.pop()?;
                let args = self.tuple_seq(&args, "argument")?;
                self.push_object(object(BuildKind::NewObj, cls, args, Seq::default()))?;
            }
            op::NEWOBJ_EX => {
                let kwargs = self.pop()?;
                let args = self.pop()?;
                let cls = self.pop()?;
                let args = self.tuple_seq(&args, "argument")?;
                let kwargs = self.dict_seq(&kwargs)?;
                self.push_object(object(BuildKind::NewObj, cls, args, kwargs))?;
            }
            op::INST => {
                let module = text::utf8_surrogatepass_lossy(self.read_line()?);
                let name = text::utf8_surrogatepass_lossy(self.read_line()?);
                let start = self.take_mark()?;
                let args = self.values_from(start)?;
                let cls = self.new_global(shared(&module), shared(&name))?;
                self.push_object(object(BuildKind::Inst, cls, args, Seq::default()))?;
            }
            op::OBJ => {
                let start = self.take_mark()?;
                if self.stack.len() == start {
                    return Err(self.error("OBJ without a class after its MARK".to_string()));
                }
                self.unskip_from(start)?;
                let args = self.values_from(start + 1)?;
                let cls = self.stack.pop().unwrap_or_default();
                self.push_object(object(BuildKind::Inst, cls, args, Seq::default()))?;
            }
            op::BUILD => {
                let state = self.pop()?;
                self.unskip_from(self.stack.len().wrapping_sub(1))?;
                if let Value::Node(id) = self.top()? {
                    if let Some(Slot::Object(i)) = self.graph.slots.get(id.0 as usize) {
                        self.graph.objects[*i as usize].state = Some(state);
                    }
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
    fn error(&self, message: String) -> Box<PickleError> {
        Box::new(PickleError {
            offset: self.op_start,
            message,
        })
    }

    fn op_name(&self) -> &'static str {
        op::name(self.opcode).unwrap_or("unknown opcode")
    }

    #[cold]
    fn unsupported(&self, what: &str) -> Box<PickleError> {
        self.error(format!(
            "unsupported opcode {} (it refers to {what})",
            self.op_name()
        ))
    }

    #[cold]
    fn underflow(&self, needed: usize) -> Box<PickleError> {
        self.error(format!(
            "{} needs {needed} value(s) on the stack above the last MARK (malformed pickle)",
            self.op_name()
        ))
    }

    #[cold]
    fn wrong_target(&self, expected: &str) -> Box<PickleError> {
        self.error(format!(
            "{} applied to something that is not {expected} or an object",
            self.op_name()
        ))
    }

    #[cold]
    fn truncated(&self, wanted: u64) -> Box<PickleError> {
        self.error(format!(
            "{} needs {wanted} byte(s) but only {} remain (truncated pickle?)",
            self.op_name(),
            self.remaining()
        ))
    }

    // ---- reading arguments ----

    #[inline]
    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    #[inline]
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

    #[inline]
    fn read_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let bytes = self.read_bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    #[inline]
    fn read_u8(&mut self) -> Result<u8> {
        Ok(self.read_array::<1>()?[0])
    }

    fn read_u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.read_array()?))
    }

    /// A length argument, checked against the remaining input before anything is allocated for it.
    #[inline]
    fn checked_len(&self, len: u64) -> Result<usize> {
        match usize::try_from(len) {
            Ok(n) if n <= self.remaining() => Ok(n),
            _ => Err(self.truncated(len)),
        }
    }

    #[inline]
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

    #[inline]
    fn push_utf8(&mut self, len: usize) -> Result<()> {
        if len > self.opts.keep_str_up_to {
            let offset = self.pos;
            self.read_bytes(len)?;
            let len = u32::try_from(len).map_err(|_| {
                self.error(format!(
                    "{} str of {len} bytes is longer than rd-chain reads (4 GiB)",
                    self.op_name()
                ))
            })?;
            return self.push(Value::LongStr { offset, len });
        }
        let bytes = self.read_bytes(len)?;
        let value = if len <= ShortStr::CAP || len > STR_CACHE_UP_TO {
            Value::str(&text::utf8_surrogatepass_lossy(bytes))
        } else {
            self.recent_strs.get_or_insert(bytes)
        };
        self.push(value)?;
        if self.skips(len) {
            self.skip_value()?;
        }
        Ok(())
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
    #[inline]
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
    fn stack_full(&self) -> Box<PickleError> {
        self.error(format!(
            "pickle stack holds more than {} values (Options::max_depth): nesting too deep or a tuple too long",
            self.opts.max_depth
        ))
    }

    #[cold]
    fn too_many(&self, _: ArenaFull) -> Box<PickleError> {
        self.error("too many objects or items in one pickle".to_string())
    }

    fn index_u32(&self, n: usize) -> Result<u32> {
        u32::try_from(n).map_err(|_| self.too_many(ArenaFull))
    }

    #[inline]
    fn new_node(&mut self, slot: Slot) -> Result<Value> {
        let id = self.index_u32(self.graph.slots.len())?;
        self.graph.slots.push(slot);
        Ok(Value::Node(NodeId(id)))
    }

    #[inline]
    fn push_node(&mut self, slot: Slot) -> Result<()> {
        let value = self.new_node(slot)?;
        self.push(value)
    }

    fn new_global(&mut self, module: SharedStr, name: SharedStr) -> Result<Value> {
        let index = self.index_u32(self.graph.globals.len())?;
        self.graph.globals.push((module, name));
        self.new_node(Slot::Global(index))
    }

    #[inline]
    fn pop(&mut self) -> Result<Value> {
        self.unskip_from(self.stack.len().wrapping_sub(1))?;
        if self.stack.len() <= self.fence() {
            return Err(self.underflow(1));
        }
        self.stack.pop().ok_or_else(|| self.underflow(1))
    }

    /// Where the last `n` values above the last MARK start.
    fn start_of_last(&self, n: usize) -> Result<usize> {
        let available = self.stack.len().saturating_sub(self.fence());
        if available < n {
            return Err(self.underflow(n));
        }
        Ok(self.stack.len() - n)
    }

    #[inline]
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

    /// Move `stack[start..]` into the values arena as a new sequence.
    fn values_from(&mut self, start: usize) -> Result<Seq> {
        self.unskip_from(start)?;
        let mut seq = Seq::default();
        extend_seq(&mut self.graph.values, &mut seq, self.stack.drain(start..))
            .map_err(|e| self.too_many(e))?;
        Ok(seq)
    }

    /// Move the key/value pairs `stack[start..]` into the pairs arena as a new sequence.
    fn pairs_from(&mut self, start: usize) -> Result<Seq> {
        self.unskip_from(start)?;
        self.check_even(start)?;
        let mut seq = Seq::default();
        extend_seq(
            &mut self.graph.pairs,
            &mut seq,
            Pairs(self.stack.drain(start..)),
        )
        .map_err(|e| self.too_many(e))?;
        Ok(seq)
    }

    fn check_even(&self, start: usize) -> Result<()> {
        if (self.stack.len() - start) % 2 != 0 {
            return Err(self.error(format!(
                "{} has an odd number of keys and values",
                self.op_name()
            )));
        }
        Ok(())
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
        self.unskip_from(start.wrapping_sub(1))?;
        let min_items = usize::from(self.opcode == op::APPEND);
        let target = self.target_below(start, min_items)?;
        let is_set_op = self.opcode == op::ADDITEMS;
        let graph = &mut self.graph;
        let seq = match graph.slots.get_mut(target) {
            Some(Slot::List(seq)) if !is_set_op => Ok(seq),
            Some(Slot::Set(seq)) if is_set_op => Ok(seq),
            Some(Slot::Object(i)) => {
                extras_mut(&mut graph.objects, &mut graph.object_extras, *i as usize)
                    .map(|e| &mut e.list_items)
            }
            _ => return Err(self.wrong_target(if is_set_op { "a set" } else { "a list" })),
        };
        let result =
            seq.and_then(|seq| extend_seq(&mut graph.values, seq, self.stack.drain(start..)));
        result.map_err(|e| self.too_many(e))
    }

    /// SETITEM, SETITEMS: move the key/value pairs `stack[start..]` into the dict or object below them.
    fn setitems_from(&mut self, start: usize) -> Result<()> {
        self.keep_skipped_values(start);
        self.unskip_from(start.wrapping_sub(1))?;
        let min_items = if self.opcode == op::SETITEM { 2 } else { 0 };
        let target = self.target_below(start, min_items)?;
        self.check_even(start)?;
        let graph = &mut self.graph;
        let seq = match graph.slots.get_mut(target) {
            Some(Slot::Dict(seq)) => Ok(seq),
            Some(Slot::Object(i)) => {
                extras_mut(&mut graph.objects, &mut graph.object_extras, *i as usize)
                    .map(|e| &mut e.dict_items)
            }
            _ => return Err(self.wrong_target("a dict")),
        };
        work::add(self.stack.len() - start);
        let result =
            seq.and_then(|seq| extend_seq(&mut graph.pairs, seq, Pairs(self.stack.drain(start..))));
        result.map_err(|e| self.too_many(e))
    }

    // ---- memo ----

    #[inline]
    fn memo_put(&mut self, id: u64) -> Result<()> {
        self.unskip_from(self.stack.len().wrapping_sub(1))?;
        let value = self.top()?.clone();
        match &mut self.fill_next {
            // A PUT that replaces an id could change what a deferred value's references mean when it is
            // decoded later (CPython never writes one).
            None if id < self.memo.count && !self.deferred.is_empty() => return Err(self.give_up()),
            None => self.memo.put(id, value),
            Some(next) => {
                *next += 1;
                if !self.memo.fill(id, value) {
                    return Err(self.give_up());
                }
            }
        }
        Ok(())
    }

    #[inline]
    fn memo_get(&mut self, id: u64) -> Result<()> {
        let value = match self.memo.get(id) {
            Some(value) => value.clone(),
            None => self.deferred_value(id)?,
        };
        let key_len = match &value {
            Value::Str(s) => s.len(),
            Value::Short(s) => s.as_str().len(),
            _ => 0,
        };
        self.push(value)?;
        if self.skips(key_len) {
            self.skip_value()?;
        }
        Ok(())
    }

    /// The object stored under `id` by a deferred value's opcodes, which are decoded now.
    /// (A deferred value may itself have skipped one that holds the object: that one is decoded next.)
    #[cold]
    fn deferred_value(&mut self, id: u64) -> Result<Value> {
        while self.memo.get(id).is_none() {
            let index = self
                .deferred
                .at_or_before(id)
                .map(|index| index as usize)
                .filter(|&i| id - self.skips[i].first_id < self.skips[i].ids);
            match index {
                Some(index) => self.decode_skipped(index)?,
                None => break,
            }
        }
        self.memo.get(id).cloned().ok_or_else(|| {
            self.error(format!(
                "{} of memo id {id}, which was never stored",
                self.op_name()
            ))
        })
    }

    // ---- skipped values ----

    /// Whether the str of `len` bytes just pushed may be a key whose value is skipped (a cheap first test).
    #[inline]
    fn skips(&self, len: usize) -> bool {
        self.skip_keys.may_be(len)
    }

    /// The str on top of the stack was just pushed: when it is one of `Options::skip_values_of` and a dict key
    /// (in the batch of a SETITEMS on a dict, or before a SETITEM on a dict), skim its value, push
    /// `Node::Skipped` instead and move past it. Memo ids the value stores are set aside; a later reference to
    /// one decodes the value then (`decode_deferred`). A value skimming cannot predict is decoded now.
    #[cold]
    fn skip_value(&mut self) -> Result<()> {
        let Some(key) = self.stack.last().and_then(|v| v.as_str()) else {
            return Ok(());
        };
        if !self.skip_keys.contains(key) {
            return Ok(());
        }
        // The key's own MEMOIZE or PUT comes before its value.
        while let Some(&code @ (op::MEMOIZE | op::BINPUT | op::LONG_BINPUT | op::PUT)) =
            self.data.get(self.pos)
        {
            self.op_start = self.pos;
            self.pos += 1;
            self.opcode = code;
            work::add(1);
            self.step(code)?;
        }
        if self.announced_protocol.is_none()
            || (self.fill_next.is_none() && !self.memo.is_dense())
            || self.skim_budget == 0
        {
            return Ok(());
        }
        let k = self.stack.len() - 1;
        let fence = self.fence();
        let is_dict = |i: usize| {
            self.slot_of(&self.stack[i])
                .is_some_and(|s| matches!(s, Slot::Dict(_)))
        };
        let closer = if fence >= 1 && (k - fence) % 2 == 0 && is_dict(fence - 1) {
            skim::Closer::Batch
        } else if k > fence && is_dict(k - 1) {
            skim::Closer::Single
        } else {
            return Ok(());
        };
        let first_id = self.fill_next.unwrap_or(self.memo.count);
        let room = self.opts.max_depth.saturating_sub(self.stack.len());
        let (read, skimmed) = skim::skim(
            self.data,
            self.pos,
            first_id,
            closer,
            room,
            self.skim_budget,
            &mut self.scratch,
        );
        self.skim_budget = self.skim_budget.saturating_sub(read);
        let Some(skimmed) = skimmed else {
            return Ok(());
        };
        let index = self.index_u32(self.skips.len())?;
        self.skips.push(Skip {
            start: self.pos,
            end: skimmed.end,
            first_id,
            ids: skimmed.ids,
            value: None,
        });
        if skimmed.ids > 0 {
            self.deferred
                .insert(first_id, index, self.fill_next.is_some());
            match &mut self.fill_next {
                Some(next) => *next += skimmed.ids,
                None => self.memo.reserve(skimmed.ids),
            }
        }
        self.pos = skimmed.end;
        let placeholder = self.new_node(Slot::Skipped(index))?;
        if let Value::Node(node) = placeholder {
            self.placeholders.push((self.stack.len(), node, index));
        }
        self.push(placeholder)
    }

    /// Placeholders at stack index `start` or above are about to be taken, changed or memoized: decode their
    /// values and put them there instead (the value went on where skimming took it to end: a list's one item, an
    /// object's BUILD, a callable's REDUCE).
    #[inline]
    fn unskip_from(&mut self, start: usize) -> Result<()> {
        match self.placeholders.last() {
            Some(&(at, _, _)) if at >= start => self.unskip_each_from(start),
            _ => Ok(()),
        }
    }

    #[cold]
    fn unskip_each_from(&mut self, start: usize) -> Result<()> {
        while let Some(&(at, node, index)) = self.placeholders.last() {
            if at < start {
                break;
            }
            self.placeholders.pop();
            // A placeholder POP took off the stack is gone: another value may stand at its index now.
            if !matches!(self.stack.get(at), Some(Value::Node(n)) if *n == node) {
                continue;
            }
            self.decode_skipped(index as usize)?;
            match self.skips[index as usize].value.clone() {
                Some(value) => self.stack[at] = value,
                None => return Err(self.give_up()),
            }
        }
        Ok(())
    }

    /// SETITEM(S) at `start` puts the placeholders among its items into a dict, as the values of their keys:
    /// they stay placeholders.
    #[inline]
    fn keep_skipped_values(&mut self, start: usize) {
        while let Some(&(at, _, _)) = self.placeholders.last() {
            if at < start {
                break;
            }
            self.placeholders.pop();
        }
    }

    /// Decode the skipped value `index` (once), storing its objects under the ids set aside for them and keeping
    /// the value. Any failure here (an error in its opcodes too) gives up skipping, so errors are reported by a
    /// plain decode, exactly as without skipping.
    fn decode_skipped(&mut self, index: usize) -> Result<()> {
        let skip = &self.skips[index];
        if skip.value.is_some() {
            return Ok(());
        }
        let (start, end, first, ids) = (skip.start, skip.end, skip.first_id, skip.ids);
        if ids > 0 {
            self.deferred.remove(first);
        }
        if self.nesting >= MAX_NESTING {
            return Err(self.give_up());
        }
        let saved = (self.pos, self.op_start, self.opcode, self.fill_next);
        let (stack_len, marks_len) = (self.stack.len(), self.marks.len());
        self.nesting += 1;
        self.fill_next = Some(first);
        self.pos = start;
        let mut decoded = Ok(());
        while decoded.is_ok() && self.pos < end {
            self.op_start = self.pos;
            let code = self.data[self.pos];
            self.pos += 1;
            self.opcode = code;
            work::add(1);
            decoded = if code == op::STOP {
                Err(self.give_up())
            } else {
                self.step(code)
            };
        }
        let consistent = decoded.is_ok()
            && self.pos == end
            && self.stack.len() == stack_len + 1
            && self.marks.len() == marks_len
            && self.fill_next == Some(first + ids)
            && self.placeholders.last().is_none_or(|p| p.0 < stack_len);
        self.nesting -= 1;
        (self.pos, self.op_start, self.opcode, self.fill_next) = saved;
        if !consistent {
            return Err(self.give_up());
        }
        self.skips[index].value = self.stack.pop();
        Ok(())
    }

    /// Skipping cannot go on: the decode is started again without it.
    #[cold]
    fn give_up(&mut self) -> Box<PickleError> {
        self.gave_up = true;
        self.error("a skipped value could not be decoded later".to_string())
    }

    // ---- objects ----

    fn slot_of(&self, value: &Value) -> Option<Slot> {
        match value {
            Value::Node(id) => self.graph.slots.get(id.0 as usize).copied(),
            _ => None,
        }
    }

    /// The items of the tuple `value` (an object's arguments share them; nothing is copied).
    fn tuple_seq(&self, value: &Value, what: &str) -> Result<Seq> {
        match self.slot_of(value) {
            Some(Slot::Tuple(seq)) => Ok(seq.frozen()),
            _ => Err(self.error(format!("{} {what} is not a tuple", self.op_name()))),
        }
    }

    /// The pairs the dict `value` holds now (later SETITEMs on it are not seen through this).
    fn dict_seq(&self, value: &Value) -> Result<Seq> {
        match self.slot_of(value) {
            Some(Slot::Dict(seq)) => Ok(seq.frozen()),
            _ => Err(self.error(format!(
                "{} keyword arguments are not a dict",
                self.op_name()
            ))),
        }
    }

    fn global_name(&self, value: &Value) -> Option<(&str, &str)> {
        match self.slot_of(value)? {
            Slot::Global(i) => {
                let (module, name) = self.graph.globals.get(i as usize)?;
                Some((module, name))
            }
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
    fn reduce_record(&mut self, callable: Value, args: Seq) -> Result<Call> {
        let helper = match self.global_name(&callable) {
            Some(("copyreg" | "copy_reg", name)) => name,
            _ => "",
        };
        match (helper, self.graph.items_of(args)) {
            ("__newobj__", [cls, ..]) => {
                let rest = Seq {
                    start: args.start + 1,
                    len: args.len - 1,
                    cap: args.len - 1,
                };
                return Ok(object(BuildKind::NewObj, cls.clone(), rest, Seq::default()));
            }
            ("__newobj_ex__", [cls, new_args, kwargs]) => {
                let (cls, new_args, kwargs) = (cls.clone(), new_args.clone(), kwargs.clone());
                if let (Some(Slot::Tuple(_)), Some(Slot::Dict(_))) =
                    (self.slot_of(&new_args), self.slot_of(&kwargs))
                {
                    let new_args = self.tuple_seq(&new_args, "argument")?;
                    let kwargs = self.dict_seq(&kwargs)?;
                    return Ok(object(BuildKind::NewObj, cls, new_args, kwargs));
                }
            }
            ("_reconstructor", [cls, base, Value::None]) if self.is_builtin_object(base) => {
                return Ok(object(
                    BuildKind::NewObj,
                    cls.clone(),
                    Seq::default(),
                    Seq::default(),
                ));
            }
            _ => {}
        }
        Ok(object(BuildKind::Reduce, callable, args, Seq::default()))
    }

    fn push_object(&mut self, call: Call) -> Result<()> {
        let index = self.index_u32(self.graph.objects.len())?;
        let extras = ObjectExtras {
            kwargs: call.kwargs,
            ..ObjectExtras::default()
        };
        let extras =
            add_extras(&mut self.graph.object_extras, extras).map_err(|e| self.too_many(e))?;
        self.graph.objects.push(ObjectRec {
            callable: call.callable,
            state: None,
            args: call.args,
            extras,
            kind: call.kind,
        });
        self.push_node(Slot::Object(index))
    }
}

/// `callable(*args, **kwargs)`, before it is stored as an object.
struct Call {
    kind: BuildKind,
    callable: Value,
    args: Seq,
    kwargs: Seq,
}

fn object(kind: BuildKind, callable: Value, args: Seq, kwargs: Seq) -> Call {
    Call {
        kind,
        callable,
        args,
        kwargs,
    }
}

/// The text of a str value as a shared str: the same allocation for a shared one, a copy of a short one.
fn shared_str(value: &Value) -> Option<SharedStr> {
    match value {
        Value::Str(s) => Some(Rc::clone(s)),
        Value::Short(s) => Some(shared(s.as_str())),
        _ => None,
    }
}

/// Stack values taken two at a time as (key, value) pairs (the caller has checked the count is even).
struct Pairs<I>(I);

impl<I: ExactSizeIterator<Item = Value>> Iterator for Pairs<I> {
    type Item = (Value, Value);

    fn next(&mut self) -> Option<(Value, Value)> {
        Some((self.0.next()?, self.0.next()?))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.0.len() / 2;
        (n, Some(n))
    }
}

impl<I: ExactSizeIterator<Item = Value>> ExactSizeIterator for Pairs<I> {}
