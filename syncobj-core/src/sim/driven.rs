//! Driver-level runs: whole nodes — the `SyncObj` engine with its command queue, call
//! forwarding, completions and a replicated object — on the simulated network and clock.
//!
//! Each seed makes replicated calls from every node while the network partitions, loses,
//! duplicates and delays frames and nodes crash; then it heals and checks that every node holds
//! the same state and that every successful call returned what a sequential replay of the
//! committed log gives — so an acknowledged call lost in a crash is caught.
//!
//! The replicated object and what the clients do with it are a [`Workload`]: the built-in one
//! ([`run_driver_seed`]) is a running total whose every result is checked against a replay;
//! [`run_driver_workload`] runs another (a lock table whose clients must never both hold one
//! lock, say) through the same faults.
//!
//! Every node reads its own skewed clock ([`clocks`](super::clocks)), and the run checks the
//! cluster time stamped on the committed commands against the virtual times their leaders
//! proposed them at.
//!
//! Every node keeps its journal on its own simulated disk ([`SimDisk`]): a crash drops the
//! engine and its object, and loses every write the journal had not synced (the last one
//! possibly torn); the node restarts later from what recovery finds, re-applying its committed
//! entries to a fresh object.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::RwLock;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use syncobj_net::handshake::Peer;
use syncobj_net::{PeerId, Transport, TransportEvent, Wake};

use super::checker::{Checker, Violation, durable_allows};
use super::clocks::{NodeClock, check_stamps};
use super::net::{NetConfig, Routed, SimNet};
use super::run::{SeedFailure, SimConfig};
use crate::conf::{FsyncPolicy, SyncObjConf};
use crate::driver::addresses::{Addresses, voter_id};
use crate::driver::assembly::{Blueprint, assemble, without};
use crate::driver::engine::{Engine, Queued, QueuedChange};
use crate::driver::objects::{ErasedObject, ObjectCell};
use crate::driver::queue::QueueSender;
use crate::driver::recovery::{DiskLayout, recover_on_disk};
use crate::driver::wire::{ChangeRequest, NodeMessage};
use crate::object::{
    ApplyError, Call, Caller, Completion, Effect, FailReason, MethodSpec, Replicated,
    ReplicatedMethods, ReplicatedState, Submit, TickHelp,
};
use crate::raft::{Instant, NodeId, RaftConfig};
use crate::storage::SimDisk;

/// What one driver-level seed did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverRunReport {
    /// The seed.
    pub seed: u64,
    /// Events processed.
    pub steps: u64,
    /// Calls that returned a result, each checked against the sequential replay.
    pub calls_succeeded: u64,
    /// Calls that failed with a reason (lost leader, time-out...).
    pub calls_failed: u64,
    /// Entries committed.
    pub committed: u64,
    /// Node crashes (each losing what its disk had not synced) and restarts from the journal.
    pub crashes: u64,
    /// Disks that failed under a running node, which then halted until restarted.
    pub disk_faults: u64,
    /// Snapshots the running nodes took (compactions) and installed from a leader.
    pub compactions: u64,
    /// Snapshots installed from a leader by the running nodes.
    pub snapshots_installed: u64,
    /// Committed commands whose cluster-time stamp was checked against the virtual time its
    /// leader proposed it at.
    pub stamps_checked: u64,
    /// The faults injected, by kind.
    pub faults: DriverFaults,
    /// The virtual time the run lasted, healing and checks included.
    pub simulated: Duration,
}

/// How many faults of each kind a driver-level run injected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverFaults {
    /// Symmetric partitions: the nodes split in two groups that cannot talk.
    pub partitions: u64,
    /// One-way cuts: a node's messages to the others are lost, or theirs to it, not both.
    pub one_way: u64,
    /// Flapping partitions: a split that comes and goes every few hundred milliseconds.
    pub flapping: u64,
    /// Heals of every partition and cut.
    pub heals: u64,
    /// Networks made lossy, duplicating, delaying or reordering.
    pub lossy_networks: u64,
    /// Leadership transfers asked of a random node (through the engine's own path).
    pub transfers: u64,
    /// Transfers whose call succeeded (the target took over).
    pub transfers_succeeded: u64,
}

impl DriverFaults {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &DriverFaults) {
        self.partitions += other.partitions;
        self.one_way += other.one_way;
        self.flapping += other.flapping;
        self.heals += other.heals;
        self.lossy_networks += other.lossy_networks;
        self.transfers += other.transfers;
        self.transfers_succeeded += other.transfers_succeeded;
    }
}

/// What a driver-level run replicates, and what its clients do: the calls made at the run's
/// random call times on a random running node, a call after healing that must succeed, and
/// the checks once the cluster is quiet. Calls complete through callbacks (`Call::on_done`),
/// run by the node that made them while the simulation runs it; [`SimClock`] tells them the
/// virtual time.
pub trait Workload {
    /// The replicated object: each node's main object.
    type Object: Replicated;

    /// A fresh object, for a node that starts or restarts (before it replays its journal).
    fn object(&self) -> Self::Object;

    /// Called at each of the run's call times, with a running node: make calls on it (or not).
    fn call(&mut self, node: SimNode<'_, Self::Object>);

    /// After healing, for each node in turn: make one call on it, and hand `done` whether it
    /// succeeded when it completes. The run calls again until one succeeds, within the
    /// liveness timeout.
    fn probe(&mut self, node: SimNode<'_, Self::Object>, done: Box<dyn FnOnce(bool) + Send>);

    /// Node `node` (its index) crashed or was stopped at `now`: its process and every client
    /// in it are gone, and calls in flight there fail.
    fn crashed(&mut self, node: usize, now: Duration) {
        let _ = (node, now);
    }

    /// The checks once the cluster healed and settled, at `now`, given every running node's
    /// object in node order (they hold the same state by then); returns how many calls
    /// succeeded and how many failed.
    ///
    /// # Errors
    /// What went wrong, in words: the run fails with it.
    fn check(&mut self, objects: &[&Self::Object], now: Duration) -> Result<(u64, u64), String>;
}

/// One running node, as a [`Workload`] sees it.
pub struct SimNode<'a, O: Replicated> {
    /// Its index among the cluster's nodes (in address order), from 0.
    pub index: usize,
    /// Its call surface.
    pub calls: &'a O::Calls,
    /// The run's virtual clock.
    pub clock: &'a SimClock,
}

/// The virtual time of a driver-level run, which callbacks can read while the run goes on.
#[derive(Clone, Debug, Default)]
pub struct SimClock {
    nanos: Arc<AtomicU64>,
}

impl SimClock {
    /// The virtual time since the run started.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }

    fn set(&self, now: Instant) {
        self.nanos.store(now.as_nanos(), Ordering::Relaxed);
    }
}

/// Runs one driver-level seed, with the built-in running total.
///
/// # Errors
/// The [`SeedFailure`] naming the first violation.
pub fn run_driver_seed(seed: u64, config: &SimConfig) -> Result<DriverRunReport, SeedFailure> {
    run_driver_workload(seed, config, Tally::default())
}

/// Runs one driver-level seed with `workload`: the same faults, healing and liveness check as
/// [`run_driver_seed`], then the workload's own checks.
///
/// # Errors
/// The [`SeedFailure`] naming the first violation.
pub fn run_driver_workload<W: Workload>(
    seed: u64,
    config: &SimConfig,
    workload: W,
) -> Result<DriverRunReport, SeedFailure> {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        DriverSim::new(seed, config, workload)?.run()
    }));
    let result = outcome.unwrap_or_else(|_| {
        Err(Violation {
            at: Instant::ZERO,
            what: "panic in a driver-level run".into(),
        })
    });
    result.map_err(|violation| SeedFailure {
        seed,
        nodes: config.nodes,
        violation,
        replay_flags: " --level driver",
    })
}

/// The replicated object of the run: a running total; `add(n)` returns the total after it.
/// It also keeps every argument in the order applied, and each one's cluster time, so that the
/// run can check every node's sequence — and every call's result — even after the log was
/// compacted into snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Total {
    value: i64,
    history: Vec<i64>,
    stamps: Vec<u64>,
}

const ADD: MethodSpec = MethodSpec {
    id: 0,
    name: "add",
    version: 0,
    fingerprint: 0x5EED,
};

impl ReplicatedState for Total {
    const NAME: &'static str = "Total";
}

impl ReplicatedMethods for Total {
    const METHODS: &'static [MethodSpec] = &[ADD];
    type Calls = TotalCalls;

    fn apply(&mut self, id: u16, args: &[u8]) -> Result<Vec<u8>, ApplyError> {
        if id != ADD.id {
            return Err(ApplyError::UnknownMethod(id));
        }
        let (n,): (i64,) = rmp_serde::from_slice(args).map_err(|e| ApplyError::BadArguments {
            method: "add",
            reason: e.to_string(),
        })?;
        self.value += n;
        self.history.push(n);
        let stamp = crate::driver::command_time().map(|t| t.as_nanos());
        // Without one (never), a stamp no clock reaches, which the check reports.
        let stamp = stamp.map_or(u64::MAX, |t| u64::try_from(t).unwrap_or(u64::MAX));
        self.stamps.push(stamp);
        rmp_serde::to_vec(&self.value).map_err(|e| ApplyError::BadResult {
            method: "add",
            reason: e.to_string(),
        })
    }
}

struct TotalCalls {
    caller: Caller,
}

impl From<Caller> for TotalCalls {
    fn from(caller: Caller) -> Self {
        TotalCalls { caller }
    }
}

impl TotalCalls {
    fn add(&self, n: i64) -> Call<i64> {
        self.caller.call(&[ADD], &(n,))
    }
}

/// The built-in workload: calls `add` with a fresh argument each time, and checks that every
/// node applied the same sequence and that every successful call returned what a sequential
/// replay of it gives.
#[derive(Default)]
struct Tally {
    outcomes: Outcomes,
    next_argument: i64,
}

impl Workload for Tally {
    type Object = Total;

    fn object(&self) -> Total {
        Total::default()
    }

    fn call(&mut self, node: SimNode<'_, Total>) {
        self.next_argument += 1;
        let argument = self.next_argument;
        let outcomes = Arc::clone(&self.outcomes);
        node.calls.add(argument).on_done(move |outcome| {
            outcomes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(argument, outcome);
        });
    }

    fn probe(&mut self, node: SimNode<'_, Total>, done: Box<dyn FnOnce(bool) + Send>) {
        self.next_argument += 1;
        let argument = self.next_argument;
        let outcomes = Arc::clone(&self.outcomes);
        node.calls.add(argument).on_done(move |outcome| {
            let ok = outcome.is_ok();
            outcomes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(argument, outcome);
            done(ok);
        });
    }

    fn check(&mut self, objects: &[&Total], _now: Duration) -> Result<(u64, u64), String> {
        check_totals(
            objects,
            &self.outcomes.lock().unwrap_or_else(PoisonError::into_inner),
        )
    }
}

/// Every node applied the same sequence of calls, no call twice, and every successful call
/// returned what a sequential replay of that sequence gives for it.
fn check_totals(
    objects: &[&Total],
    outcomes: &BTreeMap<i64, Result<i64, FailReason>>,
) -> Result<(u64, u64), String> {
    if objects
        .windows(2)
        .any(|w| (&w[0].history, &w[0].stamps) != (&w[1].history, &w[1].stamps))
    {
        let lengths: Vec<usize> = objects.iter().map(|t| t.history.len()).collect();
        return Err(format!(
            "nodes applied different sequences or stamps once quiet (lengths {lengths:?})"
        ));
    }
    let history = objects.first().map_or(&[][..], |t| t.history.as_slice());
    let mut replay = BTreeMap::new();
    let mut total = 0i64;
    for &n in history {
        total += n;
        if replay.insert(n, total).is_some() {
            return Err(format!("add({n}) was applied twice"));
        }
    }
    let value = objects.first().map(|t| t.value);
    if value.is_some_and(|v| v != total) {
        return Err(format!(
            "the replayed total {total} differs from the nodes' state {value:?}"
        ));
    }
    for (argument, outcome) in outcomes {
        match outcome {
            Ok(result) if replay.get(argument) != Some(result) => {
                return Err(format!(
                    "add({argument}) returned {result} but the applied sequence gives {:?}",
                    replay.get(argument)
                ));
            }
            Err(reason) if reason.effect() == Effect::None && replay.contains_key(argument) => {
                return Err(format!(
                    "add({argument}) failed with {reason:?}, a reason that promises it was never applied, but it was"
                ));
            }
            _ => {}
        }
    }
    let succeeded = outcomes.values().filter(|o| o.is_ok()).count() as u64;
    Ok((succeeded, outcomes.len() as u64 - succeeded))
}

/// Queues calls for a simulated node; the simulation runs the node right after.
struct SimSubmit {
    queue: QueueSender<Queued>,
}

impl Submit for SimSubmit {
    fn submit(&self, command: Bytes, completion: Completion) {
        if let Err(error) = self.queue.try_send((command, completion)) {
            let (_, completion) = error.into_inner();
            completion.complete(Err(FailReason::QueueFull));
        }
    }

    fn enabled_code_version(&self) -> u32 {
        0
    }

    fn help_while_waiting(&self, _max_wait: Duration) -> TickHelp {
        TickHelp::TickThreadRuns
    }
}

/// A frame between two simulated nodes.
#[derive(Clone, Debug)]
struct Frame {
    from: NodeId,
    to: NodeId,
    bytes: Bytes,
}

impl Routed for Frame {
    fn from(&self) -> NodeId {
        self.from
    }

    fn to(&self) -> NodeId {
        self.to
    }
}

/// What a simulated node's transport holds between iterations: the frame the simulation
/// delivers, and what the engine sent.
#[derive(Default)]
struct SimWire {
    inbox: Vec<TransportEvent>,
    outbox: Vec<(NodeId, Bytes)>,
}

/// A simulated node's transport: the simulation puts a frame in before an iteration and takes
/// what was sent out after it. A node's peer number is its rank among the cluster's addresses
/// ([`sim_peer`]), the same on every node; every link is up from the start (the
/// simulated network decides what arrives), goes down when the peer's process dies and up
/// again when it restarts ([`DriverSim::tell_links`]), and the node counts as bound.
struct SimTransport {
    wire: Arc<parking_lot::Mutex<SimWire>>,
    /// The cluster's Raft ids by address.
    ids: BTreeMap<String, NodeId>,
}

/// The peer number of node `id` among `ids` (by address, as every node orders them).
fn sim_peer(ids: &BTreeMap<String, NodeId>, id: NodeId) -> PeerId {
    let rank = ids.values().position(|&n| n == id);
    PeerId(rank.map_or(u32::MAX, |r| u32::try_from(r).unwrap_or(u32::MAX)))
}

struct NoWake;

impl Wake for NoWake {
    fn wake(&self) {}
}

impl Transport for SimTransport {
    fn add_peer(&mut self, address: &str) -> PeerId {
        let rank = self.ids.keys().position(|a| a == address);
        let peer = PeerId(rank.map_or(u32::MAX, |r| u32::try_from(r).unwrap_or(u32::MAX)));
        self.wire.lock().inbox.push(TransportEvent::LinkUp(peer));
        peer
    }

    fn send(&mut self, to: PeerId, frame: Bytes) -> bool {
        let Some(&node) = self.ids.values().nth(to.index()) else {
            return false;
        };
        self.wire.lock().outbox.push((node, frame));
        true
    }

    fn poll(&mut self, _timeout: Duration, events: &mut Vec<TransportEvent>) {
        events.append(&mut self.wire.lock().inbox);
    }

    fn waker(&self) -> Arc<dyn Wake> {
        Arc::new(NoWake)
    }
}

struct SimDriverNode<O: Replicated> {
    engine: Engine,
    /// The node's own clock, for this incarnation.
    clock: NodeClock,
    state: Arc<ObjectCell<O>>,
    calls: O::Calls,
    /// Where the node's calls go, for the run's own calls (leadership transfers).
    submit: Arc<dyn Submit>,
    /// Where membership changes and leadership transfers are queued for the engine.
    changes: QueueSender<QueuedChange>,
    wire: Arc<parking_lot::Mutex<SimWire>>,
    /// When the journal writer runs next (virtual time), while writes wait for it.
    write_due: Option<Instant>,
}

/// Where each simulated node keeps its journal on its own disk.
const JOURNAL_DIR: &str = "/node/journal";

/// Where each simulated node keeps its snapshots on its own disk.
const SNAPSHOT_DIR: &str = "/node/snapshots";

/// The outcome of each call, by its argument (unique per call).
type Outcomes = Arc<Mutex<BTreeMap<i64, Result<i64, FailReason>>>>;

struct DriverSim<W: Workload> {
    seed: u64,
    workload: W,
    clock: SimClock,
    fault_duration: Duration,
    liveness_timeout: Duration,
    now: Instant,
    rng: ChaCha8Rng,
    nodes: BTreeMap<NodeId, SimDriverNode<W::Object>>,
    /// Each node's simulated disk, kept across crashes.
    disks: BTreeMap<NodeId, SimDisk>,
    /// Crashed nodes, and when each restarts.
    down: BTreeMap<NodeId, Instant>,
    /// How many times each node started, so that each incarnation has its own session.
    incarnations: BTreeMap<NodeId, u64>,
    names: Vec<String>,
    raft: RaftConfig,
    crashes: bool,
    crashes_done: u64,
    /// Disks made to fail (their node halts until restarted).
    disk_faults: u64,
    disk_failures: bool,
    disk_rng: ChaCha8Rng,
    /// Nodes whose disk was set to fail during their current incarnation: after a failed
    /// write a node may come back with an older term than it had reached (it halted before
    /// anything depending on it left).
    armed: std::collections::BTreeSet<NodeId>,
    /// Each node takes a snapshot every this many applied entries (per seed; some never).
    compaction: u64,
    addresses: BTreeMap<String, NodeId>,
    net: SimNet<Frame>,
    /// Nodes to run at a given time because calls were queued on them.
    wakeups: BinaryHeap<Reverse<(Instant, NodeId)>>,
    checker: Checker,
    steps: u64,
    clock_rng: ChaCha8Rng,
    /// How long each journal writer takes to write and sync what it was handed.
    writer_rng: ChaCha8Rng,
    /// The virtual time each command was proposed at, by argument and stamp.
    proposed: BTreeMap<(i64, u64), Instant>,
    /// Cut links one way and make partitions flap.
    partitions: bool,
    /// Hand the leadership over now and then.
    transfers: bool,
    /// The faults added after the first ones (one-way and flapping partitions, transfers)
    /// draw from their own generator.
    more_rng: ChaCha8Rng,
    /// The partition flapping now, if one is.
    flap: Option<Flap>,
    faults: DriverFaults,
    /// Transfers whose call succeeded, counted by their callbacks.
    transfers_succeeded: Arc<AtomicU64>,
}

/// A partition that comes and goes.
struct Flap {
    /// One side; the other nodes are the other.
    side: Vec<NodeId>,
    /// When it changes next.
    next: Instant,
    /// Changes left before it stays healed.
    left: u32,
    /// Whether the split holds now.
    cut: bool,
}

impl<W: Workload> DriverSim<W> {
    fn new(seed: u64, config: &SimConfig, workload: W) -> Result<DriverSim<W>, Violation> {
        let names: Vec<String> = (1..=config.nodes).map(|i| format!("n{i:03}")).collect();
        let addresses = Addresses::new(names.iter().cloned()).map_err(|c| Violation {
            at: Instant::ZERO,
            what: format!("colliding node ids: {c:?}"),
        })?;
        let ids: BTreeMap<String, NodeId> = addresses.by_address.clone();
        let disks: BTreeMap<NodeId, SimDisk> = ids
            .values()
            .map(|&id| (id, SimDisk::new(seed ^ id.0.rotate_left(17))))
            .collect();
        let mut sim = DriverSim {
            seed,
            workload,
            clock: SimClock::default(),
            fault_duration: config.fault_duration,
            liveness_timeout: config.liveness_timeout,
            now: Instant::ZERO,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0xD21E_5EED),
            nodes: BTreeMap::new(),
            disks,
            down: BTreeMap::new(),
            incarnations: BTreeMap::new(),
            names,
            raft: config.raft.clone(),
            crashes: config.faults.crashes,
            crashes_done: 0,
            disk_faults: 0,
            disk_failures: config.faults.disk_failures,
            disk_rng: ChaCha8Rng::seed_from_u64(seed ^ 0xD15C_FA11),
            armed: std::collections::BTreeSet::new(),
            compaction: [10, 50, 200, u64::MAX]
                [ChaCha8Rng::seed_from_u64(seed ^ 0x5A95_0C0A).random_range(0..4)],
            addresses: ids,
            net: SimNet::new(NetConfig::reliable()),
            wakeups: BinaryHeap::new(),
            checker: Checker::default(),
            steps: 0,
            clock_rng: ChaCha8Rng::seed_from_u64(seed ^ 0xC10C_0FF5),
            writer_rng: ChaCha8Rng::seed_from_u64(seed ^ 0x0005_717E_5EED),
            proposed: BTreeMap::new(),
            partitions: config.faults.partitions,
            transfers: config.faults.membership_changes,
            more_rng: ChaCha8Rng::seed_from_u64(seed ^ 0x0F1A_9F1A_5EED),
            flap: None,
            faults: DriverFaults::default(),
            transfers_succeeded: Arc::new(AtomicU64::new(0)),
        };
        let ids: Vec<NodeId> = sim.addresses.values().copied().collect();
        for id in ids {
            sim.start_node(id)?;
        }
        Ok(sim)
    }

    /// Starts (or restarts) node `id` from what its disk's journal recovers.
    fn start_node(&mut self, id: NodeId) -> Result<(), Violation> {
        let Some(disk) = self.disks.get(&id).cloned() else {
            return Ok(());
        };
        let after_disk_failure = self.armed.remove(&id);
        let incarnation = self.incarnations.entry(id).or_insert(0);
        *incarnation += 1;
        let session = self.seed ^ id.0 ^ (*incarnation << 40);
        let mut node = build_node(
            self.seed,
            id,
            &self.names,
            &self.raft,
            disk,
            session,
            self.compaction,
            self.transfers,
            self.workload.object(),
        )
        .map_err(|e| self.violation(format!("{id} cannot recover its journal: {e}")))?;
        node.clock = NodeClock::random(&mut self.clock_rng);
        if *self.incarnations.get(&id).unwrap_or(&1) > 1 {
            self.checker
                .on_restart(&node.engine.raft, after_disk_failure)
                .map_err(|what| self.violation(what))?;
        }
        self.nodes.insert(id, node);
        self.wakeups.push(Reverse((self.now, id)));
        self.tell_links(id, true);
        Ok(())
    }

    /// Node `id`'s process died (`up` false) or started (`up` true): every other running node's
    /// transport reports its link to it down or up a millisecond later, as TCP reports a reset
    /// or a new connection. (A partition resets nothing: links across it stay up, silent.)
    fn tell_links(&mut self, id: NodeId, up: bool) {
        let peer = sim_peer(&self.addresses, id);
        let at = self.now + Duration::from_millis(1);
        for (&other, node) in &self.nodes {
            if other == id {
                continue;
            }
            let event = match up {
                true => TransportEvent::LinkUp(peer),
                false => TransportEvent::LinkDown(peer),
            };
            node.wire.lock().inbox.push(event);
            self.wakeups.push(Reverse((at, other)));
        }
    }

    /// Crashes a random running node: its engine and object are gone, and its disk loses what
    /// was not synced. It restarts after up to two seconds.
    fn crash_somewhere(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        if ids.len() <= 1 {
            return;
        }
        let id = ids[self.rng.random_range(0..ids.len())];
        if let Some(node) = self.nodes.remove(&id) {
            let durable = node
                .engine
                .durable_view()
                .map(|(hard_state, _)| hard_state.term);
            self.checker.on_crash(id, durable);
        }
        self.tell_links(id, false);
        self.workload.crashed(self.index(id), self.clock.now());
        self.crashes_done += 1;
        if let Some(disk) = self.disks.get(&id) {
            disk.crash();
        }
        let restart_at = self.now + Duration::from_millis(self.rng.random_range(0..=2000));
        self.down.insert(id, restart_at);
    }

    /// Makes a random running node's disk fail after a few more writes: the node must halt
    /// without acknowledging anything it could not write, until it is restarted.
    fn fail_a_disk(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        let id = ids[self.disk_rng.random_range(0..ids.len())];
        if let Some(disk) = self.disks.get(&id) {
            disk.fail_after(self.disk_rng.random_range(0..40));
            self.disk_faults += 1;
            self.armed.insert(id);
        }
    }

    /// Restarts every node whose disk was set to fail, failed or not yet, as an operator would
    /// once the disk is replaced.
    fn restart_failed_disks(&mut self) -> Result<(), Violation> {
        let armed: Vec<NodeId> = self.armed.iter().copied().collect();
        for id in armed {
            if self.nodes.remove(&id).is_none() {
                continue; // crashed, and restarted below with the others
            }
            self.tell_links(id, false);
            self.workload.crashed(self.index(id), self.clock.now());
            if let Some(disk) = self.disks.get(&id) {
                disk.crash();
            }
            self.start_node(id)?;
        }
        Ok(())
    }

    /// Restarts the crashed nodes whose time has come (all of them with `all`).
    fn restart_due(&mut self, all: bool) -> Result<(), Violation> {
        let due: Vec<NodeId> = self
            .down
            .iter()
            .filter(|&(_, &at)| all || at <= self.now)
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            self.down.remove(&id);
            self.start_node(id)?;
        }
        Ok(())
    }

    fn run(mut self) -> Result<DriverRunReport, Violation> {
        self.fault_phase()?;
        self.liveness_phase()?;
        let (calls_succeeded, calls_failed) = self.check_states()?;
        let stamps_checked = self.check_cluster_time()?;
        let committed = self
            .nodes
            .values()
            .map(|n| n.engine.raft.commit_index().0)
            .max()
            .unwrap_or(0);
        Ok(DriverRunReport {
            seed: self.seed,
            steps: self.steps,
            calls_succeeded,
            calls_failed,
            committed,
            crashes: self.crashes_done,
            disk_faults: self.disk_faults,
            compactions: self
                .nodes
                .values()
                .map(|n| n.engine.raft.snapshot_counters().compactions)
                .sum(),
            snapshots_installed: self
                .nodes
                .values()
                .map(|n| n.engine.raft.snapshot_counters().installed)
                .sum(),
            stamps_checked,
            faults: DriverFaults {
                transfers_succeeded: self.transfers_succeeded.load(Ordering::Relaxed),
                ..self.faults
            },
            simulated: Duration::from_nanos(self.now.as_nanos()),
        })
    }

    fn fault_phase(&mut self) -> Result<(), Violation> {
        let end = self.now + self.fault_duration;
        let mut next_call = self.now;
        let mut next_fault = self.now + Duration::from_millis(500);
        while self.now < end {
            let next_flap = self.flap.as_ref().map_or(end, |f| f.next);
            self.run_until(next_call.min(next_fault).min(next_flap).min(end))?;
            self.restart_due(false)?;
            self.flap_due();
            if self.now >= next_call {
                self.call_somewhere();
                next_call = self.now + Duration::from_micros(self.rng.random_range(100..=20_000));
            }
            if self.now >= next_fault {
                self.inject_fault();
                next_fault = self.now + Duration::from_millis(self.rng.random_range(50..=3000));
            }
        }
        Ok(())
    }

    /// The workload's calls at a random node. A node that halted (its disk failed) is as
    /// good as down to its clients until it is restarted: it gets none.
    fn call_somewhere(&mut self) {
        let ids: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| !n.engine.is_halted())
            .map(|(&id, _)| id)
            .collect();
        if ids.is_empty() {
            return;
        }
        let id = ids[self.rng.random_range(0..ids.len())];
        self.clock.set(self.now);
        let index = self.index(id);
        if let Some(node) = self.nodes.get(&id) {
            let node = SimNode {
                index,
                calls: &node.calls,
                clock: &self.clock,
            };
            self.workload.call(node);
        }
        self.wakeups.push(Reverse((self.now, id)));
    }

    /// Node `id`'s index among the cluster's nodes, in address order.
    fn index(&self, id: NodeId) -> usize {
        self.addresses
            .values()
            .position(|&n| n == id)
            .unwrap_or(usize::MAX)
    }

    fn inject_fault(&mut self) {
        // Disk failures draw from their own generator, so that turning them off replays the
        // other faults of a seed exactly as before they existed.
        if self.disk_failures && self.disk_rng.random_range(0..6) == 0 {
            self.fail_a_disk();
            return;
        }
        if self.partitions && self.more_rng.random_range(0..5) == 0 {
            match self.more_rng.random_bool(0.5) {
                true => self.cut_one_way(),
                false => self.start_flapping(),
            }
            return;
        }
        if self.transfers && self.more_rng.random_range(0..6) == 0 {
            self.transfer_somewhere();
            return;
        }
        let kinds = if self.crashes { 5 } else { 4 };
        match self.rng.random_range(0..kinds) {
            0 => {
                let mut ids: Vec<NodeId> = self.nodes.keys().copied().collect();
                ids.shuffle(&mut self.rng);
                let cut = self.rng.random_range(1..ids.len().max(2));
                let (a, b) = ids.split_at(cut.min(ids.len()));
                self.net.partition(&[a.to_vec(), b.to_vec()]);
                self.faults.partitions += 1;
            }
            1 => {
                self.net.heal();
                self.flap = None;
                self.faults.heals += 1;
            }
            2 => {
                self.net.config = NetConfig::random(&mut self.rng);
                self.faults.lossy_networks += 1;
            }
            3 => self.net.config = NetConfig::reliable(),
            _ => self.crash_somewhere(),
        }
    }

    /// Every node of the cluster, running or not, in address order.
    fn all_ids(&self) -> Vec<NodeId> {
        self.addresses.values().copied().collect()
    }

    /// Cuts one random node's links one way: what it sends is lost, or what it is sent.
    fn cut_one_way(&mut self) {
        let ids = self.all_ids();
        let node = ids[self.more_rng.random_range(0..ids.len())];
        match self.more_rng.random_bool(0.5) {
            true => self.net.cut_one_way(&[node], &ids),
            false => self.net.cut_one_way(&ids, &[node]),
        }
        self.faults.one_way += 1;
    }

    /// Starts a partition that comes and goes every 50 to 500 ms, a few times, then heals.
    fn start_flapping(&mut self) {
        let mut ids = self.all_ids();
        ids.shuffle(&mut self.more_rng);
        let cut = self
            .more_rng
            .random_range(1..ids.len().max(2))
            .min(ids.len());
        ids.truncate(cut);
        self.flap = Some(Flap {
            side: ids,
            next: self.now,
            left: self.more_rng.random_range(4..=20),
            cut: false,
        });
        self.faults.flapping += 1;
    }

    /// Splits or heals the flapping partition if its time has come.
    fn flap_due(&mut self) {
        let Some(flap) = self.flap.as_mut() else {
            return;
        };
        if flap.next > self.now {
            return;
        }
        if flap.cut || flap.left == 0 {
            self.net.heal();
        } else {
            let other: Vec<NodeId> = self
                .addresses
                .values()
                .copied()
                .filter(|id| !flap.side.contains(id))
                .collect();
            self.net.partition(&[flap.side.clone(), other]);
        }
        flap.cut = !flap.cut;
        if flap.left == 0 {
            self.flap = None;
            return;
        }
        flap.left -= 1;
        flap.next = self.now + Duration::from_millis(self.more_rng.random_range(50..=500));
    }

    /// Asks a random running node to hand the leadership over to the most up-to-date voter,
    /// as a user would with `SyncObj::transfer_leadership(None)`.
    fn transfer_somewhere(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        if ids.len() <= 1 {
            return;
        }
        let id = ids[self.more_rng.random_range(0..ids.len())];
        let Some(node) = self.nodes.get(&id) else {
            return;
        };
        let (completion, call) = Call::<()>::pending(&node.submit);
        // A full queue drops the completion, which fails the call.
        let _ = node
            .changes
            .try_send((ChangeRequest::Transfer(None), completion));
        let succeeded = Arc::clone(&self.transfers_succeeded);
        call.on_done(move |outcome| {
            if outcome.is_ok() {
                succeeded.fetch_add(1, Ordering::Relaxed);
            }
        });
        self.faults.transfers += 1;
        self.wakeups.push(Reverse((self.now, id)));
    }

    /// Heals everything, then requires one successful call from every node and the nodes to
    /// agree on the committed log within the liveness timeout.
    fn liveness_phase(&mut self) -> Result<(), Violation> {
        self.restart_due(true)?;
        self.restart_failed_disks()?;
        self.flap = None;
        self.net.heal();
        self.net.config = NetConfig::reliable();
        let deadline = self.now + self.liveness_timeout;
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            loop {
                let outcome = Arc::new(Mutex::new(None));
                let slot = Arc::clone(&outcome);
                self.clock.set(self.now);
                let index = self.index(id);
                if let Some(node) = self.nodes.get(&id) {
                    let node = SimNode {
                        index,
                        calls: &node.calls,
                        clock: &self.clock,
                    };
                    let done =
                        move |ok| *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(ok);
                    self.workload.probe(node, Box::new(done));
                }
                self.wakeups.push(Reverse((self.now, id)));
                while outcome
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_none()
                {
                    if self.now >= deadline {
                        return Err(self.violation(format!(
                            "liveness: a call on {id} did not complete after healing ({})",
                            self.describe()
                        )));
                    }
                    let step_end = self.now + Duration::from_millis(5);
                    self.run_until(step_end)?;
                }
                let done = outcome
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                if done == Some(true) {
                    break;
                }
            }
        }
        // Let the last commit reach every node.
        let settle_end = self.now + Duration::from_secs(2);
        self.run_until(settle_end)
    }

    /// The workload's checks on every node's object; what it counted.
    fn check_states(&mut self) -> Result<(u64, u64), Violation> {
        self.clock.set(self.now);
        let guards: Vec<_> = self.nodes.values().map(|n| n.state.state.read()).collect();
        let objects: Vec<&W::Object> = guards.iter().map(|g| &**g).collect();
        let checked = self.workload.check(&objects, self.clock.now());
        drop(objects);
        drop(guards);
        checked.map_err(|what| self.violation(what))
    }

    /// The cluster time stamped on the applied commands (the same on every node, as
    /// [`check_states`](Self::check_states) found) never goes back, nor ahead of the virtual
    /// time between proposals beyond the clocks' rate error. Returns how many commands were
    /// checked against their proposal time.
    fn check_cluster_time(&self) -> Result<u64, Violation> {
        let Some(node) = self.nodes.values().next() else {
            return Ok(0);
        };
        let state = node.state.state.read();
        // The commands' proposal times are known for the built-in running total only.
        let Some(state) = (&*state as &dyn std::any::Any).downcast_ref::<Total>() else {
            return Ok(0);
        };
        check_stamps(&state.history, &state.stamps, &self.proposed)
            .map_err(|what| self.violation(what))
    }

    /// Each node's role, term, leader, commit and applied index, and its calls in flight.
    fn describe(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|(id, n)| format!("{id}: {}", n.engine.describe()))
            .collect();
        nodes.join("; ")
    }

    fn violation(&self, what: String) -> Violation {
        Violation { at: self.now, what }
    }

    /// Processes every event up to `deadline`, then sets the clock to it.
    fn run_until(&mut self, deadline: Instant) -> Result<(), Violation> {
        while let Some((at, event)) = self.next_event() {
            if at > deadline {
                break;
            }
            self.now = self.now.max(at);
            self.steps += 1;
            match event {
                Event::Frame => {
                    if let Some(frame) = self.net.pop() {
                        self.run_node(frame.to, Some(frame))?;
                    }
                }
                Event::Wake(id) => {
                    self.wakeups.pop();
                    self.run_node(id, None)?;
                }
                Event::Timer(id) => self.run_node(id, None)?,
                Event::Write(id) => {
                    if let Some(node) = self.nodes.get_mut(&id) {
                        node.write_due = None;
                        node.engine.step_writer();
                    }
                    // As the writer thread wakes the tick loop once it answered.
                    self.run_node(id, None)?;
                }
            }
        }
        self.now = self.now.max(deadline);
        Ok(())
    }

    fn next_event(&self) -> Option<(Instant, Event)> {
        let frame = self.net.next_arrival().map(|at| (at, Event::Frame));
        let wake = self
            .wakeups
            .peek()
            .map(|Reverse((at, id))| (*at, Event::Wake(*id)));
        let timer = self
            .nodes
            .iter()
            .filter_map(|(&id, n)| {
                let at = n.clock.virtual_time(n.engine.next_deadline()?);
                Some((at, Event::Timer(id)))
            })
            .min_by_key(|(at, _)| *at);
        let write = self
            .nodes
            .iter()
            .filter_map(|(&id, n)| Some((n.write_due?, Event::Write(id))))
            .min_by_key(|(at, _)| *at);
        [frame, wake, timer, write]
            .into_iter()
            .flatten()
            .min_by_key(|(at, _)| *at)
    }

    /// Runs one node's engine for one iteration with at most one frame, as its tick loop
    /// would, then routes what it sent.
    fn run_node(&mut self, id: NodeId, frame: Option<Frame>) -> Result<(), Violation> {
        let now = self.now;
        let Some(node) = self.nodes.get_mut(&id) else {
            return Ok(());
        };
        if let Some(frame) = frame {
            let from = sim_peer(&self.addresses, frame.from);
            let event = TransportEvent::Frame {
                from,
                frame: frame.bytes,
            };
            node.wire.lock().inbox.push(event);
        }
        let (clock, before) = (node.clock, node.engine.raft.last_index());
        self.clock.set(now);
        node.engine.iterate(Duration::ZERO, &|| clock.local(now));
        if node.write_due.is_none() && node.engine.writer_pending() {
            // The writer takes what was handed over a while later: at once now and then,
            // else within 2 ms (a sync), while the node goes on and may crash first.
            let delay = match self.writer_rng.random_range(0..4) {
                0 => 0,
                _ => self.writer_rng.random_range(1..=2000),
            };
            node.write_due = Some(now + Duration::from_micros(delay));
        }
        record_proposals(&node.engine.raft, before, now, &mut self.proposed);
        self.checker
            .after_step(&node.engine.raft)
            .map_err(|what| Violation { at: now, what })?;
        let sent = std::mem::take(&mut node.wire.lock().outbox);
        if let Some(durable) = node.engine.durable_view() {
            for (_, bytes) in &sent {
                if let Ok(NodeMessage::Raft(envelope)) = NodeMessage::decode(bytes) {
                    let (hard_state, last) = durable;
                    let allowed = durable_allows(&envelope.message, envelope.to, &hard_state, last);
                    allowed.map_err(|what| Violation {
                        at: now,
                        what: format!(
                            "{id}: persist before send: {what} ({})",
                            node.engine.describe()
                        ),
                    })?;
                }
            }
        }
        for (to, bytes) in sent {
            let frame = Frame {
                from: id,
                to,
                bytes,
            };
            self.net.send(frame, now, &mut self.rng);
        }
        Ok(())
    }
}

/// Notes the virtual time `now` of the `add` commands (to the main object) that `raft` appended
/// as leader in its iteration (its log ended at `before`): only a leader appends entries of its
/// own term.
fn record_proposals(
    raft: &crate::raft::RaftNode,
    before: crate::raft::LogIndex,
    now: Instant,
    proposed: &mut BTreeMap<(i64, u64), Instant>,
) {
    if !raft.is_leader() {
        return;
    }
    let mut index = before.next();
    while index <= raft.last_index() {
        if let Some(entry) = raft.entry(index)
            && entry.term == raft.term()
            && entry.kind == crate::raft::EntryKind::Command
            && let Ok((header, args)) = crate::object::CommandHeader::decode(&entry.data)
            && (header.object, header.method) == (0, ADD.id)
            && let Ok((argument,)) = rmp_serde::from_slice::<(i64,)>(args)
        {
            proposed.entry((argument, header.stamp)).or_insert(now);
        }
        index = index.next();
    }
}

#[derive(Clone, Copy, Debug)]
enum Event {
    Frame,
    Wake(NodeId),
    Timer(NodeId),
    /// A node's journal writer runs (see [`Writer::inline`](crate::driver::writer::Writer)).
    Write(NodeId),
}

/// Builds node `id` of the cluster of `names` on its `disk`, with the driver's own assembly.
#[allow(clippy::too_many_arguments)]
fn build_node<O: Replicated>(
    seed: u64,
    id: NodeId,
    names: &[String],
    raft: &RaftConfig,
    disk: SimDisk,
    session: u64,
    compaction: u64,
    dynamic: bool,
    object: O,
) -> Result<SimDriverNode<O>, String> {
    let me = names
        .iter()
        .find(|name| voter_id(name) == id)
        .ok_or_else(|| format!("no node {id}"))?;
    let mut config = raft.clone();
    config.seed = seed ^ id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ session;
    let conf = SyncObjConf {
        commands_queue_size: 100_000,
        commands_wait_leader: true,
        call_timeout: Some(Duration::from_secs(5)),
        journal_fsync: FsyncPolicy::Always,
        log_compaction_min_entries: compaction,
        log_compaction_min_time: Duration::MAX,
        dynamic_membership_change: dynamic,
        ..SyncObjConf::default()
    };
    let state = Arc::new(ObjectCell {
        state: RwLock::new(object),
    });
    let objects: Vec<Arc<dyn ErasedObject>> = vec![Arc::clone(&state) as Arc<dyn ErasedObject>];
    let wire = Arc::new(parking_lot::Mutex::new(SimWire {
        inbox: vec![TransportEvent::Bound(Ok(()))],
        outbox: Vec::new(),
    }));
    let ids = Addresses::new(names.iter().cloned())
        .map_err(|c| format!("{c:?}"))?
        .by_address;
    let layout = DiskLayout {
        journal: std::path::Path::new(JOURNAL_DIR),
        snapshots: std::path::Path::new(SNAPSHOT_DIR),
    };
    let assembled = assemble(Blueprint {
        me: Peer::Voter(me.clone()),
        partners: without(names.iter().cloned(), me),
        objects,
        conf: &conf,
        raft: config,
        transport: Box::new(SimTransport {
            wire: Arc::clone(&wire),
            ids,
        }),
        session,
        recover: &|objects, slot, identity| {
            recover_on_disk(&disk, &layout, &conf, slot, identity, objects)
        },
        inline_snapshots: true,
        inline_journal: true,
    })
    .map_err(|e| e.to_string())?;
    let submit: Arc<dyn Submit> = Arc::new(SimSubmit {
        queue: assembled.queue,
    });
    let calls = O::Calls::from(Caller::new(Arc::clone(&submit), 0));
    Ok(SimDriverNode {
        engine: assembled.engine,
        clock: NodeClock::EXACT,
        state,
        calls,
        submit,
        changes: assembled.changes,
        wire,
        write_due: None,
    })
}
