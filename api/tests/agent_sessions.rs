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

    // A session reads the REST API as its user, with the agent role's permissions: their own
    // calls (none yet), and no configuring. A made-up token is nobody.
    let (status, calls) = with_cookie(
        &server,
        reqwest::Method::GET,
        "/api/v1/calls",
        &cookie,
        None,
    )
    .await;
    assert_eq!(status, 200, "{calls}");
    assert_eq!(calls["data"], json!([]), "{calls}");
    let (status, refused) = with_cookie(
        &server,
        reqwest::Method::GET,
        "/api/v1/users",
        &cookie,
        None,
    )
    .await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["details"]["permission"], "users.manage");
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

mod socket {
    use super::*;
    use futures::{SinkExt, StreamExt};
    use std::time::Duration;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    type Socket = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    async fn connect(
        server: &TestServer,
        cookie: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Socket, u16> {
        let url = format!(
            "{}/api/v1/agent/ws",
            server.base.replacen("http://", "ws://", 1)
        );
        let mut request = url.into_client_request().unwrap();
        if let Some(c) = cookie {
            request.headers_mut().insert("cookie", c.parse().unwrap());
        }
        if let Some(o) = origin {
            request.headers_mut().insert("origin", o.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => Ok(socket),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
            Err(e) => panic!("connect: {e}"),
        }
    }

    async fn next_json(socket: &mut Socket) -> Value {
        let deadline = Duration::from_secs(5);
        loop {
            let msg = tokio::time::timeout(deadline, socket.next())
                .await
                .expect("a message within 5 s")
                .expect("socket open")
                .expect("valid frame");
            if let Message::Text(text) = msg {
                return serde_json::from_str(&text).unwrap();
            }
        }
    }

    async fn send_json(socket: &mut Socket, v: Value) {
        socket
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    /// The softphone socket: hello with who you are, presence set from one tab shows in
    /// every tab (and from the REST call too), bad messages get an error and the socket
    /// stays, and neither a missing cookie nor another site's page gets a socket.
    #[tokio::test]
    async fn softphone_socket_presence_and_origin() {
        let server = TestServer::start(|_| {}).await;
        agent(&server, "acme", "acme.example").await;
        let r = login(
            &server,
            json!({"domain": "acme.example", "extension": "1001", "password": "correct horse battery"}),
        )
        .await;
        let cookie = cookie_of(&r);
        let origin = server.base.clone();

        assert_eq!(connect(&server, None, None).await.err(), Some(401));
        assert_eq!(
            connect(&server, Some(&cookie), Some("https://evil.example"))
                .await
                .err(),
            Some(403)
        );

        let mut tab1 = connect(&server, Some(&cookie), Some(&origin))
            .await
            .unwrap();
        let hello = next_json(&mut tab1).await;
        assert_eq!(hello["type"], "hello");
        assert_eq!(hello["user"]["extension"], "1001");
        assert_eq!(hello["presence"], "away");
        let mut tab2 = connect(&server, Some(&cookie), Some(&origin))
            .await
            .unwrap();
        assert_eq!(next_json(&mut tab2).await["type"], "hello");

        send_json(
            &mut tab1,
            json!({"type": "set_presence", "status": "available"}),
        )
        .await;
        for tab in [&mut tab1, &mut tab2] {
            let m = next_json(tab).await;
            assert_eq!(
                (m["type"].as_str(), m["status"].as_str()),
                (Some("presence"), Some("available"))
            );
        }
        // The REST call reaches the sockets too.
        let (status, _) = with_cookie(
            &server,
            reqwest::Method::PUT,
            "/api/v1/agent/presence",
            &cookie,
            Some(json!({"status": "away"})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(next_json(&mut tab2).await["status"], "away");

        // Garbage and forbidden states: an error, and the socket still answers.
        send_json(&mut tab1, json!({"type": "launch_missiles"})).await;
        assert_eq!(
            next_json(&mut tab1).await["type"],
            "presence",
            "the REST change came first"
        );
        assert_eq!(next_json(&mut tab1).await["code"], "bad_message");
        send_json(&mut tab1, json!({"type": "set_presence", "status": "busy"})).await;
        assert_eq!(next_json(&mut tab1).await["code"], "validation_error");
        send_json(&mut tab1, json!({"type": "ping"})).await;
        assert_eq!(next_json(&mut tab1).await["type"], "pong");
        // Call commands: this server runs without SIP, so there are no calls to command;
        // a command missing its fields is refused before that.
        send_json(&mut tab1, json!({"type": "answer", "call_id": "c1"})).await;
        let m = next_json(&mut tab1).await;
        assert_eq!(
            (m["code"].as_str(), m["call_id"].as_str()),
            (Some("bad_message"), Some("c1"))
        );
        send_json(
            &mut tab1,
            json!({"type": "hangup", "call_id": "c1", "request_id": "r7"}),
        )
        .await;
        let m = next_json(&mut tab1).await;
        assert_eq!(
            (m["code"].as_str(), m["request_id"].as_str()),
            (Some("unavailable"), Some("r7"))
        );

        // Logging out ends the session's sockets too (checked every 10 s).
        let (status, _) = with_cookie(
            &server,
            reqwest::Method::POST,
            "/api/v1/agent/logout",
            &cookie,
            None,
        )
        .await;
        assert_eq!(status, 204);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let mut ended = false;
        while tokio::time::Instant::now() < deadline {
            match tokio::time::timeout_at(deadline, tab2.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    let v: Value = serde_json::from_str(&text).unwrap();
                    if v["code"] == "session_ended" {
                        ended = true;
                    }
                }
                Ok(Some(Ok(_))) => {}
                // Closed after the message.
                Ok(None) | Ok(Some(Err(_))) => break,
                Err(_) => break,
            }
        }
        assert!(ended, "the socket outlived its session");
    }
}
