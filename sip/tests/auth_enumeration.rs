//! No extension enumeration: an unknown user gets exactly the challenge and the failure a
//! known user with a wrong password gets (status, header names and values except the
//! per-request nonce), and comparable timing. Trunk ACL sources are not challenged.

mod sipcore_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use callscope_sip::auth::DigestAuthenticator;
use callscope_sip::config::AuthConfig;
use callscope_sip::directory::SipTrunk;
use callscope_sip::handler::{AuthOutcome, RequestAuthenticator};
use callscope_sip::security::SharedGuard;
use callscope_sip::server::SipCounters;
use sipcore_support::*;

fn directory() -> MemoryDirectory {
    MemoryDirectory::default().with_user(REALM, "1001", "s3cret-1001")
}

async fn attempt(server: std::net::SocketAddr, user: &str) -> (Reply, Reply, Duration) {
    let mut phone = UdpPhone::new(server, user, REALM).await;
    let contact = format!("Contact: <sip:{user}@127.0.0.1:5999>\r\n");
    let req = phone.register_request(&contact);
    let challenge = phone.transact(&req).await.expect("challenge");
    let chosen = challenge.all("www-authenticate")[0].to_string();
    let uri = format!("sip:{REALM}");
    let auth = phone.authorization(&chosen, "REGISTER", &uri, "wrong-password", 1);
    let req = phone.register_request(&format!("{contact}Authorization: {auth}\r\n"));
    let started = Instant::now();
    let failure = phone.transact(&req).await.expect("failure");
    (challenge, failure, started.elapsed())
}

#[tokio::test]
async fn unknown_user_and_wrong_password_look_the_same() {
    let server = start(test_config(), directory()).await;
    let addr = server.udp_addr().unwrap();
    let (known_challenge, known_failure, _) = attempt(addr, "1001").await;
    let (unknown_challenge, unknown_failure, _) = attempt(addr, "1999").await;
    assert_eq!(known_challenge.status, 401);
    assert_eq!(known_challenge.status, unknown_challenge.status);
    assert_eq!(known_challenge.shape(), unknown_challenge.shape());
    assert_eq!(known_failure.status, 403, "{}", known_failure.raw);
    assert_eq!(known_failure.status, unknown_failure.status);
    assert_eq!(known_failure.shape(), unknown_failure.shape());
    assert_eq!(
        known_failure.raw.len()
            - known_failure.first("call-id").unwrap().len()
            - known_failure.first("via").unwrap().len()
            - known_failure.first("from").unwrap().len()
            - known_failure.first("to").unwrap().len(),
        unknown_failure.raw.len()
            - unknown_failure.first("call-id").unwrap().len()
            - unknown_failure.first("via").unwrap().len()
            - unknown_failure.first("from").unwrap().len()
            - unknown_failure.first("to").unwrap().len()
    );
    assert_eq!(server.counters().auth_failures, 2);
    server.shutdown().await;
}

/// Timing, measured at the authenticator (no network jitter): the median time to reject an
/// unknown user is within a small factor of a known user's.
#[tokio::test]
async fn rejection_timing_does_not_depend_on_the_user_existing() {
    let directory: Arc<dyn callscope_sip::directory::Directory> = Arc::new(directory());
    let security = callscope_sip::config::SecurityConfig {
        auth_failures_before_ban: u32::MAX,
        ..Default::default()
    };
    let auth = DigestAuthenticator::new(
        &AuthConfig::default(),
        directory,
        Arc::new(SharedGuard::new(security)),
        Arc::new(SipCounters::default()),
        "test".into(),
    );
    let source = "127.0.0.1:5999".parse().unwrap();
    let request_for = |user: &str| {
        let realm = REALM;
        let nonce = auth.make_nonce(
            realm,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64,
        );
        let text = format!(
            "REGISTER sip:{realm} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKx\r\nFrom: <sip:{user}@{realm}>;tag=a\r\nTo: <sip:{user}@{realm}>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nAuthorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"sip:{realm}\", response=\"00000000000000000000000000000000\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"x\"\r\nContent-Length: 0\r\n\r\n"
        );
        rsipstack::sip::Request::try_from(text.as_str()).unwrap()
    };
    let measure = |user: &str| {
        let req = request_for(user);
        let auth = &auth;
        async move {
            let mut times = Vec::new();
            for _ in 0..300 {
                let t = Instant::now();
                let outcome = auth.authenticate(&req, source, false).await;
                times.push(t.elapsed());
                assert!(
                    matches!(outcome, AuthOutcome::Respond(ref r) if r.status_code.code() == 403)
                );
            }
            times.sort();
            times[times.len() / 2]
        }
    };
    let known = measure("1001").await;
    let unknown = measure("1999").await;
    let (lo, hi) = if known < unknown {
        (known, unknown)
    } else {
        (unknown, known)
    };
    assert!(
        hi.as_nanos() <= lo.as_nanos() * 3 + 20_000,
        "known {known:?} unknown {unknown:?}"
    );
}

#[tokio::test]
async fn invites_from_a_trunk_source_are_not_challenged_others_get_407() {
    let trunk = SipTrunk {
        org_id: "org-acme.test".into(),
        trunk_id: "trunk-1".into(),
        name: "carrier".into(),
        outbound_proxy: "127.0.0.2:5060".parse().unwrap(),
        username: None,
        password: None,
        inbound_acl: vec![("127.0.0.2".parse().unwrap(), 32)],
    };
    let directory: Arc<dyn callscope_sip::directory::Directory> =
        Arc::new(directory().with_trunk(trunk));
    let auth = DigestAuthenticator::new(
        &AuthConfig::default(),
        directory,
        Arc::new(SharedGuard::new(Default::default())),
        Arc::new(SipCounters::default()),
        "test".into(),
    );
    let invite = rsipstack::sip::Request::try_from(
        "INVITE sip:+15551234567@acme.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKt\r\nFrom: <sip:+15559876543@carrier.test>;tag=a\r\nTo: <sip:+15551234567@acme.test>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    let from_trunk = auth
        .authenticate(&invite, "127.0.0.2:5060".parse().unwrap(), true)
        .await;
    assert!(matches!(from_trunk, AuthOutcome::Trunk(ref t) if t.trunk_id == "trunk-1"));
    let elsewhere = auth
        .authenticate(&invite, "127.0.0.3:5060".parse().unwrap(), true)
        .await;
    match elsewhere {
        AuthOutcome::Respond(r) => {
            assert_eq!(r.status_code.code(), 407);
            let challenges: Vec<String> = r
                .headers
                .iter()
                .filter_map(|h| match h {
                    rsipstack::sip::Header::ProxyAuthenticate(p) => Some(p.value().to_string()),
                    _ => None,
                })
                .collect();
            assert_eq!(challenges.len(), 2);
            assert!(challenges[0].contains("algorithm=SHA-256"));
            assert!(challenges[1].contains("algorithm=MD5"));
            // Realm of an INVITE is the caller's (From) domain.
            assert!(challenges[0].contains("realm=\"carrier.test\""));
        }
        other => panic!("expected a 407, got {other:?}"),
    }
}

#[tokio::test]
async fn expired_nonce_gets_a_stale_challenge_not_a_failure() {
    let directory: Arc<dyn callscope_sip::directory::Directory> = Arc::new(directory());
    let counters = Arc::new(SipCounters::default());
    let config = AuthConfig {
        nonce_ttl_s: 1,
        nonce_secret: "fixed".into(),
        ..Default::default()
    };
    let auth = DigestAuthenticator::new(
        &config,
        directory,
        Arc::new(SharedGuard::new(Default::default())),
        counters.clone(),
        "test".into(),
    );
    let old = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 10_000;
    let nonce = auth.make_nonce(REALM, old);
    let ha1 = md5_hex(&format!("1001:{REALM}:s3cret-1001"));
    let ha2 = md5_hex(&format!("REGISTER:sip:{REALM}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:00000001:x:auth:{ha2}"));
    let text = format!(
        "REGISTER sip:{REALM} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKx\r\nFrom: <sip:1001@{REALM}>;tag=a\r\nTo: <sip:1001@{REALM}>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nAuthorization: Digest username=\"1001\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"sip:{REALM}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"x\"\r\nContent-Length: 0\r\n\r\n"
    );
    let req = rsipstack::sip::Request::try_from(text.as_str()).unwrap();
    match auth
        .authenticate(&req, "127.0.0.1:5999".parse().unwrap(), false)
        .await
    {
        AuthOutcome::Respond(r) => {
            assert_eq!(r.status_code.code(), 401);
            assert!(r.to_string().contains("stale=true"), "{r}");
        }
        other => panic!("expected a stale challenge, got {other:?}"),
    }
    assert_eq!(counters.snapshot().auth_failures, 0);
    // The same credentials with a fresh nonce succeed (the HA1 was right).
    let nonce = auth.make_nonce(REALM, old + 10_000);
    let response = md5_hex(&format!("{ha1}:{nonce}:00000001:x:auth:{ha2}"));
    let text2 = text
        .replace(
            &text[text.find("nonce=\"").unwrap()..text.find("\", uri").unwrap()],
            &format!("nonce=\"{nonce}"),
        )
        .replace(
            &text[text.find("response=\"").unwrap()..text.find("\", algorithm").unwrap()],
            &format!("response=\"{response}"),
        );
    let req = rsipstack::sip::Request::try_from(text2.as_str()).unwrap();
    assert!(
        matches!(auth.authenticate(&req, "127.0.0.1:5999".parse().unwrap(), false).await, AuthOutcome::User(ref u) if u.extension == "1001")
    );
}
