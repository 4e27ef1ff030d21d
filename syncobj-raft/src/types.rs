//! The basic values of the protocol: terms, indexes, node ids, instants and log entries.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A Raft term: a logical clock that grows with every election (Raft paper §5.1).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Term(pub u64);

impl Term {
    /// The term after this one.
    #[must_use]
    pub fn next(self) -> Term {
        Term(self.0 + 1)
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// The position of an entry in the replicated log. The first entry has index 1; index 0 is the
/// empty prefix before it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogIndex(pub u64);

impl LogIndex {
    /// The empty prefix before the first entry.
    pub const ZERO: LogIndex = LogIndex(0);

    /// The index after this one.
    #[must_use]
    pub fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }

    /// The index before this one, or zero.
    #[must_use]
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }
}

impl Add<u64> for LogIndex {
    type Output = LogIndex;
    fn add(self, rhs: u64) -> LogIndex {
        LogIndex(self.0 + rhs)
    }
}

impl fmt::Display for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A (index, term) pair naming one log entry; also the point a snapshot covers up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogPosition {
    /// The entry's index.
    pub index: LogIndex,
    /// The entry's term.
    pub term: Term,
}

impl LogPosition {
    /// The empty prefix before the first entry: index 0, term 0.
    pub const ZERO: LogPosition = LogPosition {
        index: LogIndex::ZERO,
        term: Term(0),
    };
}

impl fmt::Display for LogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.index, self.term)
    }
}

/// The identity of a node inside the Raft core. The driver maps addresses to ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A point on a node's monotonic clock, as nanoseconds since an origin the driver chooses.
///
/// The Raft core never reads a clock: every input carries the current `Instant`. The driver
/// turns `std::time::Instant` into this type; the simulator uses virtual time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The origin of the clock.
    pub const ZERO: Instant = Instant(0);

    /// The instant `nanos` nanoseconds after the origin.
    pub fn from_nanos(nanos: u64) -> Instant {
        Instant(nanos)
    }

    /// Nanoseconds since the origin.
    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        let nanos = u64::try_from(rhs.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(nanos))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0 / 1_000_000;
        write!(f, "{}.{:03}s", millis / 1000, millis % 1000)
    }
}

/// What an entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntryKind {
    /// The empty entry a new leader appends at the start of its term (Raft paper §8): committing
    /// it commits every earlier entry and tells the leader what is committed.
    Noop,
    /// An opaque command for the state machine.
    Command,
    /// A configuration: `data` is the full new [`Membership`](super::Membership), as
    /// [`Membership::encode`](super::Membership::encode) writes it. It takes effect on each
    /// node as soon as it is in the node's log (Raft thesis §4.1).
    Membership,
}

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// Where the entry sits in the log.
    pub index: LogIndex,
    /// The term of the leader that created it.
    pub term: Term,
    /// What it carries.
    pub kind: EntryKind,
    /// The command bytes; empty for a no-op; the encoded membership of a configuration entry.
    pub data: Bytes,
}

impl Entry {
    /// The size the entry counts for when batching, in bytes.
    pub fn size_bytes(&self) -> usize {
        self.data.len() + ENTRY_OVERHEAD_BYTES
    }
}

/// A rough per-entry overhead (index, term, kind, framing) used when sizing batches.
const ENTRY_OVERHEAD_BYTES: usize = 24;

/// The state a node must make durable before it sends anything that depends on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// The candidate this node voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// The highest index known to be committed. Saving it lets a restarted node re-apply its
    /// committed entries at once, before a leader is known.
    pub commit: LogIndex,
}
