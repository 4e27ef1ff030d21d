//! Snapshots and log compaction (Raft paper §7, thesis §5): what the driver is asked to do, the
//! inputs through which it answers, and the leader's side of sending a snapshot. The overview
//! of the driver's part is in the [module documentation](super).

use bytes::Bytes;

use super::error::{CompactError, ProtocolViolation, SnapshotError};
use super::membership::Membership;
use super::message::{InstallSnapshot, InstallSnapshotResponse, Message, SnapshotOutcome};
use super::node::RaftNode;
use super::progress::Mode;
use super::role::Role;
use super::transfer::{Chunk, Confirmed, SnapshotTransfer};
use super::types::{Entry, Instant, LogIndex, LogPosition, NodeId};

/// The leader asks its driver for `len` bytes of a snapshot, starting at `offset`, to send to
/// `to`. The driver answers with [`RaftNode::snapshot_chunk`] (fewer bytes if the stream ends
/// first, then with `done` set).
///
/// `snapshot` is the one the transfer started with: the driver must keep serving it until the
/// transfer ends (keeping the file open is enough), even after a newer snapshot replaced it. If
/// it cannot, it calls [`RaftNode::snapshot_unavailable`] and the transfer starts over with the
/// latest snapshot. A read the driver drops is asked again at the next heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotRead {
    /// The follower or observer the chunk is for.
    pub to: NodeId,
    /// The snapshot: the last entry it covers.
    pub snapshot: LogPosition,
    /// Where the chunk starts in the snapshot's byte stream.
    pub offset: u64,
    /// The most bytes to read ([`RaftConfig::snapshot_chunk_bytes`](super::RaftConfig)).
    pub len: usize,
}

/// A chunk of a snapshot received from the leader, handed to the driver in stream order.
///
/// A chunk at offset 0 starts a new snapshot: the driver discards any partial one and begins
/// writing. Each later chunk continues the stream. After the chunk with `done` set, the driver
/// checks the snapshot, makes it durable, loads it into the state machine, and calls
/// [`RaftNode::snapshot_installed`]; or, if any of that fails, [`RaftNode::snapshot_failed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncomingChunk {
    /// The leader that sent it.
    pub from: NodeId,
    /// The snapshot: the last entry it covers.
    pub snapshot: LogPosition,
    /// Where `data` starts in the snapshot's byte stream.
    pub offset: u64,
    /// The bytes.
    pub data: Bytes,
    /// Whether the stream ends with this chunk.
    pub done: bool,
}

/// The log was reset to a snapshot the driver installed: what the journal must do, before it
/// writes anything else of the same [`Ready`](super::Ready).
///
/// The journal drops every entry up to `snapshot.index`; unless `suffix_kept`, it drops every
/// entry after it too. Either way the next entry it is given is `snapshot.index + 1` or later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogReset {
    /// The snapshot installed.
    pub snapshot: LogPosition,
    /// Whether the log held an entry matching the snapshot's last one, and kept the entries after
    /// it (Raft paper §7).
    pub suffix_kept: bool,
}

impl LogReset {
    /// Two resets in one Ready: the later snapshot, keeping the suffix only if both did.
    pub(crate) fn then(self, later: LogReset) -> LogReset {
        LogReset {
            snapshot: later.snapshot,
            suffix_kept: self.suffix_kept && later.suffix_kept,
        }
    }
}

/// Counters of snapshot work, for the status report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotCounters {
    /// Log compactions.
    pub compactions: u64,
    /// Snapshot transfers this node started as leader.
    pub transfers_started: u64,
    /// Snapshot chunks this node sent as leader, re-sends included.
    pub chunks_sent: u64,
    /// Snapshots this node installed from a leader.
    pub installed: u64,
    /// Snapshot chunks refused because the snapshot was not past the commit index.
    pub stale_refused: u64,
}

/// What [`RaftNode::compact`] dropped and what the snapshot must keep.
#[derive(Debug)]
pub struct Compacted {
    /// The membership in force at the snapshot's last entry.
    pub membership: Membership,
    /// The entries dropped from the log, in order.
    pub entries: Vec<Entry>,
}

impl RaftNode {
    /// Drops the log up to `up_to` from memory, once the driver has durably snapshotted the
    /// state at that applied index (Raft paper §7). The log then starts after (`up_to`, its
    /// term). The driver drops the journal prefix itself. Costs the entries dropped.
    ///
    /// Returns the membership in force at `up_to` (thesis §5.1: a snapshot holds the latest
    /// configuration it covers): the driver keeps it with the snapshot and hands it back in
    /// [`Restored::membership`](super::Restored::membership) on restart. It is also
    /// [`membership_at`](Self::membership_at)`(up_to)` before compacting, for a driver that
    /// writes the snapshot's metadata first. And the entries dropped, for the driver to free
    /// where it costs nothing: a hundred thousand entries take milliseconds to free.
    ///
    /// Snapshot transfers that have not started are switched to the new snapshot; those under
    /// way go on with theirs.
    ///
    /// # Errors
    /// [`CompactError::BeyondApplied`] if `up_to` is not applied yet;
    /// [`CompactError::AlreadyCompacted`] if the log already starts after `up_to`.
    pub fn compact(&mut self, up_to: LogIndex) -> Result<Compacted, CompactError> {
        let applied = self.log.applied();
        if up_to > applied {
            return Err(CompactError::BeyondApplied { up_to, applied });
        }
        let base = self.log.base_index();
        if up_to <= base {
            return Err(CompactError::AlreadyCompacted { up_to, base });
        }
        let entries = self.log.compact(up_to);
        self.configs.compacted_to(up_to);
        self.snapshot_counters.compactions += 1;
        let latest = self.log.base();
        let membership = self.membership_at(up_to).expect("the base").clone();
        if let Role::Leader { progress, .. } = &mut self.role {
            for p in progress.values_mut() {
                if p.transfer_mut().is_some_and(|t| t.is_unstarted()) {
                    p.start_snapshot(latest, membership.clone());
                }
            }
        }
        Ok(Compacted {
            membership,
            entries,
        })
    }

    /// The driver's answer to a [`SnapshotRead`]: the bytes of `snapshot` for `to` from
    /// `offset`, `done` if the stream ends with them. They go out as an [`InstallSnapshot`] with
    /// the next [`ready`](Self::ready). An answer the node no longer wants (the transfer moved
    /// on, or this node stopped leading) is dropped.
    ///
    /// # Errors
    /// [`SnapshotError::ChunkTooLarge`] beyond `snapshot_chunk_bytes`;
    /// [`SnapshotError::EmptyChunk`] for no bytes without `done`.
    pub fn snapshot_chunk(
        &mut self,
        to: NodeId,
        snapshot: LogPosition,
        offset: u64,
        data: Bytes,
        done: bool,
        _now: Instant,
    ) -> Result<(), SnapshotError> {
        let max = self.config.snapshot_chunk_bytes;
        if data.len() > max {
            return Err(SnapshotError::ChunkTooLarge {
                bytes: data.len(),
                max,
            });
        }
        if data.is_empty() && !done {
            return Err(SnapshotError::EmptyChunk { offset });
        }
        let Some(transfer) = self.transfer_to(to, snapshot) else {
            return Ok(());
        };
        let membership = transfer.membership.clone();
        if let Some(chunk) = transfer.chunk_read(offset, data, done) {
            self.send_chunk(to, snapshot, membership, chunk);
        }
        Ok(())
    }

    /// The driver cannot read `snapshot` for `to` any more (it was replaced, or reading failed):
    /// the transfer starts over with the latest snapshot, at once if that is another one, else
    /// at the next heartbeat. Unknown transfers are ignored.
    pub fn snapshot_unavailable(&mut self, to: NodeId, snapshot: LogPosition) {
        let latest = self.log.base();
        let membership = self.configs.at(latest.index).clone();
        let Some(transfer) = self.transfer_to(to, snapshot) else {
            return;
        };
        *transfer = SnapshotTransfer::new(latest, membership);
        if snapshot == latest {
            transfer.wait_for_heartbeat();
        }
    }

    /// The last entry the latest snapshot covers (zero before any): the log holds the entries
    /// after it.
    pub fn log_base(&self) -> LogPosition {
        self.log.base()
    }

    /// Counters of snapshot work.
    pub fn snapshot_counters(&self) -> SnapshotCounters {
        self.snapshot_counters
    }

    /// Whether the driver has chunks to read for some transfer.
    pub(crate) fn has_snapshot_reads(&self) -> bool {
        let Role::Leader { progress, .. } = &self.role else {
            return false;
        };
        progress
            .values()
            .any(|p| matches!(&p.mode, Mode::Snapshot(t) if t.needs_read()))
    }

    /// The reads to ask of the driver now, one per transfer at most.
    pub(crate) fn take_snapshot_reads(&mut self) -> Vec<SnapshotRead> {
        let len = self.config.snapshot_chunk_bytes;
        let Role::Leader { progress, .. } = &mut self.role else {
            return Vec::new();
        };
        progress
            .iter_mut()
            .filter_map(|(&to, p)| {
                let transfer = p.transfer_mut()?;
                let offset = transfer.take_read()?;
                Some(SnapshotRead {
                    to,
                    snapshot: transfer.snapshot,
                    offset,
                    len,
                })
            })
            .collect()
    }

    /// Whether `peer` is sent a snapshot rather than entries; starts the transfer if its next
    /// entry was compacted away (the leader never sends an append whose previous entry lies
    /// below its base).
    pub(crate) fn sends_snapshot_to(&mut self, peer: NodeId) -> bool {
        let base = self.log.base();
        let membership = self.configs.at(base.index);
        let Role::Leader { progress, .. } = &mut self.role else {
            return false;
        };
        let Some(p) = progress.get_mut(&peer) else {
            return false;
        };
        if matches!(p.mode, Mode::Snapshot(_)) {
            return true;
        }
        if p.next_index > base.index {
            return false;
        }
        p.start_snapshot(base, membership.clone());
        self.snapshot_counters.transfers_started += 1;
        tracing::debug!(node = %self.id, %peer, snapshot = %base, "sending a snapshot");
        true
    }

    /// At a heartbeat: sends `peer` what keeps its transfer moving (see
    /// [`SnapshotTransfer::on_heartbeat`]).
    pub(crate) fn snapshot_heartbeat(&mut self, peer: NodeId) {
        let Role::Leader { progress, .. } = &mut self.role else {
            return;
        };
        let Some(transfer) = progress.get_mut(&peer).and_then(|p| p.transfer_mut()) else {
            return;
        };
        let (snapshot, membership) = (transfer.snapshot, transfer.membership.clone());
        let chunk = transfer.on_heartbeat();
        self.send_chunk(peer, snapshot, membership, chunk);
    }

    pub(crate) fn on_install_snapshot_response(
        &mut self,
        from: NodeId,
        response: &InstallSnapshotResponse,
        now: Instant,
    ) -> Result<(), ProtocolViolation> {
        let last = self.log.last_index();
        let Role::Leader { progress, .. } = &mut self.role else {
            return Ok(());
        };
        let Some(p) = progress.get_mut(&from) else {
            return Ok(());
        };
        p.last_heard = now;
        let snapshot = response.snapshot();
        match response.outcome {
            SnapshotOutcome::Installed => {
                if snapshot.index > last {
                    return Err(ProtocolViolation::AckBeyondLog {
                        claimed: snapshot.index,
                        last,
                    });
                }
                if p.snapshot_installed(snapshot.index) {
                    self.maybe_commit();
                    self.maybe_promote(now);
                    self.maybe_tell_target();
                }
            }
            SnapshotOutcome::Stale { committed } => p.snapshot_stale(committed, last),
            SnapshotOutcome::Continue { next_offset } => {
                let Some(transfer) = p.transfer_mut().filter(|t| t.snapshot == snapshot) else {
                    return Ok(());
                };
                if let Confirmed::BeyondSent { claimed, sent } = transfer.on_continue(next_offset) {
                    return Err(ProtocolViolation::SnapshotOffsetBeyondSent {
                        snapshot,
                        claimed,
                        sent,
                    });
                }
            }
        }
        Ok(())
    }

    /// The transfer of `snapshot` to `to`, if this node leads and one is under way.
    fn transfer_to(&mut self, to: NodeId, snapshot: LogPosition) -> Option<&mut SnapshotTransfer> {
        let Role::Leader { progress, .. } = &mut self.role else {
            return None;
        };
        progress
            .get_mut(&to)?
            .transfer_mut()
            .filter(|t| t.snapshot == snapshot)
    }

    fn send_chunk(
        &mut self,
        to: NodeId,
        snapshot: LogPosition,
        membership: Membership,
        chunk: Chunk,
    ) {
        self.snapshot_counters.chunks_sent += 1;
        let message = InstallSnapshot {
            term: self.term,
            last_index: snapshot.index,
            last_term: snapshot.term,
            offset: chunk.offset,
            data: chunk.data,
            done: chunk.done,
            membership,
        };
        self.send(to, Message::InstallSnapshot(message));
    }
}
