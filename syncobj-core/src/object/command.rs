//! How a replicated call travels in a log entry: a fixed header naming the method and carrying
//! the cluster time the leader stamped on it, then its MessagePack-encoded arguments.

use thiserror::Error;

/// One version of one replicated method, as the macro lays it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MethodSpec {
    /// The command identifier: the method's position in (version, name) order.
    pub id: u16,
    /// The method's name in the source.
    pub name: &'static str,
    /// The version from `#[replicated(ver = N)]`, 0 by default.
    pub version: u32,
    /// A hash of the name, version and signature. A node that receives a command whose
    /// fingerprint differs from its own method of that id runs different code: it stops applying
    /// rather than diverge.
    pub fingerprint: u32,
}

/// The fixed header before a command's arguments: 16 bytes, little-endian — object `u16`,
/// method `u16`, fingerprint `u32`, stamp `u64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandHeader {
    /// Which replicated object of the node (0 is the main object, then the consumers in order).
    pub object: u16,
    /// The method's [`MethodSpec::id`].
    pub method: u16,
    /// The method's [`MethodSpec::fingerprint`].
    pub fingerprint: u32,
    /// The cluster time, in nanoseconds, that the leader stamped on the command when it
    /// appended it to the log (see the driver's `cluster_time` module). Callers write 0.
    pub stamp: u64,
}

impl CommandHeader {
    /// The encoded size of a header.
    pub const LEN: usize = 16;

    /// Where the stamp sits in an encoded command.
    pub const STAMP_AT: usize = 8;

    /// Appends the encoded header to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.object.to_le_bytes());
        out.extend_from_slice(&self.method.to_le_bytes());
        out.extend_from_slice(&self.fingerprint.to_le_bytes());
        out.extend_from_slice(&self.stamp.to_le_bytes());
    }

    /// Writes `stamp` into an encoded command in place. A command too short to hold a header
    /// is left as it is (applying it fails alike on every node).
    pub fn write_stamp(command: &mut [u8], stamp: u64) {
        if let Some(field) = command.get_mut(Self::STAMP_AT..Self::LEN) {
            field.copy_from_slice(&stamp.to_le_bytes());
        }
    }

    /// Splits a command into its header and its arguments.
    ///
    /// # Errors
    /// [`CommandHeaderError`] if the command is shorter than a header.
    pub fn decode(command: &[u8]) -> Result<(CommandHeader, &[u8]), CommandHeaderError> {
        let Some((head, args)) = command.split_first_chunk::<{ Self::LEN }>() else {
            return Err(CommandHeaderError { len: command.len() });
        };
        let header = CommandHeader {
            object: u16::from_le_bytes([head[0], head[1]]),
            method: u16::from_le_bytes([head[2], head[3]]),
            fingerprint: u32::from_le_bytes([head[4], head[5], head[6], head[7]]),
            stamp: u64::from_le_bytes([
                head[8], head[9], head[10], head[11], head[12], head[13], head[14], head[15],
            ]),
        };
        Ok((header, args))
    }
}

/// A command too short to hold its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("command of {len} bytes is shorter than its 16-byte header")]
pub struct CommandHeaderError {
    /// The command's length.
    pub len: usize,
}

/// Why a command could not be applied.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ApplyError {
    /// No method has this id in this code.
    #[error("no replicated method has id {0}")]
    UnknownMethod(u16),
    /// The arguments do not decode as the method's parameters.
    #[error("arguments of {method} do not decode: {reason}")]
    BadArguments {
        /// The method's name.
        method: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// The result does not encode.
    #[error("result of {method} does not encode: {reason}")]
    BadResult {
        /// The method's name.
        method: &'static str,
        /// The encoder's message.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header survives encoding, and the arguments after it are returned untouched.
    #[test]
    fn header_round_trips() {
        let header = CommandHeader {
            object: 3,
            method: 513,
            fingerprint: 0xDEAD_BEEF,
            stamp: 0x0102_0304_0506_0708,
        };
        let mut bytes = Vec::new();
        header.encode(&mut bytes);
        bytes.extend_from_slice(b"args");
        assert_eq!(bytes.len(), CommandHeader::LEN + 4);
        let (decoded, args) = CommandHeader::decode(&bytes).expect("a whole header");
        assert_eq!((decoded, args), (header, &b"args"[..]));
    }

    /// A stamp written in place replaces the one encoded and touches nothing else; a command
    /// too short for a header is left alone.
    #[test]
    fn stamp_is_written_in_place() {
        let header = CommandHeader {
            object: 1,
            method: 2,
            fingerprint: 3,
            stamp: 0,
        };
        let mut bytes = Vec::new();
        header.encode(&mut bytes);
        bytes.extend_from_slice(b"args");
        CommandHeader::write_stamp(&mut bytes, 1_500_000_000);
        let (decoded, args) = CommandHeader::decode(&bytes).expect("a whole header");
        let stamped = CommandHeader {
            stamp: 1_500_000_000,
            ..header
        };
        assert_eq!((decoded, args), (stamped, &b"args"[..]));
        let mut short = vec![7; CommandHeader::LEN - 1];
        CommandHeader::write_stamp(&mut short, u64::MAX);
        assert_eq!(short, vec![7; CommandHeader::LEN - 1]);
    }

    /// A command shorter than a header is an error naming its length, not a panic.
    #[test]
    fn short_command_is_refused() {
        for len in 0..CommandHeader::LEN {
            let error = CommandHeader::decode(&vec![0; len]).expect_err("too short");
            assert_eq!(error.len, len);
        }
    }
}
