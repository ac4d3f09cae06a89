//! Roles and API-key permissions against the real server: what an agent, a supervisor and
//! scoped keys may read and change; own-calls-only for agents; key expiry, revocation, last
//! use, and no escalation.

mod common;

use callscope_api::sip::{domains, users};
use common::{CALL_VTT, Cred, TestServer, call, processed_upload, sign_in};
use reqwest::{Method, header};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

struct Org {
    id: String,
    key: String,
}

async fn org_with_users(server: &TestServer, name: &str, realm: &str) -> Org {
    let (id, key) = server.org(name).await;
    domains::set_realm(server.pool(), &id, realm).await.unwrap();
    for (ext, who, role) in [
        ("1001", "Alice Agent", users::Role::Agent),
        ("1002", "Bob Agent", users::Role::Agent),
        ("2001", "Sue Supervisor", users::Role::Supervisor),
        ("3001", "Adam Admin", users::Role::Admin),
    ] {
        users::create_user(
            server.pool(),
            &id,
            &users::NewUser {
                name: who,
                extension: ext,
                password: PASSWORD,
                role,
            },
        )
        .await
        .unwrap();
    }
    Org { id, key }
}

/// Uploads the test call attributed to `agent` and waits until it is processed.
async fn call_of(server: &TestServer, key: &str, agent: &str) -> String {
    processed_upload(server, key, &[("agent_identifier", agent)], CALL_VTT).await
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|c| c["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn agents_see_their_own_calls_supervisors_see_all_and_configure() {
    let server = TestServer::start(|_| {}).await;
    let org = org_with_users(&server, "acme", "acme.example").await;
    let alice_call = call_of(&server, &org.key, "1001").await;
    let bob_call = call_of(&server, &org.key, "1002").await;

    let alice = sign_in(&server, "acme.example", "1001", PASSWORD).await;
    let alice = Cred::Cookie(&alice);
    let (st, list) = call(&server, &alice, Method::GET, "/api/v1/calls", None).await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(ids(&list), vec![alice_call.clone()], "{list}");
    // Her call, its transcript, recording and analysis: readable.
    for path in [
        format!("/api/v1/calls/{alice_call}"),
        format!("/api/v1/calls/{alice_call}/analysis"),
    ] {
        let (st, body) = call(&server, &alice, Method::GET, &path, None).await;
        assert_eq!(st, 200, "{path}: {body}");
    }
    let r = server
        .http
        .get(server.url(&format!("/api/v1/calls/{alice_call}/transcript.txt")))
        .header(
            header::COOKIE,
            match &alice {
                Cred::Cookie(c) => *c,
                Cred::Key(_) => unreachable!(),
            },
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Bob's call does not exist for her, through any door.
    for path in [
        format!("/api/v1/calls/{bob_call}"),
        format!("/api/v1/calls/{bob_call}/analysis"),
        format!("/api/v1/calls/{bob_call}/transcript.json"),
        format!("/api/v1/calls/{bob_call}/recording"),
        format!("/api/v1/calls/{bob_call}/scorecards"),
    ] {
        let (st, body) = call(&server, &alice, Method::GET, &path, None).await;
        assert_eq!(st, 404, "{path}: {body}");
    }
    // Configuring call intelligence is not an agent's job: 403 naming the permission.
    let tracker = json!({"name": "Competitors", "category": "competitor", "kind": "keyword", "phrases": ["globex"]});
    let (st, body) = call(
        &server,
        &alice,
        Method::POST,
        "/api/v1/trackers",
        Some(tracker.clone()),
    )
    .await;
    assert_eq!(st, 403, "{body}");
    assert_eq!(body["code"], "forbidden");
    assert_eq!(body["details"]["permission"], "call_settings.manage");
    for (method, path) in [
        (Method::GET, "/api/v1/users".to_string()),
        (Method::GET, "/api/v1/api-keys".to_string()),
        (Method::PUT, "/api/v1/settings/analysis".to_string()),
        (Method::PUT, format!("/api/v1/calls/{alice_call}/call-type")),
    ] {
        let (st, body) = call(&server, &alice, method, &path, Some(json!({}))).await;
        assert_eq!(st, 403, "{path}: {body}");
    }
    let (st, trackers) = call(&server, &alice, Method::GET, "/api/v1/trackers", None).await;
    assert_eq!(st, 200, "{trackers}");
    assert_eq!(trackers["items"], json!([]), "nothing was created");

    // The supervisor (QA manager) reads every call and configures trackers.
    let sue = sign_in(&server, "acme.example", "2001", PASSWORD).await;
    let sue = Cred::Cookie(&sue);
    let (st, list) = call(&server, &sue, Method::GET, "/api/v1/calls", None).await;
    assert_eq!(st, 200);
    let mut seen = ids(&list);
    seen.sort();
    let mut both = vec![alice_call.clone(), bob_call.clone()];
    both.sort();
    assert_eq!(seen, both);
    let (st, body) = call(
        &server,
        &sue,
        Method::POST,
        "/api/v1/trackers",
        Some(tracker),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    let (st, body) = call(
        &server,
        &sue,
        Method::PUT,
        &format!("/api/v1/calls/{bob_call}/call-type"),
        Some(json!({"call_type": "complaint"})),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    // ...but manages no users.
    let (st, _) = call(&server, &sue, Method::GET, "/api/v1/users", None).await;
    assert_eq!(st, 403);

    // An admin manages users, but appoints nobody above admin.
    let adam = sign_in(&server, "acme.example", "3001", PASSWORD).await;
    let adam = Cred::Cookie(&adam);
    let new_user = |role: &str, ext: &str| json!({"name": format!("New {role}"), "extension": ext, "password": "another long password", "role": role});
    let (st, body) = call(
        &server,
        &adam,
        Method::POST,
        "/api/v1/users",
        Some(new_user("owner", "4001")),
    )
    .await;
    assert_eq!(st, 403, "{body}");
    let (st, body) = call(
        &server,
        &adam,
        Method::POST,
        "/api/v1/users",
        Some(new_user("supervisor", "4002")),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    let (_, users_list) = call(&server, &adam, Method::GET, "/api/v1/users", None).await;
    assert!(!users_list.to_string().contains("4001"), "{users_list}");

    // Another organization's key sees none of it.
    let (_, other_key) = server.org("globex").await;
    let other = Cred::Key(&other_key);
    let (st, _) = call(
        &server,
        &other,
        Method::GET,
        &format!("/api/v1/calls/{alice_call}"),
        None,
    )
    .await;
    assert_eq!(st, 404);
    let _ = org.id;
}

#[tokio::test]
async fn api_keys_carry_permissions_expire_are_revoked_and_record_use() {
    let server = TestServer::start(|_| {}).await;
    let org = org_with_users(&server, "acme", "acme.example").await;
    let full = Cred::Key(&org.key);
    let call_id = call_of(&server, &org.key, "1001").await;

    // A read-only key for a BI tool.
    let (st, made) = call(
        &server,
        &full,
        Method::POST,
        "/api/v1/api-keys",
        Some(json!({"name": "bi export", "permissions": ["calls.read_all", "intelligence.read"]})),
    )
    .await;
    assert_eq!(st, 201, "{made}");
    let reader_key = made["key"].as_str().unwrap().to_string();
    let reader_id = made["id"].as_str().unwrap().to_string();
    assert_eq!(
        made["permissions"],
        json!(["calls.read_all", "intelligence.read"])
    );
    assert_eq!(made["status"], "active");
    assert_eq!(made["last_used_at"], Value::Null);
    let reader = Cred::Key(&reader_key);
    let (st, _) = call(
        &server,
        &reader,
        Method::GET,
        &format!("/api/v1/calls/{call_id}/analysis"),
        None,
    )
    .await;
    assert_eq!(st, 200);
    let (st, body) = call(
        &server,
        &reader,
        Method::POST,
        &format!("/api/v1/calls/{call_id}/reanalyze"),
        None,
    )
    .await;
    assert_eq!(st, 403, "{body}");
    assert_eq!(body["details"]["permission"], "calls.write");
    // Listing keys never shows a key again, and shows the last use.
    let (st, list) = call(&server, &full, Method::GET, "/api/v1/api-keys", None).await;
    assert_eq!(st, 200);
    let listed = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == reader_id.as_str())
        .unwrap()
        .clone();
    assert!(listed["last_used_at"].is_string(), "{listed}");
    assert_eq!(listed.get("key"), None, "{listed}");
    assert!(!list.to_string().contains(&reader_key));

    // A key-managing key cannot mint more than it holds.
    let (_, manager) = call(
        &server,
        &full,
        Method::POST,
        "/api/v1/api-keys",
        Some(json!({"name": "key admin", "permissions": ["api_keys.manage"]})),
    )
    .await;
    let manager_key = manager["key"].as_str().unwrap().to_string();
    let (st, body) = call(
        &server,
        &Cred::Key(&manager_key),
        Method::POST,
        "/api/v1/api-keys",
        Some(json!({"name": "sneaky", "permissions": ["calls.read_all"]})),
    )
    .await;
    assert_eq!(st, 422, "{body}");
    assert_eq!(body["code"], "permission_escalation");
    // Unknown permission names and past expiries are refused.
    for bad in [
        json!({"name": "x", "permissions": ["calls.everything"]}),
        json!({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}),
    ] {
        let (st, body) = call(&server, &full, Method::POST, "/api/v1/api-keys", Some(bad)).await;
        assert_eq!(st, 422, "{body}");
    }

    // Expired: a key whose time has passed stops working at once.
    let expired = callscope_api::auth::create_api_key(
        server.pool(),
        &org.id,
        "short-lived",
        Some(callscope_api::ids::now_ms() - 1),
    )
    .await
    .unwrap();
    let (st, body) = call(
        &server,
        &Cred::Key(&expired.key),
        Method::GET,
        "/api/v1/calls",
        None,
    )
    .await;
    assert_eq!(st, 401, "{body}");

    // Revoked: 204, then 401 for the key; another organization cannot revoke it (404).
    let (_, globex_key) = server.org("globex").await;
    let (st, _) = call(
        &server,
        &Cred::Key(&globex_key),
        Method::DELETE,
        &format!("/api/v1/api-keys/{reader_id}"),
        None,
    )
    .await;
    assert_eq!(st, 404);
    let (st, _) = call(&server, &reader, Method::GET, "/api/v1/calls", None).await;
    assert_eq!(st, 200, "still valid after the foreign attempt");
    let (st, _) = call(
        &server,
        &full,
        Method::DELETE,
        &format!("/api/v1/api-keys/{reader_id}"),
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (st, body) = call(&server, &reader, Method::GET, "/api/v1/calls", None).await;
    assert_eq!(st, 401, "{body}");
    let (_, list) = call(&server, &full, Method::GET, "/api/v1/api-keys", None).await;
    let listed = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == reader_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(listed["status"], "revoked", "{listed}");
}
