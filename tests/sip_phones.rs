//! Real phones through the real `callscope serve`: baresip (libre) and linphonec (belle-sip)
//! register with digest auth and call each other by extension through callscope's B2BUA.
//! There is no media relay yet (issue 4), so these tests assert signalling: who rang, who
//! answered, what each phone saw, and what callscope recorded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use callscope_testkit::baresip::{AnswerMode, Baresip, BaresipConfig, Registration};
use callscope_testkit::callscope::Callscope;
use callscope_testkit::linphone::{Linphone, LinphoneAccount, LinphoneConfig};

const WAIT: Duration = Duration::from_secs(15);

/// A minute of tone as every phone's microphone (baresip hangs up when its file runs out).
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

/// `callscope serve` with SIP users (extension, password) and extra configuration (TOML).
fn start_server(users: &[(&str, &str)], config_toml: &str) -> Callscope {
    let mut builder = Callscope::builder(env!("CARGO_BIN_EXE_callscope"))
        .env("CALLSCOPE_LOG", "info,rsipstack=warn,callscope_sip=debug")
        .config_toml(config_toml);
    for (ext, pw) in users {
        builder = builder.user(ext, pw);
    }
    builder.start().expect("start callscope")
}

/// SIGTERM, and the server must exit cleanly.
fn stop_cleanly(mut server: Callscope) {
    let status = server.shutdown(Duration::from_secs(15)).unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "callscope exited with {status:?}\n{}",
        server.log()
    );
}

fn phone(server: &Callscope, ext: &str, pw: &str, wav: &Path, mode: AnswerMode) -> Baresip {
    let mut config = BaresipConfig::new(ext, wav);
    config.answer_mode = mode;
    config.domain = Some(server.realm().to_string());
    config.registration = Some(Registration {
        registrar: server.sip_addr(),
        auth_user: String::new(),
        password: pw.to_string(),
        regint: 300,
    });
    let mut p = Baresip::start(&config).expect("start baresip");
    p.wait_registered(WAIT)
        .unwrap_or_else(|e| panic!("{ext} did not register: {e}\n{}", p.log_text()));
    p
}

/// The single call record of the test, as (state, on_hold, answered, hangup side, cause,
/// sip status).
fn call_record(server: &Callscope) -> Vec<Vec<String>> {
    server
        .query(
            "SELECT state, on_hold, answer_at IS NOT NULL, COALESCE(hangup_side, 'NULL'), \
         COALESCE(hangup_cause, 'NULL'), COALESCE(sip_status, 0), from_party, to_party \
         FROM call_sip ORDER BY invite_at",
        )
        .unwrap()
}

fn timeline_kinds(server: &Callscope) -> Vec<String> {
    server
        .query("SELECT kind FROM timeline_events ORDER BY occurred_at, rowid")
        .unwrap()
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect()
}

#[test]
fn baresip_calls_baresip_then_hold_resume_and_blind_transfer() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tone_wav(tmp.path());
    let server = start_server(
        &[
            ("1001", "alice-pw-0001"),
            ("1002", "bob-pw-00002"),
            ("1003", "carol-pw-0003"),
        ],
        "",
    );
    let mut a = phone(&server, "1001", "alice-pw-0001", &wav, AnswerMode::Manual);
    let mut b = phone(&server, "1002", "bob-pw-00002", &wav, AnswerMode::Manual);
    let mut c = phone(&server, "1003", "carol-pw-0003", &wav, AnswerMode::Auto);

    // A dials B's extension in the organization's domain; callscope routes it to B's binding.
    a.dial(&format!("sip:1002@{}", server.realm())).unwrap();
    let incoming = b
        .wait_event("CALL_INCOMING", WAIT)
        .unwrap_or_else(|e| panic!("B never rang: {e}\n{}", server.log()));
    assert!(
        incoming.peer_uri.as_deref().unwrap_or("").contains("1001"),
        "B should see the caller 1001: {incoming:?}"
    );
    a.wait_event("CALL_RINGING", WAIT).unwrap();
    b.accept().unwrap();
    b.wait_event("CALL_ESTABLISHED", WAIT).unwrap();
    a.wait_event("CALL_ESTABLISHED", WAIT).unwrap();
    let rows = server
        .wait_rows(
            "the call answered",
            "SELECT state FROM call_sip",
            WAIT,
            |r| r.len() == 1 && r[0][0] == "answered",
        )
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(server.metric("callscope_sip_live_calls").unwrap(), 1.0);

    // Hold from A: the re-INVITE (sendonly) is relayed to B, whose baresip reports the
    // remote side holding; then resume.
    a.hold().unwrap();
    let held = b
        .wait_event_where("B to see the hold", WAIT, |e| {
            e.kind == "CALL_HOLD" || e.kind == "CALL_REMOTE_SDP"
        })
        .unwrap_or_else(|e| panic!("{e}\nB log:\n{}", b.log_text()));
    assert!(
        held.kind == "CALL_HOLD" || held.param.as_deref() == Some("offer"),
        "{held:?}"
    );
    server
        .wait_rows("on_hold = 1", "SELECT on_hold FROM call_sip", WAIT, |r| {
            r.first().is_some_and(|r| r[0] == "1")
        })
        .unwrap();
    a.resume().unwrap();
    server
        .wait_rows("on_hold = 0", "SELECT on_hold FROM call_sip", WAIT, |r| {
            r.first().is_some_and(|r| r[0] == "0")
        })
        .unwrap();
    let kinds = timeline_kinds(&server);
    assert!(kinds.contains(&"call.held".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"call.resumed".to_string()), "{kinds:?}");

    // Blind transfer: A REFERs B to C. C (auto-answer) ends up in a call with B; A is released.
    a.transfer(&format!("sip:1003@{}", server.realm())).unwrap();
    c.wait_event("CALL_ESTABLISHED", WAIT)
        .unwrap_or_else(|e| panic!("C never got the transferred call: {e}\n{}", server.log()));
    a.wait_event("CALL_CLOSED", WAIT).unwrap();
    // B stays up: no CALL_CLOSED for B while C talks to it.
    let b_events = b.drain_events().unwrap();
    assert!(
        !b_events.iter().any(|e| e.kind == "CALL_CLOSED"),
        "B was hung up by the transfer: {b_events:?}"
    );
    let kinds = timeline_kinds(&server);
    assert!(kinds.contains(&"call.transferred".to_string()), "{kinds:?}");
    assert_eq!(server.metric("callscope_sip_live_calls").unwrap(), 1.0);

    // C hangs up: B is released too and the record ends.
    c.hangup().unwrap();
    b.wait_event("CALL_CLOSED", WAIT).unwrap();
    let rows = server
        .wait_rows("the call ended", "SELECT state FROM call_sip", WAIT, |r| {
            r.iter().all(|r| r[0] == "ended")
        })
        .unwrap();
    assert!(!rows.is_empty());
    let records = call_record(&server);
    eprintln!(
        "records: {records:?}\ntimeline: {:?}",
        timeline_kinds(&server)
    );
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0][2], "1", "answered: {records:?}");
    assert_eq!(records[0][4], "normal_clearing", "{records:?}");
    assert_eq!(
        (records[0][6].as_str(), records[0][7].as_str()),
        ("1001", "1002")
    );
    assert_eq!(server.metric("callscope_sip_live_calls").unwrap(), 0.0);

    for p in [a, b, c] {
        p.quit().unwrap();
    }
    stop_cleanly(server);
}

/// The callee's phone dies (SIGKILL) mid-call: callscope's keepalive OPTIONS go unanswered,
/// the call ends with cause "timeout", the caller gets a BYE, and the server is back to the
/// tasks, calls and file descriptors it had before the call.
#[test]
fn callee_killed_mid_call_is_cleaned_up_without_leaks() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tone_wav(tmp.path());
    // Keepalive OPTIONS every 2 s, a leg silent for 2 s is gone.
    let server = start_server(
        &[("1001", "alice-pw-0001"), ("1002", "bob-pw-00002")],
        "[sip.calls]\nkeepalive_interval_s = 2\nkeepalive_timeout_s = 2\n",
    );
    let mut a = phone(&server, "1001", "alice-pw-0001", &wav, AnswerMode::Manual);
    let mut b = phone(&server, "1002", "bob-pw-00002", &wav, AnswerMode::Auto);
    // Baseline after one complete call, so that lazily grown resources (database pool
    // connections, caches) are already there and only what the killed call leaves counts.
    a.dial(&format!("sip:1002@{}", server.realm())).unwrap();
    a.wait_event("CALL_ESTABLISHED", WAIT).unwrap();
    a.hangup().unwrap();
    b.wait_event("CALL_CLOSED", WAIT).unwrap();
    server
        .wait_rows(
            "the warm-up call to end",
            "SELECT state FROM call_sip",
            WAIT,
            |r| r.first().is_some_and(|r| r[0] == "ended"),
        )
        .unwrap();
    let idle = |what: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(45);
        loop {
            let tasks = server.metric("callscope_sip_call_tasks").unwrap();
            let calls = server.metric("callscope_sip_live_calls").unwrap();
            if tasks == 0.0 && calls == 0.0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: {calls} live calls, {tasks} call tasks\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    idle("after the warm-up call");
    // Let the server close the /metrics connection just used before counting sockets.
    std::thread::sleep(Duration::from_millis(300));
    let (fds_before, sockets_before) = (server.fd_targets(), server.socket_count());
    let threads_before = server.thread_names();

    a.dial(&format!("sip:1002@{}", server.realm())).unwrap();
    b.wait_event("CALL_ESTABLISHED", WAIT).unwrap();
    a.wait_event("CALL_ESTABLISHED", WAIT).unwrap();
    server
        .wait_rows(
            "answered",
            "SELECT state FROM call_sip ORDER BY invite_at DESC",
            WAIT,
            |r| r.first().is_some_and(|r| r[0] == "answered"),
        )
        .unwrap();
    assert_eq!(server.metric("callscope_sip_live_calls").unwrap(), 1.0);
    assert!(server.metric("callscope_sip_call_tasks").unwrap() > 0.0);

    // SIGKILL by PID: no BYE, no goodbye of any kind.
    let pid = b.pid();
    callscope_testkit::process::signal(pid, libc_sigkill());
    let started = std::time::Instant::now();
    a.wait_event("CALL_CLOSED", Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("A was not released: {e}\n{}", server.log()));
    let took = started.elapsed();
    let rows = server
        .wait_rows(
            "the record to end",
            "SELECT state, hangup_side, hangup_cause FROM call_sip ORDER BY invite_at DESC",
            WAIT,
            |r| r.first().is_some_and(|r| r[0] == "ended"),
        )
        .unwrap();
    assert_eq!(rows[0][2], "timeout", "{rows:?}");
    assert_eq!(rows[0][1], "system", "{rows:?}");
    eprintln!("caller released {took:?} after the kill; record {rows:?}");

    // Back to baseline: the call task ends once its BYE to the dead phone has timed out
    // (RFC 3261 timer F, 32 s), then the counts must equal those before the call.
    idle("after the callee was killed");
    std::thread::sleep(Duration::from_millis(300));
    // Threads the call left behind: names running more often now than before (sqlx's
    // connection threads aside, which the pool owns). tokio's blocking-pool threads, named
    // like its workers, outlive their last task by 10 s before they exit, so one that was
    // idling in the baseline may be gone by now: fewer is fine, more is a leak.
    let extra_threads = |now: &[String]| -> Vec<String> {
        let mut left: Vec<&String> = threads_before
            .iter()
            .filter(|t| !t.starts_with("sqlx-sqlite"))
            .collect();
        let mut extra = Vec::new();
        for t in now.iter().filter(|t| !t.starts_with("sqlx-sqlite")) {
            match left.iter().position(|b| *b == t) {
                Some(i) => {
                    left.swap_remove(i);
                }
                None => extra.push(t.clone()),
            }
        }
        extra
    };
    let settle = std::time::Instant::now() + Duration::from_secs(15);
    while !extra_threads(&server.thread_names()).is_empty() && std::time::Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(500));
    }
    let (fds, sockets, threads) = (
        server.fd_targets(),
        server.socket_count(),
        server.thread_names(),
    );
    eprintln!(
        "idle after {:?}: fds {}/{}, sockets {sockets}/{sockets_before}, threads {}/{}",
        started.elapsed(),
        fds.len(),
        fds_before.len(),
        threads.len(),
        threads_before.len()
    );
    assert_eq!(
        sockets, sockets_before,
        "socket leak: {fds:?} vs {fds_before:?}"
    );
    // The database pool may open another connection (its file, WAL and a sqlx worker
    // thread) under load; it is bounded by the pool size and not the call's. Anything else
    // must be exactly as before.
    let not_db = |v: &[String]| -> Vec<String> {
        v.iter()
            .filter(|t| !t.contains("callscope.db"))
            .cloned()
            .collect()
    };
    assert_eq!(not_db(&fds), not_db(&fds_before), "descriptor leak");
    assert_eq!(
        extra_threads(&threads),
        Vec::<String>::new(),
        "thread leak: {threads:?} vs {threads_before:?}"
    );
    drop(b);
    a.quit().unwrap();
    stop_cleanly(server);
}

fn libc_sigkill() -> i32 {
    9
}

/// Two independent SIP stacks through callscope: linphonec (belle-sip) registers with digest
/// (MD5) and calls a registered baresip (libre) by extension; baresip answers; linphonec
/// hangs up. Then the reverse: baresip calls linphonec (auto-answer) and hangs up itself.
#[test]
fn linphonec_and_baresip_call_each_other_through_callscope() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tone_wav(tmp.path());
    let server = start_server(&[("1001", "linphone-pw-01"), ("1002", "bob-pw-00002")], "");
    let realm = server.realm().to_string();
    let mut config = LinphoneConfig::new("1001");
    config.auto_answer = true;
    config.account = Some(LinphoneAccount {
        domain: realm.clone(),
        proxy: server.sip_addr(),
        password: "linphone-pw-01".into(),
    });
    let mut linphone = Linphone::start(&config).expect("linphonec");
    linphone
        .wait_registered(WAIT)
        .unwrap_or_else(|e| panic!("linphonec did not register: {e}\n{}", linphone.output()));
    let mut bare = phone(&server, "1002", "bob-pw-00002", &wav, AnswerMode::Manual);

    // linphonec → baresip, answered by hand, hung up by the caller.
    linphone.send(&format!("call sip:1002@{realm}")).unwrap();
    let incoming = bare.wait_event("CALL_INCOMING", WAIT).unwrap_or_else(|e| {
        panic!(
            "baresip never rang: {e}\nlinphonec:\n{}\n{}",
            linphone.output(),
            server.log()
        )
    });
    assert!(
        incoming.peer_uri.as_deref().unwrap_or("").contains("1001"),
        "{incoming:?}"
    );
    bare.accept().unwrap();
    bare.wait_event("CALL_ESTABLISHED", WAIT).unwrap();
    linphone
        .wait_line("linphonec to see the call connected", WAIT, |l| {
            l.contains("connected")
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", linphone.output()));
    server
        .wait_rows(
            "the call answered",
            "SELECT state FROM call_sip",
            WAIT,
            |r| r.len() == 1 && r[0][0] == "answered",
        )
        .unwrap();
    linphone.terminate_all().unwrap();
    bare.wait_event("CALL_CLOSED", WAIT)
        .unwrap_or_else(|e| panic!("baresip was not released: {e}\n{}", server.log()));
    let rows = server
        .wait_rows(
            "the call ended",
            "SELECT state, answer_at IS NOT NULL, hangup_side, hangup_cause, from_party, to_party \
             FROM call_sip",
            WAIT,
            |r| r.len() == 1 && r[0][0] == "ended",
        )
        .unwrap();
    assert_eq!(
        rows[0][1..],
        ["1", "caller", "normal_clearing", "1001", "1002"].map(String::from),
        "{rows:?}"
    );

    // baresip → linphonec (auto-answer), hung up by the caller again (baresip this time).
    bare.dial(&format!("sip:1001@{realm}")).unwrap();
    bare.wait_event("CALL_ESTABLISHED", WAIT)
        .unwrap_or_else(|e| panic!("{e}\nlinphonec:\n{}\n{}", linphone.output(), server.log()));
    linphone
        .wait_line("linphonec to answer", WAIT, |l| l.contains("connected"))
        .unwrap_or_else(|e| panic!("{e}\n{}", linphone.output()));
    bare.hangup().unwrap();
    linphone
        .wait_line("linphonec to see the call end", WAIT, |l| {
            l.contains("ended") || l.contains("terminated")
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", linphone.output()));
    let rows = server
        .wait_rows(
            "both calls ended",
            "SELECT state, answer_at IS NOT NULL, hangup_side, hangup_cause, from_party, to_party \
             FROM call_sip ORDER BY invite_at",
            WAIT,
            |r| r.len() == 2 && r.iter().all(|r| r[0] == "ended"),
        )
        .unwrap();
    assert_eq!(
        rows[1][1..],
        ["1", "caller", "normal_clearing", "1002", "1001"].map(String::from),
        "{rows:?}"
    );
    assert_eq!(server.metric("callscope_sip_live_calls").unwrap(), 0.0);
    linphone.quit().unwrap();
    bare.quit().unwrap();
    stop_cleanly(server);
}

/// RFC 8760: with only SHA-256 challenges offered, linphonec (which, unlike baresip 1.0 and
/// SIPp 3.6, computes SHA-256 digests) registers — so the SHA-256 HA1 callscope stores is the
/// one a real client computes. A wrong password under SHA-256 is refused.
#[test]
fn linphonec_registers_with_a_sha256_digest() {
    let server = start_server(
        &[("1001", "linphone-pw-01")],
        "[sip.auth]\nchallenge_algorithms = [\"SHA-256\"]\n",
    );
    let account = |password: &str| {
        let mut config = LinphoneConfig::new("1001");
        config.account = Some(LinphoneAccount {
            domain: server.realm().to_string(),
            proxy: server.sip_addr(),
            password: password.into(),
        });
        Linphone::start(&config).expect("linphonec")
    };
    let mut good = account("linphone-pw-01");
    good.wait_registered(WAIT)
        .unwrap_or_else(|e| panic!("no SHA-256 registration: {e}\n{}", good.output()));
    good.quit().unwrap();

    let failures_before = server.metric("callscope_sip_auth_failures").unwrap();
    let mut bad = account("not-the-password");
    assert!(
        bad.wait_registered(Duration::from_secs(4)).is_err(),
        "a wrong password registered"
    );
    assert!(server.metric("callscope_sip_auth_failures").unwrap() > failures_before);
    bad.quit().unwrap();
    stop_cleanly(server);
}

/// An inbound number routed to a team rings whoever is in the team when the call comes:
/// first Bob (1002); after Bob leaves and Carol (1003) joins, Carol — with no change to the
/// route. Team and route are set up through the REST API, the calls are real baresip phones.
#[test]
fn a_number_routed_to_a_team_rings_its_members_of_the_moment() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tone_wav(tmp.path());
    let server = start_server(
        &[
            ("1001", "alice-pw-0001"),
            ("1002", "bob-pw-00002"),
            ("1003", "carol-pw-0003"),
        ],
        "",
    );
    let http = server.http();
    let (bob, carol) = (
        server.user_id("1002").unwrap().to_string(),
        server.user_id("1003").unwrap().to_string(),
    );
    let (status, team) = http
        .post(
            "/api/v1/teams",
            &serde_json::json!({"name": "Support", "members": [{"user_id": bob}]}),
        )
        .unwrap();
    assert_eq!(status, 201, "{team}");
    let team_id = team["id"].as_str().unwrap().to_string();
    let (status, route) = http
        .post(
            "/api/v1/routes",
            &serde_json::json!({"did": "+14155550150", "target": {"kind": "team", "team_id": team_id}}),
        )
        .unwrap();
    assert_eq!(status, 201, "{route}");

    let mut a = phone(&server, "1001", "alice-pw-0001", &wav, AnswerMode::Manual);
    let mut b = phone(&server, "1002", "bob-pw-00002", &wav, AnswerMode::Manual);
    let mut c = phone(&server, "1003", "carol-pw-0003", &wav, AnswerMode::Auto);
    let did = format!("sip:+14155550150@{}", server.realm());

    // Bob is the team: he rings, Carol does not; the caller gives up.
    a.dial(&did).unwrap();
    b.wait_event("CALL_INCOMING", WAIT)
        .unwrap_or_else(|e| panic!("Bob never rang: {e}\n{}", server.log()));
    a.hangup().unwrap();
    b.wait_event("CALL_CLOSED", WAIT).unwrap();
    assert!(
        c.wait_event("CALL_INCOMING", Duration::from_secs(1))
            .is_err(),
        "Carol is not in the team"
    );

    // Bob leaves, Carol joins: Carol (auto-answer) takes the next call, Bob does not ring.
    let (status, _) = http
        .delete(&format!("/api/v1/teams/{team_id}/members/{bob}"))
        .unwrap();
    assert_eq!(status, 204);
    let (status, _) = http
        .put(
            &format!("/api/v1/teams/{team_id}/members/{carol}"),
            &serde_json::json!({}),
        )
        .unwrap();
    assert_eq!(status, 201);
    a.dial(&did).unwrap();
    a.wait_event("CALL_ESTABLISHED", WAIT)
        .unwrap_or_else(|e| panic!("Carol did not answer: {e}\n{}", server.log()));
    assert!(
        b.wait_event("CALL_INCOMING", Duration::from_secs(1))
            .is_err(),
        "Bob left the team"
    );
    a.hangup().unwrap();
    c.wait_event("CALL_CLOSED", WAIT).unwrap();
    let rows = server
        .wait_rows(
            "both calls ended",
            "SELECT state, COALESCE(answered_by_user_id, '') FROM call_sip ORDER BY invite_at",
            WAIT,
            |r| r.len() == 2 && r.iter().all(|r| r[0] == "ended"),
        )
        .unwrap();
    assert_eq!(rows[0][1], "", "the first call was never answered");
    assert_eq!(rows[1][1], carol, "{rows:?}");
    a.quit().unwrap();
    b.quit().unwrap();
    c.quit().unwrap();
    stop_cleanly(server);
}
