//! Batteries and a user's own objects sharing one log over TCP on loopback: PySyncObj's
//! `test_consumers` (consumer state reaching a late node by snapshot) and the dictionary half of
//! `test_batteriesCommon`, several batteries beside a user's object on one cluster, and a
//! battery as a node's main object.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use syncobj::batteries::{
    BatteryError, ReplCounter, ReplDict, ReplList, ReplPriorityQueue, ReplQueue, ReplSet,
};
use syncobj::prelude::*;
use syncobj::{Consumer, SyncObjConfBuilder};

/// A user's own replicated type, the main object of the nodes below.
#[derive(Default, Serialize, Deserialize, Replicated)]
struct Journal {
    lines: Vec<String>,
}

#[replicated]
impl Journal {
    #[replicated]
    fn write(&mut self, line: String) -> usize {
        self.lines.push(line);
        self.lines.len()
    }
}

/// How long one call or one wait may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// A loopback address with a port nobody listens on right now.
fn free_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("loopback has free ports");
    listener
        .local_addr()
        .expect("a bound listener has an address")
        .to_string()
}

/// Timers short enough for a quick test, loose enough for a loaded machine.
fn builder() -> SyncObjConfBuilder {
    SyncObjConf::builder()
        .append_entries_period(Duration::from_millis(20))
        .raft_min_timeout(Duration::from_millis(150))
        .raft_max_timeout(Duration::from_millis(300))
        .leader_fallback_timeout(Duration::from_millis(150))
        .connection_timeout(Duration::from_millis(600))
        .connection_retry_time(Duration::from_millis(50))
}

/// [`builder`]'s configuration, built.
fn conf() -> SyncObjConf {
    builder().build().expect("a valid configuration")
}

/// Makes the call `make` gives until it completes, retrying only a failure that certainly
/// applied nothing (no leader yet, a forward refused): a retry of anything else could apply it
/// twice, so the test fails on it.
fn call<R>(what: &str, mut make: impl FnMut() -> Call<R>) -> R
where
    R: Debug + DeserializeOwned + Send + 'static,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        match make().wait_timeout(PATIENCE) {
            Ok(value) => return value,
            Err(reason) if reason.effect() == Effect::None && Instant::now() < deadline => {}
            Err(reason) => panic!("{what}: {reason}"),
        }
    }
}

/// Waits until `done` holds, polling every few milliseconds; fails naming `what` after
/// [`PATIENCE`].
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

/// Stops every node and waits for their threads, so no test leaves a listener behind.
fn stop_all<T: Replicated>(nodes: &[SyncObj<T>]) {
    for node in nodes {
        node.destroy_synchronous();
    }
}

/// The consumer at `position` of `node`, which must hold a `C`.
fn consumer<T: Replicated, C: Replicated>(node: &SyncObj<T>, position: usize) -> Consumer<C> {
    node.consumer::<C>(position)
        .unwrap_or_else(|| panic!("consumer {position} holds a {}", std::any::type_name::<C>()))
}

/// The three consumers of `test_consumers`' nodes, as seen on one node.
struct Three {
    first: Consumer<ReplCounter>,
    second: Consumer<ReplCounter>,
    dict: Consumer<ReplDict<String, String>>,
}

impl Three {
    fn of(node: &SyncObj<Journal>) -> Three {
        Three {
            first: consumer(node, 0),
            second: consumer(node, 1),
            dict: consumer(node, 2),
        }
    }

    /// What this node holds: both counters, the dictionary's entries, the journal's length.
    fn view(&self, node: &SyncObj<Journal>) -> (i64, i64, Vec<(String, String)>, usize) {
        let entries = self.dict.read().raw_data().clone().into_iter();
        (
            self.first.read().get(),
            self.second.read().get(),
            entries.collect(),
            node.read().lines.len(),
        )
    }
}

/// PySyncObj's `test_consumers` over TCP: three nodes, each with two counters and a dictionary
/// as consumers of a user's object. Two nodes run, take calls through every consumer and
/// compact their logs; the third starts afterwards and can only get the consumers' state from a
/// snapshot. All three then agree, and take a call made on the late node.
#[test]
fn a_late_node_receives_the_consumers_state_by_snapshot() {
    let addresses: Vec<String> = (0..3).map(|_| free_address()).collect();
    let start = |me: &str| {
        SyncObj::builder(me)
            .partners(addresses.iter().cloned())
            .conf(conf())
            .consumer(ReplCounter::default())
            .consumer(ReplCounter::default())
            .consumer(ReplDict::<String, String>::default())
            .start(Journal::default())
            .expect("the node starts")
    };
    let mut nodes = vec![start(&addresses[0]), start(&addresses[1])];
    let [a, b] = [Three::of(&nodes[0]), Three::of(&nodes[1])];
    assert_eq!(call("set 42", || a.first.set(42)), 42);
    assert_eq!(call("add 10", || b.first.add(10)), 52);
    assert_eq!(call("add 15", || a.second.add(15)), 15);
    let set = || b.dict.set("testKey".into(), "testValue".into());
    assert_eq!(call("set testKey", set), None);
    assert_eq!(call("write", || nodes[0].write("hello".into())), 1);
    let expected = (52, 15, vec![("testKey".into(), "testValue".into())], 1);
    wait_until("both nodes apply every call", || {
        a.view(&nodes[0]) == expected && b.view(&nodes[1]) == expected
    });

    // Compact both logs past every call above.
    let last = nodes[0].raft_commit_index();
    let compactions: Vec<u64> = nodes
        .iter()
        .map(|n| n.status().snapshots.compactions)
        .collect();
    for node in &nodes {
        node.force_log_compaction();
    }
    wait_until("both nodes compact their logs", || {
        nodes.iter().zip(&compactions).all(|(n, &before)| {
            let snapshots = n.status().snapshots;
            snapshots.compactions > before && snapshots.snapshot_index >= last
        })
    });

    nodes.push(start(&addresses[2]));
    let c = Three::of(&nodes[2]);
    wait_until("the late node catches up", || c.view(&nodes[2]) == expected);
    // The status is published at the end of the tick that installed the snapshot, a moment
    // after the state.
    wait_until("the late node reports the snapshot it installed", || {
        let snapshots = nodes[2].status().snapshots;
        snapshots.snapshots_installed >= 1 && snapshots.snapshot_index >= last
    });

    // The late node's consumers take calls like the others.
    assert_eq!(call("inc", || c.first.inc()), 53);
    assert_eq!(call("sub", || c.second.sub(5)), 10);
    let expected = (53, 10, expected.2, 1);
    wait_until("all three agree", || {
        [&a, &b, &c]
            .iter()
            .zip(&nodes)
            .all(|(three, node)| three.view(node) == expected)
    });
    stop_all(&nodes);
}

/// The dictionary half of PySyncObj's `test_batteriesCommon`: two auto-ticking nodes share a
/// `ReplDict` consumer; a set and a pop made on one node reach the other, and `setdefault`
/// returns the value already stored, or the new default once the key was popped.
#[test]
fn a_dict_consumer_replicates_set_pop_and_setdefault() {
    let addresses: Vec<String> = (0..2).map(|_| free_address()).collect();
    let nodes: Vec<SyncObj<Journal>> = addresses
        .iter()
        .map(|me| {
            SyncObj::builder(me.as_str())
                .partners(addresses.iter().cloned())
                .conf(conf())
                .consumer(ReplDict::<String, String>::default())
                .start(Journal::default())
                .expect("the node starts")
        })
        .collect();
    let d1 = consumer::<_, ReplDict<String, String>>(&nodes[0], 0);
    let d2 = consumer::<_, ReplDict<String, String>>(&nodes[1], 0);

    let set = || d1.set("testKey".into(), "testValue".into());
    assert_eq!(call("set", set), None);
    wait_until("the set reaches the other node", || {
        d2.read().get("testKey").map(String::as_str) == Some("testValue")
    });
    let pop = || d2.pop("testKey".into());
    assert_eq!(call("pop", pop), Some("testValue".into()));
    wait_until("the pop reaches the first node", || {
        !d1.read().contains_key("testKey")
    });
    assert_eq!(call("pop again", pop), None, "nothing left to pop");

    let setdefault = |d: &Consumer<ReplDict<String, String>>, value: &str| {
        call("setdefault", || d.setdefault("keyA".into(), value.into()))
    };
    assert_eq!(setdefault(&d1, "valueA"), "valueA");
    assert_eq!(
        setdefault(&d2, "valueB"),
        "valueA",
        "the value already there"
    );
    assert_eq!(
        call("pop keyA", || d2.pop("keyA".into())),
        Some("valueA".into())
    );
    assert_eq!(setdefault(&d2, "valueB"), "valueB", "the new default");
    wait_until("both nodes hold keyA = valueB", || {
        [&d1, &d2].iter().all(|d| {
            d.read()
                .raw_data()
                .iter()
                .eq([(&"keyA".to_owned(), &"valueB".to_owned())])
        })
    });
    stop_all(&nodes);
}

/// Every kind of battery and a user's own object on one three-node TCP cluster: calls made
/// through any node's handles replicate to every node, failures come back to the caller as
/// values (the cluster goes on), and a consumer asked for under the wrong type is not found.
#[test]
fn every_battery_and_an_own_object_share_one_cluster() {
    type Scores = ReplDict<String, u64>;
    let addresses: Vec<String> = (0..3).map(|_| free_address()).collect();
    let nodes: Vec<SyncObj<Journal>> = addresses
        .iter()
        .map(|me| {
            SyncObj::builder(me.as_str())
                .partners(addresses.iter().cloned())
                .conf(conf())
                .consumer(ReplCounter::default())
                .consumer(Scores::default())
                .consumer(ReplList::<String>::default())
                .consumer(ReplSet::<u32>::default())
                .consumer(ReplQueue::<u64>::new(2))
                .consumer(ReplPriorityQueue::<i32>::default())
                .start(Journal::default())
                .expect("the node starts")
        })
        .collect();
    // Each call goes through a different node.
    let node = |i: usize| &nodes[i % nodes.len()];
    assert!(
        node(0).consumer::<Scores>(0).is_none(),
        "consumer 0 is a counter"
    );
    assert!(
        node(0).consumer::<ReplCounter>(6).is_none(),
        "there are six consumers"
    );

    let counter = |i| consumer::<_, ReplCounter>(node(i), 0);
    assert_eq!(call("inc", || counter(0).inc()), 1);
    assert_eq!(call("add", || counter(1).add(41)), 42);

    let scores = |i| consumer::<_, Scores>(node(i), 1);
    assert_eq!(call("set", || scores(2).set("ada".into(), 3)), None);
    assert_eq!(call("set", || scores(0).set("ada".into(), 5)), Some(3));
    let update = [("alan".to_owned(), 7), ("grace".to_owned(), 9)];
    call("update", || scores(1).update(update.clone().into()));

    let list = |i| consumer::<_, ReplList<String>>(node(i), 2);
    assert_eq!(call("pop", || list(2).pop()), Err(BatteryError::Empty));
    call("extend", || list(0).extend(vec!["b".into(), "c".into()]));
    assert_eq!(call("insert", || list(1).insert(0, "a".into())), Ok(()));
    let missing = BatteryError::IndexOutOfRange { index: 9, len: 3 };
    assert_eq!(
        call("insert", || list(2).insert(9, "z".into())),
        Err(missing)
    );
    assert_eq!(
        call("remove", || list(0).remove("z".into())),
        Err(BatteryError::NotFound)
    );
    assert_eq!(call("pop", || list(1).pop()), Ok("c".to_owned()));

    let set = |i| consumer::<_, ReplSet<u32>>(node(i), 3);
    assert!(call("add", || set(2).add(3)));
    assert!(!call("add", || set(0).add(3)), "already there");
    call("update", || set(1).update(vec![1, 2]));
    assert_eq!(call("pop", || set(2).pop()), Ok(1), "the smallest");

    let queue = |i| consumer::<_, ReplQueue<u64>>(node(i), 4);
    assert!(call("put", || queue(0).put(10)));
    assert!(call("put", || queue(1).put(20)));
    assert!(!call("put", || queue(2).put(30)), "the queue holds two");
    assert_eq!(call("get", || queue(0).get()), Some(10));

    let priority = |i| consumer::<_, ReplPriorityQueue<i32>>(node(i), 5);
    for (i, item) in [5, -1, 3].into_iter().enumerate() {
        assert!(call("put", || priority(i).put(item)));
    }
    assert_eq!(call("get", || priority(1).get()), Some(-1));

    assert_eq!(call("write", || node(2).write("done".into())), 1);

    // Every node ends with the same state of every object.
    type View = (
        i64,
        Vec<(String, u64)>,
        Vec<String>,
        BTreeSet<u32>,
        Vec<u64>,
        Vec<i32>,
        usize,
    );
    let view = |i: usize| -> View {
        (
            counter(i).read().get(),
            scores(i)
                .read()
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            list(i).read().raw_data().to_vec(),
            set(i).read().raw_data().clone(),
            queue(i).read().iter().copied().collect(),
            priority(i).read().iter().copied().collect(),
            node(i).read().lines.len(),
        )
    };
    let expected: View = (
        42,
        vec![("ada".into(), 5), ("alan".into(), 7), ("grace".into(), 9)],
        vec!["a".into(), "b".into()],
        BTreeSet::from([2, 3]),
        vec![20],
        vec![3, 5],
        1,
    );
    wait_until("every node holds every object's state", || {
        (0..nodes.len()).all(|i| view(i) == expected)
    });
    stop_all(&nodes);
}

/// A battery as a node's main object over TCP, PySyncObj-style (`SyncObj::new` with the
/// counter itself): its calls are the node's own methods, and every node agrees.
#[test]
fn a_battery_is_a_nodes_main_object_over_tcp() {
    let addresses: Vec<String> = (0..3).map(|_| free_address()).collect();
    let nodes: Vec<SyncObj<ReplCounter>> = addresses
        .iter()
        .map(|me| {
            let partners = addresses.iter().filter(|a| *a != me).cloned();
            SyncObj::new(me, partners, ReplCounter::default(), conf()).expect("the node starts")
        })
        .collect();
    assert_eq!(call("inc", || nodes[0].inc()), 1);
    assert_eq!(call("add", || nodes[1].add(10)), 11);
    assert_eq!(call("sub", || nodes[2].sub(4)), 7);
    wait_until("every node reads 7", || {
        nodes.iter().all(|n| n.read().get() == 7)
    });
    stop_all(&nodes);
}
