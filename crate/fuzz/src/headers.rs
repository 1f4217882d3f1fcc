//! Header batches fed into the header chain (`shoal_core::chain::headers`), as a peer's
//! `Headers` answers feed it, and header files as `shoal-relay headers verify` reads them.
//!
//! Random bytes almost never link to a known header, so the target builds its headers from
//! the input's choices instead — which known header to build on, how far its time moves,
//! which version and `nBits` it claims, whether it is mined (regtest: about two tries) — and
//! feeds them in batches. Trees, forks, reorganisations, duplicates, unconnected and invalid
//! headers all come out of that.

use shoal_core::chain::{BlockHash, ChainParams, Header, HeaderChain, HeaderChainConfig};

use crate::alloc::bounded;
use crate::Bytes;

/// Most headers one run makes.
const MAX_HEADERS: usize = 160;

/// The first byte picks: an odd one reads the rest as a header file (concatenated 80-byte
/// headers, [`HeaderChain::verify_sequence`]); an even one builds batches of headers and
/// checks the chain after each: the best chain links, its work grows with height, no side
/// header has more work than the tip, the side branches stay within their cap, every report
/// says exactly how the best chain changed, and at the end the best chain verifies as a
/// header file to the same tip and work.
pub fn header_chain(data: &[u8]) {
    let params = ChainParams::REGTEST;
    let mut b = Bytes::new(data);
    let mode = b.u8();
    let now_s = u64::from(params.genesis.time) + u64::from(b.u32());
    if mode & 1 == 1 {
        let bytes = b.rest();
        let result = bounded("header file", bytes.len(), || {
            HeaderChain::verify_sequence(&params, bytes, now_s)
        });
        if let Ok(summary) = result {
            assert_eq!(summary.count, bytes.len() / 80);
            assert_eq!(bytes.len() % 80, 0);
        }
        return;
    }
    let config = HeaderChainConfig {
        max_side_headers: b.below(16),
        check_version: b.bool(),
        ..HeaderChainConfig::default()
    };
    let mut chain = HeaderChain::with_config(params, config);
    // Every header made, with its hash.
    let mut made: Vec<(Header, BlockHash)> = vec![(params.genesis, params.genesis.block_hash())];
    let mut fed = 0u64;
    while !b.is_empty() && made.len() < MAX_HEADERS {
        let batch_len = 1 + b.below(8);
        let mut batch = Vec::with_capacity(batch_len);
        for _ in 0..batch_len {
            let header = make_header(&mut b, &made, &batch, &params);
            batch.push(header);
        }
        let first_new = made.len();
        made.extend(batch.iter().map(|h| (*h, h.block_hash())));
        let before = best_hashes(&chain);
        let result = chain.accept_batch(&batch, now_s);
        let (outcome, processed) = match result {
            Ok(outcome) => (outcome, batch.len()),
            Err(error) => {
                assert!(error.index < batch.len());
                (error.partial.clone(), error.index + 1)
            }
        };
        fed += processed as u64;
        assert!(outcome.accepted + outcome.duplicates <= processed);
        // The report says exactly how the best chain changed.
        let mut replayed = before;
        if let Some(lowest) = outcome.disconnected.iter().map(|(h, _)| *h).min() {
            for (height, hash) in &outcome.disconnected {
                assert_eq!(
                    replayed.get(*height as usize),
                    Some(hash),
                    "disconnected {height}"
                );
            }
            replayed.truncate(lowest as usize);
        }
        for (height, hash) in &outcome.connected {
            assert_eq!(
                *height as usize,
                replayed.len(),
                "connected in height order"
            );
            replayed.push(*hash);
        }
        assert_eq!(replayed, best_hashes(&chain), "the batch's report");
        assert!(chain.side_len() <= config.max_side_headers);
        check_headers(&chain, &made[first_new..]);
    }
    check_chain(&chain);
    check_headers(&chain, &made);
    let stats = chain.stats();
    assert_eq!(stats.accepted + stats.rejected, fed);
    // The best chain is a valid header file.
    if config.check_version {
        let file: Vec<u8> = chain.best_headers().flat_map(|h| h.encode()).collect();
        let summary = HeaderChain::verify_sequence(&params, &file, now_s)
            .expect("the best chain verifies as a sequence");
        assert_eq!(summary.tip_hash, chain.tip_hash());
        assert_eq!(summary.tip_height, chain.tip_height());
        assert_eq!(summary.total_work, chain.total_work());
    }
}

/// A header built on a header already made (or in this batch), with the input's choices.
fn make_header(
    b: &mut Bytes<'_>,
    made: &[(Header, BlockHash)],
    batch: &[Header],
    params: &ChainParams,
) -> Header {
    let choice = b.u8();
    let (parent, parent_hash) = if choice & 1 == 1 && !batch.is_empty() {
        let last = batch[batch.len() - 1];
        (last, last.block_hash())
    } else if choice & 2 == 2 {
        made[made.len() - 1 - b.below(made.len().min(4))]
    } else {
        made[b.below(made.len())]
    };
    let prev_blockhash = if choice & 0x70 == 0x70 {
        let mut hash = [0u8; 32];
        hash[..4].copy_from_slice(&b.u32().to_le_bytes());
        BlockHash(hash)
    } else {
        parent_hash
    };
    let version = match b.u8() % 8 {
        0 => b.u32() as i32,
        1 => 1,
        _ => 4,
    };
    let step = i64::from(b.u8() as i8) * 60;
    let time = (i64::from(parent.time) + step).clamp(0, i64::from(u32::MAX)) as u32;
    let bits = if b.u8() % 16 == 0 {
        b.u32()
    } else {
        parent.bits
    };
    let mut merkle_root = [0u8; 32];
    merkle_root[..2].copy_from_slice(&b.u16().to_le_bytes());
    let mut header = Header {
        version,
        prev_blockhash,
        merkle_root: shoal_core::chain::Hash256(merkle_root),
        time,
        bits,
        nonce: u32::from(b.u8()),
    };
    if b.u8() % 8 != 0 {
        // Mined: regtest's target is met by about every other hash.
        for _ in 0..64 {
            if header.check_proof_of_work(params.pow_limit).is_ok() {
                break;
            }
            header.nonce = header.nonce.wrapping_add(1);
        }
    }
    header
}

fn best_hashes(chain: &HeaderChain) -> Vec<BlockHash> {
    (0..=chain.tip_height())
        .map(|h| chain.hash_at(h).expect("a best-chain height"))
        .collect()
}

/// The whole best chain: it links, its hashes and heights agree, its work grows.
fn check_chain(chain: &HeaderChain) {
    let tip = chain.tip_height();
    assert_eq!(chain.best_len(), tip as usize + 1);
    assert_eq!(chain.tip_hash(), chain.hash_at(tip).expect("the tip"));
    let mut work = None;
    for height in 0..=tip {
        let header = chain.header_at(height).expect("a best-chain header");
        let hash = header.block_hash();
        assert_eq!(chain.hash_at(height), Some(hash));
        assert_eq!(chain.height_of(&hash), Some(height));
        if height > 0 {
            assert_eq!(Some(header.prev_blockhash), chain.hash_at(height - 1));
        }
        let here = chain
            .chainwork_at(height)
            .expect("work at a best-chain height");
        assert!(work.is_none_or(|w| here > w), "work grows with height");
        work = Some(here);
    }
    assert_eq!(work, Some(chain.total_work()));
}

/// What the chain says of headers it was given: stored as given, none with more work than the
/// tip, and a best-chain one where the best chain has it.
fn check_headers(chain: &HeaderChain, headers: &[(Header, BlockHash)]) {
    for (header, hash) in headers {
        if let Some(info) = chain.get(hash) {
            assert_eq!(info.header, *header);
            assert!(
                info.chainwork <= chain.total_work(),
                "no side header has more work"
            );
            if info.in_best_chain {
                assert_eq!(chain.hash_at(info.height), Some(*hash));
            }
        }
    }
}
