//! Calls through the `SyncObj` driver on in-process clusters: how many calls a node applies per
//! second when callers pipeline them, and how long one call takes when each waits for the one
//! before. The replicated type is written by hand, as in `tests/driver.rs`.
//!
//! Run with `cargo bench -p syncobj-core --bench calls`. Each cluster is built once per
//! benchmark, outside the measured loop, and has elected its leader before measuring starts.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput, measurement::WallTime};
use serde::{Deserialize, Serialize};
use syncobj_core::conf::SyncObjConf;
use syncobj_core::driver::{MemoryNetwork, SyncObj};
use syncobj_core::object::{
    ApplyError, Call, Caller, MethodSpec, ReplicatedMethods, ReplicatedState,
};

/// Calls per measured batch in the throughput benchmarks.
const BATCH_CALLS: u64 = 1_000;

/// The longest a benchmark waits for one call (or one batch) before it gives up.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

const ADDRESSES: [&str; 3] = ["node-a", "node-b", "node-c"];

/// A counter, with the trait implementations the macros would generate.
#[derive(Default, Serialize, Deserialize)]
struct Counter {
    value: i64,
}

const ADD: MethodSpec = MethodSpec {
    id: 0,
    name: "add",
    version: 0,
    fingerprint: 1,
};

impl ReplicatedState for Counter {
    const NAME: &'static str = "Counter";
}

impl ReplicatedMethods for Counter {
    const METHODS: &'static [MethodSpec] = &[ADD];
    type Calls = CounterCalls;

    fn apply(&mut self, id: u16, args: &[u8]) -> Result<Vec<u8>, ApplyError> {
        if id != ADD.id {
            return Err(ApplyError::UnknownMethod(id));
        }
        let (n,): (i64,) = rmp_serde::from_slice(args).map_err(|e| ApplyError::BadArguments {
            method: ADD.name,
            reason: e.to_string(),
        })?;
        self.value += n;
        Ok(rmp_serde::to_vec(&self.value).expect("an i64 encodes"))
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
}

/// Fast timers, as in the driver tests, so the first election takes tens of milliseconds.
fn conf() -> SyncObjConf {
    SyncObjConf::builder()
        .auto_tick(true)
        .auto_tick_period(Duration::from_millis(5))
        .append_entries_period(Duration::from_millis(10))
        .raft_min_timeout(Duration::from_millis(50))
        .raft_max_timeout(Duration::from_millis(100))
        .leader_fallback_timeout(Duration::from_millis(50))
        .connection_timeout(Duration::from_millis(100))
        .build()
        .expect("a valid configuration")
}

/// A one-node cluster whose node has applied a first call (so it leads).
fn single_node() -> (MemoryNetwork, SyncObj<Counter>) {
    let network = MemoryNetwork::new();
    let node = SyncObj::with_transport(
        "solo",
        Vec::<String>::new(),
        Counter::default(),
        conf(),
        network.endpoint("solo"),
    )
    .expect("the bench configuration is valid");
    node.add(0)
        .wait_timeout(CALL_TIMEOUT)
        .expect("a single node elects itself and applies a call");
    (network, node)
}

/// A three-node cluster in which every node has applied a call of its own, so a leader is
/// elected and every follower knows it.
fn three_nodes() -> (MemoryNetwork, Vec<SyncObj<Counter>>) {
    let network = MemoryNetwork::new();
    let nodes: Vec<SyncObj<Counter>> = ADDRESSES
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
                conf(),
                network.endpoint(me),
            )
            .expect("the bench configuration is valid")
        })
        .collect();
    for node in &nodes {
        node.add(0)
            .wait_timeout(CALL_TIMEOUT)
            .expect("the cluster elects a leader and applies a call");
    }
    (network, nodes)
}

/// Makes batches of `BATCH_CALLS` calls on one node, detaching all but the last and waiting
/// for that one. Calls made on one node are placed in the order they were made, so the last
/// one's completion means the whole batch is applied there.
struct Batches<'a> {
    node: &'a SyncObj<Counter>,
    /// The counter after this node's previous batch: with no other caller in between, the next
    /// batch must move it by exactly `BATCH_CALLS`, which proves no detached call failed.
    last: Option<i64>,
}

impl<'a> Batches<'a> {
    fn new(node: &'a SyncObj<Counter>) -> Batches<'a> {
        Batches { node, last: None }
    }

    fn run(&mut self) {
        for _ in 1..BATCH_CALLS {
            self.node.add(1).detach();
        }
        let after = self
            .node
            .add(1)
            .wait_timeout(CALL_TIMEOUT)
            .expect("the last call of a batch succeeds");
        if let Some(before) = self.last {
            let applied = u64::try_from(after - before).expect("the counter only grows");
            assert_eq!(applied, BATCH_CALLS, "every call of the batch was applied");
        }
        self.last = Some(black_box(after));
    }
}

/// A group whose every iteration takes about a millisecond: few samples, all of equal length.
fn slow_group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group
}

fn bench_single_node(c: &mut Criterion) {
    let (_network, node) = single_node();
    let mut group = slow_group(c, "single_node");
    group.throughput(Throughput::Elements(BATCH_CALLS));
    let mut batches = Batches::new(&node);
    group.bench_function("add", |b| b.iter(|| batches.run()));
    group.throughput(Throughput::Elements(1));
    group.sampling_mode(SamplingMode::Auto).sample_size(20);
    group.bench_function("add_wait_each", |b| {
        b.iter(|| {
            node.add(black_box(1))
                .wait_timeout(CALL_TIMEOUT)
                .expect("a call on a single node succeeds")
        });
    });
    group.finish();
}

fn bench_three_nodes(c: &mut Criterion) {
    let (_network, nodes) = three_nodes();
    let leader = nodes
        .iter()
        .position(SyncObj::is_leader)
        .expect("one node leads once every node has applied a call");
    let follower = (leader + 1) % nodes.len();
    let mut group = slow_group(c, "three_nodes");
    group.throughput(Throughput::Elements(BATCH_CALLS));
    let mut on_leader = Batches::new(&nodes[leader]);
    group.bench_function("add_on_leader", |b| b.iter(|| on_leader.run()));
    let mut on_follower = Batches::new(&nodes[follower]);
    group.bench_function("add_on_follower", |b| b.iter(|| on_follower.run()));
    group.finish();
}

criterion::criterion_group!(benches, bench_single_node, bench_three_nodes);
criterion::criterion_main!(benches);
