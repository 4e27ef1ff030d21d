//! The faults a [`MemoryNetwork`](super::MemoryNetwork) puts between its nodes: who may reach
//! whom (isolation, symmetric partitions, one-way cuts) and what happens to each frame on the
//! way (seeded loss, delay with jitter), with counters of what they did.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

/// A fault setting refused by a [`MemoryNetwork`](super::MemoryNetwork).
#[derive(Clone, Debug, PartialEq, Error)]
pub enum FaultError {
    /// A loss probability outside 0.0 ..= 1.0 (or not a number).
    #[error("loss probability {0} is not between 0.0 and 1.0")]
    Probability(f64),
    /// A node named in two groups of one partition.
    #[error("node {0:?} is named in two groups of the partition")]
    TwoGroups(String),
    /// A delay too long to mean anything (above [`DELAY_MAX`]).
    #[error("a delay of {0:?} is above the most a frame may be held ({DELAY_MAX:?})")]
    DelayTooLong(Duration),
    /// The thread of a flapping cut could not start.
    #[error("cannot spawn the thread of a flapping cut: {0}")]
    Thread(String),
}

/// The longest a frame may be delayed, fixed part and jitter together.
pub const DELAY_MAX: Duration = Duration::from_secs(3600);

/// How long frames take on every link ([`MemoryNetwork::set_delay`](super::MemoryNetwork::set_delay)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delay {
    /// Every frame takes at least this long.
    pub fixed: Duration,
    /// … plus up to this long more, drawn per frame from the network's seed.
    pub jitter: Duration,
    /// Whether a frame may overtake an earlier one on the same link. Off: each link stays
    /// first-in first-out (a frame waits for the one before it), as over TCP.
    pub reorder: bool,
}

/// What a [`MemoryNetwork`](super::MemoryNetwork)'s faults did to frames so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounters {
    /// Frames dropped because a partition, a one-way cut or an isolation stood between their
    /// sender and their receiver (when sent, or by the time they were due).
    pub cut: u64,
    /// Frames dropped by the loss probability.
    pub lost: u64,
    /// Frames held back by the delay.
    pub delayed: u64,
    /// Delayed frames dropped because their receiver already held the most it may
    /// ([`DELAYED_FRAMES_MAX`](super::DELAYED_FRAMES_MAX)).
    pub delay_overflow: u64,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    cut: AtomicU64,
    lost: AtomicU64,
    delayed: AtomicU64,
    delay_overflow: AtomicU64,
}

impl Counters {
    pub(super) fn cut(&self) {
        self.cut.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn delay_overflow(&self) {
        self.delay_overflow.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> FaultCounters {
        FaultCounters {
            cut: self.cut.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            delayed: self.delayed.load(Ordering::Relaxed),
            delay_overflow: self.delay_overflow.load(Ordering::Relaxed),
        }
    }
}

/// What becomes of one frame.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Fate {
    /// Its link is cut: dropped.
    Cut,
    /// Dropped by the loss probability.
    Lost,
    /// Delivered, at once (`None`) or not before this time.
    Deliver(Option<Instant>),
}

/// Who may reach whom, and what frames meet on the way.
#[derive(Debug)]
pub(super) struct LinkFaults {
    isolated: BTreeSet<String>,
    /// Each node's group while a partition stands.
    groups: Option<BTreeMap<String, usize>>,
    /// One-way cuts: frames from a sender to any of its receivers here are dropped.
    blocked: BTreeMap<String, BTreeSet<String>>,
    loss: f64,
    delay: Delay,
    seed: u64,
    /// Per link, by sender then receiver: its random draws, and when its last frame is due.
    links: BTreeMap<String, BTreeMap<String, LinkState>>,
}

#[derive(Debug)]
struct LinkState {
    rng: ChaCha8Rng,
    last_due: Option<Instant>,
}

impl Default for LinkFaults {
    fn default() -> LinkFaults {
        LinkFaults::new(0)
    }
}

impl LinkFaults {
    pub(super) fn new(seed: u64) -> LinkFaults {
        LinkFaults {
            isolated: BTreeSet::new(),
            groups: None,
            blocked: BTreeMap::new(),
            loss: 0.0,
            delay: Delay::default(),
            seed,
            links: BTreeMap::new(),
        }
    }

    pub(super) fn isolate(&mut self, node: &str, isolated: bool) {
        match isolated {
            true => self.isolated.insert(node.to_owned()),
            false => self.isolated.remove(node),
        };
    }

    /// Splits the nodes into `groups`; a node named in none is cut from every other.
    pub(super) fn partition(&mut self, groups: Vec<Vec<String>>) -> Result<(), FaultError> {
        let mut by_node = BTreeMap::new();
        for (number, group) in groups.into_iter().enumerate() {
            for node in group {
                if by_node.get(&node).is_some_and(|&g| g != number) {
                    return Err(FaultError::TwoGroups(node));
                }
                by_node.insert(node, number);
            }
        }
        self.groups = Some(by_node);
        Ok(())
    }

    pub(super) fn block(&mut self, from: &str, to: &str, blocked: bool) {
        if blocked {
            let receivers = self.blocked.entry(from.to_owned()).or_default();
            receivers.insert(to.to_owned());
        } else if let Some(receivers) = self.blocked.get_mut(from) {
            receivers.remove(to);
            if receivers.is_empty() {
                self.blocked.remove(from);
            }
        }
    }

    pub(super) fn clear_partition(&mut self) {
        self.groups = None;
    }

    /// Ends every partition, one-way cut and isolation.
    pub(super) fn heal(&mut self) {
        self.isolated.clear();
        self.groups = None;
        self.blocked.clear();
    }

    pub(super) fn set_loss(&mut self, probability: f64) -> Result<(), FaultError> {
        if !(0.0..=1.0).contains(&probability) {
            return Err(FaultError::Probability(probability));
        }
        self.loss = probability;
        Ok(())
    }

    pub(super) fn set_delay(&mut self, delay: Delay) -> Result<(), FaultError> {
        let total = delay.fixed.saturating_add(delay.jitter);
        if total > DELAY_MAX {
            return Err(FaultError::DelayTooLong(total));
        }
        self.delay = delay;
        Ok(())
    }

    /// Whether `a` and `b` are linked: neither is isolated and a partition, if one stands,
    /// puts them in the same group. One-way cuts leave links up.
    pub(super) fn linked(&self, a: &str, b: &str) -> bool {
        if self.isolated.contains(a) || self.isolated.contains(b) {
            return false;
        }
        self.groups.as_ref().is_none_or(
            |groups| matches!((groups.get(a), groups.get(b)), (Some(x), Some(y)) if x == y),
        )
    }

    /// Whether a frame from `from` may reach `to` now.
    pub(super) fn passes(&self, from: &str, to: &str) -> bool {
        let blocked = self.blocked.get(from).is_some_and(|r| r.contains(to));
        self.linked(from, to) && !blocked
    }

    /// What becomes of a frame sent now from `from` to `to`; counted.
    pub(super) fn fate(&mut self, from: &str, to: &str, counters: &Counters) -> Fate {
        if !self.passes(from, to) {
            counters.cut();
            return Fate::Cut;
        }
        let (loss, delay, seed) = (self.loss, self.delay, self.seed);
        if loss == 0.0 && delay == Delay::default() && self.links.is_empty() {
            return Fate::Deliver(None);
        }
        let receivers = match self.links.get_mut(from) {
            Some(receivers) => receivers,
            None => self.links.entry(from.to_owned()).or_default(),
        };
        let link = match receivers.get_mut(to) {
            Some(link) => link,
            None => receivers.entry(to.to_owned()).or_insert(LinkState {
                rng: ChaCha8Rng::seed_from_u64(link_seed(seed, from, to)),
                last_due: None,
            }),
        };
        if loss > 0.0 && link.rng.random_bool(loss) {
            counters.lost.fetch_add(1, Ordering::Relaxed);
            return Fate::Lost;
        }
        let now = Instant::now();
        let mut due = None;
        if delay != Delay::default() {
            let jitter = match delay.jitter.is_zero() {
                true => Duration::ZERO,
                false => link.rng.random_range(Duration::ZERO..=delay.jitter),
            };
            due = Some(now + delay.fixed + jitter);
        }
        if !delay.reorder {
            // First in, first out: never due before the link's previous frame.
            let pending = link.last_due.filter(|&last| last > now);
            due = match (due, pending) {
                (Some(due), Some(last)) => Some(due.max(last)),
                (due, last) => due.or(last),
            };
        }
        if due.is_some() {
            counters.delayed.fetch_add(1, Ordering::Relaxed);
            link.last_due = due.max(link.last_due);
        }
        Fate::Deliver(due)
    }
}

/// A link's own seed: the network's, mixed with both ends' names, so that each link draws the
/// same sequence in every run whatever the others do.
fn link_seed(seed: u64, from: &str, to: &str) -> u64 {
    // FNV-1a: stable across runs and platforms, unlike the standard hasher.
    let mut hash = 0xcbf2_9ce4_8422_2325_u64 ^ seed;
    for byte in from.bytes().chain([0]).chain(to.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_link_only_within_a_group() {
        let mut faults = LinkFaults::new(1);
        let groups = vec![vec!["a".into(), "b".into()], vec!["c".into()]];
        faults.partition(groups).expect("valid");
        assert!(faults.linked("a", "b"));
        assert!(!faults.linked("a", "c"));
        assert!(!faults.linked("a", "z"), "a node in no group is cut off");
        let twice = vec![vec!["a".into()], vec!["a".into()]];
        assert_eq!(
            faults.partition(twice),
            Err(FaultError::TwoGroups("a".into()))
        );
        faults.heal();
        assert!(faults.linked("a", "c"));
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut faults = LinkFaults::new(1);
        assert_eq!(faults.set_loss(1.5), Err(FaultError::Probability(1.5)));
        assert!(faults.set_loss(f64::NAN).is_err());
        let long = Delay {
            fixed: DELAY_MAX,
            jitter: Duration::from_secs(1),
            reorder: false,
        };
        assert!(matches!(
            faults.set_delay(long),
            Err(FaultError::DelayTooLong(_))
        ));
        let named = FaultError::TwoGroups("x".into()).to_string();
        assert!(named.contains("\"x\""), "{named}");
    }

    #[test]
    fn loss_is_replayed_from_the_seed() {
        let draws = |seed| {
            let counters = Counters::default();
            let mut faults = LinkFaults::new(seed);
            faults.set_loss(0.5).expect("valid");
            (0..64)
                .map(|_| faults.fate("a", "b", &counters) == Fate::Lost)
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
    }

    #[test]
    fn delay_keeps_each_link_in_order() {
        let counters = Counters::default();
        let mut faults = LinkFaults::new(3);
        let delay = Delay {
            fixed: Duration::from_millis(5),
            jitter: Duration::from_millis(50),
            reorder: false,
        };
        faults.set_delay(delay).expect("valid");
        let mut last = None;
        for _ in 0..100 {
            let Fate::Deliver(Some(due)) = faults.fate("a", "b", &counters) else {
                panic!("every frame is delayed");
            };
            assert!(last.is_none_or(|last| due >= last));
            last = Some(due);
        }
        assert_eq!(counters.snapshot().delayed, 100);
    }
}
