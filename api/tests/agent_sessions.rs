//! Agents' web login against the real server: the session cookie's attributes, what a wrong
//! password or an unknown extension gets (the same answer), the session opening `me` and
//! presence, logout ending it, and one organization's session seeing nothing of another's.

mod common;

use callscope_api::sip::{domains, users};
use common::TestServer;
use reqwest::header;
use serde_json::{Value, json};

async fn agent(server: &TestServer, org_name: &str, realm: &str) -> String {
    let (org, _key) = server.org(org_name).await;
    domains::set_realm(server.pool(), &org, realm)
        .await
        .unwrap();
    users::create_user(
        server.pool(),
        &org,
        &users::NewUser {
            name: "Alice Agent",
            extension: "1001",
            password: "correct horse battery",
            role: users::Role::Agent,
        },
    )
    .await
    .unwrap();
    org
}

async fn login(server: &TestServer, body: Value) -> reqwest::Response {
    server
        .http
        .post(server.url("/api/v1/agent/login"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn cookie_of(response: &reqwest::Response) -> String {
    let set = response
        .headers()
        .get(header::SET_COOKIE)
        .expect("Set-Cookie")
        .to_str()
        .unwrap()
        .to_string();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(set.contains("Path=/"), "{set}");
    set.split(';').next().unwrap().to_string()
}

async fn with_cookie(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    cookie: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server
        .http
        .request(method, server.url(path))
        .header(header::COOKIE, cookie);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn login_presence_logout_and_isolation() {
    let server = TestServer::start(|_| {}).await;
    agent(&server, "acme", "acme.example").await;
    agent(&server, "globex", "globex.example").await;

    // Wrong password and unknown extension/domain: one answer, no cookie.
    for body in [
        json!({"domain": "acme.example", "extension": "1001", "password": "wrong"}),
        json!({"domain": "acme.example", "extension": "1999", "password": "correct horse battery"}),
        json!({"domain": "nowhere.example", "extension": "1001", "password": "correct horse battery"}),
    ] {
        let r = login(&server, body).await;
        assert_eq!(r.status(), 401);
        assert!(r.headers().get(header::SET_COOKIE).is_none());
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["code"], "invalid_credentials");
    }
    // Not JSON, or an unknown field: refused before any password check.
    let r = server
        .http
        .post(server.url("/api/v1/agent/login"))
        .body("domain=acme.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    let r = login(
        &server,
        json!({"domain": "acme.example", "extension": "1001", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let cookie = cookie_of(&r);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["user"]["extension"], "1001");
    assert_eq!(body["presence"], "away", "a fresh login starts away");
    assert!(body["user"].get("password_hash").is_none());

    let (status, me) = with_cookie(
        &server,
        reqwest::Method::GET,
        "/api/v1/agent/me",
        &cookie,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(me["user"]["name"], "Alice Agent");

    let (status, v) = with_cookie(
        &server,
        reqwest::Method::PUT,
        "/api/v1/agent/presence",
        &cookie,
        Some(json!({"status": "available"})),
    )
    .await;
    assert_eq!((status, v["presence"].as_str()), (200, Some("available")));
    // busy and wrap-up come from calls, never by hand.
    let (status, _) = with_cookie(
        &server,
        reqwest::Method::PUT,
        "/api/v1/agent/presence",
        &cookie,
        Some(json!({"status": "busy"})),
    )
    .await;
    assert_eq!(status, 422);

    // The same extension in another organization is another person.
    let r = login(
        &server,
        json!({"domain": "globex.example", "extension": "1001", "password": "correct horse battery"}),
    )
    .await;
    let other_cookie = cookie_of(&r);
    let (_, other) = with_cookie(
        &server,
        reqwest::Method::GET,
        "/api/v1/agent/me",
        &other_cookie,
        None,
    )
    .await;
    assert_ne!(other["user"]["id"], me["user"]["id"]);
    assert_eq!(other["presence"], "away");

    // A session cookie is no API key, and a made-up token is nobody.
    let (status, _) = with_cookie(
        &server,
        reqwest::Method::GET,
        "/api/v1/calls",
        &cookie,
        None,
    )
    .await;
    assert_eq!(status, 401);
    let (status, v) = with_cookie(
        &server,
        reqwest::Method::GET,
        "/api/v1/agent/me",
        "cs_session=css_made-up",
        None,
    )
    .await;
    assert_eq!((status, v["code"].as_str()), (401, Some("not_logged_in")));

    // Logout: the cookie is cleared and the session is gone for good; presence offline.
    let r = server
        .http
        .post(server.url("/api/v1/agent/logout"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(
        r.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, _) = with_cookie(
        &server,
        reqwest::Method::GET,
        "/api/v1/agent/me",
        &cookie,
        None,
    )
    .await;
    assert_eq!(status, 401);
    let stored: Vec<(String,)> = sqlx::query_as("SELECT token_hash FROM agent_sessions")
        .fetch_all(server.pool())
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    for (hash,) in stored {
        assert_eq!(hash.len(), 64, "only a SHA-256 is stored");
        assert!(!cookie.contains(&hash));
    }
}
