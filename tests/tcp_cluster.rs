//! A real cluster on loopback: three nodes in this process talking TCP through
//! `SyncObj::new`, as PySyncObj's `test_syncThreeObjectsLeaderFail` starts (the leader-failure
//! half and the multi-process demo arrive with the rest of the network release).

use std::net::TcpListener;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use syncobj::prelude::*;
use syncobj::{AddressProblem, MembershipRefusal, RaftState, SyncObjConfBuilder, TransferFailure};

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
    let once = builder()
        .max_bind_retries(1)
        .build()
        .expect("a valid configuration");
    let node = SyncObj::new(&address, [free_address()], Counter::default(), once)
        .expect("the node starts");
    let waited = node.wait_binded(Duration::from_secs(10));
    assert!(
        matches!(waited, Err(syncobj::BindError::Failed(_))),
        "{waited:?}"
    );
    // With retries for ever, the wait ends unbound, saying why the last attempt failed.
    let retrying = SyncObj::new(&address, [free_address()], Counter::default(), conf())
        .expect("the node starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let last = loop {
        match retrying.wait_binded(Duration::from_millis(100)) {
            Err(syncobj::BindError::Timeout { last: Some(last) }) => break last,
            Err(syncobj::BindError::Timeout { last: None }) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no attempt within 10 s"
                );
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
    };
    assert_eq!(last.kind(), std::io::ErrorKind::AddrInUse);
    assert_eq!(last.address, address);
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

/// Starts a node at each of `addresses` with `conf`.
fn start_all(addresses: &[String], conf: &SyncObjConf) -> Vec<SyncObj<Counter>> {
    addresses
        .iter()
        .map(|me| start(me, addresses, conf.clone()))
        .collect()
}

fn start(me: &str, addresses: &[String], conf: SyncObjConf) -> SyncObj<Counter> {
    let partners = addresses.iter().filter(|a| *a != me).cloned();
    SyncObj::new(me, partners, Counter::default(), conf).expect("the node starts")
}

/// PySyncObj's `test_encryptionCorrectPassword`, with a forced disconnect: three nodes sharing
/// a password agree; one is stopped (its connections drop) and restarted on the same address,
/// reconnects through a new encrypted handshake and catches up.
#[test]
fn password_cluster_agrees_and_reconnects_after_a_restart() {
    let addresses: Vec<String> = (0..3).map(|_| free_address()).collect();
    let secret = builder()
        .password("correct horse battery staple")
        .build()
        .expect("a valid configuration");
    let mut nodes = start_all(&addresses, &secret);
    assert_eq!(add_retrying(&nodes[0], 5), Ok(5));
    assert_eq!(add_retrying(&nodes[1], 5), Ok(10));
    drop(nodes.remove(2));
    assert_eq!(add_retrying(&nodes[0], 5), Ok(15));
    nodes.push(start(&addresses[2], &addresses, secret));
    // Its own call commits only once it is linked again and has the log.
    assert_eq!(add_retrying(&nodes[2], 1), Ok(16));
    for node in &nodes {
        assert_eq!(add_retrying(node, 0), Ok(16));
        assert_eq!(node.status().wire.auth_failures, 0);
    }
}

/// PySyncObj's `test_encryptionWrongPassword`: a node with another password never joins. The
/// two others form a majority and commit; the odd one out sees nothing, and the failed
/// handshakes are counted.
#[test]
fn a_wrong_password_node_never_joins() {
    let addresses: Vec<String> = (0..3).map(|_| free_address()).collect();
    let right = builder()
        .password("right")
        .build()
        .expect("a valid configuration");
    let a = start(&addresses[0], &addresses, right.clone());
    let b = start(&addresses[1], &addresses, right);
    let wrong = builder()
        .password("wrong")
        .build()
        .expect("a valid configuration");
    let stranger = start(&addresses[2], &addresses, wrong);
    assert_eq!(add_retrying(&a, 7), Ok(7));
    assert_eq!(add_retrying(&b, 1), Ok(8));
    // Two seconds of dialling in both directions, and no leader ever heard of.
    assert!(
        stranger
            .add(1)
            .wait_timeout(Duration::from_secs(2))
            .is_err()
    );
    assert_eq!(stranger.read().value, 0);
    assert_eq!(stranger.leader(), None);
    let failures = |n: &SyncObj<Counter>| {
        let wire = n.status().wire;
        wire.auth_failures + wire.refused_handshakes
    };
    assert!(failures(&stranger) > 0);
    assert!(failures(&a) + failures(&b) > 0);
    assert!(!a.is_node_connected(&addresses[2]) && !b.is_node_connected(&addresses[2]));
}

/// A read-only node (no address) dials the voters, receives the log, and its calls are
/// forwarded to the leader; the voters list it among their read-only nodes. PySyncObj's
/// `test_readOnlyNodes` in full is the next test.
#[test]
fn a_read_only_node_follows_and_forwards_its_calls() {
    let addresses: Vec<String> = (0..2).map(|_| free_address()).collect();
    let voters = start_all(&addresses, &conf());
    assert_eq!(add_retrying(&voters[0], 100), Ok(100));
    let reader = SyncObj::read_only(addresses.clone(), Counter::default(), conf())
        .expect("the read-only node starts");
    assert!(reader.wait_ready(Duration::from_secs(10)), "it catches up");
    assert_eq!(reader.read().value, 100);
    assert_eq!(add_retrying(&reader, 1), Ok(101), "forwarded to the leader");
    assert_eq!(add_retrying(&voters[1], 1), Ok(102));
    assert_eq!(add_retrying(&reader, 0), Ok(102));
    assert!(!reader.is_leader());
    assert_eq!(reader.other_nodes().len(), 2);
    assert!(reader.self_node().starts_with("readonly:"));
    let leader = voters.iter().find(|v| v.is_leader()).expect("one leads");
    assert_eq!(leader.readonly_nodes(), [reader.self_node()]);
    assert_eq!(leader.status().partner_nodes.len(), 1);
}

/// Waits until `done` holds, for at most 20 s; panics naming `what` past it.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within 20 s"
        );
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

/// The nodes of `nodes` still running.
fn running(nodes: &[Option<SyncObj<Counter>>]) -> Vec<&SyncObj<Counter>> {
    nodes.iter().flatten().collect()
}

/// PySyncObj's `test_readOnlyNodes`: three voters and two read-only nodes, all with a password.
/// The readers catch up and agree with the voters on the leader; the leader goes away and the
/// readers follow the new one and see its later calls; a reader's call commits and reaches
/// every node; each voter lists both readers, then one once the other is stopped.
#[test]
fn read_only_nodes_with_a_password_follow_a_leader_failover() {
    let addresses: Vec<String> = (0..3).map(|_| free_address()).collect();
    let secret = builder()
        .password("read-only secret")
        .build()
        .expect("a valid configuration");
    let mut voters: Vec<Option<SyncObj<Counter>>> = start_all(&addresses, &secret)
        .into_iter()
        .map(Some)
        .collect();
    assert_eq!(add_retrying(running(&voters)[0], 350), Ok(350));
    let mut readers: Vec<SyncObj<Counter>> = (0..2)
        .map(|_| {
            SyncObj::read_only(addresses.clone(), Counter::default(), secret.clone())
                .expect("the read-only node starts")
        })
        .collect();
    let leader_address = |voters: &[Option<SyncObj<Counter>>]| {
        running(voters)
            .iter()
            .find(|v| v.is_leader())
            .map(|v| v.self_node())
    };
    for reader in &readers {
        assert!(reader.wait_ready(Duration::from_secs(20)), "it catches up");
        wait_until("the reader applies 350", || reader.read().value == 350);
        wait_until("the reader knows the leader", || {
            reader.leader().is_some() && reader.leader() == leader_address(&voters)
        });
        assert!(!reader.is_leader());
    }
    for voter in running(&voters) {
        wait_until("each voter links both readers", || {
            voter.readonly_nodes().len() == 2
        });
        assert_eq!(voter.status().wire.auth_failures, 0);
    }

    let old = leader_address(&voters).expect("one leads");
    let index = addresses.iter().position(|a| *a == old).expect("a voter");
    drop(voters[index].take());
    assert_eq!(add_retrying(running(&voters)[0], 50), Ok(400));
    let new = leader_address(&voters).expect("a new leader");
    assert_ne!(new, old);
    for reader in &readers {
        wait_until("the reader applies 400", || reader.read().value == 400);
        wait_until("the reader follows the new leader", || {
            reader.leader().as_ref() == Some(&new)
        });
    }

    assert_eq!(
        add_retrying(&readers[0], 50),
        Ok(450),
        "forwarded to the leader"
    );
    for voter in running(&voters) {
        wait_until("the voter applies 450", || voter.read().value == 450);
    }
    wait_until("the other reader applies 450", || {
        readers[1].read().value == 450
    });

    readers.pop().expect("two readers").destroy_synchronous();
    for voter in running(&voters) {
        wait_until("each voter lists the one reader left", || {
            voter.readonly_nodes() == [readers[0].self_node()]
        });
        assert_eq!(voter.status().readonly_nodes.len(), 1);
    }
}

/// PySyncObj's `test_readOnlyDrop`: sends to a read-only node fail (here it stops reading: a
/// manually ticked reader that nobody ticks, so its sockets fill and go silent), and the voters
/// go on committing; the leader drops the silent link. Ticked again, the reader links again
/// and catches up.
#[test]
fn a_read_only_node_that_stops_reading_does_not_stall_the_voters() {
    let addresses: Vec<String> = (0..2).map(|_| free_address()).collect();
    let voters = start_all(&addresses, &conf());
    assert_eq!(add_retrying(&voters[0], 350), Ok(350));
    let manual = builder().auto_tick(false).build().expect("valid");
    let reader = SyncObj::read_only(addresses.clone(), Counter::default(), manual)
        .expect("the read-only node starts");
    assert!(reader.wait_ready(Duration::from_secs(20)), "it catches up");
    let leader = voters.iter().find(|v| v.is_leader()).expect("one leads");
    wait_until("the leader links the reader", || {
        leader.readonly_nodes().len() == 1
    });
    let timeouts_before = leader.status().wire.link_timeouts;

    // Nobody ticks the reader from here on: it neither reads nor answers.
    for _ in 0..350 {
        assert!(add_retrying(&voters[1], 1).is_ok());
    }
    assert_eq!(add_retrying(&voters[0], 0), Ok(700));
    wait_until("the leader drops the silent reader", || {
        leader.readonly_nodes().is_empty()
    });
    assert!(leader.status().wire.link_timeouts > timeouts_before);
    assert_eq!(add_retrying(&voters[1], 0), Ok(700), "no election lost");
    assert!(reader.read().value < 700, "the reader was not ticked");

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while reader.read().value != 700 {
        assert!(
            std::time::Instant::now() < deadline,
            "the reader catches up"
        );
        reader
            .do_tick(Duration::from_millis(10))
            .expect("the reader ticks");
    }
    assert_eq!(
        add_retrying(&reader, 1),
        Ok(701),
        "its calls go through again"
    );
}

/// A voter built with `accept_read_only(false)` refuses read-only nodes at the handshake: the
/// reader never links, and the voter's status counts the refusals among its wire counters,
/// which name every way a connection ends.
#[test]
fn a_voter_that_refuses_read_only_nodes_never_links_one() {
    let address = free_address();
    let refusing = builder()
        .accept_read_only(false)
        .build()
        .expect("a valid configuration");
    let voter = start(&address, std::slice::from_ref(&address), refusing);
    assert_eq!(add_retrying(&voter, 1), Ok(1));
    let reader = SyncObj::read_only([address.clone()], Counter::default(), conf())
        .expect("the read-only node starts");
    assert!(
        !reader.wait_ready(Duration::from_secs(2)),
        "a refused node never catches up"
    );
    assert!(reader.status().wire.refused_handshakes > 0);
    // One more call: the status is refreshed at the end of every tick.
    assert_eq!(add_retrying(&voter, 0), Ok(1));
    let status = voter.status();
    assert!(status.wire.refused_handshakes > 0, "{status}");
    assert!(status.readonly_nodes.is_empty());
    let text = status.to_string();
    for key in [
        "connections_accepted",
        "handshake_timeouts",
        "handshake_closes",
        "link_failures",
        "read_only_over_cap",
        "unauthenticated_over_cap",
        "accepts_rate_limited",
        "reads_paused",
    ] {
        let prefix = format!("{key}: ");
        assert!(
            text.lines().any(|line| line.starts_with(&prefix)),
            "no {key} in\n{text}"
        );
    }
}

/// PySyncObj's `test_syncTwoObjectsCallbacks`, over TCP: a call's callback runs with its
/// result on the node that made it, leader or follower.
#[test]
fn callbacks_run_with_the_result_over_tcp() {
    let addresses: Vec<String> = (0..2).map(|_| free_address()).collect();
    let nodes = start_all(&addresses, &conf());
    assert_eq!(add_retrying(&nodes[0], 1), Ok(1));
    let (sender, results) = std::sync::mpsc::channel();
    for (i, node) in nodes.iter().enumerate() {
        let sender = sender.clone();
        node.add(10).on_done(move |result| {
            sender.send((i, result)).expect("the test is waiting");
        });
    }
    let mut seen: Vec<(usize, Result<i64, FailReason>)> = (0..2)
        .map(|_| {
            results
                .recv_timeout(Duration::from_secs(10))
                .expect("every callback runs")
        })
        .collect();
    seen.sort_by_key(|(i, _)| *i);
    let values: Vec<i64> = seen.iter().filter_map(|(_, r)| r.clone().ok()).collect();
    assert_eq!(values.len(), 2, "{seen:?}");
    assert_eq!(values.iter().max(), Some(&21));
    assert_eq!(values.iter().min(), Some(&11));
}

/// PySyncObj filters the self address out of the partner list; so does `SyncObj::new`.
#[test]
fn the_self_address_among_the_partners_is_ignored() {
    let addresses: Vec<String> = (0..2).map(|_| free_address()).collect();
    let nodes: Vec<SyncObj<Counter>> = addresses
        .iter()
        .map(|me| SyncObj::new(me, addresses.clone(), Counter::default(), conf()).expect("starts"))
        .collect();
    assert_eq!(add_retrying(&nodes[0], 3), Ok(3));
    assert_eq!(add_retrying(&nodes[1], 3), Ok(6));
    for (node, me) in nodes.iter().zip(&addresses) {
        assert_eq!(node.other_nodes().len(), 1);
        assert!(!node.other_nodes().contains(me));
    }
}

/// A partner whose name does not resolve costs the others nothing: its lookups fail on the
/// resolver's thread (counted in the status), never in the tick loop, and the two reachable
/// voters of three still make a majority.
#[test]
fn an_unresolvable_partner_does_not_stall_the_others() {
    let mut addresses: Vec<String> = (0..2).map(|_| free_address()).collect();
    // Sorting below the loopback addresses, it is dialled by both.
    addresses.push("0.no-such-host.invalid:4321".to_owned());
    let a = start(&addresses[0], &addresses, conf());
    let b = start(&addresses[1], &addresses, conf());
    assert_eq!(add_retrying(&a, 2), Ok(2));
    assert_eq!(add_retrying(&b, 2), Ok(4));
    assert!(a.status().wire.resolve_failures + b.status().wire.resolve_failures > 0);
    assert!(!a.is_node_connected(&addresses[2]));
}

/// A second replicated type, to ride the same log as a consumer.
#[derive(Default, Serialize, Deserialize, Replicated)]
struct Names {
    names: Vec<String>,
}

#[replicated]
impl Names {
    #[replicated]
    fn push(&mut self, name: String) -> usize {
        self.names.push(name);
        self.names.len()
    }
}

/// PySyncObj's `consumers=[...]` over TCP, on voters and on a read-only node: every node applies
/// the consumer's calls, made on any of them.
#[test]
fn consumers_work_over_tcp_and_on_read_only_nodes() {
    let addresses: Vec<String> = (0..2).map(|_| free_address()).collect();
    let nodes: Vec<SyncObj<Counter>> = addresses
        .iter()
        .map(|me| {
            SyncObj::builder(me.as_str())
                .partners(addresses.iter().cloned())
                .conf(conf())
                .consumer(Names::default())
                .start(Counter::default())
                .expect("the node starts")
        })
        .collect();
    assert_eq!(add_retrying(&nodes[0], 1), Ok(1));
    let names = nodes[1].consumer::<Names>(0).expect("a Names consumer");
    assert_eq!(
        names
            .push("ada".into())
            .wait_timeout(Duration::from_secs(10)),
        Ok(1)
    );
    let reader = SyncObj::read_only_builder()
        .partners(addresses.iter().cloned())
        .conf(conf())
        .consumer(Names::default())
        .start(Counter::default())
        .expect("the read-only node starts");
    assert!(reader.wait_ready(Duration::from_secs(10)), "it catches up");
    let copy = reader.consumer::<Names>(0).expect("a Names consumer");
    assert_eq!(
        copy.push("bob".into())
            .wait_timeout(Duration::from_secs(10)),
        Ok(2)
    );
    assert_eq!(copy.read().names, ["ada", "bob"]);
    assert_eq!(reader.read().value, 1);
}

/// Malformed addresses are refused at start, naming the address, whose it is and why;
/// nothing is left running.
#[test]
fn malformed_addresses_are_refused_at_start() {
    use syncobj::{AddressProblem as P, AddressRole as R, BadAddress, StartError};
    let good = free_address();
    let cases = [
        ("nonsense", good.as_str(), R::SelfAddress, P::MissingPort),
        ("127.0.0.1:99999", good.as_str(), R::SelfAddress, P::BadPort),
        ("127.0.0.1:0", good.as_str(), R::SelfAddress, P::ZeroPort),
        (good.as_str(), "not an address", R::Partner, P::MissingPort),
        (good.as_str(), "300.1.1.1:80", R::Partner, P::BadIpv4),
        (good.as_str(), "", R::Partner, P::Empty),
        (good.as_str(), ":4321", R::Partner, P::MissingHost),
        (good.as_str(), "::1:4321", R::Partner, P::UnbracketedIpv6),
    ];
    for (me, partner, role, problem) in cases {
        match SyncObj::new(me, [partner], Counter::default(), conf()) {
            Err(StartError::Address(BadAddress {
                role: r,
                address,
                problem: p,
            })) => {
                assert_eq!((r, p), (role, problem), "{me} / {partner}");
                assert_eq!(address, if role == R::SelfAddress { me } else { partner });
            }
            Err(other) => panic!("{me} / {partner}: another error: {other}"),
            Ok(_) => panic!("{me} / {partner}: accepted"),
        }
    }
    let refused = SyncObj::read_only(Vec::<String>::new(), Counter::default(), conf());
    assert!(matches!(refused, Err(StartError::NoVoters)));
}

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Blobs {
    count: usize,
    bytes: usize,
}

#[replicated]
impl Blobs {
    #[replicated]
    fn put(&mut self, blob: String) -> usize {
        self.count += 1;
        self.bytes += blob.len();
        self.count
    }
}

/// Large entries do not cost the leader its term: six back-to-back 5 MB calls on three nodes
/// with a password (so every byte is also encrypted), the short election timeouts of these
/// tests (150–300 ms) and two threads keeping the cores busy, all commit in the leader's term,
/// with no election anywhere. Heartbeats and their answers overtake the megabytes on each link
/// instead of waiting behind them (without that, this run elects again).
///
/// Unoptimized, sealing and unsealing the megabytes alone takes the tick loops longer than an
/// election timeout, so the test runs in optimized builds only: `.ci/run` runs it with
/// `cargo test --release --test tcp_cluster large_entries`.
#[test]
#[cfg_attr(debug_assertions, ignore = "measures timing: run with --release")]
fn large_entries_under_load_cause_no_election() {
    const BLOB_BYTES: usize = 5 * 1024 * 1024;
    const CALLS: usize = 6;
    let addresses: Vec<String> = (0..3).map(|_| free_address()).collect();
    let nodes: Vec<SyncObj<Blobs>> = addresses
        .iter()
        .map(|me| {
            let partners = addresses.iter().filter(|a| *a != me).cloned();
            let conf = builder()
                .password("large entries")
                .build()
                .expect("a valid configuration");
            SyncObj::new(me, partners, Blobs::default(), conf).expect("the node starts")
        })
        .collect();
    assert!(nodes.iter().all(|n| n.wait_ready(Duration::from_secs(20))));
    let leader = nodes
        .iter()
        .find(|n| n.is_leader())
        .expect("a leader once every node is ready");
    let term = leader.raft_current_term();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut spins = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    spins = std::hint::black_box(spins.wrapping_add(1));
                }
            })
        })
        .collect();
    let blob = "x".repeat(BLOB_BYTES);
    let calls: Vec<_> = (0..CALLS).map(|_| leader.put(blob.clone())).collect();
    let outcomes: Vec<_> = calls
        .into_iter()
        .map(|call| call.wait_timeout(Duration::from_secs(60)))
        .collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for thread in load {
        thread.join().expect("the load thread ends");
    }
    assert_eq!(outcomes, (1..=CALLS).map(Ok).collect::<Vec<_>>());
    for node in &nodes {
        assert_eq!(
            node.raft_current_term(),
            term,
            "no election on {}",
            node.self_node()
        );
    }
    assert!(leader.is_leader());
}

/// Runs a membership change, again while the leader is not ready or was replaced.
fn change_retrying(mut change: impl FnMut() -> Call<()>) -> Result<(), FailReason> {
    for _ in 0..50 {
        match change().wait_timeout(Duration::from_secs(20)) {
            Err(
                FailReason::MembershipRefused(MembershipRefusal::LeaderNotReady)
                | FailReason::NotLeader
                | FailReason::MissingLeader
                | FailReason::LeaderChanged,
            ) => std::thread::park_timeout(Duration::from_millis(20)),
            other => return other,
        }
    }
    Err(FailReason::Timeout)
}

/// Membership changes over TCP: a 4th and a 5th node, each started with the whole list, are
/// added one after the other (each asked on another node), catch up and apply calls; then a
/// node is removed, and the others refuse its connections from then on.
#[test]
fn nodes_join_and_leave_over_tcp() {
    let addresses: Vec<String> = (0..5).map(|_| free_address()).collect();
    let dynamic = || {
        builder()
            .dynamic_membership_change(true)
            .build()
            .expect("valid")
    };
    let start = |me: &String, partners: &[String]| {
        let partners = partners.iter().filter(|a| *a != me).cloned();
        SyncObj::new(me, partners, Counter::default(), dynamic()).expect("the node starts")
    };
    let mut nodes: Vec<SyncObj<Counter>> = addresses[..3]
        .iter()
        .map(|me| start(me, &addresses[..3]))
        .collect();
    assert_eq!(add_retrying(&nodes[0], 1), Ok(1));
    for joining in 3..5 {
        let node = start(&addresses[joining], &addresses);
        let asker = &nodes[joining - 3];
        assert_eq!(
            change_retrying(|| asker.add_node_to_cluster(&addresses[joining])),
            Ok(()),
            "adding node {joining}"
        );
        nodes.push(node);
        let total = joining as i64 - 1;
        assert_eq!(
            add_retrying(&nodes[joining], 1),
            Ok(total),
            "node {joining}"
        );
    }
    for node in &nodes {
        assert_eq!(add_retrying(node, 0), Ok(3));
        assert_eq!(node.status().membership.voters.len(), 5);
    }
    assert_eq!(
        nodes[0].add_node_to_cluster("no-port").wait(),
        Err(FailReason::BadAddress {
            address: "no-port".into(),
            problem: AddressProblem::MissingPort,
        })
    );
    let gone = nodes.remove(4);
    assert_eq!(
        change_retrying(|| nodes[0].remove_node_from_cluster(&addresses[4])),
        Ok(())
    );
    for node in &nodes {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        // Unlinked once the removal is committed here.
        while node.status().membership.voters.len() != 4 || node.is_node_connected(&addresses[4]) {
            assert!(std::time::Instant::now() < deadline, "the removal spreads");
            std::thread::park_timeout(Duration::from_millis(5));
        }
    }
    let removed_links: u64 = nodes.iter().map(|n| n.status().wire.links_removed).sum();
    assert!(
        removed_links > 0,
        "the links to the removed node were closed as removed"
    );
    assert_eq!(add_retrying(&nodes[1], 1), Ok(4));
    assert_eq!(
        gone.add(1).wait_timeout(Duration::from_secs(20)),
        Err(FailReason::Removed)
    );
}

/// A standby: a node started with its own address and the voters as partners, before anyone
/// adds it. Each voter links it as a stranger and observes it, so it follows the log like a
/// read-only node: it applies what the cluster applied, serves reads and forwards its calls,
/// while the voters' membership leaves it out and it never starts an election (its pre-votes
/// are ignored). `add_node_to_cluster` then makes it a voter, caught up already; with an
/// original voter stopped, 3 of the 4 voters (it among them, as a quorum of 4 is 3) commit.
#[test]
fn a_standby_node_follows_before_it_is_added_then_votes() {
    let addresses: Vec<String> = (0..4).map(|_| free_address()).collect();
    let dynamic = || {
        builder()
            .dynamic_membership_change(true)
            .build()
            .expect("valid")
    };
    let mut voters: Vec<Option<SyncObj<Counter>>> = addresses[..3]
        .iter()
        .map(|me| Some(start(me, &addresses[..3], dynamic())))
        .collect();
    let first = voters[0].as_ref().expect("running");
    assert_eq!(add_retrying(first, 5), Ok(5));
    let standby = start(&addresses[3], &addresses, dynamic());
    wait_until("the standby applies the cluster's log", || {
        standby.read().value == 5
    });
    let mut originals = addresses[..3].to_vec();
    originals.sort();
    for voter in running(&voters) {
        let membership = voter.status().membership;
        assert_eq!(membership.voters, originals, "the standby is no voter");
        assert!(membership.non_voters.is_empty(), "nor a non-voter");
    }
    assert_eq!(add_retrying(&standby, 1), Ok(6), "forwarded to the leader");
    assert_eq!(add_retrying(first, 0), Ok(6));
    let status = standby.status();
    assert_eq!(status.state, RaftState::Follower);
    assert_eq!(
        status.counters.elections_started, 0,
        "the standby never campaigns"
    );
    assert_eq!(
        change_retrying(|| first.add_node_to_cluster(&addresses[3])),
        Ok(())
    );
    let mut all = addresses.clone();
    all.sort();
    for node in running(&voters).into_iter().chain([&standby]) {
        wait_until("every node sees the standby as a voter", || {
            node.status().membership.voters == all
        });
    }
    assert!(standby.status().membership.is_member);
    // Stop an original voter, the leader if one leads: the three others are a bare quorum.
    let stopped = voters
        .iter()
        .position(|v| v.as_ref().is_some_and(|v| v.is_leader()))
        .unwrap_or(0);
    drop(voters[stopped].take());
    assert_eq!(add_retrying(&standby, 1), Ok(7), "the promoted node counts");
    for voter in running(&voters) {
        assert_eq!(add_retrying(voter, 0), Ok(7));
    }
}

/// A voter that refuses read-only nodes does not replicate to a standby either: the node
/// started before it is added gets nothing until `add_node_to_cluster`, then catches up.
#[test]
fn a_voter_refusing_read_only_nodes_feeds_no_standby() {
    let addresses: Vec<String> = (0..2).map(|_| free_address()).collect();
    let dynamic = || builder().dynamic_membership_change(true);
    let refusing = dynamic().accept_read_only(false).build().expect("valid");
    let voter = start(&addresses[0], &addresses[..1], refusing);
    assert_eq!(add_retrying(&voter, 5), Ok(5));
    let standby = start(&addresses[1], &addresses, dynamic().build().expect("valid"));
    wait_until("the voter links the standby", || {
        voter.status().wire.strangers_linked > 0
    });
    assert!(
        !standby.wait_ready(Duration::from_secs(1)),
        "not replicated to before it is added"
    );
    assert_eq!(standby.read().value, 0);
    assert_eq!(
        change_retrying(|| voter.add_node_to_cluster(&addresses[1])),
        Ok(())
    );
    wait_until("the added node catches up", || standby.read().value == 5);
    assert_eq!(add_retrying(&standby, 1), Ok(6));
}

/// Waits until `done` holds, polling every few milliseconds; fails after 30 s, saying `what`.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within 30 s"
        );
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

/// Asks `asker` to hand the leadership to `target` (at `address`) until `target` leads: a
/// transfer that an election interrupted, or that timed out (a loaded machine), is asked again.
fn hand_leadership_to(asker: &SyncObj<Counter>, target: &SyncObj<Counter>, address: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !target.is_leader() {
        assert!(
            std::time::Instant::now() < deadline,
            "{address} never took the leadership"
        );
        match change_retrying(|| asker.transfer_leadership(Some(address))) {
            Ok(())
            | Err(FailReason::TransferFailed(
                TransferFailure::Interrupted | TransferFailure::TimedOut,
            )) => {}
            Err(_) if target.is_leader() => {}
            Err(other) => panic!("the transfer to {address} failed: {other}"),
        }
        let settle = std::time::Instant::now() + Duration::from_secs(5);
        while !target.is_leader() && std::time::Instant::now() < settle {
            std::thread::park_timeout(Duration::from_millis(5));
        }
    }
}

/// A fresh directory under the system's temporary directory, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let unique = format!(
            "syncobj-tcp-{name}-{}-{:?}",
            std::process::id(),
            std::time::Instant::now()
        );
        let path = std::env::temp_dir().join(unique.replace([' ', ':', '{', '}', ','], "_"));
        std::fs::create_dir_all(&path).expect("the temporary directory is writable");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Raft thesis §4.1 over TCP: node C is down while the cluster adds D, hands D the leadership
/// and removes B. C restarts from its journal with its old partners (A and B): its membership
/// does not name D, but D links to it as a stranger (dialling it, or — when C's address sorts
/// higher and C would have to dial — dialling it the other way), C follows D's appends,
/// learns the configurations it missed and catches up. With C's address sorting
/// `lagging_sorts_higher` than D's.
fn a_lagging_node_catches_up_with_a_leader_it_never_heard_of(lagging_sorts_higher: bool) {
    let mut addresses: Vec<String> = (0..4).map(|_| free_address()).collect();
    addresses.sort();
    // D is the lowest or the highest address; A, B and C the others in order.
    let d_address = match lagging_sorts_higher {
        true => addresses.remove(0),
        false => addresses.remove(3),
    };
    let [a_address, b_address, c_address] = [0, 1, 2].map(|i| addresses[i].clone());
    let dir = TempDir::new("lagging");
    let dynamic = || builder().dynamic_membership_change(true);
    let c_conf = || {
        dynamic()
            .journal_file(dir.0.join("c"))
            .build()
            .expect("valid")
    };
    let start = |me: &str, partners: &[&String], conf: SyncObjConf| {
        let partners = partners.iter().filter(|a| **a != me).map(|a| (*a).clone());
        SyncObj::new(me, partners, Counter::default(), conf).expect("the node starts")
    };
    let originals = [&a_address, &b_address, &c_address];
    let a = start(&a_address, &originals, dynamic().build().expect("valid"));
    let b = start(&b_address, &originals, dynamic().build().expect("valid"));
    let c = start(&c_address, &originals, c_conf());
    assert_eq!(add_retrying(&a, 1), Ok(1));
    assert_eq!(add_retrying(&c, 1), Ok(2), "C has the log so far");
    c.destroy_synchronous();
    drop(c);

    let everyone = [&a_address, &b_address, &c_address, &d_address];
    let d = start(&d_address, &everyone, dynamic().build().expect("valid"));
    assert_eq!(
        change_retrying(|| a.add_node_to_cluster(&d_address)),
        Ok(())
    );
    hand_leadership_to(&a, &d, &d_address);
    assert_eq!(
        change_retrying(|| d.remove_node_from_cluster(&b_address)),
        Ok(())
    );
    b.destroy_synchronous();
    drop(b);
    assert_eq!(add_retrying(&d, 10), Ok(12));
    assert_eq!(add_retrying(&a, 5), Ok(17));
    let grown = d.status().membership;
    assert_eq!(grown.voters.len(), 3, "{grown:?}");
    assert!(!grown.voters.contains(&b_address));

    // C comes back with its old partners: its journal's membership {A, B, C} wins, and it
    // knows nothing of D.
    let c = start(&c_address, &[&a_address, &b_address], c_conf());
    wait_for("C catches up with D", || {
        c.read().value == 17 && c.status().membership.voters == d.status().membership.voters
    });
    assert!(c.status().membership.is_member);
    assert_eq!(c.leader().as_deref(), Some(d_address.as_str()));
    assert!(
        c.status().wire.strangers_linked >= 1,
        "D first linked to C as a stranger"
    );
    wait_for("C links to D as a peer", || c.is_node_connected(&d_address));
    assert_eq!(add_retrying(&c, 1), Ok(18), "C's own calls commit");
    assert_eq!(d.read().value, 18);
}

/// C's address sorts below D's: D dials C, which takes D as a stranger.
#[test]
fn a_lagging_node_follows_a_leader_that_dials_it() {
    a_lagging_node_catches_up_with_a_leader_it_never_heard_of(false);
}

/// C's address sorts above D's: C should dial D but does not know it, so D dials C the other
/// way (it knocks while their link is down).
#[test]
fn a_lagging_node_follows_a_leader_it_should_have_dialled() {
    a_lagging_node_catches_up_with_a_leader_it_never_heard_of(true);
}
