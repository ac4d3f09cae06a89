//! Hostile input over real UDP sockets: malformed datagrams get a 400 when addressable (else
//! are dropped) and are counted; repeated failed authentication bans the source (its packets
//! are then dropped unanswered) while other sources carry on; a REGISTER flood from one
//! source is rate-limited (503 + Retry-After) without starving another source.

mod sipcore_support;

use std::time::Duration;

use sipcore_support::*;

fn directory() -> MemoryDirectory {
    MemoryDirectory::default()
        .with_user(REALM, "1001", "s3cret-1001")
        .with_user(REALM, "1002", "s3cret-1002")
}

#[tokio::test]
async fn malformed_datagrams_get_400_or_are_dropped_and_are_counted() {
    let server = start(test_config(), directory()).await;
    let mut phone = UdpPhone::new(server.udp_addr().unwrap(), "1001", REALM).await;

    // Addressable but broken: CSeq method differs from the request method.
    let req = phone.request("OPTIONS", &format!("sip:{REALM}"), "1001", "");
    let bad = req.replace(" OPTIONS\r\nUser-Agent", " INVITE\r\nUser-Agent");
    assert_ne!(bad, req);
    let reply = phone.transact(&bad).await.expect("a 400");
    assert_eq!(reply.status, 400, "{}", reply.raw);
    assert!(reply.first("warning").unwrap().contains("CSeq"));
    assert!(reply.first("to").unwrap().contains("tag="));

    // A header line without a colon.
    let bad = phone
        .request("OPTIONS", &format!("sip:{REALM}"), "1001", "")
        .replace("Max-Forwards: 70", "Max-Forwards 70");
    assert_eq!(phone.transact(&bad).await.expect("a 400").status, 400);

    // Content-Length larger than the datagram.
    let bad = phone
        .request("OPTIONS", &format!("sip:{REALM}"), "1001", "")
        .replace("Content-Length: 0", "Content-Length: 900");
    assert_eq!(phone.transact(&bad).await.expect("a 400").status, 400);

    // Unsupported version.
    let bad = phone
        .request("OPTIONS", &format!("sip:{REALM}"), "1001", "")
        .replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia");
    assert_eq!(phone.transact(&bad).await.expect("a 505").status, 505);

    // Not addressable (no Call-ID) and plain garbage: dropped, no answer.
    let bad = phone
        .request("OPTIONS", &format!("sip:{REALM}"), "1001", "")
        .replace(&format!("Call-ID: {}\r\n", phone.call_id), "");
    phone.send_raw(bad.as_bytes()).await;
    phone.send_raw(b"\x00\xff\xfe garbage \r\n\r\n").await;
    phone.send_raw(&[0xC3u8; 3000]).await;
    assert!(phone.recv(Duration::from_millis(300)).await.is_none());

    let counters = server.counters();
    assert_eq!(counters.parse_errors, 7, "{counters:?}");
    assert_eq!(counters.bad_requests_sent, 4, "{counters:?}");
    assert!(counters.messages_received >= 7);

    // The server still answers well-formed requests.
    let req = phone.request("OPTIONS", &format!("sip:{REALM}"), "1001", "");
    assert_eq!(phone.transact(&req).await.unwrap().status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn repeated_auth_failures_ban_the_source_only() {
    let mut config = test_config();
    config.security.auth_failures_before_ban = 3;
    config.security.ban_duration_s = 60;
    let server = start(config, directory()).await;
    let addr = server.udp_addr().unwrap();

    let mut attacker = UdpPhone::bind("127.0.0.2:0", addr, "1001", REALM).await;
    for _ in 0..3 {
        let (_, reply) = attacker
            .register("guess", "MD5", "Contact: <sip:1001@127.0.0.2:5999>\r\n")
            .await;
        assert_eq!(reply.status, 403, "{}", reply.raw);
    }
    assert_eq!(server.counters().bans, 1);
    // Banned: even an OPTIONS gets no answer now.
    let req = attacker.request("OPTIONS", &format!("sip:{REALM}"), "1001", "");
    attacker.send_raw(req.as_bytes()).await;
    assert!(attacker.recv(Duration::from_millis(500)).await.is_none());
    assert!(server.counters().banned_drops >= 1);
    // A new TCP connection from the banned address is refused/closed without an answer.

    // Another source registers fine.
    let mut phone = UdpPhone::bind("127.0.0.1:0", addr, "1002", REALM).await;
    let (_, reply) = phone
        .register(
            "s3cret-1002",
            "SHA-256",
            "Contact: <sip:1002@127.0.0.1:5999>\r\n",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    server.shutdown().await;
}

#[tokio::test]
async fn a_register_flood_from_one_source_does_not_starve_another() {
    let mut config = test_config();
    config.security.requests_per_second = 20.0;
    config.security.request_burst = 20.0;
    let server = start(config, directory()).await;
    let addr = server.udp_addr().unwrap();

    let mut flooder = UdpPhone::bind("127.0.0.3:0", addr, "1001", REALM).await;
    let flood: Vec<String> = (0..400)
        .map(|_| flooder.register_request("Contact: <sip:1001@127.0.0.3:5999>\r\n"))
        .collect();
    let flood_task = tokio::spawn(async move {
        for req in &flood {
            flooder.send_raw(req.as_bytes()).await;
        }
        // Collect what came back.
        let mut statuses = Vec::new();
        while let Some(r) = flooder.recv(Duration::from_millis(500)).await {
            statuses.push((r.status, r.first("retry-after").map(str::to_string)));
        }
        statuses
    });

    // Meanwhile a phone on another address registers, three times over.
    let mut phone = UdpPhone::bind("127.0.0.1:0", addr, "1002", REALM).await;
    for _ in 0..3 {
        let (_, reply) = phone
            .register(
                "s3cret-1002",
                "SHA-256",
                "Contact: <sip:1002@127.0.0.1:5999>\r\n",
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.raw);
    }

    let statuses = flood_task.await.unwrap();
    let challenged = statuses.iter().filter(|(s, _)| *s == 401).count();
    let limited: Vec<_> = statuses.iter().filter(|(s, _)| *s == 503).collect();
    assert!((20..400).contains(&challenged), "401s: {challenged}");
    assert!(!limited.is_empty());
    assert!(limited.iter().all(|(_, retry)| retry.is_some()));
    assert!(server.counters().rate_limited >= limited.len() as u64);
    server.shutdown().await;
}
