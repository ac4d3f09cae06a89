//! Comparing what a peer sent with what another peer (or callscope's recorder) wrote down.
//!
//! The media tests' central check is "this recorded channel is that source, delayed by a
//! constant lag": normalised cross-correlation at the best lag, computed over the whole call
//! and again per window to show the lag does not drift. Recordings come at whatever rate the
//! recorder chose (baresip 8 kHz, linphonec 16/48 kHz, callscope the legs' native rate), so
//! everything is brought to one rate first. Correlation and resampling both go through
//! real FFTs (`realfft`), so 40 s of audio compares in milliseconds even in debug builds.

use crate::{Error, Result};
use realfft::RealFftPlanner;
use realfft::num_complex::Complex;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One channel of audio as samples in [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Mono {
    pub rate: u32,
    pub samples: Vec<f32>,
}

impl Mono {
    pub fn new(rate: u32, samples: Vec<f32>) -> Self {
        Mono { rate, samples }
    }

    pub fn duration_s(&self) -> f64 {
        if self.rate == 0 {
            return 0.0;
        }
        self.samples.len() as f64 / f64::from(self.rate)
    }

    /// Samples from `start_s` to `end_s` (clamped to the signal).
    pub fn slice_s(&self, start_s: f64, end_s: f64) -> Mono {
        let at = |t: f64| ((t.max(0.0) * f64::from(self.rate)) as usize).min(self.samples.len());
        let (a, b) = (at(start_s), at(end_s));
        Mono::new(
            self.rate,
            self.samples.get(a..b.max(a)).unwrap_or(&[]).to_vec(),
        )
    }

    /// Root-mean-square level in dBFS (full-scale sine ≈ -3 dB); `-inf` for silence.
    pub fn rms_dbfs(&self) -> f64 {
        rms_dbfs(&self.samples)
    }
}

/// What a WAV file holds, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    pub rate: u32,
    pub channels: u16,
    pub bits: u16,
    pub float: bool,
    /// Frames (samples per channel).
    pub frames: u64,
}

impl WavInfo {
    pub fn duration_s(&self) -> f64 {
        if self.rate == 0 {
            return 0.0;
        }
        self.frames as f64 / f64::from(self.rate)
    }
}

fn audio_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::Parse {
        what: format!("WAV {}", path.display()),
        detail: detail.into(),
    }
}

/// Reads a WAV header (PCM 8/16/24/32-bit or 32-bit float, any rate and channel count).
pub fn wav_info(path: &Path) -> Result<WavInfo> {
    let reader = hound::WavReader::open(path).map_err(|e| audio_err(path, e.to_string()))?;
    let spec = reader.spec();
    Ok(WavInfo {
        rate: spec.sample_rate,
        channels: spec.channels,
        bits: spec.bits_per_sample,
        float: spec.sample_format == hound::SampleFormat::Float,
        frames: u64::from(reader.duration()),
    })
}

/// Every channel of a WAV file, de-interleaved, as f32 in [-1, 1]. A file cut short (a
/// recorder killed mid-write) yields the whole frames that are there, not an error.
pub fn read_wav_channels(path: &Path) -> Result<Vec<Mono>> {
    let mut reader = hound::WavReader::open(path).map_err(|e| audio_err(path, e.to_string()))?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels);
    if channels == 0 || spec.sample_rate == 0 {
        return Err(audio_err(path, "zero channels or zero sample rate"));
    }
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => {
            if spec.bits_per_sample != 32 {
                return Err(audio_err(path, "only 32-bit float is supported"));
            }
            reader
                .samples::<f32>()
                .map_while(|s| s.ok())
                .collect::<Vec<_>>()
        }
        hound::SampleFormat::Int => {
            let bits = spec.bits_per_sample;
            if !(1..=32).contains(&bits) {
                return Err(audio_err(path, format!("{bits}-bit integer samples")));
            }
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            reader
                .samples::<i32>()
                .map_while(|s| s.ok())
                .map(|s| (f64::from(s) * scale) as f32)
                .collect()
        }
    };
    let frames = interleaved.len() / channels;
    let mut out: Vec<Mono> = (0..channels)
        .map(|_| Mono::new(spec.sample_rate, Vec::with_capacity(frames)))
        .collect();
    for frame in interleaved.chunks_exact(channels) {
        for (ch, &s) in out.iter_mut().zip(frame) {
            ch.samples.push(s);
        }
    }
    Ok(out)
}

/// One channel (0 = left) of a WAV file.
pub fn read_wav_channel(path: &Path, channel: usize) -> Result<Mono> {
    let mut all = read_wav_channels(path)?;
    let n = all.len();
    if channel >= n {
        return Err(audio_err(
            path,
            format!("channel {channel} asked for, the file has {n}"),
        ));
    }
    Ok(all.swap_remove(channel))
}

/// The channels of a WAV file averaged into one (the file's only channel if mono).
pub fn read_wav_mono(path: &Path) -> Result<Mono> {
    let all = read_wav_channels(path)?;
    let Some(first) = all.first() else {
        return Err(audio_err(path, "no channels"));
    };
    let n = all.len() as f32;
    let samples = (0..first.samples.len())
        .map(|i| {
            all.iter()
                .map(|c| c.samples.get(i).copied().unwrap_or(0.0))
                .sum::<f32>()
                / n
        })
        .collect();
    Ok(Mono::new(first.rate, samples))
}

/// Writes 16-bit PCM WAV with one channel per entry (all at the first one's rate; shorter
/// channels are padded with silence).
pub fn write_wav(path: &Path, channels: &[Mono]) -> Result<()> {
    let Some(first) = channels.first() else {
        return Err(audio_err(path, "nothing to write"));
    };
    let spec = hound::WavSpec {
        channels: u16::try_from(channels.len())
            .map_err(|_| audio_err(path, "too many channels"))?,
        sample_rate: first.rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(|e| audio_err(path, e.to_string()))?;
    let frames = channels.iter().map(|c| c.samples.len()).max().unwrap_or(0);
    for i in 0..frames {
        for ch in channels {
            let s = ch.samples.get(i).copied().unwrap_or(0.0);
            let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
            w.write_sample(v)
                .map_err(|e| audio_err(path, e.to_string()))?;
        }
    }
    w.finalize().map_err(|e| audio_err(path, e.to_string()))
}

/// `audio` at `rate`, by zero-padding or truncating its spectrum (an ideal low-pass at the
/// lower Nyquist frequency). Exact for band-limited signals, which is what correlation needs.
pub fn resample(audio: &Mono, rate: u32) -> Result<Mono> {
    if audio.rate == rate || audio.samples.is_empty() {
        return Ok(Mono::new(rate, audio.samples.clone()));
    }
    if rate == 0 || audio.rate == 0 {
        return Err(Error::Parse {
            what: "resampling".into(),
            detail: "zero sample rate".into(),
        });
    }
    let g = gcd(audio.rate, rate);
    let (up, down) = ((rate / g) as usize, (audio.rate / g) as usize);
    // Input length: a multiple of `down` (so the output length is whole), with room for the
    // filter's circular wrap-around to fall into zeros.
    let blocks = (audio.samples.len() + audio.samples.len() / 16 + 64).div_ceil(down);
    let n_in = blocks * down;
    let n_out = blocks * up;
    let mut planner = RealFftPlanner::<f64>::new();
    let fwd = planner.plan_fft_forward(n_in);
    let inv = planner.plan_fft_inverse(n_out);
    let mut input = fwd.make_input_vec();
    for (d, &s) in input.iter_mut().zip(&audio.samples) {
        *d = f64::from(s);
    }
    let mut spec_in = fwd.make_output_vec();
    fwd.process(&mut input, &mut spec_in).map_err(fft_err)?;
    let mut spec_out = inv.make_input_vec();
    let keep = spec_in.len().min(spec_out.len());
    spec_out[..keep].copy_from_slice(&spec_in[..keep]);
    // Real-signal constraints of the inverse transform: DC and (even length) Nyquist bins
    // are real. Halve a Nyquist bin carried over from a longer spectrum.
    if let Some(first) = spec_out.first_mut() {
        first.im = 0.0;
    }
    let halve_nyquist = keep == spec_out.len() && n_out < n_in;
    if n_out % 2 == 0
        && let Some(last) = spec_out.last_mut()
    {
        last.im = 0.0;
        if halve_nyquist {
            last.re *= 0.5;
        }
    }
    let mut out = inv.make_output_vec();
    inv.process(&mut spec_out, &mut out).map_err(fft_err)?;
    let scale = 1.0 / n_in as f64;
    let len = ((audio.samples.len() as u128 * u128::from(rate)) / u128::from(audio.rate)) as usize;
    Ok(Mono::new(
        rate,
        out.iter().take(len).map(|&v| (v * scale) as f32).collect(),
    ))
}

fn fft_err(e: realfft::FftError) -> Error {
    Error::Parse {
        what: "FFT".into(),
        detail: e.to_string(),
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The best alignment of two signals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LagMatch {
    /// `candidate[i + lag] ≈ reference[i]`: positive when the candidate is late.
    pub lag: isize,
    /// Normalised cross-correlation at that lag over the overlapping part (1.0: identical
    /// up to a gain; 0: unrelated). Signed: an inverted copy gives ≈ -1 and is not a match.
    pub xcorr: f64,
    /// Samples compared at that lag.
    pub overlap: usize,
}

impl LagMatch {
    pub fn lag_s(&self, rate: u32) -> f64 {
        self.lag as f64 / f64::from(rate.max(1))
    }
}

/// The lag within ±`max_lag` samples maximising the normalised cross-correlation, among lags
/// whose overlap is at least half the shorter signal (tiny overlaps correlate by chance).
/// Both signals must be at the same rate. Errors when either is empty or silent.
pub fn best_lag_xcorr(reference: &[f32], candidate: &[f32], max_lag: usize) -> Result<LagMatch> {
    let min_overlap = (reference.len().min(candidate.len()) / 2).max(1);
    let lag_max = isize::try_from(max_lag).unwrap_or(isize::MAX / 4);
    correlate(reference, candidate, -lag_max, lag_max, min_overlap)
}

/// [`best_lag_xcorr`] on two [`Mono`]s, resampling the candidate to the reference's rate;
/// `max_lag_s` in seconds.
pub fn best_lag(reference: &Mono, candidate: &Mono, max_lag_s: f64) -> Result<LagMatch> {
    let candidate = resample(candidate, reference.rate)?;
    let max_lag = (max_lag_s.max(0.0) * f64::from(reference.rate)) as usize;
    best_lag_xcorr(&reference.samples, &candidate.samples, max_lag)
}

/// Cross-correlation of `reference` against `candidate` for lags in `lo..=hi`, via one FFT
/// product, each lag normalised by the energies of the two overlapping parts.
fn correlate(
    reference: &[f32],
    candidate: &[f32],
    lo: isize,
    hi: isize,
    min_overlap: usize,
) -> Result<LagMatch> {
    let (nr, nc) = (reference.len(), candidate.len());
    if nr == 0 || nc == 0 {
        return Err(Error::Parse {
            what: "cross-correlation".into(),
            detail: "empty signal".into(),
        });
    }
    // Only lags where the signals overlap at all are meaningful.
    let lo = lo.max(-(nr as isize) + 1);
    let hi = hi.min(nc as isize - 1);
    if lo > hi {
        return Err(Error::Parse {
            what: "cross-correlation".into(),
            detail: "no overlapping lag in range".into(),
        });
    }
    let mean = |x: &[f32]| x.iter().map(|&v| f64::from(v)).sum::<f64>() / x.len() as f64;
    let (mr, mc) = (mean(reference), mean(candidate));
    // Circular correlation is free of wrap-around for lags in lo..=hi when the transform is
    // at least this long.
    let n = (nr.max(nc) + lo.unsigned_abs().max(hi.unsigned_abs()) + 1).next_power_of_two();
    let mut planner = RealFftPlanner::<f64>::new();
    let fwd = planner.plan_fft_forward(n);
    let inv = planner.plan_fft_inverse(n);
    let spectrum = |x: &[f32], m: f64| -> Result<Vec<Complex<f64>>> {
        let mut buf = fwd.make_input_vec();
        for (d, &s) in buf.iter_mut().zip(x) {
            *d = f64::from(s) - m;
        }
        let mut out = fwd.make_output_vec();
        fwd.process(&mut buf, &mut out).map_err(fft_err)?;
        Ok(out)
    };
    let fr = spectrum(reference, mr)?;
    let mut prod = spectrum(candidate, mc)?;
    for (p, r) in prod.iter_mut().zip(&fr) {
        *p *= r.conj();
    }
    if let Some(first) = prod.first_mut() {
        first.im = 0.0;
    }
    if let Some(last) = prod.last_mut() {
        last.im = 0.0;
    }
    let mut raw = inv.make_output_vec();
    inv.process(&mut prod, &mut raw).map_err(fft_err)?;
    let scale = 1.0 / n as f64;

    let prefix = |x: &[f32], m: f64| -> Vec<f64> {
        let mut acc = 0.0;
        let mut p = Vec::with_capacity(x.len() + 1);
        p.push(0.0);
        for &v in x {
            let d = f64::from(v) - m;
            acc += d * d;
            p.push(acc);
        }
        p
    };
    let (er, ec) = (prefix(reference, mr), prefix(candidate, mc));
    let mut best: Option<LagMatch> = None;
    for lag in lo..=hi {
        // Overlap: reference indices i0..i1, candidate indices i0+lag..i1+lag.
        let i0 = (-lag).max(0) as usize;
        let i1 = (nr as isize).min(nc as isize - lag).max(0) as usize;
        if i1 <= i0 || i1 - i0 < min_overlap {
            continue;
        }
        let e_r = er
            .get(i1)
            .zip(er.get(i0))
            .map(|(a, b)| a - b)
            .unwrap_or(0.0);
        let c0 = (i0 as isize + lag) as usize;
        let c1 = (i1 as isize + lag) as usize;
        let e_c = ec
            .get(c1)
            .zip(ec.get(c0))
            .map(|(a, b)| a - b)
            .unwrap_or(0.0);
        let denom = (e_r * e_c).sqrt();
        if denom <= 1e-12 {
            continue;
        }
        let idx = if lag >= 0 {
            lag as usize
        } else {
            n - lag.unsigned_abs()
        };
        let value = raw.get(idx).copied().unwrap_or(0.0) * scale / denom;
        if best.is_none_or(|b| value > b.xcorr) {
            best = Some(LagMatch {
                lag,
                xcorr: value,
                overlap: i1 - i0,
            });
        }
    }
    best.ok_or_else(|| Error::Parse {
        what: "cross-correlation".into(),
        detail: "one signal is silent (or no lag overlaps enough)".into(),
    })
}

/// The best lag of one window of the reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowLag {
    pub start_s: f64,
    pub end_s: f64,
    /// The reference window's level: windows of silence cannot be aligned and get `None`.
    pub reference_dbfs: f64,
    pub best: Option<LagMatch>,
}

/// Splits the reference into windows of `window_s` and finds each window's best lag (within
/// ±`max_lag_s`) in the candidate (resampled to the reference's rate). A constant lag across
/// windows shows the two never drift apart; windows quieter than `silence_dbfs` are left
/// unaligned (`best: None`).
pub fn lag_stability(
    reference: &Mono,
    candidate: &Mono,
    window_s: f64,
    max_lag_s: f64,
    silence_dbfs: f64,
) -> Result<Vec<WindowLag>> {
    let candidate = resample(candidate, reference.rate)?;
    let rate = f64::from(reference.rate);
    let w = ((window_s * rate) as usize).max(1);
    let max_lag = (max_lag_s.max(0.0) * rate) as usize;
    let (r, c) = (&reference.samples, &candidate.samples);
    let mut out = Vec::new();
    let mut start = 0usize;
    while start + w <= r.len() {
        let win = &r[start..start + w];
        let level = rms_dbfs(win);
        let best = if level < silence_dbfs {
            None
        } else {
            // The candidate around the window, so every lag sees the whole window.
            let c0 = start.saturating_sub(max_lag).min(c.len());
            let c1 = (start + w + max_lag).min(c.len());
            let seg = c.get(c0..c1).unwrap_or(&[]);
            let shift = start as isize - c0 as isize;
            let m = correlate(
                win,
                seg,
                shift - max_lag as isize,
                shift + max_lag as isize,
                w / 2,
            )
            .ok();
            m.map(|m| LagMatch {
                lag: m.lag - shift,
                ..m
            })
        };
        out.push(WindowLag {
            start_s: start as f64 / rate,
            end_s: (start + w) as f64 / rate,
            reference_dbfs: level,
            best,
        });
        start += w;
    }
    Ok(out)
}

/// Over the aligned windows with xcorr ≥ `min_xcorr`: (how many, smallest lag, largest lag).
pub fn lag_spread(windows: &[WindowLag], min_xcorr: f64) -> (usize, isize, isize) {
    let lags: Vec<isize> = windows
        .iter()
        .filter_map(|w| w.best)
        .filter(|m| m.xcorr >= min_xcorr)
        .map(|m| m.lag)
        .collect();
    let min = lags.iter().copied().min().unwrap_or(0);
    let max = lags.iter().copied().max().unwrap_or(0);
    (lags.len(), min, max)
}

/// RMS level in dBFS of a block of samples.
pub fn rms_dbfs(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return f64::NEG_INFINITY;
    }
    let power = samples
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum::<f64>()
        / samples.len() as f64;
    10.0 * power.max(1e-20).log10()
}

/// A stretch of time, in seconds from the start of the signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub start_s: f64,
    pub end_s: f64,
}

impl Interval {
    pub fn len_s(&self) -> f64 {
        self.end_s - self.start_s
    }
}

/// Frames of `frame_ms` whose RMS is at or above `threshold_dbfs` count as active.
fn frame_activity(audio: &Mono, frame_ms: u32, threshold_dbfs: f64) -> (f64, Vec<bool>) {
    let frame = ((u64::from(audio.rate) * u64::from(frame_ms.max(1))) / 1000).max(1) as usize;
    let active = audio
        .samples
        .chunks(frame)
        .map(|c| rms_dbfs(c) >= threshold_dbfs)
        .collect();
    (frame as f64 / f64::from(audio.rate.max(1)), active)
}

/// Silent stretches at least `min_len_s` long (frames of `frame_ms` below `threshold_dbfs`):
/// hold, mute, recording pauses, DTMF cut out of a recording, and lost audio.
pub fn silence_intervals(
    audio: &Mono,
    frame_ms: u32,
    threshold_dbfs: f64,
    min_len_s: f64,
) -> Vec<Interval> {
    let (frame_s, active) = frame_activity(audio, frame_ms, threshold_dbfs);
    let total = audio.duration_s();
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (i, &a) in active.iter().chain(std::iter::once(&true)).enumerate() {
        match (a, start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                let iv = Interval {
                    start_s: s as f64 * frame_s,
                    end_s: (i as f64 * frame_s).min(total),
                };
                if iv.len_s() >= min_len_s {
                    out.push(iv);
                }
                start = None;
            }
            _ => {}
        }
    }
    out
}

/// Total time of frames at or above `threshold_dbfs`.
pub fn active_duration(audio: &Mono, frame_ms: u32, threshold_dbfs: f64) -> f64 {
    let (frame_s, active) = frame_activity(audio, frame_ms, threshold_dbfs);
    let n = active.iter().filter(|&&a| a).count();
    (n as f64 * frame_s).min(audio.duration_s())
}

/// Time from the first to the last active frame (`None` if nothing is active).
pub fn active_span(audio: &Mono, frame_ms: u32, threshold_dbfs: f64) -> Option<Interval> {
    let (frame_s, active) = frame_activity(audio, frame_ms, threshold_dbfs);
    let first = active.iter().position(|&a| a)?;
    let last = active.iter().rposition(|&a| a)?;
    Some(Interval {
        start_s: first as f64 * frame_s,
        end_s: ((last + 1) as f64 * frame_s).min(audio.duration_s()),
    })
}

fn run_tool(tool: &'static str, cmd: &mut Command) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => Error::ToolMissing { tool, source },
            _ => Error::io(format!("running {tool}"), source),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::CommandFailed {
            tool,
            command: format!("{cmd:?}"),
            detail: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// Speech by espeak-ng in `voice` (e.g. `en-us`, `en-gb+f3`), saying `text` at `wpm` words
/// per minute, as 16-bit mono WAV at `rate`, repeated (with a short pause between
/// repetitions) until it lasts at least `min_secs`. Two voices saying different sentences
/// make sources that do not correlate with each other.
pub fn speech_wav(
    path: &Path,
    voice: &str,
    text: &str,
    rate: u32,
    min_secs: f64,
) -> Result<PathBuf> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("creating temp dir", e))?;
    let raw = dir.path().join("speech.wav");
    run_tool(
        "espeak-ng",
        Command::new("espeak-ng")
            .args(["-v", voice, "-s", "160", "-w"])
            .arg(&raw)
            .arg(text),
    )?;
    let once = dir.path().join("once.wav");
    // 0.4 s of silence after each repetition keeps turns apart, like a conversation.
    run_tool(
        "sox",
        Command::new("sox")
            .arg(&raw)
            .args([
                "-r",
                &rate.to_string(),
                "-c",
                "1",
                "-b",
                "16",
                "-e",
                "signed",
            ])
            .arg(&once)
            .args(["pad", "0", "0.4"]),
    )?;
    let len = wav_info(&once)?.duration_s();
    if len <= 0.0 {
        return Err(audio_err(&once, "espeak-ng produced no audio"));
    }
    let repeats = ((min_secs / len).ceil() as u32).saturating_sub(1);
    run_tool(
        "sox",
        Command::new("sox")
            .arg(&once)
            .arg(path)
            .args(["repeat", &repeats.to_string()]),
    )?;
    Ok(path.to_path_buf())
}

/// Any WAV sox reads (G.711 μ-law or A-law inside, say, as some servers record) rewritten as
/// 16-bit PCM at the same rate and channel count, which [`read_wav_channels`] takes.
pub fn to_pcm16_wav(input: &Path, output: &Path) -> Result<()> {
    run_tool(
        "sox",
        Command::new("sox")
            .arg(input)
            .args(["-b", "16", "-e", "signed-integer"])
            .arg(output),
    )
}

/// The sample encoding a WAV file's `fmt ` chunk names, when it is the first chunk (as
/// every recorder here writes it); `unknown` when it is not.
pub fn wav_encoding(path: &Path) -> &'static str {
    let mut head = [0u8; 22];
    let read = std::fs::File::open(path).and_then(|mut f| {
        use std::io::Read;
        f.read_exact(&mut head)
    });
    if read.is_err() || &head[12..16] != b"fmt " {
        return "unknown";
    }
    match u16::from_le_bytes([head[20], head[21]]) {
        1 => "PCM",
        3 => "float",
        6 => "A-law",
        7 => "μ-law",
        0xFFFE => "extensible",
        _ => "other",
    }
}

/// A sine sweep from `f0` to `f1` Hz over `secs`, 16-bit mono at `rate`, at -6 dBFS.
pub fn sweep_wav(path: &Path, rate: u32, secs: f64, f0: u32, f1: u32) -> Result<PathBuf> {
    run_tool(
        "sox",
        Command::new("sox")
            .args(["-n", "-r", &rate.to_string(), "-c", "1", "-b", "16"])
            .arg(path)
            .args(["synth", &format!("{secs}"), "sine", &format!("{f0}-{f1}")])
            .args(["vol", "0.5"]),
    )?;
    Ok(path.to_path_buf())
}

/// Passes `input` through G.711 (`ulaw` or `alaw`) and back to 16-bit PCM at 8 kHz with sox:
/// what a G.711 call does to the audio.
pub fn g711_round_trip(input: &Path, output: &Path, ulaw: bool) -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("creating temp dir", e))?;
    let (ty, enc) = if ulaw {
        ("ul", "u-law")
    } else {
        ("al", "a-law")
    };
    let coded = dir.path().join(format!("coded.{ty}"));
    run_tool(
        "sox",
        Command::new("sox")
            .arg(input)
            .args(["-r", "8000", "-c", "1", "-e", enc, "-t", ty])
            .arg(&coded),
    )?;
    run_tool(
        "sox",
        Command::new("sox")
            .args(["-t", ty, "-r", "8000", "-c", "1"])
            .arg(&coded)
            .args(["-e", "signed", "-b", "16"])
            .arg(output),
    )
}

/// `input` repeated until it lasts at least `secs`, encoded once as Ogg Opus in 20 ms
/// frames (libopus through ffmpeg, VoIP mode): what a load generator can send as it is,
/// packet by packet, instead of encoding the same audio live for every peer. As a browser
/// encodes under the `maxplaybackrate` of our answer: the audio bandwidth held to what
/// `max_audio_rate` (Hz) carries (8000 narrowband, 12000, 16000 wideband, 24000, or 48000
/// full band, no limit), at `bitrate` bit/s ([`webrtc_bitrate_for`] is what a browser's
/// WebRTC encoder starts at for that limit).
pub fn opus_ogg_repeated_within(
    input: &Path,
    output: &Path,
    secs: f64,
    max_audio_rate: u32,
    bitrate: u32,
) -> Result<()> {
    let mut command = Command::new("ffmpeg");
    command
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-stream_loop",
            "-1",
        ])
        .arg("-i")
        .arg(input)
        .args(["-t", &format!("{secs}"), "-c:a", "libopus"])
        .args(["-b:a", &bitrate.to_string()])
        .args(["-frame_duration", "20", "-application", "voip", "-ac", "1"]);
    // ffmpeg's libopus `cutoff` (Hz of audio) sets the encoder's maximum bandwidth.
    let cutoff = match max_audio_rate {
        0..=8000 => Some(4000),
        8001..=12000 => Some(6000),
        12001..=16000 => Some(8000),
        16001..=24000 => Some(12000),
        _ => None,
    };
    if let Some(hz) = cutoff {
        command.args(["-cutoff", &hz.to_string()]);
    }
    run_tool("ffmpeg", command.arg(output))
}

/// The bitrate (bit/s) WebRTC's Opus encoder (Chromium's) uses by default for a mono
/// stream under a `maxplaybackrate` of `max_audio_rate`: 12 kbit/s up to narrowband, 20 up to
/// wideband, 32 above. At 20 kbit/s libopus codes wideband VoIP audio as SILK, which is what
/// the far end then decodes; at 32 kbit/s a tone sweep comes out two-thirds CELT.
pub fn webrtc_bitrate_for(max_audio_rate: u32) -> u32 {
    match max_audio_rate {
        0..=8000 => 12_000,
        8001..=16000 => 20_000,
        _ => 32_000,
    }
}

/// Raw G.711 (no header, as SIPp's `rtp_stream` wants it) from any audio file, with ffmpeg.
pub fn raw_g711(input: &Path, output: &Path, ulaw: bool) -> Result<()> {
    run_tool(
        "ffmpeg",
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
            .arg(input)
            .args([
                "-ar",
                "8000",
                "-ac",
                "1",
                "-f",
                if ulaw { "mulaw" } else { "alaw" },
            ])
            .arg(output),
    )
}

/// Amplitude of the `freq` component of `samples` at `rate` (Goertzel; 2|X|/N is a pure
/// sine's amplitude): finds tones (ringback, a phone's test tone) under whatever else plays.
pub fn amplitude_at<S: Copy + Into<f64>>(samples: &[S], rate: f64, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / rate;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = x.into() + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.max(0.0).sqrt() / samples.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u64) -> Vec<f32> {
        // xorshift: deterministic, broadband, no external crate.
        let mut x = seed.max(1);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    #[test]
    fn shifted_noise_gives_its_lag_both_ways() {
        let r = noise(8000, 7);
        let mut late = vec![0.0; 123];
        late.extend_from_slice(&r);
        let m = best_lag_xcorr(&r, &late, 400).unwrap();
        assert_eq!(m.lag, 123);
        assert!(m.xcorr > 0.999, "{m:?}");
        let m = best_lag_xcorr(&late, &r, 400).unwrap();
        assert_eq!(m.lag, -123);
        let other = noise(8000, 99);
        let m = best_lag_xcorr(&r, &other, 400).unwrap();
        assert!(m.xcorr < 0.1, "{m:?}");
    }

    #[test]
    fn silence_and_empty_are_errors_not_panics() {
        assert!(best_lag_xcorr(&[], &[0.1], 10).is_err());
        assert!(best_lag_xcorr(&[0.0; 100], &[0.0; 100], 10).is_err());
        assert!(resample(&Mono::new(0, vec![0.1]), 8000).is_err());
    }

    #[test]
    fn resampling_keeps_a_tone() {
        let tone: Vec<f32> = (0..16000)
            .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 16000.0).sin() * 0.5)
            .collect();
        let down = resample(&Mono::new(16000, tone.clone()), 8000).unwrap();
        assert_eq!(down.samples.len(), 8000);
        let expect: Vec<f32> = (0..8000)
            .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 8000.0).sin() * 0.5)
            .collect();
        let err = down.samples[100..7900]
            .iter()
            .zip(&expect[100..7900])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err < 0.01, "max error {err}");
        let up = resample(&down, 48000).unwrap();
        assert_eq!(up.samples.len(), 48000);
    }

    #[test]
    fn silence_finder_sees_a_gap() {
        let mut s = noise(8000, 3);
        s.extend(std::iter::repeat_n(0.0, 4000));
        s.extend(noise(8000, 4));
        let a = Mono::new(8000, s);
        let gaps = silence_intervals(&a, 20, -50.0, 0.2);
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert!((gaps[0].start_s - 1.0).abs() < 0.021 && (gaps[0].end_s - 1.5).abs() < 0.021);
        assert!((active_duration(&a, 20, -50.0) - 2.0).abs() < 0.05);
    }

    #[test]
    fn amplitude_finds_a_tone_under_another() {
        let rate = 8000.0;
        let samples: Vec<f32> = (0..8000)
            .map(|i| {
                let t = f64::from(i) / rate;
                (0.5 * (2.0 * std::f64::consts::PI * 425.0 * t).sin()
                    + 0.1 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as f32
            })
            .collect();
        assert!((amplitude_at(&samples, rate, 425.0) - 0.5).abs() < 0.01);
        assert!((amplitude_at(&samples, rate, 1000.0) - 0.1).abs() < 0.01);
        assert!(amplitude_at(&samples, rate, 700.0) < 0.01);
    }
}
