//! Snapshots of the node's objects: when to take one, where it is kept, and the bytes sent to
//! and received from other nodes.
//!
//! A snapshot's payload is MessagePack: a format number, the enabled code version, the
//! cluster-time stamp of the last command it covers, and each object's state (the main object,
//! then the consumers), each itself MessagePack of the user's type.
//!
//! Taking one never stalls the tick loop, whatever the state's size. The tick thread notes the
//! position (the applied index), the membership, the code version and the cluster time, and
//! starts a *snapshot thread* that serializes each object under its read lock (or runs the
//! user's `serialize` hook). Meanwhile the engine asks Raft to hand out no entries to apply
//! ([`RaftNode::pause_applying`](crate::raft::RaftNode::pause_applying)): replication, commits,
//! heartbeats and the journal go on, readers keep reading, and only applying lags until the
//! payload is back, so the payload is exactly the state after its index. One snapshot is
//! serialized at a time; one that is under way when the node stops or installs a leader's
//! snapshot is abandoned (the serializer gives up within 64 KiB of output, and is waited
//! for). The latest payload is kept in memory, to serve transfers from any offset; with
//! `full_dump_file` it is also written to a snapshot store, on a thread of its own, and the
//! journal's prefix is dropped only once it is durable. The deterministic simulator runs the
//! same serialization on the tick thread, at the next iteration, with applying paused in
//! between.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::{Receiver, TryRecvError};
use syncobj_net::Wake;

use super::SnapshotError;
use super::objects::{ErasedObject, panic_text};
use super::snapshot_codec::{Carried, Codec, Encoded};
use crate::conf::SyncObjConf;
use crate::raft::{Instant, LogIndex, LogPosition, Membership};
use crate::storage::{
    Disk, Identity, Snapshot, SnapshotMeta, SnapshotStore, StdDisk, StorageError,
};

/// The most bytes a snapshot received from a leader may have (a bound on memory, far above any
/// state that fits in one node's memory twice).
const RECEIVED_BYTES_MAX: usize = 16 << 30;

/// The size from which a replaced snapshot is freed on a thread of its own.
const FREE_ELSEWHERE_BYTES: usize = 1 << 20;

/// The objects' state, as a snapshot restores it.
pub(crate) struct Restore {
    pub(crate) position: LogPosition,
    /// The code version and cluster time the snapshot carries.
    pub(crate) carried: Carried,
    /// The membership in force at the snapshot's last entry, if it was stored with it.
    pub(crate) membership: Option<Membership>,
}

/// When to compact (PySyncObj `logCompactionMinEntries`, `logCompactionMinTime`,
/// `logCompactionSplit`).
#[derive(Clone, Copy, Debug)]
struct Policy {
    min_entries: u64,
    min_time: Duration,
    /// With `logCompactionSplit`: this node's slot among `slots` equal windows of `min_time`.
    slot: Option<(u64, u64)>,
}

/// A snapshot being received from the leader.
struct Receiving {
    position: LogPosition,
    bytes: Vec<u8>,
}

/// Where snapshots are made durable: a [`SnapshotStore`] on whatever disk.
pub(crate) trait Store: Send {
    /// Writes `payload` as the snapshot `meta` describes and makes it the latest, durably.
    fn write(&mut self, meta: SnapshotMeta, payload: &[u8]) -> Result<(), StorageError>;

    /// The latest durable snapshot, read back and checked.
    fn load_latest(&self) -> Result<Option<Snapshot>, StorageError>;

    /// The file of the snapshot `meta` describes, for error messages.
    fn path_of(&self, meta: &SnapshotMeta) -> PathBuf;

    /// The length of the latest durable snapshot's file, if there is one.
    fn latest_file_bytes(&self) -> Option<u64>;
}

impl<D> Store for SnapshotStore<D>
where
    D: Disk + Send + 'static,
    D::File: Send,
{
    fn write(&mut self, meta: SnapshotMeta, payload: &[u8]) -> Result<(), StorageError> {
        let mut writer = self.begin(meta)?;
        for chunk in payload.chunks(1 << 20) {
            writer.write_chunk(chunk)?;
        }
        self.commit(writer)?;
        Ok(())
    }

    fn load_latest(&self) -> Result<Option<Snapshot>, StorageError> {
        SnapshotStore::load_latest(self)
    }

    fn path_of(&self, meta: &SnapshotMeta) -> PathBuf {
        SnapshotStore::path_of(self, meta)
    }

    fn latest_file_bytes(&self) -> Option<u64> {
        SnapshotStore::latest_file_bytes(self)
    }
}

/// What serializing a snapshot gave: the payload (or the file the hooks write), why there is
/// none, or `None` when it was abandoned.
type EncodeOutcome = Option<Result<Encoded, SnapshotError>>;

/// A snapshot being serialized; the node applies nothing meanwhile.
struct Encoding {
    position: LogPosition,
    code_version: u32,
    membership: Bytes,
    job: EncodeJob,
}

/// Where a snapshot is being serialized.
enum EncodeJob {
    /// On its own thread, which sends the outcome and wakes the tick loop; raising `abandon`
    /// makes it give up soon.
    Thread {
        outcome: Receiver<EncodeOutcome>,
        abandon: Arc<AtomicBool>,
        thread: JoinHandle<()>,
    },
    /// On the tick thread at the next poll (the deterministic simulator).
    Deferred {
        carried: Carried,
        objects: Vec<Arc<dyn ErasedObject>>,
    },
}

/// Serializes `objects` with `codec`; a panic in the user's code is an error, not the end of
/// the node.
fn encode(
    codec: &Codec,
    carried: Carried,
    objects: &[Arc<dyn ErasedObject>],
    abandon: &AtomicBool,
) -> EncodeOutcome {
    let encoded = catch_unwind(AssertUnwindSafe(|| codec.encode(carried, objects, abandon)));
    if abandon.load(Ordering::Acquire) {
        return None;
    }
    Some(encoded.unwrap_or_else(|panic| Err(SnapshotError::Panicked(panic_text(panic.as_ref())))))
}

/// A store write running on its thread: the store comes back with the outcome.
type Written = (Box<dyn Store>, Result<(LogPosition, Bytes), StorageError>);

/// The node's snapshots.
pub(crate) struct Snapshots {
    policy: Policy,
    /// The durable store, when the node has one; `None` while a write holds it.
    store: Option<Box<dyn Store>>,
    durable: bool,
    latest: Option<(LogPosition, Bytes)>,
    /// The size of the latest snapshot, as [`latest_bytes`](Self::latest_bytes) reports it.
    latest_bytes: u64,
    writing: Option<Receiver<Written>>,
    receiving: Option<Receiving>,
    last_compaction: Instant,
    force: bool,
    /// Whether store writes run on a thread of their own (off in the deterministic simulator).
    background: bool,
    codec: Codec,
    /// A snapshot the user's hooks are writing: its position, code version, membership and
    /// file.
    serializing: Option<(LogPosition, u32, Bytes, PathBuf)>,
    /// The snapshot being serialized, if one is.
    encoding: Option<Encoding>,
}

impl Snapshots {
    /// The snapshots of a node configured by `conf`, the `slot`-th of `slots` nodes, kept on
    /// the real disk (`full_dump_file`, or beside the journal) if `conf` says so; the latest
    /// durable one is read back and loaded into `objects`. The snapshots record `identity`,
    /// and the latest must be of its cluster.
    pub(crate) fn open(
        conf: &SyncObjConf,
        slot: (u64, u64),
        identity: Identity,
        objects: &[Arc<dyn ErasedObject>],
    ) -> Result<(Snapshots, Option<Restore>), SnapshotError> {
        let store: Option<Box<dyn Store>> = match store_dir(conf) {
            Some(dir) => {
                let (store, warnings) = SnapshotStore::open_as(StdDisk, dir.clone(), identity)?;
                for warning in &warnings {
                    tracing::warn!(snapshots = %dir.display(), %warning, "snapshot recovery");
                }
                Some(Box::new(store))
            }
            None => None,
        };
        Snapshots::with_store(conf, slot, store, objects)
    }

    /// Like [`open`](Self::open), with `store` (any disk), or in memory only without one.
    pub(crate) fn with_store(
        conf: &SyncObjConf,
        slot: (u64, u64),
        store: Option<Box<dyn Store>>,
        objects: &[Arc<dyn ErasedObject>],
    ) -> Result<(Snapshots, Option<Restore>), SnapshotError> {
        let policy = Policy {
            min_entries: conf.log_compaction_min_entries,
            min_time: conf.log_compaction_min_time,
            slot: conf.log_compaction_split.then_some(slot),
        };
        let mut snapshots = Snapshots {
            policy,
            durable: store.is_some(),
            store: None,
            latest: None,
            latest_bytes: 0,
            writing: None,
            receiving: None,
            last_compaction: Instant::ZERO,
            force: false,
            background: true,
            codec: Codec::new(conf),
            serializing: None,
            encoding: None,
        };
        let Some(store) = store else {
            return Ok((snapshots, None));
        };
        let restore = match store.load_latest()? {
            Some(snapshot) => {
                let position = LogPosition {
                    index: snapshot.meta.last_index,
                    term: snapshot.meta.last_term,
                };
                let membership = match snapshot.meta.membership.is_empty() {
                    // Written by a build that stored no membership.
                    true => None,
                    false => Some(Membership::decode(&snapshot.meta.membership).map_err(
                        |error| SnapshotError::Membership {
                            path: store.path_of(&snapshot.meta),
                            error,
                        },
                    )?),
                };
                let carried = snapshots
                    .codec
                    .decode(&snapshot.payload, objects)?
                    .apply(objects)
                    // What it replaced is the objects' initial state.
                    .0;
                snapshots.latest = Some((position, snapshot.payload));
                Some(Restore {
                    position,
                    carried,
                    membership,
                })
            }
            None => None,
        };
        snapshots.store = Some(store);
        snapshots.measure_latest();
        Ok((snapshots, restore))
    }

    /// Asks for a snapshot at the next tick, whatever the policy (PySyncObj
    /// `forceLogCompaction`).
    pub(crate) fn force(&mut self) {
        self.force = true;
    }

    /// Whether a snapshot should be taken now, with `applied` entries applied and the log's
    /// base at `base`.
    pub(crate) fn due(&self, applied: LogIndex, base: LogIndex, now: Instant) -> bool {
        if self.writing.is_some()
            || self.serializing.is_some()
            || self.encoding.is_some()
            || applied <= base
        {
            return false;
        }
        if self.force || applied.0 - base.0 >= self.policy.min_entries {
            return true;
        }
        now - self.last_compaction >= self.policy.min_time && self.in_my_window(now)
    }

    fn in_my_window(&self, now: Instant) -> bool {
        let Some((slot, slots)) = self.policy.slot else {
            return true;
        };
        let period = self.policy.min_time.as_nanos().max(1);
        let phase = u128::from(now.as_nanos()) % period;
        phase * u128::from(slots.max(1)) / period == u128::from(slot)
    }

    /// Starts a snapshot of `objects` at `position`, the applied index: they are serialized on
    /// a snapshot thread (at the next [`poll_encoded`](Self::poll_encoded) on the tick thread
    /// in the simulator), and the node must apply nothing until
    /// [`encoding`](Self::encoding) says it is over. `waker` wakes the tick loop when it is.
    pub(crate) fn take(
        &mut self,
        (position, membership): (LogPosition, Bytes),
        carried: Carried,
        objects: &[Arc<dyn ErasedObject>],
        (now, waker): (Instant, Arc<dyn Wake>),
    ) -> Result<(), SnapshotError> {
        self.force = false;
        self.last_compaction = now;
        let objects = objects.to_vec();
        let job = if self.background {
            let abandon = Arc::new(AtomicBool::new(false));
            let (sender, outcome) = crossbeam_channel::bounded(1);
            let codec = self.codec.clone();
            let flag = Arc::clone(&abandon);
            let thread = std::thread::Builder::new()
                .name("syncobj-snapshot".into())
                .spawn(move || {
                    let _ = sender.send(encode(&codec, carried, &objects, &flag));
                    waker.wake();
                })
                .map_err(SnapshotError::Thread)?;
            EncodeJob::Thread {
                outcome,
                abandon,
                thread,
            }
        } else {
            EncodeJob::Deferred { carried, objects }
        };
        self.encoding = Some(Encoding {
            position,
            code_version: carried.code_version,
            membership,
            job,
        });
        Ok(())
    }

    /// Whether a snapshot is being serialized: the node must apply nothing meanwhile.
    pub(crate) fn encoding(&self) -> bool {
        self.encoding.is_some()
    }

    /// Once the snapshot being serialized is: `Some(Ok(Some(position)))` when it may be
    /// compacted into at once (kept in memory only), `Some(Ok(None))` when a store write or the
    /// user's hooks still hold it, `Some(Err(_))` when it failed; `None` while it is under way
    /// or when none is.
    pub(crate) fn poll_encoded(&mut self) -> Option<Result<Option<LogPosition>, SnapshotError>> {
        let encoding = self.encoding.as_mut()?;
        let outcome = match &mut encoding.job {
            EncodeJob::Thread { outcome, .. } => match outcome.try_recv() {
                Ok(outcome) => outcome,
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => Some(Err(SnapshotError::Panicked(
                    "the snapshot thread ended without an answer".to_owned(),
                ))),
            },
            EncodeJob::Deferred { carried, objects } => {
                encode(&self.codec, *carried, objects, &AtomicBool::new(false))
            }
        };
        let Encoding {
            position,
            code_version,
            membership,
            job,
        } = self.encoding.take()?;
        if let EncodeJob::Thread { thread, .. } = job {
            // It ends right after sending.
            let _ = thread.join();
        }
        match outcome? {
            Ok(Encoded::Ready(payload)) => {
                Some(self.keep(position, code_version, membership, payload))
            }
            Ok(Encoded::Started(path)) => {
                self.serializing = Some((position, code_version, membership, path));
                Some(Ok(None))
            }
            Err(error) => Some(Err(error)),
        }
    }

    /// Gives up the snapshot being serialized, if one is, and waits for its thread to end (soon
    /// with serde; a user's `serialize` hook is waited for): the objects may change again.
    fn abandon_encoding(&mut self) {
        let Some(encoding) = self.encoding.take() else {
            return;
        };
        if let EncodeJob::Thread {
            abandon, thread, ..
        } = encoding.job
        {
            abandon.store(true, Ordering::Release);
            let _ = thread.join();
        }
        tracing::info!(snapshot = %encoding.position, "a snapshot being serialized was abandoned");
    }

    /// Once the user's hooks finished a snapshot, keeps it as [`take`](Self::take) does.
    pub(crate) fn poll_serializing(
        &mut self,
    ) -> Option<Result<Option<LogPosition>, SnapshotError>> {
        let (position, code_version, membership, path) = self.serializing.as_ref()?;
        let outcome = self.codec.poll(path)?;
        let (position, code_version, membership) = (*position, *code_version, membership.clone());
        self.serializing = None;
        Some(outcome.and_then(|payload| self.keep(position, code_version, membership, payload)))
    }

    /// Keeps a complete payload: in memory, and in the store if there is one.
    fn keep(
        &mut self,
        position: LogPosition,
        code_version: u32,
        membership: Bytes,
        payload: Bytes,
    ) -> Result<Option<LogPosition>, SnapshotError> {
        let Some(mut store) = self.store.take() else {
            self.replace_latest(position, payload);
            self.measure_latest();
            return Ok(Some(position));
        };
        let meta = SnapshotMeta {
            last_index: position.index,
            last_term: position.term,
            membership,
            code_version,
        };
        if !self.background {
            let written = store.write(meta, &payload);
            self.store = Some(store);
            written?;
            self.replace_latest(position, payload);
            self.measure_latest();
            return Ok(Some(position));
        }
        let (sender, receiver) = crossbeam_channel::bounded(1);
        std::thread::Builder::new()
            .name("syncobj-snapshot".into())
            .spawn(move || {
                let mut store = store;
                let written = store.write(meta, &payload).map(|()| (position, payload));
                let _ = sender.send((store, written));
            })
            .map_err(SnapshotError::Thread)?;
        self.writing = Some(receiver);
        Ok(None)
    }

    /// The outcome of the store write, once it ended: `Some(Ok(position))` when the snapshot is
    /// durable and the log may be compacted up to it.
    pub(crate) fn poll_written(&mut self) -> Option<Result<LogPosition, StorageError>> {
        let receiver = self.writing.as_ref()?;
        let (store, written) = match receiver.try_recv() {
            Ok(done) => done,
            Err(TryRecvError::Empty) => return None,
            Err(TryRecvError::Disconnected) => {
                self.writing = None;
                tracing::error!("the snapshot writer ended without an answer");
                return None;
            }
        };
        self.writing = None;
        self.store = Some(store);
        let written = written.map(|(position, payload)| {
            self.replace_latest(position, payload);
            position
        });
        self.measure_latest();
        Some(written)
    }

    /// The bytes `offset..offset + len` of snapshot `position`, if it is the latest one; and
    /// whether they end it.
    pub(crate) fn read(
        &self,
        position: LogPosition,
        offset: u64,
        len: usize,
    ) -> Option<(Bytes, bool)> {
        let (latest, payload) = self.latest.as_ref()?;
        if *latest != position {
            return None;
        }
        let start = usize::try_from(offset).ok()?.min(payload.len());
        let end = start.saturating_add(len).min(payload.len());
        Some((payload.slice(start..end), end == payload.len()))
    }

    /// Takes a chunk from the leader. Returns the whole payload once the last chunk arrived;
    /// `Err` when the stream is broken (the transfer must start over).
    pub(crate) fn receive(
        &mut self,
        position: LogPosition,
        offset: u64,
        data: &[u8],
        done: bool,
    ) -> Result<Option<Bytes>, SnapshotError> {
        if offset == 0 {
            self.receiving = Some(Receiving {
                position,
                bytes: Vec::new(),
            });
        }
        let receiving = self
            .receiving
            .as_mut()
            .filter(|r| r.position == position && r.bytes.len() as u64 == offset)
            .ok_or(SnapshotError::OutOfOrder {
                snapshot: position,
                offset,
            })?;
        if receiving.bytes.len().saturating_add(data.len()) > RECEIVED_BYTES_MAX {
            self.receiving = None;
            return Err(SnapshotError::TooLarge {
                snapshot: position,
                max: RECEIVED_BYTES_MAX,
            });
        }
        receiving.bytes.extend_from_slice(data);
        if !done {
            return Ok(None);
        }
        let bytes = self.receiving.take().map(|r| r.bytes).unwrap_or_default();
        Ok(Some(Bytes::from(bytes)))
    }

    /// Installs a payload received from the leader: loads it into `objects` and, with a
    /// store, makes it durable first. Returns the code version and cluster time it carries.
    pub(crate) fn install(
        &mut self,
        (position, membership): (LogPosition, Bytes),
        payload: Bytes,
        objects: &[Arc<dyn ErasedObject>],
    ) -> Result<Carried, SnapshotError> {
        // The objects are about to be replaced: a snapshot of our own being taken of them goes.
        self.abandon_encoding();
        let decoded = self.codec.decode(&payload, objects)?;
        let code_version = decoded.carried.code_version;
        if self.durable {
            // A write of our own may hold the store: wait for it, the install comes first.
            self.finish_writing();
            let store = self.store.as_mut().ok_or(SnapshotError::StoreLost)?;
            let meta = SnapshotMeta {
                last_index: position.index,
                last_term: position.term,
                membership,
                code_version,
            };
            store.write(meta, &payload)?;
        }
        let (carried, replaced) = decoded.apply(objects);
        self.free(replaced, "the replaced objects' state");
        self.replace_latest(position, payload);
        self.measure_latest();
        Ok(carried)
    }

    /// Makes `payload` the latest snapshot. The one it replaces is freed on a thread of its
    /// own when large: giving a hundred megabytes back to the system takes milliseconds.
    fn replace_latest(&mut self, position: LogPosition, payload: Bytes) {
        let old = self.latest.replace((position, payload));
        if let Some((_, old)) = old
            && old.len() >= FREE_ELSEWHERE_BYTES
        {
            self.free(old, "the replaced snapshot");
        }
    }

    /// Drops `value` on a thread of its own, off the tick thread (on it in the simulator, or
    /// if no thread can be started).
    pub(crate) fn free<T: Send + 'static>(&self, value: T, what: &'static str) {
        if !self.background {
            return;
        }
        let freed = std::thread::Builder::new()
            .name("syncobj-free".into())
            .spawn(move || drop(value));
        if let Err(error) = freed {
            tracing::debug!(%error, what, "freed on the tick thread");
        }
    }

    /// Writes snapshots on the tick thread rather than on a thread of their own: for the
    /// deterministic simulator.
    pub(crate) fn write_inline(&mut self) {
        self.background = false;
    }

    /// Abandons the snapshot being serialized, if any, and waits for a store write in flight to
    /// end, so that no snapshot thread outlives the node (a new node on the same directory must
    /// never see an old writer's commit).
    pub(crate) fn finish_writing(&mut self) {
        self.abandon_encoding();
        if let Some(receiver) = self.writing.take()
            && let Ok((store, _)) = receiver.recv()
        {
            self.store = Some(store);
        }
    }

    /// The position of the latest snapshot kept, if any.
    #[cfg(feature = "sim")]
    pub(crate) fn latest_position(&self) -> Option<LogPosition> {
        self.latest.as_ref().map(|(position, _)| *position)
    }

    /// The size of the latest snapshot, in bytes: its file's when snapshots are durable, its
    /// payload's when they are kept in memory only; 0 without one.
    pub(crate) fn latest_bytes(&self) -> u64 {
        self.latest_bytes
    }

    /// Records the size of the latest snapshot. While a write holds the store, the size of the
    /// snapshot before it stands (it is still the latest durable one).
    fn measure_latest(&mut self) {
        match (&self.store, &self.latest) {
            (Some(store), _) if self.durable => {
                self.latest_bytes = store.latest_file_bytes().unwrap_or(0);
            }
            (_, Some((_, payload))) if !self.durable => self.latest_bytes = payload.len() as u64,
            _ => {}
        }
    }

    /// Whether snapshots are durable: only then may the journal's prefix be dropped.
    pub(crate) fn durable(&self) -> bool {
        self.durable
    }
}

impl Drop for Snapshots {
    fn drop(&mut self) {
        self.abandon_encoding();
    }
}

/// Where a node's snapshots are kept: `full_dump_file`, or beside the journal when only
/// `journal_file` is set (a journal compacted into a snapshot that is not durable could not be
/// recovered).
pub(crate) fn store_dir(conf: &SyncObjConf) -> Option<PathBuf> {
    conf.full_dump_file.clone().or_else(|| {
        conf.journal_file.as_deref().map(|journal| {
            let mut name = journal.as_os_str().to_owned();
            name.push(".snapshots");
            PathBuf::from(name)
        })
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn policy(split: bool, slot: (u64, u64)) -> Snapshots {
        let conf = SyncObjConf::builder()
            .log_compaction_min_entries(100)
            .log_compaction_min_time(Duration::from_secs(30))
            .log_compaction_split(split)
            .build()
            .expect("valid");
        Snapshots::with_store(&conf, slot, None, &[])
            .expect("no store, nothing to load")
            .0
    }

    fn at(seconds: u64) -> Instant {
        Instant::ZERO + Duration::from_secs(seconds)
    }

    #[test]
    fn entries_time_or_force_make_a_snapshot_due() {
        let mut snapshots = policy(false, (0, 1));
        assert!(
            !snapshots.due(LogIndex(0), LogIndex(0), at(100)),
            "nothing applied"
        );
        assert!(!snapshots.due(LogIndex(99), LogIndex(0), at(1)));
        assert!(
            snapshots.due(LogIndex(100), LogIndex(0), at(1)),
            "enough entries"
        );
        assert!(
            snapshots.due(LogIndex(5), LogIndex(0), at(30)),
            "enough time"
        );
        assert!(
            !snapshots.due(LogIndex(150), LogIndex(60), at(1)),
            "entries since the base"
        );
        snapshots.force();
        assert!(snapshots.due(LogIndex(1), LogIndex(0), at(1)), "forced");
        assert!(
            !snapshots.due(LogIndex(1), LogIndex(1), at(1)),
            "but not with nothing new"
        );
    }

    #[test]
    fn split_gives_each_voter_its_own_window() {
        // Three voters, a 30 s period: windows of 10 s each.
        let nodes: Vec<Snapshots> = (0..3).map(|slot| policy(true, (slot, 3))).collect();
        for (second, owner) in [(35, 0), (44, 1), (55, 2), (61, 0)] {
            let due: Vec<bool> = nodes
                .iter()
                .map(|n| n.due(LogIndex(5), LogIndex(0), at(second)))
                .collect();
            let expected: Vec<bool> = (0..3).map(|slot| slot == owner).collect();
            assert_eq!(due, expected, "at {second} s");
        }
    }

    #[test]
    fn received_chunks_must_arrive_in_order() {
        let mut snapshots = policy(false, (0, 1));
        let position = LogPosition {
            index: LogIndex(10),
            term: crate::raft::Term(2),
        };
        assert!(matches!(
            snapshots.receive(position, 0, b"abc", false),
            Ok(None)
        ));
        let gap = snapshots.receive(position, 5, b"x", false);
        assert!(
            matches!(gap, Err(SnapshotError::OutOfOrder { offset: 5, .. })),
            "a gap: {gap:?}"
        );
        assert!(
            matches!(snapshots.receive(position, 0, b"ab", false), Ok(None)),
            "a restart"
        );
        let last = snapshots.receive(position, 2, b"cd", true);
        assert_eq!(last.ok().flatten(), Some(Bytes::from_static(b"abcd")));
        let error = snapshots.receive(position, 4, b"e", true).map(|_| ());
        assert_eq!(
            error.map_err(|e| e.to_string()),
            Err(format!("chunk at 4 of {position} out of order"))
        );
    }
}
