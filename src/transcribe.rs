//! `callscope transcribe FILE`: the same pipeline the server runs, offline, with a progress
//! bar on stderr and the transcript on stdout.

use std::sync::Arc;

use anyhow::{Context, Result};
use callscope_api::config::Config;
use callscope_transcription::asr::whisper::{WhisperConfig, WhisperEngine};
use callscope_transcription::pipeline::{self, PipelineOptions};
use callscope_transcription::{
    AsrEngine, AsrOutcome, ChannelLayout, Progress, Segment, Utterance, format, import,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{OutputFormat, StereoRoles, TranscribeArgs};

pub async fn run(config: &Config, args: TranscribeArgs) -> Result<()> {
    let layout = match args.stereo_roles {
        Some(StereoRoles::AgentCustomer) => ChannelLayout::StereoAgentLeft,
        Some(StereoRoles::CustomerAgent) => ChannelLayout::StereoAgentRight,
        None => ChannelLayout::Mono,
    };
    let language = args
        .language
        .clone()
        .or_else(|| config.asr.language.clone());
    let transcript = match &args.transcript {
        Some(p) => {
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            Some(import::parse(&bytes).with_context(|| format!("parsing {}", p.display()))?)
        }
        None => None,
    };
    let model = args.model.clone().or_else(|| config.asr.model_path.clone());
    let engine: Option<Arc<dyn AsrEngine>> = match (&model, &transcript) {
        (Some(path), None) => {
            let wc = WhisperConfig {
                language: language.clone(),
                threads: config.asr.threads.unwrap_or(0),
                ..WhisperConfig::default()
            };
            Some(Arc::new(
                WhisperEngine::load(path, wc)
                    .with_context(|| format!("loading {}", path.display()))?,
            ))
        }
        _ => None,
    };
    if engine.is_none() && transcript.is_none() {
        eprintln!(
            "note: no ASR model (--model or asr.model_path): segments carry speakers and times only"
        );
    }
    let mut diarization = config.diarization.clone();
    if let Some(path) = &args.speaker_model {
        diarization.speaker_model = Some(path.clone());
    }
    let speaker_embedder = if layout == ChannelLayout::Mono {
        callscope_api::http::state::load_speaker_embedder(&diarization, config)
            .map_err(anyhow::Error::msg)?
    } else {
        None
    };
    let opts = PipelineOptions {
        layout,
        language,
        diarize: Some(diarization.params()),
        speaker_embedder,
        ..Default::default()
    };
    let file = args.file.clone();
    let output = tokio::task::spawn_blocking(move || {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} s")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message("decoding");
        let mut on_progress = |p: Progress| match p {
            Progress::Decoding { done_ms, total_ms } => {
                if total_ms > 0 {
                    bar.set_length(total_ms / 1000);
                }
                bar.set_position(done_ms / 1000);
            }
            Progress::Transcribing { done, total } => {
                bar.set_message(format!("transcribing utterance {done} of {total}+"));
            }
        };
        let align = |u: &[Utterance]| -> Vec<Segment> {
            transcript
                .as_ref()
                .map(|t| import::align(t, u))
                .unwrap_or_default()
        };
        let aligner: Option<pipeline::TranscriptAligner<'_>> = if transcript.is_some() {
            Some(&align)
        } else {
            None
        };
        let out = pipeline::run_file(&file, &opts, engine.as_deref(), aligner, &mut on_progress);
        bar.finish_and_clear();
        out
    })
    .await
    .context("pipeline task")?
    .with_context(|| format!("processing {}", args.file.display()))?;

    if output.asr == AsrOutcome::NoSpeech {
        eprintln!("no speech found in {}", args.file.display());
    }
    eprintln!(
        "{}: {} {} ch {} Hz, {:.1} s, {} segments",
        args.file.display(),
        output.info.container,
        output.info.channels,
        output.info.sample_rate,
        output.info.duration_ms as f64 / 1000.0,
        output.segments.len()
    );
    let text = match args.format {
        OutputFormat::Json => format::json(&output.segments),
        OutputFormat::Vtt => format::vtt(&output.segments),
        OutputFormat::Srt => format::srt(&output.segments),
        OutputFormat::Txt => format::txt(&output.segments),
    };
    print!("{text}");
    Ok(())
}
