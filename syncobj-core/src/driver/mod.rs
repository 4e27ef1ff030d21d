//! [`SyncObj`]: a node that holds a replicated object, takes calls from any thread, and runs the
//! tick loop that drives Raft, the transport and the object.

mod addresses;
pub(crate) mod engine;
mod halt;
mod inflight;
mod memory;
mod network;
pub(crate) mod objects;
pub(crate) mod persistence;
pub(crate) mod recovery;
mod snapshot_codec;
mod snapshot_error;
pub(crate) mod snapshots;
mod wire;

pub use halt::HaltReason;
pub use memory::{MemoryNetwork, MemoryTransport};
pub use objects::{Consumer, Consumers};
pub use snapshot_error::{SnapshotError, SnapshotHook};

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use crossbeam_channel::{Sender, TrySendError};
use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use syncobj_net::handshake::Peer;
use syncobj_net::secure::SecureError;
use syncobj_net::tcp::TcpError;
use syncobj_net::{Incoming, Transport, Wake};
use thiserror::Error;

use self::addresses::{read_only_id, read_only_name};
use self::engine::{Addresses, Engine, EngineSettings, Queued, ReadySignal};
use self::objects::{ErasedObject, ObjectCell, SET_CODE_VERSION, SYSTEM_OBJECT};
use self::recovery::recover;
use crate::conf::{ConfError, FRAME_OVERHEAD_BYTES, SyncObjConf};
use crate::object::{
    Call, Caller, Completion, FailReason, MethodSpec, Replicated, Submit, TickHelp,
};
use crate::raft::{Instant, LogIndex, Membership, NewNodeError, NodeId, RaftNode, Term};
use crate::status::Status;
use crate::storage::StorageError;

/// A node of a cluster that replicates a `T`.
///
/// Calls made through it (it dereferences to `T`'s generated call surface, so `node.add(5)`
/// works) are appended to the Raft log, applied on every node in the same order, and complete
/// on this node with the value the method returned here. Reads go through [`read`](Self::read)
/// and see this node's state, which may lag the leader's.
pub struct SyncObj<T: Replicated> {
    shared: Arc<Shared>,
    main: Arc<ObjectCell<T>>,
    /// The consumers, as given at construction.
    consumers: Vec<Arc<dyn ErasedObject>>,
    calls: T::Calls,
    tick_thread: Mutex<Option<JoinHandle<()>>>,
}

/// Why [`SyncObj::wait_binded`] returned without the node listening.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum BindError {
    /// Every allowed attempt failed; the reason of the last one.
    #[error("cannot bind: {0}")]
    Failed(String),
    /// The node was still trying when the wait ended.
    #[error("not bound yet")]
    Timeout,
}

/// Why a node could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Conf(#[from] ConfError),
    /// The Raft node could not be created.
    #[error(transparent)]
    Raft(#[from] NewNodeError),
    /// More consumers than command headers can address.
    #[error("{0} consumers; at most 65534 fit")]
    TooManyConsumers(usize),
    /// The TCP transport could not start.
    #[error(transparent)]
    Transport(#[from] TcpError),
    /// The journal could not be opened or recovered: the message names the file, the offset
    /// and the operator's choices.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The journal's first entries were dropped, and no snapshot covers them.
    #[error(
        "the journal at {path:?} starts at entry {first_index} but no snapshot covers the entries before it: restore the snapshot directory from a backup, or wipe this node's data so that it rejoins as an empty follower"
    )]
    CompactedJournal {
        /// The journal directory.
        path: std::path::PathBuf,
        /// Its first entry.
        first_index: u64,
    },
    /// The snapshot store could not be opened or its latest snapshot loaded.
    #[error("cannot recover the latest snapshot: {0}")]
    Snapshot(#[source] SnapshotError),
    /// No key could be derived from the password.
    #[error("cannot derive the cluster key from the password: {0}")]
    Password(SecureError),
    /// The tick thread could not be spawned.
    #[error("cannot spawn the tick thread: {0}")]
    Thread(std::io::Error),
}

struct Shared {
    /// The transport and the frames it delivered, locked by the ticking thread while it polls,
    /// so that readers of the engine are never held up by a poll.
    io: Mutex<Io>,
    engine: Mutex<Engine>,
    queue: Sender<Queued>,
    waker: Arc<dyn Wake>,
    auto_tick: bool,
    tick_period: Duration,
    ticking_thread: Mutex<Option<ThreadId>>,
    code_version: Arc<AtomicU32>,
    stopped: AtomicBool,
    ready: Arc<ReadySignal>,
    bind_settled: Arc<ReadySignal>,
    started: StdInstant,
    /// The largest encoded call accepted: what one frame carries beside the message around it.
    command_bytes_max: usize,
}

impl<T: Replicated> SyncObj<T> {
    /// Starts a node at `self_address` (a `host:port`) in a cluster with `partners`, holding
    /// `state`, talking TCP: PySyncObj's `SyncObj(selfNode, otherNodes, conf)`. An entry of
    /// `partners` equal to `self_address` is ignored. The node listens on `self_address` (or
    /// `conf.bind_address`). With `conf.password`, every connection is encrypted and
    /// authenticated; without, the transport is unauthenticated and a warning says so at start.
    ///
    /// # Errors
    /// [`StartError`] if the configuration is invalid, the address cannot be bound, or the
    /// tick thread cannot start.
    pub fn new(
        self_address: &str,
        partners: impl IntoIterator<Item = impl Into<String>>,
        state: T,
        conf: SyncObjConf,
    ) -> Result<SyncObj<T>, StartError> {
        let partners = without(partners, self_address);
        let mut voters = partners.clone();
        voters.push(self_address.to_owned());
        let me = Peer::Voter(self_address.to_owned());
        let transport = network::tcp_transport(me.clone(), &voters, &conf)?;
        SyncObj::start(me, partners, state, Consumers::new(), conf, transport)
    }

    /// Starts a read-only node of the cluster of `partners` (PySyncObj's `SyncObj(None,
    /// otherNodes)`): it dials every voter, receives and applies the log, serves local reads
    /// and forwards its calls to the leader, but has no address, no vote and never leads.
    /// Voters know it as `readonly:` and a random number.
    ///
    /// # Errors
    /// [`StartError`] if the configuration is invalid or the tick thread cannot start.
    pub fn read_only(
        partners: impl IntoIterator<Item = impl Into<String>>,
        state: T,
        conf: SyncObjConf,
    ) -> Result<SyncObj<T>, StartError> {
        let partners: Vec<String> = partners.into_iter().map(Into::into).collect();
        // The top bit is set at the source, so that the number in the hello and the node's own
        // id name it alike.
        let me = Peer::ReadOnly(read_only_id(network::random_number()).0);
        let transport = network::tcp_transport(me.clone(), &partners, &conf)?;
        SyncObj::start(me, partners, state, Consumers::new(), conf, transport)
    }

    /// Starts a node at `self_address` in a cluster with `partners`, holding `state`, talking
    /// through `transport`. An entry of `partners` equal to `self_address` is ignored.
    ///
    /// With `conf.auto_tick` a thread named `syncobj-tick` runs the tick loop; otherwise call
    /// [`do_tick`](Self::do_tick) in a loop.
    ///
    /// # Errors
    /// [`StartError`] if the configuration is invalid or the tick thread cannot start.
    pub fn with_transport(
        self_address: &str,
        partners: impl IntoIterator<Item = impl Into<String>>,
        state: T,
        conf: SyncObjConf,
        transport: impl Transport,
    ) -> Result<SyncObj<T>, StartError> {
        SyncObj::with_consumers(
            self_address,
            partners,
            state,
            Consumers::new(),
            conf,
            transport,
        )
    }

    /// Like [`with_transport`](Self::with_transport), with `consumers`: more replicated objects
    /// on the same log, each with its own command space (PySyncObj's `consumers=[...]`). Reach
    /// them with [`consumer`](Self::consumer).
    ///
    /// # Errors
    /// [`StartError`] if the configuration is invalid or the tick thread cannot start.
    pub fn with_consumers(
        self_address: &str,
        partners: impl IntoIterator<Item = impl Into<String>>,
        state: T,
        consumers: Consumers,
        conf: SyncObjConf,
        transport: impl Transport,
    ) -> Result<SyncObj<T>, StartError> {
        let partners = without(partners, self_address);
        let me = Peer::Voter(self_address.to_owned());
        SyncObj::start(me, partners, state, consumers, conf, transport)
    }

    /// Starts node `me` of the cluster of `partners` (and `me`, if a voter).
    fn start(
        me: Peer,
        partners: Vec<String>,
        state: T,
        consumers: Consumers,
        conf: SyncObjConf,
        transport: impl Transport,
    ) -> Result<SyncObj<T>, StartError> {
        if consumers.len() >= usize::from(SYSTEM_OBJECT) {
            return Err(StartError::TooManyConsumers(consumers.len()));
        }
        let main = Arc::new(ObjectCell {
            state: RwLock::new(state),
        });
        let mut objects: Vec<Arc<dyn ErasedObject>> =
            vec![Arc::clone(&main) as Arc<dyn ErasedObject>];
        objects.extend(consumers.cells.iter().cloned());
        let (addresses, id, membership) = identities(&me, partners);
        let recovered = recover(&conf, &objects, compaction_slot(&addresses, id))?;
        let has_committed = recovered.has_committed();
        let name = addresses.by_id.get(&id).cloned().unwrap_or_default();
        let seed = conf.seed.unwrap_or_else(|| seed_from_address(&name));
        let raft = RaftNode::new(
            id,
            membership,
            conf.raft_config(seed),
            recovered.restored,
            Instant::ZERO,
        )?;
        let (queue, receiver) = crossbeam_channel::bounded(conf.commands_queue_size);
        let ready = Arc::new(ReadySignal::default());
        let bind_settled = Arc::new(ReadySignal::default());
        let code_version = Arc::new(AtomicU32::new(recovered.code_version.unwrap_or(0)));
        let settings = EngineSettings {
            commands_wait_leader: conf.commands_wait_leader,
            call_timeout: conf.call_timeout,
            backlog_max: conf.leaderless_calls_max,
            on_state_changed: conf.on_state_changed.clone(),
            on_ready: conf.on_ready.clone(),
            on_code_version_changed: conf.on_code_version_changed.clone(),
            ready: Arc::clone(&ready),
            code_version: Arc::clone(&code_version),
            bind_settled: Arc::clone(&bind_settled),
            session: seed_from_address(&name),
        };
        for option in conf.pending_options() {
            tracing::warn!(
                option,
                "option accepted but not implemented yet in this release"
            );
        }
        for option in conf.ignored_options() {
            tracing::info!(
                option,
                "option has no effect in syncobj (see its documentation)"
            );
        }
        let waker = transport.waker();
        let io = Io {
            transport: Box::new(transport),
            incoming: Vec::new(),
        };
        let engine = Engine::new(
            raft,
            addresses,
            objects,
            receiver,
            settings,
            recovered.persistence,
            recovered.snapshots,
        );
        let shared = Arc::new(Shared {
            io: Mutex::new(io),
            engine: Mutex::new(engine),
            queue,
            waker,
            auto_tick: conf.auto_tick,
            tick_period: conf.auto_tick_period,
            ticking_thread: Mutex::new(None),
            code_version,
            stopped: AtomicBool::new(false),
            ready,
            bind_settled,
            started: StdInstant::now(),
            command_bytes_max: conf.frame_size_max.saturating_sub(FRAME_OVERHEAD_BYTES),
        });
        let calls = T::Calls::from(Caller::new(Arc::clone(&shared) as Arc<dyn Submit>, 0));
        let node = SyncObj {
            shared,
            main,
            consumers: consumers.cells,
            calls,
            tick_thread: Mutex::new(None),
        };
        if has_committed {
            // One tick, here and now: the committed entries of the journal are applied before
            // the node is handed out, even if no leader is ever heard of.
            node.shared.tick(Duration::ZERO);
        }
        if conf.auto_tick {
            node.spawn_tick_thread()?;
        }
        Ok(node)
    }

    /// The consumer at `position` (0 is the first one given), if it holds a `C`.
    pub fn consumer<C: Replicated>(&self, position: usize) -> Option<Consumer<C>> {
        let cell = Arc::clone(self.consumers.get(position)?)
            .as_any()
            .downcast::<ObjectCell<C>>()
            .ok()?;
        let object = u16::try_from(position + 1).ok()?;
        let calls = C::Calls::from(Caller::new(
            Arc::clone(&self.shared) as Arc<dyn Submit>,
            object,
        ));
        Some(Consumer { cell, calls })
    }

    /// Enables code version `version` on every node, as a replicated entry: from then on calls
    /// run the highest version of each method at or below it. A node whose code lacks the
    /// version stops applying at that entry and says so in its status and logs.
    ///
    /// Fails at once with [`FailReason::RequestDenied`] if `version` is above this node's own
    /// code version or below the enabled one.
    pub fn set_code_version(&self, version: u32) -> Call<()> {
        let own = self.shared.engine.lock().self_code_version();
        let caller = Caller::new(Arc::clone(&self.shared) as Arc<dyn Submit>, SYSTEM_OBJECT);
        let spec = MethodSpec {
            id: SET_CODE_VERSION,
            name: "set_code_version",
            version: 0,
            fingerprint: 0,
        };
        if version > own || version < self.code_version() {
            return caller.refuse(FailReason::RequestDenied);
        }
        caller.call(&[spec], &(version,))
    }

    /// Takes a snapshot of the objects at the next tick and compacts the log up to it, whatever
    /// the compaction policy (PySyncObj `forceLogCompaction`). With a snapshot store
    /// (`full_dump_file`, or beside `journal_file`) the journal is compacted once the snapshot
    /// is durable.
    pub fn force_log_compaction(&self) {
        self.shared.engine.lock().force_compaction();
        self.shared.waker.wake();
    }

    /// The code version the cluster has enabled, as applied on this node.
    pub fn code_version(&self) -> u32 {
        self.shared.code_version.load(Ordering::Acquire)
    }

    fn spawn_tick_thread(&self) -> Result<(), StartError> {
        let shared = Arc::clone(&self.shared);
        let handle = std::thread::Builder::new()
            .name("syncobj-tick".into())
            .spawn(move || {
                while !shared.stopped.load(Ordering::Acquire) {
                    shared.tick(shared.tick_period);
                }
                shared.engine.lock().stop();
            })
            .map_err(StartError::Thread)?;
        *self.tick_thread.lock() = Some(handle);
        Ok(())
    }

    /// Runs one iteration of the tick loop, waiting at most `max_wait` for network input. For
    /// nodes built with `auto_tick = false`; with the tick thread running it only waits.
    pub fn do_tick(&self, max_wait: Duration) {
        if self.shared.auto_tick {
            std::thread::sleep(max_wait);
            return;
        }
        self.shared.tick(max_wait);
    }

    /// A read guard on this node's state. Hold it briefly: the tick loop waits for it to apply.
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        self.main.state.read()
    }

    /// The leader's address as far as this node knows.
    pub fn leader(&self) -> Option<String> {
        let engine = self.shared.engine.lock();
        engine
            .raft
            .leader()
            .and_then(|id| engine.addresses.by_id.get(&id).cloned())
    }

    /// Whether this node is the leader.
    pub fn is_leader(&self) -> bool {
        self.shared.engine.lock().raft.is_leader()
    }

    /// The current Raft term.
    pub fn raft_current_term(&self) -> Term {
        self.shared.engine.lock().raft.term()
    }

    /// The highest index this node knows committed.
    pub fn raft_commit_index(&self) -> LogIndex {
        self.shared.engine.lock().raft.commit_index()
    }

    /// The highest index this node applied.
    pub fn raft_last_applied(&self) -> LogIndex {
        self.shared.engine.lock().raft.applied_index()
    }

    /// Whether this node has caught up with a leader at least once (PySyncObj `isReady`).
    pub fn is_ready(&self) -> bool {
        self.shared.ready.is_set()
    }

    /// Waits until this node [`is_ready`](Self::is_ready), for at most `timeout`; returns
    /// whether it is. On a manually ticked node the waiting thread ticks it.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = StdInstant::now() + timeout;
        if self.shared.auto_tick {
            return self.shared.ready.wait_until(deadline);
        }
        while !self.is_ready() {
            let left = deadline.saturating_duration_since(StdInstant::now());
            if left.is_zero() {
                return false;
            }
            self.shared.tick(left.min(Duration::from_millis(10)));
        }
        true
    }

    /// Waits until the node listens on its address, for at most `timeout` (PySyncObj
    /// `waitBinded`). A node keeps trying to bind every `bind_retry_time`, up to
    /// `max_bind_retries` attempts (0: for ever). On a manually ticked node the waiting thread
    /// ticks it.
    ///
    /// # Errors
    /// [`BindError::Failed`] once the node gave up binding; [`BindError::Timeout`] if it is still
    /// trying when `timeout` passes.
    pub fn wait_binded(&self, timeout: Duration) -> Result<(), BindError> {
        let deadline = StdInstant::now() + timeout;
        loop {
            match self.shared.engine.lock().bound.clone() {
                Ok(true) => return Ok(()),
                Err(reason) => return Err(BindError::Failed(reason)),
                Ok(false) => {}
            }
            let left = deadline.saturating_duration_since(StdInstant::now());
            if left.is_zero() {
                return Err(BindError::Timeout);
            }
            if self.shared.auto_tick {
                self.shared.bind_settled.wait_until(deadline);
            } else {
                self.shared.tick(left.min(Duration::from_millis(10)));
            }
        }
    }

    /// The addresses of the read-only (non-voting) nodes connected to this one. Read-only nodes
    /// join over the network, so until the TCP transport exists this is always empty.
    pub fn readonly_nodes(&self) -> Vec<String> {
        self.status()
            .readonly_nodes
            .into_iter()
            .map(|p| p.node)
            .collect()
    }

    /// Whether this node and the voters linked to it make a majority.
    pub fn has_quorum(&self) -> bool {
        self.shared.engine.lock().has_quorum()
    }

    /// The node's status report; `Display` prints it as sorted `key: value` lines.
    pub fn status(&self) -> Status {
        self.shared.engine.lock().status()
    }

    /// Logs the status report through `tracing`, one line per key, at `info` level.
    pub fn print_status(&self) {
        for (key, value) in self.status().key_values() {
            tracing::info!("{key}: {value}");
        }
    }

    /// This node's address.
    pub fn self_node(&self) -> String {
        let engine = self.shared.engine.lock();
        engine
            .addresses
            .by_id
            .get(&engine.raft.id())
            .cloned()
            .unwrap_or_default()
    }

    /// The other voting members' addresses.
    pub fn other_nodes(&self) -> Vec<String> {
        let engine = self.shared.engine.lock();
        let me = engine.raft.id();
        engine
            .addresses
            .voters()
            .filter(|&(id, _)| id != me)
            .map(|(_, a)| a.clone())
            .collect()
    }

    /// Whether the link to `address` is up.
    pub fn is_node_connected(&self, address: &str) -> bool {
        self.shared.engine.lock().is_connected(address)
    }

    /// Whether the tick thread runs.
    pub fn tick_thread_alive(&self) -> bool {
        self.tick_thread
            .lock()
            .as_ref()
            .is_some_and(|h| !h.is_finished())
    }

    /// Stops the node: the tick thread ends at its next iteration and every call in flight
    /// fails with [`FailReason::Shutdown`]. Also done on drop.
    pub fn destroy(&self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.waker.wake();
        if !self.shared.auto_tick {
            self.shared.engine.lock().stop();
        }
    }

    /// Stops the node and waits for the tick thread to end.
    ///
    /// Called on the tick thread itself (a callback dropping the last handle), it cannot wait
    /// for itself: the thread then ends right after the callback returns.
    pub fn destroy_synchronous(&self) {
        self.destroy();
        let handle = self.tick_thread.lock().take();
        if let Some(handle) = handle
            && handle.thread().id() != std::thread::current().id()
        {
            // A panic on the tick thread was already reported by its panic hook.
            let _ = handle.join();
        }
    }
}

impl<T: Replicated> Deref for SyncObj<T> {
    type Target = T::Calls;

    fn deref(&self) -> &T::Calls {
        &self.calls
    }
}

impl<T: Replicated> Drop for SyncObj<T> {
    fn drop(&mut self) {
        self.destroy_synchronous();
    }
}

/// The transport and its receive buffer.
struct Io {
    transport: Box<dyn Transport>,
    incoming: Vec<Incoming>,
}

impl Shared {
    /// One tick: poll the transport without holding the engine, then run the engine.
    fn tick(&self, max_wait: Duration) {
        let mut io = self.io.lock();
        self.tick_with(&mut io, max_wait);
    }

    fn tick_with(&self, io: &mut Io, max_wait: Duration) {
        if self.stopped.load(Ordering::Acquire) {
            return;
        }
        *self.ticking_thread.lock() = Some(std::thread::current().id());
        let wait = self.engine.lock().poll_wait(self.now(), max_wait);
        let Io {
            transport,
            incoming,
        } = io;
        transport.poll(wait, incoming);
        let deferred = {
            let mut engine = self.engine.lock();
            engine.run(self.now(), incoming, transport.as_mut());
            engine.take_deferred()
        };
        for work in deferred {
            work.run();
        }
        *self.ticking_thread.lock() = None;
    }

    /// The node's clock: time since it started.
    fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn on_tick_thread(&self) -> bool {
        *self.ticking_thread.lock() == Some(std::thread::current().id())
    }
}

impl Submit for Shared {
    fn submit(&self, command: Bytes, completion: Completion) {
        if self.stopped.load(Ordering::Acquire) {
            completion.complete(Err(FailReason::Shutdown));
            return;
        }
        if command.len() > self.command_bytes_max {
            completion.complete(Err(FailReason::TooLarge {
                bytes: command.len(),
                max: self.command_bytes_max,
            }));
            return;
        }
        match self.queue.try_send((command, completion)) {
            Ok(()) => self.waker.wake(),
            Err(TrySendError::Full((_, completion))) => {
                completion.complete(Err(FailReason::QueueFull))
            }
            Err(TrySendError::Disconnected((_, completion))) => {
                completion.complete(Err(FailReason::Shutdown))
            }
        }
    }

    fn enabled_code_version(&self) -> u32 {
        self.code_version.load(Ordering::Acquire)
    }

    fn help_while_waiting(&self, max_wait: Duration) -> TickHelp {
        if self.on_tick_thread() {
            return TickHelp::OnTickThread;
        }
        if self.auto_tick || self.stopped.load(Ordering::Acquire) {
            return TickHelp::TickThreadRuns;
        }
        match self.io.try_lock() {
            Some(mut io) => {
                self.tick_with(&mut io, max_wait);
                TickHelp::Ticked
            }
            None => TickHelp::TickThreadRuns,
        }
    }
}

/// This node's place among the voters, for `log_compaction_split`: (its rank, their number).
fn compaction_slot(addresses: &Addresses, id: NodeId) -> (u64, u64) {
    let voters: Vec<NodeId> = addresses.voters().map(|(id, _)| id).collect();
    let rank = voters.iter().position(|&v| v == id).unwrap_or(0);
    (rank as u64, voters.len().max(1) as u64)
}

/// `partners` without `me`.
fn without(partners: impl IntoIterator<Item = impl Into<String>>, me: &str) -> Vec<String> {
    partners
        .into_iter()
        .map(Into::into)
        .filter(|p| p != me)
        .collect()
}

/// The names and Raft ids of `me` and the voters: a voter is one of them; a read-only node
/// sees itself as a non-voting member, and the voters see it as an observer.
fn identities(me: &Peer, partners: Vec<String>) -> (Addresses, NodeId, Membership) {
    let voters = match me {
        Peer::Voter(address) => partners.into_iter().chain([address.clone()]).collect(),
        Peer::ReadOnly(_) => partners,
    };
    let mut addresses = Addresses::new(voters);
    let voter_ids: Vec<NodeId> = addresses.voters().map(|(id, _)| id).collect();
    match me {
        Peer::Voter(address) => {
            let id = addresses.by_address.get(address).copied();
            let id = id.expect("the voters include this node");
            (addresses, id, Membership::new(voter_ids, []))
        }
        Peer::ReadOnly(number) => {
            let id = read_only_id(*number);
            addresses.insert_read_only(&read_only_name(id));
            (addresses, id, Membership::new(voter_ids, [id]))
        }
    }
}

/// A seed for the election-timeout generator when the configuration gives none: distinct per
/// address (FNV-1a) and per start (the clock), which is all elections need.
fn seed_from_address(address: &str) -> u64 {
    let hash = network::fnv1a(0xcbf2_9ce4_8422_2325, address.as_bytes());
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    hash ^ clock
}
