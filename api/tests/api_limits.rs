//! Rate limits per credential and idempotency keys, against the real server.

mod common;

use common::{CALL_VTT, TestServer, stereo_call};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[tokio::test]
async fn each_credential_has_its_own_bucket_and_is_told_where_it_stands() {
    let s = TestServer::start(|c| c.http.rate_limit_per_minute = 5).await;
    let (_org, key) = s.org("acme").await;
    let (_other, other_key) = s.org("globex").await;
    for left in (0..5).rev() {
        let r = s.get(&key, "/api/v1/calls").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "x-ratelimit-limit").as_deref(), Some("5"));
        assert_eq!(header(&r, "x-ratelimit-remaining"), Some(left.to_string()));
        let reset: u64 = header(&r, "x-ratelimit-reset").unwrap().parse().unwrap();
        assert!(reset <= 60, "{reset}");
    }
    let r = s.get(&key, "/api/v1/calls").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!(
        (1..=12).contains(&retry),
        "one token comes back every 12 s: {retry}"
    );
    assert_eq!(header(&r, "x-ratelimit-remaining").as_deref(), Some("0"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited", "{body}");
    // The other organization's key is untouched; health checks are not limited.
    assert_eq!(s.get(&other_key, "/api/v1/calls").await.status(), 200);
    let health = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(header(&health, "x-ratelimit-limit"), None);
}

async fn post(
    s: &TestServer,
    key: &str,
    path: &str,
    idem: Option<&str>,
    body: &Value,
) -> (u16, Option<String>, Value) {
    let mut req = s.http.post(s.url(path)).header("x-api-key", key).json(body);
    if let Some(k) = idem {
        req = req.header("idempotency-key", k);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let replayed = header(&r, "idempotent-replayed");
    (status, replayed, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_retried_post_with_its_idempotency_key_creates_once() {
    let s = TestServer::start(|_| {}).await;
    let (_org, key) = s.org("acme").await;
    let (_other, other_key) = s.org("globex").await;
    let tracker = json!({"kind": "keyword", "name": "Competitors", "category": "competitor", "phrases": ["globex"]});

    let (st, replayed, first) = post(&s, &key, "/api/v1/trackers", Some("t-1"), &tracker).await;
    assert_eq!(st, 201, "{first}");
    assert_eq!(replayed.as_deref(), Some("false"));
    let (st, replayed, again) = post(&s, &key, "/api/v1/trackers", Some("t-1"), &tracker).await;
    assert_eq!(st, 201, "{again}");
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(again["id"], first["id"]);
    let (_, list) = s.get_json(&key, "/api/v1/trackers").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");

    // The same key for another request is a client bug, said so.
    let mut changed = tracker.clone();
    changed["name"] = json!("Rivals");
    let (st, _, body) = post(&s, &key, "/api/v1/trackers", Some("t-1"), &changed).await;
    assert_eq!(st, 422, "{body}");
    assert_eq!(body["code"], "idempotency_key_reused");
    // Keys are per credential: another organization's identical key is its own.
    let (st, replayed, theirs) =
        post(&s, &other_key, "/api/v1/trackers", Some("t-1"), &tracker).await;
    assert_eq!(st, 201, "{theirs}");
    assert_eq!(replayed.as_deref(), Some("false"));
    assert_ne!(theirs["id"], first["id"]);
    // Without a key, two POSTs are two trackers.
    post(&s, &key, "/api/v1/trackers", None, &changed).await;
    post(&s, &key, "/api/v1/trackers", None, &changed).await;
    let (_, list) = s.get_json(&key, "/api/v1/trackers").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 3, "{list}");
    // A refused request is a final answer too: the same key replays it.
    let bad = json!({"kind": "keyword", "name": "", "category": "competitor", "phrases": []});
    let (st, _, _) = post(&s, &key, "/api/v1/trackers", Some("t-2"), &bad).await;
    assert_eq!(st, 422);
    let (st, replayed, _) = post(&s, &key, "/api/v1/trackers", Some("t-2"), &bad).await;
    assert_eq!((st, replayed.as_deref()), (422, Some("true")));
    // An over-long key is refused up front.
    let long = "k".repeat(300);
    let (st, _, body) = post(&s, &key, "/api/v1/trackers", Some(&long), &tracker).await;
    assert_eq!(st, 400, "{body}");
}

#[tokio::test]
async fn a_retried_upload_is_the_same_call() {
    let s = TestServer::start(|_| {}).await;
    let (_org, key) = s.org("acme").await;
    let wav = std::fs::read(stereo_call(s.dir.path())).unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        // Each form gets a fresh multipart boundary, as a retrying client's would.
        let form = reqwest::multipart::Form::new()
            .text("channel_layout", "stereo_agent_left")
            .text("transcript", CALL_VTT)
            .part(
                "file",
                reqwest::multipart::Part::bytes(wav.clone()).file_name("c.wav"),
            );
        let r = s
            .http
            .post(s.url("/api/v1/recordings"))
            .header("x-api-key", &key)
            .header("idempotency-key", "upload-42")
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let body: Value = r.json().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids[0], ids[1]);
    let (_, list) = s.get_json(&key, "/api/v1/calls").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
}
