//! An agent's softphone signalling, spoken directly (no browser): log in over HTTP, open
//! `/api/v1/agent/ws` with the session cookie, send protocol messages and wait for the
//! server's. Tests pair it with a real WebRTC stack (aiortc) for the media, and benchmarks
//! use it to drive many agents. Blocking, like the rest of the testkit; every wait is bounded.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message, WebSocket};

use crate::{Error, Result};

/// How long one socket read may block before the wait loop looks at its deadline again.
const POLL: Duration = Duration::from_millis(100);

fn io(context: &str, e: std::io::Error) -> Error {
    Error::io(context, e)
}

fn ws_error(context: &str, e: tungstenite::Error) -> Error {
    Error::io(context, std::io::Error::other(e.to_string()))
}

/// `POST /api/v1/agent/login`; returns the `cs_session` cookie (`name=value`).
pub fn login(http: SocketAddr, domain: &str, extension: &str, password: &str) -> Result<String> {
    let body = json!({"domain": domain, "extension": extension, "password": password}).to_string();
    let mut stream = TcpStream::connect(http).map_err(|e| io("connecting for login", e))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| io("login timeout", e))?;
    let request = format!(
        "POST /api/v1/agent/login HTTP/1.1\r\nHost: {http}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| io("sending login", e))?;
    let mut response = String::new();
    stream
        .take(1 << 20)
        .read_to_string(&mut response)
        .map_err(|e| io("reading login response", e))?;
    let status_ok = response
        .lines()
        .next()
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("200"));
    let cookie = response
        .lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, value)| value.trim().split(';').next())
        .find(|c| c.starts_with("cs_session=") && c.len() > "cs_session=".len())
        .map(str::to_string);
    match (status_ok, cookie) {
        (true, Some(cookie)) => Ok(cookie),
        _ => Err(Error::Parse {
            what: "agent login response".into(),
            detail: response.chars().take(500).collect(),
        }),
    }
}

/// One open softphone socket of a logged-in agent.
pub struct AgentSocket {
    socket: WebSocket<TcpStream>,
    /// Messages read while waiting for another kind, in arrival order.
    pending: VecDeque<Value>,
    /// Everything received, for failure messages.
    pub seen: Vec<Value>,
}

impl AgentSocket {
    /// Opens the socket with `cookie` (from [`login`]) and reads the server's `hello`.
    pub fn connect(http: SocketAddr, cookie: &str) -> Result<(AgentSocket, Value)> {
        let stream = TcpStream::connect(http).map_err(|e| io("connecting the agent socket", e))?;
        stream
            .set_read_timeout(Some(POLL))
            .map_err(|e| io("socket timeout", e))?;
        let mut request = format!("ws://{http}/api/v1/agent/ws")
            .into_client_request()
            .map_err(|e| ws_error("building the socket request", e))?;
        let cookie = HeaderValue::from_str(cookie).map_err(|e| Error::Parse {
            what: "cookie".into(),
            detail: e.to_string(),
        })?;
        request.headers_mut().insert("Cookie", cookie);
        let (socket, _) = tungstenite::client(request, stream).map_err(|e| Error::Parse {
            what: "agent socket handshake".into(),
            detail: e.to_string(),
        })?;
        let mut agent = AgentSocket {
            socket,
            pending: VecDeque::new(),
            seen: Vec::new(),
        };
        let hello = agent.wait_for("hello", Duration::from_secs(10))?;
        Ok((agent, hello))
    }

    pub fn send(&mut self, message: &Value) -> Result<()> {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .map_err(|e| ws_error("sending on the agent socket", e))
    }

    /// The next message of `kind` (`type` field), keeping others for later waits. An
    /// `error` message fails the wait at once (with its text).
    pub fn wait_for(&mut self, kind: &str, limit: Duration) -> Result<Value> {
        self.wait_where(kind, limit, |_| true)
    }

    /// The next message of `kind` for which `accept` holds.
    pub fn wait_where(
        &mut self,
        kind: &str,
        limit: Duration,
        accept: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(i) = self
                .pending
                .iter()
                .position(|m| m["type"] == kind && accept(m))
            {
                return Ok(self.pending.remove(i).unwrap_or(Value::Null));
            }
            if kind != "error"
                && let Some(i) = self.pending.iter().position(|m| m["type"] == "error")
            {
                let error = self.pending.remove(i).unwrap_or(Value::Null);
                return Err(Error::CommandFailed {
                    tool: "callscope agent socket",
                    command: kind.to_string(),
                    detail: error.to_string(),
                });
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("`{kind}` on the agent socket (seen: {:?})", self.seen),
                    after: limit,
                    log: None,
                });
            }
            self.read_one()?;
        }
    }

    /// Reads one message into `pending` (or nothing within the poll interval).
    fn read_one(&mut self) -> Result<()> {
        match self.socket.read() {
            Ok(Message::Text(text)) => {
                let value: Value = serde_json::from_str(&text).map_err(|e| Error::Parse {
                    what: "agent socket message".into(),
                    detail: e.to_string(),
                })?;
                self.seen.push(value.clone());
                self.pending.push_back(value);
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(ws_error("reading the agent socket", e)),
        }
    }

    /// Sends `message` and waits for its direct reply (`media_answer`, `ack` or `error`,
    /// matched by a fresh `request_id`).
    pub fn request(&mut self, mut message: Value, limit: Duration) -> Result<Value> {
        let id = format!("r{}", self.seen.len() + self.pending.len() + 1);
        message["request_id"] = Value::String(id.clone());
        self.send(&message)?;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(i) = self
                .pending
                .iter()
                .position(|m| m["request_id"] == id.as_str())
            {
                let reply = self.pending.remove(i).unwrap_or(Value::Null);
                if reply["type"] == "error" {
                    return Err(Error::CommandFailed {
                        tool: "callscope agent socket",
                        command: message["type"].to_string(),
                        detail: reply.to_string(),
                    });
                }
                return Ok(reply);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("the reply to {message}"),
                    after: limit,
                    log: None,
                });
            }
            self.read_one()?;
        }
    }

    /// Drops the connection without a close handshake (a network failure, as the server
    /// sees it).
    pub fn drop_connection(self) {
        let stream = self.socket.get_ref();
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
}
