//! The batteries on a cluster: three in-process nodes over a `MemoryNetwork`, with the
//! batteries as consumers beside a user's own object, and a battery as a node's main object.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use syncobj::batteries::{
    BatteryError, ReplCounter, ReplDict, ReplList, ReplPriorityQueue, ReplQueue, ReplSet,
};
use syncobj::prelude::*;
use syncobj::{Consumer, ReplicatedMethods};

/// How long a call may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);

const ADDRESSES: [&str; 3] = ["node-a", "node-b", "node-c"];

/// The user's own main object: a log of notes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Replicated)]
struct Notes {
    lines: Vec<String>,
}

#[replicated]
impl Notes {
    /// Adds a line; returns how many there are.
    #[replicated]
    fn note(&mut self, line: String) -> usize {
        self.lines.push(line);
        self.lines.len()
    }
}

/// The consumers of every node of the first test, in order.
const COUNTER: usize = 0;
const DICT: usize = 1;
const LIST: usize = 2;
const SET: usize = 3;
const QUEUE: usize = 4;
const PRIORITY: usize = 5;

/// Starts node `me` of the three, holding `Notes` and the six batteries as consumers.
fn start_with_consumers(network: &MemoryNetwork, me: &str) -> SyncObj<Notes> {
    SyncObj::builder(me)
        .partners(ADDRESSES)
        .memory(network)
        .consumer(ReplCounter::default())
        .consumer(ReplDict::<String, String>::default())
        .consumer(ReplList::<i64>::default())
        .consumer(ReplSet::<u32>::default())
        .consumer(ReplQueue::<String>::new(2))
        .consumer(ReplPriorityQueue::<u32>::default())
        .start(Notes::default())
        .expect("the node starts")
}

/// The consumer at `position` of `node`, which must hold a `C`.
fn consumer<C: Replicated>(node: &SyncObj<Notes>, position: usize) -> Consumer<C> {
    node.consumer::<C>(position)
        .expect("the consumer is there, of that type")
}

/// Returns once `node` has applied every entry committed before this call: its own call is an
/// entry after them, and completes when `node` applied it.
fn barrier(node: &SyncObj<Notes>) {
    node.note("barrier".into())
        .wait_timeout(WAIT)
        .expect("the barrier commits");
}

/// Every battery called through its consumer handle, on several nodes; every node ends with
/// the same state. Includes PySyncObj's `test_batteriesCommon` for the dictionary.
#[test]
fn batteries_as_consumers_replicate() {
    let network = MemoryNetwork::new();
    let nodes: Vec<SyncObj<Notes>> = ADDRESSES
        .iter()
        .map(|me| start_with_consumers(&network, me))
        .collect();
    let [a, b, c] = [&nodes[0], &nodes[1], &nodes[2]];
    assert_eq!(a.note("start".into()).wait_timeout(WAIT), Ok(1));

    // The counter (PySyncObj's `test_consumers` figure).
    let counter = |node| consumer::<ReplCounter>(node, COUNTER);
    assert_eq!(counter(a).add(50).wait_timeout(WAIT), Ok(50));
    assert_eq!(counter(b).inc().wait_timeout(WAIT), Ok(51));
    assert_eq!(counter(c).inc().wait_timeout(WAIT), Ok(52));

    // The dictionary: PySyncObj's `test_batteriesCommon`.
    let dict = |node| consumer::<ReplDict<String, String>>(node, DICT);
    let (d1, d2) = (dict(a), dict(b));
    assert_eq!(
        d1.set("testKey".into(), "testValue".into())
            .wait_timeout(WAIT),
        Ok(None)
    );
    barrier(b);
    assert_eq!(
        d2.read().get("testKey").map(String::as_str),
        Some("testValue")
    );
    assert_eq!(
        d2.pop("testKey".into()).wait_timeout(WAIT),
        Ok(Some("testValue".into()))
    );
    barrier(a);
    assert_eq!(d1.read().get("testKey"), None);
    let setdefault = |d: &Consumer<ReplDict<String, String>>, value: &str| {
        d.setdefault("keyA".into(), value.into())
            .wait_timeout(WAIT)
            .expect("setdefault commits")
    };
    assert_eq!(setdefault(&d1, "valueA"), "valueA");
    assert_eq!(setdefault(&d2, "valueB"), "valueA");
    assert_eq!(
        d2.pop("keyA".into()).wait_timeout(WAIT),
        Ok(Some("valueA".into()))
    );
    assert_eq!(setdefault(&d2, "valueB"), "valueB");

    // The list: a failing call is an error for its caller, and the cluster goes on.
    let list = |node| consumer::<ReplList<i64>>(node, LIST);
    assert_eq!(list(a).extend(vec![3, 1, 2]).wait_timeout(WAIT), Ok(()));
    assert_eq!(
        list(b).remove(7).wait_timeout(WAIT),
        Ok(Err(BatteryError::NotFound))
    );
    assert_eq!(list(c).sort(true).wait_timeout(WAIT), Ok(()));
    assert_eq!(list(a).pop().wait_timeout(WAIT), Ok(Ok(1)));
    assert_eq!(list(b).insert(0, 9).wait_timeout(WAIT), Ok(Ok(())));

    // The set.
    let set = |node| consumer::<ReplSet<u32>>(node, SET);
    assert_eq!(set(c).update(vec![5, 3, 8]).wait_timeout(WAIT), Ok(()));
    assert_eq!(set(a).pop().wait_timeout(WAIT), Ok(Ok(3)));
    assert_eq!(set(b).add(5).wait_timeout(WAIT), Ok(false));

    // The bounded queue, its bound replicated with it.
    let queue = |node| consumer::<ReplQueue<String>>(node, QUEUE);
    assert_eq!(queue(a).put("one".into()).wait_timeout(WAIT), Ok(true));
    assert_eq!(queue(b).put("two".into()).wait_timeout(WAIT), Ok(true));
    assert_eq!(queue(c).put("three".into()).wait_timeout(WAIT), Ok(false));
    assert_eq!(queue(c).get().wait_timeout(WAIT), Ok(Some("one".into())));

    // The priority queue.
    let priority = |node| consumer::<ReplPriorityQueue<u32>>(node, PRIORITY);
    for (node, item) in [(a, 30), (b, 10), (c, 20)] {
        assert_eq!(priority(node).put(item).wait_timeout(WAIT), Ok(true));
    }
    assert_eq!(priority(a).get().wait_timeout(WAIT), Ok(Some(10)));

    // Every node has applied everything, and holds the same states.
    for node in &nodes {
        barrier(node);
    }
    for node in &nodes {
        assert_eq!(counter(node).read().get(), 52);
        assert_eq!(
            dict(node).read().raw_data(),
            &BTreeMap::from([("keyA".to_owned(), "valueB".to_owned())])
        );
        assert_eq!(list(node).read().raw_data(), [9, 3, 2]);
        assert_eq!(set(node).read().raw_data(), &BTreeSet::from([5, 8]));
        let queue = queue(node);
        assert_eq!(queue.read().iter().collect::<Vec<_>>(), ["two"]);
        assert_eq!(queue.read().maxsize(), 2);
        let priority = priority(node);
        assert_eq!(priority.read().iter().collect::<Vec<_>>(), [&20, &30]);
    }
    // The main object beside them: the last barrier's node has all six notes (the start and
    // five barriers); the others may not have applied the barriers that came after theirs.
    let all = c.read().lines.clone();
    assert_eq!(all.len(), 6);
    for node in &nodes {
        assert!(all.starts_with(&node.read().lines));
    }
}

/// PySyncObj's `test_consumers` with batteries: the batteries' states are in the snapshot, and
/// a node that joins after the log was compacted receives them with the main object's.
#[test]
fn batteries_travel_in_snapshots() {
    let network = MemoryNetwork::new();
    let nodes: Vec<SyncObj<Notes>> = ADDRESSES[..2]
        .iter()
        .map(|me| start_with_consumers(&network, me))
        .collect();
    let [a, b] = [&nodes[0], &nodes[1]];
    assert_eq!(a.note("start".into()).wait_timeout(WAIT), Ok(1));
    let counter = consumer::<ReplCounter>(a, COUNTER);
    assert_eq!(counter.set(52).wait_timeout(WAIT), Ok(52));
    let dict = consumer::<ReplDict<String, String>>(b, DICT);
    let value = dict.set("testKey".into(), "testValue".into());
    assert_eq!(value.wait_timeout(WAIT), Ok(None));
    let priority = consumer::<ReplPriorityQueue<u32>>(a, PRIORITY);
    for item in [7, 3, 7, 5] {
        assert_eq!(priority.put(item).wait_timeout(WAIT), Ok(true));
    }
    let queue = consumer::<ReplQueue<String>>(b, QUEUE);
    assert_eq!(queue.put("kept".into()).wait_timeout(WAIT), Ok(true));

    // Both nodes compact their logs into a snapshot; each barrier is an event to wait on.
    let compactions = |node: &SyncObj<Notes>| node.status().snapshots.compactions;
    let before: Vec<u64> = nodes.iter().map(compactions).collect();
    for node in &nodes {
        node.force_log_compaction();
    }
    let deadline = Instant::now() + WAIT;
    while nodes
        .iter()
        .zip(&before)
        .any(|(node, &n)| compactions(node) <= n)
    {
        assert!(Instant::now() < deadline, "both nodes compact within 10 s");
        barrier(a);
    }

    let late = start_with_consumers(&network, ADDRESSES[2]);
    barrier(&late);
    assert_eq!(late.status().snapshots.snapshots_installed, 1, "a snapshot");
    assert_eq!(consumer::<ReplCounter>(&late, COUNTER).read().get(), 52);
    let late_dict = consumer::<ReplDict<String, String>>(&late, DICT);
    assert_eq!(*late_dict.read(), *dict.read());
    let late_queue = consumer::<ReplQueue<String>>(&late, QUEUE);
    assert_eq!(*late_queue.read(), *queue.read());
    assert_eq!(
        late_queue.read().maxsize(),
        2,
        "the bound travels with the items"
    );
    // The priority queue hands out the rest in the same order on the late node.
    let late_priority = consumer::<ReplPriorityQueue<u32>>(&late, PRIORITY);
    let drained: Vec<u32> = (0..5)
        .map_while(|_| late_priority.get().wait_timeout(WAIT).expect("get commits"))
        .collect();
    assert_eq!(drained, [3, 5, 7, 7]);
    barrier(a);
    assert!(priority.read().is_empty());
}

/// A battery as a node's main object: a bounded queue filled by producers on two nodes and
/// drained by a consumer on the third, every item handed out once, in the order of the log.
/// Once the queue is full a `put`, and once it is empty a `get`, change nothing: each is a
/// barrier, after which its node has applied every earlier entry.
#[test]
fn a_queue_as_the_main_object() {
    const ITEMS: u32 = 10;
    let network = MemoryNetwork::new();
    let nodes: Vec<SyncObj<ReplQueue<u32>>> = ADDRESSES
        .iter()
        .map(|&me| {
            SyncObj::builder(me)
                .partners(ADDRESSES)
                .memory(&network)
                .start(ReplQueue::new(ITEMS as usize))
                .expect("the node starts")
        })
        .collect();
    for item in 0..ITEMS {
        let producer = &nodes[usize::from(item % 2 == 1)];
        assert_eq!(producer.put(item).wait_timeout(WAIT), Ok(true));
    }
    for node in &nodes {
        assert_eq!(node.put(99).wait_timeout(WAIT), Ok(false), "full");
        let queue = node.read();
        assert!(queue.is_full());
        assert!(queue.iter().copied().eq(0..ITEMS));
    }
    let taken: Vec<u32> = (0..=ITEMS)
        .map_while(|_| nodes[2].get().wait_timeout(WAIT).expect("get commits"))
        .collect();
    assert!(taken.into_iter().eq(0..ITEMS));
    for node in &nodes {
        assert_eq!(node.get().wait_timeout(WAIT), Ok(None), "empty");
        assert!(node.read().is_empty());
    }
}

/// The 32-bit FNV-1a hash of `text`, as the macros fingerprint a method's signature.
fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// Checks that `T`'s method table is `signatures` (`name@version(types)->type`), one id each
/// in order.
fn assert_methods<T: ReplicatedMethods>(signatures: &[&str]) {
    let table: Vec<(u16, &str, u32, u32)> = T::METHODS
        .iter()
        .map(|m| (m.id, m.name, m.version, m.fingerprint))
        .collect();
    let expected: Vec<(u16, &str, u32, u32)> = signatures
        .iter()
        .zip(0u16..)
        .map(|(signature, id)| {
            let name = signature.split('@').next().expect("a name");
            (id, name, 0, fnv1a(signature))
        })
        .collect();
    assert_eq!(table, expected, "{}", std::any::type_name::<T>());
}

/// The batteries' command identifiers and fingerprints: the wire format of their calls, the
/// same for every type argument. If this test fails, nodes built from the old and the new code
/// refuse each other's battery commands.
#[test]
fn golden_battery_method_tables() {
    let counter = [
        "add@0(i64)->i64",
        "inc@0()->i64",
        "set@0(i64)->i64",
        "sub@0(i64)->i64",
    ];
    assert_methods::<ReplCounter>(&counter);
    let dict = [
        "clear@0()->()",
        "pop@0(K)->Option < V >",
        "reset@0(BTreeMap < K, V >)->()",
        "set@0(K,V)->Option < V >",
        "setdefault@0(K,V)->V",
        "update@0(BTreeMap < K, V >)->()",
    ];
    assert_methods::<ReplDict<String, String>>(&dict);
    assert_methods::<ReplDict<u8, Vec<i64>>>(&dict);
    let list = [
        "append@0(T)->()",
        "extend@0(Vec < T >)->()",
        "insert@0(usize,T)->Result < (), BatteryError >",
        "pop@0()->Result < T, BatteryError >",
        "pop_at@0(usize)->Result < T, BatteryError >",
        "remove@0(T)->Result < (), BatteryError >",
        "reset@0(Vec < T >)->()",
        "set@0(usize,T)->Result < (), BatteryError >",
        "sort@0(bool)->()",
    ];
    assert_methods::<ReplList<i64>>(&list);
    assert_methods::<ReplList<f64>>(&list);
    let set = [
        "add@0(T)->bool",
        "clear@0()->()",
        "discard@0(T)->bool",
        "pop@0()->Result < T, BatteryError >",
        "remove@0(T)->Result < (), BatteryError >",
        "reset@0(BTreeSet < T >)->()",
        "update@0(Vec < T >)->()",
    ];
    assert_methods::<ReplSet<u32>>(&set);
    assert_methods::<ReplSet<String>>(&set);
    let queue = ["get@0()->Option < T >", "put@0(T)->bool"];
    assert_methods::<ReplQueue<u32>>(&queue);
    assert_methods::<ReplQueue<String>>(&queue);
    assert_methods::<ReplPriorityQueue<u32>>(&queue);
    assert_methods::<ReplPriorityQueue<(u8, String)>>(&queue);
    let locks = [
        "acquire@0(String,String,u64)->bool",
        "prolongate@0(String)->Vec < (String, u64) >",
        "release@0(String,String,u64)->bool",
    ];
    assert_methods::<syncobj::batteries::LockTable>(&locks);
}
