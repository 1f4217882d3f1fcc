//! Which members hold which block (S6–S8), and so that together they hold the whole chain (S18).
//!
//! # Overview
//!
//! A [`PlacementRule`] maps a block (its hash and height) and the member list, in member-number
//! order, to the numbers of its `P` holders. Every member computes the same answer from the
//! same view, so every member knows who holds any block, who must fetch what after a member
//! leaves, and whom to ask for it. With `K` members, a rule gives `min(P, K)` distinct holders.
//!
//! - [`PlacementRule::HashMod`] — the patent's rule (S6): the block hash (the header hash, or
//!   the header hash plus a fixed value `offset`) taken modulo the preset constants
//!   `K, K−1, …, K−P+1` gives member numbers; a number already taken moves on to the next free
//!   number. (The patent's third variant, the hash of header *and body*, is not offered: a
//!   member that lacks the body could not compute who holds the block.)
//! - [`PlacementRule::Even`] — even distribution by height (S7): heights are cut into ranges of
//!   `range_blocks`; range `r` goes to members numbered `r, r+1, …, r+P−1 (mod K)`.
//! - [`PlacementRule::Segment`] — segment-aware (S8): rendezvous ranking, but the first `P`
//!   holders are taken from distinct network segments whenever there are that many.
//! - [`PlacementRule::Rendezvous`] — the default: highest-random-weight hashing over
//!   (block, member id). It does not depend on member numbers, so a member leaving moves only
//!   that member's blocks, and a member joining takes only its fair share.
//!
//! # Failure domains and capacity (the rendezvous rules)
//!
//! Members that fail together share a *device* ([`Slot::device`]: the tabs of one browser
//! profile and origin; a relay has its own). [`PlacementRule::Rendezvous`] takes a block's
//! holders down its ranking, first only members of devices not yet holding the block, then
//! any: the P copies are on P distinct devices whenever the cluster spans that many.
//! [`PlacementRule::Segment`] takes members of new segments on new devices first, then of
//! new devices, then any.
//! Members are ranked by *weighted* rendezvous (Schindelhauer and Schomaker's weighted
//! distributed hash tables): a member of weight `w` (its capacity, [`weight_of`])
//! with hash draw `h` ∈ (0, 1] scores `w / −log₂ h`, so it ranks first for a share `w / Σw` of
//! the blocks exactly — a member with half the room holds about half as many — and a change of
//! one member's capacity moves blocks only to or from that member. The logarithm is computed in
//! fixed point with integers (32 fractional bits) and scores are compared by cross
//! multiplication, so native relays and wasm pages compute the same holders bit for bit;
//! members of equal weight are compared by their draws alone, which is the plain rule.
//! The patent's rules ([`PlacementRule::HashMod`], [`PlacementRule::Even`]) are kept as the
//! patent states them, by member number alone.
//!
//! `movement` measures what a membership change moves under a rule; the
//! `placement_movement` example prints it against the optimum for every rule.

use crate::base::{mix64, NodeId};
use crate::chain::BlockHash;

/// A placement rule (S6–S8). See the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlacementRule {
    /// S6: hash modulo the preset constants `K, K−1, …`; `offset` is the fixed value added to
    /// the header hash (0: the header hash itself).
    HashMod { offset: u64 },
    /// S7: ranges of `range_blocks` heights spread evenly over consecutive member numbers.
    Even { range_blocks: u32 },
    /// S8: replicas in different network segments whenever possible.
    Segment,
    /// Minimal movement: rendezvous (highest-random-weight) hashing.
    Rendezvous,
}

/// One member as placement sees it. Slices of these are in member-number order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub id: NodeId,
    pub segment: u32,
    /// Its failure domain ([`crate::config::Config::device`]).
    pub device: u64,
    /// Its rendezvous weight: the capacity it offers ([`weight_of`]).
    pub weight: u64,
}

impl Slot {
    /// A member on a device of its own, of weight 1 (equal weights: the plain rule).
    pub fn alone(id: NodeId, segment: u32) -> Slot {
        Slot {
            id,
            segment,
            device: own_device(&id),
            weight: 1,
        }
    }
}

/// The failure domain of a node that names none: its own, derived from its id (never 0).
pub fn own_device(id: &NodeId) -> u64 {
    mix64(u64::from_le_bytes(id.0[8..16].try_into().expect("8 bytes"))).max(1)
}

/// The rendezvous weight of a member offering `capacity_bytes`: the capacity with its four
/// leading bits kept (so within 1/8 of it, from below), at least 1. Capacities that differ by
/// little — browser tabs' estimates move with every write — weigh the same, and members of
/// equal weight are placed by the plain rule.
pub fn weight_of(capacity_bytes: u64) -> u64 {
    let bits = 64 - capacity_bytes.leading_zeros();
    let dropped = bits.saturating_sub(4);
    (capacity_bytes >> dropped << dropped).max(1)
}

/// The failure domain of node `id` that says it is on `device`: 0 names none (a device of its
/// own, [`own_device`]).
pub fn device_of(id: &NodeId, device: u64) -> u64 {
    match device {
        0 => own_device(id),
        device => device,
    }
}

/// Computes holders with reusable scratch space (no allocation per block once warmed up).
#[derive(Debug, Clone)]
pub struct Placer {
    rule: PlacementRule,
    replicas: usize,
    scratch: Vec<(u64, usize)>,
    /// `−log₂` of each member's draw, when weights differ.
    logs: Vec<u64>,
}

impl Placer {
    /// A placer for `rule` with `replicas` (P) holders per block.
    pub fn new(rule: PlacementRule, replicas: usize) -> Placer {
        assert!(replicas > 0, "a block needs at least one holder");
        Placer {
            rule,
            replicas,
            scratch: Vec::new(),
            logs: Vec::new(),
        }
    }

    /// The rule.
    pub fn rule(&self) -> PlacementRule {
        self.rule
    }

    /// Replicas per block (P).
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// Writes into `out` the member numbers (indices into `members`) holding the block at
    /// `height` with hash `hash`: `min(P, K)` distinct numbers, most preferred first.
    pub fn holders(
        &mut self,
        hash: &BlockHash,
        height: u32,
        members: &[Slot],
        out: &mut Vec<usize>,
    ) {
        out.clear();
        let k = members.len();
        if k == 0 {
            return;
        }
        let p = self.replicas.min(k);
        match self.rule {
            PlacementRule::HashMod { offset } => {
                for i in 0..p {
                    let constant = (k - i) as u64;
                    let remainder = (hash_mod(hash, constant) + offset % constant) % constant;
                    let mut number = remainder as usize;
                    while out.contains(&number) {
                        number = (number + 1) % k;
                    }
                    out.push(number);
                }
            }
            PlacementRule::Even { range_blocks } => {
                let range = (height / range_blocks.max(1)) as usize;
                out.extend((0..p).map(|j| (range + j) % k));
            }
            PlacementRule::Rendezvous => {
                self.rank(hash, members);
                self.take_distinct(p, members, out, &[device]);
                self.fill(p, out);
            }
            PlacementRule::Segment => {
                self.rank(hash, members);
                self.take_distinct(p, members, out, &[segment, device]);
                self.take_distinct(p, members, out, &[device]);
                self.fill(p, out);
            }
        }
        debug_assert_eq!(out.len(), p);
    }

    /// Whether member number `number` holds the block (`out` is scratch space).
    pub fn is_holder(
        &mut self,
        hash: &BlockHash,
        height: u32,
        members: &[Slot],
        number: usize,
        out: &mut Vec<usize>,
    ) -> bool {
        self.holders(hash, height, members, out);
        out.contains(&number)
    }

    /// Appends to `out`, down the ranking in `scratch`, members not in `out` that share no
    /// `domains` key with any member of `out`, until `out` has `p`.
    fn take_distinct(
        &self,
        p: usize,
        members: &[Slot],
        out: &mut Vec<usize>,
        domains: &[fn(&Slot) -> u64],
    ) {
        for &(_, i) in &self.scratch {
            if out.len() == p {
                return;
            }
            let fresh = !out.contains(&i)
                && domains.iter().all(|key| {
                    let d = key(&members[i]);
                    out.iter().all(|&o| key(&members[o]) != d)
                });
            if fresh {
                out.push(i);
            }
        }
    }

    /// Appends to `out` the best-ranked members not in it, until it has `p`.
    fn fill(&self, p: usize, out: &mut Vec<usize>) {
        for &(_, i) in &self.scratch {
            if out.len() == p {
                return;
            }
            if !out.contains(&i) {
                out.push(i);
            }
        }
    }

    /// Fills `scratch` with members sorted by weighted rendezvous score, best first: by draw
    /// when every weight is equal (the plain rule, and no logarithm computed), else by
    /// `weight / −log₂ draw` ([`beats`]).
    fn rank(&mut self, hash: &BlockHash, members: &[Slot]) {
        let block_key = u64::from_le_bytes(hash.0[..8].try_into().expect("8 bytes"));
        self.scratch.clear();
        self.scratch.extend(
            members
                .iter()
                .enumerate()
                .map(|(i, m)| (rendezvous_weight(block_key, &m.id), i)),
        );
        let equal = members.windows(2).all(|w| w[0].weight == w[1].weight);
        if equal {
            // Ties (vanishingly rare) broken by member id, so every member agrees.
            self.scratch
                .sort_unstable_by(|a, b| b.0.cmp(&a.0).then(members[a.1].id.cmp(&members[b.1].id)));
            return;
        }
        // scratch[i] is still member i's (draw, i): its logarithm goes at the same index.
        self.logs.clear();
        self.logs
            .extend(self.scratch.iter().map(|(draw, _)| neg_log2(*draw)));
        let logs = &self.logs;
        self.scratch.sort_unstable_by(|&(da, ia), &(db, ib)| {
            let (a, b) = (&members[ia], &members[ib]);
            beats((a.weight, da, logs[ia]), (b.weight, db, logs[ib]))
                .reverse()
                .then(a.id.cmp(&b.id))
        });
    }
}

/// How member `a` (weight, draw, `−log₂` of its draw as [`neg_log2`] gives it) compares with
/// `b` in weighted rendezvous: `Greater` if `a` scores higher. Equal weights compare draws
/// (exactly the plain rule); else `w_a / L_a` against `w_b / L_b` by cross multiplication.
fn beats(a: (u64, u64, u64), b: (u64, u64, u64)) -> std::cmp::Ordering {
    let (wa, da, la) = a;
    let (wb, db, lb) = b;
    if wa.max(1) == wb.max(1) {
        return da.cmp(&db);
    }
    let left = u128::from(wa.max(1)) * u128::from(lb);
    let right = u128::from(wb.max(1)) * u128::from(la);
    left.cmp(&right).then(da.cmp(&db))
}

/// `−log₂ h` for the draw `h = (draw + 1) / 2⁶⁴` ∈ (0, 1], in fixed point with 32 fractional
/// bits, at least 1 (so that a score is never infinite). Integer arithmetic only: the binary
/// logarithm by repeated squaring, the same on every platform.
fn neg_log2(draw: u64) -> u64 {
    const FRACTION_BITS: u32 = 32;
    let x = u128::from(draw) + 1; // in [1, 2^64]
    let int = 127 - x.leading_zeros(); // floor(log2 x), 0..=64
                                       // x / 2^int in [1, 2) with 63 fractional bits.
    let mut m: u128 = if int >= 63 {
        x >> (int - 63)
    } else {
        x << (63 - int)
    };
    let mut frac: u64 = 0;
    for bit in (0..FRACTION_BITS).rev() {
        m = (m * m) >> 63; // in [1, 4) with 63 fractional bits
        if m >= 2 << 63 {
            m >>= 1;
            frac |= 1 << bit;
        }
    }
    let log2 = (u64::from(int) << FRACTION_BITS) | frac;
    (64u64 << FRACTION_BITS).saturating_sub(log2).max(1)
}

/// The block hash read as a little-endian 256-bit number (Bitcoin's convention), modulo `m`.
pub fn hash_mod(hash: &BlockHash, m: u64) -> u64 {
    assert!(m > 0, "modulus must be positive");
    let mut r: u128 = 0;
    for byte in hash.0.iter().rev() {
        r = (r * 256 + *byte as u128) % m as u128;
    }
    r as u64
}

/// Rendezvous weight of a (block, member) pair: a 64-bit mix of the block's and the member's
/// hash bits. Block hashes and node ids are already uniform, so a fast mixer (splitmix64's
/// finaliser) suffices; a cryptographic hash per pair would cost the simulator dearly.
fn rendezvous_weight(block_key: u64, member: &NodeId) -> u64 {
    let member_key = u64::from_le_bytes(member.0[..8].try_into().expect("8 bytes"));
    mix64(block_key ^ mix64(member_key))
}

/// A member's failure domain, as placement compares them.
fn device(m: &Slot) -> u64 {
    m.device
}

/// A member's network segment, as placement compares them.
fn segment(m: &Slot) -> u64 {
    u64::from(m.segment)
}

/// What a membership change moved under one rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Movement {
    /// (block, holder) pairs present after the change that were not present before: each is a
    /// block some member must fetch.
    pub moved: u64,
    /// The least any rule could move: for a leave, the departed member's blocks (each needs one
    /// new copy); for a join, the newcomer's fair share `⌊N·P/K'⌋` of the `N` blocks.
    pub optimum: u64,
}

/// Counts what changing membership from `before` to `after` (both in number order) moves for
/// blocks `blocks` (hash, height).
pub fn movement(
    rule: PlacementRule,
    replicas: usize,
    blocks: &[(BlockHash, u32)],
    before: &[Slot],
    after: &[Slot],
) -> Movement {
    let mut placer = Placer::new(rule, replicas);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut moved = 0u64;
    let mut lost = 0u64;
    for (hash, height) in blocks {
        placer.holders(hash, *height, before, &mut a);
        placer.holders(hash, *height, after, &mut b);
        let before_ids: Vec<NodeId> = a.iter().map(|i| before[*i].id).collect();
        let after_ids: Vec<NodeId> = b.iter().map(|i| after[*i].id).collect();
        moved += after_ids
            .iter()
            .filter(|id| !before_ids.contains(id))
            .count() as u64;
        lost += before_ids
            .iter()
            .filter(|id| !after.iter().any(|s| s.id == **id))
            .count() as u64;
    }
    let optimum = if after.len() < before.len() {
        lost
    } else {
        let p = replicas.min(after.len()) as u64;
        (blocks.len() as u64 * p) / after.len().max(1) as u64
    };
    Movement { moved, optimum }
}

#[cfg(test)]
mod tests;
