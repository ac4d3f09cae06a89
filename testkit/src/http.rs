//! A small blocking JSON client for callscope's API, and the one tokio runtime the testkit's
//! async parts (this client, [`crate::webhook`]) run on.
//!
//! Blocking like the rest of the testkit: call it from plain `#[test]`s or
//! `spawn_blocking`, never from inside an async task (tokio refuses nested `block_on`).

use crate::{Error, Result};
use serde_json::Value;
use std::sync::OnceLock;
use std::time::Duration;

/// Every request gives up after this long, so a hung server fails the test instead of
/// hanging it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// The testkit's shared runtime: two workers are plenty for a webhook receiver and a client.
pub(crate) fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("testkit-rt")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| {
        Error::io(
            "starting the testkit runtime",
            std::io::Error::other(e.clone()),
        )
    })
}

/// A JSON client with an optional `X-API-Key` (or an agent's session cookie).
#[derive(Debug, Clone)]
pub struct HttpClient {
    base: String,
    api_key: Option<String>,
    cookie: Option<String>,
    client: reqwest::Client,
}

impl HttpClient {
    /// `base` like `http://127.0.0.1:8080` (no trailing slash).
    pub fn new(base: impl Into<String>, api_key: Option<String>) -> Self {
        HttpClient {
            base: base.into(),
            api_key,
            cookie: None,
            client: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .unwrap_or_default(),
        }
    }

    /// Sends `Cookie: <cookie>` (e.g. `cs_session=css_…`, an agent's web session taken from
    /// a browser) with every request.
    pub fn with_cookie(mut self, cookie: impl Into<String>) -> Self {
        self.cookie = Some(cookie.into());
        self
    }

    /// `GET path` → (status, JSON body or `Value::Null` when the body is not JSON).
    pub fn get(&self, path: &str) -> Result<(u16, Value)> {
        self.send(reqwest::Method::GET, path, None)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        self.send(reqwest::Method::POST, path, Some(body))
    }

    /// `PUT path` with a JSON body.
    pub fn put(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        self.send(reqwest::Method::PUT, path, Some(body))
    }

    pub fn delete(&self, path: &str) -> Result<(u16, Value)> {
        self.send(reqwest::Method::DELETE, path, None)
    }

    /// `GET path` → (status, body as text), for non-JSON endpoints such as `/metrics`.
    pub fn get_text(&self, path: &str) -> Result<(u16, String)> {
        let (status, bytes) = self.send_raw(reqwest::Method::GET, path, None)?;
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// (status, body as JSON; `Null` when the body is not JSON).
    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let (status, bytes) = self.send_raw(method, path, body)?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// One request with the API key (when set) → (status, raw body): the JSON calls and
    /// `get_text` differ only in how they read the body.
    fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Vec<u8>)> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.client.request(method.clone(), &url);
        if let Some(key) = &self.api_key {
            req = req.header("x-api-key", key);
        }
        if let Some(cookie) = &self.cookie {
            req = req.header("cookie", cookie);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let what = format!("{method} {url}");
        runtime()?.block_on(async move {
            let resp = req
                .send()
                .await
                .map_err(|e| Error::io(what.clone(), std::io::Error::other(e)))?;
            let status = resp.status().as_u16();
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| Error::io(what, std::io::Error::other(e)))?;
            Ok((status, bytes.to_vec()))
        })
    }
}
