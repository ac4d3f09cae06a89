//! `[diarization] speaker_model`: the server loads an ONNX speaker-embedding model at start,
//! says so in `/healthz`, and clusters mono uploads by it; a model that cannot load stops
//! the start with a clear error. The model is an untrained spectral-envelope network built
//! by `inference/tests/speaker_model/build_and_run.py` (no trained one can be downloaded
//! here); ONNX Runtime comes from the venv `scripts/setup` fills.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use callscope_api::http::state::AsrState;
use callscope_api::server;
use common::*;

const BUILD_MODELS: &str = include_str!("../../inference/tests/speaker_model/build_and_run.py");

/// Builds the test models into `dir`; `None` (test skipped) without ONNX Runtime.
fn build_models(dir: &Path) -> Option<PathBuf> {
    if callscope_inference::locate_onnxruntime(None).is_none() {
        eprintln!("SKIPPED: ONNX Runtime not installed (run scripts/setup)");
        return None;
    }
    let out = Command::new(callscope_inference::venv_python())
        .arg("-c")
        .arg(BUILD_MODELS)
        .arg(dir)
        .output()
        .expect("run the venv's python");
    assert!(
        out.status.success(),
        "building the models failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(dir.join("wave.onnx"))
}

/// Uploads the mono call and returns its segments' (label, role, start_ms) once processed.
async fn speakers_of_upload(s: &TestServer, audio: &Path) -> Vec<(String, String, u64)> {
    let (_, key) = s.org("Acme").await;
    let (status, body) = s
        .upload(
            &key,
            "mono.wav",
            std::fs::read(audio).unwrap(),
            &[("channel_layout", "mono")],
            None,
        )
        .await;
    assert!(
        status == 200 || status == 201 || status == 202,
        "{status} {body}"
    );
    let id = body["id"].as_str().expect("call id").to_string();
    let call = s.wait_done(&key, &id).await;
    assert_eq!(call["status"], "transcription_unavailable", "{call}");
    call["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|seg| {
            (
                seg["speaker_label"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                seg["speaker_role"].as_str().unwrap_or_default().to_string(),
                seg["start_ms"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn mono_uploads_are_clustered_by_the_configured_speaker_model() {
    let models = tempfile::tempdir().unwrap();
    let Some(model) = build_models(models.path()) else {
        return;
    };
    let audio = mono_two_voice_call(models.path());

    let s = TestServer::start(|c| {
        c.diarization.speaker_model = Some(model.clone());
        // This untrained model's same-voice windows score ≥ 0.71, other-voice ≤ 0.66.
        c.diarization.similarity_threshold = 0.7;
    })
    .await;
    let (status, health) = s.get_json("", "/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(health["diarization"]["clustering"], "speaker_embeddings");
    assert_eq!(health["diarization"]["model"], "onnx:wave");

    let segments = speakers_of_upload(&s, &audio).await;
    eprintln!("{segments:?}");
    let labels: BTreeSet<&str> = segments.iter().map(|(l, _, _)| l.as_str()).collect();
    assert_eq!(labels.len(), 2, "{segments:?}");
    for (label, role, start_ms) in &segments {
        // The agent speaks from 0.5 s to about 4 s, the customer from 5 s.
        let expected = if *start_ms < 4_700 {
            ("Speaker 1", "agent")
        } else {
            ("Speaker 2", "customer")
        };
        assert_eq!((label.as_str(), role.as_str()), expected, "{segments:?}");
    }
    s.running.shutdown().await;

    // The setting is what decides: with a threshold every pair passes, the same model puts
    // both voices in one cluster (voice statistics, which ignore it, would not).
    let s = TestServer::start(|c| {
        c.diarization.speaker_model = Some(model.clone());
        c.diarization.similarity_threshold = -1.0;
    })
    .await;
    let segments = speakers_of_upload(&s, &audio).await;
    let labels: BTreeSet<&str> = segments.iter().map(|(l, _, _)| l.as_str()).collect();
    assert_eq!(labels, BTreeSet::from(["Speaker 1"]), "{segments:?}");
    s.running.shutdown().await;

    // And without a model the voice statistics separate the same call.
    let s = TestServer::start(|_| {}).await;
    let (_, health) = s.get_json("", "/healthz").await;
    assert_eq!(health["diarization"]["clustering"], "voice_statistics");
    let segments = speakers_of_upload(&s, &audio).await;
    let labels: BTreeSet<&str> = segments.iter().map(|(l, _, _)| l.as_str()).collect();
    assert_eq!(labels.len(), 2, "{segments:?}");
    s.running.shutdown().await;
}

#[tokio::test]
async fn a_speaker_model_that_cannot_load_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    if callscope_inference::locate_onnxruntime(None).is_none() {
        eprintln!("SKIPPED: ONNX Runtime not installed (run scripts/setup)");
        return;
    }
    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"not an onnx model at all").unwrap();
    for path in [junk, dir.path().join("absent.onnx")] {
        let mut config = test_config(dir.path());
        config.diarization.speaker_model = Some(path.clone());
        let pool = server::open_database(&config).await.unwrap();
        let err = match server::start_with(pool, config, AsrState::NotConfigured).await {
            Ok(_) => panic!("started with {path:?}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("[diarization] speaker_model"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
}
