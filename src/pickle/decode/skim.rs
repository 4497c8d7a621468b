//! Finding where one value's opcodes end without building it.
//!
//! `skim` runs from the first opcode of a dict entry's value with nothing but the stack entries above the entry's
//! key (for each, whether it came from the memo) and the open MARKs. The value ends where it stands complete and
//! alone above the key and the next opcode is not its MEMOIZE or PUT, a MARK (a batch of items for it) or a
//! FRAME: there CPython writes the next key. A value that goes on after that point all the same (a list's one
//! item APPENDed, an object's BUILD, a callable's REDUCE, a pair's TUPLE2) is no error: the decoder finds its
//! placeholder taken or changed by something other than the dict's SETITEM(S) and decodes the value then
//! (`Machine::unskip_from`). Otherwise the decoder jumps over the value and decodes it later only if something
//! refers to an object it defines.
//!
//! Skimming is only a prediction, so anything it cannot be sure of gives `None` and the value is decoded as
//! usual (which also reports whatever is wrong with it): an opcode that changes an object it did not create
//! (APPEND, SETITEM, BUILD on a memo reference), memo ids that do not count up one by one, DUP, PROTO, STOP,
//! opcodes that need the writer's context, a GET of an id not stored yet, a value closed by anything but the
//! dict's own SETITEM(S), or more than `budget` opcodes read.

use super::opcodes as op;
use crate::work;

/// One skimmed value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Skimmed {
    /// The offset just past the value's last opcode.
    pub end: usize,
    /// How many memo ids the value's opcodes store (they follow `next_id` one by one).
    pub ids: u64,
}

/// How the value whose opcodes start at `start` must be closed: by the SETITEMS of the batch its key is in
/// (`Batch`), or by a SETITEM right after it (`Single`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Closer {
    Batch,
    Single,
}

/// Skim the value whose first opcode is at `start`; `next_id` is the id MEMOIZE would store next. Reads at most
/// `budget` opcodes and keeps at most `max_depth` stack entries and MARKs. Returns how many opcodes it read and
/// the value, if skimming could predict it.
pub(super) fn skim(
    data: &[u8],
    start: usize,
    next_id: u64,
    closer: Closer,
    max_depth: usize,
    budget: usize,
) -> (usize, Option<Skimmed>) {
    let mut skim = Skim {
        data,
        pos: start,
        from_memo: Vec::with_capacity(64),
        marks: Vec::with_capacity(16),
        next: next_id,
    };
    let mut complete: Option<(usize, u64)> = None;
    let mut opcodes = 0usize;
    let result = loop {
        if opcodes >= budget {
            break None;
        }
        opcodes += 1;
        match skim.step() {
            Step::Went => {}
            Step::Closed(code) => {
                let expected = match closer {
                    Closer::Batch => op::SETITEMS,
                    Closer::Single => op::SETITEM,
                };
                break (code == expected).then_some(()).and(complete);
            }
            Step::Unsure => break None,
        }
        if skim.from_memo.len() > max_depth || skim.marks.len() > max_depth {
            break None;
        }
        if skim.from_memo.len() == 1 && skim.marks.is_empty() {
            complete = Some((skim.pos, skim.next));
            // The value stands alone above its key. Its MEMOIZE or PUT, a MARK opening a batch of items for it,
            // or a FRAME may follow; anything else is taken to start the next key, as CPython writes it.
            match data.get(skim.pos) {
                Some(
                    &(op::MEMOIZE | op::BINPUT | op::LONG_BINPUT | op::PUT | op::MARK | op::FRAME),
                ) => {}
                _ => break complete,
            }
        }
    };
    work::add(opcodes);
    let skimmed = result.map(|(end, after)| Skimmed {
        end,
        ids: after - next_id,
    });
    (opcodes, skimmed)
}

/// What one opcode did.
enum Step {
    Went,
    /// This opcode (SETITEM or SETITEMS) took the value and its key off the stack.
    Closed(u8),
    /// Skimming cannot say what the value is.
    Unsure,
}

struct Skim<'a> {
    data: &'a [u8],
    pos: usize,
    /// For each stack entry above the key: whether it is a memo reference (an object made elsewhere).
    from_memo: Vec<bool>,
    /// The entry counts at each open MARK.
    marks: Vec<usize>,
    /// The id the next MEMOIZE stores.
    next: u64,
}

impl Skim<'_> {
    fn step(&mut self) -> Step {
        let Some(&code) = self.data.get(self.pos) else {
            return Step::Unsure;
        };
        self.pos += 1;
        let went = match code {
            op::NONE
            | op::NEWTRUE
            | op::NEWFALSE
            | op::EMPTY_TUPLE
            | op::EMPTY_LIST
            | op::EMPTY_DICT
            | op::EMPTY_SET => self.push(false),
            op::BININT1 => self.skip(1) && self.push(false),
            op::BININT2 => self.skip(2) && self.push(false),
            op::BININT => self.skip(4) && self.push(false),
            op::BINFLOAT => self.skip(8) && self.push(false),
            op::INT | op::LONG | op::FLOAT | op::STRING | op::UNICODE => {
                self.line().is_some() && self.push(false)
            }
            op::GLOBAL => self.line().is_some() && self.line().is_some() && self.push(false),
            op::SHORT_BINUNICODE | op::SHORT_BINSTRING | op::SHORT_BINBYTES | op::LONG1 => {
                self.payload(1) && self.push(false)
            }
            op::BINUNICODE | op::BINSTRING | op::BINBYTES | op::LONG4 => {
                self.payload(4) && self.push(false)
            }
            op::BINUNICODE8 | op::BINBYTES8 | op::BYTEARRAY8 => self.payload(8) && self.push(false),
            op::BINGET => self.arg(1).is_some_and(|id| self.get(id)),
            op::LONG_BINGET => self.arg(4).is_some_and(|id| self.get(id)),
            op::GET => self.decimal().is_some_and(|id| self.get(id)),
            op::MEMOIZE => self.memo(self.next),
            op::BINPUT => self.arg(1).is_some_and(|id| self.memo(id)),
            op::LONG_BINPUT => self.arg(4).is_some_and(|id| self.memo(id)),
            op::PUT => self.decimal().is_some_and(|id| self.memo(id)),
            op::MARK => {
                self.marks.push(self.from_memo.len());
                true
            }
            op::TUPLE | op::LIST | op::DICT | op::FROZENSET => self.collect(0),
            op::OBJ => self.collect(1),
            op::INST => self.line().is_some() && self.line().is_some() && self.collect(0),
            op::TUPLE1 => self.replace(1),
            op::TUPLE2 | op::STACK_GLOBAL | op::REDUCE | op::NEWOBJ => self.replace(2),
            op::TUPLE3 | op::NEWOBJ_EX => self.replace(3),
            op::APPEND | op::BUILD => self.change(1),
            op::SETITEM => {
                if self.marks.is_empty() && self.from_memo.len() == 1 {
                    return Step::Closed(code);
                }
                self.change(2)
            }
            op::APPENDS | op::ADDITEMS | op::SETITEMS => {
                let Some(mark) = self.marks.pop() else {
                    // A MARK opened before the key: its SETITEMS takes the value and the key.
                    return Step::Closed(code);
                };
                // The changed value is the one below the MARK, above the MARK before, and made here.
                let fence = self.marks.last().copied().unwrap_or(0);
                let made_here = mark > fence && !self.from_memo[mark - 1];
                self.from_memo.truncate(mark);
                made_here
            }
            op::POP => {
                if self.above() > 0 {
                    self.from_memo.pop();
                    true
                } else {
                    self.marks.pop().is_some()
                }
            }
            op::POP_MARK => match self.marks.pop() {
                Some(mark) => {
                    self.from_memo.truncate(mark);
                    true
                }
                None => false,
            },
            op::FRAME => self.skip(8),
            _ => false,
        };
        if went && self.pos <= self.data.len() {
            Step::Went
        } else {
            Step::Unsure
        }
    }

    /// Entries above the last MARK.
    #[inline]
    fn above(&self) -> usize {
        self.from_memo.len() - self.marks.last().copied().unwrap_or(0)
    }

    #[inline]
    fn push(&mut self, from_memo: bool) -> bool {
        self.from_memo.push(from_memo);
        true
    }

    /// A GET of `id`: only ids stored before are expected.
    #[inline]
    fn get(&mut self, id: u64) -> bool {
        id < self.next && self.push(true)
    }

    /// A MEMOIZE or PUT of `id`: ids must count up one by one, and something must be there to store.
    #[inline]
    fn memo(&mut self, id: u64) -> bool {
        let ok = id == self.next && self.above() > 0;
        self.next += 1;
        ok
    }

    /// Everything above the last MARK (and at least `at_least` values) becomes one new value.
    fn collect(&mut self, at_least: usize) -> bool {
        match self.marks.pop() {
            Some(mark) if self.from_memo.len() - mark >= at_least => {
                self.from_memo.truncate(mark);
                self.push(false)
            }
            _ => false,
        }
    }

    /// `n` values become one new value.
    #[inline]
    fn replace(&mut self, n: usize) -> bool {
        if self.above() < n {
            return false;
        }
        self.from_memo.truncate(self.from_memo.len() - n);
        self.push(false)
    }

    /// `n` values change the value below them, which must be made here.
    #[inline]
    fn change(&mut self, n: usize) -> bool {
        if self.above() < n + 1 || self.from_memo[self.from_memo.len() - n - 1] {
            return false;
        }
        self.from_memo.truncate(self.from_memo.len() - n);
        true
    }

    #[inline]
    fn skip(&mut self, n: usize) -> bool {
        self.pos += n;
        true
    }

    /// A little-endian unsigned argument of `n` bytes (1 or 4).
    #[inline]
    fn arg(&mut self, n: usize) -> Option<u64> {
        let bytes = self.data.get(self.pos..self.pos + n)?;
        self.pos += n;
        Some(match *bytes {
            [b] => u64::from(b),
            [a, b, c, d] => u64::from(u32::from_le_bytes([a, b, c, d])),
            _ => return None,
        })
    }

    /// A payload after its little-endian length of `width` bytes (1, 4 or 8).
    #[inline]
    fn payload(&mut self, width: usize) -> bool {
        let bytes = self.data.get(self.pos..self.pos + width);
        let len = match bytes {
            Some(&[b]) => u64::from(b),
            // BINSTRING's and LONG4's lengths are signed: a negative one is the decoder's error to report.
            Some(&[a, b, c, d]) => u64::from(i32::from_le_bytes([a, b, c, d]).max(-1) as u32),
            Some(b) if b.len() == 8 => b.iter().rev().fold(0, |acc, &x| (acc << 8) | u64::from(x)),
            _ => return false,
        };
        match usize::try_from(len) {
            Ok(len) if len <= self.data.len() && len != u32::MAX as usize => {
                self.pos += width + len;
                true
            }
            _ => false,
        }
    }

    /// A text argument ending at the next newline.
    fn line(&mut self) -> Option<&[u8]> {
        let rest = self.data.get(self.pos..)?;
        let len = rest.iter().position(|&b| b == b'\n')?;
        self.pos += len + 1;
        Some(&rest[..len])
    }

    /// A decimal memo id ending at the next newline (GET and PUT of protocol 0).
    fn decimal(&mut self) -> Option<u64> {
        self.line().and_then(super::text::parse_decimal_index)
    }
}
