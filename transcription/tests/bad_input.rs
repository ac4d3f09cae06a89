//! Hostile and damaged inputs: a clear error or the recoverable audio, never a panic.

mod common;

use std::path::{Path, PathBuf};

use callscope_transcription::TranscriptionError;
use callscope_transcription::decode::StreamDecoder;
use callscope_transcription::pipeline::{PipelineOptions, probe, run_file_utterances};
use common::*;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write test file");
    p
}

fn decode_all(path: &Path) -> Result<u64, TranscriptionError> {
    run_file_utterances(path, &PipelineOptions::default(), &mut |_| {})
        .map(|(info, _)| info.duration_ms)
}

#[test]
fn zero_bytes_is_empty_audio() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "empty.wav", &[]);
    assert!(matches!(probe(&p), Err(TranscriptionError::EmptyAudio)));
    let err = decode_all(&p).unwrap_err();
    assert_eq!(err.code(), "empty_audio");
    assert!(err.is_bad_input());
}

#[test]
fn random_bytes_are_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    for (i, len) in [1usize, 7, 100, 4096, 200_000].into_iter().enumerate() {
        let p = write(
            dir.path(),
            &format!("random{i}.wav"),
            &pseudo_random_bytes(i as u64 + 11, len),
        );
        let err = probe(&p).expect_err("random bytes must not probe");
        assert_eq!(err.code(), "unsupported_format", "len {len}: {err}");
        assert!(decode_all(&p).is_err());
    }
    // Plain text with an audio extension too.
    let p = write(
        dir.path(),
        "notes.mp3",
        b"this is not audio at all, just a text file\n",
    );
    assert_eq!(probe(&p).unwrap_err().code(), "unsupported_format");
}

#[test]
fn header_only_wav_is_empty_audio() {
    let call = scripted_call();
    let bytes = std::fs::read(&call.master).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // hound writes a 44-byte canonical header.
    let p = write(dir.path(), "header_only.wav", &bytes[..44]);
    let err = decode_all(&p).unwrap_err();
    assert_eq!(err.code(), "empty_audio", "{err}");
}

#[test]
fn truncated_wav_decodes_what_is_there() {
    let call = scripted_call();
    let bytes = std::fs::read(&call.master).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keep = 44 + (bytes.len() - 44) / 2;
    let p = write(dir.path(), "half.wav", &bytes[..keep]);
    let ms = decode_all(&p).expect("truncated wav still has audio");
    let expected = ((keep - 44) / 4) as u64 * 1000 / 16_000;
    assert!(
        ms.abs_diff(expected) <= 2,
        "decoded {ms} ms, {expected} ms present"
    );
}

#[test]
fn wav_header_claiming_more_data_reports_real_duration() {
    let call = scripted_call();
    let mut bytes = std::fs::read(&call.master).unwrap();
    // data chunk size is at bytes 40..44 in a canonical header; RIFF size at 4..8.
    assert_eq!(&bytes[36..40], b"data");
    let real = u32::from_le_bytes(bytes[40..44].try_into().unwrap());
    bytes[40..44].copy_from_slice(&(real * 10).to_le_bytes());
    bytes[4..8].copy_from_slice(&(real * 10 + 36).to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "liar.wav", &bytes);
    let probed = probe(&p).expect("probe");
    assert!(
        probed.duration_ms > call.duration_ms * 5,
        "the header claims 10x: {}",
        probed.duration_ms
    );
    let ms = decode_all(&p).expect("decode");
    assert!(
        ms.abs_diff(call.duration_ms) <= 2,
        "decoded {ms} ms, real {} ms",
        call.duration_ms
    );
}

#[test]
fn truncated_mp3_decodes_what_is_there() {
    let call = scripted_call();
    let enc = ENCODINGS.iter().find(|e| e.codec == "mp3").unwrap();
    let bytes = std::fs::read(encode(call, enc)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "cut.mp3", &bytes[..bytes.len() * 6 / 10]);
    let ms = decode_all(&p).expect("truncated mp3 still has audio");
    let expected = call.duration_ms * 6 / 10;
    assert!(
        ms.abs_diff(expected) <= 400,
        "decoded {ms} ms, about {expected} ms present"
    );
    // Cut inside the first frames: an error, not a panic.
    let p = write(dir.path(), "stub.mp3", &bytes[..bytes.len().min(300)]);
    if let Err(e) = decode_all(&p) {
        assert!(e.is_bad_input(), "{e}");
    }
}

#[test]
fn corrupt_middle_decodes_or_fails_cleanly_for_every_format() {
    let call = scripted_call();
    let dir = tempfile::tempdir().unwrap();
    for enc in ENCODINGS {
        let mut bytes = std::fs::read(encode(call, enc)).unwrap();
        let len = bytes.len();
        let noise = pseudo_random_bytes(len as u64, len / 10);
        bytes[len * 4 / 10..len * 4 / 10 + noise.len()].copy_from_slice(&noise);
        let p = write(dir.path(), &format!("corrupt_{}", enc.file), &bytes);
        match decode_all(&p) {
            Ok(ms) => assert!(
                ms > 0 && ms <= call.duration_ms * 3,
                "{}: {ms} ms",
                enc.name
            ),
            Err(e) => assert!(e.is_bad_input(), "{}: {e}", enc.name),
        }
    }
}

#[test]
fn stereo_layout_on_mono_file_is_a_layout_mismatch() {
    let call = scripted_call();
    let mono = call.dir.join("mono_for_layout.wav");
    run(std::process::Command::new("sox")
        .arg(&call.master)
        .arg(&mono)
        .args(["remix", "1,2"]));
    let opts = PipelineOptions {
        layout: callscope_transcription::ChannelLayout::StereoAgentLeft,
        ..Default::default()
    };
    let err = run_file_utterances(&mono, &opts, &mut |_| {}).unwrap_err();
    assert!(
        matches!(err, TranscriptionError::LayoutMismatch { channels: 1, .. }),
        "{err}"
    );
    assert_eq!(err.code(), "channel_layout_mismatch");
}

#[test]
fn decoder_from_bytes_matches_file_decoder() {
    let call = scripted_call();
    let bytes = std::fs::read(&call.master).unwrap();
    let mut dec = StreamDecoder::from_bytes(bytes).expect("open");
    let mut chunk = Vec::new();
    let mut frames = 0u64;
    while dec.next_chunk(&mut chunk).expect("decode") {
        assert_eq!(chunk.len(), 2);
        assert_eq!(chunk[0].len(), chunk[1].len());
        frames += chunk[0].len() as u64;
    }
    assert_eq!(frames * 1000 / 16_000, call.duration_ms);
}
