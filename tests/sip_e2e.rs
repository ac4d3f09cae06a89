//! Issue 3 end to end through the real `callscope serve`: SIP peers (SIPp) on loopback,
//! provisioning through the CLI, outcomes checked through the REST API and webhooks.
//!
//! Phones live on 127.0.0.1, the trunk's far end on 127.0.0.2 (the trunk's inbound ACL), so
//! callscope tells trunk traffic from phone traffic by source address as in production.

use callscope_testkit::callscope::Callscope;
use callscope_testkit::sipp::{Scenario, SippConfig, SippRun, uac_call_scenario};
use callscope_testkit::webhook::WebhookReceiver;
use serde_json::Value;
use std::net::Ipv4Addr;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_callscope");

#[test]
fn harness_starts_restarts_and_serves_the_api() {
    let mut cs = Callscope::builder(BIN)
        .user("1001", "alice-secret-1")
        .start()
        .unwrap();
    assert!(cs.realm().ends_with(".callscope.local"), "{}", cs.realm());
    let (status, health) = cs.http().get("/healthz").unwrap();
    assert_eq!(status, 200, "{health}");
    let (status, _) = cs.http().get("/api/v1/users").unwrap();
    assert_eq!(status, 200);
    let first = cs.pid().unwrap();
    cs.kill9().unwrap();
    assert!(cs.pid().is_none());
    cs.restart().unwrap();
    assert_ne!(cs.pid().unwrap(), first);
    let (status, users) = cs.http().get("/api/v1/users").unwrap();
    assert_eq!(status, 200);
    assert!(users.to_string().contains("1001"), "{users}");
    assert!(cs.log().contains("SIP listening"), "{}", cs.log());
}

mod scenarios {
    //! SIPp scenarios for registered phones: SIPp cannot both REGISTER and act as a UAS in
    //! one scenario, so a phone is a UAC whose only "call" registers (with digest auth) and
    //! then idles, plus an out-of-call scenario (`-oocsf`) that answers every INVITE arriving
    //! outside that dialog — from the port it registered from, as a real phone does.

    /// REGISTER as `ext@realm` (digest retry from `-au`/`-ap`), then idle until stopped.
    pub fn register_and_idle(realm: &str, ext: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="phone register">
  <send retrans="500">
    <![CDATA[
REGISTER sip:{realm} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:{ext}@{realm}>;tag=[pid]R[call_number]
To: <sip:{ext}@{realm}>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:{ext}@[local_ip]:[local_port]>
Expires: 3600
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
REGISTER sip:{realm} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:{ext}@{realm}>;tag=[pid]R[call_number]
To: <sip:{ext}@{realm}>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:{ext}@[local_ip]:[local_port]>
[authentication]
Expires: 3600
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
  <nop><action><log message="REGISTERED"/></action></nop>
  <pause milliseconds="600000"/>
</scenario>
"#
        )
    }

    /// INVITE (SDP offer) expecting the final response `code` (after optional
    /// provisionals), then the ACK for it. `from` is the From URI.
    pub fn invite_expect(from: &str, code: u16) -> String {
        format!(
            r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="expect {code}">
  <send retrans="500">
    <![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <{from}>;tag=[pid]T[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="{code}"/>
  <send>
    <![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <{from}>;tag=[pid]T[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
</scenario>
"#
        )
    }

    /// Answers an INVITE with 180 then 200 (SDP), waits for ACK and the BYE. With `code`
    /// other than 200 it answers that final status instead (and waits for the ACK).
    pub fn answer(code: u16) -> String {
        if code == 200 {
            return callscope_testkit::sipp::uas_answer_scenario();
        }
        format!(
            r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="phone rejects">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
SIP/2.0 {code} Rejected
[last_Via:]
[last_From:]
[last_To:];tag=[pid]U[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>
</scenario>
"#
        )
    }
}

/// A registered SIPp phone on 127.0.0.1 answering calls with `code`.
fn sipp_phone(cs: &Callscope, ext: &str, password: &str, code: u16) -> SippRun {
    sipp_phone_with(cs, ext, password, &scenarios::answer(code))
}

/// A registered SIPp phone on 127.0.0.1 running `answer_xml` for every incoming call.
fn sipp_phone_with(cs: &Callscope, ext: &str, password: &str, answer_xml: &str) -> SippRun {
    let mut cfg = SippConfig::uac(
        Scenario::Xml(scenarios::register_and_idle(cs.realm(), ext)),
        cs.sip_addr(),
    );
    cfg.auth = Some((ext.into(), password.into()));
    cfg.max_calls = Some(1);
    cfg.global_timeout = Some(Duration::from_secs(300));
    let dir = tempfile::tempdir().unwrap();
    let ooc = dir.path().join("answer.xml");
    std::fs::write(&ooc, answer_xml).unwrap();
    cfg.extra_args = vec![
        "-oocsf".into(),
        ooc.display().to_string(),
        "-trace_msg".into(),
        "-message_file".into(),
        "messages.log".into(),
        "-trace_logs".into(),
        "-log_file".into(),
        "phone.log".into(),
    ];
    let mut run = SippRun::start(&cfg).unwrap();
    let log = run.dir().join("phone.log");
    let sipp_log = run.dir().join("sipp.log");
    callscope_testkit::process::wait_until(
        &format!("{ext} to register"),
        Duration::from_secs(10),
        Some(&sipp_log),
        || {
            run.guard_mut().ensure_running()?;
            Ok(std::fs::read_to_string(&log)
                .is_ok_and(|t| t.contains("REGISTERED"))
                .then_some(()))
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}\nphone errors: {}\nserver log:\n{}",
            run.errors(),
            cs.log()
        )
    });
    // SIPp read the ooc scenario at start-up.
    drop(dir);
    run
}

const TRUNK_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const DID: &str = "+14155550100";
const CALLER: &str = "+14155559999";

/// A SIPp `uac` on the trunk's address calling `service` `calls` times from `CALLER`.
fn trunk_caller(cs: &Callscope, service: &str, calls: u64, rate: f64) -> SippConfig {
    let xml = uac_call_scenario(100, false).replace("sip:load@", &format!("sip:{CALLER}@"));
    let mut cfg = SippConfig::uac(Scenario::Xml(xml), cs.sip_addr());
    cfg.local_ip = TRUNK_IP;
    cfg.service = Some(service.into());
    cfg.max_calls = Some(calls);
    cfg.rate = Some(rate);
    cfg.limit = Some(10);
    cfg.global_timeout = Some(Duration::from_secs(120));
    cfg
}

/// Every SIP call record of the org, newest first (follows the cursor).
fn all_calls(cs: &Callscope) -> Vec<Value> {
    let http = cs.http();
    let mut out = Vec::new();
    let mut path = "/api/v1/calls?limit=100".to_string();
    for _ in 0..100 {
        let (status, page) = http.get(&path).unwrap();
        assert_eq!(status, 200, "{page}");
        out.extend(page["data"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/calls?limit=100&cursor={c}"),
            None => break,
        }
    }
    out
}

/// Runs one INVITE from `ip` to `service` expecting final `code`; asserts SIPp succeeded.
fn expect_final(cs: &Callscope, ip: Ipv4Addr, from: &str, service: &str, code: u16) {
    let mut cfg = SippConfig::uac(
        Scenario::Xml(scenarios::invite_expect(from, code)),
        cs.sip_addr(),
    );
    cfg.local_ip = ip;
    cfg.service = Some(service.into());
    cfg.max_calls = Some(1);
    cfg.global_timeout = Some(Duration::from_secs(30));
    let run = SippRun::start(&cfg).unwrap();
    let errors_path = run.dir().join("errors.log");
    let out = run.wait(Duration::from_secs(40)).unwrap();
    assert_eq!(
        (out.exit_code, out.successful_calls),
        (Some(0), 1),
        "expected {code} for {service}: {out:?}\n{}\nserver log:\n{}",
        std::fs::read_to_string(errors_path).unwrap_or_default(),
        tail(&cs.log(), 40)
    );
}

/// The SIP calls whose record's `to` is `number`.
fn calls_to(cs: &Callscope, number: &str) -> Vec<Value> {
    all_calls(cs)
        .into_iter()
        .filter_map(|c| {
            let call = cs
                .wait_call(c["id"].as_str()?, Duration::from_secs(10), |v| {
                    !v["sip"]["end_at"].is_null()
                })
                .ok()?;
            (call["sip"]["to"].as_str() == Some(number)).then_some(call)
        })
        .collect()
}

/// Whether a SIPp phone has been sent any INVITE (from its `-trace_msg` log).
fn phone_saw_invite(phone: &SippRun) -> bool {
    std::fs::read_to_string(phone.dir().join("messages.log"))
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("INVITE "))
}

#[test]
fn inbound_trunk_calls_reach_a_registered_phone_100_calls() {
    let far_port = callscope_testkit::ports::free_port().unwrap();
    let cs = Callscope::builder(BIN)
        .user("1001", "alice-secret-1")
        .trunk((TRUNK_IP, far_port).into(), &["127.0.0.2"])
        .route_to_user(DID, "1001")
        .start()
        .unwrap();
    let hooks = WebhookReceiver::start().unwrap();
    cs.register_webhook(&hooks, &[]).unwrap();
    let phone = sipp_phone(&cs, "1001", "alice-secret-1", 200);

    let caller = SippRun::start(&trunk_caller(&cs, DID, 100, 20.0)).unwrap();
    let out = caller.wait(Duration::from_secs(150)).unwrap();
    assert_eq!(
        (out.exit_code, out.successful_calls, out.failed_calls),
        (Some(0), 100, 0),
        "{out:?}\nserver log tail:\n{}",
        tail(&cs.log(), 60)
    );

    // 100 records, all inbound, answered, ended, with the trunk and the agent.
    let trunk_id = cs.trunk_id("carrier-1").unwrap();
    let agent_id = cs.user_id("1001").unwrap();
    let http = cs.http();
    callscope_testkit::process::wait_until(
        "100 ended call records",
        Duration::from_secs(20),
        None,
        || {
            let (_, page) = http.get("/api/v1/calls?limit=100&direction=inbound")?;
            let n = page["data"].as_array().map_or(0, Vec::len);
            Ok((n == 100).then_some(()))
        },
    )
    .unwrap();
    let calls = all_calls(&cs);
    assert_eq!(calls.len(), 100);
    let mut contacts = std::collections::HashSet::new();
    for c in &calls {
        let id = c["id"].as_str().unwrap();
        let call = cs
            .wait_call(id, Duration::from_secs(10), |v| {
                !v["sip"]["end_at"].is_null()
            })
            .unwrap();
        let sip = &call["sip"];
        assert_eq!(sip["direction"], "inbound", "{call}");
        assert_eq!(sip["trunk_id"], trunk_id, "{call}");
        // Inbound: nobody placed the call; the agent is who answered.
        assert_eq!(sip["answered_by_user_id"], agent_id, "{call}");
        assert_eq!(call["agent_identifier"], "1001", "{call}");
        assert_eq!(sip["state"], "ended", "{call}");
        assert_eq!(sip["sip_status"], 200, "{call}");
        assert!(!sip["answer_at"].is_null(), "{call}");
        assert!(
            sip["answer_at"].as_str() >= sip["invite_at"].as_str(),
            "{call}"
        );
        assert!(
            sip["end_at"].as_str() >= sip["answer_at"].as_str(),
            "{call}"
        );
        // The caller (SIPp on the trunk) hangs up with BYE.
        assert_eq!(sip["hangup_side"], "caller", "{call}");
        assert!(sip["hangup_cause"].is_string(), "{call}");
        assert_eq!(
            sip["from"].as_str().map(|f| f.contains(CALLER)),
            Some(true),
            "{call}"
        );
        contacts.insert(call["contact_id"].as_str().map(str::to_string));
    }
    // One contact, created from the caller's E.164 number.
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    let contact_id = contacts.into_iter().next().flatten().expect("a contact id");
    let (status, contact) = http.get(&format!("/api/v1/contacts/{contact_id}")).unwrap();
    assert_eq!(status, 200);
    assert!(contact.to_string().contains(CALLER), "{contact}");

    // Webhooks for one call: started, answered, ended (ringing if the phone sent 180), all
    // signed with the endpoint's secret.
    let one = calls[0]["id"].as_str().unwrap().to_string();
    let of_call = |d: &callscope_testkit::webhook::Delivery| d.body.to_string().contains(&one);
    hooks
        .wait_for(Duration::from_secs(20), |d| {
            of_call(d) && d.event == "call.ended"
        })
        .unwrap();
    let mine: Vec<_> = hooks
        .deliveries()
        .into_iter()
        .filter(|d| of_call(d))
        .collect();
    let events: Vec<&str> = mine.iter().map(|d| d.event.as_str()).collect();
    for e in [
        "call.started",
        "call.ringing",
        "call.answered",
        "call.ended",
    ] {
        assert_eq!(
            events.iter().filter(|x| **x == e).count(),
            1,
            "{e} in {events:?}"
        );
    }
    assert!(mine.iter().all(|d| d.signature_valid), "{mine:?}");
    drop(phone);
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[test]
fn failures_404_480_486_and_unauthenticated_407() {
    let far_port = callscope_testkit::ports::free_port().unwrap();
    let cs = Callscope::builder(BIN)
        .user("1001", "alice-secret-1")
        .user("1002", "bob-secret-22")
        .user("1003", "carol-secret-3")
        .trunk((TRUNK_IP, far_port).into(), &["127.0.0.2"])
        .route_to_user("+14155550101", "1001")
        .route_to_user("+14155550102", "1002")
        .route_to_user("+14155550103", "1003")
        .start()
        .unwrap();
    let alice = sipp_phone(&cs, "1001", "alice-secret-1", 200);
    let carol = sipp_phone(&cs, "1003", "carol-secret-3", 486);
    let trunk_from = format!("sip:{CALLER}@127.0.0.2");

    // Unknown DID from the trunk: 404, and no call is recorded for it.
    expect_final(&cs, TRUNK_IP, &trunk_from, "+14155550199", 404);
    // Routed to 1002, who has no registered phone: 480.
    expect_final(&cs, TRUNK_IP, &trunk_from, "+14155550102", 480);
    // Routed to 1003, whose phone answers 486 Busy Here: 486 passed back to the caller.
    expect_final(&cs, TRUNK_IP, &trunk_from, "+14155550103", 486);
    assert!(phone_saw_invite(&carol), "carol's phone was never rung");
    // An INVITE from a phone address (not the trunk) without credentials: challenged with
    // 407 and never routed: alice's phone is not rung and nothing is recorded.
    let phone_from = format!("sip:1001@{}", cs.realm());
    expect_final(&cs, Ipv4Addr::LOCALHOST, &phone_from, "+14155550101", 407);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !phone_saw_invite(&alice),
        "an unauthenticated INVITE reached alice"
    );

    let unavailable = calls_to(&cs, "+14155550102");
    assert_eq!(unavailable.len(), 1, "{unavailable:?}");
    let sip = &unavailable[0]["sip"];
    assert_eq!(sip["sip_status"], 480, "{sip}");
    assert!(sip["answer_at"].is_null(), "{sip}");
    assert_eq!(sip["direction"], "inbound");
    assert_eq!(
        (&sip["hangup_side"], &sip["hangup_cause"]),
        (&"system".into(), &"unavailable".into())
    );
    let busy = calls_to(&cs, "+14155550103");
    assert_eq!(busy.len(), 1, "{busy:?}");
    let sip = &busy[0]["sip"];
    assert_eq!(sip["sip_status"], 486, "{sip}");
    assert!(sip["answer_at"].is_null(), "{sip}");
    assert_eq!(
        (&sip["hangup_side"], &sip["hangup_cause"]),
        (&"callee".into(), &"busy".into())
    );
    // The 404 and the 407 left no record (documented: a call record exists once a call is
    // routed; an unknown DID and an unauthenticated INVITE never are).
    assert!(calls_to(&cs, "+14155550199").is_empty());
    assert!(calls_to(&cs, "+14155550101").is_empty());
    assert_eq!(all_calls(&cs).len(), 2);
    eprintln!(
        "480 record: {}\n486 record: {}",
        unavailable[0]["sip"], busy[0]["sip"]
    );
}

/// The trunk's far end: a SIPp `uas` on 127.0.0.2 answering every call.
fn trunk_far_end(port: u16) -> SippRun {
    let mut cfg = SippConfig::uas(Scenario::Xml(callscope_testkit::sipp::uas_answer_scenario()));
    cfg.local_ip = TRUNK_IP;
    cfg.local_port = port;
    cfg.extra_args = vec![
        "-trace_msg".into(),
        "-message_file".into(),
        "messages.log".into(),
    ];
    let mut run = SippRun::start(&cfg).unwrap();
    run.wait_ready(Duration::from_secs(10)).unwrap();
    run
}

#[test]
fn outbound_agent_call_through_the_trunk_with_digest_auth() {
    let far_port = callscope_testkit::ports::free_port().unwrap();
    let far = trunk_far_end(far_port);
    let cs = Callscope::builder(BIN)
        .user("1001", "alice-secret-1")
        .trunk((TRUNK_IP, far_port).into(), &["127.0.0.2"])
        .start()
        .unwrap();
    let from = format!("From: <sip:1001@{}>", cs.realm());
    let xml = callscope_testkit::sipp::uac_call_scenario(300, true)
        .replace("From: <sip:load@[local_ip]:[local_port]>", &from);
    let mut cfg = SippConfig::uac(Scenario::Xml(xml), cs.sip_addr());
    cfg.service = Some("+14155550123".into());
    cfg.auth = Some(("1001".into(), "alice-secret-1".into()));
    cfg.max_calls = Some(3);
    cfg.rate = Some(5.0);
    cfg.global_timeout = Some(Duration::from_secs(30));
    let run = SippRun::start(&cfg).unwrap();
    let errors = run.dir().join("errors.log");
    let out = run.wait(Duration::from_secs(40)).unwrap();
    assert_eq!(
        (out.exit_code, out.successful_calls, out.failed_calls),
        (Some(0), 3, 0),
        "{out:?}\n{}\n{}",
        std::fs::read_to_string(errors).unwrap_or_default(),
        tail(&cs.log(), 40)
    );
    // The far end saw three calls, each ended by callscope's BYE after the agent's.
    let far_messages = std::fs::read_to_string(far.dir().join("messages.log")).unwrap();
    assert_eq!(
        far_messages.matches("\nINVITE sip:").count()
            + usize::from(far_messages.starts_with("INVITE sip:")),
        3,
        "{far_messages}"
    );
    let far_out = far.stop().unwrap();
    assert_eq!(far_out.successful_calls, 3, "{:?}", far_out.raw);

    let calls = calls_to(&cs, "+14155550123");
    assert_eq!(calls.len(), 3);
    for call in &calls {
        let sip = &call["sip"];
        assert_eq!(sip["direction"], "outbound", "{call}");
        assert_eq!(sip["trunk_id"], cs.trunk_id("carrier-1").unwrap(), "{call}");
        assert_eq!(sip["agent_user_id"], cs.user_id("1001").unwrap(), "{call}");
        assert_eq!(sip["sip_status"], 200, "{call}");
        assert!(!sip["answer_at"].is_null(), "{call}");
        assert_eq!(sip["hangup_side"], "caller", "{call}");
        assert_eq!(call["direction"], "outbound", "{call}");
        assert_eq!(call["customer_phone"], "+14155550123", "{call}");
    }
}

/// A far end that answers, accepts any number of re-INVITEs (hold/resume) and then a BYE.
fn far_end_with_reinvites() -> String {
    let answer = |tag: &str| {
        format!(
            r#"  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]{tag}
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:far@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 2 [cseq] IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000

    ]]>
  </send>
"#
        )
    };
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="far end with re-INVITEs">
  <recv request="INVITE" crlf="true"/>
{first}  <recv request="ACK"/>
  <label id="wait"/>
  <recv request="INVITE" optional="true" next="reinvite"/>
  <recv request="BYE" next="bye"/>
  <label id="reinvite"/>
  <nop><action><log message="REINVITE"/></action></nop>
{again}  <recv request="ACK" next="wait"/>
  <label id="bye"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
</scenario>
"#,
        first = answer(";tag=[pid]U[call_number]"),
        again = answer(""),
    )
}

#[test]
fn click_to_call_rings_the_agent_then_the_customer_hold_resume_hangup() {
    let far_port = callscope_testkit::ports::free_port().unwrap();
    let mut cfg = SippConfig::uas(Scenario::Xml(far_end_with_reinvites()));
    cfg.local_ip = TRUNK_IP;
    cfg.local_port = far_port;
    cfg.extra_args = vec![
        "-trace_msg".into(),
        "-message_file".into(),
        "messages.log".into(),
        "-trace_logs".into(),
        "-log_file".into(),
        "far.log".into(),
    ];
    let mut far = SippRun::start(&cfg).unwrap();
    far.wait_ready(Duration::from_secs(10)).unwrap();
    let cs = Callscope::builder(BIN)
        .user("1001", "alice-secret-1")
        .trunk((TRUNK_IP, far_port).into(), &["127.0.0.2"])
        .start()
        .unwrap();
    let agent = sipp_phone_with(&cs, "1001", "alice-secret-1", &far_end_with_reinvites());
    let hooks = WebhookReceiver::start().unwrap();
    cs.register_webhook(&hooks, &[]).unwrap();
    let http = cs.http();
    let (status, created) = http
        .post(
            "/api/v1/calls",
            &serde_json::json!({ "agent_extension": "1001", "number": "+14155550123" }),
        )
        .unwrap();
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let answered = cs
        .wait_call(&id, Duration::from_secs(15), |v| {
            !v["sip"]["answer_at"].is_null()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", tail(&cs.log(), 40)));
    // The agent's phone was rung before the customer's far end.
    assert!(phone_saw_invite(&agent), "agent phone not rung");
    let far_msgs = std::fs::read_to_string(far.dir().join("messages.log")).unwrap_or_default();
    assert!(
        far_msgs.contains("INVITE sip:"),
        "customer not called: {far_msgs}"
    );
    assert_eq!(
        answered["sip"]["trunk_id"],
        cs.trunk_id("carrier-1").unwrap()
    );
    assert_eq!(
        answered["sip"]["agent_user_id"],
        cs.user_id("1001").unwrap()
    );

    for action in ["hold", "resume"] {
        let (status, body) = http
            .post(
                &format!("/api/v1/calls/{id}/{action}"),
                &serde_json::json!({}),
            )
            .unwrap();
        assert!((200..300).contains(&status), "{action}: {status} {body}");
        let on_hold = action == "hold";
        cs.wait_call(&id, Duration::from_secs(10), |v| {
            v["sip"]["on_hold"] == on_hold
        })
        .unwrap_or_else(|e| panic!("{action}: {e}\n{}", tail(&cs.log(), 40)));
    }
    let reinvites = std::fs::read_to_string(far.dir().join("far.log")).unwrap_or_default();
    let far_msgs = std::fs::read_to_string(far.dir().join("messages.log")).unwrap_or_default();
    assert!(
        reinvites.matches("REINVITE").count() >= 2,
        "hold and resume re-INVITEs: {far_msgs}"
    );
    assert!(
        far_msgs.contains("a=sendonly") || far_msgs.contains("a=inactive"),
        "{far_msgs}"
    );

    let (status, body) = http
        .post(
            &format!("/api/v1/calls/{id}/hangup"),
            &serde_json::json!({}),
        )
        .unwrap();
    assert!((200..300).contains(&status), "hangup: {status} {body}");
    let ended = cs
        .wait_call(&id, Duration::from_secs(10), |v| {
            !v["sip"]["end_at"].is_null()
        })
        .unwrap();
    assert_eq!(ended["sip"]["state"], "ended", "{ended}");
    // Both legs got a BYE: the far end completed its scenario, the agent phone saw one.
    let far_out = far.stop().unwrap();
    assert_eq!(far_out.successful_calls, 1, "{:?}", far_out.raw);
    let agent_msgs = std::fs::read_to_string(agent.dir().join("messages.log")).unwrap_or_default();
    assert!(
        agent_msgs.lines().any(|l| l.starts_with("BYE ")),
        "agent leg not hung up: {agent_msgs}"
    );
    hooks
        .wait_for(Duration::from_secs(10), |d| {
            d.event == "call.ended" && d.body.to_string().contains(&id)
        })
        .unwrap();
}

/// A request flood: one out-of-dialog request per SIPp "call", never answering anything (no
/// ACK for the 503s, no retry on 401/407) — what a flooding script does.
fn flood_scenario(method: &str) -> String {
    let ruri = if method == "REGISTER" {
        "sip:[remote_ip]:[remote_port]"
    } else {
        "sip:[service]@[remote_ip]:[remote_port]"
    };
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="flood {method}">
  <send>
    <![CDATA[
{method} {ruri} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:[service]@[remote_ip]>;tag=[pid]F[call_number]
To: <sip:[service]@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 {method}
Contact: <sip:[service]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
</scenario>
"#
    )
}

const FLOODER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);

/// INVITE and REGISTER floods from 127.0.0.4 (SIPp, several hundred requests a second)
/// while 50 trunk calls from 127.0.0.2 reach a registered phone: every legitimate call
/// completes, the flooder is answered 503 (rate limited), and /metrics counts it.
#[test]
fn a_register_and_invite_flood_does_not_starve_legitimate_calls() {
    let far_port = callscope_testkit::ports::free_port().unwrap();
    let cs = Callscope::builder(BIN)
        .user("1001", "alice-secret-1")
        .trunk((TRUNK_IP, far_port).into(), &["127.0.0.2"])
        .route_to_user(DID, "1001")
        .start()
        .unwrap();
    let phone = sipp_phone(&cs, "1001", "alice-secret-1", 200);
    let before = cs.metrics().unwrap();

    let flood = |method: &str| {
        let mut cfg = SippConfig::uac(Scenario::Xml(flood_scenario(method)), cs.sip_addr());
        cfg.local_ip = FLOODER_IP;
        cfg.service = Some("1001".into());
        cfg.rate = Some(300.0);
        cfg.max_calls = Some(30_000);
        cfg.limit = Some(10_000);
        cfg.global_timeout = Some(Duration::from_secs(120));
        SippRun::start(&cfg).unwrap()
    };
    let invite_flood = flood("INVITE");
    let register_flood = flood("REGISTER");
    // Let the flood get going before the legitimate calls start.
    std::thread::sleep(Duration::from_secs(2));
    let flooding = cs.metrics().unwrap();

    let caller = SippRun::start(&trunk_caller(&cs, DID, 50, 10.0)).unwrap();
    let out = caller.wait(Duration::from_secs(120)).unwrap();
    let during = cs.metrics().unwrap();
    let invite_out = invite_flood.stop().unwrap();
    let register_out = register_flood.stop().unwrap();
    let delta = |m: &std::collections::HashMap<String, f64>, k: &str| {
        m.get(k).copied().unwrap_or(0.0) - before.get(k).copied().unwrap_or(0.0)
    };
    eprintln!(
        "legitimate: {out:?}\nflood INVITE sent {} REGISTER sent {}\n\
         after 2 s of flood: received +{} rate_limited +{}\n\
         by the end: received +{} rate_limited +{} bans +{} banned_drops +{}",
        invite_out.total_calls,
        register_out.total_calls,
        delta(&flooding, "callscope_sip_messages_received"),
        delta(&flooding, "callscope_sip_rate_limited"),
        delta(&during, "callscope_sip_messages_received"),
        delta(&during, "callscope_sip_rate_limited"),
        delta(&during, "callscope_sip_bans"),
        delta(&during, "callscope_sip_banned_drops"),
    );
    assert_eq!(
        (out.exit_code, out.successful_calls, out.failed_calls),
        (Some(0), 50, 0),
        "legitimate calls failed under the flood: {out:?}\nserver log tail:\n{}",
        tail(&cs.log(), 60)
    );
    // The flood really happened and was refused at the rate limit.
    assert!(
        invite_out.total_calls + register_out.total_calls >= 2_000,
        "flooders sent only {} + {}",
        invite_out.total_calls,
        register_out.total_calls
    );
    assert!(
        delta(&during, "callscope_sip_rate_limited") >= 1_000.0,
        "the flood was not rate limited"
    );
    // 50 calls on record, all answered and ended; the flood routed nothing.
    let http = cs.http();
    callscope_testkit::process::wait_until(
        "50 call records",
        Duration::from_secs(30),
        None,
        || {
            let (_, page) = http.get("/api/v1/calls?limit=100")?;
            let n = page["data"].as_array().map_or(0, Vec::len);
            Ok((n >= 50).then_some(n))
        },
    )
    .unwrap();
    let calls = all_calls(&cs);
    assert_eq!(calls.len(), 50, "only the legitimate calls are recorded");
    drop(phone);
}
