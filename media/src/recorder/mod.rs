//! The call recorder: a sans-IO two-channel timeline (agent left, customer right) that places
//! decoded audio by its media timestamps and the wall clock, a WAV writer whose file stays
//! playable while it grows, and `repair` for files left behind by a crash.

pub mod ogg;
pub mod ogg_opus;
mod pending;
pub mod repair;
pub mod timeline;
pub mod wav;
pub mod writer;

pub use ogg_opus::OggOpusWriter;
pub use repair::{RepairError, RepairReport, repair};
pub use timeline::{
    Channel, PauseInterval, PushOutcome, StreamTime, Timeline, TimelineConfig, TimelineError,
    TimelineStats,
};
pub use writer::{FinishedRecording, WavWriter, WriterConfig, WriterError};

use std::path::{Path, PathBuf};
use std::time::Instant;

/// A recording being written, in the format its file name asks for (`*.opus`/`*.ogg`: Opus in
/// Ogg; anything else: WAV PCM 16-bit).
pub enum RecordingWriter {
    Wav(WavWriter),
    OggOpus(Box<OggOpusWriter>),
}

impl RecordingWriter {
    pub fn create(
        final_path: impl Into<PathBuf>,
        config: WriterConfig,
        now: Instant,
    ) -> Result<Self, WriterError> {
        let final_path = final_path.into();
        if repair::is_ogg_opus(&final_path) {
            OggOpusWriter::create(final_path, config, now).map(|w| Self::OggOpus(Box::new(w)))
        } else {
            WavWriter::create(final_path, config, now).map(Self::Wav)
        }
    }

    pub fn part_path(&self) -> &Path {
        match self {
            Self::Wav(w) => w.part_path(),
            Self::OggOpus(w) => w.part_path(),
        }
    }

    pub fn write(&mut self, interleaved: &[i16], now: Instant) -> Result<(), WriterError> {
        match self {
            Self::Wav(w) => w.write(interleaved, now),
            Self::OggOpus(w) => w.write(interleaved, now),
        }
    }

    pub fn flush(&mut self, now: Instant) -> Result<(), WriterError> {
        match self {
            Self::Wav(w) => w.flush(now),
            Self::OggOpus(w) => w.flush(now),
        }
    }

    pub fn finish(self, now: Instant) -> Result<FinishedRecording, WriterError> {
        match self {
            Self::Wav(w) => w.finish(now),
            Self::OggOpus(w) => w.finish(now),
        }
    }
}
