//! Observers: nodes outside the membership that follow the log (PySyncObj's read-only nodes).
//!
//! A read-only node has no address and no vote; it dials every voter, and each voter the driver
//! sees it linked to registers it here. The leader then replicates to it like to a non-voting
//! member, and never counts it toward a majority. Unlike a non-voter, an observer is known only
//! to the nodes it is linked to and is not part of the replicated configuration: it comes and
//! goes with its connections.
//!
//! An observer may be added to the membership under its id: the leader's progress for it
//! carries over, so it is caught up already and promoted without being sent its log again.

use std::collections::BTreeSet;

use super::message::Message;
use super::node::RaftNode;
use super::progress::Progress;
use super::role::Role;
use super::types::{Instant, NodeId};

impl RaftNode {
    /// Starts following `id` as an observer: as leader (now or later) this node replicates the
    /// log to it. Members and this node itself are ignored. Costs one map entry.
    pub fn add_observer(&mut self, id: NodeId, now: Instant) {
        if id == self.id || self.membership().contains(id) || !self.observers.insert(id) {
            return;
        }
        let next = self.log.last_index().next();
        if let Role::Leader { progress, .. } = &mut self.role {
            progress.insert(id, Progress::new(next, now));
        }
    }

    /// Stops replicating to the observer `id` (its link went down); unknown ids are ignored.
    /// An observer that became a member since (added with
    /// [`MembershipChange::AddVoter`](crate::MembershipChange::AddVoter) under the same id) is
    /// only forgotten as an observer: a leader keeps replicating to it as a member, from what
    /// it is known to hold.
    pub fn remove_observer(&mut self, id: NodeId) {
        if !self.observers.remove(&id) || self.membership().contains(id) {
            return;
        }
        if let Role::Leader { progress, .. } = &mut self.role {
            progress.remove(&id);
        }
    }

    /// The observers this node knows of.
    pub fn observers(&self) -> &BTreeSet<NodeId> {
        &self.observers
    }

    /// Whether `message` from `from` is welcome: anything from a node [`knows`](Self::knows)
    /// accepts, and a leader's appends and snapshots from anyone (thesis §4.1): a node that
    /// missed configurations learns of them only from a leader they added, which its own
    /// configuration does not name yet. The term decides what becomes of them, as for any
    /// leader's message.
    pub(crate) fn welcomes(&self, from: NodeId, message: &Message) -> bool {
        self.knows(from)
            || matches!(
                message,
                Message::AppendEntries(_) | Message::InstallSnapshot(_)
            )
    }

    /// Whether messages of any kind from `id` are welcome: members (of the configuration in
    /// force, or of the last one committed, which an uncommitted removal does not end yet) and
    /// observers; the leader of the term, even one that removed itself and leads on until that
    /// is committed (thesis §4.2.2); and, on a leader, every node it replicates to (a removed
    /// member learning of its removal).
    pub(crate) fn knows(&self, id: NodeId) -> bool {
        self.membership().contains(id)
            || self.configs.at(self.log.committed()).contains(id)
            || self.observers.contains(&id)
            || self.leader() == Some(id)
            || matches!(&self.role, Role::Leader { progress, .. } if progress.contains_key(&id))
    }
}
