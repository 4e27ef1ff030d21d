//! The follower's side of a snapshot transfer (Raft paper §7, thesis §5.3): accepting chunks in
//! order, handing them to the driver, and resetting the log once the driver installed the
//! snapshot.
//!
//! The partial snapshot is volatile: chunk confirmations do not wait for anything to be durable,
//! and a follower that restarts simply asks for offset 0 again. Only the final
//! [`Installed`](SnapshotOutcome::Installed) waits: the driver reports the install once the
//! snapshot is durable, and the answer leaves after the log reset and the new commit index are
//! durable too. From the last chunk until then, no committed entry is handed out for applying:
//! the state machine is about to be replaced.

use super::error::{ProtocolViolation, SnapshotError};
use super::membership::Membership;
use super::message::{InstallSnapshot, InstallSnapshotResponse, Message, SnapshotOutcome};
use super::node::RaftNode;
use super::snapshot::{IncomingChunk, LogReset};
use super::types::{Instant, LogPosition, NodeId, Term};

/// A snapshot being received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reception {
    /// The leader sending it, and its term: another leader's bytes for the same snapshot may
    /// differ, so a transfer never mixes two.
    leader: NodeId,
    term: Term,
    snapshot: LogPosition,
    /// The stream's bytes before this offset were handed to the driver.
    next_offset: u64,
    /// The last chunk was handed out: the driver is installing the snapshot.
    complete: bool,
    /// The configuration at the snapshot's last entry, as the leader sent it.
    membership: Membership,
}

impl Reception {
    fn is_from(&self, leader: NodeId, term: Term, snapshot: LogPosition) -> bool {
        (self.leader, self.term, self.snapshot) == (leader, term, snapshot)
    }
}

impl RaftNode {
    /// The membership the leader sent with the snapshot being received, `snapshot`, once its
    /// last chunk was handed out: the driver stores it with the snapshot before it calls
    /// [`snapshot_installed`](Self::snapshot_installed), so that a restart finds it
    /// ([`Restored::membership`](super::Restored::membership)).
    pub fn incoming_snapshot_membership(&self, snapshot: LogPosition) -> Option<&Membership> {
        self.receiving
            .as_ref()
            .filter(|r| r.complete && r.snapshot == snapshot)
            .map(|r| &r.membership)
    }

    /// Reports that the snapshot handed out in [`Ready::snapshot_chunks`](super::Ready) is
    /// durable and loaded into the state machine. The log is reset to it (Raft paper §7): the
    /// entries after it are kept if the log holds an entry matching its last one, else the log
    /// is discarded; the commit index rises to it at least, the applied index moves to it. The
    /// next [`Ready`](super::Ready) carries the [`LogReset`] for the journal and the new commit
    /// index; the leader hears of the install once they are durable.
    ///
    /// # Errors
    /// [`SnapshotError::NotAwaitingInstall`] if the node handed out no complete snapshot
    /// `snapshot` still awaiting installation.
    pub fn snapshot_installed(
        &mut self,
        snapshot: LogPosition,
        _now: Instant,
    ) -> Result<(), SnapshotError> {
        let reception = self
            .receiving
            .take_if(|r| r.complete && r.snapshot == snapshot)
            .ok_or(SnapshotError::NotAwaitingInstall(snapshot))?;
        let suffix_kept = self.log.install_snapshot(snapshot);
        self.configs
            .installed(snapshot.index, reception.membership, suffix_kept);
        let reset = LogReset {
            snapshot,
            suffix_kept,
        };
        self.log_reset = Some(match self.log_reset {
            Some(earlier) => earlier.then(reset),
            None => reset,
        });
        self.snapshot_counters.installed += 1;
        tracing::info!(node = %self.id, %snapshot, suffix_kept, "snapshot installed");
        self.answer_chunk(reception.leader, snapshot, SnapshotOutcome::Installed);
        Ok(())
    }

    /// Reports that the driver could not write, check or load `snapshot`: the partial or
    /// complete copy is forgotten, applying resumes, and the leader is asked to start over at
    /// its next chunk.
    ///
    /// # Errors
    /// [`SnapshotError::NotAwaitingInstall`] if no snapshot `snapshot` is being received.
    pub fn snapshot_failed(&mut self, snapshot: LogPosition) -> Result<(), SnapshotError> {
        self.receiving
            .take_if(|r| r.snapshot == snapshot)
            .map(|_| ())
            .ok_or(SnapshotError::NotAwaitingInstall(snapshot))
    }

    /// Whether a complete snapshot is being installed by the driver: no entry is handed out for
    /// applying meanwhile.
    pub(crate) fn applying_paused(&self) -> bool {
        self.receiving.as_ref().is_some_and(|r| r.complete)
    }

    /// A chunk from the leader of the current term (the term rules of §5.1 are checked).
    pub(crate) fn on_install_snapshot(
        &mut self,
        from: NodeId,
        chunk: InstallSnapshot,
        now: Instant,
    ) -> Result<(), ProtocolViolation> {
        let snapshot = chunk.snapshot();
        if snapshot.term > chunk.term {
            return Err(ProtocolViolation::SnapshotFromTheFuture {
                snapshot,
                term: chunk.term,
            });
        }
        self.recognize_leader(from, now)?;
        let outcome = self.receive_chunk(from, chunk);
        self.answer_chunk(from, snapshot, outcome);
        Ok(())
    }

    /// Takes the chunk if it is the next one of the snapshot being received (or the first of a
    /// new one), and says which offset to send next.
    fn receive_chunk(&mut self, from: NodeId, chunk: InstallSnapshot) -> SnapshotOutcome {
        let snapshot = chunk.snapshot();
        if let Some(r) = self.receiving.as_ref().filter(|r| r.complete) {
            // Installing: a repeat of the last chunk hears where this transfer stands; another
            // transfer waits until the install is over.
            let next_offset = if r.is_from(from, self.term, snapshot) {
                r.next_offset
            } else {
                0
            };
            return SnapshotOutcome::Continue { next_offset };
        }
        let committed = self.log.committed();
        if snapshot.index <= committed {
            // §7: a snapshot that does not go past the commit index holds nothing new.
            self.snapshot_counters.stale_refused += 1;
            return SnapshotOutcome::Stale { committed };
        }
        let expected = match &self.receiving {
            Some(r) if r.is_from(from, self.term, snapshot) => r.next_offset,
            _ => 0,
        };
        if chunk.offset > expected && expected > 0 {
            // The leader counts more as received than this node holds: the copy it built was
            // lost (a restart) and a delayed first chunk started this one. The leader takes a
            // lower offset for a stale answer, so the transfer starts over instead.
            self.receiving = None;
            return SnapshotOutcome::Continue { next_offset: 0 };
        }
        if chunk.offset != expected {
            return SnapshotOutcome::Continue {
                next_offset: expected,
            };
        }
        self.take_chunk(from, chunk)
    }

    /// Hands the next chunk to the driver (unless it is an empty keep-alive).
    fn take_chunk(&mut self, from: NodeId, chunk: InstallSnapshot) -> SnapshotOutcome {
        let snapshot = chunk.snapshot();
        let term = self.term;
        if !self
            .receiving
            .as_ref()
            .is_some_and(|r| r.is_from(from, term, snapshot))
        {
            // The first chunk of a new transfer replaces a partial one.
            self.receiving = Some(Reception {
                leader: from,
                term,
                snapshot,
                next_offset: 0,
                complete: false,
                membership: chunk.membership.clone(),
            });
        }
        let reception = self
            .receiving
            .as_mut()
            .expect("a reception was just ensured");
        debug_assert_eq!(
            reception.next_offset, chunk.offset,
            "chunks are taken in order"
        );
        reception.next_offset += chunk.data.len() as u64;
        reception.complete = chunk.done;
        let next_offset = reception.next_offset;
        if !chunk.data.is_empty() || chunk.done {
            self.incoming_chunks.push(IncomingChunk {
                from,
                snapshot,
                offset: chunk.offset,
                data: chunk.data,
                done: chunk.done,
            });
        }
        SnapshotOutcome::Continue { next_offset }
    }

    fn answer_chunk(&mut self, to: NodeId, snapshot: LogPosition, outcome: SnapshotOutcome) {
        let response = InstallSnapshotResponse {
            term: self.term,
            last_index: snapshot.index,
            last_term: snapshot.term,
            outcome,
        };
        self.send(to, Message::InstallSnapshotResponse(response));
    }
}
