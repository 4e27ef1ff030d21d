//! One TCP connection: its handshake, its codec (frames, sealed into records when the cluster
//! has a password) and its send queue.

use std::io::{self, Read, Write};
use std::time::Instant;

use bytes::Bytes;
use mio::net::TcpStream;

use super::budget::Class;
use super::lanes::{Assembly, BulkQueue, FRAGMENT_BYTES, LINK_FRAME_MAX, Lane, Piece};
use super::settings::{HANDSHAKE_FRAME_MAX, TcpSettings};
use crate::admin::{ADMIN_REPLY_BYTES_MAX, ADMIN_REQUEST_BYTES_MAX};
use crate::frame::{
    FRAME_HEADER_BYTES, FrameDecoder, FrameEncoder, READ_CHUNK_BYTES_DEFAULT, ReadStatus,
};
use crate::handshake::{
    HandshakeConfig, Hello, HelloReply, Peer, RefuseReason, check_admin, check_hello,
};
use crate::secure::{Initiator, RECORD_BYTES_MAX, Responder, SECURE_MAGIC, Session};
use crate::{PeerId, TransportEvent};

/// An outgoing buffer (the send queue, the frame being sealed) keeps at most this much
/// allocation once empty.
const IDLE_SEND_BYTES_MAX: usize = 64 * 1024;

/// The most bulk bytes one flush frames (and seals): a large backlog goes out over several
/// polls, so that the loop between them keeps its timers (heartbeats) on time.
const FLUSH_BULK_BYTES_MAX: usize = 256 * 1024;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    /// Dialled; waiting for the connect to finish.
    Connecting,
    /// Dialled and connected; our hello is sent, waiting for the reply.
    AwaitReply,
    /// Accepted; waiting for the dialler's hello.
    AwaitHello,
    /// Accepted and encrypted: waiting for the dialler's first record, which proves it holds
    /// the session keys (a replayed hello never gets past this).
    AwaitConfirm,
    /// Handshake done: frames flow.
    Open,
}

/// Why a connection is being dropped, for the log and the counters.
#[derive(Debug)]
pub(super) enum Fault {
    /// A socket error, or the peer closed.
    Io(String),
    /// A dial that could not connect.
    Dial(String),
    /// An oversized or undecodable frame.
    BadFrame(String),
    /// A handshake refused, by either side.
    Refused(String),
    /// Bytes that failed authentication: another password, tampering or a replay.
    Authentication(String),
    /// A read-only node refused because as many as allowed are linked.
    ReadOnlyOverCap(String),
    /// A stranger refused because as many as allowed are linked.
    StrangerOverCap(String),
    /// The handshake was not done within the handshake timeout.
    HandshakeTimeout,
    /// An open link read nothing within the connection timeout.
    Silent,
    /// A newer connection of the same peer became its link.
    Replaced,
    /// The peer's link dialled the usual way (by the address that sorts higher) was up when
    /// this other connection of it opened.
    Duplicate,
    /// The peer left the cluster (`Transport::remove_peer`).
    Removed,
    /// Dropped at the request of the layer above, which counts it.
    Dropped(String),
    /// An administrator's connection was answered (or broke the one-request rule).
    AdminDone(String),
}

impl Fault {
    pub(super) fn reason(&self) -> &str {
        match self {
            Fault::Io(r)
            | Fault::Dial(r)
            | Fault::BadFrame(r)
            | Fault::Refused(r)
            | Fault::Authentication(r)
            | Fault::ReadOnlyOverCap(r)
            | Fault::StrangerOverCap(r)
            | Fault::Dropped(r)
            | Fault::AdminDone(r) => r,
            Fault::HandshakeTimeout => "the handshake was not done within the handshake timeout",
            Fault::Silent => "read nothing within the connection timeout",
            Fault::Replaced => "replaced by a newer connection",
            Fault::Duplicate => "the peer's usual link is up",
            Fault::Removed => "the peer left the cluster",
        }
    }
}

/// The encrypted side of a connection once its handshake is done.
struct Sealed {
    session: Session,
    /// Decrypted bytes the frame decoder has not taken yet: at most one read's worth.
    plain: Vec<u8>,
    /// Scratch space for one outgoing frame before it is sealed.
    frame: Vec<u8>,
}

/// What one poll may still take off the connections: frames, and bytes of frames.
#[derive(Debug)]
pub(super) struct PollBudget {
    frames_left: usize,
    bytes_left: usize,
    /// Whether a frame was taken: the first frame of a poll is taken whatever its size.
    taken: bool,
}

impl PollBudget {
    /// A poll's allowance: `frames_max` frames (at least 1) and `bytes_max` bytes.
    pub(super) fn new(frames_max: usize, bytes_max: usize) -> PollBudget {
        PollBudget {
            frames_left: frames_max.max(1),
            bytes_left: bytes_max,
            taken: false,
        }
    }

    /// Whether nothing more may be taken.
    pub(super) fn spent(&self) -> bool {
        self.frames_left == 0 || (self.taken && self.bytes_left == 0)
    }

    /// Takes a frame of `len` payload bytes if it fits; returns whether it did.
    fn take(&mut self, len: usize) -> bool {
        let bytes = len.saturating_add(FRAME_HEADER_BYTES);
        if self.frames_left == 0 || (self.taken && bytes > self.bytes_left) {
            return false;
        }
        self.frames_left -= 1;
        self.bytes_left = self.bytes_left.saturating_sub(bytes);
        self.taken = true;
        true
    }
}

/// What [`Connection::next_frame`] found.
pub(super) enum Next {
    /// A whole frame, now counted against the budget.
    Frame(Bytes),
    /// No whole frame buffered: read more.
    Incomplete,
    /// A whole frame the budget has no room for: it stays buffered for the next poll.
    Capped,
}

/// One connection and everything it buffers.
pub(super) struct Connection {
    pub(super) stream: TcpStream,
    /// The peer's name once known: at once when we dialled, after its hello otherwise.
    pub(super) peer: Option<String>,
    /// The peer's id: at once when we dialled, when the link opens otherwise.
    pub(super) id: Option<PeerId>,
    pub(super) stage: Stage,
    /// Whether the peer dialled (we accepted the connection).
    pub(super) accepted: bool,
    /// Whether the peer is a read-only node (known after its hello).
    pub(super) read_only: bool,
    /// Whether the peer is an administrator (known after its hello), and where its one
    /// exchange stands.
    pub(super) admin: Option<AdminExchange>,
    /// When it was accepted or dialled: its handshake must be done by the handshake timeout.
    pub(super) opened: Instant,
    pub(super) last_read: Instant,
    pub(super) last_write: Instant,
    /// Whether the poller reported the peer's end closed or an error: from then on every read
    /// goes on until the socket says it would block (or ends), since no further readiness
    /// event may come for what remains.
    pub(super) hangup_seen: bool,
    /// Since when another connection of the same peer, dialled the usual way, is the link
    /// while this one is open too: it stays open, unlinked, for the peer to close (it may be
    /// the peer's link until the usual one opens at the peer's end), at most the handshake
    /// timeout.
    pub(super) superseded: Option<Instant>,
    /// What its read buffers held when last counted against the budget, and as what.
    pub(super) held: (Class, usize),
    decoder: FrameDecoder,
    encoder: FrameEncoder,
    /// Bytes ready to write: framed, and sealed when encrypted.
    out: Vec<u8>,
    /// Bulk messages not framed yet: they go out a fragment at a time.
    bulk: BulkQueue,
    /// The fragmented message being received.
    assembly: Assembly,
    /// Bulk messages wait to be framed while the socket may take more: the next poll flushes
    /// again without waiting for a readiness event.
    write_pending: bool,
    /// The largest message the link sends, and the largest it receives.
    send_message_max: usize,
    receive_message_max: usize,
    /// The dialler's handshake, between its hello and the reply, on an encrypted connection.
    initiator: Option<Initiator>,
    sealed: Option<Box<Sealed>>,
}

/// Where an administrator's connection stands ([`crate::admin`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AdminExchange {
    /// Admitted; its request has not come yet.
    Admitted,
    /// Its request went up as the event numbered so; no answer yet.
    Asked(u64),
    /// Answered: the connection closes once the answer is written.
    Answered,
}

/// A socket read through [`Read`] that notes whether a read returned less than it asked for
/// (bytes, not the end of the stream).
struct ShortRead<'a, R> {
    inner: &'a mut R,
    short: bool,
}

impl<'a, R: Read> ShortRead<'a, R> {
    fn new(inner: &'a mut R) -> ShortRead<'a, R> {
        ShortRead {
            inner,
            short: false,
        }
    }
}

impl<R: Read> Read for ShortRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.short = n > 0 && n < buf.len();
        Ok(n)
    }
}

/// What a read off the socket came to.
pub(super) enum Progress {
    /// Bytes may remain: take the frames, then read again.
    More,
    /// The socket has nothing more for now.
    WouldBlock,
    /// The peer closed the connection.
    Closed,
}

impl Connection {
    /// A connection to `peer` (`None` until its hello names it), at `stage`.
    pub(super) fn new(
        stream: TcpStream,
        peer: Option<(PeerId, String)>,
        stage: Stage,
        now: Instant,
    ) -> Connection {
        let (id, peer) = peer.map_or((None, None), |(id, name)| (Some(id), Some(name)));
        let accepted = stage == Stage::AwaitHello;
        let class = if accepted {
            Class::Handshake
        } else {
            Class::Voter
        };
        Connection {
            stream,
            peer,
            id,
            stage,
            accepted,
            read_only: false,
            admin: None,
            opened: now,
            last_read: now,
            last_write: now,
            hangup_seen: false,
            superseded: None,
            held: (class, 0),
            decoder: FrameDecoder::new(HANDSHAKE_FRAME_MAX),
            encoder: FrameEncoder::new(HANDSHAKE_FRAME_MAX),
            out: Vec::new(),
            bulk: BulkQueue::default(),
            assembly: Assembly::default(),
            write_pending: false,
            send_message_max: 0,
            receive_message_max: 0,
            initiator: None,
            sealed: None,
        }
    }

    /// The bytes waiting to be written in `lane`: a control message counts only what is
    /// framed, since it goes ahead of the bulk messages not framed yet.
    pub(super) fn queued_bytes(&self, lane: Lane) -> usize {
        match lane {
            Lane::Control => self.out.len(),
            Lane::Bulk => self.out.len() + self.bulk.waiting_bytes(),
        }
    }

    /// The largest message this link sends (0 before it opens).
    pub(super) fn send_message_max(&self) -> usize {
        self.send_message_max
    }

    /// What its read buffers count against: an accepted connection is in the handshake class
    /// until its handshake is done, then a read-only node's or a voter's; a dialled one is a
    /// voter's.
    pub(super) fn class(&self) -> Class {
        match (self.accepted, self.stage, self.read_only) {
            (false, _, _) => Class::Voter,
            (true, Stage::Open, true) => Class::ReadOnly,
            (true, Stage::Open, false) => Class::Voter,
            (true, _, _) => Class::Handshake,
        }
    }

    /// The bytes its read buffers hold, as counted against the budget: the frame decoder's
    /// allocation and, when encrypted, the plaintext not yet decoded and a record received in
    /// part. While a fragmented message comes in, its whole length and the most those
    /// buffers can hold are counted instead: the message was given room to finish, so it
    /// never waits for the budget halfway.
    pub(super) fn input_bytes(&self) -> usize {
        if self.assembly.in_progress() {
            return self.assembly.capacity() + self.working_bytes_max();
        }
        let sealed = self.sealed.as_ref().map_or(0, |sealed| {
            sealed.plain.capacity() + sealed.session.buffered_capacity()
        });
        self.decoder.capacity() + sealed
    }

    /// The most the read buffers hold, whatever comes.
    fn working_bytes_max(&self) -> usize {
        self.decoder.buffer_bytes_max() + self.sealed_bytes_max()
    }

    /// The most an encrypted connection holds beside its decoder: one read's plaintext and a
    /// record received in part (nothing on a plain connection).
    fn sealed_bytes_max(&self) -> usize {
        match self.sealed {
            Some(_) => READ_CHUNK_BYTES_DEFAULT + RECORD_BYTES_MAX,
            None => 0,
        }
    }

    /// The length of the message whose first fragment is the next whole frame, if it is one
    /// the link takes: taking it needs room for the whole message. A longer one is not
    /// waited for: taking it drops the connection.
    pub(super) fn message_due(&self) -> Option<usize> {
        if self.stage != Stage::Open {
            return None;
        }
        let frame = self.decoder.peek_frame()?;
        Some(Assembly::reservation(frame)).filter(|&len| len > 0 && len <= self.receive_message_max)
    }

    /// The most [`input_bytes`](Self::input_bytes) can be after one more [`read`](Self::read),
    /// or after taking a first fragment that waits: what the budget checks first.
    pub(super) fn input_bytes_after_read_max(&self) -> usize {
        if let Some(len) = self.message_due() {
            return len + self.working_bytes_max();
        }
        if self.assembly.in_progress() {
            return self.input_bytes();
        }
        self.decoder.capacity_after_read_max() + self.sealed_bytes_max()
    }

    /// Frames `payload` as it is (a handshake message, or an empty keep-alive), sealing it on
    /// an encrypted connection, onto the bytes to write.
    pub(super) fn queue(&mut self, payload: &[u8]) -> Result<(), Fault> {
        self.queue_parts(&[payload])
    }

    /// Queues a message of an open link in `lane`: framed at once if it is a small control
    /// message, or a small bulk one with no bulk message waiting; else behind the waiting
    /// bulk messages, to go out a fragment at a time as [`flush`](Self::flush) writes.
    pub(super) fn queue_message(&mut self, lane: Lane, message: Bytes) -> Result<(), Fault> {
        let small = message.len() <= FRAGMENT_BYTES;
        if small && (lane == Lane::Control || self.bulk.is_empty()) {
            return self.queue_piece(&super::lanes::whole(&message));
        }
        self.bulk.push(message);
        Ok(())
    }

    /// Frames waiting bulk messages, a piece at a time, while less than a fragment is ready
    /// to write; returns the bytes framed.
    fn refill(&mut self) -> Result<usize, Fault> {
        let mut framed = 0;
        while self.out.len() < FRAGMENT_BYTES {
            let Some(piece) = self.bulk.next_piece() else {
                break;
            };
            let len = piece.data.len();
            let parts = [piece.prefix(), piece.data];
            Self::frame_into(&self.encoder, &mut self.sealed, &parts, &mut self.out)?;
            self.bulk.advance(len);
            framed += len;
        }
        Ok(framed)
    }

    /// Whether bulk messages wait while the socket may take more (see
    /// [`flush`](Self::flush)).
    pub(super) fn write_pending(&self) -> bool {
        self.write_pending
    }

    fn queue_piece(&mut self, piece: &Piece<'_>) -> Result<(), Fault> {
        self.queue_parts(&[piece.prefix(), piece.data])
    }

    fn queue_parts(&mut self, parts: &[&[u8]]) -> Result<(), Fault> {
        Self::frame_into(&self.encoder, &mut self.sealed, parts, &mut self.out)
    }

    /// Frames `parts` as one payload onto `out`, sealed when the connection is encrypted.
    fn frame_into(
        encoder: &FrameEncoder,
        sealed: &mut Option<Box<Sealed>>,
        parts: &[&[u8]],
        out: &mut Vec<u8>,
    ) -> Result<(), Fault> {
        let framing = |e| Fault::BadFrame(format!("cannot frame: {e}"));
        match sealed {
            None => encoder.encode_parts(parts, out).map_err(framing),
            Some(sealed) => {
                sealed.frame.clear();
                encoder
                    .encode_parts(parts, &mut sealed.frame)
                    .map_err(framing)?;
                let sealing = sealed.session.seal(&sealed.frame, out);
                if sealed.frame.capacity() > IDLE_SEND_BYTES_MAX {
                    sealed.frame = Vec::new();
                }
                sealing.map_err(|e| Fault::Io(format!("cannot seal: {e}")))
            }
        }
    }

    /// Writes as much as the socket takes: the framed bytes, and the waiting bulk messages a
    /// piece at a time, at most [`FLUSH_BULK_BYTES_MAX`] of them; if more wait and the
    /// socket would take them, [`write_pending`](Self::write_pending) says so.
    pub(super) fn flush(&mut self, now: Instant) -> Result<(), Fault> {
        self.write_pending = false;
        if self.stage == Stage::Connecting {
            return Ok(());
        }
        let mut framed = 0;
        loop {
            framed += self.refill()?;
            let all_written = self.write_out(now)?;
            if !all_written || self.bulk.is_empty() {
                break;
            }
            if framed >= FLUSH_BULK_BYTES_MAX {
                self.write_pending = true;
                break;
            }
        }
        if self.out.is_empty() && self.out.capacity() > IDLE_SEND_BYTES_MAX {
            self.out = Vec::new();
        }
        Ok(())
    }

    /// Writes as much of the framed bytes as the socket takes; returns whether it took all.
    fn write_out(&mut self, now: Instant) -> Result<bool, Fault> {
        let mut written_total = 0;
        let result = loop {
            if written_total == self.out.len() {
                break Ok(true);
            }
            match self.stream.write(&self.out[written_total..]) {
                Ok(0) => break Err(Fault::Io("socket closed while writing".into())),
                Ok(written) => {
                    written_total += written;
                    self.last_write = now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(Fault::Io(format!("write failed: {e}"))),
            }
        };
        self.out.drain(..written_total);
        result
    }

    /// One read from the socket into the frame decoder, through `scratch` (shared by every
    /// connection) and, when encrypted, through the session; or, when decrypted bytes wait,
    /// no read but as many of them as the decoder takes. Memory stays within
    /// [`input_bytes_after_read_max`](Self::input_bytes_after_read_max) as it was before.
    ///
    /// A read that returns less than it asked for emptied the socket: the connection then
    /// counts as drained without another read that would only say so (a system call per
    /// readiness event saved), since the poller is edge-triggered and reports any byte that
    /// arrives after it said readable. Not once the peer's end was reported closed: its end
    /// of stream comes with no further event, so reads go on until it is seen.
    pub(super) fn read(&mut self, scratch: &mut [u8]) -> Result<Progress, Fault> {
        let trust_short = !self.hangup_seen;
        let Some(sealed) = &mut self.sealed else {
            let mut source = ShortRead::new(&mut self.stream);
            let status = self
                .decoder
                .read_once_from(&mut source, scratch)
                .map_err(|e| Fault::Io(format!("read failed: {e}")))?;
            let short = source.short;
            return Ok(match status {
                ReadStatus::BufferFull | ReadStatus::More if short && trust_short => {
                    Progress::WouldBlock
                }
                ReadStatus::BufferFull | ReadStatus::More => Progress::More,
                ReadStatus::WouldBlock => Progress::WouldBlock,
                ReadStatus::Closed => Progress::Closed,
            });
        };
        let mut drained = false;
        if sealed.plain.is_empty() {
            let limit = scratch.len().min(READ_CHUNK_BYTES_DEFAULT);
            match self.stream.read(&mut scratch[..limit]) {
                Ok(0) => return Ok(Progress::Closed),
                Ok(n) => {
                    drained = n < limit && trust_short;
                    sealed
                        .session
                        .unseal(&scratch[..n], &mut sealed.plain)
                        .map_err(|e| Fault::Authentication(format!("bad record: {e}")))?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Progress::WouldBlock);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Progress::More),
                Err(e) => return Err(Fault::Io(format!("read failed: {e}"))),
            }
        }
        // Whole frames were taken before this read, so the decoder has room for more.
        let taken = self.decoder.feed(&sealed.plain);
        if taken == 0 && !sealed.plain.is_empty() {
            return Err(Fault::BadFrame("the frame decoder has no room".into()));
        }
        sealed.plain.drain(..taken);
        if sealed.plain.is_empty() {
            sealed.plain = Vec::new();
            if drained {
                return Ok(Progress::WouldBlock);
            }
        }
        Ok(Progress::More)
    }

    /// The next whole frame received, if `budget` has room for it.
    pub(super) fn next_frame(&mut self, budget: &mut PollBudget) -> Result<Next, Fault> {
        let bad = |e| Fault::BadFrame(format!("bad frame: {e}"));
        let Some(len) = self.decoder.next_frame_len() else {
            // Incomplete, or a refused header that `next_frame` reports.
            return self
                .decoder
                .next_frame()
                .map(|_| Next::Incomplete)
                .map_err(bad);
        };
        if !budget.take(len) {
            return Ok(Next::Capped);
        }
        Ok(match self.decoder.next_frame().map_err(bad)? {
            Some(frame) => Next::Frame(frame),
            None => Next::Incomplete,
        })
    }

    /// Takes a frame of an open link: hands a whole message to the layer above, keeps a
    /// fragment until its message is whole; empty frames only keep an idle link alive.
    pub(super) fn deliver(
        &mut self,
        frame: Bytes,
        out: &mut Vec<TransportEvent>,
    ) -> Result<(), Fault> {
        let message = self
            .assembly
            .take(frame, self.receive_message_max)
            .map_err(|e| Fault::BadFrame(format!("bad frame: {e}")))?;
        if let (Some(from), Some(frame)) = (self.id, message)
            && !frame.is_empty()
        {
            out.push(TransportEvent::Frame { from, frame });
        }
        Ok(())
    }

    /// The dialler's first frame, once the connect finished: a plain hello, or an encrypted
    /// one holding it.
    pub(super) fn send_hello(&mut self, settings: &TcpSettings) -> Result<(), Fault> {
        let mut hello = Vec::new();
        Hello::new(settings.cluster, settings.node.clone())
            .encode(&mut hello)
            .map_err(|e| Fault::Io(format!("cannot encode our hello: {e}")))?;
        let frame = match &settings.key {
            None => hello,
            Some(key) => {
                let mut first = Vec::new();
                let initiator = Initiator::start(key, &hello, &mut first)
                    .map_err(|e| Fault::Io(format!("cannot start the handshake: {e}")))?;
                self.initiator = Some(initiator);
                first
            }
        };
        self.queue(&frame)?;
        self.stage = Stage::AwaitReply;
        Ok(())
    }

    /// The acceptor's side: checks the dialler's first frame and answers it; a read-only node
    /// is refused as busy unless `read_only_room`. On success the connection is open, or
    /// awaits the dialler's first record when encrypted.
    pub(super) fn on_hello(
        &mut self,
        frame: &[u8],
        settings: &TcpSettings,
        room: Room,
        now: Instant,
    ) -> Result<(), Fault> {
        let encrypted = frame.starts_with(&SECURE_MAGIC);
        let remote = self.stream.peer_addr().ok().map(|a| a.ip());
        let ask = Admission {
            settings,
            room,
            encrypted,
            remote,
        };
        match (&settings.key, encrypted) {
            (None, false) => {
                let verdict = decode_and_check(frame, &ask);
                let reply = verdict.as_ref().map_or_else(
                    |reason| HelloReply::Refused(*reason),
                    |_| HelloReply::Accepted,
                );
                self.queue(&reply_bytes(&reply))?;
                self.settle(verdict, Asker::of(frame, settings), settings, now)
            }
            (Some(key), true) => {
                let (responder, hello) = Responder::accept(key, frame).map_err(|e| {
                    Fault::Authentication(format!("hello does not authenticate: {e}"))
                })?;
                let verdict = decode_and_check(&hello, &ask);
                let reply = verdict.as_ref().map_or_else(
                    |reason| HelloReply::Refused(*reason),
                    |_| HelloReply::Accepted,
                );
                self.reply_sealed(responder, &reply)?;
                self.settle(verdict, Asker::of(&hello, settings), settings, now)
            }
            (Some(_), false) => self.refuse(RefuseReason::PasswordRequired, now),
            (None, true) => self.refuse(RefuseReason::PasswordNotConfigured, now),
        }
    }

    /// The dialler's side: reads the acceptor's reply. On success the connection is open.
    pub(super) fn on_reply(&mut self, frame: &[u8], settings: &TcpSettings) -> Result<(), Fault> {
        // A refusal in plain bytes comes from an acceptor that could not or would not read
        // our hello (a password on one side only); it is checked first on either kind of
        // connection.
        if let Ok(HelloReply::Refused(reason)) = HelloReply::decode(frame) {
            return Err(Fault::Refused(format!(
                "the peer refused our hello: {reason}"
            )));
        }
        let reply = match self.initiator.take() {
            None => frame.to_vec(),
            Some(initiator) => {
                let (session, reply) = initiator.finish(frame).map_err(|e| {
                    Fault::Authentication(format!(
                        "the reply does not authenticate ({e}): the peer has another password"
                    ))
                })?;
                self.start_sealed(session)?;
                reply
            }
        };
        match HelloReply::decode(&reply) {
            Ok(HelloReply::Accepted) => {}
            Ok(HelloReply::Refused(reason)) => {
                return Err(Fault::Refused(format!(
                    "the peer refused our hello: {reason}"
                )));
            }
            Err(e) => return Err(Fault::BadFrame(format!("undecodable hello reply: {e}"))),
        }
        if self.sealed.is_some() {
            // The first record: it proves to the acceptor that we hold the session keys.
            self.queue(&[])?;
        }
        self.open(settings);
        Ok(())
    }

    /// The encrypted acceptor's first authentic record arrived: the dialler holds the keys.
    pub(super) fn on_confirm(&mut self, settings: &TcpSettings) {
        match self.admin {
            Some(_) => self.open_admin(),
            None => self.open(settings),
        }
    }

    /// An administrator's handshake is done: one small request in, one reply out, each a
    /// plain frame (no lanes).
    fn open_admin(&mut self) {
        self.stage = Stage::Open;
        self.receive_message_max = ADMIN_REQUEST_BYTES_MAX;
        self.send_message_max = ADMIN_REPLY_BYTES_MAX;
        self.decoder
            .set_frame_size_max(u32::try_from(ADMIN_REQUEST_BYTES_MAX).unwrap_or(u32::MAX));
        self.encoder = FrameEncoder::new(u32::try_from(ADMIN_REPLY_BYTES_MAX).unwrap_or(u32::MAX));
    }

    /// Queues an administrator's reply as one frame, and writes what the socket takes.
    pub(super) fn answer_admin(&mut self, reply: &[u8], now: Instant) -> Result<(), Fault> {
        self.admin = Some(AdminExchange::Answered);
        self.queue(reply)?;
        self.flush(now)
    }

    /// Whether this is an administrator's connection whose answer is all written.
    pub(super) fn admin_served(&self) -> bool {
        self.admin == Some(AdminExchange::Answered) && self.out.is_empty()
    }

    /// The handshake is done: messages up to the link's limits flow, in frames of at most a
    /// fragment. A read-only node sends small messages only; messages to it keep the
    /// transport's limit.
    fn open(&mut self, settings: &TcpSettings) {
        self.stage = Stage::Open;
        self.receive_message_max = match self.read_only {
            true => settings.read_only_frame_max(),
            false => settings.frame_size_max,
        } as usize;
        self.send_message_max = match settings.node {
            Peer::ReadOnly(_) | Peer::Admin => settings.read_only_frame_max(),
            Peer::Voter(_) => settings.frame_size_max,
        } as usize;
        self.decoder.set_frame_size_max(LINK_FRAME_MAX);
        self.encoder = FrameEncoder::new(LINK_FRAME_MAX);
    }

    /// Ends the acceptor's side of a handshake: opens on an accepted hello, else flushes the
    /// refusal and fails.
    fn settle(
        &mut self,
        verdict: Result<Peer, RefuseReason>,
        asker: Asker,
        settings: &TcpSettings,
        now: Instant,
    ) -> Result<(), Fault> {
        match verdict {
            Ok(peer) => {
                self.read_only = matches!(peer, Peer::ReadOnly(_));
                if peer == Peer::Admin {
                    self.admin = Some(AdminExchange::Admitted);
                }
                self.peer = Some(peer_name(&peer));
                match (self.sealed.is_some(), self.admin.is_some()) {
                    (true, _) => self.stage = Stage::AwaitConfirm,
                    (false, true) => self.open_admin(),
                    (false, false) => self.open(settings),
                }
                Ok(())
            }
            Err(reason) => {
                // Best effort: the connection closes right after.
                let _ = self.flush(now);
                let text = format!("hello refused: {reason}");
                Err(match (reason, asker) {
                    (RefuseReason::Busy, Asker::ReadOnly) => Fault::ReadOnlyOverCap(text),
                    (RefuseReason::Busy, Asker::Stranger) => Fault::StrangerOverCap(text),
                    _ => Fault::Refused(text),
                })
            }
        }
    }

    /// Refuses in plain bytes, for a dialler whose hello this node cannot or will not read.
    fn refuse(&mut self, reason: RefuseReason, now: Instant) -> Result<(), Fault> {
        self.queue(&reply_bytes(&HelloReply::Refused(reason)))?;
        let _ = self.flush(now);
        Err(Fault::Refused(format!("hello refused: {reason}")))
    }

    fn reply_sealed(&mut self, responder: Responder, reply: &HelloReply) -> Result<(), Fault> {
        let mut second = Vec::new();
        let session = responder
            .reply(&reply_bytes(reply), &mut second)
            .map_err(|e| Fault::Io(format!("cannot answer the handshake: {e}")))?;
        self.queue(&second)?;
        self.start_sealed(session)
    }

    /// Switches the connection to records. Nothing may follow the handshake message in the
    /// plain stream: such bytes would bypass authentication.
    fn start_sealed(&mut self, session: Session) -> Result<(), Fault> {
        if self.decoder.buffered() > 0 {
            return Err(Fault::Authentication(format!(
                "{} unauthenticated bytes follow the handshake",
                self.decoder.buffered()
            )));
        }
        self.sealed = Some(Box::new(Sealed {
            session,
            plain: Vec::new(),
            frame: Vec::new(),
        }));
        Ok(())
    }
}

/// The name a peer goes by: a voter's address, or `readonly:` and a read-only node's number in
/// hexadecimal ([`crate::TransportEvent::ReadOnlyJoined`]).
pub(super) fn peer_name(peer: &Peer) -> String {
    match peer {
        Peer::Voter(address) => address.clone(),
        Peer::ReadOnly(id) => format!("{}{id:016x}", crate::READ_ONLY_PREFIX),
        Peer::Admin => "admin".to_owned(),
    }
}

/// Who sent a hello, as far as counting its refusal goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asker {
    Admin,
    ReadOnly,
    /// A voter this node does not know.
    Stranger,
    /// A voter it knows, or an undecodable hello.
    Other,
}

impl Asker {
    /// Who sent `hello`, as received.
    fn of(hello: &[u8], settings: &TcpSettings) -> Asker {
        match Hello::decode(hello).map(|h| h.node) {
            Ok(Peer::Admin) => Asker::Admin,
            Ok(Peer::ReadOnly(_)) => Asker::ReadOnly,
            Ok(Peer::Voter(address)) if !settings.voters.contains(&address) => Asker::Stranger,
            _ => Asker::Other,
        }
    }
}

/// Whether the transport has room for one more read-only node, administrator and stranger.
#[derive(Clone, Copy, Debug)]
pub(super) struct Room {
    pub(super) read_only: bool,
    pub(super) admin: bool,
    /// `None` when strangers are not admitted at all.
    pub(super) stranger: Option<bool>,
}

/// What the acceptor weighs a hello against.
struct Admission<'a> {
    settings: &'a TcpSettings,
    room: Room,
    /// Whether the hello came inside the encrypted handshake.
    encrypted: bool,
    /// The dialler's address, if the socket still knows it.
    remote: Option<std::net::IpAddr>,
}

/// Decodes and checks a hello; a read-only node, a stranger or an administrator that may be
/// accepted is refused as busy unless the transport has room for it. An administrator must pass
/// [`check_admin`] too, and is refused as [`RefuseReason::AdminDisabled`] by a transport that
/// admits none.
fn decode_and_check(hello: &[u8], ask: &Admission<'_>) -> Result<Peer, RefuseReason> {
    let settings = ask.settings;
    let config = HandshakeConfig {
        cluster: settings.cluster,
        voters: settings.voters.iter().cloned().collect(),
        accept_read_only: settings.accept_read_only,
        accept_strangers: ask.room.stranger.is_some(),
    };
    let hello = Hello::decode(hello).map_err(|e| e.refuse_reason())?;
    check_hello(&hello, &config)?;
    match &hello.node {
        Peer::ReadOnly(_) if !ask.room.read_only => return Err(RefuseReason::Busy),
        Peer::Voter(address)
            if ask.room.stranger == Some(false) && !config.voters.contains(address) =>
        {
            return Err(RefuseReason::Busy);
        }
        Peer::Admin => {
            if settings.limits.admin_connections_max == 0 {
                return Err(RefuseReason::AdminDisabled);
            }
            let remote = ask.remote.ok_or(RefuseReason::AdminNotAllowed)?;
            check_admin(remote, ask.encrypted, settings.admin_from_anywhere)?;
            if !ask.room.admin {
                return Err(RefuseReason::Busy);
            }
        }
        _ => {}
    }
    Ok(hello.node)
}

fn reply_bytes(reply: &HelloReply) -> Vec<u8> {
    let mut bytes = Vec::new();
    reply.encode(&mut bytes);
    bytes
}
