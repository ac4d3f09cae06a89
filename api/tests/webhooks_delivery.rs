//! Webhook delivery end to end: a real SQLite database with the migrations, the real API
//! router on 127.0.0.1, the real delivery worker, and real HTTP receivers on 127.0.0.1.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use callscope_api::auth::create_api_key;
use callscope_api::config::Config;
use callscope_api::egress::EgressPolicy;
use callscope_api::http::state::{AppState, AsrState};
use callscope_api::webhooks::{
    self, DeliveryConfig, claim_due, enqueue_event, spawn_delivery_worker, verify_signature,
};
use serde_json::{Value, json};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use tokio::sync::Mutex;

struct Db {
    pool: SqlitePool,
    dir: tempfile::TempDir,
}

async fn db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteConnectOptions::new()
        .filename(dir.path().join("test.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    let pool = SqlitePool::connect_with(opts).await.unwrap();
    sqlx::migrate!("../migrations/sqlite")
        .run(&pool)
        .await
        .unwrap();
    Db { pool, dir }
}

/// An organization and an API key for it.
async fn org(pool: &SqlitePool, name: &str) -> (String, String) {
    let id = callscope_api::ids::new_id();
    sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(&id)
        .bind(name)
        .bind(callscope_api::ids::now_ms())
        .execute(pool)
        .await
        .unwrap();
    let key = create_api_key(pool, &id, "test", None).await.unwrap();
    (id, key.key)
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{addr}")
}

/// The webhook routes alone (no rate limit or idempotency layers), on the database `db`.
async fn api(db: &Db) -> String {
    let config = Config {
        data_dir: db.dir.path().join("data"),
        ..Config::default()
    };
    let state = AppState::new(db.pool.clone(), config, AsrState::NotConfigured).unwrap();
    let (router, _) = webhooks::routes().split_for_parts();
    serve(router.with_state(state)).await
}

#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

/// A webhook receiver that answers 500 to its first `fail_first` requests, or to all while
/// `always_fail` is set, and 200 otherwise.
#[derive(Clone)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    hits: Arc<AtomicUsize>,
    fail_first: usize,
    always_fail: Arc<AtomicBool>,
}

impl Receiver {
    fn new(fail_first: usize) -> Self {
        Self {
            received: Arc::default(),
            hits: Arc::default(),
            fail_first,
            always_fail: Arc::default(),
        }
    }
    async fn start(&self) -> String {
        async fn hook(
            State(r): State<Receiver>,
            headers: HeaderMap,
            body: Bytes,
        ) -> (StatusCode, &'static str) {
            let n = r.hits.fetch_add(1, Ordering::SeqCst);
            r.received.lock().await.push(Received { headers, body });
            if n < r.fail_first || r.always_fail.load(Ordering::SeqCst) {
                (StatusCode::INTERNAL_SERVER_ERROR, "receiver is down")
            } else {
                (StatusCode::OK, "thanks")
            }
        }
        let base = serve(
            Router::new()
                .route("/hook", post(hook))
                .with_state(self.clone()),
        )
        .await;
        format!("{base}/hook")
    }
    async fn all(&self) -> Vec<Received> {
        self.received.lock().await.clone()
    }
}

/// The receivers listen on loopback, which deliveries refuse by default.
const LOOPBACK_OK: EgressPolicy = EgressPolicy {
    allow_private_networks: true,
};

fn fast_config(max_attempts: u32) -> DeliveryConfig {
    DeliveryConfig {
        poll_interval: Duration::from_millis(20),
        request_timeout: Duration::from_secs(5),
        egress: LOOPBACK_OK,
        ..DeliveryConfig::exponential(Duration::from_millis(50), 2, max_attempts)
    }
}

async fn create_endpoint_http(base: &str, key: &str, url: &str, events: Value) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/v1/webhook-endpoints"))
        .header("X-API-Key", key)
        .json(&json!({ "url": url, "events": events }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

async fn outbox_status(pool: &SqlitePool, event_id: &str) -> Vec<(String, String)> {
    sqlx::query_as("SELECT endpoint_id, status FROM webhook_outbox WHERE event_id = $1")
        .bind(event_id)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Wait (bounded) until every outbox row of the event has `status`.
async fn wait_for_status(pool: &SqlitePool, event_id: &str, status: &str) {
    for _ in 0..500 {
        let rows = outbox_status(pool, event_id).await;
        if !rows.is_empty() && rows.iter().all(|(_, s)| s == status) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "event {event_id} did not reach {status}: {:?}",
        outbox_status(pool, event_id).await
    );
}

fn shutdown_signal() -> (
    tokio::sync::oneshot::Sender<()>,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// HMAC-SHA256 hex computed by python3's standard library, independently of our code.
fn python_hmac_hex(secret: &str, message: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let msg = dir.path().join("msg");
    std::fs::write(&msg, message).unwrap();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg("import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(), open(sys.argv[2],'rb').read(), hashlib.sha256).hexdigest())")
        .arg(secret)
        .arg(&msg)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn delivered_on_third_attempt_with_valid_signatures_and_a_log() {
    let db = db().await;
    let (org_id, key) = org(&db.pool, "acme").await;
    let base = api(&db).await;
    let receiver = Receiver::new(2);
    let url = receiver.start().await;
    let created = create_endpoint_http(&base, &key, &url, json!(["call.processed"])).await;
    let secret = created["secret"].as_str().unwrap().to_string();
    let endpoint_id = created["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    assert!(secret.starts_with(created["secret_prefix"].as_str().unwrap()));

    let data = json!({ "call_id": "c-1", "status": "completed" });
    let event_id = enqueue_event(&db.pool, &org_id, "call.processed", data.clone())
        .await
        .unwrap();
    // Not subscribed: must not be delivered.
    enqueue_event(&db.pool, &org_id, "message.created", json!({}))
        .await
        .unwrap();

    let (stop, shutdown) = shutdown_signal();
    let client = webhooks::default_http_client(LOOPBACK_OK).unwrap();
    let worker = spawn_delivery_worker(db.pool.clone(), client, fast_config(5), shutdown);
    wait_for_status(&db.pool, &event_id, "delivered").await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), worker)
        .await
        .unwrap()
        .unwrap();

    let got = receiver.all().await;
    assert_eq!(got.len(), 3, "two failures then one success");
    let now = chrono::Utc::now().timestamp();
    let delivery_id = header(&got[0], "x-callscope-delivery").to_string();
    for r in &got {
        // Same body and delivery id on every attempt; each attempt signed afresh.
        assert_eq!(r.body, got[0].body);
        assert_eq!(header(r, "x-callscope-delivery"), delivery_id);
        assert_eq!(header(r, "x-callscope-event"), "call.processed");
        assert_eq!(header(r, "content-type"), "application/json");
        let sig = header(r, "x-callscope-signature");
        assert_eq!(verify_signature(&secret, sig, &r.body, 300, now), Ok(()));
        assert!(verify_signature("whsec_wrong_secret_value", sig, &r.body, 300, now).is_err());
        // Independent check of the construction: hex HMAC-SHA256(secret, t + "." + body).
        let (t, v1) = sig.split_once(',').unwrap();
        let t = t.strip_prefix("t=").unwrap();
        let mut message = format!("{t}.").into_bytes();
        message.extend_from_slice(&r.body);
        assert_eq!(
            v1.strip_prefix("v1=").unwrap(),
            python_hmac_hex(&secret, &message)
        );
    }
    let envelope: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(envelope["id"], event_id);
    assert_eq!(envelope["event"], "call.processed");
    assert_eq!(envelope["data"], data);
    assert!(chrono::DateTime::parse_from_rfc3339(envelope["created_at"].as_str().unwrap()).is_ok());

    // The delivery log through the API.
    let page: Value = reqwest::Client::new()
        .get(format!(
            "{base}/api/v1/webhook-endpoints/{endpoint_id}/deliveries"
        ))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let deliveries = page["data"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1);
    let d = &deliveries[0];
    assert_eq!(d["id"], delivery_id);
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["attempts"], 3);
    assert_eq!(d["last_status_code"], 200);
    let log = d["log"].as_array().unwrap();
    let codes: Vec<i64> = log
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, vec![500, 500, 200]);
    let attempts: Vec<i64> = log.iter().map(|a| a["attempt"].as_i64().unwrap()).collect();
    assert_eq!(attempts, vec![1, 2, 3]);
    assert_eq!(log[0]["response_snippet"], "receiver is down");
    assert_eq!(log[2]["response_snippet"], "thanks");
    // Backoff: the second attempt came at least the first delay (50 ms) after the first.
    let t0 =
        chrono::DateTime::parse_from_rfc3339(log[0]["attempted_at"].as_str().unwrap()).unwrap();
    let t1 =
        chrono::DateTime::parse_from_rfc3339(log[1]["attempted_at"].as_str().unwrap()).unwrap();
    assert!((t1 - t0).num_milliseconds() >= 50, "{t0} → {t1}");
}

#[tokio::test]
async fn always_failing_receiver_goes_dead_then_redelivery_succeeds() {
    let db = db().await;
    let (org_id, key) = org(&db.pool, "acme").await;
    let base = api(&db).await;
    let receiver = Receiver::new(0);
    receiver.always_fail.store(true, Ordering::SeqCst);
    let url = receiver.start().await;
    let created = create_endpoint_http(&base, &key, &url, json!("*")).await;
    let endpoint_id = created["id"].as_str().unwrap().to_string();

    let event_id = enqueue_event(&db.pool, &org_id, "call.processed", json!({"n": 1}))
        .await
        .unwrap();
    let (stop, shutdown) = shutdown_signal();
    let client = webhooks::default_http_client(LOOPBACK_OK).unwrap();
    let worker = spawn_delivery_worker(db.pool.clone(), client, fast_config(4), shutdown);
    wait_for_status(&db.pool, &event_id, "dead").await;
    // Give the worker a few more polls: a dead row must not be attempted again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        receiver.hits.load(Ordering::SeqCst),
        4,
        "exactly max_attempts"
    );

    let http = reqwest::Client::new();
    let page: Value = http
        .get(format!(
            "{base}/api/v1/webhook-endpoints/{endpoint_id}/deliveries"
        ))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let d = &page["data"][0];
    assert_eq!(d["status"], "dead");
    assert_eq!(d["log"].as_array().unwrap().len(), 4);
    assert_eq!(d["last_error"], "HTTP 500");
    let delivery_id = d["id"].as_str().unwrap().to_string();

    // The receiver recovers; a manual redelivery goes through.
    receiver.always_fail.store(false, Ordering::SeqCst);
    let resp = http
        .post(format!(
            "{base}/api/v1/webhook-deliveries/{delivery_id}/redeliver"
        ))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "pending");
    wait_for_status(&db.pool, &event_id, "delivered").await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), worker)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(receiver.hits.load(Ordering::SeqCst), 5);
    let d = webhooks::get_delivery(&db.pool, &org_id, &delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.attempts, 5);
    assert_eq!(d.log.last().unwrap().status_code, Some(200));

    // Unknown delivery id → 404.
    let resp = http
        .post(format!("{base}/api/v1/webhook-deliveries/nope/redeliver"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn events_of_one_organization_never_reach_another() {
    let db = db().await;
    let (org_a, key_a) = org(&db.pool, "a").await;
    let (_org_b, key_b) = org(&db.pool, "b").await;
    let base = api(&db).await;
    let recv_a = Receiver::new(0);
    let recv_b = Receiver::new(0);
    let url_a = recv_a.start().await;
    let url_b = recv_b.start().await;
    let ep_a = create_endpoint_http(&base, &key_a, &url_a, json!("*")).await;
    let ep_b = create_endpoint_http(&base, &key_b, &url_b, json!("*")).await;
    let ep_a_id = ep_a["id"].as_str().unwrap();

    let event_id = enqueue_event(&db.pool, &org_a, "call.processed", json!({}))
        .await
        .unwrap();
    let (stop, shutdown) = shutdown_signal();
    let worker = spawn_delivery_worker(
        db.pool.clone(),
        webhooks::default_http_client(LOOPBACK_OK).unwrap(),
        fast_config(3),
        shutdown,
    );
    wait_for_status(&db.pool, &event_id, "delivered").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), worker)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recv_a.hits.load(Ordering::SeqCst), 1);
    assert_eq!(recv_b.hits.load(Ordering::SeqCst), 0);
    assert_eq!(outbox_status(&db.pool, &event_id).await.len(), 1);

    // B cannot see, read, redeliver or delete A's things: 404 everywhere, nothing changed.
    let http = reqwest::Client::new();
    let list: Value = http
        .get(format!("{base}/api/v1/webhook-endpoints"))
        .header("X-API-Key", &key_b)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![ep_b["id"].as_str().unwrap()]);
    assert!(
        list["data"][0].get("secret").is_none(),
        "secret never listed"
    );

    let resp = http
        .get(format!(
            "{base}/api/v1/webhook-endpoints/{ep_a_id}/deliveries"
        ))
        .header("X-API-Key", &key_b)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "not_found");

    let delivery_id: (String,) =
        sqlx::query_as("SELECT id FROM webhook_outbox WHERE event_id = $1")
            .bind(&event_id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let resp = http
        .post(format!(
            "{base}/api/v1/webhook-deliveries/{}/redeliver",
            delivery_id.0
        ))
        .header("X-API-Key", &key_b)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = http
        .delete(format!("{base}/api/v1/webhook-endpoints/{ep_a_id}"))
        .header("X-API-Key", &key_b)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(
        webhooks::get_endpoint(&db.pool, &org_a, ep_a_id)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(outbox_status(&db.pool, &event_id).await[0].1, "delivered");

    // Without a key: 401.
    let resp = http
        .get(format!("{base}/api/v1/webhook-endpoints"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn a_claimed_row_whose_lease_expired_is_retried_once() {
    let db = db().await;
    let (org_id, key) = org(&db.pool, "acme").await;
    let base = api(&db).await;
    let receiver = Receiver::new(0);
    let url = receiver.start().await;
    create_endpoint_http(&base, &key, &url, json!(["call.*"])).await;
    let event_id = enqueue_event(&db.pool, &org_id, "call.ended", json!({}))
        .await
        .unwrap();

    // A worker claims the row with a 400 ms lease and then "crashes" (never reports back).
    let now = callscope_api::ids::now_ms();
    let claimed = claim_due(&db.pool, now, 400, 5, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    // While the lease holds, nobody else may take it.
    assert!(
        claim_due(&db.pool, now + 100, 400, 5, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let (stop, shutdown) = shutdown_signal();
    let worker = spawn_delivery_worker(
        db.pool.clone(),
        webhooks::default_http_client(LOOPBACK_OK).unwrap(),
        fast_config(5),
        shutdown,
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.hits.load(Ordering::SeqCst), 0, "lease still held");
    wait_for_status(&db.pool, &event_id, "delivered").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), worker)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(receiver.hits.load(Ordering::SeqCst), 1);

    let d = webhooks::get_delivery(&db.pool, &org_id, &claimed[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.log.len(), 2);
    assert_eq!(d.log[0].attempt, 1);
    assert!(d.log[0].error.as_deref().unwrap().contains("lease expired"));
    assert_eq!(d.log[0].status_code, None);
    assert_eq!(d.log[1].attempt, 2);
    assert_eq!(d.log[1].status_code, Some(200));

    // The crashed worker waking up late cannot overwrite the outcome.
    let late = callscope_api::webhooks::outbox::record_attempt(
        &db.pool,
        &claimed[0],
        &callscope_api::webhooks::outbox::AttemptOutcome {
            attempted_at: now,
            duration_ms: 1,
            status_code: Some(500),
            response_snippet: None,
            error: None,
        },
        callscope_api::webhooks::outbox::AfterFailure::GiveUp,
    )
    .await
    .unwrap();
    assert!(!late);
    assert_eq!(outbox_status(&db.pool, &event_id).await[0].1, "delivered");
}

#[tokio::test]
async fn two_workers_never_send_the_same_row() {
    let db = db().await;
    let (org_id, key) = org(&db.pool, "acme").await;
    let base = api(&db).await;
    let receiver = Receiver::new(0);
    let url = receiver.start().await;
    create_endpoint_http(&base, &key, &url, json!("*")).await;
    let mut events = Vec::new();
    for i in 0..30 {
        events.push(
            enqueue_event(&db.pool, &org_id, "message.created", json!({ "i": i }))
                .await
                .unwrap(),
        );
    }
    let mut config = fast_config(3);
    config.batch_size = 4;
    let client = webhooks::default_http_client(LOOPBACK_OK).unwrap();
    let (stop1, s1) = shutdown_signal();
    let (stop2, s2) = shutdown_signal();
    let w1 = spawn_delivery_worker(db.pool.clone(), client.clone(), config.clone(), s1);
    let w2 = spawn_delivery_worker(db.pool.clone(), client, config, s2);
    for e in &events {
        wait_for_status(&db.pool, e, "delivered").await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop1.send(()).unwrap();
    stop2.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), w1)
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(15), w2)
        .await
        .unwrap()
        .unwrap();
    let got = receiver.all().await;
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| header(r, "x-callscope-delivery").to_string())
        .collect();
    assert_eq!(ids.len(), 30);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 30, "no delivery sent twice");
}

#[tokio::test]
async fn registration_validates_input_and_hides_the_secret() {
    let db = db().await;
    let (org_id, key) = org(&db.pool, "acme").await;
    let base = api(&db).await;
    let http = reqwest::Client::new();
    let post = |body: Value| {
        http.post(format!("{base}/api/v1/webhook-endpoints"))
            .header("X-API-Key", &key)
            .json(&body)
            .send()
    };
    for (body, field) in [
        (json!({"url": "ftp://example.com/x", "events": "*"}), "url"),
        (json!({"url": "not a url", "events": "*"}), "url"),
        (
            json!({"url": "https://u:p@example.com/", "events": "*"}),
            "url",
        ),
        (
            json!({"url": "https://example.com/", "events": ["call.procesed"]}),
            "events",
        ),
        (
            json!({"url": "https://example.com/", "events": []}),
            "events",
        ),
        (
            json!({"url": "https://example.com/", "events": "*", "secret": "short"}),
            "secret",
        ),
    ] {
        let resp = post(body.clone()).await.unwrap();
        assert_eq!(resp.status(), 422, "{body}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["code"], "validation_error");
        assert_eq!(err["details"]["field"], field, "{body}");
    }
    let resp = post(json!({"url": "https://example.com/", "bogus": 1}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 422, "unknown fields are refused");
    let resp = post(json!({"url": 5})).await.unwrap();
    assert_eq!(resp.status(), 422);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["code"],
        "validation_error"
    );
    let resp = http
        .post(format!("{base}/api/v1/webhook-endpoints"))
        .header("X-API-Key", &key)
        .body(r#"{"url":"https://example.com/"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415, "JSON content type required");
    let resp = http
        .post(format!("{base}/api/v1/webhook-endpoints"))
        .header("X-API-Key", &key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        webhooks::list_endpoints(&db.pool, &org_id)
            .await
            .unwrap()
            .len(),
        0,
        "nothing stored"
    );

    // A caller-chosen secret is accepted, returned once, then only as a prefix.
    let resp = post(json!({"url": "https://example.com/h", "events": ["call.processed"], "secret": "my-own-secret-0123456789"}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    assert_eq!(created["secret"], "my-own-secret-0123456789");
    let id = created["id"].as_str().unwrap().to_string();
    let list = http
        .get(format!("{base}/api/v1/webhook-endpoints"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!list.contains("my-own-secret-0123456789"));
    assert!(list.contains("my-own-sec"));

    // After deletion: not listed, receives nothing, its pending rows are given up.
    let event_id = enqueue_event(&db.pool, &org_id, "call.processed", json!({}))
        .await
        .unwrap();
    let resp = http
        .delete(format!("{base}/api/v1/webhook-endpoints/{id}"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(outbox_status(&db.pool, &event_id).await[0].1, "dead");
    let again = enqueue_event(&db.pool, &org_id, "call.processed", json!({}))
        .await
        .unwrap();
    assert!(outbox_status(&db.pool, &again).await.is_empty());
    let resp = http
        .delete(format!("{base}/api/v1/webhook-endpoints/{id}"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn a_hanging_receiver_times_out_and_is_retried() {
    let db = db().await;
    let (org_id, key) = org(&db.pool, "acme").await;
    let base = api(&db).await;
    let hits = Arc::new(AtomicUsize::new(0));
    async fn hook(State(hits): State<Arc<AtomicUsize>>) -> StatusCode {
        if hits.fetch_add(1, Ordering::SeqCst) == 0 {
            // Far longer than the request timeout below.
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        StatusCode::NO_CONTENT
    }
    async fn moved() -> (StatusCode, [(&'static str, &'static str); 1]) {
        (StatusCode::FOUND, [("location", "/elsewhere")])
    }
    let recv = serve(
        Router::new()
            .route("/hook", post(hook))
            .route("/moved", post(moved))
            .with_state(hits.clone()),
    )
    .await;
    let ep = create_endpoint_http(&base, &key, &format!("{recv}/hook"), json!("*")).await;
    let moved_ep = create_endpoint_http(&base, &key, &format!("{recv}/moved"), json!("*")).await;
    let event_id = enqueue_event(&db.pool, &org_id, "call.ended", json!({}))
        .await
        .unwrap();

    let mut config = fast_config(2);
    config.request_timeout = Duration::from_millis(300);
    let (stop, shutdown) = shutdown_signal();
    let worker = spawn_delivery_worker(
        db.pool.clone(),
        webhooks::default_http_client(LOOPBACK_OK).unwrap(),
        config,
        shutdown,
    );
    for _ in 0..500 {
        let rows = outbox_status(&db.pool, &event_id).await;
        if rows.iter().all(|(_, s)| s != "pending") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), worker)
        .await
        .unwrap()
        .unwrap();

    let page = webhooks::list_deliveries(&db.pool, &org_id, ep["id"].as_str().unwrap(), 10, None)
        .await
        .unwrap()
        .unwrap();
    let d = &page[0];
    assert_eq!(d.status, webhooks::DeliveryStatus::Delivered);
    assert_eq!(d.log.len(), 2);
    assert_eq!(d.log[0].status_code, None);
    assert!(
        d.log[0].error.as_deref().unwrap().contains("timed out"),
        "{:?}",
        d.log[0]
    );
    assert!(
        d.log[0].duration_ms < 3000,
        "bounded by the timeout: {}",
        d.log[0].duration_ms
    );
    assert_eq!(d.log[1].status_code, Some(204));

    // A 3xx is not followed (the signed body is not re-sent elsewhere): it is a failure.
    let page = webhooks::list_deliveries(
        &db.pool,
        &org_id,
        moved_ep["id"].as_str().unwrap(),
        10,
        None,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(page[0].status, webhooks::DeliveryStatus::Dead);
    assert_eq!(
        page[0]
            .log
            .iter()
            .map(|a| a.status_code)
            .collect::<Vec<_>>(),
        vec![Some(302), Some(302)]
    );
}

#[tokio::test]
async fn deliveries_are_paged_newest_first() {
    let db = db().await;
    let (org_id, key) = org(&db.pool, "acme").await;
    let base = api(&db).await;
    let ep = create_endpoint_http(&base, &key, "https://example.invalid/hook", json!("*")).await;
    let ep_id = ep["id"].as_str().unwrap();
    let mut events = Vec::new();
    for i in 0..5 {
        events.push(
            enqueue_event(&db.pool, &org_id, "note.created", json!({ "i": i }))
                .await
                .unwrap(),
        );
    }
    let http = reqwest::Client::new();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let mut url = format!("{base}/api/v1/webhook-endpoints/{ep_id}/deliveries?limit=2");
        if let Some(c) = &cursor {
            url.push_str(&format!("&before={c}"));
        }
        let page: Value = http
            .get(url)
            .header("X-API-Key", &key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for d in page["data"].as_array().unwrap() {
            seen.push(d["event_id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    events.reverse();
    assert_eq!(seen, events);
    let resp = http
        .get(format!(
            "{base}/api/v1/webhook-endpoints/{ep_id}/deliveries?limit=0"
        ))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
}
