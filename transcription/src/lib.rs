//! callscope's transcription library: from an audio file (or, later, live frames) to
//! time-stamped, speaker-tagged segments. It knows nothing of calls, HTTP or databases.
//!
//! Data flow: `decode` (symphonia, streaming, channels kept apart) → `resample` to 16 kHz
//! (dedicated FIR filters for 8 and 32–48 kHz, rubato for other rates) → `vad` per channel →
//! `segment` (utterances cut at pauses; on mono, `diarize` clusters the speakers) → `asr` per utterance (whisper) or `import` (a
//! transcript that came with the recording) → merged, time-ordered [`Segment`]s. `pipeline`
//! wires these for a whole file.

pub mod asr;
pub mod decode;
pub mod diarize;
pub mod downsample32;
pub mod format;
pub mod g711;
pub mod import;
pub mod live;
pub mod pipeline;
pub mod resample;
pub mod segment;
mod simd;
pub mod types;
pub mod upsample2x;
pub mod vad;

pub use types::*;
