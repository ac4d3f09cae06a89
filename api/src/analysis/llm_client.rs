//! The optional language model over HTTP: an OpenAI-compatible chat-completions client
//! (`POST {base_url}/chat/completions`; OpenAI, Ollama's `/v1`, vLLM, llama.cpp's server…)
//! implementing the analysis crate's [`LanguageModel`].
//!
//! Every request is bounded: a timeout per request, a budget for all requests of one call's
//! analysis, a cap on the reply's size. A failure is an [`LlmError`]; the analysis crate falls
//! back to its default result and records the reason, so the model never fails a call.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use callscope_analysis::llm::{LanguageModel, LlmError};
use reqwest::Url;
use serde_json::{Value, json};

use crate::config::LlmSettings;

/// Largest reply body read from the endpoint: the answers asked for are a few hundred tokens,
/// so anything near this is not a chat completion worth reading.
pub const MAX_REPLY_BYTES: usize = 256 * 1024;

/// Most bytes of an error reply kept for the message.
const MAX_ERROR_BODY_BYTES: usize = 4 * 1024;

/// Characters of an endpoint's error message shown in `degraded`.
const MAX_ERROR_MESSAGE_CHARS: usize = 200;

/// Longest wait for the TCP/TLS connection (within the request's own timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A configured chat-completions endpoint. One per server; cheap to share.
pub struct ChatCompletionsClient {
    http: reqwest::Client,
    endpoint: Url,
    model: String,
    api_key: Option<String>,
    timeout: Duration,
    call_budget: Duration,
    max_tokens: u32,
}

/// `{base_url}/chat/completions`, whether or not `base_url` ends with a slash.
pub fn endpoint_url(base_url: &str) -> Result<Url, String> {
    let base = base_url.trim().trim_end_matches('/');
    let url = Url::parse(&format!("{base}/chat/completions"))
        .map_err(|e| format!("[analysis.llm] base_url {base_url:?} is not a URL: {e}"))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!(
            "[analysis.llm] base_url must be http or https, not {other}"
        )),
    }
}

/// The request: the two messages, the model, a cap on the answer's length; temperature 0 so
/// re-analysing a call gives the same answer where the server allows it.
pub fn request_body(model: &str, system: &str, user: &str, max_tokens: u32) -> Value {
    json!({
        "model": model,
        "messages": [
            { "role": "system", "content": system },
            { "role": "user", "content": user },
        ],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": false,
    })
}

/// The assistant's text from a chat-completion reply: `choices[0].message.content`, a string
/// or (some servers) a list of text parts.
pub fn reply_text(body: &[u8]) -> Result<String, LlmError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| LlmError::BadReply(format!("not JSON ({e})")))?;
    if let Some(message) = value.pointer("/error/message").and_then(Value::as_str) {
        return Err(LlmError::BadReply(format!(
            "the endpoint reported an error: {}",
            cut(message, MAX_ERROR_MESSAGE_CHARS)
        )));
    }
    let content = value
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .and_then(|c| c.pointer("/message/content"))
        .ok_or_else(|| LlmError::BadReply("no choices[0].message.content".into()))?;
    let text = match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => {
            return Err(LlmError::BadReply(
                "choices[0].message.content is not text".into(),
            ));
        }
    };
    if text.trim().is_empty() {
        return Err(LlmError::BadReply("the message is empty".into()));
    }
    Ok(text)
}

/// The endpoint's own words for an HTTP error: OpenAI's `{"error": {"message"}}`, else the
/// body's start.
fn http_error_message(body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("error"))
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    if text.is_empty() {
        "no message".into()
    } else {
        cut(&text, MAX_ERROR_MESSAGE_CHARS)
    }
}

fn cut(text: &str, max_chars: usize) -> String {
    let mut out: String = text.chars().take(max_chars).collect();
    if text.chars().nth(max_chars).is_some() {
        out.push('…');
    }
    out
}

/// A transport error with its causes ("… : Connection refused"), which reqwest's own message
/// leaves out.
fn transport_error(e: reqwest::Error, timeout: Duration) -> LlmError {
    if e.is_timeout() {
        return LlmError::Timeout {
            after_ms: timeout.as_millis() as u64,
        };
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    // Bounded: error chains are short, but nothing here should loop on a strange one.
    for _ in 0..8 {
        let Some(s) = source else { break };
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    LlmError::Unavailable(text)
}

/// Up to `limit` bytes of the body; `Err` when the body is longer and `fail_when_longer`.
async fn read_capped(
    response: &mut reqwest::Response,
    limit: usize,
    fail_when_longer: bool,
    timeout: Duration,
) -> Result<Vec<u8>, LlmError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(e, timeout))?
    {
        if body.len() + chunk.len() > limit {
            if fail_when_longer {
                return Err(LlmError::BadReply(format!(
                    "the reply is larger than {limit} bytes"
                )));
            }
            let room = limit.saturating_sub(body.len());
            body.extend_from_slice(chunk.get(..room).unwrap_or_default());
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl ChatCompletionsClient {
    /// The client for `[analysis.llm]`; `Ok(None)` when no endpoint is configured (both
    /// `base_url` and `model` are needed).
    pub fn from_settings(settings: &LlmSettings) -> Result<Option<Self>, String> {
        let (Some(base_url), Some(model)) = (&settings.base_url, &settings.model) else {
            return Ok(None);
        };
        let endpoint = endpoint_url(base_url)?;
        let timeout = Duration::from_millis(settings.timeout_ms.max(1));
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            // A redirect would re-send the transcript somewhere not configured.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the language model's HTTP client: {e}"))?;
        Ok(Some(ChatCompletionsClient {
            http,
            endpoint,
            model: model.clone(),
            api_key: settings.api_key.clone().filter(|k| !k.trim().is_empty()),
            timeout,
            call_budget: Duration::from_millis(settings.call_budget_ms.max(1)),
            max_tokens: settings.max_tokens.max(1),
        }))
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// One chat completion, given up after `timeout` (connection, request and reply).
    pub async fn complete(
        &self,
        system: &str,
        user: &str,
        timeout: Duration,
    ) -> Result<String, LlmError> {
        match tokio::time::timeout(timeout, self.send(system, user, timeout)).await {
            Ok(result) => result,
            Err(_) => Err(LlmError::Timeout {
                after_ms: timeout.as_millis() as u64,
            }),
        }
    }

    async fn send(&self, system: &str, user: &str, timeout: Duration) -> Result<String, LlmError> {
        let mut request = self.http.post(self.endpoint.clone()).json(&request_body(
            &self.model,
            system,
            user,
            self.max_tokens,
        ));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| transport_error(e, timeout))?;
        let status = response.status();
        if !status.is_success() {
            let body = read_capped(&mut response, MAX_ERROR_BODY_BYTES, false, timeout).await?;
            return Err(LlmError::Http {
                status: status.as_u16(),
                message: http_error_message(&body),
            });
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_REPLY_BYTES as u64)
        {
            return Err(LlmError::BadReply(format!(
                "the reply is larger than {MAX_REPLY_BYTES} bytes"
            )));
        }
        let body = read_capped(&mut response, MAX_REPLY_BYTES, true, timeout).await?;
        reply_text(&body)
    }

    /// The model for one call's analysis, on a blocking thread: each request waits at most
    /// the per-request timeout and what is left of the call's budget. After a timeout or an
    /// unreachable endpoint the rest of the call's requests are not sent (they would most
    /// likely wait just as long), so one call costs at most one timeout when the endpoint is
    /// down.
    pub fn for_call(&self, runtime: tokio::runtime::Handle) -> CallLanguageModel<'_> {
        CallLanguageModel {
            client: self,
            runtime,
            deadline: Instant::now() + self.call_budget,
            gave_up: RefCell::new(None),
        }
    }
}

/// [`ChatCompletionsClient`] as the analysis crate's blocking [`LanguageModel`], with the
/// call's time budget. Must not be used on an async worker thread (it blocks on the runtime).
pub struct CallLanguageModel<'a> {
    client: &'a ChatCompletionsClient,
    runtime: tokio::runtime::Handle,
    deadline: Instant,
    /// Why the remaining requests are not sent.
    gave_up: RefCell<Option<String>>,
}

impl LanguageModel for CallLanguageModel<'_> {
    fn complete(&self, system: &str, user: &str) -> Result<String, LlmError> {
        if let Some(why) = self.gave_up.borrow().as_ref() {
            return Err(LlmError::Other(format!(
                "not asked: an earlier request of this call failed ({why})"
            )));
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(LlmError::Other(format!(
                "not asked: the call's language-model budget of {} ms is spent",
                self.client.call_budget.as_millis()
            )));
        }
        let timeout = self.client.timeout.min(left);
        let result = self
            .runtime
            .block_on(self.client.complete(system, user, timeout));
        if let Err(e @ (LlmError::Timeout { .. } | LlmError::Unavailable(_))) = &result {
            *self.gave_up.borrow_mut() = Some(e.to_string());
        }
        result
    }
}

/// The model when the server has none (or a broken `[analysis.llm]`) but an organization
/// turned features on: every question fails with that reason, which the analysis shows.
pub struct MissingLanguageModel(pub String);

impl LanguageModel for MissingLanguageModel {
    fn complete(&self, _system: &str, _user: &str) -> Result<String, LlmError> {
        Err(LlmError::NotConfigured(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_joins_base_url() {
        for base in ["http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1/"] {
            assert_eq!(
                endpoint_url(base).unwrap().as_str(),
                "http://127.0.0.1:11434/v1/chat/completions"
            );
        }
        assert_eq!(
            endpoint_url("https://api.openai.com/v1").unwrap().as_str(),
            "https://api.openai.com/v1/chat/completions"
        );
        assert!(endpoint_url("not a url").unwrap_err().contains("not a URL"));
        assert!(
            endpoint_url("ftp://example.com/v1")
                .unwrap_err()
                .contains("http or https")
        );
    }

    #[test]
    fn request_has_model_messages_and_limits() {
        let body = request_body("llama3.1:8b", "be brief", "#0 [00:00] agent: hi", 300);
        assert_eq!(body["model"], "llama3.1:8b");
        assert_eq!(body["max_tokens"], 300);
        assert_eq!(body["temperature"], 0);
        assert_eq!(body["stream"], false);
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0]["role"], "system");
        assert_eq!(messages[0]["content"], "be brief");
        assert_eq!(messages[1]["role"], "user");
        assert_eq!(messages[1]["content"], "#0 [00:00] agent: hi");
    }

    #[test]
    fn reply_text_from_openai_and_ollama_shapes() {
        let openai = br#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"{\"match\": true}"},"finish_reason":"stop"}],"usage":{}}"#;
        assert_eq!(reply_text(openai).unwrap(), "{\"match\": true}");
        let parts = br#"{"choices":[{"message":{"role":"assistant","content":[{"type":"text","text":"Yes"},{"type":"text","text":"."}]}}]}"#;
        assert_eq!(reply_text(parts).unwrap(), "Yes.");
    }

    #[test]
    fn unusable_replies_say_why() {
        let cases: [(&[u8], &str); 7] = [
            (b"<html>gateway</html>", "not JSON"),
            (b"", "not JSON"),
            (br#"{"choices":[]}"#, "no choices"),
            (br#"{"result":"hello"}"#, "no choices"),
            (br#"{"choices":[{"message":{"content":42}}]}"#, "not text"),
            (br#"{"choices":[{"message":{"content":"  "}}]}"#, "empty"),
            (
                br#"{"error":{"message":"model 'x' not found"}}"#,
                "model 'x' not found",
            ),
        ];
        for (body, why) in cases {
            match reply_text(body) {
                Err(LlmError::BadReply(reason)) => assert!(reason.contains(why), "{reason}"),
                other => panic!("{:?} → {other:?}", String::from_utf8_lossy(body)),
            }
        }
    }

    #[test]
    fn http_error_messages() {
        assert_eq!(
            http_error_message(br#"{"error":{"message":"bad key","type":"auth"}}"#),
            "bad key"
        );
        assert_eq!(
            http_error_message(br#"{"error":"overloaded"}"#),
            "overloaded"
        );
        assert_eq!(http_error_message(b"  upstream down \n"), "upstream down");
        assert_eq!(http_error_message(b""), "no message");
        let long = "x".repeat(500);
        assert_eq!(http_error_message(long.as_bytes()).chars().count(), 201);
    }

    #[test]
    fn not_configured_without_url_and_model() {
        let mut s = LlmSettings::default();
        assert!(ChatCompletionsClient::from_settings(&s).unwrap().is_none());
        s.base_url = Some("http://127.0.0.1:11434/v1".into());
        assert!(ChatCompletionsClient::from_settings(&s).unwrap().is_none());
        s.model = Some("llama3.1:8b".into());
        s.api_key = Some(" ".into());
        let c = ChatCompletionsClient::from_settings(&s).unwrap().unwrap();
        assert_eq!(c.model(), "llama3.1:8b");
        assert_eq!(c.api_key, None, "a blank key is no key");
        s.base_url = Some("file:///etc".into());
        assert!(ChatCompletionsClient::from_settings(&s).is_err());
    }
}
