//! Analytics against the real server: calls seeded through the real upload API (espeak-ng
//! audio with a transcript, analysed by the real pipeline) and through the store (for volume
//! with known durations); exact counts and sums, the viewer's time zone, cross-organization
//! isolation, the own-calls rule, the CSV export parsed back, and the minute quota (warnings
//! once per threshold, delivered to a local webhook receiver; refusal with nothing stored).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callscope_api::permissions::{Permission, Permissions};
use callscope_api::sip::{domains, users};
use callscope_api::store::calls::{self, CallStatus, NewCall};
use common::{CALL_VTT, TestServer, processed_upload, sign_in, stereo_call};
use reqwest::header;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";
const WINDOW: &str = "from=2026-11-01&to=2026-11-30";

/// A transcript with the recording disclosure and an unhappy customer who names the bill.
const DISCLOSED_VTT: &str = "WEBVTT\n\n00:00.500 --> 00:03.000\n<v Agent>Hello, this call is being recorded. How can I help?\n\n00:04.000 --> 00:07.500\n<v Customer>My bill is wrong again, this is terrible and I am very angry.\n";

fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

async fn add_users(server: &TestServer, org: &str, realm: &str) {
    domains::set_realm(server.pool(), org, realm).await.unwrap();
    for (ext, who, role) in [
        ("1001", "Alice Agent", users::Role::Agent),
        ("1002", "Bob Agent", users::Role::Agent),
        ("2001", "Sue Supervisor", users::Role::Supervisor),
    ] {
        users::create_user(
            server.pool(),
            org,
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
}

async fn get_cookie(server: &TestServer, cookie: &str, path: &str) -> (u16, String) {
    let r = server
        .http
        .get(server.url(path))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Uploads the generated 8 s stereo call with a transcript and waits for its analysis.
async fn upload_call(
    server: &TestServer,
    key: &str,
    fields: &[(&str, &str)],
    transcript: &str,
) -> String {
    processed_upload(server, key, fields, transcript).await
}

/// A call as a PBX webhook would leave it (claimed duration, no recording), straight into
/// the store.
async fn store_call(
    server: &TestServer,
    org: &str,
    external_id: &str,
    started: &str,
    duration_ms: i64,
    direction: &str,
    agent: Option<&str>,
) -> String {
    let mut conn = server.pool().acquire().await.unwrap();
    let (call, created) = calls::insert_or_existing(
        &mut conn,
        org,
        &NewCall {
            external_id: Some(external_id.to_string()),
            source: "webhook",
            direction: Some(direction.to_string()),
            agent_identifier: agent.map(str::to_string),
            started_at: Some(ms(started)),
            duration_ms: Some(duration_ms),
            channel_layout: "mono".into(),
            metadata: "{}".into(),
            ..NewCall::default()
        },
        CallStatus::Received,
        None,
    )
    .await
    .unwrap();
    assert!(created);
    call.id
}

fn by_key(list: &Value, key: &str) -> BTreeMap<String, Value> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| (v[key].as_str().unwrap_or("null").to_string(), v.clone()))
        .collect()
}

/// RFC 4180: records end in CRLF, quoted fields may hold commas, quotes ("") and line breaks.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                assert!(
                    field.is_empty(),
                    "a quote inside an unquoted field: {field}"
                );
                quoted = true;
            }
            ',' => record.push(std::mem::take(&mut field)),
            '\r' => {
                assert_eq!(chars.next(), Some('\n'), "CR without LF");
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            '\n' => panic!("bare LF outside a quoted field"),
            _ => field.push(c),
        }
    }
    assert!(!quoted, "unterminated quoted field");
    assert!(
        field.is_empty() && record.is_empty(),
        "last record lacks CRLF"
    );
    records
}

/// The facts the reports must agree with, read from each call's stored analysis.
struct Expected {
    flags: i64,
    flagged_calls: i64,
    categories: BTreeMap<String, i64>,
    tracker_hits: BTreeMap<String, i64>,
    labels: BTreeMap<String, i64>,
}

async fn expected_from_analyses(server: &TestServer, key: &str, ids: &[&str]) -> Expected {
    let mut e = Expected {
        flags: 0,
        flagged_calls: 0,
        categories: BTreeMap::new(),
        tracker_hits: BTreeMap::new(),
        labels: BTreeMap::new(),
    };
    for id in ids {
        let (st, a) = server
            .get_json(key, &format!("/api/v1/calls/{id}/analysis"))
            .await;
        assert_eq!(st, 200, "{a}");
        let flags = a["compliance"].as_array().unwrap();
        e.flags += flags.len() as i64;
        if !flags.is_empty() {
            e.flagged_calls += 1;
        }
        for f in flags {
            *e.categories
                .entry(f["category"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        for h in a["tracker_hits"].as_array().unwrap() {
            *e.tracker_hits
                .entry(h["tracker_id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        let label = a["sentiment"]["overall"]["label"]
            .as_str()
            .unwrap_or("none")
            .to_string();
        *e.labels.entry(label).or_default() += 1;
    }
    e
}

#[tokio::test]
async fn reports_are_exact_scoped_and_exported() {
    let server = TestServer::start(|_| {}).await;
    let (acme, key) = server.org("acme").await;
    add_users(&server, &acme, "acme.example").await;
    let (globex, globex_key) = server.org("globex").await;

    let (st, tracker) = server
        .http
        .post(server.url("/api/v1/trackers"))
        .header("x-api-key", &key)
        .json(&json!({"kind": "keyword", "name": "Billing", "category": "pricing", "phrases": ["bill"]}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(st, 201);
    let tracker: Value = tracker.json().await.unwrap();
    let tracker_id = tracker["id"].as_str().unwrap().to_string();
    // A scorecard answered by the tracker: every call naming the bill is suggested 100 %.
    let r = server
        .http
        .post(server.url("/api/v1/scorecard-templates"))
        .header("x-api-key", &key)
        .json(&json!({
            "name": "Billing QA",
            "criteria": [{"id": "price", "title": "Price discussed", "weight": 1.0, "max_score": 1.0,
                "answer_type": {"type": "yes_no"},
                "binding": {"kind": "tracker_hit", "tracker_id": tracker_id, "present": true}}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let template: Value = r.json().await.unwrap();
    let template_id = template["id"].as_str().unwrap().to_string();

    // Acme: three uploaded calls (8 s recordings), two PBX calls in the window, one outside,
    // and one refused upload.
    let u1 = upload_call(
        &server,
        &key,
        &[
            ("agent_identifier", "1001"),
            ("direction", "inbound"),
            ("call_timestamp", "2026-11-10T09:15:00Z"),
            ("customer_phone", "+14155550100"),
            ("external_call_id", "pbx-u1"),
        ],
        CALL_VTT,
    )
    .await;
    let u2 = upload_call(
        &server,
        &key,
        &[
            ("agent_identifier", "1001"),
            ("direction", "inbound"),
            ("call_timestamp", "2026-11-10T14:30:00Z"),
        ],
        DISCLOSED_VTT,
    )
    .await;
    let u3 = upload_call(
        &server,
        &key,
        &[
            ("agent_identifier", "1002"),
            ("direction", "outbound"),
            ("call_timestamp", "2026-11-11T09:45:00Z"),
        ],
        CALL_VTT,
    )
    .await;
    for id in [&u1, &u2, &u3] {
        let (_, call) = server.get_json(&key, &format!("/api/v1/calls/{id}")).await;
        assert_eq!(call["recording"]["duration_seconds"], json!(8.0), "{call}");
    }
    // A reviewer scores U1 0 %: her reviewed card wins over the suggestion.
    let r = server
        .http
        .put(server.url(&format!("/api/v1/calls/{u1}/scorecards/{template_id}")))
        .header("x-api-key", &key)
        .json(&json!({"reviewer": "qa", "answers": [{"criterion_id": "price", "answer": {"type": "no"}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let card: Value = r.json().await.unwrap();
    assert_eq!(card["totals"]["percent"], json!(0.0), "{card}");
    let s1 = store_call(
        &server,
        &acme,
        "pbx-s1",
        "2026-11-11T23:30:00Z",
        60_000,
        "outbound",
        Some("1002"),
    )
    .await;
    let s2 = store_call(
        &server,
        &acme,
        "=1+2,\"quoted\"",
        "2026-11-12T00:10:00Z",
        300_000,
        "inbound",
        None,
    )
    .await;
    store_call(
        &server,
        &acme,
        "pbx-october",
        "2026-10-15T12:00:00Z",
        120_000,
        "inbound",
        Some("1001"),
    )
    .await;
    let (st, refused) = server
        .upload(
            &key,
            "noise.wav",
            b"definitely not audio".repeat(100),
            &[("call_timestamp", "2026-11-10T10:00:00Z")],
            None,
        )
        .await;
    assert!(st == 415 || st == 422, "{st} {refused}");

    // Globex: calls in the same window that acme must never count.
    let g1 = upload_call(
        &server,
        &globex_key,
        &[("call_timestamp", "2026-11-10T09:20:00Z")],
        CALL_VTT,
    )
    .await;
    store_call(
        &server,
        &globex,
        "g-pbx",
        "2026-11-10T09:30:00Z",
        999_000,
        "inbound",
        Some("1001"),
    )
    .await;

    // --- Volume and durations (organization-wide, UTC).
    let (st, r) = server
        .get_json(&key, &format!("/api/v1/analytics/calls?{WINDOW}"))
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["scope"], "organization");
    assert_eq!(r["window"]["from"], "2026-11-01T00:00:00.000Z");
    assert_eq!(r["window"]["to"], "2026-12-01T00:00:00.000Z");
    let t = &r["totals"];
    assert_eq!(t["calls"], 5, "{r}");
    assert_eq!(t["duration_seconds"], json!(384.0));
    assert_eq!(t["mean_duration_seconds"], json!(76.8));
    assert_eq!(t["median_duration_seconds"], json!(8.0));
    assert_eq!(t["p90_duration_seconds"], json!(300.0));
    assert_eq!(t["shortest_seconds"], json!(8.0));
    assert_eq!(t["longest_seconds"], json!(300.0));
    assert_eq!(
        r["by_day"],
        json!([
            {"date": "2026-11-10", "calls": 2, "duration_seconds": 16.0},
            {"date": "2026-11-11", "calls": 2, "duration_seconds": 68.0},
            {"date": "2026-11-12", "calls": 1, "duration_seconds": 300.0},
        ])
    );
    let hours: Vec<i64> = r["by_hour"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["calls"].as_i64().unwrap())
        .collect();
    let mut want = vec![0i64; 24];
    want[9] = 2;
    want[14] = 1;
    want[23] = 1;
    want[0] = 1;
    assert_eq!(hours, want);
    let dir = by_key(&r["by_direction"], "key");
    assert_eq!(dir["inbound"]["calls"], 3);
    assert_eq!(dir["inbound"]["duration_seconds"], json!(316.0));
    assert_eq!(dir["outbound"]["calls"], 2);
    assert_eq!(dir["outbound"]["duration_seconds"], json!(68.0));
    let src = by_key(&r["by_source"], "key");
    assert_eq!(src["upload"]["calls"], 3);
    assert_eq!(src["webhook"]["calls"], 2);
    assert_eq!(src.len(), 2);

    let expected = expected_from_analyses(&server, &key, &[&u1, &u2, &u3]).await;
    assert_eq!(r["sentiment"]["analysed_calls"], 3);
    for (label, n) in &expected.labels {
        assert_eq!(r["sentiment"]["labels"][label], json!(n), "{label}: {r}");
    }
    let labelled: i64 = expected.labels.values().sum();
    assert_eq!(labelled, 3);

    // The viewer's time zone moves calls across midnight (UTC+1: S1 at 23:30Z is 00:30).
    let (_, r) = server
        .get_json(
            &key,
            "/api/v1/analytics/calls?from=2026-11-01&to=2026-11-30&tz_offset_minutes=60",
        )
        .await;
    assert_eq!(r["window"]["from"], "2026-10-31T23:00:00.000Z");
    let days: Vec<(String, i64)> = r["by_day"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["date"].as_str().unwrap().to_string(),
                d["calls"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        days,
        vec![
            ("2026-11-10".to_string(), 2),
            ("2026-11-11".to_string(), 1),
            ("2026-11-12".to_string(), 2)
        ]
    );
    assert_eq!(
        r["by_hour"][10]["calls"], 2,
        "09:15Z and 09:45Z are 10h local"
    );

    // --- Agents.
    let (st, r) = server
        .get_json(&key, &format!("/api/v1/analytics/agents?{WINDOW}"))
        .await;
    assert_eq!(st, 200, "{r}");
    let agents = r["agents"].as_array().unwrap();
    let order: Vec<Value> = agents.iter().map(|a| a["agent"].clone()).collect();
    assert_eq!(order, vec![json!("1002"), json!("1001"), Value::Null]);
    let bob = &agents[0];
    assert_eq!(bob["name"], "Bob Agent");
    assert_eq!(bob["calls"], 2);
    assert_eq!(bob["analysed_calls"], 1);
    assert_eq!(bob["handle_time_seconds"], json!(68.0));
    let alice = &agents[1];
    assert_eq!(alice["name"], "Alice Agent");
    assert_eq!(alice["calls"], 2);
    assert_eq!(alice["analysed_calls"], 2);
    assert_eq!(alice["handle_time_seconds"], json!(16.0));
    assert_eq!(
        alice["mean_qa_percent"],
        json!(50.0),
        "reviewed 0 and suggested 100"
    );
    assert_eq!(alice["scored_calls"], 2);
    assert_eq!(bob["mean_qa_percent"], json!(100.0));
    assert_eq!(bob["scored_calls"], 1);
    assert!(
        alice["agent_talk_seconds"].as_f64().unwrap() > 0.0,
        "{alice}"
    );
    assert!(alice["mean_sentiment"].is_number(), "{alice}");
    let total_flags: i64 = agents.iter().map(|a| a["flags"].as_i64().unwrap()).sum();
    assert_eq!(total_flags, expected.flags);
    assert_eq!(agents[2]["calls"], 1);
    assert_eq!(agents[2]["handle_time_seconds"], json!(300.0));
    assert_eq!(agents[2]["mean_sentiment"], Value::Null);

    // --- Trackers: the Billing tracker per day, as the analyses found it.
    let (st, r) = server
        .get_json(&key, &format!("/api/v1/analytics/trackers?{WINDOW}"))
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["analysed_calls"], 3);
    let billing = &r["trackers"][0];
    assert_eq!(billing["tracker_id"], tracker_id.as_str());
    assert_eq!(billing["name"], "Billing");
    assert_eq!(billing["category"], "pricing");
    let want_hits = expected.tracker_hits[&tracker_id];
    assert!(want_hits >= 3, "every call names the bill: {want_hits}");
    assert_eq!(billing["hits"], want_hits);
    assert_eq!(billing["calls"], 3);
    assert_eq!(billing["call_rate"], json!(1.0));
    let days: Vec<(String, i64)> = billing["by_day"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["date"].as_str().unwrap().to_string(),
                d["calls"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        days,
        vec![("2026-11-10".to_string(), 2), ("2026-11-11".to_string(), 1)]
    );

    // --- Compliance: two calls lack the recording disclosure, one gives it.
    let (st, r) = server
        .get_json(&key, &format!("/api/v1/analytics/compliance?{WINDOW}"))
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["analysed_calls"], 3);
    assert_eq!(r["flags"], expected.flags);
    assert_eq!(r["flagged_calls"], expected.flagged_calls);
    assert_eq!(r["disclosure"]["missing"], 2, "{r}");
    assert_eq!(r["disclosure"]["given"], 1);
    assert_eq!(r["disclosure"]["coverage"], json!(0.3333));
    let mut by_category: BTreeMap<String, i64> = BTreeMap::new();
    for c in r["by_category"].as_array().unwrap() {
        *by_category
            .entry(c["category"].as_str().unwrap().to_string())
            .or_default() += c["flags"].as_i64().unwrap();
    }
    assert_eq!(by_category, expected.categories);

    // --- Another organization sees only its own calls.
    let (_, r) = server
        .get_json(&globex_key, &format!("/api/v1/analytics/calls?{WINDOW}"))
        .await;
    assert_eq!(r["totals"]["calls"], 2);
    assert_eq!(r["totals"]["duration_seconds"], json!(1007.0));
    let (_, r) = server
        .get_json(&globex_key, &format!("/api/v1/analytics/agents?{WINDOW}"))
        .await;
    let globex_agents = by_key(&r["agents"], "agent");
    assert_eq!(globex_agents["1001"]["calls"], 1, "{r}");
    assert_eq!(
        globex_agents["1001"]["name"],
        Value::Null,
        "acme's user is not named"
    );

    // --- An agent's numbers are her own calls only.
    let alice_cookie = sign_in(&server, "acme.example", "1001", PASSWORD).await;
    let (st, body) = get_cookie(
        &server,
        &alice_cookie,
        &format!("/api/v1/analytics/calls?{WINDOW}"),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let r: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(r["scope"], "own_calls");
    assert_eq!(r["totals"]["calls"], 2);
    assert_eq!(r["totals"]["duration_seconds"], json!(16.0));
    let (_, body) = get_cookie(
        &server,
        &alice_cookie,
        &format!("/api/v1/analytics/agents?{WINDOW}"),
    )
    .await;
    let r: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(r["agents"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["agents"][0]["agent"], "1001");
    let (st, csv) = get_cookie(
        &server,
        &alice_cookie,
        &format!("/api/v1/calls/export.csv?{WINDOW}"),
    )
    .await;
    assert_eq!(st, 200);
    let rows = parse_csv(&csv);
    let mut ids: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    ids.sort();
    let mut hers = vec![u1.as_str(), u2.as_str()];
    hers.sort();
    assert_eq!(ids, hers);
    // Her usage and quota are not hers to see.
    let (st, _) = get_cookie(&server, &alice_cookie, "/api/v1/usage").await;
    assert_eq!(st, 403);

    // A key with neither reports nor calls: refused, naming the permission.
    let narrow = callscope_api::auth::create_scoped_api_key(
        server.pool(),
        &acme,
        "contacts only",
        None,
        [Permission::ContactsRead]
            .into_iter()
            .collect::<Permissions>(),
    )
    .await
    .unwrap();
    let (st, body) = server
        .get_json(&narrow.key, "/api/v1/analytics/compliance")
        .await;
    assert_eq!(st, 403, "{body}");
    assert_eq!(body["details"]["permission"], "analytics.read");
    // Bad windows are a 422 naming the field.
    for q in [
        "from=2026-11-30&to=2026-11-01",
        "from=2024-01-01&to=2026-01-01",
        "from=someday",
        "tz_offset_minutes=5000",
    ] {
        let (st, body) = server
            .get_json(&key, &format!("/api/v1/analytics/calls?{q}"))
            .await;
        assert_eq!(st, 422, "{q}: {body}");
        assert_eq!(body["code"], "validation_error");
    }
    let (st, body) = server
        .get_json(
            &key,
            "/api/v1/analytics/calls?from=2026-11-01&from=2026-11-02",
        )
        .await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["code"], "bad_request");
    let (st, body) = server
        .get_json(&key, "/api/v1/analytics/agents?limit=0")
        .await;
    assert_eq!(st, 422, "{body}");

    // --- The CSV export, parsed back.
    let resp = server
        .get(&key, &format!("/api/v1/calls/export.csv?{WINDOW}"))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "text/csv; charset=utf-8"
    );
    assert!(
        resp.headers()[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains("calls-2026-11-01-2026-12-01.csv")
    );
    let rows = parse_csv(&resp.text().await.unwrap());
    let head = &rows[0];
    assert_eq!(head.len(), 21);
    assert_eq!(head[0], "id");
    assert!(rows.iter().all(|r| r.len() == 21), "every row has 21 cells");
    assert_eq!(rows.len(), 6, "header and five calls");
    let col = |name: &str| head.iter().position(|h| h == name).unwrap();
    let row_of = |id: &str| rows.iter().find(|r| r[0] == id).unwrap().clone();
    // In time order.
    let order: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        order,
        vec![
            u1.as_str(),
            u2.as_str(),
            u3.as_str(),
            s1.as_str(),
            s2.as_str()
        ]
    );
    let r1 = row_of(&u1);
    assert_eq!(r1[col("external_id")], "pbx-u1");
    assert_eq!(r1[col("started_at")], "2026-11-10T09:15:00.000Z");
    assert_eq!(r1[col("direction")], "inbound");
    assert_eq!(r1[col("source")], "upload");
    assert_eq!(r1[col("status")], "completed");
    assert_eq!(r1[col("duration_seconds")], "8.000");
    // A leading "+" would be a formula in a spreadsheet: neutralised.
    assert_eq!(r1[col("customer_phone")], "'+14155550100");
    assert_eq!(r1[col("agent")], "1001");
    assert_eq!(r1[col("disclosure_missing")], "1");
    assert!(r1[col("trackers")].starts_with("Billing:"), "{r1:?}");
    assert!(!r1[col("sentiment_label")].is_empty());
    assert_eq!(r1[col("qa_percent")], "0.00");
    let r2 = row_of(&u2);
    assert_eq!(r2[col("disclosure_missing")], "0");
    assert_eq!(r2[col("qa_percent")], "100.00");
    let r5 = row_of(&s2);
    // Quoting and formula neutralisation together.
    assert_eq!(r5[col("external_id")], "'=1+2,\"quoted\"");
    assert_eq!(r5[col("duration_seconds")], "300.000");
    assert_eq!(r5[col("agent")], "");
    assert_eq!(r5[col("sentiment_label")], "", "not analysed");
    assert_eq!(r5[col("status")], "received");
    let flags_total: i64 = rows[1..]
        .iter()
        .map(|r| r[col("flags")].parse::<i64>().unwrap_or(0))
        .sum();
    assert_eq!(flags_total, expected.flags);
    assert!(!rows.iter().any(|r| r[0] == g1), "no globex call");

    // An override of the call type shows in the export.
    let r = server
        .http
        .put(server.url(&format!("/api/v1/calls/{u3}/call-type")))
        .header("x-api-key", &key)
        .json(&json!({"call_type": "sales"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csv = server
        .get(&key, &format!("/api/v1/calls/export.csv?{WINDOW}"))
        .await
        .text()
        .await
        .unwrap();
    let rows = parse_csv(&csv);
    let r3 = rows.iter().find(|r| r[0] == u3).unwrap();
    assert_eq!(r3[col("call_type")], "sales");

    // A re-analysis with a new tracker replaces the call's facts in the reports.
    let r = server
        .http
        .post(server.url("/api/v1/trackers"))
        .header("x-api-key", &key)
        .json(
            &json!({"kind": "keyword", "name": "Help", "category": "custom", "phrases": ["help"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let help: Value = r.json().await.unwrap();
    let help_id = help["id"].as_str().unwrap().to_string();
    let r = server
        .http
        .post(server.url(&format!("/api/v1/calls/{u1}/reanalyze")))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, a) = server
            .get_json(&key, &format!("/api/v1/calls/{u1}/analysis"))
            .await;
        let hits = a["tracker_hits"].as_array().cloned().unwrap_or_default();
        if hits.iter().any(|h| h["tracker_id"] == help_id.as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "re-analysis did not finish: {a}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, r) = server
        .get_json(&key, &format!("/api/v1/analytics/trackers?{WINDOW}"))
        .await;
    let trackers = by_key(&r["trackers"], "tracker_id");
    assert_eq!(trackers[&help_id]["name"], "Help");
    assert_eq!(
        trackers[&help_id]["calls"], 1,
        "only U1 was re-analysed: {r}"
    );
    assert_eq!(trackers[&tracker_id]["calls"], 3);
    assert_eq!(trackers[&tracker_id]["hits"], want_hits);

    // Every export is in the audit log, with its window and who asked.
    let (st, log) = server
        .get_json(&key, "/api/v1/audit-log?action=export.calls_csv")
        .await;
    assert_eq!(st, 200, "{log}");
    let exports = log["data"].as_array().unwrap();
    assert!(exports.len() >= 3, "{log}");
    assert!(
        exports.iter().all(|e| e["details"]["from_ms"].is_i64()),
        "{log}"
    );
}

/// A local webhook receiver: every envelope it is sent.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Value>>>,
}

async fn receiver() -> Receiver {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let sink = sink.clone();
            async move {
                if let Ok(v) = serde_json::from_str::<Value>(&body) {
                    sink.lock().unwrap().push(v);
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver {
        url: format!("http://{addr}/hook"),
        got,
    }
}

impl Receiver {
    fn thresholds(&self) -> Vec<(String, i64)> {
        let mut v: Vec<(String, i64)> = self
            .got
            .lock()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["event"].as_str().unwrap_or_default().to_string(),
                    e["data"]["threshold"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        v.sort();
        v
    }

    /// Waits (at most 20 s) until `want` arrived.
    async fn wait_for(&self, want: &[(&str, i64)]) {
        let want: Vec<(String, i64)> = want.iter().map(|(e, t)| (e.to_string(), *t)).collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.thresholds() != want {
            assert!(
                Instant::now() < deadline,
                "got {:?}, want {want:?}",
                self.thresholds()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn count(server: &TestServer, sql: &'static str, org: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(org)
        .fetch_one(server.pool())
        .await
        .unwrap()
}

fn files_under(dir: &std::path::Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                n += 1;
            }
        }
    }
    n
}

#[tokio::test]
async fn minute_quota_warns_once_and_refuses_when_used_up() {
    let server = TestServer::start(|_| {}).await;
    let (org, key) = server.org("acme").await;
    let rx = receiver().await;
    let r = server
        .http
        .post(server.url("/api/v1/webhook-endpoints"))
        .header("x-api-key", &key)
        .json(&json!({"url": rx.url, "events": ["quota.*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // Unlimited by default.
    let (st, usage) = server.get_json(&key, "/api/v1/usage").await;
    assert_eq!(st, 200, "{usage}");
    assert_eq!(usage["quota_minutes"], Value::Null);
    assert_eq!(usage["percent"], Value::Null);
    assert_eq!(usage["exhausted"], false);

    // Only users.manage may set it; bad values are refused.
    let supervisor_like = callscope_api::auth::create_scoped_api_key(
        server.pool(),
        &org,
        "reports",
        None,
        [Permission::AnalyticsRead, Permission::CallsWrite]
            .into_iter()
            .collect::<Permissions>(),
    )
    .await
    .unwrap();
    let put = |k: &str, body: Value| {
        server
            .http
            .put(server.url("/api/v1/settings/quota"))
            .header("x-api-key", k.to_string())
            .json(&body)
            .send()
    };
    let r = put(&supervisor_like.key, json!({"monthly_minutes": 1}))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    for bad in [
        json!({"monthly_minutes": -1}),
        json!({"monthly_minutes": "ten"}),
        json!({}),
    ] {
        let r = put(&key, bad.clone()).await.unwrap();
        assert_eq!(r.status(), 422, "{bad}");
    }

    // 40 s already received this month (a PBX call), then a 1-minute quota.
    let now = chrono::Utc::now().to_rfc3339();
    store_call(&server, &org, "pbx-1", &now, 40_000, "inbound", None).await;
    let r = put(&key, json!({"monthly_minutes": 1})).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["usage"]["used_minutes"], json!(0.67));
    assert_eq!(body["usage"]["percent"], json!(66.67));
    assert_eq!(body["usage"]["warning"], Value::Null);
    let (st, q) = server
        .get_json(&supervisor_like.key, "/api/v1/settings/quota")
        .await;
    assert_eq!(st, 200);
    assert_eq!(q["monthly_minutes"], 1);

    // 48 s: 80 %.
    upload_call(&server, &key, &[], CALL_VTT).await;
    rx.wait_for(&[("quota.warning", 80)]).await;
    let (_, usage) = server.get_json(&key, "/api/v1/usage").await;
    assert_eq!(usage["used_minutes"], json!(0.8));
    assert_eq!(usage["warning"]["threshold"], 80);
    assert_eq!(usage["thresholds_reached"], json!([80]));
    assert_eq!(usage["remaining_minutes"], json!(0.2));
    // 56 s: still 80 %, no second warning.
    upload_call(&server, &key, &[], CALL_VTT).await;
    // 64 s: 95 % and 100 % at once.
    upload_call(&server, &key, &[], CALL_VTT).await;
    rx.wait_for(&[
        ("quota.exhausted", 100),
        ("quota.warning", 80),
        ("quota.warning", 95),
    ])
    .await;
    let envelope = rx
        .got
        .lock()
        .unwrap()
        .iter()
        .find(|e| e["data"]["threshold"] == 95)
        .cloned()
        .unwrap();
    assert_eq!(envelope["data"]["quota_minutes"], 1);
    let period = chrono::Utc::now().format("%Y-%m").to_string();
    assert_eq!(envelope["data"]["period"], period.as_str());

    // Used up: an upload is refused before anything is stored.
    let calls_before = count(
        &server,
        "SELECT COUNT(*) FROM calls WHERE org_id = $1",
        &org,
    )
    .await;
    let files_before = files_under(&server.running.state.recordings_dir);
    let wav = std::fs::read(stereo_call(server.dir.path())).unwrap();
    let (st, err) = server
        .upload(&key, "call.wav", wav.clone(), &[], Some(CALL_VTT))
        .await;
    assert_eq!(st, 402, "{err}");
    assert_eq!(err["code"], "quota_exhausted");
    assert_eq!(err["details"]["quota_minutes"], 1);
    assert_eq!(err["details"]["used_minutes"], json!(1.07));
    assert_eq!(err["details"]["period"], period.as_str());
    assert!(err["error"].as_str().unwrap().contains("quota"));
    // The recording webhooks too (PBX JSON and Twilio's form).
    let r = server
        .http
        .post(server.url("/api/v1/webhooks/call-recording"))
        .header("x-api-key", &key)
        .json(&json!({"external_call_id": "pbx-2", "recording_url": "http://127.0.0.1:9/x.wav"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 402);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "quota_exhausted");
    let r = server
        .http
        .post(server.url("/api/v1/webhooks/call-recording"))
        .header("x-api-key", &key)
        .form(&[
            ("CallSid", "CA1"),
            ("RecordingSid", "RE1"),
            ("RecordingUrl", "http://127.0.0.1:9/rec"),
            ("RecordingStatus", "completed"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 402);
    assert_eq!(
        count(
            &server,
            "SELECT COUNT(*) FROM calls WHERE org_id = $1",
            &org
        )
        .await,
        calls_before,
        "no call was created"
    );
    assert_eq!(
        count(
            &server,
            "SELECT COUNT(*) FROM jobs WHERE org_id = $1 AND status IN ('queued', 'running')",
            &org
        )
        .await,
        0,
        "no fetch was queued"
    );
    assert_eq!(
        files_under(&server.running.state.recordings_dir),
        files_before,
        "no file was kept"
    );
    let (_, usage) = server.get_json(&key, "/api/v1/usage").await;
    assert_eq!(usage["exhausted"], true);
    assert_eq!(usage["warning"]["threshold"], 100);

    // Setting the same quota again, or reading usage, sends nothing new.
    put(&key, json!({"monthly_minutes": 1})).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(rx.thresholds().len(), 3, "{:?}", rx.thresholds());

    // Raising the quota lets recordings in again.
    let r = put(&key, json!({"monthly_minutes": 100})).await.unwrap();
    assert_eq!(r.status(), 200);
    let (_, log) = server
        .get_json(&key, "/api/v1/audit-log?action=settings.quota.updated")
        .await;
    let newest = &log["data"][0]["details"];
    assert_eq!(
        (newest["before"].as_i64(), newest["after"].as_i64()),
        (Some(1), Some(100)),
        "{log}"
    );
    let (st, created) = server
        .upload(&key, "call.wav", wav, &[], Some(CALL_VTT))
        .await;
    assert_eq!(st, 202, "{created}");
}

/// Scale check (run on demand: `--ignored`): 100 000 calls of one organization, a third of
/// them with analysis facts, plus 100 000 of another; every report and the full export are
/// timed. Seeded with SQL straight into the store (uploading 100 000 recordings is not the
/// point here).
#[tokio::test]
#[ignore]
async fn reports_and_export_at_100k_calls() {
    let server = TestServer::start(|_| {}).await;
    let (org, key) = server.org("big").await;
    let (other, _) = server.org("other").await;
    let base = ms("2026-06-01T00:00:00Z");
    let started = Instant::now();
    for (o, n) in [(&org, 100_000i64), (&other, 100_000)] {
        let mut tx = server.pool().begin().await.unwrap();
        for i in 0..n {
            let id = format!("{o}-{i:06}");
            sqlx::query(
                "INSERT INTO calls (id, org_id, external_id, source, direction, agent_identifier, \
                 started_at, duration_ms, status, metadata, created_at, updated_at) \
                 VALUES ($1, $2, $1, 'webhook', $3, $4, $5, $6, 'completed', '{}', $5, $5)",
            )
            .bind(&id)
            .bind(o)
            .bind(if i % 2 == 0 { "inbound" } else { "outbound" })
            .bind(format!("{}", 1000 + i % 50))
            .bind(base + i * 150_000)
            .bind(30_000 + (i % 600) * 1000)
            .execute(&mut *tx)
            .await
            .unwrap();
            if i % 3 == 0 {
                let doc = json!({
                    "sentiment": {"overall": {"score": ((i % 7) as f64 - 3.0) / 5.0, "label": "neutral"}},
                    "tracker_hits": [{"tracker_id": format!("t{}", i % 5), "tracker_name": "T"}],
                    "compliance": if i % 4 == 0 { json!([{"rule_id": "recording-disclosure", "category": "Compliance", "severity": "high"}]) } else { json!([]) },
                    "scorecard_suggestions": [{"totals": {"percent": (i % 100) as f64}}],
                });
                sqlx::query(
                    "INSERT INTO call_analyses (call_id, org_id, version, result, analysed_at) \
                     VALUES ($1, $2, 1, $3, $4)",
                )
                .bind(&id)
                .bind(o)
                .bind(doc.to_string())
                .bind(base + i)
                .execute(&mut *tx)
                .await
                .unwrap();
            }
        }
        tx.commit().await.unwrap();
    }
    eprintln!("seeded 200 000 calls in {:?}", started.elapsed());
    let window = "from=2026-06-01&to=2026-12-01";
    for path in [
        "analytics/calls",
        "analytics/calls",
        "analytics/agents",
        "analytics/trackers",
        "analytics/compliance",
    ] {
        let t = Instant::now();
        let (st, body) = server
            .get_json(&key, &format!("/api/v1/{path}?{window}"))
            .await;
        assert_eq!(st, 200, "{body}");
        eprintln!("{path}: {:?}", t.elapsed());
        if path == "analytics/calls" {
            assert_eq!(body["totals"]["calls"], 100_000);
        }
        if path == "analytics/compliance" {
            assert_eq!(body["analysed_calls"], 33_334);
        }
    }
    let t = Instant::now();
    let mut resp = server
        .get(&key, &format!("/api/v1/calls/export.csv?{window}"))
        .await;
    let (mut bytes, mut lines, mut chunks) = (0usize, 0usize, 0usize);
    while let Some(chunk) = resp.chunk().await.unwrap() {
        bytes += chunk.len();
        chunks += 1;
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    assert_eq!(lines, 100_001);
    eprintln!(
        "export.csv: {lines} lines, {bytes} bytes in {chunks} chunks, {:?}",
        t.elapsed()
    );
}
