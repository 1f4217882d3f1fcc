//! Messages from peers waiting for room in the node's inbox, served fairly by address (issue
//! 16: one address within its rate cannot queue its work ahead of everyone else's).
//!
//! When the node's inbox is full, a peer's message waits here instead of being dropped: in a
//! queue of its sender's address (the peer's [`AddressKey`], an IPv4 address or an IPv6 /64;
//! `None` for a peer whose address is not known), at most [`PER_ADDRESS_MAX`] per address and [`TOTAL_MAX`] in all — beyond those it
//! is dropped, as before. As room appears the queues are served in turn, one message from
//! each address with something waiting, so a flood from one address delays another address's
//! message by at most one message per other waiting address. A peer's own messages keep their
//! order; a peer that disconnects has its waiting messages dropped.

use libp2p::PeerId;
use std::collections::{HashMap, VecDeque};

use crate::serve::address::AddressKey;

/// Messages waiting for one address at most.
pub const PER_ADDRESS_MAX: usize = 64;
/// Messages waiting in all at most.
pub const TOTAL_MAX: usize = 4096;

/// The waiting messages (`T`: what goes to the node, with whatever the caller needs to drop
/// it). See the module docs.
#[derive(Debug)]
pub struct Fair<T> {
    queues: HashMap<Option<AddressKey>, VecDeque<(PeerId, T)>>,
    /// Addresses with something waiting, in the order they are served.
    turns: VecDeque<Option<AddressKey>>,
    len: usize,
}

impl<T> Default for Fair<T> {
    fn default() -> Self {
        Fair {
            queues: HashMap::new(),
            turns: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T> Fair<T> {
    /// Queues `item` from `peer` at `ip`; gives it back when its address or the whole queue
    /// is full.
    pub fn push(&mut self, ip: Option<AddressKey>, peer: PeerId, item: T) -> Result<(), T> {
        if self.len >= TOTAL_MAX {
            return Err(item);
        }
        let queue = self.queues.entry(ip).or_default();
        if queue.len() >= PER_ADDRESS_MAX {
            return Err(item);
        }
        if queue.is_empty() {
            self.turns.push_back(ip);
        }
        queue.push_back((peer, item));
        self.len += 1;
        Ok(())
    }

    /// The next message, from the address whose turn it is.
    pub fn pop(&mut self) -> Option<T> {
        let ip = self.turns.pop_front()?;
        let queue = self
            .queues
            .get_mut(&ip)
            .expect("an address in turn has a queue");
        let (_, item) = queue.pop_front().expect("an address in turn has a message");
        if queue.is_empty() {
            self.queues.remove(&ip);
        } else {
            self.turns.push_back(ip);
        }
        self.len -= 1;
        Some(item)
    }

    /// Drops every message of `peer`, returning them.
    pub fn forget(&mut self, peer: &PeerId) -> Vec<T> {
        let mut dropped = Vec::new();
        for queue in self.queues.values_mut() {
            let mut kept = VecDeque::with_capacity(queue.len());
            for (from, item) in queue.drain(..) {
                if from == *peer {
                    dropped.push(item);
                } else {
                    kept.push_back((from, item));
                }
            }
            *queue = kept;
        }
        self.queues.retain(|_, queue| !queue.is_empty());
        let queues = &self.queues;
        self.turns.retain(|ip| queues.contains_key(ip));
        self.len -= dropped.len();
        dropped
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<AddressKey> {
        Some(AddressKey::of(std::net::IpAddr::from([127, 0, 0, last])))
    }

    #[test]
    fn a_flood_from_one_address_delays_another_by_one_message_and_is_capped() {
        let mut fair = Fair::default();
        let (flooder, honest) = (PeerId::random(), PeerId::random());
        let mut refused = 0;
        for n in 0..100u32 {
            if fair.push(ip(1), flooder, n).is_err() {
                refused += 1;
            }
        }
        assert_eq!(
            refused,
            100 - PER_ADDRESS_MAX,
            "one address holds at most its share"
        );
        fair.push(ip(2), honest, 1_000).unwrap();
        fair.push(ip(2), honest, 1_001).unwrap();
        let order: Vec<u32> = std::iter::from_fn(|| fair.pop()).take(4).collect();
        assert_eq!(
            order,
            vec![0, 1_000, 1, 1_001],
            "served in turn, each address in order"
        );
        assert_eq!(fair.len(), PER_ADDRESS_MAX - 2);
        assert!(std::iter::from_fn(|| fair.pop()).eq(2..PER_ADDRESS_MAX as u32));
        assert!(fair.is_empty() && fair.turns.is_empty() && fair.queues.is_empty());
    }

    #[test]
    fn the_total_is_capped_and_a_gone_peer_takes_its_messages_with_it() {
        let mut fair = Fair::default();
        let mut pushed = 0;
        for a in 0..=255u8 {
            for _ in 0..PER_ADDRESS_MAX {
                if fair.push(ip(a), PeerId::random(), pushed).is_ok() {
                    pushed += 1;
                }
            }
        }
        assert_eq!(pushed as usize, TOTAL_MAX);
        assert!(fair.push(None, PeerId::random(), 0).is_err());

        let mut fair = Fair::default();
        let (gone, stays) = (PeerId::random(), PeerId::random());
        fair.push(ip(1), gone, 1).unwrap();
        fair.push(ip(1), stays, 2).unwrap();
        fair.push(ip(3), gone, 3).unwrap();
        let mut dropped = fair.forget(&gone);
        dropped.sort_unstable();
        assert_eq!(dropped, vec![1, 3]);
        assert_eq!(fair.len(), 1);
        assert_eq!(fair.pop(), Some(2));
        assert_eq!(fair.pop(), None);
        assert!(fair.turns.is_empty());
    }
}
