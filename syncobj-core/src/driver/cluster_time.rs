//! Cluster time: the time the leader stamps on every command it appends to the log, which a
//! replicated method reads with [`command_time`](crate::driver::command_time) while it runs.
//! Every node applies the same stamp, so a method can judge time (a lock's expiry, a cache
//! entry's age) the same way on every node, whatever the nodes' clocks say.
//!
//! # The rule
//!
//! A stamp is a `u64` of nanoseconds in the command's header ([`CommandHeader::stamp`]).
//! Callers write 0; the leader writes the stamp just before it appends the command (its own
//! calls, forwarded ones and system commands alike). When a node first sees itself leading a
//! term, at instant `since` of its own monotonic clock, it takes a base:
//!
//! - the stamp of the last command entry in its Raft log (the entries after its snapshot), or
//!   if there is none,
//! - the stamp of the last command it applied, which a snapshot carries for the commands it
//!   covers (and which a restart or an installed snapshot restores).
//!
//! Throughout that term it stamps `base + (now - since)`, `now` being its clock when it
//! appends.
//!
//! # Why it holds
//!
//! Claim: along any node's log (so along the committed log), stamps never decrease, and for
//! two commands `a` before `b`, `stamp(b) - stamp(a)` is at most the time that passed between
//! their proposals, as the leaders' clocks measured it, counting only time in which some node
//! led (and stamped).
//!
//! By induction on terms. A node's log is a prefix of the log of the leader of the term of its
//! last entry, as that leader had it at some moment (Raft's log matching), so it is enough to
//! show it for the leader `L` of term `T`, assuming it for every log of earlier terms. `L`'s
//! log is `P`, the log it held when it won (entries of earlier terms only, a log of earlier
//! terms), followed by entries it appended itself. Commands in `P` hold by the assumption.
//! Let `c` be the last command of `P`. Its stamp is `L`'s base: either it is in `L`'s
//! in-memory log, or it is at or below the snapshot base, and then it is the last command
//! applied when the snapshot was taken, whose stamp the snapshot carries (the engine's last
//! applied stamp is at least that, and at most `stamp(c)`, since what is applied is a prefix
//! of `P`). Every command `L` appends gets `base + (now - since) >= base`, with `now` never
//! going back within the term: stamps never decrease. For `a` in `P` and `b` of `L`:
//! `stamp(b) - stamp(a) = (stamp(c) - stamp(a)) + (now_b - since)`. The first part is at most
//! the leaders' time from `a`'s proposal to `c`'s (induction), the second is `L`'s time from
//! `since` to `b`'s proposal; and `c` was proposed before `L` saw itself leading (`c` was in
//! its log), so the two intervals do not overlap. For `a` and `b` both of `L`, the difference
//! is `L`'s own clock between the two proposals.
//!
//! Hence:
//!
//! - Offsets between the servers' clocks never matter: a stamp only adds durations measured
//!   on one node's monotonic clock. Only a clock's rate error does, as a factor on each
//!   leader's share of the time.
//! - Time with no leader (an election) and the time between a leader's last command and the
//!   next leader's first sighting of its own leadership does not count: cluster time may lag
//!   real time, never run ahead of it. So if a command stamped `s` was proposed, any command
//!   stamped `s + d` later in the log was proposed at least `d` later (by the leaders'
//!   clocks).
//! - Crashes and restarts change nothing: a restarted node recovers its log from its journal
//!   and its last applied stamp from its snapshot, and leads only in a new term, with a new
//!   base. A follower that installs a leader's snapshot takes the stamp it carries.
//! - Entries a new leader overwrites were never committed; the claim holds for every log, so
//!   for the committed one too.
//!
//! A command whose header is too short carries no stamp: it is appended as it came (applying
//! it fails on every node alike) and ignored when a base is taken.

use bytes::Bytes;

use crate::object::CommandHeader;
use crate::raft::{EntryKind, Instant, RaftNode, Term};

/// One node's view of cluster time: its base while it leads, and the stamp of the last command
/// it applied.
#[derive(Debug, Default)]
pub(crate) struct ClusterClock {
    /// The term this node led when it last stamped, with its base and `since`.
    lead: Option<Lead>,
    /// The stamp of the last command applied (restored from a snapshot, then each command's).
    applied: u64,
}

/// A term this node leads: stamps are `base + (now - since)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Lead {
    term: Term,
    base: u64,
    since: Instant,
}

impl ClusterClock {
    /// A clock whose last applied command was stamped `applied` (0 for a node without a
    /// snapshot).
    pub(crate) fn new(applied: u64) -> ClusterClock {
        ClusterClock {
            lead: None,
            applied,
        }
    }

    /// The stamp for a command the leader appends at `now`. Call it only on the leader, right
    /// before it appends.
    pub(crate) fn stamp(&mut self, raft: &RaftNode, now: Instant) -> u64 {
        let lead = self.lead(raft, now);
        let elapsed = now.saturating_duration_since(lead.since).as_nanos();
        lead.base
            .saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX))
    }

    /// Takes note of a leadership this node won, at `now`: the sooner it is seen, the less
    /// time is lost to the election.
    pub(crate) fn watch(&mut self, raft: &RaftNode, now: Instant) {
        if raft.is_leader() {
            self.lead(raft, now);
        }
    }

    /// A command stamped `stamp` was applied (or a snapshot covering commands up to one
    /// stamped `stamp` was installed).
    pub(crate) fn applied(&mut self, stamp: u64) {
        self.applied = stamp;
    }

    /// The stamp of the last command applied: what a snapshot taken now carries.
    pub(crate) fn last_applied(&self) -> u64 {
        self.applied
    }

    /// This node's lead in its current term, taken now if it is new.
    fn lead(&mut self, raft: &RaftNode, now: Instant) -> Lead {
        let term = raft.term();
        match self.lead {
            Some(lead) if lead.term == term => lead,
            _ => {
                let base = last_logged_stamp(raft).unwrap_or(self.applied);
                let lead = Lead {
                    term,
                    base,
                    since: now,
                };
                tracing::debug!(%term, base, "leading: cluster time resumes from the log");
                self.lead = Some(lead);
                lead
            }
        }
    }
}

/// The stamp of the last command entry in `raft`'s log (after its snapshot), if any.
fn last_logged_stamp(raft: &RaftNode) -> Option<u64> {
    let first = raft.log_base().index;
    let mut index = raft.last_index();
    while index > first {
        if let Some(entry) = raft.entry(index)
            && entry.kind == EntryKind::Command
            && let Ok((header, _)) = CommandHeader::decode(&entry.data)
        {
            return Some(header.stamp);
        }
        index = index.prev();
    }
    None
}

/// `command` with `stamp` written into its header: in place when the bytes are this handle's
/// alone (a local call: no allocation, no copy), in a copy otherwise (a forwarded call, whose
/// bytes share the frame they came in). A command too short for a header comes back as it
/// was.
pub(crate) fn stamped(command: Bytes, stamp: u64) -> Bytes {
    if command.len() < CommandHeader::LEN {
        return command;
    }
    match command.try_into_mut() {
        Ok(mut unique) => {
            CommandHeader::write_stamp(&mut unique, stamp);
            unique.freeze()
        }
        Err(shared) => {
            let mut copy = shared.to_vec();
            CommandHeader::write_stamp(&mut copy, stamp);
            Bytes::from(copy)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use parking_lot::RwLock;

    use super::{ClusterClock, stamped};
    use crate::driver::command_time;
    use crate::driver::objects::{ErasedObject, ObjectCell};
    use crate::object::{
        ApplyError, Caller, CommandHeader, MethodSpec, ReplicatedMethods, ReplicatedState,
    };
    use crate::raft::{Instant, Membership, NodeId, RaftConfig, RaftNode, Restored};

    fn command(stamp: u64, args: &[u8]) -> Vec<u8> {
        let header = CommandHeader {
            object: 0,
            method: 1,
            fingerprint: 2,
            stamp,
        };
        let mut bytes = Vec::new();
        header.encode(&mut bytes);
        bytes.extend_from_slice(args);
        bytes
    }

    fn stamp_of(command: &[u8]) -> u64 {
        CommandHeader::decode(command).expect("a header").0.stamp
    }

    /// A command's own bytes are stamped in place: the buffer stays where it was.
    #[test]
    fn unique_bytes_are_stamped_in_place() {
        let bytes = Bytes::from(command(0, b"args").into_boxed_slice());
        let at = bytes.as_ptr();
        let out = stamped(bytes, 42);
        assert_eq!(out.as_ptr(), at, "stamped without a copy");
        assert_eq!(stamp_of(&out), 42);
        assert_eq!(&out[CommandHeader::LEN..], b"args");
    }

    /// Shared bytes (a forwarded call in its frame) are copied, and the other handle keeps
    /// the bytes it had.
    #[test]
    fn shared_bytes_are_copied() {
        let frame = Bytes::from(command(0, b"args"));
        let kept = frame.clone();
        let out = stamped(frame, 7);
        assert_eq!(stamp_of(&out), 7);
        assert_eq!(stamp_of(&kept), 0);
        assert_eq!(&out[CommandHeader::LEN..], b"args");
        let short = Bytes::from_static(b"short");
        assert_eq!(stamped(short.clone(), 7), short);
    }

    /// Reads the command time from inside its one method.
    #[derive(Default, serde::Serialize, serde::Deserialize)]
    struct Clocked;

    impl ReplicatedState for Clocked {
        const NAME: &'static str = "Clocked";
    }

    impl ReplicatedMethods for Clocked {
        const METHODS: &'static [MethodSpec] = &[MethodSpec {
            id: 0,
            name: "now",
            version: 0,
            fingerprint: 0,
        }];
        type Calls = Caller;

        fn apply(&mut self, _id: u16, _args: &[u8]) -> Result<Vec<u8>, ApplyError> {
            Ok(rmp_serde::to_vec(&command_time()).expect("encodes"))
        }
    }

    /// A replicated method reads its command's stamp; nothing else reads one.
    #[test]
    fn methods_read_their_stamp() {
        let cell = ObjectCell {
            state: RwLock::new(Clocked),
        };
        let header = CommandHeader {
            object: 0,
            method: 0,
            fingerprint: 0,
            stamp: 2_000_000_001,
        };
        let result = cell.writer().apply(header, &[]).expect("applies");
        let read: Option<Duration> = rmp_serde::from_slice(&result).expect("decodes");
        assert_eq!(read, Some(Duration::new(2, 1)));
        assert_eq!(command_time(), None, "outside a replicated method");
    }

    /// A single-node cluster leads at once.
    fn leader() -> (RaftNode, Instant) {
        let me = NodeId(1);
        let membership = Membership::new([me], []);
        let config = RaftConfig::default();
        let mut raft = RaftNode::new(me, membership, config, Restored::default(), Instant::ZERO)
            .expect("a node");
        let mut now = Instant::ZERO;
        for _ in 0..100 {
            if raft.is_leader() {
                break;
            }
            now = raft
                .next_deadline()
                .unwrap_or(now + Duration::from_millis(10));
            raft.tick(now);
        }
        assert!(raft.is_leader(), "a lone voter elects itself");
        (raft, now)
    }

    /// A new leader resumes from the last command stamp in its log, then counts its own
    /// clock's time; stamps of its term never go back.
    #[test]
    fn leader_resumes_from_the_log() {
        let (mut raft, now) = leader();
        let mut clock = ClusterClock::new(5);
        // No command in the log: the last applied stamp is the base.
        assert_eq!(clock.stamp(&raft, now), 5);
        let later = now + Duration::from_millis(3);
        assert_eq!(clock.stamp(&raft, later), 5 + 3_000_000);
        let logged = Bytes::from(command(1_000, b""));
        raft.propose(logged, later).expect("the leader appends");
        // The same term: the base stays.
        assert_eq!(clock.stamp(&raft, later), 5 + 3_000_000);
        // A fresh clock (a restart, another term) takes the stamp in the log, not the
        // applied one.
        let mut fresh = ClusterClock::new(5);
        let since = later + Duration::from_secs(60);
        assert_eq!(fresh.stamp(&raft, since), 1_000);
        fresh.watch(&raft, since + Duration::from_secs(1));
        assert_eq!(fresh.stamp(&raft, since + Duration::from_nanos(9)), 1_009);
    }
}
