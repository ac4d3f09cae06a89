//! Any bytes: opening and decoding must end in audio or an error, never a panic out of our API,
//! and must terminate (the decoder bounds its retries).
//!
//! The decoder wraps symphonia in `catch_unwind` (symphonia 0.6 still panics on some inputs,
//! e.g. an arithmetic overflow in the WAV channel-mask fix-up), so by default the target only
//! fails on panics that escape our API. Set `CALLSCOPE_FUZZ_STRICT=1` to keep libFuzzer's
//! abort-on-any-panic and hunt for those third-party bugs too.
#![no_main]

use callscope_transcription::decode::StreamDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        if std::env::var_os("CALLSCOPE_FUZZ_STRICT").is_none() {
            // Replace libfuzzer-sys's abort-in-hook: a panic our API catches is not a crash,
            // and one it does not catch still aborts in libfuzzer-sys's catch_unwind wrapper.
            std::panic::set_hook(Box::new(|_| {}));
        }
    },
    |data: &[u8]| {
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
    }
);
