//! SIPp against SIPp on loopback: proves the SIPp driver (scenario files, statistics and
//! response-time parsing) without callscope.

use callscope_testkit::sipp::{
    Scenario, SippConfig, SippRun, uac_call_scenario, uas_answer_scenario,
};
use callscope_testkit::stats::percentile;
use std::time::Duration;

#[test]
fn sipp_uac_calls_sipp_uas_ten_calls_no_failure() {
    let mut uas = SippRun::start(&SippConfig::uas(Scenario::Xml(uas_answer_scenario()))).unwrap();
    uas.wait_ready(Duration::from_secs(5)).unwrap();

    let mut cfg = SippConfig::uac(Scenario::Xml(uac_call_scenario(50, false)), uas.addr());
    cfg.service = Some("1000".into());
    cfg.max_calls = Some(10);
    cfg.rate = Some(20.0);
    cfg.limit = Some(5);
    cfg.trace_rtt = true;
    cfg.global_timeout = Some(Duration::from_secs(20));
    let uac = SippRun::start(&cfg).unwrap();
    let out = uac.wait(Duration::from_secs(30)).unwrap();

    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert_eq!(out.total_calls, 10);
    assert_eq!(out.successful_calls, 10);
    assert_eq!(out.failed_calls, 0);
    let setup = out.rtt("setup");
    assert_eq!(setup.len(), 10, "one setup time per call: {:?}", out.rtt_ms);
    let p99 = percentile(setup, 99.0).unwrap();
    assert!(
        p99 < 1000.0,
        "loopback setup should be far below a second, got {p99} ms"
    );

    // The far end saw the same ten calls, all completed by the caller's BYE.
    let far = uas.stop().unwrap();
    assert_eq!(far.successful_calls, 10, "{:?}", far.raw);
    assert_eq!(far.failed_calls, 0);
}

#[test]
fn sipp_counts_failures_when_nobody_answers() {
    // Nothing listens on this port: every INVITE times out, and the outcome must say so.
    let silent = callscope_testkit::ports::free_port().unwrap();
    let mut cfg = SippConfig::uac(
        Scenario::Xml(uac_call_scenario(0, false)),
        ([127, 0, 0, 1], silent).into(),
    );
    cfg.max_calls = Some(2);
    cfg.rate = Some(10.0);
    // Fail each call fast instead of after the 32 s transaction timeout.
    cfg.extra_args = vec!["-recv_timeout".into(), "1000".into()];
    cfg.global_timeout = Some(Duration::from_secs(20));
    let out = SippRun::start(&cfg)
        .unwrap()
        .wait(Duration::from_secs(30))
        .unwrap();
    assert_eq!(out.successful_calls, 0);
    assert_eq!(out.failed_calls, 2, "{:?}", out.raw);
    assert_ne!(out.exit_code, Some(0));
}
