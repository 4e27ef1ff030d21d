//! The TCP transport on loopback: links come up in both directions, frames flow, idle links
//! survive on keep-alives, and strangers are refused. Waits are event-driven polls with
//! deadlines; every socket is closed when its transport drops.

use std::io::Write;
use std::net::{TcpListener as StdListener, TcpStream as StdStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use syncobj_net::frame::FrameEncoder;
use syncobj_net::handshake::{ClusterId, Hello, Peer};
use syncobj_net::resolve::ResolverSettings;
use syncobj_net::secure::{ClusterKey, Initiator};
use syncobj_net::tcp::{BindState, Keepalive, TcpSettings, TcpTransport};
use syncobj_net::{Incoming, Transport};

const CLUSTER: ClusterId = ClusterId([7; 16]);

/// A loopback address with a port nobody listens on right now.
fn free_address() -> String {
    let listener = StdListener::bind("127.0.0.1:0").expect("loopback has free ports");
    let address = listener
        .local_addr()
        .expect("a bound listener has an address");
    address.to_string()
}

fn settings(me: Option<&str>, voters: &[String]) -> TcpSettings {
    TcpSettings {
        node: me.map_or(Peer::ReadOnly(0x5eed), |me| Peer::Voter(me.to_owned())),
        bind_address: None,
        voters: voters.to_vec(),
        resolver: ResolverSettings::default(),
        cluster: CLUSTER,
        key: None,
        frame_size_max: 1024 * 1024,
        send_queue_bytes_max: 4 * 1024 * 1024,
        connection_timeout: Duration::from_millis(600),
        connection_retry_time: Duration::from_millis(50),
        accept_read_only: true,
        send_buffer_size: Some(256 * 1024),
        recv_buffer_size: Some(256 * 1024),
        bind_retry_time: Duration::from_millis(50),
        max_bind_retries: 0,
        tcp_keepalive: Some(Keepalive {
            idle: Duration::from_secs(16),
            interval: Duration::from_secs(3),
            count: 5,
        }),
    }
}

/// Polls every transport until `done` holds, collecting what each received; fails after 10 s.
fn poll_until(
    nodes: &mut [&mut TcpTransport],
    inboxes: &mut [Vec<Incoming>],
    mut done: impl FnMut(&[&mut TcpTransport], &[Vec<Incoming>]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(nodes, inboxes) {
        assert!(
            Instant::now() < deadline,
            "condition not reached within 10 s"
        );
        for (node, inbox) in nodes.iter_mut().zip(inboxes.iter_mut()) {
            node.poll(Duration::from_millis(5), inbox);
        }
    }
}

/// Two voters connect (the higher address dials), exchange frames both ways, and keep an idle
/// link up past the connection timeout thanks to keep-alive frames.
#[test]
fn two_voters_link_and_exchange_frames() {
    let voters = vec![free_address(), free_address()];
    let mut a = TcpTransport::bind(settings(Some(&voters[0]), &voters)).expect("binds");
    let mut b = TcpTransport::bind(settings(Some(&voters[1]), &voters)).expect("binds");
    let mut inboxes = vec![Vec::new(), Vec::new()];
    poll_until(&mut [&mut a, &mut b], &mut inboxes, |n, _| {
        n[0].is_connected(&voters[1]) && n[1].is_connected(&voters[0])
    });
    assert!(a.send(&voters[1], Bytes::from_static(b"to b")));
    assert!(b.send(&voters[0], Bytes::from_static(b"to a")));
    poll_until(&mut [&mut a, &mut b], &mut inboxes, |_, inbox| {
        inbox[0].len() == 1 && inbox[1].len() == 1
    });
    assert_eq!(
        inboxes[1][0],
        Incoming {
            from: voters[0].clone(),
            frame: Bytes::from_static(b"to b")
        }
    );
    assert_eq!(
        inboxes[0][0],
        Incoming {
            from: voters[1].clone(),
            frame: Bytes::from_static(b"to a")
        }
    );
    // Idle for twice the connection timeout: keep-alives hold the link.
    let idle_until = Instant::now() + Duration::from_millis(1200);
    poll_until(&mut [&mut a, &mut b], &mut inboxes, |_, _| {
        Instant::now() >= idle_until
    });
    assert!(a.is_connected(&voters[1]) && b.is_connected(&voters[0]));
    assert_eq!((a.stats().link_timeouts, b.stats().link_timeouts), (0, 0));
    assert!(
        inboxes.iter().all(|inbox| inbox.len() == 1),
        "keep-alives are not delivered"
    );
}

/// A node of another cluster is refused at the handshake and never linked.
#[test]
fn another_cluster_is_refused() {
    let voters = vec![free_address(), free_address()];
    let mut a = TcpTransport::bind(settings(Some(&voters[0]), &voters)).expect("binds");
    let stranger_settings = TcpSettings {
        cluster: ClusterId([9; 16]),
        ..settings(Some(&voters[1]), &voters)
    };
    let mut stranger = TcpTransport::bind(stranger_settings).expect("binds");
    let mut inboxes = vec![Vec::new(), Vec::new()];
    poll_until(&mut [&mut a, &mut stranger], &mut inboxes, |n, _| {
        n[0].stats().refused_handshakes > 0
    });
    assert!(!a.is_connected(&voters[1]));
    assert!(!stranger.is_connected(&voters[0]));
}

/// A read-only node dials the voter and is linked under a read-only name.
#[test]
fn read_only_node_dials_voters() {
    let voters = vec![free_address()];
    let mut voter = TcpTransport::bind(settings(Some(&voters[0]), &voters)).expect("binds");
    let mut reader =
        TcpTransport::bind(settings(None, &voters)).expect("a read-only node binds nothing");
    assert!(reader.local_addr().is_none());
    let mut inboxes = vec![Vec::new(), Vec::new()];
    poll_until(&mut [&mut voter, &mut reader], &mut inboxes, |n, _| {
        n[1].is_connected(&voters[0])
    });
    assert!(reader.send(&voters[0], Bytes::from_static(b"hello from a reader")));
    poll_until(&mut [&mut voter, &mut reader], &mut inboxes, |_, inbox| {
        !inbox[0].is_empty()
    });
    assert_eq!(inboxes[0][0].from, "readonly:0000000000005eed");
}

/// A peer announcing a frame over the limit is dropped and counted, not buffered.
#[test]
fn oversized_frames_drop_the_connection() {
    let voters = vec![free_address(), free_address()];
    let small = TcpSettings {
        frame_size_max: 64,
        ..settings(Some(&voters[0]), &voters)
    };
    let mut a = TcpTransport::bind(small).expect("binds");
    let mut b = TcpTransport::bind(settings(Some(&voters[1]), &voters)).expect("binds");
    let mut inboxes = vec![Vec::new(), Vec::new()];
    poll_until(&mut [&mut a, &mut b], &mut inboxes, |n, _| {
        n[1].is_connected(&voters[0])
    });
    // 100 bytes: within b's limit, over a's.
    let big = Bytes::from(vec![1u8; 100]);
    assert!(b.send(&voters[0], big));
    poll_until(&mut [&mut a, &mut b], &mut inboxes, |n, _| {
        n[0].stats().bad_frames > 0
    });
    assert!(inboxes[0].is_empty());
}

/// A taken port: binding is retried every `bind_retry_time` and, with a limit, given up on.
#[test]
fn a_taken_port_is_retried_then_given_up() {
    let taken = StdListener::bind("127.0.0.1:0").expect("loopback has free ports");
    let address = taken.local_addr().expect("bound").to_string();
    let voters = vec![address.clone()];
    let limited = TcpSettings {
        max_bind_retries: 3,
        ..settings(Some(&address), &voters)
    };
    let mut transport = TcpTransport::bind(limited).expect("the poller starts");
    assert!(matches!(
        transport.bind_state(),
        BindState::Retrying { attempts: 1, .. }
    ));
    let mut inbox = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(transport.bind_state(), BindState::Failed { .. }) {
        assert!(Instant::now() < deadline, "gave up within 10 s");
        transport.poll(Duration::from_millis(10), &mut inbox);
    }
    assert!(matches!(
        transport.bind_state(),
        BindState::Failed { attempts: 3, .. }
    ));
    assert!(transport.bound().is_err());
    drop(taken);
}

fn with_password(settings: TcpSettings, password: &str) -> TcpSettings {
    TcpSettings {
        key: Some(ClusterKey::derive(password).expect("a non-empty password")),
        ..settings
    }
}

fn linked(nodes: &[&mut TcpTransport], voters: &[String]) -> bool {
    nodes[0].is_connected(&voters[1]) && nodes[1].is_connected(&voters[0])
}

/// With the same password, links come up encrypted, and frames of every size cross both ways,
/// large ones spanning several records. A restarted peer (a forced disconnect) links again.
#[test]
fn same_password_links_and_relinks_after_a_restart() {
    let voters = vec![free_address(), free_address()];
    let a_settings = with_password(settings(Some(&voters[0]), &voters), "s3cret");
    let b_settings = with_password(settings(Some(&voters[1]), &voters), "s3cret");
    let mut a = TcpTransport::bind(a_settings).expect("binds");
    let mut b = TcpTransport::bind(b_settings.clone()).expect("binds");
    let mut inboxes = vec![Vec::new(), Vec::new()];
    poll_until(&mut [&mut a, &mut b], &mut inboxes, |n, _| {
        linked(n, &voters)
    });
    let big = Bytes::from((0..200_000_u32).map(|i| i as u8).collect::<Vec<u8>>());
    assert!(a.send(&voters[1], Bytes::from_static(b"small")));
    assert!(a.send(&voters[1], big.clone()));
    assert!(b.send(&voters[0], Bytes::from_static(b"back")));
    poll_until(&mut [&mut a, &mut b], &mut inboxes, |_, inbox| {
        inbox[0].len() == 1 && inbox[1].len() == 2
    });
    assert_eq!(inboxes[1][0].frame, Bytes::from_static(b"small"));
    assert_eq!(inboxes[1][1].frame, big);
    assert_eq!(inboxes[0][0].frame, Bytes::from_static(b"back"));

    drop(b);
    let mut b = TcpTransport::bind(b_settings).expect("binds again");
    poll_until(&mut [&mut a, &mut b], &mut inboxes, |n, _| {
        linked(n, &voters)
    });
    assert!(b.send(&voters[0], Bytes::from_static(b"again")));
    poll_until(&mut [&mut a, &mut b], &mut inboxes, |_, inbox| {
        inbox[0].len() == 2
    });
    assert_eq!(inboxes[0][1].frame, Bytes::from_static(b"again"));
    for node in [&a, &b] {
        assert_eq!(node.stats().auth_failures, 0);
    }
}

/// A node with another password never links: the acceptor (whichever address sorts lower)
/// cannot authenticate the hello and counts it; the dialler sees the connection closed during
/// the handshake and counts that.
#[test]
fn wrong_password_never_links() {
    let voters = vec![free_address(), free_address()];
    let mut a = TcpTransport::bind(with_password(settings(Some(&voters[0]), &voters), "right"))
        .expect("binds");
    let mut b = TcpTransport::bind(with_password(settings(Some(&voters[1]), &voters), "wrong"))
        .expect("binds");
    let mut inboxes = vec![Vec::new(), Vec::new()];
    poll_until(&mut [&mut a, &mut b], &mut inboxes, |n, _| {
        let (a, b) = (n[0].stats(), n[1].stats());
        a.auth_failures + b.auth_failures >= 3 && a.refused_handshakes + b.refused_handshakes >= 3
    });
    assert!(!a.is_connected(&voters[1]) && !b.is_connected(&voters[0]));
    assert!(!b.send(&voters[0], Bytes::from_static(b"let me in")));
    assert!(inboxes.iter().all(Vec::is_empty));
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
        let mut a = TcpTransport::bind(configure(&voters[0], a_password)).expect("binds");
        let mut b = TcpTransport::bind(configure(&voters[1], b_password)).expect("binds");
        let mut inboxes = vec![Vec::new(), Vec::new()];
        poll_until(&mut [&mut a, &mut b], &mut inboxes, |n, _| {
            n[0].stats().refused_handshakes >= 2 && n[1].stats().refused_handshakes >= 2
        });
        assert!(!a.is_connected(&voters[1]) && !b.is_connected(&voters[0]));
    }
}

/// A replayed (or merely authentic) first handshake message gets an answer, but the connection
/// never displaces the real link: without the session keys its records do not authenticate.
#[test]
fn a_replayed_hello_never_displaces_the_real_link() {
    let voters = vec![free_address(), free_address()];
    let mut a = TcpTransport::bind(with_password(settings(Some(&voters[0]), &voters), "pw"))
        .expect("binds");
    let mut b = TcpTransport::bind(with_password(settings(Some(&voters[1]), &voters), "pw"))
        .expect("binds");
    let mut inboxes = vec![Vec::new(), Vec::new()];
    poll_until(&mut [&mut a, &mut b], &mut inboxes, |n, _| {
        linked(n, &voters)
    });

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
    poll_until(&mut [&mut a, &mut b], &mut inboxes, |n, _| {
        n[0].stats().auth_failures > 0
    });
    assert!(linked(&[&mut a, &mut b], &voters), "the real link stays up");
    assert!(b.send(&voters[0], Bytes::from_static(b"still here")));
    poll_until(&mut [&mut a, &mut b], &mut inboxes, |_, inbox| {
        !inbox[0].is_empty()
    });
    assert_eq!(inboxes[0][0].frame, Bytes::from_static(b"still here"));
}

/// The layer above drops a peer that sent an undecodable message: the link goes down at once,
/// is not counted by the transport (the layer above counts it), and comes up again.
#[test]
fn a_disconnected_peer_links_again() {
    let voters = vec![free_address(), free_address()];
    let mut a = TcpTransport::bind(settings(Some(&voters[0]), &voters)).expect("binds");
    let mut b = TcpTransport::bind(settings(Some(&voters[1]), &voters)).expect("binds");
    let mut inboxes = vec![Vec::new(), Vec::new()];
    poll_until(&mut [&mut a, &mut b], &mut inboxes, |n, _| {
        linked(n, &voters)
    });
    a.disconnect(&voters[1]);
    assert!(!a.is_connected(&voters[1]));
    poll_until(&mut [&mut a, &mut b], &mut inboxes, |n, _| {
        linked(n, &voters)
    });
    assert_eq!(a.stats().bad_frames, 0);
}
