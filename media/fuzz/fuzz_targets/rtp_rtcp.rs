//! Every datagram a leg's socket receives is classified (RTP or RTCP, rtcp-mux) and parsed
//! before anything else looks at it: whatever the bytes, each parser must accept or reject,
//! never panic. A parsed RTP packet's CSRCs are walked and its payload goes through the
//! telephone-event parser (RFC 4733), as DTMF detection does on either leg. The same bytes,
//! read as a run of sequence numbers, drive the loss tracker (wraps, jumps, restarts,
//! duplicates) and its RTCP figures.
#![no_main]

use callscope_media::dtmf::TelephoneEvent;
use callscope_media::rtcp::{classify_muxed, parse_compound};
use callscope_media::rtp::{RtpPacket, SequenceTracker};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = classify_muxed(data);
    let _ = parse_compound(data);
    if let Ok(packet) = RtpPacket::parse(data) {
        let _ = packet.csrcs().count();
        let _ = TelephoneEvent::parse(packet.payload);
    }
    let mut tracker = SequenceTracker::new();
    for seq in data.chunks_exact(2) {
        let _ = tracker.update(u16::from_be_bytes([seq[0], seq[1]]));
    }
    let _ = (tracker.expected(), tracker.received(), tracker.lost());
    let _ = tracker.take_fraction_lost();
});
