use std::collections::HashMap;

use bitcoin::consensus::deserialize;

use super::*;
use crate::chain::block::WitnessCommitment;
use crate::chain::{ChainParams, HeaderChain, HeaderChainConfig, Target, Txid};

fn config(blocks: u32, txs_per_block: u32, seed: u64) -> GenerateConfig {
    GenerateConfig {
        blocks,
        txs_per_block,
        seed,
        ..GenerateConfig::default()
    }
}

fn bytes_of(blocks: &[Block]) -> Vec<Vec<u8>> {
    blocks.iter().map(Block::encode).collect()
}

fn median(times: &[u32]) -> u32 {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2]
}

#[test]
fn genesis_is_the_real_regtest_genesis() {
    let genesis = regtest_genesis_block();
    assert_eq!(
        genesis.block_hash().to_hex(),
        "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
    );
    assert_eq!(
        genesis.header.merkle_root.to_hex(),
        "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
    );
    let reference = bitcoin::blockdata::constants::genesis_block(bitcoin::Network::Regtest);
    assert_eq!(genesis.encode(), bitcoin::consensus::serialize(&reference));
    assert_eq!(genesis.check(), Ok(WitnessCommitment::Absent));
}

/// Every block: valid body, linked, real proof of work, BIP34 height, time above the median
/// time past; and the same verdicts from the `bitcoin` crate on the same bytes.
#[test]
fn generated_blocks_pass_every_check() {
    let config = config(30, 12, 1);
    let blocks = generate_chain(&config).unwrap();
    assert_eq!(blocks.len(), 30);
    let pow_limit = Target::from_compact(REGTEST_BITS).unwrap();
    let mut prev = regtest_genesis_block();
    let mut times = vec![prev.header.time];
    let (mut segwit_txs, mut legacy_txs) = (0, 0);
    for (i, block) in blocks.iter().enumerate() {
        let height = i as u32 + 1;
        assert_eq!(
            block.check(),
            Ok(WitnessCommitment::Valid),
            "block {height}"
        );
        assert_eq!(block.header.prev_blockhash, prev.block_hash());
        block.header.check_proof_of_work(pow_limit).unwrap();
        assert_eq!(block.bip34_height(), Some(height));
        assert!(block.header.version >= 4, "BIP34/65/66 versions");
        let window = &times[times.len().saturating_sub(11)..];
        assert!(block.header.time > median(window), "time above MTP");
        assert_eq!(block.header.time, config.block_time(height).unwrap());
        let expected_txs = if height == 1 { 1 } else { 13 };
        assert_eq!(block.txdata.len(), expected_txs, "block {height}");
        let bytes = block.encode();
        assert_eq!(Block::decode(&bytes).as_ref(), Ok(block));

        let theirs: bitcoin::Block = deserialize(&bytes).unwrap();
        assert_eq!(theirs.block_hash().to_string(), block.block_hash().to_hex());
        assert!(theirs.check_merkle_root());
        assert!(theirs.check_witness_commitment());
        if height > 16 {
            // rust-bitcoin 0.32 reads only data pushes; Core writes heights 1–16 as OP_1…OP_16.
            assert_eq!(theirs.bip34_block_height().unwrap(), u64::from(height));
        }
        theirs.header.validate_pow(theirs.header.target()).unwrap();
        assert_eq!(theirs.weight().to_wu() as usize, block.weight());

        for tx in &block.txdata[1..] {
            if tx.has_witness() {
                segwit_txs += 1;
            } else {
                legacy_txs += 1;
            }
        }
        times.push(block.header.time);
        prev = block.clone();
    }
    assert!(segwit_txs > 50, "{segwit_txs} segwit transactions");
    assert!(legacy_txs > 5, "{legacy_txs} legacy transactions");
}

/// Inputs spend outputs that exist and are unspent, of the kind their script or witness
/// claims; values are conserved and the coinbase claims no more than subsidy plus fees.
#[test]
fn transactions_spend_earlier_outputs_plausibly() {
    let blocks = generate_chain(&config(25, 20, 2)).unwrap();
    let mut unspent: HashMap<(Txid, u32), TxOut> = HashMap::new();
    for (i, block) in blocks.iter().enumerate() {
        let height = i as u32 + 1;
        let mut fees = 0u64;
        for tx in &block.txdata[1..] {
            assert_eq!(tx.lock_time, height - 1);
            let mut value_in = 0u64;
            for input in &tx.input {
                let key = (input.previous_output.txid, input.previous_output.vout);
                let spent = unspent
                    .remove(&key)
                    .expect("spends an existing unspent output");
                value_in += spent.value;
                match Spend::of(&spent.script_pubkey) {
                    Some(Spend::P2wpkh) => {
                        assert!(input.script_sig.is_empty());
                        assert_eq!(input.witness.len(), 2);
                        assert_eq!(input.witness[0].len(), 71);
                        assert_eq!(input.witness[0][0], 0x30);
                        assert_eq!(input.witness[1].len(), 33);
                    }
                    Some(Spend::P2pkh) => {
                        assert!(input.witness.is_empty());
                        assert_eq!(input.script_sig.len(), 1 + 71 + 1 + 33);
                    }
                    None => panic!("spent an output of unknown kind"),
                }
            }
            let value_out: u64 = tx.output.iter().map(|o| o.value).sum();
            assert!(value_out <= value_in);
            fees += value_in - value_out;
            for (vout, out) in tx.output.iter().enumerate() {
                unspent.insert((tx.txid(), vout as u32), out.clone());
            }
        }
        let coinbase = &block.txdata[0];
        let claimed: u64 = coinbase.output.iter().map(|o| o.value).sum();
        assert_eq!(claimed, regtest_subsidy_sat(height) + fees);
        for (vout, out) in coinbase.output.iter().enumerate() {
            unspent.insert((coinbase.txid(), vout as u32), out.clone());
        }
    }
}

#[test]
fn same_seed_same_bytes_different_seed_different_chain() {
    let a = bytes_of(&generate_chain(&config(12, 6, 99)).unwrap());
    let b = bytes_of(&generate_chain(&config(12, 6, 99)).unwrap());
    let c = bytes_of(&generate_chain(&config(12, 6, 100)).unwrap());
    assert_eq!(a, b);
    for (x, y) in a.iter().zip(&c) {
        assert_ne!(x, y);
    }
}

#[test]
fn resumed_generator_continues_the_same_chain() {
    let config = config(16, 8, 5);
    let full = generate_chain(&config).unwrap();
    let mut with_genesis = vec![regtest_genesis_block()];
    with_genesis.extend_from_slice(&full[..7]);
    for prefix in [&full[..7], &with_genesis[..]] {
        let mut generator = Generator::resume(&config, prefix).unwrap();
        assert_eq!(generator.height(), 7);
        assert_eq!(generator.tip_hash(), full[6].block_hash());
        for (i, expected) in full[7..].iter().enumerate() {
            let height = i as u32 + 8;
            let block = generator
                .next_block(config.block_time(height).unwrap())
                .unwrap();
            assert_eq!(&block, expected, "block {height}");
        }
    }
}

#[test]
fn resume_rejects_blocks_that_do_not_link() {
    let config = config(4, 2, 5);
    let blocks = generate_chain(&config).unwrap();
    let gapped = [blocks[0].clone(), blocks[2].clone()];
    assert!(matches!(
        Generator::resume(&config, &gapped),
        Err(GenerateError::NotOnTip { height: 2, .. })
    ));
}

#[test]
fn next_block_keeps_time_above_median_time_past() {
    let mut generator = Generator::new(&config(0, 3, 8));
    let mut last = 0;
    for _ in 0..15 {
        let mtp = generator.median_time_past();
        // A clock stuck in the past still yields valid, increasing-MTP blocks.
        let block = generator.next_block(0).unwrap();
        assert_eq!(block.header.time, mtp + 1);
        assert!(block.header.time >= last);
        last = block.header.time;
        assert_eq!(block.check(), Ok(WitnessCommitment::Valid));
    }
    assert_eq!(generator.height(), 15);
}

#[test]
fn target_size_fills_blocks_to_about_one_megabyte() {
    let config = GenerateConfig {
        blocks: 2,
        seed: 3,
        target_block_size_bytes: Some(1_000_000..=1_000_000),
        ..GenerateConfig::default()
    };
    let blocks = generate_chain(&config).unwrap();
    let big = &blocks[1];
    assert!(big.size() <= 1_000_000, "{}", big.size());
    assert!(
        big.size() > 1_000_000 - 2 * MAX_GENERATED_TX_BYTES,
        "{}",
        big.size()
    );
    assert!(big.weight() <= MAX_BLOCK_WEIGHT);
    assert!(big.txdata.len() > 1000);
    assert_eq!(big.check(), Ok(WitnessCommitment::Valid));
}

#[test]
fn a_target_range_gives_blocks_of_varied_sizes_within_it_again_after_a_resume() {
    let config = GenerateConfig {
        blocks: 40,
        seed: 5,
        target_block_size_bytes: Some(10_000..=100_000),
        ..GenerateConfig::default()
    };
    let blocks = generate_chain(&config).unwrap();
    // Block 1 (blocks[0]) holds only its coinbase (nothing to spend yet); the rest fill to
    // their targets.
    let sizes: Vec<usize> = blocks[1..].iter().map(|b| b.size()).collect();
    for &size in &sizes {
        assert!(size <= 100_000, "{size}");
        assert!(size > 10_000 - 2 * MAX_GENERATED_TX_BYTES, "{size}");
    }
    let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
    assert!(
        max - min > 50_000,
        "sizes spread over the range: {min}..{max}"
    );
    // Resumed halfway, the generator makes the same blocks.
    let mut resumed = Generator::resume(&config, &blocks[..20]).unwrap();
    for (index, expected) in blocks.iter().enumerate().skip(20) {
        let height = index as u32 + 1;
        let time = config.block_time(height).unwrap();
        assert_eq!(
            &resumed.next_block(time).unwrap(),
            expected,
            "height {height}"
        );
    }
}

#[test]
fn huge_transaction_count_stops_at_the_weight_limit() {
    let mut generator = Generator::new(&config(0, u32::MAX, 4));
    generator.next_block(0).unwrap();
    let block = generator.next_block(0).unwrap();
    assert!(block.weight() <= MAX_BLOCK_WEIGHT);
    assert!(block.weight() > MAX_BLOCK_WEIGHT - 4 * 2 * MAX_GENERATED_TX_BYTES - 4_000);
    assert_eq!(block.check(), Ok(WitnessCommitment::Valid));
}

#[test]
fn height_pushes_match_bip34_parsing() {
    for height in [
        1u32, 2, 16, 17, 127, 128, 255, 256, 32_767, 32_768, 702_861, 8_388_608,
    ] {
        let mut block = regtest_genesis_block();
        block.txdata[0].input[0].script_sig = script_number(height);
        assert_eq!(block.bip34_height(), Some(height), "height {height}");
    }
    assert_eq!(script_number(128), [0x02, 0x80, 0x00]);
    assert_eq!(script_number(16), [0x60]);
}

#[test]
fn block_time_overflow_is_an_error() {
    let config = GenerateConfig {
        start_time: Some(u32::MAX - 10),
        ..GenerateConfig::default()
    };
    assert_eq!(config.block_time(1), Ok(u32::MAX - 10));
    assert_eq!(
        config.block_time(2),
        Err(GenerateError::TimeOverflow { height: 2 })
    );
}

/// The generated chain is one the header chain accepts: header by header as a node receives
/// it, and as one byte sequence with or without genesis.
#[test]
fn header_chain_accepts_generated_chains() {
    let blocks = generate_chain(&config(40, 3, 11)).unwrap();
    let now_s = u64::from(blocks[39].header.time);
    let mut chain = HeaderChain::with_config(ChainParams::REGTEST, HeaderChainConfig::default());
    for block in &blocks {
        chain.accept(&block.header, now_s).unwrap();
    }
    assert_eq!(chain.tip_height(), 40);
    assert_eq!(chain.tip_hash(), blocks[39].block_hash());

    let mut bytes = regtest_genesis_block().header.encode().to_vec();
    for block in &blocks {
        bytes.extend_from_slice(&block.header.encode());
    }
    for from in [0, 80] {
        let summary =
            HeaderChain::verify_sequence(&ChainParams::REGTEST, &bytes[from..], now_s).unwrap();
        assert_eq!(summary.tip_height, 40);
        assert_eq!(summary.tip_hash, blocks[39].block_hash());
        // Regtest work is 2 per block, genesis included.
        assert_eq!(summary.total_work, crate::chain::U256::from_u64(2 * 41));
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Any seed and small shape: every block passes the body checks and the header chain,
    /// and a generator resumed anywhere continues identically.
    #[test]
    fn any_seed_gives_a_valid_resumable_chain(
        seed in proptest::num::u64::ANY,
        blocks in 1u32..8,
        txs_per_block in 0u32..12,
        cut in 0usize..8,
    ) {
        let config = config(blocks, txs_per_block, seed);
        let chain = generate_chain(&config).unwrap();
        let now_s = u64::from(chain[chain.len() - 1].header.time);
        let mut headers =
            HeaderChain::with_config(ChainParams::REGTEST, HeaderChainConfig::default());
        for block in &chain {
            proptest::prop_assert_eq!(block.check(), Ok(WitnessCommitment::Valid));
            proptest::prop_assert!(headers.accept(&block.header, now_s).is_ok());
        }
        let cut = cut.min(chain.len());
        let mut resumed = Generator::resume(&config, &chain[..cut]).unwrap();
        for (i, expected) in chain[cut..].iter().enumerate() {
            let height = (cut + i) as u32 + 1;
            let block = resumed.next_block(config.block_time(height).unwrap()).unwrap();
            proptest::prop_assert_eq!(&block, expected);
        }
    }
}
