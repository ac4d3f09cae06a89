//! Recording and taps through the engine with real UDP phones: the two-channel WAV holds
//! exactly what each phone sent (G.711 decode is exact) on the right side, both channels as
//! long as the call even with 5 % of packets lost on the way, pauses written as silence,
//! a `.part` file that `repair` makes whole after the process is killed, and taps at 16 kHz
//! with a stalled consumer costing drops, never RTP.

mod phones;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use callscope_media::codec::{CodecSpec, encoder_for};
use callscope_media::engine::{LegSide, MediaEngine, MediaEvent, RecordingSpec};
use callscope_media::recorder::{self, Channel};
use phones::*;

const IDLE: Duration = Duration::from_millis(300);
const MAX: Duration = Duration::from_secs(15);

struct Call {
    alice: Phone,
    bob: Phone,
}

async fn call(engine: &MediaEngine, id: &str) -> Call {
    let (alice, bob) = bridged_phones(
        engine,
        id,
        (0xA1, CodecSpec::pcmu()),
        (0xB2, CodecSpec::pcmu()),
    )
    .await;
    Call { alice, bob }
}

/// A bridged call (as [`call`]) recorded to `<dir>/<id>.wav`.
async fn recorded_call(engine: &MediaEngine, id: &str, dir: &Path) -> (Call, PathBuf) {
    let c = call(engine, id).await;
    let path = dir.join(format!("{id}.wav"));
    engine.start_recording(id, spec(&path)).unwrap();
    (c, path)
}

fn spec(path: &Path) -> RecordingSpec {
    RecordingSpec {
        final_path: path.to_path_buf(),
        // The callee is the agent: Bob left, Alice right.
        agent_side: LegSide::B,
    }
}

fn read_stereo(path: &Path) -> (u32, Vec<i16>, Vec<i16>) {
    let mut reader = hound::WavReader::open(path).unwrap();
    let spec = reader.spec();
    assert_eq!(spec.channels, 2);
    assert_eq!(spec.bits_per_sample, 16);
    let s: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let left = s.chunks(2).map(|f| f[0]).collect();
    let right = s.chunks(2).map(|f| f[1]).collect();
    (spec.sample_rate, left, right)
}

/// A tone whose frequency starts at `f0` and moves by `rate` Hz per second.
fn chirp(f0: f64, rate: f64, amp: f64, first: usize, n: usize) -> Vec<i16> {
    (first..first + n)
        .map(|i| {
            let t = i as f64 / 8000.0;
            let phase = 2.0 * std::f64::consts::PI * (f0 * t + rate * t * t / 2.0);
            (amp * phase.sin()).round() as i16
        })
        .collect()
}

fn find(hay: &[i16], needle: &[i16]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Sends `frames` 20 ms frames from both phones; `lost(i)` frames of Alice are dropped by
/// the "network". Returns the decoded audio each phone sent (zeros where lost).
async fn talk(
    c: &mut Call,
    from: usize,
    frames: usize,
    lost: impl Fn(usize) -> bool,
) -> (Vec<i16>, Vec<i16>) {
    // Chirps, so that no stretch of audio repeats and every position is unambiguous.
    let a_audio = chirp(300.0, 150.0, 8000.0, from * 160, 160 * frames);
    let b_audio = chirp(900.0, -100.0, 5000.0, from * 160, 160 * frames);
    let (mut want_a, mut want_b) = (Vec::new(), Vec::new());
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..frames {
        tick.tick().await;
        let fa = ulaw(&a_audio[i * 160..(i + 1) * 160]);
        let fb = ulaw(&b_audio[i * 160..(i + 1) * 160]);
        if lost(i) {
            c.alice.skip_frame(160);
            want_a.extend(std::iter::repeat_n(0i16, 160));
        } else {
            c.alice.send_frame(&fa).await;
            want_a.extend(decode_ulaw(&fa));
        }
        c.bob.send_frame(&fb).await;
        want_b.extend(decode_ulaw(&fb));
    }
    (want_a, want_b)
}

#[tokio::test]
async fn two_channel_recording_is_exact_and_as_long_as_the_call_under_loss() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("call.wav");
    let (engine, _events) = engine();
    let mut c = call(&engine, "rec").await;
    let started = Instant::now();
    engine.start_recording("rec", spec(&path)).unwrap();
    // 4 s; every 20th packet of Alice lost (5 %).
    let (want_a, want_b) = talk(&mut c, 0, 200, |i| i % 20 == 7).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let report = engine.close_call("rec").await.unwrap();
    let call_ms = started.elapsed().as_millis() as i64;

    let rec = report.recording.expect("finished recording");
    assert_eq!(rec.path, path);
    assert!(!recorder::writer::part_path_for(&path).exists(), "renamed");
    let (rate, left, right) = read_stereo(&path);
    assert_eq!(rate, 8000);
    assert_eq!(left.len(), right.len());
    let rec_ms = left.len() as i64 * 1000 / 8000;
    assert!(
        (rec_ms - call_ms).abs() <= 100,
        "recording {rec_ms} ms vs call {call_ms} ms"
    );
    // Bob (agent) left, Alice right, sample-exact, loss as silence in place (no drift).
    let off_b = find(&left, &want_b[..160]).expect("Bob's audio on the left");
    assert_same_pcm(&left[off_b..off_b + want_b.len()], &want_b);
    let off_a = find(&right, &want_a[..160]).expect("Alice's audio on the right");
    assert_same_pcm(&right[off_a..off_a + want_a.len()], &want_a);
    // Sent at the same moments, so they line up within a packet.
    assert!(
        off_a.abs_diff(off_b) <= 160,
        "channels offset {off_a} vs {off_b}"
    );

    let qa = report.a.unwrap();
    assert_eq!(qa.lost, 10);
    assert!((qa.loss_percent - 5.0).abs() < 0.1, "{}", qa.loss_percent);
    assert_eq!(report.agent_side, Some(LegSide::B));
    assert_eq!(report.recording_dropped_frames, 0);
    assert!(
        report.recording_loss.is_none(),
        "{:?}",
        report.recording_loss
    );
}

/// A packet that arrives after its place in the file was written (600 ms late; the playout
/// delay is 200 ms) is missing from the recording, and the report says so on its channel,
/// so a reviewer can tell a hole callscope could not fill from one the far end left.
#[tokio::test]
async fn audio_that_missed_its_place_is_reported_as_recording_loss() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _events) = engine();
    let (mut c, path) = recorded_call(&engine, "late", dir.path()).await;
    let frames = 100;
    let (held_frame, released_at) = (20, 50);
    let a_audio = chirp(300.0, 150.0, 8000.0, 0, 160 * frames);
    let b_audio = chirp(900.0, -100.0, 5000.0, 0, 160 * frames);
    let mut want_a = Vec::new();
    let mut held = None;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..frames {
        tick.tick().await;
        let fa = ulaw(&a_audio[i * 160..(i + 1) * 160]);
        if i == held_frame {
            held = Some(c.alice.packet(&fa, false, c.alice.pt));
            c.alice.skip_frame(160);
            want_a.extend(std::iter::repeat_n(0i16, 160));
        } else {
            c.alice.send_frame(&fa).await;
            want_a.extend(decode_ulaw(&fa));
        }
        if i == released_at {
            let late = held.take().expect("held packet");
            c.alice.sock.send_to(&late, c.alice.target).await.unwrap();
        }
        c.bob
            .send_frame(&ulaw(&b_audio[i * 160..(i + 1) * 160]))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let report = engine.close_call("late").await.unwrap();
    assert!(report.recording.is_some(), "{:?}", report.recording_error);

    // Alice is the customer (right channel); one 20 ms packet of 8 kHz audio missed its place.
    assert_eq!(report.recording_loss.late_ms, [0, 20]);
    assert_eq!(report.recording_loss.overrun_ms, [0, 0]);
    let (_rate, _left, right) = read_stereo(&path);
    let off_a = find(&right, &want_a[..160]).expect("Alice's audio on the right");
    assert_same_pcm(&right[off_a..off_a + want_a.len()], &want_a);
}

/// A call task that cannot run for longer than the recording's playout delay (an
/// overloaded machine) still records every packet that arrived meanwhile. The call
/// transcodes, so its RTP sockets are read only on the playout tick; when the task runs
/// again, the recording's release of audio up to "now − playout delay" must not come before
/// those queued packets are read, or their place is written as silence.
#[tokio::test]
async fn a_stalled_call_task_still_records_what_arrived_during_the_stall() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stalled.wav");
    // The call runs on this test's one-thread runtime, so blocking it stalls the call.
    let (engine, _events) = engine_with(|c| c.media_threads = 0);
    let (alice, _bob) = bridged_phones(
        &engine,
        "stall",
        (0xA1, CodecSpec::pcmu()),
        (0xB2, CodecSpec::pcma()),
    )
    .await;
    engine.start_recording("stall", spec(&path)).unwrap();
    let frames = 150;
    let audio = chirp(300.0, 150.0, 8000.0, 0, 160 * frames);
    let want: Vec<i16> = audio
        .chunks(160)
        .flat_map(|frame| decode_ulaw(&ulaw(frame)))
        .collect();
    // Alice speaks from her own thread, on time whatever this runtime does.
    let socket = alice.sock.into_std().unwrap();
    socket.set_nonblocking(false).unwrap();
    let (target, ssrc) = (alice.target, alice.ssrc);
    let sender = std::thread::spawn(move || {
        let start = Instant::now();
        for (i, frame) in audio.chunks(160).enumerate() {
            let due = start + Duration::from_millis(20 * i as u64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let payload = ulaw(frame);
            let packet = callscope_media::rtp::RtpBuilder {
                payload_type: 0,
                sequence: 1000 + i as u16,
                timestamp: 160 * i as u32,
                ssrc,
                payload: &payload,
                ..Default::default()
            }
            .to_vec()
            .unwrap();
            socket.send_to(&packet, target).unwrap();
        }
    });
    // Four stalls of 400 ms, twice the playout delay, with the call free to run between
    // them. After each, the call's timers and its queued packets are all due at once.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        std::thread::sleep(Duration::from_millis(400));
    }
    tokio::task::spawn_blocking(move || sender.join().unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let report = engine.close_call("stall").await.unwrap();
    assert!(report.recording.is_some(), "{:?}", report.recording_error);
    let (rate, _bob_left, alice_right) = read_stereo(&path);
    assert_eq!(rate, 8000);
    assert!(
        report.recording_loss.is_none(),
        "{:?}",
        report.recording_loss
    );
    let heard = alice_right.iter().filter(|&&s| s != 0).count();
    assert!(
        find(&alice_right, &want).is_some(),
        "Alice's 3 s are not in the recording in one piece ({heard} non-zero samples of {})",
        want.len()
    );
}

#[tokio::test]
async fn pause_and_resume_write_silence_and_keep_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _events) = engine();
    let (mut c, path) = recorded_call(&engine, "pause", dir.path()).await;
    assert!(
        engine.resume_recording("pause").is_ok(),
        "resume when not paused is a no-op"
    );
    let (a1, _) = talk(&mut c, 0, 50, |_| false).await;
    engine.pause_recording("pause").unwrap();
    let (a2, _) = talk(&mut c, 50, 50, |_| false).await;
    engine.resume_recording("pause").unwrap();
    let (a3, _) = talk(&mut c, 100, 50, |_| false).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let snap = engine.snapshot("pause").unwrap();
    assert!(snap.recording && !snap.recording_paused);
    let report = engine.close_call("pause").await.unwrap();
    assert_eq!(report.pauses.len(), 1);
    let p = report.pauses[0];
    let paused_ms = p.end_ms - p.start_ms;
    assert!((950..=1050).contains(&paused_ms), "paused {paused_ms} ms");
    assert!(
        (950..=1100).contains(&p.start_ms),
        "pause at {} ms",
        p.start_ms
    );

    let (_, left, right) = read_stereo(&path);
    // The paused second is silent on both channels; the audio before and after is exact.
    // (The pause starts the moment it is asked for. The timeline places packets by the
    // first one's arrival, which the engine's media thread may see a scheduling delay
    // late, while the pause reaches it at once: the last two packets before it may be cut.)
    let off = find(&right, &a1[..160]).unwrap();
    assert_same_pcm(&right[off..off + a1.len() - 320], &a1[..a1.len() - 320]);
    // (ms are rounded down: stay one ms inside.)
    let start = p.start_ms as usize * 8 + 8;
    let end = p.end_ms as usize * 8;
    assert!(right[start..end].iter().all(|&s| s == 0));
    assert!(left[start..end].iter().all(|&s| s == 0));
    // What Alice sent while paused is nowhere in the file; what she sent after is.
    assert!(find(&right, &a2[800..960]).is_none());
    let off3 = find(&right, &a3[160..320]).expect("audio after resume");
    assert_same_pcm(&right[off3..off3 + 160 * 48], &a3[160..160 * 49]);
}

#[tokio::test]
async fn taps_deliver_16khz_per_role_and_a_stalled_tap_only_counts_drops() {
    let (engine, mut events) = {
        let mut cfg = callscope_media::engine::EngineConfig::local(LOCALHOST);
        cfg.port_min = 42000;
        cfg.port_max = 47999;
        cfg.tap_capacity = 4;
        MediaEngine::new(cfg)
    };
    let mut c = call(&engine, "taps").await;
    let subscribed = Instant::now();
    let mut tap = engine.subscribe_taps("taps").unwrap();
    let _stalled = engine.subscribe_taps("taps").unwrap();
    // Drain the live tap concurrently, as the transcription side would.
    let reader = tokio::spawn(async move {
        let mut frames = Vec::new();
        for _ in 0..10_000 {
            match tokio::time::timeout(Duration::from_secs(2), tap.recv()).await {
                Ok(Some(f)) => frames.push(f),
                _ => break,
            }
        }
        frames
    });
    let (_, _) = talk(&mut c, 0, 150, |_| false).await;
    let (at_bob, _) = collect(&c.bob.sock, IDLE, MAX).await;
    assert_eq!(at_bob.len(), 150, "RTP unaffected by the stalled tap");
    let report = engine.close_call("taps").await.unwrap();
    let tapped_ms = subscribed.elapsed().as_millis() as usize;
    let frames = reader.await.unwrap();

    for role in [Channel::Agent, Channel::Customer] {
        let mine: Vec<_> = frames.iter().filter(|f| f.role == role).collect();
        assert!(!mine.is_empty());
        // Continuous positions: each frame starts where the previous ended (16 samples/ms).
        for w in mine.windows(2) {
            let end = w[0].start_ms * 16 + w[0].samples.len() as u64;
            assert!(
                (w[1].start_ms * 16).abs_diff(end) <= 16,
                "gap in {role:?} taps"
            );
        }
        let total: usize = mine.iter().map(|f| f.samples.len()).sum();
        // The taps follow the wall clock from subscription to close (silence included).
        let want = tapped_ms * 16;
        assert!(
            total.abs_diff(want) <= 16 * 100,
            "{role:?}: {total} samples for {tapped_ms} ms"
        );
        // A tone, not silence: the RMS of the last second is far from zero.
        let tail: Vec<i16> = mine
            .iter()
            .flat_map(|f| f.samples.iter().copied())
            .skip(total.saturating_sub(24_000))
            .take(16_000)
            .collect();
        let rms =
            (tail.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / tail.len() as f64).sqrt();
        assert!(rms > 1000.0, "{role:?} rms {rms}");
    }
    // The stalled tap: frames beyond its 4 slots dropped per role, counted, and announced.
    assert!(
        report.tap_drops[0] > 5 && report.tap_drops[1] > 5,
        "{:?}",
        report.tap_drops
    );
    let mut overflow = 0;
    while let Ok(ev) = events.try_recv() {
        if matches!(ev, MediaEvent::TapOverflow { .. }) {
            overflow += 1;
        }
    }
    assert!(overflow >= 2, "one event per role at least");
}

/// The child half of the kill test: runs a recorded call until killed.
#[tokio::test]
#[ignore = "run by kill_mid_call_leaves_a_repairable_part_file as a separate process"]
async fn child_recorded_call_until_killed() {
    let Ok(dir) = std::env::var("CALLSCOPE_KILL_TEST_DIR") else {
        return;
    };
    let path = PathBuf::from(dir).join("killed.wav");
    let (engine, _events) = engine();
    let mut c = call(&engine, "kill").await;
    engine.start_recording("kill", spec(&path)).unwrap();
    // At most 30 s: the parent kills us long before.
    let _ = talk(&mut c, 0, 1500, |_| false).await;
}

#[tokio::test]
async fn kill_mid_call_leaves_a_repairable_part_file() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args([
            "--exact",
            "child_recorded_call_until_killed",
            "--ignored",
            "--nocapture",
        ])
        .env("CALLSCOPE_KILL_TEST_DIR", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let part = dir.path().join("killed.wav.part");
    // Let it record ~3 s of call (after the .part appears), then SIGKILL by PID.
    let mut appeared = None;
    for _ in 0..200 {
        if part.exists() {
            appeared = Some(Instant::now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let appeared = appeared.expect(".part created");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let alive_ms = appeared.elapsed().as_millis() as u64;
    child.kill().unwrap();
    child.wait().unwrap();

    let repaired = recorder::repair(&part).unwrap();
    assert_eq!(repaired.channels, 2);
    assert_eq!(repaired.sample_rate, 8000);
    let got_ms = repaired.duration.as_millis() as u64;
    // Flushed every 500 ms (test config) behind a 200 ms playout delay and a 200 ms tick.
    assert!(
        got_ms + 1000 >= alive_ms && got_ms <= alive_ms + 100,
        "{got_ms} ms recovered of {alive_ms} ms"
    );
    let (rate, left, right) = read_stereo(&repaired.path);
    assert_eq!(rate, 8000);
    // Real audio on both sides, not a header over zeros.
    assert!(left.iter().filter(|&&s| s != 0).count() > 8000);
    assert!(right.iter().filter(|&&s| s != 0).count() > 8000);
}

/// A relayed Opus ⇄ Opus call (two browsers) losing every tenth packet of one side: the
/// recording decodes each leg on arrival, and must tell its decoder where packets are
/// missing, in order. Decoding the packet after a gap as if it followed straight on made
/// Opus mispredict its energies, louder than the source.
#[tokio::test]
async fn a_lossy_opus_leg_is_recorded_without_overshoot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opusloss.wav");
    let (engine, _events) = engine();
    let opus = CodecSpec::opus(111);
    let (mut alice, _bob) = bridged_phones(&engine, "opusloss", (0xA1, opus), (0xB2, opus)).await;
    engine.start_recording("opusloss", spec(&path)).unwrap();
    let frames = 100;
    let sent: Vec<i16> = (0..960 * frames)
        .map(|i| {
            let t = i as f64 / 48000.0;
            let phase = 2.0 * std::f64::consts::PI * (1500.0 * t - 150.0 * t * t);
            (6000.0 * phase.sin()).round() as i16
        })
        .collect();
    let mut encoder = encoder_for(&opus).unwrap();
    let mut payload = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for (i, frame) in sent.chunks_exact(960).enumerate() {
        tick.tick().await;
        encoder.encode(frame, &mut payload).unwrap();
        if i % 10 != 7 {
            let packet = alice.packet(&payload, false, opus.payload_type);
            alice.sock.send_to(&packet, alice.target).await.unwrap();
        }
        alice.skip_frame(960);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = engine.close_call("opusloss").await.unwrap();
    assert!(report.recording.is_some(), "{:?}", report.recording_error);
    assert_eq!(report.a.unwrap().packets_received, 90);

    // Alice is the customer: the right channel.
    let (_rate, _left, right) = read_stereo(&path);
    let loudest = right.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    let heard = right.iter().filter(|s| s.unsigned_abs() > 1000).count();
    eprintln!("recorded Opus with loss: peak {loudest}, {heard} samples above 1000");
    assert!(heard > right.len() / 4, "Alice's audio is on the right");
    // The packets carry in-band FEC (the encoder's default), so in order the decoder
    // rebuilds each lost frame from the packet after it: peak 6,690 here. Decoded as if
    // nothing were missing, the packet after each gap overshot to 13,752.
    assert!(loudest <= 9_000, "peak {loudest} for a 6000 peak source");
}
