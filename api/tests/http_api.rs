//! The HTTP API against a real server: auth, isolation between organizations, upload limits,
//! bad input, idempotency, and a whole call from upload to transcript.

mod common;

use common::{CALL_VTT, TestServer, stereo_call};
use serde_json::Value;

#[tokio::test]
async fn auth_failures_are_401() {
    let s = TestServer::start(|_| {}).await;
    let (org, key) = s.org("acme").await;

    let r = s.http.get(s.url("/api/v1/calls")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "invalid_api_key");

    assert_eq!(
        s.get("cs_not-a-real-key", "/api/v1/calls").await.status(),
        401
    );
    assert_eq!(s.get("garbage", "/api/v1/calls").await.status(), 401);
    assert_eq!(s.get(&key, "/api/v1/calls").await.status(), 200);
    // Bearer works too.
    let r = s
        .http
        .get(s.url("/api/v1/calls"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Revoked.
    let id: String = sqlx::query_scalar("SELECT id FROM api_keys WHERE org_id = ?")
        .bind(&org)
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert!(
        callscope_api::store::orgs::revoke_api_key(s.pool(), &org, &id)
            .await
            .unwrap()
    );
    assert_eq!(s.get(&key, "/api/v1/calls").await.status(), 401);

    // Expired.
    let expired = callscope_api::auth::create_api_key(s.pool(), &org, "old", Some(1))
        .await
        .unwrap();
    assert_eq!(s.get(&expired.key, "/api/v1/calls").await.status(), 401);
    // Upload without a key is refused before the body matters.
    let (st, _) = s.upload("", "x.wav", vec![0; 10], &[], None).await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn whole_call_with_transcript_then_isolation() {
    let s = TestServer::start(|_| {}).await;
    let (_org_a, key_a) = s.org("a").await;
    let (_org_b, key_b) = s.org("b").await;
    let wav = std::fs::read(stereo_call(s.dir.path())).unwrap();

    let fields = [
        ("external_call_id", "pbx-1"),
        ("direction", "inbound"),
        ("customer_phone", "(415) 555-2671"),
        ("agent_identifier", "agent-7"),
        ("call_timestamp", "2026-03-01T10:00:00Z"),
        ("duration_seconds", "8"),
        ("channel_layout", "stereo_agent_left"),
        ("language", "en"),
        ("metadata", r#"{"queue":"billing"}"#),
    ];
    let (st, created) = s
        .upload(&key_a, "call.wav", wav.clone(), &fields, Some(CALL_VTT))
        .await;
    assert_eq!(st, 202, "{created}");
    assert_eq!(created["status"], "received");
    let id = created["id"].as_str().unwrap().to_string();

    // Idempotent: same external id → 200, same call, no second job.
    let (st2, again) = s
        .upload(&key_a, "call.wav", wav.clone(), &fields, Some(CALL_VTT))
        .await;
    assert_eq!(st2, 200, "{again}");
    assert_eq!(again["id"], id.as_str());
    let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(jobs, 1);

    let call = s.wait_done(&key_a, &id).await;
    assert_eq!(call["status"], "completed", "{call}");
    assert_eq!(call["asr_outcome"], "imported");
    assert_eq!(call["customer_phone"], "+14155552671");
    assert_eq!(call["metadata"]["queue"], "billing");
    assert_eq!(call["recording"]["channels"], 2);
    assert_eq!(call["recording"]["format"], "wav");
    let dur = call["recording"]["duration_seconds"].as_f64().unwrap();
    assert!((dur - 8.0).abs() < 0.1, "duration {dur}");
    let segs = call["segments"].as_array().unwrap();
    assert!(segs.len() >= 2, "{segs:?}");
    let agent = segs
        .iter()
        .find(|s| s["speaker_role"] == "agent")
        .expect("agent segment");
    let customer = segs
        .iter()
        .find(|s| s["speaker_role"] == "customer")
        .expect("customer segment");
    assert!(
        agent["text"]
            .as_str()
            .unwrap()
            .contains("thank you for calling")
    );
    assert!(customer["text"].as_str().unwrap().contains("my bill"));
    assert_eq!(agent["channel"], 0);
    assert_eq!(customer["channel"], 1);
    // Cue times snapped to the speech found: the agent starts near 0.5 s, the customer near 4 s.
    assert!(
        (agent["start_ms"].as_i64().unwrap() - 500).abs() < 400,
        "{agent}"
    );
    assert!(
        (customer["start_ms"].as_i64().unwrap() - 4000).abs() < 400,
        "{customer}"
    );

    // Transcripts.
    let vtt = s
        .get(&key_a, &format!("/api/v1/calls/{id}/transcript.vtt"))
        .await;
    assert_eq!(vtt.status(), 200);
    assert!(
        vtt.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/vtt")
    );
    let vtt = vtt.text().await.unwrap();
    assert!(
        vtt.starts_with("WEBVTT") && vtt.contains("<v Agent>") && vtt.contains("my bill"),
        "{vtt}"
    );
    let srt = s
        .get(&key_a, &format!("/api/v1/calls/{id}/transcript.srt"))
        .await
        .text()
        .await
        .unwrap();
    assert!(srt.contains("-->") && srt.contains("my bill"), "{srt}");
    let txt = s
        .get(&key_a, &format!("/api/v1/calls/{id}/transcript.txt"))
        .await
        .text()
        .await
        .unwrap();
    assert!(txt.contains("thank you for calling"), "{txt}");
    let (st, json) = s
        .get_json(&key_a, &format!("/api/v1/calls/{id}/transcript.json"))
        .await;
    assert_eq!(st, 200);
    assert_eq!(json["segments"].as_array().unwrap().len(), segs.len());
    assert_eq!(
        s.get(&key_a, &format!("/api/v1/calls/{id}/transcript.doc"))
            .await
            .status(),
        404
    );

    // Recording download with ranges.
    let full = s
        .get(&key_a, &format!("/api/v1/calls/{id}/recording"))
        .await;
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["content-type"], "audio/wav");
    assert_eq!(full.bytes().await.unwrap().as_ref(), wav.as_slice());
    let part = s
        .http
        .get(s.url(&format!("/api/v1/calls/{id}/recording")))
        .header("x-api-key", &key_a)
        .header("range", "bytes=4-11")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 4-11/{}", wav.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap().as_ref(), &wav[4..12]);
    let suffix = s
        .http
        .get(s.url(&format!("/api/v1/calls/{id}/recording")))
        .header("x-api-key", &key_a)
        .header("range", "bytes=-100")
        .send()
        .await
        .unwrap();
    assert_eq!(suffix.status(), 206);
    assert_eq!(
        suffix.bytes().await.unwrap().as_ref(),
        &wav[wav.len() - 100..]
    );
    let bad = s
        .http
        .get(s.url(&format!("/api/v1/calls/{id}/recording")))
        .header("x-api-key", &key_a)
        .header("range", format!("bytes={}-", wav.len() + 10))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 416);

    // Contact and timeline.
    let contact_id = call["contact_id"].as_str().expect("contact").to_string();
    let (st, contact) = s
        .get_json(&key_a, &format!("/api/v1/contacts/{contact_id}"))
        .await;
    assert_eq!(st, 200);
    assert_eq!(contact["phone"], "+14155552671");
    let (st, tl) = s
        .get_json(&key_a, &format!("/api/v1/contacts/{contact_id}/timeline"))
        .await;
    assert_eq!(st, 200);
    let events = tl["data"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{tl}");
    assert_eq!(events[0]["kind"], "call.processed");
    assert_eq!(events[0]["ref_id"], id.as_str());

    // Listing and filters.
    let (_, list) = s
        .get_json(
            &key_a,
            "/api/v1/calls?status=completed&direction=inbound&agent=agent-7",
        )
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (_, list) = s
        .get_json(
            &key_a,
            "/api/v1/calls?customer_phone=%2B1%20415%20555%202671",
        )
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    let (_, list) = s.get_json(&key_a, "/api/v1/calls?direction=outbound").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    let (_, list) = s
        .get_json(&key_a, "/api/v1/calls?from=2026-03-02T00:00:00Z")
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);

    // Organization B sees none of it: 404 everywhere, empty lists, its own external ids.
    for path in [
        format!("/api/v1/calls/{id}"),
        format!("/api/v1/calls/{id}/recording"),
        format!("/api/v1/calls/{id}/transcript.vtt"),
        format!("/api/v1/calls/{id}/transcript.json"),
        format!("/api/v1/contacts/{contact_id}"),
        format!("/api/v1/contacts/{contact_id}/timeline"),
    ] {
        let r = s.get(&key_b, &path).await;
        assert_eq!(r.status(), 404, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "not_found", "{path}");
    }
    let (_, list) = s.get_json(&key_b, "/api/v1/calls").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    let (_, list) = s
        .get_json(&key_b, "/api/v1/calls?external_call_id=pbx-1")
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    // B may use the same external id: it is a different call.
    let (st, b_call) = s
        .upload(
            &key_b,
            "call.wav",
            wav,
            &[("external_call_id", "pbx-1")],
            None,
        )
        .await;
    assert_eq!(st, 202);
    assert_ne!(b_call["id"], id.as_str());

    // Metrics and health.
    let m = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("callscope_http_requests_total"), "{m}");
    assert!(m.contains("callscope_jobs_processed_total"), "{m}");
    let h: Value = s
        .http
        .get(s.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["database"], "ok");
    assert_eq!(h["asr"]["status"], "not_configured");
}

#[tokio::test]
async fn no_model_gives_transcription_unavailable_with_textless_segments() {
    let s = TestServer::start(|_| {}).await;
    let (_, key) = s.org("a").await;
    let wav = std::fs::read(stereo_call(s.dir.path())).unwrap();
    let (st, c) = s
        .upload(
            &key,
            "call.wav",
            wav,
            &[("channel_layout", "stereo_agent_left")],
            None,
        )
        .await;
    assert_eq!(st, 202, "{c}");
    let call = s.wait_done(&key, c["id"].as_str().unwrap()).await;
    assert_eq!(call["status"], "transcription_unavailable", "{call}");
    let segs = call["segments"].as_array().unwrap();
    assert!(segs.iter().any(|s| s["speaker_role"] == "agent"));
    assert!(segs.iter().any(|s| s["speaker_role"] == "customer"));
    assert!(segs.iter().all(|s| s["text"].is_null()), "{segs:?}");
    // No phone → no contact, but still a conversation.
    assert!(call["contact_id"].is_null());
    assert!(call["conversation_id"].is_string());
}

#[tokio::test]
async fn silence_is_silent() {
    let s = TestServer::start(|_| {}).await;
    let (_, key) = s.org("a").await;
    let path = s.dir.path().join("silence.wav");
    let out = std::process::Command::new("sox")
        .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
        .arg(&path)
        .args(["trim", "0", "3"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (st, c) = s
        .upload(&key, "s.wav", std::fs::read(&path).unwrap(), &[], None)
        .await;
    assert_eq!(st, 202);
    let call = s.wait_done(&key, c["id"].as_str().unwrap()).await;
    assert_eq!(call["status"], "silent", "{call}");
    assert_eq!(call["segments"].as_array().unwrap().len(), 0);
}

async fn failed_calls(s: &TestServer, key: &str) -> Vec<Value> {
    let (_, list) = s.get_json(key, "/api/v1/calls?status=failed").await;
    list["data"].as_array().unwrap().clone()
}

fn incoming_files(s: &TestServer) -> usize {
    std::fs::read_dir(s.dir.path().join("data/recordings/.incoming"))
        .unwrap()
        .count()
}

#[tokio::test]
async fn bad_audio_is_refused_and_recorded_as_failed() {
    let s = TestServer::start(|_| {}).await;
    let (_, key) = s.org("a").await;
    let wav = std::fs::read(stereo_call(s.dir.path())).unwrap();

    // Random bytes: not a format we know → 415.
    let random: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (st, body) = s
        .upload(&key, "x.bin", random, &[("external_call_id", "r1")], None)
        .await;
    assert_eq!(st, 415, "{body}");
    assert_eq!(body["code"], "unsupported_format");
    assert!(body["error"].is_string());
    assert!(body["details"]["call_id"].is_string());

    // Zero bytes.
    let (st, body) = s.upload(&key, "empty.wav", Vec::new(), &[], None).await;
    assert!(st == 415 || st == 422, "{st} {body}");
    assert!(body["code"].is_string());

    // Truncated WAV: the header survives, the data does not → 422.
    let (st, body) = s
        .upload(&key, "cut.wav", wav[..30].to_vec(), &[], None)
        .await;
    assert_eq!(st, 422, "{body}");

    // Bad transcript → 422, nothing stored.
    let before = failed_calls(&s, &key).await.len();
    let (st, body) = s
        .upload(
            &key,
            "call.wav",
            wav.clone(),
            &[],
            Some("WEBVTT\n\nnot a cue\n00:xx --> yy\n"),
        )
        .await;
    assert!(st == 422, "{st} {body}");
    // Bad metadata → 422, nothing stored.
    let (st, _) = s
        .upload(&key, "call.wav", wav, &[("direction", "sideways")], None)
        .await;
    assert_eq!(st, 422);

    let failed = failed_calls(&s, &key).await;
    assert_eq!(failed.len(), before);
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(failed.iter().all(|c| c["failure"]["code"].is_string()));
    let r1 = failed
        .iter()
        .find(|c| c["external_call_id"] == "r1")
        .unwrap();
    assert_eq!(r1["failure"]["code"], "unsupported_format");
    // No recording kept for any of them; nothing left in the incoming directory.
    for c in &failed {
        let r = s
            .get(
                &key,
                &format!("/api/v1/calls/{}/recording", c["id"].as_str().unwrap()),
            )
            .await;
        assert_eq!(r.status(), 404);
    }
    assert_eq!(incoming_files(&s), 0);
    let recs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM recordings")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(recs, 0);

    // The PBX retries "r1" with a good file: the refused call takes it (202), gets processed,
    // and later posts of "r1" are duplicates.
    let r1_id = r1["id"].as_str().unwrap().to_string();
    let (st, body) = s
        .upload(
            &key,
            "call.wav",
            wav_again(&s),
            &[("external_call_id", "r1")],
            None,
        )
        .await;
    assert_eq!(st, 202, "{body}");
    assert_eq!(body["id"], r1_id.as_str());
    let done = s.wait_done(&key, &r1_id).await;
    assert_eq!(done["status"], "transcription_unavailable", "{done}");
    assert!(done["failure"].is_null());
    let (st, _) = s
        .upload(
            &key,
            "call.wav",
            wav_again(&s),
            &[("external_call_id", "r1")],
            None,
        )
        .await;
    assert_eq!(st, 200);
    let recs_after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM recordings")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(recs_after, 1);
}

fn wav_again(s: &TestServer) -> Vec<u8> {
    std::fs::read(s.dir.path().join("call.wav")).unwrap()
}

#[tokio::test]
async fn over_limit_upload_is_413_and_nothing_is_stored() {
    let s = TestServer::start(|c| c.max_upload_bytes = 64 * 1024).await;
    let (_, key) = s.org("a").await;
    let wav = std::fs::read(stereo_call(s.dir.path())).unwrap();
    assert!(wav.len() > 200 * 1024);

    // With Content-Length (refused before reading the body).
    let (st, body) = s.upload(&key, "big.wav", wav.clone(), &[], None).await;
    assert_eq!(st, 413, "{body}");
    assert_eq!(body["code"], "payload_too_large");

    // Chunked, no Content-Length: refused while streaming.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        wav.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
    let part =
        reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
            .file_name("big.wav");
    let form = reqwest::multipart::Form::new().part("file", part);
    let r = s
        .http
        .post(s.url("/api/v1/recordings"))
        .header("x-api-key", &key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    let calls: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM calls")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(calls, 0);
    assert_eq!(incoming_files(&s), 0);

    // Under the limit still works.
    let small = std::fs::read(stereo_call(s.dir.path())).unwrap();
    let out = s.dir.path().join("small.wav");
    std::process::Command::new("sox")
        .arg(s.dir.path().join("call.wav"))
        .args(["-r", "8000", "-c", "1"])
        .arg(&out)
        .args(["trim", "0", "2"])
        .output()
        .unwrap();
    drop(small);
    let (st, _) = s
        .upload(&key, "small.wav", std::fs::read(&out).unwrap(), &[], None)
        .await;
    assert_eq!(st, 202);
}

#[tokio::test]
async fn pagination_walks_every_call_once() {
    let s = TestServer::start(|c| c.workers = 1).await;
    let (_, key) = s.org("a").await;
    let out = s.dir.path().join("tone.wav");
    std::process::Command::new("sox")
        .args(["-n", "-r", "8000", "-c", "1", "-b", "16"])
        .arg(&out)
        .args(["synth", "0.5", "sine", "440"])
        .output()
        .unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let (st, c) = s
            .upload(
                &key,
                "t.wav",
                bytes.clone(),
                &[("external_call_id", &format!("p{i}"))],
                None,
            )
            .await;
        assert_eq!(st, 202);
        ids.push(c["id"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/api/v1/calls?limit=2&cursor={c}"),
            None => "/api/v1/calls?limit=2".to_string(),
        };
        let (st, page) = s.get_json(&key, &path).await;
        assert_eq!(st, 200);
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|c| c["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    ids.reverse(); // newest first
    assert_eq!(seen, ids);
    let (st, _) = s.get_json(&key, "/api/v1/calls?cursor=%%%").await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn wav_header_that_overstates_its_length_is_processed_for_what_is_there() {
    let s = TestServer::start(|_| {}).await;
    let (_, key) = s.org("a").await;
    let wav = std::fs::read(stereo_call(s.dir.path())).unwrap();
    // Cut in half: the header still claims 8 s.
    let half = wav[..wav.len() / 2].to_vec();
    let (st, c) = s
        .upload(
            &key,
            "half.wav",
            half,
            &[("channel_layout", "stereo_agent_left")],
            None,
        )
        .await;
    assert_eq!(st, 202, "{c}");
    let call = s.wait_done(&key, c["id"].as_str().unwrap()).await;
    assert_eq!(call["status"], "transcription_unavailable", "{call}");
    let dur = call["recording"]["duration_seconds"].as_f64().unwrap();
    assert!(
        (dur - 4.0).abs() < 0.2,
        "measured {dur} s, header claims 8 s"
    );
}

/// A speech engine double (no whisper model exists here): says which channel's utterance it
/// heard and how long it was, so the test can check text reaches the right segments.
struct ScriptedAsrDouble;

impl callscope_transcription::AsrEngine for ScriptedAsrDouble {
    fn name(&self) -> &str {
        "scripted-double"
    }
    fn transcribe(
        &self,
        audio_16k: &[f32],
        _language: Option<&str>,
    ) -> callscope_transcription::Result<Vec<callscope_transcription::AsrSegment>> {
        let ms = (audio_16k.len() as u64) * 1000 / 16_000;
        Ok(vec![callscope_transcription::AsrSegment {
            start_ms: 0,
            end_ms: ms,
            text: format!("utterance of {ms} ms"),
            confidence: Some(0.9),
            words: Vec::new(),
        }])
    }
}

#[tokio::test]
async fn with_an_engine_calls_complete_with_its_text() {
    use callscope_api::http::state::AsrState;
    let dir = tempfile::tempdir().unwrap();
    let config = common::test_config(dir.path());
    let pool = callscope_api::server::open_database(&config).await.unwrap();
    let running = callscope_api::server::start_with(
        pool.clone(),
        config,
        AsrState::Loaded {
            engine: std::sync::Arc::new(ScriptedAsrDouble),
        },
    )
    .await
    .unwrap();
    let base = format!("http://{}", running.addr);
    let org = callscope_api::store::orgs::create_org(&pool, "a")
        .await
        .unwrap();
    let key = callscope_api::auth::create_api_key(&pool, &org, "k", None)
        .await
        .unwrap()
        .key;
    let http = reqwest::Client::new();
    let h: Value = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["asr"]["status"], "loaded");
    assert_eq!(h["asr"]["engine"], "scripted-double");

    let wav = std::fs::read(stereo_call(dir.path())).unwrap();
    let form = reqwest::multipart::Form::new()
        .text("channel_layout", "stereo_agent_right")
        .part(
            "file",
            reqwest::multipart::Part::bytes(wav).file_name("c.wav"),
        );
    let r = http
        .post(format!("{base}/api/v1/recordings"))
        .header("x-api-key", &key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let call = loop {
        let c: Value = http
            .get(format!("{base}/api/v1/calls/{id}"))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if c["status"] == "completed" || c["status"] == "failed" {
            break c;
        }
        assert!(std::time::Instant::now() < deadline, "{c}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(call["status"], "completed", "{call}");
    assert_eq!(call["asr_outcome"], "transcribed");
    let segs = call["segments"].as_array().unwrap();
    assert!(!segs.is_empty());
    for seg in segs {
        assert!(
            seg["text"].as_str().unwrap().starts_with("utterance of "),
            "{seg}"
        );
    }
    // stereo_agent_right: the left channel (0) is the customer.
    let first = segs.iter().find(|s| s["channel"] == 0).unwrap();
    assert_eq!(first["speaker_role"], "customer");
    running.shutdown().await;
}

#[tokio::test]
async fn concurrent_duplicates_make_one_call() {
    let s = std::sync::Arc::new(TestServer::start(|_| {}).await);
    let (_, key) = s.org("a").await;
    let wav = std::fs::read(stereo_call(s.dir.path())).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (s, key, wav) = (s.clone(), key.clone(), wav.clone());
        tasks.push(tokio::spawn(async move {
            s.upload(&key, "c.wav", wav, &[("external_call_id", "same")], None)
                .await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    let mut created = 0;
    for t in tasks {
        let (st, body) = t.await.unwrap();
        assert!(st == 202 || st == 200, "{st} {body}");
        if st == 202 {
            created += 1;
        }
        ids.insert(body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1);
    let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(jobs, 1);
    let files = std::fs::read_dir(s.dir.path().join("data/recordings/.incoming"))
        .unwrap()
        .count();
    assert_eq!(files, 0, "losing duplicates left files behind");
}

#[tokio::test]
async fn common_formats_are_accepted_processed_and_served_with_their_type() {
    let s = TestServer::start(|_| {}).await;
    let (_, key) = s.org("a").await;
    let wav = stereo_call(s.dir.path());
    for (ext, args, format, ctype) in [
        ("mp3", vec!["-b:a", "64k"], "mp3", "audio/mpeg"),
        ("ogg", vec!["-c:a", "libopus"], "ogg", "audio/ogg"),
        ("webm", vec!["-c:a", "libopus"], "webm", "audio/webm"),
        ("flac", vec![], "flac", "audio/flac"),
        ("m4a", vec!["-c:a", "aac"], "mp4", "audio/mp4"),
    ] {
        let out = s.dir.path().join(format!("call.{ext}"));
        let st = std::process::Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y", "-i"])
            .arg(&wav)
            .args(&args)
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success(), "ffmpeg {ext}");
        let bytes = std::fs::read(&out).unwrap();
        let (st, c) = s
            .upload(
                &key,
                &format!("call.{ext}"),
                bytes.clone(),
                &[("channel_layout", "stereo_agent_left")],
                None,
            )
            .await;
        assert_eq!(st, 202, "{ext}: {c}");
        let id = c["id"].as_str().unwrap();
        let call = s.wait_done(&key, id).await;
        assert_eq!(call["status"], "transcription_unavailable", "{ext}: {call}");
        assert_eq!(call["recording"]["format"], format, "{ext}");
        assert_eq!(call["recording"]["channels"], 2, "{ext}");
        let dur = call["recording"]["duration_seconds"].as_f64().unwrap();
        assert!((dur - 8.0).abs() < 0.15, "{ext}: {dur}");
        let segs = call["segments"].as_array().unwrap();
        assert!(segs.iter().any(|s| s["speaker_role"] == "agent"), "{ext}");
        assert!(
            segs.iter().any(|s| s["speaker_role"] == "customer"),
            "{ext}"
        );
        let r = s.get(&key, &format!("/api/v1/calls/{id}/recording")).await;
        assert_eq!(r.headers()["content-type"], ctype, "{ext}");
        assert_eq!(r.bytes().await.unwrap().len(), bytes.len());
    }
}
