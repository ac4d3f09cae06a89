use super::*;

fn criterion(id: &str, weight: f64, answer_type: AnswerType) -> Criterion {
    Criterion {
        id: id.into(),
        title: format!("Title of {id}"),
        weight,
        max_score: 10.0,
        answer_type,
        na_allowed: false,
        auto_fail: None,
        binding: None,
    }
}

/// A form with one criterion of each kind:
/// - disclosure: yes/no, weight 2, bound to tracker t-disclosure, auto-fail on no;
/// - promises: yes/no, weight 1, bound to the absence of rule r-guarantee;
/// - talk: scale 1..5, weight 1, bound to agent_talk_ratio ≤ 0.6;
/// - empathy: scale 0..4, weight 1, unbound, N/A allowed.
fn template() -> ScorecardTemplate {
    let mut disclosure = criterion("disclosure", 2.0, AnswerType::YesNo);
    disclosure.auto_fail = Some(AutoFail::No);
    disclosure.binding = Some(Binding::TrackerHit {
        tracker_id: "t-disclosure".into(),
        present: true,
    });
    let mut promises = criterion("promises", 1.0, AnswerType::YesNo);
    promises.binding = Some(Binding::RuleFlag {
        rule_id: "r-guarantee".into(),
        present: false,
    });
    let mut talk = criterion("talk", 1.0, AnswerType::Scale { min: 1, max: 5 });
    talk.binding = Some(Binding::Stat {
        stat: "agent_talk_ratio".into(),
        comparator: Comparator::Le,
        value: 0.6,
    });
    let mut empathy = criterion("empathy", 1.0, AnswerType::Scale { min: 0, max: 4 });
    empathy.na_allowed = true;
    ScorecardTemplate {
        id: "tpl-1".into(),
        name: "Support QA".into(),
        criteria: vec![disclosure, promises, talk, empathy],
    }
}

fn facts(trackers: &[&str], rules: &[&str], stats: &[(&str, f64)]) -> ScoringFacts {
    ScoringFacts {
        tracker_ids_hit: trackers.iter().map(|s| s.to_string()).collect(),
        rule_ids_flagged: rules.iter().map(|s| s.to_string()).collect(),
        stats: stats.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    }
}

fn score<'a>(card: &'a Scorecard, id: &str) -> &'a CriterionScore {
    card.criteria.iter().find(|c| c.criterion_id == id).unwrap()
}

fn good_facts() -> ScoringFacts {
    facts(&["t-disclosure"], &[], &[("agent_talk_ratio", 0.55)])
}

#[test]
fn valid_template_passes() {
    assert_eq!(validate_template(&template()), Ok(()));
}

#[test]
fn template_errors_are_all_reported() {
    let mut t = template();
    t.id = " ".into();
    t.criteria[1].id = "disclosure".into();
    t.criteria[2].weight = -1.0;
    t.criteria[2].max_score = f64::NAN;
    t.criteria[3].answer_type = AnswerType::Scale { min: 3, max: 3 };
    t.criteria[3].title = String::new();
    let errors = validate_template(&t).unwrap_err().0;
    assert!(errors.contains(&TemplateError::EmptyId));
    assert!(errors.contains(&TemplateError::DuplicateCriterion("disclosure".into())));
    assert!(
        errors.iter().any(
            |e| matches!(e, TemplateError::BadWeight { criterion, .. } if criterion == "talk")
        )
    );
    assert!(
        errors.iter().any(
            |e| matches!(e, TemplateError::BadMaxScore { criterion, .. } if criterion == "talk")
        )
    );
    assert!(errors.contains(&TemplateError::BadScale {
        criterion: "empathy".into(),
        min: 3,
        max: 3
    }));
    assert!(errors.contains(&TemplateError::EmptyTitle("empathy".into())));
    let message = TemplateInvalid(errors).to_string();
    assert!(
        message.contains("criterion id \"disclosure\" is used more than once"),
        "{message}"
    );
}

#[test]
fn template_structure_errors() {
    let mut t = template();
    t.criteria.clear();
    assert_eq!(
        validate_template(&t).unwrap_err().0,
        vec![TemplateError::NoCriteria]
    );

    let mut t = template();
    for c in &mut t.criteria {
        c.weight = 0.0;
    }
    assert_eq!(
        validate_template(&t).unwrap_err().0,
        vec![TemplateError::ZeroTotalWeight]
    );

    let mut t = template();
    t.criteria[0].auto_fail = Some(AutoFail::AtOrBelow { value: 1 });
    t.criteria[2].auto_fail = Some(AutoFail::No);
    t.criteria[3].auto_fail = Some(AutoFail::AtOrBelow { value: 4 });
    t.criteria[1].binding = Some(Binding::RuleFlag {
        rule_id: "".into(),
        present: true,
    });
    t.criteria[2].binding = Some(Binding::Stat {
        stat: "x".into(),
        comparator: Comparator::Gt,
        value: f64::INFINITY,
    });
    let errors = validate_template(&t).unwrap_err().0;
    assert_eq!(
        errors,
        vec![
            TemplateError::AutoFailNeedsScale("disclosure".into()),
            TemplateError::EmptyBinding("promises".into()),
            TemplateError::AutoFailNeedsYesNo("talk".into()),
            TemplateError::BadThreshold("talk".into()),
            TemplateError::AutoFailOutOfRange {
                criterion: "empathy".into(),
                value: 4,
                min: 0,
                max: 4
            },
        ]
    );
}

#[test]
fn suggestion_from_facts() {
    let card = suggest(&template(), &good_facts()).unwrap();
    assert_eq!(score(&card, "disclosure").answer, Some(Answer::Yes));
    assert_eq!(
        score(&card, "disclosure").suggestion_reason.as_deref(),
        Some("tracker t-disclosure was hit")
    );
    assert_eq!(score(&card, "promises").answer, Some(Answer::Yes));
    assert_eq!(score(&card, "talk").answer, Some(Answer::Scale(5)));
    assert_eq!(
        score(&card, "talk").suggestion_reason.as_deref(),
        Some("agent_talk_ratio = 0.55: agent_talk_ratio ≤ 0.6 holds")
    );
    assert_eq!(score(&card, "empathy").answer, None);
    assert_eq!(score(&card, "empathy").source, AnswerSource::None);
    assert_eq!(card.origin, ScorecardOrigin::Suggested);
    // disclosure 2×10 + promises 10 + talk 10; empathy unanswered is outside the max.
    assert_eq!(card.totals.total, 40.0);
    assert_eq!(card.totals.max, 40.0);
    assert_eq!(card.totals.percent, Some(100.0));
    assert_eq!((card.totals.answered, card.totals.unanswered), (3, 1));
}

#[test]
fn suggestion_with_failing_facts_auto_fails() {
    let card = suggest(
        &template(),
        &facts(&[], &["r-guarantee"], &[("agent_talk_ratio", 0.8)]),
    )
    .unwrap();
    assert_eq!(score(&card, "disclosure").answer, Some(Answer::No));
    assert_eq!(score(&card, "promises").answer, Some(Answer::No));
    assert_eq!(score(&card, "talk").answer, Some(Answer::Scale(1)));
    assert!(score(&card, "disclosure").auto_failed);
    let fail = card.totals.auto_fail.as_ref().unwrap();
    assert_eq!(fail.criterion_id, "disclosure");
    assert_eq!(fail.reason, "Title of disclosure: answered no");
    assert_eq!((card.totals.total, card.totals.percent), (0.0, Some(0.0)));
}

#[test]
fn missing_or_nan_stat_gives_no_suggestion() {
    for stats in [vec![], vec![("agent_talk_ratio", f64::NAN)]] {
        let card = suggest(&template(), &facts(&["t-disclosure"], &[], &stats)).unwrap();
        let talk = score(&card, "talk");
        assert_eq!(talk.answer, None);
        assert_eq!(
            talk.suggestion_reason.as_deref(),
            Some("stat agent_talk_ratio is not available")
        );
    }
}

#[test]
fn comparators() {
    assert!(Comparator::Lt.holds(1.0, 2.0) && !Comparator::Lt.holds(2.0, 2.0));
    assert!(Comparator::Le.holds(2.0, 2.0) && !Comparator::Le.holds(2.1, 2.0));
    assert!(Comparator::Gt.holds(3.0, 2.0) && !Comparator::Gt.holds(2.0, 2.0));
    assert!(Comparator::Ge.holds(2.0, 2.0) && !Comparator::Ge.holds(1.9, 2.0));
    assert!(Comparator::Eq.holds(0.1 + 0.2, 0.3) && !Comparator::Eq.holds(0.3, 0.31));
    assert!(Comparator::Ne.holds(0.3, 0.31) && !Comparator::Ne.holds(0.1 + 0.2, 0.3));
}

#[test]
fn invalid_template_is_refused_by_suggest() {
    let mut t = template();
    t.criteria.clear();
    assert!(matches!(
        suggest(&t, &good_facts()),
        Err(ScorecardError::Template(_))
    ));
}

fn review(answers: Vec<ManualAnswer>) -> ManualReview {
    ManualReview {
        reviewer: "qa@example.com".into(),
        overall_comment: Some("Good call overall".into()),
        answers,
    }
}

fn answer(id: &str, answer: Answer, note: Option<&str>) -> ManualAnswer {
    ManualAnswer {
        criterion_id: id.into(),
        answer,
        note: note.map(str::to_string),
    }
}

#[test]
fn manual_review_with_scale_weights_and_na() {
    let card = suggest(&template(), &good_facts()).unwrap();
    let card = apply_review(
        &template(),
        card,
        &review(vec![
            answer("talk", Answer::Scale(3), Some("talked a bit much")),
            answer("empathy", Answer::NotApplicable, None),
        ]),
    )
    .unwrap();
    let talk = score(&card, "talk");
    assert_eq!(
        (talk.answer, talk.source),
        (Some(Answer::Scale(3)), AnswerSource::Manual)
    );
    assert_eq!(
        talk.suggested,
        Some(Answer::Scale(5)),
        "the suggestion stays visible"
    );
    assert_eq!(talk.note.as_deref(), Some("talked a bit much"));
    // talk: 3 on 1..5 is half of 10 points.
    assert_eq!(talk.points, Some(5.0));
    assert_eq!(score(&card, "empathy").points, None);
    assert_eq!(card.totals.total, 35.0);
    assert_eq!(card.totals.max, 40.0, "N/A is outside the max");
    assert_eq!(card.totals.percent, Some(87.5));
    assert_eq!(card.totals.not_applicable, 1);
    assert_eq!(card.origin, ScorecardOrigin::Mixed);
    assert_eq!(card.reviewer.as_deref(), Some("qa@example.com"));
    assert_eq!(card.overall_comment.as_deref(), Some("Good call overall"));
}

#[test]
fn manual_answer_can_trigger_or_clear_auto_fail() {
    let card = suggest(&template(), &good_facts()).unwrap();
    let failed = apply_review(
        &template(),
        card,
        &review(vec![answer("disclosure", Answer::No, None)]),
    )
    .unwrap();
    assert_eq!(failed.totals.percent, Some(0.0));
    assert_eq!(failed.totals.raw_total, 20.0);
    let cleared = apply_review(
        &template(),
        failed,
        &review(vec![answer("disclosure", Answer::Yes, None)]),
    )
    .unwrap();
    assert!(cleared.totals.auto_fail.is_none());
    assert_eq!(cleared.totals.percent, Some(100.0));
}

#[test]
fn invalid_reviews_are_rejected_whole() {
    let t = template();
    let card = suggest(&t, &good_facts()).unwrap();
    let cases = [
        (
            vec![answer("nope", Answer::Yes, None)],
            "not in the template",
        ),
        (
            vec![
                answer("talk", Answer::Scale(2), None),
                answer("talk", Answer::Scale(3), None),
            ],
            "more than once",
        ),
        (
            vec![answer("talk", Answer::Scale(6), None)],
            "outside the scale 1..5",
        ),
        (vec![answer("talk", Answer::Yes, None)], "not yes/no"),
        (
            vec![answer("disclosure", Answer::Scale(1), None)],
            "needs yes or no",
        ),
        (
            vec![answer("disclosure", Answer::NotApplicable, None)],
            "N/A is not allowed",
        ),
    ];
    for (answers, expected) in cases {
        let err = apply_review(&t, card.clone(), &review(answers)).unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    }
    let mut blank = review(vec![]);
    blank.reviewer = "  ".into();
    assert_eq!(
        apply_review(&t, card.clone(), &blank),
        Err(ScorecardError::EmptyReviewer)
    );
    let mut other = t.clone();
    other.id = "tpl-2".into();
    assert!(matches!(
        apply_review(&other, card, &review(vec![])),
        Err(ScorecardError::WrongTemplate { .. })
    ));
}

#[test]
fn accepting_suggestions_marks_them() {
    let card = suggest(&template(), &good_facts()).unwrap();
    let card = accept_suggestions(&template(), card, "lead").unwrap();
    assert_eq!(score(&card, "disclosure").source, AnswerSource::Accepted);
    assert_eq!(score(&card, "empathy").source, AnswerSource::None);
    assert_eq!(card.origin, ScorecardOrigin::Manual);
    assert_eq!(card.reviewer.as_deref(), Some("lead"));
    assert_eq!(
        accept_suggestions(&template(), card, ""),
        Err(ScorecardError::EmptyReviewer)
    );
}

#[test]
fn reanalysis_keeps_reviewer_answers_and_refreshes_suggestions() {
    let t = template();
    let card = suggest(&t, &good_facts()).unwrap();
    let reviewed = apply_review(
        &t,
        card,
        &review(vec![answer("empathy", Answer::Scale(2), Some("flat tone"))]),
    )
    .unwrap();
    // New facts: the disclosure tracker no longer hits, the talk ratio went up.
    let fresh = suggest(&t, &facts(&[], &[], &[("agent_talk_ratio", 0.9)])).unwrap();
    let merged = merge_on_reanalysis(&t, fresh, &reviewed).unwrap();
    let empathy = score(&merged, "empathy");
    assert_eq!(
        (empathy.answer, empathy.source),
        (Some(Answer::Scale(2)), AnswerSource::Manual)
    );
    assert_eq!(empathy.note.as_deref(), Some("flat tone"));
    assert_eq!(score(&merged, "disclosure").answer, Some(Answer::No));
    assert_eq!(score(&merged, "talk").answer, Some(Answer::Scale(1)));
    assert_eq!(merged.reviewer.as_deref(), Some("qa@example.com"));
    assert_eq!(merged.overall_comment.as_deref(), Some("Good call overall"));
    assert_eq!(merged.origin, ScorecardOrigin::Mixed);
    assert!(merged.totals.auto_fail.is_some());
    assert!(merged.warnings.is_empty());
}

#[test]
fn reanalysis_after_template_change_drops_invalid_answers_with_warnings() {
    let t = template();
    let card = suggest(&t, &good_facts()).unwrap();
    let reviewed = apply_review(
        &t,
        card,
        &review(vec![
            answer("empathy", Answer::Scale(4), None),
            answer("promises", Answer::No, None),
        ]),
    )
    .unwrap();
    let mut changed = t.clone();
    changed.criteria[3].answer_type = AnswerType::Scale { min: 0, max: 3 };
    changed.criteria.remove(1);
    changed
        .criteria
        .push(criterion("new", 1.0, AnswerType::YesNo));
    let fresh = suggest(&changed, &good_facts()).unwrap();
    let merged = merge_on_reanalysis(&changed, fresh, &reviewed).unwrap();
    let ids: Vec<_> = merged
        .criteria
        .iter()
        .map(|c| c.criterion_id.as_str())
        .collect();
    assert_eq!(ids, vec!["disclosure", "talk", "empathy", "new"]);
    assert_eq!(score(&merged, "empathy").answer, None);
    assert_eq!(merged.warnings.len(), 2, "{:?}", merged.warnings);
    assert!(
        merged
            .warnings
            .iter()
            .any(|w| w.contains("outside the scale 0..3"))
    );
    assert!(
        merged
            .warnings
            .iter()
            .any(|w| w.contains("left the template"))
    );
}

#[test]
fn all_na_has_no_percent() {
    let mut t = template();
    t.criteria.truncate(0);
    let mut c = criterion("only", 1.0, AnswerType::YesNo);
    c.na_allowed = true;
    t.criteria.push(c);
    let card = suggest(&t, &ScoringFacts::default()).unwrap();
    assert_eq!(card.origin, ScorecardOrigin::Empty);
    assert_eq!(card.totals.percent, None);
    let card = apply_review(
        &t,
        card,
        &review(vec![answer("only", Answer::NotApplicable, None)]),
    )
    .unwrap();
    assert_eq!((card.totals.max, card.totals.percent), (0.0, None));
}

#[test]
fn serialises_snake_case() {
    let card = suggest(&template(), &good_facts()).unwrap();
    let json = serde_json::to_value(&card).unwrap();
    assert_eq!(
        json["criteria"][2]["answer"],
        serde_json::json!({"type": "scale", "value": 5})
    );
    assert_eq!(
        json["criteria"][0]["answer"],
        serde_json::json!({"type": "yes"})
    );
    assert_eq!(json["criteria"][0]["source"], "suggested");
    assert_eq!(json["origin"], "suggested");
    let back: Scorecard = serde_json::from_value(json).unwrap();
    assert_eq!(back, card);

    let t: ScorecardTemplate = serde_json::from_str(
        r#"{"id":"t","name":"n","criteria":[{"id":"c","title":"T","weight":1,"max_score":5,
            "answer_type":{"type":"scale","min":1,"max":5},
            "auto_fail":{"when":"at_or_below","value":1},
            "binding":{"kind":"stat","stat":"interruptions","comparator":"lt","value":3}}]}"#,
    )
    .unwrap();
    assert_eq!(validate_template(&t), Ok(()));
    let card = suggest(&t, &facts(&[], &[], &[("interruptions", 5.0)])).unwrap();
    assert_eq!(card.criteria[0].answer, Some(Answer::Scale(1)));
    assert_eq!(card.totals.percent, Some(0.0), "auto-fail at or below 1");
}
