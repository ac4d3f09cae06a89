//! WhatsApp Cloud API channel end to end: a real server (real SQLite, real HTTP on
//! 127.0.0.1), signed webhooks built the way Meta signs them, and `GraphApiDouble`, a local
//! HTTP server standing in for Meta's Graph API (which cannot be reached from here).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use callscope_api::messaging::whatsapp::signature::sign;
use common::{TestServer, post_json};
use serde_json::{Value, json};
use tokio::sync::Mutex;

const APP_SECRET: &str = "app-secret-0123456789";
const VERIFY_TOKEN: &str = "verify-token-abcdef";
const ACCESS_TOKEN: &str = "EAAG-test-access-token-xyz";
/// Sends to this wa_id fail the way Meta refuses a number outside the test allow-list.
const REFUSED_WA_ID: &str = "14155550999";

/// A request the Graph API double received.
#[derive(Debug, Clone)]
struct GraphRequest {
    phone_number_id: String,
    authorization: String,
    body: Value,
}

/// Stands in for `POST {graph}/{phone_number_id}/messages`: records the request, answers
/// like Meta (a wamid), or with Meta's error JSON for `REFUSED_WA_ID`.
#[derive(Clone, Default)]
struct GraphApiDouble {
    requests: Arc<Mutex<Vec<GraphRequest>>>,
}

impl GraphApiDouble {
    async fn start(&self) -> String {
        async fn messages(
            State(d): State<GraphApiDouble>,
            Path(phone_number_id): Path<String>,
            headers: HeaderMap,
            body: Bytes,
        ) -> (StatusCode, String) {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let to = body["to"].as_str().unwrap_or_default().to_string();
            let mut reqs = d.requests.lock().await;
            reqs.push(GraphRequest {
                phone_number_id,
                authorization: headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string(),
                body,
            });
            if to == REFUSED_WA_ID {
                return (
                    StatusCode::BAD_REQUEST,
                    json!({"error": {"message": "(#131030) Recipient phone number not in allowed list",
                        "type": "OAuthException", "code": 131030,
                        "error_data": {"messaging_product": "whatsapp",
                                       "details": "Recipient phone number not in allowed list"},
                        "fbtrace_id": "Axyz"}})
                    .to_string(),
                );
            }
            let n = reqs.len();
            (
                StatusCode::OK,
                json!({"messaging_product": "whatsapp",
                       "contacts": [{"input": to, "wa_id": to}],
                       "messages": [{"id": format!("wamid.OUT{n}")}]})
                .to_string(),
            )
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/v21.0/{phone_number_id}/messages", post(messages))
            .with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}/v21.0")
    }

    async fn all(&self) -> Vec<GraphRequest> {
        self.requests.lock().await.clone()
    }
}

async fn patch_json(s: &TestServer, key: &str, path: &str, body: Value) -> (u16, Value) {
    common::request_json(s, key, reqwest::Method::PATCH, path, body).await
}

async fn create_channel(s: &TestServer, key: &str, phone_number_id: &str, graph: &str) -> Value {
    let (st, v) = post_json(
        s,
        key,
        "/api/v1/channels",
        json!({
            "kind": "whatsapp", "name": "Support WhatsApp",
            "phone_number_id": phone_number_id, "business_account_id": "WABA-1",
            "verify_token": VERIFY_TOKEN, "app_secret": APP_SECRET,
            "access_token": ACCESS_TOKEN, "graph_base_url": graph,
        }),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    v
}

fn notification(phone_number_id: &str, value: Value) -> Vec<u8> {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] =
        json!({"display_phone_number": "15550001111", "phone_number_id": phone_number_id});
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA-1", "changes": [{"field": "messages", "value": value}]}]
    }))
    .unwrap()
}

fn text_from(wa_id: &str, name: &str, wamid: &str, text: &str) -> Value {
    json!({
        "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
        "messages": [{"from": wa_id, "id": wamid, "timestamp": "1763700000",
                      "type": "text", "text": {"body": text}}]
    })
}

/// POST a webhook body with the given signature header (or none).
async fn deliver(s: &TestServer, body: &[u8], signature: Option<String>) -> u16 {
    let mut req = s
        .http
        .post(s.url("/api/v1/webhooks/whatsapp"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(sig) = signature {
        req = req.header("X-Hub-Signature-256", sig);
    }
    req.send().await.unwrap().status().as_u16()
}

async fn deliver_signed(s: &TestServer, body: &[u8]) -> u16 {
    deliver(s, body, Some(sign(APP_SECRET, body))).await
}

async fn count(s: &TestServer, table: &str) -> i64 {
    // Table names are literals of this file, never input.
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(s.pool())
        .await
        .unwrap();
    n
}

async fn subscribe_everything(s: &TestServer, org: &str) {
    callscope_api::webhooks::create_endpoint(
        s.pool(),
        org,
        callscope_api::webhooks::NewEndpoint {
            url: "http://127.0.0.1:9/unused".into(),
            events: vec!["*".into()],
            secret: None,
            description: None,
        },
    )
    .await
    .unwrap();
}

/// A server with a WhatsApp channel `PN-1` pointed at `graph`, every event subscribed, and a
/// conversation opened by an inbound text from `wa_id`; returns (org, key, conversation id).
async fn inbox_with_conversation(
    s: &TestServer,
    graph_base: &str,
    wa_id: &str,
) -> (String, String, String) {
    let (org, key) = s.org("acme").await;
    subscribe_everything(s, &org).await;
    create_channel(s, &key, "PN-1", graph_base).await;
    let body = notification("PN-1", text_from(wa_id, "Ada", "wamid.IN1", "hello?"));
    assert_eq!(deliver_signed(s, &body).await, 200);
    let (_, list) = s.get_json(&key, "/api/v1/conversations").await;
    let conv = list["data"][0]["id"].as_str().unwrap().to_string();
    (org, key, conv)
}

/// Posts an outbound message to conversation `conv`; the status and the JSON answer.
async fn send_message(s: &TestServer, key: &str, conv: &str, body: Value) -> (u16, Value) {
    post_json(
        s,
        key,
        &format!("/api/v1/conversations/{conv}/messages"),
        body,
    )
    .await
}

async fn outbox_events(s: &TestServer, org: &str) -> Vec<String> {
    sqlx::query_as::<_, (String,)>(
        "SELECT event FROM webhook_outbox WHERE org_id = $1 ORDER BY created_at, id",
    )
    .bind(org)
    .fetch_all(s.pool())
    .await
    .unwrap()
    .into_iter()
    .map(|(e,)| e)
    .collect()
}

#[tokio::test]
async fn verification_handshake_echoes_the_challenge_only_for_the_right_token() {
    let s = TestServer::start(|_| {}).await;
    let (_, key) = s.org("acme").await;
    create_channel(&s, &key, "PN-1", "http://127.0.0.1:9/v21.0").await;
    let url = |mode: &str, token: &str| {
        s.url(&format!(
            "/api/v1/webhooks/whatsapp?hub.mode={mode}&hub.verify_token={token}&hub.challenge=1158201444"
        ))
    };
    let r = s
        .http
        .get(url("subscribe", VERIFY_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(r.text().await.unwrap(), "1158201444");

    let r = s
        .http
        .get(url("subscribe", "wrong-token-000"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_ne!(r.text().await.unwrap(), "1158201444");
    let r = s
        .http
        .get(url("unsubscribe", VERIFY_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = s
        .http
        .get(s.url("/api/v1/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    s.running.shutdown().await;
}

#[tokio::test]
async fn signed_text_and_media_create_one_conversation_with_events() {
    let s = TestServer::start(|_| {}).await;
    let (org, key) = s.org("acme").await;
    subscribe_everything(&s, &org).await;
    create_channel(&s, &key, "PN-1", "http://127.0.0.1:9/v21.0").await;

    let body = notification(
        "PN-1",
        text_from(
            "14155552671",
            "Ada Lovelace",
            "wamid.IN1",
            "Hello, my order is late",
        ),
    );
    assert_eq!(deliver_signed(&s, &body).await, 200);
    let media = notification(
        "PN-1",
        json!({"messages": [
            {"from": "14155552671", "id": "wamid.IN2", "timestamp": "1763700010", "type": "image",
             "image": {"id": "MEDIA-77", "mime_type": "image/jpeg", "sha256": "c0ffee", "caption": "the receipt"}},
            {"from": "14155552671", "id": "wamid.IN3", "timestamp": "1763700020", "type": "location",
             "location": {"latitude": 37.77, "longitude": -122.42, "name": "Home"}},
            {"from": "14155552671", "id": "wamid.IN4", "timestamp": "1763700030", "type": "interactive",
             "interactive": {"type": "button_reply", "button_reply": {"id": "refund", "title": "Refund"}}}
        ]}),
    );
    assert_eq!(deliver_signed(&s, &media).await, 200);

    let (st, list) = s
        .get_json(&key, "/api/v1/conversations?channel=whatsapp")
        .await;
    assert_eq!(st, 200, "{list}");
    let convs = list["data"].as_array().unwrap();
    assert_eq!(convs.len(), 1, "{list}");
    let conv = &convs[0];
    assert_eq!(conv["status"], "open");
    assert_eq!(conv["channel"], "whatsapp");
    let conv_id = conv["id"].as_str().unwrap();
    let contact_id = conv["contact_id"].as_str().unwrap();

    let (_, contact) = s
        .get_json(&key, &format!("/api/v1/contacts/{contact_id}"))
        .await;
    assert_eq!(contact["phone"], "+14155552671", "{contact}");
    assert_eq!(contact["display_name"], "Ada Lovelace", "{contact}");

    let (st, msgs) = s
        .get_json(&key, &format!("/api/v1/conversations/{conv_id}/messages"))
        .await;
    assert_eq!(st, 200);
    let msgs = msgs["data"].as_array().unwrap().clone();
    assert_eq!(msgs.len(), 4);
    // Newest first.
    let interactive = &msgs[0];
    assert_eq!(interactive["content_type"], "interactive");
    assert_eq!(
        interactive["content_attributes"]["interactive"]["id"],
        "refund"
    );
    let location = &msgs[1];
    assert_eq!(
        location["content_attributes"]["location"]["latitude"],
        37.77
    );
    let image = &msgs[2];
    assert_eq!(image["content_type"], "image");
    assert_eq!(image["content"], "the receipt");
    assert_eq!(image["attachments"][0]["media_id"], "MEDIA-77");
    assert_eq!(image["attachments"][0]["mime_type"], "image/jpeg");
    assert_eq!(image["attachments"][0]["sha256"], "c0ffee");
    let text = &msgs[3];
    assert_eq!(text["content"], "Hello, my order is late");
    assert_eq!(text["direction"], "inbound");
    assert_eq!(text["status"], "received");
    assert_eq!(text["external_id"], "wamid.IN1");
    assert_eq!(text["sender"]["type"], "contact");
    assert_eq!(text["sender"]["id"], contact_id);
    assert_eq!(text["created_at"], "2025-11-21T04:40:00.000Z");

    let (_, timeline) = s
        .get_json(&key, &format!("/api/v1/contacts/{contact_id}/timeline"))
        .await;
    let kinds: Vec<&str> = timeline["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "message.created").count(),
        4,
        "{timeline}"
    );

    let events = outbox_events(&s, &org).await;
    assert_eq!(
        events,
        vec![
            // The sender was new to us: their contact is announced first.
            "contact.created",
            "conversation.created",
            "message.created",
            "message.created",
            "message.created",
            "message.created"
        ]
    );
    s.running.shutdown().await;
}

#[tokio::test]
async fn bad_or_missing_signatures_and_unknown_numbers_store_nothing() {
    let s = TestServer::start(|_| {}).await;
    let (org, key) = s.org("acme").await;
    subscribe_everything(&s, &org).await;
    create_channel(&s, &key, "PN-1", "http://127.0.0.1:9/v21.0").await;
    let body = notification("PN-1", text_from("14155552671", "Eve", "wamid.X", "hi"));

    assert_eq!(deliver(&s, &body, None).await, 401);
    assert_eq!(deliver(&s, &body, Some("sha256=nothex".into())).await, 401);
    assert_eq!(deliver(&s, &body, Some("md5=00".into())).await, 401);
    assert_eq!(
        deliver(&s, &body, Some(sign("some-other-app-secret", &body))).await,
        403
    );
    // A valid signature over different bytes: the body was tampered with.
    let tampered = notification("PN-1", text_from("14155552671", "Eve", "wamid.X", "pay me"));
    assert_eq!(
        deliver(&s, &tampered, Some(sign(APP_SECRET, &body))).await,
        403
    );

    // Unknown phone_number_id: acknowledged (Meta would retry otherwise), nothing stored.
    let unknown = notification(
        "PN-UNKNOWN",
        text_from("14155552671", "Eve", "wamid.Y", "hi"),
    );
    assert_eq!(deliver_signed(&s, &unknown).await, 200);
    // Not a WhatsApp notification at all.
    let junk = b"{\"object\":\"page\",\"entry\":[]}";
    assert_eq!(deliver_signed(&s, junk).await, 400);

    for table in [
        "messages",
        "conversations",
        "contacts",
        "channel_contacts",
        "timeline_events",
        "webhook_outbox",
    ] {
        assert_eq!(count(&s, table).await, 0, "{table} must stay empty");
    }
    s.running.shutdown().await;
}

#[tokio::test]
async fn a_replayed_webhook_changes_nothing() {
    let s = TestServer::start(|_| {}).await;
    let (org, key) = s.org("acme").await;
    subscribe_everything(&s, &org).await;
    create_channel(&s, &key, "PN-1", "http://127.0.0.1:9/v21.0").await;
    let body = notification("PN-1", text_from("14155552671", "Ada", "wamid.R1", "once"));
    assert_eq!(deliver_signed(&s, &body).await, 200);
    let before: Vec<i64> = futures::future::join_all(
        [
            "messages",
            "conversations",
            "contacts",
            "timeline_events",
            "webhook_outbox",
        ]
        .map(|t| count(&s, t)),
    )
    .await;
    // Outbox: contact.created, conversation.created, message.created.
    assert_eq!(before, vec![1, 1, 1, 1, 3]);
    for _ in 0..3 {
        assert_eq!(deliver_signed(&s, &body).await, 200);
    }
    let after: Vec<i64> = futures::future::join_all(
        [
            "messages",
            "conversations",
            "contacts",
            "timeline_events",
            "webhook_outbox",
        ]
        .map(|t| count(&s, t)),
    )
    .await;
    assert_eq!(before, after);
    s.running.shutdown().await;
}

async fn wait_for_message_status(
    s: &TestServer,
    key: &str,
    conv: &str,
    id: &str,
    status: &str,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, v) = s
            .get_json(key, &format!("/api/v1/conversations/{conv}/messages"))
            .await;
        if let Some(m) = v["data"].as_array().unwrap().iter().find(|m| m["id"] == id)
            && m["status"] == status
        {
            return m.clone();
        }
        assert!(
            Instant::now() < deadline,
            "message {id} never became {status}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn outbound_text_and_template_reach_the_graph_api_and_statuses_update_them() {
    let graph = GraphApiDouble::default();
    let graph_base = graph.start().await;
    let s = TestServer::start(|_| {}).await;
    let (org, key, conv) = inbox_with_conversation(&s, &graph_base, "14155552671").await;

    let (st, text) = send_message(&s, &key, &conv, json!({"content": "We are on it, Ada."})).await;
    assert_eq!(st, 201, "{text}");
    assert_eq!(text["status"], "sent");
    assert_eq!(text["direction"], "outbound");
    assert_eq!(text["external_id"], "wamid.OUT1");
    assert_eq!(text["sender"]["type"], "api_key");

    let components = json!([{"type": "body", "parameters": [{"type": "text", "text": "A-1001"}]}]);
    let (st, tpl) = send_message(&s, &key, &conv, json!({"content_type": "template",
               "template": {"name": "order_update", "language": "en_US", "components": components}})).await;
    assert_eq!(st, 201, "{tpl}");
    assert_eq!(tpl["status"], "sent");
    assert_eq!(tpl["content_type"], "template");
    assert_eq!(
        tpl["content_attributes"]["template"]["name"],
        "order_update"
    );

    let reqs = graph.all().await;
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(r.phone_number_id, "PN-1");
        assert_eq!(r.authorization, format!("Bearer {ACCESS_TOKEN}"));
        assert_eq!(r.body["messaging_product"], "whatsapp");
        assert_eq!(r.body["to"], "14155552671");
    }
    assert_eq!(reqs[0].body["type"], "text");
    assert_eq!(reqs[0].body["text"]["body"], "We are on it, Ada.");
    assert_eq!(reqs[1].body["type"], "template");
    assert_eq!(reqs[1].body["template"]["name"], "order_update");
    assert_eq!(reqs[1].body["template"]["language"]["code"], "en_US");
    assert_eq!(reqs[1].body["template"]["components"], components);

    // Meta's status callbacks: delivered, read, then a late (out-of-order) delivered.
    let statuses = |status: &str, ts: &str| {
        notification(
            "PN-1",
            json!({"statuses": [{"id": "wamid.OUT1", "status": status, "timestamp": ts,
                                 "recipient_id": "14155552671"}]}),
        )
    };
    assert_eq!(
        deliver_signed(&s, &statuses("delivered", "1763700100")).await,
        200
    );
    let m =
        wait_for_message_status(&s, &key, &conv, text["id"].as_str().unwrap(), "delivered").await;
    assert_eq!(m["delivered_at"], "2025-11-21T04:41:40.000Z");
    assert_eq!(
        deliver_signed(&s, &statuses("read", "1763700200")).await,
        200
    );
    assert_eq!(
        deliver_signed(&s, &statuses("delivered", "1763700100")).await,
        200
    );
    let m = wait_for_message_status(&s, &key, &conv, text["id"].as_str().unwrap(), "read").await;
    assert_eq!(m["read_at"], "2025-11-21T04:43:20.000Z");

    let events = outbox_events(&s, &org).await;
    let updated = events.iter().filter(|e| *e == "message.updated").count();
    // sent ×2 (the sends), delivered, read; the late delivered changes nothing.
    assert_eq!(updated, 4, "{events:?}");
    s.running.shutdown().await;
}

#[tokio::test]
async fn a_refused_send_is_kept_as_failed_with_metas_error() {
    let graph = GraphApiDouble::default();
    let graph_base = graph.start().await;
    let s = TestServer::start(|_| {}).await;
    let (_, key) = s.org("acme").await;
    create_channel(&s, &key, "PN-1", &graph_base).await;
    let body = notification("PN-1", text_from(REFUSED_WA_ID, "Bob", "wamid.IN9", "hi"));
    assert_eq!(deliver_signed(&s, &body).await, 200);
    let (_, list) = s.get_json(&key, "/api/v1/conversations").await;
    let conv = list["data"][0]["id"].as_str().unwrap().to_string();
    let (st, m) = send_message(&s, &key, &conv, json!({"content": "hello Bob"})).await;
    assert_eq!(st, 201, "{m}");
    assert_eq!(m["status"], "failed");
    assert_eq!(m["error"]["code"], "131030");
    assert_eq!(
        m["error"]["message"],
        "Recipient phone number not in allowed list"
    );
    assert!(m["failed_at"].is_string());
    // Kept: the conversation shows it.
    let (_, msgs) = s
        .get_json(&key, &format!("/api/v1/conversations/{conv}/messages"))
        .await;
    assert_eq!(msgs["data"][0]["id"], m["id"]);
    assert_eq!(msgs["data"][0]["content"], "hello Bob");
    assert_eq!(graph.all().await.len(), 1);

    // Validation: empty text, unknown type.
    let (st, _) = send_message(&s, &key, &conv, json!({"content": "  "})).await;
    assert_eq!(st, 422);
    let (st, _) = send_message(&s, &key, &conv, json!({"content_type": "image"})).await;
    assert_eq!(st, 422);
    assert_eq!(graph.all().await.len(), 1);
    s.running.shutdown().await;
}

async fn insert_user(s: &TestServer, org: &str, name: &str) -> String {
    let id = callscope_api::ids::new_id();
    sqlx::query(
        "INSERT INTO users (id, org_id, name, extension, role, sip_ha1_md5, sip_ha1_sha256,
             password_hash, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'agent', 'x', 'x', 'x', 0, 0)",
    )
    .bind(&id)
    .bind(org)
    .bind(name)
    .bind(format!("ext-{id}"))
    .execute(s.pool())
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn inbox_workflow_resolve_snooze_assign_filter_and_page() {
    let s = TestServer::start(|_| {}).await;
    let (org, key) = s.org("acme").await;
    subscribe_everything(&s, &org).await;
    create_channel(&s, &key, "PN-1", "http://127.0.0.1:9/v21.0").await;
    let agent = insert_user(&s, &org, "Agent Smith").await;

    for (i, wa) in ["14155550101", "14155550102", "14155550103"]
        .iter()
        .enumerate()
    {
        let body = notification("PN-1", text_from(wa, "C", &format!("wamid.W{i}"), "hi"));
        assert_eq!(deliver_signed(&s, &body).await, 200);
    }
    // Cursor pagination, newest first.
    let (_, p1) = s.get_json(&key, "/api/v1/conversations?limit=2").await;
    assert_eq!(p1["data"].as_array().unwrap().len(), 2);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = s
        .get_json(
            &key,
            &format!("/api/v1/conversations?limit=2&cursor={cursor}"),
        )
        .await;
    assert_eq!(p2["data"].as_array().unwrap().len(), 1);
    assert!(p2["next_cursor"].is_null());
    let all: Vec<String> = p1["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2["data"].as_array().unwrap())
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = all.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(all, sorted);
    let conv = all[2].clone(); // the first contact's conversation

    // Assign, prioritise, label.
    let (st, v) = patch_json(&s, &key, &format!("/api/v1/conversations/{conv}"),
        json!({"assignee_id": agent, "priority": "urgent", "labels": ["billing", " vip ", "billing"]})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["assignee_id"], agent.as_str());
    assert_eq!(v["priority"], "urgent");
    assert_eq!(v["labels"], json!(["billing", "vip"]));
    let (st, _) = patch_json(
        &s,
        &key,
        &format!("/api/v1/conversations/{conv}"),
        json!({"assignee_id": "no-such-user"}),
    )
    .await;
    assert_eq!(st, 422);
    let (st, _) = patch_json(
        &s,
        &key,
        &format!("/api/v1/conversations/{conv}"),
        json!({"status": "closed"}),
    )
    .await;
    assert_eq!(st, 422);
    let (_, mine) = s
        .get_json(&key, &format!("/api/v1/conversations?assignee={agent}"))
        .await;
    assert_eq!(mine["data"].as_array().unwrap().len(), 1);
    let (_, unassigned) = s
        .get_json(&key, "/api/v1/conversations?assignee=none")
        .await;
    assert_eq!(unassigned["data"].as_array().unwrap().len(), 2);
    let (st, _) = s.get_json(&key, "/api/v1/conversations?status=bogus").await;
    assert_eq!(st, 400);

    // Snooze until the contact writes again: an inbound message wakes it.
    let (_, v) = patch_json(
        &s,
        &key,
        &format!("/api/v1/conversations/{conv}"),
        json!({"status": "snoozed"}),
    )
    .await;
    assert_eq!(v["status"], "snoozed");
    let (_, snoozed) = s
        .get_json(&key, "/api/v1/conversations?status=snoozed")
        .await;
    assert_eq!(snoozed["data"].as_array().unwrap().len(), 1);
    let body = notification(
        "PN-1",
        text_from("14155550101", "C", "wamid.W10", "still there?"),
    );
    assert_eq!(deliver_signed(&s, &body).await, 200);
    let (_, v) = s
        .get_json(&key, &format!("/api/v1/conversations/{conv}"))
        .await;
    assert_eq!(v["status"], "open");

    // A snooze with a time in the past wakes on the next read.
    let (st, v) = patch_json(
        &s,
        &key,
        &format!("/api/v1/conversations/{conv}"),
        json!({"status": "snoozed", "snoozed_until": "2020-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (_, v) = s
        .get_json(&key, &format!("/api/v1/conversations/{conv}"))
        .await;
    assert_eq!(v["status"], "open");

    // Resolved: the next inbound message starts a new conversation.
    let (_, v) = patch_json(
        &s,
        &key,
        &format!("/api/v1/conversations/{conv}"),
        json!({"status": "resolved"}),
    )
    .await;
    assert_eq!(v["status"], "resolved");
    let body = notification(
        "PN-1",
        text_from("14155550101", "C", "wamid.W11", "new problem"),
    );
    assert_eq!(deliver_signed(&s, &body).await, 200);
    let contact = v["contact_id"].as_str().unwrap();
    let (_, theirs) = s
        .get_json(&key, &format!("/api/v1/conversations?contact_id={contact}"))
        .await;
    let theirs = theirs["data"].as_array().unwrap();
    assert_eq!(theirs.len(), 2);
    assert_eq!(theirs[0]["status"], "open");
    assert_ne!(theirs[0]["id"], conv.as_str());
    // Reopening the old one would make two unresolved conversations: refused.
    let (st, v) = patch_json(
        &s,
        &key,
        &format!("/api/v1/conversations/{conv}"),
        json!({"status": "open"}),
    )
    .await;
    assert_eq!(st, 409, "{v}");

    // Status and assignee changes are on the timeline and in the outbox.
    let (_, timeline) = s
        .get_json(&key, &format!("/api/v1/contacts/{contact}/timeline"))
        .await;
    let kinds: Vec<&str> = timeline["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "conversation.assignee_changed")
            .count(),
        1,
        "{kinds:?}"
    );
    // snoozed, open (woken), snoozed, open (expired), resolved.
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "conversation.status_changed")
            .count(),
        5,
        "{kinds:?}"
    );
    let events = outbox_events(&s, &org).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| *e == "conversation.status_changed")
            .count(),
        5
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| *e == "conversation.assignee_changed")
            .count(),
        1
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| *e == "conversation.updated")
            .count(),
        1
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| *e == "conversation.created")
            .count(),
        4
    );
    s.running.shutdown().await;
}

#[tokio::test]
async fn other_organizations_get_404_and_secrets_are_never_shown() {
    let s = TestServer::start(|_| {}).await;
    let (_, key_a) = s.org("a").await;
    let (_, key_b) = s.org("b").await;
    let created = create_channel(&s, &key_a, "PN-1", "http://127.0.0.1:9/v21.0").await;
    let channel = created["id"].as_str().unwrap();
    let text = created.to_string();
    for secret in [APP_SECRET, ACCESS_TOKEN, VERIFY_TOKEN] {
        assert!(!text.contains(secret), "{text}");
    }
    assert_eq!(created["app_secret_prefix"], "app-s…");
    let body = notification("PN-1", text_from("14155552671", "Ada", "wamid.IN1", "hi"));
    assert_eq!(deliver_signed(&s, &body).await, 200);
    let (_, list) = s.get_json(&key_a, "/api/v1/conversations").await;
    let conv = list["data"][0]["id"].as_str().unwrap().to_string();

    for path in [
        format!("/api/v1/conversations/{conv}"),
        format!("/api/v1/conversations/{conv}/messages"),
        format!("/api/v1/channels/{channel}"),
    ] {
        let (st, v) = s.get_json(&key_b, &path).await;
        assert_eq!(st, 404, "{path}: {v}");
    }
    let (st, _) = patch_json(
        &s,
        &key_b,
        &format!("/api/v1/conversations/{conv}"),
        json!({"status": "resolved"}),
    )
    .await;
    assert_eq!(st, 404);
    let (st, _) = post_json(
        &s,
        &key_b,
        &format!("/api/v1/conversations/{conv}/messages"),
        json!({"content": "x"}),
    )
    .await;
    assert_eq!(st, 404);
    let (st, _) = patch_json(
        &s,
        &key_b,
        &format!("/api/v1/channels/{channel}"),
        json!({"name": "mine"}),
    )
    .await;
    assert_eq!(st, 404);
    let r = s
        .http
        .delete(s.url(&format!("/api/v1/channels/{channel}")))
        .header("x-api-key", &key_b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (_, b_list) = s.get_json(&key_b, "/api/v1/conversations").await;
    assert_eq!(b_list["data"].as_array().unwrap().len(), 0);
    let (_, b_channels) = s.get_json(&key_b, "/api/v1/channels").await;
    assert_eq!(b_channels["data"].as_array().unwrap().len(), 0);
    // Nothing changed for A.
    let (_, v) = s
        .get_json(&key_a, &format!("/api/v1/conversations/{conv}"))
        .await;
    assert_eq!(v["status"], "open");
    let (_, v) = s
        .get_json(&key_a, &format!("/api/v1/channels/{channel}"))
        .await;
    assert_eq!(v["name"], "Support WhatsApp");
    assert!(!v.to_string().contains(ACCESS_TOKEN));
    assert_eq!(count(&s, "messages").await, 1);

    // A second channel with the same phone number id (any org) is refused.
    let (st, _) = post_json(&s, &key_b, "/api/v1/channels", json!({
        "kind": "whatsapp", "name": "dup", "phone_number_id": "PN-1", "verify_token": "another-token",
        "app_secret": "another-secret", "access_token": "another-access"})).await;
    assert_eq!(st, 409);
    // Without an API key: 401.
    let r = s
        .http
        .get(s.url("/api/v1/conversations"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    s.running.shutdown().await;
}

#[tokio::test]
async fn a_call_from_a_number_that_messaged_us_lands_in_the_same_contact() {
    let s = TestServer::start(|_| {}).await;
    let (_, key) = s.org("acme").await;
    create_channel(&s, &key, "PN-1", "http://127.0.0.1:9/v21.0").await;
    let body = notification(
        "PN-1",
        text_from("14155552671", "Ada", "wamid.IN1", "call me"),
    );
    assert_eq!(deliver_signed(&s, &body).await, 200);
    let (_, list) = s.get_json(&key, "/api/v1/conversations").await;
    let contact = list["data"][0]["contact_id"].as_str().unwrap().to_string();

    // A real (short) recording, uploaded with the number written another way.
    let wav = s.dir.path().join("tone.wav");
    let status = std::process::Command::new("sox")
        .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
        .arg(&wav)
        .args(["synth", "1", "sine", "440"])
        .status()
        .unwrap();
    assert!(status.success());
    let (st, call) = s
        .upload(
            &key,
            "call.wav",
            std::fs::read(&wav).unwrap(),
            &[("customer_phone", "(415) 555-2671")],
            None,
        )
        .await;
    assert_eq!(st, 202, "{call}");
    let call = s.wait_done(&key, call["id"].as_str().unwrap()).await;
    assert_eq!(call["contact_id"], contact.as_str(), "{call}");
    let (_, timeline) = s
        .get_json(&key, &format!("/api/v1/contacts/{contact}/timeline"))
        .await;
    let kinds: Vec<&str> = timeline["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"message.created"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k.starts_with("call.")), "{kinds:?}");
    s.running.shutdown().await;
}

/// Consent, merge and snooze rules of the inbox: a contact who opted out of WhatsApp gets
/// nothing (422, nothing stored or sent); merging two contacts that each have an open
/// conversation on the same channel keeps one open and resolves the other; a snooze ends on
/// time with no one reading, and says so by webhook.
#[tokio::test]
async fn opt_outs_merges_and_snoozes_follow_the_inbox_rules() {
    let graph = GraphApiDouble::default();
    let graph_base = graph.start().await;
    let s = TestServer::start(|_| {}).await;
    let (org, key) = s.org("acme").await;
    subscribe_everything(&s, &org).await;
    create_channel(&s, &key, "PN-1", &graph_base).await;
    for (wa_id, name, wamid) in [
        ("14155552671", "Ada", "wamid.A1"),
        ("14155552672", "Ada L.", "wamid.B1"),
    ] {
        let body = notification("PN-1", text_from(wa_id, name, wamid, "hello"));
        assert_eq!(deliver_signed(&s, &body).await, 200);
    }
    let (_, list) = s.get_json(&key, "/api/v1/conversations").await;
    let convs = list["data"].as_array().unwrap().clone();
    assert_eq!(convs.len(), 2, "{list}");
    let contact_of = |c: &Value| c["contact_id"].as_str().unwrap().to_string();
    let (conv_a, conv_b) = (
        convs[0]["id"].as_str().unwrap(),
        convs[1]["id"].as_str().unwrap(),
    );
    let (contact_a, contact_b) = (contact_of(&convs[0]), contact_of(&convs[1]));

    // 1. Opted out: refused, nothing stored, nothing sent.
    let (st, _) = patch_json(
        &s,
        &key,
        &format!("/api/v1/contacts/{contact_a}"),
        json!({"consent": {"whatsapp": {"status": "opted_out", "source": "replied STOP"}}}),
    )
    .await;
    assert_eq!(st, 200);
    let messages_before = count(&s, "messages").await;
    let (st, refused) = post_json(
        &s,
        &key,
        &format!("/api/v1/conversations/{conv_a}/messages"),
        json!({"content": "A special offer!"}),
    )
    .await;
    assert_eq!(st, 422, "{refused}");
    assert_eq!(refused["code"], "contact_opted_out");
    assert_eq!(refused["details"]["channel"], "whatsapp");
    assert_eq!(count(&s, "messages").await, messages_before);
    assert!(graph.all().await.is_empty());
    // Opted back in: sent.
    patch_json(
        &s,
        &key,
        &format!("/api/v1/contacts/{contact_a}"),
        json!({"consent": {"whatsapp": {"status": "opted_in"}}}),
    )
    .await;
    let (st, sent) = post_json(
        &s,
        &key,
        &format!("/api/v1/conversations/{conv_a}/messages"),
        json!({"content": "Thanks for opting in"}),
    )
    .await;
    assert_eq!((st, sent["status"].as_str()), (201, Some("sent")), "{sent}");

    // 2. Merge B into A: both had an open WhatsApp conversation on PN-1.
    let (st, merged) = post_json(
        &s,
        &key,
        &format!("/api/v1/contacts/{contact_a}/merge"),
        json!({"from": contact_b}),
    )
    .await;
    assert_eq!(st, 200, "{merged}");
    assert_eq!(merged["moved"]["conversations_resolved"], 1, "{merged}");
    let (_, a) = s
        .get_json(&key, &format!("/api/v1/conversations/{conv_a}"))
        .await;
    let (_, b) = s
        .get_json(&key, &format!("/api/v1/conversations/{conv_b}"))
        .await;
    assert_eq!(
        (a["status"].as_str(), b["status"].as_str()),
        (Some("open"), Some("resolved"))
    );
    assert_eq!(b["contact_id"], contact_a.as_str());
    // The merged contact's next message joins the open conversation.
    let body = notification(
        "PN-1",
        text_from("14155552672", "Ada L.", "wamid.B2", "again"),
    );
    assert_eq!(deliver_signed(&s, &body).await, 200);
    let (_, open) = s.get_json(&key, "/api/v1/conversations?status=open").await;
    let open = open["data"].as_array().unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["id"], conv_a);

    // 3. A snooze that ran out reopens by itself, announced, without any read.
    let (st, _) = patch_json(
        &s,
        &key,
        &format!("/api/v1/conversations/{conv_a}"),
        json!({"status": "snoozed", "snoozed_until": chrono::Utc::now().checked_add_signed(chrono::TimeDelta::seconds(1)).unwrap().to_rfc3339()}),
    )
    .await;
    assert_eq!(st, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    // The server's own sweeper (every 15 s) may have got there first on a slow machine.
    let reopened = callscope_api::messaging::snooze_sweep::sweep_once(s.pool())
        .await
        .unwrap();
    assert!(reopened <= 1, "{reopened}");
    let (status,): (String,) = sqlx::query_as("SELECT status FROM conversations WHERE id = $1")
        .bind(conv_a)
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(status, "open");
    let events = outbox_events(&s, &org).await;
    assert_eq!(
        events.last().map(String::as_str),
        Some("conversation.status_changed"),
        "{events:?}"
    );
    assert_eq!(
        callscope_api::messaging::snooze_sweep::sweep_once(s.pool())
            .await
            .unwrap(),
        0
    );
    s.running.shutdown().await;
}

/// A WhatsApp send cut off by a stop (committed `queued`, the Graph API's answer never
/// stored) is marked `failed` with `send_interrupted` at the next start, announced by
/// `message.updated`, and not sent again.
#[tokio::test]
async fn a_send_cut_off_by_a_stop_is_marked_failed_at_the_next_start() {
    let graph = GraphApiDouble::default();
    let graph_base = graph.start().await;
    let s = TestServer::start(|_| {}).await;
    let (org, key, conv) = inbox_with_conversation(&s, &graph_base, "14155552671").await;
    let (st, sent) = send_message(&s, &key, &conv, json!({"content": "We are on it."})).await;
    assert_eq!(st, 201, "{sent}");
    let id = sent["id"].as_str().unwrap().to_string();
    // The state a crash between the commit and Meta's answer leaves.
    sqlx::query(
        "UPDATE messages SET status = 'queued', sent_at = NULL, external_id = NULL WHERE id = $1",
    )
    .bind(&id)
    .execute(s.pool())
    .await
    .unwrap();
    let pool = s.pool().clone();
    let dir = s.dir.path().to_path_buf();
    s.running.shutdown().await;

    let restarted = callscope_api::server::start_with(
        pool.clone(),
        common::test_config(&dir),
        callscope_api::http::state::AsrState::NotConfigured,
    )
    .await
    .unwrap();
    let (status, code): (String, Option<String>) =
        sqlx::query_as("SELECT status, error_code FROM messages WHERE id = $1")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), code.as_deref()),
        ("failed", Some("send_interrupted"))
    );
    let updated: Vec<(String,)> = sqlx::query_as(
        "SELECT payload FROM webhook_outbox WHERE org_id = $1 AND event = 'message.updated'",
    )
    .bind(&org)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        updated
            .iter()
            .any(|(p,)| p.contains(&id) && p.contains("send_interrupted")),
        "{updated:?}"
    );
    // Sent once (before the "crash"), never again.
    assert_eq!(graph.all().await.len(), 1);
    restarted.shutdown().await;
}

#[tokio::test]
async fn a_customer_writing_stop_opts_out_and_start_opts_back_in() {
    let graph = GraphApiDouble::default();
    let graph_base = graph.start().await;
    let s = TestServer::start(|_| {}).await;
    let (_org, key, conv) = inbox_with_conversation(&s, &graph_base, "14155550142").await;
    let (_, conversation) = s
        .get_json(&key, &format!("/api/v1/conversations/{conv}"))
        .await;
    let contact = conversation["contact_id"].as_str().unwrap().to_string();
    let consent = |c: &Value| c["consent"]["whatsapp"]["status"].clone();

    // A sentence that merely contains the word changes nothing.
    let body = notification(
        "PN-1",
        text_from(
            "14155550142",
            "Ada",
            "wamid.K1",
            "please don't stop my plan",
        ),
    );
    assert_eq!(deliver_signed(&s, &body).await, 200);
    let (_, c) = s
        .get_json(&key, &format!("/api/v1/contacts/{contact}"))
        .await;
    assert_ne!(consent(&c), "opted_out", "{c}");

    // "Stop." alone: opted out, the message itself kept on the timeline, sends refused.
    let body = notification(
        "PN-1",
        text_from("14155550142", "Ada", "wamid.K2", " Stop. "),
    );
    assert_eq!(deliver_signed(&s, &body).await, 200);
    let (_, c) = s
        .get_json(&key, &format!("/api/v1/contacts/{contact}"))
        .await;
    assert_eq!(consent(&c), "opted_out", "{c}");
    assert_eq!(
        c["consent"]["whatsapp"]["source"], "whatsapp keyword",
        "{c}"
    );
    let (_, messages) = s
        .get_json(&key, &format!("/api/v1/conversations/{conv}/messages"))
        .await;
    assert!(messages.to_string().contains(" Stop. "), "{messages}");
    let (st, refused) =
        send_message(&s, &key, &conv, json!({"content": "Sorry to see you go"})).await;
    assert_eq!(st, 422, "{refused}");
    assert_eq!(refused["code"], "contact_opted_out");
    assert!(
        graph.all().await.is_empty(),
        "nothing reached the Graph API"
    );

    // A replay of the STOP after an opt-in through the API does not opt out again: the
    // message is a duplicate and changes nothing.
    patch_json(
        &s,
        &key,
        &format!("/api/v1/contacts/{contact}"),
        json!({"consent": {"whatsapp": {"status": "opted_in", "source": "phone call"}}}),
    )
    .await;
    assert_eq!(deliver_signed(&s, &body).await, 200);
    let (_, c) = s
        .get_json(&key, &format!("/api/v1/contacts/{contact}"))
        .await;
    assert_eq!(consent(&c), "opted_in", "{c}");

    // STOP again, then START: consent is back and sends go out.
    let body = notification("PN-1", text_from("14155550142", "Ada", "wamid.K3", "STOP"));
    assert_eq!(deliver_signed(&s, &body).await, 200);
    let body = notification("PN-1", text_from("14155550142", "Ada", "wamid.K4", "start"));
    assert_eq!(deliver_signed(&s, &body).await, 200);
    let (_, c) = s
        .get_json(&key, &format!("/api/v1/contacts/{contact}"))
        .await;
    assert_eq!(consent(&c), "opted_in", "{c}");
    let (st, sent) = send_message(&s, &key, &conv, json!({"content": "Welcome back"})).await;
    assert_eq!((st, sent["status"].as_str()), (201, Some("sent")), "{sent}");
}
