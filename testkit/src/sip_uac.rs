//! A minimal SIP user agent over UDP that places calls carrying an SDP offer made elsewhere
//! (aiortc's WebRTC offers) and hangs them up: what the softphone benchmark needs to put
//! browser-like calls through a SIP server that takes WebRTC offers in plain SIP, as RustPBX
//! does (it tells a WebRTC leg by its SDP profile, `UDP/TLS/RTP/SAVPF`, not by the
//! transport), next to callscope's agents, who signal over `/api/v1/agent/ws`.
//!
//! One socket carries every call. A reader thread answers whatever the server asks inside
//! the dialogs (OPTIONS, a BYE, session-timer refreshes: 200 OK without a body) so calls
//! are not dropped for silence, and hands the responses to the caller. Every wait is
//! bounded; INVITE and BYE are retransmitted on RFC 3261's timer A schedule until a
//! response arrives.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// RFC 3261's T1: the first retransmission interval.
const T1: Duration = Duration::from_millis(500);
/// How long the reader blocks before looking at its stop flag.
const READ_POLL: Duration = Duration::from_millis(100);

/// A SIP message as received: its first line, headers and body.
#[derive(Debug, Clone)]
pub struct SipMessage {
    pub first_line: String,
    headers: Vec<(String, String)>,
    pub body: String,
}

impl SipMessage {
    /// Parses one datagram; None if it is not SIP.
    pub fn parse(datagram: &[u8]) -> Option<SipMessage> {
        let text = std::str::from_utf8(datagram).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let mut lines = head.split("\r\n");
        let first_line = lines.next()?.to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(name, value)| (full_name(name.trim()), value.trim().to_string()))
            .collect();
        Some(SipMessage {
            first_line,
            headers,
            body: body.to_string(),
        })
    }

    /// The status code of a response (None for a request).
    pub fn status(&self) -> Option<u16> {
        let rest = self.first_line.strip_prefix("SIP/2.0 ")?;
        rest.split_whitespace().next()?.parse().ok()
    }

    /// The method of a request (None for a response).
    pub fn method(&self) -> Option<&str> {
        if self.first_line.starts_with("SIP/2.0") {
            return None;
        }
        self.first_line.split_whitespace().next()
    }

    /// The first header of that name (long form, any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of that header, in order, comma-separated values split (for Via and
    /// Record-Route).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(',').map(str::trim))
            .collect()
    }

    fn cseq(&self) -> Option<(u32, &str)> {
        let mut parts = self.header("CSeq")?.split_whitespace();
        Some((parts.next()?.parse().ok()?, parts.next()?))
    }
}

/// Long header names for SIP's compact forms.
fn full_name(name: &str) -> String {
    match name {
        "v" | "V" => "Via",
        "f" | "F" => "From",
        "t" | "T" => "To",
        "i" | "I" => "Call-ID",
        "m" | "M" => "Contact",
        "l" | "L" => "Content-Length",
        "c" | "C" => "Content-Type",
        other => other,
    }
    .to_string()
}

/// The URI inside a name-addr (`"x" <sip:a@b>;tag=1` → `sip:a@b`) or a bare one.
fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// An established call, from the caller's side.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: String,
    /// The From header as sent (with our tag).
    from: String,
    /// The To header as answered (with the server's tag).
    to: String,
    /// Where in-dialog requests go: the answer's Contact.
    remote_target: String,
    /// Route headers from the answer's Record-Route, in the order to send them.
    route: Vec<String>,
    /// The answer's SDP.
    pub answer_sdp: String,
}

/// The UAC: one UDP socket on 127.0.0.1, talking to one server.
pub struct SipUac {
    socket: UdpSocket,
    local: SocketAddr,
    server: SocketAddr,
    responses: Receiver<SipMessage>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    next: u64,
}

impl SipUac {
    /// Binds a socket on `ip` and starts the reader.
    pub fn bind(ip: std::net::IpAddr, server: SocketAddr) -> Result<SipUac> {
        let socket = UdpSocket::bind((ip, 0)).map_err(|e| Error::io("binding the UAC", e))?;
        let local = socket
            .local_addr()
            .map_err(|e| Error::io("the UAC's address", e))?;
        socket
            .set_read_timeout(Some(READ_POLL))
            .map_err(|e| Error::io("the UAC's read timeout", e))?;
        let reader_socket = socket
            .try_clone()
            .map_err(|e| Error::io("cloning the UAC socket", e))?;
        let (tx, responses) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("sip-uac-reader".into())
                .spawn(move || read_loop(&reader_socket, &tx, &stop))
                .map_err(|e| Error::io("starting the UAC reader", e))?
        };
        Ok(SipUac {
            socket,
            local,
            server,
            responses,
            stop,
            reader: Some(reader),
            next: 0,
        })
    }

    fn fresh(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Calls `number` at the server with `sdp` as the offer; waits (bounded by `within`)
    /// for the final answer, ACKs a 2xx and returns the dialog. Any other final answer is
    /// an error carrying the response.
    pub fn invite(
        &mut self,
        user: &str,
        number: &str,
        sdp: &str,
        within: Duration,
    ) -> Result<Dialog> {
        let n = self.fresh();
        let (local, server) = (self.local, self.server);
        let call_id = format!("bench-{n}-{}@{}", std::process::id(), local.ip());
        let branch = format!("z9hG4bK-uac-{n}-inv");
        let from = format!("<sip:{user}@{local}>;tag=uac{n}");
        let request_uri = format!("sip:{number}@{server}");
        let invite = format!(
            "INVITE {request_uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: {from}\r\n\
             To: <{request_uri}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:{user}@{local}>\r\n\
             Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        let answer = self.transaction(&invite, &call_id, "INVITE", within)?;
        let status = answer.status().unwrap_or(0);
        let to = answer.header("To").unwrap_or_default().to_string();
        if status >= 300 {
            // The ACK of a failure belongs to the INVITE's transaction (same branch).
            let ack = format!(
                "ACK {request_uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\n\
                 Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
                 CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
            );
            self.send(&ack)?;
            return Err(Error::CommandFailed {
                tool: "SIP server",
                command: format!("INVITE {number}"),
                detail: answer.first_line.clone(),
            });
        }
        let mut route: Vec<String> = answer
            .header_all("Record-Route")
            .into_iter()
            .map(str::to_string)
            .collect();
        route.reverse();
        let dialog = Dialog {
            call_id,
            from,
            to,
            remote_target: uri_of(answer.header("Contact").unwrap_or(&request_uri)).to_string(),
            route,
            answer_sdp: answer.body.clone(),
        };
        let ack = self.in_dialog(&dialog, "ACK", 1, &format!("z9hG4bK-uac-{n}-ack"));
        self.send(&ack)?;
        Ok(dialog)
    }

    /// Hangs up; returns BYE's final status (bounded by `within`).
    pub fn bye(&mut self, dialog: &Dialog, within: Duration) -> Result<u16> {
        let n = self.fresh();
        let bye = self.in_dialog(dialog, "BYE", 2, &format!("z9hG4bK-uac-{n}-bye"));
        let answer = self.transaction(&bye, &dialog.call_id, "BYE", within)?;
        Ok(answer.status().unwrap_or(0))
    }

    /// An in-dialog request without a body.
    fn in_dialog(&self, d: &Dialog, method: &str, cseq: u32, branch: &str) -> String {
        let routes: String = d.route.iter().map(|r| format!("Route: {r}\r\n")).collect();
        format!(
            "{method} {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n{routes}\
             From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
             Content-Length: 0\r\n\r\n",
            target = d.remote_target,
            local = self.local,
            from = d.from,
            to = d.to,
            call_id = d.call_id,
        )
    }

    fn send(&self, text: &str) -> Result<()> {
        // Loose routing: with a route set, the first hop is still the server we talk to.
        self.socket
            .send_to(text.as_bytes(), self.server)
            .map(|_| ())
            .map_err(|e| Error::io("sending a SIP request", e))
    }

    /// Sends `request` and waits for its final response, retransmitting on timer A until
    /// the first response arrives.
    fn transaction(
        &mut self,
        request: &str,
        call_id: &str,
        method: &str,
        within: Duration,
    ) -> Result<SipMessage> {
        let deadline = Instant::now() + within;
        let mut interval = T1;
        let mut next_send = Instant::now();
        let mut heard = false;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout {
                    what: format!("a final response to {method} ({call_id})"),
                    after: within,
                    log: None,
                });
            }
            if !heard && now >= next_send {
                self.send(request)?;
                next_send = now + interval;
                interval = (interval * 2).min(Duration::from_secs(4));
            }
            let wait = if heard {
                deadline
            } else {
                next_send.min(deadline)
            };
            match self
                .responses
                .recv_timeout(wait.saturating_duration_since(now))
            {
                Ok(msg) => {
                    let ours = msg.header("Call-ID") == Some(call_id)
                        && msg.cseq().is_some_and(|(_, m)| m == method);
                    if !ours {
                        continue;
                    }
                    heard = true;
                    if msg.status().is_some_and(|s| s >= 200) {
                        return Ok(msg);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::io(
                        "waiting for a SIP response",
                        std::io::Error::other("the UAC reader stopped"),
                    ));
                }
            }
        }
    }
}

impl Drop for SipUac {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// Reads until stopped: responses go to the caller, requests get a 200 OK (an ACK gets
/// nothing).
fn read_loop(socket: &UdpSocket, responses: &mpsc::Sender<SipMessage>, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Some(msg) = SipMessage::parse(&buf[..len]) else {
            continue;
        };
        match msg.method() {
            None => {
                let _ = responses.send(msg);
            }
            Some("ACK") => {}
            Some(_) => {
                let _ = socket.send_to(ok_response(&msg).as_bytes(), from);
            }
        }
    }
}

/// 200 OK to a request, echoing what a response must (Via, From, To, Call-ID, CSeq).
fn ok_response(request: &SipMessage) -> String {
    let vias: String = request
        .header_all("Via")
        .iter()
        .map(|v| format!("Via: {v}\r\n"))
        .collect();
    let to = request.header("To").unwrap_or_default();
    // A request outside any dialog we made (no To tag) gets one, as a UAS must add.
    let to = if to.contains(";tag=") {
        to.to_string()
    } else {
        format!("{to};tag=uacreply")
    };
    format!(
        "SIP/2.0 200 OK\r\n{vias}From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n\
         Content-Length: 0\r\n\r\n",
        request.header("From").unwrap_or_default(),
        request.header("Call-ID").unwrap_or_default(),
        request.header("CSeq").unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compact_headers_and_the_body() {
        let m = SipMessage::parse(
            b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKa, SIP/2.0/UDP 5.6.7.8\r\n\
              i: abc\r\nCSeq: 1 INVITE\r\nm: <sip:x@9.9.9.9:5070;transport=udp>\r\n\
              l: 3\r\n\r\nv=0",
        )
        .expect("a response");
        assert_eq!(m.status(), Some(200));
        assert_eq!(m.method(), None);
        assert_eq!(m.header("Call-ID"), Some("abc"));
        assert_eq!(m.header_all("Via").len(), 2);
        assert_eq!(m.cseq(), Some((1, "INVITE")));
        assert_eq!(
            uri_of(m.header("Contact").unwrap()),
            "sip:x@9.9.9.9:5070;transport=udp"
        );
        assert_eq!(m.body, "v=0");
    }

    #[test]
    fn answers_a_request_with_its_via_and_a_to_tag() {
        let req = SipMessage::parse(
            b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bKx\r\n\
              From: <sip:s@1.2.3.4>;tag=s1\r\nTo: <sip:a@b>\r\nCall-ID: k\r\nCSeq: 7 OPTIONS\r\n\r\n",
        )
        .expect("a request");
        assert_eq!(req.method(), Some("OPTIONS"));
        let ok = ok_response(&req);
        assert!(ok.starts_with("SIP/2.0 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("Via: SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bKx\r\n"),
            "{ok}"
        );
        assert!(ok.contains("To: <sip:a@b>;tag=uacreply\r\n"), "{ok}");
        assert!(ok.contains("CSeq: 7 OPTIONS\r\n"), "{ok}");
    }

    #[test]
    fn not_sip_is_none() {
        assert!(SipMessage::parse(b"\x80\x00garbage").is_none());
        assert!(SipMessage::parse(b"no blank line").is_none());
    }
}
