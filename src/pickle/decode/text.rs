//! Conversions of opcode arguments into values: decimal and two's-complement integers, Python 2 `str`
//! literals (STRING), raw-unicode-escape text (UNICODE), UTF-8 written with `surrogatepass`, latin-1.
//!
//! Pure functions over byte slices. They never panic, never index past a slice, and bound their own work:
//! a decimal integer longer than CPython's conversion limit is rejected instead of converted in quadratic time.

use std::borrow::Cow;
use std::rc::Rc;

use crate::pickle::Value;

/// CPython's default `sys.get_int_max_str_digits()`: longer decimal integers are refused by CPython too.
pub const MAX_DECIMAL_DIGITS: usize = 4300;

/// A decimal integer as the INT and LONG opcodes write it (optional sign, digits, surrounding blanks).
pub fn parse_decimal_int(text: &[u8]) -> Result<Value, String> {
    let text = text.trim_ascii();
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(format!(
            "invalid integer literal {:?}",
            String::from_utf8_lossy(text)
        ));
    }
    if digits.len() > MAX_DECIMAL_DIGITS {
        return Err(format!(
            "integer literal has {} digits, more than the {MAX_DECIMAL_DIGITS} CPython converts",
            digits.len()
        ));
    }
    let mut small: Option<i64> = Some(0);
    for &d in digits {
        let d = i64::from(d - b'0');
        small = small.and_then(|acc| acc.checked_mul(10)).and_then(|acc| {
            if negative {
                acc.checked_sub(d)
            } else {
                acc.checked_add(d)
            }
        });
        if small.is_none() {
            break;
        }
    }
    match small {
        Some(n) => Ok(Value::Int(n)),
        None => Ok(Value::BigInt(Rc::new(Box::from(
            decimal_to_twos_complement(digits, negative),
        )))),
    }
}

/// An unsigned decimal (memo ids of PUT and GET).
pub fn parse_decimal_index(text: &[u8]) -> Option<u64> {
    let digits = text.trim_ascii();
    let digits = digits.strip_prefix(b"+").unwrap_or(digits);
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        if d.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

/// Little-endian two's complement bytes (LONG1/LONG4) as `Int` when they fit i64, else `BigInt` as carried.
pub fn twos_complement_to_value(bytes: &[u8]) -> Value {
    let Some(&last) = bytes.last() else {
        return Value::Int(0);
    };
    let fill = if last & 0x80 != 0 { 0xff } else { 0x00 };
    let (low, high) = bytes.split_at(bytes.len().min(8));
    if high.iter().any(|&b| b != fill) {
        return Value::BigInt(Rc::new(Box::from(bytes)));
    }
    // The value fits: the bytes past the eighth only repeat the sign, so byte 7 (or the last) carries it.
    let mut buf = [fill; 8];
    for (slot, &b) in buf.iter_mut().zip(low) {
        *slot = b;
    }
    if !high.is_empty() && (buf[7] & 0x80 != 0) != (fill == 0xff) {
        return Value::BigInt(Rc::new(Box::from(bytes)));
    }
    Value::Int(i64::from_le_bytes(buf))
}

/// Digits (already checked: ASCII, at most `MAX_DECIMAL_DIGITS`) to minimal little-endian two's complement.
fn decimal_to_twos_complement(digits: &[u8], negative: bool) -> Vec<u8> {
    // Magnitude in base 2^32 limbs, least significant first, fed nine digits at a time.
    let mut limbs: Vec<u32> = Vec::with_capacity(digits.len() / 9 + 1);
    for chunk in digits.chunks(9) {
        let mut multiplier: u64 = 1;
        let mut addend: u64 = 0;
        for &d in chunk {
            multiplier *= 10;
            addend = addend * 10 + u64::from(d - b'0');
        }
        let mut carry = addend;
        for limb in limbs.iter_mut() {
            let product = u64::from(*limb) * multiplier + carry;
            *limb = product as u32;
            carry = product >> 32;
        }
        if carry != 0 {
            limbs.push(carry as u32);
        }
    }
    let mut bytes: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    if negative {
        let mut carry = true;
        for b in bytes.iter_mut() {
            let (inverted, c) = (!*b).overflowing_add(u8::from(carry));
            *b = inverted;
            carry = c;
        }
        // Keep the sign bit set; drop redundant 0xff bytes above it.
        if bytes.last().is_none_or(|&b| b & 0x80 == 0) {
            bytes.push(0xff);
        }
        while bytes.len() > 1 && bytes.last() == Some(&0xff) && bytes[bytes.len() - 2] & 0x80 != 0 {
            bytes.pop();
        }
    } else if bytes.last().is_none_or(|&b| b & 0x80 != 0) {
        bytes.push(0);
    }
    bytes
}

/// Latin-1 bytes as text (every byte is the code point of the same number).
pub fn latin1(bytes: &[u8]) -> Cow<'_, str> {
    if bytes.is_ascii() {
        // ASCII is valid UTF-8; the conversion cannot fail here.
        return match std::str::from_utf8(bytes) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
        };
    }
    Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect())
}

/// UTF-8 as CPython writes it with `surrogatepass`: valid text is borrowed; an encoded lone surrogate
/// (ED A0..BF 80..BF) becomes one U+FFFD, and any other invalid sequence is replaced as `from_utf8_lossy` does.
pub fn utf8_surrogatepass_lossy(bytes: &[u8]) -> Cow<'_, str> {
    let mut rest = match std::str::from_utf8(bytes) {
        Ok(s) => return Cow::Borrowed(s),
        Err(_) => bytes,
    };
    let mut out = String::with_capacity(bytes.len());
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return Cow::Owned(out);
            }
            Err(e) => {
                let (valid, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                out.push(char::REPLACEMENT_CHARACTER);
                let skip = match bad {
                    [0xed, b1, b2, ..]
                        if (0xa0..=0xbf).contains(b1) && (0x80..=0xbf).contains(b2) =>
                    {
                        3
                    }
                    _ => e.error_len().unwrap_or(bad.len()),
                };
                rest = bad.get(skip..).unwrap_or_default();
                if rest.is_empty() {
                    return Cow::Owned(out);
                }
            }
        }
    }
}

/// CPython's `raw-unicode-escape` decoding (the UNICODE opcode): bytes are latin-1 except `\uXXXX` and
/// `\UXXXXXXXX`. A surrogate code point becomes U+FFFD.
pub fn raw_unicode_escape(bytes: &[u8]) -> Result<String, String> {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        if b != b'\\' {
            out.push(char::from(b));
            continue;
        }
        let count = match bytes.get(i) {
            Some(b'u') => 4,
            Some(b'U') => 8,
            _ => {
                out.push('\\');
                continue;
            }
        };
        let hex = bytes
            .get(i + 1..i + 1 + count)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .ok_or_else(|| {
                format!(
                    "truncated \\{} escape in UNICODE text",
                    if count == 4 { "uXXXX" } else { "UXXXXXXXX" }
                )
            })?;
        let code = hex.iter().fold(0u32, |acc, &h| (acc << 4) | hex_value(h));
        if code > 0x10ffff {
            return Err(format!(
                "\\U{code:08x} escape in UNICODE text is out of range"
            ));
        }
        out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
        i += 1 + count;
    }
    Ok(out)
}

/// The body of a Python 2 `str` literal (between the quotes of a STRING argument) to its bytes, as
/// CPython's `PyBytes_DecodeEscape` does it.
pub fn unescape_bytes_literal(body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&e) = body.get(i) else {
            return Err("STRING literal ends with a lone backslash".to_string());
        };
        i += 1;
        match e {
            b'\n' => {}
            b'\\' => out.push(b'\\'),
            b'\'' => out.push(b'\''),
            b'"' => out.push(b'"'),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut value = u32::from(e - b'0');
                for _ in 0..2 {
                    match body.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(value as u8);
            }
            b'x' => {
                let hex = body
                    .get(i..i + 2)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .ok_or_else(|| "invalid \\x escape in STRING literal".to_string())?;
                out.push(hex.iter().fold(0u32, |acc, &h| (acc << 4) | hex_value(h)) as u8);
                i += 2;
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

fn hex_value(h: u8) -> u32 {
    match h {
        b'0'..=b'9' => u32::from(h - b'0'),
        b'a'..=b'f' => u32::from(h - b'a' + 10),
        b'A'..=b'F' => u32::from(h - b'A' + 10),
        _ => 0,
    }
}
