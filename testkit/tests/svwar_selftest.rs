//! svwar against a deliberately leaky registrar (a tiny UDP responder in this test that
//! answers 401 for existing extensions and 404 for the rest — exactly the leak callscope
//! must not have): proves the svwar driver finds and parses what a leak reveals.

use callscope_testkit::svwar;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Replies to each request copying Via/From/To/Call-ID/CSeq; `existing` get 401.
fn leaky_registrar(sock: UdpSocket, existing: &'static [&'static str], stop: Arc<AtomicBool>) {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 65535];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if text.starts_with("SIP/2.0") || text.starts_with("ACK") {
            continue;
        }
        let copied: Vec<&str> = text
            .split("\r\n")
            .filter(|l| {
                let lower = l.to_ascii_lowercase();
                ["via:", "from:", "to:", "call-id:", "cseq:"]
                    .iter()
                    .any(|h| lower.starts_with(h))
            })
            .collect();
        let to = copied
            .iter()
            .find(|l| l.to_ascii_lowercase().starts_with("to:"))
            .copied()
            .unwrap_or("");
        let user = to
            .split("sip:")
            .nth(1)
            .and_then(|r| r.split('@').next())
            .unwrap_or("");
        let status = if existing.contains(&user) {
            "401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"leaky\", nonce=\"1\""
        } else {
            "404 Not Found"
        };
        let reply = format!(
            "SIP/2.0 {status}\r\n{}\r\nContent-Length: 0\r\n\r\n",
            copied.join("\r\n")
        );
        let _ = sock.send_to(reply.as_bytes(), from);
    }
}

#[test]
fn svwar_enumerates_a_leaky_registrar() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let server = std::thread::spawn(move || leaky_registrar(sock, &["201", "204"], s2));

    let report = svwar::scan(addr, "200-206", "REGISTER", Duration::from_secs(30)).unwrap();
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();

    let mut exts: Vec<&str> = report.found.iter().map(|f| f.extension.as_str()).collect();
    exts.sort();
    assert_eq!(exts, ["201", "204"], "svwar output:\n{}", report.output);
    assert!(report.found.iter().all(|f| f.authentication == "reqauth"));
}
