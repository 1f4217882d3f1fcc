//! The forged-view attack (issue 16, hole 1): an outsider sends every member a view of its
//! cluster with epoch `u64::MAX` and members of its choosing. See
//! [`crate::config::ForgedViews`]; the core refuses such views (`shoal_core::cluster`, "Who
//! may change a view"), and the world's invariants judge what would follow if it did not.

use shoal_core::node::NodeId;
use shoal_core::wire::{MemberInfo, Message, View};

use super::{SimEvent, World, WorldError};
use crate::network::HostIdx;
use crate::rng::mix;

/// Salt of the outsider's ids.
const FORGER_SALT: u64 = 0x464F_5247;
/// Milliseconds a forged view takes to arrive.
const FORGED_LATENCY_MS: u64 = 20;

impl World {
    /// The outsider's id and the `k`-th made-up member id.
    fn forger_id(&self, k: u64) -> NodeId {
        NodeId::from_seed(mix(&[self.config.seed, FORGER_SALT, k]))
    }

    /// One round of the attack: every online light member gets a forged view of its cluster
    /// from the outsider; the next round is scheduled.
    pub(super) fn forge_views(&mut self) -> Result<(), WorldError> {
        let Some(attack) = self.config.forged_views else {
            return Ok(());
        };
        let now_ms = self.queue.now_ms();
        let outsider = self.forger_id(0);
        let max = self.config.cluster_size;
        for host in 0..self.hosts.len() as HostIdx {
            let record = &self.hosts[host as usize];
            let Some(view) = record.node().and_then(|node| node.view()) else {
                continue;
            };
            let me = record.id;
            let mut members = view.members.clone();
            if members.len() >= max {
                // Full: drop a real member other than the receiver to make room.
                let drop = members.iter().position(|m| m.id != me).expect("K > 1");
                members.remove(drop);
            }
            let mut k = 0;
            while members.len() < max {
                let id = self.forger_id(k);
                members.push(MemberInfo {
                    id,
                    address: format!("sim://forger/{k}"),
                    segment: 0,
                    capacity_bytes: u64::MAX,
                    device: shoal_core::placement::own_device(&id),
                });
                k += 1;
            }
            members.sort_by_key(|m| m.id);
            let forged = View {
                epoch: u64::MAX,
                members,
                ..view.clone()
            };
            let incarnation = record.incarnation;
            self.counters.forged_views_sent += 1;
            self.queue.schedule(
                now_ms + FORGED_LATENCY_MS,
                SimEvent::Deliver {
                    to: host,
                    incarnation,
                    message: Box::new((outsider, Message::View(forged))),
                },
            )?;
        }
        let next_ms = now_ms + attack.interval_s.max(1) * 1_000;
        if next_ms < self.config.duration_ms() {
            self.queue.schedule(next_ms, SimEvent::ForgeViews)?;
        }
        Ok(())
    }
}
