//! Feeds arbitrary bytes, in chunks the input itself chooses, to the frame decoder with a small
//! limit: it must never panic, never hold more than its bound, and never return a frame over
//! the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncobj_net::frame::FrameDecoder;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, bytes)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);
    let mut decoder = FrameDecoder::with_read_chunk(64, 16);
    let mut rest = bytes;
    while !rest.is_empty() {
        let take = rest.len().min(chunk);
        let taken = decoder.feed(&rest[..take]);
        assert!(decoder.buffered() <= decoder.buffer_bytes_max());
        rest = &rest[taken..];
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => assert!(frame.len() <= 64),
                Ok(None) => break,
                Err(_) => return,
            }
        }
        if taken == 0 {
            return;
        }
    }
    let _ = decoder.finish();
});
