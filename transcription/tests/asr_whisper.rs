//! The whisper engine with real whisper.cpp inference on a generated random-weight model.
//! The model's words are nonsense; these tests check structure, times and errors.

#[path = "support/model_gen.rs"]
mod model_gen;

use std::sync::Arc;

use callscope_transcription::asr::{WhisperConfig, WhisperEngine};
use callscope_transcription::{AsrEngine, AsrSegment, TranscriptionError};
use model_gen::{fixtures_dir, random_model_in_tempdir, read_wav_16k_mono, vocab_only_model};

fn config() -> WhisperConfig {
    WhisperConfig {
        threads: 1,
        ..WhisperConfig::default()
    }
}

fn jfk() -> Vec<f32> {
    read_wav_16k_mono(&fixtures_dir().join("audio/jfk.wav"))
}

fn model_error(result: Result<WhisperEngine, TranscriptionError>) -> String {
    match result {
        Err(TranscriptionError::Model(msg)) => msg,
        Err(other) => panic!("expected a Model error, got {other:?}"),
        Ok(engine) => panic!("expected a Model error, loaded {}", engine.name()),
    }
}

fn assert_segments_inside(segments: &[AsrSegment], audio_ms: u64) {
    for s in segments {
        assert!(
            s.start_ms <= s.end_ms,
            "segment {s:?} ends before it starts"
        );
        assert!(
            s.end_ms <= audio_ms,
            "segment {s:?} ends after the audio ({audio_ms} ms)"
        );
        assert!(!s.text.trim().is_empty(), "empty segment text kept: {s:?}");
        let c = s.confidence.expect("segments with text have a confidence");
        assert!((0.0..=1.0).contains(&c), "confidence {c} out of [0, 1]");
        for w in &s.words {
            assert!(
                s.start_ms <= w.start_ms && w.start_ms <= w.end_ms && w.end_ms <= s.end_ms,
                "word {w:?} outside its segment {}..{}",
                s.start_ms,
                s.end_ms
            );
            assert!(!w.text.is_empty());
        }
    }
}

#[test]
fn loads_a_generated_model_and_reports_its_shape() {
    let (_dir, path) = random_model_in_tempdir();
    let engine = WhisperEngine::load(&path, config()).expect("random model loads");
    assert_eq!(engine.name(), "whisper:ggml-random-tiny.en");
    let summary = engine.summary();
    // 7 encoder + 15 per encoder layer + 4 decoder + 24 per decoder layer.
    assert_eq!(summary.n_tensors, 7 + 15 + 4 + 24);
    assert!(!summary.multilingual);
    assert_eq!(summary.hparams.n_audio_state, 64);
}

#[test]
fn transcribes_jfk_into_segments_that_lie_inside_the_audio() {
    let (_dir, path) = random_model_in_tempdir();
    let engine = WhisperEngine::load(&path, config()).expect("load");
    let audio = jfk();
    let audio_ms = audio.len() as u64 * 1000 / 16_000;
    assert!(
        (10_900..=11_100).contains(&audio_ms),
        "jfk.wav is 11 s, got {audio_ms} ms"
    );

    let started = std::time::Instant::now();
    let segments = engine.transcribe(&audio, Some("en")).expect("transcribe");
    eprintln!(
        "{} segments in {:?}; first: {:?}",
        segments.len(),
        started.elapsed(),
        segments.first()
    );
    assert!(!segments.is_empty(), "whisper.cpp returned no segment");
    assert_segments_inside(&segments, audio_ms);
    let words: usize = segments.iter().map(|s| s.words.len()).sum();
    assert!(
        words > 0,
        "token timestamps were requested but no word came back"
    );
    // Segments come in time order.
    for pair in segments.windows(2) {
        assert!(
            pair[0].start_ms <= pair[1].start_ms,
            "{pair:?} out of order"
        );
    }
}

#[test]
fn without_word_timestamps_segments_carry_no_words() {
    let (_dir, path) = random_model_in_tempdir();
    let engine = WhisperEngine::load(
        &path,
        WhisperConfig {
            word_timestamps: false,
            ..config()
        },
    )
    .expect("load");
    let audio = jfk();
    let segments = engine
        .transcribe(&audio[..16_000 * 3], None)
        .expect("transcribe");
    assert!(!segments.is_empty());
    assert!(segments.iter().all(|s| s.words.is_empty()));
    assert_segments_inside(&segments, 3_000);
}

#[test]
fn one_engine_serves_two_threads_with_the_same_results_as_one() {
    let (_dir, path) = random_model_in_tempdir();
    let engine = Arc::new(WhisperEngine::load(&path, config()).expect("load"));
    let audio = Arc::new(jfk());
    let first_half = 16_000 * 5;

    let expected_full = engine.transcribe(&audio, None).expect("sequential full");
    let expected_half = engine
        .transcribe(&audio[..first_half], None)
        .expect("sequential half");

    let handles: Vec<_> = [None, Some(first_half)]
        .into_iter()
        .map(|cut| {
            let engine = Arc::clone(&engine);
            let audio = Arc::clone(&audio);
            std::thread::spawn(move || {
                let input = match cut {
                    Some(n) => &audio[..n],
                    None => &audio[..],
                };
                engine.transcribe(input, None)
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("thread did not panic").expect("transcribe"))
        .collect();
    assert_eq!(
        results[0], expected_full,
        "concurrent full-audio result differs"
    );
    assert_eq!(
        results[1], expected_half,
        "concurrent half-audio result differs"
    );
}

#[test]
fn empty_audio_gives_no_segments_and_bad_samples_an_error() {
    let (_dir, path) = random_model_in_tempdir();
    let engine = WhisperEngine::load(&path, config()).expect("load");
    assert_eq!(engine.transcribe(&[], None).expect("empty"), Vec::new());
    let mut audio = vec![0.0f32; 16_000];
    audio[100] = f32::NAN;
    match engine.transcribe(&audio, None) {
        Err(TranscriptionError::Asr(msg)) => assert!(msg.contains("NaN"), "{msg}"),
        other => panic!("expected an Asr error, got {other:?}"),
    }
}

#[test]
fn unknown_or_hostile_language_codes_are_errors_not_panics() {
    let (_dir, path) = random_model_in_tempdir();
    let engine = WhisperEngine::load(&path, config()).expect("load");
    let audio = vec![0.0f32; 16_000];
    for lang in ["xx", "en\0", "", "english-but-much-too-long"] {
        match engine.transcribe(&audio, Some(lang)) {
            Err(TranscriptionError::Asr(msg)) => assert!(msg.contains("language"), "{msg}"),
            other => panic!("language {lang:?}: expected an Asr error, got {other:?}"),
        }
    }
    let bad_config = WhisperConfig {
        language: Some("zz".into()),
        ..config()
    };
    assert!(matches!(
        WhisperEngine::load(&path, bad_config),
        Err(TranscriptionError::Asr(_))
    ));
}

#[test]
fn missing_file_and_directory_are_model_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let msg = model_error(WhisperEngine::load(dir.path().join("nope.bin"), config()));
    assert!(msg.contains("not found"), "{msg}");
    let msg = model_error(WhisperEngine::load(dir.path(), config()));
    assert!(msg.contains("not a regular file"), "{msg}");
}

#[test]
fn random_bytes_are_not_a_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("random.bin");
    let mut state = 0x1234_5678u32;
    let bytes: Vec<u8> = (0..100_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect();
    std::fs::write(&path, &bytes).expect("write");
    let msg = model_error(WhisperEngine::load(&path, config()));
    assert!(msg.contains("not a whisper ggml model"), "{msg}");

    // The right magic followed by garbage must still be refused.
    let mut with_magic = 0x6767_6d6cu32.to_le_bytes().to_vec();
    with_magic.extend_from_slice(&bytes);
    std::fs::write(&path, &with_magic).expect("write");
    let msg = model_error(WhisperEngine::load(&path, config()));
    assert!(msg.contains("implausible model header"), "{msg}");

    std::fs::write(&path, b"").expect("write");
    let msg = model_error(WhisperEngine::load(&path, config()));
    assert!(msg.contains("ends early"), "{msg}");
}

#[test]
fn truncated_models_are_refused_wherever_they_are_cut() {
    let (dir, path) = random_model_in_tempdir();
    let full = std::fs::read(&path).expect("read");
    let cut_path = dir.path().join("cut.bin");
    // Inside the header, the mel filters, the vocabulary, a tensor header, and 1 byte short
    // of the end (inside the last tensor's data: whisper.cpp alone would accept that).
    for cut in [20, 30_000, 400_000, 586_840, full.len() - 1] {
        std::fs::write(&cut_path, &full[..cut]).expect("write");
        let msg = model_error(WhisperEngine::load(&cut_path, config()));
        assert!(
            msg.contains("ends early") || msg.contains("lacks"),
            "cut at {cut}: {msg}"
        );
    }
}

#[test]
fn a_vocabulary_only_model_is_refused_with_a_clear_message() {
    let msg = model_error(WhisperEngine::load(vocab_only_model(), config()));
    assert!(msg.contains("no weights"), "{msg}");
    let multi = fixtures_dir().join("models/for-tests-ggml-tiny.bin");
    let msg = model_error(WhisperEngine::load(multi, config()));
    assert!(msg.contains("no weights"), "{msg}");
}

#[test]
fn a_model_missing_tensors_is_refused() {
    let (dir, path) = random_model_in_tempdir();
    let full = std::fs::read(&path).expect("read");
    // The last tensor is decoder.ln.bias: 64 f32 values + its 3+1 header ints + 15-byte name.
    let last_tensor = 4 * 4 + "decoder.ln.bias".len() + 64 * 4;
    let shorter = dir.path().join("short.bin");
    std::fs::write(&shorter, &full[..full.len() - last_tensor]).expect("write");
    let msg = model_error(WhisperEngine::load(&shorter, config()));
    assert!(msg.contains("lacks 1 of its 50 tensors"), "{msg}");
}
