//! SDP (RFC 4566 / RFC 3264) as far as a B2BUA needs it: read an offer or answer (address,
//! audio port, payload types with their rtpmap/fmtp, direction) and write ours.
//!
//! The parser is strict about structure and lenient about what it does not use: unknown
//! attributes and non-audio media are kept out of the way, never interpreted. It never
//! panics: every number is parsed with bounds, every line is length-limited, and the whole
//! body is size-limited, because SDP arrives from anyone who can send an INVITE.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::media::{Codec, Direction};

/// Bodies larger than this are refused outright (a real audio offer is under 2 KB).
pub const MAX_SDP_BYTES: usize = 16 * 1024;
/// More lines than this is not an audio call.
const MAX_LINES: usize = 256;
/// More m= sections than this is not an audio call either.
const MAX_MEDIA: usize = 16;
/// Payload types listed on one m= line.
const MAX_FORMATS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP body too large ({0} bytes)")]
    TooLarge(usize),
    #[error("SDP is not UTF-8 text")]
    NotText,
    #[error("SDP line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    #[error("SDP has no usable audio stream")]
    NoAudio,
    #[error("no codec in common (offered: {0})")]
    NoCommonCodec(String),
}

/// One payload type of an audio m= line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadFormat {
    pub payload_type: u8,
    /// Encoding name as written in a=rtpmap (e.g. "PCMU", "opus"); static types without
    /// rtpmap get their RFC 3551 name.
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
    pub fmtp: Option<String>,
}

impl PayloadFormat {
    /// The codec this is, if callscope speaks it.
    pub fn codec(&self) -> Option<Codec> {
        let name = self.encoding.to_ascii_lowercase();
        match (name.as_str(), self.clock_rate) {
            ("pcmu", 8000) => Some(Codec::Pcmu),
            ("pcma", 8000) => Some(Codec::Pcma),
            ("opus", 48000) => Some(Codec::Opus),
            ("g722", 8000) => Some(Codec::G722),
            ("telephone-event", _) => Some(Codec::TelephoneEvent),
            _ => None,
        }
    }
}

/// An m= section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// "audio", "video", ...
    pub kind: String,
    /// 0 means the stream is rejected/disabled (RFC 3264 §6).
    pub port: u16,
    pub protocol: String,
    pub formats: Vec<PayloadFormat>,
    /// c= inside the media section, overriding the session's.
    pub connection: Option<IpAddr>,
    /// a=sendrecv/sendonly/recvonly/inactive of this section, if written here.
    pub direction: Option<Direction>,
    pub ptime: Option<u32>,
    /// `a=rtcp-mux`: the far end sends and accepts RTCP on the RTP port (RFC 5761).
    pub rtcp_mux: bool,
    /// `a=rtcp:<port>`: where the far end wants RTCP when it is not on RTP port + 1 (RFC 3605).
    pub rtcp_port: Option<u16>,
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin_session_id: u64,
    pub origin_version: u64,
    /// Session-level c= address.
    pub connection: Option<IpAddr>,
    /// Session-level direction attribute.
    pub direction: Option<Direction>,
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    /// The first audio stream that is not disabled.
    pub fn audio(&self) -> Option<&MediaDescription> {
        self.media.iter().find(|m| m.kind == "audio" && m.port != 0)
    }

    /// Where the audio goes: media-level c= wins over session-level c=.
    pub fn audio_address(&self) -> Option<IpAddr> {
        let audio = self.audio()?;
        audio.connection.or(self.connection)
    }

    /// The audio stream's effective direction (media attribute, else session attribute,
    /// else sendrecv). An RFC 2543-style hold (c=0.0.0.0 with no attribute) means the far
    /// end wants to receive nothing: we treat it as `SendOnly` from their side, as most
    /// PBXes do.
    pub fn audio_direction(&self) -> Direction {
        let explicit = self
            .audio()
            .and_then(|m| m.direction)
            .or(self.direction)
            .unwrap_or(Direction::SendRecv);
        let zero_address = match self.audio_address() {
            Some(IpAddr::V4(v4)) => v4.is_unspecified(),
            _ => false,
        };
        if zero_address && explicit == Direction::SendRecv {
            Direction::SendOnly
        } else {
            explicit
        }
    }
}

/// Parse an SDP body.
pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
    if body.len() > MAX_SDP_BYTES {
        return Err(SdpError::TooLarge(body.len()));
    }
    let text = std::str::from_utf8(body).map_err(|_| SdpError::NotText)?;
    let mut sdp = SessionDescription {
        origin_session_id: 0,
        origin_version: 0,
        connection: None,
        direction: None,
        media: Vec::new(),
    };
    let mut saw_version = false;
    let mut saw_origin = false;
    for (index, raw) in text.split('\n').enumerate() {
        let line_no = index + 1;
        if index >= MAX_LINES {
            return Err(malformed(line_no, "too many lines"));
        }
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        let (kind, value) = match line.split_once('=') {
            Some((k, v)) if k.len() == 1 => (k, v),
            _ => return Err(malformed(line_no, "expected <type>=<value>")),
        };
        if !saw_version {
            if kind != "v" || value != "0" {
                return Err(malformed(line_no, "SDP must start with v=0"));
            }
            saw_version = true;
            continue;
        }
        match kind {
            "o" => {
                let fields: Vec<&str> = value.split(' ').collect();
                if fields.len() != 6 {
                    return Err(malformed(line_no, "o= needs 6 fields"));
                }
                sdp.origin_session_id = parse_u64(fields[1], line_no, "o= session id")?;
                sdp.origin_version = parse_u64(fields[2], line_no, "o= version")?;
                saw_origin = true;
            }
            "c" => {
                let address = parse_connection(value, line_no)?;
                match sdp.media.last_mut() {
                    Some(media) => media.connection = address,
                    None => sdp.connection = address,
                }
            }
            "m" => {
                if sdp.media.len() >= MAX_MEDIA {
                    return Err(malformed(line_no, "too many m= lines"));
                }
                sdp.media.push(parse_media_line(value, line_no)?);
            }
            "a" => apply_attribute(&mut sdp, value, line_no)?,
            _ => {} // s=, t=, b=, i=, ... carry nothing a B2BUA acts on
        }
    }
    if !saw_version {
        return Err(malformed(1, "empty SDP"));
    }
    if !saw_origin {
        return Err(malformed(0, "missing o= line"));
    }
    Ok(sdp)
}

fn malformed(line: usize, reason: &str) -> SdpError {
    SdpError::Malformed {
        line,
        reason: reason.to_string(),
    }
}

fn parse_u64(text: &str, line: usize, what: &str) -> Result<u64, SdpError> {
    text.parse::<u64>()
        .map_err(|_| malformed(line, &format!("{what} is not a number")))
}

fn parse_connection(value: &str, line: usize) -> Result<Option<IpAddr>, SdpError> {
    let fields: Vec<&str> = value.split(' ').collect();
    if fields.len() != 3 || fields[0] != "IN" {
        return Err(malformed(line, "c= must be 'IN IP4|IP6 <address>'"));
    }
    // Multicast addresses may carry /ttl: keep the address part only.
    let address = fields[2].split('/').next().unwrap_or_default();
    match fields[1] {
        "IP4" | "IP6" => address
            .parse::<IpAddr>()
            .map(Some)
            .map_err(|_| malformed(line, "c= address is not an IP address")),
        _ => Err(malformed(line, "c= address type must be IP4 or IP6")),
    }
}

fn parse_media_line(value: &str, line: usize) -> Result<MediaDescription, SdpError> {
    let fields: Vec<&str> = value.split(' ').filter(|f| !f.is_empty()).collect();
    if fields.len() < 4 {
        return Err(malformed(
            line,
            "m= needs media, port, protocol and formats",
        ));
    }
    // "port/count" is legal; we use the base port.
    let port_text = fields[1].split('/').next().unwrap_or_default();
    let port = port_text
        .parse::<u16>()
        .map_err(|_| malformed(line, "m= port is not a port number"))?;
    let kind = fields[0].to_string();
    let protocol = fields[2].to_string();
    let format_fields = &fields[3..];
    if format_fields.len() > MAX_FORMATS {
        return Err(malformed(line, "too many formats on m= line"));
    }
    let mut formats = Vec::with_capacity(format_fields.len());
    if kind == "audio" && protocol.starts_with("RTP/") {
        for field in format_fields {
            let payload_type = field
                .parse::<u8>()
                .ok()
                .filter(|pt| *pt <= 127)
                .ok_or_else(|| malformed(line, "payload type must be 0..127"))?;
            formats.push(static_format(payload_type));
        }
    }
    Ok(MediaDescription {
        kind,
        port,
        protocol,
        formats,
        connection: None,
        direction: None,
        ptime: None,
        rtcp_mux: false,
        rtcp_port: None,
    })
}

/// RFC 3551 static payload types we may meet without an rtpmap.
fn static_format(payload_type: u8) -> PayloadFormat {
    let (encoding, clock_rate) = match payload_type {
        0 => ("PCMU", 8000),
        8 => ("PCMA", 8000),
        3 => ("GSM", 8000),
        9 => ("G722", 8000),
        18 => ("G729", 8000),
        _ => ("", 0),
    };
    PayloadFormat {
        payload_type,
        encoding: encoding.to_string(),
        clock_rate,
        channels: None,
        fmtp: None,
    }
}

fn apply_attribute(sdp: &mut SessionDescription, value: &str, line: usize) -> Result<(), SdpError> {
    let (name, rest) = match value.split_once(':') {
        Some((n, r)) => (n, Some(r)),
        None => (value, None),
    };
    let direction = match name {
        "sendrecv" => Some(Direction::SendRecv),
        "sendonly" => Some(Direction::SendOnly),
        "recvonly" => Some(Direction::RecvOnly),
        "inactive" => Some(Direction::Inactive),
        _ => None,
    };
    if let Some(direction) = direction {
        match sdp.media.last_mut() {
            Some(media) => media.direction = Some(direction),
            None => sdp.direction = Some(direction),
        }
        return Ok(());
    }
    let Some(media) = sdp.media.last_mut() else {
        return Ok(()); // session-level attributes other than direction: not ours
    };
    match (name, rest) {
        ("rtpmap", Some(rest)) => {
            let (pt_text, encoding) = rest
                .split_once(' ')
                .ok_or_else(|| malformed(line, "a=rtpmap needs '<pt> <encoding>/<rate>'"))?;
            let payload_type = pt_text
                .parse::<u8>()
                .map_err(|_| malformed(line, "a=rtpmap payload type is not a number"))?;
            let mut parts = encoding.trim().split('/');
            let name = parts.next().unwrap_or_default();
            let rate = parts
                .next()
                .and_then(|r| r.parse::<u32>().ok())
                .ok_or_else(|| malformed(line, "a=rtpmap clock rate is not a number"))?;
            let channels = match parts.next() {
                Some(c) => Some(
                    c.parse::<u8>()
                        .map_err(|_| malformed(line, "a=rtpmap channels is not a number"))?,
                ),
                None => None,
            };
            if name.is_empty() {
                return Err(malformed(line, "a=rtpmap without encoding name"));
            }
            // An rtpmap for a payload type not on the m= line is ignored (RFC 4566 §6).
            if let Some(format) = media
                .formats
                .iter_mut()
                .find(|f| f.payload_type == payload_type)
            {
                format.encoding = name.to_string();
                format.clock_rate = rate;
                format.channels = channels;
            }
        }
        ("fmtp", Some(rest)) => {
            if let Some((pt_text, params)) = rest.split_once(' ')
                && let Ok(payload_type) = pt_text.parse::<u8>()
                && let Some(format) = media
                    .formats
                    .iter_mut()
                    .find(|f| f.payload_type == payload_type)
            {
                format.fmtp = Some(params.trim().to_string());
            }
        }
        ("rtcp-mux", None) => media.rtcp_mux = true,
        ("rtcp", Some(rest)) => {
            // "a=rtcp:53020" or "a=rtcp:53020 IN IP4 192.0.2.1"; only the port is used (the
            // address is the c= one on every peer we meet). A bad port is ignored: RTCP then
            // goes to RTP port + 1, the RFC 3550 default.
            media.rtcp_port = rest
                .split(' ')
                .next()
                .and_then(|p| p.trim().parse::<u16>().ok())
                .filter(|p| *p != 0);
        }
        ("ptime", Some(rest)) => {
            media.ptime = rest
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|p| *p > 0 && *p <= 1000);
        }
        _ => {}
    }
    Ok(())
}

/// What we negotiated on one leg: the payload types both sides use, in the offerer's order
/// of preference (RFC 3264 §6.1 lets the answerer keep it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub formats: Vec<PayloadFormat>,
}

impl Negotiated {
    pub fn codecs(&self) -> Vec<Codec> {
        self.formats.iter().filter_map(|f| f.codec()).collect()
    }
}

/// Pick from an offer the formats we support (`ours`, our preference set). At least one
/// voice codec must remain; telephone-event is kept alongside when offered.
pub fn answer_formats(offer: &SessionDescription, ours: &[Codec]) -> Result<Negotiated, SdpError> {
    let audio = offer.audio().ok_or(SdpError::NoAudio)?;
    let mut formats = Vec::new();
    for format in &audio.formats {
        // One format per codec, except telephone-event, which may come once per clock rate
        // (8000 beside G.711, 48000 beside Opus): the caller picks the one that matches.
        if let Some(codec) = format.codec()
            && ours.contains(&codec)
            && !formats.iter().any(|f: &PayloadFormat| {
                f.codec() == Some(codec)
                    && (codec != Codec::TelephoneEvent || f.clock_rate == format.clock_rate)
            })
        {
            formats.push(format.clone());
        }
    }
    if !formats
        .iter()
        .any(|f| !matches!(f.codec(), Some(Codec::TelephoneEvent)))
    {
        let offered: Vec<String> = audio
            .formats
            .iter()
            .map(|f| format!("{}/{}", f.encoding, f.clock_rate))
            .collect();
        return Err(SdpError::NoCommonCodec(offered.join(",")));
    }
    Ok(Negotiated { formats })
}

/// Our default payload formats for an offer, in preference order.
pub fn default_formats(codecs: &[Codec]) -> Vec<PayloadFormat> {
    let mut formats: Vec<PayloadFormat> = codecs
        .iter()
        .map(|codec| match codec {
            Codec::Pcmu => format_of(0, "PCMU", 8000, None, None),
            Codec::Pcma => format_of(8, "PCMA", 8000, None, None),
            Codec::Opus => format_of(111, "opus", 48000, Some(2), Some("useinbandfec=1")),
            Codec::G722 => format_of(9, "G722", 8000, None, None),
            Codec::TelephoneEvent => format_of(101, "telephone-event", 8000, None, Some("0-16")),
        })
        .collect();
    // Opus runs on a 48 kHz clock; its DTMF events should too (RFC 7587 §7, what WebRTC
    // peers send), so offer telephone-event/48000 beside the 8000 one.
    if codecs.contains(&Codec::Opus) && codecs.contains(&Codec::TelephoneEvent) {
        formats.push(format_of(110, "telephone-event", 48000, None, Some("0-16")));
    }
    formats
}

fn format_of(
    payload_type: u8,
    encoding: &str,
    clock_rate: u32,
    channels: Option<u8>,
    fmtp: Option<&str>,
) -> PayloadFormat {
    PayloadFormat {
        payload_type,
        encoding: encoding.to_string(),
        clock_rate,
        channels,
        fmtp: fmtp.map(str::to_string),
    }
}

/// Everything needed to write one of our SDP bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSdp {
    pub session_id: u64,
    pub version: u64,
    pub address: IpAddr,
    pub port: u16,
    pub formats: Vec<PayloadFormat>,
    pub direction: Direction,
    pub ptime: Option<u32>,
    /// Write `a=rtcp-mux`: offered always (we demultiplex), answered when the offer had it.
    pub rtcp_mux: bool,
}

/// Write an SDP body (CRLF line ends, one audio stream).
pub fn build(local: &LocalSdp) -> String {
    let ip_kind = if local.address.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    };
    let mut out = String::with_capacity(320);
    let payload_types: Vec<String> = local
        .formats
        .iter()
        .map(|f| f.payload_type.to_string())
        .collect();
    // `write!` into a String cannot fail; the results are ignored for that reason.
    let _ = write!(
        out,
        "v=0\r\no=callscope {} {} IN {} {}\r\ns=callscope\r\nc=IN {} {}\r\nt=0 0\r\nm=audio {} RTP/AVP {}\r\n",
        local.session_id,
        local.version,
        ip_kind,
        local.address,
        ip_kind,
        local.address,
        local.port,
        payload_types.join(" ")
    );
    for format in &local.formats {
        let _ = match format.channels {
            Some(channels) => write!(
                out,
                "a=rtpmap:{} {}/{}/{}\r\n",
                format.payload_type, format.encoding, format.clock_rate, channels
            ),
            None => write!(
                out,
                "a=rtpmap:{} {}/{}\r\n",
                format.payload_type, format.encoding, format.clock_rate
            ),
        };
        if let Some(fmtp) = &format.fmtp {
            let _ = write!(out, "a=fmtp:{} {}\r\n", format.payload_type, fmtp);
        }
    }
    if let Some(ptime) = local.ptime {
        let _ = write!(out, "a=ptime:{ptime}\r\n");
    }
    if local.rtcp_mux {
        out.push_str("a=rtcp-mux\r\n");
    }
    let _ = write!(out, "a={}\r\n", direction_attribute(local.direction));
    out
}

pub fn direction_attribute(direction: Direction) -> &'static str {
    match direction {
        Direction::SendRecv => "sendrecv",
        Direction::SendOnly => "sendonly",
        Direction::RecvOnly => "recvonly",
        Direction::Inactive => "inactive",
    }
}

/// The direction an answerer takes for an offered direction (RFC 3264 §6.1).
pub fn answer_direction(offered: Direction) -> Direction {
    match offered {
        Direction::SendRecv => Direction::SendRecv,
        Direction::SendOnly => Direction::RecvOnly,
        Direction::RecvOnly => Direction::SendOnly,
        Direction::Inactive => Direction::Inactive,
    }
}
