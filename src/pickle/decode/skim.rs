//! Finding where one value's opcodes end without building it.
//!
//! `skim` runs from the first opcode of a dict entry's value with nothing but a count of the stack entries above
//! the entry's key, the open MARKs, and for each entry whether it came from the memo. It moves over every opcode
//! until one takes the key off the stack (the dict's SETITEMS or SETITEM), and remembers the last point at which
//! the value stood complete and alone above the key: the value is the opcodes from `start` to there. The
//! decoder can then jump over them and decode them later, only if something refers to an object they define.
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
/// `budget` opcodes and keeps at most `max_depth` stack entries and MARKs. Returns how many opcodes it read (past
/// the value too, up to the opcode that closed it) and the value, if skimming could predict it.
pub(super) fn skim(
    data: &[u8],
    start: usize,
    next_id: u64,
    closer: Closer,
    max_depth: usize,
    budget: usize,
) -> (usize, Option<Skimmed>) {
    let mut pos = start;
    // For each entry above the key: whether it is a memo reference (an object made elsewhere).
    let mut from_memo: Vec<bool> = Vec::new();
    // The entry counts at each open MARK.
    let mut marks: Vec<usize> = Vec::new();
    let mut next = next_id;
    let mut complete: Option<(usize, u64)> = None;
    let mut opcodes = 0usize;
    let result = loop {
        if opcodes >= budget {
            break None;
        }
        let Some(&code) = data.get(pos) else {
            break None;
        };
        pos += 1;
        opcodes += 1;
        let fence = marks.last().copied().unwrap_or(0);
        let above = from_memo.len() - fence;
        // Arguments first (`pos` moves past them); then the opcode's effect on the stack.
        let effect = match code {
            op::NONE
            | op::NEWTRUE
            | op::NEWFALSE
            | op::EMPTY_TUPLE
            | op::EMPTY_LIST
            | op::EMPTY_DICT
            | op::EMPTY_SET => Some(Effect::Push),
            op::BININT1 => skip(&mut pos, 1, Effect::Push),
            op::BININT2 => skip(&mut pos, 2, Effect::Push),
            op::BININT => skip(&mut pos, 4, Effect::Push),
            op::BINFLOAT => skip(&mut pos, 8, Effect::Push),
            op::INT | op::LONG | op::FLOAT | op::STRING | op::UNICODE => {
                line(data, &mut pos, Effect::Push)
            }
            op::GLOBAL => {
                line(data, &mut pos, Effect::Push).and_then(|_| line(data, &mut pos, Effect::Push))
            }
            op::LONG1 | op::SHORT_BINSTRING | op::SHORT_BINUNICODE | op::SHORT_BINBYTES => {
                sized(data, &mut pos, 1, Effect::Push)
            }
            op::LONG4 | op::BINSTRING | op::BINUNICODE | op::BINBYTES => {
                sized(data, &mut pos, 4, Effect::Push)
            }
            op::BINUNICODE8 | op::BINBYTES8 | op::BYTEARRAY8 => {
                sized(data, &mut pos, 8, Effect::Push)
            }
            op::BINGET => fixed(data, &mut pos, 1).map(Effect::Get),
            op::LONG_BINGET => fixed(data, &mut pos, 4).map(Effect::Get),
            op::GET => decimal(data, &mut pos).map(Effect::Get),
            op::MEMOIZE => Some(Effect::Memo(next)),
            op::BINPUT => fixed(data, &mut pos, 1).map(Effect::Memo),
            op::LONG_BINPUT => fixed(data, &mut pos, 4).map(Effect::Memo),
            op::PUT => decimal(data, &mut pos).map(Effect::Memo),
            op::MARK => Some(Effect::Mark),
            op::TUPLE | op::LIST | op::DICT | op::FROZENSET => Some(Effect::Collect(0)),
            op::OBJ => Some(Effect::Collect(1)),
            op::INST => line(data, &mut pos, Effect::Collect(0))
                .and_then(|_| line(data, &mut pos, Effect::Collect(0))),
            op::TUPLE1 => Some(Effect::Replace(1)),
            op::TUPLE2 | op::STACK_GLOBAL | op::REDUCE | op::NEWOBJ => Some(Effect::Replace(2)),
            op::TUPLE3 | op::NEWOBJ_EX => Some(Effect::Replace(3)),
            op::APPEND | op::BUILD => Some(Effect::Change(1)),
            op::SETITEM => Some(Effect::Change(2)),
            op::APPENDS | op::ADDITEMS | op::SETITEMS => Some(Effect::ChangeToMark),
            op::POP => Some(Effect::Pop),
            op::POP_MARK => Some(Effect::PopMark),
            op::FRAME => skip(&mut pos, 8, Effect::Nothing),
            _ => None,
        };
        let Some(effect) = effect else { break None };
        if pos > data.len() {
            break None;
        }
        match effect {
            Effect::Nothing => {}
            Effect::Push => from_memo.push(false),
            Effect::Get(id) => {
                if id >= next {
                    break None;
                }
                from_memo.push(true);
            }
            Effect::Memo(id) => {
                if id != next || above == 0 {
                    break None;
                }
                next += 1;
            }
            Effect::Mark => marks.push(from_memo.len()),
            Effect::Collect(at_least) => {
                let Some(mark) = marks.pop() else { break None };
                if from_memo.len() - mark < at_least {
                    break None;
                }
                from_memo.truncate(mark);
                from_memo.push(false);
            }
            Effect::Replace(n) => {
                if above < n {
                    break None;
                }
                from_memo.truncate(from_memo.len() - n);
                from_memo.push(false);
            }
            Effect::Change(n) => {
                if marks.is_empty() && from_memo.len() == 1 && code == op::SETITEM {
                    // SETITEM taking the value and its key: the value is closed.
                    break (closer == Closer::Single).then_some(()).and(complete);
                }
                if above < n + 1 || from_memo[from_memo.len() - n - 1] {
                    break None;
                }
                from_memo.truncate(from_memo.len() - n);
            }
            Effect::ChangeToMark => {
                let Some(mark) = marks.pop() else {
                    // The batch's own SETITEMS: the value and its key leave the stack.
                    break (closer == Closer::Batch && code == op::SETITEMS)
                        .then_some(())
                        .and(complete);
                };
                if mark == 0 || from_memo[mark - 1] {
                    break None;
                }
                from_memo.truncate(mark);
            }
            Effect::Pop => {
                if above > 0 {
                    from_memo.pop();
                } else if marks.pop().is_none() {
                    break None;
                }
            }
            Effect::PopMark => {
                let Some(mark) = marks.pop() else { break None };
                from_memo.truncate(mark);
            }
        }
        if from_memo.len() > max_depth || marks.len() > max_depth {
            break None;
        }
        if from_memo.len() == 1 && marks.is_empty() {
            complete = Some((pos, next));
        }
    };
    work::add(opcodes);
    let skimmed = result.map(|(end, after)| Skimmed {
        end,
        ids: after - next_id,
    });
    (opcodes, skimmed)
}

#[derive(Clone, Copy)]
enum Effect {
    Nothing,
    /// A new value.
    Push,
    /// A memo reference to this id.
    Get(u64),
    /// Stores the top under this id.
    Memo(u64),
    Mark,
    /// Takes everything above the last MARK (and at least this many values) and pushes one new value.
    Collect(usize),
    /// Takes this many values and pushes one new value.
    Replace(usize),
    /// Takes this many values and changes the one below them.
    Change(usize),
    /// Takes everything above the last MARK and changes the value below it.
    ChangeToMark,
    Pop,
    PopMark,
}

fn skip(pos: &mut usize, n: usize, effect: Effect) -> Option<Effect> {
    *pos = pos.checked_add(n)?;
    Some(effect)
}

/// A little-endian unsigned argument of `n` bytes (1 or 4).
fn fixed(data: &[u8], pos: &mut usize, n: usize) -> Option<u64> {
    let bytes = data.get(*pos..pos.checked_add(n)?)?;
    *pos += n;
    Some(
        bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
    )
}

/// A payload with a little-endian length of `width` bytes before it.
fn sized(data: &[u8], pos: &mut usize, width: usize, effect: Effect) -> Option<Effect> {
    let len = fixed8(data, pos, width)?;
    let len = usize::try_from(len).ok()?;
    *pos = pos.checked_add(len)?;
    Some(effect)
}

fn fixed8(data: &[u8], pos: &mut usize, width: usize) -> Option<u64> {
    if width == 4 {
        // BINSTRING's and LONG4's lengths are signed: a negative one is the decoder's error to report.
        let len = fixed(data, pos, 4)?;
        return (len < 0x8000_0000).then_some(len);
    }
    fixed(data, pos, width)
}

/// A text argument ending at the next newline.
fn line(data: &[u8], pos: &mut usize, effect: Effect) -> Option<Effect> {
    let rest = data.get(*pos..)?;
    let len = rest.iter().position(|&b| b == b'\n')?;
    *pos += len + 1;
    Some(effect)
}

/// A decimal memo id ending at the next newline (GET and PUT of protocol 0).
fn decimal(data: &[u8], pos: &mut usize) -> Option<u64> {
    let rest = data.get(*pos..)?;
    let len = rest.iter().position(|&b| b == b'\n')?;
    let id = super::text::parse_decimal_index(&rest[..len])?;
    *pos += len + 1;
    Some(id)
}
