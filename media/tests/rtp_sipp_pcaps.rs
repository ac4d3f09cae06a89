//! RTP, G.711 and RFC 4733 parsing against real captures: the pcaps SIPp ships for its
//! `play_pcap_audio` action (`g711a.pcap`, `dtmf_2833_<key>.pcap`). They were produced by other
//! implementations, so they check our parsers against the wire rather than against ourselves.
//!
//! The directory defaults to Debian's sip-tester location; override with `SIPP_PCAP_DIR`.

use callscope_media::dtmf::{DtmfDetector, DtmfEnd};
use callscope_media::g711::{alaw_to_linear, linear_to_alaw};
use callscope_media::rtp::{RtpBuilder, RtpPacket, SequenceTracker};
use std::path::PathBuf;

fn pcap_dir() -> PathBuf {
    std::env::var_os("SIPP_PCAP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/sip-tester"))
}

/// UDP payloads of a classic little-endian libpcap file with Ethernet/IPv4 frames.
fn udp_payloads(name: &str) -> Vec<Vec<u8>> {
    let path = pcap_dir().join(name);
    let data = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (install sip-tester or set SIPP_PCAP_DIR)",
            path.display()
        )
    });
    assert_eq!(&data[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
    assert_eq!(
        u32::from_le_bytes(data[20..24].try_into().unwrap()),
        1,
        "Ethernet"
    );
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let incl = u32::from_le_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &data[at + 16..at + 16 + incl];
        at += 16 + incl;
        let ip = &frame[14..];
        assert_eq!(ip[0] >> 4, 4, "IPv4");
        assert_eq!(ip[9], 17, "UDP");
        let udp = &ip[usize::from(ip[0] & 0x0f) * 4..];
        let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        out.push(udp[8..udp_len].to_vec());
    }
    out
}

#[test]
fn sipp_g711a_stream_parses_tracks_and_decodes() {
    let datagrams = udp_payloads("g711a.pcap");
    assert_eq!(datagrams.len(), 236);
    let mut tracker = SequenceTracker::new();
    let mut prev: Option<(u16, u32)> = None;
    let mut sum_sq = 0f64;
    let mut samples = 0usize;
    let mut markers = 0;
    for d in &datagrams {
        let p = RtpPacket::parse(d).expect("SIPp's RTP parses");
        assert_eq!(p.payload_type, 8, "PCMA");
        assert_eq!(p.payload.len(), 240, "30 ms at 8 kHz");
        markers += usize::from(p.marker);
        if let Some((seq, ts)) = prev {
            assert_eq!(p.sequence, seq.wrapping_add(1));
            assert_eq!(p.timestamp, ts.wrapping_add(240));
        }
        prev = Some((p.sequence, p.timestamp));
        tracker.update(p.sequence);
        // Serialising the parsed fields gives back the captured bytes exactly.
        let rebuilt = RtpBuilder {
            marker: p.marker,
            payload_type: p.payload_type,
            sequence: p.sequence,
            timestamp: p.timestamp,
            ssrc: p.ssrc,
            csrcs: &p.csrcs().collect::<Vec<_>>(),
            extension: p.extension,
            payload: p.payload,
            padding: usize::from(p.padding),
        }
        .to_vec()
        .unwrap();
        assert_eq!(&rebuilt, d);
        for &code in p.payload {
            let s = alaw_to_linear(code);
            // Every A-law code survives decode → encode.
            assert_eq!(linear_to_alaw(s), code);
            sum_sq += f64::from(s) * f64::from(s);
            samples += 1;
        }
    }
    assert_eq!(markers, 1, "only the first packet starts a talkspurt");
    // The first packet is spent on probation; the other 235 are counted, none lost.
    assert_eq!(
        (tracker.expected(), tracker.received(), tracker.lost()),
        (235, 235, 0)
    );
    let rms = (sum_sq / samples as f64).sqrt();
    assert!(
        rms > 100.0 && rms < 20_000.0,
        "decoded audio has speech-like level, rms {rms}"
    );
}

const DTMF_FILES: [(&str, char); 12] = [
    ("0", '0'),
    ("1", '1'),
    ("2", '2'),
    ("3", '3'),
    ("4", '4'),
    ("5", '5'),
    ("6", '6'),
    ("7", '7'),
    ("8", '8'),
    ("9", '9'),
    ("star", '*'),
    ("pound", '#'),
];

fn detect(packets: &[RtpPacket<'_>]) -> Vec<(char, u32, u32, DtmfEnd)> {
    let mut det = DtmfDetector::new(8000);
    let mut got = Vec::new();
    for p in packets {
        det.on_packet(p.sequence, p.timestamp, p.payload).unwrap();
        while let Some(d) = det.next_digit() {
            got.push((
                d.symbol().unwrap(),
                d.start_timestamp,
                d.duration,
                d.ended_by,
            ));
        }
    }
    got
}

#[test]
fn sipp_rfc2833_pcaps_give_each_digit_once() {
    for (file, key) in DTMF_FILES {
        let datagrams = udp_payloads(&format!("dtmf_2833_{file}.pcap"));
        let packets: Vec<RtpPacket<'_>> = datagrams
            .iter()
            .map(|d| RtpPacket::parse(d).expect("SIPp's RTP parses"))
            .collect();
        assert_eq!(packets.len(), 10);
        assert!(
            packets[0].marker,
            "first packet of an event carries the marker"
        );
        assert!(packets.iter().all(|p| p.payload_type == 101));
        let start = packets[0].timestamp;
        // 0x08c0 = 2240 units = 280 ms, from the end packets.
        let want = vec![(key, start, 2240, DtmfEnd::EndBit)];
        assert_eq!(detect(&packets), want, "{file}");
        // The first three packets lost: start time and duration are still right.
        assert_eq!(
            detect(&packets[3..]),
            want,
            "{file} without its first packets"
        );
        // The whole capture delivered twice (a retransmitting path): still one press.
        let twice: Vec<_> = packets.iter().chain(&packets).copied().collect();
        assert_eq!(detect(&twice), want, "{file} duplicated");
    }
}
