//! The model-file check that runs before whisper.cpp: hostile header fields, one at a time.

#[path = "support/model_gen.rs"]
mod model_gen;

use callscope_transcription::TranscriptionError;
use callscope_transcription::asr::{
    ModelFileError, WhisperConfig, WhisperEngine, validate_model_file,
};
use model_gen::random_model_in_tempdir;

/// Where the generated model's sections start (its vocabulary and mel filters are the
/// fixture's: 80×201 filters, 50 257 tokens).
const N_VOCAB_AT: usize = 4;
const N_AUDIO_STATE_AT: usize = 12;
const N_MELS_AT: usize = 40;
const FTYPE_AT: usize = 44;
const N_FFT_AT: usize = 52;
const VOCAB_COUNT_AT: usize = 56 + 80 * 201 * 4;
const FIRST_TOKEN_LEN_AT: usize = VOCAB_COUNT_AT + 4;
const FIRST_TENSOR_AT: usize = 586_836;

fn patched(bytes: &[u8], at: usize, value: i32) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at..at + 4].copy_from_slice(&value.to_le_bytes());
    out
}

#[test]
fn each_hostile_field_is_refused_with_its_own_reason() {
    let (dir, path) = random_model_in_tempdir();
    let good = std::fs::read(&path).expect("read");
    // Sanity: the offsets above point where we think they do.
    assert_eq!(
        i32::from_le_bytes(
            good[FIRST_TENSOR_AT + 4..FIRST_TENSOR_AT + 8]
                .try_into()
                .unwrap()
        ),
        28
    );
    let summary = validate_model_file(&path).expect("generated model is valid");
    assert_eq!(summary.n_tensors, 50);
    assert_eq!(summary.file_bytes, good.len() as u64);

    let first_name_at = FIRST_TENSOR_AT + 12 + 2 * 4;
    let mut renamed = good.clone();
    renamed[first_name_at] = b'X';
    let mut reshaped = good.clone();
    reshaped[FIRST_TENSOR_AT + 12..FIRST_TENSOR_AT + 16].copy_from_slice(&65i32.to_le_bytes());

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "huge n_vocab",
            patched(&good, N_VOCAB_AT, i32::MAX),
            "n_vocab",
        ),
        (
            "negative state",
            patched(&good, N_AUDIO_STATE_AT, -5),
            "state",
        ),
        ("odd n_mels", patched(&good, N_MELS_AT, 1000), "n_mels"),
        ("unknown ftype", patched(&good, FTYPE_AT, 5), "ftype"),
        (
            "huge mel filter bank",
            patched(&good, N_FFT_AT, 1 << 30),
            "mel filter bank",
        ),
        (
            "negative vocabulary",
            patched(&good, VOCAB_COUNT_AT, -1),
            "vocabulary of -1",
        ),
        (
            "negative token length",
            patched(&good, FIRST_TOKEN_LEN_AT, i32::MIN),
            "token 0 has length",
        ),
        (
            "99-dimensional tensor",
            patched(&good, FIRST_TENSOR_AT, 99),
            "99 dimensions",
        ),
        (
            "huge tensor name",
            patched(&good, FIRST_TENSOR_AT + 4, 1 << 30),
            "name of",
        ),
        (
            "unknown tensor type",
            patched(&good, FIRST_TENSOR_AT + 8, 77),
            "unknown type 77",
        ),
        (
            "f16 where f32 is needed",
            patched(&good, FIRST_TENSOR_AT + 8, 1),
            "cannot load",
        ),
        ("unknown tensor", renamed, "unknown or repeated tensor"),
        ("wrong shape", reshaped, "has shape [65, 1500]"),
    ];
    let bad_path = dir.path().join("bad.bin");
    for (what, bytes, expected) in cases {
        std::fs::write(&bad_path, &bytes).expect("write");
        let err = validate_model_file(&bad_path).expect_err(what);
        assert!(err.to_string().contains(expected), "{what}: {err}");
        match WhisperEngine::load(&bad_path, WhisperConfig::default()) {
            Err(TranscriptionError::Model(msg)) => assert!(msg.contains(expected), "{what}: {msg}"),
            other => panic!("{what}: expected a Model error, got {other:?}"),
        }
    }
}

#[test]
fn a_repeated_tensor_is_refused() {
    let (dir, path) = random_model_in_tempdir();
    let mut bytes = std::fs::read(&path).expect("read");
    // Append a second copy of the last tensor (decoder.ln.bias, f32 × 64).
    let last = 4 * 4 + "decoder.ln.bias".len() + 64 * 4;
    let tail = bytes[bytes.len() - last..].to_vec();
    bytes.extend_from_slice(&tail);
    let twice = dir.path().join("twice.bin");
    std::fs::write(&twice, &bytes).expect("write");
    assert_eq!(
        validate_model_file(&twice),
        Err(ModelFileError::BadTensor(
            "unknown or repeated tensor 'decoder.ln.bias'".into()
        ))
    );
}

#[test]
fn the_vocabulary_only_fixture_is_reported_as_such() {
    assert_eq!(
        validate_model_file(&model_gen::vocab_only_model()),
        Err(ModelFileError::NoWeights)
    );
}
