//! The call recorder: a sans-IO two-channel timeline (agent left, customer right) that places
//! decoded audio by its media timestamps and the wall clock, a WAV writer whose file stays
//! playable while it grows, and `repair` for files left behind by a crash.

pub mod repair;
pub mod timeline;
pub mod wav;
pub mod writer;

pub use repair::{RepairError, RepairReport, repair};
pub use timeline::{
    Channel, PauseInterval, PushOutcome, StreamTime, Timeline, TimelineConfig, TimelineError,
    TimelineStats,
};
pub use writer::{FinishedRecording, WavWriter, WriterConfig, WriterError};
