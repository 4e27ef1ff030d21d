//! The Raft core's cost per batch, on a three-node cluster driven in this process with
//! virtual time (nothing is sent, written or applied for real).
//!
//! Run with `cargo bench -p syncobj-raft --bench step`. Groups, with commands of 10 bytes:
//!
//! - `raft_leader`: the leader proposes a batch of 1, 64 or 1024 commands, drains its
//!   [`Ready`] (the entries to persist and the appends to both followers) and is told they are
//!   persisted. The followers' answers, the commit and the apply happen after each measured
//!   batch, outside the measurement, so every batch starts from the same steady state.
//! - `raft_follower`: a follower steps an `AppendEntries` of 64 or 1024 commands that also
//!   commits the previous batch, drains its `Ready`, is told the entries are persisted, and
//!   drains the `Ready` that follows (its acknowledgement and the committed entries to apply).
//!   Building the message is not measured.
//!
//! The log is compacted outside the measurement so that it stays short. The throughput is in
//! entries.

use std::hint::black_box;
use std::time::{Duration, Instant as WallInstant};

use bytes::Bytes;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput, measurement::WallTime};
use syncobj_raft::{
    AppendEntries, Entry, EntryKind, Envelope, Instant, LogIndex, Membership, Message, NodeId,
    RaftConfig, RaftNode, Ready, Restored,
};

/// The log length above which the nodes compact (outside the measurement).
const LOG_LEN_MAX: usize = 50_000;

/// The commands: 10 bytes, as in the burst's 10 B row.
const COMMAND: &[u8] = b"0123456789";

/// Three nodes, numbered 1 to 3, at index `id - 1`.
struct Cluster {
    nodes: Vec<RaftNode>,
    now: Instant,
}

impl Cluster {
    /// A cluster in which node 1 leads and every node holds its no-op, committed and applied.
    fn with_leader() -> Cluster {
        let ids = [NodeId(1), NodeId(2), NodeId(3)];
        let nodes = ids
            .iter()
            .map(|&id| {
                let config = RaftConfig {
                    seed: id.0,
                    ..RaftConfig::default()
                };
                RaftNode::new(
                    id,
                    Membership::new(ids, []),
                    config,
                    Restored::default(),
                    Instant::ZERO,
                )
                .expect("a valid three-node cluster")
            })
            .collect();
        let mut cluster = Cluster {
            nodes,
            now: Instant::ZERO,
        };
        // Only node 1's timers run: it campaigns and wins.
        for _ in 0..100 {
            if cluster.nodes[0].is_leader() {
                break;
            }
            cluster.now = cluster.nodes[0]
                .next_deadline()
                .expect("a voter has a timer");
            cluster.nodes[0].tick(cluster.now);
            cluster.settle();
        }
        assert!(cluster.nodes[0].is_leader(), "node 1 leads");
        cluster.settle();
        cluster
    }

    /// Drains every node's `Ready`, persisting at once, and delivers every message until
    /// nothing moves.
    fn settle(&mut self) {
        let mut in_flight: Vec<Envelope> = Vec::new();
        loop {
            for node in &mut self.nodes {
                while node.has_ready() {
                    in_flight.extend(drain(node));
                }
            }
            if in_flight.is_empty() {
                return;
            }
            for envelope in in_flight.drain(..) {
                let to = usize::try_from(envelope.to.0 - 1).expect("a small id");
                // A message the node refuses only costs this round.
                let _ = self.nodes[to].step(envelope, self.now);
            }
        }
    }

    /// Compacts every node's log up to what it applied once the leader's log is long.
    fn compact(&mut self) {
        if self.nodes[0].log_len() < LOG_LEN_MAX {
            return;
        }
        for node in &mut self.nodes {
            let applied = node.applied_index();
            node.compact(applied).expect("an applied prefix compacts");
        }
    }
}

/// One `Ready` of `node`, persisted at once; returns every message it sends.
fn drain(node: &mut RaftNode) -> Vec<Envelope> {
    let ready: Ready = node.ready();
    node.on_persisted(ready.ack());
    let mut messages = ready.messages;
    messages.extend(ready.persisted_messages);
    messages
}

fn quick_group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    group
}

fn bench_leader(c: &mut Criterion) {
    let command = Bytes::from_static(COMMAND);
    let mut group = quick_group(c, "raft_leader");
    for count in [1u64, 64, 1024] {
        let mut cluster = Cluster::with_leader();
        group.throughput(Throughput::Elements(count));
        group.bench_function(BenchmarkId::new("propose_ready", count), |b| {
            b.iter_custom(|iterations| {
                let mut measured = Duration::ZERO;
                for _ in 0..iterations {
                    let now = cluster.now;
                    let leader = &mut cluster.nodes[0];
                    let start = WallInstant::now();
                    for _ in 0..count {
                        leader
                            .propose(command.clone(), now)
                            .expect("the leader takes the command");
                    }
                    let ready = leader.ready();
                    leader.on_persisted(ready.ack());
                    measured += start.elapsed();
                    let mut messages = ready.messages;
                    messages.extend(ready.persisted_messages);
                    assert!(!messages.is_empty(), "the leader sends the entries");
                    for envelope in messages {
                        let to = usize::try_from(envelope.to.0 - 1).expect("a small id");
                        cluster.nodes[to]
                            .step(envelope, now)
                            .expect("a follower takes the append");
                    }
                    cluster.settle();
                    cluster.compact();
                }
                measured
            });
        });
    }
    group.finish();
}

fn bench_follower(c: &mut Criterion) {
    let command = Bytes::from_static(COMMAND);
    let mut group = quick_group(c, "raft_follower");
    for count in [64u64, 1024] {
        let mut cluster = Cluster::with_leader();
        let term = cluster.nodes[0].term();
        let leader_id = cluster.nodes[0].id();
        group.throughput(Throughput::Elements(count));
        group.bench_function(BenchmarkId::new("step_append_ready", count), |b| {
            b.iter_custom(|iterations| {
                let mut measured = Duration::ZERO;
                for _ in 0..iterations {
                    let now = cluster.now;
                    let follower = &mut cluster.nodes[1];
                    let prev = follower.last_index();
                    let entries = (1..=count)
                        .map(|i| Entry {
                            index: LogIndex(prev.0 + i),
                            term,
                            kind: EntryKind::Command,
                            data: command.clone(),
                        })
                        .collect();
                    let envelope = Envelope {
                        from: leader_id,
                        to: follower.id(),
                        message: Message::AppendEntries(AppendEntries {
                            term,
                            prev_log_index: prev,
                            prev_log_term: term,
                            entries,
                            leader_commit: prev,
                        }),
                    };
                    let start = WallInstant::now();
                    follower
                        .step(envelope, now)
                        .expect("the follower takes the append");
                    let mut answered = false;
                    while follower.has_ready() {
                        let ready = follower.ready();
                        follower.on_persisted(ready.ack());
                        answered |= !ready.persisted_messages.is_empty();
                        drop(black_box(ready));
                    }
                    measured += start.elapsed();
                    assert!(answered, "the follower acknowledges the append");
                    if follower.log_len() > LOG_LEN_MAX {
                        let applied = follower.applied_index();
                        follower
                            .compact(applied)
                            .expect("an applied prefix compacts");
                    }
                }
                measured
            });
        });
    }
    group.finish();
}

criterion::criterion_group!(benches, bench_leader, bench_follower);
criterion::criterion_main!(benches);
