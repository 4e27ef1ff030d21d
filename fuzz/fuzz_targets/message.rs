//! Decodes arbitrary bytes as a Raft message envelope (MessagePack, the codec of every message
//! between nodes): never a panic, and whatever decodes survives a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncobj_core::raft::Envelope;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = rmp_serde::from_slice::<Envelope>(data) {
        let bytes = rmp_serde::to_vec(&envelope).expect("a decoded envelope encodes");
        let again: Envelope = rmp_serde::from_slice(&bytes).expect("an encoded envelope decodes");
        assert_eq!(again, envelope);
    }
});
