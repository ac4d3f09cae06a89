//! The whole post-call path for one file: decode → 16 kHz → VAD → utterances → ASR or import.
//!
//! Everything streams: one decoded packet, one resampler chunk and, per channel, one utterance
//! of audio are in memory at a time. ASR runs as soon as an utterance is closed, so a
//! 60-minute file never has more than 30 s of audio per channel buffered.
//!
//! Entry points:
//! - [`probe`]: fast check at upload time (header + first packet).
//! - [`run_file`]: the full path. The imported-transcript case takes an *aligner* closure
//!   instead of `import::ImportedTranscript` (that module is written separately); callers do
//!   `run_file(p, &o, None, Some(&|u: &[Utterance]| import::align(&t, u)), &mut prog)`.
//! - [`run_file_utterances`]: VAD utterances only, for callers that align on their own.

use std::path::Path;

use crate::decode::StreamDecoder;
use crate::diarize::features::FeatureExtractor;
use crate::diarize::{Diarization, DiarizeParams, EmbedderRef, EmbeddingCollector, diarize_with};
use crate::resample::StreamResampler;
use crate::segment::{FinishedUtterance, SegmentParams, Segmenter};
use crate::types::*;
use crate::vad::{VadParams, VadStream};

/// Decoded audio between two progress reports.
const PROGRESS_EVERY_MS: u64 = 1_000;

#[derive(Debug, Clone, PartialEq)]
pub struct PipelineOptions {
    pub layout: ChannelLayout,
    /// Language hint for ASR (e.g. "en"); `None` lets the engine decide.
    pub language: Option<String>,
    pub vad: VadParams,
    pub segment: SegmentParams,
    /// Speaker clustering of mono recordings (on by default): segments get "Speaker N" labels
    /// and roles by the rule in the parameters. `None` keeps one `unknown` speaker. Stereo
    /// layouts never use it (the channels are the speakers). Not applied to imported
    /// transcripts, which name their own speakers.
    pub diarize: Option<DiarizeParams>,
    /// A speaker-embedding model for that clustering (`None`: voice statistics only).
    pub speaker_embedder: Option<EmbedderRef>,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            layout: ChannelLayout::default(),
            language: None,
            vad: VadParams::default(),
            segment: SegmentParams::default(),
            diarize: Some(DiarizeParams::default()),
            speaker_embedder: None,
        }
    }
}

/// Maps VAD utterances onto a transcript that came with the recording (see `import::align`).
pub type TranscriptAligner<'a> = &'a dyn Fn(&[Utterance]) -> Vec<Segment>;

/// Open the file, read its header and decode the first packet: catches unknown formats, broken
/// headers and codecs we cannot decode, without decoding the file. `duration_ms` here is the
/// container's claim (0 when it has none); [`run_file`] reports the duration actually decoded.
pub fn probe(path: &Path) -> Result<AudioInfo> {
    let mut decoder = StreamDecoder::open(path)?;
    let mut chunk = Vec::new();
    decoder.next_chunk(&mut chunk)?;
    let info = decoder.info();
    Ok(AudioInfo {
        container: info.container.clone(),
        codec: info.codec.clone(),
        channels: info.channels,
        sample_rate: info.sample_rate,
        duration_ms: info.claimed_ms(),
    })
}

/// Run the whole pipeline on a file.
///
/// Text comes from, in order of preference: `transcript_aligner` (an imported transcript;
/// ASR is skipped, outcome `Imported`), `asr` (outcome `Transcribed`), or nothing (segments
/// carry speaker and times only, outcome `Unavailable`). No speech at all gives `NoSpeech`
/// and no segments.
///
/// Progress: `Decoding` about once per second of audio; with ASR, `Transcribing { done, total }`
/// after each utterance, where `total` counts the utterances found *so far* (utterances are
/// transcribed as soon as they close, so the final count is unknown until the end).
pub fn run_file(
    path: &Path,
    opts: &PipelineOptions,
    asr: Option<&dyn AsrEngine>,
    transcript_aligner: Option<TranscriptAligner<'_>>,
    progress: &mut dyn FnMut(Progress),
) -> Result<PipelineOutput> {
    let use_asr = asr.filter(|_| transcript_aligner.is_none());
    let speakers = Speakers::for_layout(opts.layout);
    let mut utterances: Vec<Utterance> = Vec::new();
    let mut segments: Vec<Segment> = Vec::new();
    let mut done = 0usize;
    let mut features = diarize_features(opts, transcript_aligner.is_none());

    let info = stream_utterances(
        path,
        opts,
        use_asr.is_some(),
        features.as_mut(),
        progress,
        &mut |channel, utt, progress| {
            let utterance = speakers.utterance(channel, &utt);
            utterances.push(utterance);
            if let Some(engine) = use_asr {
                let asr_segments = engine.transcribe(&utt.audio, opts.language.as_deref())?;
                segments.extend(map_asr_segments(
                    &utterance,
                    &speakers,
                    utt.audio_start_ms(),
                    asr_segments,
                ));
                done += 1;
                progress(Progress::Transcribing { done, total: done });
            }
            Ok(())
        },
    )?;

    if utterances.is_empty() {
        return Ok(PipelineOutput {
            info,
            segments: Vec::new(),
            asr: AsrOutcome::NoSpeech,
        });
    }
    sort_utterances(&mut utterances);
    let (mut segments, outcome) = match (transcript_aligner, use_asr) {
        (Some(align), _) => (align(&utterances), AsrOutcome::Imported),
        (None, Some(_)) => (segments, AsrOutcome::Transcribed),
        (None, None) => {
            let bare = utterances
                .iter()
                .map(|u| speakers.bare_segment(u))
                .collect();
            (bare, AsrOutcome::Unavailable)
        }
    };
    if let (Some(tap), Some(params)) = (features, opts.diarize.as_ref()) {
        let spans: Vec<(u64, u64)> = utterances.iter().map(|u| (u.start_ms, u.end_ms)).collect();
        let diarization = tap.finish(&spans, params);
        segments = apply_diarization(segments, &diarization);
    }
    segments.sort_by_key(|s| (s.start_ms, s.channel, s.end_ms));
    Ok(PipelineOutput {
        info,
        segments,
        asr: outcome,
    })
}

/// Decode, resample and VAD a file; return its info and the utterances of every channel in
/// time order (channels merged, overlaps kept).
pub fn run_file_utterances(
    path: &Path,
    opts: &PipelineOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<(AudioInfo, Vec<Utterance>)> {
    let speakers = Speakers::for_layout(opts.layout);
    let mut utterances = Vec::new();
    let info = stream_utterances(path, opts, false, None, progress, &mut |channel, utt, _| {
        utterances.push(speakers.utterance(channel, &utt));
        Ok(())
    })?;
    sort_utterances(&mut utterances);
    Ok((info, utterances))
}

/// Decode, resample, VAD and diarize a mono file (a multi-channel file is down-mixed): the
/// speaker turns on their own, for scoring (DER) and tools. Uses `opts.diarize`, or the
/// default parameters when it is `None`.
pub fn diarize_file(
    path: &Path,
    opts: &PipelineOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<(AudioInfo, Diarization)> {
    let mono = PipelineOptions {
        layout: ChannelLayout::Mono,
        diarize: Some(opts.diarize.clone().unwrap_or_default()),
        ..opts.clone()
    };
    let mut spans = Vec::new();
    let mut tap = DiarizeTap::new(&mono);
    let info = stream_utterances(
        path,
        &mono,
        false,
        Some(&mut tap),
        progress,
        &mut |_, utt, _| {
            spans.push((utt.start_ms(), utt.end_ms()));
            Ok(())
        },
    )?;
    spans.sort_unstable();
    let params = mono.diarize.clone().unwrap_or_default();
    Ok((info, tap.finish(&spans, &params)))
}

/// What the mono diarizer takes from the audio as it streams past: the voice features, and
/// the speaker-embedding windows when a model is configured.
struct DiarizeTap {
    features: FeatureExtractor,
    embeddings: Option<EmbeddingCollector>,
}

impl DiarizeTap {
    fn new(opts: &PipelineOptions) -> Self {
        let windows = opts
            .diarize
            .as_ref()
            .map(|p| p.embedding_windows.clone())
            .unwrap_or_default();
        Self {
            features: FeatureExtractor::new(),
            embeddings: opts
                .speaker_embedder
                .clone()
                .map(|e| EmbeddingCollector::new(e, &windows)),
        }
    }

    fn push(&mut self, mono: &[f32]) {
        self.features.push(mono);
        if let Some(e) = self.embeddings.as_mut() {
            e.push(mono);
        }
    }

    fn finish(self, utterances: &[(u64, u64)], params: &DiarizeParams) -> Diarization {
        let embeddings = self.embeddings.map(EmbeddingCollector::finish);
        diarize_with(
            &self.features.finish(),
            utterances,
            params,
            embeddings.as_ref(),
        )
    }
}

/// The diarizer's tap on the stream, when this run will use it.
fn diarize_features(opts: &PipelineOptions, no_import: bool) -> Option<DiarizeTap> {
    (opts.layout == ChannelLayout::Mono && opts.diarize.is_some() && no_import)
        .then(|| DiarizeTap::new(opts))
}

/// Relabel mono segments with the diarized speakers: segments without words (no ASR) are cut
/// where the speaker changes; transcribed ones go whole to the speaker with most of their time.
fn apply_diarization(segments: Vec<Segment>, d: &Diarization) -> Vec<Segment> {
    /// A speaker change inside an utterance makes a segment only if both sides have this much.
    const MIN_PIECE_MS: u64 = 400;
    let mut out = Vec::with_capacity(segments.len());
    for seg in segments {
        let pieces = if seg.text.as_deref().is_none_or(str::is_empty) && seg.words.is_empty() {
            d.split(seg.start_ms, seg.end_ms, MIN_PIECE_MS)
        } else {
            d.speaker_at(seg.start_ms, seg.end_ms)
                .map(|k| vec![(k, seg.start_ms, seg.end_ms)])
                .unwrap_or_default()
        };
        if pieces.is_empty() {
            out.push(seg);
            continue;
        }
        for (k, start_ms, end_ms) in pieces {
            out.push(Segment {
                role: d.role(k),
                speaker_label: Diarization::label(k),
                start_ms,
                end_ms,
                ..seg.clone()
            });
        }
    }
    out
}

type UtteranceSink<'a> =
    dyn FnMut(u16, FinishedUtterance, &mut dyn FnMut(Progress)) -> Result<()> + 'a;

/// The streaming core: calls `sink(channel, utterance)` as each utterance closes.
fn stream_utterances(
    path: &Path,
    opts: &PipelineOptions,
    keep_audio: bool,
    mut features: Option<&mut DiarizeTap>,
    progress: &mut dyn FnMut(Progress),
    sink: &mut UtteranceSink<'_>,
) -> Result<AudioInfo> {
    let mut decoder = StreamDecoder::open(path)?;
    let mut chunk: Vec<Vec<f32>> = Vec::new();
    // The first packet fixes the real channel count (some containers only know it then).
    let mut have_chunk = decoder.next_chunk(&mut chunk)?;
    let file_channels = decoder.info().channels;
    let tracks = match opts.layout {
        ChannelLayout::Mono => 1usize,
        ChannelLayout::StereoAgentLeft | ChannelLayout::StereoAgentRight => {
            if file_channels != 2 {
                return Err(TranscriptionError::LayoutMismatch {
                    layout: opts.layout,
                    channels: file_channels,
                });
            }
            2
        }
    };
    let total_ms = decoder.info().claimed_ms();
    let mut resampler = StreamResampler::new(decoder.info().sample_rate, tracks)?;
    let mut vads: Vec<VadStream> = (0..tracks)
        .map(|_| VadStream::earshot(opts.vad.clone()))
        .collect();
    let mut segmenters: Vec<Segmenter> = (0..tracks)
        .map(|_| Segmenter::new(opts.segment.clone(), keep_audio))
        .collect();

    let mut mixed: Vec<Vec<f32>> = vec![Vec::new(); 1];
    let mut resampled: Vec<Vec<f32>> = vec![Vec::new(); tracks];
    let mut finished: Vec<Finished> = Vec::new();
    let mut next_report = 0u64;

    while have_chunk {
        let input: &[Vec<f32>] = if tracks == 1 && chunk.len() > 1 {
            downmix(&chunk, &mut mixed);
            &mixed
        } else {
            &chunk
        };
        for r in resampled.iter_mut() {
            r.clear();
        }
        resampler.push(input, &mut resampled)?;
        feed_features(&mut features, &resampled);
        feed_channels(&mut vads, &mut segmenters, &resampled, &mut finished);
        deliver(&mut finished, sink, progress)?;

        let done_ms = decoder.decoded_ms();
        if done_ms >= next_report {
            progress(Progress::Decoding { done_ms, total_ms });
            next_report = done_ms + PROGRESS_EVERY_MS;
        }
        have_chunk = decoder.next_chunk(&mut chunk)?;
    }

    for r in resampled.iter_mut() {
        r.clear();
    }
    resampler.finish(&mut resampled)?;
    feed_features(&mut features, &resampled);
    feed_channels(&mut vads, &mut segmenters, &resampled, &mut finished);
    for (ch, (vad, seg)) in vads.iter_mut().zip(segmenters.iter_mut()).enumerate() {
        let mut closed = Vec::new();
        vad.finish(&mut |d, f| seg.push_frame(d, f, &mut closed));
        seg.finish(&mut closed);
        finished.extend(closed.into_iter().map(|u| (ch as u16, u)));
    }
    deliver(&mut finished, sink, progress)?;

    let duration_ms = decoder.decoded_ms();
    progress(Progress::Decoding {
        done_ms: duration_ms,
        total_ms,
    });
    let info = decoder.info();
    Ok(AudioInfo {
        container: info.container.clone(),
        codec: info.codec.clone(),
        channels: info.channels,
        sample_rate: info.sample_rate,
        duration_ms,
    })
}

type Finished = (u16, FinishedUtterance);

/// Diarization features are taken from the one mono track.
fn feed_features(features: &mut Option<&mut DiarizeTap>, audio: &[Vec<f32>]) {
    if let (Some(fx), [mono]) = (features.as_deref_mut(), audio) {
        fx.push(mono);
    }
}

fn feed_channels(
    vads: &mut [VadStream],
    segmenters: &mut [Segmenter],
    audio: &[Vec<f32>],
    finished: &mut Vec<Finished>,
) {
    let mut closed = Vec::new();
    for (ch, ((vad, seg), samples)) in vads
        .iter_mut()
        .zip(segmenters.iter_mut())
        .zip(audio)
        .enumerate()
    {
        vad.push(samples, &mut |d, f| seg.push_frame(d, f, &mut closed));
        finished.extend(closed.drain(..).map(|u| (ch as u16, u)));
    }
}

fn deliver(
    finished: &mut Vec<Finished>,
    sink: &mut UtteranceSink<'_>,
    progress: &mut dyn FnMut(Progress),
) -> Result<()> {
    for (ch, utt) in finished.drain(..) {
        sink(ch, utt, progress)?;
    }
    Ok(())
}

/// Average all channels into one (the `mono` layout on a multi-channel file).
fn downmix(chunk: &[Vec<f32>], out: &mut [Vec<f32>]) {
    let Some(dst) = out.first_mut() else { return };
    let frames = chunk.first().map_or(0, Vec::len);
    dst.clear();
    dst.resize(frames, 0.0);
    let scale = 1.0 / chunk.len() as f32;
    for channel in chunk {
        for (d, s) in dst.iter_mut().zip(channel) {
            *d += s * scale;
        }
    }
}

fn sort_utterances(utterances: &mut [Utterance]) {
    utterances.sort_by_key(|u| (u.start_ms, u.channel, u.end_ms));
}

/// Who speaks on which analysed channel.
struct Speakers {
    roles: [SpeakerRole; 2],
}

impl Speakers {
    fn for_layout(layout: ChannelLayout) -> Self {
        let roles = match layout {
            ChannelLayout::StereoAgentLeft => [SpeakerRole::Agent, SpeakerRole::Customer],
            ChannelLayout::StereoAgentRight => [SpeakerRole::Customer, SpeakerRole::Agent],
            ChannelLayout::Mono => [SpeakerRole::Unknown, SpeakerRole::Unknown],
        };
        Self { roles }
    }

    fn role(&self, channel: u16) -> SpeakerRole {
        self.roles
            .get(usize::from(channel))
            .copied()
            .unwrap_or(SpeakerRole::Unknown)
    }

    fn label(&self, channel: u16) -> String {
        match self.role(channel) {
            SpeakerRole::Agent => "Agent".into(),
            SpeakerRole::Customer => "Customer".into(),
            SpeakerRole::Unknown => format!("Speaker {}", channel + 1),
        }
    }

    fn utterance(&self, channel: u16, utt: &FinishedUtterance) -> Utterance {
        Utterance {
            channel,
            role: self.role(channel),
            start_ms: utt.start_ms(),
            end_ms: utt.end_ms(),
        }
    }

    fn bare_segment(&self, u: &Utterance) -> Segment {
        Segment {
            channel: u.channel,
            role: u.role,
            speaker_label: self.label(u.channel),
            start_ms: u.start_ms,
            end_ms: u.end_ms,
            text: None,
            confidence: None,
            words: Vec::new(),
        }
    }
}

/// ASR times are relative to the audio handed over (which starts `audio_start_ms` into the
/// recording, padding included); put them on the recording's timeline and inside the utterance.
fn map_asr_segments(
    utt: &Utterance,
    speakers: &Speakers,
    audio_start_ms: u64,
    asr: Vec<AsrSegment>,
) -> Vec<Segment> {
    let clamp = |t: u64| {
        audio_start_ms
            .saturating_add(t)
            .clamp(utt.start_ms, utt.end_ms)
    };
    let mut out: Vec<Segment> = asr
        .into_iter()
        .filter(|s| !s.text.trim().is_empty())
        .map(|s| {
            let start_ms = clamp(s.start_ms);
            let end_ms = clamp(s.end_ms).max(start_ms);
            let words = s
                .words
                .into_iter()
                .map(|w| {
                    let ws = clamp(w.start_ms);
                    Word {
                        start_ms: ws,
                        end_ms: clamp(w.end_ms).max(ws),
                        ..w
                    }
                })
                .collect();
            Segment {
                channel: utt.channel,
                role: utt.role,
                speaker_label: speakers.label(utt.channel),
                start_ms,
                end_ms,
                text: Some(s.text.trim().to_string()),
                confidence: s.confidence,
                words,
            }
        })
        .collect();
    if out.is_empty() {
        // The engine heard nothing it could write down: keep the turn (talk time is real).
        let mut bare = speakers.bare_segment(utt);
        bare.text = Some(String::new());
        out.push(bare);
    }
    out
}
