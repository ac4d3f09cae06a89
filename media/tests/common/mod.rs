//! Helpers shared by the codec tests: real speech from espeak-ng converted by SoX, and the
//! normalised cross-correlation used to compare a codec's output with its source.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

pub fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is installed: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

/// Speech spoken by espeak-ng, converted by SoX to 16-bit mono at `rate`.
pub fn speech(dir: &Path, rate: u32) -> Vec<i16> {
    let raw = path(dir, "espeak.wav");
    if !dir.join("espeak.wav").exists() {
        run(
            "espeak-ng",
            &[
                "-w",
                &raw,
                "Hello, this is callscope. Please hold the line while I transfer your call \
                 to the billing department. Your reference number is four seven one two.",
            ],
        );
    }
    let out = path(dir, &format!("speech_{rate}.wav"));
    run(
        "sox",
        &[&raw, "-r", &rate.to_string(), "-c", "1", "-b", "16", &out],
    );
    read_wav(Path::new(&out))
}

pub fn read_wav(file: &Path) -> Vec<i16> {
    let mut reader = hound::WavReader::open(file).unwrap();
    reader.samples::<i16>().map(|s| s.unwrap()).collect()
}

pub fn write_wav(file: &Path, rate: u32, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(file, spec).unwrap();
    for &s in samples {
        writer.write_sample(s).unwrap();
    }
    writer.finalize().unwrap();
}

/// Normalised cross-correlation of `reference[n]` with `signal[n + lag]` over their overlap.
pub fn correlation_at(reference: &[i16], signal: &[i16], lag: usize) -> f64 {
    let n = reference.len().min(signal.len().saturating_sub(lag));
    let (mut xy, mut xx, mut yy) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let x = f64::from(reference[i]);
        let y = f64::from(signal[i + lag]);
        xy += x * y;
        xx += x * x;
        yy += y * y;
    }
    if xx == 0.0 || yy == 0.0 {
        return 0.0;
    }
    xy / (xx * yy).sqrt()
}

/// (best lag in 0..=max_lag, correlation there).
pub fn best_correlation(reference: &[i16], signal: &[i16], max_lag: usize) -> (usize, f64) {
    (0..=max_lag)
        .map(|lag| (lag, correlation_at(reference, signal, lag)))
        .fold((0, f64::MIN), |best, c| if c.1 > best.1 { c } else { best })
}

pub fn sine(freq: f64, rate: u32, samples: usize, amplitude: f64) -> Vec<i16> {
    (0..samples)
        .map(|n| {
            let t = n as f64 / f64::from(rate);
            (amplitude * (2.0 * std::f64::consts::PI * freq * t).sin()).round() as i16
        })
        .collect()
}

/// xorshift64*: seeded, reproducible bytes without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// Below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}
