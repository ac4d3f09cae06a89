//! Test helpers: a scripted two-voice stereo call made with espeak-ng, encoded with ffmpeg.
//!
//! Each turn is synthesised alone, its leading/trailing silence trimmed, then placed on its
//! channel at a time we choose, so the script's turn times are known to the sample.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const RATE: u32 = 16_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Turn {
    /// 0 = left = agent, 1 = right = customer.
    pub channel: u16,
    pub start_ms: u64,
    pub end_ms: u64,
}

pub struct ScriptedCall {
    pub dir: PathBuf,
    /// 16 kHz 16-bit stereo master.
    pub master: PathBuf,
    pub turns: Vec<Turn>,
    pub duration_ms: u64,
}

/// Lines without internal punctuation, so espeak makes no long pause inside a turn.
const AGENT: [&str; 3] = [
    "Thank you for calling Acme support my name is Alice how can I help you today",
    "I am sorry to hear that can you tell me your account number",
    "Thanks I have reset your line and it should work in two minutes",
];
const CUSTOMER: [&str; 3] = [
    "Hi my internet has been down since this morning and I need it fixed",
    "Sure it is one two three four five six",
    "Great thank you very much goodbye",
];
const LEAD_IN_MS: u64 = 700;
const GAP_MS: u64 = 900;
const TAIL_MS: u64 = 800;

pub fn require_tool(tool: &str) {
    let ok = Command::new(tool)
        .arg(if tool.starts_with("ff") {
            "-version"
        } else {
            "--version"
        })
        .output()
        .map(|o| o.status.success() || !o.stdout.is_empty())
        .unwrap_or(false);
    assert!(
        ok,
        "`{tool}` is required by this test and was not found: install it (the README set-up command \
         installs espeak-ng, sox and ffmpeg)"
    );
}

pub fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn synth(dir: &Path, name: &str, voice: &str, speed: &str, text: &str) -> Vec<i16> {
    let raw = dir.join(format!("{name}_raw.wav"));
    let wav = dir.join(format!("{name}.wav"));
    run(Command::new("espeak-ng")
        .args(["-v", voice, "-s", speed, "-w"])
        .arg(&raw)
        .arg(text));
    run(Command::new("sox")
        .arg(&raw)
        .args(["-r", "16000", "-c", "1", "-b", "16"])
        .arg(&wav));
    let mut reader = hound::WavReader::open(&wav).expect("read synthesised turn");
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect();
    // Trim to the first/last sample above 1% of full scale: the turn's exact speech extent.
    let loud = |s: &i16| s.unsigned_abs() > 328;
    let first = samples
        .iter()
        .position(loud)
        .expect("espeak produced silence");
    let last = samples
        .iter()
        .rposition(loud)
        .expect("espeak produced silence");
    samples[first..=last].to_vec()
}

fn ms_to_samples(ms: u64) -> usize {
    (ms * u64::from(RATE) / 1000) as usize
}

fn build(dir: &Path) -> ScriptedCall {
    for tool in ["espeak-ng", "sox", "ffmpeg"] {
        require_tool(tool);
    }
    let mut left: Vec<i16> = Vec::new();
    let mut right: Vec<i16> = Vec::new();
    let mut turns = Vec::new();
    let mut t_ms = LEAD_IN_MS;
    for n in 0..3 {
        for (channel, voice, speed, text) in [
            (0u16, "en-us+f3", "155", AGENT[n]),
            (1u16, "en-us+m3", "140", CUSTOMER[n]),
        ] {
            let audio = synth(dir, &format!("turn{n}_{channel}"), voice, speed, text);
            let start = ms_to_samples(t_ms);
            let track = if channel == 0 { &mut left } else { &mut right };
            track.resize(start, 0);
            track.extend_from_slice(&audio);
            let end_ms = t_ms + (audio.len() as u64 * 1000).div_ceil(u64::from(RATE));
            turns.push(Turn {
                channel,
                start_ms: t_ms,
                end_ms,
            });
            t_ms = end_ms + GAP_MS;
        }
    }
    let total = ms_to_samples(t_ms - GAP_MS + TAIL_MS);
    left.resize(total, 0);
    right.resize(total, 0);
    let master = dir.join("call_stereo.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&master, spec).expect("create master");
    for (l, r) in left.iter().zip(&right) {
        w.write_sample(*l).expect("write");
        w.write_sample(*r).expect("write");
    }
    w.finalize().expect("finalize master");
    ScriptedCall {
        dir: dir.to_path_buf(),
        master,
        turns,
        duration_ms: total as u64 * 1000 / u64::from(RATE),
    }
}

impl ScriptedCall {
    /// The script's turns as a diarization reference ("agent" / "customer").
    pub fn reference_spans(&self) -> Vec<callscope_transcription::diarize::der::LabelledSpan> {
        self.turns
            .iter()
            .map(|t| callscope_transcription::diarize::der::LabelledSpan {
                start_s: t.start_ms as f64 / 1000.0,
                end_s: t.end_ms as f64 / 1000.0,
                speaker: if t.channel == 0 { "agent" } else { "customer" }.into(),
            })
            .collect()
    }
}

/// The call, generated once per test binary into that binary's own directory under cargo's
/// test scratch space (replaced on every run, so nothing accumulates in /tmp and test binaries
/// running in parallel never share files).
pub fn scripted_call() -> &'static ScriptedCall {
    static CALL: OnceLock<ScriptedCall> = OnceLock::new();
    CALL.get_or_init(|| {
        let binary = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "tests".into());
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("callscope-call-{binary}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create test scratch dir");
        build(&dir)
    })
}

/// One encoding of the call.
#[derive(Debug, Clone, Copy)]
pub struct Encoding {
    pub name: &'static str,
    pub file: &'static str,
    pub ffmpeg_args: &'static [&'static str],
    pub container: &'static str,
    pub codec: &'static str,
    /// Allowed duration error: codecs with encoder delay/frame padding get a little slack.
    pub duration_tolerance_ms: u64,
    /// Write via `-f FORMAT pipe:` to stdout, as a browser's MediaRecorder does (no sizes).
    pub piped_format: Option<&'static str>,
}

pub const ENCODINGS: &[Encoding] = &[
    Encoding {
        name: "wav_s16",
        file: "s16.wav",
        ffmpeg_args: &["-c:a", "pcm_s16le"],
        container: "wav",
        codec: "pcm_s16le",
        duration_tolerance_ms: 2,
        piped_format: None,
    },
    Encoding {
        name: "wav_s24_44k",
        file: "s24.wav",
        ffmpeg_args: &["-c:a", "pcm_s24le", "-ar", "44100"],
        container: "wav",
        codec: "pcm_s24le",
        duration_tolerance_ms: 2,
        piped_format: None,
    },
    Encoding {
        name: "wav_f32",
        file: "f32.wav",
        ffmpeg_args: &["-c:a", "pcm_f32le"],
        container: "wav",
        codec: "pcm_f32le",
        duration_tolerance_ms: 2,
        piped_format: None,
    },
    Encoding {
        name: "wav_mulaw_8k",
        file: "mulaw.wav",
        ffmpeg_args: &["-c:a", "pcm_mulaw", "-ar", "8000"],
        container: "wav",
        codec: "pcm_mulaw",
        duration_tolerance_ms: 2,
        piped_format: None,
    },
    Encoding {
        name: "wav_alaw_8k",
        file: "alaw.wav",
        ffmpeg_args: &["-c:a", "pcm_alaw", "-ar", "8000"],
        container: "wav",
        codec: "pcm_alaw",
        duration_tolerance_ms: 2,
        piped_format: None,
    },
    Encoding {
        name: "wav_ima_adpcm_8k",
        file: "adpcm.wav",
        ffmpeg_args: &["-c:a", "adpcm_ima_wav", "-ar", "8000"],
        container: "wav",
        codec: "adpcm_ima_wav",
        duration_tolerance_ms: 130,
        piped_format: None,
    },
    Encoding {
        name: "mp3_22k",
        file: "call.mp3",
        ffmpeg_args: &["-c:a", "libmp3lame", "-ar", "22050", "-b:a", "64k"],
        container: "mp3",
        codec: "mp3",
        duration_tolerance_ms: 80,
        piped_format: None,
    },
    Encoding {
        name: "ogg_vorbis",
        file: "vorbis.ogg",
        ffmpeg_args: &["-c:a", "libvorbis", "-ar", "44100"],
        container: "ogg",
        codec: "vorbis",
        duration_tolerance_ms: 80,
        piped_format: None,
    },
    Encoding {
        name: "ogg_opus",
        file: "opus.ogg",
        ffmpeg_args: &["-c:a", "libopus", "-b:a", "32k"],
        container: "ogg",
        codec: "opus",
        duration_tolerance_ms: 80,
        piped_format: None,
    },
    Encoding {
        name: "webm_opus",
        file: "opus.webm",
        ffmpeg_args: &["-c:a", "libopus", "-b:a", "32k"],
        container: "webm",
        codec: "opus",
        duration_tolerance_ms: 80,
        piped_format: None,
    },
    Encoding {
        name: "webm_opus_unknown_size",
        file: "piped.webm",
        ffmpeg_args: &["-c:a", "libopus", "-b:a", "32k"],
        container: "webm",
        codec: "opus",
        duration_tolerance_ms: 80,
        piped_format: Some("webm"),
    },
    Encoding {
        name: "m4a_aac",
        file: "call.m4a",
        ffmpeg_args: &["-c:a", "aac", "-b:a", "64k"],
        container: "mp4",
        codec: "aac",
        duration_tolerance_ms: 80,
        piped_format: None,
    },
    Encoding {
        name: "flac",
        file: "call.flac",
        ffmpeg_args: &["-c:a", "flac"],
        container: "flac",
        codec: "flac",
        duration_tolerance_ms: 2,
        piped_format: None,
    },
];

pub fn encode(call: &ScriptedCall, enc: &Encoding) -> PathBuf {
    let out = call.dir.join(enc.file);
    if out.exists() {
        return out;
    }
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(&call.master)
        .args(enc.ffmpeg_args);
    match enc.piped_format {
        Some(fmt) => {
            // Written to a pipe, the muxer cannot seek back to fill in sizes and durations.
            let file = std::fs::File::create(&out).expect("create piped output");
            cmd.args(["-f", fmt, "pipe:1"]).stdout(file);
            run(&mut cmd);
        }
        None => {
            cmd.arg(&out);
            run(&mut cmd);
        }
    }
    out
}

pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("CALLSCOPE_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"),
    }
}

/// Duration as decoded by ffmpeg, the reference decoder (counted samples, not a header's
/// estimate: ffprobe's duration for a VBR/CBR MP3 without a Xing header is only a guess).
pub fn ffmpeg_decoded_ms(path: &Path) -> u64 {
    require_tool("ffmpeg");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-ac", "1", "-ar", "16000", "-f", "s16le", "pipe:1"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg failed on {path:?}");
    (out.stdout.len() as u64 / 2) * 1000 / 16_000
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.max(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}
