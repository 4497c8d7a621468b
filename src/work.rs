//! A count of elementary steps (opcodes run, pairs scanned or indexed, memo slots touched, bytes copied,
//! candidates compared, directories listed, workspaces looked up, processes scanned), so tests can check that
//! cost grows linearly with the input, or stays constant, by counting work, never by timing it. Outside tests
//! `add` compiles to nothing.

#[cfg(test)]
use std::cell::Cell;

#[cfg(test)]
thread_local! {
    static STEPS: Cell<u64> = const { Cell::new(0) };
}

/// Count `n` steps on this thread (a no-op outside tests).
#[cfg(test)]
#[inline]
pub fn add(n: usize) {
    STEPS.with(|s| s.set(s.get().saturating_add(n as u64)));
}

/// Count `n` steps on this thread (a no-op outside tests).
#[cfg(not(test))]
#[inline(always)]
pub fn add(_n: usize) {}

/// The steps counted on this thread since the last `take`; resets the count.
#[cfg(test)]
pub fn take() -> u64 {
    STEPS.with(|s| s.replace(0))
}
