//! The header chain: every block header a node accepts, checked as Bitcoin Core checks it,
//! and the best (most-work) chain among them.
//!
//! # Overview
//!
//! Shoal trusts nothing a peer says ("nothing is trusted", SPEC.md): a block is stored (S14,
//! S15) or served (S16) only if its header is in the node's own best chain, and the members'
//! blocks together form that chain (S18). [`HeaderChain`] is that chain. It is pure and in
//! memory: no clock (the caller passes `now_s`, seconds since the Unix epoch), no I/O.
//!
//! A header is accepted when
//! - it is not already known ([`HeaderError::Duplicate`]),
//! - its parent is known ([`HeaderError::Unconnected`]),
//! - its hash meets the target its `nBits` claim, within the network's limit
//!   ([`HeaderError::BadPow`]),
//! - its `nBits` are the ones the chain requires (Core's `GetNextWorkRequired`: 2016-block
//!   retargeting, from the period's first block's `nBits` on testnet4 (BIP94), testnet's
//!   20-minute minimum-difficulty rule with the walk back to the last block not mined under
//!   it, no retargeting on regtest; [`HeaderError::BadDifficulty`]),
//! - its time is after the median of the previous eleven ([`HeaderError::TimeTooOld`]), at
//!   most two hours after `now_s` ([`HeaderError::TimeTooNew`]) and, on testnet4 for the
//!   first block of a period, at most ten minutes before its parent's
//!   ([`HeaderError::TimewarpAttack`]),
//! - its version meets BIP34/66/65 when [`HeaderChainConfig::check_version`] is set
//!   ([`HeaderError::ObsoleteVersion`]).
//!
//! A rejected header changes nothing but the rejection counter.
//!
//! # Layout
//!
//! Thousands of simulated nodes each hold one, and browsers hold mainnet's, so the chain is
//! compact: the best chain is a `Vec` indexed by height holding each header and its cumulative
//! work (112 bytes); a block's hash is not stored but read from its child's `prev_blockhash`
//! (only the tip's hash is kept). One hash map from hash to height indexes it. Headers off the
//! best chain sit in a second map, capped at [`HeaderChainConfig::max_side_headers`]; when it is
//! full, the leaf with the least cumulative work makes room for a header with more, or the new
//! header is refused ([`HeaderError::SideBranchFull`]).
//!
//! # Usage
//!
//! ```
//! use shoal_core::chain::{ChainParams, HeaderChain};
//!
//! let mut chain = HeaderChain::new(ChainParams::REGTEST);
//! assert_eq!(chain.tip_height(), 0);
//! assert_eq!(chain.tip_hash(), ChainParams::REGTEST.genesis_hash());
//! ```
//! Then [`HeaderChain::accept`] each header (or [`HeaderChain::accept_batch`] a `headers`
//! message) and act on the [`Accepted`] report: blocks that joined the best chain are fetched
//! and placed, blocks that left it are dropped.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use super::hash::{sha256d, BlockHash};
use super::header::{Header, HEADER_SIZE};
use super::params::{ChainParams, MAX_FUTURE_BLOCK_TIME_S, MAX_TIMEWARP_S, MEDIAN_TIME_SPAN};
use super::pow::{PowError, Target, U256};

mod report;

pub use report::{
    Accepted, BatchError, BatchOutcome, HeaderChainConfig, HeaderChainStats, HeaderError,
    HeaderInfo, Reorg, SequenceSummary, MAX_SEQUENCE_HEADERS,
};

/// Hashes a [`BlockHash`] by folding its 32 bytes: block hashes are already uniform, and an
/// attacker must produce valid proof of work and linkage for every entry it adds.
#[derive(Default, Clone, Copy)]
struct BlockHashHasher(u64);

impl Hasher for BlockHashHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(29) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    // The array's length prefix carries nothing.
    fn write_usize(&mut self, _: usize) {}

    fn finish(&self) -> u64 {
        self.0
    }
}

type HashIndex<V> = HashMap<BlockHash, V, BuildHasherDefault<BlockHashHasher>>;

/// A best-chain entry: the header and the chain's work up to it.
#[derive(Debug, Clone, Copy)]
struct BestEntry {
    header: Header,
    chainwork: U256,
}

/// A side-branch entry.
#[derive(Debug, Clone, Copy)]
struct SideEntry {
    header: Header,
    chainwork: U256,
    height: u32,
    /// How many side entries have this one as parent; zero makes it an evictable leaf.
    side_children: u32,
    /// What the minimum-difficulty walk-back returns from this entry.
    walkback_bits: u32,
}

/// Where a header's parent is.
#[derive(Debug, Clone, Copy)]
enum Parent {
    Best { height: u32 },
    Side { height: u32 },
}

/// A header's ancestors, from its parent down, whichever branch they are on.
struct Ancestors<'a> {
    best: &'a [BestEntry],
    /// Side-branch headers from the parent down, as deep as needed or to the fork point.
    side: Vec<&'a Header>,
    /// Whether `side` reaches the fork point (so deeper heights are on the best chain).
    side_complete: bool,
    /// The parent's height.
    top: u32,
    /// What the minimum-difficulty walk-back returns from the parent.
    walkback_bits: u32,
}

impl Ancestors<'_> {
    /// The ancestor at `height` (at most `top`, and within the depth collected).
    fn at(&self, height: u32) -> &Header {
        debug_assert!(height <= self.top);
        let back = (self.top - height) as usize;
        match self.side.get(back) {
            Some(header) => header,
            None => {
                debug_assert!(self.side_complete, "ancestor deeper than collected");
                &self.best[height as usize].header
            }
        }
    }

    fn median_time_past(&self) -> u32 {
        let mut times = [0u32; MEDIAN_TIME_SPAN];
        let n = MEDIAN_TIME_SPAN.min(self.top as usize + 1);
        for (i, time) in times[..n].iter_mut().enumerate() {
            *time = self.at(self.top - i as u32).time;
        }
        let times = &mut times[..n];
        times.sort_unstable();
        times[n / 2]
    }
}

/// A header that passed every check and the facts needed to store it.
struct Checked {
    parent: Parent,
    height: u32,
    /// The minimum-difficulty walk-back from the parent.
    parent_walkback_bits: u32,
}

/// The header chain. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct HeaderChain {
    params: ChainParams,
    config: HeaderChainConfig,
    /// `pow_limit` in compact form, the `nBits` of a minimum-difficulty block.
    pow_limit_bits: u32,
    /// The best chain; `best[h]` is at height `h`. Never empty: genesis is at 0.
    best: Vec<BestEntry>,
    tip_hash: BlockHash,
    best_index: HashIndex<u32>,
    side: HashIndex<SideEntry>,
    /// What the minimum-difficulty walk-back returns from the tip (kept incrementally).
    tip_walkback_bits: u32,
    /// The last `nBits` whose work was computed, and that work.
    work_cache: (u32, U256),
    stats: HeaderChainStats,
}

impl HeaderChain {
    /// A chain holding only `params`' genesis, with the default configuration.
    pub fn new(params: ChainParams) -> Self {
        Self::with_config(params, HeaderChainConfig::default())
    }

    /// A chain holding only `params`' genesis.
    pub fn with_config(params: ChainParams, config: HeaderChainConfig) -> Self {
        let genesis = params.genesis;
        let work = Target::from_compact(genesis.bits).map_or(U256::ZERO, Target::work);
        let hash = genesis.block_hash();
        let mut best_index = HashIndex::default();
        best_index.insert(hash, 0);
        Self {
            params,
            config,
            pow_limit_bits: params.pow_limit_bits(),
            best: vec![BestEntry {
                header: genesis,
                chainwork: work,
            }],
            tip_hash: hash,
            best_index,
            side: HashIndex::default(),
            tip_walkback_bits: genesis.bits,
            work_cache: (genesis.bits, work),
            stats: HeaderChainStats::default(),
        }
    }

    /// Rebuilds a chain from stored headers, checking every one again (no checkpoints).
    /// Parents must come before children; already-known headers (such as genesis) are
    /// skipped. Fails with the position of the first header not accepted.
    pub fn from_headers<'a>(
        params: ChainParams,
        config: HeaderChainConfig,
        headers: impl IntoIterator<Item = &'a Header>,
        now_s: u64,
    ) -> Result<Self, (usize, HeaderError)> {
        let mut chain = Self::with_config(params, config);
        for (i, header) in headers.into_iter().enumerate() {
            match chain.accept(header, now_s) {
                Ok(_) | Err(HeaderError::Duplicate { .. }) => {}
                Err(e) => return Err((i, e)),
            }
        }
        Ok(chain)
    }

    /// Verifies concatenated 80-byte headers forming one chain, starting either with the
    /// network's genesis header or with the header at height 1. Every header must build on
    /// the one before it and pass every check of [`HeaderChain::accept`] (version floors
    /// included); `now_s` bounds header times as there. On failure, returns the height the
    /// failing header would have had and why.
    pub fn verify_sequence(
        params: &ChainParams,
        bytes: &[u8],
        now_s: u64,
    ) -> Result<SequenceSummary, (u32, HeaderError)> {
        Self::verify_sequence_up_to(params, bytes, now_s, MAX_SEQUENCE_HEADERS)
    }

    /// [`HeaderChain::verify_sequence`] with another limit on the number of headers.
    fn verify_sequence_up_to(
        params: &ChainParams,
        bytes: &[u8],
        now_s: u64,
        limit: usize,
    ) -> Result<SequenceSummary, (u32, HeaderError)> {
        let count = bytes.len() / HEADER_SIZE;
        if count > limit {
            return Err((0, HeaderError::TooMany { count, limit }));
        }
        let config = HeaderChainConfig {
            max_side_headers: 0,
            check_version: true,
            min_chain_work: None,
        };
        let mut chain = Self::with_config(*params, config);
        chain.reserve(count);
        let mut chunks = bytes.chunks_exact(HEADER_SIZE);
        let mut first = true;
        for chunk in chunks.by_ref() {
            let hash = BlockHash(sha256d(chunk));
            let height = chain.tip_height() + 1;
            // A chunk is exactly 80 bytes: decoding cannot fail.
            let header = match Header::decode(chunk) {
                Ok(header) => header,
                Err(_) => unreachable!("an 80-byte chunk always decodes"),
            };
            if first {
                first = false;
                if header.prev_blockhash == BlockHash([0; 32]) {
                    let expected = chain.tip_hash;
                    if hash != expected {
                        return Err((
                            0,
                            HeaderError::GenesisMismatch {
                                expected,
                                got: hash,
                            },
                        ));
                    }
                    continue;
                }
            }
            if header.prev_blockhash != chain.tip_hash {
                let error = if chain.contains(&header.prev_blockhash) {
                    HeaderError::OutOfSequence {
                        hash,
                        height,
                        prev: header.prev_blockhash,
                        expected_prev: chain.tip_hash,
                    }
                } else {
                    HeaderError::Unconnected {
                        hash,
                        prev: header.prev_blockhash,
                    }
                };
                return Err((height, error));
            }
            chain
                .accept_hashed(&header, hash, now_s)
                .map_err(|e| (height, e))?;
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            return Err((
                chain.tip_height() + 1,
                HeaderError::Truncated { len: rest.len() },
            ));
        }
        Ok(SequenceSummary {
            count,
            tip_hash: chain.tip_hash,
            tip_height: chain.tip_height(),
            total_work: chain.total_work(),
        })
    }

    /// The network parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The configuration.
    pub fn config(&self) -> &HeaderChainConfig {
        &self.config
    }

    /// Counters since creation.
    pub fn stats(&self) -> HeaderChainStats {
        self.stats
    }

    /// The best tip's height.
    pub fn tip_height(&self) -> u32 {
        (self.best.len() - 1) as u32
    }

    /// The best tip's hash.
    pub fn tip_hash(&self) -> BlockHash {
        self.tip_hash
    }

    /// The best tip's header.
    pub fn tip_header(&self) -> &Header {
        &self.best[self.best.len() - 1].header
    }

    /// The cumulative work of the best chain, genesis included (bitcoind's `chainwork`).
    pub fn total_work(&self) -> U256 {
        self.best[self.best.len() - 1].chainwork
    }

    /// The least total work the best chain needs to be trusted: the configuration's, else
    /// the network's (Core's `nMinimumChainWork`).
    pub fn min_chain_work(&self) -> U256 {
        self.config
            .min_chain_work
            .unwrap_or(self.params.min_chain_work)
    }

    /// Whether the best chain has at least [`HeaderChain::min_chain_work`]. Until it has,
    /// its headers are checked like any others but nothing may rest on them: they are not
    /// persisted, no block is placed, stored or served by them, no query is answered from
    /// them. Every header costs real work, but a chain from genesis with little of it costs
    /// an attacker little in all; the minimum is what a cheap chain cannot reach. The best
    /// chain's work never decreases, so once reached this stays true.
    pub fn has_minimum_work(&self) -> bool {
        self.total_work() >= self.min_chain_work()
    }

    /// Drops every header but genesis (the configuration and the counters stay): for a
    /// chain that never reached the minimum work and whose sources turned out to have
    /// nothing better, so that others' chains are verified from genesis again instead of
    /// against it.
    pub fn reset_to_genesis(&mut self) {
        let stats = self.stats;
        *self = Self::with_config(self.params, self.config);
        self.stats = stats;
    }

    /// The number of headers on the best chain, genesis included.
    pub fn best_len(&self) -> usize {
        self.best.len()
    }

    /// The number of headers kept off the best chain.
    pub fn side_len(&self) -> usize {
        self.side.len()
    }

    /// The best chain's header at `height`.
    pub fn header_at(&self, height: u32) -> Option<&Header> {
        self.best.get(height as usize).map(|e| &e.header)
    }

    /// The best chain's block hash at `height`.
    pub fn hash_at(&self, height: u32) -> Option<BlockHash> {
        if height == self.tip_height() {
            Some(self.tip_hash)
        } else {
            self.best
                .get(height as usize + 1)
                .map(|child| child.header.prev_blockhash)
        }
    }

    /// The cumulative work of the best chain up to `height`.
    pub fn chainwork_at(&self, height: u32) -> Option<U256> {
        self.best.get(height as usize).map(|e| e.chainwork)
    }

    /// The height of `hash` if it is on the best chain.
    pub fn height_of(&self, hash: &BlockHash) -> Option<u32> {
        self.best_index.get(hash).copied()
    }

    /// Whether `hash` is known, on the best chain or a side branch.
    pub fn contains(&self, hash: &BlockHash) -> bool {
        self.best_index.contains_key(hash) || self.side.contains_key(hash)
    }

    /// A known header, on the best chain or a side branch.
    pub fn get(&self, hash: &BlockHash) -> Option<HeaderInfo> {
        if let Some(&height) = self.best_index.get(hash) {
            let e = &self.best[height as usize];
            return Some(HeaderInfo {
                header: e.header,
                height,
                chainwork: e.chainwork,
                in_best_chain: true,
            });
        }
        self.side.get(hash).map(|e| HeaderInfo {
            header: e.header,
            height: e.height,
            chainwork: e.chainwork,
            in_best_chain: false,
        })
    }

    /// The best chain's headers from genesis to the tip, for storage.
    pub fn best_headers(&self) -> impl ExactSizeIterator<Item = &Header> + '_ {
        self.best.iter().map(|e| &e.header)
    }

    /// A block locator as Core builds it: the tip and the ten blocks below it, then steps
    /// doubling, ending with genesis.
    pub fn locator(&self) -> Vec<BlockHash> {
        let mut out = Vec::with_capacity(32);
        let mut height = self.tip_height();
        let mut step = 1u32;
        loop {
            if let Some(hash) = self.hash_at(height) {
                out.push(hash);
            }
            if height == 0 {
                return out;
            }
            height = height.saturating_sub(step);
            if out.len() > 10 {
                step = step.saturating_mul(2);
            }
        }
    }

    /// Makes room for `additional` more best-chain headers, for a caller that knows how many
    /// are coming (a sync from a peer that announced its height): growing the index in one
    /// step instead of several roughly halves the cost of a long sync.
    pub fn reserve(&mut self, additional: usize) {
        self.best.reserve(additional);
        self.best_index.reserve(additional);
    }

    /// Checks a header and stores it if valid. On error nothing is stored.
    pub fn accept(&mut self, header: &Header, now_s: u64) -> Result<Accepted, HeaderError> {
        self.accept_hashed(header, header.block_hash(), now_s)
    }

    /// Accepts headers in order, skipping known ones, and stops at the first rejected one.
    pub fn accept_batch(
        &mut self,
        headers: &[Header],
        now_s: u64,
    ) -> Result<BatchOutcome, Box<BatchError>> {
        let mut outcome = BatchOutcome::default();
        for (index, header) in headers.iter().enumerate() {
            match self.accept(header, now_s) {
                Ok(accepted) => outcome.record(accepted),
                Err(HeaderError::Duplicate { .. }) => outcome.duplicates += 1,
                Err(error) => {
                    return Err(Box::new(BatchError {
                        index,
                        error,
                        partial: outcome,
                    }))
                }
            }
        }
        Ok(outcome)
    }

    fn accept_hashed(
        &mut self,
        header: &Header,
        hash: BlockHash,
        now_s: u64,
    ) -> Result<Accepted, HeaderError> {
        let result = self
            .check(header, hash, now_s)
            .and_then(|checked| self.store(header, hash, checked));
        match &result {
            Ok(accepted) => {
                self.stats.accepted += 1;
                match accepted {
                    Accepted::Extended { .. } => {}
                    Accepted::SideBranch { .. } => self.stats.side_branch += 1,
                    Accepted::Reorg(_) => self.stats.reorgs += 1,
                }
            }
            Err(_) => self.stats.rejected += 1,
        }
        self.debug_check_invariants();
        result
    }

    /// Every consensus check; changes nothing.
    fn check(&self, header: &Header, hash: BlockHash, now_s: u64) -> Result<Checked, HeaderError> {
        let prev = header.prev_blockhash;
        let parent = if prev == self.tip_hash {
            // The common case. The tip never has a stored child (a new tip is always a fresh
            // header), so this cannot be a duplicate: two lookups saved.
            debug_assert!(!self.contains(&hash));
            Parent::Best {
                height: self.tip_height(),
            }
        } else if let Some(info) = self.get(&hash) {
            return Err(HeaderError::Duplicate {
                hash,
                height: info.height,
            });
        } else if let Some(&height) = self.best_index.get(&prev) {
            Parent::Best { height }
        } else if let Some(e) = self.side.get(&prev) {
            Parent::Side { height: e.height }
        } else {
            return Err(HeaderError::Unconnected { hash, prev });
        };
        let parent_height = match parent {
            Parent::Best { height } | Parent::Side { height } => height,
        };
        let height = parent_height + 1;

        let target =
            header
                .target(self.params.pow_limit)
                .map_err(|source| HeaderError::BadPow {
                    hash,
                    height,
                    source,
                })?;
        if !target.is_met_by(hash) {
            return Err(HeaderError::BadPow {
                hash,
                height,
                source: PowError::HashAboveTarget {
                    hash,
                    bits: header.bits,
                },
            });
        }

        let interval = self.params.difficulty_adjustment_interval();
        let depth = if height % interval == 0 && !self.params.pow_no_retargeting {
            interval as usize
        } else {
            MEDIAN_TIME_SPAN
        };
        let ancestors = self.ancestors(&prev, parent, depth);
        let expected = self.next_work_required(&ancestors, header.time);
        if header.bits != expected {
            return Err(HeaderError::BadDifficulty {
                hash,
                height,
                expected,
                got: header.bits,
            });
        }
        let median_time_past = ancestors.median_time_past();
        if header.time <= median_time_past {
            return Err(HeaderError::TimeTooOld {
                hash,
                height,
                time: header.time,
                median_time_past,
            });
        }
        if self.params.enforce_bip94 && height % interval == 0 {
            // BIP94: a period's first block may not be dated far before its parent (checked
            // after the median time past, as Core does).
            let parent_time = ancestors.at(parent_height).time;
            let min_time = parent_time.saturating_sub(MAX_TIMEWARP_S);
            if header.time < min_time {
                return Err(HeaderError::TimewarpAttack {
                    hash,
                    height,
                    time: header.time,
                    min_time,
                });
            }
        }
        let max_time_s = now_s.saturating_add(MAX_FUTURE_BLOCK_TIME_S);
        if u64::from(header.time) > max_time_s {
            return Err(HeaderError::TimeTooNew {
                hash,
                height,
                time: header.time,
                max_time_s,
            });
        }
        if self.config.check_version {
            let minimum = self.params.min_version_at(height);
            if header.version < minimum {
                return Err(HeaderError::ObsoleteVersion {
                    hash,
                    height,
                    version: header.version,
                    minimum,
                });
            }
        }
        Ok(Checked {
            parent,
            height,
            parent_walkback_bits: ancestors.walkback_bits,
        })
    }

    /// The ancestors of a header whose parent, `prev`, is at `parent`; on a side branch,
    /// collected `depth` deep at most.
    fn ancestors(&self, prev: &BlockHash, parent: Parent, depth: usize) -> Ancestors<'_> {
        match parent {
            Parent::Best { height } => Ancestors {
                best: &self.best[..=height as usize],
                side: Vec::new(),
                side_complete: true,
                top: height,
                walkback_bits: if height == self.tip_height() {
                    self.tip_walkback_bits
                } else {
                    self.walkback_on_best(height)
                },
            },
            Parent::Side { height } => {
                let mut side = Vec::new();
                let mut cursor = *prev;
                let mut walkback_bits = None;
                while side.len() < depth {
                    let Some(e) = self.side.get(&cursor) else {
                        break;
                    };
                    walkback_bits.get_or_insert(e.walkback_bits);
                    side.push(&e.header);
                    cursor = e.header.prev_blockhash;
                }
                let side_complete = !self.side.contains_key(&cursor);
                debug_assert!(!side_complete || self.best_index.contains_key(&cursor));
                Ancestors {
                    best: &self.best,
                    side,
                    side_complete,
                    top: height,
                    walkback_bits: walkback_bits.unwrap_or(self.pow_limit_bits),
                }
            }
        }
    }

    /// The `nBits` a header with time `time` must carry on top of `ancestors`, as Core's
    /// `GetNextWorkRequired`.
    fn next_work_required(&self, ancestors: &Ancestors<'_>, time: u32) -> u32 {
        let interval = self.params.difficulty_adjustment_interval();
        let last = ancestors.at(ancestors.top);
        if (ancestors.top + 1) % interval != 0 {
            if !self.params.pow_allow_min_difficulty_blocks {
                return last.bits;
            }
            // Testnet: a block more than twice the spacing after its parent may be mined at
            // minimum difficulty; otherwise it carries the bits of the last block that was
            // not (or of the period's first block).
            let spacing_s = i64::from(self.params.pow_target_spacing_s);
            if i64::from(time) > i64::from(last.time) + 2 * spacing_s {
                return self.pow_limit_bits;
            }
            return ancestors.walkback_bits;
        }
        if self.params.pow_no_retargeting {
            return last.bits;
        }
        let first = ancestors.at(ancestors.top + 1 - interval);
        let base_bits = self.params.retarget_base_bits(first.bits, last.bits);
        self.params
            .calculate_next_work_required(base_bits, last.time, first.time)
    }

    /// Core's walk back from the best chain's block at `height` over minimum-difficulty
    /// blocks, stopping at a period's first block or genesis.
    fn walkback_on_best(&self, height: u32) -> u32 {
        let interval = self.params.difficulty_adjustment_interval();
        let mut h = height;
        loop {
            let bits = self.best[h as usize].header.bits;
            if h == 0 || h % interval == 0 || bits != self.pow_limit_bits {
                return bits;
            }
            h -= 1;
        }
    }

    /// The walk-back from a block at `height` with `bits`, given the walk-back from its parent.
    fn walkback_step(&self, height: u32, bits: u32, parent_walkback_bits: u32) -> u32 {
        let interval = self.params.difficulty_adjustment_interval();
        if height % interval == 0 || bits != self.pow_limit_bits {
            bits
        } else {
            parent_walkback_bits
        }
    }

    /// The work of one header with `bits` (cached: bits rarely change between headers).
    fn work_of(&mut self, bits: u32) -> U256 {
        if self.work_cache.0 != bits {
            let work = Target::from_compact(bits).map_or(U256::ZERO, Target::work);
            self.work_cache = (bits, work);
        }
        self.work_cache.1
    }

    /// Stores a checked header. Fails only with [`HeaderError::SideBranchFull`], changing
    /// nothing.
    fn store(
        &mut self,
        header: &Header,
        hash: BlockHash,
        checked: Checked,
    ) -> Result<Accepted, HeaderError> {
        let height = checked.height;
        let prev = header.prev_blockhash;
        let parent_work = match checked.parent {
            Parent::Best { height } => self.best[height as usize].chainwork,
            Parent::Side { .. } => self.side[&prev].chainwork,
        };
        let chainwork = parent_work.saturating_add(self.work_of(header.bits));
        if prev == self.tip_hash {
            self.push_best(*header, hash, chainwork);
            return Ok(Accepted::Extended { height, hash });
        }
        if chainwork > self.total_work() {
            return Ok(Accepted::Reorg(self.reorg(header, hash, chainwork)));
        }
        // A side branch: make room by dropping a leaf with less work, never the parent.
        let limit = self.config.max_side_headers;
        if limit == 0 || !self.evict_side(limit - 1, Some(chainwork), Some(prev)) {
            return Err(HeaderError::SideBranchFull {
                hash,
                height,
                limit,
            });
        }
        if let Some(parent) = self.side.get_mut(&prev) {
            parent.side_children += 1;
        }
        let walkback_bits = self.walkback_step(height, header.bits, checked.parent_walkback_bits);
        self.side.insert(
            hash,
            SideEntry {
                header: *header,
                chainwork,
                height,
                side_children: 0,
                walkback_bits,
            },
        );
        Ok(Accepted::SideBranch { height, hash })
    }

    /// Appends to the best chain.
    fn push_best(&mut self, header: Header, hash: BlockHash, chainwork: U256) {
        debug_assert_eq!(header.prev_blockhash, self.tip_hash);
        let height = self.best.len() as u32;
        self.best.push(BestEntry { header, chainwork });
        self.best_index.insert(hash, height);
        self.tip_hash = hash;
        self.tip_walkback_bits = self.walkback_step(height, header.bits, self.tip_walkback_bits);
    }

    /// Switches the best chain to the branch ending with `header`, which has more work.
    fn reorg(&mut self, header: &Header, hash: BlockHash, chainwork: U256) -> Reorg {
        // The side branch from the parent down to the fork point.
        let mut path = Vec::new();
        let mut cursor = header.prev_blockhash;
        while let Some(e) = self.side.get(&cursor) {
            path.push(cursor);
            cursor = e.header.prev_blockhash;
        }
        let fork_height = self.best_index[&cursor];

        let mut disconnected = Vec::with_capacity((self.tip_height() - fork_height) as usize);
        while self.tip_height() > fork_height {
            let height = self.tip_height();
            let old_hash = self.tip_hash;
            let Some(e) = self.best.pop() else {
                unreachable!("the best chain holds at least genesis")
            };
            self.best_index.remove(&old_hash);
            self.tip_hash = e.header.prev_blockhash;
            self.side.insert(
                old_hash,
                SideEntry {
                    header: e.header,
                    chainwork: e.chainwork,
                    height,
                    side_children: 0,
                    walkback_bits: 0, // set below
                },
            );
            disconnected.push((height, old_hash));
        }
        // The walk-backs of the disconnected blocks, from the fork point up.
        let mut walkback_bits = self.walkback_on_best(fork_height);
        for &(height, old_hash) in disconnected.iter().rev() {
            let Some(bits) = self.side.get(&old_hash).map(|e| e.header.bits) else {
                unreachable!("disconnected blocks were just stored aside")
            };
            walkback_bits = self.walkback_step(height, bits, walkback_bits);
            if let Some(e) = self.side.get_mut(&old_hash) {
                e.walkback_bits = walkback_bits;
            }
        }
        self.tip_walkback_bits = self.walkback_on_best(fork_height);

        let mut connected = Vec::with_capacity(path.len() + 1);
        for side_hash in path.iter().rev() {
            let Some(e) = self.side.remove(side_hash) else {
                unreachable!("the path was read from the side map")
            };
            self.push_best(e.header, *side_hash, e.chainwork);
            connected.push((e.height, *side_hash));
        }
        self.push_best(*header, hash, chainwork);
        connected.push((self.tip_height(), hash));

        self.recount_side_children();
        self.evict_side(self.config.max_side_headers, None, None);
        Reorg {
            fork_height,
            disconnected,
            connected,
        }
    }

    /// Recomputes every side entry's child count.
    fn recount_side_children(&mut self) {
        let parents: Vec<BlockHash> = self
            .side
            .values()
            .map(|e| e.header.prev_blockhash)
            .collect();
        for e in self.side.values_mut() {
            e.side_children = 0;
        }
        for prev in parents {
            if let Some(e) = self.side.get_mut(&prev) {
                e.side_children += 1;
            }
        }
    }

    /// Drops side leaves, least cumulative work first, until at most `limit` remain, never
    /// `keep`. With `below`, the store must be one over the limit and the leaf dropped must
    /// have less work than `below`. Returns whether the limit was reached; with `below`, a
    /// failure drops nothing.
    fn evict_side(&mut self, limit: usize, below: Option<U256>, keep: Option<BlockHash>) -> bool {
        if self.side.len() <= limit {
            return true;
        }
        let mut leaves: BinaryHeap<Reverse<(U256, BlockHash)>> = self
            .side
            .iter()
            .filter(|(hash, e)| e.side_children == 0 && Some(**hash) != keep)
            .map(|(hash, e)| Reverse((e.chainwork, *hash)))
            .collect();
        // With a bound, at most one leaf may go: check it before dropping anything.
        if let Some(below) = below {
            debug_assert_eq!(self.side.len(), limit + 1);
            match leaves.peek() {
                Some(Reverse((work, _))) if *work < below => {}
                _ => return false,
            }
        }
        while self.side.len() > limit {
            let Some(Reverse((_, hash))) = leaves.pop() else {
                return false;
            };
            let Some(e) = self.side.remove(&hash) else {
                continue;
            };
            self.stats.side_evicted += 1;
            let prev = e.header.prev_blockhash;
            if let Some(parent) = self.side.get_mut(&prev) {
                parent.side_children -= 1;
                if parent.side_children == 0 && Some(prev) != keep {
                    leaves.push(Reverse((parent.chainwork, prev)));
                }
            }
        }
        true
    }

    /// Checks the structure's invariants (debug builds only).
    fn debug_check_invariants(&self) {
        debug_assert!(!self.best.is_empty());
        debug_assert_eq!(self.best.len(), self.best_index.len());
        debug_assert_eq!(
            self.best_index.get(&self.tip_hash),
            Some(&self.tip_height())
        );
        debug_assert!(self.side.len() <= self.config.max_side_headers);
    }
}

#[cfg(test)]
mod fork_tests;
#[cfg(test)]
mod tests;
