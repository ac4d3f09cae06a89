//! `kill -9` during processing loses nothing: the real `callscope` binary is killed while a
//! call is being transcribed, started again on the same data directory, and the job runs to
//! completion with exactly the segments a clean run gives (no duplicates).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_callscope");

fn cmd(data: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("CALLSCOPE_DATA_DIR", data)
        .env("CALLSCOPE_HTTP_ADDR", "127.0.0.1:0")
        .env("CALLSCOPE_WORKERS", "1")
        .env("CALLSCOPE_JOB_LEASE_SECONDS", "2")
        .env("CALLSCOPE_JOB_POLL_MS", "100")
        .env("CALLSCOPE_MAX_UPLOAD_BYTES", "200000000")
        .env_remove("CALLSCOPE_ASR_MODEL_PATH")
        .env_remove("CALLSCOPE_CONFIG");
    c
}

fn output(c: &mut Command) -> String {
    let out = c.output().expect("run callscope");
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn sh(c: &mut Command) {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Start `callscope serve`; returns the child and its base URL (read from its stderr).
fn serve(data: &Path) -> (Child, String) {
    let mut child = cmd(data)
        .arg("serve")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn callscope serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("listening on ").nth(1) {
                let _ = tx.send(addr.trim().to_string());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("server did not report its address");
    (child, url)
}

/// A long stereo call as MP3 (so decoding takes a while), made from espeak-ng speech.
fn long_call(dir: &Path) -> std::path::PathBuf {
    let a = dir.join("a.wav");
    let b = dir.join("b.wav");
    sh(Command::new("espeak-ng")
        .args(["-w"])
        .arg(&a)
        .arg("Thank you for calling, how can I help you today?"));
    sh(Command::new("espeak-ng")
        .args(["-v", "en-gb", "-w"])
        .arg(&b)
        .arg("I would like to change my address please."));
    let turn = dir.join("turn.wav");
    // Agent talks, pause, customer talks, pause: one 8 s turn pair in stereo.
    let left = dir.join("l.wav");
    let right = dir.join("r.wav");
    sh(Command::new("sox")
        .arg(&a)
        .args(["-r", "16000", "-c", "1"])
        .arg(&left)
        .args(["pad", "0.3", "30", "trim", "0", "8"]));
    sh(Command::new("sox")
        .arg(&b)
        .args(["-r", "16000", "-c", "1"])
        .arg(&right)
        .args(["pad", "4.3", "30", "trim", "0", "8"]));
    sh(Command::new("sox")
        .arg("-M")
        .arg(&left)
        .arg(&right)
        .arg(&turn));
    let long = dir.join("long.wav");
    sh(Command::new("sox")
        .arg(&turn)
        .arg(&long)
        .args(["repeat", "59"])); // 8 minutes
    let mp3 = dir.join("long.mp3");
    sh(Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(&long)
        .args(["-b:a", "48k"])
        .arg(&mp3));
    mp3
}

async fn call_json(http: &reqwest::Client, base: &str, key: &str, id: &str) -> Value {
    http.get(format!("{base}/api/v1/calls/{id}"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn kill_9_during_processing_then_restart_completes_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mp3 = long_call(dir.path());

    // Reference: the same pipeline offline.
    let reference: Value =
        serde_json::from_str(&output(cmd(&data).arg("transcribe").arg(&mp3).args([
            "--stereo-roles",
            "agent,customer",
            "--format",
            "json",
        ])))
        .unwrap();
    let expected = reference["segments"].as_array().unwrap().len();
    assert!(
        expected >= 100,
        "expected two utterances per turn, got {expected}"
    );

    sh(cmd(&data).arg("migrate"));
    let org = output(cmd(&data).args(["org", "create", "Acme"]));
    let key = output(cmd(&data).args(["apikey", "create", "--org", &org]));
    assert!(key.starts_with("cs_"));

    let (mut first, base) = serve(&data);
    let http = reqwest::Client::new();
    let form = reqwest::multipart::Form::new()
        .text("channel_layout", "stereo_agent_left")
        .text("external_call_id", "crash-1")
        .part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(&mp3).unwrap()).file_name("long.mp3"),
        );
    let r = http
        .post(format!("{base}/api/v1/recordings"))
        .header("x-api-key", &key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Wait until the worker is inside the pipeline, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = call_json(&http, &base, &key, &id).await;
        if c["status"] == "transcribing" {
            break;
        }
        assert_eq!(
            c["status"], "received",
            "finished before it could be killed: {c}"
        );
        assert!(Instant::now() < deadline, "never started processing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();

    // A partial upload a killed process would leave behind.
    let leftover = data.join("recordings/.incoming/upload-partial.wav");
    std::fs::write(&leftover, b"RIFF....").unwrap();

    // Restart on the same data; the expired lease hands the job to the new process.
    let (mut second, base) = serve(&data);
    assert!(!leftover.exists(), "partial file not swept at start-up");
    let deadline = Instant::now() + Duration::from_secs(180);
    let call = loop {
        let c = call_json(&http, &base, &key, &id).await;
        let st = c["status"].as_str().unwrap_or_default().to_string();
        if !["received", "transcribing", "analyzing"].contains(&st.as_str()) {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "job never completed after restart: {c}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(call["status"], "transcription_unavailable", "{call}");
    let segs = call["segments"].as_array().unwrap();
    assert_eq!(
        segs.len(),
        expected,
        "segments after restart differ from a clean run"
    );
    let mut keys: Vec<(i64, i64)> = segs
        .iter()
        .map(|s| {
            (
                s["channel"].as_i64().unwrap(),
                s["start_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), segs.len(), "duplicate segments");

    // Posting it again is still idempotent after the crash.
    let form = reqwest::multipart::Form::new()
        .text("external_call_id", "crash-1")
        .part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(&mp3).unwrap()).file_name("long.mp3"),
        );
    let r = http
        .post(format!("{base}/api/v1/recordings"))
        .header("x-api-key", &key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // SIGTERM: a graceful stop, exit status 0.
    let status = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(st) = second.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            second.kill().unwrap();
            panic!("callscope did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit:?}");
}
