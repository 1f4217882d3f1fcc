//! What goes into a node and what comes out of it.

use crate::base::NodeId;
use crate::chain::Txid;
use crate::chain_seam::{BlockHash, SharedHeaders};
use crate::cluster::{ClusterId, FailureDomains};
use crate::serve::cache::CacheError;
use crate::serve::query::QueryResult;
use crate::serve::txindex::KvOp;
use crate::wire::Message;

/// A timer the node asks its shell to run. Setting a timer replaces any pending timer with the
/// same id; a timer that fires early or twice is harmless (the node keeps its own deadlines).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerId {
    /// Ordinary node: time for an invitation round (S1) or to ask to join (S13).
    Formation,
    /// Inviter: replies are due (S1, S2, S12). Invitee: pick among collected invitations (S3);
    /// or a confirmed invitation's view is overdue.
    Invitation,
    /// Member: send heartbeats and check who fell silent (S9, S10).
    Heartbeat,
    /// Member: a watched member's silence reaches `offline_after_ms` before the next
    /// heartbeat is due (S9, S10): detection does not wait for the heartbeat's tick.
    Silence,
    /// Member: the cluster id lapses (S4).
    ClusterExpiry,
    /// Repair pacing and fetch timeouts (S11).
    Repair,
    /// Serving: query waves and timeouts, fetch timeouts (S16, S17).
    Serve,
}

/// The pending timers of one node, for a shell that runs them on a clock of its own: at most
/// one deadline per [`TimerId`] (setting one replaces it), in milliseconds of the shell's clock.
#[derive(Clone, Debug, Default)]
pub struct Timers {
    at_ms: [Option<u64>; TimerId::COUNT],
}

impl Timers {
    /// [`Output::SetTimer`]: `id` is due at `at_ms`.
    pub fn set(&mut self, id: TimerId, at_ms: u64) {
        self.at_ms[id as usize] = Some(at_ms);
    }

    /// The pending deadline of `id`.
    pub fn get(&self, id: TimerId) -> Option<u64> {
        self.at_ms[id as usize]
    }

    /// The earliest pending deadline.
    pub fn next_ms(&self) -> Option<u64> {
        self.at_ms.iter().flatten().min().copied()
    }

    /// Removes and returns the timers due at `now_ms`, to feed back as
    /// [`Input::TimerFired`].
    pub fn take_due(&mut self, now_ms: u64) -> Vec<TimerId> {
        TimerId::ALL
            .into_iter()
            .filter(|id| {
                let slot = &mut self.at_ms[*id as usize];
                let due = slot.is_some_and(|at| at <= now_ms);
                if due {
                    *slot = None;
                }
                due
            })
            .collect()
    }
}

impl TimerId {
    /// How many timer ids there are.
    pub const COUNT: usize = 7;
    /// Every timer id.
    pub const ALL: [TimerId; TimerId::COUNT] = [
        TimerId::Formation,
        TimerId::Invitation,
        TimerId::Heartbeat,
        TimerId::Silence,
        TimerId::ClusterExpiry,
        TimerId::Repair,
        TimerId::Serve,
    ];
}

/// A peer the directory says we could dial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub id: NodeId,
    pub address: String,
}

/// Everything that can happen to a node.
#[derive(Clone, Debug)]
pub enum Input {
    /// The first input of a node's life: arms its timers and asks storage what it holds.
    Start,
    /// A timer set with [`Output::SetTimer`] fired.
    TimerFired(TimerId),
    /// A message arrived from a connected peer.
    Message { from: NodeId, message: Message },
    /// A connection to `peer` is up (we dialled it, or it dialled us).
    PeerConnected { peer: NodeId },
    /// The connection to `peer` is gone, or a dial to it failed.
    PeerDisconnected { peer: NodeId },
    /// A storage command finished.
    Storage(StorageResult),
    /// Peers a directory (a relay) suggests dialling.
    CandidatePeers(Vec<Candidate>),
    /// The header chain advanced (or reorganised): here is the new view of it. Shared, so
    /// many nodes may hold the same one.
    Headers(SharedHeaders),
    /// A full block from the block source (raw consensus bytes). Stored if this node must hold
    /// it (or is an archive) and it matches the header chain.
    NewBlock { bytes: Vec<u8> },
    /// The front end asks where a transaction is (S16); answered by [`Event::TxQueryDone`]
    /// with the same `query_id`.
    TxQuery {
        query_id: u64,
        txid: Txid,
        block_hint: Option<BlockHash>,
    },
    /// Make a block ready to run code on (S17): [`Event::JobReady`] then
    /// [`Node::with_block`](crate::node::Node::with_block), or [`Event::JobFailed`].
    RunJob { job: u64, block_hash: BlockHash },
    /// The storage this node can offer changed (issue 17: a browser's quota shared by more
    /// tabs, a store near its limit). Placement weighs members by capacity, so a member puts
    /// its new figure into its cluster's next view — at once, and again at a heartbeat after
    /// any view that lost the change — and the cluster moves blocks to match: away from it when
    /// it shrank (its surplus kept as spare copies until their new holders confirm, then
    /// deleted), to it when it grew. Each change is a view change: a shell reports changes that
    /// matter (a tenth or more), not every byte.
    SetCapacity { capacity_bytes: u64 },
}

/// Everything a node asks its shell to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send `message` to `to`, dialling it first if needed. If `to` cannot be reached the shell
    /// drops the message: every exchange has a timeout, so the protocol tolerates loss.
    Send { to: NodeId, message: Message },
    /// Dial a peer.
    Connect { peer: NodeId, address: String },
    /// Run `id` at time `at_ms` (same clock as `now_ms`), replacing a pending one.
    SetTimer { id: TimerId, at_ms: u64 },
    /// Carry out a storage command and feed back its [`StorageResult`].
    Storage(StorageCommand),
    /// Something the front end may want to know.
    Event(Event),
}

/// A request to the node's block store. Each carries a `request_id` that comes back in the
/// matching [`StorageResult`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageCommand {
    /// Store a block (already verified against the header chain).
    Put {
        request_id: u64,
        block_hash: BlockHash,
        height: u32,
        bytes: Vec<u8>,
    },
    /// Read a block.
    Get {
        request_id: u64,
        block_hash: BlockHash,
    },
    /// Delete a block.
    Delete {
        request_id: u64,
        block_hash: BlockHash,
    },
    /// List the hashes of every stored block (at start).
    List { request_id: u64 },
    /// Apply a batch of key/value writes atomically (all or none). The node keeps its
    /// transaction index's records (one per held block, see [`crate::serve::txindex`]) in this
    /// key/value store, separate from the blocks.
    WriteKv { request_id: u64, ops: Vec<KvOp> },
    /// List every key/value record (at start). A shell may leave out a record it cannot read
    /// (or one larger than [`KV_VALUE_MAX`]); the node re-indexes that block from its bytes.
    ListKv { request_id: u64 },
}

/// The largest key/value record value the node writes (a transaction index record,
/// [`MAX_RECORD_BYTES`](crate::serve::txindex::MAX_RECORD_BYTES)): a shell may refuse larger
/// ones read back from disk.
pub const KV_VALUE_MAX: usize = crate::serve::txindex::MAX_RECORD_BYTES;
/// One stored key/value record: (key, value).
pub type KvRecord = (Vec<u8>, Vec<u8>);

/// The largest key/value record key the node writes.
pub const KV_KEY_MAX: usize = 64;

/// The answer to a [`StorageCommand`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageResult {
    /// A `Put` finished; `ok` is false if the block could not be written.
    Put { request_id: u64, ok: bool },
    /// A `Get` finished; `None` if the block is not stored.
    Got {
        request_id: u64,
        bytes: Option<Vec<u8>>,
    },
    /// A `Delete` finished.
    Deleted { request_id: u64 },
    /// A `List` finished.
    Listed {
        request_id: u64,
        blocks: Vec<BlockHash>,
    },
    /// A `List` failed: the store could not be read, so nothing is known of what it holds —
    /// not that it holds nothing. The node keeps what it believes it holds and lists again
    /// later (a failed audit waits for the next one; a failed start-up listing is retried after
    /// `Config::repair_retry_ms`), so a read error never makes it fetch its shard again.
    ListFailed { request_id: u64 },
    /// A `WriteKv` finished; `ok` is false if the batch could not be written (then none of
    /// it was).
    KvWritten { request_id: u64, ok: bool },
    /// A `ListKv` finished: every stored (key, value) record.
    KvListed {
        request_id: u64,
        records: Vec<KvRecord>,
    },
}

/// What happened, for the front end and for the simulator's invariants.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// This node became a member of a cluster (formed, re-formed or joined).
    JoinedCluster {
        cluster: ClusterId,
        epoch: u64,
        members: usize,
        number: usize,
    },
    /// The cluster's membership changed (S9–S13).
    ViewChanged {
        cluster: ClusterId,
        epoch: u64,
        members: usize,
        number: usize,
    },
    /// A member was declared offline (S9, S10).
    MemberOffline { member: NodeId },
    /// A member entered this node's view: every other member when this node joins a cluster
    /// (after [`Event::JoinedCluster`]), a newcomer or the other side of a healed partition
    /// when a view grows (after [`Event::ViewChanged`]).
    MemberJoined { member: NodeId },
    /// This node stopped being a member (`expired`: the id lapsed (S4); otherwise it was
    /// dropped from the view by the others).
    LeftCluster { cluster: ClusterId, expired: bool },
    /// A block was stored (after verification).
    BlockStored { block_hash: BlockHash, height: u32 },
    /// A block a peer sent did not match the header chain (and was dropped).
    BlockRejected { from: NodeId, height: u32 },
    /// A [`Input::TxQuery`] finished; a `Confirmed` result carries a proof checked against
    /// this node's header chain (S16).
    TxQueryDone {
        query_id: u64,
        txid: Txid,
        result: QueryResult,
        /// The node whose proof confirmed it; `None` when this node's own blocks did (or
        /// nothing was confirmed).
        answered_by: Option<NodeId>,
    },
    /// A [`Input::RunJob`]'s block is ready (S17).
    JobReady { job: u64, block_hash: BlockHash },
    /// A [`Input::RunJob`] cannot run.
    JobFailed {
        job: u64,
        block_hash: BlockHash,
        error: CacheError,
    },
    /// A peer sent a forged proof or an invalid block; `score` is its total here.
    PeerMisbehaved { peer: NodeId, score: u32 },
    /// P holders announced a new block (S14, S15).
    BlockSafelyStored { block_hash: BlockHash, height: u32 },
    /// A new block's re-drives ran out before P holders announced it; repair takes over.
    BlockUnderreplicated { block_hash: BlockHash, height: u32 },
    /// A mate failed its proofs of holding too often in a row (`by_us`), or another member
    /// said so (`Message::HolderFaulty`): it is dropped from the view like an offline member
    /// and kept out for `Config::faulty_ban_ms` (issue 16, `crate::repair::holding`).
    HolderFaulty { member: NodeId, by_us: bool },
    /// How the cluster spreads over failure domains, on joining and whenever a view changes
    /// it (issue 17): `spread` false says some blocks' copies share a device.
    FailureDomains(FailureDomains),
}

/// Counters a shell or simulator can read ([`Node::stats`](crate::node::Node::stats)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Invitation messages sent (S1, S12).
    pub invitations_sent: u64,
    /// Clusters this node formed as inviter (S2).
    pub clusters_formed: u64,
    /// Clusters this node joined, any way (S2, S3, S12, S13).
    pub clusters_joined: u64,
    /// Views this member proposed to tell its cluster a new capacity
    /// ([`Input::SetCapacity`]).
    pub capacity_announced: u64,
    /// Views adopted from others or made here (S9–S13).
    pub views_adopted: u64,
    /// Members this node declared offline (S9, S10).
    pub members_declared_offline: u64,
    /// Blocks the storage audit found missing although their write was acknowledged.
    pub lost_writes_found: u64,
    /// Listings of the store (`StorageCommand::List`) that failed.
    pub list_failures: u64,
    /// Block writes the store refused (`StorageResult::Put { ok: false }`).
    pub put_failures: u64,
    /// Greater views that left this node out, answered by re-adding itself (a healed
    /// partition).
    pub views_rejoined: u64,
    /// Undersized clusters this node left (`Config::undersized_leave_after_ms`).
    pub undersized_leaves: u64,
    /// Views of our cluster refused because of who sent them: a node neither in our view
    /// nor departed from it, or a view that does not list its sender (see
    /// [`crate::cluster`], "Who may change a view"). Each also counts in `messages_ignored`.
    pub views_refused: u64,
    /// Views of our cluster more than [`crate::cluster::VIEW_EPOCH_STEP_MAX`] epochs ahead
    /// of ours, taken at our epoch plus that step.
    pub view_epochs_capped: u64,
    /// Times this member left its cluster because a member its view lists kept refusing the
    /// view (see `liveness::StampVerdict::Refused`).
    pub views_left_refused: u64,
    /// Heartbeat pings sent.
    pub pings_sent: u64,
    /// Blocks fetched from other nodes and stored (S11–S13).
    pub blocks_fetched: u64,
    /// Bytes of those blocks.
    pub bytes_fetched: u64,
    /// Blocks fetched after a re-formation (S4: what re-forming moves).
    pub blocks_fetched_after_reform: u64,
    /// Bytes of those.
    pub bytes_fetched_after_reform: u64,
    /// Blocks sent to other nodes.
    pub blocks_served: u64,
    /// Bytes of those.
    pub bytes_served: u64,
    /// Blocks deleted because the view no longer assigns them here (S12), each once every
    /// holder of it under the view proved it holds it (`crate::repair::holding`).
    pub spares_evicted: u64,
    /// Challenges this member sent: "prove you hold this block" (issue 16).
    pub hold_challenges_sent: u64,
    /// Of those, answered with the right digest.
    pub hold_proofs_passed: u64,
    /// Of those, failed: a wrong digest, or "not held" for a block the mate claimed.
    pub hold_proofs_failed: u64,
    /// Of those, not answered in time (no verdict).
    pub hold_challenges_unanswered: u64,
    /// Audits this member started (one random block, one random mate that claimed it).
    pub hold_audits: u64,
    /// Challenges this member answered.
    pub hold_challenges_answered: u64,
    /// Mates this member found faulty (they failed their proofs of holding too often in a
    /// row) and dropped from its view.
    pub holders_found_faulty: u64,
    /// Mates this member dropped because another member found them faulty
    /// (`Message::HolderFaulty`).
    pub faulty_reports_taken: u64,
    /// Blocks from the block source stored here.
    pub blocks_from_source: u64,
    /// Most block fetches ever in flight at once (bounded by `repair_parallel_max`).
    pub fetches_in_flight_peak: u64,
    /// Fetches that failed (not found, timed out, failed verification).
    pub fetch_failures: u64,
    /// Blocks that failed verification against the header chain.
    pub blocks_rejected: u64,
    /// Stored blocks that read back corrupt: kept as suspect and refetched, never served.
    pub blocks_suspect: u64,
    /// Messages dropped because they made no sense in our state or failed a check.
    pub messages_ignored: u64,
    /// A block source: new blocks it announced to its light nodes (S14, S15).
    pub blocks_announced: u64,
    /// A member: block announcements taken from a block source.
    pub announcements_received: u64,
    /// A member: announced blocks it asked the block source for (its cluster's router, S14,
    /// or a holder, S15).
    pub new_blocks_requested: u64,
}
