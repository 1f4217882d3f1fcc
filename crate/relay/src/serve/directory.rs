//! The relay's side of Shoal's directory protocol (`shoal_net::directory`): every peer that
//! holds a circuit reservation here is listed, and a lookup for this relay's chain answers up
//! to `shoal_net::directory::MAX_ENTRIES` of them (the asker excluded), starting after the
//! asker in peer-id order so that in a crowd different askers get different slices.

use std::collections::BTreeSet;
use std::ops::Bound;

use libp2p::{relay, PeerId};
use shoal_net::directory::{self, MAX_ENTRIES};

/// Who holds a reservation, for one chain.
#[derive(Debug)]
pub struct Directory {
    namespace: Option<String>,
    reserved: BTreeSet<PeerId>,
}

impl Directory {
    /// The directory of the chain called `network`.
    pub fn new(network: &str) -> Directory {
        Directory {
            namespace: directory::namespace(network),
            reserved: BTreeSet::new(),
        }
    }

    /// Follows the circuit relay server's reservations (bounded by its `max_reservations`).
    pub fn on_relay_event(&mut self, event: &relay::Event) {
        match event {
            relay::Event::ReservationReqAccepted { src_peer_id, .. } => {
                self.reserved.insert(*src_peer_id);
            }
            relay::Event::ReservationClosed { src_peer_id }
            | relay::Event::ReservationTimedOut { src_peer_id } => {
                self.reserved.remove(src_peer_id);
            }
            _ => {}
        }
    }

    /// A peer's last connection closed: its reservation went with it.
    pub fn on_disconnected(&mut self, peer: &PeerId) {
        self.reserved.remove(peer);
    }

    /// The answer to `asker`'s lookup `request`; an empty list for another chain or bad bytes.
    pub fn answer(&self, asker: &PeerId, request: &[u8]) -> Vec<u8> {
        let wanted = directory::decode_lookup(request).ok();
        if wanted.is_none() || wanted != self.namespace {
            return directory::encode_peers(&[]);
        }
        let after = self
            .reserved
            .range((Bound::Excluded(*asker), Bound::Unbounded));
        let before = self.reserved.range(..*asker);
        let peers: Vec<PeerId> = after.chain(before).take(MAX_ENTRIES).copied().collect();
        directory::encode_peers(&peers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_reserved_peers_of_its_chain_but_not_the_asker() {
        let mut dir = Directory::new("regtest");
        let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        for p in &peers {
            dir.on_relay_event(&relay::Event::ReservationReqAccepted {
                src_peer_id: *p,
                renewed: false,
            });
        }
        let lookup = directory::encode_lookup("regtest").unwrap();
        let mut got = directory::decode_peers(&dir.answer(&peers[0], &lookup)).unwrap();
        got.sort();
        let mut want = peers[1..].to_vec();
        want.sort();
        assert_eq!(got, want);
        let other_chain = directory::encode_lookup("signet").unwrap();
        assert!(
            directory::decode_peers(&dir.answer(&peers[0], &other_chain))
                .unwrap()
                .is_empty()
        );
        assert!(directory::decode_peers(&dir.answer(&peers[0], b"\xff"))
            .unwrap()
            .is_empty());
        dir.on_relay_event(&relay::Event::ReservationTimedOut {
            src_peer_id: peers[1],
        });
        dir.on_disconnected(&peers[2]);
        assert!(directory::decode_peers(&dir.answer(&peers[0], &lookup))
            .unwrap()
            .is_empty());
    }
}
