//! The engine's side of snapshots: taking them when the policy says so (serialized off the tick
//! thread, with applying paused meanwhile), compacting once they are durable, serving them to
//! followers too far behind, installing one from the leader.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::Engine;
use crate::driver::SnapshotError;
use crate::driver::snapshot_codec::Carried;
use crate::raft::{IncomingChunk, LogPosition, SnapshotRead};

impl Engine {
    /// Answers the leader's reads of its latest snapshot, for followers too far behind.
    pub(super) fn serve_snapshot_reads(&mut self, reads: Vec<SnapshotRead>) {
        let now = self.now;
        for read in reads {
            match self.snapshots.read(read.snapshot, read.offset, read.len) {
                Some((data, done)) => {
                    let sent = self.raft.snapshot_chunk(
                        read.to,
                        read.snapshot,
                        read.offset,
                        data,
                        done,
                        now,
                    );
                    if let Err(error) = sent {
                        tracing::warn!(%error, "snapshot chunk refused");
                    }
                }
                None => self.raft.snapshot_unavailable(read.to, read.snapshot),
            }
        }
    }

    /// Takes the chunks of a snapshot from the leader and, at the last one, installs it.
    pub(super) fn receive_snapshot_chunks(&mut self, chunks: Vec<IncomingChunk>) {
        for chunk in chunks {
            let snapshot = chunk.snapshot;
            let received = self
                .snapshots
                .receive(snapshot, chunk.offset, &chunk.data, chunk.done)
                .and_then(|payload| match payload {
                    Some(payload) => self.install(snapshot, payload),
                    None => Ok(()),
                });
            if let Err(error) = received {
                tracing::warn!(%snapshot, %error, "snapshot from the leader refused");
                let _ = self.raft.snapshot_failed(snapshot);
            }
        }
    }

    pub(super) fn install(
        &mut self,
        snapshot: LogPosition,
        payload: Bytes,
    ) -> Result<(), SnapshotError> {
        let membership = self
            .raft
            .incoming_snapshot_membership(snapshot)
            .map_or_else(Bytes::new, |m| Bytes::from(m.encode()));
        let installed = self
            .snapshots
            .install((snapshot, membership), payload, &self.objects);
        // A snapshot of our own being serialized was abandoned: applying goes on.
        self.raft.pause_applying(self.snapshots.encoding());
        let carried = installed?;
        let version = carried.code_version;
        self.signals.code_version.store(version, Ordering::Release);
        self.clock.applied(carried.command_time);
        let now = self.now;
        self.raft
            .snapshot_installed(snapshot, now)
            .map_err(SnapshotError::Refused)?;
        tracing::info!(%snapshot, "installed a snapshot from the leader");
        Ok(())
    }

    /// Takes a snapshot when the compaction policy says so, and compacts once it is durable.
    /// While one is being serialized, Raft hands out nothing to apply.
    pub(super) fn compact_if_due(&mut self) {
        self.take_snapshot_if_due();
        self.raft.pause_applying(self.snapshots.encoding());
    }

    fn take_snapshot_if_due(&mut self) {
        match self.snapshots.poll_encoded() {
            Some(Ok(Some(position))) => self.compact(position),
            Some(Err(error)) => tracing::error!(%error, "cannot take a snapshot"),
            Some(Ok(None)) | None => {}
        }
        match self.snapshots.poll_serializing() {
            Some(Ok(Some(position))) => self.compact(position),
            Some(Err(error)) => tracing::error!(%error, "cannot take a snapshot"),
            Some(Ok(None)) | None => {}
        }
        if let Some(written) = self.snapshots.poll_written() {
            match written {
                Ok(position) => self.compact(position),
                Err(error) => {
                    tracing::error!(%error, "cannot write a snapshot; the log is not compacted");
                }
            }
        }
        let now = self.now;
        let applied = self.raft.applied_index();
        let base = self.raft.log_base().index;
        if self.stalled.is_some() || !self.snapshots.due(applied, base, now) {
            return;
        }
        let Some(term) = self.raft.entry(applied).map(|e| e.term) else {
            return;
        };
        let position = LogPosition {
            index: applied,
            term,
        };
        let carried = Carried {
            code_version: self.signals.code_version.load(Ordering::Acquire),
            command_time: self.clock.last_applied(),
        };
        // Stored with the snapshot: a restart finds the membership even once the log no
        // longer holds the configuration entries.
        let membership = self
            .raft
            .membership_at(applied)
            .map_or_else(Bytes::new, |m| Bytes::from(m.encode()));
        let waker = self.links.waker();
        let taken =
            self.snapshots
                .take((position, membership), carried, &self.objects, (now, waker));
        if let Err(error) = taken {
            tracing::error!(%error, "cannot take a snapshot");
        }
    }

    /// Drops the log up to a snapshot: from memory, and from the journal once it is durable.
    pub(super) fn compact(&mut self, position: LogPosition) {
        match self.raft.compact(position.index) {
            Ok(compacted) => self
                .snapshots
                .free(compacted.entries, "the compacted entries"),
            Err(error) => {
                tracing::debug!(%error, "compaction skipped");
                return;
            }
        }
        if self.snapshots.durable() {
            self.drop_journal_prefix(position.index);
        }
    }
}
