//! Fetch-and-evict (S17): run caller code on a block this member does not hold.
//!
//! # Overview
//!
//! A member asked to execute something on a block (a contract, a wallet scan) that it does not
//! hold fetches the block from a holder into a bounded cache, evicting the least recently used
//! cached block to make room, and then runs the caller's code on it. A fetched block is used
//! only after it is verified against this node's header chain: it decodes (size-bounded), its
//! header hashes to the block asked for, that hash is on the best chain, and its body matches
//! the header ([`Block::check`]: Merkle root without CVE-2012-2459 mutation, coinbase,
//! witness commitment, weight). A holder that sends anything else is scored as misbehaving and
//! the next holder is asked.
//!
//! The cache may also hold blocks this member is *assigned* to hold (the node inserts them when
//! it has read them from its store, [`BlockCache::insert_verified`]); those are never evicted
//! unless [`CacheConfig::evict_assigned`] allows it, and then the node is told
//! ([`CacheOutput::EvictedAssigned`]) so that it can delete the stored copy to make room, as S17
//! permits ("may delete an unused stored block"); repair later restores the replica.
//!
//! # Usage
//!
//! 1. [`BlockCache::request`] with a job id: either the block is cached (a
//!    [`CacheOutput::Ready`] is queued at once) or a [`CacheOutput::Fetch`] asks a holder.
//! 2. Feed back the holder's answer with [`BlockCache::handle_block_data`] or
//!    [`BlockCache::handle_not_found`], and call [`BlockCache::handle_timeout`] when
//!    [`BlockCache::poll_timeout`] is due.
//! 3. On [`CacheOutput::Ready`], run the job with [`BlockCache::with_block`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;

use super::{BestChain, PeerScores};
use crate::base::RequestIds;
use crate::chain::encode::Reader;
use crate::chain::{Block, BlockError, BlockHash, DecodeError, Header};

/// A caller's job id: comes back in [`CacheOutput::Ready`] or [`CacheOutput::Failed`].
pub type JobId = u64;

/// Configuration of the block cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most bytes (serialized block sizes) held in the cache.
    pub max_bytes: usize,
    /// Most blocks held in the cache.
    pub max_blocks: usize,
    /// How long one holder has to deliver a block before the next one is asked.
    pub fetch_timeout_ms: u64,
    /// Most fetches in flight at once.
    pub max_pending_fetches: usize,
    /// Most jobs waiting for one fetch.
    pub max_waiters_per_fetch: usize,
    /// Whether blocks this member is assigned to hold may be evicted to make room.
    pub evict_assigned: bool,
    /// Misbehaviour points for sending a block that fails verification.
    pub invalid_block_points: u32,
    /// Peers whose misbehaviour is remembered.
    pub max_scored_peers: usize,
    /// Most outputs queued before the node drains them.
    pub max_queued_outputs: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_bytes: 32 * 1024 * 1024,
            max_blocks: 64,
            fetch_timeout_ms: 10_000,
            max_pending_fetches: 16,
            max_waiters_per_fetch: 32,
            evict_assigned: false,
            invalid_block_points: 10,
            max_scored_peers: 256,
            max_queued_outputs: 1024,
        }
    }
}

/// What the cache asks the node to do or tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutput<P> {
    /// Ask `to` for the block (a `GetBlock` message with this request id).
    Fetch {
        /// The holder asked.
        to: P,
        /// Comes back with the answer.
        request_id: u64,
        /// The block wanted.
        block_hash: BlockHash,
    },
    /// The block is cached: run the job with [`BlockCache::with_block`].
    Ready {
        /// The job.
        job: JobId,
        /// Its block.
        block_hash: BlockHash,
    },
    /// The job cannot run.
    Failed {
        /// The job.
        job: JobId,
        /// Its block.
        block_hash: BlockHash,
        /// Why.
        error: CacheError,
    },
    /// An assigned block was evicted ([`CacheConfig::evict_assigned`]): the node may delete
    /// its stored copy; repair restores it later.
    EvictedAssigned {
        /// The block.
        block_hash: BlockHash,
    },
    /// `peer` sent a block that failed verification; `score` is its misbehaviour total.
    Misbehaved {
        /// The peer.
        peer: P,
        /// Its score now.
        score: u32,
    },
}

/// Why a block could not be fetched or cached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The block is not on this node's best header chain.
    #[error("block is not on the best header chain")]
    NotInBestChain,
    /// Nobody to fetch it from.
    #[error("no holder to fetch the block from")]
    NoHolders,
    /// Too many fetches in flight, or too many jobs waiting for this one.
    #[error("too many fetches or waiting jobs (limit {0})")]
    Busy(usize),
    /// Every holder failed, timed out or did not have it.
    #[error("no holder delivered a valid block")]
    Unavailable,
    /// The block does not fit even after evicting everything evictable.
    #[error("block of {size} bytes does not fit in the cache")]
    DoesNotFit {
        /// Its size.
        size: usize,
    },
    /// The block failed verification (for blocks handed in by the node).
    #[error("block failed verification: {0}")]
    Invalid(#[from] VerifyError),
}

/// Why a block failed verification against the header chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The bytes are not a block.
    #[error("not a block: {0}")]
    Decode(#[from] DecodeError),
    /// The header hashes to another block.
    #[error("expected block {expected}, got {got}")]
    WrongBlock {
        /// Asked for.
        expected: BlockHash,
        /// Received.
        got: BlockHash,
    },
    /// The block is not on the best chain.
    #[error("block {0} is not on the best header chain")]
    NotInBestChain(BlockHash),
    /// The body does not match the header.
    #[error("block body is invalid: {0}")]
    Body(#[from] BlockError),
}

/// The hash of the block `bytes` encode, from its header alone: a block that is not the one
/// asked for, or not in the best chain, is turned away for the price of one header's hash,
/// before its body is decoded (allocated) or hashed.
pub fn header_hash(bytes: &[u8]) -> Result<BlockHash, DecodeError> {
    let mut reader = Reader::new(bytes);
    Ok(Header::decode_from(&mut reader)?.block_hash())
}

/// Decodes `bytes` and checks them as block `expected` against `chain`. The one gate every
/// fetched block passes before use. The header is looked up first ([`header_hash`]).
pub fn verify_block(
    expected: &BlockHash,
    bytes: &[u8],
    chain: &dyn BestChain,
) -> Result<Block, VerifyError> {
    let got = header_hash(bytes)?;
    if got != *expected {
        return Err(VerifyError::WrongBlock {
            expected: *expected,
            got,
        });
    }
    if chain.height_of(&got).is_none() {
        return Err(VerifyError::NotInBestChain(got));
    }
    let block = Block::decode(bytes)?;
    block.check()?;
    Ok(block)
}

#[derive(Debug)]
struct Entry {
    block: Block,
    size: usize,
    tick: u64,
    assigned: bool,
}

#[derive(Debug)]
struct Fetch<P> {
    block_hash: BlockHash,
    /// Holders not yet asked, in order.
    remaining: VecDeque<P>,
    asked: P,
    request_id: u64,
    deadline_ms: u64,
    waiters: Vec<JobId>,
}

/// The bounded block cache with its fetches. See the module docs.
#[derive(Debug)]
pub struct BlockCache<P> {
    config: CacheConfig,
    entries: HashMap<BlockHash, Entry>,
    /// tick → block, least recently used first.
    lru: BTreeMap<u64, BlockHash>,
    bytes: usize,
    next_tick: u64,
    /// request id → fetch.
    fetches: HashMap<u64, Fetch<P>>,
    /// Where the fetches' request ids come from (the node's, when the node runs the cache).
    request_ids: RequestIds,
    scores: PeerScores<P>,
    outputs: VecDeque<CacheOutput<P>>,
}

impl<P: Copy + Eq + Hash + Ord> BlockCache<P> {
    /// An empty cache whose fetches are numbered by a counter of their own.
    pub fn new(config: CacheConfig) -> Self {
        Self::with_request_ids(config, RequestIds::new())
    }

    /// An empty cache whose fetches take their request ids from `request_ids` (the node's
    /// allocator).
    pub fn with_request_ids(config: CacheConfig, request_ids: RequestIds) -> Self {
        Self {
            config,
            entries: HashMap::new(),
            lru: BTreeMap::new(),
            bytes: 0,
            next_tick: 0,
            fetches: HashMap::new(),
            request_ids,
            scores: PeerScores::new(config.max_scored_peers),
            outputs: VecDeque::new(),
        }
    }

    /// Asks for `block_hash` on behalf of `job`. If it is cached, [`CacheOutput::Ready`] is
    /// queued at once; otherwise it is fetched from `holders` in order (this node's own id must
    /// not be among them).
    pub fn request(
        &mut self,
        now_ms: u64,
        job: JobId,
        block_hash: BlockHash,
        holders: &[P],
        chain: &dyn BestChain,
    ) -> Result<(), CacheError> {
        if chain.height_of(&block_hash).is_none() {
            return Err(CacheError::NotInBestChain);
        }
        if self.entries.contains_key(&block_hash) {
            self.touch(&block_hash);
            self.push(CacheOutput::Ready { job, block_hash });
            return Ok(());
        }
        if let Some(fetch) = self
            .fetches
            .values_mut()
            .find(|f| f.block_hash == block_hash)
        {
            if fetch.waiters.len() >= self.config.max_waiters_per_fetch {
                return Err(CacheError::Busy(self.config.max_waiters_per_fetch));
            }
            fetch.waiters.push(job);
            return Ok(());
        }
        if self.fetches.len() >= self.config.max_pending_fetches {
            return Err(CacheError::Busy(self.config.max_pending_fetches));
        }
        let mut remaining: VecDeque<P> = holders.iter().copied().collect();
        let Some(first) = remaining.pop_front() else {
            return Err(CacheError::NoHolders);
        };
        let request_id = self.request_ids.next_id();
        self.fetches.insert(
            request_id,
            Fetch {
                block_hash,
                remaining,
                asked: first,
                request_id,
                deadline_ms: now_ms.saturating_add(self.config.fetch_timeout_ms),
                waiters: vec![job],
            },
        );
        self.push(CacheOutput::Fetch {
            to: first,
            request_id,
            block_hash,
        });
        Ok(())
    }

    /// A holder answered a fetch with block bytes. Answers to unknown request ids, or from a
    /// peer that was not asked, are ignored.
    pub fn handle_block_data(
        &mut self,
        now_ms: u64,
        from: P,
        request_id: u64,
        bytes: &[u8],
        chain: &dyn BestChain,
    ) {
        let Some(fetch) = self.take_fetch(from, request_id) else {
            return;
        };
        match verify_block(&fetch.block_hash, bytes, chain) {
            Ok(block) => {
                let block_hash = fetch.block_hash;
                match self.insert(block, bytes.len(), false) {
                    Ok(()) => {
                        for job in fetch.waiters {
                            self.push(CacheOutput::Ready { job, block_hash });
                        }
                    }
                    Err(error) => self.fail(fetch.waiters, block_hash, error),
                }
            }
            Err(VerifyError::NotInBestChain(_)) => {
                // Our chain moved under the fetch: nobody is at fault and nobody can help.
                self.fail(fetch.waiters, fetch.block_hash, CacheError::NotInBestChain);
            }
            Err(_) => {
                let score = self.scores.add(from, self.config.invalid_block_points);
                self.push(CacheOutput::Misbehaved { peer: from, score });
                self.next_holder(now_ms, fetch);
            }
        }
    }

    /// A holder said it does not have the block: ask the next one.
    pub fn handle_not_found(&mut self, now_ms: u64, from: P, request_id: u64) {
        if let Some(fetch) = self.take_fetch(from, request_id) {
            self.next_holder(now_ms, fetch);
        }
    }

    /// Moves every fetch whose holder is overdue to its next holder.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let mut due: Vec<u64> = self
            .fetches
            .values()
            .filter(|f| f.deadline_ms <= now_ms)
            .map(|f| f.request_id)
            .collect();
        // The map's order is random per process: sort, so outputs are reproducible.
        due.sort_unstable();
        for request_id in due {
            if let Some(fetch) = self.fetches.remove(&request_id) {
                self.next_holder(now_ms, fetch);
            }
        }
    }

    /// The earliest fetch deadline.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.fetches.values().map(|f| f.deadline_ms).min()
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<CacheOutput<P>> {
        self.outputs.pop_front()
    }

    /// Runs `f` on the cached block and marks it recently used; `None` if it is not cached.
    pub fn with_block<R>(
        &mut self,
        block_hash: &BlockHash,
        f: impl FnOnce(&Block) -> R,
    ) -> Option<R> {
        if !self.entries.contains_key(block_hash) {
            return None;
        }
        self.touch(block_hash);
        self.entries.get(block_hash).map(|e| f(&e.block))
    }

    /// Puts a block the node already has (read from its own store, or received as a new block)
    /// into the cache, after the same verification a fetched block gets.
    pub fn insert_verified(
        &mut self,
        bytes: &[u8],
        assigned: bool,
        chain: &dyn BestChain,
    ) -> Result<BlockHash, CacheError> {
        let block = Block::decode(bytes).map_err(VerifyError::from)?;
        let hash = block.block_hash();
        let block = verify_block(&hash, bytes, chain)?;
        self.insert(block, bytes.len(), assigned)?;
        Ok(hash)
    }

    /// Marks a cached block as assigned to this member (or no longer), e.g. after the
    /// membership changed.
    pub fn set_assigned(&mut self, block_hash: &BlockHash, assigned: bool) {
        if let Some(entry) = self.entries.get_mut(block_hash) {
            entry.assigned = assigned;
        }
    }

    /// Drops a block (it left the best chain, or the node deleted it).
    pub fn remove(&mut self, block_hash: &BlockHash) {
        if let Some(entry) = self.entries.remove(block_hash) {
            self.lru.remove(&entry.tick);
            self.bytes -= entry.size;
        }
        self.check_invariants();
    }

    /// Whether the block is cached.
    pub fn contains(&self, block_hash: &BlockHash) -> bool {
        self.entries.contains_key(block_hash)
    }

    /// Bytes cached.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Blocks cached.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a fetch in flight waits for an answer under `request_id`.
    pub fn awaits(&self, request_id: u64) -> bool {
        self.fetches.contains_key(&request_id)
    }

    /// Fetches in flight.
    pub fn pending_fetches(&self) -> usize {
        self.fetches.len()
    }

    /// `peer`'s misbehaviour score.
    pub fn misbehaviour(&self, peer: &P) -> u32 {
        self.scores.get(peer)
    }

    fn insert(&mut self, block: Block, size: usize, assigned: bool) -> Result<(), CacheError> {
        let hash = block.block_hash();
        if let Some(entry) = self.entries.get_mut(&hash) {
            entry.assigned |= assigned;
            self.touch(&hash);
            return Ok(());
        }
        if size > self.config.max_bytes || self.config.max_blocks == 0 {
            return Err(CacheError::DoesNotFit { size });
        }
        // Choose victims first, least recently used first; evict nothing unless it suffices.
        let mut victims = Vec::new();
        let mut bytes_after = self.bytes + size;
        let mut count_after = self.entries.len() + 1;
        for hash in self.lru.values() {
            if bytes_after <= self.config.max_bytes && count_after <= self.config.max_blocks {
                break;
            }
            let entry = &self.entries[hash];
            if entry.assigned && !self.config.evict_assigned {
                continue;
            }
            victims.push(*hash);
            bytes_after -= entry.size;
            count_after -= 1;
        }
        if bytes_after > self.config.max_bytes || count_after > self.config.max_blocks {
            return Err(CacheError::DoesNotFit { size });
        }
        for victim in victims {
            let assigned = self.entries[&victim].assigned;
            self.remove(&victim);
            if assigned {
                self.push(CacheOutput::EvictedAssigned { block_hash: victim });
            }
        }
        let tick = self.tick();
        self.lru.insert(tick, hash);
        self.entries.insert(
            hash,
            Entry {
                block,
                size,
                tick,
                assigned,
            },
        );
        self.bytes += size;
        self.check_invariants();
        Ok(())
    }

    fn take_fetch(&mut self, from: P, request_id: u64) -> Option<Fetch<P>> {
        match self.fetches.get(&request_id) {
            Some(fetch) if fetch.asked == from => self.fetches.remove(&request_id),
            _ => None,
        }
    }

    fn next_holder(&mut self, now_ms: u64, mut fetch: Fetch<P>) {
        let Some(next) = fetch.remaining.pop_front() else {
            self.fail(fetch.waiters, fetch.block_hash, CacheError::Unavailable);
            return;
        };
        let request_id = self.request_ids.next_id();
        fetch.asked = next;
        fetch.request_id = request_id;
        fetch.deadline_ms = now_ms.saturating_add(self.config.fetch_timeout_ms);
        let block_hash = fetch.block_hash;
        self.fetches.insert(request_id, fetch);
        self.push(CacheOutput::Fetch {
            to: next,
            request_id,
            block_hash,
        });
    }

    fn fail(&mut self, waiters: Vec<JobId>, block_hash: BlockHash, error: CacheError) {
        for job in waiters {
            self.push(CacheOutput::Failed {
                job,
                block_hash,
                error: error.clone(),
            });
        }
    }

    fn touch(&mut self, hash: &BlockHash) {
        let tick = self.tick();
        if let Some(entry) = self.entries.get_mut(hash) {
            self.lru.remove(&entry.tick);
            entry.tick = tick;
            self.lru.insert(tick, *hash);
        }
    }

    fn tick(&mut self) -> u64 {
        self.next_tick += 1;
        self.next_tick
    }

    /// Queues an output. The queue is bounded: if the node does not drain it, the oldest
    /// output is dropped (the node's drain contract makes this unreachable in practice).
    fn push(&mut self, output: CacheOutput<P>) {
        if self.outputs.len() >= self.config.max_queued_outputs.max(1) {
            self.outputs.pop_front();
        }
        self.outputs.push_back(output);
    }

    fn check_invariants(&self) {
        debug_assert!(self.bytes <= self.config.max_bytes);
        debug_assert!(self.entries.len() <= self.config.max_blocks);
        debug_assert_eq!(self.entries.len(), self.lru.len());
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::serve::testutil::{block, chain_of, TestChain};

    fn drain(cache: &mut BlockCache<u8>) -> Vec<CacheOutput<u8>> {
        std::iter::from_fn(|| cache.poll_output()).collect()
    }

    #[test]
    fn fetch_verify_run_and_hit() {
        let blocks = chain_of(3, 5, 1);
        let chain = TestChain::new(&blocks);
        let mut cache = BlockCache::new(CacheConfig::default());
        let hash = blocks[1].block_hash();
        cache.request(0, 7, hash, &[1, 2], &chain).unwrap();
        let out = drain(&mut cache);
        let CacheOutput::Fetch {
            to: 1,
            request_id,
            block_hash,
        } = out[0]
        else {
            panic!("expected a fetch from holder 1, got {out:?}");
        };
        assert_eq!(block_hash, hash);
        // A stranger answering the same id is ignored.
        cache.handle_block_data(1, 9, request_id, &blocks[1].encode(), &chain);
        assert!(drain(&mut cache).is_empty());
        cache.handle_block_data(1, 1, request_id, &blocks[1].encode(), &chain);
        assert_eq!(
            drain(&mut cache),
            vec![CacheOutput::Ready {
                job: 7,
                block_hash: hash
            }]
        );
        let n = cache.with_block(&hash, |b| b.txdata.len());
        assert_eq!(n, Some(6));
        // A second job is served from the cache without fetching.
        cache.request(2, 8, hash, &[1], &chain).unwrap();
        assert_eq!(
            drain(&mut cache),
            vec![CacheOutput::Ready {
                job: 8,
                block_hash: hash
            }]
        );
    }

    /// A block's header is looked up before its body is read: the wrong block, or one off the
    /// best chain, is refused as such however broken (or large) the body behind its header.
    #[test]
    fn the_header_is_checked_before_the_body_is_decoded() {
        let blocks = chain_of(3, 5, 1);
        let chain = TestChain::new(&blocks);
        let off_chain = chain_of(2, 3, 9);
        let mut bytes = off_chain[1].header.encode().to_vec();
        bytes.extend([0xff; 64]); // a transaction count no body can hold
        let wanted = blocks[1].block_hash();
        let got = off_chain[1].block_hash();
        assert!(matches!(
            verify_block(&wanted, &bytes, &chain),
            Err(VerifyError::WrongBlock { got: g, .. }) if g == got
        ));
        assert!(matches!(
            verify_block(&got, &bytes, &chain),
            Err(VerifyError::NotInBestChain(g)) if g == got
        ));
        // The right header with a broken body is still refused for its body.
        let mut bytes = blocks[1].header.encode().to_vec();
        bytes.extend([0xff; 64]);
        assert!(matches!(
            verify_block(&wanted, &bytes, &chain),
            Err(VerifyError::Decode(_))
        ));
        assert!(matches!(
            header_hash(&[0; 79]),
            Err(DecodeError::UnexpectedEnd { .. })
        ));
    }

    #[test]
    fn forged_block_is_refused_and_next_holder_asked() {
        let blocks = chain_of(2, 3, 1);
        let chain = TestChain::new(&blocks);
        let mut cache = BlockCache::new(CacheConfig::default());
        let hash = blocks[1].block_hash();
        cache.request(0, 1, hash, &[1, 2], &chain).unwrap();
        let CacheOutput::Fetch { request_id, .. } = drain(&mut cache)[0] else {
            panic!()
        };
        // Same header, a transaction swapped: the Merkle root no longer matches.
        let mut forged = blocks[1].clone();
        forged.txdata[1] = blocks[0].txdata[1].clone();
        cache.handle_block_data(1, 1, request_id, &forged.encode(), &chain);
        let out = drain(&mut cache);
        assert_eq!(out[0], CacheOutput::Misbehaved { peer: 1, score: 10 });
        let CacheOutput::Fetch {
            to: 2, request_id, ..
        } = out[1]
        else {
            panic!("expected the next holder, got {out:?}")
        };
        assert!(!cache.contains(&hash));
        // Holder 2 times out: the job fails, nothing cached.
        cache.handle_timeout(5_000);
        assert!(drain(&mut cache).is_empty(), "not yet due");
        assert_eq!(
            cache.poll_timeout(),
            Some(10_001),
            "answered at 1 ms, 10 s to deliver"
        );
        cache.handle_timeout(10_001);
        assert_eq!(
            drain(&mut cache),
            vec![CacheOutput::Failed {
                job: 1,
                block_hash: hash,
                error: CacheError::Unavailable
            }]
        );
        let _ = request_id;
        assert_eq!(cache.misbehaviour(&1), 10);
    }

    #[test]
    fn blocks_off_the_best_chain_are_refused() {
        let blocks = chain_of(3, 1, 1);
        let mut chain = TestChain::new(&blocks);
        let mut cache = BlockCache::new(CacheConfig::default());
        let hash = blocks[2].block_hash();
        cache.request(0, 1, hash, &[1], &chain).unwrap();
        let CacheOutput::Fetch { request_id, .. } = drain(&mut cache)[0] else {
            panic!()
        };
        chain.truncate(2);
        cache.handle_block_data(1, 1, request_id, &blocks[2].encode(), &chain);
        assert!(matches!(
            drain(&mut cache)[..],
            [CacheOutput::Failed {
                error: CacheError::NotInBestChain,
                ..
            }]
        ));
        assert_eq!(cache.misbehaviour(&1), 0, "the holder did nothing wrong");
        assert_eq!(
            cache.request(2, 2, hash, &[1], &chain),
            Err(CacheError::NotInBestChain)
        );
    }

    #[test]
    fn lru_eviction_spares_assigned_blocks() {
        let blocks = chain_of(5, 0, 1);
        let chain = TestChain::new(&blocks);
        let config = CacheConfig {
            max_blocks: 2,
            ..CacheConfig::default()
        };
        let mut cache: BlockCache<u8> = BlockCache::new(config);
        cache
            .insert_verified(&blocks[0].encode(), true, &chain)
            .unwrap();
        cache
            .insert_verified(&blocks[1].encode(), false, &chain)
            .unwrap();
        cache
            .insert_verified(&blocks[2].encode(), false, &chain)
            .unwrap();
        assert!(
            cache.contains(&blocks[0].block_hash()),
            "assigned, oldest, kept"
        );
        assert!(
            !cache.contains(&blocks[1].block_hash()),
            "LRU unassigned evicted"
        );
        // Using block 2 does not help it: block 0 is assigned, so only 2 can go.
        cache
            .insert_verified(&blocks[3].encode(), false, &chain)
            .unwrap();
        assert!(cache.contains(&blocks[0].block_hash()));
        assert!(cache.contains(&blocks[3].block_hash()));
        // With evict_assigned the assigned block is evicted and the node told.
        let mut cache: BlockCache<u8> = BlockCache::new(CacheConfig {
            evict_assigned: true,
            ..config
        });
        cache
            .insert_verified(&blocks[0].encode(), true, &chain)
            .unwrap();
        cache
            .insert_verified(&blocks[1].encode(), false, &chain)
            .unwrap();
        cache.with_block(&blocks[0].block_hash(), |_| ());
        cache
            .insert_verified(&blocks[2].encode(), false, &chain)
            .unwrap();
        assert!(!cache.contains(&blocks[1].block_hash()), "LRU goes first");
        cache
            .insert_verified(&blocks[3].encode(), false, &chain)
            .unwrap();
        assert!(!cache.contains(&blocks[0].block_hash()));
        assert_eq!(
            drain(&mut cache),
            vec![CacheOutput::EvictedAssigned {
                block_hash: blocks[0].block_hash()
            }]
        );
    }

    #[test]
    fn a_block_too_large_evicts_nothing() {
        let b0 = block(BlockHash::ZERO, 0, 0, 1);
        let b1 = block(b0.block_hash(), 1, 3, 1);
        let blocks = [b0, b1];
        let chain = TestChain::new(&blocks);
        let small = blocks[0].encode().len();
        let config = CacheConfig {
            max_bytes: small,
            ..CacheConfig::default()
        };
        let mut cache: BlockCache<u8> = BlockCache::new(config);
        cache
            .insert_verified(&blocks[0].encode(), false, &chain)
            .unwrap();
        assert!(matches!(
            cache.insert_verified(&blocks[1].encode(), false, &chain),
            Err(CacheError::DoesNotFit { .. })
        ));
        assert!(cache.contains(&blocks[0].block_hash()));
        assert!(matches!(
            cache.insert_verified(&[0u8; 10], false, &chain),
            Err(CacheError::Invalid(VerifyError::Decode(_)))
        ));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Request { block: usize, holders: u8 },
        Answer { honest: bool },
        NotFound,
        Timeout { advance_ms: u64 },
        Use { block: usize },
        Assign { block: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..8, 1u8..4).prop_map(|(block, holders)| Op::Request { block, holders }),
            any::<bool>().prop_map(|honest| Op::Answer { honest }),
            Just(Op::NotFound),
            (0u64..15_000).prop_map(|advance_ms| Op::Timeout { advance_ms }),
            (0usize..8).prop_map(|block| Op::Use { block }),
            (0usize..8).prop_map(|block| Op::Assign { block }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever happens, the cache stays within its byte and count bounds, never evicts an
        /// assigned block, only ever holds verified blocks of the best chain, and every job ends
        /// in exactly one Ready or Failed.
        #[test]
        fn cache_stays_bounded_and_jobs_complete(
            max_blocks in 1usize..4,
            ops in prop::collection::vec(op(), 1..60),
        ) {
            let blocks: Vec<Block> = chain_of(8, 2, 3);
            let chain = TestChain::new(&blocks);
            let sizes: Vec<usize> = blocks.iter().map(|b| b.encode().len()).collect();
            let max_bytes = sizes.iter().max().unwrap() * 2 + 10;
            let config = CacheConfig {
                max_blocks,
                max_bytes,
                max_pending_fetches: 4,
                max_waiters_per_fetch: 3,
                ..CacheConfig::default()
            };
            let mut cache: BlockCache<u8> = BlockCache::new(config);
            let mut now_ms = 0u64;
            let mut next_job = 0u64;
            let mut open_jobs = std::collections::BTreeSet::new();
            let mut fetches: Vec<(u8, u64, BlockHash)> = Vec::new();
            let mut assigned = std::collections::BTreeSet::new();
            for op in ops {
                match op {
                    Op::Request { block, holders } => {
                        next_job += 1;
                        let holders: Vec<u8> = (1..=holders).collect();
                        if cache.request(now_ms, next_job, blocks[block].block_hash(), &holders, &chain).is_ok() {
                            open_jobs.insert(next_job);
                        }
                    }
                    Op::Answer { honest } => {
                        if let Some((to, request_id, hash)) = fetches.pop() {
                            let i = blocks.iter().position(|b| b.block_hash() == hash).unwrap();
                            let bytes = if honest { blocks[i].encode() } else { blocks[(i + 1) % 8].encode() };
                            cache.handle_block_data(now_ms, to, request_id, &bytes, &chain);
                        }
                    }
                    Op::NotFound => {
                        if let Some((to, request_id, _)) = fetches.pop() {
                            cache.handle_not_found(now_ms, to, request_id);
                        }
                    }
                    Op::Timeout { advance_ms } => {
                        now_ms += advance_ms;
                        cache.handle_timeout(now_ms);
                    }
                    Op::Use { block } => {
                        let hash = blocks[block].block_hash();
                        let got = cache.with_block(&hash, |b| b.block_hash());
                        prop_assert!(got.is_none() || got == Some(hash));
                    }
                    Op::Assign { block } => {
                        if cache.insert_verified(&blocks[block].encode(), true, &chain).is_ok() {
                            assigned.insert(block);
                        }
                    }
                }
                while let Some(output) = cache.poll_output() {
                    match output {
                        CacheOutput::Fetch { to, request_id, block_hash } => fetches.push((to, request_id, block_hash)),
                        CacheOutput::Ready { job, .. } | CacheOutput::Failed { job, .. } => {
                            prop_assert!(open_jobs.remove(&job), "job {} ended twice", job);
                        }
                        CacheOutput::EvictedAssigned { .. } => prop_assert!(false, "assigned evicted"),
                        CacheOutput::Misbehaved { peer, .. } => prop_assert!(peer >= 1),
                    }
                }
                prop_assert!(cache.bytes() <= max_bytes);
                prop_assert!(cache.len() <= max_blocks);
                for a in &assigned {
                    prop_assert!(cache.contains(&blocks[*a].block_hash()));
                }
                let total: usize = blocks.iter().zip(&sizes)
                    .filter(|(b, _)| cache.contains(&b.block_hash()))
                    .map(|(_, s)| *s).sum();
                prop_assert_eq!(total, cache.bytes());
            }
            // Let every fetch time out: every job ends.
            for _ in 0..4 {
                now_ms += 20_000;
                cache.handle_timeout(now_ms);
                while let Some(output) = cache.poll_output() {
                    if let CacheOutput::Ready { job, .. } | CacheOutput::Failed { job, .. } = output {
                        prop_assert!(open_jobs.remove(&job));
                    }
                }
            }
            prop_assert!(open_jobs.is_empty(), "jobs left hanging: {:?}", open_jobs);
        }
    }
}
