//! Sending through Meta's Graph API: `POST {base}/{phone_number_id}/messages` with the
//! channel's bearer token. The base URL is per channel so tests (and regional proxies) can
//! point it elsewhere.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};

use crate::egress::EgressPolicy;

pub const DEFAULT_GRAPH_BASE_URL: &str = "https://graph.facebook.com/v21.0";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const MAX_ERROR_CHARS: usize = 1000;

/// One client per egress policy for all sends: it pools connections to the Graph host.
fn client(egress: EgressPolicy) -> &'static reqwest::Client {
    static PUBLIC_ONLY: OnceLock<reqwest::Client> = OnceLock::new();
    static ANY: OnceLock<reqwest::Client> = OnceLock::new();
    let slot = if egress.allow_private_networks {
        &ANY
    } else {
        &PUBLIC_ONLY
    };
    slot.get_or_init(|| {
        egress
            .client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("callscope/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default()
    })
}

/// What to send.
#[derive(Debug, Clone)]
pub enum Outgoing<'a> {
    Text {
        body: &'a str,
        preview_url: bool,
    },
    /// A pre-approved template; `components` is passed through as Meta defines it.
    Template {
        name: &'a str,
        language: &'a str,
        components: Option<&'a Value>,
    },
}

/// The request body Meta expects.
pub fn request_body(to: &str, msg: &Outgoing<'_>) -> Value {
    match msg {
        Outgoing::Text { body, preview_url } => json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": { "preview_url": preview_url, "body": body },
        }),
        Outgoing::Template {
            name,
            language,
            components,
        } => {
            let mut template = json!({ "name": name, "language": { "code": language } });
            if let (Some(c), Some(obj)) = (components, template.as_object_mut()) {
                obj.insert("components".into(), (*c).clone());
            }
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "type": "template",
                "template": template,
            })
        }
    }
}

/// Why a send failed, in Meta's terms where Meta gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub code: String,
    pub message: String,
}

fn cut(s: &str) -> String {
    s.chars().take(MAX_ERROR_CHARS).collect()
}

/// Read Meta's `{"error":{"message","type","code","error_data":{"details"}}}`.
fn error_from_response(status: u16, body: &[u8]) -> SendError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let code = err
        .and_then(|e| e.get("code"))
        .map(|c| match c {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_else(|| format!("http_{status}"));
    let message = err
        .and_then(|e| {
            e.get("error_data")
                .and_then(|d| d.get("details"))
                .or_else(|| e.get("message"))
        })
        .and_then(Value::as_str)
        .map(cut)
        .unwrap_or_else(|| cut(&format!("HTTP {status}: {}", String::from_utf8_lossy(body))));
    SendError { code, message }
}

/// Send one message; the wamid on success.
pub async fn send(
    base_url: &str,
    phone_number_id: &str,
    access_token: &str,
    to: &str,
    msg: &Outgoing<'_>,
    egress: EgressPolicy,
) -> Result<String, SendError> {
    let url = format!(
        "{}/{}/messages",
        base_url.trim_end_matches('/'),
        phone_number_id
    );
    // The channel's Graph base URL is an organization's setting: the same destination rules
    // as webhooks (an IP literal never reaches the guarded resolver).
    if let Ok(parsed) = reqwest::Url::parse(&url)
        && let Err(refused) = egress.check_url(&parsed)
    {
        return Err(SendError {
            code: "forbidden_destination".into(),
            message: cut(&refused.to_string()),
        });
    }
    let response = client(egress)
        .post(&url)
        .bearer_auth(access_token)
        .json(&request_body(to, msg))
        .send()
        .await
        .map_err(|e| SendError {
            code: if e.is_timeout() { "timeout" } else { "network" }.into(),
            message: cut(&e.to_string()),
        })?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| SendError {
        code: "network".into(),
        message: cut(&e.to_string()),
    })?;
    if !(200..300).contains(&status) {
        return Err(error_from_response(status, &body));
    }
    let parsed: Value = serde_json::from_slice(&body).map_err(|_| SendError {
        code: "bad_response".into(),
        message: "Graph API answered 2xx without JSON".into(),
    })?;
    parsed
        .get("messages")
        .and_then(|m| m.get(0))
        .and_then(|m| m.get("id"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty() && id.len() <= 256)
        .map(str::to_owned)
        .ok_or_else(|| SendError {
            code: "bad_response".into(),
            message: "Graph API answered without messages[0].id".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_follow_meta_format() {
        let t = request_body(
            "14155552671",
            &Outgoing::Text {
                body: "hi",
                preview_url: false,
            },
        );
        assert_eq!(t["type"], "text");
        assert_eq!(t["text"]["body"], "hi");
        assert_eq!(t["messaging_product"], "whatsapp");
        let comps = json!([{ "type": "body", "parameters": [{ "type": "text", "text": "Ada" }] }]);
        let tp = request_body(
            "1",
            &Outgoing::Template {
                name: "order_update",
                language: "en_US",
                components: Some(&comps),
            },
        );
        assert_eq!(tp["template"]["language"]["code"], "en_US");
        assert_eq!(
            tp["template"]["components"][0]["parameters"][0]["text"],
            "Ada"
        );
    }

    #[test]
    fn errors_are_read_from_meta_and_from_anything_else() {
        let e = error_from_response(
            400,
            br#"{"error":{"message":"(#131030) Recipient phone number not in allowed list","type":"OAuthException","code":131030,"error_data":{"messaging_product":"whatsapp","details":"Recipient phone number not in allowed list"}}}"#,
        );
        assert_eq!(e.code, "131030");
        assert_eq!(e.message, "Recipient phone number not in allowed list");
        let e = error_from_response(502, b"<html>bad gateway</html>");
        assert_eq!(e.code, "http_502");
        assert!(e.message.contains("bad gateway"));
    }
}
