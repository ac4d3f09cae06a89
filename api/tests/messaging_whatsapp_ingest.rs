//! WhatsApp ingestion under concurrency: many signed notifications at once go through the
//! group-commit writer (`messaging::whatsapp::ingest`). Real server, real SQLite, real HTTP
//! on 127.0.0.1. Every distinct message must be stored exactly once, replays must change
//! nothing, and a notification that cannot be stored must be refused alone, without costing
//! the notifications committed with it their place.

mod common;

use callscope_api::messaging::whatsapp::signature::sign;
use common::{TestServer, post_json};
use futures::StreamExt;
use serde_json::{Value, json};

const APP_SECRET: &str = "app-secret-0123456789";
const PHONE_NUMBER_ID: &str = "PN-BATCH";
/// Distinct senders; each sends `PER_SENDER` messages.
const SENDERS: usize = 40;
const PER_SENDER: usize = 4;
/// The one message the database refuses (a trigger this test installs).
const POISON_WAMID: &str = "wamid.POISON";

fn text_from(wa_id: &str, wamid: &str, text: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA-1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": format!("Sender {wa_id}")}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": wamid, "timestamp": "1763700000",
                          "type": "text", "text": {"body": text}}]
        }}]}]
    }))
    .unwrap()
}

fn wa_id(sender: usize) -> String {
    format!("1415555{:04}", 1000 + sender)
}

/// What a post is, and so what it must be answered.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Distinct,
    Replay,
    Malformed,
    Poison,
}

async fn count(s: &TestServer, sql: &str, org: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
        .bind(org)
        .fetch_one(s.pool())
        .await
        .unwrap();
    n
}

/// `name_sum` and `name_count` of a summary in the Prometheus text.
fn summary(text: &str, name: &str) -> (f64, f64) {
    let value = |suffix: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}_{suffix} ")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (value("sum"), value("count"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_notifications_are_stored_once_and_a_bad_one_fails_alone() {
    let s = TestServer::start(|_| {}).await;
    let (org, key) = s.org("acme").await;
    callscope_api::webhooks::create_endpoint(
        s.pool(),
        &org,
        callscope_api::webhooks::NewEndpoint {
            url: "http://127.0.0.1:9/unused".into(),
            events: vec!["*".into()],
            secret: None,
            description: None,
        },
    )
    .await
    .unwrap();
    let (st, v) = post_json(
        &s,
        &key,
        "/api/v1/channels",
        json!({
            "kind": "whatsapp", "name": "Batch WhatsApp",
            "phone_number_id": PHONE_NUMBER_ID, "business_account_id": "WABA-1",
            "verify_token": "verify-token-abcdef", "app_secret": APP_SECRET,
            "access_token": "EAAG-test-access-token-xyz", "graph_base_url": "http://127.0.0.1:9/v21.0",
        }),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    // A real refusal by the database for one message: the writer must treat it as that
    // notification's own fault.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON messages WHEN NEW.external_id = '{POISON_WAMID}'
         BEGIN SELECT RAISE(ABORT, 'message refused by the test trigger'); END"
    )))
    .execute(s.pool())
    .await
    .unwrap();

    // 160 distinct messages, 38 replays of them, one unparseable body and the poison one in
    // the middle: 200 posts.
    let mut posts: Vec<(Kind, Vec<u8>)> = Vec::new();
    for i in 0..SENDERS * PER_SENDER {
        let sender = i % SENDERS;
        let body = text_from(
            &wa_id(sender),
            &format!("wamid.B{i}"),
            &format!("message {i}"),
        );
        posts.push((Kind::Distinct, body.clone()));
        if i % 4 == 1 && posts.len() < 190 {
            posts.push((Kind::Replay, body));
        }
        if i == 80 {
            posts.push((
                Kind::Malformed,
                b"{\"object\": \"whatsapp_business_account\", \"entry\": [".to_vec(),
            ));
            posts.push((Kind::Poison, text_from(&wa_id(3), POISON_WAMID, "poison")));
        }
    }
    let replays = posts.iter().filter(|(k, _)| *k == Kind::Replay).count();
    assert_eq!(posts.len(), 200, "{replays} replays");

    let url = s.url("/api/v1/webhooks/whatsapp");
    let answers: Vec<(Kind, u16, Value)> =
        futures::stream::iter(posts.into_iter().map(|(kind, body)| {
            let (http, url) = (s.http.clone(), url.clone());
            async move {
                let r = http
                    .post(url)
                    .header("content-type", "application/json")
                    .header("X-Hub-Signature-256", sign(APP_SECRET, &body))
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                (kind, status, v)
            }
        }))
        .buffer_unordered(32)
        .collect()
        .await;

    for (kind, status, v) in &answers {
        match kind {
            Kind::Distinct | Kind::Replay => assert_eq!(*status, 200, "{kind:?}: {v}"),
            Kind::Malformed => {
                assert_eq!(*status, 400, "{v}");
                assert_eq!(v["code"], "invalid_payload", "{v}");
            }
            Kind::Poison => {
                assert_eq!(*status, 422, "{v}");
                assert_eq!(v["code"], "notification_not_stored", "{v}");
                let msg = v["error"].as_str().unwrap_or_default();
                assert!(msg.contains("refused by the test trigger"), "{v}");
            }
        }
    }

    let distinct = (SENDERS * PER_SENDER) as i64;
    let q = |sql: &'static str| count(&s, sql, &org);
    assert_eq!(
        q("SELECT COUNT(*) FROM messages WHERE org_id = $1").await,
        distinct
    );
    assert_eq!(
        q("SELECT COUNT(DISTINCT external_id) FROM messages WHERE org_id = $1 AND external_id LIKE 'wamid.B%'").await,
        distinct
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM timeline_events WHERE org_id = $1 AND kind = 'message.created'")
            .await,
        distinct
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM event_stream WHERE org_id = $1 AND event = 'message.created'")
            .await,
        distinct
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM webhook_outbox WHERE org_id = $1 AND event = 'message.created'")
            .await,
        distinct
    );
    // One contact and one open conversation per sender, however their messages were batched.
    assert_eq!(
        q("SELECT COUNT(*) FROM contacts WHERE org_id = $1").await,
        SENDERS as i64
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM conversations WHERE org_id = $1").await,
        SENDERS as i64
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM webhook_outbox WHERE org_id = $1 AND event = 'conversation.created'").await,
        SENDERS as i64
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM contacts WHERE org_id = $1 AND display_name LIKE 'Sender %'").await,
        SENDERS as i64
    );
    // The poisoned sender's other messages are all there; the poison is not.
    assert_eq!(
        q("SELECT COUNT(*) FROM messages WHERE org_id = $1 AND external_id = 'wamid.POISON'").await,
        0
    );

    // The writer did group notifications: more notifications than transactions.
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (sum, batches) = summary(&metrics, "callscope_whatsapp_ingest_batch_size");
    assert!(batches >= 1.0, "no batch recorded:\n{metrics}");
    assert!(
        sum > batches,
        "{sum} notifications in {batches} batches: none grouped"
    );
    // Every post that reached the writer was batched once: the distinct ones, the replays
    // and the poison (the malformed one was refused before).
    assert_eq!(
        sum,
        (distinct as usize + replays + 1) as f64,
        "{batches} batches"
    );
    eprintln!("{sum} notifications in {batches} transactions");

    s.running.shutdown().await;
}
