//! The simulated disk of one host, as the [`BlockStore`] that [`shoal_host::execute`] carries
//! the node's storage commands out on — the one executor every shell uses.
//!
//! The disk is the host's [`HostStore`] and key/value map, with the world's faults (see
//! [`crate::storage`]): a block put or a batch of records may be lost though acknowledged, a
//! block or record read may come back with one bit flipped. It also checks every block put
//! against the true chain ([`Invariant::NoUnverifiedStore`]) and keeps the replica counts of
//! the host's cluster. So that it can flag what a node should not have stored, it accepts
//! every put ([`BlockStore::accepts`] returns true) and keeps unverified bytes as they came.
//!
//! A hollow adversary's disk (`AdversaryKind::Hollow`, issue 16) acknowledges every block put
//! and lists the block among the stored ones from then on, but keeps nothing: every read of
//! it finds nothing, and it never counts as a replica.
//!
//! Each command is executed alone, at once, in the order the node gave it — so the fault
//! draws come in the same order as the commands — and its result is delivered
//! [`STORAGE_LATENCY_MS`] later through the world's queue. The disk's futures are ready when
//! first polled.

use std::convert::Infallible;

use futures::FutureExt;
use shoal_core::node::{KvOp, KvRecord, StorageCommand};
use shoal_core::wire::BlockHash;
use shoal_host::{BlockStore, Write};

use super::{HostIdx, SimEvent, World, WorldError, STORAGE_LATENCY_MS};
use crate::invariants::Invariant;
use crate::replicas::Cause;
use crate::storage::{flip_bit, BlockCheck, HostStore, ReadFate, Stored, WriteFate};

/// The disk of `host`, borrowed from the world for one command.
struct Disk<'w> {
    world: &'w mut World,
    host: HostIdx,
}

impl BlockStore for Disk<'_> {
    type Error = Infallible;

    /// Every put is taken, to be checked against the true chain as it is written.
    fn accepts(&mut self, _hash: &BlockHash, _bytes: &[u8]) -> bool {
        true
    }

    async fn write(&mut self, writes: &[Write<'_>]) -> Result<(), Infallible> {
        let mut records = Vec::new();
        for write in writes {
            match write {
                Write::PutBlock { hash, bytes, .. } => self.world.put(self.host, *hash, bytes),
                Write::DeleteBlock { hash } => self.world.delete(self.host, hash),
                Write::Kv(op) => records.push(*op),
            }
        }
        if !records.is_empty() {
            self.world.write_records(self.host, &records);
        }
        Ok(())
    }

    async fn block(&mut self, hash: &BlockHash) -> Result<Option<Vec<u8>>, Infallible> {
        Ok(self.world.read_block(self.host, hash))
    }

    async fn block_hashes(&mut self) -> Result<Vec<BlockHash>, Infallible> {
        let host = &self.world.hosts[self.host as usize];
        Ok(self
            .store()
            .iter()
            .map(|(hash, _)| *hash)
            .chain(host.hollow.iter().copied())
            .collect())
    }

    async fn kv_records(&mut self) -> Result<Vec<KvRecord>, Infallible> {
        Ok(self.world.read_records(self.host))
    }
}

impl Disk<'_> {
    fn store(&self) -> &HostStore<BlockHash> {
        &self.world.hosts[self.host as usize].store
    }
}

impl World {
    /// Carries out one storage command of the node on `host` on its simulated disk, through
    /// [`shoal_host::execute`], and queues the result.
    pub(super) fn storage(
        &mut self,
        host: HostIdx,
        command: StorageCommand,
    ) -> Result<(), WorldError> {
        let now_ms = self.queue.now_ms();
        let mut disk = Disk { world: self, host };
        let (mut results, error) = shoal_host::execute(&mut disk, std::slice::from_ref(&command))
            .now_or_never()
            .expect("the simulated disk answers at once");
        if let Some(never) = error {
            match never {}
        }
        let result = results.pop().expect("one result per command");
        let incarnation = self.hosts[host as usize].incarnation;
        self.queue.schedule(
            now_ms + STORAGE_LATENCY_MS,
            SimEvent::Storage {
                host,
                incarnation,
                result: Box::new(result),
            },
        )?;
        Ok(())
    }

    /// A block write: checked against the true chain, maybe lost, counted as a replica.
    fn put(&mut self, host: HostIdx, block_hash: BlockHash, bytes: &[u8]) {
        let now_ms = self.queue.now_ms();
        let index = host as usize;
        self.log.checked(Invariant::NoUnverifiedStore, 1);
        let value = match self.chain.check(&block_hash, bytes) {
            BlockCheck::Valid(height) => Stored::Block(height),
            verdict => {
                let detail = match verdict {
                    BlockCheck::WrongBytes(height) => format!(
                        "node {:?} (host {host}) stored {} bytes under the hash of block {height} that are not that block",
                        self.hosts[index].id,
                        bytes.len()
                    ),
                    _ => format!(
                        "node {:?} (host {host}) stored {} bytes under a hash that is in no block of the chain",
                        self.hosts[index].id,
                        bytes.len()
                    ),
                };
                self.log
                    .violate(now_ms, Invariant::NoUnverifiedStore, detail);
                Stored::Bytes(bytes.into())
            }
        };
        let cluster = self.hosts[index].cluster;
        if self.serving.hollow(host) {
            self.hosts[index].hollow.insert(block_hash);
            return;
        }
        // Archives stand in for the block source (a relay backed by a full node, which can
        // always supply a block again): their writes are not lost.
        if !self.hosts[index].archive && self.faults.write() == WriteFate::Lose {
            self.counters.lost_writes += 1;
            if let (Stored::Block(height), Some(cluster)) = (&value, cluster) {
                self.replicas
                    .note_silent_failure(cluster, *height, now_ms, self.silent_failure_ms);
            }
            return;
        }
        let new_height = match &value {
            Stored::Block(height) => Some(*height),
            Stored::Bytes(_) => None,
        };
        let previous = self.hosts[index].store.put(block_hash, value);
        let old_height = match previous {
            Some(Stored::Block(height)) => Some(height),
            _ => None,
        };
        let Some(cluster) = cluster else {
            return;
        };
        match (old_height, new_height) {
            (None, Some(height)) => {
                if self.replicas.reached_p(cluster, height) {
                    self.counters.moved_bytes += self.block_len(height);
                }
                self.replicas.add_holder(cluster, height, now_ms);
            }
            (Some(height), None) => self.drop_holder(cluster, height, Cause::Overwritten),
            _ => {}
        }
    }

    /// A block deleted: one holder fewer in the host's cluster.
    fn delete(&mut self, host: HostIdx, block_hash: &BlockHash) {
        let index = host as usize;
        self.hosts[index].hollow.remove(block_hash);
        let previous = self.hosts[index].store.delete(block_hash);
        if let (Some(Stored::Block(height)), Some(cluster)) = (previous, self.hosts[index].cluster)
        {
            self.drop_holder(cluster, height, Cause::Deleted);
        }
    }

    /// A block read, maybe corrupted. A fault is drawn for every read, found or not.
    fn read_block(&mut self, host: HostIdx, block_hash: &BlockHash) -> Option<Vec<u8>> {
        let index = host as usize;
        let mut bytes = match self.hosts[index].store.get(block_hash) {
            Some(Stored::Block(height)) => self.chain.block(*height).map(<[u8]>::to_vec),
            Some(Stored::Bytes(bytes)) => Some(bytes.to_vec()),
            None => None,
        };
        if let (Some(value), ReadFate::Corrupt { bit_seed }) = (bytes.as_mut(), self.faults.read())
        {
            self.counters.corrupt_reads += 1;
            flip_bit(value, bit_seed);
        }
        bytes
    }

    /// One batch of key/value records: written together or lost together (acknowledged all
    /// the same).
    fn write_records(&mut self, host: HostIdx, ops: &[&KvOp]) {
        let index = host as usize;
        self.counters.kv_writes += 1;
        if !self.hosts[index].archive && self.kv_faults.write() == WriteFate::Lose {
            self.counters.kv_lost_writes += 1;
            return;
        }
        let kv = &mut self.hosts[index].kv;
        for op in ops {
            match op {
                KvOp::Put { key, value } => {
                    kv.insert(key.as_slice().into(), value.as_slice().into());
                }
                KvOp::Delete { key } => {
                    kv.remove(key.as_slice());
                }
            }
        }
    }

    /// Every key/value record, each value maybe corrupted.
    fn read_records(&mut self, host: HostIdx) -> Vec<KvRecord> {
        let index = host as usize;
        let mut records = Vec::with_capacity(self.hosts[index].kv.len());
        for (key, value) in &self.hosts[index].kv {
            let mut value = value.to_vec();
            if let ReadFate::Corrupt { bit_seed } = self.kv_faults.read() {
                self.counters.kv_corrupt_reads += 1;
                flip_bit(&mut value, bit_seed);
            }
            records.push((key.to_vec(), value));
        }
        records
    }
}

#[cfg(test)]
mod tests {
    use shoal_core::node::StorageResult;

    use super::*;
    use crate::storage::{StorageFaultConfig, StorageFaults};
    use crate::world::tests::calm;

    /// Request ids far from the nodes' own.
    const REQUEST: u64 = 1 << 50;

    /// Carries out `command` on `host`'s disk as a node's output is, and returns its result
    /// once the world's queue delivers it.
    fn carry_out(world: &mut World, host: HostIdx, command: StorageCommand) -> StorageResult {
        let due_ms = world.queue.now_ms() + STORAGE_LATENCY_MS;
        world.storage(host, command).unwrap();
        while let Some((at_ms, event)) = world.queue.pop() {
            if let SimEvent::Storage {
                host: to, result, ..
            } = event
            {
                let ours = match &*result {
                    StorageResult::Put { request_id, .. }
                    | StorageResult::Got { request_id, .. }
                    | StorageResult::KvWritten { request_id, .. }
                    | StorageResult::KvListed { request_id, .. } => *request_id >= REQUEST,
                    _ => false,
                };
                if to == host && ours {
                    assert_eq!(at_ms, due_ms, "a storage result takes STORAGE_LATENCY_MS");
                    return *result;
                }
            }
        }
        panic!("no result for the command");
    }

    fn faults(lost_write_rate: f64, corrupt_read_rate: f64) -> StorageFaults {
        let config = StorageFaultConfig {
            lost_write_rate,
            corrupt_read_rate,
        };
        StorageFaults::new(config, 1, 99)
    }

    /// A put of `bytes` under the hash of block `height`.
    fn put(world: &World, request_id: u64, height: usize, bytes: Vec<u8>) -> StorageCommand {
        StorageCommand::Put {
            request_id,
            block_hash: BlockHash::from_byte_array(world.blocks[height].hash),
            height: height as u32,
            bytes,
        }
    }

    /// A lost write is acknowledged but not stored, and a block put is checked against the
    /// true chain even when the write is lost; an archive's writes are never lost.
    #[test]
    fn a_lost_write_is_acknowledged_and_an_unverified_one_still_flagged() {
        let mut world = World::new(calm(1)).unwrap();
        world.faults = faults(1.0, 0.0);
        let (light, archive) = (0, world.config.nodes as HostIdx);
        let block = world.blocks[3].bytes.clone();
        let hash = BlockHash::from_byte_array(world.blocks[3].hash);
        let lost_before = world.counters.lost_writes;

        let command = put(&world, REQUEST, 3, block.clone());
        let result = carry_out(&mut world, light, command);
        assert!(matches!(result, StorageResult::Put { ok: true, .. }));
        assert!(world.hosts[light as usize].store.get(&hash).is_none());
        assert_eq!(world.counters.lost_writes, lost_before + 1);
        assert_eq!(world.log.count(Invariant::NoUnverifiedStore), 0);

        let tampered = crate::chain::tamper(&block, 7);
        let command = put(&world, REQUEST + 1, 3, tampered);
        carry_out(&mut world, light, command);
        assert_eq!(world.log.count(Invariant::NoUnverifiedStore), 1);

        let command = put(&world, REQUEST + 2, 3, block);
        carry_out(&mut world, archive, command);
        assert_eq!(
            world.hosts[archive as usize].store.get(&hash),
            Some(&Stored::Block(3))
        );
    }

    /// A read may come back with one bit flipped: the node gets the corrupt bytes.
    #[test]
    fn a_corrupt_read_flips_one_bit_of_the_stored_block() {
        let mut world = World::new(calm(2)).unwrap();
        world.faults = faults(0.0, 1.0);
        let block = world.blocks[5].bytes.clone();
        let hash = BlockHash::from_byte_array(world.blocks[5].hash);
        let command = put(&world, REQUEST, 5, block.clone());
        carry_out(&mut world, 0, command);
        let corrupt_before = world.counters.corrupt_reads;
        let get = StorageCommand::Get {
            request_id: REQUEST + 1,
            block_hash: hash,
        };
        let StorageResult::Got {
            bytes: Some(bytes), ..
        } = carry_out(&mut world, 0, get)
        else {
            panic!("the stored block is read back");
        };
        let flipped: u32 = block
            .iter()
            .zip(&bytes)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        assert_eq!((bytes.len(), flipped), (block.len(), 1));
        assert_eq!(world.counters.corrupt_reads, corrupt_before + 1);
    }

    /// A batch of records is lost as a whole, and acknowledged all the same; without faults
    /// it reads back.
    #[test]
    fn a_batch_of_records_is_lost_whole_or_kept_whole() {
        let mut world = World::new(calm(3)).unwrap();
        let ops = vec![
            KvOp::Put {
                key: b"a".to_vec(),
                value: b"1".to_vec(),
            },
            KvOp::Put {
                key: b"b".to_vec(),
                value: b"2".to_vec(),
            },
        ];
        let write = |request_id| StorageCommand::WriteKv {
            request_id,
            ops: ops.clone(),
        };
        world.hosts[0].kv.clear();
        world.kv_faults = faults(1.0, 0.0);
        let result = carry_out(&mut world, 0, write(REQUEST));
        assert!(matches!(result, StorageResult::KvWritten { ok: true, .. }));
        assert!(world.hosts[0].kv.is_empty());

        world.kv_faults = faults(0.0, 0.0);
        carry_out(&mut world, 0, write(REQUEST + 1));
        let list = StorageCommand::ListKv {
            request_id: REQUEST + 2,
        };
        let StorageResult::KvListed { records, .. } = carry_out(&mut world, 0, list) else {
            panic!("records are listed");
        };
        assert_eq!(
            records,
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"2".to_vec())
            ]
        );
    }
}
