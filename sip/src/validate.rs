//! The gate every received message passes before rsipstack's transaction layer sees it.
//!
//! rsipstack's parser is lenient (it skips header lines it cannot read, takes an unreadable
//! Content-Length as 0) and its UDP loop drops what it cannot parse without answering. So
//! the server classifies each datagram itself first: [`classify_message`] is the single
//! parse + validation entry point (fuzzed and run against the RFC 4475 corpus), and
//! [`bad_request_for`] builds the stateless error response for a rejected request when
//! enough of its headers survive to address one (Via, From, To, Call-ID, CSeq).

use rsipstack::sip::headers::ToTypedHeader;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Method, SipMessage};

/// Largest message we accept (UDP datagram or one framed TCP message).
pub const MAX_MESSAGE_BYTES: usize = 65_535;

/// Why a message was refused. `status()` is the response a request gets for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseRejection {
    #[error("message larger than {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
    #[error("no end of headers (CRLF CRLF)")]
    NoHeaderEnd,
    #[error("start line: {0}")]
    StartLine(String),
    #[error("SIP version not supported: {0}")]
    Version(String),
    #[error("Request-URI scheme not supported: {0}")]
    UriScheme(String),
    /// A well-formed request whose method we do not know (RFC 3261 §8.2.1: 501).
    #[error("method not implemented: {0}")]
    UnknownMethod(String),
    #[error("malformed header line: {0}")]
    HeaderLine(String),
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    #[error("invalid {header} header: {reason}")]
    InvalidHeader {
        header: &'static str,
        reason: String,
    },
    #[error("CSeq method {cseq} does not match request method {method}")]
    CSeqMethodMismatch { cseq: String, method: String },
    #[error("Content-Length {declared} exceeds the {available} body bytes received")]
    BodyTruncated { declared: usize, available: usize },
}

impl ParseRejection {
    /// The status a request refused for this reason is answered with.
    pub fn status(&self) -> u16 {
        match self {
            ParseRejection::Version(_) => 505,
            ParseRejection::UriScheme(_) => 416,
            ParseRejection::UnknownMethod(_) => 501,
            ParseRejection::TooLarge => 513,
            _ => 400,
        }
    }

    pub fn reason_phrase(&self) -> &'static str {
        match self.status() {
            505 => "Version Not Supported",
            416 => "Unsupported URI Scheme",
            501 => "Not Implemented",
            513 => "Message Too Large",
            _ => "Bad Request",
        }
    }
}

/// Parse and validate one complete SIP message (a datagram, or one framed stream message).
/// `Ok` means rsipstack can take it and every header the transaction and dialog layers rely
/// on is present and well-formed.
pub fn classify_message(bytes: &[u8]) -> Result<(), ParseRejection> {
    parse_and_validate(bytes).map(|_| ())
}

/// As [`classify_message`], returning the parsed message.
pub fn parse_and_validate(bytes: &[u8]) -> Result<SipMessage, ParseRejection> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ParseRejection::TooLarge);
    }
    let header_end = find(bytes, b"\r\n\r\n").ok_or(ParseRejection::NoHeaderEnd)?;
    let head = bytes.get(..header_end).unwrap_or_default();
    let body_len = bytes.len().saturating_sub(header_end + 4);
    check_lines(head, body_len)?;
    check_addressing_syntax(head)?;
    let message = SipMessage::try_from(bytes).map_err(|e| start_line_rejection(head, e))?;
    validate_parsed(&message)?;
    Ok(message)
}

/// The checks that need the parsed message; also used for stream transports, where
/// rsipstack frames and parses before we see the message.
pub fn validate_parsed(message: &SipMessage) -> Result<(), ParseRejection> {
    let invalid = |header: &'static str| {
        move |e: rsipstack::sip::Error| ParseRejection::InvalidHeader {
            header,
            reason: e.to_string(),
        }
    };
    message
        .via_header()
        .map_err(|_| ParseRejection::MissingHeader("Via"))?;
    message
        .top_via_header()
        .map_err(invalid("Via"))?
        .typed()
        .map_err(invalid("Via"))?;
    let from = message
        .from_header()
        .map_err(|_| ParseRejection::MissingHeader("From"))?;
    from.typed().map_err(invalid("From"))?;
    // rsipstack keys transactions on the From tag (RFC 3261 8.1.1.3 makes it mandatory).
    if from.tag().ok().flatten().is_none() {
        return Err(ParseRejection::InvalidHeader {
            header: "From",
            reason: "no tag".into(),
        });
    }
    message
        .to_header()
        .map_err(|_| ParseRejection::MissingHeader("To"))?
        .typed()
        .map_err(invalid("To"))?;
    let call_id = message
        .call_id_header()
        .map_err(|_| ParseRejection::MissingHeader("Call-ID"))?;
    if call_id.value().trim().is_empty() || call_id.value().contains(char::is_whitespace) {
        return Err(ParseRejection::InvalidHeader {
            header: "Call-ID",
            reason: "empty or contains whitespace".into(),
        });
    }
    let cseq = message
        .cseq_header()
        .map_err(|_| ParseRejection::MissingHeader("CSeq"))?
        .typed()
        .map_err(invalid("CSeq"))?;
    if let SipMessage::Request(request) = message {
        if cseq.method != request.method {
            return Err(ParseRejection::CSeqMethodMismatch {
                cseq: cseq.method.to_string(),
                method: request.method.to_string(),
            });
        }
        if let Ok(max_forwards) = message.max_forwards_header()
            && max_forwards.value().trim().parse::<u8>().is_err()
        {
            return Err(ParseRejection::InvalidHeader {
                header: "Max-Forwards",
                reason: format!("{:?} is not 0..255", max_forwards.value()),
            });
        }
        if request.method == Method::Register || request.method == Method::Invite {
            for contact in message.contact_headers() {
                if contact.value().trim() != "*" {
                    parse_contact_list(contact.value()).map_err(invalid("Contact"))?;
                }
            }
        }
    }
    Ok(())
}

/// The header lines rsipstack would silently skip: no colon, a bad header name, bytes that
/// are not UTF-8, and a Content-Length that is unreadable, repeated with different values
/// or larger than the body received.
fn check_lines(head: &[u8], body_len: usize) -> Result<(), ParseRejection> {
    let mut content_length: Option<usize> = None;
    for (index, raw_line) in head.split(|&b| b == b'\n').enumerate() {
        let raw_line = raw_line.strip_suffix(b"\r").unwrap_or(raw_line);
        let line = std::str::from_utf8(raw_line)
            .map_err(|_| ParseRejection::HeaderLine(format!("line {} is not UTF-8", index + 1)))?;
        if index == 0 {
            if line.trim().is_empty() {
                return Err(ParseRejection::StartLine("empty".into()));
            }
            // rsipstack accepts any SIP/x.y; we speak 2.0 only (505 otherwise).
            let mut parts = line.split_whitespace();
            let version = if line.starts_with("SIP/") {
                parts.next()
            } else {
                let uri = parts.nth(1).unwrap_or_default();
                // A Request-URI is a bare addr-spec; `<sip:...>` is a name-addr and makes the
                // request malformed (400), not a URI with an unknown scheme (416).
                if uri.starts_with('<') || uri.ends_with('>') {
                    return Err(ParseRejection::StartLine(format!(
                        "Request-URI in angle brackets: {}",
                        truncate(uri)
                    )));
                }
                let scheme = uri.split(':').next().unwrap_or_default();
                // We route sip:, sips: and tel: only (RFC 3261 §8.2.2.1: 416 otherwise).
                if uri.contains(':')
                    && !["sip", "sips", "tel"]
                        .iter()
                        .any(|k| scheme.eq_ignore_ascii_case(k))
                {
                    return Err(ParseRejection::UriScheme(truncate(scheme)));
                }
                parts.next()
            };
            if let Some(version) = version
                && version.starts_with("SIP/")
                && !version.eq_ignore_ascii_case("SIP/2.0")
            {
                return Err(ParseRejection::Version(truncate(version)));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            continue; // folded continuation of the previous header
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ParseRejection::HeaderLine(truncate(line)));
        };
        let name = name.trim_end();
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(ParseRejection::HeaderLine(truncate(line)));
        }
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
            let declared: usize =
                value
                    .trim()
                    .parse()
                    .map_err(|_| ParseRejection::InvalidHeader {
                        header: "Content-Length",
                        reason: format!("{:?} is not a number", truncate(value.trim())),
                    })?;
            if content_length.is_some_and(|previous| previous != declared) {
                return Err(ParseRejection::InvalidHeader {
                    header: "Content-Length",
                    reason: "repeated with different values".into(),
                });
            }
            content_length = Some(declared);
        }
    }
    if let Some(declared) = content_length
        && declared > body_len
    {
        return Err(ParseRejection::BodyTruncated {
            declared,
            available: body_len,
        });
    }
    Ok(())
}

/// The method named by the first CSeq header line (`CSeq: 1 METHOD`), if there is one.
fn cseq_method(head: &[u8]) -> Option<String> {
    let head = std::str::from_utf8(head).ok()?;
    let value = head.lines().skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("cseq").then_some(value)
    })?;
    value.split_whitespace().nth(1).map(str::to_string)
}

/// The methods rsipstack parses (case-sensitive, as RFC 3261 method tokens are).
const KNOWN_METHODS: [&str; 14] = [
    "ACK",
    "BYE",
    "CANCEL",
    "INFO",
    "INVITE",
    "MESSAGE",
    "NOTIFY",
    "OPTIONS",
    "PRACK",
    "PUBLISH",
    "REFER",
    "REGISTER",
    "SUBSCRIBE",
    "UPDATE",
];

fn start_line_rejection(head: &[u8], error: rsipstack::sip::Error) -> ParseRejection {
    let first = head
        .split(|&b| b == b'\n')
        .next()
        .map(|l| String::from_utf8_lossy(l).trim().to_string())
        .unwrap_or_default();
    let mut parts = first.split_whitespace();
    let (a, b, c) = (parts.next(), parts.next(), parts.next());
    if first.starts_with("SIP/") {
        if a != Some("SIP/2.0") {
            return ParseRejection::Version(truncate(a.unwrap_or_default()));
        }
        return ParseRejection::StartLine(error.to_string());
    }
    if let Some(version) = c
        && !version.eq_ignore_ascii_case("SIP/2.0")
    {
        return ParseRejection::Version(truncate(version));
    }
    if let Some(uri) = b {
        let scheme = uri.split(':').next().unwrap_or_default();
        let known = ["sip", "sips", "tel"];
        if uri.contains(':') && !known.iter().any(|k| scheme.eq_ignore_ascii_case(k)) {
            return ParseRejection::UriScheme(truncate(scheme));
        }
    }
    // rsipstack's parser refuses any method it does not know; RFC 3261 wants such a request
    // (a token method, a URI, SIP/2.0) treated as well-formed and answered 501.
    if let (Some(method), Some(_), Some(_)) = (a, b, c)
        && method.bytes().all(is_token_byte)
        && !KNOWN_METHODS.contains(&method)
    {
        // rsipstack never parsed it, so check here what validate_parsed checks for known
        // methods: the CSeq must name the same method.
        return match cseq_method(head) {
            Some(cseq) if cseq == method => ParseRejection::UnknownMethod(truncate(method)),
            Some(cseq) => ParseRejection::CSeqMethodMismatch {
                cseq: truncate(&cseq),
                method: truncate(method),
            },
            None => ParseRejection::MissingHeader("CSeq"),
        };
    }
    ParseRejection::StartLine(error.to_string())
}

/// What rsipstack's typed From/To/Contact parsing lets through (RFC 4475 §3.1.2.6, 3.1.2.11,
/// 3.1.2.13-15, 3.3.8): repeated single-value headers (which From or Call-ID would a
/// transaction use?), headers inside the Request-URI, and name-addrs that do not parse as
/// `[display-name] <URI>` — an unterminated quote, a display name that is neither a quoted
/// string nor tokens, spaces inside the URI, a bare URI with `?headers`.
fn check_addressing_syntax(head: &[u8]) -> Result<(), ParseRejection> {
    let Ok(head) = std::str::from_utf8(head) else {
        return Ok(()); // check_lines already refused non-UTF-8
    };
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap_or_default();
    if !start.starts_with("SIP/")
        && start
            .split_whitespace()
            .nth(1)
            .is_some_and(|uri| uri.contains('?'))
    {
        return Err(ParseRejection::StartLine(
            "Request-URI carries ?headers".into(),
        ));
    }
    // Unfold continuation lines first so a folded value is judged whole.
    let mut headers: Vec<String> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else {
            headers.push(line.to_string());
        }
    }
    let mut seen = [0usize; 5];
    const SINGLE: [(&str, &str, &str); 5] = [
        ("From", "from", "f"),
        ("To", "to", "t"),
        ("Call-ID", "call-id", "i"),
        ("CSeq", "cseq", "cseq"),
        ("Max-Forwards", "max-forwards", "max-forwards"),
    ];
    for header in &headers {
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        for (i, (label, long, short)) in SINGLE.iter().enumerate() {
            if name == *long || name == *short {
                seen[i] += 1;
                if seen[i] > 1 {
                    return Err(ParseRejection::InvalidHeader {
                        header: label,
                        reason: "repeated".into(),
                    });
                }
            }
        }
        let label = match name.as_str() {
            "from" | "f" => "From",
            "to" | "t" => "To",
            "contact" | "m" => "Contact",
            _ => continue,
        };
        let value = value.trim();
        if label == "Contact" && value == "*" {
            continue;
        }
        for part in split_outside_quotes_and_angles(value, label == "Contact") {
            name_addr_ok(part.trim()).map_err(|reason| ParseRejection::InvalidHeader {
                header: label,
                reason: reason.into(),
            })?;
        }
    }
    Ok(())
}

/// The entries of one Contact header value. rsipstack's own list splitting breaks on a
/// folded list whose entries carry quoted `<...>` parameters (RFC 5626's
/// `+sip.instance="<urn:uuid:...>"`), so the value is unfolded and split here, quote- and
/// angle-aware, and only each single entry is handed to rsipstack.
pub fn parse_contact_list(
    value: &str,
) -> Result<Vec<rsipstack::sip::typed::Contact>, rsipstack::sip::Error> {
    let unfolded = value
        .split(['\r', '\n'])
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    split_outside_quotes_and_angles(&unfolded, true)
        .into_iter()
        .map(|entry| rsipstack::sip::typed::Contact::parse(entry.trim()))
        .collect()
}

/// Splits a header value at commas outside quotes and angle brackets (Contact lists);
/// `split: false` returns the value whole.
fn split_outside_quotes_and_angles(value: &str, split: bool) -> Vec<&str> {
    if !split {
        return vec![value];
    }
    let (mut parts, mut start, mut quoted, mut angled, mut escaped) =
        (Vec::new(), 0, false, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angled = true,
            '>' if !quoted => angled = false,
            ',' if !quoted && !angled => {
                parts.push(value.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value.get(start..).unwrap_or_default());
    parts
}

/// `[display-name] <URI> *(;param)` or a bare `URI *(;param)` (RFC 3261 §20.10, 25.1).
fn name_addr_ok(value: &str) -> Result<(), &'static str> {
    let mut rest = value;
    // A quoted display name: must close.
    if let Some(after) = rest.strip_prefix('"') {
        let mut escaped = false;
        let mut close = None;
        for (i, c) in after.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    close = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let close = close.ok_or("unterminated quoted display name")?;
        rest = after.get(close + 1..).unwrap_or_default().trim_start();
        if !rest.starts_with('<') {
            return Err("quoted display name without <URI>");
        }
    }
    if let Some(open) = rest.find('<') {
        let display = rest.get(..open).unwrap_or_default();
        if display.contains('"')
            || !display
                .split_whitespace()
                .all(|word| word.bytes().all(is_token_byte))
        {
            return Err("display name is neither a quoted string nor tokens");
        }
        let inner_and_after = rest.get(open + 1..).unwrap_or_default();
        let close = inner_and_after.find('>').ok_or("unclosed <")?;
        let uri = inner_and_after.get(..close).unwrap_or_default();
        if uri.is_empty() || uri.contains(char::is_whitespace) || !uri.contains(':') {
            return Err("the URI in <> is not an addr-spec");
        }
        let after = inner_and_after.get(close + 1..).unwrap_or_default().trim();
        // (Parameter values may be quoted strings holding <>, e.g. +sip.instance.)
        if !(after.is_empty() || after.starts_with(';')) {
            return Err("text after <URI> that is not a parameter");
        }
        return Ok(());
    }
    // A bare addr-spec: no spaces, no ?headers (those need <>), no stray quotes.
    let uri = rest.split(';').next().unwrap_or_default().trim();
    if uri.is_empty() || uri.contains(char::is_whitespace) || !uri.contains(':') {
        return Err("not an addr-spec");
    }
    if rest.contains(['?', '"', '>']) {
        return Err("a URI with headers or quotes must be enclosed in <>");
    }
    Ok(())
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The raw header lines needed to address a response, found without the full parser.
struct AddressingLines<'a> {
    vias: Vec<&'a str>,
    from: &'a str,
    to: &'a str,
    call_id: &'a str,
    cseq: &'a str,
}

fn addressing_lines(head: &str) -> Option<AddressingLines<'_>> {
    let mut vias = Vec::new();
    let (mut from, mut to, mut call_id, mut cseq) = (None, None, None, None);
    for line in head.split('\n').skip(1) {
        let line = line.trim_end_matches('\r');
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match name.trim().to_ascii_lowercase().as_str() {
            "via" | "v" => vias.push(value),
            "from" | "f" => from = from.or(Some(value)),
            "to" | "t" => to = to.or(Some(value)),
            "call-id" | "i" => call_id = call_id.or(Some(value)),
            "cseq" => cseq = cseq.or(Some(value)),
            _ => {}
        }
    }
    if vias.is_empty() {
        return None;
    }
    Some(AddressingLines {
        vias,
        from: from?,
        to: to?,
        call_id: call_id?,
        cseq: cseq?,
    })
}

/// A stateless final response to a request we refuse, built from the request's own header
/// lines; `None` when it is a response, not a request, or not addressable. The caller sends
/// it to the packet's source address (the RFC 3581 behaviour: source IP and port, whatever
/// the Via says).
pub fn bad_request_for(bytes: &[u8], rejection: &ParseRejection, server: &str) -> Option<Vec<u8>> {
    let head_end = find(bytes, b"\r\n\r\n").unwrap_or(bytes.len().min(MAX_MESSAGE_BYTES));
    let head = String::from_utf8_lossy(bytes.get(..head_end)?);
    let start = head.split('\n').next()?.trim();
    if start.starts_with("SIP/") || start.is_empty() {
        return None;
    }
    let method = start.split_whitespace().next()?;
    if method.eq_ignore_ascii_case("ACK") {
        return None; // never answer an ACK
    }
    let lines = addressing_lines(&head)?;
    // Header values go back verbatim; refuse anything that could smuggle extra lines.
    let clean = |s: &str| !s.contains(['\r', '\n']) && s.len() <= 1024;
    if !lines.vias.iter().all(|v| clean(v))
        || ![lines.from, lines.to, lines.call_id, lines.cseq]
            .iter()
            .all(|v| clean(v))
    {
        return None;
    }
    let mut out = format!(
        "SIP/2.0 {} {}\r\n",
        rejection.status(),
        rejection.reason_phrase()
    );
    for via in &lines.vias {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    out.push_str(&format!("From: {}\r\n", lines.from));
    if lines.to.to_ascii_lowercase().contains("tag=") {
        out.push_str(&format!("To: {}\r\n", lines.to));
    } else {
        let tag = rsipstack::transaction::make_tag();
        out.push_str(&format!("To: {};tag={}\r\n", lines.to, tag));
    }
    out.push_str(&format!("Call-ID: {}\r\n", lines.call_id));
    out.push_str(&format!("CSeq: {}\r\n", lines.cseq));
    // The reason text is ours (no request bytes in it beyond 80 sanitised chars).
    let warning: String = rejection
        .to_string()
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .take(120)
        .collect();
    out.push_str(&format!("Warning: 399 callscope \"{warning}\"\r\n"));
    out.push_str(&format!("Server: {server}\r\n"));
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &str = "OPTIONS sip:acme.test SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds;rport\r\n\
        Max-Forwards: 70\r\n\
        To: <sip:acme.test>\r\n\
        From: <sip:alice@acme.test>;tag=1928301774\r\n\
        Call-ID: a84b4c76e66710@pc33\r\n\
        CSeq: 63104 OPTIONS\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn a_well_formed_request_passes() {
        assert_eq!(classify_message(OPTIONS.as_bytes()), Ok(()));
    }

    #[test]
    fn missing_call_id_is_refused_but_not_addressable() {
        let msg = OPTIONS.replace("Call-ID: a84b4c76e66710@pc33\r\n", "");
        let err = classify_message(msg.as_bytes()).unwrap_err();
        assert_eq!(err, ParseRejection::MissingHeader("Call-ID"));
        assert!(bad_request_for(msg.as_bytes(), &err, "t").is_none());
    }

    #[test]
    fn cseq_method_mismatch_gets_an_addressed_400() {
        let msg = OPTIONS.replace("CSeq: 63104 OPTIONS", "CSeq: 63104 INVITE");
        let err = classify_message(msg.as_bytes()).unwrap_err();
        assert!(matches!(err, ParseRejection::CSeqMethodMismatch { .. }));
        let resp = String::from_utf8(bad_request_for(msg.as_bytes(), &err, "t").unwrap()).unwrap();
        assert!(resp.starts_with("SIP/2.0 400 Bad Request\r\n"), "{resp}");
        assert!(resp.contains("Call-ID: a84b4c76e66710@pc33\r\n"));
        assert!(resp.contains("To: <sip:acme.test>;tag="));
        // The response itself parses and validates.
        assert_eq!(classify_message(resp.as_bytes()), Ok(()));
    }

    #[test]
    fn header_line_without_colon_and_truncated_body_are_refused() {
        let msg = OPTIONS.replace("Max-Forwards: 70", "Max-Forwards 70");
        assert!(matches!(
            classify_message(msg.as_bytes()),
            Err(ParseRejection::HeaderLine(_))
        ));
        let msg = OPTIONS.replace("Content-Length: 0", "Content-Length: 50");
        assert_eq!(
            classify_message(msg.as_bytes()),
            Err(ParseRejection::BodyTruncated {
                declared: 50,
                available: 0
            })
        );
    }

    #[test]
    fn version_and_scheme_get_their_own_codes() {
        let msg = OPTIONS.replace(
            "OPTIONS sip:acme.test SIP/2.0",
            "OPTIONS sip:acme.test SIP/7.0",
        );
        assert_eq!(classify_message(msg.as_bytes()).unwrap_err().status(), 505);
        let msg = OPTIONS.replace(
            "OPTIONS sip:acme.test SIP/2.0",
            "OPTIONS nope:acme.test SIP/2.0",
        );
        assert_eq!(classify_message(msg.as_bytes()).unwrap_err().status(), 416);
    }

    #[test]
    fn unknown_method_is_501_and_angle_bracket_request_uri_is_400() {
        let request = |start: &str, cseq: &str| {
            format!(
                "{start}\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\n\
                 To: <sip:b@x>\r\nCall-ID: c1\r\nCSeq: {cseq}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let unknown = classify_message(request("FROB sip:b@x SIP/2.0", "1 FROB").as_bytes());
        assert_eq!(unknown.unwrap_err().status(), 501);
        let mismatch = classify_message(request("FROB sip:b@x SIP/2.0", "1 INVITE").as_bytes());
        assert_eq!(mismatch.unwrap_err().status(), 400);
        let angles = classify_message(request("OPTIONS <sip:b@x> SIP/2.0", "1 OPTIONS").as_bytes());
        assert_eq!(angles.unwrap_err().status(), 400);
        assert!(
            classify_message(request("OPTIONS sip:b@x SIP/2.0", "1 OPTIONS").as_bytes()).is_ok()
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for len in 0..600usize {
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                buf.push((seed & 0xff) as u8);
            }
            let _ = classify_message(&buf);
            // Also mutate a valid message at one position.
            let mut m = OPTIONS.as_bytes().to_vec();
            let at = len % m.len();
            m[at] = (seed >> 8) as u8;
            if let Err(e) = classify_message(&m) {
                let _ = bad_request_for(&m, &e, "t");
            }
        }
    }
}
