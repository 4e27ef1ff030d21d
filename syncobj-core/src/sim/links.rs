//! What a simulated node's transport would report of its links: each running node learns that
//! its link to another went up or down, some time after it did, as a TCP transport does.
//!
//! - A peer's process dies: the connection is reset, and the node learns it within 1–5 ms (the
//!   kernel closes the dead process's sockets at once), but only after every message the peer
//!   sent before (a TCP connection delivers its data ahead of its end).
//! - A partition: nothing is reset; the link is dropped only once it stayed silent, after
//!   0.1 s to 4 s (about the transport's `connection_timeout`, or a router's reset).
//! - A peer starts, or a partition heals: the link comes up after 1–20 ms (a dial and a
//!   handshake).
//!
//! Each ordered pair (node, peer) carries a generation: an event superseded before it was
//! delivered (a partition healed before its silence was noticed) is dropped.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::raft::{Instant, NodeId};

/// Why a link changes, which sets how soon the node hears of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The peer's process died (or a new process started): a reset, heard of at once.
    Process,
    /// The network split or healed: silence, heard of after a timeout; or a new connection.
    Network,
}

/// A link event due: `node` learns that its link to `peer` is `up` or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LinkEvent {
    pub(crate) node: NodeId,
    pub(crate) peer: NodeId,
    pub(crate) up: bool,
}

/// The links the simulated transports report.
#[derive(Debug)]
pub(crate) struct SimLinks {
    rng: ChaCha8Rng,
    /// Per ordered pair: the state the node was or will be told last, and its generation.
    told: BTreeMap<(NodeId, NodeId), (bool, u64)>,
    due: BinaryHeap<Reverse<(Instant, u64)>>,
    events: BTreeMap<u64, (LinkEvent, u64)>,
    next_seq: u64,
    next_generation: u64,
}

impl SimLinks {
    pub(crate) fn new(rng: ChaCha8Rng) -> SimLinks {
        SimLinks {
            rng,
            told: BTreeMap::new(),
            due: BinaryHeap::new(),
            events: BTreeMap::new(),
            next_seq: 0,
            next_generation: 0,
        }
    }

    /// `node` (re)started or stopped: whatever it was told is gone with its process.
    pub(crate) fn forget(&mut self, node: NodeId) {
        self.told.retain(|&(n, _), _| n != node);
    }

    /// Brings every pair's reported state towards `want(node, peer)` (whether the link should
    /// be up), scheduling an event for each pair whose wanted state changed.
    /// `last_arrival(peer, node)` is the latest arrival scheduled on the link from `peer` to
    /// `node`: a reset is heard of only after what was sent before it.
    pub(crate) fn update(
        &mut self,
        running: &[NodeId],
        now: Instant,
        cause: Cause,
        want: impl Fn(NodeId, NodeId) -> bool,
        last_arrival: impl Fn(NodeId, NodeId) -> Option<Instant>,
    ) {
        for &node in running {
            for &peer in running.iter().chain(self.known_peers(node).iter()) {
                if peer == node {
                    continue;
                }
                let up = running.contains(&peer) && want(node, peer);
                let told = self.told.get(&(node, peer)).is_some_and(|&(up, _)| up);
                if up == told {
                    continue;
                }
                let mut at = now + self.delay(up, cause);
                if !up && let Some(last) = last_arrival(peer, node) {
                    at = at.max(last + Duration::from_micros(1));
                }
                self.schedule(LinkEvent { node, peer, up }, at);
            }
        }
    }

    /// The peers `node` was told of, running or not.
    fn known_peers(&self, node: NodeId) -> Vec<NodeId> {
        self.told
            .keys()
            .filter(|&&(n, _)| n == node)
            .map(|&(_, p)| p)
            .collect()
    }

    fn delay(&mut self, up: bool, cause: Cause) -> Duration {
        let millis = match (up, cause) {
            (true, _) => self.rng.random_range(1..=20),
            (false, Cause::Process) => self.rng.random_range(1..=5),
            (false, Cause::Network) => self.rng.random_range(100..=4000),
        };
        Duration::from_millis(millis)
    }

    fn schedule(&mut self, event: LinkEvent, at: Instant) {
        self.next_generation += 1;
        let generation = self.next_generation;
        self.told
            .insert((event.node, event.peer), (event.up, generation));
        let seq = self.next_seq;
        self.next_seq += 1;
        self.events.insert(seq, (event, generation));
        self.due.push(Reverse((at, seq)));
    }

    /// When the next event is due, if any.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes the next event due; `None` for one that was superseded (or whose node restarted
    /// meanwhile), which is dropped.
    pub(crate) fn pop(&mut self) -> Option<LinkEvent> {
        let Reverse((_, seq)) = self.due.pop()?;
        let (event, generation) = self.events.remove(&seq)?;
        let current = self.told.get(&(event.node, event.peer));
        current
            .is_some_and(|&(_, g)| g == generation)
            .then_some(event)
    }
}
