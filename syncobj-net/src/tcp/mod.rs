//! [`TcpTransport`]: one TCP connection per pair of nodes, driven by a mio poller.
//!
//! The node whose address sorts higher dials the other; read-only nodes dial every voter and
//! are never dialled. Every connection starts with the dialler's [`Hello`] and the acceptor's
//! [`HelloReply`], each in one frame; after that, frames carry the driver's messages. A link
//! that reads nothing for `connection_timeout` is dropped and dialled again after
//! `connection_retry_time`. Bad input — an oversized or undecodable frame, a refused hello —
//! drops that connection, is logged, and is counted in [`TransportCounters`].

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use thiserror::Error;

use crate::frame::{FrameDecoder, FrameEncoder, ReadStatus};
use crate::handshake::{ClusterId, HandshakeConfig, Hello, HelloReply, Peer, check_hello};
use crate::{Incoming, Transport, TransportCounters, Wake};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONNECTION: usize = 2;

/// The first pause between dials of a peer that has no link; it doubles up to
/// `connection_retry_time`.
const DIAL_BACKOFF_MIN: Duration = Duration::from_millis(20);

/// Settings of a [`TcpTransport`].
#[derive(Clone, Debug)]
pub struct TcpSettings {
    /// This node's address, as the others know it; `None` for a read-only node.
    pub self_address: Option<String>,
    /// The address to listen on; defaults to `self_address`. Read-only nodes do not listen.
    pub bind_address: Option<String>,
    /// Every voter's address, this node's included.
    pub voters: Vec<String>,
    /// The cluster's identity: nodes of other clusters are refused.
    pub cluster: ClusterId,
    /// The largest frame accepted or sent, in bytes.
    pub frame_size_max: u32,
    /// The most bytes queued for one peer before frames to it are dropped.
    pub send_queue_bytes_max: usize,
    /// A link that reads nothing for this long is dropped.
    pub connection_timeout: Duration,
    /// The pause between two dial attempts to one peer.
    pub connection_retry_time: Duration,
    /// Whether read-only nodes may connect.
    pub accept_read_only: bool,
    /// `SO_SNDBUF` of every connection, in bytes; `None` keeps the system's.
    pub send_buffer_size: Option<usize>,
    /// `SO_RCVBUF` of every connection, in bytes; `None` keeps the system's.
    pub recv_buffer_size: Option<usize>,
    /// TCP keepalive of every connection, dialled and accepted alike; `None` leaves it off.
    pub tcp_keepalive: Option<Keepalive>,
    /// The pause between two attempts to bind the listening address.
    pub bind_retry_time: Duration,
    /// How many bind attempts before giving up; 0 retries for ever (PySyncObj's default).
    pub max_bind_retries: u32,
}

/// Where binding the listening address stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindState {
    /// Bound, or nothing to bind (a read-only node).
    Bound,
    /// Not bound yet; another attempt comes after `bind_retry_time`.
    Retrying {
        /// Attempts so far.
        attempts: u32,
        /// Why the last one failed.
        error: String,
    },
    /// `max_bind_retries` attempts failed; the node cannot be reached.
    Failed {
        /// Attempts made.
        attempts: u32,
        /// Why the last one failed.
        error: String,
    },
}

/// TCP keepalive probing: after `idle` without traffic, `count` probes `interval` apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is closed.
    pub count: u32,
}

/// Why a transport could not start.
#[derive(Debug, Error)]
pub enum TcpError {
    /// The bind address does not resolve.
    #[error("cannot resolve bind address {address:?}: {source}")]
    Resolve {
        /// The address.
        address: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// Binding or polling failed.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: String,
        /// The OS error.
        source: io::Error,
    },
    /// The poller could not be created.
    #[error("cannot create the poller: {0}")]
    Poll(io::Error),
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Dialled; waiting for the connect to finish.
    Connecting,
    /// Dialled and connected; our hello is sent, waiting for the reply.
    AwaitReply,
    /// Accepted; waiting for the dialler's hello.
    AwaitHello,
    /// Handshake done: frames flow.
    Open,
}

struct Connection {
    stream: TcpStream,
    /// The peer's address once known (at once when we dialled, after its hello otherwise).
    peer: Option<String>,
    stage: Stage,
    decoder: FrameDecoder,
    out: Vec<u8>,
    last_read: Instant,
    last_write: Instant,
}

/// A TCP transport over mio: see the module documentation.
pub struct TcpTransport {
    settings: TcpSettings,
    poll: Poll,
    events: Events,
    listener: Option<TcpListener>,
    bind: BindState,
    next_bind: Instant,
    waker: Arc<MioWaker>,
    connections: BTreeMap<Token, Connection>,
    next_token: usize,
    /// The open connection to each peer.
    links: BTreeMap<String, Token>,
    /// When each peer this node dials may be dialled next.
    next_dial: BTreeMap<String, Instant>,
    /// The pause before the next dial of each peer that has no link.
    dial_backoff: BTreeMap<String, Duration>,
    stats: TransportCounters,
}

struct MioWaker(mio::Waker);

impl Wake for MioWaker {
    fn wake(&self) {
        if let Err(error) = self.0.wake() {
            tracing::warn!(%error, "cannot wake the poller");
        }
    }
}

impl TcpTransport {
    /// Starts the transport: tries to bind at once (unless read-only), retrying every
    /// `bind_retry_time` from [`poll`](Transport::poll) if that fails, and starts dialling the
    /// peers this node dials.
    ///
    /// # Errors
    /// [`TcpError::Poll`] if the poller cannot be created. Bind failures are not errors here:
    /// see [`bind_state`](Self::bind_state).
    pub fn bind(settings: TcpSettings) -> Result<TcpTransport, TcpError> {
        let poll = Poll::new().map_err(TcpError::Poll)?;
        let waker = mio::Waker::new(poll.registry(), WAKER).map_err(TcpError::Poll)?;
        let now = Instant::now();
        let next_dial = dial_targets(&settings)
            .into_iter()
            .map(|peer| (peer, now))
            .collect();
        let mut transport = TcpTransport {
            settings,
            poll,
            events: Events::with_capacity(256),
            listener: None,
            bind: BindState::Retrying {
                attempts: 0,
                error: String::new(),
            },
            next_bind: now,
            waker: Arc::new(MioWaker(waker)),
            connections: BTreeMap::new(),
            next_token: FIRST_CONNECTION,
            links: BTreeMap::new(),
            next_dial,
            dial_backoff: BTreeMap::new(),
            stats: TransportCounters::default(),
        };
        transport.try_bind(now);
        Ok(transport)
    }

    /// Where binding the listening address stands.
    pub fn bind_state(&self) -> &BindState {
        &self.bind
    }

    /// One bind attempt, if one is due.
    fn try_bind(&mut self, now: Instant) {
        let BindState::Retrying { attempts, .. } = self.bind else {
            return;
        };
        if now < self.next_bind {
            return;
        }
        let address = self
            .settings
            .bind_address
            .clone()
            .or_else(|| self.settings.self_address.clone());
        let Some(address) = address else {
            self.bind = BindState::Bound;
            return;
        };
        let attempts = attempts + 1;
        match listen(&self.poll, &address) {
            Ok(listener) => {
                self.listener = Some(listener);
                self.bind = BindState::Bound;
            }
            Err(error) => {
                let error = error.to_string();
                tracing::warn!(%address, attempts, %error, "cannot bind");
                let max = self.settings.max_bind_retries;
                self.bind = if max > 0 && attempts >= max {
                    BindState::Failed { attempts, error }
                } else {
                    BindState::Retrying { attempts, error }
                };
                self.next_bind = now + self.settings.bind_retry_time;
            }
        }
    }

    /// The address the listener is bound to, if this node listens.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Counters of what went wrong on the wire.
    pub fn stats(&self) -> TransportCounters {
        self.stats
    }

    fn dial_due(&mut self, now: Instant) {
        let due: Vec<String> = self
            .next_dial
            .iter()
            .filter(|&(peer, &at)| {
                at <= now && !self.links.contains_key(peer) && !self.dialling(peer)
            })
            .map(|(peer, _)| peer.clone())
            .collect();
        for peer in due {
            // Back off from a quick first retry (peers start at about the same time) up to
            // `connection_retry_time`; an open link resets it.
            let backoff = self
                .dial_backoff
                .get(&peer)
                .copied()
                .unwrap_or(DIAL_BACKOFF_MIN);
            self.dial_backoff.insert(
                peer.clone(),
                (backoff * 2).min(self.settings.connection_retry_time),
            );
            self.next_dial.insert(
                peer.clone(),
                now + backoff.min(self.settings.connection_retry_time),
            );
            if let Err(error) = self.dial(&peer, now) {
                tracing::debug!(%peer, %error, "dial failed");
            }
        }
    }

    fn dialling(&self, peer: &str) -> bool {
        self.connections
            .values()
            .any(|c| c.peer.as_deref() == Some(peer) && c.stage != Stage::Open)
    }

    fn dial(&mut self, peer: &str, now: Instant) -> io::Result<()> {
        let address = resolve(peer)?;
        let stream = TcpStream::connect(address)?;
        configure(&stream, &self.settings)?;
        self.register(stream, Some(peer.to_owned()), Stage::Connecting, now)
    }

    fn register(
        &mut self,
        mut stream: TcpStream,
        peer: Option<String>,
        stage: Stage,
        now: Instant,
    ) -> io::Result<()> {
        let token = Token(self.next_token);
        self.next_token += 1;
        self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let decoder = FrameDecoder::new(self.settings.frame_size_max);
        let connection = Connection {
            stream,
            peer,
            stage,
            decoder,
            out: Vec::new(),
            last_read: now,
            last_write: now,
        };
        self.connections.insert(token, connection);
        Ok(())
    }

    fn accept_all(&mut self, now: Instant) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, _)) => {
                    let configured = configure(&stream, &self.settings);
                    if let Err(error) = configured
                        .and_then(|()| self.register(stream, None, Stage::AwaitHello, now))
                    {
                        tracing::warn!(%error, "cannot set up an accepted connection");
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    return;
                }
            }
        }
    }

    fn on_event(
        &mut self,
        token: Token,
        readable: bool,
        writable: bool,
        now: Instant,
        out: &mut Vec<Incoming>,
    ) {
        let result = self.service(token, readable, writable, now, out);
        if let Err(reason) = result {
            self.close(token, &reason);
        }
    }

    fn service(
        &mut self,
        token: Token,
        readable: bool,
        writable: bool,
        now: Instant,
        out: &mut Vec<Incoming>,
    ) -> Result<(), String> {
        let Some(connection) = self.connections.get_mut(&token) else {
            return Ok(());
        };
        if writable && connection.stage == Stage::Connecting {
            if let Some(error) = connection.stream.take_error().map_err(|e| e.to_string())? {
                return Err(format!("connect failed: {error}"));
            }
            if connection.stream.peer_addr().is_err() {
                return Ok(()); // still connecting
            }
            let mut hello = Vec::new();
            Hello::new(self.settings.cluster, own_peer(&self.settings))
                .encode(&mut hello)
                .map_err(|e| format!("cannot encode our hello: {e}"))?;
            queue_frame(connection, &hello, self.settings.frame_size_max)?;
            connection.stage = Stage::AwaitReply;
        }
        flush(connection, now).map_err(|e| format!("write failed: {e}"))?;
        if !readable {
            return Ok(());
        }
        // Edge-triggered readiness: read until the socket would block, draining frames as the
        // decoder's bounded buffer fills.
        loop {
            let Some(connection) = self.connections.get_mut(&token) else {
                return Ok(());
            };
            let status = connection
                .decoder
                .read_from(&mut connection.stream)
                .map_err(|e| format!("read failed: {e}"))?;
            connection.last_read = now;
            self.take_frames(token, out)?;
            match status {
                ReadStatus::BufferFull => {}
                ReadStatus::WouldBlock => return Ok(()),
                ReadStatus::Closed => return Err("closed by the peer".into()),
            }
        }
    }

    /// Handles the complete frames a connection has buffered.
    fn take_frames(&mut self, token: Token, out: &mut Vec<Incoming>) -> Result<(), String> {
        loop {
            let Some(connection) = self.connections.get_mut(&token) else {
                return Ok(());
            };
            let frame = match connection.decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(()),
                Err(error) => {
                    self.stats.bad_frames += 1;
                    return Err(format!("bad frame: {error}"));
                }
            };
            match connection.stage {
                // Empty frames only keep an idle link alive.
                Stage::Open if frame.is_empty() => {}
                Stage::Open => {
                    let from = connection.peer.clone().unwrap_or_default();
                    out.push(Incoming { from, frame });
                }
                Stage::AwaitHello => self.on_hello(token, &frame)?,
                Stage::AwaitReply => self.on_reply(token, &frame)?,
                Stage::Connecting => return Err("frame before the connection finished".into()),
            }
        }
    }

    fn on_hello(&mut self, token: Token, frame: &[u8]) -> Result<(), String> {
        let config = HandshakeConfig {
            cluster: self.settings.cluster,
            voters: self.settings.voters.iter().cloned().collect(),
            accept_read_only: self.settings.accept_read_only,
        };
        let verdict = Hello::decode(frame)
            .map_err(|e| e.refuse_reason())
            .and_then(|hello| check_hello(&hello, &config).map(|()| hello));
        let frame_size_max = self.settings.frame_size_max;
        let now = Instant::now();
        let Some(connection) = self.connections.get_mut(&token) else {
            return Ok(());
        };
        let hello = match verdict {
            Ok(hello) => hello,
            Err(reason) => {
                self.stats.refused_handshakes += 1;
                let mut reply = Vec::new();
                HelloReply::Refused(reason).encode(&mut reply);
                // Best effort: the connection closes right after.
                let _ = queue_frame(connection, &reply, frame_size_max)
                    .map(|()| flush(connection, now));
                return Err(format!("hello refused: {reason:?}"));
            }
        };
        let mut reply = Vec::new();
        HelloReply::Accepted.encode(&mut reply);
        queue_frame(connection, &reply, frame_size_max)?;
        let peer = match hello.node {
            Peer::Voter(address) => address,
            Peer::ReadOnly => format!("readonly:{}", token.0),
        };
        connection.peer = Some(peer.clone());
        connection.stage = Stage::Open;
        self.replace_link(peer, token);
        Ok(())
    }

    fn on_reply(&mut self, token: Token, frame: &[u8]) -> Result<(), String> {
        match HelloReply::decode(frame) {
            Ok(HelloReply::Accepted) => {}
            Ok(HelloReply::Refused(reason)) => {
                self.stats.refused_handshakes += 1;
                return Err(format!("peer refused our hello: {reason:?}"));
            }
            Err(error) => return Err(format!("undecodable hello reply: {error}")),
        }
        let Some(connection) = self.connections.get_mut(&token) else {
            return Ok(());
        };
        connection.stage = Stage::Open;
        let peer = connection.peer.clone().unwrap_or_default();
        self.replace_link(peer, token);
        Ok(())
    }

    /// Makes `token` the link to `peer`, closing an older one.
    fn replace_link(&mut self, peer: String, token: Token) {
        self.dial_backoff.remove(&peer);
        if let Some(old) = self.links.insert(peer, token)
            && old != token
        {
            self.close(old, "replaced by a newer connection");
        }
    }

    fn close(&mut self, token: Token, reason: &str) {
        let Some(mut connection) = self.connections.remove(&token) else {
            return;
        };
        tracing::info!(peer = ?connection.peer, reason, "connection closed");
        if let Err(error) = self.poll.registry().deregister(&mut connection.stream) {
            tracing::debug!(%error, "deregister failed");
        }
        if let Some(peer) = &connection.peer
            && self.links.get(peer) == Some(&token)
        {
            self.links.remove(peer);
        }
    }

    /// Sends an empty frame on every open link that wrote nothing for a third of the
    /// connection timeout, so that the peer does not take it for dead.
    fn keep_alive(&mut self, now: Instant) {
        let quiet = self.settings.connection_timeout / 3;
        let frame_max = self.settings.frame_size_max;
        let idle: Vec<Token> = self
            .connections
            .iter()
            .filter(|(_, c)| {
                c.stage == Stage::Open && now.saturating_duration_since(c.last_write) > quiet
            })
            .map(|(&t, _)| t)
            .collect();
        for token in idle {
            let Some(connection) = self.connections.get_mut(&token) else {
                continue;
            };
            let sent = queue_frame(connection, &[], frame_max)
                .and_then(|()| flush(connection, now).map_err(|e| e.to_string()));
            if let Err(reason) = sent {
                self.close(token, &reason);
            }
        }
    }

    fn drop_silent(&mut self, now: Instant) {
        let timeout = self.settings.connection_timeout;
        let silent: Vec<Token> = self
            .connections
            .iter()
            .filter(|(_, c)| now.saturating_duration_since(c.last_read) > timeout)
            .map(|(&t, _)| t)
            .collect();
        for token in silent {
            self.stats.link_timeouts += 1;
            self.close(token, "read nothing within the connection timeout");
        }
    }
}

impl Transport for TcpTransport {
    fn send(&mut self, to: &str, frame: Bytes) -> bool {
        let Some(&token) = self.links.get(to) else {
            self.stats.dropped_frames += 1;
            return false;
        };
        let (frame_max, queue_max) = (
            self.settings.frame_size_max,
            self.settings.send_queue_bytes_max,
        );
        let Some(connection) = self.connections.get_mut(&token) else {
            return false;
        };
        if connection.out.len() + frame.len() + 4 > queue_max {
            self.stats.dropped_frames += 1;
            return false;
        }
        let now = Instant::now();
        let queued = queue_frame(connection, &frame, frame_max)
            .and_then(|()| flush(connection, now).map_err(|e| e.to_string()));
        if let Err(reason) = queued {
            self.close(token, &reason);
            return false;
        }
        true
    }

    fn poll(&mut self, timeout: Duration, out: &mut Vec<Incoming>) {
        let now = Instant::now();
        self.try_bind(now);
        self.dial_due(now);
        self.drop_silent(now);
        self.keep_alive(now);
        let wait = timeout
            .min(self.settings.connection_retry_time)
            .min(self.settings.connection_timeout / 3);
        if let Err(error) = self.poll.poll(&mut self.events, Some(wait)) {
            if error.kind() != io::ErrorKind::Interrupted {
                tracing::warn!(%error, "poll failed");
            }
            return;
        }
        let now = Instant::now();
        let ready: Vec<(Token, bool, bool)> = self
            .events
            .iter()
            .map(|e| {
                (
                    e.token(),
                    e.is_readable() || e.is_read_closed(),
                    e.is_writable(),
                )
            })
            .collect();
        for (token, readable, writable) in ready {
            match token {
                LISTENER => self.accept_all(now),
                WAKER => {}
                token => self.on_event(token, readable, writable, now, out),
            }
        }
    }

    fn waker(&self) -> Arc<dyn Wake> {
        Arc::clone(&self.waker) as Arc<dyn Wake>
    }

    fn is_connected(&self, node: &str) -> bool {
        self.links.contains_key(node)
    }

    fn counters(&self) -> TransportCounters {
        self.stats
    }

    fn bound(&self) -> Result<bool, String> {
        match &self.bind {
            BindState::Bound => Ok(true),
            BindState::Retrying { .. } => Ok(false),
            BindState::Failed { attempts, error } => Err(format!(
                "gave up binding after {attempts} attempts: {error}"
            )),
        }
    }
}

/// The peers this node dials: every voter whose address sorts below its own, or every voter
/// for a read-only node.
fn dial_targets(settings: &TcpSettings) -> Vec<String> {
    settings
        .voters
        .iter()
        .filter(|peer| match &settings.self_address {
            Some(me) => peer.as_str() < me.as_str(),
            None => true,
        })
        .cloned()
        .collect()
}

/// Socket options of every connection: no Nagle delay, buffer sizes, keepalive.
fn configure(stream: &TcpStream, settings: &TcpSettings) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let socket = socket2::SockRef::from(stream);
    if let Some(size) = settings.send_buffer_size {
        socket.set_send_buffer_size(size)?;
    }
    if let Some(size) = settings.recv_buffer_size {
        socket.set_recv_buffer_size(size)?;
    }
    if let Some(keepalive) = settings.tcp_keepalive {
        let probing = socket2::TcpKeepalive::new()
            .with_time(keepalive.idle)
            .with_interval(keepalive.interval)
            .with_retries(keepalive.count);
        socket.set_tcp_keepalive(&probing)?;
    }
    Ok(())
}

fn own_peer(settings: &TcpSettings) -> Peer {
    settings
        .self_address
        .clone()
        .map_or(Peer::ReadOnly, Peer::Voter)
}

fn listen(poll: &Poll, address: &str) -> Result<TcpListener, TcpError> {
    let socket_address = resolve(address).map_err(|source| TcpError::Resolve {
        address: address.to_owned(),
        source,
    })?;
    let mut listener = TcpListener::bind(socket_address).map_err(|source| TcpError::Listen {
        address: address.to_owned(),
        source,
    })?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .map_err(|source| TcpError::Listen {
            address: address.to_owned(),
            source,
        })?;
    Ok(listener)
}

fn resolve(address: &str) -> io::Result<SocketAddr> {
    address.to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{address} resolves to nothing"),
        )
    })
}

fn queue_frame(
    connection: &mut Connection,
    payload: &[u8],
    frame_size_max: u32,
) -> Result<(), String> {
    FrameEncoder::new(frame_size_max)
        .encode(payload, &mut connection.out)
        .map_err(|e| format!("cannot frame: {e}"))
}

/// Writes as much of the send queue as the socket takes.
fn flush(connection: &mut Connection, now: Instant) -> io::Result<()> {
    if connection.stage == Stage::Connecting {
        return Ok(());
    }
    while !connection.out.is_empty() {
        match connection.stream.write(&connection.out) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "socket closed")),
            Ok(written) => {
                connection.out.drain(..written);
                connection.last_write = now;
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
