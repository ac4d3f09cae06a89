//! Resampling quality for ASR: tones in the speech band come out at the same level (±0.5 dB),
//! images (upsampling) and aliases (downsampling) of other tones are at least 50 dB down, and
//! the output length is exact.

use callscope_transcription::resample::{StreamResampler, TARGET_RATE};

fn tone(rate: u32, freq: f64, secs: f64, amplitude: f64) -> Vec<f32> {
    let n = (f64::from(rate) * secs) as usize;
    (0..n)
        .map(|i| {
            (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                as f32
        })
        .collect()
}

/// Resample one channel through the streaming API in uneven pieces, as a decoder delivers them.
fn resample(rate: u32, input: &[f32]) -> Vec<f32> {
    let mut r = StreamResampler::new(rate, 1).expect("resampler");
    let mut out = vec![Vec::new()];
    for piece in input.chunks(1153) {
        r.push(&[piece.to_vec()], &mut out).expect("push");
    }
    r.finish(&mut out).expect("finish");
    out.pop().unwrap_or_default()
}

/// Amplitude of the component at `freq` in 16 kHz audio (Hann-windowed single-bin DFT over the
/// middle of the signal, away from start-up and flush edges).
fn amplitude_at(signal: &[f32], freq: f64) -> f64 {
    let rate = f64::from(TARGET_RATE);
    let start = signal.len() / 4;
    let part = &signal[start..start + signal.len() / 2];
    let n = part.len() as f64;
    let (mut re, mut im, mut wsum) = (0.0, 0.0, 0.0);
    for (i, s) in part.iter().enumerate() {
        let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n).cos();
        let phase = 2.0 * std::f64::consts::PI * freq * (start + i) as f64 / rate;
        re += w * f64::from(*s) * phase.cos();
        im += w * f64::from(*s) * phase.sin();
        wsum += w;
    }
    2.0 * (re * re + im * im).sqrt() / wsum
}

fn db(x: f64) -> f64 {
    20.0 * x.max(1e-12).log10()
}

fn check_rate(rate: u32, out_of_band: &[(f64, f64)]) {
    for freq in [300.0, 1000.0, 3500.0] {
        let input = tone(rate, freq, 2.0, 0.5);
        let out = resample(rate, &input);
        let expected = (input.len() as u64 * u64::from(TARGET_RATE)).div_ceil(u64::from(rate));
        assert_eq!(out.len() as u64, expected, "{rate} Hz: output length");
        let gain = db(amplitude_at(&out, freq) / 0.5);
        assert!(
            gain.abs() <= 0.5,
            "{rate} Hz: {freq} Hz tone changed by {gain:.2} dB"
        );
    }
    // (tone fed in, frequency where its image or alias would land)
    for &(freq, lands_at) in out_of_band {
        let input = tone(rate, freq, 2.0, 0.5);
        let out = resample(rate, &input);
        let leak = db(amplitude_at(&out, lands_at) / 0.5);
        assert!(
            leak <= -50.0,
            "{rate} Hz: {freq} Hz tone leaks to {lands_at} Hz at {leak:.1} dB"
        );
    }
}

#[test]
fn telephony_8k_doubles_flat_without_images() {
    // Upsampling 8 → 16 kHz: a tone at f has its image at 8 kHz − f.
    check_rate(
        8_000,
        &[(3_500.0, 4_500.0), (1_000.0, 7_000.0), (3_000.0, 5_000.0)],
    );
}

#[test]
fn cd_rate_44k1_is_flat_without_aliases() {
    // Downsampling to 16 kHz: a tone at f above 8 kHz folds to 16 kHz − f.
    check_rate(
        44_100,
        &[(9_000.0, 7_000.0), (12_000.0, 4_000.0), (15_000.0, 1_000.0)],
    );
}

#[test]
fn rate_48k_is_flat_without_aliases() {
    check_rate(
        48_000,
        &[(9_000.0, 7_000.0), (12_000.0, 4_000.0), (20_000.0, 4_000.0)],
    );
}

#[test]
fn rate_22k05_is_flat_without_aliases() {
    check_rate(22_050, &[(9_000.0, 7_000.0), (10_500.0, 5_500.0)]);
}

/// The two-stage FIR path for 32–48 kHz input (`downsample32`) against its own, tighter
/// specification: flat within ±0.5 dB to 7 kHz, and everything from 9 kHz up — which would fold
/// into the 0–7 kHz speech band — at least 60 dB down.
#[test]
fn fir_path_for_44k1_and_48k_meets_its_response() {
    for rate in [44_100u32, 48_000] {
        for freq in [300.0, 1_000.0, 3_500.0, 5_000.0, 6_500.0, 7_000.0] {
            let out = resample(rate, &tone(rate, freq, 1.0, 0.5));
            let gain = db(amplitude_at(&out, freq) / 0.5);
            println!("{rate} Hz: {freq} Hz passes at {gain:+.3} dB");
            assert!(
                gain.abs() <= 0.5,
                "{rate} Hz: {freq} Hz changed by {gain:.2} dB"
            );
        }
        let top = f64::from(rate) / 2.0 - 100.0;
        for freq in [
            9_000.0, 9_200.0, 9_500.0, 10_000.0, 11_000.0, 12_000.0, 15_000.0, 18_000.0, 20_000.0,
            top,
        ] {
            // At 16 kHz a tone at f folds to the distance from the nearest multiple of 16 kHz.
            let lands_at = (freq - 16_000.0 * (freq / 16_000.0).round()).abs();
            let out = resample(rate, &tone(rate, freq, 1.0, 0.5));
            let leak = db(amplitude_at(&out, lands_at) / 0.5);
            println!("{rate} Hz: {freq} Hz leaks to {lands_at} Hz at {leak:.1} dB");
            assert!(
                leak <= -60.0,
                "{rate} Hz: {freq} Hz leaks to {lands_at} Hz at {leak:.1} dB"
            );
        }
    }
    // Stage 1 (44.1 → 32 kHz) also makes images at 44.1 kHz − f; at 32 kHz those of 12.1–20.6 kHz
    // tones fold to f − 12.1 kHz, inside the band that stage 2 keeps.
    for freq in [15_000.0, 18_000.0, 20_000.0] {
        let lands_at = freq - 12_100.0;
        let out = resample(44_100, &tone(44_100, freq, 1.0, 0.5));
        let leak = db(amplitude_at(&out, lands_at) / 0.5);
        println!("44100 Hz: {freq} Hz images to {lands_at} Hz at {leak:.1} dB");
        assert!(
            leak <= -60.0,
            "{freq} Hz images to {lands_at} Hz at {leak:.1} dB"
        );
    }
}
