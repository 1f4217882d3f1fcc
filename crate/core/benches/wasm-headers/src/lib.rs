//! The header chain's speed in a JavaScript engine's WebAssembly, against `sha256d` of each
//! header in the same run: the browser target is at least 50,000 verified headers a second.
//! Plain exports, no wasm-bindgen; `run.mjs` times them. From this directory:
//!
//! ```text
//! cargo build --release --target wasm32-unknown-unknown
//! node run.mjs target/wasm32-unknown-unknown/release/shoal_wasm_headers_bench.wasm
//! ```
use std::cell::RefCell;
use shoal_core::chain::{sha256d, ChainParams, Hash256, Header, HeaderChain};

thread_local! { static BYTES: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) }; }
const NOW_S: u64 = 4_000_000_000;

#[no_mangle]
pub extern "C" fn prepare(n: u32) -> u32 {
    let params = ChainParams::REGTEST;
    let mut prev = params.genesis;
    let mut out = Vec::with_capacity(n as usize * 80);
    for i in 0..n {
        let mut root = [0u8; 32];
        root[..4].copy_from_slice(&i.to_le_bytes());
        let mut h = Header { version: 0x2000_0000, prev_blockhash: prev.block_hash(), merkle_root: Hash256(root), time: prev.time + 600, bits: 0x207fffff, nonce: 0 };
        while h.check_proof_of_work(params.pow_limit).is_err() { h.nonce += 1; }
        out.extend_from_slice(&h.encode());
        prev = h;
    }
    BYTES.with(|b| *b.borrow_mut() = out);
    n
}

#[no_mangle]
pub extern "C" fn hash_only() -> u32 {
    BYTES.with(|b| b.borrow().chunks_exact(80).map(|c| sha256d(c)[0] as u32).sum())
}

#[no_mangle]
pub extern "C" fn verify() -> u32 {
    BYTES.with(|b| HeaderChain::verify_sequence(&ChainParams::REGTEST, &b.borrow(), NOW_S).map(|s| s.tip_height).unwrap_or(0))
}

#[no_mangle]
pub extern "C" fn accept_each() -> u32 {
    BYTES.with(|b| {
        let mut chain = HeaderChain::new(ChainParams::REGTEST);
        for c in b.borrow().chunks_exact(80) {
            let h = Header::decode(c).unwrap();
            chain.accept(&h, NOW_S).unwrap();
        }
        chain.tip_height()
    })
}
