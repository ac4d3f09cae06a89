//! Real UDP "phones" on 127.0.0.1 for the engine tests: they send G.711 RTP of a generated
//! tone at the real 20 ms cadence and collect what the engine sends them. Every loop is
//! bounded in count and time.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use callscope_media::codec::CodecSpec;
use callscope_media::engine::{
    EngineConfig, LegParams, LegSide, MediaDirection, MediaEngine, MediaEvent,
};
use callscope_media::g711;
use callscope_media::rtp::{RtpBuilder, RtpPacket};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// An engine on loopback. Tests share one wide high range: a pair another test (or another
/// program) holds is refused by the OS and skipped, which the engine must handle anyway.
pub fn engine() -> (MediaEngine, mpsc::Receiver<MediaEvent>) {
    engine_with(|_| {})
}

/// [`engine`] with some of its configuration changed by `adjust`.
pub fn engine_with(
    adjust: impl FnOnce(&mut EngineConfig),
) -> (MediaEngine, mpsc::Receiver<MediaEvent>) {
    let mut cfg = EngineConfig::local(LOCALHOST);
    cfg.port_min = 42000;
    cfg.port_max = 47999;
    cfg.rtcp_interval = Duration::from_millis(500);
    cfg.flush_interval = Duration::from_millis(500);
    adjust(&mut cfg);
    MediaEngine::new(cfg)
}

/// `n` samples of a sine at `freq` Hz and 8 kHz, amplitude `amp`.
pub fn tone(freq: f64, amp: f64, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = i as f64 / 8000.0;
            (amp * (2.0 * std::f64::consts::PI * freq * t).sin()).round() as i16
        })
        .collect()
}

pub fn ulaw(samples: &[i16]) -> Vec<u8> {
    let mut out = Vec::new();
    g711::encode_ulaw(samples, &mut out);
    out
}

pub fn alaw(samples: &[i16]) -> Vec<u8> {
    let mut out = Vec::new();
    g711::encode_alaw(samples, &mut out);
    out
}

pub fn decode_ulaw(payload: &[u8]) -> Vec<i16> {
    let mut out = Vec::new();
    g711::decode_ulaw(payload, &mut out);
    out
}

pub struct Phone {
    pub sock: UdpSocket,
    pub ssrc: u32,
    pub seq: u16,
    pub ts: u32,
    pub pt: u8,
    /// Where it sends (the engine's leg port).
    pub target: SocketAddr,
}

impl Phone {
    pub async fn new(target_port: u16, ssrc: u32, pt: u8) -> Phone {
        let sock = UdpSocket::bind((LOCALHOST, 0)).await.expect("bind phone");
        Phone {
            sock,
            ssrc,
            seq: 1000,
            ts: 160_000,
            pt,
            target: SocketAddr::new(LOCALHOST, target_port),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().expect("local addr")
    }

    pub fn packet(&self, payload: &[u8], marker: bool, pt: u8) -> Vec<u8> {
        RtpBuilder {
            marker,
            payload_type: pt,
            sequence: self.seq,
            timestamp: self.ts,
            ssrc: self.ssrc,
            payload,
            ..RtpBuilder::default()
        }
        .to_vec()
        .expect("build rtp")
    }

    /// Sends one 20 ms audio frame and advances sequence and timestamp.
    pub async fn send_frame(&mut self, payload: &[u8]) {
        let pkt = self.packet(payload, false, self.pt);
        self.sock.send_to(&pkt, self.target).await.expect("send");
        self.skip_frame(payload.len() as u32);
    }

    /// Advances as if a frame had been sent (a packet lost on the way).
    pub fn skip_frame(&mut self, samples: u32) {
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(samples);
    }
}

/// One RTP packet as received by a phone.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: SocketAddr,
    pub pt: u8,
    pub marker: bool,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
}

/// Reads what arrives on `sock` until `idle` passes without a datagram (or `max` total).
pub async fn collect(sock: &UdpSocket, idle: Duration, max: Duration) -> (Vec<Received>, usize) {
    let mut got = Vec::new();
    let mut other = 0;
    let mut buf = [0u8; 2048];
    let deadline = tokio::time::Instant::now() + max;
    for _ in 0..100_000 {
        let wait = idle.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => match RtpPacket::parse(&buf[..n]) {
                Ok(p) if !(192..=223).contains(&buf[1]) => got.push(Received {
                    from,
                    pt: p.payload_type,
                    marker: p.marker,
                    seq: p.sequence,
                    ts: p.timestamp,
                    ssrc: p.ssrc,
                    payload: p.payload.to_vec(),
                }),
                _ => other += 1,
            },
            _ => break,
        }
    }
    (got, other)
}

pub fn params(remote_rtp: Option<SocketAddr>, codec: CodecSpec) -> LegParams {
    LegParams {
        remote_rtp,
        remote_rtcp: None,
        rtcp_mux: false,
        codec,
        telephone_event_pt: None,
        direction: MediaDirection::SendRecv,
    }
}

/// Sets up a call with both legs allocated; returns the two engine ports.
pub async fn two_legs(engine: &MediaEngine, call: &str) -> (u16, u16) {
    let a = engine.allocate_leg(call, LegSide::A).await.expect("leg A");
    let b = engine.allocate_leg(call, LegSide::B).await.expect("leg B");
    (a, b)
}

/// A call whose two legs are configured toward two phones: Alice on leg A speaking
/// `a_codec`, Bob on leg B speaking `b_codec`, each phone sending with its SSRC and its
/// codec's payload type.
pub async fn bridged_phones(
    engine: &MediaEngine,
    call: &str,
    (a_ssrc, a_codec): (u32, CodecSpec),
    (b_ssrc, b_codec): (u32, CodecSpec),
) -> (Phone, Phone) {
    let (pa, pb) = two_legs(engine, call).await;
    let alice = Phone::new(pa, a_ssrc, a_codec.payload_type).await;
    let bob = Phone::new(pb, b_ssrc, b_codec.payload_type).await;
    engine
        .configure_leg(call, LegSide::A, params(Some(alice.addr()), a_codec))
        .expect("configure leg A");
    engine
        .configure_leg(call, LegSide::B, params(Some(bob.addr()), b_codec))
        .expect("configure leg B");
    (alice, bob)
}

/// Checks a received stream is one continuous stream: one SSRC, sequence +1 each packet,
/// timestamp +160 each packet (for streams relayed without loss).
pub fn assert_continuous(pkts: &[Received]) {
    assert_continuous_by(pkts, 160);
}

/// [`assert_continuous`] for a stream whose timestamps advance by `step` each packet
/// (960 for 20 ms of Opus).
pub fn assert_continuous_by(pkts: &[Received], step: u32) {
    assert!(!pkts.is_empty(), "no packets");
    let ssrc = pkts[0].ssrc;
    for w in pkts.windows(2) {
        assert_eq!(w[1].ssrc, ssrc, "SSRC changed");
        assert_eq!(
            w[1].seq,
            w[0].seq.wrapping_add(1),
            "sequence gap at {:?}",
            w[1]
        );
        assert_eq!(
            w[1].ts.wrapping_sub(w[0].ts),
            step,
            "timestamp step at seq {}",
            w[1].seq
        );
    }
}

/// Exact comparison of PCM with a readable failure: the first differing index, how many
/// samples differ, and where the zero runs are.
pub fn assert_same_pcm(got: &[i16], want: &[i16]) {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let diffs: Vec<usize> = (0..got.len()).filter(|&i| got[i] != want[i]).collect();
    if let Some(&first) = diffs.first() {
        let lo = first.saturating_sub(4);
        let hi = (first + 12).min(got.len());
        panic!(
            "{} samples differ, first at {} (frame {}): got {:?} want {:?}; last diff at {}",
            diffs.len(),
            first,
            first / 160,
            &got[lo..hi],
            &want[lo..hi],
            diffs.last().unwrap()
        );
    }
}
