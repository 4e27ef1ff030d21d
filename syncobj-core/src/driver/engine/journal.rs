//! The engine's side of the journal: handing each `Ready`'s writes to the journal writer,
//! holding back what depends on them until the writer says they are durable, asking for
//! periodic syncs, halting when the disk fails, and the final sync at shutdown.

use super::Engine;
use crate::driver::HaltReason;
use crate::driver::wire::NodeMessage;
use crate::driver::writer::{Answer, Writer};
use crate::raft::{Entry, Envelope, HardState, LogIndex, LogReset, PersistAck};
use crate::storage::StorageError;

/// What writes handed to the writer hold back until they are durable: Raft's acknowledgement
/// and the messages that depend on them (or on earlier writes).
pub(super) struct Held {
    /// The writer's sequence number of the last write these wait for.
    seq: u64,
    ack: PersistAck,
    messages: Vec<Envelope>,
}

/// A `Ready`'s writes, moved out of it.
pub(super) struct Writes {
    pub(super) reset: Option<LogReset>,
    pub(super) hard_state: Option<HardState>,
    pub(super) entries: Vec<Entry>,
    pub(super) ack: PersistAck,
}

impl Engine {
    /// Hands a `Ready`'s writes to the writer, holding back `messages` (its
    /// `persisted_messages`) and the acknowledgement until they are durable. Without a journal,
    /// or when nothing is written and no write is in flight, sends them and acknowledges at
    /// once. `false` if the node halted.
    pub(super) fn persist(&mut self, writes: Writes, messages: Vec<Envelope>) -> bool {
        let now = self.now;
        let Writes {
            reset,
            hard_state,
            entries,
            ack,
        } = writes;
        let Some(writer) = &mut self.writer else {
            self.release(ack, messages);
            return true;
        };
        let writes = reset.is_some() || hard_state.is_some() || !entries.is_empty();
        // A follower's small write while the writer is idle is made durable here, without a
        // hand-over to the writer thread and its answer back: its acknowledgement is on the
        // path of the call. A leader's entries are not: it commits with its followers'
        // acknowledgements while its own sync runs, so its tick thread must not wait for the
        // disk; its commit index alone (held, saved at most once a second) is.
        let at_once = !self.raft.is_leader() || entries.is_empty();
        if writes && at_once && writer.may_save_now(reset.is_some(), &entries) {
            // What may leave before the write is durable leaves first; what depends on it
            // leaves after.
            self.links.flush(&mut self.outbox, &mut self.raft);
            let Some(writer) = &mut self.writer else {
                return true;
            };
            return match writer.save_now(hard_state, entries, now) {
                Ok(_) => {
                    self.release(ack, messages);
                    true
                }
                Err(error) => {
                    self.halt(error);
                    false
                }
            };
        }
        if writes {
            match writer.save(reset, hard_state, entries, now) {
                Ok(seq) => self.held.push_back(Held { seq, ack, messages }),
                Err(error) => {
                    self.writer_failed(error);
                    return false;
                }
            }
        } else if let Some(last) = self.held.back_mut() {
            // Nothing to write (so `ack` carries nothing), but the messages may depend on
            // writes still in flight: they wait for the last one.
            last.messages.extend(messages);
        } else {
            self.release(ack, messages);
        }
        true
    }

    /// Sends what durable writes held back, and tells Raft.
    fn release(&mut self, ack: PersistAck, messages: Vec<Envelope>) {
        for envelope in messages {
            self.outbox.push(envelope.to, &NodeMessage::Raft(envelope));
        }
        self.raft.on_persisted(ack);
    }

    /// Takes the writer's answers: releases what the writes now durable held back, in the
    /// order they were handed over; halts on a failure.
    pub(super) fn take_persisted(&mut self) {
        while let Some(answer) = self.writer.as_mut().and_then(Writer::try_answer) {
            match answer {
                Answer::Durable { seq, .. } => {
                    while self.held.front().is_some_and(|held| held.seq <= seq) {
                        if let Some(held) = self.held.pop_front() {
                            self.release(held.ack, held.messages);
                        }
                    }
                }
                Answer::Failed(error) => {
                    self.halt(error);
                    return;
                }
            }
        }
    }

    /// The writer refused work (it ended): halts with its own failure if it sent one.
    fn writer_failed(&mut self, error: StorageError) {
        let mut reason = error;
        while let Some(answer) = self.writer.as_mut().and_then(Writer::try_answer) {
            if let Answer::Failed(error) = answer {
                reason = error;
                break;
            }
        }
        self.halt(reason);
    }

    /// Drops the journal's entries up to `index`, which a durable snapshot covers: after
    /// every write handed over before.
    pub(super) fn drop_journal_prefix(&mut self, index: LogIndex) {
        let dropped = self
            .writer
            .as_mut()
            .map_or(Ok(()), |w| w.drop_prefix(index));
        if let Err(error) = dropped {
            self.writer_failed(error);
        }
    }

    /// Under a periodic fsync policy, asks for a sync once the period has passed.
    pub(super) fn sync_if_due(&mut self) {
        let now = self.now;
        let synced = self.writer.as_mut().map_or(Ok(()), |w| w.sync_if_due(now));
        if let Err(error) = synced {
            self.writer_failed(error);
        }
    }

    /// Stops the node: the writer makes every journal write handed over durable, whatever
    /// the fsync policy, and ends; the calls still waiting fail.
    pub(crate) fn stop(&mut self) {
        self.snapshots.finish_writing();
        let finished = self.writer.as_mut().map_or(Ok(()), Writer::finish);
        if let Err(error) = finished
            && self.halted.is_none()
        {
            self.halt(error);
        }
        self.calls.fail_all(&crate::object::FailReason::Shutdown);
        self.publish();
    }

    /// Stops the node as a crash would: the writer ends without writing what it still holds or
    /// syncing (the held commit index is not saved), and the calls still waiting fail with
    /// [`FailReason::Shutdown`](crate::object::FailReason::Shutdown), which does not promise
    /// they were never applied. A snapshot being written is finished first, so that nothing
    /// touches the node's files once this returns.
    pub(crate) fn crash(&mut self) {
        self.snapshots.finish_writing();
        if let Some(writer) = self.writer.as_mut() {
            writer.abandon();
        }
        self.calls.fail_all(&crate::object::FailReason::Shutdown);
        self.changes.fail_all(&crate::object::FailReason::Shutdown);
        self.publish();
    }

    /// Stops the node for good: its journal failed, so what is durable is unknown, and going
    /// on could acknowledge what was never saved. What the writes in flight held back is
    /// never sent.
    pub(super) fn halt(&mut self, error: StorageError) {
        tracing::error!(%error, "the journal failed: this node stops; restart it once the disk is fixed");
        self.held.clear();
        self.halted = Some(HaltReason::Journal(error));
    }

    /// The simulator's inline writer: whether handed-over work waits for
    /// [`step_writer`](Self::step_writer).
    #[cfg(feature = "sim")]
    pub(crate) fn writer_pending(&self) -> bool {
        self.writer.as_ref().is_some_and(Writer::has_pending)
    }

    /// The simulator's inline writer: the durable term, vote and last index, for the check
    /// that nothing leaves before what it depends on is durable. The latest snapshot counts
    /// too: its entries are durable, and its term was reached (recovery starts there), with
    /// no vote in it unless the journal saved one. `None` without a journal or once the
    /// writer failed.
    #[cfg(feature = "sim")]
    pub(crate) fn durable_view(&self) -> Option<(HardState, LogIndex)> {
        let (mut hard_state, mut last) = self.writer.as_ref().and_then(Writer::durable_view)?;
        if let Some(snapshot) = self.snapshots.latest_position() {
            if snapshot.term > hard_state.term {
                hard_state.term = snapshot.term;
                hard_state.vote = None;
            }
            last = last.max(snapshot.index);
        }
        Some((hard_state, last))
    }

    /// The simulator's inline writer: writes and syncs everything handed over, as one group;
    /// the next iteration takes the answer.
    #[cfg(feature = "sim")]
    pub(crate) fn step_writer(&mut self) {
        if let Some(writer) = &mut self.writer {
            writer.step();
        }
    }
}
