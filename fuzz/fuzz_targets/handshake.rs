//! Decodes arbitrary bytes as a hello and as a hello reply: never a panic, every error's
//! offset inside the payload, and whatever decodes encodes back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncobj_net::handshake::{Hello, HelloReply};

fuzz_target!(|data: &[u8]| {
    match Hello::decode(data) {
        Ok(hello) => {
            let mut again = Vec::new();
            hello.encode(&mut again).expect("a decoded hello encodes");
            assert_eq!(again, data);
        }
        Err(error) => assert!(error.offset() <= data.len()),
    }
    match HelloReply::decode(data) {
        Ok(reply) => {
            let mut again = Vec::new();
            reply.encode(&mut again);
            assert_eq!(again, data);
        }
        Err(error) => assert!(error.offset() <= data.len()),
    }
});
