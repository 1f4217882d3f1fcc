//! What the node does with a faulty holder (issue 16): a mate that kept failing its proofs of
//! holding is handled like an offline member — dropped from the view, so that placement moves
//! its blocks to other members and repair refetches them (S11), and replaced (S12) — and kept
//! out for `Config::faulty_ban_ms`. The rules are written out in [`crate::repair::holding`],
//! "Faulty holders".

use super::Node;
use crate::base::{ClusterId, NodeId};
use crate::io::Event;
use crate::shared::Role;
use crate::wire::Message;

impl Node {
    /// After every input: the mates repair found faulty are dropped, kept out and reported to
    /// the other members.
    pub(crate) fn act_on_faulty_holders(&mut self) {
        if self.repair.holding.found.is_empty() {
            return;
        }
        for member in std::mem::take(&mut self.repair.holding.found) {
            self.drop_faulty(member, true);
        }
    }

    /// Keeps `member` out and drops it from our view; `by_us`: we found it faulty ourselves.
    fn drop_faulty(&mut self, member: NodeId, by_us: bool) {
        let cx = &mut self.shared;
        let Role::Member(m) = &cx.role else { return };
        if member == cx.id {
            return;
        }
        let listed = m.number_of(&member).is_some();
        cx.ban(member);
        cx.event(Event::HolderFaulty { member, by_us });
        if by_us {
            cx.stats.holders_found_faulty += 1;
        } else {
            cx.stats.faulty_reports_taken += 1;
        }
        if by_us || listed {
            self.tell_and_drop(&[member]);
        }
    }

    /// Tells the other members of our view that `faulty` are faulty holders (a mate that has
    /// not heard of it may have taken one back), and drops those our view lists.
    fn tell_and_drop(&mut self, faulty: &[NodeId]) {
        let cx = &mut self.shared;
        let Role::Member(m) = &cx.role else { return };
        let cluster = m.view.cluster;
        let others: Vec<NodeId> = m
            .slots
            .iter()
            .map(|s| s.id)
            .filter(|id| *id != cx.id && !faulty.contains(id))
            .collect();
        let listed: Vec<NodeId> = faulty
            .iter()
            .copied()
            .filter(|id| m.number_of(id).is_some())
            .collect();
        for to in others {
            for member in faulty {
                cx.send(
                    to,
                    Message::HolderFaulty {
                        cluster,
                        member: *member,
                    },
                );
            }
        }
        if !listed.is_empty() {
            self.declare_offline(&listed);
        }
    }

    /// A mate says `member` failed its proofs of holding. Taken from a member of our view
    /// about a member of it (or one that departed from it), as a view would be: a member may
    /// drop any mate.
    pub(crate) fn on_holder_faulty(&mut self, from: NodeId, cluster: ClusterId, member: NodeId) {
        let cx = &mut self.shared;
        let credible = match &cx.role {
            Role::Member(m) => {
                m.view.cluster == cluster
                    && m.number_of(&from).is_some()
                    && !cx.is_banned(&from)
                    && member != cx.id
                    && member != from
                    && (m.number_of(&member).is_some()
                        || self.liveness.departed.iter().any(|(id, _)| *id == member))
            }
            Role::Ordinary => false,
        };
        if !credible {
            cx.stats.messages_ignored += 1;
            return;
        }
        let listed = cx
            .membership()
            .is_some_and(|m| m.number_of(&member).is_some());
        if cx.is_banned(&member) && !listed {
            return;
        }
        self.drop_faulty(member, false);
    }

    /// After adopting a view: the nodes we keep out that it lists are dropped again, and the
    /// other members told why (a mate that had not heard of the ban took them back).
    pub(crate) fn drop_banned(&mut self) {
        let cx = &self.shared;
        let Role::Member(m) = &cx.role else { return };
        let listed: Vec<NodeId> = m
            .slots
            .iter()
            .map(|s| s.id)
            .filter(|id| *id != cx.id && cx.is_banned(id))
            .collect();
        if !listed.is_empty() {
            self.tell_and_drop(&listed);
        }
    }
}
