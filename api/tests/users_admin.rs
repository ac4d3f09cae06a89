//! Changing a user (`PATCH /api/v1/users/{id}`) on the real server: a role change takes
//! effect on the user's next request, nobody appoints or demotes above their own role, the
//! last owner stays an owner, a new password replaces the sign-in (old sessions end, the old
//! password fails, the new one works), another organization's user is 404, and every change
//! is in the audit log with what it was and what it became.

mod common;

use common::{Cred, TestServer, call, post_json, request_json, sign_in};
use reqwest::Method;
use serde_json::json;

const PASSWORD: &str = "correct horse battery";
const REALM: &str = "acme.callscope.test";

async fn user(s: &TestServer, key: &str, extension: &str, role: &str) -> String {
    let (status, body) = post_json(
        s,
        key,
        "/api/v1/users",
        json!({"name": format!("User {extension}"), "extension": extension, "password": PASSWORD, "role": role}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn roles_and_passwords_change_within_the_rules_and_are_audited() {
    let s = TestServer::start(|_| {}).await;
    let (_org, key) = s.org("acme").await;
    let (status, body) = request_json(
        &s,
        &key,
        Method::PUT,
        "/api/v1/sip/domain",
        json!({"realm": REALM}),
    )
    .await;
    assert!(status == 200 || status == 201, "{status} {body}");
    let owner = user(&s, &key, "1001", "owner").await;
    let admin = user(&s, &key, "1002", "admin").await;
    let agent = user(&s, &key, "1003", "agent").await;

    // The agent may not put calls on legal hold; promoted to supervisor, the same session
    // may (and then learns the call does not exist).
    let agent_cookie = sign_in(&s, REALM, "1003", PASSWORD).await;
    let agent_session = Cred::Cookie(&agent_cookie);
    let hold = || Some(json!({"held": true, "reason": "litigation"}));
    let hold_path = "/api/v1/calls/no-such-call/legal-hold";
    let (status, _) = call(&s, &agent_session, Method::PUT, hold_path, hold()).await;
    assert_eq!(status, 403, "an agent may not hold calls");
    let admin_cookie = sign_in(&s, REALM, "1002", PASSWORD).await;
    let admin_session = Cred::Cookie(&admin_cookie);
    let path = format!("/api/v1/users/{agent}");
    let (status, body) = call(
        &s,
        &admin_session,
        Method::PATCH,
        &path,
        Some(json!({"role": "supervisor", "name": "Ada Lovelace"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["role"], "supervisor");
    assert_eq!(body["name"], "Ada Lovelace");
    let (status, _) = call(&s, &agent_session, Method::PUT, hold_path, hold()).await;
    assert_eq!(status, 404, "the promotion applies to the live session");

    // An admin neither makes an owner nor demotes one.
    let (status, body) = call(
        &s,
        &admin_session,
        Method::PATCH,
        &path,
        Some(json!({"role": "owner"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = call(
        &s,
        &admin_session,
        Method::PATCH,
        &format!("/api/v1/users/{owner}"),
        Some(json!({"role": "agent"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["details"]["which"], "current");

    // The only owner stays one, even when the organization's key asks.
    let (status, body) = request_json(
        &s,
        &key,
        Method::PATCH,
        &format!("/api/v1/users/{owner}"),
        json!({"role": "admin"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "last_owner");
    let (_, owner_now) = s.get_json(&key, &format!("/api/v1/users/{owner}")).await;
    assert_eq!(owner_now["role"], "owner", "nothing changed");

    // Junk is refused and changes nothing.
    for junk in [
        json!({"role": "emperor"}),
        json!({"name": ""}),
        json!({"password": "x"}),
        json!({"extension": "1999"}),
    ] {
        let (status, body) =
            call(&s, &admin_session, Method::PATCH, &path, Some(junk.clone())).await;
        assert!(status == 400 || status == 422, "{junk}: {status} {body}");
    }
    let (_, agent_now) = s.get_json(&key, &path).await;
    assert_eq!(agent_now["role"], "supervisor");
    assert_eq!(agent_now["name"], "Ada Lovelace");

    // A new password: the old session ends, the old password fails, the new one signs in.
    let new_password = "a much longer new passphrase";
    let (status, body) = call(
        &s,
        &admin_session,
        Method::PATCH,
        &path,
        Some(json!({"password": new_password})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("password").is_none() && body.get("password_hash").is_none());
    let (status, _) = call(&s, &agent_session, Method::GET, "/api/v1/agent/me", None).await;
    assert_eq!(status, 401, "the old session ended");
    let refused = s
        .http
        .post(s.url("/api/v1/agent/login"))
        .json(&json!({"domain": REALM, "extension": "1003", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "the old password no longer works");
    sign_in(&s, REALM, "1003", new_password).await;

    // Another organization cannot touch this one's users.
    let (_other_org, other_key) = s.org("other").await;
    let (status, _) = request_json(
        &s,
        &other_key,
        Method::PATCH,
        &path,
        json!({"role": "agent"}),
    )
    .await;
    assert_eq!(status, 404);

    // Every change is audited with its before and after; the password never appears.
    let (status, log) = s
        .get_json(
            &key,
            &format!("/api/v1/audit-log?action=user.updated&target_id={agent}"),
        )
        .await;
    assert_eq!(status, 200, "{log}");
    let entries = log["data"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{log}");
    let text = log.to_string();
    assert!(
        text.contains("\"from\":\"agent\"") && text.contains("\"to\":\"supervisor\""),
        "{text}"
    );
    assert!(text.contains("password_changed"), "{text}");
    assert!(!text.contains(new_password), "{text}");
    let _ = admin;
}
