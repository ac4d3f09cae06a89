//! A local webhook receiver: an axum server on 127.0.0.1 (ephemeral port) that records every
//! delivery and checks its `X-Callscope-Signature` with an HMAC implementation of its own
//! (hmac + sha2 here, not callscope's code), so a signing bug cannot hide behind itself.
//!
//! ```no_run
//! # use callscope_testkit::{callscope::Callscope, webhook::WebhookReceiver};
//! # fn f(cs: &Callscope) -> callscope_testkit::Result<()> {
//! let hooks = WebhookReceiver::start()?;
//! cs.register_webhook(&hooks, &["call.started", "call.ended"])?;
//! let ended = hooks.wait_for(std::time::Duration::from_secs(10), |d| d.event == "call.ended")?;
//! assert!(ended.signature_valid);
//! # Ok(()) }
//! ```

use crate::process::wait_until;
use crate::{Error, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far a signature's timestamp may be from our clock (the documented receiver default).
const TOLERANCE_S: i64 = 300;

/// One received POST.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `X-Callscope-Event` (falls back to the body's `type`).
    pub event: String,
    /// `X-Callscope-Delivery`.
    pub delivery_id: String,
    pub signature_header: String,
    /// Whether the signature matched the raw body with the secret known at receipt time.
    pub signature_valid: bool,
    pub body: Value,
    pub raw: Vec<u8>,
}

#[derive(Default)]
struct Shared {
    secret: Option<String>,
    deliveries: Vec<Delivery>,
}

type SharedState = Arc<Mutex<Shared>>;

fn lock(s: &SharedState) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running receiver; its server task stops when this is dropped.
pub struct WebhookReceiver {
    addr: SocketAddr,
    shared: SharedState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for WebhookReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookReceiver")
            .field("addr", &self.addr)
            .finish()
    }
}

impl WebhookReceiver {
    /// Starts listening on 127.0.0.1 (ephemeral port).
    pub fn start() -> Result<Self> {
        let rt = crate::http::runtime()?;
        let shared: SharedState = Arc::default();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", 0)))
            .map_err(|e| Error::io("binding the webhook receiver", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("webhook receiver address", e))?;
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(WebhookReceiver {
            addr,
            shared,
            stop: Some(stop),
        })
    }

    /// The URL to register as a webhook endpoint.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// The endpoint secret (as returned once by the API) to verify signatures with.
    pub fn set_secret(&self, secret: &str) {
        lock(&self.shared).secret = Some(secret.to_string());
    }

    /// Everything received so far, in arrival order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.shared).deliveries.clone()
    }

    /// Waits until a delivery matching `pred` arrives; returns the first match.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&Delivery) -> bool,
    ) -> Result<Delivery> {
        wait_until("a matching webhook delivery", timeout, None, || {
            Ok(lock(&self.shared)
                .deliveries
                .iter()
                .find(|d| pred(d))
                .cloned())
        })
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn receive(State(shared): State<SharedState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut event = header("x-callscope-event");
    if event.is_empty() {
        event = json["type"].as_str().unwrap_or_default().to_string();
    }
    let signature_header = header("x-callscope-signature");
    let mut s = lock(&shared);
    let signature_valid = s
        .secret
        .as_deref()
        .is_some_and(|secret| verify(secret, &signature_header, &body, unix_now()));
    s.deliveries.push(Delivery {
        event,
        delivery_id: header("x-callscope-delivery"),
        signature_header,
        signature_valid,
        body: json,
        raw: body.to_vec(),
    });
    StatusCode::OK
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `t=<unix>,v1=<hex HMAC-SHA256(secret, t + "." + body)>[,v1=...]`: any `v1` matching,
/// with `t` within the tolerance, is valid.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64) -> bool {
    let mut t: Option<&str> = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v),
            Some(("v1", v)) => sigs.push(v),
            _ => return false,
        }
    }
    let Some(t) = t else { return false };
    let Ok(ts) = t.parse::<i64>() else {
        return false;
    };
    if (now - ts).abs() > TOLERANCE_S {
        return false;
    }
    sigs.iter().any(|sig| {
        let Ok(expected) = hex::decode(sig) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            return false;
        };
        mac.update(t.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, t: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn verification_accepts_only_the_right_secret_body_and_time() {
        let h = sign("whsec_abc", 1000, b"{}");
        assert!(verify("whsec_abc", &h, b"{}", 1000));
        assert!(!verify("whsec_abd", &h, b"{}", 1000));
        assert!(!verify("whsec_abc", &h, b"{ }", 1000));
        assert!(!verify("whsec_abc", &h, b"{}", 1000 + TOLERANCE_S + 1));
        assert!(!verify("whsec_abc", "garbage", b"{}", 1000));
    }

    #[test]
    fn receiver_records_and_verifies_a_post() {
        let r = WebhookReceiver::start().unwrap();
        r.set_secret("whsec_test_secret");
        let body = br#"{"type":"call.ended"}"#;
        let header = sign("whsec_test_secret", unix_now(), body);
        let url = r.url();
        crate::http::runtime()
            .unwrap()
            .block_on(async {
                reqwest::Client::new()
                    .post(&url)
                    .header("x-callscope-signature", header)
                    .body(body.to_vec())
                    .send()
                    .await
            })
            .unwrap();
        let d = r
            .wait_for(Duration::from_secs(5), |d| d.event == "call.ended")
            .unwrap();
        assert!(d.signature_valid);
        assert_eq!(d.raw, body);
    }
}
