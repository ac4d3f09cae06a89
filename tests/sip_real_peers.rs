//! `callscope serve` against real, independent SIP peers on loopback (driven by
//! callscope-testkit): SIPVicious cannot enumerate extensions, and linphonec (belle-sip)
//! registers and calls an extension through callscope.

use callscope_testkit::callscope::Callscope;
use callscope_testkit::digest::{self, Algorithm};
use callscope_testkit::linphone::{Linphone, LinphoneConfig};
use callscope_testkit::sipp::{Scenario, SippConfig, SippRun, uas_answer_scenario};
use callscope_testkit::{ports, svwar};
use std::net::SocketAddr;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_callscope");

#[test]
fn svwar_cannot_enumerate_extensions() {
    let cs = Callscope::builder(BIN)
        .user("201", "pw-201-secret")
        .user("204", "pw-204-secret")
        .user("206", "pw-206-secret")
        .start()
        .unwrap();
    for method in ["REGISTER", "INVITE", "OPTIONS"] {
        let report =
            svwar::scan(cs.sip_addr(), "200-207", method, Duration::from_secs(60)).unwrap();
        assert!(
            report.found.is_empty(),
            "svwar ({method}) told extensions apart: {:?}\n{}",
            report.found,
            report.output
        );
    }
}

/// linphonec (belle-sip, an independent stack) registers with digest auth and calls an
/// extension whose registered contact is a SIPp UAS; the call connects through callscope
/// and is hung up from linphonec.
#[test]
fn linphonec_registers_and_calls_an_extension_through_callscope() {
    let cs = Callscope::builder(BIN)
        .user("2001", "far-end-pw-1")
        .user("2002", "linphone-pw-2")
        .start()
        .unwrap();
    let server = cs.sip_addr();

    // The callee: a SIPp UAS registered as 2001 from its own port.
    let uas_addr = SocketAddr::from(([127, 0, 0, 1], ports::free_port().unwrap()));
    let prefer = [Algorithm::Sha256, Algorithm::Md5];
    let reg = digest::register(
        server,
        uas_addr,
        "2001",
        cs.realm(),
        "far-end-pw-1",
        600,
        &prefer,
    )
    .unwrap();
    assert_eq!(reg.status, 200, "{}", reg.final_response);
    let mut uas_cfg = SippConfig::uas(Scenario::Xml(uas_answer_scenario()));
    uas_cfg.local_port = uas_addr.port();
    let mut uas = SippRun::start(&uas_cfg).unwrap();
    uas.wait_ready(Duration::from_secs(5)).unwrap();

    let mut l = Linphone::start(&LinphoneConfig::new("2002")).unwrap();
    l.register(cs.realm(), &server.to_string(), "linphone-pw-2")
        .unwrap();
    let line = l
        .call(&format!("sip:2001@{server}"), Duration::from_secs(15))
        .unwrap();
    assert!(line.contains("connected"), "{line}");
    std::thread::sleep(Duration::from_secs(1));
    l.terminate_all().unwrap();
    l.wait_line("the call to end", Duration::from_secs(10), |s| {
        s.contains("ended")
    })
    .unwrap();
    l.quit().unwrap();

    // The far end saw exactly this call, completed by the BYE from linphonec's side.
    let far = callscope_testkit::process::wait_until(
        "the far end to count the call",
        Duration::from_secs(10),
        None,
        || Ok(uas.outcome_now().ok().filter(|o| o.successful_calls >= 1)),
    )
    .unwrap();
    assert_eq!((far.successful_calls, far.failed_calls), (1, 0));
}
