//! The leader's side of one snapshot transfer (Raft paper §7, thesis §5.3): which chunk to ask
//! the driver for, which to send, and what the follower's answers mean.
//!
//! One chunk is in flight at a time: the next is read only once the follower confirmed the
//! previous one, so a slow follower or a lossy link never piles chunks up. An unanswered chunk
//! is sent again at the next heartbeat. The follower says which offset it expects, so a transfer
//! resumes where it stopped after a lost chunk or a dropped connection, and starts over from
//! zero when the follower lost its partial copy.

use bytes::Bytes;

use super::membership::Membership;
use super::types::LogPosition;

/// The leader's view of one snapshot transfer to one follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotTransfer {
    /// The snapshot being sent.
    pub(crate) snapshot: LogPosition,
    /// The configuration in force at the snapshot's last entry, sent with every chunk.
    pub(crate) membership: Membership,
    /// The follower holds the stream's bytes before this offset: the next chunk starts here.
    acked: u64,
    /// The end of the furthest chunk sent; the follower cannot confirm more.
    sent_end: u64,
    step: Step,
}

/// Where the transfer stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    /// The chunk at `acked` must be asked of the driver.
    NeedRead,
    /// The driver was asked for the chunk at `acked`.
    Reading,
    /// The chunk at `acked` was sent and is unanswered; kept to be sent again.
    InFlight { data: Bytes, done: bool },
    /// The follower confirmed the whole stream and is installing the snapshot.
    Installing,
}

/// A chunk to send to the follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Chunk {
    pub(crate) offset: u64,
    pub(crate) data: Bytes,
    pub(crate) done: bool,
}

/// What a follower's [`Continue`](super::message::SnapshotOutcome::Continue) did to a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Confirmed {
    /// The follower moved forward, or asked to start over.
    Progress,
    /// Nothing new: a duplicate, a stale answer, or a follower that did not take the chunk.
    Nothing,
    /// The follower claims bytes that were never sent.
    BeyondSent { claimed: u64, sent: u64 },
}

impl SnapshotTransfer {
    /// A transfer of `snapshot`, whose configuration is `membership`, from its first byte.
    pub(crate) fn new(snapshot: LogPosition, membership: Membership) -> SnapshotTransfer {
        SnapshotTransfer {
            snapshot,
            membership,
            acked: 0,
            sent_end: 0,
            step: Step::NeedRead,
        }
    }

    /// Whether a chunk must be asked of the driver.
    pub(crate) fn needs_read(&self) -> bool {
        self.step == Step::NeedRead
    }

    /// Whether the follower confirmed no byte yet: starting over costs nothing.
    pub(crate) fn is_unstarted(&self) -> bool {
        self.acked == 0 && self.step != Step::Installing
    }

    /// Whether every chunk was confirmed and the follower is installing.
    #[cfg(test)]
    pub(crate) fn is_installing(&self) -> bool {
        self.step == Step::Installing
    }

    /// Asks for no read before the next heartbeat (the driver just failed to read).
    pub(crate) fn wait_for_heartbeat(&mut self) {
        if self.step == Step::NeedRead {
            self.step = Step::Reading;
        }
    }

    /// Takes the read to ask of the driver, if one is due: the offset of the next chunk.
    pub(crate) fn take_read(&mut self) -> Option<u64> {
        if self.step != Step::NeedRead {
            return None;
        }
        self.step = Step::Reading;
        Some(self.acked)
    }

    /// The driver read the chunk at `offset`. Returns the chunk to send, or `None` if the read
    /// is no longer wanted (the transfer moved on since it was asked for).
    pub(crate) fn chunk_read(&mut self, offset: u64, data: Bytes, done: bool) -> Option<Chunk> {
        if self.step != Step::Reading || offset != self.acked {
            return None;
        }
        let end = offset + data.len() as u64;
        self.sent_end = self.sent_end.max(end);
        self.step = Step::InFlight {
            data: data.clone(),
            done,
        };
        Some(Chunk { offset, data, done })
    }

    /// The follower holds the bytes before `next_offset` and wants the chunk starting there.
    pub(crate) fn on_continue(&mut self, next_offset: u64) -> Confirmed {
        if next_offset > self.sent_end {
            return Confirmed::BeyondSent {
                claimed: next_offset,
                sent: self.sent_end,
            };
        }
        if next_offset == 0 && (self.acked > 0 || self.step == Step::Installing) {
            // The follower lost its partial copy (it restarted, or its install failed).
            self.acked = 0;
            self.step = Step::NeedRead;
            return Confirmed::Progress;
        }
        if next_offset <= self.acked {
            // A duplicate or a stale answer; or the follower did not take the chunk in flight,
            // which then goes again at the next heartbeat.
            return Confirmed::Nothing;
        }
        let previous = std::mem::replace(&mut self.step, Step::NeedRead);
        if let Step::InFlight { data, done: true } = previous
            && next_offset == self.acked + data.len() as u64
        {
            self.step = Step::Installing;
        }
        self.acked = next_offset;
        Confirmed::Progress
    }

    /// A heartbeat is due: what to send so the follower hears from the leader and the transfer
    /// moves on even if a message was lost.
    ///
    /// - a chunk in flight goes again;
    /// - while the driver is (or should be) reading, an empty keep-alive at the expected offset
    ///   goes, and the read is asked for again (the driver may have dropped it);
    /// - while the follower installs, an empty last chunk asks whether it is done.
    pub(crate) fn on_heartbeat(&mut self) -> Chunk {
        match &self.step {
            Step::InFlight { data, done } => Chunk {
                offset: self.acked,
                data: data.clone(),
                done: *done,
            },
            Step::NeedRead | Step::Reading => {
                self.step = Step::NeedRead;
                Chunk {
                    offset: self.acked,
                    data: Bytes::new(),
                    done: false,
                }
            }
            Step::Installing => Chunk {
                offset: self.acked,
                data: Bytes::new(),
                done: true,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::{Chunk, Confirmed, SnapshotTransfer};
    use crate::membership::Membership;
    use crate::types::{LogIndex, LogPosition, Term};

    fn snapshot() -> LogPosition {
        LogPosition {
            index: LogIndex(50),
            term: Term(3),
        }
    }

    fn bytes(len: usize) -> Bytes {
        Bytes::from(vec![7; len])
    }

    /// Reads, sends and confirms the chunk of `len` bytes at the transfer's next offset.
    fn send_and_confirm(t: &mut SnapshotTransfer, len: usize, done: bool) -> u64 {
        let offset = t.take_read().expect("a read is due");
        let chunk = t
            .chunk_read(offset, bytes(len), done)
            .expect("the read is wanted");
        assert_eq!(chunk.offset, offset);
        let end = offset + len as u64;
        assert_eq!(t.on_continue(end), Confirmed::Progress);
        end
    }

    /// §7: the chunks go one at a time, each read only after the previous one was confirmed, and
    /// the transfer waits for the install once the last chunk is confirmed.
    #[test]
    fn chunks_go_one_at_a_time_in_order() {
        let mut t = SnapshotTransfer::new(snapshot(), Membership::default());
        assert!(t.needs_read() && t.is_unstarted());
        assert_eq!(t.take_read(), Some(0));
        assert_eq!(t.take_read(), None, "one read at a time");
        t.chunk_read(0, bytes(10), false).expect("wanted");
        assert_eq!(
            t.take_read(),
            None,
            "nothing read while a chunk is in flight"
        );
        assert_eq!(t.on_continue(10), Confirmed::Progress);
        assert!(!t.is_unstarted());
        assert_eq!(send_and_confirm(&mut t, 10, false), 20);
        assert_eq!(send_and_confirm(&mut t, 5, true), 25);
        assert!(t.is_installing());
        assert_eq!(t.take_read(), None);
    }

    /// A read answered for another offset, or after the transfer moved on, is dropped.
    #[test]
    fn unwanted_reads_are_dropped() {
        let mut t = SnapshotTransfer::new(snapshot(), Membership::default());
        assert_eq!(t.chunk_read(0, bytes(4), false), None, "never asked for");
        assert_eq!(t.take_read(), Some(0));
        assert_eq!(t.chunk_read(4, bytes(4), false), None, "another offset");
        assert!(t.chunk_read(0, bytes(4), false).is_some());
        assert_eq!(t.chunk_read(0, bytes(4), false), None, "answered twice");
    }

    /// Duplicate and stale confirmations change nothing; a follower that lost its copy (it asks
    /// for offset 0) makes the transfer start over; a claim past what was sent is refused.
    #[test]
    fn confirmations_resume_restart_or_are_ignored() {
        let mut t = SnapshotTransfer::new(snapshot(), Membership::default());
        send_and_confirm(&mut t, 10, false);
        send_and_confirm(&mut t, 10, false);
        assert_eq!(t.take_read(), Some(20));
        t.chunk_read(20, bytes(10), false).expect("wanted");
        assert_eq!(t.on_continue(10), Confirmed::Nothing, "stale");
        assert_eq!(
            t.on_continue(20),
            Confirmed::Nothing,
            "the chunk was not taken"
        );
        assert_eq!(
            t.on_continue(31),
            Confirmed::BeyondSent {
                claimed: 31,
                sent: 30
            }
        );
        assert_eq!(t.on_continue(0), Confirmed::Progress, "start over");
        assert!(t.is_unstarted());
        assert_eq!(t.take_read(), Some(0));
    }

    /// A heartbeat sends the unanswered chunk again; while reading it sends an empty keep-alive
    /// and asks for the read again; while installing it asks whether the follower is done.
    #[test]
    fn heartbeats_resend_keep_alive_or_ask() {
        let mut t = SnapshotTransfer::new(snapshot(), Membership::default());
        let keep_alive = Chunk {
            offset: 0,
            data: Bytes::new(),
            done: false,
        };
        assert_eq!(t.on_heartbeat(), keep_alive);
        assert_eq!(t.take_read(), Some(0));
        assert_eq!(t.on_heartbeat(), keep_alive);
        assert!(
            t.needs_read(),
            "a read the driver may have dropped is asked again"
        );
        assert_eq!(t.take_read(), Some(0));
        t.chunk_read(0, bytes(3), true).expect("wanted");
        let resent = t.on_heartbeat();
        assert_eq!(
            (resent.offset, resent.data.len(), resent.done),
            (0, 3, true)
        );
        assert_eq!(t.on_continue(3), Confirmed::Progress);
        assert!(t.is_installing());
        let ask = t.on_heartbeat();
        assert_eq!((ask.offset, ask.data.len(), ask.done), (3, 0, true));
        assert_eq!(t.on_continue(3), Confirmed::Nothing, "still installing");
        assert_eq!(t.on_continue(0), Confirmed::Progress, "the install failed");
        assert!(t.needs_read());
    }

    /// An empty snapshot is one empty last chunk.
    #[test]
    fn an_empty_stream_is_one_empty_last_chunk() {
        let mut t = SnapshotTransfer::new(snapshot(), Membership::default());
        assert_eq!(t.take_read(), Some(0));
        t.chunk_read(0, Bytes::new(), true).expect("wanted");
        // No byte to confirm: the transfer ends with the follower's `Installed` (or `Stale`
        // once installed), and until then the chunk goes again at each heartbeat.
        assert_eq!(t.on_continue(0), Confirmed::Nothing);
        assert!(!t.is_installing());
    }
}
