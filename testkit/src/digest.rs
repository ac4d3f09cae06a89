//! A minimal SIP REGISTER client with digest authentication (RFC 2617 / RFC 8760): MD5 or
//! SHA-256, `qop=auth` when offered. SIPp 3.6 only computes MD5 and takes the first
//! challenge it sees, and baresip 1.0 gives up when SHA-256 is offered; this lets a test
//! register any address (e.g. the port a SIPp UAS will answer on) with either algorithm.

use crate::{Error, Result};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// Digest algorithm of a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn hex(self, text: &str) -> String {
        let bytes: Vec<u8> = match self {
            // md-5 and sha2 come in different `digest` versions here: name each trait.
            Algorithm::Md5 => <md5::Md5 as md5::Digest>::digest(text.as_bytes()).to_vec(),
            Algorithm::Sha256 => <sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()).to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// One `WWW-Authenticate: Digest ...` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub algorithm: Algorithm,
    pub opaque: Option<String>,
    pub qop_auth: bool,
}

/// Parses a Digest challenge value (without the header name). Unknown algorithms → `None`.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let rest = value.trim().strip_prefix("Digest")?.trim();
    let mut realm = None;
    let mut nonce = None;
    let mut algorithm = Algorithm::Md5;
    let mut opaque = None;
    let mut qop_auth = false;
    for (k, v) in split_params(rest) {
        match k.to_ascii_lowercase().as_str() {
            "realm" => realm = Some(v),
            "nonce" => nonce = Some(v),
            "opaque" => opaque = Some(v),
            "qop" => qop_auth = v.split(',').any(|q| q.trim().eq_ignore_ascii_case("auth")),
            "algorithm" => {
                algorithm = match v.to_ascii_uppercase().as_str() {
                    "MD5" => Algorithm::Md5,
                    "SHA-256" => Algorithm::Sha256,
                    _ => return None,
                }
            }
            _ => {}
        }
    }
    Some(Challenge {
        realm: realm?,
        nonce: nonce?,
        algorithm,
        opaque,
        qop_auth,
    })
}

/// `k=v` pairs separated by commas, values optionally quoted (commas inside quotes kept).
fn split_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars().chain(std::iter::once(',')) {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                if let Some((k, v)) = cur.split_once('=') {
                    out.push((k.trim().to_string(), v.trim().to_string()));
                }
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    out
}

/// The Authorization header value answering `ch` for `method` on `uri`.
pub fn authorization(
    ch: &Challenge,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
) -> String {
    let alg = ch.algorithm;
    let ha1 = alg.hex(&format!("{user}:{}:{password}", ch.realm));
    let ha2 = alg.hex(&format!("{method}:{uri}"));
    let (response, qop) = if ch.qop_auth {
        let cnonce = "0a4f113b";
        let nc = "00000001";
        (
            alg.hex(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", ch.nonce)),
            format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""),
        )
    } else {
        (alg.hex(&format!("{ha1}:{}:{ha2}", ch.nonce)), String::new())
    };
    let opaque = ch
        .opaque
        .as_ref()
        .map(|o| format!(", opaque=\"{o}\""))
        .unwrap_or_default();
    format!(
        "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm={}{qop}{opaque}",
        ch.realm,
        ch.nonce,
        alg.token()
    )
}

/// What a registration ended with.
#[derive(Debug, Clone)]
pub struct RegisterOutcome {
    pub status: u16,
    /// The algorithm of the challenge answered, if one was.
    pub algorithm: Option<Algorithm>,
    pub final_response: String,
}

/// Registers `user@domain` (the domain is the organization's realm) at `registrar` from
/// `local` (which becomes the Contact), answering a 401/407 with the first challenge whose
/// algorithm is in `prefer` (in that order).
pub fn register(
    registrar: SocketAddr,
    local: SocketAddr,
    user: &str,
    domain: &str,
    password: &str,
    expires: u32,
    prefer: &[Algorithm],
) -> Result<RegisterOutcome> {
    let sock = UdpSocket::bind(local).map_err(|e| Error::io(format!("binding {local}"), e))?;
    let local_port = local.port();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| Error::io("setting a socket timeout", e))?;
    let call_id = format!("reg-{local_port}-{}@testkit", std::process::id());
    let uri = format!("sip:{registrar}");
    let request = |cseq: u32, auth: Option<&str>| {
        format!(
            "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-tk{cseq}-{local_port};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{user}@{domain}>;tag=tk{local_port}\r\nTo: <sip:{user}@{domain}>\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{local}>\r\n\
             Expires: {expires}\r\n{auth}Content-Length: 0\r\n\r\n",
            auth = auth
                .map(|a| format!("Authorization: {a}\r\n"))
                .unwrap_or_default(),
        )
    };
    let first = exchange(&sock, registrar, &request(1, None))?;
    let status = status_of(&first)?;
    if status != 401 && status != 407 {
        return Ok(RegisterOutcome {
            status,
            algorithm: None,
            final_response: first,
        });
    }
    let challenges: Vec<Challenge> = first
        .split("\r\n")
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            let name = name.trim().to_ascii_lowercase();
            (name == "www-authenticate" || name == "proxy-authenticate")
                .then(|| parse_challenge(value))
                .flatten()
        })
        .collect();
    let chosen = prefer
        .iter()
        .find_map(|a| challenges.iter().find(|c| c.algorithm == *a))
        .ok_or_else(|| Error::Parse {
            what: "REGISTER challenge".into(),
            detail: format!("no challenge with an algorithm in {prefer:?}: {first}"),
        })?;
    let auth = authorization(chosen, user, password, "REGISTER", &uri);
    let second = exchange(&sock, registrar, &request(2, Some(&auth)))?;
    Ok(RegisterOutcome {
        status: status_of(&second)?,
        algorithm: Some(chosen.algorithm),
        final_response: second,
    })
}

/// Sends `msg` (retransmitting like a UDP client transaction, bounded) and returns the
/// first final response.
fn exchange(sock: &UdpSocket, to: SocketAddr, msg: &str) -> Result<String> {
    let mut buf = vec![0u8; 65_535];
    for _ in 0..6 {
        sock.send_to(msg.as_bytes(), to)
            .map_err(|e| Error::io("sending REGISTER", e))?;
        let until = std::time::Instant::now() + Duration::from_millis(500);
        while std::time::Instant::now() < until {
            let Ok((n, _)) = sock.recv_from(&mut buf) else {
                break;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if status_of(&text).is_ok_and(|s| s >= 200) {
                return Ok(text);
            }
        }
    }
    Err(Error::Timeout {
        what: format!("a final response from {to}"),
        after: Duration::from_secs(3),
        log: None,
    })
}

fn status_of(response: &str) -> Result<u16> {
    response
        .strip_prefix("SIP/2.0 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Error::Parse {
            what: "SIP response".into(),
            detail: response.lines().next().unwrap_or("").to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_example_response() {
        // The worked example of RFC 2617 §3.5 (HTTP, but the digest arithmetic is the same).
        let ch = Challenge {
            realm: "testrealm@host.com".into(),
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            algorithm: Algorithm::Md5,
            opaque: Some("5ccc069c403ebaf9f0171e9517f40e41".into()),
            qop_auth: true,
        };
        let h = authorization(&ch, "Mufasa", "Circle Of Life", "GET", "/dir/index.html");
        assert!(
            h.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{h}"
        );
    }

    #[test]
    fn parses_challenges_and_skips_unknown_algorithms() {
        let c = parse_challenge(
            r#"Digest realm="a,b", nonce="n1", algorithm=SHA-256, qop="auth,auth-int""#,
        )
        .unwrap();
        assert_eq!(
            (c.realm.as_str(), c.algorithm, c.qop_auth),
            ("a,b", Algorithm::Sha256, true)
        );
        assert!(parse_challenge(r#"Digest realm="r", nonce="n", algorithm=SHA-512-256"#).is_none());
        assert!(parse_challenge("Basic realm=x").is_none());
    }
}
