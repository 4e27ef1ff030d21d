//! The cost of one call on the thread that makes it: encoding the command, creating the call,
//! queueing it, and completing it, without Raft.
//!
//! Run with `cargo bench -p syncobj-core --bench call_path`. Two groups:
//!
//! - `call_queue`: the public [`Caller`] / [`Call`] / [`Completion`] on a queue built here the
//!   way the driver's was (a bounded crossbeam channel, `try_send`, a full queue failing the
//!   call with `QueueFull`; the driver's own is now a counter in front of an unbounded
//!   channel, so that its memory follows what is queued). Each iteration makes `BATCH` calls, then drains the queue and
//!   completes every call with an encoded result, as the tick loop does after applying; the
//!   figure is per call. Variants: detached calls, calls with an `on_done` callback, calls
//!   waited for (once complete). The waker does nothing here.
//! - `call_submit`: detached calls on a real, manually ticked, single-node `SyncObj`: the
//!   measured part is only the submitting loop (`node.add(1).detach()`, through the driver's
//!   own submit path and waker); the node then ticks, outside the measurement, until it has
//!   applied the batch. Over the in-memory transport and over TCP (whose waker is an eventfd).

use std::hint::black_box;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde::{Deserialize, Serialize};
use syncobj_core::conf::SyncObjConf;
use syncobj_core::driver::{MemoryNetwork, SyncObj};
use syncobj_core::object::{
    ApplyError, Call, Caller, Completion, FailReason, MethodSpec, ReplicatedMethods,
    ReplicatedState, Submit, TickHelp,
};
use syncobj_net::Wake;

/// Calls per measured iteration.
const BATCH: u64 = 1_000;

/// The bench queue's capacity: the driver's default `commands_queue_size`.
const QUEUE_CAPACITY: usize = 100_000;

/// The longest the ticking loop runs before it gives up on a batch.
const APPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The payload of every call: 10 bytes, as in the burst's 10 B row.
const PAYLOAD: [u8; 10] = *b"0123456789";

const PUT: MethodSpec = MethodSpec {
    id: 0,
    name: "put",
    version: 0,
    fingerprint: 1,
};

/// The burst's state machine, written by hand (the macros live in the `syncobj` crate): a
/// count of calls and of payload bytes.
#[derive(Default, Serialize, Deserialize)]
struct Tally {
    count: u64,
    bytes: u64,
}

impl ReplicatedState for Tally {
    const NAME: &'static str = "Tally";
}

impl ReplicatedMethods for Tally {
    const METHODS: &'static [MethodSpec] = &[PUT];
    type Calls = TallyCalls;

    fn apply(&mut self, id: u16, args: &[u8]) -> Result<Vec<u8>, ApplyError> {
        if id != PUT.id {
            return Err(ApplyError::UnknownMethod(id));
        }
        let (payload,): (Bytes,) =
            rmp_serde::from_slice(args).map_err(|e| ApplyError::BadArguments {
                method: PUT.name,
                reason: e.to_string(),
            })?;
        self.count += 1;
        self.bytes += payload.len() as u64;
        Ok(rmp_serde::to_vec(&self.count).expect("a u64 encodes"))
    }
}

struct TallyCalls {
    caller: Caller,
}

impl From<Caller> for TallyCalls {
    fn from(caller: Caller) -> Self {
        TallyCalls { caller }
    }
}

impl TallyCalls {
    fn put(&self, payload: &Bytes) -> Call<u64> {
        self.caller.call(&[PUT], &(payload,))
    }
}

/// A waker that does nothing: the queue's cost alone.
struct NoWake;

impl Wake for NoWake {
    fn wake(&self) {}
}

/// The driver's queue, rebuilt from public parts: a bounded channel of encoded commands and
/// their completions, and a waker for the loop that drains it.
struct BenchQueue {
    sender: Sender<(Bytes, Completion)>,
    waker: Arc<dyn Wake>,
}

impl Submit for BenchQueue {
    fn submit(&self, command: Bytes, completion: Completion) {
        match self.sender.try_send((command, completion)) {
            Ok(()) => self.waker.wake(),
            Err(TrySendError::Full((_, completion))) => {
                completion.complete(Err(FailReason::QueueFull));
            }
            Err(TrySendError::Disconnected((_, completion))) => {
                completion.complete(Err(FailReason::Shutdown));
            }
        }
    }

    fn enabled_code_version(&self) -> u32 {
        0
    }

    fn help_while_waiting(&self, _max_wait: Duration) -> TickHelp {
        TickHelp::TickThreadRuns
    }
}

/// A caller on a bench queue, and the queue's receiving end.
fn bench_caller(waker: Arc<dyn Wake>) -> (Caller, Receiver<(Bytes, Completion)>) {
    let (sender, receiver) = crossbeam_channel::bounded(QUEUE_CAPACITY);
    let submit: Arc<dyn Submit> = Arc::new(BenchQueue { sender, waker });
    (Caller::new(submit, 0), receiver)
}

/// Drains the queue and completes every call with the encoded result `n`, as the tick loop
/// does once it applied the command. Returns how many it completed.
fn complete_all(receiver: &Receiver<(Bytes, Completion)>, result: &mut u64) -> u64 {
    let mut completed = 0;
    while let Ok((command, completion)) = receiver.try_recv() {
        black_box(&command);
        *result += 1;
        let encoded = rmp_serde::to_vec(&*result).expect("a u64 encodes");
        completion.complete(Ok(encoded));
        completed += 1;
    }
    completed
}

fn quick_group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    group
}

fn bench_queue(c: &mut Criterion) {
    let payload = Bytes::from_static(&PAYLOAD);
    let mut group = quick_group(c, "call_queue");
    group.throughput(Throughput::Elements(BATCH));

    let (caller, receiver) = bench_caller(Arc::new(NoWake));
    let calls = TallyCalls::from(caller);
    let mut result = 0;
    group.bench_function("detach", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                calls.put(&payload).detach();
            }
            assert_eq!(complete_all(&receiver, &mut result), BATCH);
        });
    });

    let done = Arc::new(AtomicU64::new(0));
    group.bench_function("on_done", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                let done = Arc::clone(&done);
                calls.put(&payload).on_done(move |outcome| {
                    if let Ok(n) = outcome {
                        done.store(n, Ordering::Relaxed);
                    }
                });
            }
            assert_eq!(complete_all(&receiver, &mut result), BATCH);
        });
    });
    black_box(done.load(Ordering::Relaxed));

    let mut pending = Vec::with_capacity(BATCH as usize);
    group.bench_function("wait_after_complete", |b| {
        b.iter(|| {
            pending.extend((0..BATCH).map(|_| calls.put(&payload)));
            assert_eq!(complete_all(&receiver, &mut result), BATCH);
            for call in pending.drain(..) {
                black_box(call.wait().expect("a completed call has its result"));
            }
        });
    });

    group.finish();
}

/// A loopback address with a port nothing listens on right now.
fn free_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port is free");
    let address = listener
        .local_addr()
        .expect("a bound listener has an address");
    address.to_string()
}

fn manual_conf() -> SyncObjConf {
    SyncObjConf::builder()
        .auto_tick(false)
        .append_entries_period(Duration::from_millis(10))
        .raft_min_timeout(Duration::from_millis(50))
        .raft_max_timeout(Duration::from_millis(100))
        .build()
        .expect("a valid configuration")
}

/// Ticks `node` until its state counts `target` calls.
fn tick_until_applied(node: &SyncObj<Tally>, target: u64) {
    let deadline = Instant::now() + APPLY_TIMEOUT;
    while node.read().count < target {
        assert!(
            Instant::now() < deadline,
            "the node applies the batch in time"
        );
        node.do_tick(Duration::from_millis(1))
            .expect("a manually ticked node ticks");
    }
}

/// Measures `BATCH` detached calls on `node`; ticking it afterwards is not measured.
fn bench_node_submit(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, node: &SyncObj<Tally>) {
    let payload = Bytes::from_static(&PAYLOAD);
    tick_until_applied(node, 0);
    node.put(&payload)
        .wait_timeout(APPLY_TIMEOUT)
        .expect("a single node elects itself and applies a call");
    group.bench_function(name, |b| {
        b.iter_custom(|iterations| {
            let mut measured = Duration::ZERO;
            for _ in 0..iterations {
                let target = node.read().count + BATCH;
                let start = Instant::now();
                for _ in 0..BATCH {
                    node.put(&payload).detach();
                }
                measured += start.elapsed();
                tick_until_applied(node, target);
            }
            measured
        });
    });
}

fn bench_submit(c: &mut Criterion) {
    let mut group = quick_group(c, "call_submit");
    group.throughput(Throughput::Elements(BATCH));

    let network = MemoryNetwork::new();
    let node = SyncObj::with_transport(
        "solo",
        Vec::<String>::new(),
        Tally::default(),
        manual_conf(),
        network.endpoint("solo"),
    )
    .expect("the bench configuration is valid");
    bench_node_submit(&mut group, "memory_node", &node);
    node.destroy();

    let address = free_address();
    let node = SyncObj::new(
        &address,
        Vec::<String>::new(),
        Tally::default(),
        manual_conf(),
    )
    .expect("a loopback node starts");
    bench_node_submit(&mut group, "tcp_node", &node);
    node.destroy();
    group.finish();
}

criterion::criterion_group!(benches, bench_queue, bench_submit);
criterion::criterion_main!(benches);
