//! SIPp through callscope's B2BUA on loopback: SIPp `uac` calls a DID on the trunk (ACL
//! 127.0.0.1), callscope routes it to a user whose registered contact is a SIPp `uas`.

mod common;

use std::time::Duration;

use callscope_sip::directory::{Destination, RouteTarget};
use callscope_sip::events::CallEvent;
use common::*;

/// A UAC that expects `code` and ACKs it. The ACK to a failure belongs to the INVITE's
/// transaction (RFC 3261 §17.1.1.3), so it reuses the INVITE's Via (`[last_Via:]`): with a
/// new branch the server would retransmit the failure until Timer H.
fn uac_expect(code: u16) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="uac expecting {code}">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="{code}"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Content-Length: 0
]]></send>
</scenario>
"#
    )
}

const UAS_BUSY: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="uas busy">
  <recv request="INVITE"/>
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
</scenario>
"#;

fn route_did(server: &TestServer, did: &str, user_id: &str) {
    server.directory.dids.lock().unwrap().insert(
        did.to_string(),
        Destination::Internal(RouteTarget::User {
            user_id: user_id.to_string(),
        }),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uac_100_calls_through_b2bua_to_sipp_uas() {
    let mut server = start_server(quiet_config()).await;
    let uas_port = free_port();
    let dir = scenario_dir();
    let uas_port_s = uas_port.to_string();
    let uas = Sipp::spawn(
        &[
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-p",
            &uas_port_s,
            "-nostdin",
        ],
        &dir,
    );
    server.locator.register(
        "u-agent",
        "agent",
        format!("127.0.0.1:{uas_port}").parse().unwrap(),
    );
    route_did(&server, "service", "u-agent");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let target = server.addr.to_string();
    let uac_port = free_port().to_string();
    let mut uac = Sipp::spawn(
        &[
            "-sn",
            "uac",
            &target,
            "-i",
            "127.0.0.1",
            "-p",
            &uac_port,
            "-m",
            "100",
            "-r",
            "50",
            "-l",
            "40",
            "-nostdin",
            "-timeout",
            "60s",
            "-timeout_error",
            "-d",
            "200",
        ],
        &dir,
    );
    let code = uac.wait(Duration::from_secs(90)).await;
    assert_eq!(code, Some(0), "SIPp uac reports failed calls (exit code)");

    let events = collect_events(&mut server.events, 100, Duration::from_secs(20)).await;
    let ended: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            CallEvent::Ended {
                sip_status,
                cause,
                hangup_side,
                ..
            } => Some((*sip_status, cause.clone(), *hangup_side)),
            _ => None,
        })
        .collect();
    assert_eq!(ended.len(), 100);
    assert!(
        ended
            .iter()
            .all(|(status, cause, _)| *status == 200 && cause == "normal_clearing"),
        "{ended:?}"
    );
    let answered = events
        .iter()
        .filter(|e| matches!(e, CallEvent::Answered { .. }))
        .count();
    assert_eq!(answered, 100);
    let (calls, tasks) = wait_idle(&server, Duration::from_secs(15)).await;
    assert_eq!(
        (calls, tasks),
        (0, 0),
        "calls and tasks left after 100 calls"
    );
    assert_eq!(server.media.ports_in_use(), 0, "RTP ports leaked");
    drop(uas);
}

async fn expect_final(server: &mut TestServer, service: &str, code: u16) -> Vec<CallEvent> {
    let dir = scenario_dir();
    let scenario = write_scenario(&format!("uac_{code}.xml"), &uac_expect(code));
    let target = server.addr.to_string();
    let uac_port = free_port().to_string();
    let mut uac = Sipp::spawn(
        &[
            "-sf",
            scenario.to_str().unwrap(),
            &target,
            "-s",
            service,
            "-i",
            "127.0.0.1",
            "-p",
            &uac_port,
            "-m",
            "1",
            "-nostdin",
            "-timeout",
            "20s",
            "-timeout_error",
        ],
        &dir,
    );
    assert_eq!(
        uac.wait(Duration::from_secs(30)).await,
        Some(0),
        "SIPp did not get {code} for {service}"
    );
    let mut events = Vec::new();
    while let Ok(event) = server.events.try_recv() {
        events.push(event);
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_did_gets_404_unregistered_user_480_busy_callee_486() {
    let mut server = start_server(quiet_config()).await;
    // 404: nothing routes "nosuch".
    let events = expect_final(&mut server, "nosuch", 404).await;
    assert!(
        events.is_empty(),
        "a 404 must not create a call record: {events:?}"
    );

    // 480: the DID routes to a user with no registered contact.
    route_did(&server, "nobody", "u-offline");
    let events = expect_final(&mut server, "nobody", 480).await;
    assert!(
        events.iter().any(|e| matches!(
            e,
            CallEvent::Ended {
                sip_status: 480,
                ..
            }
        )),
        "{events:?}"
    );

    // 486: the callee (a SIPp uas) answers busy; callscope passes it through.
    let uas_port = free_port();
    let busy_scenario = write_scenario("uas_busy.xml", UAS_BUSY);
    let uas_port_s = uas_port.to_string();
    let uas = Sipp::spawn(
        &[
            "-sf",
            busy_scenario.to_str().unwrap(),
            "-i",
            "127.0.0.1",
            "-p",
            &uas_port_s,
            "-nostdin",
        ],
        &scenario_dir(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.locator.register(
        "u-busy",
        "busy",
        format!("127.0.0.1:{uas_port}").parse().unwrap(),
    );
    route_did(&server, "busy", "u-busy");
    let mut events = expect_final(&mut server, "busy", 486).await;
    events.extend(collect_events(&mut server.events, 1, Duration::from_secs(2)).await);
    assert!(
        events.iter().any(
            |e| matches!(e, CallEvent::Ended { sip_status: 486, cause, .. } if cause == "busy")
        ),
        "{events:?}"
    );
    let (calls, tasks) = wait_idle(&server, Duration::from_secs(15)).await;
    assert_eq!((calls, tasks), (0, 0));
    drop(uas);
}
