//! Recording-webhook parsing (PBX JSON and Twilio form) and Twilio signature validation,
//! the latter checked against HMAC-SHA1 computed by python3's standard library.

use std::collections::HashMap;

use callscope_api::error::ApiError;
use callscope_api::twilio::{
    CallDirection, RecordingWebhook, TwilioMediaFormat, TwilioOutcome, compute_twilio_signature,
    validate_twilio_signature,
};
use serde_json::{Value, json};

fn fields(v: Value) -> Vec<String> {
    RecordingWebhook::from_json(v)
        .unwrap_err()
        .fields()
        .map(str::to_string)
        .collect()
}

#[test]
fn pbx_json_with_every_field() {
    let w = RecordingWebhook::from_json(json!({
        "external_call_id": "pbx-42",
        "recording_url": "https://pbx.example.com/rec/42.wav?sig=abc",
        "customer_phone": "+1 (415) 555-0100",
        "agent_identifier": "agent-7",
        "duration_seconds": "93.5",
        "call_timestamp": "2025-03-01T10:15:00+01:00",
        "direction": "Inbound",
        "channels": 2,
        "metadata": { "queue": "sales", "tags": ["vip"] },
        "something_else": true
    }))
    .unwrap();
    assert_eq!(w.external_call_id, "pbx-42");
    assert_eq!(
        w.recording_url,
        "https://pbx.example.com/rec/42.wav?sig=abc"
    );
    assert_eq!(w.customer_phone.as_deref(), Some("+1 (415) 555-0100"));
    assert_eq!(w.agent_identifier.as_deref(), Some("agent-7"));
    assert_eq!(w.duration_seconds, Some(93.5));
    assert_eq!(w.call_timestamp, Some(1_740_820_500_000)); // 09:15:00Z
    assert_eq!(w.direction, Some(CallDirection::Inbound));
    assert_eq!(w.channels, Some(2));
    assert_eq!(w.metadata["queue"], "sales");
}

#[test]
fn pbx_json_minimal_and_timestamp_units() {
    let base = |ts: Value| {
        RecordingWebhook::from_json(json!({
            "external_call_id": 12345,
            "recording_url": "http://10.0.0.5/r.mp3",
            "call_timestamp": ts
        }))
        .unwrap()
    };
    let w = base(json!(1_700_000_000));
    assert_eq!(w.external_call_id, "12345", "numeric ids become text");
    assert_eq!(w.call_timestamp, Some(1_700_000_000_000), "seconds");
    assert_eq!(
        base(json!(1_700_000_000_123i64)).call_timestamp,
        Some(1_700_000_000_123),
        "milliseconds"
    );
    assert_eq!(
        base(json!("1700000000")).call_timestamp,
        Some(1_700_000_000_000)
    );
    assert_eq!(base(Value::Null).call_timestamp, None);
    assert!(w.metadata.is_empty());
    assert_eq!(w.direction, None);
}

#[test]
fn pbx_json_reports_every_bad_field_by_name() {
    assert_eq!(fields(json!({})), vec!["external_call_id", "recording_url"]);
    let got = fields(json!({
        "external_call_id": ["not", "text"],
        "recording_url": "ftp://pbx/x.wav",
        "customer_phone": "x".repeat(65),
        "duration_seconds": -3,
        "call_timestamp": "yesterday",
        "direction": "sideways",
        "channels": 3,
        "metadata": "not an object"
    }));
    assert_eq!(
        got,
        vec![
            "external_call_id",
            "recording_url",
            "customer_phone",
            "duration_seconds",
            "call_timestamp",
            "direction",
            "channels",
            "metadata"
        ]
    );
    assert_eq!(fields(json!([1, 2])), vec!["body"]);
    assert_eq!(fields(json!("text")), vec!["body"]);
    let big = json!({ "external_call_id": "a", "recording_url": "https://x/y", "metadata": { "blob": "x".repeat(20_000) } });
    assert_eq!(fields(big), vec!["metadata"]);
    let ctrl = json!({ "external_call_id": "a\u{0}b", "recording_url": "https://x/y" });
    assert_eq!(fields(ctrl), vec!["external_call_id"]);
    let far =
        json!({ "external_call_id": "a", "recording_url": "https://x/y", "call_timestamp": -5 });
    assert_eq!(fields(far), vec!["call_timestamp"]);
}

#[test]
fn hostile_json_never_panics() {
    let nasty = [
        json!(null),
        json!(1e308),
        json!({ "external_call_id": "a", "recording_url": "https://x/y", "duration_seconds": 1e308 }),
        json!({ "external_call_id": "a", "recording_url": "https://x/y", "duration_seconds": "NaN" }),
        json!({ "external_call_id": "a", "recording_url": "https://x/y", "call_timestamp": i64::MAX }),
        json!({ "external_call_id": "a", "recording_url": "https://x/y", "call_timestamp": i64::MIN }),
        json!({ "external_call_id": "a", "recording_url": "https://x/y", "call_timestamp": u64::MAX }),
        json!({ "external_call_id": "a", "recording_url": "https://x/y", "channels": "2.0000001" }),
        json!({ "external_call_id": "ü".repeat(500), "recording_url": "https://x/y" }),
        json!({ "external_call_id": "a", "recording_url": format!("https://x/{}", "a".repeat(5000)) }),
        json!({ "external_call_id": "a", "recording_url": "https://" }),
        json!({ "external_call_id": "a", "recording_url": "https://x/y", "metadata": {"a": {"b": {"c": [[[[[]]]]]}}} }),
    ];
    for v in nasty {
        let _ = RecordingWebhook::from_json(v);
    }
}

#[test]
fn validation_errors_become_a_422_with_field_details() {
    let e: ApiError = RecordingWebhook::from_json(json!({ "recording_url": 5 }))
        .unwrap_err()
        .into();
    assert_eq!(e.status, 422);
    assert_eq!(e.code, "validation_error");
    let names: Vec<&str> = e.details["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["external_call_id", "recording_url"]);
    assert!(
        e.error.contains("recording_url: must be a string"),
        "{}",
        e.error
    );
}

fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const REC_URL: &str = "https://api.twilio.com/2010-04-01/Accounts/AC0123/Recordings/RE0456";

#[test]
fn twilio_completed_recording() {
    let f = form(&[
        ("AccountSid", "AC0123"),
        ("CallSid", "CA0123456789abcdef0123456789abcdef"),
        ("RecordingSid", "RE0456"),
        ("RecordingUrl", REC_URL),
        ("RecordingStatus", "completed"),
        ("RecordingDuration", "125"),
        ("RecordingChannels", "2"),
        ("RecordingSource", "DialVerb"),
        ("RecordingStartTime", "Mon, 22 Aug 2011 16:34:23 +0000"),
        ("Direction", "inbound"),
        ("From", "+14155550100"),
        ("To", "+18005550199"),
    ]);
    let TwilioOutcome::Recording(w) = RecordingWebhook::from_twilio_form(&f).unwrap() else {
        panic!("expected a recording");
    };
    assert_eq!(w.external_call_id, "CA0123456789abcdef0123456789abcdef");
    assert_eq!(w.recording_url, format!("{REC_URL}.wav"));
    assert_eq!(w.channels, Some(2));
    assert_eq!(w.duration_seconds, Some(125.0));
    assert_eq!(w.call_timestamp, Some(1_314_030_863_000));
    assert_eq!(w.direction, Some(CallDirection::Inbound));
    assert_eq!(w.customer_phone.as_deref(), Some("+14155550100"));
    assert_eq!(w.agent_identifier.as_deref(), Some("+18005550199"));
    assert_eq!(w.metadata["twilio_recording_sid"], "RE0456");
    assert_eq!(w.metadata["source"], "twilio");

    // Outbound swaps the parties; MP3 on request.
    let mut f2 = f.clone();
    f2.insert("Direction".into(), "outbound-dial".into());
    let TwilioOutcome::Recording(w) =
        RecordingWebhook::from_twilio_form_with(&f2, TwilioMediaFormat::Mp3).unwrap()
    else {
        panic!("expected a recording");
    };
    assert_eq!(w.customer_phone.as_deref(), Some("+18005550199"));
    assert_eq!(w.agent_identifier.as_deref(), Some("+14155550100"));
    assert_eq!(w.recording_url, format!("{REC_URL}.mp3"));
}

#[test]
fn twilio_minimal_form_and_unknown_direction() {
    let f = form(&[
        ("CallSid", "CA1"),
        ("RecordingUrl", REC_URL),
        ("From", "+14155550100"),
    ]);
    let TwilioOutcome::Recording(w) = RecordingWebhook::from_twilio_form(&f).unwrap() else {
        panic!("expected a recording");
    };
    assert_eq!(
        w.customer_phone, None,
        "no direction: parties are not guessed"
    );
    assert_eq!(w.metadata["twilio_from"], "+14155550100");
    assert_eq!(w.channels, None);
}

#[test]
fn twilio_non_completed_statuses_are_ignored_not_errors() {
    for status in ["in-progress", "absent", "failed"] {
        let f = form(&[("CallSid", "CA1"), ("RecordingStatus", status)]);
        match RecordingWebhook::from_twilio_form(&f).unwrap() {
            TwilioOutcome::Ignored {
                recording_status,
                reason,
            } => {
                assert_eq!(recording_status, status);
                assert!(reason.contains(status));
            }
            other => panic!("{status}: {other:?}"),
        }
    }
}

#[test]
fn twilio_bad_forms_name_their_fields() {
    let names = |f: HashMap<String, String>| -> Vec<String> {
        RecordingWebhook::from_twilio_form(&f)
            .unwrap_err()
            .fields()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        names(form(&[("RecordingStatus", "completed")])),
        vec!["CallSid", "RecordingUrl"]
    );
    assert_eq!(
        names(form(&[
            ("CallSid", "CA1; DROP TABLE"),
            ("RecordingUrl", "file:///etc/passwd"),
            ("RecordingChannels", "7"),
            ("RecordingDuration", "-1"),
            ("RecordingStartTime", "tomorrow"),
        ])),
        vec![
            "CallSid",
            "RecordingUrl",
            "RecordingChannels",
            "RecordingDuration",
            "RecordingStartTime"
        ]
    );
}

/// base64(HMAC-SHA1) by python3, independent of the Rust code under test.
fn python_twilio_signature(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let data: String = std::iter::once(url.to_string())
        .chain(sorted.iter().map(|(k, v)| format!("{k}{v}")))
        .collect();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg("import hmac,hashlib,base64,sys; print(base64.b64encode(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha1).digest()).decode())")
        .arg(token)
        .arg(data)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn twilio_signature_matches_python_and_rejects_tampering() {
    let token = "12345";
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    let params: Vec<(String, String)> = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // Order of arrival must not matter.
    let mut shuffled = params.clone();
    shuffled.reverse();

    let expected = python_twilio_signature(token, url, &params);
    assert_eq!(compute_twilio_signature(token, url, &shuffled), expected);
    assert!(validate_twilio_signature(token, url, &shuffled, &expected));

    assert!(
        !validate_twilio_signature("54321", url, &params, &expected),
        "wrong token"
    );
    let mut tampered = params.clone();
    tampered[2].1 = "9999".into();
    assert!(
        !validate_twilio_signature(token, url, &tampered, &expected),
        "tampered field"
    );
    assert!(
        !validate_twilio_signature(token, "https://mycompany.com/other", &params, &expected),
        "other URL"
    );
    assert!(!validate_twilio_signature(
        token,
        url,
        &params,
        "not base64!!"
    ));
    assert!(!validate_twilio_signature(token, url, &params, ""));
}

#[test]
fn twilio_signature_tolerates_the_default_port_either_way() {
    let token = "secret-token";
    let params = vec![("CallSid".to_string(), "CA1".to_string())];
    let signed_with_port =
        python_twilio_signature(token, "https://hooks.example.com:443/twilio?x=1", &params);
    assert!(validate_twilio_signature(
        token,
        "https://hooks.example.com/twilio?x=1",
        &params,
        &signed_with_port
    ));
    let signed_without =
        python_twilio_signature(token, "https://hooks.example.com/twilio", &params);
    assert!(validate_twilio_signature(
        token,
        "https://hooks.example.com:443/twilio",
        &params,
        &signed_without
    ));
    // A different port is a different URL.
    assert!(!validate_twilio_signature(
        token,
        "https://hooks.example.com:8443/twilio",
        &params,
        &signed_without
    ));
}

#[test]
fn hostile_twilio_forms_never_panic() {
    let weird = [
        "",
        " ",
        "NaN",
        "inf",
        "-0",
        "1e400",
        "99999999999999999999999",
        "ü\u{0}",
        "ftp://x",
        "https://",
    ];
    for a in weird {
        for key in [
            "CallSid",
            "RecordingUrl",
            "RecordingChannels",
            "RecordingDuration",
            "RecordingStartTime",
            "RecordingStatus",
            "Direction",
            "From",
        ] {
            let mut f = form(&[("CallSid", "CA1"), ("RecordingUrl", REC_URL)]);
            f.insert(key.to_string(), a.to_string());
            let _ = RecordingWebhook::from_twilio_form(&f);
        }
    }
    // Infinite and absurd durations are refused by name.
    let f = form(&[
        ("CallSid", "CA1"),
        ("RecordingUrl", REC_URL),
        ("RecordingDuration", "1e400"),
    ]);
    let err = RecordingWebhook::from_twilio_form(&f).unwrap_err();
    assert_eq!(err.fields().collect::<Vec<_>>(), vec!["RecordingDuration"]);
}
