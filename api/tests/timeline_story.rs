//! The end-to-end story of issue 7 over REST and the realtime socket: a WhatsApp message
//! arrives (signed webhook), a call from the same number is uploaded, a note is added and a
//! task completed — one contact, one timeline, in order, also pushed over the WebSocket as it
//! happens; paged both ways, filtered by kind; calls with their insights; an agent who sees
//! only their own calls sees none of the others' here either.

mod common;

use callscope_api::messaging::whatsapp::signature::sign;
use common::events::{events_until, names};
use common::{CALL_VTT, TestServer, request_json, stereo_call};
use serde_json::{Value, json};

const APP_SECRET: &str = "story-app-secret-42";

fn kinds(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn one_contact_one_timeline_for_messages_calls_notes_and_tasks() {
    let s = TestServer::start(|_| {}).await;
    let (org, key) = s.org("acme").await;
    let post = reqwest::Method::POST;
    // Everything that happens is also announced by webhook.
    let (st, endpoint) = request_json(
        &s,
        &key,
        post.clone(),
        "/api/v1/webhook-endpoints",
        json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]}),
    )
    .await;
    assert_eq!(st, 201, "{endpoint}");
    // And pushed over the realtime socket as it happens.
    let (mut socket, ready_seq) = common::events::open(&s, &key, "").await;

    // 1. A WhatsApp message from +1 415 555 2671.
    let (st, channel) = request_json(
        &s,
        &key,
        post.clone(),
        "/api/v1/channels",
        json!({
        "kind": "whatsapp", "name": "Support", "phone_number_id": "PN-STORY",
        "business_account_id": "WABA-1", "verify_token": "verify-story",
        "app_secret": APP_SECRET, "access_token": "token-story",
        "graph_base_url": "http://127.0.0.1:9/v21.0"}),
    )
    .await;
    assert_eq!(st, 201, "{channel}");
    let body = serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA-1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "PN-STORY"},
            "contacts": [{"profile": {"name": "Ada"}, "wa_id": "14155552671"}],
            "messages": [{"from": "14155552671", "id": "wamid.STORY1", "timestamp": "1763700000",
                          "type": "text", "text": {"body": "I was charged twice, please call me"}}]
        }}]}]
    }))
    .unwrap();
    let r = s
        .http
        .post(s.url("/api/v1/webhooks/whatsapp"))
        .header("content-type", "application/json")
        .header("X-Hub-Signature-256", sign(APP_SECRET, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, conversations) = s.get_json(&key, "/api/v1/conversations").await;
    let contact = conversations["data"][0]["contact_id"]
        .as_str()
        .unwrap()
        .to_string();
    let conversation = conversations["data"][0]["id"].as_str().unwrap().to_string();

    // 2. A call from the same number, written another way, taken by agent 1001.
    let wav = std::fs::read(stereo_call(s.dir.path())).unwrap();
    let (st, call) = s
        .upload(
            &key,
            "call.wav",
            wav,
            &[
                ("channel_layout", "stereo_agent_left"),
                ("customer_phone", "(415) 555-2671"),
                ("agent_identifier", "1001"),
            ],
            Some(CALL_VTT),
        )
        .await;
    assert_eq!(st, 202, "{call}");
    let call_id = call["id"].as_str().unwrap().to_string();
    let call = s.wait_done(&key, &call_id).await;
    assert_eq!(call["contact_id"], contact.as_str(), "{call}");

    // 3. A note, and 4. a task created then completed.
    let (st, note) = request_json(
        &s,
        &key,
        post.clone(),
        "/api/v1/notes",
        json!({"contact_id": contact, "body": "Refund promised on the call"}),
    )
    .await;
    assert_eq!(st, 201, "{note}");
    let (st, task) = request_json(
        &s,
        &key,
        post.clone(),
        "/api/v1/tasks",
        json!({"title": "Send the refund confirmation", "contact_id": contact}),
    )
    .await;
    assert_eq!(st, 201, "{task}");
    let task_id = task["id"].as_str().unwrap();
    let (st, done) = request_json(
        &s,
        &key,
        post.clone(),
        &format!("/api/v1/tasks/{task_id}/complete"),
        json!({}),
    )
    .await;
    assert_eq!(st, 200, "{done}");

    // The socket saw the story as it happened, in the same order, each event once.
    let pushed = events_until(&mut socket, std::time::Duration::from_secs(20), |got| {
        names(got).iter().any(|n| n == "task.completed")
    })
    .await;
    let pushed_names = names(&pushed);
    let at = |k: &str| {
        pushed_names
            .iter()
            .position(|n| n == k)
            .unwrap_or_else(|| panic!("{k} not pushed: {pushed_names:?}"))
    };
    assert!(
        at("message.created") < at("call.processed"),
        "{pushed_names:?}"
    );
    assert!(
        at("call.processed") < at("note.created"),
        "{pushed_names:?}"
    );
    assert!(at("note.created") < at("task.created"), "{pushed_names:?}");
    assert!(
        at("task.created") < at("task.completed"),
        "{pushed_names:?}"
    );
    let seqs: Vec<i64> = pushed.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.first().is_some_and(|s| *s > ready_seq), "{seqs:?}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let message = &pushed[at("message.created")];
    assert_eq!(
        message["data"]["conversation"]["contact_id"],
        contact.as_str(),
        "{message}"
    );
    assert_eq!(
        pushed[at("call.processed")]["data"]["call"]["id"],
        call_id.as_str()
    );
    assert_eq!(
        pushed[at("task.completed")]["data"]["id"],
        task_id,
        "{pushed:?}"
    );

    // One timeline, newest first: what happened, in the order it happened.
    let (st, page) = s
        .get_json(&key, &format!("/api/v1/contacts/{contact}/timeline"))
        .await;
    assert_eq!(st, 200, "{page}");
    let all = kinds(&page);
    let pos = |k: &str| {
        all.iter()
            .position(|x| x.starts_with(k))
            .unwrap_or_else(|| panic!("no {k} in {all:?}"))
    };
    assert!(pos("task.completed") < pos("task.created"), "{all:?}");
    assert!(pos("task.created") < pos("note.created"), "{all:?}");
    assert!(pos("note.created") < pos("call."), "{all:?}");
    assert!(pos("call.") < pos("message.created"), "{all:?}");
    let times: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["occurred_at"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    // The call carries its insights.
    let call_event = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"].as_str().unwrap().starts_with("call."))
        .unwrap();
    let insights = &call_event["insights"];
    assert_eq!(insights["status"], call["status"], "{call_event}");
    assert!(
        insights["duration_ms"].as_i64().unwrap() > 7_000,
        "{insights}"
    );
    assert!(insights["sentiment"]["label"].is_string(), "{insights}");
    assert!(insights["flags"].is_array(), "{insights}");

    // The webhooks of the story, in the outbox with the timeline rows.
    let events: Vec<(String,)> = sqlx::query_as(
        "SELECT event FROM webhook_outbox WHERE org_id = $1 ORDER BY created_at, id",
    )
    .bind(&org)
    .fetch_all(s.pool())
    .await
    .unwrap();
    let events: Vec<String> = events.into_iter().map(|(e,)| e).collect();
    let flagged = !call_event["insights"]["flags"]
        .as_array()
        .unwrap()
        .is_empty();
    for wanted in [
        "message.created",
        "call.processed",
        "note.created",
        "task.created",
        "task.completed",
    ] {
        assert!(
            events.iter().any(|e| e == wanted),
            "{wanted} not in {events:?}"
        );
    }
    assert_eq!(
        events.iter().any(|e| e == "compliance.flagged"),
        flagged,
        "compliance.flagged exactly when the call has flags: {events:?}"
    );

    // Filters by kind family.
    let (_, only) = s
        .get_json(
            &key,
            &format!("/api/v1/contacts/{contact}/timeline?kinds=note,task"),
        )
        .await;
    let only = kinds(&only);
    assert!(!only.is_empty());
    assert!(
        only.iter()
            .all(|k| k.starts_with("note.") || k.starts_with("task.")),
        "{only:?}"
    );
    let (st, bad) = s
        .get_json(
            &key,
            &format!("/api/v1/contacts/{contact}/timeline?kinds=DROP%20TABLE"),
        )
        .await;
    assert_eq!(st, 422, "{bad}");

    // Paging both ways, one event at a time, gives the whole timeline back.
    let mut older = Vec::new();
    let mut cursor: Option<String> = None;
    let mut oldest_position = String::new();
    for _ in 0..50 {
        let path = match &cursor {
            None => format!("/api/v1/contacts/{contact}/timeline?limit=1"),
            Some(c) => format!("/api/v1/contacts/{contact}/timeline?limit=1&before={c}"),
        };
        let (_, p) = s.get_json(&key, &path).await;
        older.extend(kinds(&p));
        oldest_position = p["prev_cursor"].as_str().unwrap().to_string();
        match p["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(older, all);
    let (_, none) = s
        .get_json(
            &key,
            &format!("/api/v1/contacts/{contact}/timeline?before={oldest_position}"),
        )
        .await;
    assert_eq!(none["data"], json!([]), "nothing older than the oldest");
    // From the oldest, forwards, two at a time.
    let mut newer = vec![all.last().unwrap().clone()];
    let mut after = oldest_position;
    for _ in 0..50 {
        let (_, p) = s
            .get_json(
                &key,
                &format!("/api/v1/contacts/{contact}/timeline?limit=2&after={after}"),
            )
            .await;
        let mut got = kinds(&p);
        if got.is_empty() {
            break;
        }
        got.reverse();
        newer.extend(got);
        after = p["prev_cursor"].as_str().unwrap().to_string();
    }
    newer.reverse();
    assert_eq!(newer, all, "read forwards");

    // The conversation's own timeline: the WhatsApp conversation's events only.
    let (st, conv) = s
        .get_json(
            &key,
            &format!("/api/v1/conversations/{conversation}/timeline"),
        )
        .await;
    assert_eq!(st, 200, "{conv}");
    let conv_kinds = kinds(&conv);
    assert!(
        conv_kinds.iter().any(|k| k == "message.created"),
        "{conv_kinds:?}"
    );
    assert!(
        !conv_kinds.iter().any(|k| k.starts_with("call.")),
        "{conv_kinds:?}"
    );

    // An agent who is not 1001 sees the contact but not the other agent's call.
    let cookie = common::agent_session(&s, &org, "acme.example", "1002").await;
    let r = s
        .http
        .get(s.url(&format!("/api/v1/contacts/{contact}/timeline")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bobs: Value = r.json().await.unwrap();
    let bobs = kinds(&bobs);
    assert!(bobs.iter().any(|k| k == "note.created"), "{bobs:?}");
    assert!(!bobs.iter().any(|k| k.starts_with("call.")), "{bobs:?}");

    // Another organization: 404 for both timelines.
    let (_, other) = s.org("globex").await;
    for path in [
        format!("/api/v1/contacts/{contact}/timeline"),
        format!("/api/v1/conversations/{conversation}/timeline"),
    ] {
        let (st, _) = s.get_json(&other, &path).await;
        assert_eq!(st, 404, "{path}");
    }
    s.running.shutdown().await;
}
