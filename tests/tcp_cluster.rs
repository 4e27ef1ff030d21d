//! A real cluster on loopback: three nodes in this process talking TCP through
//! `SyncObj::new`, as PySyncObj's `test_syncThreeObjectsLeaderFail` starts (the leader-failure
//! half and the multi-process demo arrive with the rest of the network release).

use std::net::TcpListener;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Counter {
    value: i64,
}

#[replicated]
impl Counter {
    #[replicated]
    fn add(&mut self, n: i64) -> i64 {
        self.value += n;
        self.value
    }
}

/// A loopback address with a port nobody listens on right now.
fn free_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("loopback has free ports");
    listener
        .local_addr()
        .expect("a bound listener has an address")
        .to_string()
}

/// Timers short enough for a quick test, loose enough for a loaded machine.
fn conf() -> SyncObjConf {
    SyncObjConf {
        append_entries_period: Duration::from_millis(20),
        raft_min_timeout: Duration::from_millis(150),
        raft_max_timeout: Duration::from_millis(300),
        leader_fallback_timeout: Duration::from_millis(150),
        connection_timeout: Duration::from_millis(600),
        connection_retry_time: Duration::from_millis(50),
        ..SyncObjConf::default()
    }
}

/// Three nodes over TCP elect a leader, replicate calls made on each, and agree.
#[test]
fn three_nodes_over_tcp_agree() {
    let addresses: Vec<String> = (0..3).map(|_| free_address()).collect();
    agree(&addresses);
}

/// PySyncObj's `test_ipv6`: the same over IPv6 loopback.
#[test]
fn three_nodes_over_ipv6_agree() {
    let addresses: Vec<String> = (0..3)
        .map(|_| {
            let listener = TcpListener::bind("[::1]:0").expect("IPv6 loopback has free ports");
            listener.local_addr().expect("bound").to_string()
        })
        .collect();
    assert!(addresses[0].starts_with("[::1]:"));
    agree(&addresses);
}

/// PySyncObj's `test_localhost`: addresses given by host name.
#[test]
fn three_nodes_named_localhost_agree() {
    let addresses: Vec<String> = (0..3)
        .map(|_| free_address().replace("127.0.0.1", "localhost"))
        .collect();
    agree(&addresses);
}

/// Calls `add(n)`, retrying while the call was lost to a change of leader (`Discarded` means
/// it was certainly not applied), as a client would.
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

/// Starts a node at each address, makes a call on each, and checks they agree with one leader.
fn agree(addresses: &[String]) {
    let nodes: Vec<SyncObj<Counter>> = addresses
        .iter()
        .map(|me| {
            let partners = addresses.iter().filter(|a| *a != me).cloned();
            SyncObj::new(me, partners, Counter::default(), conf()).expect("the node starts")
        })
        .collect();
    let mut total = 0;
    for (i, node) in nodes.iter().enumerate() {
        total += i as i64 + 1;
        assert_eq!(add_retrying(node, i as i64 + 1), Ok(total), "node {i}");
    }
    for node in &nodes {
        assert_eq!(add_retrying(node, 0), Ok(total));
        assert!(node.has_quorum());
    }
    let leaders = nodes.iter().filter(|n| n.is_leader()).count();
    assert_eq!(leaders, 1);
}

/// PySyncObj's `test_syncobjWaitBinded`: a node on a taken port with `max_bind_retries = 1`
/// reports the failure from `wait_binded`; a free port binds.
#[test]
fn wait_binded_reports_a_taken_port() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("loopback has free ports");
    let address = taken.local_addr().expect("bound").to_string();
    let once = SyncObjConf {
        max_bind_retries: 1,
        ..conf()
    };
    let node = SyncObj::new(&address, [free_address()], Counter::default(), once)
        .expect("the node starts");
    let waited = node.wait_binded(Duration::from_secs(10));
    assert!(
        matches!(waited, Err(syncobj::BindError::Failed(_))),
        "{waited:?}"
    );
    let free = SyncObj::new(&free_address(), [address], Counter::default(), conf())
        .expect("the node starts");
    assert_eq!(free.wait_binded(Duration::from_secs(10)), Ok(()));
}

/// A stranger that sends garbage instead of a hello is refused, its connection closed, and the
/// node's status counts it.
#[test]
fn garbage_hello_is_refused_and_counted() {
    use std::io::{Read, Write};

    let address = free_address();
    let node = SyncObj::new(&address, Vec::<String>::new(), Counter::default(), conf())
        .expect("the node starts");
    assert_eq!(node.add(1).wait_timeout(Duration::from_secs(10)), Ok(1));
    let mut stranger = std::net::TcpStream::connect(&address).expect("the node listens");
    stranger
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout can be set");
    let garbage = b"not a hello at all";
    let mut frame = (garbage.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(garbage);
    stranger
        .write_all(&frame)
        .expect("the node accepts the connection");
    let mut reply = Vec::new();
    stranger
        .read_to_end(&mut reply)
        .expect("the node answers, then closes");
    assert!(!reply.is_empty(), "the refusal is sent before closing");
    // One more call: the status is refreshed at the end of every tick.
    assert_eq!(node.add(0).wait_timeout(Duration::from_secs(10)), Ok(1));
    assert_eq!(node.status().wire.refused_handshakes, 1);
}

/// PySyncObj's `test_syncThreeObjectsLeaderFail`: the leader's node goes away; the other two
/// elect a new leader, take new calls and agree.
#[test]
fn leader_failure_over_tcp() {
    let addresses: Vec<String> = (0..3).map(|_| free_address()).collect();
    let mut nodes: Vec<Option<SyncObj<Counter>>> = addresses
        .iter()
        .map(|me| {
            let partners = addresses.iter().filter(|a| *a != me).cloned();
            Some(SyncObj::new(me, partners, Counter::default(), conf()).expect("the node starts"))
        })
        .collect();
    let first = nodes[0].as_ref().expect("running");
    assert_eq!(add_retrying(first, 350), Ok(350));
    let leader = nodes
        .iter()
        .position(|n| n.as_ref().is_some_and(|n| n.is_leader()))
        .expect("one node leads");
    drop(nodes[leader].take()); // closes its sockets
    let survivors: Vec<&SyncObj<Counter>> = nodes.iter().flatten().collect();
    assert_eq!(add_retrying(survivors[0], 50), Ok(400));
    assert_eq!(add_retrying(survivors[1], 0), Ok(400));
    let new_leader = survivors
        .iter()
        .find(|n| n.is_leader())
        .expect("a new leader");
    assert_ne!(new_leader.self_node(), addresses[leader]);
}

/// PySyncObj's `test_hasQuorum`: two nodes have a quorum; once one is gone the other has not.
#[test]
fn quorum_is_lost_with_the_partner() {
    let addresses: Vec<String> = (0..2).map(|_| free_address()).collect();
    let a = SyncObj::new(
        &addresses[0],
        [addresses[1].clone()],
        Counter::default(),
        conf(),
    )
    .expect("the node starts");
    let b = SyncObj::new(
        &addresses[1],
        [addresses[0].clone()],
        Counter::default(),
        conf(),
    )
    .expect("the node starts");
    assert_eq!(add_retrying(&a, 1), Ok(1));
    assert_eq!(add_retrying(&b, 0), Ok(1));
    assert!(a.has_quorum() && b.has_quorum());
    drop(b);
    // The link is seen down once a read fails or times out; a's status follows at its next tick.
    assert!(
        a.add(1).wait_timeout(Duration::from_secs(2)).is_err(),
        "no quorum, no commit"
    );
    assert!(!a.has_quorum());
}
