//! Administration over a node's TCP port: the requests and replies of `syncobj-admin`, and
//! [`AdminClient`], a small blocking client that sends one of them.
//!
//! An administrator dials a node's port like a peer and says hello as
//! [`Peer::Admin`]; with a cluster password the hello travels inside the encrypted handshake,
//! exactly as a node's does, so only password holders administer; without one the node admits
//! admin hellos from loopback only, unless configured otherwise
//! ([`check_admin`](crate::handshake::check_admin)). After the handshake the client sends one
//! [`AdminRequest`] and the node answers one [`AdminReply`], each the whole payload of one
//! frame (MessagePack of these types; no lanes, no fragments), then closes the connection.
//! Requests are at most [`ADMIN_REQUEST_BYTES_MAX`] bytes, replies at most
//! [`ADMIN_REPLY_BYTES_MAX`]. An admin connection is never a link: it is limited in number and
//! needs no cluster identity (PySyncObj's `TcpUtility` sends a bare Python list as its first
//! message instead, and needs no password at all when the cluster has none).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::frame::{FrameDecoder, FrameEncoder};
use crate::handshake::{ClusterId, HELLO_BYTES_MAX, Hello, HelloReply, Peer, RefuseReason};
use crate::resolve::{AddressProblem, check_address};
use crate::secure::{ClusterKey, Initiator, SecureError, Session};

/// The largest encoded [`AdminRequest`] a node takes, in bytes: an address and a tag.
pub const ADMIN_REQUEST_BYTES_MAX: usize = 1024;

/// The largest encoded [`AdminReply`], in bytes: a status report of a large cluster fits.
pub const ADMIN_REPLY_BYTES_MAX: usize = 1024 * 1024;

/// What an administrator asks a node, as PySyncObj's `syncobj_admin` does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRequest {
    /// The node's status report (`-status`).
    Status,
    /// Add the voter at this address (`-add host:port`): `add_node_to_cluster`.
    Add(String),
    /// Remove the member at this address (`-remove host:port`): `remove_node_from_cluster`.
    Remove(String),
    /// Enable this code version on every node (`-set_version N`): `set_code_version`.
    SetVersion(u32),
    /// Hand the leadership over to this voter, or to the most up-to-date one:
    /// `transfer_leadership`.
    Transfer(Option<String>),
}

/// What a node answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminReply {
    /// The status report: the node's `Status`, as MessagePack with field names (the layer
    /// above, which knows the type, decodes it).
    Status(Bytes),
    /// The command completed.
    Done,
    /// The command failed, or the request could not be served: why, as text.
    Failed(String),
}

impl AdminRequest {
    /// The request as one frame's payload. Allocates it.
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec(self).expect("an admin request always encodes")
    }

    /// Decodes a request received by a node.
    ///
    /// # Errors
    /// [`AdminError::Protocol`] for bytes that are not a request.
    pub fn decode(bytes: &[u8]) -> Result<AdminRequest, AdminError> {
        rmp_serde::from_slice(bytes)
            .map_err(|e| AdminError::Protocol(format!("undecodable admin request: {e}")))
    }

    /// PySyncObj's spelling of the command and its arguments, upper-cased, as its replies
    /// show them: `STATUS`, `ADD host:port`, `REMOVE host:port`, `SET_VERSION 2`,
    /// `TRANSFER` or `TRANSFER host:port`.
    pub fn describe(&self) -> String {
        match self {
            AdminRequest::Status => "STATUS".to_owned(),
            AdminRequest::Add(address) => format!("ADD {address}"),
            AdminRequest::Remove(address) => format!("REMOVE {address}"),
            AdminRequest::SetVersion(version) => format!("SET_VERSION {version}"),
            AdminRequest::Transfer(None) => "TRANSFER".to_owned(),
            AdminRequest::Transfer(Some(address)) => format!("TRANSFER {address}"),
        }
    }
}

impl AdminReply {
    /// The reply as one frame's payload. Allocates it.
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec(self).expect("an admin reply always encodes")
    }

    /// Decodes a reply received by a client.
    ///
    /// # Errors
    /// [`AdminError::Protocol`] for bytes that are not a reply.
    pub fn decode(bytes: &[u8]) -> Result<AdminReply, AdminError> {
        rmp_serde::from_slice(bytes)
            .map_err(|e| AdminError::Protocol(format!("undecodable admin reply: {e}")))
    }
}

/// Why an administration request got no reply.
#[derive(Debug, Error)]
pub enum AdminError {
    /// The address is not a `host:port` one can dial.
    #[error("invalid address to connect {address:?}: {problem}")]
    BadAddress {
        /// The address given.
        address: String,
        /// What is wrong with it.
        problem: AddressProblem,
    },
    /// The address does not resolve.
    #[error("cannot resolve {address}: {source}")]
    Resolve {
        /// The address given.
        address: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// No address of the node accepted the connection.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// The address given.
        address: String,
        /// The last attempt's error.
        source: io::Error,
    },
    /// The reply did not come within the timeout.
    #[error("no reply from {address} within {timeout:?}")]
    Timeout {
        /// The address given.
        address: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The node refused the hello.
    #[error("the node refused the connection: {0}")]
    Refused(RefuseReason),
    /// The node closed the connection before answering: with a password, the usual sign that
    /// it has another password (or none).
    #[error("the node closed the connection before answering{hint}")]
    Closed {
        /// A guess at why.
        hint: &'static str,
    },
    /// The password gives no key, or the node's answer does not authenticate.
    #[error("encryption failed: {0}")]
    Secure(#[from] SecureError),
    /// A socket error.
    #[error("connection lost: {0}")]
    Io(io::Error),
    /// Bytes that do not follow the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// A blocking client that sends one [`AdminRequest`] to one node per call.
pub struct AdminClient {
    address: String,
    key: Option<ClusterKey>,
    timeout: Duration,
}

impl AdminClient {
    /// A client of the node at `address` (`host:port`), with the cluster's `password` if it
    /// has one, giving each request `timeout` in all (resolving, connecting, the handshake and
    /// the node's work). Deriving the key from a password is deliberately slow (a memory-hard
    /// hash, as every node does at start).
    ///
    /// # Errors
    /// [`AdminError::BadAddress`] for an address that is not a `host:port`;
    /// [`AdminError::Secure`] for an empty password.
    pub fn new(
        address: &str,
        password: Option<&str>,
        timeout: Duration,
    ) -> Result<AdminClient, AdminError> {
        check_address(address).map_err(|problem| AdminError::BadAddress {
            address: address.to_owned(),
            problem,
        })?;
        let key = password.map(ClusterKey::derive).transpose()?;
        Ok(AdminClient {
            address: address.to_owned(),
            key,
            timeout,
        })
    }

    /// Sends `request` on a new connection and waits for the reply, within the timeout.
    ///
    /// # Errors
    /// [`AdminError`]: the address does not resolve or accept, the hello is refused, the node
    /// closes without answering, the timeout passes, or the bytes break the protocol. A
    /// command the node refuses is not an error: it is [`AdminReply::Failed`].
    pub fn request(&self, request: &AdminRequest) -> Result<AdminReply, AdminError> {
        let deadline = Instant::now() + self.timeout;
        let stream = self.connect(deadline)?;
        let mut wire = Wire::new(stream, deadline);
        let result = self.exchange(&mut wire, request);
        match result {
            Err(AdminError::Io(error))
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(self.timed_out())
            }
            other => other,
        }
    }

    fn exchange(&self, wire: &mut Wire, request: &AdminRequest) -> Result<AdminReply, AdminError> {
        let mut hello = Vec::with_capacity(HELLO_BYTES_MAX);
        Hello::new(ClusterId([0; 16]), Peer::Admin)
            .encode(&mut hello)
            .map_err(|e| AdminError::Protocol(e.to_string()))?;
        match &self.key {
            None => {
                wire.send(&hello)?;
                let reply = wire.receive()?;
                check_reply(&reply)?;
            }
            Some(key) => {
                let mut first = Vec::new();
                let initiator = Initiator::start(key, &hello, &mut first)?;
                wire.send(&first)?;
                let answer = wire.receive()?;
                // A plain refusal: the node has no password, or would not read ours.
                if let Ok(HelloReply::Refused(reason)) = HelloReply::decode(&answer) {
                    return Err(AdminError::Refused(reason));
                }
                let (session, reply) = initiator.finish(&answer)?;
                wire.session = Some(session);
                check_reply(&reply)?;
                // The first record proves to the node that we hold the session keys.
                wire.send(&[])?;
            }
        }
        wire.send(&request.encode())?;
        loop {
            let frame = wire.receive()?;
            // Empty frames keep an idle connection alive while the node works.
            if !frame.is_empty() {
                return AdminReply::decode(&frame);
            }
        }
    }

    fn connect(&self, deadline: Instant) -> Result<TcpStream, AdminError> {
        let addresses: Vec<SocketAddr> = self
            .address
            .to_socket_addrs()
            .map_err(|source| AdminError::Resolve {
                address: self.address.clone(),
                source,
            })?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
        for address in addresses {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.timed_out());
            }
            match TcpStream::connect_timeout(&address, left) {
                Ok(stream) => {
                    stream.set_nodelay(true).map_err(AdminError::Io)?;
                    return Ok(stream);
                }
                Err(error) if error.kind() == io::ErrorKind::TimedOut => {
                    return Err(self.timed_out());
                }
                Err(error) => last = error,
            }
        }
        Err(AdminError::Connect {
            address: self.address.clone(),
            source: last,
        })
    }

    fn timed_out(&self) -> AdminError {
        AdminError::Timeout {
            address: self.address.clone(),
            timeout: self.timeout,
        }
    }
}

/// Fails unless the node accepted the hello.
fn check_reply(reply: &[u8]) -> Result<(), AdminError> {
    match HelloReply::decode(reply) {
        Ok(HelloReply::Accepted) => Ok(()),
        Ok(HelloReply::Refused(reason)) => Err(AdminError::Refused(reason)),
        Err(e) => Err(AdminError::Protocol(format!(
            "undecodable hello reply: {e}"
        ))),
    }
}

/// One blocking connection: frames, sealed once the session is up.
struct Wire {
    stream: TcpStream,
    deadline: Instant,
    session: Option<Session>,
    decoder: FrameDecoder,
    encoder: FrameEncoder,
    /// Decrypted bytes not fed to the decoder yet.
    plain: Vec<u8>,
}

impl Wire {
    fn new(stream: TcpStream, deadline: Instant) -> Wire {
        let max = u32::try_from(ADMIN_REPLY_BYTES_MAX).expect("1 MiB fits a u32");
        Wire {
            stream,
            deadline,
            session: None,
            decoder: FrameDecoder::new(max),
            encoder: FrameEncoder::new(max),
            plain: Vec::new(),
        }
    }

    fn send(&mut self, payload: &[u8]) -> Result<(), AdminError> {
        let mut framed = Vec::new();
        self.encoder
            .encode(payload, &mut framed)
            .map_err(|e| AdminError::Protocol(e.to_string()))?;
        let bytes = match &mut self.session {
            None => framed,
            Some(session) => {
                let mut sealed = Vec::new();
                session.seal(&framed, &mut sealed)?;
                sealed
            }
        };
        self.arm()?;
        self.stream.write_all(&bytes).map_err(AdminError::Io)
    }

    /// The next whole frame, waiting until the deadline.
    fn receive(&mut self) -> Result<Bytes, AdminError> {
        let mut scratch = vec![0u8; 64 * 1024];
        loop {
            if !self.plain.is_empty() {
                let taken = self.decoder.feed(&self.plain);
                self.plain.drain(..taken);
            }
            if let Some(frame) = self
                .decoder
                .next_frame()
                .map_err(|e| AdminError::Protocol(format!("bad frame: {e}")))?
            {
                return Ok(frame);
            }
            self.arm()?;
            let n = match self.stream.read(&mut scratch) {
                Ok(0) => {
                    return Err(AdminError::Closed {
                        hint: match self.session {
                            None => ": another password?",
                            Some(_) => "",
                        },
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(AdminError::Closed { hint: " (reset)" });
                }
                Err(e) => return Err(AdminError::Io(e)),
            };
            match &mut self.session {
                None => self.plain.extend_from_slice(&scratch[..n]),
                Some(session) => session.unseal(&scratch[..n], &mut self.plain)?,
            }
        }
    }

    /// Sets the socket's timeouts to what is left before the deadline.
    fn arm(&mut self) -> Result<(), AdminError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(AdminError::Io(io::ErrorKind::TimedOut.into()));
        }
        self.stream
            .set_read_timeout(Some(left))
            .and_then(|()| self.stream.set_write_timeout(Some(left)))
            .map_err(AdminError::Io)
    }
}
