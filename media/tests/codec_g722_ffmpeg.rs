//! Our G.722 (written from the ITU-T Recommendation) against an independent implementation,
//! FFmpeg's `g722` codec: decoding FFmpeg's bitstream must give FFmpeg's samples, and FFmpeg
//! must decode our bitstream to the source speech. (Both directions turn out bit-exact:
//! decoder output and encoder bytes.)

mod common;

use std::path::Path;

use callscope_media::codec::{
    AudioDecoder, AudioEncoder, CodecSpec, G722Decoder, G722Encoder, decoder_for, encoder_for,
};
use common::{Rng, best_correlation, path, run, speech, write_wav};

fn ffmpeg(args: &[&str]) {
    let mut all = vec!["-hide_banner", "-loglevel", "error", "-y"];
    all.extend_from_slice(args);
    run("ffmpeg", &all);
}

/// FFmpeg's decode of a raw G.722 file as 16 kHz s16le samples.
fn ffmpeg_decode(dir: &Path, g722: &str) -> Vec<i16> {
    let out = path(dir, "ffmpeg_decoded.raw");
    ffmpeg(&[
        "-f",
        "g722",
        "-i",
        g722,
        "-c:a",
        "pcm_s16le",
        "-f",
        "s16le",
        &out,
    ]);
    std::fs::read(&out)
        .unwrap()
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

fn our_decode(bytes: &[u8]) -> Vec<i16> {
    let mut dec = decoder_for(&CodecSpec::g722()).unwrap();
    assert_eq!(dec.sample_rate(), 16000);
    let mut out = Vec::new();
    // 20 ms RTP payloads, as the media path feeds it.
    for payload in bytes.chunks(160) {
        let n = dec.decode(payload, &mut out).unwrap();
        assert_eq!(n, payload.len() * 2);
    }
    out
}

/// (samples differing, largest difference).
fn compare(ours: &[i16], theirs: &[i16]) -> (usize, i32) {
    assert_eq!(ours.len(), theirs.len());
    ours.iter().zip(theirs).fold((0, 0), |(n, max), (a, b)| {
        let d = (i32::from(*a) - i32::from(*b)).abs();
        (n + usize::from(d != 0), max.max(d))
    })
}

#[test]
fn decoding_ffmpegs_bitstream_matches_ffmpeg_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let source = speech(dir.path(), 16000);
    let wav = path(dir.path(), "source.wav");
    write_wav(Path::new(&wav), 16000, &source);
    let g722 = path(dir.path(), "ffmpeg.g722");
    ffmpeg(&[
        "-i", &wav, "-ar", "16000", "-ac", "1", "-c:a", "g722", "-f", "g722", &g722,
    ]);
    let bytes = std::fs::read(&g722).unwrap();
    assert_eq!(bytes.len(), source.len() / 2, "one byte per two samples");
    let theirs = ffmpeg_decode(dir.path(), &g722);
    let ours = our_decode(&bytes);
    let (differing, max) = compare(&ours, &theirs);
    eprintln!(
        "FFmpeg bitstream: {differing} of {} samples differ, max {max}",
        ours.len()
    );
    assert_eq!((differing, max), (0, 0), "bit-exact with FFmpeg's decoder");
    // Our encoder on the same input: how many bytes equal FFmpeg's encoder's?
    let mut enc = G722Encoder::new();
    let mut mine = Vec::new();
    let mut payload = Vec::new();
    for frame in source.chunks_exact(320) {
        enc.encode(frame, &mut payload).unwrap();
        mine.extend_from_slice(&payload);
    }
    let same = mine.iter().zip(&bytes).filter(|(a, b)| a == b).count();
    eprintln!("encoders agree on {same} of {} bytes", mine.len());
    assert_eq!(same, mine.len(), "our encoder's bitstream equals FFmpeg's");
    let (lag, corr) = best_correlation(&source, &ours, 100);
    assert!(
        corr >= 0.95,
        "decoded speech correlation {corr:.3} at lag {lag}"
    );
}

#[test]
fn ffmpeg_decodes_our_bitstream_to_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let source = speech(dir.path(), 16000);
    let mut enc = encoder_for(&CodecSpec::g722()).unwrap();
    assert_eq!(enc.frame_samples(), 320);
    let mut bytes = Vec::new();
    let mut payload = Vec::new();
    for frame in source.chunks_exact(320) {
        enc.encode(frame, &mut payload).unwrap();
        assert_eq!(payload.len(), 160);
        bytes.extend_from_slice(&payload);
    }
    let g722 = path(dir.path(), "ours.g722");
    std::fs::write(&g722, &bytes).unwrap();
    let theirs = ffmpeg_decode(dir.path(), &g722);
    assert_eq!(theirs.len(), bytes.len() * 2);
    let (lag, corr) = best_correlation(&source, &theirs, 100);
    eprintln!("FFmpeg decoding our stream: correlation {corr:.4} at lag {lag}");
    assert!(corr >= 0.95, "correlation {corr:.3} at lag {lag}");
    // The QMF pair delays by 23 samples; the ADPCM adds none.
    assert!((21..=25).contains(&lag), "lag {lag}");
    // And our decoder agrees with FFmpeg's on our own stream too.
    let (differing, max) = compare(&our_decode(&bytes), &theirs);
    assert_eq!((differing, max), (0, 0));
}

#[test]
fn random_bytes_decode_exactly_like_ffmpeg() {
    // Random codes drive the predictor into its saturation and limiting paths, which
    // speech rarely reaches: the place where implementations drift apart.
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x0722_0722_0722);
    let bytes = rng.bytes(8000 * 5);
    let file = path(dir.path(), "random.g722");
    std::fs::write(&file, &bytes).unwrap();
    let theirs = ffmpeg_decode(dir.path(), &file);
    let ours = our_decode(&bytes);
    let (differing, max) = compare(&ours, &theirs);
    eprintln!(
        "random bitstream: {differing} of {} samples differ, max {max}",
        ours.len()
    );
    assert_eq!((differing, max), (0, 0));
}

#[test]
fn full_scale_input_does_not_break_the_round_trip() {
    // A clipped square wave at full scale: the encoder's QMF and quantiser must saturate,
    // not overflow, and the decoder must follow.
    let square: Vec<i16> = (0..16000)
        .map(|n| {
            if (n / 40) % 2 == 0 {
                i16::MAX
            } else {
                i16::MIN
            }
        })
        .collect();
    let mut enc = G722Encoder::new();
    let mut dec = G722Decoder::new();
    let mut out = Vec::new();
    let mut payload = Vec::new();
    for frame in square.chunks_exact(320) {
        enc.encode(frame, &mut payload).unwrap();
        dec.decode(&payload, &mut out).unwrap();
    }
    let (lag, corr) = best_correlation(&square, &out, 100);
    assert!(
        corr >= 0.9,
        "square wave correlation {corr:.3} at lag {lag}"
    );
}
