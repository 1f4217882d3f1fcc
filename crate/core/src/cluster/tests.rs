//! Cluster ids (S4) and member numbers (S5): unit tests. Forming clusters is tested in
//! `formation::tests`.

use super::*;
use crate::wire::{ClusterGenesis, MemberInfo, View};

fn view_of(founders: &[u64], proposer: usize, generation: u64) -> View {
    let mut ids: Vec<NodeId> = founders.iter().map(|s| NodeId::from_seed(*s)).collect();
    ids.sort();
    let genesis = ClusterGenesis {
        proposer: ids[proposer],
        generation,
        founders: ids.clone(),
    };
    View {
        cluster: cluster_id(&genesis),
        genesis,
        epoch: 0,
        members: ids
            .iter()
            .map(|id| MemberInfo {
                id: *id,
                address: String::new(),
                segment: 0,
                capacity_bytes: 0,
                device: crate::placement::own_device(id),
            })
            .collect(),
        expires_in_ms: 1_000,
    }
}

/// S4: the id is a hash over members, generation and proposer; every member verifies it.
#[test]
fn cluster_id_is_checked_by_every_receiver() {
    let view = view_of(&[1, 2, 3], 0, 0);
    assert_eq!(check_view(&view, 8), Ok(()));
    let mut forged = view.clone();
    forged.genesis.generation = 1;
    assert_eq!(check_view(&forged, 8), Err(ViewError::IdMismatch));
    let mut forged = view.clone();
    forged.genesis.proposer = view.genesis.founders[1];
    assert_eq!(check_view(&forged, 8), Err(ViewError::IdMismatch));
    let mut forged = view.clone();
    forged.genesis.founders.swap(0, 1);
    assert_eq!(check_view(&forged, 8), Err(ViewError::NotSorted));
    assert!(matches!(
        check_view(&view, 2),
        Err(ViewError::TooLarge { .. })
    ));
    // A different member set gives a different id.
    assert_ne!(view.cluster, view_of(&[1, 2, 4], 0, 0).cluster);
}

/// S5: numbers follow from the cluster id and member ids alone, whatever order they come in,
/// and differ between clusters.
#[test]
fn numbering_is_deterministic() {
    let ids: Vec<NodeId> = (0..8).map(NodeId::from_seed).collect();
    let cluster = ClusterId([7; 32]);
    let order = numbering(&cluster, &ids);
    let numbered: Vec<NodeId> = order.iter().map(|i| ids[*i]).collect();
    let mut shuffled = ids.clone();
    shuffled.reverse();
    let again: Vec<NodeId> = numbering(&cluster, &shuffled)
        .iter()
        .map(|i| shuffled[*i])
        .collect();
    assert_eq!(numbered, again);
    let other: Vec<NodeId> = numbering(&ClusterId([8; 32]), &ids)
        .iter()
        .map(|i| ids[*i])
        .collect();
    assert_ne!(numbered, other);
}
