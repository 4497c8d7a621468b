//! Finding where one value's opcodes end without building it.
//!
//! `skim` runs from the first opcode of a dict entry's value with nothing but the stack entries above the entry's
//! key (for each, whether it came from the memo) and the open MARKs. The value may end wherever it stands
//! complete and alone above the key. Skimming reads on from there while the value may still go on: through a
//! batch of items or arguments whose MARK opens right above it (or above the one value on it, an object's state
//! before its BUILD), and up to `LOOK_AHEAD` opcodes more (MEMOIZE, PUT and FRAME not counted: a class, then its
//! arguments and NEWOBJ or REDUCE); if the value stands alone again, that is its new end, and if not, the
//! opcodes after its last end start the next key, as CPython writes it. A value that goes on after its predicted
//! end all the same (a list's item APPENDed further on, an object's BUILD after a long state) is no error: the
//! decoder finds its placeholder taken or changed by something other than the dict's SETITEM(S) and decodes the
//! value then (`Machine::unskip_from`). Otherwise the decoder jumps over the value and decodes it later only if
//! something refers to an object it defines.
//!
//! Skimming is only a prediction, so anything it cannot be sure of before the value first stands complete gives
//! `None` and the value is decoded as usual (which also reports whatever is wrong with it): an opcode that
//! changes an object it did not create (APPEND, SETITEM, BUILD on a memo reference), memo ids that do not count
//! up one by one, DUP, PROTO, STOP, opcodes that need the writer's context, a GET of an id not stored yet, a
//! value closed by anything but the dict's own SETITEM(S), or more than `budget` opcodes read. After that point
//! the same things end the skim at the value's last end.

use super::opcodes as op;
use crate::work;

/// How many opcodes past the point where a value stands complete skimming reads to see whether it goes on
/// (NEWOBJ of a class with empty arguments takes 2, a numpy array's REDUCE 6).
const LOOK_AHEAD: usize = 8;

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

/// The stack and MARK buffers `skim` works in, kept by the decoder from one skimmed value to the next (a skim
/// allocates only when a value goes deeper than any before): one flag per stack entry above the key (whether it
/// came from the memo), one entry count per open MARK.
#[derive(Default)]
pub(super) struct Scratch {
    from_memo: Vec<bool>,
    marks: Vec<usize>,
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
    scratch: &mut Scratch,
) -> (usize, Option<Skimmed>) {
    // The buffers start small and are made as deep as `max_depth` allows only when a value goes deeper (the skim
    // then starts again): most values sit a few entries deep, and the buffers are kept from one value to the next.
    let mut depth = max_depth.min(INITIAL_DEPTH);
    // Opcodes read by a run that went too deep for the buffers: counted against the budget all the same.
    let mut wasted = 0;
    let (opcodes, end) = loop {
        if scratch.from_memo.len() <= depth {
            scratch.from_memo.resize(depth + 1, false);
            scratch.marks.resize(depth + 1, 0);
        }
        let deepest = scratch.from_memo.len().min(scratch.marks.len()) - 1;
        let limit = deepest.min(max_depth);
        match run(
            data,
            start,
            next_id,
            closer,
            limit,
            budget - wasted,
            &mut scratch.from_memo,
            &mut scratch.marks,
        ) {
            Deeper(read, _) if limit < max_depth => {
                wasted = read;
                depth = max_depth;
            }
            Deeper(read, end) | Ran(read, end) => break (wasted + read, end),
        }
    };
    work::add(opcodes);
    let skimmed = end.map(|(end, after)| Skimmed {
        end,
        ids: after - next_id,
    });
    (opcodes, skimmed)
}

/// How deep the skim buffers are at first.
const INITIAL_DEPTH: usize = 1024;

/// What one run of the skim came to.
enum Run {
    /// The opcodes read and, for a predicted value, the offset past it and the next memo id there.
    Ran(usize, Option<(usize, u64)>),
    /// The stack went deeper than `max_depth` (after reading this many opcodes); the value, if it stood complete
    /// before, ends there.
    Deeper(usize, Option<(usize, u64)>),
}
use Run::{Deeper, Ran};

/// The skim itself, on locals. `from_memo` and `marks` hold at least `max_depth + 1` entries.
#[allow(clippy::too_many_arguments)]
fn run(
    data: &[u8],
    start: usize,
    next_id: u64,
    closer: Closer,
    max_depth: usize,
    budget: usize,
    from_memo: &mut [bool],
    marks: &mut [usize],
) -> Run {
    let closing = match closer {
        Closer::Batch => op::SETITEMS,
        Closer::Single => op::SETITEM,
    };
    let mut pos = start;
    let mut next = next_id;
    // Stack entries above the key, and open MARKs.
    let (mut len, mut open) = (0usize, 0usize);
    let mut complete: Option<(usize, u64)> = None;
    // Opcodes read since the value last stood alone, not counting MEMOIZE, PUT and FRAME; none are counted
    // once a MARK opens right above it.
    let (mut ahead, mut goes_on) = (0usize, false);
    // Opcodes the budget still allows (the opcodes read are `budget - left`).
    let mut left = budget;
    // Each arm of the loop below either goes on to the next opcode or ends the skim with this.
    // Past a complete value, what skimming cannot follow may be the next key (or the value going on, which the
    // decoder finds): the value ends where it last stood alone.
    macro_rules! unsure {
        () => {
            return Ran(budget - left, complete)
        };
    }
    macro_rules! too_deep {
        () => {
            return Deeper(budget - left, complete)
        };
    }
    macro_rules! check {
        ($ok:expr) => {
            if !$ok {
                unsure!();
            }
        };
    }
    macro_rules! push {
        ($memo:expr) => {{
            from_memo[len] = $memo;
            len += 1;
            if len > max_depth {
                too_deep!();
            }
        }};
    }
    // A value that CPython memoizes: pushed, and the MEMOIZE right after it (nearly always there) read with it,
    // saving a turn of the loop (a fifth of a long snapshot's opcodes are MEMOIZE). Counted as two opcodes, as
    // reading them one by one would.
    macro_rules! push_memoized {
        () => {{
            push!(false);
            if left > 0 && data.get(pos) == Some(&op::MEMOIZE) {
                pos += 1;
                left -= 1;
                next += 1;
            }
        }};
    }
    // Entries above the last MARK.
    macro_rules! above {
        () => {
            len - if open > 0 { marks[open - 1] } else { 0 }
        };
    }
    loop {
        if left == 0 {
            unsure!();
        }
        left -= 1;
        let Some(&code) = data.get(pos) else {
            unsure!();
        };
        pos += 1;
        match code {
            op::NONE | op::NEWTRUE | op::NEWFALSE => push!(false),
            op::EMPTY_TUPLE | op::EMPTY_LIST | op::EMPTY_DICT | op::EMPTY_SET => push_memoized!(),
            // One arm per argument size: one arm choosing the size with a match made the whole resolve at 1,000
            // loops run 2.8 M instructions more (97.4 M against 94.6 M).
            op::BININT1 => {
                pos += 1;
                push!(false)
            }
            op::BININT2 => {
                pos += 2;
                push!(false)
            }
            op::BININT => {
                pos += 4;
                push!(false)
            }
            op::BINFLOAT => {
                pos += 8;
                push!(false)
            }
            op::INT | op::LONG | op::FLOAT | op::STRING | op::UNICODE => {
                check!(line(data, &mut pos).is_some());
                push!(false)
            }
            op::GLOBAL => {
                check!(line(data, &mut pos).is_some() && line(data, &mut pos).is_some());
                push_memoized!()
            }
            op::SHORT_BINUNICODE | op::SHORT_BINSTRING | op::SHORT_BINBYTES | op::LONG1 => {
                check!(payload(data, &mut pos, 1));
                push_memoized!()
            }
            op::BINUNICODE | op::BINSTRING | op::BINBYTES | op::LONG4 => {
                check!(payload(data, &mut pos, 4));
                push_memoized!()
            }
            op::BINUNICODE8 | op::BINBYTES8 | op::BYTEARRAY8 => {
                check!(payload(data, &mut pos, 8));
                push_memoized!()
            }
            // Only ids stored before are expected.
            op::LONG_BINGET => {
                // A batch of list items (`based_experiments`) is mostly a run of these: read it in one go.
                let Some(&[a, b, c, d]) = data.get(pos..pos + 4) else {
                    unsure!();
                };
                pos += 4;
                check!(u64::from(u32::from_le_bytes([a, b, c, d])) < next);
                push!(true);
                if open > 0 {
                    // The references after it that are whole and of ids stored before, up to the budget and
                    // the depth: pushed together. A reference that is not is read next on its own (and ends the skim).
                    let most = left.min(max_depth - len);
                    let mut n = 0;
                    while n < most {
                        match data.get(pos + 5 * n..pos + 5 * n + 5) {
                            Some(&[op::LONG_BINGET, a, b, c, d])
                                if u64::from(u32::from_le_bytes([a, b, c, d])) < next =>
                            {
                                n += 1
                            }
                            _ => break,
                        }
                    }
                    from_memo[len..len + n].fill(true);
                    len += n;
                    pos += 5 * n;
                    left -= n;
                }
            }
            op::BINGET => {
                let Some(&id) = data.get(pos) else {
                    unsure!();
                };
                pos += 1;
                check!(u64::from(id) < next);
                push!(true)
            }
            op::GET => {
                check!(memo_arg(data, &mut pos, code).is_some_and(|id| id < next));
                push!(true)
            }
            op::MEMOIZE | op::BINPUT | op::LONG_BINPUT | op::PUT => {
                // Ids must count up one by one, and something must be there to store.
                let id = if code == op::MEMOIZE {
                    Some(next)
                } else {
                    memo_arg(data, &mut pos, code)
                };
                check!(id == Some(next) && above!() > 0);
                next += 1;
            }
            op::MARK => {
                marks[open] = len;
                open += 1;
                if open > max_depth {
                    too_deep!();
                }
            }
            op::TUPLE | op::LIST | op::DICT | op::FROZENSET | op::OBJ | op::INST => {
                // Everything above the last MARK (for OBJ at least the class) becomes one new value.
                if code == op::INST {
                    check!(line(data, &mut pos).is_some() && line(data, &mut pos).is_some());
                }
                let at_least = usize::from(code == op::OBJ);
                check!(open > 0 && len - marks[open - 1] >= at_least);
                open -= 1;
                len = marks[open];
                push_memoized!()
            }
            op::TUPLE1
            | op::TUPLE2
            | op::STACK_GLOBAL
            | op::REDUCE
            | op::NEWOBJ
            | op::TUPLE3
            | op::NEWOBJ_EX => {
                // `n` values become one new value.
                let n = match code {
                    op::TUPLE1 => 1,
                    op::TUPLE3 | op::NEWOBJ_EX => 3,
                    _ => 2,
                };
                check!(above!() >= n);
                len -= n;
                push_memoized!()
            }
            op::APPEND | op::BUILD | op::SETITEM => {
                if code == op::SETITEM && open == 0 && len == 1 {
                    // The value and its key are taken by this SETITEM.
                    return Ran(budget - left, (code == closing).then_some(()).and(complete));
                }
                // `n` values change the value below them, which must be made here.
                let n = if code == op::SETITEM { 2 } else { 1 };
                check!(above!() > n && !from_memo[len - n - 1]);
                len -= n;
            }
            op::APPENDS | op::ADDITEMS | op::SETITEMS => {
                if open == 0 {
                    // A MARK opened before the key: its SETITEMS takes the value and the key.
                    return Ran(budget - left, (code == closing).then_some(()).and(complete));
                }
                open -= 1;
                let mark = marks[open];
                // The changed value is the one below the MARK, above the MARK before, and made here.
                let fence = if open > 0 { marks[open - 1] } else { 0 };
                check!(mark > fence && !from_memo[mark - 1]);
                len = mark;
            }
            op::POP => {
                if above!() > 0 {
                    len -= 1;
                } else {
                    check!(open > 0);
                    open -= 1;
                }
            }
            op::POP_MARK => {
                check!(open > 0);
                open -= 1;
                len = marks[open];
            }
            op::FRAME => pos += 8,
            _ => unsure!(),
        }
        if pos > data.len() {
            unsure!();
        }
        if len == 1 && open == 0 {
            complete = Some((pos, next));
            (ahead, goes_on) = (0, false);
        } else if complete.is_some() && !goes_on {
            if code == op::MARK && len <= 2 && open == 1 {
                // A batch of items or arguments for the value, or of items for the one value above it (an
                // object's state, before its BUILD): it most likely goes on.
                goes_on = true;
            } else if !matches!(
                code,
                op::MEMOIZE | op::BINPUT | op::LONG_BINPUT | op::PUT | op::FRAME
            ) {
                // Past a complete value, a few opcodes may still belong to it (a class, then its arguments and
                // NEWOBJ or REDUCE); if it does not stand alone again within LOOK_AHEAD, they start the next
                // key.
                ahead += 1;
                if ahead > LOOK_AHEAD {
                    return Ran(budget - left, complete);
                }
            }
        }
    }
}

/// The id argument of BINGET, LONG_BINGET or GET (or their PUTs): 1 or 4 little-endian bytes, or a decimal line.
#[inline]
fn memo_arg(data: &[u8], pos: &mut usize, code: u8) -> Option<u64> {
    match code {
        op::BINGET | op::BINPUT => {
            let b = *data.get(*pos)?;
            *pos += 1;
            Some(u64::from(b))
        }
        op::LONG_BINGET | op::LONG_BINPUT => {
            let bytes = data.get(*pos..*pos + 4)?;
            *pos += 4;
            Some(u64::from(u32::from_le_bytes([
                bytes[0], bytes[1], bytes[2], bytes[3],
            ])))
        }
        _ => line(data, pos).and_then(super::text::parse_decimal_index),
    }
}

/// A payload after its little-endian length of `width` bytes (1, 4 or 8).
#[inline]
fn payload(data: &[u8], pos: &mut usize, width: usize) -> bool {
    let bytes = data.get(*pos..*pos + width);
    let len = match bytes {
        Some(&[b]) => u64::from(b),
        // BINSTRING's and LONG4's lengths are signed: a negative one is the decoder's error to report.
        Some(&[a, b, c, d]) => u64::from(i32::from_le_bytes([a, b, c, d]).max(-1) as u32),
        Some(b) if b.len() == 8 => b.iter().rev().fold(0, |acc, &x| (acc << 8) | u64::from(x)),
        _ => return false,
    };
    match usize::try_from(len) {
        Ok(len) if len <= data.len() && len != u32::MAX as usize => {
            *pos += width + len;
            true
        }
        _ => false,
    }
}

/// A text argument ending at the next newline.
fn line<'d>(data: &'d [u8], pos: &mut usize) -> Option<&'d [u8]> {
    let rest = data.get(*pos..)?;
    let len = rest.iter().position(|&b| b == b'\n')?;
    *pos += len + 1;
    Some(&rest[..len])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[refs...]` as CPython writes a list of objects stored before: EMPTY_LIST, MEMOIZE, MARK, a LONG_BINGET per
    /// id, APPENDS; then the batch's SETITEMS.
    fn list_of_refs(ids: &[u32]) -> Vec<u8> {
        let mut p = vec![op::EMPTY_LIST, op::MEMOIZE, op::MARK];
        for id in ids {
            p.push(op::LONG_BINGET);
            p.extend_from_slice(&id.to_le_bytes());
        }
        p.push(op::APPENDS);
        p.push(op::SETITEMS);
        p
    }

    fn skim_all(
        data: &[u8],
        next_id: u64,
        max_depth: usize,
        budget: usize,
    ) -> (usize, Option<Skimmed>) {
        skim(
            data,
            0,
            next_id,
            Closer::Batch,
            max_depth,
            budget,
            &mut Scratch::default(),
        )
    }

    #[test]
    fn a_run_of_references_is_read_as_one_opcode_at_a_time_would() {
        // Up to 1,020 references fit the skim's first buffers; more make it start again with deeper ones, and the
        // opcodes read before count too.
        for (n, again) in [(0usize, 0), (1, 0), (2, 0), (7, 0), (1020, 0), (5000, 1027)] {
            let ids: Vec<u32> = (0..n as u32).map(|i| i % 51).collect();
            let data = list_of_refs(&ids);
            // EMPTY_LIST, MEMOIZE, MARK, n refs, APPENDS, SETITEMS.
            let (read, skimmed) = skim_all(&data, 50, 10_000, usize::MAX);
            assert_eq!(read, n + 5 + again, "{n} refs");
            assert_eq!(
                skimmed,
                Some(Skimmed {
                    end: data.len() - 1,
                    ids: 1
                }),
                "{n} refs"
            );
        }
    }

    #[test]
    fn a_reference_in_a_run_to_an_id_not_stored_yet_ends_the_skim_there() {
        for bad in [0usize, 1, 5, 999] {
            let mut ids: Vec<u32> = vec![3; 1000];
            ids[bad] = 51; // ids 0..50 are stored (50 is the list), 51 is not
            let data = list_of_refs(&ids);
            let (read, skimmed) = skim_all(&data, 50, 10_000, usize::MAX);
            // Everything up to the bad reference, which is read too.
            assert_eq!(
                (read, skimmed),
                (3 + bad + 1, Some(Skimmed { end: 2, ids: 1 })),
                "bad ref at {bad}"
            );
        }
    }

    #[test]
    fn a_run_of_references_stops_at_the_budget_and_the_depth() {
        let data = list_of_refs(&[1; 300]);
        // Cut short, the value ends where it last stood alone: the empty list, before its batch of items.
        let empty = Some(Skimmed { end: 2, ids: 1 });
        let whole = Some(Skimmed {
            end: data.len() - 1,
            ids: 1,
        });
        for budget in [3, 4, 5, 100, 302, 303, 304, 305, 306] {
            let (read, skimmed) = skim_all(&data, 50, 10_000, budget);
            // The list and its MEMOIZE, MARK, 300 refs, APPENDS: the value stands whole after 304 opcodes.
            assert_eq!(read, budget.min(305), "budget {budget}");
            assert_eq!(
                skimmed,
                if budget >= 304 { whole } else { empty },
                "budget {budget}"
            );
        }
        // The references are stack entries above the MARK: 300 of them need a depth of 301 with the list.
        for max_depth in [2, 3, 100, 300] {
            assert_eq!(
                skim_all(&data, 50, max_depth, usize::MAX).1,
                empty,
                "depth {max_depth}"
            );
        }
        assert_eq!(skim_all(&data, 50, 301, usize::MAX).1, whole);
    }

    #[test]
    fn the_memoize_after_a_value_is_read_with_it_and_counted() {
        // 'abc' MEMOIZE, () MEMOIZE, then the batch's next key.
        let data = [
            op::SHORT_BINUNICODE,
            3,
            b'a',
            b'b',
            b'c',
            op::MEMOIZE,
            op::EMPTY_TUPLE,
            op::MEMOIZE,
            op::NONE,
        ];
        // The str alone, then with its MEMOIZE, then the tuple too (it goes on the stack beside the str, so the
        // str is no longer alone: its end stays after its MEMOIZE).
        let str_end = Some(Skimmed { end: 6, ids: 1 });
        // (Reading past the input's end counts as an opcode read.)
        assert_eq!(
            skim_all(&data[..5], 7, 100, usize::MAX),
            (2, Some(Skimmed { end: 5, ids: 0 }))
        );
        assert_eq!(
            skim_all(&data, 7, 100, 1),
            (1, Some(Skimmed { end: 5, ids: 0 }))
        );
        assert_eq!(skim_all(&data, 7, 100, 2), (2, str_end));
        assert_eq!(skim_all(&data[..6], 7, 100, usize::MAX), (3, str_end));
        assert_eq!(skim_all(&data, 7, 100, usize::MAX).1, str_end);
    }
}
