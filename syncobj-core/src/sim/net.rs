//! The simulated network: delay, reordering, loss, duplication and partitions, all drawn from the
//! simulation's seeded random number generator.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::raft::{Envelope, Instant, NodeId};

/// A message the simulated network can carry: it names its sender and receiver.
pub(crate) trait Routed: Clone {
    /// The sending node.
    fn from(&self) -> NodeId;
    /// The receiving node.
    fn to(&self) -> NodeId;
}

impl Routed for Envelope {
    fn from(&self) -> NodeId {
        self.from
    }

    fn to(&self) -> NodeId {
        self.to
    }
}

/// How the network treats messages. Probabilities are in `[0, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// The shortest one-way delay.
    pub delay_min: Duration,
    /// The longest ordinary one-way delay. Delays are uniform in between, so messages reorder.
    pub delay_max: Duration,
    /// The chance a message is lost.
    pub drop_rate: f64,
    /// The chance a message is delivered twice.
    pub duplicate_rate: f64,
    /// The chance a message is held back for up to `long_delay_max`.
    pub long_delay_rate: f64,
    /// The longest delay of a held-back message.
    pub long_delay_max: Duration,
    /// Whether messages between one pair of nodes may overtake each other. Without it each link
    /// is first-in first-out, as a TCP connection is.
    pub reorder: bool,
}

impl NetConfig {
    /// A network that loses nothing: 1–5 ms delays.
    pub fn reliable() -> NetConfig {
        NetConfig {
            delay_min: Duration::from_millis(1),
            delay_max: Duration::from_millis(5),
            drop_rate: 0.0,
            duplicate_rate: 0.0,
            long_delay_rate: 0.0,
            long_delay_max: Duration::ZERO,
            reorder: false,
        }
    }

    /// A random network of the kind faults produce.
    pub(crate) fn random(rng: &mut ChaCha8Rng) -> NetConfig {
        let delay_max = Duration::from_millis(rng.random_range(2..=50));
        NetConfig {
            delay_min: Duration::from_millis(1),
            delay_max,
            drop_rate: pick(rng, &[0.0, 0.01, 0.05, 0.2, 0.5]),
            duplicate_rate: pick(rng, &[0.0, 0.01, 0.05, 0.2]),
            long_delay_rate: pick(rng, &[0.0, 0.01, 0.05]),
            long_delay_max: Duration::from_millis(rng.random_range(100..=2000)),
            reorder: rng.random_bool(0.3),
        }
    }
}

fn pick(rng: &mut ChaCha8Rng, choices: &[f64]) -> f64 {
    choices[rng.random_range(0..choices.len())]
}

/// Messages in flight, ordered by delivery time then by sending order.
#[derive(Debug)]
pub(crate) struct SimNet<M: Routed = Envelope> {
    pub(crate) config: NetConfig,
    in_flight: BinaryHeap<Reverse<(Instant, u64)>>,
    messages: BTreeMap<u64, M>,
    next_seq: u64,
    /// Each node's side of the current partition; nodes on different sides cannot talk.
    sides: BTreeMap<NodeId, u32>,
    /// Links cut in one direction only: (from, to).
    one_way: BTreeSet<(NodeId, NodeId)>,
    /// The latest arrival scheduled on each link, which FIFO links do not undercut.
    link_tail: BTreeMap<(NodeId, NodeId), Instant>,
    pub(crate) stats: NetStats,
}

/// Counts of what the network did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Messages handed to the network.
    pub sent: u64,
    /// Messages delivered to a running node.
    pub delivered: u64,
    /// Messages lost by chance, to a partition, or to a crashed receiver.
    pub dropped: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
}

impl<M: Routed> SimNet<M> {
    pub(crate) fn new(config: NetConfig) -> SimNet<M> {
        SimNet {
            config,
            in_flight: BinaryHeap::new(),
            messages: BTreeMap::new(),
            next_seq: 0,
            sides: BTreeMap::new(),
            one_way: BTreeSet::new(),
            link_tail: BTreeMap::new(),
            stats: NetStats::default(),
        }
    }

    /// Puts a message on the wire at `now`; it may be lost, delayed or duplicated.
    pub(crate) fn send(&mut self, envelope: M, now: Instant, rng: &mut ChaCha8Rng) {
        self.stats.sent += 1;
        if !self.connected(envelope.from(), envelope.to()) || rng.random_bool(self.config.drop_rate)
        {
            self.stats.dropped += 1;
            return;
        }
        if rng.random_bool(self.config.duplicate_rate) {
            self.stats.duplicated += 1;
            let at = self.arrival(&envelope, now, rng);
            self.enqueue(envelope.clone(), at);
        }
        let at = self.arrival(&envelope, now, rng);
        self.enqueue(envelope, at);
    }

    fn arrival(&mut self, envelope: &M, now: Instant, rng: &mut ChaCha8Rng) -> Instant {
        let mut at = now + self.delay(rng);
        let tail = self
            .link_tail
            .entry((envelope.from(), envelope.to()))
            .or_insert(Instant::ZERO);
        if !self.config.reorder {
            at = at.max(*tail);
        }
        *tail = (*tail).max(at);
        at
    }

    fn delay(&self, rng: &mut ChaCha8Rng) -> Duration {
        let c = &self.config;
        if rng.random_bool(c.long_delay_rate) && !c.long_delay_max.is_zero() {
            return rng.random_range(c.delay_min..=c.long_delay_max.max(c.delay_min));
        }
        rng.random_range(c.delay_min..=c.delay_max.max(c.delay_min))
    }

    fn enqueue(&mut self, envelope: M, at: Instant) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.messages.insert(seq, envelope);
        self.in_flight.push(Reverse((at, seq)));
    }

    /// The latest arrival ever scheduled from `from` to `to`: a TCP connection delivers what
    /// was sent before it was reset ahead of the reset.
    pub(crate) fn last_arrival(&self, from: NodeId, to: NodeId) -> Option<Instant> {
        self.link_tail.get(&(from, to)).copied()
    }

    /// When the next message arrives, if any is in flight.
    pub(crate) fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes the next message to arrive, unless a partition formed while it was in flight.
    pub(crate) fn pop(&mut self) -> Option<M> {
        let Reverse((_, seq)) = self.in_flight.pop()?;
        let envelope = self
            .messages
            .remove(&seq)
            .expect("every queued sequence number has its message");
        if self.connected(envelope.from(), envelope.to()) {
            Some(envelope)
        } else {
            self.stats.dropped += 1;
            None
        }
    }

    /// Whether `a` can reach `b`: they are on the same side of the partition and the link
    /// from `a` to `b` is not cut one way.
    pub(crate) fn connected(&self, a: NodeId, b: NodeId) -> bool {
        self.sides.get(&a).copied().unwrap_or(0) == self.sides.get(&b).copied().unwrap_or(0)
            && !self.one_way.contains(&(a, b))
    }

    /// Cuts every link from a node of `from` to a node of `to`, in that direction only: what
    /// `to` sends still reaches `from`. Adds to the cuts already made.
    pub(crate) fn cut_one_way(&mut self, from: &[NodeId], to: &[NodeId]) {
        for &a in from {
            for &b in to {
                if a != b {
                    self.one_way.insert((a, b));
                }
            }
        }
    }

    /// Splits the nodes: each group can talk only within itself. Unlisted nodes join group 0.
    pub(crate) fn partition(&mut self, groups: &[Vec<NodeId>]) {
        self.sides.clear();
        for (side, group) in groups.iter().enumerate() {
            for &node in group {
                self.sides
                    .insert(node, u32::try_from(side).unwrap_or(u32::MAX));
            }
        }
    }

    /// Ends every partition, one-way cuts included.
    pub(crate) fn heal(&mut self) {
        self.sides.clear();
        self.one_way.clear();
    }
}
