//! SIP administration and call control over real HTTP: users, trunks, routes and the SIP
//! domain; isolation between organizations (another org's ids are 404); passwords are
//! write-only; call control answers 503 while SIP is disabled and 404 for unknown calls.

mod common;

use common::TestServer;
use serde_json::{Value, json};

impl TestServer {
    async fn send(
        &self,
        method: reqwest::Method,
        key: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, self.url(path))
            .header("x-api-key", key);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
    async fn post(&self, key: &str, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, key, path, Some(body))
            .await
    }
    async fn delete(&self, key: &str, path: &str) -> u16 {
        self.send(reqwest::Method::DELETE, key, path, None).await.0
    }
}

#[tokio::test]
async fn users_crud_isolation_and_write_only_passwords() {
    let s = TestServer::start(|_| {}).await;
    let (_org, key) = s.org("Acme Corp").await;
    let (_other, other_key) = s.org("Other").await;

    let (st, domain) = s.get_json(&key, "/api/v1/sip/domain").await;
    assert_eq!(st, 200);
    assert_eq!(domain["realm"], "acme-corp.callscope.local");

    let (st, alice) = s
        .post(
            &key,
            "/api/v1/users",
            json!({"name": "Alice", "extension": "1001", "password": "alice-secret-1"}),
        )
        .await;
    assert_eq!(st, 201, "{alice}");
    assert_eq!(alice["extension"], "1001");
    assert_eq!(alice["role"], "agent");
    assert_eq!(alice["sip"]["username"], "1001");
    assert_eq!(alice["sip"]["realm"], "acme-corp.callscope.local");
    let text = alice.to_string();
    for secret in ["alice-secret-1", "argon2", "ha1", "password"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let id = alice["id"].as_str().unwrap().to_string();

    // Bad input: 422 with the error format; duplicates: 409; unknown fields: 422.
    for (body, status, code) in [
        (
            json!({"name": "X", "extension": "1001", "password": "another-secret"}),
            409,
            "extension_taken",
        ),
        (
            json!({"name": "X", "extension": "10a1", "password": "another-secret"}),
            422,
            "validation_error",
        ),
        (
            json!({"name": "X", "extension": "1002", "password": "short"}),
            422,
            "validation_error",
        ),
        (
            json!({"name": "", "extension": "1002", "password": "another-secret"}),
            422,
            "validation_error",
        ),
        (
            json!({"name": "X", "extension": "1002", "password": "another-secret", "role": "god"}),
            422,
            "validation_error",
        ),
        (
            json!({"name": "X", "extension": "1002", "password": "another-secret", "ha1": "x"}),
            422,
            "validation_error",
        ),
        (json!({"name": "X"}), 422, "validation_error"),
    ] {
        let (st, err) = s.post(&key, "/api/v1/users", body.clone()).await;
        assert_eq!(st, status, "{body} → {err}");
        assert_eq!(err["code"], code, "{body} → {err}");
    }
    let r = s
        .http
        .post(s.url("/api/v1/users"))
        .header("x-api-key", &key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let (st, list) = s.get_json(&key, "/api/v1/users").await;
    assert_eq!(st, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        s.get_json(&key, &format!("/api/v1/users/{id}")).await.0,
        200
    );

    // The other org sees nothing of it, and cannot delete it.
    let (_, other_list) = s.get_json(&other_key, "/api/v1/users").await;
    assert_eq!(other_list["data"], json!([]));
    assert_eq!(
        s.get_json(&other_key, &format!("/api/v1/users/{id}"))
            .await
            .0,
        404
    );
    assert_eq!(
        s.delete(&other_key, &format!("/api/v1/users/{id}")).await,
        404
    );
    // The same extension in another org is fine (another realm).
    let (st, _) = s
        .post(
            &other_key,
            "/api/v1/users",
            json!({"name": "Olga", "extension": "1001", "password": "olga-secret-1", "role": "owner"}),
        )
        .await;
    assert_eq!(st, 201);

    // The realm is fixed once users exist.
    let (st, err) = s
        .send(
            reqwest::Method::PUT,
            &key,
            "/api/v1/sip/domain",
            Some(json!({"realm": "pbx.acme.example"})),
        )
        .await;
    assert_eq!((st, err["code"].as_str()), (409, Some("realm_in_use")));
    let (_, fresh_key) = s.org("Fresh").await;
    let (st, d) = s
        .send(
            reqwest::Method::PUT,
            &fresh_key,
            "/api/v1/sip/domain",
            Some(json!({"realm": "PBX.Fresh.example"})),
        )
        .await;
    assert_eq!((st, d["realm"].as_str()), (200, Some("pbx.fresh.example")));
    let (st, _) = s
        .send(
            reqwest::Method::PUT,
            &fresh_key,
            "/api/v1/sip/domain",
            Some(json!({"realm": "bad realm!"})),
        )
        .await;
    assert_eq!(st, 422);

    assert_eq!(s.delete(&key, &format!("/api/v1/users/{id}")).await, 204);
    assert_eq!(s.delete(&key, &format!("/api/v1/users/{id}")).await, 404);
    assert_eq!(
        s.get_json(&key, &format!("/api/v1/users/{id}")).await.0,
        404
    );
    // Without a key: 401.
    assert_eq!(
        s.http
            .get(s.url("/api/v1/users"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test]
async fn trunks_and_routes_crud() {
    let s = TestServer::start(|_| {}).await;
    let (_org, key) = s.org("Acme").await;
    let (_other, other_key) = s.org("Other").await;

    let (st, trunk) = s
        .post(
            &key,
            "/api/v1/trunks",
            json!({"name": "carrier", "host": "127.0.0.1:5080", "username": "acme",
                   "password": "trunk-secret-pw", "inbound_acl": ["127.0.0.1", "203.0.113.5/24"]}),
        )
        .await;
    assert_eq!(st, 201, "{trunk}");
    assert_eq!(trunk["host"], "127.0.0.1");
    assert_eq!(trunk["port"], 5080);
    assert_eq!(trunk["transport"], "udp");
    assert_eq!(trunk["has_password"], true);
    assert_eq!(
        trunk["inbound_acl"],
        json!(["127.0.0.1/32", "203.0.113.0/24"])
    );
    assert!(!trunk.to_string().contains("trunk-secret-pw"));
    let tid = trunk["id"].as_str().unwrap().to_string();
    let (_, got) = s.get_json(&key, &format!("/api/v1/trunks/{tid}")).await;
    assert!(!got.to_string().contains("trunk-secret-pw"));
    let (_, listed) = s.get_json(&key, "/api/v1/trunks").await;
    assert!(!listed.to_string().contains("trunk-secret-pw"));
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);

    for body in [
        json!({"name": "t", "host": "bad host"}),
        json!({"name": "t", "host": "h", "transport": "sctp"}),
        json!({"name": "t", "host": "h", "inbound_acl": ["10.0.0.0/99"]}),
        json!({"name": "t", "host": "h", "password": "pw-without-user"}),
        json!({"name": "", "host": "h"}),
    ] {
        let (st, err) = s.post(&key, "/api/v1/trunks", body.clone()).await;
        assert_eq!(
            (st, err["code"].as_str()),
            (422, Some("validation_error")),
            "{body}"
        );
    }
    let (st, _) = s
        .post(
            &key,
            "/api/v1/trunks",
            json!({"name": "carrier", "host": "h"}),
        )
        .await;
    assert_eq!(st, 409);
    assert_eq!(
        s.get_json(&other_key, &format!("/api/v1/trunks/{tid}"))
            .await
            .0,
        404
    );
    assert_eq!(
        s.delete(&other_key, &format!("/api/v1/trunks/{tid}")).await,
        404
    );

    // Routes.
    for (name, ext) in [("Alice", "1001"), ("Bob", "1002")] {
        let (st, _) = s
            .post(
                &key,
                "/api/v1/users",
                json!({"name": name, "extension": ext, "password": format!("{name}-password")}),
            )
            .await;
        assert_eq!(st, 201);
    }
    let (_, users) = s.get_json(&key, "/api/v1/users").await;
    let alice = users["data"][0]["id"].as_str().unwrap().to_string();
    let bob = users["data"][1]["id"].as_str().unwrap().to_string();

    let (st, r1) = s
        .post(
            &key,
            "/api/v1/routes",
            json!({"did": "(415) 555-2671", "target": {"kind": "user", "extension": "1001"}}),
        )
        .await;
    assert_eq!(st, 201, "{r1}");
    assert_eq!(r1["did"], "+14155552671");
    assert_eq!(r1["target"], json!({"kind": "user", "user_id": alice}));
    let (st, r2) = s
        .post(
            &key,
            "/api/v1/routes",
            json!({"did": "+14155552672", "target": {"kind": "ring_group", "members": ["1001", bob],
                   "strategy": "longest_idle", "member_timeout_s": 12}}),
        )
        .await;
    assert_eq!(st, 201, "{r2}");
    assert_eq!(
        r2["target"],
        json!({"kind": "ring_group", "members": [alice, bob], "strategy": "longest_idle",
               "member_timeout_s": 12, "total_timeout_s": 24})
    );
    let (st, r3) = s
        .post(
            &key,
            "/api/v1/routes",
            json!({"did": "+14155552673", "target": {"kind": "reject", "status": 486}}),
        )
        .await;
    assert_eq!(st, 201, "{r3}");

    for body in [
        json!({"did": "not a number", "target": {"kind": "reject", "status": 486}}),
        json!({"did": "+14155552674", "target": {"kind": "reject", "status": 200}}),
        json!({"did": "+14155552674", "target": {"kind": "user", "extension": "1999"}}),
        json!({"did": "+14155552674", "target": {"kind": "ring_group", "members": []}}),
        json!({"did": "+14155552674", "target": {"kind": "ring_group", "members": ["1001", "1001"]}}),
        json!({"did": "+14155552674", "target": {"kind": "ring_group", "members": ["1001"], "member_timeout_s": 0}}),
        json!({"did": "+14155552674", "target": {"kind": "ring_group", "members": ["1001"], "strategy": "random"}}),
        json!({"did": "+14155552674", "target": {"kind": "voicemail"}}),
    ] {
        let (st, err) = s.post(&key, "/api/v1/routes", body.clone()).await;
        assert_eq!(st, 422, "{body} → {err}");
    }
    let (st, err) = s
        .post(
            &key,
            "/api/v1/routes",
            json!({"did": "+14155552671", "target": {"kind": "reject", "status": 403}}),
        )
        .await;
    assert_eq!((st, err["code"].as_str()), (409, Some("did_taken")));
    // Another org's user cannot be a target.
    let (st, _) = s
        .post(
            &other_key,
            "/api/v1/routes",
            json!({"did": "+14155552671", "target": {"kind": "user", "user_id": alice}}),
        )
        .await;
    assert_eq!(st, 422);

    let (_, routes) = s.get_json(&key, "/api/v1/routes").await;
    assert_eq!(routes["data"].as_array().unwrap().len(), 3);
    let r1_id = r1["id"].as_str().unwrap();
    assert_eq!(
        s.get_json(&other_key, &format!("/api/v1/routes/{r1_id}"))
            .await
            .0,
        404
    );
    assert_eq!(
        s.delete(&other_key, &format!("/api/v1/routes/{r1_id}"))
            .await,
        404
    );

    // A user targeted by a route cannot be deleted until the route is.
    let (st, err) = s
        .send(
            reqwest::Method::DELETE,
            &key,
            &format!("/api/v1/users/{alice}"),
            None,
        )
        .await;
    assert_eq!((st, err["code"].as_str()), (409, Some("user_in_use")));
    assert_eq!(
        s.delete(&key, &format!("/api/v1/routes/{r1_id}")).await,
        204
    );
    assert_eq!(
        s.delete(
            &key,
            &format!("/api/v1/routes/{}", r2["id"].as_str().unwrap())
        )
        .await,
        204
    );
    assert_eq!(s.delete(&key, &format!("/api/v1/users/{alice}")).await, 204);
    assert_eq!(s.delete(&key, &format!("/api/v1/trunks/{tid}")).await, 204);
    assert_eq!(
        s.get_json(&key, &format!("/api/v1/trunks/{tid}")).await.0,
        404
    );
}

#[tokio::test]
async fn call_control_without_sip_and_for_unknown_calls() {
    let s = TestServer::start(|_| {}).await;
    let (_org, key) = s.org("Acme").await;
    let (st, _) = s
        .post(
            &key,
            "/api/v1/users",
            json!({"name": "Alice", "extension": "1001", "password": "alice-secret-1"}),
        )
        .await;
    assert_eq!(st, 201);

    // Input is checked before SIP is needed.
    let (st, err) = s
        .post(
            &key,
            "/api/v1/calls",
            json!({"agent_extension": "1999", "number": "+14155552671"}),
        )
        .await;
    assert_eq!((st, err["code"].as_str()), (422, Some("unknown_agent")));
    let (st, err) = s
        .post(
            &key,
            "/api/v1/calls",
            json!({"agent_extension": "1001", "number": "not-a-number"}),
        )
        .await;
    assert_eq!((st, err["code"].as_str()), (422, Some("invalid_number")));
    let (st, _) = s
        .post(
            &key,
            "/api/v1/calls",
            json!({"agent_extension": "1001", "agent_user_id": "x", "number": "1002"}),
        )
        .await;
    assert_eq!(st, 422);
    let (st, err) = s
        .post(
            &key,
            "/api/v1/calls",
            json!({"agent_extension": "1001", "number": "+1 415 555 2671"}),
        )
        .await;
    assert_eq!((st, err["code"].as_str()), (503, Some("sip_disabled")));

    for action in ["hangup", "hold", "resume"] {
        let (st, err) = s
            .post(&key, &format!("/api/v1/calls/nope/{action}"), json!({}))
            .await;
        assert_eq!(
            (st, err["code"].as_str()),
            (404, Some("not_found")),
            "{action}"
        );
    }
    let (st, _) = s
        .post(
            &key,
            "/api/v1/calls/nope/transfer",
            json!({"target": "1001"}),
        )
        .await;
    assert_eq!(st, 404);
    // GET /calls still lists (the POST shares the path).
    assert_eq!(s.get_json(&key, "/api/v1/calls").await.0, 200);
    // Health reports SIP as disabled.
    let (st, h) = s.get_json(&key, "/healthz").await;
    assert_eq!(st, 200);
    assert_eq!(h["sip"]["enabled"], false);
}
