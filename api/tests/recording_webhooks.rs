//! Recordings announced by URL (PBX JSON and Twilio form), fetched from a real local HTTP
//! server; unreachable URLs retried then failed; `call.processed` delivered, signed, to a
//! real local receiver.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use common::{TestServer, stereo_call};
use serde_json::{Value, json};

/// Serves `/call.wav` and `/broken` (always 500); records webhook deliveries at `/hook`.
struct Remote {
    base: String,
    deliveries: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    broken_hits: Arc<Mutex<u32>>,
}

async fn remote(wav: Vec<u8>) -> Remote {
    let deliveries: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
    let broken_hits: Arc<Mutex<u32>> = Arc::default();
    let d = deliveries.clone();
    let b = broken_hits.clone();
    let app = Router::new()
        .route("/call.wav", get(move || async move { wav.clone() }))
        .route(
            "/broken",
            get(move || async move {
                *b.lock().unwrap() += 1;
                StatusCode::INTERNAL_SERVER_ERROR
            }),
        )
        .route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| async move {
                d.lock().unwrap().push((headers, body));
                StatusCode::OK
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Remote {
        base,
        deliveries,
        broken_hits,
    }
}

async fn post_json(s: &TestServer, key: &str, body: Value) -> (u16, Value) {
    let r = s
        .http
        .post(s.url("/api/v1/webhooks/call-recording"))
        .header("x-api-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn pbx_json_webhook_fetches_processes_and_signs_call_processed() {
    let s = TestServer::start(|_| {}).await;
    let (_, key) = s.org("a").await;
    let wav = std::fs::read(stereo_call(s.dir.path())).unwrap();
    let remote = remote(wav.clone()).await;

    // Subscribe to call.processed.
    let r = s
        .http
        .post(s.url("/api/v1/webhook-endpoints"))
        .header("x-api-key", &key)
        .json(&json!({ "url": format!("{}/hook", remote.base), "events": ["call.processed"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let secret = r.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();

    let body = json!({
        "external_call_id": "pbx-77",
        "recording_url": format!("{}/call.wav", remote.base),
        "customer_phone": "+44 20 7946 0958",
        "agent_identifier": "alice",
        "duration_seconds": 8,
        "call_timestamp": "2026-02-01T09:00:00Z",
        "direction": "outbound",
        "channel_layout": "stereo_agent_left",
        "metadata": { "crm": "x" },
        "some_pbx_extra": true
    });
    let (st, created) = post_json(&s, &key, body.clone()).await;
    assert_eq!(st, 202, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let (st, again) = post_json(&s, &key, body).await;
    assert_eq!(st, 200);
    assert_eq!(again["id"], id.as_str());

    let call = s.wait_done(&key, &id).await;
    assert_eq!(call["status"], "transcription_unavailable", "{call}");
    assert_eq!(call["source"], "webhook");
    assert_eq!(call["customer_phone"], "+442079460958");
    assert_eq!(call["recording"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(call["recording"]["size_bytes"], wav.len() as i64);
    assert!(call["segments"].as_array().unwrap().len() >= 2);
    let dl = s.get(&key, &format!("/api/v1/calls/{id}/recording")).await;
    assert_eq!(dl.bytes().await.unwrap().as_ref(), wav.as_slice());

    // The signed call.processed delivery (the delivery worker polls every second).
    let deadline = Instant::now() + Duration::from_secs(20);
    let (headers, payload) = loop {
        if let Some(d) = remote.deliveries.lock().unwrap().first().cloned() {
            break d;
        }
        assert!(Instant::now() < deadline, "no call.processed delivery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let sig = headers["x-callscope-signature"].to_str().unwrap();
    let now = chrono::Utc::now().timestamp();
    callscope_api::webhooks::verify_signature(&secret, sig, &payload, 300, now).unwrap();
    let env: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(env["event"], "call.processed");
    assert_eq!(env["data"]["call"]["id"], id.as_str());
    assert_eq!(env["data"]["call"]["status"], "transcription_unavailable");
    assert!(env["data"]["talk_time_ms"]["agent"].as_u64().unwrap() > 1000);
    // Exactly one, even though the recording was announced twice.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(remote.deliveries.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn twilio_form_with_basic_auth_key() {
    let s = TestServer::start(|_| {}).await;
    let (_, key) = s.org("a").await;
    let wav = std::fs::read(stereo_call(s.dir.path())).unwrap();
    let remote = remote(wav).await;
    let form = [
        ("CallSid", "CA0123456789abcdef0123456789abcdef"),
        ("RecordingSid", "RE0123456789abcdef0123456789abcdef"),
        // Ends in .wav already, so it is fetched as given.
        ("RecordingUrl", &format!("{}/call.wav", remote.base)),
        ("RecordingStatus", "completed"),
        ("RecordingChannels", "2"),
        ("RecordingDuration", "8"),
    ];
    let r = s
        .http
        .post(s.url("/api/v1/webhooks/call-recording"))
        .basic_auth("twilio", Some(&key))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let call = s.wait_done(&key, &id).await;
    assert_eq!(call["status"], "transcription_unavailable", "{call}");
    assert_eq!(
        call["external_call_id"],
        "CA0123456789abcdef0123456789abcdef"
    );
    assert_eq!(
        call["metadata"]["twilio_recording_sid"],
        "RE0123456789abcdef0123456789abcdef"
    );

    // In-progress callbacks are acknowledged and ignored.
    let r = s
        .http
        .post(s.url("/api/v1/webhooks/call-recording"))
        .basic_auth("twilio", Some(&key))
        .form(&[("CallSid", "CAx"), ("RecordingStatus", "in-progress")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A wrong key in Basic auth is 401.
    let r = s
        .http
        .post(s.url("/api/v1/webhooks/call-recording"))
        .basic_auth("twilio", Some("cs_wrong"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn unreachable_recording_is_retried_then_failed() {
    let s = TestServer::start(|c| c.jobs.retry_base_ms = 50).await;
    let (_, key) = s.org("a").await;
    let remote = remote(Vec::new()).await;

    let (st, c) = post_json(
        &s,
        &key,
        json!({ "external_call_id": "e1", "recording_url": format!("{}/broken", remote.base) }),
    )
    .await;
    assert_eq!(st, 202);
    let call = s.wait_done(&key, c["id"].as_str().unwrap()).await;
    assert_eq!(call["status"], "failed", "{call}");
    assert_eq!(call["failure"]["code"], "recording_unreachable");
    assert_eq!(call["retry_count"], 2);
    assert_eq!(
        *remote.broken_hits.lock().unwrap(),
        3,
        "exactly max_attempts downloads"
    );

    // Refused port: same path, fails after 3 attempts.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/x.wav", dead.local_addr().unwrap());
    drop(dead);
    let (_, c) = post_json(
        &s,
        &key,
        json!({ "external_call_id": "e2", "recording_url": dead_url }),
    )
    .await;
    let call = s.wait_done(&key, c["id"].as_str().unwrap()).await;
    assert_eq!(call["status"], "failed");
    assert_eq!(call["failure"]["code"], "recording_unreachable");

    // A 404 is not worth retrying; random bytes from the URL fail like an upload would.
    let (_, c) = post_json(
        &s,
        &key,
        json!({ "external_call_id": "e3", "recording_url": format!("{}/nope.wav", remote.base) }),
    )
    .await;
    let call = s.wait_done(&key, c["id"].as_str().unwrap()).await;
    assert_eq!(call["status"], "failed");
    assert_eq!(call["failure"]["code"], "recording_fetch_failed");
    assert_eq!(call["retry_count"], 0);

    // Invalid payloads are 422 with the field named.
    let (st, e) = post_json(&s, &key, json!({ "recording_url": "ftp://x" })).await;
    assert_eq!(st, 422, "{e}");
    assert_eq!(e["code"], "validation_error");
}
