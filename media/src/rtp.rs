//! RTP packets (RFC 3550 §5.1): a zero-copy view over received bytes, a builder for outgoing
//! packets, and the sequence-number bookkeeping of RFC 3550 appendix A.1 that loss statistics
//! and RTCP receiver reports are computed from.
//!
//! Parsing never panics: every length is checked against the buffer before it is used.

use thiserror::Error;

/// Fixed RTP header length (before CSRCs and the extension).
pub const RTP_HEADER_LEN: usize = 12;

/// Why bytes are not a valid RTP packet.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtpError {
    #[error("packet of {0} bytes is shorter than the 12-byte RTP header")]
    TooShort(usize),
    #[error("RTP version {0}, expected 2")]
    BadVersion(u8),
    #[error("CSRC list of {count} entries does not fit in a {len}-byte packet")]
    TruncatedCsrc { count: u8, len: usize },
    #[error("header extension does not fit in a {len}-byte packet")]
    TruncatedExtension { len: usize },
    #[error("padding length {pad} is zero or exceeds the {available} bytes after the header")]
    BadPadding { pad: u8, available: usize },
    #[error("{0} CSRCs given; RTP allows at most 15")]
    TooManyCsrcs(usize),
    #[error("extension of {0} bytes is not a multiple of 4 or is too long")]
    BadExtensionLength(usize),
    #[error("payload type {0} does not fit in 7 bits")]
    BadPayloadType(u8),
    #[error("padding of {0} bytes is outside 1..=255")]
    BadPaddingLength(usize),
}

/// A header extension (RFC 3550 §5.3.1): the 16-bit profile field and its data words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpExtension<'a> {
    pub profile: u16,
    pub data: &'a [u8],
}

/// A parsed RTP packet borrowing the buffer it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Raw CSRC list, 4 bytes per entry; see [`RtpPacket::csrcs`].
    csrc_bytes: &'a [u8],
    pub extension: Option<RtpExtension<'a>>,
    pub payload: &'a [u8],
    /// Number of padding bytes that were stripped (0 when the P bit was clear).
    pub padding: u8,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

impl<'a> RtpPacket<'a> {
    /// Parses `buf` as one RTP packet.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        let len = buf.len();
        if len < RTP_HEADER_LEN {
            return Err(RtpError::TooShort(len));
        }
        let b0 = buf[0];
        let version = b0 >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let has_padding = b0 & 0x20 != 0;
        let has_extension = b0 & 0x10 != 0;
        let csrc_count = b0 & 0x0f;
        let b1 = buf[1];
        let mut at = RTP_HEADER_LEN + 4 * usize::from(csrc_count);
        let csrc_bytes = buf.get(RTP_HEADER_LEN..at).ok_or(RtpError::TruncatedCsrc {
            count: csrc_count,
            len,
        })?;
        let extension = if has_extension {
            let profile = be16(buf, at).ok_or(RtpError::TruncatedExtension { len })?;
            let words = be16(buf, at + 2).ok_or(RtpError::TruncatedExtension { len })?;
            let start = at + 4;
            let end = start + 4 * usize::from(words);
            let data = buf
                .get(start..end)
                .ok_or(RtpError::TruncatedExtension { len })?;
            at = end;
            Some(RtpExtension { profile, data })
        } else {
            None
        };
        let rest = buf.get(at..).unwrap_or_default();
        let (payload, padding) = if has_padding {
            // The last octet counts the padding, itself included (RFC 3550 §5.1).
            let pad = rest.last().copied().unwrap_or(0);
            if pad == 0 || usize::from(pad) > rest.len() {
                return Err(RtpError::BadPadding {
                    pad,
                    available: rest.len(),
                });
            }
            (&rest[..rest.len() - usize::from(pad)], pad)
        } else {
            (rest, 0)
        };
        Ok(RtpPacket {
            marker: b1 & 0x80 != 0,
            payload_type: b1 & 0x7f,
            sequence: be16(buf, 2).unwrap_or(0),
            timestamp: be32(buf, 4).unwrap_or(0),
            ssrc: be32(buf, 8).unwrap_or(0),
            csrc_bytes,
            extension,
            payload,
            padding,
        })
    }

    /// The contributing sources, in order.
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a {
        self.csrc_bytes
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// Number of CSRC entries.
    pub fn csrc_count(&self) -> usize {
        self.csrc_bytes.len() / 4
    }
}

/// An outgoing RTP packet; [`RtpBuilder::write`] serialises it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RtpBuilder<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub csrcs: &'a [u32],
    pub extension: Option<RtpExtension<'a>>,
    pub payload: &'a [u8],
    /// Padding bytes to append (0 = none); the last one holds the count.
    pub padding: usize,
}

impl RtpBuilder<'_> {
    /// Bytes [`RtpBuilder::write`] will produce.
    pub fn len(&self) -> usize {
        RTP_HEADER_LEN
            + 4 * self.csrcs.len()
            + self.extension.map_or(0, |e| 4 + e.data.len())
            + self.payload.len()
            + self.padding
    }

    /// Always false: a packet has at least a header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Appends the packet to `out` (callers reuse one buffer per stream to avoid allocation).
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), RtpError> {
        if self.csrcs.len() > 15 {
            return Err(RtpError::TooManyCsrcs(self.csrcs.len()));
        }
        if self.payload_type > 0x7f {
            return Err(RtpError::BadPayloadType(self.payload_type));
        }
        if self.padding > 255 {
            return Err(RtpError::BadPaddingLength(self.padding));
        }
        if let Some(ext) = self.extension
            && (ext.data.len() % 4 != 0 || ext.data.len() / 4 > usize::from(u16::MAX))
        {
            return Err(RtpError::BadExtensionLength(ext.data.len()));
        }
        out.reserve(self.len());
        let mut b0 = 0x80 | self.csrcs.len() as u8;
        if self.padding > 0 {
            b0 |= 0x20;
        }
        if self.extension.is_some() {
            b0 |= 0x10;
        }
        out.push(b0);
        out.push(self.payload_type | if self.marker { 0x80 } else { 0 });
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for c in self.csrcs {
            out.extend_from_slice(&c.to_be_bytes());
        }
        if let Some(ext) = self.extension {
            out.extend_from_slice(&ext.profile.to_be_bytes());
            out.extend_from_slice(&((ext.data.len() / 4) as u16).to_be_bytes());
            out.extend_from_slice(ext.data);
        }
        out.extend_from_slice(self.payload);
        if self.padding > 0 {
            out.extend(std::iter::repeat_n(0u8, self.padding - 1));
            out.push(self.padding as u8);
        }
        Ok(())
    }

    /// Serialises into a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>, RtpError> {
        let mut v = Vec::with_capacity(self.len());
        self.write(&mut v)?;
        Ok(v)
    }
}

/// What [`SequenceTracker::update`] decided about one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqUpdate {
    /// Counted; carries its extended (wrap-corrected) sequence number.
    Accepted(u64),
    /// Still in probation: the source has not yet sent enough in-order packets.
    Probation,
    /// A large jump; one more packet continuing from it resynchronises the tracker.
    BadJump,
    /// Older than the highest seen, or a duplicate, within the misorder window: counted as
    /// received (RFC 3550 counts duplicates too) but does not advance the highest number.
    Late(u64),
}

/// Packets in order needed before a new source is trusted (RFC 3550 A.1 MIN_SEQUENTIAL).
const MIN_SEQUENTIAL: u32 = 2;
/// Largest forward gap still taken as loss rather than a restart (A.1 MAX_DROPOUT).
const MAX_DROPOUT: u16 = 3000;
/// Largest backward step still taken as reordering (A.1 MAX_MISORDER).
const MAX_MISORDER: u16 = 100;
const SEQ_MOD: u64 = 1 << 16;

/// Extended sequence numbers and loss counts for one SSRC (RFC 3550 appendix A.1/A.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceTracker {
    max_seq: u16,
    /// Count of sequence-number wraps, shifted by 16 (A.1 `cycles`).
    cycles: u64,
    base_seq: u64,
    /// Sequence number that would resynchronise after a bad jump (A.1 `bad_seq`).
    bad_seq: Option<u16>,
    probation: u32,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    started: bool,
}

impl Default for SequenceTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl SequenceTracker {
    pub fn new() -> Self {
        SequenceTracker {
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: None,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            started: false,
        }
    }

    fn init(&mut self, seq: u16) {
        self.base_seq = u64::from(seq);
        self.max_seq = seq;
        self.bad_seq = None;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// Feeds one packet's sequence number.
    pub fn update(&mut self, seq: u16) -> SeqUpdate {
        if !self.started {
            self.started = true;
            self.init(seq);
            self.max_seq = seq.wrapping_sub(1);
            self.probation = MIN_SEQUENTIAL;
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init(seq);
                    self.received += 1;
                    return SeqUpdate::Accepted(self.extended_max());
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return SeqUpdate::Probation;
        }
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += SEQ_MOD;
            }
            self.max_seq = seq;
            self.received += 1;
            SeqUpdate::Accepted(self.extended_max())
        } else if udelta <= u16::MAX - MAX_MISORDER {
            // A big jump: the sender probably restarted. Believe it only if the next packet
            // continues from here (A.1), so one stray packet cannot wreck the counts.
            if self.bad_seq == Some(seq) {
                self.init(seq);
                self.received += 1;
                SeqUpdate::Accepted(self.extended_max())
            } else {
                self.bad_seq = Some(seq.wrapping_add(1));
                SeqUpdate::BadJump
            }
        } else {
            // Duplicate or reordered packet. Its extended number may belong to the previous cycle.
            self.received += 1;
            let back = u64::from(self.max_seq.wrapping_sub(seq));
            SeqUpdate::Late(self.extended_max().saturating_sub(back))
        }
    }

    /// Highest extended sequence number seen (cycles + max_seq).
    pub fn extended_max(&self) -> u64 {
        self.cycles + u64::from(self.max_seq)
    }

    /// Packets expected since the tracker (re)synchronised (A.3).
    pub fn expected(&self) -> u64 {
        if !self.started || self.probation > 0 {
            return 0;
        }
        self.extended_max() + 1 - self.base_seq
    }

    /// Packets counted as received (duplicates included, as in RFC 3550).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Cumulative loss; negative when duplicates outnumber losses (RFC 3550 allows that).
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Fraction lost since the previous call, as the 8-bit fixed-point value of an RTCP
    /// report block (A.3); also advances the interval.
    pub fn take_fraction_lost(&mut self) -> u8 {
        let expected = self.expected();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval as u64 * 256) / expected_interval).min(255) as u8
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc_shaped_packet_and_round_trips() {
        let csrcs = [0x1111_2222, 0x3333_4444];
        let ext_data = [1, 2, 3, 4, 5, 6, 7, 8];
        let b = RtpBuilder {
            marker: true,
            payload_type: 0,
            sequence: 0xfffe,
            timestamp: 0xdead_beef,
            ssrc: 0x1234_5678,
            csrcs: &csrcs,
            extension: Some(RtpExtension {
                profile: 0xbede,
                data: &ext_data,
            }),
            payload: &[0xff; 160],
            padding: 4,
        };
        let bytes = b.to_vec().unwrap();
        assert_eq!(bytes.len(), b.len());
        assert_eq!(bytes[0], 0x80 | 0x20 | 0x10 | 2);
        assert_eq!(bytes[1], 0x80);
        let p = RtpPacket::parse(&bytes).unwrap();
        assert!(p.marker);
        assert_eq!(p.payload_type, 0);
        assert_eq!(p.sequence, 0xfffe);
        assert_eq!(p.timestamp, 0xdead_beef);
        assert_eq!(p.ssrc, 0x1234_5678);
        assert_eq!(p.csrcs().collect::<Vec<_>>(), csrcs);
        assert_eq!(p.extension.unwrap().profile, 0xbede);
        assert_eq!(p.extension.unwrap().data, &ext_data);
        assert_eq!(p.payload, &[0xff; 160][..]);
        assert_eq!(p.padding, 4);
    }

    #[test]
    fn known_bytes_parse() {
        // PCMU, seq 1, ts 160, SSRC 0xAABBCCDD, two payload bytes.
        let bytes = [
            0x80, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0xa0, 0xaa, 0xbb, 0xcc, 0xdd, 0x7f, 0xff,
        ];
        let p = RtpPacket::parse(&bytes).unwrap();
        assert_eq!(
            (p.sequence, p.timestamp, p.ssrc, p.payload),
            (1, 160, 0xaabb_ccdd, &[0x7f, 0xff][..])
        );
        assert!(!p.marker);
        assert!(p.extension.is_none());
    }

    #[test]
    fn rejects_malformed_packets() {
        assert_eq!(RtpPacket::parse(&[0x80; 11]), Err(RtpError::TooShort(11)));
        let mut v1 = [0u8; 12];
        v1[0] = 0x40;
        assert_eq!(RtpPacket::parse(&v1), Err(RtpError::BadVersion(1)));
        let mut csrc = [0u8; 16];
        csrc[0] = 0x82;
        assert!(matches!(
            RtpPacket::parse(&csrc),
            Err(RtpError::TruncatedCsrc { count: 2, .. })
        ));
        let mut ext = vec![
            0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xbe, 0xde, 0, 2, 0, 0, 0, 0,
        ];
        assert!(matches!(
            RtpPacket::parse(&ext),
            Err(RtpError::TruncatedExtension { .. })
        ));
        ext.extend_from_slice(&[0, 0, 0, 0]);
        assert!(RtpPacket::parse(&ext).is_ok());
        let mut pad = [0u8; 14];
        pad[0] = 0xa0;
        pad[13] = 3; // claims 3 padding bytes, only 2 after the header
        assert!(matches!(
            RtpPacket::parse(&pad),
            Err(RtpError::BadPadding { pad: 3, .. })
        ));
        pad[13] = 0;
        assert!(matches!(
            RtpPacket::parse(&pad),
            Err(RtpError::BadPadding { pad: 0, .. })
        ));
        pad[13] = 2;
        assert_eq!(RtpPacket::parse(&pad).unwrap().payload, &[][..]);
    }

    #[test]
    fn builder_rejects_invalid_fields() {
        let many = [0u32; 16];
        let b = RtpBuilder {
            csrcs: &many,
            ..Default::default()
        };
        assert_eq!(b.to_vec(), Err(RtpError::TooManyCsrcs(16)));
        let b = RtpBuilder {
            payload_type: 128,
            ..Default::default()
        };
        assert_eq!(b.to_vec(), Err(RtpError::BadPayloadType(128)));
        let b = RtpBuilder {
            extension: Some(RtpExtension {
                profile: 1,
                data: &[1, 2, 3],
            }),
            ..Default::default()
        };
        assert_eq!(b.to_vec(), Err(RtpError::BadExtensionLength(3)));
        let b = RtpBuilder {
            padding: 256,
            ..Default::default()
        };
        assert_eq!(b.to_vec(), Err(RtpError::BadPaddingLength(256)));
    }

    /// Deterministic xorshift so fuzz runs are reproducible without a rand dependency.
    pub(crate) fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn fuzzed_packets_never_panic_and_valid_ones_round_trip() {
        let seed = RtpBuilder {
            marker: true,
            payload_type: 8,
            sequence: 7,
            timestamp: 9,
            ssrc: 11,
            csrcs: &[1, 2],
            extension: Some(RtpExtension {
                profile: 0x1000,
                data: &[9; 8],
            }),
            payload: &[0x55; 40],
            padding: 3,
        }
        .to_vec()
        .unwrap();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut ok = 0;
        for _ in 0..20_000 {
            let mut buf = seed.clone();
            let edits = 1 + xorshift(&mut rng) % 4;
            for _ in 0..edits {
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
            if let Ok(p) = RtpPacket::parse(&buf) {
                ok += 1;
                let rebuilt = RtpBuilder {
                    marker: p.marker,
                    payload_type: p.payload_type,
                    sequence: p.sequence,
                    timestamp: p.timestamp,
                    ssrc: p.ssrc,
                    csrcs: &p.csrcs().collect::<Vec<_>>(),
                    extension: p.extension,
                    payload: p.payload,
                    padding: 0,
                }
                .to_vec()
                .unwrap();
                let again = RtpPacket::parse(&rebuilt).unwrap();
                assert_eq!(again.payload, p.payload);
                assert_eq!(again.sequence, p.sequence);
                assert_eq!(again.extension, p.extension);
            }
        }
        assert!(ok > 100, "mutation loop should still produce valid packets");
    }

    fn feed(t: &mut SequenceTracker, seqs: impl IntoIterator<Item = u16>) -> Vec<SeqUpdate> {
        seqs.into_iter().map(|s| t.update(s)).collect()
    }

    #[test]
    fn tracker_probation_then_counts() {
        let mut t = SequenceTracker::new();
        assert_eq!(
            feed(&mut t, [100, 101]),
            [SeqUpdate::Probation, SeqUpdate::Accepted(101)]
        );
        assert_eq!(t.expected(), 1);
        feed(&mut t, 102..=110);
        assert_eq!((t.expected(), t.received(), t.lost()), (10, 10, 0));
    }

    #[test]
    fn tracker_probation_restarts_on_gap() {
        let mut t = SequenceTracker::new();
        assert_eq!(
            feed(&mut t, [10, 50, 51]),
            [
                SeqUpdate::Probation,
                SeqUpdate::Probation,
                SeqUpdate::Accepted(51)
            ]
        );
    }

    #[test]
    fn tracker_wraps_and_counts_loss() {
        let mut t = SequenceTracker::new();
        feed(&mut t, [65530, 65531]);
        // skip 65533 and 2 across the wrap
        let out = feed(&mut t, [65532, 65534, 65535, 0, 1, 3]);
        assert_eq!(out.last(), Some(&SeqUpdate::Accepted(65536 + 3)));
        assert_eq!(t.extended_max(), 65536 + 3);
        assert_eq!(t.expected(), 65536 + 3 - 65531 + 1);
        assert_eq!(t.lost(), 2);
        assert_eq!(t.take_fraction_lost(), (2 * 256 / 9) as u8);
        feed(&mut t, 4..=13);
        assert_eq!(t.take_fraction_lost(), 0);
    }

    #[test]
    fn tracker_late_and_duplicate() {
        let mut t = SequenceTracker::new();
        feed(&mut t, [1, 2, 4, 3, 3]);
        assert_eq!(t.extended_max(), 4);
        assert_eq!(t.expected(), 3);
        assert_eq!(t.received(), 4);
        assert_eq!(t.lost(), -1);
        let mut t = SequenceTracker::new();
        feed(&mut t, [65534, 65535, 0, 1]);
        assert_eq!(t.update(65535), SeqUpdate::Late(65535));
    }

    #[test]
    fn tracker_resyncs_after_confirmed_jump_only() {
        let mut t = SequenceTracker::new();
        feed(&mut t, [1, 2, 3]);
        assert_eq!(t.update(30_000), SeqUpdate::BadJump);
        // a stray jump not followed up is ignored
        assert_eq!(t.update(4), SeqUpdate::Accepted(4));
        assert_eq!(t.update(40_000), SeqUpdate::BadJump);
        assert_eq!(t.update(40_001), SeqUpdate::Accepted(40_001));
        assert_eq!((t.expected(), t.received()), (1, 1));
    }

    #[test]
    fn tracker_fuzz_never_panics() {
        let mut rng = 42u64;
        let mut t = SequenceTracker::new();
        for _ in 0..100_000 {
            let s = xorshift(&mut rng) as u16;
            t.update(s);
            let _ = t.take_fraction_lost();
            assert!(t.received() <= 100_000);
        }
    }
}
