//! Fuzz the transcript importer (WebVTT and JSON): any bytes must give a transcript or an
//! `InvalidTranscript` error, never a panic; what parses must align and render too.
#![no_main]

use callscope_transcription::{SpeakerRole, Utterance, format, import};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match import::parse(data) {
        Ok(transcript) => {
            for cue in &transcript.cues {
                assert!(cue.start_ms <= cue.end_ms);
            }
            let utterances = [
                Utterance {
                    channel: 0,
                    role: SpeakerRole::Agent,
                    start_ms: 0,
                    end_ms: 5_000,
                },
                Utterance {
                    channel: 1,
                    role: SpeakerRole::Customer,
                    start_ms: 4_000,
                    end_ms: 9_000,
                },
            ];
            let segments = import::align(&transcript, &utterances);
            assert_eq!(segments.len(), transcript.cues.len());
            let _ = format::vtt(&segments);
            let _ = format::srt(&segments);
        }
        Err(e) => assert_eq!(e.code(), "invalid_transcript"),
    }
});
