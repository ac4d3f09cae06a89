//! Retention and audit against the real server (real SQLite, real HTTP, real files):
//! per-organization periods applied by the purge (manual and scheduled), legal holds, the
//! API's answers for purged data, and the audit log (what it records, filters, pagination,
//! isolation between organizations, permissions).

mod common;

use std::time::{Duration, Instant};

use callscope_api::sip::{domains, users};
use common::{CALL_VTT, Cred, TestServer, call, processed_upload, stereo_call};
use reqwest::{Method, header};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";
const DAY_MS: i64 = 86_400_000;

struct Org {
    id: String,
    key: String,
    realm: String,
    admin_id: String,
}

async fn org_with_users(server: &TestServer, name: &str, realm: &str) -> Org {
    let (id, key) = server.org(name).await;
    domains::set_realm(server.pool(), &id, realm).await.unwrap();
    let mut admin_id = String::new();
    for (ext, who, role) in [
        ("1001", "Alice Agent", users::Role::Agent),
        ("2001", "Sue Supervisor", users::Role::Supervisor),
        ("3001", "Adam Admin", users::Role::Admin),
    ] {
        let u = users::create_user(
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
        if ext == "3001" {
            admin_id = u.id;
        }
    }
    Org {
        id,
        key,
        realm: realm.to_string(),
        admin_id,
    }
}

async fn login(server: &TestServer, realm: &str, extension: &str, password: &str) -> (u16, String) {
    let r = server
        .http
        .post(server.url("/api/v1/agent/login"))
        .json(&json!({"domain": realm, "extension": extension, "password": password}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let cookie = r
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_string();
    (status, cookie)
}

async fn sign_in(server: &TestServer, realm: &str, extension: &str) -> String {
    let (status, cookie) = login(server, realm, extension, PASSWORD).await;
    assert_eq!(status, 200);
    cookie
}

/// Uploads the generated two-voice call with its transcript and waits until processed.
async fn processed_call(server: &TestServer, key: &str) -> String {
    processed_upload(server, key, &[], CALL_VTT).await
}

/// Makes a call look `days` old: the clock cannot be waited out.
async fn age(server: &TestServer, call_id: &str, days: i64) {
    let n = sqlx::query("UPDATE calls SET created_at = created_at - $1 WHERE id = $2")
        .bind(days * DAY_MS)
        .bind(call_id)
        .execute(server.pool())
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(n, 1);
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn recording_path(server: &TestServer, call_id: &str) -> std::path::PathBuf {
    let p: String = sqlx::query_scalar("SELECT path FROM recordings WHERE call_id = $1")
        .bind(call_id)
        .fetch_one(server.pool())
        .await
        .unwrap();
    std::path::PathBuf::from(p)
}

async fn count(server: &TestServer, sql: &str, call_id: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(call_id)
        .fetch_one(server.pool())
        .await
        .unwrap()
}

async fn status_of(server: &TestServer, key: &str, path: &str) -> (u16, Value) {
    call(server, &Cred::Key(key), Method::GET, path, None).await
}

/// Every entry of an audit-log query, following the cursor (bounded).
async fn audit_all(server: &TestServer, cred: &Cred<'_>, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let sep = if query.is_empty() { "" } else { "&" };
        let path = match &cursor {
            None => format!("/api/v1/audit-log?limit=200{sep}{query}"),
            Some(c) => format!("/api/v1/audit-log?limit=200&cursor={c}{sep}{query}"),
        };
        let (st, page) = call(server, cred, Method::GET, &path, None).await;
        assert_eq!(st, 200, "{page}");
        out.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
    panic!("audit log did not end");
}

fn actions(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn purge_applies_each_period_separately_and_spares_held_calls_and_other_orgs() {
    let server = TestServer::start(|c| c.retention.purge_interval_s = 0).await;
    let a = org_with_users(&server, "Acme", "acme.example").await;
    let b = org_with_users(&server, "Beta", "beta.example").await;
    let key = a.key.as_str();

    // The default policy: recordings 90 days, transcripts and insights kept.
    let (st, p) = status_of(&server, key, "/api/v1/settings/retention").await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(
        (
            &p["recordings_days"],
            &p["transcripts_days"],
            &p["insights_days"]
        ),
        (&json!(90), &Value::Null, &Value::Null)
    );

    let old = processed_call(&server, key).await;
    let mid = processed_call(&server, key).await;
    let held = processed_call(&server, key).await;
    let new = processed_call(&server, key).await;
    let other = processed_call(&server, &b.key).await;
    let busy = processed_call(&server, key).await;
    for (id, days) in [
        (&old, 100),
        (&mid, 45),
        (&held, 100),
        (&other, 100),
        (&busy, 100),
    ] {
        age(&server, id, days).await;
    }
    let mut files = Vec::new();
    for id in [&old, &mid, &held, &new, &other, &busy] {
        files.push(recording_path(&server, id).await);
    }
    // A call with work queued for it (a re-analysis due tomorrow) is still in the pipeline.
    sqlx::query(
        "INSERT INTO jobs (id, org_id, kind, payload, status, run_after, created_at, updated_at)
         VALUES ('job-busy', $1, 'analyze_call', $2, 'queued', $3, $3, $3)",
    )
    .bind(&a.id)
    .bind(json!({ "call_id": busy }).to_string())
    .bind(chrono_now_ms() + DAY_MS)
    .execute(server.pool())
    .await
    .unwrap();
    assert!(files.iter().all(|f| f.exists()));
    let (st, analysis) = status_of(&server, key, &format!("/api/v1/calls/{old}/analysis")).await;
    assert_eq!(
        st, 200,
        "the call was analysed before the purge: {analysis}"
    );

    // Recordings 30 days, transcripts 60, insights forever.
    let (st, p) = call(
        &server,
        &Cred::Key(key),
        Method::PUT,
        "/api/v1/settings/retention",
        Some(json!({"recordings_days": 30, "transcripts_days": 60, "insights_days": null})),
    )
    .await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["transcripts_days"], 60);
    let (st, h) = call(
        &server,
        &Cred::Key(key),
        Method::PUT,
        &format!("/api/v1/calls/{held}/legal-hold"),
        Some(json!({"held": true, "reason": "case 2026-17"})),
    )
    .await;
    assert_eq!(st, 200, "{h}");
    assert_eq!(h["legal_hold"]["held"], true);

    // A file already gone (removed by hand, or by a run that crashed after its commit) is
    // counted, not an error.
    std::fs::remove_file(&files[1]).unwrap();
    let (st, run) = call(
        &server,
        &Cred::Key(key),
        Method::POST,
        "/api/v1/settings/retention/run",
        None,
    )
    .await;
    assert_eq!(st, 200, "{run}");
    let purged = &run["purged"];
    assert_eq!(purged["recordings"], 2, "old and mid: {run}");
    assert_eq!(purged["transcript_calls"], 1, "old only: {run}");
    assert!(
        purged["transcript_segments"].as_u64().unwrap() >= 2,
        "{run}"
    );
    assert_eq!(purged["insights_calls"], 0, "insights are kept: {run}");
    // Old's recording and its uploaded transcript file; mid's recording was already gone.
    assert_eq!(purged["files"]["removed"], 2, "{run}");
    assert_eq!(purged["files"]["already_missing"], 1, "{run}");
    assert_eq!(purged["files"]["failed"], 0, "{run}");

    // Files: gone for old and mid, kept for the held, the new and the other org's call.
    assert!(!files[0].exists() && !files[1].exists());
    assert!(files[2].exists() && files[3].exists() && files[4].exists());
    assert!(files[5].exists(), "a call with queued work is left alone");

    // Rows and the API's answers.
    let (st, e) = status_of(&server, key, &format!("/api/v1/calls/{old}/recording")).await;
    assert_eq!(
        (st, e["code"].as_str()),
        (410, Some("recording_purged")),
        "{e}"
    );
    assert!(e["details"]["purged_at"].is_string());
    let (st, e) = status_of(
        &server,
        key,
        &format!("/api/v1/calls/{old}/transcript.json"),
    )
    .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (410, Some("transcript_purged")),
        "{e}"
    );
    let (st, _) = status_of(&server, key, &format!("/api/v1/calls/{old}/analysis")).await;
    assert_eq!(st, 200, "insights kept forever");
    let (st, e) = call(
        &server,
        &Cred::Key(key),
        Method::POST,
        &format!("/api/v1/calls/{old}/reanalyze"),
        None,
    )
    .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (410, Some("transcript_purged")),
        "{e}"
    );
    let (st, detail) = status_of(&server, key, &format!("/api/v1/calls/{old}")).await;
    assert_eq!(st, 200, "the call row stays");
    assert!(detail["recording"].is_null());
    assert_eq!(detail["segments"], json!([]));
    assert!(detail["retention"]["recording_purged_at"].is_string());
    assert!(detail["retention"]["transcript_purged_at"].is_string());
    assert!(detail["retention"]["insights_purged_at"].is_null());
    assert_eq!(
        count(
            &server,
            "SELECT COUNT(*) FROM recordings WHERE call_id = $1",
            &old
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &server,
            "SELECT COUNT(*) FROM transcript_segments WHERE call_id = $1",
            &old
        )
        .await,
        0
    );

    // Mid (45 days): recording past 30, transcript within 60.
    let (st, _) = status_of(&server, key, &format!("/api/v1/calls/{mid}/recording")).await;
    assert_eq!(st, 410);
    let (st, t) = status_of(
        &server,
        key,
        &format!("/api/v1/calls/{mid}/transcript.json"),
    )
    .await;
    assert_eq!(st, 200);
    assert!(!t["segments"].as_array().unwrap().is_empty(), "{t}");

    // Held and new: untouched.
    for id in [&held, &new] {
        let r = server
            .get(key, &format!("/api/v1/calls/{id}/recording"))
            .await;
        assert_eq!(r.status(), 200);
        assert!(!r.bytes().await.unwrap().is_empty());
        assert!(
            count(
                &server,
                "SELECT COUNT(*) FROM transcript_segments WHERE call_id = $1",
                id
            )
            .await
                > 0
        );
    }
    let (_, hd) = status_of(&server, key, &format!("/api/v1/calls/{held}")).await;
    assert_eq!(hd["legal_hold"]["held"], true);
    assert_eq!(hd["legal_hold"]["reason"], "case 2026-17");
    assert!(hd["retention"]["recording_purge_after"].is_null());

    // The other organization: its 100-day-old call is past its own default too, but a run
    // for Acme does not touch it.
    let r = server
        .get(&b.key, &format!("/api/v1/calls/{other}/recording"))
        .await;
    assert_eq!(r.status(), 200);

    // Insights now 10 days: old and mid lose theirs; held and new keep them.
    let (st, _) = call(
        &server,
        &Cred::Key(key),
        Method::PUT,
        "/api/v1/settings/retention",
        Some(json!({"insights_days": 10})),
    )
    .await;
    assert_eq!(st, 200);
    let (_, p) = status_of(&server, key, "/api/v1/settings/retention").await;
    assert_eq!(
        (
            &p["recordings_days"],
            &p["transcripts_days"],
            &p["insights_days"]
        ),
        (&json!(30), &json!(60), &json!(10)),
        "absent fields keep their values"
    );
    let (st, run2) = call(
        &server,
        &Cred::Key(key),
        Method::POST,
        "/api/v1/settings/retention/run",
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(run2["purged"]["recordings"], 0, "nothing twice: {run2}");
    assert_eq!(run2["purged"]["insights_calls"], 2, "{run2}");
    let (st, e) = status_of(&server, key, &format!("/api/v1/calls/{old}/analysis")).await;
    assert_eq!(
        (st, e["code"].as_str()),
        (410, Some("insights_purged")),
        "{e}"
    );
    for id in [&held, &new] {
        let (st, _) = status_of(&server, key, &format!("/api/v1/calls/{id}/analysis")).await;
        assert_eq!(st, 200);
    }

    // Releasing the hold makes the call purgeable like any other.
    let (st, _) = call(
        &server,
        &Cred::Key(key),
        Method::PUT,
        &format!("/api/v1/calls/{held}/legal-hold"),
        Some(json!({"held": false})),
    )
    .await;
    assert_eq!(st, 200);
    let (_, run3) = call(
        &server,
        &Cred::Key(key),
        Method::POST,
        "/api/v1/settings/retention/run",
        None,
    )
    .await;
    assert_eq!(run3["purged"]["recordings"], 1, "{run3}");
    assert!(!files[2].exists());

    // Each run is in Acme's audit log with its counts; none in Beta's.
    let entries = audit_all(&server, &Cred::Key(key), "action=retention.purge").await;
    assert_eq!(entries.len(), 3, "{entries:?}");
    let first = entries.last().unwrap();
    assert_eq!(first["details"]["purged"]["recordings"], 2);
    assert_eq!(first["details"]["trigger"], "manual");
    assert_eq!(first["actor"]["type"], "api_key");
    let beta = audit_all(&server, &Cred::Key(&b.key), "action=retention.purge").await;
    assert!(beta.is_empty(), "{beta:?}");
    assert_ne!(a.id, b.id);
}

#[tokio::test]
async fn the_scheduled_purge_runs_by_itself_as_the_system() {
    let server = TestServer::start(|c| c.retention.purge_interval_s = 1).await;
    let (_, key) = server.org("Gamma").await;
    let id = processed_call(&server, &key).await;
    let file = recording_path(&server, &id).await;
    age(&server, &id, 91).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (st, e) = status_of(&server, &key, &format!("/api/v1/calls/{id}/recording")).await;
        if st == 410 {
            assert_eq!(e["code"], "recording_purged");
            break;
        }
        assert_eq!(st, 200, "{e}");
        assert!(Instant::now() < deadline, "the scheduled purge never ran");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The run's audit entry sums up the whole run (files removed included), so it is written
    // after the recording already answers 410: wait for it, within bounds.
    let deadline = Instant::now() + Duration::from_secs(10);
    let entries = loop {
        let entries = audit_all(&server, &Cred::Key(&key), "action=retention.purge").await;
        if !entries.is_empty() || Instant::now() > deadline {
            break entries;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!file.exists());
    assert!(!entries.is_empty(), "the scheduled run was never audited");
    assert_eq!(entries[0]["actor"]["type"], "system");
    assert_eq!(entries[0]["details"]["trigger"], "scheduled");
    assert_eq!(entries[0]["details"]["purged"]["recordings"], 1);
}

#[tokio::test]
async fn audit_log_records_sign_ins_settings_downloads_and_keys_per_organization() {
    let server = TestServer::start(|c| c.retention.purge_interval_s = 0).await;
    let a = org_with_users(&server, "Acme", "acme.example").await;
    let b = org_with_users(&server, "Beta", "beta.example").await;
    let id = processed_call(&server, &a.key).await;
    let b_call = processed_call(&server, &b.key).await;

    // Sign-ins: a wrong password, an unknown extension, then success.
    let (st, _) = login(&server, &a.realm, "3001", "not the password at all").await;
    assert_eq!(st, 401);
    let (st, _) = login(&server, &a.realm, "9999", PASSWORD).await;
    assert_eq!(st, 401);
    let admin_cookie = sign_in(&server, &a.realm, "3001").await;
    let admin = Cred::Cookie(&admin_cookie);

    // A download, a play (Range), a transcript download.
    let r = server
        .get(&a.key, &format!("/api/v1/calls/{id}/recording"))
        .await;
    assert_eq!(r.status(), 200);
    let r = server
        .http
        .get(server.url(&format!("/api/v1/calls/{id}/recording")))
        .header(header::COOKIE, &admin_cookie)
        .header(header::RANGE, "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    let r = server
        .get(&a.key, &format!("/api/v1/calls/{id}/transcript.vtt"))
        .await;
    assert_eq!(r.status(), 200);

    // Setting changes and a key created then revoked.
    let (st, _) = call(
        &server,
        &admin,
        Method::PUT,
        "/api/v1/settings/retention",
        Some(json!({"recordings_days": 365})),
    )
    .await;
    assert_eq!(st, 200);
    let (st, _) = call(
        &server,
        &admin,
        Method::PUT,
        "/api/v1/settings/recording",
        Some(json!({"record_calls": false})),
    )
    .await;
    assert_eq!(st, 200);
    let (st, k) = call(
        &server,
        &admin,
        Method::POST,
        "/api/v1/api-keys",
        Some(json!({"name": "crm sync", "permissions": ["calls.read_all"]})),
    )
    .await;
    assert_eq!(st, 201, "{k}");
    let new_key = k["key"].as_str().unwrap().to_string();
    let key_id = k["id"].as_str().unwrap().to_string();
    let (st, _) = call(
        &server,
        &admin,
        Method::DELETE,
        &format!("/api/v1/api-keys/{key_id}"),
        None,
    )
    .await;
    assert_eq!(st, 204);

    // A tracker and a user, each created then deleted.
    let (st, t) = call(
        &server,
        &admin,
        Method::POST,
        "/api/v1/trackers",
        Some(
            json!({"kind": "smart", "name": "Churn risk", "category": "objection",
                    "active": true, "examples": ["I want to cancel my subscription"]}),
        ),
    )
    .await;
    assert_eq!(st, 201, "{t}");
    let tracker = t["id"].as_str().unwrap().to_string();
    let (st, _) = call(
        &server,
        &admin,
        Method::DELETE,
        &format!("/api/v1/trackers/{tracker}"),
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (st, u) = call(
        &server,
        &admin,
        Method::POST,
        "/api/v1/users",
        Some(json!({"name": "Temp", "extension": "4001", "password": "a long enough password", "role": "agent"})),
    )
    .await;
    assert_eq!(st, 201, "{u}");
    let user = u["id"].as_str().unwrap().to_string();
    let (st, _) = call(
        &server,
        &admin,
        Method::DELETE,
        &format!("/api/v1/users/{user}"),
        None,
    )
    .await;
    assert_eq!(st, 204);

    let all = audit_all(&server, &admin, "").await;
    let acts = actions(&all);
    for wanted in [
        "auth.login.failed",
        "auth.login.succeeded",
        "recording.downloaded",
        "recording.played",
        "transcript.downloaded",
        "settings.retention.updated",
        "settings.recording.updated",
        "api_key.created",
        "api_key.revoked",
        "analysis_config.created",
        "analysis_config.deleted",
        "user.created",
        "user.deleted",
    ] {
        assert!(
            acts.iter().any(|a| a == wanted),
            "{wanted} missing from {acts:?}"
        );
    }
    // Newest first.
    let times: Vec<&str> = all
        .iter()
        .map(|e| e["created_at"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    // No secret reaches the log: neither passwords nor the key shown once.
    let text = serde_json::to_string(&all).unwrap();
    assert!(!text.contains("not the password at all") && !text.contains(PASSWORD));
    assert!(!text.contains(&new_key));
    assert!(!text.contains("a long enough password"));
    let created = all.iter().find(|e| e["action"] == "user.created").unwrap();
    assert_eq!(created["target"], json!({"type": "user", "id": user}));
    assert_eq!(created["details"]["role"], "agent");
    let tracker_entry = all
        .iter()
        .find(|e| e["action"] == "analysis_config.created")
        .unwrap();
    assert_eq!(
        tracker_entry["target"],
        json!({"type": "tracker", "id": tracker})
    );

    let failed: Vec<&Value> = all
        .iter()
        .filter(|e| e["action"] == "auth.login.failed")
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed.iter().all(|e| e["actor"]["type"] == "anonymous"));
    let reasons: Vec<&str> = failed
        .iter()
        .map(|e| e["details"]["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.contains(&"wrong_password") && reasons.contains(&"unknown_extension"));
    let wrong = failed
        .iter()
        .find(|e| e["details"]["reason"] == "wrong_password")
        .unwrap();
    assert_eq!(wrong["target"]["id"], a.admin_id.as_str());
    assert_eq!(wrong["ip"], "127.0.0.1");

    let download = all
        .iter()
        .find(|e| e["action"] == "recording.downloaded")
        .unwrap();
    assert_eq!(download["target"], json!({"type": "call", "id": id}));
    assert_eq!(download["actor"]["type"], "api_key");
    let settings = all
        .iter()
        .find(|e| e["action"] == "settings.retention.updated")
        .unwrap();
    assert_eq!(settings["actor"], json!({"type": "user", "id": a.admin_id}));
    assert_eq!(settings["details"]["before"]["recordings_days"], 90);
    assert_eq!(settings["details"]["after"]["recordings_days"], 365);

    // Filters.
    let only = audit_all(&server, &admin, "action=recording.played").await;
    assert_eq!(actions(&only), vec!["recording.played"]);
    let by_admin = audit_all(&server, &admin, &format!("actor_id={}", a.admin_id)).await;
    assert!(by_admin.len() >= 5, "{by_admin:?}");
    assert!(
        by_admin
            .iter()
            .all(|e| e["actor"]["id"] == a.admin_id.as_str())
    );

    // Pagination: small pages give the same entries, in the same order, once each.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let path = match &cursor {
            None => "/api/v1/audit-log?limit=2".to_string(),
            Some(c) => format!("/api/v1/audit-log?limit=2&cursor={c}"),
        };
        let (st, page) = call(&server, &admin, Method::GET, &path, None).await;
        assert_eq!(st, 200);
        assert!(page["data"].as_array().unwrap().len() <= 2);
        paged.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].clone()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let ids: Vec<Value> = all.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(paged, ids);
    let (st, e) = call(
        &server,
        &admin,
        Method::GET,
        "/api/v1/audit-log?cursor=zzz",
        None,
    )
    .await;
    assert_eq!((st, e["code"].as_str()), (400, Some("invalid_cursor")));

    // Isolation: Beta sees none of Acme's entries, and Acme's calls are not Beta's to hold.
    let beta = audit_all(&server, &Cred::Key(&b.key), "").await;
    assert!(beta.iter().all(|e| !ids.contains(&e["id"])));
    assert!(!serde_json::to_string(&beta).unwrap().contains(&id));
    let (st, _) = call(
        &server,
        &Cred::Key(&b.key),
        Method::PUT,
        &format!("/api/v1/calls/{id}/legal-hold"),
        Some(json!({"held": true, "reason": "not mine"})),
    )
    .await;
    assert_eq!(st, 404);
    let (st, _) = call(
        &server,
        &admin,
        Method::PUT,
        &format!("/api/v1/calls/{b_call}/legal-hold"),
        Some(json!({"held": true, "reason": "not mine either"})),
    )
    .await;
    assert_eq!(st, 404);
    let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM call_retention WHERE legal_hold = 1")
        .fetch_one(server.pool())
        .await
        .unwrap();
    assert_eq!(held, 0, "nothing changed");
}

#[tokio::test]
async fn roles_without_the_right_are_refused_and_bad_input_changes_nothing() {
    let server = TestServer::start(|c| c.retention.purge_interval_s = 0).await;
    let a = org_with_users(&server, "Acme", "acme.example").await;
    let id = processed_call(&server, &a.key).await;
    let agent = sign_in(&server, &a.realm, "1001").await;
    let supervisor = sign_in(&server, &a.realm, "2001").await;
    let agent = Cred::Cookie(&agent);
    let supervisor = Cred::Cookie(&supervisor);
    let hold_path = format!("/api/v1/calls/{id}/legal-hold");
    let hold = json!({"held": true, "reason": "dispute"});

    let refusals = [
        (&agent, Method::GET, "/api/v1/audit-log", None, "audit.read"),
        (
            &agent,
            Method::GET,
            "/api/v1/settings/retention",
            None,
            "retention.manage",
        ),
        (
            &agent,
            Method::POST,
            "/api/v1/settings/retention/run",
            None,
            "retention.manage",
        ),
        (
            &agent,
            Method::PUT,
            hold_path.as_str(),
            Some(hold.clone()),
            "legal_hold.manage",
        ),
        (
            &supervisor,
            Method::GET,
            "/api/v1/audit-log",
            None,
            "audit.read",
        ),
        (
            &supervisor,
            Method::PUT,
            "/api/v1/settings/retention",
            Some(json!({"recordings_days": 1})),
            "retention.manage",
        ),
    ];
    for (cred, method, path, body, permission) in refusals {
        let (st, e) = call(&server, cred, method.clone(), path, body).await;
        assert_eq!(st, 403, "{method} {path}: {e}");
        assert_eq!(e["details"]["permission"], permission, "{e}");
    }
    // A key scoped to reading calls cannot read the audit log either.
    let (st, k) = call(
        &server,
        &Cred::Key(&a.key),
        Method::POST,
        "/api/v1/api-keys",
        Some(json!({"name": "reader", "permissions": ["calls.read_all"]})),
    )
    .await;
    assert_eq!(st, 201);
    let reader = k["key"].as_str().unwrap().to_string();
    let (st, e) = call(
        &server,
        &Cred::Key(&reader),
        Method::GET,
        "/api/v1/audit-log",
        None,
    )
    .await;
    assert_eq!(
        (st, e["details"]["permission"].as_str()),
        (403, Some("audit.read"))
    );

    // Supervisors may hold calls.
    let (st, h) = call(&server, &supervisor, Method::PUT, &hold_path, Some(hold)).await;
    assert_eq!(st, 200, "{h}");
    assert_eq!(h["legal_hold"]["changed_by"]["type"], "user");

    // Bad input: refused, policy unchanged.
    for bad in [
        json!({"recordings_days": 0}),
        json!({"transcripts_days": 7301}),
        json!({"insights_days": -5}),
        json!({"recordings_days": "ninety"}),
        json!({"recording_days": 30}),
    ] {
        let (st, e) = call(
            &server,
            &Cred::Key(&a.key),
            Method::PUT,
            "/api/v1/settings/retention",
            Some(bad.clone()),
        )
        .await;
        assert!((400..500).contains(&st), "{bad}: {st} {e}");
        assert!(e["code"].is_string(), "{e}");
    }
    let (_, p) = status_of(&server, &a.key, "/api/v1/settings/retention").await;
    assert_eq!(p["recordings_days"], 90);
    assert!(p["updated_at"].is_null(), "never changed: {p}");
    let (st, e) = call(
        &server,
        &Cred::Key(&a.key),
        Method::PUT,
        &hold_path,
        Some(json!({"held": true, "reason": "   "})),
    )
    .await;
    assert_eq!((st, e["code"].as_str()), (422, Some("validation_error")));
    // A held call's contact cannot be erased until the hold is released.
    let wav = std::fs::read(stereo_call(server.dir.path())).unwrap();
    let (st, created) = server
        .upload(
            &a.key,
            "call.wav",
            wav,
            &[("customer_phone", "+14155550123")],
            None,
        )
        .await;
    assert_eq!(st, 202, "{created}");
    let with_contact = created["id"].as_str().unwrap().to_string();
    let detail = server.wait_done(&a.key, &with_contact).await;
    let contact = detail["contact_id"].as_str().unwrap().to_string();
    let (st, _) = call(
        &server,
        &Cred::Key(&a.key),
        Method::PUT,
        &format!("/api/v1/calls/{with_contact}/legal-hold"),
        Some(json!({"held": true, "reason": "litigation"})),
    )
    .await;
    assert_eq!(st, 200);
    let (st, e) = call(
        &server,
        &Cred::Key(&a.key),
        Method::DELETE,
        &format!("/api/v1/contacts/{contact}"),
        None,
    )
    .await;
    assert_eq!(st, 409, "{e}");
    assert_eq!(e["details"]["reason"], "legal_hold");
    assert_eq!(e["details"]["held_calls"], json!([with_contact]));
    let r = server
        .get(&a.key, &format!("/api/v1/calls/{with_contact}/recording"))
        .await;
    assert_eq!(r.status(), 200, "nothing was deleted");
    let (st, _) = call(
        &server,
        &Cred::Key(&a.key),
        Method::PUT,
        &format!("/api/v1/calls/{with_contact}/legal-hold"),
        Some(json!({"held": false})),
    )
    .await;
    assert_eq!(st, 200);
    let (st, e) = call(
        &server,
        &Cred::Key(&a.key),
        Method::DELETE,
        &format!("/api/v1/contacts/{contact}"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{e}");
    let erased = audit_all(&server, &Cred::Key(&a.key), "action=contact.deleted").await;
    assert_eq!(erased.len(), 1);
    assert_eq!(
        erased[0]["target"],
        json!({"type": "contact", "id": contact})
    );
    assert_eq!(erased[0]["details"]["deleted"]["calls"], 1);
    let holds = audit_all(&server, &Cred::Key(&a.key), "target_type=call").await;
    assert_eq!(
        actions(&holds),
        vec![
            "call.legal_hold.released",
            "recording.downloaded",
            "call.legal_hold.set",
            "call.legal_hold.set"
        ],
        "{holds:?}"
    );

    let (st, _) = call(
        &server,
        &Cred::Key(&a.key),
        Method::PUT,
        "/api/v1/calls/no-such-call/legal-hold",
        Some(json!({"held": false})),
    )
    .await;
    assert_eq!(st, 404);
    let (st, e) = call(
        &server,
        &Cred::Key(&a.key),
        Method::GET,
        "/api/v1/audit-log?from=yesterday",
        None,
    )
    .await;
    assert_eq!(st, 400, "{e}");
}
