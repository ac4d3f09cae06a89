//! The pieces a PCMU ⇄ Opus bridge chains together, on real speech: G.711 decode,
//! resample, Opus encode/decode, resample back, G.711 encode. The result must still be the
//! speech, delayed by exactly what the parts report.

mod common;

use callscope_media::codec::{
    AudioEncoder, CodecSpec, OpusEncoder, OpusEncoderConfig, Resampler, decoder_at_rate,
    decoder_for, encoder_at_rate, encoder_for,
};
use common::{best_correlation, speech};

/// Encodes `pcm` frame by frame with `spec`'s encoder and decodes it again.
fn g711_round_trip(spec: &CodecSpec, pcm: &[i16]) -> Vec<i16> {
    let mut enc = encoder_for(spec).unwrap();
    let mut dec = decoder_for(spec).unwrap();
    let mut out = Vec::new();
    let mut payload = Vec::new();
    for frame in pcm.chunks_exact(enc.frame_samples()) {
        enc.encode(frame, &mut payload).unwrap();
        dec.decode(&payload, &mut out).unwrap();
    }
    out
}

#[test]
fn pcmu_to_opus_48k_and_back_keeps_the_speech_at_the_reported_delay() {
    let dir = tempfile::tempdir().unwrap();
    let source = speech(dir.path(), 8000);
    let pcmu = CodecSpec::pcmu();
    let caller = g711_round_trip(&pcmu, &source);

    // Leg A (PCMU, 8 kHz) → leg B (Opus at 48 kHz), 20 ms at a time.
    let mut up = Resampler::new(8000, 48000).unwrap();
    let mut down = Resampler::new(48000, 8000).unwrap();
    let mut opus_enc = OpusEncoder::new(OpusEncoderConfig::default()).unwrap();
    let lookahead = opus_enc.lookahead().unwrap();
    let mut opus_dec = decoder_for(&CodecSpec::opus(111)).unwrap();
    let (mut wide, mut payload, mut decoded, mut back) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for frame in caller.chunks_exact(160) {
        wide.clear();
        up.process(frame, &mut wide);
        assert_eq!(wide.len(), 960);
        opus_enc.encode(&wide, &mut payload).unwrap();
        decoded.clear();
        opus_dec.decode(&payload, &mut decoded).unwrap();
        down.process(&decoded, &mut back);
    }
    assert_eq!(back.len(), caller.len() - caller.len() % 160);
    let callee = g711_round_trip(&pcmu, &back[..back.len() - back.len() % 160]);

    // Delay in 8 kHz samples: up-resampler (96 at 48k = 16), Opus look-ahead (at 48k),
    // down-resampler (16).
    let expected = up.delay_samples() / 6 + lookahead / 6 + down.delay_samples();
    let (lag, corr) = best_correlation(&source, &callee, 400);
    eprintln!("PCMU→Opus48k→PCMU: correlation {corr:.4} at lag {lag} (parts say {expected})");
    assert!(corr >= 0.85, "correlation {corr:.3} at lag {lag}");
    assert!(
        lag.abs_diff(expected) <= 2,
        "lag {lag}, expected {expected}"
    );
}

#[test]
fn pcma_to_opus_at_8k_needs_no_resampler() {
    let dir = tempfile::tempdir().unwrap();
    let source = speech(dir.path(), 8000);
    let caller = g711_round_trip(&CodecSpec::pcma(), &source);
    let opus = CodecSpec::opus(111);
    let mut enc = encoder_at_rate(&opus, 8000).unwrap();
    let mut dec = decoder_at_rate(&opus, 8000).unwrap();
    let mut payload = Vec::new();
    let mut out = Vec::new();
    for frame in caller.chunks_exact(enc.frame_samples()) {
        enc.encode(frame, &mut payload).unwrap();
        dec.decode(&payload, &mut out).unwrap();
    }
    let callee = g711_round_trip(&CodecSpec::pcma(), &out);
    let (lag, corr) = best_correlation(&source, &callee, 400);
    eprintln!("PCMA→Opus8k→PCMA: correlation {corr:.4} at lag {lag}");
    assert!(corr >= 0.85, "correlation {corr:.3} at lag {lag}");
}
