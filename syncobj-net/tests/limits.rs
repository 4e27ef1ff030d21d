//! What a stranger may cost a TCP transport, on loopback: a handshake that does not finish in
//! time is closed and counted; read buffers hold what they need and let go of it; read-only
//! nodes are capped, limited to small frames, or refused altogether; new connections are
//! accepted at a bounded rate, and at most a few at once may be in their handshake; reading
//! waits for the budget of incoming bytes rather than buffering past it; and every way a
//! connection ends has its counter. Strangers are plain sockets; waits are polls with
//! deadlines.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream as StdStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use syncobj_net::frame::FrameEncoder;
use syncobj_net::handshake::{ClusterId, Hello, Peer};
use syncobj_net::tcp::{ConnectionLimits, FRAGMENT_BYTES, TcpSettings, read_only_bytes_min};
use syncobj_net::{Transport, TransportCounters, TransportEvent};

use self::support::{CLUSTER, Node, free_address, linked, poll_until, settings};

/// A voter at `address`, alone in its cluster, with `limits` changed by `change`.
fn voter(address: &str, change: impl FnOnce(&mut ConnectionLimits)) -> Node {
    let voters = vec![address.to_owned()];
    let mut limits = ConnectionLimits::default();
    change(&mut limits);
    let mut node = Node::new(TcpSettings {
        limits,
        ..settings(Some(address), &voters)
    });
    poll_until(&mut [&mut node], |n| n[0].bound.is_some());
    node
}

/// `payload` framed.
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    FrameEncoder::new(u32::MAX)
        .encode(payload, &mut out)
        .expect("test payloads fit");
    out
}

/// `message` as a peer sends it on an open link (protocol version 2): whole after a kind
/// byte if it fits a fragment, else in fragments, the first announcing its length.
fn message_frames(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if message.len() <= FRAGMENT_BYTES {
        out.extend(framed(&[&[0x00], message].concat()));
        return out;
    }
    for (i, fragment) in message.chunks(FRAGMENT_BYTES).enumerate() {
        let prefix = match i {
            0 => [&[0x01][..], &(message.len() as u32).to_le_bytes()].concat(),
            _ => vec![0x02],
        };
        out.extend(framed(&[&prefix[..], fragment].concat()));
    }
    out
}

/// The framed hello of read-only node `number` of `cluster`.
fn hello(cluster: ClusterId, number: u64) -> Vec<u8> {
    let mut payload = Vec::new();
    Hello::new(cluster, Peer::ReadOnly(number))
        .encode(&mut payload)
        .expect("a read-only hello encodes");
    framed(&payload)
}

/// A stranger's non-blocking connection.
struct Stranger(StdStream);

impl Stranger {
    fn connect(address: &str) -> Stranger {
        let stream = StdStream::connect(address).expect("the node listens");
        stream
            .set_nonblocking(true)
            .expect("a socket can be non-blocking");
        Stranger(stream)
    }

    /// Writes what the socket takes of `bytes` now; returns how many it took (0 once closed).
    fn send(&mut self, bytes: &[u8]) -> usize {
        match self.0.write(bytes) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
            Err(_) => 0,
        }
    }

    /// Whether the node closed (or reset) the connection; reads and drops what it sent.
    fn closed(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        loop {
            match self.0.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }
}

/// The connections ended so far, in every counter of an ending.
fn endings(stats: &TransportCounters) -> u64 {
    stats.handshake_timeouts
        + stats.handshake_closes
        + stats.refused_handshakes
        + stats.auth_failures
        + stats.bad_frames
        + stats.read_only_over_cap
        + stats.dial_failures
        + stats.link_failures
        + stats.link_timeouts
        + stats.links_replaced
}

/// A stranger who trickles a hello, a byte at a time, well within the silence timeout, is
/// closed once the handshake timeout passes, and counted as such (not as a link's silence).
#[test]
fn a_trickling_stranger_is_closed_at_the_handshake_deadline_and_counted() {
    let address = free_address();
    let mut node = voter(&address, |l| {
        l.handshake_timeout = Duration::from_millis(300);
    });
    let hello = hello(CLUSTER, 1);
    let mut stranger = Stranger::connect(&address);
    let start = Instant::now();
    let mut sent = 0;
    poll_until(&mut [&mut node], |_| {
        // A byte every 50 ms: never silent for the 600 ms connection timeout, and the whole
        // hello would take 1.85 s.
        let due = start.elapsed().as_millis() / 50 + 1;
        if (sent as u128) < due && sent + 1 < hello.len() {
            sent += stranger.send(&hello[sent..=sent]);
        }
        stranger.closed()
    });
    let stats = node.transport.stats();
    assert_eq!(stats.handshake_timeouts, 1, "{stats:?}");
    assert_eq!(stats.link_timeouts, 0, "not counted as a link's silence");
    assert!(sent + 1 < hello.len(), "closed before the hello was whole");
    assert!(node.read_only.is_empty());
    assert_eq!(node.transport.connection_count(), 0);
}

/// Idle links hold no read buffer; a stranger's connection holds what it sent, not a read
/// chunk; a large frame's buffer is let go of once the frame is delivered.
#[test]
fn read_buffers_are_sized_by_need_and_released() {
    let voters = vec![free_address(), free_address()];
    let mut a = Node::new(settings(Some(&voters[0]), &voters));
    let mut b = Node::new(settings(Some(&voters[1]), &voters));
    poll_until(&mut [&mut a, &mut b], |n| linked(n, &voters));
    assert_eq!(a.transport.incoming_bytes(), 0, "linked and idle");

    let mut stranger = Stranger::connect(&voters[0]);
    assert_eq!(stranger.send(&hello(CLUSTER, 1)[..3]), 3);
    poll_until(&mut [&mut a, &mut b], |n| {
        n[0].transport.incoming_bytes() > 0
    });
    let held = a.transport.incoming_bytes();
    assert!(held < 64, "three bytes of a hello held in {held} bytes");

    let to_a = b.id(&voters[0]);
    let big = Bytes::from(vec![7u8; 600_000]);
    assert!(b.transport.send(to_a, big.clone()));
    poll_until(&mut [&mut a, &mut b], |n| !n[0].frames.is_empty());
    assert_eq!(a.frames[0].1, big);
    let held = a.transport.incoming_bytes();
    assert!(
        held < 64,
        "the frame's buffer went with it: {held} bytes held"
    );
    assert!(!stranger.closed());
}

/// Beyond `read_only_links_max`, a read-only node is refused as busy (counted on both sides)
/// and links once a place is free.
#[test]
fn read_only_nodes_beyond_the_cap_are_refused_as_busy_and_counted() {
    let address = free_address();
    let voters = vec![address.clone()];
    let mut node = voter(&address, |l| l.read_only_links_max = 1);
    let reader = |number| {
        Node::new(TcpSettings {
            node: Peer::ReadOnly(number),
            ..settings(None, &voters)
        })
    };
    let mut first = reader(1);
    poll_until(&mut [&mut node, &mut first], |n| n[1].linked_to(&voters[0]));
    let mut second = reader(2);
    poll_until(&mut [&mut node, &mut first, &mut second], |n| {
        n[0].transport.stats().read_only_over_cap >= 2
            && n[2].transport.stats().refused_handshakes >= 2
    });
    assert_eq!(node.read_only.len(), 1);
    assert!(!second.linked_to(&voters[0]));
    assert_eq!(
        node.transport.stats().refused_handshakes,
        0,
        "counted once, as over the cap"
    );
    drop(first);
    poll_until(&mut [&mut node, &mut second], |n| {
        n[1].linked_to(&voters[0])
    });
    assert_eq!(
        node.read_only.values().collect::<Vec<_>>(),
        ["readonly:0000000000000002"]
    );
}

/// With `accept_read_only` off, read-only nodes are refused at the handshake, never joined.
#[test]
fn read_only_nodes_are_refused_when_not_accepted() {
    let address = free_address();
    let voters = vec![address.clone()];
    let mut node = Node::new(TcpSettings {
        accept_read_only: false,
        ..settings(Some(&address), &voters)
    });
    let mut reader = Node::new(settings(None, &voters));
    poll_until(&mut [&mut node, &mut reader], |n| {
        n[0].transport.stats().refused_handshakes >= 2
            && n[1].transport.stats().refused_handshakes >= 2
    });
    assert!(node.read_only.is_empty() && reader.up.is_empty());
    assert!(
        !node
            .log
            .iter()
            .any(|e| matches!(e, TransportEvent::ReadOnlyJoined { .. }))
    );
    assert_eq!(node.transport.stats().read_only_over_cap, 0);
}

/// A read-only link carries frames up to `read_only_frame_size_max` from the read-only node
/// (whose transport drops a longer one instead of sending it), and any frame to it; a stranger
/// linked as a read-only node who announces a longer frame is dropped.
#[test]
fn a_read_only_link_carries_no_frame_over_its_limit() {
    let address = free_address();
    let voters = vec![address.clone()];
    let small = |l: &mut ConnectionLimits| l.read_only_frame_size_max = 1000;
    let mut node = voter(&address, small);
    let mut limits = ConnectionLimits::default();
    small(&mut limits);
    let mut reader = Node::new(TcpSettings {
        limits,
        ..settings(None, &voters)
    });
    poll_until(&mut [&mut node, &mut reader], |n| n[1].linked_to(&address));
    let to_voter = reader.id(&address);
    assert!(
        !reader
            .transport
            .send(to_voter, Bytes::from(vec![1u8; 1001]))
    );
    assert_eq!(reader.transport.stats().dropped_frames, 1);
    assert!(
        reader
            .transport
            .send(to_voter, Bytes::from(vec![2u8; 1000]))
    );
    poll_until(&mut [&mut node, &mut reader], |n| !n[0].frames.is_empty());
    let to_reader = node.frames[0].0;
    let big = Bytes::from(vec![3u8; 100_000]);
    assert!(node.transport.send(to_reader, big.clone()));
    poll_until(&mut [&mut node, &mut reader], |n| !n[1].frames.is_empty());
    assert_eq!(reader.frames[0].1, big);

    let mut stranger = Stranger::connect(&address);
    assert!(stranger.send(&hello(CLUSTER, 9)) > 0);
    poll_until(&mut [&mut node, &mut reader], |n| n[0].read_only.len() == 2);
    let oversized = message_frames(&[0; 1001]);
    assert_eq!(stranger.send(&oversized), oversized.len());
    poll_until(&mut [&mut node, &mut reader], |n| n[0].read_only.len() == 1);
    assert_eq!(node.transport.stats().bad_frames, 1);
    // A first fragment announcing far more than the limit is refused at once, not held
    // waiting for a budget it could never get.
    let mut announcer = Stranger::connect(&address);
    assert!(announcer.send(&hello(CLUSTER, 10)) > 0);
    poll_until(&mut [&mut node, &mut reader], |n| n[0].read_only.len() == 2);
    let mut first = vec![0x01];
    first.extend_from_slice(&(64u32 << 20).to_le_bytes());
    first.extend_from_slice(&[0; 100]);
    let first = framed(&first);
    assert_eq!(announcer.send(&first), first.len());
    poll_until(&mut [&mut node, &mut reader], |n| n[0].read_only.len() == 1);
    assert_eq!(node.transport.stats().bad_frames, 2);
    assert_eq!(node.transport.stats().reads_paused, 0);
    assert_eq!(node.frames.len(), 1, "nothing from the strangers");
    assert!(reader.linked_to(&address), "the real read-only node stays");
}

/// Connections that come faster than `accepts_per_second` wait in the kernel's backlog (one
/// per pause is reset and counted), and are taken in at the rate.
#[test]
fn connections_beyond_the_accept_rate_wait_and_are_counted() {
    const RATE: u32 = 10;
    const STRANGERS: u64 = 30;
    let address = free_address();
    let mut node = voter(&address, |l| {
        l.accepts_per_second = RATE;
        l.handshake_timeout = Duration::from_secs(30);
    });
    let start = Instant::now();
    let mut strangers: Vec<Stranger> = (0..STRANGERS)
        .map(|_| Stranger::connect(&address))
        .collect();
    poll_until(&mut [&mut node], |n| {
        n[0].transport.stats().accepts_rate_limited >= 1
    });
    let stats = node.transport.stats();
    let allowed = u64::from(RATE) + (start.elapsed().as_secs_f64() * f64::from(RATE)) as u64 + 1;
    assert!(
        stats.connections_accepted <= allowed,
        "{} accepted, at most {allowed} allowed",
        stats.connections_accepted
    );
    assert!(stats.connections_accepted >= u64::from(RATE), "{stats:?}");
    poll_until(&mut [&mut node], |n| {
        let stats = n[0].transport.stats();
        stats.connections_accepted + stats.accepts_rate_limited == STRANGERS
    });
    let stats = node.transport.stats();
    let allowed = u64::from(RATE) + (start.elapsed().as_secs_f64() * f64::from(RATE)) as u64 + 1;
    assert!(stats.connections_accepted <= allowed, "{stats:?}");
    let reset = strangers
        .iter_mut()
        .map(Stranger::closed)
        .filter(|&closed| closed)
        .count() as u64;
    assert_eq!(reset, stats.accepts_rate_limited);
}

/// Beyond `unauthenticated_connections_max` connections in their handshake, one more is reset
/// as soon as accepted, and counted.
#[test]
fn connections_beyond_the_handshake_cap_are_reset_and_counted() {
    let address = free_address();
    let mut node = voter(&address, |l| {
        l.unauthenticated_connections_max = 3;
        l.handshake_timeout = Duration::from_secs(30);
    });
    let mut strangers: Vec<Stranger> = (0..10).map(|_| Stranger::connect(&address)).collect();
    poll_until(&mut [&mut node], |n| {
        n[0].transport.stats().unauthenticated_over_cap == 7
    });
    assert_eq!(node.transport.stats().connections_accepted, 3);
    assert_eq!(node.transport.connection_count(), 3);
    poll_until(&mut [&mut node], |_| {
        strangers
            .iter_mut()
            .map(Stranger::closed)
            .filter(|&closed| closed)
            .count()
            == 7
    });
}

/// Each way a connection ends has its counter, and each ending counts once: a
/// connect-and-close, bytes that are not a frame, a refused hello, silence before the hello, a
/// link its peer closes, a link that falls silent.
#[test]
fn every_way_a_connection_ends_is_counted_once() {
    let address = free_address();
    let mut node = voter(&address, |l| {
        l.handshake_timeout = Duration::from_millis(300);
    });
    drop(Stranger::connect(&address));
    let mut garbage = Stranger::connect(&address);
    assert_eq!(garbage.send(&[0xff, 0xff, 0xff, 0x7f, 1, 2, 3]), 7);
    let mut refused = Stranger::connect(&address);
    assert!(refused.send(&hello(ClusterId([9; 16]), 3)) > 0);
    let mut silent = Stranger::connect(&address);
    let mut closing = Stranger::connect(&address);
    assert!(closing.send(&hello(CLUSTER, 5)) > 0);
    let mut quiet = Stranger::connect(&address);
    assert!(quiet.send(&hello(CLUSTER, 6)) > 0);
    poll_until(&mut [&mut node], |n| n[0].read_only.len() == 2);
    drop(closing);
    poll_until(&mut [&mut node], |n| {
        n[0].read_only.is_empty() && n[0].transport.connection_count() == 0
    });
    let stats = node.transport.stats();
    let expected = TransportCounters {
        connections_accepted: 6,
        handshake_closes: 1,
        bad_frames: 1,
        refused_handshakes: 1,
        handshake_timeouts: 1,
        link_failures: 1,
        link_timeouts: 1,
        ..stats
    };
    assert_eq!(stats, expected);
    assert_eq!(endings(&stats), stats.connections_accepted);
    for stranger in [&mut garbage, &mut refused, &mut silent, &mut quiet] {
        assert!(stranger.closed());
    }
}

/// Read-only links whose next reads would pass `read_only_bytes_max` wait (their bytes stay in
/// the kernel) instead of being buffered; as frames are delivered the budget frees, and every
/// frame comes through whole.
#[test]
fn reading_waits_for_the_budget_instead_of_buffering_past_it() {
    const FRAME: usize = 100_000;
    const READERS: usize = 6;
    let address = free_address();
    let budget = read_only_bytes_min(FRAME as u32);
    let mut node = voter(&address, |l| {
        l.read_only_frame_size_max = FRAME as u32;
        l.read_only_bytes_max = budget;
    });
    let mut strangers: Vec<Stranger> = (0..READERS)
        .map(|i| {
            let mut stranger = Stranger::connect(&address);
            assert!(stranger.send(&hello(CLUSTER, i as u64 + 1)) > 0);
            stranger
        })
        .collect();
    poll_until(&mut [&mut node], |n| n[0].read_only.len() == READERS);
    let frames: Vec<Vec<u8>> = (0..READERS)
        .map(|i| message_frames(&vec![i as u8; FRAME]))
        .collect();
    let mut sent = vec![0; READERS];
    let mut peak = 0;
    // Every message at once: together, more than the budget.
    poll_until(&mut [&mut node], |n| {
        for ((stranger, frame), sent) in strangers.iter_mut().zip(&frames).zip(&mut sent) {
            *sent += stranger.send(&frame[*sent..]);
        }
        peak = peak.max(n[0].transport.incoming_bytes());
        n[0].frames.len() == READERS
    });
    assert!(
        peak <= budget,
        "{peak} bytes held, over the budget of {budget}"
    );
    assert!(
        node.transport.stats().reads_paused >= 1,
        "some reads waited"
    );
    let mut payloads: Vec<&[u8]> = node.payloads();
    payloads.sort_unstable();
    let expected: Vec<Vec<u8>> = (0..READERS).map(|i| vec![i as u8; FRAME]).collect();
    assert_eq!(payloads, expected);
    assert_eq!(node.transport.incoming_bytes(), 0);
    assert_eq!(node.read_only.len(), READERS, "no link was dropped");
}
