//! Prints, for every placement rule (S6–S8 and the rendezvous default), how many blocks one
//! member leaving and one member joining move, against the optimum, as ratios.
//!
//! `cargo run -p shoal-core --release --example placement_movement [blocks] [members] [replicas]`

use shoal_core::node::chain_seam::sha256d;
use shoal_core::node::NodeId;
use shoal_core::placement::{movement, PlacementRule, Slot};
use shoal_core::wire::BlockHash;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let blocks = args.next().and_then(Result::ok).unwrap_or(10_000);
    let k = args.next().and_then(Result::ok).unwrap_or(9);
    let p = args.next().and_then(Result::ok).unwrap_or(3);
    let chain: Vec<(BlockHash, u32)> = (0..blocks as u64)
        .map(|i| (BlockHash(sha256d(&i.to_le_bytes())), i as u32))
        .collect();
    let members: Vec<Slot> = (0..=k as u64)
        .map(|i| Slot::alone(NodeId::from_seed(i), (i % 3) as u32))
        .collect();
    let cluster = &members[..k];
    // A member in the middle of the numbering leaves; a newcomer joins at the end.
    let left: Vec<Slot> = cluster
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != k / 2)
        .map(|(_, s)| *s)
        .collect();
    let joined = &members[..=k];
    println!("blocks={blocks} members={k} replicas={p}; ratio = moved / optimum (1.00 is best)");
    println!(
        "{:<28} {:>10} {:>10} {:>7} {:>10} {:>10} {:>7}",
        "rule", "leave", "optimum", "ratio", "join", "optimum", "ratio"
    );
    for rule in [
        PlacementRule::HashMod { offset: 0 },
        PlacementRule::Even { range_blocks: 16 },
        PlacementRule::Segment,
        PlacementRule::Rendezvous,
    ] {
        let leave = movement(rule, p, &chain, cluster, &left);
        let join = movement(rule, p, &chain, cluster, joined);
        println!(
            "{:<28} {:>10} {:>10} {:>7.2} {:>10} {:>10} {:>7.2}",
            format!("{rule:?}"),
            leave.moved,
            leave.optimum,
            leave.moved as f64 / leave.optimum.max(1) as f64,
            join.moved,
            join.optimum,
            join.moved as f64 / join.optimum.max(1) as f64,
        );
    }
}
