//! One TCP connection: its handshake, its codec (frames, sealed into records when the cluster
//! has a password) and its send queue.

use std::io::{self, Read, Write};
use std::time::Instant;

use bytes::Bytes;
use mio::net::TcpStream;

use super::settings::TcpSettings;
use crate::frame::{FRAME_HEADER_BYTES, FrameDecoder, FrameEncoder, ReadStatus};
use crate::handshake::{HandshakeConfig, Hello, HelloReply, Peer, RefuseReason, check_hello};
use crate::secure::{
    HANDSHAKE_PAYLOAD_MAX, Initiator, RECORD_BYTES_MAX, Responder, SECURE_MAGIC, Session,
};
use crate::{PeerId, TransportEvent};

/// The largest frame a connection accepts before its handshake is done: a hello or reply,
/// encrypted or not. Frames may be larger only once the peer is known.
pub(super) const HANDSHAKE_FRAME_MAX: u32 = 2 * HANDSHAKE_PAYLOAD_MAX as u32;

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
    /// An oversized or undecodable frame.
    BadFrame(String),
    /// A handshake refused, by either side.
    Refused(String),
    /// Bytes that failed authentication: another password, tampering or a replay.
    Authentication(String),
    /// Dropped at the request of the layer above, which counts it.
    Dropped(String),
}

impl Fault {
    pub(super) fn reason(&self) -> &str {
        match self {
            Fault::Io(r)
            | Fault::BadFrame(r)
            | Fault::Refused(r)
            | Fault::Authentication(r)
            | Fault::Dropped(r) => r,
        }
    }
}

/// The encrypted side of a connection once its handshake is done.
struct Sealed {
    session: Session,
    /// Scratch space for one read off the socket.
    raw: Vec<u8>,
    /// Decrypted bytes the frame decoder has not taken yet.
    plain: Vec<u8>,
    /// Scratch space for one outgoing frame before it is sealed.
    frame: Vec<u8>,
}

/// What one poll may still take off the connections: frames, and bytes of frames.
#[derive(Debug)]
pub(super) struct Budget {
    frames_left: usize,
    bytes_left: usize,
    /// Whether a frame was taken: the first frame of a poll is taken whatever its size.
    taken: bool,
}

impl Budget {
    /// A poll's allowance: `frames_max` frames (at least 1) and `bytes_max` bytes.
    pub(super) fn new(frames_max: usize, bytes_max: usize) -> Budget {
        Budget {
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
    pub(super) last_read: Instant,
    pub(super) last_write: Instant,
    decoder: FrameDecoder,
    encoder: FrameEncoder,
    out: Vec<u8>,
    /// The dialler's handshake, between its hello and the reply, on an encrypted connection.
    initiator: Option<Initiator>,
    sealed: Option<Box<Sealed>>,
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
        settings: &TcpSettings,
        now: Instant,
    ) -> Connection {
        let (id, peer) = peer.map_or((None, None), |(id, name)| (Some(id), Some(name)));
        Connection {
            stream,
            peer,
            id,
            stage,
            last_read: now,
            last_write: now,
            decoder: FrameDecoder::new(HANDSHAKE_FRAME_MAX),
            encoder: FrameEncoder::new(settings.frame_size_max.max(HANDSHAKE_FRAME_MAX)),
            out: Vec::new(),
            initiator: None,
            sealed: None,
        }
    }

    /// The bytes waiting to be written.
    pub(super) fn queued_bytes(&self) -> usize {
        self.out.len()
    }

    /// Frames `payload` (sealing it on an encrypted connection) onto the send queue.
    pub(super) fn queue(&mut self, payload: &[u8]) -> Result<(), Fault> {
        let framing = |e| Fault::BadFrame(format!("cannot frame: {e}"));
        match &mut self.sealed {
            None => self.encoder.encode(payload, &mut self.out).map_err(framing),
            Some(sealed) => {
                sealed.frame.clear();
                self.encoder
                    .encode(payload, &mut sealed.frame)
                    .map_err(framing)?;
                sealed
                    .session
                    .seal(&sealed.frame, &mut self.out)
                    .map_err(|e| Fault::Io(format!("cannot seal: {e}")))
            }
        }
    }

    /// Writes as much of the send queue as the socket takes.
    pub(super) fn flush(&mut self, now: Instant) -> Result<(), Fault> {
        if self.stage == Stage::Connecting {
            return Ok(());
        }
        let mut written_total = 0;
        let result = loop {
            if written_total == self.out.len() {
                break Ok(());
            }
            match self.stream.write(&self.out[written_total..]) {
                Ok(0) => break Err(Fault::Io("socket closed while writing".into())),
                Ok(written) => {
                    written_total += written;
                    self.last_write = now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(Fault::Io(format!("write failed: {e}"))),
            }
        };
        self.out.drain(..written_total);
        result
    }

    /// Reads from the socket into the frame decoder (through the session when encrypted)
    /// until it holds a whole frame, or one record's worth when encrypted: the rest stays in
    /// the kernel's buffer until the next read. Memory stays bounded by the decoder's limit and
    /// one read chunk.
    pub(super) fn read(&mut self) -> Result<Progress, Fault> {
        let Some(sealed) = &mut self.sealed else {
            let status = self
                .decoder
                .read_frame_from(&mut self.stream)
                .map_err(|e| Fault::Io(format!("read failed: {e}")))?;
            return Ok(match status {
                ReadStatus::BufferFull => Progress::More,
                ReadStatus::WouldBlock => Progress::WouldBlock,
                ReadStatus::Closed => Progress::Closed,
            });
        };
        if !sealed.plain.is_empty() {
            // The decoder's bound always leaves room for a frame once whole frames are taken.
            let taken = self.decoder.feed(&sealed.plain);
            if taken == 0 {
                return Err(Fault::BadFrame("the frame decoder has no room".into()));
            }
            sealed.plain.drain(..taken);
            return Ok(Progress::More);
        }
        match self.stream.read(&mut sealed.raw) {
            Ok(0) => Ok(Progress::Closed),
            Ok(n) => {
                sealed
                    .session
                    .unseal(&sealed.raw[..n], &mut sealed.plain)
                    .map_err(|e| Fault::Authentication(format!("bad record: {e}")))?;
                let taken = self.decoder.feed(&sealed.plain);
                sealed.plain.drain(..taken);
                Ok(Progress::More)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Progress::WouldBlock),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Progress::More),
            Err(e) => Err(Fault::Io(format!("read failed: {e}"))),
        }
    }

    /// The next whole frame received, if `budget` has room for it.
    pub(super) fn next_frame(&mut self, budget: &mut Budget) -> Result<Next, Fault> {
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

    /// Hands a frame of an open link to the layer above; empty frames only keep an idle link
    /// alive.
    pub(super) fn deliver(&self, frame: Bytes, out: &mut Vec<TransportEvent>) {
        if let Some(from) = self.id
            && !frame.is_empty()
        {
            out.push(TransportEvent::Frame { from, frame });
        }
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

    /// The acceptor's side: checks the dialler's first frame and answers it. On success the
    /// connection is open, or awaits the dialler's first record when encrypted.
    pub(super) fn on_hello(
        &mut self,
        frame: &[u8],
        settings: &TcpSettings,
        now: Instant,
    ) -> Result<(), Fault> {
        let encrypted = frame.starts_with(&SECURE_MAGIC);
        match (&settings.key, encrypted) {
            (None, false) => {
                let verdict = decode_and_check(frame, settings);
                let reply = verdict.as_ref().map_or_else(
                    |reason| HelloReply::Refused(*reason),
                    |_| HelloReply::Accepted,
                );
                self.queue(&reply_bytes(&reply))?;
                self.settle(verdict, settings, now)
            }
            (Some(key), true) => {
                let (responder, hello) = Responder::accept(key, frame).map_err(|e| {
                    Fault::Authentication(format!("hello does not authenticate: {e}"))
                })?;
                let verdict = decode_and_check(&hello, settings);
                let reply = verdict.as_ref().map_or_else(
                    |reason| HelloReply::Refused(*reason),
                    |_| HelloReply::Accepted,
                );
                self.reply_sealed(responder, &reply)?;
                self.settle(verdict, settings, now)
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
        self.open(settings);
    }

    fn open(&mut self, settings: &TcpSettings) {
        self.stage = Stage::Open;
        self.decoder.set_frame_size_max(settings.frame_size_max);
    }

    /// Ends the acceptor's side of a handshake: opens on an accepted hello, else flushes the
    /// refusal and fails.
    fn settle(
        &mut self,
        verdict: Result<Peer, RefuseReason>,
        settings: &TcpSettings,
        now: Instant,
    ) -> Result<(), Fault> {
        match verdict {
            Ok(peer) => {
                self.peer = Some(peer_name(&peer));
                if self.sealed.is_some() {
                    self.stage = Stage::AwaitConfirm;
                } else {
                    self.open(settings);
                }
                Ok(())
            }
            Err(reason) => {
                // Best effort: the connection closes right after.
                let _ = self.flush(now);
                Err(Fault::Refused(format!("hello refused: {reason}")))
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
            raw: vec![0; RECORD_BYTES_MAX],
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
    }
}

fn decode_and_check(hello: &[u8], settings: &TcpSettings) -> Result<Peer, RefuseReason> {
    let config = HandshakeConfig {
        cluster: settings.cluster,
        voters: settings.voters.iter().cloned().collect(),
        accept_read_only: settings.accept_read_only,
    };
    let hello = Hello::decode(hello).map_err(|e| e.refuse_reason())?;
    check_hello(&hello, &config)?;
    Ok(hello.node)
}

fn reply_bytes(reply: &HelloReply) -> Vec<u8> {
    let mut bytes = Vec::new();
    reply.encode(&mut bytes);
    bytes
}
