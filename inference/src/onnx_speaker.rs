//! A speaker-embedding network exported to ONNX (x-vector, ECAPA-TDNN, ResNet), run by ONNX
//! Runtime loaded at run time, for the mono diarizer ([`SpeakerEmbedder`]).
//!
//! Two input layouts are recognised from the model itself:
//! - **filter banks**, `[batch, frames, bins]` float: Kaldi-compatible log mel filter banks
//!   ([`crate::fbank`], 25 ms / 10 ms, usually 80 bins) of the audio at 16-bit scale, with
//!   each bin's mean over the window subtracted. This is what WeSpeaker, 3D-Speaker and the
//!   sherpa-onnx speaker-embedding exports take, e.g.
//!   `wespeaker_en_voxceleb_resnet34.onnx` or `3dspeaker_speech_eres2net_base_sv_en_voxceleb_16k.onnx`;
//! - **waveform**, `[batch, samples]` float: 16 kHz samples in [-1, 1] (exports of
//!   SpeechBrain's ECAPA and pyannote's embedding models that include their own front end).
//!
//! The first output, `[batch, dims]` (or `[batch, 1, dims]`), is the embedding.

use std::path::Path;
use std::sync::Mutex;

use callscope_transcription::diarize::SpeakerEmbedder;
use callscope_transcription::types::{Result as TranscriptionResult, TranscriptionError};
use ort::session::Session;
use ort::value::{Tensor, TensorElementType, ValueType};

use crate::InferenceError;
use crate::fbank::{self, Fbank};
use crate::ort_runtime::open_session;

/// Kaldi-trained front ends expect samples in 16-bit integer range.
const INT16_SCALE: f32 = 32_768.0;
/// Bins assumed when the model leaves its feature axis dynamic.
const DEFAULT_BINS: usize = 80;

/// What the model's input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeakerInput {
    /// Log mel filter banks, `[batch, frames, bins]`.
    Fbank { bins: usize },
    /// Raw 16 kHz samples, `[batch, samples]`.
    Waveform,
}

pub struct OnnxSpeakerEmbedder {
    // `Session::run` takes `&mut self`; one window at a time is what the diarizer does.
    session: Mutex<Session>,
    input_name: String,
    output_name: String,
    input: SpeakerInput,
    fbank: Option<Fbank>,
    dimension: usize,
    name: String,
}

impl std::fmt::Debug for OnnxSpeakerEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxSpeakerEmbedder")
            .field("name", &self.name)
            .field("input", &self.input)
            .field("dimension", &self.dimension)
            .finish()
    }
}

impl OnnxSpeakerEmbedder {
    /// Loads `model_path` with the ONNX Runtime at `runtime`, or the one found by
    /// [`crate::locate_onnxruntime`]. Checks the input and output shapes and runs the model
    /// once on a second of faint noise, so a model that cannot run fails here, at start-up.
    pub fn load(model_path: &Path, runtime: Option<&Path>) -> Result<Self, InferenceError> {
        let session = open_session(model_path, runtime)?;
        let model_error =
            |reason: String| InferenceError::Model(format!("{}: {reason}", model_path.display()));

        let [input] = session.inputs() else {
            return Err(model_error(format!(
                "a speaker-embedding model takes one input, this one takes {}",
                session.inputs().len()
            )));
        };
        let input_name = input.name().to_string();
        let layout = match input.dtype() {
            ValueType::Tensor { ty, shape, .. } if *ty == TensorElementType::Float32 => {
                match shape.len() {
                    3 => Some(SpeakerInput::Fbank {
                        bins: usize::try_from(shape[2])
                            .ok()
                            .filter(|b| (1..=256).contains(b))
                            .unwrap_or(DEFAULT_BINS),
                    }),
                    2 => Some(SpeakerInput::Waveform),
                    _ => None,
                }
            }
            _ => None,
        }
        .ok_or_else(|| {
            model_error(format!(
                "input {input_name} is {:?}; supported: float [batch, frames, bins] filter banks or float [batch, samples] audio",
                input.dtype()
            ))
        })?;
        let output_name = session
            .outputs()
            .first()
            .map(|o| o.name().to_string())
            .ok_or_else(|| model_error("no output".into()))?;

        let mut embedder = Self {
            session: Mutex::new(session),
            input_name,
            output_name,
            input: layout,
            fbank: match layout {
                SpeakerInput::Fbank { bins } => Some(Fbank::new(bins)),
                SpeakerInput::Waveform => None,
            },
            dimension: 0,
            name: format!(
                "onnx:{}",
                model_path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ),
        };
        // One run on a second of low noise: the real output size, and proof that it runs.
        let probe: Vec<f32> = (0..16_000u32)
            .map(|n| ((n.wrapping_mul(2_654_435_761) >> 16) as f32 / 65_536.0 - 0.5) * 1e-3)
            .collect();
        let vector = embedder
            .run(&probe)
            .map_err(|e| model_error(format!("a test run failed: {e}")))?;
        embedder.dimension = vector.len();
        Ok(embedder)
    }

    pub fn input(&self) -> SpeakerInput {
        self.input
    }

    /// The model's embedding of 16 kHz mono audio in [-1, 1] (not normalised).
    pub fn run(&self, audio: &[f32]) -> Result<Vec<f32>, InferenceError> {
        let tensor = match (&self.input, &self.fbank) {
            (SpeakerInput::Fbank { bins }, Some(fb)) => {
                let scaled: Vec<f32> = audio.iter().map(|x| x * INT16_SCALE).collect();
                let mut features = fb.compute(&scaled);
                let frames = features.len() / bins;
                if frames == 0 {
                    return Err(InferenceError::Model(format!(
                        "{} samples is too short for one 25 ms frame",
                        audio.len()
                    )));
                }
                fbank::subtract_mean(&mut features, *bins);
                Tensor::from_array(([1usize, frames, *bins], features))
            }
            _ => Tensor::from_array(([1usize, audio.len()], audio.to_vec())),
        }
        .map_err(|e| InferenceError::Onnx(e.to_string()))?;
        let mut session = self
            .session
            .lock()
            .map_err(|_| InferenceError::Onnx("session poisoned by an earlier panic".into()))?;
        let outputs = session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(|e| InferenceError::Onnx(e.to_string()))?;
        let value = outputs
            .get(&self.output_name)
            .ok_or_else(|| InferenceError::Onnx(format!("no output {}", self.output_name)))?;
        let (shape, values) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| InferenceError::Onnx(e.to_string()))?;
        let batch_of_one = shape.first().is_some_and(|b| *b == 1)
            && shape.iter().skip(1).filter(|d| **d != 1).count() <= 1;
        if values.is_empty() || !batch_of_one {
            return Err(InferenceError::Onnx(format!(
                "output of shape {shape:?} is not one embedding"
            )));
        }
        if values.iter().any(|x| !x.is_finite()) {
            return Err(InferenceError::Onnx("the embedding is not finite".into()));
        }
        Ok(values.to_vec())
    }
}

impl SpeakerEmbedder for OnnxSpeakerEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed(&self, audio_16k: &[f32]) -> TranscriptionResult<Vec<f32>> {
        self.run(audio_16k)
            .map_err(|e| TranscriptionError::Model(format!("speaker embedding: {e}")))
    }
}
