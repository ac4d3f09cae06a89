//! Issue 3 end to end through the real `callscope serve`: SIP peers (SIPp) on loopback,
//! provisioning through the CLI, outcomes checked through the REST API and webhooks.
//!
//! Phones live on 127.0.0.1, the trunk's far end on 127.0.0.2 (the trunk's inbound ACL), so
//! callscope tells trunk traffic from phone traffic by source address as in production.

use callscope_testkit::callscope::Callscope;

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
