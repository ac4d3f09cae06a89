//! Shared test harness: a real server (real SQLite in a temp dir, real HTTP on 127.0.0.1:0)
//! and real audio made with espeak-ng and sox.
#![allow(dead_code)]

pub mod events;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use callscope_api::config::Config;
use callscope_api::http::state::AsrState;
use callscope_api::server::{self, Running};
use callscope_api::store;
use serde_json::Value;

pub struct TestServer {
    pub base: String,
    pub dir: tempfile::TempDir,
    pub running: Running,
    pub http: reqwest::Client,
}

pub fn test_config(dir: &Path) -> Config {
    let mut c = Config {
        data_dir: dir.join("data"),
        ..Config::default()
    };
    c.http.addr = "127.0.0.1:0".parse().unwrap();
    c.workers = 2;
    c.jobs.poll_ms = 50;
    c.jobs.retry_base_ms = 100;
    // The tests' receivers and recording servers listen on loopback, which the server
    // refuses by default (api/tests/egress.rs tests that refusal).
    c.egress.allow_private_networks = true;
    c
}

impl TestServer {
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        tweak(&mut config);
        let pool = server::open_database(&config).await.unwrap();
        let running = server::start_with(pool, config, AsrState::NotConfigured)
            .await
            .unwrap();
        let base = format!("http://{}", running.addr);
        TestServer {
            base,
            dir,
            running,
            http: reqwest::Client::new(),
        }
    }

    pub fn pool(&self) -> &sqlx::SqlitePool {
        &self.running.state.pool
    }

    /// A new organization and an API key for it.
    pub async fn org(&self, name: &str) -> (String, String) {
        let org = store::orgs::create_org(self.pool(), name).await.unwrap();
        let key = callscope_api::auth::create_api_key(self.pool(), &org, "test", None)
            .await
            .unwrap();
        (org, key.key)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, key: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, key: &str, path: &str) -> (u16, Value) {
        let r = self.get(key, path).await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// POST /api/v1/recordings with a file and text fields (and an optional transcript).
    pub async fn upload(
        &self,
        key: &str,
        file_name: &str,
        bytes: Vec<u8>,
        fields: &[(&str, &str)],
        transcript: Option<&str>,
    ) -> (u16, Value) {
        let mut form = reqwest::multipart::Form::new();
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        if let Some(t) = transcript {
            form = form.text("transcript", t.to_string());
        }
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_string()),
        );
        let r = self
            .http
            .post(self.url("/api/v1/recordings"))
            .header("x-api-key", key)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Poll the call until it leaves the in-progress states (bounded: 60 s).
    pub async fn wait_done(&self, key: &str, call_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (s, v) = self
                .get_json(key, &format!("/api/v1/calls/{call_id}"))
                .await;
            assert_eq!(s, 200, "{v}");
            let st = v["status"].as_str().unwrap_or_default().to_string();
            if !["received", "transcribing", "analyzing"].contains(&st.as_str()) {
                return v;
            }
            assert!(Instant::now() < deadline, "call {call_id} still {st}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Speech by espeak-ng, as 16 kHz mono WAV, preceded by `lead_s` seconds of silence and
/// padded to `total_s` seconds.
fn voice(dir: &Path, name: &str, voice: &str, text: &str, lead_s: f32, total_s: f32) -> PathBuf {
    let raw = dir.join(format!("{name}-raw.wav"));
    run(Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "-w"])
        .arg(&raw)
        .arg(text));
    let out = dir.join(format!("{name}.wav"));
    run(Command::new("sox")
        .arg(&raw)
        .args(["-r", "16000", "-c", "1", "-b", "16"])
        .arg(&out)
        .args([
            "pad",
            &lead_s.to_string(),
            "30",
            "trim",
            "0",
            &total_s.to_string(),
        ]));
    out
}

/// A two-party stereo call: agent on the left speaking at 0.5 s, customer on the right at
/// 4.0 s; 8 s long.
pub fn stereo_call(dir: &Path) -> PathBuf {
    let agent = voice(
        dir,
        "agent",
        "en-us",
        "Hello, thank you for calling. How can I help?",
        0.5,
        8.0,
    );
    let customer = voice(
        dir,
        "customer",
        "en-gb",
        "Hi, I have a question about my bill.",
        4.0,
        8.0,
    );
    let out = dir.join("call.wav");
    run(Command::new("sox")
        .arg("-M")
        .arg(&agent)
        .arg(&customer)
        .arg(&out));
    out
}

/// A two-voice call down-mixed to one channel: a higher voice (en-us+f3, the agent) at 0.5 s,
/// a lower one (en-us+m3, the customer) at 5 s; 9 s, 16 kHz mono.
pub fn mono_two_voice_call(dir: &Path) -> PathBuf {
    let agent = voice(
        dir,
        "mono-agent",
        "en-us+f3",
        "Thank you for calling Acme support, how can I help you today?",
        0.5,
        9.0,
    );
    let customer = voice(
        dir,
        "mono-customer",
        "en-us+m3",
        "Hi, my internet has been down since this morning.",
        5.0,
        9.0,
    );
    let out = dir.join("mono-call.wav");
    run(Command::new("sox")
        .arg("-m")
        .arg(&agent)
        .arg(&customer)
        .arg(&out));
    out
}

/// POST a JSON body with an API key; the status and the JSON answer.
pub async fn post_json(s: &TestServer, key: &str, path: &str, body: Value) -> (u16, Value) {
    request_json(s, key, reqwest::Method::POST, path, body).await
}

/// Any method with a JSON body and an API key; the status and the JSON answer.
pub async fn request_json(
    s: &TestServer,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let r = s
        .http
        .request(method, s.url(path))
        .header("x-api-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Logs a SIP user in through the REST API; their session cookie (`cs_session=…`).
pub async fn sign_in(s: &TestServer, realm: &str, extension: &str, password: &str) -> String {
    let r = s
        .http
        .post(s.url("/api/v1/agent/login"))
        .json(&serde_json::json!({"domain": realm, "extension": extension, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "login of {extension}@{realm}");
    r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// How a test request authenticates: an API key, or a signed-in user's session cookie.
pub enum Cred<'a> {
    Key(&'a str),
    Cookie(&'a str),
}

/// Any request as `cred`, with an optional JSON body; the status and the JSON answer.
pub async fn call(
    s: &TestServer,
    cred: &Cred<'_>,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = s.http.request(method, s.url(path));
    req = match cred {
        Cred::Key(k) => req.header("x-api-key", *k),
        Cred::Cookie(c) => req.header(reqwest::header::COOKIE, *c),
    };
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Uploads the generated two-voice stereo call (agent left) with `transcript` and the extra
/// form `fields`, waits until it is processed and checks it completed; its id.
pub async fn processed_upload(
    s: &TestServer,
    key: &str,
    fields: &[(&str, &str)],
    transcript: &str,
) -> String {
    let wav = std::fs::read(stereo_call(s.dir.path())).unwrap();
    let mut all = vec![("channel_layout", "stereo_agent_left")];
    all.extend_from_slice(fields);
    let (st, created) = s.upload(key, "call.wav", wav, &all, Some(transcript)).await;
    assert_eq!(st, 202, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let done = s.wait_done(key, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    id
}

/// A signed-in agent's session cookie (`cs_session=…`): gives the organization the SIP
/// domain `realm` when it has none, creates the user, logs in through the REST API.
pub async fn agent_session(s: &TestServer, org: &str, realm: &str, extension: &str) -> String {
    use callscope_api::sip::{domains, users};
    if domains::realm_of_org(s.pool(), org)
        .await
        .ok()
        .flatten()
        .is_none()
    {
        domains::set_realm(s.pool(), org, realm).await.unwrap();
    }
    users::create_user(
        s.pool(),
        org,
        &users::NewUser {
            name: extension,
            extension,
            password: "correct horse battery",
            role: users::Role::Agent,
        },
    )
    .await
    .unwrap();
    sign_in(s, realm, extension, "correct horse battery").await
}

pub const CALL_VTT: &str = "WEBVTT\n\n00:00.500 --> 00:03.000\n<v Agent>Hello, thank you for calling. How can I help?\n\n00:04.000 --> 00:06.500\n<v Customer>Hi, I have a question about my bill.\n";
