//! Hostile input for every decoder of untrusted bytes (`Block::decode`, `Transaction::decode`,
//! `Header::decode`, `MerkleProof::decode`): truncation at every length, oversize counts,
//! trailing bytes, random bytes (never a panic), and a mutated Merkle tree that decodes fine
//! but must fail `Block::check`.

mod common;

use proptest::prelude::*;
use shoal_core::chain::block::BlockError;
use shoal_core::chain::encode::{put_compact_size, MAX_BLOCK_SERIALIZED_SIZE};
use shoal_core::chain::merkle::MerkleProof;
use shoal_core::chain::{Block, DecodeError, Header, Transaction, HEADER_SIZE};

fn with_count_after(prefix: &[u8], count: u64, filler: usize) -> Vec<u8> {
    let mut bytes = prefix.to_vec();
    put_compact_size(&mut bytes, count);
    bytes.extend(std::iter::repeat_n(0xab, filler));
    bytes
}

#[test]
fn oversize_transaction_count_is_refused_before_allocation() {
    let header = Header::default().encode();
    for count in [u64::MAX, 1 << 32, 400_001, 1_000] {
        let bytes = with_count_after(&header, count, 100);
        assert!(
            matches!(
                Block::decode(&bytes),
                Err(DecodeError::CountTooLarge {
                    what: "transaction",
                    ..
                })
            ),
            "count {count}"
        );
    }
}

#[test]
fn oversize_input_output_script_and_witness_counts_are_refused() {
    let version = 2i32.to_le_bytes();
    // Inputs.
    let bytes = with_count_after(&version, u64::from(u32::MAX), 50);
    assert!(matches!(
        Transaction::decode(&bytes),
        Err(DecodeError::CountTooLarge { what: "input", .. })
    ));
    // A script length far beyond the input.
    let mut prefix = version.to_vec();
    prefix.push(1);
    prefix.extend_from_slice(&[0; 36]);
    let bytes = with_count_after(&prefix, 0x0200_0000, 10);
    assert!(matches!(
        Transaction::decode(&bytes),
        Err(DecodeError::CountTooLarge {
            what: "script_sig",
            ..
        })
    ));
    // Outputs, after one empty input.
    let mut prefix = version.to_vec();
    prefix.push(1);
    prefix.extend_from_slice(&[0; 41]);
    let bytes = with_count_after(&prefix, 1 << 40, 10);
    assert!(matches!(
        Transaction::decode(&bytes),
        Err(DecodeError::CountTooLarge { what: "output", .. })
    ));
    // Witness items of a segwit transaction.
    let mut prefix = version.to_vec();
    prefix.extend_from_slice(&[0, 1, 1]);
    prefix.extend_from_slice(&[0; 41]);
    prefix.push(0); // no outputs
    let bytes = with_count_after(&prefix, u64::MAX, 10);
    assert!(matches!(
        Transaction::decode(&bytes),
        Err(DecodeError::CountTooLarge {
            what: "witness item",
            ..
        })
    ));
}

#[test]
fn oversize_inputs_are_refused_whole() {
    let bytes = vec![0u8; MAX_BLOCK_SERIALIZED_SIZE + 1];
    assert!(matches!(
        Block::decode(&bytes),
        Err(DecodeError::TooLarge { .. })
    ));
    assert!(matches!(
        Transaction::decode(&bytes),
        Err(DecodeError::TooLarge { .. })
    ));
    assert!(Header::decode(&bytes).is_err());
    assert!(MerkleProof::decode(&bytes).is_err());
}

#[test]
fn trailing_bytes_are_refused() {
    let header = Header::default().encode();
    let mut long = header.to_vec();
    long.push(0);
    assert!(matches!(
        Header::decode(&long),
        Err(DecodeError::TrailingBytes { count: 1, .. })
    ));
    let block = Block {
        header: Header::default(),
        txdata: vec![common::coinbase(0x8000, [0; 32])],
    };
    let mut bytes = block.encode();
    bytes.extend_from_slice(&[0, 0]);
    assert_eq!(
        Block::decode(&bytes),
        Err(DecodeError::TrailingBytes {
            what: "block",
            count: 2
        })
    );
}

#[test]
fn duplicated_tail_decodes_but_fails_the_check() {
    // Block 702861 with its tail duplicated so that the Merkle root stays the same.
    let mut block = Block::decode(bitcoin_test_data::blocks::mainnet_702861()).unwrap();
    assert!(block.check().is_ok());
    // The lowest level of odd length decides how many leaves the duplicate must span.
    let mut len = block.txdata.len();
    let mut span = 1;
    while len % 2 == 0 {
        len /= 2;
        span *= 2;
    }
    let tail = block.txdata[block.txdata.len() - span..].to_vec();
    block.txdata.extend(tail);
    let (root, mutated) = block.compute_merkle_root();
    assert_eq!(root, block.header.merkle_root, "same root: CVE-2012-2459");
    assert!(mutated);
    let decoded = Block::decode(&block.encode()).unwrap();
    assert_eq!(decoded.check(), Err(BlockError::MutatedMerkleTree));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn small_blocks_truncated_at_every_length_fail(block in common::block(4)) {
        let bytes = block.encode();
        prop_assert_eq!(Block::decode(&bytes).unwrap(), block.clone());
        for len in 0..bytes.len() {
            prop_assert!(Block::decode(&bytes[..len]).is_err(), "length {}", len);
        }
        for tx in &block.txdata {
            let bytes = tx.encode();
            for len in 0..bytes.len() {
                prop_assert!(Transaction::decode(&bytes[..len]).is_err());
            }
        }
        let header = block.header.encode();
        for len in 0..HEADER_SIZE {
            prop_assert!(Header::decode(&header[..len]).is_err());
        }
    }

    #[test]
    fn small_generated_block_with_duplicated_tail_fails_the_check(block in common::block(6)) {
        let mut block = block;
        prop_assume!(block.txdata.len() % 2 == 1 && block.txdata.len() > 1);
        let last = block.txdata.last().unwrap().clone();
        block.txdata.push(last);
        prop_assert_eq!(block.compute_merkle_root().0, block.header.merkle_root);
        prop_assert_eq!(block.check(), Err(BlockError::MutatedMerkleTree));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(block) = Block::decode(&bytes) {
            prop_assert_eq!(block.encode(), bytes.clone());
            let _ = block.check();
        }
        if let Ok(tx) = Transaction::decode(&bytes) {
            prop_assert_eq!(tx.encode(), bytes.clone());
        }
        if let Ok(header) = Header::decode(&bytes) {
            prop_assert_eq!(header.encode().to_vec(), bytes.clone());
        }
        if let Ok(proof) = MerkleProof::decode(&bytes) {
            prop_assert_eq!(proof.encode(), bytes.clone());
        }
    }

    /// Random bytes after a valid header and a small count reach deep into the block decoder.
    #[test]
    fn random_block_bodies_never_panic(
        count in 0u8..4,
        body in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut bytes = Header::default().encode().to_vec();
        bytes.push(count);
        bytes.extend_from_slice(&body);
        if let Ok(block) = Block::decode(&bytes) {
            prop_assert_eq!(block.encode(), bytes);
            let _ = block.check();
        }
    }
}

/// Issue 16: a block of a few million empty witness items (a spend of a future witness version
/// may carry any stack) once decoded into a 24-byte `Vec` per item, about 96 MB for a 4 MB
/// block. The witness is now kept as the bytes it was read from.
#[test]
fn a_block_of_empty_witness_items_decodes_into_its_own_bytes() {
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
    assert_eq!(bytes.len(), MAX_BLOCK_SERIALIZED_SIZE);
    let block = Block::decode(&bytes).expect("a decodable block");
    let witness = &block.txdata[0].input[0].witness;
    assert_eq!(witness.len(), items);
    assert_eq!(
        witness.serialized_items().len(),
        items,
        "one byte per empty item"
    );
    assert_eq!(witness.iter().filter(|item| item.is_empty()).count(), items);
    assert_eq!(block.encode(), bytes);
}
