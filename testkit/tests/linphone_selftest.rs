//! linphonec (belle-sip) calls baresip directly on loopback: two independent stacks,
//! proving the linphonec driver without callscope.

use callscope_testkit::baresip::{Baresip, BaresipConfig};
use callscope_testkit::linphone::{Linphone, LinphoneConfig};
use std::process::Command;
use std::time::Duration;

#[test]
fn linphonec_calls_baresip_and_terminates() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("b.wav");
    assert!(
        Command::new("sox")
            .args(["-n", "-r", "8000", "-c", "1", "-b", "16"])
            .arg(&wav)
            .args(["synth", "30", "sine", "500"])
            .status()
            .unwrap()
            .success()
    );
    let mut b = Baresip::start(&BaresipConfig::new("bob", &wav)).unwrap();
    let mut l = Linphone::start(&LinphoneConfig::new("lin")).unwrap();

    let line = l.call(&b.direct_uri(), Duration::from_secs(10)).unwrap();
    assert!(line.contains("connected"), "{line}");
    let up = b
        .wait_event("CALL_ESTABLISHED", Duration::from_secs(10))
        .unwrap();
    assert!(
        up.peer_uri.unwrap_or_default().contains("lin@"),
        "From shows linphone's user"
    );

    std::thread::sleep(Duration::from_secs(1));
    l.terminate_all().unwrap();
    b.wait_event("CALL_CLOSED", Duration::from_secs(10))
        .unwrap();
    l.wait_line("the call to end", Duration::from_secs(10), |s| {
        s.contains("ended")
    })
    .unwrap();
    l.quit().unwrap();
    b.quit().unwrap();
}
