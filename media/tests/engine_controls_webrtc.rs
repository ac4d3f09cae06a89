//! The live call controls on WebRTC legs, with aiortc (an independent WebRTC stack) as the
//! browser: a browser takes over a side whose PCMU leg was released (ring group answered in
//! the browser), mute of the browser silences it towards the phone and in the recording, and
//! ringback generated into a browser leg (Opus over DTLS-SRTP) has the 1 s on / 4 s off
//! cadence at 425 Hz in what the browser really heard.

mod browser;
mod phones;

use std::time::{Duration, Instant};

use browser::{AiortcPeer, strip_candidates};
use callscope_media::codec::{CodecKind, CodecSpec};
use callscope_media::engine::{LegSide, MediaEngine, MediaEvent, RecordingSpec, Tone, WebRtcState};
use callscope_testkit::audio_compare::{
    Mono, amplitude_at, lag_stability, read_wav_channels, read_wav_mono, speech_wav,
};
use phones::*;
use tokio::sync::mpsc;

/// Two Python WebRTC stacks at once on this shared 2-core machine stall each other.
static ONE_BROWSER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn rms_i16(pcm: &[i16]) -> f64 {
    (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len().max(1) as f64).sqrt()
}

fn rms_f32(pcm: &[f32]) -> f64 {
    (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len().max(1) as f64).sqrt()
}

/// Waits (bounded) for an event matching `want`.
async fn wait_for(
    events: &mut mpsc::Receiver<MediaEvent>,
    within: Duration,
    mut want: impl FnMut(&MediaEvent) -> bool,
    seen: &mut Vec<MediaEvent>,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    for _ in 0..10_000 {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ev)) => {
                let hit = want(&ev);
                seen.push(ev);
                if hit {
                    return true;
                }
            }
            _ => return false,
        }
    }
    false
}

/// Connects a browser on `side` of `call`: answer, trickled candidates, Connected.
async fn connect_browser(
    engine: &MediaEngine,
    events: &mut mpsc::Receiver<MediaEvent>,
    call: &str,
    side: LegSide,
    browser: &mut AiortcPeer,
    seen: &mut Vec<MediaEvent>,
) {
    let (offer, candidates) = strip_candidates(&browser.offer);
    let answer = engine
        .open_webrtc_leg(call, side, &offer)
        .await
        .expect("answer");
    for c in &candidates {
        engine
            .add_remote_candidate(call, side, c)
            .expect("candidate");
    }
    browser.answer(&answer).await;
    let connected = wait_for(
        events,
        Duration::from_secs(10),
        |e| {
            matches!(
                e,
                MediaEvent::WebRtc {
                    state: WebRtcState::Connected,
                    ..
                }
            )
        },
        seen,
    )
    .await;
    assert!(
        connected,
        "no WebRTC connection; aiortc {:?}",
        browser.states
    );
}

/// What the phone received, with arrival times since `t0`.
struct Heard {
    at: Duration,
    pkt: Received,
}

/// The phone sends `pcm` (8 kHz PCMU) for `frames` frames and collects until `until`.
async fn run_phone(
    mut phone: Phone,
    pcm: Vec<i16>,
    frames: usize,
    t0: Instant,
    until: Duration,
) -> Vec<Heard> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut sent = 0usize;
    let deadline = tokio::time::Instant::from_std(t0 + until);
    for _ in 0..100_000 {
        tokio::select! {
            _ = tick.tick(), if sent < frames => {
                let chunk = pcm.get(sent * 160..(sent + 1) * 160).map(ulaw).unwrap_or_else(|| ulaw(&[0; 160]));
                phone.send_frame(&chunk).await;
                sent += 1;
            }
            r = phone.sock.recv_from(&mut buf) => {
                if let Ok((n, from)) = r
                    && let Ok(p) = callscope_media::rtp::RtpPacket::parse(&buf[..n])
                    && !(192..=223).contains(&buf[1])
                {
                    got.push(Heard {
                        at: t0.elapsed(),
                        pkt: Received {
                            from,
                            pt: p.payload_type,
                            marker: p.marker,
                            seq: p.sequence,
                            ts: p.timestamp,
                            ssrc: p.ssrc,
                            payload: p.payload.to_vec(),
                        },
                    });
                }
            }
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_takes_over_a_released_pcmu_leg_and_its_mute_is_silence_at_the_phone() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let agent_wav = speech_wav(
        &dir.path().join("agent.wav"),
        "en-us",
        "Thank you for holding, this is Dana from billing. I can see your account here. \
         Let me check the last invoice for you.",
        48000,
        8.0,
    )
    .unwrap();
    let customer_wav = speech_wav(
        &dir.path().join("customer.wav"),
        "en-gb+f3",
        "Hello, I was charged twice for the same order last month and would like a refund \
         for the second payment, please.",
        8000,
        10.0,
    )
    .unwrap();
    let customer = read_wav_mono(&customer_wav).unwrap();
    let customer_pcm: Vec<i16> = customer
        .samples
        .iter()
        .map(|s| (s * 32767.0).round() as i16)
        .collect();

    // The browser is ready to offer before the ring group is answered in it.
    let browser_rec = dir.path().join("browser_heard.wav");
    let mut browser = AiortcPeer::start(&agent_wav, &browser_rec, 6.0, "").await;

    let (engine, mut events) = engine();
    let call = "takeover";
    let (pa, pb) = two_legs(&engine, call).await;
    let alice = Phone::new(pa, 0xA, 0).await;
    let mut desk = Phone::new(pb, 0xD, 0).await;
    engine
        .configure_leg(
            call,
            LegSide::A,
            params(Some(alice.addr()), CodecSpec::pcmu()),
        )
        .unwrap();
    engine
        .configure_leg(
            call,
            LegSide::B,
            params(Some(desk.addr()), CodecSpec::pcmu()),
        )
        .unwrap();
    let rec_path = dir.path().join("call.wav");
    engine
        .start_recording(
            call,
            RecordingSpec {
                final_path: rec_path.clone(),
                agent_side: LegSide::B,
            },
        )
        .unwrap();
    let t0 = Instant::now();
    let frames = 450; // 9 s of the customer
    let phone = tokio::spawn(run_phone(
        alice,
        customer_pcm,
        frames,
        t0,
        Duration::from_secs(10),
    ));

    // The desk phone (the ring group's SIP member) speaks 1 kHz for 1 s, then its leg is
    // released and the browser takes side B with Opus.
    let desk_tone = tone(1000.0, 8000.0, 160 * 50);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..50 {
        tick.tick().await;
        desk.send_frame(&ulaw(&desk_tone[i * 160..(i + 1) * 160]))
            .await;
    }
    engine.release_leg(call, LegSide::B).await.unwrap();
    let released_at = t0.elapsed();
    // Nobody on side B for a moment (the browser's answer is on its way).
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut seen = Vec::new();
    connect_browser(
        &engine,
        &mut events,
        call,
        LegSide::B,
        &mut browser,
        &mut seen,
    )
    .await;
    let connected_at = t0.elapsed();
    eprintln!("released at {released_at:?}, browser connected at {connected_at:?}");

    // 2 s of the agent, then 1.5 s muted, then unmuted again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    engine.set_muted(call, LegSide::B, true).unwrap();
    let muted_at = t0.elapsed();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    engine.set_muted(call, LegSide::B, false).unwrap();
    let unmuted_at = t0.elapsed();

    let heard = phone.await.unwrap();
    let states = browser.finish(Duration::from_secs(15)).await;
    assert!(states.iter().any(|s| s == "connected"), "{states:?}");
    let report = engine.close_call(call).await.unwrap();
    while let Ok(ev) = events.try_recv() {
        seen.push(ev);
    }

    // The phone's stream never broke: desk phone, silence, browser, silence, browser.
    let pkts: Vec<Received> = heard.iter().map(|h| h.pkt.clone()).collect();
    for (i, w) in pkts.windows(2).enumerate() {
        assert_eq!(w[1].ssrc, w[0].ssrc, "SSRC changed at {i}");
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "sequence gap at {i}");
        assert!(
            (w[1].ts.wrapping_sub(w[0].ts) as i32) > 0,
            "timestamp at {i}"
        );
    }
    let margin = Duration::from_millis(150);
    let during = |from: Duration, to: Duration| -> Vec<i16> {
        heard
            .iter()
            .filter(|h| h.at > from + margin && h.at + margin < to)
            .flat_map(|h| decode_ulaw(&h.pkt.payload))
            .collect()
    };
    let desk_part = during(Duration::ZERO, released_at);
    let gap = during(released_at, connected_at);
    let agent_part = during(connected_at + Duration::from_millis(300), muted_at);
    let muted_part = during(muted_at, unmuted_at);
    eprintln!(
        "phone heard: desk {} samples, gap {}, agent {} (rms {:.0}), muted {} (rms {:.1})",
        desk_part.len(),
        gap.len(),
        agent_part.len(),
        rms_i16(&agent_part),
        muted_part.len(),
        rms_i16(&muted_part)
    );
    let desk_f: Vec<f32> = desk_part.iter().map(|&s| f32::from(s)).collect();
    assert!(amplitude_at(&desk_f, 8000.0, 1000.0) > 3000.0);
    assert!(
        gap.len() >= 2400,
        "the stream went on while side B was empty"
    );
    assert!(gap.iter().all(|s| s.abs() <= 8), "gap is digital silence");
    assert!(
        rms_i16(&agent_part) > 500.0,
        "the browser's speech reaches the phone"
    );
    assert!(muted_part.len() >= 8000, "the stream went on while muted");
    assert!(
        muted_part.iter().all(|s| s.abs() <= 8),
        "muted is digital silence"
    );

    // The browser heard the customer (PCMU → Opus over DTLS-SRTP).
    let browser_heard = read_wav_channels(&browser_rec).unwrap();
    let reference = customer.slice_s(connected_at.as_secs_f64() - 0.5, 9.0);
    let windows = lag_stability(&reference, &browser_heard[0], 1.0, 3.0, -45.0).unwrap_or_default();
    let speech: Vec<_> = windows.iter().filter_map(|w| w.best).collect();
    let good = speech.iter().filter(|m| m.xcorr >= 0.8).count();
    eprintln!(
        "browser heard the customer: {good}/{} windows ≥ 0.8",
        speech.len()
    );
    assert!(speech.len() >= 3 && good * 2 >= speech.len());

    // The released desk leg kept its figures; the report's leg B is the browser.
    let released: Vec<&MediaEvent> = seen
        .iter()
        .filter(|e| matches!(e, MediaEvent::LegReleased { .. }))
        .collect();
    assert_eq!(released.len(), 1);
    let MediaEvent::LegReleased { side, quality, .. } = released[0] else {
        unreachable!()
    };
    assert_eq!(*side, LegSide::B);
    assert_eq!(quality.codec, Some(CodecKind::Pcmu));
    assert!(quality.packets_received >= 45, "{quality:?}");
    let b = report.b.unwrap();
    assert_eq!(b.codec, Some(CodecKind::Opus));
    assert_eq!(b.webrtc, Some(WebRtcState::Connected));
    assert_eq!(report.mutes.len(), 1);
    assert!(seen.iter().any(|e| matches!(
        e,
        MediaEvent::Muted {
            side: LegSide::B,
            muted: true,
            ..
        }
    )));

    // One recording: left (side B) holds the desk tone, silence, the agent's voice with a
    // silent mute; right holds the customer throughout.
    let rec = report.recording.unwrap();
    let ch = read_wav_channels(&rec.path).unwrap();
    assert_eq!(ch.len(), 2);
    let left = &ch[0];
    let rate = f64::from(left.rate);
    let part = |m: &Mono, from: Duration, to: Duration| -> Vec<f32> {
        m.slice_s(
            (from + margin).as_secs_f64(),
            to.saturating_sub(margin).as_secs_f64(),
        )
        .samples
    };
    let rec_desk = part(left, Duration::ZERO, released_at);
    let rec_gap = part(left, released_at, connected_at);
    let rec_agent = part(left, connected_at + Duration::from_millis(300), muted_at);
    let rec_muted = part(left, muted_at, unmuted_at);
    let rec_customer = part(&ch[1], Duration::from_millis(500), Duration::from_secs(8));
    eprintln!(
        "recording left: desk 1 kHz {:.3}, gap rms {:.5}, agent rms {:.4}, muted rms {:.5}; right rms {:.4}",
        amplitude_at(&rec_desk, rate, 1000.0),
        rms_f32(&rec_gap),
        rms_f32(&rec_agent),
        rms_f32(&rec_muted),
        rms_f32(&rec_customer)
    );
    assert!(amplitude_at(&rec_desk, rate, 1000.0) > 0.1);
    assert!(rec_gap.len() as f64 > 0.3 * rate && rms_f32(&rec_gap) < 0.001);
    assert!(rms_f32(&rec_agent) > 0.01);
    assert!(rec_muted.len() as f64 > rate && rms_f32(&rec_muted) < 0.001);
    assert!(rms_f32(&rec_customer) > 0.01);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ringback_generated_into_a_browser_leg_is_heard_with_its_cadence() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // The agent's microphone: silence (nobody talks while it rings).
    let quiet = dir.path().join("quiet.wav");
    let made = std::process::Command::new("sox")
        .args(["-n", "-r", "48000", "-c", "1", "-b", "16"])
        .arg(&quiet)
        .args(["trim", "0", "8"])
        .status()
        .expect("sox is installed");
    assert!(made.success());
    let heard_path = dir.path().join("heard.wav");
    let mut browser = AiortcPeer::start(&quiet, &heard_path, 3.5, "").await;
    let (engine, mut events) = engine();
    let call = "c2c";
    // Click-to-call: the agent's browser leg first, the customer's leg allocated and ringing.
    let mut seen = Vec::new();
    connect_browser(
        &engine,
        &mut events,
        call,
        LegSide::B,
        &mut browser,
        &mut seen,
    )
    .await;
    engine.allocate_leg(call, LegSide::A).await.unwrap();
    engine
        .play_tone(call, LegSide::B, Some(Tone::Ringback))
        .unwrap();
    let states = browser.finish(Duration::from_secs(15)).await;
    assert!(states.iter().any(|s| s == "connected"), "{states:?}");
    let report = engine.close_call(call).await.unwrap();
    assert!(report.b.unwrap().packets_sent >= 100);

    let heard = &read_wav_channels(&heard_path).unwrap()[0];
    let rate = f64::from(heard.rate);
    let block = heard.rate as usize / 50;
    let loud: Vec<bool> = heard
        .samples
        .chunks(block)
        .map(|b| rms_f32(b) > 0.02)
        .collect();
    let onset = loud
        .iter()
        .position(|&l| l)
        .expect("the browser heard the tone");
    let on_len = loud[onset..].iter().take_while(|&&l| l).count();
    let rest = &loud[onset + on_len..];
    eprintln!(
        "browser heard {:.2} s: tone from block {onset} for {on_len} blocks, then {} quiet of {}",
        heard.duration_s(),
        rest.iter().filter(|&&l| !l).count(),
        rest.len()
    );
    // 1 s on (Opus and aiortc's jitter buffer may smear an edge by a frame or two)…
    assert!((46..=54).contains(&on_len), "{on_len} blocks on");
    // …then off for the rest of the recording (4 s off; the recording is shorter).
    assert!(rest.len() >= 50, "too little after the tone to see it stop");
    assert!(rest.iter().all(|&l| !l), "tone came back within 4 s");
    let on: Vec<f32> = heard.samples[(onset + 5) * block..(onset + 45) * block].to_vec();
    let a425 = amplitude_at(&on, rate, 425.0);
    let a1k = amplitude_at(&on, rate, 1000.0);
    eprintln!("tone amplitude at 425 Hz {a425:.3}, at 1 kHz {a1k:.4}");
    assert!(a425 > 0.1 && a1k < 0.01);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_from_one_browser_agent_to_another_keeps_one_stream_and_one_recording() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let first_wav = speech_wav(
        &dir.path().join("first.wav"),
        "en-us",
        "Let me transfer you to my colleague in the returns team, one moment please.",
        48000,
        6.0,
    )
    .unwrap();
    let second_wav = speech_wav(
        &dir.path().join("second.wav"),
        "en-gb",
        "Hello, returns team here, I have your order in front of me, how can I help?",
        48000,
        6.0,
    )
    .unwrap();
    let mut first =
        AiortcPeer::start(&first_wav, &dir.path().join("first_heard.wav"), 6.0, "").await;
    let mut second =
        AiortcPeer::start(&second_wav, &dir.path().join("second_heard.wav"), 3.0, "").await;

    let (engine, mut events) = engine();
    let call = "transfer";
    let pa = engine.allocate_leg(call, LegSide::A).await.unwrap();
    let alice = Phone::new(pa, 0xA, 0).await;
    engine
        .configure_leg(
            call,
            LegSide::A,
            params(Some(alice.addr()), CodecSpec::pcmu()),
        )
        .unwrap();
    let mut seen = Vec::new();
    connect_browser(
        &engine,
        &mut events,
        call,
        LegSide::B,
        &mut first,
        &mut seen,
    )
    .await;
    let rec_path = dir.path().join("call.wav");
    engine
        .start_recording(
            call,
            RecordingSpec {
                final_path: rec_path.clone(),
                agent_side: LegSide::B,
            },
        )
        .unwrap();
    let ports_with_two_legs = engine.ports_in_use();
    let t0 = Instant::now();
    // The customer is quiet (a hum far below speech) so what the phone hears is the agents.
    let hum = tone(150.0, 200.0, 160 * 400);
    let phone = tokio::spawn(run_phone(alice, hum, 350, t0, Duration::from_secs(7)));

    tokio::time::sleep(Duration::from_millis(2500)).await;
    engine.release_leg(call, LegSide::B).await.unwrap();
    let released_at = t0.elapsed();
    assert_eq!(engine.ports_in_use(), ports_with_two_legs - 2);
    tokio::time::sleep(Duration::from_millis(800)).await;
    connect_browser(
        &engine,
        &mut events,
        call,
        LegSide::B,
        &mut second,
        &mut seen,
    )
    .await;
    let second_at = t0.elapsed();
    assert_eq!(engine.ports_in_use(), ports_with_two_legs);

    let heard = phone.await.unwrap();
    let first_states = first.finish(Duration::from_secs(15)).await;
    let second_states = second.finish(Duration::from_secs(15)).await;
    eprintln!("first browser {first_states:?}, second {second_states:?}");
    assert!(second_states.iter().any(|s| s == "connected"));
    let report = engine.close_call(call).await.unwrap();
    while let Ok(ev) = events.try_recv() {
        seen.push(ev);
    }

    let pkts: Vec<Received> = heard.iter().map(|h| h.pkt.clone()).collect();
    for (i, w) in pkts.windows(2).enumerate() {
        assert_eq!(w[1].ssrc, w[0].ssrc, "SSRC changed at {i}");
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "sequence gap at {i}");
    }
    let margin = Duration::from_millis(150);
    let during = |from: Duration, to: Duration| -> Vec<i16> {
        heard
            .iter()
            .filter(|h| h.at > from + margin && h.at + margin < to)
            .flat_map(|h| decode_ulaw(&h.pkt.payload))
            .collect()
    };
    let agent1 = during(Duration::from_millis(300), released_at);
    let gap = during(released_at, second_at);
    let agent2 = during(
        second_at + Duration::from_millis(300),
        Duration::from_secs(6),
    );
    eprintln!(
        "phone heard: first agent rms {:.0}, gap {} samples, second agent rms {:.0}",
        rms_i16(&agent1),
        gap.len(),
        rms_i16(&agent2)
    );
    assert!(rms_i16(&agent1) > 500.0);
    assert!(gap.len() >= 4000 && gap.iter().all(|s| s.abs() <= 8));
    assert!(rms_i16(&agent2) > 500.0);

    let released: Vec<&MediaEvent> = seen
        .iter()
        .filter(|e| matches!(e, MediaEvent::LegReleased { .. }))
        .collect();
    assert_eq!(released.len(), 1);
    let MediaEvent::LegReleased { quality, .. } = released[0] else {
        unreachable!()
    };
    assert_eq!(quality.webrtc, Some(WebRtcState::Connected));
    assert!(quality.packets_received >= 100, "{quality:?}");
    let b = report.b.unwrap();
    assert_eq!(b.webrtc, Some(WebRtcState::Connected));
    assert!(b.packets_received >= 80, "{b:?}");

    let ch = read_wav_channels(&report.recording.unwrap().path).unwrap();
    let left = &ch[0];
    let part = |from: Duration, to: Duration| -> Vec<f32> {
        left.slice_s(
            (from + margin).as_secs_f64(),
            to.saturating_sub(margin).as_secs_f64(),
        )
        .samples
    };
    let r1 = rms_f32(&part(Duration::from_millis(300), released_at));
    let rg = part(released_at, second_at);
    let r2 = rms_f32(&part(
        second_at + Duration::from_millis(300),
        Duration::from_secs(6),
    ));
    eprintln!(
        "recording left: first {r1:.4}, gap {:.5} over {} samples, second {r2:.4}",
        rms_f32(&rg),
        rg.len()
    );
    assert!(r1 > 0.01 && r2 > 0.01);
    assert!(rg.len() as f64 > 0.5 * f64::from(left.rate) && rms_f32(&rg) < 0.001);
}
