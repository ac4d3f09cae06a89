//! Scripted two-voice calls, end to end through the real server: two espeak-ng voices on the
//! two channels of a stereo recording, a recorder-double standing in for the speech model,
//! the upload processed by the real pipeline (decode, resample, VAD, chunking) and the
//! analysis read back over HTTP. Every insight is checked with its time against what the
//! script says it should be.
//!
//! Tolerance for times: ±600 ms (`TOL_MS`). Turn times come from the pipeline's VAD cut and
//! the double's alignment inside each chunk; word times from the double spread a phrase's
//! time over its words, so a keyword is placed within its phrase, not to the millisecond.

mod common;
mod scripted_call;

use std::sync::Arc;
use std::time::{Duration, Instant};

use callscope_api::http::state::AsrState;
use chrono::{DateTime, Utc};
use scripted_call::expect::{self, says};
use scripted_call::recognizer::ScriptRecognizerDouble;
use scripted_call::script::{self, LineSpec, PlacedLine, RenderedCall, Who, line, plain};
use serde_json::{Value, json};

const TOL_MS: i64 = 600;
/// The stats' defaults (see `analysis::stats::StatsConfig`).
const NON_TALK_MIN_MS: u64 = 3_000;
const INTERRUPTION_MIN_OVERLAP_MS: u64 = 300;
/// The default rule pack's disclosure window and one of its phrases.
const DISCLOSURE_WINDOW_MS: u64 = 15_000;
const DISCLOSURE: &str = "may be recorded";

const COMPETITORS: &[&str] = &["verizon", "comcast"];
const OBJECTIONS: &[&str] = &["too expensive", "cheaper"];
const PRICING: &[&str] = &["price", "discount"];
const CARD: &str = "4111 1111 1111 1111";
const CVV: &str = "737";
const CALL_TIMESTAMP: &str = "2026-03-02T10:00:00Z";

/// The complaint call: disclosure at the start, a complaint with an objection and two
/// competitors, the customer talking over the agent, a card number and its security code read
/// out, five seconds of silence, a promise with a due date, a closing.
fn complaint_call() -> Vec<LineSpec> {
    let mut silence_then = plain(
        Who::Agent,
        5_000,
        &[
            "Thank you for waiting.",
            "I have processed your refund.",
            "I will send you the refund confirmation by email tomorrow.",
        ],
    );
    silence_then.not_before_ms = 0;
    vec![
        plain(
            Who::Agent,
            500,
            &[
                "Thank you for calling Acme support.",
                "This call may be recorded for quality purposes.",
                "My name is Alice, how can I help you today?",
            ],
        ),
        plain(
            Who::Customer,
            600,
            &[
                "Hi, I want to make a complaint about my bill.",
                "It is too expensive,",
                "and I am really unhappy with the service.",
            ],
        ),
        plain(
            Who::Agent,
            600,
            &[
                "I am sorry to hear that.",
                "Let me see what discount I can offer you.",
            ],
        ),
        plain(
            Who::Customer,
            700,
            &["Honestly, Verizon offered me a better deal last week."],
        ),
        plain(
            Who::Agent,
            600,
            &[
                "I understand.",
                "We have a loyalty plan with unlimited data,",
                "and international calls for the same monthly price,",
                "and it also comes with a free router.",
            ],
        ),
        // Talks over the end of the agent's pitch.
        plain(
            Who::Customer,
            -1_500,
            &["Look, Comcast is cheaper, I just want a refund."],
        ),
        plain(
            Who::Agent,
            700,
            &[
                "Of course.",
                "To process the refund, can you read me the card number?",
            ],
        ),
        line(
            Who::Customer,
            600,
            &[
                ("Sure, it is", "Sure, it is"),
                ("4 1 1 1, 1 1 1 1,", "4111 1111"),
                ("1 1 1 1, 1 1 1 1.", "1111 1111."),
            ],
        ),
        plain(
            Who::Agent,
            600,
            &["And the security code on the back of the card?"],
        ),
        line(Who::Customer, 600, &[("It is 7 3 7.", "It is 737.")]),
        plain(Who::Agent, 600, &["Thank you, one moment please."]),
        silence_then,
        plain(Who::Customer, 600, &["Okay, thank you.", "Goodbye."]),
        plain(
            Who::Agent,
            600,
            &["Thank you for calling Acme, have a great day."],
        ),
    ]
}

/// A short call whose agent gives the recording disclosure only after 15 s.
fn late_disclosure_call() -> Vec<LineSpec> {
    let mut late = plain(
        Who::Agent,
        700,
        &["By the way, this call may be recorded for quality purposes."],
    );
    late.not_before_ms = 16_500;
    vec![
        plain(
            Who::Agent,
            500,
            &["Hello, this is Bob from Acme billing.", "How can I help?"],
        ),
        plain(
            Who::Customer,
            600,
            &["I would like to know the balance on my account."],
        ),
        plain(Who::Agent, 600, &["One moment while I look it up."]),
        late,
        plain(Who::Agent, 600, &["Your balance is twenty dollars."]),
        plain(Who::Customer, 600, &["Thanks, goodbye."]),
    ]
}

struct Api {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Api {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-api-key", &self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get_json(&self, path: &str) -> Value {
        let (st, v) = self.send(reqwest::Method::GET, path, None).await;
        assert_eq!(st, 200, "GET {path}: {v}");
        v
    }

    async fn get_text(&self, path: &str) -> String {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("x-api-key", &self.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.text().await.unwrap()
    }

    /// Uploads a stereo call (agent left) and waits until it is processed (bounded: 90 s).
    async fn process(&self, wav: &std::path::Path, external_id: &str) -> Value {
        let form = reqwest::multipart::Form::new()
            .text("channel_layout", "stereo_agent_left")
            .text("external_call_id", external_id.to_string())
            .text("direction", "inbound")
            .text("language", "en")
            .text("call_timestamp", CALL_TIMESTAMP)
            .part(
                "file",
                reqwest::multipart::Part::bytes(std::fs::read(wav).unwrap())
                    .file_name(format!("{external_id}.wav")),
            );
        let r = self
            .http
            .post(format!("{}/api/v1/recordings", self.base))
            .header("x-api-key", &self.key)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let c = self.get_json(&format!("/api/v1/calls/{id}")).await;
            let status = c["status"].as_str().unwrap_or_default();
            if !["received", "transcribing", "analyzing"].contains(&status) {
                assert_eq!(status, "completed", "{c}");
                assert_eq!(c["asr_outcome"], "transcribed", "{c}");
                return c;
            }
            assert!(Instant::now() < deadline, "call {id} still {status}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn ms(v: &Value) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("not a time in ms: {v}"))
}

/// `actual` within ±TOL_MS of `expected`.
fn near(actual: &Value, expected: u64, what: &str) {
    let a = ms(actual);
    assert!(
        (a - expected as i64).abs() <= TOL_MS,
        "{what}: {a} ms, expected {expected} ± {TOL_MS} ms"
    );
}

/// A span `[start, end]` inside `[lo − TOL, hi + TOL]`.
fn within(item: &Value, lo: u64, hi: u64, what: &str) {
    let (s, e) = (ms(&item["start_ms"]), ms(&item["end_ms"]));
    assert!(
        s >= lo as i64 - TOL_MS && e <= hi as i64 + TOL_MS && s <= e,
        "{what}: [{s}, {e}] ms, expected inside [{lo}, {hi}] ± {TOL_MS} ms: {item}"
    );
}

/// Every string anywhere in a JSON value.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// The stored segments match the script line by line: role, speaker, channel, times, text
/// (the text with `[PCI]` where a card number or CVV was). Returns segment index → line.
fn check_segments<'a>(call: &Value, lines: &'a [PlacedLine]) -> Vec<&'a PlacedLine> {
    let segs = call["segments"].as_array().unwrap();
    assert_eq!(
        segs.len(),
        lines.len(),
        "one segment per scripted line: {segs:#?}"
    );
    let mut by_segment = Vec::new();
    for seg in segs {
        let l = lines
            .iter()
            .filter(|l| l.who.role() == seg["speaker_role"])
            .min_by_key(|l| (ms(&seg["start_ms"]) - l.start_ms as i64).abs())
            .unwrap_or_else(|| panic!("no scripted line for {seg}"));
        near(
            &seg["start_ms"],
            l.start_ms,
            &format!("start of {:?}", l.text()),
        );
        near(&seg["end_ms"], l.end_ms, &format!("end of {:?}", l.text()));
        assert_eq!(seg["speaker_label"], l.who.label(), "{seg}");
        assert_eq!(seg["channel"], l.who.channel(), "{seg}");
        let text = seg["text"].as_str().unwrap();
        if l.text().contains(CVV) || l.text().contains(&CARD[..4]) {
            assert!(text.contains("[PCI]"), "{text:?} for {:?}", l.text());
        } else {
            assert_eq!(text, l.text());
        }
        by_segment.push(l);
    }
    by_segment
}

/// Non-talk instances and interruptions as the script makes them, talk time per role.
fn check_stats(a: &Value, call: &RenderedCall) {
    let stats = &a["stats"];
    let expected = expect::non_talk(&call.lines, call.duration_ms, NON_TALK_MIN_MS);
    let actual = stats["non_talk"].as_array().unwrap();
    assert_eq!(
        actual.len(),
        expected.len(),
        "non-talk {actual:?} vs {expected:?}"
    );
    for (got, &(s, e)) in actual.iter().zip(&expected) {
        near(&got["start_ms"], s, "non-talk start");
        near(&got["end_ms"], e, "non-talk end");
        let dur = ms(&got["end_ms"]) - ms(&got["start_ms"]);
        assert!(
            (dur - (e - s) as i64).abs() <= TOL_MS,
            "non-talk of {dur} ms, expected {} ms",
            e - s
        );
    }

    let expected = expect::interruptions(&call.lines, INTERRUPTION_MIN_OVERLAP_MS);
    let actual = stats["interruptions"].as_array().unwrap();
    assert_eq!(
        actual.len(),
        expected.len(),
        "interruptions {actual:#?} vs {expected:?}"
    );
    for (got, exp) in actual.iter().zip(&expected) {
        assert_eq!(got["by"], exp.by.role(), "{got}");
        assert_eq!(got["interrupted"], exp.interrupted.role(), "{got}");
        near(&got["start_ms"], exp.start_ms, "interruption start");
        near(&got["end_ms"], exp.end_ms, "interruption end");
    }
    for exp in &expected {
        let summary = stats["interruption_summary"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["by"] == exp.by.role() && s["interrupted"] == exp.interrupted.role())
            .unwrap_or_else(|| panic!("no summary for {exp:?}: {stats}"));
        let n = expected
            .iter()
            .filter(|e| e.by == exp.by && e.interrupted == exp.interrupted)
            .count();
        assert_eq!(summary["count"], n);
    }

    let agent = expect::talk_ms(&call.lines, Who::Agent) as f64;
    let customer = expect::talk_ms(&call.lines, Who::Customer) as f64;
    let role = |r: &str| {
        stats["per_role"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["role"] == r)
            .unwrap_or_else(|| panic!("no {r} in {stats}"))
            .clone()
    };
    let share = role("agent")["talk_share"].as_f64().unwrap();
    let expected_share = agent / (agent + customer);
    assert!(
        (share - expected_share).abs() <= 0.05,
        "agent talk share {share:.3}, scripted {expected_share:.3}"
    );
    for (r, scripted) in [("agent", agent), ("customer", customer)] {
        let talk = role(r)["talk_ms"].as_f64().unwrap();
        assert!(
            (talk - scripted).abs() <= scripted * 0.1 + 300.0,
            "{r} talked {talk} ms, scripted {scripted} ms"
        );
    }
}

/// The disclosure rule of the default pack flags the call exactly when the script's agent
/// does not say the disclosure inside the window.
fn check_disclosure(a: &Value, lines: &[PlacedLine]) {
    let said_in_time = lines.iter().any(|l| {
        l.who == Who::Agent
            && l.phrases
                .iter()
                .any(|p| says(p.text, DISCLOSURE) && p.end_ms <= DISCLOSURE_WINDOW_MS)
    });
    let flags: Vec<&Value> = a["compliance"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule_id"] == "recording-disclosure")
        .collect();
    if said_in_time {
        assert!(flags.is_empty(), "disclosure was said in time: {flags:?}");
    } else {
        assert_eq!(flags.len(), 1, "{}", a["compliance"]);
        let f = flags[0];
        assert_eq!(f["role"], "agent");
        assert_eq!(f["start_ms"], 0);
        assert_eq!(f["end_ms"], DISCLOSURE_WINDOW_MS);
        assert_eq!(f["severity"], "high");
        assert!(f["rationale"].as_str().unwrap().contains("15 s"), "{f}");
    }
}

/// Each tracker's hits: one per scripted occurrence, by the right speaker, inside the phrase
/// that says it.
fn check_tracker(a: &Value, lines: &[PlacedLine], tracker_id: &str, keywords: &[&str]) {
    let expected = expect::tracker_hits(lines, keywords);
    let actual: Vec<&Value> = a["tracker_hits"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["tracker_id"] == tracker_id)
        .collect();
    assert_eq!(
        actual.len(),
        expected.len(),
        "hits of {keywords:?}: {actual:#?}, expected {expected:#?}"
    );
    for exp in &expected {
        let hit = actual
            .iter()
            .find(|h| {
                h["matched"]
                    .as_str()
                    .unwrap()
                    .eq_ignore_ascii_case(exp.keyword)
                    && h["role"] == exp.who.role()
                    && (ms(&h["start_ms"]) - exp.phrase.start_ms as i64) > -TOL_MS
                    && (ms(&h["end_ms"]) - exp.phrase.end_ms as i64) < TOL_MS
            })
            .unwrap_or_else(|| panic!("no hit for {exp:?} in {actual:#?}"));
        assert_eq!(hit["speaker"], exp.who.label());
        assert_eq!(hit["time_source"], "word_timings", "{hit}");
        within(
            hit,
            exp.phrase.start_ms,
            exp.phrase.end_ms,
            &format!("hit {:?}", exp.keyword),
        );
    }
}

async fn create_tracker(api: &Api, name: &str, category: &str, phrases: &[&str]) -> String {
    let (st, t) = api
        .send(
            reqwest::Method::POST,
            "/api/v1/trackers",
            Some(json!({
                "kind": "keyword", "name": name, "category": category,
                "phrases": phrases, "active": true,
            })),
        )
        .await;
    assert_eq!(st, 201, "{t}");
    t["id"].as_str().unwrap().to_string()
}

/// Both scripted calls rendered, uploaded to a real server with the recogniser double as its
/// engine and the trackers configured, and processed.
struct Scenario {
    _dir: tempfile::TempDir,
    running: callscope_api::server::Running,
    api: Api,
    double: Arc<ScriptRecognizerDouble>,
    complaint: RenderedCall,
    late: RenderedCall,
    call: Value,
    late_call: Value,
    /// Competitors, price objection, pricing.
    trackers: [String; 3],
}

async fn scenario() -> Scenario {
    let dir = tempfile::tempdir().unwrap();
    let complaint = script::render(dir.path(), "complaint", &complaint_call(), 800);
    let late = script::render(dir.path(), "late", &late_disclosure_call(), 800);
    assert!(expect::luhn_valid(CARD), "the script's card must pass Luhn");
    let complaint_wav = script::write_wav(dir.path(), "complaint", &complaint, 16_000);
    // The second call comes at a PBX's 8 kHz: the double still has only its 16 kHz lines.
    let late_wav = script::write_wav(dir.path(), "late", &late, 8_000);

    let double = Arc::new(ScriptRecognizerDouble::new(
        complaint.lines.iter().chain(&late.lines),
    ));
    let config = common::test_config(dir.path());
    let pool = callscope_api::server::open_database(&config).await.unwrap();
    let running = callscope_api::server::start_with(
        pool.clone(),
        config,
        AsrState::Loaded {
            engine: double.clone(),
        },
    )
    .await
    .unwrap();
    let org = callscope_api::store::orgs::create_org(&pool, "scripted")
        .await
        .unwrap();
    let api = Api {
        base: format!("http://{}", running.addr),
        key: callscope_api::auth::create_api_key(&pool, &org, "k", None)
            .await
            .unwrap()
            .key,
        http: reqwest::Client::new(),
    };
    let competitors = create_tracker(&api, "Competitors", "competitor", COMPETITORS).await;
    let objections = create_tracker(&api, "Price objection", "objection", OBJECTIONS).await;
    let pricing = create_tracker(&api, "Pricing", "pricing", PRICING).await;

    let started = Instant::now();
    let call = api.process(&complaint_wav, "complaint").await;
    let late_call = api.process(&late_wav, "late").await;
    eprintln!("both calls processed in {:?}", started.elapsed());
    Scenario {
        _dir: dir,
        running,
        api,
        double,
        complaint,
        late,
        call,
        late_call,
        trackers: [competitors, objections, pricing],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_calls_carry_every_insight_at_its_time() {
    let Scenario {
        _dir,
        running,
        api,
        double,
        complaint,
        late,
        call,
        late_call,
        trackers: [competitors, objections, pricing],
    } = scenario().await;
    let reports = double.reports();
    let lowest = reports
        .iter()
        .flat_map(|r| r.found.iter().map(|f| f.2))
        .fold(1.0f32, f32::min);
    eprintln!(
        "the double was given {} chunks; lowest waveform correlation of a line found: {lowest:.3}",
        reports.len()
    );
    for r in reports {
        assert!(
            !r.found.is_empty() && r.unexplained_ms <= 200,
            "the double could not explain a chunk: {r:?}\nall: {:#?}",
            double.reports()
        );
    }

    // ---- The complaint call ----
    let lines = &complaint.lines;
    let id = call["id"].as_str().unwrap();
    check_segments(&call, lines);
    let a = api.get_json(&format!("/api/v1/calls/{id}/analysis")).await;
    check_stats(&a, &complaint);
    check_disclosure(&a, lines);
    check_tracker(&a, lines, &competitors, COMPETITORS);
    check_tracker(&a, lines, &objections, OBJECTIONS);
    check_tracker(&a, lines, &pricing, PRICING);

    // Card number and security code: [PCI] in the stored transcript, every download and the
    // analysis; not one of their digit groups anywhere.
    let card_phrase = expect::phrase_with(lines, Who::Customer, &CARD[..4]);
    let card_line = expect::line_of(lines, card_phrase);
    let cvv_line = expect::line_of(lines, expect::phrase_with(lines, Who::Customer, CVV));
    let mut forbidden: Vec<&str> = CARD.split(' ').collect();
    forbidden.push(CVV);
    let transcript_json = api
        .get_json(&format!("/api/v1/calls/{id}/transcript.json"))
        .await;
    let call_again = api.get_json(&format!("/api/v1/calls/{id}")).await;
    let mut texts = Vec::new();
    for v in [&a, &transcript_json, &call_again] {
        strings(v, &mut texts);
    }
    for ext in ["vtt", "txt", "srt"] {
        let t = api
            .get_text(&format!("/api/v1/calls/{id}/transcript.{ext}"))
            .await;
        assert!(t.contains("[PCI]"), "transcript.{ext}: {t}");
        texts.push(t);
    }
    // Ids and hashes (UUIDs, the recording's SHA-256) are hex and may contain "737" by chance.
    let generated = |t: &str| t.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    for t in texts.iter().filter(|t| !generated(t)) {
        for f in &forbidden {
            assert!(!t.contains(f), "{f:?} leaked in {t:?}");
        }
    }
    let redactions = a["redactions"].as_array().unwrap();
    let kinds: Vec<&str> = redactions
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"card_number"), "{redactions:?}");
    assert!(kinds.contains(&"cvv"), "{redactions:?}");
    for r in redactions {
        let l = if r["kind"] == "cvv" {
            cvv_line
        } else {
            card_line
        };
        within(r, l.start_ms, l.end_ms, &format!("redaction {}", r["kind"]));
    }

    // The customer's complaint is negative, and so is the customer in its quarter.
    let complaint_line = expect::line_of(
        lines,
        expect::phrase_with(lines, Who::Customer, "too expensive"),
    );
    let turns = a["sentiment"]["turns"].as_array().unwrap();
    let turn = turns
        .iter()
        .find(|t| {
            t["role"] == "customer"
                && (ms(&t["start_ms"]) - complaint_line.start_ms as i64).abs() <= TOL_MS
        })
        .unwrap_or_else(|| panic!("no sentiment for the complaint: {turns:#?}"));
    assert_eq!(turn["sentiment"]["label"], "negative", "{turn}");
    let mid = (complaint_line.start_ms + complaint_line.end_ms) / 2;
    let quarter = a["sentiment"]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| ms(&q["span"]["start_ms"]) as u64 <= mid && mid < ms(&q["span"]["end_ms"]) as u64)
        .unwrap_or_else(|| panic!("no quarter holds {mid} ms: {}", a["sentiment"]["timeline"]));
    let customer_q = quarter["per_role"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == "customer")
        .unwrap_or_else(|| panic!("{quarter}"));
    assert!(
        customer_q["sentiment"]["score"].as_f64().unwrap() < 0.0,
        "customer in the complaint's quarter: {quarter}"
    );

    // The agent's promise: an action item for the agent, due the day after the call.
    let promise = expect::phrase_with(lines, Who::Agent, "I will send you");
    let items = a["action_items"].as_array().unwrap();
    let item = items
        .iter()
        .find(|i| {
            i["text"]
                .as_str()
                .unwrap()
                .contains(promise.text.trim_end_matches('.'))
        })
        .unwrap_or_else(|| panic!("no action item for {:?}: {items:#?}", promise.text));
    assert_eq!(item["owner"], "agent");
    assert_eq!(item["said_by"], "agent");
    within(item, promise.start_ms, promise.end_ms, "the promise");
    let said_at = CALL_TIMESTAMP.parse::<DateTime<Utc>>().unwrap()
        + chrono::Duration::milliseconds(promise.start_ms as i64);
    let tomorrow = said_at.date_naive() + chrono::Days::new(1);
    assert_eq!(item["due"]["date"], tomorrow.to_string(), "{item}");

    // The customer's own word for the call counts for the complaint type (that it wins is
    // `complaint_call_is_classified_as_complaint`); the summary says why.
    let complaint_score = a["call_type"]["scores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["call_type"] == "complaint")
        .map_or(0.0, |s| s["score"].as_f64().unwrap());
    assert!(complaint_score > 0.0, "{}", a["call_type"]);
    let reason = a["summary"]["reason_for_call"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason for the call: {}", a["summary"]));
    let issue = expect::phrase_with(lines, Who::Customer, "complaint about my bill");
    assert!(
        says(reason, "complaint about my bill") || issue.text.contains(reason.trim()),
        "reason for the call {reason:?}, the issue was {:?}",
        issue.text
    );

    // ---- The late-disclosure call (8 kHz) ----
    let id = late_call["id"].as_str().unwrap();
    check_segments(&late_call, &late.lines);
    let a = api.get_json(&format!("/api/v1/calls/{id}/analysis")).await;
    check_stats(&a, &late);
    check_disclosure(&a, &late.lines);
    assert!(
        a["compliance"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule_id"] == "recording-disclosure"),
        "the late call must be flagged (the script says the disclosure after {DISCLOSURE_WINDOW_MS} ms)"
    );

    running.shutdown().await;
}

/// The customer opens with "I want to make a complaint about my bill", is negative, wants a
/// refund: a complaint, although the call also names prices and rivals (pricing, competitor
/// and objection trackers fire) and the agent offers a discount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complaint_call_is_classified_as_complaint() {
    let s = scenario().await;
    let id = s.call["id"].as_str().unwrap();
    let a = s
        .api
        .get_json(&format!("/api/v1/calls/{id}/analysis"))
        .await;
    s.running.shutdown().await;
    assert_eq!(
        a["call_type"]["call_type"], "complaint",
        "{}",
        a["call_type"]
    );
}
