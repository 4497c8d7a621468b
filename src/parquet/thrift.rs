//! A reader for the Thrift compact protocol, as far as a parquet footer needs: field headers, integers,
//! binaries, list/map headers, and a generic skip of any value (so fields a reader does not know are passed
//! over, whatever their type). Every length is checked against the bytes that remain before anything is
//! allocated, and nesting deeper than `MAX_DEPTH` is refused, so hostile input fails with an offset, never a
//! panic or an unbounded allocation.

use std::fmt;

/// The deepest struct/list/map nesting accepted (FileMetaData needs about 6; logical types a few more).
pub const MAX_DEPTH: usize = 64;

/// A decoding failure at a byte offset of the footer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThriftError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for ThriftError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at footer byte {})", self.message, self.offset)
    }
}

pub type TResult<T> = std::result::Result<T, ThriftError>;

/// The compact protocol's type codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CType {
    BoolTrue,
    BoolFalse,
    Byte,
    I16,
    I32,
    I64,
    Double,
    Binary,
    List,
    Set,
    Map,
    Struct,
    Uuid,
}

impl CType {
    fn from_nibble(n: u8) -> Option<CType> {
        Some(match n {
            1 => CType::BoolTrue,
            2 => CType::BoolFalse,
            3 => CType::Byte,
            4 => CType::I16,
            5 => CType::I32,
            6 => CType::I64,
            7 => CType::Double,
            8 => CType::Binary,
            9 => CType::List,
            10 => CType::Set,
            11 => CType::Map,
            12 => CType::Struct,
            13 => CType::Uuid,
            _ => return None,
        })
    }

    /// The fewest bytes one value of this type takes as a list element (used to bound declared sizes).
    fn min_element_bytes(self) -> usize {
        match self {
            CType::Double => 8,
            CType::Uuid => 16,
            _ => 1,
        }
    }
}

/// One field header inside a struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldHeader {
    pub id: i16,
    pub ctype: CType,
}

/// A cursor over footer bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            depth: 0,
        }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn err<T>(&self, message: impl Into<String>) -> TResult<T> {
        Err(ThriftError {
            offset: self.pos,
            message: message.into(),
        })
    }

    fn byte(&mut self) -> TResult<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => self.err("the footer ends in the middle of a value"),
        }
    }

    fn take(&mut self, n: usize) -> TResult<&'a [u8]> {
        if n > self.remaining() {
            return self.err(format!(
                "a value declares {n} bytes but only {} remain in the footer",
                self.remaining()
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// An unsigned LEB128 varint of at most 10 bytes.
    fn varint(&mut self) -> TResult<u64> {
        let start = self.pos;
        let mut value: u64 = 0;
        for i in 0..10 {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                self.pos = start;
                return self.err("a varint overflows 64 bits");
            }
            value |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        self.pos = start;
        self.err("a varint is longer than 10 bytes")
    }

    fn zigzag(&mut self) -> TResult<i64> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    pub fn i64(&mut self) -> TResult<i64> {
        self.zigzag()
    }

    pub fn i32(&mut self) -> TResult<i32> {
        let start = self.pos;
        let v = self.zigzag()?;
        i32::try_from(v).or_else(|_| {
            self.pos = start;
            self.err(format!("an i32 field holds {v}"))
        })
    }

    pub fn i16(&mut self) -> TResult<i16> {
        let start = self.pos;
        let v = self.zigzag()?;
        i16::try_from(v).or_else(|_| {
            self.pos = start;
            self.err(format!("an i16 field holds {v}"))
        })
    }

    pub fn binary(&mut self) -> TResult<&'a [u8]> {
        let len = self.varint()?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.take(len)
    }

    /// A binary field that must be UTF-8 (`what` names it in the error).
    pub fn string(&mut self, what: &str) -> TResult<String> {
        let start = self.pos;
        let bytes = self.binary()?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => {
                self.pos = start;
                self.err(format!("{what} is not UTF-8"))
            }
        }
    }

    /// Enter a struct (counts depth); pair with `end_struct`. Field ids are relative to the previous field.
    pub fn begin_struct(&mut self) -> TResult<StructState> {
        if self.depth >= MAX_DEPTH {
            return self.err(format!("values nest deeper than {MAX_DEPTH} levels"));
        }
        self.depth += 1;
        Ok(StructState { last_id: 0 })
    }

    pub fn end_struct(&mut self) {
        self.depth -= 1;
    }

    /// The next field header, or None at the struct's STOP byte.
    pub fn field(&mut self, st: &mut StructState) -> TResult<Option<FieldHeader>> {
        let start = self.pos;
        let b = self.byte()?;
        if b == 0 {
            return Ok(None);
        }
        let delta = b >> 4;
        let Some(ctype) = CType::from_nibble(b & 0x0f) else {
            self.pos = start;
            return self.err(format!(
                "unknown compact type {} in a field header",
                b & 0x0f
            ));
        };
        let id = if delta == 0 {
            self.i16()?
        } else {
            st.last_id.wrapping_add(i16::from(delta))
        };
        st.last_id = id;
        Ok(Some(FieldHeader { id, ctype }))
    }

    /// A list or set header: (element type, size). The size is checked against the remaining bytes.
    pub fn list_header(&mut self) -> TResult<(CType, usize)> {
        let start = self.pos;
        let b = self.byte()?;
        let Some(elem) = CType::from_nibble(b & 0x0f) else {
            self.pos = start;
            return self.err(format!(
                "unknown compact type {} in a list header",
                b & 0x0f
            ));
        };
        let short = usize::from(b >> 4);
        let size = if short == 15 {
            usize::try_from(self.varint()?).unwrap_or(usize::MAX)
        } else {
            short
        };
        self.check_count(start, size, elem.min_element_bytes())?;
        Ok((elem, size))
    }

    /// A map header: (key type, value type, size); an empty map has no type byte.
    pub fn map_header(&mut self) -> TResult<Option<(CType, CType, usize)>> {
        let start = self.pos;
        let size = usize::try_from(self.varint()?).unwrap_or(usize::MAX);
        if size == 0 {
            return Ok(None);
        }
        let b = self.byte()?;
        let (Some(k), Some(v)) = (CType::from_nibble(b >> 4), CType::from_nibble(b & 0x0f)) else {
            self.pos = start;
            return self.err(format!(
                "unknown compact types in a map header byte {b:#04x}"
            ));
        };
        self.check_count(start, size, k.min_element_bytes() + v.min_element_bytes())?;
        Ok(Some((k, v, size)))
    }

    fn check_count(&mut self, start: usize, size: usize, min_bytes: usize) -> TResult<()> {
        if size.saturating_mul(min_bytes) > self.remaining() {
            let remaining = self.remaining();
            self.pos = start;
            return self.err(format!(
                "a collection declares {size} elements but only {remaining} bytes remain in the footer"
            ));
        }
        Ok(())
    }

    /// A boolean list element (one byte; field booleans live in the header instead).
    fn list_bool(&mut self) -> TResult<bool> {
        let start = self.pos;
        match self.byte()? {
            0 | 2 => Ok(false),
            1 => Ok(true),
            other => {
                self.pos = start;
                self.err(format!("a boolean list element is {other}"))
            }
        }
    }

    /// Skip one value of this type, wherever it is (`in_list`: booleans are then a byte of their own).
    pub fn skip(&mut self, ctype: CType, in_list: bool) -> TResult<()> {
        match ctype {
            CType::BoolTrue | CType::BoolFalse => {
                if in_list {
                    self.list_bool()?;
                }
            }
            CType::Byte => {
                self.byte()?;
            }
            CType::I16 | CType::I32 | CType::I64 => {
                self.varint()?;
            }
            CType::Double => {
                self.take(8)?;
            }
            CType::Uuid => {
                self.take(16)?;
            }
            CType::Binary => {
                self.binary()?;
            }
            CType::List | CType::Set => {
                let (elem, size) = self.list_header()?;
                self.nested(|r| {
                    for _ in 0..size {
                        r.skip(elem, true)?;
                    }
                    Ok(())
                })?;
            }
            CType::Map => {
                if let Some((k, v, size)) = self.map_header()? {
                    self.nested(|r| {
                        for _ in 0..size {
                            r.skip(k, true)?;
                            r.skip(v, true)?;
                        }
                        Ok(())
                    })?;
                }
            }
            CType::Struct => {
                let mut st = self.begin_struct()?;
                while let Some(h) = self.field(&mut st)? {
                    self.skip(h.ctype, false)?;
                }
                self.end_struct();
            }
        }
        Ok(())
    }

    /// Run `f` one nesting level deeper (lists and maps count like structs).
    pub fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> TResult<T>) -> TResult<T> {
        if self.depth >= MAX_DEPTH {
            return self.err(format!("values nest deeper than {MAX_DEPTH} levels"));
        }
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        out
    }

    /// Read a boolean field's value from its header type.
    pub fn field_bool(&self, h: FieldHeader) -> TResult<bool> {
        match h.ctype {
            CType::BoolTrue => Ok(true),
            CType::BoolFalse => Ok(false),
            other => self.err(format!("field {} should be a boolean, is {other:?}", h.id)),
        }
    }
}

/// The last field id seen in the struct being read (compact field ids are deltas).
pub struct StructState {
    last_id: i16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_zigzag() {
        let mut r = Reader::new(&[0x00, 0x01, 0x02, 0x03, 0xac, 0x02]);
        assert_eq!(r.i64().unwrap(), 0);
        assert_eq!(r.i64().unwrap(), -1);
        assert_eq!(r.i64().unwrap(), 1);
        assert_eq!(r.i64().unwrap(), -2);
        assert_eq!(r.i64().unwrap(), 150);
        assert!(r.i64().is_err());
    }

    #[test]
    fn ten_byte_varint_limits() {
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader::new(&max).varint().unwrap(), u64::MAX);
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Reader::new(&over).varint().is_err());
        let long = [0x80; 11];
        assert!(Reader::new(&long).varint().is_err());
    }

    #[test]
    fn i32_out_of_range_is_an_error() {
        // zigzag(2^31) = 2^32: five bytes 0x80 0x80 0x80 0x80 0x10.
        let e = Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x10])
            .i32()
            .unwrap_err();
        assert!(e.message.contains("i32"), "{e}");
    }

    #[test]
    fn field_ids_are_deltas_or_explicit() {
        // field 1 i32 (0x15) = 7, field 3 binary (0x28) "ab", long form field 300 bool true, stop.
        let bytes = [0x15, 0x0e, 0x28, 0x02, b'a', b'b', 0x01, 0xd8, 0x04, 0x00];
        let mut r = Reader::new(&bytes);
        let mut st = r.begin_struct().unwrap();
        let h = r.field(&mut st).unwrap().unwrap();
        assert_eq!((h.id, h.ctype), (1, CType::I32));
        assert_eq!(r.i32().unwrap(), 7);
        let h = r.field(&mut st).unwrap().unwrap();
        assert_eq!((h.id, h.ctype), (3, CType::Binary));
        assert_eq!(r.string("s").unwrap(), "ab");
        let h = r.field(&mut st).unwrap().unwrap();
        assert_eq!((h.id, h.ctype), (300, CType::BoolTrue));
        assert!(r.field_bool(h).unwrap());
        assert!(r.field(&mut st).unwrap().is_none());
        r.end_struct();
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn skip_handles_every_type() {
        // A struct holding: byte, i16, i64, double, uuid, list<bool>[2], set<i32>[1], map<binary,struct>{1},
        // nested struct with bool false, empty map; then STOP.
        let mut b = vec![0x13, 0x7f, 0x14, 0x04, 0x16, 0x81, 0x01, 0x17];
        b.extend_from_slice(&[0; 8]);
        b.push(0x1d);
        b.extend_from_slice(&[0xaa; 16]);
        b.extend_from_slice(&[0x19, 0x21, 0x01, 0x02]);
        b.extend_from_slice(&[0x1a, 0x15, 0x06]);
        b.extend_from_slice(&[0x1b, 0x01, 0x8c, 0x01, b'k', 0x00]);
        b.extend_from_slice(&[0x1c, 0x12, 0x00]);
        b.extend_from_slice(&[0x1b, 0x00]);
        b.push(0x00);
        let mut r = Reader::new(&b);
        r.skip(CType::Struct, false).unwrap();
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn huge_declared_sizes_are_refused_before_allocating() {
        // list<struct> with 2^60 elements, then nothing.
        let bytes = [0xfc, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10];
        let e = Reader::new(&bytes).list_header().unwrap_err();
        assert!(e.message.contains("declares"), "{e}");
        let e = Reader::new(&[0xff, 0xff, 0xff, 0x7f, b'x'])
            .binary()
            .unwrap_err();
        assert!(e.message.contains("declares"), "{e}");
        let e = Reader::new(&[0xff, 0xff, 0x03, 0x88, 0x00])
            .map_header()
            .unwrap_err();
        assert!(e.message.contains("declares"), "{e}");
        // Doubles take 8 bytes each: 3 declared with 16 bytes left is refused.
        let mut b = vec![0x37];
        b.extend_from_slice(&[0; 16]);
        assert!(Reader::new(&b).list_header().is_err());
    }

    #[test]
    fn deep_nesting_is_refused() {
        // Nested lists of lists: each level is a one-element list of lists.
        let mut b = vec![0x19; MAX_DEPTH + 5];
        b.push(0x00);
        let e = Reader::new(&b).skip(CType::List, false).unwrap_err();
        assert!(e.message.contains("nest deeper"), "{e}");
        // Nested structs: field 1 of type struct, repeatedly.
        let b = vec![0x1c; MAX_DEPTH + 5];
        let e = Reader::new(&b).skip(CType::Struct, false).unwrap_err();
        assert!(e.message.contains("nest deeper"), "{e}");
    }

    #[test]
    fn unknown_types_are_errors() {
        let e = Reader::new(&[0x1e]).skip(CType::Struct, false).unwrap_err();
        assert!(e.message.contains("unknown compact type 14"), "{e}");
    }
}
