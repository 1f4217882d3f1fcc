//! Messages between Shoal nodes and their codec (S1–S13 cluster traffic, S16 serving).
//!
//! # Overview
//!
//! [`Message`] is every message one node sends another: cluster forming (S1–S5), heartbeats
//! and membership views (S9–S10), replacement (S12–S13), block transfer for repair (S11), a
//! member's word that it holds its shard (S12, so spare copies can go) and the serving
//! messages browsers and relays exchange (headers, blocks, transaction queries).
//!
//! [`encode`] and [`decode`] give a compact, versioned, size-bounded byte form: one version
//! byte ([`WIRE_VERSION`]), one tag byte, then the fields (unsigned integers as LEB128
//! varints, hashes as 32 raw bytes, headers as their 80 consensus bytes, lists and byte
//! strings length-prefixed). Every length is checked against its limit *before* anything is
//! allocated, a whole message is at most [`MAX_MESSAGE_BYTES`], trailing bytes are refused,
//! and any malformed input gives a [`WireError`], never a panic.
//!
//! # Usage
//!
//! ```
//! use shoal_core::wire::{decode, encode, Message};
//! let ping = Message::Ping { nonce: 7, stamp: None, shard: None };
//! let bytes = encode(&ping).unwrap();
//! assert_eq!(decode(&bytes).unwrap(), ping);
//! assert!(decode(&bytes[..1]).is_err());
//! ```

mod codec;

pub use crate::base::{ClusterId, NodeId};
pub use crate::chain::{BlockHash, Hash256, Header};
pub use codec::{decode, encode, encoded_len};

/// The codec's version: the first byte of every encoded message.
///
/// It changes when the byte form of a message that exists already changes (a field added,
/// removed or re-encoded): a node then refuses every message of another version as
/// [`WireError::UnsupportedVersion`] rather than misread it. A new kind of message takes the
/// next free tag and keeps the version (as [`Message::BlockAnnounce`], tag 19,
/// [`Message::ShardHeld`], tag 20, and the proofs of holding, [`Message::HoldChallenge`],
/// [`Message::HoldProof`] and [`Message::HolderFaulty`], tags 21–23, did): a node that does
/// not know the tag refuses that message alone as [`WireError::UnknownTag`] and understands all
/// the others, so a new kind must be one an older node can do without. (An older member does
/// not answer challenges: its mates then keep the spare copies its blocks' proofs would have
/// released — the safe side.)
pub const WIRE_VERSION: u8 = 5;
/// Largest encoded message, in bytes (a maximal block plus framing fits).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Largest raw block carried in [`Message::BlockData`] (Bitcoin's 4 MWU bound on serialized size).
pub const MAX_BLOCK_BYTES: usize = 4_000_000;
/// Most headers in one [`Message::Headers`] (as Bitcoin's `headers` message).
pub const MAX_HEADERS_PER_MESSAGE: usize = 2_000;
/// Largest raw transaction carried in a [`TxAnswerBody::Found`] (a transaction fills at most
/// a whole block).
pub const MAX_TX_BYTES: usize = MAX_BLOCK_BYTES;
/// Most hashes in a Merkle branch (a block of 2^32 transactions needs 32).
pub const MAX_BRANCH_LEN: usize = 32;
/// Longest address string (a multiaddr), in bytes.
pub const MAX_ADDRESS_BYTES: usize = 512;
/// Most members a view can list; `Config::cluster_size_max` may not exceed it.
pub const MAX_VIEW_MEMBERS: usize = 64;
/// Longest byte range a [`Message::HoldChallenge`] may ask for (the challenger picks far
/// less; see [`crate::repair::holding`]).
pub const MAX_CHALLENGE_RANGE_BYTES: u32 = 64 * 1024;

/// What a node says about itself when it connects, invites or accepts (S1, S3, S12, S13).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NodeRecord {
    /// Blocks this node has served to others (its "record" or trust).
    pub blocks_served: u64,
    /// Bytes of block storage it offers.
    pub capacity_bytes: u64,
    /// Its network segment (e.g. an autonomous system or address prefix), for placement S8.
    pub segment: u32,
    /// Its failure domain: the device it runs on (tabs of one browser profile and origin
    /// share one; a relay has its own). Placement puts a block's copies on distinct devices.
    pub device: u64,
    /// Whether it is an archive (holds every block, never joins a cluster).
    pub archive: bool,
}

/// How a member's shard stands, as its heartbeat says: for what a member shows of the others
/// (a page's cluster picture and shard map). A claim, not a proof — nothing in the protocol
/// acts on it. 3–21 bytes on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardReport {
    /// Blocks it holds (its shard, spare copies included).
    pub held_blocks: u32,
    /// Blocks its current view gives it that it does not hold yet.
    pub missing_blocks: u32,
    /// Bytes of the blocks it holds, as its store counts them (0: its shell does not say).
    pub stored_bytes: u64,
}

/// One member as a view lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    pub id: NodeId,
    /// Where to dial it (at most [`MAX_ADDRESS_BYTES`]).
    pub address: String,
    pub segment: u32,
    pub capacity_bytes: u64,
    /// Its failure domain ([`NodeRecord::device`]).
    pub device: u64,
}

/// What makes a cluster id checkable: the proposer, the generation and the founding members.
///
/// `ClusterId = sha256d("shoal/cluster" ‖ generation ‖ proposer ‖ sorted founders)`; see
/// [`crate::cluster::cluster_id`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterGenesis {
    pub proposer: NodeId,
    /// Counts re-formations of the same group (S4: after a TTL the group forms again).
    pub generation: u64,
    /// Founding members, sorted by id, proposer included.
    pub founders: Vec<NodeId>,
}

/// A cluster's membership as of one epoch (S4, S5, S9–S13).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    pub cluster: ClusterId,
    pub genesis: ClusterGenesis,
    /// Grows by one with every membership change; higher epochs win.
    pub epoch: u64,
    /// Members, sorted by id. Numbers follow from the cluster id (see `cluster::numbering`).
    pub members: Vec<MemberInfo>,
    /// Time left before the cluster id lapses, as the sender counts it.
    pub expires_in_ms: u64,
}

/// A compact summary of a view carried by every heartbeat, so members notice disagreement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewStamp {
    pub cluster: ClusterId,
    pub epoch: u64,
    /// Number of members.
    pub members: u32,
    /// A digest of the member list (see [`crate::cluster::view_digest`]).
    pub digest: u64,
}

/// The answer to a transaction query (S16).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxAnswerBody {
    /// The transaction is in `block_hash` at `height`, position `pos`; `branch` is its Merkle
    /// branch; `header` is included when the asker may not have it; `tx` is the transaction's
    /// raw consensus bytes (at most [`MAX_TX_BYTES`]), taken from the block: the asker checks
    /// that they hash to the txid it asked for.
    Found {
        block_hash: BlockHash,
        height: u32,
        pos: u32,
        branch: Vec<Hash256>,
        header: Option<Header>,
        tx: Vec<u8>,
    },
    /// The answering node checked and the transaction is not in the chain it knows.
    NotFound,
    /// The answering node could not check (it does not hold the block and no member answered).
    Unavailable,
}

impl TxAnswerBody {
    /// A `Found` answer carrying `proof` and the raw transaction `tx` (without the header:
    /// the asker checks the proof against its own header chain).
    pub fn found(proof: crate::chain::MerkleProof, tx: Vec<u8>) -> TxAnswerBody {
        TxAnswerBody::Found {
            block_hash: proof.block_hash,
            height: proof.height,
            pos: proof.pos,
            branch: proof.branch,
            header: None,
            tx,
        }
    }

    /// The proof and raw transaction of a `Found` answer (the header it may carry is not part
    /// of the proof); `None` for the other answers.
    pub fn into_proof(self) -> Option<(crate::chain::MerkleProof, Vec<u8>)> {
        match self {
            TxAnswerBody::Found {
                block_hash,
                height,
                pos,
                branch,
                tx,
                ..
            } => Some((
                crate::chain::MerkleProof {
                    block_hash,
                    height,
                    pos,
                    branch,
                },
                tx,
            )),
            TxAnswerBody::NotFound | TxAnswerBody::Unavailable => None,
        }
    }
}

/// Every message between Shoal nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// First message on a new connection, both ways: who I am and whether I am in a cluster.
    Hello {
        record: NodeRecord,
        cluster: Option<ClusterId>,
        /// Members the sender's cluster would still take (0 when not in one or full).
        open_slots: u32,
    },
    /// Liveness check (S9–S10), also measures round-trip time to ordinary peers (S1). A
    /// member's heartbeat also says how its shard stands (`shard`); other pings leave it out.
    Ping {
        nonce: u64,
        stamp: Option<ViewStamp>,
        shard: Option<ShardReport>,
    },
    /// Answer to [`Message::Ping`], echoing the nonce. Members on the same view do not answer
    /// each other's heartbeat pings: their own pings are the heartbeat (see `liveness`).
    Pong {
        nonce: u64,
        stamp: Option<ViewStamp>,
    },
    /// An invitation to form a cluster (S1; `cluster` is `None`) or to join one as a
    /// replacement (S12; `cluster` is the cluster id).
    Invite {
        invite_id: u64,
        address: String,
        record: NodeRecord,
        cluster: Option<ClusterId>,
    },
    /// Confirms (`accept`) or declines an invitation (S3).
    InviteReply {
        invite_id: u64,
        accept: bool,
        address: String,
        record: NodeRecord,
    },
    /// The inviter did not take this acceptance (not enough confirmations, or full).
    InviteWithdrawn { invite_id: u64 },
    /// An outside node asks to join a cluster (S13).
    JoinRequest {
        request_id: u64,
        address: String,
        record: NodeRecord,
    },
    /// A member refuses a join request (cluster full, or the receiver is not a member).
    JoinDenied { request_id: u64 },
    /// A membership view: sent when a cluster forms, after every change, and to members whose
    /// heartbeat stamp shows an older or different view.
    View(View),
    /// Ask for up to `max_count` headers starting at `start_height`.
    GetHeaders {
        request_id: u64,
        start_height: u32,
        max_count: u32,
    },
    /// Headers from `start_height` on (at most [`MAX_HEADERS_PER_MESSAGE`]), and the height
    /// of the sender's best chain when it answered: how far the asker has to go (a page's
    /// `sync-progress` target). A claim, not a proof: only the headers themselves are checked.
    Headers {
        request_id: u64,
        start_height: u32,
        tip_height: u32,
        headers: Vec<Header>,
    },
    /// Ask for a block's raw bytes.
    GetBlock {
        request_id: u64,
        block_hash: BlockHash,
    },
    /// A block's raw consensus bytes (at most [`MAX_BLOCK_BYTES`]).
    BlockData { request_id: u64, block: Vec<u8> },
    /// The asked node does not hold (or could not read) that block.
    BlockNotFound { request_id: u64 },
    /// Where is this transaction? (S16)
    TxQuery {
        request_id: u64,
        txid: Hash256,
        block_hint: Option<BlockHash>,
    },
    /// Answer to [`Message::TxQuery`].
    TxAnswer {
        request_id: u64,
        answer: TxAnswerBody,
    },
    /// "I stored this block": a holder tells the other members (S14, S15).
    BlockStored { block_hash: BlockHash, height: u32 },
    /// A new block pushed to a member that must hold it (S14, routed storage; at most
    /// [`MAX_BLOCK_BYTES`]).
    NewBlock { block: Vec<u8> },
    /// The block source announces a new block at once, by its header alone (S14, S15): 80
    /// bytes to every light node connected to it, whether or not it must hold the block. The
    /// block's bytes then leave the source once per cluster (routed: its router asks for
    /// them) or once per holder (self-selected), with `GetBlock`; see
    /// [`crate::serve::newblock`].
    BlockAnnounce { header: Header },
    /// "I hold my whole shard under this view" (S12, third rule): a member says so once per
    /// view to every other member of it, when its repair has nothing left to fetch. A member
    /// keeping spare copies from an earlier view deletes one as soon as every holder of the
    /// block under `view` has said so (see [`crate::repair`]); a member of another view, or
    /// a node outside it, is not listened to. 44–57 bytes. A claim, as `BlockStored` is: no
    /// copy is deleted on its word alone, only once the holders answered a
    /// [`Message::HoldChallenge`] (see [`crate::repair::holding`]).
    ShardHeld { view: ViewStamp },
    /// "Prove that you hold this block" (issue 16): a member that holds `block_hash` asks a
    /// mate placement names as a holder of it, before deleting a spare copy or to audit the
    /// mate's claims. The answer is a digest over `nonce`, the answerer's id and the block's
    /// bytes from `offset` modulo the block's length, `length` bytes long or to the block's
    /// end (at most [`MAX_CHALLENGE_RANGE_BYTES`]); see [`crate::repair::holding::proof_digest`].
    /// 45–60 bytes.
    HoldChallenge {
        request_id: u64,
        block_hash: BlockHash,
        nonce: u64,
        offset: u32,
        length: u32,
    },
    /// Answer to [`Message::HoldChallenge`]: the digest over the bytes read from the
    /// answerer's store, or `None` — it does not hold the block (or its copy read back
    /// corrupt). 4–45 bytes.
    HoldProof {
        request_id: u64,
        proof: Option<Hash256>,
    },
    /// "`member` failed its proofs of holding": the sender, a member of the cluster, dropped it
    /// from its view and keeps it out for `Config::faulty_ban_ms`; its mates do the same (see
    /// [`crate::repair::holding`], "Faulty holders"). 66 bytes.
    HolderFaulty { cluster: ClusterId, member: NodeId },
}

impl Message {
    /// A short snake-case name of the message's kind, for counters and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "hello",
            Message::Ping { .. } => "ping",
            Message::Pong { .. } => "pong",
            Message::Invite { .. } => "invite",
            Message::InviteReply { .. } => "invite_reply",
            Message::InviteWithdrawn { .. } => "invite_withdrawn",
            Message::JoinRequest { .. } => "join_request",
            Message::JoinDenied { .. } => "join_denied",
            Message::View(_) => "view",
            Message::GetHeaders { .. } => "get_headers",
            Message::Headers { .. } => "headers",
            Message::GetBlock { .. } => "get_block",
            Message::BlockData { .. } => "block_data",
            Message::BlockNotFound { .. } => "block_not_found",
            Message::TxQuery { .. } => "tx_query",
            Message::TxAnswer { .. } => "tx_answer",
            Message::BlockStored { .. } => "block_stored",
            Message::NewBlock { .. } => "new_block",
            Message::BlockAnnounce { .. } => "block_announce",
            Message::ShardHeld { .. } => "shard_held",
            Message::HoldChallenge { .. } => "hold_challenge",
            Message::HoldProof { .. } => "hold_proof",
            Message::HolderFaulty { .. } => "holder_faulty",
        }
    }
}

/// Why bytes did not decode (or a message could not be encoded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    #[error("message is {len} bytes, larger than the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("message ended early while reading {what}")]
    Truncated { what: &'static str },
    #[error("unsupported wire version {0} (this node speaks {WIRE_VERSION})")]
    UnsupportedVersion(u8),
    #[error("unknown message tag {0}")]
    UnknownTag(u8),
    #[error("malformed varint while reading {what}")]
    BadVarint { what: &'static str },
    #[error("{what} has {len} entries, more than the limit of {max}")]
    LimitExceeded {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("invalid value {value} for {what}")]
    InvalidValue { what: &'static str, value: u64 },
    #[error("address is not UTF-8")]
    InvalidUtf8,
    #[error("{0} bytes left over after the message")]
    TrailingBytes(usize),
}

#[cfg(test)]
pub(crate) mod tests;
