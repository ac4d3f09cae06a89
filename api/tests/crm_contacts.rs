//! CRM contacts through the REST API against a real server and a real SQLite database:
//! several phones and emails, search by every phone format and by name, merging duplicates
//! (calls, notes, tasks and timelines move), erasing a contact with its calls and their
//! recording FILES, and cross-organization attempts on every route.

mod common;

use common::{CALL_VTT, TestServer, stereo_call};
use reqwest::Method;
use serde_json::{Value, json};

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

/// A webhook endpoint subscribed to the CRM events (its URL answers nothing: the outbox rows
/// are what the tests read).
async fn subscribe(s: &TestServer, key: &str) {
    let (st, v) = post(
        s,
        key,
        "/api/v1/webhook-endpoints",
        json!({"url": "http://127.0.0.1:9/hook", "events": ["contact.*", "note.*", "task.*"]}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
}

async fn outbox_count(s: &TestServer, org: &str, event: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM webhook_outbox WHERE org_id = $1 AND event = $2")
        .bind(org)
        .bind(event)
        .fetch_one(s.pool())
        .await
        .unwrap()
}

async fn search_ids(s: &TestServer, key: &str, query: &str) -> Vec<String> {
    let (st, v) = s.get_json(key, &format!("/api/v1/contacts?{query}")).await;
    assert_eq!(st, 200, "{query}: {v}");
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

fn enc(q: &str) -> String {
    let mut out = String::new();
    for b in q.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Uploads the stereo test call for `phone` and waits until it is processed.
async fn processed_call(s: &TestServer, key: &str, external_id: &str, phone: &str) -> Value {
    let wav = std::fs::read(stereo_call(s.dir.path())).unwrap();
    let fields = [
        ("external_call_id", external_id),
        ("direction", "inbound"),
        ("customer_phone", phone),
        ("channel_layout", "stereo_agent_left"),
    ];
    let (st, created) = s
        .upload(key, "call.wav", wav, &fields, Some(CALL_VTT))
        .await;
    assert_eq!(st, 202, "{created}");
    let call = s.wait_done(key, created["id"].as_str().unwrap()).await;
    assert_eq!(call["status"], "completed", "{call}");
    call
}

#[tokio::test]
async fn create_with_several_phones_then_search_by_every_format_and_by_name() {
    let s = TestServer::start(|_| {}).await;
    let (org, key) = s.org("a").await;
    subscribe(&s, &key).await;
    let (st, company) = post(
        &s,
        &key,
        "/api/v1/companies",
        json!({"name": "Acme", "domain": "https://www.Acme.com/about"}),
    )
    .await;
    assert_eq!(st, 201, "{company}");
    assert_eq!(company["domain"], "acme.com");
    let company_id = company["id"].as_str().unwrap();

    let (st, zoe) = post(
        &s,
        &key,
        "/api/v1/contacts",
        json!({
            "first_name": "Zoë",
            "last_name": "O'Brien-Núñez",
            "phones": ["+1 (415) 555-0100", {"number": "+44 20 7946 0958", "primary": true, "label": "work"}],
            "emails": ["Zoe@Example.com", "zoe.obrien@acme.com"],
            "tags": ["vip", "billing", "vip"],
            "attributes": {"plan": "gold", "seats": 12},
            "company_id": company_id,
            "external_id": "crm-1",
            "consent": {"sms": {"status": "opted_in", "source": "web form"}},
        }),
    )
    .await;
    assert_eq!(st, 201, "{zoe}");
    let zoe_id = zoe["id"].as_str().unwrap().to_string();
    assert_eq!(zoe["name"], "Zoë O'Brien-Núñez");
    assert_eq!(zoe["phone"], "+442079460958", "the marked primary");
    let phones: Vec<&str> = zoe["phones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phone"].as_str().unwrap())
        .collect();
    assert_eq!(phones, ["+442079460958", "+14155550100"]);
    assert_eq!(zoe["emails"][0]["email"], "zoe@example.com");
    assert_eq!(zoe["email"], "zoe@example.com");
    assert_eq!(zoe["tags"], json!(["billing", "vip"]));
    assert_eq!(zoe["attributes"], json!({"plan": "gold", "seats": 12}));
    assert_eq!(zoe["consent"]["sms"]["status"], "opted_in");
    assert_eq!(zoe["consent"]["sms"]["source"], "web form");
    assert_eq!(zoe["consent"]["whatsapp"]["status"], "unknown");
    // GET shows the same.
    let (st, got) = s
        .get_json(&key, &format!("/api/v1/contacts/{zoe_id}"))
        .await;
    assert_eq!(st, 200);
    assert_eq!(got, zoe);
    assert_eq!(outbox_count(&s, &org, "contact.created").await, 1);

    let (st, other) = post(
        &s,
        &key,
        "/api/v1/contacts",
        json!({"display_name": "Zoran Petrović", "phones": ["415-555-0199"], "tags": ["billing"]}),
    )
    .await;
    assert_eq!(st, 201, "{other}");
    let other_id = other["id"].as_str().unwrap().to_string();

    // Every phone format, with the organization's default region (US).
    for q in [
        "+1 (415) 555-0100",
        "4155550100",
        "415-555-0100",
        "(415) 555 0100",
        "+44 20 7946 0958",
        "+442079460958",
    ] {
        assert_eq!(
            search_ids(&s, &key, &format!("q={}", enc(q))).await,
            [zoe_id.as_str()],
            "{q}"
        );
    }
    assert_eq!(
        search_ids(&s, &key, "q=4155550199").await,
        [other_id.as_str()]
    );
    assert!(search_ids(&s, &key, "q=4155550123").await.is_empty());
    // Names: case- and accent-insensitive word prefixes, several words narrow.
    for q in ["zoe", "ZOË", "Zoë", "obri", "nunez", "zoe nun", "NÚÑ"] {
        assert_eq!(
            search_ids(&s, &key, &format!("q={}", enc(q))).await,
            [zoe_id.as_str()],
            "{q}"
        );
    }
    let both = search_ids(&s, &key, "q=zo").await;
    assert_eq!(both, [other_id.as_str(), zoe_id.as_str()], "newest first");
    assert_eq!(
        search_ids(&s, &key, "q=petrovic").await,
        [other_id.as_str()]
    );
    assert!(search_ids(&s, &key, "q=zoe%20petrovic").await.is_empty());
    // Emails (case-insensitive, prefix).
    assert_eq!(
        search_ids(&s, &key, &format!("q={}", enc("ZOE@example.COM"))).await,
        [zoe_id.as_str()]
    );
    assert_eq!(
        search_ids(&s, &key, &format!("q={}", enc("zoe.obrien@"))).await,
        [zoe_id.as_str()]
    );
    // Tag and company filters, alone and with a query.
    assert_eq!(
        search_ids(&s, &key, "tag=billing").await,
        [other_id.as_str(), zoe_id.as_str()]
    );
    assert_eq!(search_ids(&s, &key, "tag=vip").await, [zoe_id.as_str()]);
    assert_eq!(
        search_ids(&s, &key, &format!("company_id={company_id}")).await,
        [zoe_id.as_str()]
    );
    assert!(search_ids(&s, &key, "tag=vip&q=zoran").await.is_empty());
    let (st, per_company) = s
        .get_json(&key, &format!("/api/v1/companies/{company_id}/contacts"))
        .await;
    assert_eq!(st, 200);
    assert_eq!(per_company["data"][0]["id"], zoe_id.as_str());

    // Pagination walks every contact once.
    for i in 0..5 {
        let (st, _) = post(
            &s,
            &key,
            "/api/v1/contacts",
            json!({"first_name": format!("Bulk{i}"), "tags": ["bulk"]}),
        )
        .await;
        assert_eq!(st, 201);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/api/v1/contacts?tag=bulk&limit=2&cursor={c}"),
            None => "/api/v1/contacts?tag=bulk&limit=2".to_string(),
        };
        let (st, page) = s.get_json(&key, &path).await;
        assert_eq!(st, 200, "{page}");
        for c in page["data"].as_array().unwrap() {
            seen.push(c["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (5, 5), "{seen:?}");

    // Patch: names, a phone list replaced, attributes merged key by key, consent per channel.
    let (st, patched) = send(
        &s,
        Method::PATCH,
        &key,
        &format!("/api/v1/contacts/{zoe_id}"),
        Some(json!({
            "display_name": "Zoë OB",
            "phones": ["4155550100"],
            "attributes": {"seats": null, "tier": 2},
            "consent": {"whatsapp": {"status": "opted_out", "source": "STOP"}},
        })),
    )
    .await;
    assert_eq!(st, 200, "{patched}");
    assert_eq!(patched["phone"], "+14155550100");
    assert_eq!(patched["phones"].as_array().unwrap().len(), 1);
    assert_eq!(patched["attributes"], json!({"plan": "gold", "tier": 2}));
    assert_eq!(patched["consent"]["whatsapp"]["status"], "opted_out");
    assert_eq!(patched["consent"]["sms"]["status"], "opted_in");
    assert!(
        search_ids(&s, &key, "q=%2B442079460958").await.is_empty(),
        "the removed phone"
    );
    assert_eq!(outbox_count(&s, &org, "contact.updated").await, 1);

    // Validation: 422 with a clear message; taken phones/emails/external ids: 409.
    for (body, status, needle) in [
        (json!({"phones": ["not a phone"]}), 422, "not a valid phone"),
        (
            json!({"phones": ["415-555-0199"]}),
            409,
            "belongs to another contact",
        ),
        (
            json!({"emails": ["zoe@example.com"]}),
            409,
            "belongs to another contact",
        ),
        (json!({"external_id": "crm-1"}), 409, "external_id"),
        (json!({"emails": ["nope"]}), 422, "not an email"),
        (json!({"attributes": [1, 2]}), 422, "JSON object"),
        (
            json!({"attributes": {"x": "y".repeat(20_000)}}),
            422,
            "larger than",
        ),
        (
            json!({"consent": {"fax": {"status": "opted_in"}}}),
            422,
            "unknown channel",
        ),
        (
            json!({"consent": {"sms": {"status": "maybe"}}}),
            422,
            "not one of",
        ),
        (json!({"first_name": "x".repeat(300)}), 422, "longer than"),
        (json!({"colour": "blue"}), 422, "unknown field"),
        (json!({"company_id": "no-such-company"}), 404, "company"),
    ] {
        let (st, err) = post(&s, &key, "/api/v1/contacts", body.clone()).await;
        assert_eq!(st, status, "{body}: {err}");
        assert!(
            err["error"].as_str().unwrap().contains(needle),
            "{body}: {err}"
        );
    }
    let r = s
        .http
        .post(s.url("/api/v1/contacts"))
        .header("x-api-key", &key)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM contacts")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(count, 7, "failed creates left nothing behind");
}

#[tokio::test]
async fn merge_moves_calls_notes_tasks_and_timelines() {
    let s = TestServer::start(|_| {}).await;
    let (org, key) = s.org("a").await;
    subscribe(&s, &key).await;
    let (st, a) = post(&s, &key, "/api/v1/contacts", json!({"first_name": "Ann", "phones": ["415-555-0101"], "tags": ["a"], "attributes": {"x": 1, "shared": "A"}})).await;
    assert_eq!(st, 201, "{a}");
    let a_id = a["id"].as_str().unwrap().to_string();
    let (st, b) = post(&s, &key, "/api/v1/contacts", json!({"first_name": "Anne", "last_name": "Smith", "phones": ["415-555-0102", "415-555-0103"], "emails": ["anne@example.com"], "tags": ["b", "a"], "attributes": {"y": 2, "shared": "B"}, "consent": {"email": {"status": "opted_in"}}})).await;
    assert_eq!(st, 201, "{b}");
    let b_id = b["id"].as_str().unwrap().to_string();

    // A call from B's SECOND phone lands on B (every phone is looked at, not only the primary).
    let call = processed_call(&s, &key, "m-1", "(415) 555-0103").await;
    assert_eq!(call["contact_id"], b_id.as_str(), "{call}");
    let call_id = call["id"].as_str().unwrap().to_string();
    let (st, note) = post(
        &s,
        &key,
        "/api/v1/notes",
        json!({"contact_id": b_id, "body": "prefers email"}),
    )
    .await;
    assert_eq!(st, 201, "{note}");
    let (st, task) = post(
        &s,
        &key,
        "/api/v1/tasks",
        json!({"title": "send quote", "contact_id": b_id}),
    )
    .await;
    assert_eq!(st, 201, "{task}");
    let (_, b_timeline) = s
        .get_json(&key, &format!("/api/v1/contacts/{b_id}/timeline"))
        .await;
    let b_kinds: Vec<String> = b_timeline["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    for k in ["call.processed", "note.created", "task.created"] {
        assert!(b_kinds.contains(&k.to_string()), "{k} in {b_kinds:?}");
    }

    // Bad merges change nothing.
    let (st, _) = post(
        &s,
        &key,
        &format!("/api/v1/contacts/{a_id}/merge"),
        json!({"from": a_id}),
    )
    .await;
    assert_eq!(st, 422);
    let (st, _) = post(
        &s,
        &key,
        &format!("/api/v1/contacts/{a_id}/merge"),
        json!({"from": "nope"}),
    )
    .await;
    assert_eq!(st, 404);

    let (st, merged) = post(
        &s,
        &key,
        &format!("/api/v1/contacts/{a_id}/merge"),
        json!({"from": b_id}),
    )
    .await;
    assert_eq!(st, 200, "{merged}");
    let c = &merged["contact"];
    assert_eq!(c["id"], a_id.as_str());
    assert_eq!(c["phone"], "+14155550101", "the target's primary stays");
    let mut phones: Vec<&str> = c["phones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phone"].as_str().unwrap())
        .collect();
    phones.sort();
    assert_eq!(phones, ["+14155550101", "+14155550102", "+14155550103"]);
    assert_eq!(c["emails"][0]["email"], "anne@example.com");
    assert_eq!(
        c["email"], "anne@example.com",
        "a target without emails takes the source's primary"
    );
    assert_eq!(c["tags"], json!(["a", "b"]));
    assert_eq!(
        c["attributes"],
        json!({"x": 1, "y": 2, "shared": "A"}),
        "target wins"
    );
    assert_eq!(c["first_name"], "Ann");
    assert_eq!(
        c["last_name"], "Smith",
        "an empty field is filled from the source"
    );
    assert_eq!(c["consent"]["email"]["status"], "opted_in");
    assert_eq!(merged["moved"]["calls"], 1);
    assert_eq!(merged["moved"]["notes"], 1);
    assert_eq!(merged["moved"]["tasks"], 1);

    let (st, _) = s.get_json(&key, &format!("/api/v1/contacts/{b_id}")).await;
    assert_eq!(st, 404, "the source is gone");
    let (_, call) = s.get_json(&key, &format!("/api/v1/calls/{call_id}")).await;
    assert_eq!(call["contact_id"], a_id.as_str());
    let (_, tl) = s
        .get_json(&key, &format!("/api/v1/contacts/{a_id}/timeline"))
        .await;
    let kinds: Vec<String> = tl["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    for k in [
        "call.processed",
        "note.created",
        "task.created",
        "contact.merged",
    ] {
        assert!(kinds.contains(&k.to_string()), "{k} in {kinds:?}");
    }
    assert_eq!(
        search_ids(&s, &key, "q=smith").await,
        [a_id.as_str()],
        "names reindexed"
    );
    assert_eq!(search_ids(&s, &key, "q=4155550103").await, [a_id.as_str()]);
    let (_, notes) = s
        .get_json(&key, &format!("/api/v1/notes?contact_id={a_id}"))
        .await;
    assert_eq!(notes["data"].as_array().unwrap().len(), 1);
    let (_, tasks) = s
        .get_json(&key, &format!("/api/v1/tasks?contact_id={a_id}"))
        .await;
    assert_eq!(tasks["data"].as_array().unwrap().len(), 1);
    assert_eq!(outbox_count(&s, &org, "contact.merged").await, 1);
    let orphans: i64 = sqlx::query_scalar("SELECT (SELECT COUNT(*) FROM contact_phones WHERE contact_id = $1) + (SELECT COUNT(*) FROM timeline_events WHERE contact_id = $1) + (SELECT COUNT(*) FROM conversations WHERE contact_id = $1)")
        .bind(&b_id)
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(orphans, 0);

    // A new call from the merged phone finds the target.
    let again = processed_call(&s, &key, "m-2", "415-555-0102").await;
    assert_eq!(again["contact_id"], a_id.as_str());
}

async fn count(s: &TestServer, sql: &'static str, bind: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(s.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn delete_removes_every_row_and_the_recording_file() {
    let s = TestServer::start(|_| {}).await;
    let (org, key) = s.org("a").await;
    subscribe(&s, &key).await;
    let (st, kept) = post(
        &s,
        &key,
        "/api/v1/contacts",
        json!({"first_name": "Kept", "phones": ["415-555-0111"]}),
    )
    .await;
    assert_eq!(st, 201);
    let kept_id = kept["id"].as_str().unwrap().to_string();
    let kept_call = processed_call(&s, &key, "d-0", "415-555-0111").await;

    let call = processed_call(&s, &key, "d-1", "415-555-0110").await;
    let contact_id = call["contact_id"].as_str().unwrap().to_string();
    let call_id = call["id"].as_str().unwrap().to_string();
    let conversation_id = call["conversation_id"].as_str().unwrap().to_string();
    let (st, _) = post(
        &s,
        &key,
        "/api/v1/notes",
        json!({"conversation_id": conversation_id, "body": "called about the bill"}),
    )
    .await;
    assert_eq!(st, 201);
    let (st, _) = post(
        &s,
        &key,
        "/api/v1/tasks",
        json!({"title": "call back", "call_id": call_id}),
    )
    .await;
    assert_eq!(st, 201);
    let path: String = sqlx::query_scalar("SELECT path FROM recordings WHERE call_id = $1")
        .bind(&call_id)
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert!(std::path::Path::new(&path).exists());
    let transcript =
        std::path::Path::new(&path).with_file_name(format!("{call_id}.transcript.vtt"));
    assert!(transcript.exists(), "{transcript:?}");
    assert!(
        count(
            &s,
            "SELECT COUNT(*) FROM transcript_segments WHERE call_id = $1",
            &call_id
        )
        .await
            > 0
    );
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM call_analyses WHERE call_id = $1",
            &call_id
        )
        .await,
        1
    );

    let r = s
        .http
        .delete(s.url(&format!("/api/v1/contacts/{contact_id}")))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let report: Value = r.json().await.unwrap();
    let d = &report["deleted"];
    assert_eq!(d["calls"], 1, "{report}");
    assert_eq!(d["recordings"], 1);
    assert_eq!(d["conversations"], 1);
    assert_eq!(d["analyses"], 1);
    assert_eq!(d["notes"], 1);
    assert_eq!(d["tasks"], 1);
    assert!(d["transcript_segments"].as_i64().unwrap() >= 2, "{report}");
    assert!(d["timeline_events"].as_i64().unwrap() >= 3, "{report}");
    assert_eq!(report["files"]["removed"], 2, "{report}");
    assert_eq!(report["files"]["failed"], 0);
    assert!(
        !std::path::Path::new(&path).exists(),
        "the recording file is gone"
    );
    assert!(!transcript.exists(), "the transcript file is gone");

    for sql in [
        "SELECT COUNT(*) FROM contacts WHERE id = $1",
        "SELECT COUNT(*) FROM contact_phones WHERE contact_id = $1",
        "SELECT COUNT(*) FROM conversations WHERE contact_id = $1",
        "SELECT COUNT(*) FROM timeline_events WHERE contact_id = $1",
        "SELECT COUNT(*) FROM notes WHERE contact_id = $1",
        "SELECT COUNT(*) FROM tasks WHERE contact_id = $1",
    ] {
        assert_eq!(count(&s, sql, &contact_id).await, 0, "{sql}");
    }
    for sql in [
        "SELECT COUNT(*) FROM calls WHERE id = $1",
        "SELECT COUNT(*) FROM recordings WHERE call_id = $1",
        "SELECT COUNT(*) FROM transcript_segments WHERE call_id = $1",
        "SELECT COUNT(*) FROM call_analyses WHERE call_id = $1",
        "SELECT COUNT(*) FROM tasks WHERE call_id = $1",
        "SELECT COUNT(*) FROM timeline_events WHERE ref_id = $1",
        "SELECT COUNT(*) FROM jobs WHERE payload LIKE '%' || $1 || '%'",
    ] {
        assert_eq!(count(&s, sql, &call_id).await, 0, "{sql}");
    }
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM notes WHERE conversation_id = $1",
            &conversation_id
        )
        .await,
        0
    );
    let (st, _) = s.get_json(&key, &format!("/api/v1/calls/{call_id}")).await;
    assert_eq!(st, 404);
    assert_eq!(outbox_count(&s, &org, "contact.deleted").await, 1);

    // The other contact and its call are untouched, file included.
    let (st, _) = s
        .get_json(&key, &format!("/api/v1/contacts/{kept_id}"))
        .await;
    assert_eq!(st, 200);
    let kept_call_id = kept_call["id"].as_str().unwrap();
    let (st, _) = s
        .get_json(&key, &format!("/api/v1/calls/{kept_call_id}"))
        .await;
    assert_eq!(st, 200);
    let kept_path: String = sqlx::query_scalar("SELECT path FROM recordings WHERE call_id = $1")
        .bind(kept_call_id)
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert!(std::path::Path::new(&kept_path).exists());

    // A second delete: 404.
    let r = s
        .http
        .delete(s.url(&format!("/api/v1/contacts/{contact_id}")))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test]
async fn other_organizations_get_404_on_every_route_and_change_nothing() {
    let s = TestServer::start(|_| {}).await;
    let (_org, key) = s.org("a").await;
    let (_other, other_key) = s.org("b").await;
    let (_, company) = post(&s, &key, "/api/v1/companies", json!({"name": "Acme"})).await;
    let company_id = company["id"].as_str().unwrap().to_string();
    let (st, contact) = post(
        &s,
        &key,
        "/api/v1/contacts",
        json!({"first_name": "Ann", "phones": ["415-555-0120"], "company_id": company_id}),
    )
    .await;
    assert_eq!(st, 201);
    let id = contact["id"].as_str().unwrap().to_string();
    let (_, theirs) = post(
        &s,
        &other_key,
        "/api/v1/contacts",
        json!({"first_name": "Bob"}),
    )
    .await;
    let their_id = theirs["id"].as_str().unwrap().to_string();
    let (_, note) = post(
        &s,
        &key,
        "/api/v1/notes",
        json!({"contact_id": id, "body": "n"}),
    )
    .await;
    let note_id = note["id"].as_str().unwrap().to_string();
    let (_, task) = post(
        &s,
        &key,
        "/api/v1/tasks",
        json!({"title": "t", "contact_id": id}),
    )
    .await;
    let task_id = task["id"].as_str().unwrap().to_string();
    let wav = std::fs::read(stereo_call(s.dir.path())).unwrap();
    let (st, call) = s
        .upload(
            &key,
            "call.wav",
            wav,
            &[("customer_phone", "415-555-0120")],
            None,
        )
        .await;
    assert_eq!(st, 202);
    let call_id = call["id"].as_str().unwrap().to_string();
    s.wait_done(&key, &call_id).await;

    let before_contact = s.get_json(&key, &format!("/api/v1/contacts/{id}")).await.1;
    let before_task = s
        .get_json(&key, &format!("/api/v1/tasks/{task_id}"))
        .await
        .1;
    let before_note = s
        .get_json(&key, &format!("/api/v1/notes/{note_id}"))
        .await
        .1;
    let before_company = s
        .get_json(&key, &format!("/api/v1/companies/{company_id}"))
        .await
        .1;
    let totals = "SELECT (SELECT COUNT(*) FROM contacts) || '/' || (SELECT COUNT(*) FROM notes) || '/' || (SELECT COUNT(*) FROM tasks) || '/' || (SELECT COUNT(*) FROM companies) || '/' || (SELECT COUNT(*) FROM calls) || '/' || (SELECT COUNT(*) FROM timeline_events)";
    let before_totals: String = sqlx::query_scalar(totals)
        .fetch_one(s.pool())
        .await
        .unwrap();

    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/v1/contacts/{id}"), None),
        (Method::GET, format!("/api/v1/contacts/{id}/timeline"), None),
        (
            Method::PATCH,
            format!("/api/v1/contacts/{id}"),
            Some(json!({"first_name": "X"})),
        ),
        (Method::DELETE, format!("/api/v1/contacts/{id}"), None),
        (
            Method::POST,
            format!("/api/v1/contacts/{id}/merge"),
            Some(json!({"from": their_id})),
        ),
        (
            Method::POST,
            format!("/api/v1/contacts/{their_id}/merge"),
            Some(json!({"from": id})),
        ),
        (Method::GET, format!("/api/v1/companies/{company_id}"), None),
        (
            Method::PATCH,
            format!("/api/v1/companies/{company_id}"),
            Some(json!({"name": "X"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/companies/{company_id}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/companies/{company_id}/contacts"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/contacts/{their_id}"),
            Some(json!({"company_id": company_id})),
        ),
        (Method::GET, format!("/api/v1/notes/{note_id}"), None),
        (
            Method::PATCH,
            format!("/api/v1/notes/{note_id}"),
            Some(json!({"body": "X"})),
        ),
        (Method::DELETE, format!("/api/v1/notes/{note_id}"), None),
        (
            Method::POST,
            "/api/v1/notes".into(),
            Some(json!({"contact_id": id, "body": "X"})),
        ),
        (Method::GET, format!("/api/v1/tasks/{task_id}"), None),
        (
            Method::PATCH,
            format!("/api/v1/tasks/{task_id}"),
            Some(json!({"title": "X"})),
        ),
        (
            Method::POST,
            format!("/api/v1/tasks/{task_id}/complete"),
            None,
        ),
        (Method::DELETE, format!("/api/v1/tasks/{task_id}"), None),
        (
            Method::POST,
            "/api/v1/tasks".into(),
            Some(json!({"title": "X", "contact_id": id})),
        ),
        (
            Method::POST,
            "/api/v1/tasks".into(),
            Some(json!({"title": "X", "call_id": call_id})),
        ),
        (
            Method::POST,
            format!("/api/v1/calls/{call_id}/action-items/0/task"),
            None,
        ),
    ];
    for (method, path, body) in attempts {
        let (st, v) = send(&s, method.clone(), &other_key, &path, body).await;
        assert_eq!(st, 404, "{method} {path}: {v}");
        assert_eq!(v["code"], "not_found", "{method} {path}: {v}");
    }
    // Lists and searches show nothing of the other organization.
    assert_eq!(search_ids(&s, &other_key, "q=ann").await.len(), 0);
    assert_eq!(search_ids(&s, &other_key, "q=4155550120").await.len(), 0);
    let (_, notes) = s
        .get_json(&other_key, &format!("/api/v1/notes?contact_id={id}"))
        .await;
    assert_eq!(notes["data"], json!([]));
    let (_, tasks) = s.get_json(&other_key, "/api/v1/tasks").await;
    assert_eq!(tasks["data"], json!([]));
    let (_, companies) = s.get_json(&other_key, "/api/v1/companies").await;
    assert_eq!(companies["data"], json!([]));

    assert_eq!(
        s.get_json(&key, &format!("/api/v1/contacts/{id}")).await.1,
        before_contact
    );
    assert_eq!(
        s.get_json(&key, &format!("/api/v1/tasks/{task_id}"))
            .await
            .1,
        before_task
    );
    assert_eq!(
        s.get_json(&key, &format!("/api/v1/notes/{note_id}"))
            .await
            .1,
        before_note
    );
    assert_eq!(
        s.get_json(&key, &format!("/api/v1/companies/{company_id}"))
            .await
            .1,
        before_company
    );
    let after_totals: String = sqlx::query_scalar(totals)
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(before_totals, after_totals);
    let (_, theirs_now) = s
        .get_json(&other_key, &format!("/api/v1/contacts/{their_id}"))
        .await;
    assert_eq!(theirs_now, theirs);
}
