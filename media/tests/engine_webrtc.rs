//! WebRTC legs against an independent WebRTC stack: aiortc (Python) is the browser, playing
//! espeak-ng speech as its microphone and recording what it hears; a plain RTP phone on the
//! other leg sends PCMU speech of another voice. Checks real audio both ways through
//! ICE-lite + DTLS-SRTP + Opus ⇄ PCMU transcoding, the two-channel recording, trickle ICE,
//! a mismatched DTLS fingerprint and garbage datagrams.

mod browser;
mod phones;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use browser::{AiortcOptions, AiortcPeer, strip_candidates};
use callscope_media::codec::CodecSpec;
use callscope_media::engine::{
    EngineConfig, EngineError, LegSide, MediaEngine, MediaEvent, RecordingSpec, WebRtcState,
};
use callscope_testkit::audio_compare::{
    Mono, best_lag, lag_stability, opus_ogg_repeated_within, read_wav_channels, read_wav_mono,
    speech_wav, sweep_wav, webrtc_bitrate_for,
};
use phones::*;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

const SECONDS: f64 = 6.0;

/// The aiortc tests take turns: two Python WebRTC stacks at once on this shared 2-core
/// machine make each other stall, which is not what these tests are about.
static ONE_BROWSER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How well a live (real-time) path carried `reference`: the whole-signal match at one lag,
/// and how many 1 s speech windows match ≥ 0.8 at their own lag. A live path may slip by a
/// frame or more when a peer is descheduled (the jitter buffer conceals, then plays on), which
/// lowers the one-lag figure though every stretch of audio arrived intact; the windows show
/// that. Recordings follow RTP timestamps and must match at one lag.
fn live_match(reference: &Mono, heard: &Mono) -> (f64, usize, usize) {
    let whole = best_lag(reference, heard, 3.0).map_or(0.0, |m| m.xcorr);
    let windows = lag_stability(reference, heard, 1.0, 3.0, -45.0).unwrap_or_default();
    let speech: Vec<_> = windows.iter().filter_map(|w| w.best).collect();
    let good = speech.iter().filter(|m| m.xcorr >= 0.8).count();
    (whole, good, speech.len())
}

fn assert_live(what: &str, (whole, good, total): (f64, usize, usize)) {
    eprintln!("{what}: whole-signal xcorr {whole:.3}, {good}/{total} speech windows ≥ 0.8");
    assert!(total >= 3, "{what}: too little speech to judge");
    assert!(
        whole >= 0.8 || good * 4 >= total * 3,
        "{what}: whole {whole:.3}, windows {good}/{total}"
    );
}

fn voices(dir: &Path) -> (Mono, std::path::PathBuf, Mono) {
    let browser_wav = speech_wav(
        &dir.join("agent.wav"),
        "en-us",
        "Thank you for calling. My name is Alice, how can I help you today?",
        48000,
        SECONDS + 2.0,
    )
    .expect("agent speech");
    let phone_wav = speech_wav(
        &dir.join("customer.wav"),
        "en-gb+f3",
        "Hello, I would like to change the delivery address of my order, please.",
        8000,
        SECONDS + 2.0,
    )
    .expect("customer speech");
    (
        read_wav_mono(&browser_wav).expect("read agent"),
        browser_wav,
        read_wav_mono(&phone_wav).expect("read customer"),
    )
}

fn pcm_of(m: &Mono) -> Vec<i16> {
    m.samples
        .iter()
        .map(|s| (s * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

fn mono_from_i16(rate: u32, pcm: &[i16]) -> Mono {
    Mono::new(rate, pcm.iter().map(|&s| f32::from(s) / 32768.0).collect())
}

/// Waits for the WebRTC leg's state event (bounded).
async fn wait_state(
    events: &mut mpsc::Receiver<MediaEvent>,
    want: WebRtcState,
    within: Duration,
) -> Option<Option<String>> {
    let deadline = tokio::time::Instant::now() + within;
    for _ in 0..1000 {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(MediaEvent::WebRtc { state, error, .. })) if state == want => {
                return Some(error);
            }
            Ok(Some(_)) => continue,
            _ => return None,
        }
    }
    None
}

/// Legs A and B of `call` answer the two peers' offers, in order; returns the answers.
async fn open_both_legs(engine: &MediaEngine, call: &str, offers: &[String]) -> Vec<String> {
    assert_eq!(offers.len(), 2);
    let mut answers = Vec::new();
    for (side, offer) in [LegSide::A, LegSide::B].into_iter().zip(offers) {
        answers.push(
            engine
                .open_webrtc_leg(call, side, offer)
                .await
                .expect("answer"),
        );
    }
    answers
}

/// Both WebRTC legs report Connected (bounded).
async fn wait_both_connected(events: &mut mpsc::Receiver<MediaEvent>) {
    for _ in 0..2 {
        assert!(
            wait_state(events, WebRtcState::Connected, Duration::from_secs(10))
                .await
                .is_some(),
            "a WebRTC leg did not connect"
        );
    }
}

/// The phone: sends `pcm` (8 kHz) as PCMU every 20 ms and collects what the engine sends it.
async fn run_phone(mut phone: Phone, pcm: Vec<i16>, frames: usize) -> (Vec<Received>, Phone) {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(SECONDS + 4.0);
    for _ in 0..100_000 {
        tokio::select! {
            _ = tick.tick(), if sent < frames => {
                let start = sent * 160;
                let chunk = pcm.get(start..start + 160).map(ulaw).unwrap_or_else(|| ulaw(&[0; 160]));
                phone.send_frame(&chunk).await;
                sent += 1;
            }
            r = phone.sock.recv_from(&mut buf) => {
                if let Ok((n, from)) = r
                    && let Ok(p) = callscope_media::rtp::RtpPacket::parse(&buf[..n])
                    && !(192..=223).contains(&buf[1])
                {
                    got.push(Received {
                        from,
                        pt: p.payload_type,
                        marker: p.marker,
                        seq: p.sequence,
                        ts: p.timestamp,
                        ssrc: p.ssrc,
                        payload: p.payload.to_vec(),
                    });
                }
            }
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    (got, phone)
}

/// The default: the browser is asked for wideband (`maxplaybackrate=16000` in the answer),
/// its Opus is decoded at 16 kHz and the call recorded at 16 kHz. aiortc's encoder ignores
/// the parameter and sends full band, as a browser that does not honour it would: both
/// directions and both channels must still be as good as at 48 kHz.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_opus_bridged_to_pcmu_phone_both_ways_and_recorded() {
    browser_to_pcmu_call(|_| {}, Some(16000), 16000).await;
}

/// `webrtc_audio_rate = 48000`: no limit announced, the call recorded at Opus' native 48 kHz.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_band_browser_opus_bridged_to_pcmu_phone_recorded_at_48_khz() {
    browser_to_pcmu_call(|c| c.webrtc_audio_rate = 48000, None, 48000).await;
}

/// `configure` adjusts the engine's defaults; `announced`: the `maxplaybackrate` the answer
/// must carry (None: none); `recording_rate`: the recording's.
async fn browser_to_pcmu_call(
    configure: impl FnOnce(&mut EngineConfig),
    announced: Option<u32>,
    recording_rate: u32,
) {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tmp");
    let (agent_src, agent_wav, customer_src) = voices(dir.path());
    let (engine, mut events) = engine_with(configure);
    let call = "webrtc-pcmu";

    // The browser offers; its candidates come by trickle ICE after the answer.
    let browser_rec = dir.path().join("browser_heard.wav");
    let mut browser = AiortcPeer::start(&agent_wav, &browser_rec, SECONDS, "").await;
    assert!(browser.offer.contains("opus/48000/2"), "{}", browser.offer);
    let (offer, candidates) = strip_candidates(&browser.offer);
    assert!(!candidates.is_empty(), "aiortc offered no candidates");
    let answer = engine
        .open_webrtc_leg(call, LegSide::A, &offer)
        .await
        .expect("answer");
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(answer.contains("a=setup:passive"), "{answer}");
    assert!(answer.contains("opus/48000/2"), "{answer}");
    let opus_pt = answer
        .lines()
        .find_map(|l| l.strip_prefix("a=rtpmap:")?.strip_suffix(" opus/48000/2"))
        .expect("Opus in the answer");
    let opus_fmtp = answer
        .lines()
        .find(|l| l.starts_with(&format!("a=fmtp:{opus_pt} ")))
        .unwrap_or_default();
    match announced {
        Some(hz) => assert!(
            opus_fmtp.ends_with(&format!(";maxplaybackrate={hz}")),
            "{answer}"
        ),
        None => assert!(!answer.contains("maxplaybackrate"), "{answer}"),
    }
    assert!(answer.contains("typ host"), "{answer}");
    assert!(answer.contains("127.0.0.1"), "{answer}");
    for c in &candidates {
        engine
            .add_remote_candidate(call, LegSide::A, c)
            .expect("trickled candidate");
    }
    engine
        .add_remote_candidate(call, LegSide::A, "")
        .expect("end of candidates");
    assert!(matches!(
        engine.add_remote_candidate(call, LegSide::A, "candidate:garbage"),
        Err(EngineError::WebRtc(_))
    ));

    let b_port = engine.allocate_leg(call, LegSide::B).await.expect("leg B");
    let phone = Phone::new(b_port, 0xB0B, 0).await;
    engine
        .configure_leg(
            call,
            LegSide::B,
            params(Some(phone.addr()), CodecSpec::pcmu()),
        )
        .expect("configure B");
    let rec_path = dir.path().join("call.wav");
    engine
        .start_recording(
            call,
            RecordingSpec {
                final_path: rec_path.clone(),
                agent_side: LegSide::A,
            },
        )
        .expect("record");

    browser.answer(&answer).await;
    assert!(
        wait_state(&mut events, WebRtcState::Connected, Duration::from_secs(10))
            .await
            .is_some(),
        "the WebRTC leg did not connect; aiortc states {:?}",
        browser.states
    );

    // Garbage at the WebRTC port from a stranger: counted, the call goes on.
    let webrtc_addr: SocketAddr = answer
        .lines()
        .find(|l| l.starts_with("a=candidate:"))
        .and_then(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(SocketAddr::new(
                f.get(4)?.parse().ok()?,
                f.get(5)?.parse().ok()?,
            ))
        })
        .expect("our candidate");
    let stranger = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut junk = 0x1234_5678u32;
    for i in 0..40u32 {
        let len = 20 + (i as usize * 7) % 180;
        let datagram: Vec<u8> = (0..len)
            .map(|_| {
                junk ^= junk << 13;
                junk ^= junk >> 17;
                junk ^= junk << 5;
                junk as u8
            })
            .collect();
        stranger
            .send_to(&datagram, webrtc_addr)
            .await
            .expect("junk");
    }

    let frames = (SECONDS * 50.0) as usize;
    let customer_pcm = pcm_of(&customer_src);
    // Compare against what was really sent: the phone sends `frames` frames; aiortc plays
    // its file from the start for about SECONDS (less its start-up).
    let customer_src = Mono::new(8000, customer_src.samples[..frames * 160].to_vec());
    let agent_len = ((SECONDS - 0.5) * f64::from(agent_src.rate)) as usize;
    let agent_src = Mono::new(agent_src.rate, agent_src.samples[..agent_len].to_vec());
    let (got, _phone) = run_phone(phone, customer_pcm, frames).await;
    let states = browser.finish(Duration::from_secs(15)).await;
    assert!(states.iter().any(|s| s == "connected"), "{states:?}");

    let snapshot = engine.snapshot(call).expect("snapshot");
    let report = engine.close_call(call).await.expect("report");
    let a = report.a.expect("leg A quality");
    let b = report.b.expect("leg B quality");
    eprintln!("webrtc leg: {a:?}\nphone leg: {b:?}\nsnapshot: {snapshot:?}");
    assert_eq!(a.webrtc, Some(WebRtcState::Connected));
    assert_eq!(a.codec, Some(callscope_media::codec::CodecKind::Opus));
    // aiortc's encoder ignores `maxplaybackrate`; whatever it sent is read from its packets.
    assert!(a.audio_rate_received.is_some(), "{a:?}");
    assert_eq!(
        b.audio_rate_received, None,
        "PCMU has no bandwidth to read: {b:?}"
    );
    // Every audio packet of the Opus leg is counted under the mode its first byte names
    // (this test sends no telephone-event); a PCMU leg has no modes.
    let modes = a.opus_modes_received.expect("Opus modes counted");
    assert_eq!(modes.total(), a.packets_received, "{a:?}");
    assert_eq!(b.opus_modes_received, None, "{b:?}");
    assert!(a.packets_received >= 200, "{a:?}");
    assert!(a.packets_sent >= 200, "{a:?}");
    assert!(a.malformed >= 40, "garbage not counted: {a:?}");
    assert!(b.packets_received >= 250 && b.packets_sent >= 200, "{b:?}");

    // The phone hears the browser's voice (Opus → 8 kHz → PCMU).
    let mut heard = Vec::new();
    for p in got.iter().filter(|p| p.pt == 0) {
        heard.extend(decode_ulaw(&p.payload));
    }
    let heard = mono_from_i16(8000, &heard);
    if let Some(keep) = std::env::var_os("WEBRTC_TEST_KEEP") {
        let keep = std::path::PathBuf::from(keep);
        let _ = std::fs::create_dir_all(&keep);
        let _ = callscope_testkit::audio_compare::write_wav(
            &keep.join("phone_heard.wav"),
            std::slice::from_ref(&heard),
        );
        for f in ["agent.wav", "customer.wav", "browser_heard.wav"] {
            let _ = std::fs::copy(dir.path().join(f), keep.join(f));
        }
    }
    eprintln!(
        "phone heard {:.2} s, agent source {:.2} s",
        heard.duration_s(),
        agent_src.duration_s()
    );
    let phone_match = live_match(&agent_src, &heard);

    // The browser hears the phone's voice (PCMU → Opus at 8 kHz → aiortc's decoder).
    let browser_heard = read_wav_channels(&browser_rec).expect("aiortc recording");
    let browser_match = live_match(&customer_src, &browser_heard[0]);

    // The recording: agent (browser) left, customer (phone) right.
    let rec = report.recording.expect("recording");
    let channels = read_wav_channels(&rec.path).expect("read recording");
    if let Some(keep) = std::env::var_os("WEBRTC_TEST_KEEP") {
        let _ = std::fs::copy(&rec.path, std::path::Path::new(&keep).join("call.wav"));
    }
    assert_eq!(channels.len(), 2);
    assert_eq!(channels[0].rate, recording_rate, "recording rate");
    let left = best_lag(&agent_src, &channels[0], 3.0).expect("left");
    let right = best_lag(&customer_src, &channels[1], 3.0).expect("right");
    eprintln!(
        "recording at {} Hz: left xcorr {:.3}, right xcorr {:.3}",
        channels[0].rate, left.xcorr, right.xcorr
    );
    assert_live("phone heard the browser (Opus → PCMU)", phone_match);
    assert_live("browser heard the phone (PCMU → Opus)", browser_match);
    assert!(left.xcorr >= 0.8, "left: {left:?}");
    assert!(right.xcorr >= 0.8, "right: {right:?}");
    // Each channel holds its own voice, not the other one.
    let cross = best_lag(&customer_src, &channels[0], 3.0).expect("cross");
    assert!(
        cross.xcorr < 0.5,
        "agent channel holds the customer: {cross:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatched_dtls_fingerprint_fails_cleanly() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tmp");
    let (_, agent_wav, _) = voices(dir.path());
    let (engine, mut events) = engine();
    let call = "webrtc-bad-fingerprint";
    let mut browser = AiortcPeer::start(&agent_wav, &dir.path().join("heard.wav"), 3.0, "").await;
    // A well-formed fingerprint of some other certificate: DTLS must refuse the peer.
    let offer: String = browser
        .offer
        .lines()
        .map(|l| {
            if let Some(rest) = l.strip_prefix("a=fingerprint:sha-256 ") {
                let flipped: String = rest
                    .chars()
                    .map(|c| match c {
                        '0' => '1',
                        '1' => '0',
                        'A' | 'a' => 'B',
                        'B' | 'b' => 'A',
                        other => other,
                    })
                    .collect();
                format!("a=fingerprint:sha-256 {flipped}\r\n")
            } else {
                format!("{l}\r\n")
            }
        })
        .collect();
    assert_ne!(
        offer.replace("\r\n", "\n"),
        browser.offer.replace("\r\n", "\n")
    );
    let answer = engine
        .open_webrtc_leg(call, LegSide::A, &offer)
        .await
        .expect("answer");
    browser.answer(&answer).await;
    let error = wait_state(&mut events, WebRtcState::Failed, Duration::from_secs(30)).await;
    let error = error.unwrap_or_else(|| {
        panic!(
            "no Failed event for a mismatched fingerprint; snapshot {:?}",
            engine.snapshot(call)
        )
    });
    eprintln!("DTLS failure reported as: {error:?}");
    assert!(error.is_some_and(|e| !e.is_empty()));
    browser.kill();
    let snap = engine.snapshot(call).expect("call still there");
    assert_eq!(snap.a.and_then(|a| a.webrtc), Some(WebRtcState::Failed));
    let report = engine.close_call(call).await.expect("closed cleanly");
    assert_eq!(report.a.expect("leg").packets_received, 0);
}

#[tokio::test]
async fn unusable_offers_are_errors() {
    let (engine, _events) = engine();
    for (i, offer) in [
        "",
        "garbage\r\n",
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
        // Video only: nothing for a phone call.
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
         a=fingerprint:sha-256 00:11\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\n\
         a=mid:0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\n\
         a=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\na=sendrecv\r\n",
    ]
    .iter()
    .enumerate()
    {
        let call = format!("bad-offer-{i}");
        let r = engine.open_webrtc_leg(&call, LegSide::A, offer).await;
        assert!(matches!(r, Err(EngineError::WebRtc(_))), "{offer:?}: {r:?}");
    }
    // Candidates for a call that does not exist, or lines that are not candidates.
    assert!(
        engine
            .add_remote_candidate(
                "nope",
                LegSide::A,
                "candidate:1 1 udp 2113937151 127.0.0.1 5000 typ host"
            )
            .is_err()
    );
    // Give the failed legs' cleanup a moment, then nothing is left bound.
    for _ in 0..50 {
        if engine.open_calls() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(engine.open_calls(), 0);
    assert_eq!(engine.ports_in_use(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_relay_opus_untouched_and_are_recorded() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tmp");
    let (agent_src, agent_wav, _) = voices(dir.path());
    let other_wav = speech_wav(
        &dir.path().join("other.wav"),
        "en-gb+f3",
        "Hello, I would like to change the delivery address of my order, please.",
        48000,
        SECONDS + 2.0,
    )
    .expect("second voice");
    let other_src = read_wav_mono(&other_wav).expect("read");
    let (engine, mut events) = engine();
    let call = "webrtc-relay";
    let rec0 = dir.path().join("peer0.wav");
    let mut peers =
        AiortcPeer::start_with(&agent_wav, Some(&other_wav), &rec0, SECONDS, "", 2).await;
    assert_eq!(peers.offers.len(), 2);
    let answers = open_both_legs(&engine, call, &peers.offers).await;
    engine
        .start_recording(
            call,
            RecordingSpec {
                final_path: dir.path().join("call.wav"),
                agent_side: LegSide::A,
            },
        )
        .expect("record");
    peers.answer_all(&answers).await;
    wait_both_connected(&mut events).await;
    peers.finish(Duration::from_secs(20)).await;
    let report = engine.close_call(call).await.expect("report");
    let (a, b) = (report.a.expect("A"), report.b.expect("B"));
    eprintln!("A: {a:?}\nB: {b:?}");
    // Relayed: what each leg sent is what the other received (payloads untouched).
    assert!(a.packets_received >= 200 && b.packets_received >= 200);
    assert_eq!(a.bytes_received, b.bytes_sent);
    assert_eq!(b.bytes_received, a.bytes_sent);

    let cut = |m: &Mono| {
        let n = ((SECONDS - 0.5) * f64::from(m.rate)) as usize;
        Mono::new(m.rate, m.samples[..n.min(m.samples.len())].to_vec())
    };
    let (agent_src, other_src) = (cut(&agent_src), cut(&other_src));
    let heard0 = read_wav_channels(&rec0).expect("peer 0 recording");
    let heard1 = read_wav_channels(&dir.path().join("peer0.wav.1.wav")).expect("peer 1");
    assert_live(
        "browser 0 heard browser 1",
        live_match(&other_src, &heard0[0]),
    );
    assert_live(
        "browser 1 heard browser 0",
        live_match(&agent_src, &heard1[0]),
    );
    let channels =
        read_wav_channels(&report.recording.expect("recording").path).expect("recording");
    let left = best_lag(&agent_src, &channels[0], 3.0).expect("left");
    let right = best_lag(&other_src, &channels[1], 3.0).expect("right");
    eprintln!(
        "relay recording: left {:.3}, right {:.3}",
        left.xcorr, right.xcorr
    );
    assert!(
        left.xcorr >= 0.8 && right.xcorr >= 0.8,
        "{left:?} {right:?}"
    );
}

/// The load generator of `scripts/bench-webrtc`: aiortc peers sending a pre-encoded Ogg Opus
/// file packet by packet (`--passthrough`) and dropping what they receive undecoded
/// (`--no-decode`). Both are stand-ins inside aiortc; they must keep a browser's pace and
/// still count what arrives, or the benchmark would measure the server on the wrong load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_generator_peers_keep_a_browsers_pace_and_count_what_they_receive() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tmp");
    // The benchmark's browser audio, encoded as the benchmark does: a tone sweep, within
    // wideband, at the bitrate WebRTC's encoder starts at there.
    let sweep = sweep_wav(&dir.path().join("up48.wav"), 48000, 4.0, 300, 3400).expect("sweep");
    let ogg = dir.path().join("agent.ogg");
    opus_ogg_repeated_within(
        &sweep,
        &ogg,
        SECONDS + 10.0,
        16000,
        webrtc_bitrate_for(16000),
    )
    .expect("Ogg Opus");
    let (engine, mut events) = engine();
    let call = "load-generator";
    let mut options = AiortcOptions::new(&ogg, None, SECONDS);
    options.peers = 2;
    options.passthrough = true;
    options.no_decode = true;
    options.stats = true;
    let mut peers = AiortcPeer::start_opts(&options).await;
    assert_eq!(peers.offers.len(), 2);
    let answers = open_both_legs(&engine, call, &peers.offers).await;
    peers.answer_all(&answers).await;
    wait_both_connected(&mut events).await;
    let stats = peers
        .finish_with_stats(Duration::from_secs(20))
        .await
        .expect("the peers report their counters and close");
    let report = engine.close_call(call).await.expect("report");
    let (a, b) = (report.a.expect("A"), report.b.expect("B"));
    eprintln!("peers: {stats:?}\nA: {a:?}\nB: {b:?}");
    assert_eq!(stats.len(), 2);
    // 50 packets a second for the SECONDS the peers run after the answer (plus the moments
    // before it), never a burst of the whole file.
    let browser_rate = 50.0 * SECONDS;
    for (peer, leg) in stats.iter().zip([&a, &b]) {
        let sent = peer.packets_sent as f64;
        assert!(
            (0.8 * browser_rate..=1.3 * browser_rate).contains(&sent),
            "{peer:?}"
        );
        // What the engine took in from this peer is what it sent (loopback, no loss).
        assert!(
            leg.packets_received as f64 >= 0.95 * sent,
            "{peer:?} {leg:?}"
        );
        // And it is what Chromium sends under our answer (`softphone_browser_calls`):
        // wideband SILK frames, not the CELT a 32 kbit/s encode of a sweep turns into.
        assert_eq!(leg.audio_rate_received, Some(16000), "{leg:?}");
        let modes = leg.opus_modes_received.expect("Opus modes counted");
        assert_eq!(modes.total(), leg.packets_received, "{leg:?}");
        assert!(modes.silk >= modes.total() * 9 / 10, "{modes:?}");
    }
    // Each peer counted what the engine relayed to it from the other, undecoded.
    for (peer, from) in stats.iter().zip([&b, &a]) {
        assert!(
            peer.packets_received as f64 >= 0.9 * from.packets_received as f64,
            "{peer:?} {from:?}"
        );
        assert!(peer.packets_received > 0);
    }
}
