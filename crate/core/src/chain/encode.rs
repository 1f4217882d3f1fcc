//! Bitcoin's consensus encoding: a bounded reader, compact sizes, and the decode error.
//!
//! Decoding never trusts a length read from the input: a count is checked against what the
//! remaining bytes could possibly hold before anything is allocated for it, so a hostile
//! 9-byte prefix cannot make a node reserve gigabytes.

/// The largest serialized block Bitcoin allows (weight 4,000,000 with no witness discount
/// bounds the raw size by this).
pub const MAX_BLOCK_SERIALIZED_SIZE: usize = 4_000_000;

/// The most bytes one compact-size length may announce (Bitcoin Core's `MAX_SIZE`).
pub const MAX_COMPACT_SIZE: u64 = 0x0200_0000;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before the structure did.
    #[error("unexpected end of data at offset {offset}: {needed} more bytes needed")]
    UnexpectedEnd {
        /// Where the missing bytes should have started.
        offset: usize,
        /// How many were missing.
        needed: usize,
    },
    /// A count announces more items than the limit or the remaining bytes allow.
    #[error("{what} count {count} at offset {offset} exceeds what {limit} allows")]
    CountTooLarge {
        /// What was being counted.
        what: &'static str,
        /// The announced count.
        count: u64,
        /// The largest count that could be valid here.
        limit: u64,
        /// Where the count was read.
        offset: usize,
    },
    /// A compact size not encoded in its shortest form.
    #[error("non-canonical compact size at offset {offset}")]
    NonCanonicalCompactSize {
        /// Where it was read.
        offset: usize,
    },
    /// Bytes left over after a complete structure.
    #[error("{count} trailing bytes after the {what}")]
    TrailingBytes {
        /// The structure that was complete.
        what: &'static str,
        /// How many bytes followed it.
        count: usize,
    },
    /// The whole input is larger than any valid instance.
    #[error("a {what} of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The structure.
        what: &'static str,
        /// The input's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A segwit marker followed by a flag other than 1.
    #[error("unknown segwit flag {flag:#04x} at offset {offset}")]
    BadSegwitFlag {
        /// The flag byte.
        flag: u8,
        /// Where it was read.
        offset: usize,
    },
    /// A segwit serialization whose witnesses are all empty (Core: "superfluous witness record").
    #[error("segwit serialization with no witness data")]
    SuperfluousWitness,
    /// A block must contain at least one transaction, the coinbase.
    #[error("a block must contain at least one transaction")]
    NoTransactions,
}

/// Reads consensus-encoded bytes from a slice, never past its end.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// The bytes from `start` up to the current position.
    pub fn consumed_since(&self, start: usize) -> &'a [u8] {
        &self.data[start..self.pos]
    }

    /// The next `n` bytes.
    pub fn read_bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::UnexpectedEnd {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// The next `N` bytes as an array.
    pub fn read_array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.read_bytes(N)?);
        Ok(out)
    }

    /// The next byte, without consuming it.
    pub fn peek_u8(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    /// One byte.
    pub fn read_u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.read_array::<1>()?[0])
    }

    /// A little-endian `u16`.
    pub fn read_u16_le(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.read_array()?))
    }

    /// A little-endian `u32`.
    pub fn read_u32_le(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.read_array()?))
    }

    /// A little-endian `i32`.
    pub fn read_i32_le(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.read_array()?))
    }

    /// A little-endian `u64`.
    pub fn read_u64_le(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.read_array()?))
    }

    /// A compact size (Bitcoin's variable-length integer), canonical form only.
    pub fn read_compact_size(&mut self) -> Result<u64, DecodeError> {
        let offset = self.pos;
        let first = self.read_u8()?;
        let (value, min) = match first {
            0xfd => (u64::from(self.read_u16_le()?), 0xfd),
            0xfe => (u64::from(self.read_u32_le()?), 0x1_0000),
            0xff => (self.read_u64_le()?, 0x1_0000_0000),
            n => return Ok(u64::from(n)),
        };
        if value < min {
            return Err(DecodeError::NonCanonicalCompactSize { offset });
        }
        Ok(value)
    }

    /// A compact-size count of items each at least `min_item_bytes` long, checked against
    /// `limit` and against what the remaining input could hold, so that the caller may
    /// allocate for it.
    pub fn read_count(
        &mut self,
        what: &'static str,
        limit: u64,
        min_item_bytes: usize,
    ) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let count = self.read_compact_size()?;
        let fits = (self.remaining() / min_item_bytes.max(1)) as u64;
        let limit = limit.min(fits);
        if count > limit {
            return Err(DecodeError::CountTooLarge {
                what,
                count,
                limit,
                offset,
            });
        }
        Ok(count as usize)
    }

    /// A compact-size-prefixed byte string.
    pub fn read_var_bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.read_count(what, MAX_COMPACT_SIZE, 1)?;
        self.read_bytes(len)
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { what, count }),
        }
    }
}

/// Where encoded bytes go: a buffer, a hash engine, or a byte counter.
pub trait Sink {
    /// Appends bytes.
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for super::hash::Sha256dEngine {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

/// Counts bytes instead of keeping them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counter(pub usize);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

/// Writes a compact size in its canonical form.
pub fn put_compact_size(out: &mut impl Sink, n: u64) {
    match n {
        0..=0xfc => out.put(&[n as u8]),
        0xfd..=0xffff => {
            out.put(&[0xfd]);
            out.put(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.put(&[0xfe]);
            out.put(&(n as u32).to_le_bytes());
        }
        _ => {
            out.put(&[0xff]);
            out.put(&n.to_le_bytes());
        }
    }
}

/// Writes a compact-size-prefixed byte string.
pub fn put_var_bytes(out: &mut impl Sink, bytes: &[u8]) {
    put_compact_size(out, bytes.len() as u64);
    out.put(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn non_canonical_compact_size_is_rejected() {
        let mut r = Reader::new(&[0xfd, 0x10, 0x00]);
        assert_eq!(
            r.read_compact_size(),
            Err(DecodeError::NonCanonicalCompactSize { offset: 0 })
        );
    }

    #[test]
    fn huge_count_is_rejected_before_allocation() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 1, 2]);
        assert!(matches!(
            r.read_count("input", u64::MAX, 41),
            Err(DecodeError::CountTooLarge { limit: 0, .. })
        ));
    }

    #[test]
    fn truncated_read_reports_offset() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(
            r.read_u32_le(),
            Err(DecodeError::UnexpectedEnd {
                offset: 0,
                needed: 1
            })
        );
    }

    proptest! {
        #[test]
        fn compact_size_round_trips(n: u64) {
            let mut buf = Vec::new();
            put_compact_size(&mut buf, n);
            let mut r = Reader::new(&buf);
            prop_assert_eq!(r.read_compact_size().unwrap(), n);
            prop_assert!(r.finish("compact size").is_ok());
        }
    }
}
