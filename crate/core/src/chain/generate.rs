//! A deterministic regtest chain generator: the block source for tests, the simulator and the
//! relay's regtest mode (new blocks for S14/S15; the chain that S18 says the cluster holds).
//!
//! # Overview
//!
//! [`Generator`] grows a real Bitcoin regtest chain from the real regtest genesis block, and
//! the same seed always grows the same chain, byte for byte. Every block it makes:
//!
//! - has real proof of work at regtest difficulty (`nBits` `0x207fffff`; the nonce is ground);
//! - carries its height in the coinbase as BIP34 requires, and version `0x20000000`;
//! - has a time strictly above the median time past of the eleven blocks before it;
//! - commits to its witness data in the coinbase (BIP141), with the 32-byte reserved value;
//! - holds transactions that spend earlier outputs: P2WPKH outputs spent with a two-item
//!   witness (a 71-byte DER-shaped signature and a 33-byte compressed key) and P2PKH outputs
//!   spent with the same two pushes in the script, so blocks mix segwit and legacy
//!   transactions; values are conserved, each transaction pays a fee, and the coinbase claims
//!   the regtest subsidy plus the fees.
//!
//! What is *not* real: signatures and keys are random bytes of the right sizes and shapes, and
//! coinbase outputs may be spent before they are 100 blocks deep (a regtest chain would
//! otherwise need 100 empty blocks before its first transaction). Every block passes
//! [`Block::check`] and the header chain's rules; no script is ever executed.
//!
//! Block `h` is drawn from a generator seeded with `(seed, h)`, from the set of outputs the
//! chain left unspent before it. [`Generator::resume`] rebuilds that set from stored blocks,
//! so a relay that restarts continues its chain exactly as if it had never stopped.
//!
//! # Usage
//!
//! ```
//! use shoal_core::chain::generate::{generate_chain, GenerateConfig, Generator};
//!
//! let config = GenerateConfig { blocks: 3, txs_per_block: 4, seed: 7, ..Default::default() };
//! let blocks = generate_chain(&config).unwrap();
//! assert_eq!(blocks.len(), 3);
//! assert!(blocks.iter().all(|b| b.check().is_ok()));
//!
//! // Later: one more block on top, at a time the caller chooses (the core reads no clock).
//! let mut generator = Generator::resume(&config, &blocks).unwrap();
//! let next = generator.next_block(1_700_000_000).unwrap();
//! assert_eq!(next.header.prev_blockhash, blocks[2].block_hash());
//! assert_eq!(next.bip34_height(), Some(4));
//! ```

use std::collections::{HashMap, VecDeque};
use std::ops::RangeInclusive;

use super::block::{Block, MAX_BLOCK_WEIGHT, WITNESS_COMMITMENT_PREFIX};
use super::hash::{sha256d_pair, BlockHash, Hash256};
use super::header::{Header, HEADER_SIZE};
use super::params::{ChainParams, MEDIAN_TIME_SPAN};
use super::transaction::{OutPoint, Transaction, TxIn, TxOut};

use crate::base::rng::{mix, splitmix64, Rng};

mod build;

pub use build::{build_chain, seal_block, Seal};

/// Regtest's proof-of-work limit and the `nBits` of every regtest block (regtest never
/// retargets).
pub const REGTEST_BITS: u32 = ChainParams::REGTEST.genesis.bits;

/// The version of generated blocks: BIP9 version bits with no deployment signalled.
pub const GENERATED_BLOCK_VERSION: i32 = 0x2000_0000;

/// Regtest's subsidy halving interval, in blocks.
pub const REGTEST_HALVING_INTERVAL: u32 = 150;

/// The default spacing of generated block times, in seconds.
pub const DEFAULT_BLOCK_INTERVAL_S: u32 = 600;

/// The most unspent outputs the generator remembers; beyond this the oldest-placed are
/// forgotten (they stay unspent forever). Bounds memory on long runs.
pub const MAX_COIN_POOL: usize = 100_000;

/// An upper bound on the serialized size of any transaction the generator builds
/// (three inputs, three payment outputs and a 40-byte `OP_RETURN`).
const MAX_GENERATED_TX_BYTES: usize = 700;

/// An upper bound on the generated coinbase's serialized size.
const MAX_GENERATED_COINBASE_BYTES: usize = 300;

/// An upper bound on the header and transaction count of a block.
const BLOCK_PREFIX_BYTES: usize = HEADER_SIZE + 5;

/// Satoshis per bitcoin.
const COIN: u64 = 100_000_000;

/// Outputs below this value are not split further.
const MIN_SPLIT_VALUE_SAT: u64 = 10_000;

/// The time of the regtest genesis block.
pub const REGTEST_GENESIS_TIME: u32 = ChainParams::REGTEST.genesis.time;

/// The script of the genesis coinbase: `nBits` of the first block, `4`, and The Times'
/// headline of 3 January 2009.
const GENESIS_COINBASE_SCRIPT_PREFIX: [u8; 8] = [0x04, 0xff, 0xff, 0x00, 0x1d, 0x01, 0x04, 0x45];
const GENESIS_HEADLINE: &[u8; 69] =
    b"The Times 03/Jan/2009 Chancellor on brink of second bailout for banks";
/// The uncompressed key the genesis coinbase pays to.
const GENESIS_PUBKEY: [u8; 65] = hex_array(
    "04678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb6\
     49f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5f",
);

/// Decodes a hex string at compile time (a bad constant fails the build).
const fn hex_array<const N: usize>(s: &str) -> [u8; N] {
    const fn digit(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not a lowercase hex digit"),
        }
    }
    let bytes = s.as_bytes();
    assert!(bytes.len() == 2 * N, "hex constant of the wrong length");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = (digit(bytes[2 * i]) << 4) | digit(bytes[2 * i + 1]);
        i += 1;
    }
    out
}

/// The regtest genesis block: mainnet's genesis transaction under the regtest genesis header
/// of [`ChainParams::REGTEST`] (time 1296688602, `nBits` `0x207fffff`, nonce 2). Its hash is
/// `0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206`.
pub fn regtest_genesis_block() -> Block {
    let mut script_sig = GENESIS_COINBASE_SCRIPT_PREFIX.to_vec();
    script_sig.extend_from_slice(GENESIS_HEADLINE);
    let mut script_pubkey = vec![0x41];
    script_pubkey.extend_from_slice(&GENESIS_PUBKEY);
    script_pubkey.push(0xac); // OP_CHECKSIG
    let coinbase = Transaction {
        version: 1,
        input: vec![TxIn {
            previous_output: OutPoint::NULL,
            script_sig,
            sequence: u32::MAX,
            witness: Default::default(),
        }],
        output: vec![TxOut {
            value: 50 * COIN,
            script_pubkey,
        }],
        lock_time: 0,
    };
    let block = Block {
        header: ChainParams::REGTEST.genesis,
        txdata: vec![coinbase],
    };
    debug_assert!(block.check_merkle_root());
    block
}

/// The regtest block subsidy at `height`, in satoshis.
pub fn regtest_subsidy_sat(height: u32) -> u64 {
    let halvings = height / REGTEST_HALVING_INTERVAL;
    if halvings >= 64 {
        0
    } else {
        (50 * COIN) >> halvings
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateConfig {
    /// How many blocks [`generate_chain`] makes after genesis.
    pub blocks: u32,
    /// Transactions per block besides the coinbase (fewer while there is little to spend:
    /// block 1 has nothing before it to spend and holds only its coinbase). Ignored when
    /// `target_block_size_bytes` is set.
    pub txs_per_block: u32,
    /// The seed every block is derived from.
    pub seed: u64,
    /// The time of block 1; the genesis time plus one interval when `None`.
    pub start_time: Option<u32>,
    /// The spacing of block times in [`GenerateConfig::block_time`], in seconds.
    pub block_interval_s: u32,
    /// When set, fill each block with transactions until its serialized size would pass its
    /// target (up to what the 4,000,000 weight limit allows; `1_000_000..=1_000_000` makes
    /// ~1 MB blocks). Each block's target is drawn from this range, uniformly, as a function of
    /// the seed and the height alone (a resumed generator draws the same ones), so a chain can
    /// have blocks of varied sizes, as real chains do.
    pub target_block_size_bytes: Option<RangeInclusive<usize>>,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        Self {
            blocks: 10,
            txs_per_block: 10,
            seed: 0,
            start_time: None,
            block_interval_s: DEFAULT_BLOCK_INTERVAL_S,
            target_block_size_bytes: None,
        }
    }
}

impl GenerateConfig {
    /// The planned time of the block at `height` (≥ 1): `start_time + (height − 1) × interval`.
    pub fn block_time(&self, height: u32) -> Result<u32, GenerateError> {
        let start = self
            .start_time
            .unwrap_or(REGTEST_GENESIS_TIME + self.block_interval_s);
        let steps = height.saturating_sub(1);
        steps
            .checked_mul(self.block_interval_s)
            .and_then(|offset| start.checked_add(offset))
            .ok_or(GenerateError::TimeOverflow { height })
    }
}

/// Why a block could not be generated or a chain not resumed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// The block time would pass the largest `u32` timestamp (the year 2106).
    #[error("the time of block {height} does not fit in 32 bits")]
    TimeOverflow {
        /// The block's height.
        height: u32,
    },
    /// The chain is already at the largest height.
    #[error("the chain is at the largest height a u32 can count")]
    HeightOverflow,
    /// No nonce gave a hash under the target (about 2^-4,000,000,000 likely at regtest).
    #[error("no nonce meets the target for block {height}")]
    NonceSpaceExhausted {
        /// The block's height.
        height: u32,
    },
    /// A block given to [`Generator::resume`] does not build on the one before it.
    #[error("block {height} builds on {found}, not on the tip {expected}")]
    NotOnTip {
        /// The height the block would have had.
        height: u32,
        /// The hash of the block before it.
        expected: BlockHash,
        /// The previous-block hash the block names.
        found: BlockHash,
    },
}

/// Generates `config.blocks` blocks on top of the regtest genesis block (heights 1, 2, …),
/// block `h` at [`GenerateConfig::block_time`]`(h)`.
pub fn generate_chain(config: &GenerateConfig) -> Result<Vec<Block>, GenerateError> {
    let mut generator = Generator::new(config);
    let mut blocks = Vec::with_capacity(config.blocks as usize);
    for height in 1..=config.blocks {
        blocks.push(generator.next_block(config.block_time(height)?)?);
    }
    Ok(blocks)
}

/// How an output the generator made is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spend {
    /// `OP_0 <20 bytes>`: spent with an empty script and a signature-and-key witness.
    P2wpkh,
    /// `OP_DUP OP_HASH160 <20 bytes> OP_EQUALVERIFY OP_CHECKSIG`: spent with a script
    /// pushing a signature and a key.
    P2pkh,
}

impl Spend {
    /// Recognises the two output kinds the generator pays to.
    fn of(script: &[u8]) -> Option<Self> {
        match script {
            [0x00, 0x14, rest @ ..] if rest.len() == 20 => Some(Self::P2wpkh),
            [0x76, 0xa9, 0x14, middle @ .., 0x88, 0xac] if middle.len() == 20 => Some(Self::P2pkh),
            _ => None,
        }
    }

    /// A fresh output script of this kind with a random 20-byte hash.
    fn script(self, rng: &mut Rng) -> Vec<u8> {
        let hash: [u8; 20] = rng.bytes();
        match self {
            Self::P2wpkh => [&[0x00, 0x14][..], &hash].concat(),
            Self::P2pkh => [&[0x76, 0xa9, 0x14][..], &hash, &[0x88, 0xac]].concat(),
        }
    }
}

/// An output the generator may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Coin {
    outpoint: OutPoint,
    value_sat: u64,
    spend: Spend,
}

/// The spendable outputs, with O(1) random removal and lookup by outpoint. The order of
/// `coins` is a function of the chain alone, so [`Generator::resume`] rebuilds it exactly.
#[derive(Debug, Clone, Default)]
struct CoinPool {
    coins: Vec<Coin>,
    index: HashMap<OutPoint, usize>,
}

impl CoinPool {
    fn len(&self) -> usize {
        self.coins.len()
    }

    fn push(&mut self, coin: Coin) {
        if let std::collections::hash_map::Entry::Vacant(e) = self.index.entry(coin.outpoint) {
            e.insert(self.coins.len());
            self.coins.push(coin);
        }
    }

    fn take(&mut self, i: usize) -> Coin {
        let coin = self.coins.swap_remove(i);
        self.index.remove(&coin.outpoint);
        if let Some(moved) = self.coins.get(i) {
            self.index.insert(moved.outpoint, i);
        }
        debug_assert_eq!(self.index.len(), self.coins.len());
        coin
    }

    fn take_outpoint(&mut self, outpoint: &OutPoint) -> Option<Coin> {
        let i = *self.index.get(outpoint)?;
        Some(self.take(i))
    }

    /// Adds the outputs of `tx` that the generator knows how to spend.
    fn add_outputs(&mut self, tx: &Transaction) {
        let txid = tx.txid();
        for (vout, out) in tx.output.iter().enumerate() {
            if let Some(spend) = Spend::of(&out.script_pubkey) {
                self.push(Coin {
                    outpoint: OutPoint {
                        txid,
                        vout: vout as u32,
                    },
                    value_sat: out.value,
                    spend,
                });
            }
        }
    }

    /// Forgets coins from the front until at most `cap` remain.
    fn evict_to(&mut self, cap: usize) {
        while self.coins.len() > cap {
            self.take(0);
        }
    }
}

/// Grows a regtest chain one block at a time. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct Generator {
    seed: u64,
    txs_per_block: u32,
    target_block_size_bytes: Option<RangeInclusive<usize>>,
    tip: Header,
    height: u32,
    /// The times of the last (up to) eleven blocks, oldest first.
    recent_times: VecDeque<u32>,
    pool: CoinPool,
}

impl Generator {
    /// A generator at the regtest genesis block (height 0).
    pub fn new(config: &GenerateConfig) -> Self {
        let genesis = regtest_genesis_block();
        Self {
            seed: config.seed,
            txs_per_block: config.txs_per_block,
            target_block_size_bytes: config.target_block_size_bytes.clone(),
            tip: genesis.header,
            height: 0,
            recent_times: VecDeque::from([genesis.header.time]),
            pool: CoinPool::default(),
        }
    }

    /// A generator on top of `blocks`, a chain from the regtest genesis (which may be
    /// included or left out) in height order, as [`generate_chain`] or an earlier generator
    /// made it. With the same `config`, the blocks it makes next are those an uninterrupted
    /// generator would have made at the same times.
    pub fn resume(config: &GenerateConfig, blocks: &[Block]) -> Result<Self, GenerateError> {
        let mut generator = Self::new(config);
        let genesis_hash = generator.tip.block_hash();
        let after_genesis = match blocks.first() {
            Some(first) if first.block_hash() == genesis_hash => &blocks[1..],
            _ => blocks,
        };
        for block in after_genesis {
            let height = generator
                .height
                .checked_add(1)
                .ok_or(GenerateError::HeightOverflow)?;
            let expected = generator.tip.block_hash();
            if block.header.prev_blockhash != expected {
                return Err(GenerateError::NotOnTip {
                    height,
                    expected,
                    found: block.header.prev_blockhash,
                });
            }
            for tx in block.txdata.iter().skip(1) {
                for input in &tx.input {
                    generator.pool.take_outpoint(&input.previous_output);
                }
                generator.pool.add_outputs(tx);
            }
            generator.advance(block);
        }
        Ok(generator)
    }

    /// The height of the tip (0 at genesis).
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The tip's header.
    pub fn tip(&self) -> &Header {
        &self.tip
    }

    /// The tip's hash.
    pub fn tip_hash(&self) -> BlockHash {
        self.tip.block_hash()
    }

    /// The median time of the last eleven blocks (fewer near genesis): a new block's time
    /// must be above it.
    pub fn median_time_past(&self) -> u32 {
        let mut times: Vec<u32> = self.recent_times.iter().copied().collect();
        times.sort_unstable();
        times[times.len() / 2]
    }

    /// How many outputs the generator can currently spend.
    pub fn spendable_outputs(&self) -> usize {
        self.pool.len()
    }
    /// The target size of the block at `height`: uniform over `range`, a function of the seed
    /// and the height alone (it draws nothing from the block's random stream, so a fixed
    /// target makes the same blocks as before ranges existed).
    fn target_size(&self, height: u32, range: &RangeInclusive<usize>) -> usize {
        let (low, high) = (*range.start(), *range.end());
        if high <= low {
            return low;
        }
        let span = (high - low) as u64 + 1;
        low + (mix(&[self.seed, u64::from(height), 0x5349_5a45]) % span) as usize
    }

    /// Makes the block at height `self.height() + 1` on top of the tip, at `time`, raised to
    /// one second above the median time past if it is not already above it.
    pub fn next_block(&mut self, time: u32) -> Result<Block, GenerateError> {
        let height = self
            .height
            .checked_add(1)
            .ok_or(GenerateError::HeightOverflow)?;
        let time = time.max(
            self.median_time_past()
                .checked_add(1)
                .ok_or(GenerateError::TimeOverflow { height })?,
        );
        let mut seed_state = self.seed;
        let mut rng = Rng::new(splitmix64(&mut seed_state) ^ u64::from(height));

        let (max_txs, max_size) = match &self.target_block_size_bytes {
            Some(range) => (usize::MAX, self.target_size(height, range)),
            None => (self.txs_per_block as usize, usize::MAX),
        };
        let weight_budget =
            MAX_BLOCK_WEIGHT - 4 * (BLOCK_PREFIX_BYTES + MAX_GENERATED_COINBASE_BYTES);
        let mut size = BLOCK_PREFIX_BYTES + MAX_GENERATED_COINBASE_BYTES;
        let mut weight = 0usize;
        let mut fees_sat = 0u64;
        // Index 0 is a placeholder for the coinbase, which needs the fees and the witness
        // root of everything after it.
        let mut txdata = vec![Transaction::default()];
        while txdata.len() - 1 < max_txs
            && self.pool.len() > 0
            && size + MAX_GENERATED_TX_BYTES <= max_size
            && weight + 4 * MAX_GENERATED_TX_BYTES <= weight_budget
        {
            let (tx, fee_sat) = self.spending_transaction(&mut rng, height);
            debug_assert!(tx.total_size() <= MAX_GENERATED_TX_BYTES);
            size += tx.total_size();
            weight += tx.weight();
            fees_sat += fee_sat;
            self.pool.add_outputs(&tx);
            txdata.push(tx);
        }

        let mut block = Block {
            header: Header {
                version: GENERATED_BLOCK_VERSION,
                prev_blockhash: self.tip.block_hash(),
                merkle_root: Hash256::ZERO,
                time,
                bits: REGTEST_BITS,
                nonce: 0,
            },
            txdata,
        };
        let reserved = [0u8; 32];
        let commitment = sha256d_pair(&block.witness_root().0, &reserved);
        block.txdata[0] = coinbase(
            &mut rng,
            height,
            regtest_subsidy_sat(height) + fees_sat,
            commitment,
            reserved,
        );
        debug_assert!(block.txdata[0].total_size() <= MAX_GENERATED_COINBASE_BYTES);
        seal_block(&mut block, height, Seal::Target)?;

        debug_assert!(block.weight() <= MAX_BLOCK_WEIGHT);
        self.advance(&block);
        Ok(block)
    }

    /// Moves the tip to `block`, whose transactions the pool has already seen except for
    /// the coinbase.
    fn advance(&mut self, block: &Block) {
        if let Some(coinbase) = block.txdata.first() {
            self.pool.add_outputs(coinbase);
        }
        self.pool.evict_to(MAX_COIN_POOL);
        self.tip = block.header;
        self.height += 1;
        self.recent_times.push_back(block.header.time);
        if self.recent_times.len() > MEDIAN_TIME_SPAN {
            self.recent_times.pop_front();
        }
    }

    /// A transaction spending one to three coins from the pool into one to three new
    /// outputs (sometimes with an `OP_RETURN` note), and the fee it pays.
    fn spending_transaction(&mut self, rng: &mut Rng, height: u32) -> (Transaction, u64) {
        let wanted_inputs = match rng.below(10) {
            0..=5 => 1,
            6..=8 => 2,
            _ => 3,
        };
        let coins: Vec<Coin> = (0..wanted_inputs.min(self.pool.len()))
            .map(|_| {
                let i = rng.index(self.pool.len());
                self.pool.take(i)
            })
            .collect();
        let total_in_sat: u64 = coins.iter().map(|c| c.value_sat).sum();
        let input = coins
            .iter()
            .map(|coin| {
                let signature = fake_signature(rng);
                let pubkey = fake_pubkey(rng);
                let (script_sig, witness) = match coin.spend {
                    Spend::P2wpkh => (Vec::new(), vec![signature, pubkey]),
                    Spend::P2pkh => {
                        let mut script = Vec::with_capacity(2 + signature.len() + pubkey.len());
                        push_data(&mut script, &signature);
                        push_data(&mut script, &pubkey);
                        (script, Vec::new())
                    }
                };
                TxIn {
                    previous_output: coin.outpoint,
                    script_sig,
                    sequence: 0xffff_fffd,
                    witness: witness.into(),
                }
            })
            .collect();

        let wanted_outputs: u64 = match rng.below(10) {
            0..=1 => 1,
            2..=7 => 2,
            _ => 3,
        };
        let payments = wanted_outputs.min((total_in_sat / MIN_SPLIT_VALUE_SAT).max(1));
        let mut output: Vec<TxOut> = (0..payments)
            .map(|_| {
                let spend = if rng.percent(75) {
                    Spend::P2wpkh
                } else {
                    Spend::P2pkh
                };
                TxOut {
                    value: 0,
                    script_pubkey: spend.script(rng),
                }
            })
            .collect();
        if rng.percent(5) {
            let mut note = vec![0u8; 8 + rng.index(33)];
            rng.fill(&mut note);
            let mut script = vec![0x6a]; // OP_RETURN
            push_data(&mut script, &note);
            output.push(TxOut {
                value: 0,
                script_pubkey: script,
            });
        }
        let mut tx = Transaction {
            version: 2,
            input,
            output,
            // Anti-fee-sniping, as wallets do: final at this height, not before.
            lock_time: height - 1,
        };

        let vsize = (tx.weight() as u64).div_ceil(4);
        let fee_sat = (vsize * (1 + rng.below(20))).min(total_in_sat / 2);
        let mut remaining_sat = total_in_sat - fee_sat;
        for (i, out) in tx.output.iter_mut().take(payments as usize).enumerate() {
            let left = payments - i as u64;
            out.value = if left == 1 {
                remaining_sat
            } else {
                let share = remaining_sat / left;
                (share / 2 + rng.below(share.max(1))).min(remaining_sat)
            };
            remaining_sat -= out.value;
        }
        debug_assert_eq!(remaining_sat, 0);
        (tx, fee_sat)
    }
}

/// The coinbase of the block at `height`: BIP34 height and an extra nonce in the script,
/// the reward to one or two outputs, and the witness commitment with its reserved value.
fn coinbase(
    rng: &mut Rng,
    height: u32,
    reward_sat: u64,
    commitment: [u8; 32],
    reserved: [u8; 32],
) -> Transaction {
    let mut script_sig = script_number(height);
    let extra_nonce: [u8; 8] = rng.bytes();
    push_data(&mut script_sig, &extra_nonce);
    let mut output = Vec::with_capacity(3);
    if rng.percent(30) {
        let first = reward_sat / 2;
        output.push(TxOut {
            value: first,
            script_pubkey: Spend::P2pkh.script(rng),
        });
        output.push(TxOut {
            value: reward_sat - first,
            script_pubkey: Spend::P2wpkh.script(rng),
        });
    } else {
        output.push(TxOut {
            value: reward_sat,
            script_pubkey: Spend::P2wpkh.script(rng),
        });
    }
    let mut commitment_script = WITNESS_COMMITMENT_PREFIX.to_vec();
    commitment_script.extend_from_slice(&commitment);
    output.push(TxOut {
        value: 0,
        script_pubkey: commitment_script,
    });
    Transaction {
        version: 2,
        input: vec![TxIn {
            previous_output: OutPoint::NULL,
            script_sig,
            sequence: u32::MAX,
            witness: vec![reserved.to_vec()].into(),
        }],
        output,
        lock_time: 0,
    }
}

/// The script that pushes `n` as Bitcoin Core's `CScript() << n` does: `OP_0`, `OP_1`…`OP_16`,
/// or the minimal little-endian script number.
fn script_number(n: u32) -> Vec<u8> {
    match n {
        0 => vec![0x00],
        1..=16 => vec![0x50 + n as u8],
        _ => {
            let mut bytes: Vec<u8> = n.to_le_bytes().to_vec();
            while bytes.last() == Some(&0) {
                bytes.pop();
            }
            if bytes.last().is_some_and(|b| b & 0x80 != 0) {
                bytes.push(0); // keep it positive
            }
            let mut script = vec![bytes.len() as u8];
            script.extend_from_slice(&bytes);
            script
        }
    }
}

/// Appends a push of `data` (at most 75 bytes: a direct push).
fn push_data(script: &mut Vec<u8>, data: &[u8]) {
    assert!(data.len() <= 75, "generator pushes are direct pushes");
    script.push(data.len() as u8);
    script.extend_from_slice(data);
}

/// 71 random bytes shaped as a DER ECDSA signature with `SIGHASH_ALL`.
fn fake_signature(rng: &mut Rng) -> Vec<u8> {
    let r: [u8; 32] = rng.bytes();
    let s: [u8; 32] = rng.bytes();
    let mut sig = Vec::with_capacity(71);
    sig.extend_from_slice(&[0x30, 0x44, 0x02, 0x20]);
    sig.extend_from_slice(&r);
    sig.extend_from_slice(&[0x02, 0x20]);
    sig.extend_from_slice(&s);
    sig.push(0x01);
    sig
}

/// 33 random bytes shaped as a compressed public key.
fn fake_pubkey(rng: &mut Rng) -> Vec<u8> {
    let mut key = vec![if rng.percent(50) { 0x02 } else { 0x03 }];
    key.extend_from_slice(&rng.bytes::<32>());
    key
}

#[cfg(test)]
mod tests;
