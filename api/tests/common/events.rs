//! A client of the realtime socket `/api/v1/events/ws` (tokio-tungstenite, a real WebSocket).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::TestServer;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the socket with `headers` (e.g. `x-api-key`, `cookie`, `origin`) and `query`
/// (`events=...&after=...`); `Err(status)` when the server refuses the upgrade.
pub async fn connect(s: &TestServer, headers: &[(&str, &str)], query: &str) -> Result<Socket, u16> {
    let url = format!(
        "{}/api/v1/events/ws{}{query}",
        s.base.replacen("http://", "ws://", 1),
        if query.is_empty() { "" } else { "?" }
    );
    let mut request = url.into_client_request().unwrap();
    for (k, v) in headers {
        use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
        let name = HeaderName::from_bytes(k.as_bytes()).unwrap();
        request
            .headers_mut()
            .insert(name, HeaderValue::from_str(v).unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("connect: {e}"),
    }
}

/// Opens it with an API key and waits for `ready`; returns the socket and the ready `seq`.
pub async fn open(s: &TestServer, key: &str, query: &str) -> (Socket, i64) {
    let mut socket = connect(s, &[("x-api-key", key)], query)
        .await
        .unwrap_or_else(|status| panic!("socket refused: {status}"));
    let ready = next_message(&mut socket, Duration::from_secs(5))
        .await
        .expect("ready");
    assert_eq!(ready["type"], "ready", "{ready}");
    let seq = ready["seq"].as_i64().unwrap();
    (socket, seq)
}

/// The next JSON message within `wait`, or `None` (nothing came, or the socket closed).
pub async fn next_message(socket: &mut Socket, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.checked_duration_since(tokio::time::Instant::now())?;
        match tokio::time::timeout(left, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => {
                return None;
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Events (messages of type `event`) until `done` says the list is complete; panics after
/// `wait` with what arrived so far.
pub async fn events_until(
    socket: &mut Socket,
    wait: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut got = Vec::new();
    while !done(&got) {
        let left = deadline
            .checked_duration_since(tokio::time::Instant::now())
            .unwrap_or_default();
        match next_message(socket, left).await {
            Some(m) if m["type"] == "event" => got.push(m),
            Some(_) => {}
            None => panic!("socket closed or silent; events so far: {:?}", names(&got)),
        }
    }
    got
}

/// Every event that arrives within `wait` (for asserting what must NOT arrive).
pub async fn events_within(socket: &mut Socket, wait: Duration) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut got = Vec::new();
    while let Some(left) = deadline.checked_duration_since(tokio::time::Instant::now()) {
        match next_message(socket, left).await {
            Some(m) if m["type"] == "event" => got.push(m),
            Some(_) => {}
            None => break,
        }
    }
    got
}

pub fn names(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap_or_default().to_string())
        .collect()
}

pub async fn send_json(socket: &mut Socket, v: Value) {
    socket
        .send(Message::Text(v.to_string().into()))
        .await
        .unwrap();
}
