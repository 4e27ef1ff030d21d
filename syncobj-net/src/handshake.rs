//! The first frame on every connection: the dialler's [`Hello`] and the acceptor's
//! [`HelloReply`].
//!
//! The dialling side sends a hello naming the protocol version it speaks, the cluster it belongs
//! to and the node it is (a voter's address as configured, or "read-only"). The acceptor decodes
//! it ([`Hello::decode`]), checks it against its own configuration ([`check_hello`]) and answers
//! [`HelloReply::Accepted`] or [`HelloReply::Refused`] with a [`RefuseReason`]; after a refusal
//! both sides close the connection. PySyncObj sends a bare address string (or `'readonly'`)
//! instead, with no version and no cluster identity, and drops unknown peers without a word.
//!
//! The format is a small fixed binary layout, independent of the MessagePack message codec so
//! that either can change without the other. It is not authenticated: the cluster identity
//! guards against misconfiguration, not attackers. With a password, authentication belongs to
//! the encryption layer.
//!
//! # Format, protocol versions 1 and 2
//!
//! Version 2 keeps the handshake of version 1; what changed is the framing of an open link
//! (two lanes, large messages in fragments: see the TCP transport's documentation).
//!
//! Each message is the whole payload of one frame ([`crate::frame`]) and fills it exactly:
//! trailing bytes are an error. Integers are little-endian. Both messages start with:
//!
//! | offset | bytes | field                                    |
//! |-------:|------:|------------------------------------------|
//! |      0 |     4 | magic, `b"SYOB"` ([`MAGIC`])             |
//! |      4 |     2 | protocol version, `u16` ([`PROTOCOL_VERSION`]) |
//! |      6 |     1 | kind: `0x01` hello, `0x02` reply         |
//!
//! Every later version keeps the magic and the version at these offsets, so that an acceptor can
//! answer a version it does not speak with [`RefuseReason::WrongProtocolVersion`] in the
//! version-1 reply layout, which every version keeps understanding.
//!
//! A hello continues with (32 bytes for a read-only node, 25 + n for a voter, 24 for an
//! administrator, at most [`HELLO_BYTES_MAX`]):
//!
//! | offset | bytes | field                                          |
//! |-------:|------:|------------------------------------------------|
//! |      7 |    16 | cluster identity ([`ClusterId`])               |
//! |     23 |     1 | peer: `0x01` voter, `0x02` read-only, `0x03` admin |
//! |     24 |     1 | voter only: address length n, 1 to 255         |
//! |     25 |     n | voter only: the address as configured, UTF-8   |
//! |     24 |     8 | read-only only: its node number, `u64`         |
//!
//! An admin hello ([`Peer::Admin`], `syncobj-admin`) ends after the peer tag. Its cluster
//! identity is not checked (an operator's tool knows the address of one node, not the
//! cluster's identity; it sends zeros): whether it is admitted is [`check_admin`]'s
//! decision, by the password or the dialler's address.
//!
//! A reply continues with (8 bytes, or 10 for a wrong protocol version, at most
//! [`REPLY_BYTES_MAX`]):
//!
//! | offset | bytes | field                                                           |
//! |-------:|------:|-----------------------------------------------------------------|
//! |      7 |     1 | outcome: `0x00` accepted; refused: `0x01` unknown node, `0x02` wrong protocol version, `0x03` wrong cluster, `0x04` malformed, `0x05` password required, `0x06` password not configured, `0x07` busy, `0x08` administration not allowed |
//! |      8 |     2 | wrong protocol version only: the acceptor's version, `u16`      |
//!
//! # Example
//!
//! ```
//! use std::collections::BTreeSet;
//! use syncobj_net::handshake::{check_hello, ClusterId, HandshakeConfig, Hello, HelloReply, Peer};
//!
//! let cluster = ClusterId([7; 16]);
//! // The dialler.
//! let mut payload = Vec::new();
//! Hello::new(cluster, Peer::Voter("10.0.0.2:4321".into())).encode(&mut payload)?;
//! // The acceptor.
//! let ours = HandshakeConfig {
//!     cluster,
//!     voters: BTreeSet::from(["10.0.0.2:4321".to_owned()]),
//!     accept_read_only: false,
//!     accept_strangers: false,
//! };
//! let reply = match Hello::decode(&payload) {
//!     Ok(hello) => match check_hello(&hello, &ours) {
//!         Ok(()) => HelloReply::Accepted,
//!         Err(reason) => HelloReply::Refused(reason),
//!     },
//!     Err(error) => HelloReply::Refused(error.refuse_reason()),
//! };
//! assert_eq!(reply, HelloReply::Accepted);
//! # Ok::<(), syncobj_net::handshake::HandshakeError>(())
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use thiserror::Error;

/// The version of the handshake and of the protocol behind it that this build speaks: 2 since
/// open links carry two lanes and fragment large messages, 3 since commands carry the cluster
/// time the leader stamps on them (a 16-byte command header).
pub const PROTOCOL_VERSION: u16 = 3;

/// The first four bytes of every handshake message.
pub const MAGIC: [u8; 4] = *b"SYOB";

/// The longest node address a hello carries, in bytes.
pub const ADDRESS_BYTES_MAX: usize = 255;

/// The longest encoded [`Hello`], in bytes: a frame limit for the first frame.
pub const HELLO_BYTES_MAX: usize = ADDRESS_OFFSET + ADDRESS_BYTES_MAX;

/// The longest encoded [`HelloReply`], in bytes.
pub const REPLY_BYTES_MAX: usize = 10;

const ADDRESS_LENGTH_OFFSET: usize = 24;
const ADDRESS_OFFSET: usize = 25;

const KIND_HELLO: u8 = 0x01;
const KIND_REPLY: u8 = 0x02;
const PEER_VOTER: u8 = 0x01;
const PEER_READ_ONLY: u8 = 0x02;
const PEER_ADMIN: u8 = 0x03;
const OUTCOME_ACCEPTED: u8 = 0x00;
const OUTCOME_UNKNOWN_NODE: u8 = 0x01;
const OUTCOME_WRONG_PROTOCOL_VERSION: u8 = 0x02;
const OUTCOME_WRONG_CLUSTER: u8 = 0x03;
const OUTCOME_MALFORMED: u8 = 0x04;
const OUTCOME_PASSWORD_REQUIRED: u8 = 0x05;
const OUTCOME_PASSWORD_NOT_CONFIGURED: u8 = 0x06;
const OUTCOME_BUSY: u8 = 0x07;
const OUTCOME_ADMIN_NOT_ALLOWED: u8 = 0x08;
const OUTCOME_ADMIN_DISABLED: u8 = 0x09;

/// The identity of a cluster: 16 bytes every node of it is configured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterId(pub [u8; 16]);

impl ClusterId {
    /// The identity of the cluster of `voters`: a hash (FNV-1a, twice) of their sorted,
    /// distinct addresses, so that nodes configured with other members refuse each other at
    /// the handshake. Public knowledge for anyone who knows the addresses: not a secret.
    pub fn of_voters(voters: &[String]) -> ClusterId {
        let mut sorted: Vec<&str> = voters.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let text = sorted.join("\n");
        let first = fnv1a(0xcbf2_9ce4_8422_2325, text.as_bytes());
        let second = fnv1a(first ^ 0x9E37_79B9_7F4A_7C15, text.as_bytes());
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&first.to_le_bytes());
        id[8..].copy_from_slice(&second.to_le_bytes());
        ClusterId(id)
    }

    /// The identity of every cluster whose membership changes at run time: it cannot depend
    /// on the voters, since a node added later is configured with another list than the
    /// first ones. A fixed value, so it tells such a cluster from a fixed one and nothing
    /// more; a password is what keeps strangers out.
    pub fn dynamic_membership() -> ClusterId {
        ClusterId::of_voters(&["syncobj: dynamic membership".to_owned()])
    }
}

/// FNV-1a over `bytes`, from `seed`.
fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(seed, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What a dialling node says it is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    /// A voting member, named by its address exactly as the cluster configures it (at most
    /// [`ADDRESS_BYTES_MAX`] bytes, not empty).
    Voter(String),
    /// A read-only node: it receives the log but has no address and no vote. It names itself
    /// with a random number it draws at start and gives every voter it dials, so that all of
    /// them know it by the same name.
    ReadOnly(u64),
    /// An administration tool (`syncobj-admin`): it sends one request, reads the answer and
    /// closes; it is never a link nor a peer. Admitted by [`check_admin`].
    Admin,
}

/// The first frame a dialling node sends.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Hello {
    /// The protocol version the dialler speaks.
    pub protocol_version: u16,
    /// The cluster the dialler belongs to.
    pub cluster: ClusterId,
    /// Which node is dialling.
    pub node: Peer,
}

/// The acceptor's answer to a [`Hello`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HelloReply {
    /// The connection is linked to the node the hello names.
    Accepted,
    /// The acceptor closes the connection after this reply.
    Refused(RefuseReason),
}

/// Why an acceptor refused a hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
pub enum RefuseReason {
    /// The hello names a voter the acceptor does not know, or a read-only node where it accepts
    /// none.
    #[error("the acceptor does not know this node")]
    UnknownNode,
    /// The acceptor speaks another protocol version.
    #[error("the acceptor speaks protocol version {ours}")]
    WrongProtocolVersion {
        /// The acceptor's [`PROTOCOL_VERSION`].
        ours: u16,
    },
    /// The hello names another cluster.
    #[error("the node belongs to another cluster")]
    WrongCluster,
    /// The hello could not be decoded.
    #[error("the hello is malformed")]
    Malformed,
    /// The acceptor's cluster has a password and the hello came unencrypted.
    #[error("the acceptor requires a password (encrypted connections)")]
    PasswordRequired,
    /// The acceptor has no password and the hello came encrypted.
    #[error("the acceptor has no password and cannot read an encrypted hello")]
    PasswordNotConfigured,
    /// The acceptor has no room for this node now (as many read-only nodes, strangers or
    /// administrators as it takes are linked); the dialler tries again later.
    #[error("the acceptor is at its limit of such connections; try again later")]
    Busy,
    /// An admin hello came unencrypted from an address other than loopback, to a node without
    /// a password that does not admit administration from anywhere (`admin_from_anywhere`).
    #[error(
        "administration without a password is allowed only from loopback on this node (use the cluster password, or run the tool on the node's host)"
    )]
    AdminNotAllowed,
    /// An admin hello came to a node that admits no administrator at all (its cap of
    /// administrators' connections is 0).
    #[error("administration is disabled on this node")]
    AdminDisabled,
}

/// What an acceptor accepts: the input of [`check_hello`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeConfig {
    /// This node's cluster.
    pub cluster: ClusterId,
    /// The addresses of the voters allowed to dial this node.
    pub voters: BTreeSet<String>,
    /// Whether read-only nodes may connect.
    pub accept_read_only: bool,
    /// Whether voters outside `voters` may connect too (strangers: with membership changes,
    /// a node whose membership lags must still hear the current leader).
    pub accept_strangers: bool,
}

/// A field of a handshake message, as named in decoding errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// The magic, `b"SYOB"`.
    Magic,
    /// The protocol version.
    ProtocolVersion,
    /// The message kind (hello or reply).
    Kind,
    /// A hello's cluster identity.
    Cluster,
    /// A hello's peer tag (voter or read-only).
    Peer,
    /// A hello's address length.
    AddressLength,
    /// A hello's address.
    Address,
    /// A read-only hello's node number.
    ReadOnlyId,
    /// A reply's outcome.
    Outcome,
    /// A refusal's protocol version of the acceptor.
    AcceptorVersion,
}

/// Why a handshake message could not be encoded or decoded; each names the byte offset at fault.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum HandshakeError {
    /// The payload ends inside a field.
    #[error("the payload of {len} bytes ends inside the {field} starting at byte {offset}")]
    Truncated {
        /// The field cut short.
        field: Field,
        /// Where the field starts.
        offset: usize,
        /// The payload's length.
        len: usize,
    },
    /// The payload does not start with [`MAGIC`]: the peer speaks another protocol.
    #[error("bad magic {found:02x?} at byte {offset}, expected \"SYOB\"")]
    BadMagic {
        /// The first four bytes received.
        found: [u8; 4],
        /// Where the magic starts (0).
        offset: usize,
    },
    /// The message is of a protocol version this build does not decode.
    #[error("protocol version {version} at byte {offset}, this node speaks {ours}", ours = PROTOCOL_VERSION)]
    UnsupportedVersion {
        /// The version received.
        version: u16,
        /// Where the version starts (4).
        offset: usize,
    },
    /// A tag (kind, peer or outcome) holds a value this build does not know or does not expect
    /// here (a reply where a hello was due, say).
    #[error("unexpected {field} {tag:#04x} at byte {offset}")]
    BadTag {
        /// The field holding the tag.
        field: Field,
        /// The value received.
        tag: u8,
        /// Where the tag is.
        offset: usize,
    },
    /// A voter's address is empty.
    #[error("empty node address, length at byte {offset}")]
    EmptyAddress {
        /// Where the address length is.
        offset: usize,
    },
    /// A voter's address is longer than [`ADDRESS_BYTES_MAX`]; only encoding can meet this, as
    /// the length field is one byte.
    #[error("a node address of {len} bytes exceeds {max}, length at byte {offset}")]
    AddressTooLong {
        /// The address's length.
        len: usize,
        /// [`ADDRESS_BYTES_MAX`].
        max: usize,
        /// Where the address length goes.
        offset: usize,
    },
    /// The address is not valid UTF-8.
    #[error("the node address is not UTF-8 from byte {offset}")]
    InvalidUtf8 {
        /// The first byte that is not part of valid UTF-8.
        offset: usize,
    },
    /// Bytes follow the end of the message.
    #[error("{count} bytes follow the message, from byte {offset}")]
    TrailingBytes {
        /// How many bytes follow.
        count: usize,
        /// Where they start.
        offset: usize,
    },
}

impl Hello {
    /// A hello from `node` of `cluster`, speaking this build's [`PROTOCOL_VERSION`].
    pub fn new(cluster: ClusterId, node: Peer) -> Self {
        Self {
            protocol_version: PROTOCOL_VERSION,
            cluster,
            node,
        }
    }

    /// Appends the hello, in the version-1 layout with its `protocol_version` as given, to `out`.
    ///
    /// Fails, leaving `out` untouched, with [`HandshakeError::EmptyAddress`] or
    /// [`HandshakeError::AddressTooLong`] if a voter's address is empty or longer than
    /// [`ADDRESS_BYTES_MAX`] bytes.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), HandshakeError> {
        let address_length = match &self.node {
            Peer::Voter(address) => address_length(address)?,
            Peer::ReadOnly(_) | Peer::Admin => 0,
        };
        write_prefix(out, self.protocol_version, KIND_HELLO);
        out.extend_from_slice(&self.cluster.0);
        match &self.node {
            Peer::Voter(address) => {
                out.extend_from_slice(&[PEER_VOTER, address_length]);
                out.extend_from_slice(address.as_bytes());
            }
            Peer::ReadOnly(id) => {
                out.push(PEER_READ_ONLY);
                out.extend_from_slice(&id.to_le_bytes());
            }
            Peer::Admin => out.push(PEER_ADMIN),
        }
        Ok(())
    }

    /// Decodes a hello from a whole frame payload. Costs one allocation, for the address.
    ///
    /// Fails with the first fault found, in byte order: [`HandshakeError::Truncated`],
    /// [`BadMagic`](HandshakeError::BadMagic), [`UnsupportedVersion`](HandshakeError::UnsupportedVersion)
    /// (any version but [`PROTOCOL_VERSION`]), [`BadTag`](HandshakeError::BadTag) (a kind other
    /// than hello, an unknown peer tag), [`EmptyAddress`](HandshakeError::EmptyAddress),
    /// [`InvalidUtf8`](HandshakeError::InvalidUtf8) or [`TrailingBytes`](HandshakeError::TrailingBytes).
    pub fn decode(payload: &[u8]) -> Result<Self, HandshakeError> {
        let mut reader = Reader::new(payload);
        reader.prefix(KIND_HELLO)?;
        let cluster = ClusterId(reader.array(Field::Cluster)?);
        let (tag, offset) = reader.tag(Field::Peer)?;
        let node = match tag {
            PEER_VOTER => Peer::Voter(reader.address()?),
            PEER_READ_ONLY => Peer::ReadOnly(u64::from_le_bytes(reader.array(Field::ReadOnlyId)?)),
            PEER_ADMIN => Peer::Admin,
            tag => return Err(bad_tag(Field::Peer, tag, offset)),
        };
        reader.finish()?;
        Ok(Self::new(cluster, node))
    }
}

impl HelloReply {
    /// Appends the reply, in the version-1 layout, to `out`. Never fails.
    pub fn encode(&self, out: &mut Vec<u8>) {
        write_prefix(out, PROTOCOL_VERSION, KIND_REPLY);
        match self {
            Self::Accepted => out.push(OUTCOME_ACCEPTED),
            Self::Refused(RefuseReason::UnknownNode) => out.push(OUTCOME_UNKNOWN_NODE),
            Self::Refused(RefuseReason::WrongProtocolVersion { ours }) => {
                out.push(OUTCOME_WRONG_PROTOCOL_VERSION);
                out.extend_from_slice(&ours.to_le_bytes());
            }
            Self::Refused(RefuseReason::WrongCluster) => out.push(OUTCOME_WRONG_CLUSTER),
            Self::Refused(RefuseReason::Malformed) => out.push(OUTCOME_MALFORMED),
            Self::Refused(RefuseReason::PasswordRequired) => out.push(OUTCOME_PASSWORD_REQUIRED),
            Self::Refused(RefuseReason::PasswordNotConfigured) => {
                out.push(OUTCOME_PASSWORD_NOT_CONFIGURED);
            }
            Self::Refused(RefuseReason::Busy) => out.push(OUTCOME_BUSY),
            Self::Refused(RefuseReason::AdminNotAllowed) => out.push(OUTCOME_ADMIN_NOT_ALLOWED),
            Self::Refused(RefuseReason::AdminDisabled) => out.push(OUTCOME_ADMIN_DISABLED),
        }
    }

    /// Decodes a reply from a whole frame payload. Allocates nothing.
    ///
    /// Fails with the first fault found, in byte order: [`HandshakeError::Truncated`],
    /// [`BadMagic`](HandshakeError::BadMagic), [`UnsupportedVersion`](HandshakeError::UnsupportedVersion),
    /// [`BadTag`](HandshakeError::BadTag) (a kind other than reply, an unknown outcome) or
    /// [`TrailingBytes`](HandshakeError::TrailingBytes).
    pub fn decode(payload: &[u8]) -> Result<Self, HandshakeError> {
        let mut reader = Reader::new(payload);
        reader.prefix(KIND_REPLY)?;
        let (tag, offset) = reader.tag(Field::Outcome)?;
        let reply = match tag {
            OUTCOME_ACCEPTED => Self::Accepted,
            OUTCOME_UNKNOWN_NODE => Self::Refused(RefuseReason::UnknownNode),
            OUTCOME_WRONG_PROTOCOL_VERSION => {
                let ours = u16::from_le_bytes(reader.array(Field::AcceptorVersion)?);
                Self::Refused(RefuseReason::WrongProtocolVersion { ours })
            }
            OUTCOME_WRONG_CLUSTER => Self::Refused(RefuseReason::WrongCluster),
            OUTCOME_MALFORMED => Self::Refused(RefuseReason::Malformed),
            OUTCOME_PASSWORD_REQUIRED => Self::Refused(RefuseReason::PasswordRequired),
            OUTCOME_PASSWORD_NOT_CONFIGURED => Self::Refused(RefuseReason::PasswordNotConfigured),
            OUTCOME_BUSY => Self::Refused(RefuseReason::Busy),
            OUTCOME_ADMIN_NOT_ALLOWED => Self::Refused(RefuseReason::AdminNotAllowed),
            OUTCOME_ADMIN_DISABLED => Self::Refused(RefuseReason::AdminDisabled),
            tag => return Err(bad_tag(Field::Outcome, tag, offset)),
        };
        reader.finish()?;
        Ok(reply)
    }
}

impl HandshakeError {
    /// The byte offset at fault.
    pub fn offset(&self) -> usize {
        match *self {
            Self::Truncated { offset, .. }
            | Self::BadMagic { offset, .. }
            | Self::UnsupportedVersion { offset, .. }
            | Self::BadTag { offset, .. }
            | Self::EmptyAddress { offset }
            | Self::AddressTooLong { offset, .. }
            | Self::InvalidUtf8 { offset }
            | Self::TrailingBytes { offset, .. } => offset,
        }
    }

    /// The reason an acceptor gives for refusing a hello that failed to decode this way:
    /// [`RefuseReason::WrongProtocolVersion`] for an unsupported version, else
    /// [`RefuseReason::Malformed`].
    pub fn refuse_reason(&self) -> RefuseReason {
        match self {
            Self::UnsupportedVersion { .. } => RefuseReason::WrongProtocolVersion {
                ours: PROTOCOL_VERSION,
            },
            _ => RefuseReason::Malformed,
        }
    }
}

impl fmt::Display for ClusterId {
    /// The 16 bytes in hexadecimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Magic => "magic",
            Self::ProtocolVersion => "protocol version",
            Self::Kind => "message kind",
            Self::Cluster => "cluster identity",
            Self::Peer => "peer tag",
            Self::AddressLength => "address length",
            Self::Address => "address",
            Self::ReadOnlyId => "read-only node number",
            Self::Outcome => "outcome",
            Self::AcceptorVersion => "acceptor's protocol version",
        })
    }
}

/// Checks a decoded hello against this node's configuration: the protocol version, then the
/// cluster, then the node (a voter in `ours.voters` or any voter if `ours.accept_strangers`,
/// or read-only if `ours.accept_read_only`).
/// An admin hello passes after the version, whatever its cluster: [`check_admin`] decides on
/// it. Costs one set lookup.
///
/// Fails with the [`RefuseReason`] to send back: [`WrongProtocolVersion`](RefuseReason::WrongProtocolVersion),
/// [`WrongCluster`](RefuseReason::WrongCluster) or [`UnknownNode`](RefuseReason::UnknownNode).
pub fn check_hello(hello: &Hello, ours: &HandshakeConfig) -> Result<(), RefuseReason> {
    if hello.protocol_version != PROTOCOL_VERSION {
        return Err(RefuseReason::WrongProtocolVersion {
            ours: PROTOCOL_VERSION,
        });
    }
    if hello.node == Peer::Admin {
        return Ok(());
    }
    if hello.cluster != ours.cluster {
        return Err(RefuseReason::WrongCluster);
    }
    let known = match &hello.node {
        Peer::Voter(address) => ours.accept_strangers || ours.voters.contains(address),
        Peer::ReadOnly(_) => ours.accept_read_only,
        Peer::Admin => true,
    };
    if known {
        Ok(())
    } else {
        Err(RefuseReason::UnknownNode)
    }
}

/// Whether an acceptor admits an admin hello from `remote`: always when it came `encrypted`
/// (only holders of the cluster password can do that), else only from a loopback address,
/// unless `admin_from_anywhere` (then anyone who reaches the port administers the node: use it
/// only on a network where that is intended). Costs nothing.
///
/// Fails with [`RefuseReason::AdminNotAllowed`].
pub fn check_admin(
    remote: IpAddr,
    encrypted: bool,
    admin_from_anywhere: bool,
) -> Result<(), RefuseReason> {
    let loopback = match remote {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    };
    if encrypted || loopback || admin_from_anywhere {
        Ok(())
    } else {
        Err(RefuseReason::AdminNotAllowed)
    }
}

/// The address's length as its one-byte field, if it is not empty and fits.
fn address_length(address: &str) -> Result<u8, HandshakeError> {
    match u8::try_from(address.len()) {
        Ok(0) => Err(HandshakeError::EmptyAddress {
            offset: ADDRESS_LENGTH_OFFSET,
        }),
        Ok(length) => Ok(length),
        Err(_) => Err(HandshakeError::AddressTooLong {
            len: address.len(),
            max: ADDRESS_BYTES_MAX,
            offset: ADDRESS_LENGTH_OFFSET,
        }),
    }
}

fn write_prefix(out: &mut Vec<u8>, protocol_version: u16, kind: u8) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&protocol_version.to_le_bytes());
    out.push(kind);
}

fn bad_tag(field: Field, tag: u8, offset: usize) -> HandshakeError {
    HandshakeError::BadTag { field, tag, offset }
}

/// A cursor over a payload that reports where decoding stopped.
struct Reader<'a> {
    payload: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn new(payload: &'a [u8]) -> Self {
        Self { payload, offset: 0 }
    }

    /// Reads the magic, the version (which must be ours) and the kind (which must be `kind`).
    fn prefix(&mut self, kind: u8) -> Result<(), HandshakeError> {
        let offset = self.offset;
        let found = self.array(Field::Magic)?;
        if found != MAGIC {
            return Err(HandshakeError::BadMagic { found, offset });
        }
        let offset = self.offset;
        let version = u16::from_le_bytes(self.array(Field::ProtocolVersion)?);
        if version != PROTOCOL_VERSION {
            return Err(HandshakeError::UnsupportedVersion { version, offset });
        }
        match self.tag(Field::Kind)? {
            (found, _) if found == kind => Ok(()),
            (found, offset) => Err(bad_tag(Field::Kind, found, offset)),
        }
    }

    /// Reads a voter's address: a length of 1 to 255, then that many bytes of UTF-8.
    fn address(&mut self) -> Result<String, HandshakeError> {
        let (length, offset) = self.tag(Field::AddressLength)?;
        if length == 0 {
            return Err(HandshakeError::EmptyAddress { offset });
        }
        let offset = self.offset;
        let bytes = self.bytes(usize::from(length), Field::Address)?;
        match std::str::from_utf8(bytes) {
            Ok(address) => Ok(address.to_owned()),
            Err(e) => Err(HandshakeError::InvalidUtf8 {
                offset: offset + e.valid_up_to(),
            }),
        }
    }

    /// Reads one byte, and returns it with its offset.
    fn tag(&mut self, field: Field) -> Result<(u8, usize), HandshakeError> {
        let offset = self.offset;
        let [tag] = self.array(field)?;
        Ok((tag, offset))
    }

    fn array<const N: usize>(&mut self, field: Field) -> Result<[u8; N], HandshakeError> {
        let Some(array) = self.rest().first_chunk::<N>() else {
            return Err(self.truncated(field));
        };
        self.offset += N;
        Ok(*array)
    }

    fn bytes(&mut self, n: usize, field: Field) -> Result<&'a [u8], HandshakeError> {
        let Some((bytes, _)) = self.rest().split_at_checked(n) else {
            return Err(self.truncated(field));
        };
        self.offset += n;
        Ok(bytes)
    }

    /// Checks that the whole payload was read.
    fn finish(self) -> Result<(), HandshakeError> {
        match self.rest().len() {
            0 => Ok(()),
            count => Err(HandshakeError::TrailingBytes {
                count,
                offset: self.offset,
            }),
        }
    }

    fn rest(&self) -> &'a [u8] {
        self.payload.get(self.offset..).unwrap_or_default()
    }

    fn truncated(&self, field: Field) -> HandshakeError {
        HandshakeError::Truncated {
            field,
            offset: self.offset,
            len: self.payload.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: ClusterId = ClusterId([0xc1; 16]);

    fn encoded(hello: &Hello) -> Vec<u8> {
        let mut out = Vec::new();
        hello.encode(&mut out).expect("test hellos are valid");
        out
    }

    fn voter(address: &str) -> Hello {
        Hello::new(CLUSTER, Peer::Voter(address.to_owned()))
    }

    fn reply_bytes(reply: &HelloReply) -> Vec<u8> {
        let mut out = Vec::new();
        reply.encode(&mut out);
        out
    }

    fn every_reply() -> Vec<HelloReply> {
        vec![
            HelloReply::Accepted,
            HelloReply::Refused(RefuseReason::UnknownNode),
            HelloReply::Refused(RefuseReason::WrongProtocolVersion { ours: 0xbeef }),
            HelloReply::Refused(RefuseReason::WrongCluster),
            HelloReply::Refused(RefuseReason::Malformed),
            HelloReply::Refused(RefuseReason::PasswordRequired),
            HelloReply::Refused(RefuseReason::PasswordNotConfigured),
            HelloReply::Refused(RefuseReason::Busy),
            HelloReply::Refused(RefuseReason::AdminNotAllowed),
            HelloReply::Refused(RefuseReason::AdminDisabled),
        ]
    }

    /// The field a hello or reply cut at `len` bytes ends inside, and where it starts.
    fn cut_field(len: usize, layout: &[(Field, usize)]) -> (Field, usize) {
        let mut start = 0;
        for &(field, bytes) in layout {
            if len < start + bytes {
                return (field, start);
            }
            start += bytes;
        }
        unreachable!("{len} is not shorter than the message")
    }

    const PREFIX: [(Field, usize); 3] = [
        (Field::Magic, 4),
        (Field::ProtocolVersion, 2),
        (Field::Kind, 1),
    ];

    #[test]
    fn voter_hello_bytes_are_pinned() {
        let mut expected = b"SYOB\x03\x00\x01".to_vec();
        expected.extend_from_slice(&[0xc1; 16]);
        expected.extend_from_slice(b"\x01\x0e127.0.0.1:4321");
        assert_eq!(encoded(&voter("127.0.0.1:4321")), expected);
    }

    #[test]
    fn read_only_hello_bytes_are_pinned() {
        let mut expected = b"SYOB\x03\x00\x01".to_vec();
        expected.extend_from_slice(&[0xc1; 16]);
        expected.push(0x02);
        expected.extend_from_slice(&0x0102_0304_0506_0708_u64.to_le_bytes());
        assert_eq!(
            encoded(&Hello::new(CLUSTER, Peer::ReadOnly(0x0102_0304_0506_0708))),
            expected
        );
    }

    #[test]
    fn reply_bytes_are_pinned() {
        let expected: [&[u8]; 9] = [
            b"SYOB\x03\x00\x02\x00",
            b"SYOB\x03\x00\x02\x01",
            b"SYOB\x03\x00\x02\x02\xef\xbe",
            b"SYOB\x03\x00\x02\x03",
            b"SYOB\x03\x00\x02\x04",
            b"SYOB\x03\x00\x02\x05",
            b"SYOB\x03\x00\x02\x06",
            b"SYOB\x03\x00\x02\x07",
            b"SYOB\x03\x00\x02\x08",
        ];
        for (reply, expected) in every_reply().iter().zip(expected) {
            assert_eq!(reply_bytes(reply), expected, "{reply:?}");
        }
    }

    #[test]
    fn every_hello_and_reply_round_trips() {
        let long = "a".repeat(ADDRESS_BYTES_MAX);
        for hello in [
            voter("127.0.0.1:4321"),
            voter("[::1]:4321"),
            voter("nœud.example:1"),
            voter("x"),
            voter(&long),
            Hello::new(ClusterId([0; 16]), Peer::ReadOnly(u64::MAX)),
            Hello::new(ClusterId([0; 16]), Peer::Admin),
        ] {
            let bytes = encoded(&hello);
            assert!(bytes.len() <= HELLO_BYTES_MAX);
            assert_eq!(Hello::decode(&bytes), Ok(hello));
        }
        for reply in every_reply() {
            let bytes = reply_bytes(&reply);
            assert!(bytes.len() <= REPLY_BYTES_MAX);
            assert_eq!(HelloReply::decode(&bytes), Ok(reply));
        }
    }

    #[test]
    fn bad_magic() {
        let mut bytes = encoded(&voter("a:1"));
        bytes[..4].copy_from_slice(b"SYOC");
        let error = HandshakeError::BadMagic {
            found: *b"SYOC",
            offset: 0,
        };
        assert_eq!(Hello::decode(&bytes), Err(error.clone()));
        assert_eq!(error.refuse_reason(), RefuseReason::Malformed);
        let mut bytes = reply_bytes(&HelloReply::Accepted);
        bytes[0] = b'P';
        assert_eq!(
            HelloReply::decode(&bytes),
            Err(HandshakeError::BadMagic {
                found: *b"PYOB",
                offset: 0
            })
        );
    }

    #[test]
    fn hello_truncated_at_every_length() {
        let voter_layout = [
            PREFIX[0],
            PREFIX[1],
            PREFIX[2],
            (Field::Cluster, 16),
            (Field::Peer, 1),
            (Field::AddressLength, 1),
            (Field::Address, 3),
        ];
        let read_only_layout = [
            PREFIX[0],
            PREFIX[1],
            PREFIX[2],
            (Field::Cluster, 16),
            (Field::Peer, 1),
            (Field::ReadOnlyId, 8),
        ];
        for (hello, layout) in [
            (voter("a:1"), &voter_layout[..]),
            (
                Hello::new(CLUSTER, Peer::ReadOnly(9)),
                &read_only_layout[..],
            ),
        ] {
            let bytes = encoded(&hello);
            for len in 0..bytes.len() {
                let (field, offset) = cut_field(len, layout);
                let error = HandshakeError::Truncated { field, offset, len };
                assert_eq!(
                    Hello::decode(&bytes[..len]),
                    Err(error),
                    "{hello:?} cut at {len}"
                );
            }
        }
    }

    #[test]
    fn reply_truncated_at_every_length() {
        for reply in every_reply() {
            let bytes = reply_bytes(&reply);
            let mut layout = PREFIX.to_vec();
            layout.extend([(Field::Outcome, 1), (Field::AcceptorVersion, 2)]);
            for len in 0..bytes.len() {
                let (field, offset) = cut_field(len, &layout);
                let error = HandshakeError::Truncated { field, offset, len };
                assert_eq!(
                    HelloReply::decode(&bytes[..len]),
                    Err(error),
                    "{reply:?} at {len}"
                );
            }
        }
    }

    #[test]
    fn other_versions_are_refused_with_ours() {
        let mut hello = voter("a:1");
        hello.protocol_version = 4;
        let bytes = encoded(&hello);
        let error = HandshakeError::UnsupportedVersion {
            version: 4,
            offset: 4,
        };
        assert_eq!(Hello::decode(&bytes), Err(error.clone()));
        assert_eq!(
            Hello::decode(&bytes[..6]),
            Err(error.clone()),
            "rest unread"
        );
        assert_eq!(
            error.refuse_reason(),
            RefuseReason::WrongProtocolVersion {
                ours: PROTOCOL_VERSION
            }
        );
        let mut bytes = reply_bytes(&HelloReply::Accepted);
        bytes[4] = 0;
        assert_eq!(
            HelloReply::decode(&bytes),
            Err(HandshakeError::UnsupportedVersion {
                version: 0,
                offset: 4
            })
        );
    }

    #[test]
    fn unknown_and_unexpected_tags() {
        let reply = reply_bytes(&HelloReply::Accepted);
        let hello = encoded(&voter("a:1"));
        let kind = |tag| HandshakeError::BadTag {
            field: Field::Kind,
            tag,
            offset: 6,
        };
        assert_eq!(Hello::decode(&reply), Err(kind(KIND_REPLY)));
        assert_eq!(HelloReply::decode(&hello), Err(kind(KIND_HELLO)));
        let mut unknown_kind = hello.clone();
        unknown_kind[6] = 0x7f;
        assert_eq!(Hello::decode(&unknown_kind), Err(kind(0x7f)));

        let mut peer = hello;
        peer[23] = 0x00;
        assert_eq!(
            Hello::decode(&peer),
            Err(HandshakeError::BadTag {
                field: Field::Peer,
                tag: 0,
                offset: 23
            })
        );
        let mut outcome = reply;
        outcome[7] = 0x0a;
        assert_eq!(
            HelloReply::decode(&outcome),
            Err(HandshakeError::BadTag {
                field: Field::Outcome,
                tag: 10,
                offset: 7
            })
        );
    }

    #[test]
    fn addresses_are_bounded_and_not_empty() {
        let mut out = vec![1, 2];
        assert_eq!(
            voter(&"a".repeat(ADDRESS_BYTES_MAX + 1)).encode(&mut out),
            Err(HandshakeError::AddressTooLong {
                len: 256,
                max: 255,
                offset: 24
            })
        );
        let empty = HandshakeError::EmptyAddress { offset: 24 };
        assert_eq!(voter("").encode(&mut out), Err(empty.clone()));
        assert_eq!(out, [1, 2], "nothing written on failure");

        let mut bytes = encoded(&voter("a"));
        bytes.truncate(25);
        bytes[24] = 0;
        assert_eq!(Hello::decode(&bytes), Err(empty));
    }

    #[test]
    fn address_length_beyond_the_payload_is_truncation() {
        let mut bytes = encoded(&voter("a:1"));
        bytes[24] = 255;
        assert_eq!(
            Hello::decode(&bytes),
            Err(HandshakeError::Truncated {
                field: Field::Address,
                offset: 25,
                len: 28
            })
        );
    }

    #[test]
    fn invalid_utf8_names_the_first_bad_byte() {
        let mut bytes = encoded(&voter("ab:1"));
        bytes[27] = 0xff;
        let error = HandshakeError::InvalidUtf8 { offset: 27 };
        assert_eq!(Hello::decode(&bytes), Err(error.clone()));
        assert_eq!(error.offset(), 27);
        // A multi-byte character cut by the address's end.
        let mut bytes = encoded(&voter("aé"));
        bytes[24] = 2;
        bytes.pop();
        assert_eq!(
            Hello::decode(&bytes),
            Err(HandshakeError::InvalidUtf8 { offset: 26 })
        );
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encoded(&Hello::new(CLUSTER, Peer::ReadOnly(u64::MAX)));
        bytes.extend_from_slice(b"xy");
        assert_eq!(
            Hello::decode(&bytes),
            Err(HandshakeError::TrailingBytes {
                count: 2,
                offset: 32
            })
        );
        let mut bytes = reply_bytes(&HelloReply::Accepted);
        bytes.push(0);
        assert_eq!(
            HelloReply::decode(&bytes),
            Err(HandshakeError::TrailingBytes {
                count: 1,
                offset: 8
            })
        );
    }

    fn config(accept_read_only: bool) -> HandshakeConfig {
        HandshakeConfig {
            cluster: CLUSTER,
            voters: BTreeSet::from(["a:1".to_owned(), "b:2".to_owned()]),
            accept_read_only,
            accept_strangers: false,
        }
    }

    #[test]
    fn check_hello_accepts_strangers_of_the_cluster_only_when_asked() {
        let strangers = HandshakeConfig {
            accept_strangers: true,
            ..config(false)
        };
        assert_eq!(check_hello(&voter("c:3"), &strangers), Ok(()));
        assert_eq!(
            check_hello(&voter("c:3"), &config(false)),
            Err(RefuseReason::UnknownNode)
        );
        let mut other = voter("c:3");
        other.cluster = ClusterId([0; 16]);
        assert_eq!(
            check_hello(&other, &strangers),
            Err(RefuseReason::WrongCluster),
            "a stranger of another cluster"
        );
        assert_eq!(
            check_hello(&Hello::new(CLUSTER, Peer::ReadOnly(1)), &strangers),
            Err(RefuseReason::UnknownNode),
            "read-only nodes keep their own rule"
        );
    }

    #[test]
    fn check_hello_accepts_configured_voters_only() {
        assert_eq!(check_hello(&voter("a:1"), &config(false)), Ok(()));
        assert_eq!(check_hello(&voter("b:2"), &config(true)), Ok(()));
        for stranger in ["c:3", "a:10", "A:1", "a:1 "] {
            assert_eq!(
                check_hello(&voter(stranger), &config(true)),
                Err(RefuseReason::UnknownNode),
                "{stranger}"
            );
        }
    }

    #[test]
    fn check_hello_accepts_read_only_only_when_configured() {
        let read_only = Hello::new(CLUSTER, Peer::ReadOnly(u64::MAX));
        assert_eq!(check_hello(&read_only, &config(true)), Ok(()));
        assert_eq!(
            check_hello(&read_only, &config(false)),
            Err(RefuseReason::UnknownNode)
        );
    }

    #[test]
    fn check_hello_refuses_wrong_versions_then_wrong_clusters() {
        let mut hello = voter("a:1");
        hello.cluster = ClusterId([0xc2; 16]);
        assert_eq!(
            check_hello(&hello, &config(false)),
            Err(RefuseReason::WrongCluster)
        );
        for version in [0, 1, 2, 4, u16::MAX] {
            hello.protocol_version = version;
            assert_eq!(
                check_hello(&hello, &config(false)),
                Err(RefuseReason::WrongProtocolVersion {
                    ours: PROTOCOL_VERSION
                }),
                "the version is checked first"
            );
        }
        let mut stranger = voter("z:9");
        stranger.cluster = ClusterId([0; 16]);
        assert_eq!(
            check_hello(&stranger, &config(true)),
            Err(RefuseReason::WrongCluster),
            "the cluster is checked before the node"
        );
    }

    #[test]
    fn admin_hello_bytes_are_pinned() {
        let mut expected = b"SYOB\x03\x00\x01".to_vec();
        expected.extend_from_slice(&[0; 16]);
        expected.push(0x03);
        assert_eq!(
            encoded(&Hello::new(ClusterId([0; 16]), Peer::Admin)),
            expected
        );
    }

    #[test]
    fn check_hello_passes_admins_of_any_cluster_but_not_of_other_versions() {
        let mut admin = Hello::new(ClusterId([0x99; 16]), Peer::Admin);
        assert_eq!(check_hello(&admin, &config(false)), Ok(()));
        admin.protocol_version = 1;
        assert_eq!(
            check_hello(&admin, &config(false)),
            Err(RefuseReason::WrongProtocolVersion {
                ours: PROTOCOL_VERSION
            })
        );
    }

    #[test]
    fn check_admin_admits_the_password_loopback_or_the_option() {
        let loopback: [IpAddr; 3] = [
            "127.0.0.1".parse().expect("an address"),
            "::1".parse().expect("an address"),
            "::ffff:127.0.0.1".parse().expect("an address"),
        ];
        let remote: [IpAddr; 3] = [
            "10.0.0.2".parse().expect("an address"),
            "192.168.1.1".parse().expect("an address"),
            "2001:db8::1".parse().expect("an address"),
        ];
        for ip in loopback {
            assert_eq!(check_admin(ip, false, false), Ok(()), "{ip}");
        }
        for ip in remote {
            assert_eq!(
                check_admin(ip, false, false),
                Err(RefuseReason::AdminNotAllowed),
                "{ip}"
            );
            assert_eq!(check_admin(ip, true, false), Ok(()), "{ip}: password");
            assert_eq!(check_admin(ip, false, true), Ok(()), "{ip}: option");
        }
    }

    #[test]
    fn errors_and_ids_display_their_facts() {
        let error = HandshakeError::Truncated {
            field: Field::Address,
            offset: 25,
            len: 27,
        };
        assert_eq!(
            error.to_string(),
            "the payload of 27 bytes ends inside the address starting at byte 25"
        );
        assert_eq!(
            ClusterId([0xab; 16]).to_string(),
            "abababababababababababababababab"
        );
    }
}
