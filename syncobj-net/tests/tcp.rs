//! The TCP transport on loopback: links come up in both directions, frames flow, idle links
//! survive on keep-alives, strangers are refused, and every poll stays within its caps. Every
//! event is checked as it comes (no `LinkUp` twice, no `LinkDown` or frame without a `LinkUp`,
//! `Bound` once). Waits are event-driven polls with deadlines; every socket is closed when its
//! transport drops.

mod support;

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::net::{TcpListener as StdListener, TcpStream as StdStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use syncobj_net::frame::FrameEncoder;
use syncobj_net::handshake::{ClusterId, Hello, Peer};
use syncobj_net::secure::{ClusterKey, Initiator};
use syncobj_net::tcp::{BindState, TcpSettings};
use syncobj_net::{PeerId, Transport, TransportEvent};

use self::support::{CLUSTER, Node, free_address, linked, poll_until, settings, with_password};

/// Two voters connect (the higher address dials), exchange frames both ways, and keep an idle
/// link up past the connection timeout thanks to keep-alive frames. Each node's events come in
/// order: `Bound`, `LinkUp`, the frame, and — once the other closes — `LinkDown`.
#[test]
fn two_voters_link_and_exchange_frames_in_order() {
    let voters = vec![free_address(), free_address()];
    let mut a = Node::new(settings(Some(&voters[0]), &voters));
    let mut b = Node::new(settings(Some(&voters[1]), &voters));
    let (to_b, to_a) = (a.id(&voters[1]), b.id(&voters[0]));
    assert_eq!(
        (to_b, to_a),
        (PeerId(0), PeerId(0)),
        "the other voter is peer 0"
    );
    poll_until(&mut [&mut a, &mut b], |n| linked(n, &voters));
    assert!(a.transport.send(to_b, Bytes::from_static(b"to b")));
    assert!(b.transport.send(to_a, Bytes::from_static(b"to a")));
    poll_until(&mut [&mut a, &mut b], |n| {
        n[0].frames.len() == 1 && n[1].frames.len() == 1
    });
    assert_eq!(b.frames, [(to_a, Bytes::from_static(b"to b"))]);
    assert_eq!(a.frames, [(to_b, Bytes::from_static(b"to a"))]);
    // Idle for twice the connection timeout: keep-alives hold the link.
    let idle_until = Instant::now() + Duration::from_millis(1200);
    poll_until(&mut [&mut a, &mut b], |_| Instant::now() >= idle_until);
    assert!(linked(&mut [&mut a, &mut b], &voters));
    let (a_stats, b_stats) = (a.transport.stats(), b.transport.stats());
    assert_eq!((a_stats.link_timeouts, b_stats.link_timeouts), (0, 0));
    assert!(
        a.frames.len() == 1 && b.frames.len() == 1,
        "keep-alives are not delivered"
    );
    drop(b);
    poll_until(&mut [&mut a], |n| !n[0].up.contains(&to_b));
    let frame = TransportEvent::Frame {
        from: to_b,
        frame: Bytes::from_static(b"to a"),
    };
    assert_eq!(
        a.log,
        [
            TransportEvent::Bound(Ok(())),
            TransportEvent::LinkUp(to_b),
            frame,
            TransportEvent::LinkDown(to_b)
        ]
    );
}

/// A control frame sent after a large bulk frame arrives before it: the bulk frame goes in
/// fragments and the control frame between them, so a heartbeat never waits behind megabytes.
/// Bulk frames keep their order, and the large one arrives whole; with or without a password.
#[test]
fn control_frames_overtake_large_bulk_frames() {
    for password in [None, Some("secret")] {
        let voters = vec![free_address(), free_address()];
        let configure = |me: &str| {
            // Both nodes run in this one thread: a long turn of one must not make the other
            // look silent (this test is about order, not liveness).
            let plain = TcpSettings {
                frame_size_max: 8 * 1024 * 1024,
                send_queue_bytes_max: 16 * 1024 * 1024,
                connection_timeout: Duration::from_secs(10),
                ..settings(Some(me), &voters)
            };
            password.map_or(plain.clone(), |p| with_password(plain, p))
        };
        let mut a = Node::new(configure(&voters[0]));
        let mut b = Node::new(configure(&voters[1]));
        let to_b = a.id(&voters[1]);
        poll_until(&mut [&mut a, &mut b], |n| linked(n, &voters));
        let large: Bytes = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        assert!(a.transport.send(to_b, large.clone()));
        assert!(a.transport.send(to_b, Bytes::from_static(b"after")));
        assert!(a.transport.send_control(to_b, Bytes::from_static(b"ping")));
        poll_until(&mut [&mut a, &mut b], |n| n[1].frames.len() == 3);
        // Compared by length and content without printing megabytes on a failure.
        let lengths: Vec<usize> = b.payloads().iter().map(|p| p.len()).collect();
        assert_eq!(
            lengths,
            [4, large.len(), 5],
            "the control frame came first, then the bulk ones in order ({password:?})"
        );
        let got: Vec<&[u8]> = b.payloads();
        assert!(got[0] == b"ping" && got[2] == b"after");
        assert!(got[1] == &large[..], "the large frame came whole");
        assert_eq!(
            b.transport.incoming_bytes(),
            0,
            "nothing held once delivered"
        );
    }
}

/// A node that polls late (its caller was busy for longer than the connection timeout) reads
/// what its peer sent meanwhile before it judges the link silent: the peer's keep-alives wait
/// in the kernel, so it does not drop the link. (The peer, which heard nothing from it all
/// that time, may.)
#[test]
fn a_late_poll_reads_before_it_judges_a_link_silent() {
    let voters = vec![free_address(), free_address()];
    let mut a = Node::new(settings(Some(&voters[0]), &voters));
    let mut b = Node::new(settings(Some(&voters[1]), &voters));
    poll_until(&mut [&mut a, &mut b], |n| linked(n, &voters));
    // `a` is not polled for twice the connection timeout (600 ms); `b` keeps its side alive.
    let until = Instant::now() + Duration::from_millis(1200);
    poll_until(&mut [&mut b], |_| Instant::now() >= until);
    a.poll();
    assert_eq!(
        a.transport.stats().link_timeouts,
        0,
        "`a` read the keep-alives waiting for it instead of dropping the link"
    );
}

/// `add_peer` gives a configured voter its id (in the order of `voters`, this node skipped)
/// and a new address the next one, the same at every call; the new peer is dialled or accepted
/// like a configured one.
#[test]
fn add_peer_is_idempotent_and_links_new_addresses() {
    let voters = vec![free_address(), free_address(), free_address()];
    let mut a = Node::new(settings(Some(&voters[1]), &voters[..2]));
    assert_eq!(a.id(&voters[0]), PeerId(0));
    let c_address = voters[2].clone();
    let to_c = a.id(&c_address);
    assert_eq!(to_c, PeerId(1), "after the configured voters");
    assert_eq!(a.id(&c_address), to_c);
    assert_eq!(a.id(&voters[0]), PeerId(0));
    // c knows a as a configured voter; a knows c only from `add_peer`.
    let mut c = Node::new(settings(Some(&c_address), &voters));
    let to_a = c.id(&voters[1]);
    poll_until(&mut [&mut a, &mut c], |n| {
        n[0].up.contains(&to_c) && n[1].up.contains(&to_a)
    });
    assert!(c.transport.send(to_a, Bytes::from_static(b"new member")));
    poll_until(&mut [&mut a, &mut c], |n| !n[0].frames.is_empty());
    assert_eq!(a.frames, [(to_c, Bytes::from_static(b"new member"))]);
    assert_eq!(a.id(&c_address), to_c, "still the same id once linked");
}

/// A peer flooding frames cannot make one poll hand out more than `poll_frames_max` frames;
/// the rest stays in the kernel and arrives in order at the next polls. Two flooders both get
/// turns.
#[test]
fn one_poll_takes_at_most_the_frame_cap() {
    const CAP: usize = 100;
    const FLOOD: usize = 1000;
    let voters = vec![free_address(), free_address(), free_address()];
    let capped = TcpSettings {
        poll_frames_max: CAP,
        ..settings(Some(&voters[0]), &voters)
    };
    let mut a = Node::new(capped);
    let mut b = Node::new(settings(Some(&voters[1]), &voters));
    let mut c = Node::new(settings(Some(&voters[2]), &voters));
    let (to_a_from_b, to_a_from_c) = (b.id(&voters[0]), c.id(&voters[0]));
    poll_until(&mut [&mut a, &mut b, &mut c], |n| {
        n[0].up.len() == 2 && n[1].linked_to(&voters[0]) && n[2].linked_to(&voters[0])
    });
    for i in 0..FLOOD {
        let payload = Bytes::from(format!("{i:08}"));
        assert!(b.transport.send(to_a_from_b, payload.clone()));
        assert!(c.transport.send(to_a_from_c, payload));
    }
    poll_until(&mut [&mut a, &mut b, &mut c], |n| {
        n[0].frames.len() == 2 * FLOOD
    });
    assert!(
        a.per_poll.iter().all(|&(frames, _)| frames <= CAP),
        "{:?}",
        a.per_poll
    );
    assert!(a.per_poll.len() >= 2 * FLOOD / CAP);
    assert!(
        a.per_poll.iter().any(|&(frames, _)| frames == CAP),
        "the cap was reached: {:?}",
        a.per_poll
    );
    let (from_b, from_c) = (a.id(&voters[1]), a.id(&voters[2]));
    for sender in [from_b, from_c] {
        let sent: Vec<Bytes> = (0..FLOOD).map(|i| Bytes::from(format!("{i:08}"))).collect();
        let got: Vec<Bytes> = a
            .frames
            .iter()
            .filter(|(from, _)| *from == sender)
            .map(|(_, f)| f.clone())
            .collect();
        assert_eq!(got, sent, "every frame of {sender}, in order");
    }
    let early: BTreeSet<PeerId> = a.frames[..FLOOD / 2].iter().map(|(p, _)| *p).collect();
    assert_eq!(early.len(), 2, "both flooders were read early on");
}

/// One poll takes at most `poll_bytes_max` bytes of frames, but a single larger frame still
/// passes, alone.
#[test]
fn one_poll_takes_at_most_the_byte_cap() {
    const CAP: usize = 10_000;
    let voters = vec![free_address(), free_address()];
    let capped = TcpSettings {
        poll_bytes_max: CAP,
        ..settings(Some(&voters[0]), &voters)
    };
    let mut a = Node::new(capped);
    let mut b = Node::new(settings(Some(&voters[1]), &voters));
    let to_a = b.id(&voters[0]);
    poll_until(&mut [&mut a, &mut b], |n| linked(n, &voters));
    for _ in 0..100 {
        assert!(b.transport.send(to_a, Bytes::from(vec![7u8; 1000])));
    }
    let big = Bytes::from(vec![9u8; 3 * CAP]);
    assert!(b.transport.send(to_a, big.clone()));
    poll_until(&mut [&mut a, &mut b], |n| n[0].frames.len() == 101);
    let (last, small) = a.per_poll.split_last().expect("polls returned frames");
    assert!(
        small.iter().all(|&(_, bytes)| bytes <= CAP),
        "{:?}",
        a.per_poll
    );
    assert!(
        small.iter().any(|&(frames, _)| frames == CAP / 1004),
        "the cap was reached"
    );
    assert_eq!(*last, (1, big.len() + 4), "the large frame comes alone");
    assert_eq!(a.frames[100].1, big);
}

/// A node of another cluster is refused at the handshake and never linked.
#[test]
fn another_cluster_is_refused() {
    let voters = vec![free_address(), free_address()];
    let mut a = Node::new(settings(Some(&voters[0]), &voters));
    let stranger_settings = TcpSettings {
        cluster: ClusterId([9; 16]),
        ..settings(Some(&voters[1]), &voters)
    };
    let mut stranger = Node::new(stranger_settings);
    poll_until(&mut [&mut a, &mut stranger], |n| {
        n[0].transport.stats().refused_handshakes > 0
    });
    assert!(a.up.is_empty() && stranger.up.is_empty());
}

/// A read-only node dials the voter, which reports it joined (`ReadOnlyJoined`, then
/// `LinkUp`) under its read-only name, then gone (`LinkDown`, then `ReadOnlyLeft`) once it
/// closes; the next read-only node gets the freed id.
#[test]
fn read_only_nodes_join_and_leave() {
    let voters = vec![free_address()];
    let mut voter = Node::new(settings(Some(&voters[0]), &voters));
    let mut reader = Node::new(settings(None, &voters));
    assert!(reader.transport.local_addr().is_none());
    poll_until(&mut [&mut voter, &mut reader], |n| {
        n[1].linked_to(&voters[0])
    });
    assert_eq!(reader.bound, Some(Ok(())), "nothing to bind is bound");
    let to_voter = reader.id(&voters[0]);
    assert!(reader.transport.send(to_voter, Bytes::from_static(b"hi")));
    poll_until(&mut [&mut voter, &mut reader], |n| !n[0].frames.is_empty());
    let peer = voter.frames[0].0;
    assert_eq!(voter.read_only[&peer], "readonly:0000000000005eed");
    assert_eq!(peer, PeerId(0), "the lowest free id");
    drop(reader);
    poll_until(&mut [&mut voter], |n| n[0].read_only.is_empty());
    let name = "readonly:0000000000005eed".to_owned();
    assert_eq!(
        voter.log[1..],
        [
            TransportEvent::ReadOnlyJoined { peer, name },
            TransportEvent::LinkUp(peer),
            TransportEvent::Frame {
                from: peer,
                frame: Bytes::from_static(b"hi")
            },
            TransportEvent::LinkDown(peer),
            TransportEvent::ReadOnlyLeft(peer),
        ]
    );
    let other = TcpSettings {
        node: Peer::ReadOnly(0xbeef),
        ..settings(None, &voters)
    };
    let mut reader = Node::new(other);
    poll_until(&mut [&mut voter, &mut reader], |n| {
        !n[0].read_only.is_empty()
    });
    assert_eq!(
        voter.read_only.get(&peer).map(String::as_str),
        Some("readonly:000000000000beef"),
        "the freed id is reused"
    );
}

/// A peer announcing a frame over the limit is dropped and counted, not buffered.
#[test]
fn oversized_frames_drop_the_connection() {
    let voters = vec![free_address(), free_address()];
    let small = TcpSettings {
        frame_size_max: 64,
        ..settings(Some(&voters[0]), &voters)
    };
    let mut a = Node::new(small);
    let mut b = Node::new(settings(Some(&voters[1]), &voters));
    poll_until(&mut [&mut a, &mut b], |n| n[1].linked_to(&voters[0]));
    // 100 bytes: within b's limit, over a's.
    let to_a = b.id(&voters[0]);
    assert!(b.transport.send(to_a, Bytes::from(vec![1u8; 100])));
    poll_until(&mut [&mut a, &mut b], |n| {
        n[0].transport.stats().bad_frames > 0
    });
    assert!(a.frames.is_empty());
}

/// A taken port: binding is retried every `bind_retry_time` and, with a limit, given up on;
/// `Bound` then comes once, with the address and the kind of the last error.
#[test]
fn a_taken_port_is_retried_then_given_up_once() {
    let taken = StdListener::bind("127.0.0.1:0").expect("loopback has free ports");
    let address = taken.local_addr().expect("bound").to_string();
    let voters = vec![address.clone()];
    let limited = TcpSettings {
        max_bind_retries: 3,
        ..settings(Some(&address), &voters)
    };
    let mut node = Node::new(limited);
    assert!(matches!(
        node.transport.bind_state(),
        BindState::Retrying { attempts: 1, .. }
    ));
    poll_until(&mut [&mut node], |n| n[0].bound.is_some());
    assert!(matches!(
        node.transport.bind_state(),
        BindState::Failed { attempts: 3, .. }
    ));
    let Some(Err(failure)) = node.bound.clone() else {
        panic!("binding failed: {:?}", node.bound);
    };
    assert_eq!(failure.address, address);
    assert_eq!(failure.kind(), io::ErrorKind::AddrInUse);
    // No second `Bound`, however long it polls (`record` checks).
    let until = Instant::now() + Duration::from_millis(200);
    poll_until(&mut [&mut node], |_| Instant::now() >= until);
    drop(taken);
}

/// With the same password, links come up encrypted, and frames of every size cross both ways,
/// large ones spanning several records. A restarted peer links again.
#[test]
fn same_password_links_and_relinks_after_a_restart() {
    let voters = vec![free_address(), free_address()];
    let a_settings = with_password(settings(Some(&voters[0]), &voters), "s3cret");
    let b_settings = with_password(settings(Some(&voters[1]), &voters), "s3cret");
    let mut a = Node::new(a_settings);
    let mut b = Node::new(b_settings.clone());
    poll_until(&mut [&mut a, &mut b], |n| linked(n, &voters));
    let (to_b, to_a) = (a.id(&voters[1]), b.id(&voters[0]));
    let big = Bytes::from((0..200_000_u32).map(|i| i as u8).collect::<Vec<u8>>());
    assert!(a.transport.send(to_b, Bytes::from_static(b"small")));
    assert!(a.transport.send(to_b, big.clone()));
    assert!(b.transport.send(to_a, Bytes::from_static(b"back")));
    poll_until(&mut [&mut a, &mut b], |n| {
        n[0].frames.len() == 1 && n[1].frames.len() == 2
    });
    assert_eq!(b.payloads(), [&b"small"[..], &big[..]]);
    assert_eq!(a.payloads(), [&b"back"[..]]);

    drop(b);
    let mut b = Node::new(b_settings);
    poll_until(&mut [&mut a, &mut b], |n| linked(n, &voters));
    assert!(b.transport.send(to_a, Bytes::from_static(b"again")));
    poll_until(&mut [&mut a, &mut b], |n| n[0].frames.len() == 2);
    assert_eq!(a.frames[1], (to_b, Bytes::from_static(b"again")));
    for node in [&a, &b] {
        assert_eq!(node.transport.stats().auth_failures, 0);
    }
}

/// A node with another password never links: the acceptor (whichever address sorts lower)
/// cannot authenticate the hello and counts it; the dialler sees the connection closed during
/// the handshake and counts that.
#[test]
fn wrong_password_never_links() {
    let voters = vec![free_address(), free_address()];
    let mut a = Node::new(with_password(settings(Some(&voters[0]), &voters), "right"));
    let mut b = Node::new(with_password(settings(Some(&voters[1]), &voters), "wrong"));
    poll_until(&mut [&mut a, &mut b], |n| {
        let (a, b) = (n[0].transport.stats(), n[1].transport.stats());
        a.auth_failures + b.auth_failures >= 3 && a.refused_handshakes + b.refused_handshakes >= 3
    });
    assert!(a.up.is_empty() && b.up.is_empty());
    let to_a = b.id(&voters[0]);
    assert!(!b.transport.send(to_a, Bytes::from_static(b"let me in")));
    assert!(a.frames.is_empty() && b.frames.is_empty());
}

/// A password on one side only: the acceptor says why in a plain refusal, and nothing links.
#[test]
fn password_on_one_side_only_is_refused_with_a_reason() {
    for (a_password, b_password) in [(Some("pw"), None), (None, Some("pw"))] {
        let voters = vec![free_address(), free_address()];
        let configure = |me: &str, password: Option<&str>| {
            let plain = settings(Some(me), &voters);
            password.map_or(plain.clone(), |p| with_password(plain, p))
        };
        let mut a = Node::new(configure(&voters[0], a_password));
        let mut b = Node::new(configure(&voters[1], b_password));
        poll_until(&mut [&mut a, &mut b], |n| {
            n[0].transport.stats().refused_handshakes >= 2
                && n[1].transport.stats().refused_handshakes >= 2
        });
        assert!(a.up.is_empty() && b.up.is_empty());
    }
}

/// A replayed (or merely authentic) first handshake message gets an answer, but the connection
/// never displaces the real link: without the session keys its records do not authenticate.
#[test]
fn a_replayed_hello_never_displaces_the_real_link() {
    let voters = vec![free_address(), free_address()];
    let mut a = Node::new(with_password(settings(Some(&voters[0]), &voters), "pw"));
    let mut b = Node::new(with_password(settings(Some(&voters[1]), &voters), "pw"));
    poll_until(&mut [&mut a, &mut b], |n| linked(n, &voters));

    // b's hello, as an eavesdropper would have recorded it from an earlier connection.
    let key = ClusterKey::derive("pw").expect("derives");
    let mut hello = Vec::new();
    Hello::new(CLUSTER, Peer::Voter(voters[1].clone()))
        .encode(&mut hello)
        .expect("encodes");
    let mut first = Vec::new();
    Initiator::start(&key, &hello, &mut first).expect("starts");
    let mut attacker = StdStream::connect(&voters[0]).expect("a listens");
    let mut wire = Vec::new();
    FrameEncoder::new(1024)
        .encode(&first, &mut wire)
        .expect("frames");
    attacker.write_all(&wire).expect("writes");
    // A record the attacker cannot have sealed under the new session.
    attacker
        .write_all(&[16, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16])
        .expect("writes");
    poll_until(&mut [&mut a, &mut b], |n| {
        n[0].transport.stats().auth_failures > 0
    });
    assert!(
        linked(&mut [&mut a, &mut b], &voters),
        "the real link stays up"
    );
    assert_eq!(a.log.len(), 2, "Bound and one LinkUp: nothing else");
    let to_a = b.id(&voters[0]);
    assert!(b.transport.send(to_a, Bytes::from_static(b"still here")));
    poll_until(&mut [&mut a, &mut b], |n| !n[0].frames.is_empty());
    assert_eq!(a.payloads(), [&b"still here"[..]]);
}

/// The layer above drops a peer that sent an undecodable message: the link goes down
/// (`LinkDown` at the next poll), is not counted by the transport (the layer above counts it),
/// and comes up again.
#[test]
fn a_disconnected_peer_links_again() {
    let voters = vec![free_address(), free_address()];
    let mut a = Node::new(settings(Some(&voters[0]), &voters));
    let mut b = Node::new(settings(Some(&voters[1]), &voters));
    poll_until(&mut [&mut a, &mut b], |n| linked(n, &voters));
    let to_b = a.id(&voters[1]);
    a.transport.disconnect(to_b);
    assert!(!a.transport.send(to_b, Bytes::from_static(b"gone")));
    a.poll();
    assert!(a.log.contains(&TransportEvent::LinkDown(to_b)));
    poll_until(&mut [&mut a, &mut b], |n| linked(n, &voters));
    assert_eq!(a.transport.stats().bad_frames, 0);
}
