//! The whole post-call path for one file: decode → 16 kHz → VAD → utterances → ASR or import.
//! CONTRACT (implemented by the transcription-core work):
//!
//! ```ignore
//! pub struct PipelineOptions { pub layout: ChannelLayout, pub language: Option<String>, .. } // Default
//! pub fn probe(path: &Path) -> Result<AudioInfo>;       // fast: header + first packets; rejects unknown/corrupt formats
//! pub fn run_file(path: &Path, opts: &PipelineOptions, asr: Option<&dyn AsrEngine>,
//!                 transcript: Option<&import::ImportedTranscript>,
//!                 progress: &mut dyn FnMut(Progress)) -> Result<PipelineOutput>;
//! ```
