//! Issue 16: "each empty witness item allocates 24 bytes, so a 4 MB block can allocate about
//! 96 MB". The largest hostile blocks, measured by the counting allocator: decoding allocates
//! at most a small multiple of the block's size (the `block` target's bound, `alloc::
//! DECODE_FACTOR`), and a witness no more than its own bytes. One test, so that nothing else
//! allocates while it measures.

use shoal_core::chain::encode::MAX_BLOCK_SERIALIZED_SIZE;
use shoal_core::chain::Block;
use shoal_fuzz::{alloc, hostile};

#[global_allocator]
static GLOBAL: &stats_alloc::StatsAlloc<std::alloc::System> = &alloc::COUNTING;

#[test]
fn the_largest_hostile_blocks_allocate_a_small_multiple_of_their_size() {
    assert!(alloc::installed());
    for (name, bytes, factor) in [
        // The witness: its bytes, once (and the block's few structures).
        ("empty witness items", hostile::empty_witness_items(), 2),
        // 56 bytes of `Transaction` for every 10 bytes: the worst case there is.
        ("empty transactions", hostile::empty_transactions(), 6),
        // 32 bytes of `TxOut` for every 9 bytes.
        ("empty outputs", hostile::empty_outputs(), 4),
    ] {
        assert!(
            (MAX_BLOCK_SERIALIZED_SIZE - 10..=MAX_BLOCK_SERIALIZED_SIZE).contains(&bytes.len()),
            "{name}: a block of the largest size"
        );
        let (block, allocated) = alloc::measure(|| Block::decode(&bytes));
        let block = block.unwrap_or_else(|e| panic!("{name}: {e}"));
        eprintln!(
            "{name}: {} bytes decode with {allocated} bytes allocated ({:.2} per byte)",
            bytes.len(),
            allocated as f64 / bytes.len() as f64
        );
        assert!(
            allocated <= factor * bytes.len(),
            "{name}: {allocated} bytes allocated for a {}-byte block",
            bytes.len()
        );
        assert!(factor <= alloc::DECODE_FACTOR);
        drop(block);
        // And through the fuzz target, which checks the same bound and re-encodes.
        shoal_fuzz::chain::block(&bytes);
    }
}
