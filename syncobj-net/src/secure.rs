//! Encrypted, authenticated connections for clusters configured with a password.
//!
//! The construction is the Noise protocol `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s` (through the
//! `snow` crate), keyed by a [`ClusterKey`] that every node derives from the cluster's password
//! with Argon2id, a memory-hard function, so that a captured handshake cannot be brute-forced
//! cheaply. Nothing here is a new cipher: this module only frames Noise messages on the stream.
//!
//! # The exchange
//!
//! 1. The dialler sends one frame holding [`SECURE_MAGIC`] and the first Noise message, whose
//!    payload (the plain [`Hello`](crate::handshake::Hello)) is already encrypted and
//!    authenticated under the pre-shared key. An acceptor with another password cannot read it,
//!    counts an authentication failure and closes the connection without a word.
//! 2. The acceptor answers with one frame holding the second Noise message, whose payload is the
//!    [`HelloReply`](crate::handshake::HelloReply). Both sides now hold fresh session keys
//!    (ephemeral Diffie-Hellman mixed with the pre-shared key).
//! 3. The dialler sends its first record at once (an empty keep-alive frame). The acceptor treats
//!    the connection as the peer's only once that record decrypts: a replayed first message,
//!    which anyone could capture, never displaces the real link, because the replayer cannot
//!    derive the session keys.
//!
//! After the handshake the byte stream is a sequence of records, each a `u16` little-endian
//! length (of the ciphertext, 16 to 65,535 bytes) and a Noise transport message. The plaintexts of
//! the records, joined, are the ordinary frame stream of [`crate::frame`]; a frame larger than a
//! record spans several. Noise numbers the records of each direction implicitly, so a replayed,
//! reordered, dropped or altered record fails to decrypt, and a record of another connection
//! never decrypts under this one's keys: either way the connection is dropped.
//!
//! # Example
//!
//! ```
//! use syncobj_net::secure::{ClusterKey, Initiator, Responder};
//!
//! let key = ClusterKey::derive("correct horse battery staple")?;
//! let mut first = Vec::new();
//! let initiator = Initiator::start(&key, b"hello", &mut first)?;
//! let (responder, hello) = Responder::accept(&key, &first)?;
//! assert_eq!(hello, b"hello");
//! let mut second = Vec::new();
//! let mut acceptor_session = responder.reply(b"welcome", &mut second)?;
//! let (mut dialler_session, reply) = initiator.finish(&second)?;
//! assert_eq!(reply, b"welcome");
//!
//! let mut wire = Vec::new();
//! dialler_session.seal(b"a frame", &mut wire)?;
//! let mut plain = Vec::new();
//! acceptor_session.unseal(&wire, &mut plain)?;
//! assert_eq!(plain, b"a frame");
//! # Ok::<(), syncobj_net::secure::SecureError>(())
//! ```

use std::fmt;

use thiserror::Error;
use zeroize::Zeroizing;

/// The first four bytes of a dialler's first frame on an encrypted connection (a plain hello
/// starts with [`crate::handshake::MAGIC`] instead).
pub const SECURE_MAGIC: [u8; 4] = *b"SYOE";

/// The largest record on the wire: a Noise message, tag included.
pub const RECORD_BYTES_MAX: usize = 65_535;

/// The most plaintext one record carries.
pub const RECORD_PLAINTEXT_MAX: usize = RECORD_BYTES_MAX - TAG_BYTES;

/// The length prefix of a record.
const RECORD_HEADER_BYTES: usize = 2;

/// The authentication tag every Noise message carries.
const TAG_BYTES: usize = 16;

/// The largest handshake payload (a hello or a reply), in bytes.
pub const HANDSHAKE_PAYLOAD_MAX: usize = 1024;

const NOISE_PARAMS: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";

/// Binds every handshake to this protocol and its version.
const PROLOGUE: &[u8] = b"syncobj transport v1";

/// Argon2 salt: fixed, so that every node derives the same key from the same password. It keeps
/// precomputed tables of other systems useless; the password itself must be strong.
const KDF_SALT: &[u8] = b"syncobj cluster key v1";

/// Why an encrypted exchange failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SecureError {
    /// The password is empty.
    #[error("the password is empty")]
    EmptyPassword,
    /// The key derivation function failed.
    #[error("cannot derive the cluster key: {0}")]
    Kdf(String),
    /// A handshake message did not start with [`SECURE_MAGIC`].
    #[error("not an encrypted handshake (bad magic)")]
    BadMagic,
    /// A handshake message or record failed authentication: another password, tampering, a
    /// replay, or bytes that are not a syncobj peer's.
    #[error("authentication failed: wrong password, tampering or replay")]
    Authentication,
    /// A handshake payload exceeds [`HANDSHAKE_PAYLOAD_MAX`].
    #[error("handshake payload of {0} bytes exceeds {HANDSHAKE_PAYLOAD_MAX}")]
    PayloadTooLarge(usize),
    /// A record announced a length below the authentication tag.
    #[error("record of {0} bytes is shorter than its authentication tag")]
    ShortRecord(usize),
    /// The Noise library refused an operation that cannot fail on valid input.
    #[error("noise protocol error: {0}")]
    Noise(String),
}

/// The symmetric key of a cluster, derived from its password.
///
/// Deriving costs about 19 MiB of memory and tens of milliseconds of CPU on purpose: derive it
/// once per node, at startup. The key is wiped from memory when dropped and never printed.
#[derive(Clone)]
pub struct ClusterKey(Zeroizing<[u8; 32]>);

impl ClusterKey {
    /// Derives the key of the cluster whose password is `password` (Argon2id, 19 MiB, two
    /// passes, one lane: the parameters OWASP recommends for password storage).
    ///
    /// # Errors
    /// [`SecureError::EmptyPassword`] for an empty password; [`SecureError::Kdf`] if Argon2
    /// refuses (it cannot with these fixed parameters).
    pub fn derive(password: &str) -> Result<ClusterKey, SecureError> {
        if password.is_empty() {
            return Err(SecureError::EmptyPassword);
        }
        let params = argon2::Params::new(
            argon2::Params::DEFAULT_M_COST,
            argon2::Params::DEFAULT_T_COST,
            argon2::Params::DEFAULT_P_COST,
            Some(32),
        )
        .map_err(|e| SecureError::Kdf(e.to_string()))?;
        let kdf = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut key = Zeroizing::new([0_u8; 32]);
        kdf.hash_password_into(password.as_bytes(), KDF_SALT, key.as_mut_slice())
            .map_err(|e| SecureError::Kdf(e.to_string()))?;
        Ok(ClusterKey(key))
    }

    fn builder(&self) -> Result<snow::Builder<'_>, SecureError> {
        let params = NOISE_PARAMS
            .parse()
            .map_err(|e: snow::Error| SecureError::Noise(e.to_string()))?;
        snow::Builder::new(params)
            .prologue(PROLOGUE)
            .and_then(|b| b.psk(0, &self.0))
            .map_err(noise_error)
    }
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

/// The dialler's side of a handshake in progress.
pub struct Initiator(snow::HandshakeState);

impl Initiator {
    /// Starts a handshake carrying `payload` (the hello), appending the first message, magic
    /// included, to `out`.
    ///
    /// # Errors
    /// [`SecureError::PayloadTooLarge`] for a payload over [`HANDSHAKE_PAYLOAD_MAX`].
    pub fn start(
        key: &ClusterKey,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Initiator, SecureError> {
        check_payload(payload)?;
        let mut state = key.builder()?.build_initiator().map_err(noise_error)?;
        out.extend_from_slice(&SECURE_MAGIC);
        write_handshake(&mut state, payload, out)?;
        Ok(Initiator(state))
    }

    /// Reads the acceptor's answer, returning the session and the answer's payload (the reply).
    ///
    /// # Errors
    /// [`SecureError::Authentication`] if the answer does not authenticate (the acceptor has
    /// another password, or the bytes were altered).
    pub fn finish(mut self, message: &[u8]) -> Result<(Session, Vec<u8>), SecureError> {
        let payload = read_handshake(&mut self.0, message)?;
        let transport = self.0.into_transport_mode().map_err(noise_error)?;
        Ok((Session::new(transport), payload))
    }
}

/// The acceptor's side of a handshake whose first message authenticated.
pub struct Responder(snow::HandshakeState);

impl Responder {
    /// Reads a dialler's first message (magic included), returning the handshake and the
    /// message's payload (the hello).
    ///
    /// # Errors
    /// [`SecureError::BadMagic`] if `message` is not an encrypted hello;
    /// [`SecureError::Authentication`] if it does not authenticate under `key`.
    pub fn accept(key: &ClusterKey, message: &[u8]) -> Result<(Responder, Vec<u8>), SecureError> {
        let body = message
            .strip_prefix(&SECURE_MAGIC)
            .ok_or(SecureError::BadMagic)?;
        let mut state = key.builder()?.build_responder().map_err(noise_error)?;
        let payload = read_handshake(&mut state, body)?;
        Ok((Responder(state), payload))
    }

    /// Answers with `payload` (the reply), appending the second message to `out`, and returns
    /// the session.
    ///
    /// # Errors
    /// [`SecureError::PayloadTooLarge`] for a payload over [`HANDSHAKE_PAYLOAD_MAX`].
    pub fn reply(mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<Session, SecureError> {
        check_payload(payload)?;
        write_handshake(&mut self.0, payload, out)?;
        let transport = self.0.into_transport_mode().map_err(noise_error)?;
        Ok(Session::new(transport))
    }
}

/// An established encrypted session: seals outgoing bytes into records and opens incoming ones.
///
/// It holds no buffer beyond the part of a record received but not whole yet (at most one
/// record, released once the record is whole): records are sealed and opened in place, in the
/// caller's buffers.
pub struct Session {
    transport: snow::TransportState,
    /// Received bytes not yet forming a whole record: at most one record's worth.
    partial: Vec<u8>,
}

impl Session {
    fn new(transport: snow::TransportState) -> Session {
        Session {
            transport,
            partial: Vec::new(),
        }
    }

    /// The bytes the session holds: the allocation of a record received in part.
    pub fn buffered_capacity(&self) -> usize {
        self.partial.capacity()
    }

    /// Encrypts `plain` into as many records as it takes (one for an empty `plain`), appended
    /// to `out`.
    ///
    /// # Errors
    /// [`SecureError::Noise`] if the session's nonces are exhausted (after 2^64 records); `out`
    /// then holds the records sealed before.
    pub fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), SecureError> {
        let mut chunks = plain.chunks(RECORD_PLAINTEXT_MAX);
        let first = chunks.next().unwrap_or_default();
        for chunk in std::iter::once(first).chain(chunks) {
            let start = out.len();
            let body = start + RECORD_HEADER_BYTES;
            out.resize(body + chunk.len() + TAG_BYTES, 0);
            let len = match self.transport.write_message(chunk, &mut out[body..]) {
                Ok(len) => len,
                Err(error) => {
                    out.truncate(start);
                    return Err(noise_error(error));
                }
            };
            let header = u16::try_from(len).expect("a Noise message is at most 65535 bytes");
            out[start..body].copy_from_slice(&header.to_le_bytes());
            out.truncate(body + len);
        }
        Ok(())
    }

    /// Takes bytes read off the wire, appends the plaintext of every record they complete to
    /// `plain`, and keeps the rest of a partial record for the next call. Memory stays bounded
    /// by one record plus `raw`.
    ///
    /// # Errors
    /// [`SecureError::Authentication`] for a record that does not decrypt (tampered, replayed,
    /// out of order, from another session); [`SecureError::ShortRecord`] for a length below the
    /// tag. The session cannot continue after an error.
    pub fn unseal(&mut self, raw: &[u8], plain: &mut Vec<u8>) -> Result<(), SecureError> {
        let mut rest = raw;
        // Complete the record a previous call left unfinished.
        while !self.partial.is_empty() {
            let wanted = self.partial_wanted()?;
            if wanted == 0 {
                let record = std::mem::take(&mut self.partial);
                self.open_record(&record[RECORD_HEADER_BYTES..], plain)?;
            } else if rest.is_empty() {
                return Ok(());
            } else {
                let taken = wanted.min(rest.len());
                self.partial.extend_from_slice(&rest[..taken]);
                rest = &rest[taken..];
            }
        }
        while let Some((len, body)) = record_len(rest)? {
            if body.len() < len {
                break;
            }
            self.open_record(&body[..len], plain)?;
            rest = &body[len..];
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }

    /// How many more bytes the partial record needs: its header first, then its body.
    fn partial_wanted(&self) -> Result<usize, SecureError> {
        match record_len(&self.partial)? {
            None => Ok(RECORD_HEADER_BYTES - self.partial.len()),
            Some((len, body)) => Ok(len - body.len()),
        }
    }

    /// Decrypts one record onto the end of `plain`.
    fn open_record(&mut self, record: &[u8], plain: &mut Vec<u8>) -> Result<(), SecureError> {
        let start = plain.len();
        plain.resize(start + record.len(), 0);
        match self.transport.read_message(record, &mut plain[start..]) {
            Ok(len) => {
                plain.truncate(start + len);
                Ok(())
            }
            Err(_) => {
                plain.truncate(start);
                Err(SecureError::Authentication)
            }
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("partial", &self.partial.len())
            .finish_non_exhaustive()
    }
}

/// Splits a record header off `bytes`: `None` if the header is incomplete.
fn record_len(bytes: &[u8]) -> Result<Option<(usize, &[u8])>, SecureError> {
    let Some((header, body)) = bytes.split_first_chunk::<RECORD_HEADER_BYTES>() else {
        return Ok(None);
    };
    let len = usize::from(u16::from_le_bytes(*header));
    if len < TAG_BYTES {
        return Err(SecureError::ShortRecord(len));
    }
    Ok(Some((len, body)))
}

fn check_payload(payload: &[u8]) -> Result<(), SecureError> {
    if payload.len() > HANDSHAKE_PAYLOAD_MAX {
        return Err(SecureError::PayloadTooLarge(payload.len()));
    }
    Ok(())
}

fn write_handshake(
    state: &mut snow::HandshakeState,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), SecureError> {
    let mut message = vec![0; RECORD_BYTES_MAX];
    let len = state
        .write_message(payload, &mut message)
        .map_err(noise_error)?;
    out.extend_from_slice(&message[..len]);
    Ok(())
}

fn read_handshake(
    state: &mut snow::HandshakeState,
    message: &[u8],
) -> Result<Vec<u8>, SecureError> {
    if message.len() > RECORD_BYTES_MAX {
        return Err(SecureError::Authentication);
    }
    let mut payload = vec![0; RECORD_BYTES_MAX];
    let len = state
        .read_message(message, &mut payload)
        .map_err(|_| SecureError::Authentication)?;
    if len > HANDSHAKE_PAYLOAD_MAX {
        return Err(SecureError::PayloadTooLarge(len));
    }
    payload.truncate(len);
    Ok(payload)
}

fn noise_error(error: snow::Error) -> SecureError {
    SecureError::Noise(error.to_string())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(password: &str) -> ClusterKey {
        ClusterKey::derive(password).expect("a non-empty password derives")
    }

    /// A finished handshake: (dialler's session, acceptor's session).
    fn pair(key_a: &ClusterKey, key_b: &ClusterKey) -> Result<(Session, Session), SecureError> {
        let mut first = Vec::new();
        let initiator = Initiator::start(key_a, b"hello", &mut first)?;
        let (responder, _) = Responder::accept(key_b, &first)?;
        let mut second = Vec::new();
        let acceptor = responder.reply(b"ok", &mut second)?;
        let (dialler, _) = initiator.finish(&second)?;
        Ok((dialler, acceptor))
    }

    fn sealed(session: &mut Session, plain: &[u8]) -> Vec<u8> {
        let mut wire = Vec::new();
        session.seal(plain, &mut wire).expect("sealing succeeds");
        wire
    }

    #[test]
    fn same_password_same_key_other_password_other_key() {
        assert_eq!(*key("secret").0, *key("secret").0);
        assert_ne!(*key("secret").0, *key("Secret").0);
        assert_eq!(
            ClusterKey::derive("").err(),
            Some(SecureError::EmptyPassword)
        );
        assert_eq!(format!("{:?}", key("secret")), "ClusterKey(..)");
    }

    #[test]
    fn wrong_password_fails_at_the_first_message() {
        let mut first = Vec::new();
        Initiator::start(&key("right"), b"hello", &mut first).expect("starts");
        assert_eq!(
            Responder::accept(&key("wrong"), &first).err(),
            Some(SecureError::Authentication)
        );
    }

    #[test]
    fn a_plain_hello_is_not_an_encrypted_one() {
        let mut plain = crate::handshake::MAGIC.to_vec();
        plain.extend_from_slice(&[1, 0, 1]);
        assert_eq!(
            Responder::accept(&key("k"), &plain).err(),
            Some(SecureError::BadMagic)
        );
    }

    #[test]
    fn records_round_trip_in_any_split() {
        let k = key("k");
        let (mut dialler, mut acceptor) = pair(&k, &k).expect("handshake");
        let big = vec![7_u8; 3 * RECORD_PLAINTEXT_MAX + 11];
        let mut wire = sealed(&mut dialler, b"first");
        wire.extend(sealed(&mut dialler, &big));
        wire.extend(sealed(&mut dialler, b""));
        for step in [1, 2, 3, 17, 4096, wire.len()] {
            let (mut d, mut a) = pair(&k, &k).expect("handshake");
            let mut wire = sealed(&mut d, b"first");
            wire.extend(sealed(&mut d, &big));
            let mut plain = Vec::new();
            for chunk in wire.chunks(step) {
                a.unseal(chunk, &mut plain).expect("authentic records open");
            }
            assert_eq!(&plain[..5], b"first", "step {step}");
            assert_eq!(&plain[5..], &big[..], "step {step}");
        }
        let mut plain = Vec::new();
        acceptor.unseal(&wire, &mut plain).expect("opens");
        assert_eq!(plain.len(), 5 + big.len());
    }

    #[test]
    fn a_replayed_record_is_rejected() {
        let k = key("k");
        let (mut dialler, mut acceptor) = pair(&k, &k).expect("handshake");
        let record = sealed(&mut dialler, b"transfer 100");
        let mut plain = Vec::new();
        acceptor
            .unseal(&record, &mut plain)
            .expect("first time opens");
        assert_eq!(
            acceptor.unseal(&record, &mut plain),
            Err(SecureError::Authentication)
        );
    }

    #[test]
    fn a_tampered_record_is_rejected() {
        let k = key("k");
        let (mut dialler, mut acceptor) = pair(&k, &k).expect("handshake");
        let mut record = sealed(&mut dialler, b"transfer 100");
        record[5] ^= 1;
        assert_eq!(
            acceptor.unseal(&record, &mut Vec::new()),
            Err(SecureError::Authentication)
        );
    }

    #[test]
    fn a_replayed_handshake_cannot_read_or_inject() {
        let k = key("k");
        // A genuine connection, recorded by an eavesdropper.
        let mut first = Vec::new();
        let initiator = Initiator::start(&k, b"hello", &mut first).expect("starts");
        let (responder, _) = Responder::accept(&k, &first).expect("accepts");
        let mut second = Vec::new();
        let _acceptor = responder.reply(b"ok", &mut second).expect("replies");
        let (mut dialler, _) = initiator.finish(&second).expect("finishes");
        let confirm = sealed(&mut dialler, b"");
        // The eavesdropper replays the first message on a new connection: it is accepted (it is
        // authentic), but the genuine records do not open under the new session's keys.
        let (replayed, hello) = Responder::accept(&k, &first).expect("authentic bytes");
        assert_eq!(hello, b"hello");
        let mut answer = Vec::new();
        let mut victim = replayed.reply(b"ok", &mut answer).expect("replies");
        assert_ne!(answer, second, "a fresh ephemeral key per connection");
        assert_eq!(
            victim.unseal(&confirm, &mut Vec::new()),
            Err(SecureError::Authentication)
        );
    }

    #[test]
    fn a_short_record_is_rejected() {
        let k = key("k");
        let (_, mut acceptor) = pair(&k, &k).expect("handshake");
        assert_eq!(
            acceptor.unseal(&[3, 0, 1, 2, 3], &mut Vec::new()),
            Err(SecureError::ShortRecord(3))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300_000)) {
            let k = key("k");
            let _ = Responder::accept(&k, &bytes);
            let (_, mut acceptor) = pair(&k, &k).expect("handshake");
            let mut plain = Vec::new();
            for chunk in bytes.chunks(4096) {
                if acceptor.unseal(chunk, &mut plain).is_err() {
                    break;
                }
            }
            prop_assert!(plain.is_empty(), "garbage never decrypts");
        }
    }
}
