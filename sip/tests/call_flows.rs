//! Call flows beyond "answer and hang up", each against real SIPp peers on loopback:
//! CANCEL before answer, BYE from the callee, hold/resume by re-INVITE, blind transfer by
//! REFER, session timers, a callee killed mid-call, ring groups, click-to-call and a trunk
//! that challenges our INVITE (401/407).
//! Every SIPp plays a scenario written here and exits 0 only if every message it expected
//! arrived (and every `check_it` matched): that exit code is the peers' verdict.

mod common;

use std::time::Duration;

use callscope_sip::call::CallConfig;
use callscope_sip::control::CallControl;
use callscope_sip::directory::{Destination, RingStrategy, RouteTarget, SipTrunk};
use callscope_sip::events::{CallEvent, HangupSide};
use callscope_sip::media::LegRole;
use common::*;

const LIMIT: Duration = Duration::from_secs(45);

/// A complete scenario. Every variable an `ereg` assigns is also listed in a `Reference`
/// element: SIPp refuses a scenario whose variables are set but never read, and the checks
/// only need the match itself.
fn scenario(name: &str, body: &str) -> String {
    let mut variables: Vec<&str> = body
        .split("assign_to=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    variables.sort_unstable();
    variables.dedup();
    let reference = if variables.is_empty() {
        String::new()
    } else {
        format!("  <Reference variables=\"{}\"/>\n", variables.join(","))
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"{name}\">\n{body}{reference}</scenario>\n"
    )
}

fn sdp(direction: &str) -> String {
    format!(
        "v=0\n\
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]\n\
s=-\n\
c=IN IP[media_ip_type] [media_ip]\n\
t=0 0\n\
m=audio [media_port] RTP/AVP 0\n\
a=rtpmap:0 PCMU/8000\n\
a={direction}\n"
    )
}

// ---- UAC pieces (SIPp calls callscope as the trunk) ----

const UAC_DIALOG_HEADERS: &str = "From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]\n\
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]\n\
Call-ID: [call_id]\n";

fn uac_invite(extra_headers: &str) -> String {
    format!(
        r#"  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
{extra_headers}Content-Type: application/sdp
Content-Length: [len]

{sdp}]]></send>
"#,
        sdp = sdp("sendrecv")
    )
}

/// 100/180 optional, then 200 (with header checks) and the ACK.
fn uac_answered(checks: &str) -> String {
    format!(
        r#"  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true">
    <action>{checks}</action>
  </recv>
  <send><![CDATA[
ACK sip:callscope@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
{UAC_DIALOG_HEADERS}CSeq: 1 ACK
Content-Length: 0
]]></send>
"#
    )
}

/// An in-dialog request from the UAC; `body` is SDP or empty.
fn uac_request(method: &str, cseq: u32, extra_headers: &str, body: &str) -> String {
    let content_type = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\n".to_string()
    };
    format!(
        r#"  <send retrans="500"><![CDATA[
{method} sip:callscope@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
{UAC_DIALOG_HEADERS}CSeq: {cseq} {method}
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
{extra_headers}{content_type}Content-Length: [len]

{body}]]></send>
"#
    )
}

fn uac_ack(cseq: u32) -> String {
    format!(
        r#"  <send><![CDATA[
ACK sip:callscope@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
{UAC_DIALOG_HEADERS}CSeq: {cseq} ACK
Content-Length: 0
]]></send>
"#
    )
}

/// Either side: receive a request and answer it 200 (no body).
fn recv_and_ok(method: &str, checks: &str) -> String {
    format!(
        r#"  <recv request="{method}">
    <action>{checks}</action>
  </recv>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0
]]></send>
"#
    )
}

fn check_msg(pattern: &str, var: &str) -> String {
    format!(r#"<ereg regexp="{pattern}" search_in="msg" check_it="true" assign_to="{var}"/>"#)
}

fn check_header(header: &str, pattern: &str, var: &str) -> String {
    format!(
        r#"<ereg regexp="{pattern}" search_in="hdr" header="{header}" check_it="true" assign_to="{var}"/>"#
    )
}

// ---- UAS pieces (SIPp is a phone or the trunk's far end; callscope calls it) ----

/// Receive callscope's INVITE (remembering who it is for a BYE of our own), ring for
/// `ring_ms`, answer 200 with SDP and take the ACK.
fn uas_answer(ring_ms: u32) -> String {
    format!(
        r#"  <recv request="INVITE">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="peer_from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="my_to"/>
      <ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" assign_to="peer_contact"/>
    </action>
  </recv>
{ringing}  <pause milliseconds="{ring_ms}"/>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

{sdp}]]></send>
  <recv request="ACK"/>
"#,
        ringing = uas_ringing(),
        sdp = sdp("sendrecv")
    )
}

fn uas_ringing() -> &'static str {
    r#"  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Length: 0
]]></send>
"#
}

/// Ring, then expect the CANCEL: 200 to it, 487 to the INVITE, take the ACK.
fn uas_ring_until_cancel() -> String {
    format!(
        r#"  <recv request="INVITE"/>
{ringing}  <recv request="CANCEL"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0
]]></send>
  <send><![CDATA[
SIP/2.0 487 Request Terminated
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
CSeq: [last_cseq_number] INVITE
Content-Length: 0
]]></send>
  <recv request="ACK"/>
"#,
        ringing = uas_ringing()
    )
}

/// The UAS hangs up: a BYE built from what it remembered of the INVITE.
fn uas_bye() -> &'static str {
    r#"  <send retrans="500"><![CDATA[
BYE [$peer_contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From:[$my_to];tag=[pid]SIPpTag01[call_number]
To:[$peer_from]
[last_Call-ID:]
CSeq: 1 BYE
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200"/>
"#
}

/// Answer a re-INVITE (after `checks`) with our SDP in `direction`, take the ACK.
fn uas_reinvite(checks: &str, direction: &str) -> String {
    format!(
        r#"  <recv request="INVITE">
    <action>{checks}</action>
  </recv>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

{sdp}]]></send>
  <recv request="ACK"/>
"#,
        sdp = sdp(direction)
    )
}

/// Call, wait for ringing, CANCEL; expect 200 to the CANCEL and 487 to the INVITE, ACK
/// it (same transaction as the INVITE: `[last_Via:]`).
fn uac_ring_then_cancel() -> String {
    format!(
        r#"{invite}  <recv response="100" optional="true"/>
  <recv response="180"/>
  <pause milliseconds="300"/>
  <send><![CDATA[
CANCEL sip:[service]@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 CANCEL
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200"/>
  <recv response="487"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Content-Length: 0
]]></send>
"#,
        invite = uac_invite("")
    )
}

/// The UAS sends REFER (blind transfer to `extension`), takes the 202 and both NOTIFYs
/// (in either order relative to the 202) and the BYE that ends its part.
fn uas_refer(extension: &str) -> String {
    format!(
        r#"  <send retrans="500"><![CDATA[
REFER [$peer_contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From:[$my_to];tag=[pid]SIPpTag01[call_number]
To:[$peer_from]
[last_Call-ID:]
CSeq: 2 REFER
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Refer-To: <sip:{extension}@[remote_ip]:[remote_port]>
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="202" optional="true"/>
{notify_trying}  <recv response="202" optional="true"/>
{notify_ok}{bye}"#,
        notify_trying = recv_and_ok("NOTIFY", &check_msg("SIP/2.0 100", "trying")),
        notify_ok = recv_and_ok("NOTIFY", &check_msg("SIP/2.0 200", "ok")),
        bye = recv_and_ok("BYE", "")
    )
}

// ---- helpers ----

fn route_did(server: &TestServer, did: &str, target: RouteTarget) {
    server
        .directory
        .dids
        .lock()
        .unwrap()
        .insert(did.to_string(), Destination::Internal(target));
}

fn user(user_id: &str) -> RouteTarget {
    RouteTarget::User {
        user_id: user_id.to_string(),
    }
}

fn ended(events: &[CallEvent]) -> Vec<(u16, HangupSide, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            CallEvent::Ended {
                sip_status,
                hangup_side,
                cause,
                ..
            } => Some((*sip_status, *hangup_side, cause.clone())),
            _ => None,
        })
        .collect()
}

fn count(events: &[CallEvent], pred: impl Fn(&CallEvent) -> bool) -> usize {
    events.iter().filter(|e| pred(e)).count()
}

fn at_ms(event: &CallEvent) -> i64 {
    match event {
        CallEvent::Started { at_ms, .. }
        | CallEvent::Ringing { at_ms, .. }
        | CallEvent::Answered { at_ms, .. }
        | CallEvent::Held { at_ms, .. }
        | CallEvent::Resumed { at_ms, .. }
        | CallEvent::Transferred { at_ms, .. }
        | CallEvent::Ended { at_ms, .. } => *at_ms,
    }
}

/// The audio port in the SDP a SIPp sent (from its `-trace_msg` log).
fn sent_sdp_port(trace: &str) -> Option<u16> {
    trace
        .split("UDP message sent")
        .skip(1)
        .flat_map(|message| message.lines())
        .find_map(|line| line.strip_prefix("m=audio "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|port| port.parse().ok())
}

/// Nothing left behind: no call, no task, no media port.
async fn assert_clean(server: &TestServer) {
    let (calls, tasks) = wait_idle(server, Duration::from_secs(20)).await;
    assert_eq!((calls, tasks), (0, 0), "calls/tasks left behind");
    assert_eq!(server.media.ports_in_use(), 0, "RTP ports leaked");
}

async fn register_uas(server: &TestServer, user_id: &str, name: &str, xml: &str) -> Sipp {
    let (uas, addr) = sipp_uas(name, &scenario(name, xml)).await;
    server.locator.register(user_id, user_id, addr);
    uas
}

// ---- the flows ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_before_answer_gives_487_and_cancels_the_callee() {
    let mut server = start_server(quiet_config()).await;
    let uas = register_uas(&server, "u-cancel", "cancel_uas", &uas_ring_until_cancel()).await;
    route_did(&server, "cancel", user("u-cancel"));
    let uac_xml = uac_ring_then_cancel();
    let uac = sipp_uac(
        "cancel_uac",
        &scenario("cancel_uac", &uac_xml),
        server.addr,
        "cancel",
    );
    uac.expect_success(LIMIT, "caller (CANCEL → 487)").await;
    uas.expect_success(LIMIT, "callee (gets CANCEL)").await;
    let events = collect_events(&mut server.events, 1, Duration::from_secs(10)).await;
    assert_eq!(
        ended(&events),
        vec![(487, HangupSide::Caller, "cancelled".to_string())],
        "{events:?}"
    );
    assert_eq!(
        count(&events, |e| matches!(e, CallEvent::Answered { .. })),
        0
    );
    assert_clean(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bye_from_the_callee_ends_both_legs() {
    let mut server = start_server(quiet_config()).await;
    let uas_xml = format!(
        "{}  <pause milliseconds=\"500\"/>\n{}",
        uas_answer(0),
        uas_bye()
    );
    let uas = register_uas(&server, "u-byer", "callee_bye_uas", &uas_xml).await;
    route_did(&server, "byer", user("u-byer"));
    let uac_xml = format!(
        "{}{}{}",
        uac_invite(""),
        uac_answered(""),
        recv_and_ok("BYE", "")
    );
    let uac = sipp_uac(
        "callee_bye_uac",
        &scenario("callee_bye_uac", &uac_xml),
        server.addr,
        "byer",
    );
    uac.expect_success(LIMIT, "caller (receives BYE)").await;
    uas.expect_success(LIMIT, "callee (sends BYE)").await;
    let events = collect_events(&mut server.events, 1, Duration::from_secs(10)).await;
    assert_eq!(
        ended(&events),
        vec![(200, HangupSide::Callee, "normal_clearing".to_string())],
        "{events:?}"
    );
    assert_clean(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_resume_by_reinvite_reach_the_callee() {
    let mut server = start_server(quiet_config()).await;
    let uas_xml = format!(
        "{}{}{}{}",
        uas_answer(0),
        // Held: the callee is offered a direction in which it does not send.
        uas_reinvite(&check_msg("a=sendonly|a=inactive", "hold"), "recvonly"),
        uas_reinvite(&check_msg("a=sendrecv", "resume"), "sendrecv"),
        recv_and_ok("BYE", "")
    );
    let uas = register_uas(&server, "u-held", "hold_uas", &uas_xml).await;
    route_did(&server, "hold", user("u-held"));
    let uac_xml = format!(
        "{}{}  <pause milliseconds=\"300\"/>\n{}{}{}  <pause milliseconds=\"300\"/>\n{}{}{}{}  <recv response=\"200\"/>\n",
        uac_invite(""),
        uac_answered(""),
        uac_request("INVITE", 2, "", &sdp("sendonly")),
        format_args!(
            "  <recv response=\"200\">\n    <action>{}</action>\n  </recv>\n",
            check_msg("a=recvonly", "held_answer")
        ),
        uac_ack(2),
        uac_request("INVITE", 3, "", &sdp("sendrecv")),
        format_args!(
            "  <recv response=\"200\">\n    <action>{}</action>\n  </recv>\n",
            check_msg("a=sendrecv", "resumed_answer")
        ),
        uac_ack(3),
        uac_request("BYE", 4, "", ""),
    );
    let uac = sipp_uac(
        "hold_uac",
        &scenario("hold_uac", &uac_xml),
        server.addr,
        "hold",
    );
    uac.expect_success(LIMIT, "caller (hold, resume, BYE)")
        .await;
    uas.expect_success(LIMIT, "callee (sees hold and resume)")
        .await;
    let events = collect_events(&mut server.events, 1, Duration::from_secs(10)).await;
    let held = events
        .iter()
        .position(|e| matches!(e, CallEvent::Held { .. }));
    let resumed = events
        .iter()
        .position(|e| matches!(e, CallEvent::Resumed { .. }));
    assert!(
        matches!((held, resumed), (Some(h), Some(r)) if h < r),
        "Held then Resumed expected: {events:?}"
    );
    assert_eq!(
        ended(&events),
        vec![(200, HangupSide::Caller, "normal_clearing".to_string())]
    );
    assert_clean(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refer_blind_transfer_bridges_the_callee_to_the_target() {
    let mut server = start_server(quiet_config()).await;
    // The original callee stays; it hangs up once the transfer is over.
    let callee_xml = format!(
        "{}  <pause milliseconds=\"2500\"/>\n{}",
        uas_answer(0),
        uas_bye()
    );
    let callee = register_uas(&server, "u-kept", "refer_callee", &callee_xml).await;
    // The transfer target answers and is hung up when the callee leaves.
    let target_xml = format!("{}{}", uas_answer(200), recv_and_ok("BYE", ""));
    let target = register_uas(&server, "u-target", "refer_target", &target_xml).await;
    server
        .directory
        .extensions
        .lock()
        .unwrap()
        .insert("2002".into(), "u-target".into());
    route_did(&server, "transfer", user("u-kept"));
    // RFC 6665 lets the first NOTIFY overtake the 202: accept either order here and check
    // afterwards that the 202 did arrive.
    let uac_xml = format!(
        "{}{}  <pause milliseconds=\"300\"/>\n{}  <recv response=\"202\" optional=\"true\"/>\n{}  <recv response=\"202\" optional=\"true\"/>\n{}{}",
        uac_invite(""),
        uac_answered(""),
        uac_request(
            "REFER",
            2,
            "Refer-To: <sip:2002@[remote_ip]:[remote_port]>\nReferred-By: <sip:sipp@[local_ip]:[local_port]>\n",
            ""
        ),
        recv_and_ok("NOTIFY", &check_msg("SIP/2.0 100", "trying")),
        recv_and_ok("NOTIFY", &check_msg("SIP/2.0 200", "ok")),
        recv_and_ok("BYE", ""),
    );
    let uac = sipp_uac(
        "refer_uac",
        &scenario("refer_uac", &uac_xml),
        server.addr,
        "transfer",
    );
    let mut events = Vec::new();
    wait_for(&mut server, &mut events, |e| {
        matches!(e, CallEvent::Transferred { .. })
    })
    .await;
    let call_id = match events.first() {
        Some(CallEvent::Started { call_id, .. }) => call_id.clone(),
        other => panic!("first event is not Started: {other:?}"),
    };
    // The caller's slot now describes the target: its media goes to the target's port.
    let bridged_to = server
        .media
        .leg_status(&call_id, LegRole::Caller)
        .and_then(|(_, port)| port);
    let trace = uac
        .expect_success(LIMIT, "transferor (REFER, NOTIFYs, BYE)")
        .await;
    assert!(trace.contains("SIP/2.0 202 Accepted"), "{trace}");
    let target_trace = target
        .expect_success(LIMIT, "transfer target (answered, then BYE)")
        .await;
    let target_port = sent_sdp_port(&target_trace);
    assert!(target_port.is_some(), "{target_trace}");
    assert_eq!(
        bridged_to, target_port,
        "media not re-pointed at the target"
    );
    callee
        .expect_success(LIMIT, "kept callee (hangs up after transfer)")
        .await;
    events.extend(collect_events(&mut server.events, 1, Duration::from_secs(10)).await);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, CallEvent::Transferred { to, .. } if to == "2002")),
        "{events:?}"
    );
    assert_eq!(
        ended(&events),
        vec![(200, HangupSide::Callee, "normal_clearing".to_string())],
        "{events:?}"
    );
    assert_clean(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expires_below_min_se_gets_422() {
    let mut server = start_server(quiet_config()).await;
    let uac_xml = format!(
        r#"{invite}  <recv response="100" optional="true"/>
  <recv response="422">
    <action>{check}</action>
  </recv>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Content-Length: 0
]]></send>
"#,
        invite = uac_invite("Session-Expires: 30\nMin-SE: 30\nSupported: timer\n"),
        check = check_header("Min-SE:", "90", "min_se")
    );
    // Routed somewhere valid: the 422 must come from the timer check, not routing.
    server
        .locator
        .register("u-x", "x", "127.0.0.1:9".parse().unwrap());
    route_did(&server, "short", user("u-x"));
    let uac = sipp_uac(
        "se422_uac",
        &scenario("se422_uac", &uac_xml),
        server.addr,
        "short",
    );
    uac.expect_success(LIMIT, "caller (422 with Min-SE 90)")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = collect_events(&mut server.events, 1, Duration::from_millis(500)).await;
    assert!(events.is_empty(), "a 422 is no call: {events:?}");
    assert_clean(&server).await;
}

fn timer_config() -> CallConfig {
    CallConfig {
        min_session_expires: 2,
        ..quiet_config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrefreshed_session_timer_ends_the_call_with_timeout() {
    let mut server = start_server(timer_config()).await;
    let uas = register_uas(
        &server,
        "u-timer",
        "timer_uas",
        &format!("{}{}", uas_answer(0), recv_and_ok("BYE", "")),
    )
    .await;
    route_did(&server, "timer", user("u-timer"));
    let uac_xml = format!(
        "{}{}{}",
        uac_invite("Session-Expires: 3;refresher=uac\nSupported: timer\n"),
        uac_answered(&check_header(
            "Session-Expires:",
            "^ *3;refresher=uac",
            "se"
        )),
        recv_and_ok("BYE", "")
    );
    let started = std::time::Instant::now();
    let uac = sipp_uac(
        "timer_uac",
        &scenario("timer_uac", &uac_xml),
        server.addr,
        "timer",
    );
    uac.expect_success(LIMIT, "caller (timer granted, then BYE)")
        .await;
    let elapsed = started.elapsed();
    uas.expect_success(LIMIT, "callee (BYE)").await;
    // Granted 3 s; RFC 4028 §10 gives up at 3 - min(32, 3/3) = 2 s without a refresh.
    assert!(
        elapsed >= Duration::from_millis(1800) && elapsed < Duration::from_secs(8),
        "ended after {elapsed:?}"
    );
    let events = collect_events(&mut server.events, 1, Duration::from_secs(10)).await;
    assert_eq!(
        ended(&events),
        vec![(200, HangupSide::System, "timeout".to_string())],
        "{events:?}"
    );
    assert_clean(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshed_session_timer_keeps_the_call() {
    let mut server = start_server(timer_config()).await;
    let uas = register_uas(
        &server,
        "u-fresh",
        "refresh_uas",
        &format!("{}{}", uas_answer(0), recv_and_ok("BYE", "")),
    )
    .await;
    route_did(&server, "fresh", user("u-fresh"));
    // Refresh every 1.2 s for 4.8 s (well past the 2 s give-up point), then hang up.
    let mut uac_xml = format!(
        "{}{}",
        uac_invite("Session-Expires: 3;refresher=uac\nSupported: timer\n"),
        uac_answered("")
    );
    for cseq in 2..=5 {
        uac_xml.push_str("  <pause milliseconds=\"1200\"/>\n");
        uac_xml.push_str(&uac_request(
            "INVITE",
            cseq,
            "Session-Expires: 3;refresher=uac\nSupported: timer\n",
            &sdp("sendrecv"),
        ));
        uac_xml
            .push_str("  <recv response=\"100\" optional=\"true\"/>\n  <recv response=\"200\"/>\n");
        uac_xml.push_str(&uac_ack(cseq));
    }
    uac_xml.push_str(&uac_request("BYE", 6, "", ""));
    uac_xml.push_str("  <recv response=\"200\"/>\n");
    let uac = sipp_uac(
        "refresh_uac",
        &scenario("refresh_uac", &uac_xml),
        server.addr,
        "fresh",
    );
    uac.expect_success(LIMIT, "caller (refreshes, then BYE)")
        .await;
    uas.expect_success(LIMIT, "callee (BYE)").await;
    let events = collect_events(&mut server.events, 1, Duration::from_secs(10)).await;
    assert_eq!(
        ended(&events),
        vec![(200, HangupSide::Caller, "normal_clearing".to_string())],
        "{events:?}"
    );
    assert_clean(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_callee_ends_the_call_with_timeout_and_leaks_nothing() {
    let config = CallConfig {
        keepalive_interval: Some(Duration::from_secs(1)),
        keepalive_timeout: Duration::from_secs(1),
        ..quiet_config()
    };
    let mut server = start_server(config).await;
    let tasks_before = server.manager.live_tasks();
    // It would wait for a BYE forever; it is killed first.
    let mut uas = register_uas(
        &server,
        "u-dies",
        "killed_uas",
        &format!("{}{}", uas_answer(0), recv_and_ok("BYE", "")),
    )
    .await;
    route_did(&server, "dies", user("u-dies"));
    let uac_xml = format!(
        "{}{}{}",
        uac_invite(""),
        uac_answered(""),
        recv_and_ok("BYE", "")
    );
    let uac = sipp_uac(
        "killed_uac",
        &scenario("killed_uac", &uac_xml),
        server.addr,
        "dies",
    );
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !events
        .iter()
        .any(|e| matches!(e, CallEvent::Answered { .. }))
    {
        match tokio::time::timeout_at(deadline, server.events.recv()).await {
            Ok(Some(event)) => events.push(event),
            _ => panic!("the call was never answered: {events:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        server.manager.live_calls(),
        1,
        "the call is up before the kill"
    );
    uas.kill();
    let killed_at = std::time::Instant::now();
    uac.expect_success(LIMIT, "caller (gets BYE after the callee died)")
        .await;
    events.extend(collect_events(&mut server.events, 1, Duration::from_secs(15)).await);
    assert!(killed_at.elapsed() < Duration::from_secs(10));
    assert_eq!(
        ended(&events),
        vec![(200, HangupSide::System, "timeout".to_string())],
        "{events:?}"
    );
    assert_clean(&server).await;
    assert_eq!(server.manager.live_tasks(), tasks_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_all_cancels_the_member_that_did_not_answer() {
    let mut server = start_server(quiet_config()).await;
    let answers = register_uas(
        &server,
        "u-fast",
        "ringall_answers",
        &format!("{}{}", uas_answer(800), recv_and_ok("BYE", "")),
    )
    .await;
    let rings = register_uas(&server, "u-slow", "ringall_rings", &uas_ring_until_cancel()).await;
    route_did(
        &server,
        "group",
        RouteTarget::RingGroup {
            members: vec!["u-slow".into(), "u-fast".into()],
            strategy: RingStrategy::RingAll,
            member_timeout_s: 0,
            total_timeout_s: 10,
        },
    );
    let uac_xml = format!(
        "{}{}  <pause milliseconds=\"500\"/>\n{}  <recv response=\"200\"/>\n",
        uac_invite(""),
        uac_answered(""),
        uac_request("BYE", 2, "", "")
    );
    let uac = sipp_uac(
        "ringall_uac",
        &scenario("ringall_uac", &uac_xml),
        server.addr,
        "group",
    );
    uac.expect_success(LIMIT, "caller").await;
    answers.expect_success(LIMIT, "member that answers").await;
    rings.expect_success(LIMIT, "member that gets CANCEL").await;
    let events = collect_events(&mut server.events, 1, Duration::from_secs(10)).await;
    assert!(
        events.iter().any(|e| matches!(e, CallEvent::Answered { answered_by_user_id: Some(u), .. } if u == "u-fast")),
        "{events:?}"
    );
    assert_eq!(
        ended(&events),
        vec![(200, HangupSide::Caller, "normal_clearing".to_string())]
    );
    assert_clean(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longest_idle_moves_on_after_member_timeout() {
    let mut server = start_server(quiet_config()).await;
    let first = register_uas(&server, "u-first", "idle_first", &uas_ring_until_cancel()).await;
    let second = register_uas(
        &server,
        "u-second",
        "idle_second",
        &format!("{}{}", uas_answer(0), recv_and_ok("BYE", "")),
    )
    .await;
    route_did(
        &server,
        "idle",
        RouteTarget::RingGroup {
            members: vec!["u-first".into(), "u-second".into()],
            strategy: RingStrategy::LongestIdle,
            member_timeout_s: 1,
            total_timeout_s: 10,
        },
    );
    let uac_xml = format!(
        "{}{}  <pause milliseconds=\"300\"/>\n{}  <recv response=\"200\"/>\n",
        uac_invite(""),
        uac_answered(""),
        uac_request("BYE", 2, "", "")
    );
    let uac = sipp_uac(
        "idle_uac",
        &scenario("idle_uac", &uac_xml),
        server.addr,
        "idle",
    );
    uac.expect_success(LIMIT, "caller").await;
    first
        .expect_success(LIMIT, "first member (no answer, CANCEL)")
        .await;
    second
        .expect_success(LIMIT, "second member (answers)")
        .await;
    let events = collect_events(&mut server.events, 1, Duration::from_secs(10)).await;
    let started = events
        .iter()
        .find(|e| matches!(e, CallEvent::Started { .. }))
        .map(at_ms);
    let answered = events.iter().find_map(|e| match e {
        CallEvent::Answered {
            answered_by_user_id,
            at_ms,
            ..
        } => Some((answered_by_user_id.clone(), *at_ms)),
        _ => None,
    });
    match (started, answered) {
        (Some(start), Some((Some(by), at))) => {
            assert_eq!(by, "u-second");
            assert!(
                at - start >= 1000,
                "second member rang before the first timed out"
            );
        }
        other => panic!("no answer recorded: {other:?} {events:?}"),
    }
    assert_clean(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn click_to_call_rings_agent_first_then_number_and_hangs_up_both() {
    let mut server = start_server(quiet_config()).await;
    let agent = register_uas(
        &server,
        "u-agent",
        "c2c_agent",
        &format!("{}{}", uas_answer(700), recv_and_ok("BYE", "")),
    )
    .await;
    let (customer, customer_addr) = sipp_uas(
        "c2c_customer",
        &scenario(
            "c2c_customer",
            &format!(
                "{}{}",
                uas_answer(0),
                recv_and_ok("BYE", &check_header("To:", "\\+15550001111", "to"))
            ),
        ),
    )
    .await;
    let trunk = SipTrunk {
        org_id: ORG.into(),
        trunk_id: "trunk-out".into(),
        name: "out".into(),
        outbound_proxy: customer_addr,
        username: None,
        password: None,
        inbound_acl: vec![],
    };
    server.directory.dids.lock().unwrap().insert(
        "+15550001111".into(),
        Destination::External {
            number_e164: "+15550001111".into(),
            trunk,
        },
    );
    let call_id = server
        .manager
        .click_to_call(ORG, "u-agent", "+15550001111")
        .await
        .expect("click-to-call starts");
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !events
        .iter()
        .any(|e| matches!(e, CallEvent::Answered { .. }))
    {
        match tokio::time::timeout_at(deadline, server.events.recv()).await {
            Ok(Some(event)) => events.push(event),
            _ => panic!("the customer never answered: {events:?}"),
        }
    }
    assert_eq!(server.manager.active_calls(ORG), vec![call_id.clone()]);
    assert!(server.manager.active_calls("other-org").is_empty());
    // Another organization cannot hang it up.
    assert!(server.manager.hangup("other-org", &call_id).await.is_err());
    tokio::time::sleep(Duration::from_millis(300)).await;
    server
        .manager
        .hangup(ORG, &call_id)
        .await
        .expect("hangup accepted");
    agent
        .expect_success(LIMIT, "agent (answers, gets BYE)")
        .await;
    customer
        .expect_success(LIMIT, "customer (answers, gets BYE)")
        .await;
    events.extend(collect_events(&mut server.events, 1, Duration::from_secs(10)).await);
    let started = events
        .iter()
        .find(|e| matches!(e, CallEvent::Started { .. }))
        .map(at_ms)
        .unwrap_or(i64::MAX);
    let answered = events
        .iter()
        .find(|e| matches!(e, CallEvent::Answered { .. }))
        .map(at_ms)
        .unwrap_or(0);
    // The agent rings 700 ms before answering; the customer is only dialled after that.
    assert!(answered - started >= 700, "{events:?}");
    assert_eq!(
        ended(&events),
        vec![(200, HangupSide::Api, "normal_clearing".to_string())],
        "{events:?}"
    );
    assert_clean(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refer_from_the_callee_bridges_the_caller_to_the_target() {
    let mut server = start_server(quiet_config()).await;
    let callee_xml = format!(
        "{}  <pause milliseconds=\"300\"/>\n{}",
        uas_answer(0),
        uas_refer("2003")
    );
    let callee = register_uas(&server, "u-referrer", "crefer_callee", &callee_xml).await;
    let target = register_uas(
        &server,
        "u-target3",
        "crefer_target",
        &format!("{}{}", uas_answer(200), recv_and_ok("BYE", "")),
    )
    .await;
    server
        .directory
        .extensions
        .lock()
        .unwrap()
        .insert("2003".into(), "u-target3".into());
    route_did(&server, "crefer", user("u-referrer"));
    // The caller stays on the line through the transfer, then hangs up.
    let uac_xml = format!(
        "{}{}  <pause milliseconds=\"2500\"/>\n{}  <recv response=\"200\"/>\n",
        uac_invite(""),
        uac_answered(""),
        uac_request("BYE", 2, "", "")
    );
    let uac = sipp_uac(
        "crefer_uac",
        &scenario("crefer_uac", &uac_xml),
        server.addr,
        "crefer",
    );
    uac.expect_success(LIMIT, "caller (kept through the transfer)")
        .await;
    let trace = callee
        .expect_success(LIMIT, "transferor callee (REFER, NOTIFYs, BYE)")
        .await;
    assert!(trace.contains("SIP/2.0 202 Accepted"), "{trace}");
    target
        .expect_success(
            LIMIT,
            "transfer target (answered, BYE from the caller's hang-up)",
        )
        .await;
    let events = collect_events(&mut server.events, 1, Duration::from_secs(10)).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, CallEvent::Transferred { to, .. } if to == "2003")),
        "{events:?}"
    );
    assert_eq!(
        ended(&events),
        vec![(200, HangupSide::Caller, "normal_clearing".to_string())],
        "{events:?}"
    );
    assert_clean(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_cancel_during_ring_all_cancels_every_member() {
    let mut server = start_server(quiet_config()).await;
    let first = register_uas(&server, "u-r1", "rcancel_1", &uas_ring_until_cancel()).await;
    let second = register_uas(&server, "u-r2", "rcancel_2", &uas_ring_until_cancel()).await;
    route_did(
        &server,
        "rcancel",
        RouteTarget::RingGroup {
            members: vec!["u-r1".into(), "u-r2".into()],
            strategy: RingStrategy::RingAll,
            member_timeout_s: 0,
            total_timeout_s: 10,
        },
    );
    let uac = sipp_uac(
        "rcancel_uac",
        &scenario("rcancel_uac", &uac_ring_then_cancel()),
        server.addr,
        "rcancel",
    );
    uac.expect_success(LIMIT, "caller (CANCEL → 487)").await;
    first.expect_success(LIMIT, "member 1 (CANCEL)").await;
    second.expect_success(LIMIT, "member 2 (CANCEL)").await;
    let events = collect_events(&mut server.events, 1, Duration::from_secs(10)).await;
    assert_eq!(
        ended(&events),
        vec![(487, HangupSide::Caller, "cancelled".to_string())],
        "{events:?}"
    );
    assert_clean(&server).await;
}

/// Wait (bounded) for the first event matching `pred`, keeping everything seen.
async fn wait_for(
    server: &mut TestServer,
    seen: &mut Vec<CallEvent>,
    pred: impl Fn(&CallEvent) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !seen.iter().any(&pred) {
        match tokio::time::timeout_at(deadline, server.events.recv()).await {
            Ok(Some(event)) => seen.push(event),
            _ => panic!("expected event never came: {seen:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_hold_resume_transfer_and_hangup_on_an_inbound_call() {
    let mut server = start_server(quiet_config()).await;
    // The agent's phone: answers, is held and resumed, then transferred away (BYE).
    let agent_xml = format!(
        "{}{}{}{}",
        uas_answer(0),
        uas_reinvite(&check_msg("a=sendonly|a=inactive", "hold"), "recvonly"),
        uas_reinvite(&check_msg("a=sendrecv", "resume"), "sendrecv"),
        recv_and_ok("BYE", "")
    );
    let agent = register_uas(&server, "u-api", "api_agent", &agent_xml).await;
    let target = register_uas(
        &server,
        "u-api-target",
        "api_target",
        &format!("{}{}", uas_answer(0), recv_and_ok("BYE", "")),
    )
    .await;
    server
        .directory
        .extensions
        .lock()
        .unwrap()
        .insert("2004".into(), "u-api-target".into());
    route_did(&server, "api", user("u-api"));
    // The customer: held and resumed too, stays through the transfer, hung up by the API.
    let uac_xml = format!(
        "{}{}{}{}{}",
        uac_invite(""),
        uac_answered(""),
        uas_reinvite(&check_msg("a=sendonly|a=inactive", "hold"), "recvonly"),
        uas_reinvite(&check_msg("a=sendrecv", "resume"), "sendrecv"),
        recv_and_ok("BYE", "")
    );
    let uac = sipp_uac(
        "api_uac",
        &scenario("api_uac", &uac_xml),
        server.addr,
        "api",
    );
    let mut events = Vec::new();
    wait_for(&mut server, &mut events, |e| {
        matches!(e, CallEvent::Answered { .. })
    })
    .await;
    let call_id = match events.first() {
        Some(CallEvent::Started { call_id, .. }) => call_id.clone(),
        other => panic!("first event is not Started: {other:?}"),
    };
    // At once: the caller's ACK may still be on its way (the hold must wait for it).
    server.manager.hold(ORG, &call_id).await.expect("hold");
    server.manager.resume(ORG, &call_id).await.expect("resume");
    server
        .manager
        .transfer(ORG, &call_id, "2004")
        .await
        .expect("transfer");
    agent
        .expect_success(LIMIT, "agent (held, resumed, transferred away)")
        .await;
    server.manager.hangup(ORG, &call_id).await.expect("hangup");
    uac.expect_success(LIMIT, "customer (held, resumed, BYE)")
        .await;
    target
        .expect_success(LIMIT, "transfer target (answered, BYE)")
        .await;
    events.extend(collect_events(&mut server.events, 1, Duration::from_secs(10)).await);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            CallEvent::Started { .. } => "started",
            CallEvent::Ringing { .. } => "ringing",
            CallEvent::Answered { .. } => "answered",
            CallEvent::Held { .. } => "held",
            CallEvent::Resumed { .. } => "resumed",
            CallEvent::Transferred { .. } => "transferred",
            CallEvent::Ended { .. } => "ended",
        })
        .filter(|k| *k != "ringing")
        .collect();
    assert_eq!(
        kinds,
        vec![
            "started",
            "answered",
            "held",
            "resumed",
            "transferred",
            "ended"
        ]
    );
    assert_eq!(
        ended(&events),
        vec![(200, HangupSide::Api, "normal_clearing".to_string())]
    );
    // The call is gone: further commands are "not found".
    assert!(server.manager.hold(ORG, &call_id).await.is_err());
    assert_clean(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_caller_ends_the_call_with_timeout() {
    let config = CallConfig {
        keepalive_interval: Some(Duration::from_secs(1)),
        keepalive_timeout: Duration::from_secs(1),
        ..quiet_config()
    };
    let mut server = start_server(config).await;
    let uas = register_uas(
        &server,
        "u-left",
        "kcaller_uas",
        &format!("{}{}", uas_answer(0), recv_and_ok("BYE", "")),
    )
    .await;
    route_did(&server, "left", user("u-left"));
    // It would wait for a BYE forever; it is killed first.
    let uac_xml = format!(
        "{}{}{}",
        uac_invite(""),
        uac_answered(""),
        recv_and_ok("BYE", "")
    );
    let mut uac = sipp_uac(
        "kcaller_uac",
        &scenario("kcaller_uac", &uac_xml),
        server.addr,
        "left",
    );
    let mut events = Vec::new();
    wait_for(&mut server, &mut events, |e| {
        matches!(e, CallEvent::Answered { .. })
    })
    .await;
    // "Answered" is the callee's 200; let the caller's ACK confirm its leg first (a caller
    // that dies before its ACK is ended by Timer H after 64*T1 instead).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        server.manager.live_calls(),
        1,
        "the call is up before the kill"
    );
    uac.kill();
    let killed_at = std::time::Instant::now();
    uas.expect_success(LIMIT, "callee (gets BYE after the caller died)")
        .await;
    events.extend(collect_events(&mut server.events, 1, Duration::from_secs(15)).await);
    // Keepalive every 1 s, 1 s to answer: detected well before any transaction timer.
    assert!(
        killed_at.elapsed() < Duration::from_secs(6),
        "{:?}",
        killed_at.elapsed()
    );
    assert_eq!(
        ended(&events),
        vec![(200, HangupSide::System, "timeout".to_string())],
        "{events:?}"
    );
    assert_clean(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refer_to_a_busy_target_keeps_the_call_and_its_media() {
    let mut server = start_server(quiet_config()).await;
    let callee = register_uas(
        &server,
        "u-stays",
        "busyrefer_callee",
        &format!("{}{}", uas_answer(0), recv_and_ok("BYE", "")),
    )
    .await;
    let busy_xml = r#"  <recv request="INVITE"/>
  <send><![CDATA[
SIP/2.0 486 Busy Here
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0
]]></send>
  <recv request="ACK"/>
"#;
    let busy = register_uas(&server, "u-busy5", "busyrefer_target", busy_xml).await;
    server
        .directory
        .extensions
        .lock()
        .unwrap()
        .insert("2005".into(), "u-busy5".into());
    route_did(&server, "busyrefer", user("u-stays"));
    // REFER, learn that it failed (NOTIFY 486), stay on the call, hang up later.
    let uac_xml = format!(
        "{}{}  <pause milliseconds=\"300\"/>\n{}  <recv response=\"202\" optional=\"true\"/>\n{}  <recv response=\"202\" optional=\"true\"/>\n{}  <pause milliseconds=\"1500\"/>\n{}  <recv response=\"200\"/>\n",
        uac_invite(""),
        uac_answered(""),
        uac_request(
            "REFER",
            2,
            "Refer-To: <sip:2005@[remote_ip]:[remote_port]>\n",
            ""
        ),
        recv_and_ok("NOTIFY", &check_msg("SIP/2.0 100", "trying")),
        recv_and_ok("NOTIFY", &check_msg("SIP/2.0 486", "busy")),
        uac_request("BYE", 3, "", ""),
    );
    let uac = sipp_uac(
        "busyrefer_uac",
        &scenario("busyrefer_uac", &uac_xml),
        server.addr,
        "busyrefer",
    );
    let mut events = Vec::new();
    wait_for(&mut server, &mut events, |e| {
        matches!(e, CallEvent::Answered { .. })
    })
    .await;
    let call_id = match events.first() {
        Some(CallEvent::Started { call_id, .. }) => call_id.clone(),
        other => panic!("first event is not Started: {other:?}"),
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = server.media.leg_status(&call_id, LegRole::Caller);
    assert!(
        matches!(before, Some((_, Some(_)))),
        "caller leg negotiated: {before:?}"
    );
    busy.expect_success(LIMIT, "busy transfer target").await;
    // The transfer failed: the transferor's leg must still describe the transferor.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.media.leg_status(&call_id, LegRole::Caller), before);
    uac.expect_success(LIMIT, "transferor (NOTIFY 486, stays, BYE)")
        .await;
    callee.expect_success(LIMIT, "callee (BYE)").await;
    events.extend(collect_events(&mut server.events, 1, Duration::from_secs(10)).await);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, CallEvent::Transferred { .. })),
        "{events:?}"
    );
    assert_eq!(
        ended(&events),
        vec![(200, HangupSide::Caller, "normal_clearing".to_string())],
        "{events:?}"
    );
    assert_clean(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_without_sdp_gets_our_offer_and_the_answer_in_the_ack() {
    let mut server = start_server(quiet_config()).await;
    let uas = register_uas(
        &server,
        "u-late",
        "late_uas",
        &format!("{}{}", uas_answer(0), recv_and_ok("BYE", "")),
    )
    .await;
    route_did(&server, "late", user("u-late"));
    let uac_xml = format!(
        r#"  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200">
    <action>{offer_check}</action>
  </recv>
  <send><![CDATA[
ACK sip:callscope@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
{UAC_DIALOG_HEADERS}CSeq: 1 ACK
Content-Type: application/sdp
Content-Length: [len]

{answer}]]></send>
  <pause milliseconds="800"/>
{bye}  <recv response="200"/>
"#,
        offer_check = check_msg("m=audio [0-9]+ RTP/AVP", "offer"),
        answer = sdp("sendrecv"),
        bye = uac_request("BYE", 2, "", "")
    );
    let uac = sipp_uac(
        "late_uac",
        &scenario("late_uac", &uac_xml),
        server.addr,
        "late",
    );
    let mut events = Vec::new();
    wait_for(&mut server, &mut events, |e| {
        matches!(e, CallEvent::Answered { .. })
    })
    .await;
    let call_id = match events.first() {
        Some(CallEvent::Started { call_id, .. }) => call_id.clone(),
        other => panic!("first event is not Started: {other:?}"),
    };
    // The answer arrives in the ACK: poll (bounded) until it is applied.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let mut status = server.media.leg_status(&call_id, LegRole::Caller);
    while !matches!(status, Some((_, Some(_)))) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        status = server.media.leg_status(&call_id, LegRole::Caller);
    }
    assert!(
        matches!(status, Some((_, Some(port))) if port > 0),
        "the ACK's SDP answer was not applied: {status:?}"
    );
    uac.expect_success(LIMIT, "caller (delayed offer)").await;
    uas.expect_success(LIMIT, "callee").await;
    events.extend(collect_events(&mut server.events, 1, Duration::from_secs(10)).await);
    assert_eq!(
        ended(&events),
        vec![(200, HangupSide::Caller, "normal_clearing".to_string())],
        "{events:?}"
    );
    assert_clean(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn click_to_call_with_a_busy_agent_never_dials_the_number() {
    let mut server = start_server(quiet_config()).await;
    let busy_xml = r#"  <recv request="INVITE"/>
  <send><![CDATA[
SIP/2.0 486 Busy Here
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0
]]></send>
  <recv request="ACK"/>
"#;
    let agent = register_uas(&server, "u-agent-busy", "c2cbusy_agent", busy_xml).await;
    // The number: a SIPp that would answer if it were called; its message log shows
    // whether an INVITE ever reached it.
    let (mut customer, customer_addr) = sipp_uas(
        "c2cbusy_customer",
        &scenario("c2cbusy_customer", &uas_answer(0)),
    )
    .await;
    server.directory.dids.lock().unwrap().insert(
        "+15550002222".into(),
        Destination::External {
            number_e164: "+15550002222".into(),
            trunk: SipTrunk {
                org_id: ORG.into(),
                trunk_id: "trunk-out".into(),
                name: "out".into(),
                outbound_proxy: customer_addr,
                username: None,
                password: None,
                inbound_acl: vec![],
            },
        },
    );
    let call_id = server
        .manager
        .click_to_call(ORG, "u-agent-busy", "+15550002222")
        .await
        .expect("click-to-call starts");
    agent.expect_success(LIMIT, "agent (busy)").await;
    let events = collect_events(&mut server.events, 1, Duration::from_secs(10)).await;
    let ended = ended(&events);
    assert_eq!(ended.len(), 1, "{events:?}");
    assert_eq!(ended[0].0, 486, "{events:?}");
    assert_eq!(ended[0].2, "busy");
    assert!(server.manager.active_calls(ORG).is_empty());
    assert!(server.manager.hangup(ORG, &call_id).await.is_err());
    assert_clean(&server).await;
    // The number was never dialled: its SIPp is still waiting for an INVITE.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let trace_before_kill = std::fs::read_dir(scenario_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("c2cbusy_customer_{}_messages", customer.pid()))
        })
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    assert!(
        !trace_before_kill.contains("INVITE sip:"),
        "the number was dialled: {trace_before_kill}"
    );
    customer.kill();
}

/// The UAS re-INVITEs with its SDP in `direction` (CSeq `cseq`), checks the answer, ACKs.
fn uas_sends_reinvite(cseq: u32, direction: &str, answer_check: &str) -> String {
    format!(
        r#"  <send retrans="500"><![CDATA[
INVITE [$peer_contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From:[$my_to];tag=[pid]SIPpTag01[call_number]
To:[$peer_from]
[last_Call-ID:]
CSeq: {cseq} INVITE
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{sdp}]]></send>
  <recv response="100" optional="true"/>
  <recv response="200">
    <action>{answer_check}</action>
  </recv>
  <send><![CDATA[
ACK [$peer_contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From:[$my_to];tag=[pid]SIPpTag01[call_number]
To:[$peer_from]
[last_Call-ID:]
CSeq: {cseq} ACK
Max-Forwards: 70
Content-Length: 0
]]></send>
"#,
        sdp = sdp(direction)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_resume_from_the_callee_reach_the_caller() {
    let mut server = start_server(quiet_config()).await;
    let uas_xml = format!(
        "{}  <pause milliseconds=\"300\"/>\n{}  <pause milliseconds=\"300\"/>\n{}{}",
        uas_answer(0),
        uas_sends_reinvite(2, "sendonly", &check_msg("a=recvonly", "held")),
        uas_sends_reinvite(3, "sendrecv", &check_msg("a=sendrecv", "resumed")),
        recv_and_ok("BYE", "")
    );
    let uas = register_uas(&server, "u-holder", "chold_uas", &uas_xml).await;
    route_did(&server, "chold", user("u-holder"));
    let uac_xml = format!(
        "{}{}{}{}  <pause milliseconds=\"300\"/>\n{}  <recv response=\"200\"/>\n",
        uac_invite(""),
        uac_answered(""),
        uas_reinvite(&check_msg("a=sendonly|a=inactive", "hold"), "recvonly"),
        uas_reinvite(&check_msg("a=sendrecv", "resume"), "sendrecv"),
        uac_request("BYE", 2, "", "")
    );
    let uac = sipp_uac(
        "chold_uac",
        &scenario("chold_uac", &uac_xml),
        server.addr,
        "chold",
    );
    uac.expect_success(LIMIT, "caller (held and resumed by the callee)")
        .await;
    uas.expect_success(LIMIT, "callee (holds, resumes)").await;
    let events = collect_events(&mut server.events, 1, Duration::from_secs(10)).await;
    let held = events
        .iter()
        .position(|e| matches!(e, CallEvent::Held { .. }));
    let resumed = events
        .iter()
        .position(|e| matches!(e, CallEvent::Resumed { .. }));
    assert!(
        matches!((held, resumed), (Some(h), Some(r)) if h < r),
        "Held then Resumed expected: {events:?}"
    );
    assert_eq!(
        ended(&events),
        vec![(200, HangupSide::Caller, "normal_clearing".to_string())]
    );
    assert_clean(&server).await;
}

// ---- outbound trunk authentication (the trunk challenges callscope's INVITE) ----

const TRUNK_USER: &str = "acme-trunk";
const TRUNK_PASSWORD: &str = "s3cret-trunk-pw";
const TRUNK_REALM: &str = "trunk.example";
const TRUNK_NONCE: &str = "6a1f0c7e9b2d4e58";

/// The trunk's far end challenges the first INVITE (`status` 407 with Proxy-Authenticate
/// or 401 with WWW-Authenticate), takes the ACK of that final response, and expects a
/// second INVITE carrying the answer in `answer_header`.
///
/// With `sipp_verifies`, SIPp's `verifyauth` recomputes the MD5 digest from the
/// username/password it was given: a wrong digest jumps to a `recv` that can never match
/// and times out at once, which fails the call (exit 1). SIPp 3.6 only reads
/// `Authorization:` there (a Proxy-Authorization gets "authentication must be digest"),
/// so the 407 test recomputes the digest itself from the trace instead.
fn uas_trunk_challenging(
    status: &str,
    challenge_header: &str,
    answer_header: &str,
    sipp_verifies: bool,
) -> String {
    let verify = if sipp_verifies {
        format!(
            r#"      <verifyauth assign_to="digest_ok" username="{TRUNK_USER}" password="{TRUNK_PASSWORD}"/>
    </action>
  </recv>
  <nop test="digest_ok" next="digest_good"/>
  <recv request="DIGEST_WAS_WRONG" timeout="100"/>
  <label id="digest_good"/>
"#
        )
    } else {
        "    </action>\n  </recv>\n".to_string()
    };
    format!(
        r#"  <recv request="INVITE"/>
  <send><![CDATA[
SIP/2.0 {status}
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
{challenge_header}: Digest realm="{TRUNK_REALM}", nonce="{TRUNK_NONCE}", algorithm=MD5
Content-Length: 0
]]></send>
  <recv request="ACK"/>
  <recv request="INVITE">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="peer_from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="my_to"/>
      <ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" assign_to="peer_contact"/>
      {answer_check}
{verify}  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

{sdp}]]></send>
  <recv request="ACK"/>
"#,
        answer_check = check_header(
            &format!("{answer_header}:"),
            &format!("Digest .*username=\"{TRUNK_USER}\".*realm=\"{TRUNK_REALM}\""),
            "digest_header"
        ),
        sdp = sdp("sendrecv")
    )
}

/// Route `did` out through a trunk whose far end is `proxy`, with or without credentials.
fn route_out_through_trunk(
    server: &TestServer,
    did: &str,
    proxy: std::net::SocketAddr,
    credentials: bool,
) {
    let (username, password) = if credentials {
        (
            Some(TRUNK_USER.to_string()),
            Some(TRUNK_PASSWORD.to_string()),
        )
    } else {
        (None, None)
    };
    server.directory.dids.lock().unwrap().insert(
        did.to_string(),
        Destination::External {
            number_e164: did.to_string(),
            trunk: SipTrunk {
                org_id: ORG.into(),
                trunk_id: "trunk-auth".into(),
                name: "challenging".into(),
                outbound_proxy: proxy,
                username,
                password,
                inbound_acl: vec![],
            },
        },
    );
}

/// The INVITEs a SIPp received, from its `-trace_msg` log, in order.
fn received_invites(trace: &str) -> Vec<&str> {
    trace
        .split("UDP message received")
        .skip(1)
        .filter(|message| {
            message
                .lines()
                .find(|line| !line.trim().is_empty() && !line.contains("bytes"))
                .is_some_and(|line| line.starts_with("INVITE "))
        })
        .collect()
}

/// The value of `name="..."` (or unquoted `name=...`) in a digest header line.
fn digest_param<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(',').find_map(|part| {
        let part = part.trim();
        let part = part.strip_prefix("Digest ").unwrap_or(part).trim();
        let value = part.strip_prefix(name)?.strip_prefix('=')?;
        Some(value.trim_matches('"'))
    })
}

fn md5_hex(text: &str) -> String {
    use md5::Digest;
    md5::Md5::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Recompute the RFC 2617 digest (MD5, no qop: the challenge offered none) that the
/// trunk's credentials must give for `invite`'s `header`, independently of rsipstack.
fn assert_digest_answers_challenge(invite: &str, header: &str) {
    let line = invite
        .lines()
        .find(|line| {
            line.split_once(':')
                .is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case(header))
        })
        .unwrap_or_else(|| panic!("no {header} in the second INVITE:\n{invite}"));
    let value = line.split_once(':').map(|(_, v)| v.trim()).unwrap_or("");
    assert!(value.starts_with("Digest "), "{line}");
    assert_eq!(digest_param(value, "username"), Some(TRUNK_USER), "{line}");
    assert_eq!(digest_param(value, "realm"), Some(TRUNK_REALM), "{line}");
    assert_eq!(digest_param(value, "nonce"), Some(TRUNK_NONCE), "{line}");
    let uri = digest_param(value, "uri").unwrap_or_else(|| panic!("no uri: {line}"));
    let request_uri = invite
        .lines()
        .find_map(|l| l.strip_prefix("INVITE "))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or("");
    assert_eq!(uri, request_uri, "digest uri is not the Request-URI");
    let ha1 = md5_hex(&format!("{TRUNK_USER}:{TRUNK_REALM}:{TRUNK_PASSWORD}"));
    let ha2 = md5_hex(&format!("INVITE:{uri}"));
    let expected = md5_hex(&format!("{ha1}:{TRUNK_NONCE}:{ha2}"));
    assert_eq!(
        digest_param(value, "response"),
        Some(expected.as_str()),
        "wrong digest response: {line}"
    );
}

/// A call out through a challenging trunk with credentials: callscope answers the
/// challenge, the trunk checks the digest, the call is answered and hung up by the
/// caller.
async fn trunk_challenge_is_answered(
    name: &str,
    status: &str,
    challenge: &str,
    answer: &str,
    sipp_verifies: bool,
) {
    let mut server = start_server(quiet_config()).await;
    let uas_xml = format!(
        "{}{}",
        uas_trunk_challenging(status, challenge, answer, sipp_verifies),
        recv_and_ok("BYE", "")
    );
    let (uas, uas_addr) = sipp_uas(
        &format!("{name}_trunk"),
        &scenario(&format!("{name}_trunk"), &uas_xml),
    )
    .await;
    let did = "+15550002222";
    route_out_through_trunk(&server, did, uas_addr, true);
    let uac_xml = format!(
        "{}{}  <pause milliseconds=\"500\"/>\n{}  <recv response=\"200\"/>\n",
        uac_invite(""),
        uac_answered(""),
        uac_request("BYE", 2, "", "")
    );
    let uac = sipp_uac(
        &format!("{name}_caller"),
        &scenario(&format!("{name}_caller"), &uac_xml),
        server.addr,
        did,
    );
    let trace = uas
        .expect_success(LIMIT, "trunk (challenges, checks the digest, answers)")
        .await;
    uac.expect_success(LIMIT, "caller (answered through the trunk, hangs up)")
        .await;
    // Exactly one challenge was needed: two INVITEs reached the trunk, the first without
    // credentials, the second with them and a higher CSeq (a new request, RFC 3261 §22.2).
    let invites = received_invites(&trace);
    assert_eq!(invites.len(), 2, "INVITEs the trunk saw:\n{trace}");
    assert!(
        !invites[0].contains(&format!("\n{answer}:")),
        "the first INVITE already carried credentials:\n{}",
        invites[0]
    );
    assert!(invites[0].contains("CSeq: 1 INVITE"), "{}", invites[0]);
    assert!(invites[1].contains("CSeq: 2 INVITE"), "{}", invites[1]);
    assert_digest_answers_challenge(invites[1], answer);
    let events = collect_events(&mut server.events, 1, Duration::from_secs(10)).await;
    assert_eq!(
        count(&events, |e| matches!(e, CallEvent::Answered { .. })),
        1,
        "{events:?}"
    );
    assert_eq!(
        ended(&events),
        vec![(200, HangupSide::Caller, "normal_clearing".to_string())],
        "{events:?}"
    );
    assert_clean(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trunk_407_challenge_is_answered_with_proxy_authorization() {
    trunk_challenge_is_answered(
        "trunk407",
        "407 Proxy Authentication Required",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trunk_401_challenge_is_answered_with_authorization() {
    trunk_challenge_is_answered(
        "trunk401",
        "401 Unauthorized",
        "WWW-Authenticate",
        "Authorization",
        true,
    )
    .await;
}

/// The trunk's 407 and the ACK it gets back.
fn uas_trunk_407() -> String {
    format!(
        r#"  <send><![CDATA[
SIP/2.0 407 Proxy Authentication Required
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Proxy-Authenticate: Digest realm="{TRUNK_REALM}", nonce="{TRUNK_NONCE}", algorithm=MD5
Content-Length: 0
]]></send>
  <recv request="ACK"/>
"#
    )
}

/// A call out through a trunk that refuses it for authentication: `invites` INVITEs each
/// answered 407 (one without credentials configured; two when the configured credentials
/// are refused, since rsipstack retries once). The call must end promptly — no hang, no
/// retry loop — with the caller told 503 (never the trunk's challenge) and the record
/// keeping the trunk's 407 with cause `auth_failed`.
async fn trunk_refuses_authentication(name: &str, credentials: bool, invites: usize) {
    let mut server = start_server(quiet_config()).await;
    // SIPp exits after its last ACK (-m 1): a further INVITE would go unanswered, and
    // the count of INVITEs in its trace shows it.
    let uas_xml = format!("  <recv request=\"INVITE\"/>\n{}", uas_trunk_407()).repeat(invites);
    let (uas, uas_addr) = sipp_uas(
        &format!("{name}_trunk"),
        &scenario(&format!("{name}_trunk"), &uas_xml),
    )
    .await;
    let did = "+15550003333";
    route_out_through_trunk(&server, did, uas_addr, credentials);
    let uac_xml = format!(
        r#"{invite}  <recv response="100" optional="true"/>
  <recv response="503">
    <action>{no_challenge}</action>
  </recv>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Content-Length: 0
]]></send>
"#,
        invite = uac_invite(""),
        // The trunk's challenge is for callscope's credentials: nothing of it reaches the
        // caller.
        no_challenge = r#"<ereg regexp="Authenticate|trunk\.example" search_in="msg" check_it_inverse="true" assign_to="challenge"/>"#,
    );
    let started = std::time::Instant::now();
    let uac = sipp_uac(
        &format!("{name}_caller"),
        &scenario(&format!("{name}_caller"), &uac_xml),
        server.addr,
        did,
    );
    let trace = uas.expect_success(LIMIT, "trunk (challenges)").await;
    uac.expect_success(LIMIT, "caller (gets 503)").await;
    // Well inside the 5 s no-answer timeout: the refusal ended the call, not a timer.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let seen = received_invites(&trace);
    assert_eq!(seen.len(), invites, "INVITEs the trunk saw:\n{trace}");
    if credentials {
        assert_digest_answers_challenge(seen[invites - 1], "Proxy-Authorization");
    } else {
        assert!(!trace.contains("Authorization:"), "{trace}");
    }
    let events = collect_events(&mut server.events, 1, Duration::from_secs(10)).await;
    assert_eq!(
        count(&events, |e| matches!(e, CallEvent::Answered { .. })),
        0,
        "{events:?}"
    );
    assert_eq!(
        ended(&events),
        vec![(407, HangupSide::System, "auth_failed".to_string())],
        "{events:?}"
    );
    assert_clean(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trunk_407_without_credentials_fails_the_call() {
    trunk_refuses_authentication("nocred", false, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trunk_refusing_our_credentials_fails_the_call_after_one_retry() {
    trunk_refuses_authentication("badcred", true, 2).await;
}
