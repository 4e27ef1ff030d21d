//! Strangers on the TCP transport: voters of the same cluster that are not peers of the node
//! they dial. They are refused unless the layer above admits them
//! (`Transport::admit_strangers`), then linked up to `STRANGER_LINKS_MAX` at once (one more is
//! refused and counted), made ordinary peers in place by `add_peer`, and forgotten when their
//! link goes. A voter that does not know this node is dialled by it, against the usual
//! direction. Every event is checked against the contract as it comes.

mod support;

use bytes::Bytes;
use syncobj_net::{PeerId, STRANGER_LINKS_MAX, Transport, TransportEvent};

use self::support::{Node, free_address, poll_until, settings};

/// `n` free loopback addresses, sorted: the first is dialled by all the others.
fn sorted_addresses(n: usize) -> Vec<String> {
    let mut addresses: Vec<String> = (0..n).map(|_| free_address()).collect();
    addresses.sort();
    addresses
}

/// A node at `me` that knows `voters` only.
fn node(me: &str, voters: &[&String]) -> Node {
    let voters: Vec<String> = voters.iter().map(|v| (*v).clone()).collect();
    Node::new(settings(Some(me), &voters))
}

/// A voter that does not know its dialler refuses it until strangers are admitted; then it
/// reports the stranger (`StrangerJoined`, `LinkUp`), frames flow both ways under its id, and
/// `add_peer` of its address makes it a peer with the same id and link (no event, and no
/// `StrangerLeft` once that link goes).
#[test]
fn a_stranger_links_once_admitted_and_becomes_a_peer_in_place() {
    let addresses = sorted_addresses(2);
    let (a_address, s_address) = (&addresses[0], &addresses[1]);
    let mut a = node(a_address, &[a_address]);
    let mut s = node(s_address, &[a_address, s_address]);
    let to_a = s.id(a_address);
    poll_until(&mut [&mut a, &mut s], |n| {
        n[0].transport.stats().refused_handshakes >= 2
    });
    assert!(a.up.is_empty() && a.strangers.is_empty());
    assert_eq!(a.transport.stats().strangers_linked, 0);
    a.transport.admit_strangers();
    poll_until(&mut [&mut a, &mut s], |n| {
        !n[0].up.is_empty() && n[1].up.contains(&to_a)
    });
    let stranger = *a.up.first().expect("linked");
    assert_eq!(
        a.strangers.get(&stranger),
        Some(s_address),
        "known by its address"
    );
    assert_eq!(a.transport.stats().strangers_linked, 1);
    assert!(s.transport.send(to_a, Bytes::from_static(b"append")));
    poll_until(&mut [&mut a, &mut s], |n| !n[0].frames.is_empty());
    assert_eq!(a.frames, [(stranger, Bytes::from_static(b"append"))]);
    assert!(a.transport.send(stranger, Bytes::from_static(b"ack")));
    poll_until(&mut [&mut a, &mut s], |n| !n[1].frames.is_empty());
    assert_eq!(s.frames, [(to_a, Bytes::from_static(b"ack"))]);
    let events = a.log.len();
    assert_eq!(a.id(s_address), stranger, "a peer under the same id");
    assert!(a.up.contains(&stranger));
    assert!(a.transport.send(stranger, Bytes::from_static(b"still")));
    poll_until(&mut [&mut a, &mut s], |n| n[1].frames.len() == 2);
    assert_eq!(
        a.log.len(),
        events,
        "the link was kept: no event on either side"
    );
    assert_eq!(s.transport.stats().links_replaced, 0);
    drop(s);
    // The support's checker fails on a `StrangerLeft` for a peer.
    poll_until(&mut [&mut a], |n| n[0].up.is_empty());
    assert_eq!(a.log.last(), Some(&TransportEvent::LinkDown(stranger)));
}

/// At most `STRANGER_LINKS_MAX` strangers are linked at once: one more is refused and counted
/// in `strangers_refused`, and links once another stranger left (`StrangerLeft`), under the
/// freed id.
#[test]
fn strangers_are_capped_and_the_refused_are_counted() {
    let addresses = sorted_addresses(STRANGER_LINKS_MAX + 2);
    let a_address = &addresses[0];
    let mut a = node(a_address, &[a_address]);
    a.transport.admit_strangers();
    let mut strangers: Vec<Node> = addresses[1..]
        .iter()
        .map(|me| node(me, &[a_address, me]))
        .collect();
    {
        let mut all: Vec<&mut Node> = std::iter::once(&mut a)
            .chain(strangers.iter_mut())
            .collect();
        poll_until(&mut all, |n| {
            n[0].strangers.len() == STRANGER_LINKS_MAX
                && n[0].transport.stats().strangers_refused >= 2
        });
    }
    assert_eq!(a.up.len(), STRANGER_LINKS_MAX);
    let stats = a.transport.stats();
    assert_eq!(stats.strangers_linked, STRANGER_LINKS_MAX as u64);
    let (left_id, left_name) = a
        .strangers
        .iter()
        .map(|(id, name)| (*id, name.clone()))
        .next()
        .expect("linked");
    let index = strangers
        .iter()
        .position(|n| n.transport.local_addr().map(|a| a.to_string()) == Some(left_name.clone()))
        .expect("one of them");
    drop(strangers.remove(index));
    let mut all: Vec<&mut Node> = std::iter::once(&mut a)
        .chain(strangers.iter_mut())
        .collect();
    poll_until(&mut all, |n| {
        n[0].strangers.len() == STRANGER_LINKS_MAX
            && !n[0].strangers.values().any(|s| *s == left_name)
    });
    assert!(a.log.contains(&TransportEvent::StrangerLeft(left_id)));
    assert!(
        a.strangers.contains_key(&left_id),
        "the freed id is handed out again"
    );
    assert_eq!(
        a.transport.stats().strangers_linked,
        STRANGER_LINKS_MAX as u64 + 1
    );
}

/// A voter whose address sorts higher should dial, but it does not know this node (its
/// membership lags): this node knocks (dials it while their link is down), and with strangers
/// admitted it takes the link as a stranger's.
#[test]
fn a_voter_that_does_not_know_this_node_is_dialled_the_other_way() {
    let addresses = sorted_addresses(2);
    let (low, high) = (&addresses[0], &addresses[1]);
    let mut knows = node(low, &[low, high]);
    let mut lags = node(high, &[high]);
    knows.transport.admit_strangers();
    lags.transport.admit_strangers();
    let to_lagging = knows.id(high);
    poll_until(&mut [&mut knows, &mut lags], |n| {
        n[0].up.contains(&to_lagging) && !n[1].up.is_empty()
    });
    assert_eq!(lags.strangers.values().collect::<Vec<_>>(), [low]);
    assert!(
        knows
            .transport
            .send(to_lagging, Bytes::from_static(b"hello"))
    );
    poll_until(&mut [&mut knows, &mut lags], |n| !n[1].frames.is_empty());
    assert_eq!(lags.frames[0].1, Bytes::from_static(b"hello"));
}

/// A peer removed from the cluster may come back as a stranger when strangers are admitted:
/// its link closes as removed (`links_removed`), and its next connection is a stranger's.
#[test]
fn a_removed_peer_may_link_again_as_a_stranger() {
    let addresses = sorted_addresses(2);
    let (a_address, b_address) = (&addresses[0], &addresses[1]);
    let mut a = node(a_address, &addresses.iter().collect::<Vec<_>>());
    let mut b = node(b_address, &addresses.iter().collect::<Vec<_>>());
    a.transport.admit_strangers();
    let to_b = a.id(b_address);
    let to_a = b.id(a_address);
    poll_until(&mut [&mut a, &mut b], |n| {
        n[0].up.contains(&to_b) && n[1].up.contains(&to_a)
    });
    a.transport.remove_peer(to_b);
    poll_until(&mut [&mut a, &mut b], |n| {
        n[0].strangers.values().any(|s| s == b_address) && n[0].up.len() == 1
    });
    let stats = a.transport.stats();
    assert_eq!((stats.links_removed, stats.strangers_linked), (1, 1));
    let stranger = *a.strangers.keys().next().expect("linked");
    assert_ne!(stranger, to_b, "a removed voter's id is not reused");
    assert!(a.up.contains(&stranger));
    assert_eq!(PeerId(1), stranger);
}

/// Two voters that dialled each other (a fallback dial crossing the usual one) keep one
/// connection, the one the higher address dialled: the other is closed (`links_replaced`), and
/// the link does not flap afterwards.
#[test]
fn crossing_dials_settle_on_the_usual_connection() {
    let addresses = sorted_addresses(2);
    let (low, high) = (&addresses[0], &addresses[1]);
    let both: Vec<&String> = addresses.iter().collect();
    let mut l = node(low, &both);
    let mut h = node(high, &both);
    l.transport.admit_strangers();
    h.transport.admit_strangers();
    let (to_h, to_l) = (l.id(high), h.id(low));
    // Only the low node runs at first: past the retry time, it dials the high one, whose
    // listener holds the connection until it polls, and then dials too.
    let alone_until = std::time::Instant::now() + std::time::Duration::from_millis(200);
    poll_until(&mut [&mut l], |_| std::time::Instant::now() >= alone_until);
    poll_until(&mut [&mut l, &mut h], |n| {
        n[0].up.contains(&to_h)
            && n[1].up.contains(&to_l)
            && n[0].transport.connection_count() == 1
            && n[1].transport.connection_count() == 1
    });
    let replaced = l.transport.stats().links_replaced + h.transport.stats().links_replaced;
    assert!(replaced >= 1, "one of the two connections was closed");
    let ups = |n: &Node| {
        n.log
            .iter()
            .filter(|e| matches!(e, TransportEvent::LinkUp(_)))
            .count()
    };
    let before = (ups(&l), ups(&h));
    let settle_until = std::time::Instant::now() + std::time::Duration::from_millis(500);
    poll_until(&mut [&mut l, &mut h], |_| {
        std::time::Instant::now() >= settle_until
    });
    assert_eq!((ups(&l), ups(&h)), before, "no flapping");
    assert!(l.up.contains(&to_h) && h.up.contains(&to_l));
    assert_eq!(
        (
            l.transport.connection_count(),
            h.transport.connection_count()
        ),
        (1, 1)
    );
    assert!(l.strangers.is_empty() && h.strangers.is_empty());
}
