//! Server-side request forgery guard (`[egress] allow_private_networks`, off by default): a
//! `recording_url` or a webhook endpoint on loopback — as an IP literal or as a name that
//! resolves there — is refused before any connection, with a clear reason in the call's
//! failure or the delivery log, and the target never sees a request. With the setting on,
//! the same URLs work (the control that shows the refusal is the guard's doing).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use common::{TestServer, post_json, stereo_call};
use serde_json::{Value, json};

/// A recording server and webhook receiver on loopback that counts every request.
async fn target(wav: Vec<u8>) -> (u16, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let (h1, h2) = (hits.clone(), hits.clone());
    let app = Router::new()
        .route(
            "/call.wav",
            get(move || async move {
                h1.fetch_add(1, Ordering::SeqCst);
                wav.clone()
            }),
        )
        .route(
            "/hook",
            post(move || async move {
                h2.fetch_add(1, Ordering::SeqCst);
                StatusCode::OK
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, hits)
}

/// Posts a PBX webhook for `url` and waits for the call to leave the in-progress states.
async fn fetch_call(s: &TestServer, key: &str, external_id: &str, url: &str) -> Value {
    let (status, created) = post_json(
        s,
        key,
        "/api/v1/webhooks/call-recording",
        json!({"external_call_id": external_id, "recording_url": url, "channel_layout": "stereo_agent_left"}),
    )
    .await;
    assert_eq!(status, 202, "{created}");
    s.wait_done(key, created["id"].as_str().unwrap()).await
}

/// The first attempt of the endpoint's first delivery (bounded wait).
async fn first_attempt(s: &TestServer, key: &str, endpoint: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, page) = s
            .get_json(
                key,
                &format!("/api/v1/webhook-endpoints/{endpoint}/deliveries"),
            )
            .await;
        if let Some(attempt) = page["data"][0]["log"].get(0) {
            return attempt.clone();
        }
        assert!(Instant::now() < deadline, "no attempt logged: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn private_destinations_are_refused_unless_allowed() {
    let s = TestServer::start(|c| c.egress.allow_private_networks = false).await;
    let (_, key) = s.org("acme").await;
    let wav = std::fs::read(stereo_call(s.dir.path())).unwrap();
    let (port, hits) = target(wav.clone()).await;

    for (n, host) in ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"]
        .iter()
        .enumerate()
    {
        let url = format!("http://{host}:{port}/call.wav");
        let call = fetch_call(&s, &key, &format!("ssrf-{n}"), &url).await;
        assert_eq!(call["status"], "failed", "{url}: {call}");
        assert_eq!(
            call["failure"]["code"], "recording_url_forbidden",
            "{url}: {call}"
        );
        let reason = call["failure"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("allow_private_networks"), "{url}: {reason}");
    }

    // Webhook endpoints on loopback, by address and by name: the attempt is refused.
    for host in ["127.0.0.1", "localhost"] {
        let (status, endpoint) = post_json(
            &s,
            &key,
            "/api/v1/webhook-endpoints",
            json!({"url": format!("http://{host}:{port}/hook"), "events": ["webhook.test", "contact.created"]}),
        )
        .await;
        assert_eq!(status, 201, "{endpoint}");
        let id = endpoint["id"].as_str().unwrap().to_string();
        post_json(&s, &key, "/api/v1/contacts", json!({"first_name": host})).await;
        let attempt = first_attempt(&s, &key, &id).await;
        assert_eq!(attempt["status_code"], Value::Null, "{attempt}");
        let error = attempt["error"].as_str().unwrap_or_default();
        assert!(error.contains("allow_private_networks"), "{host}: {error}");
        let (status, _) = s
            .http
            .delete(s.url(&format!("/api/v1/webhook-endpoints/{id}")))
            .header("x-api-key", &key)
            .send()
            .await
            .map(|r| (r.status().as_u16(), ()))
            .unwrap();
        assert!((200..300).contains(&status));
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the private target was reached"
    );
    s.running.shutdown().await;

    // The control: allowed, the same loopback URL is fetched.
    let s = TestServer::start(|c| c.egress.allow_private_networks = true).await;
    let (_, key) = s.org("acme").await;
    let call = fetch_call(
        &s,
        &key,
        "allowed",
        &format!("http://localhost:{port}/call.wav"),
    )
    .await;
    assert_eq!(call["status"], "transcription_unavailable", "{call}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    s.running.shutdown().await;
}
