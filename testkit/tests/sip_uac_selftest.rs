//! The benchmark's SIP UAC (`sip_uac`) against SIPp on loopback: calls carrying an offer,
//! answered with SDP, ACKed and hung up, without callscope.

use callscope_testkit::sip_uac::SipUac;
use callscope_testkit::sipp::{Scenario, SippConfig, SippRun, uas_answer_scenario};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                     m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

#[test]
fn three_calls_to_sipp_are_answered_acked_and_hung_up() {
    let mut uas = SippRun::start(&SippConfig::uas(Scenario::Xml(uas_answer_scenario()))).unwrap();
    uas.wait_ready(Duration::from_secs(5)).unwrap();
    let mut uac = SipUac::bind(Ipv4Addr::LOCALHOST.into(), uas.addr()).unwrap();

    let mut dialogs = Vec::new();
    for i in 0..3 {
        let dialog = uac
            .invite(
                &format!("agent{i}"),
                "+14155550000",
                OFFER,
                Duration::from_secs(10),
            )
            .unwrap();
        // SIPp's answer: its own SDP, PCMU on its media port.
        assert!(
            dialog.answer_sdp.contains("m=audio ") && dialog.answer_sdp.contains("PCMU/8000"),
            "{}",
            dialog.answer_sdp
        );
        dialogs.push(dialog);
    }
    for dialog in &dialogs {
        assert_eq!(uac.bye(dialog, Duration::from_secs(10)).unwrap(), 200);
    }
    drop(uac);

    // SIPp counts a call as successful when it next runs the call after its last message,
    // which can be a moment after its 200 to our BYE reached us; stopped in between, its final
    // statistics still show that call as current (seen once under load: 2 successful, 1
    // current, 0 failed). Wait, bounded, for its per-second dump to show all three.
    let deadline = Instant::now() + Duration::from_secs(10);
    while uas.outcome_now().map_or(true, |o| o.successful_calls < 3) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }

    // The far end saw three calls completed: each needed our ACK to get to the BYE, and our
    // in-dialog BYE (its To tag, its Contact) to finish.
    let far = uas.stop().unwrap();
    assert_eq!(far.successful_calls, 3, "{:?}", far.raw);
    assert_eq!(far.failed_calls, 0, "{:?}", far.raw);
}
