//! Links come back without waiting out the redial back-off, and without storms: a voter that
//! its peer dials knocks (dials that peer itself) while their link is down, so a peer that
//! restarts, or that reaches this node while this node cannot reach it, is linked at once; the
//! first link back after this node was cut off has the other peers dialled at once; a peer that
//! stays down is dialled no more often than the back-off allows. Real loopback sockets; every
//! wait is a poll with a deadline, and the retry time is 30 s, far beyond them.

mod support;

use std::io::ErrorKind;
use std::net::TcpListener as StdListener;
use std::time::{Duration, Instant};

use syncobj_net::tcp::TcpSettings;

use self::support::{Node, free_address, poll_until, settings};

/// The longest pause between dials in these tests: a link that comes back within a wait's
/// deadline did not wait it out.
const RETRY: Duration = Duration::from_secs(30);

/// The first pause between two dials of one peer; it doubles while dials fail.
const BACKOFF_MIN_MS: f64 = 20.0;

/// `n` free loopback addresses, sorted: the first is dialled by all the others.
fn sorted_addresses(n: usize) -> Vec<String> {
    let mut addresses: Vec<String> = (0..n).map(|_| free_address()).collect();
    addresses.sort();
    addresses
}

/// A voter at `me` among `voters`, with a retry time of [`RETRY`].
fn patient(me: &str, voters: &[String]) -> TcpSettings {
    TcpSettings {
        connection_retry_time: RETRY,
        ..settings(Some(me), voters)
    }
}

/// Dial failures of `node` so far.
fn dial_failures(node: &Node) -> u64 {
    node.transport.stats().dial_failures
}

/// The most dials the back-off allows to one peer that stays down within `elapsed` of the
/// first: the k-th dial after the first comes at least 20 ms × (2^k − 1) after it (a knock's
/// first comes 100 ms later still).
fn dials_allowed(elapsed: Duration) -> u64 {
    let ms = elapsed.as_secs_f64() * 1000.0;
    (ms / BACKOFF_MIN_MS + 1.0).log2().floor() as u64 + 1
}

/// The lower address is advertised where nothing listens: the higher one, which should dial
/// it, never reaches it (a one-way cut). The lower one knocks and the link comes up all the
/// same, and again after it restarts; before the knock, such a pair never linked.
#[test]
fn a_node_its_peer_cannot_reach_links_by_knocking() {
    let voters = sorted_addresses(2);
    let (low, high) = (&voters[0], &voters[1]);
    let elsewhere = free_address();
    let unreachable = || TcpSettings {
        bind_address: Some(elsewhere.clone()),
        ..patient(low, &voters)
    };
    let mut h = Node::new(patient(high, &voters));
    poll_until(&mut [&mut h], |n| dial_failures(n[0]) >= 3);
    let mut l = Node::new(unreachable());
    poll_until(&mut [&mut h, &mut l], |n| {
        n[0].linked_to(low) && n[1].linked_to(high)
    });
    drop(l);
    poll_until(&mut [&mut h], |n| !n[0].linked_to(low));
    let mut l = Node::new(unreachable());
    poll_until(&mut [&mut h, &mut l], |n| {
        n[0].linked_to(low) && n[1].linked_to(high)
    });
}

/// A peer that went down and restarts links again without waiting for the back-off of the
/// node that dials it (past a second by then): it knocks, and that node takes its connection.
#[test]
fn a_restarted_peer_links_again_before_the_back_off_ends() {
    let voters = sorted_addresses(2);
    let (low, high) = (&voters[0], &voters[1]);
    let mut h = Node::new(patient(high, &voters));
    let mut l = Node::new(patient(low, &voters));
    poll_until(&mut [&mut h, &mut l], |n| {
        n[0].linked_to(low) && n[1].linked_to(high)
    });
    drop(l);
    // Eight failed dials: the next one is at least 20 ms × 2^7 = 2.56 s after the last.
    poll_until(&mut [&mut h], |n| dial_failures(n[0]) >= 8);
    let accepted = h.transport.stats().connections_accepted;
    let mut l = Node::new(patient(low, &voters));
    poll_until(&mut [&mut h, &mut l], |n| {
        n[0].linked_to(low) && n[1].linked_to(high)
    });
    let stats = h.transport.stats();
    assert!(
        stats.connections_accepted > accepted,
        "the restarted node knocked: {stats:?}"
    );
}

/// A node whose peers were all down for longer than half a second takes its first link back
/// as its network coming back: it dials the other peer at once, long before that peer's
/// back-off would allow.
#[test]
fn the_first_link_back_after_a_cut_has_the_other_peers_dialled() {
    let voters = sorted_addresses(3);
    let (first, second, me) = (&voters[0], &voters[1], &voters[2]);
    let mut x = Node::new(patient(me, &voters));
    // Eight failed dials to each: the next ones are at least 2.56 s after the last.
    poll_until(&mut [&mut x], |n| dial_failures(n[0]) >= 16);
    let failed = dial_failures(&x);
    // The second peer is a bare listener: it never dials, so only `x` can connect to it.
    let listener = StdListener::bind(second.as_str()).expect("the address is free again");
    listener
        .set_nonblocking(true)
        .expect("a listener can be made non-blocking");
    // The first peer knows only `x`: it knocks on `x`, never on the second.
    let mut f = Node::new(patient(first, &[first.clone(), me.clone()]));
    poll_until(&mut [&mut x, &mut f], |n| {
        n[0].linked_to(first) || dial_failures(n[0]) > failed
    });
    assert!(x.linked_to(first), "linked before any other dial failed");
    // `x` has not polled since the link opened: its dials are not due for seconds.
    match listener.accept() {
        Err(error) if error.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the second peer was dialled before the first link: {other:?}"),
    }
    // The next polls dial the second peer; a few suffice (each waits at most 5 ms).
    let mut dialled = false;
    for _ in 0..50 {
        x.poll();
        match listener.accept() {
            Ok(_) => {
                dialled = true;
                break;
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => {}
            Err(error) => panic!("accept failed: {error}"),
        }
    }
    assert!(
        dialled,
        "the second peer was dialled soon after the first link"
    );
}

/// A peer that stays down is dialled no more often than the back-off allows, by the node
/// that dials it and by the one that knocks on it alike (a storm would be dozens a second).
#[test]
fn a_peer_that_stays_down_is_dialled_within_the_back_off() {
    let (ours, theirs) = (sorted_addresses(2), sorted_addresses(2));
    let started = Instant::now();
    // `dialler` dials its missing peer; `knocker` knocks on its own.
    let mut dialler = Node::new(patient(&ours[1], &ours));
    let mut knocker = Node::new(patient(&theirs[0], &theirs));
    poll_until(&mut [&mut dialler, &mut knocker], |n| {
        n.iter().all(|node| dial_failures(node) >= 3)
    });
    let until = Instant::now() + Duration::from_millis(1500);
    poll_until(&mut [&mut dialler, &mut knocker], |_| {
        Instant::now() >= until
    });
    let counts = (dial_failures(&dialler), dial_failures(&knocker));
    let allowed = dials_allowed(started.elapsed());
    assert!(
        counts.0 <= allowed && counts.1 <= allowed,
        "{counts:?} dials, at most {allowed} allowed"
    );
}
