//! RFC 4733 telephone-events through the engine: detected as one digit with its times,
//! relayed with the other leg's payload type inside its continuous stream, dropped towards a
//! leg without telephone-event, and kept out of the recording (silence, not tones or noise).

mod phones;

use std::time::{Duration, Instant};

use callscope_media::codec::CodecSpec;
use callscope_media::dtmf::TelephoneEvent;
use callscope_media::engine::{LegSide, MediaEvent, RecordingSpec};
use callscope_media::rtp::RtpBuilder;
use phones::*;

const IDLE: Duration = Duration::from_millis(400);
const MAX: Duration = Duration::from_secs(10);

#[tokio::test]
async fn dtmf_detected_relayed_with_other_pt_and_silent_in_recording() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, mut events) = engine();
    let started = Instant::now();
    let (pa, pb) = two_legs(&engine, "dtmf").await;
    let mut alice = Phone::new(pa, 0xAAAA, 0).await;
    let bob = Phone::new(pb, 0xBBBB, 0).await;
    let mut a = params(Some(alice.addr()), CodecSpec::pcmu());
    a.telephone_event_pt = Some(101);
    let mut b = params(Some(bob.addr()), CodecSpec::pcmu());
    b.telephone_event_pt = Some(96);
    engine.configure_leg("dtmf", LegSide::A, a).unwrap();
    engine.configure_leg("dtmf", LegSide::B, b).unwrap();
    let path = dir.path().join("dtmf.wav");
    engine
        .start_recording(
            "dtmf",
            RecordingSpec {
                final_path: path.clone(),
                agent_side: LegSide::B,
            },
        )
        .unwrap();

    let audio = tone(600.0, 7000.0, 160 * 100);
    let mut expected_right = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut event_ts = 0;
    let mut event_sent_at = None;
    for i in 0..100 {
        tick.tick().await;
        let frame = &audio[i * 160..(i + 1) * 160];
        let payload = ulaw(frame);
        if (40..50).contains(&i) {
            // The phone keeps sending audio while the key is down (some do): the press's
            // span must still be silence in the recording.
            if i == 40 {
                event_ts = alice.ts;
                event_sent_at = Some(started.elapsed());
            }
            let end = i == 49;
            let ev = TelephoneEvent {
                event: 5,
                end,
                volume: 10,
                duration: ((i - 39) * 160) as u16,
            }
            .to_bytes()
            .unwrap();
            let repeats = if end { 3 } else { 1 };
            for _ in 0..repeats {
                let pkt = RtpBuilder {
                    marker: i == 40,
                    payload_type: 101,
                    sequence: alice.seq,
                    timestamp: event_ts,
                    ssrc: alice.ssrc,
                    payload: &ev,
                    ..RtpBuilder::default()
                }
                .to_vec()
                .unwrap();
                alice.sock.send_to(&pkt, alice.target).await.unwrap();
                alice.seq = alice.seq.wrapping_add(1);
            }
            expected_right.extend(std::iter::repeat_n(0i16, 160));
        } else {
            expected_right.extend(decode_ulaw(&payload));
        }
        alice.send_frame(&payload).await;
    }
    let (at_bob, _) = collect(&bob.sock, IDLE, MAX).await;
    let report = engine.close_call("dtmf").await.unwrap();

    // Relayed: 12 event packets with Bob's PT 96, one event timestamp, in the same
    // continuous stream (sequence +1 throughout) as the audio.
    let ev_pkts: Vec<_> = at_bob.iter().filter(|p| p.pt == 96).collect();
    assert_eq!(ev_pkts.len(), 12);
    assert!(ev_pkts.iter().all(|p| p.ts == ev_pkts[0].ts));
    assert!(
        ev_pkts
            .iter()
            .all(|p| TelephoneEvent::parse(&p.payload).unwrap().event == 5)
    );
    assert!(at_bob.iter().all(|p| p.pt == 96 || p.pt == 0));
    assert_eq!(at_bob.len(), 112);
    for w in at_bob.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
        assert_eq!(w[1].ssrc, w[0].ssrc);
    }

    // One event with the digit and times.
    let mut digits = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if let MediaEvent::Dtmf {
            side,
            digit,
            start_ms,
            duration_ms,
            ..
        } = ev
        {
            digits.push((side, digit, start_ms, duration_ms));
        }
    }
    assert_eq!(digits.len(), 1, "{digits:?}");
    let (side, digit, start_ms, duration_ms) = digits[0];
    assert_eq!((side, digit, duration_ms), (LegSide::A, '5', 200));
    let sent_ms = event_sent_at.unwrap().as_millis() as u64;
    assert!(
        start_ms.abs_diff(sent_ms) <= 50,
        "start {start_ms} ms vs sent at {sent_ms} ms"
    );
    assert_eq!(report.dtmf.len(), 1);
    assert_eq!(report.a.unwrap().dtmf_events, 1);

    // Recording: Alice (customer) on the right, the press span silent, the rest exact.
    let rec = report.recording.expect("recording");
    let mut reader = hound::WavReader::open(&rec.path).unwrap();
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let right: Vec<i16> = samples.chunks(2).map(|f| f[1]).collect();
    let off = find(&right, &expected_right[..160]).expect("Alice's audio in the right channel");
    assert_same_pcm(&right[off..off + expected_right.len()], &expected_right);
}

#[tokio::test]
async fn events_are_dropped_towards_a_leg_without_telephone_event() {
    let (engine, mut events) = engine();
    let (pa, pb) = two_legs(&engine, "nodtmf").await;
    let mut alice = Phone::new(pa, 1, 0).await;
    let bob = Phone::new(pb, 2, 0).await;
    let mut a = params(Some(alice.addr()), CodecSpec::pcmu());
    a.telephone_event_pt = Some(101);
    engine.configure_leg("nodtmf", LegSide::A, a).unwrap();
    engine
        .configure_leg(
            "nodtmf",
            LegSide::B,
            params(Some(bob.addr()), CodecSpec::pcmu()),
        )
        .unwrap();
    for (i, end) in [(1u16, false), (2, false), (3, true)] {
        let ev = TelephoneEvent {
            event: 11, // '#'
            end,
            volume: 10,
            duration: i * 160,
        }
        .to_bytes()
        .unwrap();
        let pkt = alice.packet(&ev, i == 1, 101);
        alice.sock.send_to(&pkt, alice.target).await.unwrap();
        alice.seq += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    alice.send_frame(&ulaw(&tone(400.0, 3000.0, 160))).await;
    let (at_bob, _) = collect(&bob.sock, IDLE, MAX).await;
    assert_eq!(at_bob.len(), 1, "only the audio packet");
    assert_eq!(at_bob[0].pt, 0);
    let report = engine.close_call("nodtmf").await.unwrap();
    assert_eq!(report.dtmf.len(), 1);
    assert_eq!(report.dtmf[0].digit, '#');
    let mut saw = false;
    while let Ok(ev) = events.try_recv() {
        saw |= matches!(ev, MediaEvent::Dtmf { digit: '#', .. });
    }
    assert!(saw);
}

fn find(hay: &[i16], needle: &[i16]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
