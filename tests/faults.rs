//! Faults a user injects in an in-process cluster: partitions, loss and delay on a
//! `MemoryNetwork`, crashes and restarts on simulated disks; and a user's object checked
//! linearizable by the testkit under all of them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock, mpsc};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use syncobj::prelude::*;
use syncobj::testkit::{
    Cut, Delay, KvInput, KvMap, KvOutput, Recorder, Schedule, SimDisk, Verdict, check,
};
use syncobj::{FsyncPolicy, SyncObjConfBuilder};

/// The user's object: a map from names to numbers.
#[derive(Default, Serialize, Deserialize, Replicated)]
struct Store {
    entries: BTreeMap<String, i64>,
}

#[replicated]
impl Store {
    /// Sets `key` to `value`; returns the value it replaced.
    #[replicated]
    fn put(&mut self, key: String, value: i64) -> Option<i64> {
        self.entries.insert(key, value)
    }

    /// Reads `key` through the log, so that the read is linearizable.
    #[replicated]
    fn get(&mut self, key: String) -> Option<i64> {
        self.entries.get(&key).copied()
    }
}

const NODES: [&str; 3] = ["a", "b", "c"];

/// Timers short enough for a quick test, loose enough for a loaded machine.
fn fast() -> SyncObjConfBuilder {
    SyncObjConf::builder()
        .append_entries_period(Duration::from_millis(20))
        .raft_min_timeout(Duration::from_millis(150))
        .raft_max_timeout(Duration::from_millis(300))
        .leader_fallback_timeout(Duration::from_millis(150))
}

/// Node `i` of the cluster on `network`, its journal on `disk`.
fn start(network: &MemoryNetwork, i: usize, disk: &SimDisk) -> SyncObj<Store> {
    SyncObj::builder(NODES[i])
        .partners(NODES)
        .configure(|_| fast().journal_fsync(FsyncPolicy::Always))
        .sim_disk(disk.clone())
        .memory(network)
        .start(Store::default())
        .expect("the node starts")
}

/// Waits until one of `nodes` leads, for up to 10 s; its index.
fn leader(nodes: &[Option<SyncObj<Store>>]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let leading = nodes
            .iter()
            .position(|n| n.as_ref().is_some_and(|n| n.is_leader()));
        if let Some(i) = leading {
            return i;
        }
        assert!(Instant::now() < deadline, "no leader within 10 s");
        // A call is an event to wait on: it completes (or fails) once a leader is known.
        if let Some(node) = nodes.iter().flatten().next() {
            let _ = node
                .get("x".into())
                .wait_timeout(Duration::from_millis(100));
        }
    }
}

/// Calls `put` on `node`, retrying failures that prove the call was never applied.
fn put(node: &SyncObj<Store>, key: &str, value: i64) -> Result<Option<i64>, FailReason> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match node
            .put(key.into(), value)
            .wait_timeout(Duration::from_secs(5))
        {
            Err(reason) if reason.effect() == Effect::None && Instant::now() < deadline => {}
            other => return other,
        }
    }
}

/// Reads `key` through the log on `node`, retrying until it succeeds (10 s at most).
fn get(node: &SyncObj<Store>, key: &str) -> Option<i64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match node.get(key.into()).wait_timeout(Duration::from_secs(2)) {
            Ok(value) => return value,
            Err(reason) => assert!(Instant::now() < deadline, "{key} unread: {reason}"),
        }
    }
}

/// A crashed node loses what its simulated disk did not sync: with `fsync = never`, a lone
/// node acknowledges writes that a crash then takes (for some seed of the disk; which writes
/// survive is the disk's draw).
#[test]
fn a_crash_loses_unsynced_writes_on_a_simulated_disk() {
    const WRITES: i64 = 20;
    let mut lost_some = false;
    for seed in 1..=6 {
        let network = MemoryNetwork::new();
        let disk = SimDisk::new(seed);
        let lone = |disk: &SimDisk| {
            SyncObj::builder("a")
                .configure(|_| fast().journal_fsync(FsyncPolicy::Never))
                .sim_disk(disk.clone())
                .memory(&network)
                .start(Store::default())
                .expect("the node starts")
        };
        let node = lone(&disk);
        for value in 1..=WRITES {
            put(&node, &format!("k{value}"), value).expect("acknowledged");
        }
        node.crash();
        let node = lone(&disk);
        let kept = (1..=WRITES)
            .filter(|v| get(&node, &format!("k{v}")) == Some(*v))
            .count();
        // What survives is a prefix of what was written.
        for value in 1..=kept as i64 {
            assert_eq!(get(&node, &format!("k{value}")), Some(value), "seed {seed}");
        }
        lost_some |= kept < WRITES as usize;
        node.crash();
    }
    assert!(lost_some, "no seed of the disk lost an unsynced write");
}

/// With `fsync = always`, every acknowledged write survives the crash of the whole cluster,
/// disks included, and the restarted nodes agree on it.
#[test]
fn a_restarted_cluster_keeps_every_acknowledged_write() {
    let network = MemoryNetwork::new();
    let disks = [1, 2, 3].map(SimDisk::new);
    let mut nodes: Vec<_> = (0..3)
        .map(|i| Some(start(&network, i, &disks[i])))
        .collect();
    let first = leader(&nodes);
    let acknowledged: Vec<i64> = (0..20)
        .filter(|&v| put(nodes[first].as_ref().expect("running"), &format!("k{v}"), v).is_ok())
        .collect();
    assert!(!acknowledged.is_empty());
    for node in &mut nodes {
        node.take().expect("running").crash();
    }
    let nodes: Vec<_> = (0..3)
        .map(|i| Some(start(&network, i, &disks[i])))
        .collect();
    for node in nodes.iter().flatten() {
        for &v in &acknowledged {
            assert_eq!(get(node, &format!("k{v}")), Some(v), "{}", node.self_node());
        }
    }
}

/// A crashed node's peers see its link go down, and a call it held fails without promising
/// it was never applied.
#[test]
fn a_crash_fails_pending_calls_and_drops_links() {
    let network = MemoryNetwork::new();
    let disks = [4, 5, 6].map(SimDisk::new);
    let mut nodes: Vec<_> = (0..3)
        .map(|i| Some(start(&network, i, &disks[i])))
        .collect();
    let first = leader(&nodes);
    let other = (first + 1) % 3;
    put(nodes[first].as_ref().expect("running"), "before", 1).expect("acknowledged");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !nodes[other]
        .as_ref()
        .expect("running")
        .is_node_connected(NODES[first])
    {
        assert!(Instant::now() < deadline, "never linked");
        let _ = nodes[other]
            .as_ref()
            .expect("running")
            .get("x".into())
            .wait_timeout(Duration::from_millis(50));
    }
    // Cut off, the leader cannot commit: the call waits until the crash.
    network.isolate(NODES[first]);
    let pending = nodes[first]
        .as_ref()
        .expect("running")
        .put("during".into(), 2);
    nodes[first].take().expect("running").crash();
    network.reconnect(NODES[first]);
    let reason = pending.wait().expect_err("the node crashed");
    assert_eq!(reason.effect(), Effect::Unknown, "{reason}");
    let peer = nodes[other].as_ref().expect("running");
    while peer.is_node_connected(NODES[first]) {
        assert!(
            Instant::now() < deadline,
            "the crashed node's link stayed up"
        );
        let _ = peer.get("x".into()).wait_timeout(Duration::from_millis(50));
    }
    nodes[first] = Some(start(&network, first, &disks[first]));
    assert_eq!(
        get(nodes[first].as_ref().expect("running"), "before"),
        Some(1)
    );
}

/// A follower crashed with its journal in a real directory (as after `kill -9`: what it wrote
/// survives) starts again on it and rejoins while the others went on without it.
#[test]
fn a_follower_crashed_on_a_real_directory_restarts_and_rejoins() {
    let dir = std::env::temp_dir().join(format!("syncobj-faults-{}", std::process::id()));
    let network = MemoryNetwork::new();
    let start_on_dir = |i: usize| {
        SyncObj::builder(NODES[i])
            .partners(NODES)
            .configure(|_| fast())
            .journal_file(dir.join(NODES[i]))
            .memory(&network)
            .start(Store::default())
            .expect("the node starts")
    };
    let mut nodes: Vec<_> = (0..3).map(|i| Some(start_on_dir(i))).collect();
    let first = leader(&nodes);
    for v in 0..10 {
        put(nodes[first].as_ref().expect("running"), "k", v).expect("acknowledged");
    }
    let follower = (first + 1) % 3;
    nodes[follower].take().expect("running").crash();
    put(nodes[first].as_ref().expect("running"), "k", 10).expect("a majority is left");
    nodes[follower] = Some(start_on_dir(follower));
    assert_eq!(
        get(nodes[follower].as_ref().expect("running"), "k"),
        Some(10)
    );
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}

type Input = KvInput<String, i64>;
type Output = KvOutput<i64>;

/// The running nodes, shared by the clients and the test that crashes and restarts them.
type Nodes = RwLock<Vec<Option<SyncObj<Store>>>>;

/// Client `client`'s loop: puts and reads through the log on its node (or the next one up
/// while its own is down), each recorded, until `stop`. Tells `done` of every call that ended.
fn client(
    client: u64,
    nodes: &Nodes,
    recorder: &Recorder<Input, Output>,
    stop: &AtomicBool,
    done: &mpsc::Sender<()>,
) {
    let mut step: i64 = 0;
    while !stop.load(Ordering::Acquire) {
        step += 1;
        let key = format!("k{}", (step + client as i64) % 5);
        let write = step % 2 == 0;
        let value = client as i64 * 1_000_000 + step;
        let input = match write {
            true => KvInput::Put(key.clone(), value),
            false => KvInput::Get(key.clone()),
        };
        let call = {
            let nodes = nodes.read().unwrap_or_else(PoisonError::into_inner);
            let Some(node) = (0..3).find_map(|i| nodes[(client as usize + i) % 3].as_ref()) else {
                continue;
            };
            let op = recorder.invoke(client, input);
            let call = match write {
                true => node.put(key, value),
                false => node.get(key),
            };
            (op, call)
        };
        let (op, call) = call;
        let recorded = match call.wait_timeout(Duration::from_secs(3)) {
            Ok(value) => recorder.complete(op, KvOutput::Value(value)),
            // Failed: applied or not, it may have taken effect; the checker tries both.
            Err(_) => recorder.unknown(op),
        };
        recorded.expect("each operation is recorded once");
        let _ = done.send(());
    }
}

/// Waits for `count` more calls to end, for up to 20 s.
fn calls_end(done: &mpsc::Receiver<()>, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for _ in 0..count {
        let left = deadline.saturating_duration_since(Instant::now());
        done.recv_timeout(left).expect("the clients make progress");
    }
}

/// The example of the testkit's documentation, as a test: a user's object on three nodes
/// under loss, delay, a partition of the leader, a crash and restart and a flapping one-way
/// cut, its history checked linearizable.
#[test]
fn a_users_object_stays_linearizable_under_faults() {
    let network = MemoryNetwork::with_seed(42);
    network.set_loss(0.02).expect("a probability");
    let jitter = Delay {
        jitter: Duration::from_millis(2),
        ..Delay::default()
    };
    network.set_delay(jitter).expect("a short delay");
    let disks = [7, 8, 9].map(SimDisk::new);
    let nodes: Nodes = RwLock::new(
        (0..3)
            .map(|i| Some(start(&network, i, &disks[i])))
            .collect(),
    );
    let recorder = Recorder::new();
    let stop = AtomicBool::new(false);
    let (done, ended) = mpsc::channel();
    std::thread::scope(|scope| {
        for id in 0..3 {
            let (nodes, recorder, stop, done) = (&nodes, &recorder, &stop, done.clone());
            scope.spawn(move || client(id, nodes, recorder, stop, &done));
        }
        calls_end(&ended, 60);
        // The leader alone on one side: the others elect a new one and go on.
        let first = leader(&nodes.read().unwrap_or_else(PoisonError::into_inner));
        let others: Vec<&str> = NODES
            .iter()
            .copied()
            .filter(|&n| n != NODES[first])
            .collect();
        network
            .partition([vec![NODES[first]], others])
            .expect("valid groups");
        calls_end(&ended, 60);
        network.heal();
        // The old leader crashes and comes back from its disk.
        let crashed = nodes.write().unwrap_or_else(PoisonError::into_inner)[first]
            .take()
            .expect("running");
        crashed.crash();
        calls_end(&ended, 30);
        let restarted = start(&network, first, &disks[first]);
        nodes.write().unwrap_or_else(PoisonError::into_inner)[first] = Some(restarted);
        calls_end(&ended, 60);
        // The leader's frames to one follower come and go.
        let now = leader(&nodes.read().unwrap_or_else(PoisonError::into_inner));
        let cut = Cut::OneWay {
            from: NODES[now].into(),
            to: NODES[(now + 1) % 3].into(),
        };
        let every = Duration::from_millis(40);
        let flapping = network.flap(
            cut,
            Schedule {
                down: every,
                up: every,
            },
        );
        calls_end(&ended, 60);
        drop(flapping.expect("the flapping thread starts"));
        stop.store(true, Ordering::Release);
    });
    let history = recorder.into_history();
    let verdict = check(KvMap::new(), &history);
    assert_eq!(verdict, Verdict::Linearizable, "{verdict}");
    let counters = network.fault_counters();
    println!("{} operations checked; faults: {counters:?}", history.len());
    assert!(counters.lost > 0 && counters.delayed > 0, "{counters:?}");
}
