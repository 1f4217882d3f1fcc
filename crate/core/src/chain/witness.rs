//! A transaction input's witness stack (BIP141), kept as compact as its serialization.
//!
//! A witness may hold any number of items: a spend of a future witness version is valid with
//! any stack, so a 4 MB block may carry millions of them, most of them empty. Kept as one
//! `Vec<u8>` per item, each empty item would cost a 24-byte `Vec` of its own for one byte of
//! input, and a hostile 4 MB block could make the decoder allocate about 96 MB (issue 16).
//! [`Witness`] keeps the stack as it is serialized instead, every item's compact-size length
//! and bytes in one buffer: decoding a witness allocates exactly the bytes it was read from.

use std::fmt;

use super::encode::{put_var_bytes, DecodeError, Reader};

/// A witness stack: items of bytes, in order. See the [module documentation](self).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Witness {
    /// Every item as its compact-size length and its bytes, in order.
    items: Vec<u8>,
    /// How many items `items` holds.
    len: usize,
}

impl Witness {
    /// An empty stack (a legacy input's).
    pub const fn new() -> Self {
        Self {
            items: Vec::new(),
            len: 0,
        }
    }

    /// Appends an item.
    pub fn push(&mut self, item: &[u8]) {
        put_var_bytes(&mut self.items, item);
        self.len += 1;
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the stack has no items.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes every item.
    pub fn clear(&mut self) {
        self.items.clear();
        self.len = 0;
    }

    /// The items, in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            reader: Reader::new(&self.items),
            left: self.len,
        }
    }

    /// The item at `index` (found by walking the items before it).
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        self.iter().nth(index)
    }

    /// The items as separate vectors.
    pub fn to_vec(&self) -> Vec<Vec<u8>> {
        self.iter().map(<[u8]>::to_vec).collect()
    }

    /// The items as serialized after the item count: each item's compact-size length and
    /// bytes.
    pub fn serialized_items(&self) -> &[u8] {
        &self.items
    }

    /// Reads a witness stack (its item count, then the items) at the reader's position. The
    /// count is bounded by the bytes left (each item takes at least its length byte), and
    /// nothing is allocated but one buffer of the bytes read.
    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = r.read_count("witness item", u64::MAX, 1)?;
        let start = r.position();
        for _ in 0..len {
            r.read_var_bytes("witness item")?;
        }
        Ok(Self {
            items: r.consumed_since(start).to_vec(),
            len,
        })
    }
}

/// The items of a [`Witness`], in order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    reader: Reader<'a>,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The buffer holds exactly `len` well-formed items (written by `push` or checked by
        // `decode_from`), so neither read can fail.
        let len = self.reader.read_compact_size().ok()?;
        self.reader.read_bytes(usize::try_from(len).ok()?).ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Witness {
    type Item = &'a [u8];
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<T: AsRef<[u8]>> FromIterator<T> for Witness {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        let mut witness = Witness::new();
        for item in items {
            witness.push(item.as_ref());
        }
        witness
    }
}

impl<T: AsRef<[u8]>> From<Vec<T>> for Witness {
    fn from(items: Vec<T>) -> Self {
        items.into_iter().collect()
    }
}

/// `witness[i]`: the item at `i`; panics past the last item, as a slice does.
impl std::ops::Index<usize> for Witness {
    type Output = [u8];

    fn index(&self, index: usize) -> &[u8] {
        match self.get(index) {
            Some(item) => item,
            None => panic!(
                "witness item {index} out of range for a stack of {}",
                self.len
            ),
        }
    }
}

impl fmt::Debug for Witness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_through_push_and_iteration() {
        let items: Vec<Vec<u8>> = vec![vec![], vec![7], vec![0xab; 300], vec![], vec![1; 70_000]];
        let witness = Witness::from(items.clone());
        assert_eq!(witness.len(), 5);
        assert_eq!(witness.to_vec(), items);
        assert_eq!(&witness[2], &items[2][..]);
        assert_eq!(witness.get(5), None);
        assert_eq!(witness.iter().len(), 5);
        let mut r = Reader::new(witness.serialized_items());
        for item in &items {
            assert_eq!(r.read_var_bytes("item").unwrap(), &item[..]);
        }
        assert!(r.finish("witness").is_ok());
    }

    #[test]
    fn a_stack_decodes_into_one_buffer_of_its_bytes() {
        let mut bytes = vec![3, 0, 2, 0xaa, 0xbb, 0];
        bytes.push(0x99); // not part of the stack
        let mut r = Reader::new(&bytes);
        let witness = Witness::decode_from(&mut r).unwrap();
        assert_eq!(r.position(), 6);
        assert_eq!(witness.to_vec(), vec![vec![], vec![0xaa, 0xbb], vec![]]);
        assert_eq!(witness.serialized_items(), &bytes[1..6]);
        assert_eq!(witness.items.capacity(), 5, "no more than the bytes read");
    }

    #[test]
    fn a_count_beyond_the_bytes_left_is_refused() {
        let mut r = Reader::new(&[5, 0, 0]);
        assert!(matches!(
            Witness::decode_from(&mut r),
            Err(DecodeError::CountTooLarge {
                what: "witness item",
                ..
            })
        ));
        let mut r = Reader::new(&[2, 0, 5, 1]);
        assert!(matches!(
            Witness::decode_from(&mut r),
            Err(DecodeError::CountTooLarge { .. })
        ));
    }
}
