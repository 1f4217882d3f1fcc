//! Simulated storage with faults, and the check that nothing unverified is stored.
//!
//! Each host's storage is an in-memory ordered map. The simulator can make it misbehave the
//! way disks and IndexedDB do (TigerBeetle's simulator does the same): a write can be lost —
//! acknowledged, but not there on the next read — and a read can come back corrupted (one bit
//! flipped). A node must survive both: re-hash what it reads, drop a corrupt entry, re-fetch
//! it from a replica, and never serve it.
//!
//! Storage is also where the simulator checks that no block is stored unverified: every block
//! a node asks to store is compared byte for byte with the true chain's block of that hash
//! ([`TrueChain`]). The simulator feeds nodes corrupted blocks on purpose, so a node that
//! skipped verification would be caught here.
//!
//! The world carries a node's storage commands out on this store through the one executor of
//! every shell, `shoal_host::execute` (see the world's `disk` module).
//!
//! Blocks equal to the true chain's are kept as a height (four bytes), not as a copy: ten
//! thousand hosts holding shards of the same chain fit in memory.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::rng::SimRng;

/// How storage misbehaves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StorageFaultConfig {
    /// Probability that an acknowledged write is lost.
    pub lost_write_rate: f64,
    /// Probability that a read returns the value with one bit flipped.
    pub corrupt_read_rate: f64,
}

impl Default for StorageFaultConfig {
    fn default() -> Self {
        Self {
            lost_write_rate: 0.001,
            corrupt_read_rate: 0.001,
        }
    }
}

/// Draws storage faults for a run.
pub struct StorageFaults {
    config: StorageFaultConfig,
    rng: SimRng,
    enabled: bool,
}

/// What happens to one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFate {
    /// It is stored.
    Persist,
    /// It is acknowledged but not stored.
    Lose,
}

/// What happens to one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFate {
    /// The stored bytes come back.
    Intact,
    /// The stored bytes come back with one bit flipped; `bit_seed` picks which.
    Corrupt {
        /// Chooses the flipped bit (taken modulo the value's length in bits).
        bit_seed: u64,
    },
}

impl StorageFaults {
    /// Faults for the run seeded with `seed`, drawing from stream `stream`.
    pub fn new(config: StorageFaultConfig, seed: u64, stream: u64) -> Self {
        Self {
            config,
            rng: SimRng::stream(seed, stream),
            enabled: true,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &StorageFaultConfig {
        &self.config
    }

    /// Turns faults on or off (they stop with the churn, so that the cluster can settle).
    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    /// The fate of the next write.
    pub fn write(&mut self) -> WriteFate {
        if self.enabled && self.rng.chance(self.config.lost_write_rate) {
            WriteFate::Lose
        } else {
            WriteFate::Persist
        }
    }

    /// The fate of the next read.
    pub fn read(&mut self) -> ReadFate {
        if self.enabled && self.rng.chance(self.config.corrupt_read_rate) {
            ReadFate::Corrupt {
                bit_seed: self.rng.next_u64(),
            }
        } else {
            ReadFate::Intact
        }
    }
}

/// Flips one bit of `bytes`, chosen by `bit_seed`. Empty values stay empty.
pub fn flip_bit(bytes: &mut [u8], bit_seed: u64) {
    if bytes.is_empty() {
        return;
    }
    let bit = bit_seed % (bytes.len() as u64 * 8);
    bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
}

/// The true chain the run is about: block bytes by height and heights by block hash.
#[derive(Debug, Clone, Default)]
pub struct TrueChain<H: Ord> {
    blocks: Vec<Vec<u8>>,
    height_by_hash: BTreeMap<H, u32>,
}

impl<H: Ord + Copy> TrueChain<H> {
    /// A chain from its blocks, genesis first, each with its hash.
    pub fn new(blocks: Vec<(H, Vec<u8>)>) -> Self {
        let mut height_by_hash = BTreeMap::new();
        let mut bytes = Vec::with_capacity(blocks.len());
        for (height, (hash, block)) in blocks.into_iter().enumerate() {
            let height = u32::try_from(height).expect("chain shorter than 2^32 blocks");
            let previous = height_by_hash.insert(hash, height);
            assert!(
                previous.is_none(),
                "two blocks with one hash in the true chain"
            );
            bytes.push(block);
        }
        Self {
            blocks: bytes,
            height_by_hash,
        }
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// True if the chain has no block.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The encoded block at `height`.
    pub fn block(&self, height: u32) -> Option<&[u8]> {
        self.blocks.get(height as usize).map(Vec::as_slice)
    }

    /// The height of the block with this hash, if it is in the chain.
    pub fn height_of(&self, hash: &H) -> Option<u32> {
        self.height_by_hash.get(hash).copied()
    }

    /// Checks bytes a node asked to store under block hash `hash`.
    pub fn check(&self, hash: &H, bytes: &[u8]) -> BlockCheck {
        match self.height_of(hash) {
            None => BlockCheck::NotInChain,
            Some(height) if self.blocks[height as usize] == bytes => BlockCheck::Valid(height),
            Some(height) => BlockCheck::WrongBytes(height),
        }
    }
}

/// The verdict on a block a node asked to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockCheck {
    /// Exactly the true block at this height.
    Valid(u32),
    /// The hash is in the chain but the bytes differ from the true block.
    WrongBytes(u32),
    /// No block of the chain has this hash.
    NotInChain,
}

/// A stored value: a block of the true chain (kept by height) or other bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// The true chain's block at this height.
    Block(u32),
    /// Anything else, kept as given.
    Bytes(Box<[u8]>),
}

/// One host's storage.
#[derive(Debug, Clone)]
pub struct HostStore<K: Ord> {
    entries: BTreeMap<K, Stored>,
}

impl<K: Ord> Default for HostStore<K> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }
}

impl<K: Ord> HostStore<K> {
    /// Stores `value` under `key`, returning what was there.
    pub fn put(&mut self, key: K, value: Stored) -> Option<Stored> {
        self.entries.insert(key, value)
    }

    /// The value under `key`.
    pub fn get(&self, key: &K) -> Option<&Stored> {
        self.entries.get(key)
    }

    /// Removes the value under `key`, returning it.
    pub fn delete(&mut self, key: &K) -> Option<Stored> {
        self.entries.remove(key)
    }

    /// Every entry in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &Stored)> {
        self.entries.iter()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets everything (a host returning without its data).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn true_chain_tells_valid_from_tampered() {
        let chain = TrueChain::new(vec![(10u8, vec![1, 2, 3]), (20u8, vec![4, 5])]);
        assert_eq!(chain.check(&20, &[4, 5]), BlockCheck::Valid(1));
        assert_eq!(chain.check(&20, &[4, 6]), BlockCheck::WrongBytes(1));
        assert_eq!(chain.check(&30, &[4, 5]), BlockCheck::NotInChain);
    }

    #[test]
    fn flip_bit_changes_exactly_one_bit() {
        for seed in 0..100 {
            let original = vec![0xA5u8; 13];
            let mut bytes = original.clone();
            flip_bit(&mut bytes, seed);
            let differing: u32 = original
                .iter()
                .zip(&bytes)
                .map(|(a, b)| (a ^ b).count_ones())
                .sum();
            assert_eq!(differing, 1);
        }
        let mut empty: Vec<u8> = Vec::new();
        flip_bit(&mut empty, 5);
        assert!(empty.is_empty());
    }

    #[test]
    fn disabled_faults_never_fire() {
        let config = StorageFaultConfig {
            lost_write_rate: 1.0,
            corrupt_read_rate: 1.0,
        };
        let mut faults = StorageFaults::new(config, 1, 0);
        assert_eq!(faults.write(), WriteFate::Lose);
        assert!(matches!(faults.read(), ReadFate::Corrupt { .. }));
        faults.set_enabled(false);
        assert_eq!(faults.write(), WriteFate::Persist);
        assert_eq!(faults.read(), ReadFate::Intact);
    }
}
