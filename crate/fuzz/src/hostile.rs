//! Hostile blocks of the largest size a decoder takes, built to make it allocate as much as it
//! can for each byte: what the allocation bound of [`crate::alloc`] must hold against.

use shoal_core::chain::encode::{put_compact_size, MAX_BLOCK_SERIALIZED_SIZE};
use shoal_core::chain::Header;

/// A 4,000,000-byte block of one segwit transaction whose one input carries about four
/// million empty witness items (valid for a spend of a future witness version).
pub fn empty_witness_items() -> Vec<u8> {
    let mut bytes = Header::default().encode().to_vec();
    bytes.push(1); // one transaction
    bytes.extend(2i32.to_le_bytes());
    bytes.extend([0, 1, 1]); // segwit marker and flag, one input
    bytes.extend([0u8; 36 + 1 + 4]); // outpoint, empty script, sequence
    bytes.push(0); // no outputs
    let items = MAX_BLOCK_SERIALIZED_SIZE - bytes.len() - 5 - 4;
    put_compact_size(&mut bytes, items as u64);
    bytes.resize(bytes.len() + items, 0);
    bytes.extend(0u32.to_le_bytes()); // lock time
    bytes
}

/// A 4,000,000-byte block of the smallest transactions there are: 10 bytes each (version, no
/// inputs, no outputs, lock time), which decode (the block check refuses them).
pub fn empty_transactions() -> Vec<u8> {
    let mut bytes = Header::default().encode().to_vec();
    let count = (MAX_BLOCK_SERIALIZED_SIZE - bytes.len() - 5) / 10;
    put_compact_size(&mut bytes, count as u64);
    for _ in 0..count {
        bytes.extend([1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
    bytes
}

/// A 4,000,000-byte block of one transaction with as many empty outputs as fit (9 bytes
/// each).
pub fn empty_outputs() -> Vec<u8> {
    let mut bytes = Header::default().encode().to_vec();
    bytes.push(1);
    bytes.extend(1i32.to_le_bytes());
    bytes.push(1);
    bytes.extend([0u8; 36 + 1 + 4]);
    let count = (MAX_BLOCK_SERIALIZED_SIZE - bytes.len() - 5 - 4) / 9;
    put_compact_size(&mut bytes, count as u64);
    bytes.resize(bytes.len() + 9 * count, 0);
    bytes.extend(0u32.to_le_bytes());
    bytes
}
