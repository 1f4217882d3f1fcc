//! A small deterministic network of [`Node`]s with virtual time, for the core's own tests
//! (the full simulator lives in `shoal-sim`). Messages take `latency_ms`; nodes can be crashed
//! and the network partitioned; storage is an in-memory map per node.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::chain_seam::{synthetic_chain, BlockHash, HeaderList, HeaderPrefix};
use crate::node::{
    Candidate, Config, Event, Input, KvOp, Node, NodeId, Output, StorageCommand, StorageResult,
    TimerId,
};
use crate::wire::{encode, Message, NodeRecord};

pub(crate) struct Net {
    pub(crate) nodes: Vec<Node>,
    pub(crate) stores: Vec<HashMap<BlockHash, Vec<u8>>>,
    /// Each node's key/value records (its transaction index).
    pub(crate) kv: Vec<BTreeMap<Vec<u8>, Vec<u8>>>,
    pub(crate) events: Vec<Vec<Event>>,
    queue: BTreeMap<(u64, u64), (usize, Input)>,
    seq: u64,
    pub(crate) now_ms: u64,
    pub(crate) latency_ms: u64,
    pub(crate) down: Vec<bool>,
    /// Partition group per node; messages cross only within a group.
    pub(crate) group: Vec<u8>,
    index: HashMap<NodeId, usize>,
    pub(crate) chain: Arc<HeaderList>,
    pub(crate) blocks: Vec<Vec<u8>>,
    /// Bytes of encoded messages delivered.
    pub(crate) bytes_sent: u64,
    /// Corrupt every block node `i` serves.
    pub(crate) corrupt_server: Option<usize>,
    /// Encode every message to count bytes (off for timing runs).
    pub(crate) count_bytes: bool,
    /// Messages delivered.
    pub(crate) messages: u64,
    /// Messages delivered, by kind.
    pub(crate) by_kind: BTreeMap<&'static str, u64>,
    /// Hellos sent to each node.
    pub(crate) hellos_to: Vec<u64>,
    /// Timers each node set, by id.
    pub(crate) timers_set: Vec<BTreeMap<TimerId, u64>>,
    /// Messages of these kinds from these nodes are lost on the way: (node, kind).
    pub(crate) muted: Vec<(usize, &'static str)>,
    /// How many of each node's next `List`s fail (`StorageResult::ListFailed`).
    pub(crate) failing_lists: Vec<u32>,
    /// Nodes whose store refuses every block write (a full disk, an exhausted quota).
    pub(crate) refusing_puts: Vec<bool>,
    /// Nodes whose store keeps nothing but says it does (issue 16's liar): every write is
    /// acknowledged and listed, no block is ever there to read.
    pub(crate) hollow: Vec<Option<std::collections::HashSet<BlockHash>>>,
    /// Messages of this kind are kept in `kept` as they are sent (not muted, reachable).
    pub(crate) keep_kind: Option<&'static str>,
    /// (sent at, from, to, message) of every message of `keep_kind` sent.
    pub(crate) kept: Vec<(u64, usize, usize, Message)>,
}

impl Net {
    /// `configs.len()` nodes; node 0 is an archive holding `blocks` blocks if `archive`.
    pub(crate) fn new(configs: Vec<Config>, blocks: u32, seed: u64) -> Net {
        let (chain, raw) = synthetic_chain(blocks, 100);
        let chain = Arc::new(chain);
        let mut net = Net {
            nodes: Vec::new(),
            stores: Vec::new(),
            kv: Vec::new(),
            events: Vec::new(),
            queue: BTreeMap::new(),
            seq: 0,
            now_ms: 0,
            latency_ms: 10,
            down: Vec::new(),
            group: Vec::new(),
            index: HashMap::new(),
            chain,
            blocks: raw,
            bytes_sent: 0,
            corrupt_server: None,
            count_bytes: true,
            messages: 0,
            by_kind: BTreeMap::new(),
            hellos_to: Vec::new(),
            failing_lists: Vec::new(),
            refusing_puts: Vec::new(),
            hollow: Vec::new(),
            timers_set: Vec::new(),
            muted: Vec::new(),
            keep_kind: None,
            kept: Vec::new(),
        };
        for config in configs {
            net.add(config, seed);
        }
        net
    }

    pub(crate) fn add(&mut self, mut config: Config, seed: u64) -> usize {
        let i = self.nodes.len();
        let id = NodeId::from_seed(seed * 1000 + i as u64);
        config.address = format!("/sim/{i}");
        config.segment = i as u32 % 3;
        let node = Node::new(config, id, seed + i as u64).expect("valid config");
        self.index.insert(id, i);
        self.nodes.push(node);
        self.stores.push(HashMap::new());
        self.kv.push(BTreeMap::new());
        self.events.push(Vec::new());
        self.timers_set.push(BTreeMap::new());
        self.hellos_to.push(0);
        self.failing_lists.push(0);
        self.refusing_puts.push(false);
        self.hollow.push(None);
        self.down.push(false);
        self.group.push(0);
        let headers = Arc::new(HeaderPrefix::new(self.chain.clone(), u32::MAX));
        self.schedule(0, i, Input::Start);
        self.schedule(0, i, Input::Headers(headers));
        i
    }

    pub(crate) fn id(&self, i: usize) -> NodeId {
        self.nodes[i].id()
    }

    /// Gives node `i` every block from the block source (for archives).
    pub(crate) fn feed_blocks(&mut self, i: usize) {
        for b in self.blocks.clone() {
            self.schedule(1, i, Input::NewBlock { bytes: b });
        }
    }

    /// Tells every node about every other (as a directory would).
    pub(crate) fn introduce_all(&mut self) {
        let all: Vec<Candidate> = (0..self.nodes.len())
            .map(|j| Candidate {
                id: self.id(j),
                address: format!("/sim/{j}"),
            })
            .collect();
        for i in 0..self.nodes.len() {
            let mine: Vec<Candidate> = all.iter().filter(|c| c.id != self.id(i)).cloned().collect();
            self.schedule(1, i, Input::CandidatePeers(mine));
        }
    }

    /// Gives node `i` an input now (a front-end request, say).
    pub(crate) fn input(&mut self, i: usize, input: Input) {
        self.schedule(0, i, input);
    }

    /// Tells every node about `count` others (a directory's sample).
    pub(crate) fn introduce_some(&mut self, ids: &[NodeId], count: usize) {
        let n = ids.len();
        for i in 0..n {
            let picks: Vec<Candidate> =
                std::iter::once(0) // everyone knows the archive (a relay)
                    .chain((1..=count).map(|k| (i + k * 7919 % n.max(1) + k) % n))
                    .filter(|j| *j != i)
                    .map(|j| Candidate {
                        id: ids[j],
                        address: format!("/sim/{j}"),
                    })
                    .collect();
            self.schedule(1, i, Input::CandidatePeers(picks));
        }
    }

    fn schedule(&mut self, delay_ms: u64, node: usize, input: Input) {
        self.seq += 1;
        self.queue
            .insert((self.now_ms + delay_ms, self.seq), (node, input));
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        !self.down[a] && !self.down[b] && self.group[a] == self.group[b]
    }

    /// Runs until virtual time `until_ms` (bounded by the event count as well).
    pub(crate) fn run_until(&mut self, until_ms: u64) {
        let mut steps = 0u64;
        while let Some((&(at, seq), _)) = self.queue.iter().next() {
            if at > until_ms {
                break;
            }
            steps += 1;
            assert!(steps < 500_000_000, "runaway simulation");
            let (node, input) = self.queue.remove(&(at, seq)).expect("present");
            self.now_ms = at;
            if self.down[node] {
                continue;
            }
            self.nodes[node].handle_input(at, input);
            while let Some(output) = self.nodes[node].poll_output() {
                self.carry_out(node, output);
            }
        }
        self.now_ms = until_ms;
    }

    /// Carries out every output node `i` has queued: for a test that changed the node's
    /// state directly rather than through an input.
    pub(crate) fn flush(&mut self, i: usize) {
        while let Some(output) = self.nodes[i].poll_output() {
            self.carry_out(i, output);
        }
    }

    fn carry_out(&mut self, from: usize, output: Output) {
        match output {
            Output::Send { to, mut message } => {
                let Some(&to) = self.index.get(&to) else {
                    return;
                };
                if !self.reachable(from, to) || self.muted.contains(&(from, message.kind())) {
                    return;
                }
                if self.keep_kind == Some(message.kind()) {
                    self.kept.push((self.now_ms, from, to, message.clone()));
                }
                if self.corrupt_server == Some(from) {
                    if let Message::BlockData { block, .. } = &mut message {
                        let last = block.len() - 1;
                        block[last] ^= 1;
                    }
                }
                if self.count_bytes {
                    self.bytes_sent += encode(&message).expect("encodable").len() as u64;
                }
                self.messages += 1;
                *self.by_kind.entry(message.kind()).or_default() += 1;
                if matches!(message, Message::Hello { .. }) {
                    self.hellos_to[to] += 1;
                }
                let id = self.id(from);
                self.schedule(self.latency_ms, to, Input::Message { from: id, message });
            }
            Output::Connect { peer, .. } => {
                let Some(&to) = self.index.get(&peer) else {
                    return;
                };
                if !self.reachable(from, to) {
                    return;
                }
                let (a, b) = (self.id(from), peer);
                self.schedule(self.latency_ms, from, Input::PeerConnected { peer: b });
                self.schedule(self.latency_ms, to, Input::PeerConnected { peer: a });
            }
            Output::SetTimer { id, at_ms } => {
                *self.timers_set[from].entry(id).or_default() += 1;
                let delay = at_ms.saturating_sub(self.now_ms);
                self.schedule(delay, from, Input::TimerFired(id));
            }
            Output::Storage(command) => {
                let result = match command {
                    StorageCommand::Put { request_id, .. } if self.refusing_puts[from] => {
                        StorageResult::Put {
                            request_id,
                            ok: false,
                        }
                    }
                    StorageCommand::Put {
                        request_id,
                        block_hash,
                        ..
                    } if self.hollow[from].is_some() => {
                        if let Some(claimed) = self.hollow[from].as_mut() {
                            claimed.insert(block_hash);
                        }
                        StorageResult::Put {
                            request_id,
                            ok: true,
                        }
                    }
                    StorageCommand::Put {
                        request_id,
                        block_hash,
                        bytes,
                        ..
                    } => {
                        self.stores[from].insert(block_hash, bytes);
                        StorageResult::Put {
                            request_id,
                            ok: true,
                        }
                    }
                    StorageCommand::Get {
                        request_id,
                        block_hash,
                    } => StorageResult::Got {
                        request_id,
                        bytes: self.stores[from].get(&block_hash).cloned(),
                    },
                    StorageCommand::Delete {
                        request_id,
                        block_hash,
                    } => {
                        self.stores[from].remove(&block_hash);
                        if let Some(claimed) = self.hollow[from].as_mut() {
                            claimed.remove(&block_hash);
                        }
                        StorageResult::Deleted { request_id }
                    }
                    StorageCommand::List { request_id } if self.failing_lists[from] > 0 => {
                        self.failing_lists[from] -= 1;
                        StorageResult::ListFailed { request_id }
                    }
                    StorageCommand::List { request_id } => StorageResult::Listed {
                        request_id,
                        blocks: self.stores[from]
                            .keys()
                            .chain(self.hollow[from].iter().flatten())
                            .copied()
                            .collect(),
                    },
                    StorageCommand::WriteKv { request_id, ops } => {
                        let kv = &mut self.kv[from];
                        for op in ops {
                            match op {
                                KvOp::Put { key, value } => {
                                    kv.insert(key, value);
                                }
                                KvOp::Delete { key } => {
                                    kv.remove(&key);
                                }
                            }
                        }
                        StorageResult::KvWritten {
                            request_id,
                            ok: true,
                        }
                    }
                    StorageCommand::ListKv { request_id } => StorageResult::KvListed {
                        request_id,
                        records: self.kv[from]
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    },
                };
                self.schedule(1, from, Input::Storage(result));
            }
            Output::Event(event) => self.events[from].push(event),
        }
    }

    /// Delivers `message` to node `to` as if from `from` (which need not be a node).
    pub(crate) fn inject(&mut self, to: usize, from: NodeId, message: Message) {
        self.schedule(1, to, Input::Message { from, message });
    }

    /// Crashes node `i`: it stops receiving, sending and firing timers.
    pub(crate) fn crash(&mut self, i: usize) {
        self.down[i] = true;
    }

    /// Restarts a crashed node with a fresh state machine over its old store (a reload).
    pub(crate) fn restart(&mut self, i: usize, config: Config, seed: u64) {
        self.down[i] = false;
        let id = self.id(i);
        let mut config = config;
        config.address = format!("/sim/{i}");
        config.segment = i as u32 % 3;
        self.nodes[i] = Node::new(config, id, seed).expect("valid config");
        let headers = Arc::new(HeaderPrefix::new(self.chain.clone(), u32::MAX));
        self.schedule(0, i, Input::Start);
        self.schedule(0, i, Input::Headers(headers));
    }

    /// Member ids of node `i`'s cluster, if any.
    pub(crate) fn cluster_of(
        &self,
        i: usize,
    ) -> Option<(crate::cluster::ClusterId, u64, Vec<NodeId>)> {
        if self.down[i] {
            return None;
        }
        self.nodes[i].cluster()
    }

    /// Checks that no node is in two clusters and that members of one cluster agree: every
    /// node a live member lists as a member and that is live has the same cluster and view.
    /// Returns the clusters found: id → member indices.
    pub(crate) fn check_clusters(&self) -> HashMap<crate::cluster::ClusterId, Vec<usize>> {
        let mut clusters: HashMap<_, Vec<usize>> = HashMap::new();
        for i in 0..self.nodes.len() {
            if let Some((cluster, _, _)) = self.cluster_of(i) {
                clusters.entry(cluster).or_default().push(i);
            }
        }
        for (cluster, members) in &clusters {
            let views: Vec<_> = members
                .iter()
                .map(|i| self.cluster_of(*i).unwrap())
                .collect();
            for (i, (_, epoch, ids)) in members.iter().zip(&views) {
                assert!(ids.contains(&self.id(*i)), "node {i} not in its own view");
                assert_eq!(
                    (*epoch, ids),
                    (views[0].1, &views[0].2),
                    "members of {cluster:?} disagree on the view"
                );
                assert!(ids.len() <= self.nodes[*i].config().cluster_size_max);
            }
        }
        clusters
    }

    /// Whether the live members of each cluster hold the same view (epoch and members) now;
    /// [`Net::check_clusters`] asserts it.
    pub(crate) fn views_agree(&self) -> bool {
        let mut views: HashMap<crate::cluster::ClusterId, (u64, Vec<NodeId>)> = HashMap::new();
        (0..self.nodes.len()).all(|i| match self.cluster_of(i) {
            None => true,
            Some((cluster, epoch, ids)) => {
                let first = views.entry(cluster).or_insert_with(|| (epoch, ids.clone()));
                *first == (epoch, ids)
            }
        })
    }

    /// No live node is listed in the view of a cluster it is not a member of (S3: a node is in
    /// at most one cluster, and clusters drop nodes that went elsewhere).
    pub(crate) fn check_exclusive(&self) {
        for i in 0..self.nodes.len() {
            let Some((cluster, _, ids)) = self.cluster_of(i) else {
                continue;
            };
            for id in ids {
                let j = self.index[&id];
                if self.down[j] {
                    continue;
                }
                let theirs = self.cluster_of(j).map(|c| c.0);
                assert_eq!(
                    theirs,
                    Some(cluster),
                    "node {j} is listed by {cluster:?} but is in {theirs:?}"
                );
            }
        }
    }

    /// Per height, how many live nodes of `members` really have the block in their store
    /// (whatever they believe).
    pub(crate) fn true_copies(&self, members: &[usize]) -> Vec<usize> {
        self.blocks
            .iter()
            .map(|block| {
                let hash = BlockHash(crate::chain_seam::sha256d(&block[..80]));
                members
                    .iter()
                    .filter(|i| !self.down[**i] && self.stores[**i].get(&hash) == Some(block))
                    .count()
            })
            .collect()
    }

    /// S18: every block of the chain is stored by at least `min` live members of `members`.
    pub(crate) fn copies(&self, members: &[usize]) -> Vec<usize> {
        (0..self.blocks.len() as u32)
            .map(|h| {
                members
                    .iter()
                    .filter(|i| !self.down[**i] && self.nodes[**i].holds(h))
                    .count()
            })
            .collect()
    }
}

// Shared fixtures of the core's tests.

/// Short timeouts, so that small networks settle in seconds of virtual time.
pub(crate) fn fast_config() -> Config {
    Config {
        formation_interval_ms: 1_000,
        invite_timeout_ms: 300,
        invite_collect_ms: 50,
        accept_timeout_ms: 1_000,
        heartbeat_interval_ms: 500,
        offline_after_ms: 2_000,
        repair_request_timeout_ms: 500,
        repair_retry_ms: 1_000,
        repair_interval_ms: 100,
        ..Config::default()
    }
}

/// An archive with [`fast_config`].
pub(crate) fn archive_config() -> Config {
    Config {
        archive: true,
        ..fast_config()
    }
}

/// An archive (node 0, holding `blocks` blocks) and `n` ordinary nodes, all introduced.
pub(crate) fn network(n: usize, blocks: u32, config: Config, seed: u64) -> Net {
    let mut configs = vec![archive_config()];
    configs.extend(std::iter::repeat_n(config, n));
    let mut net = Net::new(configs, blocks, seed);
    net.feed_blocks(0);
    net.introduce_all();
    net
}

/// Forms one cluster of `n` and returns its member indices.
pub(crate) fn formed(n: usize, config: Config, seed: u64, blocks: u32) -> (Net, Vec<usize>) {
    let mut net = network(n, blocks, config, seed);
    net.run_until(10_000);
    let clusters = net.check_clusters();
    assert_eq!(clusters.len(), 1, "seed {seed}: {clusters:?}");
    let mut members = clusters.into_values().next().unwrap();
    members.sort();
    (net, members)
}

/// Asserts that every block is on at least `p` of `members`.
pub(crate) fn all_replicated(net: &Net, members: &[usize], p: usize) {
    let copies = net.copies(members);
    for (height, c) in copies.iter().enumerate() {
        assert!(*c >= p, "block {height} has {c} copies, want {p}");
    }
}

/// Every output the node has queued.
pub(crate) fn drain(node: &mut Node) -> Vec<Output> {
    std::iter::from_fn(|| node.poll_output()).collect()
}

/// One input, then the drain the contract requires.
pub(crate) fn feed(node: &mut Node, now_ms: u64, input: Input) -> Vec<Output> {
    node.handle_input(now_ms, input);
    drain(node)
}

/// An ordinary node's record.
pub(crate) fn record(blocks_served: u64, capacity_bytes: u64) -> NodeRecord {
    NodeRecord {
        blocks_served,
        capacity_bytes,
        segment: 0,
        device: 0,
        archive: false,
    }
}
