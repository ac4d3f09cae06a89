//! Small readers for the few headers call control interprets itself (session timers,
//! Refer-To, the dialled number), tolerant of anything a peer may send.

use rsipstack::sip::Request;
use rsipstack::sip::headers::untyped::ToTypedHeader;
use rsipstack::sip::prelude::HeadersExt;

/// `Session-Expires: 1800;refresher=uac` (RFC 4028 §4), compact form `x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    pub seconds: u32,
    pub refresher_uas: bool,
}

fn header(request: &Request, long: &str, compact: &str) -> Option<String> {
    request
        .header_value(long)
        .or_else(|| request.header_value(compact))
}

pub fn session_expires(request: &Request) -> Option<SessionExpires> {
    let value = header(request, "Session-Expires", "x")?;
    let mut parts = value.split(';');
    let seconds = parts.next()?.trim().parse::<u32>().ok()?;
    let refresher_uas = parts.any(|p| {
        p.trim()
            .to_ascii_lowercase()
            .replace(' ', "")
            .eq("refresher=uas")
    });
    Some(SessionExpires {
        seconds,
        refresher_uas,
    })
}

pub fn min_se(request: &Request) -> Option<u32> {
    header(request, "Min-SE", "Min-SE")?
        .split(';')
        .next()?
        .trim()
        .parse::<u32>()
        .ok()
}

/// Whether the request lists `option` in Supported (or compact `k`).
pub fn supports(request: &Request, option: &str) -> bool {
    request.header_contains_token("Supported", option)
        || request
            .header_value("k")
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(option)))
}

/// The user part of the Request-URI: the dialled extension, number or DID.
pub fn dialled_user(request: &Request) -> Option<String> {
    request
        .uri
        .auth
        .as_ref()
        .map(|auth| auth.user.clone())
        .filter(|user| !user.is_empty())
}

/// The user part of a Refer-To URI (`<sip:2002@host>` or `sip:2002@host;...`).
pub fn refer_to_user(request: &Request) -> Option<String> {
    let value = header(request, "Refer-To", "r")?;
    let inner = match (value.find('<'), value.find('>')) {
        (Some(start), Some(end)) if start < end => value.get(start + 1..end)?.to_string(),
        _ => value.split(';').next()?.trim().to_string(),
    };
    let without_scheme = inner
        .strip_prefix("sip:")
        .or_else(|| inner.strip_prefix("sips:"))
        .or_else(|| inner.strip_prefix("tel:"))
        .unwrap_or(&inner);
    let user = without_scheme
        .split(['@', ';', '?'])
        .next()?
        .trim()
        .to_string();
    if user.is_empty() || user.len() > 64 {
        return None;
    }
    Some(user)
}

/// The user part and display name of a request's From header, for the callee leg's From.
pub fn from_user(request: &Request) -> Option<(String, Option<String>)> {
    let from = request.from_header().ok()?;
    let typed = from.typed().ok()?;
    let user = typed.uri.auth.as_ref().map(|a| a.user.clone())?;
    let display = typed.display_name.clone().filter(|d| !d.is_empty());
    Some((user, display))
}
