//! [`TcpTransport`]: one TCP connection per pair of nodes, driven by a mio poller.
//!
//! The node whose address sorts higher dials the other; read-only nodes dial every voter and
//! are never dialled. Every connection starts with the dialler's
//! [`Hello`](crate::handshake::Hello) and the acceptor's
//! [`HelloReply`](crate::handshake::HelloReply), each in one frame, encrypted and authenticated
//! when the cluster has a password ([`crate::secure`]); after that, frames carry the driver's
//! messages. Until its handshake is done, a connection accepts only small frames. A link that
//! reads nothing for `connection_timeout` is dropped and dialled again after
//! `connection_retry_time`. Bad input — an oversized or undecodable frame, a refused hello, bytes
//! that fail authentication — drops that connection, is logged, and is counted in
//! [`TransportCounters`].

mod connection;
mod settings;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use self::connection::{Connection, Fault, Progress, Stage};
pub use self::settings::{BindState, Keepalive, TcpError, TcpSettings};
use crate::resolve::{Lookup, Resolver};
use crate::{Incoming, Transport, TransportCounters, Wake};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONNECTION: usize = 2;

/// The first pause between dials of a peer that has no link; it doubles up to
/// `connection_retry_time`.
const DIAL_BACKOFF_MIN: Duration = Duration::from_millis(20);

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
    /// Host names resolve on its thread, never in the poll loop.
    resolver: Resolver,
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
        let waker = Arc::new(MioWaker(
            mio::Waker::new(poll.registry(), WAKER).map_err(TcpError::Poll)?,
        ));
        let resolver_waker = Arc::clone(&waker);
        let resolver = Resolver::new(settings.resolver, Arc::new(move || resolver_waker.wake()));
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
            waker,
            connections: BTreeMap::new(),
            next_token: FIRST_CONNECTION,
            links: BTreeMap::new(),
            next_dial,
            dial_backoff: BTreeMap::new(),
            resolver,
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
        let Some(address) = self.settings.listen_address().map(str::to_owned) else {
            self.bind = BindState::Bound;
            return;
        };
        let socket_address = match self.resolver.lookup(&address, now) {
            // The resolver wakes the poll loop once it knows.
            Lookup::Pending => return,
            Lookup::Ready(socket_address) => Ok(socket_address),
            Lookup::Failed { error, .. } => Err(TcpError::Resolve {
                address: address.clone(),
                source: error,
            }),
        };
        let attempts = attempts + 1;
        match socket_address.and_then(|socket_address| listen(&self.poll, &address, socket_address))
        {
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
        TransportCounters {
            resolve_failures: self.resolver.counters().failures,
            ..self.stats
        }
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
            let address = match self.resolver.lookup(&peer, now) {
                // Still due: the resolver wakes the poll loop once it knows.
                Lookup::Pending => continue,
                Lookup::Ready(address) => address,
                Lookup::Failed { error, until } => {
                    tracing::debug!(%peer, %error, "cannot resolve");
                    let retry = now + self.settings.connection_retry_time;
                    self.next_dial.insert(peer, until.max(retry));
                    continue;
                }
            };
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
            if let Err(error) = self.dial(&peer, address, now) {
                tracing::debug!(%peer, %error, "dial failed");
            }
        }
    }

    fn dialling(&self, peer: &str) -> bool {
        self.connections
            .values()
            .any(|c| c.peer.as_deref() == Some(peer) && c.stage != Stage::Open)
    }

    fn dial(&mut self, peer: &str, address: SocketAddr, now: Instant) -> io::Result<()> {
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
        let connection = Connection::new(stream, peer, stage, &self.settings, now);
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
        if let Err(fault) = self.service(token, readable, writable, now, out) {
            self.close(token, &fault);
        }
    }

    fn service(
        &mut self,
        token: Token,
        readable: bool,
        writable: bool,
        now: Instant,
        out: &mut Vec<Incoming>,
    ) -> Result<(), Fault> {
        let Some(connection) = self.connections.get_mut(&token) else {
            return Ok(());
        };
        if writable && connection.stage == Stage::Connecting {
            if let Some(error) = connection
                .stream
                .take_error()
                .map_err(|e| Fault::Io(e.to_string()))?
            {
                return Err(Fault::Io(format!("connect failed: {error}")));
            }
            if connection.stream.peer_addr().is_err() {
                return Ok(()); // still connecting
            }
            connection.send_hello(&self.settings)?;
        }
        connection.flush(now)?;
        if !readable {
            return Ok(());
        }
        // Edge-triggered readiness: read until the socket would block, draining frames as the
        // decoder's bounded buffer fills.
        loop {
            let Some(connection) = self.connections.get_mut(&token) else {
                return Ok(());
            };
            let progress = connection.read()?;
            connection.last_read = now;
            self.take_frames(token, now, out)?;
            match progress {
                Progress::More => {}
                Progress::WouldBlock => return Ok(()),
                Progress::Closed => return Err(self.closed_by_peer(token)),
            }
        }
    }

    /// Handles the complete frames a connection has buffered.
    fn take_frames(
        &mut self,
        token: Token,
        now: Instant,
        out: &mut Vec<Incoming>,
    ) -> Result<(), Fault> {
        loop {
            let Some(connection) = self.connections.get_mut(&token) else {
                return Ok(());
            };
            let Some(frame) = connection.next_frame()? else {
                return Ok(());
            };
            let stage = connection.stage;
            match stage {
                Stage::Open => {
                    connection.deliver(frame, out);
                    continue;
                }
                Stage::AwaitHello => connection.on_hello(&frame, &self.settings, now)?,
                Stage::AwaitReply => connection.on_reply(&frame, &self.settings)?,
                Stage::AwaitConfirm => {
                    connection.on_confirm(&self.settings);
                    connection.deliver(frame, out);
                }
                Stage::Connecting => {
                    return Err(Fault::BadFrame(
                        "frame before the connection finished".into(),
                    ));
                }
            }
            // The handshake answered or confirmed: send it now, as no write readiness may come.
            connection.flush(now)?;
            if connection.stage == Stage::Open {
                let peer = connection.peer.clone().unwrap_or_default();
                self.replace_link(peer, token);
            }
        }
    }

    /// The fault for a connection its peer closed; a close in the middle of an encrypted
    /// handshake is how an acceptor with another password answers.
    fn closed_by_peer(&self, token: Token) -> Fault {
        let handshaking = self
            .connections
            .get(&token)
            .is_some_and(|c| c.stage == Stage::AwaitReply);
        if handshaking && self.settings.key.is_some() {
            Fault::Refused("closed by the peer during the handshake: another password?".into())
        } else {
            Fault::Io("closed by the peer".into())
        }
    }

    /// Makes `token` the link to `peer`, closing an older one.
    fn replace_link(&mut self, peer: String, token: Token) {
        self.dial_backoff.remove(&peer);
        if let Some(old) = self.links.insert(peer, token)
            && old != token
        {
            self.close(old, &Fault::Io("replaced by a newer connection".into()));
        }
    }

    fn close(&mut self, token: Token, fault: &Fault) {
        let Some(mut connection) = self.connections.remove(&token) else {
            return;
        };
        match fault {
            Fault::Io(_) | Fault::Dropped(_) => {}
            Fault::BadFrame(_) => self.stats.bad_frames += 1,
            Fault::Refused(_) => self.stats.refused_handshakes += 1,
            Fault::Authentication(_) => self.stats.auth_failures += 1,
        }
        let reason = fault.reason();
        match fault {
            Fault::Io(_) => tracing::info!(peer = ?connection.peer, reason, "connection closed"),
            _ => tracing::warn!(peer = ?connection.peer, reason, "connection dropped"),
        }
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
            let sent = connection.queue(&[]).and_then(|()| connection.flush(now));
            if let Err(fault) = sent {
                self.close(token, &fault);
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
            let fault = Fault::Io("read nothing within the connection timeout".into());
            self.close(token, &fault);
        }
    }
}

impl Transport for TcpTransport {
    fn send(&mut self, to: &str, frame: Bytes) -> bool {
        let Some(&token) = self.links.get(to) else {
            self.stats.dropped_frames += 1;
            return false;
        };
        let queue_max = self.settings.send_queue_bytes_max;
        let Some(connection) = self.connections.get_mut(&token) else {
            return false;
        };
        if connection.queued_bytes() + frame.len() + 4 > queue_max {
            self.stats.dropped_frames += 1;
            return false;
        }
        let now = Instant::now();
        let queued = connection
            .queue(&frame)
            .and_then(|()| connection.flush(now));
        if let Err(fault) = queued {
            self.close(token, &fault);
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

    fn disconnect(&mut self, peer: &str) {
        if let Some(&token) = self.links.get(peer) {
            let fault = Fault::Dropped("the peer sent an undecodable message".into());
            self.close(token, &fault);
        }
    }

    fn read_only_peers(&self) -> Vec<String> {
        self.links
            .keys()
            .filter(|name| name.starts_with(crate::READ_ONLY_PREFIX))
            .cloned()
            .collect()
    }

    fn counters(&self) -> TransportCounters {
        self.stats()
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
        .filter(|peer| match settings.self_address() {
            Some(me) => peer.as_str() < me,
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

fn listen(poll: &Poll, address: &str, socket_address: SocketAddr) -> Result<TcpListener, TcpError> {
    let listen_error = |source| TcpError::Listen {
        address: address.to_owned(),
        source,
    };
    let mut listener = TcpListener::bind(socket_address).map_err(listen_error)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .map_err(listen_error)?;
    Ok(listener)
}
