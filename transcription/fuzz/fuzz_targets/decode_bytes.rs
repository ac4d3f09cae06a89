//! Any bytes: opening and decoding must end in audio or an error, never a panic, and must
//! terminate (the decoder bounds its retries).
#![no_main]

use callscope_transcription::decode::StreamDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut decoder) = StreamDecoder::from_bytes(data.to_vec()) else {
        return;
    };
    let mut chunk = Vec::new();
    // Bounded: fuzz inputs are small, but a pathological stream must not spin forever.
    for _ in 0..100_000 {
        match decoder.next_chunk(&mut chunk) {
            Ok(true) => assert!(chunk.windows(2).all(|w| w[0].len() == w[1].len())),
            Ok(false) | Err(_) => break,
        }
    }
});
