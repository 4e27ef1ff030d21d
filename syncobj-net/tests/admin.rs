//! Administrators on a TCP transport: `AdminClient` against a real `TcpTransport` on
//! loopback (without a password, loopback is admitted; with one, only its holders), and the
//! cap on administrators' connections.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use syncobj_net::admin::{AdminClient, AdminError, AdminReply, AdminRequest};
use syncobj_net::handshake::{ClusterId, Hello, HelloReply, Peer, RefuseReason};
use syncobj_net::secure::ClusterKey;
use syncobj_net::tcp::{
    ADMIN_CONNECTIONS_LIMIT, ADMIN_CONNECTIONS_MAX, ConnectionLimits, TcpError, TcpSettings,
    TcpTransport,
};
use syncobj_net::{Transport, TransportEvent};

use support::{free_address, settings};

/// A voter's transport at a fresh address, bound.
fn node(tweak: impl FnOnce(&mut TcpSettings)) -> (String, TcpTransport) {
    let me = free_address();
    let mut settings = settings(Some(&me), std::slice::from_ref(&me));
    tweak(&mut settings);
    let transport = TcpTransport::bind(settings).expect("the transport starts");
    (me, transport)
}

/// Polls `transport` until `done` says so, answering every admin request
/// with `reply`; panics after 20 s.
fn serve(
    transport: &mut TcpTransport,
    reply: &AdminReply,
    done: impl Fn() -> bool,
) -> Vec<AdminRequest> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut events = Vec::new();
    let mut requests = Vec::new();
    while !done() {
        assert!(Instant::now() < deadline, "the exchange ends in time");
        transport.poll(Duration::from_millis(10), &mut events);
        for event in events.drain(..) {
            if let TransportEvent::AdminRequest { id, request } = event {
                requests.push(AdminRequest::decode(&request).expect("a request"));
                transport.admin_reply(id, Bytes::from(reply.encode()));
            }
        }
    }
    requests
}

/// Runs `client`'s request on a thread while the transport serves it.
fn exchange(
    transport: &mut TcpTransport,
    client: AdminClient,
    request: AdminRequest,
    reply: &AdminReply,
) -> (Result<AdminReply, AdminError>, Vec<AdminRequest>) {
    let worker = thread::spawn(move || client.request(&request));
    let requests = serve(transport, reply, || worker.is_finished());
    (worker.join().expect("the client does not panic"), requests)
}

#[test]
fn an_admin_from_loopback_without_password_is_served_once() {
    let (me, mut transport) = node(|_| {});
    let client = AdminClient::new(&me, None, Duration::from_secs(20)).expect("a client");
    let request = AdminRequest::Add("127.0.0.1:9".into());
    let (reply, requests) = exchange(&mut transport, client, request.clone(), &AdminReply::Done);
    assert_eq!(reply.expect("a reply"), AdminReply::Done);
    assert_eq!(requests, [request]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut events = Vec::new();
    while transport.connection_count() > 0 {
        assert!(Instant::now() < deadline, "the connection closes");
        transport.poll(Duration::from_millis(10), &mut events);
    }
    assert_eq!(transport.stats().admin_connections, 1);
    assert_eq!(transport.stats().refused_handshakes, 0);
}

#[test]
fn with_a_password_only_its_holders_administer() {
    let key = ClusterKey::derive("secret").expect("a key");
    let (me, mut transport) = node(|s| s.key = Some(key));
    let reply = AdminReply::Failed("no".into());
    let holder = AdminClient::new(&me, Some("secret"), Duration::from_secs(20)).expect("client");
    let (answer, _) = exchange(&mut transport, holder, AdminRequest::Status, &reply);
    assert_eq!(answer.expect("a reply"), reply);

    let stranger = AdminClient::new(&me, Some("guess"), Duration::from_secs(20)).expect("client");
    let (answer, requests) = exchange(&mut transport, stranger, AdminRequest::Status, &reply);
    assert!(
        matches!(answer, Err(AdminError::Closed { .. })),
        "{answer:?}"
    );
    assert!(requests.is_empty());

    let plain = AdminClient::new(&me, None, Duration::from_secs(20)).expect("client");
    let (answer, requests) = exchange(&mut transport, plain, AdminRequest::Status, &reply);
    assert!(
        matches!(
            answer,
            Err(AdminError::Refused(RefuseReason::PasswordRequired))
        ),
        "{answer:?}"
    );
    assert!(requests.is_empty());
}

/// Dials `address` and sends a plain admin hello on the raw socket.
fn raw_hello(address: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("a timeout");
    let mut hello = Vec::new();
    Hello::new(ClusterId([0; 16]), Peer::Admin)
        .encode(&mut hello)
        .expect("encodes");
    let mut frame = u32::try_from(hello.len())
        .expect("small")
        .to_le_bytes()
        .to_vec();
    frame.extend_from_slice(&hello);
    stream.write_all(&frame).expect("writes");
    stream
}

fn read_reply(stream: &mut TcpStream) -> HelloReply {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).expect("a header");
    let mut payload = vec![0u8; u32::from_le_bytes(header) as usize];
    stream.read_exact(&mut payload).expect("a payload");
    HelloReply::decode(&payload).expect("a reply")
}

/// Holds `cap` administrators' connections open on a node whose settings are `tweak`ed, then
/// checks that one more is refused as busy.
fn cap_holds(cap: usize, tweak: impl FnOnce(&mut TcpSettings)) {
    let (me, mut transport) = node(tweak);
    let mut held = Vec::new();
    for _ in 0..cap {
        let mut stream = raw_hello(&me);
        let worker = thread::spawn(move || (read_reply(&mut stream), stream));
        serve(&mut transport, &AdminReply::Done, || worker.is_finished());
        let (reply, stream) = worker.join().expect("reads");
        assert_eq!(reply, HelloReply::Accepted);
        held.push(stream);
    }
    let mut stream = raw_hello(&me);
    let worker = thread::spawn(move || read_reply(&mut stream));
    serve(&mut transport, &AdminReply::Done, || worker.is_finished());
    assert_eq!(
        worker.join().expect("reads"),
        HelloReply::Refused(RefuseReason::Busy),
        "cap {cap}"
    );
    assert_eq!(transport.stats().refused_handshakes, 1);
    assert_eq!(transport.stats().read_only_over_cap, 0);
    drop(held);
}

#[test]
fn administrators_beyond_the_cap_are_refused_busy() {
    assert_eq!(
        ConnectionLimits::default().admin_connections_max,
        ADMIN_CONNECTIONS_MAX
    );
    cap_holds(ADMIN_CONNECTIONS_MAX, |_| {});
    cap_holds(1, |s| s.limits.admin_connections_max = 1);
}

/// A cap of 0 disables administration: the tool hears why, nothing reaches the node, and the
/// refusal is counted. A cap past the limit does not start.
#[test]
fn a_cap_of_zero_disables_administration() {
    let (me, mut transport) = node(|s| s.limits.admin_connections_max = 0);
    let client = AdminClient::new(&me, None, Duration::from_secs(20)).expect("a client");
    let (answer, requests) = exchange(
        &mut transport,
        client,
        AdminRequest::Status,
        &AdminReply::Done,
    );
    assert!(
        matches!(
            answer,
            Err(AdminError::Refused(RefuseReason::AdminDisabled))
        ),
        "{answer:?}"
    );
    assert!(requests.is_empty());
    assert_eq!(transport.stats().refused_handshakes, 1);
    assert_eq!(transport.stats().admin_connections, 0);

    let me = free_address();
    let mut beyond = settings(Some(&me), std::slice::from_ref(&me));
    beyond.limits.admin_connections_max = ADMIN_CONNECTIONS_LIMIT + 1;
    assert!(matches!(
        TcpTransport::bind(beyond),
        Err(TcpError::AdminConnectionsTooMany { value, max })
            if value == ADMIN_CONNECTIONS_LIMIT + 1 && max == ADMIN_CONNECTIONS_LIMIT
    ));
}

/// One of this host's addresses other than loopback, if it has one (found by routing, no
/// packet sent).
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// Without a password, an administrator dialling from an address other than loopback is
/// refused, unless `admin_from_anywhere`. Skipped on a host with loopback only.
#[test]
fn without_password_non_loopback_administrators_need_the_option() {
    let Some(ip) = non_loopback_ip() else {
        eprintln!("no address other than loopback: skipped");
        return;
    };
    for anywhere in [false, true] {
        let Ok(listener) = std::net::TcpListener::bind((ip, 0)) else {
            eprintln!("cannot bind {ip}: skipped");
            return;
        };
        let me = listener.local_addr().expect("bound").to_string();
        drop(listener);
        let mut settings = settings(Some(&me), std::slice::from_ref(&me));
        settings.admin_from_anywhere = anywhere;
        let mut transport = TcpTransport::bind(settings).expect("the transport starts");
        let client = AdminClient::new(&me, None, Duration::from_secs(20)).expect("a client");
        let (answer, requests) = exchange(
            &mut transport,
            client,
            AdminRequest::Status,
            &AdminReply::Done,
        );
        if anywhere {
            assert_eq!(answer.expect("served"), AdminReply::Done);
            assert_eq!(requests, [AdminRequest::Status]);
        } else {
            assert!(
                matches!(
                    answer,
                    Err(AdminError::Refused(RefuseReason::AdminNotAllowed))
                ),
                "{answer:?}"
            );
            assert!(requests.is_empty());
            assert_eq!(transport.stats().refused_handshakes, 1);
        }
    }
}
