//! callscope's media side (issue 4): RTP/RTCP, codecs, jitter buffering, quality statistics
//! and the crash-safe call recorder. The cores are sans-IO: fed packets and the current time,
//! they return what to send, play or write; the tokio shell around them (`engine`) owns sockets,
//! files and clocks.

pub mod codec;
pub mod dtmf;
pub mod engine;
pub mod g711;
pub mod jitter;
pub mod mos;
pub mod recorder;
pub mod rtcp;
pub mod rtp;
pub mod stats;
