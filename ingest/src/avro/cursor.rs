//! A bounds-checked reader over Avro's binary encoding. Every read returns an
//! error instead of panicking on short or malformed input.

use thiserror::Error;

/// Why the bytes could not be read as the schema says.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CursorError {
    #[error("body ends early: needed {needed} more byte(s) at byte {at}")]
    Truncated { at: usize, needed: usize },
    #[error("variable-length integer at byte {at} is longer than 10 bytes")]
    VarintTooLong { at: usize },
    #[error("negative length {len} at byte {at}")]
    NegativeLength { at: usize, len: i64 },
    #[error("int value {value} at byte {at} does not fit in 32 bits")]
    IntOverflow { at: usize, value: i64 },
    #[error("boolean byte {value} at byte {at} is neither 0 nor 1")]
    BadBoolean { at: usize, value: u8 },
    #[error("string at byte {at} is not valid UTF-8")]
    BadUtf8 { at: usize },
    #[error("union branch {index} at byte {at} is out of range (union has {branches})")]
    BadUnionBranch {
        at: usize,
        index: i64,
        branches: usize,
    },
    #[error("enum symbol {index} at byte {at} is out of range (enum has {symbols})")]
    BadEnumSymbol {
        at: usize,
        index: i64,
        symbols: usize,
    },
}

/// Reads Avro primitives from a byte slice, front to back.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    pub fn read_long(&mut self) -> Result<i64, CursorError> {
        let start = self.pos;
        let mut value: u64 = 0;
        let mut shift = 0u32;
        loop {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(CursorError::Truncated {
                    at: self.pos,
                    needed: 1,
                });
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err(CursorError::VarintTooLong { at: start });
            }
        }
        // zig-zag
        Ok(((value >> 1) as i64) ^ -((value & 1) as i64))
    }

    #[inline]
    pub fn read_int(&mut self) -> Result<i32, CursorError> {
        let at = self.pos;
        let value = self.read_long()?;
        i32::try_from(value).map_err(|_| CursorError::IntOverflow { at, value })
    }

    #[inline]
    pub fn read_bool(&mut self) -> Result<bool, CursorError> {
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(CursorError::BadBoolean {
                at: self.pos - 1,
                value,
            }),
        }
    }

    #[inline]
    pub fn read_f32(&mut self) -> Result<f32, CursorError> {
        let b = self.take(4)?;
        Ok(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    #[inline]
    pub fn read_f64(&mut self) -> Result<f64, CursorError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_le_bytes(a))
    }

    /// A length-prefixed byte string (Avro `bytes`).
    #[inline]
    pub fn read_bytes(&mut self) -> Result<&'a [u8], CursorError> {
        let at = self.pos;
        let len = self.read_long()?;
        if len < 0 {
            return Err(CursorError::NegativeLength { at, len });
        }
        self.take(len as u64)
    }

    /// A length-prefixed UTF-8 string (Avro `string`).
    #[inline]
    pub fn read_str(&mut self) -> Result<&'a str, CursorError> {
        let at = self.pos;
        let bytes = self.read_bytes()?;
        std::str::from_utf8(bytes).map_err(|_| CursorError::BadUtf8 { at })
    }

    /// The union branch index, checked against the number of branches.
    #[inline]
    pub fn read_union_branch(&mut self, branches: usize) -> Result<usize, CursorError> {
        let at = self.pos;
        let index = self.read_long()?;
        if index < 0 || index as u64 >= branches as u64 {
            return Err(CursorError::BadUnionBranch {
                at,
                index,
                branches,
            });
        }
        Ok(index as usize)
    }

    /// The count of the next block of an array or map; a negative count is
    /// followed by the block's size in bytes, which is skipped over.
    #[inline]
    pub fn read_block_count(&mut self) -> Result<u64, CursorError> {
        let at = self.pos;
        let count = self.read_long()?;
        if count < 0 {
            let size_at = self.pos;
            let size = self.read_long()?;
            if size < 0 {
                return Err(CursorError::NegativeLength {
                    at: size_at,
                    len: size,
                });
            }
            return Ok(count.unsigned_abs());
        }
        // Every item takes at least one byte, except zero-sized ones (null);
        // refuse counts that could not possibly fit so a corrupt count cannot
        // make a caller reserve gigabytes.
        if count as u64 > (self.remaining() as u64).saturating_mul(8).max(1 << 20) {
            return Err(CursorError::Truncated {
                at,
                needed: count as usize,
            });
        }
        Ok(count as u64)
    }

    #[inline]
    pub fn take(&mut self, n: u64) -> Result<&'a [u8], CursorError> {
        if n > self.remaining() as u64 {
            return Err(CursorError::Truncated {
                at: self.pos,
                needed: (n - self.remaining() as u64).min(usize::MAX as u64) as usize,
            });
        }
        let n = n as usize;
        let slice = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Avro's zig-zag varint encoding of `v`, for tests.
    pub(crate) fn zigzag(v: i64) -> Vec<u8> {
        let mut n = ((v << 1) ^ (v >> 63)) as u64;
        let mut out = Vec::new();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    #[test]
    fn longs_round_trip_at_the_extremes() {
        for v in [
            0,
            -1,
            1,
            63,
            -64,
            64,
            i64::MAX,
            i64::MIN,
            i32::MAX as i64 + 1,
        ] {
            let bytes = zigzag(v);
            let mut c = Cursor::new(&bytes);
            assert_eq!(c.read_long().unwrap(), v);
            assert_eq!(c.remaining(), 0);
        }
    }

    #[test]
    fn short_and_overlong_input_are_errors() {
        assert!(matches!(
            Cursor::new(&[0x80]).read_long(),
            Err(CursorError::Truncated { .. })
        ));
        let overlong = [0xff; 11];
        assert!(matches!(
            Cursor::new(&overlong).read_long(),
            Err(CursorError::VarintTooLong { .. })
        ));
        let big = zigzag(i32::MAX as i64 + 1);
        assert!(matches!(
            Cursor::new(&big).read_int(),
            Err(CursorError::IntOverflow { .. })
        ));
        let mut s = zigzag(5);
        s.extend_from_slice(b"ab");
        assert!(matches!(
            Cursor::new(&s).read_str(),
            Err(CursorError::Truncated { .. })
        ));
        let neg = zigzag(-3);
        assert!(matches!(
            Cursor::new(&neg).read_bytes(),
            Err(CursorError::NegativeLength { .. })
        ));
        let mut bad = zigzag(2);
        bad.extend_from_slice(&[0xc3, 0x28]);
        assert!(matches!(
            Cursor::new(&bad).read_str(),
            Err(CursorError::BadUtf8 { .. })
        ));
        assert!(matches!(
            Cursor::new(&[2]).read_bool(),
            Err(CursorError::BadBoolean { .. })
        ));
        assert!(matches!(
            Cursor::new(&zigzag(2)).read_union_branch(2),
            Err(CursorError::BadUnionBranch { .. })
        ));
    }
}
