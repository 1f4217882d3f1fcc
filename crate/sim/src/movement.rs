//! What a membership change moves under each placement rule (S6–S8), against the optimum.
//!
//! For one cluster of K members holding a chain of tiny blocks, this drives the core's own
//! placement ([`shoal_core::placement::Placer`]) with members in the core's own numbering
//! ([`shoal_core::cluster::numbering`]) before and after a change, and counts the bytes of
//! every (block, holder) pair that exists after the change but not before: each is a block
//! some member must fetch. The optimum for a leave is the departed member's blocks (one new
//! copy each); for a join, the newcomer's fair share, P/K of the chain.
//!
//! The simulator's run report measures the same thing in motion (`bytes_moved_per_leave`);
//! this is the static measurement, averaged over many random membership changes.

use serde::Serialize;
use shoal_core::cluster::{numbering, ClusterId};
use shoal_core::node::NodeId;
use shoal_core::placement::{PlacementRule, Placer, Slot};
use shoal_core::wire::BlockHash;

use crate::chain;
use crate::config::SimConfigError;
use crate::rng::{SimRng, Stream};
use crate::world::parse_placement;

/// The rules measured by [`measure_all`].
pub const RULES: [&str; 4] = ["rendezvous", "segment", "hash-mod", "even"];
/// Network segments members are spread over (for the segment rule).
const SEGMENTS: u64 = 4;

/// One rule's averages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleMovement {
    /// The rule's name.
    pub rule: String,
    /// Mean bytes fetched after a member leaves.
    pub leave_bytes: f64,
    /// Mean of the least that could be fetched after a leave.
    pub leave_optimal_bytes: f64,
    /// Mean bytes fetched after a member joins.
    pub join_bytes: f64,
    /// Mean of the least that could be fetched after a join.
    pub join_optimal_bytes: f64,
}

/// A block as placement sees it, with its size.
struct PlacedBlock {
    hash: BlockHash,
    height: u32,
    bytes: u64,
}

fn slots_in_number_order(cluster: &ClusterId, members: &[Slot]) -> Vec<Slot> {
    let ids: Vec<NodeId> = members.iter().map(|m| m.id).collect();
    numbering(cluster, &ids)
        .into_iter()
        .map(|i| members[i])
        .collect()
}

/// Bytes of (block, holder) pairs in `after` that are not in `before`.
fn moved_bytes(
    placer: &mut Placer,
    blocks: &[PlacedBlock],
    before: &[Slot],
    after: &[Slot],
) -> u64 {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut moved = 0;
    for block in blocks {
        placer.holders(&block.hash, block.height, before, &mut a);
        placer.holders(&block.hash, block.height, after, &mut b);
        for holder in &b {
            let id = after[*holder].id;
            if !a.iter().any(|i| before[*i].id == id) {
                moved += block.bytes;
            }
        }
    }
    moved
}

/// Bytes of the blocks `member` holds in `members`.
fn held_bytes(
    placer: &mut Placer,
    blocks: &[PlacedBlock],
    members: &[Slot],
    member: NodeId,
) -> u64 {
    let mut out = Vec::new();
    blocks
        .iter()
        .filter(|block| {
            placer.holders(&block.hash, block.height, members, &mut out);
            out.iter().any(|i| members[*i].id == member)
        })
        .map(|block| block.bytes)
        .sum()
}

/// Measures `rule` over `trials` random leaves and joins in a cluster of `cluster_size`.
pub fn measure(
    rule: PlacementRule,
    name: &str,
    cluster_size: usize,
    replicas: usize,
    blocks: u32,
    trials: u32,
    seed: u64,
) -> RuleMovement {
    assert!(
        cluster_size >= 2 && trials > 0,
        "need two members and a trial"
    );
    let chain: Vec<PlacedBlock> = chain::generate(blocks, 2, seed)
        .into_iter()
        .enumerate()
        .map(|(height, block)| PlacedBlock {
            hash: BlockHash::from_byte_array(block.hash),
            height: height as u32,
            bytes: block.bytes.len() as u64,
        })
        .collect();
    let total_bytes: u64 = chain.iter().map(|b| b.bytes).sum();
    let mut rng = SimRng::stream(seed, Stream::Movement.number());
    let mut placer = Placer::new(rule, replicas);
    let (mut leave, mut leave_opt, mut join, mut join_opt) = (0u64, 0u64, 0u64, 0u64);
    for _ in 0..trials {
        let cluster = ClusterId(chain::sha256d(&rng.next_u64().to_le_bytes()));
        let members: Vec<Slot> = (0..cluster_size)
            .map(|_| {
                let id = NodeId::from_seed(rng.next_u64());
                Slot::alone(id, rng.below(SEGMENTS) as u32)
            })
            .collect();
        let before = slots_in_number_order(&cluster, &members);
        // A leave: one member goes; the others renumber.
        let gone = before[rng.below(cluster_size as u64) as usize].id;
        let remaining: Vec<Slot> = members.iter().copied().filter(|m| m.id != gone).collect();
        let after = slots_in_number_order(&cluster, &remaining);
        leave += moved_bytes(&mut placer, &chain, &before, &after);
        leave_opt += held_bytes(&mut placer, &chain, &before, gone);
        // A join: a newcomer enters the cluster of K-1 and everyone renumbers.
        let id = NodeId::from_seed(rng.next_u64());
        let newcomer = Slot::alone(id, rng.below(SEGMENTS) as u32);
        let mut grown = remaining.clone();
        grown.push(newcomer);
        let grown = slots_in_number_order(&cluster, &grown);
        join += moved_bytes(&mut placer, &chain, &after, &grown);
        join_opt += total_bytes * replicas.min(cluster_size) as u64 / cluster_size as u64;
    }
    let mean = |x: u64| x as f64 / f64::from(trials);
    RuleMovement {
        rule: name.to_string(),
        leave_bytes: mean(leave),
        leave_optimal_bytes: mean(leave_opt),
        join_bytes: mean(join),
        join_optimal_bytes: mean(join_opt),
    }
}

/// Measures every rule in [`RULES`].
pub fn measure_all(
    cluster_size: usize,
    replicas: usize,
    blocks: u32,
    trials: u32,
    seed: u64,
) -> Result<Vec<RuleMovement>, SimConfigError> {
    if replicas == 0 || replicas >= cluster_size {
        return Err(SimConfigError::Replicas {
            replicas,
            cluster_size,
        });
    }
    RULES
        .iter()
        .map(|name| {
            let rule = parse_placement(name)?;
            Ok(measure(
                rule,
                name,
                cluster_size,
                replicas,
                blocks,
                trials,
                seed,
            ))
        })
        .collect()
}

/// A Markdown table of the measurements.
pub fn table(rows: &[RuleMovement]) -> String {
    let mut out = String::from(
        "| rule | bytes moved per leave | optimum | ratio | bytes moved per join | optimum | ratio |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} | {:.2} |\n",
            row.rule,
            row.leave_bytes,
            row.leave_optimal_bytes,
            row.leave_bytes / row.leave_optimal_bytes.max(1.0),
            row.join_bytes,
            row.join_optimal_bytes,
            row.join_bytes / row.join_optimal_bytes.max(1.0),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_moves_the_optimum_on_a_leave() {
        let row = measure(PlacementRule::Rendezvous, "rendezvous", 8, 3, 300, 5, 1);
        // Rendezvous moves exactly the departed member's blocks.
        assert_eq!(row.leave_bytes, row.leave_optimal_bytes);
        assert!(row.leave_bytes > 0.0);
        // A join moves about the newcomer's share (random, so within a factor).
        assert!(row.join_bytes < 1.6 * row.join_optimal_bytes);
    }

    #[test]
    fn hash_mod_moves_far_more_than_the_optimum() {
        let row = measure(
            PlacementRule::HashMod { offset: 0 },
            "hash-mod",
            8,
            3,
            300,
            5,
            1,
        );
        assert!(row.leave_bytes > 1.5 * row.leave_optimal_bytes, "{row:?}");
    }

    #[test]
    fn no_rule_beats_the_optimum_on_a_leave() {
        for row in measure_all(8, 3, 200, 3, 2).unwrap() {
            assert!(row.leave_bytes >= row.leave_optimal_bytes, "{row:?}");
        }
        assert!(measure_all(3, 3, 10, 1, 1).is_err());
    }
}
