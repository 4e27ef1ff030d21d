//! The `SyncObj` driver on in-process clusters: every call form, the failure reasons that can
//! arise without a network, a panicking method, and shutdown. The replicated type is written
//! by hand here (the macros live in the `syncobj` package and have their own tests).

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use syncobj_core::conf::{SyncObjConf, SyncObjConfBuilder};
use syncobj_core::driver::{Consumers, MemoryNetwork, SyncObj};
use syncobj_core::object::{
    ApplyError, Call, Caller, Effect, FailReason, MethodSpec, Replicated, ReplicatedMethods,
    ReplicatedState,
};
use syncobj_core::status::RaftState;
use syncobj_net::Transport;

/// A counter, with the trait implementations the macros would generate.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Counter {
    value: i64,
}

const ADD: MethodSpec = MethodSpec {
    id: 0,
    name: "add",
    version: 0,
    fingerprint: 1,
};
const BOOM: MethodSpec = MethodSpec {
    id: 1,
    name: "boom",
    version: 0,
    fingerprint: 2,
};

impl ReplicatedState for Counter {
    const NAME: &'static str = "Counter";
}

impl ReplicatedMethods for Counter {
    const METHODS: &'static [MethodSpec] = &[ADD, BOOM];
    type Calls = CounterCalls;

    fn apply(&mut self, id: u16, args: &[u8]) -> Result<Vec<u8>, ApplyError> {
        let bad = |e: rmp_serde::decode::Error| ApplyError::BadArguments {
            method: "?",
            reason: e.to_string(),
        };
        let result = match id {
            0 => {
                let (n,): (i64,) = rmp_serde::from_slice(args).map_err(bad)?;
                self.value += n;
                self.value
            }
            1 => panic!("boom at {}", self.value),
            other => return Err(ApplyError::UnknownMethod(other)),
        };
        Ok(rmp_serde::to_vec(&result).expect("an i64 encodes"))
    }
}

struct CounterCalls {
    caller: Caller,
}

impl From<Caller> for CounterCalls {
    fn from(caller: Caller) -> Self {
        CounterCalls { caller }
    }
}

impl CounterCalls {
    fn add(&self, n: i64) -> Call<i64> {
        self.caller.call(&[ADD], &(n,))
    }

    fn boom(&self) -> Call<i64> {
        self.caller.call(&[BOOM], &())
    }
}

/// Fast timers, so elections take a fraction of a second of real time, yet loose enough that a
/// loaded machine running every test at once does not depose leaders by mere slowness.
fn builder(auto_tick: bool) -> SyncObjConfBuilder {
    SyncObjConf::builder()
        .auto_tick(auto_tick)
        .auto_tick_period(Duration::from_millis(5))
        .append_entries_period(Duration::from_millis(20))
        .raft_min_timeout(Duration::from_millis(150))
        .raft_max_timeout(Duration::from_millis(300))
        .leader_fallback_timeout(Duration::from_millis(150))
        .connection_timeout(Duration::from_millis(300))
}

/// [`builder`]'s configuration, built.
fn conf(auto_tick: bool) -> SyncObjConf {
    builder(auto_tick).build().expect("a valid configuration")
}

const ADDRESSES: [&str; 3] = ["node-a", "node-b", "node-c"];

fn cluster(conf: &SyncObjConf) -> (MemoryNetwork, Vec<SyncObj<Counter>>) {
    let network = MemoryNetwork::new();
    let nodes = ADDRESSES
        .iter()
        .map(|&me| {
            let partners = ADDRESSES
                .iter()
                .filter(|&&a| a != me)
                .map(|&a| a.to_owned());
            SyncObj::with_transport(
                me,
                partners,
                Counter::default(),
                conf.clone(),
                network.endpoint(me),
            )
            .expect("a valid node")
        })
        .collect();
    (network, nodes)
}

/// Ticks manual nodes until `done`, each tick waiting up to 1 ms for frames; fails the test
/// after 10 s of real time.
fn tick_until(nodes: &[SyncObj<Counter>], mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "condition not reached within 10 s"
        );
        for node in nodes {
            node.do_tick(Duration::from_millis(1))
                .expect("the node ticks");
        }
    }
}

/// Makes a call on every node and waits for it: once a node has applied its own call, it has
/// applied everything committed before it. Returns every node's value afterwards.
fn settle(nodes: &[SyncObj<Counter>]) -> Vec<i64> {
    for node in nodes {
        add_retrying(node, 0).expect("the sync call succeeds");
    }
    values(nodes)
}

fn values(nodes: &[SyncObj<Counter>]) -> Vec<i64> {
    nodes.iter().map(|n| n.read().value).collect()
}

/// Blocking calls on every node of an auto-ticked cluster return the value the method returned
/// on that node, and every node ends with the same state.
#[test]
fn wait_on_every_node_with_auto_tick() {
    let (_network, nodes) = cluster(&conf(true));
    let mut total = 0;
    for (i, node) in nodes.iter().enumerate() {
        let n = i as i64 + 1;
        total += n;
        let got = node
            .add(n)
            .wait_timeout(Duration::from_secs(10))
            .expect("the call succeeds");
        assert_eq!(got, total, "node {i} sees its own write");
    }
    assert_eq!(settle(&nodes), vec![total; 3]);
}

/// Callbacks on manually ticked nodes: each fires once with the method's result.
#[test]
fn on_done_with_manual_ticks() {
    let (_network, nodes) = cluster(&conf(false));
    tick_until(&nodes, || nodes.iter().any(|n| n.is_leader()));
    let results = Arc::new(Mutex::new(Vec::new()));
    for node in &nodes {
        let results = Arc::clone(&results);
        node.add(10)
            .on_done(move |r| results.lock().expect("not poisoned").push(r));
    }
    tick_until(&nodes, || results.lock().expect("not poisoned").len() == 3);
    let mut got: Vec<i64> = results
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|r| r.clone().expect("success"))
        .collect();
    got.sort_unstable();
    assert_eq!(got, vec![10, 20, 30]);
    tick_until(&nodes, || values(&nodes) == vec![30; 3]);
}

/// A blocking wait on a manually ticked single node ticks the node itself instead of hanging.
#[test]
fn wait_drives_a_manual_single_node() {
    let network = MemoryNetwork::new();
    let node = SyncObj::with_transport(
        "solo",
        Vec::<String>::new(),
        Counter::default(),
        conf(false),
        network.endpoint("solo"),
    )
    .expect("a valid node");
    assert_eq!(node.add(7).wait_timeout(Duration::from_secs(10)), Ok(7));
    assert_eq!(node.add(1).wait(), Ok(8));
}

/// Calls can be awaited with any executor.
#[test]
fn calls_are_futures() {
    let (_network, nodes) = cluster(&conf(true));
    assert_eq!(block_on(nodes[1].add(4)), Ok(4));
}

/// A panicking method fails the call on the caller with the panic's message, on every node
/// alike, and the log moves on.
#[test]
fn a_panicking_method_does_not_wedge_the_cluster() {
    quiet_boom_panics();
    let (_network, nodes) = cluster(&conf(true));
    assert_eq!(nodes[0].add(3).wait_timeout(Duration::from_secs(10)), Ok(3));
    let failure = nodes[2]
        .boom()
        .wait_timeout(Duration::from_secs(10))
        .expect_err("the method panics");
    assert_eq!(failure, FailReason::Panicked("boom at 3".into()));
    assert_eq!(add_retrying(&nodes[1], 1), Ok(4));
    assert_eq!(settle(&nodes), vec![4; 3]);
}

/// Keeps the expected `boom` panics out of the test output: printing their backtraces stalls
/// the tick threads for longer than the test's election timeouts.
fn quiet_boom_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info.payload().downcast_ref::<String>().map(String::as_str);
            if !message.is_some_and(|m| m.starts_with("boom at")) {
                default(info);
            }
        }));
    });
}

/// A full command queue fails the call at once.
#[test]
fn full_queue_fails_with_queue_full() {
    let network = MemoryNetwork::new();
    let conf = builder(false)
        .commands_queue_size(1)
        .build()
        .expect("a valid configuration");
    let node = SyncObj::with_transport("a", ["b"], Counter::default(), conf, network.endpoint("a"))
        .expect("a valid node");
    node.add(1).detach();
    let (tx, rx) = std::sync::mpsc::channel();
    node.add(2)
        .on_done(move |r| tx.send(r).expect("receiver alive"));
    assert_eq!(
        rx.try_recv().expect("completed at once"),
        Err(FailReason::QueueFull)
    );
}

/// Without a leader, and with `commands_wait_leader` off, a call fails with `MissingLeader`.
#[test]
fn no_leader_fails_with_missing_leader() {
    let network = MemoryNetwork::new();
    let conf = builder(false)
        .commands_wait_leader(false)
        .build()
        .expect("a valid configuration");
    let node = SyncObj::with_transport(
        "a",
        ["b", "c"],
        Counter::default(),
        conf,
        network.endpoint("a"),
    )
    .expect("a valid node");
    assert_eq!(
        node.add(1).wait_timeout(Duration::from_secs(5)),
        Err(FailReason::MissingLeader)
    );
}

/// Without a leader, calls wait for one up to `leaderless_calls_max`; one more fails at once
/// with `MissingLeader`, and those waiting end with `Shutdown` when the node stops.
#[test]
fn leaderless_calls_beyond_the_limit_fail_with_missing_leader() {
    let network = MemoryNetwork::new();
    let conf = builder(false)
        .leaderless_calls_max(2)
        .build()
        .expect("a valid configuration");
    let node = SyncObj::with_transport(
        "a",
        ["b", "c"],
        Counter::default(),
        conf,
        network.endpoint("a"),
    )
    .expect("a valid node");
    let (tx, rx) = std::sync::mpsc::channel();
    for n in 1..=3 {
        let tx = tx.clone();
        node.add(n).on_done(move |r| drop(tx.send((n, r))));
    }
    node.do_tick(Duration::from_millis(1))
        .expect("the node ticks");
    assert_eq!(rx.try_recv(), Ok((3, Err(FailReason::MissingLeader))));
    assert!(rx.try_recv().is_err(), "two calls wait for a leader");
    node.destroy();
    let rest: Vec<(i64, Result<i64, FailReason>)> = rx.try_iter().collect();
    assert_eq!(
        rest,
        [
            (1, Err(FailReason::Shutdown)),
            (2, Err(FailReason::Shutdown))
        ]
    );
}

/// A leader that holds `uncommitted_entries_max` uncommitted entries refuses more calls with
/// `QueueFull`, though its command queue has room. Without check-quorum the cut-off leader
/// keeps leading, so its entries stay uncommitted. (Two, so that the first call of the term
/// fits beside the leader's no-op.)
#[test]
fn a_leader_full_of_uncommitted_entries_refuses_calls() {
    let conf = builder(true)
        .check_quorum(false)
        .uncommitted_entries_max(2)
        .build()
        .expect("a valid configuration");
    let (network, nodes) = cluster(&conf);
    let leader = leader_index(&nodes);
    network.isolate(ADDRESSES[leader]);
    nodes[leader].add(1).detach();
    nodes[leader].add(2).detach();
    assert_eq!(
        nodes[leader].add(3).wait_timeout(Duration::from_secs(10)),
        Err(FailReason::QueueFull)
    );
}

/// Waiting for a call from inside a callback, on the tick thread, fails fast instead of
/// deadlocking.
#[test]
fn waiting_on_the_tick_thread_fails_fast() {
    let (_network, nodes) = cluster(&conf(true));
    nodes[0]
        .add(0)
        .wait_timeout(Duration::from_secs(10))
        .expect("a leader is elected");
    let nodes = Arc::new(nodes);
    let (tx, rx) = std::sync::mpsc::channel();
    let inner = Arc::clone(&nodes);
    nodes[0].add(1).on_done(move |_| {
        let nested = inner[0].add(1).wait();
        tx.send(nested).expect("receiver alive");
    });
    let nested = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the callback ran");
    assert_eq!(nested, Err(FailReason::WouldDeadlock));
}

/// Destroying a node fails what it still had in flight with `Shutdown`, and later calls too.
#[test]
fn destroy_fails_calls_with_shutdown() {
    let network = MemoryNetwork::new();
    let node = SyncObj::with_transport(
        "a",
        ["b", "c"],
        Counter::default(),
        conf(true),
        network.endpoint("a"),
    )
    .expect("a valid node");
    let pending = node.add(1);
    node.destroy_synchronous();
    assert!(!node.tick_thread_alive());
    assert_eq!(
        pending.wait_timeout(Duration::from_secs(5)),
        Err(FailReason::Shutdown)
    );
    assert_eq!(
        node.add(2).wait_timeout(Duration::from_secs(5)),
        Err(FailReason::Shutdown)
    );
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A minimal executor: polls `future`, parking the thread between wake-ups, for at most 10 s.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        assert!(Instant::now() < deadline, "future not ready within 10 s");
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// `on_state_changed` reports the leader's rise, `on_ready` fires once the node caught up, and
/// the status report names the leader, the quorum and every partner.
#[test]
fn callbacks_and_status() {
    let changes = Arc::new(Mutex::new(Vec::new()));
    let ready = Arc::new(Mutex::new(0));
    let recorder = Arc::clone(&changes);
    let counter = Arc::clone(&ready);
    let conf = builder(true)
        .on_state_changed(move |old, new| recorder.lock().expect("not poisoned").push((old, new)))
        .on_ready(move || *counter.lock().expect("not poisoned") += 1)
        .build()
        .expect("a valid configuration");
    let (_network, nodes) = cluster(&conf);
    assert_eq!(settle(&nodes), vec![0; 3]);
    assert!(nodes.iter().all(|n| n.is_ready() && n.has_quorum()));
    let leader = nodes
        .iter()
        .find(|n| n.is_leader())
        .expect("one node leads");
    let status = leader.status();
    assert_eq!(status.state, RaftState::Leader);
    assert_eq!(status.leader.as_deref(), Some(leader.self_node().as_str()));
    assert_eq!(status.partner_nodes.len(), 2);
    assert!(
        status
            .partner_nodes
            .iter()
            .all(|p| p.connected && p.match_index.is_some())
    );
    assert!(status.to_string().contains("has_quorum: true"));
    assert!(
        changes
            .lock()
            .expect("not poisoned")
            .contains(&(RaftState::Candidate, RaftState::Leader))
    );
    assert_eq!(
        *ready.lock().expect("not poisoned"),
        3,
        "on_ready fires once per node"
    );
}

/// A node cut off from both partners loses its quorum as of its next tick; the others keep it.
#[test]
fn isolation_loses_the_quorum() {
    let (network, nodes) = cluster(&conf(false));
    tick_until(&nodes, || nodes.iter().all(|n| n.has_quorum()));
    network.isolate(ADDRESSES[0]);
    for node in &nodes {
        node.do_tick(Duration::ZERO).expect("the node ticks");
    }
    assert!(!nodes[0].has_quorum());
    assert!(!nodes[0].is_node_connected(ADDRESSES[1]));
    assert!(nodes[1].has_quorum());
    assert!(nodes[1].is_node_connected(ADDRESSES[2]));
}

/// A second replicated type, used as a consumer and for code versions: `bump` has two
/// versions, and version 1 adds ten.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Versioned {
    value: i64,
}

const BUMP_V0: MethodSpec = MethodSpec {
    id: 0,
    name: "bump",
    version: 0,
    fingerprint: 10,
};
const BUMP_V1: MethodSpec = MethodSpec {
    id: 1,
    name: "bump",
    version: 1,
    fingerprint: 11,
};

impl ReplicatedState for Versioned {
    const NAME: &'static str = "Versioned";
}

impl ReplicatedMethods for Versioned {
    const METHODS: &'static [MethodSpec] = &[BUMP_V0, BUMP_V1];
    type Calls = VersionedCalls;

    fn apply(&mut self, id: u16, _args: &[u8]) -> Result<Vec<u8>, ApplyError> {
        self.value += match id {
            0 => 1,
            1 => 10,
            other => return Err(ApplyError::UnknownMethod(other)),
        };
        Ok(rmp_serde::to_vec(&self.value).expect("an i64 encodes"))
    }
}

struct VersionedCalls {
    caller: Caller,
}

impl From<Caller> for VersionedCalls {
    fn from(caller: Caller) -> Self {
        VersionedCalls { caller }
    }
}

impl VersionedCalls {
    fn bump(&self) -> Call<i64> {
        self.caller.call(&[BUMP_V0, BUMP_V1], &())
    }
}

/// Consumers replicate beside the main object, each in its own command space, and a handle
/// of the wrong type is refused.
#[test]
fn consumers_have_their_own_state() {
    let network = MemoryNetwork::new();
    let nodes: Vec<SyncObj<Counter>> = ADDRESSES
        .iter()
        .map(|&me| {
            let partners = ADDRESSES
                .iter()
                .filter(|&&a| a != me)
                .map(|&a| a.to_owned());
            let consumers = Consumers::new()
                .with(Versioned::default())
                .with(Counter::default());
            SyncObj::with_consumers(
                me,
                partners,
                Counter::default(),
                consumers,
                conf(true),
                network.endpoint(me),
            )
            .expect("a valid node")
        })
        .collect();
    let versioned = nodes[1]
        .consumer::<Versioned>(0)
        .expect("consumer 0 is a Versioned");
    let second = nodes[2]
        .consumer::<Counter>(1)
        .expect("consumer 1 is a Counter");
    assert!(
        nodes[0].consumer::<Counter>(0).is_none(),
        "consumer 0 is not a Counter"
    );
    assert_eq!(
        versioned.bump().wait_timeout(Duration::from_secs(10)),
        Ok(1)
    );
    assert_eq!(second.add(5).wait_timeout(Duration::from_secs(10)), Ok(5));
    assert_eq!(nodes[0].add(2).wait_timeout(Duration::from_secs(10)), Ok(2));
    settle(&nodes);
    for node in &nodes {
        assert_eq!(node.read().value, 2);
        assert_eq!(
            node.consumer::<Versioned>(0).expect("present").read().value,
            1
        );
        assert_eq!(
            node.consumer::<Counter>(1).expect("present").read().value,
            5
        );
    }
}

/// `set_code_version` is a replicated entry: every node switches to the new method version and
/// reports it, and versions outside the code's range are refused at once.
#[test]
fn code_version_switches_every_node() {
    let changes = Arc::new(Mutex::new(Vec::new()));
    let recorder = Arc::clone(&changes);
    let conf = builder(true)
        .on_code_version_changed(move |old, new| {
            recorder.lock().expect("not poisoned").push((old, new))
        })
        .build()
        .expect("a valid configuration");
    let network = MemoryNetwork::new();
    let nodes: Vec<SyncObj<Versioned>> = ADDRESSES
        .iter()
        .map(|&me| {
            let partners = ADDRESSES
                .iter()
                .filter(|&&a| a != me)
                .map(|&a| a.to_owned());
            SyncObj::with_transport(
                me,
                partners,
                Versioned::default(),
                conf.clone(),
                network.endpoint(me),
            )
            .expect("a valid node")
        })
        .collect();
    assert_eq!(nodes[0].bump().wait_timeout(Duration::from_secs(10)), Ok(1));
    assert_eq!(
        nodes[0]
            .set_code_version(2)
            .wait_timeout(Duration::from_secs(1)),
        Err(FailReason::VersionRefused {
            requested: 2,
            own: 1,
            enabled: 0
        })
    );
    assert_eq!(
        nodes[1]
            .set_code_version(1)
            .wait_timeout(Duration::from_secs(10)),
        Ok(())
    );
    assert_eq!(nodes[1].code_version(), 1);
    assert_eq!(
        nodes[1].bump().wait_timeout(Duration::from_secs(10)),
        Ok(11)
    );
    for node in &nodes {
        node.bump()
            .wait_timeout(Duration::from_secs(10))
            .expect("the call succeeds");
        assert_eq!(node.code_version(), 1);
        assert_eq!(node.status().enabled_code_version, 1);
    }
    assert_eq!(
        nodes[2]
            .set_code_version(0)
            .wait_timeout(Duration::from_secs(1)),
        Err(FailReason::VersionRefused {
            requested: 0,
            own: 1,
            enabled: 1
        })
    );
    assert_eq!(*changes.lock().expect("not poisoned"), vec![(0, 1); 3]);
}

/// The previous release of [`Versioned`]: it knows only version 0 of `bump`.
#[derive(Default, Serialize, Deserialize)]
struct VersionedOld {
    value: i64,
}

impl ReplicatedState for VersionedOld {
    const NAME: &'static str = "Versioned";
}

impl ReplicatedMethods for VersionedOld {
    const METHODS: &'static [MethodSpec] = &[BUMP_V0];
    type Calls = VersionedCalls;

    fn apply(&mut self, id: u16, _args: &[u8]) -> Result<Vec<u8>, ApplyError> {
        match id {
            0 => self.value += 1,
            other => return Err(ApplyError::UnknownMethod(other)),
        }
        Ok(rmp_serde::to_vec(&self.value).expect("an i64 encodes"))
    }
}

/// A node whose code lacks the version the cluster enabled stops applying at that entry and
/// says so in its status, rather than diverge; the upgraded nodes go on.
#[test]
fn old_code_stalls_at_a_new_code_version() {
    let (_network, new, old) = mixed_cluster(Versioned::default(), VersionedOld::default());
    assert_eq!(old.bump().wait_timeout(Duration::from_secs(10)), Ok(1));
    assert_eq!(
        new[0]
            .set_code_version(1)
            .wait_timeout(Duration::from_secs(10)),
        Ok(())
    );
    assert_eq!(new[0].bump().wait_timeout(Duration::from_secs(10)), Ok(11));
    // A node calls the version it has applied: wait until new[1] applied the version entry
    // too (on a loaded machine it may lag behind new[0]).
    let deadline = Instant::now() + Duration::from_secs(10);
    while new[1].code_version() != 1 {
        assert!(Instant::now() < deadline, "version 1 applied within 10 s");
        std::thread::yield_now();
    }
    assert_eq!(new[1].bump().wait_timeout(Duration::from_secs(10)), Ok(21));
    let stalled = old.bump().wait_timeout(Duration::from_millis(300));
    assert_eq!(
        stalled,
        Err(FailReason::Timeout),
        "the old node applies nothing past the version entry"
    );
    assert_eq!(old.status().stalled_at_code_version, Some(1));
    assert_eq!(old.read().value, 1);
}

/// The leader of `nodes`, once every node has caught up with one.
fn leader_index(nodes: &[SyncObj<Counter>]) -> usize {
    assert!(
        nodes.iter().all(|n| n.wait_ready(Duration::from_secs(10))),
        "a leader is elected"
    );
    nodes
        .iter()
        .position(|n| n.is_leader())
        .expect("one node leads")
}

/// Calls `add(n)`, retrying while the call was lost to a change of leader, as a client would.
fn add_retrying(node: &SyncObj<Counter>, n: i64) -> Result<i64, FailReason> {
    for _ in 0..20 {
        match node.add(n).wait_timeout(Duration::from_secs(10)) {
            Err(FailReason::LeaderChanged | FailReason::NotLeader | FailReason::Discarded) => {
                continue;
            }
            other => return other,
        }
    }
    Err(FailReason::LeaderChanged)
}

/// A call appended by a leader that is then cut off is replaced by the new leader's entries:
/// the caller learns `Discarded` once it rejoins.
#[test]
fn a_deposed_leaders_call_is_discarded() {
    let (network, nodes) = cluster(&conf(true));
    let old = leader_index(&nodes);
    network.isolate(ADDRESSES[old]);
    let (tx, rx) = std::sync::mpsc::channel();
    // The test may end before the call does; a closed channel is fine then.
    nodes[old].add(100).on_done(move |r| drop(tx.send(r)));
    let other = (old + 1) % 3;
    assert_eq!(
        add_retrying(&nodes[other], 1),
        Ok(1),
        "the majority goes on"
    );
    network.reconnect(ADDRESSES[old]);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the call completes"),
        Err(FailReason::Discarded)
    );
    assert_eq!(settle(&nodes), vec![1; 3]);
}

/// Ticks the nodes of `nodes` named by `which` until `outcome` has a value; fails the test
/// after 10 s of real time.
fn tick_some_until<R>(
    nodes: &[SyncObj<Counter>],
    which: &[usize],
    outcome: &std::sync::mpsc::Receiver<R>,
) -> R {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(value) = outcome.try_recv() {
            return value;
        }
        assert!(Instant::now() < deadline, "no outcome within 10 s");
        for &i in which {
            nodes[i]
                .do_tick(Duration::from_millis(1))
                .expect("the node ticks");
        }
    }
}

/// A manually ticked cluster with `conf`, every node caught up; returns the leader's index.
fn ready_manual_cluster(conf: &SyncObjConf) -> (MemoryNetwork, Vec<SyncObj<Counter>>, usize) {
    let (network, nodes) = cluster(conf);
    tick_until(&nodes, || nodes.iter().all(|n| n.is_ready()));
    let leader = nodes
        .iter()
        .position(|n| n.is_leader())
        .expect("one node leads");
    (network, nodes, leader)
}

/// A call forwarded to a leader that then went silent, before it answered, fails with
/// `LeaderChanged` when another node takes over — an unknown outcome: the old leader may have
/// placed it — instead of hanging.
#[test]
fn a_forwarded_call_fails_when_the_leader_changes() {
    let (network, nodes, old) = ready_manual_cluster(&conf(false));
    let follower = (old + 1) % 3;
    let (sender, outcome) = std::sync::mpsc::channel();
    nodes[follower]
        .add(5)
        .on_done(move |o| drop(sender.send(o)));
    // One iteration takes the call and forwards it: it is in the leader's inbox.
    nodes[follower]
        .do_tick(Duration::ZERO)
        .expect("the node ticks");
    network.isolate(ADDRESSES[old]);
    let others = [follower, (old + 2) % 3];
    let outcome = tick_some_until(&nodes, &others, &outcome);
    assert_eq!(outcome, Err(FailReason::LeaderChanged));
    assert_eq!(outcome.expect_err("it failed").effect(), Effect::Unknown);
}

/// Elections slow enough that a 5 ms call deadline always passes before a new leader appears:
/// without fast failover too, since isolating a node resets its links, and a follower would
/// then give up its leader and pre-vote at once.
fn slow_elections(auto_tick: bool) -> SyncObjConf {
    builder(auto_tick)
        .fast_failover(false)
        .call_timeout(Some(Duration::from_millis(5)))
        .raft_min_timeout(Duration::from_millis(500))
        .raft_max_timeout(Duration::from_millis(1000))
        .leader_fallback_timeout(Duration::from_millis(500))
        .connection_timeout(Duration::from_millis(1000))
        .build()
        .expect("a valid configuration")
}

/// A forwarded call whose answer does not come within `call_timeout` fails with `Timeout`.
#[test]
fn a_forwarded_call_times_out() {
    let (network, nodes, old) = ready_manual_cluster(&slow_elections(false));
    let follower = (old + 1) % 3;
    let (sender, outcome) = std::sync::mpsc::channel();
    nodes[follower]
        .add(5)
        .on_done(move |o| drop(sender.send(o)));
    nodes[follower]
        .do_tick(Duration::ZERO)
        .expect("the node ticks");
    network.isolate(ADDRESSES[old]);
    let outcome = tick_some_until(&nodes, &[follower], &outcome);
    assert_eq!(outcome, Err(FailReason::Timeout));
}

/// A follower whose link to the leader is down does not forward into the void: it holds the
/// call, and at its deadline fails it with `MissingLeader` — it never left the node.
#[test]
fn a_call_is_held_while_the_link_to_the_leader_is_down() {
    let (network, nodes, old) = ready_manual_cluster(&slow_elections(false));
    let follower = (old + 1) % 3;
    network.isolate(ADDRESSES[old]);
    tick_until(&nodes, || {
        !nodes[follower].is_node_connected(ADDRESSES[old])
    });
    assert_eq!(nodes[follower].leader().as_deref(), Some(ADDRESSES[old]));
    let (sender, outcome) = std::sync::mpsc::channel();
    nodes[follower]
        .add(5)
        .on_done(move |o| drop(sender.send(o)));
    let outcome = tick_some_until(&nodes, &[follower], &outcome);
    assert_eq!(outcome, Err(FailReason::MissingLeader));
    assert_eq!(outcome.expect_err("it failed").effect(), Effect::None);
}

/// `wait_ready` returns once the node caught up: on auto-ticked nodes by waiting, on a manually
/// ticked node by ticking it.
#[test]
fn wait_ready_on_auto_and_manual_nodes() {
    let (_network, nodes) = cluster(&conf(true));
    assert!(nodes.iter().all(|n| n.wait_ready(Duration::from_secs(10))));
    assert!(nodes[0].readonly_nodes().is_empty());
    let network = MemoryNetwork::new();
    let solo = SyncObj::with_transport(
        "solo",
        Vec::<String>::new(),
        Counter::default(),
        conf(false),
        network.endpoint("solo"),
    )
    .expect("a valid node");
    assert!(!solo.is_ready());
    assert!(solo.wait_ready(Duration::from_secs(10)));
}

/// A call forwarded to a node that stepped down (same term, no longer leader) fails with
/// `NotLeader`. Manual ticks let the test starve the follower while the leader loses its
/// quorum, so the follower still believes in it when it forwards.
#[test]
fn a_forward_to_a_deposed_leader_fails_with_not_leader() {
    let conf = builder(false)
        .raft_min_timeout(Duration::from_millis(2000))
        .raft_max_timeout(Duration::from_millis(3000))
        .leader_fallback_timeout(Duration::from_millis(100))
        .connection_timeout(Duration::from_millis(3000))
        .build()
        .expect("a valid configuration");
    let (_network, nodes) = cluster(&conf);
    tick_until(&nodes, || nodes.iter().all(|n| n.is_ready()));
    let leader = nodes
        .iter()
        .position(|n| n.is_leader())
        .expect("one node leads");
    let follower = (leader + 1) % 3;
    // Only the leader ticks: nobody answers it, and it steps down within its fallback timeout.
    tick_until(&nodes[leader..=leader], || !nodes[leader].is_leader());
    assert_eq!(
        nodes[leader].raft_current_term(),
        nodes[follower].raft_current_term()
    );
    let (tx, rx) = std::sync::mpsc::channel();
    nodes[follower].add(1).on_done(move |r| drop(tx.send(r)));
    let pair = [&nodes[follower], &nodes[leader]];
    let outcome = tick_pair_until(pair, || rx.try_recv().ok());
    assert_eq!(outcome, Err(FailReason::NotLeader));
}

/// Ticks two nodes until `done` returns a value, for at most 10 s.
fn tick_pair_until<T>(nodes: [&SyncObj<Counter>; 2], mut done: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = done() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "condition not reached within 10 s"
        );
        for node in nodes {
            node.do_tick(Duration::from_millis(1))
                .expect("the node ticks");
        }
    }
}

/// A `Counter` built from other code: its `add` has another signature (fingerprint).
#[derive(Default, Serialize, Deserialize)]
struct CounterOtherCode {
    value: i64,
}

impl ReplicatedState for CounterOtherCode {
    const NAME: &'static str = "Counter";
}

impl ReplicatedMethods for CounterOtherCode {
    const METHODS: &'static [MethodSpec] = &[
        MethodSpec {
            fingerprint: 999,
            ..ADD
        },
        BOOM,
    ];
    type Calls = CounterCalls;

    fn apply(&mut self, _id: u16, _args: &[u8]) -> Result<Vec<u8>, ApplyError> {
        self.value += 1000;
        Ok(rmp_serde::to_vec(&self.value).expect("an i64 encodes"))
    }
}

/// A node whose code has another signature for a method stops applying at the first such
/// command and says why, instead of running different code than the others.
#[test]
fn other_code_stalls_instead_of_diverging() {
    let (_network, same, other) = mixed_cluster(Counter::default(), CounterOtherCode::default());
    assert_eq!(add_retrying(&same[0], 5), Ok(5));
    assert_eq!(add_retrying(&same[1], 1), Ok(6));
    let stalled = other.add(1).wait_timeout(Duration::from_millis(300));
    assert!(
        stalled.is_err(),
        "the odd node applies nothing: {stalled:?}"
    );
    let status = other.status();
    assert!(
        status
            .stalled_on
            .as_deref()
            .is_some_and(|s| s.contains("another signature")),
        "{status}"
    );
    assert_eq!(other.read().value, 0);
}

/// Dropping the last handle of a node inside one of its own callbacks, on its tick thread,
/// shuts it down without the thread waiting for itself.
#[test]
fn dropping_a_node_in_its_own_callback_does_not_deadlock() {
    let network = MemoryNetwork::new();
    let node = SyncObj::with_transport(
        "solo",
        Vec::<String>::new(),
        Counter::default(),
        conf(true),
        network.endpoint("solo"),
    )
    .expect("a valid node");
    node.add(1)
        .wait_timeout(Duration::from_secs(10))
        .expect("the call succeeds");
    let node = Arc::new(Mutex::new(Some(node)));
    let holder = Arc::clone(&node);
    let (tx, rx) = std::sync::mpsc::channel();
    let call = node
        .lock()
        .expect("not poisoned")
        .as_ref()
        .expect("present")
        .add(1);
    call.on_done(move |_| {
        let last = holder.lock().expect("not poisoned").take();
        drop(last);
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the callback finished");
}

/// A three-node cluster whose first two nodes run one code (`A`) and the third another (`B`).
fn mixed_cluster<A: Replicated + Clone, B: Replicated>(
    a: A,
    b: B,
) -> (MemoryNetwork, Vec<SyncObj<A>>, SyncObj<B>) {
    let network = MemoryNetwork::new();
    let partners = |me: &str| {
        ADDRESSES
            .iter()
            .filter(|&&p| p != me)
            .map(|&p| p.to_owned())
            .collect::<Vec<_>>()
    };
    let start = |me: &str, state: A| {
        SyncObj::with_transport(me, partners(me), state, conf(true), network.endpoint(me))
            .expect("a valid node")
    };
    let first = vec![start(ADDRESSES[0], a.clone()), start(ADDRESSES[1], a)];
    let me = ADDRESSES[2];
    let odd = SyncObj::with_transport(me, partners(me), b, conf(true), network.endpoint(me))
        .expect("a valid node");
    (network, first, odd)
}

/// Frames that reach the node but hold no valid message, or come from outside the cluster,
/// are dropped, logged and counted in the status (over TCP the connection is dropped too).
#[test]
fn undecodable_messages_are_counted() {
    let network = MemoryNetwork::new();
    let conf = SyncObjConf::builder()
        .auto_tick(false)
        .build()
        .expect("a valid configuration");
    let node = SyncObj::with_transport(
        "a:1",
        ["b:2"],
        Counter::default(),
        conf,
        network.endpoint("a:1"),
    )
    .expect("a valid node");
    let mut partner = network.endpoint("b:2");
    let mut stranger = network.endpoint("z:9");
    let (to_a, stranger_to_a) = (partner.add_peer("a:1"), stranger.add_peer("a:1"));
    assert!(partner.send(to_a, bytes::Bytes::from_static(b"\xc1 not messagepack")));
    assert!(stranger.send(stranger_to_a, bytes::Bytes::from_static(b"hello")));
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.status().wire.bad_frames < 2 {
        assert!(Instant::now() < deadline, "both frames counted within 10 s");
        node.do_tick(Duration::from_millis(5))
            .expect("the node ticks");
    }
    assert_eq!(node.status().wire.bad_frames, 2);
}

/// A transport that panics inside the tick loop once told to: a failure of the node itself,
/// not of a replicated method.
struct PanickingTransport {
    inner: syncobj_core::driver::MemoryTransport,
    armed: Arc<std::sync::atomic::AtomicBool>,
}

impl Transport for PanickingTransport {
    fn add_peer(&mut self, address: &str) -> syncobj_net::PeerId {
        self.inner.add_peer(address)
    }

    fn send(&mut self, to: syncobj_net::PeerId, frame: bytes::Bytes) -> bool {
        self.inner.send(to, frame)
    }

    fn poll(&mut self, timeout: Duration, events: &mut Vec<syncobj_net::TransportEvent>) {
        assert!(
            !self.armed.load(std::sync::atomic::Ordering::Acquire),
            "injected failure inside the loop"
        );
        self.inner.poll(timeout, events);
    }

    fn waker(&self) -> Arc<dyn syncobj_net::Wake> {
        self.inner.waker()
    }
}

/// A node of two whose partner never comes, with a transport that panics once armed.
fn doomed_node(auto_tick: bool) -> (SyncObj<Counter>, Arc<std::sync::atomic::AtomicBool>) {
    let network = MemoryNetwork::new();
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let transport = PanickingTransport {
        inner: network.endpoint(ADDRESSES[0]),
        armed: Arc::clone(&armed),
    };
    let node = SyncObj::with_transport(
        ADDRESSES[0],
        [ADDRESSES[1]],
        Counter::default(),
        conf(auto_tick),
        transport,
    )
    .expect("a valid node");
    (node, armed)
}

fn is_node_failure(outcome: &Result<i64, FailReason>) -> bool {
    matches!(outcome, Err(FailReason::NodeFailed(m)) if m.contains("injected failure"))
}

/// A panic inside the tick loop (not in a method) ends every pending call — waited for, given
/// a callback, or awaited — with `NodeFailed` and the panic's message; later calls fail at
/// once, and the status says why.
#[test]
fn a_panic_in_the_loop_ends_every_pending_call() {
    let (node, armed) = doomed_node(true);
    let node = Arc::new(node);
    // No leader can be elected without the partner: the calls wait in the node.
    let (sender, waited) = std::sync::mpsc::channel();
    {
        let node = Arc::clone(&node);
        std::thread::spawn(move || sender.send(node.add(1).wait()));
    }
    let (sender, callback_outcome) = std::sync::mpsc::channel();
    node.add(2).on_done(move |outcome| {
        let _ = sender.send(outcome);
    });
    let awaited = node.add(3);
    armed.store(true, std::sync::atomic::Ordering::Release);
    node.force_log_compaction(); // wakes the loop
    let deadline = Duration::from_secs(10);
    let outcome = waited.recv_timeout(deadline).expect("wait() returns");
    assert!(is_node_failure(&outcome), "{outcome:?}");
    let outcome = callback_outcome
        .recv_timeout(deadline)
        .expect("the callback runs");
    assert!(is_node_failure(&outcome), "{outcome:?}");
    assert!(is_node_failure(&block_on(awaited)));
    assert!(is_node_failure(&node.add(4).wait_timeout(deadline)));
    let halted = node.status().halted.expect("the status says why");
    assert!(halted.contains("injected failure"), "{halted}");
}

/// On a manually ticked node the panic surfaces as `do_tick`'s error, and the calls end too.
#[test]
fn a_panic_in_a_manual_tick_ends_the_node() {
    let (node, armed) = doomed_node(false);
    let pending = node.add(1);
    node.do_tick(Duration::ZERO).expect("the node ticks");
    armed.store(true, std::sync::atomic::Ordering::Release);
    match node.do_tick(Duration::ZERO) {
        Err(syncobj_core::driver::TickError::Failed(FailReason::NodeFailed(message))) => {
            assert!(message.contains("injected failure"), "{message}")
        }
        other => panic!("expected the loop's failure, got {other:?}"),
    }
    assert!(is_node_failure(
        &pending.wait_timeout(Duration::from_secs(10))
    ));
    assert!(matches!(
        node.do_tick(Duration::ZERO),
        Err(syncobj_core::driver::TickError::Failed(_))
    ));
}

/// `do_tick` on a node that ticks itself does nothing and says so at once; once the node is
/// stopped, it says that.
#[test]
fn do_tick_on_an_auto_ticked_node_is_an_error() {
    let (_network, nodes) = cluster(&conf(true));
    assert_eq!(
        nodes[0].do_tick(Duration::from_secs(5)),
        Err(syncobj_core::driver::TickError::AutoTick)
    );
    let (_network, manual) = cluster(&conf(false));
    manual[0].destroy();
    assert_eq!(
        manual[0].do_tick(Duration::ZERO),
        Err(syncobj_core::driver::TickError::Stopped)
    );
}

/// With 1 of 3 nodes up no leader is ever known: a plain `wait()` still ends, once
/// `call_timeout` has passed, with `MissingLeader` (the call never left the node).
#[test]
fn a_call_without_a_leader_ends_at_its_timeout() {
    let network = MemoryNetwork::new();
    let conf = builder(true)
        .call_timeout(Some(Duration::from_millis(300)))
        .build()
        .expect("a valid configuration");
    let node = SyncObj::with_transport(
        ADDRESSES[0],
        ADDRESSES,
        Counter::default(),
        conf,
        network.endpoint(ADDRESSES[0]),
    )
    .expect("a valid node");
    let node = Arc::new(node);
    let (sender, waited) = std::sync::mpsc::channel();
    let caller = Arc::clone(&node);
    std::thread::spawn(move || sender.send(caller.add(1).wait()));
    let outcome = waited
        .recv_timeout(Duration::from_secs(10))
        .expect("wait() returns");
    assert_eq!(outcome, Err(FailReason::MissingLeader));
}
