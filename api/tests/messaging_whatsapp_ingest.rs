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

/// A server with one organization, a webhook endpoint subscribed to everything (so outbox
/// rows are written) and the WhatsApp channel the notifications are for.
async fn server_with_channel() -> (TestServer, String, String) {
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
    (s, org, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_notifications_are_stored_once_and_a_bad_one_fails_alone() {
    let (s, org, _key) = server_with_channel().await;
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

    let server = &s;
    let answers: Vec<(Kind, u16, Value)> =
        futures::stream::iter(posts.into_iter().map(|(kind, body)| async move {
            let (status, v) = post_signed(server, body).await;
            (kind, status, v)
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

/// One notification carrying several messages, from `(wa_id, profile name)` senders: each
/// message is `(from, wamid, text, unix seconds)`.
fn notification(senders: &[(&str, &str)], messages: &[(&str, &str, &str, i64)]) -> Vec<u8> {
    let contacts: Vec<Value> = senders
        .iter()
        .map(|(wa_id, name)| json!({"profile": {"name": name}, "wa_id": wa_id}))
        .collect();
    let messages: Vec<Value> = messages
        .iter()
        .map(|(from, wamid, text, ts)| {
            json!({"from": from, "id": wamid, "timestamp": ts.to_string(),
                   "type": "text", "text": {"body": text}})
        })
        .collect();
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA-1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": contacts,
            "messages": messages
        }}]}]
    }))
    .unwrap()
}

async fn post_signed(s: &TestServer, body: Vec<u8>) -> (u16, Value) {
    let r = s
        .http
        .post(s.url("/api/v1/webhooks/whatsapp"))
        .header("content-type", "application/json")
        .header("X-Hub-Signature-256", sign(APP_SECRET, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The batched write path on one batch that has everything at once: a returning sender, a
/// new sender, a CRM contact writing on WhatsApp for the first time, a wamid twice in the
/// batch, a wamid stored by an earlier batch, a STOP keyword. The result must be what the
/// per-message path stores: each wamid once (first occurrence wins), one contact and one
/// conversation per person, events per stored message in order, the conversation's last
/// activity at its newest message, and a replay of the whole batch changing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batch_mixing_new_known_and_repeated_messages_is_stored_like_one_by_one() {
    let (s, org, key) = server_with_channel().await;
    let (known, new, crm) = ("14155552001", "14155552003", "14155552002");

    // A returning sender: first message in a batch of its own.
    let (st, v) = post_signed(
        &s,
        notification(
            &[(known, "Kay")],
            &[(known, "wamid.K1", "earlier", 1763700000)],
        ),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    // A CRM contact without a name, known by phone only.
    let (st, crm_contact) = post_json(
        &s,
        &key,
        "/api/v1/contacts",
        json!({"phones": ["+1 415 555 2002"]}),
    )
    .await;
    assert_eq!(st, 201, "{crm_contact}");
    let crm_id = crm_contact["id"].as_str().unwrap().to_string();

    let batch = notification(
        &[(known, "Kay"), (new, "Enn"), (crm, "Pea")],
        &[
            (known, "wamid.K2", "second", 1763700010),
            (new, "wamid.N1", "hello", 1763700011),
            (known, "wamid.K2", "second, repeated", 1763700012),
            (crm, "wamid.P1", "hi from the CRM contact", 1763700013),
            (known, "wamid.K1", "earlier, replayed", 1763700014),
            (new, "wamid.N2", "Stop!", 1763700015),
            (known, "wamid.K3", "third", 1763700016),
        ],
    );
    let (st, v) = post_signed(&s, batch.clone()).await;
    assert_eq!(st, 200, "{v}");

    let q = |sql: &'static str| count(&s, sql, &org);
    let snapshot = || async {
        vec![
            q("SELECT COUNT(*) FROM messages WHERE org_id = $1").await,
            q("SELECT COUNT(*) FROM contacts WHERE org_id = $1").await,
            q("SELECT COUNT(*) FROM conversations WHERE org_id = $1").await,
            q("SELECT COUNT(*) FROM timeline_events WHERE org_id = $1 AND kind = 'message.created'").await,
            q("SELECT COUNT(*) FROM event_stream WHERE org_id = $1 AND event = 'message.created'").await,
            q("SELECT COUNT(*) FROM webhook_outbox WHERE org_id = $1 AND event = 'message.created'").await,
            q("SELECT COUNT(*) FROM event_stream WHERE org_id = $1").await,
        ]
    };
    let after = snapshot().await;
    // K1 K2 K3 N1 N2 P1; three people; one conversation each; an event of each kind per message.
    assert_eq!(after[..6], [6, 3, 3, 6, 6, 6], "{after:?}");

    // Each wamid once, the first occurrence's text.
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT external_id, content, contact_id FROM messages WHERE org_id = $1 ORDER BY id",
    )
    .bind(&org)
    .fetch_all(s.pool())
    .await
    .unwrap();
    let texts: Vec<(&str, &str)> = rows
        .iter()
        .map(|(w, t, _)| (w.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        texts,
        [
            ("wamid.K1", "earlier"),
            ("wamid.K2", "second"),
            ("wamid.N1", "hello"),
            ("wamid.P1", "hi from the CRM contact"),
            ("wamid.N2", "Stop!"),
            ("wamid.K3", "third"),
        ],
        "stored in batch order, each wamid once"
    );
    // The CRM contact got the message and its WhatsApp profile name (it had none).
    let p1_contact = &rows[3].2;
    assert_eq!(p1_contact, &crm_id);
    let (st, c) = s
        .get_json(&key, &format!("/api/v1/contacts/{crm_id}"))
        .await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["display_name"], "Pea", "{c}");
    // The new sender's STOP withdrew WhatsApp consent in the same batch.
    let (st, n) = s
        .get_json(&key, &format!("/api/v1/contacts/{}", rows[2].2))
        .await;
    assert_eq!(st, 200, "{n}");
    assert_eq!(n["display_name"], "Enn", "{n}");
    assert_eq!(n["consent"]["whatsapp"]["status"], "opted_out", "{n}");

    // The returning sender's conversation: last activity at its newest message.
    let (last,): (i64,) = sqlx::query_as(
        "SELECT last_activity_at FROM conversations WHERE org_id = $1 AND contact_id = $2",
    )
    .bind(&org)
    .bind(&rows[0].2)
    .fetch_one(s.pool())
    .await
    .unwrap();
    assert_eq!(last, 1763700016 * 1000);

    // The realtime stream has the batch's message.created in message order, each carrying
    // its own message.
    let stream: Vec<(String,)> = sqlx::query_as(
        "SELECT data FROM event_stream WHERE org_id = $1 AND event = 'message.created' ORDER BY seq",
    )
    .bind(&org)
    .fetch_all(s.pool())
    .await
    .unwrap();
    let streamed: Vec<String> = stream
        .iter()
        .map(|(d,)| {
            let v: Value = serde_json::from_str(d).unwrap();
            v["message"]["external_id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        streamed,
        [
            "wamid.K1", "wamid.K2", "wamid.N1", "wamid.P1", "wamid.N2", "wamid.K3"
        ]
    );
    // Timeline events point at the messages they announce.
    assert_eq!(
        q(
            "SELECT COUNT(*) FROM timeline_events t JOIN messages m ON m.id = t.ref_id
           AND m.conversation_id = t.conversation_id AND m.contact_id = t.contact_id
           WHERE t.org_id = $1 AND t.kind = 'message.created'"
        )
        .await,
        6
    );

    // The whole batch again (Meta redelivers): 200, nothing changes.
    let (st, v) = post_signed(&s, batch).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(snapshot().await, after);

    s.running.shutdown().await;
}
