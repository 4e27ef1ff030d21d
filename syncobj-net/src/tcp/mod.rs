//! [`TcpTransport`]: one TCP connection per pair of nodes, driven by a mio poller.
//!
//! The node whose address sorts higher dials the other; read-only nodes dial every voter and
//! are never dialled. Every connection starts with the dialler's
//! [`Hello`](crate::handshake::Hello) and the acceptor's
//! [`HelloReply`](crate::handshake::HelloReply), each in one frame, encrypted and authenticated
//! when the cluster has a password ([`crate::secure`]); after that, frames carry the driver's
//! messages. Until its handshake is done, a connection accepts only small frames. A link that
//! reads nothing for `connection_timeout` is dropped. Bad input — an oversized or undecodable frame, a refused hello, bytes
//! that fail authentication — drops that connection and is counted in [`WireStats`], as is
//! every other way a connection ends.
//!
//! # What a stranger may cost ([`ConnectionLimits`])
//! * **Accepting**: at most `accepts_per_second` new connections a second (a token bucket
//!   holding one second's worth). Past it the listener leaves the poller until the next token,
//!   and one connection per pause is reset as soon as accepted (`accepts_rate_limited`); the
//!   others wait in the kernel's backlog, which drops what overflows. A flood thus costs at
//!   most two accepts per token.
//! * **Handshakes**: at most `unauthenticated_connections_max` accepted connections in their
//!   handshake at once (one more is reset, `unauthenticated_over_cap`); each must finish it
//!   within `handshake_timeout` (`handshake_timeouts`), whatever it trickles; its frames are
//!   at most [`HANDSHAKE_FRAME_MAX`] bytes.
//! * **Read-only nodes**: refused altogether unless `accept_read_only`; at most
//!   `read_only_links_max` linked (one more is refused as busy, `read_only_over_cap`); their
//!   frames at most `read_only_frame_size_max` bytes (longer drops the link, `bad_frames`).
//! * **Strangers** (voters of the cluster that are not peers): refused unless the layer above
//!   admits them ([`Transport::admit_strangers`]); at most [`STRANGER_LINKS_MAX`] linked (one
//!   more is refused as busy, `strangers_refused`).
//! * **Read buffers**: every read lands in one scratch buffer of the transport; a connection's
//!   own buffers hold only what it received and has not handed out, in an allocation of that
//!   size (a frame larger than one read chunk gets exactly its size once its header is in),
//!   let go of once empty. Before each read, the transport checks that the most the read could
//!   add fits the budgets: all connections together at most `incoming_bytes_max`, read-only
//!   links at most `read_only_bytes_max`. A read that does not fit waits (`reads_paused`): the
//!   bytes stay in the kernel and TCP slows the sender down; such a connection is not counted
//!   as silent meanwhile. The budgets' minimums ([`incoming_bytes_min`],
//!   [`read_only_bytes_min`]) keep room for a voter's largest frame whatever strangers hold.
//!
//! # Peers and events
//! The other voters of [`TcpSettings::voters`] are peers 0, 1, 2… in that order;
//! [`add_peer`](Transport::add_peer) numbers new addresses after them, and they are dialled or
//! accepted by the same rule (the address that sorts higher dials). A read-only node gets the
//! lowest free id when its link opens ([`TransportEvent::ReadOnlyJoined`], then `LinkUp`), and
//! gives it back when the link closes (`LinkDown`, then `ReadOnlyLeft`); at most 256 are linked
//! at once. A stranger is numbered the same way (`StrangerJoined`, `StrangerLeft`), and becomes
//! an ordinary peer, its id and link kept, when [`add_peer`](Transport::add_peer) names it.
//!
//! # Dialling and rejoining
//! A voter without a link to a peer it dials dials it again at once, then after a pause that
//! starts at 20 ms and doubles up to `connection_retry_time` while dials fail.
//! A voter that its peer dials knocks: it dials that peer itself 100 ms after their
//! link went down (or after its first poll), on the same back-off. So a link comes back from
//! whichever side reaches the other first: a peer that restarts, or that can reach this node
//! while this node cannot reach it (a one-way cut), links at once instead of waiting out this
//! node's back-off, and a voter whose membership lags (it does not know this node, so it never
//! dials it) is linked all the same. A link that opens, whoever dialled, is proof the peer is alive:
//! the back-off starts over, and a link this node dials that goes down again is dialled again
//! within 20 ms. The first link back after this node had no voter linked for half a second
//! says its own network is back: the other voters it has no link to are dialled at once (a
//! connect still waiting for an answer is made anew), their back-off kept. Dials that fail
//! (nothing listens, no answer, a refused hello) never reset it, so a peer that is really down
//! is dialled a few times a second at first, then once per `connection_retry_time` (and at
//! most twice a second more when this node's own links come and go). One exception: while
//! this node is linked to no majority of the voters, itself counted, it redials the voters
//! it was linked to before at least every 100 ms: cut off from a cluster it was part of, its
//! own network is the likely cause, and its first dial after the cut heals brings it back
//! (the other side has backed off by then). Peers never reached keep the back-off. Of two connections between
//! two voters, the one the higher address dialled stays the link, the other is closed
//! (`links_replaced`): crossing dials settle on one link. One that opens while the usual one is
//! the link is left open, unlinked, for the peer to close (it may be the peer's link until the
//! usual one opens at its end: closing it would take that link down for nothing), and closed
//! after the handshake timeout if the peer does not.
//!
//! `LinkUp` comes when a connection finishes its handshake and becomes the peer's link,
//! `LinkDown` when that link closes; a newer connection that replaces a live link reports
//! nothing. `Bound` comes once, when the listener is bound (at once for a read-only node) or
//! gives up after `max_bind_retries` attempts.
//!
//! # Limits per poll
//! One [`poll`](Transport::poll) takes at most [`TcpSettings::poll_frames_max`] frames and
//! [`TcpSettings::poll_bytes_max`] bytes off the connections, reading them in turns (one read
//! chunk, or one whole frame, per connection per turn) so that a flooding peer cannot starve the
//! others. What a poll leaves stays in the kernel's socket buffers (and at most one frame and
//! one read chunk per connection in its decoder); since mio reports readiness only on edges,
//! the connections left unfinished are remembered and read first at the next poll, which then
//! does not wait.

mod admission;
mod budget;
mod connection;
mod lanes;
mod peers;
mod settings;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use self::admission::AcceptBucket;
use self::budget::{Class, Holdings};
use self::connection::{AdminExchange, Connection, Fault, Next, PollBudget, Progress, Room, Stage};
pub use self::lanes::FRAGMENT_BYTES;
use self::lanes::Lane;
use self::peers::{Kind, Peers};
pub use self::settings::{
    BindState, ConnectionLimits, HANDSHAKE_CONNECTION_BYTES_MAX, HANDSHAKE_FRAME_MAX, Keepalive,
    POLL_BYTES_MAX_DEFAULT, POLL_FRAMES_MAX_DEFAULT, POLL_SPIN_DEFAULT, TcpError, TcpSettings,
    incoming_bytes_min, link_bytes_max, read_only_bytes_min,
};
use crate::frame::READ_CHUNK_BYTES_DEFAULT;
use crate::resolve::{Lookup, ResolveError, Resolver};
use crate::{
    BindFailure, PeerId, READ_ONLY_PREFIX, STRANGER_LINKS_MAX, Transport, TransportCounters,
    TransportEvent, Wake, WireStats,
};

/// The default of [`ConnectionLimits::admin_connections_max`]: the most administrators'
/// connections ([`crate::admin`]) open at once.
pub const ADMIN_CONNECTIONS_MAX: usize = 4;

/// The largest [`ConnectionLimits::admin_connections_max`] accepted: each administrator's
/// connection may hold a reply of up to [`crate::admin::ADMIN_REPLY_BYTES_MAX`] bytes.
pub const ADMIN_CONNECTIONS_LIMIT: usize = 64;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONNECTION: usize = 2;

/// The first pause between dials of a peer that has no link; it doubles up to
/// `connection_retry_time` while dials fail, and starts over when a link opens.
const DIAL_BACKOFF_MIN: Duration = Duration::from_millis(20);

/// How long a voter that its peer dials waits, once their link is down (or from its first
/// poll), before it knocks (dials that peer itself): longer than a dial and its handshake take on a
/// local network, so that on a healthy one the usual dial comes first.
const KNOCK_DELAY: Duration = Duration::from_millis(100);

/// How long this node must have had no voter linked before the first link back counts as its
/// network coming back, which has the other voters dialled at once: at most one such round of
/// dials per this long, whatever the links do.
const CUT_OFF_MIN: Duration = Duration::from_millis(500);

/// The longest pause between dials of an unlinked voter that this node was linked to before,
/// while this node is linked to no majority of the voters (itself counted): cut off from a
/// cluster it was part of, the likely cause is its own network, and the first dial after the
/// cut heals brings it back. Ten dials a second per such peer, from the minority side only;
/// the majority keeps its back-off, and so do peers never reached (a cluster starting up, a
/// peer that never came).
const MINORITY_REDIAL_MAX: Duration = Duration::from_millis(100);

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
    /// Every peer: its id, name, link and dial schedule.
    peers: Peers,
    /// Connections that may hold input the last poll did not take: mio reports readiness once
    /// per edge, so these are read at the next poll without waiting for an event.
    readable: BTreeSet<Token>,
    /// The connection read last: the next poll starts after it, so that each gets its turn.
    cursor: Token,
    /// Scratch space for one poll's order of turns (at most one entry per connection).
    turns: VecDeque<Token>,
    /// Events not handed out yet: the current poll's, and links lost in `send` or `disconnect`
    /// since the last poll. At most one poll's frames plus two events per peer and `Bound`.
    queue: Vec<TransportEvent>,
    /// Host names resolve on its thread, never in the poll loop.
    resolver: Resolver,
    stats: Arc<WireStats>,
    /// Every read off a socket lands here first (one read chunk, shared by all connections):
    /// a connection's own buffers hold only what it needs.
    scratch: Vec<u8>,
    /// Bytes held in the connections' read buffers, against the budgets.
    holdings: Holdings,
    /// Connections not read until the budget has room for their next read.
    paused: BTreeSet<Token>,
    /// The accept rate's tokens.
    bucket: AcceptBucket,
    /// While the listener is out of the poller for lack of tokens: when it comes back.
    listener_paused_until: Option<Instant>,
    /// The number the next administrator's request goes up under.
    next_admin_id: u64,
    /// Whether strangers are admitted ([`Transport::admit_strangers`]).
    strangers: bool,
    /// Whether a frame was sent since the last poll, or the last poll had events: the next
    /// poll then spins a while before it sleeps ([`TcpSettings::poll_spin`]).
    active: bool,
    /// Since when no voter is linked to this node (from its start), while none is.
    cut_off_since: Option<Instant>,
    /// Whether `poll` ran: the first knocks are timed from the first poll, when the usual
    /// dials start too (a transport may be built long before it is polled).
    polled: bool,
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
    /// Starts the transport: numbers the other voters as peers, tries to bind at once (unless
    /// read-only), retrying every `bind_retry_time` from [`poll`](Transport::poll) if that
    /// fails, and starts dialling the peers this node dials.
    ///
    /// # Errors
    /// [`TcpError::Zero`] or [`TcpError::BudgetTooSmall`] for limits that would refuse every
    /// connection or stall a link for ever ([`ConnectionLimits`]);
    /// [`TcpError::AdminConnectionsTooMany`] past [`ADMIN_CONNECTIONS_LIMIT`]; [`TcpError::Poll`] if the
    /// poller cannot be created. Bind failures are not errors here: see
    /// [`bind_state`](Self::bind_state) and [`TransportEvent::Bound`].
    pub fn bind(settings: TcpSettings) -> Result<TcpTransport, TcpError> {
        settings.check()?;
        let poll = Poll::new().map_err(TcpError::Poll)?;
        let waker = Arc::new(MioWaker(
            mio::Waker::new(poll.registry(), WAKER).map_err(TcpError::Poll)?,
        ));
        let resolver_waker = Arc::clone(&waker);
        let resolver = Resolver::new(settings.resolver, Arc::new(move || resolver_waker.wake()));
        let now = Instant::now();
        let voters = settings.voters.clone();
        let limits = settings.limits;
        let mut transport = TcpTransport {
            settings,
            poll,
            events: Events::with_capacity(256),
            listener: None,
            bind: BindState::Retrying {
                attempts: 0,
                last: None,
            },
            next_bind: now,
            waker,
            connections: BTreeMap::new(),
            next_token: FIRST_CONNECTION,
            peers: Peers::default(),
            readable: BTreeSet::new(),
            cursor: Token(0),
            turns: VecDeque::new(),
            queue: Vec::new(),
            resolver,
            stats: Arc::default(),
            scratch: vec![0; READ_CHUNK_BYTES_DEFAULT],
            holdings: Holdings::new(limits.incoming_bytes_max, limits.read_only_bytes_max),
            paused: BTreeSet::new(),
            bucket: AcceptBucket::new(limits.accepts_per_second, now),
            listener_paused_until: None,
            next_admin_id: 0,
            strangers: false,
            active: false,
            cut_off_since: Some(now),
            polled: false,
        };
        for address in &voters {
            transport.add_voter(address, now);
        }
        transport.try_bind(now);
        Ok(transport)
    }

    /// Where binding the listening address stands.
    pub fn bind_state(&self) -> &BindState {
        &self.bind
    }

    /// The address the listener is bound to, if this node listens.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Counters of what went wrong on the wire, now.
    pub fn stats(&self) -> TransportCounters {
        self.stats.snapshot()
    }

    /// The bytes the connections' read buffers hold now, as the budget counts them (at most
    /// [`ConnectionLimits::incoming_bytes_max`]).
    pub fn incoming_bytes(&self) -> usize {
        self.holdings.total()
    }

    /// The connections open now (linked, or in their handshake).
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Makes voter `address` a peer unless it is one or this node; returns its id.
    fn add_voter(&mut self, address: &str, now: Instant) -> Option<PeerId> {
        let me = self.settings.self_address();
        if me == Some(address) {
            return None;
        }
        let dials = me.is_none_or(|me| address < me);
        let id = self.peers.add_voter(address, dials, DIAL_BACKOFF_MIN, now);
        if !dials && let Some(slot) = self.peers.get_mut(id) {
            // Knocked on only if its own dial does not come first.
            slot.next_dial = now + KNOCK_DELAY;
        }
        Some(id)
    }

    /// Whether this node dials `slot` while it has no link: every voter but itself, those
    /// whose address sorts below its own as soon as due, the others as a knock
    /// ([`KNOCK_DELAY`]); never a read-only node or a stranger, which dial this node.
    fn dials(&self, slot: &peers::Slot) -> bool {
        match slot.kind {
            Kind::Voter { dials: true } => true,
            Kind::Voter { dials: false } => {
                self.settings.self_address() != Some(slot.name.as_str())
            }
            Kind::ReadOnly | Kind::Stranger => false,
        }
    }

    /// Times the first knocks from `now`, the first poll.
    fn time_first_knocks(&mut self, now: Instant) {
        let knocked: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, slot)| slot.kind == (Kind::Voter { dials: false }))
            .map(|(id, _)| id)
            .collect();
        for id in knocked {
            if let Some(slot) = self.peers.get_mut(id) {
                slot.next_dial = slot.next_dial.max(now + KNOCK_DELAY);
            }
        }
    }

    /// When the next dial is due, if one is due later than `now` (those due already wait
    /// for their address: the resolver wakes the poll loop once it knows).
    fn next_dial(&self, now: Instant) -> Option<Instant> {
        self.peers
            .iter()
            .filter(|&(id, slot)| {
                slot.link.is_none()
                    && slot.next_dial > now
                    && self.dials(slot)
                    && !self.dialling(id)
            })
            .map(|(_, slot)| slot.next_dial)
            .min()
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
            self.queue.push(TransportEvent::Bound(Ok(())));
            return;
        };
        let socket_address = match self.resolver.lookup(&address, now) {
            // The resolver wakes the poll loop once it knows.
            Lookup::Pending => return,
            Lookup::Ready(socket_address) => Ok(socket_address),
            Lookup::Failed { error, .. } => Err(resolve_error(error)),
        };
        let attempts = attempts + 1;
        match socket_address.and_then(|socket_address| listen(&self.poll, socket_address)) {
            Ok(listener) => {
                self.listener = Some(listener);
                self.bind = BindState::Bound;
                self.queue.push(TransportEvent::Bound(Ok(())));
            }
            Err(error) => {
                tracing::warn!(%address, attempts, %error, "cannot bind");
                let failure = BindFailure {
                    address,
                    error: Arc::new(error),
                };
                let max = self.settings.max_bind_retries;
                self.bind = if max > 0 && attempts >= max {
                    self.queue.push(TransportEvent::Bound(Err(failure.clone())));
                    BindState::Failed { attempts, failure }
                } else {
                    self.queue
                        .push(TransportEvent::BindRetrying(failure.clone()));
                    BindState::Retrying {
                        attempts,
                        last: Some(failure),
                    }
                };
                self.next_bind = now + self.settings.bind_retry_time;
            }
        }
    }

    fn dial_due(&mut self, now: Instant) {
        let due: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|&(id, slot)| {
                self.dials(slot)
                    && slot.link.is_none()
                    && slot.next_dial <= now
                    && !self.dialling(id)
            })
            .map(|(id, _)| id)
            .collect();
        if due.is_empty() {
            return;
        }
        let retry = self.settings.connection_retry_time;
        let minority = self.in_minority();
        for id in due {
            let Some(slot) = self.peers.get_mut(id) else {
                continue;
            };
            let address = match self.resolver.lookup(&slot.name, now) {
                // Still due: the resolver wakes the poll loop once it knows.
                Lookup::Pending => continue,
                Lookup::Ready(address) => address,
                Lookup::Failed { error, until } => {
                    tracing::debug!(peer = %slot.name, %error, "cannot resolve");
                    slot.next_dial = until.max(now + self.settings.connection_retry_time);
                    continue;
                }
            };
            // Back off from a quick first retry (peers start at about the same time) up to
            // `connection_retry_time`, knocks as well as usual dials; an open link resets it.
            // A node in a minority redials a peer it reached before sooner
            // (`MINORITY_REDIAL_MAX`).
            let redial_max = match minority && slot.reached {
                true => MINORITY_REDIAL_MAX.min(retry),
                false => retry,
            };
            slot.next_dial = now + slot.backoff.min(redial_max);
            slot.backoff = (slot.backoff * 2).min(retry);
            let name = slot.name.clone();
            if let Err(error) = self.dial(id, name, address, now) {
                WireStats::bump(&self.stats.dial_failures);
                tracing::debug!(peer = %id, %error, "dial failed");
            }
        }
    }

    /// Whether this node is linked to no majority of the voters it knows, itself counted.
    fn in_minority(&self) -> bool {
        let (mut others, mut linked) = (0usize, 0usize);
        for (_, slot) in self.peers.iter() {
            if matches!(slot.kind, Kind::Voter { .. }) {
                others += 1;
                linked += usize::from(slot.link.is_some());
            }
        }
        others > 0 && 2 * (linked + 1) <= others + 1
    }

    fn dialling(&self, id: PeerId) -> bool {
        self.connections
            .values()
            .any(|c| c.id == Some(id) && c.stage != Stage::Open)
    }

    fn dial(
        &mut self,
        id: PeerId,
        name: String,
        address: SocketAddr,
        now: Instant,
    ) -> io::Result<()> {
        let stream = TcpStream::connect(address)?;
        configure(&stream, &self.settings)?;
        self.register(stream, Some((id, name)), Stage::Connecting, now)
    }

    fn register(
        &mut self,
        mut stream: TcpStream,
        peer: Option<(PeerId, String)>,
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
        let connection = Connection::new(stream, peer, stage, now);
        self.connections.insert(token, connection);
        Ok(())
    }

    /// Handles the readiness events of the last wait: accepts, finishes connects, flushes, and
    /// notes which connections became readable.
    fn on_ready(&mut self, now: Instant) {
        let ready = std::mem::replace(&mut self.events, Events::with_capacity(0));
        for event in ready.iter() {
            match event.token() {
                LISTENER => self.accept_all(now),
                WAKER => {}
                token => {
                    if (event.is_read_closed() || event.is_error())
                        && let Some(connection) = self.connections.get_mut(&token)
                    {
                        connection.hangup_seen = true;
                    }
                    if let Err(fault) = self.on_writable(token, event.is_writable(), now) {
                        self.close(token, &fault);
                    } else if event.is_readable() || event.is_read_closed() {
                        self.readable.insert(token);
                    }
                }
            }
        }
        self.events = ready;
    }

    /// Finishes a connect (sending the hello) and writes what is queued.
    fn on_writable(&mut self, token: Token, writable: bool, now: Instant) -> Result<(), Fault> {
        let Some(connection) = self.connections.get_mut(&token) else {
            return Ok(());
        };
        if writable && connection.stage == Stage::Connecting {
            if let Some(error) = connection
                .stream
                .take_error()
                .map_err(|e| Fault::Dial(e.to_string()))?
            {
                return Err(Fault::Dial(format!("connect failed: {error}")));
            }
            if connection.stream.peer_addr().is_err() {
                return Ok(()); // still connecting
            }
            connection.send_hello(&self.settings)?;
        }
        connection.flush(now)
    }

    /// Reads the readable connections in turns, starting after the one read last, until each
    /// would block or the poll's budget is spent; those left stay in `readable`, those whose
    /// next read does not fit the budget of incoming bytes wait in `paused`.
    fn read_fairly(&mut self, now: Instant) {
        let mut budget =
            PollBudget::new(self.settings.poll_frames_max, self.settings.poll_bytes_max);
        self.turns.clear();
        let after = self.readable.range((Excluded(self.cursor), Unbounded));
        self.turns.extend(after);
        let before = self.readable.range(..=self.cursor);
        self.turns.extend(before);
        while let Some(token) = self.turns.pop_front() {
            if budget.spent() {
                return;
            }
            self.cursor = token;
            let turn = self.read_turn(token, &mut budget, now);
            self.account(token);
            match turn {
                Ok(Turn::Again) => self.turns.push_back(token),
                Ok(Turn::Drained) => {
                    self.readable.remove(&token);
                }
                Ok(Turn::Paused) => self.pause(token),
                Ok(Turn::Capped) => return,
                Err(fault) => self.close(token, &fault),
            }
        }
    }

    /// One turn of a connection: the frames it holds, one read if the budget of incoming
    /// bytes has room for it, the frames that brought.
    fn read_turn(
        &mut self,
        token: Token,
        budget: &mut PollBudget,
        now: Instant,
    ) -> Result<Turn, Fault> {
        match self.take_frames(token, budget, now)? {
            Taken::All => {}
            Taken::Capped => return Ok(Turn::Capped),
            Taken::Paused => return Ok(Turn::Paused),
        }
        self.account(token);
        if !self.may_read(token) {
            return Ok(Turn::Paused);
        }
        let Some(connection) = self.connections.get_mut(&token) else {
            return Ok(Turn::Drained);
        };
        let progress = connection.read(&mut self.scratch)?;
        connection.last_read = now;
        // A close read here is read again at the next poll, after the frames before it.
        match self.take_frames(token, budget, now)? {
            Taken::All => {}
            Taken::Capped => return Ok(Turn::Capped),
            Taken::Paused => return Ok(Turn::Paused),
        }
        match progress {
            Progress::More => Ok(Turn::Again),
            Progress::WouldBlock => Ok(Turn::Drained),
            Progress::Closed => Err(self.closed_by_peer(token)),
        }
    }

    /// Handles the whole frames a connection holds, as far as `budget` and the budget of
    /// incoming bytes allow (a first fragment reserves its whole message; the connection
    /// pauses until the budget has room for it).
    fn take_frames(
        &mut self,
        token: Token,
        budget: &mut PollBudget,
        now: Instant,
    ) -> Result<Taken, Fault> {
        loop {
            let message_due = self
                .connections
                .get(&token)
                .is_some_and(|c| c.message_due().is_some());
            if message_due && !self.may_read(token) {
                return Ok(Taken::Paused);
            }
            let Some(connection) = self.connections.get_mut(&token) else {
                return Ok(Taken::All);
            };
            match connection.next_frame(budget)? {
                Next::Frame(frame) => self.on_frame(token, frame, now)?,
                Next::Incomplete => return Ok(Taken::All),
                Next::Capped => return Ok(Taken::Capped),
            }
            if message_due {
                self.account(token);
            }
        }
    }

    /// One frame: the handshake's, or a message for the layer above once the link is open.
    fn on_frame(&mut self, token: Token, frame: Bytes, now: Instant) -> Result<(), Fault> {
        let admins = self.connections.values().filter(|c| c.admin.is_some());
        let room = Room {
            read_only: self.peers.read_only_count() < self.settings.limits.read_only_links_max,
            admin: admins.count() < self.settings.limits.admin_connections_max,
            stranger: self
                .strangers
                .then(|| self.peers.stranger_count() < STRANGER_LINKS_MAX),
        };
        let Some(connection) = self.connections.get_mut(&token) else {
            return Ok(());
        };
        let stage = connection.stage;
        match stage {
            Stage::Open if connection.admin.is_some() => {
                return self.on_admin_frame(token, frame);
            }
            Stage::Open => return connection.deliver(frame, &mut self.queue),
            Stage::AwaitHello => {
                connection.on_hello(&frame, &self.settings, room, now)?;
            }
            Stage::AwaitReply => connection.on_reply(&frame, &self.settings)?,
            Stage::AwaitConfirm => connection.on_confirm(&self.settings),
            Stage::Connecting => {
                return Err(Fault::BadFrame(
                    "frame before the connection finished".into(),
                ));
            }
        }
        // The handshake answered or confirmed: send it now, as no write readiness may come.
        connection.flush(now)?;
        if connection.stage != Stage::Open || connection.admin.is_some() {
            return Ok(());
        }
        self.open_link(token, now)?;
        self.account(token);
        if stage == Stage::AwaitConfirm
            && let Some(connection) = self.connections.get_mut(&token)
        {
            // The dialler's first record: a frame after the link is up.
            connection.deliver(frame, &mut self.queue)?;
        }
        Ok(())
    }

    /// A frame of an administrator's open connection: its one request goes up; empty frames
    /// are ignored; a second request breaks the rule and closes it.
    fn on_admin_frame(&mut self, token: Token, frame: Bytes) -> Result<(), Fault> {
        if frame.is_empty() {
            return Ok(());
        }
        let Some(connection) = self.connections.get_mut(&token) else {
            return Ok(());
        };
        if connection.admin != Some(AdminExchange::Admitted) {
            return Err(Fault::AdminDone("a second administration request".into()));
        }
        let id = self.next_admin_id;
        self.next_admin_id += 1;
        connection.admin = Some(AdminExchange::Asked(id));
        self.queue
            .push(TransportEvent::AdminRequest { id, request: frame });
        Ok(())
    }

    /// Closes the administrators' connections whose answer is all written.
    fn close_served_admins(&mut self) {
        let served: Vec<Token> = self
            .connections
            .iter()
            .filter(|(_, c)| c.admin_served())
            .map(|(&t, _)| t)
            .collect();
        for token in served {
            self.close(token, &Fault::AdminDone("answered".into()));
        }
    }

    /// Makes the open connection `token` its peer's link, numbering a read-only node or a
    /// stranger that linked, and reports the link up unless it replaces a live one (which it
    /// closes). A connection dialled against the usual direction (a knock, or a stranger's)
    /// never replaces one dialled the usual way: it stays open unlinked (superseded) for the
    /// peer to close, so that two nodes that dialled each other keep the same connection.
    fn open_link(&mut self, token: Token, now: Instant) -> Result<(), Fault> {
        let Some(connection) = self.connections.get(&token) else {
            return Ok(());
        };
        let read_only = connection.read_only;
        let id = match (connection.id, connection.peer.clone()) {
            (Some(id), _) => id,
            (None, Some(name)) => self.identify(name, read_only, now)?,
            (None, None) => return Err(Fault::Refused("a link to an unnamed peer".into())),
        };
        if let Some(connection) = self.connections.get_mut(&token) {
            connection.id = Some(id);
        }
        let Some(slot) = self.peers.get(id) else {
            return Err(Fault::Refused(format!("{id} is not known")));
        };
        let kind = slot.kind;
        let old = slot.link.filter(|&old| old != token);
        if let Some(old) = old
            && self.usual(old, kind)
            && !self.usual(token, kind)
        {
            // Closed now, it could take the peer's link down while the usual connection is
            // still in its handshake at the peer's end: the peer closes it once that one opens
            // there, or it is closed after the handshake timeout.
            if let Some(connection) = self.connections.get_mut(&token) {
                connection.superseded = Some(now);
            }
            return Ok(());
        }
        let Some(slot) = self.peers.get_mut(id) else {
            return Ok(());
        };
        // The peer is alive: the back-off starts over, and the next dial, should this link go
        // down, comes at most the least back-off from now (at most one a back-off however
        // often a link opens and closes).
        slot.backoff = DIAL_BACKOFF_MIN;
        slot.next_dial = slot.next_dial.min(now + DIAL_BACKOFF_MIN);
        slot.reached = true;
        match (slot.link.replace(token), old) {
            (None, _) => {
                self.queue.push(TransportEvent::LinkUp(id));
                if matches!(kind, Kind::Voter { .. }) {
                    self.rejoined(now);
                }
            }
            (Some(_), Some(old)) => self.close(old, &Fault::Replaced),
            (Some(_), None) => {}
        }
        Ok(())
    }

    /// A voter's link opened. The first after this node had no voter linked for
    /// [`CUT_OFF_MIN`] says its network is likely back (a cut healed): the other voters it has
    /// no link to are dialled (or knocked on) at once, each connect still waiting for an
    /// answer from the cut closed and made anew (the kernel would send its next try only
    /// seconds later). Their back-off is kept: nothing says they are alive.
    fn rejoined(&mut self, now: Instant) {
        let Some(since) = self.cut_off_since.take() else {
            return;
        };
        if now.saturating_duration_since(since) < CUT_OFF_MIN {
            return;
        }
        let unlinked = |id: Option<PeerId>| {
            id.and_then(|id| self.peers.get(id))
                .is_some_and(|slot| slot.link.is_none())
        };
        let stuck: Vec<Token> = self
            .connections
            .iter()
            .filter(|(_, c)| c.stage == Stage::Connecting && unlinked(c.id))
            .map(|(&t, _)| t)
            .collect();
        for token in stuck {
            self.close(
                token,
                &Fault::Dial("dialled anew: the network came back".into()),
            );
        }
        let due: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, slot)| matches!(slot.kind, Kind::Voter { .. }) && slot.link.is_none())
            .map(|(id, _)| id)
            .collect();
        for id in due {
            if let Some(slot) = self.peers.get_mut(id) {
                slot.next_dial = slot.next_dial.min(now);
            }
        }
        tracing::info!("linked again after a cut: dialling the other peers at once");
    }

    /// Whether connection `token` of a peer of `kind` was dialled the usual way: by the
    /// address that sorts higher between two voters, by the other node for transient peers.
    fn usual(&self, token: Token, kind: Kind) -> bool {
        let Some(connection) = self.connections.get(&token) else {
            return false;
        };
        match kind {
            Kind::Voter { dials } => connection.accepted != dials,
            Kind::ReadOnly | Kind::Stranger => true,
        }
    }

    /// The id of the peer an accepted connection's hello named: a voter's, or a new one for a
    /// read-only node or a stranger (reported as joined).
    fn identify(&mut self, name: String, read_only: bool, now: Instant) -> Result<PeerId, Fault> {
        if let Some(id) = self.peers.id(&name) {
            return Ok(id);
        }
        if read_only {
            let max = self.settings.limits.read_only_links_max;
            let Some(peer) = self.peers.add_read_only(&name, max, now) else {
                return Err(Fault::ReadOnlyOverCap(format!(
                    "{name}: too many read-only nodes linked"
                )));
            };
            tracing::info!(%peer, %name, "read-only node linked");
            self.queue
                .push(TransportEvent::ReadOnlyJoined { peer, name });
            return Ok(peer);
        }
        let me = self.settings.self_address() == Some(name.as_str());
        if !self.strangers || me || name.starts_with(READ_ONLY_PREFIX) {
            return Err(Fault::Refused(format!("{name} is not a peer of this node")));
        }
        let Some(peer) = self.peers.add_stranger(&name, STRANGER_LINKS_MAX, now) else {
            return Err(Fault::StrangerOverCap(format!(
                "{name}: too many strangers linked"
            )));
        };
        WireStats::bump(&self.stats.strangers_linked);
        tracing::info!(%peer, %name, "a node of the cluster that is not a peer linked");
        self.queue
            .push(TransportEvent::StrangerJoined { peer, name });
        Ok(peer)
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

    /// Closes connection `token`, counting and logging why; if it was a peer's link, reports
    /// the link down (and a read-only node gone).
    fn close(&mut self, token: Token, fault: &Fault) {
        let Some(mut connection) = self.connections.remove(&token) else {
            return;
        };
        self.readable.remove(&token);
        self.paused.remove(&token);
        self.holdings.record(connection.held, (Class::Voter, 0));
        let admin_open = connection.admin.is_some() && connection.stage == Stage::Open;
        if admin_open {
            WireStats::bump(&self.stats.admin_connections);
        } else if connection.superseded.is_some() {
            // However it ends, it ended because the usual connection is the link.
            WireStats::bump(&self.stats.links_replaced);
        } else if let Some(counter) = self.counter_of(fault, connection.stage) {
            WireStats::bump(counter);
        }
        let reason = fault.reason();
        let peer = &connection.peer;
        match (
            fault,
            connection.accepted && connection.stage != Stage::Open,
        ) {
            // A stranger's connection ending early is counted; a line each would let a flood
            // fill the log. So is an administrator's (the driver logs its requests).
            (_, true) => tracing::debug!(?peer, reason, "connection closed in its handshake"),
            _ if admin_open => tracing::debug!(reason, "admin connection closed"),
            (Fault::ReadOnlyOverCap(_) | Fault::StrangerOverCap(_), _) => {
                tracing::debug!(?peer, reason, "connection refused");
            }
            (Fault::Io(_) | Fault::Replaced | Fault::Duplicate | Fault::Removed, false) => {
                tracing::info!(?peer, reason, "connection closed");
            }
            (_, false) => tracing::warn!(?peer, reason, "connection dropped"),
        }
        if let Err(error) = self.poll.registry().deregister(&mut connection.stream) {
            tracing::debug!(%error, "deregister failed");
        }
        let Some(id) = connection.id else {
            return;
        };
        let Some(slot) = self.peers.get_mut(id) else {
            return;
        };
        if slot.link != Some(token) {
            return;
        }
        slot.link = None;
        self.queue.push(TransportEvent::LinkDown(id));
        match slot.kind {
            Kind::Voter { dials: false } => {
                slot.next_dial = slot.next_dial.max(Instant::now() + KNOCK_DELAY);
            }
            Kind::Voter { dials: true } => {}
            Kind::ReadOnly | Kind::Stranger => {
                let left = match self.peers.remove_transient(id) {
                    Some(Kind::ReadOnly) => TransportEvent::ReadOnlyLeft(id),
                    _ => TransportEvent::StrangerLeft(id),
                };
                self.queue.push(left);
            }
        }
        let voter_linked = self
            .peers
            .iter()
            .any(|(_, slot)| matches!(slot.kind, Kind::Voter { .. }) && slot.link.is_some());
        if !voter_linked && self.cut_off_since.is_none() {
            self.cut_off_since = Some(Instant::now());
        }
    }

    /// The counter of a connection ending on `fault` at `stage`: each ending counts once.
    fn counter_of(&self, fault: &Fault, stage: Stage) -> Option<&std::sync::atomic::AtomicU64> {
        let stats = &*self.stats;
        Some(match fault {
            Fault::Io(_) if stage == Stage::Open => &stats.link_failures,
            Fault::Io(_) => &stats.handshake_closes,
            Fault::Dial(_) => &stats.dial_failures,
            Fault::BadFrame(_) => &stats.bad_frames,
            Fault::Refused(_) => &stats.refused_handshakes,
            Fault::Authentication(_) => &stats.auth_failures,
            Fault::ReadOnlyOverCap(_) => &stats.read_only_over_cap,
            Fault::StrangerOverCap(_) => &stats.strangers_refused,
            Fault::HandshakeTimeout => &stats.handshake_timeouts,
            Fault::Silent => &stats.link_timeouts,
            Fault::Replaced | Fault::Duplicate => &stats.links_replaced,
            Fault::Removed if stage == Stage::Open => &stats.links_removed,
            Fault::Removed => &stats.handshake_closes,
            Fault::Dropped(_) | Fault::AdminDone(_) => return None,
        })
    }

    /// Writes more of the bulk messages of the links whose last flush stopped at its cap.
    fn flush_pending(&mut self, now: Instant) {
        let pending: Vec<Token> = self
            .connections
            .iter()
            .filter(|(_, c)| c.write_pending())
            .map(|(&t, _)| t)
            .collect();
        for token in pending {
            let Some(connection) = self.connections.get_mut(&token) else {
                continue;
            };
            if let Err(fault) = connection.flush(now) {
                self.close(token, &fault);
            }
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

    /// Drops the open links that read nothing for the connection timeout (those paused by
    /// the budget, or left readable by the poll's cap, are not read, so not silent).
    fn drop_silent(&mut self, now: Instant) {
        let timeout = self.settings.connection_timeout;
        let silent: Vec<Token> = self
            .connections
            .iter()
            .filter(|&(token, c)| {
                c.stage == Stage::Open
                    && c.admin.is_none()
                    && !self.paused.contains(token)
                    && !self.readable.contains(token)
                    && now.saturating_duration_since(c.last_read) > timeout
            })
            .map(|(&t, _)| t)
            .collect();
        for token in silent {
            self.close(token, &Fault::Silent);
        }
    }

    /// Drops the connections whose handshake is not done within the handshake timeout, the
    /// administrators' whose request has not come by then, and the superseded connections
    /// their peer left open that long.
    fn drop_unfinished(&mut self, now: Instant) {
        let timeout = self.settings.limits.handshake_timeout;
        let late: Vec<Token> = self
            .connections
            .iter()
            .filter(|(_, c)| {
                let waiting = c.stage != Stage::Open || c.admin == Some(AdminExchange::Admitted);
                waiting && now.saturating_duration_since(c.opened) >= timeout
            })
            .map(|(&t, _)| t)
            .collect();
        for token in late {
            self.close(token, &Fault::HandshakeTimeout);
        }
        let lingering: Vec<Token> = self
            .connections
            .iter()
            .filter(|(_, c)| {
                c.superseded
                    .is_some_and(|since| now.saturating_duration_since(since) >= timeout)
            })
            .map(|(&t, _)| t)
            .collect();
        for token in lingering {
            self.close(token, &Fault::Duplicate);
        }
    }
}

/// How far [`TcpTransport::take_frames`] got.
enum Taken {
    /// Every whole frame the connection held.
    All,
    /// The poll's budget is spent.
    Capped,
    /// The next frame begins a message the budget of incoming bytes has no room for.
    Paused,
}

/// How one turn of reading a connection ended.
enum Turn {
    /// It may hold more: give it another turn after the others.
    Again,
    /// It would block: nothing more until its next readiness event.
    Drained,
    /// Its next read does not fit the budget of incoming bytes: it waits until it does.
    Paused,
    /// The poll's budget is spent: it holds more, for the next poll.
    Capped,
}

impl Transport for TcpTransport {
    /// Gives a configured voter its existing id. A new address becomes a voter peer, dialled or
    /// accepted like the configured ones (its hello is accepted from now on); this node's own
    /// address gets an id that never links. A read-only node's name gives its id while it is
    /// linked (read-only nodes are numbered when they link, not by this call).
    fn add_peer(&mut self, address: &str) -> PeerId {
        if let Some(id) = self.peers.id(address) {
            self.promote(id, address);
            return id;
        }
        if !self.settings.voters.iter().any(|v| v == address) {
            self.settings.voters.push(address.to_owned());
        }
        match self.add_voter(address, Instant::now()) {
            Some(id) => id,
            // This node itself: a peer that is never dialled and whose hello is refused.
            None => self
                .peers
                .add_voter(address, false, DIAL_BACKOFF_MIN, Instant::now()),
        }
    }

    /// Queues `frame` on `to`'s link, behind the bulk frames sent before (a large one goes in
    /// fragments), and writes what the socket takes. Fails (counting a dropped frame) without
    /// a link, when the frame is larger than the link carries, or when the link's queue would
    /// pass `send_queue_bytes_max`; a write error closes the link (reported at the next poll).
    fn send(&mut self, to: PeerId, frame: Bytes) -> bool {
        self.send_in(Lane::Bulk, to, frame)
    }

    /// Like [`send`](Self::send), ahead of the bulk frames not written yet: the frame waits
    /// behind at most one fragment of them. Only the frames framed already count against
    /// `send_queue_bytes_max`.
    fn send_control(&mut self, to: PeerId, frame: Bytes) -> bool {
        self.send_in(Lane::Control, to, frame)
    }

    /// Binds, resumes a paused listener, dials and sends keep-alives as due, waits for
    /// readiness (not at all if input or output is left from the last poll or events are
    /// waiting), writes more of the bulk data waiting, reads fairly within
    /// [`TcpSettings::poll_frames_max`], [`TcpSettings::poll_bytes_max`] and the budget of
    /// incoming bytes, and only then drops the handshakes that are late and the links that
    /// stayed silent: a caller slow to poll again never makes a link look silent while its
    /// bytes wait unread.
    fn poll(&mut self, timeout: Duration, events: &mut Vec<TransportEvent>) {
        let now = Instant::now();
        if !self.polled {
            self.polled = true;
            self.time_first_knocks(now);
        }
        self.try_bind(now);
        self.resume_listener(now);
        self.dial_due(now);
        self.keep_alive(now);
        self.resume_paused(now);
        let wait = self.wait_time(timeout, now);
        self.wait_for_events(wait, now);
        self.active = !self.events.is_empty();
        let now = Instant::now();
        self.on_ready(now);
        self.flush_pending(now);
        self.close_served_admins();
        self.read_fairly(now);
        self.resume_paused(now);
        // After reading: a link is silent, or a handshake late, only if nothing came by now,
        // however long the caller took between two polls.
        self.drop_unfinished(now);
        self.drop_silent(now);
        let failures = self.resolver.counters().failures;
        self.stats
            .resolve_failures
            .store(failures, Ordering::Relaxed);
        events.append(&mut self.queue);
    }

    fn waker(&self) -> Arc<dyn Wake> {
        Arc::clone(&self.waker) as Arc<dyn Wake>
    }

    fn disconnect(&mut self, peer: PeerId) {
        if let Some(token) = self.peers.get(peer).and_then(|slot| slot.link) {
            let fault = Fault::Dropped("the peer sent an undecodable message".into());
            self.close(token, &fault);
        }
    }

    /// Closes the peer's link (counted in `links_removed`) and any connection of it in its
    /// handshake, stops dialling it, and refuses its hellos from now on (`refused_handshakes`).
    fn remove_peer(&mut self, peer: PeerId) {
        let linked = self.peers.get(peer).is_some_and(|slot| slot.link.is_some());
        let Some(name) = self.peers.remove_voter(peer) else {
            return;
        };
        self.settings.voters.retain(|v| *v != name);
        let theirs: Vec<Token> = self
            .connections
            .iter()
            .filter(|(_, c)| c.id == Some(peer))
            .map(|(&t, _)| t)
            .collect();
        for token in theirs {
            self.close(token, &Fault::Removed);
        }
        // Its slot is gone, so `close` could not report the link down: do it here.
        if linked {
            self.queue.push(TransportEvent::LinkDown(peer));
        }
        tracing::info!(%peer, %name, "peer removed from the cluster");
    }

    fn counters(&self) -> Arc<WireStats> {
        Arc::clone(&self.stats)
    }

    /// Accepts strangers from now on (at most [`STRANGER_LINKS_MAX`] at once, one more
    /// refused as `Busy`, counted in `strangers_refused`). A voter whose membership lags hears
    /// from this node anyway: this node knocks on the voters that should dial it and do not
    /// (see the module documentation).
    fn admit_strangers(&mut self) {
        self.strangers = true;
    }

    /// Queues the answer on the administrator's connection and writes what the socket
    /// takes; the connection closes once all is written (at once, or at a later poll). A
    /// reply over [`ADMIN_REPLY_BYTES_MAX`](crate::admin::ADMIN_REPLY_BYTES_MAX) bytes closes
    /// it unanswered.
    fn admin_reply(&mut self, id: u64, reply: Bytes) {
        let Some(token) = self
            .connections
            .iter()
            .find(|(_, c)| c.admin == Some(AdminExchange::Asked(id)))
            .map(|(&t, _)| t)
        else {
            return;
        };
        let Some(connection) = self.connections.get_mut(&token) else {
            return;
        };
        if let Err(fault) = connection.answer_admin(&reply, Instant::now()) {
            self.close(token, &fault);
            return;
        }
        self.close_served_admins();
    }
}

impl TcpTransport {
    /// Makes peer `id`, named `address`, a voter if it is a stranger: its link stays, and it is
    /// dialled as any voter once that link is gone.
    fn promote(&mut self, id: PeerId, address: &str) {
        let dials = self.settings.self_address().is_none_or(|me| address < me);
        if !self.peers.promote(id, dials, DIAL_BACKOFF_MIN) {
            return;
        }
        if !self.settings.voters.iter().any(|v| v == address) {
            self.settings.voters.push(address.to_owned());
        }
        if !dials && let Some(slot) = self.peers.get_mut(id) {
            slot.next_dial = Instant::now() + KNOCK_DELAY;
        }
        tracing::info!(peer = %id, %address, "a linked stranger is a peer now");
    }

    fn send_in(&mut self, lane: Lane, to: PeerId, frame: Bytes) -> bool {
        let Some(token) = self.peers.get(to).and_then(|slot| slot.link) else {
            WireStats::bump(&self.stats.dropped_frames);
            return false;
        };
        let queue_max = self.settings.send_queue_bytes_max;
        let Some(connection) = self.connections.get_mut(&token) else {
            return false;
        };
        let too_large = frame.len() > connection.send_message_max();
        if too_large || connection.queued_bytes(lane) + frame.len() + 4 > queue_max {
            WireStats::bump(&self.stats.dropped_frames);
            return false;
        }
        let now = Instant::now();
        self.active = true;
        let queued = connection
            .queue_message(lane, frame)
            .and_then(|()| connection.flush(now));
        if let Err(fault) = queued {
            self.close(token, &fault);
            return false;
        }
        true
    }

    /// Waits at most `wait` for readiness events: after activity, first checks without
    /// sleeping for up to [`TcpSettings::poll_spin`], yielding the processor between checks.
    fn wait_for_events(&mut self, wait: Duration, now: Instant) {
        let spin = match self.active {
            true => self.settings.poll_spin.min(wait),
            false => Duration::ZERO,
        };
        let mut left = wait;
        if !spin.is_zero() {
            loop {
                self.poll_once(Duration::ZERO);
                let spun = now.elapsed();
                if !self.events.is_empty() {
                    return;
                }
                if spun >= spin {
                    left = wait.saturating_sub(spun);
                    break;
                }
                std::thread::yield_now();
            }
        }
        self.poll_once(left);
    }

    fn poll_once(&mut self, wait: Duration) {
        if let Err(error) = self.poll.poll(&mut self.events, Some(wait)) {
            if error.kind() != io::ErrorKind::Interrupted {
                tracing::warn!(%error, "poll failed");
            }
            self.events.clear();
        }
    }

    /// How long a poll may wait: not at all with input or events waiting, else at most until
    /// the next dial, keep-alive, handshake deadline or the listener's return.
    fn wait_time(&self, timeout: Duration, now: Instant) -> Duration {
        let writing = self.connections.values().any(Connection::write_pending);
        if !self.queue.is_empty() || !self.readable.is_empty() || writing {
            return Duration::ZERO;
        }
        let wait = timeout
            .min(self.settings.connection_retry_time)
            .min(self.settings.connection_timeout / 3)
            .min(self.settings.limits.handshake_timeout / 2);
        let wait = self
            .next_dial(now)
            .map_or(wait, |due| wait.min(due.saturating_duration_since(now)));
        self.listener_wait(now)
            .map_or(wait, |until| wait.min(until))
    }
}

/// A bind address that does not resolve, as an I/O error of the kind the lookup failed with.
fn resolve_error(error: ResolveError) -> io::Error {
    let kind = match &error {
        ResolveError::Lookup { source, .. } | ResolveError::Spawn { source, .. } => source.kind(),
        ResolveError::BadAddress { .. } => io::ErrorKind::InvalidInput,
        ResolveError::NoAddress { .. } => io::ErrorKind::NotFound,
        ResolveError::Busy { .. } => io::ErrorKind::WouldBlock,
        ResolveError::ThreadDied { .. } => io::ErrorKind::Other,
    };
    io::Error::new(kind, error)
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

fn listen(poll: &Poll, socket_address: SocketAddr) -> io::Result<TcpListener> {
    let mut listener = TcpListener::bind(socket_address)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    Ok(listener)
}
