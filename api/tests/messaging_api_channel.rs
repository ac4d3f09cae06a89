//! The API channel end to end: a real server (real SQLite, real HTTP on 127.0.0.1, the real
//! webhook delivery worker) and a real HTTP receiver on 127.0.0.1 playing the external
//! system that owns the channel's callback URL.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use callscope_api::webhooks::verify_signature;
use common::{TestServer, post_json};
use serde_json::{Value, json};
use tokio::sync::Mutex;

#[derive(Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

/// The external system's callback endpoint; fails the first `fail_first` requests.
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    hits: Arc<AtomicUsize>,
    fail_first: usize,
}

impl Receiver {
    async fn start(&self) -> String {
        async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
            let n = r.hits.fetch_add(1, Ordering::SeqCst);
            r.received.lock().await.push(Received { headers, body });
            if n < r.fail_first {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/callscope", post(hook))
            .with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}/callscope")
    }

    /// Wait (bounded) until `n` requests arrived.
    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let all = self.received.lock().await.clone();
            if all.len() >= n {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} callbacks arrived",
                all.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn count(s: &TestServer, table: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(s.pool())
        .await
        .unwrap();
    n
}

async fn api_channel(s: &TestServer, key: &str, callback: &str) -> (String, String) {
    let (st, v) = post_json(
        s,
        key,
        "/api/v1/channels",
        json!({"kind": "api", "name": "Website chat", "callback_url": callback}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let secret = v["callback_secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    (v["id"].as_str().unwrap().to_string(), secret)
}

fn inbound(message_id: &str, content: &str) -> Value {
    json!({
        "message_id": message_id,
        "contact": {"identifier": "crm-42", "phone": "+1 415 555 2671", "name": "Ada"},
        "content": content,
        "timestamp": "2025-11-21T10:00:00Z"
    })
}

#[tokio::test]
async fn inbound_messages_are_idempotent_and_thread_into_one_conversation() {
    let s = TestServer::start(|_| {}).await;
    let (_, key) = s.org("acme").await;
    let (channel, _) = api_channel(&s, &key, "http://127.0.0.1:9/unused").await;
    let path = format!("/api/v1/channels/{channel}/messages");

    let (st, first) = post_json(&s, &key, &path, inbound("ext-1", "Where is my parcel?")).await;
    assert_eq!(st, 201, "{first}");
    assert_eq!(first["duplicate"], false);
    assert_eq!(first["message"]["external_id"], "ext-1");
    assert_eq!(first["message"]["created_at"], "2025-11-21T10:00:00.000Z");
    assert_eq!(first["conversation"]["channel"], "api");
    let (st, again) = post_json(&s, &key, &path, inbound("ext-1", "Where is my parcel?")).await;
    assert_eq!(st, 200);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["message"]["id"], first["message"]["id"]);
    let (st, second) = post_json(
        &s,
        &key,
        &path,
        json!({"message_id": "ext-2", "contact": {"identifier": "crm-42"},
               "content_type": "document", "content": "invoice",
               "attachments": [{"url": "https://files.example.com/inv.pdf", "mime_type": "application/pdf",
                                "size": 1234, "filename": "inv.pdf", "caption": "invoice"}]}),
    )
    .await;
    assert_eq!(st, 201, "{second}");
    assert_eq!(second["conversation"]["id"], first["conversation"]["id"]);
    assert_eq!(second["message"]["attachments"][0]["size"], 1234);
    assert_eq!(count(&s, "messages").await, 2);

    // The phone linked the contact; the same contact answers a lookup by phone.
    let contact = first["message"]["contact_id"].as_str().unwrap();
    let (_, c) = s
        .get_json(&key, &format!("/api/v1/contacts/{contact}"))
        .await;
    assert_eq!(c["phone"], "+14155552671");
    assert_eq!(c["display_name"], "Ada");

    // An email-only contact is another person, with their own conversation.
    let (st, other) = post_json(
        &s,
        &key,
        &path,
        json!({"message_id": "ext-3", "contact": {"email": "Bob@Example.com"}, "content": "hi"}),
    )
    .await;
    assert_eq!(st, 201, "{other}");
    assert_ne!(
        other["message"]["contact_id"],
        first["message"]["contact_id"]
    );

    // Refused input changes nothing.
    for bad in [
        json!({"message_id": "ext-4", "contact": {}, "content": "x"}),
        json!({"message_id": "ext-4", "contact": {"identifier": "a"}}),
        json!({"message_id": "ext-4", "contact": {"phone": "not a phone"}, "content": "x"}),
        json!({"message_id": "ext-4", "contact": {"identifier": "a"}, "content": "x", "content_type": "template"}),
        json!({"message_id": "ext-4", "contact": {"identifier": "a"}, "content": "x", "attachments": [{"url": "ftp://x/y"}]}),
        json!({"message_id": "ext-4", "contact": {"identifier": "a"}, "content": "x", "attachments": [{"filename": "no-source"}]}),
        json!({"message_id": "", "contact": {"identifier": "a"}, "content": "x"}),
        json!({"contact": {"identifier": "a"}, "content": "x"}),
    ] {
        let (st, v) = post_json(&s, &key, &path, bad.clone()).await;
        assert!(st == 422 || st == 400, "{bad} → {st} {v}");
    }
    assert_eq!(count(&s, "messages").await, 3);
    s.running.shutdown().await;
}

#[tokio::test]
async fn outbound_messages_reach_the_callback_signed_and_retried_and_statuses_come_back() {
    let receiver = Receiver {
        fail_first: 1,
        ..Receiver::default()
    };
    let callback = receiver.start().await;
    let s = TestServer::start(|_| {}).await;
    let (org, key) = s.org("acme").await;
    let (channel, secret) = api_channel(&s, &key, &callback).await;

    // The secret is shown once; later reads show neither it nor a usable part of it.
    let (_, shown) = s
        .get_json(&key, &format!("/api/v1/channels/{channel}"))
        .await;
    assert!(!shown.to_string().contains(&secret));
    assert_eq!(shown["callback_url"], callback.as_str());
    // The callback is a webhook endpoint of the organization subscribed to no event.
    let (_, endpoints) = s.get_json(&key, "/api/v1/webhook-endpoints").await;
    let endpoint = &endpoints["data"][0];
    assert_eq!(endpoint["url"], callback.as_str(), "{endpoints}");
    assert_eq!(endpoint["events"], json!([]));

    let (_, inbound_msg) = post_json(
        &s,
        &key,
        &format!("/api/v1/channels/{channel}/messages"),
        inbound("ext-1", "Can I change my address?"),
    )
    .await;
    let conv = inbound_msg["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Inbound messages are not echoed to the channel's own callback.
    assert_eq!(count(&s, "webhook_outbox").await, 0);

    let (st, out) = post_json(
        &s,
        &key,
        &format!("/api/v1/conversations/{conv}/messages"),
        json!({"content": "Yes: reply with the new one."}),
    )
    .await;
    assert_eq!(st, 201, "{out}");
    assert_eq!(out["status"], "queued");
    assert_eq!(out["direction"], "outbound");

    // First attempt refused (503), the retry (about 10 s later) accepted.
    let got = receiver.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 2);
    let last = &got[1];
    let sig = last.headers["x-callscope-signature"].to_str().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert_eq!(verify_signature(&secret, sig, &last.body, 300, now), Ok(()));
    assert!(verify_signature("whsec_wrong_secret_value", sig, &last.body, 300, now).is_err());
    assert_eq!(
        got[0].body, got[1].body,
        "every attempt sends the same envelope"
    );
    let envelope: Value = serde_json::from_slice(&last.body).unwrap();
    assert_eq!(envelope["event"], "message.created");
    assert_eq!(envelope["data"]["message"]["id"], out["id"]);
    assert_eq!(
        envelope["data"]["message"]["content"],
        "Yes: reply with the new one."
    );
    assert_eq!(
        envelope["data"]["contact"]["identifiers"],
        json!(["crm-42"])
    );
    assert_eq!(envelope["data"]["contact"]["phone"], "+14155552671");
    assert_eq!(envelope["data"]["channel"]["id"], channel.as_str());

    // The receiver reports delivery; replays and backwards reports change nothing.
    let status_path = format!("/api/v1/channels/{channel}/statuses");
    let (st, v) = post_json(
        &s,
        &key,
        &status_path,
        json!({"message_id": out["id"], "status": "delivered", "external_id": "their-77"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["changed"], true);
    assert_eq!(v["message"]["status"], "delivered");
    assert_eq!(v["message"]["external_id"], "their-77");
    let (_, v) = post_json(
        &s,
        &key,
        &status_path,
        json!({"message_id": out["id"], "status": "sent"}),
    )
    .await;
    assert_eq!(v["changed"], false);
    assert_eq!(v["message"]["status"], "delivered");
    let (_, v) = post_json(
        &s,
        &key,
        &status_path,
        json!({"message_id": out["id"], "status": "read"}),
    )
    .await;
    assert_eq!(v["message"]["status"], "read");
    let (st, _) = post_json(
        &s,
        &key,
        &status_path,
        json!({"message_id": out["id"], "status": "bogus"}),
    )
    .await;
    assert_eq!(st, 422);
    // An inbound message is not the receiver's to report on.
    let (st, _) = post_json(
        &s,
        &key,
        &status_path,
        json!({"message_id": inbound_msg["message"]["id"], "status": "read"}),
    )
    .await;
    assert_eq!(st, 404);

    let (_, msgs) = s
        .get_json(&key, &format!("/api/v1/conversations/{conv}/messages"))
        .await;
    assert_eq!(msgs["data"][0]["status"], "read");
    assert!(msgs["data"][0]["read_at"].is_string());
    let outbox: Vec<(String, String)> =
        sqlx::query_as("SELECT event, status FROM webhook_outbox WHERE org_id = $1")
            .bind(&org)
            .fetch_all(s.pool())
            .await
            .unwrap();
    assert_eq!(
        outbox,
        vec![("message.created".to_string(), "delivered".to_string())]
    );
    s.running.shutdown().await;
}

#[tokio::test]
async fn other_organizations_cannot_use_the_channel() {
    let s = TestServer::start(|_| {}).await;
    let (_, key_a) = s.org("a").await;
    let (_, key_b) = s.org("b").await;
    let (channel, _) = api_channel(&s, &key_a, "http://127.0.0.1:9/unused").await;
    let (_, first) = post_json(
        &s,
        &key_a,
        &format!("/api/v1/channels/{channel}/messages"),
        inbound("ext-1", "hi"),
    )
    .await;
    let (st, _) = post_json(
        &s,
        &key_b,
        &format!("/api/v1/channels/{channel}/messages"),
        inbound("ext-2", "hi"),
    )
    .await;
    assert_eq!(st, 404);
    let (st, _) = post_json(
        &s,
        &key_b,
        &format!("/api/v1/channels/{channel}/statuses"),
        json!({"message_id": first["message"]["id"], "status": "read"}),
    )
    .await;
    assert_eq!(st, 404);
    let r = s
        .http
        .post(s.url(&format!("/api/v1/channels/{channel}/messages")))
        .json(&inbound("ext-3", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(count(&s, "messages").await, 1);

    // Deleting the channel keeps its conversation readable and stops new messages.
    let r = s
        .http
        .delete(s.url(&format!("/api/v1/channels/{channel}")))
        .header("x-api-key", &key_a)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (st, _) = post_json(
        &s,
        &key_a,
        &format!("/api/v1/channels/{channel}/messages"),
        inbound("ext-4", "hi"),
    )
    .await;
    assert_eq!(st, 404);
    let conv = first["conversation"]["id"].as_str().unwrap();
    let (st, _) = s
        .get_json(&key_a, &format!("/api/v1/conversations/{conv}/messages"))
        .await;
    assert_eq!(st, 200);
    let (st, _) = post_json(
        &s,
        &key_a,
        &format!("/api/v1/conversations/{conv}/messages"),
        json!({"content": "x"}),
    )
    .await;
    assert_eq!(st, 422);
    let (_, endpoints) = s.get_json(&key_a, "/api/v1/webhook-endpoints").await;
    assert_eq!(endpoints["data"].as_array().unwrap().len(), 0);
    s.running.shutdown().await;
}
