//! RTCP (RFC 3550 §6): sender and receiver reports, SDES CNAME, BYE, compound packets, and the
//! rtcp-mux demultiplexer of RFC 5761 for when RTP and RTCP share one port.
//!
//! Parsing never panics; unknown packet types (APP, feedback, XR) are kept as raw bodies so a
//! compound packet carrying them still yields its reports.

use thiserror::Error;

pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;
pub const PT_BYE: u8 = 203;
/// SDES item type of the canonical name (RFC 3550 §6.5.1).
pub const SDES_CNAME: u8 = 1;

const REPORT_BLOCK_LEN: usize = 24;

/// Why bytes are not valid RTCP.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtcpError {
    #[error("RTCP packet of {0} bytes is shorter than its 4-byte header")]
    TooShort(usize),
    #[error("RTCP version {0}, expected 2")]
    BadVersion(u8),
    #[error("RTCP length field says {declared} bytes but only {available} remain")]
    Truncated { declared: usize, available: usize },
    #[error("padding of {0} bytes is zero or longer than the packet")]
    BadPadding(u8),
    #[error("padding bit set on a packet that is not the last of its compound")]
    PaddingNotLast,
    #[error("packet type {packet_type} body of {len} bytes is too short for its {count} entries")]
    BodyTooShort {
        packet_type: u8,
        count: u8,
        len: usize,
    },
    #[error("SDES chunk is malformed")]
    BadSdes,
    #[error("empty compound packet")]
    Empty,
    #[error("{0} entries given; RTCP allows at most 31 per packet")]
    TooManyEntries(usize),
    #[error("SDES item of {0} bytes exceeds 255")]
    ItemTooLong(usize),
    #[error("raw body of {0} bytes is not a multiple of 4")]
    Unaligned(usize),
    #[error("packet of {0} bytes exceeds RTCP's 16-bit length field")]
    TooLong(usize),
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportBlock {
    pub ssrc: u32,
    /// Loss since the last report, 8-bit fixed point (lost/expected × 256).
    pub fraction_lost: u8,
    /// Cumulative loss, a 24-bit signed value on the wire (negative with duplicates).
    pub cumulative_lost: i32,
    pub extended_highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last SR received (0 if none).
    pub last_sr: u32,
    /// Delay since that SR, in units of 1/65536 s.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    /// Fills the loss fields from a receiver's sequence tracker (RFC 3550 A.3); advances the
    /// tracker's fraction-lost interval, so call it once per report sent.
    pub fn from_tracker(
        ssrc: u32,
        tracker: &mut crate::rtp::SequenceTracker,
        jitter: u32,
        last_sr: u32,
        delay_since_last_sr: u32,
    ) -> Self {
        let lost = tracker.lost().clamp(-0x80_0000, 0x7f_ffff) as i32;
        ReportBlock {
            ssrc,
            fraction_lost: tracker.take_fraction_lost(),
            cumulative_lost: lost,
            // The wire field keeps the low 32 bits: 16 bits of cycles, 16 of sequence.
            extended_highest_seq: tracker.extended_max() as u32,
            jitter,
            last_sr,
            delay_since_last_sr,
        }
    }

    /// Round-trip time in 1/65536 s seen by the sender of the SR this block answers, given
    /// the block's arrival time as compact NTP (RFC 3550 §6.4.1: A − LSR − DLSR). None when
    /// the peer has not received an SR yet or the result would be negative (clock skew).
    pub fn round_trip(&self, arrival_compact_ntp: u32) -> Option<u32> {
        if self.last_sr == 0 {
            return None;
        }
        let rtt = arrival_compact_ntp
            .wrapping_sub(self.last_sr)
            .wrapping_sub(self.delay_since_last_sr);
        // A wrapped (huge) value means arrival precedes LSR + DLSR: not a real delay.
        (rtt < 0x8000_0000).then_some(rtt)
    }
}

/// The middle 32 bits of a 64-bit NTP timestamp, as carried in LSR (RFC 3550 §6.4.1).
pub fn compact_ntp(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// A sender report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderReport {
    pub ssrc: u32,
    /// 64-bit NTP timestamp (seconds since 1900 in the high 32 bits, fraction in the low).
    pub ntp_timestamp: u64,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
    pub reports: Vec<ReportBlock>,
}

/// A receiver report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiverReport {
    pub ssrc: u32,
    pub reports: Vec<ReportBlock>,
}

/// One SDES item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesItem<'a> {
    pub kind: u8,
    pub value: &'a [u8],
}

/// One SDES chunk: a source and its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesChunk<'a> {
    pub ssrc: u32,
    pub items: Vec<SdesItem<'a>>,
}

impl<'a> SdesChunk<'a> {
    /// The CNAME item's value, if present.
    pub fn cname(&self) -> Option<&'a [u8]> {
        self.items
            .iter()
            .find(|i| i.kind == SDES_CNAME)
            .map(|i| i.value)
    }
}

/// A BYE: the sources leaving and an optional reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bye<'a> {
    pub ssrcs: Vec<u32>,
    pub reason: Option<&'a [u8]>,
}

/// One RTCP packet of a compound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    SenderReport(SenderReport),
    ReceiverReport(ReceiverReport),
    SourceDescription(Vec<SdesChunk<'a>>),
    Bye(Bye<'a>),
    /// Any other type (APP, RTPFB, PSFB, XR…): header fields and the body after the header.
    Other {
        packet_type: u8,
        count: u8,
        body: &'a [u8],
    },
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn parse_report_blocks(
    body: &[u8],
    at: usize,
    count: u8,
    packet_type: u8,
) -> Result<Vec<ReportBlock>, RtcpError> {
    let short = RtcpError::BodyTooShort {
        packet_type,
        count,
        len: body.len(),
    };
    let need = at + REPORT_BLOCK_LEN * usize::from(count);
    let blocks = body.get(at..need).ok_or(short)?;
    Ok(blocks
        .chunks_exact(REPORT_BLOCK_LEN)
        .map(|b| {
            let w = |i| be32(b, i).unwrap_or(0);
            let lost_word = w(4);
            // Sign-extend the 24-bit cumulative-loss field.
            let cumulative_lost = ((lost_word << 8) as i32) >> 8;
            ReportBlock {
                ssrc: w(0),
                fraction_lost: (lost_word >> 24) as u8,
                cumulative_lost,
                extended_highest_seq: w(8),
                jitter: w(12),
                last_sr: w(16),
                delay_since_last_sr: w(20),
            }
        })
        .collect())
}

fn parse_sdes(body: &[u8], count: u8) -> Result<Vec<SdesChunk<'_>>, RtcpError> {
    let mut chunks = Vec::with_capacity(usize::from(count));
    let mut at = 0usize;
    for _ in 0..count {
        let ssrc = be32(body, at).ok_or(RtcpError::BadSdes)?;
        at += 4;
        let mut items = Vec::new();
        loop {
            let kind = *body.get(at).ok_or(RtcpError::BadSdes)?;
            if kind == 0 {
                // The item list ends with a null octet, then pads to the next 32-bit boundary.
                at = (at + 4) & !3;
                if at > body.len() {
                    return Err(RtcpError::BadSdes);
                }
                break;
            }
            let len = usize::from(*body.get(at + 1).ok_or(RtcpError::BadSdes)?);
            let value = body.get(at + 2..at + 2 + len).ok_or(RtcpError::BadSdes)?;
            items.push(SdesItem { kind, value });
            at += 2 + len;
        }
        chunks.push(SdesChunk { ssrc, items });
    }
    Ok(chunks)
}

fn parse_bye(body: &[u8], count: u8) -> Result<Bye<'_>, RtcpError> {
    let need = 4 * usize::from(count);
    let ids = body.get(..need).ok_or(RtcpError::BodyTooShort {
        packet_type: PT_BYE,
        count,
        len: body.len(),
    })?;
    let ssrcs = ids
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let reason = match body.get(need) {
        Some(&len) => Some(body.get(need + 1..need + 1 + usize::from(len)).ok_or(
            RtcpError::BodyTooShort {
                packet_type: PT_BYE,
                count,
                len: body.len(),
            },
        )?),
        None => None,
    };
    Ok(Bye { ssrcs, reason })
}

/// Iterates the packets of a compound; each item is one packet or the error that ends it.
#[derive(Debug, Clone)]
pub struct RtcpIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Iterator for RtcpIter<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        let r = self.next_packet();
        self.failed = r.is_err();
        Some(r)
    }
}

impl<'a> RtcpIter<'a> {
    fn next_packet(&mut self) -> Result<RtcpPacket<'a>, RtcpError> {
        let buf = self.rest;
        let header = buf.get(..4).ok_or(RtcpError::TooShort(buf.len()))?;
        let version = header[0] >> 6;
        if version != 2 {
            return Err(RtcpError::BadVersion(version));
        }
        let padded = header[0] & 0x20 != 0;
        let count = header[0] & 0x1f;
        let packet_type = header[1];
        let declared = (usize::from(u16::from_be_bytes([header[2], header[3]])) + 1) * 4;
        let packet = buf.get(..declared).ok_or(RtcpError::Truncated {
            declared,
            available: buf.len(),
        })?;
        self.rest = buf.get(declared..).unwrap_or_default();
        let mut body = packet.get(4..).unwrap_or_default();
        if padded {
            // Only the last packet of a compound may carry padding (RFC 3550 §6.4.1).
            if !self.rest.is_empty() {
                return Err(RtcpError::PaddingNotLast);
            }
            let pad = packet.last().copied().unwrap_or(0);
            if pad == 0 || usize::from(pad) > body.len() {
                return Err(RtcpError::BadPadding(pad));
            }
            body = body
                .get(..body.len() - usize::from(pad))
                .unwrap_or_default();
        }
        let too_short = RtcpError::BodyTooShort {
            packet_type,
            count,
            len: body.len(),
        };
        Ok(match packet_type {
            PT_SR => {
                let w = |i| be32(body, i).ok_or(too_short.clone());
                let ntp = (u64::from(w(4)?) << 32) | u64::from(w(8)?);
                RtcpPacket::SenderReport(SenderReport {
                    ssrc: w(0)?,
                    ntp_timestamp: ntp,
                    rtp_timestamp: w(12)?,
                    packet_count: w(16)?,
                    octet_count: w(20)?,
                    reports: parse_report_blocks(body, 24, count, packet_type)?,
                })
            }
            PT_RR => RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: be32(body, 0).ok_or(too_short)?,
                reports: parse_report_blocks(body, 4, count, packet_type)?,
            }),
            PT_SDES => RtcpPacket::SourceDescription(parse_sdes(body, count)?),
            PT_BYE => RtcpPacket::Bye(parse_bye(body, count)?),
            _ => RtcpPacket::Other {
                packet_type,
                count,
                body,
            },
        })
    }
}

/// Iterates the packets in `buf` lazily.
pub fn iter_compound(buf: &[u8]) -> RtcpIter<'_> {
    RtcpIter {
        rest: buf,
        failed: false,
    }
}

/// Parses a whole compound packet. Accepts one that does not start with SR/RR, because
/// reduced-size RTCP (RFC 5506) and some peers' lone BYEs do exactly that.
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpPacket<'_>>, RtcpError> {
    if buf.is_empty() {
        return Err(RtcpError::Empty);
    }
    iter_compound(buf).collect()
}

fn check_count(n: usize) -> Result<u8, RtcpError> {
    if n > 31 {
        Err(RtcpError::TooManyEntries(n))
    } else {
        Ok(n as u8)
    }
}

fn write_report_block(b: &ReportBlock, out: &mut Vec<u8>) {
    out.extend_from_slice(&b.ssrc.to_be_bytes());
    // Clamp to the 24-bit signed range the field can carry (RFC 3550 §6.4.1).
    let lost = b.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32 & 0x00ff_ffff;
    out.extend_from_slice(&((u32::from(b.fraction_lost) << 24) | lost).to_be_bytes());
    for w in [
        b.extended_highest_seq,
        b.jitter,
        b.last_sr,
        b.delay_since_last_sr,
    ] {
        out.extend_from_slice(&w.to_be_bytes());
    }
}

impl RtcpPacket<'_> {
    /// Appends this packet to `out`, header and length included, without padding.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        let start = out.len();
        let (count, packet_type) = match self {
            RtcpPacket::SenderReport(sr) => (check_count(sr.reports.len())?, PT_SR),
            RtcpPacket::ReceiverReport(rr) => (check_count(rr.reports.len())?, PT_RR),
            RtcpPacket::SourceDescription(chunks) => (check_count(chunks.len())?, PT_SDES),
            RtcpPacket::Bye(bye) => (check_count(bye.ssrcs.len())?, PT_BYE),
            RtcpPacket::Other {
                packet_type,
                count,
                body,
            } => {
                if body.len() % 4 != 0 {
                    return Err(RtcpError::Unaligned(body.len()));
                }
                (check_count(usize::from(*count))?, *packet_type)
            }
        };
        out.extend_from_slice(&[0x80 | count, packet_type, 0, 0]);
        match self {
            RtcpPacket::SenderReport(sr) => {
                out.extend_from_slice(&sr.ssrc.to_be_bytes());
                out.extend_from_slice(&sr.ntp_timestamp.to_be_bytes());
                for w in [sr.rtp_timestamp, sr.packet_count, sr.octet_count] {
                    out.extend_from_slice(&w.to_be_bytes());
                }
                sr.reports.iter().for_each(|b| write_report_block(b, out));
            }
            RtcpPacket::ReceiverReport(rr) => {
                out.extend_from_slice(&rr.ssrc.to_be_bytes());
                rr.reports.iter().for_each(|b| write_report_block(b, out));
            }
            RtcpPacket::SourceDescription(chunks) => {
                for chunk in chunks {
                    out.extend_from_slice(&chunk.ssrc.to_be_bytes());
                    for item in &chunk.items {
                        let len = u8::try_from(item.value.len())
                            .map_err(|_| RtcpError::ItemTooLong(item.value.len()))?;
                        out.push(item.kind);
                        out.push(len);
                        out.extend_from_slice(item.value);
                    }
                    // Null terminator, then zeros to the 32-bit boundary (at least one zero).
                    out.push(0);
                    while !(out.len() - start).is_multiple_of(4) {
                        out.push(0);
                    }
                }
            }
            RtcpPacket::Bye(bye) => {
                for s in &bye.ssrcs {
                    out.extend_from_slice(&s.to_be_bytes());
                }
                if let Some(reason) = bye.reason {
                    let len = u8::try_from(reason.len())
                        .map_err(|_| RtcpError::ItemTooLong(reason.len()))?;
                    out.push(len);
                    out.extend_from_slice(reason);
                    while !(out.len() - start).is_multiple_of(4) {
                        out.push(0);
                    }
                }
            }
            RtcpPacket::Other { body, .. } => out.extend_from_slice(body),
        }
        let words = (out.len() - start) / 4 - 1;
        let words = u16::try_from(words).map_err(|_| RtcpError::TooLong(out.len() - start))?;
        out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
        Ok(())
    }
}

/// Serialises packets back to back as one compound.
pub fn write_compound(packets: &[RtcpPacket<'_>], out: &mut Vec<u8>) -> Result<(), RtcpError> {
    if packets.is_empty() {
        return Err(RtcpError::Empty);
    }
    packets.iter().try_for_each(|p| p.write(out))
}

/// What arrived on a port shared by RTP and RTCP (and possibly STUN/DTLS, RFC 7983).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuxedKind {
    Rtp,
    Rtcp,
    /// Neither: STUN, DTLS, or garbage — the caller decides.
    Other,
}

/// Classifies one datagram per RFC 5761 §4: with version 2, a second octet in 192..=223 (an
/// RTP payload type of 64–95 with the marker bit) is RTCP; the rest is RTP if long enough.
/// That is why dynamic RTP payload types must avoid 64–95 when rtcp-mux is used.
pub fn classify_muxed(datagram: &[u8]) -> MuxedKind {
    let (Some(&b0), Some(&b1)) = (datagram.first(), datagram.get(1)) else {
        return MuxedKind::Other;
    };
    if b0 >> 6 != 2 {
        return MuxedKind::Other;
    }
    if (192..=223).contains(&b1) {
        if datagram.len() >= 8 {
            MuxedKind::Rtcp
        } else {
            MuxedKind::Other
        }
    } else if datagram.len() >= crate::rtp::RTP_HEADER_LEN {
        MuxedKind::Rtp
    } else {
        MuxedKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(ssrc: u32, lost: i32) -> ReportBlock {
        ReportBlock {
            ssrc,
            fraction_lost: 0x40,
            cumulative_lost: lost,
            extended_highest_seq: 0x0001_0005,
            jitter: 37,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 65536 / 2,
        }
    }

    fn sample_compound() -> Vec<RtcpPacket<'static>> {
        vec![
            RtcpPacket::SenderReport(SenderReport {
                ssrc: 0xaaaa_0001,
                ntp_timestamp: 0xe8a1_b2c3_8000_0000,
                rtp_timestamp: 160_000,
                packet_count: 1000,
                octet_count: 160_000,
                reports: vec![block(0xbbbb_0002, 5), block(3, -2)],
            }),
            RtcpPacket::SourceDescription(vec![SdesChunk {
                ssrc: 0xaaaa_0001,
                items: vec![SdesItem {
                    kind: SDES_CNAME,
                    value: b"agent@callscope",
                }],
            }]),
            RtcpPacket::Bye(Bye {
                ssrcs: vec![0xaaaa_0001],
                reason: Some(b"hangup"),
            }),
        ]
    }

    #[test]
    fn compound_round_trip() {
        let packets = sample_compound();
        let mut buf = Vec::new();
        write_compound(&packets, &mut buf).unwrap();
        assert_eq!(buf.len() % 4, 0);
        // SR: header 4 + sender info 24 + 2 blocks × 24 = 76 bytes → length field 18.
        assert_eq!(&buf[..4], &[0x82, 200, 0, 18]);
        let parsed = parse_compound(&buf).unwrap();
        assert_eq!(parsed, packets);
        let RtcpPacket::SourceDescription(chunks) = &parsed[1] else {
            panic!("expected SDES");
        };
        assert_eq!(chunks[0].cname(), Some(&b"agent@callscope"[..]));
        assert_eq!(classify_muxed(&buf), MuxedKind::Rtcp);
    }

    #[test]
    fn receiver_report_known_bytes() {
        // RR from SSRC 1 with one block: fraction 0x80, cumulative lost -1 (0xFFFFFF).
        let bytes = [
            0x81, 201, 0, 7, 0, 0, 0, 1, //
            0, 0, 0, 2, 0x80, 0xff, 0xff, 0xff, //
            0, 1, 0, 10, 0, 0, 0, 20, //
            0, 0, 0, 30, 0, 0, 0, 40,
        ];
        let p = parse_compound(&bytes).unwrap();
        let RtcpPacket::ReceiverReport(rr) = &p[0] else {
            panic!("expected RR");
        };
        assert_eq!(rr.ssrc, 1);
        let b = rr.reports[0];
        assert_eq!((b.ssrc, b.fraction_lost, b.cumulative_lost), (2, 0x80, -1));
        assert_eq!(
            (
                b.extended_highest_seq,
                b.jitter,
                b.last_sr,
                b.delay_since_last_sr
            ),
            (65546, 20, 30, 40)
        );
        let mut out = Vec::new();
        p[0].write(&mut out).unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn cumulative_lost_clamps_to_24_bits() {
        let mut out = Vec::new();
        RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: 1,
            reports: vec![block(2, 10_000_000)],
        })
        .write(&mut out)
        .unwrap();
        let p = parse_compound(&out).unwrap();
        let RtcpPacket::ReceiverReport(rr) = &p[0] else {
            panic!("expected RR");
        };
        assert_eq!(rr.reports[0].cumulative_lost, 0x7f_ffff);
    }

    #[test]
    fn sdes_padding_and_empty_bye() {
        // CNAME of 2 bytes: ssrc 4 + item 4 + null → padded chunk of 12 bytes.
        let p = RtcpPacket::SourceDescription(vec![SdesChunk {
            ssrc: 9,
            items: vec![SdesItem {
                kind: SDES_CNAME,
                value: b"ab",
            }],
        }]);
        let mut out = Vec::new();
        p.write(&mut out).unwrap();
        assert_eq!(out.len(), 4 + 12);
        let bye = RtcpPacket::Bye(Bye::default());
        bye.write(&mut out).unwrap();
        assert_eq!(parse_compound(&out).unwrap(), vec![p, bye]);
    }

    #[test]
    fn report_block_from_tracker_and_rtt() {
        let mut t = crate::rtp::SequenceTracker::new();
        // 65534 (probation), then 65535, 0, 2, 3: seq 1 lost across the wrap.
        for s in [65534, 65535, 0, 2, 3] {
            t.update(s);
        }
        let b = ReportBlock::from_tracker(7, &mut t, 12, 0x0001_0000, 0x8000);
        assert_eq!(b.cumulative_lost, 1);
        assert_eq!(b.extended_highest_seq, 0x0001_0003);
        assert_eq!(b.fraction_lost, (256 / 5) as u8);
        // Wire round trip keeps all of it.
        let mut out = Vec::new();
        RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: 1,
            reports: vec![b],
        })
        .write(&mut out)
        .unwrap();
        let RtcpPacket::ReceiverReport(rr) = &parse_compound(&out).unwrap()[0] else {
            panic!("expected RR");
        };
        assert_eq!(rr.reports[0], b);
        // RFC 3550 §6.4.1 example: A=0xb710:8000, LSR=0xb705:2000, DLSR=0x0005:4000
        // gives a round trip of 0x0006:2000 (6.125 s).
        let rfc = ReportBlock {
            last_sr: 0xb705_2000,
            delay_since_last_sr: 0x0005_4000,
            ..ReportBlock::default()
        };
        assert_eq!(rfc.round_trip(0xb710_8000), Some(0x0006_2000));
        assert_eq!(rfc.round_trip(0xb705_2000), None, "arrival before LSR+DLSR");
        assert_eq!(ReportBlock::default().round_trip(5), None);
        assert_eq!(compact_ntp(0x1234_5678_9abc_def0), 0x5678_9abc);
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(parse_compound(&[]), Err(RtcpError::Empty));
        assert_eq!(parse_compound(&[0x80, 200]), Err(RtcpError::TooShort(2)));
        assert_eq!(
            parse_compound(&[0x40, 200, 0, 0]),
            Err(RtcpError::BadVersion(1))
        );
        assert!(matches!(
            parse_compound(&[0x80, 201, 0, 5, 0, 0, 0, 0]),
            Err(RtcpError::Truncated { declared: 24, .. })
        ));
        // RR claiming one block but holding only the SSRC.
        assert!(matches!(
            parse_compound(&[0x81, 201, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::BodyTooShort { .. })
        ));
        // Padding on a packet that is not last.
        let mut two = vec![0xa0, 201, 0, 1, 0, 0, 0, 4];
        two.extend_from_slice(&[0x80, 201, 0, 1, 0, 0, 0, 1]);
        assert_eq!(parse_compound(&two), Err(RtcpError::PaddingNotLast));
        // Padding count larger than the body.
        assert_eq!(
            parse_compound(&[0xa0, 201, 0, 1, 0, 0, 0, 9]),
            Err(RtcpError::BadPadding(9))
        );
        // SDES item running past the end.
        assert_eq!(
            parse_compound(&[0x81, 202, 0, 2, 0, 0, 0, 1, 1, 9, b'a', b'b']),
            Err(RtcpError::BadSdes)
        );
    }

    #[test]
    fn builder_limits() {
        let rr = RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: 1,
            reports: vec![ReportBlock::default(); 32],
        });
        assert_eq!(
            rr.write(&mut Vec::new()),
            Err(RtcpError::TooManyEntries(32))
        );
        let long = [b'x'; 256];
        let sdes = RtcpPacket::SourceDescription(vec![SdesChunk {
            ssrc: 1,
            items: vec![SdesItem {
                kind: SDES_CNAME,
                value: &long,
            }],
        }]);
        assert_eq!(
            sdes.write(&mut Vec::new()),
            Err(RtcpError::ItemTooLong(256))
        );
        let other = RtcpPacket::Other {
            packet_type: 204,
            count: 0,
            body: &[1, 2, 3],
        };
        assert_eq!(other.write(&mut Vec::new()), Err(RtcpError::Unaligned(3)));
    }

    #[test]
    fn unknown_types_are_kept() {
        let mut buf = Vec::new();
        RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: 5,
            reports: vec![],
        })
        .write(&mut buf)
        .unwrap();
        // APP packet (204) with subtype 1, SSRC, name and 4 bytes of data.
        buf.extend_from_slice(&[
            0x81, 204, 0, 3, 0, 0, 0, 5, b'T', b'E', b'S', b'T', 1, 2, 3, 4,
        ]);
        let p = parse_compound(&buf).unwrap();
        assert_eq!(p.len(), 2);
        assert!(matches!(
            p[1],
            RtcpPacket::Other {
                packet_type: 204,
                count: 1,
                body
            } if body.len() == 12
        ));
    }

    #[test]
    fn mux_classification() {
        let rtp = crate::rtp::RtpBuilder {
            payload_type: 0,
            payload: &[0; 160],
            ..Default::default()
        }
        .to_vec()
        .unwrap();
        assert_eq!(classify_muxed(&rtp), MuxedKind::Rtp);
        let mut marked96 = rtp.clone();
        marked96[1] = 0x80 | 96; // PT 96 with marker is still RTP
        assert_eq!(classify_muxed(&marked96), MuxedKind::Rtp);
        let mut rr = Vec::new();
        RtcpPacket::ReceiverReport(ReceiverReport::default())
            .write(&mut rr)
            .unwrap();
        assert_eq!(classify_muxed(&rr), MuxedKind::Rtcp);
        assert_eq!(classify_muxed(&[0x00, 0x01, 0, 0]), MuxedKind::Other); // STUN
        assert_eq!(classify_muxed(&[22, 0xfe, 0xfd]), MuxedKind::Other); // DTLS
        assert_eq!(classify_muxed(&[]), MuxedKind::Other);
        assert_eq!(classify_muxed(&[0x80, 0x00, 0, 1]), MuxedKind::Other);
    }

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn fuzzed_compounds_never_panic() {
        let mut seed = Vec::new();
        write_compound(&sample_compound(), &mut seed).unwrap();
        let mut rng = 0x1234_5678_9abc_def0u64;
        let mut ok = 0;
        for _ in 0..20_000 {
            let mut buf = seed.clone();
            for _ in 0..1 + xorshift(&mut rng) % 4 {
                let r = xorshift(&mut rng);
                match r % 3 {
                    0 if !buf.is_empty() => {
                        let i = (r >> 8) as usize % buf.len();
                        buf[i] = (r >> 32) as u8;
                    }
                    1 => buf.truncate((r >> 8) as usize % (seed.len() + 1)),
                    _ => buf.push((r >> 8) as u8),
                }
            }
            let _ = classify_muxed(&buf);
            if let Ok(packets) = parse_compound(&buf) {
                ok += 1;
                // Whatever parses must serialise and parse back to the same thing, unless it
                // holds something the builder refuses (e.g. an unaligned raw body).
                let mut out = Vec::new();
                if write_compound(&packets, &mut out).is_ok() {
                    assert_eq!(parse_compound(&out).unwrap(), packets);
                }
            }
        }
        assert!(
            ok > 100,
            "mutation loop should still produce valid compounds"
        );
    }
}
