//! Hostile and broken input against the real `callscope serve`: malformed datagrams are
//! answered 400 (or dropped when no response can be addressed), counted in /metrics, and the
//! server keeps serving.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use callscope_testkit::callscope::Callscope;

/// Sends one datagram from a fresh 127.0.0.1 socket; the status code of the reply that
/// arrives within `wait`, if any.
fn send_and_listen(server: SocketAddr, payload: &[u8], wait: Duration) -> Option<u16> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(wait)).unwrap();
    socket.send_to(payload, server).unwrap();
    let mut buf = [0u8; 65536];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]);
    let first = text.lines().next()?;
    first
        .strip_prefix("SIP/2.0 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
}

fn options_request(server: SocketAddr, local: SocketAddr, n: u32) -> String {
    format!(
        "OPTIONS sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-opt-{n};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p{n}\r\nTo: <sip:{server}>\r\n\
         Call-ID: options-{n}@127.0.0.1\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

/// OPTIONS from a fresh socket: the status of the answer.
fn options(server: SocketAddr, n: u32) -> Option<u16> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let local = socket.local_addr().unwrap();
    socket
        .send_to(options_request(server, local, n).as_bytes(), server)
        .unwrap();
    let mut buf = [0u8; 65536];
    let (len, _) = socket.recv_from(&mut buf).ok()?;
    String::from_utf8_lossy(&buf[..len])
        .strip_prefix("SIP/2.0 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
}

/// SIGTERM, and the server must exit cleanly.
fn stop_cleanly(mut server: Callscope) {
    let status = server.shutdown(Duration::from_secs(15)).unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "callscope exited with {status:?}\n{}",
        server.log()
    );
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sip/tests/torture");
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("invalid_") && n.ends_with(".sip"))
        })
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn hand_made() -> Vec<(String, Vec<u8>)> {
    let mut huge =
        b"INVITE sip:1@x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKh\r\n".to_vec();
    huge.extend(std::iter::repeat_n(b'A', 60_000));
    vec![
        ("random bytes".into(), (0..512u32).map(|i| (i * 7919 % 251) as u8).collect()),
        ("NUL bytes".into(), vec![0u8; 300]),
        ("truncated INVITE".into(), b"INVITE sip:1001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-t\r\nFrom: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:1001@127.0.0.1>\r\nCall-ID: trunc@x\r\nCSeq: 1 INV".to_vec()),
        ("no headers at all".into(), b"REGISTER sip:127.0.0.1 SIP/2.0\r\n\r\n".to_vec()),
        ("HTTP request".into(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("one huge line".into(), huge),
        ("Content-Length lies".into(), b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-cl\r\nFrom: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: cl@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 99999\r\n\r\nshort".to_vec()),
    ]
}

#[test]
fn malformed_datagrams_get_400_or_dropped_counted_and_the_server_keeps_serving() {
    let server = Callscope::builder(env!("CARGO_BIN_EXE_callscope"))
        .user("1001", "alice-pw-0001")
        .env("CALLSCOPE_LOG", "info,rsipstack=warn,callscope_sip=debug")
        .start()
        .expect("start callscope");
    assert_eq!(
        options(server.sip_addr(), 1),
        Some(200),
        "OPTIONS before the storm"
    );
    let before = server.metrics().unwrap();
    let get =
        |m: &std::collections::HashMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);

    let cases: Vec<(String, Vec<u8>)> = corpus().into_iter().chain(hand_made()).collect();
    assert!(cases.len() > 30, "corpus missing? {}", cases.len());
    let mut answered = 0u32;
    let mut accepted = Vec::new();
    let mut table = Vec::new();
    for (i, (name, bytes)) in cases.iter().enumerate() {
        let reply = send_and_listen(server.sip_addr(), bytes, Duration::from_millis(400));
        if let Some(code) = reply {
            if !(400..700).contains(&code) {
                accepted.push(format!("{name}: {code}"));
            } else {
                answered += 1;
            }
        }
        table.push(format!("{name}: {reply:?}"));
        // Interleaved OPTIONS: the server keeps answering well-formed requests.
        if i % 10 == 9 {
            assert_eq!(
                options(server.sip_addr(), 100 + i as u32),
                Some(200),
                "after {name}"
            );
        }
    }
    eprintln!("{}", table.join("\n"));
    assert!(
        accepted.is_empty(),
        "malformed messages accepted: {accepted:#?}"
    );
    assert_eq!(
        options(server.sip_addr(), 2),
        Some(200),
        "OPTIONS after the storm"
    );
    let after = server.metrics().unwrap();
    let delta = |k: &str| get(&after, k) - get(&before, k);
    eprintln!(
        "answered {answered}/{}; parse_errors +{}, bad_requests_sent +{}",
        cases.len(),
        delta("callscope_sip_parse_errors"),
        delta("callscope_sip_bad_requests_sent")
    );
    // Every refused datagram is counted; every 400 we saw is counted as sent.
    assert!(
        delta("callscope_sip_parse_errors") >= cases.len() as f64 - 2.0,
        "not every malformed datagram was counted"
    );
    assert_eq!(
        delta("callscope_sip_bad_requests_sent"),
        f64::from(answered)
    );
    // The addressable invalid requests of the corpus are answered: most of them.
    assert!(answered as usize >= cases.len() / 2, "{}", table.join("\n"));
    stop_cleanly(server);
}
