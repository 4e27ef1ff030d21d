//! Feeds arbitrary bytes to the encrypted transport: as a dialler's first handshake message,
//! and as records on an established session. Never a panic, never a plaintext out of bytes
//! nobody sealed, and the session survives every refusal.
#![no_main]

use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use syncobj_net::secure::{ClusterKey, Initiator, Responder, SECURE_MAGIC, Session};

fn key() -> &'static ClusterKey {
    static KEY: OnceLock<ClusterKey> = OnceLock::new();
    KEY.get_or_init(|| ClusterKey::derive("fuzz").expect("a non-empty password"))
}

/// The acceptor's side of one established session, shared by every run.
fn session() -> &'static Mutex<Session> {
    static SESSION: OnceLock<Mutex<Session>> = OnceLock::new();
    SESSION.get_or_init(|| {
        let mut first = Vec::new();
        let initiator = Initiator::start(key(), b"hello", &mut first).expect("starts");
        let (responder, _) = Responder::accept(key(), &first).expect("accepts");
        let mut second = Vec::new();
        let session = responder.reply(b"ok", &mut second).expect("replies");
        initiator.finish(&second).expect("finishes");
        Mutex::new(session)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let mut message = SECURE_MAGIC.to_vec();
        message.extend_from_slice(rest);
        assert!(Responder::accept(key(), &message).is_err(), "forged a hello");
        let _ = Responder::accept(key(), rest);
    } else {
        // A fresh session per run would cost a handshake; records that fail leave the shared
        // one unchanged, and garbage never authenticates.
        let mut session = session().lock().expect("not poisoned");
        let mut plain = Vec::new();
        let chunk = usize::from(mode / 2).max(1);
        for piece in rest.chunks(chunk) {
            if session.unseal(piece, &mut plain).is_err() {
                break;
            }
        }
        assert!(plain.is_empty(), "garbage decrypted");
    }
});
