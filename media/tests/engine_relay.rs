//! Relay through the engine over real UDP on 127.0.0.1: header rewriting with payloads kept
//! byte for byte, symmetric RTP latching, one continuous stream across an SSRC change, hold,
//! rtcp-mux, RTCP reports, garbage input, and ports freed at close.

mod phones;

use std::net::SocketAddr;
use std::time::Duration;

use callscope_media::codec::CodecSpec;
use callscope_media::engine::{LegQuality, LegSide, MediaDirection, MediaEngine};
use callscope_media::rtcp::{self, RtcpPacket};
use phones::*;
use tokio::net::UdpSocket;

const IDLE: Duration = Duration::from_millis(400);
const MAX: Duration = Duration::from_secs(10);

#[tokio::test]
async fn relay_rewrites_headers_and_keeps_payload_bytes() {
    let (engine, _events) = engine();
    let (pa, pb) = two_legs(&engine, "relay").await;
    assert_eq!(pa % 2, 0, "RTP on even ports");
    assert_eq!(engine.ports_in_use(), 4);
    let mut alice = Phone::new(pa, 0xA11CE, 0).await;
    let mut bob = Phone::new(pb, 0xB0B, 0).await;
    engine
        .configure_leg(
            "relay",
            LegSide::A,
            params(Some(alice.addr()), CodecSpec::pcmu()),
        )
        .unwrap();
    engine
        .configure_leg(
            "relay",
            LegSide::B,
            params(Some(bob.addr()), CodecSpec::pcmu()),
        )
        .unwrap();

    let a_audio = tone(440.0, 8000.0, 160 * 50);
    let b_audio = tone(1000.0, 6000.0, 160 * 50);
    let mut sent_a = Vec::new();
    let mut sent_b = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..50 {
        tick.tick().await;
        let fa = ulaw(&a_audio[i * 160..(i + 1) * 160]);
        let fb = ulaw(&b_audio[i * 160..(i + 1) * 160]);
        alice.send_frame(&fa).await;
        bob.send_frame(&fb).await;
        sent_a.push(fa);
        sent_b.push(fb);
    }
    let (at_bob, _) = collect(&bob.sock, IDLE, MAX).await;
    let (at_alice, _) = collect(&alice.sock, IDLE, MAX).await;
    assert_eq!(at_bob.len(), 50);
    assert_eq!(at_alice.len(), 50);
    // Payloads byte for byte, in order; headers are ours, not the sender's.
    for (got, sent) in at_bob.iter().zip(&sent_a) {
        assert_eq!(&got.payload, sent);
        assert_ne!(got.ssrc, 0xA11CE);
        assert_eq!(
            got.from.port(),
            pb,
            "sent from the leg's own port (symmetric)"
        );
    }
    for (got, sent) in at_alice.iter().zip(&sent_b) {
        assert_eq!(&got.payload, sent);
        assert_eq!(got.from.port(), pa);
    }
    assert_continuous(&at_bob);
    assert_continuous(&at_alice);
    assert!(
        at_bob[0].marker,
        "first packet of our stream marks a talkspurt"
    );

    let snap = engine.snapshot("relay").expect("snapshot");
    let a = snap.a.expect("leg A quality");
    assert_eq!(a.latched_remote, Some(alice.addr()));
    let report = engine.close_call("relay").await.expect("report");
    let qa = report.a.expect("A");
    let qb = report.b.expect("B");
    assert_eq!(qa.packets_received, 50);
    assert_eq!(qb.packets_sent, 50);
    assert_eq!(qa.lost, 0);
    assert!(qa.mos.unwrap() > 4.0, "MOS {:?}", qa.mos);
    // The engine-wide counter (what /metrics shows) holds every packet of the call once
    // the call has closed: 50 each way.
    assert_eq!(engine.packets_relayed(), 100);
    assert_eq!(engine.ports_in_use(), 0);
    assert_eq!(engine.open_calls(), 0);
}

#[tokio::test]
async fn latches_to_the_real_source_port() {
    let (engine, mut events) = engine();
    let (pa, pb) = two_legs(&engine, "latch").await;
    let mut alice = Phone::new(pa, 1, 0).await;
    // Bob's SDP announces one port, but his RTP comes from another (NAT).
    let announced = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let mut bob = Phone::new(pb, 2, 0).await;
    engine
        .configure_leg(
            "latch",
            LegSide::A,
            params(Some(alice.addr()), CodecSpec::pcmu()),
        )
        .unwrap();
    engine
        .configure_leg(
            "latch",
            LegSide::B,
            params(Some(announced.local_addr().unwrap()), CodecSpec::pcmu()),
        )
        .unwrap();
    let frame = ulaw(&tone(500.0, 5000.0, 160));
    // Before Bob sends anything, Alice's audio goes to the SDP address.
    for _ in 0..5 {
        alice.send_frame(&frame).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (at_announced, _) = collect(&announced, IDLE, MAX).await;
    assert_eq!(at_announced.len(), 5);
    // Bob speaks from his real port: from then on, audio goes there.
    bob.send_frame(&frame).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..5 {
        alice.send_frame(&frame).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (at_bob, _) = collect(&bob.sock, IDLE, MAX).await;
    assert_eq!(at_bob.len(), 5);
    let (late_announced, _) = collect(&announced, Duration::from_millis(100), MAX).await;
    assert!(late_announced.is_empty());
    // One stray packet from a third address does not steal the stream...
    let stray = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let pkt = bob.packet(&frame, false, 0);
    stray.send_to(&pkt, bob.target).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    alice.send_frame(&frame).await;
    let (still_bob, _) = collect(&bob.sock, IDLE, MAX).await;
    assert_eq!(still_bob.len(), 1);
    // ...but a consistent new source (NAT rebinding) does.
    for _ in 0..4 {
        bob.seq = bob.seq.wrapping_add(1);
        let pkt = bob.packet(&frame, false, 0);
        stray.send_to(&pkt, bob.target).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    alice.send_frame(&frame).await;
    let (at_stray, _) = collect(&stray, IDLE, MAX).await;
    assert_eq!(at_stray.len(), 1, "re-latched to the new source");
    let report = engine.close_call("latch").await.unwrap();
    let qb = report.b.unwrap();
    assert_eq!(qb.latched_remote, Some(stray.local_addr().unwrap()));
    assert_eq!(
        qb.foreign_source, 2,
        "the stray packet and one more before the re-latch"
    );
    let mut relatched = 0;
    while let Ok(ev) = events.try_recv() {
        if matches!(
            ev,
            callscope_media::engine::MediaEvent::Relatched {
                side: LegSide::B,
                ..
            }
        ) {
            relatched += 1;
        }
    }
    assert_eq!(relatched, 2, "first latch and the NAT rebinding");
}

#[tokio::test]
async fn ssrc_change_gives_one_continuous_outgoing_stream() {
    let (engine, _events) = engine();
    let (pa, pb) = two_legs(&engine, "ssrc").await;
    let mut alice = Phone::new(pa, 0x1111, 0).await;
    let bob = Phone::new(pb, 0x2222, 0).await;
    engine
        .configure_leg(
            "ssrc",
            LegSide::A,
            params(Some(alice.addr()), CodecSpec::pcmu()),
        )
        .unwrap();
    engine
        .configure_leg(
            "ssrc",
            LegSide::B,
            params(Some(bob.addr()), CodecSpec::pcmu()),
        )
        .unwrap();
    let frame = ulaw(&tone(700.0, 5000.0, 160));
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..40 {
        tick.tick().await;
        if i == 20 {
            // A transfer: new SSRC, unrelated sequence and timestamp.
            alice.ssrc = 0x9999;
            alice.seq = 40_000;
            alice.ts = 7;
        }
        alice.send_frame(&frame).await;
    }
    let (got, _) = collect(&bob.sock, IDLE, MAX).await;
    assert_eq!(got.len(), 40);
    let ssrc = got[0].ssrc;
    for (i, w) in got.windows(2).enumerate() {
        assert_eq!(w[1].ssrc, ssrc);
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
        let step = w[1].ts.wrapping_sub(w[0].ts);
        if i + 1 == 20 {
            // Continues by the wall time that passed: about one frame.
            assert!((160..=400).contains(&step), "step {step} at the change");
            assert!(w[1].marker, "new source starts a talkspurt");
        } else {
            assert_eq!(step, 160);
        }
    }
    let report = engine.close_call("ssrc").await.unwrap();
    assert_eq!(report.a.unwrap().ssrc_changes, 1);
}

#[tokio::test]
async fn hold_stops_forwarding_and_resume_restarts_it() {
    let (engine, _events) = engine();
    let (pa, pb) = two_legs(&engine, "hold").await;
    let mut alice = Phone::new(pa, 1, 0).await;
    let mut bob = Phone::new(pb, 2, 0).await;
    let pa_ = params(Some(alice.addr()), CodecSpec::pcmu());
    let pb_ = params(Some(bob.addr()), CodecSpec::pcmu());
    engine
        .configure_leg("hold", LegSide::A, pa_.clone())
        .unwrap();
    engine
        .configure_leg("hold", LegSide::B, pb_.clone())
        .unwrap();
    let frame = ulaw(&tone(300.0, 4000.0, 160));
    // Hold: towards A we neither send nor take anything (inactive); towards B we may send
    // but drop what B sends (sendonly from our side).
    let mut held_a = pa_.clone();
    held_a.direction = MediaDirection::Inactive;
    let mut held_b = pb_.clone();
    held_b.direction = MediaDirection::SendOnly;
    engine.configure_leg("hold", LegSide::A, held_a).unwrap();
    engine.configure_leg("hold", LegSide::B, held_b).unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    for _ in 0..10 {
        alice.send_frame(&frame).await;
        bob.send_frame(&frame).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (at_bob, _) = collect(&bob.sock, IDLE, MAX).await;
    let (at_alice, _) = collect(&alice.sock, Duration::from_millis(100), MAX).await;
    assert!(at_bob.is_empty(), "nothing forwarded from an inactive leg");
    assert!(at_alice.is_empty(), "nothing sent to an inactive leg");
    // Resume.
    engine.configure_leg("hold", LegSide::A, pa_).unwrap();
    engine.configure_leg("hold", LegSide::B, pb_).unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    for _ in 0..10 {
        alice.send_frame(&frame).await;
        bob.send_frame(&frame).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (at_bob, _) = collect(&bob.sock, IDLE, MAX).await;
    let (at_alice, _) = collect(&alice.sock, Duration::from_millis(100), MAX).await;
    assert_eq!(at_bob.len(), 10);
    assert_eq!(at_alice.len(), 10);
    let report = engine.close_call("hold").await.unwrap();
    assert_eq!(report.a.unwrap().dropped_by_direction, 10);
    assert_eq!(report.b.unwrap().dropped_by_direction, 10);
}

fn rtcp_packets(data: &[u8]) -> Vec<String> {
    rtcp::iter_compound(data)
        .filter_map(Result::ok)
        .map(|p| match p {
            RtcpPacket::SenderReport(sr) => format!("SR{}", sr.reports.len()),
            RtcpPacket::ReceiverReport(rr) => format!("RR{}", rr.reports.len()),
            RtcpPacket::SourceDescription(chunks) => {
                let cname = chunks
                    .first()
                    .and_then(|c| c.cname())
                    .map(|c| String::from_utf8_lossy(c).to_string())
                    .unwrap_or_default();
                format!("SDES:{cname}")
            }
            _ => "other".into(),
        })
        .collect()
}

#[tokio::test]
async fn rtcp_mux_and_periodic_reports() {
    let (engine, _events) = engine();
    let (pa, pb) = two_legs(&engine, "mux").await;
    let mut alice = Phone::new(pa, 0x50, 0).await;
    let bob = Phone::new(pb, 0x60, 0).await;
    // Bob's RTCP goes to its own (non-muxed) socket at port+1 by default; give it explicitly.
    let bob_rtcp = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let mut a = params(Some(alice.addr()), CodecSpec::pcmu());
    a.rtcp_mux = true;
    let mut b = params(Some(bob.addr()), CodecSpec::pcmu());
    b.remote_rtcp = Some(bob_rtcp.local_addr().unwrap());
    engine.configure_leg("mux", LegSide::A, a).unwrap();
    engine.configure_leg("mux", LegSide::B, b).unwrap();
    let frame = ulaw(&tone(300.0, 4000.0, 160));
    // Alice sends RTP and an RTCP RR on the same port (rtcp-mux).
    let rr = {
        let mut out = Vec::new();
        rtcp::write_compound(
            &[RtcpPacket::ReceiverReport(rtcp::ReceiverReport {
                ssrc: 0x50,
                reports: vec![],
            })],
            &mut out,
        )
        .unwrap();
        out
    };
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..60 {
        tick.tick().await;
        alice.send_frame(&frame).await;
        if i % 20 == 0 {
            alice.sock.send_to(&rr, alice.target).await.unwrap();
        }
    }
    // Alice, muxed, gets RTCP on her RTP socket; Bob on his RTCP socket; Bob's RTP socket
    // only gets RTP.
    let mut buf = [0u8; 1500];
    let mut alice_rtcp = Vec::new();
    for _ in 0..20 {
        match tokio::time::timeout(Duration::from_millis(800), alice.sock.recv_from(&mut buf)).await
        {
            Ok(Ok((n, from))) => {
                assert_eq!(from.port(), pa, "muxed RTCP comes from the RTP port");
                alice_rtcp.extend(rtcp_packets(&buf[..n]));
            }
            _ => break,
        }
    }
    assert!(alice_rtcp.iter().any(|p| p == "RR1"), "{alice_rtcp:?}");
    assert!(
        alice_rtcp
            .iter()
            .any(|p| p.starts_with("SDES:callscope-mux@")),
        "{alice_rtcp:?}"
    );
    // Bob's reports: an RR before anything was sent to him, SRs once we sent media.
    let mut bob_kinds = Vec::new();
    for _ in 0..10 {
        let Ok(Ok((n, from))) =
            tokio::time::timeout(Duration::from_millis(800), bob_rtcp.recv_from(&mut buf)).await
        else {
            break;
        };
        assert_eq!(from.port(), pb + 1, "non-muxed RTCP from the odd port");
        bob_kinds.extend(rtcp_packets(&buf[..n]));
    }
    assert!(bob_kinds.iter().any(|p| p == "SR0"), "{bob_kinds:?}");
    let (rtp_at_bob, rtcp_at_bob_rtp) = collect(&bob.sock, IDLE, MAX).await;
    assert_eq!(rtp_at_bob.len(), 60);
    assert_eq!(rtcp_at_bob_rtp, 0);
    let report = engine.close_call("mux").await.unwrap();
    let qa = report.a.unwrap();
    assert_eq!(qa.rtcp_received, 3);
    assert_eq!(qa.packets_received, 60, "muxed RTCP not counted as RTP");
    assert_eq!(qa.malformed, 0);
    assert!(qa.rtcp_sent >= 2);
}

#[tokio::test]
async fn garbage_is_counted_and_never_panics() {
    let (engine, _events) = engine();
    let (pa, pb) = two_legs(&engine, "garbage").await;
    let mut alice = Phone::new(pa, 1, 0).await;
    let bob = Phone::new(pb, 2, 0).await;
    engine
        .configure_leg(
            "garbage",
            LegSide::A,
            params(Some(alice.addr()), CodecSpec::pcmu()),
        )
        .unwrap();
    engine
        .configure_leg(
            "garbage",
            LegSide::B,
            params(Some(bob.addr()), CodecSpec::pcmu()),
        )
        .unwrap();
    let target: SocketAddr = alice.target;
    let rtcp_target = SocketAddr::new(LOCALHOST, pa + 1);
    // Deterministic pseudo-random bytes (xorshift) of every length, plus crafted headers.
    // Sent in bursts, each waited for until the engine has counted it: 600 datagrams at
    // once overflow the socket's default receive buffer (~208 KiB of kernel accounting)
    // whenever the call's thread is descheduled, and the kernel's drops would look like
    // lost counts.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut malformed_sent = 0;
    for len in 0..300usize {
        if len > 0 && len % 50 == 0 {
            // RTP port garbage alone is one count per length past the first two.
            let floor = len as u64 - 2;
            counted(&engine, "garbage", |a| a.malformed >= floor).await;
        }
        let mut d = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            d.push(x as u8);
        }
        if len >= 2 {
            d[0] &= 0x3f; // version 0: never valid RTP or RTCP
        }
        alice.sock.send_to(&d, target).await.unwrap();
        alice.sock.send_to(&d, rtcp_target).await.unwrap();
        malformed_sent += 1;
    }
    // Version 2 with 15 CSRCs claimed but a 12-byte packet; an extension past the end.
    let mut csrc = vec![0x8f, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
    alice.sock.send_to(&csrc, target).await.unwrap();
    csrc[0] = 0x90;
    csrc.extend_from_slice(&[0xbe, 0xde, 0xff, 0xff]);
    alice.sock.send_to(&csrc, target).await.unwrap();
    // Valid RTP with a payload type nobody negotiated.
    let frame = ulaw(&tone(300.0, 4000.0, 160));
    let wrong = alice.packet(&frame, false, 96);
    alice.sock.send_to(&wrong, target).await.unwrap();
    counted(&engine, "garbage", |a| a.wrong_payload_type == 1).await;
    // The call still relays.
    for _ in 0..5 {
        alice.send_frame(&frame).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (at_bob, _) = collect(&bob.sock, IDLE, MAX).await;
    assert_eq!(at_bob.len(), 5);
    let report = engine.close_call("garbage").await.unwrap();
    let qa = report.a.unwrap();
    assert_eq!(qa.wrong_payload_type, 1);
    assert_eq!(qa.packets_received, 5);
    assert!(
        qa.malformed >= malformed_sent + 2,
        "malformed {} of {}",
        qa.malformed,
        malformed_sent * 2 + 2
    );
}

/// Waits (at most 5 s) until leg A's figures, as of the call's last housekeeping tick,
/// satisfy `done`; the assertions after it then say what was wrong.
async fn counted(engine: &MediaEngine, call: &str, done: impl Fn(&LegQuality) -> bool) {
    for _ in 0..100 {
        let snap = engine.snapshot(call).expect("call is open");
        if snap.a.as_ref().is_some_and(&done) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn close_frees_ports_and_they_are_not_reused_at_once() {
    let (engine, _events) = engine();
    let (pa, _pb) = two_legs(&engine, "c1").await;
    assert_eq!(
        engine.allocate_leg("c1", LegSide::A).await.unwrap(),
        pa,
        "same leg, same port"
    );
    assert_eq!(engine.open_calls(), 1);
    engine.close_call("c1").await.unwrap();
    assert_eq!(engine.ports_in_use(), 0);
    assert_eq!(engine.open_calls(), 0);
    // The freed pair can be bound by someone else now (the engine closed its sockets).
    let probe = UdpSocket::bind((LOCALHOST, pa)).await;
    assert!(probe.is_ok(), "port {pa} still bound after close");
    drop(probe);
    let next = engine.allocate_leg("c2", LegSide::A).await.unwrap();
    assert_ne!(next, pa, "a freed port goes to the back of the queue");
    assert!(engine.close_call("nope").await.is_none());
    assert!(
        engine
            .configure_leg("nope", LegSide::A, params(None, CodecSpec::pcmu()))
            .is_err()
    );
    assert!(
        engine
            .configure_leg("c2", LegSide::B, params(None, CodecSpec::pcmu()))
            .is_err()
    );
    engine.close_call("c2").await.unwrap();
}

#[tokio::test]
async fn round_trip_time_from_the_far_ends_report_blocks() {
    let (engine, _events) = engine();
    let (pa, pb) = two_legs(&engine, "rtt").await;
    let mut alice = Phone::new(pa, 0x51, 0).await;
    let bob = Phone::new(pb, 0x52, 0).await;
    let bob_rtcp = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    engine
        .configure_leg(
            "rtt",
            LegSide::A,
            params(Some(alice.addr()), CodecSpec::pcmu()),
        )
        .unwrap();
    let mut b = params(Some(bob.addr()), CodecSpec::pcmu());
    b.remote_rtcp = Some(bob_rtcp.local_addr().unwrap());
    engine.configure_leg("rtt", LegSide::B, b).unwrap();
    let frame = ulaw(&tone(300.0, 4000.0, 160));
    // Media towards Bob (from a task), so the engine sends him sender reports; Bob reads
    // his RTCP socket as it arrives, so no unaccounted delay sits between SR and answer.
    let sender = tokio::spawn(async move {
        for _ in 0..100 {
            alice.send_frame(&frame).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let mut buf = [0u8; 1500];
    let mut answered = false;
    for _ in 0..20 {
        let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_secs(1), bob_rtcp.recv_from(&mut buf)).await
        else {
            break;
        };
        let Some(sr) = rtcp::iter_compound(&buf[..n]).find_map(|p| match p {
            Ok(RtcpPacket::SenderReport(sr)) => Some(sr),
            _ => None,
        }) else {
            continue;
        };
        // Bob holds the SR for 30 ms, then answers with a block about the engine's stream.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let mut rr = Vec::new();
        rtcp::write_compound(
            &[RtcpPacket::ReceiverReport(rtcp::ReceiverReport {
                ssrc: 0x52,
                reports: vec![rtcp::ReportBlock {
                    ssrc: sr.ssrc,
                    last_sr: rtcp::compact_ntp(sr.ntp_timestamp),
                    delay_since_last_sr: 65536 * 30 / 1000,
                    ..Default::default()
                }],
            })],
            &mut rr,
        )
        .unwrap();
        bob_rtcp
            .send_to(&rr, SocketAddr::new(LOCALHOST, pb + 1))
            .await
            .unwrap();
        answered = true;
        break;
    }
    assert!(answered, "no sender report reached Bob");
    sender.abort();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = engine.close_call("rtt").await.unwrap();
    let qb = report.b.unwrap();
    assert_eq!(qb.rtcp_received, 1);
    let rtt = qb.rtt_ms.expect("RTT measured");
    // Loopback: what remains after DLSR takes off the 30 ms hold is scheduling delay, so a
    // value of 30 ms or more would mean DLSR was ignored.
    assert!((0.0..15.0).contains(&rtt), "rtt {rtt} ms");
}
