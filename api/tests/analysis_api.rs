//! Call analysis through the REST API against a real server: the analysis stored after an
//! upload is processed, configuration CRUD scoped by organization, re-analysis with a tracker
//! added afterwards, and the organization's settings.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, stereo_call};
use serde_json::{Value, json};

const CHURN_VTT: &str = "WEBVTT\n\n00:00.500 --> 00:03.000\n<v Agent>Hello, thank you for calling. How can I help?\n\n00:04.000 --> 00:06.500\n<v Customer>My internet is still not working and I want to cancel my account.\n";

/// A request with an optional JSON body; status and JSON reply.
async fn send(
    s: &TestServer,
    method: reqwest::Method,
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

/// Whether this machine has the sentence-embedding model smart trackers need (installed by
/// scripts/setup); the tests assert the matching behaviour either way.
fn minilm_installed() -> bool {
    callscope_inference::locate_minilm_dir(None).is_some()
}

async fn processed_call(s: &TestServer, key: &str, external_id: &str) -> String {
    let wav = std::fs::read(stereo_call(s.dir.path())).unwrap();
    let fields = [
        ("external_call_id", external_id),
        ("direction", "inbound"),
        ("channel_layout", "stereo_agent_left"),
        ("duration_seconds", "8"),
    ];
    let (st, created) = s
        .upload(key, "call.wav", wav, &fields, Some(CHURN_VTT))
        .await;
    assert_eq!(st, 202, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let call = s.wait_done(key, &id).await;
    assert_eq!(call["status"], "completed", "{call}");
    id
}

fn churn_tracker() -> Value {
    json!({
        "kind": "smart",
        "name": "Churn risk",
        "category": "objection",
        "active": true,
        "examples": ["I want to cancel my subscription", "please close my account"],
    })
}

#[tokio::test]
async fn processed_calls_carry_their_analysis() {
    let s = TestServer::start(|_| {}).await;
    let (_org, key) = s.org("a").await;
    let (_other, other_key) = s.org("b").await;
    let (st, _) = send(
        &s,
        reqwest::Method::POST,
        &key,
        "/api/v1/trackers",
        Some(churn_tracker()),
    )
    .await;
    assert_eq!(st, 201);
    let id = processed_call(&s, &key, "an-1").await;

    let (st, a) = s
        .get_json(&key, &format!("/api/v1/calls/{id}/analysis"))
        .await;
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["call_id"], id.as_str());
    assert_eq!(a["version"], 1);
    // Stats from the two turns: both roles talked, nobody interrupted.
    let roles = a["stats"]["per_role"].as_array().unwrap();
    let talk = |role: &str| {
        roles.iter().find(|r| r["role"] == role).unwrap()["talk_ms"]
            .as_u64()
            .unwrap()
    };
    assert!(talk("agent") > 1000 && talk("customer") > 1000, "{roles:?}");
    assert_eq!(a["stats"]["interruptions"].as_array().unwrap().len(), 0);
    // The customer's complaint is negative; the agent's greeting is not.
    let turns = a["sentiment"]["turns"].as_array().unwrap();
    let label = |role: &str| {
        turns.iter().find(|t| t["role"] == role).unwrap()["sentiment"]["label"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(label("customer"), "negative", "{turns:?}");
    assert_ne!(label("agent"), "negative", "{turns:?}");
    assert_eq!(a["sentiment"]["analyser"], "lexicon");
    // Smart trackers: a hit on the customer's turn with the model, a stated reason without.
    let smart = &a["smart_trackers"];
    if minilm_installed() {
        assert_eq!(smart["status"], "available", "{smart}");
        let hits = smart["hits"].as_array().unwrap();
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0]["role"], "customer");
        assert!(hits[0]["similarity"].as_f64().unwrap() >= 0.5, "{hits:?}");
    } else {
        eprintln!("MiniLM not installed here: checking the unavailable path");
        assert_eq!(smart["status"], "unavailable", "{smart}");
        assert!(smart["reason"].as_str().unwrap().contains("not installed"));
    }

    // Another organization sees neither the call's analysis nor the tracker.
    let (st, _) = s
        .get_json(&other_key, &format!("/api/v1/calls/{id}/analysis"))
        .await;
    assert_eq!(st, 404);
    let (st, list) = s.get_json(&other_key, "/api/v1/trackers").await;
    assert_eq!(st, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    let (st, _) = s
        .get_json(&key, "/api/v1/calls/no-such-call/analysis")
        .await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn trackers_are_validated_and_scoped() {
    let s = TestServer::start(|_| {}).await;
    let (_org, key) = s.org("a").await;
    let (_other, other_key) = s.org("b").await;
    let post = reqwest::Method::POST;

    let (st, created) = send(
        &s,
        post.clone(),
        &key,
        "/api/v1/trackers",
        Some(churn_tracker()),
    )
    .await;
    assert_eq!(st, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["kind"], "smart");
    assert_eq!(created["threshold"], 0.5);
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));

    // Refused with a reason, nothing stored.
    for (bad, why) in [
        (
            json!({"kind": "smart", "name": "x", "category": "weather", "active": true, "examples": ["a b c"]}),
            "category",
        ),
        (
            json!({"kind": "smart", "name": "x", "category": "custom", "active": true, "examples": []}),
            "example",
        ),
        (
            json!({"kind": "smart", "name": "", "category": "custom", "active": true, "examples": ["a"]}),
            "name",
        ),
        (
            json!({"kind": "smart", "name": "x", "category": "custom", "active": true, "examples": ["a"], "threshold": 1.5}),
            "threshold",
        ),
        (json!({"kind": "telepathy", "name": "x"}), "tracker"),
        (json!(["not", "an", "object"]), "object"),
    ] {
        let (st, body) = send(
            &s,
            post.clone(),
            &key,
            "/api/v1/trackers",
            Some(bad.clone()),
        )
        .await;
        assert_eq!(st, 422, "{bad} → {body}");
        assert!(
            body.to_string().to_lowercase().contains(why),
            "{bad} → {body}"
        );
    }
    let (_, list) = s.get_json(&key, "/api/v1/trackers").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // Replace: the id in the path wins over one in the body.
    let mut changed = churn_tracker();
    changed["id"] = json!("forged");
    changed["active"] = json!(false);
    changed["threshold"] = json!(0.7);
    let (st, put) = send(
        &s,
        reqwest::Method::PUT,
        &key,
        &format!("/api/v1/trackers/{id}"),
        Some(changed),
    )
    .await;
    assert_eq!(st, 200, "{put}");
    assert_eq!(put["id"], id.as_str());
    assert_eq!(put["active"], false);
    assert_eq!(put["threshold"], 0.7);

    // Another organization can neither read, replace nor delete it.
    let path = format!("/api/v1/trackers/{id}");
    let (st, _) = s.get_json(&other_key, &path).await;
    assert_eq!(st, 404);
    let (st, _) = send(
        &s,
        reqwest::Method::PUT,
        &other_key,
        &path,
        Some(churn_tracker()),
    )
    .await;
    assert_eq!(st, 404);
    let (st, _) = send(&s, reqwest::Method::DELETE, &other_key, &path, None).await;
    assert_eq!(st, 404);
    let (st, _) = s.get_json(&key, &path).await;
    assert_eq!(st, 200);

    let (st, _) = send(&s, reqwest::Method::DELETE, &key, &path, None).await;
    assert_eq!(st, 204);
    let (st, _) = s.get_json(&key, &path).await;
    assert_eq!(st, 404);
    // Without a key: 401.
    let r = s.http.get(s.url("/api/v1/trackers")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test]
async fn reanalysis_applies_trackers_added_later() {
    let s = TestServer::start(|_| {}).await;
    let (_org, key) = s.org("a").await;
    let id = processed_call(&s, &key, "an-2").await;
    let path = format!("/api/v1/calls/{id}/analysis");
    let (st, first) = s.get_json(&key, &path).await;
    assert_eq!(st, 200, "{first}");
    let hits_of = |a: &Value| a["smart_trackers"]["hits"].as_array().map_or(0, Vec::len);
    assert_eq!(hits_of(&first), 0, "no tracker yet: {first}");

    let (st, _) = send(
        &s,
        reqwest::Method::POST,
        &key,
        "/api/v1/trackers",
        Some(churn_tracker()),
    )
    .await;
    assert_eq!(st, 201);
    let (st, queued) = send(
        &s,
        reqwest::Method::POST,
        &key,
        &format!("/api/v1/calls/{id}/reanalyze"),
        None,
    )
    .await;
    assert_eq!(st, 202, "{queued}");
    assert_eq!(queued["status"], "queued");

    // The stored analysis is replaced (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    let again = loop {
        let (_, a) = s.get_json(&key, &path).await;
        if a["analysed_at"] != first["analysed_at"] {
            break a;
        }
        assert!(Instant::now() < deadline, "re-analysis never stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if minilm_installed() {
        assert_eq!(hits_of(&again), 1, "{again}");
    } else {
        assert_eq!(again["smart_trackers"]["status"], "unavailable");
    }
    // The transcript-level results are the same call's.
    assert_eq!(again["stats"], first["stats"]);

    // A date range: this call started now-ish; a range in 2001 finds nothing.
    let (st, range) = send(
        &s,
        reqwest::Method::POST,
        &key,
        "/api/v1/calls/reanalyze",
        Some(json!({"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(st, 202, "{range}");
    assert_eq!(range["queued"], 1);
    let (st, none) = send(
        &s,
        reqwest::Method::POST,
        &key,
        "/api/v1/calls/reanalyze",
        Some(json!({"from": "2001-01-01T00:00:00Z", "to": "2001-02-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(st, 202);
    assert_eq!(none["queued"], 0);
    let (st, _) = send(
        &s,
        reqwest::Method::POST,
        &key,
        "/api/v1/calls/reanalyze",
        Some(json!({"from": "2001-02-01T00:00:00Z", "to": "2001-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(st, 422);
}

#[tokio::test]
async fn analysis_settings_round_trip_and_validate() {
    let s = TestServer::start(|_| {}).await;
    let (_org, key) = s.org("a").await;
    let (st, defaults) = s.get_json(&key, "/api/v1/settings/analysis").await;
    assert_eq!(st, 200);
    assert_eq!(defaults["sentiment"], "lexicon");
    assert_eq!(defaults["keep_unredacted"], false);
    assert_eq!(defaults["default_rules"], true);

    let (st, saved) = send(
        &s,
        reqwest::Method::PUT,
        &key,
        "/api/v1/settings/analysis",
        Some(json!({"sentiment": "model", "redact_emails": true, "call_types": ["renewal", "claim"]})),
    )
    .await;
    assert_eq!(st, 200, "{saved}");
    let (_, read) = s.get_json(&key, "/api/v1/settings/analysis").await;
    assert_eq!(read, saved);
    assert_eq!(read["call_types"], json!(["renewal", "claim"]));

    for bad in [
        json!({"call_types": []}),
        json!({"sentiment": "vibes"}),
        json!({"no_such_setting": true}),
    ] {
        let (st, body) = send(
            &s,
            reqwest::Method::PUT,
            &key,
            "/api/v1/settings/analysis",
            Some(bad.clone()),
        )
        .await;
        assert!(st == 422 || st == 400, "{bad} → {st} {body}");
    }
    // A model chosen but not installed: the call is still analysed, by the lexicon, and says so.
    let id = processed_call(&s, &key, "an-3").await;
    let (_, a) = s
        .get_json(&key, &format!("/api/v1/calls/{id}/analysis"))
        .await;
    assert_eq!(a["sentiment"]["analyser"], "lexicon");
    let degraded = a["degraded"].as_array().unwrap();
    assert!(
        degraded.iter().any(|d| d["part"] == "sentiment"),
        "{degraded:?}"
    );
}

/// A call where the customer reads a card number, a keyword tracker, the default rule pack,
/// a scorecard template: the stored transcript is redacted, the insights point at their
/// turns, a reviewer's scorecard and a manager's call type survive re-analysis.
#[tokio::test]
async fn redaction_trackers_rules_scorecards_and_overrides() {
    const CARD_VTT: &str = "WEBVTT\n\n00:00.500 --> 00:03.000\n<v Agent>Hello, how can I help with your bill today?\n\n00:04.000 --> 00:06.500\n<v Customer>The price went up. My card is 4111 1111 1111 1111.\n";
    let s = TestServer::start(|_| {}).await;
    let (_org, key) = s.org("a").await;
    let post = reqwest::Method::POST;
    let (st, tracker) = send(
        &s,
        post.clone(),
        &key,
        "/api/v1/trackers",
        Some(json!({"kind": "keyword", "name": "Price", "category": "pricing", "phrases": ["price", "how much"]})),
    )
    .await;
    assert_eq!(st, 201, "{tracker}");
    let tracker_id = tracker["id"].as_str().unwrap().to_string();
    let (st, template) = send(
        &s,
        post.clone(),
        &key,
        "/api/v1/scorecard-templates",
        Some(json!({
            "name": "Billing QA",
            "criteria": [
                {"id": "price", "title": "Price discussed", "weight": 1.0, "max_score": 1.0,
                 "answer_type": {"type": "yes_no"},
                 "binding": {"kind": "tracker_hit", "tracker_id": tracker_id, "present": true}},
                {"id": "empathy", "title": "Showed empathy", "weight": 2.0, "max_score": 1.0,
                 "answer_type": {"type": "yes_no"}}
            ]
        })),
    )
    .await;
    assert_eq!(st, 201, "{template}");
    let template_id = template["id"].as_str().unwrap().to_string();
    // A rule of the organization's own, and a broken one refused.
    let (st, rule) = send(
        &s,
        post.clone(),
        &key,
        "/api/v1/rules",
        Some(json!({
            "name": "Bill mentioned", "category": "billing", "severity": "low",
            "condition": {"kind": "phrase_said", "phrases": ["bill"]},
            "roles": ["agent"]
        })),
    )
    .await;
    assert_eq!(st, 201, "{rule}");
    let (st, _) = send(
        &s,
        post.clone(),
        &key,
        "/api/v1/rules",
        Some(json!({"name": "x", "category": "c", "severity": "low", "condition": {"kind": "phrase_said", "phrases": []}})),
    )
    .await;
    assert_eq!(st, 422);

    let wav = std::fs::read(stereo_call(s.dir.path())).unwrap();
    let fields = [
        ("external_call_id", "card-1"),
        ("channel_layout", "stereo_agent_left"),
    ];
    let (st, created) = s
        .upload(&key, "call.wav", wav, &fields, Some(CARD_VTT))
        .await;
    assert_eq!(st, 202, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let call = s.wait_done(&key, &id).await;
    assert_eq!(call["status"], "completed", "{call}");

    // The stored transcript has no card number.
    let segs = call["segments"].as_array().unwrap();
    let customer = segs
        .iter()
        .find(|s| s["speaker_role"] == "customer")
        .unwrap();
    let text = customer["text"].as_str().unwrap();
    assert!(text.contains("[PCI]") && !text.contains("4111"), "{text}");
    let r = s
        .get(&key, &format!("/api/v1/calls/{id}/transcript.txt"))
        .await;
    assert!(!r.text().await.unwrap().contains("1111"));

    let (st, a) = s
        .get_json(&key, &format!("/api/v1/calls/{id}/analysis"))
        .await;
    assert_eq!(st, 200, "{a}");
    assert!(
        !a.to_string().contains("4111"),
        "the analysis quotes no card number"
    );
    assert_eq!(
        a["redactions"][0]["kind"], "card_number",
        "{}",
        a["redactions"]
    );
    let hits = a["tracker_hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["tracker_id"], tracker_id.as_str());
    assert_eq!(hits[0]["role"], "customer");
    assert_eq!(hits[0]["phrase"], "price");
    let flags = a["compliance"].as_array().unwrap();
    let flagged = |rule: &str| flags.iter().any(|f| f["rule_id"] == rule);
    assert!(
        flagged("recording-disclosure"),
        "default pack: no disclosure said: {flags:?}"
    );
    assert!(flagged(rule["id"].as_str().unwrap()), "own rule: {flags:?}");
    assert!(
        a["call_type"]["call_type"].is_string(),
        "{}",
        a["call_type"]
    );
    assert!(a["summary"]["sentences"].as_array().is_some());

    // The scorecard: suggested from the tracker hit, then a reviewer's answer.
    let card_path = format!("/api/v1/calls/{id}/scorecards/{template_id}");
    let (st, card) = s.get_json(&key, &card_path).await;
    assert_eq!(st, 200, "{card}");
    assert_eq!(card["stored"], false);
    let price = card["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["criterion_id"] == "price")
        .unwrap()
        .clone();
    assert_eq!(price["source"], "suggested", "{card}");
    let (st, reviewed) = send(
        &s,
        reqwest::Method::PUT,
        &key,
        &card_path,
        Some(json!({
            "reviewer": "qa@example.com",
            "overall_comment": "good call",
            "answers": [{"criterion_id": "empathy", "answer": {"type": "yes"}, "note": "apologised"}]
        })),
    )
    .await;
    assert_eq!(st, 200, "{reviewed}");
    assert_eq!(reviewed["stored"], true);
    assert_eq!(reviewed["reviewer"], "qa@example.com");
    let percent = reviewed["totals"]["percent"].as_f64().unwrap();
    assert!((percent - 100.0).abs() < 1e-6, "{reviewed}");
    // An answer for a criterion the template lacks is refused, nothing stored.
    let (st, _) = send(
        &s,
        reqwest::Method::PUT,
        &key,
        &card_path,
        Some(json!({"reviewer": "qa", "answers": [{"criterion_id": "nope", "answer": {"type": "yes"}}]})),
    )
    .await;
    assert_eq!(st, 422);

    // The manager's call type, then a re-analysis: both kept.
    let (st, typed) = send(
        &s,
        reqwest::Method::PUT,
        &key,
        &format!("/api/v1/calls/{id}/call-type"),
        Some(json!({"call_type": "retention"})),
    )
    .await;
    assert_eq!(st, 200, "{typed}");
    assert_eq!(typed["call_type"]["call_type"], "retention");
    let before = a["analysed_at"].clone();
    let (st, _) = send(
        &s,
        post.clone(),
        &key,
        &format!("/api/v1/calls/{id}/reanalyze"),
        None,
    )
    .await;
    assert_eq!(st, 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    let again = loop {
        let (_, v) = s
            .get_json(&key, &format!("/api/v1/calls/{id}/analysis"))
            .await;
        if v["analysed_at"] != before {
            break v;
        }
        assert!(Instant::now() < deadline, "re-analysis never stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(again["call_type"]["call_type"], "retention");
    assert_eq!(again["call_type"]["manual_override"], "retention");
    assert!(again["call_type"]["computed_type"].is_string());
    let (_, card) = s.get_json(&key, &card_path).await;
    let empathy = card["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["criterion_id"] == "empathy")
        .unwrap()
        .clone();
    assert_eq!(empathy["source"], "manual", "{card}");
    assert_eq!(card["reviewer"], "qa@example.com");
}
