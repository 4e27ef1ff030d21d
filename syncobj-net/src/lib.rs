//! The network layer of `syncobj`.
//!
//! It moves opaque frames between node addresses and knows nothing of Raft. The mio poller, the
//! TCP transport, framing, the handshake and encryption arrive with the network issue; until then
//! the only transport is the simulator's in-memory network in `syncobj-core`.
