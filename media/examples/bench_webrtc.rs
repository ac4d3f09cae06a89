//! CPU of the media engine per transcoded, recorded WebRTC ⇄ SIP call.
//!
//! `cargo run --release -p callscope-media --example bench_webrtc -- [calls] [seconds] [opus complexity] [opus recording rate]`
//!
//! The last argument is `EngineConfig::opus_recording_rate` (48000 or 16000).
//!
//! Each call: an aiortc peer (all peers in one Python process, from the test harness's
//! cached venv) plays espeak-ng speech over Opus/DTLS-SRTP into a WebRTC leg; the other leg
//! is a plain RTP phone sending PCMU every 20 ms; the engine transcodes Opus ⇄ PCMU both
//! ways and records both channels. The engine runs on its own single-worker runtime
//! (`engine-rt`) and its media threads (`callscope-media`, counted with it), recording threads are `callscope-rec`, the phones run on `phones`; CPU
//! is read per thread from /proc/self/task/*/schedstat, so aiortc's and the phones' work
//! is not counted.

#[path = "../tests/browser/mod.rs"]
mod browser;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use callscope_media::codec::CodecSpec;
use callscope_media::engine::{
    EngineConfig, LegParams, LegSide, MediaDirection, MediaEngine, MediaEvent, RecordingSpec,
    WebRtcState,
};
use callscope_media::g711;
use callscope_media::rtp::RtpBuilder;
use tokio::net::UdpSocket;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn thread_cpu_ns(prefix: &str) -> u64 {
    let mut total = 0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let calls: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(5);
    let seconds: u64 = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(20);
    let complexity: Option<u8> = args.get(3).and_then(|v| v.parse().ok());
    let recording_rate: Option<u32> = args.get(4).and_then(|v| v.parse().ok());
    let dir = tempfile::tempdir().expect("tmp");

    let engine_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("engine-rt")
        .enable_all()
        .build()
        .expect("engine runtime");
    let phones_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("phones")
        .enable_all()
        .build()
        .expect("phones runtime");

    let mut cfg = EngineConfig::local(LOCAL);
    cfg.port_min = 30000;
    cfg.port_max = 39999;
    if let Some(c) = complexity {
        cfg.transcode_opus_complexity = c;
    }
    if let Some(r) = recording_rate {
        cfg.opus_recording_rate = r;
    }
    println!(
        "opus complexity (G.711 → Opus) {}",
        cfg.transcode_opus_complexity
    );
    println!("opus recording rate       {}", cfg.opus_recording_rate);
    let (engine, mut events) = engine_rt.block_on(async { MediaEngine::new(cfg) });

    let speech = callscope_testkit::audio_compare::speech_wav(
        &dir.path().join("agent.wav"),
        "en-us",
        "Thank you for calling. My name is Alice, how can I help you today?",
        48000,
        seconds as f64 + 8.0,
    )
    .expect("speech");
    let record = dir.path().join("heard.wav");
    let mut peers = phones_rt.block_on(browser::AiortcPeer::start_many(
        &speech,
        &record,
        seconds as f64 + 6.0,
        "",
        calls,
    ));
    assert_eq!(peers.offers.len(), calls);

    let received = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + Duration::from_secs(seconds + 5);
    let mut answers = Vec::new();
    let mut ids = Vec::new();
    for (i, offer) in peers.offers.clone().iter().enumerate() {
        let id = format!("bench-webrtc-{i}");
        let answer = engine_rt
            .block_on(engine.open_webrtc_leg(&id, LegSide::A, offer))
            .expect("answer");
        answers.push(answer);
        let pb = engine_rt
            .block_on(engine.allocate_leg(&id, LegSide::B))
            .expect("leg B");
        let sock = phones_rt
            .block_on(UdpSocket::bind((LOCAL, 0)))
            .expect("phone");
        engine
            .configure_leg(
                &id,
                LegSide::B,
                LegParams {
                    remote_rtp: Some(sock.local_addr().expect("addr")),
                    remote_rtcp: None,
                    rtcp_mux: false,
                    codec: CodecSpec::pcmu(),
                    telephone_event_pt: Some(101),
                    direction: MediaDirection::SendRecv,
                },
            )
            .expect("configure");
        engine
            .start_recording(
                &id,
                RecordingSpec {
                    final_path: dir.path().join(format!("{id}.wav")),
                    agent_side: LegSide::A,
                },
            )
            .expect("record");
        phones_rt.spawn(phone(sock, pb, stop_at, received.clone()));
        ids.push(id);
    }
    phones_rt.block_on(peers.answer_all(&answers));
    let connected = engine_rt.block_on(async {
        let mut n = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while n < calls {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(MediaEvent::WebRtc {
                    state: WebRtcState::Connected,
                    ..
                })) => n += 1,
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        n
    });
    println!("calls                     {calls} ({connected} WebRTC legs connected)");

    std::thread::sleep(Duration::from_secs(2));
    let (e0, r0, p0) = (
        thread_cpu_ns("engine-rt") + thread_cpu_ns("callscope-media"),
        thread_cpu_ns("callscope-rec"),
        thread_cpu_ns("phones"),
    );
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let wall = t0.elapsed().as_secs_f64();
    let (e1, r1, p1) = (
        thread_cpu_ns("engine-rt") + thread_cpu_ns("callscope-media"),
        thread_cpu_ns("callscope-rec"),
        thread_cpu_ns("phones"),
    );
    let pct = |ns: u64| ns as f64 / 1e9 / wall * 100.0;
    let (engine_pct, rec_pct) = (pct(e1 - e0), pct(r1 - r0));
    println!("window                    {wall:.1} s");
    println!(
        "engine thread CPU         {engine_pct:.2} % of a core ({:.3} % per call)",
        engine_pct / calls as f64
    );
    println!(
        "recording threads CPU     {rec_pct:.2} % ({:.4} % per call)",
        rec_pct / calls as f64
    );
    println!(
        "engine + recording        {:.3} % of a core per call",
        (engine_pct + rec_pct) / calls as f64
    );
    println!("phones (not engine) CPU   {:.2} %", pct(p1 - p0));

    let mut summary = Vec::new();
    engine_rt.block_on(async {
        for id in &ids {
            if let Some(report) = engine.close_call(id).await
                && let (Some(a), Some(b)) = (report.a, report.b)
            {
                summary.push((a.packets_received, a.lost, b.packets_received, b.lost));
            }
        }
    });
    let (mut ar, mut al, mut br, mut bl) = (0, 0, 0, 0);
    for (a, la, b, lb) in summary {
        ar += a;
        al += la;
        br += b;
        bl += lb;
    }
    println!("webrtc legs: {ar} packets in, {al} lost; phone legs: {br} in, {bl} lost");
    println!(
        "packets phones received  {}",
        received.load(Ordering::Relaxed)
    );
    peers.kill();
}

async fn phone(sock: UdpSocket, port: u16, stop_at: Instant, received: Arc<AtomicU64>) {
    let sock = Arc::new(sock);
    let reader = sock.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while Instant::now() < stop_at {
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_millis(500), reader.recv_from(&mut buf)).await
            {
                received.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let to = SocketAddr::new(LOCAL, port);
    let tone: Vec<i16> = (0..8000)
        .map(|i| {
            (6000.0
                * (2.0 * std::f64::consts::PI * (300.0 + i as f64 / 20.0) * i as f64 / 8000.0)
                    .sin()) as i16
        })
        .collect();
    let mut pkt = Vec::with_capacity(200);
    let mut payload = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let (mut seq, mut ts) = (1u16, 0u32);
    let mut frame = 0usize;
    while Instant::now() < stop_at {
        tick.tick().await;
        let start = (frame % 50) * 160;
        payload.clear();
        g711::encode_ulaw(&tone[start..start + 160], &mut payload);
        pkt.clear();
        let _ = RtpBuilder {
            payload_type: 0,
            sequence: seq,
            timestamp: ts,
            ssrc: 7,
            payload: &payload,
            ..RtpBuilder::default()
        }
        .write(&mut pkt);
        let _ = sock.send_to(&pkt, to).await;
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(160);
        frame += 1;
    }
}
