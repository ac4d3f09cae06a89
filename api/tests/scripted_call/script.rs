//! A call written as a script of lines, rendered to real audio by espeak-ng and sox: each
//! line's audio and the exact times of its phrases are known, so every insight the analysis
//! should find can be computed from the script instead of being read off the output.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Sample rate the lines are rendered at (and the double's templates are kept at).
pub const RATE: u32 = 16_000;
const SAMPLES_PER_MS: usize = (RATE / 1000) as usize;
/// Silence put between the phrases of one line: a short breath, far below the 500 ms pause
/// that ends an utterance.
const PHRASE_GAP_MS: u64 = 150;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Agent,
    Customer,
}

impl Who {
    pub fn role(self) -> &'static str {
        match self {
            Who::Agent => "agent",
            Who::Customer => "customer",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Who::Agent => "Agent",
            Who::Customer => "Customer",
        }
    }
    /// Stereo channel under `stereo_agent_left`.
    pub fn channel(self) -> usize {
        match self {
            Who::Agent => 0,
            Who::Customer => 1,
        }
    }
    /// Two clearly different espeak-ng voices.
    fn voice(self) -> &'static str {
        match self {
            Who::Agent => "en-us+f3",
            Who::Customer => "en-gb+m3",
        }
    }
}

/// One phrase: what espeak-ng is told to say, and what a recogniser would write for it
/// (they differ for digits: "4 1 1 1" is read digit by digit, written "4111").
#[derive(Debug, Clone)]
pub struct Phrase {
    pub said: &'static str,
    pub text: &'static str,
}

/// A line of the script, placed relative to the end of the previous line.
#[derive(Debug, Clone)]
pub struct LineSpec {
    pub who: Who,
    /// Milliseconds from the end of the previous line (negative: starts before it ends, an
    /// interruption); for the first line, from the start of the call.
    pub after_ms: i64,
    /// Start no earlier than this (to put a line late in the call).
    pub not_before_ms: u64,
    pub phrases: Vec<Phrase>,
}

pub fn line(who: Who, after_ms: i64, phrases: &[(&'static str, &'static str)]) -> LineSpec {
    LineSpec {
        who,
        after_ms,
        not_before_ms: 0,
        phrases: phrases
            .iter()
            .map(|&(said, text)| Phrase { said, text })
            .collect(),
    }
}

/// Same text said and written.
pub fn plain(who: Who, after_ms: i64, phrases: &[&'static str]) -> LineSpec {
    let pairs: Vec<(&'static str, &'static str)> = phrases.iter().map(|&p| (p, p)).collect();
    line(who, after_ms, &pairs)
}

/// A rendered phrase: its text and its span inside the call.
#[derive(Debug, Clone)]
pub struct PlacedPhrase {
    pub text: &'static str,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// A rendered line with its place in the call.
#[derive(Debug, Clone)]
pub struct PlacedLine {
    pub who: Who,
    pub start_ms: u64,
    pub end_ms: u64,
    pub phrases: Vec<PlacedPhrase>,
    /// The line's audio at 16 kHz (phrases joined by short gaps, no leading/trailing silence).
    pub audio: Vec<f32>,
}

impl PlacedLine {
    /// The text a recogniser writes for the whole line.
    pub fn text(&self) -> String {
        self.phrases
            .iter()
            .map(|p| p.text)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A whole rendered call.
pub struct RenderedCall {
    pub lines: Vec<PlacedLine>,
    pub duration_ms: u64,
    /// Left = agent, right = customer, 16 kHz.
    pub tracks: [Vec<f32>; 2],
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// espeak-ng → sox → raw 16-bit 16 kHz → samples, with the leading and trailing silence
/// espeak puts around speech cut off.
fn render_phrase(dir: &Path, name: &str, who: Who, said: &str) -> Vec<f32> {
    let wav = dir.join(format!("{name}.wav"));
    run(Command::new("espeak-ng")
        .args(["-v", who.voice(), "-s", "165", "-w"])
        .arg(&wav)
        .arg(said));
    let raw = dir.join(format!("{name}.raw"));
    run(Command::new("sox")
        .arg(&wav)
        .args(["-t", "raw", "-e", "signed", "-b", "16", "-c", "1", "-r"])
        .arg(RATE.to_string())
        .arg(&raw));
    let bytes = std::fs::read(&raw).unwrap();
    let samples: Vec<f32> = bytes
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect();
    let loud = |x: &f32| x.abs() > 0.01;
    let first = samples
        .iter()
        .position(loud)
        .expect("espeak rendered silence");
    let last = samples.iter().rposition(loud).unwrap();
    samples[first..=last].to_vec()
}

/// Renders every line and lays them out on the two channels.
pub fn render(dir: &Path, name: &str, specs: &[LineSpec], tail_ms: u64) -> RenderedCall {
    let mut lines: Vec<PlacedLine> = Vec::new();
    let mut prev_end: i64 = 0;
    for (i, spec) in specs.iter().enumerate() {
        let start_ms = (prev_end + spec.after_ms).max(spec.not_before_ms as i64);
        let start_ms = u64::try_from(start_ms).expect("a line before the call starts");
        let mut audio = Vec::new();
        let mut phrases = Vec::new();
        for (j, p) in spec.phrases.iter().enumerate() {
            if j > 0 {
                audio.extend(std::iter::repeat_n(
                    0.0,
                    PHRASE_GAP_MS as usize * SAMPLES_PER_MS,
                ));
            }
            // Phrases start on whole milliseconds so their times are exact.
            let pad = (SAMPLES_PER_MS - audio.len() % SAMPLES_PER_MS) % SAMPLES_PER_MS;
            audio.extend(std::iter::repeat_n(0.0, pad));
            let offset_ms = (audio.len() / SAMPLES_PER_MS) as u64;
            let samples = render_phrase(dir, &format!("{name}-{i}-{j}"), spec.who, p.said);
            let len_ms = samples.len().div_ceil(SAMPLES_PER_MS) as u64;
            audio.extend(samples);
            phrases.push(PlacedPhrase {
                text: p.text,
                start_ms: start_ms + offset_ms,
                end_ms: start_ms + offset_ms + len_ms,
            });
        }
        let end_ms = start_ms + audio.len().div_ceil(SAMPLES_PER_MS) as u64;
        prev_end = end_ms as i64;
        lines.push(PlacedLine {
            who: spec.who,
            start_ms,
            end_ms,
            phrases,
            audio,
        });
    }
    let duration_ms = lines.iter().map(|l| l.end_ms).max().unwrap_or(0) + tail_ms;
    let len = duration_ms as usize * SAMPLES_PER_MS;
    let mut tracks = [vec![0.0f32; len], vec![0.0f32; len]];
    for l in &lines {
        let track = &mut tracks[l.who.channel()];
        let at = l.start_ms as usize * SAMPLES_PER_MS;
        for (k, s) in l.audio.iter().enumerate() {
            track[at + k] += s;
        }
    }
    // One speaker's lines never overlap each other, and are far enough apart for the
    // recogniser double to tell them apart.
    for a in &lines {
        for b in &lines {
            if a.who == b.who && a.start_ms < b.start_ms {
                assert!(
                    a.end_ms + 400 <= b.start_ms,
                    "script error: {:?} lines too close",
                    a.who
                );
            }
        }
    }
    RenderedCall {
        lines,
        duration_ms,
        tracks,
    }
}

/// A 16-bit PCM stereo WAV of the call at 16 kHz; at `rate` 8000 it is resampled by sox
/// (a PBX's rate).
pub fn write_wav(dir: &Path, name: &str, call: &RenderedCall, rate: u32) -> PathBuf {
    let path = dir.join(format!("{name}-16k.wav"));
    let frames = call.tracks[0].len();
    let data_len = (frames * 4) as u32;
    let mut bytes = Vec::with_capacity(44 + frames * 4);
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data_len).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes()); // PCM
    bytes.extend_from_slice(&2u16.to_le_bytes()); // channels
    bytes.extend_from_slice(&RATE.to_le_bytes());
    bytes.extend_from_slice(&(RATE * 4).to_le_bytes());
    bytes.extend_from_slice(&4u16.to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data_len.to_le_bytes());
    for k in 0..frames {
        for track in &call.tracks {
            let v = (track[k].clamp(-1.0, 1.0) * 32767.0).round() as i16;
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(&path, bytes).unwrap();
    if rate == RATE {
        return path;
    }
    let out = dir.join(format!("{name}-{rate}.wav"));
    run(Command::new("sox")
        .arg(&path)
        .args(["-r", &rate.to_string(), "-b", "16"])
        .arg(&out));
    out
}
