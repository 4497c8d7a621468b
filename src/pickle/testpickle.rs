//! A minimal protocol-4 pickle writer for tests that need hostile but well-formed shapes (one object
//! referenced thousands of times, ids placed to hurt the memo, ...) at sizes CPython's pickler is never asked
//! to write. Every opcode here is one CPython writes; the shapes are what a hand-made file can hold.

pub struct Writer {
    pub out: Vec<u8>,
    next_memo: u32,
}

impl Default for Writer {
    fn default() -> Self {
        Writer {
            out: vec![0x80, 4],
            next_memo: 0,
        }
    }
}

impl Writer {
    pub fn op(&mut self, code: u8) -> &mut Self {
        self.out.push(code);
        self
    }

    pub fn mark(&mut self) -> &mut Self {
        self.op(b'(')
    }

    pub fn none(&mut self) -> &mut Self {
        self.op(b'N')
    }

    pub fn int(&mut self, v: i32) -> &mut Self {
        self.op(b'J');
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.op(b'X');
        self.out
            .extend_from_slice(&u32::try_from(s.len()).unwrap().to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
        self
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.op(b'B');
        self.out
            .extend_from_slice(&u32::try_from(b.len()).unwrap().to_le_bytes());
        self.out.extend_from_slice(b);
        self
    }

    /// STACK_GLOBAL of two fresh strings.
    pub fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.str(module).str(name).op(0x93)
    }

    /// MEMOIZE the top of the stack; returns its memo id.
    pub fn memoize(&mut self) -> u32 {
        self.op(0x94);
        self.next_memo += 1;
        self.next_memo - 1
    }

    /// LONG_BINPUT with an explicit id (does not advance MEMOIZE's counter here).
    pub fn put(&mut self, id: u32) -> &mut Self {
        self.op(b'r');
        self.out.extend_from_slice(&id.to_le_bytes());
        self
    }

    /// LONG_BINGET.
    pub fn get(&mut self, id: u32) -> &mut Self {
        self.op(b'j');
        self.out.extend_from_slice(&id.to_le_bytes());
        self
    }

    pub fn stop(&mut self) -> Vec<u8> {
        self.op(b'.');
        std::mem::take(&mut self.out)
    }
}

/// `s` PUTs of ids far beyond the memo's dense limit, then `s` PUTs each at the id just below the limit (which
/// grows by two with every distinct id stored).
pub fn memo_below_the_dense_limit(s: usize) -> Vec<u8> {
    let mut w = Writer::default();
    w.none();
    for i in 0..s {
        w.put(4_000_000_000 - i as u32);
    }
    for i in 0..s {
        w.put((2 * (s + i) + 1024 - 1) as u32);
    }
    w.stop()
}
