//! CPU of the media engine per bridged, recorded G.711 call.
//!
//! `cargo run --release -p callscope-media --example bench_engine -- [calls] [seconds] [dir] [wav|opus]`
//!
//! The last argument is the recording format (default wav): with `opus` the recording threads
//! also encode every call, which is what `[sip.media] recording_threads` is sized for.
//!
//! The engine's control side runs on its own single-worker tokio runtime (`engine-rt`), its
//! call tasks on the engine's media threads (`callscope-media`; both counted as the
//! engine), the recording threads are `callscope-rec`, and the simulated phones (two UDP sockets per call
//! sending 20 ms PCMU frames both ways, reading everything relayed to them) run on a
//! separate runtime (`phones`). CPU time is read per thread from /proc/self/task, so the
//! phones' cost is reported apart from the engine's. RSS is the whole process (phones
//! included), so it is an upper bound for the engine.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use callscope_media::codec::CodecSpec;
use callscope_media::engine::{
    EngineConfig, LegParams, LegSide, MediaDirection, MediaEngine, RecordingSpec,
};
use callscope_media::g711;
use callscope_media::rtp::RtpBuilder;
use tokio::net::UdpSocket;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// CPU time in ns of every thread whose name starts with `prefix` (schedstat: exact, not
/// rounded to clock ticks as utime/stime are).
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

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let calls: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(50);
    let seconds: u64 = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(20);
    let dir = args
        .get(3)
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    // The extension is how the engine picks the recording's writer.
    let format = match args.get(4).map(String::as_str) {
        None | Some("wav") => "wav",
        Some("opus") => "opus",
        Some(other) => panic!("recording format must be wav or opus, not {other}"),
    };

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
    let (engine, _events) = engine_rt.block_on(async { MediaEngine::new(cfg) });
    let rss_before = rss_kib();

    // Set up calls on the engine runtime; phones on theirs.
    let received = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + Duration::from_secs(seconds + 2);
    let mut ids = Vec::new();
    for i in 0..calls {
        let id = format!("bench-{i}");
        let (pa, pb) = engine_rt.block_on(async {
            let a = engine.allocate_leg(&id, LegSide::A).await.expect("leg A");
            let b = engine.allocate_leg(&id, LegSide::B).await.expect("leg B");
            (a, b)
        });
        let (sa, sb) = phones_rt.block_on(async {
            (
                UdpSocket::bind((LOCAL, 0)).await.expect("phone"),
                UdpSocket::bind((LOCAL, 0)).await.expect("phone"),
            )
        });
        for (side, sock) in [(LegSide::A, &sa), (LegSide::B, &sb)] {
            engine
                .configure_leg(
                    &id,
                    side,
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
        }
        let path = dir.join(format!("bench-{i}-{}.{format}", std::process::id()));
        engine
            .start_recording(
                &id,
                RecordingSpec {
                    final_path: path,
                    agent_side: LegSide::B,
                },
            )
            .expect("record");
        let (received, sent) = (received.clone(), sent.clone());
        phones_rt.spawn(phone_pair(sa, sb, pa, pb, stop_at, received, sent));
        ids.push(id);
    }

    // Warm up 2 s, then measure.
    std::thread::sleep(Duration::from_secs(2));
    let (e0, r0, p0) = (
        thread_cpu_ns("engine-rt") + thread_cpu_ns("callscope-media"),
        thread_cpu_ns("callscope-rec"),
        thread_cpu_ns("phones"),
    );
    let recv0 = received.load(Ordering::Relaxed);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let wall = t0.elapsed().as_secs_f64();
    let (e1, r1, p1) = (
        thread_cpu_ns("engine-rt") + thread_cpu_ns("callscope-media"),
        thread_cpu_ns("callscope-rec"),
        thread_cpu_ns("phones"),
    );
    let relayed = received.load(Ordering::Relaxed) - recv0;
    let rss_during = rss_kib();

    let pct = |ns: u64| ns as f64 / 1e9 / wall * 100.0;
    let engine_pct = pct(e1 - e0);
    let rec_pct = pct(r1 - r0);
    println!("calls                     {calls}");
    println!("recording format          {format}");
    println!("window                    {wall:.1} s");
    println!("packets relayed/s         {:.0}", relayed as f64 / wall);
    println!(
        "engine thread CPU         {engine_pct:.2} % of a core ({:.4} % per call)",
        engine_pct / calls as f64
    );
    println!(
        "recording threads CPU     {rec_pct:.2} % ({:.4} % per call)",
        rec_pct / calls as f64
    );
    println!(
        "engine + recording        {:.4} % of a core per call",
        (engine_pct + rec_pct) / calls as f64
    );
    println!("phones (not engine) CPU   {:.2} %", pct(p1 - p0));
    println!(
        "RSS growth (whole process incl. phones) {:.0} KiB per call",
        rss_during.saturating_sub(rss_before) as f64 / calls as f64
    );

    let mut lost = 0i64;
    let mut expected = 0u64;
    engine_rt.block_on(async {
        for id in &ids {
            if let Some(report) = engine.close_call(id).await {
                for q in [report.a, report.b].into_iter().flatten() {
                    lost += q.lost;
                    expected += q.expected;
                }
                if let Some(rec) = report.recording {
                    let _ = std::fs::remove_file(rec.path);
                }
            }
        }
    });
    println!(
        "loss into the engine      {lost} of {expected}; sent by phones {}",
        sent.load(Ordering::Relaxed)
    );
    // Whole-run totals, for per-packet figures from counts taken over the whole process
    // (callgrind): two runs of different lengths, differenced, cancel setup and teardown.
    println!(
        "relayed to phones (whole run) {}",
        received.load(Ordering::Relaxed)
    );
}

async fn phone_pair(
    sa: UdpSocket,
    sb: UdpSocket,
    pa: u16,
    pb: u16,
    stop_at: Instant,
    received: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
) {
    let sa = Arc::new(sa);
    let sb = Arc::new(sb);
    for sock in [sa.clone(), sb.clone()] {
        let received = received.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while Instant::now() < stop_at {
                if let Ok(Ok(_)) =
                    tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf)).await
                {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    let ta = SocketAddr::new(LOCAL, pa);
    let tb = SocketAddr::new(LOCAL, pb);
    let tone: Vec<i16> = (0..160)
        .map(|i| (6000.0 * (i as f64 * 0.3).sin()) as i16)
        .collect();
    let mut payload = Vec::new();
    g711::encode_ulaw(&tone, &mut payload);
    let mut pkt = Vec::with_capacity(200);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let (mut seq, mut ts) = (1u16, 0u32);
    while Instant::now() < stop_at {
        tick.tick().await;
        // Each phone sends to the engine port of its own leg.
        for (sock, to, ssrc) in [(&sa, ta, 1u32), (&sb, tb, 2u32)] {
            pkt.clear();
            let _ = RtpBuilder {
                payload_type: 0,
                sequence: seq,
                timestamp: ts,
                ssrc,
                payload: &payload,
                ..RtpBuilder::default()
            }
            .write(&mut pkt);
            if sock.send_to(&pkt, to).await.is_ok() {
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(160);
    }
}
