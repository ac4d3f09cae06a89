//! The engine's live call controls with real UDP phones on 127.0.0.1: mute (relayed and
//! transcoded), DTMF sent by callscope, ringback generated into a leg, and releasing a leg
//! then bridging a new one with another codec. Each test decodes what the phones actually
//! receive and what the recording holds.

mod phones;

use callscope_testkit::audio_compare::amplitude_at;
use std::time::{Duration, Instant};

use callscope_media::codec::{CodecSpec, decoder_at_rate, encoder_for};
use callscope_media::dtmf::TelephoneEvent;
use callscope_media::engine::{EngineError, LegSide, MediaEvent, RecordingSpec, Tone};
use phones::*;
use tokio::sync::mpsc;

const IDLE: Duration = Duration::from_millis(400);
const MAX: Duration = Duration::from_secs(15);

fn rms(pcm: &[i16]) -> f64 {
    (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len().max(1) as f64).sqrt()
}

fn drain(events: &mut mpsc::Receiver<MediaEvent>) -> Vec<MediaEvent> {
    let mut out = Vec::new();
    while let Ok(ev) = events.try_recv() {
        out.push(ev);
    }
    out
}

/// One SSRC, sequence +1 per packet, timestamps never going back: what a receiving phone
/// needs to see one stream (source switches may step the clock by the wall time).
fn assert_one_stream(pkts: &[Received]) {
    assert!(!pkts.is_empty(), "no packets");
    for (i, w) in pkts.windows(2).enumerate() {
        assert_eq!(w[1].ssrc, w[0].ssrc, "SSRC changed at {i}");
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "sequence gap at {i}");
        assert!(
            (w[1].ts.wrapping_sub(w[0].ts) as i32) >= 0,
            "timestamp went back at {i}: {} → {}",
            w[0].ts,
            w[1].ts
        );
    }
}

/// Lengths of the runs of consecutive `true`/`false` in `flags`, in order.
fn runs(flags: &[bool]) -> Vec<(bool, usize)> {
    let mut out: Vec<(bool, usize)> = Vec::new();
    for &f in flags {
        match out.last_mut() {
            Some((v, n)) if *v == f => *n += 1,
            _ => out.push((f, 1)),
        }
    }
    out
}

fn read_stereo(path: &std::path::Path) -> (u32, Vec<i16>, Vec<i16>) {
    let mut reader = hound::WavReader::open(path).unwrap();
    let rate = reader.spec().sample_rate;
    assert_eq!(reader.spec().channels, 2);
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let left = samples.chunks(2).map(|f| f[0]).collect();
    let right = samples.chunks(2).map(|f| f[1]).collect();
    (rate, left, right)
}

/// Per 20 ms block of `pcm`: whether it carries sound.
fn loud_blocks(pcm: &[i16], rate: u32, threshold: f64) -> Vec<bool> {
    pcm.chunks(rate as usize / 50)
        .map(|b| rms(b) > threshold)
        .collect()
}

#[tokio::test]
async fn mute_sends_continuous_silence_and_records_silence_for_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, mut events) = engine();
    let id = "mute";
    let (pa, pb) = two_legs(&engine, id).await;
    let mut alice = Phone::new(pa, 0xA1, 0).await;
    let bob = Phone::new(pb, 0xB1, 0).await;
    engine
        .configure_leg(
            id,
            LegSide::A,
            params(Some(alice.addr()), CodecSpec::pcmu()),
        )
        .unwrap();
    engine
        .configure_leg(id, LegSide::B, params(Some(bob.addr()), CodecSpec::pcmu()))
        .unwrap();
    let path = dir.path().join("mute.wav");
    engine
        .start_recording(
            id,
            RecordingSpec {
                final_path: path.clone(),
                agent_side: LegSide::B,
            },
        )
        .unwrap();
    let audio = tone(600.0, 8000.0, 160 * 100);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let started = Instant::now();
    let mut muted_at = 0;
    let mut unmuted_at = 0;
    for i in 0..100 {
        tick.tick().await;
        if i == 30 {
            engine.set_muted(id, LegSide::A, true).unwrap();
            muted_at = started.elapsed().as_millis() as u64;
        }
        if i == 60 {
            engine.set_muted(id, LegSide::A, false).unwrap();
            unmuted_at = started.elapsed().as_millis() as u64;
        }
        alice
            .send_frame(&ulaw(&audio[i * 160..(i + 1) * 160]))
            .await;
    }
    let (at_bob, _) = collect(&bob.sock, IDLE, MAX).await;
    let report = engine.close_call(id).await.unwrap();

    // Bob gets one stream with no hole: the source, ~30 frames of silence, the source.
    assert_one_stream(&at_bob);
    assert!(at_bob.iter().all(|p| p.pt == 0));
    let loud: Vec<bool> = at_bob
        .iter()
        .map(|p| rms(&decode_ulaw(&p.payload)) > 1000.0)
        .collect();
    let r = runs(&loud);
    eprintln!("mute runs at Bob: {r:?}");
    assert_eq!(r.len(), 3, "source, silence, source: {r:?}");
    assert!(r[0].0 && !r[1].0 && r[2].0);
    assert!((27..=33).contains(&r[1].1), "silence of {} frames", r[1].1);
    assert!((27..=33).contains(&r[0].1) && (37..=43).contains(&r[2].1));
    // The silent frames are digital silence, not low-level noise.
    for p in at_bob
        .iter()
        .filter(|p| rms(&decode_ulaw(&p.payload)) <= 1000.0)
    {
        assert!(decode_ulaw(&p.payload).iter().all(|&s| s.abs() <= 8));
    }
    // Nothing lost on the way: every frame of the call's length arrived.
    assert!(
        (97..=103).contains(&at_bob.len()),
        "{} packets",
        at_bob.len()
    );

    // Events and the report carry the interval.
    let mutes: Vec<(bool, u64)> = drain(&mut events)
        .into_iter()
        .filter_map(|e| match e {
            MediaEvent::Muted {
                side: LegSide::A,
                muted,
                at_ms,
                ..
            } => Some((muted, at_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(mutes.len(), 2, "{mutes:?}");
    assert!(mutes[0].0 && !mutes[1].0);
    assert!(
        mutes[0].1.abs_diff(muted_at) <= 60,
        "{mutes:?} vs {muted_at}"
    );
    assert!(
        mutes[1].1.abs_diff(unmuted_at) <= 60,
        "{mutes:?} vs {unmuted_at}"
    );
    assert_eq!(report.mutes.len(), 1);
    assert_eq!(report.mutes[0].side, LegSide::A);
    assert_eq!(
        (report.mutes[0].start_ms, report.mutes[0].end_ms),
        (mutes[0].1, mutes[1].1)
    );

    // The recording's customer channel (right, Alice) is silent for the interval only.
    let (rate, _left, right) = read_stereo(&report.recording.unwrap().path);
    let blocks = loud_blocks(&right, rate, 1000.0);
    let r = runs(&blocks);
    eprintln!("mute runs in the recording: {r:?}");
    let loud_runs: Vec<usize> = r.iter().filter(|x| x.0).map(|x| x.1).collect();
    assert_eq!(loud_runs.len(), 2, "{r:?}");
    let first_loud = r.iter().position(|x| x.0).unwrap();
    let gap = r[first_loud + 1];
    assert!(!gap.0 && (27..=33).contains(&gap.1), "{r:?}");
    assert!((27..=33).contains(&loud_runs[0]) && (37..=43).contains(&loud_runs[1]));
}

#[tokio::test]
async fn mute_while_transcoding_to_opus_keeps_the_opus_stream_continuous() {
    let (engine, _events) = engine();
    let id = "mute-opus";
    let (pa, pb) = two_legs(&engine, id).await;
    let mut alice = Phone::new(pa, 0xA2, 0).await;
    let bob = Phone::new(pb, 0xB2, 111).await;
    let opus = CodecSpec::opus(111);
    engine
        .configure_leg(
            id,
            LegSide::A,
            params(Some(alice.addr()), CodecSpec::pcmu()),
        )
        .unwrap();
    engine
        .configure_leg(id, LegSide::B, params(Some(bob.addr()), opus))
        .unwrap();
    let audio = tone(600.0, 8000.0, 160 * 100);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..100 {
        tick.tick().await;
        if i == 30 {
            engine.set_muted(id, LegSide::A, true).unwrap();
        }
        if i == 60 {
            engine.set_muted(id, LegSide::A, false).unwrap();
        }
        alice
            .send_frame(&ulaw(&audio[i * 160..(i + 1) * 160]))
            .await;
    }
    let (at_bob, _) = collect(&bob.sock, IDLE, MAX).await;
    engine.close_call(id).await.unwrap();
    assert_one_stream(&at_bob);
    assert!(at_bob.iter().all(|p| p.pt == 111));
    let mut dec = decoder_at_rate(&opus, 8000).unwrap();
    let loud: Vec<bool> = at_bob
        .iter()
        .map(|p| {
            let mut pcm = Vec::new();
            dec.decode(&p.payload, &mut pcm).unwrap();
            rms(&pcm) > 1000.0
        })
        .collect();
    let r = runs(&loud);
    eprintln!("opus mute runs: {r:?}");
    let silent: Vec<usize> = r.iter().filter(|x| !x.0).map(|x| x.1).collect();
    assert_eq!(r.iter().filter(|x| x.0).count(), 2, "{r:?}");
    // The interval's silence (Opus' decoder may ring for a frame at the edges).
    assert!(silent.iter().any(|&n| (26..=34).contains(&n)), "{r:?}");
    // Timestamps in Opus' 48 kHz clock: 960 per 20 ms frame, no overlap at switches.
    for w in at_bob.windows(2) {
        assert!(w[1].ts.wrapping_sub(w[0].ts) >= 960);
    }
}

#[tokio::test]
async fn send_dtmf_plays_rfc4733_events_inside_the_relayed_stream() {
    let (engine, mut events) = engine();
    let id = "send-dtmf";
    let (pa, pb) = two_legs(&engine, id).await;
    let mut alice = Phone::new(pa, 0xA3, 0).await;
    let bob = Phone::new(pb, 0xB3, 0).await;
    let mut a = params(Some(alice.addr()), CodecSpec::pcmu());
    a.telephone_event_pt = Some(101);
    let mut b = params(Some(bob.addr()), CodecSpec::pcmu());
    b.telephone_event_pt = Some(96);
    engine.configure_leg(id, LegSide::A, a).unwrap();
    engine.configure_leg(id, LegSide::B, b).unwrap();
    let audio = tone(600.0, 8000.0, 160 * 80);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..80 {
        tick.tick().await;
        if i == 20 {
            engine.send_dtmf(id, LegSide::B, "1#").unwrap();
        }
        alice
            .send_frame(&ulaw(&audio[i * 160..(i + 1) * 160]))
            .await;
    }
    let (at_bob, _) = collect(&bob.sock, IDLE, MAX).await;
    let report = engine.close_call(id).await.unwrap();

    // One continuous stream of audio (PT 0) and events (Bob's PT 96).
    assert_one_stream(&at_bob);
    assert!(at_bob.iter().all(|p| p.pt == 0 || p.pt == 96));
    let ev_idx: Vec<usize> = (0..at_bob.len()).filter(|&i| at_bob[i].pt == 96).collect();
    assert_eq!(ev_idx.len(), 14, "7 packets per digit");
    for (n, (code, chunk)) in [1u8, 11].iter().zip(ev_idx.chunks(7)).enumerate() {
        let pkts: Vec<&Received> = chunk.iter().map(|&i| &at_bob[i]).collect();
        let evs: Vec<TelephoneEvent> = pkts
            .iter()
            .map(|p| TelephoneEvent::parse(&p.payload).unwrap())
            .collect();
        assert!(evs.iter().all(|e| e.event == *code), "digit {n}: {evs:?}");
        let durations: Vec<u16> = evs.iter().map(|e| e.duration).collect();
        assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
        let ends: Vec<bool> = evs.iter().map(|e| e.end).collect();
        assert_eq!(ends, [false, false, false, false, true, true, true]);
        assert!(pkts[0].marker && pkts[1..].iter().all(|p| !p.marker));
        assert!(
            pkts.iter().all(|p| p.ts == pkts[0].ts),
            "one timestamp per event"
        );
        // Consecutive in the stream, and on the audio's clock: after the audio before it,
        // and the audio after it starts where the event ended.
        assert_eq!(chunk[6] - chunk[0], 6);
        let before = &at_bob[chunk[0] - 1];
        let after = &at_bob[chunk[6] + 1];
        assert_eq!(before.pt, 0);
        assert_eq!(after.pt, 0);
        assert!((pkts[0].ts.wrapping_sub(before.ts) as i32) >= 160);
        assert!((after.ts.wrapping_sub(pkts[0].ts) as i32) >= 800);
    }
    // Between the digits and after them: silence, then Alice's audio again.
    let gap = &at_bob[ev_idx[6] + 1..ev_idx[7]];
    assert!((3..=5).contains(&gap.len()), "gap of {} frames", gap.len());
    assert!(gap.iter().all(|p| rms(&decode_ulaw(&p.payload)) < 10.0));
    let tail = &at_bob[ev_idx[13] + 1..];
    assert!(tail.iter().any(|p| rms(&decode_ulaw(&p.payload)) > 3000.0));

    let sent: Vec<(LegSide, char, u64, bool)> = drain(&mut events)
        .into_iter()
        .filter_map(|e| match e {
            MediaEvent::Dtmf {
                side,
                digit,
                duration_ms,
                sent,
                ..
            } => Some((side, digit, duration_ms, sent)),
            _ => None,
        })
        .collect();
    assert_eq!(
        sent,
        [(LegSide::B, '1', 100, true), (LegSide::B, '#', 100, true)]
    );
    assert_eq!(report.dtmf.len(), 2);
    assert!(report.dtmf.iter().all(|d| d.sent && d.side == LegSide::B));
    // Bob did not press anything: the leg's received-DTMF count stays 0.
    assert_eq!(report.b.unwrap().dtmf_events, 0);
}

#[tokio::test]
async fn ringback_cadence_into_a_leg_stops_when_the_other_side_speaks() {
    let (engine, mut events) = engine();
    let id = "ringback";
    let (pa, pb) = two_legs(&engine, id).await;
    let alice = Phone::new(pa, 0xA4, 0).await;
    let mut bob = Phone::new(pb, 0xB4, 0).await;
    engine
        .configure_leg(
            id,
            LegSide::A,
            params(Some(alice.addr()), CodecSpec::pcmu()),
        )
        .unwrap();
    // Read while the call runs: ~7 s of packets would overflow the socket's buffer.
    let reader = tokio::spawn(async move { collect(&alice.sock, IDLE, MAX).await.0 });
    // Bob's leg is allocated but he is still ringing: no media from him yet.
    engine
        .play_tone(id, LegSide::A, Some(Tone::Ringback))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5600)).await;
    engine
        .configure_leg(id, LegSide::B, params(Some(bob.addr()), CodecSpec::pcmu()))
        .unwrap();
    let voice = tone(1000.0, 8000.0, 160 * 50);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..50 {
        tick.tick().await;
        bob.send_frame(&ulaw(&voice[i * 160..(i + 1) * 160])).await;
    }
    let at_alice = reader.await.unwrap();
    engine.close_call(id).await.unwrap();

    assert_one_stream(&at_alice);
    let pcm: Vec<Vec<i16>> = at_alice.iter().map(|p| decode_ulaw(&p.payload)).collect();
    let loud: Vec<bool> = pcm.iter().map(|b| rms(b) > 1000.0).collect();
    let r = runs(&loud);
    eprintln!("ringback runs: {r:?}");
    // 1 s on, 4 s off, on again until Bob's audio (which is loud too) takes over.
    assert!(r[0].0 && (48..=52).contains(&r[0].1), "{r:?}");
    assert!(!r[1].0 && (197..=203).contains(&r[1].1), "{r:?}");
    assert!(r[2].0, "{r:?}");
    // The tone is 425 Hz; Bob's voice 1000 Hz: find where one ends and the other starts.
    let first_on: Vec<i16> = pcm[5..45].concat();
    assert!(amplitude_at(&first_on, 8000.0, 425.0) > 3000.0);
    assert!(amplitude_at(&first_on, 8000.0, 1000.0) < 300.0);
    let start2 = r[0].1 + r[1].1;
    let bob_at = (start2..pcm.len())
        .find(|&i| amplitude_at(&pcm[i], 8000.0, 1000.0) > 3000.0)
        .expect("Bob's audio reaches Alice");
    // The second ring ran ~0.6 s, until Bob spoke; after that no 425 Hz at all.
    assert!(
        (25..=36).contains(&(bob_at - start2)),
        "{}",
        bob_at - start2
    );
    let after: Vec<i16> = pcm[bob_at + 1..].concat();
    assert!(after.len() >= 160 * 40);
    assert!(amplitude_at(&after, 8000.0, 425.0) < 100.0);
    assert!(amplitude_at(&after, 8000.0, 1000.0) > 3000.0);

    let stopped: Vec<MediaEvent> = drain(&mut events)
        .into_iter()
        .filter(|e| matches!(e, MediaEvent::ToneStopped { .. }))
        .collect();
    assert_eq!(stopped.len(), 1);
    assert!(matches!(
        stopped[0],
        MediaEvent::ToneStopped {
            side: LegSide::A,
            tone: Tone::Ringback,
            by_media: true,
            ..
        }
    ));
}

#[tokio::test]
async fn tone_stops_on_request() {
    let (engine, mut events) = engine();
    let id = "tone-stop";
    let pa = engine.allocate_leg(id, LegSide::A).await.unwrap();
    let alice = Phone::new(pa, 0xA5, 0).await;
    engine
        .configure_leg(
            id,
            LegSide::A,
            params(Some(alice.addr()), CodecSpec::pcmu()),
        )
        .unwrap();
    engine
        .play_tone(id, LegSide::A, Some(Tone::RingbackUs))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    engine.play_tone(id, LegSide::A, None).unwrap();
    let (at_alice, _) = collect(&alice.sock, IDLE, MAX).await;
    engine.close_call(id).await.unwrap();
    // About half a second of the US tone (440 + 480 Hz), then nothing more.
    assert!((20..=30).contains(&at_alice.len()), "{}", at_alice.len());
    assert_one_stream(&at_alice);
    let pcm: Vec<i16> = at_alice
        .iter()
        .flat_map(|p| decode_ulaw(&p.payload))
        .collect();
    assert!(amplitude_at(&pcm, 8000.0, 440.0) > 1500.0);
    assert!(amplitude_at(&pcm, 8000.0, 480.0) > 1500.0);
    assert!(amplitude_at(&pcm, 8000.0, 425.0) < 1000.0);
    assert!(drain(&mut events).iter().any(|e| matches!(
        e,
        MediaEvent::ToneStopped {
            tone: Tone::RingbackUs,
            by_media: false,
            ..
        }
    )));
}

#[tokio::test]
async fn release_then_a_new_opus_leg_on_that_side_bridges_again_in_one_recording() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, mut events) = engine();
    let id = "release";
    let (pa, pb) = two_legs(&engine, id).await;
    let mut alice = Phone::new(pa, 0xA6, 0).await;
    let mut bob = Phone::new(pb, 0xB6, 0).await;
    engine
        .configure_leg(
            id,
            LegSide::A,
            params(Some(alice.addr()), CodecSpec::pcmu()),
        )
        .unwrap();
    engine
        .configure_leg(id, LegSide::B, params(Some(bob.addr()), CodecSpec::pcmu()))
        .unwrap();
    let path = dir.path().join("release.wav");
    engine
        .start_recording(
            id,
            RecordingSpec {
                final_path: path.clone(),
                agent_side: LegSide::B,
            },
        )
        .unwrap();
    let ports_before = engine.ports_in_use();
    let opus = CodecSpec::opus(111);
    let alice_audio = tone(600.0, 8000.0, 160 * 175);
    let bob_audio = tone(1000.0, 8000.0, 160 * 50);
    // The second agent's browser-like leg speaks Opus at 48 kHz: 1500 Hz.
    let carol_audio: Vec<i16> = (0..960 * 75)
        .map(|n| (7000.0 * (2.0 * std::f64::consts::PI * 1500.0 * n as f64 / 48000.0).sin()) as i16)
        .collect();
    let mut carol_enc = encoder_for(&opus).unwrap();
    let mut carol: Option<Phone> = None;
    let mut payload = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..175 {
        tick.tick().await;
        alice
            .send_frame(&ulaw(&alice_audio[i * 160..(i + 1) * 160]))
            .await;
        if i < 50 {
            bob.send_frame(&ulaw(&bob_audio[i * 160..(i + 1) * 160]))
                .await;
        }
        if i == 50 {
            engine.release_leg(id, LegSide::B).await.unwrap();
            assert_eq!(engine.ports_in_use(), ports_before - 2);
            // Bob's port is closed: what he sends now goes nowhere.
        }
        if i == 100 {
            let port = engine.allocate_leg(id, LegSide::B).await.unwrap();
            let c = Phone::new(port, 0xC6, 111).await;
            engine
                .configure_leg(id, LegSide::B, params(Some(c.addr()), opus))
                .unwrap();
            carol = Some(c);
        }
        if let Some(c) = carol.as_mut() {
            let k = i - 100;
            carol_enc
                .encode(&carol_audio[k * 960..(k + 1) * 960], &mut payload)
                .unwrap();
            let pkt = c.packet(&payload, false, 111);
            c.sock.send_to(&pkt, c.target).await.unwrap();
            c.skip_frame(960);
        }
    }
    let carol = carol.unwrap();
    let (at_alice, _) = collect(&alice.sock, IDLE, MAX).await;
    let (at_bob, _) = collect(&bob.sock, Duration::from_millis(50), MAX).await;
    let (at_carol, _) = collect(&carol.sock, Duration::from_millis(50), MAX).await;
    let report = engine.close_call(id).await.unwrap();

    // Alice: one stream throughout — Bob, silence while nobody is on side B, then Carol.
    assert_one_stream(&at_alice);
    // Bob 50 + silence ~50 + Carol 75, and the transcoder's concealment tail (≤ 15).
    assert!((170..=195).contains(&at_alice.len()), "{}", at_alice.len());
    let pcm: Vec<Vec<i16>> = at_alice.iter().map(|p| decode_ulaw(&p.payload)).collect();
    let loud: Vec<bool> = pcm.iter().map(|b| rms(b) > 1000.0).collect();
    let r = runs(&loud);
    eprintln!("release runs at Alice: {r:?}");
    assert!(r[0].0 && (47..=53).contains(&r[0].1), "{r:?}");
    assert!(!r[1].0 && (44..=58).contains(&r[1].1), "{r:?}");
    let bob_part: Vec<i16> = pcm[5..45].concat();
    assert!(amplitude_at(&bob_part, 8000.0, 1000.0) > 3000.0);
    let carol_part: Vec<i16> = pcm[pcm.len() - 50..pcm.len() - 10].concat();
    assert!(amplitude_at(&carol_part, 8000.0, 1500.0) > 3000.0);
    assert!(amplitude_at(&carol_part, 8000.0, 1000.0) < 300.0);
    // Bob got Alice until his release (and the port since then was closed).
    assert!((47..=53).contains(&at_bob.len()), "{}", at_bob.len());
    // Carol: Alice's voice, transcoded to Opus.
    assert!(at_carol.len() >= 65, "{}", at_carol.len());
    assert!(at_carol.iter().all(|p| p.pt == 111));
    assert_one_stream(&at_carol);
    let mut dec = decoder_at_rate(&opus, 8000).unwrap();
    let mut heard = Vec::new();
    for p in &at_carol {
        dec.decode(&p.payload, &mut heard).unwrap();
    }
    let tail = &heard[heard.len() - 160 * 40..];
    assert!(amplitude_at(tail, 8000.0, 600.0) > 3000.0);

    // The released leg's quality was announced and kept.
    let released: Vec<MediaEvent> = drain(&mut events)
        .into_iter()
        .filter(|e| matches!(e, MediaEvent::LegReleased { .. }))
        .collect();
    assert_eq!(released.len(), 1);
    let MediaEvent::LegReleased { side, quality, .. } = &released[0] else {
        unreachable!()
    };
    assert_eq!(*side, LegSide::B);
    assert!((48..=50).contains(&quality.packets_received), "{quality:?}");
    assert_eq!(quality.codec, Some(callscope_media::codec::CodecKind::Pcmu));
    assert_eq!(report.released_legs.len(), 1);
    assert_eq!(report.released_legs[0].quality, **quality);
    // The report's leg B is Carol's.
    let qb = report.b.unwrap();
    assert_eq!(qb.codec, Some(callscope_media::codec::CodecKind::Opus));
    assert_eq!(qb.packets_received, 75);

    // One recording: Alice (right) all along; left: Bob, silence for the gap, Carol — in
    // step with the right channel.
    let (rate, left, right) = read_stereo(&report.recording.unwrap().path);
    assert_eq!(rate, 8000);
    let l = runs(&loud_blocks(&left, rate, 1000.0));
    let rr = runs(&loud_blocks(&right, rate, 1000.0));
    eprintln!("recording left {l:?} right {rr:?}");
    let loud_right: Vec<usize> = rr.iter().filter(|x| x.0).map(|x| x.1).collect();
    assert_eq!(loud_right.len(), 1, "Alice uninterrupted: {rr:?}");
    assert!((170..=178).contains(&loud_right[0]));
    let lead = if rr[0].0 { 0 } else { rr[0].1 };
    let left_loud: Vec<(usize, usize)> = {
        let mut at = 0;
        let mut v = Vec::new();
        for &(on, n) in &l {
            if on {
                v.push((at, n));
            }
            at += n;
        }
        v
    };
    assert_eq!(left_loud.len(), 2, "Bob then Carol: {l:?}");
    // Bob starts with Alice, Carol 100 frames (2 s) later; each within 3 frames.
    assert!(left_loud[0].0.abs_diff(lead) <= 3, "{l:?} vs {rr:?}");
    assert!((47..=53).contains(&left_loud[0].1));
    assert!(left_loud[1].0.abs_diff(lead + 100) <= 4, "{l:?} vs {rr:?}");
    let blk = rate as usize / 50;
    let bob_rec = &left[(left_loud[0].0 + 5) * blk..(left_loud[0].0 + 40) * blk];
    let carol_rec = &left[(left_loud[1].0 + 5) * blk..(left_loud[1].0 + 60) * blk];
    assert!(amplitude_at(bob_rec, 8000.0, 1000.0) > 3000.0);
    assert!(amplitude_at(carol_rec, 8000.0, 1500.0) > 3000.0);
}

#[tokio::test]
async fn controls_refuse_bad_requests_with_errors() {
    let (engine, _events) = engine();
    let id = "errors";
    let pa = engine.allocate_leg(id, LegSide::A).await.unwrap();
    let alice = Phone::new(pa, 1, 0).await;
    engine
        .configure_leg(
            id,
            LegSide::A,
            params(Some(alice.addr()), CodecSpec::pcmu()),
        )
        .unwrap();

    // Unknown call.
    assert!(matches!(
        engine.send_dtmf("nope", LegSide::A, "1"),
        Err(EngineError::UnknownCall(_))
    ));
    assert!(matches!(
        engine.set_muted("nope", LegSide::A, true),
        Err(EngineError::UnknownCall(_))
    ));
    assert!(matches!(
        engine.play_tone("nope", LegSide::A, Some(Tone::Ringback)),
        Err(EngineError::UnknownCall(_))
    ));
    assert!(matches!(
        engine.release_leg("nope", LegSide::A).await,
        Err(EngineError::UnknownCall(_))
    ));
    // Unknown leg (B never allocated).
    assert!(matches!(
        engine.send_dtmf(id, LegSide::B, "1"),
        Err(EngineError::UnknownLeg { .. })
    ));
    assert!(matches!(
        engine.set_muted(id, LegSide::B, true),
        Err(EngineError::UnknownLeg { .. })
    ));
    assert!(matches!(
        engine.play_tone(id, LegSide::B, None),
        Err(EngineError::UnknownLeg { .. })
    ));
    assert!(matches!(
        engine.release_leg(id, LegSide::B).await,
        Err(EngineError::UnknownLeg { .. })
    ));
    // No telephone-event on A.
    assert!(matches!(
        engine.send_dtmf(id, LegSide::A, "1"),
        Err(EngineError::NoTelephoneEvent { .. })
    ));
    // Bad digits, whatever the leg.
    for bad in ["", "12x", "1 2", "!", "é", &"1".repeat(33)] {
        assert!(
            matches!(
                engine.send_dtmf(id, LegSide::A, bad),
                Err(EngineError::InvalidDigits(_))
            ),
            "{bad:?}"
        );
    }
    // 32 digits are fine once telephone-event is there; releasing twice is an error.
    let mut p = params(Some(alice.addr()), CodecSpec::pcmu());
    p.telephone_event_pt = Some(101);
    engine.configure_leg(id, LegSide::A, p).unwrap();
    engine
        .send_dtmf(id, LegSide::A, "0123456789*#ABCDabcd000000000000")
        .unwrap();
    engine.release_leg(id, LegSide::A).await.unwrap();
    assert!(matches!(
        engine.release_leg(id, LegSide::A).await,
        Err(EngineError::UnknownLeg { .. })
    ));
    assert!(matches!(
        engine.send_dtmf(id, LegSide::A, "1"),
        Err(EngineError::UnknownLeg { .. })
    ));
    let report = engine.close_call(id).await.unwrap();
    assert_eq!(report.released_legs.len(), 1);
    assert_eq!(engine.ports_in_use(), 0);
}

#[tokio::test]
async fn send_dtmf_to_a_transcoded_opus_leg_uses_its_48khz_clock() {
    let (engine, mut events) = engine();
    let id = "send-dtmf-opus";
    let (pa, pb) = two_legs(&engine, id).await;
    let mut alice = Phone::new(pa, 0xA7, 0).await;
    let bob = Phone::new(pb, 0xB7, 111).await;
    let mut a = params(Some(alice.addr()), CodecSpec::pcmu());
    a.telephone_event_pt = Some(101);
    let mut b = params(Some(bob.addr()), CodecSpec::opus(111));
    b.telephone_event_pt = Some(110);
    engine.configure_leg(id, LegSide::A, a).unwrap();
    engine.configure_leg(id, LegSide::B, b).unwrap();
    let audio = tone(600.0, 8000.0, 160 * 60);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..60 {
        tick.tick().await;
        if i == 20 {
            engine.send_dtmf(id, LegSide::B, "9").unwrap();
        }
        alice
            .send_frame(&ulaw(&audio[i * 160..(i + 1) * 160]))
            .await;
    }
    let (at_bob, _) = collect(&bob.sock, IDLE, MAX).await;
    engine.close_call(id).await.unwrap();
    assert_one_stream(&at_bob);
    assert!(at_bob.iter().all(|p| p.pt == 111 || p.pt == 110));
    let ev: Vec<usize> = (0..at_bob.len()).filter(|&i| at_bob[i].pt == 110).collect();
    assert_eq!(ev.len(), 7);
    assert_eq!(ev[6] - ev[0], 6, "the event's packets are consecutive");
    let durations: Vec<u16> = ev
        .iter()
        .map(|&i| TelephoneEvent::parse(&at_bob[i].payload).unwrap().duration)
        .collect();
    assert_eq!(durations, [960, 1920, 2880, 3840, 4800, 4800, 4800]);
    assert!(ev.iter().all(|&i| at_bob[i].ts == at_bob[ev[0]].ts));
    assert!(at_bob[ev[0]].marker);
    assert!(ev[0] >= 10, "transcoded audio came before the digit");
    let before = &at_bob[ev[0] - 1];
    let after = &at_bob[ev[6] + 1];
    assert!((at_bob[ev[0]].ts.wrapping_sub(before.ts) as i32) >= 960);
    assert!((after.ts.wrapping_sub(at_bob[ev[0]].ts) as i32) >= 4800);
    assert!(drain(&mut events).iter().any(|e| matches!(
        e,
        MediaEvent::Dtmf {
            digit: '9',
            sent: true,
            duration_ms: 100,
            ..
        }
    )));
}
