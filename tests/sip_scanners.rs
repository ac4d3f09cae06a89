//! SIPVicious against the real `callscope serve`: `svwar` cannot enumerate extensions (by
//! INVITE or REGISTER), `svcrack` gets its source banned before it reaches the right
//! password, and a legitimate phone on another address registers and completes a call while
//! the attack runs.
//!
//! Addresses: the attacker is 127.0.0.5, a raw prober 127.0.0.7, the legitimate caller
//! 127.0.0.3 and the callee 127.0.0.8 (bans and rate limits are per source IP).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use callscope_testkit::baresip::{AnswerMode, Baresip, BaresipConfig, Registration};
use callscope_testkit::callscope::Callscope;
use callscope_testkit::svwar::{self, ScanOptions};

const WAIT: Duration = Duration::from_secs(15);
const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);
const PROBER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 7);
/// Extensions 100-130 are scanned; these exist (110 and 120 are the legitimate phones).
const EXISTING: [&str; 4] = ["100", "105", "110", "120"];
const BAN_AFTER: u32 = 5;

fn password(ext: &str) -> String {
    format!("pw-{ext}-not-in-any-list")
}

fn tone_wav(dir: &Path) -> PathBuf {
    let path = dir.join("tone.wav");
    let status = std::process::Command::new("sox")
        .args(["-n", "-r", "8000", "-c", "1", "-b", "16"])
        .arg(&path)
        .args(["synth", "60", "sine", "440", "vol", "0.3"])
        .status()
        .expect("run sox");
    assert!(status.success());
    path
}

fn phone(server: &Callscope, ext: &str, ip: Ipv4Addr, wav: &Path, mode: AnswerMode) -> Baresip {
    let mut config = BaresipConfig::new(ext, wav);
    config.answer_mode = mode;
    config.bind_ip = ip;
    config.domain = Some(server.realm().to_string());
    config.registration = Some(Registration {
        registrar: server.sip_addr(),
        auth_user: String::new(),
        password: password(ext),
        regint: 300,
    });
    let mut p = Baresip::start(&config).expect("start baresip");
    p.wait_registered(WAIT)
        .unwrap_or_else(|e| panic!("{ext} did not register: {e}\n{}", p.log_text()));
    p
}

/// One request from `socket`; the final reply's status line and the set of its header
/// names — what a scanner can compare between extensions (tags, nonces and branches always
/// differ). Provisional replies (100 Trying) are skipped.
fn probe(socket: &UdpSocket, server: SocketAddr, request: &str) -> (String, BTreeSet<String>) {
    socket.send_to(request.as_bytes(), server).unwrap();
    let mut buf = [0u8; 8192];
    for _ in 0..5 {
        let (n, _) = socket
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("no final reply to\n{request}\n{e}"));
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let mut lines = text.split("\r\n");
        let status = lines.next().unwrap_or_default().to_string();
        if status.starts_with("SIP/2.0 1") {
            continue;
        }
        let names = lines
            .take_while(|l| !l.is_empty())
            .filter_map(|l| {
                l.split_once(':')
                    .map(|(n, _)| n.trim().to_ascii_lowercase())
            })
            .collect();
        return (status, names);
    }
    panic!("only provisional replies to\n{request}");
}

fn request(method: &str, ext: &str, realm: &str, local: SocketAddr, n: u32) -> String {
    let ruri = if method == "REGISTER" {
        format!("sip:{realm}")
    } else {
        format!("sip:{ext}@{realm}")
    };
    let contact = format!("Contact: <sip:{ext}@{local}>\r\n");
    let body = if method == "INVITE" {
        format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            ip = local.ip()
        )
    } else {
        String::new()
    };
    let ctype = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-probe-{n};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{ext}@{realm}>;tag=probe{n}\r\nTo: <sip:{ext}@{realm}>\r\n\
         Call-ID: probe-{n}@{ip}\r\nCSeq: 1 {method}\r\n{contact}{ctype}\
         Content-Length: {len}\r\n\r\n{body}",
        ip = local.ip(),
        len = body.len()
    )
}

/// Every extension of 100-130 — existing, registered or not — gets the same answer to an
/// unauthenticated REGISTER and INVITE: nothing for a scanner to tell them apart by.
fn responses_do_not_depend_on_the_extension(server: &Callscope) {
    let socket = UdpSocket::bind(SocketAddr::from((PROBER, 0))).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let local = socket.local_addr().unwrap();
    let mut n = 0;
    for method in ["REGISTER", "INVITE"] {
        let mut seen: Vec<(String, (String, BTreeSet<String>))> = Vec::new();
        for ext in 100..=130 {
            n += 1;
            let ext = ext.to_string();
            let reply = probe(
                &socket,
                server.sip_addr(),
                &request(method, &ext, server.realm(), local, n),
            );
            if method == "INVITE" {
                // ACK the final response, or the server retransmits it.
                let ack = request("ACK", &ext, server.realm(), local, n);
                socket.send_to(ack.as_bytes(), server.sip_addr()).ok();
            }
            seen.push((ext, reply));
        }
        let distinct: BTreeSet<&(String, BTreeSet<String>)> = seen.iter().map(|(_, r)| r).collect();
        assert_eq!(
            distinct.len(),
            1,
            "{method} answers differ between extensions: {distinct:#?}\n{:?}",
            seen.iter()
                .map(|(e, (s, _))| format!("{e}: {s}"))
                .collect::<Vec<_>>()
        );
        let (status, _) = &seen[0].1;
        let expected = if method == "REGISTER" { "401" } else { "407" };
        assert!(status.contains(expected), "{method}: {status}");
        // Give the per-source token bucket (20/s, burst 40) time to refill between methods.
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[test]
fn svwar_finds_nothing_svcrack_gets_banned_and_a_phone_still_calls() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tone_wav(tmp.path());
    let mut builder = Callscope::builder(env!("CARGO_BIN_EXE_callscope"))
        .env("CALLSCOPE_LOG", "info,rsipstack=warn,callscope_sip=debug")
        .config_toml(&format!(
            "[sip.security]\nauth_failures_before_ban = {BAN_AFTER}\n\
             auth_failure_window_s = 60\nban_duration_s = 300\n"
        ));
    for ext in EXISTING {
        builder = builder.user(ext, &password(ext));
    }
    let server = builder.start().expect("start callscope");
    let realm = server.realm().to_string();
    // The callee is registered before the scan: a registered extension must not stand out.
    let mut callee = phone(
        &server,
        "120",
        Ipv4Addr::new(127, 0, 0, 8),
        &wav,
        AnswerMode::Auto,
    );

    responses_do_not_depend_on_the_extension(&server);

    // The attack runs in its own thread while the legitimate phone works.
    let target = server.sip_addr();
    let attack_realm = realm.clone();
    let attack = std::thread::spawn(move || {
        let options = ScanOptions {
            bind_ip: Some(IpAddr::V4(ATTACKER)),
            domain: Some(attack_realm),
            force: true,
        };
        let invite = svwar::scan_with(
            target,
            "100-130",
            "INVITE",
            Duration::from_secs(60),
            &options,
        )
        .expect("svwar INVITE");
        let register = svwar::scan_with(
            target,
            "100-130",
            "REGISTER",
            Duration::from_secs(60),
            &options,
        )
        .expect("svwar REGISTER");
        // Wrong passwords first, the right one after the ban threshold: a server without a
        // ban would hand it over.
        let right = password("100");
        let mut dictionary: Vec<String> =
            (1..=BAN_AFTER + 2).map(|i| format!("guess{i}")).collect();
        dictionary.push(right);
        let words: Vec<&str> = dictionary.iter().map(String::as_str).collect();
        let crack = svwar::crack(target, "100", &words, Duration::from_secs(60), &options)
            .expect("svcrack");
        // Banned now: the same scan gets no answer at all.
        let after_ban = svwar::scan_with(
            target,
            "100-130",
            "REGISTER",
            Duration::from_secs(60),
            &options,
        )
        .expect("svwar after the ban");
        (invite, register, crack, after_ban)
    });

    // Meanwhile: a phone on 127.0.0.3 registers and calls 120.
    let mut caller = phone(
        &server,
        "110",
        Ipv4Addr::new(127, 0, 0, 3),
        &wav,
        AnswerMode::Manual,
    );
    caller.dial(&format!("sip:120@{realm}")).unwrap();
    caller
        .wait_event("CALL_ESTABLISHED", WAIT)
        .unwrap_or_else(|e| panic!("legitimate call failed: {e}\n{}", server.log()));
    callee.wait_event("CALL_ESTABLISHED", WAIT).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    caller.hangup().unwrap();
    callee.wait_event("CALL_CLOSED", WAIT).unwrap();

    let (invite, register, crack, after_ban) = attack.join().expect("attack thread");
    eprintln!(
        "svwar INVITE:\n{}\nsvwar REGISTER:\n{}\nsvcrack:\n{}\nafter ban:\n{}",
        invite.output, register.output, crack.output, after_ban.output
    );
    for (what, report) in [("INVITE", &invite), ("REGISTER", &register)] {
        assert!(
            report.found.is_empty(),
            "svwar {what} enumerated {:?}",
            report.found
        );
        // It was answered (the scan ran against a live server, not into a void).
        assert!(
            !report.output.contains("No server response"),
            "svwar {what} got no answer:\n{}",
            report.output
        );
    }
    assert!(
        crack.cracked.is_empty(),
        "svcrack found a password: {:?}",
        crack.cracked
    );
    assert!(
        // svwar's first probe times out: it sends nothing further.
        after_ban.found.is_empty()
            && (after_ban.output.contains("timed out")
                || after_ban.output.contains("No server response")),
        "a banned source was answered:\n{}",
        after_ban.output
    );
    let metrics = server.metrics().unwrap();
    let m = |k: &str| metrics.get(k).copied().unwrap_or(0.0);
    eprintln!(
        "auth_failures {} bans {} banned_drops {} rate_limited {}",
        m("callscope_sip_auth_failures"),
        m("callscope_sip_bans"),
        m("callscope_sip_banned_drops"),
        m("callscope_sip_rate_limited")
    );
    assert!(m("callscope_sip_auth_failures") >= f64::from(BAN_AFTER));
    assert_eq!(
        m("callscope_sip_bans"),
        1.0,
        "exactly the attacker is banned"
    );
    assert!(m("callscope_sip_banned_drops") > 0.0);
    assert!(
        server.log().contains(&format!("source={ATTACKER}"))
            || server.log().contains(&ATTACKER.to_string()),
        "the ban names the attacker"
    );

    // The legitimate call is on record: answered, ended normally.
    let rows = server
        .wait_rows(
            "the legitimate call ended",
            "SELECT state, answer_at IS NOT NULL, hangup_cause, from_party, to_party FROM call_sip",
            WAIT,
            |r| r.iter().any(|r| r[0] == "ended"),
        )
        .unwrap();
    assert_eq!(
        rows,
        vec![
            ["ended", "1", "normal_clearing", "110", "120"]
                .map(String::from)
                .to_vec()
        ],
        "only the legitimate call is recorded (the probes' INVITEs were never routed)"
    );
    // The banned attacker cannot reach the server, other sources still can.
    let socket = UdpSocket::bind(SocketAddr::from((ATTACKER, 0))).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(800)))
        .unwrap();
    let local = socket.local_addr().unwrap();
    socket
        .send_to(
            request("OPTIONS", "100", &realm, local, 999).as_bytes(),
            server.sip_addr(),
        )
        .unwrap();
    let mut buf = [0u8; 4096];
    assert!(
        socket.recv_from(&mut buf).is_err(),
        "the banned source got an answer"
    );
    caller.quit().unwrap();
    callee.quit().unwrap();
    let mut server = server;
    let status = server.shutdown(Duration::from_secs(15)).unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}
