//! Schemathesis (PyPI) against the real server, driven by the server's own OpenAPI document:
//! it generates requests for every operation (valid ones, boundary values and deliberately
//! wrong ones) and checks every answer:
//! - `not_a_server_error`: no input makes the server fail with a 5xx;
//! - `status_code_conformance`: every status it answers is one the document lists;
//! - `content_type_conformance`: every answer has the content type the document lists;
//! - `response_schema_conformance`: every answer's body fits the schema the document gives
//!   it (typed answers such as `TeamView`, `ConversationView`, `ContactView`, `TaskView` and
//!   `NoteView` are checked field by field).
//!
//! The run is bounded (examples per operation, a fixed seed, a time budget) so CI stays
//! short; `CALLSCOPE_SCHEMATHESIS_EXAMPLES` raises the bound for a longer local run. It
//! runs with an owner's API key on an organization that holds a processed call, a contact,
//! a team, an API channel's conversation with a message, a task and a note, so lists and
//! lookups have something to return.

mod common;

use std::time::Duration;

use common::{CALL_VTT, TestServer, post_json, processed_upload};
use serde_json::{Value, json};

/// Operations left out of generated traffic, and why:
/// - the two WebSocket upgrades answer 101 and then hold the connection open, which an HTTP
///   fuzzer cannot follow (api/tests/realtime_events.rs and agent_sessions.rs test them);
/// - logout would end nothing (there is no session), but is excluded with the sockets to
///   keep the key-authenticated run meaningful.
const EXCLUDED_PATHS: &str = "^/api/v1/(events/ws|agent/ws)$";

/// The run authenticates with the bearer key only. Left with the document's alternatives
/// (the `X-API-Key` header, the session cookie), schemathesis also sends a generated cookie
/// beside the key, which the server rightly refuses with 401, and the operation is never
/// exercised past authentication.
fn bearer_only(doc: &mut Value) {
    let paths = doc["paths"].as_object_mut().expect("paths");
    for item in paths.values_mut() {
        for op in item.as_object_mut().unwrap().values_mut() {
            let Some(security) = op.get_mut("security").and_then(Value::as_array_mut) else {
                continue;
            };
            if security.iter().any(|s| s.get("api_key").is_some()) {
                *security = vec![json!({"api_key": []})];
            }
        }
    }
    let schemes = doc["components"]["securitySchemes"]
        .as_object_mut()
        .unwrap();
    schemes.retain(|name, _| name == "api_key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_get_documented_answers_and_no_server_error() {
    let server = TestServer::start(|c| {
        // The fuzzer sends a few thousand requests with one key.
        c.http.rate_limit_per_minute = 1_000_000;
    })
    .await;
    let (_org, key) = server.org("schemathesis").await;
    let call_id = processed_upload(
        &server,
        &key,
        &[("customer_phone", "+14155550100")],
        CALL_VTT,
    )
    .await;
    let (status, contact) = post_json(
        &server,
        &key,
        "/api/v1/contacts",
        json!({"display_name": "Grace Hopper", "phones": ["+14155550101"]}),
    )
    .await;
    assert_eq!(status, 201, "{contact}");
    let (status, team) = post_json(
        &server,
        &key,
        "/api/v1/teams",
        json!({"name": "Seeded team", "description": "for lookups"}),
    )
    .await;
    assert_eq!(status, 201, "{team}");
    // A conversation with a message (through an API channel), a task and a note, so the
    // typed answers of those lookups are checked against their schemas too.
    let (status, channel) = post_json(
        &server,
        &key,
        "/api/v1/channels",
        json!({"kind": "api", "name": "Seeded chat", "callback_url": "http://127.0.0.1:9/unused"}),
    )
    .await;
    assert_eq!(status, 201, "{channel}");
    let (status, inbound) = post_json(
        &server,
        &key,
        &format!(
            "/api/v1/channels/{}/messages",
            channel["id"].as_str().unwrap()
        ),
        json!({"message_id": "seed-1", "contact": {"identifier": "seed", "name": "Ada"},
               "content": "Where is my parcel?"}),
    )
    .await;
    assert_eq!(status, 201, "{inbound}");
    let (status, task) = post_json(
        &server,
        &key,
        "/api/v1/tasks",
        json!({"title": "Call back", "contact_id": contact["id"], "due_at": "2030-01-01T09:00:00Z"}),
    )
    .await;
    assert_eq!(status, 201, "{task}");
    let (status, note) = post_json(
        &server,
        &key,
        "/api/v1/notes",
        json!({"body": "Prefers mornings", "contact_id": contact["id"]}),
    )
    .await;
    assert_eq!(status, 201, "{note}");

    let document = server.dir.path().join("openapi.json");
    let body = server
        .http
        .get(server.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut doc: Value = serde_json::from_slice(&body).unwrap();
    bearer_only(&mut doc);
    std::fs::write(&document, serde_json::to_vec(&doc).unwrap()).unwrap();

    // Requests on the seeded call and contact reach past the lookup into each operation's
    // own logic (random ids alone only ever find 404). Deleting them is left to random ids.
    let config = server.dir.path().join("schemathesis.toml");
    let contact_id = contact["id"].as_str().unwrap();
    let team_id = team["id"].as_str().unwrap();
    let conversation_id = inbound["conversation"]["id"].as_str().unwrap();
    let task_id = task["id"].as_str().unwrap();
    let note_id = note["id"].as_str().unwrap();
    std::fs::write(
        &config,
        format!(
            "[[operations]]\n\
             include-path-regex = '^/api/v1/calls/\\{{id\\}}'\n\
             include-method-regex = '^(GET|PUT|POST)$'\n\
             parameters = {{ 'path.id' = '{call_id}' }}\n\n\
             [[operations]]\n\
             include-path-regex = '^/api/v1/contacts/\\{{id\\}}'\n\
             include-method-regex = '^(GET|PUT|POST|PATCH)$'\n\
             parameters = {{ 'path.id' = '{contact_id}' }}\n\n\
             [[operations]]\n\
             include-path-regex = '^/api/v1/teams/\\{{id\\}}'\n\
             include-method-regex = '^(GET|PUT|PATCH)$'\n\
             parameters = {{ 'path.id' = '{team_id}' }}\n\n\
             [[operations]]\n\
             include-path-regex = '^/api/v1/conversations/\\{{id\\}}'\n\
             include-method-regex = '^(GET|PATCH)$'\n\
             parameters = {{ 'path.id' = '{conversation_id}' }}\n\n\
             [[operations]]\n\
             include-path-regex = '^/api/v1/tasks/\\{{id\\}}'\n\
             include-method-regex = '^(GET|PATCH|POST)$'\n\
             parameters = {{ 'path.id' = '{task_id}' }}\n\n\
             [[operations]]\n\
             include-path-regex = '^/api/v1/notes/\\{{id\\}}'\n\
             include-method-regex = '^(GET|PATCH)$'\n\
             parameters = {{ 'path.id' = '{note_id}' }}\n"
        ),
    )
    .unwrap();

    let examples = std::env::var("CALLSCOPE_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "25".into());
    let venv_bin = callscope_inference::venv_python()
        .parent()
        .expect("the venv's bin directory")
        .to_path_buf();
    let mut command = tokio::process::Command::new(venv_bin.join("schemathesis"));
    command
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(&document)
        .args(["--url", &server.base])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", &examples])
        .args(["--seed", "7"])
        .args(["--workers", "2"])
        .args(["--request-timeout", "20"])
        .args(["--exclude-path-regex", EXCLUDED_PATHS])
        .args(["--suppress-health-check", "all"])
        .args(["--output-truncate", "false"])
        .current_dir(server.dir.path())
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_HOOKS", "")
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(900), command.output())
        .await
        .expect("schemathesis finished within 15 minutes")
        .expect("schemathesis runs (scripts/setup installs it into the venv)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "schemathesis found failures (exit {:?}):\n{stdout}\n{stderr}",
        output.status.code()
    );
    // The run really exercised the API: its summary counts the operations it tested.
    assert!(
        stdout.contains("API Operations"),
        "no summary in schemathesis' output:\n{stdout}"
    );
}
