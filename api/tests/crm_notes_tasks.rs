//! Notes and tasks through the REST API against a real server and a real SQLite database:
//! notes on contacts and conversations, the task lifecycle with filters, and tasks from the
//! analysis's action items — on one click, automatically, and never twice on re-analysis.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, stereo_call};
use reqwest::Method;
use serde_json::{Value, json};

/// The agent commits to two things; the analysis finds them as action items.
const ACTIONS_VTT: &str = "WEBVTT\n\n00:00.500 --> 00:03.000\n<v Agent>Sure. I will send you the contract this afternoon. We'll call you back tomorrow.\n\n00:04.000 --> 00:06.500\n<v Customer>Thanks, that is great.\n";

async fn send(
    s: &TestServer,
    method: Method,
    key: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = s.http.request(method, s.url(path)).header("x-api-key", key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(s: &TestServer, key: &str, path: &str, body: Value) -> (u16, Value) {
    send(s, Method::POST, key, path, Some(body)).await
}

async fn outbox_count(s: &TestServer, org: &str, event: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM webhook_outbox WHERE org_id = $1 AND event = $2")
        .bind(org)
        .bind(event)
        .fetch_one(s.pool())
        .await
        .unwrap()
}

async fn subscribe(s: &TestServer, key: &str) {
    let (st, v) = post(
        s,
        key,
        "/api/v1/webhook-endpoints",
        json!({"url": "http://127.0.0.1:9/hook", "events": ["note.*", "task.*"]}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
}

async fn processed_call(
    s: &TestServer,
    key: &str,
    external_id: &str,
    phone: &str,
    vtt: &str,
) -> Value {
    let wav = std::fs::read(stereo_call(s.dir.path())).unwrap();
    let fields = [
        ("external_call_id", external_id),
        ("direction", "inbound"),
        ("customer_phone", phone),
        ("channel_layout", "stereo_agent_left"),
        ("call_timestamp", "2026-03-02T10:00:00Z"),
    ];
    let (st, created) = s.upload(key, "call.wav", wav, &fields, Some(vtt)).await;
    assert_eq!(st, 202, "{created}");
    let call = s.wait_done(key, created["id"].as_str().unwrap()).await;
    assert_eq!(call["status"], "completed", "{call}");
    call
}

async fn timeline_kinds(s: &TestServer, key: &str, contact: &str) -> Vec<String> {
    let (st, tl) = s
        .get_json(key, &format!("/api/v1/contacts/{contact}/timeline"))
        .await;
    assert_eq!(st, 200, "{tl}");
    tl["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

async fn make_user(s: &TestServer, key: &str, ext: &str) -> String {
    let (st, u) = post(
        s,
        key,
        "/api/v1/users",
        json!({"name": format!("Agent {ext}"), "extension": ext, "password": "a-long-secret-1"}),
    )
    .await;
    assert_eq!(st, 201, "{u}");
    u["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn notes_on_contacts_and_conversations() {
    let s = TestServer::start(|_| {}).await;
    let (org, key) = s.org("a").await;
    subscribe(&s, &key).await;
    let call = processed_call(&s, &key, "n-1", "415-555-0130", common::CALL_VTT).await;
    let contact = call["contact_id"].as_str().unwrap().to_string();
    let conversation = call["conversation_id"].as_str().unwrap().to_string();
    let user = make_user(&s, &key, "2001").await;

    let (st, on_contact) = post(
        &s,
        &key,
        "/api/v1/notes",
        json!({"contact_id": contact, "body": "  VIP, be nice  "}),
    )
    .await;
    assert_eq!(st, 201, "{on_contact}");
    assert_eq!(on_contact["body"], "VIP, be nice");
    assert_eq!(on_contact["author"]["kind"], "api_key");
    let (st, on_conv) = post(&s, &key, "/api/v1/notes", json!({"conversation_id": conversation, "body": "asked about the bill", "author_user_id": user})).await;
    assert_eq!(st, 201, "{on_conv}");
    assert_eq!(on_conv["author"], json!({"kind": "user", "id": user}));
    // A conversation's note is on its contact's timeline too.
    let (_, tl) = s
        .get_json(&key, &format!("/api/v1/contacts/{contact}/timeline"))
        .await;
    let notes: Vec<&Value> = tl["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "note.created")
        .collect();
    assert_eq!(notes.len(), 2, "{tl}");
    assert!(
        notes
            .iter()
            .any(|e| e["conversation_id"] == conversation.as_str()
                && e["payload"]["body"] == "asked about the bill")
    );
    assert_eq!(outbox_count(&s, &org, "note.created").await, 2);

    let (_, list) = s
        .get_json(
            &key,
            &format!("/api/v1/notes?conversation_id={conversation}"),
        )
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (_, list) = s
        .get_json(&key, &format!("/api/v1/notes?contact_id={contact}"))
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    // Edit: the note and its timeline entry read the new text.
    let id = on_conv["id"].as_str().unwrap();
    let (st, edited) = send(
        &s,
        Method::PATCH,
        &key,
        &format!("/api/v1/notes/{id}"),
        Some(json!({"body": "asked about the May bill"})),
    )
    .await;
    assert_eq!(st, 200, "{edited}");
    let (_, tl) = s
        .get_json(&key, &format!("/api/v1/contacts/{contact}/timeline"))
        .await;
    assert!(
        tl["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["payload"]["body"] == "asked about the May bill")
    );

    // Validation.
    for (body, status, needle) in [
        (
            json!({"contact_id": contact, "body": "   "}),
            422,
            "body: required",
        ),
        (
            json!({"contact_id": contact, "body": "x".repeat(10_001)}),
            422,
            "longer than",
        ),
        (json!({"body": "floating"}), 422, "one is required"),
        (
            json!({"contact_id": contact, "body": "x", "author_user_id": "nobody"}),
            404,
            "user",
        ),
        (
            json!({"conversation_id": "nope", "body": "x"}),
            404,
            "conversation",
        ),
    ] {
        let (st, err) = post(&s, &key, "/api/v1/notes", body.clone()).await;
        assert_eq!(st, status, "{body}: {err}");
        assert!(
            err["error"].as_str().unwrap().contains(needle),
            "{body}: {err}"
        );
    }

    // Delete: gone from the list and the timeline.
    let r = s
        .http
        .delete(s.url(&format!("/api/v1/notes/{id}")))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let kinds = timeline_kinds(&s, &key, &contact).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "note.created").count(),
        1,
        "{kinds:?}"
    );
    let (st, _) = s.get_json(&key, &format!("/api/v1/notes/{id}")).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn task_lifecycle_and_filters() {
    let s = TestServer::start(|_| {}).await;
    let (org, key) = s.org("a").await;
    subscribe(&s, &key).await;
    let alice = make_user(&s, &key, "3001").await;
    let bob = make_user(&s, &key, "3002").await;
    let (_, contact) = post(
        &s,
        &key,
        "/api/v1/contacts",
        json!({"first_name": "Cy", "phones": ["415-555-0140"]}),
    )
    .await;
    let contact_id = contact["id"].as_str().unwrap().to_string();

    let (st, t1) = post(&s, &key, "/api/v1/tasks", json!({"title": "Send the contract", "description": "v2", "contact_id": contact_id, "assignee_user_id": alice, "due_at": "2026-04-01T12:00:00Z", "priority": "high"})).await;
    assert_eq!(st, 201, "{t1}");
    assert_eq!(t1["done"], false);
    assert_eq!(t1["source"], "manual");
    assert_eq!(t1["due_at"], "2026-04-01T12:00:00.000Z");
    let (st, t2) = post(&s, &key, "/api/v1/tasks", json!({"title": "Call back", "contact_id": contact_id, "assignee_user_id": bob, "due_at": "2026-05-01T12:00:00Z"})).await;
    assert_eq!(st, 201, "{t2}");
    assert_eq!(t2["priority"], "normal");
    let (st, t3) = post(
        &s,
        &key,
        "/api/v1/tasks",
        json!({"title": "Unassigned, no date"}),
    )
    .await;
    assert_eq!(st, 201, "{t3}");
    let id1 = t1["id"].as_str().unwrap().to_string();

    let ids = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, by_alice) = s
        .get_json(&key, &format!("/api/v1/tasks?assignee={alice}"))
        .await;
    assert_eq!(ids(&by_alice), [id1.as_str()]);
    let (_, due) = s
        .get_json(&key, "/api/v1/tasks?due_before=2026-04-15T00:00:00Z")
        .await;
    assert_eq!(ids(&due), [id1.as_str()]);
    let (_, open) = s.get_json(&key, "/api/v1/tasks?done=false").await;
    assert_eq!(ids(&open).len(), 3);

    // Complete: done with a time, a timeline event and a webhook, once.
    let (st, done) = post(
        &s,
        &key,
        &format!("/api/v1/tasks/{id1}/complete"),
        json!({}),
    )
    .await;
    assert_eq!(st, 200, "{done}");
    assert_eq!(done["done"], true);
    assert!(done["done_at"].is_string());
    let (st, again) = post(
        &s,
        &key,
        &format!("/api/v1/tasks/{id1}/complete"),
        json!({}),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(again["done_at"], done["done_at"], "idempotent");
    assert_eq!(outbox_count(&s, &org, "task.completed").await, 1);
    assert_eq!(outbox_count(&s, &org, "task.created").await, 3);
    let kinds = timeline_kinds(&s, &key, &contact_id).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "task.created").count(),
        2,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"task.completed".to_string()));
    let (_, done_list) = s.get_json(&key, "/api/v1/tasks?done=true").await;
    assert_eq!(ids(&done_list), [id1.as_str()]);

    // Patch: reassign, reprioritise, clear the due date, reopen.
    let (st, patched) = send(
        &s,
        Method::PATCH,
        &key,
        &format!("/api/v1/tasks/{id1}"),
        Some(json!({"assignee_user_id": bob, "priority": "urgent", "due_at": null, "done": false})),
    )
    .await;
    assert_eq!(st, 200, "{patched}");
    assert_eq!(patched["assignee_user_id"], bob.as_str());
    assert_eq!(patched["priority"], "urgent");
    assert_eq!(patched["due_at"], Value::Null);
    assert_eq!(patched["done"], false);
    assert_eq!(patched["done_at"], Value::Null);
    assert!(
        !timeline_kinds(&s, &key, &contact_id)
            .await
            .contains(&"task.completed".to_string())
    );
    let (_, by_bob) = s
        .get_json(&key, &format!("/api/v1/tasks?assignee={bob}&done=false"))
        .await;
    assert_eq!(ids(&by_bob).len(), 2);

    for (body, status, needle) in [
        (json!({"title": ""}), 422, "title: required"),
        (json!({"title": "x", "priority": "asap"}), 422, "priority"),
        (
            json!({"title": "x", "due_at": "next tuesday"}),
            422,
            "RFC 3339",
        ),
        (
            json!({"title": "x", "assignee_user_id": "ghost"}),
            404,
            "user",
        ),
        (json!({"title": "x", "contact_id": "ghost"}), 404, "contact"),
        (json!({"title": "x", "done": true}), 422, "done"),
    ] {
        let (st, err) = post(&s, &key, "/api/v1/tasks", body.clone()).await;
        assert_eq!(st, status, "{body}: {err}");
        assert!(
            err["error"].as_str().unwrap().contains(needle),
            "{body}: {err}"
        );
    }
    let (st, _) = s.get_json(&key, "/api/v1/tasks?due_before=soon").await;
    assert_eq!(st, 422);

    let r = s
        .http
        .delete(s.url(&format!("/api/v1/tasks/{id1}")))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(
        timeline_kinds(&s, &key, &contact_id)
            .await
            .iter()
            .filter(|k| *k == "task.created")
            .count(),
        1
    );
}

async fn task_count(s: &TestServer, call_id: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM tasks WHERE call_id = $1 AND source = 'analysis'")
        .bind(call_id)
        .fetch_one(s.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn action_items_become_tasks_on_one_click_or_automatically_and_never_twice() {
    let s = TestServer::start(|_| {}).await;
    let (org, key) = s.org("a").await;
    subscribe(&s, &key).await;
    let (st, settings) = s.get_json(&key, "/api/v1/settings/crm").await;
    assert_eq!(st, 200);
    assert_eq!(settings["action_item_tasks"], "suggest");

    // suggest (the default): nothing automatic, one click makes one task.
    let call = processed_call(&s, &key, "a-1", "415-555-0150", ACTIONS_VTT).await;
    let call_id = call["id"].as_str().unwrap().to_string();
    let contact_id = call["contact_id"].as_str().unwrap().to_string();
    let (_, analysis) = s
        .get_json(&key, &format!("/api/v1/calls/{call_id}/analysis"))
        .await;
    let items = analysis["action_items"].as_array().unwrap().clone();
    assert!(items.len() >= 2, "{items:?}");
    assert_eq!(task_count(&s, &call_id).await, 0);
    let (st, task) = post(
        &s,
        &key,
        &format!("/api/v1/calls/{call_id}/action-items/1/task"),
        json!({}),
    )
    .await;
    assert_eq!(st, 201, "{task}");
    assert_eq!(task["source"], "analysis");
    assert_eq!(task["action_item_index"], 1);
    assert_eq!(task["title"], items[1]["text"]);
    assert_eq!(task["contact_id"], contact_id.as_str());
    assert_eq!(task["call_id"], call_id.as_str());
    // "tomorrow" from a call on 2026-03-02: due by the end of 2026-03-03.
    assert_eq!(task["due_at"], "2026-03-03T23:59:59.999Z", "{task}");
    let (st, same) = post(
        &s,
        &key,
        &format!("/api/v1/calls/{call_id}/action-items/1/task"),
        json!({}),
    )
    .await;
    assert_eq!(st, 200, "{same}");
    assert_eq!(same["id"], task["id"]);
    assert_eq!(task_count(&s, &call_id).await, 1);
    let (st, _) = post(
        &s,
        &key,
        &format!("/api/v1/calls/{call_id}/action-items/99/task"),
        json!({}),
    )
    .await;
    assert_eq!(st, 404);
    let (st, _) = post(
        &s,
        &key,
        &format!("/api/v1/calls/{call_id}/action-items/x/task"),
        json!({}),
    )
    .await;
    assert_eq!(st, 404);

    // off: the click is refused.
    let (st, v) = send(
        &s,
        Method::PUT,
        &key,
        "/api/v1/settings/crm",
        Some(json!({"action_item_tasks": "off"})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = post(
        &s,
        &key,
        &format!("/api/v1/calls/{call_id}/action-items/0/task"),
        json!({}),
    )
    .await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["code"], "action_item_tasks_off");
    let (st, v) = send(
        &s,
        Method::PUT,
        &key,
        "/api/v1/settings/crm",
        Some(json!({"action_item_tasks": "sometimes"})),
    )
    .await;
    assert_eq!(st, 422, "{v}");
    let (st, v) = send(
        &s,
        Method::PUT,
        &key,
        "/api/v1/settings/crm",
        Some(json!({"default_region": "XX"})),
    )
    .await;
    assert_eq!(st, 422, "{v}");

    // auto: the processed call's items are tasks at once.
    let (st, v) = send(
        &s,
        Method::PUT,
        &key,
        "/api/v1/settings/crm",
        Some(json!({"action_item_tasks": "auto"})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let call2 = processed_call(&s, &key, "a-2", "415-555-0151", ACTIONS_VTT).await;
    let call2_id = call2["id"].as_str().unwrap().to_string();
    let (_, analysis2) = s
        .get_json(&key, &format!("/api/v1/calls/{call2_id}/analysis"))
        .await;
    let n = analysis2["action_items"].as_array().unwrap().len() as i64;
    assert!(n >= 2);
    assert_eq!(task_count(&s, &call2_id).await, n);
    let (_, listed) = s
        .get_json(&key, &format!("/api/v1/tasks?call_id={call2_id}"))
        .await;
    assert_eq!(listed["data"].as_array().unwrap().len() as i64, n);
    let contact2 = call2["contact_id"].as_str().unwrap();
    let kinds = timeline_kinds(&s, &key, contact2).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "task.created").count() as i64,
        n,
        "{kinds:?}"
    );
    let created_before = outbox_count(&s, &org, "task.created").await;

    // Re-analysis (auto still on) adds nothing; the first call gets its missing items only.
    for id in [&call2_id, &call_id] {
        let first = s
            .get_json(&key, &format!("/api/v1/calls/{id}/analysis"))
            .await
            .1;
        let (st, q) = post(
            &s,
            &key,
            &format!("/api/v1/calls/{id}/reanalyze"),
            json!({}),
        )
        .await;
        assert_eq!(st, 202, "{q}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, a) = s
                .get_json(&key, &format!("/api/v1/calls/{id}/analysis"))
                .await;
            if a["analysed_at"] != first["analysed_at"] {
                break;
            }
            assert!(Instant::now() < deadline, "re-analysis never stored");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(
        task_count(&s, &call2_id).await,
        n,
        "no duplicates on re-analysis"
    );
    let n1 = items.len() as i64;
    assert_eq!(
        task_count(&s, &call_id).await,
        n1,
        "the clicked one kept, the others added once"
    );
    assert_eq!(
        outbox_count(&s, &org, "task.created").await,
        created_before + n1 - 1
    );
}
