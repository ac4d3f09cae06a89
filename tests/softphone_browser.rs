//! The softphone page in a real Chromium against a real `callscope serve`: signing in
//! through the form (a wrong password first), the agent's name and extension on the page,
//! going available (the server agrees), a dropped WebSocket coming back by itself with the
//! presence shown again, and signing out. Screenshots of each state are kept under the
//! target directory's `softphone-artifacts/` (the path is printed).
//!
//! Needs Chromium and tests/browser/node_modules: `scripts/setup` installs both. Without
//! them the test fails, saying so; it is never skipped.

use std::path::{Path, PathBuf};

use callscope_testkit::browser::Softphones;
use callscope_testkit::callscope::Callscope;
use serde_json::{Value, json};

const EXTENSION: &str = "1001";
const PASSWORD: &str = "softphone-pw-1001";
const AGENT: &str = "alice";

/// `<target dir>/softphone-artifacts/<test>`, emptied, for this run's screenshots.
fn artifact_dir(test: &str) -> PathBuf {
    callscope_testkit::browser::artifact_dir(Path::new(env!("CARGO_TARGET_TMPDIR")), test)
        .expect("the artifact dir")
}

/// A microphone for the browser: a steady 440 Hz tone at 48 kHz (Chromium's capture rate).
fn mic_wav(dir: &Path) -> PathBuf {
    let path = dir.join("mic.wav");
    let status = std::process::Command::new("sox")
        .args(["-n", "-r", "48000", "-c", "1", "-b", "16"])
        .arg(&path)
        .args(["synth", "30", "sine", "440", "vol", "0.3"])
        .status()
        .expect("run sox");
    assert!(status.success(), "sox failed");
    path
}

fn start_browsers() -> Softphones {
    Softphones::start().unwrap_or_else(|e| panic!("cannot start the browser driver: {e}"))
}

/// The agent's session cookie as the browser holds it, if any.
fn session_cookie(phones: &mut Softphones) -> Option<Value> {
    phones
        .cookies(AGENT)
        .expect("read cookies")
        .into_iter()
        .find(|c| c["name"] == "cs_session")
}

fn shot(phones: &mut Softphones, dir: &Path, name: &str) {
    let path = dir.join(name);
    phones.screenshot(AGENT, &path).expect("screenshot");
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    assert!(size > 1000, "{} is only {size} bytes", path.display());
}

#[test]
fn agent_signs_in_goes_available_survives_a_socket_drop_and_signs_out() {
    let artifacts = artifact_dir("sign_in_presence_reconnect");
    let scratch = tempfile::tempdir().unwrap();
    let mic = mic_wav(scratch.path());
    let server = Callscope::builder(env!("CARGO_BIN_EXE_callscope"))
        .user(EXTENSION, PASSWORD)
        .start()
        .expect("start callscope");
    let mut phones = start_browsers();
    let fail = |what: &str, e: &dyn std::fmt::Display, phones: &Softphones| -> ! {
        panic!(
            "{what}: {e}\n--- driver log ---\n{}\n--- server log ---\n{}",
            phones.log_text(),
            server.log()
        )
    };

    let opened = phones
        .open(AGENT, &server.base_url(), Some(&mic))
        .unwrap_or_else(|e| fail("open", &e, &phones));
    assert_eq!(opened["view"], "login", "{opened}");

    // A wrong password: a clear error on the form, no session cookie.
    let wrong = phones
        .login(AGENT, server.realm(), EXTENSION, "not-the-password")
        .unwrap_or_else(|e| fail("login (wrong password)", &e, &phones));
    assert_eq!(wrong["view"], "login", "{wrong}");
    assert_eq!(
        wrong["login_error"], "Wrong domain, extension or password.",
        "{wrong}"
    );
    assert_eq!(session_cookie(&mut phones), None);
    shot(&mut phones, &artifacts, "01-wrong-password.png");

    // The right one: the phone view with the agent's name and extension, connected, away
    // (a fresh sign-in never rings until the agent says so).
    let signed_in = phones
        .login(AGENT, server.realm(), EXTENSION, PASSWORD)
        .unwrap_or_else(|e| fail("login", &e, &phones));
    assert_eq!(signed_in["view"], "phone", "{signed_in}");
    let state = &signed_in["state"];
    assert_eq!(state["user"]["extension"], EXTENSION, "{state}");
    assert_eq!(
        state["user"]["name"],
        format!("Agent {EXTENSION}"),
        "{state}"
    );
    assert_eq!(state["connection"], "open", "{state}");
    assert_eq!(state["connections"], 1, "{state}");
    assert_eq!(state["presence"], "away", "{state}");
    assert_eq!(state["call"]["state"], "idle", "{state}");
    assert_eq!(state["login_error"], Value::Null, "{state}");
    let cookie = session_cookie(&mut phones).expect("a session cookie after signing in");
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
    let cookie_header = format!("cs_session={}", cookie["value"].as_str().unwrap());
    let as_agent = callscope_testkit::http::HttpClient::new(server.base_url(), None)
        .with_cookie(cookie_header);
    shot(&mut phones, &artifacts, "02-signed-in.png");

    // Available through the page's switch; the server agrees.
    phones
        .set_presence(AGENT, "available")
        .unwrap_or_else(|e| fail("set_presence", &e, &phones));
    let (status, me) = as_agent.get("/api/v1/agent/me").unwrap();
    assert_eq!((status, me["presence"].clone()), (200, json!("available")));
    assert_eq!(me["user"]["extension"], EXTENSION);
    shot(&mut phones, &artifacts, "03-available.png");

    // The socket drops: the page reconnects by itself (a second `hello`) and shows the
    // presence the server sends again.
    phones
        .drop_socket(AGENT)
        .unwrap_or_else(|e| fail("drop_socket", &e, &phones));
    let back = phones
        .wait_attr(AGENT, "#connection", "data-hellos", "2")
        .unwrap_or_else(|e| fail("reconnect", &e, &phones));
    phones
        .wait_attr(AGENT, "#connection", "data-connection", "open")
        .unwrap_or_else(|e| fail("reconnected", &e, &phones));
    assert_eq!(back["state"]["presence"], "available", "{back}");
    // The new socket is live: a presence change made elsewhere (the REST API, as another
    // tab would) reaches the page through it.
    let (status, _) = as_agent
        .put("/api/v1/agent/presence", &json!({ "status": "away" }))
        .unwrap();
    assert_eq!(status, 200);
    phones
        .wait_attr(AGENT, "#presence", "data-presence", "away")
        .unwrap_or_else(|e| fail("presence pushed over the new socket", &e, &phones));
    phones
        .set_presence(AGENT, "available")
        .unwrap_or_else(|e| fail("set_presence after reconnect", &e, &phones));
    let (_, me) = as_agent.get("/api/v1/agent/me").unwrap();
    assert_eq!(me["presence"], "available");
    shot(&mut phones, &artifacts, "04-reconnected.png");

    // Signing out: back to the login form, the cookie gone, the session dead, offline.
    let out = phones
        .logout(AGENT)
        .unwrap_or_else(|e| fail("logout", &e, &phones));
    assert_eq!(out["state"]["view"], "login", "{out}");
    assert_eq!(out["state"]["connection"], "closed", "{out}");
    assert_eq!(session_cookie(&mut phones), None);
    let (status, _) = as_agent.get("/api/v1/agent/me").unwrap();
    assert_eq!(status, 401);
    let user_id = server.user_id(EXTENSION).unwrap();
    let presence = server
        .query(&format!(
            "SELECT status FROM agent_presence WHERE user_id = '{user_id}'"
        ))
        .unwrap();
    assert_eq!(presence, vec![vec!["offline".to_string()]]);
    shot(&mut phones, &artifacts, "05-signed-out.png");

    let state = phones.read_state(AGENT).unwrap();
    assert_eq!(state["view"], "login", "{state}");
    // The strict CSP blocked nothing the page needs, and no script error happened. (The
    // only errors are the expected 401s: `me` before signing in, the wrong password.)
    let console = phones.console(AGENT).unwrap();
    let unexpected: Vec<&String> = console
        .iter()
        .filter(|l| l.starts_with("error") || l.starts_with("pageerror"))
        .filter(|l| !l.contains("status of 401"))
        .collect();
    assert!(unexpected.is_empty(), "console: {console:#?}");
    eprintln!("softphone screenshots: {}", artifacts.display());
}

/// A server with the agent, and the agent's browser signed in (away).
fn signed_in(test: &str) -> (Callscope, Softphones, PathBuf, tempfile::TempDir) {
    let artifacts = artifact_dir(test);
    let scratch = tempfile::tempdir().unwrap();
    let mic = mic_wav(scratch.path());
    let server = Callscope::builder(env!("CARGO_BIN_EXE_callscope"))
        .user(EXTENSION, PASSWORD)
        .start()
        .expect("start callscope");
    let mut phones = start_browsers();
    phones
        .open(AGENT, &server.base_url(), Some(&mic))
        .unwrap_or_else(|e| panic!("open: {e}\n{}", phones.log_text()));
    let reply = phones
        .login(AGENT, server.realm(), EXTENSION, PASSWORD)
        .unwrap_or_else(|e| panic!("login: {e}\n{}", phones.log_text()));
    assert_eq!(reply["view"], "phone", "{reply}");
    (server, phones, artifacts, scratch)
}

#[test]
fn a_session_ended_elsewhere_sends_the_page_back_to_sign_in() {
    let (server, mut phones, artifacts, _scratch) = signed_in("session_ended_elsewhere");
    let cookie = session_cookie(&mut phones).expect("session cookie");
    let as_agent = callscope_testkit::http::HttpClient::new(server.base_url(), None)
        .with_cookie(format!("cs_session={}", cookie["value"].as_str().unwrap()));
    // Signed out from somewhere else (another tab, an admin): the session is revoked.
    let (status, _) = as_agent
        .post("/api/v1/agent/logout", &serde_json::json!({}))
        .unwrap();
    assert_eq!(status, 204);
    // The next reconnect finds the session gone and asks the agent to sign in again,
    // instead of retrying for ever.
    phones.drop_socket(AGENT).unwrap();
    let state = phones
        .wait_attr(AGENT, "#app", "data-view", "login")
        .unwrap_or_else(|e| panic!("{e}\n{}", phones.log_text()))["state"]
        .clone();
    assert_eq!(
        state["login_error"], "Your session has ended. Sign in again.",
        "{state}"
    );
    assert_eq!(state["connection"], "closed", "{state}");
    shot(&mut phones, &artifacts, "01-session-ended.png");
    // And signing in again works from there.
    let again = phones
        .login(AGENT, server.realm(), EXTENSION, PASSWORD)
        .unwrap();
    assert_eq!(again["view"], "phone", "{again}");
    assert_eq!(again["state"]["connection"], "open", "{again}");
}

#[test]
fn digits_typed_or_clicked_go_to_the_number_field() {
    let (_server, mut phones, artifacts, _scratch) = signed_in("keyboard");
    // Focus on nothing in particular (the call panel's heading): typed digits land in the
    // number field, which takes the focus.
    phones.click(AGENT, "#call-title").unwrap();
    for key in ["0", "2", "0", "7", "*"] {
        phones.press(AGENT, key, None).unwrap();
    }
    let state = phones.read_state(AGENT).unwrap();
    assert_eq!(state["dial_number"], "0207*", "{state}");
    // Letters are not digits: they go nowhere.
    phones.click(AGENT, "#call-title").unwrap();
    phones.press(AGENT, "x", None).unwrap();
    // The dial pad's buttons append too, and Clear empties the field.
    phones
        .click(AGENT, "#dialpad button[data-digit='9']")
        .unwrap();
    phones
        .click(AGENT, "#dialpad button[data-digit='#']")
        .unwrap();
    let state = phones.read_state(AGENT).unwrap();
    assert_eq!(state["dial_number"], "0207*9#", "{state}");
    shot(&mut phones, &artifacts, "01-typed-number.png");
    phones.click(AGENT, "#dial-clear").unwrap();
    assert_eq!(phones.read_state(AGENT).unwrap()["dial_number"], "");
    // Without a call the call controls are off, and there is no in-call keypad.
    phones
        .wait_attr(AGENT, "#call-hangup", "disabled", "")
        .unwrap();
    phones.wait_state(AGENT, "#dtmf", "hidden").unwrap();
    // An empty number is refused on the page, with a message, before anything is sent.
    phones.press(AGENT, "Enter", Some("#dial-number")).unwrap();
    let state = phones.wait_attr(AGENT, "#notice", "role", "alert").unwrap()["state"].clone();
    assert_eq!(
        state["notice"], "Type a number or an extension to call.",
        "{state}"
    );
    assert_eq!(state["call"]["state"], "idle", "{state}");
}
