use std::cell::RefCell;
use std::collections::VecDeque;

use chrono::{NaiveDate, TimeZone};

use super::*;
use crate::actions::{ActionKind, ActionOptions, DateOrder, extract_action_items};
use crate::summary::{SummaryOptions, extractive_summary};
use crate::types::Role;

/// Test double for a language model (none can run here): answers from a script, in order,
/// and records the prompts it was given.
struct ScriptedLanguageModelDouble {
    answers: RefCell<VecDeque<Result<String, LlmError>>>,
    prompts: RefCell<Vec<(String, String)>>,
}

impl ScriptedLanguageModelDouble {
    fn new(answers: Vec<Result<&str, LlmError>>) -> Self {
        ScriptedLanguageModelDouble {
            answers: RefCell::new(answers.into_iter().map(|a| a.map(str::to_string)).collect()),
            prompts: RefCell::new(Vec::new()),
        }
    }

    fn answering(answer: &str) -> Self {
        Self::new(vec![Ok(answer)])
    }

    fn calls(&self) -> usize {
        self.prompts.borrow().len()
    }
}

impl LanguageModel for ScriptedLanguageModelDouble {
    fn complete(&self, system: &str, user: &str) -> Result<String, LlmError> {
        self.prompts.borrow_mut().push((system.into(), user.into()));
        self.answers
            .borrow_mut()
            .pop_front()
            .unwrap_or_else(|| Err(LlmError::Other("script exhausted".into())))
    }
}

fn turn(index: usize, role: Role, text: &str) -> Turn {
    Turn {
        index,
        role,
        speaker: role.as_str().into(),
        start_ms: index as u64 * 4_000,
        end_ms: index as u64 * 4_000 + 3_500,
        text: text.into(),
        words: vec![],
    }
}

fn call() -> Vec<Turn> {
    vec![
        turn(0, Role::Agent, "Acme support, how can I help?"),
        turn(
            1,
            Role::Customer,
            "I was charged twice for my subscription this month.",
        ),
        turn(
            2,
            Role::Agent,
            "I see the duplicate charge. I'll refund it today and email you a receipt.",
        ),
        turn(3, Role::Customer, "Can you also send me the invoice?"),
    ]
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 18, 9, 0, 0)
        .single()
        .unwrap()
}

fn extractive() -> Summary {
    extractive_summary(&call(), &[], &SummaryOptions::default())
}

// ---- summary ----

#[test]
fn summary_from_json_answer() {
    let model = ScriptedLanguageModelDouble::answering(
        "```json\n{\"summary\": \"The customer was double charged; the agent refunded it.\", \
         \"reason_for_call\": \"Double charge\", \"resolution\": \"Refund issued today\"}\n```",
    );
    let out = abstractive_summary(Some(&model), &call(), extractive());
    assert_eq!(out.source, ResultSource::LanguageModel);
    assert_eq!(out.fallback_reason, None);
    assert_eq!(out.value.method, SummaryMethod::Abstractive);
    assert_eq!(
        out.value.abstractive.as_deref(),
        Some("The customer was double charged; the agent refunded it.")
    );
    assert_eq!(out.value.reason_for_call.as_deref(), Some("Double charge"));
    assert_eq!(out.value.resolution.as_deref(), Some("Refund issued today"));
    assert_eq!(
        out.value.sentences,
        extractive().sentences,
        "extractive sentences kept"
    );
    let prompts = model.prompts.borrow();
    assert!(
        prompts[0]
            .1
            .contains("#1 [00:04] customer: I was charged twice")
    );
}

#[test]
fn summary_from_prose_keeps_extractive_one_liners() {
    let model =
        ScriptedLanguageModelDouble::answering("Summary: Customer double charged, refunded.");
    let out = abstractive_summary(Some(&model), &call(), extractive());
    assert_eq!(
        out.value.abstractive.as_deref(),
        Some("Customer double charged, refunded.")
    );
    assert_eq!(out.value.reason_for_call, extractive().reason_for_call);
}

#[test]
fn summary_falls_back_on_error_timeout_and_junk() {
    let cases: Vec<(Result<&str, LlmError>, &str)> = vec![
        (
            Err(LlmError::Timeout { after_ms: 20_000 }),
            "did not answer within 20000 ms",
        ),
        (
            Err(LlmError::Http {
                status: 503,
                message: "overloaded".into(),
            }),
            "HTTP 503: overloaded",
        ),
        (Ok("   "), "answer is empty"),
        (Ok("{\"text\": \"wrong key\"}"), "no non-empty \"summary\""),
        (Ok("{\"summary\": "), "broken JSON"),
    ];
    for (answer, reason) in cases {
        let model = ScriptedLanguageModelDouble::new(vec![answer]);
        let out = abstractive_summary(Some(&model), &call(), extractive());
        assert_eq!(out.source, ResultSource::Default);
        assert_eq!(out.value, extractive());
        let got = out.fallback_reason.unwrap();
        assert!(got.contains(reason), "{got:?} should contain {reason:?}");
    }
}

#[test]
fn no_model_or_no_transcript_means_default_without_a_call() {
    let out = abstractive_summary(None, &call(), extractive());
    assert_eq!(
        out.fallback_reason.as_deref(),
        Some("no language model is configured")
    );
    let model = ScriptedLanguageModelDouble::answering("{\"summary\": \"x\"}");
    let empty = [turn(0, Role::Agent, "  ")];
    let out = abstractive_summary(
        Some(&model),
        &empty,
        extractive_summary(&empty, &[], &SummaryOptions::default()),
    );
    assert_eq!(
        out.fallback_reason.as_deref(),
        Some("the call has no transcript text")
    );
    assert_eq!(model.calls(), 0);
}

// ---- action items ----

fn default_items() -> Vec<ActionItem> {
    extract_action_items(
        &call(),
        &ActionOptions {
            call_start: start(),
            date_order: DateOrder::MonthFirst,
        },
    )
}

#[test]
fn action_items_from_json() {
    let model = ScriptedLanguageModelDouble::answering(
        r#"Here are the items:
        [{"owner": "agent", "kind": "commitment", "text": "I'll refund it today", "turn": 2,
          "due": "2026-11-18", "due_phrase": "today"},
         {"owner": "Agent", "kind": "request", "text": "send me the invoice", "turn": 3, "due": null}]"#,
    );
    let out = action_items_with_model(Some(&model), &call(), start(), default_items());
    assert_eq!(out.source, ResultSource::LanguageModel);
    let items = out.value;
    assert_eq!(items.len(), 2);
    assert_eq!(
        (items[0].owner, items[0].turn, items[0].said_by),
        (Role::Agent, 2, Role::Agent)
    );
    let due = items[0].due.as_ref().unwrap();
    assert_eq!(due.date, NaiveDate::from_ymd_opt(2026, 11, 18).unwrap());
    assert_eq!(due.phrase, "today");
    // The quoted words are found in the turn.
    let turn2 = &call()[2].text;
    assert_eq!(
        &turn2[items[0].text_start..items[0].text_end],
        "I'll refund it today"
    );
    assert_eq!(
        (items[1].kind, items[1].said_by),
        (ActionKind::Request, Role::Customer)
    );
    assert!(items[1].due.is_none());
    assert!(
        model.prompts.borrow()[0]
            .0
            .contains("2026-11-18 (Wednesday)")
    );
}

#[test]
fn action_items_object_form_turn_lookup_and_bad_items() {
    let model = ScriptedLanguageModelDouble::answering(
        r#"{"action_items": [
            {"owner": "agent", "text": "email you a receipt", "due": "18/11/2026"},
            {"owner": "manager", "text": "x", "turn": 2},
            {"owner": "agent", "text": "ghost", "turn": 99},
            {"owner": "customer", "text": ""}
        ]}"#,
    );
    let out = action_items_with_model(Some(&model), &call(), start(), default_items());
    assert_eq!(out.source, ResultSource::LanguageModel);
    assert_eq!(out.value.len(), 1, "{:?}", out.value);
    assert_eq!(out.value[0].turn, 2, "found by its text");
    assert!(
        out.value[0].due.is_none(),
        "a date not in YYYY-MM-DD is dropped"
    );
}

#[test]
fn empty_list_is_a_valid_answer() {
    let model = ScriptedLanguageModelDouble::answering("[]");
    let out = action_items_with_model(Some(&model), &call(), start(), default_items());
    assert_eq!(
        (out.source, out.value.len()),
        (ResultSource::LanguageModel, 0)
    );
}

#[test]
fn action_items_fall_back_on_malformed_answers() {
    for (answer, reason) in [
        ("I could not find any.", "no JSON value"),
        ("{\"items\": []}", "no \"action_items\" array"),
        (
            "[{\"owner\": \"boss\", \"text\": \"x\", \"turn\": 1}]",
            "none of the 1 items",
        ),
        ("", "answer is empty"),
    ] {
        let model = ScriptedLanguageModelDouble::answering(answer);
        let out = action_items_with_model(Some(&model), &call(), start(), default_items());
        assert_eq!(out.source, ResultSource::Default);
        assert_eq!(out.value, default_items());
        assert!(
            out.fallback_reason.as_deref().unwrap().contains(reason),
            "{answer}: {:?}",
            out.fallback_reason
        );
    }
}

// ---- resolution score ----

#[test]
fn resolution_scores_in_several_shapes() {
    for (answer, expected) in [
        ("{\"resolution_score\": 0.9}", 0.9f32),
        ("```\n{\"score\": 1}\n```", 1.0),
        ("0.25", 0.25),
        ("Resolution: 80%", 0.8),
        ("I'd say 7/10.", 0.7),
    ] {
        let model = ScriptedLanguageModelDouble::answering(answer);
        let out = resolution_score(Some(&model), &call(), Some(0.5));
        assert_eq!(out.source, ResultSource::LanguageModel, "{answer}");
        assert!(
            (out.value.unwrap() - expected).abs() < 1e-6,
            "{answer}: {:?}",
            out.value
        );
    }
}

#[test]
fn resolution_score_falls_back() {
    for (answer, reason) in [
        ("{\"resolution_score\": 4}", "not in [0, 1]"),
        ("{\"resolved\": true}", "no numeric"),
        ("It was resolved.", "no number"),
        ("150%", "not in [0, 1]"),
    ] {
        let model = ScriptedLanguageModelDouble::answering(answer);
        let out = resolution_score(Some(&model), &call(), Some(0.5));
        assert_eq!((out.source, out.value), (ResultSource::Default, Some(0.5)));
        assert!(
            out.fallback_reason.as_deref().unwrap().contains(reason),
            "{answer}: {:?}",
            out.fallback_reason
        );
    }
    let out = resolution_score(None, &call(), None);
    assert_eq!((out.value, out.source), (None, ResultSource::Default));
}

// ---- smart tracker confirmation ----

#[test]
fn confirmations() {
    for (answer, expected) in [
        ("{\"match\": true}", true),
        ("{\"match\": false}", false),
        ("{\"answer\": \"Yes\"}", true),
        ("Yes.", true),
        ("no - the sentence is about billing", false),
        ("```json\n{\"match\": true}\n```", true),
    ] {
        let model = ScriptedLanguageModelDouble::answering(answer);
        let out = confirm_smart_tracker(
            Some(&model),
            "Cancel",
            &["cancel my account".into()],
            "I want to leave",
            !expected,
        );
        assert_eq!(
            (out.value, out.source),
            (expected, ResultSource::LanguageModel),
            "{answer}"
        );
    }
}

#[test]
fn confirmation_falls_back_to_the_embedding_decision() {
    for (answer, reason) in [
        (Ok("Maybe, hard to say."), "neither yes nor no"),
        (Ok("{\"verdict\": 1}"), "no \"match\" field"),
        (
            Err(LlmError::Unavailable("connection refused".into())),
            "unreachable: connection refused",
        ),
    ] {
        let model = ScriptedLanguageModelDouble::new(vec![answer]);
        let out = confirm_smart_tracker(Some(&model), "Cancel", &[], "I want to leave", true);
        assert_eq!((out.value, out.source), (true, ResultSource::Default));
        assert!(
            out.fallback_reason.as_deref().unwrap().contains(reason),
            "{:?}",
            out.fallback_reason
        );
    }
    let model = ScriptedLanguageModelDouble::answering("yes");
    let out = confirm_smart_tracker(Some(&model), "Cancel", &[], " ", false);
    assert_eq!((out.value, model.calls()), (false, 0));
}

#[test]
fn serialises_snake_case() {
    let out = resolution_score(None, &call(), Some(0.4));
    let json = serde_json::to_value(&out).unwrap();
    assert_eq!(json["source"], "default");
    assert_eq!(json["fallback_reason"], "no language model is configured");
}

// ---- the language model in the whole analysis ----

mod in_the_report {
    use super::*;
    use crate::llm::{LanguageModelUse, LlmFeatures, MAX_SMART_CONFIRMATIONS, PartSource};
    use crate::report::{
        Analysers, AnalysisConfig, CallInput, Degraded, analyze_call,
        analyze_call_with_language_model,
    };
    use crate::smart::{SmartHit, SmartTracker, SmartTracking};
    use crate::types::TimeSpan;

    const ALL: LlmFeatures = LlmFeatures {
        summary: true,
        action_items: true,
        resolution: true,
        smart_tracker_confirmation: true,
    };

    /// The call with a card number said by the customer.
    fn call_with_card() -> Vec<Turn> {
        let mut turns = call();
        turns[1].text =
            "I was charged twice on card 4111 1111 1111 1111 for my subscription.".into();
        turns
    }

    fn input(turns: &[Turn]) -> CallInput<'_> {
        CallInput {
            turns,
            duration_ms: Some(16_000),
            started_at: start(),
            manual_call_type: None,
        }
    }

    fn run(
        turns: &[Turn],
        model: &dyn LanguageModel,
        features: LlmFeatures,
    ) -> crate::report::Analysed {
        analyze_call_with_language_model(
            &input(turns),
            &AnalysisConfig::default(),
            &Analysers::default(),
            Some(&LanguageModelUse {
                model: Some(model),
                model_name: Some("m1"),
                features,
            }),
        )
    }

    fn llm_notes(degraded: &[Degraded]) -> Vec<&Degraded> {
        degraded
            .iter()
            .filter(|d| d.part.starts_with("llm_"))
            .collect()
    }

    #[test]
    fn without_a_model_every_part_is_off_and_resolution_comes_from_the_rules() {
        let turns = call();
        let out = analyze_call(
            &input(&turns),
            &AnalysisConfig::default(),
            &Analysers::default(),
        );
        let a = out.analysis;
        assert_eq!(a.language_model, LanguageModelReport::default());
        assert_eq!(a.resolution.source, ResolutionSource::Rules);
        assert_eq!(
            a.resolution.score,
            crate::summary::resolution_estimate(&out.redacted_turns)
        );
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(
            json["language_model"],
            serde_json::json!({"model": null, "summary": "off", "action_items": "off",
                "resolution": "off", "smart_tracker_confirmation": "off", "rejected_smart_hits": []})
        );
        assert_eq!(json["resolution"]["source"], "rules");
        // Analyses stored before these fields existed still load.
        let mut old = json.clone();
        let obj = old.as_object_mut().unwrap();
        obj.remove("language_model");
        obj.remove("resolution");
        let back: crate::report::CallAnalysis = serde_json::from_value(old).unwrap();
        assert_eq!(back.language_model, LanguageModelReport::default());
        assert_eq!(back.resolution, Resolution::default());
    }

    #[test]
    fn the_model_writes_its_parts_from_the_redacted_turns() {
        let turns = call_with_card();
        let model = ScriptedLanguageModelDouble::new(vec![
            Ok(r#"{"summary": "Double charge refunded.", "reason_for_call": "Double charge"}"#),
            Ok(
                r#"[{"owner": "agent", "text": "I'll refund it today", "turn": 2, "due": "2026-11-18"}]"#,
            ),
            Ok(r#"{"resolution_score": 0.9}"#),
        ]);
        let a = run(&turns, &model, ALL).analysis;
        let prompts = model.prompts.borrow();
        assert_eq!(
            prompts.len(),
            3,
            "no smart hits to confirm without an encoder"
        );
        for (system, user) in prompts.iter() {
            assert!(!user.contains("4111") && !system.contains("4111"), "{user}");
            assert!(user.contains("[PCI]"), "{user}");
        }
        assert_eq!(a.language_model.model.as_deref(), Some("m1"));
        assert_eq!(a.language_model.summary, PartSource::Llm);
        assert_eq!(a.language_model.action_items, PartSource::Llm);
        assert_eq!(a.language_model.resolution, PartSource::Llm);
        assert_eq!(
            a.language_model.smart_tracker_confirmation,
            PartSource::Off,
            "smart trackers are unavailable: nothing to confirm"
        );
        assert_eq!(a.summary.method, SummaryMethod::Abstractive);
        assert_eq!(
            a.summary.abstractive.as_deref(),
            Some("Double charge refunded.")
        );
        assert_eq!(a.action_items.len(), 1);
        assert_eq!(a.action_items[0].trigger, "language_model");
        assert_eq!(
            a.resolution,
            Resolution {
                score: Some(0.9),
                source: ResolutionSource::Llm
            }
        );
        assert!(llm_notes(&a.degraded).is_empty(), "{:?}", a.degraded);
    }

    #[test]
    fn every_failure_falls_back_to_the_default_with_its_reason() {
        let turns = call_with_card();
        let plain = analyze_call(
            &input(&turns),
            &AnalysisConfig::default(),
            &Analysers::default(),
        )
        .analysis;
        let model = ScriptedLanguageModelDouble::new(vec![
            Err(LlmError::Timeout { after_ms: 1_000 }),
            Ok("I cannot help with that."),
            Ok("2.5"),
        ]);
        let a = run(&turns, &model, ALL).analysis;
        assert_eq!(a.summary, plain.summary);
        assert_eq!(a.action_items, plain.action_items);
        assert_eq!(a.resolution, plain.resolution);
        for part in [
            &a.language_model.summary,
            &a.language_model.action_items,
            &a.language_model.resolution,
        ] {
            assert_eq!(*part, PartSource::Fallback);
        }
        let notes = llm_notes(&a.degraded);
        let reasons: Vec<(&str, &str)> = notes
            .iter()
            .map(|d| (d.part.as_str(), d.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert_eq!(reasons[0].0, "llm_summary");
        assert!(
            reasons[0].1.contains("did not answer within 1000 ms"),
            "{reasons:?}"
        );
        assert!(
            reasons[0]
                .1
                .ends_with("the extractive summary was used instead")
        );
        assert_eq!(reasons[1].0, "llm_action_items");
        assert!(reasons[1].1.contains("no JSON value"), "{reasons:?}");
        assert_eq!(reasons[2].0, "llm_resolution");
        assert!(reasons[2].1.contains("not in [0, 1]"), "{reasons:?}");
    }

    #[test]
    fn only_the_parts_turned_on_are_asked() {
        let turns = call();
        let model = ScriptedLanguageModelDouble::answering("0.4");
        let only_resolution = LlmFeatures {
            resolution: true,
            ..LlmFeatures::default()
        };
        let a = run(&turns, &model, only_resolution).analysis;
        assert_eq!(model.calls(), 1);
        assert!(model.prompts.borrow()[0].0.contains("resolved"));
        assert_eq!(a.resolution.score, Some(0.4));
        assert_eq!(a.language_model.summary, PartSource::Off);
        assert_eq!(a.language_model.action_items, PartSource::Off);
        assert_eq!(a.summary.method, SummaryMethod::Extractive);
    }

    #[test]
    fn features_without_a_model_fall_back_and_say_so() {
        let turns = call();
        let a = analyze_call_with_language_model(
            &input(&turns),
            &AnalysisConfig::default(),
            &Analysers::default(),
            Some(&LanguageModelUse {
                model: None,
                model_name: None,
                features: ALL,
            }),
        )
        .analysis;
        assert_eq!(a.language_model.summary, PartSource::Fallback);
        assert_eq!(a.language_model.model, None);
        assert!(
            llm_notes(&a.degraded)
                .iter()
                .all(|d| d.reason.starts_with("no language model is configured")),
            "{:?}",
            a.degraded
        );
    }

    fn tracker(id: &str) -> SmartTracker {
        SmartTracker {
            id: id.into(),
            name: format!("Tracker {id}"),
            category: "custom".into(),
            active: true,
            examples: vec![format!("example of {id}")],
            threshold: 0.5,
            role: None,
        }
    }

    fn hit(tracker_id: &str, turn: usize) -> SmartHit {
        SmartHit {
            tracker_id: tracker_id.into(),
            turn,
            role: Role::Customer,
            speaker: "Customer".into(),
            example: format!("example of {tracker_id}"),
            matched_text: format!("sentence {turn}"),
            similarity: 0.6,
            time: TimeSpan {
                start_ms: 0,
                end_ms: 1_000,
            },
        }
    }

    #[test]
    fn smart_hits_are_confirmed_rejected_or_kept_on_failure_and_capped() {
        // 22 hits alternating trackers a and b; the model says yes to a, no to b, fails once.
        let hits: Vec<SmartHit> = (0..22)
            .map(|i| hit(if i % 2 == 0 { "a" } else { "b" }, i))
            .collect();
        let mut answers: Vec<Result<&str, LlmError>> = (0..MAX_SMART_CONFIRMATIONS)
            .map(|i| {
                Ok(if i % 2 == 0 {
                    "{\"match\": true}"
                } else {
                    "No."
                })
            })
            .collect();
        answers[3] = Err(LlmError::Http {
            status: 502,
            message: "bad gateway".into(),
        });
        let model = ScriptedLanguageModelDouble::new(answers);
        let use_ = LanguageModelUse {
            model: Some(&model),
            model_name: Some("m1"),
            features: ALL,
        };
        let mut report = LanguageModelReport::default();
        let mut degraded = Vec::new();
        let out = use_.confirm_smart_hits(
            SmartTracking::Available { hits },
            &[tracker("a"), tracker("b")],
            &mut report,
            &mut degraded,
        );
        assert_eq!(model.calls(), MAX_SMART_CONFIRMATIONS, "capped");
        let SmartTracking::Available { hits: kept } = out else {
            panic!("still available")
        };
        // b hits 1, 5, 7, … 19 rejected (9 of them); b hit 3 kept (the model failed); hits 20
        // and 21 never asked, kept.
        assert_eq!(report.rejected_smart_hits.len(), 9);
        assert!(
            report
                .rejected_smart_hits
                .iter()
                .all(|h| h.tracker_id == "b")
        );
        assert_eq!(kept.len(), 13);
        assert!(kept.iter().any(|h| h.turn == 3) && kept.iter().any(|h| h.turn == 21));
        assert_eq!(report.smart_tracker_confirmation, PartSource::Fallback);
        assert_eq!(report.model.as_deref(), Some("m1"));
        assert_eq!(degraded.len(), 2, "{degraded:?}");
        assert!(
            degraded[0].reason.starts_with("1 of 20 smart-tracker hits"),
            "{degraded:?}"
        );
        assert!(degraded[0].reason.contains("HTTP 502"));
        assert!(degraded[1].reason.contains("only the first 20"));
        // The prompt names the tracker and its examples, and the matched sentence.
        let prompts = model.prompts.borrow();
        assert!(
            prompts[1]
                .1
                .starts_with("Topic: Tracker b\nExamples:\n- example of b\n")
        );
        assert!(prompts[1].1.ends_with("Sentence: sentence 1"));
    }

    #[test]
    fn smart_hits_untouched_when_confirmation_is_off_or_unavailable() {
        let model = ScriptedLanguageModelDouble::answering("no");
        let use_ = LanguageModelUse {
            model: Some(&model),
            model_name: Some("m1"),
            features: LlmFeatures {
                smart_tracker_confirmation: false,
                ..ALL
            },
        };
        let mut report = LanguageModelReport::default();
        let mut degraded = Vec::new();
        let tracking = SmartTracking::Available {
            hits: vec![hit("a", 0)],
        };
        let out = use_.confirm_smart_hits(
            tracking.clone(),
            &[tracker("a")],
            &mut report,
            &mut degraded,
        );
        assert_eq!(out, tracking);
        let unavailable = SmartTracking::Unavailable {
            reason: "no model".into(),
        };
        let on = LanguageModelUse {
            features: ALL,
            ..use_
        };
        let out = on.confirm_smart_hits(unavailable.clone(), &[], &mut report, &mut degraded);
        assert_eq!(out, unavailable);
        assert_eq!(model.calls(), 0);
        assert_eq!(report, LanguageModelReport::default());
        assert!(degraded.is_empty());
    }
}
