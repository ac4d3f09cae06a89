//! The realtime socket `/api/v1/events/ws` scoped like the REST API: an organization's
//! sockets see its events only, narrowed to the event names or the contact they asked for;
//! an agent who may see only their own calls gets only those calls' events; a client that
//! reconnects with the last `seq` it saw gets what it missed; a revoked key's socket closes;
//! missing credentials, foreign pages, bad filters and other organizations' ids are refused.

mod common;

use std::time::Duration;

use common::events::{connect, events_until, events_within, names, next_message, open, send_json};
use common::{CALL_VTT, TestServer, agent_session, post_json, stereo_call};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
/// Long enough for the tail (every 100 ms) to have pushed anything that was coming.
const QUIET: Duration = Duration::from_millis(800);

/// POST that must succeed; its JSON answer.
async fn post(s: &TestServer, key: &str, path: &str, body: Value) -> Value {
    let (status, v) = post_json(s, key, path, body).await;
    assert!((200..300).contains(&status), "{path}: {status} {v}");
    v
}

fn ids(events: &[Value], pointer: &str) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            e.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn sockets_see_their_organization_and_what_they_asked_for() {
    let s = TestServer::start(|_| {}).await;
    let (_, key) = s.org("acme").await;
    let (_, other_key) = s.org("globex").await;
    let (mut everything, _) = open(&s, &key, "").await;
    let (mut notes_only, _) = open(&s, &key, "events=note.*").await;
    let (mut globex, _) = open(&s, &other_key, "").await;

    let ada = post(
        &s,
        &key,
        "/api/v1/contacts",
        json!({"first_name": "Ada", "phones": ["+14155550101"]}),
    )
    .await;
    let ada = ada["id"].as_str().unwrap().to_string();
    let (mut ada_only, _) = open(&s, &key, &format!("contact_id={ada}")).await;
    let bob = post(&s, &key, "/api/v1/contacts", json!({"first_name": "Bob"})).await;
    let bob = bob["id"].as_str().unwrap().to_string();
    post(
        &s,
        &key,
        "/api/v1/notes",
        json!({"contact_id": ada, "body": "first"}),
    )
    .await;
    post(
        &s,
        &key,
        "/api/v1/notes",
        json!({"contact_id": bob, "body": "second"}),
    )
    .await;
    let hidden = post(
        &s,
        &other_key,
        "/api/v1/contacts",
        json!({"first_name": "Hidden"}),
    )
    .await;

    let all = events_until(&mut everything, WAIT, |got| got.len() >= 4).await;
    assert_eq!(
        names(&all),
        [
            "contact.created",
            "contact.created",
            "note.created",
            "note.created"
        ]
    );
    assert_eq!(ids(&all[..2], "/data/id"), [ada.clone(), bob.clone()]);
    assert!(
        events_within(&mut everything, QUIET).await.is_empty(),
        "globex's contact leaked"
    );

    let notes = events_until(&mut notes_only, WAIT, |got| got.len() >= 2).await;
    assert_eq!(names(&notes), ["note.created", "note.created"]);
    assert_eq!(ids(&notes, "/data/body"), ["first", "second"]);

    // Opened after Ada existed: her note only (Bob's contact and note are not hers).
    let hers = events_until(&mut ada_only, WAIT, |got| !got.is_empty()).await;
    assert_eq!(names(&hers), ["note.created"]);
    assert_eq!(hers[0]["data"]["contact_id"], ada.as_str());
    assert!(events_within(&mut ada_only, QUIET).await.is_empty());

    let theirs = events_until(&mut globex, WAIT, |got| !got.is_empty()).await;
    assert_eq!(ids(&theirs, "/data/id"), [hidden["id"].as_str().unwrap()]);
    assert!(events_within(&mut globex, QUIET).await.is_empty());

    // The envelope is the webhook's, plus the stream position.
    let e = &all[2];
    for field in ["id", "event", "created_at", "data"] {
        assert!(!e[field].is_null(), "{field} missing: {e}");
    }
    assert!(
        all.windows(2)
            .all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64())
    );

    // Pings are answered.
    send_json(&mut everything, json!({"type": "ping"})).await;
    let pong = next_message(&mut everything, WAIT).await.unwrap();
    assert_eq!(pong["type"], "pong");
}

#[tokio::test]
async fn reconnecting_with_after_replays_what_was_missed() {
    let s = TestServer::start(|_| {}).await;
    let (_, key) = s.org("acme").await;
    let (mut socket, _) = open(&s, &key, "").await;
    let ada = post(&s, &key, "/api/v1/contacts", json!({"first_name": "Ada"})).await;
    let ada = ada["id"].as_str().unwrap().to_string();
    let seen = events_until(&mut socket, WAIT, |got| !got.is_empty()).await;
    let last_seq = seen[0]["seq"].as_i64().unwrap();
    drop(socket);

    // While nobody listens.
    post(
        &s,
        &key,
        "/api/v1/notes",
        json!({"contact_id": ada, "body": "missed 1"}),
    )
    .await;
    post(
        &s,
        &key,
        "/api/v1/notes",
        json!({"contact_id": ada, "body": "missed 2"}),
    )
    .await;

    let (mut again, ready) = open(&s, &key, &format!("after={last_seq}")).await;
    assert_eq!(ready, last_seq);
    let replayed = events_until(&mut again, WAIT, |got| got.len() >= 2).await;
    assert_eq!(ids(&replayed, "/data/body"), ["missed 1", "missed 2"]);
    // Then live again, without repeats.
    post(
        &s,
        &key,
        "/api/v1/notes",
        json!({"contact_id": ada, "body": "live"}),
    )
    .await;
    let live = events_until(&mut again, WAIT, |got| !got.is_empty()).await;
    assert_eq!(ids(&live, "/data/body"), ["live"]);
    assert!(events_within(&mut again, QUIET).await.is_empty());

    // Without `after`, a new socket starts from now: nothing old is replayed.
    let (mut fresh, _) = open(&s, &key, "").await;
    assert!(events_within(&mut fresh, QUIET).await.is_empty());
}

#[tokio::test]
async fn an_agent_who_sees_own_calls_gets_only_their_calls_events() {
    let s = TestServer::start(|_| {}).await;
    let (org, key) = s.org("acme").await;
    let alice = agent_session(&s, &org, "acme.example", "1001").await;
    let bob = agent_session(&s, &org, "acme.example", "1002").await;
    let origin = s.base.clone();
    let mut sockets = Vec::new();
    for cookie in [&alice, &bob] {
        let mut socket = connect(
            &s,
            &[("cookie", cookie.as_str()), ("origin", origin.as_str())],
            "events=call.*",
        )
        .await
        .unwrap_or_else(|status| panic!("agent socket refused: {status}"));
        let ready = next_message(&mut socket, WAIT).await.unwrap();
        assert_eq!(ready["type"], "ready");
        sockets.push(socket);
    }
    let wav = std::fs::read(stereo_call(s.dir.path())).unwrap();
    let mut call_of = Vec::new();
    for agent in ["1001", "1002"] {
        let (status, call) = s
            .upload(
                &key,
                "call.wav",
                wav.clone(),
                &[
                    ("channel_layout", "stereo_agent_left"),
                    ("agent_identifier", agent),
                ],
                Some(CALL_VTT),
            )
            .await;
        assert_eq!(status, 202, "{call}");
        let id = call["id"].as_str().unwrap().to_string();
        s.wait_done(&key, &id).await;
        call_of.push(id);
    }
    for (socket, own) in sockets.iter_mut().zip(&call_of) {
        let got = events_until(socket, WAIT, |got| {
            names(got).iter().any(|n| n == "call.processed")
        })
        .await;
        let later = events_within(socket, QUIET).await;
        let calls: Vec<String> = ids(&got, "/data/call/id")
            .into_iter()
            .chain(ids(&later, "/data/call/id"))
            .collect();
        assert!(
            calls.iter().all(|c| c == own),
            "{calls:?} should all be {own}"
        );
    }
}

#[tokio::test]
async fn revoked_keys_lose_their_socket_and_bad_requests_are_refused() {
    let s = TestServer::start(|_| {}).await;
    let (org, key) = s.org("acme").await;
    let (_, other_key) = s.org("globex").await;

    // No credential, a wrong one.
    assert_eq!(connect(&s, &[], "").await.err(), Some(401));
    assert_eq!(
        connect(&s, &[("x-api-key", "csk_wrong")], "").await.err(),
        Some(401)
    );
    // Filters that mean nothing.
    assert_eq!(
        connect(&s, &[("x-api-key", &key)], "events=call.procesed")
            .await
            .err(),
        Some(422)
    );
    assert_eq!(
        connect(&s, &[("x-api-key", &key)], "after=-5").await.err(),
        Some(422)
    );
    // Another organization's contact: 404, as on the REST API.
    let theirs = post(
        &s,
        &other_key,
        "/api/v1/contacts",
        json!({"first_name": "Theirs"}),
    )
    .await;
    let query = format!("contact_id={}", theirs["id"].as_str().unwrap());
    assert_eq!(
        connect(&s, &[("x-api-key", &key)], &query).await.err(),
        Some(404)
    );
    // A key that may read neither contacts nor calls has nothing to listen to.
    let narrow = post(
        &s,
        &key,
        "/api/v1/api-keys",
        json!({"name": "uploader", "permissions": ["calls.write"]}),
    )
    .await;
    let narrow_key = narrow["key"].as_str().unwrap();
    assert_eq!(
        connect(&s, &[("x-api-key", narrow_key)], "").await.err(),
        Some(403)
    );
    // The session cookie from another site's page (cross-site WebSocket hijacking).
    let cookie = agent_session(&s, &org, "acme.example", "1001").await;
    assert_eq!(
        connect(
            &s,
            &[
                ("cookie", cookie.as_str()),
                ("origin", "https://evil.example")
            ],
            ""
        )
        .await
        .err(),
        Some(403)
    );

    // A key revoked while its socket is open: told so, then closed (checked every 10 s).
    let reader = post(
        &s,
        &key,
        "/api/v1/api-keys",
        json!({"name": "dashboard", "permissions": ["contacts.read"]}),
    )
    .await;
    let (mut socket, _) = open(&s, reader["key"].as_str().unwrap(), "").await;
    let r = s
        .http
        .delete(s.url(&format!(
            "/api/v1/api-keys/{}",
            reader["id"].as_str().unwrap()
        )))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let mut told = None;
    while let Some(m) = next_message(&mut socket, Duration::from_secs(15)).await {
        if m["type"] == "error" {
            told = Some(m);
            break;
        }
    }
    assert_eq!(
        told.expect("an error before closing")["code"],
        "unauthorized"
    );
    assert!(
        next_message(&mut socket, Duration::from_secs(5))
            .await
            .is_none(),
        "closed"
    );
}
