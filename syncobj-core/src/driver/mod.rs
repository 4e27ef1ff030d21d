//! [`SyncObj`]: a node that holds a replicated object, takes calls from any thread, and runs the
//! tick loop that drives Raft, the transport and the object.
//!
//! The shape: `assembly` builds the node (`engine::Engine`, a plain value: Raft, journal,
//! snapshots, calls, links); `ticker` hands it to whoever ticks — the auto-tick thread, or the
//! callers of [`SyncObj::do_tick`] one iteration at a time — and contains a panic in the loop;
//! `life` holds what the loop shares with other threads (the `observed` value it publishes
//! after each iteration, flags, the failure); `SyncObj` is a handle that queues calls and reads
//! those, and never locks the engine.

pub(crate) mod addresses;
mod admin;
pub(crate) mod assembly;
mod builder;
pub(crate) mod cluster_time;
pub(crate) mod engine;
mod flapping;
mod halt;
mod inflight;
pub(crate) mod life;
mod link_faults;
mod memory;
mod network;
pub(crate) mod objects;
pub(crate) mod observed;
pub(crate) mod persistence;
pub(crate) mod queue;
pub(crate) mod recovery;
mod snapshot_codec;
mod snapshot_error;
pub(crate) mod snapshots;
mod ticker;
pub(crate) mod wire;
pub(crate) mod writer;

#[cfg(test)]
mod tests;

pub use builder::{AddressRole, BadAddress, NodeBuilder};
pub use flapping::{Cut, Flapping, Schedule};
pub use halt::HaltReason;
pub use link_faults::{DELAY_MAX, Delay, FaultCounters, FaultError};
pub use memory::{DELAYED_FRAMES_MAX, MemoryNetwork, MemoryTransport};
pub use objects::{Consumer, Consumers, command_time};
pub use snapshot_error::{SnapshotError, SnapshotHook};
pub use syncobj_net::BindFailure;

use std::ops::Deref;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use crossbeam_channel::TrySendError;
use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use syncobj_net::admin::{AdminReply, AdminRequest};
use syncobj_net::handshake::Peer;
use syncobj_net::resolve::check_address;
use syncobj_net::secure::SecureError;
use syncobj_net::tcp::TcpError;
use syncobj_net::{Transport, Wake};
use thiserror::Error;

use self::addresses::is_read_only;
use self::admin::{AdminService, Answer};
use self::assembly::{Assembled, Blueprint, assemble, seed_from_address};
use self::engine::{Queued, QueuedChange};
use self::life::{Flag, Signals};
use self::objects::{ErasedObject, ObjectCell, SET_CODE_VERSION, SYSTEM_OBJECT};
use self::observed::{Observed, StatusContext};
use self::queue::QueueSender;
use self::recovery::Disks;
use self::ticker::{Clock, ManualSlot, NotTicked};
use self::wire::ChangeRequest;
use crate::conf::{ConfErrors, FRAME_OVERHEAD_BYTES, SyncObjConf};
use crate::object::{
    Call, Caller, Completion, FailReason, MembershipRefusal, MethodSpec, Replicated, Submit,
    TickHelp,
};
use crate::raft::NewNodeError;
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
    /// Where its files are, crashed with it.
    disks: Disks,
}

/// Why [`SyncObj::wait_binded`] returned without the node listening.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum BindError {
    /// Every allowed attempt failed: the address and the last attempt's error.
    #[error("gave up binding: {0}")]
    Failed(BindFailure),
    /// The node was still trying when the wait ended; `last` is why its last attempt failed,
    /// if one did.
    #[error("not bound yet{}", last.as_ref().map(|f| format!(": {f}")).unwrap_or_default())]
    Timeout {
        /// The last failed attempt's address and error.
        last: Option<BindFailure>,
    },
}

/// Why a node could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// The configuration breaks these rules (only from [`NodeBuilder`], which builds it).
    #[error(transparent)]
    Conf(#[from] ConfErrors),
    /// An address is not a `host:port` a peer can dial.
    #[error(transparent)]
    Address(#[from] BadAddress),
    /// A read-only node was given no voter to follow: its calls could never commit.
    #[error("a read-only node needs the address of at least one voter to follow")]
    NoVoters,
    /// The Raft node could not be created.
    #[error(transparent)]
    Raft(#[from] NewNodeError),
    /// Two voter addresses have the same node id (a hash of the address; see
    /// `SyncObj::add_node_to_cluster`): they cannot both be members. Vanishingly rare; change
    /// one of them (another spelling of the host, another port).
    #[error("the addresses {first:?} and {second:?} hash to the same node id; change one")]
    IdCollision {
        /// One address.
        first: String,
        /// The other.
        second: String,
    },
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
    /// The journal's writer thread could not be spawned.
    #[error("cannot spawn the journal writer thread: {0}")]
    Writer(std::io::Error),
}

/// Why [`SyncObj::do_tick`] did not run an iteration.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TickError {
    /// The node runs its own tick thread (`auto_tick`): nothing for the caller to do.
    #[error("the node ticks itself (auto_tick is on)")]
    AutoTick,
    /// The node was stopped ([`SyncObj::destroy`]).
    #[error("the node was stopped")]
    Stopped,
    /// The node's tick loop died; every call fails with this reason.
    #[error("the node's tick loop died: {0}")]
    Failed(FailReason),
}

/// The transport a node starts with, whether it is TCP (addresses are then checked), and the
/// disk it keeps its files on.
struct WireKind {
    tcp: bool,
    transport: Box<dyn Transport>,
    disks: Disks,
}

/// What a node's handles share: the way in (the queue), the way out (the signals and the
/// observed value), and, on a manually ticked node, the engine itself.
struct Shared {
    signals: Arc<Signals>,
    queue: QueueSender<Queued>,
    /// Where membership changes and leadership transfers go.
    changes: QueueSender<QueuedChange>,
    /// Whether membership changes are allowed (`dynamic_membership_change`).
    dynamic: bool,
    /// Whether addresses are TCP `host:port`s, checked before a change is queued.
    tcp: bool,
    waker: Arc<dyn Wake>,
    /// The engine of a manually ticked node; empty with `auto_tick` (the thread owns it).
    manual: ManualSlot,
    auto_tick: bool,
    clock: Clock,
    /// The highest method version this node's code knows.
    self_code_version: u32,
    /// The largest encoded call accepted: what one frame carries beside the message around it.
    command_bytes_max: usize,
    /// This value itself, for serving administrators (who need an `Arc` to make calls).
    me: OnceLock<Weak<Shared>>,
}

impl<T: Replicated> SyncObj<T> {
    /// A builder for a voter at `self_address`: partners, configuration, consumers and
    /// transport (TCP unless told otherwise), then [`start`](NodeBuilder::start) with the state.
    pub fn builder(self_address: impl Into<String>) -> NodeBuilder<T> {
        NodeBuilder::new(Some(self_address.into()))
    }

    /// A builder for a read-only node (PySyncObj's `SyncObj(None, otherNodes)`): it has no
    /// address and no vote, follows the log of the voters given as its partners, serves local
    /// reads and forwards its calls to the leader. Voters know it as `readonly:` and a random
    /// number.
    pub fn read_only_builder() -> NodeBuilder<T> {
        NodeBuilder::new(None)
    }

    /// Starts a node at `self_address` (a `host:port`) in a cluster with `partners`, holding
    /// `state`, talking TCP: PySyncObj's `SyncObj(selfNode, otherNodes, conf)`, and
    /// `SyncObj::builder(self_address).partners(partners).conf(conf).start(state)`. An entry
    /// of `partners` equal to `self_address` is ignored. The node listens on `self_address`
    /// (or `conf.bind_address`). With `conf.password`, every connection is encrypted and
    /// authenticated; without, the transport is unauthenticated and a warning says so at start.
    ///
    /// With `dynamic_membership_change`, a node whose address the cluster's membership does not
    /// name yet may be started with the members as `partners`: it is a standby, following the
    /// log with no vote, until [`add_node_to_cluster`](Self::add_node_to_cluster) makes it a
    /// voter in place.
    ///
    /// # Errors
    /// [`StartError`]: a malformed address, a transport that cannot start (the password's
    /// key, the listener), a journal or snapshots that cannot be recovered, a tick thread that
    /// cannot start.
    pub fn new(
        self_address: &str,
        partners: impl IntoIterator<Item = impl Into<String>>,
        state: T,
        conf: SyncObjConf,
    ) -> Result<SyncObj<T>, StartError> {
        SyncObj::builder(self_address)
            .partners(partners)
            .conf(conf)
            .start(state)
    }

    /// Starts a read-only node of the cluster of `partners` over TCP: see
    /// [`read_only_builder`](Self::read_only_builder).
    ///
    /// # Errors
    /// As [`new`](Self::new); [`StartError::NoVoters`] without partners.
    pub fn read_only(
        partners: impl IntoIterator<Item = impl Into<String>>,
        state: T,
        conf: SyncObjConf,
    ) -> Result<SyncObj<T>, StartError> {
        SyncObj::read_only_builder()
            .partners(partners)
            .conf(conf)
            .start(state)
    }

    /// Starts a node at `self_address` in a cluster with `partners`, holding `state`, talking
    /// through `transport`. An entry of `partners` equal to `self_address` is ignored.
    ///
    /// With `conf.auto_tick` a thread named `syncobj-tick` runs the tick loop; otherwise call
    /// [`do_tick`](Self::do_tick) in a loop.
    ///
    /// # Errors
    /// [`StartError`] if the journal or the snapshots cannot be recovered, or the tick thread
    /// cannot start.
    pub fn with_transport(
        self_address: &str,
        partners: impl IntoIterator<Item = impl Into<String>>,
        state: T,
        conf: SyncObjConf,
        transport: impl Transport,
    ) -> Result<SyncObj<T>, StartError> {
        SyncObj::builder(self_address)
            .partners(partners)
            .conf(conf)
            .transport(transport)
            .start(state)
    }

    /// Like [`with_transport`](Self::with_transport), with `consumers`: more replicated objects
    /// on the same log, each with its own command space (PySyncObj's `consumers=[...]`). Reach
    /// them with [`consumer`](Self::consumer).
    ///
    /// # Errors
    /// As [`with_transport`](Self::with_transport).
    pub fn with_consumers(
        self_address: &str,
        partners: impl IntoIterator<Item = impl Into<String>>,
        state: T,
        consumers: Consumers,
        conf: SyncObjConf,
        transport: impl Transport,
    ) -> Result<SyncObj<T>, StartError> {
        SyncObj::builder(self_address)
            .partners(partners)
            .conf(conf)
            .consumers(consumers)
            .transport(transport)
            .start(state)
    }

    /// Starts node `me` of the cluster of `partners` (and `me`, if a voter).
    fn start(
        me: Peer,
        partners: Vec<String>,
        state: T,
        consumers: Consumers,
        conf: SyncObjConf,
        wire: WireKind,
    ) -> Result<SyncObj<T>, StartError> {
        let WireKind {
            tcp,
            transport,
            disks,
        } = wire;
        let main = Arc::new(ObjectCell {
            state: RwLock::new(state),
        });
        let mut objects: Vec<Arc<dyn ErasedObject>> =
            vec![Arc::clone(&main) as Arc<dyn ErasedObject>];
        objects.extend(consumers.cells.iter().cloned());
        let name = match &me {
            Peer::Voter(address) => address.clone(),
            Peer::ReadOnly(number) => format!("{number:x}"),
            Peer::Admin => "admin".to_owned(),
        };
        let seed = conf.seed.unwrap_or_else(|| seed_from_address(&name));
        warn_of_options(&conf);
        let assembled = assemble(Blueprint {
            me,
            partners,
            objects,
            conf: &conf,
            raft: conf.raft_config(seed),
            transport,
            session: seed_from_address(&name),
            recover: &|objects, slot, identity| disks.recover(&conf, objects, slot, identity),
            inline_snapshots: false,
            inline_journal: false,
        })?;
        SyncObj::run(assembled, &conf, main, consumers, tcp, disks)
    }

    /// Hands an assembled engine to its ticker and wraps the handle around it.
    fn run(
        assembled: Assembled,
        conf: &SyncObjConf,
        main: Arc<ObjectCell<T>>,
        consumers: Consumers,
        tcp: bool,
        disks: Disks,
    ) -> Result<SyncObj<T>, StartError> {
        let Assembled {
            mut engine,
            signals,
            queue,
            changes,
            waker,
            has_committed,
        } = assembled;
        let clock = Clock::start();
        if has_committed {
            // One iteration, here and now: the committed entries of the journal are applied
            // before the node is handed out, even if no leader is ever heard of.
            ticker::iterate_guarded(&mut engine, &signals, Duration::ZERO, clock);
        }
        let self_code_version = engine.self_code_version();
        // A read-only node's frames are smaller: a call must fit in one, forwarded.
        let frame_bytes = match is_read_only(signals.observed().peers.me) {
            true => conf.read_only_frame_max() as usize,
            false => conf.frame_size_max,
        };
        let command_bytes_max = frame_bytes.saturating_sub(FRAME_OVERHEAD_BYTES);
        let (thread, manual) = match conf.auto_tick {
            true => {
                let period = conf.auto_tick_period;
                let thread = ticker::spawn(engine, Arc::clone(&signals), period, clock)
                    .map_err(StartError::Thread)?;
                (Some(thread), ManualSlot::new(None))
            }
            false => (None, ManualSlot::new(Some(engine))),
        };
        let shared = Arc::new(Shared {
            signals,
            queue,
            changes,
            dynamic: conf.dynamic_membership_change,
            tcp,
            waker,
            manual,
            auto_tick: conf.auto_tick,
            clock,
            self_code_version,
            command_bytes_max,
            me: OnceLock::new(),
        });
        let _ = shared.me.set(Arc::downgrade(&shared));
        let service = Arc::downgrade(&(Arc::clone(&shared) as Arc<dyn AdminService>));
        shared.signals.admin.install(service);
        let calls = T::Calls::from(Caller::new(Arc::clone(&shared) as Arc<dyn Submit>, 0));
        Ok(SyncObj {
            shared,
            main,
            consumers: consumers.cells,
            calls,
            tick_thread: Mutex::new(thread),
            disks,
        })
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
        let signals = Arc::clone(&self.shared.signals);
        Some(Consumer {
            cell,
            calls,
            signals,
        })
    }

    /// A handle on this node's main object, of the same kind as a consumer's: for code that
    /// works on a replicated object whichever place it has on its node, such as
    /// `syncobj::batteries::ReplLockManager`. The handle calls and reads the same object as
    /// the node does.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use syncobj_core::driver::{Consumer, MemoryNetwork, SyncObj};
    /// # use syncobj_core::object::{Caller, Call, MethodSpec, ReplicatedMethods, ReplicatedState};
    /// # #[derive(Default, Serialize, Deserialize)]
    /// # struct Nothing;
    /// # impl ReplicatedState for Nothing { const NAME: &'static str = "Nothing"; }
    /// # struct NothingCalls;
    /// # impl From<Caller> for NothingCalls { fn from(_: Caller) -> Self { NothingCalls } }
    /// # impl ReplicatedMethods for Nothing {
    /// #     const METHODS: &'static [MethodSpec] = &[];
    /// #     type Calls = NothingCalls;
    /// #     fn apply(&mut self, id: u16, _: &[u8]) -> Result<Vec<u8>, syncobj_core::object::ApplyError> {
    /// #         Err(syncobj_core::object::ApplyError::UnknownMethod(id))
    /// #     }
    /// # }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let network = MemoryNetwork::new();
    /// let node = SyncObj::builder("solo").memory(&network).start(Nothing)?;
    /// let handle: Consumer<Nothing> = node.handle();
    /// assert!(!handle.is_stopped());
    /// drop(node);
    /// assert!(handle.is_stopped(), "the handle outlives its node, and says so");
    /// # Ok(())
    /// # }
    /// ```
    pub fn handle(&self) -> Consumer<T> {
        let calls = T::Calls::from(Caller::new(Arc::clone(&self.shared) as Arc<dyn Submit>, 0));
        Consumer {
            cell: Arc::clone(&self.main),
            calls,
            signals: Arc::clone(&self.shared.signals),
        }
    }

    /// Enables code version `version` on every node, as a replicated entry: from then on calls
    /// run the highest version of each method at or below it. A node whose code lacks the
    /// version stops applying at that entry and says so in its status and logs.
    ///
    /// Each node picks the version of a call by what it has applied itself: once this call
    /// completes here, another node may still call the older version until it applies the
    /// entry too ([`code_version`](Self::code_version) tells).
    ///
    /// Fails at once with [`FailReason::VersionRefused`] if `version` is above this node's own
    /// code version or below the enabled one.
    pub fn set_code_version(&self, version: u32) -> Call<()> {
        self.shared.set_code_version(version)
    }

    /// Adds the node at `address` to the cluster as a voter (PySyncObj `addNodeToCluster`).
    /// Needs `dynamic_membership_change` on every node. Callable on any node: a follower
    /// forwards the request to the leader. The leader first adds the node as a non-voter and
    /// replicates the log to it; once the node has caught up, the leader appends the
    /// configuration that makes it a voter, and the call completes when that entry is applied
    /// here. Start the new node (with the cluster's addresses as its partners) before or
    /// after calling this; it catches up either way, and the call waits for it (up to
    /// `call_timeout`).
    ///
    /// A node started before it is added is a standby: each voter it links to observes it
    /// (unless the voter refuses read-only nodes), so it follows the log like a
    /// [read-only node](Self::read_only) (it applies what the cluster applied and serves
    /// reads), with no vote. Adding it then makes it a voter
    /// without sending it the log again: its progress as an observer carries over, so the
    /// leader promotes it as soon as the non-voter entry is appended.
    ///
    /// One change at a time: wait for this call before the next change. Costs one or two
    /// configuration entries (the membership with every member's address).
    ///
    /// ```no_run
    /// # use syncobj_core::driver::SyncObj;
    /// # fn grow<T: syncobj_core::object::Replicated>(node: &SyncObj<T>) {
    /// match node.add_node_to_cluster("10.0.0.4:4321").wait() {
    ///     Ok(()) => println!("10.0.0.4:4321 votes now"),
    ///     Err(reason) => println!("not added: {reason} (effect {:?})", reason.effect()),
    /// }
    /// # }
    /// ```
    ///
    /// # Errors (in the [`Call`])
    /// [`FailReason::MembershipRefused`] when the option is off, the leader is not ready,
    /// another change is under way, the node is a member already, or its id (a hash of the
    /// address) is another member's; [`FailReason::BadAddress`] for an address that is not a
    /// `host:port` (TCP nodes); [`FailReason::MissingLeader`], [`FailReason::NotLeader`] and
    /// [`FailReason::Removed`] as for calls (never applied); [`FailReason::PromotionAbandoned`],
    /// [`FailReason::LeaderChanged`] and [`FailReason::Timeout`] when the outcome is unknown.
    pub fn add_node_to_cluster(&self, address: &str) -> Call<()> {
        self.shared
            .change(ChangeRequest::Add(address.to_owned()), Some(address))
    }

    /// Removes the member at `address` from the cluster (PySyncObj `removeNodeFromCluster`).
    /// Needs `dynamic_membership_change`. Callable on any node, the leader included: a leader
    /// that removes itself goes on leading until the change is committed, then steps down and
    /// another node is elected. The call completes when the configuration entry is applied
    /// here. A removed node is not told otherwise: it stops taking calls
    /// ([`FailReason::Removed`]), keeps serving reads of what it applied, and its status says
    /// it is no member; the others refuse its connections. Stop it once the call completed.
    ///
    /// ```no_run
    /// # use syncobj_core::driver::SyncObj;
    /// # fn shrink<T: syncobj_core::object::Replicated>(node: &SyncObj<T>) {
    /// node.remove_node_from_cluster("10.0.0.3:4321")
    ///     .wait()
    ///     .expect("10.0.0.3:4321 left the cluster");
    /// # }
    /// ```
    ///
    /// # Errors (in the [`Call`])
    /// As [`add_node_to_cluster`](Self::add_node_to_cluster), with
    /// [`MembershipRefusal::NotMember`] for an address that is no member and
    /// [`MembershipRefusal::WouldLeaveNoVoters`] for the last voter.
    pub fn remove_node_from_cluster(&self, address: &str) -> Call<()> {
        self.shared
            .change(ChangeRequest::Remove(address.to_owned()), Some(address))
    }

    /// Hands the leadership over to the voter at `to`, or with `None` to the voter whose log
    /// is the most up to date (Raft thesis §3.10). Needs `dynamic_membership_change`.
    /// Callable on any node. The leader stops taking calls meanwhile (they fail with
    /// `NotLeader`, never applied), brings the target's log up to its own and tells it to
    /// start an election at once; the call completes once this node sees the target lead.
    ///
    /// ```no_run
    /// # use syncobj_core::driver::SyncObj;
    /// # fn hand_over<T: syncobj_core::object::Replicated>(node: &SyncObj<T>) {
    /// node.transfer_leadership(Some("10.0.0.2:4321")).wait().expect("10.0.0.2:4321 leads");
    /// assert_eq!(node.leader().as_deref(), Some("10.0.0.2:4321"));
    /// # }
    /// ```
    ///
    /// # Errors (in the [`Call`])
    /// [`FailReason::MembershipRefused`] (the option is off, the target is no voter or leads
    /// already, a transfer is under way, no other voter); [`FailReason::TransferFailed`] when
    /// the target did not take over in time or another node was elected; as for calls
    /// otherwise. Nothing is appended to the log either way.
    pub fn transfer_leadership(&self, to: Option<&str>) -> Call<()> {
        self.shared
            .change(ChangeRequest::Transfer(to.map(str::to_owned)), to)
    }

    /// Takes a snapshot of the objects at the next tick and compacts the log up to it, whatever
    /// the compaction policy (PySyncObj `forceLogCompaction`). With a snapshot store
    /// (`full_dump_file`, or beside `journal_file`) the journal is compacted once the snapshot
    /// is durable.
    pub fn force_log_compaction(&self) {
        self.shared
            .signals
            .force_compaction
            .store(true, Ordering::Release);
        self.shared.waker.wake();
    }

    /// The code version the cluster has enabled, as applied on this node.
    pub fn code_version(&self) -> u32 {
        self.shared.signals.enabled_code_version()
    }

    /// Runs one iteration of the tick loop on this thread, waiting at most `max_wait` for
    /// network input: for nodes built with `auto_tick = false`, whose owner calls it in a loop
    /// (`while node.do_tick(period).is_ok() {}` runs until the node stops).
    ///
    /// # Errors
    /// [`TickError::AutoTick`] at once on a node that ticks itself (nothing is done);
    /// [`TickError::Stopped`] once the node was stopped; [`TickError::Failed`] once its loop
    /// died.
    pub fn do_tick(&self, max_wait: Duration) -> Result<(), TickError> {
        if self.shared.auto_tick {
            return Err(TickError::AutoTick);
        }
        self.shared
            .tick(max_wait, true)
            .map_err(|_| self.shared.tick_error())
    }

    /// A read guard on this node's state. Hold it briefly: the tick loop waits for it to apply.
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        self.main.state.read()
    }

    /// The leader's address as far as this node knows; `None` on a node removed from the
    /// cluster, which no leader speaks to any more. Never waits for the tick loop.
    pub fn leader(&self) -> Option<String> {
        self.observed().leader_address()
    }

    /// Whether this node is the leader. Never waits for the tick loop.
    pub fn is_leader(&self) -> bool {
        self.observed().is_leader()
    }

    /// The current Raft term, as [`Status::raft_term`] has it.
    pub fn raft_current_term(&self) -> u64 {
        self.observed().term.0
    }

    /// The highest index this node knows committed, as [`Status::commit_index`] has it.
    pub fn raft_commit_index(&self) -> u64 {
        self.observed().commit.0
    }

    /// The highest index this node applied, as [`Status::last_applied`] has it.
    pub fn raft_last_applied(&self) -> u64 {
        self.observed().applied.0
    }

    /// What the tick loop published after its last iteration.
    fn observed(&self) -> Arc<Observed> {
        self.shared.signals.observed()
    }

    /// Whether this node has caught up with a leader at least once (PySyncObj `isReady`).
    /// Once it returns `true`, the `on_ready` callback has already run.
    pub fn is_ready(&self) -> bool {
        self.shared.signals.ready.is_raised()
    }

    /// Waits until this node [`is_ready`](Self::is_ready), for at most `timeout`; returns
    /// whether it is (`false` at once if the node stopped). On a manually ticked node the
    /// waiting thread ticks it.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = StdInstant::now() + timeout;
        let signals = &self.shared.signals;
        self.shared
            .wait_for(deadline, || signals.ready.is_raised(), &signals.ready)
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
        let signals = &self.shared.signals;
        let settled = || signals.observed().bound.is_some();
        self.shared
            .wait_for(deadline, settled, &signals.bind_settled);
        match self.observed().bound.clone() {
            Some(Ok(())) => Ok(()),
            Some(Err(failure)) => Err(BindError::Failed(failure)),
            None => Err(BindError::Timeout {
                last: self.observed().bind_retrying.clone(),
            }),
        }
    }

    /// The names of the read-only (non-voting) nodes linked to this one (`readonly:` and a
    /// number): they join over TCP, so in-process nodes have none.
    pub fn readonly_nodes(&self) -> Vec<String> {
        self.status()
            .readonly_nodes
            .into_iter()
            .map(|p| p.node)
            .collect()
    }

    /// Whether this node and the voters linked to it make a majority.
    pub fn has_quorum(&self) -> bool {
        self.observed().has_quorum()
    }

    /// The node's status report; `Display` prints it as sorted `key: value` lines. Built from
    /// what the tick loop published after its last iteration: it never waits for the loop.
    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// Logs the status report through `tracing`, one line per key, at `info` level.
    pub fn print_status(&self) {
        for (key, value) in self.status().key_values() {
            tracing::info!("{key}: {value}");
        }
    }

    /// This node's address; on a read-only node, the name the voters know it by
    /// (`readonly:` and its number).
    pub fn self_node(&self) -> String {
        let observed = self.observed();
        observed
            .peers
            .address(observed.peers.me)
            .unwrap_or_default()
    }

    /// The other voting members' addresses.
    pub fn other_nodes(&self) -> Vec<String> {
        let observed = self.observed();
        let me = observed.peers.me;
        observed
            .peers
            .voters()
            .filter(|&(id, _)| id != me)
            .map(|(_, link)| link.address.clone())
            .collect()
    }

    /// Whether the link to `address` is up.
    pub fn is_node_connected(&self, address: &str) -> bool {
        self.observed().peers.is_connected(address)
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
        let signals = &self.shared.signals;
        signals.stop();
        self.shared.waker.wake();
        // On the ticking thread (a callback) the iteration in progress stops the engine when
        // it ends.
        if !self.shared.auto_tick && !signals.on_tick_thread() {
            self.shared.manual.stop(signals);
        }
    }

    /// Crashes the node, as `kill -9` would: no orderly shutdown. The tick thread stops at its
    /// next turn; the journal writer ends without writing what it still holds or syncing, so
    /// the commit index saved last stands (a restart re-applies from there and learns the rest
    /// from the leader); the node's transport closes at once (on a [`MemoryNetwork`] its peers
    /// see their link to it go down, over TCP its connections close); every call in flight
    /// fails with [`FailReason::Shutdown`], which does not say whether it was applied. A
    /// snapshot being written is finished first.
    ///
    /// What the journal handed to the file system survives, as it does when a process is
    /// killed: with [`FsyncPolicy::Always`](crate::conf::FsyncPolicy::Always), everything
    /// acknowledged. On a simulated disk (`NodeBuilder::sim_disk`, feature `sim`), the disk
    /// crashes too: every write it did not sync is lost, as in a power cut.
    ///
    /// Restart the node by building it again on the same journal (and the same simulated disk):
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use syncobj_core::driver::{MemoryNetwork, SyncObj};
    /// # use syncobj_core::object::*;
    /// # #[derive(Default, Serialize, Deserialize)] struct Log(Vec<u8>);
    /// # impl ReplicatedState for Log { const NAME: &'static str = "Log"; }
    /// # impl ReplicatedMethods for Log {
    /// #     const METHODS: &'static [MethodSpec] = &[];
    /// #     type Calls = Caller;
    /// #     fn apply(&mut self, id: u16, _: &[u8]) -> Result<Vec<u8>, ApplyError> {
    /// #         Err(ApplyError::UnknownMethod(id))
    /// #     }
    /// # }
    /// # let dir = std::env::temp_dir().join(format!("syncobj-crash-doc-{}", std::process::id()));
    /// let network = MemoryNetwork::new();
    /// let start = || {
    ///     SyncObj::builder("a")
    ///         .partners(["b", "c"])
    ///         .journal_file(&dir)
    ///         .memory(&network)
    ///         .start(Log::default())
    /// };
    /// let node = start()?;
    /// node.crash();
    /// let node = start()?; // recovers its vote and log from the journal
    /// # drop(node);
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// # let _ = std::fs::remove_dir_all(dir.with_extension("snapshots"));
    /// # Ok::<(), syncobj_core::driver::StartError>(())
    /// ```
    ///
    /// Called on the tick thread (from a callback), it cannot wait for the thread: the loop
    /// ends when the callback returns, and a simulated disk crashes at once (writes after
    /// that fail, so nothing more is saved either way).
    pub fn crash(self) {
        let signals = &self.shared.signals;
        signals.crash();
        self.shared.waker.wake();
        if signals.on_tick_thread() {
            self.disks.crash();
            return;
        }
        if !self.shared.auto_tick {
            self.shared.manual.stop(signals);
        }
        let handle = self.tick_thread.lock().take();
        if let Some(handle) = handle {
            // A panic on the tick thread was already reported by its panic hook.
            let _ = handle.join();
        }
        self.disks.crash();
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

impl Shared {
    /// See [`SyncObj::status`].
    fn status(&self) -> Status {
        let signals = &self.signals;
        signals.observed().status(StatusContext {
            self_code_version: self.self_code_version,
            enabled_code_version: signals.enabled_code_version(),
            failure: signals.failure().map(ToString::to_string),
            dynamic_membership_change: self.dynamic,
        })
    }

    /// See [`SyncObj::set_code_version`].
    fn set_code_version(self: &Arc<Self>, version: u32) -> Call<()> {
        let caller = Caller::new(Arc::clone(self) as Arc<dyn Submit>, SYSTEM_OBJECT);

        let spec = MethodSpec {
            id: SET_CODE_VERSION,
            name: "set_code_version",
            version: 0,
            fingerprint: 0,
        };
        let (own, enabled) = (self.self_code_version, self.signals.enabled_code_version());
        if version > own || version < enabled {
            let refusal = FailReason::VersionRefused {
                requested: version,
                own,
                enabled,
            };
            return caller.refuse(refusal);
        }
        caller.call(&[spec], &(version,))
    }

    /// Queues a membership change or transfer, after the checks that need no loop.
    fn change(self: &Arc<Self>, request: ChangeRequest, address: Option<&str>) -> Call<()> {
        let submit = Arc::clone(self) as Arc<dyn Submit>;
        let refuse = |reason| Caller::new(Arc::clone(&submit), SYSTEM_OBJECT).refuse(reason);
        if !self.dynamic {
            let refusal = MembershipRefusal::DynamicMembershipOff;
            return refuse(FailReason::MembershipRefused(refusal));
        }
        if let Some(address) = address.filter(|_| self.tcp)
            && let Err(problem) = check_address(address)
        {
            let address = address.to_owned();
            return refuse(FailReason::BadAddress { address, problem });
        }
        if let Some(reason) = self.signals.refusal() {
            return refuse(reason);
        }
        let (completion, call) = Call::pending(&submit);
        enqueue(&self.changes, (request, completion), self);
        call
    }

    /// Runs one iteration of a manually ticked node on this thread: waits for another
    /// thread's iteration to end if `block`, else gives up at once.
    fn tick(&self, max_wait: Duration, block: bool) -> Result<(), NotTicked> {
        self.manual.tick(&self.signals, max_wait, self.clock, block)
    }

    /// Why this node no longer ticks.
    fn tick_error(&self) -> TickError {
        match self.signals.failure() {
            Some(reason) => TickError::Failed(reason.clone()),
            None => TickError::Stopped,
        }
    }

    /// Waits until `done` holds or `deadline` passes: on `flag` with `auto_tick`, else by
    /// ticking the node. Returns whether `done` holds; `false` once the node is gone.
    fn wait_for(&self, deadline: StdInstant, done: impl Fn() -> bool, flag: &Flag) -> bool {
        while !done() {
            let left = deadline.saturating_duration_since(StdInstant::now());
            if left.is_zero() || self.signals.is_stopped() {
                return done();
            }
            if self.auto_tick {
                flag.wait_until(deadline, || self.signals.is_stopped());
            } else if let Err(NotTicked::Gone) =
                self.tick(left.min(Duration::from_millis(10)), true)
            {
                return done();
            }
        }
        true
    }
}

impl Submit for Shared {
    fn submit(&self, command: Bytes, completion: Completion) {
        if let Some(reason) = self.signals.refusal() {
            completion.complete(Err(reason));
            return;
        }
        if command.len() > self.command_bytes_max {
            completion.complete(Err(FailReason::TooLarge {
                bytes: command.len(),
                max: self.command_bytes_max,
            }));
            return;
        }
        enqueue(&self.queue, (command, completion), self);
        if self.signals.is_stopped() {
            // The node stopped while this call was queued: its loop may have drained the queue
            // for the last time already.
            self.signals.fail_queued();
        }
    }

    fn enabled_code_version(&self) -> u32 {
        self.signals.enabled_code_version()
    }

    fn help_while_waiting(&self, max_wait: Duration) -> TickHelp {
        if self.signals.on_tick_thread() {
            return TickHelp::OnTickThread;
        }
        if self.auto_tick || self.signals.is_stopped() {
            return TickHelp::TickThreadRuns;
        }
        match self.tick(max_wait, false) {
            Ok(()) => TickHelp::Ticked,
            Err(_) => TickHelp::TickThreadRuns,
        }
    }
}

impl AdminService for Shared {
    /// Serves an administrator through the public API's paths; a command's answer waits for
    /// its call to settle (an `on_done` callback, run on the tick thread), never blocking.
    fn serve(&self, request: AdminRequest, answer: Answer) {
        let Some(me) = self.me.get().and_then(Weak::upgrade) else {
            answer(AdminReply::Failed("the node is stopping".into()));
            return;
        };
        let call = match request {
            AdminRequest::Status => {
                let reply = match rmp_serde::to_vec_named(&me.status()) {
                    Ok(bytes) => AdminReply::Status(Bytes::from(bytes)),
                    Err(error) => AdminReply::Failed(format!("cannot encode the status: {error}")),
                };
                answer(reply);
                return;
            }
            AdminRequest::Add(address) => {
                me.change(ChangeRequest::Add(address.clone()), Some(&address))
            }
            AdminRequest::Remove(address) => {
                me.change(ChangeRequest::Remove(address.clone()), Some(&address))
            }
            AdminRequest::SetVersion(version) => me.set_code_version(version),
            AdminRequest::Transfer(to) => {
                me.change(ChangeRequest::Transfer(to.clone()), to.as_deref())
            }
        };
        call.on_done(move |outcome| {
            answer(match outcome {
                Ok(()) => AdminReply::Done,
                Err(reason) => AdminReply::Failed(reason.to_string()),
            })
        });
    }
}

/// Logs the options accepted but not built yet, and those that have no effect by design.
fn warn_of_options(conf: &SyncObjConf) {
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
}

/// Hands `item` to the loop's queue and wakes the loop (once for a burst of items queued
/// before it looks); a full queue fails the item's call with `QueueFull`, a closed one (the
/// node stopped) with `Shutdown`.
fn enqueue<T>(queue: &QueueSender<(T, Completion)>, item: (T, Completion), shared: &Shared) {
    match queue.try_send(item) {
        Ok(()) => shared.signals.wake_for_queue(&*shared.waker),
        Err(TrySendError::Full((_, completion))) => completion.complete(Err(FailReason::QueueFull)),
        Err(TrySendError::Disconnected((_, completion))) => {
            completion.complete(Err(FailReason::Shutdown))
        }
    }
}
