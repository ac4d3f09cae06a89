//! The optional language model in call analysis, against a real server and an
//! OpenAI-compatible chat-completions server DOUBLE (no language model can run here): what is
//! sent (model, messages, key, no card number), what the model's answers fill in (summary,
//! action items, resolution score, smart-tracker confirmation), that every failure falls back
//! to the default analysers with the reason in `degraded`, and that nothing is sent when the
//! organization's switch is off.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::{TestServer, stereo_call};
use serde_json::{Value, json};

/// Agent first, then the customer with a card number, a double charge and a cancellation.
const CALL_VTT: &str = "WEBVTT\n\n00:00.500 --> 00:03.000\n<v Agent>Hello, thank you for calling. I'll email you the refund receipt by Friday.\n\n00:04.000 --> 00:06.500\n<v Customer>I was charged twice on my bill, my card number is 4111 1111 1111 1111, and I want to cancel my account.\n";

const MODEL: &str = "test-model:8b";
const API_KEY: &str = "sk-test-key";
/// The per-request timeout the servers under test get.
const TIMEOUT_MS: u64 = 1_000;

/// How the double answers every request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Behaviour {
    /// A sensible answer for each kind of prompt.
    Answer,
    /// The same answer, after longer than the client's timeout.
    Slow,
    /// HTTP 500 with an OpenAI-style error body.
    ServerError,
    /// HTTP 200 with a body that is not JSON.
    GarbageJson,
    /// A valid chat completion whose message is JSON of the wrong shape.
    WrongShape,
    /// A chat completion larger than the client accepts.
    Oversize,
}

#[derive(Clone, Debug)]
struct RecordedRequest {
    path: String,
    authorization: Option<String>,
    body: Value,
}

#[derive(Default)]
struct DoubleState {
    behaviour: Option<Behaviour>,
    requests: Vec<RecordedRequest>,
}

/// Test double of an OpenAI-compatible endpoint (`POST /v1/chat/completions`) on 127.0.0.1:
/// answers from a script chosen by the prompt's kind and records every request.
struct ChatCompletionsServerDouble {
    addr: SocketAddr,
    state: Arc<Mutex<DoubleState>>,
    task: tokio::task::JoinHandle<()>,
}

impl ChatCompletionsServerDouble {
    async fn start() -> Self {
        let state = Arc::new(Mutex::new(DoubleState {
            behaviour: Some(Behaviour::Answer),
            requests: Vec::new(),
        }));
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        ChatCompletionsServerDouble { addr, state, task }
    }

    fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    fn set(&self, behaviour: Behaviour) {
        self.state.lock().unwrap().behaviour = Some(behaviour);
    }

    fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    fn clear(&self) {
        self.state.lock().unwrap().requests.clear();
    }
}

impl Drop for ChatCompletionsServerDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-double",
        "object": "chat.completion",
        "model": MODEL,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": content },
            "finish_reason": "stop",
        }],
    })
}

/// The scripted answer for a request, by what its system prompt asks.
fn scripted_answer(body: &Value) -> String {
    let system = body["messages"][0]["content"].as_str().unwrap_or_default();
    let user = body["messages"][1]["content"].as_str().unwrap_or_default();
    if system.contains("summarise") {
        json!({
            "summary": "LLM: the customer was charged twice and wants to cancel; the agent will email a refund receipt.",
            "reason_for_call": "LLM: double charge",
            "resolution": "LLM: refund receipt by Friday",
        })
        .to_string()
    } else if system.contains("action items") {
        json!([{
            "owner": "agent",
            "kind": "commitment",
            "text": "I'll email you the refund receipt by Friday.",
            "turn": 0,
            "due": "2026-11-27",
            "due_phrase": "by Friday",
        }])
        .to_string()
    } else if system.contains("resolved") {
        "```json\n{\"resolution_score\": 0.25}\n```".to_string()
    } else if system.contains("decide whether a sentence") {
        // Confirms the churn tracker, rejects every other.
        json!({ "match": user.contains("Topic: Churn risk") }).to_string()
    } else {
        "I do not know this prompt".to_string()
    }
}

async fn chat_completions(
    State(state): State<Arc<Mutex<DoubleState>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let behaviour = {
        let mut s = state.lock().unwrap();
        s.requests.push(RecordedRequest {
            path: uri.path().to_string(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: body.clone(),
        });
        s.behaviour.unwrap_or(Behaviour::Answer)
    };
    match behaviour {
        Behaviour::Answer => axum::Json(completion(&scripted_answer(&body))).into_response(),
        Behaviour::Slow => {
            tokio::time::sleep(Duration::from_millis(TIMEOUT_MS * 3)).await;
            axum::Json(completion(&scripted_answer(&body))).into_response()
        }
        Behaviour::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({ "error": { "message": "model crashed", "type": "server_error" } })),
        )
            .into_response(),
        Behaviour::GarbageJson => (
            StatusCode::OK,
            [("content-type", "application/json")],
            "{\"choices\": [ this is not json",
        )
            .into_response(),
        Behaviour::WrongShape => {
            axum::Json(completion("{\"verdict\": \"fine\", \"items\": 3}")).into_response()
        }
        Behaviour::Oversize => axum::Json(completion(&"a".repeat(300 * 1024))).into_response(),
    }
}

// ---- the server under test ----

fn minilm_installed() -> bool {
    callscope_inference::locate_minilm_dir(None).is_some()
}

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

/// A server whose `[analysis.llm]` points at `base_url`.
async fn server_with_llm(base_url: Option<String>) -> TestServer {
    TestServer::start(move |c| {
        if let Some(url) = base_url {
            c.analysis.llm.base_url = Some(url);
            c.analysis.llm.model = Some(MODEL.into());
            c.analysis.llm.api_key = Some(API_KEY.into());
        }
        c.analysis.llm.timeout_ms = TIMEOUT_MS;
        c.analysis.llm.max_tokens = 400;
    })
    .await
}

async fn set_llm_features(s: &TestServer, key: &str, on: bool) {
    let features = json!({
        "summary": on, "action_items": on, "resolution": on, "smart_tracker_confirmation": on,
    });
    let (st, body) = send(
        s,
        reqwest::Method::PUT,
        key,
        "/api/v1/settings/analysis",
        Some(json!({ "llm": features })),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["llm"], features);
}

/// Two smart trackers: the double confirms "Churn risk" and rejects "Billing".
async fn add_trackers(s: &TestServer, key: &str) {
    for tracker in [
        json!({"kind": "smart", "name": "Churn risk", "category": "objection", "active": true,
               "examples": ["I want to cancel my subscription", "please close my account"]}),
        json!({"kind": "smart", "name": "Billing", "category": "pricing", "active": true,
               "threshold": 0.35,
               "examples": ["I was charged twice", "there is a wrong charge on my bill"]}),
    ] {
        let (st, body) = send(
            s,
            reqwest::Method::POST,
            key,
            "/api/v1/trackers",
            Some(tracker),
        )
        .await;
        assert_eq!(st, 201, "{body}");
    }
}

/// Uploads and processes the call; its id.
async fn processed_call(s: &TestServer, key: &str) -> String {
    let wav = std::fs::read(stereo_call(s.dir.path())).unwrap();
    let fields = [
        ("external_call_id", "llm-1"),
        ("direction", "inbound"),
        ("channel_layout", "stereo_agent_left"),
        ("duration_seconds", "8"),
        ("call_timestamp", "2026-11-20T10:00:00Z"),
    ];
    let (st, created) = s
        .upload(key, "call.wav", wav, &fields, Some(CALL_VTT))
        .await;
    assert_eq!(st, 202, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let call = s.wait_done(key, &id).await;
    assert_eq!(call["status"], "completed", "{call}");
    id
}

async fn analysis(s: &TestServer, key: &str, id: &str) -> Value {
    let (st, a) = s
        .get_json(key, &format!("/api/v1/calls/{id}/analysis"))
        .await;
    assert_eq!(st, 200, "{a}");
    a
}

/// Re-analyses the call and waits (bounded) for the new result; the result and how long it
/// took.
async fn reanalysed(s: &TestServer, key: &str, id: &str) -> (Value, Duration) {
    let before = analysis(s, key, id).await["analysed_at"].clone();
    // analysed_at has millisecond resolution: make sure the next one differs.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let started = Instant::now();
    let (st, body) = send(
        s,
        reqwest::Method::POST,
        key,
        &format!("/api/v1/calls/{id}/reanalyze"),
        None,
    )
    .await;
    assert_eq!(st, 202, "{body}");
    let deadline = started + Duration::from_secs(60);
    loop {
        let a = analysis(s, key, id).await;
        if a["analysed_at"] != before {
            return (a, started.elapsed());
        }
        assert!(Instant::now() < deadline, "call {id} not re-analysed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn degraded_reasons(a: &Value, part: &str) -> Vec<String> {
    a["degraded"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["part"] == part)
        .map(|d| d["reason"].as_str().unwrap().to_string())
        .collect()
}

/// The default analysers' results, each part marked as a fallback with `why` in its reason
/// (and the smart-tracker hits kept when there are trackers).
fn assert_fell_back(a: &Value, why: &str, with_trackers: bool) {
    let lm = &a["language_model"];
    for part in ["summary", "action_items", "resolution"] {
        assert_eq!(lm[part], "fallback", "{part}: {lm}");
        let reasons = degraded_reasons(a, &format!("llm_{part}"));
        assert_eq!(reasons.len(), 1, "{part}: {}", a["degraded"]);
        assert!(
            reasons[0].contains(why) && reasons[0].contains("instead"),
            "{part}: {reasons:?} should say {why:?}"
        );
    }
    assert_eq!(a["summary"]["method"], "extractive", "{}", a["summary"]);
    assert_eq!(a["summary"]["abstractive"], Value::Null);
    assert!(
        !a["summary"]["reason_for_call"]
            .as_str()
            .unwrap_or_default()
            .starts_with("LLM"),
        "{}",
        a["summary"]
    );
    assert_eq!(a["resolution"]["source"], "rules", "{}", a["resolution"]);
    for item in a["action_items"].as_array().unwrap() {
        assert_ne!(item["trigger"], "language_model", "{item}");
    }
    if with_trackers && minilm_installed() {
        assert_eq!(lm["smart_tracker_confirmation"], "fallback", "{lm}");
        assert_eq!(lm["rejected_smart_hits"].as_array().unwrap().len(), 0);
        // The embedding's decision is kept: both hits stay.
        assert!(!degraded_reasons(a, "llm_smart_tracker_confirmation").is_empty());
    }
}

#[tokio::test]
async fn the_model_fills_summary_action_items_resolution_and_confirms_smart_hits() {
    let double = ChatCompletionsServerDouble::start().await;
    let s = server_with_llm(Some(double.base_url())).await;
    let (_org, key) = s.org("a").await;
    add_trackers(&s, &key).await;
    set_llm_features(&s, &key, true).await;
    let id = processed_call(&s, &key).await;
    let a = analysis(&s, &key, &id).await;

    // What was sent: the configured model, two messages, the key, the redacted transcript.
    let requests = double.requests();
    assert!(requests.len() >= 3, "{requests:?}");
    for r in &requests {
        assert_eq!(r.path, "/v1/chat/completions");
        assert_eq!(r.authorization.as_deref(), Some("Bearer sk-test-key"));
        assert_eq!(r.body["model"], MODEL);
        assert_eq!(r.body["max_tokens"], 400);
        let messages = r.body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0]["role"], "system");
        assert_eq!(messages[1]["role"], "user");
        let text = r.body.to_string();
        assert!(
            !text.contains("4111") && !text.contains("1111 1111"),
            "a card number reached the model: {text}"
        );
    }
    let user_of = |needle: &str| {
        requests
            .iter()
            .find(|r| {
                r.body["messages"][0]["content"]
                    .as_str()
                    .unwrap()
                    .contains(needle)
            })
            .map(|r| {
                r.body["messages"][1]["content"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .unwrap_or_else(|| panic!("no {needle} request"))
    };
    let transcript = user_of("summarise");
    assert!(
        transcript.contains("customer: I was charged twice") && transcript.contains("[PCI]"),
        "{transcript}"
    );
    assert!(
        transcript.contains("#0 [00:00] agent: Hello"),
        "{transcript}"
    );
    assert!(user_of("action items").contains("[PCI]"));
    assert!(user_of("resolved").contains("[PCI]"));

    // What came back.
    let lm = &a["language_model"];
    assert_eq!(lm["model"], MODEL, "{lm}");
    assert_eq!(
        (&lm["summary"], &lm["action_items"], &lm["resolution"]),
        (&json!("llm"), &json!("llm"), &json!("llm")),
        "{lm}"
    );
    let summary = &a["summary"];
    assert_eq!(summary["method"], "abstractive");
    assert!(
        summary["abstractive"]
            .as_str()
            .unwrap()
            .starts_with("LLM: the customer was charged twice"),
        "{summary}"
    );
    assert_eq!(summary["reason_for_call"], "LLM: double charge");
    assert!(
        !summary["sentences"].as_array().unwrap().is_empty(),
        "extractive sentences stay"
    );
    let items = a["action_items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["trigger"], "language_model");
    assert_eq!(items[0]["owner"], "agent");
    assert_eq!(items[0]["turn"], 0);
    assert_eq!(items[0]["due"]["date"], "2026-11-27");
    assert_eq!(a["resolution"]["source"], "llm");
    assert_eq!(a["resolution"]["score"], 0.25);
    assert!(
        a["degraded"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| !d["part"].as_str().unwrap().starts_with("llm_")),
        "{}",
        a["degraded"]
    );

    // Smart trackers: the churn hit confirmed and kept, the billing hit rejected and moved.
    let confirmations: Vec<&RecordedRequest> = requests
        .iter()
        .filter(|r| {
            r.body["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("decide whether a sentence")
        })
        .collect();
    if minilm_installed() {
        assert_eq!(lm["smart_tracker_confirmation"], "llm", "{lm}");
        let hits = a["smart_trackers"]["hits"].as_array().unwrap();
        let rejected = lm["rejected_smart_hits"].as_array().unwrap();
        assert_eq!(confirmations.len(), hits.len() + rejected.len());
        assert!(
            !hits.is_empty() && !rejected.is_empty(),
            "{hits:?} {rejected:?}"
        );
        let churn_id = tracker_id(&s, &key, "Churn risk").await;
        let billing_id = tracker_id(&s, &key, "Billing").await;
        assert!(
            hits.iter().all(|h| h["tracker_id"] == churn_id.as_str()),
            "{hits:?}"
        );
        assert!(
            rejected
                .iter()
                .all(|h| h["tracker_id"] == billing_id.as_str()),
            "{rejected:?}"
        );
        for c in &confirmations {
            let user = c.body["messages"][1]["content"].as_str().unwrap();
            assert!(
                user.contains("Sentence: ") && !user.contains("4111"),
                "{user}"
            );
        }
    } else {
        eprintln!("MiniLM not installed here: no smart hits to confirm");
        assert_eq!(confirmations.len(), 0);
        assert_eq!(lm["smart_tracker_confirmation"], "off");
    }
}

async fn tracker_id(s: &TestServer, key: &str, name: &str) -> String {
    let (_, list) = s.get_json(key, "/api/v1/trackers").await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn every_model_failure_falls_back_to_the_default_analysers() {
    let double = ChatCompletionsServerDouble::start().await;
    let s = server_with_llm(Some(double.base_url())).await;
    let (_org, key) = s.org("a").await;
    add_trackers(&s, &key).await;
    set_llm_features(&s, &key, true).await;
    let id = processed_call(&s, &key).await;

    for (behaviour, why) in [
        (Behaviour::ServerError, "HTTP 500: model crashed"),
        (Behaviour::GarbageJson, "not JSON"),
        (Behaviour::WrongShape, "expected shape"),
        (Behaviour::Oversize, "larger than 262144 bytes"),
        (Behaviour::Slow, "did not answer within"),
    ] {
        double.set(behaviour);
        double.clear();
        let (a, took) = reanalysed(&s, &key, &id).await;
        eprintln!(
            "{behaviour:?}: re-analysed in {took:?}, {} requests",
            double.requests().len()
        );
        // The call is analysed all the same, with the default results.
        assert_eq!(a["version"], 1);
        assert!(a["stats"]["per_role"].as_array().unwrap().len() >= 2);
        if behaviour == Behaviour::WrongShape {
            // The summary parser takes prose, so a JSON object without "summary" is a shape
            // error; the other parts fail the same way.
            assert_fell_back(&a, "shape", true);
        } else if behaviour == Behaviour::Slow {
            // The first request timed out; the rest were not sent (bounded time per call).
            assert_eq!(double.requests().len(), 1, "{:?}", double.requests());
            let first = if minilm_installed() {
                "llm_smart_tracker_confirmation"
            } else {
                "llm_summary"
            };
            assert!(
                degraded_reasons(&a, first)[0].contains("did not answer within 1000 ms"),
                "{}",
                a["degraded"]
            );
            assert_fell_back(&a, "language model", true);
            assert!(took < Duration::from_secs(15), "{took:?}");
        } else {
            assert!(double.requests().len() >= 3);
            assert_fell_back(&a, why, true);
        }
        let call = s.wait_done(&key, &id).await;
        assert_eq!(call["status"], "completed", "{call}");
    }

    // And back to a working model: the same call gets the model's parts again.
    double.set(Behaviour::Answer);
    let (a, _) = reanalysed(&s, &key, &id).await;
    assert_eq!(
        a["language_model"]["summary"], "llm",
        "{}",
        a["language_model"]
    );
    assert_eq!(a["resolution"]["source"], "llm");
}

#[tokio::test]
async fn an_unreachable_endpoint_falls_back() {
    // A port nothing listens on: bound, then released.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let s = server_with_llm(Some(format!("http://{closed}/v1"))).await;
    let (_org, key) = s.org("a").await;
    set_llm_features(&s, &key, true).await;
    let id = processed_call(&s, &key).await;
    let a = analysis(&s, &key, &id).await;
    assert_fell_back(&a, "unreachable", false);
    // The first failure says why; the later parts were not even tried.
    let summary = &degraded_reasons(&a, "llm_summary")[0];
    assert!(summary.to_lowercase().contains("connect"), "{summary}");
    assert!(
        degraded_reasons(&a, "llm_resolution")[0].contains("not asked"),
        "{}",
        a["degraded"]
    );
}

#[tokio::test]
async fn nothing_is_sent_when_the_organization_switch_is_off() {
    let double = ChatCompletionsServerDouble::start().await;
    let s = server_with_llm(Some(double.base_url())).await;
    let (_org, key) = s.org("a").await;
    add_trackers(&s, &key).await;
    // Off by default.
    let (st, settings) = s.get_json(&key, "/api/v1/settings/analysis").await;
    assert_eq!(st, 200);
    assert_eq!(
        settings["llm"],
        json!({"summary": false, "action_items": false, "resolution": false, "smart_tracker_confirmation": false})
    );
    let id = processed_call(&s, &key).await;
    let a = analysis(&s, &key, &id).await;
    assert_eq!(double.requests().len(), 0, "{:?}", double.requests());
    let lm = &a["language_model"];
    for part in [
        "summary",
        "action_items",
        "resolution",
        "smart_tracker_confirmation",
    ] {
        assert_eq!(lm[part], "off", "{lm}");
    }
    assert_eq!(lm["model"], Value::Null);
    assert_eq!(a["summary"]["method"], "extractive");
    // The resolution score is there all the same, from the rules.
    assert_eq!(a["resolution"]["source"], "rules");
    assert!(a["resolution"]["score"].is_number(), "{}", a["resolution"]);

    // Switched on then off again: still nothing sent.
    set_llm_features(&s, &key, true).await;
    set_llm_features(&s, &key, false).await;
    reanalysed(&s, &key, &id).await;
    assert_eq!(double.requests().len(), 0);

    // A setting the server does not know is refused.
    let (st, body) = send(
        &s,
        reqwest::Method::PUT,
        &key,
        "/api/v1/settings/analysis",
        Some(json!({ "llm": { "summary": true, "poetry": true } })),
    )
    .await;
    assert_eq!(st, 422, "{body}");
}

#[tokio::test]
async fn features_on_without_a_server_model_say_so() {
    let s = server_with_llm(None).await;
    let (_org, key) = s.org("a").await;
    set_llm_features(&s, &key, true).await;
    let id = processed_call(&s, &key).await;
    let a = analysis(&s, &key, &id).await;
    assert_fell_back(&a, "no language model is configured on the server", false);
    assert_eq!(a["language_model"]["smart_tracker_confirmation"], "off");
    assert_eq!(a["language_model"]["model"], Value::Null);
}
